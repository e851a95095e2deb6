/* test_jwks: Bearer tokens checked against a JSON Web Key Set. Keys are
 * made here with OpenSSL (RSA 2048 and P-256), published as a JWKS, and
 * tokens signed with them: valid RS256 and ES256 pass; another key, a
 * changed payload, alg none or HS256 (a public key used as an HMAC secret),
 * an unknown kid, exp, nbf, iss and aud failures, malformed tokens and
 * duplicate claims do not; key set files with errors say where. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/b64.h"
#include "common/jwks.h"

#define NOW 1800000000

static EVP_PKEY *rsa1, *rsa2, *ec1;
static char jwks_json[8192];

static void b64u(const void *d, size_t n, char *out, size_t cap)
{
    assert_int_equal(b64_encode(d, n, out, cap, B64_URL | B64_NOPAD, NULL), 0);
}

static void bn_b64u(const EVP_PKEY *k, const char *param, char *out, size_t cap)
{
    BIGNUM *bn = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
    unsigned char buf[512];
    int n = BN_bn2bin(bn, buf);
    b64u(buf, (size_t)n, out, cap);
    BN_free(bn);
}

static int setup(void **state)
{
    rsa1 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    rsa2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    ec1 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(rsa1);
    assert_non_null(rsa2);
    assert_non_null(ec1);
    char n[600], e[16], x[64], y[64];
    bn_b64u(rsa1, OSSL_PKEY_PARAM_RSA_N, n, sizeof(n));
    bn_b64u(rsa1, OSSL_PKEY_PARAM_RSA_E, e, sizeof(e));
    unsigned char pub[65];
    size_t pl;
    assert_int_equal(
        EVP_PKEY_get_octet_string_param(ec1, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &pl), 1);
    assert_int_equal(pl, 65);
    b64u(pub + 1, 32, x, sizeof(x));
    b64u(pub + 33, 32, y, sizeof(y));
    snprintf(
        jwks_json, sizeof(jwks_json),
        "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r1\",\"use\":\"sig\",\"n\":\"%s\",\"e\":\"%s\"},"
        "{\"kty\":\"EC\",\"kid\":\"e1\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"},"
        "{\"kty\":\"RSA\",\"kid\":\"enc\",\"use\":\"enc\",\"n\":\"x\",\"e\":\"y\"},"
        "{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}",
        n, e, x, y);
    return 0;
}

static int teardown(void **state)
{
    EVP_PKEY_free(rsa1);
    EVP_PKEY_free(rsa2);
    EVP_PKEY_free(ec1);
    return 0;
}

static struct jwks *load(void)
{
    struct jwks *ks;
    char err[512];
    if (jwks_load_buf("jwks.json", jwks_json, strlen(jwks_json), &ks, err, sizeof(err)))
        fail_msg("%s", err);
    assert_int_equal(jwks_count(ks), 2);
    return ks;
}

/* header.payload.signature, signed by key (NULL: an unsigned "none"). */
static void token(char *out, size_t cap, const char *hdr, const char *claims, EVP_PKEY *key)
{
    char h[512], c[2048];
    b64u(hdr, strlen(hdr), h, sizeof(h));
    b64u(claims, strlen(claims), c, sizeof(c));
    int n = snprintf(out, cap, "%s.%s", h, c);
    unsigned char sig[600];
    size_t sl = sizeof(sig);
    if (key) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key), 1);
        assert_int_equal(EVP_DigestSign(md, sig, &sl, (unsigned char *)out, (size_t)n), 1);
        EVP_MD_CTX_free(md);
        if (EVP_PKEY_is_a(key, "EC")) { /* DER to r || s */
            const unsigned char *p = sig;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sl);
            assert_non_null(es);
            unsigned char raw[64];
            BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32);
            BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32);
            ECDSA_SIG_free(es);
            memcpy(sig, raw, 64);
            sl = 64;
        }
    } else {
        sl = 0;
    }
    out[n++] = '.';
    b64u(sig, sl, out + n, cap - (size_t)n);
}

static int verify(const struct jwks *ks, const char *t, const char *iss, const char *aud)
{
    struct jwks_check chk = {.issuer = iss, .audience = aud, .now_s = NOW, .leeway_s = 60};
    return jwks_verify(ks, t, strlen(t), &chk);
}

#define CLAIMS                                                                                     \
    "{\"upn\":\"alice@corp.example\",\"exp\":1800000600,\"nbf\":1799999000,"                       \
    "\"iss\":\"https://idp.example\",\"aud\":[\"x\",\"eas\"]}"

