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
 * The upstream side parses the response and hands its head and body to the
 * owner (the client connection that acquired it) through a table of
 * callbacks, struct up_owner; it never knows what the owner is. Back-pressure
 * works both ways with uv_read_stop.
 */
#ifndef EG_UPSTREAM_H
#define EG_UPSTREAM_H

#include "proxy/head.h"
#include "proxy/psock.h"

#include <llhttp.h>
#include <openssl/ssl.h>
#include <stdint.h>

struct worker;
struct instance;
struct snap;
struct upconn;

/* How an upstream connection failed, as the owner needs it to decide on a
 * retry. The connection is gone when the owner hears it. */
enum up_failure {
    UP_FAIL_CONNECT,  /* connect or TLS handshake failed: nothing was sent */
    UP_FAIL_STALE,    /* a pooled connection failed before any response: not the url's fault */
    UP_FAIL_SENT,     /* a new connection failed after the request, before any response */
    UP_FAIL_RESPONSE, /* the connection ended in the middle of the response */
};

/* What an upstream connection tells its owner; owner is the pointer given
 * to up_acquire. Callbacks may release or close u; the upstream side looks
 * at nothing of the owner's. */
struct up_owner {
    /* Connected (and TLS done): send the request on u. */
    void (*ready)(void *owner, struct upconn *u);
    void (*failed)(void *owner, enum up_failure f, const char *why);
    /* The final response head (borrowed for the call); has_length: framed
     * by Content-Length. Returns -1 to stop (the owner closed), 0 when a
     * body follows, 1 when none does (the answer to a HEAD). */
    int (*head)(void *owner, int status, const struct head *h, int has_length);
    /* Response body bytes. Nonzero: the owner's client is congested, stop
     * reading until drained/up_resume. */
    int (*body)(void *owner, const char *d, size_t n);
    /* The response is complete: the owner releases u (up_release). */
    void (*done)(void *owner);
    /* u's write queue drained below the low mark. */
    void (*drained)(void *owner);
};

struct up_url {
    const struct instance *inst;
    int idx;
    uint64_t down_until; /* loop ms; 0 = up */
    int fails;
    SSL_SESSION *session;
    struct upconn *idle; /* pool, most recent first */
    int n_idle;
    unsigned rr; /* only used in each instance's first url: round-robin cursor */
    /* Only in each instance's first url: this worker told the core (a
     * sighting) that every url of the instance is down. */
    int reported_down;
    /* It ended an idle connection without Connection: close: a pooled one
     * is checked for an unread end before it carries a request. */
    int silent_close;
};

struct upconn {
    struct psock s;
    struct worker *w;
    struct up_url *u;
    const struct up_owner *ops;
    void *owner; /* the client side holding it, NULL when pooled */
    struct upconn *next_idle;
    llhttp_t parser;
    uv_timer_t timer;
    struct head *rh;
    uint64_t t_sent_us;
    int status;
    uint32_t trailer_bytes; /* of the response being read: dropped, bounded */
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

/* Get a connection to one of inst's urls for owner: UP_POOLED, *u is a
 * pooled connection, ready now (ops->ready is not called); UP_CONNECTING,
 * *u is connecting and ops->ready or ops->failed follows later; -1 when
 * every url is marked down (answer 503). fresh: never a pooled one (a
 * connection that will carry connection-oriented authentication). */
enum { UP_POOLED = 0, UP_CONNECTING = 1 };
int up_acquire(struct worker *w, const struct instance *inst, const struct up_owner *ops,
               void *owner, int fresh, struct upconn **u);

/* The owner is done with u: back to the pool when reusable, else closed. */
void up_release(struct upconn *u, int reusable);

/* The owner keeps u, answered, for its next request: a connection that
 * carries NTLM or Negotiate authentication is its client's alone (never
 * pooled, closed with it). 0, or -1 when u cannot carry another request
 * (the owner releases it). While kept, an end of u or a byte from it
 * reaches the owner as ops->failed. */
int up_keep(struct upconn *u);

/* Request fully written: response latency is measured from here. */
void up_request_sent(struct upconn *u);

/* Back-pressure from the client side. */
void up_pause(struct upconn *u);
void up_resume(struct upconn *u);

#endif
