/*
 * test_core_wr: little disk per contact and the writer thread (issue 21.1,
 * 21.3).
 *
 *   - an unchanged check-in writes no row; with the engine's buffer on it
 *     writes nothing at all until the flush, which writes the newest times;
 *     the engine evaluates with the newest time meanwhile (a check-in-age
 *     timer that fires before the flush finds the device fresh);
 *   - a check-in that changes state writes the row and one audit row;
 *   - the writer: jobs from many threads share groups, a failing job rolls
 *     back alone, a synchronous call waits for its commit, stopping writes
 *     the buffered times;
 *   - bulk import: created, updated, unchanged; a dry run writes nothing; an
 *     unknown user refuses the row and the batch lands not at all; a new
 *     device imported the short way (one INSERT) leaves exactly what the
 *     general way leaves;
 *   - the token cache answers a known token without the database and forgets
 *     a revoked one at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/auth.h"
#include "core/eng.h"
#include "core/wr.h"

#define T0 1700000000000LL
#define H (3600 * 1000LL)
#define D (24 * H)

static char dir[64], path[128];

static struct core_reg *open_reg(void)
{
    struct core_reg *reg;
    char err[256];
    assert_int_equal(core_reg_open(path, &reg, err, sizeof(err)), 0);
    return reg;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/eg-wr-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/reg.db", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int64_t changes(struct core_reg *reg)
{
    return sqlite3_total_changes(core_reg_sqlite(reg));
}

static struct compliance_rules rules_72h(void)
{
    struct compliance_rules r;
    compliance_rules_init(&r);
    r.present = true;
    r.require_passcode = true;
    r.max_checkin_age_ms = 72 * H;
    r.grace_period_ms = 0;
    return r;
}

static const struct core_checkin good = {.os = "iOS",
                                         .os_version = "17.1",
                                         .agent_version = "1.0",
                                         .passcode = COMPLIANCE_YES,
                                         .encrypted = COMPLIANCE_YES,
                                         .jailbroken = COMPLIANCE_NO};

/* A managed, compliant device that checked in at T0. */
static void enroll(struct core_eng *e, const char *id)
{
    struct core_devinfo in = {.user = "alice", .device_type = "iPhone"};
    assert_int_equal(core_eng_seen(e, id, &in, T0, NULL), 0);
    assert_int_equal(core_eng_action(e, id, CORE_ACT_MANAGE, NULL, "t", "", "", T0), 0);
    assert_int_equal(core_eng_checkin(e, id, &good, T0), 0);
}

