/*
 * wbxml: the streaming decoder and the writer.
 *
 * The decoder is a byte-driven state machine so a body can arrive in any
 * pieces: every state that needs more than one byte (the header's multi-byte
 * integers, SWITCH_PAGE's argument, an inline string, opaque data) keeps its
 * progress in the struct and resumes on the next feed. That machine is the
 * reference; two faster loops run the body when they can and hand anything
 * unusual back to it, so every error has one source and one offset:
 *   - body_fast: whole tokens (tags, END, SWITCH_PAGE, whole strings) with
 *     depth and page in registers and the event filter checked per token;
 *   - body_quiet (wbxml_body_quiet_), inside it: where the callback wants
 *     nothing (wbxml_check, or the extractor deep in a Sync body) a token
 *     costs only its checks, and <Tag>short string</Tag> is one step.
 * The extractor (wbxml_extract.c) runs its own loop over whole tokens and
 * uses body_quiet the same way.
 * A body is a tag or END every two or three bytes, so the cost per token is
 * what counts, not per byte. Strings are handed out in place; nothing is
 * allocated or copied. tests/unit/test_wbxml_fast.c holds the loops to the
 * state machine's events, errors and offsets.
 *
 * The writer emits canonical ActiveSync WBXML: a tag closed right after it
 * opened becomes an empty tag, and consecutive strings become one STR_I, so
 * everything it writes survives WBXML -> XML -> WBXML byte for byte.
 */
#include "eas/wbxml.h"
#include "eas/wbxml_int.h"

#include <stdlib.h>
#include <string.h>

enum {
    TOK_SWITCH_PAGE = 0x00,
    TOK_END = 0x01,
    TOK_ENTITY = 0x02,
    TOK_STR_I = 0x03,
    TOK_LITERAL = 0x04,
    TOK_OPAQUE = 0xC3,
    TAG_CONTENT = 0x40,
    TAG_ATTRS = 0x80,
    CHARSET_UTF8 = 106, /* IANA MIBenum */
    WBXML_VERSION_13 = 0x03,
    PUBLIC_ID_UNKNOWN = 0x01,
};

const char *wbxml_strerror(int err)
{
    switch (err) {
    case WBXML_OK:
        return "ok";
    case WBXML_E_HEADER:
        return "bad or truncated WBXML header";
    case WBXML_E_PAGE:
        return "unknown code page";
    case WBXML_E_TOKEN:
        return "unknown tag token in this code page";
    case WBXML_E_MBUINT:
        return "truncated or oversized multi-byte integer";
    case WBXML_E_STRING:
        return "unterminated inline string";
    case WBXML_E_OPAQUE:
        return "opaque length runs past the end of the body";
    case WBXML_E_DEPTH:
        return "elements nested too deep";
    case WBXML_E_UNSUPPORTED:
        return "attribute, entity, literal, PI or extension token (not used by ActiveSync)";
    case WBXML_E_END:
        return "END with no open element";
    case WBXML_E_TRUNCATED:
        return "body ends with elements still open";
    case WBXML_E_TRAILING:
        return "data after the end of the root element";
    case WBXML_E_CONTENT:
        return "string or opaque data outside any element";
    case WBXML_E_EMPTY:
        return "no root element";
    case WBXML_E_STOPPED:
        return "stopped by the caller";
    case WBXML_E_NOSPACE:
        return "output buffer too small";
    case WBXML_E_NOMEM:
        return "out of memory";
    case WBXML_E_ARG:
        return "invalid writer call (unknown tag, NUL in string, unbalanced end)";
    case WBXML_E_XML:
        return "malformed XML";
    case WBXML_E_XMLNAME:
        return "element or namespace not in the ActiveSync code pages";
    case WBXML_E_STRTBL:
        return "string tables are not used by ActiveSync (MS-ASWBXML): the header's string "
               "table length must be 0";
    default:
        return "unknown error";
    }
}

/* ---- decoder ---- */

void wbxml_dec_init(struct wbxml_dec *d, wbxml_cb cb, void *ud)
{
    memset(d, 0, sizeof(*d));
    d->cb = cb;
    d->ud = ud;
    d->state = WBXML_S_VERSION;
    d->ev_mask = 0xFF;
    d->open_depth = WBXML_MAX_DEPTH;
    d->page_mask = 0xFFFFFFFFu;
}

