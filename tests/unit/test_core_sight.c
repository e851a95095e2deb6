/*
 * test_core_sight: DeviceInformation OS strings split into family and
 * version; what autoblock and auth-block entries do to a registry (built by
 * hand, without Redis): a registered device blocked for block_ms from the
 * entry's time, audited once however often the entry is replayed, lifted
 * by the timer or an admin's reset or allow; others counted and ignored.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/sight.h"

#define T0 (1700000000000LL)
#define DEV "ABCDEF0123456789"

static void test_split_os(void **state)
{
    static const struct {
        const char *in, *family, *version;
    } rows[] = {
        {"iOS 16.1.1 20B101", "iOS", "16.1.1"},
        {"Android 13", "Android", "13"},
        {"  Android   12.0  ", "Android", "12.0"},
        {"iOS", "iOS", ""},
        {"Windows Phone 8.1", "Windows", ""},
        {"iOS 16.1beta", "iOS", ""},
        {"", "", ""},
        {"iOS 123456789012345678901234567890123456789012345678901234567890123456789", "iOS", ""},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char fam[64], ver[64];
        core_sight_split_os(rows[i].in, fam, sizeof(fam), ver, sizeof(ver));
        if (strcmp(fam, rows[i].family) != 0 || strcmp(ver, rows[i].version) != 0)
            fail_msg("'%s': got '%s' '%s', want '%s' '%s'", rows[i].in, fam, ver, rows[i].family,
                     rows[i].version);
    }
    char fam[4], ver[4];
    core_sight_split_os(NULL, fam, sizeof(fam), ver, sizeof(ver));
    assert_string_equal(fam, "");
    core_sight_split_os("Android 12.1", fam, sizeof(fam), ver, sizeof(ver)); /* small buffers */
    assert_string_equal(fam, "And");
}

static char dir[64], path[128];
static struct core_reg *reg;
static struct core_eng eng;

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/eg-sight-XXXXXX");
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

/* One stream entry from "name", "value", ... NULL, as hiredis hands it over. */
struct entry {
    redisReply kv[32], *ptr[32], arr;
    struct rstore_entry en;
};

static void entry_make(struct entry *x, const char *id, const char *const *fv)
{
    memset(x, 0, sizeof(*x));
    size_t n = 0;
    for (; fv[n] && n < 32; n++) {
        x->kv[n].type = REDIS_REPLY_STRING;
        x->kv[n].str = (char *)fv[n];
        x->kv[n].len = strlen(fv[n]);
        x->ptr[n] = &x->kv[n];
    }
    x->arr.type = REDIS_REPLY_ARRAY;
    x->arr.elements = n;
    x->arr.element = x->ptr;
    x->en.id = id;
    x->en.fields = &x->arr;
}

static struct core_sight_stats apply1(const char *const *fv, int64_t now_ms)
{
    /* Redis adds an entry when the proxy sends it: its id carries that time. */
    char id[32] = "1700000000000-0";
    for (size_t i = 0; fv[i] && fv[i + 1]; i += 2)
        if (strcmp(fv[i], "time") == 0)
            snprintf(id, sizeof(id), "%s-0", fv[i + 1]);
    struct entry x;
    entry_make(&x, id, fv);
    struct core_sight_stats st = {0};
    assert_int_equal(core_sight_apply(&eng, &x.en, 1, now_ms, &st), 0);
    return st;
}

static void register_dev(void)
{
    struct core_devinfo in = {.user = "alice", .device_type = "iPhone"};
    assert_int_equal(core_eng_seen(&eng, DEV, &in, T0 - 1000, NULL), 0);
}

static size_t audits(const char *action, struct core_audit *last)
{
    struct core_audit a[32];
    size_t n = 0, k = 0;
    assert_int_equal(core_reg_audit_find(reg, DEV, 0, a, 32, &n), 0);
    for (size_t i = 0; i < n; i++)
        if (strcmp(a[i].action, action) == 0 && k++ == 0 && last)
            *last = a[i];
    return k;
}

static const char *const sync_commands[] = {
    "kind",     "autoblock",    "device",      DEV,         "time",      "1700000000000",
    "rule",     "SyncCommands", "count",       "501",       "window_ms", "3600000",
    "block_ms", "60000",        "client_addr", "192.0.2.7", NULL};