static void test_unchanged_checkin(void **state)
{
    (void)state;
    struct core_reg *reg = open_reg();
    struct compliance_rules r = rules_72h();
    struct core_eng e;
    core_eng_init(&e, reg, NULL, &r);
    enroll(&e, "DEV1");
    struct core_device d;

    /* Without the buffer: only the times move (one narrow row; T0 is 0.22 h
     * into an hour, so T0 + H/2 is the same hour and its index entry stays). */
    int64_t c0 = changes(reg);
    assert_int_equal(core_eng_checkin(&e, "DEV1", &good, T0 + H / 2), 0);
    assert_int_equal(changes(reg) - c0, 1);
    assert_int_equal(core_reg_device_get(reg, "DEV1", &d), 0);
    assert_int_equal(d.last_checkin_ms, T0 + H / 2);

    /* With it: nothing at all until the flush. */
    e.seen_defer_ms = 60000;
    c0 = changes(reg);
    for (int i = 2; i <= 50; i++)
        assert_int_equal(core_eng_checkin(&e, "DEV1", &good, T0 + i * H / 10), 0);
    assert_int_equal(changes(reg) - c0, 0);
    assert_int_equal(core_eng_seen_buffered(&e), 1);
    assert_int_equal(core_reg_device_get(reg, "DEV1", &d), 0);
    assert_int_equal(d.last_checkin_ms, T0 + H / 2); /* the registry is behind ... */
    struct core_device now;
    assert_int_equal(core_eng_evaluate(&e, "DEV1", T0 + 5 * H, &now), 0);
    assert_int_equal(now.last_checkin_ms, T0 + 5 * H); /* ... the engine is not */

    /* The check-in-age timer (72 h after the stored check-in) finds the
     * device fresh: the buffered time counts. */
    size_t n;
    assert_int_equal(core_eng_tick(&e, T0 + H + 72 * H, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(core_eng_evaluate(&e, "DEV1", T0 + H + 72 * H, &now), 0);
    assert_string_equal(now.reason, "compliant");
    assert_true(now.next_eval_ms > T0 + H + 72 * H); /* re-armed from the newest check-in */

    /* The flush writes the newest times, once, and the hour they moved to. */
    c0 = changes(reg);
    assert_int_equal(core_eng_begin(&e), 0);
    assert_int_equal(core_eng_seen_flush(&e, T0 + 6 * H, true, 100, NULL), 0);
    assert_int_equal(core_eng_commit(&e), 0);
    assert_int_equal(changes(reg) - c0, 2);
    assert_int_equal(core_eng_seen_buffered(&e), 0);
    assert_int_equal(core_reg_device_get(reg, "DEV1", &d), 0);
    assert_int_equal(d.last_checkin_ms, T0 + 5 * H);
    assert_int_equal(d.last_seen_ms, T0 + 5 * H);

    /* A check-in that changes state: the row, the audit row, nothing else. */
    struct core_checkin bad = good;
    bad.passcode = COMPLIANCE_NO;
    struct core_audit a[4];
    size_t na;
    c0 = changes(reg);
    assert_int_equal(core_eng_checkin(&e, "DEV1", &bad, T0 + 7 * H), 0);
    assert_int_equal(core_reg_device_get(reg, "DEV1", &d), 0);
    assert_string_equal(d.reason, "no-passcode");
    assert_int_equal(d.state, COMPLIANCE_BLOCK);
    /* facts row + state (and its version's sequence) + audit, and the
     * dashboard's counters their triggers keep (schema 14): the device's
     * old and new (state, verdict) counts and this hour's blocks, rows of
     * two small tables whose pages every change touches */
    assert_true(changes(reg) - c0 <= 7);
    assert_int_equal(core_reg_audit_find(reg, "DEV1", 0, a, 4, &na), 0);
    assert_int_equal(na, 3); /* manage (its own row), the first check-in, this one */
    assert_string_equal(a[0].action, "device.state");
    assert_string_equal(a[0].actor, "core");
    assert_non_null(strstr(a[0].detail, "check-in: allow (compliant) -> block (no-passcode"));
    core_eng_free(&e); /* frees what is left; nothing is buffered */
    core_reg_close(reg);
}

/* A sighting with nothing new writes nothing and evaluates nothing. */
static void test_unchanged_sighting(void **state)
{
    (void)state;
    struct core_reg *reg = open_reg();
    struct core_eng e;
    core_eng_init(&e, reg, NULL, NULL);
    e.seen_defer_ms = 60000;
    struct core_devinfo in = {.user = "bob",
                              .device_type = "iPhone",
                              .model = "iPhone15,2",
                              .user_agent = "Apple-iPhone15C2/2101.1",
                              .eas_version = "16.1"};
    bool created;
    assert_int_equal(core_eng_seen(&e, "SEEN1", &in, T0, &created), 0);
    assert_true(created);
    uint64_t ev = e.evaluations;
    int64_t c0 = changes(reg);
    assert_int_equal(core_eng_seen(&e, "seen1", &in, T0 + H, &created), 0);
    assert_false(created);
    assert_int_equal(changes(reg) - c0, 0);
    assert_int_equal(e.evaluations, ev);
    /* Something new is written (and evaluated). */
    in.model = "iPhone16,1";
    assert_int_equal(core_eng_seen(&e, "SEEN1", &in, T0 + 2 * H, NULL), 0);
    assert_true(changes(reg) - c0 >= 1);
    struct core_device d;
    assert_int_equal(core_reg_device_get(reg, "SEEN1", &d), 0);
    assert_string_equal(d.model, "iPhone16,1");
    /* An older sighting never sets the ActiveSync version back. */
    struct core_devinfo old = {.eas_version = "14.1"};
    assert_int_equal(core_eng_seen(&e, "SEEN1", &old, T0 + H / 2, NULL), 0);
    assert_int_equal(core_reg_device_get(reg, "SEEN1", &d), 0);
    assert_string_equal(d.eas_version, "16.1");
    assert_int_equal(core_eng_seen_flush_all(&e, T0 + 3 * H), 0);
    assert_int_equal(core_reg_device_get(reg, "SEEN1", &d), 0);
    assert_int_equal(d.last_seen_ms, T0 + 2 * H);
    core_eng_free(&e);
    core_reg_close(reg);
}

/* The client address follows the newest sighting (schema 12), like the
 * protocol version: an older one never sets it back, the same one writes
 * nothing. */
static void test_last_client(void **state)
{
    (void)state;
    struct core_reg *reg = open_reg();
    struct core_eng e;
    core_eng_init(&e, reg, NULL, NULL);
    e.seen_defer_ms = 60000;
    struct core_devinfo in = {.user = "bob", .client_addr = "192.0.2.10", .eas_version = "14.1"};
    assert_int_equal(core_eng_seen(&e, "ADDR1", &in, T0, NULL), 0);
    struct core_device d;
    assert_int_equal(core_reg_device_get(reg, "ADDR1", &d), 0);
    assert_string_equal(d.last_client, "192.0.2.10");
    struct core_devinfo moved = {.client_addr = "2001:db8::7", .eas_version = "16.1"};
    assert_int_equal(core_eng_seen(&e, "ADDR1", &moved, T0 + H, NULL), 0);
    assert_int_equal(core_reg_device_get(reg, "ADDR1", &d), 0);
    assert_string_equal(d.last_client, "2001:db8::7");
    assert_string_equal(d.eas_version, "16.1");
    struct core_devinfo old = {.client_addr = "198.51.100.1"};
    assert_int_equal(core_eng_seen(&e, "ADDR1", &old, T0 + H / 2, NULL), 0);
    assert_int_equal(core_reg_device_get(reg, "ADDR1", &d), 0);
    assert_string_equal(d.last_client, "2001:db8::7");
    int64_t c0 = changes(reg);
    assert_int_equal(core_eng_seen(&e, "ADDR1", &moved, T0 + 2 * H, NULL), 0);
    assert_int_equal(changes(reg) - c0, 0);
    core_eng_free(&e);
    core_reg_close(reg);
}

/* ---- the writer ---------------------------------------------------------------- */

struct tjob {
    struct core_wr_job j;
    const char *user; /* registered by run() */
    bool fail;        /* run() fails after writing */
    pthread_mutex_t *mu;
    pthread_cond_t *cv;
    int *done;
    int rc;
};

static int tjob_run(struct core_wr_job *j, struct core_wr_env *env)
{
    struct tjob *t = (struct tjob *)j;
    int rc = core_reg_user_add(env->reg, t->user, T0);
    return rc < 0 ? rc : t->fail ? CORE_REG_EINVAL : 0;
}

static void tjob_done(struct core_wr_job *j, int rc)
{
    struct tjob *t = (struct tjob *)j;
    pthread_mutex_lock(t->mu);
    t->rc = rc;
    (*t->done)++;
    pthread_cond_signal(t->cv);
    pthread_mutex_unlock(t->mu);
}

static int call_checkin(struct core_wr_env *env, void *arg)
{
    return core_eng_checkin(env->eng, arg, &good, T0 + 2 * H);
}

static void test_writer(void **state)
{
    (void)state;
    struct core_reg *reg = open_reg();
    struct compliance_rules r = rules_72h();
    struct core_eng e;
    core_eng_init(&e, reg, NULL, &r);
    enroll(&e, "WDEV1");
    core_eng_free(&e);

    struct core_wr_opts o = {.database = path, .rules = &r, .tick_ms = 100, .seen_flush_ms = 60000};
    struct core_wr *w;
    char err[256];
    assert_int_equal(core_wr_start(&o, &w, err, sizeof(err)), 0);
    enum { N = 200 };
    static struct tjob jobs[N];
    static char names[N][16];
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    int done = 0;
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "user%03d", i);
        jobs[i] = (struct tjob){.j = {.run = tjob_run, .done = tjob_done},
                                .user = names[i],
                                .fail = i % 10 == 7,
                                .mu = &mu,
                                .cv = &cv,
                                .done = &done};
        assert_int_equal(core_wr_submit(w, &jobs[i].j), 0);
    }
    pthread_mutex_lock(&mu);
    while (done < N)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < N; i++) {
        assert_int_equal(jobs[i].rc, i % 10 == 7 ? CORE_REG_EINVAL : 0);
        /* a failing job took only its own write back */
        assert_int_equal(core_reg_user_exists(reg, names[i]), i % 10 == 7 ? 0 : 1);
    }
    struct core_wr_stats st;
    core_wr_stats(w, &st);
    assert_int_equal(st.jobs, N);
    assert_true(st.groups < N); /* jobs shared commits */

    /* A synchronous call; its check-in waits in the writer's buffer. */
    assert_int_equal(core_wr_call(w, call_checkin, "WDEV1"), 0);
    struct core_device d;
    assert_int_equal(core_reg_device_get(reg, "WDEV1", &d), 0);
    assert_int_equal(d.last_checkin_ms, T0);
    core_wr_stop(w); /* writes it */
    assert_int_equal(core_reg_device_get(reg, "WDEV1", &d), 0);
    assert_int_equal(d.last_checkin_ms, T0 + 2 * H);
    core_reg_close(reg);
}

