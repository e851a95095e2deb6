/*
 * exsim_auth: Basic per request, NTLM per connection, as IIS in front of
 * Exchange does it. See exsim_auth.h.
 */
#include "bench/exsim/exsim_auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/b64.h"
#include "eas/ntlm.h"

#define USERS_MAX 64
#define TOKEN_MAX 8192 /* decoded NTLM message or Basic credentials */

static enum exsim_auth_mode mode;
static struct {
    char name[EXSIM_AUTH_USER_MAX + 1];
    char pass[128];
} users[USERS_MAX];
static int n_users;
static EVP_MD *md4; /* NULL: the legacy provider is missing; names only */

int exsim_auth_setup(const char *m, const char *list)
{
    if (!m || strcmp(m, "none") == 0)
        mode = EXSIM_AUTH_NONE;
    else if (strcmp(m, "basic") == 0)
        mode = EXSIM_AUTH_BASIC;
    else if (strcmp(m, "ntlm") == 0)
        mode = EXSIM_AUTH_NTLM;
    else {
        fprintf(stderr, "exsim: --auth must be none, basic or ntlm\n");
        return -1;
    }
    const char *p = list ? list : "";
    while (*p && n_users < USERS_MAX) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *colon = memchr(p, ':', n);
        size_t un = colon ? (size_t)(colon - p) : 0;
        if (!colon || un == 0 || un > EXSIM_AUTH_USER_MAX || n - un - 1 >= sizeof(users[0].pass)) {
            fprintf(stderr, "exsim: --users wants user:password[,user:password...]\n");
            return -1;
        }
        memcpy(users[n_users].name, p, un);
        users[n_users].name[un] = '\0';
        memcpy(users[n_users].pass, colon + 1, n - un - 1);
        users[n_users].pass[n - un - 1] = '\0';
        n_users++;
        p += n + (end ? 1 : 0);
    }
    if (mode != EXSIM_AUTH_NONE && n_users == 0) {
        fprintf(stderr, "exsim: --auth needs --users\n");
        return -1;
    }
    if (mode == EXSIM_AUTH_NTLM) {
        OSSL_PROVIDER_load(NULL, "default");
        if (OSSL_PROVIDER_load(NULL, "legacy"))
            md4 = EVP_MD_fetch(NULL, "MD4", NULL);
        if (!md4)
            fprintf(stderr, "exsim: no MD4 (OpenSSL legacy provider): NTLM names are "
                            "trusted without checking the password\n");
    }
    return 0;
}

enum exsim_auth_mode exsim_auth_mode(void)
{
    return mode;
}

static const char *password_of(const char *user)
{
    for (int i = 0; i < n_users; i++)
        if (strcasecmp(users[i].name, user) == 0)
            return users[i].pass;
    return NULL;
}

/* A token's bytes (common/b64, strict); 0 when it is not base64 or too long. */
static size_t token_bytes(const char *s, size_t n, uint8_t *out, size_t cap)
{
    size_t len = 0;
    return b64_decode(s, n, out, cap, 0, &len) == 0 ? len : 0;
}

/* "Scheme token": the scheme matched case-insensitively, the token after
 * one space. */
static const char *token_of(const char *a, size_t len, const char *scheme, size_t *tl)
{
    size_t sl = strlen(scheme);
    if (len <= sl + 1 || strncasecmp(a, scheme, sl) != 0 || a[sl] != ' ')
        return NULL;
    *tl = len - sl - 1;
    return a + sl + 1;
}

/* ---- Basic ---- */

static int basic(const char *authz, size_t len, const char **user, char *hdr, size_t cap,
                 struct exsim_auth_conn *ac)
{
    size_t tl;
    const char *t = authz ? token_of(authz, len, "Basic", &tl) : NULL;
    uint8_t raw[TOKEN_MAX + 1];
    size_t n = t ? token_bytes(t, tl, raw, TOKEN_MAX) : 0;
    raw[n] = '\0';
    char *colon = n ? memchr(raw, ':', n) : NULL;
    if (colon) {
        *colon = '\0';
        const char *pw = password_of((const char *)raw);
        size_t ul = strlen((const char *)raw);
        if (pw && strcmp(pw, colon + 1) == 0 && ul <= EXSIM_AUTH_USER_MAX) {
            memcpy(ac->user, raw, ul + 1);
            *user = ac->user;
            return 0;
        }
    }
    snprintf(hdr, cap, "WWW-Authenticate: Basic realm=\"exsim\"\r\n");
    return 401;
}

/* ---- NTLM ---- */

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static size_t utf16(const char *s, int upper, uint8_t *out)
{
    size_t n = 0;
    for (; *s; s++) {
        char c = *s;
        if (upper && c >= 'a' && c <= 'z')
            c = (char)(c - 32);
        out[n++] = (uint8_t)c;
        out[n++] = 0;
    }
    return n;
}

