/*
 * core_sight: the consumer of `easgate:sightings` (docs/state-contract.md),
 * the stream the proxies append what they see to.
 *
 * It reads with the consumer group "core", so several cores share the
 * stream and a restarted core picks up where it stopped: at open it first
 * re-reads the entries it had been given but not acknowledged, then waits
 * for new ones. Each entry is applied through the engine and acknowledged
 * after it was stored, so a crash replays entries rather than losing them;
 * replays are harmless (merges only move timestamps forward, a device is
 * created only once).
 *
 *   unknown-device, device-info -> core_eng_seen(): unknown devices are
 *       registered unmanaged, DeviceInformation is merged, the first user
 *       seen is bound, the device is evaluated (and pushed if it changed)
 *   wipe-ack -> the acknowledgement time is stored and audited
 *
 * Entries that cannot be used (no or invalid DeviceId, unknown kind) are
 * logged and acknowledged, so one bad entry cannot wedge the stream.
 *
 * The connection is its own (a blocking XREADGROUP would stall the push
 * connection); like core_push it is synchronous, for the same reasons.
 */
#ifndef EG_CORE_SIGHT_H
#define EG_CORE_SIGHT_H

#include "connectors/rstore_contract.h"
#include "core/eng.h"
#include "core/push.h"

#include <stddef.h>
#include <stdint.h>

struct core_sight;

/* Connect and create the group if needed (from the stream's start, MKSTREAM). */
int core_sight_open(const struct rstore_sync_opts *o, const char *consumer, int block_ms,
                    struct core_sight **out, char *err, size_t errlen);
void core_sight_close(struct core_sight *s); /* NULL is fine */
const char *core_sight_error(const struct core_sight *s);

struct core_sight_stats {
    uint64_t applied, invalid, created, wipe_acks;
};

/*
 * Handle what is there: pending entries first, then new ones, waiting up to
 * the block_ms given at open when there are none. now_ms is the core's clock
 * (entries' own times are used for last-seen, clamped to now_ms). Returns 0
 * or CORE_PUSH_EREDIS (reconnect with core_sight_open after a pause).
 */
int core_sight_poll(struct core_sight *s, struct core_eng *e, int64_t now_ms,
                    struct core_sight_stats *st);

/* Split DeviceInformation's OS ("iOS 16.1.1 20B101", "Android 12") into
 * family and version; version is "" when the second word is not a version. */
void core_sight_split_os(const char *os, char *family, size_t flen, char *version, size_t vlen);

#endif
