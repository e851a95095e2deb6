/*
 * core_cfg: the `core:` section of easgate.yaml (the management core's own
 * settings) and the compliance rules it reads from the policy file.
 *
 * The section is declared as a ytree key table and registered with
 * conf_register_section() (call core_cfg_register() before conf_load), so it
 * is validated with the rest of the file, with FILE:LINE:COL errors, and
 * printed by `easgate check`. Documented in docs/core.md.
 */
#ifndef EG_CORE_CFG_H
#define EG_CORE_CFG_H

#include "common/conf.h"
#include "core/dir.h"
#include "core/notify.h"
#include "policy/compliance.h"
#include "policy/pol.h"

#include <stddef.h>
#include <stdint.h>

struct core_cfg {
    const char *database;   /* SQLite registry path, relative to the config file */
    int64_t tick_ms;        /* how often due timers (grace, stale check-ins) are looked at */
    int64_t redis_retry_ms; /* after a Redis failure, reconnect and resync this often */
    bool resync_at_start;   /* rewrite every device into Redis when the core starts */
    const char *consumer;   /* sightings consumer name; NULL = "hostname/pid" */
    /* The admin API (core/api.h); listen.port 0 = no API. */
    struct units_addr listen;
    struct {
        const char *cert, *key; /* both NULL = plain HTTP (loopback only) */
    } tls;
    int64_t api_max_body;    /* bytes of a request body; over -> 413 */
    int64_t session_ttl_ms;  /* a login session expires after */
    int64_t console_idle_ms; /* a console session unused this long expires */
    /* Scale (docs/core.md, "Scale"). */
    int api_threads;            /* the API's readers, each with a registry connection */
    int login_threads;          /* the API's argon2 password checks */
    int64_t last_seen_flush_ms; /* last-seen times are buffered this long at most */
    int64_t log_summary_ms;     /* the info summary of the core's work; 0 = none */
    int pending_max;            /* devices seen but never accepted: at most this many */
    int64_t pending_ttl_ms;     /* each kept this long after its last sighting */
    /* Abuse (docs/security.md, "The core against its own clients"). */
    int login_free_failures;       /* per account and per address, within login_window */
    int64_t login_window_ms;       /* failures are counted this long from the first */
    int64_t login_backoff_ms;      /* the first wait past the free failures; doubles */
    int64_t login_backoff_max_ms;  /* the longest wait (a lockout an admin can lift) */
    int64_t login_audit_window_ms; /* one audit row per account and address per window */
    int api_max_conns_per_client;  /* connections from one address to the API */
    int64_t api_head_timeout_ms;   /* a request must arrive whole within this */

    /* Mail and webhooks (core/notify.h); LDAP / Active Directory (core/dir.h). */
    struct core_notify_cfg notify;
    struct core_dir_cfg directory;
};

/* Register the `core:` section with the configuration loader (idempotent). */
int core_cfg_register(void);

/* The section of a loaded conf, or NULL when the file has no `core:`. */
const struct core_cfg *core_cfg_get(const struct conf *c);

/*
 * Read the policy file at path for the core: its `compliance:` section
 * into *rules (rules without the section: compliance_rules_init, with
 * unmanaged_devices following unknown_devices), and its device_rules into
 * rules->devrules, which holds a reference to the loaded policy until
 * core_cfg_rules_free (copies of *rules share it). NULL path = no policy
 * file: the defaults of an empty one, named CORE_CFG_NO_POLICY (so
 * unmanaged_devices is allow, as unknown_devices is by default).
 * 0, or negative with "FILE:LINE:COL: message" in err.
 */
#define CORE_CFG_NO_POLICY POL_NO_FILE
int core_cfg_rules(const char *path, struct compliance_rules *rules, char *err, size_t errlen);
void core_cfg_rules_free(struct compliance_rules *rules);

/* Whether the rules name directory groups (device_rules or compliance). */
bool core_cfg_rules_need_dir(const struct compliance_rules *rules);

/* Device rules with `groups` need core.directory: 0, or -1 with
 * "POLICY:LINE:COL: ..." in err (cc NULL: no core section, nothing to say). */
int core_cfg_groups_check(const struct core_cfg *cc, const struct compliance_rules *rules,
                          char *err, size_t errlen);

#endif