void wbxml_dec_filter(struct wbxml_dec *d, unsigned ev_mask, unsigned open_depth,
                      uint32_t page_mask)
{
    d->ev_mask = (uint8_t)ev_mask;
    d->open_depth = (uint8_t)(open_depth > WBXML_MAX_DEPTH ? WBXML_MAX_DEPTH : open_depth);
    d->page_mask = page_mask;
}

/* Does the callback want this START/END? */
static inline bool want_tag(const struct wbxml_dec *d, unsigned type, uint16_t tag, int depth)
{
    if (!d->cb || !(d->ev_mask & (1u << type)))
        return false;
    return depth <= d->open_depth || ((d->page_mask >> WBXML_TAG_PAGE(tag)) & 1);
}

static int dec_fail(struct wbxml_dec *d, int err, uint64_t off)
{
    d->err = err;
    d->err_off = off;
    return err;
}

/* One byte of a mb_u_int32: 1 when complete (value in d->mb), 0 when more
 * bytes are needed, or an error. */
static int mb_byte(struct wbxml_dec *d, uint8_t c, uint64_t off)
{
    if (d->mb_len == 0) {
        d->mb = 0;
        d->item_off = off;
    }
    /* Five bytes carry 35 bits; more than 32 is not a mb_u_int32. */
    if (d->mb_len == 5 || (d->mb >> 25) != 0)
        return dec_fail(d, WBXML_E_MBUINT, d->item_off);
    d->mb = (d->mb << 7) | (c & 0x7Fu);
    d->mb_len++;
    if (c & 0x80)
        return 0;
    d->mb_len = 0;
    return 1;
}

static int emit(struct wbxml_dec *d, struct wbxml_ev *ev)
{
    if (d->cb && d->cb(d->ud, ev) != 0)
        return dec_fail(d, WBXML_E_STOPPED, ev->offset);
    return 0;
}

static int emit_piece(struct wbxml_dec *d, enum wbxml_ev_type type, const uint8_t *data, size_t len,
                      bool last)
{
    /* The filter holds however the body was cut (body_fast checks it too). */
    if (!(d->ev_mask & (1u << type)))
        return 0;
    struct wbxml_ev ev = {
        .type = type,
        .tag = d->stack[d->depth],
        .depth = d->depth,
        .offset = d->tok_off,
        .data = data,
        .len = len,
        .first = d->piece_first,
        .last = last,
        .total = d->total,
    };
    d->piece_first = false;
    return emit(d, &ev);
}

/* A tag's START, and for an empty tag its END at once, to whoever wants
 * them. Returns 0 or WBXML_E_STOPPED. */
static int emit_tag(struct wbxml_dec *d, uint16_t tag, bool content, int depth, uint64_t off)
{
    struct wbxml_ev ev = {
        .type = WBXML_EV_START, .tag = tag, .content = content, .depth = depth, .offset = off};
    int rc = 0;
    if (want_tag(d, WBXML_EV_START, tag, depth))
        rc = emit(d, &ev);
    if (rc == 0 && !content && want_tag(d, WBXML_EV_END, tag, depth)) {
        ev.type = WBXML_EV_END;
        rc = emit(d, &ev);
    }
    return rc;
}

/* A tag, END, or the start of a string/opaque/switch, at body offset off.
 * Returns 0 or an error. Tags and END are most of a body, so they come first
 * and build an event only when someone listens. */
