/*
 * wbxml_extract: the few facts the proxy reads from a request or answer body
 * (device information, heartbeat, provisioning state), pulled out of the
 * token stream without building a tree.
 *
 * The facts are decided by four handlers (on_start, on_text, on_end and the
 * synthetic END of an empty tag), fed by two drivers:
 *   - extract_run, the usual one: the extractor's own loop over whole
 *     tokens (tags, END, SWITCH_PAGE, strings that end in the piece). It
 *     calls the handlers directly, only for what they read (the root and
 *     its children, and the Provision, Settings and Ping pages anywhere),
 *     and takes <Tag>string</Tag> in one step. A Provision request is all
 *     wanted tags, so what counts there is the cost per tag, not per byte;
 *   - the decoder's callback, for everything else: the header, strings and
 *     opaque data cut by the end of a piece, errors and the end of the root.
 *     wbxml_extract_feed hands it the shortest span that gets back to a token
 *     boundary, so one body may switch drivers many times; both keep their
 *     state in the decoder and the extractor, so the facts, errors and
 *     offsets are the same however the body is cut (test_wbxml_extract).
 *
 * Values are copied into fixed fields of struct wbxml_facts, cut at
 * WBXML_FIELD_MAX - 1 bytes with the cut recorded. Nothing is allocated.
 */
#include "eas/wbxml.h"
#include "eas/wbxml_int.h"

#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static const char *const devinfo_names[WBXML_DI_NFIELDS] = {
    "Model",     "IMEI",           "FriendlyName",      "OS", "OSLanguage", "PhoneNumber",
    "UserAgent", "MobileOperator", "EnableOutboundSMS",
};

const char *wbxml_devinfo_name(enum wbxml_devinfo_field f)
{
    return (unsigned)f < WBXML_DI_NFIELDS ? devinfo_names[f] : NULL;
}

/* Settings token -> DeviceInformation field + 1 (0: not a field). */
#define DI(tag, field) [WBXML_TAG_TOKEN(tag)] = (field) + 1
static const uint8_t devinfo_of[64] = {
    DI(WBXML_SETTINGS_MODEL, WBXML_DI_MODEL),
    DI(WBXML_SETTINGS_IMEI, WBXML_DI_IMEI),
    DI(WBXML_SETTINGS_FRIENDLYNAME, WBXML_DI_FRIENDLYNAME),
    DI(WBXML_SETTINGS_OS, WBXML_DI_OS),
    DI(WBXML_SETTINGS_OSLANGUAGE, WBXML_DI_OSLANGUAGE),
    DI(WBXML_SETTINGS_PHONENUMBER, WBXML_DI_PHONENUMBER),
    DI(WBXML_SETTINGS_USERAGENT, WBXML_DI_USERAGENT),
    DI(WBXML_SETTINGS_MOBILEOPERATOR, WBXML_DI_MOBILEOPERATOR),
    DI(WBXML_SETTINGS_ENABLEOUTBOUNDSMS, WBXML_DI_ENABLEOUTBOUNDSMS),
};
#undef DI

/* The DeviceInformation field a tag holds, or -1. */
static inline int devinfo_field(uint16_t tag)
{
    if (WBXML_TAG_PAGE(tag) != WBXML_PAGE_SETTINGS)
        return -1;
    return (int)devinfo_of[WBXML_TAG_TOKEN(tag) & 0x3F] - 1;
}

/* Tags the handlers read: the root and its children (depth <= EXTRACT_DEPTH)
 * and anything in the Provision, Settings and Ping pages; text only while
 * collecting. The decoder's filter says the same for the callback driver. */
#define EXTRACT_DEPTH 2
#define EXTRACT_PAGES                                                                              \
    ((1u << WBXML_PAGE_PROVISION) | (1u << WBXML_PAGE_SETTINGS) | (1u << WBXML_PAGE_PING))
#define EXTRACT_TAGS ((1u << WBXML_EV_START) | (1u << WBXML_EV_END))

/* Below the root's children, the tags on_start does something for (the
 * others it only needs as parents, which the decoder's stack holds). */
