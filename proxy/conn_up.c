/*
 * conn_up: the upstream leg of a client's request. Acquire a connection
 * (upstream.c) and own it through the callback table below, send the head
 * rewritten (head_upstream) and the body read first or streamed, retry on
 * the next url while nothing is lost, and pass the response back rewritten
 * (head_response) with the framing the client needs.
 */
#include "proxy/conn.h"

#include "proxy/conn_int.h"

#include "common/http.h"
#include "eas/wbxml.h"
#include "proxy/upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RETRY_AFTER_DEFAULT_S 5

static void on_up_ready(void *owner, struct upconn *u);
static void on_up_failed(void *owner, enum up_failure f, const char *why);
static int on_up_head(void *owner, int status, const struct head *h, int has_length);
static int on_up_body(void *owner, const char *d, size_t n);
static void on_up_done(void *owner);
static void on_up_drained(void *owner);
static const struct up_owner up_ops = {on_up_ready, on_up_failed, on_up_head,
                                       on_up_body,  on_up_done,   on_up_drained};

/* One chunk of a chunked body, as one write. */
void conn_write_chunk(struct psock *s, const char *d, size_t n)
{
    char sz[24];
    int k = snprintf(sz, sizeof(sz), "%zx\r\n", n);
    uv_buf_t b[3] = {uv_buf_init(sz, (unsigned)k), uv_buf_init((char *)d, (unsigned)n),
                     uv_buf_init("\r\n", 2)};
    psock_writev(s, b, 3);
}

/* ---- the request ---- */

/* The server's path for the request's route (upstream.paths) and how much
 * of the client's target it replaces, or NULL when the route's path is the
 * client's own (the target goes as sent). */
static const char *server_path(const struct conn *c, size_t *skip)
{
    const struct conf_paths *ps = &c->inst->ci->upstream.paths;
    const struct head *h = c->head;
    enum route_kind k = c->req->route;
    const char *path = k == RT_EAS            ? ps->activesync
                       : k == RT_AUTODISCOVER ? ps->autodiscover
                       : k == RT_EWS          ? ps->ews
                                              : NULL;
    const char *own = k == RT_EAS            ? CONF_PATH_ACTIVESYNC
                      : k == RT_AUTODISCOVER ? CONF_PATH_AUTODISCOVER
                                             : CONF_PATH_EWS;
    if (!path || strcmp(path, own) == 0)
        return NULL;
    *skip = route_path_end(h->data + h->url_off, h->url_len, k);
    return *skip ? path : NULL;
}

/* The client's head rewritten for u's url (head.h). */
static size_t upstream_head(struct conn *c, struct upconn *u, char *out)
{
    struct req *r = c->req;
    size_t skip = 0;
    const char *path = server_path(c, &skip);
    struct head_up up = {
        .method = llhttp_method_name((llhttp_method_t)r->method),
        .host = c->inst->up_host_hdr[u->u->idx],
        .client = c->ip,
        .xff_chain = r->xff_trusted,
        .tls = c->s.tls != NULL,
        /* A POST without a body still says so (Content-Length: 0): servers
         * such as SOGo refuse a POST that names no length. */
        .framing = r->body_mode == BODY_BUFFER ? HEAD_LENGTH
                   : r->chunked                ? HEAD_CHUNKED
                   : r->has_body               ? HEAD_LENGTH
                   : r->method == HTTP_POST || r->method == HTTP_PUT || r->method == HTTP_PATCH
                       ? HEAD_LENGTH
                       : HEAD_NO_BODY,
        .length = r->body_mode == BODY_BUFFER ? r->body_len : r->content_length,
        .path = path,
        .path_skip = skip,
    };
    return head_upstream(c->head, &up, out);
}

/* The head and the body read first, in one write: the request is all out. */
static void send_buffered(struct conn *c, struct upconn *u, char *out, size_t len)
{
    struct req *r = c->req;
    uv_buf_t b[2] = {uv_buf_init(out, (unsigned)len),
                     uv_buf_init(r->body ? r->body : out, (unsigned)r->body_len)};
    psock_writev(&u->s, b, 2);
    psock_flush(&u->s);
    r->body_sent_up = 1;
    up_request_sent(u);
    conn_arm(c, PH_WAIT);
    if (r->dec.cmd == EASQ_CMD_PING)
        conn_ping_hold(c);
    if (!u->reused) {
        /* Only a reused connection is retried, so the head and body are
         * no longer needed: a held Ping keeps neither. */
        head_put(&c->w->heads, c->head);
        c->head = NULL;
        free(r->body);
        r->body = NULL;
        r->body_cap = r->body_len = 0;
    } else {
        head_shrink(&c->head);
    }
}

