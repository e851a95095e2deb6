/*
 * sbuf: a growable string for output built piece by piece off the request
 * path (WBXML as XML, device profiles, reports).
 *
 * Appending never fails loudly: the first failed allocation sets oom, and
 * every later append is a no-op, so a builder writes its whole document and
 * checks once at the end. After any append p is NUL-terminated; len does
 * not count the NUL. Pure (libc only), in eg_pure with b64.
 *
 * Ownership: the sbuf owns p until sbuf_take hands it over; sbuf_free
 * releases it. A zeroed struct (SBUF_INIT) is an empty buffer.
 */
#ifndef EG_SBUF_H
#define EG_SBUF_H

#include <stdbool.h>
#include <stddef.h>

struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

#define SBUF_INIT                                                                                  \
    {                                                                                              \
        NULL, 0, 0, false                                                                          \
    }

void sbuf_put(struct sbuf *b, const void *data, size_t n);
void sbuf_str(struct sbuf *b, const char *s);
void sbuf_char(struct sbuf *b, char c);
/* n bytes of s as XML or HTML text: &, <, > and " escaped, the rest as is. */
void sbuf_xml(struct sbuf *b, const char *s, size_t n);
__attribute__((format(printf, 2, 3))) void sbuf_printf(struct sbuf *b, const char *fmt, ...);

/* Forget the contents, keep the memory (for a buffer reused per element). */
void sbuf_reset(struct sbuf *b);

/*
 * Hand the string over (the caller frees it) and leave b empty: NULL, with
 * the memory released, if an append failed; "" if nothing was appended.
 * *len (may be NULL) gets its length.
 */
char *sbuf_take(struct sbuf *b, size_t *len);

void sbuf_free(struct sbuf *b);

#endif
