/*
 * rstore_consume: the core's reader of easgate:sightings
 * (docs/state-contract.md), the stream the proxies append what they see to.
 *
 * It reads with the consumer group RSTORE_GROUP, so several cores share the
 * stream and a restarted core picks up where it stopped: after open it first
 * re-reads the entries it had been given but not acknowledged, then waits
 * for new ones. A batch is handed to the caller's handler and acknowledged
 * only once the handler says it is stored, so a crash replays entries rather
 * than losing them; the handler must take replays calmly.
 *
 * Its connection is its own (a blocking XREADGROUP would stall the writer's)
 * and blocking like the writer's (rstore_sync.h says why). One handle is
 * used by one thread.
 */
#ifndef EG_RSTORE_CONSUME_H
#define EG_RSTORE_CONSUME_H

#include "connectors/rstore_contract.h"
#include "connectors/rstore_sync.h"

#include <stddef.h>

struct rstore_consume;

/* Connect and create the group if needed (from the stream's start,
 * MKSTREAM). block_ms: how long one poll waits for new entries (0 = 1000). */
int rstore_consume_open(const struct rstore_sync_opts *o, const char *consumer, int block_ms,
                        struct rstore_consume **out, char *err, size_t errlen);
void rstore_consume_close(struct rstore_consume *s); /* NULL is fine */
const char *rstore_consume_error(const struct rstore_consume *s);

/* One stream entry; valid during the handler's call only. */
struct rstore_entry {
    const char *id;     /* the stream's entry id, "1700000000000-0" */
    const void *fields; /* private */
};

/* Values longer than this are read as absent. */
#define RSTORE_FIELD_MAX 320

/* The value of field name (RSTORE_SF_*), or NULL when the entry has none, it
 * is longer than RSTORE_FIELD_MAX or it holds a NUL. */
const char *rstore_entry_field(const struct rstore_entry *en, const char *name);

/*
 * The handler applies n entries as one unit and returns 0 once they are
 * stored (they are then acknowledged) or a negative code of its own (nothing
 * is acknowledged: the entries come back as pending after the next open).
 * An entry the handler cannot use should be counted and stored as "seen",
 * not failed, so that one bad entry cannot wedge the stream.
 */
typedef int (*rstore_consume_fn)(void *arg, const struct rstore_entry *en, size_t n);

/*
 * Handle what is there: pending entries first, then new ones, waiting up to
 * block_ms when there are none. Pending entries trimmed from the stream meanwhile
 * are acknowledged without reaching the handler. Returns 0, RSTORE_EREDIS or
 * RSTORE_ESOURCE (the handler failed); after an error, close and open again
 * after a pause.
 */
int rstore_consume_poll(struct rstore_consume *s, rstore_consume_fn fn, void *arg);

#endif
