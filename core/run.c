/*
 * core_run: the core's service loop. See run.h.
 */
#include "core/run.h"

#include "common/log.h"
#include "core/api.h"
#include "core/sight.h"
#include "core/metrics.h"
#include "core/dir.h"
#include "core/notify.h"
#include "core/wr.h"
#include "policy/pol.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Rewrite Redis from the registry on the run loop's own connections. 0 or -1. */
static int try_resync(struct core_ctx *c)
{
    if (!c->conf->redis.enabled)
        return 0;
    if (!c->push) {
        struct rstore_sync_opts po;
        char err[512];
        if (core_ctx_redis_opts(c, &po) < 0)
            return -1;
        if (rstore_push_open(&po, &c->push, err, sizeof(err)) < 0) {
            eg_warn("core: %s", err);
            return -1;
        }
        c->eng.push = c->push;
        eg_info("core: writing to redis %s:%d", c->redis_host, c->redis_port);
    }
    struct rstore_resync_stats st;
    if (core_eng_resync(&c->eng, &st) < 0) {
        eg_warn("core: resync failed: %s; retrying in %lld ms", rstore_push_error(c->push),
                (long long)c->cfg->redis_retry_ms);
        /* Reconnect from scratch next time: with Sentinel the master may have moved. */
        rstore_push_close(c->push);
        c->push = c->eng.push = NULL;
        return -1;
    }
    eg_info("core: resync: %zu devices written, %zu stale keys removed in %lld ms", st.written,
            st.removed, (long long)st.elapsed_ms);
    return 0;
}

/* The writer holds its pushes back: resync around it (core/wr.h). */
static void resync_writer(struct core_ctx *c, struct core_wr *wr)
{
    if (core_wr_resync_begin(wr) < 0)
        return;
    c->eng.dirty = true;
    if (try_resync(c) == 0 && core_wr_resync_done(wr) < 0)
        eg_warn("core: redis changed under the resync; resyncing again in %lld ms",
                (long long)c->cfg->redis_retry_ms);
}

/* The writer adopts the rules and re-evaluates every device, a slice at a time. */
static void reload_rules(struct core_ctx *c, struct core_wr *wr, struct core_api *api)
{
    char err[1024];
    struct compliance_rules r;
    if (core_cfg_rules(c->conf->policy_path, &r, err, sizeof(err)) < 0) {
        eg_error("core: reload: %s; keeping the rules in force", err);
        return;
    }
    if (core_cfg_groups_check(c->cfg, &r, err, sizeof(err)) < 0) {
        eg_error("core: reload: %s; keeping the rules in force", err);
        core_cfg_rules_free(&r);
        return;
    }
    core_ctx_adopt_rules(c, &r);
    c->eng.rules = r;
    core_wr_reload(wr, &r);
    core_api_rules(api, &r);
    eg_info("core: reload: compliance rules re-read; re-evaluating every device");
}

/* The sightings consumer: "hostname/pid" unless core.consumer names it. */
static struct rstore_consume *sight_open(struct core_ctx *c)
{
    if (!c->conf->redis.enabled)
        return NULL;
    char name[300], host[256] = "core";
    if (c->cfg->consumer) {
        snprintf(name, sizeof(name), "%s", c->cfg->consumer);
    } else {
        if (gethostname(host, sizeof(host) - 1) < 0)
            snprintf(host, sizeof(host), "core");
        snprintf(name, sizeof(name), "%s/%d", host, (int)getpid());
    }
    struct rstore_sync_opts po;
    if (core_ctx_redis_opts(c, &po) < 0)
        return NULL;
    struct rstore_consume *s = NULL;
    char err[512];
    if (rstore_consume_open(&po, name, (int)c->cfg->tick_ms, &s, err, sizeof(err)) < 0) {
        eg_warn("core: sightings: %s; retrying in %lld ms", err, (long long)c->cfg->redis_retry_ms);
        return NULL;
    }
    eg_info("core: reading %s as consumer '%s' of group '%s'", RSTORE_STREAM, name, RSTORE_GROUP);
    return s;
}

/* Redis lost or back is an audit event (core.redis_down, core.redis_up), so
 * admins and webhooks hear of it like any other (docs/notifications.md). */
static void redis_watch(struct core_ctx *c, bool ok, bool *was_ok)
{
    if (ok == *was_ok)
        return;
    *was_ok = ok;
    char target[300];
    snprintf(target, sizeof(target), "%s:%d", c->redis_host, c->redis_port);
    if (core_reg_audit_add(c->reg, "core", "", ok ? "core.redis_up" : "core.redis_down", target,
                           ok ? "redis written and read again"
                              : "redis cannot be written or read; proxies serve cached state",
                           core_now_ms()) < 0)
        eg_warn("core: the redis %s event could not be audited", ok ? "up" : "down");
}

