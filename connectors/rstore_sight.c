/*
 * rstore_sight: sightings, what a proxy saw, appended to the stream the
 * core consumes (docs/state-contract.md, easgate:sightings).
 *
 * A sighting never waits: it is queued on the data connection and its reply
 * only logged, and while Redis is away it is dropped and counted rather than
 * queued (the device's next request reports it again). A phone that polls
 * every minute must not write a stream entry every minute, so each kind is
 * sent at most once per device per sighting_interval, remembered in a small
 * direct-mapped table (two devices sharing a slot are reported a little more
 * often, never less). A "seen" held back is not lost: the newest one waits
 * in its slot and goes out when the interval ends (checked each heartbeat),
 * so the core's last seen is the phone's latest contact, at most a minute
 * and a heartbeat late, for the same one entry a minute. Wipe
 * acknowledgements and provisioned keys are never held back: the core must
 * see each one, nor are autoblock, auth-block and upstream reports (each
 * is a crossing, rare by nature). Nor is an authenticated sighting held back by
 * an unauthenticated one: the core registers a device only from a sighting
 * with auth, and a phone whose first request the proxy answered itself (a
 * server-role Provision, a block lifted since) would otherwise stay
 * unregistered for a whole interval.
 */
#include "connectors/rstore_int.h"

#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sight_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rs_conn *c = ac->data;
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_ERROR)
        eg_warn("redis: XADD %s: %s", RSTORE_STREAM, r->str);
    else if (r && c->ac == ac)
        c->rs->data_last = rs_now(c->rs);
}

/* The interval a kind is limited to. */
static int64_t interval_of(const struct rstore *rs, enum rstore_sighting_kind kind)
{
    int64_t every = rs->sighting_ms;
    if (kind == RSTORE_SIGHT_SEEN && every > RSTORE_SEEN_INTERVAL_MS)
        every = RSTORE_SEEN_INTERVAL_MS; /* last seen to the minute */
    return every;
}

/* One XADD; 0, or RSTORE_ENOTCONN (counted as dropped). */
static int send_entry(struct rstore *rs, const char *kname, const char *devid, int64_t wall,
                      const char *const *fields, size_t nfields)
{
    char maxlen[24], tbuf[24];
    snprintf(maxlen, sizeof(maxlen), "%lld", rs->stream_maxlen);
    snprintf(tbuf, sizeof(tbuf), "%lld", (long long)wall);
    const char *argv[14 + 40];
    size_t argl[14 + 40];
    int n = 0;
    argv[n++] = "XADD";
    argv[n++] = RSTORE_STREAM;
    argv[n++] = "MAXLEN";
    argv[n++] = "~";
    argv[n++] = maxlen;
    argv[n++] = "*";
    argv[n++] = RSTORE_SF_KIND;
    argv[n++] = kname;
    argv[n++] = RSTORE_SF_DEVICE;
    argv[n++] = devid;
    argv[n++] = RSTORE_SF_INSTANCE;
    argv[n++] = rs->instance;
    argv[n++] = RSTORE_SF_TIME;
    argv[n++] = tbuf;
    for (size_t i = 0; i < nfields; i++)
        argv[n++] = fields[i] ? fields[i] : "";
    for (int i = 0; i < n; i++)
        argl[i] = strlen(argv[i]);
    if (redisAsyncCommandArgv(rs->data.ac, sight_reply, NULL, n, argv, argl) != REDIS_OK) {
        ST_INC(rs, sightings_dropped);
        return RSTORE_ENOTCONN;
    }
    ST_INC(rs, sightings_sent);
    return 0;
}

static void held_drop(struct rstore *rs, struct rs_sight_slot *s)
{
    if (!s->held)
        return;
    free(s->held);
    s->held = NULL;
    s->held_len = 0;
    s->held_n = 0;
    rs->sight_held--;
}

/*
 * A "seen" within the interval is not sent, but the newest one is kept
 * (time and fields) and sent when the interval ends (rs_sight_flush), so
 * the core's last seen, version, user agent and address are the phone's
 * latest, not the first of its minute, for the same one entry a minute.
 * Out of memory, it is only counted as suppressed, as before.
 */
static void held_keep(struct rstore *rs, struct rs_sight_slot *s, const char *const *fields,
                      size_t nfields)
{
    size_t len = 0;
    for (size_t i = 0; i < nfields; i++)
        len += strlen(fields[i] ? fields[i] : "") + 1;
    char *b = malloc(len ? len : 1);
    if (!b)
        return;
    char *p = b;
    for (size_t i = 0; i < nfields; i++) {
        size_t l = strlen(fields[i] ? fields[i] : "") + 1;
        memcpy(p, fields[i] ? fields[i] : "", l);
        p += l;
    }
    if (!s->held)
        rs->sight_held++;
    free(s->held);
    s->held = b;
    s->held_len = len;
    s->held_n = (uint8_t)nfields;
    s->held_wall_ms = wall_ms();
}

