/*
 * rstore: per-worker device state cache over Redis (see rstore.h and
 * docs/state-contract.md).
 *
 * Three ideas carry this file:
 *
 *  - The cache is the answer. A hit is a hash probe and a copy of a few
 *    pointers; Redis is only asked on a miss, and each DeviceId has at most
 *    one HGETALL in flight (a "fetch") that every waiter shares.
 *
 *  - Freshness comes from invalidation, not from expiry. The core publishes
 *    every change; a message refetches that one device. Anything that might
 *    have lost messages (a reconnect) bumps the cache generation, which turns
 *    every entry into a fallback: still served if Redis cannot answer in time,
 *    never trusted while it can.
 *
 *  - The link is one unit. Data, subscriber and Sentinel connections come up
 *    together and go down together; any failure rebuilds all of them after a
 *    backoff. That keeps the states few: down, connecting, up.
 *
 * hiredis 0.14's async API calls every pending callback with a NULL reply
 * when a context is freed, and defers the free when asked from inside one of
 * its own callbacks; the code below leans on both.
 */
#include "connectors/rstore.h"

#include "common/conf.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Defaults of struct rstore_opts, which easgate.yaml does not set (rstore.h).
 * The redis: section's own defaults come from its table (conf_redis_defaults). */
#define RS_DEF_CACHE_MAX 131072
#define RS_DEF_REFRESH_MS 600000
#define RS_DEF_HEARTBEAT_MS 1000
#define RS_DEF_CONNECT_MS 2000
#define RS_DEF_BACKOFF_MAX_MS 5000
#define RS_DEF_INFLIGHT 65536
#define RS_BACKOFF_MIN_MS 100
#define RS_FETCH_BUCKETS 4096 /* fetch table; chains stay short under bursts */
#define RS_SIGHT_SLOTS 8192   /* rate-limit table, direct mapped */
#define RS_HOST_MAX 256
#define RS_LOG_EVERY 12 /* while down, one warning per this many attempts */

const uint32_t rstore_lat_bounds_us[RSTORE_LAT_BUCKETS - 1] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 1000000};

/* Counters have a single writer (the loop thread) and may be read from the
 * metrics thread: relaxed atomics make that well defined at no cost. */
#define ST_ADD(rs, f, n)                                                                           \
    __atomic_store_n(&(rs)->st.f, __atomic_load_n(&(rs)->st.f, __ATOMIC_RELAXED) + (n),            \
                     __ATOMIC_RELAXED)
#define ST_INC(rs, f) ST_ADD(rs, f, 1)

struct rs_entry {
    struct rs_entry *hnext;
    struct rs_entry *lprev, *lnext; /* LRU, most recent at head */
    uint32_t hash;
    uint32_t gen; /* cache generation it was fetched in */
    uint8_t found;
    uint8_t state;
    uint8_t wipe_account; /* wipe_kind = account */
    uint64_t pk_epoch;
    uint64_t version;
    int64_t updated_ms;
    int64_t fetched_ms; /* loop time */
    char *strs;         /* "user\0reason\0", NULL for a negative entry */
    const char *reason;
    char devid[RSTORE_DEVID_MAX + 1];
};

/* ---- The process-wide fallback (rstore_shared) ---------------------------- */

#define RS_SHARED_LOCKS 64

struct rs_shared_entry {
    uint8_t found, state, wipe_account;
    uint64_t pk_epoch, version;
    int64_t updated_ms;
    char devid[RSTORE_DEVID_MAX + 1];
    size_t slen;
    char strs[]; /* "user\0reason\0" as in rs_entry, or empty */
};

struct rstore_shared {
    size_t mask;
    struct rs_shared_entry **slot;
    pthread_mutex_t lock[RS_SHARED_LOCKS];
};

struct rstore_shared *rstore_shared_new(size_t slots)
{
    size_t n = 1;
    while (n < slots && n < ((size_t)1 << 24))
        n <<= 1;
    struct rstore_shared *sh = calloc(1, sizeof(*sh));
    if (!sh)
        return NULL;
    sh->slot = calloc(n, sizeof(*sh->slot));
    if (!sh->slot) {
        free(sh);
        return NULL;
    }
    sh->mask = n - 1;
    for (int i = 0; i < RS_SHARED_LOCKS; i++)
        pthread_mutex_init(&sh->lock[i], NULL);
    return sh;
}

void rstore_shared_free(struct rstore_shared *sh)
{
    if (!sh)
        return;
    for (size_t i = 0; i <= sh->mask; i++)
        free(sh->slot[i]);
    for (int i = 0; i < RS_SHARED_LOCKS; i++)
        pthread_mutex_destroy(&sh->lock[i]);
    free(sh->slot);
    free(sh);
}

static void shared_put(struct rstore_shared *sh, const struct rs_entry *e)
{
    if (!sh)
        return;
    size_t slen = 0;
    if (e->strs)
        slen = strlen(e->strs) + 1 + strlen(e->reason) + 1;
    struct rs_shared_entry *n = malloc(sizeof(*n) + slen);
    if (!n)
        return;
    n->found = e->found;
    n->state = e->state;
    n->wipe_account = e->wipe_account;
    n->pk_epoch = e->pk_epoch;
    n->version = e->version;
    n->updated_ms = e->updated_ms;
    memcpy(n->devid, e->devid, sizeof(n->devid));
    n->slen = slen;
    if (slen)
        memcpy(n->strs, e->strs, slen);
    size_t i = e->hash & sh->mask;
    pthread_mutex_t *l = &sh->lock[i % RS_SHARED_LOCKS];
    pthread_mutex_lock(l);
    struct rs_shared_entry *old = sh->slot[i];
    sh->slot[i] = n;
    pthread_mutex_unlock(l);
    free(old);
}

/* Drop devid's entry if it is older than version (a change message's), or
 * whatever its version when the message had none (version UINT64_MAX). */
static void shared_del(struct rstore_shared *sh, const char *devid, uint32_t h, uint64_t version)
{
    if (!sh)
        return;
    size_t i = h & sh->mask;
    struct rs_shared_entry *old = NULL;
    pthread_mutex_t *l = &sh->lock[i % RS_SHARED_LOCKS];
    pthread_mutex_lock(l);
    const struct rs_shared_entry *e = sh->slot[i];
    if (e && strcmp(e->devid, devid) == 0 &&
        (version == UINT64_MAX || !e->found || e->version < version)) {
        old = sh->slot[i];
        sh->slot[i] = NULL;
    }
    pthread_mutex_unlock(l);
    free(old);
}

/* A copy of the shared entry for devid, or NULL (caller frees). */
static struct rs_shared_entry *shared_get(struct rstore_shared *sh, const char *devid, uint32_t h)
{
    if (!sh)
        return NULL;
    size_t i = h & sh->mask;
    struct rs_shared_entry *c = NULL;
    pthread_mutex_t *l = &sh->lock[i % RS_SHARED_LOCKS];
    pthread_mutex_lock(l);
    const struct rs_shared_entry *e = sh->slot[i];
    if (e && strcmp(e->devid, devid) == 0) {
        c = malloc(sizeof(*c) + e->slen);
        if (c)
            memcpy(c, e, sizeof(*c) + e->slen);
    }
    pthread_mutex_unlock(l);
    return c;
}

struct rs_fetch {
    struct rs_fetch *hnext;
    struct rstore *rs;
    struct rstore_wait *waiters;
    bool in_table; /* false once superseded by a newer fetch */
    bool notify;   /* refetch for a change message: tell rstore_on_change */
    uint32_t hash;
    uint64_t t0_ns;
    char devid[RSTORE_DEVID_MAX + 1];
};

enum rs_role { RS_DATA, RS_SUB, RS_SENT };

struct rs_conn {
    struct rstore *rs;
    redisAsyncContext *ac;
    enum rs_role role;
};

enum rs_link { LINK_DOWN, LINK_CONNECTING, LINK_UP };

struct rs_resolve {
    struct rstore *rs;
    uv_getaddrinfo_t req;
    unsigned epoch;
    int port;
    void (*done)(struct rstore *rs, const char *ip, int port);
};

