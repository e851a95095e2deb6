/*
 * jwt: the user claim of a Bearer token. See jwt.h.
 *
 * The payload of a JWT is JSON; we want one top-level string field. A full
 * parser (jansson) would allocate on the request path and drag a library
 * into the pure protocol code, for one field: this walks the top-level
 * object, skips nested values with a bounded depth, and decodes only the
 * wanted string. Anything it does not understand makes the token unusable,
 * which is a matching failure, never a crash (tests/fuzz/fuzz_easq.c feeds
 * it through the Authorization header).
 */
#include "eas/jwt.h"

#include "common/b64.h"
#include "eas/easq_int.h"

#include <stdint.h>
#include <string.h>

/* Bound of a decoded JWT payload. */
#define JWT_PAYLOAD_MAX 8192
/* JSON nesting the claim scanner follows before it gives up. */
#define JWT_JSON_DEPTH 32

struct jscan {
    const char *p, *end;
};

/* "Not JSON", kept apart from the EASQ_E_* codes a decoded value can raise. */
#define JS_BAD (-1000)

static void js_ws(struct jscan *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static void put_utf8(char *dst, size_t cap, size_t *o, uint32_t cp, int *rc)
{
    unsigned char tmp[4];
    size_t n;
    if (cp < 0x80)
        tmp[0] = (unsigned char)cp, n = 1;
    else if (cp < 0x800)
        tmp[0] = (unsigned char)(0xC0 | cp >> 6), tmp[1] = (unsigned char)(0x80 | (cp & 63)), n = 2;
    else if (cp < 0x10000)
        tmp[0] = (unsigned char)(0xE0 | cp >> 12), tmp[1] = (unsigned char)(0x80 | (cp >> 6 & 63)),
        tmp[2] = (unsigned char)(0x80 | (cp & 63)), n = 3;
    else
        tmp[0] = (unsigned char)(0xF0 | cp >> 18), tmp[1] = (unsigned char)(0x80 | (cp >> 12 & 63)),
        tmp[2] = (unsigned char)(0x80 | (cp >> 6 & 63)), tmp[3] = (unsigned char)(0x80 | (cp & 63)),
        n = 4;
    for (size_t i = 0; i < n; i++) {
        if (*o >= cap - 1) {
            *rc = EASQ_E_TOO_LONG;
            return;
        }
        dst[(*o)++] = (char)tmp[i];
    }
}

static int js_hex4(struct jscan *j, uint32_t *cp)
{
    if (j->end - j->p < 4)
        return -1;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = easq_hexval((unsigned char)j->p[i]);
        if (h < 0)
            return -1;
        v = v << 4 | (uint32_t)h;
    }
    j->p += 4;
    *cp = v;
    return 0;
}

/* Read a JSON string at j->p ('"' expected). With dst, decode into it
 * (EASQ_E_* on NUL/control/too long); without, just skip. JS_BAD: not JSON. */
