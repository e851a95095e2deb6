/*
 * test_core_api: the admin API without sockets: route table and query
 * strings (common/httpd), accounts and tokens (core/auth), and requests
 * through core_api_handle against a real registry: authentication, roles,
 * validation that changes nothing, actions, check-ins, listing and paging.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/httpd.h"
#include "core/api.h"
#include "core/auth.h"
#include "core/eng.h"

/* ---- routes and query strings ---------------------------------------------- */

static const struct httpd_route routes[] = {
    {"GET", "/api/v1/devices"},
    {"GET", "/api/v1/devices/:id"},
    {"POST", "/api/v1/devices/:id/:action"},
    {"DELETE", "/api/v1/devices/:id"},
    {NULL, NULL},
};

static void test_routes(void **state)
{
    (void)state;
    char p[HTTPD_PARAMS_MAX][HTTPD_PARAM_LEN];
    assert_int_equal(httpd_route_match(routes, "GET", "/api/v1/devices", p), 0);
    assert_int_equal(httpd_route_match(routes, "GET", "/api/v1/devices/ABC", p), 1);
    assert_string_equal(p[0], "ABC");
    assert_int_equal(httpd_route_match(routes, "POST", "/api/v1/devices/A%42C/block", p), 2);
    assert_string_equal(p[0], "ABC");
    assert_string_equal(p[1], "block");
    assert_int_equal(httpd_route_match(routes, "DELETE", "/api/v1/devices/X", p), 3);
    /* wrong method on a known path; unknown paths; empty segments */
    assert_int_equal(httpd_route_match(routes, "PUT", "/api/v1/devices/X", p), -405);
    assert_int_equal(httpd_route_match(routes, "POST", "/api/v1/devices", p), -405);
    assert_int_equal(httpd_route_match(routes, "GET", "/api/v1/device", p), -404);
    assert_int_equal(httpd_route_match(routes, "GET", "/api/v1/devices/", p), -404);
    assert_int_equal(httpd_route_match(routes, "GET", "/api/v1/devices/X/", p), -404);
    assert_int_equal(httpd_route_match(routes, "GET", "/api/v1/devices//x", p), -404);
    assert_int_equal(httpd_route_match(routes, "GET", "", p), -404);
    assert_int_equal(httpd_route_match(routes, "GET", "api/v1/devices", p), -404);
    /* bad encodings and a NUL smuggled in are 400, not a crash */
    assert_int_equal(httpd_route_match(routes, "GET", "/api/v1/devices/%4", p), -400);
    assert_int_equal(httpd_route_match(routes, "GET", "/api/v1/devices/%zz", p), -400);
    assert_int_equal(httpd_route_match(routes, "GET", "/api/v1/devices/a%00b", p), -400);
    char long_path[600] = "/api/v1/devices/";
    memset(long_path + strlen(long_path), 'A', 300);
    assert_int_equal(httpd_route_match(routes, "GET", long_path, p), -400);
}

