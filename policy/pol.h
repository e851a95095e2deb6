/*
 * pol: the filtering policy (policy.yaml) and the decision the proxy takes
 * for every ActiveSync request.
 *
 * The decision is a pure function of (policy snapshot, request identity,
 * device state from the state store, time): no I/O, no allocation, no locks,
 * so it is table-tested and costs well under a microsecond. Order, first
 * answer wins:
 *
 *   1. user_agents.block matches          -> block  "ua-blocked"
 *      user_agents.allow non-empty, no match -> block "ua-not-allowed"
 *   2. devices.block has the DeviceId      -> block  "device-blocked"
 *      devices.allow has the DeviceId      -> allow  "device-allowed"
 *      (static admin overrides: they win over rules and device state)
 *   3. device_rules, first match: block / quarantine -> that, "rule:N"
 *      (an allow match stops the rules and is remembered for step 5);
 *      skipped for a device whose state is an admin's override for it
 *      (POL_SRC_ADMIN): the admin decided this one device
 *   3b. identity (docs/security.md): a credential the proxy cannot read
 *      (POL_ID_UNVERIFIABLE) under identity.unverifiable:
 *        block                             -> block "identity-unverifiable"
 *        allow_unbound, device bound       -> block "identity-unverifiable"
 *        allow_cert_bound, device bound, no client certificate of the
 *          bound user for this DeviceId    -> block "identity-unverifiable"
 *      (otherwise the certificate's user stands for the request's below)
 *   4. device state (state store):
 *      stale (no contact for max_stale)    -> block  "state-stale"
 *      block                               -> block  "state-block"
 *      bound user set and not this user    -> block  "user-mismatch"
 *      wipe                                -> wipe   "state-wipe"
 *      quarantine                          -> quarantine "state-quarantine"
 *      allow                               -> allow  "state-allow"
 *      (a state that is only the core's default for a device nobody
 *      enrolled, POL_SRC_DEFAULT, yields to an allow rule from step 3
 *      once the bound user matched: -> allow "rule:N")
 *   5. unknown device: an allow rule from step 3 -> allow "rule:N";
 *      otherwise unknown_devices           -> that, "unknown-device"
 *   An NTLM NEGOTIATE leg (POL_ID_HANDSHAKE) names nobody and reaches no
 *   mailbox (Exchange answers 401): it skips the user binding, and any
 *   answer but block becomes allow "auth-handshake", so the leg that names
 *   the user can follow and be decided.
 *
 * Rules never override the core's per-device verdicts (an allow rule cannot
 * let a device through that compliance or an admin blocked); they replace
 * the "default access level" for devices the core does not know or knows
 * only as unmanaged, as Exchange's device access rules do. The whole model,
 * with the core's half, is docs/access-model.md.
 *
 * Snapshots and SIGHUP: a loaded struct pol_policy is immutable and
 * reference-counted (atomic). pol_load() returns it with one reference. The
 * reloading thread loads a new snapshot and hands each worker its own
 * reference (e.g. through uv_async); the worker swaps its pointer and
 * pol_unref()s the old one. A request that keeps using the decision after
 * the worker might have swapped (the reason string points into the snapshot
 * for "rule:N") takes pol_ref() for its lifetime. The last unref frees.
 */
#ifndef EG_POL_H
#define EG_POL_H

#include "common/ytree.h"
#include "policy/abuse.h"
#include "policy/compliance.h"
#include "policy/prov.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum pol_action { POL_ALLOW, POL_BLOCK, POL_QUARANTINE, POL_WIPE };

/* "allow", "block", "quarantine", "wipe" */
const char *pol_action_name(enum pol_action a);

/* Exchange-style device access rule; NULL fields match anything. All are
 * case-insensitive globs ('*' any run, '?' one character). */
struct pol_rule {
    const char *device_type;
    const char *device_model;
    const char *device_os;
    const char *user_agent;
    const char *user; /* matched against "user", "user@domain", "DOMAIN\user" */
    /* Directory groups (names, case-insensitive): the user must be in one
     * of them. Only the core can tell (core.directory); a proxy never
     * matches such a rule and sees its verdict in the device state. */
    struct yt_strv groups;
    int groups_line, groups_col; /* where `groups` is written, for the core's errors */
    enum pol_action action;      /* allow | block | quarantine */
    const char *reason;          /* "rule:N", N 1-based as written */
    int line;                    /* where the rule starts in the file */
};