int core_run(struct core_ctx *c, volatile sig_atomic_t *stop, volatile sig_atomic_t *reload)
{
    /* No thread of the running core waits for the directory: group rules
     * are answered by the directory table's own thread (core/dir.h). */
    char derr[1024];
    if (core_ctx_dirgrp(c, derr, sizeof(derr)) < 0) {
        eg_error("core: %s", derr);
        return 1;
    }
    core_dirgrp_defer();
    /* With a resync coming, evaluate without pushing one device at a time:
     * the resync pipelines the lot. */
    if (c->cfg->resync_at_start && c->conf->redis.enabled)
        c->eng.dirty = true;
    size_t n = 0;
    if (core_eng_rules_current(&c->eng)) {
        /* Same rules as the last full evaluation: the stored states stand and
         * the timers carry everything time changes. A big registry restarts
         * in seconds instead of re-evaluating every device. */
        if (core_eng_tick(&c->eng, core_now_ms(), &n) < 0) {
            eg_error("core: evaluating due timers failed");
            return 1;
        }
        eg_info("core: compliance rules unchanged since the last full evaluation; %zu timers "
                "were due",
                n);
    } else if (core_eng_evaluate_all(&c->eng, core_now_ms(), &n) < 0) {
        eg_error("core: evaluating the registry failed");
        return 1;
    }
    if (c->eng.dirty)
        try_resync(c);
    eg_info("core: running with %lld devices (registry %s, tick %lld ms)",
            (long long)core_reg_device_count(c->reg), c->cfg->database, (long long)c->cfg->tick_ms);
    if (!c->conf->policy_path)
        eg_warn("core: %s names no policy file: unmanaged devices get the defaults "
                "(unknown_devices: allow, so unmanaged_devices: allow) and no device_rules; give "
                "the core the proxies' policy.yaml (policy: at the top) so both decide alike",
                c->conf->path);
    /* From here on the writer is the registry's only writer in this
     * process; this loop reads the sightings stream, hands batches over and
     * resyncs Redis when the writer needs it (docs/architecture.md). */
    struct core_wr_opts wo = {.database = c->cfg->database,
                              .conf = c->conf,
                              .rules = &c->rules,
                              .tick_ms = c->cfg->tick_ms,
                              .seen_flush_ms = c->cfg->last_seen_flush_ms,
                              .summary_ms = c->cfg->log_summary_ms,
                              .pending_max = (size_t)c->cfg->pending_max,
                              .pending_ttl_ms = c->cfg->pending_ttl_ms,
                              .redis_retry_ms = c->cfg->redis_retry_ms,
                              .start_dirty = c->eng.dirty};
    struct core_wr *wr = NULL;
    char werr[1024];
    if (core_wr_start(&wo, &wr, werr, sizeof(werr)) < 0) {
        eg_error("core: %s", werr);
        return 1;
    }
    struct core_api *api = NULL;
    char aerr[1024];
    if (core_api_start(c, wr, &api, aerr, sizeof(aerr)) < 0) {
        eg_error("core: %s", aerr);
        core_wr_stop(wr);
        return 1;
    }
    /* Notifications: their own thread and registry connection (core/notify.h). */
    struct core_notify *nt = NULL;
    if (c->cfg->notify.enabled &&
        core_notify_start(&c->cfg->notify, c->cfg->directory.enabled ? &c->cfg->directory : NULL,
                          c->cfg->database, &nt, aerr, sizeof(aerr)) < 0) {
        eg_error("core: %s", aerr);
        core_api_stop(api);
        core_wr_stop(wr);
        return 1;
    }
    if (core_dirgrp_start(c->cfg->database, wr, core_cfg_rules_need_dir(&c->rules), aerr,
                          sizeof(aerr)) < 0) {
        eg_error("core: %s", aerr);
        core_notify_stop(nt);
        core_api_stop(api);
        core_wr_stop(wr);
        return 1;
    }
    struct core_dir_syncer *ds = NULL;
    if (core_dir_syncer_start(&c->cfg->directory, c->cfg->database, wr, &ds, aerr, sizeof(aerr)) <
        0) {
        eg_error("core: %s", aerr);
        core_dirgrp_stop();
        core_notify_stop(nt);
        core_api_stop(api);
        core_wr_stop(wr);
        return 1;
    }
    int64_t next_retry = core_now_ms() + c->cfg->redis_retry_ms;
    struct rstore_consume *sight = sight_open(c);
    struct core_sight_stats sst = {0};
    core_metrics_registry(true);
    if (!c->conf->redis.enabled)
        core_metrics_no_redis();
    bool redis_ok = true;
    while (!*stop) {
        /* /readyz and easgate_core_redis_connected: Redis written and read. */
        if (c->conf->redis.enabled) {
            bool ok = c->push && !core_wr_dirty(wr) && sight;
            core_metrics_redis(ok);
            redis_watch(c, ok, &redis_ok);
        }
        /* Wait for sightings up to one tick (XREADGROUP BLOCK), or just sleep. */
        if (sight) {
            if (core_sight_poll(sight, wr, core_now_ms(), &sst) < 0) {
                eg_warn("core: sightings: %s; reconnecting in %lld ms", rstore_consume_error(sight),
                        (long long)c->cfg->redis_retry_ms);
                rstore_consume_close(sight);
                sight = NULL;
            }
        } else {
            struct timespec ts = {c->cfg->tick_ms / 1000, (c->cfg->tick_ms % 1000) * 1000000};
            nanosleep(&ts, NULL); /* a signal cuts it short, which is what we want */
        }
        if (*stop)
            break;
        if (reload && *reload) {
            *reload = 0;
            reload_rules(c, wr, api);
        }
        int64_t now = core_now_ms();
        bool dirty = core_wr_dirty(wr);
        if ((dirty || (!sight && c->conf->redis.enabled)) && now >= next_retry) {
            if (dirty)
                resync_writer(c, wr);
            if (!sight)
                sight = sight_open(c);
            next_retry = now + c->cfg->redis_retry_ms;
        }
    }
    rstore_consume_close(sight);
    core_dir_syncer_stop(ds);
    core_dirgrp_stop(); /* before the writer it calls */
    core_notify_stop(nt);
    core_api_stop(api);
    core_wr_stop(wr);
    eg_info("core: stopping (%llu sightings applied, %llu devices first seen, %llu ignored)",
            (unsigned long long)sst.applied, (unsigned long long)sst.created,
            (unsigned long long)sst.invalid);
    return 0;
}
