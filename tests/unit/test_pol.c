/* test_pol: the decision as tables (readable rows, then every combination of
 * user agent, static list, rule, device state, staleness, bound user and
 * unknown_devices checked against an oracle written from pol.h's order),
 * the glob matcher, user matching, and snapshot reference counting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/pol.h"

static const char fixture[] = "unknown_devices: %s\n"
                              "user_agents:\n"
                              "  allow: [\"Apple-iPhone*\", \"Android-Mail*\", \"Outlook-*\"]\n"
                              "  block: [\"Outlook-Evil*\"]\n"
                              "devices: { allow: [\"GOODDEV\"], block: [\"BADDEV\"] }\n"
                              "device_rules:\n"
                              "  - { match: { device_type: \"WindowsMail*\" }, action: block }\n"
                              "  - match: { device_model: \"SM-G9*\", device_os: \"Android 9*\" }\n"
                              "    action: quarantine\n"
                              "  - { match: { user: \"vip*\" }, action: allow }\n"
                              "  - { match: { user: \"EXAMPLE\\\\mallory\" }, action: block }\n"
                              "  - { match: { user: \"*@evil.example\" }, action: block }\n"
                              "ews: { allow_subscriptions: true }\n";

static struct pol_policy *load_fixture(const char *unknown)
{
    char buf[2048];
    char err[512] = "";
    struct pol_policy *p = NULL;
    snprintf(buf, sizeof(buf), fixture, unknown);
    if (pol_load_buf("fixture.yaml", buf, strlen(buf), &p, err, sizeof(err)))
        fail_msg("fixture: %s", err);
    return p;
}

struct row {
    const char *ua, *id, *type, *model, *os, *user, *domain;
    int state; /* -1 = no devstate at all */
    const char *bound;
    bool stale;
    enum pol_action want;
    const char *reason;
};

#define U POL_DEV_UNKNOWN
#define A POL_DEV_ALLOW
#define B POL_DEV_BLOCK
#define Q POL_DEV_QUARANTINE
#define W POL_DEV_WIPE
#define IPH "Apple-iPhone9C1/1402.100"

