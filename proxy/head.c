/*
 * head: an HTTP head as bytes plus offsets (head.h), its pool, the client a
 * trusted balancer's X-Forwarded-For names, and the two rewrites: the
 * client's request head for the upstream, the upstream's response head for
 * the client.
 */
#include "proxy/head.h"

#include "common/conf.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct head *head_new(uint32_t cap)
{
    if (cap > HEAD_MAX_BYTES)
        cap = HEAD_MAX_BYTES;
    struct head *h = malloc(sizeof(*h) + cap);
    if (!h)
        return NULL;
    h->len = 0;
    h->cap = cap;
    h->url_off = h->url_len = 0;
    h->n = 0;
    h->in_value = 0;
    return h;
}

static int put(struct head *h, const char *d, size_t n)
{
    if (h->len + n > h->cap)
        return -1;
    memcpy(h->data + h->len, d, n);
    h->len += (uint32_t)n;
    return 0;
}

int head_url(struct head *h, const char *d, size_t n)
{
    if (h->url_len == 0)
        h->url_off = (uint16_t)h->len;
    if (put(h, d, n) < 0)
        return -1;
    h->url_len = (uint16_t)(h->url_len + n);
    return 0;
}

int head_field(struct head *h, const char *d, size_t n)
{
    if (h->n == 0 || h->in_value) {
        if (h->n >= HEAD_MAX_HEADERS)
            return -1;
        h->h[h->n].n_off = (uint16_t)h->len;
        h->h[h->n].n_len = 0;
        h->h[h->n].v_off = 0;
        h->h[h->n].v_len = 0;
        h->n++;
        h->in_value = 0;
    }
    if (put(h, d, n) < 0)
        return -1;
    h->h[h->n - 1].n_len = (uint16_t)(h->h[h->n - 1].n_len + n);
    return 0;
}

int head_value(struct head *h, const char *d, size_t n)
{
    if (h->n == 0)
        return -1;
    if (!h->in_value) {
        h->in_value = 1;
        h->h[h->n - 1].v_off = (uint16_t)h->len;
    }
    if (put(h, d, n) < 0)
        return -1;
    h->h[h->n - 1].v_len = (uint16_t)(h->h[h->n - 1].v_len + n);
    return 0;
}

int head_name_is(const struct head *h, uint32_t i, const char *name)
{
    size_t l = strlen(name);
    return h->h[i].n_len == l && strncasecmp(h->data + h->h[i].n_off, name, l) == 0;
}

/*
 * The forwarder skips hop-by-hop headers by name; renaming this one in place
 * to a shorter hop-by-hop name ("keep-alive") makes it skip it too, without
 * a second copy of the head. A name shorter than that stays (none the
 * proxy drops is).
 */
void head_drop(struct head *h, const char *name)
{
    static const char hop[] = "keep-alive";
    for (uint32_t i = 0; i < h->n; i++) {
        if (!head_name_is(h, i, name) || h->h[i].n_len < sizeof(hop) - 1)
            continue;
        memcpy(h->data + h->h[i].n_off, hop, sizeof(hop) - 1);
        h->h[i].n_len = sizeof(hop) - 1;
    }
}

static int is(const char *n, const char *want, size_t l)
{
    return strncasecmp(n, want, l) == 0;
}

