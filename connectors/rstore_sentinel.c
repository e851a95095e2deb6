/*
 * rstore_sentinel: finding the master through Sentinel, and following it.
 *
 * With redis.sentinel set the link starts at a sentinel (the configured ones
 * in turn, moving on after each failure), asks where the master is, and only
 * then connects to it. The sentinel connection stays open, subscribed to
 * +switch-master: a failover drops the link at once and the next start asks
 * again, so a worker follows a promotion within one round trip instead of
 * waiting for the old master to time out. The data connection still checks
 * ROLE, because a sentinel's answer can lag a failover.
 *
 * The core asks the same question with the blocking API
 * (rstore_sentinel_master, rstore_sync.h): it only needs an address before
 * it connects, and reconnects through this lookup after any failure. One
 * question and one reading of the answer serve both.
 */
#include "connectors/rstore_int.h"

#include "common/conf.h"
#include "common/log.h"
#include "common/units.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SENTINEL_ASK "SENTINEL get-master-addr-by-name %s"
#define SENTINEL_TIMEOUT_MS 1000 /* one sentinel's answer, for the blocking lookup */

/* The answer to SENTINEL_ASK: [ip, port]. 0 with host and port, or
 * RSTORE_EREDIS with why. */
static int sentinel_addr(const redisReply *r, char *host, size_t hlen, int *port, const char **why)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING) {
        *why = r->type == REDIS_REPLY_ERROR ? r->str : "Sentinel does not know the master name";
        return RSTORE_EREDIS;
    }
    int p = atoi(r->element[1]->str);
    if (p <= 0 || p > 65535) {
        *why = "Sentinel gave a bad port";
        return RSTORE_EREDIS;
    }
    snprintf(host, hlen, "%s", r->element[0]->str);
    *port = p;
    return 0;
}

static void sent_sub_msg(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rstore *rs = ((struct rs_conn *)ac->data)->rs;
    redisReply *r = reply;
    if (!r || rs->sent.ac != ac || rs->closing || r->type != REDIS_REPLY_ARRAY || r->elements < 3)
        return;
    const redisReply *kind = r->element[0], *msg = r->element[2];
    if (kind->type != REDIS_REPLY_STRING || strcmp(kind->str, "message") != 0 ||
        msg->type != REDIS_REPLY_STRING)
        return;
    /* "<master name> <old ip> <old port> <new ip> <new port>" */
    size_t mlen = strlen(rs->sent_master);
    if (msg->len <= mlen || strncmp(msg->str, rs->sent_master, mlen) != 0 || msg->str[mlen] != ' ')
        return;
    char oldip[64], newip[64];
    int oldport = 0, newport = 0;
    if (sscanf(msg->str + mlen + 1, "%63s %d %63s %d", oldip, &oldport, newip, &newport) == 4 &&
        newport == rs->master_port && strcmp(newip, rs->master_ip) == 0)
        return; /* we asked after the switch and already talk to the new master */
    eg_warn("redis: Sentinel reports failover of '%s': %s", rs->sent_master, msg->str + mlen + 1);
    rs_link_fail(rs, "Sentinel switched master", false);
    rs->backoff_ms = 0;
    rs_link_set_timer(rs, 0); /* follow at once */
}

static void sent_addr_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rstore *rs = ((struct rs_conn *)ac->data)->rs;
    redisReply *r = reply;
    if (!r || rs->sent.ac != ac || rs->closing)
        return;
    char host[RS_HOST_MAX];
    int port = 0;
    const char *why = NULL;
    if (sentinel_addr(r, host, sizeof(host), &port, &why) < 0) {
        rs_link_fail(rs, why, true);
        return;
    }
    /* Watch for failovers from now on; this connection now only listens. */
    redisAsyncCommand(ac, sent_sub_msg, NULL, "SUBSCRIBE +switch-master");
    rs_resolve(rs, host, port, rs_connect_master);
}

void rs_connect_sentinel(struct rstore *rs, const char *ip, int port)
{
    if (rs_conn_open(rs, &rs->sent, ip, port) < 0) {
        rs_link_fail(rs, "cannot open a Sentinel connection", true);
        return;
    }
    redisAsyncCommand(rs->sent.ac, sent_addr_reply, NULL, SENTINEL_ASK, rs->sent_master);
}

/* ---- The core's blocking lookup ------------------------------------------------ */

int rstore_sentinel_master(const struct conf_redis *r, char *host, size_t hlen, int *port)
{
    struct timeval tv = {SENTINEL_TIMEOUT_MS / 1000, (SENTINEL_TIMEOUT_MS % 1000) * 1000};
    for (size_t i = 0; i < r->sentinel.nodes.n; i++) {
        const char *node = r->sentinel.nodes.v[i];
        char sh[RS_HOST_MAX];
        int sp;
        const char *why;
        if (units_parse_hostport(node, sh, sizeof(sh), &sp, &why) < 0)
            continue;
        redisContext *c = redisConnectWithTimeout(sh, sp, tv);
        if (!c || c->err) {
            eg_warn("redis: sentinel %s: %s", node, c ? c->errstr : "no memory");
            if (c)
                redisFree(c);
            continue;
        }
        redisSetTimeout(c, tv);
        redisReply *rep = redisCommand(c, SENTINEL_ASK, r->sentinel.master);
        int rc = rep ? sentinel_addr(rep, host, hlen, port, &why) : RSTORE_EREDIS;
        if (rc < 0)
            eg_warn("redis: sentinel %s does not know master '%s'", node, r->sentinel.master);
        if (rep)
            freeReplyObject(rep);
        redisFree(c);
        if (rc == 0)
            return 0;
    }
    return RSTORE_EREDIS;
}
