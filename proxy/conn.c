/*
 * conn: the client side of a proxied request, from the first byte of a head
 * to the last byte of the answer.
 *
 * The parser is driven by conn_input/conn_pump. It pauses at two points:
 * when a head is complete (route, identity, decision; maybe read a small body
 * first) and when a message is complete (the answer must go out before the
 * next pipelined request is looked at). Everything that can happen later
 * (upstream connected, answer finished, timer fired) resumes it through
 * conn_resume, which never recurses: a pump already running picks the work up.
 *
 * Memory is released in one place, on_closed, after libuv has let go of the
 * handles; callbacks may close the connection and return safely.
 */
#include "proxy/conn.h"

#include "proxy/conn_int.h"

#include "common/http.h"
#include "common/log.h"
#include "proxy/accesslog.h"
#include "proxy/answer.h"
#include "proxy/certbind.h"
#include "proxy/decide.h"
#include "proxy/limits.h"
#include "proxy/upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define STASH_MAX (64 * 1024)     /* bytes read ahead while the parser is paused */
#define DISCARD_MAX (1024 * 1024) /* body drained after a local answer, else close */
#define RETRY_AFTER_DEFAULT_S 5
#define CLOSE_LINGER_MS 5000 /* a closing connection's last bytes may take this long */

static int on_msg_begin(llhttp_t *p);
static int on_url(llhttp_t *p, const char *d, size_t n);
static int on_field(llhttp_t *p, const char *d, size_t n);
static int on_value(llhttp_t *p, const char *d, size_t n);
static int on_headers_done(llhttp_t *p);
static int on_body(llhttp_t *p, const char *d, size_t n);
static int on_msg_done(llhttp_t *p);

static llhttp_settings_t req_settings;
static uv_once_t req_once = UV_ONCE_INIT;

static void req_init_settings(void)
{
    llhttp_settings_init(&req_settings);
    req_settings.on_message_begin = on_msg_begin;
    req_settings.on_url = on_url;
    req_settings.on_header_field = on_field;
    req_settings.on_header_value = on_value;
    req_settings.on_headers_complete = on_headers_done;
    req_settings.on_body = on_body;
    req_settings.on_message_complete = on_msg_done;
}

static int c_on_data(struct psock *s, const char *d, size_t n);
static int c_on_ready(struct psock *s);
static void c_on_end(struct psock *s, int err, const char *why);
static void c_on_drained(struct psock *s);
static void c_on_closed(struct psock *s);

static int c_on_proxied(struct psock *s, const struct pp_info *info);
static const struct psock_cbs client_cbs = {c_on_data,    c_on_ready,  c_on_end,
                                            c_on_drained, c_on_closed, c_on_proxied};

static void on_up_ready(void *owner, struct upconn *u);
static void on_up_failed(void *owner, enum up_failure f, const char *why);
static int on_up_head(void *owner, int status, const struct head *h, int has_length);
static int on_up_body(void *owner, const char *d, size_t n);
static void on_up_done(void *owner);
static void on_up_drained(void *owner);
static const struct up_owner up_ops = {on_up_ready, on_up_failed, on_up_head,
                                       on_up_body,  on_up_done,   on_up_drained};

enum pause_why { PAUSE_NONE, PAUSE_HEAD, PAUSE_MSG };

static void conn_pump(struct conn *c);
static void conn_resume(struct conn *c);
static void conn_req_end(struct conn *c);
static void conn_on_head(struct conn *c);
static void conn_on_msg(struct conn *c);
static void decision_final(struct conn *c);
static void arm(struct conn *c, enum cphase ph);
static void on_timer(uv_timer_t *t);

static const struct conf_proxy *P(const struct conn *c)
{
    return &c->w->snap->conf->proxy;
}

/* ---- life cycle ---- */

/* Count the connection against the limits, by its client address. */
static void admit(struct conn *c)
{
    struct worker *w = c->w;
    const struct conf_limits *lim = &P(c)->limits;
    int adm = limits_admit(&w->px->limits, c->ipkey, lim->max_connections,
                           lim->max_connections_per_client);
    if (adm == 0) {
        c->admitted = 1;
    } else {
        /* Over a limit: still answer (503) so the client sees why, but the
         * header timeout keeps this short. */
        c->reject = adm == -1 ? 1 : 2;
        const char *ip = c->ip;
        eg_warn("instance %s: connection from %s refused: %s", c->inst->ci->name, ip,
                adm == -1 ? "limits.max_connections reached"
                          : "limits.max_connections_per_client reached");
        if (adm == -1)
            M_ADD(w->m.rejected_total_limit, 1);
        else
            M_ADD(w->m.rejected_client_limit, 1);
    }
}

/* The balancer's PROXY header: the client it names is the client. */
static int c_on_proxied(struct psock *s, const struct pp_info *info)
{
    struct conn *c = s->owner;
    if (info->has_addr) {
        limits_ip_key((const struct sockaddr *)&info->src, c->ipkey);
        psock_addr_text((const struct sockaddr *)&info->src, c->ip, sizeof(c->ip));
    }
    admit(c);
    return 0;
}

