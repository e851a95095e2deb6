/*
 * rstore_count: the abuse counters every proxy shares (rstore.h, "Abuse
 * counters"; docs/state-contract.md).
 *
 * Budgets: one hash per wall-clock second, one field per device, user and
 * client address, HINCRBY'd by each worker with what it let through since it
 * last said so. A worker sends its additions a few times a second in one
 * pipeline (one HINCRBY per active field and one PEXPIRE per batch), so
 * Redis sees about one command per active key and flush, not per request,
 * and the request path never waits for the answer: the totals come back and
 * are charged to the worker's local buckets (proxy/budget.c). A hash per
 * second rather than a key per counter keeps the expiry one command for the
 * whole batch, and the second in the name makes the counts windows without
 * any reset: the hash of a past second is never written again and expires.
 *
 * Failed logins: rare (one per 401), so each is one small script, atomic in
 * Redis: when several proxies see the failure that crosses the limit at
 * once, exactly one block is made, and the back-off's repeat count (the
 * strike) is kept beside it for memory_ms.
 */
#include "connectors/rstore_int.h"

#include "common/log.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct count_batch {
    struct rstore *rs;
    rstore_count_cb cb;
    void *arg;
    size_t n;      /* HINCRBYs queued: a callback each */
    size_t queued; /* commands queued: the last reply frees the batch */
    size_t got;
};

static void count_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct count_batch *b = priv;
    redisReply *r = reply;
    struct rs_conn *c = ac->data;
    if (r && c && c->ac == ac)
        c->rs->data_last = rs_now(c->rs);
    size_t i = b->got++;
    if (i < b->n) {
        long long total = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
        if (r && r->type == REDIS_REPLY_ERROR)
            eg_warn("redis: HINCRBY %s: %s", RSTORE_BUDGET_PREFIX, r->str);
        b->cb(b->arg, i, total);
    }
    if (b->got == b->queued) {
        b->cb(b->arg, SIZE_MAX, 0); /* the end: the caller's state can go */
        free(b);
    }
}

int rstore_count_add(struct rstore *rs, int64_t sec, const struct rstore_count *v, size_t n,
                     rstore_count_cb cb, void *arg)
{
    if (!n)
        return 0;
    if (rs->link != LINK_UP || !rs->data.ac)
        return RSTORE_ENOTCONN;
    struct count_batch *b = malloc(sizeof(*b));
    if (!b)
        return RSTORE_ENOMEM;
    *b = (struct count_batch){.rs = rs, .cb = cb, .arg = arg, .n = n};
    char key[64];
    int kl = snprintf(key, sizeof(key), RSTORE_BUDGET_PREFIX "%lld", (long long)sec);
    char by[24];
    for (size_t i = 0; i < n; i++) {
        int bl = snprintf(by, sizeof(by), "%lld", v[i].by);
        const char *argv[] = {"HINCRBY", key, v[i].field, by};
        size_t argl[] = {7, (size_t)kl, v[i].len, (size_t)bl};
        /* A context that refuses one is going away: hiredis calls back
         * (with no reply) the ones already queued. */
        if (redisAsyncCommandArgv(rs->data.ac, count_reply, b, 4, argv, argl) != REDIS_OK)
            break;
        b->queued = b->n = i + 1;
    }
    char ttl[24];
    int tl = snprintf(ttl, sizeof(ttl), "%d", RSTORE_BUDGET_TTL_MS);
    const char *argv[] = {"PEXPIRE", key, ttl};
    size_t argl[] = {7, (size_t)kl, (size_t)tl};
    if (b->n == n && redisAsyncCommandArgv(rs->data.ac, count_reply, b, 3, argv, argl) == REDIS_OK)
        b->queued++;
    if (b->queued == 0) {
        free(b);
        return RSTORE_ENOTCONN;
    }
    ST_ADD(rs, abuse_ops, b->queued);
    return 0;
}

