/* test_compliance: the compliance decision table and OS version comparison. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "policy/compliance.h"

#define H (3600LL * 1000)
#define D (24 * H)
#define NOW (1000 * D) /* an arbitrary fixed "now" */

/* ---- version parsing and comparison ---- */

static void test_ver_parse_good(void **state)
{
    static const struct {
        const char *s;
        uint32_t p0, p1, p2, p3;
    } rows[] = {
        {"16", 16, 0, 0, 0},       {"16.0", 16, 0, 0, 0},  {"16.0.0", 16, 0, 0, 0},
        {"16.1.2", 16, 1, 2, 0},   {" 12 ", 12, 0, 0, 0},  {"10.3.3.1", 10, 3, 3, 1},
        {"0", 0, 0, 0, 0},         {"007.01", 7, 1, 0, 0}, {"999999.1", 999999, 1, 0, 0},
        {"\t17.4\t", 17, 4, 0, 0},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct compliance_ver v;
        if (compliance_ver_parse(rows[i].s, &v) != 0)
            fail_msg("'%s' should parse", rows[i].s);
        uint32_t want[4] = {rows[i].p0, rows[i].p1, rows[i].p2, rows[i].p3};
        for (int k = 0; k < 4; k++)
            if (v.part[k] != want[k])
                fail_msg("'%s' part %d: %u != %u", rows[i].s, k, v.part[k], want[k]);
    }
}

static void test_ver_parse_bad(void **state)
{
    static const char *const bad[] = {
        "",       " ",      "x",         "16.",        ".16",
        "16..1",  "16.1.",  "-1",        "+16",        "16a",
        "16.1b",  "v16",    "1.2.3.4.5", "1000000",    "16 .1",
        "16. 1",  "iOS 16", "16,1",      "4294967296", "99999999999999999999",
        "16.0\n", "١٦",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct compliance_ver v;
        memset(&v, 0x5a, sizeof(v));
        if (compliance_ver_parse(bad[i], &v) != -1)
            fail_msg("'%s' should be rejected", bad[i]);
        for (int k = 0; k < COMPLIANCE_VER_PARTS; k++)
            assert_int_equal(v.part[k], 0);
    }
    struct compliance_ver v;
    assert_int_equal(compliance_ver_parse(NULL, &v), -1);
}

static int cmp(const char *a, const char *b)
{
    struct compliance_ver va, vb;
    assert_int_equal(compliance_ver_parse(a, &va), 0);
    assert_int_equal(compliance_ver_parse(b, &vb), 0);
    return compliance_ver_cmp(&va, &vb);
}

static void test_ver_cmp(void **state)
{
    static const struct {
        const char *a, *b;
        int want;
    } rows[] = {
        {"16", "16.0", 0},       {"16.0", "16.0.0", 0},      {"16", "16.0.0.0", 0},
        {"16.1", "16.0.9", 1},   {"16.0.1", "16", 1},        {"15.8", "16", -1},
        {"9", "10", -1},         {"10.10", "10.9", 1},       {"12", "12.0.1", -1},
        {"17.4.1", "17.4.1", 0}, {"1.2.3.4", "1.2.3.5", -1},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int got = cmp(rows[i].a, rows[i].b);
        got = got < 0 ? -1 : got > 0;
        if (got != rows[i].want)
            fail_msg("%s vs %s: %d, want %d", rows[i].a, rows[i].b, got, rows[i].want);
        int back = cmp(rows[i].b, rows[i].a);
        back = back < 0 ? -1 : back > 0;
        assert_int_equal(back, -rows[i].want);
    }
}

static void test_names(void **state)
{
    enum compliance_state s;
    enum compliance_override o;
    for (int i = COMPLIANCE_ALLOW; i <= COMPLIANCE_WIPE; i++) {
        assert_int_equal(compliance_state_parse(compliance_state_name(i), &s), 0);
        assert_int_equal(s, i);
    }
    for (int i = COMPLIANCE_OVR_NONE; i <= COMPLIANCE_OVR_WIPE; i++) {
        assert_int_equal(compliance_override_parse(compliance_override_name(i), &o), 0);
        assert_int_equal(o, i);
    }
    assert_int_equal(compliance_state_parse("Allow", &s), -1);
    assert_int_equal(compliance_state_parse(NULL, &s), -1);
    assert_int_equal(compliance_override_parse("reset", &o), -1);
    assert_string_equal(compliance_state_name((enum compliance_state)42), "block");
}

