/*
 * core_dir's parts that need no server: the AD chain filter (slapd does not
 * implement LDAP_MATCHING_RULE_IN_CHAIN, so the integration test cannot run
 * it) with RFC 4515 escaping of the DN, the schema defaults of the
 * configuration, and a lookup with nothing cached against a directory that
 * is not there (refused, never an answer).
 */
#include "core/dir.h"

#include "common/ytree.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static void test_chain_filter(void **state)
{
    struct core_dir_cfg c = {.group_filter = "(objectClass=group)"};
    char f[512];
    assert_int_equal(
        core_dir_chain_filter(&c, "CN=Abe\\, Alice (HQ),OU=Staff,DC=corp,DC=example", f, sizeof(f)),
        0);
    assert_string_equal(f, "(&(objectClass=group)(member:1.2.840.113556.1.4.1941:="
                           "CN=Abe\\5c, Alice \\28HQ\\29,OU=Staff,DC=corp,DC=example))");
    assert_int_equal(core_dir_chain_filter(&c, "CN=x*", f, 10), CORE_DIR_EINVAL);
}

static struct yt_doc *doc; /* the last load's: its strings are the config's */

static struct core_dir_cfg load(const char *yaml, int *rc, char *err, size_t errlen)
{
    struct core_dir_cfg c;
    memset(&c, 0, sizeof(c));
    yt_free(doc);
    doc = NULL;
    *rc = yt_load_buf("t.yaml", yaml, strlen(yaml), &doc, err, errlen);
    if (*rc == 0) {
        struct yt_ctx ctx = {.doc = doc, .err = err, .errlen = errlen};
        *rc = yt_apply(core_dir_keys, yt_root(doc), &c, &ctx);
    }
    return c;
}

static void test_defaults(void **state)
{
    int rc;
    char err[512] = "";
    struct core_dir_cfg c = load("url: ldaps://dc1:636\nbase_dn: DC=corp\n", &rc, err, sizeof(err));
    assert_int_equal(rc, 0);
    assert_int_equal(c.schema, CORE_DIR_AD);
    assert_string_equal(c.attrs.name, "sAMAccountName");
    assert_string_equal(c.attrs.upn, "userPrincipalName");
    assert_string_equal(c.disabled_filter, "(userAccountControl:1.2.840.113556.1.4.803:=2)");
    assert_int_equal(c.groups, CORE_DIR_G_IN_CHAIN);
    c = load("url: ldap://h:389\nbase_dn: dc=x\nschema: ldap\n", &rc, err, sizeof(err));
    assert_int_equal(rc, 0);
    assert_string_equal(c.attrs.name, "uid");
    assert_string_equal(c.disabled_filter, "");
    assert_int_equal(c.groups, CORE_DIR_G_MEMBER);
    c = load("url: http://h\nbase_dn: dc=x\n", &rc, err, sizeof(err));
    assert_true(rc < 0);
    assert_non_null(strstr(err, "ldap://HOST:PORT or ldaps://HOST:PORT"));
    c = load("url: ldap://h\n", &rc, err, sizeof(err));
    assert_true(rc < 0);
    assert_non_null(strstr(err, "base_dn is required"));
    yt_free(doc);
    doc = NULL;
}

static void test_unreachable(void **state)
{
    int rc;
    char err[512] = "";
    /* port 1 on loopback: nothing listens; no cache: the lookup is refused */
    struct core_dir_cfg c = load("url: ldap://127.0.0.1:1\nbase_dn: dc=x\nstarttls: false\n"
                                 "timeout: 500ms\n",
                                 &rc, err, sizeof(err));
    assert_int_equal(rc, 0);
    struct core_dir *d;
    assert_int_equal(core_dir_open(&c, &d, err, sizeof(err)), 0);
    struct core_dir_user u;
    assert_int_equal(core_dir_lookup(d, "alice", 1000, &u, err, sizeof(err)), CORE_DIR_EUNAVAIL);
    assert_int_equal(core_dir_lookup(d, "", 1000, &u, err, sizeof(err)), CORE_DIR_EINVAL);
    core_dir_close(d);
    yt_free(doc);
    doc = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain_filter),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_unreachable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
