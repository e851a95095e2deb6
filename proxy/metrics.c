/* metrics: per-worker counters and their Prometheus text rendering. */
#include "proxy/metrics.h"

#include <stdarg.h>
#include <stdio.h>

const double m_lat_bounds_ms[M_LAT_BUCKETS] = {1,   2,   5,   10,   25,   50,
                                               100, 250, 500, 1000, 5000, 30000};

static const char *const decision_names[M_NDEC] = {
    "allow",   "block",  "quarantine", "wipe",           "pass",
    "invalid", "denied", "limit",      "upstream_error", "throttle"};

const char *metrics_decision_name(enum m_decision d)
{
    return d < M_NDEC ? decision_names[d] : "unknown";
}

void metrics_request(struct metrics *m, int inst, int cmd, enum m_decision d)
{
    if (cmd < 0 || cmd >= M_NCMD)
        cmd = M_CMD_OTHER;
    if (inst < 0 || inst >= M_INST_MAX)
        return; /* cannot happen: the configuration allows no more */
    M_ADD(m->requests[inst][cmd][d], 1);
}

void metrics_latency(struct metrics *m, uint64_t us)
{
    int i = 0;
    while (i < M_LAT_BUCKETS && (double)us > m_lat_bounds_ms[i] * 1000.0)
        i++;
    M_ADD(m->lat_bucket[i], 1);
    M_ADD(m->lat_sum_us, us);
    M_ADD(m->lat_count, 1);
}

