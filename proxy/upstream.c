/*
 * upstream: pick a url, connect or reuse, parse the response and hand it to
 * the client side rewritten. Failure handling lives here because only this
 * side knows whether a failure happened before anything was sent.
 */
#include "proxy/upstream.h"

#include "common/log.h"
#include "connectors/rstore.h"
#include "proxy/metrics.h"
#include "proxy/worker.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

static int up_on_data(struct psock *s, const char *d, size_t n);
static int up_on_ready(struct psock *s);
static void up_on_end(struct psock *s, int err, const char *why);
static void up_on_drained(struct psock *s);
static void up_on_closed(struct psock *s);

static const struct psock_cbs up_cbs = {up_on_data,    up_on_ready,  up_on_end,
                                        up_on_drained, up_on_closed, NULL};

static int rp_begin(llhttp_t *p);
static int rp_status(llhttp_t *p, const char *d, size_t n);
static int rp_field(llhttp_t *p, const char *d, size_t n);
static int rp_value(llhttp_t *p, const char *d, size_t n);
static int rp_headers_done(llhttp_t *p);
static int rp_body(llhttp_t *p, const char *d, size_t n);
static int rp_done(llhttp_t *p);

static llhttp_settings_t rp_settings;
static uv_once_t rp_once = UV_ONCE_INIT;

static void rp_init_settings(void)
{
    llhttp_settings_init(&rp_settings);
    rp_settings.on_message_begin = rp_begin;
    rp_settings.on_status = rp_status;
    rp_settings.on_header_field = rp_field;
    rp_settings.on_header_value = rp_value;
    rp_settings.on_headers_complete = rp_headers_done;
    rp_settings.on_body = rp_body;
    rp_settings.on_message_complete = rp_done;
}

int up_worker_init(struct worker *w)
{
    uv_once(&rp_once, rp_init_settings);
    size_t total = 0;
    w->up_base = calloc(w->px->n_inst, sizeof(*w->up_base));
    if (!w->up_base)
        return -1;
    for (size_t i = 0; i < w->px->n_inst; i++) {
        w->up_base[i] = total;
        total += w->px->inst[i].ci->upstream.n_urls;
    }
    w->ups = calloc(total ? total : 1, sizeof(*w->ups));
    if (!w->ups)
        return -1;
    for (size_t i = 0; i < w->px->n_inst; i++) {
        for (size_t k = 0; k < w->px->inst[i].ci->upstream.n_urls; k++) {
            struct up_url *u = &w->ups[w->up_base[i] + k];
            u->inst = &w->px->inst[i];
            u->idx = (int)k;
        }
    }
    return 0;
}

static size_t up_total(struct worker *w)
{
    size_t n = 0;
    for (size_t i = 0; i < w->px->n_inst; i++)
        n += w->px->inst[i].ci->upstream.n_urls;
    return n;
}

static void uc_close(struct upconn *uc)
{
    if (uc->closing)
        return;
    uc->closing = 1;
    if (uc->in_pool) {
        struct up_url *u = uc->u;
        for (struct upconn **pp = &u->idle; *pp; pp = &(*pp)->next_idle) {
            if (*pp == uc) {
                *pp = uc->next_idle;
                u->n_idle--;
                break;
            }
        }
        uc->in_pool = 0;
    }
    uv_timer_stop(&uc->timer);
    psock_close(&uc->s);
}

void up_worker_close(struct worker *w)
{
    size_t n = up_total(w);
    for (size_t i = 0; i < n; i++)
        while (w->ups[i].idle)
            uc_close(w->ups[i].idle);
}

void up_worker_free(struct worker *w)
{
    size_t n = w->ups ? up_total(w) : 0;
    for (size_t i = 0; i < n; i++)
        tls_session_free(&w->ups[i].session);
    free(w->ups);
    free(w->up_base);
    w->ups = NULL;
    w->up_base = NULL;
}

void up_snap_changed(struct worker *w, const struct snap *old)
{
    if (!w->ups)
        return;
    for (size_t i = 0; i < w->px->n_inst && i < old->n_tls; i++) {
        if (old->tls[i].client == WORKER_TLS(w, &w->px->inst[i])->client)
            continue;
        for (size_t k = 0; k < w->px->inst[i].ci->upstream.n_urls; k++)
            tls_session_free(&w->ups[w->up_base[i] + k].session);
    }
}

/*
 * The core hears, through the sightings stream, when this worker can reach
 * none of an instance's urls and when it reaches one again, so that admins
 * are told of a mail server outage (docs/notifications.md). Only the
 * crossings are reported, once per worker: a dead server costs one entry.
 */
