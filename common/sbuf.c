/*
 * sbuf: a growable string. See sbuf.h. The capacity doubles from 1 KiB, so
 * a document of n bytes costs O(log n) reallocations and at most twice its
 * size in memory.
 */
#include "common/sbuf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SBUF_FIRST_CAP 1024

/* Room for n more bytes and the NUL; false (and oom) if there is none. */
static bool grow(struct sbuf *b, size_t n)
{
    if (b->oom)
        return false;
    if (b->cap - b->len >= n + 1)
        return true;
    if (n > SIZE_MAX / 2 - b->len) {
        b->oom = true;
        return false;
    }
    size_t cap = b->cap ? b->cap : SBUF_FIRST_CAP;
    while (cap - b->len < n + 1)
        cap *= 2;
    char *np = realloc(b->p, cap);
    if (!np) {
        b->oom = true;
        return false;
    }
    b->p = np;
    b->cap = cap;
    return true;
}

void sbuf_put(struct sbuf *b, const void *data, size_t n)
{
    if (!grow(b, n))
        return;
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void sbuf_str(struct sbuf *b, const char *s)
{
    sbuf_put(b, s, strlen(s));
}

void sbuf_char(struct sbuf *b, char c)
{
    sbuf_put(b, &c, 1);
}

void sbuf_xml(struct sbuf *b, const char *s, size_t n)
{
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        const char *e = s[i] == '&'   ? "&amp;"
                        : s[i] == '<' ? "&lt;"
                        : s[i] == '>' ? "&gt;"
                        : s[i] == '"' ? "&quot;"
                                      : NULL;
        if (!e)
            continue;
        sbuf_put(b, s + from, i - from);
        sbuf_str(b, e);
        from = i + 1;
    }
    sbuf_put(b, s + from, n - from);
}

void sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = true;
        return;
    }
    if (!grow(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void sbuf_reset(struct sbuf *b)
{
    b->len = 0;
    if (b->p)
        b->p[0] = '\0';
}

char *sbuf_take(struct sbuf *b, size_t *len)
{
    char *p = b->p;
    size_t n = b->len;
    if (b->oom) {
        free(p);
        p = NULL;
        n = 0;
    } else if (!p) {
        p = calloc(1, 1);
    }
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = false;
    if (len)
        *len = n;
    return p;
}

void sbuf_free(struct sbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = false;
}
