/*
 * rstore: the device state store as the proxy sees it (docs/state-contract.md).
 *
 * The management core writes one Redis hash per device and publishes a
 * message when it changes; every proxy worker keeps its own small cache of
 * those hashes so that a decision never waits on Redis when the answer is
 * already known. One struct rstore belongs to one uv loop (one worker): it is
 * not thread-safe, and every callback it makes runs on that loop, never from
 * inside the call that started the work. Exceptions, for the admin thread:
 * rstore_connected(), rstore_stale() and rstore_stats_get() may be called
 * from any thread while the instance lives.
 *
 * What it does for the request path:
 *   - rstore_lookup() answers from the cache at once, or starts one HGETALL
 *     that every concurrent lookup of the same DeviceId shares;
 *   - "no such device" is cached as well (a negative entry);
 *   - a message on easgate:changed refetches that device and tells the proxy
 *     (rstore_on_change) so it can cut a held Ping;
 *   - when Redis is away the cache keeps answering, flagged stale once
 *     max_stale has passed since the last contact: the caller fails closed.
 * And beside it: sightings appended to the easgate:sightings stream, at most
 * once per device and kind per sighting interval; counters for /metrics;
 * Sentinel discovery and failover.
 *
 * Connections: a data connection (HGETALL, XADD, heartbeat PUBLISH) and a
 * subscriber connection per instance, plus one to a Sentinel when configured.
 * A heartbeat through both proves the link alive every second; a link that
 * stays silent for three heartbeats is dropped and rebuilt with exponential
 * backoff capped at 5 s. After every reconnect the whole cache is marked
 * unverified (it may have missed invalidations) and the change callback is
 * called with device_id NULL.
 */
#ifndef EG_RSTORE_H
#define EG_RSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "connectors/rstore_contract.h"

struct conf_redis;
struct rstore;

enum rstore_status {
    RSTORE_FOUND,       /* the hash exists: state, user, reason, version valid */
    RSTORE_NOT_FOUND,   /* Redis says there is no such device */
    RSTORE_UNAVAILABLE, /* no answer (Redis down or lookup_timeout) and nothing cached */
};

/*
 * One answer. The strings point into the cache: they stay valid until the
 * caller returns to the loop or makes its next rstore call, whichever comes
 * first. Copy what must live longer.
 */
struct rstore_result {
    enum rstore_status status;
    enum rstore_state state; /* FOUND only */
    const char *user;        /* bound user, "" = any user; never NULL */
    const char *reason;      /* the core's reason, for logs; never NULL */
    /* The portal binding, "" if none; never NULL: for a device, the
     * enrollment id of the certificate it is bound to; for an enrollment
     * (rstore_lookup_enrollment), the DeviceId bound to it. */
    const char *bound;
    uint64_t version;   /* FOUND only */
    int64_t updated_ms; /* unix ms written by the core; 0 if absent */
    /* wipe_kind = account: state wipe asks for AccountOnlyRemoteWipe (EAS
     * 16.1) rather than a full wipe. */
    bool wipe_account_only;
    /* pk_epoch: the device's provisioning epoch, mixed into its policy keys
     * (proxy/srv.h); the core bumps it to make one device provision again. */
    uint64_t pk_epoch;
    /* Not fresh from Redis: served from the cache while Redis is unreachable
     * or slower than lookup_timeout. */
    bool cached_fallback;
    /* No contact with Redis for max_stale: the decision must fail closed for
     * known devices (block, reason "state-stale"). */
    bool stale;
};

/*
 * What every instance of a process fetched, for an instance that has not
 * seen a device to fall back on while Redis is unreachable. Each worker's
 * cache is its own and a phone's next connection may land on any worker:
 * without this, a device known to the process would be "unknown" to the
 * workers that had not looked it up when Redis went away. Thread-safe;
 * written when an instance stores a fetched hash, read only when Redis
 * cannot answer, entries dropped on a change message like the caches'.
 * Bounded: slots entries, a newer device takes an older one's slot.
 */
