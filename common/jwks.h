/*
 * jwks: checking an OAuth Bearer token (a JWS compact JWT, RFC 7515/7519)
 * against a JSON Web Key Set file (RFC 7517) before its user claim is
 * believed.
 *
 * eas/jwt.c reads the user claim of a token without checking it; that is
 * enough to log a name, never to let a device through. An operator who
 * fronts Exchange with modern authentication gives the identity provider's
 * keys (identity.bearer.jwks) and this module checks, with OpenSSL: the
 * algorithm is RS256 or ES256 (never "none", never an HMAC: a public key
 * must not double as a shared secret), the signature verifies with a key of
 * the set (the one the header's "kid" names, if it names one), "exp" is in
 * the future and "nbf" in the past (with leeway), and "iss" and "aud" are
 * the configured ones. Header and payload are parsed by jansson with
 * duplicate keys refused, so the claims checked here are the claims the
 * user name is then read from.
 *
 * A key set is immutable once loaded and may be shared by threads; reloads
 * load a new one. Ownership: jwks_load returns a set the caller frees with
 * jwks_free.
 */
#ifndef EG_JWKS_H
#define EG_JWKS_H

#include <stddef.h>
#include <stdint.h>

struct jwks;

enum jwks_err {
    JWKS_OK = 0,
    JWKS_E_FORMAT = -1,    /* not three base64url parts of JSON objects */
    JWKS_E_ALG = -2,       /* alg not RS256/ES256, or no key of its type */
    JWKS_E_KID = -3,       /* kid names no key of the set */
    JWKS_E_SIGNATURE = -4, /* no key verifies the signature */
    JWKS_E_EXPIRED = -5,   /* exp missing or past (leeway included) */
    JWKS_E_NOT_YET = -6,   /* nbf in the future (leeway included) */
    JWKS_E_ISSUER = -7,    /* iss is not the configured issuer */
    JWKS_E_AUDIENCE = -8,  /* aud does not hold the configured audience */
    JWKS_E_TOO_LONG = -9,  /* token over JWKS_TOKEN_MAX */
    JWKS_E_NOMEM = -10,
};

#define JWKS_TOKEN_MAX (16 * 1024)

/* What the claims must say. NULL issuer/audience: not checked. */
struct jwks_check {
    const char *issuer;
    const char *audience;
    int64_t now_s;    /* seconds since the epoch */
    int64_t leeway_s; /* allowed clock skew for exp and nbf */
};

/* Load a key set from a JSON file ({"keys": [...]}); RSA (n, e) and EC
 * P-256 (x, y) keys with "use" absent or "sig" are kept, others skipped.
 * 0, or negative with "FILE:LINE:COL: message" (or "FILE: keys[N]: ...")
 * in err. A set without one usable key is an error. */
int jwks_load(const char *path, struct jwks **out, char *err, size_t errlen);
/* The same from memory; name is used in messages. */
int jwks_load_buf(const char *name, const char *json, size_t len, struct jwks **out, char *err,
                  size_t errlen);
void jwks_free(struct jwks *ks);
size_t jwks_count(const struct jwks *ks);

/* Check a token (the text after "Bearer "). 0, or a negative jwks_err. */
int jwks_verify(const struct jwks *ks, const char *token, size_t len, const struct jwks_check *chk);

const char *jwks_strerror(int err);

#endif
