/*
 * core_api: the admin API, JSON over HTTPS under /api/v1 (docs/core.md,
 * "Admin API").
 *
 * Threads (docs/architecture.md, "core/: threads"). One loop thread (libuv,
 * common/httpd) accepts, does TLS, parses HTTP and routes; it never touches
 * SQLite or argon2. Each request is held (httpd_hold) and handed to:
 *   - a reader (core.api_threads of them, each with its own read-only
 *     registry connection): listings, a device, users, the audit log;
 *   - the writer (core/wr.h, shared with the run loop): every change and
 *     every check-in, group-committed;
 *   - a hasher (core.login_threads): a login's argon2, then the writer for
 *     its session.
 * The worker answers into the job and wakes the loop (uv_async), which
 * sends it. A slow listing thus occupies one reader, never the loop or the
 * writer; a full queue is answered 503 with Retry-After at once. Requests
 * that fail validation (invalid JSON, wrong types, unknown fields, too
 * large) change nothing.
 *
 * core_api_new/core_api_handle work without sockets or threads, for tests:
 * every route runs on the caller's thread, a change in a transaction of its
 * own.
 */
#ifndef EG_CORE_API_H
#define EG_CORE_API_H

#include "common/httpd.h"
#include "core/auth.h"
#include "core/ctx.h"
#include "core/push.h"
#include "core/reg.h"
#include "core/wr.h"
#include "policy/compliance.h"

#include <stdint.h>

struct core_api;

struct core_api_opts {
    int64_t session_ttl_ms;  /* a session's absolute lifetime */
    int64_t console_idle_ms; /* a console session's idle expiry; 0 = 30 min */
    int64_t (*now_ms)(void); /* NULL = core_now_ms; tests inject a clock */
};

/* An API over an open registry (borrowed) and push (borrowed, may be NULL). */
int core_api_new(struct core_reg *reg, struct rstore_push *push,
                 const struct compliance_rules *rules, const struct core_api_opts *o,
                 struct core_api **out);
void core_api_free(struct core_api *a);

/*
 * The admin listener also answers GET /healthz, /readyz and /metrics
 * without a token (core/metrics.h). certs and crls (NULL-terminated, owned
 * by the caller for the process's life) are the files whose expiry
 * /metrics reports; set them before the API starts.
 */
void core_api_metric_files(const char *const *certs, const char *const *crls);

/*
 * A certificate revoked through the API (POST .../certs/SERIAL/revoke) is
 * in the registry once the call returns; the CRL is the enrollment role's
 * to rewrite (it holds the CA key; core/ never includes enroll/). fn(arg)
 * is called after the commit, on the writer's thread, so that the role can
 * rewrite it at once (it must only hand the work over); without it the API
 * says "crl": "not here". NULL clears it: once that returns, fn is not
 * called any more (stop the role after).
 */
void core_api_on_revoke(void (*fn)(void *arg), void *arg);

/* Log every API request as a JSON line to fd (logfile_open; -1 = none). */
void core_api_set_log(int fd);

/* Answer one request (resp->body is malloc'd JSON; the caller frees it). */
void core_api_handle(struct core_api *a, const struct httpd_req *req, struct httpd_resp *resp);

/*
 * Start the API's threads when core.listen is set (*out stays NULL when it
 * is not): changes go to wr (borrowed; stop the API before it). 0, or -1
 * with a message in err (bad TLS files, address in use, plain HTTP on a
 * non-loopback address).
 */
int core_api_start(struct core_ctx *c, struct core_wr *wr, struct core_api **out, char *err,
                   size_t errlen);
/* Stop accepting, answer what is in flight, stop the threads. NULL is fine. */
void core_api_stop(struct core_api *a);

/*
 * The invitations, /api/v1/invitations, are the enrollment role's: its
 * endpoint (enroll/srv.c) owns them, on its own thread and registry
 * connection, and answers them on enroll.listen too. When that role runs
 * in this process, the command that starts both (cli/: core/ never
 * includes enroll/) hands its entry point here, and this API answers the
 * routes for the console and API clients under its own authentication (a
 * token, or the console's session with its CSRF check) and roles (GET:
 * viewer; POST, DELETE: admin). Without one, the routes answer 404 saying
 * where the invitations are.
 *
 *   POST   /api/v1/invitations      CORE_API_INV_CREATE    (the body)
 *   GET    /api/v1/invitations      CORE_API_INV_LIST      (the query)
 *   DELETE /api/v1/invitations/ID   CORE_API_INV_WITHDRAW  (id)
 */
enum core_api_inv_op { CORE_API_INV_CREATE, CORE_API_INV_LIST, CORE_API_INV_WITHDRAW };

struct core_api_inv_call {
    enum core_api_inv_op op;
    const char *id;              /* WITHDRAW: the path's invitation id, as sent */
    const struct httpd_req *req; /* body, query, peer; valid until done */
    struct core_principal who;   /* authenticated, and the role checked */
    struct httpd_resp *resp;     /* the provider fills it (JSON) */
    /* Called once, when resp is filled, from the provider's thread. */
    void (*done)(struct core_api_inv_call *call);
    struct core_api_inv_call *next; /* the provider's (its queue) */
};

struct core_api_inv {
    /* Take call, answer it on the provider's own thread and call done: 0;
     * or -1, call untouched, when it cannot (queue full, stopping): the API
     * answers 503. With core_api_handle (tests) the answer must be there
     * when submit returns. */
    int (*submit)(void *arg, struct core_api_inv_call *call);
    void *arg;
};

/* Set before the API starts and clear (NULL) after it stopped; copied. */
void core_api_invitations(const struct core_api_inv *inv);

/* The rules a reload adopted (explain reads them); a NULL a is fine. */
void core_api_rules(struct core_api *a, const struct compliance_rules *rules);

#endif
