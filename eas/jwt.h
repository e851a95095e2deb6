/*
 * jwt: the user a Bearer token names, read from its JWT payload (RFC 7519)
 * for request identity (easq). Nothing is verified here: the name is what
 * Exchange will see, and the signature is Exchange's (or the identity
 * provider's) to check; policy decides what an unverified name is worth.
 *
 * Pure and allocation-free. Errors are request identity's (enum easq_err
 * in eas/easq.h), since this is one of its sources: EASQ_E_JWT for a token
 * that is not a JWT or names no user, EASQ_E_TOO_LONG, EASQ_E_NUL and
 * EASQ_E_CTRL for a name that cannot go into a field.
 */
#ifndef EG_JWT_H
#define EG_JWT_H

#include <stddef.h>

/*
 * The token "header.payload.signature" (len bytes, no "Bearer ") -> the
 * first of the claims upn, unique_name, preferred_username that is a
 * non-empty string, NUL-terminated in out. 0 or a negative EASQ_E_*; out
 * holds nothing the caller may use after an error.
 */
int jwt_user(const char *token, size_t len, char *out, size_t out_size);

#endif
