/*
 * fuzz_jwks: libFuzzer target for Bearer token checking (common/jwks.h).
 * A key set of one RSA and one P-256 key is made at start; every input is a
 * token. Whatever the bytes, nothing is read past them (ASan), the answer is
 * one of the documented codes, and no input without a signature by one of
 * the keys passes (the fuzzer cannot sign, so 0 is a failure).
 */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/b64.h"
#include "common/jwks.h"

static struct jwks *ks;

static void param(EVP_PKEY *k, const char *name, char *out, size_t cap)
{
    BIGNUM *bn = NULL;
    unsigned char buf[512];
    if (EVP_PKEY_get_bn_param(k, name, &bn) != 1)
        abort();
    int n = BN_bn2bin(bn, buf);
    BN_free(bn);
    b64_encode(buf, (size_t)n, out, cap, B64_URL | B64_NOPAD, NULL);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    char n[600], e[16], x[64], y[64], json[2048], err[256];
    unsigned char pub[65];
    size_t pl;
    if (!rsa || !ec ||
        EVP_PKEY_get_octet_string_param(ec, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &pl) != 1)
        abort();
    param(rsa, OSSL_PKEY_PARAM_RSA_N, n, sizeof(n));
    param(rsa, OSSL_PKEY_PARAM_RSA_E, e, sizeof(e));
    b64_encode(pub + 1, 32, x, sizeof(x), B64_URL | B64_NOPAD, NULL);
    b64_encode(pub + 33, 32, y, sizeof(y), B64_URL | B64_NOPAD, NULL);
    snprintf(json, sizeof(json),
             "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r\",\"n\":\"%s\",\"e\":\"%s\"},"
             "{\"kty\":\"EC\",\"kid\":\"e\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}]}",
             n, e, x, y);
    if (jwks_load_buf("fuzz", json, strlen(json), &ks, err, sizeof(err)))
        abort();
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1);
    if (!copy)
        abort();
    memcpy(copy, data, size);
    struct jwks_check chk = {.issuer = "i", .audience = "a", .now_s = 1800000000, .leeway_s = 60};
    int rc = jwks_verify(ks, copy, size, &chk);
    if (rc >= 0 || rc < JWKS_E_NOMEM)
        abort();
    struct jwks *k2;
    char err[256];
    if (jwks_load_buf("fuzz", copy, size, &k2, err, sizeof(err)) == 0)
        jwks_free(k2);
    free(copy);
    return 0;
}