/* The head now, the body as the parser delivers it (on_body in conn.c). */
static void send_streamed(struct conn *c, struct upconn *u, char *out, size_t len)
{
    struct req *r = c->req;
    psock_write(&u->s, out, len);
    psock_flush(&u->s);
    r->body_mode = BODY_STREAM;
    if (u->reused && !r->has_body) {
        head_shrink(&c->head); /* kept for a retry if the pooled connection was stale */
    } else {
        head_put(&c->w->heads, c->head); /* a streamed body cannot be replayed: no retry */
        c->head = NULL;
    }
    if (r->msg_done) {
        /* No body (or already complete): nothing more to stream. */
        conn_on_msg(c);
        return;
    }
    conn_send_continue(c);
    conn_arm(c, PH_BODY);
    conn_resume(c);
}

/* The request goes out on u: the rewritten head, and the body when it was
 * read first; a streamed body follows as the parser delivers it. */
static void send_up(struct conn *c, struct upconn *u)
{
    struct req *r = c->req;
    c->up = u;
    if (!r || !c->head || c->closing) {
        c->up = NULL;
        conn_up_put(c, u, 0);
        return;
    }
    static __thread char out[HEAD_UP_MAX];
    size_t len = upstream_head(c, u, out);
    r->head_sent_up = 1;
    if (r->body_mode == BODY_BUFFER)
        send_buffered(c, u, out, len);
    else
        send_streamed(c, u, out, len);
}

/* The client's message is complete and the body was streamed (or there was
 * none): the request is all upstream, the wait for the answer starts. */
void conn_up_request_done(struct conn *c)
{
    struct req *r = c->req;
    if (!c->up)
        return; /* failed meanwhile; the answer ends the request */
    if (r->vdec && r->chunked && r->body_seen > 0) {
        /* (a chunked body with no bytes is no body: an empty Ping sent
         * chunked, as MS-ASCMD allows a Ping without a body) */
        int rc = wbxml_dec_finish(r->vdec); /* before the last chunk ends it upstream */
        if (rc < 0) {
            conn_wbxml_abort(c, rc);
            conn_answer_wbxml_invalid(c);
            return;
        }
    }
    if (r->chunked)
        psock_write(&c->up->s, "0\r\n\r\n", 5);
    psock_flush(&c->up->s);
    r->body_sent_up = 1;
    up_request_sent(c->up);
    if (!r->resp_started)
        conn_arm(c, PH_WAIT);
    if (r->dec.cmd == EASQ_CMD_PING && !r->resp_started)
        conn_ping_hold(c);
}

/* ---- connection-oriented authentication ---- */

/* A scheme that authenticates the connection, not the request (IIS's NTLM
 * and Negotiate), at the start of v. */
static int conn_scheme(const char *v, size_t vl)
{
    return (vl >= 4 && strncasecmp(v, "NTLM", 4) == 0 && (vl == 4 || v[4] == ' ')) ||
           (vl >= 9 && strncasecmp(v, "Negotiate", 9) == 0 && (vl == 9 || v[9] == ' '));
}

/* Does any header name of h carry such a scheme? */
static int carries_conn_auth(const struct head *h, const char *name)
{
    size_t nl = strlen(name);
    for (uint32_t i = 0; h && i < h->n; i++)
        if (h->h[i].n_len == nl && strncasecmp(h->data + h->h[i].n_off, name, nl) == 0 &&
            conn_scheme(h->data + h->h[i].v_off, h->h[i].v_len))
            return 1;
    return 0;
}

void conn_up_put(struct conn *c, struct upconn *u, int reusable)
{
    if (c->pin && reusable && !c->closing && up_keep(u) == 0) {
        c->pinned = u;
        return;
    }
    if (c->pin) {
        /* Its authentication goes with it: no later request may go on over
         * another connection as if it were the same. */
        if (u == c->pinned)
            c->pinned = NULL;
        c->pin_lost = 1;
        if (c->req)
            c->req->close_after = 1;
    }
    up_release(u, reusable && !c->pin);
}

/* An upstream connection for the request: 0, or -1 when every url is down. */
static int acquire(struct conn *c)
{
    struct upconn *u;
    if (c->pinned) {
        c->up = c->pinned;
        send_up(c, c->pinned);
        return 0;
    }
    /* A body that streams cannot be sent again, so it never goes on a
     * pooled connection the server may have ended meanwhile; nor does the
     * retry after such a stale one. */
    struct req *r = c->req;
    int fresh = c->pin || r->up_fresh || (r->has_body && r->body_mode != BODY_BUFFER);
    int rc = up_acquire(c->w, c->inst, &up_ops, c, fresh, &u);
    if (rc < 0)
        return -1;
    c->up = u;
    if (rc == UP_POOLED)
        send_up(c, u);
    return 0;
}

