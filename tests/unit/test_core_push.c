/*
 * test_core_push: the engine against a real redis-server started here on a
 * free loopback port: state hashes and announcements, admin actions, grace
 * timers with an injected clock, the version guard (an older write never
 * overwrites a newer hash), resync (flushed Redis heals, leftovers go), and
 * a Redis outage marking the engine dirty until a resync.
 *
 * EG_BENCH_DEVICES=N makes the resync case use N devices and print how long
 * the resync took (the figure in docs/core.md); the default is small.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/eng.h"
#include "test_redis_util.h"

#define H (3600LL * 1000)
#define D (24 * H)
#define T0 (1700000000000LL)

static char dbpath[320];
static int port;
static pid_t redis_pid = -1;

static redisContext *rconnect(void)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    return c;
}

/* Redis on the group's port (the same one again after redis_stop), up
 * within a bounded 10 s. */
static int redis_start(void)
{
    redis_pid = tr_redis_start(port, NULL, 0);
    redisContext *c = tr_connect(port, 10000);
    if (!c)
        return -1;
    redisFree(c);
    return 0;
}

static void redis_stop(void)
{
    tr_kill(redis_pid, SIGTERM);
    redis_pid = -1;
}

static int group_setup(void **state)
{
    if (!tr_have("redis-server"))
        return 0; /* each test skips */
    if (!tr_tmpdir())
        return -1;
    port = tr_free_port();
    return port > 0 && redis_start() == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    redis_stop();
    tr_rmtmp();
    return 0;
}

static int seq;
static struct core_reg *reg;
static struct rstore_push *push;
static redisContext *rc_;