static void valid_tokens(void **state)
{
    struct jwks *ks = load();
    char t[4096];
    token(t, sizeof(t), "{\"alg\":\"RS256\",\"kid\":\"r1\"}", CLAIMS, rsa1);
    assert_int_equal(verify(ks, t, "https://idp.example", "eas"), 0);
    assert_int_equal(verify(ks, t, NULL, NULL), 0);
    token(t, sizeof(t), "{\"alg\":\"RS256\"}", CLAIMS, rsa1); /* no kid: any RSA key */
    assert_int_equal(verify(ks, t, NULL, NULL), 0);
    token(t, sizeof(t), "{\"alg\":\"ES256\",\"kid\":\"e1\",\"typ\":\"JWT\"}", CLAIMS, ec1);
    assert_int_equal(verify(ks, t, "https://idp.example", "eas"), 0);
    jwks_free(ks);
}

static void forged_tokens(void **state)
{
    struct jwks *ks = load();
    char t[4096];
    token(t, sizeof(t), "{\"alg\":\"RS256\",\"kid\":\"r1\"}", CLAIMS, rsa2);
    assert_int_equal(verify(ks, t, NULL, NULL), JWKS_E_SIGNATURE);
    token(t, sizeof(t), "{\"alg\":\"RS256\",\"kid\":\"nope\"}", CLAIMS, rsa1);
    assert_int_equal(verify(ks, t, NULL, NULL), JWKS_E_KID);
    token(t, sizeof(t), "{\"alg\":\"none\"}", CLAIMS, NULL);
    assert_int_equal(verify(ks, t, NULL, NULL), JWKS_E_ALG);
    token(t, sizeof(t), "{\"alg\":\"ES256\",\"kid\":\"e1\"}", CLAIMS, rsa1); /* wrong length */
    assert_int_equal(verify(ks, t, NULL, NULL), JWKS_E_SIGNATURE);
    token(t, sizeof(t), "{\"alg\":\"RS256\",\"kid\":\"e1\"}", CLAIMS, rsa1); /* kid of EC */
    assert_int_equal(verify(ks, t, NULL, NULL), JWKS_E_KID);

    /* HS256 keyed with the public key's text: the classic confusion */
    char h[256], c[1024], in[2048], sig[64];
    const char *hdr = "{\"alg\":\"HS256\"}";
    b64u(hdr, strlen(hdr), h, sizeof(h));
    b64u(CLAIMS, strlen(CLAIMS), c, sizeof(c));
    int n = snprintf(in, sizeof(in), "%s.%s", h, c);
    unsigned char mac[32];
    unsigned ml;
    HMAC(EVP_sha256(), jwks_json, (int)strlen(jwks_json), (unsigned char *)in, (size_t)n, mac, &ml);
    b64u(mac, ml, sig, sizeof(sig));
    snprintf(t, sizeof(t), "%s.%s", in, sig);
    assert_int_equal(verify(ks, t, NULL, NULL), JWKS_E_ALG);

    /* a valid token whose payload was changed afterwards */
    token(t, sizeof(t), "{\"alg\":\"RS256\",\"kid\":\"r1\"}", CLAIMS, rsa1);
    char *d1 = strchr(t, '.'), *d2 = strchr(d1 + 1, '.');
    char other[1024];
    const char *evil = "{\"upn\":\"mallory@corp.example\",\"exp\":1800000600}";
    b64u(evil, strlen(evil), other, sizeof(other));
    char forged[4096];
    snprintf(forged, sizeof(forged), "%.*s.%s%s", (int)(d1 - t), t, other, d2);
    assert_int_equal(verify(ks, forged, NULL, NULL), JWKS_E_SIGNATURE);
    jwks_free(ks);
}

