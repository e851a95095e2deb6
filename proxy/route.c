/* route: target -> route, and the EWS subscription check. */
#include "proxy/route.h"

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
