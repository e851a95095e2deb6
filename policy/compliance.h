/*
 * compliance: the `compliance:` section of policy.yaml and the pure function
 * that turns what the core knows about a device into a state and a reason.
 *
 * The evaluation has no clock, no registry and no Redis: the caller passes
 * the device's facts, the admin override and "now", and gets back the state,
 * a static reason string, the new non-compliant-since mark (which is what
 * makes the grace period survive restarts) and the next time at which the
 * answer could change by itself (so the core can arm a timer instead of
 * polling a million devices). That keeps every rule a row in a unit test.
 *
 * Order of the rules, first match wins:
 *   1. an admin override (allow, block, quarantine, wipe) wins until reset;
 *   1a. an autoblock a proxy reported (abuse.autoblock) blocks until its
 *      time is up, with its "autoblock:RULE" reason (the time is the timer),
 *      or quarantines with "autoquarantine:RULE" when the policy said so;
 *   1b. a device rule (policy.yaml device_rules, matched by the caller)
 *      that blocks or quarantines -> that, "rule:N"; one that allows
 *      replaces unmanaged_devices in step 2;
 *   2. a device no enrollment ever managed follows `unmanaged_devices`
 *      (which follows the policy's `unknown_devices`: pol_compliance_unify);
 *   3. a device beyond the user's `max_devices_per_user` (ranked by first
 *      seen) is blocked at once: a grace period would defeat the limit;
 *   4. a managed device is checked (only when its user is in one of
 *      `groups`, if the section names any: else "not-in-compliance-groups";
 *      a user the directory cannot place is checked): jailbroken, passcode, encryption,
 *      minimum OS version, check-in age. The first failed check is the
 *      reason; the device keeps access for `grace_period` after it first
 *      failed, then it is blocked. Passing every check clears the mark.
 * Facts the device never reported count as failing a required check
 * (fail closed), with their own reason, so an admin sees why.
 *
 * The OS comes from two sources kept apart (docs/security.md section 5):
 * the authenticated one (a check-in with the device's token or certificate,
 * or an admin's import) and the one the phone reports in ActiveSync
 * DeviceInformation, which any user with valid credentials can write.
 * `os_source` says which the OS check trusts; the reported value is at most
 * a fallback and never overrides an authenticated one.
 */
#ifndef EG_POLICY_COMPLIANCE_H
#define EG_POLICY_COMPLIANCE_H

#include "common/ytree.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct yt_node;
struct yt_ctx;
struct pol_policy;

/* Device states, as the state contract spells them (compliance_state_name). */
enum compliance_state {
    COMPLIANCE_ALLOW,
    COMPLIANCE_BLOCK,
    COMPLIANCE_QUARANTINE,
    COMPLIANCE_WIPE,
};

/* An admin's standing instruction for one device; NONE lets the rules decide. */
enum compliance_override {
    COMPLIANCE_OVR_NONE,
    COMPLIANCE_OVR_ALLOW,
    COMPLIANCE_OVR_BLOCK,
    COMPLIANCE_OVR_QUARANTINE,
    COMPLIANCE_OVR_WIPE,
};

/* An OS version such as "16", "16.1" or "16.1.2": up to four numbers. */
#define COMPLIANCE_VER_PARTS 4
struct compliance_ver {
    uint32_t part[COMPLIANCE_VER_PARTS]; /* missing parts are 0, so 16 == 16.0 == 16.0.0 */
};

#define COMPLIANCE_OS_FAMILY_MAX 32
#define COMPLIANCE_MAX_OS 16
struct compliance_os_min {
    char family[COMPLIANCE_OS_FAMILY_MAX]; /* compared case-insensitively: "iOS", "Android" */
    struct compliance_ver min;
};

/* Which OS facts the OS check trusts (compliance.os_source). */
enum compliance_os_source {
    COMPLIANCE_OS_AUTHENTICATED, /* only the authenticated source (default) */
    COMPLIANCE_OS_EAS_FALLBACK,  /* the authenticated one, else what EAS reported */
};

struct compliance_rules {
    bool present; /* false: the section is absent and every managed device passes */
    bool require_passcode;
    bool require_encryption;
    bool block_jailbroken;
    struct compliance_os_min os_min[COMPLIANCE_MAX_OS];
    size_t n_os_min;
    int64_t max_checkin_age_ms;      /* 0 = check-ins never go stale */
    int64_t grace_period_ms;         /* 0 = block at once */
    enum compliance_state unmanaged; /* allow, block or quarantine; default: unknown_devices */
    uint32_t max_devices_per_user;   /* 0 = no limit */
    enum compliance_os_source os_source;
    bool unmanaged_set; /* written in the file (else it follows unknown_devices) */
    /* The checks of step 4 apply only to users in one of these directory
     * groups (names; empty = everybody). Strings live in the policy's
     * document, as devrules does; groups_line/col say where, for errors. */
    struct yt_strv groups;
    int groups_line, groups_col;
    /* The policy whose device_rules the core mirrors (core/eng.c matches
     * them, compliance_facts.rule carries the result; core/explain.c reads
     * the rest); NULL = none. Not owned here, and left out of the rules'
     * fingerprint, which hashes the rules themselves. */
    const struct pol_policy *devrules;
};

/* The first of the policy's device_rules that matches a device, as the
 * core found it: the proxy applies the same rule to every request, so the
 * core's state says what the phone really gets (docs/access-model.md). */
enum compliance_rule_hit {
    COMPLIANCE_RULE_NONE = 0,
    COMPLIANCE_RULE_ALLOW,      /* replaces unmanaged_devices */
    COMPLIANCE_RULE_BLOCK,      /* wins over everything but an override */
    COMPLIANCE_RULE_QUARANTINE, /* likewise */
};

