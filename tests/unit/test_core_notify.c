/*
 * core_notify's pure parts: the shipped templates load; a misspelt
 * variable is an error naming file, line and the variables allowed; a
 * missing template or a bad first line is an error; addresses; the mail's
 * headers (encoded Subject, folding, CRLF); the webhook signature against
 * a value computed independently (openssl dgst -hmac).
 */
#include "core/notify_int.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static char tmpdir[256];

static void put(const char *rel, const char *text)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", tmpdir, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A template set under tmpdir/en, every one valid, for the tests to spoil. */
static void good_set(void)
{
    static const char *const names[] = {"invite",        "quarantined", "approved",
                                        "blocked",       "wiped",       "enrolled",
                                        "cert_expiring", "admin_event", "digest"};
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/eg-notify-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    char d[300];
    snprintf(d, sizeof(d), "%s/en", tmpdir);
    assert_int_equal(mkdir(d, 0700), 0);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char rel[64];
        snprintf(rel, sizeof(rel), "en/%s.txt", names[i]);
        put(rel, "Subject: {{site}} hello\n\nbody {{ site }}\n");
    }
}

static void rm_set(void)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    assert_int_equal(system(cmd), 0);
}

static void test_shipped(void **state)
{
    char dir[512], err[512] = "";
    snprintf(dir, sizeof(dir), "%s/conf/notify", EG_SOURCE_DIR);
    struct core_tpls *t = NULL;
    assert_int_equal(core_tpls_load(dir, &t, err, sizeof(err)), 0);
    assert_string_equal(core_tpls_lang(t, "ja-JP", "en"), "ja");
    assert_string_equal(core_tpls_lang(t, "fr", "en"), "en");
    assert_string_equal(core_tpls_lang(t, NULL, "ja"), "ja");
    struct core_var v[] = {{"site", "S"}, {"user", "u"}, {"url", "https://x/enroll?key=K"}};
    char *subj, *body;
    assert_int_equal(core_tpls_render(t, "en", CORE_TPL_INVITE, v, 3, &subj, &body), 0);
    assert_string_equal(subj, "S: set up your phone for company mail");
    assert_non_null(strstr(body, "  https://x/enroll?key=K\n"));
    free(subj);
    free(body);
    core_tpls_free(t);
}

static void test_unknown_variable(void **state)
{
    good_set();
    put("en/blocked.txt", "Subject: x\n\nline one\nthe {{resaon}} here\n");
    char err[512] = "";
    struct core_tpls *t = NULL;
    assert_int_equal(core_tpls_load(tmpdir, &t, err, sizeof(err)), CORE_NOTIFY_EINVAL);
    assert_null(t);
    assert_non_null(strstr(err, "en/blocked.txt:4: unknown variable {{resaon}}"));
    assert_non_null(strstr(err, "reason"));
    /* the invite's own variables are not the admin mail's */
    put("en/blocked.txt", "Subject: x\n\nok {{reason}}\n");
    put("en/admin_event.txt", "Subject: {{url}}\n\nx\n");
    assert_int_equal(core_tpls_load(tmpdir, &t, err, sizeof(err)), CORE_NOTIFY_EINVAL);
    assert_non_null(strstr(err, "en/admin_event.txt:1: unknown variable {{url}}"));
    put("en/admin_event.txt", "Subject: x\n\nan {{ unclosed\n");
    assert_int_equal(core_tpls_load(tmpdir, &t, err, sizeof(err)), CORE_NOTIFY_EINVAL);
    assert_non_null(strstr(err, "admin_event.txt:3:"));
    put("en/admin_event.txt", "no subject line\n");
    assert_int_equal(core_tpls_load(tmpdir, &t, err, sizeof(err)), CORE_NOTIFY_EINVAL);
    assert_non_null(strstr(err, "admin_event.txt:1: a template starts with 'Subject:"));
    char p[400];
    snprintf(p, sizeof(p), "%s/en/admin_event.txt", tmpdir);
    unlink(p);
    assert_int_equal(core_tpls_load(tmpdir, &t, err, sizeof(err)), CORE_NOTIFY_EIO);
    assert_non_null(strstr(err, "admin_event"));
    rm_set();
}

