/*
 * compliance: evaluation of the compliance rules and OS version comparison.
 * See compliance.h for the order of the rules and why the function is pure.
 * The YAML loader is in compliance_load.c, so programs that only evaluate
 * (tests, fuzzers) do not pull in the YAML tree.
 */
#include "policy/compliance.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* No OS ships a version component this large; larger means garbage. */
#define VER_PART_MAX 999999u

void compliance_rules_init(struct compliance_rules *r)
{
    memset(r, 0, sizeof(*r));
    r->unmanaged = COMPLIANCE_BLOCK;
}

int compliance_ver_parse(const char *s, struct compliance_ver *out)
{
    memset(out, 0, sizeof(*out));
    if (!s)
        return -1;
    while (*s == ' ' || *s == '\t')
        s++;
    struct compliance_ver v = {{0}};
    size_t n = 0;
    for (;;) {
        if (!isdigit((unsigned char)*s) || n == COMPLIANCE_VER_PARTS)
            return -1;
        uint32_t x = 0;
        while (isdigit((unsigned char)*s)) {
            x = x * 10 + (uint32_t)(*s - '0');
            if (x > VER_PART_MAX)
                return -1;
            s++;
        }
        v.part[n++] = x;
        if (*s != '.')
            break;
        s++;
    }
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s)
        return -1;
    *out = v;
    return 0;
}

int compliance_ver_cmp(const struct compliance_ver *a, const struct compliance_ver *b)
{
    for (size_t i = 0; i < COMPLIANCE_VER_PARTS; i++)
        if (a->part[i] != b->part[i])
            return a->part[i] < b->part[i] ? -1 : 1;
    return 0;
}

static const char *const state_names[] = {"allow", "block", "quarantine", "wipe"};
static const char *const override_names[] = {"none", "allow", "block", "quarantine", "wipe"};

const char *compliance_state_name(enum compliance_state s)
{
    if ((unsigned)s >= sizeof(state_names) / sizeof(state_names[0]))
        return "block";
    return state_names[s];
}

int compliance_state_parse(const char *s, enum compliance_state *out)
{
    for (size_t i = 0; s && i < sizeof(state_names) / sizeof(state_names[0]); i++)
        if (strcmp(s, state_names[i]) == 0) {
            *out = (enum compliance_state)i;
            return 0;
        }
    return -1;
}

const char *compliance_override_name(enum compliance_override o)
{
    if ((unsigned)o >= sizeof(override_names) / sizeof(override_names[0]))
        return "none";
    return override_names[o];
}

int compliance_override_parse(const char *s, enum compliance_override *out)
{
    for (size_t i = 0; s && i < sizeof(override_names) / sizeof(override_names[0]); i++)
        if (strcmp(s, override_names[i]) == 0) {
            *out = (enum compliance_override)i;
            return 0;
        }
    return -1;
}

static bool empty(const char *s)
{
    return !s || !*s;
}

/* The OS check: NULL when it passes, else the reason it fails. */
static const char *check_os(const struct compliance_rules *r, const struct compliance_facts *f)
{
    if (r->n_os_min == 0)
        return NULL;
    /* Family and version come from one source, never one of each. */
    const char *os = f->os, *ver = f->os_version;
    if (empty(os)) {
        if (empty(f->eas_os))
            return "os-unknown";
        if (r->os_source != COMPLIANCE_OS_EAS_FALLBACK)
            return "os-unverified"; /* only the phone's own word for it */
        os = f->eas_os;
        ver = f->eas_os_version;
    }
    const struct compliance_os_min *m = NULL;
    for (size_t i = 0; i < r->n_os_min && !m; i++)
        if (strcasecmp(r->os_min[i].family, os) == 0)
            m = &r->os_min[i];
    if (!m)
        return NULL; /* no minimum for this family */
    if (empty(ver))
        return "os-version-unknown";
    struct compliance_ver v;
    if (compliance_ver_parse(ver, &v) < 0)
        return "os-version-unparsed";
    return compliance_ver_cmp(&v, &m->min) < 0 ? "os-too-old" : NULL;
}

/* The first failed check of a managed device, or NULL if it passes all. */
static const char *first_failure(const struct compliance_rules *r, const struct compliance_facts *f,
                                 int64_t now_ms)
{
    if (r->block_jailbroken) {
        if (f->jailbroken == COMPLIANCE_YES)
            return "jailbroken";
        if (f->jailbroken == COMPLIANCE_UNKNOWN)
            return "jailbreak-unknown";
    }
    if (r->require_passcode) {
        if (f->passcode == COMPLIANCE_NO)
            return "no-passcode";
        if (f->passcode == COMPLIANCE_UNKNOWN)
            return "passcode-unknown";
    }
    if (r->require_encryption) {
        if (f->encrypted == COMPLIANCE_NO)
            return "not-encrypted";
        if (f->encrypted == COMPLIANCE_UNKNOWN)
            return "encryption-unknown";
    }
    const char *os = check_os(r, f);
    if (os)
        return os;
    if (r->max_checkin_age_ms > 0) {
        if (f->last_checkin_ms <= 0)
            return "never-checked-in";
        if (now_ms - f->last_checkin_ms >= r->max_checkin_age_ms)
            return "checkin-stale";
    }
    return NULL;
}

