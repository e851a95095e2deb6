/* certbind: the certificate-to-request rule, on certificates made here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "proxy/certbind.h"

#include <openssl/evp.h>
#include <openssl/x509v3.h>

static EVP_PKEY *key;

/* cn NULL: no CN; san NULL: no subjectAltName (else OpenSSL syntax). */
static X509 *mk(const char *cn, const char *san)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"t", -1, -1, 0);
    if (cn)
        X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, n);
    if (san) {
        X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
        assert_non_null(e);
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    X509_set_pubkey(x, key);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    return x;
}

static int setup(void **st)
{
    (void)st;
    key = EVP_EC_gen("P-256");
    return key ? 0 : -1;
}

static int teardown(void **st)
{
    (void)st;
    EVP_PKEY_free(key);
    return 0;
}

static void test_match(void **st)
{
    (void)st;
    X509 *x = mk("alice", "URI:urn:easgate:device:ANDROIDC123,email:alice@example.com");
    assert_int_equal(certbind_check(x, "ANDROIDC123", "alice", NULL), CERTBIND_OK);
    /* user forms: DOMAIN\user split by the parser, UPN, case */
    assert_int_equal(certbind_check(x, "ANDROIDC123", "alice", "CORP"), CERTBIND_OK);
    assert_int_equal(certbind_check(x, "ANDROIDC123", "alice@corp.example", NULL), CERTBIND_OK);
    assert_int_equal(certbind_check(x, "ANDROIDC123", "ALICE", ""), CERTBIND_OK);
    X509_free(x);
}

/* The device half alone hands back the CN, whatever the request's user. */
static void test_device_user(void **st)
{
    (void)st;
    char cn[CERTBIND_CN_MAX];
    X509 *x = mk("CORP\\alice", "URI:urn:easgate:device:ANDROIDC123");
    assert_int_equal(certbind_device_user(x, "ANDROIDC123", cn, sizeof(cn)), CERTBIND_OK);
    assert_string_equal(cn, "CORP\\alice");
    assert_int_equal(certbind_device_user(x, "OTHER", cn, sizeof(cn)), CERTBIND_DEVICE);
    assert_int_equal(certbind_device_user(x, "ANDROIDC123", cn, 4), CERTBIND_NO_USER);
    X509_free(x);
    x = mk("alice", "email:alice@example.com");
    assert_int_equal(certbind_device_user(x, "ANDROIDC123", cn, sizeof(cn)), CERTBIND_NO_DEVICE);
    X509_free(x);
}

static void test_device(void **st)
{
    (void)st;
    X509 *x = mk("alice", "URI:urn:easgate:device:ANDROIDC123");
    assert_int_equal(certbind_check(x, "ANDROIDC124", "alice", NULL), CERTBIND_DEVICE);
    assert_int_equal(certbind_check(x, "", "alice", NULL), CERTBIND_DEVICE);
    assert_int_equal(certbind_check(x, "ANDROIDC12", "alice", NULL), CERTBIND_DEVICE);
    X509_free(x);
    /* the URI is normalised like the request: lower case in the cert is fine */
    x = mk("alice", "URI:URN:EASGATE:DEVICE:androidc123");
    assert_int_equal(certbind_check(x, "ANDROIDC123", "alice", NULL), CERTBIND_OK);
    X509_free(x);
    /* two device URIs: either names the device */
    x = mk("alice", "URI:urn:easgate:device:ONE,URI:urn:easgate:device:TWO");
    assert_int_equal(certbind_check(x, "TWO", "alice", NULL), CERTBIND_OK);
    assert_int_equal(certbind_check(x, "THREE", "alice", NULL), CERTBIND_DEVICE);
    X509_free(x);
}

static void test_no_device(void **st)
{
    (void)st;
    X509 *x = mk("alice", NULL);
    assert_int_equal(certbind_check(x, "ANDROIDC123", "alice", NULL), CERTBIND_NO_DEVICE);
    X509_free(x);
    x = mk("alice", "URI:https://example.com/ANDROIDC123,email:a@b.c,DNS:ANDROIDC123");
    assert_int_equal(certbind_check(x, "ANDROIDC123", "alice", NULL), CERTBIND_NO_DEVICE);
    X509_free(x);
    /* the bare prefix names nothing */
    x = mk("alice", "URI:urn:easgate:device:");
    assert_int_equal(certbind_check(x, "ANDROIDC123", "alice", NULL), CERTBIND_NO_DEVICE);
    X509_free(x);
}

