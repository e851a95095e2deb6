/*
 * fuzz_wbxml: libFuzzer target for the WBXML decoder, the extractor and the
 * XML reader/printer.
 *
 * The decoder and the extractor are fed the input whole and again in pieces
 * whose sizes come from the input itself; both runs must agree on the
 * result, the error offset, the events (joined pieces, offsets, depths) and
 * the facts read, with and without event filters; filtered events must be
 * the unfiltered ones that pass the filter. The extractor's own loop must
 * read what the decoder's callback alone reads: facts, error and offset.
 * Whatever decodes must print as XML, and printing is a fixed point after
 * one round: print(parse(print(parse(x)))) == print(parse(x)). The input is
 * also given to the XML reader as text. Seeds: tests/data/eas, encoded.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eas/wbxml.h"
#include "eas/wbxml_int.h"

/* What a decoding delivered, folded into a hash: the tag events with their
 * depth and offset, and each string or blob joined from its pieces, so two
 * decodings of the same body compare equal however it was cut. The trace
 * may apply a filter itself (the reference run) and checks that pieces
 * come first..last. */
struct trace {
    uint64_t h;
    size_t n;
    bool in_piece, self_filter;
    unsigned mask, od;
    uint32_t pm;
};

static void mix(struct trace *t, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8) {
        t->h ^= v & 0xFF;
        t->h *= 0x100000001B3ull; /* FNV-1a */
    }
}

static bool passes(const struct trace *t, const struct wbxml_ev *ev)
{
    if (!(t->mask & (1u << ev->type)))
        return false;
    if (ev->type != WBXML_EV_START && ev->type != WBXML_EV_END)
        return true;
    return (unsigned)ev->depth <= t->od || ((t->pm >> WBXML_TAG_PAGE(ev->tag)) & 1);
}

static int trace_cb(void *ud, const struct wbxml_ev *ev)
{
    struct trace *t = ud;
    if (t->self_filter && !passes(t, ev))
        return 0;
    if (ev->type == WBXML_EV_START || ev->type == WBXML_EV_END) {
        t->n++;
        if (t->in_piece)
            abort();
        mix(t, (uint64_t)ev->type << 56 | (uint64_t)ev->tag << 40 | (uint64_t)ev->content << 32 |
                   (uint32_t)ev->depth);
        mix(t, ev->offset);
        return 0;
    }
    if (ev->first == t->in_piece)
        abort(); /* a piece out of order */
    if (ev->first) {
        mix(t, (uint64_t)ev->type << 56 | (uint64_t)ev->tag << 40 | (uint32_t)ev->depth);
        mix(t, ev->offset);
        mix(t, ev->type == WBXML_EV_OPAQUE ? ev->total : 0);
    }
    /* Touch every byte handed out, so ASan sees a bad pointer. */
    for (size_t i = 0; i < ev->len; i++) {
        t->h ^= ev->data[i];
        t->h *= 0x100000001B3ull;
    }
    t->in_piece = !ev->last;
    if (ev->last) {
        mix(t, 0xE0D);
        t->n++; /* a whole string or blob counts once, however many pieces */
    }
    return 0;
}

struct filter {
    bool none, all;
    unsigned mask, od;
    uint32_t pm;
};

/* Decode with a filter, in pieces of 1..8 bytes taken from the input (or
 * whole when split is false). */
static int decode(const uint8_t *data, size_t size, const struct filter *f, bool split,
                  struct trace *t, uint64_t *off)
{
    struct wbxml_dec d;
    memset(t, 0, sizeof(*t));
    t->h = 0xCBF29CE484222325ull;
    wbxml_dec_init(&d, f->none ? NULL : trace_cb, t);
    if (!f->all && !f->none)
        wbxml_dec_filter(&d, f->mask, f->od, f->pm);
    int rc = 0;
    size_t i = 0, k = 0;
    while (i < size && rc == 0) {
        size_t step = split ? 1 + (data[k++ % size] & 7) : size;
        if (step > size - i)
            step = size - i;
        rc = wbxml_dec_feed(&d, data + i, step);
        i += step;
    }
    if (rc == 0)
        rc = wbxml_dec_finish(&d);
    *off = wbxml_dec_error_offset(&d);
    return rc;
}

/* Whole or cut, filtered or not: the same error at the same offset, and the
 * filtered events are exactly the unfiltered ones that pass the filter. The
 * fast loops run on whole bodies; cut into pieces of a few bytes nearly all
 * of it goes byte by byte through the state machine, the reference. */