/* ---- the decision table ---- */

/* The strict rule set from issue 6's example. */
static void strict_rules(struct compliance_rules *r)
{
    compliance_rules_init(r);
    r->present = true;
    r->require_passcode = true;
    r->require_encryption = true;
    r->block_jailbroken = true;
    snprintf(r->os_min[0].family, sizeof(r->os_min[0].family), "iOS");
    compliance_ver_parse("16.0", &r->os_min[0].min);
    snprintf(r->os_min[1].family, sizeof(r->os_min[1].family), "Android");
    compliance_ver_parse("12", &r->os_min[1].min);
    r->n_os_min = 2;
    r->max_checkin_age_ms = 72 * H;
    r->grace_period_ms = 3 * D;
    r->unmanaged = COMPLIANCE_BLOCK;
    r->max_devices_per_user = 5;
}

/* A managed iPhone that passes everything, checked in an hour ago. */
static struct compliance_facts good(void)
{
    struct compliance_facts f = {
        .managed = true,
        .passcode = COMPLIANCE_YES,
        .encrypted = COMPLIANCE_YES,
        .jailbroken = COMPLIANCE_NO,
        .os = "iOS",
        .os_version = "16.1.2",
        .last_checkin_ms = NOW - H,
        .non_compliant_since_ms = 0,
        .user_rank = 1,
    };
    return f;
}

enum rules_kind { STRICT, ABSENT, ZERO_GRACE, UNMANAGED_ALLOW, UNMANAGED_QUAR, EAS_FALLBACK };

struct row {
    const char *name;
    enum rules_kind rules;
    void (*mutate)(struct compliance_facts *f);
    enum compliance_override ovr;
    enum compliance_state want_state;
    const char *want_reason;
    bool want_grace;
    int64_t want_since; /* expected non_compliant_since_ms */
    int64_t want_next;  /* expected next_eval_ms */
};

