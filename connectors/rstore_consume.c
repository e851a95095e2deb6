/*
 * rstore_consume: reads easgate:sightings with a consumer group (see
 * rstore_consume.h).
 *
 * One poll is one XREADGROUP of at most CONSUME_COUNT entries: the handler
 * gets them as one batch (the core stores a batch in one transaction), and
 * all of them are acknowledged in one pipelined round trip after it. Reading
 * the backlog ("0") until it comes back empty before switching to new
 * entries (">") is what makes a restart lose nothing.
 */
#include "connectors/rstore_consume.h"

#include "connectors/rstore_sync_int.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONSUME_COUNT 100         /* entries per XREADGROUP */
#define CONSUME_IO_MARGIN_MS 2000 /* socket timeout beyond the BLOCK time */

struct rstore_consume {
    redisContext *c;
    char *consumer;
    int block_ms;
    bool pending_done; /* our unacknowledged backlog has been re-read */
    char err[256];
};

static int sfail(struct rstore_consume *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int sfail(struct rstore_consume *s, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof(s->err), fmt, ap);
    va_end(ap);
    return code;
}

static int check(struct rstore_consume *s, redisReply *r, const char *what, const char *ok_error)
{
    if (!r)
        return sfail(s, RSTORE_EREDIS, "redis %s: %s", what, s->c->err ? s->c->errstr : "no reply");
    int rc = 0;
    if (r->type == REDIS_REPLY_ERROR &&
        !(ok_error && strncmp(r->str, ok_error, strlen(ok_error)) == 0))
        rc = sfail(s, RSTORE_EREDIS, "redis %s: %s", what, r->str);
    freeReplyObject(r);
    return rc;
}

int rstore_consume_open(const struct rstore_sync_opts *o, const char *consumer, int block_ms,
                        struct rstore_consume **out, char *err, size_t errlen)
{
    *out = NULL;
    struct rstore_consume *s = calloc(1, sizeof(*s));
    if (!s || !(s->consumer = strdup(consumer))) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return RSTORE_ENOMEM;
    }
    s->block_ms = block_ms > 0 ? block_ms : 1000;
    s->c = rs_sync_connect(o, s->block_ms + CONSUME_IO_MARGIN_MS, s->err, sizeof(s->err));
    int rc = s->c ? 0 : RSTORE_EREDIS;
    /* "0": a new group starts at the beginning of the stream, so nothing the
     * proxies wrote before the group existed is skipped (a first start, or a
     * promoted replica that never received the group). Replays are harmless. */
    if (rc == 0)
        rc = check(
            s, redisCommand(s->c, "XGROUP CREATE %s %s 0 MKSTREAM", RSTORE_STREAM, RSTORE_GROUP),
            "XGROUP CREATE", "BUSYGROUP");
    if (rc < 0) {
        snprintf(err, errlen, "%s", s->err);
        rstore_consume_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

void rstore_consume_close(struct rstore_consume *s)
{
    if (!s)
        return;
    if (s->c)
        redisFree(s->c);
    free(s->consumer);
    free(s);
}

const char *rstore_consume_error(const struct rstore_consume *s)
{
    return s->err;
}

const char *rstore_entry_field(const struct rstore_entry *en, const char *name)
{
    const redisReply *kv = en->fields;
    for (size_t i = 0; i + 1 < kv->elements; i += 2) {
        const redisReply *k = kv->element[i], *v = kv->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
            strcmp(k->str, name) == 0 && v->len <= RSTORE_FIELD_MAX &&
            strlen(v->str) == (size_t)v->len)
            return v->str;
    }
    return NULL;
}

/* An entry as XREADGROUP gives it: [id, [field, value, ...] or nil]. */
static bool entry_ok(const redisReply *en)
{
    return en->type == REDIS_REPLY_ARRAY && en->elements == 2 &&
           en->element[0]->type == REDIS_REPLY_STRING;
}

/* Acknowledge every entry of the reply, in one pipelined round trip. */
static int ack_all(struct rstore_consume *s, const redisReply *entries)
{
    for (size_t i = 0; i < entries->elements; i++)
        if (entry_ok(entries->element[i]))
            redisAppendCommand(s->c, "XACK %s %s %s", RSTORE_STREAM, RSTORE_GROUP,
                               entries->element[i]->element[0]->str);
    for (size_t i = 0; i < entries->elements; i++) {
        if (!entry_ok(entries->element[i]))
            continue;
        redisReply *ack = NULL;
        if (redisGetReply(s->c, (void **)&ack) != REDIS_OK || !ack)
            return sfail(s, RSTORE_EREDIS, "redis XACK: %s", s->c->errstr);
        freeReplyObject(ack);
    }
    return 0;
}

/* Hand one XREADGROUP reply to fn, then acknowledge it; *n = entries seen. */
static int handle(struct rstore_consume *s, rstore_consume_fn fn, void *arg, const redisReply *r,
                  size_t *n)
{
    *n = 0;
    if (r->type == REDIS_REPLY_NIL)
        return 0; /* BLOCK timed out */
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_ARRAY || r->element[0]->elements != 2)
        return sfail(s, RSTORE_EREDIS, "redis XREADGROUP: unexpected reply");
    const redisReply *entries = r->element[0]->element[1];
    if (entries->type != REDIS_REPLY_ARRAY)
        return sfail(s, RSTORE_EREDIS, "redis XREADGROUP: unexpected reply");
    struct rstore_entry batch[CONSUME_COUNT];
    size_t k = 0;
    for (size_t i = 0; i < entries->elements && k < CONSUME_COUNT; i++) {
        const redisReply *en = entries->element[i];
        /* A pending entry trimmed from the stream comes back with nil fields. */
        if (entry_ok(en) && en->element[1]->type == REDIS_REPLY_ARRAY)
            batch[k++] = (struct rstore_entry){.id = en->element[0]->str, .fields = en->element[1]};
    }
    if (k > 0) {
        int rc = fn(arg, batch, k);
        if (rc < 0) /* not acknowledged: the entries come back as pending */
            return sfail(s, RSTORE_ESOURCE, "sightings not stored (handler error %d)", rc);
    }
    int rc = ack_all(s, entries);
    if (rc == 0)
        *n = entries->elements;
    return rc;
}

int rstore_consume_poll(struct rstore_consume *s, rstore_consume_fn fn, void *arg)
{
    if (!s->c || s->c->err)
        return sfail(s, RSTORE_EREDIS, "redis: not connected");
    redisReply *r;
    if (!s->pending_done)
        r = redisCommand(s->c, "XREADGROUP GROUP %s %s COUNT %d STREAMS %s 0", RSTORE_GROUP,
                         s->consumer, CONSUME_COUNT, RSTORE_STREAM);
    else
        r = redisCommand(s->c, "XREADGROUP GROUP %s %s COUNT %d BLOCK %d STREAMS %s >",
                         RSTORE_GROUP, s->consumer, CONSUME_COUNT, s->block_ms, RSTORE_STREAM);
    if (!r)
        return sfail(s, RSTORE_EREDIS, "redis XREADGROUP: %s",
                     s->c->err ? s->c->errstr : "no reply");
    if (r->type == REDIS_REPLY_ERROR) {
        int rc = sfail(s, RSTORE_EREDIS, "redis XREADGROUP: %s", r->str);
        freeReplyObject(r);
        return rc;
    }
    size_t n = 0;
    int rc = handle(s, fn, arg, r, &n);
    freeReplyObject(r);
    if (rc < 0)
        return rc;
    if (!s->pending_done && n == 0)
        s->pending_done = true; /* backlog drained: from now on, new entries */
    return 0;
}
