/* test_pproto: the PROXY protocol header parser, v1 and v2: every form a
 * balancer sends, every prefix of each (more, never done or bad too early),
 * and the malformed cases with their reasons. Each input is parsed from an
 * exact-size heap copy, so ASan sees any read past its end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "common/pproto.h"

static int parse(const void *data, size_t n, struct pp_info *info, const char **why)
{
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    memcpy(copy, data, n);
    *why = NULL;
    int rc = pp_parse(copy, n, info, why);
    free(copy);
    return rc;
}

/* Every strict prefix needs more; the whole is done with len == n (the
 * client's data after it is not part of the header). */
static void done(const void *data, size_t n, struct pp_info *info)
{
    const char *why;
    for (size_t k = 0; k < n; k++)
        if (parse(data, k, info, &why) != PP_MORE)
            fail_msg("prefix of %zu bytes: not PP_MORE (%s)", k, why ? why : "done");
    uint8_t *more = malloc(n + 5);
    assert_non_null(more);
    memcpy(more, data, n);
    memcpy(more + n, "\x16\x03\x01\x00\x05", 5); /* a TLS record right behind */
    assert_int_equal(parse(more, n + 5, info, &why), PP_DONE);
    free(more);
    assert_int_equal(info->len, n);
    assert_int_equal(parse(data, n, info, &why), PP_DONE);
    assert_int_equal(info->len, n);
}

static void is_bad(const void *data, size_t n, const char *want)
{
    struct pp_info info;
    const char *why;
    assert_int_equal(parse(data, n, &info, &why), PP_BAD);
    assert_non_null(why);
    if (!strstr(why, want))
        fail_msg("reason '%s' lacks '%s'", why, want);
}

static void ip4(const struct sockaddr_storage *ss, const char *ip, int port)
{
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    char t[INET_ADDRSTRLEN];
    assert_int_equal(a->sin_family, AF_INET);
    assert_non_null(inet_ntop(AF_INET, &a->sin_addr, t, sizeof(t)));
    assert_string_equal(t, ip);
    assert_int_equal(ntohs(a->sin_port), port);
}

static void ip6(const struct sockaddr_storage *ss, const char *ip, int port)
{
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    char t[INET6_ADDRSTRLEN];
    assert_int_equal(a->sin6_family, AF_INET6);
    assert_non_null(inet_ntop(AF_INET6, &a->sin6_addr, t, sizeof(t)));
    assert_string_equal(t, ip);
    assert_int_equal(ntohs(a->sin6_port), port);
}

#define S(lit) lit, sizeof(lit) - 1

static void test_v1(void **state)
{
    struct pp_info i;
    done(S("PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n"), &i);
    assert_int_equal(i.version, 1);
    assert_true(i.has_addr);
    ip4(&i.src, "203.0.113.7", 56324);
    ip4(&i.dst, "192.0.2.1", 443);

    done(S("PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n"), &i);
    ip6(&i.src, "2001:db8::7", 65535);
    ip6(&i.dst, "2001:db8::1", 0);

    /* the longest line the spec allows: 107 bytes */
    static const char longest[] = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                                  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_int_equal(sizeof(longest) - 1, 104);
    done(S(longest), &i);
    ip6(&i.src, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);

    done(S("PROXY UNKNOWN\r\n"), &i);
    assert_false(i.has_addr);
    done(S("PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\n"), &i);
    assert_false(i.has_addr);
}