static void m_none(struct compliance_facts *f)
{
    (void)f;
}
static void m_unmanaged(struct compliance_facts *f)
{
    *f = (struct compliance_facts){.passcode = COMPLIANCE_UNKNOWN,
                                   .encrypted = COMPLIANCE_UNKNOWN,
                                   .jailbroken = COMPLIANCE_UNKNOWN};
}
static void m_autoblock(struct compliance_facts *f)
{
    f->autoblock_until_ms = NOW + H;
    f->autoblock_reason = "autoblock:SyncCommands";
}
static void m_autoblock_over(struct compliance_facts *f)
{
    f->autoblock_until_ms = NOW; /* ends now: no longer blocks */
    f->autoblock_reason = "autoblock:SyncCommands";
}
static void m_autoquarantine(struct compliance_facts *f)
{
    f->autoblock_until_ms = NOW + H;
    f->autoblock_reason = "autoquarantine:CommandFrequency";
}
static void m_autoblock_unmanaged(struct compliance_facts *f)
{
    m_unmanaged(f);
    m_autoblock(f);
}
static void m_jailbroken(struct compliance_facts *f)
{
    f->jailbroken = COMPLIANCE_YES;
}
static void m_jail_unknown(struct compliance_facts *f)
{
    f->jailbroken = COMPLIANCE_UNKNOWN;
}
static void m_nopass(struct compliance_facts *f)
{
    f->passcode = COMPLIANCE_NO;
}
static void m_pass_unknown(struct compliance_facts *f)
{
    f->passcode = COMPLIANCE_UNKNOWN;
}
static void m_noenc(struct compliance_facts *f)
{
    f->encrypted = COMPLIANCE_NO;
}
static void m_enc_unknown(struct compliance_facts *f)
{
    f->encrypted = COMPLIANCE_UNKNOWN;
}
static void m_old_ios(struct compliance_facts *f)
{
    f->os_version = "15.7.9";
}
static void m_ios_16(struct compliance_facts *f)
{
    f->os_version = "16";
}
static void m_garbage_ver(struct compliance_facts *f)
{
    f->os_version = "sixteen";
}
static void m_no_ver(struct compliance_facts *f)
{
    f->os_version = NULL;
}
static void m_no_os(struct compliance_facts *f)
{
    f->os = "";
}
static void m_android_11(struct compliance_facts *f)
{
    f->os = "android";
    f->os_version = "11.0.0";
}
static void m_android_12(struct compliance_facts *f)
{
    f->os = "ANDROID";
    f->os_version = "12.0";
}
static void m_other_os(struct compliance_facts *f)
{
    f->os = "Windows";
    f->os_version = "1.0";
}
/* Only the phone's ActiveSync DeviceInformation says which OS it runs. */
static void m_eas_only_new(struct compliance_facts *f)
{
    f->os = NULL;
    f->os_version = NULL;
    f->eas_os = "iOS";
    f->eas_os_version = "17.1";
}
static void m_eas_only_old(struct compliance_facts *f)
{
    m_eas_only_new(f);
    f->eas_os_version = "15.0";
}
/* A forged report beside an authenticated check-in, either way round. */
static void m_eas_newer_than_checkin(struct compliance_facts *f)
{
    f->os_version = "15.7";
    f->eas_os = "iOS";
    f->eas_os_version = "17.1";
}
static void m_eas_older_than_checkin(struct compliance_facts *f)
{
    f->eas_os = "iOS";
    f->eas_os_version = "9.0";
}
/* An authenticated family without a version is not completed from EAS. */
static void m_checkin_no_ver_eas_ver(struct compliance_facts *f)
{
    f->os_version = NULL;
    f->eas_os = "iOS";
    f->eas_os_version = "17.1";
}
static void m_stale(struct compliance_facts *f)
{
    f->last_checkin_ms = NOW - 72 * H;
}
static void m_never(struct compliance_facts *f)
{
    f->last_checkin_ms = 0;
}
static void m_sixth(struct compliance_facts *f)
{
    f->user_rank = 6;
}
static void m_fifth(struct compliance_facts *f)
{
    f->user_rank = 5;
}
static void m_jb_grace_started(struct compliance_facts *f)
{
    f->jailbroken = COMPLIANCE_YES;
    f->non_compliant_since_ms = NOW - 2 * D;
}
static void m_jb_grace_over(struct compliance_facts *f)
{
    f->jailbroken = COMPLIANCE_YES;
    f->non_compliant_since_ms = NOW - 3 * D;
}
static void m_jb_future_mark(struct compliance_facts *f)
{
    f->jailbroken = COMPLIANCE_YES;
    f->non_compliant_since_ms = NOW + 10 * D;
}
static void m_fixed_after_mark(struct compliance_facts *f)
{
    f->non_compliant_since_ms = NOW - 5 * D;
}
static void m_two_failures(struct compliance_facts *f)
{
    f->passcode = COMPLIANCE_NO;
    f->encrypted = COMPLIANCE_NO;
}
static void m_unmanaged_marked(struct compliance_facts *f)
{
    m_unmanaged(f);
    f->non_compliant_since_ms = NOW - D;
}

#define G3 (NOW + 3 * D) /* grace ends, counted from now */
#define NEXT_OK (NOW - H + 72 * H)

