/*
 * b64: base64 and base64url encoding and strict decoding. See b64.h.
 *
 * The proxy decodes a base64 query and often a Basic credential on every
 * request, so the strict decoder takes whole 4-character groups through
 * 256-entry tables: one load per character and no branch on the alphabet
 * (a branch per character once cost a third of the identity time in
 * easbench). The lax decoder, for text people and other tools wrote, goes
 * character by character, since it must step over whitespace anywhere.
 */
#include "common/b64.h"

#include <stdint.h>
#include <stdlib.h>

static const char enc_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char enc_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Decoding tables hold value + 1, so that the zero every other entry gets
 * means "not in the alphabet". */
#define D(c, v) [c] = (v) + 1
#define D_LETTERS_DIGITS                                                                           \
    D('A', 0), D('B', 1), D('C', 2), D('D', 3), D('E', 4), D('F', 5), D('G', 6), D('H', 7),        \
        D('I', 8), D('J', 9), D('K', 10), D('L', 11), D('M', 12), D('N', 13), D('O', 14),          \
        D('P', 15), D('Q', 16), D('R', 17), D('S', 18), D('T', 19), D('U', 20), D('V', 21),        \
        D('W', 22), D('X', 23), D('Y', 24), D('Z', 25), D('a', 26), D('b', 27), D('c', 28),        \
        D('d', 29), D('e', 30), D('f', 31), D('g', 32), D('h', 33), D('i', 34), D('j', 35),        \
        D('k', 36), D('l', 37), D('m', 38), D('n', 39), D('o', 40), D('p', 41), D('q', 42),        \
        D('r', 43), D('s', 44), D('t', 45), D('u', 46), D('v', 47), D('w', 48), D('x', 49),        \
        D('y', 50), D('z', 51), D('0', 52), D('1', 53), D('2', 54), D('3', 55), D('4', 56),        \
        D('5', 57), D('6', 58), D('7', 59), D('8', 60), D('9', 61)

static const uint8_t dec_std[256] = {D_LETTERS_DIGITS, D('+', 62), D('/', 63)};
static const uint8_t dec_url[256] = {D_LETTERS_DIGITS, D('-', 62), D('_', 63)};

#undef D_LETTERS_DIGITS
#undef D

size_t b64_encoded_len(size_t n, unsigned flags)
{
    if (flags & B64_NOPAD)
        return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
    return (n + 2) / 3 * 4;
}

size_t b64_decoded_max(size_t len)
{
    return len / 4 * 3 + 3;
}

int b64_encode(const void *in, size_t n, char *out, size_t out_size, unsigned flags,
               size_t *out_len)
{
    const uint8_t *s = in;
    const char *al = (flags & B64_URL) ? enc_url : enc_std;
    size_t need = b64_encoded_len(n, flags);
    if (!out || out_size < need + 1)
        return B64_E_SPACE;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        out[o++] = al[v >> 18];
        out[o++] = al[v >> 12 & 63];
        out[o++] = al[v >> 6 & 63];
        out[o++] = al[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
        out[o++] = al[v >> 18];
        out[o++] = al[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = al[v >> 6 & 63];
        if (!(flags & B64_NOPAD)) {
            if (i + 1 == n)
                out[o++] = '=';
            out[o++] = '=';
        }
    }
    out[o] = '\0';
    if (out_len)
        *out_len = o;
    return 0;
}

char *b64_encode_alloc(const void *in, size_t n, unsigned flags)
{
    size_t cap = b64_encoded_len(n, flags) + 1;
    char *out = malloc(cap);
    if (out)
        b64_encode(in, n, out, cap, flags, NULL);
    return out;
}

/*
 * Strict: the order of the checks decides which error a malformed text
 * gets, and eas/easq reports them to clients and logs, so it is fixed:
 * padding only, misplaced padding, a lone character in the last group,
 * missing padding, room, then the characters, then the leftover bits.
 */
static int decode_strict(const uint8_t *s, size_t len, uint8_t *dst, size_t cap, unsigned flags,
                         size_t *out_len)
{
    const uint8_t *tab = (flags & B64_URL) ? dec_url : dec_std;
    size_t n = len, pad = 0;
    while (n > 0 && s[n - 1] == '=' && pad < 2) {
        n--;
        pad++;
    }
    if (n == 0) {
        if (pad)
            return B64_E_TRUNCATED;
        *out_len = 0;
        return 0;
    }
    if (pad && (n + pad) % 4 != 0)
        return B64_E_PAD;
    if (n % 4 == 1)
        return B64_E_TRUNCATED;
    if (!pad && n % 4 && !(flags & B64_NOPAD))
        return B64_E_PAD;
    if (n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0) > cap)
        return B64_E_SPACE;
    size_t o = 0, i = 0;
    for (; i + 4 <= n; i += 4) {
        int a = tab[s[i]] - 1, b = tab[s[i + 1]] - 1;
        int c = tab[s[i + 2]] - 1, d = tab[s[i + 3]] - 1;
        if ((a | b | c | d) < 0)
            return B64_E_CHAR;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        dst[o] = (uint8_t)(v >> 16);
        dst[o + 1] = (uint8_t)(v >> 8);
        dst[o + 2] = (uint8_t)v;
        o += 3;
    }
    if (n - i >= 2) {
        int a = tab[s[i]] - 1, b = tab[s[i + 1]] - 1;
        int c = n - i == 3 ? tab[s[i + 2]] - 1 : 0;
        if ((a | b | c) < 0)
            return B64_E_CHAR;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6;
        dst[o++] = (uint8_t)(v >> 16);
        if (n - i == 3)
            dst[o++] = (uint8_t)(v >> 8);
        /* the bits below the last whole byte must be zero */
        if ((n - i == 2 && (v & 0xffff)) || (n - i == 3 && (v & 0xff)))
            return B64_E_BITS;
    }
    *out_len = o;
    return 0;
}