/* Send what s holds now: 0, or RSTORE_ENOTCONN (it stays held). */
static int held_send(struct rstore *rs, struct rs_sight_slot *s)
{
    const char *fields[40];
    const char *p = s->held;
    for (size_t i = 0; i < s->held_n; i++) {
        fields[i] = p;
        p += strlen(p) + 1;
    }
    int rc = send_entry(rs, rstore_sighting_kind_name(RSTORE_SIGHT_SEEN), s->devid, s->held_wall_ms,
                        fields, s->held_n);
    if (rc == 0) {
        s->last_ms = rs_now(rs) ? rs_now(rs) : 1;
        held_drop(rs, s);
    }
    return rc;
}

void rs_sight_flush(struct rstore *rs)
{
    if (!rs->sight_held || rs->link != LINK_UP)
        return;
    int64_t now = rs_now(rs), every = interval_of(rs, RSTORE_SIGHT_SEEN);
    for (size_t i = 0; i < RS_SIGHT_SLOTS && rs->sight_held; i++) {
        struct rs_sight_slot *s = &rs->sight[i];
        if (s->held && now - s->last_ms >= every && held_send(rs, s) < 0)
            return;
    }
}

void rs_sight_free(struct rstore *rs)
{
    for (size_t i = 0; rs->sight && i < RS_SIGHT_SLOTS && rs->sight_held; i++)
        held_drop(rs, &rs->sight[i]);
}

int rstore_sighting(struct rstore *rs, enum rstore_sighting_kind kind, const char *device_id,
                    size_t len, const char *const *fields, size_t nfields)
{
    char devid[RSTORE_DEVID_MAX + 1];
    const char *kname = rstore_sighting_kind_name(kind);
    if (!kname || (nfields % 2) != 0 || nfields > 40 || (nfields && !fields) ||
        rstore_devid_norm(device_id, len, devid) < 0)
        return RSTORE_EINVAL;
    if (rs->link != LINK_UP) {
        ST_INC(rs, sightings_dropped);
        return RSTORE_ENOTCONN;
    }
    bool authed = false;
    for (size_t i = 0; i + 1 < nfields; i += 2)
        authed |= fields[i] && strcmp(fields[i], RSTORE_SF_AUTH) == 0 && fields[i + 1] &&
                  fields[i + 1][0];
    int64_t now = rs_now(rs);
    uint32_t h = rs_hash(devid, len) ^ ((uint32_t)kind * 0x9e3779b9u);
    struct rs_sight_slot *s = &rs->sight[h % RS_SIGHT_SLOTS];
    /* One per wipe, one per provisioning: the core must see every one. */
    bool always = kind == RSTORE_SIGHT_WIPE_ACK || kind == RSTORE_SIGHT_PROVISIONED ||
                  kind == RSTORE_SIGHT_AUTOBLOCK || kind == RSTORE_SIGHT_AUTH_BLOCK ||
                  kind == RSTORE_SIGHT_CERT_BIND || kind == RSTORE_SIGHT_UPSTREAM;
    bool same = s->last_ms && s->kind == kind && strcmp(s->devid, devid) == 0;
    if (!always && same && (s->authed || !authed) && now - s->last_ms < interval_of(rs, kind)) {
        if (kind == RSTORE_SIGHT_SEEN)
            held_keep(rs, s, fields, nfields);
        ST_INC(rs, sightings_suppressed);
        return 1;
    }
    /* Another device takes the slot: what it held goes now. A newer
     * sighting of the same device replaces what it held. */
    if (s->held && !same)
        (void)held_send(rs, s);
    held_drop(rs, s);

    int rc = send_entry(rs, kname, devid, wall_ms(), fields, nfields);
    if (rc < 0)
        return rc;
    s->last_ms = now ? now : 1;
    s->kind = (uint8_t)kind;
    s->authed = authed;
    memcpy(s->devid, devid, (size_t)len + 1);
    return 0;
}

int rstore_sight(struct rstore *rs, const struct rstore_sight *s)
{
    if (!s || !s->device_id)
        return RSTORE_EINVAL;
    const struct {
        const char *name, *value;
    } map[] = {
        {RSTORE_SF_USER, s->user},
        {RSTORE_SF_DEVICE_TYPE, s->device_type},
        {RSTORE_SF_USER_AGENT, s->user_agent},
        {RSTORE_SF_PROTOCOL_VERSION, s->protocol_version},
        {RSTORE_SF_CLIENT_ADDR, s->client_addr},
        {RSTORE_SF_AUTH, s->auth},
        {RSTORE_SF_MODEL, s->model},
        {RSTORE_SF_IMEI, s->imei},
        {RSTORE_SF_FRIENDLY_NAME, s->friendly_name},
        {RSTORE_SF_OS, s->os},
        {RSTORE_SF_OS_LANGUAGE, s->os_language},
        {RSTORE_SF_PHONE_NUMBER, s->phone_number},
        {RSTORE_SF_MOBILE_OPERATOR, s->mobile_operator},
        {RSTORE_SF_STATUS, s->status},
        {RSTORE_SF_ENROLLMENT, s->enrollment},
        {RSTORE_SF_BOUND, s->bound},
    };
    const char *fields[2 * (sizeof(map) / sizeof(map[0]))];
    size_t n = 0;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (map[i].value && map[i].value[0]) {
            fields[n++] = map[i].name;
            fields[n++] = map[i].value;
        }
    return rstore_sighting(rs, s->kind, s->device_id, strlen(s->device_id), fields, n);
}