#define TOK(tag) (1ull << WBXML_TAG_TOKEN(tag))
static const uint64_t deep_tags[WBXML_NPAGES] = {
    [WBXML_PAGE_SETTINGS] = TOK(WBXML_SETTINGS_DEVICEINFORMATION) | TOK(WBXML_SETTINGS_MODEL) |
                            TOK(WBXML_SETTINGS_IMEI) | TOK(WBXML_SETTINGS_FRIENDLYNAME) |
                            TOK(WBXML_SETTINGS_OS) | TOK(WBXML_SETTINGS_OSLANGUAGE) |
                            TOK(WBXML_SETTINGS_PHONENUMBER) | TOK(WBXML_SETTINGS_USERAGENT) |
                            TOK(WBXML_SETTINGS_MOBILEOPERATOR) |
                            TOK(WBXML_SETTINGS_ENABLEOUTBOUNDSMS),
    [WBXML_PAGE_PROVISION] = TOK(WBXML_PROV_POLICYTYPE) | TOK(WBXML_PROV_POLICYKEY) |
                             TOK(WBXML_PROV_STATUS) | TOK(WBXML_PROV_REMOTEWIPE) |
                             TOK(WBXML_PROV_ACCOUNTONLYREMOTEWIPE),
};
#undef TOK

/* Tell the decoder whether text is wanted, when that changed: only the
 * callback driver reads the filter, so the handlers leave it alone. */
static void sync_filter(struct wbxml_extractor *x)
{
    bool on = x->collect_depth != 0;
    if (on != ((x->dec.ev_mask >> WBXML_EV_TEXT) & 1))
        wbxml_dec_filter(&x->dec, EXTRACT_TAGS | (on ? 1u << WBXML_EV_TEXT : 0), EXTRACT_DEPTH,
                         EXTRACT_PAGES);
}

static void collect_str(struct wbxml_extractor *x, int depth, char *dst, uint16_t *mask,
                        uint16_t bit)
{
    x->collect_depth = depth;
    x->str = dst;
    x->len = 0;
    x->too_long = false;
    x->trunc_mask = mask;
    x->trunc_bit = bit;
    x->int_dst = NULL;
    x->long_dst = NULL;
    dst[0] = '\0';
}

static void collect_num(struct wbxml_extractor *x, int depth, int *idst, long *ldst)
{
    collect_str(x, depth, x->num, NULL, 0);
    x->int_dst = idst;
    x->long_dst = ldst;
}