static void check_splits(const uint8_t *data, size_t size)
{
    struct trace ref, got;
    uint64_t off_ref, off;
    struct filter all = {.all = true};
    int rc_ref = decode(data, size, &all, false, &ref, &off_ref);
    if (rc_ref == 0 && ref.n == 0)
        abort();
    /* Filters: the extractor's, none at all, and one drawn from the input. */
    struct filter fs[4] = {
        {.all = true},
        {.none = true},
        {.mask = 3, .od = 2, .pm = (1u << 13) | (1u << 14) | (1u << 18)},
        {.mask = size > 0 ? data[0] & 0xF : 0,
         .od = size > 1 ? data[1] % 6 : 0,
         .pm = size > 2 ? (uint32_t)data[2] * 0x10204081u : 0},
    };
    for (size_t k = 0; k < sizeof(fs) / sizeof(fs[0]); k++) {
        struct filter *f = &fs[k];
        struct trace want;
        uint64_t off_want = off_ref;
        if (k == 0) {
            want = ref;
        } else {
            /* the reference again, filtering for itself */
            struct wbxml_dec d;
            memset(&want, 0, sizeof(want));
            want.h = 0xCBF29CE484222325ull;
            want.self_filter = true;
            want.mask = f->none ? 0 : f->mask;
            want.od = f->od;
            want.pm = f->pm;
            wbxml_dec_init(&d, trace_cb, &want);
            if (wbxml_dec_feed(&d, data, size) == 0)
                wbxml_dec_finish(&d);
            if (wbxml_dec_error_offset(&d) != off_ref)
                abort();
        }
        for (int split = 0; split <= 1; split++) {
            int rc = decode(data, size, f, split, &got, &off);
            if (rc != rc_ref || off != off_want || got.h != want.h || got.n != want.n)
                abort();
        }
    }
    if (wbxml_check(data, size, &off) != rc_ref || off != off_ref)
        abort();
}

static void check_xml_fixed_point(const uint8_t *data, size_t size)
{
    char *x1 = NULL, *x2 = NULL;
    size_t l1, l2;
    uint8_t *w1 = NULL, *w2 = NULL;
    size_t wl1, wl2;
    uint64_t off;
    const char *why;

    if (wbxml_to_xml(data, size, &x1, &l1, &off) != 0)
        return;
    if (wbxml_from_xml(x1, l1, &w1, &wl1, &off, &why) != 0)
        abort(); /* our own XML must read back */
    if (wbxml_to_xml(w1, wl1, &x2, &l2, &off) != 0)
        abort();
    if (wbxml_from_xml(x2, l2, &w2, &wl2, &off, &why) != 0)
        abort();
    /* The writer's output is canonical: it survives the round trip exactly. */
    if (wl1 != wl2 || memcmp(w1, w2, wl1) != 0)
        abort();
    free(x1);
    free(x2);
    free(w1);
    free(w2);
}

/* Facts as a reader sees them: field by field, strings up to their NUL
 * (the bytes after it are unspecified). */
static bool facts_equal(const struct wbxml_facts *a, const struct wbxml_facts *b)
{
    for (int i = 0; i < WBXML_DI_NFIELDS; i++)
        if (strcmp(a->devinfo[i], b->devinfo[i]) != 0)
            return false;
    return a->root == b->root && a->has_devinfo == b->has_devinfo &&
           a->devinfo_present == b->devinfo_present &&
           a->devinfo_truncated == b->devinfo_truncated && a->heartbeat == b->heartbeat &&
           strcmp(a->policy_type, b->policy_type) == 0 &&
           strcmp(a->policy_key, b->policy_key) == 0 && a->policy_status == b->policy_status &&
           a->status == b->status && a->remote_wipe == b->remote_wipe &&
           a->remote_wipe_status == b->remote_wipe_status &&
           a->account_only_remote_wipe == b->account_only_remote_wipe &&
           a->account_only_remote_wipe_status == b->account_only_remote_wipe_status;
}

/* Extraction must read the same facts however the body is cut, and the
 * extractor's own loop the same as the decoder's callback alone. */
static void check_extract_splits(const uint8_t *data, size_t size)
{
    static struct wbxml_facts whole, parts, generic;
    struct wbxml_extractor x;
    uint64_t off1;
    int rc1 = wbxml_extract(data, size, &whole, &off1);
    wbxml_extract_init(&x, &parts);
    int rc2 = 0;
    size_t i = 0, k = size / 2;
    while (i < size && rc2 == 0) {
        size_t step = 1 + (data[k++ % size] % 13);
        if (step > size - i)
            step = size - i;
        rc2 = wbxml_extract_feed(&x, data + i, step);
        i += step;
    }
    if (rc2 == 0)
        rc2 = wbxml_extract_finish(&x);
    if (rc1 != rc2 || off1 != wbxml_dec_error_offset(&x.dec))
        abort();
    if (rc1 == 0 && !facts_equal(&whole, &parts))
        abort();
    wbxml_extract_init(&x, &generic);
    int rc3 = wbxml_extract_feed_generic_(&x, data, size);
    if (rc3 == 0)
        rc3 = wbxml_extract_finish(&x);
    if (rc1 != rc3 || off1 != wbxml_dec_error_offset(&x.dec) || !facts_equal(&whole, &generic))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wbxml_facts f;
    uint8_t *w = NULL;
    size_t wl;
    uint64_t off;
    const char *why;

    check_splits(data, size);
    check_extract_splits(data, size);
    wbxml_extract(data, size, &f, &off);
    check_xml_fixed_point(data, size);
    if (wbxml_from_xml((const char *)data, size, &w, &wl, &off, &why) == 0) {
        if (wbxml_check(w, wl, &off) != 0)
            abort(); /* the reader produced something the decoder refuses */
        free(w);
    } else if (off > size || w != NULL) {
        abort();
    }
    return 0;
}
