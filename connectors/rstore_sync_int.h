/*
 * rstore_sync_int: the blocking connection the core's writer and consumer
 * share (rstore_sync.h says why blocking). For connectors/ only: it is where
 * hiredis shows, and the core never sees hiredis.
 */
#ifndef EG_RSTORE_SYNC_INT_H
#define EG_RSTORE_SYNC_INT_H

#include "connectors/rstore_sync.h"

#include <hiredis/hiredis.h>

/*
 * Connect to o->host:o->port within o->timeout_ms, give every reply io_ms,
 * then AUTH and SELECT as o says. The connection, or NULL with the reason in
 * err ("redis HOST:PORT: connect: Connection refused", "redis AUTH: ...").
 */
redisContext *rs_sync_connect(const struct rstore_sync_opts *o, int io_ms, char *err,
                              size_t errlen);

#endif
