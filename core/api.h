/*
 * core_api: the admin API, JSON over HTTPS under /api/v1 (docs/core.md,
 * "Admin API").
 *
 * It runs on a thread of its own with its own libuv loop, its own registry
 * connection, its own Redis connection and its own engine, beside the core's
 * run loop (which blocks on the sightings stream). SQLite serialises the
 * two writers; every change still goes through the engine, so it bumps the
 * device's version and is pushed (HSET + PUBLISH in one MULTI/EXEC) after
 * its transaction commits.
 *
 * Requests are answered synchronously on the API thread: each is a few
 * indexed SQLite statements. Requests that fail validation (invalid JSON,
 * wrong types, unknown fields, too large) change nothing.
 *
 * core_api_new/core_api_handle work without sockets or threads, for tests.
 */
#ifndef EG_CORE_API_H
#define EG_CORE_API_H

#include "common/httpd.h"
#include "core/ctx.h"
#include "core/push.h"
#include "core/reg.h"
#include "policy/compliance.h"

#include <stdint.h>

struct core_api;

struct core_api_opts {
    int64_t session_ttl_ms;
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

/* Log every API request as a JSON line to fd (logfile_open; -1 = none). */
void core_api_set_log(int fd);

/* Answer one request (resp->body is malloc'd JSON; the caller frees it). */
void core_api_handle(struct core_api *a, const struct httpd_req *req, struct httpd_resp *resp);

/*
 * Start the API thread when core.listen is set (*out stays NULL when it is
 * not). It opens its own registry and Redis connections from c. 0, or -1
 * with a message in err (bad TLS files, address in use, plain HTTP on a
 * non-loopback address).
 */
int core_api_start(struct core_ctx *c, struct core_api **out, char *err, size_t errlen);
/* Stop the thread, close everything it opened. NULL is fine. */
void core_api_stop(struct core_api *a);

#endif
