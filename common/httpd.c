/*
 * httpd: accept, (TLS), parse with llhttp, call the handler when a request
 * is complete, queue the answer, go on with the next request or close.
 *
 * Every connection is on a list so that httpd_stop can close them all. The
 * bytes of one request (URL, the few headers we keep, the body) live in
 * per-connection buffers that are reset per request and freed with the
 * connection.
 *
 * A held request (httpd_hold) pauses the parser after its message; bytes
 * that came behind it (a pipelined request, the rest of a TLS record) wait
 * in the connection's stash, and the socket is not read meanwhile, so the
 * stash stays within one read. The answer resumes the parser on the stash.
 * A connection closed while a request is held is freed only once the hold
 * is answered: the thread doing the work never sees a dangling pointer.
 */
#include "common/httpd.h"

#include "common/http.h"
#include "common/tls.h"

#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HTTPD_HEAD_MAX 16384
#define HTTPD_URL_MAX 4096
#define HTTPD_HDR_VAL_MAX 2048
#define HTTPD_HEAD_TIMEOUT_MS 5000
#define HTTPD_IDLE_MS 30000
#define HTTPD_MAX_CONNS 1024
/* After the last answer (say a 413 while the client is still sending), the
 * rest of the request is read and dropped this long before the close, so
 * the client reads the answer instead of a reset. */
#define HTTPD_LINGER_MS 2000

struct hconn;

struct httpd_hold {
    struct hconn *c;
};

struct httpd {
    uv_tcp_t tcp;
    uv_loop_t *loop;
    /* exactly one of the two handlers is set */
    httpd_handler fn;
    httpd_req_fn rfn;
    void *arg;
    struct httpd_opts o;
    struct hconn *conns;
    int n_conns;
    int stopping;
};

enum hdr_kind { HDR_OTHER, HDR_AUTH, HDR_CTYPE, HDR_COOKIE, HDR_CSRF, HDR_LANG };
/* The Cookie header: a browser sends every cookie of the host in it. */
#define HTTPD_COOKIE_MAX 4096

struct hconn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    struct httpd *h;
    struct hconn *prev, *next;
    struct tls_conn *tls;
    llhttp_t parser;
    /* the request being read */
    char url[HTTPD_URL_MAX];
    size_t url_len, head_len;
    char hname[32];
    size_t hname_len;
    enum hdr_kind hkind;
    char auth[HTTPD_HDR_VAL_MAX], ctype[256], cookie[HTTPD_COOKIE_MAX], csrf[128], lang[256];
    size_t auth_len, ctype_len, cookie_len, csrf_len, lang_len;
    int has_auth, has_ctype, has_cookie, has_csrf, has_lang;
    char *body;
    size_t body_len, body_cap;
    char peer[HTTPD_PEER_MAX];
    struct httpd_hold hold;
    int held;       /* a request is held: its answer comes from httpd_answer */
    int held_close; /* close after the held request's answer */
    char *stash;    /* plaintext behind the held request */
    size_t stash_len, stash_cap;
    int pending;     /* writes queued */
    int close_after; /* close once the queued writes are done */
    int closing, closed_handles;
    int lingering; /* answered for the last time, write side shut */
    int answered;  /* requests answered: past the first, a request's first byte starts its timer */
    uv_shutdown_t shut;
    char buf[16384];
};

struct hwrite {
    uv_write_t w;
    struct hconn *c;
    char data[];
};

/* Free the connection once both handles are closed and no request is held. */
static void hc_free_maybe(struct hconn *c)
{
    if (c->closed_handles < 2 || c->held)
        return;
    tls_conn_free(c->tls);
    free(c->body);
    free(c->stash);
    free(c);
}

static void hc_freed(uv_handle_t *hd)
{
    struct hconn *c = hd->data;
    c->closed_handles++;
    hc_free_maybe(c);
}

static void hc_close(struct hconn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->h->n_conns--;
    uv_close((uv_handle_t *)&c->tcp, hc_freed);
    uv_close((uv_handle_t *)&c->timer, hc_freed);
}

static void on_timeout(uv_timer_t *t)
{
    hc_close(t->data);
}

static void on_shut(uv_shutdown_t *sd, int status)
{
    struct hconn *c = sd->data;
    if (status < 0)
        hc_close(c);
}

/* The last answer is queued: shut the write side after it, read and drop
 * what the client still sends, close at its EOF or after the linger time. */
