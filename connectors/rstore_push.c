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
 * Resync at a million devices (a few seconds, docs/core.md "Scale"): each
 * device's hash is read first (an HGETALL, CHECK_ROUND devices per pipelined
 * round, ROUNDS_OPEN rounds in flight) and only those that differ from the registry
 * are written, by RESYNC_LUA, RESYNC_PER_CALL devices a call (the same
 * guarded write for each, so the version rule is the one of PUSH_LUA). The
 * sweep that follows checks each key against the DeviceIds the rewrite just
 * read (their 64-bit hashes, in a set: 16 bytes a device) and asks the
 * registry only about keys it did not see.
 */
#include "connectors/rstore_push.h"

#include "connectors/rstore_sync_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RESYNC_PER_CALL 64 /* devices per script call */
#define CHECK_ROUND 2048   /* devices per pipelined round of reads */
#define SCAN_COUNT 10000   /* SCAN hint: keys per call */
#define KEY_MAX (sizeof(RSTORE_KEY_PREFIX) + RSTORE_DEVID_MAX)

/*
 * KEYS[1] the device hash; ARGV state, user, reason, version, updated,
 * channel, message, then the server role's fields wipe_kind, pk_epoch,
 * policy_key, provisioned, and the portal binding's enrollment (docs/state-contract.md). Versions
 * are compared as decimal strings (length, then bytes) because Lua numbers are doubles and lose
 * integers above 2^53. A stored version that is not a decimal number is treated as absent, so a
 * damaged hash heals. Returns 0 = Redis holds a newer version, nothing written; 1 = same version,
 * fields rewritten, not announced (a resync of an unchanged device: every proxy ignores an
 * announcement of a version it holds); 2 = written and announced.
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
    "           '" RSTORE_F_PROVISIONED "', ARGV[11], '" RSTORE_F_ENROLLMENT "', ARGV[12])\n"
    "if same then return 1 end\n"
    "redis.call('PUBLISH', ARGV[6], ARGV[7])\n"
    "return 2\n";

/*
 * The same guarded write for many devices in one call: KEYS the hashes,
 * ARGV[1] the channel, then per device eleven values (state, user, reason,
 * version, updated, wipe_kind, pk_epoch, policy_key, provisioned, the
 * announcement, enrollment). Returns one digit per device, PUSH_LUA's outcomes.
 */
static const char RESYNC_LUA[] =
    "local out = {}\n"
    "for i = 1, #KEYS do\n"
    "  local b = 1 + (i - 1) * 11\n"
    "  local new = ARGV[b + 4]\n"
    "  local cur = redis.call('HGET', KEYS[i], '" RSTORE_F_VERSION "')\n"
    "  local r = 2\n"
    "  if cur and string.match(cur, '^%d+$') then\n"
    "    cur = string.gsub(cur, '^0+', '')\n"
    "    if #cur > #new or (#cur == #new and cur > new) then r = 0\n"
    "    elseif cur == new then r = 1 end\n"
    "  end\n"
    "  if r > 0 then\n"
    "    redis.call('HSET', KEYS[i], '" RSTORE_F_STATE "', ARGV[b + 1], '" RSTORE_F_USER
    "', ARGV[b + 2],\n"
    "      '" RSTORE_F_REASON "', ARGV[b + 3], '" RSTORE_F_VERSION "', new, '" RSTORE_F_UPDATED
    "', ARGV[b + 5],\n"
    "      '" RSTORE_F_WIPE_KIND "', ARGV[b + 6], '" RSTORE_F_PK_EPOCH "', ARGV[b + 7],\n"
    "      '" RSTORE_F_POLICY_KEY "', ARGV[b + 8], '" RSTORE_F_PROVISIONED "', ARGV[b + 9],\n"
    "      '" RSTORE_F_ENROLLMENT "', ARGV[b + 11])\n"
    "    if r == 2 then redis.call('PUBLISH', ARGV[1], ARGV[b + 10]) end\n"
    "  end\n"
    "  out[i] = r\n"
    "end\n"
    "return table.concat(out)\n";

/* What the script answered. */
enum push_outcome { PUSH_OLDER = 0, PUSH_SAME = 1, PUSH_ANNOUNCED = 2 };

#define SHA_HEX 40