static void claims(void **state)
{
    struct jwks *ks = load();
    char t[4096];
    const char *hdr = "{\"alg\":\"ES256\",\"kid\":\"e1\"}";
    struct {
        const char *claims, *iss, *aud;
        int want;
    } c[] = {
        {"{\"exp\":1800000000}", NULL, NULL, 0},              /* now, within the leeway */
        {"{\"exp\":1799999940}", NULL, NULL, JWKS_E_EXPIRED}, /* leeway ends */
        {"{\"sub\":\"x\"}", NULL, NULL, JWKS_E_EXPIRED},      /* no exp */
        {"{\"exp\":\"1800000600\"}", NULL, NULL, JWKS_E_EXPIRED},
        {"{\"exp\":1800000600,\"nbf\":1800000060}", NULL, NULL, 0},
        {"{\"exp\":1800000600,\"nbf\":1800000061}", NULL, NULL, JWKS_E_NOT_YET},
        {"{\"exp\":1800000600,\"iss\":\"https://evil\"}", "https://idp.example", NULL,
         JWKS_E_ISSUER},
        {"{\"exp\":1800000600}", "https://idp.example", NULL, JWKS_E_ISSUER},
        {"{\"exp\":1800000600,\"aud\":\"eas\"}", NULL, "eas", 0},
        {"{\"exp\":1800000600,\"aud\":\"other\"}", NULL, "eas", JWKS_E_AUDIENCE},
        {"{\"exp\":1800000600,\"aud\":[1,\"eas2\"]}", NULL, "eas", JWKS_E_AUDIENCE},
        {"{\"exp\":1800000600}", NULL, "eas", JWKS_E_AUDIENCE},
        /* the same claim twice: which one would be read? neither */
        {"{\"exp\":1800000600,\"upn\":\"a\",\"upn\":\"b\"}", NULL, NULL, JWKS_E_FORMAT},
        {"[1,2]", NULL, NULL, JWKS_E_FORMAT},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        token(t, sizeof(t), hdr, c[i].claims, ec1);
        int rc = verify(ks, t, c[i].iss, c[i].aud);
        if (rc != c[i].want)
            fail_msg("%s: got %d (%s), want %d", c[i].claims, rc, jwks_strerror(rc), c[i].want);
    }
    jwks_free(ks);
}

static void malformed_tokens(void **state)
{
    struct jwks *ks = load();
    const char *bad[] = {
        "",           "a",        "a.b",        "a.b.c.d",
        "...",        "e30.e30.", "e30.e30.!!", "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.AAAA",
        "e30=.e30.AA"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = verify(ks, bad[i], NULL, NULL);
        if (rc >= 0)
            fail_msg("'%s' passed", bad[i]);
    }
    char *big = malloc(JWKS_TOKEN_MAX + 2);
    assert_non_null(big);
    memset(big, 'a', JWKS_TOKEN_MAX + 1);
    big[JWKS_TOKEN_MAX + 1] = '\0';
    assert_int_equal(verify(ks, big, NULL, NULL), JWKS_E_TOO_LONG);
    free(big);
    jwks_free(ks);
}

static void key_set_errors(void **state)
{
    struct {
        const char *json, *want;
    } c[] = {
        {"{\"keys\": [", "k.json:1:10:"},
        {"[]", "is an object with a \"keys\" list"},
        {"{\"keys\":[]}", "no RSA or P-256 signing key"},
        {"{\"keys\":[{\"kty\":\"oct\",\"k\":\"AA\"}]}", "no RSA or P-256 signing key"},
        {"{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
         "keys[0]: an RSA key shorter"},
        {"{\"keys\":[{\"kty\":\"RSA\"}]}", "keys[0]: an RSA key needs"},
        {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\"}]}",
         "keys[0]: only EC keys on P-256"},
        {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":"
         "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
         "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}",
         "keys[0]: the EC key is not a point"},
        {"{\"keys\":[{\"use\":\"sig\"}]}", "keys[0]: a key without \"kty\""},
        {"{\"keys\":[1]}", "keys[0]: a key is not a JSON object"},
        {"{\"keys\":[],\"keys\":[]}", "k.json:1:"},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        struct jwks *ks = (struct jwks *)1;
        char err[512] = "";
        assert_int_not_equal(
            jwks_load_buf("k.json", c[i].json, strlen(c[i].json), &ks, err, sizeof(err)), 0);
        assert_null(ks);
        if (!strstr(err, c[i].want))
            fail_msg("%s: '%s' lacks '%s'", c[i].json, err, c[i].want);
    }
    /* from a file */
    char path[] = "/tmp/test_jwks.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, jwks_json, strlen(jwks_json)), (ssize_t)strlen(jwks_json));
    close(fd);
    struct jwks *ks;
    char err[512];
    assert_int_equal(jwks_load(path, &ks, err, sizeof(err)), 0);
    assert_int_equal(jwks_count(ks), 2);
    jwks_free(ks);
    unlink(path);
    assert_int_not_equal(jwks_load(path, &ks, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "cannot open"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_tokens),   cmocka_unit_test(forged_tokens),
        cmocka_unit_test(claims),         cmocka_unit_test(malformed_tokens),
        cmocka_unit_test(key_set_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
