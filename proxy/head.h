/*
 * head: an HTTP head kept as the bytes llhttp handed us plus a table of
 * offsets, so that it can be forwarded rewritten without a second parse.
 * llhttp may deliver a name or a value in pieces; pieces are appended in
 * place. A request head and a response head are the same struct.
 *
 * Heads are the one large allocation of a request (max_header_size for a
 * request, 32 KiB for a response): each worker keeps a few in a head_pool
 * for reuse, so the steady state allocates none.
 *
 * Pure apart from malloc: no sockets, no worker (unit-tested in
 * tests/unit/test_proxy_route.c and test_proxy_head.c).
 */
#ifndef EG_HEAD_H
#define EG_HEAD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define HEAD_MAX_HEADERS 64
#define HEAD_MAX_BYTES 65535 /* offsets are 16-bit; limits.max_header_size is capped here */

/* A request or response head: raw bytes plus where each piece is. */
struct head {
    uint32_t len, cap;
    uint16_t url_off, url_len; /* request target, or the reason phrase */
    uint16_t n;
    struct {
        uint16_t n_off, n_len, v_off, v_len;
    } h[HEAD_MAX_HEADERS];
    unsigned in_value : 1;
    char data[];
};

/* A head of at most cap bytes (capped at HEAD_MAX_BYTES); free() it. */
struct head *head_new(uint32_t cap);

/* The few heads a worker keeps for reuse (one thread only). */
#define HEAD_POOL_MAX 16
struct head_pool {
    struct head *free[HEAD_POOL_MAX];
    int n;
};
/* An empty head of exactly cap bytes, from the pool or new; NULL without
 * memory. head_put gives it back (NULL is fine); head_pool_free frees the
 * pool's heads when the worker ends. */
struct head *head_take(struct head_pool *p, uint32_t cap);
void head_put(struct head_pool *p, struct head *h);
void head_pool_free(struct head_pool *p);
/* Give back the unused capacity (a head kept while a request waits). */
void head_shrink(struct head **h);

/* Append to the url or a header name/value; -1 when cap or the header count
 * would be exceeded (the caller answers 431 / 502). */
int head_url(struct head *h, const char *d, size_t n);
int head_field(struct head *h, const char *d, size_t n);
int head_value(struct head *h, const char *d, size_t n);
/* Value of the first header called name (case-insensitive), or NULL. */
const char *head_get(const struct head *h, const char *name, size_t *vlen);
int head_name_is(const struct head *h, uint32_t i, const char *name);
/* Drop every header called name toward the upstream (head_upstream skips
 * it from then on). */
void head_drop(struct head *h, const char *name);

/* The header names the forwarders treat specially, one bit each, found by
 * length first so that most names cost one switch and no compare. */
enum {
    HDR_CONNECTION = 1 << 0,
    HDR_KEEP_ALIVE = 1 << 1,
    HDR_PROXY_CONNECTION = 1 << 2,
    HDR_TE = 1 << 3,
    HDR_UPGRADE = 1 << 4,
    HDR_EXPECT = 1 << 5,
    HDR_TRANSFER_ENCODING = 1 << 6,
    HDR_CONTENT_LENGTH = 1 << 7,
    HDR_HOST = 1 << 8,
    HDR_X_FORWARDED_FOR = 1 << 9,
    HDR_X_FORWARDED_PROTO = 1 << 10,
    HDR_TRAILER = 1 << 11,
    HDR_LOCATION = 1 << 12,
};
unsigned head_kind(const struct head *h, uint32_t i);

/* Behind trusted balancers (nets, n: conf_net_match's list) the client is
 * the first address from the right of X-Forwarded-For (the last such
 * header first) that is not one of them, as nginx's realip module does it
 * recursively. A value that is not an address ends the walk: the last
 * address read stands. Writes it as text to out (IPv4-mapped as IPv4):
 * 1, or 0 when there was none (out untouched). */
struct conf_net;
int head_xff_client(const struct head *h, const struct conf_net *nets, size_t n, char *out,
                    size_t cap);

/* ---- the request head for the upstream ---- */