void conn_accept(struct worker *w, const struct instance *inst, uv_stream_t *listener)
{
    uv_once(&req_once, req_init_settings);
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->w = w;
    c->inst = inst;
    if (psock_init(&c->s, &w->io, &client_cbs, c) < 0) {
        free(c);
        return;
    }
    uv_timer_init(&w->loop, &c->timer);
    c->timer.data = c;
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->n_conns++;
    M_ADD(w->m.open_conns, 1);
    M_ADD(w->m.conns_total, 1);
    llhttp_init(&c->parser, HTTP_REQUEST, &req_settings);
    c->parser.data = c;

    if (uv_accept(listener, (uv_stream_t *)&c->s.tcp) < 0) {
        conn_close(c);
        return;
    }
    struct sockaddr_storage peer;
    int sl = sizeof(peer);
    memset(&peer, 0, sizeof(peer));
    uv_tcp_getpeername(&c->s.tcp, (struct sockaddr *)&peer, &sl);
    limits_ip_key((struct sockaddr *)&peer, c->ipkey);
    psock_peer_text(&c->s, c->ip, sizeof(c->ip));
    uv_tcp_nodelay(&c->s.tcp, 1);

    /* Behind a PROXY-protocol balancer the client is known only once the
     * header is in: the limits count it then. */
    if (inst->ci->proxy_protocol) {
        if (psock_expect_proxy_header(&c->s) < 0) {
            conn_close(c);
            return;
        }
    } else {
        admit(c);
    }
    struct tls_ctx *tls = WORKER_TLS(w, inst)->server;
    if (psock_start_server(&c->s, tls) < 0) {
        conn_close(c);
        return;
    }
    /* With TLS the header timeout starts once the handshake is done: a
     * reconnect storm slows handshakes down, and those phones are not
     * slowloris attackers. */
    c->phase = PH_IDLE;
    arm(c, tls ? PH_HANDSHAKE : PH_HEAD);
}

static void free_req(struct conn *c)
{
    struct req *r = c->req;
    if (!r)
        return;
    if (r->held_ping)
        conn_ping_release(c);
    if (r->lookup_pending)
        rstore_cancel(&r->wait);
    snap_unref(r->snap);
    free(r->dec.logid);
    free(r->body);
    decision_final(c);
    worker_obj_put(c->w->free_reqs, &c->w->n_free_reqs, r);
    c->req = NULL;
}

static void timer_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    free(c);
}

static void c_on_closed(struct psock *s)
{
    struct conn *c = s->owner;
    struct worker *w = c->w;
    if (c->up) {
        up_release(c->up, 0);
        c->up = NULL;
    }
    free_req(c);
    head_put(&w->heads, c->head);
    c->head = NULL;
    free(c->stash);
    c->stash = NULL;
    free(c->cert_id);
    c->cert_id = NULL;
    if (c->admitted)
        limits_release(&w->px->limits, c->ipkey);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->n_conns--;
    M_ADD(w->m.open_conns, -1);
    uv_close((uv_handle_t *)&c->timer, timer_closed);
}

void conn_close(struct conn *c)
{
    if (c->s.closing)
        return;
    if (!c->closing) {
        c->closing = 1;
        c->phase = PH_CLOSING;
        if (c->req && !c->req->resp_done && c->req->t_start) {
            /* Log what we know about a request cut short. */
            if (!c->req->status)
                c->req->status = 499; /* nginx's "client closed request", log only */
            c->req->resp_done = 1;
            c->req->msg_done = 1;
            c->req->close_after = 1;
            struct upconn *u = c->up;
            c->up = NULL;
            if (u)
                up_release(u, 0);
            conn_req_end(c);
        }
    }
    /* Also ends a graceful close still waiting for its last bytes. */
    uv_timer_stop(&c->timer);
    if (c->up) {
        up_release(c->up, 0);
        c->up = NULL;
    }
    psock_close(&c->s);
}

/* The last answer is queued: let it go out, but a peer that does not read
 * gets CLOSE_LINGER_MS, not forever. */
static void close_graceful(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->phase = PH_CLOSING;
    c->deadline = c->timer_due = uv_now(&c->w->loop) + CLOSE_LINGER_MS;
    uv_timer_start(&c->timer, on_timer, CLOSE_LINGER_MS, 0);
    psock_close_graceful(&c->s);
}

static void conn_drain(struct conn *c)
{
    if (c->closing)
        return;
    if (!c->req && (c->stash_len - c->stash_off) == 0) {
        close_graceful(c);
        return;
    }
    if (c->req)
        c->req->close_after = 1;
}

void conn_drain_all(struct worker *w)
{
    struct conn *c = w->conns;
    while (c) {
        struct conn *next = c->next;
        if (c->req && c->req->held_ping)
            conn_cut_ping(c, 0);
        else
            conn_drain(c);
        c = next;
    }
}