struct rstore_push {
    redisContext *c;
    struct rstore_sync_opts o;
    char *host, *password;
    char sha[SHA_HEX + 1];        /* PUSH_LUA's SHA1, as SCRIPT LOAD answered */
    char resync_sha[SHA_HEX + 1]; /* RESYNC_LUA's */
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

/* SCRIPT LOAD one script and remember its SHA1 for EVALSHA. */
static int load_one(struct rstore_push *p, const char *body, char *sha)
{
    redisReply *r = redisCommand(p->c, "SCRIPT LOAD %s", body);
    if (!r)
        return conn_fail(p, "SCRIPT LOAD");
    int rc = 0;
    if (r->type == REDIS_REPLY_STRING && r->len == SHA_HEX)
        memcpy(sha, r->str, SHA_HEX + 1);
    else
        rc = fail(p,
                  "redis SCRIPT LOAD: %s (the core writes device states with a Lua script; "
                  "allow EVAL, EVALSHA and SCRIPT for its Redis user)",
                  r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    freeReplyObject(r);
    return rc;
}

/* The version guard, single and batched. */
static int load_script(struct rstore_push *p)
{
    int rc = load_one(p, PUSH_LUA, p->sha);
    return rc < 0 ? rc : load_one(p, RESYNC_LUA, p->resync_sha);
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
            p->c, "%s %s 1 %s %s %s %s %lld %lld %s %s %s %lld %lu %lld %s",
            eval ? "EVAL" : "EVALSHA", eval ? PUSH_LUA : p->sha, key, rstore_state_name(d->state),
            d->user, d->reason, (long long)d->version, (long long)d->updated_ms, RSTORE_CHANNEL,
            msg, d->wipe_account ? RSTORE_WIPE_ACCOUNT : RSTORE_WIPE_FULL, (long long)d->pk_epoch,
            (unsigned long)d->policy_key, (long long)d->provisioned_ms,
            d->enrollment ? d->enrollment : "") != REDIS_OK)
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

int rstore_push_write_many(struct rstore_push *p, const struct rstore_dev *d, size_t n, int *out)
{
    int rc = ensure(p);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        if ((rc = append_device(p, &d[i], false)) < 0)
            return rc;
    /* Every reply is read, whatever it says, or the next command would get
     * the rest; a NOSCRIPT (the server forgot the script) is written again
     * with the body, one by one, after the others. */
    int err = 0;
    for (size_t i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(p->c, (void **)&r) != REDIS_OK || !r)
            return conn_fail(p, "state write");
        int o = err ? 0 : outcome(p, r, "state write");
        freeReplyObject(r);
        if (o < 0)
            err = o;
        out[i] = o;
    }
    if (err)
        return err;
    for (size_t i = 0; i < n; i++) {
        if (out[i] == OUTCOME_NOSCRIPT)
            out[i] = write_one(p, &d[i], true);
        if (out[i] == OUTCOME_NOSCRIPT)
            return fail(p, "redis state write: NOSCRIPT after EVAL");
        if (out[i] < 0)
            return out[i];
        out[i] = out[i] == PUSH_OLDER ? RSTORE_PUSH_OLDER : 0;
    }
    return 0;
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

int rstore_push_enrollment(struct rstore_push *p, const char *enrollment, const char *user,
                           const char *device_id, int64_t version)
{
    int rc = ensure(p);
    if (rc < 0)
        return rc;
    char key[sizeof(RSTORE_ENR_PREFIX) + RSTORE_ENRID_MAX + 1], msg[RSTORE_ENRID_MAX + 32], ver[24];
    snprintf(key, sizeof(key), RSTORE_ENR_PREFIX "%.*s", RSTORE_ENRID_MAX, enrollment);
    snprintf(msg, sizeof(msg), "%c%.*s %lld", RSTORE_ENR_MARK, RSTORE_ENRID_MAX, enrollment,
             (long long)version);
    snprintf(ver, sizeof(ver), "%lld", (long long)version);
    if (redisAppendCommand(p->c, "MULTI") != REDIS_OK ||
        redisAppendCommand(p->c, "HSET %s %s allow %s %s %s %s %s %s %s %s", key, RSTORE_F_STATE,
                           RSTORE_F_USER, user ? user : "", RSTORE_F_DEVICE,
                           device_id ? device_id : "", RSTORE_F_VERSION, ver, RSTORE_F_UPDATED,
                           ver) != REDIS_OK ||
        redisAppendCommand(p->c, "PUBLISH %s %s", RSTORE_CHANNEL, msg) != REDIS_OK ||
        redisAppendCommand(p->c, "EXEC") != REDIS_OK)
        return conn_fail(p, "append");
    return read_block(p, 2, "enrollment write");
}

/* ---- resync ------------------------------------------------------------- */

/* After a failure with replies still due: a fresh connection, the failure's
 * text kept for the caller. */
static void drop_unread(struct rstore_push *p)
{
    char err[sizeof(p->err)];
    memcpy(err, p->err, sizeof(err));
    rstore_push_reconnect(p);
    memcpy(p->err, err, sizeof(err));
}

/*
 * Read first, write what differs. A round of CHECK_ROUND devices goes out as
 * one HGETALL per device, formatted here straight into the protocol (one
 * append per round). When its replies come back, a device whose hash holds
 * exactly the values the registry would write in the contract's ten fields
 * is done: nothing is sent for it (the script would rewrite the same bytes
 * and announce nothing). Every other device (absent, older, newer, different
 * or missing in any field, or a reply that is not a hash's) goes to the
 * guarded script, so what a resync may change and what it announces is
 * decided by the same rule as before, inside Redis, atomically per device:
 * the read only saves the writes that would change nothing. ROUNDS_OPEN
 * rounds are in flight: the next are formatted and sent while Redis answers
 * the oldest (with two, Redis waited for the CLI a quarter of the time).
 *
 * Why: at a million devices the rewrite of unchanged hashes was most of
 * Redis's work (an HGET and an HSET of eleven fields each, inside Lua), and
 * an intact Redis (a start, a resync after a short outage) is the common
 * case. HGETALL rather than HMGET of the ten fields: Redis parses two
 * arguments instead of twelve and walks the small hash once instead of
 * looking up ten fields, about a fifth less of its CPU for the read, for
 * twice the reply bytes (compared as they are parsed, see struct cmp).
 * Measured and dropped: the comparison inside one Lua script per batch
 * (no reply per device at all) cost Redis nearly twice as much, every
 * value becoming a Lua string.
 *
 * When most of a round differs (a flushed Redis, a rules change), the next
 * rounds are sent to the script without reading (resync.direct), until a
 * round written so finds mostly the same versions in place again: reading
 * a million absent hashes only to write them all costs both sides time.
 *
 * The writes: devices gather in a call of RESYNC_PER_CALL; the calls a
 * round gives are sent together, opened by a SCRIPT LOAD so that a script
 * cache lost since the connection was made is refilled before the EVALSHAs
 * behind it.
 */
#define ARGS_PER_DEV 11
#define ARGS_MAX (4 + RESYNC_PER_CALL * (1 + ARGS_PER_DEV))
#define DEV_TEXT 640  /* one device's values, as text */
#define N_CHECKED 10  /* fields a round compares */
#define ROUNDS_OPEN 4 /* rounds in flight */
#define GROUPS_MAX 16 /* reply groups in flight: the rounds and their writes */

/* One device: its key and eleven values (the script's order), as text. */
struct dev_args {
    char buf[DEV_TEXT];
    const char *v[1 + ARGS_PER_DEV];
    size_t l[1 + ARGS_PER_DEV];
};

/* The hash fields a round compares, and the value (dev_args.v index) each must equal. */
static const char *const checked_field[N_CHECKED] = {
    RSTORE_F_STATE,       RSTORE_F_USER,      RSTORE_F_REASON,   RSTORE_F_VERSION,
    RSTORE_F_UPDATED,     RSTORE_F_WIPE_KIND, RSTORE_F_PK_EPOCH, RSTORE_F_POLICY_KEY,
    RSTORE_F_PROVISIONED, RSTORE_F_ENROLLMENT};
static const int checked_value[N_CHECKED] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 11};

