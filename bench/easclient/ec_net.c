/*
 * ec_net: easclient's HTTP/1.1 client, over plain TCP or TLS.
 *
 * Blocking sockets and OpenSSL's blocking SSL_read/SSL_write: one request at
 * a time is all a scripted phone needs, and it keeps the tool obvious. It
 * deliberately shares no code with the proxy's HTTP or TLS, so a bug there
 * cannot hide itself from the tests that use this client.
 *
 * A kept-alive connection is what a phone uses, and what tells a test
 * whether the server (or the proxy in front of it) keeps it: before reusing
 * a connection we look whether the server closed it meanwhile (counted in
 * closed_idle), and a request that a reused connection loses without a byte
 * of answer is sent again once on a new connection (counted in lost), the
 * way phones and browsers recover from a server's silent close.
 */
#include "easclient.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#define EC_MAX_HEAD 65536
#define EC_MAX_BODY (16u << 20)

int ec_url_parse(const char *url, struct ec_target *t)
{
    const char *p = url;
    if (strncmp(p, "http://", 7) == 0) {
        t->tls = false;
        p += 7;
    } else if (strncmp(p, "https://", 8) == 0) {
        t->tls = true;
        p += 8;
    } else {
        fprintf(stderr, "easclient: the URL must start with http:// or https://: %s\n", url);
        return -1;
    }
    const char *colon, *end;
    if (*p == '[') {
        end = strchr(p, ']');
        if (!end)
            goto bad;
        snprintf(t->host, sizeof(t->host), "%.*s", (int)(end - p - 1), p + 1);
        colon = end + 1;
    } else {
        size_t hl = strcspn(p, ":/");
        snprintf(t->host, sizeof(t->host), "%.*s", (int)hl, p);
        colon = p + hl;
    }
    const char *path;
    if (*colon == ':') {
        size_t pl = strcspn(colon + 1, "/");
        if (pl == 0 || pl >= sizeof(t->port))
            goto bad;
        snprintf(t->port, sizeof(t->port), "%.*s", (int)pl, colon + 1);
        path = colon + 1 + pl;
    } else {
        snprintf(t->port, sizeof(t->port), "%s", t->tls ? "443" : "80");
        path = colon;
    }
    if (*path && *path != '/')
        goto bad;
    /* The prefix is the path without its trailing slashes: "/SOGo/" -> "/SOGo". */
    size_t pl = strlen(path);
    while (pl && path[pl - 1] == '/')
        pl--;
    if (pl >= sizeof(t->prefix))
        goto bad;
    snprintf(t->prefix, sizeof(t->prefix), "%.*s", (int)pl, path);
    if (!t->host[0])
        goto bad;
    return 0;
bad:
    fprintf(stderr, "easclient: cannot read the URL %s\n", url);
    return -1;
}

const char *ec_resp_header(const struct ec_resp *r, const char *name, char *out, size_t n)
{
    size_t nl = strlen(name);
    const char *p = r->head ? strstr(r->head, "\r\n") : NULL;
    while (p && p[2] != '\r' && p[2]) {
        const char *line = p + 2;
        const char *eol = strstr(line, "\r\n");
        if (!eol)
            break;
        if ((size_t)(eol - line) > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0) {
            const char *v = line + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            size_t k = (size_t)(ve - v);
            if (k >= n)
                k = n - 1;
            memcpy(out, v, k);
            out[k] = '\0';
            return out;
        }
        p = eol;
    }
    return NULL;
}

