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
 * often, never less). Wipe acknowledgements and provisioned keys are never
 * held back: the core must see each one, nor are autoblock and auth-block
 * reports (each is a crossing, rare by nature). Nor is an authenticated sighting
 * held back by an unauthenticated one: the core registers a device only
 * from a sighting with auth, and a phone whose first request the proxy
 * answered itself (a server-role Provision, a block lifted since) would
 * otherwise stay unregistered for a whole interval.
 */
#include "connectors/rstore_int.h"

#include "common/log.h"

#include <stdio.h>
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
                  kind == RSTORE_SIGHT_AUTOBLOCK || kind == RSTORE_SIGHT_AUTH_BLOCK;
    int64_t every = rs->sighting_ms;
    if (kind == RSTORE_SIGHT_SEEN && every > RSTORE_SEEN_INTERVAL_MS)
        every = RSTORE_SEEN_INTERVAL_MS; /* last seen to the minute */
    if (!always && s->last_ms && s->kind == kind && (s->authed || !authed) &&
        strcmp(s->devid, devid) == 0 && now - s->last_ms < every) {
        ST_INC(rs, sightings_suppressed);
        return 1;
    }

    char maxlen[24], tbuf[24];
    snprintf(maxlen, sizeof(maxlen), "%lld", rs->stream_maxlen);
    snprintf(tbuf, sizeof(tbuf), "%lld", (long long)wall_ms());
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
    s->last_ms = now ? now : 1;
    s->kind = (uint8_t)kind;
    s->authed = authed;
    memcpy(s->devid, devid, (size_t)len + 1);
    ST_INC(rs, sightings_sent);
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
