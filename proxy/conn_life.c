/*
 * conn_life: a client connection's life. Accept and the connection limits,
 * the timer that measures each phase, the TLS and socket callbacks, the
 * answers the proxy gives itself, the end of each request (metrics and the
 * access log) and close.
 *
 * Memory is released in one place, c_on_closed, after libuv has let go of
 * the handles; callbacks may close the connection and return safely.
 */
#include "proxy/conn.h"

#include "proxy/conn_int.h"

#include "common/http.h"
#include "common/log.h"
#include "proxy/accesslog.h"
#include "proxy/answer.h"
#include "proxy/certbind.h"
#include "proxy/limits.h"
#include "proxy/upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DISCARD_MAX (1024 * 1024) /* body drained after a local answer, else close */
#define CLOSE_LINGER_MS 5000      /* a closing connection's last bytes may take this long */

static int c_on_ready(struct psock *s);
static void c_on_end(struct psock *s, int err, const char *why);
static void c_on_drained(struct psock *s);
static void c_on_closed(struct psock *s);
static int c_on_proxied(struct psock *s, const struct pp_info *info);
static const struct psock_cbs client_cbs = {conn_on_data, c_on_ready,  c_on_end,
                                            c_on_drained, c_on_closed, c_on_proxied};

static void on_timer(uv_timer_t *t);

/* ---- life cycle ---- */

/* Count the connection against the limits, by its client address. */
static void admit(struct conn *c)
{
    struct worker *w = c->w;
    const struct conf_limits *lim = &conn_conf(c)->limits;
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
    c->t_born = uv_now(&w->loop);
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    else
        w->conns_tail = c;
    w->conns = c;
    w->n_conns++;
    M_ADD(w->m.open_conns, 1);
    M_ADD(w->m.conns_total, 1);
    conn_parser_init(c);

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
    conn_arm(c, tls ? PH_HANDSHAKE : PH_HEAD);
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
    free(r->dec.ntlm_user);
    decide_report_drop(&r->dec);
    free(r->vdec);
    free(r->body);
    conn_decision_final(c);
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
        if (c->up == c->pinned)
            c->pinned = NULL;
        up_release(c->up, 0);
        c->up = NULL;
    }
    if (c->pinned) {
        up_release(c->pinned, 0); /* a private connection goes with its client */
        c->pinned = NULL;
    }
    free(c->conn_user);
    c->conn_user = NULL;
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
    else
        w->conns_tail = c->prev;
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
                conn_up_put(c, u, 0);
            conn_req_end(c);
        }
    }
    /* Also ends a graceful close still waiting for its last bytes. */
    uv_timer_stop(&c->timer);
    if (c->up) {
        struct upconn *u = c->up;
        c->up = NULL;
        conn_up_put(c, u, 0);
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

void conn_arm(struct conn *c, enum cphase ph)
{
    const struct conf_timeouts *t = &conn_conf(c)->timeouts;
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

/* ---- socket callbacks ---- */

X509 *conn_peer_cert(const struct conn *c)
{
    return c->s.tls ? tls_conn_peer_cert(c->s.tls) : NULL;
}

static int c_on_ready(struct psock *s)
{
    struct conn *c = s->owner;
    X509 *x = conn_peer_cert(c);
    /* The handshake was checked against the CRL of its start; one replaced
     * since (and already swept by conn_revoke_check) must not miss it. */
    if (x && tls_ctx_revoked(WORKER_TLS(c->w, c->inst)->server, x)) {
        eg_info("instance %s: connection from %s closed: certificate revoked", c->inst->ci->name,
                c->ip);
        conn_close(c);
        return 1;
    }
    if (x)
        c->cert_id = certbind_summary(x);
    if (c->phase == PH_HANDSHAKE)
        conn_arm(c, PH_HEAD); /* the first request's head, from now */
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
        conn_up_put(c, u, 0);
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
    r->close_after = c->w->draining || c->retire;
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

/* ---- connection limits and revocation ---- */

int conn_at_limit(const struct conn *c)
{
    const struct conf_proxy *cp = conn_conf(c);
    int64_t age = cp->timeouts.max_connection_age_ms;
    int64_t max = cp->limits.max_requests_per_connection;
    return c->retire || (max > 0 && c->n_requests >= (uint64_t)max) ||
           (age > 0 && uv_now(&c->w->loop) - c->t_born >= (uint64_t)age);
}

/* c is done after what it is doing now. A held Ping is answered first; a
 * connection between requests closes now; a request in flight ends with
 * Connection: close, or (revoked: its certificate no longer counts) is cut. */
static void conn_retire(struct conn *c, int revoked)
{
    if (c->closing)
        return;
    c->retire = 1;
    struct req *r = c->req;
    if (r && r->held_ping && !r->answered && !r->resp_started) {
        conn_cut_ping(c, 0); /* closes after the answer: c->retire */
        return;
    }
    if (!r) {
        if (revoked)
            conn_close(c);
        else
            close_graceful(c);
        return;
    }
    r->close_after = 1;
    if (revoked && !(r->answered && r->resp_done))
        conn_close(c);
}

void conn_sweep_age(struct worker *w)
{
    int64_t age = w->snap->conf->proxy.timeouts.max_connection_age_ms;
    if (age <= 0)
        return;
    uint64_t now = uv_now(&w->loop);
    /* Oldest first: the walk stops at the first connection still young. */
    for (struct conn *c = w->conns_tail; c && now - c->t_born >= (uint64_t)age;) {
        struct conn *older = c->prev; /* c may close now; it is freed later */
        /* A Ping that went upstream after its connection was retired is
         * held now: it is answered too. */
        struct req *r = c->req;
        if (!c->closing && (!c->retire || (r && r->held_ping && !r->answered)))
            conn_retire(c, 0);
        c = older;
    }
}

void conn_revoke_check(struct worker *w)
{
    for (struct conn *c = w->conns; c;) {
        struct conn *next = c->next;
        X509 *x = c->cert_id && !c->closing ? conn_peer_cert(c) : NULL;
        if (x && tls_ctx_revoked(WORKER_TLS(w, c->inst)->server, x)) {
            eg_info("instance %s: connection from %s closed: its client certificate (%s) was "
                    "revoked",
                    c->inst->ci->name, c->ip, c->cert_id);
            conn_retire(c, 1);
        }
        c = next;
    }
}

/* ---- end of a request ---- */

static void log_request(struct conn *c)
{
    struct req *r = c->req;
    metrics_request(&c->w->m, c->inst->index, r->dec.cmd, r->mdec);
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

void conn_req_end(struct conn *c)
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
        conn_up_put(c, u, 0);
        close_after = close_after || r->close_after;
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
    conn_arm(c, PH_IDLE);
    /* a keep-alive connection that carried anything but a long poll is busy:
     * its TLS buffers stay until a second passes without use */
    if (!r_was_ping)
        psock_lean(&c->s, 0);
    conn_resume(c);
}