unsigned head_kind(const struct head *h, uint32_t i)
{
    const char *n = h->data + h->h[i].n_off;
    switch (h->h[i].n_len) {
    case 2:
        return is(n, "te", 2) ? HDR_TE : 0;
    case 4:
        return is(n, "host", 4) ? HDR_HOST : 0;
    case 6:
        return is(n, "expect", 6) ? HDR_EXPECT : 0;
    case 7:
        return is(n, "upgrade", 7) ? HDR_UPGRADE : is(n, "trailer", 7) ? HDR_TRAILER : 0;
    case 8:
        return is(n, "location", 8) ? HDR_LOCATION : 0;
    case 10:
        return is(n, "connection", 10)   ? HDR_CONNECTION
               : is(n, "keep-alive", 10) ? HDR_KEEP_ALIVE
                                         : 0;
    case 14:
        return is(n, "content-length", 14) ? HDR_CONTENT_LENGTH : 0;
    case 15:
        return is(n, "x-forwarded-for", 15) ? HDR_X_FORWARDED_FOR : 0;
    case 16:
        return is(n, "proxy-connection", 16) ? HDR_PROXY_CONNECTION : 0;
    case 17:
        return is(n, "transfer-encoding", 17)   ? HDR_TRANSFER_ENCODING
               : is(n, "x-forwarded-proto", 17) ? HDR_X_FORWARDED_PROTO
                                                : 0;
    default:
        return 0;
    }
}

const char *head_get(const struct head *h, const char *name, size_t *vlen)
{
    size_t l = strlen(name);
    for (uint32_t i = 0; i < h->n; i++) {
        if (h->h[i].n_len == l && strncasecmp(h->data + h->h[i].n_off, name, l) == 0) {
            *vlen = h->h[i].v_len;
            return h->data + h->h[i].v_off;
        }
    }
    return NULL;
}

struct head *head_take(struct head_pool *p, uint32_t cap)
{
    if (cap > HEAD_MAX_BYTES)
        cap = HEAD_MAX_BYTES;
    for (int i = p->n - 1; i >= 0; i--) {
        struct head *h = p->free[i];
        if (h->cap != cap)
            continue;
        p->free[i] = p->free[--p->n];
        h->len = 0;
        h->url_off = h->url_len = 0;
        h->n = 0;
        h->in_value = 0;
        return h;
    }
    return head_new(cap);
}

void head_put(struct head_pool *p, struct head *h)
{
    if (!h)
        return;
    if (p->n < HEAD_POOL_MAX && h->cap >= 1024) {
        p->free[p->n++] = h;
        return;
    }
    free(h);
}

void head_pool_free(struct head_pool *p)
{
    while (p->n > 0)
        free(p->free[--p->n]);
}

void head_shrink(struct head **hp)
{
    struct head *h = *hp;
    struct head *n = realloc(h, sizeof(*h) + h->len);
    if (!n)
        return;
    n->cap = n->len;
    *hp = n;
}

int head_xff_client(const struct head *h, const struct conf_net *nets, size_t nn, char *out,
                    size_t cap)
{
    uint8_t cur[16];
    int found = 0;
    for (uint32_t k = h->n; k-- > 0;) {
        if (!(head_kind(h, k) & HDR_X_FORWARDED_FOR))
            continue;
        const char *v = h->data + h->h[k].v_off;
        size_t end = h->h[k].v_len;
        for (;;) {
            size_t start = end;
            while (start > 0 && v[start - 1] != ',')
                start--;
            size_t a = start, b = end;
            while (a < b && (v[a] == ' ' || v[a] == '\t'))
                a++;
            while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
                b--;
            uint8_t next[16];
            if (conf_ip16(v + a, b - a, next) < 0)
                goto done;
            memcpy(cur, next, 16);
            found = 1;
            if (!conf_net_match(nets, nn, cur))
                goto done;
            if (start == 0)
                break;
            end = start - 1;
        }
    }
done:
    if (!found)
        return 0;
    static const uint8_t v4[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(cur, v4, 12) == 0)
        inet_ntop(AF_INET, cur + 12, out, (socklen_t)cap);
    else
        inet_ntop(AF_INET6, cur, out, (socklen_t)cap);
    return 1;
}

/* ---- the request head for the upstream ---- */

