/*
 * rstore_dns: name resolution, never on the loop thread.
 *
 * hiredis's connect resolves names with a blocking getaddrinfo, which would
 * stall every connection of the worker for as long as the resolver takes.
 * Names go through uv_getaddrinfo (libuv's thread pool) instead, and hiredis
 * is only ever handed an address. An answer that comes back after the link
 * has moved on (its epoch is old) or after rstore_free is dropped; the
 * instance is freed only when no resolution is outstanding.
 */
#include "connectors/rstore_int.h"

#include <stdlib.h>

struct rs_resolve {
    struct rstore *rs;
    uv_getaddrinfo_t req;
    unsigned epoch;
    int port;
    void (*done)(struct rstore *rs, const char *ip, int port);
};

static void resolve_done(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct rs_resolve *q = req->data;
    struct rstore *rs = q->rs;
    rs->open_resolves--;
    char ip[INET6_ADDRSTRLEN] = "";
    if (status == 0 && res) {
        if (res->ai_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)res->ai_addr, ip, sizeof(ip));
        else
            uv_ip4_name((struct sockaddr_in *)res->ai_addr, ip, sizeof(ip));
    }
    if (res)
        uv_freeaddrinfo(res);
    if (rs->closing) {
        free(q);
        if (rs->open_handles == 0 && rs->open_resolves == 0)
            rs_destroy(rs);
        return;
    }
    if (q->epoch == rs->epoch && rs->link == LINK_CONNECTING) {
        if (ip[0])
            q->done(rs, ip, q->port);
        else
            rs_link_fail(rs, status ? uv_strerror(status) : "no address",
                         q->done != rs_connect_master);
    }
    free(q);
}

void rs_resolve(struct rstore *rs, const char *host, int port,
                void (*done)(struct rstore *, const char *, int))
{
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1) {
        done(rs, host, port);
        return;
    }
    struct rs_resolve *q = calloc(1, sizeof(*q));
    if (!q) {
        rs_link_fail(rs, "out of memory", false);
        return;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    q->rs = rs;
    q->epoch = rs->epoch;
    q->port = port;
    q->done = done;
    q->req.data = q;
    int rc = uv_getaddrinfo(rs->loop, &q->req, resolve_done, host, NULL, &hints);
    if (rc < 0) {
        free(q);
        rs_link_fail(rs, uv_strerror(rc), done != rs_connect_master);
        return;
    }
    rs->open_resolves++;
}
