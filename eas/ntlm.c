/*
 * ntlm: the user an NTLM AUTHENTICATE message names, and the NTLMSSP message
 * inside a SPNEGO token. See ntlm.h for why only this much is read.
 */
#include "eas/ntlm.h"

#include <string.h>

static const uint8_t ntlm_sig[8] = {'N', 'T', 'L', 'M', 'S', 'S', 'P', 0};

#define NTLM_HDR_LEN 12     /* signature + MessageType */
#define NTLM_AUTH_FIXED 64  /* up to and including NegotiateFlags (MS-NLMP 2.2.1.3) */
#define NTLM_OFF_LM 12      /* LmChallengeResponseFields, the first of six */
#define NTLM_OFF_DOMAIN 28  /* DomainNameFields */
#define NTLM_OFF_USER 36    /* UserNameFields */
#define NTLM_OFF_SESSKEY 52 /* EncryptedRandomSessionKeyFields, the last */
#define NTLM_OFF_FLAGS 60   /* NegotiateFlags */
#define NTLM_FLAG_UNICODE 0x00000001u

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int ntlm_msg_type(const uint8_t *msg, size_t len)
{
    if (!msg || len < sizeof(ntlm_sig) || memcmp(msg, ntlm_sig, sizeof(ntlm_sig)) != 0)
        return NTLM_E_NOT_NTLM;
    if (len < NTLM_HDR_LEN)
        return NTLM_E_SHORT;
    uint32_t t = le32(msg + 8);
    if (t < NTLM_MSG_NEGOTIATE || t > NTLM_MSG_AUTHENTICATE)
        return NTLM_E_TYPE;
    return (int)t;
}

/* A payload field (Len, MaxLen, BufferOffset) checked against the message. */
static int field(const uint8_t *msg, size_t len, size_t at, const uint8_t **p, size_t *n)
{
    uint16_t fl = le16(msg + at);
    uint32_t off = le32(msg + at + 4);
    if (fl == 0) {
        *p = NULL;
        *n = 0;
        return 0;
    }
    if (off > len || fl > len - off)
        return NTLM_E_FIELD;
    *p = msg + off;
    *n = fl;
    return 0;
}

static int put_utf8(char *out, size_t *o, uint32_t cp)
{
    uint8_t b[4];
    size_t k;
    if (cp < 0x80) {
        b[0] = (uint8_t)cp;
        k = 1;
    } else if (cp < 0x800) {
        b[0] = (uint8_t)(0xC0 | cp >> 6);
        b[1] = (uint8_t)(0x80 | (cp & 0x3F));
        k = 2;
    } else if (cp < 0x10000) {
        b[0] = (uint8_t)(0xE0 | cp >> 12);
        b[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        b[2] = (uint8_t)(0x80 | (cp & 0x3F));
        k = 3;
    } else {
        b[0] = (uint8_t)(0xF0 | cp >> 18);
        b[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
        b[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        b[3] = (uint8_t)(0x80 | (cp & 0x3F));
        k = 4;
    }
    if (*o + k > NTLM_NAME_MAX)
        return NTLM_E_TOO_LONG;
    memcpy(out + *o, b, k);
    *o += k;
    return 0;
}

/* UTF-16LE (surrogate pairs checked) or OEM bytes to UTF-8. OEM text is
 * taken as ASCII: a byte above 0x7F has no meaning without the code page,
 * so it is refused rather than guessed. Control characters are refused in
 * both: no user name holds one, and a NUL would cut the name short. */
static int name_utf8(const uint8_t *p, size_t n, int unicode, char *out)
{
    size_t o = 0;
    out[0] = '\0';
    if (!unicode) {
        for (size_t i = 0; i < n; i++) {
            if (p[i] < 0x20 || p[i] >= 0x7F)
                return NTLM_E_ENCODING;
            int rc = put_utf8(out, &o, p[i]);
            if (rc < 0)
                return rc;
        }
        out[o] = '\0';
        return 0;
    }
    if (n % 2)
        return NTLM_E_ENCODING;
    for (size_t i = 0; i < n; i += 2) {
        uint32_t cp = le16(p + i);
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (i + 4 > n)
                return NTLM_E_ENCODING;
            uint32_t lo = le16(p + i + 2);
            if (lo < 0xDC00 || lo > 0xDFFF)
                return NTLM_E_ENCODING;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            i += 2;
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return NTLM_E_ENCODING;
        }
        if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0))
            return NTLM_E_ENCODING;
        int rc = put_utf8(out, &o, cp);
        if (rc < 0)
            return rc;
    }
    out[o] = '\0';
    return 0;
}