static void report_upstream(struct worker *w, const struct up_url *u, const char *state,
                            const char *why)
{
    if (!w->rs)
        return;
    const struct conf_upstream *cu = &u->inst->ci->upstream;
    const char *f[] = {RSTORE_SF_LISTENER,   u->inst->ci->name,  RSTORE_SF_URL,
                       cu->urls[u->idx].url, RSTORE_SF_UP_STATE, state,
                       RSTORE_SF_ERROR,      why ? why : ""};
    rstore_sighting(w->rs, RSTORE_SIGHT_UPSTREAM, RSTORE_UPSTREAM_DEVICE,
                    strlen(RSTORE_UPSTREAM_DEVICE), f, sizeof(f) / sizeof(f[0]));
}

static void mark_down(struct upconn *uc, const char *why)
{
    struct up_url *u = uc->u;
    struct worker *w = uc->w;
    const struct conf_upstream *cu = &u->inst->ci->upstream;
    int64_t down_ms = cu->down_ms > 0 ? cu->down_ms : 10000;
    if (u->down_until == 0 || u->fails == 0)
        eg_warn("upstream %s (instance %s) failed: %s; marked down for %lld ms",
                cu->urls[u->idx].url, u->inst->ci->name, why, (long long)down_ms);
    u->fails++;
    u->down_until = uv_now(&w->loop) + (uint64_t)down_ms;
    M_ADD(w->m.upstream_errors, 1);
    struct up_url *first = &w->ups[w->up_base[u->inst->index]];
    uint64_t now = uv_now(&w->loop);
    bool all = true;
    for (size_t i = 0; i < cu->n_urls && all; i++)
        all = first[i].down_until > now;
    if (all && !first->reported_down) {
        first->reported_down = 1;
        report_upstream(w, u, RSTORE_UP_DOWN, why);
    }
}

static void uc_timer_closed(uv_handle_t *h)
{
    struct upconn *uc = h->data;
    uc->timer_closed = 1;
    if (uc->handle_closed)
        free(uc);
}

static void up_on_closed(struct psock *s)
{
    struct upconn *uc = s->owner;
    head_put(&uc->w->heads, uc->rh);
    uc->rh = NULL;
    uc->handle_closed = 1;
    uv_close((uv_handle_t *)&uc->timer, uc_timer_closed);
}

static void uc_fail(struct upconn *uc, int err, const char *why)
{
    void *owner = uc->owner;
    int before_ready = !uc->s.ready;
    if (before_ready)
        mark_down(uc, why);
    else if (!uc->reused && !uc->resp_started)
        M_ADD(uc->w->m.upstream_errors, 1);
    uc->owner = NULL;
    uc_close(uc);
    if (!owner)
        return;
    enum up_failure f = before_ready ? UP_FAIL_CONNECT : uc->reused ? UP_FAIL_STALE : UP_FAIL_SENT;
    if (uc->resp_started) {
        eg_info("upstream %s closed mid-response: %s",
                uc->u->inst->ci->upstream.urls[uc->u->idx].url, why);
        f = UP_FAIL_RESPONSE;
    }
    uc->ops->failed(owner, f, why);
}

static void uc_on_timer(uv_timer_t *t)
{
    struct upconn *uc = t->data;
    if (uc->in_pool) {
        uc_close(uc);
        return;
    }
    uc_fail(uc, UV_ETIMEDOUT, "connect timeout");
}

/* Has the server ended idle uc already, though the loop has not read the
 * end yet? A pooled connection must not say a byte (a TLS close_notify is
 * one too), so any answer but "nothing yet" means it is gone. One recv per
 * reuse, paid only for urls seen closing idle connections silently. */
static int pool_dead(struct upconn *uc)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&uc->s.tcp, &fd) != 0)
        return 1;
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

/* A pooled connection of u that is still open, or NULL. */
static struct upconn *pool_take(struct up_url *u)
{
    while (u->idle) {
        struct upconn *uc = u->idle;
        u->idle = uc->next_idle;
        u->n_idle--;
        uc->in_pool = 0;
        uv_timer_stop(&uc->timer);
        if (uc->s.closing)
            continue;
        if (u->silent_close && pool_dead(uc)) {
            uc_close(uc);
            continue;
        }
        uc->reused = 1;
        uc->resp_started = uc->resp_done = 0;
        return uc;
    }
    return NULL;
}

/* A new connection to u in *out, connecting: 0; 1 when the connect failed
 * (u is marked down: try the next url); -1 without memory. */