static void test_user(void **st)
{
    (void)st;
    X509 *x = mk("alice", "URI:urn:easgate:device:D1");
    assert_int_equal(certbind_check(x, "D1", "bob", NULL), CERTBIND_USER);
    assert_int_equal(certbind_check(x, "D1", "bob", "CORP"), CERTBIND_USER);
    assert_int_equal(certbind_check(x, "D1", "alicex", NULL), CERTBIND_USER);
    assert_int_equal(certbind_check(x, "D1", "", NULL), CERTBIND_USER);
    assert_int_equal(certbind_check(x, "D1", NULL, NULL), CERTBIND_USER);
    X509_free(x);
    /* a CN with a domain: the domain counts only when the request has one */
    x = mk("CORP\\alice", "URI:urn:easgate:device:D1");
    assert_int_equal(certbind_check(x, "D1", "alice", NULL), CERTBIND_OK);
    assert_int_equal(certbind_check(x, "D1", "alice", "corp"), CERTBIND_OK);
    assert_int_equal(certbind_check(x, "D1", "alice", "OTHER"), CERTBIND_USER);
    X509_free(x);
    x = mk(NULL, "URI:urn:easgate:device:D1");
    assert_int_equal(certbind_check(x, "D1", "alice", NULL), CERTBIND_NO_USER);
    X509_free(x);
    x = mk("", "URI:urn:easgate:device:D1");
    assert_int_equal(certbind_check(x, "D1", "alice", NULL), CERTBIND_NO_USER);
    X509_free(x);
}

/* A portal certificate names an enrollment: the id (upper-cased) comes out
 * and only the user half is checked here; a device URI wins over it. */
static void test_enrollment(void **st)
{
    (void)st;
    char id[CERTBIND_ENR_MAX + 1], cn[64];
    X509 *x = mk("alice", "URI:urn:easgate:enrollment:ab12CD34,email:alice@example.com");
    assert_int_equal(certbind_enrollment(x, id), 1);
    assert_string_equal(id, "AB12CD34");
    assert_int_equal(certbind_user(x, "alice", "CORP", cn, sizeof(cn)), CERTBIND_OK);
    assert_int_equal(certbind_user(x, "bob", NULL, cn, sizeof(cn)), CERTBIND_USER);
    assert_int_equal(certbind_user(x, NULL, NULL, cn, sizeof(cn)), CERTBIND_OK);
    assert_string_equal(cn, "alice");
    /* the device rule alone would refuse it: no device URI */
    assert_int_equal(certbind_check(x, "ANDROIDC123", "alice", NULL), CERTBIND_NO_DEVICE);
    X509_free(x);
    x = mk("alice", "URI:urn:easgate:enrollment:AB-12");
    assert_int_equal(certbind_enrollment(x, id), -1);
    assert_string_equal(id, "");
    X509_free(x);
    x = mk("alice", "URI:urn:easgate:enrollment:AAAAAAAAAAAAAAAAAAAAAAAAA"); /* 25: too long */
    assert_int_equal(certbind_enrollment(x, id), -1);
    X509_free(x);
    x = mk("alice", "URI:urn:easgate:device:PHONE1,URI:urn:easgate:enrollment:AB12");
    assert_int_equal(certbind_enrollment(x, id), 0);
    X509_free(x);
    x = mk("alice", "URI:urn:easgate:device:PHONE1");
    assert_int_equal(certbind_enrollment(x, id), 0);
    X509_free(x);
    x = mk(NULL, "URI:urn:easgate:enrollment:AB12");
    assert_int_equal(certbind_user(x, "alice", NULL, cn, sizeof(cn)), CERTBIND_NO_USER);
    X509_free(x);
}

static void test_strerror(void **st)
{
    (void)st;
    assert_string_equal(certbind_strerror(CERTBIND_OK), "ok");
    assert_string_equal(certbind_strerror(CERTBIND_DEVICE), "certificate names another device");
    assert_string_equal(certbind_strerror(99), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match),       cmocka_unit_test(test_device),
        cmocka_unit_test(test_device_user), cmocka_unit_test(test_no_device),
        cmocka_unit_test(test_user),        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_enrollment),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