/* ---- import --------------------------------------------------------------------- */

static void test_import(void **state)
{
    (void)state;
    struct core_reg *reg = open_reg();
    struct core_eng e;
    core_eng_init(&e, reg, NULL, NULL);
    assert_int_equal(core_reg_user_add(reg, "carol", T0), 1);
    assert_int_equal(core_reg_user_add(reg, "CAROL", T0), 0);
    struct core_import_row rows[3] = {
        {.device_id = "imp1",
         .user = "carol",
         .device_type = "iPhone",
         .managed = 1,
         .override = -1,
         .note = "from the old MDM"},
        {.device_id = "IMP2",
         .device_type = "Android",
         .managed = 0,
         .override = COMPLIANCE_OVR_BLOCK},
        {.device_id = "IMP3", .user = "nobody", .managed = -1, .override = -1},
    };
    struct core_import_res res[3];
    size_t errors;
    /* An unknown user refuses its row; nothing of the batch lands. */
    assert_int_equal(core_eng_import(&e, rows, 3, false, false, "root", "", T0, res, &errors), 0);
    assert_int_equal(errors, 1);
    assert_int_equal(res[2].outcome, CORE_IMPORT_ERROR);
    assert_non_null(strstr(res[2].what, "unknown user 'nobody'"));
    assert_int_equal(core_reg_device_exists(reg, "IMP1"), 0);
    /* A dry run reports and writes nothing. */
    int64_t c0 = changes(reg);
    assert_int_equal(core_eng_import(&e, rows, 2, true, false, "root", "", T0, res, &errors), 0);
    assert_int_equal(errors, 0);
    assert_int_equal(res[0].outcome, CORE_IMPORT_CREATED);
    assert_int_equal(changes(reg) - c0, 0);
    /* For real; then again: unchanged. */
    assert_int_equal(core_eng_import(&e, rows, 2, false, false, "root", "", T0, res, &errors), 0);
    assert_int_equal(res[0].outcome, CORE_IMPORT_CREATED);
    assert_int_equal(res[1].outcome, CORE_IMPORT_CREATED);
    struct core_device d;
    assert_int_equal(core_reg_device_get(reg, "IMP1", &d), 0);
    assert_string_equal(d.user, "carol");
    assert_true(d.managed);
    assert_int_equal(core_reg_device_get(reg, "IMP2", &d), 0);
    assert_int_equal(d.override, COMPLIANCE_OVR_BLOCK);
    assert_int_equal(d.state, COMPLIANCE_BLOCK);
    assert_int_equal(core_eng_import(&e, rows, 2, false, false, "root", "", T0, res, &errors), 0);
    assert_int_equal(res[0].outcome, CORE_IMPORT_UNCHANGED);
    assert_int_equal(res[1].outcome, CORE_IMPORT_UNCHANGED);
    /* A change is named. */
    rows[1].override = COMPLIANCE_OVR_NONE;
    rows[1].model = "Pixel 8";
    assert_int_equal(core_eng_import(&e, rows + 1, 1, true, false, "root", "", T0, res, &errors),
                     0);
    assert_int_equal(res[0].outcome, CORE_IMPORT_UPDATED);
    assert_non_null(strstr(res[0].what, "model: '' -> 'Pixel 8'"));
    assert_non_null(strstr(res[0].what, "override: block -> none"));
    /* create_users lets the unknown user in. */
    assert_int_equal(core_eng_import(&e, rows + 2, 1, false, true, "root", "", T0, res, &errors),
                     0);
    assert_int_equal(errors, 0);
    assert_int_equal(core_reg_device_get(reg, "IMP3", &d), 0);
    assert_string_equal(d.user, "nobody");
    struct core_action act[4];
    size_t na;
    assert_int_equal(core_reg_action_list(reg, "IMP1", 0, act, 4, &na), 0);
    assert_int_equal(na, 1);
    assert_string_equal(act[0].action, "import");
    assert_string_equal(act[0].note, "from the old MDM");
    core_eng_free(&e);
    core_reg_close(reg);
}