static inline int body_token(struct wbxml_dec *d, uint8_t c, uint64_t off)
{
    uint8_t token = c & 0x3F;

    if (!(c & TAG_ATTRS) && token >= 5) {
        if (!((wbxml_token_mask_[d->page] >> token) & 1))
            return dec_fail(d, WBXML_E_TOKEN, off);
        bool content = (c & TAG_CONTENT) != 0;
        uint16_t tag = WBXML_TAG(d->page, token);
        int depth = d->depth + 1;
        d->had_root = true;
        if (content) {
            if (d->depth >= WBXML_MAX_DEPTH)
                return dec_fail(d, WBXML_E_DEPTH, off);
            d->stack[++d->depth] = tag;
        } else if (d->depth == 0) {
            d->state = WBXML_S_DONE; /* the root was an empty tag */
        }
        return emit_tag(d, tag, content, depth, off);
    }
    if (c == TOK_END) {
        if (d->depth == 0)
            return dec_fail(d, WBXML_E_END, off);
        int depth = d->depth--;
        if (d->depth == 0)
            d->state = WBXML_S_DONE;
        if (want_tag(d, WBXML_EV_END, d->stack[depth], depth)) {
            struct wbxml_ev ev = {.type = WBXML_EV_END,
                                  .tag = d->stack[depth],
                                  .content = true,
                                  .depth = depth,
                                  .offset = off};
            return emit(d, &ev);
        }
        return 0;
    }
    switch (c) {
    case TOK_SWITCH_PAGE:
        d->tok_off = off;
        d->state = WBXML_S_SWITCH;
        return 0;
    case TOK_STR_I:
        if (d->depth == 0)
            return dec_fail(d, WBXML_E_CONTENT, off);
        d->tok_off = off;
        d->piece_first = true;
        d->total = 0;
        d->state = WBXML_S_STR;
        return 0;
    case TOK_OPAQUE:
        if (d->depth == 0)
            return dec_fail(d, WBXML_E_CONTENT, off);
        d->tok_off = off;
        d->mb_len = 0;
        d->state = WBXML_S_OPAQUE_LEN;
        return 0;
    default:
        /* ENTITY, LITERAL*, EXT*, PI and attribute-bearing tags. */
        return dec_fail(d, WBXML_E_UNSUPPORTED, off);
    }
}

/* The run of a body where nobody listens: no callback wants text, the page
 * is not one whose tags it wants, and we are deeper than the depth it always
 * hears (floor). Then a token costs only its checks: a tag is pushed, an END
 * popped, a string skipped, with no filter logic at all. The usual leaf,
 * <Tag>short string</Tag>, goes in one step without touching the stack. The
 * last WBXML_QUIET_MARGIN bytes of the piece are left to body_fast, so no read here
 * needs its own bounds check.
 *
 * Stops, leaving the token to body_fast, at an END that may interest the
 * callback (at depth <= floor, or closing a tag of a wanted page pushed
 * before this run), at a SWITCH_PAGE into a wanted page, and at anything
 * body_fast itself stops at (so it never reports an error of its own and
 * every error keeps its offset). */
const uint8_t *wbxml_body_quiet_(struct wbxml_dec *d, const uint8_t *p, const uint8_t *end,
                                 int *depthp, unsigned *pagep, uint32_t pm, int floor)
{
    if (end - p <= WBXML_QUIET_MARGIN)
        return p;
    const uint8_t *safe = end - WBXML_QUIET_MARGIN;
    int depth = *depthp, entry = depth;
    unsigned page = *pagep;
    uint64_t mask = wbxml_token_mask_[page];
    /* A content tag byte c (0x45..0x7F) is tag number tagbase + c. */
    unsigned tagbase = (page << 8) - TAG_CONTENT;

    while (p < safe) {
        unsigned c = *p;
        if (c == TOK_END) {
            /* What this run pushed it may pop freely; older tags are checked. */
            if (depth <= entry) {
                if (depth <= floor || ((pm >> WBXML_TAG_PAGE(d->stack[depth])) & 1))
                    break;
                entry = depth - 1;
            }
            depth--;
            p++;
        } else if (c < TAG_ATTRS && ((mask >> (c & 0x3F)) & 1)) {
            if (c & TAG_CONTENT) {
                if (depth >= WBXML_MAX_DEPTH)
                    break;
                /* <Tag>string</Tag> with a short string: one step. */
                if (p[1] == TOK_STR_I) {
                    const uint8_t *nul = p + 2 + wbxml_nul_in16_(p + 2);
                    if (nul[0] == 0 && nul[1] == TOK_END) {
                        p = nul + 2;
                        continue;
                    }
                }
                d->stack[++depth] = (uint16_t)(tagbase + c);
            }
            p++;
        } else if (c == TOK_SWITCH_PAGE && p[1] < WBXML_NPAGES && !((pm >> p[1]) & 1)) {
            page = p[1];
            mask = wbxml_token_mask_[page];
            tagbase = (page << 8) - TAG_CONTENT;
            p += 2;
        } else if (c == TOK_STR_I) {
            const uint8_t *nul = wbxml_find_nul_(p + 1, end);
            if (!nul)
                break;
            p = nul + 1;
        } else {
            break;
        }
    }
    *depthp = depth;
    *pagep = page;
    return p;
}

