/*
 * core_metrics: the core's counters (core/metrics.h). Plain relaxed
 * atomics in one static set: the core is one per process and its threads
 * only add; the API thread reads them when scraped, a moment's skew between
 * two counters is harmless.
 */
#include "core/metrics.h"
#include "core/notify.h"

#include "common/promx.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define CM_ROUTES_MAX 32 /* the API's routes and health paths (23), plus one for "no route" */
/* The statuses the API answers with; anything else counts as "other". */
static const int cm_statuses[] = {200, 201, 400, 401, 403, 404, 405,
                                  409, 413, 415, 422, 431, 500, 503};
#define CM_NSTATUS (sizeof(cm_statuses) / sizeof(cm_statuses[0]) + 1)
/* Resync durations, seconds. */
static const double cm_buckets[] = {0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60};
#define CM_NBUCKETS (sizeof(cm_buckets) / sizeof(cm_buckets[0]))

static struct {
    atomic_ullong evals[4]; /* by enum compliance_state */
    atomic_ullong pushes_ok, pushes_failed, checkins, login_failures;
    atomic_ullong resyncs_failed, resync_count, resync_sum_us, resync_buckets[CM_NBUCKETS];
    atomic_llong last_resync_ms, sight_lag_ms;
    atomic_ullong sightings;
    atomic_ullong groups, group_jobs, checkpoints, checkpoint_pages, wal_frames;
    atomic_int redis_ok, registry_ok, resynced;
    atomic_ullong api[CM_ROUTES_MAX][CM_NSTATUS];
} cm;

static const char *const *cm_routes;
static size_t cm_nroutes;

void core_metrics_evaluation(enum compliance_state result)
{
    if ((unsigned)result < 4)
        atomic_fetch_add_explicit(&cm.evals[result], 1, memory_order_relaxed);
}

void core_metrics_push(bool ok)
{
    atomic_fetch_add_explicit(ok ? &cm.pushes_ok : &cm.pushes_failed, 1, memory_order_relaxed);
}

void core_metrics_checkin(void)
{
    atomic_fetch_add_explicit(&cm.checkins, 1, memory_order_relaxed);
}

void core_metrics_group(size_t jobs)
{
    atomic_fetch_add_explicit(&cm.groups, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&cm.group_jobs, jobs, memory_order_relaxed);
}

void core_metrics_checkpoint(int pages)
{
    atomic_fetch_add_explicit(&cm.checkpoints, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&cm.checkpoint_pages, (unsigned long long)(pages > 0 ? pages : 0),
                              memory_order_relaxed);
}

void core_metrics_wal(int frames)
{
    atomic_fetch_add_explicit(&cm.wal_frames, (unsigned long long)(frames > 0 ? frames : 0),
                              memory_order_relaxed);
}

void core_metrics_resync(int64_t ms, bool ok)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (!ok) {
        atomic_fetch_add_explicit(&cm.resyncs_failed, 1, memory_order_relaxed);
        return;
    }
    double s = (double)ms / 1000.0;
    for (size_t i = 0; i < CM_NBUCKETS; i++)
        if (s <= cm_buckets[i])
            atomic_fetch_add_explicit(&cm.resync_buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&cm.resync_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&cm.resync_sum_us, (unsigned long long)(ms * 1000),
                              memory_order_relaxed);
    atomic_store_explicit(&cm.last_resync_ms, now_ms, memory_order_relaxed);
    atomic_store_explicit(&cm.resynced, 1, memory_order_relaxed);
}

void core_metrics_sightings(int64_t lag_ms, size_t handled)
{
    atomic_store_explicit(&cm.sight_lag_ms, lag_ms > 0 ? lag_ms : 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&cm.sightings, handled, memory_order_relaxed);
}

void core_metrics_redis(bool ok)
{
    atomic_store_explicit(&cm.redis_ok, ok, memory_order_relaxed);
}

void core_metrics_no_redis(void)
{
    atomic_store(&cm.redis_ok, 1);
    atomic_store(&cm.resynced, 1);
}