/* A whole decimal number that fits an int, or -1. */
static long parse_num(const char *s)
{
    long v = 0;
    if (*s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > 100000000L)
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

/* A tag opens at depth (root = 1) inside parent (0 for the root). */
static void on_start(struct wbxml_extractor *x, uint16_t tag, bool content, int depth,
                     uint16_t parent)
{
    struct wbxml_facts *f = x->facts;
    int field;

    if (depth == 1)
        f->root = tag;
    switch (tag) {
    case WBXML_SETTINGS_DEVICEINFORMATION:
        f->has_devinfo = true;
        if (content)
            x->devinfo_depth = depth;
        return;
    case WBXML_PROV_POLICYTYPE:
        if (parent == WBXML_PROV_POLICY)
            collect_str(x, depth, f->policy_type, NULL, 0);
        return;
    case WBXML_PROV_POLICYKEY:
        if (parent == WBXML_PROV_POLICY)
            collect_str(x, depth, f->policy_key, NULL, 0);
        return;
    case WBXML_PROV_STATUS:
        if (parent == WBXML_PROV_POLICY)
            collect_num(x, depth, &f->policy_status, NULL);
        else if (parent == WBXML_PROV_REMOTEWIPE)
            collect_num(x, depth, &f->remote_wipe_status, NULL);
        else if (parent == WBXML_PROV_ACCOUNTONLYREMOTEWIPE)
            collect_num(x, depth, &f->account_only_remote_wipe_status, NULL);
        else if (depth == 2)
            collect_num(x, depth, &f->status, NULL);
        return;
    case WBXML_PROV_REMOTEWIPE:
        f->remote_wipe = true;
        return;
    case WBXML_PROV_ACCOUNTONLYREMOTEWIPE:
        f->account_only_remote_wipe = true;
        return;
    case WBXML_PING_HEARTBEATINTERVAL:
    case WBXML_AIRSYNC_HEARTBEATINTERVAL:
        if (depth == 2)
            collect_num(x, depth, NULL, &f->heartbeat);
        return;
    default:
        break;
    }
    if (x->devinfo_depth && (field = devinfo_field(tag)) >= 0) {
        f->devinfo_present |= (uint16_t)(1u << field);
        collect_str(x, depth, f->devinfo[field], &f->devinfo_truncated, (uint16_t)(1u << field));
        return;
    }
    /* The command-level status of any other command: <Root><Status>. */
    if (depth == 2 && WBXML_TAG_PAGE(tag) == WBXML_TAG_PAGE(f->root)) {
        const char *name = wbxml_tag_name(WBXML_TAG_PAGE(tag), WBXML_TAG_TOKEN(tag));
        if (name && name[0] == 'S' && strcmp(name, "Status") == 0)
            collect_num(x, depth, &f->status, NULL);
    }
}

/* Text (or a piece of it) directly inside the element being collected. */
static void on_text(struct wbxml_extractor *x, const uint8_t *data, size_t len)
{
    size_t room = WBXML_FIELD_MAX - 1 - x->len;
    size_t n = len < room ? len : room;
    if (n < len)
        x->too_long = true;
    memcpy(x->str + x->len, data, n);
    x->len += n;
    x->str[x->len] = '\0';
}

/* A tag closes; called only while collecting or inside DeviceInformation. */
static void on_end(struct wbxml_extractor *x, uint16_t tag, int depth)
{
    if (tag == WBXML_SETTINGS_DEVICEINFORMATION && depth == x->devinfo_depth)
        x->devinfo_depth = 0;
    if (depth != x->collect_depth)
        return;
    if (x->too_long && x->trunc_mask)
        *x->trunc_mask |= x->trunc_bit;
    if (x->int_dst || x->long_dst) {
        long v = x->too_long ? -1 : parse_num(x->num);
        if (x->int_dst)
            *x->int_dst = (int)v;
        else
            *x->long_dst = v;
    }
    x->collect_depth = 0;
    x->str = NULL;
}

/* <Tag>string</Tag> whole, as its three events would do it. */
static void on_leaf(struct wbxml_extractor *x, uint16_t tag, int depth, uint16_t parent,
                    const uint8_t *s, size_t len)
{
    on_start(x, tag, true, depth, parent);
    if (x->collect_depth == depth)
        on_text(x, s, len);
    if (x->collect_depth || x->devinfo_depth)
        on_end(x, tag, depth);
}

/* Copy n value bytes from src (in a piece ending at end) to a field of
 * WBXML_FIELD_MAX bytes. Most values are a few bytes: two 16-byte moves
 * beat a call to memcpy when the piece has the bytes to read. */
static inline void copy_value(char *dst, const uint8_t *src, size_t n, const uint8_t *end)
{
#if defined(__SSE2__)
    if (n <= 32 && end - src >= 32) {
        __m128i a = _mm_loadu_si128((const __m128i *)(const void *)src);
        __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(src + 16));
        _mm_storeu_si128((__m128i *)(void *)dst, a);
        _mm_storeu_si128((__m128i *)(void *)(dst + 16), b);
        return;
    }
#else
    (void)end;
#endif
    memcpy(dst, src, n);
}

/* <Model>string</Model> and its siblings inside DeviceInformation, whole:
 * what on_leaf would do for them, minus the bookkeeping nobody reads. */
static void devinfo_leaf(struct wbxml_extractor *x, int field, const uint8_t *s, size_t len,
                         const uint8_t *end)
{
    struct wbxml_facts *f = x->facts;
    uint16_t bit = (uint16_t)(1u << field);
    size_t n = len < WBXML_FIELD_MAX - 1 ? len : WBXML_FIELD_MAX - 1;
    f->devinfo_present |= bit;
    copy_value(f->devinfo[field], s, n, end);
    f->devinfo[field][n] = '\0';
    if (n < len)
        f->devinfo_truncated |= bit;
    /* The field's END ended whatever was being collected. */
    x->collect_depth = 0;
    x->str = NULL;
}