struct round {
    size_t n;
    struct dev_args dev[CHECK_ROUND];
};

/* What the replies on the connection answer, oldest first. */
struct group {
    bool read;  /* a round's HGETALLs (slot), else a SCRIPT LOAD and `calls` script calls */
    bool round; /* writes sent for a whole round without reading it (resync.direct) */
    int slot;
    size_t calls;
};

struct resync {
    struct rstore_push *p;
    struct round *slot[ROUNDS_OPEN];
    int fill;  /* the slot being filled */
    char *out; /* a round's HGETALLs, formatted */
    size_t out_cap;
    struct group q[GROUPS_MAX];
    size_t q_head, q_len, reads_open; /* reads_open: rounds in flight, read or direct */
    bool direct; /* write rounds without reading first: most hashes were found to differ */
    /* the call being gathered, and the calls of the group being built */
    const struct dev_args *call[RESYNC_PER_CALL];
    int ndev;
    size_t calls_in_group;
    const char *argv[ARGS_MAX];
    size_t argl[ARGS_MAX];
    int put_rc; /* a write failed: what each() returns is ours, not the source's */
    struct rstore_resync_stats *st;
    /* what the rewrite saw, for the sweep */
    uint64_t *seen;
    size_t n_seen, cap_seen;
};

static uint64_t id_hash(const char *id, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)id[i]) * 1099511628211ULL;
    return h;
}

static void q_push(struct resync *rs, struct group g)
{
    rs->q[(rs->q_head + rs->q_len++) % GROUPS_MAX] = g;
}

/*
 * Read the replies of a write group: a SCRIPT LOAD, then its calls. A round
 * written without reading (round) whose hashes mostly held the same
 * version already turns reading first back on.
 */
static int read_writes(struct resync *rs, size_t calls, bool round)
{
    struct rstore_push *p = rs->p;
    int rc = 0;
    size_t same = 0, all = 0;
    for (size_t i = 0; i < calls + 1; i++) {
        redisReply *r = NULL;
        if (redisGetReply(p->c, (void **)&r) != REDIS_OK || !r)
            return conn_fail(p, "resync write");
        if (i == 0) {
            if (r->type == REDIS_REPLY_ERROR && rc == 0)
                rc = fail(p, "redis resync SCRIPT LOAD: %s", r->str);
        } else if (rc == 0) {
            if (is_noscript(r))
                rc = fail(p, "redis resync write: NOSCRIPT (script cache flushed during resync)");
            else if (r->type == REDIS_REPLY_ERROR)
                rc = fail(p, "redis resync write: %s", r->str);
            else if (r->type != REDIS_REPLY_STRING)
                rc = fail(p, "redis resync write: unexpected reply from the state script");
            else
                for (size_t k = 0; k < r->len; k++) {
                    char o = r->str[k];
                    same += o == '0' + PUSH_SAME;
                    all++;
                    if (o == '0' + PUSH_OLDER)
                        rs->st->newer++;
                    else
                        rs->st->written++;
                    if (o == '0' + PUSH_ANNOUNCED)
                        rs->st->announced++;
                }
        }
        freeReplyObject(r); /* every reply is read, so the connection stays in step */
    }
    if (round && same * 4 > all)
        rs->direct = false;
    return rc;
}