int ntlm_parse_authenticate(const uint8_t *msg, size_t len, struct ntlm_auth *out)
{
    if (!out)
        return NTLM_E_INVAL;
    out->user[0] = out->domain[0] = '\0';
    out->flags = 0;
    int t = ntlm_msg_type(msg, len);
    if (t < 0)
        return t;
    if (t != NTLM_MSG_AUTHENTICATE)
        return NTLM_E_TYPE;
    if (len < NTLM_AUTH_FIXED)
        return NTLM_E_SHORT;
    uint32_t flags = le32(msg + NTLM_OFF_FLAGS);
    int unicode = (flags & NTLM_FLAG_UNICODE) != 0;
    /* Every payload field must lie inside the message, not only the two
     * read here: a message the server would refuse is not one to read a
     * name from. */
    const uint8_t *up = NULL, *dp = NULL, *p;
    size_t un = 0, dn = 0, n;
    int rc = 0;
    for (size_t at = NTLM_OFF_LM; at <= NTLM_OFF_SESSKEY && rc == 0; at += 8)
        rc = field(msg, len, at, &p, &n);
    if (rc == 0)
        rc = field(msg, len, NTLM_OFF_USER, &up, &un);
    if (rc == 0)
        rc = field(msg, len, NTLM_OFF_DOMAIN, &dp, &dn);
    if (rc == 0)
        rc = name_utf8(up, un, unicode, out->user);
    if (rc == 0)
        rc = name_utf8(dp, dn, unicode, out->domain);
    if (rc == 0 && out->user[0] == '\0')
        rc = NTLM_E_ANONYMOUS;
    if (rc < 0) {
        out->user[0] = out->domain[0] = '\0';
        return rc;
    }
    out->flags = flags;
    return 0;
}

/* ---- SPNEGO (RFC 4178), strict DER, single-byte tags ---- */

struct der {
    const uint8_t *p;
    size_t n;
};

/* Read one TLV of the expected tag from d; its contents go to *v. */
static int der_take(struct der *d, uint8_t tag, struct der *v)
{
    if (d->n < 2 || d->p[0] != tag)
        return NTLM_E_DER;
    size_t i = 2, l = d->p[1];
    if (l & 0x80) {
        size_t k = l & 0x7F;
        if (k == 0 || k > 4 || d->n < 2 + k || d->p[2] == 0)
            return NTLM_E_DER; /* indefinite, too long, or not minimal */
        l = 0;
        for (size_t j = 0; j < k; j++)
            l = l << 8 | d->p[2 + j];
        if (l < 0x80)
            return NTLM_E_DER; /* long form where the short one fits */
        i = 2 + k;
    }
    if (l > d->n - i)
        return NTLM_E_DER;
    v->p = d->p + i;
    v->n = l;
    d->p += i + l;
    d->n -= i + l;
    return 0;
}

/* An optional context-tagged field [k]: present only if the tag matches. */
static int der_opt(struct der *d, uint8_t tag, struct der *v, int *present)
{
    *present = d->n > 0 && d->p[0] == tag;
    return *present ? der_take(d, tag, v) : 0;
}

/* SPNEGO's OID 1.3.6.1.5.5.2, as DER contents. */
static const uint8_t spnego_oid[] = {0x2B, 0x06, 0x01, 0x05, 0x05, 0x02};

/* The token field of a NegTokenInit ([2] mechToken after [0] mechTypes and
 * optional [1] reqFlags) or NegTokenResp ([0] negState, [1] supportedMech,
 * [2] responseToken, all optional). Each field is walked in order, so the
 * [2] found is the one the server reads; nothing may follow [3]. */
