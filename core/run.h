/*
 * core_run: the management core as a running service, and the context every
 * `easgate core` command opens (configuration, rules, registry, Redis,
 * engine).
 *
 * core_run() is the loop of `easgate core -c FILE` and of the core inside
 * `easgate run`: evaluate everything, resync, then wait for sightings up to
 * one tick at a time, fire due timers, and retry Redis while it is away. It
 * returns when *stop becomes non-zero (checked at least once per tick).
 * Signals are the caller's business: the CLI sets *stop on TERM/INT and
 * *reload on HUP; `easgate run` lets the proxy own the signals.
 */
#ifndef EG_CORE_RUN_H
#define EG_CORE_RUN_H

#include "common/conf.h"
#include "core/cfg.h"
#include "core/eng.h"

#include <signal.h>
#include <stddef.h>

struct core_ctx {
    struct conf *conf;
    const struct core_cfg *cfg;
    struct compliance_rules rules;
    struct core_reg *reg;
    struct rstore_push *push; /* NULL while Redis is away or not configured */
    struct core_eng eng;
    /* private: the Redis address in use (from url, or from the Sentinels) */
    char redis_host[256];
    int redis_port;
};

enum core_redis_need { CORE_REDIS_NO, CORE_REDIS_TRY, CORE_REDIS_REQUIRED };

/*
 * Load FILE (registering the core: section), the compliance rules, open the
 * registry and, as asked, Redis. Returns 0, 2 for a configuration error or
 * 1 for a failure to open something, with the message in err; close with
 * core_ctx_close either way.
 */
int core_ctx_open(struct core_ctx *c, const char *config, enum core_redis_need redis, char *err,
                  size_t errlen);
void core_ctx_close(struct core_ctx *c);

/* Wall-clock milliseconds, the core's notion of "now". */
int64_t core_now_ms(void);

/* Run until *stop; *reload (may be NULL) re-reads the rules. 0 or 1 on a fatal error. */
int core_run(struct core_ctx *c, volatile sig_atomic_t *stop, volatile sig_atomic_t *reload);

#endif