static void test_query(void **state)
{
    (void)state;
    char v[32];
    assert_int_equal(httpd_query_get("user=a%40b.c&limit=5", "user", v, sizeof(v)), 1);
    assert_string_equal(v, "a@b.c");
    assert_int_equal(httpd_query_get("user=a%40b.c&limit=5", "limit", v, sizeof(v)), 1);
    assert_string_equal(v, "5");
    assert_int_equal(httpd_query_get("user=a+b", "user", v, sizeof(v)), 1);
    assert_string_equal(v, "a b");
    assert_int_equal(httpd_query_get("users=x", "user", v, sizeof(v)), 0);
    assert_int_equal(httpd_query_get("", "user", v, sizeof(v)), 0);
    assert_int_equal(httpd_query_get("flag&x=1", "flag", v, sizeof(v)), 1);
    assert_string_equal(v, "");
    assert_int_equal(httpd_query_get("user=%g1", "user", v, sizeof(v)), -1);
    assert_int_equal(httpd_query_get("user=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "user", v, 8),
                     -1);
}

/* ---- a registry with accounts ------------------------------------------------- */

static char dir[64], path[128];
static struct core_reg *reg;
static struct core_api *api;
static struct core_auth *auth;
static char admin_tok[CORE_TOKEN_MAX], viewer_tok[CORE_TOKEN_MAX], device_tok[CORE_TOKEN_MAX];
static int64_t clock_ms = 1700000000000LL;

static int64_t test_now(void)
{
    return clock_ms;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/eg-api-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/reg.db", dir);
    char err[256];
    assert_int_equal(core_reg_open(path, &reg, err, sizeof(err)), 0);
    assert_int_equal(core_auth_open(reg, &auth), 0);
    char why[256];
    assert_int_equal(core_auth_account_add(auth, "root", CORE_ROLE_ADMIN, "correct horse battery",
                                           clock_ms, why, sizeof(why)),
                     0);
    assert_int_equal(core_auth_account_add(auth, "vera", CORE_ROLE_VIEWER, "viewing is fun 42",
                                           clock_ms, why, sizeof(why)),
                     0);
    assert_int_equal(
        core_auth_token_mint(auth, "root", CORE_ROLE_ADMIN, "t", clock_ms, admin_tok, NULL), 0);
    assert_int_equal(
        core_auth_token_mint(auth, "vera", CORE_ROLE_VIEWER, "t", clock_ms, viewer_tok, NULL), 0);
    assert_int_equal(
        core_auth_token_mint(auth, "root", CORE_ROLE_DEVICE, "agent", clock_ms, device_tok, NULL),
        0);
    struct compliance_rules rules;
    compliance_rules_init(&rules);
    rules.present = true;
    rules.block_jailbroken = true;
    rules.grace_period_ms = 0;
    rules.unmanaged = COMPLIANCE_BLOCK;
    struct core_api_opts o = {.session_ttl_ms = 3600 * 1000, .now_ms = test_now};
    assert_int_equal(core_api_new(reg, NULL, &rules, &o, &api), 0);
    /* a few devices, managed, bound to users */
    struct core_eng e;
    core_eng_init(&e, reg, NULL, &rules);
    for (int i = 0; i < 25; i++) {
        char id[16];
        snprintf(id, sizeof(id), "DEV%03d", i);
        struct core_devinfo info = {.device_type = i % 2 ? "iPhone" : "Android",
                                    .user = i < 20 ? "alice" : "bob"};
        assert_int_equal(core_eng_seen(&e, id, &info, clock_ms, NULL), 0);
        assert_int_equal(core_eng_action(&e, id, CORE_ACT_MANAGE, NULL, "test", "", "", clock_ms),
                         0);
    }
    core_eng_free(&e);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    core_api_free(api);
    core_auth_close(auth);
    core_reg_close(reg);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* One request; the JSON answer into *out (caller decrefs), the status returned. */
static int req(const char *method, const char *target, const char *token, const char *body,
               json_t **out)
{
    char url[1024], authz[128];
    snprintf(url, sizeof(url), "%s", target);
    char *q = strchr(url, '?');
    if (q)
        *q++ = '\0';
    snprintf(authz, sizeof(authz), "Bearer %s", token ? token : "");
    struct httpd_req r = {
        .method = method,
        .path = url,
        .query = q ? q : "",
        .authorization = token ? authz : NULL,
        .content_type = body ? "application/json" : NULL,
        .body = body ? body : "",
        .body_len = body ? strlen(body) : 0,
        .peer = "127.0.0.1",
    };
    struct httpd_resp resp = {0};
    core_api_handle(api, &r, &resp);
    assert_string_equal(resp.content_type, "application/json");
    json_error_t e;
    json_t *j = json_loadb(resp.body, resp.len, 0, &e);
    if (!j)
        fail_msg("not JSON: %.*s", (int)resp.len, resp.body);
    if (resp.status >= 400 && !json_is_string(json_object_get(j, "error")))
        fail_msg("error without a message: %.*s", (int)resp.len, resp.body);
    free(resp.body);
    if (out)
        *out = j;
    else
        json_decref(j);
    return resp.status;
}

static int64_t version_of(const char *id)
{
    struct core_device d;
    assert_int_equal(core_reg_device_get(reg, id, &d), 0);
    return d.version;
}

static int64_t audit_count(void)
{
    struct core_audit *a = malloc(sizeof(*a) * 1000);
    size_t n = 0;
    assert_int_equal(core_reg_audit_list(reg, 0, a, 1000, &n), 0);
    free(a);
    return (int64_t)n;
}

static void test_auth(void **state)
{
    (void)state;
    char why[256], tok[CORE_TOKEN_MAX];
    assert_int_equal(core_auth_password_check("x", "", why, sizeof(why)), CORE_AUTH_EINVAL);
    assert_int_equal(core_auth_password_check("x", "short", why, sizeof(why)), CORE_AUTH_EINVAL);
    assert_int_equal(core_auth_password_check("x", "aaaaaaaaaaaaaaaa", why, sizeof(why)),
                     CORE_AUTH_EINVAL);
    assert_int_equal(core_auth_password_check("rooty", "my-ROOTY-password", why, sizeof(why)),
                     CORE_AUTH_EINVAL);
    assert_int_equal(core_auth_password_check("x", "correct horse battery", why, sizeof(why)), 0);
    assert_int_equal(core_auth_account_add(auth, "root", CORE_ROLE_ADMIN, "another fine pass",
                                           clock_ms, why, sizeof(why)),
                     CORE_AUTH_EEXIST);
    assert_int_equal(core_auth_account_add(auth, "bad name", CORE_ROLE_ADMIN, "another fine pass",
                                           clock_ms, why, sizeof(why)),
                     CORE_AUTH_EINVAL);
    struct core_principal who;
    assert_int_equal(core_auth_login(auth, "root", "wrong password!!", 1000, clock_ms, tok, &who),
                     CORE_AUTH_EDENIED);
    assert_int_equal(
        core_auth_login(auth, "nobody", "correct horse battery", 1000, clock_ms, tok, &who),
        CORE_AUTH_EDENIED);
    assert_int_equal(
        core_auth_login(auth, "ROOT", "correct horse battery", 1000, clock_ms, tok, &who), 0);
    assert_int_equal(who.role, CORE_ROLE_ADMIN);
    char h[128];
    snprintf(h, sizeof(h), "Bearer %s", tok);
    assert_int_equal(core_auth_check(auth, h, clock_ms + 999, &who), 0);
    assert_int_equal(core_auth_check(auth, h, clock_ms + 1000, &who), CORE_AUTH_EDENIED);
    /* a viewer cannot mint an admin token; tokens can be revoked */
    assert_int_equal(core_auth_token_mint(auth, "vera", CORE_ROLE_ADMIN, "", clock_ms, tok, NULL),
                     CORE_AUTH_EINVAL);
    int64_t id;
    assert_int_equal(core_auth_token_mint(auth, "vera", CORE_ROLE_VIEWER, "", clock_ms, tok, &id),
                     0);
    snprintf(h, sizeof(h), "Bearer %s", tok);
    assert_int_equal(core_auth_check(auth, h, clock_ms, &who), 0);
    assert_int_equal(who.role, CORE_ROLE_VIEWER);
    assert_int_equal(core_auth_token_revoke(auth, id), 0);
    assert_int_equal(core_auth_check(auth, h, clock_ms, &who), CORE_AUTH_EDENIED);
    /* garbage */
    assert_int_equal(core_auth_check(auth, NULL, clock_ms, &who), CORE_AUTH_EDENIED);
    assert_int_equal(core_auth_check(auth, "Basic abc", clock_ms, &who), CORE_AUTH_EDENIED);
    assert_int_equal(core_auth_check(auth, "Bearer egt_nope", clock_ms, &who), CORE_AUTH_EDENIED);
    assert_int_equal(core_auth_check(auth, "Bearer ", clock_ms, &who), CORE_AUTH_EDENIED);
}

static void test_authn_and_roles(void **state)
{
    (void)state;
    assert_int_equal(req("GET", "/api/v1/devices", NULL, NULL, NULL), 401);
    assert_int_equal(req("GET", "/api/v1/devices", "egt_forged", NULL, NULL), 401);
    assert_int_equal(req("GET", "/api/v1/devices", viewer_tok, NULL, NULL), 200);
    assert_int_equal(req("GET", "/api/v1/audit", viewer_tok, NULL, NULL), 200);
    assert_int_equal(req("GET", "/api/v1/devices", device_tok, NULL, NULL), 403);
    int64_t v = version_of("DEV001"), au = audit_count();
    assert_int_equal(req("POST", "/api/v1/devices/DEV001/block", viewer_tok, NULL, NULL), 403);
    assert_int_equal(req("DELETE", "/api/v1/devices/DEV001", viewer_tok, NULL, NULL), 403);
    assert_int_equal(req("POST", "/api/v1/tokens", viewer_tok, "{\"role\":\"viewer\"}", NULL), 403);
    assert_int_equal(req("POST", "/api/v1/devices/DEV001/block", device_tok, NULL, NULL), 403);
    assert_int_equal(version_of("DEV001"), v);
    assert_int_equal(audit_count(), au);
    /* login over the API gives a session that works */
    json_t *j;
    assert_int_equal(req("POST", "/api/v1/login", NULL,
                         "{\"user\":\"vera\",\"password\":\"viewing is fun 42\"}", &j),
                     200);
    char tok[CORE_TOKEN_MAX];
    snprintf(tok, sizeof(tok), "%s", json_string_value(json_object_get(j, "token")));
    json_decref(j);
    assert_int_equal(req("GET", "/api/v1/whoami", tok, NULL, &j), 200);
    assert_string_equal(json_string_value(json_object_get(j, "role")), "viewer");
    json_decref(j);
    assert_int_equal(req("POST", "/api/v1/logout", tok, NULL, NULL), 200);
    assert_int_equal(req("GET", "/api/v1/whoami", tok, NULL, NULL), 401);
    assert_int_equal(
        req("POST", "/api/v1/login", NULL, "{\"user\":\"vera\",\"password\":\"nope\"}", NULL), 401);
}

static void test_validation_changes_nothing(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"note\":",                      /* invalid JSON */
        "[1,2]",                           /* not an object */
        "{\"note\":\"x\",\"zap\":1}",      /* unknown field */
        "{\"note\":5}",                    /* wrong type */
        "{\"note\":\"a\",\"note\":\"b\"}", /* duplicate key */
        "{\"user\":\"bob\"}",              /* user with block */
        "\"just a string\"",
    };
    int64_t v = version_of("DEV002"), au = audit_count();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *j;
        int st = req("POST", "/api/v1/devices/DEV002/block", admin_tok, bad[i], &j);
        if (st != 400)
            fail_msg("%s: status %d", bad[i], st);
        json_decref(j);
    }
    static const char *const bad_checkin[] = {
        "{}",
        "{\"device_id\":\"DEV002\",\"jailbroken\":\"yes\"}",
        "{\"device_id\":\"DEV002\",\"jailbroken\":1}",
        "{\"device_id\":\"DEV002\",\"time\":\"now\"}",
        "{\"device_id\":\"DEV002\",\"time\":99999999999999}",
        "{\"device_id\":\"DEV-002\"}",
        "{\"device_id\":\"DEV002\",\"os_version\":\"sixteen\"}",
        "{\"device_id\":\"DEV002\",\"rooted\":true}",
    };
    for (size_t i = 0; i < sizeof(bad_checkin) / sizeof(bad_checkin[0]); i++) {
        int st = req("POST", "/api/v1/checkin", device_tok, bad_checkin[i], NULL);
        if (st != 400)
            fail_msg("%s: status %d", bad_checkin[i], st);
    }
    assert_int_equal(version_of("DEV002"), v);
    assert_int_equal(audit_count(), au);
    struct core_device d;
    assert_int_equal(core_reg_device_get(reg, "DEV002", &d), 0);
    assert_int_equal(d.last_checkin_ms, 0);
    /* the wrong media type; unknown query parameters; bad paging */
    struct httpd_req r = {.method = "POST",
                          .path = "/api/v1/devices/DEV002/block",
                          .query = "",
                          .content_type = "text/plain",
                          .body = "{}",
                          .body_len = 2,
                          .peer = "::1"};
    char authz[128];
    snprintf(authz, sizeof(authz), "Bearer %s", admin_tok);
    r.authorization = authz;
    struct httpd_resp resp = {0};
    core_api_handle(api, &r, &resp);
    assert_int_equal(resp.status, 415);
    free(resp.body);
    assert_int_equal(req("GET", "/api/v1/devices?colour=red", admin_tok, NULL, NULL), 400);
    assert_int_equal(req("GET", "/api/v1/devices?limit=0", admin_tok, NULL, NULL), 400);
    assert_int_equal(req("GET", "/api/v1/devices?limit=abc", admin_tok, NULL, NULL), 400);
    assert_int_equal(req("GET", "/api/v1/devices?state=purple", admin_tok, NULL, NULL), 400);
    assert_int_equal(req("GET", "/api/v1/devices?managed=maybe", admin_tok, NULL, NULL), 400);
    assert_int_equal(req("GET", "/api/v1/devices?after=%zz", admin_tok, NULL, NULL), 400);
    assert_int_equal(req("GET", "/api/v1/nothing", admin_tok, NULL, NULL), 404);
    assert_int_equal(req("PUT", "/api/v1/devices", admin_tok, NULL, NULL), 405);
    assert_int_equal(req("POST", "/api/v1/devices/DEV002/explode", admin_tok, NULL, NULL), 404);
    assert_int_equal(req("GET", "/api/v1/devices/NOPE", admin_tok, NULL, NULL), 404);
    assert_int_equal(req("POST", "/api/v1/devices/NOPE/block", admin_tok, NULL, NULL), 404);
    assert_int_equal(version_of("DEV002"), v);
}

