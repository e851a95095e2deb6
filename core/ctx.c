/*
 * core_ctx: opening the core's context. See ctx.h.
 *
 * Split from the run loop (core/run.c) so that the admin API, which the
 * loop starts, and the loop do not include each other: both include this.
 */
#include "core/ctx.h"
#include "core/dir.h"

#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t core_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void core_ctx_adopt_rules(struct core_ctx *c, const struct compliance_rules *r)
{
    struct compliance_rules *n = realloc(c->retired, (c->n_retired + 1) * sizeof(*n));
    if (n) {
        c->retired = n;
        c->retired[c->n_retired++] = c->rules;
    } /* else the old policy is never freed: a leak beats a use after free */
    c->rules = *r;
}

int core_ctx_dirgrp(struct core_ctx *c, char *err, size_t errlen)
{
    if (c->dirgrp || !c->cfg->directory.enabled)
        return 0;
    if (core_dirgrp_setup(&c->cfg->directory, err, errlen) < 0)
        return -1;
    c->dirgrp = true;
    return 0;
}

void core_ctx_close(struct core_ctx *c)
{
    if (c->dirgrp)
        core_dirgrp_release();
    for (size_t i = 0; i < c->n_retired; i++)
        core_cfg_rules_free(&c->retired[i]);
    free(c->retired);
    core_cfg_rules_free(&c->rules);
    core_eng_free(&c->eng);
    rstore_push_close(c->push);
    core_reg_close(c->reg);
    conf_free(c->conf);
    memset(c, 0, sizeof(*c));
}

/* Where to write: redis.url, or the master the Sentinels name right now (ctx.h). */
int core_ctx_redis_opts(struct core_ctx *c, struct rstore_sync_opts *o)
{
    const struct conf *conf = c->conf;
    memset(o, 0, sizeof(*o));
    if (conf->redis.sentinel.master) {
        if (rstore_sentinel_master(&conf->redis, c->redis_host, sizeof(c->redis_host),
                                   &c->redis_port) < 0) {
            eg_warn("core: no sentinel named a master for '%s'", conf->redis.sentinel.master);
            return -1;
        }
    } else {
        snprintf(c->redis_host, sizeof(c->redis_host), "%s", conf->redis.host);
        c->redis_port = conf->redis.port;
    }
    o->host = c->redis_host;
    o->port = c->redis_port;
    o->password = conf->redis.password;
    o->db = conf->redis.db;
    return 0;
}

int core_ctx_open(struct core_ctx *c, const char *config, enum core_redis_need redis, char *err,
                  size_t errlen)
{
    memset(c, 0, sizeof(*c));
    char e[1024];
    core_cfg_register();
    if (conf_load(config, &c->conf, err, errlen) < 0)
        return 2;
    eg_log_set_level(c->conf->log.level);
    c->cfg = core_cfg_get(c->conf);
    if (!c->cfg) {
        snprintf(err, errlen,
                 "%s: no core: section; the management core needs at least core.database", config);
        return 2;
    }
    if (core_cfg_rules(c->conf->policy_path, &c->rules, err, errlen) < 0 ||
        core_cfg_groups_check(c->cfg, &c->rules, err, errlen) < 0)
        return 2;
    /* Rules with groups ask the directory (inline here; the running core
     * moves the asking to a thread of its own, core/run.c, and sets it up
     * whatever the rules, as a reload may bring groups). Without them a
     * command needs no bind password. */
    if (core_cfg_rules_need_dir(&c->rules) && core_ctx_dirgrp(c, err, errlen) < 0)
        return 2;
    if (redis == CORE_REDIS_REQUIRED && !c->conf->redis.enabled) {
        snprintf(err, errlen, "%s: no redis: section; the core has nowhere to write device states",
                 config);
        return 2;
    }
    if (core_reg_open(c->cfg->database, &c->reg, e, sizeof(e)) < 0) {
        snprintf(err, errlen, "%s", e);
        return 1;
    }
    if (redis != CORE_REDIS_NO && c->conf->redis.enabled) {
        struct rstore_sync_opts po;
        if (core_ctx_redis_opts(c, &po) < 0)
            snprintf(e, sizeof(e), "redis: no Sentinel answered for master '%s'",
                     c->conf->redis.sentinel.master);
        if (!po.host || rstore_push_open(&po, &c->push, e, sizeof(e)) < 0) {
            if (redis == CORE_REDIS_REQUIRED) {
                snprintf(err, errlen, "%s", e);
                return 1;
            }
            eg_warn("core: %s; the registry is updated, Redis will be resynced later", e);
        }
    }
    core_eng_init(&c->eng, c->reg, c->push, &c->rules);
    if (redis != CORE_REDIS_NO && c->conf->redis.enabled && !c->push)
        c->eng.dirty = true;
    return 0;
}
