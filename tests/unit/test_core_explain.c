/*
 * test_core_explain: the core's explain (core/explain.h) against the live
 * core, one case per row C1-C14 of docs/access-model.md. Each row builds
 * its device through the engine as the running core would (a proxy's
 * sighting, an admin's action, a check-in), with the policy loaded by the
 * core's own loader from a file, lets the engine evaluate it, and asks
 * explain about the stored device: explain's recomputed verdict and the
 * state it shows must be the engine's, and its decision must be what a
 * proxy decides from that state under the same policy. An unknown DeviceId
 * is said to be unknown and the request it might send is still decided.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/cfg.h"
#include "core/eng.h"
#include "core/explain.h"
#include "policy/pol.h"

#define T0 (1700000000000LL)
#define HOUR 3600000LL
#define CLEAN 1      /* checked in: passcode, encryption, not jailbroken */
#define JAILBROKEN 2 /* checked in: jailbroken */
#define RULES                                                                                      \
    "unknown_devices: block\n"                                                                     \
    "compliance:\n  block_jailbroken: true\n  grace_period: 24h\n"                                 \
    "device_rules:\n"                                                                              \
    "  - match: { device_type: \"Android9\" }\n    action: quarantine\n"                           \
    "  - match: { device_type: \"TrustedPhone\" }\n    action: allow\n"

struct crow {
    const char *row, *policy, *device_type;
    bool managed;
    enum core_act ovr; /* CORE_ACT_RESET: none */
    int checkin;       /* at T0: 0 none, CLEAN, JAILBROKEN */
    int64_t at;        /* evaluated at T0 + at */
    int others;        /* the user's managed devices registered before this one */
    /* expected, as the document says */
    const char *state, *reason;
};

static const struct crow crows[] = {
    {"C1", "unknown_devices: block\n", "iPhone", false, CORE_ACT_ALLOW, 0, 0, 0, "allow",
     "admin-allow"},
    {"C2", "compliance:\n  block_jailbroken: true\n", "iPhone", true, CORE_ACT_BLOCK, 0, 0, 0,
     "block", "admin-block"},
    {"C3", "", "iPhone", false, CORE_ACT_RESET, 0, 0, 0, "allow", "unmanaged-allowed"},
    {"C4", "unknown_devices: quarantine\n", "iPhone", false, CORE_ACT_RESET, 0, 0, 0, "quarantine",
     "unmanaged"},
    {"C5", "unknown_devices: block\n", "iPhone", false, CORE_ACT_RESET, 0, 0, 0, "block",
     "unmanaged"},
    {"C6", "unknown_devices: block\ncompliance:\n  unmanaged_devices: quarantine\n", "iPhone",
     false, CORE_ACT_RESET, 0, 0, 0, "quarantine", "unmanaged"},
    {"C7", "compliance:\n  max_devices_per_user: 2\n", "iPhone", true, CORE_ACT_RESET, 0, 0, 2,
     "block", "too-many-devices"},
    {"C8", RULES, "iPhone", true, CORE_ACT_RESET, JAILBROKEN, HOUR, 0, "allow", "jailbroken"},
    {"C9", RULES, "iPhone", true, CORE_ACT_RESET, JAILBROKEN, 25 * HOUR, 0, "block", "jailbroken"},
    {"C10", "compliance:\n  block_jailbroken: true\n", "iPhone", true, CORE_ACT_RESET, CLEAN, 0, 0,
     "allow", "compliant"},
    {"C11", RULES, "Android9", true, CORE_ACT_RESET, 0, 0, 0, "quarantine", "rule:1"},
    {"C12", RULES, "TrustedPhone", false, CORE_ACT_RESET, 0, 0, 0, "allow", "rule:2"},
    {"C13", RULES, "TrustedPhone", true, CORE_ACT_RESET, JAILBROKEN, 25 * HOUR, 0, "block",
     "jailbroken"},
    {"C14", RULES, "Android9", false, CORE_ACT_ALLOW, 0, 0, 0, "allow", "admin-allow"},
};

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/eg-explain-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* The policy text as a file, read by the core's own loader. */
static void rules_of(const char *row, const char *text, struct compliance_rules *r)
{
    char path[128], err[512];
    snprintf(path, sizeof(path), "%s/%s.yaml", dir, row);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    if (core_cfg_rules(path, r, err, sizeof(err)) < 0)
        fail_msg("row %s: %s", row, err);
}

static const char *jstr(json_t *o, const char *a, const char *b)
{
    const char *s = json_string_value(json_object_get(json_object_get(o, a), b));
    return s ? s : "(none)";
}

/* What a proxy decides for a request of d under the policy, from the state
 * the core wrote (docs/access-model.md, the proxy's half). */
static const char *proxy_decides(const struct compliance_rules *r, const struct core_device *d)
{
    struct pol_request rq = {.ident = POL_ID_VERIFIED,
                             .user = d->user[0] ? d->user : NULL,
                             .device_id = d->device_id,
                             .device_type = d->device_type,
                             .command = EASQ_CMD_SYNC};
    struct pol_devstate st = {.state = (enum pol_devstate_kind)(d->state + 1),
                              .user = d->user,
                              .reason = d->reason,
                              .source = pol_devstate_source(d->reason)};
    struct pol_decision pd;
    pol_decide((const struct pol_policy *)r->devrules, &rq, &st, T0, &pd);
    return pol_action_name(pd.action);
}

