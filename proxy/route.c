/* route: target -> route, the target's hygiene, and the EWS subscription
 * check. */
#include "proxy/route.h"

#include "eas/ews.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static int path_is(const char *p, size_t n, const char *want)
{
    size_t l = strlen(want);
    if (n == l + 1 && p[l] == '/')
        n = l; /* one trailing slash is the same resource */
    return n == l && strncasecmp(p, want, l) == 0;
}

static int ews_path_safe(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (ch == '%' || ch == '\\' || ch == ';' || (unsigned char)ch < 0x21 ||
            (unsigned char)ch > 0x7e)
            return 0;
        if (ch == '.' && i > 0 && p[i - 1] == '/')
            return 0;
    }
    return 1;
}

enum route_kind route_of(const char *t, size_t len)
{
    /* absolute form: skip scheme://authority */
    if (len > 0 && t[0] != '/') {
        const char *s = memchr(t, ':', len);
        if (!s || (size_t)(s - t) + 3 > len || s[1] != '/' || s[2] != '/')
            return RT_OTHER;
        const char *a = s + 3;
        const char *slash = memchr(a, '/', len - (size_t)(a - t));
        if (!slash)
            return RT_OTHER;
        len -= (size_t)(slash - t);
        t = slash;
    }
    const char *q = memchr(t, '?', len);
    size_t plen = q ? (size_t)(q - t) : len;
    const char *hash = memchr(t, '#', plen);
    if (hash)
        plen = (size_t)(hash - t);
    if (path_is(t, plen, "/Microsoft-Server-ActiveSync"))
        return RT_EAS;
    if (path_is(t, plen, "/autodiscover/autodiscover.xml"))
        return RT_AUTODISCOVER;
    if (plen >= 5 && strncasecmp(t, "/EWS/", 5) == 0)
        return ews_path_safe(t, plen) ? RT_EWS : RT_OTHER;
    return RT_OTHER;
}

size_t route_path_end(const char *t, size_t len, enum route_kind k)
{
    size_t p = 0;
    if (len > 0 && t[0] != '/') { /* absolute form, as route_of checked it */
        const char *a = memchr(t, ':', len);
        if (!a || (size_t)(a - t) + 3 > len)
            return 0;
        a += 3;
        const char *slash = memchr(a, '/', len - (size_t)(a - t));
        if (!slash)
            return 0;
        p = (size_t)(slash - t);
    }
    size_t n = k == RT_EAS            ? sizeof("/Microsoft-Server-ActiveSync") - 1
               : k == RT_AUTODISCOVER ? sizeof("/autodiscover/autodiscover.xml") - 1
               : k == RT_EWS          ? sizeof("/EWS") - 1
                                      : 0;
    return n && p + n <= len ? p + n : 0;
}

/* ---- target hygiene ---- */

/* As easq reads a query: plain when it has '&', or a '=' followed by
 * anything but more '=' (a base64 query may only end in '='). A base64
 * query is one opaque token and has no parameter names. */
static int query_is_plain(const char *q, size_t len)
{
    if (memchr(q, '&', len))
        return 1;
    const char *eq = memchr(q, '=', len);
    if (!eq)
        return 0;
    for (const char *p = eq; p < q + len; p++)
        if (*p != '=')
            return 1;
    return 0;
}

/* Any '%' in a name refuses it: whatever it decodes to (%49, %u0049, an
 * unknown byte), ASP.NET reads a name the proxy did not. */
static int names_plain(const char *q, size_t len)
{
    if (!query_is_plain(q, len))
        return 1;
    const char *end = q + len;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(stop - q));
        const char *nend = eq ? eq : stop;
        if (memchr(q, '%', (size_t)(nend - q)))
            return 0;
        q = stop + (amp ? 1 : 0);
    }
    return 1;
}

/* "http://" or "https://" (any case): the length of it, else 0. */
static size_t scheme_len(const char *t, size_t len)
{
    if (len >= 7 && strncasecmp(t, "http://", 7) == 0)
        return 7;
    if (len >= 8 && strncasecmp(t, "https://", 8) == 0)
        return 8;
    return 0;
}

int route_target_check(const char *t, size_t len, struct route_target *out)
{
    *out = (struct route_target){0};
    if (memchr(t, '#', len))
        return ROUTE_TARGET_FRAGMENT;
    if (len > 0 && t[0] != '/') {
        size_t s = scheme_len(t, len);
        if (s == 0) /* "*", "host:port": no route takes them (404) */
            return memmem(t, len, "://", 3) ? ROUTE_TARGET_FORM : ROUTE_TARGET_OK;
        size_t a = s;
        while (a < len && t[a] != '/' && t[a] != '?')
            a++;
        /* no path, no host, or userinfo (never sent by a mail app) */
        if (a == len || t[a] != '/' || a == s || memchr(t + s, '@', a - s))
            return ROUTE_TARGET_FORM;
        out->authority = t + s;
        out->authority_len = a - s;
        out->origin_off = a;
    }
    const char *o = t + out->origin_off;
    size_t olen = len - out->origin_off;
    const char *q = memchr(o, '?', olen);
    if (q && !names_plain(q + 1, olen - (size_t)(q + 1 - o)))
        return ROUTE_TARGET_ENCODED_NAME;
    return ROUTE_TARGET_OK;
}

const char *route_target_reason(int err)
{
    switch (err) {
    case ROUTE_TARGET_FRAGMENT:
        return "target-fragment";
    case ROUTE_TARGET_ENCODED_NAME:
        return "target-encoded-name";
    case ROUTE_TARGET_FORM:
        return "target-form";
    default:
        return "target";
    }
}

/* Glob match, '*' = any run of characters, ASCII case folded. */
static int glob_match(const char *g, const char *s, size_t n)
{
    size_t i = 0;
    const char *star = NULL;
    size_t star_i = 0;
    while (i < n) {
        if (*g == '*') {
            star = g++;
            star_i = i;
        } else if (*g && tolower((unsigned char)*g) == tolower((unsigned char)s[i])) {
            g++, i++;
        } else if (star) {
            g = star + 1;
            i = ++star_i;
        } else {
            return 0;
        }
    }
    while (*g == '*')
        g++;
    return *g == '\0';
}

int route_host_allowed(const char *host, size_t len, const char *const *globs, size_t n)
{
    if (n == 0)
        return 1;
    size_t h = len;
    if (len > 0 && host[0] == '[') { /* IPv6 literal: the brackets stay */
        const char *rb = memchr(host, ']', len);
        if (!rb)
            return 0;
        h = (size_t)(rb - host) + 1;
        if (h < len && host[h] != ':')
            return 0;
    } else {
        const char *colon = memchr(host, ':', len);
        if (colon)
            h = (size_t)(colon - host);
    }
    for (size_t i = h; i < len; i++) /* the port: digits only */
        if (i > h && !isdigit((unsigned char)host[i]))
            return 0;
    if (h > 1 && host[h - 1] == '.')
        h--;
    if (h == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (glob_match(globs[i], host, h))
            return 1;
    return 0;
}

/* The EWS reader (eas/ews.h) parses the body with libxml2, as a gate needs
 * it parsed; the scanner that stood here could be fooled by a comment. */
int route_ews_is_subscription(const char *body, size_t len)
{
    return ews_is_subscription(body, len);
}