void ec_resp_free(struct ec_resp *r)
{
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

static void report(struct ec_net *n, const char *what)
{
    if (n->report) {
        fprintf(n->report, "%s: %s\n", n->step ? n->step : "-", what);
        fflush(n->report);
    }
}

int ec_net_init(struct ec_net *n, const struct ec_target *t, bool keepalive, FILE *rep)
{
    memset(n, 0, sizeof(*n));
    n->t = t;
    n->fd = -1;
    n->keepalive = keepalive;
    n->report = rep;
    if (!t->tls)
        return 0;
    n->ctx = SSL_CTX_new(TLS_client_method());
    if (!n->ctx)
        return -1;
    SSL_CTX_set_min_proto_version(n->ctx, TLS1_2_VERSION);
    if (t->cafile) {
        if (SSL_CTX_load_verify_locations(n->ctx, t->cafile, NULL) != 1) {
            fprintf(stderr, "easclient: cannot load the CA file %s\n", t->cafile);
            SSL_CTX_free(n->ctx);
            n->ctx = NULL;
            return -1;
        }
        SSL_CTX_set_verify(n->ctx, SSL_VERIFY_PEER, NULL);
    }
    return 0;
}

static void conn_close(struct ec_net *n)
{
    if (n->ssl) {
        SSL_free(n->ssl);
        n->ssl = NULL;
    }
    if (n->fd >= 0)
        close(n->fd);
    n->fd = -1;
    n->on_conn = 0;
}

void ec_net_free(struct ec_net *n)
{
    conn_close(n);
    if (n->ctx)
        SSL_CTX_free(n->ctx);
    n->ctx = NULL;
}

static bool is_ip_literal(const char *h)
{
    unsigned char b[16];
    return inet_pton(AF_INET, h, b) == 1 || inet_pton(AF_INET6, h, b) == 1;
}

static int conn_open(struct ec_net *n)
{
    const struct ec_target *t = n->t;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    int rc = getaddrinfo(t->host, t->port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "easclient: %s:%s: %s\n", t->host, t->port, gai_strerror(rc));
        return -1;
    }
    /* Every address the name has, in order ("localhost" may be ::1 first). */
    int fd = -1, err = 0;
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, SOCK_STREAM, 0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        struct timeval tv = {.tv_sec = t->timeout_s};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        /* Head and body go in two writes: without this, Nagle holds the
         * body until the server's delayed ACK (40 ms a request). */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
            err = errno;
            close(fd);
            fd = -1;
        }
    }
    if (fd < 0) {
        fprintf(stderr, "easclient: connect %s:%s: %s\n", t->host, t->port, strerror(err));
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    n->fd = fd;
    n->on_conn = 0;
    n->connects++;
    if (!t->tls)
        return 0;
    n->ssl = SSL_new(n->ctx);
    if (!n->ssl)
        goto tls_fail;
    SSL_set_fd(n->ssl, fd);
    const char *name = t->sni ? t->sni : (is_ip_literal(t->host) ? NULL : t->host);
    if (name)
        SSL_set_tlsext_host_name(n->ssl, name);
    if (t->cafile) {
        /* Check the name too, not only the chain: the name asked for, or the
         * address when the URL gave one. */
        X509_VERIFY_PARAM *vp = SSL_get0_param(n->ssl);
        if (name)
            X509_VERIFY_PARAM_set1_host(vp, name, 0);
        else
            X509_VERIFY_PARAM_set1_ip_asc(vp, t->host);
    }
    if (SSL_connect(n->ssl) != 1)
        goto tls_fail;
    return 0;
tls_fail:;
    unsigned long e = ERR_get_error();
    const char *why = e ? ERR_reason_error_string(e) : NULL;
    long vr = n->ssl ? SSL_get_verify_result(n->ssl) : X509_V_OK;
    fprintf(stderr, "easclient: TLS handshake with %s:%s failed: %s%s%s\n", t->host, t->port,
            why ? why : "no reason given", vr != X509_V_OK ? ": " : "",
            vr != X509_V_OK ? X509_verify_cert_error_string(vr) : "");
    ERR_clear_error();
    conn_close(n);
    return -1;
}

/* Did the server close an idle kept-alive connection (or send something
 * nobody asked for)? Looked at without blocking, before reusing it. */
