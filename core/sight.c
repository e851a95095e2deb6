/*
 * core_sight: consumes easgate:sightings with a consumer group. See sight.h.
 */
#include "core/sight.h"

#include "common/log.h"

#include <hiredis/hiredis.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIGHT_COUNT 100         /* entries per XREADGROUP */
#define SIGHT_IO_MARGIN_MS 2000 /* socket timeout beyond the BLOCK time */
#define SIGHT_FIELD_MAX 320

struct core_sight {
    redisContext *c;
    char *consumer;
    int block_ms;
    bool pending_done; /* our unacknowledged backlog has been re-read */
    char err[256];
};

static int sfail(struct core_sight *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sfail(struct core_sight *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof(s->err), fmt, ap);
    va_end(ap);
    return CORE_PUSH_EREDIS;
}

static int check(struct core_sight *s, redisReply *r, const char *what, const char *ok_error)
{
    if (!r)
        return sfail(s, "redis %s: %s", what, s->c->err ? s->c->errstr : "no reply");
    int rc = 0;
    if (r->type == REDIS_REPLY_ERROR &&
        !(ok_error && strncmp(r->str, ok_error, strlen(ok_error)) == 0))
        rc = sfail(s, "redis %s: %s", what, r->str);
    freeReplyObject(r);
    return rc;
}

int core_sight_open(const struct rstore_sync_opts *o, const char *consumer, int block_ms,
                    struct core_sight **out, char *err, size_t errlen)
{
    *out = NULL;
    struct core_sight *s = calloc(1, sizeof(*s));
    if (!s || !(s->consumer = strdup(consumer))) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return CORE_PUSH_EREDIS;
    }
    s->block_ms = block_ms > 0 ? block_ms : 1000;
    int tmo = (o->timeout_ms > 0 ? o->timeout_ms : 2000);
    struct timeval ctv = {tmo / 1000, (tmo % 1000) * 1000};
    int io = s->block_ms + SIGHT_IO_MARGIN_MS;
    struct timeval itv = {io / 1000, (io % 1000) * 1000};
    const char *host = o->host ? o->host : "127.0.0.1";
    int rc = 0;
    s->c = redisConnectWithTimeout(host, o->port, ctv);
    if (!s->c || s->c->err)
        rc = sfail(s, "redis %s:%d: connect: %s", host, o->port,
                   s->c ? s->c->errstr : "out of memory");
    else if (redisSetTimeout(s->c, itv) != REDIS_OK)
        rc = sfail(s, "redis %s:%d: cannot set timeout", host, o->port);
    if (rc == 0 && o->password)
        rc = check(s, redisCommand(s->c, "AUTH %s", o->password), "AUTH", NULL);
    if (rc == 0 && o->db > 0)
        rc = check(s, redisCommand(s->c, "SELECT %d", o->db), "SELECT", NULL);
    /* "0": a new group starts at the beginning of the stream, so nothing the
     * proxies wrote before the group existed is skipped (a first start, or a
     * promoted replica that never received the group). Replays are harmless. */
    if (rc == 0)
        rc = check(
            s, redisCommand(s->c, "XGROUP CREATE %s %s 0 MKSTREAM", RSTORE_STREAM, RSTORE_GROUP),
            "XGROUP CREATE", "BUSYGROUP");
    if (rc < 0) {
        snprintf(err, errlen, "%s", s->err);
        core_sight_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

void core_sight_close(struct core_sight *s)
{
    if (!s)
        return;
    if (s->c)
        redisFree(s->c);
    free(s->consumer);
    free(s);
}

const char *core_sight_error(const struct core_sight *s)
{
    return s->err;
}

void core_sight_split_os(const char *os, char *family, size_t flen, char *version, size_t vlen)
{
    family[0] = version[0] = '\0';
    if (!os)
        return;
    while (*os == ' ')
        os++;
    size_t n = strcspn(os, " ");
    snprintf(family, flen, "%.*s", (int)n, os);
    const char *v = os + n;
    while (*v == ' ')
        v++;
    size_t m = strcspn(v, " ");
    char tmp[64];
    snprintf(tmp, sizeof(tmp), "%.*s", (int)(m < sizeof(tmp) ? m : 0), v);
    struct compliance_ver cv;
    if (compliance_ver_parse(tmp, &cv) == 0)
        snprintf(version, vlen, "%s", tmp);
}

/* The value of field name in a flat [k, v, k, v...] array, or NULL. */
static const char *field(const redisReply *kv, const char *name)
{
    for (size_t i = 0; i + 1 < kv->elements; i += 2) {
        const redisReply *k = kv->element[i], *v = kv->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
            strcmp(k->str, name) == 0 && v->len <= SIGHT_FIELD_MAX &&
            strlen(v->str) == (size_t)v->len)
            return v->str;
    }
    return NULL;
}

