/*
 * core_push: the core's side of the Redis state contract
 * (docs/state-contract.md): the core is its only writer.
 *
 *   easgate:dev:<DeviceId>  hash {state, user, reason, version, updated}
 *   easgate:changed         PUBLISH "<DeviceId> <version>"
 *
 * A device's hash write and its announcement are one Lua script, atomic in
 * Redis, so no proxy can see the announcement before the new state is
 * readable. The script writes only if Redis holds no version of the device
 * or an older one: the run loop and the admin API push independently, and
 * the older of two racing writes must not land last. An equal version (a
 * resync of an unchanged device) rewrites the fields without announcing.
 *
 * Why the synchronous hiredis API: the core is not the data plane. Its work
 * is a sequence (store the evaluation in SQLite, then tell Redis), it runs
 * on its own thread, and a blocking call with a timeout is the simplest code
 * that is obviously right. Resync pipelines its writes so that 100,000
 * devices are a few round trips, not 100,000.
 *
 * Failures return CORE_PUSH_EREDIS with the reason in core_push_error(); the
 * caller keeps going (SQLite holds the truth) and resyncs when Redis is back.
 */
#ifndef EG_CORE_PUSH_H
#define EG_CORE_PUSH_H

#include "connectors/rstore_contract.h"
#include "core/reg.h"

#include <stddef.h>
#include <stdint.h>

enum core_push_err {
    CORE_PUSH_EREDIS = -10, /* connection lost, timeout, or Redis refused a command */
    CORE_PUSH_EREG = -11,   /* reading the registry failed during resync */
    CORE_PUSH_OLDER = 1,    /* not an error: Redis already holds a newer version */
};

struct core_push_opts {
    const char *host; /* IPv4/IPv6 literal or name */
    int port;
    const char *password; /* NULL = no AUTH */
    int db;               /* SELECT this database when > 0 */
    int timeout_ms;       /* connect and per-reply timeout; 0 = 2000 */
};

struct core_push;

/* Connect (AUTH, SELECT, SCRIPT LOAD). On failure *out is NULL and err says why. */
int core_push_open(const struct core_push_opts *o, struct core_push **out, char *err,
                   size_t errlen);
void core_push_close(struct core_push *p); /* NULL is fine */

/* The last failure, for logs ("" if none). */
const char *core_push_error(const struct core_push *p);

/* Reconnect after a failure; 0 when connected again. */
int core_push_reconnect(struct core_push *p);

/*
 * Write one device's state and announce it, unless Redis holds a newer
 * version: 0 written (an equal version is rewritten, not announced),
 * CORE_PUSH_OLDER nothing written, or a negative error.
 */
int core_push_device(struct core_push *p, const struct core_device *d);

/* Remove a device's hash and announce it with version (take a fresh one:
 * proxies ignore announcements at or below the version they hold). */
int core_push_delete(struct core_push *p, const char *device_id, int64_t version);

struct core_resync_stats {
    size_t written;   /* devices whose hash was (re)written */
    size_t announced; /* of those, published: Redis had no or an older version */
    size_t newer;     /* left alone: Redis holds a newer version than the registry */
    size_t removed;   /* keys of devices the registry no longer has */
    size_t scanned;   /* easgate:dev:* keys looked at */
    int64_t elapsed_ms;
    int64_t write_ms; /* the rewrite part of elapsed_ms; the rest is the SCAN sweep */
};

/*
 * Rewrite every device of the registry into Redis (pipelined, each device
 * still one guarded write with its announcement), then SCAN easgate:dev:* and
 * remove every key whose DeviceId the registry does not hold in canonical
 * form. A flushed Redis heals; a Redis with leftovers is cleaned.
 */
int core_push_resync(struct core_push *p, struct core_reg *reg, struct core_resync_stats *st);

#endif