/* What a request whose user cannot be verified may reach. */
enum pol_unverifiable {
    POL_UNV_BLOCK = 0,        /* nothing */
    POL_UNV_ALLOW_UNBOUND,    /* devices bound to no user (the rest of the policy decides) */
    POL_UNV_ALLOW_CERT_BOUND, /* those, and bound devices whose client certificate says so */
};

struct pol_policy {
    const char *path;                    /* file it came from */
    enum pol_action unknown_devices;     /* allow | block | quarantine */
    struct yt_strv ua_allow, ua_block;   /* globs, empty allow = all */
    struct yt_strv dev_allow, dev_block; /* DeviceIds, case-insensitive */
    struct pol_rule *rules;
    size_t n_rules;
    struct {
        bool allow_subscriptions; /* EWS Subscribe/GetEvents/GetStreamingEvents */
    } ews;
    /* identity: section (docs/security.md). The proxy loads the JWKS file
     * into its snapshot; the policy only names it. */
    struct {
        enum pol_unverifiable unverifiable; /* default allow_unbound */
        struct {
            const char *jwks; /* NULL: Bearer signatures are not checked */
            const char *issuer, *audience;
            bool trust_unverified; /* without jwks, believe the claim anyway */
            int64_t leeway_ms;     /* clock skew allowed for exp/nbf */
        } bearer;
    } identity;
    /* compliance: section (policy/compliance.h, read by the core role);
     * compliance.present is false when the file has none. */
    struct compliance_rules compliance;
    /* provisioning: section (policy/prov.h, read by the proxy's server
     * role); provisioning.present is false when the file has none. */
    struct prov_conf provisioning;
    /* abuse: section (policy/abuse.h, read by the proxy's budgets) */
    struct pol_abuse abuse;
    /* private */
    int refs;
    struct yt_doc *doc;
};

/* Load and validate policy.yaml. 0 (with *out holding one reference), or
 * negative with "FILE:LINE:COL: message" in err. */
int pol_load(const char *path, struct pol_policy **out, char *err, size_t errlen);
/* The same from memory; name stands for the file in messages and ->path.
 * A configuration without a policy file loads "" as POL_NO_FILE: the
 * defaults of an empty policy.yaml (unknown_devices: allow, no lists or
 * rules), which the proxy and the core apply alike. */
#define POL_NO_FILE "(no policy file: the defaults)"
int pol_load_buf(const char *name, const char *buf, size_t len, struct pol_policy **out, char *err,
                 size_t errlen);

struct pol_policy *pol_ref(struct pol_policy *p); /* returns p */
void pol_unref(struct pol_policy *p);             /* NULL is fine */

/* Effective settings, defaults included, as YAML. */
void pol_print(FILE *f, const struct pol_policy *p);

/* ---- The decision ------------------------------------------------------ */

/* What the proxy knows about the request. Any field may be NULL/0 when the
 * request did not carry it; strings are compared case-insensitively. */
/* How the request's user is known. */
enum pol_ident {
    POL_ID_NONE = 0,     /* no credential: user is the query's User= (Exchange will answer 401) */
    POL_ID_VERIFIED,     /* the credential Exchange authenticates (Basic, NTLM, a checked Bearer) */
    POL_ID_HANDSHAKE,    /* an NTLM NEGOTIATE leg: names nobody */
    POL_ID_UNVERIFIABLE, /* a credential the proxy cannot read or check */
};

struct pol_request {
    enum pol_ident ident;
    /* The user a verified client certificate names, when it names this
     * DeviceId (proxy/certbind); NULL otherwise. For allow_cert_bound. */
    const char *cert_user;
    const char *user;   /* user name without domain ("alice") */
    const char *domain; /* "EXAMPLE" or "example.com", NULL if none */
    const char *device_id;
    const char *device_type;
    const char *device_model; /* from Provision/Settings or the state store */
    const char *device_os;
    const char *user_agent;
    int command;       /* the EAS library's command code; -1 unknown */
    int proto_version; /* 141 for "14.1", 0 unknown */
    /* Group membership for rules with `groups` (the core's directory
     * cache): NULL (a proxy) = such rules never match. Answers one of
     * enum pol_member for the request's user and the rule's groups. */
    int (*in_groups)(const struct yt_strv *groups, void *arg);
    void *groups_arg;
};