static const struct row rows[] = {
    /* name, rules, facts, override, state, reason, grace, since, next */
    {"compliant", STRICT, m_none, COMPLIANCE_OVR_NONE, COMPLIANCE_ALLOW, "compliant", false, 0,
     NEXT_OK},
    {"ios 16 equals 16.0", STRICT, m_ios_16, COMPLIANCE_OVR_NONE, COMPLIANCE_ALLOW, "compliant",
     false, 0, NEXT_OK},
    {"android 12.0 vs min 12, case", STRICT, m_android_12, COMPLIANCE_OVR_NONE, COMPLIANCE_ALLOW,
     "compliant", false, 0, NEXT_OK},
    {"os without a minimum", STRICT, m_other_os, COMPLIANCE_OVR_NONE, COMPLIANCE_ALLOW, "compliant",
     false, 0, NEXT_OK},
    {"fifth device ok", STRICT, m_fifth, COMPLIANCE_OVR_NONE, COMPLIANCE_ALLOW, "compliant", false,
     0, NEXT_OK},
    {"sixth device blocked", STRICT, m_sixth, COMPLIANCE_OVR_NONE, COMPLIANCE_BLOCK,
     "too-many-devices", false, 0, 0},
    {"jailbroken enters grace", STRICT, m_jailbroken, COMPLIANCE_OVR_NONE, COMPLIANCE_ALLOW,
     "jailbroken", true, NOW, G3},
    {"jailbreak unknown", STRICT, m_jail_unknown, COMPLIANCE_OVR_NONE, COMPLIANCE_ALLOW,
     "jailbreak-unknown", true, NOW, G3},
    {"no passcode", STRICT, m_nopass, COMPLIANCE_OVR_NONE, COMPLIANCE_ALLOW, "no-passcode", true,
     NOW, G3},
    {"passcode unknown", STRICT, m_pass_unknown, COMPLIANCE_OVR_NONE, COMPLIANCE_ALLOW,
     "passcode-unknown", true, NOW, G3},
    {"not encrypted", STRICT, m_noenc, COMPLIANCE_OVR_NONE, COMPLIANCE_ALLOW, "not-encrypted", true,
     NOW, G3},
    {"encryption unknown", STRICT, m_enc_unknown, COMPLIANCE_OVR_NONE, COMPLIANCE_ALLOW,
     "encryption-unknown", true, NOW, G3},
    {"first failure wins", STRICT, m_two_failures, COMPLIANCE_OVR_NONE, COMPLIANCE_ALLOW,
     "no-passcode", true, NOW, G3},
    {"ios too old", STRICT, m_old_ios, COMPLIANCE_OVR_NONE, COMPLIANCE_ALLOW, "os-too-old", true,
     NOW, G3},
    {"android too old", STRICT, m_android_11, COMPLIANCE_OVR_NONE, COMPLIANCE_ALLOW, "os-too-old",
     true, NOW, G3},
    {"garbage version", STRICT, m_garbage_ver, COMPLIANCE_OVR_NONE, COMPLIANCE_ALLOW,
     "os-version-unparsed", true, NOW, G3},
    {"no version", STRICT, m_no_ver, COMPLIANCE_OVR_NONE, COMPLIANCE_ALLOW, "os-version-unknown",
     true, NOW, G3},
    {"no os", STRICT, m_no_os, COMPLIANCE_OVR_NONE, COMPLIANCE_ALLOW, "os-unknown", true, NOW, G3},
    {"eas-reported os only: unverified", STRICT, m_eas_only_new, COMPLIANCE_OVR_NONE,
     COMPLIANCE_ALLOW, "os-unverified", true, NOW, G3},
    {"eas-reported os as fallback", EAS_FALLBACK, m_eas_only_new, COMPLIANCE_OVR_NONE,
     COMPLIANCE_ALLOW, "compliant", false, 0, NEXT_OK},
    {"eas-reported fallback too old", EAS_FALLBACK, m_eas_only_old, COMPLIANCE_OVR_NONE,
     COMPLIANCE_ALLOW, "os-too-old", true, NOW, G3},
    {"forged newer os never overrides", STRICT, m_eas_newer_than_checkin, COMPLIANCE_OVR_NONE,
     COMPLIANCE_ALLOW, "os-too-old", true, NOW, G3},
    {"forged newer os never overrides, fallback", EAS_FALLBACK, m_eas_newer_than_checkin,
     COMPLIANCE_OVR_NONE, COMPLIANCE_ALLOW, "os-too-old", true, NOW, G3},
    {"forged older os never overrides", EAS_FALLBACK, m_eas_older_than_checkin, COMPLIANCE_OVR_NONE,
     COMPLIANCE_ALLOW, "compliant", false, 0, NEXT_OK},
    {"no mixing of sources", EAS_FALLBACK, m_checkin_no_ver_eas_ver, COMPLIANCE_OVR_NONE,
     COMPLIANCE_ALLOW, "os-version-unknown", true, NOW, G3},
    {"checkin stale at exactly max age", STRICT, m_stale, COMPLIANCE_OVR_NONE, COMPLIANCE_ALLOW,
     "checkin-stale", true, NOW, G3},
    {"never checked in", STRICT, m_never, COMPLIANCE_OVR_NONE, COMPLIANCE_ALLOW, "never-checked-in",
     true, NOW, G3},
    {"grace continues from the mark", STRICT, m_jb_grace_started, COMPLIANCE_OVR_NONE,
     COMPLIANCE_ALLOW, "jailbroken", true, NOW - 2 * D, NOW + D},
    {"grace over blocks", STRICT, m_jb_grace_over, COMPLIANCE_OVR_NONE, COMPLIANCE_BLOCK,
     "jailbroken", false, NOW - 3 * D, 0},
    {"future mark clamps to now", STRICT, m_jb_future_mark, COMPLIANCE_OVR_NONE, COMPLIANCE_ALLOW,
     "jailbroken", true, NOW, G3},
    {"fixed device clears mark", STRICT, m_fixed_after_mark, COMPLIANCE_OVR_NONE, COMPLIANCE_ALLOW,
     "compliant", false, 0, NEXT_OK},
    {"zero grace blocks at once", ZERO_GRACE, m_jailbroken, COMPLIANCE_OVR_NONE, COMPLIANCE_BLOCK,
     "jailbroken", false, NOW, 0},
    {"unmanaged blocked", STRICT, m_unmanaged, COMPLIANCE_OVR_NONE, COMPLIANCE_BLOCK, "unmanaged",
     false, 0, 0},
    {"unmanaged mark dropped", STRICT, m_unmanaged_marked, COMPLIANCE_OVR_NONE, COMPLIANCE_BLOCK,
     "unmanaged", false, 0, 0},
    {"unmanaged allowed", UNMANAGED_ALLOW, m_unmanaged, COMPLIANCE_OVR_NONE, COMPLIANCE_ALLOW,
     "unmanaged-allowed", false, 0, 0},
    {"unmanaged quarantined", UNMANAGED_QUAR, m_unmanaged, COMPLIANCE_OVR_NONE,
     COMPLIANCE_QUARANTINE, "unmanaged", false, 0, 0},
    {"absent section: managed passes", ABSENT, m_jailbroken, COMPLIANCE_OVR_NONE, COMPLIANCE_ALLOW,
     "compliant", false, 0, 0},
    {"absent section: unmanaged blocked", ABSENT, m_unmanaged, COMPLIANCE_OVR_NONE,
     COMPLIANCE_BLOCK, "unmanaged", false, 0, 0},
    {"admin allow beats jailbreak", STRICT, m_jb_grace_over, COMPLIANCE_OVR_ALLOW, COMPLIANCE_ALLOW,
     "admin-allow", false, NOW - 3 * D, 0},
    {"admin allow beats unmanaged", STRICT, m_unmanaged, COMPLIANCE_OVR_ALLOW, COMPLIANCE_ALLOW,
     "admin-allow", false, 0, 0},
    {"admin block beats compliant", STRICT, m_none, COMPLIANCE_OVR_BLOCK, COMPLIANCE_BLOCK,
     "admin-block", false, 0, 0},
    {"admin quarantine", STRICT, m_none, COMPLIANCE_OVR_QUARANTINE, COMPLIANCE_QUARANTINE,
     "admin-quarantine", false, 0, 0},
    {"admin wipe", STRICT, m_sixth, COMPLIANCE_OVR_WIPE, COMPLIANCE_WIPE, "admin-wipe", false, 0,
     0},
    {"autoblock until its end", STRICT, m_autoblock, COMPLIANCE_OVR_NONE, COMPLIANCE_BLOCK,
     "autoblock:SyncCommands", false, 0, NOW + H},
    {"autoblock of an unmanaged device", UNMANAGED_ALLOW, m_autoblock_unmanaged,
     COMPLIANCE_OVR_NONE, COMPLIANCE_BLOCK, "autoblock:SyncCommands", false, 0, NOW + H},
    {"autoquarantine until its end", STRICT, m_autoquarantine, COMPLIANCE_OVR_NONE,
     COMPLIANCE_QUARANTINE, "autoquarantine:CommandFrequency", false, 0, NOW + H},
    {"admin allow beats autoquarantine", STRICT, m_autoquarantine, COMPLIANCE_OVR_ALLOW,
     COMPLIANCE_ALLOW, "admin-allow", false, 0, 0},
    {"autoblock over", STRICT, m_autoblock_over, COMPLIANCE_OVR_NONE, COMPLIANCE_ALLOW, "compliant",
     false, 0, NEXT_OK},
    {"admin allow beats autoblock", STRICT, m_autoblock, COMPLIANCE_OVR_ALLOW, COMPLIANCE_ALLOW,
     "admin-allow", false, 0, 0},
    {"admin quarantine beats autoblock", STRICT, m_autoblock, COMPLIANCE_OVR_QUARANTINE,
     COMPLIANCE_QUARANTINE, "admin-quarantine", false, 0, 0},
};