/* Request headers that are this hop's own, or that the proxy sets itself. */
#define REQ_HOP                                                                                    \
    (HDR_CONNECTION | HDR_KEEP_ALIVE | HDR_PROXY_CONNECTION | HDR_TE | HDR_UPGRADE | HDR_EXPECT |  \
     HDR_TRANSFER_ENCODING | HDR_CONTENT_LENGTH | HDR_HOST | HDR_X_FORWARDED_FOR |                 \
     HDR_X_FORWARDED_PROTO | HDR_TRAILER)

/* Is header i named in a Connection header ("Connection: close, X-Foo")?
 * Such headers are for this hop only (RFC 9110 7.6.1). */
static int named_by_connection(const struct head *h, uint32_t i)
{
    const char *name = h->data + h->h[i].n_off;
    size_t nl = h->h[i].n_len;
    for (uint32_t k = 0; k < h->n; k++) {
        if (!(head_kind(h, k) & HDR_CONNECTION))
            continue;
        const char *v = h->data + h->h[k].v_off, *end = v + h->h[k].v_len;
        while (v < end) {
            while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
                v++;
            const char *t = v;
            while (v < end && *v != ',' && *v != ' ' && *v != '\t')
                v++;
            if ((size_t)(v - t) == nl && strncasecmp(t, name, nl) == 0)
                return 1;
        }
    }
    return 0;
}

/* One header as it came. Done for every header of every request and
 * response, so it stays inline in the loops as it was written before it was
 * shared. */
static inline __attribute__((always_inline)) char *header_line(char *o, const struct head *h,
                                                               uint32_t i)
{
    o = out_put(o, h->data + h->h[i].n_off, h->h[i].n_len);
    *o++ = ':';
    *o++ = ' ';
    o = out_put(o, h->data + h->h[i].v_off, h->h[i].v_len);
    *o++ = '\r';
    *o++ = '\n';
    return o;
}

/* The client's end-to-end headers, as they came. */
static char *end_to_end(char *o, const struct head *h)
{
    int has_connection = 0;
    for (uint32_t i = 0; i < h->n; i++)
        has_connection |= (head_kind(h, i) & HDR_CONNECTION) != 0;
    for (uint32_t i = 0; i < h->n; i++) {
        if ((head_kind(h, i) & REQ_HOP) || (has_connection && named_by_connection(h, i)))
            continue;
        o = header_line(o, h, i);
    }
    return o;
}

size_t head_upstream(const struct head *h, const struct head_up *up, char *out)
{
    char *o = out;
    o = out_str(o, up->method);
    *o++ = ' ';
    if (up->path && up->path_skip <= h->url_len) {
        o = out_str(o, up->path);
        o = out_put(o, h->data + h->url_off + up->path_skip, h->url_len - up->path_skip);
    } else {
        o = out_put(o, h->data + h->url_off, h->url_len);
    }
    o = OUT_LIT(o, " HTTP/1.1\r\n");
    o = end_to_end(o, h);
    o = OUT_LIT(o, "Host: ");
    o = out_str(o, up->host);
    o = OUT_LIT(o, "\r\nX-Forwarded-For: ");
    if (up->xff_chain) /* the balancers' chain goes on, the balancer added */
        for (uint32_t i = 0; i < h->n; i++)
            if (head_kind(h, i) & HDR_X_FORWARDED_FOR) {
                o = out_put(o, h->data + h->h[i].v_off, h->h[i].v_len);
                o = OUT_LIT(o, ", ");
            }
    o = out_str(o, up->client);
    o = up->tls ? OUT_LIT(o, "\r\nX-Forwarded-Proto: https\r\n")
                : OUT_LIT(o, "\r\nX-Forwarded-Proto: http\r\n");
    if (up->framing == HEAD_LENGTH) {
        o = OUT_LIT(o, "Content-Length: ");
        o = out_u64(o, up->length);
        o = OUT_LIT(o, "\r\n");
    } else if (up->framing == HEAD_CHUNKED) {
        o = OUT_LIT(o, "Transfer-Encoding: chunked\r\n");
    }
    o = OUT_LIT(o, "\r\n");
    return (size_t)(o - out);
}

