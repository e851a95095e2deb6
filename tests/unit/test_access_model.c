/*
 * The decision table of docs/access-model.md, one case per row, driven
 * through the proxy's real decision point (proxy/decide.c: identity from a
 * request head, the state as the store would answer it, pol_decide, the
 * server role, the answer in the client's protocol form) and, for the
 * core's half, through the real policy loader and compliance_evaluate.
 * A row's number here is its number in the document: change both.
 */
#include "connectors/rstore.h"
#include "eas/easq.h"
#include "policy/compliance.h"
#include "policy/pol.h"
#include "proxy/decide.h"
#include "proxy/head.h"
#include "proxy/snap.h"

#include <llhttp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define BASIC_ALICE "Basic YWxpY2U6cHc=" /* alice:pw */
#define NEGOTIATE_KERBEROS "Negotiate YIIGhgYJKoZIhvcSAQICAQBuggZ1MIIGcaADAgEF"
#define NTLM_NEGOTIATE "NTLM TlRMTVNTUAABAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

/* The policy every proxy row runs under (rows that need another say so). */
static const char POLICY[] = "unknown_devices: allow\n"
                             "user_agents:\n"
                             "  block: [\"BadMail*\"]\n"
                             "devices:\n"
                             "  allow: [\"STATICALLOW1\"]\n"
                             "  block: [\"STATICBLOCK1\"]\n"
                             "device_rules:\n"
                             "  - match: { device_type: \"WindowsMail\" }\n" /* rule:1 */
                             "    action: block\n"
                             "  - match: { device_type: \"Android9\" }\n" /* rule:2 */
                             "    action: quarantine\n"
                             "  - match: { device_type: \"TrustedPhone\" }\n" /* rule:3 */
                             "    action: allow\n";

/* How the store answers: no entry, or the core's state, reason and user. */
enum st { ST_NONE, ST_FOUND, ST_DOWN };

struct row {
    const char *row; /* the document's row, e.g. "P5" */
    const char *policy_extra;
    const char *device_type, *device_id, *ua, *auth;
    enum st st;
    enum rstore_state state;
    const char *reason, *user;
    bool stale;
    /* expected */
    const char *decision, *why;
    int http_141, eas_141; /* Ping at 14.1: HTTP status, WBXML Status (0 = forwarded) */
    int http_121;          /* Ping at 12.1: HTTP status (0 = forwarded) */
};