static void rules_for(enum rules_kind k, struct compliance_rules *r)
{
    strict_rules(r);
    switch (k) {
    case STRICT:
        break;
    case ABSENT:
        compliance_rules_init(r);
        break;
    case ZERO_GRACE:
        r->grace_period_ms = 0;
        break;
    case UNMANAGED_ALLOW:
        r->unmanaged = COMPLIANCE_ALLOW;
        break;
    case UNMANAGED_QUAR:
        r->unmanaged = COMPLIANCE_QUARANTINE;
        break;
    case EAS_FALLBACK:
        r->os_source = COMPLIANCE_OS_EAS_FALLBACK;
        break;
    }
}

static void test_table(void **state)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *w = &rows[i];
        struct compliance_rules r;
        rules_for(w->rules, &r);
        struct compliance_facts f = good();
        w->mutate(&f);
        struct compliance_result out;
        compliance_evaluate(&r, &f, w->ovr, NOW, &out);
        if (out.state != w->want_state || strcmp(out.reason, w->want_reason) != 0 ||
            out.in_grace != w->want_grace || out.non_compliant_since_ms != w->want_since ||
            out.next_eval_ms != w->want_next)
            fail_msg("row '%s': got %s/%s grace=%d since=%lld next=%lld, want %s/%s grace=%d "
                     "since=%lld next=%lld",
                     w->name, compliance_state_name(out.state), out.reason, out.in_grace,
                     (long long)out.non_compliant_since_ms, (long long)out.next_eval_ms,
                     compliance_state_name(w->want_state), w->want_reason, w->want_grace,
                     (long long)w->want_since, (long long)w->want_next);
    }
}

