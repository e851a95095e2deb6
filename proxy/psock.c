/*
 * psock: TCP + optional TLS. Plaintext gathers in a pooled block and is
 * sealed into records on flush; ciphertext gathers in another block and goes
 * to the kernel with uv_try_write, so the usual small answer costs one record
 * and one write(2) and no libuv write request at all; only what the kernel
 * refuses waits in a uv_write, whose completion returns the block to the
 * loop's pool (struct psock_io).
 */
#include "proxy/psock.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

static void on_tls_emit(void *owner, const char *d, size_t n);
static void submit(struct psock *s);
static void seal(struct psock *s);
static int on_tls_plain(void *owner, const char *d, size_t n);
static int on_tls_ready(void *owner);

static const struct tls_cbs psock_tls_cbs = {on_tls_emit, on_tls_plain, on_tls_ready};

int psock_init(struct psock *s, struct psock_io *io, const struct psock_cbs *cbs, void *owner)
{
    memset(s, 0, sizeof(*s));
    s->io = io;
    s->cbs = cbs;
    s->owner = owner;
    int r = uv_tcp_init(io->loop, &s->tcp);
    if (r == 0)
        s->tcp.data = s;
    return r;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct psock *s = h->data;
    buf->base = s->io->rbuf;
    buf->len = sizeof(s->io->rbuf);
}

/* Copy what fits of d into *slot, a pooled block taken when missing.
 * Returns the bytes taken; 0 means no memory (the stream is failed). */
static size_t fill(struct psock *s, struct buf_block **slot, const char *d, size_t n)
{
    if (!*slot && !(*slot = buf_get(&s->io->pool))) {
        s->tls_failed = 1;
        return 0;
    }
    struct buf_block *b = *slot;
    size_t k = BUF_BLOCK_DATA - b->len < n ? BUF_BLOCK_DATA - b->len : n;
    memcpy(b->data + b->len, d, k);
    b->len += k;
    return k;
}

/* Append raw bytes (ciphertext, or plaintext without TLS) to the queue. */
static void append(struct psock *s, const char *d, size_t n)
{
    while (n > 0) {
        size_t k = fill(s, &s->cur, d, n);
        if (k == 0)
            return;
        d += k;
        n -= k;
        if (s->cur->len == BUF_BLOCK_DATA)
            submit(s);
    }
}

static void on_tls_emit(void *owner, const char *d, size_t n)
{
    append(owner, d, n);
}

static int on_tls_plain(void *owner, const char *d, size_t n)
{
    struct psock *s = owner;
    s->bytes_in += n;
    return s->cbs->data(s, d, n) || s->closing;
}

static int on_tls_ready(void *owner)
{
    struct psock *s = owner;
    s->ready = 1;
    __atomic_add_fetch(s->io->handshakes, 1, __ATOMIC_RELAXED);
    return s->cbs->ready(s) || s->closing;
}

static void read_data(struct psock *s, ssize_t nread, const uv_buf_t *buf);

/* Flush what the callbacks of one read marked. A socket closed meanwhile is
 * skipped (its memory lives until its close callback, which runs later). */
static void flush_marked(struct psock_io *io)
{
    while (io->flush_list) {
        struct psock *s = io->flush_list;
        io->flush_list = s->flush_next;
        s->flush_next = NULL;
        s->in_flush_list = 0;
        psock_flush(s);
    }
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct psock *s = st->data;
    struct psock_io *io = s->io;
    io->in_read++;
    read_data(s, nread, buf);
    if (--io->in_read == 0)
        flush_marked(io);
}

/* The PROXY header's bytes so far, when it came in pieces. */
struct psock_pp {
    size_t have;
    uint8_t buf[PP_MAX];
};

int psock_expect_proxy_header(struct psock *s)
{
    s->pp = calloc(1, sizeof(*s->pp));
    return s->pp ? 0 : -1;
}

/* Read the PROXY header from the front of d[0, n): parsed in place when it
 * comes whole (the usual case), else gathered. 1: done, *used bytes of d
 * were the header; 0: all of d taken, more needed; -1: the connection
 * ended or the owner closed it. */
static int proxy_header(struct psock *s, const char *d, size_t n, size_t *used)
{
    struct psock_pp *p = s->pp;
    size_t had = p->have, take = n < PP_MAX - had ? n : PP_MAX - had;
    const uint8_t *in = (const uint8_t *)d;
    size_t len = n;
    if (had) {
        memcpy(p->buf + had, d, take);
        in = p->buf;
        len = had + take;
    }
    struct pp_info info;
    const char *why = NULL;
    int r = pp_parse(in, len, &info, &why);
    if (r == PP_MORE) { /* then len < PP_MAX, so take == n */
        if (!had)
            memcpy(p->buf, d, take);
        p->have = had + take;
        return 0;
    }
    free(p);
    s->pp = NULL;
    if (r == PP_BAD) {
        psock_read_stop(s);
        s->cbs->end(s, PSOCK_EPROXY, why);
        return -1;
    }
    *used = info.len - had;
    if ((s->cbs->proxied && s->cbs->proxied(s, &info)) || s->closing)
        return -1;
    return 1;
}