/* devinfo_run reads this far from a token without checking the end: a tag,
 * STR_I, 32 bytes of string holding its NUL, and END. */
#define DEVINFO_MARGIN 36

/* The rest of <Set> in DeviceInformation, as phones send it: a run of
 * <Field>string of up to 31 bytes</Field> in the Settings page, each copied
 * with two 16-byte moves, what devinfo_leaf does in a third of the
 * instructions. Stops at anything else (another tag, a longer string, the
 * last DEVINFO_MARGIN bytes of the piece) and leaves it to extract_run. */
static const uint8_t *devinfo_run(struct wbxml_extractor *x, const uint8_t *p, const uint8_t *end)
{
#if defined(__SSE2__)
    struct wbxml_facts *f = x->facts;
    while (end - p >= DEVINFO_MARGIN) {
        unsigned c = p[0], field = devinfo_of[c & 0x3F];
        if ((c & 0xC0) != WBXML_TAG_CONTENT || field == 0 || p[1] != WBXML_TOK_STR_I)
            break;
        unsigned n = wbxml_nul_in16_(p + 2);
        if (n == 16 && (n += wbxml_nul_in16_(p + 18)) == 32)
            break;
        if (p[n + 3] != WBXML_TOK_END)
            break;
        char *dst = f->devinfo[field - 1];
        __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(p + 2));
        __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(p + 18));
        _mm_storeu_si128((__m128i *)(void *)dst, a);
        _mm_storeu_si128((__m128i *)(void *)(dst + 16), b);
        dst[n] = '\0';
        f->devinfo_present |= (uint16_t)(1u << (field - 1));
        p += n + 4;
    }
#else
    (void)x;
    (void)end;
#endif
    return p;
}

/* ---- the callback driver ---- */

static int extract_cb(void *ud, const struct wbxml_ev *ev)
{
    struct wbxml_extractor *x = ud;
    switch (ev->type) {
    case WBXML_EV_START:
        on_start(x, ev->tag, ev->content, ev->depth,
                 ev->depth > 1 ? x->dec.stack[ev->depth - 1] : 0);
        break;
    case WBXML_EV_TEXT:
        if (x->collect_depth == ev->depth)
            on_text(x, ev->data, ev->len);
        break;
    case WBXML_EV_END:
        if (x->collect_depth || x->devinfo_depth)
            on_end(x, ev->tag, ev->depth);
        break;
    default:
        break;
    }
    sync_filter(x);
    return 0;
}

/* ---- the extractor's own loop ---- */

/* If p (a tag byte) starts <Tag>string</Tag> that ends before end, the
 * string's NUL; else NULL. */
static inline const uint8_t *leaf_nul(const uint8_t *p, const uint8_t *end)
{
    if (end - p < 4 || p[1] != WBXML_TOK_STR_I)
        return NULL;
    const uint8_t *nul;
    if (end - p > WBXML_QUIET_MARGIN) {
        nul = p + 2 + wbxml_nul_in16_(p + 2);
        if (*nul != 0)
            nul = wbxml_find_nul_(nul, end - 1);
    } else {
        nul = wbxml_find_nul_(p + 2, end - 1);
    }
    return nul && nul[1] == WBXML_TOK_END ? nul : NULL;
}

/* Whole tokens from p while the decoder is in its body state, with the
 * decoder's depth, page and stack kept as wbxml_dec_feed would. Stops,
 * leaving the token to the decoder, at anything it does not take whole
 * (checks included: it never reports an error itself, so every error has
 * the decoder's code and offset). Returns where it stopped. */
