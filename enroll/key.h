/*
 * enr_key: enrollment keys and one-time passwords.
 *
 * A key is 28 characters from a 32-letter alphabet with nothing a person
 * could misread (digits 2-9 and A-Z without I and O): 140 random bits,
 * shown in groups of four, "K7QX-2M9D-...". Input is forgiving about case,
 * dashes and spaces, and strict about everything else: a character outside
 * the alphabet is refused by name and position so the user can fix it.
 *
 * Only the SHA-256 of the canonical key is stored. A plain hash is enough
 * here (unlike passwords, which need a slow KDF) because the key is random
 * with 140 bits of entropy: there is no dictionary to try, and guessing one
 * preimage costs 2^140 hashes. The hash is also a unique index, so a
 * lookup is one B-tree probe.
 */
#ifndef EG_ENR_KEY_H
#define EG_ENR_KEY_H

#include <stddef.h>

#define ENR_KEY_CHARS 28 /* 28 x 5 bits = 140 bits */
#define ENR_KEY_GROUP 4  /* shown in groups of four */
#define ENR_KEY_SHOWN (ENR_KEY_CHARS + ENR_KEY_CHARS / ENR_KEY_GROUP - 1) /* with dashes */
#define ENR_KEY_HASH 32                                                   /* SHA-256 */
#define ENR_KEY_ALPHABET "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"

/* n random characters of the alphabet, dash every group (0 = no dashes), into out (NUL-ended). */
int enr_key_random(char *out, size_t outlen, size_t n, size_t group);

/* A fresh enrollment key in its shown form (out[ENR_KEY_SHOWN + 1]). */
int enr_key_new(char out[ENR_KEY_SHOWN + 1]);

/*
 * Canonical form of a key a person typed (upper-case, no separators) into
 * canon[ENR_KEY_CHARS + 1]. ENR_EINVAL with "character 'O' at position 6
 * is not allowed ..." or a length message in err.
 */
int enr_key_canon(const char *in, char canon[ENR_KEY_CHARS + 1], char *err, size_t errlen);

/* SHA-256 of the canonical key. */
int enr_key_hash(const char canon[ENR_KEY_CHARS + 1], unsigned char hash[ENR_KEY_HASH]);

#endif