/* Every row of the tables an import writes, as text: two registries compared. */
static void dump(struct core_reg *reg, char *out, size_t len)
{
    static const char *const qs[] = {"SELECT * FROM devices ORDER BY id",
                                     "SELECT * FROM device_seen ORDER BY 1",
                                     "SELECT * FROM users ORDER BY name",
                                     "SELECT * FROM admin_actions ORDER BY id",
                                     "SELECT * FROM device_counts ORDER BY 1, 2, 3",
                                     "SELECT * FROM activity ORDER BY 1, 2",
                                     "SELECT * FROM meta ORDER BY key",
                                     "SELECT * FROM audit ORDER BY id",
                                     "SELECT * FROM pending_devices ORDER BY 1"};
    size_t n = 0;
    for (size_t q = 0; q < sizeof(qs) / sizeof(qs[0]); q++) {
        sqlite3_stmt *s;
        assert_int_equal(sqlite3_prepare_v2(core_reg_sqlite(reg), qs[q], -1, &s, NULL), SQLITE_OK);
        while (sqlite3_step(s) == SQLITE_ROW) {
            for (int c = 0; c < sqlite3_column_count(s); c++) {
                const unsigned char *t = sqlite3_column_text(s, c);
                n += (size_t)snprintf(out + n, len - n, "%s|", t ? (const char *)t : "NULL");
                assert_true(n < len);
            }
            n += (size_t)snprintf(out + n, len - n, "\n");
        }
        sqlite3_finalize(s);
    }
}