static void test_actions(void **state)
{
    (void)state;
    int64_t v = version_of("DEV003");
    json_t *j;
    assert_int_equal(
        req("POST", "/api/v1/devices/dev003/block", admin_tok, "{\"note\":\"lost\"}", &j), 200);
    json_t *d = json_object_get(j, "device");
    assert_string_equal(json_string_value(json_object_get(d, "state")), "block");
    assert_string_equal(json_string_value(json_object_get(d, "override")), "block");
    assert_true(json_integer_value(json_object_get(d, "version")) > v);
    json_decref(j);
    assert_int_equal(req("GET", "/api/v1/devices/DEV003", viewer_tok, NULL, &j), 200);
    json_t *h = json_array_get(json_object_get(j, "history"), 0);
    assert_string_equal(json_string_value(json_object_get(h, "action")), "block");
    assert_string_equal(json_string_value(json_object_get(h, "actor")), "root");
    assert_string_equal(json_string_value(json_object_get(h, "note")), "lost");
    json_decref(j);
    /* the audit log says who, what and from where */
    assert_int_equal(req("GET", "/api/v1/audit?limit=1", viewer_tok, NULL, &j), 200);
    json_t *a = json_array_get(json_object_get(j, "audit"), 0);
    assert_string_equal(json_string_value(json_object_get(a, "actor")), "root");
    assert_string_equal(json_string_value(json_object_get(a, "address")), "127.0.0.1");
    assert_string_equal(json_string_value(json_object_get(a, "action")), "device.block");
    assert_string_equal(json_string_value(json_object_get(a, "target")), "DEV003");
    assert_true(json_is_integer(json_object_get(j, "next")));
    json_decref(j);
    assert_int_equal(req("POST", "/api/v1/devices/DEV003/reset", admin_tok, NULL, &j), 200);
    d = json_object_get(j, "device");
    /* back to the rules: a device that never said whether it is jailbroken */
    assert_string_equal(json_string_value(json_object_get(d, "override")), "none");
    assert_string_equal(json_string_value(json_object_get(d, "reason")), "jailbreak-unknown");
    json_decref(j);
    assert_int_equal(req("DELETE", "/api/v1/devices/DEV024", admin_tok, NULL, &j), 200);
    assert_string_equal(json_string_value(json_object_get(j, "deleted")), "DEV024");
    json_decref(j);
    assert_int_equal(req("GET", "/api/v1/devices/DEV024", admin_tok, NULL, NULL), 404);
}