static const struct row rows[] = {
    /* user agents */
    {"Outlook-Evil/1", "GOODDEV", "iPhone", 0, 0, "alice", 0, A, 0, 0, POL_BLOCK, "ua-blocked"},
    {"outlook-evil/1", 0, 0, 0, 0, 0, 0, -1, 0, 0, POL_BLOCK, "ua-blocked"},
    {"Thunderbird", "GOODDEV", 0, 0, 0, 0, 0, A, 0, 0, POL_BLOCK, "ua-not-allowed"},
    {NULL, "GOODDEV", 0, 0, 0, 0, 0, A, 0, 0, POL_BLOCK, "ua-not-allowed"},
    {"", "GOODDEV", 0, 0, 0, 0, 0, A, 0, 0, POL_BLOCK, "ua-not-allowed"},
    {"apple-iphone/1", 0, 0, 0, 0, 0, 0, A, 0, 0, POL_ALLOW, "state-allow"},
    /* static lists win over rules and state, also over a stale store */
    {IPH, "BADDEV", "iPhone", 0, 0, "vip1", 0, A, 0, 0, POL_BLOCK, "device-blocked"},
    {IPH, "baddev", 0, 0, 0, 0, 0, -1, 0, 0, POL_BLOCK, "device-blocked"},
    {IPH, "gooddev", "WindowsMail", 0, 0, 0, 0, B, 0, true, POL_ALLOW, "device-allowed"},
    {IPH, "GOODDEV", 0, 0, 0, "bob", 0, W, "alice", 0, POL_ALLOW, "device-allowed"},
    /* rules */
    {IPH, "D1", "WindowsMail10", 0, 0, 0, 0, A, 0, 0, POL_BLOCK, "rule:1"},
    {IPH, "D1", "windowsmail", 0, 0, 0, 0, U, 0, 0, POL_BLOCK, "rule:1"},
    {IPH, "D1", "Android", "SM-G960F", "Android 9.0.0", 0, 0, A, 0, 0, POL_QUARANTINE, "rule:2"},
    {IPH, "D1", "Android", "SM-G960F", "Android 10", 0, 0, A, 0, 0, POL_ALLOW, "state-allow"},
    {IPH, "D1", "Android", "SM-G960F", NULL, 0, 0, A, 0, 0, POL_ALLOW, "state-allow"},
    {IPH, "D1", 0, 0, 0, "vip7", 0, U, 0, 0, POL_ALLOW, "rule:3"},
    {IPH, "D1", 0, 0, 0, "vip7", 0, -1, 0, 0, POL_ALLOW, "rule:3"},
    {IPH, "D1", 0, 0, 0, "vip7", 0, B, 0, 0, POL_BLOCK, "state-block"}, /* allow rule < state */
    {IPH, "D1", 0, 0, 0, "vip7", 0, U, 0, true, POL_BLOCK, "state-stale"},
    {IPH, "D1", 0, 0, 0, "mallory", "EXAMPLE", A, 0, 0, POL_BLOCK, "rule:4"},
    {IPH, "D1", 0, 0, 0, "EXAMPLE\\Mallory", 0, A, 0, 0, POL_BLOCK, "rule:4"},
    {IPH, "D1", 0, 0, 0, "mallory", 0, A, 0, 0, POL_ALLOW, "state-allow"},
    {IPH, "D1", 0, 0, 0, "eve@EVIL.example", 0, A, 0, 0, POL_BLOCK, "rule:5"},
    {IPH, "D1", 0, 0, 0, "eve", "evil.example", A, 0, 0, POL_BLOCK, "rule:5"},
    /* device state */
    {IPH, "D1", "iPhone", 0, 0, "alice", 0, B, 0, 0, POL_BLOCK, "state-block"},
    {IPH, "D1", "iPhone", 0, 0, "alice", 0, Q, 0, 0, POL_QUARANTINE, "state-quarantine"},
    {IPH, "D1", "iPhone", 0, 0, "alice", 0, W, 0, 0, POL_WIPE, "state-wipe"},
    {IPH, "D1", "iPhone", 0, 0, "alice", 0, A, "", 0, POL_ALLOW, "state-allow"},
    {IPH, "D1", "iPhone", 0, 0, "alice", 0, A, "ALICE", 0, POL_ALLOW, "state-allow"},
    {IPH, "D1", "iPhone", 0, 0, "alice", "example.com", A, "alice@example.com", 0, POL_ALLOW,
     "state-allow"},
    {IPH, "D1", "iPhone", 0, 0, "alice", "EXAMPLE", A, "alice@example.com", 0, POL_ALLOW,
     "state-allow"},
    {IPH, "D1", "iPhone", 0, 0, "alice", "other.org", A, "alice@example.com", 0, POL_BLOCK,
     "user-mismatch"},
    {IPH, "D1", "iPhone", 0, 0, "bob", 0, A, "alice", 0, POL_BLOCK, "user-mismatch"},
    {IPH, "D1", "iPhone", 0, 0, NULL, 0, A, "alice", 0, POL_BLOCK, "user-mismatch"},
    {IPH, "D1", "iPhone", 0, 0, "bob", 0, W, "alice", 0, POL_BLOCK, "user-mismatch"},
    {IPH, "D1", "iPhone", 0, 0, "bob", 0, Q, "alice", 0, POL_BLOCK, "user-mismatch"},
    {IPH, "D1", "iPhone", 0, 0, "bob", 0, B, "alice", 0, POL_BLOCK, "state-block"},
    {IPH, "D1", "iPhone", 0, 0, "alice", 0, A, 0, true, POL_BLOCK, "state-stale"},
    /* unknown devices: the fixture says block */
    {IPH, "D1", "iPhone", 0, 0, "alice", 0, U, 0, 0, POL_BLOCK, "unknown-device"},
    {IPH, "D1", "iPhone", 0, 0, "alice", 0, -1, 0, 0, POL_BLOCK, "unknown-device"},
    {IPH, NULL, NULL, 0, 0, NULL, 0, -1, 0, 0, POL_BLOCK, "unknown-device"},
};