/* Send the gathered call: [EVALSHA sha n key1..keyN channel values1..valuesN]. */
static int send_call(struct resync *rs)
{
    struct rstore_push *p = rs->p;
    if (!rs->ndev)
        return 0;
    if (rs->calls_in_group == 0 &&
        redisAppendCommand(p->c, "SCRIPT LOAD %s", RESYNC_LUA) != REDIS_OK)
        return conn_fail(p, "append");
    char nk[16];
    int n = rs->ndev, a = 0;
    snprintf(nk, sizeof(nk), "%d", n);
    rs->argv[a] = "EVALSHA";
    rs->argl[a++] = 7;
    rs->argv[a] = p->resync_sha;
    rs->argl[a++] = SHA_HEX;
    rs->argv[a] = nk;
    rs->argl[a++] = strlen(nk);
    for (int i = 0; i < n; i++) {
        rs->argv[a] = rs->call[i]->v[0];
        rs->argl[a++] = rs->call[i]->l[0];
    }
    rs->argv[a] = RSTORE_CHANNEL;
    rs->argl[a++] = sizeof(RSTORE_CHANNEL) - 1;
    for (int i = 0; i < n; i++)
        for (int k = 1; k <= ARGS_PER_DEV; k++) {
            rs->argv[a] = rs->call[i]->v[k];
            rs->argl[a++] = rs->call[i]->l[k];
        }
    if (redisAppendCommandArgv(p->c, a, rs->argv, rs->argl) != REDIS_OK)
        return conn_fail(p, "append");
    rs->calls_in_group++;
    rs->ndev = 0;
    return 0;
}

/*
 * The replies of a round are compared as hiredis parses them, not built into
 * reply objects first: a million HGETALL replies would be twenty-three
 * million small allocations and frees (eleven million for the HMGETs before
 * them were a large share of the CLI's time). The reader's object functions
 * (hiredis's own hook for this) are swapped for the round's replies only;
 * every "object" they return is the address of `cmp`, which nobody frees.
 * A device is equal when every one of the ten fields is there with exactly
 * the registry's value (fields the contract does not name are ignored, as
 * the proxy ignores them); nil, an error (a key that is not a hash) and any
 * other shape mean "differs", and the guarded script decides.
 */
struct cmp {
    const struct dev_args *x; /* the device whose reply is being parsed */
    bool same;
    int field;     /* the checked field whose value comes next, -1 = another */
    unsigned seen; /* the checked fields met, a bit each */
};

/* Which checked field a name is (-1: none); fields are usually in the
 * order the script writes them, so guess that first. */
static int field_index(const char *s, size_t n, size_t guess)
{
    if (guess < N_CHECKED && strlen(checked_field[guess]) == n &&
        memcmp(checked_field[guess], s, n) == 0)
        return (int)guess;
    for (int i = 0; i < N_CHECKED; i++)
        if (strlen(checked_field[i]) == n && memcmp(checked_field[i], s, n) == 0)
            return i;
    return -1;
}

static void *cmp_string(const redisReadTask *t, char *s, size_t n)
{
    struct cmp *c = t->privdata;
    if (t->type != REDIS_REPLY_STRING || !t->parent || t->parent->parent) {
        c->same = false;
    } else if (!(t->idx & 1)) {
        c->field = field_index(s, n, (size_t)t->idx / 2);
    } else if (c->field >= 0) {
        size_t l = c->x->l[checked_value[c->field]];
        if (n != l || memcmp(s, c->x->v[checked_value[c->field]], l) != 0)
            c->same = false;
        c->seen |= 1u << c->field;
    }
    return c;
}

static void *cmp_array(const redisReadTask *t, int n)
{
    struct cmp *c = t->privdata;
    if (t->parent || n % 2)
        c->same = false;
    return c;
}

static void *cmp_integer(const redisReadTask *t, long long v)
{
    (void)v;
    struct cmp *c = t->privdata;
    c->same = false;
    return c;
}

static void *cmp_nil(const redisReadTask *t)
{
    struct cmp *c = t->privdata;
    c->same = false;
    return c;
}

static void cmp_free(void *o)
{
    (void)o; /* nothing was allocated */
}

static redisReplyObjectFunctions cmp_fns = {cmp_string, cmp_array, cmp_integer, cmp_nil, cmp_free};