static void run_row(const struct crow *c)
{
    char path[128], err[256];
    snprintf(path, sizeof(path), "%s/%s.db", dir, c->row);
    struct core_reg *reg;
    if (core_reg_open(path, &reg, err, sizeof(err)) < 0)
        fail_msg("row %s: %s", c->row, err);
    struct compliance_rules r;
    rules_of(c->row, c->policy, &r);
    struct core_eng eng;
    core_eng_init(&eng, reg, NULL, &r);
    /* The user's other enrolled devices first (C7 ranks by first seen). */
    for (int i = 0; i < c->others; i++) {
        char id[16];
        snprintf(id, sizeof(id), "OTHER%d", i);
        struct core_devinfo o = {.user = "alice", .device_type = "iPhone"};
        assert_int_equal(core_eng_seen(&eng, id, &o, T0 - 1000 + i, NULL), 0);
        assert_int_equal(core_eng_action(&eng, id, CORE_ACT_MANAGE, "alice", "t", "", "", T0), 0);
    }
    /* The device as a proxy first reported it: registered, unmanaged. */
    struct core_devinfo in = {.user = "alice", .device_type = c->device_type};
    assert_int_equal(core_eng_seen(&eng, "DEV1", &in, T0 - 500, NULL), 0);
    if (c->managed)
        assert_int_equal(core_eng_action(&eng, "DEV1", CORE_ACT_MANAGE, "alice", "t", "", "", T0),
                         0);
    if (c->checkin) {
        struct core_checkin ck = {.passcode = COMPLIANCE_YES,
                                  .encrypted = COMPLIANCE_YES,
                                  .jailbroken =
                                      c->checkin == JAILBROKEN ? COMPLIANCE_YES : COMPLIANCE_NO};
        assert_int_equal(core_eng_checkin(&eng, "DEV1", &ck, T0), 0);
    }
    if (c->ovr != CORE_ACT_RESET)
        assert_int_equal(core_eng_action(&eng, "DEV1", c->ovr, NULL, "t", "", "", T0), 0);
    int64_t now = T0 + c->at;
    struct core_device d;
    assert_int_equal(core_eng_evaluate(&eng, "DEV1", now, &d), 0);
    if (strcmp(compliance_state_name(d.state), c->state) || strcmp(d.reason, c->reason))
        fail_msg("row %s: the engine says %s %s, the document %s %s", c->row,
                 compliance_state_name(d.state), d.reason, c->state, c->reason);

    uint32_t rank = 0;
    if (r.max_devices_per_user > 0)
        assert_int_equal(core_reg_user_rank(reg, "DEV1", &rank), 0);
    json_t *j = core_explain(&r, "DEV1", &d, rank, NULL, now);
    assert_non_null(j);
    if (strcmp(jstr(j, "core_verdict", "state"), c->state) ||
        strcmp(jstr(j, "core_verdict", "reason"), c->reason))
        fail_msg("row %s: explain's verdict %s %s, the engine's %s %s", c->row,
                 jstr(j, "core_verdict", "state"), jstr(j, "core_verdict", "reason"), c->state,
                 c->reason);
    if (strcmp(jstr(j, "state", "state"), c->state) ||
        strcmp(jstr(j, "state", "reason"), c->reason))
        fail_msg("row %s: explain shows the state %s %s, stored %s %s", c->row,
                 jstr(j, "state", "state"), jstr(j, "state", "reason"), c->state, c->reason);
    const char *live = proxy_decides(&r, &d);
    if (strcmp(jstr(j, "decision", "action"), live))
        fail_msg("row %s: explain decides %s, a proxy %s", c->row, jstr(j, "decision", "action"),
                 live);
    json_decref(j);
    core_eng_free(&eng);
    core_cfg_rules_free(&r);
    core_reg_close(reg);
}

static void test_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(crows) / sizeof(crows[0]); i++)
        run_row(&crows[i]);
}

/* A DeviceId nobody met: said so, and the request it might send is decided
 * as a proxy decides an unknown device (rule 1 quarantines Android9). */
static void test_unknown(void **state)
{
    (void)state;
    struct compliance_rules r;
    rules_of("unknown", RULES, &r);
    struct core_explain_req rq = {.user = "bob", .device_type = "Android9", .version = "12.1"};
    json_t *j = core_explain(&r, "NEVERSEEN1", NULL, 0, &rq, T0);
    assert_non_null(j);
    assert_true(json_is_false(json_object_get(j, "known")));
    assert_non_null(strstr(json_string_value(json_object_get(j, "note")), "unknown DeviceId"));
    assert_string_equal(jstr(j, "decision", "action"), "quarantine");
    assert_string_equal(jstr(j, "decision", "reason"), "rule:1");
    json_decref(j);
    rq.device_type = "iPhone";
    j = core_explain(&r, "NEVERSEEN1", NULL, 0, &rq, T0);
    assert_string_equal(jstr(j, "decision", "action"), "block");
    assert_string_equal(jstr(j, "decision", "reason"), "unknown-device");
    json_decref(j);
    core_cfg_rules_free(&r);
}

/* No policy file: the core applies an empty policy's defaults, so an
 * unenrolled phone is allowed by the core as by the proxies (issue 17). */
static void test_no_policy(void **state)
{
    (void)state;
    struct compliance_rules r;
    char err[256];
    assert_int_equal(core_cfg_rules(NULL, &r, err, sizeof(err)), 0);
    assert_int_equal(r.unmanaged, COMPLIANCE_ALLOW);
    assert_non_null(r.devrules);
    struct compliance_facts f = {.managed = false};
    struct compliance_result res;
    compliance_evaluate(&r, &f, COMPLIANCE_OVR_NONE, T0, &res);
    assert_int_equal(res.state, COMPLIANCE_ALLOW);
    assert_string_equal(res.reason, "unmanaged-allowed");
    core_cfg_rules_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_unknown),
        cmocka_unit_test(test_no_policy),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