static void read_data(struct psock *s, ssize_t nread, const uv_buf_t *buf)
{
    if (s->closing)
        return;
    if (nread < 0) {
        psock_read_stop(s);
        s->cbs->end(s, nread == UV_EOF ? 0 : (int)nread,
                    nread == UV_EOF ? "end of stream" : uv_strerror(nread));
        return;
    }
    if (nread == 0)
        return;
    const char *d = buf->base;
    size_t n = (size_t)nread;
    if (s->pp) {
        size_t used = 0;
        if (proxy_header(s, d, n, &used) <= 0 || used == n)
            return;
        d += used;
        n -= used;
    }
    if (!s->tls) {
        s->bytes_in += n;
        s->cbs->data(s, d, n);
        return;
    }
    int r = tls_conn_feed(s->tls, d, n);
    if (r == 1 || s->closing)
        return;
    if (r == 0) {
        psock_flush(s); /* handshake messages, key updates */
        return;
    }
    /* an alert says why to the peer: out now, before end() closes us */
    seal(s);
    submit(s);
    if (r == -1) {
        s->tls_failed = 1;
        if (!s->ready)
            __atomic_add_fetch(s->io->handshake_failures, 1, __ATOMIC_RELAXED);
        psock_read_stop(s);
        s->cbs->end(s, PSOCK_ETLS, tls_conn_error(s->tls));
    } else if (r == 2) {
        psock_read_stop(s);
        s->cbs->end(s, 0, "close_notify");
    }
}

void psock_read_start(struct psock *s)
{
    if (s->reading || s->closing)
        return;
    if (uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read) == 0)
        s->reading = 1;
}

void psock_read_stop(struct psock *s)
{
    if (!s->reading)
        return;
    uv_read_stop((uv_stream_t *)&s->tcp);
    s->reading = 0;
}

int psock_start_server(struct psock *s, struct tls_ctx *ctx)
{
    if (ctx) {
        s->tls = tls_conn_new(ctx, &psock_tls_cbs, s, NULL, NULL);
        if (!s->tls)
            return UV_ENOMEM;
    } else {
        s->ready = 1;
    }
    psock_read_start(s);
    return 0;
}

