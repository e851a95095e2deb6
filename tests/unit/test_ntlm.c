/* test_ntlm: the user an NTLM AUTHENTICATE message names (Unicode and OEM,
 * every field bound, surrogates, control characters, anonymous), message
 * types, and the NTLMSSP message inside SPNEGO tokens (NegTokenInit and
 * NegTokenResp, Kerberos refused, DER strictness). Every input is parsed
 * from an exact-size heap copy, so ASan sees any read past its end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "eas/ntlm.h"

/* ---- building messages ---- */

struct msg {
    uint8_t b[2048];
    size_t n;
};

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

static void set_field(struct msg *m, size_t at, const uint8_t *d, size_t n)
{
    put16(m->b + at, (uint16_t)n);
    put16(m->b + at + 2, (uint16_t)n);
    put32(m->b + at + 4, (uint32_t)m->n);
    if (n)
        memcpy(m->b + m->n, d, n);
    m->n += n;
}

static size_t utf16(const char *ascii, uint8_t *out)
{
    size_t n = strlen(ascii);
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = (uint8_t)ascii[i];
        out[2 * i + 1] = 0;
    }
    return 2 * n;
}

/* An AUTHENTICATE message as Windows sends one: fixed part, Version, MIC,
 * then the payload (domain, user, workstation, LM and NT responses). */
static void auth_msg(struct msg *m, const uint8_t *dom, size_t dn, const uint8_t *usr, size_t un,
                     int unicode)
{
    memset(m, 0, sizeof(*m));
    memcpy(m->b, "NTLMSSP\0", 8);
    put32(m->b + 8, 3);
    put32(m->b + 60, unicode ? 0xE2888235u : 0xE2888236u);
    m->n = 88;
    set_field(m, 28, dom, dn);
    set_field(m, 36, usr, un);
    uint8_t ws[16];
    set_field(m, 44, ws, unicode ? utf16("PHONE", ws) : (memcpy(ws, "PHONE", 5), 5));
    uint8_t resp[24] = {0};
    set_field(m, 12, resp, 24);
    set_field(m, 20, resp, 24);
}

static void auth_ascii(struct msg *m, const char *dom, const char *usr, int unicode)
{
    uint8_t d[600], u[600];
    size_t dn, un;
    if (unicode) {
        dn = utf16(dom, d);
        un = utf16(usr, u);
    } else {
        dn = strlen(dom);
        un = strlen(usr);
        memcpy(d, dom, dn);
        memcpy(u, usr, un);
    }
    auth_msg(m, d, dn, u, un, unicode);
}

static int parse(const uint8_t *data, size_t n, struct ntlm_auth *a)
{
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    memcpy(copy, data, n);
    int rc = ntlm_parse_authenticate(copy, n, a);
    free(copy);
    return rc;
}

/* ---- AUTHENTICATE ---- */

static void unicode_user_and_domain(void **state)
{
    struct msg m;
    struct ntlm_auth a;
    auth_ascii(&m, "CORP", "alice", 1);
    assert_int_equal(parse(m.b, m.n, &a), 0);
    assert_string_equal(a.user, "alice");
    assert_string_equal(a.domain, "CORP");
    assert_int_equal(ntlm_msg_type(m.b, m.n), NTLM_MSG_AUTHENTICATE);
}

static void oem_user(void **state)
{
    struct msg m;
    struct ntlm_auth a;
    auth_ascii(&m, "", "bob@corp.example", 0);
    assert_int_equal(parse(m.b, m.n, &a), 0);
    assert_string_equal(a.user, "bob@corp.example");
    assert_string_equal(a.domain, "");
}

static void non_ascii_and_surrogates(void **state)
{
    /* "jürgen" and U+1F600 as a surrogate pair */
    uint8_t u[] = {'j', 0, 0xFC, 0, 'r', 0, 'g', 0, 'e', 0, 'n', 0, 0x3D, 0xD8, 0x00, 0xDE};
    struct msg m;
    struct ntlm_auth a;
    auth_msg(&m, (const uint8_t *)"C\0", 2, u, sizeof(u), 1);
    assert_int_equal(parse(m.b, m.n, &a), 0);
    assert_string_equal(a.user, "j\xC3\xBCrgen\xF0\x9F\x98\x80");
    assert_string_equal(a.domain, "C");

    uint8_t lone_hi[] = {'a', 0, 0x3D, 0xD8};
    auth_msg(&m, NULL, 0, lone_hi, sizeof(lone_hi), 1);
    assert_int_equal(parse(m.b, m.n, &a), NTLM_E_ENCODING);
    uint8_t lone_lo[] = {0x00, 0xDE, 'a', 0};
    auth_msg(&m, NULL, 0, lone_lo, sizeof(lone_lo), 1);
    assert_int_equal(parse(m.b, m.n, &a), NTLM_E_ENCODING);
    uint8_t hi_hi[] = {0x3D, 0xD8, 0x3D, 0xD8};
    auth_msg(&m, NULL, 0, hi_hi, sizeof(hi_hi), 1);
    assert_int_equal(parse(m.b, m.n, &a), NTLM_E_ENCODING);
    uint8_t odd[] = {'a', 0, 'b'};
    auth_msg(&m, NULL, 0, odd, sizeof(odd), 1);
    assert_int_equal(parse(m.b, m.n, &a), NTLM_E_ENCODING);
}

