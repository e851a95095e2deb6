/*
 * decide: the decision point of an ActiveSync request.
 *
 *   head  -> identity (easq) -> [Provision/Settings/Ping/FolderSync: read the
 *            small body first for DeviceInformation or HeartbeatInterval]
 *         -> device state (the state store: the caller looks it up, maybe
 *            answered later)
 *         -> pol_decide -> server role (srv.h) -> forward, or answer in the
 *            client's protocol form.
 *
 * decide answers nothing and connects nowhere: each step reads the request
 * through struct decide_in, keeps what it learnt in struct decide_req and
 * returns a struct verdict, which the connection applies (conn.c). Every
 * path ends in a verdict to answer or to forward, so a client is never left
 * without an answer. The only effects of its own are log lines and the
 * sightings it reports to the state store.
 */
#ifndef EG_DECIDE_H
#define EG_DECIDE_H

#include "eas/easq.h"
#include "proxy/answer.h"
#include "proxy/metrics.h"

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct head;
struct snap;
struct rstore;
struct rstore_result;
struct wbxml_facts;
struct decide_sight;

/* What decide reads of a request and its connection; borrowed for one call. */
struct decide_in {
    const struct head *head;
    const struct snap *snap; /* the request's configuration and policy */
    int method;              /* llhttp_method */
    bool has_body;
    bool body_read;   /* the body was read first (VERDICT_READ_BODY): */
    const char *body; /* here (NULL when empty) */
    size_t body_len;
    X509 *cert;           /* the verified client certificate (at the head), NULL if none */
    const char *cert_id;  /* its summary, for logs */
    const char *client;   /* the client's address as text */
    const char *instance; /* the instance's name, for logs */
    /* The user an NTLM handshake authenticated the connection as (the
     * AUTHENTICATE message Exchange last answered 2xx on it), "" if none. */
    const char *conn_user;
    struct rstore *rs; /* where sightings go; NULL without a state store */
    int64_t now_ms;    /* loop time (for decide_eas_state) */
};

/* What decide learns about a request, kept by the connection in its request
 * from the head to the end (zeroed when the request starts). */
struct decide_req {
    int cmd;          /* easq_cmd; the connection sets M_CMD_* for the other routes */
    int version;      /* 141 = 14.1, 0 unknown */
    uint64_t wait_ms; /* how long the response head may take; 0: the default */
    char *logid;      /* the access log's identity fragment (accesslog.h), malloc'd */
    char devid_norm[EASQ_DEVICEID_MAX + 1];
    uint8_t trust;   /* pol_ident: how far the user can be believed */
    uint8_t cred;    /* easq_cred of the request */
    bool ntlm_auth;  /* an NTLM AUTHENTICATE: ntlm_user is what it names */
    char *ntlm_user; /* malloc'd, kept until the answer (conn.c) */
    /* What the request reports to the core (decide_report_*), kept until
     * Exchange's answer says whether it authenticated the user; NULL when
     * nothing is to be reported. */
    struct decide_sight *sight;
    /* Only until the decision is final (answer or forward); the caller
     * releases them then, or when the request ends. */
    struct easq_ident *ident;  /* the caller provides it for a POST, from its pool */
    struct wbxml_facts *facts; /* body facts, malloc'd here; the caller free()s */
    char *cert_user;           /* allow_cert_bound: the CN of a certificate naming this device */
    /* A portal certificate (binding on first use, docs/enrollment.md
     * section 7): its enrollment id ("" if none), and what the state store
     * said of it before the device was looked up: enr_looked 1 = answered,
     * enr_bound the DeviceId it is bound to ("" = none yet). enr_bind: the
     * request is the first use, reported to the core after Exchange's 2xx. */
    char enr_id[25];
    char enr_bound[EASQ_DEVICEID_MAX + 1];
    bool enr_looked, enr_bind;
};

enum verdict_kind {
    VERDICT_ANSWER,    /* answer now with status, content_type, extra, body */
    VERDICT_FORWARD,   /* send the request upstream */
    VERDICT_READ_BODY, /* read the body (at most limits.max_body_read), then decide_eas_body */
    VERDICT_LOOKUP,    /* look devid_norm up in the state store, then decide_eas_state */
};

/* What to do with the request. Lives on the caller's stack; verdict_free
 * after applying it. */
struct verdict {
    enum verdict_kind kind;
    enum m_decision mdec;  /* ANSWER, FORWARD */
    const char *decision;  /* for the access log; NULL leaves it */
    const char *reason;    /* for the access log; NULL leaves it */
    bool strip_policy_key; /* FORWARD: X-MS-PolicyKey does not go on to Exchange */
    int status;
    const char *content_type; /* NULL: none */
    const char *extra;        /* "Name: value\r\n"... or NULL */
    const void *body;
    size_t len;
    uint8_t *owned;  /* body memory the verdict owns (the server role's answers) */
    struct answer a; /* room for the small answers */
};

void verdict_free(struct verdict *v);

/* The head of a /Microsoft-Server-ActiveSync request is complete. */
void decide_eas_head(struct decide_req *d, const struct decide_in *in, struct verdict *v);
/* The body asked for by VERDICT_READ_BODY is in (in->body). */
void decide_eas_body(struct decide_req *d, const struct decide_in *in, struct verdict *v);
/* The state store said res about devid_norm (NULL: no store, or it could
 * not be asked). */
void decide_eas_state(struct decide_req *d, const struct decide_in *in,
                      const struct rstore_result *res, struct verdict *v);

/* The state store said res of the portal certificate's enrollment (NULL:
 * it could not be asked); the device's own lookup comes next. */
void decide_enr_state(struct decide_req *d, const struct rstore_result *res);

/* Why decide_eas_state decides what it does for this request and state,
 * step by step on f (pol_explain), for `easgate proxy explain`. Same
 * arguments as decide_eas_state; nothing is reported or changed. */
void decide_explain(FILE *f, const struct decide_req *d, const struct decide_in *in,
                    const struct rstore_result *res);

/* Is the body of this request WBXML by the protocol (every command's but
 * GetAttachment's, and SendMail/SmartReply/SmartForward's only when sent
 * as application/vnd.ms-sync.wbxml, from 14.0 on)? A streamed body that is
 * is checked as it goes (conn.c). */
bool decide_body_is_wbxml(const struct decide_req *d, const struct head *h);

/* Exchange answered the forwarded request with status: on 2xx (Exchange
 * authenticated the user) the request's sightings go to rs with auth
 * "exchange", otherwise nowhere. Either way d->sight is freed. rs may be
 * NULL. */
void decide_report_answered(struct decide_req *d, struct rstore *rs, int status);
/* The request ends without Exchange's answer: its sightings are dropped. */
void decide_report_drop(struct decide_req *d);

#endif
