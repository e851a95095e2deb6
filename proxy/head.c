/*
 * head: an HTTP head as bytes plus offsets (head.h), its pool, and the
 * rewrite of a client's request head for the upstream.
 */
#include "proxy/head.h"

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