/* The server role's actions: the account-only wipe (a body option of wipe,
 * refused with 409 unless the device last spoke EAS 16.1+) and reprovision. */
static void test_server_role_actions(void **state)
{
    (void)state;
    json_t *j;
    int64_t v = version_of("DEV004");
    assert_int_equal(
        req("POST", "/api/v1/devices/DEV004/wipe", admin_tok, "{\"kind\":\"account\"}", &j), 409);
    assert_non_null(strstr(json_string_value(json_object_get(j, "error")), "16.1"));
    json_decref(j);
    assert_int_equal(version_of("DEV004"), v);
    assert_int_equal(
        req("POST", "/api/v1/devices/DEV004/wipe", admin_tok, "{\"kind\":\"most\"}", NULL), 400);
    assert_int_equal(
        req("POST", "/api/v1/devices/DEV004/block", admin_tok, "{\"kind\":\"account\"}", NULL),
        400);
    assert_int_equal(req("POST", "/api/v1/devices/DEV004/wipe-account", admin_tok, NULL, NULL),
                     404);
    assert_int_equal(version_of("DEV004"), v);
    struct core_devinfo in = {.eas_version = "16.1", .client_addr = "192.0.2.44"};
    assert_int_equal(core_reg_device_seen(reg, "DEV005", &in, clock_ms, NULL), 0);
    assert_int_equal(
        req("POST", "/api/v1/devices/DEV005/wipe", admin_tok, "{\"kind\":\"account\"}", &j), 200);
    json_t *d = json_object_get(j, "device");
    assert_string_equal(json_string_value(json_object_get(d, "state")), "wipe");
    assert_string_equal(json_string_value(json_object_get(d, "wipe_kind")), "account");
    assert_string_equal(json_string_value(json_object_get(d, "eas_version")), "16.1");
    assert_string_equal(json_string_value(json_object_get(d, "last_client")), "192.0.2.44");
    json_decref(j);
    v = version_of("DEV006");
    assert_int_equal(req("POST", "/api/v1/devices/DEV006/reprovision", admin_tok, NULL, &j), 200);
    d = json_object_get(j, "device");
    assert_int_equal(json_integer_value(json_object_get(d, "pk_epoch")), 1);
    assert_true(json_integer_value(json_object_get(d, "version")) > v);
    json_decref(j);
    assert_int_equal(req("POST", "/api/v1/devices/DEV006/reprovision", viewer_tok, NULL, NULL),
                     403);
}

static void test_checkin(void **state)
{
    (void)state;
    json_t *j;
    assert_int_equal(req("POST", "/api/v1/checkin", device_tok,
                         "{\"device_id\":\"DEV004\",\"os\":\"iOS\",\"os_version\":\"17.1\","
                         "\"passcode\":true,\"encrypted\":true,\"jailbroken\":false,"
                         "\"agent_version\":\"1.0\",\"time\":1700000000000}",
                         &j),
                     200);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "allow");
    json_decref(j);
    assert_int_equal(req("POST", "/api/v1/checkin", device_tok,
                         "{\"device_id\":\"DEV004\",\"jailbroken\":true}", &j),
                     200);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "block");
    assert_string_equal(json_string_value(json_object_get(j, "reason")), "jailbroken");
    json_decref(j);
    assert_int_equal(
        req("POST", "/api/v1/checkin", device_tok, "{\"device_id\":\"UNKNOWN9\"}", NULL), 404);
    struct core_device d;
    assert_int_equal(core_reg_device_get(reg, "DEV004", &d), 0);
    assert_int_equal(d.last_checkin_ms, clock_ms);
    assert_string_equal(d.agent_version, "1.0");
}

static void test_list_and_paging(void **state)
{
    (void)state;
    json_t *j;
    assert_int_equal(req("GET", "/api/v1/devices?user=bob", viewer_tok, NULL, &j), 200);
    size_t n = json_array_size(json_object_get(j, "devices"));
    assert_true(n == 4 || n == 5); /* DEV024 may have been deleted by test_actions */
    assert_true(json_is_null(json_object_get(j, "next")));
    json_decref(j);
    /* page through alice's 20 devices 7 at a time */
    char after[64] = "", url[256];
    size_t total = 0;
    for (int page = 0; page < 10; page++) {
        snprintf(url, sizeof(url), "/api/v1/devices?user=alice&limit=7%s%s",
                 after[0] ? "&after=" : "", after);
        assert_int_equal(req("GET", url, viewer_tok, NULL, &j), 200);
        total += json_array_size(json_object_get(j, "devices"));
        json_t *nx = json_object_get(j, "next");
        if (json_is_null(nx)) {
            json_decref(j);
            break;
        }
        snprintf(after, sizeof(after), "%s", json_string_value(nx));
        json_decref(j);
    }
    assert_int_equal(total, 20);
    assert_int_equal(
        req("GET", "/api/v1/devices?type=iphone&managed=yes&limit=1000", viewer_tok, NULL, &j),
        200);
    json_t *d;
    size_t i;
    json_array_foreach(json_object_get(j, "devices"), i, d)
        assert_string_equal(json_string_value(json_object_get(d, "device_type")), "iPhone");
    json_decref(j);
    assert_int_equal(req("GET", "/api/v1/users", viewer_tok, NULL, &j), 200);
    assert_int_equal(json_array_size(json_object_get(j, "users")), 2);
    json_decref(j);
}

/* Walk url's pages (limit per) through the server's cursors: the DeviceIds
 * in page order, joined by ',' into out. */
static size_t walk_ids(const char *url, int per, char *out, size_t outlen)
{
    char after[1024] = "", u[2048];
    size_t total = 0;
    out[0] = '\0';
    for (int page = 0; page < 50; page++) {
        snprintf(u, sizeof(u), "%s&limit=%d%s%s", url, per, after[0] ? "&after=" : "", after);
        json_t *j;
        assert_int_equal(req("GET", u, viewer_tok, NULL, &j), 200);
        json_t *d;
        size_t i;
        json_array_foreach(json_object_get(j, "devices"), i, d)
        {
            size_t l = strlen(out);
            snprintf(out + l, outlen - l, "%s%s", l ? "," : "",
                     json_string_value(json_object_get(d, "device_id")));
            total++;
        }
        json_t *nx = json_object_get(j, "next");
        bool end = json_is_null(nx);
        if (!end)
            snprintf(after, sizeof(after), "%s", json_string_value(nx));
        json_decref(j);
        if (end)
            break;
    }
    return total;
}

/* Search and server-side sorting (issue 18): the search finds by DeviceId
 * or user prefix whatever the case, combines with the filters, and pages
 * in any order through opaque cursors that come back as they went. */
