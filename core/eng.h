/*
 * core_eng: the compliance engine. It ties the registry (what we know), the
 * rules (policy/compliance.h, pure) and the push (what proxies see):
 *
 *   facts change (check-in, sighting, admin action, a timer firing)
 *     -> compliance_evaluate()
 *     -> core_reg_set_state(): the version moves only when state or reason do
 *     -> on a move: core_push_device(), one guarded script (connectors/rstore_push.h)
 *
 * SQLite is the truth and is written first; if Redis is down the engine
 * marks itself dirty and the caller's loop resyncs when Redis answers again,
 * so a change is never lost, only late.
 *
 * Every entry point takes now_ms from the caller: the CLI passes the wall
 * clock, tests pass whatever time they need (grace periods without sleeping).
 * One engine is used by one thread.
 */
#ifndef EG_CORE_ENG_H
#define EG_CORE_ENG_H

#include "core/push.h"
#include "core/reg.h"
#include "policy/compliance.h"

#include <stdbool.h>
#include <stdint.h>

struct core_eng {
    struct core_reg *reg;          /* borrowed */
    struct rstore_push *push;      /* borrowed; NULL = no Redis (state kept in SQLite only) */
    struct compliance_rules rules; /* copied in; replace between calls to apply new rules */
    bool dirty;                    /* a push failed: resync before trusting Redis */
    bool bulk;                     /* inside evaluate_all: log changes at debug, sum at info */
    uint64_t evaluations, changes, push_failures;
    /* private: changes wait here until their transaction commits */
    struct core_eng_pend *pend;
    size_t n_pend, cap_pend;
    size_t marks[8]; /* n_pend at each open core_eng_begin */
    int depth;
};

void core_eng_init(struct core_eng *e, struct core_reg *reg, struct rstore_push *push,
                   const struct compliance_rules *rules);
/* Frees what the engine holds (not reg or push). */
void core_eng_free(struct core_eng *e);

/*
 * Transactions around several engine steps (nesting like core_reg_begin).
 * Changes are pushed to Redis only after the outermost commit, so Redis
 * never shows a state SQLite could still roll back; a rollback drops them.
 */
int core_eng_begin(struct core_eng *e);
int core_eng_commit(struct core_eng *e);
void core_eng_rollback(struct core_eng *e);

/* Re-evaluate one device and store/push the result. out (may be NULL) gets the device after. */
int core_eng_evaluate(struct core_eng *e, const char *device_id, int64_t now_ms,
                      struct core_device *out);

/* Every device (after a rules change). *n (may be NULL) counts them. Stores
 * the rules' fingerprint, so that a restart with the same rules can skip it. */
int core_eng_evaluate_all(struct core_eng *e, int64_t now_ms, size_t *n);

/* Whether the registry was last fully evaluated with these very rules (and
 * this engine): then only due timers need a look at start. */
bool core_eng_rules_current(struct core_eng *e);

/* The devices whose timers are due (grace ends, check-in goes stale). */
int core_eng_tick(struct core_eng *e, int64_t now_ms, size_t *n);

/* A device a proxy saw: registered (unmanaged) if new, facts merged, evaluated. */
int core_eng_seen(struct core_eng *e, const char *device_id, const struct core_devinfo *info,
                  int64_t now_ms, bool *created);

/* A device's check-in: facts stored, evaluated. ENOTFOUND for unknown devices. */
int core_eng_checkin(struct core_eng *e, const char *device_id, const struct core_checkin *c,
                     int64_t now_ms);

enum core_act {
    CORE_ACT_ALLOW,
    CORE_ACT_BLOCK,
    CORE_ACT_QUARANTINE,
    CORE_ACT_WIPE,
    CORE_ACT_RESET, /* drop the override, let the rules decide again */
    CORE_ACT_DELETE,
    CORE_ACT_MANAGE,   /* mark managed (enrolled), bind to the given user */
    CORE_ACT_UNMANAGE, /* mark unmanaged */
    /* Like wipe, but the proxy sends AccountOnlyRemoteWipe (EAS 16.1): the
     * phone removes the account's data only. Refused with CORE_REG_EPROTO
     * unless the device last spoke 16.1 or later: an older phone only knows
     * the full wipe, which the admin did not order. */
    CORE_ACT_WIPE_ACCOUNT,
    /* Bump the device's provisioning epoch: its policy keys change, so its
     * next request gets "provisioning needed" and it provisions again. */
    CORE_ACT_REPROVISION,
};
/* Lowest ActiveSync version with AccountOnlyRemoteWipe, as major*10+minor. */
#define CORE_EAS_ACCOUNT_WIPE 161
/* "16.1" -> 161; 0 for "" or anything that is not MAJOR.MINOR. */
int core_eas_version(const char *s);
/* "allow", "block", ..., "wipe-account", "reprovision", or -1 / NULL. */
int core_action_parse(const char *s, enum core_act *out);
const char *core_action_name(enum core_act a);

/*
 * An admin action: stored with who/where in admin_actions and the audit log
 * (one transaction with the change), then evaluated and pushed. user is
 * used by CORE_ACT_MANAGE only (NULL keeps the bound user).
 */
int core_eng_action(struct core_eng *e, const char *device_id, enum core_act a, const char *user,
                    const char *actor, const char *address, const char *note, int64_t now_ms);

/* Push the device as the registry holds it, at its current version (after
 * the open transaction commits): fields beside the state (policy_key) reach
 * its hash without an announcement, since no proxy decides on them. */
int core_eng_push(struct core_eng *e, const char *device_id);

/* Rewrite Redis from the registry (push.h); clears dirty on success. */
int core_eng_resync(struct core_eng *e, struct rstore_resync_stats *st);

#endif
