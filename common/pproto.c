/* pproto: PROXY protocol v1/v2 header parser (see pproto.h). */
#include "common/pproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#define V1_MAX 107 /* "PROXY TCP6 " + two longest IPv6 + two ports + spaces + CRLF */

static const uint8_t v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                   0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

static int bad(const char **why, const char *text)
{
    *why = text;
    return PP_BAD;
}

/* The next space-separated token of [*p, end): copied NUL-terminated into
 * out (at most cap - 1 bytes); *p moves past it and one separator. */
static int token(const char **p, const char *end, char sep, char *out, size_t cap)
{
    const char *s = *p, *e = memchr(s, sep, (size_t)(end - s));
    if (!e || e == s || (size_t)(e - s) >= cap)
        return -1;
    memcpy(out, s, (size_t)(e - s));
    out[e - s] = '\0';
    *p = e + 1;
    return 0;
}

static int port(const char *t, uint16_t *out)
{
    size_t n = strlen(t);
    if (n == 0 || n > 5 || (n > 1 && t[0] == '0'))
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i] < '0' || t[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(t[i] - '0');
    }
    if (v > 65535)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

static int set_addr(struct sockaddr_storage *ss, int fam, const char *ip, uint16_t p)
{
    memset(ss, 0, sizeof(*ss));
    if (fam == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons(p);
        return inet_pton(AF_INET, ip, &a->sin_addr) == 1 ? 0 : -1;
    }
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(p);
    return inet_pton(AF_INET6, ip, &a->sin6_addr) == 1 ? 0 : -1;
}

static int v1(const uint8_t *buf, size_t n, struct pp_info *out, const char **why)
{
    static const char pfx[] = "PROXY ";
    size_t k = n < 6 ? n : 6;
    if (memcmp(buf, pfx, k) != 0)
        return bad(why, "not a PROXY protocol header");
    const uint8_t *lf = memchr(buf, '\n', n < V1_MAX ? n : V1_MAX);
    if (!lf)
        return n < V1_MAX ? PP_MORE : bad(why, "v1 header: no CRLF within 107 bytes");
    if (lf == buf || lf[-1] != '\r')
        return bad(why, "v1 header: line not ended by CRLF");
    if (memchr(buf, 0, (size_t)(lf - buf)))
        return bad(why, "v1 header: NUL byte in the line");
    const char *p = (const char *)buf + 6, *end = (const char *)lf - 1; /* at the CR */
    memset(out, 0, sizeof(*out));
    out->len = (size_t)(lf - buf) + 1;
    out->version = 1;
    if ((size_t)(end - p) >= 7 && memcmp(p, "UNKNOWN", 7) == 0 && (p + 7 == end || p[7] == ' '))
        return PP_DONE; /* the rest of the line says nothing usable */
    int fam;
    if ((size_t)(end - p) >= 5 && memcmp(p, "TCP4 ", 5) == 0)
        fam = AF_INET;
    else if ((size_t)(end - p) >= 5 && memcmp(p, "TCP6 ", 5) == 0)
        fam = AF_INET6;
    else
        return bad(why, "v1 header: protocol is not TCP4, TCP6 or UNKNOWN");
    p += 5;
    char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN], sp[8], dp[8];
    uint16_t sport, dport;
    if (token(&p, end, ' ', src, sizeof(src)) < 0 || token(&p, end, ' ', dst, sizeof(dst)) < 0 ||
        token(&p, end, ' ', sp, sizeof(sp)) < 0)
        return bad(why, "v1 header: fewer than four fields after the protocol");
    size_t rest = (size_t)(end - p);
    if (rest == 0 || rest >= sizeof(dp) || memchr(p, ' ', rest))
        return bad(why, "v1 header: bad destination port field");
    memcpy(dp, p, rest);
    dp[rest] = '\0';
    if (port(sp, &sport) < 0 || port(dp, &dport) < 0)
        return bad(why, "v1 header: port not a number from 0 to 65535");
    if (set_addr(&out->src, fam, src, sport) < 0 || set_addr(&out->dst, fam, dst, dport) < 0)
        return bad(why, "v1 header: address does not match the protocol");
    out->has_addr = 1;
    return PP_DONE;
}

static int v2(const uint8_t *buf, size_t n, struct pp_info *out, const char **why)
{
    size_t k = n < sizeof(v2_sig) ? n : sizeof(v2_sig);
    if (memcmp(buf, v2_sig, k) != 0)
        return bad(why, "not a PROXY protocol header");
    if (n < 16)
        return PP_MORE;
    if ((buf[12] >> 4) != 2)
        return bad(why, "v2 header: version is not 2");
    int cmd = buf[12] & 0x0f;
    if (cmd > 1)
        return bad(why, "v2 header: command is neither LOCAL nor PROXY");
    size_t len = (size_t)buf[14] << 8 | buf[15];
    if (16 + len > PP_MAX)
        return bad(why, "v2 header: longer than 1024 bytes");
    if (n < 16 + len)
        return PP_MORE;
    memset(out, 0, sizeof(*out));
    out->len = 16 + len;
    out->version = 2;
    if (cmd == 0)
        return PP_DONE; /* LOCAL: the balancer's own connection */
    const uint8_t *a = buf + 16;
    if (buf[13] == 0x11) { /* TCP over IPv4 */
        if (len < 12)
            return bad(why, "v2 header: address block shorter than IPv4 needs");
        struct sockaddr_in *s = (struct sockaddr_in *)&out->src,
                           *d = (struct sockaddr_in *)&out->dst;
        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, a, 4);
        memcpy(&d->sin_addr, a + 4, 4);
        memcpy(&s->sin_port, a + 8, 2);
        memcpy(&d->sin_port, a + 10, 2);
        out->has_addr = 1;
    } else if (buf[13] == 0x21) { /* TCP over IPv6 */
        if (len < 36)
            return bad(why, "v2 header: address block shorter than IPv6 needs");
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src,
                            *d = (struct sockaddr_in6 *)&out->dst;
        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, a, 16);
        memcpy(&d->sin6_addr, a + 16, 16);
        memcpy(&s->sin6_port, a + 32, 2);
        memcpy(&d->sin6_port, a + 34, 2);
        out->has_addr = 1;
    }
    /* UNSPEC, UDP, UNIX: nothing to say about a TCP client */
    return PP_DONE;
}

int pp_parse(const uint8_t *buf, size_t n, struct pp_info *out, const char **why)
{
    if (n == 0)
        return PP_MORE;
    if (buf[0] == 'P')
        return v1(buf, n, out, why);
    if (buf[0] == 0x0d)
        return v2(buf, n, out, why);
    return bad(why, "not a PROXY protocol header");
}