/* A fact a device reports about itself: not reported yet, false or true. */
enum compliance_tri { COMPLIANCE_UNKNOWN = -1, COMPLIANCE_NO = 0, COMPLIANCE_YES = 1 };

struct compliance_facts {
    bool managed;                   /* enrolled (or marked managed by an admin) */
    enum compliance_tri passcode;   /* a passcode is set */
    enum compliance_tri encrypted;  /* storage is encrypted */
    enum compliance_tri jailbroken; /* jailbroken or rooted */
    const char *os;                 /* authenticated family ("iOS"), NULL or "" if unknown */
    const char *os_version;         /* authenticated "16.1.2", NULL or "" if unknown */
    const char *eas_os;             /* the same as EAS DeviceInformation reported them */
    const char *eas_os_version;
    int64_t last_checkin_ms;        /* 0 = never checked in */
    int64_t non_compliant_since_ms; /* as stored by the last evaluation; 0 = compliant */
    uint32_t user_rank; /* 1-based rank among the bound user's devices by first seen; 0 = n/a */
    enum compliance_rule_hit rule; /* the first device rule that matches */
    const char *rule_reason;       /* its "rule:N" (static or the policy's) */
    /* The directory says the user is in none of rules->groups: the checks
     * do not apply. False (the default) whenever it did not say so, the
     * directory being away included: the checks apply (fail closed). */
    bool groups_exempt;
    int64_t autoblock_until_ms;   /* blocked by an autoblock until then; 0 = none */
    const char *autoblock_reason; /* its "autoblock:RULE" or "autoquarantine:RULE" (the
                                     caller's, lives as long as out) */
};

/* The reason prefixes the proxy reads off a device's state (pol.h,
 * docs/state-contract.md): every override reason is "admin-<state>", and
 * the default level for a device nobody enrolled is "unmanaged" or
 * "unmanaged-allowed". */
#define COMPLIANCE_REASON_ADMIN "admin-"
/* A proxy's autoblock report: "autoblock:RULE" blocks, and
 * "autoquarantine:RULE" (the policy's action: quarantine) quarantines, until
 * its time is up (facts' autoblock_reason). */
#define COMPLIANCE_REASON_AUTOBLOCK "autoblock:"
#define COMPLIANCE_REASON_AUTOQUARANTINE "autoquarantine:"
#define COMPLIANCE_REASON_UNMANAGED "unmanaged"

struct compliance_result {
    enum compliance_state state;
    const char *reason; /* static string, e.g. "compliant", "jailbroken", "admin-block"
                           (or the facts' rule_reason / autoblock_reason) */
    bool in_grace;      /* non-compliant, but still allowed until the grace period ends */
    int64_t non_compliant_since_ms; /* store this; 0 when compliant or not subject to rules */
    int64_t next_eval_ms;           /* evaluate again at this time; 0 = only on new facts */
};

/* Defaults: section absent, unmanaged devices blocked, nothing required. */
void compliance_rules_init(struct compliance_rules *r);

/* The pure evaluation. rules, facts and out must be non-NULL. */
void compliance_evaluate(const struct compliance_rules *rules, const struct compliance_facts *facts,
                         enum compliance_override ovr, int64_t now_ms,
                         struct compliance_result *out);

/*
 * Parse "16", "16.0", "16.0.0", "10.3.3.1" (surrounding blanks allowed).
 * Anything else, including empty strings, signs, letters, ".." and numbers
 * over 999999, is rejected with -1 and *out is left zeroed.
 */
int compliance_ver_parse(const char *s, struct compliance_ver *out);

/* <0, 0, >0 like strcmp; missing parts compare as 0. */
int compliance_ver_cmp(const struct compliance_ver *a, const struct compliance_ver *b);

/* "allow", "block", "quarantine", "wipe". */
const char *compliance_state_name(enum compliance_state s);
int compliance_state_parse(const char *s, enum compliance_state *out);
/* "none", "allow", "block", "quarantine", "wipe". */
const char *compliance_override_name(enum compliance_override o);
int compliance_override_parse(const char *s, enum compliance_override *out);

/*
 * Load the `compliance:` mapping node into *rules (policy/pol.h embeds the
 * struct; the policy loader calls this when the key is present). rules ends
 * up with present = true. Nothing is allocated. On error returns a negative
 * code with "FILE:LINE:COL: message" in ctx->err, like every key table.
 */
int pol_compliance_load(const struct yt_node *node, struct yt_ctx *ctx,
                        struct compliance_rules *rules);

/*
 * One source of truth for devices nobody enrolled (docs/access-model.md):
 * unmanaged_devices follows the policy's unknown_devices (given as a state,
 * with its node for messages, NULL when it is not written) unless written.
 * Written, it must equal unknown_devices whenever that lets a phone reach
 * Exchange (allow, quarantine: Exchange's answer is what registers the
 * device as unmanaged), or the phone would get one answer and then another.
 * compliance is the policy's `compliance:` node, or NULL. 0, or yt_err()'s
 * code with "FILE:LINE:COL: ..." and the fix in ctx->err.
 */
int pol_compliance_unify(struct compliance_rules *rules, const struct yt_node *compliance,
                         enum compliance_state unknown, const struct yt_node *unknown_node,
                         struct yt_ctx *ctx);

/* Print the effective compliance settings as YAML at indent (for `easgate check`). */
void pol_compliance_print(FILE *f, const struct compliance_rules *rules, int indent);

#endif