struct rs_sight_slot {
    int64_t last_ms;
    uint8_t kind;
    char devid[RSTORE_DEVID_MAX + 1];
};

struct rstore {
    uv_loop_t *loop;
    /* configuration, copied */
    char host[RS_HOST_MAX];
    int port;
    char *password;
    int db;
    char *sent_master;
    char **sent_nodes;
    size_t n_sent_nodes, sent_next;
    int64_t max_stale_ms, lookup_timeout_ms, sighting_ms;
    long long stream_maxlen;
    struct rstore_opts o;
    char instance[128];
    char hb_channel[64];

    /* cache */
    struct rs_entry **buckets;
    uint32_t mask;
    size_t n_entries;
    struct rs_entry *lru_head, *lru_tail;
    uint32_t gen;

    /* fetches and deadlines */
    struct rs_fetch *fetches[RS_FETCH_BUCKETS];
    size_t n_fetches;
    struct rstore_wait *dl_head, *dl_tail;
    uv_timer_t dl_timer;

    /* link */
    enum rs_link link;
    unsigned epoch; /* bumped on every link start/fail: stale async results are ignored */
    struct rs_conn data, sub, sent;
    bool data_ready, sub_ready;
    int64_t data_last, sub_last, last_contact;
    int64_t backoff_ms;
    unsigned fail_count;
    char master_ip[INET6_ADDRSTRLEN];
    int master_port;
    uv_timer_t link_timer; /* backoff wait, or connect deadline */
    uv_timer_t hb_timer;

    rstore_change_cb change_cb;
    void *change_arg;

    struct rs_sight_slot *sight;

    struct rstore_stats st;
    int closing;
    int open_handles;
    int open_resolves;
};

static void link_start(struct rstore *rs);
static void rs_destroy(struct rstore *rs);
static bool rs_stale(const struct rstore *rs);
static void link_fail(struct rstore *rs, const char *why, bool at_sentinel);

static int64_t rs_now(const struct rstore *rs)
{
    return (int64_t)uv_now(rs->loop);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* FNV-1a: short keys, good spread, no setup. */
static uint32_t rs_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

/* ---- Cache ----------------------------------------------------------------- */

static struct rs_entry *cache_find(struct rstore *rs, const char *devid, uint32_t h)
{
    for (struct rs_entry *e = rs->buckets[h & rs->mask]; e; e = e->hnext)
        if (e->hash == h && strcmp(e->devid, devid) == 0)
            return e;
    return NULL;
}

static void lru_unlink(struct rstore *rs, struct rs_entry *e)
{
    if (e->lprev)
        e->lprev->lnext = e->lnext;
    else
        rs->lru_head = e->lnext;
    if (e->lnext)
        e->lnext->lprev = e->lprev;
    else
        rs->lru_tail = e->lprev;
    e->lprev = e->lnext = NULL;
}

static void lru_push(struct rstore *rs, struct rs_entry *e)
{
    e->lprev = NULL;
    e->lnext = rs->lru_head;
    if (rs->lru_head)
        rs->lru_head->lprev = e;
    rs->lru_head = e;
    if (!rs->lru_tail)
        rs->lru_tail = e;
}

static void cache_remove(struct rstore *rs, struct rs_entry *e)
{
    struct rs_entry **pp = &rs->buckets[e->hash & rs->mask];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(rs, e);
    free(e->strs);
    free(e);
    rs->n_entries--;
    ST_ADD(rs, entries, (uint64_t)-1);
}

/* Entry for devid, created (evicting the least recently used) if absent. */
static struct rs_entry *cache_put(struct rstore *rs, const char *devid, uint32_t h)
{
    struct rs_entry *e = cache_find(rs, devid, h);
    if (e) {
        lru_unlink(rs, e);
        lru_push(rs, e);
        return e;
    }
    if (rs->n_entries >= rs->o.cache_max && rs->lru_tail)
        cache_remove(rs, rs->lru_tail);
    e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->hash = h;
    snprintf(e->devid, sizeof(e->devid), "%s", devid);
    e->hnext = rs->buckets[h & rs->mask];
    rs->buckets[h & rs->mask] = e;
    lru_push(rs, e);
    rs->n_entries++;
    ST_INC(rs, entries);
    return e;
}

static void fill_result(const struct rstore *rs, const struct rs_entry *e, struct rstore_result *r,
                        bool fallback)
{
    r->status = e->found ? RSTORE_FOUND : RSTORE_NOT_FOUND;
    r->state = (enum rstore_state)e->state;
    r->user = e->strs ? e->strs : "";
    r->reason = e->reason ? e->reason : "";
    r->version = e->version;
    r->updated_ms = e->updated_ms;
    r->wipe_account_only = e->wipe_account != 0;
    r->pk_epoch = e->pk_epoch;
    r->cached_fallback = fallback;
    r->stale = rs_stale(rs);
}

static void fill_unavailable(const struct rstore *rs, struct rstore_result *r)
{
    memset(r, 0, sizeof(*r));
    r->status = RSTORE_UNAVAILABLE;
    r->user = "";
    r->reason = "";
    r->stale = rs_stale(rs);
}

/* A device another instance of this process fetched, into this cache as
 * unverified (the next lookup with Redis up fetches it again). */
static struct rs_entry *from_shared(struct rstore *rs, const char *devid, uint32_t h)
{
    struct rs_shared_entry *c = shared_get(rs->o.shared, devid, h);
    if (!c)
        return NULL;
    char *strs = NULL;
    if (c->slen && !(strs = malloc(c->slen))) {
        free(c);
        return NULL;
    }
    struct rs_entry *e = cache_put(rs, devid, h);
    if (!e) {
        free(strs);
        free(c);
        return NULL;
    }
    free(e->strs);
    e->strs = strs;
    e->reason = NULL;
    if (strs) {
        memcpy(strs, c->strs, c->slen);
        e->reason = strs + strlen(strs) + 1;
    }
    e->gen = rs->gen - 1;
    e->fetched_ms = rs_now(rs);
    e->found = c->found;
    e->state = c->state;
    e->wipe_account = c->wipe_account;
    e->pk_epoch = c->pk_epoch;
    e->version = c->version;
    e->updated_ms = c->updated_ms;
    free(c);
    return e;
}

/* What to say when Redis cannot answer: the cached entry if any, else what
 * another instance of this process fetched. */
static void fill_fallback(struct rstore *rs, const char *devid, uint32_t h, struct rstore_result *r)
{
    struct rs_entry *e = cache_find(rs, devid, h);
    if (!e)
        e = from_shared(rs, devid, h);
    if (e) {
        fill_result(rs, e, r, true);
        ST_INC(rs, fallbacks);
    } else {
        fill_unavailable(rs, r);
        ST_INC(rs, unavailable);
    }
}

static bool parse_u64(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 19)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

/*
 * Store an HGETALL reply. A hash we cannot trust (unknown state, oversized
 * strings) becomes a block with a reason naming the fault: the core wrote
 * something this proxy does not understand, and the safe reading is "no".
 */
static struct rs_entry *cache_store(struct rstore *rs, const char *devid, uint32_t h,
                                    const redisReply *r)
{
    struct rs_entry *e = cache_put(rs, devid, h);
    if (!e)
        return NULL;
    free(e->strs);
    e->strs = NULL;
    e->reason = NULL;
    e->gen = rs->gen;
    e->fetched_ms = rs_now(rs);
    e->version = 0;
    e->updated_ms = 0;
    e->state = RSTORE_BLOCK;
    e->wipe_account = 0;
    e->pk_epoch = 0;
    e->found = r->elements > 0;
    if (!e->found)
        return e;

    const char *user = "", *reason = "", *fault = NULL;
    size_t ulen = 0, rlen = 0;
    bool have_state = false;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(k->str, RSTORE_F_STATE) == 0) {
            enum rstore_state st;
            have_state = rstore_state_parse(v->str, v->len, &st) == 0;
            if (have_state)
                e->state = (uint8_t)st;
        } else if (strcmp(k->str, RSTORE_F_USER) == 0) {
            user = v->str;
            ulen = v->len;
        } else if (strcmp(k->str, RSTORE_F_REASON) == 0) {
            reason = v->str;
            rlen = v->len;
        } else if (strcmp(k->str, RSTORE_F_VERSION) == 0) {
            if (!parse_u64(v->str, v->len, &e->version))
                fault = "state-invalid-version";
        } else if (strcmp(k->str, RSTORE_F_WIPE_KIND) == 0) {
            /* Anything but "account" is the full wipe, the contract's default. */
            e->wipe_account = v->len == sizeof(RSTORE_WIPE_ACCOUNT) - 1 &&
                              strncasecmp(v->str, RSTORE_WIPE_ACCOUNT, v->len) == 0;
        } else if (strcmp(k->str, RSTORE_F_PK_EPOCH) == 0) {
            /* Not a number: epoch 0, the policy's own keys (a fault here
             * would only make the device provision again, not let it in). */
            if (!parse_u64(v->str, v->len, &e->pk_epoch))
                e->pk_epoch = 0;
        } else if (strcmp(k->str, RSTORE_F_UPDATED) == 0) {
            uint64_t u = 0;
            if (parse_u64(v->str, v->len, &u))
                e->updated_ms = (int64_t)u;
        }
    }
    if (!have_state)
        fault = "state-invalid";
    if (ulen > RSTORE_USER_MAX || memchr(user, '\0', ulen))
        fault = "state-invalid-user";
    if (rlen > RSTORE_REASON_MAX)
        rlen = RSTORE_REASON_MAX; /* the reason is only logged: cut it */
    if (fault) {
        e->state = RSTORE_BLOCK;
        user = "";
        ulen = 0;
        reason = fault;
        rlen = strlen(fault);
        eg_warn("redis: %s%s has an unusable hash (%s): device blocked", RSTORE_KEY_PREFIX, devid,
                fault);
    }
    e->strs = malloc(ulen + rlen + 2);
    if (!e->strs) {
        cache_remove(rs, e);
        return NULL;
    }
    memcpy(e->strs, user, ulen);
    e->strs[ulen] = '\0';
    memcpy(e->strs + ulen + 1, reason, rlen);
    e->strs[ulen + 1 + rlen] = '\0';
    e->reason = e->strs + ulen + 1;
    return e;
}

