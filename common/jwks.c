/*
 * jwks: Bearer tokens checked against a JSON Web Key Set with OpenSSL. See
 * jwks.h for what is checked and why.
 */
#include "common/jwks.h"

#include "common/b64.h"

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JWKS_KID_MAX 128
#define JWKS_KEYS_MAX 64
#define JWKS_PART_MAX (8 * 1024) /* decoded header or payload */

enum kty { KTY_RSA, KTY_EC };

struct jwks_key {
    enum kty kty;
    char kid[JWKS_KID_MAX + 1]; /* "" when the key has none */
    EVP_PKEY *pkey;
};

struct jwks {
    size_t n;
    struct jwks_key keys[];
};

/* ---- loading ---- */

static BIGNUM *b64url_bn(const char *s)
{
    unsigned char buf[1024];
    size_t n;
    if (!s || b64_decode(s, strlen(s), buf, sizeof(buf), B64_URL | B64_NOPAD, &n) < 0 || n == 0)
        return NULL;
    return BN_bin2bn(buf, (int)n, NULL);
}

static EVP_PKEY *rsa_key(json_t *k, const char **why)
{
    BIGNUM *n = b64url_bn(json_string_value(json_object_get(k, "n")));
    BIGNUM *e = b64url_bn(json_string_value(json_object_get(k, "e")));
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    *why = "an RSA key needs \"n\" and \"e\" in base64url";
    if (!n || !e || !bld)
        goto out;
    *why = "an RSA key shorter than 2048 bits";
    if (BN_num_bits(n) < 2048)
        goto out;
    *why = "the RSA key does not load";
    if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
        !(params = OSSL_PARAM_BLD_to_param(bld)) ||
        !(ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) ||
        EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pkey = NULL;
out:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return pkey;
}

static EVP_PKEY *ec_key(json_t *k, const char **why)
{
    const char *crv = json_string_value(json_object_get(k, "crv"));
    const char *xs = json_string_value(json_object_get(k, "x"));
    const char *ys = json_string_value(json_object_get(k, "y"));
    unsigned char pub[65];
    size_t xn, yn;
    *why = "only EC keys on P-256 are used (ES256)";
    if (!crv || strcmp(crv, "P-256") != 0)
        return NULL;
    *why = "an EC key needs \"x\" and \"y\" of 32 bytes in base64url";
    pub[0] = 0x04; /* uncompressed point */
    if (!xs || !ys || b64_decode(xs, strlen(xs), pub + 1, 32, B64_URL | B64_NOPAD, &xn) < 0 ||
        xn != 32 || b64_decode(ys, strlen(ys), pub + 33, 32, B64_URL | B64_NOPAD, &yn) < 0 ||
        yn != 32)
        return NULL;
    *why = "the EC key is not a point of P-256";
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub)),
        OSSL_PARAM_construct_end()};
    if (!ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    if (pkey) {
        /* fromdata does not check that the point is on the curve */
        EVP_PKEY_CTX *chk = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
        if (!chk || EVP_PKEY_public_check(chk) != 1) {
            EVP_PKEY_free(pkey);
            pkey = NULL;
        }
        EVP_PKEY_CTX_free(chk);
    }
    return pkey;
}

/* One key of the set: 1 kept, 0 skipped (another use or type), -1 error. */
static int load_key(json_t *k, struct jwks_key *out, const char **why)
{
    *why = "a key is not a JSON object";
    if (!json_is_object(k))
        return -1;
    const char *kty = json_string_value(json_object_get(k, "kty"));
    const char *use = json_string_value(json_object_get(k, "use"));
    const char *kid = json_string_value(json_object_get(k, "kid"));
    *why = "a key without \"kty\"";
    if (!kty)
        return -1;
    if (use && strcmp(use, "sig") != 0)
        return 0; /* an encryption key: not for checking signatures */
    *why = "\"kid\" longer than 128 characters";
    if (kid && strlen(kid) > JWKS_KID_MAX)
        return -1;
    memset(out, 0, sizeof(*out));
    if (kid)
        memcpy(out->kid, kid, strlen(kid) + 1);
    if (strcmp(kty, "RSA") == 0) {
        out->kty = KTY_RSA;
        out->pkey = rsa_key(k, why);
    } else if (strcmp(kty, "EC") == 0) {
        out->kty = KTY_EC;
        out->pkey = ec_key(k, why);
    } else {
        return 0; /* "oct" and others: symmetric keys are never trusted here */
    }
    return out->pkey ? 1 : -1;
}