/* A device that turns jailbroken walks through grace into block as time passes. */
static void test_grace_timeline(void **state)
{
    struct compliance_rules r;
    strict_rules(&r);
    struct compliance_facts f = good();
    f.jailbroken = COMPLIANCE_YES;
    struct compliance_result out;
    int64_t t = NOW;
    compliance_evaluate(&r, &f, COMPLIANCE_OVR_NONE, t, &out);
    assert_int_equal(out.state, COMPLIANCE_ALLOW);
    assert_true(out.in_grace);
    f.non_compliant_since_ms = out.non_compliant_since_ms;
    /* The timer the core arms fires at next_eval_ms: then it blocks. */
    int64_t fire = out.next_eval_ms;
    compliance_evaluate(&r, &f, COMPLIANCE_OVR_NONE, fire - 1, &out);
    assert_int_equal(out.state, COMPLIANCE_ALLOW);
    compliance_evaluate(&r, &f, COMPLIANCE_OVR_NONE, fire, &out);
    assert_int_equal(out.state, COMPLIANCE_BLOCK);
    assert_string_equal(out.reason, "jailbroken");
    /* An admin allow keeps the mark, so a reset does not grant a fresh grace period. */
    compliance_evaluate(&r, &f, COMPLIANCE_OVR_ALLOW, fire, &out);
    assert_int_equal(out.state, COMPLIANCE_ALLOW);
    assert_int_equal(out.non_compliant_since_ms, NOW);
    compliance_evaluate(&r, &f, COMPLIANCE_OVR_NONE, fire + 1, &out);
    assert_int_equal(out.state, COMPLIANCE_BLOCK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ver_parse_good), cmocka_unit_test(test_ver_parse_bad),
        cmocka_unit_test(test_ver_cmp),        cmocka_unit_test(test_names),
        cmocka_unit_test(test_table),          cmocka_unit_test(test_grace_timeline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