static bool conn_gone(struct ec_net *n)
{
    struct pollfd p = {.fd = n->fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0)
        return false;
    if (!n->ssl) {
        char c;
        ssize_t k = recv(n->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        return !(k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
    }
    /* TLS: the bytes may be a TLS 1.3 session ticket, which SSL_peek takes
     * in and reports as "want read"; anything else ends the connection. */
    int fl = fcntl(n->fd, F_GETFL);
    fcntl(n->fd, F_SETFL, fl | O_NONBLOCK);
    char c;
    int k = SSL_peek(n->ssl, &c, 1);
    int err = k > 0 ? SSL_ERROR_NONE : SSL_get_error(n->ssl, k);
    fcntl(n->fd, F_SETFL, fl);
    ERR_clear_error();
    return !(k <= 0 && err == SSL_ERROR_WANT_READ);
}

static int conn_write(struct ec_net *n, const void *d, size_t len)
{
    const char *p = d;
    while (len) {
        ssize_t k;
        if (n->ssl) {
            int w = SSL_write(n->ssl, p, len > 1u << 30 ? 1 << 30 : (int)len);
            k = w > 0 ? w : -1;
        } else {
            k = send(n->fd, p, len, MSG_NOSIGNAL);
            if (k < 0 && errno == EINTR)
                continue;
        }
        if (k <= 0)
            return -1;
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

/* A read buffer over the connection. */
struct rd {
    struct ec_net *n;
    char buf[16384];
    size_t pos, len;
    size_t total; /* bytes of answer read so far */
    bool eof, err;
};

static bool rd_fill(struct rd *r)
{
    if (r->eof || r->err)
        return false;
    ssize_t k;
    for (;;) {
        if (r->n->ssl) {
            int g = SSL_read(r->n->ssl, r->buf, sizeof(r->buf));
            if (g > 0) {
                k = g;
            } else {
                int e = SSL_get_error(r->n->ssl, g);
                k = (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0)) ? 0 : -1;
                ERR_clear_error();
            }
        } else {
            k = recv(r->n->fd, r->buf, sizeof(r->buf), 0);
            if (k < 0 && errno == EINTR)
                continue;
        }
        break;
    }
    if (k == 0)
        r->eof = true;
    if (k < 0)
        r->err = true;
    if (k <= 0)
        return false;
    r->pos = 0;
    r->len = (size_t)k;
    r->total += (size_t)k;
    return true;
}

/* One line ending in CRLF (the CRLF dropped) into out[n]; false at EOF. */
static bool rd_line(struct rd *r, char *out, size_t n)
{
    size_t k = 0;
    for (;;) {
        if (r->pos == r->len && !rd_fill(r))
            return false;
        char c = r->buf[r->pos++];
        if (c == '\n') {
            if (k && out[k - 1] == '\r')
                k--;
            out[k] = '\0';
            return true;
        }
        if (k + 1 >= n)
            return false;
        out[k++] = c;
    }
}

static bool rd_bytes(struct rd *r, uint8_t *out, size_t n)
{
    while (n) {
        if (r->pos == r->len && !rd_fill(r))
            return false;
        size_t k = r->len - r->pos < n ? r->len - r->pos : n;
        memcpy(out, r->buf + r->pos, k);
        r->pos += k;
        out += k;
        n -= k;
    }
    return true;
}

static int body_append(struct ec_resp *resp, size_t *cap, const void *d, size_t k)
{
    if (resp->len + k + 1 > *cap) {
        size_t nc = *cap ? *cap : 4096;
        while (resp->len + k + 1 > nc)
            nc *= 2;
        if (nc > EC_MAX_BODY)
            return -1;
        uint8_t *nb = realloc(resp->body, nc);
        if (!nb)
            return -1;
        resp->body = nb;
        *cap = nc;
    }
    memcpy(resp->body + resp->len, d, k);
    resp->len += k;
    resp->body[resp->len] = 0;
    return 0;
}

/* Head: status line and fields, 1xx answers skipped. Returns the head
 * (malloc'd) or NULL. */
static char *read_head(struct rd *r, int *status)
{
    for (;;) {
        size_t cap = 1024, len = 0;
        char *h = malloc(cap);
        char line[8192];
        bool first = true;
        while (h) {
            if (!rd_line(r, line, sizeof(line))) {
                free(h);
                return NULL;
            }
            size_t ll = strlen(line);
            if (len + ll + 3 > cap) {
                while (len + ll + 3 > cap)
                    cap *= 2;
                char *nh = cap <= EC_MAX_HEAD ? realloc(h, cap) : NULL;
                if (!nh) {
                    free(h);
                    return NULL;
                }
                h = nh;
            }
            memcpy(h + len, line, ll);
            len += ll;
            memcpy(h + len, "\r\n", 3);
            len += 2;
            if (first && sscanf(line, "HTTP/1.%*d %d", status) != 1) {
                free(h);
                return NULL;
            }
            first = false;
            if (ll == 0)
                break;
        }
        if (!h)
            return NULL;
        if (*status >= 100 && *status < 200)
            free(h);
        else
            return h;
    }
}

static int read_answer(struct rd *r, struct ec_resp *resp, bool head_only, bool *must_close)
{
    resp->head = read_head(r, &resp->status);
    if (!resp->head)
        return -1;
    char v[256];
    *must_close = strncmp(resp->head, "HTTP/1.0", 8) == 0;
    if (ec_resp_header(resp, "Connection", v, sizeof(v)))
        *must_close =
            strcasestr(v, "close") != NULL || (*must_close && strcasestr(v, "keep-alive") == NULL);
    size_t cap = 0;
    if (head_only || resp->status == 204 || resp->status == 304)
        return body_append(resp, &cap, "", 0);
    if (ec_resp_header(resp, "Transfer-Encoding", v, sizeof(v)) && strcasestr(v, "chunked")) {
        char line[256];
        for (;;) {
            if (!rd_line(r, line, sizeof(line)))
                return -1;
            char *end;
            unsigned long k = strtoul(line, &end, 16);
            if (end == line || k > EC_MAX_BODY)
                return -1;
            if (k == 0)
                break;
            uint8_t tmp[8192];
            while (k) {
                size_t m = k < sizeof(tmp) ? k : sizeof(tmp);
                if (!rd_bytes(r, tmp, m) || body_append(resp, &cap, tmp, m) < 0)
                    return -1;
                k -= m;
            }
            if (!rd_line(r, line, sizeof(line)))
                return -1;
        }
        while (rd_line(r, line, sizeof(line)) && line[0]) /* trailer fields: dropped */
            ;
        return body_append(resp, &cap, "", 0);
    }
    if (ec_resp_header(resp, "Content-Length", v, sizeof(v))) {
        char *end;
        unsigned long long k = strtoull(v, &end, 10);
        if (end == v || *end || k > EC_MAX_BODY)
            return -1;
        if (body_append(resp, &cap, "", 0) < 0)
            return -1;
        uint8_t tmp[8192];
        while (k) {
            size_t m = k < sizeof(tmp) ? (size_t)k : sizeof(tmp);
            if (!rd_bytes(r, tmp, m) || body_append(resp, &cap, tmp, m) < 0)
                return -1;
            k -= m;
        }
        return 0;
    }
    /* Neither: the body runs to the end of the connection. */
    *must_close = true;
    if (body_append(resp, &cap, "", 0) < 0)
        return -1;
    for (;;) {
        if (r->pos == r->len && !rd_fill(r))
            return r->err ? -1 : 0;
        if (body_append(resp, &cap, r->buf + r->pos, r->len - r->pos) < 0)
            return -1;
        r->pos = r->len;
    }
}

static int exchange(struct ec_net *n, const char *head, size_t hlen, const void *body, size_t blen,
                    struct ec_resp *resp, bool *lost)
{
    *lost = false;
    memset(resp, 0, sizeof(*resp));
    bool reused = n->on_conn > 0;
    struct rd *r = calloc(1, sizeof(*r));
    if (!r)
        return -1;
    r->n = n;
    bool must_close = false;
    int rc = -1;
    if (conn_write(n, head, hlen) < 0 || (blen && conn_write(n, body, blen) < 0)) {
        /* A reused connection the server closed may refuse the write. */
        *lost = reused;
        if (!reused)
            fprintf(stderr, "easclient: send: %s\n", strerror(errno));
        goto out;
    }
    bool head_only = strncmp(head, "HEAD ", 5) == 0;
    rc = read_answer(r, resp, head_only, &must_close);
    if (rc < 0) {
        *lost = reused && r->total == 0;
        if (!*lost)
            fprintf(stderr, "easclient: %s after %zu bytes of answer\n",
                    r->err ? "read error" : "connection closed", r->total);
        ec_resp_free(resp);
        goto out;
    }
    n->on_conn++;
    if (!n->keepalive || must_close) {
        if (n->keepalive)
            report(n, "the server said it closes the connection");
        conn_close(n);
    }
out:
    if (rc < 0)
        conn_close(n);
    free(r);
    return rc;
}

int ec_net_roundtrip(struct ec_net *n, const char *head, size_t hlen, const void *body, size_t blen,
                     struct ec_resp *r)
{
    if (n->fd >= 0 && conn_gone(n)) {
        n->closed_idle++;
        report(n, "the server had closed the kept-alive connection");
        conn_close(n);
    }
    if (n->fd < 0 && conn_open(n) < 0)
        return -1;
    bool lost;
    if (exchange(n, head, hlen, body, blen, r, &lost) == 0)
        return 0;
    if (!lost)
        return -1;
    n->lost++;
    report(n, "request lost on a kept-alive connection (closed without an answer); sent again");
    if (conn_open(n) < 0)
        return -1;
    return exchange(n, head, hlen, body, blen, r, &lost);
}