static void hc_linger(struct hconn *c)
{
    if (c->closing || c->lingering)
        return;
    c->lingering = 1;
    if (c->tls)
        tls_conn_shutdown(c->tls);
    c->shut.data = c;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shut) < 0) {
        hc_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timeout, HTTPD_LINGER_MS, 0);
}

static void on_written(uv_write_t *w, int status)
{
    struct hwrite *hw = (struct hwrite *)w;
    struct hconn *c = hw->c;
    free(hw);
    c->pending--;
    if (c->closing)
        return;
    if (status < 0)
        hc_close(c);
}

/* Bytes to the socket, copied (the caller's buffer may go away). */
static void hc_send(struct hconn *c, const char *d, size_t n)
{
    if (c->closing)
        return;
    struct hwrite *hw = malloc(sizeof(*hw) + n);
    if (!hw) {
        hc_close(c);
        return;
    }
    hw->c = c;
    memcpy(hw->data, d, n);
    uv_buf_t b = uv_buf_init(hw->data, (unsigned)n);
    c->pending++;
    if (uv_write(&hw->w, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0) {
        c->pending--;
        free(hw);
        hc_close(c);
    }
}

static void tls_emit(void *owner, const char *d, size_t n)
{
    hc_send(owner, d, n);
}

/* Queue one answer; close after it when close is set (or on keep-alive off). */
static void respond(struct hconn *c, int status, const char *ctype, const char *body, size_t len,
                    int close, int retry_after, const char *headers)
{
    if (c->closing || c->close_after)
        return;
    if (!c->h->o.keepalive)
        close = 1;
    char head[360], ra[48] = "";
    if (retry_after > 0)
        snprintf(ra, sizeof(ra), "Retry-After: %d\r\n", retry_after);
    int k = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n%s%s",
                     status, http_reason(status), ctype ? ctype : "text/plain", len, ra,
                     close ? "Connection: close\r\n" : "");
    size_t hl = headers ? strlen(headers) : 0;
    char *out = malloc((size_t)k + hl + 2 + len);
    if (!out) {
        hc_close(c);
        return;
    }
    memcpy(out, head, (size_t)k);
    if (hl)
        memcpy(out + k, headers, hl);
    memcpy(out + k + hl, "\r\n", 2);
    size_t total = (size_t)k + hl + 2 + len;
    if (len)
        memcpy(out + k + hl + 2, body, len);
    if (close)
        c->close_after = 1;
    if (c->tls) {
        if (tls_conn_write(c->tls, out, total) < 0)
            hc_close(c);
    } else {
        hc_send(c, out, total);
    }
    free(out);
    if (close)
        hc_linger(c);
}

static void respond_error(struct hconn *c, int status, const char *msg)
{
    if (c->h->rfn) {
        char b[256];
        int n = snprintf(b, sizeof(b), "{\"error\":\"%s\"}\n", msg);
        respond(c, status, "application/json", b, (size_t)n, 1, 0, NULL);
    } else {
        char b[256];
        int n = snprintf(b, sizeof(b), "%s\n", msg);
        respond(c, status, "text/plain", b, (size_t)n, 1, 0, NULL);
    }
}

/* ---- llhttp callbacks ----------------------------------------------------- */

static int head_grow(struct hconn *c, size_t n)
{
    c->head_len += n;
    if (c->head_len > HTTPD_HEAD_MAX) {
        respond_error(c, 431, "request head too large");
        return -1;
    }
    return 0;
}

static int p_begin(llhttp_t *p)
{
    struct hconn *c = p->data;
    /* The idle wait is over: the whole request now has head_ms. (The first
     * request's timer runs from the accept.) */
    if (c->answered)
        uv_timer_start(&c->timer, on_timeout, (uint64_t)c->h->o.head_ms, 0);
    c->url_len = c->head_len = c->hname_len = 0;
    c->auth_len = c->ctype_len = c->cookie_len = c->csrf_len = c->lang_len = 0;
    c->has_auth = c->has_ctype = c->has_cookie = c->has_csrf = c->has_lang = 0;
    c->body_len = 0;
    c->hkind = HDR_OTHER;
    return 0;
}

static int p_url(llhttp_t *p, const char *d, size_t n)
{
    struct hconn *c = p->data;
    if (head_grow(c, n) < 0)
        return -1;
    if (c->url_len + n >= sizeof(c->url)) {
        respond_error(c, 431, "request URL too long");
        return -1;
    }
    memcpy(c->url + c->url_len, d, n);
    c->url_len += n;
    return 0;
}