static int spnego_token(struct der seq, int init, struct der *tok, int *has)
{
    struct der v;
    int present, rc;
    *has = 0;
    if (init) {
        if ((rc = der_take(&seq, 0xA0, &v)) < 0)
            return rc;
    } else if ((rc = der_opt(&seq, 0xA0, &v, &present)) < 0) {
        return rc;
    }
    if ((rc = der_opt(&seq, 0xA1, &v, &present)) < 0)
        return rc;
    struct der wrap;
    if ((rc = der_opt(&seq, 0xA2, &wrap, has)) < 0)
        return rc;
    if (*has) {
        if ((rc = der_take(&wrap, 0x04, tok)) < 0 || wrap.n != 0)
            return NTLM_E_DER;
    }
    if ((rc = der_opt(&seq, 0xA3, &v, &present)) < 0)
        return rc;
    return seq.n == 0 ? 0 : NTLM_E_DER;
}

int ntlm_from_negotiate(const uint8_t *tok, size_t len, const uint8_t **inner, size_t *inner_len)
{
    if (!tok || !inner || !inner_len)
        return NTLM_E_INVAL;
    *inner = NULL;
    *inner_len = 0;
    if (len >= sizeof(ntlm_sig) && memcmp(tok, ntlm_sig, sizeof(ntlm_sig)) == 0) {
        *inner = tok;
        *inner_len = len;
        return 0;
    }
    struct der all = {tok, len}, body, seq, choice, oid;
    int init, rc;
    if (len > 0 && tok[0] == 0x60) {
        /* GSS-API InitialContextToken: [APPLICATION 0] { thisMech, token } */
        if ((rc = der_take(&all, 0x60, &body)) < 0 || all.n != 0)
            return NTLM_E_DER;
        if ((rc = der_take(&body, 0x06, &oid)) < 0)
            return rc;
        if (oid.n != sizeof(spnego_oid) || memcmp(oid.p, spnego_oid, oid.n) != 0)
            return NTLM_E_KERBEROS; /* a bare Kerberos (or other) mechanism */
        if ((rc = der_take(&body, 0xA0, &choice)) < 0 || body.n != 0)
            return NTLM_E_DER;
        init = 1;
    } else if (len > 0 && tok[0] == 0xA1) {
        if ((rc = der_take(&all, 0xA1, &choice)) < 0 || all.n != 0)
            return NTLM_E_DER;
        init = 0;
    } else {
        return NTLM_E_DER;
    }
    if ((rc = der_take(&choice, 0x30, &seq)) < 0 || choice.n != 0)
        return NTLM_E_DER;
    struct der t;
    int has;
    if ((rc = spnego_token(seq, init, &t, &has)) < 0)
        return rc;
    if (!has || t.n < sizeof(ntlm_sig) || memcmp(t.p, ntlm_sig, sizeof(ntlm_sig)) != 0)
        return NTLM_E_KERBEROS;
    *inner = t.p;
    *inner_len = t.n;
    return 0;
}

const char *ntlm_strerror(int err)
{
    switch (err) {
    case NTLM_OK:
        return "ok";
    case NTLM_E_NOT_NTLM:
        return "not an NTLMSSP message";
    case NTLM_E_TYPE:
        return "NTLM message type not negotiate, challenge or authenticate";
    case NTLM_E_SHORT:
        return "NTLM message shorter than its fixed part";
    case NTLM_E_FIELD:
        return "NTLM field points outside the message";
    case NTLM_E_ENCODING:
        return "NTLM user or domain not valid text";
    case NTLM_E_TOO_LONG:
        return "NTLM user or domain too long";
    case NTLM_E_ANONYMOUS:
        return "NTLM anonymous authentication (no user)";
    case NTLM_E_DER:
        return "Negotiate token is not a well-formed SPNEGO token";
    case NTLM_E_KERBEROS:
        return "Negotiate token carries Kerberos (or another mechanism), not NTLM";
    case NTLM_E_INVAL:
        return "invalid argument";
    default:
        return "unknown NTLM error";
    }
}