static void test_rows(void **state)
{
    struct pol_policy *p = load_fixture("block");
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *r = &rows[i];
        struct pol_request req = {.user = r->user,
                                  .domain = r->domain,
                                  .device_id = r->id,
                                  .device_type = r->type,
                                  .device_model = r->model,
                                  .device_os = r->os,
                                  .user_agent = r->ua,
                                  .command = -1};
        struct pol_devstate st = {.state = r->state < 0 ? U : (enum pol_devstate_kind)r->state,
                                  .user = r->bound,
                                  .stale = r->stale};
        struct pol_decision d;
        assert_int_equal(pol_decide(p, &req, r->state < 0 ? NULL : &st, 0, &d), 0);
        if (d.action != r->want || strcmp(d.reason, r->reason) != 0)
            fail_msg("row %zu: got %s %s, want %s %s", i, pol_action_name(d.action), d.reason,
                     pol_action_name(r->want), r->reason);
    }
    assert_true(p->ews.allow_subscriptions);
    pol_unref(p);
}

/* ---- every combination, against an oracle ---- */

enum ua_kind { UA_BLOCKED, UA_ALLOWED, UA_OTHER, UA_NONE, UA_N };
enum id_kind { ID_BLOCKED, ID_ALLOWED, ID_OTHER, ID_NONE, ID_N };
enum rule_kind { R_NONE, R_BLOCK, R_QUAR, R_ALLOW, R_N };
enum bound_kind { BD_NONE, BD_SAME, BD_OTHER, BD_N };

struct expect {
    enum pol_action a;
    const char *reason;
};

static struct expect oracle(int ua, int id, int rule, int stk, bool stale, int bound,
                            enum pol_action unknown)
{
    static const char *const rule_reason[] = {NULL, "rule:1", "rule:2", "rule:3"};
    if (ua == UA_BLOCKED)
        return (struct expect){POL_BLOCK, "ua-blocked"};
    if (ua != UA_ALLOWED)
        return (struct expect){POL_BLOCK, "ua-not-allowed"};
    if (id == ID_BLOCKED)
        return (struct expect){POL_BLOCK, "device-blocked"};
    if (id == ID_ALLOWED)
        return (struct expect){POL_ALLOW, "device-allowed"};
    if (rule == R_BLOCK)
        return (struct expect){POL_BLOCK, rule_reason[rule]};
    if (rule == R_QUAR)
        return (struct expect){POL_QUARANTINE, rule_reason[rule]};
    if (stale)
        return (struct expect){POL_BLOCK, "state-stale"};
    if (stk == B)
        return (struct expect){POL_BLOCK, "state-block"};
    if (stk != U && bound == BD_OTHER)
        return (struct expect){POL_BLOCK, "user-mismatch"};
    if (stk == W)
        return (struct expect){POL_WIPE, "state-wipe"};
    if (stk == Q)
        return (struct expect){POL_QUARANTINE, "state-quarantine"};
    if (stk == A)
        return (struct expect){POL_ALLOW, "state-allow"};
    if (rule == R_ALLOW)
        return (struct expect){POL_ALLOW, rule_reason[rule]};
    return (struct expect){unknown, "unknown-device"};
}