static void note_push(void *arg, const char *device_id, bool deleted)
{
    char *pushed = arg;
    size_t n = strlen(pushed);
    snprintf(pushed + n, 1024 - n, "%s%s ", deleted ? "-" : "", device_id);
}

/*
 * A new device is imported the short way (built and evaluated in memory,
 * one INSERT) unless a pending sighting must be carried over: both ways
 * leave the same rows, versions, history, counters and pushes.
 */
static void test_import_short(void **state)
{
    (void)state;
    /* A model over its 128 bytes, cut where a 2-byte character straddles
     * the limit, with a control character: stored clipped and cleaned. */
    char model[200];
    memset(model, 'm', sizeof(model));
    memcpy(model + 126, "\xc3\xa9", 2);
    model[3] = '\t';
    model[sizeof(model) - 1] = '\0';
    const struct core_import_row rows[] = {
        {.device_id = "fa1",
         .user = "u1",
         .device_type = "iPhone",
         .model = "iPhone 15",
         .os = "iOS",
         .os_version = "17.1",
         .managed = 1,
         .override = -1},
        {.device_id = "fa2", .user = "u1", .managed = 0, .override = COMPLIANCE_OVR_ALLOW},
        {.device_id = "FA3",
         .user = "U2",
         .managed = 1,
         .override = COMPLIANCE_OVR_QUARANTINE,
         .note = "moved"},
        {.device_id = "fa4", .managed = -1, .override = -1},
        {.device_id = "fa5",
         .user = "u3",
         .model = model,
         .managed = 1,
         .override = COMPLIANCE_OVR_BLOCK},
        {.device_id = "fa6",
         .user = "u2",
         .os = "Android",
         .os_version = "9",
         .managed = 1,
         .override = COMPLIANCE_OVR_NONE},
    };
    size_t n = sizeof(rows) / sizeof(rows[0]);
    struct compliance_rules sets[2];
    compliance_rules_init(&sets[0]);
    sets[1] = rules_72h();
    static char want[65536], got[65536];
    for (int k = 0; k < 2; k++) {
        struct core_eng_stats st[2];
        char pushed[2][1024] = {"", ""};
        int64_t writes[2];
        for (int way = 0; way < 2; way++) {
            snprintf(path, sizeof(path), "%s/reg%d%d.db", dir, k, way);
            struct core_reg *reg = open_reg();
            struct core_eng e;
            core_eng_init(&e, reg, NULL, &sets[k]);
            e.on_unpushed = note_push;
            e.unpushed_arg = pushed[way];
            if (way == 1) /* a pending sighting of each: the general way */
                for (size_t i = 0; i < n; i++) {
                    enum core_sighted o;
                    assert_int_equal(core_eng_sighting(&e, rows[i].device_id, NULL, false, NULL,
                                                       T0 - H, T0 - H, &o),
                                     0);
                    assert_int_equal(o, CORE_SIGHTED_PENDING);
                }
            struct core_import_res res[8];
            size_t errors;
            int64_t c0 = changes(reg);
            assert_int_equal(
                core_eng_import(&e, rows, n, false, true, "root", "", T0, res, &errors), 0);
            writes[way] = changes(reg) - c0;
            assert_int_equal(errors, 0);
            for (size_t i = 0; i < n; i++)
                assert_int_equal(res[i].outcome, CORE_IMPORT_CREATED);
            dump(reg, way ? got : want, sizeof(want));
            st[way] = e.stats;
            core_eng_free(&e);
            core_reg_close(reg);
        }
        assert_string_equal(got, want);
        assert_string_equal(pushed[1], pushed[0]);
        assert_int_equal(st[1].created, st[0].created);
        assert_int_equal(st[1].evaluations, st[0].evaluations);
        assert_int_equal(st[1].changes, st[0].changes);
        assert_memory_equal(st[1].transitions, st[0].transitions, sizeof(st[0].transitions));
        /* the short way was taken: fewer writes than the general way's,
         * less the pending rows it removed */
        assert_true(writes[0] + (int64_t)n < writes[1]);
    }
    assert_non_null(strstr(want, "|mmm?mm")); /* the model, cleaned */
    assert_non_null(strstr(want, "FA5|"));
}