/* ---- Fetches, waiters and deadlines ----------------------------------------- */

static struct rs_fetch *fetch_find(struct rstore *rs, const char *devid, uint32_t h)
{
    for (struct rs_fetch *f = rs->fetches[h % RS_FETCH_BUCKETS]; f; f = f->hnext)
        if (f->hash == h && strcmp(f->devid, devid) == 0)
            return f;
    return NULL;
}

static void fetch_unlink(struct rstore *rs, struct rs_fetch *f)
{
    if (!f->in_table)
        return;
    struct rs_fetch **pp = &rs->fetches[f->hash % RS_FETCH_BUCKETS];
    while (*pp != f)
        pp = &(*pp)->hnext;
    *pp = f->hnext;
    f->in_table = false;
}

static void dl_unlink(struct rstore *rs, struct rstore_wait *w)
{
    if (w->dprev)
        w->dprev->dnext = w->dnext;
    else
        rs->dl_head = w->dnext;
    if (w->dnext)
        w->dnext->dprev = w->dprev;
    else
        rs->dl_tail = w->dprev;
    w->dnext = w->dprev = NULL;
}

static void wait_detach(struct rstore_wait *w)
{
    struct rs_fetch *f = w->fetch;
    if (!f)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        f->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->next = w->prev = NULL;
    dl_unlink(w->rs, w);
    w->fetch = NULL;
}

static void observe_latency(struct rstore *rs, uint64_t t0_ns)
{
    uint64_t us = (uv_hrtime() - t0_ns) / 1000;
    size_t b = 0;
    while (b < RSTORE_LAT_BUCKETS - 1 && us > rstore_lat_bounds_us[b])
        b++;
    ST_INC(rs, lat_buckets[b]);
    ST_INC(rs, lat_count);
    ST_ADD(rs, lat_sum_us, us);
}

/* Call every waiter of f back with res. A callback may cancel other waiters
 * or start new lookups: take one waiter off the list at a time. */
static void fetch_deliver(struct rstore *rs, struct rs_fetch *f, const struct rstore_result *res)
{
    struct rstore_wait *w;
    while ((w = f->waiters) != NULL) {
        wait_detach(w);
        observe_latency(rs, w->t0_ns);
        w->cb(w, w->arg, res);
    }
}

static void dl_fire(uv_timer_t *t);

static void dl_schedule(struct rstore *rs)
{
    if (!rs->dl_head) {
        uv_timer_stop(&rs->dl_timer);
        return;
    }
    int64_t d = rs->dl_head->deadline_ms - rs_now(rs);
    uv_timer_start(&rs->dl_timer, dl_fire, d > 0 ? (uint64_t)d : 0, 0);
}

/* lookup_timeout passed for the oldest waiters: answer them from what is
 * cached. The fetch stays in flight and will still fill the cache. */
static void dl_fire(uv_timer_t *t)
{
    struct rstore *rs = t->data;
    int64_t now = rs_now(rs);
    struct rstore_wait *w;
    while ((w = rs->dl_head) != NULL && w->deadline_ms <= now) {
        struct rs_fetch *f = w->fetch;
        struct rstore_result res;
        wait_detach(w);
        ST_INC(rs, timeouts);
        fill_fallback(rs, f->devid, f->hash, &res);
        observe_latency(rs, w->t0_ns);
        w->cb(w, w->arg, &res);
    }
    dl_schedule(rs);
}

static void fetch_reply(redisAsyncContext *ac, void *reply, void *priv);

/* Start one HGETALL for devid. NULL when the command cannot be queued. */
static struct rs_fetch *fetch_start(struct rstore *rs, const char *devid, uint32_t h)
{
    if (rs->link != LINK_UP || !rs->data.ac)
        return NULL;
    struct rs_fetch *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->rs = rs;
    f->hash = h;
    f->t0_ns = uv_hrtime();
    snprintf(f->devid, sizeof(f->devid), "%s", devid);
    char key[sizeof(RSTORE_KEY_PREFIX) + RSTORE_DEVID_MAX];
    size_t klen = sizeof(RSTORE_KEY_PREFIX) - 1 + strlen(devid);
    memcpy(key, RSTORE_KEY_PREFIX, sizeof(RSTORE_KEY_PREFIX) - 1);
    memcpy(key + sizeof(RSTORE_KEY_PREFIX) - 1, devid, strlen(devid) + 1);
    const char *argv[2] = {"HGETALL", key};
    const size_t argl[2] = {7, klen};
    if (redisAsyncCommandArgv(rs->data.ac, fetch_reply, f, 2, argv, argl) != REDIS_OK) {
        free(f);
        return NULL;
    }
    f->in_table = true;
    f->hnext = rs->fetches[h % RS_FETCH_BUCKETS];
    rs->fetches[h % RS_FETCH_BUCKETS] = f;
    rs->n_fetches++;
    ST_INC(rs, fetches);
    return f;
}

static void fetch_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rs_fetch *f = priv;
    struct rstore *rs = f->rs;
    redisReply *r = reply;
    struct rstore_result res;
    bool superseded = !f->in_table;

    fetch_unlink(rs, f);
    rs->n_fetches--;
    if (rs->closing) {
        free(f);
        return;
    }
    if (r && r->type == REDIS_REPLY_ARRAY) {
        rs->data_last = rs_now(rs);
        struct rs_entry *e = NULL;
        /* A superseded fetch was asked before a change message: its answer
         * may be older than the fetch that replaced it, so it fills nothing. */
        if (!superseded)
            e = cache_store(rs, f->devid, f->hash, r);
        if (e) {
            shared_put(rs->o.shared, e);
            fill_result(rs, e, &res, false);
        } else
            fill_fallback(rs, f->devid, f->hash, &res);
    } else {
        ST_INC(rs, fetch_errors);
        if (r && r->type == REDIS_REPLY_ERROR)
            eg_warn("redis: HGETALL %s%s: %s", RSTORE_KEY_PREFIX, f->devid, r->str);
        fill_fallback(rs, f->devid, f->hash, &res);
    }
    fetch_deliver(rs, f, &res);
    if (f->notify && rs->change_cb)
        rs->change_cb(rs->change_arg, f->devid, &res);
    free(f);
    (void)ac;
}

