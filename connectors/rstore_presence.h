/*
 * rstore_presence: the proxies that are alive, as their workers announce
 * themselves in Redis (easgate:proxy:<host>/<pid>/<worker>, a JSON string
 * with a TTL of a few beats: docs/state-contract.md). The proxy writes them
 * through its store (rstore_opts.beat); the core reads them here for the
 * console's dashboard. A key that is gone is a worker that stopped beating:
 * there is nothing to clean up.
 */
#ifndef EG_RSTORE_PRESENCE_H
#define EG_RSTORE_PRESENCE_H

#include "connectors/rstore_sync.h"

#include <stddef.h>
#include <stdint.h>

#define RSTORE_PRESENCE_MAX 1024 /* keys read at most: proxies x workers */

struct rstore_presence {
    char key[192];  /* without RSTORE_PROXY_PREFIX: "host/pid/worker" */
    char json[768]; /* as the proxy wrote it */
    int64_t ttl_ms; /* until it expires unless renewed */
};

/*
 * Every presence key now (the members of RSTORE_PROXY_SET, then GET and
 * PTTL each), at most max, into
 * out; *n set. One blocking connection for the call, every reply bounded
 * by o's timeout. 0, or RSTORE_EREDIS with the reason in err.
 */
int rstore_presence_read(const struct rstore_sync_opts *o, struct rstore_presence *out, size_t max,
                         size_t *n, char *err, size_t errlen);

#endif