/* The common run of a body: tags, END, SWITCH_PAGE and whole strings, with
 * depth and page in registers. Stops at anything else (OPAQUE, a string or
 * switch cut by the end of the piece, errors, the end of the root) and
 * leaves it to the general state machine. Returns where it stopped, or NULL
 * with d->err set. */
static const uint8_t *body_fast(struct wbxml_dec *d, const uint8_t *p, const uint8_t *end,
                                const uint8_t *start)
{
    int depth = d->depth;
    unsigned page = d->page;
    uint64_t mask = wbxml_token_mask_[page];
    /* The filter, in registers: tags at depth <= od or in a page of pm may
     * interest the callback (want_tag decides); tx: text wanted. Reloaded
     * after every callback, which may change the filter. */
    int od;
    uint32_t pm;
    bool pw, tx;

#define FAST_OFF(q) (d->off + (uint64_t)((q)-start))
#define FAST_RELOAD()                                                                              \
    do {                                                                                           \
        bool tags_ = d->cb && (d->ev_mask & ((1u << WBXML_EV_START) | (1u << WBXML_EV_END)));      \
        od = tags_ ? d->open_depth : -1;                                                           \
        pm = tags_ ? d->page_mask : 0;                                                             \
        pw = (pm >> page) & 1;                                                                     \
        tx = d->cb && (d->ev_mask & (1u << WBXML_EV_TEXT));                                        \
    } while (0)
    FAST_RELOAD();
    while (p < end) {
        /* Deeper than the callback always listens, in a page it ignores,
         * no text wanted: the quiet loop goes much faster. */
        if (!tx && !pw && depth > 0 && depth >= od) {
            p = wbxml_body_quiet_(d, p, end, &depth, &page, pm, od > 1 ? od : 1);
            mask = wbxml_token_mask_[page];
            pw = (pm >> page) & 1;
            if (p == end)
                break;
        }
        uint8_t c = *p;
        /* A known tag: bit 7 clear (no attributes) and its token defined in
         * the page (tokens 0..4, the globals, are never in the mask). */
        if (c < TAG_ATTRS && ((mask >> (c & 0x3F)) & 1)) {
            uint16_t tag = WBXML_TAG(page, c & 0x3F);
            bool content = (c & TAG_CONTENT) != 0;
            int evdepth;
            if (content) {
                if (depth >= WBXML_MAX_DEPTH)
                    break; /* the general path reports it */
                d->stack[++depth] = tag;
                evdepth = depth;
            } else {
                if (depth == 0)
                    break; /* an empty root: the general path ends the document */
                evdepth = depth + 1;
            }
            if (pw || evdepth <= od) {
                d->depth = depth;
                d->had_root = true;
                if (emit_tag(d, tag, content, evdepth, FAST_OFF(p)))
                    return NULL;
                FAST_RELOAD();
            }
            p++;
        } else if (c == TOK_END && depth > 1) {
            /* (the root's END goes the general way, which ends the document) */
            uint16_t tag = d->stack[depth];
            if ((depth <= od || ((pm >> WBXML_TAG_PAGE(tag)) & 1)) &&
                want_tag(d, WBXML_EV_END, tag, depth)) {
                struct wbxml_ev ev = {.type = WBXML_EV_END,
                                      .tag = tag,
                                      .content = true,
                                      .depth = depth,
                                      .offset = FAST_OFF(p)};
                d->depth = depth - 1;
                if (emit(d, &ev))
                    return NULL;
                FAST_RELOAD();
            }
            depth--;
            p++;
        } else if (c == TOK_STR_I && depth > 0) {
            const uint8_t *nul = wbxml_find_nul_(p + 1, end);
            if (!nul)
                break;
            if (tx) {
                d->depth = depth;
                d->tok_off = FAST_OFF(p);
                d->piece_first = true;
                d->total = 0;
                if (emit_piece(d, WBXML_EV_TEXT, p + 1, (size_t)(nul - p - 1), true))
                    return NULL;
                FAST_RELOAD();
            }
            p = nul + 1;
        } else if (c == TOK_SWITCH_PAGE && end - p >= 2 && p[1] < WBXML_NPAGES) {
            page = p[1];
            mask = wbxml_token_mask_[page];
            pw = (pm >> page) & 1;
            p += 2;
        } else {
            break;
        }
    }
#undef FAST_RELOAD
#undef FAST_OFF
    if (depth > 0)
        d->had_root = true; /* a root is open: one was seen */
    d->depth = depth;
    d->page = (uint8_t)page;
    return p;
}

