/*
 * wbxml_int: what the codec's own files share and callers never need.
 */
#ifndef EG_WBXML_INT_H
#define EG_WBXML_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
/* The decoder's quiet loop (wbxml.c): from p in the body state, tags, END,
 * SWITCH_PAGE and strings that interest nobody, i.e. below depth floor, not
 * in a page of pm, no text wanted. Keeps depth, page and d->stack; stops
 * before the first token that may interest someone or that it does not take
 * whole (it reports no error), and at least WBXML_QUIET_MARGIN bytes before
 * end. Returns where it stopped. */
const uint8_t *wbxml_body_quiet_(struct wbxml_dec *d, const uint8_t *p, const uint8_t *end,
                                 int *depthp, unsigned *pagep, uint32_t pm, int floor);

/* wbxml_extract_feed through the decoder's callback alone, never the
 * extractor's own loop: the reference the tests hold that loop to. */
int wbxml_extract_feed_generic_(struct wbxml_extractor *x, const void *buf, size_t len);

#endif

#include "eas/wbxml.h"

/* Bit t of wbxml_token_mask_[p]: page p defines token t (wbxml_pages.c). */
extern const uint64_t wbxml_token_mask_[WBXML_NPAGES];

/* The WBXML global tokens ActiveSync uses and the tag byte's flag bits. */
enum {
    WBXML_TOK_SWITCH_PAGE = 0x00,
    WBXML_TOK_END = 0x01,
    WBXML_TOK_STR_I = 0x03,
    WBXML_TAG_CONTENT = 0x40,
    WBXML_TAG_ATTRS = 0x80,
};

/* The decoder's states (struct wbxml_dec's state). The extractor runs its
 * own loop over whole tokens in WBXML_S_BODY and leaves every other state to
 * wbxml_dec_feed. */
enum wbxml_dec_state {
    WBXML_S_VERSION,
    WBXML_S_PUBID,
    WBXML_S_PUBID_INDEX,
    WBXML_S_CHARSET,
    WBXML_S_STRTBL,
    WBXML_S_BODY,
    WBXML_S_SWITCH,
    WBXML_S_STR,
    WBXML_S_OPAQUE_LEN,
    WBXML_S_OPAQUE_DATA,
    WBXML_S_DONE,
};

/* The usual header, "03 01 6A 00" and its kin, at p (4 readable bytes):
 * version <= 1.3, a one-byte public id other than 0 (which an index would
 * follow), a one-byte charset and no string table. Such a header is taken
 * in one step; anything else goes byte by byte through the decoder, which
 * knows every error. */
static inline bool wbxml_header_usual_(const uint8_t *p)
{
    return p[0] <= 0x03 && p[1] != 0 && p[1] < 0x80 && p[2] < 0x80 && p[3] == 0;
}

/* The fast loops read up to this many bytes from a token without checking
 * the end: a tag, STR_I, 16 bytes of string holding its NUL, and END. */
#define WBXML_QUIET_MARGIN 19

/* The NUL ending an inline string in [p, end), or NULL. ActiveSync strings
 * are mostly short (flags, ids, keys, dates): one 16-byte compare finds most
 * of them, so test a few blocks in place and leave long strings to memchr,
 * which is faster past a few dozen bytes. Without SSE2 the same is done
 * eight bytes at a time with the classic has-zero-byte bit trick. */
static inline const uint8_t *wbxml_find_nul_(const uint8_t *p, const uint8_t *end)
{
#if defined(__SSE2__)
    const __m128i zero = _mm_setzero_si128();
    for (int i = 0; i < 4 && end - p >= 16; i++, p += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, zero));
        if (m)
            return p + __builtin_ctz(m);
    }
#elif __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    for (int i = 0; i < 4 && end - p >= 8; i++, p += 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        uint64_t z = (v - ones) & ~v & highs;
        if (z)
            return p + (__builtin_ctzll(z) >> 3);
    }
    /* The decoder's quiet loop (wbxml.c): from p in the body state, tags, END,
     * SWITCH_PAGE and strings that interest nobody, i.e. below depth floor, not
     * in a page of pm, no text wanted. Keeps depth, page and d->stack; stops
     * before the first token that may interest someone or that it does not take
     * whole (it reports no error), and at least WBXML_QUIET_MARGIN bytes before
     * end. Returns where it stopped. */
    const uint8_t *wbxml_body_quiet_(struct wbxml_dec * d, const uint8_t *p, const uint8_t *end,
                                     int *depthp, unsigned *pagep, uint32_t pm, int floor);

    /* wbxml_extract_feed through the decoder's callback alone, never the
     * extractor's own loop: the reference the tests hold that loop to. */
    int wbxml_extract_feed_generic_(struct wbxml_extractor * x, const void *buf, size_t len);

#endif
    return p < end ? memchr(p, 0, (size_t)(end - p)) : NULL;
}

/* Where the NUL is in the 16 bytes at p (all readable), or 16 if none. */
static inline unsigned wbxml_nul_in16_(const uint8_t *p)
{
#if defined(__SSE2__)
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_setzero_si128()));
    return m ? (unsigned)__builtin_ctz(m) : 16;
#else
    for (unsigned i = 0; i < 16; i++)
        if (p[i] == 0)
            return i;
    return 16;
    /* The decoder's quiet loop (wbxml.c): from p in the body state, tags, END,
     * SWITCH_PAGE and strings that interest nobody, i.e. below depth floor, not
     * in a page of pm, no text wanted. Keeps depth, page and d->stack; stops
     * before the first token that may interest someone or that it does not take
     * whole (it reports no error), and at least WBXML_QUIET_MARGIN bytes before
     * end. Returns where it stopped. */
    const uint8_t *wbxml_body_quiet_(struct wbxml_dec * d, const uint8_t *p, const uint8_t *end,
                                     int *depthp, unsigned *pagep, uint32_t pm, int floor);

    /* wbxml_extract_feed through the decoder's callback alone, never the
     * extractor's own loop: the reference the tests hold that loop to. */
    int wbxml_extract_feed_generic_(struct wbxml_extractor * x, const void *buf, size_t len);

#endif
}

/* The decoder's quiet loop (wbxml.c): from p in the body state, tags, END,
 * SWITCH_PAGE and strings that interest nobody, i.e. below depth floor, not
 * in a page of pm, no text wanted. Keeps depth, page and d->stack; stops
 * before the first token that may interest someone or that it does not take
 * whole (it reports no error), and at least WBXML_QUIET_MARGIN bytes before
 * end. Returns where it stopped. */
const uint8_t *wbxml_body_quiet_(struct wbxml_dec *d, const uint8_t *p, const uint8_t *end,
                                 int *depthp, unsigned *pagep, uint32_t pm, int floor);

/* wbxml_extract_feed through the decoder's callback alone, never the
 * extractor's own loop: the reference the tests hold that loop to. */
int wbxml_extract_feed_generic_(struct wbxml_extractor *x, const void *buf, size_t len);

#endif