static int p_hfield(llhttp_t *p, const char *d, size_t n)
{
    struct hconn *c = p->data;
    if (head_grow(c, n) < 0)
        return -1;
    size_t k = n;
    if (c->hname_len + k >= sizeof(c->hname))
        k = sizeof(c->hname) - 1 - c->hname_len; /* a long name is none we keep */
    memcpy(c->hname + c->hname_len, d, k);
    c->hname_len += k;
    return 0;
}

static int p_hfield_done(llhttp_t *p)
{
    struct hconn *c = p->data;
    c->hname[c->hname_len] = '\0';
    c->hname_len = 0;
    if (strcasecmp(c->hname, "authorization") == 0) {
        c->hkind = HDR_AUTH;
        c->auth_len = 0;
        c->has_auth = 1;
    } else if (strcasecmp(c->hname, "content-type") == 0) {
        c->hkind = HDR_CTYPE;
        c->ctype_len = 0;
        c->has_ctype = 1;
    } else if (strcasecmp(c->hname, "cookie") == 0) {
        /* A second Cookie header carries on the first (RFC 6265 5.4). */
        if (c->has_cookie && c->cookie_len + 2 < sizeof(c->cookie)) {
            memcpy(c->cookie + c->cookie_len, "; ", 2);
            c->cookie_len += 2;
        }
        c->hkind = HDR_COOKIE;
        c->has_cookie = 1;
    } else if (strcasecmp(c->hname, "x-csrf-token") == 0) {
        c->hkind = HDR_CSRF;
        c->csrf_len = 0;
        c->has_csrf = 1;
    } else if (strcasecmp(c->hname, "accept-language") == 0) {
        c->hkind = HDR_LANG;
        c->lang_len = 0;
        c->has_lang = 1;
    } else {
        c->hkind = HDR_OTHER;
    }
    return 0;
}

static int p_hvalue(llhttp_t *p, const char *d, size_t n)
{
    struct hconn *c = p->data;
    if (head_grow(c, n) < 0)
        return -1;
    char *dst = NULL;
    size_t *len = NULL, cap = 0;
    if (c->hkind == HDR_AUTH) {
        dst = c->auth, len = &c->auth_len, cap = sizeof(c->auth);
    } else if (c->hkind == HDR_CTYPE) {
        dst = c->ctype, len = &c->ctype_len, cap = sizeof(c->ctype);
    } else if (c->hkind == HDR_COOKIE) {
        dst = c->cookie, len = &c->cookie_len, cap = sizeof(c->cookie);
    } else if (c->hkind == HDR_CSRF) {
        dst = c->csrf, len = &c->csrf_len, cap = sizeof(c->csrf);
    } else if (c->hkind == HDR_LANG) {
        /* A preference, not a credential: a long one is cut, not refused. */
        size_t k = c->lang_len + n < sizeof(c->lang) ? n : sizeof(c->lang) - 1 - c->lang_len;
        memcpy(c->lang + c->lang_len, d, k);
        c->lang_len += k;
        return 0;
    } else {
        return 0;
    }
    if (*len + n >= cap) {
        respond_error(c, 431, "header value too long");
        return -1;
    }
    memcpy(dst + *len, d, n);
    *len += n;
    return 0;
}

static int p_headers_done(llhttp_t *p)
{
    struct hconn *c = p->data;
    c->auth[c->auth_len] = '\0';
    c->ctype[c->ctype_len] = '\0';
    c->cookie[c->cookie_len] = '\0';
    c->csrf[c->csrf_len] = '\0';
    c->lang[c->lang_len] = '\0';
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > c->h->o.max_body) {
        respond_error(c, 413, "request body too large");
        return HPE_PAUSED;
    }
    return 0;
}

static int p_body(llhttp_t *p, const char *d, size_t n)
{
    struct hconn *c = p->data;
    if (c->body_len + n > c->h->o.max_body) {
        respond_error(c, 413, "request body too large");
        return -1;
    }
    if (c->body_len + n + 1 > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap : 1024;
        while (cap < c->body_len + n + 1)
            cap *= 2;
        char *nb = realloc(c->body, cap);
        if (!nb) {
            respond_error(c, 500, "out of memory");
            return -1;
        }
        c->body = nb;
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, d, n);
    c->body_len += n;
    return 0;
}