struct rstore_shared;
#define RSTORE_SHARED_SLOTS 131072
struct rstore_shared *rstore_shared_new(size_t slots);
/* After every instance using it is freed. */
void rstore_shared_free(struct rstore_shared *sh);

/* Settings that are not in easgate.yaml; zero fields take the default. */
struct rstore_opts {
    struct rstore_shared *shared; /* NULL: no process-wide fallback */
    const char *instance;         /* written into sightings; default "hostname/pid" */
    size_t cache_max;             /* entries per instance; default 131072 */
    int64_t refresh_ms;           /* a hit older than this is refetched in the
                                     background (safety net); default 600000 */
    int64_t heartbeat_ms;         /* default 1000 */
    int64_t dead_ms;              /* link declared dead after silence; default 3 heartbeats */
    int64_t connect_ms;           /* a (re)connect must finish within; default 2000 */
    int64_t backoff_max_ms;       /* reconnect backoff cap; default 5000 */
    size_t max_inflight;          /* distinct lookups in flight; beyond, answer at once
                                     from what is cached; default 65536 */
    /* Presence (docs/state-contract.md, easgate:proxy:*): every beat_ms
     * (default RSTORE_PROXY_BEAT_MS) while the link is up, beat(beat_arg)
     * writes a JSON object into out (its length, or < 0 to skip) and the
     * store SETs it as RSTORE_PROXY_PREFIX + beat_name with a TTL of
     * RSTORE_PROXY_TTL_BEATS beats. beat NULL = no presence. Called on the
     * store's loop; beat_name is copied. */
    int (*beat)(void *arg, char *out, size_t cap);
    void *beat_arg;
    const char *beat_name;
    int64_t beat_ms;
};

/*
 * A lookup in flight. The caller provides the storage (typically inside its
 * per-request struct) so a lookup allocates nothing; it must stay put until
 * the callback has run or rstore_cancel() returned. Fields are private.
 */
struct rstore_wait;
typedef void (*rstore_lookup_cb)(struct rstore_wait *w, void *arg, const struct rstore_result *res);
struct rstore_wait {
    struct rstore_wait *next, *prev;   /* in the shared fetch's list */
    struct rstore_wait *dnext, *dprev; /* in the deadline list */
    void *fetch;
    struct rstore *rs;
    rstore_lookup_cb cb;
    void *arg;
    int64_t deadline_ms;
    uint64_t t0_ns;
};

/*
 * New instance on loop, connecting in the background (this never blocks:
 * names are resolved with uv_getaddrinfo). conf is copied; opts may be NULL.
 * NULL on allocation failure or if conf is unusable (no host and no sentinel).
 */
struct rstore *rstore_new(uv_loop_t *loop, const struct conf_redis *conf);
struct rstore *rstore_new_ex(uv_loop_t *loop, const struct conf_redis *conf,
                             const struct rstore_opts *opts);

/*
 * Close the connections and timers and free the instance once the loop has
 * run their close callbacks (run the loop after this). Lookups still waiting
 * are dropped without a callback. Never call it from inside an rstore callback.
 */
void rstore_free(struct rstore *rs);

#define RSTORE_PENDING 1
/*
 * Look a device up. Returns
 *   0              answered now: *out is filled (cache hit, negative hit,
 *                  or Redis down / overloaded with nothing better to say);
 *   RSTORE_PENDING cb(w, arg, res) will run on the loop exactly once, within
 *                  lookup_timeout, unless rstore_cancel(w) is called first;
 *   RSTORE_EINVAL  the DeviceId is not valid (the caller decides: block).
 * On timeout or link failure the callback gets the cached entry (with
 * cached_fallback) if there is one, else RSTORE_UNAVAILABLE.
 */
int rstore_lookup(struct rstore *rs, const char *device_id, size_t len, struct rstore_result *out,
                  struct rstore_wait *w, rstore_lookup_cb cb, void *arg);

/*
 * The same for a portal certificate's enrollment id (letters and digits,
 * at most RSTORE_ENRID_MAX): its hash says which device it is bound to
 * (res->bound). Cached, shared and refreshed like a device's.
 */
