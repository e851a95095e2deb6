/*
 * upstream: connections to the mail server behind an instance.
 *
 * Each worker keeps, per upstream url, a keep-alive pool, a TLS session for
 * resumption and a "down until" mark. up_acquire picks the next url round
 * robin, skipping urls marked down; once a mark expires the next request
 * probes that url again. A connect, TLS or early reset failure marks the url
 * down and tells the client side, which may retry on the next url when
 * nothing of the request is lost.
 *
 * The upstream side parses the response head, rewrites it for the client
 * (hop-by-hop headers out, framing chosen for the client) and streams the
 * body through conn_up_*; back-pressure works both ways with uv_read_stop.
 */
#ifndef EG_UPSTREAM_H
#define EG_UPSTREAM_H

#include "proxy/conn.h"

struct up_url {
    const struct instance *inst;
    int idx;
    uint64_t down_until; /* loop ms; 0 = up */
    int fails;
    SSL_SESSION *session;
    struct upconn *idle; /* pool, most recent first */
    int n_idle;
    unsigned rr; /* only used in each instance's first url: round-robin cursor */
};

struct upconn {
    struct psock s;
    struct worker *w;
    struct up_url *u;
    struct conn *c; /* attached client, NULL when pooled */
    struct upconn *next_idle;
    llhttp_t parser;
    uv_timer_t timer;
    struct head *rh;
    uint64_t t_sent_us;
    int status;
    unsigned connecting : 1, in_pool : 1, resp_started : 1, resp_done : 1, reused : 1,
        timer_closed : 1, handle_closed : 1, skip_body : 1, closing : 1;
};

/* Per-worker setup and teardown of the url state. */
int up_worker_init(struct worker *w);
void up_worker_close(struct worker *w); /* closes pooled connections */
void up_worker_free(struct worker *w);  /* after the loop has stopped */

/* The worker's snapshot changed from old: an instance whose upstream TLS
 * context was rebuilt drops its saved sessions, so that the next connection
 * is verified against the CA now configured rather than resumed. */
void up_snap_changed(struct worker *w, const struct snap *old);

/* Get a connection for c's request (c->inst). 0: conn_up_ready or
 * conn_up_failed will be called (maybe before this returns); -1: every url
 * is marked down, answer 503 now. */
int up_acquire(struct worker *w, struct conn *c);

/* The client side is done with u: back to the pool when reusable, else
 * closed. */
void up_release(struct upconn *u, int reusable);

/* Request fully written: response latency is measured from here. */
void up_request_sent(struct upconn *u);

/* Back-pressure from the client side. */
void up_pause(struct upconn *u);
void up_resume(struct upconn *u);

#endif