int rstore_lookup(struct rstore *rs, const char *device_id, size_t len, struct rstore_result *out,
                  struct rstore_wait *w, rstore_lookup_cb cb, void *arg)
{
    char devid[RSTORE_DEVID_MAX + 1];
    if (rstore_devid_norm(device_id, len, devid) < 0)
        return RSTORE_EINVAL;
    uint32_t h = rs_hash(devid, len);
    struct rs_entry *e = cache_find(rs, devid, h);

    if (rs->link != LINK_UP) {
        /* Redis is away: whatever we know is the answer (stale flag says
         * whether it may still be used). */
        fill_fallback(rs, devid, h, out);
        return 0;
    }
    if (e && e->gen == rs->gen) {
        lru_unlink(rs, e);
        lru_push(rs, e);
        fill_result(rs, e, out, false);
        ST_INC(rs, hits);
        if (!e->found)
            ST_INC(rs, negative_hits);
        if (rs_now(rs) - e->fetched_ms > rs->o.refresh_ms && !fetch_find(rs, devid, h) &&
            rs->n_fetches < rs->o.max_inflight)
            fetch_start(rs, devid, h); /* refresh in the background */
        return 0;
    }

    ST_INC(rs, misses);
    struct rs_fetch *f = fetch_find(rs, devid, h);
    if (!f && rs->n_fetches < rs->o.max_inflight)
        f = fetch_start(rs, devid, h);
    if (!f || !w || !cb) {
        fill_fallback(rs, devid, h, out);
        return 0;
    }
    memset(w, 0, sizeof(*w));
    w->rs = rs;
    w->cb = cb;
    w->arg = arg;
    w->fetch = f;
    w->t0_ns = uv_hrtime();
    w->deadline_ms = rs_now(rs) + rs->lookup_timeout_ms;
    w->next = f->waiters;
    if (f->waiters)
        f->waiters->prev = w;
    f->waiters = w;
    /* Deadlines are all "now + lookup_timeout", so appending keeps the list sorted. */
    w->dprev = rs->dl_tail;
    if (rs->dl_tail)
        rs->dl_tail->dnext = w;
    else
        rs->dl_head = w;
    rs->dl_tail = w;
    if (!uv_is_active((uv_handle_t *)&rs->dl_timer))
        dl_schedule(rs);
    return RSTORE_PENDING;
}

void rstore_cancel(struct rstore_wait *w)
{
    if (w && w->fetch)
        wait_detach(w);
}

void rstore_on_change(struct rstore *rs, rstore_change_cb cb, void *arg)
{
    rs->change_cb = cb;
    rs->change_arg = arg;
}

/* These two are also asked from the admin thread (/readyz): the fields they
 * read are single words written by the loop thread, loaded atomically, and
 * the clock is read directly rather than from the loop. */
bool rstore_connected(const struct rstore *rs)
{
    return __atomic_load_n(&rs->link, __ATOMIC_RELAXED) == LINK_UP;
}

bool rstore_stale(const struct rstore *rs)
{
    if (rstore_connected(rs))
        return false;
    int64_t last = __atomic_load_n(&rs->last_contact, __ATOMIC_RELAXED);
    return (int64_t)(uv_hrtime() / 1000000) - last > rs->max_stale_ms;
}

/* The same on the loop thread, with the loop's clock (no system call). */
static bool rs_stale(const struct rstore *rs)
{
    return rs->link != LINK_UP && rs_now(rs) - rs->last_contact > rs->max_stale_ms;
}

/* "<DeviceId> <version>" on easgate:changed. */
static void on_changed(struct rstore *rs, const char *msg, size_t n)
{
    const char *sp = memchr(msg, ' ', n);
    size_t idlen = sp ? (size_t)(sp - msg) : n;
    char devid[RSTORE_DEVID_MAX + 1];
    uint64_t version = 0;
    bool has_version = false;

    if (rstore_devid_norm(msg, idlen, devid) < 0) {
        eg_warn("redis: ignoring malformed %s message '%.*s'", RSTORE_CHANNEL,
                (int)(n > 80 ? 80 : n), msg);
        return;
    }
    if (sp)
        has_version = parse_u64(sp + 1, n - idlen - 1, &version);
    ST_INC(rs, invalidations);
    uint32_t h = rs_hash(devid, (size_t)idlen);
    struct rs_entry *e = cache_find(rs, devid, h);
    /* The process-wide copy, if older than the message, is gone until a
     * fetch puts the new state there (another worker may have already). */
    shared_del(rs->o.shared, devid, h, has_version ? version : UINT64_MAX);
    if (e && e->gen == rs->gen && e->found && has_version && e->version >= version)
        return; /* we already hold this version or a newer one */
    struct rs_fetch *old = fetch_find(rs, devid, h);
    /* Nothing cached and nothing asked: the next lookup reads the new state
     * anyway, and a full resync by the core does not turn into one HGETALL
     * per device per worker. (A device with a held Ping is in the cache: its
     * Ping began with a lookup.) */
    if (!e && !old)
        return;
    if (e)
        cache_remove(rs, e);

    /* A fetch already in flight may carry the old state: the new fetch takes
     * over its waiters so they all get the answer asked after the change. */
    if (old)
        fetch_unlink(rs, old);
    struct rs_fetch *f = fetch_start(rs, devid, h);
    if (!f) {
        if (rs->change_cb) {
            struct rstore_result res;
            fill_unavailable(rs, &res);
            rs->change_cb(rs->change_arg, devid, &res);
        }
        return;
    }
    f->notify = true;
    if (old) {
        struct rstore_wait *w;
        while ((w = old->waiters) != NULL) {
            old->waiters = w->next;
            w->prev = NULL;
            w->next = f->waiters;
            if (f->waiters)
                f->waiters->prev = w;
            f->waiters = w;
            w->fetch = f;
        }
    }
}

/* ---- hiredis on libuv --------------------------------------------------------

 * Our own glue rather than hiredis's adapters/libuv.h, for two reasons that
 * matter here: that adapter restarts the poll handle (an epoll_ctl pair) on
 * every queued command, which made a burst of misses cost ~10 us each; and it
 * ignores poll errors, so a refused connect never reported back. This one
 * touches the poll handle only when the wanted events change, and on an error
 * lets hiredis look at the socket and report it.
 */
struct rs_poll {
    uv_poll_t h;
    redisAsyncContext *ac;
    int events;
};

static void rs_poll_cb(uv_poll_t *h, int status, int events)
{
    struct rs_poll *p = h->data;
    if (status < 0)
        events = p->events; /* hiredis reads the socket error itself */
    if (p->ac && (events & UV_READABLE))
        redisAsyncHandleRead(p->ac);
    if (p->ac && (events & UV_WRITABLE))
        redisAsyncHandleWrite(p->ac);
}

static void rs_poll_set(struct rs_poll *p, int events)
{
    if (events == p->events)
        return;
    p->events = events;
    if (events)
        uv_poll_start(&p->h, events, rs_poll_cb);
    else
        uv_poll_stop(&p->h);
}

static void rs_add_read(void *d)
{
    struct rs_poll *p = d;
    rs_poll_set(p, p->events | UV_READABLE);
}

static void rs_del_read(void *d)
{
    struct rs_poll *p = d;
    rs_poll_set(p, p->events & ~UV_READABLE);
}

static void rs_add_write(void *d)
{
    struct rs_poll *p = d;
    rs_poll_set(p, p->events | UV_WRITABLE);
}

static void rs_del_write(void *d)
{
    struct rs_poll *p = d;
    rs_poll_set(p, p->events & ~UV_WRITABLE);
}

static void rs_poll_closed(uv_handle_t *h)
{
    free(h->data);
}

static void rs_cleanup(void *d)
{
    struct rs_poll *p = d;
    p->ac = NULL; /* hiredis is freeing the context */
    uv_close((uv_handle_t *)&p->h, rs_poll_closed);
}