int rstore_lookup_enrollment(struct rstore *rs, const char *id, size_t len,
                             struct rstore_result *out, struct rstore_wait *w, rstore_lookup_cb cb,
                             void *arg);

/* Forget a pending lookup (its connection died): no callback will come. A
 * wait that is not pending (already called back, or never started) is fine. */
void rstore_cancel(struct rstore_wait *w);

/*
 * Called after a published change has been refetched: device_id is the
 * canonical DeviceId and res its new state (UNAVAILABLE if the refetch
 * failed). device_id NULL and res NULL mean "the whole cache was
 * invalidated" (reconnect): re-check everything held. One callback per
 * instance; NULL removes it.
 */
typedef void (*rstore_change_cb)(void *arg, const char *device_id, const struct rstore_result *res);
void rstore_on_change(struct rstore *rs, rstore_change_cb cb, void *arg);

/* The max_stale rule: true when Redis has been out of reach for longer than
 * max_stale. Known devices must then be blocked with reason "state-stale";
 * unknown devices follow the policy's unknown_devices. */
bool rstore_stale(const struct rstore *rs);
/* Both connections up and answering. For /readyz. */
bool rstore_connected(const struct rstore *rs);

/*
 * Sightings (XADD easgate:sightings MAXLEN ~ stream_maxlen). fields is
 * nfields/2 name, value pairs added after kind, device, instance and time.
 * Returns 0 sent (queued on the connection), 1 suppressed by the per-device
 * interval, RSTORE_ENOTCONN Redis is down (dropped, counted), RSTORE_EINVAL
 * bad input. Wipe acknowledgements, provisioned keys, autoblock and auth-block
 * reports are never suppressed.
 */
int rstore_sighting(struct rstore *rs, enum rstore_sighting_kind kind, const char *device_id,
                    size_t len, const char *const *fields, size_t nfields);

/*
 * The same with the contract's field names (docs/state-contract.md): NULL or
 * "" fields are left out. device_id is the DeviceId as the request gave it.
 */
struct rstore_sight {
    enum rstore_sighting_kind kind;
    const char *device_id;
    /* every kind */
    const char *user, *device_type, *user_agent, *protocol_version, *client_addr;
    const char *auth; /* RSTORE_AUTH_EXCHANGE after Exchange's 2xx, else NULL */
    /* device-info: Provision/Settings DeviceInformation (MS-ASCMD Settings) */
    const char *model, *imei, *friendly_name, *os, *os_language, *phone_number, *mobile_operator;
    /* wipe-ack: the Status the device sent with its acknowledgement */
    const char *status;
    /* cert-bind, cert-mismatch: the portal certificate's enrollment id and
     * (cert-mismatch) the device it is bound to */
    const char *enrollment, *bound;
};
int rstore_sight(struct rstore *rs, const struct rstore_sight *s);

/* ---- Abuse counters (docs/state-contract.md, "Abuse counters") ------------
 *
 * The proxy's budgets and failed-login counts are shared by every proxy
 * through Redis, and nothing in the request path waits for it: the caller
 * decides on what it knows locally and the totals come back later.
 */

/* One field of a second's budget hash, and how much this worker adds. */
struct rstore_count {
    const char *field; /* "d:<DeviceId>", "u:<hash>", "c:<address>" */
    size_t len;
    long long by;
};
/* total: the field's value after the addition (every proxy's requests in
 * that second), or -1 when Redis did not answer. */
typedef void (*rstore_count_cb)(void *arg, size_t i, long long total);
/*
 * HINCRBY each of v[0..n) into the hash of unix second sec, and set the
 * hash's expiry, in one script (one command). cb(arg, i, total) runs once
 * per entry, in order, on the loop (also when the link fails: total -1),
 * then cb(arg, SIZE_MAX, 0) once: the batch is over. Returns 0, or RSTORE_ENOTCONN (nothing
 * sent, no callback) / RSTORE_ENOMEM.
 */