void conn_close_all(struct worker *w)
{
    struct conn *c = w->conns;
    while (c) {
        struct conn *next = c->next;
        conn_close(c);
        c = next;
    }
}

/* ---- timers ---- */

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    struct req *r = c->req;
    uint64_t now = uv_now(&c->w->loop);
    if (now < c->deadline) { /* the phase changed since: not due yet */
        c->timer_due = c->deadline;
        uv_timer_start(&c->timer, on_timer, c->deadline - now, 0);
        return;
    }
    switch (c->phase) {
    case PH_HANDSHAKE:
        M_ADD(c->w->m.tls_handshake_timeouts, 1);
        conn_close(c);
        return;
    case PH_IDLE:
    case PH_CLOSING:
        conn_close(c);
        return;
    case PH_HEAD:
        if (!c->saw_bytes || !r || r->answered) {
            conn_close(c);
            return;
        }
        r->close_after = 1;
        r->reason = "header-timeout";
        conn_answer(c, 408, "text/plain", NULL, "request timeout\n", 16, M_LIMIT);
        return;
    case PH_BODY:
        if (r && !r->resp_started && !r->answered) {
            r->close_after = 1;
            r->reason = "body-timeout";
            conn_answer(c, 408, "text/plain", NULL, "request timeout\n", 16, M_LIMIT);
            return;
        }
        conn_close(c);
        return;
    case PH_WAIT:
        if (r && !r->resp_started && !r->answered) {
            r->close_after = 1;
            r->reason = "upstream-timeout";
            M_ADD(c->w->m.upstream_errors, 1);
            conn_answer(c, 504, "text/plain", NULL, "upstream timeout\n", 17, M_UPSTREAM);
            return;
        }
        conn_close(c);
        return;
    case PH_RESP:
        conn_close(c);
        return;
    }
}

static void arm(struct conn *c, enum cphase ph)
{
    const struct conf_timeouts *t = &P(c)->timeouts;
    int64_t ms;
    switch (ph) {
    case PH_HANDSHAKE:
        ms = t->handshake_ms;
        break;
    case PH_IDLE:
        ms = t->keepalive_ms;
        break;
    case PH_HEAD:
        if (c->phase == PH_HEAD)
            return; /* absolute: trickling bytes does not extend it */
        ms = t->header_ms;
        break;
    case PH_WAIT:
        ms = c->req ? (int64_t)c->req->dec.wait_ms : t->upstream_response_ms;
        break;
    case PH_BODY:
    case PH_RESP:
    default:
        ms = t->body_ms;
        break;
    }
    c->phase = ph;
    if (ms <= 0)
        ms = 60000;
    /* Phases change several times per request; moving the timer each time
     * costs a heap update. Only a deadline earlier than the timer's moves
     * it; a later one is picked up when the timer fires (on_timer). */
    c->deadline = uv_now(&c->w->loop) + (uint64_t)ms;
    if (uv_is_active((uv_handle_t *)&c->timer) && c->timer_due <= c->deadline)
        return;
    c->timer_due = c->deadline;
    uv_timer_start(&c->timer, on_timer, (uint64_t)ms, 0);
}

/* ---- input: stash and pump ---- */

static size_t stash_pending(const struct conn *c)
{
    return c->stash_len - c->stash_off;
}

static int stash_append(struct conn *c, const char *d, size_t n)
{
    if (c->stash_off > 0 && stash_pending(c) == 0)
        c->stash_off = c->stash_len = 0;
    if (c->stash_len + n > c->stash_cap) {
        if (c->stash_off > 0) {
            memmove(c->stash, c->stash + c->stash_off, stash_pending(c));
            c->stash_len -= c->stash_off;
            c->stash_off = 0;
        }
        if (c->stash_len + n > c->stash_cap) {
            size_t cap = c->stash_len + n;
            if (cap < 4096)
                cap = 4096;
            char *p = realloc(c->stash, cap);
            if (!p)
                return -1;
            c->stash = p;
            c->stash_cap = cap;
        }
    }
    memcpy(c->stash + c->stash_len, d, n);
    c->stash_len += n;
    return 0;
}

static void update_reading(struct conn *c)
{
    if (c->closing)
        return;
    int want = stash_pending(c) < STASH_MAX && !(c->up && psock_congested(&c->up->s));
    if (want)
        psock_read_start(&c->s);
    else
        psock_read_stop(&c->s);
}

static enum pause_why pause_why(const struct conn *c)
{
    return (enum pause_why)c->pause_why;
}