static int is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Lax: whitespace anywhere, padding as strict, leftover bits ignored. */
static int decode_lax(const uint8_t *s, size_t len, uint8_t *dst, size_t cap, unsigned flags,
                      size_t *out_len)
{
    const uint8_t *tab = (flags & B64_URL) ? dec_url : dec_std;
    uint32_t acc = 0;
    size_t nacc = 0, pad = 0, o = 0;
    for (size_t i = 0; i < len; i++) {
        if (is_space(s[i]))
            continue;
        if (s[i] == '=') {
            pad++;
            continue;
        }
        int v = tab[s[i]] - 1;
        if (v < 0 || pad)
            return B64_E_CHAR;
        acc = acc << 6 | (uint32_t)v;
        if (++nacc == 4) {
            if (cap - o < 3)
                return B64_E_SPACE;
            dst[o++] = (uint8_t)(acc >> 16);
            dst[o++] = (uint8_t)(acc >> 8);
            dst[o++] = (uint8_t)acc;
            nacc = 0;
            acc = 0;
        }
    }
    if (nacc == 1)
        return B64_E_TRUNCATED;
    if (pad && (nacc == 0 || nacc + pad != 4))
        return B64_E_PAD;
    if (nacc && !pad && !(flags & B64_NOPAD))
        return B64_E_PAD;
    if (nacc && cap - o < nacc - 1)
        return B64_E_SPACE;
    if (nacc == 2) {
        dst[o++] = (uint8_t)(acc >> 4);
    } else if (nacc == 3) {
        dst[o++] = (uint8_t)(acc >> 10);
        dst[o++] = (uint8_t)(acc >> 2);
    }
    *out_len = o;
    return 0;
}

int b64_decode(const char *in, size_t len, void *out, size_t out_size, unsigned flags,
               size_t *out_len)
{
    size_t n = 0;
    if (!in && len)
        return B64_E_CHAR;
    if (!out)
        out_size = 0;
    int rc = (flags & B64_LAX) ? decode_lax((const uint8_t *)in, len, out, out_size, flags, &n)
                               : decode_strict((const uint8_t *)in, len, out, out_size, flags, &n);
    if (rc == 0 && out_len)
        *out_len = n;
    return rc;
}

const char *b64_strerror(int err)
{
    switch (err) {
    case B64_OK:
        return "ok";
    case B64_E_CHAR:
        return "a character outside the base64 alphabet";
    case B64_E_PAD:
        return "base64 padding missing, misplaced or too long";
    case B64_E_BITS:
        return "non-zero bits after the last byte (not the canonical base64 spelling)";
    case B64_E_TRUNCATED:
        return "base64 text cut inside a 4-character group";
    case B64_E_SPACE:
        return "output buffer too small";
    }
    return "unknown base64 error";
}