/* Read a round's replies; the devices that differ are written (a group of calls). */
static int check_round(struct resync *rs, int slot)
{
    struct rstore_push *p = rs->p;
    struct round *rd = rs->slot[slot];
    redisReader *rdr = p->c->reader;
    redisReplyObjectFunctions *fns = rdr->fn;
    void *priv = rdr->privdata;
    struct cmp cmp;
    rdr->fn = &cmp_fns;
    rdr->privdata = &cmp;
    int rc = 0;
    size_t differ = 0;
    for (size_t i = 0; i < rd->n; i++) {
        cmp.x = &rd->dev[i];
        cmp.same = true;
        cmp.field = -1;
        cmp.seen = 0;
        void *r = NULL;
        if (redisGetReply(p->c, &r) != REDIS_OK || !r) {
            rdr->fn = fns;
            rdr->privdata = priv;
            return conn_fail(p, "resync read");
        }
        if (cmp.same && cmp.seen == (1u << N_CHECKED) - 1) {
            rs->st->written++;
            rs->st->unchanged++;
            continue;
        }
        differ++;
        rs->call[rs->ndev++] = &rd->dev[i];
        if (rs->ndev == RESYNC_PER_CALL && (rc = send_call(rs)) < 0)
            break; /* the connection is gone: the resync stops */
    }
    /* Most differ (a flushed Redis, a rules change): the next rounds skip the read. */
    if (differ * 4 > rd->n * 3)
        rs->direct = true;
    if (p->c) {
        rdr->fn = fns;
        rdr->privdata = priv;
    }
    if (rc < 0)
        return rc;
    rc = send_call(rs);
    rd->n = 0;
    if (rs->calls_in_group) /* appended now: the slot's texts may be reused */
        q_push(rs, (struct group){.read = false, .calls = rs->calls_in_group});
    rs->calls_in_group = 0;
    return rc;
}

/* Read the oldest group of replies. */
static int read_group(struct resync *rs)
{
    struct group g = rs->q[rs->q_head];
    rs->q_head = (rs->q_head + 1) % GROUPS_MAX;
    rs->q_len--;
    if (g.round)
        rs->reads_open--;
    if (!g.read)
        return read_writes(rs, g.calls, g.round);
    rs->reads_open--;
    return check_round(rs, g.slot);
}

static size_t put_len(char *o, size_t n)
{
    char t[24];
    int k = 0;
    do
        t[k++] = (char)('0' + n % 10);
    while ((n /= 10) > 0);
    for (int i = 0; i < k; i++)
        o[i] = t[k - 1 - i];
    return (size_t)k;
}

/* Send the filled slot's devices to the script, without reading them first. */
static int send_direct(struct resync *rs)
{
    struct round *rd = rs->slot[rs->fill];
    int rc = 0;
    for (size_t i = 0; i < rd->n && rc == 0; i++) {
        rs->call[rs->ndev++] = &rd->dev[i];
        if (rs->ndev == RESYNC_PER_CALL)
            rc = send_call(rs);
    }
    if (rc == 0)
        rc = send_call(rs);
    if (rc < 0)
        return rc;
    rd->n = 0; /* appended: the texts may be reused */
    q_push(rs, (struct group){.read = false, .round = true, .calls = rs->calls_in_group});
    rs->calls_in_group = 0;
    return 0;
}

/* Send the filled slot's HGETALLs (or, direct, its writes); once
 * ROUNDS_OPEN rounds are out, read the oldest. */
static int send_round(struct resync *rs)
{
    struct rstore_push *p = rs->p;
    struct round *rd = rs->slot[rs->fill];
    if (!rd->n)
        return 0;
    if (rs->direct) {
        int rc = send_direct(rs);
        if (rc < 0)
            return rc;
        rs->reads_open++;
        rs->fill = (rs->fill + 1) % ROUNDS_OPEN;
        while (rc == 0 && rs->reads_open == ROUNDS_OPEN)
            rc = read_group(rs);
        return rc;
    }
    size_t at = 0;
    for (size_t i = 0; i < rd->n; i++) {
        const struct dev_args *x = &rd->dev[i];
        static const char head[] = "*2\r\n$7\r\nHGETALL\r\n$";
        memcpy(rs->out + at, head, sizeof(head) - 1);
        at += sizeof(head) - 1;
        at += put_len(rs->out + at, x->l[0]);
        rs->out[at++] = '\r';
        rs->out[at++] = '\n';
        memcpy(rs->out + at, x->v[0], x->l[0]);
        at += x->l[0];
        rs->out[at++] = '\r';
        rs->out[at++] = '\n';
    }
    if (redisAppendFormattedCommand(p->c, rs->out, at) != REDIS_OK)
        return conn_fail(p, "append");
    q_push(rs, (struct group){.read = true, .slot = rs->fill});
    rs->reads_open++;
    rs->fill = (rs->fill + 1) % ROUNDS_OPEN;
    int rc = 0;
    /* All rounds out: read up to the oldest (its slot is the next to fill). */
    while (rc == 0 && rs->reads_open == ROUNDS_OPEN)
        rc = read_group(rs);
    return rc;
}

/* A value of x: bytes appended to its text, then closed with a NUL. */
static void put_bytes(struct dev_args *x, size_t *at, const char *s, size_t n)
{
    size_t room = *at + 1 < sizeof(x->buf) ? sizeof(x->buf) - *at - 1 : 0;
    if (n > room)
        n = room;
    memcpy(x->buf + *at, s, n);
    *at += n;
}

static void put_str(struct dev_args *x, size_t *at, const char *s, size_t max)
{
    put_bytes(x, at, s ? s : "", s ? strnlen(s, max) : 0);
}