static void on_connect(uv_connect_t *req, int status)
{
    struct psock *s = req->data;
    s->connect_req = NULL;
    free(req);
    if (s->closing)
        return;
    if (status < 0) {
        s->cbs->end(s, status, uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&s->tcp, 1);
    psock_read_start(s);
    if (!s->tls) {
        s->ready = 1;
        s->cbs->ready(s);
        return;
    }
    if (tls_conn_start(s->tls) < 0) {
        s->tls_failed = 1;
        __atomic_add_fetch(s->io->handshake_failures, 1, __ATOMIC_RELAXED);
        s->cbs->end(s, PSOCK_ETLS, tls_conn_error(s->tls));
        return;
    }
    psock_flush(s);
}

int psock_connect(struct psock *s, const struct sockaddr *addr, struct tls_ctx *ctx,
                  const char *sni, SSL_SESSION **session_slot)
{
    if (ctx) {
        s->tls = tls_conn_new(ctx, &psock_tls_cbs, s, sni, session_slot);
        if (!s->tls)
            return UV_ENOMEM;
    }
    uv_connect_t *req = malloc(sizeof(*req));
    if (!req)
        return UV_ENOMEM;
    req->data = s;
    int r = uv_tcp_connect(req, &s->tcp, addr, on_connect);
    if (r < 0) {
        free(req);
        return r;
    }
    s->connect_req = req;
    return 0;
}

static void on_write(uv_write_t *req, int status)
{
    struct buf_block *b = req->data;
    struct psock *s = b->owner;
    s->queued -= b->len;
    buf_put(&s->io->pool, b);
    if (s->closing)
        return;
    if (status < 0) {
        if (s->close_after_flush) {
            psock_close(s);
            return;
        }
        /* The read side reports the reset; make sure it is noticed even when
         * we are not reading. */
        if (!s->reading)
            s->cbs->end(s, status, uv_strerror(status));
        return;
    }
    if (s->close_after_flush && s->queued == 0 && !s->cur) {
        psock_close(s);
        return;
    }
    if (s->above_high && s->queued < PSOCK_LOW_WATER) {
        s->above_high = 0;
        if (s->cbs->drained)
            s->cbs->drained(s);
    }
}

/* Hand the ciphertext block to the kernel. uv_try_write first: when the
 * socket takes it all (the common case) the block goes straight back to the
 * pool and libuv never sees a write request, which also spares the epoll
 * update libuv makes when a queued write completes. What is left goes
 * through uv_write; an error there is reported by on_write, never from here,
 * so callers need not expect callbacks from a flush. */
static void submit(struct psock *s)
{
    struct buf_block *b = s->cur;
    if (!b || b->len == 0 || s->closing)
        return;
    s->cur = NULL;
    uv_buf_t ub = uv_buf_init(b->data, (unsigned)b->len);
    int k = uv_try_write((uv_stream_t *)&s->tcp, &ub, 1);
    if (k == (int)b->len) {
        buf_put(&s->io->pool, b);
        return;
    }
    if (k > 0) {
        ub.base += k;
        ub.len -= (size_t)k;
        b->len -= (size_t)k;
    }
    b->owner = s;
    b->req.data = b;
    if (uv_write(&b->req, (uv_stream_t *)&s->tcp, &ub, 1, on_write) < 0) {
        buf_put(&s->io->pool, b);
        return;
    }
    s->queued += b->len;
    if (s->queued >= PSOCK_HIGH_WATER)
        s->above_high = 1;
}

/* Seal the staged plaintext into records (their ciphertext lands in cur). */
static void seal(struct psock *s)
{
    struct buf_block *p = s->plain;
    if (!p)
        return;
    s->plain = NULL;
    if (p->len > 0 && !s->tls_failed && tls_conn_write(s->tls, p->data, p->len) < 0)
        s->tls_failed = 1;
    buf_put(&s->io->pool, p);
}

void psock_flush(struct psock *s)
{
    if (s->closing)
        return;
    if (s->io->in_read) {
        if ((s->plain || s->cur) && !s->in_flush_list) {
            s->in_flush_list = 1;
            s->flush_next = s->io->flush_list;
            s->io->flush_list = s;
        }
        return;
    }
    seal(s);
    submit(s);
}

int psock_write(struct psock *s, const char *d, size_t n)
{
    if (s->closing || s->tls_failed)
        return -1;
    s->bytes_out += n;
    if (!s->tls) {
        append(s, d, n);
        return s->tls_failed ? -1 : 0;
    }
    /* Stage plaintext so that pieces written together share a record; a
     * full record's worth is sealed at once (16 KiB is TLS's maximum). */
    while (n > 0) {
        if (!s->plain && n >= BUF_BLOCK_DATA) {
            size_t whole = n - n % BUF_BLOCK_DATA; /* nothing staged: no copy */
            if (tls_conn_write(s->tls, d, whole) < 0) {
                s->tls_failed = 1;
                break;
            }
            d += whole;
            n -= whole;
            continue;
        }
        size_t k = fill(s, &s->plain, d, n);
        if (k == 0)
            break;
        d += k;
        n -= k;
        if (s->plain->len == BUF_BLOCK_DATA)
            seal(s);
    }
    return s->tls_failed ? -1 : 0;
}

int psock_writev(struct psock *s, const uv_buf_t *b, int n)
{
    for (int i = 0; i < n; i++)
        if (psock_write(s, b[i].base, b[i].len) < 0)
            return -1;
    return 0;
}

int psock_send(struct psock *s, const char *d, size_t n)
{
    int r = psock_write(s, d, n);
    psock_flush(s);
    return r;
}

int psock_congested(const struct psock *s)
{
    return s->queued + (s->cur ? s->cur->len : 0) + (s->plain ? s->plain->len : 0) >=
           PSOCK_HIGH_WATER;
}

void psock_lean(struct psock *s, int on)
{
    if (s->tls)
        tls_conn_set_lean(s->tls, on);
}

static void on_closed(uv_handle_t *h)
{
    struct psock *s = h->data;
    if (s->cur) {
        buf_put(&s->io->pool, s->cur);
        s->cur = NULL;
    }
    if (s->plain) {
        buf_put(&s->io->pool, s->plain);
        s->plain = NULL;
    }
    tls_conn_free(s->tls);
    s->tls = NULL;
    free(s->pp);
    s->pp = NULL;
    if (s->cbs->closed)
        s->cbs->closed(s);
}

void psock_close(struct psock *s)
{
    if (s->closing)
        return;
    if (s->in_flush_list) {
        struct psock **pp = &s->io->flush_list;
        while (*pp && *pp != s)
            pp = &(*pp)->flush_next;
        if (*pp)
            *pp = s->flush_next;
        s->in_flush_list = 0;
    }
    s->closing = 1;
    s->reading = 0;
    uv_close((uv_handle_t *)&s->tcp, on_closed);
}

void psock_close_graceful(struct psock *s)
{
    if (s->closing)
        return;
    seal(s); /* now, not at the end of a read: the close below must not drop it */
    if (s->tls && !s->tls_failed)
        tls_conn_shutdown(s->tls);
    submit(s);
    if (s->queued == 0) {
        psock_close(s);
        return;
    }
    psock_read_stop(s);
    s->close_after_flush = 1;
}

void psock_addr_text(const struct sockaddr *sa, char *buf, size_t len)
{
    buf[0] = '\0';
    if (sa->sa_family == AF_INET)
        uv_ip4_name((const struct sockaddr_in *)sa, buf, len);
    else if (sa->sa_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)sa, buf, len);
        if (strncmp(buf, "::ffff:", 7) == 0 && strchr(buf + 7, '.'))
            memmove(buf, buf + 7, strlen(buf + 7) + 1);
    }
}

void psock_peer_text(const struct psock *s, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    buf[0] = '\0';
    if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &sl) == 0)
        psock_addr_text((const struct sockaddr *)&ss, buf, len);
}