int wbxml_dec_feed(struct wbxml_dec *d, const void *buf, size_t len)
{
    const uint8_t *start = buf, *p = buf, *end = p + len;
    int rc;

    if (d->err)
        return d->err;
    while (p < end) {
        uint64_t off = d->off + (uint64_t)(p - start);
        uint8_t c = *p;
        switch (d->state) {
        case WBXML_S_VERSION:
            if (c > WBXML_VERSION_13)
                return dec_fail(d, WBXML_E_HEADER, off);
            /* Short bodies notice the four steps the header takes otherwise. */
            if (end - p >= 4 && wbxml_header_usual_(p)) {
                d->state = WBXML_S_BODY;
                p += 4;
                break;
            }
            d->state = WBXML_S_PUBID;
            p++;
            break;
        case WBXML_S_PUBID:
        case WBXML_S_PUBID_INDEX:
        case WBXML_S_CHARSET:
        case WBXML_S_STRTBL:
            rc = mb_byte(d, c, off);
            p++;
            if (rc < 0)
                return rc;
            if (rc == 0)
                break;
            if (d->state == WBXML_S_PUBID)
                d->state = d->mb == 0 ? WBXML_S_PUBID_INDEX : WBXML_S_CHARSET;
            else if (d->state == WBXML_S_PUBID_INDEX)
                d->state = WBXML_S_CHARSET;
            else if (d->state == WBXML_S_CHARSET)
                d->state = WBXML_S_STRTBL;
            else if (d->mb != 0) /* ActiveSync uses no string table */
                return dec_fail(d, WBXML_E_STRTBL, d->item_off);
            else
                d->state = WBXML_S_BODY;
            break;
        case WBXML_S_BODY:
            /* The hot loop: tags and ENDs until something needs a state. */
            p = body_fast(d, p, end, start);
            if (!p)
                return d->err;
            /* What the fast run left: one token the general way. */
            if (p < end) {
                rc = body_token(d, *p, d->off + (uint64_t)(p - start));
                p++;
                if (rc)
                    return rc;
            }
            break;
        case WBXML_S_SWITCH:
            if (c >= WBXML_NPAGES)
                return dec_fail(d, WBXML_E_PAGE, off);
            d->page = c;
            d->state = WBXML_S_BODY;
            p++;
            break;
        case WBXML_S_STR: {
            const uint8_t *nul = memchr(p, 0, (size_t)(end - p));
            const uint8_t *stop = nul ? nul : end;
            if (nul || stop > p) {
                rc = emit_piece(d, WBXML_EV_TEXT, p, (size_t)(stop - p), nul != NULL);
                if (rc)
                    return rc;
            }
            p = nul ? nul + 1 : end;
            if (nul)
                d->state = WBXML_S_BODY;
            break;
        }
        case WBXML_S_OPAQUE_LEN:
            rc = mb_byte(d, c, off);
            p++;
            if (rc < 0)
                return rc;
            if (rc == 0)
                break;
            d->remain = d->total = d->mb;
            d->piece_first = true;
            if (d->remain == 0) {
                rc = emit_piece(d, WBXML_EV_OPAQUE, p, 0, true);
                if (rc)
                    return rc;
                d->state = WBXML_S_BODY;
            } else {
                d->state = WBXML_S_OPAQUE_DATA;
            }
            break;
        case WBXML_S_OPAQUE_DATA: {
            size_t n = (size_t)(end - p);
            if (n > d->remain)
                n = d->remain;
            d->remain -= (uint32_t)n;
            rc = emit_piece(d, WBXML_EV_OPAQUE, p, n, d->remain == 0);
            if (rc)
                return rc;
            p += n;
            if (d->remain == 0)
                d->state = WBXML_S_BODY;
            break;
        }
        case WBXML_S_DONE:
        default:
            return dec_fail(d, WBXML_E_TRAILING, off);
        }
    }
    d->off += len;
    return 0;
}

