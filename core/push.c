/*
 * core_push: writes device state into Redis per docs/state-contract.md.
 * See push.h for why this is the synchronous hiredis API.
 *
 * Pipelining: resync appends the commands of RESYNC_BATCH devices, then
 * reads their replies, so the socket always has work in flight and the
 * memory held for unread replies stays bounded.
 */
#include "core/push.h"

#include <hiredis/hiredis.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PUSH_DEFAULT_TIMEOUT_MS 2000
#define RESYNC_BATCH 512 /* devices per pipeline round trip */
#define SCAN_COUNT 1000  /* SCAN hint: keys per call */
#define KEY_MAX (sizeof(CORE_PUSH_KEY_PREFIX) + CORE_DEVID_MAX)

struct core_push {
    redisContext *c;
    struct core_push_opts o;
    char *host, *password;
    char err[256];
};

static int fail(struct core_push *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct core_push *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, sizeof(p->err), fmt, ap);
    va_end(ap);
    return CORE_PUSH_EREDIS;
}

/* The registry failed under a resync: not Redis's fault, say so. */
static int reg_fail(struct core_push *p, const char *what, int code)
{
    snprintf(p->err, sizeof(p->err), "resync: registry %s failed (%d)", what, code);
    return CORE_PUSH_EREG;
}

/* The connection is unusable after an I/O error: drop it so the next call reconnects. */
static int conn_fail(struct core_push *p, const char *what)
{
    fail(p, "redis %s:%d: %s: %s", p->host, p->o.port, what,
         p->c && p->c->err ? p->c->errstr : "no connection");
    if (p->c) {
        redisFree(p->c);
        p->c = NULL;
    }
    return CORE_PUSH_EREDIS;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run one command and check its reply is not an error. */
static int simple(struct core_push *p, const char *what, redisReply *r)
{
    if (!r)
        return conn_fail(p, what);
    int rc = r->type == REDIS_REPLY_ERROR ? fail(p, "redis %s: %s", what, r->str) : 0;
    freeReplyObject(r);
    return rc;
}

static int connect_now(struct core_push *p)
{
    struct timeval tv = {p->o.timeout_ms / 1000, (p->o.timeout_ms % 1000) * 1000};
    p->c = redisConnectWithTimeout(p->host, p->o.port, tv);
    if (!p->c || p->c->err)
        return conn_fail(p, "connect");
    if (redisSetTimeout(p->c, tv) != REDIS_OK)
        return conn_fail(p, "set timeout");
    if (p->password && simple(p, "AUTH", redisCommand(p->c, "AUTH %s", p->password)) < 0)
        return CORE_PUSH_EREDIS;
    if (p->o.db > 0 && simple(p, "SELECT", redisCommand(p->c, "SELECT %d", p->o.db)) < 0)
        return CORE_PUSH_EREDIS;
    p->err[0] = '\0';
    return 0;
}

int core_push_open(const struct core_push_opts *o, struct core_push **out, char *err, size_t errlen)
{
    *out = NULL;
    struct core_push *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return CORE_PUSH_EREDIS;
    }
    p->o = *o;
    if (p->o.timeout_ms <= 0)
        p->o.timeout_ms = PUSH_DEFAULT_TIMEOUT_MS;
    p->host = strdup(o->host ? o->host : "127.0.0.1");
    p->password = o->password ? strdup(o->password) : NULL;
    p->o.host = p->host;
    p->o.password = p->password;
    int rc = p->host && (p->password || !o->password) ? connect_now(p) : CORE_PUSH_EREDIS;
    if (rc < 0) {
        snprintf(err, errlen, "%s", p->err[0] ? p->err : "out of memory");
        core_push_close(p);
        return rc;
    }
    *out = p;
    return 0;
}

void core_push_close(struct core_push *p)
{
    if (!p)
        return;
    if (p->c)
        redisFree(p->c);
    free(p->host);
    free(p->password);
    free(p);
}

const char *core_push_error(const struct core_push *p)
{
    return p->err;
}

int core_push_reconnect(struct core_push *p)
{
    if (p->c) {
        redisFree(p->c);
        p->c = NULL;
    }
    return connect_now(p);
}

static int ensure(struct core_push *p)
{
    return p->c ? 0 : connect_now(p);
}

/* Queue HSET and PUBLISH for d (inside a MULTI the caller opened). */
static int append_device(struct core_push *p, const struct core_device *d)
{
    char key[KEY_MAX], msg[CORE_DEVID_MAX + 24];
    snprintf(key, sizeof(key), CORE_PUSH_KEY_PREFIX "%s", d->device_id);
    snprintf(msg, sizeof(msg), "%s %lld", d->device_id, (long long)d->version);
    if (redisAppendCommand(p->c, "HSET %s state %s user %s reason %s version %lld updated %lld",
                           key, compliance_state_name(d->state), d->user, d->reason,
                           (long long)d->version, (long long)d->updated_ms) != REDIS_OK ||
        redisAppendCommand(p->c, "PUBLISH %s %s", CORE_PUSH_CHANNEL, msg) != REDIS_OK)
        return conn_fail(p, "append");
    return 0;
}

/*
 * Read the replies of one MULTI block of n queued commands: +OK, n times
 * +QUEUED, then EXEC's array. An error anywhere fails the block.
 */
static int read_block(struct core_push *p, size_t n, const char *what)
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