static void put_i64(struct dev_args *x, size_t *at, long long v)
{
    char t[24];
    size_t k = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    if (v < 0)
        t[k++] = '-';
    k += put_len(t + k, (size_t)u);
    put_bytes(x, at, t, k);
}

static void end_value(struct dev_args *x, size_t *at, int *k, size_t start)
{
    x->v[*k] = x->buf + start;
    x->l[(*k)++] = *at - start;
    x->buf[(*at)++] = '\0'; /* DEV_TEXT holds the longest device with room to spare */
}

/*
 * Lay one device's values out as the script takes them: the key, then
 * state, user, reason, version, updated, wipe_kind, pk_epoch, policy_key,
 * provisioned, the announcement, enrollment. By hand rather than snprintf:
 * a million devices are twelve million values.
 */
static void lay_device(struct dev_args *x, const struct rstore_dev *d)
{
    size_t at = 0, s;
    int k = 0;
    s = at, put_bytes(x, &at, RSTORE_KEY_PREFIX, sizeof(RSTORE_KEY_PREFIX) - 1),
    put_str(x, &at, d->device_id, RSTORE_DEVID_MAX), end_value(x, &at, &k, s);
    s = at, put_str(x, &at, rstore_state_name(d->state), 16), end_value(x, &at, &k, s);
    s = at, put_str(x, &at, d->user, RSTORE_USER_MAX), end_value(x, &at, &k, s);
    s = at, put_str(x, &at, d->reason, 64), end_value(x, &at, &k, s);
    s = at, put_i64(x, &at, d->version), end_value(x, &at, &k, s);
    s = at, put_i64(x, &at, d->updated_ms), end_value(x, &at, &k, s);
    s = at, put_str(x, &at, d->wipe_account ? RSTORE_WIPE_ACCOUNT : RSTORE_WIPE_FULL, 16),
    end_value(x, &at, &k, s);
    s = at, put_i64(x, &at, d->pk_epoch), end_value(x, &at, &k, s);
    s = at, put_i64(x, &at, (long long)d->policy_key), end_value(x, &at, &k, s);
    s = at, put_i64(x, &at, d->provisioned_ms), end_value(x, &at, &k, s);
    s = at, put_str(x, &at, d->device_id, RSTORE_DEVID_MAX), put_bytes(x, &at, " ", 1),
    put_i64(x, &at, d->version), end_value(x, &at, &k, s);
    s = at, put_str(x, &at, d->enrollment, RSTORE_ENRID_MAX), end_value(x, &at, &k, s);
}

static int resync_put(const struct rstore_dev *d, void *arg)
{
    struct resync *rs = arg;
    int rc = 0;
    if (rs->n_seen == rs->cap_seen) {
        size_t cap = rs->cap_seen ? rs->cap_seen * 2 : 65536;
        uint64_t *ns = realloc(rs->seen, cap * sizeof(*ns));
        if (ns) {
            rs->seen = ns;
            rs->cap_seen = cap;
        }
    }
    if (rs->n_seen < rs->cap_seen) /* else the sweep asks the source about every key */
        rs->seen[rs->n_seen++] = id_hash(d->device_id, strlen(d->device_id));
    struct round *rd = rs->slot[rs->fill];
    lay_device(&rd->dev[rd->n++], d);
    if (rd->n == CHECK_ROUND)
        rc = send_round(rs);
    rs->put_rc = rc;
    return rc;
}

/* The round buffers. */
static int resync_init(struct resync *rs)
{
    for (int i = 0; i < ROUNDS_OPEN; i++) {
        if (!(rs->slot[i] = malloc(sizeof(struct round))))
            return -1;
        rs->slot[i]->n = 0;
    }
    /* "*2 $7 HGETALL $n key", per device */
    rs->out_cap = CHECK_ROUND * (32 + KEY_MAX);
    rs->out = malloc(rs->out_cap);
    return rs->out ? 0 : -1;
}

static void resync_free(struct resync *rs)
{
    for (int i = 0; i < ROUNDS_OPEN; i++)
        free(rs->slot[i]);
    free(rs->out);
    free(rs->seen);
    free(rs);
}

/*
 * The DeviceIds the rewrite saw, as a set of their 64-bit hashes (open
 * addressing, at most half full): one probe a key, where a sorted array took
 * twenty cache misses. 0 marks an empty place; a hash of 0 is stored as 1.
 */
static int seen_index(struct resync *rs)
{
    size_t cap = 1024;
    while (cap < rs->n_seen * 2)
        cap *= 2;
    uint64_t *t = calloc(cap, sizeof(*t));
    if (!t)
        return -1;
    for (size_t i = 0; i < rs->n_seen; i++) {
        uint64_t h = rs->seen[i] ? rs->seen[i] : 1;
        size_t at = (size_t)(h ^ (h >> 29)) & (cap - 1);
        while (t[at] && t[at] != h)
            at = (at + 1) & (cap - 1);
        t[at] = h;
    }
    free(rs->seen);
    rs->seen = t;
    rs->cap_seen = cap;
    return 0;
}

/* Did the rewrite see this DeviceId? (Its hash; a collision only keeps a
 * stale key until the next resync, it never removes a device's.) */
