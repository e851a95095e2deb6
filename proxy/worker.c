/*
 * worker: the loop thread. Cross-thread requests (new snapshot, drain, stop)
 * arrive as flags under px->lock plus an uv_async wake-up; the worker acts on
 * them on its own thread, so no connection state is ever shared.
 */
#include "proxy/worker.h"

#include "common/log.h"
#include "connectors/rstore.h"
#include "proxy/conn.h"
#include "proxy/upstream.h"

#include <stdlib.h>
#include <string.h>

#define WORKER_BACKLOG 511

void *worker_obj_take(void **pool, int *n, size_t size)
{
    if (*n > 0)
        return pool[--*n];
    return malloc(size);
}

void worker_obj_put(void **pool, int *n, void *p)
{
    if (!p)
        return;
    if (*n < WORKER_FREE_OBJS)
        pool[(*n)++] = p;
    else
        free(p);
}

uint64_t worker_now_ms(struct worker *w)
{
    return uv_now(&w->loop);
}

void worker_post(struct worker *w)
{
    /* Under the lock: once the worker has closed its async handle (end of
     * drain) a late signal must not touch it. */
    pthread_mutex_lock(&w->px->lock);
    if (w->wake_open)
        uv_async_send(&w->wake);
    pthread_mutex_unlock(&w->px->lock);
}

/* ---- held Pings by DeviceId ---- */

static uint32_t devid_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

void worker_ping_add(struct worker *w, struct conn *c)
{
    struct req *r = c->req;
    if (!r || r->held_ping || !r->dec.devid_norm[0] || !w->pings)
        return;
    r->ping_hash = devid_hash(r->dec.devid_norm) % WORKER_PING_BUCKETS;
    r->ping_prev = NULL;
    r->ping_next = w->pings[r->ping_hash];
    if (r->ping_next)
        r->ping_next->req->ping_prev = c;
    w->pings[r->ping_hash] = c;
    r->held_ping = 1;
    psock_lean(&c->s, 1);
    if (c->up)
        psock_lean(&c->up->s, 1);
    M_ADD(w->m.held_now, 1);
}

void worker_ping_del(struct worker *w, struct conn *c)
{
    struct req *r = c->req;
    if (!r || !r->held_ping)
        return;
    if (r->ping_prev)
        r->ping_prev->req->ping_next = r->ping_next;
    else
        w->pings[r->ping_hash] = r->ping_next;
    if (r->ping_next)
        r->ping_next->req->ping_prev = r->ping_prev;
    r->held_ping = 0;
    r->ping_next = r->ping_prev = NULL;
    M_ADD(w->m.held_now, -1);
}

int worker_cut_pings(struct worker *w, const char *devid, int blocked)
{
    if (!w->pings)
        return 0;
    int n = 0;
    struct conn *c = w->pings[devid_hash(devid) % WORKER_PING_BUCKETS];
    while (c) {
        struct conn *next = c->req->ping_next;
        if (strcmp(c->req->dec.devid_norm, devid) == 0) {
            conn_cut_ping(c, blocked);
            n++;
        }
        c = next;
    }
    return n;
}

/* ---- listeners ---- */

static void on_connection(uv_stream_t *server, int status)
{
    struct worker *w = server->loop->data;
    if (status < 0) {
        eg_warn("accept: %s", uv_strerror(status));
        return;
    }
    const struct instance *inst = server->data;
    conn_accept(w, inst, server);
}

static void close_listeners(struct worker *w)
{
    for (size_t i = 0; i < w->px->n_inst; i++) {
        uv_handle_t *h = (uv_handle_t *)&w->listeners[i];
        if (h->type && !uv_is_closing(h))
            uv_close(h, NULL);
    }
}

/* ---- drain and stop ---- */

static void maybe_finish(struct worker *w)
{
    if (!w->draining || w->n_conns > 0)
        return;
    up_worker_close(w);
    if (w->rs) {
        rstore_free(w->rs);
        w->rs = NULL;
    }
    if (!uv_is_closing((uv_handle_t *)&w->tick))
        uv_close((uv_handle_t *)&w->tick, NULL);
    if (!uv_is_closing((uv_handle_t *)&w->wake)) {
        pthread_mutex_lock(&w->px->lock);
        w->wake_open = 0;
        pthread_mutex_unlock(&w->px->lock);
        uv_close((uv_handle_t *)&w->wake, NULL);
    }
}

static void start_drain(struct worker *w)
{
    if (w->draining)
        return;
    w->draining = 1;
    close_listeners(w);
    up_worker_close(w);
    /* Held Pings are answered now (the phone reconnects, through the load
     * balancer, to an instance that stays); idle connections close; requests
     * in flight finish and then close. */
    struct conn *c = w->conns;
    while (c) {
        struct conn *next = c->next;
        if (c->req && c->req->held_ping)
            conn_cut_ping(c, 0);
        else
            conn_drain(c);
        c = next;
    }
    maybe_finish(w);
}

static void force_stop(struct worker *w)
{
    start_drain(w);
    struct conn *c = w->conns;
    while (c) {
        struct conn *next = c->next;
        conn_close(c);
        c = next;
    }
    maybe_finish(w);
}

static void on_wake(uv_async_t *a)
{
    struct worker *w = a->data;
    struct proxy *px = w->px;
    pthread_mutex_lock(&px->lock);
    struct snap *ns = w->pending_snap;
    w->pending_snap = NULL;
    int drain = w->pending_drain, stop = w->pending_stop;
    pthread_mutex_unlock(&px->lock);
    if (ns) {
        struct snap *old = w->snap;
        w->snap = ns;
        up_snap_changed(w, old);
        snap_unref(old);
    }
    if (stop)
        force_stop(w);
    else if (drain)
        start_drain(w);
}

