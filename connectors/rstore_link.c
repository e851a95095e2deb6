/*
 * rstore_link: the link to Redis, one unit of up to three connections.
 *
 * A data connection (HGETALL, XADD, heartbeat PUBLISH), a subscriber
 * connection (the change channel and the worker's own heartbeat channel) and,
 * with Sentinel, one to a sentinel. They come up together and go down
 * together: any failure drops all of them and rebuilds the lot after a
 * backoff (100 ms doubling to backoff_max). That keeps the states three
 * (down, connecting, up) and means a half-alive link never serves answers.
 *
 * Up means both handshakes finished (AUTH, SELECT, ROLE when the master came
 * from Sentinel, PING; SUBSCRIBE confirmed). Every heartbeat publishes to the
 * worker's own channel through the data connection and hears it back on the
 * subscriber: silence for dead_ms on either drops the link. An epoch number,
 * bumped at every start and failure, lets late answers from a dead attempt
 * recognise themselves and do nothing.
 */
#include "connectors/rstore_int.h"

#include "common/log.h"
#include "common/units.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define RS_BACKOFF_MIN_MS 100
#define RS_LOG_EVERY 12 /* while down, one warning per this many attempts */

void rs_conn_drop(struct rs_conn *c)
{
    redisAsyncContext *ac = c->ac;
    c->ac = NULL; /* the callbacks hiredis runs while freeing see it is not ours */
    if (ac)
        redisAsyncFree(ac);
}

void rs_link_fail(struct rstore *rs, const char *why, bool at_sentinel)
{
    if (rs->link == LINK_DOWN || rs->closing)
        return;
    bool was_up = rs->link == LINK_UP;
    if (was_up) {
        int64_t last = rs->data_last < rs->sub_last ? rs->data_last : rs->sub_last;
        if (last > rs->last_contact)
            rs->last_contact = last;
    }
    rs->link = LINK_DOWN;
    rs->epoch++;
    rs->data_ready = rs->sub_ready = false;
    rs_conn_drop(&rs->data);
    rs_conn_drop(&rs->sub);
    rs_conn_drop(&rs->sent);
    if (at_sentinel && rs->n_sent_nodes)
        rs->sent_next = (rs->sent_next + 1) % rs->n_sent_nodes;
    rs->fail_count++;
    if (was_up) {
        rs->backoff_ms = RS_BACKOFF_MIN_MS;
        eg_error("redis: connection to %s:%d lost (%s); serving cached device state, reconnecting",
                 rs->master_ip, rs->master_port, why);
    } else {
        rs->backoff_ms = rs->backoff_ms ? rs->backoff_ms * 2 : RS_BACKOFF_MIN_MS;
        if (rs->backoff_ms > rs->o.backoff_max_ms)
            rs->backoff_ms = rs->o.backoff_max_ms;
        if (rs->fail_count == 1 || rs->fail_count % RS_LOG_EVERY == 0)
            eg_warn("redis: cannot reach Redis (%s); %lld s since last contact, retrying", why,
                    (long long)((rs_now(rs) - rs->last_contact) / 1000));
        else
            eg_debug("redis: connect failed (%s), retry in %lld ms", why,
                     (long long)rs->backoff_ms);
    }
    rs_link_set_timer(rs, rs->backoff_ms);
}

/* Also the deadline for a connect that neither succeeds nor fails (a
 * black-holed address, a stopped server that still accepts). */
static void link_timer_cb(uv_timer_t *t)
{
    struct rstore *rs = t->data;
    if (rs->link == LINK_DOWN)
        rs_link_start(rs);
    else if (rs->link == LINK_CONNECTING)
        rs_link_fail(rs, "connect timed out", rs->sent_master && !rs->master_port);
}

void rs_link_set_timer(struct rstore *rs, int64_t ms)
{
    uv_timer_start(&rs->link_timer, link_timer_cb, ms > 0 ? (uint64_t)ms : 0, 0);
}