/* Run the parser over d; returns how many bytes it consumed. */
static size_t exec(struct conn *c, const char *d, size_t n)
{
    llhttp_errno_t e = llhttp_execute(&c->parser, d, n);
    if (e == HPE_OK)
        return n;
    if (e == HPE_PAUSED) {
        size_t used = (size_t)(llhttp_get_error_pos(&c->parser) - d);
        c->paused = 1;
        if (pause_why(c) == PAUSE_HEAD)
            conn_on_head(c);
        else
            conn_on_msg(c);
        return used;
    }
    if (c->closing)
        return n;
    /* A malformed request, or a limit our callbacks enforced. */
    struct req *r = c->req;
    int status = 400;
    const char *why = llhttp_errno_name(e);
    if (r && r->err_status) {
        status = r->err_status;
        why = r->reason;
    }
    if (!r || r->answered || r->resp_started) {
        conn_close(c);
        return n;
    }
    r->close_after = 1;
    if (!r->reason)
        r->reason = why;
    c->paused = 1;
    r->msg_done = 1;
    conn_answer(c, status, "text/plain", NULL, http_reason(status), strlen(http_reason(status)),
                status == 400 ? M_INVALID : M_LIMIT);
    return n;
}

static void conn_input(struct conn *c, const char *d, size_t n)
{
    if (c->pumping || c->paused || stash_pending(c) > 0) {
        if (stash_append(c, d, n) < 0) {
            conn_close(c);
            return;
        }
        conn_pump(c);
        return;
    }
    c->pumping = 1;
    size_t used = exec(c, d, n);
    if (used < n && !c->closing && stash_append(c, d + used, n - used) < 0) {
        c->pumping = 0;
        conn_close(c);
        return;
    }
    c->pumping = 0;
    conn_pump(c);
}

static void conn_pump(struct conn *c)
{
    if (c->pumping)
        return;
    c->pumping = 1;
    while (!c->closing && !c->paused && stash_pending(c) > 0) {
        size_t used = exec(c, c->stash + c->stash_off, stash_pending(c));
        c->stash_off += used;
    }
    if (stash_pending(c) == 0 && c->stash) {
        free(c->stash);
        c->stash = NULL;
        c->stash_len = c->stash_off = c->stash_cap = 0;
    }
    c->pumping = 0;
    update_reading(c);
}

static void conn_resume(struct conn *c)
{
    if (c->closing || !c->paused)
        return;
    c->paused = 0;
    c->pause_why = PAUSE_NONE;
    llhttp_resume(&c->parser);
    conn_pump(c);
}

/* ---- psock callbacks ---- */

static int c_on_data(struct psock *s, const char *d, size_t n)
{
    struct conn *c = s->owner;
    c->saw_bytes = 1;
    conn_input(c, d, n);
    return c->closing;
}

X509 *conn_peer_cert(const struct conn *c)
{
    return c->s.tls ? tls_conn_peer_cert(c->s.tls) : NULL;
}

static int c_on_ready(struct psock *s)
{
    struct conn *c = s->owner;
    X509 *x = conn_peer_cert(c);
    if (x)
        c->cert_id = certbind_summary(x);
    if (c->phase == PH_HANDSHAKE)
        arm(c, PH_HEAD); /* the first request's head, from now */
    return 0;
}

static void c_on_end(struct psock *s, int err, const char *why)
{
    struct conn *c = s->owner;
    if (err == PSOCK_ETLS) {
        const char *ip = c->ip;
        eg_info("instance %s: TLS from %s failed: %s", c->inst->ci->name, ip, why);
    } else if (err == PSOCK_EPROXY) {
        const char *ip = c->ip;
        eg_info("instance %s: connection from %s closed: bad PROXY protocol header: %s",
                c->inst->ci->name, ip, why);
    }
    conn_close(c);
}

static void c_on_drained(struct psock *s)
{
    struct conn *c = s->owner;
    if (c->up)
        up_resume(c->up);
}

/* ---- parser callbacks ---- */

static struct req *req_new(struct conn *c)
{
    struct req *r = worker_obj_take(c->w->free_reqs, &c->w->n_free_reqs, sizeof(*r));
    if (!r)
        return NULL;
    memset(r, 0, sizeof(*r));
    r->t_start = uv_now(&c->w->loop);
    r->snap = snap_ref(c->w->snap);
    r->out0 = c->s.bytes_out;
    r->dec.cmd = M_CMD_OTHER;
    r->keepalive = 1;
    return r;
}

static int on_msg_begin(llhttp_t *p)
{
    struct conn *c = p->data;
    if (c->req) /* cannot happen: the parser pauses after each message */
        return -1;
    c->req = req_new(c);
    int64_t cap = P(c)->limits.max_header_size;
    if (cap <= 0 || cap > HEAD_MAX_BYTES)
        cap = HEAD_MAX_BYTES;
    c->head = head_take(&c->w->heads, (uint32_t)cap);
    if (!c->req || !c->head)
        return -1;
    c->n_requests++;
    arm(c, PH_HEAD);
    return 0;
}

static int too_big(struct conn *c)
{
    c->req->err_status = 431;
    c->req->reason = "header-too-large";
    return -1;
}

static int on_url(llhttp_t *p, const char *d, size_t n)
{
    struct conn *c = p->data;
    return head_url(c->head, d, n) < 0 ? too_big(c) : 0;
}

/* Fields after the head are a chunked body's trailer. The decision was made
 * on the head, so a trailer is never a header: it is counted against the
 * header size limit and dropped, never forwarded (the proxy writes the
 * upstream's last chunk itself), whether the head is still held or not. */