static const struct row rows[] = {
    {"P1", NULL, "iPhone", "DEV1", "BadMail/1", BASIC_ALICE, ST_FOUND, RSTORE_ALLOW, "admin-allow",
     "", false, "block", "ua-blocked", 200, 129, 403},
    {"P2", "user_agents:\n  allow: [\"Apple-*\"]\n", "iPhone", "DEV1", "Other/1", BASIC_ALICE,
     ST_NONE, 0, NULL, NULL, false, "block", "ua-not-allowed", 200, 129, 403},
    {"P3", NULL, "iPhone", "STATICBLOCK1", "Apple-iPhone/1", BASIC_ALICE, ST_FOUND, RSTORE_ALLOW,
     "admin-allow", "", false, "block", "device-blocked", 200, 129, 403},
    {"P4", NULL, "iPhone", "STATICALLOW1", "Apple-iPhone/1", BASIC_ALICE, ST_FOUND, RSTORE_BLOCK,
     "admin-block", "", false, "allow", "device-allowed", 0, 0, 0},
    {"P5", NULL, "WindowsMail", "DEV1", "Apple-iPhone/1", BASIC_ALICE, ST_FOUND, RSTORE_ALLOW,
     "compliant", "", false, "block", "rule:1", 200, 129, 403},
    {"P6", NULL, "Android9", "DEV1", "Apple-iPhone/1", BASIC_ALICE, ST_NONE, 0, NULL, NULL, false,
     "quarantine", "rule:2", 200, 129, 403},
    {"P7", NULL, "Android9", "DEV1", "Apple-iPhone/1", BASIC_ALICE, ST_FOUND, RSTORE_ALLOW,
     "admin-allow", "", false, "allow", "state-allow", 0, 0, 0},
    {"P8", NULL, "TrustedPhone", "DEV1", "Apple-iPhone/1", BASIC_ALICE, ST_FOUND, RSTORE_BLOCK,
     "admin-block", "", false, "block", "state-block", 200, 129, 403},
    {"P9", NULL, "iPhone", "DEV1", "Apple-iPhone/1", BASIC_ALICE, ST_FOUND, RSTORE_ALLOW,
     "compliant", "", true, "block", "state-stale", 200, 129, 403},
    {"P10", "identity:\n  unverifiable: block\n", "iPhone", "DEV1", "Apple-iPhone/1",
     NEGOTIATE_KERBEROS, ST_NONE, 0, NULL, NULL, false, "block", "identity-unverifiable", 200, 129,
     403},
    {"P11", NULL, "iPhone", "DEV1", "Apple-iPhone/1", NEGOTIATE_KERBEROS, ST_FOUND, RSTORE_ALLOW,
     "compliant", "alice", false, "block", "identity-unverifiable", 200, 129, 403},
    {"P12", NULL, "iPhone", "DEV1", "Apple-iPhone/1", BASIC_ALICE, ST_FOUND, RSTORE_BLOCK,
     "jailbroken", "alice", false, "block", "state-block", 200, 129, 403},
    {"P13", NULL, "iPhone", "DEV1", "Apple-iPhone/1", BASIC_ALICE, ST_FOUND, RSTORE_ALLOW,
     "compliant", "bob", false, "block", "user-mismatch", 200, 129, 403},
    {"P14", NULL, "iPhone", "DEV1", "Apple-iPhone/1", BASIC_ALICE, ST_FOUND, RSTORE_WIPE,
     "admin-wipe", "alice", false, "wipe", "state-wipe", 200, 140, 449},
    {"P15", NULL, "iPhone", "DEV1", "Apple-iPhone/1", BASIC_ALICE, ST_FOUND, RSTORE_QUARANTINE,
     "unmanaged", "", false, "quarantine", "state-quarantine", 200, 129, 403},
    {"P16", NULL, "iPhone", "DEV1", "Apple-iPhone/1", BASIC_ALICE, ST_FOUND, RSTORE_ALLOW,
     "compliant", "alice", false, "allow", "state-allow", 0, 0, 0},
    {"P17", "unknown_devices: quarantine\n", "TrustedPhone", "DEV1", "Apple-iPhone/1", BASIC_ALICE,
     ST_FOUND, RSTORE_QUARANTINE, "unmanaged", "", false, "allow", "rule:3", 0, 0, 0},
    {"P18", NULL, "TrustedPhone", "DEV1", "Apple-iPhone/1", BASIC_ALICE, ST_FOUND, RSTORE_BLOCK,
     "os-too-old", "", false, "block", "state-block", 200, 129, 403},
    {"P19", "unknown_devices: block\n", "TrustedPhone", "DEV1", "Apple-iPhone/1", BASIC_ALICE,
     ST_NONE, 0, NULL, NULL, false, "allow", "rule:3", 0, 0, 0},
    {"P20", "unknown_devices: block\n", "iPhone", "DEV1", "Apple-iPhone/1", BASIC_ALICE, ST_NONE, 0,
     NULL, NULL, false, "block", "unknown-device", 200, 129, 403},
    {"P21", "unknown_devices: quarantine\n", "iPhone", "DEV1", "Apple-iPhone/1", BASIC_ALICE,
     ST_NONE, 0, NULL, NULL, false, "quarantine", "unknown-device", 200, 129, 403},
    {"P22", NULL, "iPhone", "DEV1", "Apple-iPhone/1", BASIC_ALICE, ST_NONE, 0, NULL, NULL, false,
     "allow", "unknown-device", 0, 0, 0},
    {"P23", NULL, "iPhone", "DEV1", "Apple-iPhone/1", NTLM_NEGOTIATE, ST_FOUND, RSTORE_ALLOW,
     "compliant", "alice", false, "allow", "auth-handshake", 0, 0, 0},
    {"P24", "unknown_devices: block\n", "iPhone", "DEV1", "Apple-iPhone/1", BASIC_ALICE, ST_DOWN, 0,
     NULL, NULL, false, "block", "unknown-device", 200, 129, 403},
};

/* The policy of a row: POLICY with the row's extra keys replacing its own. */
static struct pol_policy *load_policy(const char *extra)
{
    char buf[4096] = "";
    const char *base = POLICY;
    if (extra && strncmp(extra, "unknown_devices:", 16) == 0)
        base = strchr(POLICY, '\n') + 1; /* the row's unknown_devices instead */
    if (extra && strncmp(extra, "user_agents:", 12) == 0) {
        snprintf(buf, sizeof(buf), "%s", extra); /* a policy of its own */
        base = "";
    } else {
        snprintf(buf, sizeof(buf), "%s%s", extra ? extra : "", base);
    }
    struct pol_policy *p = NULL;
    char err[512];
    int rc = pol_load_buf("policy.yaml", buf, strlen(buf), &p, err, sizeof(err));
    if (rc < 0)
        fail_msg("%s", err);
    return p;
}

