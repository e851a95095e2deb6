/*
 * rstore_count: the abuse counters every proxy shares (rstore.h, "Abuse
 * counters"; docs/state-contract.md).
 *
 * Budgets: one hash per wall-clock second, one field per device, user and
 * client address, HINCRBY'd by each worker with what it let through since it
 * last said so. A worker sends its additions a few times a second as one
 * small script (an HINCRBY per active field and one PEXPIRE), so Redis sees
 * one command per worker and flush, not per request or key,
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

/* KEYS[1]: the second's hash. ARGV: its expiry (ms), then field, by pairs.
 * One script per batch: one command for Redis to parse and one reply for
 * the worker, however many keys the batch holds. */
static const char count_script[] =
    "local r = {}\n"
    "for i = 2, #ARGV, 2 do\n"
    "  r[#r + 1] = redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])\n"
    "end\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[1])\n"
    "return r\n";

struct count_batch {
    rstore_count_cb cb;
    void *arg;
    size_t n;
};

static void count_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct count_batch *b = priv;
    redisReply *r = reply;
    struct rs_conn *c = ac->data;
    if (r && c && c->ac == ac)
        c->rs->data_last = rs_now(c->rs);
    if (r && r->type == REDIS_REPLY_ERROR)
        eg_warn("redis: budget counts: %s", r->str);
    bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == b->n;
    for (size_t i = 0; i < b->n; i++)
        b->cb(b->arg, i,
              ok && r->element[i]->type == REDIS_REPLY_INTEGER ? r->element[i]->integer : -1);
    b->cb(b->arg, SIZE_MAX, 0); /* the end: the caller's state can go */
    free(b);
}

int rstore_count_add(struct rstore *rs, int64_t sec, const struct rstore_count *v, size_t n,
                     rstore_count_cb cb, void *arg)
{
    if (!n)
        return 0;
    if (rs->link != LINK_UP || !rs->data.ac)
        return RSTORE_ENOTCONN;
    struct count_batch *b = malloc(sizeof(*b));
    const char **argv = malloc((5 + 2 * n) * sizeof(*argv));
    size_t *argl = malloc((5 + 2 * n) * sizeof(*argl));
    char *nums = malloc(n * 24);
    if (!b || !argv || !argl || !nums) {
        free(b), free(argv), free(argl), free(nums);
        return RSTORE_ENOMEM;
    }
    *b = (struct count_batch){.cb = cb, .arg = arg, .n = n};
    char key[64], ttl[24];
    int kl = snprintf(key, sizeof(key), RSTORE_BUDGET_PREFIX "%lld", (long long)sec);
    int tl = snprintf(ttl, sizeof(ttl), "%d", RSTORE_BUDGET_TTL_MS);
    int argc = 0;
    argv[argc] = "EVAL", argl[argc++] = 4;
    argv[argc] = count_script, argl[argc++] = sizeof(count_script) - 1;
    argv[argc] = "1", argl[argc++] = 1;
    argv[argc] = key, argl[argc++] = (size_t)kl;
    argv[argc] = ttl, argl[argc++] = (size_t)tl;
    for (size_t i = 0; i < n; i++) {
        char *num = nums + i * 24;
        argv[argc] = v[i].field, argl[argc++] = v[i].len;
        argv[argc] = num, argl[argc++] = (size_t)snprintf(num, 24, "%lld", v[i].by);
    }
    int rc = redisAsyncCommandArgv(rs->data.ac, count_reply, b, argc, argv, argl);
    free(argv), free(argl), free(nums);
    if (rc != REDIS_OK) {
        free(b);
        return RSTORE_ENOTCONN;
    }
    ST_INC(rs, abuse_ops);
    return 0;
}

/* KEYS: one per counter. ARGV: by, window (ms), by pairs. A key without an
 * expiry (its first incident, or one whose PEXPIRE was lost) gets one. */
static const char ab_script[] = "local r = {}\n"
                                "for i = 1, #KEYS do\n"
                                "  r[i] = redis.call('INCRBY', KEYS[i], ARGV[2 * i - 1])\n"
                                "  if redis.call('PTTL', KEYS[i]) < 0 then\n"
                                "    redis.call('PEXPIRE', KEYS[i], ARGV[2 * i])\n"
                                "  end\n"
                                "end\n"
                                "return r\n";

int rstore_ab_add(struct rstore *rs, const struct rstore_ab *v, size_t n, rstore_count_cb cb,
                  void *arg)
{
    if (!n)
        return 0;
    if (rs->link != LINK_UP || !rs->data.ac)
        return RSTORE_ENOTCONN;
    struct count_batch *b = malloc(sizeof(*b));
    const char **argv = malloc((3 + 3 * n) * sizeof(*argv));
    size_t *argl = malloc((3 + 3 * n) * sizeof(*argl));
    char *keys = malloc(n * 96), *nums = malloc(n * 48);
    if (!b || !argv || !argl || !keys || !nums) {
        free(b), free(argv), free(argl), free(keys), free(nums);
        return RSTORE_ENOMEM;
    }
    *b = (struct count_batch){.cb = cb, .arg = arg, .n = n};
    char nk[24];
    int argc = 0;
    argv[argc] = "EVAL", argl[argc++] = 4;
    argv[argc] = ab_script, argl[argc++] = sizeof(ab_script) - 1;
    argv[argc] = nk, argl[argc++] = (size_t)snprintf(nk, sizeof(nk), "%zu", n);
    for (size_t i = 0; i < n; i++) {
        char *k = keys + i * 96;
        int kl = snprintf(k, 96, RSTORE_AB_PREFIX "%.32s:%.32s", v[i].rule, v[i].devid);
        argv[argc] = k, argl[argc++] = (size_t)kl;
    }
    for (size_t i = 0; i < n; i++) {
        char *num = nums + i * 48;
        int l1 = snprintf(num, 24, "%lld", v[i].by);
        int l2 = snprintf(num + 24, 24, "%lld", (long long)v[i].window_ms);
        argv[argc] = num, argl[argc++] = (size_t)l1;
        argv[argc] = num + 24, argl[argc++] = (size_t)l2;
    }
    int rc = redisAsyncCommandArgv(rs->data.ac, count_reply, b, argc, argv, argl);
    free(argv), free(argl), free(keys), free(nums);
    if (rc != REDIS_OK) {
        free(b);
        return RSTORE_ENOTCONN;
    }
    ST_INC(rs, abuse_ops);
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
