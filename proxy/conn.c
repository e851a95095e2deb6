/*
 * conn: the client side of a proxied request, from the first byte of a head
 * to the last byte of the answer. This file drives llhttp and applies the
 * decision point's verdicts; conn_life.c holds the connection's life
 * (accept, timers, local answers, the end of a request, close), conn_up.c
 * the upstream leg, conn_ping.c the held Pings.
 *
 * The parser is driven by conn_input/conn_pump. It pauses at two points:
 * when a head is complete (route, identity, decision; maybe read a small body
 * first) and when a message is complete (the answer must go out before the
 * next pipelined request is looked at). Everything that can happen later
 * (upstream connected, answer finished, timer fired) resumes it through
 * conn_resume, which never recurses: a pump already running picks the work up.
 */
#include "proxy/conn.h"

#include "proxy/conn_int.h"

#include "common/http.h"
#include "common/log.h"
#include "eas/wbxml.h"
#include "proxy/answer.h"
#include "proxy/decide.h"
#include "proxy/upstream.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define STASH_MAX (64 * 1024) /* bytes read ahead while the parser is paused */

static int on_msg_begin(llhttp_t *p);
static int on_url(llhttp_t *p, const char *d, size_t n);
static int on_field(llhttp_t *p, const char *d, size_t n);
static int on_value(llhttp_t *p, const char *d, size_t n);
static int on_headers_done(llhttp_t *p);
static int on_body(llhttp_t *p, const char *d, size_t n);
static int on_msg_done(llhttp_t *p);

static llhttp_settings_t req_settings;
static uv_once_t req_once = UV_ONCE_INIT;

enum pause_why { PAUSE_NONE, PAUSE_HEAD, PAUSE_MSG };

static void conn_pump(struct conn *c);
static void conn_on_head(struct conn *c);

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