struct outcome {
    const char *decision, *reason;
    enum verdict_kind kind;
    int status;
    char body[64];
    size_t len;
};

/* One Ping of the row at protocol version ver ("14.1"), decided. */
static void run(const struct row *r, const char *ver, struct outcome *o)
{
    struct conf *conf = calloc(1, sizeof(*conf)); /* every limit at its default */
    struct snap snap = {.conf = conf, .pol = load_policy(r->policy_extra)};
    char target[256];
    snprintf(target, sizeof(target),
             "/Microsoft-Server-ActiveSync?Cmd=Ping&User=alice&DeviceId=%s&DeviceType=%s",
             r->device_id, r->device_type);
    struct head *h = head_new(4096);
    assert_int_equal(head_url(h, target, strlen(target)), 0);
    const char *hv[][2] = {
        {"MS-ASProtocolVersion", ver}, {"User-Agent", r->ua}, {"Authorization", r->auth}};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(head_field(h, hv[i][0], strlen(hv[i][0])), 0);
        assert_int_equal(head_value(h, hv[i][1], strlen(hv[i][1])), 0);
    }
    struct decide_in in = {.head = h,
                           .snap = &snap,
                           .method = HTTP_POST,
                           .client = "192.0.2.1",
                           .instance = "test",
                           .conn_user = ""};
    struct easq_ident *id = calloc(1, sizeof(*id));
    struct decide_req d = {.ident = id};
    struct verdict v;
    decide_eas_head(&d, &in, &v);
    assert_int_equal(v.kind, VERDICT_LOOKUP);
    struct rstore_result res = {.status = r->st == ST_FOUND  ? RSTORE_FOUND
                                          : r->st == ST_NONE ? RSTORE_NOT_FOUND
                                                             : RSTORE_UNAVAILABLE,
                                .state = r->state,
                                .user = r->user ? r->user : "",
                                .reason = r->reason ? r->reason : "",
                                .version = 7,
                                .stale = r->stale};
    decide_eas_state(&d, &in, &res, &v);
    o->kind = v.kind;
    o->decision = v.decision;
    o->reason = v.reason;
    o->status = v.status;
    o->len = v.len < sizeof(o->body) ? v.len : sizeof(o->body);
    if (v.body)
        memcpy(o->body, v.body, o->len);
    verdict_free(&v);
    decide_report_drop(&d);
    free(d.logid);
    free(d.ntlm_user);
    free(d.cert_user);
    free(d.facts);
    free(id);
    free(h);
    /* The reason may point into the policy: keep the snapshot for the checks. */
    o->reason = o->reason ? strdup(o->reason) : NULL;
    pol_unref(snap.pol);
    free(conf);
}

/* The WBXML Ping answer carries its Status as inline text ("129"). */
static bool body_has_status(const struct outcome *o, int status)
{
    char want[8];
    int n = snprintf(want, sizeof(want), "%d", status);
    for (size_t i = 0; i + (size_t)n <= o->len; i++)
        if (memcmp(o->body + i, want, (size_t)n) == 0)
            return true;
    return false;
}

static void check_one(const struct row *r, const char *ver, int http, int eas)
{
    struct outcome o;
    run(r, ver, &o);
    if (!o.decision || strcmp(o.decision, r->decision) != 0 || !o.reason ||
        strcmp(o.reason, r->why) != 0)
        fail_msg("row %s at %s: got %s %s, want %s %s", r->row, ver, o.decision ? o.decision : "-",
                 o.reason ? o.reason : "-", r->decision, r->why);
    if (http == 0) {
        if (o.kind != VERDICT_FORWARD)
            fail_msg("row %s at %s: answered %d, want forwarded", r->row, ver, o.status);
    } else {
        if (o.kind != VERDICT_ANSWER || o.status != http)
            fail_msg("row %s at %s: kind %d status %d, want answer %d", r->row, ver, o.kind,
                     o.status, http);
        if (eas && !body_has_status(&o, eas))
            fail_msg("row %s at %s: the answer does not carry Status %d", r->row, ver, eas);
        if (!eas && o.len)
            fail_msg("row %s at %s: a legacy answer with a WBXML body", r->row, ver);
    }
    free((char *)o.reason);
}

static void test_proxy_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        check_one(&rows[i], "14.1", rows[i].http_141, rows[i].eas_141);
        check_one(&rows[i], "12.1", rows[i].http_121, 0);
    }
}