static void on_tick(uv_timer_t *t)
{
    struct worker *w = t->data;
    tls_sweep(); /* record buffers of connections idle for a second */
    maybe_finish(w);
}

/* May a device with this state go on holding a Ping? */
static int still_ok(const struct worker *w, const struct rstore_result *res)
{
    const struct pol_policy *pol = w->snap->pol;
    return (res->status == RSTORE_FOUND && res->state == RSTORE_ALLOW && !res->stale) ||
           (res->status != RSTORE_FOUND && (!pol || pol->unknown_devices == POL_ALLOW));
}

static int blocked_form(const struct rstore_result *res)
{
    return res->status == RSTORE_FOUND && res->state == RSTORE_BLOCK;
}

static void on_recheck(struct rstore_wait *wt, void *arg, const struct rstore_result *res)
{
    struct conn *c = arg;
    c->req->lookup_pending = 0;
    if (!still_ok(c->w, res))
        conn_cut_ping(c, blocked_form(res));
}

/* After a reconnect the store may have missed changes: look every device
 * that holds a Ping up again (the cache is unverified, so this asks Redis;
 * lookups of one device are shared). */
static void recheck_all(struct worker *w)
{
    for (size_t b = 0; b < WORKER_PING_BUCKETS; b++) {
        struct conn *c = w->pings[b];
        while (c) {
            struct conn *next = c->req->ping_next;
            struct req *r = c->req;
            if (!r->lookup_pending) {
                struct rstore_result res;
                int rc = rstore_lookup(w->rs, r->dec.devid_norm, strlen(r->dec.devid_norm), &res,
                                       &r->wait, on_recheck, c);
                if (rc == RSTORE_PENDING)
                    r->lookup_pending = 1;
                else if (rc == 0 && !still_ok(w, &res))
                    conn_cut_ping(c, blocked_form(&res));
            }
            c = next;
        }
    }
}

/* A device's state changed (device_id NULL: the cache was rebuilt after a
 * reconnect). A Ping held by a device that may no longer sync is answered
 * at once so the phone comes back and meets the new decision. */
static void on_state_change(void *arg, const char *device_id, const struct rstore_result *res)
{
    struct worker *w = arg;
    if (!device_id || !res) {
        recheck_all(w);
        return;
    }
    if (still_ok(w, res))
        return;
    int n = worker_cut_pings(w, device_id, blocked_form(res));
    if (n > 0)
        eg_info("device %s: state now %s, %d held Ping%s answered", device_id,
                res->status == RSTORE_FOUND ? rstore_state_name(res->state) : "unknown", n,
                n == 1 ? "" : "s");
}

static void run(void *arg)
{
    struct worker *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    __atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
}

int worker_start(struct worker *w)
{
    struct proxy *px = w->px;
    int r = uv_loop_init(&w->loop);
    if (r < 0)
        return r;
    w->loop.data = w;
    w->io.loop = &w->loop;
    buf_pool_init(&w->io.pool, 64);
    w->io.handshakes = &w->m.tls_handshakes;
    w->io.handshake_failures = &w->m.tls_errors;
    if (up_worker_init(w) < 0)
        return UV_ENOMEM;
    w->pings = calloc(WORKER_PING_BUCKETS, sizeof(*w->pings));
    w->listeners = calloc(px->n_inst, sizeof(*w->listeners));
    if (!w->pings || !w->listeners)
        return UV_ENOMEM;
    for (size_t i = 0; i < px->n_inst; i++) {
        uv_tcp_t *l = &w->listeners[i];
        uv_tcp_init(&w->loop, l);
        l->data = &px->inst[i];
        if ((r = uv_tcp_open(l, w->listen_fds[i])) < 0)
            return r;
        w->listen_fds[i] = -1; /* the handle owns it now */
        if ((r = uv_listen((uv_stream_t *)l, WORKER_BACKLOG, on_connection)) < 0)
            return r;
    }
    const struct conf *boot = px->boot->conf;
    if (boot->redis.enabled) {
        struct rstore_opts o = {.shared = px->rs_shared};
        w->rs = rstore_new_ex(&w->loop, &boot->redis, &o);
        if (!w->rs)
            return UV_EINVAL;
        rstore_on_change(w->rs, on_state_change, w);
    }
    uv_async_init(&w->loop, &w->wake, on_wake);
    w->wake.data = w;
    w->wake_open = 1;
    uv_timer_init(&w->loop, &w->tick);
    w->tick.data = w;
    uv_timer_start(&w->tick, on_tick, 1000, 1000);
    uv_unref((uv_handle_t *)&w->tick);
    return uv_thread_create(&w->thread, run, w);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* After the thread has returned: release what the loop owned. */
void worker_free(struct worker *w)
{
    if (w->rs) {
        rstore_free(w->rs);
        w->rs = NULL;
        uv_run(&w->loop, UV_RUN_DEFAULT);
    }
    uv_walk(&w->loop, close_walk, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
    up_worker_free(w);
    buf_pool_destroy(&w->io.pool);
    snap_unref(w->snap);
    snap_unref(w->pending_snap);
    head_pool_free(&w->heads);
    while (w->n_free_reqs > 0)
        free(w->free_reqs[--w->n_free_reqs]);
    while (w->n_free_idents > 0)
        free(w->free_idents[--w->n_free_idents]);
    free(w->pings);
    free(w->listeners);
}
