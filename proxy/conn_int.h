/*
 * conn_int: what the files of the client connection (conn.c, conn_*.c)
 * share among themselves. Nothing outside them includes it; conn.h is the
 * connection's public face.
 */
#ifndef EG_CONN_INT_H
#define EG_CONN_INT_H

#include "proxy/conn.h"

#include "connectors/rstore.h"
#include "eas/easq.h"
#include "proxy/budget.h"
#include "proxy/decide.h"
#include "proxy/head.h"
#include "proxy/metrics.h"
#include "proxy/psock.h"
#include "proxy/route.h"
#include "proxy/snap.h"
#include "proxy/worker.h"

#include <llhttp.h>

#include <stdint.h>

/* What happens to the request body as llhttp delivers it. */
enum body_mode { BODY_NONE, BODY_DISCARD, BODY_BUFFER, BODY_STREAM };

/* Client-side phase: what the timer measures. */
enum cphase {
    PH_HANDSHAKE, /* accepted, TLS handshake under way: handshake timeout */
    PH_IDLE,      /* between requests: keepalive timeout */
    PH_HEAD,      /* reading a head: header timeout (absolute) */
    PH_BODY,      /* reading a body: body timeout (idle gap) */
    PH_WAIT,      /* request sent, waiting for the response head */
    PH_RESP,      /* streaming the response: body timeout (idle gap) */
    PH_CLOSING
};

struct upconn;

struct req {
    uint64_t t_start;   /* ms, loop time */
    uint64_t t_sent_us; /* request fully handed to upstream (hrtime us) */
    struct snap *snap;  /* reference held for the request */
    enum route_kind route;
    struct decide_req dec; /* identity and what the decision point keeps */
    struct budget_mark bm; /* who the budgets counted (budget.h) */
    int method;            /* llhttp_method */
    int status;            /* status sent to the client */
    int up_status;         /* upstream status, 0 none */
    enum m_decision mdec;
    const char *decision; /* access log */
    const char *reason;
    int err_status;          /* 413/431 set by a parser callback */
    uint64_t content_length; /* as announced (llhttp counts its copy down) */
    struct rstore_wait wait; /* device state lookup in flight (lookup_pending) */
    enum body_mode body_mode;
    /* A streamed WBXML body is decoded as it goes (decide_body_is_wbxml):
     * the first error aborts the upstream request; NULL when not checked. */
    struct wbxml_dec *vdec;
    uint64_t body_seen;
    char *body; /* BODY_BUFFER */
    size_t body_len, body_cap;
    uint64_t bytes_in;      /* head (approximate) + body bytes received */
    uint64_t out0;          /* psock counter at start */
    uint32_t trailer_bytes; /* chunked trailer read and dropped (bounded) */
    unsigned keepalive : 1, expect_continue : 1, has_body : 1, chunked : 1, msg_done : 1,
        head_sent_up : 1, body_sent_up : 1, resp_started : 1, resp_done : 1, resp_chunked : 1,
        answered : 1, is_head : 1, close_after : 1, held_ping : 1, attempt_more : 1, http11 : 1,
        lookup_pending : 1, head_done : 1, wbxml_bad : 1,
        fwd_body : 1, /* forwarded once its body is read (conn_up_body_in) */
        up_fresh : 1; /* the next upstream connection is a new one */
    uint8_t attempts;
    /* The client behind trusted balancers (X-Forwarded-For), "" = the
     * connection's peer; see conn_client(). */
    char client[46];
    uint8_t xff_trusted; /* the peer is a trusted balancer: its X-Forwarded-For goes on */
    uint32_t ping_hash;
    struct conn *ping_next, *ping_prev;
};

struct conn {
    struct psock s;
    struct worker *w;
    const struct instance *inst;
    struct conn *prev, *next; /* worker's list */
    llhttp_t parser;
    uv_timer_t timer;
    uint64_t deadline;  /* loop time the current phase times out */
    uint64_t timer_due; /* loop time the timer fires (may be earlier) */
    enum cphase phase;
    struct head *head;
    struct req *req;
    struct upconn *up;
    /* Connection-oriented authentication (NTLM, Negotiate): once a request
     * carries it or Exchange asks for it, the upstream connection is this
     * client's alone (pin), kept between requests (pinned) and closed with
     * it; if it is lost (pin_lost) the client connection closes rather than
     * go on over another. conn_user: the user the last AUTHENTICATE that
     * Exchange answered 2xx named, the identity of requests without
     * Authorization (malloc'd, NULL if none). */
    struct upconn *pinned;
    char *conn_user;
    char *stash;
    size_t stash_len, stash_off, stash_cap;
    char *cert_id;     /* the verified client certificate, summarised; NULL if none */
    uint8_t ipkey[16]; /* client address, for the per-client limit */
    char ip[46];       /* client address as text: logs, X-Forwarded-For */
    uint32_t n_requests;
    uint64_t t_born; /* loop time of accept: timeouts.max_connection_age */
    uint8_t pause_why;
    unsigned paused : 1, pumping : 1, admitted : 1, reject : 2, closing : 1, timer_closed : 1,
        handle_closed : 1, saw_bytes : 1, pin : 1, pin_lost : 1,
        step : 1,   /* run the parser once more though no byte waits (conn_pump) */
        retire : 1; /* past a limit, or revoked: closes after the current answer */
};

