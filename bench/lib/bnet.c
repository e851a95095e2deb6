/*
 * bnet: TLS over libuv through two memory BIOs. Ciphertext read from the
 * socket is pushed into rbio and plaintext pulled with SSL_read; whatever
 * OpenSSL writes into wbio (handshake records, application data, tickets) is
 * drained into one uv_write after every step. Plain TCP skips the BIOs.
 */
#include "bench/lib/bnet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#define BNET_READ_BUF (64 * 1024)

/* One loop per process, and libuv calls read_cb before the next alloc_cb: a
 * single static buffer serves every connection, so an idle connection costs
 * no read buffer at all. */
static char bnet_rbuf[BNET_READ_BUF];
static char bnet_plain[BNET_READ_BUF];

struct bnet_wreq {
    uv_write_t req;
    struct bnet_conn *c;
    size_t len;
    char data[];
};

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    buf->base = bnet_rbuf;
    buf->len = sizeof(bnet_rbuf);
}

static void on_closed(uv_handle_t *h)
{
    struct bnet_conn *c = h->data;
    if (c->ssl) {
        /* Freeing a connection that was not shut down marks its session
         * unusable; these close deliberately, so keep it resumable. */
        SSL_set_quiet_shutdown(c->ssl, 1);
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl); /* frees both BIOs */
        c->ssl = NULL;
    }
    if (c->on_close)
        c->on_close(c);
}

void bnet_close(struct bnet_conn *c, int err)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->err == 0)
        c->err = err;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

void bnet_close_after_write(struct bnet_conn *c)
{
    if (c->write_queued == 0)
        bnet_close(c, 0);
    else
        c->close_drained = 1;
}

static void on_written(uv_write_t *req, int status)
{
    struct bnet_wreq *w = (struct bnet_wreq *)req;
    struct bnet_conn *c = w->c;
    c->write_queued -= w->len;
    free(w);
    if (status < 0 && status != UV_ECANCELED)
        bnet_close(c, BNET_EIO);
    else if (c->close_drained && c->write_queued == 0)
        bnet_close(c, 0);
}

static int raw_write(struct bnet_conn *c, const void *buf, size_t len)
{
    struct bnet_wreq *w = malloc(sizeof(*w) + len);
    if (!w) {
        bnet_close(c, BNET_EIO);
        return -ENOMEM;
    }
    w->c = c;
    w->len = len;
    if (buf)
        memcpy(w->data, buf, len);
    else if (c->wbio && BIO_read(c->wbio, w->data, (int)len) != (int)len) {
        free(w);
        bnet_close(c, BNET_ETLS);
        return -EIO;
    }
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
    if (r < 0) {
        free(w);
        bnet_close(c, BNET_EIO);
        return r;
    }
    c->write_queued += len;
    c->bytes_out += len;
    return 0;
}

/* Send whatever OpenSSL has produced. */
static int flush_tls(struct bnet_conn *c)
{
    size_t pending = BIO_ctrl_pending(c->wbio);
    if (pending == 0 || c->closing)
        return 0;
    return raw_write(c, NULL, pending);
}

int bnet_write(struct bnet_conn *c, const void *buf, size_t len)
{
    if (c->closing)
        return -EPIPE;
    if (!c->ssl)
        return raw_write(c, buf, len);
    const char *p = buf;
    while (len > 0) {
        int chunk = len > (1u << 30) ? (1 << 30) : (int)len;
        int n = SSL_write(c->ssl, p, chunk);
        if (n <= 0) {
            bnet_close(c, BNET_ETLS);
            return -EIO;
        }
        p += n;
        len -= (size_t)n;
    }
    return flush_tls(c);
}

static void deliver_tls(struct bnet_conn *c)
{
    for (;;) {
        if (!c->handshake_done) {
            int r = SSL_do_handshake(c->ssl);
            if (flush_tls(c) < 0)
                return;
            if (r != 1) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_READ)
                    return;
                ERR_clear_error();
                bnet_close(c, BNET_ETLS);
                return;
            }
            c->handshake_done = 1;
            c->resumed = SSL_session_reused(c->ssl) ? 1 : 0;
            if (!SSL_is_server(c->ssl) && c->on_ready) {
                c->on_ready(c);
                if (c->closing)
                    return;
            }
        }
        int n = SSL_read(c->ssl, bnet_plain, sizeof(bnet_plain));
        if (n > 0) {
            if (c->on_data)
                c->on_data(c, bnet_plain, (size_t)n);
            if (c->closing)
                return;
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (flush_tls(c) < 0) /* post-handshake messages, e.g. key updates */
            return;
        if (e == SSL_ERROR_WANT_READ)
            return;
        ERR_clear_error();
        bnet_close(c, e == SSL_ERROR_ZERO_RETURN ? BNET_EEOF : BNET_ETLS);
        return;
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct bnet_conn *c = s->data;
    if (nread == 0 || c->closing)
        return;
    if (nread < 0) {
        bnet_close(c, nread == UV_EOF ? BNET_EEOF : BNET_EIO);
        return;
    }
    c->bytes_in += (uint64_t)nread;
    if (!c->ssl) {
        if (c->on_data)
            c->on_data(c, buf->base, (size_t)nread);
        return;
    }
    if (BIO_write(c->rbio, buf->base, (int)nread) != (int)nread) {
        bnet_close(c, BNET_ETLS);
        return;
    }
    deliver_tls(c);
}

