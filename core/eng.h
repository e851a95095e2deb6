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
 *
 * Little disk per contact. A check-in or sighting whose facts equal what is
 * stored writes no device row: only its times (last seen, last check-in)
 * move. With seen_defer_ms set (the core's writer thread, core/wr.h) those
 * times wait in the engine's memory, the newest per device, and
 * core_eng_seen_flush writes them in DeviceId order every seen_defer_ms, a
 * slice at a time: a page of the narrow device_seen table then carries many
 * devices' times in one write. The registry is up to seen_defer_ms late
 * about them (the engine itself always evaluates with the newest), and
 * nothing is lost: a time only moves forward, and closing the writer
 * flushes. Without it (the CLI, tests) the times are written at once.
 *
 * State changes are logged at debug (one line each), counted by transition
 * (core_eng_stats) for the writer's periodic summary at info, and recorded
 * in the audit log (action device.state, actor "core"), which is their
 * record: except the first evaluation of a new device and a change an
 * admin action made to its own device, which its own audit row records.
 */
#ifndef EG_CORE_ENG_H
#define EG_CORE_ENG_H

#include "core/push.h"
#include "core/reg.h"
#include "policy/compliance.h"

#include <stdbool.h>
#include <stdint.h>

/* What the engine did since the counters were last reset (core_eng_stats). */
struct core_eng_stats {
    uint64_t checkins, sightings, created, evaluations, changes, audit_rows;
    uint64_t seen_deferred, seen_written; /* times buffered, times written by flushes */
    uint64_t transitions[4][4];           /* state changes, [from][to] (reason-only: from == to) */
};

struct core_eng_seen; /* private: the buffered times */

struct core_eng {
    struct core_reg *reg;          /* borrowed */
    struct rstore_push *push;      /* borrowed; NULL = no Redis (state kept in SQLite only) */
    struct compliance_rules rules; /* copied in; replace between calls to apply new rules */
    bool dirty;                    /* a push failed: resync before trusting Redis */
    bool bulk;                     /* inside evaluate_all */
    uint64_t evaluations, changes, push_failures;
    struct core_eng_stats stats;
    /* Buffer last-seen times for this long (0 = write them at once). */
    int64_t seen_defer_ms;
    /* Devices seen but never accepted (core_reg_pending_*): at most this
     * many, each for this long (0 = CORE_PENDING_MAX, CORE_PENDING_TTL_MS). */
    size_t pending_max;
    int64_t pending_ttl_ms;
    /*
     * Called with every device whose push was skipped or failed while
     * dirty (the writer remembers them for after the resync, core/wr.h).
     * deleted: announce a removal.
     */
    void (*on_unpushed)(void *arg, const char *device_id, bool deleted);
    void *unpushed_arg;
    /* private: changes wait here until their transaction commits */
    struct core_eng_pend *pend;
    size_t n_pend, cap_pend;
    size_t marks[8]; /* n_pend at each open core_eng_begin */
    int depth;
    struct core_eng_seen *seen;
    const char *cause;     /* for the audit row of a state change: "check-in", "timer", ... */
    const char *action_id; /* the device an admin action is changing (its row records it) */
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

/*
 * The same a slice at a time, for a thread that must stay responsive:
 * evaluate up to max devices after cursor (a DeviceId, "" to start) in the
 * caller's transaction, advance cursor; *done once every device was, when
 * the rules' fingerprint is stored too.
 */
int core_eng_evaluate_some(struct core_eng *e, int64_t now_ms, char cursor[CORE_DEVID_MAX + 1],
                           size_t max, size_t *n, bool *done);

/* The first of rules->devrules' device_rules that matches d as recorded
 * (device_os as "<family> <version>"), into f->rule and f->rule_reason:
 * the core mirrors the proxies' rules (docs/access-model.md). Rules with
 * `groups` ask the directory table (core/dir.h, core_dirgrp_member) as of
 * now_ms; true when one of them waits for its first answer (the device
 * is then left as it is until that comes). */
bool core_eng_rule_facts(const struct compliance_rules *rules, const struct core_device *d,
                         int64_t now_ms, struct compliance_facts *f);

/* Whether the registry was last fully evaluated with these very rules (and
 * this engine): then only due timers need a look at start. */
bool core_eng_rules_current(struct core_eng *e);

/* The devices whose timers are due (grace ends, check-in goes stale). */
int core_eng_tick(struct core_eng *e, int64_t now_ms, size_t *n);
/* At most max of them; *more when others are still due. */
int core_eng_tick_some(struct core_eng *e, int64_t now_ms, size_t max, size_t *n, bool *more);

#define CORE_PENDING_MAX 10000
#define CORE_PENDING_TTL_MS (7 * 24 * 3600 * 1000LL)

/* What became of a sighting (core_eng_sighting). */
enum core_sighted {
    CORE_SIGHTED_STORED,  /* an authenticated sighting of a registered device */
    CORE_SIGHTED_CREATED, /* an authenticated sighting registered the device */
    CORE_SIGHTED_PENDING, /* unauthenticated, unknown device: noted as pending */
    CORE_SIGHTED_IGNORED, /* unauthenticated, registered device: nothing changes */
};

/*
 * A sighting (docs/security.md section 5). authenticated: Exchange answered
 * the request 2xx, so it checked the credential of info->user: the device
 * is registered if new (its user bound), its facts merged, evaluated, as
 * core_eng_seen. Otherwise the proxy answered the request itself and nobody
 * checked anything: no registry row is created or changed (no facts, no
 * user binding, not even last seen); a device the registry does not hold is
 * noted among the pending ones, bounded by pending_max and pending_ttl_ms.
 */
int core_eng_sighting(struct core_eng *e, const char *device_id, const struct core_devinfo *info,
                      bool authenticated, const char *client_addr, int64_t when_ms, int64_t now_ms,
                      enum core_sighted *out);

/* A device a proxy saw: registered (unmanaged) if new, facts merged, evaluated. */
int core_eng_seen(struct core_eng *e, const char *device_id, const struct core_devinfo *info,
                  int64_t now_ms, bool *created);

/* A device's check-in: facts stored, evaluated. ENOTFOUND for unknown devices. */
int core_eng_checkin(struct core_eng *e, const char *device_id, const struct core_checkin *c,
                     int64_t now_ms);
/* The same; out (may be NULL) gets the device after its evaluation. */
int core_eng_checkin_get(struct core_eng *e, const char *device_id, const struct core_checkin *c,
                         int64_t now_ms, struct core_device *out);

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

/*
 * A proxy's autoblock report (core/sight.c): the registered device
 * device_id (canonical) is blocked until until_ms with the reason
 * "autoblock:RULE" (quarantined, reason "autoquarantine:RULE", when
 * quarantine: the policy's action), audited (device.autoblock, actor "proxy", address and
 * detail as given), evaluated and pushed. The block only ever moves later:
 * a replay of the same report, or one that ends earlier than the block in
 * force, changes nothing and *applied stays false; so does one already
 * over at now_ms. ENOTFOUND for a device the registry does not hold
 * (nothing is created). An admin's allow or reset lifts it; an override
 * outranks it while it lasts (compliance.h).
 */
int core_eng_autoblock(struct core_eng *e, const char *device_id, const char *rule, bool quarantine,
                       int64_t until_ms, const char *address, const char *detail, int64_t now_ms,
                       bool *applied);

/*
 * An admin revokes the certificate serial of device_id (core_reg_cert_revoke):
 * with an admin_actions row ("cert-revoke") and an audit row
 * (enroll.revoke, target the device, detail the serial and reason) in the
 * same transaction. When it was the portal certificate the device is bound
 * to, the binding goes with it: the device moves to a new version and is
 * pushed without it. ENOTFOUND: no such unrevoked certificate of the device.
 */
int core_eng_cert_revoke(struct core_eng *e, const char *device_id, const char *serial,
                         const char *reason, const char *actor, const char *address,
                         int64_t now_ms);

/* Push the device as the registry holds it, at its current version (after
 * the open transaction commits): fields beside the state (policy_key) reach
 * its hash without an announcement, since no proxy decides on them. */
int core_eng_push(struct core_eng *e, const char *device_id);

/* Rewrite Redis from the registry (push.h); clears dirty on success. */
int core_eng_resync(struct core_eng *e, struct rstore_resync_stats *st);

/*
 * The buffered times (seen_defer_ms): start a flush when none runs and
 * either force is set, seen_defer_ms has passed since the last one, or the
 * buffer is large; then write up to max of the flushing times in the
 * caller's transaction. *pending (may be NULL): times still to be written
 * by this flush. core_eng_seen_flush_all writes everything now (closing).
 */
int core_eng_seen_flush(struct core_eng *e, int64_t now_ms, bool force, size_t max,
                        size_t *pending);
int core_eng_seen_flush_all(struct core_eng *e, int64_t now_ms);
/* Times waiting in memory (both the buffer and a flush under way). */
size_t core_eng_seen_buffered(const struct core_eng *e);

/* A row of a bulk import (POST /api/v1/devices/import). NULL / -1 = leave. */
struct core_import_row {
    const char *device_id, *user, *device_type, *model, *os, *os_version, *note;
    int managed;  /* -1, 0, 1 */
    int override; /* -1, else enum compliance_override (none = the rules decide again) */
};

enum core_import_outcome {
    CORE_IMPORT_UNCHANGED,
    CORE_IMPORT_CREATED,
    CORE_IMPORT_UPDATED,
    CORE_IMPORT_ERROR,
};

struct core_import_res {
    enum core_import_outcome outcome;
    char what[480]; /* the changes ("user: a -> b; managed: no -> yes"), or the error */
};

/*
 * Import rows in one transaction (the caller's): each row creates its
 * device or brings the stored one to what the row says, recorded in the
 * device's history (action "import", the row's note) and evaluated. A row
 * naming a user the registry does not have is an error unless
 * create_users. dry_run computes the same outcomes and writes nothing.
 * *errors counts the rows in error; with any, the caller rolls back.
 */
int core_eng_import(struct core_eng *e, const struct core_import_row *rows, size_t n, bool dry_run,
                    bool create_users, const char *actor, const char *address, int64_t now_ms,
                    struct core_import_res *res, size_t *errors);
/*
 * Only what core_eng_import would refuse each row for (a DeviceId that is
 * none, an unknown user unless create_users): the check a client makes of
 * a whole file before it stores any batch. Reads no device and writes
 * nothing; the outcome of a row that passes is UNCHANGED.
 */
int core_eng_import_check(struct core_eng *e, const struct core_import_row *rows, size_t n,
                          bool create_users, struct core_import_res *res, size_t *errors);

#endif