static void test_combinations(void **state)
{
    static const char *const uas[] = {"Outlook-Evil/2", "Android-Mail/9", "Thunderbird", NULL};
    static const char *const ids[] = {"BadDev", "GoodDev", "ABC123", NULL};
    static const char *const unknown_names[] = {"allow", "block", "quarantine"};
    static const enum pol_action unknown_acts[] = {POL_ALLOW, POL_BLOCK, POL_QUARANTINE};
    int checked = 0;
    for (int u = 0; u < 3; u++) {
        struct pol_policy *p = load_fixture(unknown_names[u]);
        for (int ua = 0; ua < UA_N; ua++)
            for (int id = 0; id < ID_N; id++)
                for (int rule = 0; rule < R_N; rule++)
                    for (int stk = U; stk <= W; stk++)
                        for (int stale = 0; stale < 2; stale++)
                            for (int bound = 0; bound < BD_N; bound++) {
                                struct pol_request req = {
                                    .user_agent = uas[ua],
                                    .device_id = ids[id],
                                    .user = rule == R_ALLOW ? "vip9" : "carol",
                                    .device_type = rule == R_BLOCK ? "WindowsMail" : "iPhone",
                                    .device_model = rule == R_QUAR ? "SM-G975" : "iPhone12,1",
                                    .device_os = rule == R_QUAR ? "Android 9" : "iOS 16.1",
                                    .command = 1,
                                    .proto_version = 161};
                                const char *bounds[] = {NULL, rule == R_ALLOW ? "VIP9" : "Carol",
                                                        "dave"};
                                struct pol_devstate st = {.state = (enum pol_devstate_kind)stk,
                                                          .user = bounds[bound],
                                                          .stale = stale};
                                struct pol_decision d;
                                assert_int_equal(pol_decide(p, &req, &st, 0, &d), 0);
                                struct expect e =
                                    oracle(ua, id, rule, stk, stale, bound, unknown_acts[u]);
                                if (d.action != e.a || strcmp(d.reason, e.reason) != 0)
                                    fail_msg("u=%d ua=%d id=%d rule=%d st=%d stale=%d bound=%d: "
                                             "got %s %s, want %s %s",
                                             u, ua, id, rule, stk, stale, bound,
                                             pol_action_name(d.action), d.reason,
                                             pol_action_name(e.a), e.reason);
                                checked++;
                            }
        pol_unref(p);
    }
    assert_int_equal(checked, 3 * UA_N * ID_N * R_N * 5 * 2 * BD_N);
}

/* ---- identity: every combination with the credential kinds ---- */

enum cred_kind { CR_NONE, CR_VERIFIED, CR_HANDSHAKE, CR_UNV_CERT, CR_UNV_NOCERT, CR_N };

static struct pol_policy *load_identity(const char *unknown, const char *mode)
{
    char buf[2048], extra[128];
    char err[512] = "";
    struct pol_policy *p = NULL;
    snprintf(buf, sizeof(buf), fixture, unknown);
    snprintf(extra, sizeof(extra), "identity: { unverifiable: %s }\n", mode);
    strncat(buf, extra, sizeof(buf) - strlen(buf) - 1);
    if (pol_load_buf("fixture.yaml", buf, strlen(buf), &p, err, sizeof(err)))
        fail_msg("fixture: %s", err);
    return p;
}

/* pol.h's order with step 3b and the handshake rule, written out again
 * (user agent and static lists are covered above and come first). The
 * request's user is "carol" (or "vip9" for the allow rule); BD_SAME binds
 * the device to that user, BD_OTHER to "dave"; a certificate (CR_UNV_CERT)
 * names the request's would-be user. */
static struct expect oracle_id(int rule, int stk, int bound, int cred, enum pol_unverifiable mode,
                               enum pol_action unknown)
{
    static const char *const rule_reason[] = {NULL, "rule:1", "rule:2", "rule:3"};
    if (rule == R_BLOCK)
        return (struct expect){POL_BLOCK, rule_reason[rule]};
    if (rule == R_QUAR)
        return (struct expect){POL_QUARANTINE, rule_reason[rule]};
    bool is_bound = stk != U && bound != BD_NONE;
    bool unverifiable = cred == CR_UNV_CERT || cred == CR_UNV_NOCERT;
    if (unverifiable) {
        if (mode == POL_UNV_BLOCK)
            return (struct expect){POL_BLOCK, "identity-unverifiable"};
        bool cert_vouches =
            mode == POL_UNV_ALLOW_CERT_BOUND && cred == CR_UNV_CERT && bound == BD_SAME;
        if (is_bound && !cert_vouches)
            return (struct expect){POL_BLOCK, "identity-unverifiable"};
    }
    if (stk == B)
        return (struct expect){POL_BLOCK, "state-block"};
    if (stk != U) {
        if (cred == CR_HANDSHAKE)
            return (struct expect){POL_ALLOW, "auth-handshake"};
        if (bound == BD_OTHER)
            return (struct expect){POL_BLOCK, "user-mismatch"};
        if (stk == W)
            return (struct expect){POL_WIPE, "state-wipe"};
        if (stk == Q)
            return (struct expect){POL_QUARANTINE, "state-quarantine"};
        return (struct expect){POL_ALLOW, "state-allow"};
    }
    if (rule == R_ALLOW && !unverifiable && cred != CR_HANDSHAKE)
        return (struct expect){POL_ALLOW, rule_reason[rule]};
    if (cred == CR_HANDSHAKE && unknown != POL_BLOCK)
        return (struct expect){POL_ALLOW, "auth-handshake"};
    return (struct expect){unknown, "unknown-device"};
}