/* ---- the response head for the client ---- */

/* Response headers that are this hop's own (RFC 9110 7.6.1). */
#define RESP_HOP                                                                                   \
    (HDR_CONNECTION | HDR_KEEP_ALIVE | HDR_TRANSFER_ENCODING | HDR_TE | HDR_TRAILER |              \
     HDR_UPGRADE | HDR_PROXY_CONNECTION)

/* Does path p (n bytes) start with the path s, up to a segment's end? */
static size_t path_under(const char *p, size_t n, const char *s)
{
    size_t l = strlen(s);
    if (l == 0 || n < l || memcmp(p, s, l) != 0)
        return 0;
    return l == n || p[l] == '/' || p[l] == '?' || p[l] == '#' ? l : 0;
}

int head_map_location(const struct head_map *m, const char *v, size_t vl, char *out)
{
    size_t p = 0;
    const char *colon = memchr(v, ':', vl);
    if (vl >= 2 && v[0] == '/' && v[1] != '/') {
        p = 0; /* path-absolute: on the server's own host */
    } else if (colon && (size_t)(colon - v) + 3 <= vl && colon[1] == '/' && colon[2] == '/') {
        const char *a = colon + 3, *end = v + vl;
        size_t al = 0; /* v is not NUL-terminated: bounded by vl */
        while (a + al < end && a[al] != '/' && a[al] != '?' && a[al] != '#')
            al++;
        if (!m->authority || strlen(m->authority) != al || strncasecmp(a, m->authority, al) != 0)
            return -1; /* another host: not ours to change */
        p = (size_t)(a - v) + al;
        if (p >= vl || v[p] != '/')
            return -1;
    } else {
        return -1; /* relative to the request: it was the client's path already */
    }
    const char *path = v + p;
    size_t pl = vl - p;
    for (int i = 0; i < HEAD_MAP_ROUTES; i++) {
        if (!m->server[i] || !m->client[i])
            continue;
        size_t l = path_under(path, pl, m->server[i]);
        if (l) {
            size_t cl = strlen(m->client[i]);
            memcpy(out, m->client[i], cl);
            memcpy(out + cl, path + l, pl - l);
            return (int)(cl + pl - l);
        }
    }
    size_t l = m->prefix ? path_under(path, pl, m->prefix) : 0;
    if (!l)
        return -1;
    size_t n = 0;
    if (l == pl || path[l] != '/')
        out[n++] = '/'; /* the prefix itself: the client's root */
    memcpy(out + n, path + l, pl - l);
    return (int)(n + pl - l);
}

size_t head_response(const struct head *h, int status, const char *reason, int chunked, int close,
                     const struct head_map *map, char *out)
{
    char *o = OUT_LIT(out, "HTTP/1.1 ");
    o = out_u64(o, (uint64_t)status);
    *o++ = ' ';
    o = h->url_len ? out_put(o, h->data + h->url_off, h->url_len) : out_str(o, reason);
    o = OUT_LIT(o, "\r\n");
    int mapped = !map;
    for (uint32_t i = 0; i < h->n; i++) {
        unsigned kind = head_kind(h, i);
        if (kind & RESP_HOP)
            continue;
        if ((kind & HDR_LOCATION) && !mapped) {
            /* Only the first: the room for what mapping adds is counted once. */
            mapped = 1;
            char *at = OUT_LIT(o, "Location: ");
            int n = head_map_location(map, h->data + h->h[i].v_off, h->h[i].v_len, at);
            if (n >= 0) {
                o = OUT_LIT(at + n, "\r\n");
                continue;
            }
        }
        o = header_line(o, h, i);
    }
    if (chunked)
        o = OUT_LIT(o, "Transfer-Encoding: chunked\r\n");
    if (close)
        o = OUT_LIT(o, "Connection: close\r\n");
    o = OUT_LIT(o, "\r\n");
    return (size_t)(o - out);
}
