/*
 * httpd: accept, read a head with llhttp into a fixed buffer, call the
 * handler, write the answer, close. Every connection is on a list so that
 * httpd_stop can close them all.
 */
#include "common/httpd.h"

#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HTTPD_HEAD_MAX 8192
#define HTTPD_TIMEOUT_MS 5000

struct hconn;

struct httpd {
    uv_tcp_t tcp;
    uv_loop_t *loop;
    httpd_handler fn;
    void *arg;
    struct hconn *conns;
    int stopping;
};

struct hconn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    struct httpd *h;
    struct hconn *prev, *next;
    llhttp_t parser;
    char method[16];
    char path[512];
    size_t path_len, head_len;
    char *out;
    int done, closing, closed_handles, in_query;
    char buf[1024];
};

static const char *reason(int s)
{
    switch (s) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

static void hc_freed(uv_handle_t *hd)
{
    struct hconn *c = hd->data;
    if (++c->closed_handles < 2)
        return;
    free(c->out);
    free(c);
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
    uv_close((uv_handle_t *)&c->tcp, hc_freed);
    uv_close((uv_handle_t *)&c->timer, hc_freed);
}

static void on_written(uv_write_t *w, int status)
{
    hc_close(w->data);
}

static void respond(struct hconn *c, int status, const char *ctype, const char *body, size_t len)
{
    if (c->done)
        return;
    c->done = 1;
    uv_read_stop((uv_stream_t *)&c->tcp);
    char head[256];
    int k = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                     status, reason(status), ctype ? ctype : "text/plain", len);
    c->out = malloc((size_t)k + len);
    if (!c->out) {
        hc_close(c);
        return;
    }
    memcpy(c->out, head, (size_t)k);
    if (len)
        memcpy(c->out + k, body, len);
    uv_buf_t b = uv_buf_init(c->out, (unsigned)((size_t)k + len));
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0)
        hc_close(c);
}

static int p_url(llhttp_t *p, const char *d, size_t n)
{
    struct hconn *c = p->data;
    for (size_t i = 0; i < n; i++) {
        if (c->in_query)
            break;
        if (d[i] == '?') {
            c->in_query = 1; /* the path is all a handler sees */
            break;
        }
        if (c->path_len + 1 >= sizeof(c->path))
            return -1;
        c->path[c->path_len++] = d[i];
    }
    return 0;
}

static int p_headers_done(llhttp_t *p)
{
    struct hconn *c = p->data;
    c->path[c->path_len] = '\0';
    snprintf(c->method, sizeof(c->method), "%s", llhttp_method_name(llhttp_get_method(p)));
    struct httpd_resp r = {0, NULL, NULL, 0};
    c->h->fn(c->h->arg, c->method, c->path, &r);
    if (r.status == 0)
        respond(c, 404, "text/plain", "not found\n", 10);
    else
        respond(c, r.status, r.content_type, r.body, r.len);
    free(r.body);
    return HPE_PAUSED;
}

static llhttp_settings_t settings;
static uv_once_t settings_once = UV_ONCE_INIT;

static void init_settings(void)
{
    llhttp_settings_init(&settings);
    settings.on_url = p_url;
    settings.on_headers_complete = p_headers_done;
}

static void on_alloc(uv_handle_t *hd, size_t hint, uv_buf_t *b)
{
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
    if (n == 0 || c->done)
        return;
    c->head_len += (size_t)n;
    if (c->head_len > HTTPD_HEAD_MAX) {
        respond(c, 431, "text/plain", "header too large\n", 17);
        return;
    }
    llhttp_errno_t e = llhttp_execute(&c->parser, b->base, (size_t)n);
    if (e != HPE_OK && e != HPE_PAUSED)
        respond(c, 400, "text/plain", "bad request\n", 12);
}

static void on_timeout(uv_timer_t *t)
{
    hc_close(t->data);
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
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        hc_close(c);
        return;
    }
    llhttp_init(&c->parser, HTTP_REQUEST, &settings);
    c->parser.data = c;
    uv_timer_start(&c->timer, on_timeout, HTTPD_TIMEOUT_MS, 0);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void listener_closed(uv_handle_t *hd)
{
    free(hd->data);
}

int httpd_start(uv_loop_t *loop, const struct sockaddr *addr, httpd_handler fn, void *arg,
                struct httpd **out)
{
    uv_once(&settings_once, init_settings);
    struct httpd *h = calloc(1, sizeof(*h));
    if (!h)
        return UV_ENOMEM;
    h->loop = loop;
    h->fn = fn;
    h->arg = arg;
    uv_tcp_init(loop, &h->tcp);
    h->tcp.data = h;
    int r = uv_tcp_bind(&h->tcp, addr, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&h->tcp, 128, on_conn);
    if (r < 0) {
        uv_close((uv_handle_t *)&h->tcp, listener_closed);
        return r;
    }
    *out = h;
    return 0;
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
