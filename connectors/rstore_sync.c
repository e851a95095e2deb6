/*
 * rstore_sync: opening one of the core's blocking connections (see
 * rstore_sync.h for why they block). Written once so that the writer and the
 * consumer connect, authenticate and select alike, and say the same thing
 * when they cannot.
 */
#include "connectors/rstore_sync_int.h"

#include <stdio.h>

static struct timeval tv_ms(int ms)
{
    return (struct timeval){ms / 1000, (ms % 1000) * 1000};
}

/* One setup command: NULL reply (I/O) or an error reply fails it. */
static int setup_cmd(redisContext *c, redisReply *r, const char *host, int port, const char *what,
                     char *err, size_t errlen)
{
    if (!r) {
        snprintf(err, errlen, "redis %s:%d: %s: %s", host, port, what,
                 c->err ? c->errstr : "no connection");
        return RSTORE_EREDIS;
    }
    int rc = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "redis %s: %s", what, r->str);
        rc = RSTORE_EREDIS;
    }
    freeReplyObject(r);
    return rc;
}

redisContext *rs_sync_connect(const struct rstore_sync_opts *o, int io_ms, char *err, size_t errlen)
{
    const char *host = o->host ? o->host : "127.0.0.1";
    int tmo = o->timeout_ms > 0 ? o->timeout_ms : RSTORE_SYNC_TIMEOUT_MS;
    redisContext *c = redisConnectWithTimeout(host, o->port, tv_ms(tmo));
    if (!c || c->err) {
        snprintf(err, errlen, "redis %s:%d: connect: %s", host, o->port,
                 c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return NULL;
    }
    int rc = 0;
    if (redisSetTimeout(c, tv_ms(io_ms > 0 ? io_ms : tmo)) != REDIS_OK) {
        snprintf(err, errlen, "redis %s:%d: set timeout: %s", host, o->port,
                 c->err ? c->errstr : "failed");
        rc = RSTORE_EREDIS;
    }
    if (rc == 0 && o->password)
        rc = setup_cmd(c, redisCommand(c, "AUTH %s", o->password), host, o->port, "AUTH", err,
                       errlen);
    if (rc == 0 && o->db > 0)
        rc =
            setup_cmd(c, redisCommand(c, "SELECT %d", o->db), host, o->port, "SELECT", err, errlen);
    if (rc < 0) {
        redisFree(c);
        return NULL;
    }
    return c;
}