static const uint8_t *extract_run(struct wbxml_extractor *x, const uint8_t *p, const uint8_t *end)
{
    struct wbxml_dec *d = &x->dec;
    int depth = d->depth;
    unsigned page = d->page;
    uint64_t mask = wbxml_token_mask_[page];
    bool pw = (EXTRACT_PAGES >> page) & 1;
    uint64_t deep = deep_tags[page];

    while (p < end) {
        /* Deeper than the root's children, in a page they ignore, and no
         * text wanted: nothing here reaches the handlers but an END the
         * quiet loop stops at. */
        if (!pw && depth >= EXTRACT_DEPTH && x->collect_depth == 0) {
            p = wbxml_body_quiet_(d, p, end, &depth, &page, EXTRACT_PAGES, EXTRACT_DEPTH);
            mask = wbxml_token_mask_[page];
            pw = (EXTRACT_PAGES >> page) & 1;
            deep = deep_tags[page];
            if (p == end)
                break;
        }
        unsigned c = *p;
        if (c < WBXML_TAG_ATTRS && ((mask >> (c & 0x3F)) & 1)) {
            uint16_t tag = (uint16_t)((page << 8) | (c & 0x3F));
            /* The handlers hear a tag at depth <= EXTRACT_DEPTH or in
             * their pages (its depth will be depth + 1), and deeper down
             * only those in deep_tags change anything. */
            bool heard = depth < EXTRACT_DEPTH || ((deep >> (c & 0x3F)) & 1);
            if (!(c & WBXML_TAG_CONTENT)) {
                if (depth == 0)
                    break; /* an empty root: the decoder ends the document */
                if (heard) {
                    on_start(x, tag, false, depth + 1, d->stack[depth]);
                    if (x->collect_depth || x->devinfo_depth)
                        on_end(x, tag, depth + 1);
                }
                p++;
                continue;
            }
            if (depth >= WBXML_MAX_DEPTH)
                break; /* the decoder reports it */
            /* (a root that is a leaf goes the general way: its END ends
             * the document) */
            const uint8_t *nul = depth > 0 ? leaf_nul(p, end) : NULL;
            if (nul) {
                int field;
                size_t len = (size_t)(nul - p - 2);
                if (heard && x->devinfo_depth && (field = devinfo_field(tag)) >= 0) {
                    devinfo_leaf(x, field, p + 2, len, end);
                    p = devinfo_run(x, nul + 2, end); /* its usual siblings */
                    continue;
                }
                if (heard)
                    on_leaf(x, tag, depth + 1, d->stack[depth], p + 2, len);
                p = nul + 2;
                continue;
            }
            d->stack[++depth] = tag;
            if (heard)
                on_start(x, tag, true, depth, d->stack[depth - 1]);
            p++;
        } else if (c == WBXML_TOK_END && depth > 0) {
            if ((x->collect_depth || x->devinfo_depth) &&
                (depth <= EXTRACT_DEPTH ||
                 ((EXTRACT_PAGES >> WBXML_TAG_PAGE(d->stack[depth])) & 1)))
                on_end(x, d->stack[depth], depth);
            depth--;
            p++;
            if (depth == 0) {
                /* The root closed: the document is over, as the decoder
                 * would have it (anything after it is its error). */
                d->had_root = true;
                d->state = WBXML_S_DONE;
                break;
            }
        } else if (c == WBXML_TOK_STR_I && depth > 0) {
            const uint8_t *nul = wbxml_find_nul_(p + 1, end);
            if (!nul)
                break;
            if (x->collect_depth == depth)
                on_text(x, p + 1, (size_t)(nul - p - 1));
            p = nul + 1;
        } else if (c == WBXML_TOK_SWITCH_PAGE && end - p >= 2 && p[1] < WBXML_NPAGES) {
            page = p[1];
            mask = wbxml_token_mask_[page];
            pw = (EXTRACT_PAGES >> page) & 1;
            deep = deep_tags[page];
            p += 2;
        } else {
            break;
        }
    }
    if (depth > 0)
        d->had_root = true;
    d->depth = depth;
    d->page = (uint8_t)page;
    return p;
}

/* How much of [p, end) the decoder should take so that it stops at the next
 * token boundary (or at an error, or at the end of the piece). */