static int trailer(struct conn *c, size_t n)
{
    struct req *r = c->req;
    int64_t cap = P(c)->limits.max_header_size;
    if (cap <= 0 || cap > HEAD_MAX_BYTES)
        cap = HEAD_MAX_BYTES;
    if ((int64_t)r->trailer_bytes + (int64_t)n > cap) {
        r->err_status = 431;
        r->reason = "trailer-too-large";
        return -1;
    }
    r->trailer_bytes += (uint32_t)n;
    return 0;
}

static int on_field(llhttp_t *p, const char *d, size_t n)
{
    struct conn *c = p->data;
    if (c->req->head_done)
        return trailer(c, n);
    return head_field(c->head, d, n) < 0 ? too_big(c) : 0;
}

static int on_value(llhttp_t *p, const char *d, size_t n)
{
    struct conn *c = p->data;
    if (c->req->head_done)
        return trailer(c, n);
    return head_value(c->head, d, n) < 0 ? too_big(c) : 0;
}

static int on_headers_done(llhttp_t *p)
{
    struct conn *c = p->data;
    /* request line and header lines as sent, give or take optional spaces */
    c->req->bytes_in = c->head->len + 4u * c->head->n + 16u;
    c->req->head_done = 1;
    c->pause_why = PAUSE_HEAD;
    return HPE_PAUSED;
}

/* One chunk of a chunked body, as one write. */
static void write_chunk(struct psock *s, const char *d, size_t n)
{
    char sz[24];
    int k = snprintf(sz, sizeof(sz), "%zx\r\n", n);
    uv_buf_t b[3] = {uv_buf_init(sz, (unsigned)k), uv_buf_init((char *)d, (unsigned)n),
                     uv_buf_init("\r\n", 2)};
    psock_writev(s, b, 3);
}

static int on_body(llhttp_t *p, const char *d, size_t n)
{
    struct conn *c = p->data;
    struct req *r = c->req;
    r->bytes_in += n;
    switch (r->body_mode) {
    case BODY_BUFFER: {
        int64_t max = P(c)->limits.max_body_read;
        if ((int64_t)(r->body_len + n) > max) {
            r->err_status = 413;
            r->reason = "body-too-large";
            return -1;
        }
        if (r->body_len + n > r->body_cap) {
            size_t cap = r->body_cap ? r->body_cap * 2 : 1024;
            while (cap < r->body_len + n)
                cap *= 2;
            char *b = realloc(r->body, cap);
            if (!b)
                return -1;
            r->body = b;
            r->body_cap = cap;
        }
        memcpy(r->body + r->body_len, d, n);
        r->body_len += n;
        return 0;
    }
    case BODY_STREAM:
        if (!c->up)
            return -1;
        if (r->chunked)
            write_chunk(&c->up->s, d, n);
        else
            psock_write(&c->up->s, d, n);
        psock_flush(&c->up->s);
        arm(c, PH_BODY);
        return 0;
    case BODY_DISCARD:
    case BODY_NONE:
    default:
        return 0;
    }
}

static int on_msg_done(llhttp_t *p)
{
    struct conn *c = p->data;
    c->req->msg_done = 1;
    c->pause_why = PAUSE_MSG;
    return HPE_PAUSED;
}

/* ---- heads ---- */

static int header_is(const char *v, size_t vl, const char *want)
{
    size_t l = strlen(want);
    return vl == l && strncasecmp(v, want, l) == 0;
}

static void send_continue(struct conn *c)
{
    struct req *r = c->req;
    if (!r->expect_continue)
        return;
    r->expect_continue = 0;
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    psock_send(&c->s, cont, sizeof(cont) - 1);
}

/* Read the (small) body before deciding. */
void conn_read_body_first(struct conn *c)
{
    struct req *r = c->req;
    r->body_mode = BODY_BUFFER;
    if (r->has_body && r->content_length > (uint64_t)P(c)->limits.max_body_read) {
        r->close_after = 1;
        r->reason = "body-too-large";
        conn_answer(c, 413, "text/plain", NULL, "payload too large\n", 18, M_LIMIT);
        return;
    }
    send_continue(c);
    arm(c, PH_BODY);
    conn_resume(c);
}

/* Behind trusted balancers (the instance's trusted_proxies) the client is
 * named by X-Forwarded-For (head_xff_client), which goes on upstream. */
static void real_client(struct conn *c)
{
    const struct conf_instance *ci = c->inst->ci;
    const struct conf_net *nets = ci->trusted_proxies.v;
    size_t nn = ci->trusted_proxies.n;
    if (!nn || !conf_net_match(nets, nn, c->ipkey))
        return;
    struct req *r = c->req;
    r->xff_trusted = 1;
    head_xff_client(c->head, nets, nn, r->client, sizeof(r->client));
}

/* ---- the decision point's verdicts ---- */

