/*
 * b64: base64 and base64url (RFC 4648), written once for every role: the
 * ActiveSync base64 query and Basic credentials, JWT payloads, WBXML opaque
 * data in XML, API tokens, certificates, profiles and QR codes in JSON.
 *
 * Pure: libc only, so it lives in eg_pure, the piece of common/ that eas/
 * may link (docs/architecture.md). Nothing allocates except
 * b64_encode_alloc.
 *
 * Decoding is strict unless told otherwise: one byte sequence has exactly
 * one spelling (RFC 4648 section 3.5), so a request cannot hide behind a
 * second spelling of the same bytes. Strict means only the 64 characters of
 * the alphabet, '=' padding that completes the last 4-character group, no
 * whitespace or line breaks, and zero bits after the last whole byte. The
 * flags loosen exactly what a caller's format allows.
 *
 * Errors: 0 or a negative enum b64_err; b64_strerror() names it.
 */
#ifndef EG_B64_H
#define EG_B64_H

#include <stddef.h>

enum b64_flags {
    B64_URL = 1 << 0,   /* the URL-safe alphabet, '-' and '_' for 62 and 63 (section 5) */
    B64_NOPAD = 1 << 1, /* encode without '='; decode with or without it (checked if present) */
    B64_LAX = 1 << 2,   /* decode only: skip spaces, tabs and line breaks, and accept non-zero
                           bits after the last byte (text other tools wrote; not canonical) */
};

enum b64_err {
    B64_OK = 0,
    B64_E_CHAR = -1,      /* a character outside the alphabet (whitespace when strict) */
    B64_E_PAD = -2,       /* padding missing, misplaced or too long */
    B64_E_BITS = -3,      /* non-zero bits after the last byte (a second spelling) */
    B64_E_TRUNCATED = -4, /* the text ends one character into a group, or is padding only */
    B64_E_SPACE = -5,     /* the output buffer is too small */
};

/* Characters b64_encode writes for n bytes, without the terminating NUL. */
size_t b64_encoded_len(size_t n, unsigned flags);
/* An upper bound of the bytes len characters decode to. */
size_t b64_decoded_max(size_t len);

/*
 * Encode n bytes into out (out_size counts the NUL it writes). Flags:
 * B64_URL, B64_NOPAD. 0 with *out_len (may be NULL) the length written, or
 * B64_E_SPACE with out untouched.
 */
int b64_encode(const void *in, size_t n, char *out, size_t out_size, unsigned flags,
               size_t *out_len);

/* The same into a malloc'd NUL-terminated string (the caller frees); NULL if out of memory. */
char *b64_encode_alloc(const void *in, size_t n, unsigned flags);

/*
 * Decode len characters into out (at most out_size bytes; b64_decoded_max
 * always suffices). Any flags. Empty text is zero bytes. 0 with *out_len
 * (may be NULL) set, or a negative B64_E_*; after an error out holds
 * nothing the caller may use.
 */
int b64_decode(const char *in, size_t len, void *out, size_t out_size, unsigned flags,
               size_t *out_len);

const char *b64_strerror(int err);

#endif