static int rs_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    struct rs_poll *p = calloc(1, sizeof(*p));
    if (!p)
        return RSTORE_ENOMEM;
    if (uv_poll_init(loop, &p->h, ac->c.fd) < 0) {
        free(p);
        return RSTORE_EREDIS;
    }
    p->h.data = p;
    p->ac = ac;
    ac->ev.data = p;
    ac->ev.addRead = rs_add_read;
    ac->ev.delRead = rs_del_read;
    ac->ev.addWrite = rs_add_write;
    ac->ev.delWrite = rs_del_write;
    ac->ev.cleanup = rs_cleanup;
    return 0;
}

/* ---- The link: connections, handshake, heartbeat, backoff -------------------- */

static void conn_drop(struct rs_conn *c)
{
    redisAsyncContext *ac = c->ac;
    c->ac = NULL; /* the callbacks hiredis runs while freeing see it is not ours */
    if (ac)
        redisAsyncFree(ac);
}

static void link_set_timer(struct rstore *rs, int64_t ms);

static void link_fail(struct rstore *rs, const char *why, bool at_sentinel)
{
    if (rs->link == LINK_DOWN || rs->closing)
        return;
    bool was_up = rs->link == LINK_UP;
    if (was_up) {
        int64_t last = rs->data_last < rs->sub_last ? rs->data_last : rs->sub_last;
        if (last > rs->last_contact)
            rs->last_contact = last;
    }
    rs->link = LINK_DOWN;
    rs->epoch++;
    rs->data_ready = rs->sub_ready = false;
    conn_drop(&rs->data);
    conn_drop(&rs->sub);
    conn_drop(&rs->sent);
    if (at_sentinel && rs->n_sent_nodes)
        rs->sent_next = (rs->sent_next + 1) % rs->n_sent_nodes;
    rs->fail_count++;
    if (was_up) {
        rs->backoff_ms = RS_BACKOFF_MIN_MS;
        eg_error("redis: connection to %s:%d lost (%s); serving cached device state, reconnecting",
                 rs->master_ip, rs->master_port, why);
    } else {
        rs->backoff_ms = rs->backoff_ms ? rs->backoff_ms * 2 : RS_BACKOFF_MIN_MS;
        if (rs->backoff_ms > rs->o.backoff_max_ms)
            rs->backoff_ms = rs->o.backoff_max_ms;
        if (rs->fail_count == 1 || rs->fail_count % RS_LOG_EVERY == 0)
            eg_warn("redis: cannot reach Redis (%s); %lld s since last contact, retrying", why,
                    (long long)((rs_now(rs) - rs->last_contact) / 1000));
        else
            eg_debug("redis: connect failed (%s), retry in %lld ms", why,
                     (long long)rs->backoff_ms);
    }
    link_set_timer(rs, rs->backoff_ms);
}

/* Also the deadline for a connect that neither succeeds nor fails (a
 * black-holed address, a stopped server that still accepts). */
static void link_timer_cb(uv_timer_t *t)
{
    struct rstore *rs = t->data;
    if (rs->link == LINK_DOWN)
        link_start(rs);
    else if (rs->link == LINK_CONNECTING)
        link_fail(rs, "connect timed out", rs->sent_master && !rs->master_port);
}

static void link_set_timer(struct rstore *rs, int64_t ms)
{
    uv_timer_start(&rs->link_timer, link_timer_cb, ms > 0 ? (uint64_t)ms : 0, 0);
}

static void link_check_up(struct rstore *rs)
{
    if (rs->link != LINK_CONNECTING || !rs->data_ready || !rs->sub_ready)
        return;
    rs->link = LINK_UP;
    uv_timer_stop(&rs->link_timer);
    int64_t now = rs_now(rs);
    rs->data_last = rs->sub_last = rs->last_contact = now;
    rs->backoff_ms = 0;
    rs->fail_count = 0;
    rs->gen++; /* invalidations may have been missed: nothing cached is trusted */
    ST_INC(rs, reconnects);
    eg_info("redis: connected to %s:%d%s", rs->master_ip, rs->master_port,
            rs->sent_master ? " (master from Sentinel)" : "");
    if (rs->change_cb)
        rs->change_cb(rs->change_arg, NULL, NULL);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct rs_conn *c = ac->data;
    if (c->ac != ac)
        return;
    if (status != REDIS_OK) {
        c->ac = NULL; /* hiredis frees it after this callback */
        char why[160];
        snprintf(why, sizeof(why), "%s: %s", c->role == RS_SENT ? "sentinel" : "connect",
                 ac->errstr[0] ? ac->errstr : "failed");
        link_fail(c->rs, why, c->role == RS_SENT);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct rs_conn *c = ac->data;
    if (c->ac != ac)
        return;
    c->ac = NULL; /* hiredis frees it after this callback */
    link_fail(c->rs, status == REDIS_OK ? "closed" : (ac->errstr[0] ? ac->errstr : "disconnected"),
              c->role == RS_SENT);
}

static int conn_open(struct rstore *rs, struct rs_conn *c, const char *ip, int port)
{
    redisAsyncContext *ac = redisAsyncConnect(ip, port);
    if (!ac)
        return RSTORE_ENOMEM;
    if (ac->err) {
        eg_debug("redis: connect %s:%d: %s", ip, port, ac->errstr);
        redisAsyncFree(ac);
        return RSTORE_EREDIS;
    }
    if (rs_attach(ac, rs->loop) < 0) {
        redisAsyncFree(ac);
        return RSTORE_ENOMEM;
    }
    ac->data = c;
    c->ac = ac;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return 0;
}

/* A handshake reply on the data connection (AUTH, SELECT, ROLE, PING). */
static void data_hs_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rstore *rs = ((struct rs_conn *)ac->data)->rs;
    redisReply *r = reply;
    const char *step = priv;
    if (!r || rs->data.ac != ac)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        char why[200];
        snprintf(why, sizeof(why), "%s: %s", step, r->str);
        link_fail(rs, why, false);
        return;
    }
    if (strcmp(step, "ROLE") == 0) {
        /* A Sentinel answer can lag a failover: talk only to a master. */
        if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
            r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "master") != 0)
            link_fail(rs, "ROLE: not a master", false);
        return;
    }
    if (strcmp(step, "PING") == 0) {
        rs->data_ready = true;
        link_check_up(rs);
    }
}

static void sub_msg(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rstore *rs = ((struct rs_conn *)ac->data)->rs;
    redisReply *r = reply;
    if (!r || rs->sub.ac != ac || rs->closing)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        char why[200];
        snprintf(why, sizeof(why), "SUBSCRIBE: %s", r->str);
        link_fail(rs, why, false);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = r->element[0]->str, *chan = r->element[1]->str;
    rs->sub_last = rs_now(rs);
    if (strcmp(kind, "subscribe") == 0) {
        if (strcmp(chan, rs->hb_channel) == 0) {
            rs->sub_ready = true; /* subscribed in order: the last one confirms both */
            link_check_up(rs);
        }
        return;
    }
    if (strcmp(kind, "message") != 0 || r->element[2]->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(chan, RSTORE_CHANNEL) == 0 && rs->link == LINK_UP)
        on_changed(rs, r->element[2]->str, r->element[2]->len);
}

static void auth(struct rstore *rs, redisAsyncContext *ac, redisCallbackFn *fn)
{
    if (rs->password)
        redisAsyncCommand(ac, fn, (void *)"AUTH", "AUTH %s", rs->password);
}

static void sub_auth_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rstore *rs = ((struct rs_conn *)ac->data)->rs;
    redisReply *r = reply;
    if (r && rs->sub.ac == ac && r->type == REDIS_REPLY_ERROR) {
        char why[200];
        snprintf(why, sizeof(why), "AUTH: %s", r->str);
        link_fail(rs, why, false);
    }
}