static void control_characters_refused(void **state)
{
    uint8_t nul[] = {'a', 0, 0, 0, 'b', 0}; /* "a\0b": would log as "a" */
    struct msg m;
    struct ntlm_auth a;
    auth_msg(&m, NULL, 0, nul, sizeof(nul), 1);
    assert_int_equal(parse(m.b, m.n, &a), NTLM_E_ENCODING);
    assert_string_equal(a.user, "");
    auth_ascii(&m, "", "a\nb", 0);
    assert_int_equal(parse(m.b, m.n, &a), NTLM_E_ENCODING);
    uint8_t high[] = {'a', 0xE9};
    auth_msg(&m, NULL, 0, high, sizeof(high), 0);
    assert_int_equal(parse(m.b, m.n, &a), NTLM_E_ENCODING);
    uint8_t c1[] = {0x85, 0x00};
    auth_msg(&m, NULL, 0, c1, sizeof(c1), 1);
    assert_int_equal(parse(m.b, m.n, &a), NTLM_E_ENCODING);
}

static void anonymous_has_no_user(void **state)
{
    struct msg m;
    struct ntlm_auth a;
    auth_ascii(&m, "CORP", "", 1);
    assert_int_equal(parse(m.b, m.n, &a), NTLM_E_ANONYMOUS);
    assert_string_equal(a.user, "");
}

static void too_long(void **state)
{
    char name[300];
    memset(name, 'x', 256);
    name[256] = '\0';
    struct msg m;
    struct ntlm_auth a;
    auth_ascii(&m, "", name, 1);
    assert_int_equal(parse(m.b, m.n, &a), NTLM_E_TOO_LONG);
    name[255] = '\0';
    auth_ascii(&m, "", name, 1);
    assert_int_equal(parse(m.b, m.n, &a), 0);
    assert_int_equal(strlen(a.user), 255);
}

static void fields_out_of_bounds(void **state)
{
    struct msg m;
    struct ntlm_auth a;
    auth_ascii(&m, "CORP", "alice", 1);
    /* user offset past the end, length past the end, offset wrapping */
    struct msg b = m;
    put32(b.b + 40, (uint32_t)b.n);
    assert_int_equal(parse(b.b, b.n, &a), NTLM_E_FIELD);
    b = m;
    put16(b.b + 36, 0xFFFF);
    assert_int_equal(parse(b.b, b.n, &a), NTLM_E_FIELD);
    b = m;
    put32(b.b + 40, 0xFFFFFFF0u);
    assert_int_equal(parse(b.b, b.n, &a), NTLM_E_FIELD);
    b = m;
    put32(b.b + 32, 0xFFFFFFFFu); /* domain */
    assert_int_equal(parse(b.b, b.n, &a), NTLM_E_FIELD);
    /* every truncation of the message is refused or reads inside it */
    for (size_t k = 0; k < m.n; k++) {
        int rc = parse(m.b, k, &a);
        assert_true(rc < 0);
    }
}

static void types_and_signature(void **state)
{
    uint8_t neg[32] = "NTLMSSP\0";
    put32(neg + 8, 1);
    assert_int_equal(ntlm_msg_type(neg, sizeof(neg)), NTLM_MSG_NEGOTIATE);
    struct ntlm_auth a;
    assert_int_equal(parse(neg, sizeof(neg), &a), NTLM_E_TYPE);
    put32(neg + 8, 2);
    assert_int_equal(ntlm_msg_type(neg, sizeof(neg)), NTLM_MSG_CHALLENGE);
    put32(neg + 8, 4);
    assert_int_equal(ntlm_msg_type(neg, sizeof(neg)), NTLM_E_TYPE);
    put32(neg + 8, 0);
    assert_int_equal(ntlm_msg_type(neg, sizeof(neg)), NTLM_E_TYPE);
    assert_int_equal(ntlm_msg_type((const uint8_t *)"NTLMSSP", 7), NTLM_E_NOT_NTLM);
    assert_int_equal(ntlm_msg_type((const uint8_t *)"NTLMSSP\0\3\0", 10), NTLM_E_SHORT);
    assert_int_equal(ntlm_msg_type((const uint8_t *)"NTLMSSX\0\3\0\0\0", 12), NTLM_E_NOT_NTLM);
    assert_int_equal(ntlm_msg_type(NULL, 0), NTLM_E_NOT_NTLM);
    assert_int_equal(ntlm_parse_authenticate(neg, sizeof(neg), NULL), NTLM_E_INVAL);
}