/* ---- the token cache --------------------------------------------------------------- */

static void test_auth_cache(void **state)
{
    (void)state;
    struct core_reg *reg = open_reg();
    struct core_auth *a;
    assert_int_equal(core_auth_open(reg, &a), 0);
    struct core_auth_cache *c = core_auth_cache_new(2000);
    assert_non_null(c);
    core_auth_set_cache(a, c);
    char why[128], tok[CORE_TOKEN_MAX], hdr[CORE_TOKEN_MAX + 16];
    assert_int_equal(core_auth_account_add(a, "root", CORE_ROLE_ADMIN, "correct horse battery", T0,
                                           why, sizeof(why)),
                     0);
    int64_t id;
    assert_int_equal(core_auth_token_mint(a, "root", CORE_ROLE_DEVICE, "t", T0, tok, &id), 0);
    snprintf(hdr, sizeof(hdr), "Bearer %s", tok);
    struct core_principal who;
    assert_int_equal(core_auth_check(a, hdr, T0, &who), 0);
    assert_int_equal(who.role, CORE_ROLE_DEVICE);
    assert_int_equal(core_auth_check(a, hdr, T0 + 1000, &who), 0);
    /* Another process revokes it: seen once the entry is older than its TTL. */
    struct core_auth *other;
    assert_int_equal(core_auth_open(reg, &other), 0); /* no cache: like the CLI */
    assert_int_equal(core_auth_token_revoke(other, id), 0);
    assert_int_equal(core_auth_check(a, hdr, T0 + 1500, &who), 0);
    assert_int_equal(core_auth_check(a, hdr, T0 + 2500, &who), CORE_AUTH_EDENIED);
    /* Revoked through a cached auth: at once. */
    assert_int_equal(core_auth_token_mint(a, "root", CORE_ROLE_DEVICE, "t", T0, tok, &id), 0);
    snprintf(hdr, sizeof(hdr), "Bearer %s", tok);
    assert_int_equal(core_auth_check(a, hdr, T0, &who), 0);
    assert_int_equal(core_auth_token_revoke(a, id), 0);
    assert_int_equal(core_auth_check(a, hdr, T0 + 1, &who), CORE_AUTH_EDENIED);
    core_auth_close(other);
    core_auth_close(a);
    core_auth_cache_free(c);
    core_reg_close(reg);
}

/* Only authenticated sightings change the registry (issue 12, point 4): a
 * flood of made-up DeviceIds the proxy turned away leaves it as it was and
 * the pending table at its cap; an unauthenticated sighting of a
 * registered device binds no user and changes no fact; the first
 * authenticated one registers a device and removes it from pending. */