int jwks_load_buf(const char *name, const char *json, size_t len, struct jwks **out, char *err,
                  size_t errlen)
{
    *out = NULL;
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        snprintf(err, errlen, "%s:%d:%d: %s", name, je.line, je.column, je.text);
        return -1;
    }
    json_t *keys = json_object_get(root, "keys");
    if (!json_is_array(keys)) {
        snprintf(err, errlen, "%s: a JSON Web Key Set is an object with a \"keys\" list", name);
        json_decref(root);
        return -1;
    }
    size_t n = json_array_size(keys);
    if (n > JWKS_KEYS_MAX) {
        snprintf(err, errlen, "%s: %zu keys (at most %d)", name, n, JWKS_KEYS_MAX);
        json_decref(root);
        return -1;
    }
    struct jwks *ks = calloc(1, sizeof(*ks) + n * sizeof(ks->keys[0]));
    if (!ks) {
        snprintf(err, errlen, "%s: out of memory", name);
        json_decref(root);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const char *why = "";
        int rc = load_key(json_array_get(keys, i), &ks->keys[ks->n], &why);
        if (rc < 0) {
            snprintf(err, errlen, "%s: keys[%zu]: %s", name, i, why);
            jwks_free(ks);
            json_decref(root);
            return -1;
        }
        ks->n += (size_t)rc;
    }
    json_decref(root);
    if (ks->n == 0) {
        snprintf(err, errlen, "%s: no RSA or P-256 signing key in the set", name);
        jwks_free(ks);
        return -1;
    }
    *out = ks;
    return 0;
}

int jwks_load(const char *path, struct jwks **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %m", path);
        return -1;
    }
    char *buf = malloc(256 * 1024 + 1);
    size_t len = buf ? fread(buf, 1, 256 * 1024 + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad || len > 256 * 1024) {
        snprintf(err, errlen, "%s: %s", path,
                 !buf  ? "out of memory"
                 : bad ? "read error"
                       : "larger than 256 KiB");
        free(buf);
        return -1;
    }
    int rc = jwks_load_buf(path, buf, len, out, err, errlen);
    free(buf);
    return rc;
}

void jwks_free(struct jwks *ks)
{
    if (!ks)
        return;
    for (size_t i = 0; i < ks->n; i++)
        EVP_PKEY_free(ks->keys[i].pkey);
    free(ks);
}

size_t jwks_count(const struct jwks *ks)
{
    return ks ? ks->n : 0;
}

/* ---- verifying ---- */

static json_t *part_json(const char *s, size_t n)
{
    static _Thread_local char buf[JWKS_PART_MAX];
    size_t len;
    if (b64_decode(s, n, buf, sizeof(buf), B64_URL | B64_NOPAD, &len) < 0)
        return NULL;
    json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* ES256 signatures are r || s, 32 bytes each (RFC 7518 3.4); OpenSSL
 * verifies DER. */
static unsigned char *es256_der(const unsigned char *raw, size_t n, size_t *der_len)
{
    if (n != 64)
        return NULL;
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, 32, NULL), *s = BN_bin2bn(raw + 32, 32, NULL);
    unsigned char *der = NULL;
    if (sig && r && s && ECDSA_SIG_set0(sig, r, s)) {
        r = s = NULL;
        int k = i2d_ECDSA_SIG(sig, &der);
        *der_len = k > 0 ? (size_t)k : 0;
        if (k <= 0)
            der = NULL;
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return der;
}

static int verify_with(EVP_PKEY *pkey, const char *in, size_t in_len, const unsigned char *sig,
                       size_t sig_len)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) == 1 &&
             EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)in, in_len) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

