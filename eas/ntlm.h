/*
 * ntlm: who an NTLM or Negotiate credential names, read the way the server
 * that checks it will read it.
 *
 * IIS authenticates NTLM and Kerberos per TCP connection: the client sends
 * NEGOTIATE (type 1), the server answers 401 with a CHALLENGE (type 2), the
 * client sends AUTHENTICATE (type 3), and from then on the connection is
 * that user's. Only the AUTHENTICATE message names a user, and it names it
 * in clear (MS-NLMP 2.2.1.3: DomainNameFields, UserNameFields, strings in
 * UTF-16LE when NTLMSSP_NEGOTIATE_UNICODE is set, else in the OEM code page).
 * The proxy cannot check the response (it does not know the password); it
 * relies on Exchange to, and binds the user only once Exchange said 2xx.
 *
 * "Negotiate" carries either a raw NTLMSSP message or a SPNEGO token (RFC
 * 4178) whose mechToken/responseToken may hold one. The SPNEGO wrapper is
 * walked as strict DER; a token that is Kerberos, or anything not walked to
 * the end, is unreadable: the caller treats the request as unverifiable.
 * Searching the token for the "NTLMSSP" signature instead would let a
 * Kerberos ticket for one user carry a fake NTLM name for another.
 *
 * Pure: no allocation, no I/O; every offset is checked against the length.
 */
#ifndef EG_NTLM_H
#define EG_NTLM_H

#include <stddef.h>
#include <stdint.h>

enum ntlm_msg_type {
    NTLM_MSG_NEGOTIATE = 1,
    NTLM_MSG_CHALLENGE = 2,
    NTLM_MSG_AUTHENTICATE = 3,
};

enum ntlm_err {
    NTLM_OK = 0,
    NTLM_E_NOT_NTLM = -1,  /* no "NTLMSSP\0" signature */
    NTLM_E_TYPE = -2,      /* MessageType not 1, 2 or 3 */
    NTLM_E_SHORT = -3,     /* shorter than the fixed part of its type */
    NTLM_E_FIELD = -4,     /* a field's offset/length points outside the message */
    NTLM_E_ENCODING = -5,  /* user or domain not valid UTF-16LE, or a control character */
    NTLM_E_TOO_LONG = -6,  /* user or domain longer than NTLM_NAME_MAX bytes of UTF-8 */
    NTLM_E_ANONYMOUS = -7, /* AUTHENTICATE with an empty user name: no identity */
    NTLM_E_DER = -8,       /* SPNEGO wrapper not strict DER of the expected shape */
    NTLM_E_KERBEROS = -9,  /* SPNEGO carrying something other than NTLMSSP */
    NTLM_E_INVAL = -10,
};

#define NTLM_NAME_MAX 255

struct ntlm_auth {
    char user[NTLM_NAME_MAX + 1];   /* UTF-8 */
    char domain[NTLM_NAME_MAX + 1]; /* UTF-8, "" when none was sent */
    uint32_t flags;                 /* NegotiateFlags as sent */
};

/* The message type of a raw NTLMSSP message (1, 2 or 3), or a negative
 * ntlm_err. Reads at most the first 12 bytes. */
int ntlm_msg_type(const uint8_t *msg, size_t len);

/* Parse an AUTHENTICATE message: the user and domain it names. 0 or a
 * negative ntlm_err; on error *out holds empty strings. */
int ntlm_parse_authenticate(const uint8_t *msg, size_t len, struct ntlm_auth *out);

/* The NTLMSSP message inside a Negotiate token: the token itself when it is
 * raw NTLMSSP, else the mechToken of a NegTokenInit or the responseToken of a
 * NegTokenResp, checked to start with the NTLMSSP signature. *inner points
 * into tok. 0, NTLM_E_KERBEROS (well-formed, not NTLM), or NTLM_E_DER. */
int ntlm_from_negotiate(const uint8_t *tok, size_t len, const uint8_t **inner, size_t *inner_len);

const char *ntlm_strerror(int err);

#endif