/* MS-ASProtocolVersion if it reads as MAJOR.MINOR, else NULL (left as stored). */
static const char *eas_version(const redisReply *kv)
{
    const char *v = field(kv, RSTORE_SF_PROTOCOL_VERSION);
    return v && strlen(v) < CORE_EASVER_MAX && core_eas_version(v) > 0 ? v : NULL;
}

/*
 * A proxy answered the device's Provision acknowledgement with the final
 * policy key (proxy mode): register the device if it is new, then record
 * the key and when, and rewrite its hash (same version: not announced) so
 * that policy_key shows there too.
 */
static int apply_provisioned(struct core_eng *e, const char *id, const char *canon,
                             const redisReply *kv, int64_t when, struct core_sight_stats *st)
{
    const char *ks = field(kv, RSTORE_SF_POLICY_KEY);
    char *end = NULL;
    unsigned long long key = ks ? strtoull(ks, &end, 10) : 0;
    if (!ks || !*ks || *end || key == 0 || key > UINT32_MAX) {
        eg_warn("core: sighting %s (provisioned, device %s) without a valid policy_key: ignored",
                id, canon);
        st->invalid++;
        return 0;
    }
    struct core_devinfo in = {
        .device_type = field(kv, RSTORE_SF_DEVICE_TYPE),
        .user_agent = field(kv, RSTORE_SF_USER_AGENT),
        .user = field(kv, RSTORE_SF_USER),
        .eas_version = eas_version(kv),
    };
    bool created = false;
    int rc = core_eng_seen(e, canon, &in, when, &created);
    if (rc == 0)
        rc = core_reg_provisioned(e->reg, canon, (uint32_t)key, when);
    if (rc == 0)
        rc = core_eng_push(e, canon);
    if (rc < 0)
        return rc;
    if (created)
        st->created++;
    eg_info("core: device %s provisioned with policy key %llu (policy %s, EAS %s)", canon, key,
            field(kv, RSTORE_SF_FINGERPRINT) ? field(kv, RSTORE_SF_FINGERPRINT) : "?",
            in.eas_version ? in.eas_version : "?");
    st->applied++;
    return 0;
}

static int apply(struct core_eng *e, const char *id, const redisReply *kv, int64_t now_ms,
                 struct core_sight_stats *st)
{
    const char *kind = field(kv, RSTORE_SF_KIND), *dev = field(kv, RSTORE_SF_DEVICE),
               *t = field(kv, RSTORE_SF_TIME);
    char canon[CORE_DEVID_MAX + 1];
    if (!kind || !dev || core_reg_devid(dev, canon) < 0) {
        eg_warn("core: sighting %s without a valid device or kind: ignored", id);
        st->invalid++;
        return 0;
    }
    int64_t when = t ? strtoll(t, NULL, 10) : 0;
    if (when <= 0 || when > now_ms)
        when = now_ms; /* a proxy clock ahead of ours must not move last-seen into the future */
    if (strcmp(kind, RSTORE_KIND_UNKNOWN) == 0 || strcmp(kind, RSTORE_KIND_DEVINFO) == 0) {
        char fam[CORE_SHORT_MAX], ver[CORE_SHORT_MAX];
        const char *os = field(kv, RSTORE_SF_OS);
        core_sight_split_os(os, fam, sizeof(fam), ver, sizeof(ver));
        struct core_devinfo in = {
            .device_type = field(kv, RSTORE_SF_DEVICE_TYPE),
            .model = field(kv, RSTORE_SF_MODEL),
            .os = os && fam[0] ? fam : NULL,
            .os_version = os && ver[0] ? ver : NULL,
            .imei = field(kv, RSTORE_SF_IMEI),
            .friendly_name = field(kv, RSTORE_SF_FRIENDLY_NAME),
            .phone_number = field(kv, RSTORE_SF_PHONE_NUMBER),
            .user_agent = field(kv, RSTORE_SF_USER_AGENT),
            .user = field(kv, RSTORE_SF_USER),
            .eas_version = eas_version(kv),
        };
        bool created = false;
        int rc = core_eng_seen(e, canon, &in, when, &created);
        if (rc < 0)
            return rc;
        if (created) {
            st->created++;
            eg_info("core: new device %s (user '%s', %s) first seen by %s", canon,
                    in.user ? in.user : "", in.device_type ? in.device_type : "?",
                    field(kv, RSTORE_SF_INSTANCE) ? field(kv, RSTORE_SF_INSTANCE) : "a proxy");
        }
    } else if (strcmp(kind, RSTORE_KIND_WIPE_ACK) == 0) {
        int rc = core_reg_wipe_acked(e->reg, canon, when);
        if (rc == CORE_REG_ENOTFOUND) {
            eg_warn("core: wipe acknowledgement from unknown device %s: ignored", canon);
            st->invalid++;
            return 0;
        }
        if (rc == 0)
            rc = core_reg_audit_add(e->reg, "proxy", field(kv, RSTORE_SF_CLIENT_ADDR),
                                    "device.wipe-ack", canon, field(kv, RSTORE_SF_STATUS), when);
        if (rc < 0)
            return rc;
        st->wipe_acks++;
        eg_info("core: device %s acknowledged the remote wipe (status %s)", canon,
                field(kv, RSTORE_SF_STATUS) ? field(kv, RSTORE_SF_STATUS) : "?");
        /* Wiped means gone: the device ends blocked, so a phone restored
         * from a backup with the same DeviceId gets nothing. Only a device
         * the admin ordered wiped (an acknowledgement is just a claim). */
        struct core_device d;
        if (core_reg_device_get(e->reg, canon, &d) == 0 && d.override == COMPLIANCE_OVR_WIPE) {
            rc = core_eng_action(e, canon, CORE_ACT_BLOCK, NULL, "proxy",
                                 field(kv, RSTORE_SF_CLIENT_ADDR), "wiped", now_ms);
            if (rc < 0)
                return rc;
            eg_info("core: device %s wiped: now blocked", canon);
        }
    } else if (strcmp(kind, RSTORE_KIND_PROVISIONED) == 0) {
        return apply_provisioned(e, id, canon, kv, when, st);
    } else {
        eg_warn("core: sighting %s of unknown kind '%s': ignored", id, kind);
        st->invalid++;
        return 0;
    }
    st->applied++;
    return 0;
}