static void test_pending(void **state)
{
    (void)state;
    struct core_reg *reg = open_reg();
    struct compliance_rules r = rules_72h();
    struct core_eng e;
    core_eng_init(&e, reg, NULL, &r);
    e.pending_max = 100;
    e.pending_ttl_ms = D;
    enum core_sighted o;
    struct core_devinfo bob = {
        .user = "bob", .device_type = "iPhone", .os = "iOS", .os_version = "16.1"};
    for (int i = 0; i < 500; i++) {
        char id[32];
        snprintf(id, sizeof(id), "FAKE%05d", i);
        assert_int_equal(core_eng_sighting(&e, id, &bob, false, "192.0.2.1", T0 + i, T0 + i, &o),
                         0);
        assert_int_equal(o, CORE_SIGHTED_PENDING);
    }
    assert_int_equal(core_reg_device_count(reg), 0);
    assert_int_equal(core_reg_pending_count(reg), 100);
    struct core_pending_row pr;
    assert_int_equal(core_reg_pending_get(reg, "FAKE00499", &pr), 0); /* the newest stay */
    assert_int_equal(pr.count, 1);
    assert_string_equal(pr.user, "bob");
    assert_int_equal(core_reg_pending_get(reg, "FAKE00000", &pr), CORE_REG_ENOTFOUND);
    /* Authenticated: registered with its user, gone from pending. */
    assert_int_equal(core_eng_sighting(&e, "FAKE00499", &bob, true, NULL, T0 + H, T0 + H, &o), 0);
    assert_int_equal(o, CORE_SIGHTED_CREATED);
    assert_int_equal(core_reg_pending_get(reg, "FAKE00499", &pr), CORE_REG_ENOTFOUND);
    struct core_device d;
    assert_int_equal(core_reg_device_get(reg, "FAKE00499", &d), 0);
    assert_string_equal(d.user, "bob");
    assert_string_equal(d.os_version, "16.1");
    /* Unauthenticated of a registered device: nothing changes. */
    struct core_devinfo eve = {.user = "eve", .os = "iOS", .os_version = "12.0", .model = "X"};
    int64_t before = changes(reg);
    assert_int_equal(
        core_eng_sighting(&e, "FAKE00499", &eve, false, NULL, T0 + 2 * H, T0 + 2 * H, &o), 0);
    assert_int_equal(o, CORE_SIGHTED_IGNORED);
    assert_int_equal(changes(reg), before);
    assert_int_equal(core_reg_device_get(reg, "FAKE00499", &d), 0);
    assert_string_equal(d.os_version, "16.1");
    assert_string_equal(d.model, "");
    /* A device first seen unauthenticated binds no user until an
     * authenticated sighting names one. */
    assert_int_equal(core_eng_sighting(&e, "NEWONE", &eve, false, NULL, T0 + 3 * H, T0 + 3 * H, &o),
                     0);
    assert_int_equal(core_reg_device_exists(reg, "NEWONE"), 0);
    assert_int_equal(core_eng_sighting(&e, "NEWONE", &bob, true, NULL, T0 + 4 * H, T0 + 4 * H, &o),
                     0);
    assert_int_equal(core_reg_device_get(reg, "NEWONE", &d), 0);
    assert_string_equal(d.user, "bob");
    /* A policy key the server role issued a pending device is kept and
     * becomes the device's when it is registered (here by an approval). */
    assert_int_equal(core_eng_sighting(&e, "PROV1", &eve, false, NULL, T0 + 4 * H, T0 + 4 * H, &o),
                     0);
    assert_int_equal(core_reg_pending_provisioned(reg, "PROV1", 12345, T0 + 4 * H), 0);
    assert_int_equal(core_reg_pending_provisioned(reg, "PROV1", 999, T0 + 3 * H), 0); /* older */
    assert_int_equal(core_reg_pending_get(reg, "PROV1", &pr), 0);
    assert_int_equal(pr.policy_key, 12345);
    bool created = false;
    assert_int_equal(core_eng_seen(&e, "PROV1", NULL, T0 + 5 * H, &created), 0);
    assert_true(created);
    assert_int_equal(core_reg_device_get(reg, "PROV1", &d), 0);
    assert_int_equal(d.policy_key, 12345);
    assert_int_equal(d.provisioned_ms, T0 + 4 * H);
    assert_string_equal(d.user, "");
    assert_int_equal(core_reg_pending_get(reg, "PROV1", &pr), CORE_REG_ENOTFOUND);
    /* An import registers a pending device too: no longer pending. */
    assert_int_equal(core_eng_sighting(&e, "IMPP1", &eve, false, NULL, T0 + 5 * H, T0 + 5 * H, &o),
                     0);
    struct core_import_row row = {.device_id = "impp1", .managed = -1, .override = -1};
    struct core_import_res res;
    size_t errors;
    assert_int_equal(
        core_eng_import(&e, &row, 1, false, false, "root", "", T0 + 5 * H, &res, &errors), 0);
    assert_int_equal(res.outcome, CORE_IMPORT_CREATED);
    assert_int_equal(core_reg_pending_get(reg, "IMPP1", &pr), CORE_REG_ENOTFOUND);
    /* Expiry: a day after their last sighting they are gone. */
    assert_int_equal(core_eng_sighting(&e, "LATE1", NULL, false, NULL, T0 + 2 * D, T0 + 2 * D, &o),
                     0);
    assert_int_equal(core_reg_pending_count(reg), 1);
    core_eng_free(&e);
    core_reg_close(reg);
}

