/*
 * exsim_auth: authentication as IIS does it in front of Exchange, so the
 * proxy's tests meet the real thing's rules.
 *
 * Basic is checked on every request. NTLM (and NTLM inside "Negotiate") is
 * connection-oriented, as IIS does it: NEGOTIATE gets a 401 with a
 * CHALLENGE, AUTHENTICATE is verified (NTLMv2 against the configured
 * password; the name alone when OpenSSL's legacy provider, which has MD4,
 * is missing) and from then on the TCP connection belongs to that user:
 * later requests on it need no Authorization header at all. That is the
 * property a proxy that pools upstream connections gets wrong, and what
 * these tests are for.
 */
#ifndef EG_EXSIM_AUTH_H
#define EG_EXSIM_AUTH_H

#include <stddef.h>
#include <stdint.h>

enum exsim_auth_mode { EXSIM_AUTH_NONE = 0, EXSIM_AUTH_BASIC, EXSIM_AUTH_NTLM };

#define EXSIM_AUTH_USER_MAX 255

/* Per connection: NTLM state and the user the connection belongs to. */
struct exsim_auth_conn {
    int state; /* 0 none, 1 challenged, 2 authenticated */
    uint8_t challenge[8];
    char user[EXSIM_AUTH_USER_MAX + 1];
};

/* mode: "none", "basic" or "ntlm"; users: "alice:pw,bob:pw2". 0 or -1 with
 * a message on stderr. Call once at start. */
int exsim_auth_setup(const char *mode, const char *users);
enum exsim_auth_mode exsim_auth_mode(void);

/* Decide one request given its Authorization header (NULL if none).
 * Returns 0 to serve it (*user is the authenticated user, "" when
 * authentication is off), or 401: hdr then holds the WWW-Authenticate
 * header line(s) to send, CRLF-terminated. */
int exsim_auth_request(struct exsim_auth_conn *ac, const char *authz, size_t len, char *hdr,
                       size_t hdr_cap, const char **user);

#endif
