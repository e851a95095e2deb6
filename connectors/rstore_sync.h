/*
 * rstore_sync: where the core's Redis connections go, and how they are
 * opened. The core's writer (rstore_push.h) and its sightings consumer
 * (rstore_consume.h) each hold one.
 *
 * Why the blocking hiredis API here, when the proxy's store is asynchronous:
 * the core is not the data plane. Its work is a sequence (store an
 * evaluation in SQLite, then tell Redis; read a batch of sightings, store
 * it, then acknowledge it), it runs on threads of its own, and a blocking
 * call with a timeout is the simplest code that is obviously right. Every
 * call is bounded by the timeouts below; none waits forever.
 */
#ifndef EG_RSTORE_SYNC_H
#define EG_RSTORE_SYNC_H

#include "connectors/rstore_contract.h"

/* Connect and per-reply timeout when opts say 0. */
#define RSTORE_SYNC_TIMEOUT_MS 2000

struct conf_redis;

struct rstore_sync_opts {
    const char *host; /* IPv4/IPv6 literal or name; NULL = 127.0.0.1 */
    int port;
    const char *password; /* NULL = no AUTH */
    int db;               /* SELECT this database when > 0 */
    int timeout_ms;       /* connect and per-reply timeout; 0 = RSTORE_SYNC_TIMEOUT_MS */
};

/*
 * Ask r's sentinels, in the order listed, where the master of
 * r->sentinel.master is now (SENTINEL get-master-addr-by-name; at most 1 s
 * per sentinel). 0 with host and port filled, or RSTORE_EREDIS when none
 * named one. Every Redis connection of the core (run loop, sightings, admin
 * API) finds its master this way, asking the question the proxy's store asks
 * without blocking (rstore_sentinel.c).
 */
int rstore_sentinel_master(const struct conf_redis *r, char *host, size_t hlen, int *port);

#endif