static void answer_unavailable(struct conn *c, const char *reason)
{
    struct req *r = c->req;
    r->reason = reason;
    r->close_after = r->close_after || (r->has_body && !r->msg_done);
    char ra[48];
    int64_t ra_ms = c->inst->ci->upstream.retry_after_ms;
    snprintf(ra, sizeof(ra), "Retry-After: %lld\r\n",
             (long long)(ra_ms > 0 ? (ra_ms + 999) / 1000 : RETRY_AFTER_DEFAULT_S));
    conn_answer(c, 503, "text/plain", ra, "upstream unavailable\n", 21, M_UPSTREAM);
}

void conn_forward(struct conn *c)
{
    struct req *r = c->req;
    if (c->pin_lost) {
        /* The private connection is gone mid-conversation: the client
         * starts again on a new connection of its own. */
        r->reason = "auth-connection-lost";
        conn_close(c);
        return;
    }
    if (carries_conn_auth(c->head, "Authorization"))
        c->pin = 1;
    if (!r->dec.wait_ms)
        r->dec.wait_ms = (uint64_t)r->snap->conf->proxy.timeouts.upstream_response_ms;
    if (r->has_body && !r->chunked && r->body_mode != BODY_BUFFER && !r->msg_done &&
        r->content_length <= (uint64_t)conn_conf(c)->limits.max_body_read) {
        /* As nginx does: a body of known, bounded length is read before an
         * upstream connection is taken, so that the request can go again on
         * a new connection when a pooled one turns out to be gone (servers
         * such as SOGo end idle connections without a word). conn_on_msg
         * comes back to conn_up_body_in. */
        r->body_mode = BODY_BUFFER;
        r->fwd_body = 1;
        conn_send_continue(c);
        conn_arm(c, PH_BODY);
        conn_resume(c);
        return;
    }
    conn_up_body_in(c);
}

void conn_up_body_in(struct conn *c)
{
    conn_arm(c, PH_WAIT); /* no longer the client's head that is late, if anything */
    if (acquire(c) < 0)
        answer_unavailable(c, "upstream-down");
}

/* ---- what the upstream connection reports ---- */

static void on_up_ready(void *owner, struct upconn *u)
{
    send_up(owner, u);
}

/* Upstream failed before any response byte reached the client. retryable:
 * nothing of the request body is lost, another url may be tried. */
static void up_failed(struct conn *c, int retryable, const char *why)
{
    struct req *r = c->req;
    if (!r || r->answered || c->closing)
        return;
    size_t n_urls = c->inst->ci->upstream.n_urls;
    /* attempts counts failures; a stale pooled connection is not one */
    int again = r->attempt_more || (size_t)r->attempts + 1 < n_urls;
    if (!r->attempt_more)
        r->attempts++;
    if (retryable && c->head && again) {
        r->attempt_more = 0;
        r->head_sent_up = 0;
        r->body_sent_up = 0;
        if (acquire(c) == 0)
            return;
    }
    answer_unavailable(c, why && *why ? why : "upstream-failed");
}

static void on_up_failed(void *owner, enum up_failure f, const char *why)
{
    struct conn *c = owner;
    struct req *r = c->req;
    if (c->pinned) {
        /* The client's private connection ended (idle or in use): nothing
         * is retried over another, the client connection ends too. */
        int in_use = c->up == c->pinned;
        c->pinned = NULL;
        c->up = NULL;
        c->pin_lost = 1;
        if (in_use || !r)
            conn_close(c);
        else
            r->close_after = 1;
        return;
    }
    c->up = NULL;
    if (f == UP_FAIL_RESPONSE) {
        conn_close(c);
        return;
    }
    /* A stale pooled connection or a refused connect loses nothing if the
     * body was not streamed yet. */
    int retryable = f == UP_FAIL_CONNECT ||
                    (f == UP_FAIL_STALE && r && (r->body_mode == BODY_BUFFER || !r->has_body));
    if (f == UP_FAIL_STALE && retryable) {
        r->attempt_more = 1; /* not the url's fault: do not count it */
        r->up_fresh = 1;     /* and the next try is on a new connection */
    }
    up_failed(c, retryable, why);
}

/* Exchange's status is in: the request's sightings go (2xx: Exchange
 * authenticated the user) or are dropped, and the connection's NTLM user
 * is what its last AUTHENTICATE that Exchange accepted named (a 401 says
 * the connection is not, or no longer, authenticated). */