static int connect_new(struct worker *w, struct up_url *u, struct upconn **out)
{
    const struct instance *inst = u->inst;
    struct upconn *uc = calloc(1, sizeof(*uc));
    if (!uc)
        return -1;
    uc->w = w;
    uc->u = u;
    if (psock_init(&uc->s, &w->io, &up_cbs, uc) < 0) {
        free(uc);
        return -1;
    }
    uv_timer_init(&w->loop, &uc->timer);
    uc->timer.data = uc;
    llhttp_init(&uc->parser, HTTP_RESPONSE, &rp_settings);
    uc->parser.data = uc;
    uc->connecting = 1;
    const struct conf_url *url = &inst->ci->upstream.urls[u->idx];
    int r = psock_connect(&uc->s, (const struct sockaddr *)&inst->up_addr[u->idx],
                          url->tls ? WORKER_TLS(w, inst)->client : NULL, url->host, &u->session);
    if (r < 0) {
        mark_down(uc, uv_strerror(r));
        uc_close(uc);
        return 1;
    }
    M_ADD(w->m.upstream_connects, 1);
    int64_t connect_ms = w->snap->conf->proxy.timeouts.upstream_connect_ms;
    uv_timer_start(&uc->timer, uc_on_timer, connect_ms > 0 ? (uint64_t)connect_ms : 5000, 0);
    *out = uc;
    return 0;
}

int up_acquire(struct worker *w, const struct instance *inst, const struct up_owner *ops,
               void *owner, int fresh, struct upconn **out)
{
    size_t base = w->up_base[inst->index];
    size_t n = inst->ci->upstream.n_urls;
    uint64_t now = uv_now(&w->loop);
    unsigned start = w->ups[base].rr++;

    for (size_t i = 0; i < n; i++) {
        struct up_url *u = &w->ups[base + (start + i) % n];
        /* A lone url is always tried (as nginx does): skipping it would turn
         * one failed connect into down_time of 503s for everyone. */
        if (u->down_until > now && n > 1)
            continue;
        struct upconn *uc = fresh ? NULL : pool_take(u);
        int rc = UP_POOLED;
        if (!uc) {
            int e = connect_new(w, u, &uc);
            if (e < 0)
                return -1;
            if (e > 0)
                continue;
            rc = UP_CONNECTING;
        }
        uc->ops = ops;
        uc->owner = owner;
        *out = uc;
        return rc;
    }
    return -1;
}

static int up_on_ready(struct psock *s)
{
    struct upconn *uc = s->owner;
    uc->connecting = 0;
    uv_timer_stop(&uc->timer);
    uc->u->fails = 0;
    uc->u->down_until = 0;
    struct up_url *first = &uc->w->ups[uc->w->up_base[uc->u->inst->index]];
    if (first->reported_down) {
        first->reported_down = 0;
        report_upstream(uc->w, uc->u, RSTORE_UP_UP, NULL);
    }
    if (!uc->owner) {
        uc_close(uc);
        return 1;
    }
    uc->ops->ready(uc->owner, uc);
    return uc->s.closing;
}

static void up_on_end(struct psock *s, int err, const char *why)
{
    struct upconn *uc = s->owner;
    if (uc->in_pool || !uc->owner) {
        /* The server ends idle connections without saying so beforehand
         * (SOGo: after every answer): look before reusing one of its. */
        if (uc->in_pool)
            uc->u->silent_close = 1;
        uc_close(uc);
        return;
    }
    if (uc->reused && !uc->resp_started)
        uc->u->silent_close = 1;
    if (uc->resp_started && !uc->resp_done && err == 0) {
        /* A body delimited by the end of the connection ends here. */
        llhttp_finish(&uc->parser);
        if (uc->resp_done) {
            uc->skip_body = 1; /* the connection is gone: never pooled */
            uc->ops->done(uc->owner);
            return;
        }
    }
    uc_fail(uc, err ? err : UV_ECONNRESET, why);
}

static void up_on_drained(struct psock *s)
{
    struct upconn *uc = s->owner;
    if (uc->owner)
        uc->ops->drained(uc->owner);
}

static int up_on_data(struct psock *s, const char *d, size_t n)
{
    struct upconn *uc = s->owner;
    if (!uc->owner) {
        /* Bytes on an idle pooled connection: the server is confused. */
        uc_close(uc);
        return 1;
    }
    llhttp_errno_t e = llhttp_execute(&uc->parser, d, n);
    if (uc->s.closing)
        return 1;
    if (e == HPE_OK)
        return 0;
    if (e == HPE_PAUSED && uc->resp_done) {
        const char *pos = llhttp_get_error_pos(&uc->parser);
        int clean = pos == d + n;
        uc->skip_body = !clean; /* bytes after the answer: never reuse */
        uc->ops->done(uc->owner);
        return uc->s.closing;
    }
    eg_info("upstream %s: bad response: %s", uc->u->inst->ci->upstream.urls[uc->u->idx].url,
            llhttp_errno_name(e));
    uc_fail(uc, UV_EPROTO, "malformed response");
    return 1;
}