/* KEYS: count, block, strike. ARGV: window, limit, block, block_max, memory
 * (ms). Returns {0, count}, {1, block ms, strike} or {2, ms left}. */
static const char fail_script[] =
    "local left = redis.call('PTTL', KEYS[2])\n"
    "if left > 0 then return {2, left} end\n"
    "local n = redis.call('INCR', KEYS[1])\n"
    "if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end\n"
    "if n < tonumber(ARGV[2]) then return {0, n} end\n"
    "local s = redis.call('INCR', KEYS[3])\n"
    "redis.call('PEXPIRE', KEYS[3], ARGV[5])\n"
    "local d = tonumber(ARGV[3])\n"
    "local i = 1\n"
    "while i < s and d < tonumber(ARGV[4]) do d = d * 2; i = i + 1 end\n"
    "if d > tonumber(ARGV[4]) then d = tonumber(ARGV[4]) end\n"
    "redis.call('SET', KEYS[2], s, 'PX', d)\n"
    "redis.call('DEL', KEYS[1])\n"
    "return {1, d, s}\n";

struct fail_req {
    rstore_fail_cb cb;
    void *arg;
    uint64_t tag;
};

static long long elem_int(const redisReply *r, size_t i)
{
    return r->elements > i && r->element[i]->type == REDIS_REPLY_INTEGER ? r->element[i]->integer
                                                                         : 0;
}

static void fail_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct fail_req *f = priv;
    redisReply *r = reply;
    struct rs_conn *c = ac->data;
    if (r && c && c->ac == ac)
        c->rs->data_last = rs_now(c->rs);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 2) {
        if (r && r->type == REDIS_REPLY_ERROR)
            eg_warn("redis: failed-login script: %s", r->str);
        f->cb(f->arg, f->tag, RSTORE_FAIL_ERROR, 0, 0);
    } else {
        long long what = elem_int(r, 0);
        enum rstore_fail_outcome o = what == 1   ? RSTORE_FAIL_BLOCKED
                                     : what == 2 ? RSTORE_FAIL_ALREADY
                                                 : RSTORE_FAIL_COUNTED;
        f->cb(f->arg, f->tag, o, elem_int(r, 1), elem_int(r, 2));
    }
    free(f);
}

int rstore_fail_add(struct rstore *rs, const struct rstore_fail *fl, rstore_fail_cb cb, void *arg,
                    uint64_t tag)
{
    if (rs->link != LINK_UP || !rs->data.ac)
        return RSTORE_ENOTCONN;
    struct fail_req *f = malloc(sizeof(*f));
    if (!f)
        return RSTORE_ENOMEM;
    *f = (struct fail_req){cb, arg, tag};
    char k[3][320], a[5][24];
    const char *pre[3] = {RSTORE_AUTH_COUNT_PREFIX, RSTORE_AUTH_BLOCK_PREFIX,
                          RSTORE_AUTH_STRIKE_PREFIX};
    for (int i = 0; i < 3; i++)
        snprintf(k[i], sizeof(k[i]), "%s%s:%s", pre[i], fl->scope, fl->id);
    snprintf(a[0], sizeof(a[0]), "%lld", (long long)fl->window_ms);
    snprintf(a[1], sizeof(a[1]), "%d", fl->limit);
    snprintf(a[2], sizeof(a[2]), "%lld", (long long)fl->block_ms);
    snprintf(a[3], sizeof(a[3]), "%lld", (long long)fl->block_max_ms);
    snprintf(a[4], sizeof(a[4]), "%lld", (long long)fl->memory_ms);
    const char *argv[] = {"EVAL", fail_script, "3", k[0], k[1], k[2], a[0], a[1], a[2], a[3], a[4]};
    if (redisAsyncCommandArgv(rs->data.ac, fail_reply, f, 11, argv, NULL) != REDIS_OK) {
        free(f);
        return RSTORE_ENOTCONN;
    }
    ST_INC(rs, abuse_ops);
    return 0;
}
