/*
 * rstore_int: what the pieces of the proxy's state store share. Callers use
 * rstore.h; this header is for connectors/rstore*.c only.
 *
 * One struct rstore belongs to one worker loop, and every piece works on it
 * from that loop's thread. The pieces are split by idea:
 *
 *   rstore.c           lifetime: new, free, the change callback, staleness
 *   rstore_shared.c    the process-wide fallback of what every worker fetched
 *   rstore_cache.c     the worker's cache, and how a hash becomes an entry
 *   rstore_fetch.c     lookups: shared fetches, waiters, deadlines, invalidation
 *   rstore_link.c      the link: connections, handshake, heartbeat, backoff
 *   rstore_uv.c        hiredis's async API driven by libuv
 *   rstore_dns.c       name resolution off the loop thread
 *   rstore_sentinel.c  finding the master through Sentinel, following failovers
 *   rstore_sight.c     sightings appended to the stream
 *   rstore_metrics.c   counters for /metrics
 *
 * Functions shared between pieces carry the rs_ prefix; everything else is
 * static in its file.
 */
#ifndef EG_RSTORE_INT_H
#define EG_RSTORE_INT_H

#include "connectors/rstore.h"

#include <arpa/inet.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdint.h>

#define RS_FETCH_BUCKETS 4096 /* fetch table; chains stay short under bursts */
#define RS_SIGHT_SLOTS 8192   /* rate-limit table, direct mapped */
#define RS_HOST_MAX 256

/* Counters have a single writer (the loop thread) and may be read from the
 * metrics thread: relaxed atomics make that well defined at no cost. */
#define ST_ADD(rs, f, n)                                                                           \
    __atomic_store_n(&(rs)->st.f, __atomic_load_n(&(rs)->st.f, __ATOMIC_RELAXED) + (n),            \
                     __ATOMIC_RELAXED)
#define ST_INC(rs, f) ST_ADD(rs, f, 1)

/* One cached device (rstore_cache.c), or a negative entry (found 0). */
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
    char *strs;         /* "user\0reason\0bound\0", NULL for a negative entry */
    const char *reason;
    const char *bound; /* RSTORE_F_ENROLLMENT of a device, RSTORE_F_DEVICE of an enrollment */
    char devid[RSTORE_DEVID_MAX + 1];
};

/* One slot of the process-wide fallback (rstore_shared.c): an rs_entry's copy. */
struct rs_shared_entry {
    uint8_t found, state, wipe_account;
    uint64_t pk_epoch, version;
    int64_t updated_ms;
    char devid[RSTORE_DEVID_MAX + 1];
    size_t slen;
    char strs[]; /* "user\0reason\0bound\0" as in rs_entry, or empty */
};

/* One HGETALL in flight and the lookups waiting on it (rstore_fetch.c). */
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

/* The link's connections (rstore_link.c). */
enum rs_role { RS_DATA, RS_SUB, RS_SENT };

struct rs_conn {
    struct rstore *rs;
    redisAsyncContext *ac;
    enum rs_role role;
};

enum rs_link { LINK_DOWN, LINK_CONNECTING, LINK_UP };

/* When a device was last reported, per kind (rstore_sight.c). */
struct rs_sight_slot {
    int64_t last_ms;
    uint8_t kind;
    bool authed; /* the sighting sent carried auth (Exchange answered 2xx) */
    char devid[RSTORE_DEVID_MAX + 1];
    /* The newest "seen" held back since: sent when the interval ends. */
    int64_t held_wall_ms; /* its wall-clock time */
    char *held;           /* its fields, "name\0value\0..."; NULL = none */
    size_t held_len;
    uint8_t held_n; /* fields (names and values) */
};

/* One instance: one worker loop's store. */
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
    char beat_key[192]; /* RSTORE_PROXY_PREFIX + beat_name */
    int64_t beat_last;  /* when the presence key was last written */

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
    size_t sight_held; /* slots holding a "seen" back */

    struct rstore_stats st;
    int closing;
    int open_handles;
    int open_resolves;
};

static inline int64_t rs_now(const struct rstore *rs)
{
    return (int64_t)uv_now(rs->loop);
}

/* FNV-1a: short keys, good spread, no setup. */
static inline uint32_t rs_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

/* rstore.c */
void rs_destroy(struct rstore *rs);
/* The max_stale rule on the loop thread, with the loop's clock. */
bool rs_stale(const struct rstore *rs);

/* rstore_shared.c: NULL sh is fine (no fallback) */
void rs_shared_put(struct rstore_shared *sh, const struct rs_entry *e);
void rs_shared_del(struct rstore_shared *sh, const char *devid, uint32_t h, uint64_t version);
struct rs_shared_entry *rs_shared_get(struct rstore_shared *sh, const char *devid, uint32_t h);

/* rstore_cache.c */
struct rs_entry *rs_cache_find(struct rstore *rs, const char *devid, uint32_t h);
void rs_cache_touch(struct rstore *rs, struct rs_entry *e); /* most recently used */
void rs_cache_remove(struct rstore *rs, struct rs_entry *e);
struct rs_entry *rs_cache_store(struct rstore *rs, const char *devid, uint32_t h,
                                const redisReply *r);
void rs_fill_result(const struct rstore *rs, const struct rs_entry *e, struct rstore_result *r,
                    bool fallback);
void rs_fill_unavailable(const struct rstore *rs, struct rstore_result *r);
void rs_fill_fallback(struct rstore *rs, const char *devid, uint32_t h, struct rstore_result *r);
bool rs_parse_u64(const char *s, size_t n, uint64_t *out);

/* rstore_fetch.c */
void rs_wait_detach(struct rstore_wait *w);
void rs_on_changed(struct rstore *rs, const char *msg, size_t n);

/* rstore_link.c */
void rs_link_start(struct rstore *rs);
void rs_link_fail(struct rstore *rs, const char *why, bool at_sentinel);
void rs_link_set_timer(struct rstore *rs, int64_t ms);
int rs_conn_open(struct rstore *rs, struct rs_conn *c, const char *ip, int port);
void rs_conn_drop(struct rs_conn *c);
void rs_connect_master(struct rstore *rs, const char *ip, int port);
void rs_hb_cb(uv_timer_t *t);

/* rstore_sight.c: send the held "seen" entries whose interval ended (each
 * heartbeat), and free what is held (at destroy). */
void rs_sight_flush(struct rstore *rs);
void rs_sight_free(struct rstore *rs);

/* rstore_uv.c: drive ac from loop; 0 or RSTORE_ENOMEM / RSTORE_EREDIS */
int rs_attach(redisAsyncContext *ac, uv_loop_t *loop);

/* rstore_dns.c: done(rs, ip, port) on the loop, unless the link moved on */
void rs_resolve(struct rstore *rs, const char *host, int port,
                void (*done)(struct rstore *, const char *, int));

/* rstore_sentinel.c */
void rs_connect_sentinel(struct rstore *rs, const char *ip, int port);

#endif
