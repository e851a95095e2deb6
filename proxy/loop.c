/*
 * loop: runs a worker (worker.h) on its own thread. Cross-thread requests
 * (new snapshot, drain, stop) arrive as flags under px->lock plus an
 * uv_async wake-up; the worker acts on them on its own thread, so no
 * connection state is ever shared. The listeners hand new connections to
 * conn.c, and the state store's change callback goes to the held Pings
 * (conn_ping.c).
 */
#include "proxy/loop.h"

#include "common/log.h"
#include "common/version.h"
#include "connectors/rstore.h"
#include "proxy/budget.h"
#include "proxy/conn.h"
#include "proxy/upstream.h"
#include "proxy/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WORKER_BACKLOG 511

void loop_post(struct worker *w)
{
    /* Under the lock: once the worker has closed its async handle (end of
     * drain) a late signal must not touch it. */
    pthread_mutex_lock(&w->px->lock);
    if (w->wake_open)
        uv_async_send(&w->wake);
    pthread_mutex_unlock(&w->px->lock);
}

/* ---- listeners ---- */

/*
 * The worker's presence in Redis (docs/state-contract.md, easgate:proxy:*):
 * what the console's dashboard shows of each proxy. Read on the worker's
 * own loop from its own counters; the time is the wall clock, for people.
 */
static int worker_beat(void *arg, char *out, size_t cap)
{
    struct worker *w = arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char host[64] = "";
    gethostname(host, sizeof(host) - 1);
    for (char *p = host; *p; p++) /* a JSON string without escapes */
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '-' || *p == '_'))
            *p = '_';
    int n = snprintf(out, cap,
                     "{\"host\":\"%s\",\"pid\":%d,\"worker\":%d,\"version\":\"%s\","
                     "\"health\":\"%s\",\"held_pings\":%lld,\"connections\":%lld,"
                     "\"beat\":%lld}",
                     host, (int)getpid(), w->id, eg_version(), w->draining ? "draining" : "ready",
                     (long long)M_GET(w->m.held_now), (long long)M_GET(w->m.open_conns),
                     (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    return n > 0 && (size_t)n < cap ? n : -1;
}

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
    budget_free(w->budget); /* after the store: its last replies call into it */
    w->budget = NULL;
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
    conn_drain_all(w);
    maybe_finish(w);
}

static void force_stop(struct worker *w)
{
    start_drain(w);
    conn_close_all(w);
    maybe_finish(w);
}

static void on_wake(uv_async_t *a)
{
    struct worker *w = a->data;
    struct proxy *px = w->px;
    pthread_mutex_lock(&px->lock);
    struct snap *ns = w->pending_snap;
    w->pending_snap = NULL;
    int drain = w->pending_drain, stop = w->pending_stop, revoke = w->pending_revoke;
    w->pending_revoke = 0;
    pthread_mutex_unlock(&px->lock);
    if (ns) {
        struct snap *old = w->snap;
        w->snap = ns;
        up_snap_changed(w, old);
        snap_unref(old);
    }
    /* A reload brings new client CRLs; the CRL file changed under the
     * running one: either way open connections are checked against it. */
    if (ns || revoke)
        conn_revoke_check(w);
    if (stop)
        force_stop(w);
    else if (drain)
        start_drain(w);
}

static void on_tick(uv_timer_t *t)
{
    struct worker *w = t->data;
    tls_sweep(); /* record buffers of connections idle for a second */
    conn_sweep_age(w);
    maybe_finish(w);
}

static void run(void *arg)
{
    struct worker *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    __atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
}

int loop_start(struct worker *w)
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
        char name[128], host[64] = "";
        gethostname(host, sizeof(host) - 1);
        snprintf(name, sizeof(name), "%s/%d/%d", host, (int)getpid(), w->id);
        struct rstore_opts o = {
            .shared = px->rs_shared, .beat = worker_beat, .beat_arg = w, .beat_name = name};
        w->rs = rstore_new_ex(&w->loop, &boot->redis, &o);
        if (!w->rs)
            return UV_EINVAL;
        rstore_on_change(w->rs, conn_state_changed, w);
    }
    if (!(w->budget = budget_new(&w->loop, w->rs, &w->m)))
        return UV_ENOMEM;
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
void loop_free(struct worker *w)
{
    if (w->rs) {
        rstore_free(w->rs);
        w->rs = NULL;
        uv_run(&w->loop, UV_RUN_DEFAULT);
    }
    if (w->budget) {
        budget_free(w->budget);
        w->budget = NULL;
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
