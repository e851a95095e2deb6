/*
 * rstore_push: the core's writer of the state contract
 * (docs/state-contract.md); the core is its only writer.
 *
 *   easgate:dev:<DeviceId>  hash {state, user, reason, version, updated, ...}
 *   easgate:changed         PUBLISH "<DeviceId> <version>"
 *
 * A device's hash write and its announcement are one Lua script, atomic in
 * Redis, so no proxy can see the announcement before the new state is
 * readable. The script writes only if Redis holds no version of the device
 * or an older one: the core's run loop and its admin API write independently,
 * and the older of two racing writes must not land last. An equal version (a
 * resync of an unchanged device) rewrites the fields without announcing.
 *
 * Blocking, with timeouts (rstore_sync.h says why). A resync pipelines its
 * writes so that 100,000 devices are a few round trips, not 100,000.
 *
 * Failures return RSTORE_EREDIS (or RSTORE_ENOMEM) with the reason in
 * rstore_push_error(); the caller keeps going (its registry holds the truth)
 * and resyncs when Redis is back. One handle is used by one thread.
 */
#ifndef EG_RSTORE_PUSH_H
#define EG_RSTORE_PUSH_H

#include "connectors/rstore_contract.h"
#include "connectors/rstore_sync.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One device's hash as the contract has it. Strings are borrowed. */
struct rstore_dev {
    const char *device_id; /* canonical (rstore_devid_norm) */
    enum rstore_state state;
    const char *user;   /* bound user, "" = any */
    const char *reason; /* for logs */
    int64_t version;    /* the write carries it; the guard compares it */
    int64_t updated_ms;
    bool wipe_account; /* wipe_kind account, else full */
    int64_t pk_epoch;
    uint32_t policy_key; /* 0 = none seen */
    int64_t provisioned_ms;
    const char *enrollment; /* the portal certificate it is bound to; NULL/"" = none */
};

struct rstore_push;

/* Connect (AUTH, SELECT, SCRIPT LOAD). On failure *out is NULL and err says why. */
int rstore_push_open(const struct rstore_sync_opts *o, struct rstore_push **out, char *err,
                     size_t errlen);
void rstore_push_close(struct rstore_push *p); /* NULL is fine */

/* The last failure, for logs ("" if none). */
const char *rstore_push_error(const struct rstore_push *p);

/* Reconnect after a failure; 0 when connected again. (Every call below
 * reconnects by itself when the connection was lost.) */
int rstore_push_reconnect(struct rstore_push *p);

/* Not an error: Redis already holds a newer version; nothing was written. */
#define RSTORE_PUSH_OLDER 1

/*
 * Write one device's hash and announce it, unless Redis holds a newer
 * version: 0 written (an equal version is rewritten, not announced),
 * RSTORE_PUSH_OLDER, or a negative error.
 */
int rstore_push_write(struct rstore_push *p, const struct rstore_dev *d);

/*
 * The same for d[0..n), pipelined: every write is sent, then every reply
 * read, so n devices cost one round trip rather than n (a batch of changes
 * committed together: an import, a tick's evaluations). out[i] gets 0 or
 * RSTORE_PUSH_OLDER. Returns 0, or a negative error (the connection is
 * then closed, and which writes landed is unknown: resync).
 */
int rstore_push_write_many(struct rstore_push *p, const struct rstore_dev *d, size_t n, int *out);

/*
 * Write a portal certificate's binding (the enrollment hash, RSTORE_ENR_PREFIX
 * + id: state allow, user, device, version, updated = version) and announce
 * it as "!<id> <version>", in one transaction. A resync leaves these hashes
 * alone (docs/state-contract.md).
 */
int rstore_push_enrollment(struct rstore_push *p, const char *enrollment, const char *user,
                           const char *device_id, int64_t version);

/* Remove a device's hash and announce it with version (take a fresh one:
 * proxies ignore announcements at or below the version they hold). */
int rstore_push_delete(struct rstore_push *p, const char *device_id, int64_t version);

/*
 * What a resync rewrites and what it keeps, seen through callbacks so that
 * connectors/ knows nothing of the core's registry. Each callback returns 0
 * (or what is said) or a negative code of the source's own, which the resync
 * turns into RSTORE_ESOURCE with "resync: <name> read|write failed (<code>)"
 * in rstore_push_error().
 */
struct rstore_resync_src {
    const char *name; /* for error texts: "registry" */
    /* Call put(d, ctx) for every device; when put returns non-zero, stop and
     * return that. */
    int (*each)(void *arg, int (*put)(const struct rstore_dev *d, void *ctx), void *ctx);
    /* 1 when the source holds this canonical DeviceId, 0 when it does not. */
    int (*exists)(void *arg, const char *device_id);
    /* A fresh version, to announce a removal with. */
    int (*next_version)(void *arg, int64_t *version);
    void *arg;
};

struct rstore_resync_stats {
    size_t written; /* devices whose hash holds the source's values now: rewritten, or unchanged */
    size_t unchanged; /* of those, found equal to the source's and so not written at all */
    size_t announced; /* of those, published: Redis had no or an older version */
    size_t newer;     /* left alone: Redis holds a newer version than the source */
    size_t removed;   /* keys of devices the source no longer has */
    size_t scanned;   /* easgate:dev:* keys looked at */
    int64_t elapsed_ms;
    int64_t write_ms; /* the rewrite part of elapsed_ms; the rest is the SCAN sweep */
    size_t bindings;  /* enrollment hashes written after it (the core's portal bindings) */
};

/*
 * Rewrite every device of src into Redis (pipelined: each device's hash is
 * read, and one that differs in any field gets the guarded write with its
 * announcement; one that holds exactly src's values is left as it is),
 * then SCAN easgate:dev:* and remove
 * every key whose DeviceId src does not hold in canonical form. A flushed
 * Redis heals; a Redis with leftovers is cleaned. 0, RSTORE_EREDIS or
 * RSTORE_ESOURCE.
 */
int rstore_push_resync(struct rstore_push *p, const struct rstore_resync_src *src,
                       struct rstore_resync_stats *st);

#endif
