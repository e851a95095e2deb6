/* enr_key: enrollment key generation, validation and hashing. See key.h. */
#include "enroll/key.h"

#include "enroll/err.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>

int enr_key_random(char *out, size_t outlen, size_t n, size_t group)
{
    size_t need = n + (group && n ? (n - 1) / group : 0) + 1;
    if (outlen < need || n > 256)
        return ENR_EINVAL;
    unsigned char r[256];
    if (RAND_bytes(r, (int)n) != 1)
        return ENR_ECRYPTO;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (group && i && i % group == 0)
            out[o++] = '-';
        out[o++] = ENR_KEY_ALPHABET[r[i] & 31]; /* 256 is a multiple of 32: no bias */
    }
    out[o] = 0;
    return 0;
}

int enr_key_new(char out[ENR_KEY_SHOWN + 1])
{
    return enr_key_random(out, ENR_KEY_SHOWN + 1, ENR_KEY_CHARS, ENR_KEY_GROUP);
}

static const char *hint(char c)
{
    switch (c) {
    case '0':
    case 'O':
        return " (keys have no 0 or O; did you mean the letter D or Q?)";
    case '1':
    case 'I':
        return " (keys have no 1 or I; did you mean the letter L or J?)";
    default:
        return "";
    }
}

int enr_key_canon(const char *in, char canon[ENR_KEY_CHARS + 1], char *err, size_t errlen)
{
    size_t n = 0;
    if (!in || !*in) {
        snprintf(err, errlen, "enrollment key is empty");
        return ENR_EINVAL;
    }
    for (size_t i = 0; in[i]; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '-' || c == ' ')
            continue;
        char u = (char)toupper(c);
        if (c >= 0x80 || !strchr(ENR_KEY_ALPHABET, u) || u == 0) {
            if (c >= 0x20 && c < 0x7f)
                snprintf(err, errlen,
                         "enrollment key: character '%c' at position %zu is not allowed%s; keys "
                         "use 2-9 and A-Z without I and O, in groups split by '-'",
                         c, i + 1, hint(u));
            else
                snprintf(err, errlen,
                         "enrollment key: byte 0x%02x at position %zu is not allowed; keys use "
                         "2-9 and A-Z without I and O, in groups split by '-'",
                         c, i + 1);
            return ENR_EINVAL;
        }
        if (n == ENR_KEY_CHARS) {
            snprintf(err, errlen, "enrollment key is too long (a key has %d characters)",
                     ENR_KEY_CHARS);
            return ENR_EINVAL;
        }
        canon[n++] = u;
    }
    if (n != ENR_KEY_CHARS) {
        snprintf(err, errlen, "enrollment key is too short: %zu of %d characters", n,
                 ENR_KEY_CHARS);
        return ENR_EINVAL;
    }
    canon[n] = 0;
    return 0;
}

int enr_key_hash(const char canon[ENR_KEY_CHARS + 1], unsigned char hash[ENR_KEY_HASH])
{
    unsigned int len = 0;
    if (!EVP_Digest(canon, ENR_KEY_CHARS, hash, &len, EVP_sha256(), NULL) || len != ENR_KEY_HASH)
        return ENR_ECRYPTO;
    return 0;
}
