/*
 * rstore_presence: reading the proxies' presence keys. See rstore_presence.h.
 *
 * The keys are found through RSTORE_PROXY_SET, not a SCAN: a SCAN walks
 * every key of the database (a million devices' hashes: about a second of
 * round trips), the set holds only the presence keys of the last TTL (each
 * beat trims it). A member whose key has expired meanwhile is skipped.
 */
#include "connectors/rstore_presence.h"

#include "connectors/rstore_sync_int.h"

#include <stdio.h>
#include <string.h>

static int one(redisContext *c, const char *key, struct rstore_presence *p)
{
    redisReply *v = redisCommand(c, "GET %s", key);
    redisReply *t = v ? redisCommand(c, "PTTL %s", key) : NULL;
    int ok = v && t && v->type == REDIS_REPLY_STRING && v->len < sizeof(p->json) &&
             t->type == REDIS_REPLY_INTEGER;
    if (ok) {
        snprintf(p->key, sizeof(p->key), "%s", key + strlen(RSTORE_PROXY_PREFIX));
        memcpy(p->json, v->str, v->len);
        p->json[v->len] = '\0';
        p->ttl_ms = t->integer;
    }
    if (v)
        freeReplyObject(v);
    if (t)
        freeReplyObject(t);
    return ok;
}

int rstore_presence_read(const struct rstore_sync_opts *o, struct rstore_presence *out, size_t max,
                         size_t *n, char *err, size_t errlen)
{
    *n = 0;
    redisContext *c = rs_sync_connect(o, 0, err, errlen);
    if (!c)
        return RSTORE_EREDIS;
    int rc = 0;
    redisReply *r = redisCommand(c, "ZRANGE %s 0 %lld", RSTORE_PROXY_SET, (long long)max - 1);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        snprintf(err, errlen, "redis ZRANGE %s: %s", RSTORE_PROXY_SET,
                 r && r->type == REDIS_REPLY_ERROR ? r->str
                 : c->err                          ? c->errstr
                                                   : "bad reply");
        rc = RSTORE_EREDIS;
    }
    size_t plen = strlen(RSTORE_PROXY_PREFIX);
    for (size_t i = 0; rc == 0 && i < r->elements && *n < max; i++) {
        redisReply *k = r->element[i];
        if (k->type == REDIS_REPLY_STRING && k->len > plen && k->len < sizeof(out->key) + plen &&
            strncmp(k->str, RSTORE_PROXY_PREFIX, plen) == 0)
            *n += (size_t)one(c, k->str, &out[*n]);
    }
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return rc;
}