void conn_parser_init(struct conn *c)
{
    uv_once(&req_once, req_init_settings);
    llhttp_init(&c->parser, HTTP_REQUEST, &req_settings);
    c->parser.data = c;
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

void conn_update_reading(struct conn *c)
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
    if (r->wbxml_bad) {
        conn_answer_wbxml_invalid(c);
        return n;
    }
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

/* The client socket's data callback (psock_cbs in conn_life.c). */
int conn_on_data(struct psock *s, const char *d, size_t n)
{
    struct conn *c = s->owner;
    c->saw_bytes = 1;
    conn_input(c, d, n);
    return c->closing;
}

static void conn_pump(struct conn *c)
{
    if (c->pumping)
        return;
    c->pumping = 1;
    while (!c->closing && !c->paused && (stash_pending(c) > 0 || c->step)) {
        c->step = 0;
        if (stash_pending(c) == 0) {
            /* A message without a body ends with its head, but llhttp says
             * so only when run again: run it on no bytes. */
            static const char none[1];
            exec(c, none, 0);
            continue;
        }
        size_t used = exec(c, c->stash + c->stash_off, stash_pending(c));
        c->stash_off += used;
    }
    if (stash_pending(c) == 0 && c->stash) {
        free(c->stash);
        c->stash = NULL;
        c->stash_len = c->stash_off = c->stash_cap = 0;
    }
    c->pumping = 0;
    conn_update_reading(c);
}

void conn_resume(struct conn *c)
{
    if (c->closing || !c->paused)
        return;
    c->step = pause_why(c) == PAUSE_HEAD && c->req && !c->req->has_body;
    c->paused = 0;
    c->pause_why = PAUSE_NONE;
    llhttp_resume(&c->parser);
    conn_pump(c);
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
    int64_t cap = conn_conf(c)->limits.max_header_size;
    if (cap <= 0 || cap > HEAD_MAX_BYTES)
        cap = HEAD_MAX_BYTES;
    c->head = head_take(&c->w->heads, (uint32_t)cap);
    if (!c->req || !c->head)
        return -1;
    c->n_requests++;
    conn_arm(c, PH_HEAD);
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
    int64_t cap = conn_conf(c)->limits.max_header_size;
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

/* ---- streamed WBXML ---- */

void conn_answer_wbxml_invalid(struct conn *c)
{
    struct req *r = c->req;
    struct answer a;
    r->close_after = 1;
    r->decision = "invalid";
    r->reason = "wbxml-invalid";
    answer_eas((enum easq_cmd)r->dec.cmd, r->dec.version, EASR_SIT_INVALID_WBXML, &a);
    conn_answer(c, a.http_status, a.content_type, NULL, a.body, a.len, M_INVALID);
}

/* The streamed body does not decode: the upstream request is cut (its
 * connection closed before the body is complete, so Exchange discards it)
 * and the client gets the protocol's error. */
int conn_wbxml_abort(struct conn *c, int err)
{
    struct req *r = c->req;
    eg_info("instance %s: %s: %s body: WBXML error at byte %llu: %s; request not forwarded",
            c->inst->ci->name, conn_client(c), easq_cmd_name((enum easq_cmd)r->dec.cmd),
            (unsigned long long)wbxml_dec_error_offset(r->vdec), wbxml_strerror(err));
    struct upconn *u = c->up;
    c->up = NULL;
    if (u)
        conn_up_put(c, u, 0);
    r->wbxml_bad = 1;
    r->err_status = 400;
    r->reason = "wbxml-invalid";
    return -1;
}

/* Decode a piece before it goes upstream; the last piece of a body of
 * known length also ends the document. */
static int check_piece(struct conn *c, const char *d, size_t n)
{
    struct req *r = c->req;
    r->body_seen += n;
    int rc = wbxml_dec_feed(r->vdec, d, n);
    if (rc == 0 && !r->chunked && r->body_seen >= r->content_length)
        rc = wbxml_dec_finish(r->vdec);
    return rc < 0 ? conn_wbxml_abort(c, rc) : 0;
}

/* A body conn_forward read before taking an upstream connection is checked
 * whole, as it would have been piece by piece had it streamed: one that
 * does not decode never reaches the server. */
static int check_whole(struct conn *c)
{
    struct req *r = c->req;
    int rc = wbxml_dec_feed(r->vdec, r->body ? r->body : "", r->body_len);
    if (rc == 0)
        rc = wbxml_dec_finish(r->vdec);
    if (rc == 0)
        return 0;
    conn_wbxml_abort(c, rc);
    conn_answer_wbxml_invalid(c);
    return -1;
}

static int no_event(void *ud, const struct wbxml_ev *ev)
{
    (void)ud;
    (void)ev;
    return 0;
}

/* Check the body as it streams when the protocol says it is WBXML. */
static void check_streamed(struct conn *c)
{
    struct req *r = c->req;
    if (r->route != RT_EAS || !r->has_body || r->body_mode == BODY_BUFFER ||
        !decide_body_is_wbxml(&r->dec, c->head))
        return;
    r->vdec = malloc(sizeof(*r->vdec));
    if (!r->vdec)
        return;
    wbxml_dec_init(r->vdec, no_event, NULL);
    wbxml_dec_filter(r->vdec, 0, 0, 0);
}

static int on_body(llhttp_t *p, const char *d, size_t n)
{
    struct conn *c = p->data;
    struct req *r = c->req;
    r->bytes_in += n;
    switch (r->body_mode) {
    case BODY_BUFFER: {
        int64_t max = conn_conf(c)->limits.max_body_read;
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
        if (r->vdec && check_piece(c, d, n) < 0)
            return -1;
        if (r->chunked)
            conn_write_chunk(&c->up->s, d, n);
        else
            psock_write(&c->up->s, d, n);
        psock_flush(&c->up->s);
        conn_arm(c, PH_BODY);
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

void conn_send_continue(struct conn *c)
{
    struct req *r = c->req;
    if (!r->expect_continue || !r->has_body)
        return; /* a request without a body waits for nothing */
    r->expect_continue = 0;
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    psock_send(&c->s, cont, sizeof(cont) - 1);
}

/* Read the (small) body before deciding. */
void conn_read_body_first(struct conn *c)
{
    struct req *r = c->req;
    r->body_mode = BODY_BUFFER;
    if (r->has_body && r->content_length > (uint64_t)conn_conf(c)->limits.max_body_read) {
        r->close_after = 1;
        r->reason = "body-too-large";
        conn_answer(c, 413, "text/plain", NULL, "payload too large\n", 18, M_LIMIT);
        return;
    }
    conn_send_continue(c);
    conn_arm(c, PH_BODY);
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
void conn_decision_final(struct conn *c)
{
    struct req *r = c->req;
    worker_obj_put(c->w->free_idents, &c->w->n_free_idents, r->dec.ident);
    r->dec.ident = NULL;
    free(r->dec.facts);
    r->dec.facts = NULL;
    free(r->dec.cert_user);
    r->dec.cert_user = NULL;
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
        .cert_id = c->cert_id,
        .client = conn_client(c),
        .instance = c->inst->ci->name,
        .conn_user = c->conn_user,
        .rs = c->w->rs,
    };
}

static void lookup(struct conn *c, struct decide_in *in);

/* The budgets and the failed-login blocks (budget.h), for an ActiveSync
 * request the policy lets through: once per request, at the last moment,
 * so that what the proxy answers itself (blocked, mismatched users) costs
 * no budget. 1 when the request was answered 503 instead. */
static int over_budget(struct conn *c)
{
    struct req *r = c->req;
    const struct easq_ident *id = r->dec.ident;
    const struct pol_policy *pol = r->snap->pol;
    if (r->route != RT_EAS || !id || !pol || !c->w->budget || r->bm.checked)
        return 0;
    char user[2 * EASQ_STR_MAX + 2] = "";
    /* Only a user Exchange will authenticate is counted: a name claimed in
     * the query alone would let anyone spend another user's budget. */
    if (r->dec.trust == POL_ID_VERIFIED)
        easq_user_full(id, user, sizeof(user));
    bool cred =
        id->cred == EASQ_CRED_BASIC || id->cred == EASQ_CRED_NTLM || id->cred == EASQ_CRED_BEARER;
    budget_mark_set(&r->bm, user, r->dec.devid_norm, conn_client(c), r->bm.known, cred);
    r->bm.checked = true;
    struct budget_verdict bv;
    budget_take(c->w->budget, &pol->abuse, &r->bm, r->dec.cmd, id->user_agent,
                (int64_t)uv_now(&c->w->loop), &bv);
    if (!bv.refused)
        return 0;
    char extra[96];
    long long secs = (long long)((bv.retry_ms + 999) / 1000);
    snprintf(extra, sizeof(extra), "Retry-After: %lld\r\n%s%s%s", secs > 0 ? secs : 1,
             bv.throttle ? "X-MS-ASThrottle: " : "", bv.throttle ? bv.throttle : "",
             bv.throttle ? "\r\n" : "");
    conn_decision_final(c);
    r->decision = "throttle";
    r->reason = bv.reason;
    conn_answer(c, 503, "text/plain", extra, "throttled\n", 10, M_THROTTLE);
    return 1;
}

/* Apply v, the verdict of a step that read the request as in (a next step
 * that follows at once reads it the same way). */
static void apply(struct conn *c, struct verdict *v, struct decide_in *in)
{
    struct req *r = c->req;
    if (v->decision)
        r->decision = v->decision;
    if (v->reason)
        r->reason = v->reason;
    switch (v->kind) {
    case VERDICT_ANSWER:
        conn_decision_final(c);
        /* Every 503 of the proxy's own says when to come back. */
        conn_answer(c, v->status, v->content_type,
                    v->status == 503 && !v->extra ? "Retry-After: 5\r\n" : v->extra, v->body,
                    v->len, v->mdec);
        break;
    case VERDICT_FORWARD:
        if (over_budget(c))
            break;
        conn_decision_final(c);
        if (v->strip_policy_key)
            head_drop(c->head, "X-MS-PolicyKey");
        r->mdec = v->mdec;
        check_streamed(c);
        conn_forward(c);
        break;
    case VERDICT_READ_BODY:
        conn_read_body_first(c);
        break;
    case VERDICT_LOOKUP:
        lookup(c, in);
        break;
    }
    verdict_free(v);
}

/* in: the request as the step before read it, or NULL (a later callback). */
static void decide_state(struct conn *c, const struct rstore_result *res, struct decide_in *in)
{
    struct decide_in own;
    struct verdict v;
    if (!in) {
        decide_in_of(c, &own);
        in = &own;
    }
    in->now_ms = (int64_t)uv_now(&c->w->loop);
    /* A device the registry knows has failed logins counted apart. */
    c->req->bm.known = res && res->status == RSTORE_FOUND;
    decide_eas_state(&c->req->dec, in, res, &v);
    apply(c, &v, in);
}

static void on_lookup(struct rstore_wait *wt, void *arg, const struct rstore_result *res)
{
    struct conn *c = arg;
    c->req->lookup_pending = 0;
    decide_state(c, res, NULL);
}

static void lookup(struct conn *c, struct decide_in *in);

static void on_enr_lookup(struct rstore_wait *wt, void *arg, const struct rstore_result *res)
{
    struct conn *c = arg;
    c->req->lookup_pending = 0;
    decide_enr_state(&c->req->dec, res);
    if (c->req->dec.enr_looked)
        lookup(c, NULL);
    else
        decide_state(c, NULL, NULL); /* fails closed */
}

/* The device's state: from the cache now, or from Redis later; for a
 * portal certificate its enrollment's state first. */
static void lookup(struct conn *c, struct decide_in *in)
{
    struct req *r = c->req;
    if (c->w->rs && r->dec.enr_id[0] && !r->dec.enr_looked) {
        struct rstore_result res;
        int rc = rstore_lookup_enrollment(c->w->rs, r->dec.enr_id, strlen(r->dec.enr_id), &res,
                                          &r->wait, on_enr_lookup, c);
        if (rc == RSTORE_PENDING) {
            r->lookup_pending = 1;
            return;
        }
        decide_enr_state(&r->dec, rc == 0 ? &res : NULL);
        if (!r->dec.enr_looked) {
            decide_state(c, NULL, in); /* fails closed */
            return;
        }
    }
    if (c->w->rs && r->dec.devid_norm[0]) {
        struct rstore_result res;
        int rc = rstore_lookup(c->w->rs, r->dec.devid_norm, strlen(r->dec.devid_norm), &res,
                               &r->wait, on_lookup, c);
        if (rc == RSTORE_PENDING) {
            r->lookup_pending = 1;
            return;
        }
        if (rc == 0) {
            decide_state(c, &res, in);
            return;
        }
    }
    decide_state(c, NULL, in);
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
    in.cert = conn_peer_cert(c);
    decide_eas_head(&r->dec, &in, &v);
    apply(c, &v, &in);
}

static void decide_body(struct conn *c)
{
    struct decide_in in;
    struct verdict v;
    decide_in_of(c, &in);
    decide_eas_body(&c->req->dec, &in, &v);
    apply(c, &v, &in);
}

/* ---- route, and the end of a message ---- */

static void refuse(struct conn *c, int status, const char *reason)
{
    c->req->close_after = 1;
    c->req->reason = reason;
    conn_answer(c, status, "text/plain", NULL, http_reason(status), strlen(http_reason(status)),
                status == 400 ? M_INVALID : M_DENIED);
}

/* What Exchange would read differently from the proxy is refused before any
 * route (docs/security.md, "Request target"): HTTP/0.9-style and unknown
 * versions, fragments and percent-encoded parameter names (400), OPTIONS
 * with a body (400), a missing or second Host on HTTP/1.1 (400), a Host or
 * absolute-form authority outside the instance's server_names (421). An
 * absolute-form target goes on in origin form: HTTP.sys would route by its
 * authority, which the proxy does not forward. 1 when answered. */
static int target_refused(struct conn *c)
{
    struct req *r = c->req;
    struct head *h = c->head;
    llhttp_t *p = &c->parser;
    if (p->http_major != 1 || p->http_minor > 1) {
        refuse(c, 400, "http-version");
        return 1;
    }
    if (r->method == HTTP_OPTIONS && r->has_body) {
        refuse(c, 400, "options-body");
        return 1;
    }
    struct route_target t;
    int rc = route_target_check(h->data + h->url_off, h->url_len, &t);
    if (rc < 0) {
        refuse(c, 400, route_target_reason(rc));
        return 1;
    }
    size_t hl = 0;
    const char *host = NULL;
    int n_host = 0;
    for (uint32_t i = 0; i < h->n; i++)
        if (head_kind(h, i) & HDR_HOST) {
            if (n_host++ == 0) {
                host = h->data + h->h[i].v_off;
                hl = h->h[i].v_len;
            }
        }
    if (n_host > 1 || (r->http11 && !host)) {
        refuse(c, 400, n_host > 1 ? "host-twice" : "host-missing");
        return 1;
    }
    const struct yt_strv *names = &c->inst->ci->server_names;
    if (names->n > 0 &&
        ((!host && !t.authority) || (host && !route_host_allowed(host, hl, names->v, names->n)) ||
         (t.authority && !route_host_allowed(t.authority, t.authority_len, names->v, names->n)))) {
        refuse(c, 421, "misdirected-request");
        return 1;
    }
    h->url_off = (uint16_t)(h->url_off + t.origin_off);
    h->url_len = (uint16_t)(h->url_len - t.origin_off);
    return 0;
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
    if (c->w->draining || conn_at_limit(c))
        r->close_after = 1;

    if (c->reject) {
        r->close_after = 1;
        r->reason = c->reject == 1 ? "max-connections" : "max-connections-per-client";
        conn_answer(c, 503, "text/plain", "Retry-After: 5\r\n", "busy\n", 5, M_LIMIT);
        return;
    }
    if (target_refused(c))
        return;
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

void conn_on_msg(struct conn *c)
{
    struct req *r = c->req;
    if (r->answered) {
        if (r->resp_done)
            conn_req_end(c);
        return;
    }
    switch (r->body_mode) {
    case BODY_BUFFER:
        if (r->fwd_body) {
            if (r->vdec && check_whole(c) < 0)
                return;
            conn_up_body_in(c);
            return;
        }
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
        conn_up_request_done(c);
        return;
    }
}