static int check_signature(const struct jwks *ks, json_t *hdr, const char *in, size_t in_len,
                           const char *sig64, size_t sig64_len)
{
    const char *alg = json_string_value(json_object_get(hdr, "alg"));
    json_t *kidj = json_object_get(hdr, "kid");
    const char *kid = json_string_value(kidj);
    enum kty want;
    if (!alg)
        return JWKS_E_ALG;
    if (strcmp(alg, "RS256") == 0)
        want = KTY_RSA;
    else if (strcmp(alg, "ES256") == 0)
        want = KTY_EC;
    else
        return JWKS_E_ALG; /* "none", HS256 and the rest */
    if (kidj && !kid)
        return JWKS_E_FORMAT;
    unsigned char raw[1024];
    size_t raw_len;
    if (b64_decode(sig64, sig64_len, raw, sizeof(raw), B64_URL | B64_NOPAD, &raw_len) < 0)
        return JWKS_E_FORMAT;
    unsigned char *der = NULL;
    const unsigned char *sig = raw;
    size_t sig_len = raw_len;
    if (want == KTY_EC) {
        if (!(der = es256_der(raw, raw_len, &sig_len)))
            return JWKS_E_SIGNATURE;
        sig = der;
    }
    int typed = 0, named = 0, rc = JWKS_E_SIGNATURE;
    for (size_t i = 0; i < ks->n && rc != 0; i++) {
        const struct jwks_key *k = &ks->keys[i];
        if (k->kty != want)
            continue;
        typed++;
        if (kid && strcmp(kid, k->kid) != 0)
            continue;
        named++;
        if (verify_with(k->pkey, in, in_len, sig, sig_len))
            rc = 0;
    }
    OPENSSL_free(der);
    if (rc == 0)
        return 0;
    return !typed ? JWKS_E_ALG : !named ? JWKS_E_KID : JWKS_E_SIGNATURE;
}

static int check_claims(json_t *c, const struct jwks_check *chk)
{
    json_t *exp = json_object_get(c, "exp"), *nbf = json_object_get(c, "nbf");
    if (!json_is_number(exp) ||
        json_number_value(exp) + (double)chk->leeway_s <= (double)chk->now_s)
        return JWKS_E_EXPIRED;
    if (nbf && (!json_is_number(nbf) ||
                json_number_value(nbf) - (double)chk->leeway_s > (double)chk->now_s))
        return JWKS_E_NOT_YET;
    if (chk->issuer) {
        const char *iss = json_string_value(json_object_get(c, "iss"));
        if (!iss || strcmp(iss, chk->issuer) != 0)
            return JWKS_E_ISSUER;
    }
    if (chk->audience) {
        json_t *aud = json_object_get(c, "aud");
        int found = 0;
        if (json_is_string(aud)) {
            found = strcmp(json_string_value(aud), chk->audience) == 0;
        } else if (json_is_array(aud)) {
            size_t i;
            json_t *a;
            json_array_foreach(aud, i, a) found |=
                json_is_string(a) && strcmp(json_string_value(a), chk->audience) == 0;
        }
        if (!found)
            return JWKS_E_AUDIENCE;
    }
    return 0;
}

int jwks_verify(const struct jwks *ks, const char *token, size_t len, const struct jwks_check *chk)
{
    if (!ks || !token || !chk)
        return JWKS_E_FORMAT;
    if (len > JWKS_TOKEN_MAX)
        return JWKS_E_TOO_LONG;
    const char *d1 = memchr(token, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    if (!d1 || !d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)))
        return JWKS_E_FORMAT;
    json_t *hdr = part_json(token, (size_t)(d1 - token));
    json_t *claims = hdr ? part_json(d1 + 1, (size_t)(d2 - d1 - 1)) : NULL;
    int rc = JWKS_E_FORMAT;
    if (hdr && claims) {
        rc = check_signature(ks, hdr, token, (size_t)(d2 - token), d2 + 1,
                             len - (size_t)(d2 + 1 - token));
        if (rc == 0)
            rc = check_claims(claims, chk);
    }
    json_decref(hdr);
    json_decref(claims);
    return rc;
}

const char *jwks_strerror(int err)
{
    switch (err) {
    case JWKS_OK:
        return "ok";
    case JWKS_E_FORMAT:
        return "not a signed JWT (three base64url parts of JSON objects)";
    case JWKS_E_ALG:
        return "algorithm not RS256 or ES256, or no key of its type in the set";
    case JWKS_E_KID:
        return "the token's key id names no key of the set";
    case JWKS_E_SIGNATURE:
        return "signature does not verify";
    case JWKS_E_EXPIRED:
        return "expired (or no exp claim)";
    case JWKS_E_NOT_YET:
        return "not valid yet (nbf)";
    case JWKS_E_ISSUER:
        return "issuer is not the configured one";
    case JWKS_E_AUDIENCE:
        return "audience does not include the configured one";
    case JWKS_E_TOO_LONG:
        return "token too long";
    case JWKS_E_NOMEM:
        return "out of memory";
    default:
        return "unknown error";
    }
}
