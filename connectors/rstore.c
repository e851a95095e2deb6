/*
 * rstore: per-worker device state cache over Redis (see rstore.h and
 * docs/state-contract.md). This file is its lifetime; rstore_int.h lists the
 * pieces it is made of.
 *
 * Three ideas carry the store:
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
 * its own callbacks; the link code leans on both.
 */
#include "connectors/rstore_int.h"

#include "common/conf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Defaults of struct rstore_opts, which easgate.yaml does not set (rstore.h).
 * The redis: section's own defaults come from its table (conf_redis_defaults). */
#define RS_DEF_CACHE_MAX 131072
#define RS_DEF_REFRESH_MS 600000
#define RS_DEF_HEARTBEAT_MS 1000
#define RS_DEF_CONNECT_MS 2000
#define RS_DEF_BACKOFF_MAX_MS 5000
#define RS_DEF_INFLIGHT 65536

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

void rs_destroy(struct rstore *rs)
{
    if (!rs)
        return;
    free(rs->buckets);
    rs_sight_free(rs);
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
    snprintf(rs->beat_key, sizeof(rs->beat_key), RSTORE_PROXY_PREFIX "%s",
             rs->o.beat_name ? rs->o.beat_name : rs->instance);
    rs->o.beat_name = NULL;
    if (rs->o.beat_ms <= 0)
        rs->o.beat_ms = RSTORE_PROXY_BEAT_MS;
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
    uv_timer_start(&rs->hb_timer, rs_hb_cb, (uint64_t)rs->o.heartbeat_ms,
                   (uint64_t)rs->o.heartbeat_ms);
    rs_link_start(rs);
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
        rs_wait_detach(rs->dl_head);
    rs_conn_drop(&rs->data);
    rs_conn_drop(&rs->sub);
    rs_conn_drop(&rs->sent);
    while (rs->lru_head)
        rs_cache_remove(rs, rs->lru_head);
    uv_close((uv_handle_t *)&rs->dl_timer, on_handle_closed);
    uv_close((uv_handle_t *)&rs->link_timer, on_handle_closed);
    uv_close((uv_handle_t *)&rs->hb_timer, on_handle_closed);
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
bool rs_stale(const struct rstore *rs)
{
    return rs->link != LINK_UP && rs_now(rs) - rs->last_contact > rs->max_stale_ms;
}