int wbxml_dec_finish(struct wbxml_dec *d)
{
    if (d->err)
        return d->err;
    switch (d->state) {
    case WBXML_S_DONE:
        return 0;
    case WBXML_S_VERSION:
        return dec_fail(d, d->off == 0 ? WBXML_E_EMPTY : WBXML_E_HEADER, d->off);
    case WBXML_S_PUBID:
    case WBXML_S_PUBID_INDEX:
    case WBXML_S_CHARSET:
    case WBXML_S_STRTBL:
        if (d->mb_len)
            return dec_fail(d, WBXML_E_MBUINT, d->item_off);
        return dec_fail(d, WBXML_E_HEADER, d->off);
    case WBXML_S_STR:
        return dec_fail(d, WBXML_E_STRING, d->tok_off);
    case WBXML_S_OPAQUE_LEN:
        return dec_fail(d, WBXML_E_MBUINT, d->mb_len ? d->item_off : d->tok_off);
    case WBXML_S_OPAQUE_DATA:
        return dec_fail(d, WBXML_E_OPAQUE, d->tok_off);
    case WBXML_S_SWITCH:
        return dec_fail(d, WBXML_E_TRUNCATED, d->tok_off);
    case WBXML_S_BODY:
    default:
        return dec_fail(d, d->had_root ? WBXML_E_TRUNCATED : WBXML_E_EMPTY, d->off);
    }
}

uint64_t wbxml_dec_error_offset(const struct wbxml_dec *d)
{
    return d->err ? d->err_off : 0;
}

int wbxml_check(const void *buf, size_t len, uint64_t *err_off)
{
    struct wbxml_dec d;
    wbxml_dec_init(&d, NULL, NULL);
    int rc = wbxml_dec_feed(&d, buf, len);
    if (rc == 0)
        rc = wbxml_dec_finish(&d);
    if (err_off)
        *err_off = wbxml_dec_error_offset(&d);
    return rc;
}

/* ---- writer ---- */

enum { W_LAST_OTHER, W_LAST_START, W_LAST_STR };

#define W_INITIAL_CAP 256

static int w_fail(struct wbxml_w *w, int err)
{
    if (!w->err)
        w->err = err;
    return w->err;
}

static int w_reserve(struct wbxml_w *w, size_t n)
{
    if (w->err)
        return w->err;
    if (n <= w->cap - w->len)
        return 0;
    if (!w->owned)
        return w_fail(w, WBXML_E_NOSPACE);
    size_t cap = w->cap ? w->cap : W_INITIAL_CAP;
    while (cap - w->len < n) {
        if (cap > SIZE_MAX / 2)
            return w_fail(w, WBXML_E_NOMEM);
        cap *= 2;
    }
    uint8_t *nb = realloc(w->buf, cap);
    if (!nb)
        return w_fail(w, WBXML_E_NOMEM);
    w->buf = nb;
    w->cap = cap;
    return 0;
}

static int w_put(struct wbxml_w *w, const void *data, size_t n)
{
    if (w_reserve(w, n))
        return w->err;
    if (n)
        memcpy(w->buf + w->len, data, n);
    w->len += n;
    return 0;
}

static int w_byte(struct wbxml_w *w, uint8_t b)
{
    return w_put(w, &b, 1);
}

static int w_mbuint(struct wbxml_w *w, uint32_t v)
{
    uint8_t tmp[5];
    int n = 0;
    do {
        tmp[4 - n] = (uint8_t)((v & 0x7F) | (n ? 0x80 : 0));
        v >>= 7;
        n++;
    } while (v);
    return w_put(w, tmp + 5 - n, (size_t)n);
}