static void connect_master(struct rstore *rs, const char *ip, int port)
{
    snprintf(rs->master_ip, sizeof(rs->master_ip), "%s", ip);
    rs->master_port = port;
    if (conn_open(rs, &rs->data, ip, port) < 0 || conn_open(rs, &rs->sub, ip, port) < 0) {
        link_fail(rs, "cannot open a connection", false);
        return;
    }
    /* hiredis queues commands until the socket is writable: send the whole
     * handshake now and let the PING reply say it is done. */
    auth(rs, rs->data.ac, data_hs_reply);
    if (rs->db)
        redisAsyncCommand(rs->data.ac, data_hs_reply, (void *)"SELECT", "SELECT %d", rs->db);
    if (rs->sent_master)
        redisAsyncCommand(rs->data.ac, data_hs_reply, (void *)"ROLE", "ROLE");
    redisAsyncCommand(rs->data.ac, data_hs_reply, (void *)"PING", "PING");

    auth(rs, rs->sub.ac, sub_auth_reply);
    redisAsyncCommand(rs->sub.ac, sub_msg, NULL, "SUBSCRIBE %s %s", RSTORE_CHANNEL, rs->hb_channel);
}

/* ---- Name resolution: never on the loop thread ------------------------------ */

static void resolve_done(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct rs_resolve *q = req->data;
    struct rstore *rs = q->rs;
    rs->open_resolves--;
    char ip[INET6_ADDRSTRLEN] = "";
    if (status == 0 && res) {
        if (res->ai_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)res->ai_addr, ip, sizeof(ip));
        else
            uv_ip4_name((struct sockaddr_in *)res->ai_addr, ip, sizeof(ip));
    }
    if (res)
        uv_freeaddrinfo(res);
    if (rs->closing) {
        free(q);
        if (rs->open_handles == 0 && rs->open_resolves == 0)
            rs_destroy(rs);
        return;
    }
    if (q->epoch == rs->epoch && rs->link == LINK_CONNECTING) {
        if (ip[0])
            q->done(rs, ip, q->port);
        else
            link_fail(rs, status ? uv_strerror(status) : "no address", q->done != connect_master);
    }
    free(q);
}

static void resolve(struct rstore *rs, const char *host, int port,
                    void (*done)(struct rstore *, const char *, int))
{
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1) {
        done(rs, host, port);
        return;
    }
    struct rs_resolve *q = calloc(1, sizeof(*q));
    if (!q) {
        link_fail(rs, "out of memory", false);
        return;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    q->rs = rs;
    q->epoch = rs->epoch;
    q->port = port;
    q->done = done;
    q->req.data = q;
    int rc = uv_getaddrinfo(rs->loop, &q->req, resolve_done, host, NULL, &hints);
    if (rc < 0) {
        free(q);
        link_fail(rs, uv_strerror(rc), done != connect_master);
        return;
    }
    rs->open_resolves++;
}

/* ---- Sentinel ------------------------------------------------------------- */

static void sent_sub_msg(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rstore *rs = ((struct rs_conn *)ac->data)->rs;
    redisReply *r = reply;
    if (!r || rs->sent.ac != ac || rs->closing || r->type != REDIS_REPLY_ARRAY || r->elements < 3)
        return;
    const redisReply *kind = r->element[0], *msg = r->element[2];
    if (kind->type != REDIS_REPLY_STRING || strcmp(kind->str, "message") != 0 ||
        msg->type != REDIS_REPLY_STRING)
        return;
    /* "<master name> <old ip> <old port> <new ip> <new port>" */
    size_t mlen = strlen(rs->sent_master);
    if (msg->len <= mlen || strncmp(msg->str, rs->sent_master, mlen) != 0 || msg->str[mlen] != ' ')
        return;
    char oldip[64], newip[64];
    int oldport = 0, newport = 0;
    if (sscanf(msg->str + mlen + 1, "%63s %d %63s %d", oldip, &oldport, newip, &newport) == 4 &&
        newport == rs->master_port && strcmp(newip, rs->master_ip) == 0)
        return; /* we asked after the switch and already talk to the new master */
    eg_warn("redis: Sentinel reports failover of '%s': %s", rs->sent_master, msg->str + mlen + 1);
    link_fail(rs, "Sentinel switched master", false);
    rs->backoff_ms = 0;
    link_set_timer(rs, 0); /* follow at once */
}

static void sent_addr_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rstore *rs = ((struct rs_conn *)ac->data)->rs;
    redisReply *r = reply;
    if (!r || rs->sent.ac != ac || rs->closing)
        return;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING) {
        link_fail(rs,
                  r->type == REDIS_REPLY_ERROR ? r->str : "Sentinel does not know the master name",
                  true);
        return;
    }
    int port = atoi(r->element[1]->str);
    if (port <= 0 || port > 65535) {
        link_fail(rs, "Sentinel gave a bad port", true);
        return;
    }
    char host[RS_HOST_MAX];
    snprintf(host, sizeof(host), "%s", r->element[0]->str);
    /* Watch for failovers from now on; this connection now only listens. */
    redisAsyncCommand(ac, sent_sub_msg, NULL, "SUBSCRIBE +switch-master");
    resolve(rs, host, port, connect_master);
}

static void connect_sentinel(struct rstore *rs, const char *ip, int port)
{
    if (conn_open(rs, &rs->sent, ip, port) < 0) {
        link_fail(rs, "cannot open a Sentinel connection", true);
        return;
    }
    redisAsyncCommand(rs->sent.ac, sent_addr_reply, NULL, "SENTINEL get-master-addr-by-name %s",
                      rs->sent_master);
}

static void link_start(struct rstore *rs)
{
    rs->link = LINK_CONNECTING;
    rs->epoch++;
    rs->master_port = 0;
    link_set_timer(rs, rs->o.connect_ms);
    if (rs->sent_master) {
        char host[RS_HOST_MAX];
        int port = 0;
        const char *why = NULL;
        const char *node = rs->sent_nodes[rs->sent_next];
        if (units_parse_hostport(node, host, sizeof(host), &port, &why) < 0) {
            link_fail(rs, "bad sentinel node", true);
            return;
        }
        resolve(rs, host, port, connect_sentinel);
    } else {
        resolve(rs, rs->host, rs->port, connect_master);
    }
}

static void hb_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rs_conn *c = ac->data;
    if (reply && c->ac == ac && ((redisReply *)reply)->type != REDIS_REPLY_ERROR)
        c->rs->data_last = rs_now(c->rs);
}

/* Every heartbeat: publish to our own channel (proves the data connection
 * and, when the message comes back, the subscriber), then check for silence. */
static void hb_cb(uv_timer_t *t)
{
    struct rstore *rs = t->data;
    if (rs->link != LINK_UP)
        return;
    int64_t now = rs_now(rs);
    int64_t last = rs->data_last < rs->sub_last ? rs->data_last : rs->sub_last;
    rs->last_contact = last;
    if (now - last > rs->o.dead_ms) {
        link_fail(rs, "no answer to heartbeats", false);
        return;
    }
    redisAsyncCommand(rs->data.ac, hb_reply, NULL, "PUBLISH %s %lld", rs->hb_channel,
                      (long long)now);
}

/* ---- Sightings -------------------------------------------------------------- */

static void sight_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rs_conn *c = ac->data;
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_ERROR)
        eg_warn("redis: XADD %s: %s", RSTORE_STREAM, r->str);
    else if (r && c->ac == ac)
        c->rs->data_last = rs_now(c->rs);
}