static int p_complete(llhttp_t *p)
{
    struct hconn *c = p->data;
    c->url[c->url_len] = '\0';
    char *q = memchr(c->url, '?', c->url_len);
    if (q)
        *q++ = '\0';
    const char *method = llhttp_method_name(llhttp_get_method(p));
    int close = !llhttp_should_keep_alive(p);
    struct httpd_resp r = {0};
    if (c->h->rfn) {
        if (c->body)
            c->body[c->body_len] = '\0';
        struct httpd_req req = {
            .method = method,
            .path = c->url,
            .query = q ? q : "",
            .authorization = c->has_auth ? c->auth : NULL,
            .content_type = c->has_ctype ? c->ctype : NULL,
            .cookie = c->has_cookie ? c->cookie : NULL,
            .csrf = c->has_csrf ? c->csrf : NULL,
            .accept_language = c->has_lang ? c->lang : NULL,
            .body = c->body ? c->body : "",
            .body_len = c->body_len,
            .peer = c->peer,
            .conn = c,
        };
        c->h->rfn(c->h->arg, &req, &r);
    } else {
        c->h->fn(c->h->arg, method, c->url, &r);
    }
    if (c->held) {
        /* Answered later (httpd_answer): read nothing more until then. */
        free(r.body);
        free(r.headers);
        c->held_close = close;
        uv_timer_stop(&c->timer);
        uv_read_stop((uv_stream_t *)&c->tcp);
        return HPE_PAUSED;
    }
    if (r.status == 0) {
        free(r.body);
        free(r.headers);
        respond_error(c, 404, "not found");
        return HPE_PAUSED;
    }
    respond(c, r.status, r.content_type, r.body, r.len, close, r.retry_after, r.headers);
    free(r.body);
    free(r.headers);
    c->answered++;
    if (c->closing || c->close_after)
        return HPE_PAUSED;
    uv_timer_start(&c->timer, on_timeout, (uint64_t)c->h->o.idle_ms, 0);
    return 0;
}

static llhttp_settings_t settings;
static uv_once_t settings_once = UV_ONCE_INIT;

static void init_settings(void)
{
    llhttp_settings_init(&settings);
    settings.on_message_begin = p_begin;
    settings.on_url = p_url;
    settings.on_header_field = p_hfield;
    settings.on_header_field_complete = p_hfield_done;
    settings.on_header_value = p_hvalue;
    settings.on_headers_complete = p_headers_done;
    settings.on_body = p_body;
    settings.on_message_complete = p_complete;
}

/* Keep n bytes behind a held request until its answer. 0 or -1 (closed). */
static int stash_add(struct hconn *c, const char *d, size_t n)
{
    if (c->stash_len + n > c->stash_cap) {
        size_t cap = c->stash_cap ? c->stash_cap : 4096;
        while (cap < c->stash_len + n)
            cap *= 2;
        /* The socket is not read while a request is held, so this is at
         * most one read's worth of records; more means something is wrong. */
        char *ns = cap <= HTTPD_HEAD_MAX + sizeof(c->buf) + c->h->o.max_body
                       ? realloc(c->stash, cap)
                       : NULL;
        if (!ns) {
            hc_close(c);
            return -1;
        }
        c->stash = ns;
        c->stash_cap = cap;
    }
    if (n) /* d may be NULL then (UBSan: memcpy's arguments are never NULL) */
        memcpy(c->stash + c->stash_len, d, n);
    c->stash_len += n;
    return 0;
}

/* Plain bytes (from the socket or out of TLS) into the parser. 0 or -1 (stop). */
static int hc_parse(struct hconn *c, const char *d, size_t n)
{
    if (c->close_after || c->closing)
        return -1;
    if (c->held)
        return stash_add(c, d, n);
    llhttp_errno_t e = llhttp_execute(&c->parser, d, n);
    if (e == HPE_OK)
        return 0;
    if (e == HPE_PAUSED && c->held) {
        /* The held request ended here; what follows waits for its answer. */
        const char *at = llhttp_get_error_pos(&c->parser);
        size_t used = at && at >= d && at <= d + n ? (size_t)(at - d) : n;
        return stash_add(c, d + used, n - used);
    }
    /* Paused: we answered already and close after it. Anything else is
     * malformed HTTP (or a callback that answered with its own error). */
    if (e != HPE_PAUSED)
        respond_error(c, 400, "malformed HTTP request");
    return -1;
}