void wbxml_w_init(struct wbxml_w *w, uint8_t *buf, size_t cap)
{
    static const uint8_t header[] = {WBXML_VERSION_13, PUBLIC_ID_UNKNOWN, CHARSET_UTF8, 0x00};
    memset(w, 0, sizeof(*w));
    w->buf = buf;
    w->cap = buf ? cap : 0;
    w->owned = buf == NULL;
    w_put(w, header, sizeof(header));
}

void wbxml_w_free(struct wbxml_w *w)
{
    if (w->owned)
        free(w->buf);
    w->buf = NULL;
    w->cap = w->len = 0;
}

static int w_tag(struct wbxml_w *w, uint16_t tag, bool content)
{
    uint8_t page = WBXML_TAG_PAGE(tag), token = WBXML_TAG_TOKEN(tag);
    if (w->err)
        return w->err;
    if (wbxml_tag_name(page, token) == NULL)
        return w_fail(w, WBXML_E_ARG);
    if (content && w->depth >= WBXML_MAX_DEPTH)
        return w_fail(w, WBXML_E_DEPTH);
    if (w->depth == 0 && w->len > 4)
        return w_fail(w, WBXML_E_ARG); /* a second root */
    if (page != w->page) {
        uint8_t sw[2] = {TOK_SWITCH_PAGE, page};
        if (w_put(w, sw, 2))
            return w->err;
        w->page = page;
    }
    w->last_pos = w->len;
    if (w_byte(w, (uint8_t)(token | (content ? TAG_CONTENT : 0))))
        return w->err;
    if (content) {
        w->stack[++w->depth] = tag;
        w->last = W_LAST_START;
    } else {
        w->last = W_LAST_OTHER;
    }
    return 0;
}

int wbxml_w_start(struct wbxml_w *w, uint16_t tag)
{
    return w_tag(w, tag, true);
}

int wbxml_w_empty(struct wbxml_w *w, uint16_t tag)
{
    return w_tag(w, tag, false);
}

int wbxml_w_end(struct wbxml_w *w)
{
    if (w->err)
        return w->err;
    if (w->depth == 0)
        return w_fail(w, WBXML_E_ARG);
    if (w->last == W_LAST_START) {
        /* Nothing inside: write it as the empty tag it is. */
        w->buf[w->last_pos] &= (uint8_t)~TAG_CONTENT;
    } else if (w_byte(w, TOK_END)) {
        return w->err;
    }
    w->depth--;
    w->last = W_LAST_OTHER;
    return 0;
}

int wbxml_w_str(struct wbxml_w *w, const char *s, size_t len)
{
    if (w->err)
        return w->err;
    if (w->depth == 0 || (len && memchr(s, 0, len)))
        return w_fail(w, WBXML_E_ARG);
    if (w->last == W_LAST_STR) {
        w->len--; /* continue the previous STR_I: drop its NUL */
    } else if (w_byte(w, TOK_STR_I)) {
        return w->err;
    }
    if (w_put(w, s, len) || w_byte(w, 0))
        return w->err;
    w->last = W_LAST_STR;
    return 0;
}

int wbxml_w_opaque(struct wbxml_w *w, const void *data, size_t len)
{
    if (w->err)
        return w->err;
    if (w->depth == 0 || len > UINT32_MAX)
        return w_fail(w, WBXML_E_ARG);
    if (w_byte(w, TOK_OPAQUE) || w_mbuint(w, (uint32_t)len) || w_put(w, data, len))
        return w->err;
    w->last = W_LAST_OTHER;
    return 0;
}

int wbxml_w_text(struct wbxml_w *w, uint16_t tag, const char *s)
{
    wbxml_w_start(w, tag);
    wbxml_w_str(w, s, strlen(s));
    return wbxml_w_end(w);
}

int wbxml_w_uint(struct wbxml_w *w, uint16_t tag, unsigned long v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    wbxml_w_start(w, tag);
    wbxml_w_str(w, tmp + sizeof(tmp) - n, (size_t)n);
    return wbxml_w_end(w);
}

int wbxml_w_finish(struct wbxml_w *w, const uint8_t **out, size_t *len)
{
    if (!w->err && (w->depth != 0 || w->len <= 4))
        w_fail(w, WBXML_E_ARG);
    if (w->err)
        return w->err;
    if (out)
        *out = w->buf;
    if (len)
        *len = w->len;
    return 0;
}