static void link_check_up(struct rstore *rs)
{
    if (rs->link != LINK_CONNECTING || !rs->data_ready || !rs->sub_ready)
        return;
    rs->link = LINK_UP;
    uv_timer_stop(&rs->link_timer);
    int64_t now = rs_now(rs);
    rs->data_last = rs->sub_last = rs->last_contact = now;
    rs->backoff_ms = 0;
    rs->fail_count = 0;
    rs->gen++; /* invalidations may have been missed: nothing cached is trusted */
    ST_INC(rs, reconnects);
    eg_info("redis: connected to %s:%d%s", rs->master_ip, rs->master_port,
            rs->sent_master ? " (master from Sentinel)" : "");
    if (rs->change_cb)
        rs->change_cb(rs->change_arg, NULL, NULL);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct rs_conn *c = ac->data;
    if (c->ac != ac)
        return;
    if (status != REDIS_OK) {
        c->ac = NULL; /* hiredis frees it after this callback */
        char why[160];
        snprintf(why, sizeof(why), "%s: %s", c->role == RS_SENT ? "sentinel" : "connect",
                 ac->errstr[0] ? ac->errstr : "failed");
        rs_link_fail(c->rs, why, c->role == RS_SENT);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct rs_conn *c = ac->data;
    if (c->ac != ac)
        return;
    c->ac = NULL; /* hiredis frees it after this callback */
    rs_link_fail(c->rs,
                 status == REDIS_OK ? "closed" : (ac->errstr[0] ? ac->errstr : "disconnected"),
                 c->role == RS_SENT);
}

int rs_conn_open(struct rstore *rs, struct rs_conn *c, const char *ip, int port)
{
    redisAsyncContext *ac = redisAsyncConnect(ip, port);
    if (!ac)
        return RSTORE_ENOMEM;
    if (ac->err) {
        eg_debug("redis: connect %s:%d: %s", ip, port, ac->errstr);
        redisAsyncFree(ac);
        return RSTORE_EREDIS;
    }
    if (rs_attach(ac, rs->loop) < 0) {
        redisAsyncFree(ac);
        return RSTORE_ENOMEM;
    }
    ac->data = c;
    c->ac = ac;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return 0;
}

/* A handshake reply on the data connection (AUTH, SELECT, ROLE, PING). */
static void data_hs_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rstore *rs = ((struct rs_conn *)ac->data)->rs;
    redisReply *r = reply;
    const char *step = priv;
    if (!r || rs->data.ac != ac)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        char why[200];
        snprintf(why, sizeof(why), "%s: %s", step, r->str);
        rs_link_fail(rs, why, false);
        return;
    }
    if (strcmp(step, "ROLE") == 0) {
        /* A Sentinel answer can lag a failover: talk only to a master. */
        if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
            r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "master") != 0)
            rs_link_fail(rs, "ROLE: not a master", false);
        return;
    }
    if (strcmp(step, "PING") == 0) {
        rs->data_ready = true;
        link_check_up(rs);
    }
}

static void sub_msg(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rstore *rs = ((struct rs_conn *)ac->data)->rs;
    redisReply *r = reply;
    if (!r || rs->sub.ac != ac || rs->closing)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        char why[200];
        snprintf(why, sizeof(why), "SUBSCRIBE: %s", r->str);
        rs_link_fail(rs, why, false);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = r->element[0]->str, *chan = r->element[1]->str;
    rs->sub_last = rs_now(rs);
    if (strcmp(kind, "subscribe") == 0) {
        if (strcmp(chan, rs->hb_channel) == 0) {
            rs->sub_ready = true; /* subscribed in order: the last one confirms both */
            link_check_up(rs);
        }
        return;
    }
    if (strcmp(kind, "message") != 0 || r->element[2]->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(chan, RSTORE_CHANNEL) == 0 && rs->link == LINK_UP)
        rs_on_changed(rs, r->element[2]->str, r->element[2]->len);
}

static void auth(struct rstore *rs, redisAsyncContext *ac, redisCallbackFn *fn)
{
    if (rs->password)
        redisAsyncCommand(ac, fn, (void *)"AUTH", "AUTH %s", rs->password);
}