static void test_search_and_sort(void **state)
{
    (void)state;
    char ids[4096], ids2[4096];
    /* bob's devices are DEV020..DEV024 (DEV024 may be deleted by test_actions) */
    size_t n = walk_ids("/api/v1/devices?q=BO", 2, ids, sizeof(ids));
    assert_true(n == 4 || n == 5);
    assert_true(strncmp(ids, "DEV020,DEV021,DEV022,DEV023", 27) == 0);
    assert_int_equal(walk_ids("/api/v1/devices?q=dev01", 3, ids, sizeof(ids)), 10);
    assert_int_equal(walk_ids("/api/v1/devices?q=dev01&type=iphone", 3, ids, sizeof(ids)), 5);
    assert_string_equal(ids, "DEV011,DEV013,DEV015,DEV017,DEV019");
    assert_int_equal(walk_ids("/api/v1/devices?q=nobody", 3, ids, sizeof(ids)), 0);
    /* By user, descending: bob's first (newest DeviceId first), then alice's. */
    n = walk_ids("/api/v1/devices?sort=user&order=desc", 3, ids, sizeof(ids));
    assert_true(n == 24 || n == 25);
    assert_true(strncmp(ids, n == 25 ? "DEV024,DEV023" : "DEV023,DEV022", 13) == 0);
    assert_non_null(strstr(ids, "DEV020,DEV019,DEV018"));
    /* Every order walks every device once, in pages or whole. */
    static const char *const sorts[] = {"device_id", "user", "last_seen", "state", "type", "os"};
    for (size_t k = 0; k < sizeof(sorts) / sizeof(sorts[0]); k++)
        for (int desc = 0; desc < 2; desc++) {
            char url[256];
            snprintf(url, sizeof(url), "/api/v1/devices?sort=%s&order=%s", sorts[k],
                     desc ? "desc" : "asc");
            assert_int_equal(walk_ids(url, 4, ids, sizeof(ids)), n);
            assert_int_equal(walk_ids(url, 1000, ids2, sizeof(ids2)), n);
            assert_string_equal(ids, ids2);
        }
    /* By type: the Androids (even numbers) before the iPhones. */
    walk_ids("/api/v1/devices?sort=type&user=alice", 6, ids, sizeof(ids));
    assert_true(strncmp(ids, "DEV000,DEV002,DEV004", 20) == 0);
    assert_non_null(strstr(ids, "DEV018,DEV001,DEV003"));
    /* Bad input: 400, with the reason. */
    assert_int_equal(req("GET", "/api/v1/devices?sort=colour", viewer_tok, NULL, NULL), 400);
    assert_int_equal(req("GET", "/api/v1/devices?order=up", viewer_tok, NULL, NULL), 400);
    assert_int_equal(req("GET", "/api/v1/devices?sort=user&after=DEV001", viewer_tok, NULL, NULL),
                     400); /* a cursor of another order */
    assert_int_equal(req("GET", "/api/v1/devices?after=DEV001.YWxpY2U", viewer_tok, NULL, NULL),
                     400);
    assert_int_equal(
        req("GET", "/api/v1/devices?sort=user&after=DEV001.%21%21", viewer_tok, NULL, NULL), 400);
    assert_int_equal(
        req("GET", "/api/v1/devices?sort=last_seen&after=DEV001.YWxpY2U", viewer_tok, NULL, NULL),
        400); /* an hour is a number */
    char big[512];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    char url[600];
    snprintf(url, sizeof(url), "/api/v1/devices?q=%s", big);
    assert_int_equal(req("GET", url, viewer_tok, NULL, NULL), 400);
    /* A cursor handed out for user order comes back as it went. */
    json_t *j;
    assert_int_equal(req("GET", "/api/v1/devices?sort=user&limit=2", viewer_tok, NULL, &j), 200);
    const char *nx = json_string_value(json_object_get(j, "next"));
    assert_non_null(nx);
    assert_string_equal(nx, "DEV001.YWxpY2U");
    json_decref(j);
}

/* A self-signed certificate for CN=cn, O=easgate test, in PEM (the caller frees). */
static char *make_pem(const char *cn)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    assert_non_null(k);
    assert_non_null(x);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"easgate test", -1, -1,
                               0);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509_set_pubkey(x, k);
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    char *data;
    long len = BIO_get_mem_data(b, &data);
    char *pem = strndup(data, (size_t)len);
    BIO_free(b);
    X509_free(x);
    EVP_PKEY_free(k);
    return pem;
}

static int revokes_heard;
static void heard_revoke(void *arg)
{
    (void)arg;
    revokes_heard++;
}

/* A device's certificates and their revocation (issue 18): listed with
 * subject, binding and status; revoked by an admin only, audited, the
 * binding gone and announced, the CRL's keeper told after the commit. */
