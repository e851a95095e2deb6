/*
 * rstore_push: the core's writes of device state into Redis, per
 * docs/state-contract.md (see rstore_push.h; rstore_sync.h says why they
 * block).
 *
 * Every state write is one small Lua script (PUSH_LUA) rather than a plain
 * HSET + PUBLISH: the run loop and the admin API each have an engine and a
 * connection of their own, so two writes of the same device can reach Redis
 * in either order. The script compares versions inside Redis, atomically,
 * so the older of two racing writes can never land last. It is loaded once
 * per connection (SCRIPT LOAD) and called by its SHA1 (EVALSHA); a server
 * that lost its script cache (restart behind our back, SCRIPT FLUSH) answers
 * NOSCRIPT and gets the body once (EVAL), which caches it again.
 *
 * Pipelining: resync appends the calls of RESYNC_BATCH devices, then reads
 * their replies, so the socket always has work in flight and the memory
 * held for unread replies stays bounded.
 */
#include "connectors/rstore_push.h"

#include "connectors/rstore_sync_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RESYNC_BATCH 512 /* devices per pipeline round trip */
#define SCAN_COUNT 1000  /* SCAN hint: keys per call */
#define KEY_MAX (sizeof(RSTORE_KEY_PREFIX) + RSTORE_DEVID_MAX)

/*
 * KEYS[1] the device hash; ARGV state, user, reason, version, updated,
 * channel, message, then the server role's fields wipe_kind, pk_epoch,
 * policy_key, provisioned (docs/state-contract.md). Versions are compared as decimal strings
 * (length, then bytes) because Lua numbers are doubles and lose integers above 2^53. A stored
 * version that is not a decimal number is treated as absent, so a damaged hash heals. Returns 0 =
 * Redis holds a newer version, nothing written; 1 = same version, fields rewritten, not announced
 * (a resync of an unchanged device: every proxy ignores an announcement of a version it holds); 2 =
 * written and announced.
 */
static const char PUSH_LUA[] =
    "local cur = redis.call('HGET', KEYS[1], '" RSTORE_F_VERSION "')\n"
    "local new = ARGV[4]\n"
    "local same = false\n"
    "if cur and string.match(cur, '^%d+$') then\n"
    "  cur = string.gsub(cur, '^0+', '')\n"
    "  if #cur > #new or (#cur == #new and cur > new) then return 0 end\n"
    "  same = cur == new\n"
    "end\n"
    "redis.call('HSET', KEYS[1], '" RSTORE_F_STATE "', ARGV[1], '" RSTORE_F_USER "', ARGV[2],\n"
    "           '" RSTORE_F_REASON "', ARGV[3], '" RSTORE_F_VERSION "', new,\n"
    "           '" RSTORE_F_UPDATED "', ARGV[5], '" RSTORE_F_WIPE_KIND "', ARGV[8],\n"
    "           '" RSTORE_F_PK_EPOCH "', ARGV[9], '" RSTORE_F_POLICY_KEY "', ARGV[10],\n"
    "           '" RSTORE_F_PROVISIONED "', ARGV[11])\n"
    "if same then return 1 end\n"
    "redis.call('PUBLISH', ARGV[6], ARGV[7])\n"
    "return 2\n";

/* What the script answered. */
enum push_outcome { PUSH_OLDER = 0, PUSH_SAME = 1, PUSH_ANNOUNCED = 2 };

#define SHA_HEX 40

struct rstore_push {
    redisContext *c;
    struct rstore_sync_opts o;
    char *host, *password;
    char sha[SHA_HEX + 1]; /* PUSH_LUA's SHA1, as SCRIPT LOAD answered */
    char err[256];
};

static int fail(struct rstore_push *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct rstore_push *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, sizeof(p->err), fmt, ap);
    va_end(ap);
    return RSTORE_EREDIS;
}

/* The resync's source failed: not Redis's fault, say so. */
static int src_fail(struct rstore_push *p, const struct rstore_resync_src *src, const char *what,
                    int code)
{
    snprintf(p->err, sizeof(p->err), "resync: %s %s failed (%d)", src->name ? src->name : "source",
             what, code);
    return RSTORE_ESOURCE;
}