static void sub_auth_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rstore *rs = ((struct rs_conn *)ac->data)->rs;
    redisReply *r = reply;
    if (r && rs->sub.ac == ac && r->type == REDIS_REPLY_ERROR) {
        char why[200];
        snprintf(why, sizeof(why), "AUTH: %s", r->str);
        rs_link_fail(rs, why, false);
    }
}

void rs_connect_master(struct rstore *rs, const char *ip, int port)
{
    snprintf(rs->master_ip, sizeof(rs->master_ip), "%s", ip);
    rs->master_port = port;
    if (rs_conn_open(rs, &rs->data, ip, port) < 0 || rs_conn_open(rs, &rs->sub, ip, port) < 0) {
        rs_link_fail(rs, "cannot open a connection", false);
        return;
    }
    /* hiredis queues commands until the socket is writable: send the whole
     * handshake now and let the PING reply say it is done. */
    auth(rs, rs->data.ac, data_hs_reply);
    if (rs->db)
        redisAsyncCommand(rs->data.ac, data_hs_reply, (void *)"SELECT", "SELECT %d", rs->db);
    if (rs->sent_master)
        redisAsyncCommand(rs->data.ac, data_hs_reply, (void *)"ROLE", "ROLE");
    redisAsyncCommand(rs->data.ac, data_hs_reply, (void *)"PING", "PING");

    auth(rs, rs->sub.ac, sub_auth_reply);
    redisAsyncCommand(rs->sub.ac, sub_msg, NULL, "SUBSCRIBE %s %s", RSTORE_CHANNEL, rs->hb_channel);
}

void rs_link_start(struct rstore *rs)
{
    rs->link = LINK_CONNECTING;
    rs->epoch++;
    rs->master_port = 0;
    rs_link_set_timer(rs, rs->o.connect_ms);
    if (rs->sent_master) {
        char host[RS_HOST_MAX];
        int port = 0;
        const char *why = NULL;
        const char *node = rs->sent_nodes[rs->sent_next];
        if (units_parse_hostport(node, host, sizeof(host), &port, &why) < 0) {
            rs_link_fail(rs, "bad sentinel node", true);
            return;
        }
        rs_resolve(rs, host, port, rs_connect_sentinel);
    } else {
        rs_resolve(rs, rs->host, rs->port, rs_connect_master);
    }
}

static void hb_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rs_conn *c = ac->data;
    if (reply && c->ac == ac && ((redisReply *)reply)->type != REDIS_REPLY_ERROR)
        c->rs->data_last = rs_now(c->rs);
}

/* Every heartbeat: publish to our own channel (proves the data connection
 * and, when the message comes back, the subscriber), then check for silence. */
void rs_hb_cb(uv_timer_t *t)
{
    struct rstore *rs = t->data;
    if (rs->link != LINK_UP)
        return;
    int64_t now = rs_now(rs);
    int64_t last = rs->data_last < rs->sub_last ? rs->data_last : rs->sub_last;
    rs->last_contact = last;
    if (now - last > rs->o.dead_ms) {
        rs_link_fail(rs, "no answer to heartbeats", false);
        return;
    }
    redisAsyncCommand(rs->data.ac, hb_reply, NULL, "PUBLISH %s %lld", rs->hb_channel,
                      (long long)now);
    rs_sight_flush(rs);
    if (rs->o.beat && now - rs->beat_last >= rs->o.beat_ms) {
        char v[768];
        int n = rs->o.beat(rs->o.beat_arg, v, sizeof(v));
        if (n > 0 && (size_t)n < sizeof(v)) {
            long long ttl = (long long)(rs->o.beat_ms * RSTORE_PROXY_TTL_BEATS);
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            long long wall = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
            redisAsyncCommand(rs->data.ac, NULL, NULL, "SET %s %b PX %lld", rs->beat_key, v,
                              (size_t)n, ttl);
            redisAsyncCommand(rs->data.ac, NULL, NULL, "ZADD %s %lld %s", RSTORE_PROXY_SET, wall,
                              rs->beat_key);
            redisAsyncCommand(rs->data.ac, NULL, NULL, "ZREMRANGEBYSCORE %s -inf (%lld",
                              RSTORE_PROXY_SET, wall - ttl);
            rs->beat_last = now;
        }
    }
}
