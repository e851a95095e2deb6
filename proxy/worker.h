/*
 * worker: what one event-loop thread owns. Its listeners (one per instance,
 * SO_REUSEPORT, so the kernel spreads connections), its connections, its
 * upstream keep-alive pools, its buffer and head pools, its state store
 * client and its metrics. This header describes that state for the modules
 * of the request path; proxy/loop.c runs the thread. Nothing in a worker is
 * touched by another thread except through loop_post() (an uv_async) and
 * the relaxed-atomic metrics.
 */
#ifndef EG_WORKER_H
#define EG_WORKER_H

#include "common/buf.h"
#include "common/conf.h"
#include "common/tls.h"
#include "proxy/head.h"
#include "proxy/limits.h"
#include "proxy/metrics.h"
#include "proxy/psock.h"
#include "proxy/snap.h"

#include <pthread.h>
#include <stdint.h>
#include <uv.h>

struct budget;
struct conn;
struct up_url;
struct proxy;

/* An instance as started: shared read-only by every worker. Its TLS
 * contexts are in the worker's snapshot (snap.h), so that a reload renews
 * them. */
struct instance {
    int index;
    const struct conf_instance *ci;   /* from the startup configuration */
    struct sockaddr_storage *up_addr; /* resolved at start, one per url */
    char **up_host_hdr;               /* Host header value per url */
};

/* An instance's TLS contexts as this worker's snapshot has them. */
#define WORKER_TLS(w, in) (&(w)->snap->tls[(in)->index])

#define WORKER_PING_BUCKETS 4096
#define WORKER_FREE_OBJS 64

struct worker {
    int id;
    struct proxy *px;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t wake;
    uv_timer_t tick;     /* 1 s housekeeping: drain deadline, pool expiry */
    uv_tcp_t *listeners; /* one per instance */
    int *listen_fds;
    struct snap *snap;  /* current configuration + policy */
    struct conn *conns; /* every client connection, newest first, for drain */
    /* the oldest connection: conn_sweep_age walks from here */
    struct conn *conns_tail;
    size_t n_conns;
    struct up_url *ups;  /* per instance, per url state: [inst][url] flattened */
    size_t *up_base;     /* index of instance i's first url in ups */
    struct conn **pings; /* held Pings by DeviceId hash */
    struct metrics m;
    struct rstore *rs;     /* device state store (redis:), NULL when not configured */
    struct budget *budget; /* request budgets and failed-login blocks (budget.h) */
    struct head_pool heads;
    void *free_reqs[WORKER_FREE_OBJS]; /* struct req, reused */
    int n_free_reqs;
    void *free_idents[WORKER_FREE_OBJS]; /* struct easq_ident, reused */
    int n_free_idents;
    /* set by other threads, read on wake */
    struct snap *pending_snap; /* guarded by px->lock */
    int pending_drain, pending_stop;
    /* the client CRL changed (px->lock): conn_revoke_check */
    int pending_revoke;
    int wake_open; /* guarded by px->lock: posting is allowed */
    int done;      /* atomic: the loop has returned */
    unsigned draining : 1;
    /* the sockets' shared read buffer, write blocks and flush list: what
     * one read produces leaves in one write (psock.h) */
    struct psock_io io;
};

struct proxy {
    const char *conf_path;
    struct snap *snap;               /* newest, guarded by lock */
    struct snap *boot;               /* the startup one: instances point into it, kept to the end */
    struct rstore_shared *rs_shared; /* the workers' common fallback while Redis is away */
    pthread_mutex_t lock;
    struct instance *inst;
    size_t n_inst;
    struct worker *workers;
    int n_workers;
    int draining; /* atomic */
    uint64_t reloads, reload_failures;
    struct limits limits; /* connections across workers */
};

/* Fixed-size per-request objects kept for reuse (the request path then
 * allocates nothing in the steady state). obj_take returns uninitialised
 * memory of size bytes, or NULL. */
void *worker_obj_take(void **pool, int *n, size_t size);
void worker_obj_put(void **pool, int *n, void *p);

#endif