/* What the rewritten head says beyond the client's own headers. */
enum head_framing { HEAD_NO_BODY, HEAD_LENGTH, HEAD_CHUNKED };
struct head_up {
    const char *method; /* "POST" */
    const char *host;   /* the Host value for the upstream url chosen */
    const char *client; /* the connection's peer: the last X-Forwarded-For address */
    int xff_chain;      /* the peer is a trusted balancer: its X-Forwarded-For goes on before */
    int tls;            /* X-Forwarded-Proto: https, else http */
    enum head_framing framing;
    uint64_t length; /* HEAD_LENGTH: the Content-Length */
    /* The server's path for the route (at most HEAD_PATH_MAX bytes), put
     * instead of the target's first path_skip bytes; NULL: the target as
     * the client sent it. */
    const char *path;
    size_t path_skip;
};

#define HEAD_PATH_MAX 256 /* a path on the server (conf's CONF_PATH_MAX) */

/* Room for any head head_upstream builds: the client's bytes, ": " and CRLF
 * per header, and what it adds (method, host, address, a number). */
#define HEAD_UP_MAX (HEAD_MAX_BYTES + 4 * HEAD_MAX_HEADERS + 1024 + HEAD_PATH_MAX)

/* Build the upstream request head from the client's request head h into
 * out (HEAD_UP_MAX bytes): the request line as HTTP/1.1; the client's
 * headers without the hop-by-hop ones (Connection, Keep-Alive,
 * Proxy-Connection, TE, Upgrade, Trailer, Expect, and those a Connection
 * header names) and without those the proxy sets itself (Host,
 * Transfer-Encoding, Content-Length, X-Forwarded-For, X-Forwarded-Proto);
 * then Host, X-Forwarded-For, X-Forwarded-Proto and the framing. Returns
 * the length. */
size_t head_upstream(const struct head *h, const struct head_up *up, char *out);

/* ---- the response head for the client ---- */

#define HEAD_RESP_CAP 32768 /* an upstream's response head may be this large */
#define HEAD_RESP_MAX (HEAD_RESP_CAP + 4 * HEAD_MAX_HEADERS + 512 + HEAD_MAP_GROWTH)

/* A server under a path (upstream.paths): how its redirects map back to
 * the paths the client knows. */
#define HEAD_MAP_ROUTES 3
struct head_map {
    const char *authority; /* the Host the request went with: an absolute
                              Location naming it is the server's own */
    const char *prefix;    /* the url's path, "" for none */
    const char *server[HEAD_MAP_ROUTES], *client[HEAD_MAP_ROUTES]; /* a route's two paths */
};

/* The Location value v mapped back for the client into out (at least vl +
 * HEAD_MAP_GROWTH bytes): a path-absolute reference ("/Microsoft-Server-
 * ActiveSync?...") when v is the server's own (path-absolute, or absolute
 * naming m->authority) and its path is a route's server path (then the
 * route's client path) or lies under the prefix (then the prefix goes).
 * Returns the length, or -1 when v stays as it is. */
#define HEAD_MAP_GROWTH 64
int head_map_location(const struct head_map *m, const char *v, size_t vl, char *out);

/* Build the client's response head from the upstream's response head h
 * into out (HEAD_RESP_MAX bytes): "HTTP/1.1 status reason" (h's reason
 * phrase, or reason when it had none: NULL will do when it has one); h's
 * headers without the hop-by-hop ones (Connection, Keep-Alive,
 * Proxy-Connection, Transfer-Encoding, TE, Trailer, Upgrade), the first
 * Location mapped back by map (NULL: none); then Transfer-Encoding: chunked
 * and Connection: close when asked. Returns the length. */
size_t head_response(const struct head *h, int status, const char *reason, int chunked, int close,
                     const struct head_map *map, char *out);

/* Appending to a head being built in a buffer the caller sized for it:
 * each returns the new end. */
static inline char *out_put(char *o, const char *s, size_t n)
{
    memcpy(o, s, n);
    return o + n;
}
#define OUT_LIT(o, lit) out_put(o, lit, sizeof(lit) - 1)
static inline char *out_str(char *o, const char *s)
{
    return out_put(o, s, strlen(s));
}
static inline char *out_u64(char *o, uint64_t v)
{
    char t[20];
    size_t n = 0;
    do
        t[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n > 0)
        *o++ = t[--n];
    return o;
}

#endif