/* ---- SPNEGO ---- */

/* DER TLV with the shortest length form. */
static size_t tlv(uint8_t *out, uint8_t tag, const uint8_t *v, size_t n)
{
    size_t i = 0;
    out[i++] = tag;
    if (n < 0x80) {
        out[i++] = (uint8_t)n;
    } else if (n < 0x100) {
        out[i++] = 0x81;
        out[i++] = (uint8_t)n;
    } else {
        out[i++] = 0x82;
        out[i++] = (uint8_t)(n >> 8);
        out[i++] = (uint8_t)n;
    }
    memmove(out + i, v, n);
    return i + n;
}

static const uint8_t oid_spnego[] = {0x06, 0x06, 0x2B, 0x06, 0x01, 0x05, 0x05, 0x02};
static const uint8_t oid_krb5[] = {0x06, 0x09, 0x2A, 0x86, 0x48, 0x86,
                                   0xF7, 0x12, 0x01, 0x02, 0x02};
static const uint8_t oid_ntlm[] = {0x06, 0x0A, 0x2B, 0x06, 0x01, 0x04,
                                   0x01, 0x82, 0x37, 0x02, 0x02, 0x0A};

/* NegTokenResp { negState accept-incomplete, responseToken tok } */
static size_t neg_resp(uint8_t *out, const uint8_t *tok, size_t n, int with_mic)
{
    uint8_t seq[2200], t[2200], f[2200];
    size_t s = 0;
    static const uint8_t state[] = {0xA0, 0x03, 0x0A, 0x01, 0x01};
    memcpy(seq, state, sizeof(state));
    s += sizeof(state);
    size_t k = tlv(t, 0x04, tok, n);
    s += tlv(seq + s, 0xA2, t, k);
    if (with_mic) {
        static const uint8_t mic[] = {0x04, 0x02, 0xAA, 0xBB};
        s += tlv(seq + s, 0xA3, mic, sizeof(mic));
    }
    k = tlv(f, 0x30, seq, s);
    return tlv(out, 0xA1, f, k);
}

/* InitialContextToken { SPNEGO, NegTokenInit { mechTypes [mech], mechToken tok } } */
static size_t neg_init(uint8_t *out, const uint8_t *oid, size_t oid_n, const uint8_t *tok, size_t n)
{
    uint8_t seq[2200], t[2200], f[2200], body[2400];
    size_t s = 0, k;
    k = tlv(t, 0x30, oid_ntlm, sizeof(oid_ntlm));
    s += tlv(seq + s, 0xA0, t, k);
    k = tlv(t, 0x04, tok, n);
    s += tlv(seq + s, 0xA2, t, k);
    k = tlv(f, 0x30, seq, s);
    size_t b = 0;
    memcpy(body, oid, oid_n);
    b += oid_n;
    b += tlv(body + b, 0xA0, f, k);
    return tlv(out, 0x60, body, b);
}

static int unwrap(const uint8_t *tok, size_t n, struct ntlm_auth *a)
{
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    memcpy(copy, tok, n);
    const uint8_t *in;
    size_t inl;
    int rc = ntlm_from_negotiate(copy, n, &in, &inl);
    if (rc == 0) {
        assert_true(in >= copy && in + inl <= copy + n);
        rc = ntlm_parse_authenticate(in, inl, a);
    }
    free(copy);
    return rc;
}

static void spnego_resp_with_ntlm(void **state)
{
    struct msg m;
    struct ntlm_auth a;
    auth_ascii(&m, "CORP", "carol", 1);
    uint8_t tok[2400];
    size_t n = neg_resp(tok, m.b, m.n, 0);
    assert_int_equal(unwrap(tok, n, &a), 0);
    assert_string_equal(a.user, "carol");
    n = neg_resp(tok, m.b, m.n, 1);
    assert_int_equal(unwrap(tok, n, &a), 0);
    /* raw NTLMSSP under "Negotiate" */
    assert_int_equal(unwrap(m.b, m.n, &a), 0);
    /* every truncation is refused */
    n = neg_resp(tok, m.b, m.n, 1);
    for (size_t k = 0; k < n; k++)
        assert_true(unwrap(tok, k, &a) < 0);
    /* a byte after the token */
    tok[n] = 0;
    assert_int_equal(unwrap(tok, n + 1, &a), NTLM_E_DER);
}