/* The decision is final: what only the decision needed goes back. */
static void decision_final(struct conn *c)
{
    struct req *r = c->req;
    worker_obj_put(c->w->free_idents, &c->w->n_free_idents, r->dec.ident);
    r->dec.ident = NULL;
    free(r->dec.facts);
    r->dec.facts = NULL;
}

/* What decide.c reads of the request and the connection. */
static void decide_in_of(struct conn *c, struct decide_in *in)
{
    struct req *r = c->req;
    *in = (struct decide_in){
        .head = c->head,
        .snap = r->snap,
        .method = r->method,
        .has_body = r->has_body,
        .body_read = r->body_mode == BODY_BUFFER,
        .body = r->body_mode == BODY_BUFFER ? r->body : NULL,
        .body_len = r->body_mode == BODY_BUFFER ? r->body_len : 0,
        .cert = conn_peer_cert(c),
        .cert_id = c->cert_id,
        .client = conn_client(c),
        .instance = c->inst->ci->name,
        .rs = c->w->rs,
        .now_ms = (int64_t)uv_now(&c->w->loop),
    };
}

static void lookup(struct conn *c);

static void apply(struct conn *c, struct verdict *v)
{
    struct req *r = c->req;
    if (v->decision)
        r->decision = v->decision;
    if (v->reason)
        r->reason = v->reason;
    switch (v->kind) {
    case VERDICT_ANSWER:
        decision_final(c);
        conn_answer(c, v->status, v->content_type, v->extra, v->body, v->len, v->mdec);
        break;
    case VERDICT_FORWARD:
        decision_final(c);
        if (v->strip_policy_key)
            head_drop(c->head, "X-MS-PolicyKey");
        r->mdec = v->mdec;
        conn_forward(c);
        break;
    case VERDICT_READ_BODY:
        conn_read_body_first(c);
        break;
    case VERDICT_LOOKUP:
        lookup(c);
        break;
    }
    verdict_free(v);
}

static void decide_state(struct conn *c, const struct rstore_result *res)
{
    struct decide_in in;
    struct verdict v;
    decide_in_of(c, &in);
    decide_eas_state(&c->req->dec, &in, res, &v);
    apply(c, &v);
}

static void on_lookup(struct rstore_wait *wt, void *arg, const struct rstore_result *res)
{
    struct conn *c = arg;
    c->req->lookup_pending = 0;
    decide_state(c, res);
}

/* The device's state: from the cache now, or from Redis later. */
static void lookup(struct conn *c)
{
    struct req *r = c->req;
    if (c->w->rs && r->dec.devid_norm[0]) {
        struct rstore_result res;
        int rc = rstore_lookup(c->w->rs, r->dec.devid_norm, strlen(r->dec.devid_norm), &res,
                               &r->wait, on_lookup, c);
        if (rc == RSTORE_PENDING) {
            r->lookup_pending = 1;
            return;
        }
        if (rc == 0) {
            decide_state(c, &res);
            return;
        }
    }
    decide_state(c, NULL);
}

static void decide_head(struct conn *c)
{
    struct req *r = c->req;
    struct decide_in in;
    struct verdict v;
    if (r->method == HTTP_POST) /* the identity is kept from a pool */
        r->dec.ident =
            worker_obj_take(c->w->free_idents, &c->w->n_free_idents, sizeof(*r->dec.ident));
    decide_in_of(c, &in);
    decide_eas_head(&r->dec, &in, &v);
    apply(c, &v);
}

static void decide_body(struct conn *c)
{
    struct decide_in in;
    struct verdict v;
    decide_in_of(c, &in);
    decide_eas_body(&c->req->dec, &in, &v);
    apply(c, &v);
}

static void conn_on_head(struct conn *c)
{
    struct req *r = c->req;
    struct head *h = c->head;
    real_client(c);
    llhttp_t *p = &c->parser;
    r->method = llhttp_get_method(p);
    r->keepalive = llhttp_should_keep_alive(p) ? 1 : 0;
    r->http11 = p->http_major == 1 && p->http_minor >= 1;
    r->chunked = (p->flags & F_CHUNKED) ? 1 : 0;
    r->content_length = (p->flags & F_CONTENT_LENGTH) ? p->content_length : 0;
    r->has_body = r->chunked || r->content_length > 0;
    r->is_head = r->method == HTTP_HEAD;
    size_t vl;
    const char *v = head_get(h, "Expect", &vl);
    if (v && r->http11 && header_is(v, vl, "100-continue"))
        r->expect_continue = 1;
    if (c->w->draining)
        r->close_after = 1;

    if (c->reject) {
        r->close_after = 1;
        r->reason = c->reject == 1 ? "max-connections" : "max-connections-per-client";
        conn_answer(c, 503, "text/plain", "Retry-After: 5\r\n", "busy\n", 5, M_LIMIT);
        return;
    }
    r->route = route_of(h->data + h->url_off, h->url_len);
    switch (r->route) {
    case RT_AUTODISCOVER:
        r->dec.cmd = M_CMD_AUTODISCOVER;
        r->decision = "pass";
        r->mdec = M_PASS;
        conn_forward(c);
        return;
    case RT_EWS: {
        r->dec.cmd = M_CMD_EWS;
        const struct pol_policy *pol = r->snap->pol;
        if (!pol || !pol->ews.allow_subscriptions || r->method != HTTP_POST || !r->has_body) {
            r->reason = "ews-blocked";
            conn_answer(c, 403, "text/plain", NULL, "forbidden\n", 10, M_DENIED);
            return;
        }
        conn_read_body_first(c);
        return;
    }
    case RT_EAS:
        decide_head(c);
        return;
    case RT_OTHER:
    default:
        r->reason = "no-route";
        conn_answer(c, 404, "text/plain", NULL, "not found\n", 10, M_DENIED);
        return;
    }
}