int rstore_count_add(struct rstore *rs, int64_t sec, const struct rstore_count *v, size_t n,
                     rstore_count_cb cb, void *arg);

/* Autoblock incidents to add: rule (Exchange's BehaviorType name), the
 * canonical DeviceId, how many, and the rule's window. */
struct rstore_ab {
    const char *rule;
    const char *devid;
    long long by;
    int64_t window_ms;
};
/*
 * INCRBY each of v[0..n) (easgate:ab:RULE:DEVID), the key expiring window_ms
 * after its first incident, in one script (one command). cb(arg, i, total)
 * as for rstore_count_add: every proxy's incidents in the window, or -1;
 * then cb(arg, SIZE_MAX, 0). Returns 0, RSTORE_ENOTCONN or RSTORE_ENOMEM
 * (no callback then).
 */
int rstore_ab_add(struct rstore *rs, const struct rstore_ab *v, size_t n, rstore_count_cb cb,
                  void *arg);

/* A failed login to count: scope "client", "user" or "known-device", id
 * what is counted (an address, a user hash and an address, ...). */
struct rstore_fail {
    const char *scope;
    const char *id;
    int64_t window_ms;    /* the count's life from its first failure */
    int limit;            /* failures that block */
    int64_t block_ms;     /* first block, doubled on each repeat */
    int64_t block_max_ms; /* ceiling */
    int64_t memory_ms;    /* repeats are remembered this long */
};
enum rstore_fail_outcome {
    RSTORE_FAIL_COUNTED, /* value: the failures so far */
    RSTORE_FAIL_BLOCKED, /* this failure blocked: value ms, strike the repeat (1 first) */
    RSTORE_FAIL_ALREADY, /* a block was in force: value ms left */
    RSTORE_FAIL_ERROR,   /* Redis did not answer */
};
typedef void (*rstore_fail_cb)(void *arg, uint64_t tag, enum rstore_fail_outcome o, long long value,
                               long long strike);
/*
 * Count one failure (one script run, atomic in Redis, so several proxies
 * crossing at once make one block). cb(arg, tag, ...) runs once on the loop.
 * Returns 0, RSTORE_ENOTCONN or RSTORE_ENOMEM (no callback then).
 */
int rstore_fail_add(struct rstore *rs, const struct rstore_fail *f, rstore_fail_cb cb, void *arg,
                    uint64_t tag);

/* ---- Metrics ------------------------------------------------------------- */

/* Upper bounds (microseconds) of the lookup latency buckets; the last
 * bucket is +Inf. Only lookups that went to Redis are timed. */
#define RSTORE_LAT_BUCKETS 12
extern const uint32_t rstore_lat_bounds_us[RSTORE_LAT_BUCKETS - 1];

struct rstore_stats {
    uint64_t hits, misses, negative_hits, fallbacks, timeouts, unavailable;
    uint64_t fetches, fetch_errors, invalidations, reconnects;
    uint64_t sightings_sent, sightings_suppressed, sightings_dropped;
    uint64_t abuse_ops; /* commands sent for the abuse counters (rstore_count.c) */
    uint64_t lat_count, lat_sum_us;
    uint64_t lat_buckets[RSTORE_LAT_BUCKETS]; /* not cumulative */
    uint64_t entries;
    uint64_t connected;       /* instances connected (1 or 0 per instance) */
    uint64_t stale;           /* instances past max_stale: failing closed */
    int64_t since_contact_ms; /* max over the instances added */
};

/* Read one instance's counters. Safe from another thread (each counter is
 * read atomically; the set is not a snapshot). */
void rstore_stats_get(const struct rstore *rs, struct rstore_stats *out);
/* sum += one, for adding the workers up. */
void rstore_stats_add(struct rstore_stats *sum, const struct rstore_stats *one);
/* Prometheus text format, "easgate_redis_*" names. Returns bytes written
 * (without NUL) or RSTORE_ENOSPC. */
int rstore_stats_format(const struct rstore_stats *st, char *buf, size_t len);

#endif
