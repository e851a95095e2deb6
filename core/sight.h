/*
 * core_sight: what the proxies' sightings (docs/state-contract.md,
 * easgate:sightings) mean to the registry. connectors/rstore_consume.h reads
 * the stream with the cores' consumer group and hands over batches; each
 * batch is applied through the engine in one transaction and acknowledged
 * only after it was stored, so a crash replays entries rather than losing
 * them. Replays are harmless: merges only move timestamps forward, a device
 * is created only once.
 *
 *   unknown-device, device-info with auth=exchange -> core_eng_seen():
 *       unknown devices are registered unmanaged, DeviceInformation is
 *       merged, the first user seen is bound, the device is evaluated (and
 *       pushed if it changed); without auth (the proxy answered itself,
 *       nobody checked a credential) -> core_eng_sighting(): no registry
 *       change; an unknown device is noted as pending (bounded table)
 *   wipe-ack -> the acknowledgement time is stored and audited
 *   provisioned -> the final policy key and its time are recorded (a
 *       device not registered is only noted as pending)
 *   autoblock -> a registered device is blocked from the entry's time for
 *       its block_ms, reason "autoblock:RULE", audited (device.autoblock);
 *       others are counted and ignored (core_eng_autoblock)
 *   auth-block -> one audit row (proxy.auth-block) for the notifications
 *
 * Entries that cannot be used (no or invalid DeviceId, unknown kind) are
 * logged, counted and acknowledged, so one bad entry cannot wedge the stream.
 */
#ifndef EG_CORE_SIGHT_H
#define EG_CORE_SIGHT_H

#include "connectors/rstore_consume.h"
#include "core/eng.h"
#include "core/push.h"
#include "core/wr.h"

#include <stddef.h>
#include <stdint.h>

struct core_sight_stats {
    uint64_t applied, invalid, created, wipe_acks;
    uint64_t unauthenticated;   /* unknown-device, device-info without auth: no registry change */
    uint64_t pending;           /* of which noted as pending (devices not registered) */
    uint64_t autoblocks;        /* devices an autoblock entry blocked (or blocked longer) */
    uint64_t autoblock_unknown; /* autoblock entries of devices the registry does not hold */
    uint64_t auth_blocks;       /* auth-block entries audited */
};

/*
 * Handle what is there (rstore_consume_poll): pending entries first, then new
 * ones, waiting up to the block_ms given at open when there are none. Each
 * batch is applied on the writer (core_wr_call: one job of its group) and
 * acknowledged after its commit. now_ms is the core's clock (entries' own
 * times are used for last-seen, clamped to now_ms). Returns 0 or
 * CORE_PUSH_EREDIS, with the reason in rstore_consume_error() (reopen after
 * a pause).
 */
int core_sight_poll(struct rstore_consume *s, struct core_wr *wr, int64_t now_ms,
                    struct core_sight_stats *st);

/* One batch through an engine, in one transaction (what the writer runs). */
int core_sight_apply(struct core_eng *e, const struct rstore_entry *en, size_t n, int64_t now_ms,
                     struct core_sight_stats *st);

/* Split DeviceInformation's OS ("iOS 16.1.1 20B101", "Android 12") into
 * family and version; version is "" when the second word is not a version. */
void core_sight_split_os(const char *os, char *family, size_t flen, char *version, size_t vlen);

#endif
