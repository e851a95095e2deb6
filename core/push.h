/*
 * core_push: the registry's side of the Redis state contract. A device
 * record becomes the contract's hash, and a resync walks the registry; the
 * writing itself (the version-guarded script, the pipeline, the sweep of
 * stale keys) is connectors/rstore_push.h's. The core reaches Redis only
 * through connectors/.
 *
 * The core's functions return CORE_REG_* codes from the registry and these
 * from Redis in one int, so the writer's failures (RSTORE_E*, negative errno
 * values that would collide with CORE_REG_*) are translated here into codes
 * of the core's own range. The reason stays in rstore_push_error().
 */
#ifndef EG_CORE_PUSH_H
#define EG_CORE_PUSH_H

#include "connectors/rstore_push.h"
#include "core/reg.h"

enum core_push_err {
    CORE_PUSH_EREDIS = -10, /* connection lost, timeout, or Redis refused a command */
    CORE_PUSH_EREG = -11,   /* reading the registry failed during resync */
    CORE_PUSH_OLDER = 1,    /* not an error: Redis already holds a newer version */
};

/*
 * Write one device's state and announce it, unless Redis holds a newer
 * version: 0 written (an equal version is rewritten, not announced),
 * CORE_PUSH_OLDER nothing written, or CORE_PUSH_EREDIS.
 */
int core_push_device(struct rstore_push *p, const struct core_device *d);
/* The same for ds[0..n) in one round trip (rstore_push_write_many): 0 when
 * every one was written or Redis held a newer one, else CORE_PUSH_EREDIS
 * (which landed is unknown: resync). At most CORE_PUSH_MANY at a time. */
#define CORE_PUSH_MANY 128
int core_push_devices(struct rstore_push *p, const struct core_device *const *ds, size_t n);

/* Remove a device's hash and announce it with version: 0 or CORE_PUSH_EREDIS. */
int core_push_delete(struct rstore_push *p, const char *device_id, int64_t version);

/* Rewrite every device of the registry into Redis and remove the keys of
 * devices it does not hold (rstore_push_resync): 0, CORE_PUSH_EREDIS or
 * CORE_PUSH_EREG. */
int core_push_resync(struct rstore_push *p, struct core_reg *reg, struct rstore_resync_stats *st);

#endif