static bool seen_by_rewrite(const struct resync *rs, const char *id)
{
    if (!rs->n_seen)
        return false;
    uint64_t h = id_hash(id, strlen(id));
    h = h ? h : 1;
    size_t at = (size_t)(h ^ (h >> 29)) & (rs->cap_seen - 1);
    while (rs->seen[at]) {
        if (rs->seen[at] == h)
            return true;
        at = (at + 1) & (rs->cap_seen - 1);
    }
    return false;
}

/* Keys the sweep will remove once the SCAN is over (their raw suffixes). */
struct stale {
    char **id;
    size_t n, cap;
};

static int stale_add(struct stale *s, const char *id)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        char **ns = realloc(s->id, cap * sizeof(*ns));
        if (!ns)
            return -1;
        s->id = ns;
        s->cap = cap;
    }
    if (!(s->id[s->n] = strdup(id)))
        return -1;
    s->n++;
    return 0;
}

/*
 * One SCAN reply, collected as hiredis parses it (the reader's object
 * functions, as for a round's HGETALLs): the cursor, and the keys' suffixes
 * one after the other in one reused buffer, so a million keys are not a
 * million reply objects. `bad` is set for any reply but [cursor, [key...]];
 * `err` keeps a Redis error's text.
 */
struct scan_reply {
    char cursor[32];
    char *buf;  /* the keys' suffixes after RSTORE_KEY_PREFIX, each closed with a NUL */
    size_t *at; /* where each starts in buf */
    size_t n, len, cap, cap_at;
    bool bad, oom;
    char err[128];
};

static void scan_key(struct scan_reply *sr, const char *s, size_t n)
{
    const size_t plen = sizeof(RSTORE_KEY_PREFIX) - 1;
    if (n < plen)
        return; /* SCAN's MATCH returns none of these */
    s += plen, n -= plen;
    if (sr->n == sr->cap_at) {
        size_t cap = sr->cap_at ? sr->cap_at * 2 : 16384;
        size_t *na = realloc(sr->at, cap * sizeof(*na));
        if (!na) {
            sr->oom = true;
            return;
        }
        sr->at = na, sr->cap_at = cap;
    }
    if (sr->len + n + 1 > sr->cap) {
        size_t cap = sr->cap ? sr->cap : 262144;
        while (cap < sr->len + n + 1)
            cap *= 2;
        char *nb = realloc(sr->buf, cap);
        if (!nb) {
            sr->oom = true;
            return;
        }
        sr->buf = nb, sr->cap = cap;
    }
    sr->at[sr->n++] = sr->len;
    memcpy(sr->buf + sr->len, s, n);
    sr->len += n;
    sr->buf[sr->len++] = '\0';
}

static void *scan_string(const redisReadTask *t, char *s, size_t n)
{
    struct scan_reply *sr = t->privdata;
    if (!t->parent) { /* the whole reply: an error, or not SCAN's */
        sr->bad = true;
        if (t->type == REDIS_REPLY_ERROR)
            snprintf(sr->err, sizeof(sr->err), "%.*s", (int)(n < 120 ? n : 120), s);
    } else if (!t->parent->parent) { /* the cursor */
        if (t->idx != 0 || t->type != REDIS_REPLY_STRING || n >= sizeof(sr->cursor))
            sr->bad = true;
        else
            memcpy(sr->cursor, s, n), sr->cursor[n] = '\0';
    } else if (t->type == REDIS_REPLY_STRING && t->parent->idx == 1) {
        scan_key(sr, s, n);
    } else {
        sr->bad = true;
    }
    return sr;
}

static void *scan_array(const redisReadTask *t, int n)
{
    struct scan_reply *sr = t->privdata;
    if (!t->parent ? n != 2 : t->parent->parent || t->idx != 1)
        sr->bad = true;
    return sr;
}

static void *scan_other(const redisReadTask *t)
{
    struct scan_reply *sr = t->privdata;
    sr->bad = true;
    return sr;
}

static void *scan_integer(const redisReadTask *t, long long v)
{
    (void)v;
    return scan_other(t);
}

static redisReplyObjectFunctions scan_fns = {scan_string, scan_array, scan_integer, scan_other,
                                             cmp_free};

/* Read one SCAN reply into sr. */
static int scan_read(struct rstore_push *p, struct scan_reply *sr)
{
    redisReader *rdr = p->c->reader;
    redisReplyObjectFunctions *fns = rdr->fn;
    void *priv = rdr->privdata;
    sr->cursor[0] = sr->err[0] = '\0';
    sr->n = sr->len = 0;
    sr->bad = sr->oom = false;
    rdr->fn = &scan_fns;
    rdr->privdata = sr;
    void *r = NULL;
    int ok = redisGetReply(p->c, &r) == REDIS_OK && r;
    rdr->fn = fns;
    rdr->privdata = priv;
    if (!ok)
        return conn_fail(p, "SCAN");
    if (sr->oom)
        return fail(p, "resync: out of memory");
    if (sr->bad || !sr->cursor[0])
        return fail(p, "redis SCAN: unexpected reply%s%s", sr->err[0] ? ": " : "", sr->err);
    return 0;
}