static int setup(void **state)
{
    if (redis_pid <= 0)
        return 0;
    snprintf(dbpath, sizeof(dbpath), "%s/reg%d.db", tr_tmpdir(), seq++);
    char err[256];
    if (core_reg_open(dbpath, &reg, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    struct rstore_sync_opts o = {.host = "127.0.0.1", .port = port};
    if (rstore_push_open(&o, &push, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    rc_ = rconnect();
    redisReply *r = redisCommand(rc_, "FLUSHALL");
    freeReplyObject(r);
    return 0;
}

static int teardown(void **state)
{
    rstore_push_close(push);
    core_reg_close(reg);
    if (rc_)
        redisFree(rc_);
    push = NULL;
    reg = NULL;
    rc_ = NULL;
    return 0;
}

#define NEED_REDIS()                                                                               \
    do {                                                                                           \
        if (redis_pid <= 0)                                                                        \
            skip();                                                                                \
    } while (0)

/* HGET field of easgate:dev:<id> into buf ("" if absent). */
static const char *hget(const char *id, const char *field, char *buf, size_t len)
{
    redisReply *r = redisCommand(rc_, "HGET easgate:dev:%s %s", id, field);
    assert_non_null(r);
    snprintf(buf, len, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    return buf;
}

static long long ival(const char *cmd)
{
    redisReply *r = redisCommand(rc_, cmd);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static void test_push_and_announce(void **state)
{
    NEED_REDIS();
    redisContext *sub = rconnect();
    assert_non_null(sub);
    redisReply *r = redisCommand(sub, "SUBSCRIBE easgate:changed");
    assert_non_null(r);
    freeReplyObject(r);

    struct core_eng e;
    core_eng_init(&e, reg, push, NULL); /* defaults: unmanaged devices blocked */
    struct core_devinfo in = {.user = "alice@example.com", .device_type = "iPhone"};
    bool created;
    assert_int_equal(core_eng_seen(&e, "appl1234abcd", &in, T0, &created), 0);
    assert_true(created);
    char b[64];
    assert_string_equal(hget("APPL1234ABCD", "state", b, sizeof(b)), "block");
    assert_string_equal(hget("APPL1234ABCD", "reason", b, sizeof(b)), "unmanaged");
    assert_string_equal(hget("APPL1234ABCD", "user", b, sizeof(b)), "alice@example.com");
    assert_string_equal(hget("APPL1234ABCD", "updated", b, sizeof(b)), "1700000000000");
    char v1[32];
    hget("APPL1234ABCD", "version", v1, sizeof(v1));
    assert_true(atoll(v1) > 0);

    /* The announcement carries the same version. */
    assert_int_equal(redisGetReply(sub, (void **)&r), REDIS_OK);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 3);
    assert_string_equal(r->element[1]->str, "easgate:changed");
    char want[64];
    snprintf(want, sizeof(want), "APPL1234ABCD %s", v1);
    assert_string_equal(r->element[2]->str, want);
    freeReplyObject(r);

    /* Seen again with nothing new: no version bump, no announcement. */
    assert_int_equal(core_eng_seen(&e, "APPL1234ABCD", NULL, T0 + 1000, NULL), 0);
    assert_string_equal(hget("APPL1234ABCD", "version", b, sizeof(b)), v1);

    /* Admin allow: state and announcement move on. */
    assert_int_equal(core_eng_action(&e, "APPL1234ABCD", CORE_ACT_ALLOW, NULL, "admin", "192.0.2.7",
                                     "vip", T0 + 2000),
                     0);
    assert_string_equal(hget("APPL1234ABCD", "state", b, sizeof(b)), "allow");
    assert_string_equal(hget("APPL1234ABCD", "reason", b, sizeof(b)), "admin-allow");
    assert_int_equal(redisGetReply(sub, (void **)&r), REDIS_OK);
    assert_non_null(strstr(r->element[2]->str, "APPL1234ABCD "));
    assert_true(atoll(strchr(r->element[2]->str, ' ') + 1) > atoll(v1));
    freeReplyObject(r);
    redisFree(sub);

    struct core_audit a[2];
    size_t n;
    assert_int_equal(core_reg_audit_list(reg, 0, a, 2, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(a[0].action, "device.allow");
    assert_string_equal(a[0].address, "192.0.2.7");

    /* Delete: the key goes, the device is gone. */
    assert_int_equal(
        core_eng_action(&e, "APPL1234ABCD", CORE_ACT_DELETE, NULL, "admin", NULL, NULL, T0 + 3000),
        0);
    assert_int_equal(ival("EXISTS easgate:dev:APPL1234ABCD"), 0);
    assert_int_equal(core_reg_device_exists(reg, "APPL1234ABCD"), 0);
    assert_false(e.dirty);
    assert_int_equal(core_eng_action(&e, "bad id", CORE_ACT_BLOCK, NULL, "admin", NULL, NULL, 1),
                     CORE_REG_EINVAL);
    assert_int_equal(core_eng_action(&e, "NOSUCH", CORE_ACT_BLOCK, NULL, "admin", NULL, NULL, 1),
                     CORE_REG_ENOTFOUND);
    core_eng_free(&e);
}

/* issue 6: a check-in with jailbroken: true blocks after the grace period. */
static void test_grace_and_overrides(void **state)
{
    NEED_REDIS();
    struct compliance_rules rules;
    compliance_rules_init(&rules);
    rules.present = true;
    rules.block_jailbroken = true;
    rules.grace_period_ms = 3 * D;
    rules.max_devices_per_user = 1;
    struct core_eng e;
    core_eng_init(&e, reg, push, &rules);
    struct core_devinfo in = {.user = "bob"};
    assert_int_equal(core_eng_seen(&e, "DEVA", &in, T0, NULL), 0);
    assert_int_equal(core_eng_action(&e, "DEVA", CORE_ACT_MANAGE, NULL, "enroll", NULL, NULL, T0),
                     0);
    struct core_checkin ok = {
        .passcode = COMPLIANCE_YES, .encrypted = COMPLIANCE_YES, .jailbroken = COMPLIANCE_NO};
    assert_int_equal(core_eng_checkin(&e, "DEVA", &ok, T0), 0);
    char b[64];
    assert_string_equal(hget("DEVA", "state", b, sizeof(b)), "allow");
    assert_string_equal(hget("DEVA", "reason", b, sizeof(b)), "compliant");

    struct core_checkin jb = ok;
    jb.jailbroken = COMPLIANCE_YES;
    assert_int_equal(core_eng_checkin(&e, "DEVA", &jb, T0 + H), 0);
    assert_string_equal(hget("DEVA", "state", b, sizeof(b)), "allow"); /* in grace */
    assert_string_equal(hget("DEVA", "reason", b, sizeof(b)), "jailbroken");
    size_t n;
    assert_int_equal(core_eng_tick(&e, T0 + H + 3 * D - 1, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(core_eng_tick(&e, T0 + H + 3 * D, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(hget("DEVA", "state", b, sizeof(b)), "block");
    assert_string_equal(hget("DEVA", "reason", b, sizeof(b)), "jailbroken");
    /* Nothing more is due once blocked. */
    assert_int_equal(core_eng_tick(&e, T0 + 10 * D, &n), 0);
    assert_int_equal(n, 0);

    /* An admin allow wins until reset; reset restores the block without a new grace. */
    assert_int_equal(
        core_eng_action(&e, "DEVA", CORE_ACT_ALLOW, NULL, "admin", NULL, NULL, T0 + 4 * D), 0);
    assert_string_equal(hget("DEVA", "state", b, sizeof(b)), "allow");
    assert_int_equal(
        core_eng_action(&e, "DEVA", CORE_ACT_RESET, NULL, "admin", NULL, NULL, T0 + 4 * D + 1), 0);
    assert_string_equal(hget("DEVA", "state", b, sizeof(b)), "block");
    /* Fixed: allowed again. */
    assert_int_equal(core_eng_checkin(&e, "DEVA", &ok, T0 + 5 * D), 0);
    assert_string_equal(hget("DEVA", "state", b, sizeof(b)), "allow");

    /* A second device for bob is over the limit; deleting the first frees the slot. */
    assert_int_equal(core_eng_seen(&e, "DEVB", &in, T0 + 6 * D, NULL), 0);
    assert_int_equal(
        core_eng_action(&e, "DEVB", CORE_ACT_MANAGE, NULL, "enroll", NULL, NULL, T0 + 6 * D), 0);
    assert_int_equal(core_eng_checkin(&e, "DEVB", &ok, T0 + 6 * D), 0);
    assert_string_equal(hget("DEVB", "reason", b, sizeof(b)), "too-many-devices");
    assert_int_equal(
        core_eng_action(&e, "DEVA", CORE_ACT_DELETE, NULL, "admin", NULL, NULL, T0 + 7 * D), 0);
    assert_string_equal(hget("DEVB", "state", b, sizeof(b)), "allow");
    assert_string_equal(hget("DEVB", "reason", b, sizeof(b)), "compliant");

    /* A third device waits for a slot; releasing DEVB (unmanage) gives it one. */
    assert_int_equal(core_eng_seen(&e, "DEVC", &in, T0 + 7 * D + 1, NULL), 0);
    assert_int_equal(
        core_eng_action(&e, "DEVC", CORE_ACT_MANAGE, NULL, "enroll", NULL, NULL, T0 + 7 * D + 1),
        0);
    assert_int_equal(core_eng_checkin(&e, "DEVC", &ok, T0 + 7 * D + 1), 0);
    assert_string_equal(hget("DEVC", "reason", b, sizeof(b)), "too-many-devices");
    assert_int_equal(
        core_eng_action(&e, "DEVB", CORE_ACT_UNMANAGE, NULL, "admin", NULL, NULL, T0 + 7 * D + 2),
        0);
    assert_string_equal(hget("DEVC", "reason", b, sizeof(b)), "compliant");
    assert_string_equal(hget("DEVB", "reason", b, sizeof(b)), "unmanaged");
    assert_int_equal(
        core_eng_action(&e, "DEVC", CORE_ACT_UNMANAGE, NULL, "admin", NULL, NULL, T0 + 7 * D + 3),
        0);
    assert_int_equal(
        core_eng_action(&e, "DEVB", CORE_ACT_MANAGE, NULL, "admin", NULL, NULL, T0 + 7 * D + 3), 0);
    assert_string_equal(hget("DEVB", "reason", b, sizeof(b)), "compliant");

    /* Wipe. */
    assert_int_equal(
        core_eng_action(&e, "DEVB", CORE_ACT_WIPE, NULL, "admin", NULL, "stolen", T0 + 8 * D), 0);
    assert_string_equal(hget("DEVB", "state", b, sizeof(b)), "wipe");
    struct core_action act[8];
    assert_int_equal(core_reg_action_list(reg, "DEVB", 0, act, 8, &n), 0);
    assert_int_equal(n, 4); /* manage, unmanage, manage, wipe: newest first */
    assert_string_equal(act[0].action, "wipe");
    assert_string_equal(act[0].note, "stolen");
    assert_string_equal(act[1].action, "manage");
    assert_string_equal(act[2].action, "unmanage");
    core_eng_free(&e);
}

/* Read announcements on sub up to the marker "END" (published by the test), joined by '|'. */
static void drain(redisContext *sub, char *out, size_t len)
{
    freeReplyObject(redisCommand(rc_, "PUBLISH easgate:changed END"));
    out[0] = '\0';
    for (int i = 0; i < 100; i++) {
        redisReply *r = NULL;
        assert_int_equal(redisGetReply(sub, (void **)&r), REDIS_OK);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        assert_int_equal(r->elements, 3);
        bool end = strcmp(r->element[2]->str, "END") == 0;
        if (!end)
            snprintf(out + strlen(out), len - strlen(out), "%s%s", out[0] ? "|" : "",
                     r->element[2]->str);
        freeReplyObject(r);
        if (end)
            return;
    }
    fail_msg("no END marker");
}

static struct core_device dev(const char *id, enum compliance_state st, const char *reason,
                              int64_t version)
{
    struct core_device d;
    memset(&d, 0, sizeof(d));
    snprintf(d.device_id, sizeof(d.device_id), "%s", id);
    snprintf(d.user, sizeof(d.user), "carol");
    snprintf(d.reason, sizeof(d.reason), "%s", reason);
    d.state = st;
    d.version = version;
    d.updated_ms = T0 + version;
    return d;
}

/*
 * The run loop and the admin API push independently: the write carrying the
 * older version may reach Redis last. It must change nothing and announce
 * nothing, while the newer one is written and announced.
 */
static void test_version_guard(void **state)
{
    NEED_REDIS();
    redisContext *sub = rconnect();
    assert_non_null(sub);
    freeReplyObject(redisCommand(sub, "SUBSCRIBE easgate:changed"));
    char b[64], got[512];

    struct core_device newer = dev("RACE1", COMPLIANCE_BLOCK, "admin-block", 11);
    struct core_device older = dev("RACE1", COMPLIANCE_ALLOW, "compliant", 10);
    assert_int_equal(core_push_device(push, &newer), 0);
    assert_int_equal(core_push_device(push, &older), CORE_PUSH_OLDER);
    assert_string_equal(hget("RACE1", "state", b, sizeof(b)), "block");
    assert_string_equal(hget("RACE1", "reason", b, sizeof(b)), "admin-block");
    assert_string_equal(hget("RACE1", "version", b, sizeof(b)), "11");
    assert_string_equal(hget("RACE1", "updated", b, sizeof(b)), "1700000000011");
    drain(sub, got, sizeof(got));
    assert_string_equal(got, "RACE1 11");

    /* In order, each is written and announced. */
    assert_int_equal(core_push_device(push, &older), CORE_PUSH_OLDER);
    struct core_device v12 = dev("RACE1", COMPLIANCE_QUARANTINE, "q", 12);
    assert_int_equal(core_push_device(push, &v12), 0);
    assert_string_equal(hget("RACE1", "state", b, sizeof(b)), "quarantine");
    /* The same version again (a resync): rewritten, not announced. */
    freeReplyObject(redisCommand(rc_, "HSET easgate:dev:RACE1 state block"));
    assert_int_equal(core_push_device(push, &v12), 0);
    assert_string_equal(hget("RACE1", "state", b, sizeof(b)), "quarantine");
    drain(sub, got, sizeof(got));
    assert_string_equal(got, "RACE1 12");

    /* Versions beyond 2^53 compare exactly (Lua numbers would round them equal). */
    struct core_device big = dev("RACE2", COMPLIANCE_BLOCK, "b", 9007199254740993LL);
    struct core_device big_old = dev("RACE2", COMPLIANCE_ALLOW, "a", 9007199254740992LL);
    assert_int_equal(core_push_device(push, &big), 0);
    assert_int_equal(core_push_device(push, &big_old), CORE_PUSH_OLDER);
    assert_string_equal(hget("RACE2", "state", b, sizeof(b)), "block");
    /* 100 vs 99: by value, not as text. */
    struct core_device v99 = dev("RACE3", COMPLIANCE_BLOCK, "b", 99);
    struct core_device v100 = dev("RACE3", COMPLIANCE_ALLOW, "a", 100);
    assert_int_equal(core_push_device(push, &v100), 0);
    assert_int_equal(core_push_device(push, &v99), CORE_PUSH_OLDER);
    assert_string_equal(hget("RACE3", "state", b, sizeof(b)), "allow");
    /* A version Redis cannot read as a number is no version: the write heals it. */
    freeReplyObject(redisCommand(rc_, "HSET easgate:dev:RACE4 state allow version x7"));
    struct core_device heal = dev("RACE4", COMPLIANCE_BLOCK, "b", 3);
    assert_int_equal(core_push_device(push, &heal), 0);
    assert_string_equal(hget("RACE4", "version", b, sizeof(b)), "3");
    /* Leading zeros written by hand still compare by value. */
    freeReplyObject(redisCommand(rc_, "HSET easgate:dev:RACE5 state allow version 0042"));
    struct core_device v41 = dev("RACE5", COMPLIANCE_BLOCK, "b", 41);
    assert_int_equal(core_push_device(push, &v41), CORE_PUSH_OLDER);
    drain(sub, got, sizeof(got));
    assert_string_equal(got, "RACE2 9007199254740993|RACE3 100|RACE4 3");

    /* Redis forgot the script (SCRIPT FLUSH, a restart): NOSCRIPT falls back to EVAL. */
    freeReplyObject(redisCommand(rc_, "SCRIPT FLUSH"));
    struct core_device v13 = dev("RACE1", COMPLIANCE_ALLOW, "admin-allow", 13);
    assert_int_equal(core_push_device(push, &v13), 0);
    assert_int_equal(core_push_device(push, &older), CORE_PUSH_OLDER);
    assert_string_equal(hget("RACE1", "state", b, sizeof(b)), "allow");
    drain(sub, got, sizeof(got));
    assert_string_equal(got, "RACE1 13");

    /* Many in one round trip: each guarded as alone; a forgotten script too. */
    freeReplyObject(redisCommand(rc_, "SCRIPT FLUSH"));
    struct core_device m1 = dev("MANY1", COMPLIANCE_BLOCK, "b", 5),
                       m2 = dev("RACE1", COMPLIANCE_BLOCK, "stale", 12), /* older than 13 */
        m3 = dev("MANY3", COMPLIANCE_QUARANTINE, "q", 7);
    const struct core_device *many[] = {&m1, &m2, &m3};
    assert_int_equal(core_push_devices(push, many, 3), 0);
    assert_string_equal(hget("MANY1", "state", b, sizeof(b)), "block");
    assert_string_equal(hget("RACE1", "state", b, sizeof(b)), "allow");
    assert_string_equal(hget("MANY3", "state", b, sizeof(b)), "quarantine");
    drain(sub, got, sizeof(got));
    assert_string_equal(got, "MANY1 5|MANY3 7");

    /* A key that is not a hash is refused with Redis's reason, not overwritten. */
    freeReplyObject(redisCommand(rc_, "SET easgate:dev:RACE6 x"));
    struct core_device wt = dev("RACE6", COMPLIANCE_BLOCK, "b", 1);
    assert_int_equal(core_push_device(push, &wt), CORE_PUSH_EREDIS);
    assert_non_null(strstr(rstore_push_error(push), "WRONGTYPE"));
    redisFree(sub);
}

/* Two engines on two connections racing on one device: Redis ends on the newest. */
static void test_two_engines(void **state)
{
    NEED_REDIS();
    struct rstore_push *p2 = NULL;
    char err[256];
    struct rstore_sync_opts o = {.host = "127.0.0.1", .port = port};
    assert_int_equal(rstore_push_open(&o, &p2, err, sizeof(err)), 0);
    struct core_eng run, api;
    core_eng_init(&run, reg, push, NULL);
    core_eng_init(&api, reg, p2, NULL);
    assert_int_equal(core_eng_seen(&run, "DUEL", NULL, T0, NULL), 0);
    assert_int_equal(
        core_eng_action(&api, "DUEL", CORE_ACT_ALLOW, NULL, "admin", NULL, NULL, T0 + 1), 0);
    struct core_device cur;
    assert_int_equal(core_reg_device_get(reg, "DUEL", &cur), 0);
    /* The run loop's push of what it read before the API's change arrives late. */
    struct core_device stale = cur;
    stale.version = cur.version - 1;
    stale.state = COMPLIANCE_BLOCK;
    assert_int_equal(core_push_device(push, &stale), CORE_PUSH_OLDER);
    char b[64], v[32];
    snprintf(v, sizeof(v), "%lld", (long long)cur.version);
    assert_string_equal(hget("DUEL", "state", b, sizeof(b)), "allow");
    assert_string_equal(hget("DUEL", "version", b, sizeof(b)), v);
    assert_false(run.dirty);
    assert_false(api.dirty);
    core_eng_free(&run);
    core_eng_free(&api);
    rstore_push_close(p2);
}

static size_t bench_devices(void)
{
    const char *s = getenv("EG_BENCH_DEVICES");
    long n = s ? atol(s) : 0;
    return n > 0 && n <= 2000000 ? (size_t)n : 9000; /* five of the resync's rounds */
}

static void test_resync(void **state)
{
    NEED_REDIS();
    size_t n = bench_devices();
    struct core_eng e;
    core_eng_init(&e, reg, NULL, NULL); /* registry only: no pushes while filling */
    assert_int_equal(core_reg_begin(reg), 0);
    for (size_t i = 0; i < n; i++) {
        char id[32], user[32];
        snprintf(id, sizeof(id), "DEV%07zu", i);
        snprintf(user, sizeof(user), "user%zu", i / 3);
        struct core_devinfo in = {.user = user};
        assert_int_equal(core_reg_device_seen(reg, id, &in, T0, NULL), 0);
    }
    assert_int_equal(core_reg_commit(reg), 0);
    size_t evaluated;
    assert_int_equal(core_eng_evaluate_all(&e, T0, &evaluated), 0);
    assert_int_equal(evaluated, n);
    /* The fingerprint lets a restart with the same rules skip this. */
    assert_true(core_eng_rules_current(&e));
    e.rules.grace_period_ms = 1;
    assert_false(core_eng_rules_current(&e));
    compliance_rules_init(&e.rules);
    assert_true(core_eng_rules_current(&e));
    assert_int_equal(ival("DBSIZE"), 0);

    /* A device bound to a portal certificate: the resync writes the binding
     * the proxies check (docs/state-contract.md), as a push does. */
    assert_int_equal(
        sqlite3_exec(core_reg_sqlite(reg),
                     "INSERT INTO enroll_certs(serial, device_id, user, not_before_ms, "
                     "not_after_ms, issued_ms, pem, enrollment, bound_ms) VALUES('01', "
                     "'DEV0000001', 'user0', 0, 1, 0, '', 'ENRPORTAL1', 1);"
                     /* issued, never used: no binding to write */
                     "INSERT INTO enroll_certs(serial, device_id, user, not_before_ms, "
                     "not_after_ms, issued_ms, pem, enrollment, bound_ms) VALUES('02', "
                     "'', 'user1', 0, 1, 0, '', 'ENRPORTAL2', 0)",
                     NULL, NULL, NULL),
        SQLITE_OK);

    /* Leftovers: a device the registry does not have, and a non-canonical key. */
    freeReplyObject(redisCommand(rc_, "HSET easgate:dev:GHOST1 state allow version 1"));
    freeReplyObject(redisCommand(rc_, "HSET easgate:dev:dev0000001 state allow version 1"));
    freeReplyObject(redisCommand(rc_, "SET unrelated:key 1"));

    e.push = push;
    e.dirty = true;
    struct rstore_resync_stats st;
    assert_int_equal(core_eng_resync(&e, &st), 0);
    assert_false(e.dirty);
    assert_int_equal(st.written, n);
    assert_int_equal(st.removed, 2);
    assert_int_equal(st.scanned, n + 2);
    /* the devices, unrelated:key, and the enrollment hash of the bound
     * certificate (not of the unbound one) */
    assert_int_equal(ival("DBSIZE"), (long long)n + 2);
    assert_int_equal(st.bindings, 1);
    assert_int_equal(ival("EXISTS easgate:enr:ENRPORTAL2"), 0);
    {
        redisReply *r = redisCommand(rc_, "HMGET easgate:enr:ENRPORTAL1 device user state version");
        assert_non_null(r);
        assert_int_equal(r->elements, 4);
        assert_string_equal(r->element[0]->str, "DEV0000001");
        assert_string_equal(r->element[1]->str, "user0");
        assert_string_equal(r->element[2]->str, "allow");
        assert_string_equal(r->element[3]->str, "1");
        freeReplyObject(r);
    }
    assert_int_equal(ival("EXISTS easgate:dev:GHOST1"), 0);
    char b[64];
    assert_string_equal(hget("DEV0000001", "state", b, sizeof(b)), "block");
    assert_string_equal(hget("DEV0000001", "user", b, sizeof(b)), "user0");
    assert_string_equal(hget("DEV0000001", "reason", b, sizeof(b)), "unmanaged");
    assert_string_equal(hget("DEV0000001", "enrollment", b, sizeof(b)), "ENRPORTAL1");
    assert_string_equal(hget("DEV0000002", "enrollment", b, sizeof(b)), "");
    assert_int_equal(st.announced, n);
    assert_int_equal(st.newer, 0);
    fprintf(stderr,
            "resync of %zu devices into redis: %lld ms (rewrite %lld ms, sweep %lld ms), "
            "empty redis\n",
            n, (long long)st.elapsed_ms, (long long)st.write_ms,
            (long long)(st.elapsed_ms - st.write_ms));

    /* A second resync rewrites the same values, announces nothing and removes
     * nothing, even after the script cache was flushed behind its back. */
    freeReplyObject(redisCommand(rc_, "SCRIPT FLUSH"));
    assert_int_equal(core_eng_resync(&e, &st), 0);
    assert_int_equal(st.removed, 0);
    assert_int_equal(st.written, n);
    assert_int_equal(st.announced, 0);
    assert_int_equal(st.unchanged, n); /* read, found equal, not written */
    assert_int_equal(ival("DBSIZE"), (long long)n + 2);
    fprintf(stderr,
            "resync of %zu devices into redis: %lld ms (rewrite %lld ms, sweep %lld ms), "
            "unchanged devices\n",
            n, (long long)st.elapsed_ms, (long long)st.write_ms,
            (long long)(st.elapsed_ms - st.write_ms));

    /* The other engine moved DEV0000002 on meanwhile: a resync leaves the newer hash. */
    freeReplyObject(redisCommand(rc_, "HSET easgate:dev:DEV0000002 state allow version 99999999"));
    /* A hash edited by hand at the same version, a field missing, the
     * script cache flushed: each is written again, and not announced. */
    freeReplyObject(redisCommand(rc_, "HSET easgate:dev:DEV0000003 reason by-hand"));
    freeReplyObject(redisCommand(rc_, "HDEL easgate:dev:DEV0000001 enrollment"));
    freeReplyObject(redisCommand(rc_, "SCRIPT FLUSH"));
    assert_int_equal(core_eng_resync(&e, &st), 0);
    assert_int_equal(st.newer, 1);
    assert_int_equal(st.written, n - 1);
    assert_int_equal(st.unchanged, n - 3);
    assert_int_equal(st.announced, 0);
    assert_string_equal(hget("DEV0000003", "reason", b, sizeof(b)), "unmanaged");
    assert_string_equal(hget("DEV0000001", "enrollment", b, sizeof(b)), "ENRPORTAL1");
    assert_string_equal(hget("DEV0000002", "state", b, sizeof(b)), "allow");
    assert_string_equal(hget("DEV0000002", "version", b, sizeof(b)), "99999999");

    /* A field the contract does not name leaves a hash equal. The first
     * round's hashes gone (a partly flushed Redis; a round is 2,048 devices,
     * four in flight): the resync stops reading first while most differ, and
     * starts again once the hashes are in place; every device is written or
     * found equal either way. */
    char last[32];
    snprintf(last, sizeof(last), "easgate:dev:DEV%07zu", n - 1);
    freeReplyObject(redisCommand(rc_, "HSET %s model X1", last));
    size_t gone = n > 4200 ? 2100 : n / 2;
    for (size_t i = 0; i < gone; i++) {
        char k[32];
        snprintf(k, sizeof(k), "easgate:dev:DEV%07zu", i);
        freeReplyObject(redisCommand(rc_, "DEL %s", k));
    }
    assert_int_equal(core_eng_resync(&e, &st), 0);
    assert_int_equal(st.written, n);
    assert_int_equal(st.newer, 0);
    assert_int_equal(st.announced, gone);
    if (n > 4 * 2048) /* the fifth round, present and equal, was written without being read */
        assert_true(st.unchanged < n - gone);
    assert_int_equal(st.removed, 0);
    assert_int_equal(ival("DBSIZE"), (long long)n + 2);
    assert_string_equal(hget("DEV0000000", "reason", b, sizeof(b)), "unmanaged");
    assert_string_equal(hget("DEV0000001", "enrollment", b, sizeof(b)), "ENRPORTAL1");
    snprintf(b, sizeof(b), "DEV%07zu", gone - 1);
    char v[64];
    assert_string_equal(hget(b, "state", v, sizeof(v)), "block");
    snprintf(b, sizeof(b), "DEV%07zu", n - 1);
    assert_string_equal(hget(b, "model", v, sizeof(v)), "X1");
    /* And an intact Redis again: all read, all equal, the extra field too. */
    assert_int_equal(core_eng_resync(&e, &st), 0);
    assert_int_equal(st.unchanged, n);
    core_eng_free(&e);
}

static void test_outage(void **state)
{
    NEED_REDIS();
    struct core_eng e;
    core_eng_init(&e, reg, push, NULL);
    assert_int_equal(core_eng_seen(&e, "DEVX", NULL, T0, NULL), 0);
    char b[64];
    assert_string_equal(hget("DEVX", "state", b, sizeof(b)), "block");
    redisFree(rc_);
    rc_ = NULL;
    redis_stop();

    /* Redis is down: SQLite takes the change, the engine goes dirty. */
    assert_int_equal(core_eng_action(&e, "DEVX", CORE_ACT_ALLOW, NULL, "admin", NULL, NULL, T0 + 1),
                     0);
    assert_true(e.dirty);
    assert_true(e.push_failures > 0);
    struct core_device d;
    assert_int_equal(core_reg_device_get(reg, "DEVX", &d), 0);
    assert_int_equal(d.state, COMPLIANCE_ALLOW);
    struct rstore_resync_stats st;
    assert_int_equal(core_eng_resync(&e, &st), CORE_PUSH_EREDIS);
    assert_true(e.dirty);
    assert_non_null(strstr(rstore_push_error(push), "connect"));

    /* Back (empty, as after a restart without persistence): resync heals it. */
    assert_int_equal(redis_start(), 0);
    rc_ = rconnect();
    assert_non_null(rc_);
    assert_int_equal(core_eng_resync(&e, &st), 0);
    assert_false(e.dirty);
    assert_string_equal(hget("DEVX", "state", b, sizeof(b)), "allow");
    core_eng_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_push_and_announce, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grace_and_overrides, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_guard, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_engines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outage, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