void core_metrics_registry(bool ok)
{
    atomic_store_explicit(&cm.registry_ok, ok, memory_order_relaxed);
}

void core_metrics_routes(const char *const *patterns)
{
    size_t n = 0;
    while (patterns[n] && n + 1 < CM_ROUTES_MAX)
        n++;
    cm_routes = patterns;
    cm_nroutes = n;
}

void core_metrics_api(const char *route, int status)
{
    size_t r = cm_nroutes; /* "none" */
    for (size_t i = 0; route && i < cm_nroutes; i++)
        if (strcmp(cm_routes[i], route) == 0)
            r = i;
    size_t s = CM_NSTATUS - 1;
    for (size_t i = 0; i + 1 < CM_NSTATUS; i++)
        if (cm_statuses[i] == status)
            s = i;
    atomic_fetch_add_explicit(&cm.api[r][s], 1, memory_order_relaxed);
}

void core_metrics_login_failure(void)
{
    atomic_fetch_add_explicit(&cm.login_failures, 1, memory_order_relaxed);
}

int core_metrics_ready(char *why, size_t n)
{
    if (!atomic_load(&cm.registry_ok)) {
        snprintf(why, n, "not ready; registry: not open");
        return 0;
    }
    if (!atomic_load(&cm.redis_ok)) {
        snprintf(why, n,
                 "not ready; registry: open; redis: not connected (the registry is "
                 "updated, proxies see changes when Redis is back)");
        return 0;
    }
    if (!atomic_load(&cm.resynced)) {
        snprintf(why, n, "not ready; registry: open; redis: connected; resync: not done yet");
        return 0;
    }
    snprintf(why, n, "ready; registry: open; redis: connected; resync: done");
    return 1;
}

#define LD(x) ((unsigned long long)atomic_load_explicit(&(x), memory_order_relaxed))

