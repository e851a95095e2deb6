/*
 * test_jwt: the Bearer token's user claim (eas/jwt.h), called directly: the
 * claims and their order of preference, JSON the scanner must step over,
 * JSON it must refuse, the token's shape and its bounds. test_easq keeps
 * its own Bearer cases, which check the same through the Authorization
 * header (user and domain split, precedence over the query).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/b64.h"
#include "eas/easq.h"
#include "eas/jwt.h"

/* header.payload.signature around a JSON payload (base64url, unpadded). */
static void token_of(const char *payload, char *out, size_t n)
{
    char p[12000];
    assert_int_equal(b64_encode(payload, strlen(payload), p, sizeof(p), B64_URL | B64_NOPAD, NULL),
                     0);
    snprintf(out, n, "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.%s.c2lnbmF0dXJl", p);
}

static int user_of(const char *payload, char *user, size_t n)
{
    char t[16000];
    token_of(payload, t, sizeof(t));
    return jwt_user(t, strlen(t), user, n);
}

static void test_claims(void **state)
{
    (void)state;
    static const struct {
        const char *payload, *user;
    } ok[] = {
        {"{\"upn\":\"alice@corp.example\"}", "alice@corp.example"},
        {"{\"aud\":\"x\",\"unique_name\":\"CORP\\\\bob\",\"iat\":1700000000}", "CORP\\bob"},
        {"{\"preferred_username\":\"carol@corp.example\",\"ver\":\"2.0\"}", "carol@corp.example"},
        /* upn wins over the others, whatever the order */
        {"{\"preferred_username\":\"p@x\",\"unique_name\":\"u@x\",\"upn\":\"upn@x\"}", "upn@x"},
        {"{\"upn\":\"upn@x\",\"unique_name\":\"u@x\"}", "upn@x"},
        {"{\"unique_name\":\"u@x\",\"preferred_username\":\"p@x\"}", "u@x"},
        /* nested values, arrays, escapes and literals are skipped */
        {"{\"a\":{\"b\":[1,2,{\"upn\":\"no@no\"}],\"c\":null},\"d\":[true,false,-1.5e3],"
         "\"e\":\"q\\\"\\\\\\/\",\"upn\":\"d\\u00e9v@corp.example\"}",
         "d\xc3\xa9v@corp.example"},
        {" {\n \"upn\" : \"s@x\" \n} ", "s@x"},
        /* escapes in the claim itself */
        {"{\"upn\":\"a\\/b\\\"c\"}", "a/b\"c"},
        /* a surrogate pair decodes to 4-byte UTF-8 */
        {"{\"upn\":\"\\ud83d\\ude00@x\"}", "\xf0\x9f\x98\x80@x"},
        /* an empty preferred claim does not hide a later one */
        {"{\"upn\":\"\",\"unique_name\":\"u@x\"}", "u@x"},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char user[EASQ_STR_MAX + 1];
        int rc = user_of(ok[i].payload, user, sizeof(user));
        if (rc)
            fail_msg("payload %zu: %s", i, easq_strerror(rc));
        assert_string_equal(user, ok[i].user);
    }
}

static void test_refused(void **state)
{
    (void)state;
    static const struct {
        const char *payload;
        int want;
    } bad[] = {
        {"{\"sub\":\"123\"}", EASQ_E_JWT},
        {"{}", EASQ_E_JWT},
        {"[\"upn\",\"a@b\"]", EASQ_E_JWT},
        {"{\"upn\":42}", EASQ_E_JWT},
        {"{\"upn\":\"\"}", EASQ_E_JWT},
        {"{\"upn\":\"a@b\"", EASQ_E_JWT},
        {"{\"upn\" \"a@b\"}", EASQ_E_JWT},
        {"{\"upn\":\"a@b\",}", EASQ_E_JWT},
        {"{\"upn\":\"a\\x\"}", EASQ_E_JWT},
        {"{\"upn\":\"\\ud83d\"}", EASQ_E_JWT},
        {"{\"upn\":\"\\ude00\"}", EASQ_E_JWT},
        {"{\"upn\":\"a\\u00zz\"}", EASQ_E_JWT},
        {"{\"upn\":\"a\\u0000b\"}", EASQ_E_NUL},
        {"{\"upn\":\"a\\nb\"}", EASQ_E_CTRL},
        {"{\"upn\":\"a\x7f\"}", EASQ_E_CTRL},
        {"{\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],"
         "\"upn\":\"a@b\"}",
         EASQ_E_JWT},
        {"not json", EASQ_E_JWT},
        {"", EASQ_E_JWT},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char user[EASQ_STR_MAX + 1];
        int rc = user_of(bad[i].payload, user, sizeof(user));
        if (rc != bad[i].want)
            fail_msg("payload '%s': got %d (%s), want %d", bad[i].payload, rc, easq_strerror(rc),
                     bad[i].want);
    }
}

static void test_token_shape(void **state)
{
    (void)state;
    char user[64];
    static const char *const bad[] = {"",
                                      "abc",
                                      "a.b",
                                      "a..c",
                                      "a.!!!.c",
                                      "a.eyJ1cG4iOiJhQGIifQ==x.c",
                                      "a.eyJ1cG4iOiJhQGIifQ+.c"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(jwt_user(bad[i], strlen(bad[i]), user, sizeof(user)), EASQ_E_JWT);
    /* padded or not, the payload reads the same; the signature is not looked at */
    const char *t = "h.eyJ1cG4iOiJhQGIifQ==.s";
    assert_int_equal(jwt_user(t, strlen(t), user, sizeof(user)), 0);
    assert_string_equal(user, "a@b");
    t = "h.eyJ1cG4iOiJhQGIifQ.";
    assert_int_equal(jwt_user(t, strlen(t), user, sizeof(user)), 0);
    assert_string_equal(user, "a@b");
    assert_int_equal(jwt_user(NULL, 0, user, sizeof(user)), EASQ_E_INVAL);
    assert_int_equal(jwt_user(t, strlen(t), NULL, 0), EASQ_E_INVAL);
}

static void test_bounds(void **state)
{
    (void)state;
    char user[EASQ_STR_MAX + 1], small[4];
    /* the claim must fit the caller's field */
    assert_int_equal(user_of("{\"upn\":\"a@bc\"}", small, sizeof(small)), EASQ_E_TOO_LONG);
    char payload[600];
    snprintf(payload, sizeof(payload), "{\"upn\":\"%0300d\"}", 7);
    assert_int_equal(user_of(payload, user, sizeof(user)), EASQ_E_TOO_LONG);
    /* a payload over 8 KiB is refused before it is scanned */
    static char big[9000];
    memset(big, ' ', sizeof(big) - 1);
    memcpy(big, "{\"upn\":\"a@b\"}", 13);
    assert_int_equal(user_of(big, user, sizeof(user)), EASQ_E_TOO_LONG);
    big[8000] = '\0';
    assert_int_equal(user_of(big, user, sizeof(user)), 0);
    assert_string_equal(user, "a@b");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claims),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_token_shape),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