static int64_t sunk_id, sunk_at;

static void sink(void *arg, int64_t token_id, int64_t now_ms)
{
    (void)arg;
    sunk_id = token_id;
    sunk_at = now_ms;
}

/* A token's last use through the cache: written at most once a minute, hit
 * or miss; on a reader's auth it goes to the sink (the writer) instead. An
 * account disabled or deleted through the cached auth stops at once. */
static void test_auth_cache_used(void **state)
{
    (void)state;
    struct core_reg *reg = open_reg();
    struct core_auth *a;
    assert_int_equal(core_auth_open(reg, &a), 0);
    struct core_auth_cache *c = core_auth_cache_new(2000);
    assert_non_null(c);
    core_auth_set_cache(a, c);
    char why[128], tok[CORE_TOKEN_MAX], hdr[CORE_TOKEN_MAX + 16];
    assert_int_equal(core_auth_account_add(a, "root", CORE_ROLE_ADMIN, "correct horse battery", T0,
                                           why, sizeof(why)),
                     0);
    assert_int_equal(core_auth_account_add(a, "bob", CORE_ROLE_ADMIN, "correct horse battery 2", T0,
                                           why, sizeof(why)),
                     0);
    int64_t id;
    assert_int_equal(core_auth_token_mint(a, "bob", CORE_ROLE_DEVICE, "t", T0, tok, &id), 0);
    snprintf(hdr, sizeof(hdr), "Bearer %s", tok);
    struct core_principal who;
    struct core_token t;
    assert_int_equal(core_auth_check(a, hdr, T0 + 10, &who), 0); /* miss: written */
    assert_int_equal(core_auth_token_get(a, id, &t), 0);
    assert_int_equal(t.last_used_ms, T0 + 10);
    assert_int_equal(core_auth_check(a, hdr, T0 + 1000, &who), 0);  /* hit, same minute */
    assert_int_equal(core_auth_check(a, hdr, T0 + 30000, &who), 0); /* miss, same minute */
    assert_int_equal(core_auth_token_get(a, id, &t), 0);
    assert_int_equal(t.last_used_ms, T0 + 10);
    assert_int_equal(core_auth_check(a, hdr, T0 + 61000, &who), 0); /* a minute on */
    assert_int_equal(core_auth_token_get(a, id, &t), 0);
    assert_int_equal(t.last_used_ms, T0 + 61000);
    /* A reader's auth over the same cache hands the write on. */
    struct core_auth *rd;
    assert_int_equal(core_auth_open(reg, &rd), 0);
    core_auth_set_cache(rd, c);
    core_auth_set_used_sink(rd, sink, NULL);
    sunk_id = sunk_at = 0;
    assert_int_equal(core_auth_check(rd, hdr, T0 + 62000, &who), 0);
    assert_int_equal(sunk_id, 0); /* a minute not yet over */
    assert_int_equal(core_auth_check(rd, hdr, T0 + 125000, &who), 0);
    assert_int_equal(sunk_id, id);
    assert_int_equal(sunk_at, T0 + 125000);
    assert_int_equal(core_auth_token_get(a, id, &t), 0);
    assert_int_equal(t.last_used_ms, T0 + 61000); /* not written by the reader */
    /* Disabled through the cached auth: refused at once, not after the TTL. */
    assert_int_equal(core_auth_check(a, hdr, T0 + 125100, &who), 0);
    assert_int_equal(core_auth_account_disable(a, "bob", true), 0);
    assert_int_equal(core_auth_check(rd, hdr, T0 + 125200, &who), CORE_AUTH_EDENIED);
    assert_int_equal(core_auth_account_disable(a, "bob", false), 0);
    assert_int_equal(core_auth_check(rd, hdr, T0 + 125300, &who), 0);
    assert_int_equal(core_auth_account_delete(a, "bob"), 0);
    assert_int_equal(core_auth_check(rd, hdr, T0 + 125400, &who), CORE_AUTH_EDENIED);
    core_auth_close(rd);
    core_auth_close(a);
    core_auth_cache_free(c);
    core_reg_close(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unchanged_checkin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unchanged_sighting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_short, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_cache_used, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