struct out {
    char *p;
    size_t len, cap;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
    if (o->len >= o->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n < o->cap - o->len ? (size_t)n : o->cap - o->len - 1;
}

static const char *cmd_label(int cmd)
{
    if (cmd == M_CMD_AUTODISCOVER)
        return "autodiscover";
    if (cmd == M_CMD_EWS)
        return "ews";
    if (cmd == M_CMD_OTHER)
        return "other";
    return easq_cmd_name((enum easq_cmd)cmd);
}

#define SUM(expr)                                                                                  \
    ({                                                                                             \
        uint64_t s_ = 0;                                                                           \
        for (size_t k_ = 0; k_ < n; k_++) {                                                        \
            const struct metrics *m = ms[k_];                                                      \
            s_ += (uint64_t)M_GET(expr);                                                           \
        }                                                                                          \
        s_;                                                                                        \
    })

size_t metrics_render(struct metrics *const *ms, size_t n, const struct metrics_extra *x, char *buf,
                      size_t cap)
{
    struct out o = {buf, 0, cap};
    if (cap)
        buf[0] = '\0';
    put(&o, "# HELP easgate_requests_total Requests by instance, command and decision.\n"
            "# TYPE easgate_requests_total counter\n");
    for (size_t i = 0; i < x->n_inst && i < M_INST_MAX; i++) {
        for (int c = 0; c < M_NCMD; c++) {
            for (int d = 0; d < M_NDEC; d++) {
                uint64_t v = SUM(m->requests[i][c][d]);
                if (v)
                    put(&o,
                        "easgate_requests_total{instance_name=\"%s\",command=\"%s\","
                        "decision=\"%s\"} %llu\n",
                        x->inst_names[i], cmd_label(c), decision_names[d], (unsigned long long)v);
            }
        }
    }
    put(&o, "# HELP easgate_upstream_latency_seconds Request sent to response head received.\n"
            "# TYPE easgate_upstream_latency_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i <= M_LAT_BUCKETS; i++) {
        cum += SUM(m->lat_bucket[i]);
        if (i < M_LAT_BUCKETS)
            put(&o, "easgate_upstream_latency_seconds_bucket{le=\"%g\"} %llu\n",
                m_lat_bounds_ms[i] / 1000.0, (unsigned long long)cum);
        else
            put(&o, "easgate_upstream_latency_seconds_bucket{le=\"+Inf\"} %llu\n",
                (unsigned long long)cum);
    }
    put(&o, "easgate_upstream_latency_seconds_sum %.6f\n", (double)SUM(m->lat_sum_us) / 1e6);
    put(&o, "easgate_upstream_latency_seconds_count %llu\n", (unsigned long long)SUM(m->lat_count));

    struct {
        const char *name, *type, *help;
        uint64_t v;
    } rows[] = {
        {"easgate_open_connections", "gauge", "Client connections open now.", SUM(m->open_conns)},
        {"easgate_connections_total", "counter", "Client connections accepted.",
         SUM(m->conns_total)},
        {"easgate_held_pings", "gauge", "Ping long polls held open now.", SUM(m->held_now)},
        {"easgate_tls_handshakes_total", "counter", "TLS handshakes completed (both sides).",
         SUM(m->tls_handshakes)},
        {"easgate_tls_errors_total", "counter", "TLS handshakes or sessions that failed.",
         SUM(m->tls_errors)},
        {"easgate_tls_handshake_timeouts_total", "counter",
         "Client connections closed because the TLS handshake took longer than "
         "timeouts.handshake.",
         SUM(m->tls_handshake_timeouts)},
        {"easgate_upstream_connects_total", "counter", "Upstream connections opened.",
         SUM(m->upstream_connects)},
        {"easgate_upstream_errors_total", "counter",
         "Upstream connect, TLS, reset or timeout failures.", SUM(m->upstream_errors)},
        {"easgate_rejected_connections_total{limit=\"total\"}", "counter",
         "Connections refused by limits.", SUM(m->rejected_total_limit)},
        {"easgate_rejected_connections_total{limit=\"per_client\"}", "", "",
         SUM(m->rejected_client_limit)},
        {"easgate_budget_refused_total{budget=\"device\"}", "counter",
         "Requests answered 503 because a request budget ran out.", SUM(m->budget_refused[0])},
        {"easgate_budget_refused_total{budget=\"user\"}", "", "", SUM(m->budget_refused[1])},
        {"easgate_budget_refused_total{budget=\"client\"}", "", "", SUM(m->budget_refused[2])},
        {"easgate_auth_failures_total", "counter",
         "Exchange's 401 answers to requests with credentials, counted against the sender.",
         SUM(m->auth_failures)},
        {"easgate_auth_blocks_total{scope=\"client\"}", "counter",
         "Blocks made because of failed logins.", SUM(m->auth_blocks[0])},
        {"easgate_auth_blocks_total{scope=\"user\"}", "", "", SUM(m->auth_blocks[1])},
        {"easgate_auth_blocks_total{scope=\"known-device\"}", "", "", SUM(m->auth_blocks[2])},
        {"easgate_auth_refused_total{scope=\"client\"}", "counter",
         "Requests refused during a failed-login block.", SUM(m->auth_refused[0])},
        {"easgate_auth_refused_total{scope=\"user\"}", "", "", SUM(m->auth_refused[1])},
        {"easgate_auth_refused_total{scope=\"known-device\"}", "", "", SUM(m->auth_refused[2])},
        {"easgate_autoblock_crossed_total{rule=\"SyncCommands\"}", "counter",
         "Autoblock thresholds crossed (reported to the core).", SUM(m->autoblock_crossed[0])},
        {"easgate_autoblock_crossed_total{rule=\"CommandFrequency\"}", "", "",
         SUM(m->autoblock_crossed[1])},
        {"easgate_autoblock_crossed_total{rule=\"UserAgentChanges\"}", "", "",
         SUM(m->autoblock_crossed[2])},
        {"easgate_autoblock_crossed_total{rule=\"OutOfBudgets\"}", "", "",
         SUM(m->autoblock_crossed[3])},
        {"easgate_ready", "gauge", "1 when accepting traffic, 0 while draining.",
         (uint64_t)x->ready},
        {"easgate_reloads_total", "counter", "Successful SIGHUP reloads.", x->reloads},
        {"easgate_reload_failures_total", "counter", "SIGHUP reloads rejected (old kept).",
         x->reload_failures},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        if (rows[i].type[0]) {
            char base[96];
            snprintf(base, sizeof(base), "%s", rows[i].name);
            char *brace = base;
            while (*brace && *brace != '{')
                brace++;
            *brace = '\0';
            put(&o, "# HELP %s %s\n# TYPE %s %s\n", base, rows[i].help, base, rows[i].type);
        }
        put(&o, "%s %lld\n", rows[i].name, (long long)rows[i].v);
    }
    return o.len;
}
