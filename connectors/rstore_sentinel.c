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
 */
#include "connectors/rstore_int.h"

#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING) {
        rs_link_fail(
            rs, r->type == REDIS_REPLY_ERROR ? r->str : "Sentinel does not know the master name",
            true);
        return;
    }
    int port = atoi(r->element[1]->str);
    if (port <= 0 || port > 65535) {
        rs_link_fail(rs, "Sentinel gave a bad port", true);
        return;
    }
    char host[RS_HOST_MAX];
    snprintf(host, sizeof(host), "%s", r->element[0]->str);
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
    redisAsyncCommand(rs->sent.ac, sent_addr_reply, NULL, "SENTINEL get-master-addr-by-name %s",
                      rs->sent_master);
}
