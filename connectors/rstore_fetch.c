/*
 * rstore_fetch: lookups, and what keeps them fresh.
 *
 * A miss starts a fetch: one HGETALL for the DeviceId that every concurrent
 * lookup of it joins as a waiter, so a burst of requests from one phone costs
 * Redis one command. Waiters carry a deadline (lookup_timeout); one timer
 * serves the whole list, which stays sorted because every deadline is "now +
 * the same timeout". A waiter whose deadline passes is answered from the
 * cache while its fetch carries on and fills the cache when it lands.
 *
 * A change message refetches the one device it names, and the new fetch
 * takes over the waiters of any fetch already in flight for it, since that
 * one may carry the state from before the change.
 */
#include "connectors/rstore_int.h"

#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void rs_wait_detach(struct rstore_wait *w)
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
        rs_wait_detach(w);
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
        rs_wait_detach(w);
        ST_INC(rs, timeouts);
        rs_fill_fallback(rs, f->devid, f->hash, &res);
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
    /* An enrollment is cached as "!ID" beside the DeviceIds (which have no "!"). */
    char key[sizeof(RSTORE_KEY_PREFIX) + sizeof(RSTORE_ENR_PREFIX) + RSTORE_DEVID_MAX];
    int kl = devid[0] == RSTORE_ENR_MARK
                 ? snprintf(key, sizeof(key), RSTORE_ENR_PREFIX "%s", devid + 1)
                 : snprintf(key, sizeof(key), RSTORE_KEY_PREFIX "%s", devid);
    size_t klen = kl > 0 ? (size_t)kl : 0;
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
            e = rs_cache_store(rs, f->devid, f->hash, r);
        if (e) {
            rs_shared_put(rs->o.shared, e);
            rs_fill_result(rs, e, &res, false);
        } else
            rs_fill_fallback(rs, f->devid, f->hash, &res);
    } else {
        ST_INC(rs, fetch_errors);
        if (r && r->type == REDIS_REPLY_ERROR)
            eg_warn("redis: HGETALL %s%s: %s", RSTORE_KEY_PREFIX, f->devid, r->str);
        rs_fill_fallback(rs, f->devid, f->hash, &res);
    }
    fetch_deliver(rs, f, &res);
    if (f->notify && rs->change_cb)
        rs->change_cb(rs->change_arg, f->devid, &res);
    free(f);
    (void)ac;
}

static int lookup_key(struct rstore *rs, const char *devid, size_t len, struct rstore_result *out,
                      struct rstore_wait *w, rstore_lookup_cb cb, void *arg);

int rstore_lookup(struct rstore *rs, const char *device_id, size_t len, struct rstore_result *out,
                  struct rstore_wait *w, rstore_lookup_cb cb, void *arg)
{
    char devid[RSTORE_DEVID_MAX + 1];
    if (rstore_devid_norm(device_id, len, devid) < 0)
        return RSTORE_EINVAL;
    return lookup_key(rs, devid, len, out, w, cb, arg);
}

/* "!" + the id, upper-cased: 0, or RSTORE_EINVAL. */
static int enr_key(const char *id, size_t len, char out[RSTORE_DEVID_MAX + 1])
{
    if (len == 0 || len > RSTORE_ENRID_MAX)
        return RSTORE_EINVAL;
    out[0] = RSTORE_ENR_MARK;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 32);
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return RSTORE_EINVAL;
        out[i + 1] = c;
    }
    out[len + 1] = '\0';
    return 0;
}

int rstore_lookup_enrollment(struct rstore *rs, const char *id, size_t len,
                             struct rstore_result *out, struct rstore_wait *w, rstore_lookup_cb cb,
                             void *arg)
{
    char key[RSTORE_DEVID_MAX + 1];
    if (enr_key(id, len, key) < 0)
        return RSTORE_EINVAL;
    return lookup_key(rs, key, len + 1, out, w, cb, arg);
}

static int lookup_key(struct rstore *rs, const char *devid, size_t len, struct rstore_result *out,
                      struct rstore_wait *w, rstore_lookup_cb cb, void *arg)
{
    uint32_t h = rs_hash(devid, len);
    struct rs_entry *e = rs_cache_find(rs, devid, h);

    if (rs->link != LINK_UP) {
        /* Redis is away: whatever we know is the answer (stale flag says
         * whether it may still be used). */
        rs_fill_fallback(rs, devid, h, out);
        return 0;
    }
    if (e && e->gen == rs->gen) {
        rs_cache_touch(rs, e);
        rs_fill_result(rs, e, out, false);
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
        rs_fill_fallback(rs, devid, h, out);
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
        rs_wait_detach(w);
}

/* "<DeviceId> <version>" on easgate:changed. */
void rs_on_changed(struct rstore *rs, const char *msg, size_t n)
{
    const char *sp = memchr(msg, ' ', n);
    size_t idlen = sp ? (size_t)(sp - msg) : n;
    char devid[RSTORE_DEVID_MAX + 1];
    uint64_t version = 0;
    bool has_version = false;

    if (idlen > 1 && msg[0] == RSTORE_ENR_MARK) {
        if (enr_key(msg + 1, idlen - 1, devid) < 0)
            idlen = 0; /* malformed: refused below */
    } else if (rstore_devid_norm(msg, idlen, devid) < 0) {
        idlen = 0;
    }
    if (idlen == 0) {
        eg_warn("redis: ignoring malformed %s message '%.*s'", RSTORE_CHANNEL,
                (int)(n > 80 ? 80 : n), msg);
        return;
    }
    if (sp)
        has_version = rs_parse_u64(sp + 1, n - idlen - 1, &version);
    ST_INC(rs, invalidations);
    uint32_t h = rs_hash(devid, (size_t)idlen);
    struct rs_entry *e = rs_cache_find(rs, devid, h);
    /* The process-wide copy, if older than the message, is gone until a
     * fetch puts the new state there (another worker may have already). */
    rs_shared_del(rs->o.shared, devid, h, has_version ? version : UINT64_MAX);
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
        rs_cache_remove(rs, e);

    /* A fetch already in flight may carry the old state: the new fetch takes
     * over its waiters so they all get the answer asked after the change. */
    if (old)
        fetch_unlink(rs, old);
    struct rs_fetch *f = fetch_start(rs, devid, h);
    if (!f) {
        if (rs->change_cb) {
            struct rstore_result res;
            rs_fill_unavailable(rs, &res);
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