static void spnego_init_and_kerberos(void **state)
{
    uint8_t neg[40] = "NTLMSSP\0";
    put32(neg + 8, 1);
    uint8_t tok[2400];
    size_t n = neg_init(tok, oid_spnego, sizeof(oid_spnego), neg, sizeof(neg));
    const uint8_t *in;
    size_t inl;
    assert_int_equal(ntlm_from_negotiate(tok, n, &in, &inl), 0);
    assert_int_equal(ntlm_msg_type(in, inl), NTLM_MSG_NEGOTIATE);

    /* SPNEGO around a Kerberos AP-REQ (not NTLMSSP) */
    uint8_t apreq[64] = {0x6E, 0x3E};
    n = neg_init(tok, oid_spnego, sizeof(oid_spnego), apreq, sizeof(apreq));
    assert_int_equal(ntlm_from_negotiate(tok, n, &in, &inl), NTLM_E_KERBEROS);
    /* bare Kerberos GSS token */
    n = neg_init(tok, oid_krb5, sizeof(oid_krb5), neg, sizeof(neg));
    assert_int_equal(ntlm_from_negotiate(tok, n, &in, &inl), NTLM_E_KERBEROS);
    /* a Kerberos token with "NTLMSSP" bytes somewhere inside is still Kerberos */
    uint8_t sneaky[80] = {0x6E, 0x4E, 0x30};
    struct msg m;
    auth_ascii(&m, "", "mallory", 0);
    memcpy(sneaky + 10, m.b, 60);
    n = neg_init(tok, oid_spnego, sizeof(oid_spnego), sneaky, sizeof(sneaky));
    assert_int_equal(ntlm_from_negotiate(tok, n, &in, &inl), NTLM_E_KERBEROS);
}

static void der_strictness(void **state)
{
    const uint8_t *in;
    size_t inl;
    /* long form for a short length */
    static const uint8_t long_short[] = {0xA1, 0x81, 0x05, 0x30, 0x03, 0xA0, 0x01, 0x00};
    assert_int_equal(ntlm_from_negotiate(long_short, sizeof(long_short), &in, &inl), NTLM_E_DER);
    /* indefinite length */
    static const uint8_t indef[] = {0xA1, 0x80, 0x30, 0x00, 0x00, 0x00};
    assert_int_equal(ntlm_from_negotiate(indef, sizeof(indef), &in, &inl), NTLM_E_DER);
    /* length past the end */
    static const uint8_t past[] = {0xA1, 0x7F, 0x30};
    assert_int_equal(ntlm_from_negotiate(past, sizeof(past), &in, &inl), NTLM_E_DER);
    /* huge long-form length */
    static const uint8_t huge[] = {0xA1, 0x84, 0xFF, 0xFF, 0xFF, 0xFF, 0x30};
    assert_int_equal(ntlm_from_negotiate(huge, sizeof(huge), &in, &inl), NTLM_E_DER);
    /* fields out of order: [2] before [0] */
    static const uint8_t order[] = {0xA1, 0x0D, 0x30, 0x0B, 0xA2, 0x04, 0x04, 0x02,
                                    0x01, 0x02, 0xA0, 0x03, 0x0A, 0x01, 0x01};
    assert_int_equal(ntlm_from_negotiate(order, sizeof(order), &in, &inl), NTLM_E_DER);
    /* empty NegTokenResp: no token, so no NTLM */
    static const uint8_t empty[] = {0xA1, 0x02, 0x30, 0x00};
    assert_int_equal(ntlm_from_negotiate(empty, sizeof(empty), &in, &inl), NTLM_E_KERBEROS);
    static const uint8_t junk[] = {0x01, 0x02};
    assert_int_equal(ntlm_from_negotiate(junk, sizeof(junk), &in, &inl), NTLM_E_DER);
    assert_int_equal(ntlm_from_negotiate(junk, 0, &in, &inl), NTLM_E_DER);
    assert_string_equal(ntlm_strerror(NTLM_E_KERBEROS),
                        "Negotiate token carries Kerberos (or another mechanism), not NTLM");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unicode_user_and_domain),  cmocka_unit_test(oem_user),
        cmocka_unit_test(non_ascii_and_surrogates), cmocka_unit_test(control_characters_refused),
        cmocka_unit_test(anonymous_has_no_user),    cmocka_unit_test(too_long),
        cmocka_unit_test(fields_out_of_bounds),     cmocka_unit_test(types_and_signature),
        cmocka_unit_test(spnego_resp_with_ntlm),    cmocka_unit_test(spnego_init_and_kerberos),
        cmocka_unit_test(der_strictness),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