static void on_alloc(uv_handle_t *hd, size_t hint, uv_buf_t *b);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

struct httpd_hold *httpd_hold(const struct httpd_req *req)
{
    struct hconn *c = req->conn;
    if (!c || c->held)
        return NULL;
    c->held = 1;
    c->hold.c = c;
    return &c->hold;
}

void httpd_answer(struct httpd_hold *hd, struct httpd_resp *resp)
{
    struct hconn *c = hd->c;
    c->held = 0;
    if (c->closing) {
        free(resp->body);
        free(resp->headers);
        resp->body = resp->headers = NULL;
        hc_free_maybe(c);
        return;
    }
    if (resp->status == 0)
        respond_error(c, 404, "not found");
    else
        respond(c, resp->status, resp->content_type, resp->body, resp->len, c->held_close,
                resp->retry_after, resp->headers);
    c->answered++;
    free(resp->body);
    free(resp->headers);
    resp->body = resp->headers = NULL;
    if (c->closing)
        return;
    if (c->close_after) {
        /* Lingering (hc_linger): read again, so the client's close ends the
         * connection at once instead of after the linger time; it counts
         * against its client's connections until then. */
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
            hc_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timeout, (uint64_t)c->h->o.idle_ms, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
        hc_close(c);
        return;
    }
    /* Go on with what came behind the request (maybe the next one). */
    char *st = c->stash;
    size_t n = c->stash_len;
    c->stash = NULL;
    c->stash_len = c->stash_cap = 0;
    llhttp_resume(&c->parser);
    if (n)
        hc_parse(c, st, n);
    free(st);
}

static int tls_plain(void *owner, const char *d, size_t n)
{
    struct hconn *c = owner;
    hc_parse(c, d, n);
    return c->closing;
}

static int tls_ready(void *owner)
{
    (void)owner;
    return 0;
}

static const struct tls_cbs hc_tls_cbs = {tls_emit, tls_plain, tls_ready};

static void on_alloc(uv_handle_t *hd, size_t hint, uv_buf_t *b)
{
    (void)hint;
    struct hconn *c = hd->data;
    b->base = c->buf;
    b->len = sizeof(c->buf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct hconn *c = s->data;
    if (n < 0) {
        hc_close(c);
        return;
    }
    if (n == 0 || c->closing)
        return;
    if (c->close_after) /* answered for the last time: ignore the rest */
        return;
    if (c->tls) {
        int r = tls_conn_feed(c->tls, b->base, (size_t)n);
        if (r == 1)
            return;
        if (r < 0 || r == 2)
            hc_close(c);
        return;
    }
    hc_parse(c, b->base, (size_t)n);
}

/* Connections open from peer, this one included. A walk of the list: at
 * most max_connections, once per accept, cheaper than keeping a table. */
static int peer_count(const struct httpd *h, const char *peer)
{
    int n = 0;
    for (const struct hconn *x = h->conns; x; x = x->next)
        n += strcmp(x->peer, peer) == 0;
    return n;
}

static void on_conn(uv_stream_t *server, int status)
{
    struct httpd *h = server->data;
    if (status < 0 || h->stopping)
        return;
    struct hconn *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->h = h;
    uv_tcp_init(h->loop, &c->tcp);
    uv_timer_init(h->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->n_conns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0 || h->n_conns > h->o.max_connections) {
        hc_close(c);
        return;
    }
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0)
        uv_ip_name((struct sockaddr *)&ss, c->peer, sizeof(c->peer));
    if (h->o.max_per_client > 0 && peer_count(h, c->peer) > h->o.max_per_client) {
        hc_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (h->o.tls) {
        c->tls = tls_conn_new(h->o.tls, &hc_tls_cbs, c, NULL, NULL);
        if (!c->tls) {
            hc_close(c);
            return;
        }
    }
    llhttp_init(&c->parser, HTTP_REQUEST, &settings);
    c->parser.data = c;
    uv_timer_start(&c->timer, on_timeout, (uint64_t)h->o.head_ms, 0);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void listener_closed(uv_handle_t *hd)
{
    free(hd->data);
}

int httpd_serve(uv_loop_t *loop, const struct sockaddr *addr, const struct httpd_opts *o,
                httpd_req_fn fn, void *arg, struct httpd **out)
{
    uv_once(&settings_once, init_settings);
    struct httpd *h = calloc(1, sizeof(*h));
    if (!h)
        return UV_ENOMEM;
    h->loop = loop;
    h->rfn = fn;
    h->arg = arg;
    if (o)
        h->o = *o;
    if (h->o.idle_ms <= 0)
        h->o.idle_ms = HTTPD_IDLE_MS;
    if (h->o.max_connections <= 0)
        h->o.max_connections = HTTPD_MAX_CONNS;
    if (h->o.head_ms <= 0)
        h->o.head_ms = HTTPD_HEAD_TIMEOUT_MS;
    uv_tcp_init(loop, &h->tcp);
    h->tcp.data = h;
    int r = uv_tcp_bind(&h->tcp, addr, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&h->tcp, 511, on_conn);
    if (r < 0) {
        uv_close((uv_handle_t *)&h->tcp, listener_closed);
        return r;
    }
    *out = h;
    return 0;
}

int httpd_start(uv_loop_t *loop, const struct sockaddr *addr, httpd_handler fn, void *arg,
                struct httpd **out)
{
    struct httpd_opts o = {.tls = NULL, .max_body = 0, .keepalive = 0};
    int r = httpd_serve(loop, addr, &o, NULL, arg, out);
    if (r == 0)
        (*out)->fn = fn;
    return r;
}

void httpd_stop(struct httpd *h)
{
    if (!h || h->stopping)
        return;
    h->stopping = 1;
    while (h->conns)
        hc_close(h->conns);
    uv_close((uv_handle_t *)&h->tcp, listener_closed);
}

/* ---- routing and query strings ------------------------------------------ */

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int httpd_pct_decode(const char *s, size_t n, char *out, size_t outlen, int plus_space)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)s[i];
        if (ch == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hexval((unsigned char)s[i + 1]), lo = hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            ch = hi * 16 + lo;
            if (ch == 0)
                return -1; /* a NUL would cut the string short */
            i += 2;
        } else if (ch == '+' && plus_space) {
            ch = ' ';
        }
        if (k + 1 >= outlen)
            return -1;
        out[k++] = (char)ch;
    }
    if (outlen == 0)
        return -1;
    out[k] = '\0';
    return 0;
}