static void answered_by_exchange(struct conn *c, int status)
{
    struct req *r = c->req;
    decide_report_answered(&r->dec, c->w->rs, status);
    if (status == 401 && r->bm.checked && r->snap->pol) {
        /* A wrong password: counted against its sender, and the budgets
         * it took from the device and the user go back (whoever sent it,
         * it must not spend the real user's budget). */
        budget_refund(c->w->budget, &r->snap->pol->abuse, &r->bm);
        budget_auth_failed(c->w->budget, &r->snap->pol->abuse, &r->bm);
    }
    if (status >= 200 && status < 300 && r->bm.checked && r->snap->pol)
        budget_answered(c->w->budget, &r->snap->pol->abuse, &r->bm, (int64_t)uv_now(&c->w->loop));
    if (status == 401) {
        free(c->conn_user);
        c->conn_user = NULL;
    } else if (status >= 200 && status < 300 && r->dec.ntlm_auth && c->pin) {
        free(c->conn_user);
        c->conn_user = r->dec.ntlm_user;
        r->dec.ntlm_user = NULL;
    }
}

/* How the server's redirects map back to the client's paths, or NULL when
 * the server lives where the client thinks (no prefix, no paths). */
static const struct head_map *redirect_map(const struct conn *c, struct head_map *m)
{
    const struct conf_upstream *cu = &c->inst->ci->upstream;
    const struct conf_paths *ps = &cu->paths;
    if (!*cu->urls[0].path && strcmp(ps->activesync, CONF_PATH_ACTIVESYNC) == 0 &&
        strcmp(ps->autodiscover, CONF_PATH_AUTODISCOVER) == 0 &&
        strcmp(ps->ews, CONF_PATH_EWS) == 0)
        return NULL;
    *m = (struct head_map){
        .authority = c->up ? c->inst->up_host_hdr[c->up->u->idx] : NULL,
        .prefix = cu->urls[0].path,
        .server = {ps->activesync, ps->autodiscover, ps->ews},
        .client = {CONF_PATH_ACTIVESYNC, CONF_PATH_AUTODISCOVER, CONF_PATH_EWS},
    };
    return m;
}

/* The response head, rewritten for the client: framing chosen for it. */
static int on_up_head(void *owner, int status, const struct head *h, int has_length)
{
    struct conn *c = owner;
    struct req *r = c->req;
    if (!r || !c->up)
        return -1; /* bytes on a kept connection nobody asked anything on */
    if (status == 401 && carries_conn_auth(h, "WWW-Authenticate"))
        c->pin = 1;
    answered_by_exchange(c, status);
    int no_body = r->is_head || status == 204 || status == 304;
    r->resp_chunked = 0;
    if (!no_body && !has_length) {
        if (r->keepalive)
            r->resp_chunked = 1;
        else
            r->close_after = 1;
    }
    if (!r->keepalive)
        r->close_after = 1;
    static __thread char out[HEAD_RESP_MAX];
    const char *reason = h->url_len ? NULL : http_reason(status); /* it gave none */
    struct head_map map;
    size_t len = head_response(h, status, reason, r->resp_chunked, r->close_after,
                               redirect_map(c, &map), out);
    r->up_status = status;
    r->status = status;
    r->resp_started = 1;
    if (r->held_ping)
        conn_ping_release(c);
    head_put(&c->w->heads, c->head);
    c->head = NULL;
    free(r->body);
    r->body = NULL;
    psock_write(&c->s, out, len);
    if (!c->closing)
        psock_flush(&c->s); /* with the body bytes of this read: one write */
    conn_arm(c, PH_RESP);
    if (c->closing)
        return -1;
    return r->is_head ? 1 : 0;
}

static int on_up_body(void *owner, const char *d, size_t n)
{
    struct conn *c = owner;
    struct req *r = c->req;
    if (r->resp_chunked) {
        conn_write_chunk(&c->s, d, n);
    } else {
        psock_write(&c->s, d, n);
    }
    if (!c->closing)
        psock_flush(&c->s);
    conn_arm(c, PH_RESP);
    return psock_congested(&c->s);
}

static void on_up_done(void *owner)
{
    struct conn *c = owner;
    struct req *r = c->req;
    if (r->resp_chunked)
        psock_write(&c->s, "0\r\n\r\n", 5);
    psock_flush(&c->s);
    r->resp_done = 1;
    struct upconn *u = c->up;
    c->up = NULL;
    int reusable = r->msg_done && r->body_sent_up;
    if (u)
        conn_up_put(c, u, reusable);
    if (!r->msg_done)
        r->close_after = 1; /* answered before the body was all sent */
    conn_req_end(c);
}

static void on_up_drained(void *owner)
{
    conn_update_reading(owner);
}
