/* test_compliance_load: the `compliance:` section loader: values, defaults, FILE:LINE:COL errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ytree.h"
#include "policy/compliance.h"

/* Load text (a whole policy document) and run the loader on its compliance: key. */
static int load(const char *text, struct compliance_rules *r, char *err, size_t errlen)
{
    struct yt_doc *doc = NULL;
    err[0] = '\0';
    int rc = yt_load_buf("policy.yaml", text, strlen(text), &doc, err, errlen);
    if (rc < 0)
        return rc;
    struct yt_ctx ctx = {.doc = doc, .err = err, .errlen = errlen};
    compliance_rules_init(r);
    rc = pol_compliance_load(yt_get(yt_root(doc), "compliance"), &ctx, r);
    yt_free(doc);
    return rc;
}

/* groups: the checks for some directory groups only; an exempt user (the
 * directory's word) is not checked, anyone else is (fail closed). */
static void test_groups(void **state)
{
    (void)state;
    char err[256];
    struct compliance_rules r;
    struct yt_doc *doc = NULL;
    static const char y[] = "compliance:\n  require_passcode: true\n  groups: [execs, Board]\n";
    assert_int_equal(yt_load_buf("policy.yaml", y, strlen(y), &doc, err, sizeof(err)), 0);
    struct yt_ctx ctx = {.doc = doc, .err = err, .errlen = sizeof(err)};
    compliance_rules_init(&r);
    assert_int_equal(pol_compliance_load(yt_get(yt_root(doc), "compliance"), &ctx, &r), 0);
    assert_int_equal(r.groups.n, 2);
    assert_string_equal(r.groups.v[1], "Board");
    assert_int_equal(r.groups_line, 3);
    assert_int_equal(r.groups_col, 11);
    struct compliance_facts f = {.managed = true, .passcode = COMPLIANCE_NO};
    struct compliance_result res;
    compliance_evaluate(&r, &f, COMPLIANCE_OVR_NONE, 1000, &res);
    assert_int_equal(res.state, COMPLIANCE_BLOCK); /* not exempt: checked */
    assert_string_equal(res.reason, "no-passcode");
    f.groups_exempt = true;
    compliance_evaluate(&r, &f, COMPLIANCE_OVR_NONE, 1000, &res);
    assert_int_equal(res.state, COMPLIANCE_ALLOW);
    assert_string_equal(res.reason, "not-in-compliance-groups");
    f.rule = COMPLIANCE_RULE_BLOCK; /* a rule still blocks an exempt user */
    f.rule_reason = "rule:1";
    compliance_evaluate(&r, &f, COMPLIANCE_OVR_NONE, 1000, &res);
    assert_int_equal(res.state, COMPLIANCE_BLOCK);
    yt_free(doc);

    r.groups.n = 0; /* no groups: exempt means nothing */
    f.rule = COMPLIANCE_RULE_NONE;
    compliance_evaluate(&r, &f, COMPLIANCE_OVR_NONE, 1000, &res);
    assert_string_equal(res.reason, "no-passcode");

    assert_int_equal(load("compliance:\n  groups: []\n", &r, err, sizeof(err)), 0); /* everybody */
    assert_int_equal(r.groups.n, 0);
    assert_true(load("compliance:\n  groups: [a, \"\"]\n", &r, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "policy.yaml:2:15: groups: empty entry"));
}

