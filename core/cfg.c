/*
 * core_cfg: the `core:` key table and the compliance rules loader. See cfg.h.
 */
#include "core/cfg.h"

#include "common/ytree.h"
#include "policy/pol.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define SEC 1000
#define HOUR (3600LL * SEC)

#define CO(f) offsetof(struct core_cfg, f)
#define TLSOFF(f) (offsetof(struct core_cfg, tls.f) - offsetof(struct core_cfg, tls))

static int api_tls_check(void *obj, const struct yt_node *map, struct yt_ctx *ctx)
{
    const struct core_cfg *c = (const struct core_cfg *)((char *)obj - CO(tls));
    if (map && (!c->tls.cert || !c->tls.key))
        return yt_err(ctx, map, "tls: give both cert and key (or leave tls out for plain HTTP)");
    return 0;
}

static const struct yt_key api_tls_sub[] = {
    {.name = "cert", .type = YK_PATH, .off = TLSOFF(cert)},
    {.name = "key", .type = YK_PATH, .off = TLSOFF(key)},
    {.check = api_tls_check},
};
static const struct yt_key core_keys[] = {
    {.name = "database", .type = YK_PATH, .off = CO(database), .def = "easgate-registry.db"},
    {.name = "tick", .type = YK_DUR, .off = CO(tick_ms), .def = "1s", .min = 100, .max = HOUR},
    {.name = "redis_retry",
     .type = YK_DUR,
     .off = CO(redis_retry_ms),
     .def = "5s",
     .min = 100,
     .max = HOUR},
    {.name = "resync_at_start", .type = YK_BOOL, .off = CO(resync_at_start), .def = "true"},
    {.name = "consumer", .type = YK_STR, .off = CO(consumer)},
    {.name = "listen", .type = YK_ADDR, .off = CO(listen)},
    {.name = "tls", .type = YK_MAP, .off = CO(tls), .sub = api_tls_sub},
    {.name = "api_max_body",
     .type = YK_SIZE,
     .off = CO(api_max_body),
     .def = "64k",
     .min = 1024,
     .max = 16 << 20},
    {.name = "session_ttl",
     .type = YK_DUR,
     .off = CO(session_ttl_ms),
     .def = "12h",
     .min = 60 * SEC,
     .max = 30 * 24 * HOUR},
    {.name = "console_idle",
     .type = YK_DUR,
     .off = CO(console_idle_ms),
     .def = "30m",
     .min = 60 * SEC,
     .max = 24 * HOUR},
    {.name = "api_threads",
     .type = YK_INT,
     .off = CO(api_threads),
     .def = "4",
     .min = 1,
     .max = 64},
    {.name = "login_threads",
     .type = YK_INT,
     .off = CO(login_threads),
     .def = "1",
     .min = 1,
     .max = 16},
    {.name = "last_seen_flush",
     .type = YK_DUR,
     .off = CO(last_seen_flush_ms),
     .def = "1m",
     .min = SEC,
     .max = 10 * 60 * SEC},
    {.name = "log_summary",
     .type = YK_DUR,
     .off = CO(log_summary_ms),
     .def = "1m",
     .min = 0,
     .max = 24 * HOUR},
    {.name = "pending_max",
     .type = YK_INT,
     .off = CO(pending_max),
     .def = "10000",
     .min = 100,
     .max = 10000000},
    {.name = "pending_ttl",
     .type = YK_DUR,
     .off = CO(pending_ttl_ms),
     .def = "7d",
     .min = 60 * SEC,
     .max = 365 * 24 * HOUR},
    {.name = "login_free_failures",
     .type = YK_INT,
     .off = CO(login_free_failures),
     .def = "5",
     .min = 1,
     .max = 1000000},
    {.name = "login_window",
     .type = YK_DUR,
     .off = CO(login_window_ms),
     .def = "15m",
     .min = SEC,
     .max = 24 * HOUR},
    {.name = "login_backoff",
     .type = YK_DUR,
     .off = CO(login_backoff_ms),
     .def = "1s",
     .min = 100,
     .max = HOUR},
    {.name = "login_backoff_max",
     .type = YK_DUR,
     .off = CO(login_backoff_max_ms),
     .def = "15m",
     .min = 100,
     .max = 24 * HOUR},
    {.name = "login_audit_window",
     .type = YK_DUR,
     .off = CO(login_audit_window_ms),
     .def = "1m",
     .min = SEC,
     .max = HOUR},
    {.name = "api_max_conns_per_client",
     .type = YK_INT,
     .off = CO(api_max_conns_per_client),
     .def = "32",
     .min = 1,
     .max = 100000},
    {.name = "api_head_timeout",
     .type = YK_DUR,
     .off = CO(api_head_timeout_ms),
     .def = "10s",
     .min = 100,
     .max = 10 * 60 * SEC},
    {.name = "notify", .type = YK_MAP, .off = CO(notify), .sub = core_notify_keys},
    {.name = "directory", .type = YK_MAP, .off = CO(directory), .sub = core_dir_keys},
    {0},
};

static const struct conf_section core_section = {
    .name = "core",
    .size = sizeof(struct core_cfg),
    .keys = core_keys,
};

int core_cfg_register(void)
{
    return conf_register_section(&core_section);
}

const struct core_cfg *core_cfg_get(const struct conf *c)
{
    return conf_section(c, "core");
}

int core_cfg_rules(const char *path, struct compliance_rules *rules, char *err, size_t errlen)
{
    compliance_rules_init(rules);
    /* The whole policy, with the loader every proxy runs: unmanaged_devices
     * follows its unknown_devices (pol_compliance_unify), and the core
     * mirrors its device_rules (docs/access-model.md). No policy file is an
     * empty one, whose defaults a proxy with an empty file applies too
     * (unknown_devices: allow, so unmanaged_devices: allow): compliance's
     * own default (block) would block every phone the proxies let in after
     * its first sync, the rollout-day outage of issue 17. */
    struct pol_policy *p;
    int rc = path ? pol_load(path, &p, err, errlen)
                  : pol_load_buf(CORE_CFG_NO_POLICY, "", 0, &p, err, errlen);
    if (rc < 0)
        return rc;
    *rules = p->compliance;
    rules->devrules = p; /* its device_rules for the engine, all of it for explain */
    return 0;
}

bool core_cfg_rules_need_dir(const struct compliance_rules *rules)
{
    return pol_group_rule(rules->devrules) != NULL || rules->groups.n > 0;
}

int core_cfg_groups_check(const struct core_cfg *cc, const struct compliance_rules *rules,
                          char *err, size_t errlen)
{
    const struct pol_policy *p = rules->devrules;
    const struct pol_rule *r = pol_group_rule(p);
    if (!cc || cc->directory.enabled || (!r && !rules->groups.n))
        return 0;
    snprintf(err, errlen,
             "%s:%d:%d: groups: the core can only tell who is in a directory group with "
             "core.directory in easgate.yaml (docs/directory.md); configure it, or %s",
             p && p->path ? p->path : "policy", r ? r->groups_line : rules->groups_line,
             r ? r->groups_col : rules->groups_col,
             r ? "match the users with `user` instead" : "remove compliance.groups");
    return -1;
}

void core_cfg_rules_free(struct compliance_rules *rules)
{
    pol_unref((struct pol_policy *)rules->devrules);
    rules->devrules = NULL;
}
