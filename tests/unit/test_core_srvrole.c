/*
 * test_core_srvrole: the core's side of the server role, without Redis:
 * the account-only wipe (refused unless the device last spoke EAS 16.1 or
 * later; stored as wipe_kind), reprovision (pk_epoch and version move even
 * though the state does not), the ActiveSync version a sighting reports,
 * and the issued policy key (an older report never overwrites a newer one).
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

#include "core/eng.h"

#define T0 (1700000000000LL)

static char dir[64], path[128];
static struct core_reg *reg;
static struct core_eng eng;

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/eg-srvrole-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof(path), "%s/reg.db", dir);
    char err[256];
    if (core_reg_open(path, &reg, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    struct compliance_rules r;
    compliance_rules_init(&r);
    r.unmanaged = COMPLIANCE_ALLOW;
    core_eng_init(&eng, reg, NULL, &r);
    return 0;
}

static int teardown(void **state)
{
    core_eng_free(&eng);
    core_reg_close(reg);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void seen(const char *id, const char *ver, int64_t at)
{
    struct core_devinfo in = {.user = "alice", .device_type = "iPhone", .eas_version = ver};
    assert_int_equal(core_eng_seen(&eng, id, &in, at, NULL), 0);
}

static void test_eas_version(void **state)
{
    assert_int_equal(core_eas_version("16.1"), 161);
    assert_int_equal(core_eas_version("14.0"), 140);
    assert_int_equal(core_eas_version("2.5"), 25);
    assert_int_equal(core_eas_version(""), 0);
    assert_int_equal(core_eas_version(NULL), 0);
    assert_int_equal(core_eas_version("16"), 0);
    assert_int_equal(core_eas_version("16.1.2"), 0);
    assert_int_equal(core_eas_version("16.x"), 0);
    assert_int_equal(core_eas_version("-1.0"), 0);
    /* the version moves with newer sightings only */
    struct core_device d;
    seen("DEVA", "14.1", T0);
    seen("DEVA", "16.1", T0 + 1000);
    seen("DEVA", "12.1", T0 + 500); /* a replay of an older sighting */
    seen("DEVA", NULL, T0 + 2000);  /* no version: left as stored */
    assert_int_equal(core_reg_device_get(reg, "deva", &d), 0);
    assert_string_equal(d.eas_version, "16.1");
    assert_int_equal(core_reg_schema_version(reg), CORE_REG_SCHEMA);
}

static void test_account_wipe(void **state)
{
    struct core_device d;
    seen("OLD1", "14.1", T0);
    seen("NEW1", "16.1", T0);
    assert_int_equal(core_eng_seen(&eng, "NONE1", NULL, T0, NULL), 0);
    /* below 16.1, or never seen: refused, nothing changes */
    assert_int_equal(core_eng_action(&eng, "OLD1", CORE_ACT_WIPE_ACCOUNT, NULL, "t", "", "", T0),
                     CORE_REG_EPROTO);
    assert_int_equal(core_eng_action(&eng, "NONE1", CORE_ACT_WIPE_ACCOUNT, NULL, "t", "", "", T0),
                     CORE_REG_EPROTO);
    assert_int_equal(core_reg_device_get(reg, "OLD1", &d), 0);
    assert_int_equal(d.state, COMPLIANCE_ALLOW);
    assert_int_equal(d.override, COMPLIANCE_OVR_NONE);
    assert_false(d.wipe_account);
    struct core_action h[4];
    size_t n = 9;
    assert_int_equal(core_reg_action_list(reg, "OLD1", 0, h, 4, &n), 0);
    assert_int_equal(n, 0); /* the refused action left no history */
    /* 16.1: wipe, account-only */
    assert_int_equal(core_eng_action(&eng, "NEW1", CORE_ACT_WIPE_ACCOUNT, NULL, "t", "", "", T0),
                     0);
    assert_int_equal(core_reg_device_get(reg, "NEW1", &d), 0);
    assert_int_equal(d.state, COMPLIANCE_WIPE);
    assert_true(d.wipe_account);
    int64_t v = d.version;
    /* a full wipe over it: same state, new kind, the version still moves */
    assert_int_equal(core_eng_action(&eng, "NEW1", CORE_ACT_WIPE, NULL, "t", "", "", T0 + 1), 0);
    assert_int_equal(core_reg_device_get(reg, "NEW1", &d), 0);
    assert_int_equal(d.state, COMPLIANCE_WIPE);
    assert_false(d.wipe_account);
    assert_true(d.version > v);
    /* the full wipe needs no version */
    assert_int_equal(core_eng_action(&eng, "OLD1", CORE_ACT_WIPE, NULL, "t", "", "", T0), 0);
    enum core_act a;
    assert_int_equal(core_action_parse("reprovision", &a), 0);
    assert_int_equal(a, CORE_ACT_REPROVISION);
    assert_int_equal(core_action_parse("wipe-account", &a), 0);
    assert_int_equal(a, CORE_ACT_WIPE_ACCOUNT);
}

static void test_reprovision_and_key(void **state)
{
    struct core_device d;
    seen("DEVR", "16.1", T0);
    assert_int_equal(core_reg_device_get(reg, "DEVR", &d), 0);
    assert_int_equal(d.pk_epoch, 0);
    assert_int_equal(d.policy_key, 0);
    int64_t v = d.version;
    assert_int_equal(core_eng_action(&eng, "DEVR", CORE_ACT_REPROVISION, NULL, "t", "", "", T0), 0);
    assert_int_equal(core_eng_action(&eng, "DEVR", CORE_ACT_REPROVISION, NULL, "t", "", "", T0), 0);
    assert_int_equal(core_reg_device_get(reg, "DEVR", &d), 0);
    assert_int_equal(d.pk_epoch, 2);
    assert_true(d.version > v);
    assert_int_equal(d.state, COMPLIANCE_ALLOW);
    /* issued keys: the newer report wins, a replay of an older one does not */
    assert_int_equal(core_reg_provisioned(reg, "DEVR", 0x80000005u, T0 + 2000), 0);
    assert_int_equal(core_reg_provisioned(reg, "DEVR", 0x80000004u, T0 + 1000), 0);
    assert_int_equal(core_reg_device_get(reg, "DEVR", &d), 0);
    assert_int_equal(d.policy_key, 0x80000005u);
    assert_int_equal(d.provisioned_ms, T0 + 2000);
    assert_int_equal(core_reg_provisioned(reg, "NOPE", 7, T0), CORE_REG_ENOTFOUND);
    assert_int_equal(core_eng_action(&eng, "NOPE", CORE_ACT_REPROVISION, NULL, "t", "", "", T0),
                     CORE_REG_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_eas_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_account_wipe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reprovision_and_key, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