static void test_identity_combinations(void **state)
{
    static const char *const unknown_names[] = {"allow", "block", "quarantine"};
    static const enum pol_action unknown_acts[] = {POL_ALLOW, POL_BLOCK, POL_QUARANTINE};
    static const char *const modes[] = {"block", "allow_unbound", "allow_cert_bound"};
    int checked = 0;
    for (int u = 0; u < 3; u++)
        for (int m = 0; m < 3; m++) {
            struct pol_policy *p = load_identity(unknown_names[u], modes[m]);
            assert_int_equal(p->identity.unverifiable, (enum pol_unverifiable)m);
            for (int rule = 0; rule < R_N; rule++)
                for (int stk = U; stk <= W; stk++)
                    for (int bound = 0; bound < BD_N; bound++)
                        for (int cred = 0; cred < CR_N; cred++) {
                            const char *name = rule == R_ALLOW ? "vip9" : "carol";
                            bool unv = cred == CR_UNV_CERT || cred == CR_UNV_NOCERT;
                            static const enum pol_ident kinds[] = {
                                POL_ID_NONE, POL_ID_VERIFIED, POL_ID_HANDSHAKE, POL_ID_UNVERIFIABLE,
                                POL_ID_UNVERIFIABLE};
                            struct pol_request req = {
                                .ident = kinds[cred],
                                .cert_user = cred == CR_UNV_CERT ? name : NULL,
                                /* no readable user for these three */
                                .user = unv || cred == CR_HANDSHAKE ? NULL : name,
                                .user_agent = "Android-Mail/9",
                                .device_id = "ABC123",
                                .device_type = rule == R_BLOCK ? "WindowsMail" : "iPhone",
                                .device_model = rule == R_QUAR ? "SM-G975" : "iPhone12,1",
                                .device_os = rule == R_QUAR ? "Android 9" : "iOS 16.1",
                                .command = 1};
                            const char *bounds[] = {NULL, name, "dave"};
                            struct pol_devstate st = {.state = (enum pol_devstate_kind)stk,
                                                      .user = bounds[bound]};
                            struct pol_decision d;
                            assert_int_equal(pol_decide(p, &req, &st, 0, &d), 0);
                            struct expect e = oracle_id(rule, stk, bound, cred,
                                                        (enum pol_unverifiable)m, unknown_acts[u]);
                            if (d.action != e.a || strcmp(d.reason, e.reason) != 0)
                                fail_msg("u=%d mode=%s rule=%d st=%d bound=%d cred=%d: got %s "
                                         "%s, want %s %s",
                                         u, modes[m], rule, stk, bound, cred,
                                         pol_action_name(d.action), d.reason, pol_action_name(e.a),
                                         e.reason);
                            checked++;
                        }
            pol_unref(p);
        }
    assert_int_equal(checked, 9 * R_N * 5 * BD_N * CR_N);
}