static void conn_on_msg(struct conn *c)
{
    struct req *r = c->req;
    if (r->answered) {
        if (r->resp_done)
            conn_req_end(c);
        return;
    }
    switch (r->body_mode) {
    case BODY_BUFFER:
        if (r->route == RT_EWS) {
            if (!route_ews_is_subscription(r->body, r->body_len)) {
                r->reason = "ews-not-subscription";
                conn_answer(c, 403, "text/plain", NULL, "forbidden\n", 10, M_DENIED);
                return;
            }
            r->decision = "pass";
            r->reason = "ews-subscription";
            r->mdec = M_PASS;
            conn_forward(c);
            return;
        }
        decide_body(c);
        return;
    case BODY_STREAM:
    case BODY_NONE:
    default:
        if (!c->up)
            return; /* failed meanwhile; the answer ends the request */
        if (r->chunked)
            psock_write(&c->up->s, "0\r\n\r\n", 5);
        psock_flush(&c->up->s);
        r->body_sent_up = 1;
        up_request_sent(c->up);
        if (!r->resp_started)
            arm(c, PH_WAIT);
        if (r->dec.cmd == EASQ_CMD_PING && !r->resp_started)
            conn_ping_hold(c);
        return;
    }
}

/* ---- forwarding ---- */

/* The request goes out on u: the rewritten head, and the body when it was
 * read first; a streamed body follows as the parser delivers it. */
static void send_up(struct conn *c, struct upconn *u)
{
    struct req *r = c->req;
    struct head *h = c->head;
    c->up = u;
    if (!r || !h || c->closing) {
        c->up = NULL;
        up_release(u, 0);
        return;
    }
    static __thread char out[HEAD_UP_MAX];
    struct head_up up = {
        .method = llhttp_method_name((llhttp_method_t)r->method),
        .host = c->inst->up_host_hdr[u->u->idx],
        .client = c->ip,
        .xff_chain = r->xff_trusted,
        .tls = c->s.tls != NULL,
        .framing = r->body_mode == BODY_BUFFER ? HEAD_LENGTH
                   : r->chunked                ? HEAD_CHUNKED
                   : r->has_body               ? HEAD_LENGTH
                                               : HEAD_NO_BODY,
        .length = r->body_mode == BODY_BUFFER ? r->body_len : r->content_length,
    };
    size_t len = head_upstream(h, &up, out);
    r->head_sent_up = 1;

    if (r->body_mode == BODY_BUFFER) {
        uv_buf_t b[2] = {uv_buf_init(out, (unsigned)len),
                         uv_buf_init(r->body ? r->body : out, (unsigned)r->body_len)};
        psock_writev(&u->s, b, 2);
        psock_flush(&u->s);
        r->body_sent_up = 1;
        up_request_sent(u);
        arm(c, PH_WAIT);
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
        return;
    }
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
    send_continue(c);
    arm(c, PH_BODY);
    conn_resume(c);
}

/* An upstream connection for the request: 0, or -1 when every url is down. */
static int acquire(struct conn *c)
{
    struct upconn *u;
    int rc = up_acquire(c->w, c->inst, &up_ops, c, &u);
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
    if (!r->dec.wait_ms)
        r->dec.wait_ms = (uint64_t)r->snap->conf->proxy.timeouts.upstream_response_ms;
    arm(c, PH_WAIT); /* no longer the client's head that is late, if anything */
    if (acquire(c) < 0)
        answer_unavailable(c, "upstream-down");
}

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
    c->up = NULL;
    if (f == UP_FAIL_RESPONSE) {
        conn_close(c);
        return;
    }
    /* A stale pooled connection or a refused connect loses nothing if the
     * body was not streamed yet. */
    int retryable = f == UP_FAIL_CONNECT ||
                    (f == UP_FAIL_STALE && r && (r->body_mode == BODY_BUFFER || !r->has_body));
    if (f == UP_FAIL_STALE && retryable)
        r->attempt_more = 1; /* not the url's fault: do not count it */
    up_failed(c, retryable, why);
}

/* The response head, rewritten for the client: framing chosen for it. */
static int on_up_head(void *owner, int status, const struct head *h, int has_length)
{
    struct conn *c = owner;
    struct req *r = c->req;
    if (!r)
        return -1;
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
    size_t len =
        head_response(h, status, http_reason(status), r->resp_chunked, r->close_after, out);
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
    arm(c, PH_RESP);
    if (c->closing)
        return -1;
    return r->is_head ? 1 : 0;
}

