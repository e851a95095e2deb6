/*
 * metrics: counters each worker bumps on its own cache lines, summed only
 * when /metrics is scraped. Relaxed atomics: a scrape may see a request
 * counted a microsecond late, never a torn value.
 */
#ifndef EG_METRICS_H
#define EG_METRICS_H

#include "common/conf.h"
#include "eas/easq.h"

#include <stddef.h>
#include <stdint.h>

/* What happened to a request, one label value each. */
enum m_decision {
    M_ALLOW,      /* forwarded after the policy allowed it */
    M_BLOCK,      /* answered blocked by the policy */
    M_QUARANTINE, /* answered quarantined */
    M_WIPE,       /* answered with a wipe */
    M_PASS,       /* forwarded without a decision (autodiscover, EWS subscriptions) */
    M_INVALID,    /* malformed ActiveSync request: 108 / 400 */
    M_DENIED,     /* refused by route: 403 EWS, 404, 405 */
    M_LIMIT,      /* 408, 413, 431, 503 for limits */
    M_UPSTREAM,   /* upstream failed: 502, 503, 504 */
    M_THROTTLE,   /* 503 of a request budget or a failed-login block (budget.h) */
    M_NDEC
};

/* Request "command" labels: the EAS commands, then the other routes. */
#define M_CMD_AUTODISCOVER EASQ_CMD_COUNT
#define M_CMD_EWS (EASQ_CMD_COUNT + 1)
#define M_CMD_OTHER (EASQ_CMD_COUNT + 2)
#define M_NCMD (EASQ_CMD_COUNT + 3)

/* Requests are counted per instance (the instance_name label): at most this
 * many instances in one process (common/conf.c refuses more). */
#define M_INST_MAX CONF_INSTANCES_MAX

/* Upstream latency (request sent -> response head) bucket bounds, ms. */
#define M_LAT_BUCKETS 12
extern const double m_lat_bounds_ms[M_LAT_BUCKETS];

struct metrics {
    uint64_t requests[M_INST_MAX][M_NCMD][M_NDEC];
    uint64_t lat_bucket[M_LAT_BUCKETS + 1]; /* last = +Inf */
    uint64_t lat_sum_us, lat_count;
    int64_t open_conns;
    uint64_t conns_total;
    uint64_t tls_handshakes, tls_errors, tls_handshake_timeouts;
    uint64_t upstream_errors, upstream_connects;
    uint64_t rejected_total_limit, rejected_client_limit;
    uint64_t held_pings;
    int64_t held_now;
    /* abuse (proxy/budget.c): requests refused per budget (device, user,
     * client), per credential block (client, user, known-device), 401s
     * counted, blocks made, autoblock thresholds crossed per rule */
    uint64_t budget_refused[3];
    uint64_t auth_refused[3];
    uint64_t auth_failures;
    uint64_t auth_blocks[3];
    uint64_t autoblock_crossed[4];
};

#define M_ADD(field, n) __atomic_add_fetch(&(field), (n), __ATOMIC_RELAXED)
#define M_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

void metrics_request(struct metrics *m, int inst, int cmd, enum m_decision d);
void metrics_latency(struct metrics *m, uint64_t us);
const char *metrics_decision_name(enum m_decision d);

/* Prometheus text exposition of the sum of n per-worker sets, plus the
 * process-wide gauges given. Writes at most cap bytes; returns the length. */
struct metrics_extra {
    int ready; /* 1 ready, 0 draining */
    int draining;
    uint64_t reloads, reload_failures;
    const char *const *inst_names; /* the instances' names, by index */
    size_t n_inst;
};
size_t metrics_render(struct metrics *const *ms, size_t n, const struct metrics_extra *x, char *out,
                      size_t cap);

#endif
