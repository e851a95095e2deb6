/* test_core_reg: the SQLite device registry: migrations, devices, state versions, lists, audit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/reg.h"

static char dir[64];
static char path[128];
static int seq;

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/eg-reg-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/reg%d.db", dir, seq++);
    return 0;
}

static int teardown(void **state)
{
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static struct core_reg *open_ok(void)
{
    struct core_reg *reg = NULL;
    char err[256] = "";
    int rc = core_reg_open(path, &reg, err, sizeof(err));
    if (rc != 0)
        fail_msg("open: %d %s", rc, err);
    return reg;
}

static void raw_exec(const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("raw sql: %s", msg);
    sqlite3_close(db);
}

static void test_open_fresh(void **state)
{
    struct core_reg *reg = open_ok();
    assert_int_equal(core_reg_schema_version(reg), CORE_REG_SCHEMA);
    assert_int_equal(core_reg_device_count(reg), 0);
    core_reg_close(reg);
    /* Reopening a current database is a no-op. */
    reg = open_ok();
    assert_int_equal(core_reg_schema_version(reg), CORE_REG_SCHEMA);
    core_reg_close(reg);
    /* WAL mode is persistent in the file. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    sqlite3_close(db);
}

static void test_devices(void **state)
{
    struct core_reg *reg = open_ok();
    struct core_devinfo info = {.device_type = "iPhone",
                                .model = "iPhone14,2",
                                .os = "iOS",
                                .os_version = "16.1",
                                .user = "alice@example.com",
                                .user_agent = "Apple-iPhone14C2/2001.2"};
    bool created = false;
    assert_int_equal(core_reg_device_seen(reg, "abc123def", &info, 1000, &created), 0);
    assert_true(created);
    struct core_device d;
    assert_int_equal(core_reg_device_get(reg, "ABC123DEF", &d), 0);
    assert_string_equal(d.device_id, "ABC123DEF");
    assert_string_equal(d.device_type, "iPhone");
    assert_string_equal(d.user, "alice@example.com");
    assert_false(d.managed);
    assert_int_equal(d.first_seen_ms, 1000);
    assert_int_equal(d.passcode, COMPLIANCE_UNKNOWN);
    assert_int_equal(d.override, COMPLIANCE_OVR_NONE);
    assert_int_equal(d.version, 0);

    /* Merge: NULL keeps, new values replace, last_seen never goes back, the user sticks. */
    struct core_devinfo more = {
        .friendly_name = "Alice's phone", .os_version = "16.2", .user = "mallory@example.com"};
    assert_int_equal(core_reg_device_seen(reg, "ABC123def", &more, 500, &created), 0);
    assert_false(created);
    assert_int_equal(core_reg_device_get(reg, "abc123def", &d), 0);
    assert_string_equal(d.model, "iPhone14,2");
    assert_string_equal(d.os_version, "16.2");
    assert_string_equal(d.friendly_name, "Alice's phone");
    assert_string_equal(d.user, "alice@example.com");
    assert_int_equal(d.last_seen_ms, 1000);
    assert_int_equal(core_reg_device_seen(reg, "ABC123DEF", NULL, 2000, NULL), 0);
    assert_int_equal(core_reg_device_get(reg, "abc123def", &d), 0);
    assert_int_equal(d.last_seen_ms, 2000);
    assert_int_equal(d.first_seen_ms, 1000);

    /* Bad DeviceIds never reach the database. */
    assert_int_equal(core_reg_device_seen(reg, "bad id!", &info, 1, NULL), CORE_REG_EINVAL);
    assert_int_equal(core_reg_device_seen(reg, "", &info, 1, NULL), CORE_REG_EINVAL);
    assert_int_equal(
        core_reg_device_seen(reg, "A123456789012345678901234567890123", &info, 1, NULL),
        CORE_REG_EINVAL);
    assert_int_equal(core_reg_device_get(reg, "NOPE", &d), CORE_REG_ENOTFOUND);

    /* Over-long text is clipped at a UTF-8 boundary, not refused. */
    char longname[400];
    memset(longname, 'x', sizeof(longname));
    memcpy(longname + CORE_NAME_MAX - 2, "\xc3\xa9", 2); /* straddles the limit */
    longname[sizeof(longname) - 1] = '\0';
    struct core_devinfo lng = {.friendly_name = longname};
    assert_int_equal(core_reg_device_seen(reg, "ABC123DEF", &lng, 3000, NULL), 0);
    assert_int_equal(core_reg_device_get(reg, "abc123def", &d), 0);
    assert_int_equal(strlen(d.friendly_name), CORE_NAME_MAX - 2);

    /* Control characters never reach the registry. */
    struct core_devinfo evil = {.user_agent = "Mail\n2026-01-01 info forged\x1b[31m"};
    assert_int_equal(core_reg_device_seen(reg, "ABC123DEF", &evil, 3000, NULL), 0);
    assert_int_equal(core_reg_device_get(reg, "abc123def", &d), 0);
    assert_string_equal(d.user_agent, "Mail?2026-01-01 info forged?[31m");

    /* Check-in facts. */
    struct core_checkin c = {.os = "iOS",
                             .os_version = "17.0",
                             .passcode = COMPLIANCE_YES,
                             .encrypted = COMPLIANCE_YES,
                             .jailbroken = COMPLIANCE_NO};
    assert_int_equal(core_reg_checkin(reg, "abc123def", &c, 5000), 0);
    struct core_checkin c2 = {.passcode = COMPLIANCE_UNKNOWN,
                              .encrypted = COMPLIANCE_UNKNOWN,
                              .jailbroken = COMPLIANCE_YES};
    assert_int_equal(core_reg_checkin(reg, "abc123def", &c2, 6000), 0);
    assert_int_equal(core_reg_device_get(reg, "abc123def", &d), 0);
    assert_int_equal(d.passcode, COMPLIANCE_YES);
    assert_int_equal(d.jailbroken, COMPLIANCE_YES);
    assert_string_equal(d.os_version, "17.0");
    assert_int_equal(d.last_checkin_ms, 6000);

    /* What a sighting reports (ActiveSync DeviceInformation) lands apart and
     * never overwrites the check-in's OS, nor does a check-in touch it. */
    struct core_devinfo rep = {.eas_os = "iOS", .eas_os_version = "99.0"};
    assert_int_equal(core_reg_device_seen(reg, "abc123def", &rep, 6500, NULL), 0);
    assert_int_equal(core_reg_device_get(reg, "abc123def", &d), 0);
    assert_string_equal(d.os, "iOS");
    assert_string_equal(d.os_version, "17.0");
    assert_string_equal(d.eas_os, "iOS");
    assert_string_equal(d.eas_os_version, "99.0");
    struct core_checkin c3 = {.os_version = "17.1",
                              .passcode = COMPLIANCE_UNKNOWN,
                              .encrypted = COMPLIANCE_UNKNOWN,
                              .jailbroken = COMPLIANCE_UNKNOWN};
    assert_int_equal(core_reg_checkin(reg, "abc123def", &c3, 6600), 0);
    assert_int_equal(core_reg_device_get(reg, "abc123def", &d), 0);
    assert_string_equal(d.os_version, "17.1");
    assert_string_equal(d.eas_os_version, "99.0");
    assert_int_equal(core_reg_checkin(reg, "UNKNOWN1", &c, 1), CORE_REG_ENOTFOUND);

    assert_int_equal(core_reg_set_managed(reg, "abc123def", true, NULL), 0);
    assert_int_equal(core_reg_set_override(reg, "abc123def", COMPLIANCE_OVR_BLOCK), 0);
    assert_int_equal(core_reg_wipe_acked(reg, "abc123def", 7000), 0);
    assert_int_equal(core_reg_device_get(reg, "abc123def", &d), 0);
    assert_true(d.managed);
    assert_int_equal(d.override, COMPLIANCE_OVR_BLOCK);
    assert_int_equal(d.wipe_acked_ms, 7000);

    assert_int_equal(core_reg_device_delete(reg, "abc123def"), 0);
    assert_int_equal(core_reg_device_delete(reg, "abc123def"), CORE_REG_ENOTFOUND);
    assert_int_equal(core_reg_device_count(reg), 0);
    core_reg_close(reg);
}

