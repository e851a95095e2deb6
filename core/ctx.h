/*
 * core_ctx: the context every part of the management core opens from the
 * configuration file: configuration, compliance rules, registry, Redis and
 * the engine over them. `easgate core` and its maintenance commands, the
 * run loop (core/run.h), the admin API (core/api.h) and the enrollment
 * endpoint each open their own, so that none shares a SQLite or Redis
 * connection across threads.
 *
 * Errors: core_ctx_open returns the CLI's exit statuses (0, 1, 2; see
 * below) because its callers are commands; core_ctx_redis_opts 0 or -1.
 */
#ifndef EG_CORE_CTX_H
#define EG_CORE_CTX_H

#include "common/conf.h"
#include "connectors/rstore_sync.h"
#include "core/cfg.h"
#include "core/eng.h"

#include <stddef.h>
#include <stdint.h>

struct core_ctx {
    struct conf *conf;
    const struct core_cfg *cfg;
    struct compliance_rules rules;
    struct core_reg *reg;
    struct rstore_push *push; /* NULL while Redis is away or not configured */
    struct core_eng eng;
    /* private: rules replaced by a reload, kept until close (the writer's
     * and the API's engines may still hold copies pointing at them) */
    struct compliance_rules *retired;
    size_t n_retired;
    /* private: the Redis address in use (from url, or from the Sentinels) */
    char redis_host[256];
    int redis_port;
    bool dirgrp; /* private: holds a core_dirgrp_setup */
};

enum core_redis_need { CORE_REDIS_NO, CORE_REDIS_TRY, CORE_REDIS_REQUIRED };

/* Set up the directory's group table (core/dir.h, core_dirgrp_setup) for
 * c, once; a no-op without core.directory. 0, or -1 with err. */
int core_ctx_dirgrp(struct core_ctx *c, char *err, size_t errlen);

/*
 * Load FILE (registering the core: section), the compliance rules, open the
 * registry and, as asked, Redis. Returns 0, 2 for a configuration error or
 * 1 for a failure to open something, with the message in err; close with
 * core_ctx_close either way.
 */
int core_ctx_open(struct core_ctx *c, const char *config, enum core_redis_need redis, char *err,
                  size_t errlen);
void core_ctx_close(struct core_ctx *c);

/* Adopt rules read by a reload (core_cfg_rules): c->rules becomes r, the
 * old ones are kept until core_ctx_close. */
void core_ctx_adopt_rules(struct core_ctx *c, const struct compliance_rules *r);

/*
 * Where c writes to Redis now: redis.url, or the master the Sentinels name
 * at this moment (rstore_sentinel_master; the address is kept in c, which o
 * points into). 0, or -1 if no Sentinel named one.
 */
int core_ctx_redis_opts(struct core_ctx *c, struct rstore_sync_opts *o);

/* Wall-clock milliseconds, the core's notion of "now". */
int64_t core_now_ms(void);

#endif