static size_t decoder_span(const struct wbxml_dec *d, const uint8_t *p, const uint8_t *end)
{
    size_t left = (size_t)(end - p), n;
    switch (d->state) {
    case WBXML_S_VERSION:
        n = 4; /* a header is at least 4 bytes */
        break;
    case WBXML_S_STR: {
        const uint8_t *nul = memchr(p, 0, left);
        n = nul ? (size_t)(nul - p) + 1 : left;
        break;
    }
    case WBXML_S_OPAQUE_DATA:
        n = d->remain;
        break;
    case WBXML_S_DONE:
        n = left; /* whatever it is, it is an error */
        break;
    default:
        n = 1; /* a token the loop left, a header or opaque length byte */
        break;
    }
    return n < left ? n : left;
}

/* ---- API ---- */

void wbxml_extract_init(struct wbxml_extractor *x, struct wbxml_facts *facts)
{
    /* Field by field: the facts are 1.4 KiB, mostly string space, and
     * clearing it all cost more than reading a short body. */
    facts->root = 0;
    facts->has_devinfo = false;
    /* (written out: as a loop it took four times the instructions) */
    _Static_assert(WBXML_DI_NFIELDS == 9, "clear every DeviceInformation field");
    char(*di)[WBXML_FIELD_MAX] = facts->devinfo;
    di[0][0] = di[1][0] = di[2][0] = di[3][0] = di[4][0] = '\0';
    di[5][0] = di[6][0] = di[7][0] = di[8][0] = '\0';
    facts->devinfo_present = 0;
    facts->devinfo_truncated = 0;
    facts->heartbeat = -1;
    facts->policy_type[0] = '\0';
    facts->policy_key[0] = '\0';
    facts->policy_status = -1;
    facts->status = -1;
    facts->remote_wipe = false;
    facts->remote_wipe_status = -1;
    facts->account_only_remote_wipe = false;
    facts->account_only_remote_wipe_status = -1;
    x->facts = facts;
    x->collect_depth = 0;
    x->str = NULL;
    x->len = 0;
    x->too_long = false;
    x->trunc_mask = NULL;
    x->trunc_bit = 0;
    x->int_dst = NULL;
    x->long_dst = NULL;
    x->num[0] = '\0';
    x->devinfo_depth = 0;
    wbxml_dec_init(&x->dec, extract_cb, x);
    wbxml_dec_filter(&x->dec, EXTRACT_TAGS, EXTRACT_DEPTH, EXTRACT_PAGES);
}

int wbxml_extract_feed(struct wbxml_extractor *x, const void *buf, size_t len)
{
    struct wbxml_dec *d = &x->dec;
    const uint8_t *p = buf, *end = p + len;

    if (d->state == WBXML_S_VERSION && len >= 4 && wbxml_header_usual_(p)) {
        d->state = WBXML_S_BODY;
        d->off = 4;
        p += 4;
    }
    while (p < end && !d->err) {
        if (d->state == WBXML_S_BODY) {
            const uint8_t *q = extract_run(x, p, end);
            d->off += (uint64_t)(q - p);
            p = q;
            if (p == end)
                break;
        }
        size_t n = decoder_span(d, p, end);
        sync_filter(x);
        if (wbxml_dec_feed(d, p, n) != 0)
            break;
        p += n;
    }
    return d->err;
}

int wbxml_extract_feed_generic_(struct wbxml_extractor *x, const void *buf, size_t len)
{
    sync_filter(x);
    return wbxml_dec_feed(&x->dec, buf, len);
}

int wbxml_extract_finish(struct wbxml_extractor *x)
{
    return wbxml_dec_finish(&x->dec);
}

int wbxml_extract(const void *buf, size_t len, struct wbxml_facts *facts, uint64_t *err_off)
{
    struct wbxml_extractor x;
    wbxml_extract_init(&x, facts);
    int rc = wbxml_extract_feed(&x, buf, len);
    if (rc == 0)
        rc = wbxml_extract_finish(&x);
    if (err_off)
        *err_off = wbxml_dec_error_offset(&x.dec);
    return rc;
}