static int js_string(struct jscan *j, char *dst, size_t cap)
{
    size_t o = 0;
    int rc = 0;
    if (j->p >= j->end || *j->p != '"')
        return JS_BAD;
    j->p++;
    while (j->p < j->end) {
        unsigned char c = (unsigned char)*j->p++;
        uint32_t cp = c;
        if (c == '"') {
            if (dst)
                dst[o] = '\0';
            return rc;
        }
        if (c < 0x20)
            return JS_BAD;
        if (c == '\\') {
            if (j->p >= j->end)
                return JS_BAD;
            c = (unsigned char)*j->p++;
            switch (c) {
            case '"':
            case '\\':
            case '/':
                cp = c;
                break;
            case 'b':
                cp = '\b';
                break;
            case 'f':
                cp = '\f';
                break;
            case 'n':
                cp = '\n';
                break;
            case 'r':
                cp = '\r';
                break;
            case 't':
                cp = '\t';
                break;
            case 'u':
                if (js_hex4(j, &cp))
                    return JS_BAD;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    uint32_t lo;
                    if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u')
                        return JS_BAD;
                    j->p += 2;
                    if (js_hex4(j, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                        return JS_BAD;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    return JS_BAD;
                }
                break;
            default:
                return JS_BAD;
            }
            if (dst && !rc) {
                if (cp < 0x80)
                    rc = easq_check_byte((unsigned char)cp);
                if (!rc)
                    put_utf8(dst, cap, &o, cp, &rc);
            }
            continue;
        }
        if (dst && !rc && c == 0x7f)
            rc = EASQ_E_CTRL;
        if (dst && !rc) {
            if (o >= cap - 1)
                rc = EASQ_E_TOO_LONG;
            else
                dst[o++] = (char)c;
        }
    }
    return JS_BAD;
}

/* Skip one JSON value of any kind; nesting bounded by JWT_JSON_DEPTH. */
static int js_skip(struct jscan *j)
{
    int depth = 0;
    do {
        js_ws(j);
        if (j->p >= j->end)
            return -1;
        char c = *j->p;
        if (c == '"') {
            if (js_string(j, NULL, 0) != 0)
                return -1;
        } else if (c == '{' || c == '[') {
            if (++depth > JWT_JSON_DEPTH)
                return -1;
            j->p++;
        } else if (c == '}' || c == ']') {
            if (depth == 0)
                return -1;
            depth--;
            j->p++;
        } else if (c == ',' || c == ':') {
            if (depth == 0)
                return -1;
            j->p++;
        } else {
            /* number, true, false, null: run of token characters */
            const char *s = j->p;
            while (j->p < j->end && (easq_is_alnum((unsigned char)*j->p) || *j->p == '-' ||
                                     *j->p == '+' || *j->p == '.'))
                j->p++;
            if (j->p == s)
                return -1;
        }
    } while (depth > 0);
    return 0;
}

/* Claims in order of preference: Azure AD puts the UPN in "upn", ADFS in
 * "upn" or "unique_name", v2 tokens only "preferred_username". */
static const char *const jwt_claims[] = {"upn", "unique_name", "preferred_username"};

static int claim_user(const char *json, size_t len, char *out, size_t cap)
{
    struct jscan j = {json, json + len};
    char key[24];
    int best = 3, rc;

    js_ws(&j);
    if (j.p >= j.end || *j.p != '{')
        return EASQ_E_JWT;
    j.p++;
    js_ws(&j);
    if (j.p < j.end && *j.p == '}')
        return EASQ_E_JWT;
    for (;;) {
        js_ws(&j);
        rc = js_string(&j, key, sizeof(key));
        if (rc == JS_BAD)
            return EASQ_E_JWT;
        bool keyok = rc == 0;
        js_ws(&j);
        if (j.p >= j.end || *j.p != ':')
            return EASQ_E_JWT;
        j.p++;
        js_ws(&j);
        int which = -1;
        for (int i = 0; keyok && i < best; i++)
            if (strcmp(key, jwt_claims[i]) == 0)
                which = i;
        if (which >= 0 && j.p < j.end && *j.p == '"') {
            char val[EASQ_STR_MAX + 1];
            rc = js_string(&j, val, sizeof(val));
            if (rc == JS_BAD)
                return EASQ_E_JWT;
            if (rc < 0)
                return rc;
            if (val[0] != '\0') {
                if (strlen(val) + 1 > cap)
                    return EASQ_E_TOO_LONG;
                memcpy(out, val, strlen(val) + 1);
                best = which;
            }
        } else if (js_skip(&j) < 0) {
            return EASQ_E_JWT;
        }
        js_ws(&j);
        if (j.p >= j.end)
            return EASQ_E_JWT;
        if (*j.p == '}')
            break;
        if (*j.p != ',')
            return EASQ_E_JWT;
        j.p++;
    }
    return best == 3 ? EASQ_E_JWT : 0;
}

int jwt_user(const char *token, size_t len, char *out, size_t out_size)
{
    char json[JWT_PAYLOAD_MAX];
    size_t n;
    if (!token || !out || out_size == 0)
        return EASQ_E_INVAL;
    /* header.payload.signature; only the payload matters here. */
    const char *d1 = memchr(token, '.', len);
    if (!d1)
        return EASQ_E_JWT;
    const char *p = d1 + 1;
    const char *d2 = memchr(p, '.', len - (size_t)(p - token));
    if (!d2 || d2 == p)
        return EASQ_E_JWT;
    int rc = b64_decode(p, (size_t)(d2 - p), json, sizeof(json), B64_URL | B64_NOPAD, &n);
    if (rc == B64_E_SPACE)
        return EASQ_E_TOO_LONG;
    if (rc)
        return EASQ_E_JWT;
    return claim_user(json, n, out, out_size);
}