static void set(struct compliance_result *out, enum compliance_state s, const char *reason)
{
    out->state = s;
    out->reason = reason;
}

void compliance_evaluate(const struct compliance_rules *r, const struct compliance_facts *f,
                         enum compliance_override ovr, int64_t now_ms,
                         struct compliance_result *out)
{
    memset(out, 0, sizeof(*out));
    /* The mark survives an override so that resetting it does not restart grace. */
    out->non_compliant_since_ms = f->non_compliant_since_ms;
    switch (ovr) {
    case COMPLIANCE_OVR_ALLOW:
        set(out, COMPLIANCE_ALLOW, COMPLIANCE_REASON_ADMIN "allow");
        return;
    case COMPLIANCE_OVR_BLOCK:
        set(out, COMPLIANCE_BLOCK, COMPLIANCE_REASON_ADMIN "block");
        return;
    case COMPLIANCE_OVR_QUARANTINE:
        set(out, COMPLIANCE_QUARANTINE, COMPLIANCE_REASON_ADMIN "quarantine");
        return;
    case COMPLIANCE_OVR_WIPE:
        set(out, COMPLIANCE_WIPE, COMPLIANCE_REASON_ADMIN "wipe");
        return;
    case COMPLIANCE_OVR_NONE:
        break;
    }
    if (f->autoblock_until_ms > now_ms) {
        /* Timed: the grace mark is kept (as for an override), and the end
         * of the block is when the answer changes by itself. */
        const char *why =
            f->autoblock_reason && f->autoblock_reason[0] ? f->autoblock_reason : "autoblock";
        bool q = strncmp(why, COMPLIANCE_REASON_AUTOQUARANTINE,
                         sizeof(COMPLIANCE_REASON_AUTOQUARANTINE) - 1) == 0;
        set(out, q ? COMPLIANCE_QUARANTINE : COMPLIANCE_BLOCK, why);
        out->next_eval_ms = f->autoblock_until_ms;
        return;
    }
    if (f->rule == COMPLIANCE_RULE_BLOCK || f->rule == COMPLIANCE_RULE_QUARANTINE) {
        /* What the proxy answers anyway (its rules come before the state);
         * the grace mark is kept, as for an override. */
        set(out, f->rule == COMPLIANCE_RULE_BLOCK ? COMPLIANCE_BLOCK : COMPLIANCE_QUARANTINE,
            f->rule_reason ? f->rule_reason : "rule");
        return;
    }
    out->non_compliant_since_ms = 0;
    if (!f->managed && f->rule == COMPLIANCE_RULE_ALLOW) {
        set(out, COMPLIANCE_ALLOW, f->rule_reason ? f->rule_reason : "rule");
        return;
    }
    if (!f->managed) {
        set(out, r->unmanaged,
            r->unmanaged == COMPLIANCE_ALLOW ? COMPLIANCE_REASON_UNMANAGED "-allowed"
                                             : COMPLIANCE_REASON_UNMANAGED);
        return;
    }
    if (r->max_devices_per_user > 0 && f->user_rank > r->max_devices_per_user) {
        set(out, COMPLIANCE_BLOCK, "too-many-devices");
        return;
    }
    if (!r->present) {
        set(out, COMPLIANCE_ALLOW, "compliant");
        return;
    }
    if (r->groups.n && f->groups_exempt) {
        set(out, COMPLIANCE_ALLOW, "not-in-compliance-groups");
        return;
    }
    const char *why = first_failure(r, f, now_ms);
    if (!why) {
        set(out, COMPLIANCE_ALLOW, "compliant");
        if (r->max_checkin_age_ms > 0)
            out->next_eval_ms = f->last_checkin_ms + r->max_checkin_age_ms;
        return;
    }
    int64_t since = f->non_compliant_since_ms > 0 ? f->non_compliant_since_ms : now_ms;
    if (since > now_ms)
        since = now_ms; /* a mark from the future (clock stepped back) must not extend grace */
    out->non_compliant_since_ms = since;
    if (now_ms - since < r->grace_period_ms) {
        set(out, COMPLIANCE_ALLOW, why);
        out->in_grace = true;
        out->next_eval_ms = since + r->grace_period_ms;
        return;
    }
    set(out, COMPLIANCE_BLOCK, why);
}