/* The proxy configuration the connection runs under now. */
static inline const struct conf_proxy *conn_conf(const struct conn *c)
{
    return &c->w->snap->conf->proxy;
}

/* The client as text: the address a trusted balancer's X-Forwarded-For
 * gave for the current request, else the connection's peer (or the client
 * of its PROXY header). */
static inline const char *conn_client(const struct conn *c)
{
    return c->req && c->req->client[0] ? c->req->client : c->ip;
}

/* ---- conn.c: the parser and the verdicts ---- */

/* Set up c's request parser. */
void conn_parser_init(struct conn *c);
/* Bytes from the client: the socket's data callback. */
int conn_on_data(struct psock *s, const char *d, size_t n);
/* Let the parser go on after a pause (answer out, upstream ready, ...);
 * never recurses into a pump already running. */
void conn_resume(struct conn *c);
/* Read from the client or not: stash room and the upstream's queue. */
void conn_update_reading(struct conn *c);
/* "100 Continue" once, if the client asked for it. */
void conn_send_continue(struct conn *c);
/* A streamed WBXML body failed to decode (err): cut the upstream request;
 * returns -1 for the parser callback, which then answers. */
int conn_wbxml_abort(struct conn *c, int err);
/* Answer the protocol's "invalid WBXML" for the request (Status 102, or 400). */
void conn_answer_wbxml_invalid(struct conn *c);
/* Read the request body (bounded by limits.max_body_read) before deciding;
 * the decision continues in decide_eas_body. */
void conn_read_body_first(struct conn *c);
/* The decision is final: the identity and body facts go. */
void conn_decision_final(struct conn *c);
/* The client's message is complete (the parser paused after it). */
void conn_on_msg(struct conn *c);

/* ---- conn_life.c: the connection's life ---- */

/* Start measuring phase ph (the timer). */
void conn_arm(struct conn *c, enum cphase ph);
/* Answer the request locally: status line + headers + body, then finish
 * the request. extra is "Name: value\r\n"... or NULL. */
void conn_answer(struct conn *c, int status, const char *content_type, const char *extra,
                 const void *body, size_t len, enum m_decision d);
/* Answer a held Ping now (drain, state change): blocked = 1 answers with
 * the blocked form, else a "no changes" Ping answer so the phone comes back
 * and meets the current decision. */
void conn_cut_ping(struct conn *c, int blocked);
/* Past a connection limit (timeouts.max_connection_age,
 * limits.max_requests_per_connection): the request now starting is the
 * last one (Connection: close). */
int conn_at_limit(const struct conn *c);
/* The request is over: log it, then the next one, or close. */
void conn_req_end(struct conn *c);
/* Close now (error paths). */
void conn_close(struct conn *c);
/* The client's verified certificate (NULL if none): for binding checks.
 * Borrowed, valid while the connection lives. */
X509 *conn_peer_cert(const struct conn *c);

/* ---- conn_up.c: the upstream leg ---- */

/* Send the request upstream (or answer 503 when every url is down). */
void conn_forward(struct conn *c);
/* The body conn_forward chose to read first is in: go upstream. */
void conn_up_body_in(struct conn *c);
/* The client's message is all in and (streamed) upstream: wait for the
 * answer. */
void conn_up_request_done(struct conn *c);
/* One chunk of a chunked body, as one write. */
void conn_write_chunk(struct psock *s, const char *d, size_t n);
/* The request is done with u: kept when it is the client's private
 * connection and can carry more, else released (reusable: to the pool). */
void conn_up_put(struct conn *c, struct upconn *u, int reusable);

/* ---- conn_ping.c: held Pings ---- */

/* Index a Ping that went upstream by its DeviceId; drop it from the index
 * when it is answered or ends. */
void conn_ping_hold(struct conn *c);
void conn_ping_release(struct conn *c);

#endif
