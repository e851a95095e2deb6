/* route: target -> route, the target's hygiene, and the EWS subscription
 * check. */
#include "proxy/route.h"

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

/* Skip whitespace, XML declarations, comments and processing instructions. */
static const char *skip_misc(const char *p, const char *end)
{
    for (;;) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
            p++;
        if (end - p >= 4 && memcmp(p, "<!--", 4) == 0) {
            const char *e = p + 4;
            while (end - e >= 3 && memcmp(e, "-->", 3) != 0)
                e++;
            if (end - e < 3)
                return end;
            p = e + 3;
            continue;
        }
        if (end - p >= 2 && p[0] == '<' && p[1] == '?') {
            const char *e = memchr(p, '>', (size_t)(end - p));
            if (!e)
                return end;
            p = e + 1;
            continue;
        }
        return p;
    }
}

static int name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.' || c == ':';
}

/* At '<': the local name (after any prefix) of this start tag. */
static int start_tag_local(const char *p, const char *end, const char **name, size_t *nlen)
{
    if (p >= end || *p != '<')
        return -1;
    p++;
    const char *s = p;
    while (p < end && name_char(*p))
        p++;
    if (p == s || p >= end)
        return -1;
    const char *colon = NULL;
    for (const char *k = s; k < p; k++)
        if (*k == ':')
            colon = k;
    *name = colon ? colon + 1 : s;
    *nlen = (size_t)(p - *name);
    return 0;
}

/* p at '<' of a start tag: the end of that tag (after '>'), *empty when it
 * is "<x/>", NULL if the tag does not end. */
static const char *tag_end(const char *p, const char *end, int *empty)
{
    const char *gt = memchr(p, '>', (size_t)(end - p));
    if (!gt)
        return NULL;
    *empty = gt[-1] == '/';
    return gt + 1;
}

/* Skip the element whose start tag is at p (qname q, qlen bytes), nested
 * elements of the same name included. NULL if it does not end. */
static const char *skip_element(const char *p, const char *end, const char *q, size_t qlen)
{
    int empty;
    p = tag_end(p, end, &empty);
    if (!p || empty)
        return p;
    int depth = 1;
    while (p && p < end) {
        p = memchr(p, '<', (size_t)(end - p));
        if (!p)
            return NULL;
        int closing = p + 1 < end && p[1] == '/';
        const char *n = p + 1 + closing;
        if ((size_t)(end - n) > qlen && memcmp(n, q, qlen) == 0 && !name_char(n[qlen])) {
            const char *after = tag_end(p, end, &empty);
            if (!after)
                return NULL;
            if (closing && --depth == 0)
                return after;
            if (!closing && !empty)
                depth++;
            p = after;
            continue;
        }
        p++;
    }
    return NULL;
}

static int is_local(const char *p, const char *end, const char *want)
{
    const char *name;
    size_t nlen;
    return start_tag_local(p, end, &name, &nlen) == 0 && nlen == strlen(want) &&
           memcmp(name, want, nlen) == 0;
}

/* The structure is checked, not searched for: Envelope, an optional Header
 * skipped as a whole, then Body and its first element. A "Body" or
 * "Subscribe" hidden in a header or a second envelope does not count. */
int route_ews_is_subscription(const char *body, size_t len)
{
    const char *p = body, *end = body + len;
    int empty;
    p = skip_misc(p, end);
    if (!is_local(p, end, "Envelope") || !(p = tag_end(p, end, &empty)) || empty)
        return 0;
    p = skip_misc(p, end);
    if (is_local(p, end, "Header")) {
        const char *q = p + 1;
        size_t qlen = 0;
        while (q + qlen < end && name_char(q[qlen]))
            qlen++;
        p = skip_element(p, end, q, qlen);
        if (!p)
            return 0;
        p = skip_misc(p, end);
    }
    if (!is_local(p, end, "Body") || !(p = tag_end(p, end, &empty)) || empty)
        return 0;
    p = skip_misc(p, end);
    static const char *const ok[] = {"Subscribe", "GetEvents", "GetStreamingEvents"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (is_local(p, end, ok[i]))
            return 1;
    return 0;
}