static void test_identity_section(void **state)
{
    char err[512];
    struct pol_policy *p = NULL;
    static const char ok[] = "identity:\n"
                             "  unverifiable: allow_cert_bound\n"
                             "  bearer: { jwks: keys/jwks.json, issuer: \"https://idp\", "
                             "audience: eas, leeway: 2m }\n";
    assert_int_equal(pol_load_buf("/etc/easgate/policy.yaml", ok, strlen(ok), &p, err, sizeof(err)),
                     0);
    assert_string_equal(p->identity.bearer.jwks, "/etc/easgate/keys/jwks.json");
    assert_string_equal(p->identity.bearer.issuer, "https://idp");
    assert_int_equal(p->identity.bearer.leeway_ms, 120000);
    pol_unref(p);
    assert_int_equal(pol_load_buf("p.yaml", "{}", 2, &p, err, sizeof(err)), 0);
    assert_int_equal(p->identity.unverifiable, POL_UNV_ALLOW_UNBOUND); /* the default */
    assert_null(p->identity.bearer.jwks);
    assert_false(p->identity.bearer.trust_unverified);
    pol_unref(p);
    struct {
        const char *y, *want;
    } bad[] = {
        {"identity: { unverifiable: maybe }", "p.yaml:1:27"},
        {"identity: { bearer: { jwks: j.json, trust_unverified: true } }", "trust_unverified"},
        {"identity: { bearer: { issuer: x } }", "only with jwks"},
        {"identity: { unverifyable: block }", "unverifiable"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_not_equal(
            pol_load_buf("p.yaml", bad[i].y, strlen(bad[i].y), &p, err, sizeof(err)), 0);
        if (!strstr(err, bad[i].want))
            fail_msg("'%s': error '%s' lacks '%s'", bad[i].y, err, bad[i].want);
    }
}

static void test_defaults_and_bad_args(void **state)
{
    struct pol_policy *p;
    char err[256];
    assert_int_equal(pol_load_buf("empty.yaml", "", 0, &p, err, sizeof(err)), 0);
    assert_int_equal(p->unknown_devices, POL_ALLOW);
    assert_int_equal(p->n_rules, 0);
    assert_false(p->ews.allow_subscriptions);
    assert_false(p->compliance.present);
    struct pol_request req = {.device_id = "X", .user_agent = "Anything/1"};
    struct pol_decision d;
    assert_int_equal(pol_decide(p, &req, NULL, 0, &d), 0);
    assert_int_equal(d.action, POL_ALLOW);
    assert_string_equal(d.reason, "unknown-device");
    assert_int_equal(pol_decide(NULL, &req, NULL, 0, &d), -EINVAL);
    assert_int_equal(d.action, POL_BLOCK);
    assert_int_equal(pol_decide(p, NULL, NULL, 0, &d), -EINVAL);
    assert_int_equal(pol_decide(p, &req, NULL, 0, NULL), -EINVAL);
    pol_unref(p);
    pol_unref(NULL);
}

/* OPTIONS names no device or user: only the user-agent lists decide it,
 * whatever unknown_devices, the device lists and the rules say. */
static void test_options(void **state)
{
    struct pol_policy *p = load_fixture("block");
    struct pol_decision d;
    static const struct {
        const char *ua;
        enum pol_action want;
        const char *reason;
    } opt[] = {
        {IPH, POL_ALLOW, "ua-allowed"},
        {"outlook-EVIL/2", POL_BLOCK, "ua-blocked"},
        {"Thunderbird", POL_BLOCK, "ua-not-allowed"},
        {"", POL_BLOCK, "ua-not-allowed"},
        {NULL, POL_BLOCK, "ua-not-allowed"},
    };
    for (size_t i = 0; i < sizeof(opt) / sizeof(opt[0]); i++) {
        assert_int_equal(pol_decide_options(p, opt[i].ua, &d), 0);
        assert_int_equal(d.action, opt[i].want);
        assert_string_equal(d.reason, opt[i].reason);
        assert_int_equal(d.rule, 0);
    }
    pol_unref(p);
    /* without user-agent lists everything is allowed */
    char err[256];
    assert_int_equal(pol_load_buf("e.yaml", "unknown_devices: block\n", 23, &p, err, sizeof(err)),
                     0);
    assert_int_equal(pol_decide_options(p, NULL, &d), 0);
    assert_int_equal(d.action, POL_ALLOW);
    assert_string_equal(d.reason, "ua-allowed");
    assert_int_equal(pol_decide_options(NULL, IPH, &d), -EINVAL);
    assert_int_equal(d.action, POL_BLOCK);
    assert_int_equal(pol_decide_options(p, IPH, NULL), -EINVAL);
    pol_unref(p);
}

static void test_glob(void **state)
{
    static const struct {
        const char *pat, *s;
        bool want;
    } g[] = {
        {"*", "", true},
        {"*", "anything", true},
        {"", "", true},
        {"", "x", false},
        {"abc", "ABC", true},
        {"abc", "abcd", false},
        {"a?c", "abc", true},
        {"a?c", "ac", false},
        {"Apple-*", "apple-iPhone/1", true},
        {"*iPhone*", "Apple-iPhone9C1", true},
        {"*iPhone", "Apple-iPhone9C1", false},
        {"a*b*c", "aXbYc", true},
        {"a*b*c", "aXbY", false},
        {"a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
        {"**", "x", true},
        {"?", "", false},
        {"*?", "", false},
        {"*?", "x", true},
    };
    for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++)
        if (pol_glob(g[i].pat, g[i].s) != g[i].want)
            fail_msg("glob '%s' on '%s' should be %d", g[i].pat, g[i].s, g[i].want);
}

static void test_user_match(void **state)
{
    static const struct {
        const char *bound, *user, *domain;
        bool want;
    } m[] = {
        {NULL, NULL, NULL, true},
        {"", "bob", NULL, true},
        {"alice", NULL, NULL, false},
        {"alice", "", NULL, false},
        {"alice", "ALICE", NULL, true},
        {"alice", "alice", "EXAMPLE", true},
        {"alice", "alicex", NULL, false},
        {"alice@example.com", "alice", NULL, true},
        {"alice@example.com", "alice", "example.com", true},
        {"alice@example.com", "alice", "EXAMPLE", true},
        {"alice@example.com", "alice", "OTHER", false},
        {"alice@example.com", "alice@example.org", NULL, false},
        {"EXAMPLE\\alice", "alice@example.com", NULL, true},
        {"EXAMPLE\\alice", "example\\Alice", NULL, true},
        {"EXAMPLE\\alice", "OTHER\\alice", NULL, false},
        {"EXAMPLE\\alice", "bob", "EXAMPLE", false},
    };
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
        if (pol_user_match(m[i].bound, m[i].user, m[i].domain) != m[i].want)
            fail_msg("row %zu: bound '%s' user '%s' domain '%s' should be %d", i,
                     m[i].bound ? m[i].bound : "(null)", m[i].user ? m[i].user : "(null)",
                     m[i].domain ? m[i].domain : "(null)", m[i].want);
}

/* Rules with groups: the proxy (no in_groups) never matches them; the core
 * answers through in_groups, and an UNKNOWN answer fails closed (block and
 * quarantine rules match, allow rules do not), PENDING matches nothing. */
static int member_answer;
static int answer(const struct yt_strv *groups, void *arg)
{
    (void)arg;
    assert_int_equal(groups->n, 2);
    return member_answer;
}

static void test_group_rules(void **state)
{
    (void)state;
    static const char y[] =
        "unknown_devices: allow\n"
        "device_rules:\n"
        "  - { match: { groups: [sales, Contractors] }, action: block }\n"
        "  - { match: { device_type: iPhone, groups: [a, b] }, action: allow }\n";
    char err[512] = "";
    struct pol_policy *p = NULL;
    assert_int_equal(pol_load_buf("g.yaml", y, strlen(y), &p, err, sizeof(err)), 0);
    assert_non_null(pol_group_rule(p));
    assert_int_equal(pol_group_rule(p)->groups_line, 3);
    assert_int_equal(pol_group_rule(p)->groups_col, 24);
    struct pol_request rq = {.ident = POL_ID_VERIFIED, .user = "alice", .device_type = "iPhone"};
    /* a proxy: neither rule is its to match */
    assert_int_equal(pol_rule_first(p, &rq), -1);
    struct pol_decision d;
    pol_decide(p, &rq, NULL, 0, &d);
    assert_string_equal(d.reason, "unknown-device");
    rq.in_groups = answer;
    member_answer = POL_MEMBER_YES;
    assert_int_equal(pol_rule_first(p, &rq), 0);
    member_answer = POL_MEMBER_NO;
    assert_int_equal(pol_rule_first(p, &rq), -1);
    member_answer = POL_MEMBER_PENDING;
    assert_int_equal(pol_rule_first(p, &rq), -1);
    member_answer = POL_MEMBER_UNKNOWN; /* the block rule applies, the allow one never */
    assert_int_equal(pol_rule_first(p, &rq), 0);
    pol_unref(p);

    static const char y2[] = "device_rules:\n"
                             "  - { match: { groups: [a, b] }, action: allow }\n";
    assert_int_equal(pol_load_buf("g.yaml", y2, strlen(y2), &p, err, sizeof(err)), 0);
    member_answer = POL_MEMBER_UNKNOWN;
    assert_int_equal(pol_rule_first(p, &rq), -1);
    member_answer = POL_MEMBER_YES;
    assert_int_equal(pol_rule_first(p, &rq), 0);
    pol_unref(p);

    static const char bad[] = "device_rules:\n"
                              "  - { match: { groups: [] }, action: block }\n";
    assert_true(pol_load_buf("g.yaml", bad, strlen(bad), &p, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "g.yaml:2:"));
    assert_non_null(strstr(err, "groups"));
    static const char bad2[] = "device_rules:\n"
                               "  - { match: { groups: [\"\"] }, action: block }\n";
    assert_true(pol_load_buf("g.yaml", bad2, strlen(bad2), &p, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "empty entry"));
    static const char bad3[] = "device_rules:\n"
                               "  - { match: { group: [x] }, action: block }\n";
    assert_true(pol_load_buf("g.yaml", bad3, strlen(bad3), &p, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "groups"));
}

static void test_refcount(void **state)
{
    struct pol_policy *p = load_fixture("allow");
    assert_ptr_equal(pol_ref(p), p);
    pol_unref(p); /* back to one: still readable (ASan would say otherwise) */
    assert_int_equal(p->n_rules, 5);
    assert_string_equal(p->rules[4].reason, "rule:5");
    assert_int_equal(p->rules[1].line, 8);
    pol_unref(p);
}

static void test_big_device_lists(void **state)
{
    /* 20,000 blocked and 20,000 allowed ids, written in no particular order. */
    enum { N = 20000 };
    size_t cap = 64 + (size_t)N * 2 * 16;
    char *buf = malloc(cap);
    size_t o = (size_t)snprintf(buf, cap, "devices:\n  block:\n");
    for (int i = N - 1; i >= 0; i--)
        o += (size_t)snprintf(buf + o, cap - o, "    - B%07d\n", (i * 7919) % N);
    o += (size_t)snprintf(buf + o, cap - o, "  allow:\n");
    for (int i = 0; i < N; i++)
        o += (size_t)snprintf(buf + o, cap - o, "    - a%07d\n", i);
    struct pol_policy *p;
    char err[256] = "";
    if (pol_load_buf("big.yaml", buf, o, &p, err, sizeof(err)))
        fail_msg("%s", err);
    free(buf);
    static const struct {
        const char *id, *reason;
    } c[] = {
        {"B0000000", "device-blocked"}, {"b0019999", "device-blocked"},
        {"B0012345", "device-blocked"}, {"A0000000", "device-allowed"},
        {"a0019999", "device-allowed"}, {"B0020000", "unknown-device"},
        {"C0000001", "unknown-device"}, {"", "unknown-device"},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        struct pol_request req = {.device_id = c[i].id};
        struct pol_decision d;
        assert_int_equal(pol_decide(p, &req, NULL, 0, &d), 0);
        if (strcmp(d.reason, c[i].reason) != 0)
            fail_msg("%s: got %s, want %s", c[i].id, d.reason, c[i].reason);
    }
    pol_unref(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_combinations),
        cmocka_unit_test(test_identity_combinations),
        cmocka_unit_test(test_identity_section),
        cmocka_unit_test(test_defaults_and_bad_args),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_glob),
        cmocka_unit_test(test_user_match),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_group_rules),
        cmocka_unit_test(test_big_device_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