static void test_v1_bad(void **state)
{
    is_bad(S("GET / HTTP/1.1\r\n"), "not a PROXY protocol header");
    is_bad(S("\x16\x03\x01\x02\x00"), "not a PROXY protocol header"); /* a bare ClientHello */
    is_bad(S("PROXZ"), "not a PROXY protocol header");
    is_bad(S("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"), "not TCP4, TCP6 or UNKNOWN");
    is_bad(S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), "not ended by CRLF");
    is_bad(S("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"), "fewer than four fields");
    is_bad(S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"), "bad destination port");
    is_bad(S("PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n"), "bad destination port");
    is_bad(S("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n"), "fewer than four fields");
    is_bad(S("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"), "port not a number");
    is_bad(S("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"), "port not a number");
    is_bad(S("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n"), "port not a number");
    is_bad(S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2x\r\n"), "port not a number");
    is_bad(S("PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n"), "does not match the protocol");
    is_bad(S("PROXY TCP6 1.2.3.4 2001:db8::1 1 2\r\n"), "does not match the protocol");
    is_bad(S("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n"), "does not match the protocol");
    is_bad(S("PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n"), "NUL byte");
    is_bad(S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\0\r\n"), "NUL byte");
    /* 107 bytes without a line end */
    char line[200];
    memset(line, 'x', sizeof(line));
    memcpy(line, "PROXY TCP4 ", 11);
    struct pp_info i;
    const char *why;
    assert_int_equal(parse(line, 106, &i, &why), PP_MORE);
    is_bad(line, 107, "no CRLF within 107 bytes");
    is_bad(line, sizeof(line), "no CRLF within 107 bytes");
}

/* A v2 header: signature, ver_cmd, fam, then body (len bytes). */
static size_t v2(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const void *body, size_t len)
{
    static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                    0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
    memcpy(out, sig, 12);
    out[12] = ver_cmd;
    out[13] = fam;
    out[14] = (uint8_t)(len >> 8);
    out[15] = (uint8_t)len;
    if (len)
        memcpy(out + 16, body, len);
    return 16 + len;
}

static void test_v2(void **state)
{
    uint8_t h[2048], body[1100];
    struct pp_info i;
    /* TCP over IPv4: 203.0.113.7:56324 -> 192.0.2.1:443 */
    static const uint8_t a4[12] = {203, 0, 113, 7, 192, 0, 2, 1, 0xdc, 0x04, 0x01, 0xbb};
    size_t n = v2(h, 0x21, 0x11, a4, sizeof(a4));
    done(h, n, &i);
    assert_int_equal(i.version, 2);
    assert_true(i.has_addr);
    ip4(&i.src, "203.0.113.7", 56324);
    ip4(&i.dst, "192.0.2.1", 443);

    /* the same with TLVs after the addresses (an AWS VPC endpoint id, ALPN) */
    memcpy(body, a4, 12);
    static const uint8_t tlv[] = {0xea, 0x00, 0x08, 0x01, 'v', 'p', 'c', 'e', '-', '1', '2',
                                  0x01, 0x00, 0x08, 'h',  't', 't', 'p', '/', '1', '.', '1'};
    memcpy(body + 12, tlv, sizeof(tlv));
    n = v2(h, 0x21, 0x11, body, 12 + sizeof(tlv));
    done(h, n, &i);
    ip4(&i.src, "203.0.113.7", 56324);

    /* TCP over IPv6 */
    uint8_t a6[36] = {0};
    inet_pton(AF_INET6, "2001:db8::7", a6);
    inet_pton(AF_INET6, "2001:db8::1", a6 + 16);
    a6[32] = 0x12, a6[33] = 0x34, a6[34] = 0x01, a6[35] = 0xbb;
    n = v2(h, 0x21, 0x21, a6, sizeof(a6));
    done(h, n, &i);
    ip6(&i.src, "2001:db8::7", 0x1234);
    ip6(&i.dst, "2001:db8::1", 443);

    /* LOCAL (a health check), with or without a body: no client address */
    n = v2(h, 0x20, 0x00, NULL, 0);
    done(h, n, &i);
    assert_false(i.has_addr);
    n = v2(h, 0x20, 0x11, a4, sizeof(a4));
    done(h, n, &i);
    assert_false(i.has_addr);

    /* UNSPEC, UDP and UNIX families: accepted, the socket's address stands */
    n = v2(h, 0x21, 0x00, NULL, 0);
    done(h, n, &i);
    assert_false(i.has_addr);
    n = v2(h, 0x21, 0x12, a4, sizeof(a4));
    done(h, n, &i);
    assert_false(i.has_addr);
    memset(body, 'u', 216);
    n = v2(h, 0x21, 0x31, body, 216);
    done(h, n, &i);
    assert_false(i.has_addr);

    /* the largest header accepted: 1024 bytes in all */
    memcpy(body, a4, 12);
    memset(body + 12, 0, PP_MAX - 16 - 12);
    n = v2(h, 0x21, 0x11, body, PP_MAX - 16);
    done(h, n, &i);
    assert_int_equal(i.len, PP_MAX);
}

static void test_v2_bad(void **state)
{
    uint8_t h[2048], body[1100] = {0};
    static const uint8_t a4[12] = {203, 0, 113, 7, 192, 0, 2, 1, 0xdc, 0x04, 0x01, 0xbb};
    size_t n = v2(h, 0x21, 0x11, a4, sizeof(a4));
    h[11] = 0x0b;
    is_bad(h, n, "not a PROXY protocol header");
    is_bad(h, 12, "not a PROXY protocol header");
    n = v2(h, 0x11, 0x11, a4, sizeof(a4));
    is_bad(h, n, "version is not 2");
    is_bad(h, 16, "version is not 2"); /* known as soon as the head is in */
    n = v2(h, 0x22, 0x11, a4, sizeof(a4));
    is_bad(h, n, "neither LOCAL nor PROXY");
    n = v2(h, 0x21, 0x11, a4, 11);
    is_bad(h, n, "shorter than IPv4 needs");
    uint8_t a6[36] = {0};
    n = v2(h, 0x21, 0x21, a6, 35);
    is_bad(h, n, "shorter than IPv6 needs");
    n = v2(h, 0x21, 0x11, body, PP_MAX - 15);
    is_bad(h, 16, "longer than 1024 bytes"); /* refused before the body arrives */
    h[14] = 0xff, h[15] = 0xff;
    is_bad(h, 16, "longer than 1024 bytes");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1),
        cmocka_unit_test(test_v1_bad),
        cmocka_unit_test(test_v2),
        cmocka_unit_test(test_v2_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