/*
 * What the core's directory says about a user and a rule's groups. UNKNOWN
 * (the directory did not answer within its age limit, or the user is
 * disabled or gone) fails closed: a block or quarantine rule matches, an
 * allow rule does not. PENDING (never asked yet; the answer is on its way
 * and the device is evaluated again when it comes) matches nothing.
 */
enum pol_member {
    POL_MEMBER_NO = 0,
    POL_MEMBER_YES = 1,
    POL_MEMBER_UNKNOWN = -1,
    POL_MEMBER_PENDING = -2
};

enum pol_devstate_kind {
    POL_DEV_UNKNOWN, /* the state store has no entry */
    POL_DEV_ALLOW,
    POL_DEV_BLOCK,
    POL_DEV_QUARANTINE,
    POL_DEV_WIPE,
};

/* Where the core's state came from, read off its reason
 * (pol_devstate_source; docs/state-contract.md). */
enum pol_devsrc {
    POL_SRC_RULES = 0, /* compliance rules, or anything else the core decided */
    POL_SRC_ADMIN,     /* an admin's override for this device ("admin-...") */
    POL_SRC_DEFAULT,   /* unmanaged_devices: the default level ("unmanaged...") */
};

/* The state store's view of the device (connectors/redis fills it). */
struct pol_devstate {
    enum pol_devstate_kind state;
    const char *user;   /* bound user; NULL or "" = any user. "alice",
                           "alice@example.com" or "EXAMPLE\alice" */
    const char *reason; /* the core's reason, for logs */
    bool stale;         /* no contact with the store for max_stale: fail closed */
    enum pol_devsrc source;
};

/* The source a core's reason names: "admin-allow" and the other override
 * reasons -> ADMIN, "unmanaged" and "unmanaged-allowed" -> DEFAULT, anything
 * else (NULL too) -> RULES. */
enum pol_devsrc pol_devstate_source(const char *reason);

struct pol_decision {
    enum pol_action action;
    const char *reason; /* static, or "rule:N" inside the policy snapshot */
    int rule;           /* 1-based rule that decided or allowed, 0 none */
};

/* Decide. p and req must not be NULL; st NULL means POL_DEV_UNKNOWN.
 * now_ms is for time-based rules (none yet). Returns 0, or -EINVAL when
 * p, req or out is NULL (out, if given, then says block "internal"). */
int pol_decide(const struct pol_policy *p, const struct pol_request *req,
               const struct pol_devstate *st, int64_t now_ms, struct pol_decision *out);

/* Why pol_decide decides what it does, step by step, for a person: each
 * list and rule with "match" / "no match", the identity, the state and
 * its source, then pol_decide's verdict (the very call, so the two cannot
 * disagree). For `easgate proxy explain` and the core's explain. */
void pol_explain(FILE *f, const struct pol_policy *p, const struct pol_request *req,
                 const struct pol_devstate *st, int64_t now_ms);

/* The first device rule that matches req (0-based), or -1: the core
 * mirrors the proxy's rules with it (compliance_facts.rule), answering
 * their groups through req->in_groups. */
int pol_rule_first(const struct pol_policy *p, const struct pol_request *req);

/* Decide an OPTIONS request (the client asking which protocol versions and
 * commands the server has): it names no user and no device, so only the
 * user-agent lists of step 1 apply; otherwise allow, reason "ua-allowed".
 * Returns 0, or -EINVAL as pol_decide. */
int pol_decide_options(const struct pol_policy *p, const char *user_agent,
                       struct pol_decision *out);

/* Case-insensitive glob: '*' any run (also empty), '?' exactly one char.
 * No backtracking blow-up: O(len(pattern) * len(s)) worst case. */
bool pol_glob(const char *pattern, const char *s);

/* Whether any device rule names groups (the core then needs a directory);
 * the first such rule, or NULL. */
const struct pol_rule *pol_group_rule(const struct pol_policy *p);

/* Does the request's user equal bound (any of the spellings above)? */
bool pol_user_match(const char *bound, const char *user, const char *domain);

#endif