int core_push_device(struct core_push *p, const struct core_device *d)
{
    int rc = ensure(p);
    if (rc < 0)
        return rc;
    if (redisAppendCommand(p->c, "MULTI") != REDIS_OK)
        return conn_fail(p, "append");
    if ((rc = append_device(p, d)) < 0)
        return rc;
    if (redisAppendCommand(p->c, "EXEC") != REDIS_OK)
        return conn_fail(p, "append");
    return read_block(p, 2, "state write");
}

int core_push_delete(struct core_push *p, const char *device_id, int64_t version)
{
    int rc = ensure(p);
    if (rc < 0)
        return rc;
    char key[KEY_MAX + 64], msg[CORE_DEVID_MAX + 64];
    snprintf(key, sizeof(key), CORE_PUSH_KEY_PREFIX "%s", device_id);
    snprintf(msg, sizeof(msg), "%s %lld", device_id, (long long)version);
    if (redisAppendCommand(p->c, "MULTI") != REDIS_OK ||
        redisAppendCommand(p->c, "DEL %s", key) != REDIS_OK ||
        redisAppendCommand(p->c, "PUBLISH %s %s", CORE_PUSH_CHANNEL, msg) != REDIS_OK ||
        redisAppendCommand(p->c, "EXEC") != REDIS_OK)
        return conn_fail(p, "append");
    return read_block(p, 2, "state delete");
}

/* ---- resync ------------------------------------------------------------- */

/*
 * Resync writes RESYNC_BATCH devices per MULTI/EXEC: every announcement is
 * still inside the same transaction as its hash, and Redis parses two
 * commands per device instead of four.
 */
struct resync {
    struct core_push *p;
    size_t queued; /* devices in the open MULTI */
    size_t written;
};

static int flush_batch(struct resync *rs)
{
    if (rs->queued == 0)
        return 0;
    if (redisAppendCommand(rs->p->c, "EXEC") != REDIS_OK)
        return conn_fail(rs->p, "append");
    int rc = read_block(rs->p, rs->queued * 2, "resync write");
    if (rc == 0)
        rs->written += rs->queued;
    rs->queued = 0;
    return rc;
}

static int resync_one(const struct core_device *d, void *arg)
{
    struct resync *rs = arg;
    if (rs->queued == 0 && redisAppendCommand(rs->p->c, "MULTI") != REDIS_OK)
        return conn_fail(rs->p, "append");
    int rc = append_device(rs->p, d);
    if (rc < 0)
        return rc;
    if (++rs->queued >= RESYNC_BATCH)
        return flush_batch(rs);
    return 0;
}

/* Remove the keys in one SCAN reply whose device the registry does not hold. */
static int sweep_keys(struct core_push *p, struct core_reg *reg, const redisReply *keys,
                      struct core_resync_stats *st)
{
    const size_t plen = sizeof(CORE_PUSH_KEY_PREFIX) - 1;
    for (size_t i = 0; i < keys->elements; i++) {
        const redisReply *k = keys->element[i];
        if (k->type != REDIS_REPLY_STRING || k->len < plen)
            continue;
        st->scanned++;
        const char *id = k->str + plen;
        char canon[CORE_DEVID_MAX + 1];
        /* A key that is not exactly the canonical form is never read by a proxy: stale. */
        bool keep = core_reg_devid(id, canon) == 0 && strcmp(canon, id) == 0;
        if (keep) {
            int e = core_reg_device_exists(reg, canon);
            if (e < 0)
                return reg_fail(p, "read", e);
            keep = e == 1;
        }
        if (keep)
            continue;
        int64_t v = 0;
        int vr = core_reg_next_version(reg, &v);
        if (vr < 0)
            return reg_fail(p, "write", vr);
        /* Announce with the raw key suffix so a proxy drops whatever it cached. */
        int rc = core_push_delete(p, id, v);
        if (rc < 0)
            return rc;
        st->removed++;
    }
    return 0;
}

static int sweep(struct core_push *p, struct core_reg *reg, struct core_resync_stats *st)
{
    char cursor[32] = "0";
    /* SCAN ends when the cursor comes back to 0; the bound only guards a misbehaving server. */
    for (long round = 0; round < 100000000L; round++) {
        redisReply *r = redisCommand(p->c, "SCAN %s MATCH %s* COUNT %d", cursor,
                                     CORE_PUSH_KEY_PREFIX, SCAN_COUNT);
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
        int rc = sweep_keys(p, reg, r->element[1], st);
        freeReplyObject(r);
        if (rc < 0)
            return rc;
        if (strcmp(cursor, "0") == 0)
            return 0;
    }
    return fail(p, "redis SCAN did not finish");
}

int core_push_resync(struct core_push *p, struct core_reg *reg, struct core_resync_stats *st)
{
    memset(st, 0, sizeof(*st));
    int64_t t0 = mono_ms();
    int rc = ensure(p);
    if (rc < 0)
        return rc;
    struct resync rs = {.p = p};
    /* rc: the callback's push error, or a CORE_REG_* error from reading. */
    rc = core_reg_device_foreach(reg, resync_one, &rs);
    if (rc == 0)
        rc = flush_batch(&rs);
    else if (p->c)
        core_push_reconnect(p); /* a half-sent MULTI must not linger on the connection */
    st->written = rs.written;
    st->write_ms = mono_ms() - t0;
    if (rc == 0)
        rc = sweep(p, reg, st);
    else if (rc != CORE_PUSH_EREDIS && rc != CORE_PUSH_EREG)
        rc = reg_fail(p, "read", rc);
    st->elapsed_ms = mono_ms() - t0;
    return rc;
}