static void test_autoblock(void **state)
{
    register_dev();
    /* The core's clock a little behind the proxy's: the end still follows
     * the entry, or a replay at another moment would move it. */
    struct core_sight_stats st = apply1(sync_commands, T0 - 500);
    assert_int_equal(st.autoblocks, 1);
    assert_int_equal(st.invalid, 0);
    struct core_device d;
    assert_int_equal(core_reg_device_get(reg, DEV, &d), 0);
    assert_int_equal(d.state, COMPLIANCE_BLOCK);
    assert_string_equal(d.reason, "autoblock:SyncCommands");
    assert_int_equal(d.autoblock_until_ms, T0 + 60000); /* from the entry's time */
    assert_int_equal(d.next_eval_ms, T0 + 60000);
    struct core_audit a;
    assert_int_equal(audits("device.autoblock", &a), 1);
    assert_string_equal(a.actor, "proxy");
    assert_string_equal(a.address, "192.0.2.7");
    assert_non_null(strstr(a.detail, "501"));
    assert_non_null(strstr(a.detail, "3600000"));
    int64_t version = d.version;

    /* A replay (the core crashed before acknowledging) changes nothing. */
    st = apply1(sync_commands, T0 + 20);
    assert_int_equal(st.autoblocks, 0);
    assert_int_equal(audits("device.autoblock", NULL), 1);
    assert_int_equal(core_reg_device_get(reg, DEV, &d), 0);
    assert_int_equal(d.version, version);

    /* Not yet due: still blocked; then the timer lifts it. */
    size_t n = 0;
    assert_int_equal(core_eng_tick(&eng, T0 + 59999, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(core_eng_tick(&eng, T0 + 60000, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(core_reg_device_get(reg, DEV, &d), 0);
    assert_int_equal(d.state, COMPLIANCE_ALLOW);
    assert_string_equal(d.reason, "unmanaged-allowed");
    assert_int_equal(d.next_eval_ms, 0);
    assert_int_equal(audits("device.state", &a), 1);
    assert_non_null(strstr(a.detail, "timer"));

    /* A replay after the block ended does not block again. */
    st = apply1(sync_commands, T0 + 70000);
    assert_int_equal(st.autoblocks, 0);
    assert_int_equal(core_reg_device_get(reg, DEV, &d), 0);
    assert_int_equal(d.state, COMPLIANCE_ALLOW);
}

static void test_autoblock_admin(void **state)
{
    register_dev();
    apply1(sync_commands, T0);
    struct core_device d;
    assert_int_equal(core_eng_action(&eng, DEV, CORE_ACT_RESET, NULL, "admin", "", "ok", T0 + 5),
                     0);
    assert_int_equal(core_reg_device_get(reg, DEV, &d), 0);
    assert_int_equal(d.state, COMPLIANCE_ALLOW);
    assert_int_equal(d.autoblock_until_ms, 0);
    assert_string_equal(d.autoblock_reason, "");

    /* Blocked again by a later crossing; an admin allow wins as well. */
    const char *later[] = {"kind",          "autoblock", "device",           DEV,     "time",
                           "1700000100000", "rule",      "CommandFrequency", "count", "9",
                           "window_ms",     "1000",      "block_ms",         "60000", NULL};
    assert_int_equal(apply1(later, T0 + 100000).autoblocks, 1);
    assert_int_equal(core_reg_device_get(reg, DEV, &d), 0);
    assert_string_equal(d.reason, "autoblock:CommandFrequency");
    assert_int_equal(
        core_eng_action(&eng, DEV, CORE_ACT_ALLOW, NULL, "admin", "", "ok", T0 + 100005), 0);
    assert_int_equal(core_reg_device_get(reg, DEV, &d), 0);
    assert_int_equal(d.state, COMPLIANCE_ALLOW);
    assert_string_equal(d.reason, "admin-allow");
    assert_int_equal(d.autoblock_until_ms, 0);

    /* An override outranks an autoblock while it stands. */
    const char *third[] = {"kind",          "autoblock", "device",           DEV,     "time",
                           "1700000200000", "rule",      "UserAgentChanges", "count", "4",
                           "window_ms",     "1000",      "block_ms",         "60000", NULL};
    assert_int_equal(apply1(third, T0 + 200000).autoblocks, 1);
    assert_int_equal(core_reg_device_get(reg, DEV, &d), 0);
    assert_string_equal(d.reason, "admin-allow");
}

/* The policy's action quarantine: the device is quarantined for the time,
 * an admin's allow (approval) ends it, as for a block. */
static void test_autoquarantine(void **state)
{
    register_dev();
    const char *q[] = {"kind",          "autoblock",   "device",       DEV,     "time",
                       "1700000000000", "rule",        "SyncCommands", "count", "501",
                       "window_ms",     "3600000",     "block_ms",     "60000", "action",
                       "quarantine",    "client_addr", "192.0.2.7",    NULL};
    assert_int_equal(apply1(q, T0).autoblocks, 1);
    struct core_device d;
    assert_int_equal(core_reg_device_get(reg, DEV, &d), 0);
    assert_int_equal(d.state, COMPLIANCE_QUARANTINE);
    assert_string_equal(d.reason, "autoquarantine:SyncCommands");
    assert_int_equal(d.autoblock_until_ms, T0 + 60000);
    struct core_audit a;
    assert_int_equal(audits("device.autoblock", &a), 1);
    assert_non_null(strstr(a.detail, "quarantined"));
    assert_int_equal(core_eng_action(&eng, DEV, CORE_ACT_ALLOW, NULL, "admin", "", "ok", T0 + 5),
                     0);
    assert_int_equal(core_reg_device_get(reg, DEV, &d), 0);
    assert_int_equal(d.state, COMPLIANCE_ALLOW);
    assert_int_equal(d.autoblock_until_ms, 0);
}

static void test_autoblock_ignored(void **state)
{
    /* Not registered: counted, nothing created. */
    struct core_sight_stats st = apply1(sync_commands, T0);
    assert_int_equal(st.autoblock_unknown, 1);
    assert_int_equal(st.autoblocks, 0);
    assert_int_equal(core_reg_device_exists(reg, DEV), 0);

    register_dev();
    static const char *const bad[][16] = {
        {"kind", "autoblock", "device", DEV, "rule", "SyncCommands", NULL},
        {"kind", "autoblock", "device", DEV, "rule", "SyncCommands", "block_ms", "0", NULL},
        {"kind", "autoblock", "device", DEV, "rule", "SyncCommands", "block_ms", "-5", NULL},
        {"kind", "autoblock", "device", DEV, "rule", "SyncCommands", "block_ms", "9x", NULL},
        {"kind", "autoblock", "device", DEV, "rule", "SyncCommands", "block_ms", "99999999999999",
         NULL},
        {"kind", "autoblock", "device", DEV, "rule", "Sync Commands", "block_ms", "1000", NULL},
        {"kind", "autoblock", "device", DEV, "block_ms", "1000", NULL},
        {"kind", "autoblock", "device", DEV, "rule", "SyncCommands", "block_ms", "1000", "action",
         "wipe", NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        st = apply1(bad[i], T0);
        if (st.invalid != 1)
            fail_msg("entry %zu was not refused", i);
    }
    struct core_device d;
    assert_int_equal(core_reg_device_get(reg, DEV, &d), 0);
    assert_int_equal(d.state, COMPLIANCE_ALLOW);
    assert_int_equal(audits("device.autoblock", NULL), 0);
}

static void test_auth_block(void **state)
{
    const char *fv[] = {"kind",          "auth-block", "device",   DEV,      "time",
                        "1700000000000", "scope",      "user",     "user",   "bob",
                        "strike",        "2",          "block_ms", "120000", "client_addr",
                        "198.51.100.4",  NULL};
    struct core_sight_stats st = apply1(fv, T0 + 5);
    assert_int_equal(st.auth_blocks, 1);
    assert_int_equal(st.invalid, 0);
    struct core_audit a;
    assert_int_equal(audits("proxy.auth-block", &a), 1);
    assert_string_equal(a.actor, "proxy");
    assert_string_equal(a.address, "198.51.100.4");
    assert_int_equal(a.at_ms, T0);
    assert_non_null(strstr(a.detail, "scope user"));
    assert_non_null(strstr(a.detail, "'bob'"));
    assert_non_null(strstr(a.detail, "strike 2"));
    assert_non_null(strstr(a.detail, "120000"));
    assert_int_equal(core_reg_device_exists(reg, DEV), 0); /* no row made for it */
    /* a replay (the core stopped before acknowledging) is not audited again */
    st = apply1(fv, T0 + 50);
    assert_int_equal(st.auth_blocks, 0);
    assert_int_equal(audits("proxy.auth-block", NULL), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_os),
        cmocka_unit_test_setup_teardown(test_autoblock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_autoblock_admin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_autoquarantine, setup, teardown),
        cmocka_unit_test_setup_teardown(test_autoblock_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_block, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