void bnet_pause(struct bnet_conn *c)
{
    if (c->reading && !c->closing) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

void bnet_resume(struct bnet_conn *c)
{
    if (!c->reading && !c->closing) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = 1;
    }
}

static int setup_ssl(struct bnet_conn *c, SSL_CTX *ctx, int server)
{
    c->ssl = SSL_new(ctx);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (!c->ssl || !c->rbio || !c->wbio) {
        SSL_free(c->ssl);
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        c->ssl = NULL;
        return -ENOMEM;
    }
    BIO_set_mem_eof_return(c->rbio, -1);
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    if (server)
        SSL_set_accept_state(c->ssl);
    else
        SSL_set_connect_state(c->ssl);
    return 0;
}

static void conn_reset(struct bnet_conn *c)
{
    c->ssl = NULL;
    c->rbio = c->wbio = NULL;
    c->err = 0;
    c->handshake_done = c->closing = c->reading = c->resumed = c->close_drained = 0;
    c->write_queued = 0;
    c->bytes_in = c->bytes_out = 0;
}

int bnet_accept(uv_stream_t *server, struct bnet_conn *c, SSL_CTX *ctx)
{
    conn_reset(c);
    int r = uv_tcp_init(server->loop, &c->tcp);
    if (r < 0)
        return r;
    c->tcp.data = c;
    r = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (r == 0 && ctx)
        r = setup_ssl(c, ctx, 1);
    if (r < 0) {
        bnet_close(c, BNET_EIO); /* reported through on_close */
        return 0;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    bnet_resume(c);
    return 0;
}

static void on_connected(uv_connect_t *req, int status)
{
    struct bnet_conn *c = req->data;
    if (c->closing)
        return;
    if (status < 0) {
        bnet_close(c, BNET_ECONNECT);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    bnet_resume(c);
    if (c->ssl) {
        deliver_tls(c); /* sends ClientHello */
        return;
    }
    c->handshake_done = 1;
    if (c->on_ready)
        c->on_ready(c);
}

int bnet_connect(uv_loop_t *loop, struct bnet_conn *c, const struct sockaddr *addr, SSL_CTX *ctx,
                 SSL_SESSION *sess, const char *sni)
{
    conn_reset(c);
    int r = uv_tcp_init(loop, &c->tcp);
    if (r < 0)
        return r;
    c->tcp.data = c;
    c->creq.data = c;
    if (ctx) {
        r = setup_ssl(c, ctx, 0);
        if (r == 0 && sess)
            SSL_set_session(c->ssl, sess);
        if (r == 0 && sni)
            SSL_set_tlsext_host_name(c->ssl, sni);
    }
    if (r == 0)
        r = uv_tcp_connect(&c->creq, &c->tcp, addr, on_connected);
    if (r < 0)
        bnet_close(c, BNET_ECONNECT); /* reported through on_close */
    return 0;
}

SSL_CTX *bnet_server_ctx(const char *cert, const char *key, char *err, size_t n)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, n, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(err, n, "%s: cannot load the certificate (PEM expected)", cert);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, n, "%s: cannot load the private key or it does not match %s", key, cert);
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"exsim", 5);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return ctx;
}

SSL_CTX *bnet_client_ctx(const char *cafile, char *err, size_t n)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(err, n, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (cafile) {
        if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) {
            snprintf(err, n, "%s: cannot load the CA certificate", cafile);
            SSL_CTX_free(ctx);
            return NULL;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    /* Client-side cache: sessions are kept by the caller (SSL_get1_session). */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    return ctx;
}

int bnet_parse_addr(const char *s, struct sockaddr_storage *ss)
{
    char host[128];
    const char *port;
    memset(ss, 0, sizeof(*ss));
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof(host))
            return -1;
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = '\0';
        port = end + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof(host))
            return -1;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
        if (host[0] == '\0')
            strcpy(host, "127.0.0.1");
        if (strcmp(host, "localhost") == 0)
            strcpy(host, "127.0.0.1");
        port = colon + 1;
    }
    char *end;
    long p = strtol(port, &end, 10);
    if (*port == '\0' || *end != '\0' || p < 0 || p > 65535)
        return -1;
    if (strchr(host, ':')) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
        if (uv_ip6_addr(host, (int)p, a6) != 0)
            return -1;
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
        if (uv_ip4_addr(host, (int)p, a4) != 0)
            return -1;
    }
    return 0;
}

int bnet_listen(uv_loop_t *loop, uv_tcp_t *srv, const struct sockaddr *addr, int reuseport,
                uv_connection_cb cb, char *err, size_t n)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, n, "socket: %s", strerror(errno));
        return -errno;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (addr->sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    socklen_t len =
        addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (bind(fd, addr, len) < 0) {
        int e = errno;
        snprintf(err, n, "bind: %s", strerror(e));
        close(fd);
        return -e;
    }
    int r = uv_tcp_init(loop, srv);
    if (r == 0)
        r = uv_tcp_open(srv, fd);
    if (r == 0)
        r = uv_listen((uv_stream_t *)srv, 4096, cb);
    if (r < 0) {
        snprintf(err, n, "listen: %s", uv_strerror(r));
        return r;
    }
    return 0;
}