/* CHALLENGE (MS-NLMP 2.2.1.2) with target info, so clients answer NTLMv2. */
static size_t challenge_msg(const uint8_t chal[8], uint8_t *m)
{
    static const char target[] = "EXSIM";
    memset(m, 0, 48);
    memcpy(m, "NTLMSSP\0", 8);
    put32(m + 8, 2);
    size_t off = 48;
    size_t tn = utf16(target, 0, m + off);
    put16(m + 12, (uint16_t)tn);
    put16(m + 14, (uint16_t)tn);
    put32(m + 16, (uint32_t)off);
    off += tn;
    put32(m + 20, 0x00000001u | 0x00000004u | 0x00000200u | 0x00008000u | 0x00010000u |
                      0x00080000u | 0x00800000u);
    memcpy(m + 24, chal, 8);
    size_t ti = off;
    put16(m + off, 2); /* MsvAvNbDomainName */
    put16(m + off + 2, (uint16_t)tn);
    memcpy(m + off + 4, m + 48, tn);
    off += 4 + tn;
    put32(m + off, 0); /* MsvAvEOL */
    off += 4;
    put16(m + 40, (uint16_t)(off - ti));
    put16(m + 42, (uint16_t)(off - ti));
    put32(m + 44, (uint32_t)ti);
    return off;
}

/* NTLMv2 (MS-NLMP 3.3.2): NTProofStr = HMAC_MD5(NTOWFv2, challenge | blob),
 * NTOWFv2 = HMAC_MD5(MD4(UTF16(password)), UTF16(UPPER(user) | domain)). */
static int ntlmv2_ok(const uint8_t *msg, size_t len, const struct ntlm_auth *a, const char *pw,
                     const uint8_t chal[8])
{
    if (!md4)
        return 1;
    size_t rl = (size_t)(msg[20] | msg[21] << 8);
    uint32_t ro = le32(msg + 24);
    if (rl <= 24 || ro > len || rl > len - ro) /* 24 bytes: NTLMv1, refused as IIS does */
        return 0;
    const uint8_t *resp = msg + ro;
    uint8_t buf[2 * (EXSIM_AUTH_USER_MAX * 2 + 2) + 256], hash[16], key[16], proof[16];
    unsigned kl = 0;
    size_t n = utf16(pw, 0, buf);
    if (!EVP_Digest(buf, n, hash, NULL, md4, NULL))
        return 0;
    n = utf16(a->user, 1, buf);
    n += utf16(a->domain, 0, buf + n);
    if (!HMAC(EVP_md5(), hash, 16, buf, n, key, &kl))
        return 0;
    uint8_t *data = malloc(8 + rl - 16);
    if (!data)
        return 0;
    memcpy(data, chal, 8);
    memcpy(data + 8, resp + 16, rl - 16);
    int ok = HMAC(EVP_md5(), key, 16, data, 8 + rl - 16, proof, &kl) != NULL &&
             CRYPTO_memcmp(proof, resp, 16) == 0;
    free(data);
    return ok;
}

static int ntlm_challenge(struct exsim_auth_conn *ac, const char *scheme, char *hdr, size_t cap)
{
    uint8_t m[256];
    RAND_bytes(ac->challenge, 8);
    size_t n = challenge_msg(ac->challenge, m);
    char b64[400];
    b64_encode(m, n, b64, sizeof(b64), 0, NULL);
    ac->state = 1;
    snprintf(hdr, cap, "WWW-Authenticate: %s %s\r\n", scheme, b64);
    return 401;
}

static int ntlm(struct exsim_auth_conn *ac, const char *authz, size_t len, const char **user,
                char *hdr, size_t cap)
{
    size_t tl = 0;
    const char *scheme = "NTLM";
    const char *t = authz ? token_of(authz, len, "NTLM", &tl) : NULL;
    if (authz && !t) {
        t = token_of(authz, len, "Negotiate", &tl);
        scheme = "Negotiate";
    }
    if (!authz && ac->state == 2) { /* the connection is authenticated */
        *user = ac->user;
        return 0;
    }
    static __thread uint8_t raw[TOKEN_MAX];
    size_t n = t ? token_bytes(t, tl, raw, sizeof(raw)) : 0;
    const uint8_t *msg = raw;
    size_t ml = n;
    if (n && strcmp(scheme, "Negotiate") == 0 && ntlm_from_negotiate(raw, n, &msg, &ml) < 0)
        ml = 0;
    int type = ml ? ntlm_msg_type(msg, ml) : -1;
    if (type == NTLM_MSG_NEGOTIATE)
        return ntlm_challenge(ac, scheme, hdr, cap);
    if (type == NTLM_MSG_AUTHENTICATE && ac->state == 1) {
        struct ntlm_auth a;
        const char *pw;
        if (ntlm_parse_authenticate(msg, ml, &a) == 0 && (pw = password_of(a.user)) &&
            ntlmv2_ok(msg, ml, &a, pw, ac->challenge)) {
            ac->state = 2;
            memcpy(ac->user, a.user, sizeof(ac->user));
            *user = ac->user;
            return 0;
        }
    }
    ac->state = 0;
    ac->user[0] = '\0';
    snprintf(hdr, cap, "WWW-Authenticate: NTLM\r\nWWW-Authenticate: Negotiate\r\n");
    return 401;
}

int exsim_auth_request(struct exsim_auth_conn *ac, const char *authz, size_t len, char *hdr,
                       size_t cap, const char **user)
{
    *user = "";
    hdr[0] = '\0';
    switch (mode) {
    case EXSIM_AUTH_BASIC:
        return basic(authz, len, user, hdr, cap, ac);
    case EXSIM_AUTH_NTLM:
        return ntlm(ac, authz, len, user, hdr, cap);
    case EXSIM_AUTH_NONE:
    default:
        return 0;
    }
}