static void test_full(void **state)
{
    char err[256];
    struct compliance_rules r;
    assert_int_equal(load("compliance:\n"
                          "  require_passcode: true\n"
                          "  require_encryption: yes\n"
                          "  block_jailbroken: true\n"
                          "  min_os_version: { iOS: \"16.0\", Android: 12 }\n"
                          "  max_checkin_age: 72h\n"
                          "  grace_period: 3d\n"
                          "  unmanaged_devices: quarantine\n"
                          "  max_devices_per_user: 5\n"
                          "  os_source: eas_fallback\n",
                          &r, err, sizeof(err)),
                     0);
    assert_true(r.present);
    assert_true(r.require_passcode);
    assert_true(r.require_encryption);
    assert_true(r.block_jailbroken);
    assert_int_equal(r.n_os_min, 2);
    assert_string_equal(r.os_min[0].family, "iOS");
    assert_int_equal(r.os_min[0].min.part[0], 16);
    assert_string_equal(r.os_min[1].family, "Android");
    assert_int_equal(r.os_min[1].min.part[0], 12);
    assert_int_equal(r.max_checkin_age_ms, 72LL * 3600 * 1000);
    assert_int_equal(r.grace_period_ms, 3LL * 24 * 3600 * 1000);
    assert_int_equal(r.unmanaged, COMPLIANCE_QUARANTINE);
    assert_int_equal(r.max_devices_per_user, 5);
    assert_int_equal(r.os_source, COMPLIANCE_OS_EAS_FALLBACK);

    /* The printed form loads back to the same rules. */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    fputs("compliance:\n", f);
    pol_compliance_print(f, &r, 2);
    fclose(f);
    struct compliance_rules back;
    if (load(buf, &back, err, sizeof(err)) != 0)
        fail_msg("printed form does not load: %s\n%s", err, buf);
    free(buf);
    assert_memory_equal(&back, &r, sizeof(r));
}

static void test_defaults(void **state)
{
    char err[256];
    struct compliance_rules r;
    assert_int_equal(load("compliance: {}\n", &r, err, sizeof(err)), 0);
    assert_true(r.present);
    assert_false(r.require_passcode);
    assert_int_equal(r.n_os_min, 0);
    assert_int_equal(r.grace_period_ms, 0);
    assert_int_equal(r.max_checkin_age_ms, 0);
    assert_int_equal(r.unmanaged, COMPLIANCE_BLOCK);
    assert_int_equal(r.max_devices_per_user, 0);
    assert_int_equal(r.os_source, COMPLIANCE_OS_AUTHENTICATED);
    assert_int_equal(load("compliance:\n", &r, err, sizeof(err)), 0);
    assert_true(r.present);
}

static void test_errors(void **state)
{
    static const struct {
        const char *yaml;
        const char *want; /* substring of the message, position included */
    } rows[] = {
        {"compliance:\n  require_pascode: true\n", "policy.yaml:2:3:"},
        {"compliance:\n  require_pascode: true\n", "require_passcode"},
        {"compliance:\n  require_passcode: maybe\n", "policy.yaml:2:21:"},
        {"compliance:\n  unmanaged_devices: deny\n", "quarantine"},
        {"compliance:\n  os_source: reported\n", "policy.yaml:2:14:"},
        {"compliance:\n  os_source: reported\n", "eas_fallback"},
        {"compliance:\n  grace_period: 3\n", "policy.yaml:2:17:"},
        {"compliance:\n  max_checkin_age: soon\n", "policy.yaml:2:20:"},
        {"compliance:\n  max_devices_per_user: -1\n", "policy.yaml:2:25:"},
        {"compliance:\n  min_os_version: { iOS: \"sixteen\" }\n", "policy.yaml:2:26:"},
        {"compliance:\n  min_os_version: { iOS: \"sixteen\" }\n", "not a version"},
        {"compliance:\n  min_os_version: { iOS: \"16.\" }\n", "not a version"},
        {"compliance:\n  min_os_version: { iOS: 16, ios: 17 }\n", "listed twice"},
        {"compliance:\n  min_os_version: \"16\"\n", "policy.yaml:2:19:"},
        {"compliance:\n  min_os_version: { iOS: [16] }\n", "policy.yaml:2:26:"},
        {"compliance: [1, 2]\n", "policy.yaml:1:13:"},
        {"compliance: true\n", "policy.yaml:1:13:"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char err[256];
        struct compliance_rules r;
        int rc = load(rows[i].yaml, &r, err, sizeof(err));
        if (rc >= 0 || !strstr(err, rows[i].want))
            fail_msg("row %zu: rc=%d err='%s', want '%s'", i, rc, err, rows[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_groups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