static void test_state_versions(void **state)
{
    struct core_reg *reg = open_ok();
    assert_int_equal(core_reg_device_seen(reg, "DEV1", NULL, 1, NULL), 0);
    assert_int_equal(core_reg_device_seen(reg, "DEV2", NULL, 1, NULL), 0);
    bool changed;
    int64_t v1, v2, v3;
    assert_int_equal(
        core_reg_set_state(reg, "dev1", COMPLIANCE_ALLOW, "compliant", 0, 0, 10, &changed, &v1), 0);
    assert_true(changed);
    assert_true(v1 > 0);
    /* Same state and reason: no bump, but the non-compliant mark is stored. */
    assert_int_equal(
        core_reg_set_state(reg, "DEV1", COMPLIANCE_ALLOW, "compliant", 0, 0, 20, &changed, &v2), 0);
    assert_false(changed);
    assert_int_equal(v2, v1);
    /* Same state, new reason (grace started): bump. */
    assert_int_equal(
        core_reg_set_state(reg, "DEV1", COMPLIANCE_ALLOW, "jailbroken", 30, 0, 30, &changed, &v2),
        0);
    assert_true(changed);
    assert_true(v2 > v1);
    /* The sequence is global: another device gets a higher version still. */
    assert_int_equal(
        core_reg_set_state(reg, "DEV2", COMPLIANCE_BLOCK, "unmanaged", 0, 0, 40, &changed, &v3), 0);
    assert_true(changed);
    assert_true(v3 > v2);
    struct core_device d;
    assert_int_equal(core_reg_device_get(reg, "DEV1", &d), 0);
    assert_int_equal(d.state, COMPLIANCE_ALLOW);
    assert_string_equal(d.reason, "jailbroken");
    assert_int_equal(d.version, v2);
    assert_int_equal(d.updated_ms, 30);
    assert_int_equal(d.non_compliant_since_ms, 30);
    assert_int_equal(core_reg_set_state(reg, "NOPE", COMPLIANCE_BLOCK, "x", 0, 0, 1, NULL, NULL),
                     CORE_REG_ENOTFOUND);
    assert_int_equal(
        core_reg_set_state(reg, "DEV1", (enum compliance_state)9, "x", 0, 0, 1, NULL, NULL),
        CORE_REG_EINVAL);
    /* Timers: devices come due in next_eval order. */
    assert_int_equal(core_reg_set_state(reg, "DEV1", COMPLIANCE_ALLOW, "jailbroken", 30, 500, 45,
                                        &changed, NULL),
                     0);
    assert_false(changed);
    assert_int_equal(
        core_reg_set_state(reg, "DEV2", COMPLIANCE_BLOCK, "unmanaged", 0, 400, 45, &changed, NULL),
        0);
    char due[4][CORE_DEVID_MAX + 1];
    size_t n;
    assert_int_equal(core_reg_due(reg, 399, due, 4, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(core_reg_due(reg, 1000, due, 4, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(due[0], "DEV2");
    assert_string_equal(due[1], "DEV1");
    assert_int_equal(core_reg_due(reg, 1000, due, 1, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(core_reg_device_exists(reg, "DEV1"), 1);
    assert_int_equal(core_reg_device_exists(reg, "dev1"), 0); /* canonical form only */
    int64_t m;
    assert_int_equal(core_reg_meta_get(reg, "x", &m), CORE_REG_ENOTFOUND);
    assert_int_equal(core_reg_meta_set(reg, "x", 7), 0);
    assert_int_equal(core_reg_meta_set(reg, "x", 8), 0);
    assert_int_equal(core_reg_meta_get(reg, "x", &m), 0);
    assert_int_equal(m, 8);
    assert_int_equal(core_reg_meta_set(reg, "state_version", 1), CORE_REG_EINVAL);
    int64_t a, b;
    assert_int_equal(core_reg_next_version(reg, &a), 0);
    assert_int_equal(core_reg_next_version(reg, &b), 0);
    assert_int_equal(b, a + 1);
    /* A deleted and re-created device never reuses a version. */
    assert_int_equal(core_reg_device_delete(reg, "DEV2"), 0);
    assert_int_equal(core_reg_device_seen(reg, "DEV2", NULL, 50, NULL), 0);
    assert_int_equal(
        core_reg_set_state(reg, "DEV2", COMPLIANCE_BLOCK, "unmanaged", 0, 0, 50, &changed, &v1), 0);
    assert_true(v1 > v3);
    /* Inside an explicit transaction, a rollback undoes the bump. */
    assert_int_equal(core_reg_begin(reg), 0);
    assert_int_equal(
        core_reg_set_state(reg, "DEV2", COMPLIANCE_ALLOW, "admin-allow", 0, 0, 60, &changed, &v2),
        0);
    assert_int_equal(core_reg_rollback(reg), 0);
    assert_int_equal(core_reg_device_get(reg, "DEV2", &d), 0);
    assert_int_equal(d.state, COMPLIANCE_BLOCK);
    assert_int_equal(d.version, v1);
    core_reg_close(reg);
}

/* A flat stretch: its nested levels make no savepoints; one that fails
 * inside breaks the stretch, and the caller drops the whole transaction. */
static void test_flat(void **state)
{
    (void)state;
    struct core_reg *reg = open_ok();
    struct core_device d;
    bool changed;
    int64_t v;
    assert_int_equal(core_reg_begin(reg), 0);
    core_reg_flat_begin(reg);
    assert_int_equal(core_reg_begin(reg), 0); /* a nested level: no SAVEPOINT */
    assert_int_equal(core_reg_device_seen(reg, "FLAT1", NULL, 10, NULL), 0);
    assert_int_equal(core_reg_commit(reg), 0);
    assert_false(core_reg_flat_end(reg));
    assert_int_equal(core_reg_commit(reg), 0);
    assert_int_equal(core_reg_device_get(reg, "FLAT1", &d), 0);

    assert_int_equal(core_reg_begin(reg), 0);
    assert_int_equal(core_reg_begin(reg), 0); /* the stretch starts one level down */
    core_reg_flat_begin(reg);
    assert_int_equal(core_reg_device_seen(reg, "FLAT2", NULL, 20, NULL), 0);
    assert_int_equal(core_reg_begin(reg), 0);
    assert_int_equal(
        core_reg_set_state(reg, "FLAT1", COMPLIANCE_ALLOW, "admin-allow", 0, 0, 20, &changed, &v),
        0);
    assert_int_equal(core_reg_rollback(reg), 0); /* cannot undo alone: breaks the stretch */
    assert_true(core_reg_flat_end(reg));
    assert_int_equal(core_reg_rollback(reg), 0); /* the caller's level goes whole */
    assert_int_equal(core_reg_device_seen(reg, "FLAT3", NULL, 30, NULL), 0);
    assert_int_equal(core_reg_commit(reg), 0);
    assert_int_equal(core_reg_device_get(reg, "FLAT2", &d), CORE_REG_ENOTFOUND);
    assert_int_equal(core_reg_device_get(reg, "FLAT1", &d), 0);
    assert_int_equal(d.state, COMPLIANCE_BLOCK);
    assert_int_equal(core_reg_device_get(reg, "FLAT3", &d), 0);
    core_reg_close(reg);
}

static void test_list_and_rank(void **state)
{
    struct core_reg *reg = open_ok();
    assert_int_equal(core_reg_begin(reg), 0);
    for (int i = 0; i < 300; i++) {
        char id[16], user[32];
        snprintf(id, sizeof(id), "D%04d", i);
        snprintf(user, sizeof(user), "user%d@example.com", i % 7);
        struct core_devinfo in = {.user = user, .device_type = i % 2 ? "iPhone" : "Android"};
        /* Later ids seen earlier, so rank order differs from id order. */
        assert_int_equal(core_reg_device_seen(reg, id, &in, 10000 - i, NULL), 0);
        if (i % 3 == 0)
            assert_int_equal(core_reg_set_managed(reg, id, true, NULL), 0);
        assert_int_equal(core_reg_set_state(reg, id, i % 5 ? COMPLIANCE_ALLOW : COMPLIANCE_BLOCK,
                                            "r", 0, 0, 1, NULL, NULL),
                         0);
    }
    assert_int_equal(core_reg_commit(reg), 0);
    assert_int_equal(core_reg_device_count(reg), 300);

    struct core_device page[50];
    size_t n;
    struct core_dev_filter f;
    core_dev_filter_init(&f);
    f.user = "USER3@example.com"; /* case-insensitive */
    assert_int_equal(core_reg_device_list(reg, &f, page, 50, &n), 0);
    assert_int_equal(n, 43); /* i % 7 == 3 for i < 300 */
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(page[i].user, "user3@example.com");
        if (i)
            assert_true(strcmp(page[i - 1].device_id, page[i].device_id) < 0);
    }
    /* Keyset paging walks every device exactly once. */
    core_dev_filter_init(&f);
    size_t total = 0;
    char after[CORE_DEVID_MAX + 1] = "";
    for (int guard = 0; guard < 100; guard++) {
        f.after = after[0] ? after : NULL;
        assert_int_equal(core_reg_device_list(reg, &f, page, 50, &n), 0);
        if (n == 0)
            break;
        if (after[0])
            assert_true(strcmp(after, page[0].device_id) < 0);
        total += n;
        strcpy(after, page[n - 1].device_id);
    }
    assert_int_equal(total, 300);
    core_dev_filter_init(&f);
    f.state = COMPLIANCE_BLOCK;
    f.managed = 1;
    f.device_type = "android";
    assert_int_equal(core_reg_device_list(reg, &f, page, 50, &n), 0);
    assert_int_equal(n, 10); /* i % 30 == 0 */
    core_dev_filter_init(&f);
    f.seen_since_ms = 10000 - 9;
    f.seen_before_ms = 10000 - 4;
    assert_int_equal(core_reg_device_list(reg, &f, page, 50, &n), 0);
    assert_int_equal(n, 5);

    /* user0's devices are D0000, D0007, ... first seen latest-first; the
     * managed ones (i % 3 == 0) are D0000, D0021, ... D0294: D0294 is first. */
    uint32_t rank;
    assert_int_equal(core_reg_user_rank(reg, "D0294", &rank), 0);
    assert_int_equal(rank, 1);
    assert_int_equal(core_reg_user_rank(reg, "D0000", &rank), 0);
    assert_int_equal(rank, 15);
    /* An unmanaged device ranks after the managed ones seen before it, not after every device. */
    assert_int_equal(core_reg_user_rank(reg, "D0007", &rank), 0);
    assert_int_equal(rank, 15); /* after the 14 managed ones seen before it (D0294..D0021) */

    struct core_user users[10];
    assert_int_equal(core_reg_user_list(reg, NULL, users, 10, &n), 0);
    assert_int_equal(n, 7);
    assert_string_equal(users[0].name, "user0@example.com");
    assert_int_equal(users[0].devices, 43);
    assert_int_equal(core_reg_user_list(reg, users[5].name, users, 10, &n), 0);
    assert_int_equal(n, 1);

    core_reg_close(reg);
}

static int count_cb(const struct core_device *d, void *arg)
{
    (*(int *)arg)++;
    return d->device_id[0] == 'D' ? 0 : -1;
}

static void test_foreach(void **state)
{
    struct core_reg *reg = open_ok();
    assert_int_equal(core_reg_begin(reg), 0);
    for (int i = 0; i < 1100; i++) {
        char id[16];
        snprintf(id, sizeof(id), "D%05d", i);
        assert_int_equal(core_reg_device_seen(reg, id, NULL, 1, NULL), 0);
    }
    assert_int_equal(core_reg_commit(reg), 0);
    int count = 0;
    assert_int_equal(core_reg_device_foreach(reg, count_cb, &count), 0);
    assert_int_equal(count, 1100);
    core_reg_close(reg);
}

static void test_audit_and_actions(void **state)
{
    struct core_reg *reg = open_ok();
    assert_int_equal(core_reg_audit_add(reg, "admin", "192.0.2.1", "device.block", "DEV1",
                                        "{\"note\":\"lost\"}", 100),
                     0);
    assert_int_equal(core_reg_audit_add(reg, "admin", NULL, "device.reset", "DEV1", NULL, 200), 0);
    struct core_audit a[4];
    size_t n;
    assert_int_equal(core_reg_audit_list(reg, 0, a, 4, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(a[0].action, "device.reset");
    assert_string_equal(a[1].address, "192.0.2.1");
    assert_int_equal(core_reg_audit_list(reg, a[0].id, a, 4, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(a[0].action, "device.block");

    assert_int_equal(core_reg_device_seen(reg, "DEV1", NULL, 1, NULL), 0);
    assert_int_equal(core_reg_action_add(reg, "dev1", "block", "admin", "lost phone", 100), 0);
    assert_int_equal(core_reg_action_add(reg, "DEV1", "reset", "admin", NULL, 200), 0);
    struct core_action act[4];
    assert_int_equal(core_reg_action_list(reg, "DEV1", 0, act, 4, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(act[0].action, "reset");
    assert_string_equal(act[1].note, "lost phone");
    core_reg_close(reg);

    /* The database itself refuses to rewrite history. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db, "UPDATE audit SET actor = 'x'", NULL, NULL, NULL),
                         SQLITE_OK);
    assert_non_null(strstr(sqlite3_errmsg(db), "append-only"));
    assert_int_not_equal(sqlite3_exec(db, "DELETE FROM audit", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* Schema version 1 as released: a registry from the field, before check-in facts. */
static const char v1_db[] =
    "CREATE TABLE schema_version(version INTEGER NOT NULL PRIMARY KEY, applied_ms INTEGER NOT "
    "NULL);"
    "INSERT INTO schema_version VALUES(1, 1);"
    "CREATE TABLE users(name TEXT NOT NULL PRIMARY KEY COLLATE NOCASE, created_ms INTEGER NOT "
    "NULL);"
    "CREATE TABLE devices(id INTEGER PRIMARY KEY, device_id TEXT NOT NULL UNIQUE,"
    " device_type TEXT NOT NULL DEFAULT '', model TEXT NOT NULL DEFAULT '',"
    " os TEXT NOT NULL DEFAULT '', os_version TEXT NOT NULL DEFAULT '',"
    " imei TEXT NOT NULL DEFAULT '', friendly_name TEXT NOT NULL DEFAULT '',"
    " phone_number TEXT NOT NULL DEFAULT '', user_agent TEXT NOT NULL DEFAULT '',"
    " user TEXT NOT NULL DEFAULT '' COLLATE NOCASE, first_seen_ms INTEGER NOT NULL,"
    " last_seen_ms INTEGER NOT NULL, last_checkin_ms INTEGER NOT NULL DEFAULT 0,"
    " managed INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL DEFAULT 'block',"
    " reason TEXT NOT NULL DEFAULT 'new', version INTEGER NOT NULL DEFAULT 0,"
    " updated_ms INTEGER NOT NULL DEFAULT 0, non_compliant_since_ms INTEGER NOT NULL DEFAULT 0,"
    " override TEXT NOT NULL DEFAULT 'none');"
    "CREATE INDEX devices_by_user ON devices(user, device_id);"
    "CREATE INDEX devices_by_state ON devices(state, device_id);"
    "CREATE INDEX devices_by_last_seen ON devices(last_seen_ms);"
    "CREATE TABLE meta(key TEXT NOT NULL PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT INTO meta VALUES('state_version', 41);"
    "CREATE TABLE admin_actions(id INTEGER PRIMARY KEY, device_id TEXT NOT NULL,"
    " action TEXT NOT NULL, actor TEXT NOT NULL, note TEXT NOT NULL DEFAULT '',"
    " at_ms INTEGER NOT NULL);"
    "CREATE INDEX admin_actions_by_device ON admin_actions(device_id, id);"
    "CREATE TABLE audit(id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, actor TEXT NOT NULL,"
    " address TEXT NOT NULL DEFAULT '', action TEXT NOT NULL, target TEXT NOT NULL DEFAULT '',"
    " detail TEXT NOT NULL DEFAULT '');"
    "INSERT INTO users VALUES('bob@example.com', 5);"
    "INSERT INTO devices(device_id, model, user, first_seen_ms, last_seen_ms, managed, state,"
    " reason, version, override) VALUES('OLDDEV1', 'Pixel 7', 'bob@example.com', 5, 6, 1,"
    " 'allow', 'compliant', 41, 'block');"
    "INSERT INTO audit(at_ms, actor, action, target) VALUES(7, 'admin', 'device.block', "
    "'OLDDEV1');"
    /* Before schema 9 a sighting's DeviceInformation and a check-in wrote the
     * same os columns: the never-checked-in device's can only be reported. */
    "INSERT INTO devices(device_id, os, os_version, first_seen_ms, last_seen_ms) "
    "VALUES('OLDDEV2', 'iOS', '15.0', 5, 6);"
    "INSERT INTO devices(device_id, os, os_version, first_seen_ms, last_seen_ms, "
    "last_checkin_ms) VALUES('OLDDEV3', 'Android', '13', 5, 6, 6);";

/* One number from SQL on the file itself, beside the registry's own connection. */
static int64_t raw_count(const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

/* The counters the triggers keep (schema 14) against counting the devices. */
static void assert_counts_match(struct core_reg *reg)
{
    struct core_reg_counts n;
    assert_int_equal(core_reg_counts(reg, &n), 0);
    assert_int_equal(n.devices, raw_count("SELECT count(*) FROM devices"));
    assert_int_equal(n.states[COMPLIANCE_ALLOW],
                     raw_count("SELECT count(*) FROM devices WHERE state = 'allow'"));
    assert_int_equal(n.states[COMPLIANCE_BLOCK],
                     raw_count("SELECT count(*) FROM devices WHERE state = 'block'"));
    assert_int_equal(n.states[COMPLIANCE_QUARANTINE],
                     raw_count("SELECT count(*) FROM devices WHERE state = 'quarantine'"));
    assert_int_equal(n.compliant,
                     raw_count("SELECT count(*) FROM devices WHERE reason = 'compliant'"));
    assert_int_equal(n.failing,
                     raw_count("SELECT count(*) FROM devices WHERE non_compliant_since_ms > 0"));
    assert_int_equal(n.grace, raw_count("SELECT count(*) FROM devices WHERE "
                                        "non_compliant_since_ms > 0 AND state = 'allow'"));
    assert_int_equal(n.unchecked, raw_count("SELECT count(*) FROM devices WHERE reason <> "
                                            "'compliant' AND non_compliant_since_ms = 0"));
}

static void test_migrate_v1(void **state)
{
    raw_exec(v1_db);
    struct core_reg *reg = open_ok();
    assert_int_equal(core_reg_schema_version(reg), CORE_REG_SCHEMA);
    struct core_device d;
    assert_int_equal(core_reg_device_get(reg, "olddev1", &d), 0);
    assert_string_equal(d.model, "Pixel 7");
    assert_string_equal(d.last_client, ""); /* schema 12: none recorded yet */
    assert_string_equal(d.user, "bob@example.com");
    assert_true(d.managed);
    assert_int_equal(d.state, COMPLIANCE_ALLOW);
    assert_int_equal(d.version, 41);
    assert_int_equal(d.override, COMPLIANCE_OVR_BLOCK);
    assert_int_equal(d.passcode, COMPLIANCE_UNKNOWN); /* new column, default */
    assert_int_equal(d.jailbroken, COMPLIANCE_UNKNOWN);
    assert_int_equal(core_reg_device_get(reg, "OLDDEV2", &d), 0);
    assert_string_equal(d.os, "");
    assert_string_equal(d.os_version, "");
    assert_string_equal(d.eas_os, "iOS");
    assert_string_equal(d.eas_os_version, "15.0");
    assert_int_equal(core_reg_device_get(reg, "OLDDEV3", &d), 0);
    assert_string_equal(d.os, "Android"); /* a check-in may have written it: kept */
    assert_string_equal(d.os_version, "13");
    assert_string_equal(d.eas_os, "Android");
    struct core_audit a[2];
    size_t n;
    assert_int_equal(core_reg_audit_list(reg, 0, a, 2, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(a[0].target, "OLDDEV1");
    /* The version sequence continues from where v1 left it. */
    int64_t v;
    assert_int_equal(
        core_reg_set_state(reg, "OLDDEV1", COMPLIANCE_BLOCK, "admin-block", 0, 0, 9, NULL, &v), 0);
    assert_int_equal(v, 42);
    struct core_user u[2];
    assert_int_equal(core_reg_user_list(reg, NULL, u, 2, &n), 0);
    assert_int_equal(n, 1);
    assert_counts_match(reg); /* schema 14 counted what was there */
    core_reg_close(reg);
}

static void test_counts_and_activity(void **state)
{
    struct core_reg *reg = open_ok();
    const int64_t H = 3600000, t0 = 1000 * H;
    assert_int_equal(core_reg_begin(reg), 0);
    for (int i = 0; i < 40; i++) {
        char id[16];
        snprintf(id, sizeof(id), "C%03d", i);
        /* 10 devices an hour, from hour 1000 on */
        assert_int_equal(
            core_reg_device_seen(reg, id, &(struct core_devinfo){0}, t0 + (i / 10) * H, NULL), 0);
    }
    assert_int_equal(core_reg_commit(reg), 0);
    assert_counts_match(reg); /* all new: block, reason "new" */
    /* Evaluations: compliant, failing in grace, failing and blocked, overridden. */
    for (int i = 0; i < 40; i++) {
        char id[16];
        snprintf(id, sizeof(id), "C%03d", i);
        enum compliance_state st = i % 4 == 2 ? COMPLIANCE_BLOCK : COMPLIANCE_ALLOW;
        const char *why = i % 4 == 0 ? "compliant" : i % 4 == 3 ? "admin-allow" : "jailbroken";
        int64_t ncs = i % 4 == 1 || i % 4 == 2 ? t0 : 0;
        assert_int_equal(core_reg_set_state(reg, id, st, why, ncs, 0, t0 + 5 * H, NULL, NULL), 0);
    }
    assert_counts_match(reg);
    /* Ten allowed devices blocked at hour 1006; one blocked again: no change, not counted
     * again; one quarantined and blocked later, at hour 1007: counted. */
    for (int i = 0; i < 40; i += 4) {
        char id[16];
        snprintf(id, sizeof(id), "C%03d", i);
        assert_int_equal(core_reg_set_state(reg, id, COMPLIANCE_BLOCK, "admin-block", 0, 0,
                                            t0 + 6 * H, NULL, NULL),
                         0);
    }
    assert_int_equal(core_reg_set_state(reg, "C000", COMPLIANCE_BLOCK, "admin-block", 0, 0,
                                        t0 + 6 * H + 1, NULL, NULL),
                     0);
    assert_int_equal(core_reg_set_state(reg, "C004", COMPLIANCE_QUARANTINE, "admin-quarantine", 0,
                                        0, t0 + 7 * H, NULL, NULL),
                     0);
    assert_int_equal(core_reg_set_state(reg, "C004", COMPLIANCE_BLOCK, "admin-block", 0, 0,
                                        t0 + 7 * H + 10, NULL, NULL),
                     0);
    assert_int_equal(core_reg_device_delete(reg, "C001"), 0);
    assert_int_equal(core_reg_device_delete(reg, "C002"), 0);
    assert_counts_match(reg);
    int64_t(*a)[CORE_ACTIVITY_KINDS] = calloc(CORE_ACTIVITY_MAX_HOURS, sizeof(*a));
    assert_int_equal(core_reg_activity(reg, 1000, 10, a), 0);
    for (int h = 0; h < 10; h++) {
        assert_int_equal(a[h][CORE_ACTIVITY_REGISTERED], h < 4 ? 10 : 0);
        assert_int_equal(a[h][CORE_ACTIVITY_CERTIFIED], 0);
        /* New devices start blocked: the evaluation at hour 1005 that kept
         * ten of them blocked changed nothing, and is not counted. */
        assert_int_equal(a[h][CORE_ACTIVITY_BLOCKED], h == 6 ? 10 : h == 7 ? 1 : 0);
    }
    /* A range that starts later sees only its hours; too long a range is refused. */
    assert_int_equal(core_reg_activity(reg, 1006, 2, a), 0);
    assert_int_equal(a[0][CORE_ACTIVITY_BLOCKED], 10);
    assert_int_equal(a[1][CORE_ACTIVITY_BLOCKED], 1);
    assert_int_equal(core_reg_activity(reg, 0, CORE_ACTIVITY_MAX_HOURS + 1, a), CORE_REG_EINVAL);
    free(a);
    core_reg_close(reg);
}

/* ---- pages a write dirties (docs/core.md "Scale", issue 21) ---- */

/* The WAL emptied: what a commit after this writes is all there is in it. */
static void wal_truncate(struct core_reg *reg)
{
    assert_int_equal(
        sqlite3_exec(core_reg_sqlite(reg), "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL),
        SQLITE_OK);
}

/* Frames in the WAL now whose page belongs to the b-tree called name. */
static int wal_frames_of(struct core_reg *reg, const char *name)
{
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(core_reg_sqlite(reg),
                                        "SELECT pageno FROM dbstat WHERE name = ?1", -1, &s, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    unsigned char owned[1 << 16] = {0};
    while (sqlite3_step(s) == SQLITE_ROW) {
        int64_t pg = sqlite3_column_int64(s, 0);
        if (pg > 0 && pg < (int64_t)sizeof(owned))
            owned[pg] = 1;
    }
    sqlite3_finalize(s);
    char wal[160];
    snprintf(wal, sizeof(wal), "%s-wal", path);
    FILE *f = fopen(wal, "rb");
    assert_non_null(f);
    unsigned char h[32];
    int n = 0;
    if (fread(h, 1, 32, f) == 32) {
        uint32_t psz = (uint32_t)h[8] << 24 | (uint32_t)h[9] << 16 | (uint32_t)h[10] << 8 | h[11];
        unsigned char fh[24];
        while (fread(fh, 1, 24, f) == 24 && memcmp(fh + 8, h + 16, 8) == 0) {
            uint32_t pg =
                (uint32_t)fh[0] << 24 | (uint32_t)fh[1] << 16 | (uint32_t)fh[2] << 8 | fh[3];
            if (pg < sizeof(owned) && owned[pg])
                n++;
            fseek(f, (long)psz, SEEK_CUR);
        }
    }
    fclose(f);
    return n;
}

/*
 * SQLite rewrites the entry of every index on a column an UPDATE names,
 * even when its value stays: a check-in that keeps its OS family must not
 * dirty devices_by_os, a change of reason that keeps the state must not
 * dirty devices_by_state, and a timer that moves must not dirty
 * devices_failing. Enough devices that each index has many pages.
 */
static void test_write_pages(void **state)
{
    struct core_reg *reg = open_ok();
    assert_int_equal(core_reg_begin(reg), 0);
    for (int i = 0; i < 3000; i++) {
        char id[32];
        snprintf(id, sizeof(id), "PAGES%05d", i);
        struct core_devinfo in = {.user = "u@example.com", .device_type = "iPhone"};
        assert_int_equal(core_reg_device_seen(reg, id, &in, 1000, NULL), 0);
        struct core_checkin ci = {.os = "iOS", .os_version = "17.1", .passcode = COMPLIANCE_YES};
        assert_int_equal(core_reg_checkin(reg, id, &ci, 1000), 0);
        assert_int_equal(
            core_reg_set_state(reg, id, COMPLIANCE_ALLOW, "compliant", 500, 9000, 1000, NULL, NULL),
            0);
    }
    assert_int_equal(core_reg_commit(reg), 0);

    struct core_device d;
    assert_int_equal(core_reg_device_get(reg, "PAGES01500", &d), 0);
    wal_truncate(reg);
    struct core_checkin ci = {.os = "iOS", .os_version = "17.2", .passcode = COMPLIANCE_NO};
    bool wrote = false;
    assert_int_equal(core_reg_checkin_facts(reg, &d, &ci, &wrote), 0);
    assert_true(wrote);
    assert_true(wal_frames_of(reg, "devices") > 0);
    assert_int_equal(wal_frames_of(reg, "devices_by_os"), 0);

    assert_int_equal(core_reg_device_get(reg, "PAGES01500", &d), 0);
    assert_int_equal(d.passcode, COMPLIANCE_NO);
    wal_truncate(reg);
    bool changed = false;
    assert_int_equal(core_reg_state_store(reg, &d, COMPLIANCE_ALLOW, "passcode (grace)", 500, 8000,
                                          2000, &changed, NULL),
                     0);
    assert_true(changed);
    assert_true(wal_frames_of(reg, "devices") > 0);
    assert_int_equal(wal_frames_of(reg, "devices_by_state"), 0);
    assert_int_equal(wal_frames_of(reg, "devices_failing"), 0);
    assert_true(wal_frames_of(reg, "devices_by_next_eval") > 0);

    /* What was written is what is read back. */
    assert_int_equal(core_reg_device_get(reg, "PAGES01500", &d), 0);
    assert_string_equal(d.reason, "passcode (grace)");
    assert_int_equal(d.state, COMPLIANCE_ALLOW);
    assert_int_equal(d.non_compliant_since_ms, 500);
    assert_int_equal(d.next_eval_ms, 8000);
    assert_string_equal(d.os_version, "17.2");
    assert_string_equal(d.os, "iOS");
    core_reg_close(reg);
}

static void test_newer_refused(void **state)
{
    struct core_reg *reg = open_ok();
    core_reg_close(reg);
    raw_exec("INSERT INTO schema_version VALUES(99, 1)");
    struct stat before, after;
    assert_int_equal(stat(path, &before), 0);
    char err[512] = "";
    reg = (struct core_reg *)1;
    assert_int_equal(core_reg_open(path, &reg, err, sizeof(err)), CORE_REG_ENEWER);
    assert_null(reg);
    assert_non_null(strstr(err, "schema version 99"));
    assert_non_null(strstr(err, "newer easgate"));
    assert_int_equal(stat(path, &after), 0);
    assert_int_equal(before.st_size, after.st_size);
    assert_int_equal(before.st_mtim.tv_sec, after.st_mtim.tv_sec);
    assert_int_equal(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
}

static void test_foreign_refused(void **state)
{
    raw_exec("CREATE TABLE something(x); INSERT INTO something VALUES(1);");
    struct core_reg *reg;
    char err[512] = "";
    assert_int_equal(core_reg_open(path, &reg, err, sizeof(err)), CORE_REG_EINVAL);
    assert_non_null(strstr(err, "not an easgate registry"));
    /* Not a database at all. */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("this is not sqlite, just text that is long enough to be a header......", f);
    fclose(f);
    assert_true(core_reg_open(path, &reg, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, path));
    /* A directory that does not exist. */
    assert_true(core_reg_open("/nonexistent/dir/reg.db", &reg, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "/nonexistent/dir/reg.db"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_fresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_devices, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_and_rank, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreach, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_and_actions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counts_and_activity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