static int on_up_body(void *owner, const char *d, size_t n)
{
    struct conn *c = owner;
    struct req *r = c->req;
    if (r->resp_chunked) {
        write_chunk(&c->s, d, n);
    } else {
        psock_write(&c->s, d, n);
    }
    if (!c->closing)
        psock_flush(&c->s);
    arm(c, PH_RESP);
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
        up_release(u, reusable);
    if (!r->msg_done)
        r->close_after = 1; /* answered before the body was all sent */
    conn_req_end(c);
}

static void on_up_drained(void *owner)
{
    update_reading(owner);
}

/* ---- local answers ---- */

void conn_answer(struct conn *c, int status, const char *ctype, const char *extra, const void *body,
                 size_t len, enum m_decision d)
{
    struct req *r = c->req;
    if (!r || r->answered || r->resp_started || c->closing)
        return;
    r->answered = 1;
    r->status = status;
    r->mdec = d;
    if (!r->decision)
        r->decision = metrics_decision_name(d);
    if (c->up) {
        struct upconn *u = c->up;
        c->up = NULL;
        up_release(u, 0);
    }
    if (r->held_ping)
        conn_ping_release(c);
    /* A body still on its way is drained if small, else the connection
     * closes after the answer. */
    if (!r->msg_done && r->has_body &&
        (r->chunked || r->content_length > DISCARD_MAX || r->body_mode == BODY_STREAM))
        r->close_after = 1;
    if (!r->keepalive)
        r->close_after = 1;
    char hdr[512];
    int k = snprintf(hdr, sizeof(hdr), "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n%s%s%s%s%s\r\n",
                     status, http_reason(status), len, ctype ? "Content-Type: " : "",
                     ctype ? ctype : "", ctype ? "\r\n" : "", extra ? extra : "",
                     r->close_after ? "Connection: close\r\n" : "");
    uv_buf_t b[2] = {
        uv_buf_init(hdr, (unsigned)((size_t)k < sizeof(hdr) ? (size_t)k : sizeof(hdr) - 1)),
        uv_buf_init((char *)body, (unsigned)(r->is_head ? 0 : len))};
    psock_writev(&c->s, b, 2);
    psock_flush(&c->s);
    r->resp_done = 1;
    if (r->msg_done || r->close_after) {
        conn_req_end(c);
        return;
    }
    r->body_mode = BODY_DISCARD;
    conn_resume(c);
}

void conn_cut_ping(struct conn *c, int blocked)
{
    struct req *r = c->req;
    if (!r || r->resp_started || r->answered)
        return;
    struct answer a;
    r->close_after = c->w->draining;
    if (blocked) {
        answer_eas(EASQ_CMD_PING, r->dec.version, EASR_SIT_BLOCKED, &a);
        r->decision = "block";
        r->reason = "state-changed";
        conn_answer(c, a.http_status, a.content_type, NULL, a.body, a.len, M_BLOCK);
        return;
    }
    answer_ping_expired(&a);
    r->reason = c->w->draining ? "drain" : "state-changed";
    conn_answer(c, a.http_status, a.content_type, NULL, a.body, a.len, r->mdec);
}

/* ---- end of a request ---- */

static void log_request(struct conn *c)
{
    struct req *r = c->req;
    metrics_request(&c->w->m, r->dec.cmd, r->mdec);
    if (!accesslog_enabled())
        return;
    struct accesslog_rec rec = {
        .instance = c->inst->ci->name,
        .client = conn_client(c),
        .identity = r->dec.logid,
        .cmd = r->dec.cmd,
        .version = r->dec.version,
        .decision = r->decision ? r->decision : metrics_decision_name(r->mdec),
        .reason = r->reason,
        .status = r->status,
        .upstream_status = r->up_status,
        .bytes_in = r->bytes_in,
        .bytes_out = c->s.bytes_out - r->out0,
        .duration_ms = uv_now(&c->w->loop) - r->t_start,
        .client_cert = c->cert_id,
    };
    accesslog_request(&rec);
}

static void conn_req_end(struct conn *c)
{
    struct req *r = c->req;
    if (!r)
        return;
    log_request(c);
    int close_after = r->close_after || c->w->draining;
    int r_was_ping = r->dec.cmd == EASQ_CMD_PING;
    if (c->up) {
        struct upconn *u = c->up;
        c->up = NULL;
        up_release(u, 0);
    }
    free_req(c);
    head_put(&c->w->heads, c->head);
    c->head = NULL;
    if (c->closing)
        return;
    if (close_after) {
        close_graceful(c);
        return;
    }
    c->phase = PH_IDLE;
    arm(c, PH_IDLE);
    /* a keep-alive connection that carried anything but a long poll is busy:
     * its TLS buffers stay until a second passes without use */
    if (!r_was_ping)
        psock_lean(&c->s, 0);
    conn_resume(c);
}