static void test_certificates(void **state)
{
    (void)state;
    char *pem = make_pem("alice");
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(core_reg_sqlite(reg),
                                        "INSERT INTO enroll_certs(serial, device_id, user, "
                                        "not_before_ms, not_after_ms, issued_ms, revoked_ms, pem, "
                                        "enrollment, bound_ms) VALUES(?1, 'DEV003', 'alice', ?2, "
                                        "?3, ?4, ?5, ?6, ?7, ?8)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    for (int i = 0; i < 2; i++) {
        sqlite3_bind_text(st, 1, i ? "0C" : "0A1B", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, clock_ms - 1000);
        sqlite3_bind_int64(st, 3, clock_ms + 86400000);
        sqlite3_bind_int64(st, 4, clock_ms - (i ? 5000 : 1000));
        sqlite3_bind_int64(st, 5, i ? clock_ms - 4000 : 0);
        sqlite3_bind_text(st, 6, pem, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 7, i ? "" : "ENR42", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 8, i ? 0 : clock_ms - 900);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    free(pem);
    struct core_device d;
    assert_int_equal(core_reg_device_get(reg, "DEV003", &d), 0);
    assert_string_equal(d.cert_enrollment, "ENR42");
    int64_t v0 = d.version;

    json_t *j;
    assert_int_equal(req("GET", "/api/v1/devices/dev003/certs", viewer_tok, NULL, &j), 200);
    json_t *cs = json_object_get(j, "certificates");
    assert_int_equal(json_array_size(cs), 2);
    json_t *c0 = json_array_get(cs, 0), *c1 = json_array_get(cs, 1);
    assert_string_equal(json_string_value(json_object_get(c0, "serial")), "0A1B");
    assert_string_equal(json_string_value(json_object_get(c0, "subject")),
                        "CN=alice,O=easgate test");
    assert_string_equal(json_string_value(json_object_get(c0, "status")), "valid");
    assert_string_equal(json_string_value(json_object_get(c0, "enrollment")), "ENR42");
    assert_int_equal(json_integer_value(json_object_get(c0, "bound")), clock_ms - 900);
    assert_string_equal(json_string_value(json_object_get(c1, "status")), "revoked");
    json_decref(j);
    assert_int_equal(req("GET", "/api/v1/devices/NOSUCH/certs", viewer_tok, NULL, NULL), 404);

    core_api_on_revoke(heard_revoke, NULL);
    int64_t audits = audit_count();
    const char *url = "/api/v1/devices/DEV003/certs/0a1b/revoke";
    assert_int_equal(req("POST", url, viewer_tok, "{}", NULL), 403);
    assert_int_equal(req("POST", "/api/v1/devices/DEV003/certs/xyz/revoke", admin_tok, "{}", NULL),
                     400);
    assert_int_equal(req("POST", "/api/v1/devices/DEV004/certs/0A1B/revoke", admin_tok, "{}", NULL),
                     404); /* not that device's */
    assert_int_equal(req("POST", url, admin_tok, "{\"reason\":5}", NULL), 400);
    assert_int_equal(revokes_heard, 0);
    assert_int_equal(audit_count(), audits);
    assert_int_equal(req("POST", url, admin_tok, "{\"reason\":\"lost\"}", &j), 200);
    assert_string_equal(json_string_value(json_object_get(j, "revoked")), "0A1B");
    assert_string_equal(json_string_value(json_object_get(j, "crl")), "rewriting");
    json_decref(j);
    assert_int_equal(revokes_heard, 1);
    assert_int_equal(audit_count(), audits + 1);
    assert_int_equal(core_reg_device_get(reg, "DEV003", &d), 0);
    assert_string_equal(d.cert_enrollment, "");
    assert_true(d.version > v0); /* the binding's end is announced */
    assert_int_equal(req("POST", url, admin_tok, NULL, NULL), 404); /* revoked already */
    assert_int_equal(revokes_heard, 1);
    assert_int_equal(req("GET", "/api/v1/devices/DEV003", viewer_tok, NULL, &j), 200);
    json_t *h = json_array_get(json_object_get(j, "history"), 0);
    assert_string_equal(json_string_value(json_object_get(h, "action")), "cert-revoke");
    assert_string_equal(json_string_value(json_object_get(h, "note")), "certificate 0A1B: lost");
    json_decref(j);
    core_api_on_revoke(NULL, NULL);
}

static void test_tokens_over_api(void **state)
{
    (void)state;
    json_t *j;
    assert_int_equal(
        req("POST", "/api/v1/tokens", admin_tok, "{\"role\":\"device\",\"name\":\"mdm\"}", &j),
        201);
    char tok[CORE_TOKEN_MAX];
    snprintf(tok, sizeof(tok), "%s", json_string_value(json_object_get(j, "token")));
    int64_t id = json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    assert_int_equal(req("POST", "/api/v1/checkin", tok, "{\"device_id\":\"DEV005\"}", NULL), 200);
    char url[64];
    snprintf(url, sizeof(url), "/api/v1/tokens/%lld", (long long)id);
    assert_int_equal(req("DELETE", url, admin_tok, NULL, NULL), 200);
    assert_int_equal(req("POST", "/api/v1/checkin", tok, "{\"device_id\":\"DEV005\"}", NULL), 401);
    assert_int_equal(req("POST", "/api/v1/tokens", admin_tok, "{\"role\":\"god\"}", NULL), 400);
    assert_int_equal(req("DELETE", "/api/v1/tokens/abc", admin_tok, NULL, NULL), 400);
}

/* ---- the console: its files, its session cookie, CSRF, expiry -------------- */

/* A request as the console sends it: the session in a cookie, the CSRF
 * token in its header. The status; the answer's JSON into *out and its
 * extra header lines into hdr (both optional). */
static int creq(const char *method, const char *target, const char *cookie, const char *csrf,
                const char *body, json_t **out, char *hdr, size_t hdrlen)
{
    struct httpd_req r = {
        .method = method,
        .path = target,
        .query = "",
        .cookie = cookie,
        .csrf = csrf,
        .content_type = body ? "application/json" : NULL,
        .body = body ? body : "",
        .body_len = body ? strlen(body) : 0,
        .peer = "127.0.0.1",
    };
    struct httpd_resp resp = {0};
    core_api_handle(api, &r, &resp);
    if (hdr)
        snprintf(hdr, hdrlen, "%s", resp.headers ? resp.headers : "");
    if (out) {
        json_error_t e;
        *out = json_loadb(resp.body, resp.len, 0, &e);
        if (!*out)
            fail_msg("not JSON: %.*s", (int)resp.len, resp.body);
    }
    free(resp.body);
    free(resp.headers);
    return resp.status;
}

/* Sign in as the console does: the Cookie header value into cookie, the
 * CSRF token into csrf. */
static void console_login(const char *user, const char *pw, char *cookie, size_t clen, char *csrf)
{
    char body[256], hdr[512];
    snprintf(body, sizeof(body), "{\"user\":\"%s\",\"password\":\"%s\",\"console\":true}", user,
             pw);
    json_t *j;
    assert_int_equal(creq("POST", "/api/v1/login", NULL, NULL, body, &j, hdr, sizeof(hdr)), 200);
    assert_null(json_object_get(j, "token")); /* the page never holds the session */
    snprintf(csrf, CORE_CSRF_LEN + 1, "%s", json_string_value(json_object_get(j, "csrf")));
    assert_int_equal(strlen(csrf), CORE_CSRF_LEN);
    json_decref(j);
    assert_non_null(strstr(hdr, "Set-Cookie: __Host-egc=egc_"));
    assert_non_null(strstr(hdr, "; Path=/;"));
    assert_non_null(strstr(hdr, "; Secure; HttpOnly; SameSite=Strict\r\n"));
    const char *v = strstr(hdr, "__Host-egc=");
    size_t n = strcspn(v, ";");
    snprintf(cookie, clen, "other=1; %.*s; more=2", (int)n, v);
}

static void test_console_session(void **state)
{
    (void)state;
    char cookie[256], csrf[CORE_CSRF_LEN + 1], hdr[512];
    console_login("root", "correct horse battery", cookie, sizeof(cookie), csrf);
    json_t *j;
    assert_int_equal(creq("GET", "/api/v1/whoami", cookie, NULL, NULL, &j, NULL, 0), 200);
    assert_string_equal(json_string_value(json_object_get(j, "csrf")), csrf);
    assert_string_equal(json_string_value(json_object_get(j, "role")), "admin");
    json_decref(j);
    /* a change needs the session's CSRF token; the cookie alone is refused */
    assert_int_equal(
        creq("POST", "/api/v1/devices/DEV001/block", cookie, NULL, "{}", NULL, NULL, 0), 403);
    char wrong[CORE_CSRF_LEN + 1];
    memset(wrong, 'a', CORE_CSRF_LEN);
    wrong[CORE_CSRF_LEN] = '\0';
    assert_int_equal(
        creq("POST", "/api/v1/devices/DEV001/block", cookie, wrong, "{}", NULL, NULL, 0), 403);
    assert_int_equal(
        creq("POST", "/api/v1/devices/DEV001/block", cookie, csrf, "{}", NULL, NULL, 0), 200);
    assert_int_equal(
        creq("POST", "/api/v1/devices/DEV001/reset", cookie, csrf, "{}", NULL, NULL, 0), 200);
    /* the console's token is good in its cookie only */
    char tok[CORE_TOKEN_MAX];
    const char *v = strstr(cookie, "egc_");
    snprintf(tok, sizeof(tok), "%.*s", (int)strcspn(v, ";"), v);
    assert_int_equal(req("GET", "/api/v1/whoami", tok, NULL, NULL), 401);
    /* a viewer's console session reads, and is refused a change */
    char vcookie[256], vcsrf[CORE_CSRF_LEN + 1];
    console_login("vera", "viewing is fun 42", vcookie, sizeof(vcookie), vcsrf);
    assert_int_equal(creq("GET", "/api/v1/devices", vcookie, NULL, NULL, NULL, NULL, 0), 200);
    assert_int_equal(
        creq("POST", "/api/v1/devices/DEV001/block", vcookie, vcsrf, "{}", NULL, NULL, 0), 403);
    /* sign-out ends the session and clears the cookie */
    assert_int_equal(creq("POST", "/api/v1/logout", cookie, csrf, "{}", NULL, hdr, sizeof(hdr)),
                     200);
    assert_non_null(strstr(hdr, "Set-Cookie: __Host-egc=; Path=/; Max-Age=0;"));
    assert_int_equal(creq("GET", "/api/v1/whoami", cookie, NULL, NULL, NULL, NULL, 0), 401);
    /* a wrong password sets no cookie */
    assert_int_equal(creq("POST", "/api/v1/login", NULL, NULL,
                          "{\"user\":\"root\",\"password\":\"nope nope nope\",\"console\":true}",
                          NULL, hdr, sizeof(hdr)),
                     401);
    assert_string_equal(hdr, "");
}

/* Idle expiry (30 min by default) moves on with use; the absolute one
 * (session_ttl, 1 h here) does not. */
static void test_console_expiry(void **state)
{
    (void)state;
    char cookie[256], csrf[CORE_CSRF_LEN + 1];
    console_login("root", "correct horse battery", cookie, sizeof(cookie), csrf);
    int64_t start = clock_ms;
    for (int k = 1; k <= 3; k++) { /* used every 25 min: alive until the hour */
        clock_ms = start + k * 25 * 60 * 1000LL - (k == 3 ? 16 * 60 * 1000LL : 0);
        assert_int_equal(creq("GET", "/api/v1/whoami", cookie, NULL, NULL, NULL, NULL, 0), 200);
    }
    clock_ms = start + 60 * 60 * 1000LL + 1; /* past the absolute expiry, though in use */
    assert_int_equal(creq("GET", "/api/v1/whoami", cookie, NULL, NULL, NULL, NULL, 0), 401);
    console_login("root", "correct horse battery", cookie, sizeof(cookie), csrf);
    clock_ms += 31 * 60 * 1000LL; /* idle past 30 min */
    assert_int_equal(creq("GET", "/api/v1/whoami", cookie, NULL, NULL, NULL, NULL, 0), 401);
}

static void test_stats(void **state)
{
    (void)state;
    json_t *j;
    assert_int_equal(req("POST", "/api/v1/devices/DEV002/block", admin_tok, "{}", NULL), 200);
    assert_int_equal(req("GET", "/api/v1/stats", viewer_tok, NULL, &j), 200);
    json_t *st = json_object_get(j, "states");
    int64_t sum = 0;
    const char *names[] = {"allow", "block", "quarantine", "wipe"};
    for (int i = 0; i < 4; i++) {
        assert_true(json_is_integer(json_object_get(st, names[i])));
        sum += json_integer_value(json_object_get(st, names[i]));
    }
    assert_true(json_integer_value(json_object_get(st, "block")) >= 1);
    assert_int_equal(sum, json_integer_value(json_object_get(j, "devices")));
    assert_int_equal(sum, core_reg_device_count(reg));
    assert_true(json_is_integer(json_object_get(j, "pending")));
    /* Compliance: the verdicts cover every device once (compliant,
     * failing, unchecked), grace is part of failing. */
    json_t *cp = json_object_get(j, "compliance");
    int64_t failing = json_integer_value(json_object_get(cp, "failing"));
    assert_int_equal(json_integer_value(json_object_get(cp, "compliant")) + failing +
                         json_integer_value(json_object_get(cp, "unchecked")),
                     sum);
    assert_true(json_integer_value(json_object_get(cp, "grace")) <= failing);
    /* The chart: 30 days and 48 hours, oldest first, ending now; every
     * device there is was registered within them, and DEV002's block is in the last hours. */
    json_t *days = json_object_get(json_object_get(j, "activity"), "days");
    json_t *hours = json_object_get(json_object_get(j, "activity"), "hours");
    assert_int_equal(json_array_size(days), 30);
    assert_int_equal(json_array_size(hours), 48);
    int64_t reg_days = 0, reg_hours = 0, blocked = 0;
    for (size_t i = 0; i < 30; i++)
        reg_days += json_integer_value(json_object_get(json_array_get(days, i), "registered"));
    for (size_t i = 0; i < 48; i++) {
        reg_hours += json_integer_value(json_object_get(json_array_get(hours, i), "registered"));
        blocked += json_integer_value(json_object_get(json_array_get(hours, i), "blocked"));
    }
    /* (and the ones deleted since: registrations, not devices) */
    assert_true(reg_days >= sum && reg_hours == reg_days);
    assert_true(blocked >= 1);
    int64_t last = json_integer_value(json_object_get(json_array_get(days, 29), "at"));
    assert_int_equal(last, clock_ms / 86400000 * 86400000);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(hours, 47), "at")),
                     clock_ms / 3600000 * 3600000);
    json_decref(j);
    assert_int_equal(req("POST", "/api/v1/devices/DEV002/reset", admin_tok, "{}", NULL), 200);
    assert_int_equal(req("GET", "/api/v1/stats?x=1", viewer_tok, NULL, NULL), 400);
    assert_int_equal(req("GET", "/api/v1/stats", NULL, NULL, NULL), 401);
    /* without Redis (core_api_new) there are no proxies to list */
    assert_int_equal(req("GET", "/api/v1/proxies", viewer_tok, NULL, &j), 200);
    assert_int_equal(json_array_size(json_object_get(j, "proxies")), 0);
    json_decref(j);
}

