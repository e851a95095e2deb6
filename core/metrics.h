/*
 * core_metrics: what the management core counts, for GET /metrics on its
 * admin listener (core.listen) and for /readyz. One set per process (there
 * is one core per process): the run loop, the admin API thread and the
 * enrollment thread all add to it with relaxed atomics, and the API thread
 * renders it. Names and labels are documented in docs/core.md "Metrics".
 */
#ifndef EG_CORE_METRICS_H
#define EG_CORE_METRICS_H

#include "policy/compliance.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One compliance evaluation and the state it gave. */
void core_metrics_evaluation(enum compliance_state result);
/* One device state written to Redis (or a failed attempt). */
void core_metrics_push(bool ok);
/* One check-in stored. */
void core_metrics_checkin(void);
/* The writer committed a group of jobs queued together (group commit). */
void core_metrics_group(size_t jobs);
/* A checkpoint copied pages of the WAL into the registry file. */
void core_metrics_checkpoint(int pages);
/* A commit appended frames (whole pages) to the registry's WAL. */
void core_metrics_wal(int frames);
/* A resync that took ms (ok: it completed), ending now. */
void core_metrics_resync(int64_t ms, bool ok);
/* How far behind the sightings stream the core is: the age of the newest
 * entry it just handled, 0 when it is caught up; and entries handled. */
void core_metrics_sightings(int64_t lag_ms, size_t handled);
/* Whether the run loop has Redis now (connected and resynced). */
void core_metrics_redis(bool ok);
/* No redis: section: nothing to connect to or resync, /readyz does not wait. */
void core_metrics_no_redis(void);
/* The registry opened (at start): /readyz waits for it. */
void core_metrics_registry(bool ok);
/* An admin API answer: route is the route table's pattern ("" = none matched). */
void core_metrics_api(const char *route, int status);
/* A failed login (wrong name or password). */
void core_metrics_login_failure(void);

/* The routes core_metrics_api names, in the API's order, NULL-terminated
 * (set once by the API before it serves). */
void core_metrics_routes(const char *const *patterns);

/* /readyz: 1 when ready, else 0 with why ("redis: not connected"). */
int core_metrics_ready(char *why, size_t n);

/* Prometheus text (with easgate_build_info and the process_* gauges) into
 * buf; its length, or -1 when buf is too small. */
int core_metrics_render(char *buf, size_t n);

#endif