int rstore_sighting(struct rstore *rs, enum rstore_sighting_kind kind, const char *device_id,
                    size_t len, const char *const *fields, size_t nfields)
{
    char devid[RSTORE_DEVID_MAX + 1];
    const char *kname = rstore_sighting_kind_name(kind);
    if (!kname || (nfields % 2) != 0 || nfields > 40 || (nfields && !fields) ||
        rstore_devid_norm(device_id, len, devid) < 0)
        return RSTORE_EINVAL;
    if (rs->link != LINK_UP) {
        ST_INC(rs, sightings_dropped);
        return RSTORE_ENOTCONN;
    }
    int64_t now = rs_now(rs);
    uint32_t h = rs_hash(devid, len) ^ ((uint32_t)kind * 0x9e3779b9u);
    struct rs_sight_slot *s = &rs->sight[h % RS_SIGHT_SLOTS];
    /* One per wipe, one per provisioning: the core must see every one. */
    bool always = kind == RSTORE_SIGHT_WIPE_ACK || kind == RSTORE_SIGHT_PROVISIONED;
    if (!always && s->last_ms && s->kind == kind && strcmp(s->devid, devid) == 0 &&
        now - s->last_ms < rs->sighting_ms) {
        ST_INC(rs, sightings_suppressed);
        return 1;
    }

    char maxlen[24], tbuf[24];
    snprintf(maxlen, sizeof(maxlen), "%lld", rs->stream_maxlen);
    snprintf(tbuf, sizeof(tbuf), "%lld", (long long)wall_ms());
    const char *argv[14 + 40];
    size_t argl[14 + 40];
    int n = 0;
    argv[n++] = "XADD";
    argv[n++] = RSTORE_STREAM;
    argv[n++] = "MAXLEN";
    argv[n++] = "~";
    argv[n++] = maxlen;
    argv[n++] = "*";
    argv[n++] = RSTORE_SF_KIND;
    argv[n++] = kname;
    argv[n++] = RSTORE_SF_DEVICE;
    argv[n++] = devid;
    argv[n++] = RSTORE_SF_INSTANCE;
    argv[n++] = rs->instance;
    argv[n++] = RSTORE_SF_TIME;
    argv[n++] = tbuf;
    for (size_t i = 0; i < nfields; i++)
        argv[n++] = fields[i] ? fields[i] : "";
    for (int i = 0; i < n; i++)
        argl[i] = strlen(argv[i]);
    if (redisAsyncCommandArgv(rs->data.ac, sight_reply, NULL, n, argv, argl) != REDIS_OK) {
        ST_INC(rs, sightings_dropped);
        return RSTORE_ENOTCONN;
    }
    s->last_ms = now ? now : 1;
    s->kind = (uint8_t)kind;
    memcpy(s->devid, devid, (size_t)len + 1);
    ST_INC(rs, sightings_sent);
    return 0;
}

int rstore_sight(struct rstore *rs, const struct rstore_sight *s)
{
    if (!s || !s->device_id)
        return RSTORE_EINVAL;
    const struct {
        const char *name, *value;
    } map[] = {
        {RSTORE_SF_USER, s->user},
        {RSTORE_SF_DEVICE_TYPE, s->device_type},
        {RSTORE_SF_USER_AGENT, s->user_agent},
        {RSTORE_SF_PROTOCOL_VERSION, s->protocol_version},
        {RSTORE_SF_CLIENT_ADDR, s->client_addr},
        {RSTORE_SF_MODEL, s->model},
        {RSTORE_SF_IMEI, s->imei},
        {RSTORE_SF_FRIENDLY_NAME, s->friendly_name},
        {RSTORE_SF_OS, s->os},
        {RSTORE_SF_OS_LANGUAGE, s->os_language},
        {RSTORE_SF_PHONE_NUMBER, s->phone_number},
        {RSTORE_SF_MOBILE_OPERATOR, s->mobile_operator},
        {RSTORE_SF_STATUS, s->status},
    };
    const char *fields[2 * (sizeof(map) / sizeof(map[0]))];
    size_t n = 0;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (map[i].value && map[i].value[0]) {
            fields[n++] = map[i].name;
            fields[n++] = map[i].value;
        }
    return rstore_sighting(rs, s->kind, s->device_id, strlen(s->device_id), fields, n);
}

/* ---- Lifetime -------------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

struct rstore *rstore_new(uv_loop_t *loop, const struct conf_redis *conf)
{
    return rstore_new_ex(loop, conf, NULL);
}

static void opts_defaults(struct rstore_opts *o)
{
    if (!o->cache_max)
        o->cache_max = RS_DEF_CACHE_MAX;
    if (o->refresh_ms <= 0)
        o->refresh_ms = RS_DEF_REFRESH_MS;
    if (o->heartbeat_ms <= 0)
        o->heartbeat_ms = RS_DEF_HEARTBEAT_MS;
    if (o->dead_ms <= 0)
        o->dead_ms = 3 * o->heartbeat_ms;
    if (o->connect_ms <= 0)
        o->connect_ms = RS_DEF_CONNECT_MS;
    if (o->backoff_max_ms <= 0)
        o->backoff_max_ms = RS_DEF_BACKOFF_MAX_MS;
    if (!o->max_inflight)
        o->max_inflight = RS_DEF_INFLIGHT;
}

static void rs_destroy(struct rstore *rs)
{
    if (!rs)
        return;
    free(rs->buckets);
    free(rs->sight);
    free(rs->password);
    free(rs->sent_master);
    for (size_t i = 0; i < rs->n_sent_nodes; i++)
        free(rs->sent_nodes[i]);
    free(rs->sent_nodes);
    free(rs);
}

struct rstore *rstore_new_ex(uv_loop_t *loop, const struct conf_redis *conf,
                             const struct rstore_opts *opts)
{
    static unsigned seq;
    if (!loop || !conf || (!conf->host && !conf->sentinel.master))
        return NULL;
    if (conf->sentinel.master && conf->sentinel.nodes.n == 0)
        return NULL;
    struct rstore *rs = calloc(1, sizeof(*rs));
    if (!rs)
        return NULL;
    rs->loop = loop;
    if (opts)
        rs->o = *opts;
    opts_defaults(&rs->o);
    /* Zero fields (a conf_redis filled by hand) take the config table's defaults. */
    const struct conf_redis *def = conf_redis_defaults();
    snprintf(rs->host, sizeof(rs->host), "%s", conf->host ? conf->host : "");
    rs->port = conf->port ? conf->port : def->port;
    rs->db = conf->db;
    rs->max_stale_ms = conf->max_stale_ms > 0 ? conf->max_stale_ms : def->max_stale_ms;
    rs->lookup_timeout_ms =
        conf->lookup_timeout_ms > 0 ? conf->lookup_timeout_ms : def->lookup_timeout_ms;
    rs->sighting_ms =
        conf->sighting_interval_ms > 0 ? conf->sighting_interval_ms : def->sighting_interval_ms;
    rs->stream_maxlen = conf->stream_maxlen > 0 ? conf->stream_maxlen : def->stream_maxlen;

    bool oom = false;
    if (conf->password && conf->password[0])
        oom |= !(rs->password = dup_or_null(conf->password));
    if (conf->sentinel.master) {
        oom |= !(rs->sent_master = dup_or_null(conf->sentinel.master));
        rs->sent_nodes = calloc(conf->sentinel.nodes.n, sizeof(char *));
        oom |= !rs->sent_nodes;
        for (size_t i = 0; rs->sent_nodes && i < conf->sentinel.nodes.n; i++) {
            oom |= !(rs->sent_nodes[i] = dup_or_null(conf->sentinel.nodes.v[i]));
            rs->n_sent_nodes++;
        }
    }
    uint32_t nb = 1;
    while (nb < rs->o.cache_max && nb < (1u << 30))
        nb <<= 1;
    rs->buckets = calloc(nb, sizeof(*rs->buckets));
    rs->mask = nb - 1;
    rs->sight = calloc(RS_SIGHT_SLOTS, sizeof(*rs->sight));
    if (oom || !rs->buckets || !rs->sight) {
        rs_destroy(rs);
        return NULL;
    }

    char hn[64] = "easgate";
    gethostname(hn, sizeof(hn) - 1);
    if (rs->o.instance)
        snprintf(rs->instance, sizeof(rs->instance), "%s", rs->o.instance);
    else
        snprintf(rs->instance, sizeof(rs->instance), "%s/%d", hn, (int)getpid());
    rs->o.instance = NULL; /* the caller's string need not outlive this call */
    unsigned n = __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED);
    snprintf(rs->hb_channel, sizeof(rs->hb_channel), RSTORE_HB_PREFIX "%d.%u.%llx", (int)getpid(),
             n, (unsigned long long)(uv_hrtime() & 0xffffffu));

    rs->data = (struct rs_conn){.rs = rs, .role = RS_DATA};
    rs->sub = (struct rs_conn){.rs = rs, .role = RS_SUB};
    rs->sent = (struct rs_conn){.rs = rs, .role = RS_SENT};
    rs->last_contact = rs_now(rs);
    uv_timer_init(loop, &rs->dl_timer);
    uv_timer_init(loop, &rs->link_timer);
    uv_timer_init(loop, &rs->hb_timer);
    rs->dl_timer.data = rs->link_timer.data = rs->hb_timer.data = rs;
    rs->open_handles = 3;
    uv_timer_start(&rs->hb_timer, hb_cb, (uint64_t)rs->o.heartbeat_ms,
                   (uint64_t)rs->o.heartbeat_ms);
    link_start(rs);
    return rs;
}