/* Note the keys of one SCAN reply whose device the source does not hold. */
static int sweep_keys(struct rstore_push *p, const struct rstore_resync_src *src,
                      const struct scan_reply *sr, struct rstore_resync_stats *st,
                      const struct resync *rs, struct stale *out)
{
    for (size_t i = 0; i < sr->n; i++) {
        const char *id = sr->buf + sr->at[i];
        size_t len = (i + 1 < sr->n ? sr->at[i + 1] : sr->len) - sr->at[i] - 1;
        st->scanned++;
        char canon[RSTORE_DEVID_MAX + 1];
        /* A key that is not exactly the canonical form is never read by a proxy: stale. */
        bool keep = rstore_devid_norm(id, len, canon) >= 0 && memcmp(canon, id, len + 1) == 0;
        if (keep && seen_by_rewrite(rs, canon))
            continue;
        if (keep) { /* new since the rewrite read past it, or not there at all: ask */
            int e = src->exists(src->arg, canon);
            if (e < 0)
                return src_fail(p, src, "read", e);
            keep = e == 1;
        }
        if (!keep && stale_add(out, id) < 0)
            return fail(p, "resync: out of memory");
    }
    return 0;
}

/* Remove the stale keys, each announced with a fresh version. */
static int sweep_remove(struct rstore_push *p, const struct rstore_resync_src *src,
                        struct rstore_resync_stats *st, const struct stale *s)
{
    for (size_t i = 0; i < s->n; i++) {
        int64_t v = 0;
        int vr = src->next_version(src->arg, &v);
        if (vr < 0)
            return src_fail(p, src, "write", vr);
        /* Announce with the raw key suffix so a proxy drops whatever it cached. */
        int rc = rstore_push_delete(p, s->id[i], v);
        if (rc < 0)
            return rc;
        st->removed++;
    }
    return 0;
}

static int scan_send(struct rstore_push *p, const char *cursor)
{
    if (redisAppendCommand(p->c, "SCAN %s MATCH %s* COUNT %d", cursor, RSTORE_KEY_PREFIX,
                           SCAN_COUNT) != REDIS_OK)
        return conn_fail(p, "append");
    int done = 0;
    while (!done)
        if (redisBufferWrite(p->c, &done) != REDIS_OK)
            return conn_fail(p, "SCAN");
    return 0;
}

/*
 * SCAN easgate:dev:* and note what is stale; the next SCAN is on its way
 * before this one's keys are checked, so Redis walks its table while the
 * keys are checked here. Removals wait for the end of the SCAN (a key that
 * stays is returned by it whatever is removed meanwhile, but the connection
 * carries one conversation at a time).
 */
static int sweep(struct rstore_push *p, const struct rstore_resync_src *src,
                 struct rstore_resync_stats *st, const struct resync *rs)
{
    struct stale stale = {0};
    struct scan_reply sr = {0};
    int rc = scan_send(p, "0");
    /* SCAN ends when the cursor comes back to 0; the bound only guards a misbehaving server. */
    for (long round = 0; rc == 0; round++) {
        if (round == 100000000L) {
            rc = fail(p, "redis SCAN did not finish");
            break;
        }
        if ((rc = scan_read(p, &sr)) < 0)
            break;
        bool last = strcmp(sr.cursor, "0") == 0;
        if (!last)
            rc = scan_send(p, sr.cursor);
        if (rc == 0)
            rc = sweep_keys(p, src, &sr, st, rs, &stale);
        if (last)
            break;
    }
    if (rc == 0)
        rc = sweep_remove(p, src, st, &stale);
    else if (p->c)
        drop_unread(p); /* a SCAN may still be on its way */
    for (size_t i = 0; i < stale.n; i++)
        free(stale.id[i]);
    free(stale.id);
    free(sr.buf);
    free(sr.at);
    return rc;
}

int rstore_push_resync(struct rstore_push *p, const struct rstore_resync_src *src,
                       struct rstore_resync_stats *st)
{
    memset(st, 0, sizeof(*st));
    int64_t t0 = mono_ms();
    int rc = ensure(p);
    if (rc < 0)
        return rc;
    struct resync *rs = calloc(1, sizeof(*rs));
    if (!rs || resync_init(rs) < 0) {
        if (rs)
            resync_free(rs);
        return fail(p, "resync: out of memory");
    }
    rs->p = p;
    rs->st = st;
    /* rc: a write's error (rs->put_rc), or the source's own from reading. */
    rc = src->each(src->arg, resync_put, rs);
    if (rc == 0)
        rc = rs->put_rc = send_round(rs);
    while (rc == 0 && rs->q_len)
        rc = rs->put_rc = read_group(rs);
    if (rc != 0 && p->c)
        drop_unread(p); /* unread replies must not linger on the connection */
    st->write_ms = mono_ms() - t0;
    if (rc == 0) {
        if (rs->n_seen && seen_index(rs) < 0)
            rs->n_seen = 0; /* out of memory: the sweep asks the source about every key */
        rc = sweep(p, src, st, rs);
    } else if (rs->put_rc == 0) {
        rc = src_fail(p, src, "read", rc);
    }
    st->elapsed_ms = mono_ms() - t0;
    resync_free(rs);
    return rc;
}