static void test_console_files(void **state)
{
    (void)state;
    char hdr[1024];
    struct httpd_req r = {.method = "GET", .path = "/ui/", .query = "", .peer = "127.0.0.1"};
    struct httpd_resp resp = {0};
    core_api_handle(api, &r, &resp);
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.content_type, "text/html; charset=utf-8");
    assert_non_null(
        memmem(resp.body, resp.len, "<script type=\"module\" src=\"/ui/js/app.js\">", 42));
    snprintf(hdr, sizeof(hdr), "%s", resp.headers);
    free(resp.body);
    free(resp.headers);
    assert_non_null(strstr(hdr, "Content-Security-Policy: default-src 'none'; script-src 'self'; "
                                "style-src 'self';"));
    assert_non_null(strstr(hdr, "frame-ancestors 'none'"));
    assert_non_null(strstr(hdr, "X-Frame-Options: DENY\r\n"));
    assert_non_null(strstr(hdr, "X-Content-Type-Options: nosniff\r\n"));
    assert_non_null(strstr(hdr, "Referrer-Policy: no-referrer\r\n"));
    const struct {
        const char *method, *path, *ctype;
        int status;
    } cases[] = {
        {"GET", "/ui/js/app.js", "text/javascript; charset=utf-8", 200},
        {"GET", "/ui/app.css", "text/css; charset=utf-8", 200},
        {"GET", "/ui/../etc/passwd", "text/plain; charset=utf-8", 404},
        {"GET", "/ui/js/", "text/plain; charset=utf-8", 404},
        {"POST", "/ui/", "text/plain; charset=utf-8", 405},
        {"GET", "/", "text/plain; charset=utf-8", 302},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        r.method = cases[i].method;
        r.path = cases[i].path;
        resp = (struct httpd_resp){0};
        core_api_handle(api, &r, &resp);
        assert_int_equal(resp.status, cases[i].status);
        assert_string_equal(resp.content_type, cases[i].ctype);
        assert_non_null(strstr(resp.headers, "X-Frame-Options: DENY\r\n"));
        if (cases[i].status == 302)
            assert_non_null(strstr(resp.headers, "Location: /ui/\r\n"));
        free(resp.body);
        free(resp.headers);
    }
}

