/*
 * rstore_presence: reading the proxies' presence keys. See rstore_presence.h.
 *
 * SCAN rather than KEYS: the database may be shared and large, and SCAN
 * never holds Redis for more than a step. A key that expires between the
 * SCAN and its GET is skipped.
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
    char cursor[32] = "0";
    int rc = 0;
    do {
        redisReply *r =
            redisCommand(c, "SCAN %s MATCH %s* COUNT 1000", cursor, RSTORE_PROXY_PREFIX);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
            snprintf(err, errlen, "redis SCAN: %s",
                     r && r->type == REDIS_REPLY_ERROR ? r->str
                     : c->err                          ? c->errstr
                                                       : "bad reply");
            if (r)
                freeReplyObject(r);
            rc = RSTORE_EREDIS;
            break;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        redisReply *keys = r->element[1];
        for (size_t i = 0; i < keys->elements && *n < max; i++)
            if (keys->element[i]->type == REDIS_REPLY_STRING &&
                keys->element[i]->len < sizeof(out->key) + strlen(RSTORE_PROXY_PREFIX))
                *n += (size_t)one(c, keys->element[i]->str, &out[*n]);
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0 && *n < max);
    redisFree(c);
    return rc;
}