/* Apply and acknowledge every entry of one XREADGROUP reply; *n = entries seen. */
static int handle(struct core_sight *s, struct core_eng *e, const redisReply *r, int64_t now_ms,
                  struct core_sight_stats *st, size_t *n)
{
    *n = 0;
    if (r->type == REDIS_REPLY_NIL)
        return 0; /* BLOCK timed out */
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_ARRAY || r->element[0]->elements != 2)
        return sfail(s, "redis XREADGROUP: unexpected reply");
    const redisReply *entries = r->element[0]->element[1];
    if (entries->type != REDIS_REPLY_ARRAY)
        return sfail(s, "redis XREADGROUP: unexpected reply");
    int rc = core_eng_begin(e);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < entries->elements && rc == 0; i++) {
        const redisReply *en = entries->element[i];
        if (en->type != REDIS_REPLY_ARRAY || en->elements != 2 ||
            en->element[0]->type != REDIS_REPLY_STRING)
            continue;
        /* A pending entry trimmed from the stream comes back with nil fields. */
        if (en->element[1]->type == REDIS_REPLY_ARRAY)
            rc = apply(e, en->element[0]->str, en->element[1], now_ms, st);
    }
    if (rc < 0) {
        core_eng_rollback(e);
        return rc; /* not acknowledged: the entries come back as pending */
    }
    if ((rc = core_eng_commit(e)) < 0)
        return rc;
    /* Stored: now acknowledge, in one command. */
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *en = entries->element[i];
        if (en->type == REDIS_REPLY_ARRAY && en->elements == 2 &&
            en->element[0]->type == REDIS_REPLY_STRING)
            redisAppendCommand(s->c, "XACK %s %s %s", RSTORE_STREAM, RSTORE_GROUP,
                               en->element[0]->str);
    }
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *en = entries->element[i];
        if (!(en->type == REDIS_REPLY_ARRAY && en->elements == 2 &&
              en->element[0]->type == REDIS_REPLY_STRING))
            continue;
        redisReply *ack = NULL;
        if (redisGetReply(s->c, (void **)&ack) != REDIS_OK || !ack)
            return sfail(s, "redis XACK: %s", s->c->errstr);
        freeReplyObject(ack);
    }
    *n = entries->elements;
    return 0;
}

int core_sight_poll(struct core_sight *s, struct core_eng *e, int64_t now_ms,
                    struct core_sight_stats *st)
{
    if (!s->c || s->c->err)
        return sfail(s, "redis: not connected");
    redisReply *r;
    if (!s->pending_done)
        r = redisCommand(s->c, "XREADGROUP GROUP %s %s COUNT %d STREAMS %s 0", RSTORE_GROUP,
                         s->consumer, SIGHT_COUNT, RSTORE_STREAM);
    else
        r = redisCommand(s->c, "XREADGROUP GROUP %s %s COUNT %d BLOCK %d STREAMS %s >",
                         RSTORE_GROUP, s->consumer, SIGHT_COUNT, s->block_ms, RSTORE_STREAM);
    if (!r)
        return sfail(s, "redis XREADGROUP: %s", s->c->err ? s->c->errstr : "no reply");
    if (r->type == REDIS_REPLY_ERROR) {
        int rc = sfail(s, "redis XREADGROUP: %s", r->str);
        freeReplyObject(r);
        return rc;
    }
    size_t n = 0;
    int rc = handle(s, e, r, now_ms, st, &n);
    freeReplyObject(r);
    if (rc < 0)
        return rc == CORE_PUSH_EREDIS ? rc : sfail(s, "registry error %d", rc);
    if (!s->pending_done && n == 0)
        s->pending_done = true; /* backlog drained: from now on, new entries */
    return 0;
}