static void on_handle_closed(uv_handle_t *h)
{
    struct rstore *rs = h->data;
    if (--rs->open_handles == 0 && rs->open_resolves == 0)
        rs_destroy(rs);
}

void rstore_free(struct rstore *rs)
{
    if (!rs || rs->closing)
        return;
    rs->closing = 1;
    /* Waiters are dropped silently: their owners are going away too. */
    while (rs->dl_head)
        wait_detach(rs->dl_head);
    conn_drop(&rs->data);
    conn_drop(&rs->sub);
    conn_drop(&rs->sent);
    while (rs->lru_head)
        cache_remove(rs, rs->lru_head);
    uv_close((uv_handle_t *)&rs->dl_timer, on_handle_closed);
    uv_close((uv_handle_t *)&rs->link_timer, on_handle_closed);
    uv_close((uv_handle_t *)&rs->hb_timer, on_handle_closed);
}

/* ---- Metrics ----------------------------------------------------------------- */

#define LD(f) __atomic_load_n(&rs->st.f, __ATOMIC_RELAXED)

void rstore_stats_get(const struct rstore *rs, struct rstore_stats *o)
{
    memset(o, 0, sizeof(*o));
    o->hits = LD(hits);
    o->misses = LD(misses);
    o->negative_hits = LD(negative_hits);
    o->fallbacks = LD(fallbacks);
    o->timeouts = LD(timeouts);
    o->unavailable = LD(unavailable);
    o->fetches = LD(fetches);
    o->fetch_errors = LD(fetch_errors);
    o->invalidations = LD(invalidations);
    o->reconnects = LD(reconnects);
    o->sightings_sent = LD(sightings_sent);
    o->sightings_suppressed = LD(sightings_suppressed);
    o->sightings_dropped = LD(sightings_dropped);
    o->lat_count = LD(lat_count);
    o->lat_sum_us = LD(lat_sum_us);
    for (int i = 0; i < RSTORE_LAT_BUCKETS; i++)
        o->lat_buckets[i] = LD(lat_buckets[i]);
    o->entries = LD(entries);
    /* link and last_contact are plain fields owned by the loop thread; a
     * torn read is impossible for aligned ints on the targets we build for. */
    enum rs_link link = __atomic_load_n(&rs->link, __ATOMIC_RELAXED);
    int64_t last = __atomic_load_n(&rs->last_contact, __ATOMIC_RELAXED);
    o->connected = link == LINK_UP;
    o->stale = link != LINK_UP && (int64_t)(uv_hrtime() / 1000000) - last > rs->max_stale_ms;
    o->since_contact_ms = link == LINK_UP ? 0 : (int64_t)(uv_hrtime() / 1000000) - last;
}

void rstore_stats_add(struct rstore_stats *sum, const struct rstore_stats *one)
{
    sum->hits += one->hits;
    sum->misses += one->misses;
    sum->negative_hits += one->negative_hits;
    sum->fallbacks += one->fallbacks;
    sum->timeouts += one->timeouts;
    sum->unavailable += one->unavailable;
    sum->fetches += one->fetches;
    sum->fetch_errors += one->fetch_errors;
    sum->invalidations += one->invalidations;
    sum->reconnects += one->reconnects;
    sum->sightings_sent += one->sightings_sent;
    sum->sightings_suppressed += one->sightings_suppressed;
    sum->sightings_dropped += one->sightings_dropped;
    sum->lat_count += one->lat_count;
    sum->lat_sum_us += one->lat_sum_us;
    for (int i = 0; i < RSTORE_LAT_BUCKETS; i++)
        sum->lat_buckets[i] += one->lat_buckets[i];
    sum->entries += one->entries;
    sum->connected += one->connected;
    sum->stale += one->stale;
    if (one->since_contact_ms > sum->since_contact_ms)
        sum->since_contact_ms = one->since_contact_ms;
}

int rstore_stats_format(const struct rstore_stats *st, char *buf, size_t len)
{
    size_t off = 0;
#define OUT(...)                                                                                   \
    do {                                                                                           \
        int n_ = snprintf(buf + off, off < len ? len - off : 0, __VA_ARGS__);                      \
        if (n_ < 0 || off + (size_t)n_ >= len)                                                     \
            return RSTORE_ENOSPC;                                                                  \
        off += (size_t)n_;                                                                         \
    } while (0)
    OUT("# TYPE easgate_redis_cache_hits_total counter\neasgate_redis_cache_hits_total %llu\n",
        (unsigned long long)st->hits);
    OUT("# TYPE easgate_redis_cache_negative_hits_total counter\n"
        "easgate_redis_cache_negative_hits_total %llu\n",
        (unsigned long long)st->negative_hits);
    OUT("# TYPE easgate_redis_cache_misses_total counter\neasgate_redis_cache_misses_total %llu\n",
        (unsigned long long)st->misses);
    OUT("# TYPE easgate_redis_cache_entries gauge\neasgate_redis_cache_entries %llu\n",
        (unsigned long long)st->entries);
    OUT("# TYPE easgate_redis_fallbacks_total counter\neasgate_redis_fallbacks_total %llu\n",
        (unsigned long long)st->fallbacks);
    OUT("# TYPE easgate_redis_lookup_timeouts_total counter\n"
        "easgate_redis_lookup_timeouts_total %llu\n",
        (unsigned long long)st->timeouts);
    OUT("# TYPE easgate_redis_unavailable_total counter\neasgate_redis_unavailable_total %llu\n",
        (unsigned long long)st->unavailable);
    OUT("# TYPE easgate_redis_fetches_total counter\neasgate_redis_fetches_total %llu\n",
        (unsigned long long)st->fetches);
    OUT("# TYPE easgate_redis_fetch_errors_total counter\neasgate_redis_fetch_errors_total %llu\n",
        (unsigned long long)st->fetch_errors);
    OUT("# TYPE easgate_redis_invalidations_total counter\n"
        "easgate_redis_invalidations_total %llu\n",
        (unsigned long long)st->invalidations);
    OUT("# TYPE easgate_redis_connects_total counter\neasgate_redis_connects_total %llu\n",
        (unsigned long long)st->reconnects);
    OUT("# TYPE easgate_redis_sightings_total counter\n"
        "easgate_redis_sightings_total{result=\"sent\"} %llu\n"
        "easgate_redis_sightings_total{result=\"suppressed\"} %llu\n"
        "easgate_redis_sightings_total{result=\"dropped\"} %llu\n",
        (unsigned long long)st->sightings_sent, (unsigned long long)st->sightings_suppressed,
        (unsigned long long)st->sightings_dropped);
    OUT("# TYPE easgate_redis_lookup_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < RSTORE_LAT_BUCKETS; i++) {
        cum += st->lat_buckets[i];
        if (i < RSTORE_LAT_BUCKETS - 1)
            OUT("easgate_redis_lookup_seconds_bucket{le=\"%g\"} %llu\n",
                rstore_lat_bounds_us[i] / 1e6, (unsigned long long)cum);
        else
            OUT("easgate_redis_lookup_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    OUT("easgate_redis_lookup_seconds_sum %.6f\neasgate_redis_lookup_seconds_count %llu\n",
        st->lat_sum_us / 1e6, (unsigned long long)st->lat_count);
    OUT("# TYPE easgate_redis_connected gauge\neasgate_redis_connected %llu\n",
        (unsigned long long)st->connected);
    OUT("# TYPE easgate_redis_stale gauge\neasgate_redis_stale %llu\n",
        (unsigned long long)st->stale);
    OUT("# TYPE easgate_redis_seconds_since_contact gauge\n"
        "easgate_redis_seconds_since_contact %.3f\n",
        st->since_contact_ms / 1e3);
#undef OUT
    return (int)off;
}