static void test_values_stay_text(void **state)
{
    good_set();
    put("en/blocked.txt", "Subject: {{reason}}\n\n{{reason}}\n");
    char err[512] = "";
    struct core_tpls *t = NULL;
    assert_int_equal(core_tpls_load(tmpdir, &t, err, sizeof(err)), 0);
    struct core_var v[] = {{"reason", "{{site}}\r\nBcc: evil@example.com"}, {"site", "S"}};
    char *subj, *body;
    assert_int_equal(core_tpls_render(t, "en", CORE_TPL_BLOCKED, v, 2, &subj, &body), 0);
    assert_null(strchr(subj, '\n')); /* no header of its own */
    assert_null(strchr(subj, '\r'));
    assert_non_null(strstr(body, "{{site}}")); /* a value is not a template */
    free(subj);
    free(body);
    core_tpls_free(t);
    rm_set();
}

static void test_addr(void **state)
{
    assert_true(core_notify_addr_ok("alice@example.com"));
    assert_true(core_notify_addr_ok("a.b+c@sub.example.co.jp"));
    assert_false(core_notify_addr_ok("alice"));
    assert_false(core_notify_addr_ok("a@b@example.com"));
    assert_false(core_notify_addr_ok("Alice <alice@example.com>"));
    assert_false(core_notify_addr_ok("alice@example.com,bob@example.com"));
    assert_false(core_notify_addr_ok("alice@example.com\r\nRCPT TO:<x@y.z>"));
    assert_false(core_notify_addr_ok("@example.com"));
    assert_false(core_notify_addr_ok("alice@nodot"));
    assert_false(core_notify_addr_ok(NULL));
}

static void test_admin_events(void **state)
{
    struct core_notify_cfg cfg;
    memset(&cfg, 0, sizeof(cfg));
    /* The defaults tell the admins what the proxies' abuse counters did. */
    assert_true(core_notify_admin_event(&cfg, "device.autoblock"));
    assert_true(core_notify_admin_event(&cfg, "proxy.auth-block"));
    assert_true(core_notify_admin_event(&cfg, "device.block"));
    assert_false(core_notify_admin_event(&cfg, "device.state"));
    assert_false(core_notify_admin_event(&cfg, "admin.login"));
    /* A list replaces them; a trailing * is a prefix. */
    const char *mine[] = {"proxy.*"};
    cfg.admin_events.v = mine;
    cfg.admin_events.n = 1;
    assert_true(core_notify_admin_event(&cfg, "proxy.auth-block"));
    assert_false(core_notify_admin_event(&cfg, "device.autoblock"));
}

static void test_build(void **state)
{
    struct core_notify_cfg cfg = {.site = "Ex", .smtp = {.from = "gate@example.com"}};
    size_t len;
    /* 2026-12-07 10:00:00 UTC, a Monday */
    char *m = core_mail_build(&cfg, "bob@example.com", "ja",
                              "端末のお知らせ: とても長い件名でも折り返されて一行が七十八文字を"
                              "超えないこと",
                              "本文\nline 2\n", NULL, 0, 1796637600000LL, &len);
    assert_non_null(m);
    assert_int_equal(strlen(m), len);
    assert_non_null(strstr(m, "From: \"Ex\" <gate@example.com>\r\n"));
    assert_non_null(strstr(m, "To: <bob@example.com>\r\n"));
    assert_non_null(strstr(m, "Date: Mon, 07 Dec 2026 10:00:00 +0000\r\n"));
    assert_non_null(strstr(m, "Subject: =?UTF-8?B?"));
    assert_non_null(strstr(m, "?=\r\n =?UTF-8?B?")); /* folded into several words */
    assert_non_null(strstr(m, "Content-Language: ja\r\n"));
    assert_non_null(strstr(m, "Message-ID: <1796637600000."));
    assert_non_null(strstr(m, "@example.com>\r\n"));
    /* CRLF only, and no line over 78 */
    size_t col = 0;
    for (size_t i = 0; i < len; i++) {
        if (m[i] == '\n') {
            assert_true(i > 0 && m[i - 1] == '\r');
            col = 0;
        } else if (m[i] != '\r') {
            assert_true(++col <= 78);
        }
    }
    free(m);
}

static void test_sign(void **state)
{
    /* printf '1796637600.{"a":1}' | openssl dgst -sha256 -hmac s3cret */
    char sig[72];
    core_webhook_sign("s3cret", "1796637600", "{\"a\":1}", 7, sig);
    assert_string_equal(sig,
                        "sha256=b1ba0e7d84f2f2fcc95da0191e9f8b2f24b99c9e0cc525cdfc524f82466d59d0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped),
        cmocka_unit_test(test_unknown_variable),
        cmocka_unit_test(test_values_stay_text),
        cmocka_unit_test(test_addr),
        cmocka_unit_test(test_admin_events),
        cmocka_unit_test(test_build),
        cmocka_unit_test(test_sign),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