/* uc answered and may carry another request: 1 (its parser is reset for
 * the next response), or 0. */
static int up_reset(struct upconn *uc)
{
    struct worker *w = uc->w;
    if (uc->skip_body || w->draining || uc->s.closing || !llhttp_should_keep_alive(&uc->parser))
        return 0;
    llhttp_init(&uc->parser, HTTP_RESPONSE, &rp_settings);
    uc->parser.data = uc;
    head_put(&w->heads, uc->rh);
    uc->rh = NULL;
    uc->resp_started = uc->resp_done = 0;
    uc->status = 0;
    return 1;
}

void up_release(struct upconn *uc, int reusable)
{
    uc->owner = NULL;
    int pool_max = uc->u->inst->ci->upstream.pool_size; /* 0: no pool */
    if (!reusable || uc->u->n_idle >= pool_max || !up_reset(uc)) {
        uc_close(uc);
        return;
    }
    uc->next_idle = uc->u->idle;
    uc->u->idle = uc;
    uc->u->n_idle++;
    uc->in_pool = 1;
    psock_lean(&uc->s, 0); /* pooled = busy: keep TLS buffers until a sweep */
    psock_read_start(&uc->s);
    int64_t idle = uc->u->inst->ci->upstream.pool_idle_ms;
    uv_timer_start(&uc->timer, uc_on_timer, idle > 0 ? (uint64_t)idle : 60000, 0);
}

int up_keep(struct upconn *uc)
{
    if (!up_reset(uc))
        return -1;
    uc->reused = 1;
    psock_read_start(&uc->s); /* an end or stray bytes reach the owner as a failure */
    return 0;
}

void up_request_sent(struct upconn *uc)
{
    uc->t_sent_us = uv_hrtime() / 1000;
}

void up_pause(struct upconn *uc)
{
    psock_read_stop(&uc->s);
}

void up_resume(struct upconn *uc)
{
    if (!uc->in_pool && !uc->s.closing)
        psock_read_start(&uc->s);
}

/* ---- response parsing ---- */

static int rp_begin(llhttp_t *p)
{
    struct upconn *uc = p->data;
    head_put(&uc->w->heads, uc->rh);
    uc->trailer_bytes = 0;
    uc->rh = head_take(&uc->w->heads, HEAD_RESP_CAP);
    return uc->rh ? 0 : -1;
}

static int rp_status(llhttp_t *p, const char *d, size_t n)
{
    struct upconn *uc = p->data;
    return head_url(uc->rh, d, n);
}

/* Fields after the response head are a chunked body's trailer. The proxy
 * frames the client's answer itself, so they are dropped, and counted:
 * an endless trailer ends the connection. */
static int rp_trailer(struct upconn *uc, size_t n)
{
    uc->trailer_bytes += (uint32_t)n;
    return uc->trailer_bytes > HEAD_MAX_BYTES ? -1 : 0;
}

static int rp_field(llhttp_t *p, const char *d, size_t n)
{
    struct upconn *uc = p->data;
    if (!uc->rh)
        return rp_trailer(uc, n);
    return head_field(uc->rh, d, n);
}

static int rp_value(llhttp_t *p, const char *d, size_t n)
{
    struct upconn *uc = p->data;
    if (!uc->rh)
        return rp_trailer(uc, n);
    return head_value(uc->rh, d, n);
}

static int rp_headers_done(llhttp_t *p)
{
    struct upconn *uc = p->data;
    int status = p->status_code;
    if (status >= 100 && status < 200) {
        /* Interim answers (we never forward Expect) are dropped. */
        if (status == 101)
            return -1;
        return 0;
    }
    if (!uc->owner)
        return -1;
    uc->resp_started = 1;
    uc->status = status;
    if (uc->t_sent_us)
        metrics_latency(&uc->w->m, uv_hrtime() / 1000 - uc->t_sent_us);
    int has_len = (p->flags & F_CONTENT_LENGTH) && !(p->flags & F_CHUNKED);
    int rc = uc->ops->head(uc->owner, status, uc->rh, has_len);
    head_put(&uc->w->heads, uc->rh);
    uc->rh = NULL;
    return rc < 0 || uc->s.closing ? -1 : rc;
}

static int rp_body(llhttp_t *p, const char *d, size_t n)
{
    struct upconn *uc = p->data;
    if (!uc->owner)
        return -1;
    int congested = uc->ops->body(uc->owner, d, n);
    if (uc->s.closing)
        return -1;
    if (uc->owner && congested)
        psock_read_stop(&uc->s);
    return 0;
}

static int rp_done(llhttp_t *p)
{
    struct upconn *uc = p->data;
    if (!uc->resp_started)
        return 0; /* an interim 1xx answer */
    uc->resp_done = 1;
    return HPE_PAUSED;
}
