/*
 * test_b64: common/b64 against RFC 4648's test vectors (section 10), both
 * alphabets, padding on and off, the strict decoder's refusals (one
 * spelling per byte sequence), the lax mode, buffer bounds, and a
 * round trip over every length and byte value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/b64.h"

static void enc_is(const char *in, unsigned flags, const char *want)
{
    char out[64];
    size_t n = 99;
    assert_int_equal(b64_encode(in, strlen(in), out, sizeof(out), flags, &n), 0);
    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
    assert_int_equal(b64_encoded_len(strlen(in), flags), strlen(want));
}

static void dec_is(const char *in, unsigned flags, const char *want)
{
    char out[64];
    size_t n = 99;
    assert_int_equal(b64_decode(in, strlen(in), out, sizeof(out), flags, &n), 0);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, n);
}

static void dec_err(const char *in, unsigned flags, int want)
{
    unsigned char out[64];
    size_t n = 99;
    assert_int_equal(b64_decode(in, strlen(in), out, sizeof(out), flags, &n), want);
    assert_int_equal(n, 99); /* untouched on error */
}

static void test_rfc4648_vectors(void **state)
{
    (void)state;
    static const char *const v[][3] = {
        {"", "", ""},
        {"f", "Zg==", "Zg"},
        {"fo", "Zm8=", "Zm8"},
        {"foo", "Zm9v", "Zm9v"},
        {"foob", "Zm9vYg==", "Zm9vYg"},
        {"fooba", "Zm9vYmE=", "Zm9vYmE"},
        {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        enc_is(v[i][0], 0, v[i][1]);
        enc_is(v[i][0], B64_NOPAD, v[i][2]);
        dec_is(v[i][1], 0, v[i][0]);
        dec_is(v[i][1], B64_NOPAD, v[i][0]); /* padding allowed, not required */
        dec_is(v[i][2], B64_NOPAD, v[i][0]);
        dec_is(v[i][1], B64_LAX, v[i][0]);
    }
}

static void test_url_alphabet(void **state)
{
    (void)state;
    const char bytes[] = "\xfb\xff\xbf";
    enc_is(bytes, 0, "+/+/");
    enc_is(bytes, B64_URL, "-_-_");
    dec_is("-_-_", B64_URL, bytes);
    dec_err("+/+/", B64_URL, B64_E_CHAR);
    dec_err("-_-_", 0, B64_E_CHAR);
    /* a JWT segment: URL alphabet, no padding */
    enc_is("{\"upn\":\"a\"}", B64_URL | B64_NOPAD, "eyJ1cG4iOiJhIn0");
    dec_is("eyJ1cG4iOiJhIn0", B64_URL | B64_NOPAD, "{\"upn\":\"a\"}");
}

static void test_strict_refusals(void **state)
{
    (void)state;
    dec_err("Zm9\nYg==", 0, B64_E_CHAR);    /* a line break */
    dec_err("Zm 9", 0, B64_E_CHAR);         /* a space */
    dec_err("Zm9v\n", 0, B64_E_TRUNCATED);  /* refused all the same: the length is checked first */
    dec_err("Zm9v*A==", 0, B64_E_CHAR);     /* outside the alphabet */
    dec_err("Zm\x80v", 0, B64_E_CHAR);      /* a byte >= 0x80 */
    dec_err("Zg", 0, B64_E_PAD);            /* padding required by default */
    dec_err("Zm8", 0, B64_E_PAD);           /* ... */
    dec_err("Zg=", B64_NOPAD, B64_E_PAD);   /* present but short */
    dec_err("Zm8==", B64_NOPAD, B64_E_PAD); /* present but long */
    dec_err("Zg==Zg==", 0, B64_E_CHAR);     /* padding in the middle */
    dec_err("Z===", 0, B64_E_CHAR);         /* a third '=' */
    dec_err("Zh==", 0, B64_E_BITS);         /* "f" spelt a second way */
    dec_err("Zm9=", 0, B64_E_BITS);         /* "fo" likewise */
    dec_err("Zh", B64_NOPAD, B64_E_BITS);
    dec_err("Z", B64_NOPAD, B64_E_TRUNCATED); /* one character into a group */
    dec_err("Zm9vY", B64_NOPAD, B64_E_TRUNCATED);
    dec_err("==", 0, B64_E_TRUNCATED); /* padding only */
    dec_err("=", B64_NOPAD, B64_E_TRUNCATED);
}

static void test_lax(void **state)
{
    (void)state;
    dec_is(" Zm9v\r\nYmFy\t", B64_LAX, "foobar");
    dec_is("Zm 9v Yg = =", B64_LAX, "foob");
    dec_is("Zh==", B64_LAX, "f"); /* leftover bits are ignored */
    dec_is("", B64_LAX, "");
    dec_is("  ", B64_LAX, "");
    dec_is("Zm8", B64_LAX | B64_NOPAD, "fo");
    dec_err("Zm8", B64_LAX, B64_E_PAD);
    dec_err("Zg=k", B64_LAX, B64_E_CHAR); /* data after padding */
    dec_err("Zg===", B64_LAX, B64_E_PAD);
    dec_err("==", B64_LAX, B64_E_PAD);
    dec_err("Zm9vY", B64_LAX, B64_E_TRUNCATED);
    dec_err("Zm*v", B64_LAX, B64_E_CHAR);
}

static void test_bounds(void **state)
{
    (void)state;
    char out[9];
    unsigned char bin[4];
    size_t n = 0;
    /* "foobar" needs 8 characters and the NUL */
    assert_int_equal(b64_encode("foobar", 6, out, 8, 0, &n), B64_E_SPACE);
    assert_int_equal(b64_encode("foobar", 6, out, sizeof(out), 0, &n), 0);
    assert_string_equal(out, "Zm9vYmFy");
    assert_int_equal(b64_encode("x", 1, NULL, 0, 0, &n), B64_E_SPACE);
    /* "foobar" decodes to 6 bytes; room for 4 is too little either way */
    assert_int_equal(b64_decode("Zm9vYmFy", 8, bin, sizeof(bin), 0, &n), B64_E_SPACE);
    assert_int_equal(b64_decode("Zm9vYmFy", 8, bin, sizeof(bin), B64_LAX, &n), B64_E_SPACE);
    assert_int_equal(b64_decode("Zm9vYg==", 8, bin, sizeof(bin), 0, &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(b64_decode("Zm9vYmE=", 8, bin, sizeof(bin), B64_LAX, &n), B64_E_SPACE);
    assert_int_equal(b64_decode("", 0, NULL, 0, 0, &n), 0);
    assert_int_equal(n, 0);
    assert_true(b64_decoded_max(8) >= 6);
    assert_true(b64_decoded_max(3) >= 2);
}

static void test_round_trip(void **state)
{
    (void)state;
    unsigned char in[300], back[300];
    char txt[420];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (unsigned char)(i * 7 + 3);
    static const unsigned fl[] = {0, B64_NOPAD, B64_URL, B64_URL | B64_NOPAD};
    for (size_t f = 0; f < 4; f++) {
        for (size_t len = 0; len <= sizeof(in); len++) {
            size_t n, m;
            assert_int_equal(b64_encode(in, len, txt, sizeof(txt), fl[f], &n), 0);
            assert_int_equal(n, b64_encoded_len(len, fl[f]));
            assert_true(b64_decoded_max(n) >= len);
            assert_int_equal(b64_decode(txt, n, back, sizeof(back), fl[f], &m), 0);
            assert_int_equal(m, len);
            assert_memory_equal(back, in, len);
        }
    }
    char *s = b64_encode_alloc("foobar", 6, 0);
    assert_non_null(s);
    assert_string_equal(s, "Zm9vYmFy");
    free(s);
    s = b64_encode_alloc("", 0, 0);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
}

static void test_strerror(void **state)
{
    (void)state;
    for (int e = B64_E_SPACE; e <= 0; e++)
        assert_string_not_equal(b64_strerror(e), "unknown base64 error");
    assert_string_equal(b64_strerror(-99), "unknown base64 error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors), cmocka_unit_test(test_url_alphabet),
        cmocka_unit_test(test_strict_refusals), cmocka_unit_test(test_lax),
        cmocka_unit_test(test_bounds),          cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