/* The connection is unusable after an I/O error: drop it so the next call reconnects. */
static int conn_fail(struct rstore_push *p, const char *what)
{
    fail(p, "redis %s:%d: %s: %s", p->host, p->o.port, what,
         p->c && p->c->err ? p->c->errstr : "no connection");
    if (p->c) {
        redisFree(p->c);
        p->c = NULL;
    }
    return RSTORE_EREDIS;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* SCRIPT LOAD the version guard and remember its SHA1 for EVALSHA. */
static int load_script(struct rstore_push *p)
{
    redisReply *r = redisCommand(p->c, "SCRIPT LOAD %s", PUSH_LUA);
    if (!r)
        return conn_fail(p, "SCRIPT LOAD");
    int rc = 0;
    if (r->type == REDIS_REPLY_STRING && r->len == SHA_HEX)
        memcpy(p->sha, r->str, SHA_HEX + 1);
    else
        rc = fail(p,
                  "redis SCRIPT LOAD: %s (the core writes device states with a Lua script; "
                  "allow EVAL, EVALSHA and SCRIPT for its Redis user)",
                  r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    freeReplyObject(r);
    return rc;
}

static int connect_now(struct rstore_push *p)
{
    p->c = rs_sync_connect(&p->o, p->o.timeout_ms, p->err, sizeof(p->err));
    if (!p->c)
        return RSTORE_EREDIS;
    if (load_script(p) < 0)
        return RSTORE_EREDIS;
    p->err[0] = '\0';
    return 0;
}

int rstore_push_open(const struct rstore_sync_opts *o, struct rstore_push **out, char *err,
                     size_t errlen)
{
    *out = NULL;
    struct rstore_push *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return RSTORE_ENOMEM;
    }
    p->o = *o;
    if (p->o.timeout_ms <= 0)
        p->o.timeout_ms = RSTORE_SYNC_TIMEOUT_MS;
    p->host = strdup(o->host ? o->host : "127.0.0.1");
    p->password = o->password ? strdup(o->password) : NULL;
    p->o.host = p->host;
    p->o.password = p->password;
    int rc = p->host && (p->password || !o->password) ? connect_now(p) : RSTORE_ENOMEM;
    if (rc < 0) {
        snprintf(err, errlen, "%s", p->err[0] ? p->err : "out of memory");
        rstore_push_close(p);
        return rc;
    }
    *out = p;
    return 0;
}

void rstore_push_close(struct rstore_push *p)
{
    if (!p)
        return;
    if (p->c)
        redisFree(p->c);
    free(p->host);
    free(p->password);
    free(p);
}

const char *rstore_push_error(const struct rstore_push *p)
{
    return p->err;
}

int rstore_push_reconnect(struct rstore_push *p)
{
    if (p->c) {
        redisFree(p->c);
        p->c = NULL;
    }
    return connect_now(p);
}

static int ensure(struct rstore_push *p)
{
    return p->c ? 0 : connect_now(p);
}

/* Queue the guarded write of d: EVALSHA, or EVAL with the body when eval is set. */
static int append_device(struct rstore_push *p, const struct rstore_dev *d, bool eval)
{
    char key[KEY_MAX], msg[RSTORE_DEVID_MAX + 24];
    snprintf(key, sizeof(key), RSTORE_KEY_PREFIX "%s", d->device_id);
    snprintf(msg, sizeof(msg), "%s %lld", d->device_id, (long long)d->version);
    if (redisAppendCommand(
            p->c, "%s %s 1 %s %s %s %s %lld %lld %s %s %s %lld %lu %lld", eval ? "EVAL" : "EVALSHA",
            eval ? PUSH_LUA : p->sha, key, rstore_state_name(d->state), d->user, d->reason,
            (long long)d->version, (long long)d->updated_ms, RSTORE_CHANNEL, msg,
            d->wipe_account ? RSTORE_WIPE_ACCOUNT : RSTORE_WIPE_FULL, (long long)d->pk_epoch,
            (unsigned long)d->policy_key, (long long)d->provisioned_ms) != REDIS_OK)
        return conn_fail(p, "append");
    return 0;
}

static bool is_noscript(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/*
 * Check one script reply: its outcome (enum push_outcome), a failure, or
 * OUTCOME_NOSCRIPT when the caller should send the body instead.
 */
#define OUTCOME_NOSCRIPT 1000
static int outcome(struct rstore_push *p, const redisReply *r, const char *what)
{
    if (is_noscript(r))
        return OUTCOME_NOSCRIPT;
    if (r->type == REDIS_REPLY_ERROR)
        return fail(p, "redis %s: %s", what, r->str);
    if (r->type != REDIS_REPLY_INTEGER || r->integer < PUSH_OLDER || r->integer > PUSH_ANNOUNCED)
        return fail(p, "redis %s: unexpected reply from the state script", what);
    return (int)r->integer;
}

/* Send one guarded write and wait for its outcome. */
static int write_one(struct rstore_push *p, const struct rstore_dev *d, bool eval)
{
    int rc = append_device(p, d, eval);
    if (rc < 0)
        return rc;
    redisReply *r = NULL;
    if (redisGetReply(p->c, (void **)&r) != REDIS_OK || !r)
        return conn_fail(p, "state write");
    rc = outcome(p, r, "state write");
    freeReplyObject(r);
    return rc;
}

int rstore_push_write(struct rstore_push *p, const struct rstore_dev *d)
{
    int rc = ensure(p);
    if (rc < 0)
        return rc;
    rc = write_one(p, d, false);
    if (rc == OUTCOME_NOSCRIPT) /* the server forgot the script: EVAL caches it again */
        rc = write_one(p, d, true);
    if (rc == OUTCOME_NOSCRIPT)
        return fail(p, "redis state write: NOSCRIPT after EVAL");
    if (rc < 0)
        return rc;
    return rc == PUSH_OLDER ? RSTORE_PUSH_OLDER : 0;
}

/*
 * Read the replies of one MULTI block of n queued commands: +OK, n times
 * +QUEUED, then EXEC's array. An error anywhere fails the block.
 */
static int read_block(struct rstore_push *p, size_t n, const char *what)
{
    int rc = 0;
    for (size_t i = 0; i < n + 2; i++) {
        redisReply *r = NULL;
        if (redisGetReply(p->c, (void **)&r) != REDIS_OK || !r)
            return conn_fail(p, what);
        if (rc == 0 && r->type == REDIS_REPLY_ERROR)
            rc = fail(p, "redis %s: %s", what, r->str);
        else if (rc == 0 && i == n + 1 && r->type != REDIS_REPLY_ARRAY)
            rc = fail(p, "redis %s: transaction aborted", what);
        freeReplyObject(r);
    }
    return rc;
}

int rstore_push_delete(struct rstore_push *p, const char *device_id, int64_t version)
{
    int rc = ensure(p);
    if (rc < 0)
        return rc;
    char key[KEY_MAX + 64], msg[RSTORE_DEVID_MAX + 64];
    snprintf(key, sizeof(key), RSTORE_KEY_PREFIX "%s", device_id);
    snprintf(msg, sizeof(msg), "%s %lld", device_id, (long long)version);
    if (redisAppendCommand(p->c, "MULTI") != REDIS_OK ||
        redisAppendCommand(p->c, "DEL %s", key) != REDIS_OK ||
        redisAppendCommand(p->c, "PUBLISH %s %s", RSTORE_CHANNEL, msg) != REDIS_OK ||
        redisAppendCommand(p->c, "EXEC") != REDIS_OK)
        return conn_fail(p, "append");
    return read_block(p, 2, "state delete");
}

/* ---- resync ------------------------------------------------------------- */

/*
 * Resync pipelines RESYNC_BATCH guarded writes at a time. Each is atomic on
 * its own (a script runs alone), so no MULTI is needed; the batch opens
 * with a SCRIPT LOAD so that a script cache lost since the connection was
 * made is refilled before the EVALSHAs that follow it. The guard is what
 * makes a resync safe beside a live engine: a device changed by the other
 * engine while the resync read the registry keeps its newer hash.
 */
struct resync {
    struct rstore_push *p;
    size_t queued; /* writes in flight */
    int put_rc;    /* a write failed: what each() returns is ours, not the source's */
    struct rstore_resync_stats *st;
};

static int flush_batch(struct resync *rs)
{
    struct rstore_push *p = rs->p;
    if (rs->queued == 0)
        return 0;
    int rc = 0;
    for (size_t i = 0; i < rs->queued + 1; i++) {
        redisReply *r = NULL;
        if (redisGetReply(p->c, (void **)&r) != REDIS_OK || !r)
            return conn_fail(p, "resync write");
        if (i == 0) {
            if (r->type == REDIS_REPLY_ERROR && rc == 0)
                rc = fail(p, "redis resync SCRIPT LOAD: %s", r->str);
            freeReplyObject(r);
            continue;
        }
        int o = outcome(p, r, "resync write");
        freeReplyObject(r);
        if (rc < 0)
            continue; /* read every reply so the connection stays in step */
        if (o == OUTCOME_NOSCRIPT)
            rc = fail(p, "redis resync write: NOSCRIPT (script cache flushed during resync)");
        else if (o < 0)
            rc = o;
        else if (o == PUSH_OLDER)
            rs->st->newer++;
        else
            rs->st->written++;
        if (o == PUSH_ANNOUNCED)
            rs->st->announced++;
    }
    rs->queued = 0;
    return rc;
}

static int resync_put(const struct rstore_dev *d, void *arg)
{
    struct resync *rs = arg;
    int rc = 0;
    if (rs->queued == 0 && redisAppendCommand(rs->p->c, "SCRIPT LOAD %s", PUSH_LUA) != REDIS_OK)
        rc = conn_fail(rs->p, "append");
    if (rc == 0)
        rc = append_device(rs->p, d, false);
    if (rc == 0 && ++rs->queued >= RESYNC_BATCH)
        rc = flush_batch(rs);
    rs->put_rc = rc;
    return rc;
}

/* Remove the keys in one SCAN reply whose device the source does not hold. */
static int sweep_keys(struct rstore_push *p, const struct rstore_resync_src *src,
                      const redisReply *keys, struct rstore_resync_stats *st)
{
    const size_t plen = sizeof(RSTORE_KEY_PREFIX) - 1;
    for (size_t i = 0; i < keys->elements; i++) {
        const redisReply *k = keys->element[i];
        if (k->type != REDIS_REPLY_STRING || k->len < plen)
            continue;
        st->scanned++;
        const char *id = k->str + plen;
        char canon[RSTORE_DEVID_MAX + 1];
        /* A key that is not exactly the canonical form is never read by a proxy: stale. */
        bool keep = rstore_devid_norm(id, strlen(id), canon) >= 0 && strcmp(canon, id) == 0;
        if (keep) {
            int e = src->exists(src->arg, canon);
            if (e < 0)
                return src_fail(p, src, "read", e);
            keep = e == 1;
        }
        if (keep)
            continue;
        int64_t v = 0;
        int vr = src->next_version(src->arg, &v);
        if (vr < 0)
            return src_fail(p, src, "write", vr);
        /* Announce with the raw key suffix so a proxy drops whatever it cached. */
        int rc = rstore_push_delete(p, id, v);
        if (rc < 0)
            return rc;
        st->removed++;
    }
    return 0;
}

static int sweep(struct rstore_push *p, const struct rstore_resync_src *src,
                 struct rstore_resync_stats *st)
{
    char cursor[32] = "0";
    /* SCAN ends when the cursor comes back to 0; the bound only guards a misbehaving server. */
    for (long round = 0; round < 100000000L; round++) {
        redisReply *r =
            redisCommand(p->c, "SCAN %s MATCH %s* COUNT %d", cursor, RSTORE_KEY_PREFIX, SCAN_COUNT);
        if (!r)
            return conn_fail(p, "SCAN");
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
            int rc = fail(p, "redis SCAN: unexpected reply%s%s",
                          r->type == REDIS_REPLY_ERROR ? ": " : "",
                          r->type == REDIS_REPLY_ERROR ? r->str : "");
            freeReplyObject(r);
            return rc;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        int rc = sweep_keys(p, src, r->element[1], st);
        freeReplyObject(r);
        if (rc < 0)
            return rc;
        if (strcmp(cursor, "0") == 0)
            return 0;
    }
    return fail(p, "redis SCAN did not finish");
}

int rstore_push_resync(struct rstore_push *p, const struct rstore_resync_src *src,
                       struct rstore_resync_stats *st)
{
    memset(st, 0, sizeof(*st));
    int64_t t0 = mono_ms();
    int rc = ensure(p);
    if (rc < 0)
        return rc;
    struct resync rs = {.p = p, .st = st};
    /* rc: a write's error (rs.put_rc), or the source's own from reading. */
    rc = src->each(src->arg, resync_put, &rs);
    if (rc == 0)
        rc = flush_batch(&rs);
    else if (p->c)
        rstore_push_reconnect(p); /* unread replies must not linger on the connection */
    st->write_ms = mono_ms() - t0;
    if (rc == 0)
        rc = sweep(p, src, st);
    else if (rs.put_rc == 0)
        rc = src_fail(p, src, "read", rc);
    st->elapsed_ms = mono_ms() - t0;
    return rc;
}