/* ---- the core's half ---- */

/* The core's rules as the core role loads them from this policy text. */
static int core_rules(const char *text, struct compliance_rules *r, char *err, size_t errlen)
{
    struct pol_policy *p = NULL;
    int rc = pol_load_buf("policy.yaml", text, strlen(text), &p, err, errlen);
    if (rc == 0)
        *r = p->compliance;
    pol_unref(p);
    return rc;
}

/* What the core's engine finds for a device of this type (core/eng.c
 * rule_of: the first matching device rule, with pol_rule_first). */
static void core_rule(const char *text, const char *device_type, struct compliance_facts *f)
{
    struct pol_policy *p = NULL;
    char err[512];
    if (pol_load_buf("policy.yaml", text, strlen(text), &p, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    struct pol_request rq = {.ident = POL_ID_VERIFIED, .device_type = device_type, .command = -1};
    int i = pol_rule_first(p, &rq);
    static const enum compliance_rule_hit hit[] = {COMPLIANCE_RULE_ALLOW, COMPLIANCE_RULE_BLOCK,
                                                   COMPLIANCE_RULE_QUARANTINE};
    static char reason[16];
    if (i >= 0) {
        f->rule = hit[p->rules[i].action];
        snprintf(reason, sizeof(reason), "%s", p->rules[i].reason);
        f->rule_reason = reason;
    }
    pol_unref(p);
}

struct crow {
    const char *row, *policy;
    bool managed;
    enum compliance_override ovr;
    bool jailbroken;
    int64_t failing_for_ms; /* 0: passes */
    uint32_t rank;
    /* expected */
    enum compliance_state state;
    const char *reason;
    const char *device_type; /* matched against the policy's device_rules, as the core does */
};

#define HOUR 3600000LL
#define RULES                                                                                      \
    "unknown_devices: block\n"                                                                     \
    "compliance:\n  block_jailbroken: true\n"                                                      \
    "device_rules:\n"                                                                              \
    "  - match: { device_type: \"Android9\" }\n    action: quarantine\n"                           \
    "  - match: { device_type: \"TrustedPhone\" }\n    action: allow\n"
static const struct crow crows[] = {
    {"C1", "unknown_devices: block\n", false, COMPLIANCE_OVR_ALLOW, false, 0, 0, COMPLIANCE_ALLOW,
     "admin-allow", NULL},
    {"C2", "compliance:\n  block_jailbroken: true\n", true, COMPLIANCE_OVR_BLOCK, false, 0, 0,
     COMPLIANCE_BLOCK, "admin-block", NULL},
    {"C3", "", false, COMPLIANCE_OVR_NONE, false, 0, 0, COMPLIANCE_ALLOW, "unmanaged-allowed",
     NULL},
    {"C4", "unknown_devices: quarantine\n", false, COMPLIANCE_OVR_NONE, false, 0, 0,
     COMPLIANCE_QUARANTINE, "unmanaged", NULL},
    {"C5", "unknown_devices: block\n", false, COMPLIANCE_OVR_NONE, false, 0, 0, COMPLIANCE_BLOCK,
     "unmanaged", NULL},
    {"C6", "unknown_devices: block\ncompliance:\n  unmanaged_devices: quarantine\n", false,
     COMPLIANCE_OVR_NONE, false, 0, 0, COMPLIANCE_QUARANTINE, "unmanaged", NULL},
    {"C7", "compliance:\n  max_devices_per_user: 2\n", true, COMPLIANCE_OVR_NONE, false, 0, 3,
     COMPLIANCE_BLOCK, "too-many-devices", NULL},
    {"C8", "compliance:\n  block_jailbroken: true\n  grace_period: 24h\n", true,
     COMPLIANCE_OVR_NONE, true, HOUR, 1, COMPLIANCE_ALLOW, "jailbroken", NULL},
    {"C9", "compliance:\n  block_jailbroken: true\n  grace_period: 24h\n", true,
     COMPLIANCE_OVR_NONE, true, 25 * HOUR, 1, COMPLIANCE_BLOCK, "jailbroken", NULL},
    {"C10", "compliance:\n  block_jailbroken: true\n", true, COMPLIANCE_OVR_NONE, false, 0, 1,
     COMPLIANCE_ALLOW, "compliant", NULL},
    {"C11", RULES, true, COMPLIANCE_OVR_NONE, false, 0, 1, COMPLIANCE_QUARANTINE, "rule:1",
     "Android9"},
    {"C12", RULES, false, COMPLIANCE_OVR_NONE, false, 0, 0, COMPLIANCE_ALLOW, "rule:2",
     "TrustedPhone"},
    {"C13", RULES, true, COMPLIANCE_OVR_NONE, true, 25 * HOUR, 1, COMPLIANCE_BLOCK, "jailbroken",
     "TrustedPhone"},
    {"C14", RULES, false, COMPLIANCE_OVR_ALLOW, false, 0, 0, COMPLIANCE_ALLOW, "admin-allow",
     "Android9"},
};

static void test_core_rows(void **state)
{
    (void)state;
    const int64_t now = 1000 * HOUR;
    for (size_t i = 0; i < sizeof(crows) / sizeof(crows[0]); i++) {
        const struct crow *c = &crows[i];
        struct compliance_rules r;
        char err[512];
        if (core_rules(c->policy, &r, err, sizeof(err)) < 0)
            fail_msg("row %s: %s", c->row, err);
        struct compliance_facts f = {
            .managed = c->managed,
            .passcode = COMPLIANCE_UNKNOWN,
            .encrypted = COMPLIANCE_UNKNOWN,
            .jailbroken = c->jailbroken ? COMPLIANCE_YES : COMPLIANCE_NO,
            .non_compliant_since_ms = c->failing_for_ms ? now - c->failing_for_ms : 0,
            .user_rank = c->rank,
        };
        if (c->device_type)
            core_rule(c->policy, c->device_type, &f);
        struct compliance_result res;
        compliance_evaluate(&r, &f, c->ovr, now, &res);
        if (res.state != c->state || strcmp(res.reason, c->reason) != 0)
            fail_msg("row %s: got %s %s, want %s %s", c->row, compliance_state_name(res.state),
                     res.reason, compliance_state_name(c->state), c->reason);
    }
}

/* Rows X1..X3: what `easgate check` (the same loader) refuses. */
static void test_contradictions(void **state)
{
    (void)state;
    static const struct {
        const char *row, *policy, *where;
    } bad[] = {
        {"X1", "compliance:\n  unmanaged_devices: block\n", "policy.yaml:2:22: "},
        {"X2", "unknown_devices: quarantine\ncompliance:\n  unmanaged_devices: block\n",
         "policy.yaml:3:22: "},
        {"X3", "unknown_devices: allow\ncompliance:\n  unmanaged_devices: quarantine\n",
         "policy.yaml:3:22: "},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct compliance_rules r;
        char err[512] = "";
        if (core_rules(bad[i].policy, &r, err, sizeof(err)) == 0)
            fail_msg("row %s: a contradiction was accepted", bad[i].row);
        if (strncmp(err, bad[i].where, strlen(bad[i].where)) != 0 ||
            !strstr(err, "remove unmanaged_devices"))
            fail_msg("row %s: %s", bad[i].row, err);
    }
}

/* Both halves together: the state the core computes for an unenrolled phone
 * is what the proxy then answers (the rollout-day outage of issue 17). */
static void test_end_to_end(void **state)
{
    (void)state;
    static const struct {
        const char *unknown;
        const char *decision;
    } cases[] = {{"allow", "allow"}, {"quarantine", "quarantine"}, {"block", "block"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[64];
        snprintf(text, sizeof(text), "unknown_devices: %s\n", cases[i].unknown);
        struct compliance_rules r;
        char err[512];
        assert_int_equal(core_rules(text, &r, err, sizeof(err)), 0);
        struct compliance_facts f = {.managed = false};
        struct compliance_result res;
        compliance_evaluate(&r, &f, COMPLIANCE_OVR_NONE, 0, &res);
        struct pol_policy *p = NULL;
        assert_int_equal(pol_load_buf("p", text, strlen(text), &p, err, sizeof(err)), 0);
        struct pol_request rq = {.ident = POL_ID_VERIFIED,
                                 .user = "alice",
                                 .device_id = "DEV1",
                                 .device_type = "iPhone"};
        struct pol_decision before, after;
        pol_decide(p, &rq, NULL, 0, &before);
        struct pol_devstate st = {.state = (enum pol_devstate_kind)(res.state + 1),
                                  .user = "",
                                  .reason = res.reason,
                                  .source = pol_devstate_source(res.reason)};
        pol_decide(p, &rq, &st, 0, &after);
        assert_string_equal(pol_action_name(before.action), cases[i].decision);
        assert_string_equal(pol_action_name(after.action), cases[i].decision);
        pol_unref(p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proxy_rows),
        cmocka_unit_test(test_core_rows),
        cmocka_unit_test(test_contradictions),
        cmocka_unit_test(test_end_to_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