/* ---- invitations: handed over to the enrollment role (core/api.h) --------- */

static int inv_calls;
static enum core_api_inv_op inv_op_seen;
static char inv_who[CORE_USER_MAX], inv_id[32], inv_body[128];

/* A provider that answers at once (core_api_handle wants it so). */
static int fake_inv_submit(void *arg, struct core_api_inv_call *k)
{
    if (arg) /* "full" */
        return -1;
    inv_calls++;
    inv_op_seen = k->op;
    snprintf(inv_who, sizeof(inv_who), "%s", k->who.name);
    snprintf(inv_id, sizeof(inv_id), "%s", k->id ? k->id : "");
    snprintf(inv_body, sizeof(inv_body), "%.*s", (int)k->req->body_len, k->req->body);
    k->resp->status = k->op == CORE_API_INV_CREATE ? 201 : 200;
    k->resp->content_type = "application/json";
    k->resp->body = strdup("{\"invitations\":[]}");
    k->resp->len = strlen(k->resp->body);
    k->done(k);
    return 0;
}

static void test_invitations(void **state)
{
    (void)state;
    json_t *j;
    /* no enrollment role in the process: 404 saying where they are */
    assert_int_equal(req("GET", "/api/v1/invitations", admin_tok, NULL, &j), 404);
    assert_non_null(strstr(json_string_value(json_object_get(j, "error")), "enroll.listen"));
    json_decref(j);
    core_api_invitations(&(struct core_api_inv){.submit = fake_inv_submit});
    /* reading is for viewers too; creating and withdrawing for admins only */
    assert_int_equal(req("GET", "/api/v1/invitations?email=a%40b.c", viewer_tok, NULL, NULL), 200);
    assert_int_equal(inv_calls, 1);
    assert_int_equal(inv_op_seen, CORE_API_INV_LIST);
    assert_string_equal(inv_who, "vera");
    assert_int_equal(req("POST", "/api/v1/invitations", viewer_tok, "{\"email\":\"a@b.c\"}", NULL),
                     403);
    assert_int_equal(req("DELETE", "/api/v1/invitations/7", viewer_tok, NULL, NULL), 403);
    assert_int_equal(req("GET", "/api/v1/invitations", device_tok, NULL, NULL), 403);
    assert_int_equal(req("GET", "/api/v1/invitations", NULL, NULL, NULL), 401);
    assert_int_equal(inv_calls, 1);
    assert_int_equal(req("POST", "/api/v1/invitations", admin_tok, "{\"email\":\"a@b.c\"}", NULL),
                     201);
    assert_int_equal(inv_op_seen, CORE_API_INV_CREATE);
    assert_string_equal(inv_body, "{\"email\":\"a@b.c\"}");
    assert_int_equal(req("DELETE", "/api/v1/invitations/7", admin_tok, NULL, NULL), 200);
    assert_int_equal(inv_op_seen, CORE_API_INV_WITHDRAW);
    assert_string_equal(inv_id, "7");
    assert_int_equal(inv_calls, 3);
    /* the console: a change without the session's CSRF token never gets there */
    char cookie[256], csrf[CORE_CSRF_LEN + 1];
    console_login("root", "correct horse battery", cookie, sizeof(cookie), csrf);
    assert_int_equal(
        creq("POST", "/api/v1/invitations", cookie, NULL, "{\"email\":\"a@b.c\"}", NULL, NULL, 0),
        403);
    assert_int_equal(inv_calls, 3);
    assert_int_equal(
        creq("POST", "/api/v1/invitations", cookie, csrf, "{\"email\":\"a@b.c\"}", NULL, NULL, 0),
        201);
    assert_int_equal(inv_calls, 4);
    assert_string_equal(inv_who, "root");
    /* a provider that cannot take it: 503, try again */
    core_api_invitations(&(struct core_api_inv){.submit = fake_inv_submit, .arg = "full"});
    assert_int_equal(req("GET", "/api/v1/invitations", admin_tok, NULL, NULL), 503);
    core_api_invitations(NULL);
    assert_int_equal(req("GET", "/api/v1/invitations", admin_tok, NULL, NULL), 404);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_authn_and_roles),
        cmocka_unit_test(test_validation_changes_nothing),
        cmocka_unit_test(test_actions),
        cmocka_unit_test(test_server_role_actions),
        cmocka_unit_test(test_checkin),
        cmocka_unit_test(test_list_and_paging),
        cmocka_unit_test(test_search_and_sort),
        cmocka_unit_test(test_certificates),
        cmocka_unit_test(test_tokens_over_api),
        cmocka_unit_test(test_console_session),
        cmocka_unit_test(test_console_expiry),
        cmocka_unit_test(test_console_files),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_invitations),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