int httpd_query_get(const char *query, const char *key, char *out, size_t outlen)
{
    size_t kl = strlen(key);
    const char *p = query;
    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t nl = eq ? (size_t)(eq - p) : len;
        if (nl == kl && memcmp(p, key, kl) == 0) {
            const char *v = eq ? eq + 1 : p + len;
            size_t vl = (size_t)(p + len - v);
            return httpd_pct_decode(v, vl, out, outlen, 1) < 0 ? -1 : 1;
        }
        p = amp ? amp + 1 : NULL;
    }
    return 0;
}

/* Match one pattern; 1 yes, 0 no, -1 a bad segment. */
static int route_one(const char *pat, const char *path,
                     char params[HTTPD_PARAMS_MAX][HTTPD_PARAM_LEN])
{
    int np = 0;
    while (*pat && *path) {
        if (*pat != '/' || *path != '/')
            return 0;
        pat++, path++;
        const char *pe = strchr(pat, '/'), *se = strchr(path, '/');
        size_t pl = pe ? (size_t)(pe - pat) : strlen(pat);
        size_t sl = se ? (size_t)(se - path) : strlen(path);
        if (pat[0] == ':') {
            if (sl == 0 || np >= HTTPD_PARAMS_MAX)
                return 0;
            if (httpd_pct_decode(path, sl, params[np], HTTPD_PARAM_LEN, 0) < 0)
                return -1;
            np++;
        } else if (pl != sl || memcmp(pat, path, pl) != 0) {
            return 0;
        }
        pat += pl, path += sl;
    }
    return *pat == '\0' && *path == '\0';
}

int httpd_route_match(const struct httpd_route *table, const char *method, const char *path,
                      char params[HTTPD_PARAMS_MAX][HTTPD_PARAM_LEN])
{
    int wrong_method = 0;
    for (int i = 0; table[i].pattern; i++) {
        int m = route_one(table[i].pattern, path, params);
        if (m < 0)
            return -400;
        if (m == 0)
            continue;
        if (strcmp(table[i].method, method) == 0)
            return i;
        wrong_method = 1;
    }
    return wrong_method ? -405 : -404;
}