int core_metrics_render(char *buf, size_t n)
{
    size_t len = 0;
    int rc = promx_build_info(buf, n, &len, "core");
    rc |= promx_process(buf, n, &len);
    static const char *const states[] = {"allow", "block", "quarantine", "wipe"};
    rc |= promx_put(
        buf, n, &len,
        "# HELP easgate_core_evaluations_total Compliance evaluations by resulting state.\n"
        "# TYPE easgate_core_evaluations_total counter\n");
    for (int i = 0; i < 4; i++)
        rc |= promx_put(buf, n, &len, "easgate_core_evaluations_total{result=\"%s\"} %llu\n",
                        states[i], LD(cm.evals[i]));
    rc |= promx_put(buf, n, &len,
                    "# HELP easgate_core_checkins_total Device check-ins stored.\n"
                    "# TYPE easgate_core_checkins_total counter\n"
                    "easgate_core_checkins_total %llu\n"
                    "# HELP easgate_core_writer_groups_total Transactions of queued changes the "
                    "writer committed (group commit).\n"
                    "# TYPE easgate_core_writer_groups_total counter\n"
                    "easgate_core_writer_groups_total %llu\n"
                    "# HELP easgate_core_writer_jobs_total Changes committed in those groups.\n"
                    "# TYPE easgate_core_writer_jobs_total counter\n"
                    "easgate_core_writer_jobs_total %llu\n"
                    "# HELP easgate_core_checkpoints_total WAL checkpoints of the registry.\n"
                    "# TYPE easgate_core_checkpoints_total counter\n"
                    "easgate_core_checkpoints_total %llu\n"
                    "# HELP easgate_core_checkpoint_pages_total WAL frames the checkpoints copied "
                    "into the registry file (a page with several is written once).\n"
                    "# TYPE easgate_core_checkpoint_pages_total counter\n"
                    "easgate_core_checkpoint_pages_total %llu\n"
                    "# HELP easgate_core_wal_frames_total Pages the writer's commits appended to "
                    "the registry's WAL.\n"
                    "# TYPE easgate_core_wal_frames_total counter\n"
                    "easgate_core_wal_frames_total %llu\n"
                    "# HELP easgate_core_pushes_total Device states written to Redis, by result.\n"
                    "# TYPE easgate_core_pushes_total counter\n"
                    "easgate_core_pushes_total{result=\"ok\"} %llu\n"
                    "easgate_core_pushes_total{result=\"failed\"} %llu\n"
                    "# HELP easgate_core_resync_failures_total Resyncs that did not complete.\n"
                    "# TYPE easgate_core_resync_failures_total counter\n"
                    "easgate_core_resync_failures_total %llu\n"
                    "# HELP easgate_core_resync_duration_seconds How long completed resyncs took.\n"
                    "# TYPE easgate_core_resync_duration_seconds histogram\n",
                    LD(cm.checkins), LD(cm.groups), LD(cm.group_jobs), LD(cm.checkpoints),
                    LD(cm.checkpoint_pages), LD(cm.wal_frames), LD(cm.pushes_ok),
                    LD(cm.pushes_failed), LD(cm.resyncs_failed));
    for (size_t i = 0; i < CM_NBUCKETS; i++)
        rc |=
            promx_put(buf, n, &len, "easgate_core_resync_duration_seconds_bucket{le=\"%g\"} %llu\n",
                      cm_buckets[i], LD(cm.resync_buckets[i]));
    rc |= promx_put(buf, n, &len,
                    "easgate_core_resync_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
                    "easgate_core_resync_duration_seconds_sum %.6f\n"
                    "easgate_core_resync_duration_seconds_count %llu\n",
                    LD(cm.resync_count), (double)LD(cm.resync_sum_us) / 1e6, LD(cm.resync_count));
    if (atomic_load(&cm.resynced))
        rc |= promx_put(buf, n, &len,
                        "# HELP easgate_core_last_resync_timestamp_seconds When the last resync "
                        "completed (Unix time).\n"
                        "# TYPE easgate_core_last_resync_timestamp_seconds gauge\n"
                        "easgate_core_last_resync_timestamp_seconds %.3f\n",
                        (double)atomic_load(&cm.last_resync_ms) / 1000.0);
    rc |= promx_put(
        buf, n, &len,
        "# HELP easgate_core_sightings_total Sightings handled.\n"
        "# TYPE easgate_core_sightings_total counter\n"
        "easgate_core_sightings_total %llu\n"
        "# HELP easgate_core_sightings_lag_seconds Age of the newest sighting when the core "
        "handled it; 0 when caught up.\n"
        "# TYPE easgate_core_sightings_lag_seconds gauge\n"
        "easgate_core_sightings_lag_seconds %.3f\n"
        "# HELP easgate_core_redis_connected 1 when the core's run loop has Redis "
        "(connected and resynced).\n"
        "# TYPE easgate_core_redis_connected gauge\n"
        "easgate_core_redis_connected %d\n"
        "# HELP easgate_core_login_failures_total Admin API logins refused (wrong name or "
        "password, disabled account).\n"
        "# TYPE easgate_core_login_failures_total counter\n"
        "easgate_core_login_failures_total %llu\n"
        "# HELP easgate_core_api_requests_total Admin API requests by route and status.\n"
        "# TYPE easgate_core_api_requests_total counter\n",
        LD(cm.sightings), (double)atomic_load(&cm.sight_lag_ms) / 1000.0, atomic_load(&cm.redis_ok),
        LD(cm.login_failures));
    for (size_t r = 0; r <= cm_nroutes; r++)
        for (size_t s = 0; s < CM_NSTATUS; s++) {
            unsigned long long v = LD(cm.api[r][s]);
            if (!v)
                continue;
            char st[8];
            if (s + 1 < CM_NSTATUS)
                snprintf(st, sizeof(st), "%d", cm_statuses[s]);
            else
                snprintf(st, sizeof(st), "other");
            rc |= promx_put(buf, n, &len,
                            "easgate_core_api_requests_total{route=\"%s\",status=\"%s\"} %llu\n",
                            r < cm_nroutes ? cm_routes[r] : "none", st, v);
        }
    rc |= core_notify_metrics(buf, n, &len);
    return rc ? -1 : (int)len;
}
