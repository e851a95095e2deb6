/* test_wbxml_fast: the decoder's fast paths (body_fast, and body_quiet when
 * the callback listens to little or nothing) against the byte-at-a-time
 * state machine. Fed whole, a body runs mostly through the fast paths; fed
 * one byte at a time it runs entirely through the resumable one. For every
 * input (the corpus, a tag-dense Sync body, crafted edge cases and bounded
 * random mutations of all of them) and every filter, both must give the same
 * events, the same error and the same error offset, and the filtered events
 * must be exactly the unfiltered ones that pass the filter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eas/wbxml.h"
#include "test_wbxml_util.h"

#define HDR 0x03, 0x01, 0x6A, 0x00
#define T(page, tok) WBXML_TAG(WBXML_PAGE_##page, tok)

/* Bounds on the random part, in count and in time. */
#define MUTANTS_PER_INPUT 24
#define MUTATION_SECONDS 20.0

/* ---- traces: events as text, text/opaque pieces joined ---- */

struct trace {
    char *buf;
    size_t len, cap;
    /* the filter this trace applies itself (the reference run) */
    bool self_filter;
    unsigned ev_mask, open_depth;
    uint32_t page_mask;
    bool in_piece;
};

static void tr_put(struct trace *t, const void *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + n + 1)
            cap *= 2;
        t->buf = realloc(t->buf, cap);
        assert_non_null(t->buf);
        t->cap = cap;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

static void tr_reset(struct trace *t)
{
    t->len = 0;
    t->in_piece = false;
    tr_put(t, "", 0);
}

static bool passes(const struct trace *t, const struct wbxml_ev *ev)
{
    if (!(t->ev_mask & (1u << ev->type)))
        return false;
    if (ev->type != WBXML_EV_START && ev->type != WBXML_EV_END)
        return true;
    return (unsigned)ev->depth <= t->open_depth || ((t->page_mask >> WBXML_TAG_PAGE(ev->tag)) & 1);
}

static int trace_cb(void *ud, const struct wbxml_ev *ev)
{
    struct trace *t = ud;
    char tmp[96];
    int n;
    if (t->self_filter && !passes(t, ev))
        return 0;
    switch (ev->type) {
    case WBXML_EV_START:
    case WBXML_EV_END:
        assert_false(t->in_piece);
        n = snprintf(tmp, sizeof(tmp), "%c%04x%c%d@%llu ", ev->type == WBXML_EV_START ? '<' : '>',
                     ev->tag, ev->content ? '+' : '-', ev->depth, (unsigned long long)ev->offset);
        tr_put(t, tmp, (size_t)n);
        break;
    case WBXML_EV_TEXT:
    case WBXML_EV_OPAQUE:
        /* Pieces must come first..last, in order; only the joined value,
         * the token's offset and the enclosing tag count. */
        assert_true(ev->first != t->in_piece);
        if (ev->first) {
            n = snprintf(tmp, sizeof(tmp), "%c%04x:%d@%llu/%u[",
                         ev->type == WBXML_EV_TEXT ? 'T' : 'O', ev->tag, ev->depth,
                         (unsigned long long)ev->offset,
                         ev->type == WBXML_EV_OPAQUE ? ev->total : 0);
            tr_put(t, tmp, (size_t)n);
        }
        for (size_t i = 0; i < ev->len; i++) {
            n = snprintf(tmp, sizeof(tmp), "%02x", ev->data[i]);
            tr_put(t, tmp, (size_t)n);
        }
        t->in_piece = !ev->last;
        if (ev->last)
            tr_put(t, "] ", 2);
        break;
    }
    return 0;
}

/* ---- the filters tried ---- */

struct filter {
    const char *name;
    bool none;  /* no callback at all (wbxml_check's walk) */
    bool deflt; /* wbxml_dec_init's default: everything */
    unsigned mask, od;
    uint32_t pm;
};

#define EV(x) (1u << WBXML_EV_##x)
static const struct filter filters[] = {
    {"all", false, true, 0, 0, 0},
    {"none", true, false, 0, 0, 0},
    /* what the extractor asks when it collects nothing */
    {"extract", false, false, EV(START) | EV(END), 2,
     (1u << WBXML_PAGE_PROVISION) | (1u << WBXML_PAGE_SETTINGS) | (1u << WBXML_PAGE_PING)},
    {"extract+text", false, false, EV(START) | EV(END) | EV(TEXT), 2,
     (1u << WBXML_PAGE_PROVISION) | (1u << WBXML_PAGE_SETTINGS)},
    {"airsyncbase deep", false, false, EV(START) | EV(END), 0, 1u << WBXML_PAGE_AIRSYNCBASE},
    {"ends at depth 4", false, false, EV(END), 4, 0},
    {"text and opaque", false, false, EV(TEXT) | EV(OPAQUE), 0, 0},
    {"filtered to nothing", false, false, 0, 0, 0},
};

/* One decoding: fed in pieces of `step` bytes (0: whole), or, when rng is
 * set, in random pieces of 1..40 bytes. */
struct result {
    int rc;
    uint64_t off;
};

static uint32_t rng_next(uint32_t *s)
{
    /* xorshift32: deterministic, so a failure reproduces */
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static struct result run(const uint8_t *buf, size_t len, const struct filter *f, size_t step,
                         uint32_t *rng, struct trace *t)
{
    struct wbxml_dec d;
    struct result r = {0, 0};
    tr_reset(t);
    t->self_filter = false;
    wbxml_dec_init(&d, f->none ? NULL : trace_cb, t);
    if (!f->deflt && !f->none)
        wbxml_dec_filter(&d, f->mask, f->od, f->pm);
    size_t i = 0;
    while (i < len && r.rc == 0) {
        size_t n = rng ? 1 + rng_next(rng) % 40 : step ? step : len;
        if (n > len - i)
            n = len - i;
        r.rc = wbxml_dec_feed(&d, buf + i, n);
        i += n;
    }
    if (r.rc == 0)
        r.rc = wbxml_dec_finish(&d);
    r.off = wbxml_dec_error_offset(&d);
    return r;
}

/* The reference: everything delivered, the filter applied by the trace. */
static struct result run_reference(const uint8_t *buf, size_t len, const struct filter *f,
                                   struct trace *t)
{
    struct wbxml_dec d;
    tr_reset(t);
    t->self_filter = !f->deflt;
    t->ev_mask = f->none ? 0 : f->mask;
    t->open_depth = f->od;
    t->page_mask = f->pm;
    wbxml_dec_init(&d, trace_cb, t);
    struct result r = {wbxml_dec_feed(&d, buf, len), 0};
    if (r.rc == 0)
        r.rc = wbxml_dec_finish(&d);
    r.off = wbxml_dec_error_offset(&d);
    return r;
}

static struct trace t_ref, t_got;
static unsigned long n_compared;

static void same(const char *what, const char *fname, const char *how, struct result want,
                 struct result got)
{
    if (want.rc != got.rc || want.off != got.off)
        fail_msg("%s, filter %s, %s: error %d at %llu, expected %d at %llu", what, fname, how,
                 got.rc, (unsigned long long)got.off, want.rc, (unsigned long long)want.off);
    if (strcmp(t_ref.buf, t_got.buf) != 0)
        fail_msg("%s, filter %s, %s: events differ\n got: %.600s\nwant: %.600s", what, fname, how,
                 t_got.buf, t_ref.buf);
    n_compared++;
}

/* Every filter, fed whole, one byte at a time and in random pieces, agrees
 * with the reference. Returns the unfiltered result. */
static struct result check_input(const char *what, const uint8_t *buf, size_t len, uint32_t seed)
{
    struct result all = {0, 0};
    for (size_t k = 0; k < sizeof(filters) / sizeof(filters[0]); k++) {
        const struct filter *f = &filters[k];
        struct result want = run_reference(buf, len, f, &t_ref);
        if (k == 0)
            all = want;
        same(what, f->name, "whole", want, run(buf, len, f, 0, NULL, &t_got));
        same(what, f->name, "byte by byte", want, run(buf, len, f, 1, NULL, &t_got));
        uint32_t rng = seed | 1;
        same(what, f->name, "random pieces", want, run(buf, len, f, 0, &rng, &t_got));
        /* wbxml_check is the walk the proxy does when it reads nothing */
        if (f->none) {
            uint64_t off = 0;
            struct result c = {wbxml_check(buf, len, &off), 0};
            c.off = off;
            same(what, f->name, "wbxml_check", want, c);
        }
    }
    return all;
}

/* ---- inputs ---- */

/* A tag-dense Sync request like easbench's: collections of email changes
 * (Email page leaves inside AirSync containers) and calendar adds with
 * AirSyncBase bodies, ~4 KiB. */
static size_t build_sync(struct wbxml_w *w)
{
    const uint8_t *out;
    size_t len;
    char id[32];
    wbxml_w_init(w, NULL, 0);
    wbxml_w_start(w, T(AIRSYNC, 0x05));
    wbxml_w_start(w, T(AIRSYNC, 0x1C));
    for (int c = 0; c < 2; c++) {
        wbxml_w_start(w, T(AIRSYNC, 0x0F));
        wbxml_w_text(w, T(AIRSYNC, 0x0B), "1284327170");
        wbxml_w_text(w, T(AIRSYNC, 0x12), c ? "1" : "2");
        wbxml_w_empty(w, T(AIRSYNC, 0x1E));
        wbxml_w_start(w, T(AIRSYNC, 0x17));
        wbxml_w_start(w, T(AIRSYNCBASE, 0x05));
        wbxml_w_text(w, T(AIRSYNCBASE, 0x06), "2");
        wbxml_w_text(w, T(AIRSYNCBASE, 0x07), "51200");
        wbxml_w_end(w);
        wbxml_w_end(w);
        wbxml_w_start(w, T(AIRSYNC, 0x16));
        for (int i = 0; i < 24; i++) {
            snprintf(id, sizeof(id), "1:%d", 1000 + i);
            wbxml_w_start(w, T(AIRSYNC, 0x08));
            wbxml_w_text(w, T(AIRSYNC, 0x0D), id);
            wbxml_w_start(w, T(AIRSYNC, 0x1D));
            wbxml_w_text(w, T(EMAIL, 0x15), i % 2 ? "1" : "0");
            wbxml_w_start(w, T(EMAIL, 0x3A));
            wbxml_w_text(w, T(EMAIL, 0x3B), "2");
            /* strings of 15, 16 and 17 bytes: around the 16-byte scan */
            wbxml_w_text(w, T(EMAIL, 0x3D),
                         i % 3 == 0   ? "Follow up today"
                         : i % 3 == 1 ? "Follow up at 9am"
                                      : "Follow up at 10am");
            wbxml_w_end(w);
            if (i % 4 == 0) {
                wbxml_w_start(w, T(AIRSYNCBASE, 0x0A));
                wbxml_w_text(w, T(AIRSYNCBASE, 0x0B), "");
                wbxml_w_opaque(w, "\x00\x01\x02", 3);
                wbxml_w_end(w);
            }
            wbxml_w_end(w);
            wbxml_w_end(w);
        }
        wbxml_w_end(w);
        wbxml_w_end(w);
    }
    wbxml_w_end(w);
    /* a Provision-page tag deep down: the extract filter wants it */
    wbxml_w_start(w, T(PROVISION, 0x06));
    wbxml_w_text(w, T(PROVISION, 0x08), "MS-EAS-Provisioning-WBXML");
    wbxml_w_end(w);
    wbxml_w_text(w, T(AIRSYNC, 0x29), "480");
    wbxml_w_end(w);
    assert_int_equal(wbxml_w_finish(w, &out, &len), 0);
    return len;
}

static int load_inputs(void **state)
{
    struct wbxml_w w;
    add_corpus();
    size_t len = build_sync(&w);
    add_input("tag-dense Sync", w.buf, len);
    wbxml_w_free(&w);
    return 0;
}

static int free_inputs(void **state)
{
    free_all_inputs();
    free(t_ref.buf);
    free(t_got.buf);
    t_ref.buf = t_got.buf = NULL;
    t_ref.cap = t_got.cap = 0;
    return 0;
}

/* ---- tests ---- */

static void test_corpus(void **state)
{
    assert_true(n_inputs > 40);
    for (size_t i = 0; i < n_inputs; i++) {
        struct result r = check_input(inputs[i].name, inputs[i].buf, inputs[i].len, (uint32_t)i);
        if (r.rc != 0)
            fail_msg("%s: does not decode: %s", inputs[i].name, wbxml_strerror(r.rc));
    }
}

/* Find the Sync body among the inputs. */
static const struct input *sync_input(void)
{
    for (size_t i = 0; i < n_inputs; i++)
        if (strcmp(inputs[i].name, "tag-dense Sync") == 0)
            return &inputs[i];
    fail_msg("no Sync input");
    return NULL;
}

/* Offsets of every START, to know where the tags are. */
struct starts {
    size_t off[2048];
    size_t n;
};

static int starts_cb(void *ud, const struct wbxml_ev *ev)
{
    struct starts *st = ud;
    if (ev->type == WBXML_EV_START && st->n < sizeof(st->off) / sizeof(st->off[0]))
        st->off[st->n++] = (size_t)ev->offset;
    return 0;
}

/* Errors deep in a long body (where the quiet loop runs when fed whole) are
 * reported with the same code and offset as byte by byte. */
static void test_errors_in_long_body(void **state)
{
    const struct input *s = sync_input();
    uint8_t *b = malloc(s->len + 8);
    assert_non_null(b);
    static const struct {
        uint8_t byte;
        int rc;
    } bad[] = {
        {0x02, WBXML_E_UNSUPPORTED}, /* ENTITY */
        {0x04, WBXML_E_UNSUPPORTED}, /* LITERAL */
        {0x85, WBXML_E_UNSUPPORTED}, /* a tag with attributes */
        {0x7F, WBXML_E_TOKEN},       /* AirSync/Email define no 0x3F */
        {0xC0, WBXML_E_UNSUPPORTED}, /* EXT_0 */
    };
    /* Put each bad byte where a tag of the body was, for tags in the
     * middle of the body: the expected offset is that position. */
    struct starts st = {0};
    struct wbxml_dec d;
    wbxml_dec_init(&d, starts_cb, &st);
    assert_int_equal(wbxml_dec_feed(&d, s->buf, s->len), 0);
    assert_true(st.n > 100);
    size_t tried = 0;
    for (size_t j = st.n / 3; j < st.n / 3 + 60; j++) {
        size_t pos = st.off[j];
        for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
            memcpy(b, s->buf, s->len);
            b[pos] = bad[k].byte;
            uint64_t off = 0;
            int rc = wbxml_check(b, s->len, &off);
            if (bad[k].rc == WBXML_E_TOKEN && rc == 0)
                continue; /* the byte happened to be a valid token here */
            assert_int_equal(rc, bad[k].rc);
            assert_int_equal(off, pos);
            check_input("Sync with a bad byte", b, s->len, (uint32_t)pos);
            tried++;
        }
    }
    assert_true(tried > 20);
    /* Cut anywhere: truncated, same offset as byte by byte. */
    for (size_t cut = s->len - 60; cut < s->len; cut++)
        check_input("Sync cut short", s->buf, cut, (uint32_t)cut);
    /* Data after the root, long enough for the quiet loop to run to it. */
    memcpy(b, s->buf, s->len);
    memcpy(b + s->len, (const uint8_t[]){0x45, 0x01, 0x45, 0x01, 0x45, 0x01, 0x45, 0x01}, 8);
    check_input("Sync with trailing bytes", b, s->len + 8, 7);
    free(b);
}

/* Depth: leaves and containers at the limit, in the quiet loop's reach. */
static void test_depth_limit(void **state)
{
    uint8_t b[256];
    for (int extra = 0; extra <= 1; extra++) {
        for (int leaf = 0; leaf <= 1; leaf++) {
            size_t n = 0;
            memcpy(b, (const uint8_t[]){HDR}, 4);
            n = 4;
            int opens = WBXML_MAX_DEPTH - 1 + extra; /* containers: Sync tags */
            for (int i = 0; i < opens; i++)
                b[n++] = 0x45;
            size_t tag_off = n;
            if (leaf) { /* <Status>"1"</Status> */
                memcpy(b + n, (const uint8_t[]){0x4E, 0x03, '1', 0x00, 0x01}, 5);
                n += 5;
            } else { /* <Status/> */
                b[n++] = 0x0E;
            }
            for (int i = 0; i < opens; i++)
                b[n++] = 0x01;
            /* A leaf at depth 33 (extra) must fail at its tag; an empty
             * tag at any depth is fine, it opens nothing. */
            int want = extra && leaf ? WBXML_E_DEPTH : 0;
            uint64_t off = 0;
            assert_int_equal(wbxml_check(b, n, &off), want);
            assert_int_equal(off, want ? tag_off : 0);
            struct result r = check_input("depth limit", b, n, (uint32_t)n);
            assert_int_equal(r.rc, want);
        }
    }
}

/* An element of a wanted page whose END comes while the current page is
 * one the callback ignores (the quiet loop must still hand that END over),
 * and ENDs at the depth the callback always hears. */
static void test_wanted_end_in_ignored_page(void **state)
{
    uint8_t b[256];
    size_t n = 0;
    memcpy(b, (const uint8_t[]){HDR, 0x45, 0x00, 0x11, 0x4A, 0x00, 0x00}, 10);
    n = 10;                       /* <Sync><asb:Body> then back to AirSync */
    for (int i = 0; i < 3; i++) { /* <Collections><GetChanges/>..</Collections> */
        b[n++] = 0x5C;
        for (int k = 0; k < 6; k++)
            b[n++] = 0x13;
        b[n++] = 0x01;
    }
    b[n++] = 0x01; /* </asb:Body>, with the page still AirSync */
    for (int k = 0; k < 24; k++)
        b[n++] = 0x13;
    b[n++] = 0x01; /* </Sync> */
    struct result r = check_input("wanted END in an ignored page", b, n, 5);
    assert_int_equal(r.rc, 0);
    /* The same three levels deeper, for the extractor's depth 2. */
    uint8_t c[300];
    memcpy(c, (const uint8_t[]){HDR, 0x45, 0x5C, 0x4F, 0x56}, 8);
    memcpy(c + 8, b + 5, n - 6);
    size_t m = 8 + n - 6;
    memcpy(c + m, (const uint8_t[]){0x01, 0x01, 0x01, 0x01}, 4);
    m += 4;
    r = check_input("wanted END in an ignored page, deeper", c, m, 6);
    assert_int_equal(r.rc, 0);
}

/* Strings around the 16-byte scan and the end of the piece. */
static void test_string_lengths(void **state)
{
    uint8_t b[256];
    for (size_t sl = 0; sl <= 40; sl++) {
        for (int tail = 0; tail <= 24; tail += 8) {
            size_t n = 0;
            memcpy(b, (const uint8_t[]){HDR, 0x45, 0x5C}, 6); /* Sync Collections */
            n = 6;
            b[n++] = 0x4F; /* Collection */
            b[n++] = 0x4B; /* SyncKey "xxx" */
            b[n++] = 0x03;
            memset(b + n, 'k', sl);
            n += sl;
            b[n++] = 0x00;
            b[n++] = 0x01;
            for (int i = 0; i < tail; i++) /* <GetChanges/> */
                b[n++] = 0x13;
            memcpy(b + n, (const uint8_t[]){0x01, 0x01, 0x01}, 3);
            n += 3;
            struct result r = check_input("string lengths", b, n, (uint32_t)(sl * 31 + tail));
            assert_int_equal(r.rc, 0);
            /* The same with the NUL missing: the string runs to the end. */
            b[6 + 3 + sl] = 'k';
            r = check_input("unterminated", b, n, (uint32_t)sl);
            assert_int_not_equal(r.rc, 0);
        }
    }
}

/* Random mutations of every input, bounded in count and time. */
static void test_mutations(void **state)
{
    static const uint8_t tokens[] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x0E, 0x11,
                                     0x12, 0x19, 0x1A, 0x3F, 0x40, 0x45, 0x4E, 0x5C,
                                     0x7F, 0x80, 0x83, 0xC3, 0xC0, 0xFF};
    uint32_t rng = 0x9E3779B9u;
    size_t cap = 1 << 16;
    uint8_t *b = malloc(cap);
    assert_non_null(b);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned long mutants = 0, failing = 0;
    for (size_t i = 0; i < n_inputs; i++) {
        const struct input *in = &inputs[i];
        if (in->len < 8 || in->len > cap / 2)
            continue;
        for (int m = 0; m < MUTANTS_PER_INPUT; m++) {
            size_t len = in->len;
            memcpy(b, in->buf, len);
            int edits = 1 + (int)(rng_next(&rng) % 3);
            for (int e = 0; e < edits; e++) {
                size_t pos = 4 + rng_next(&rng) % (len - 4);
                switch (rng_next(&rng) % 4) {
                case 0: /* a token-ish byte */
                    b[pos] = tokens[rng_next(&rng) % sizeof(tokens)];
                    break;
                case 1: /* any byte */
                    b[pos] = (uint8_t)rng_next(&rng);
                    break;
                case 2: /* cut */
                    len = pos;
                    break;
                default: /* delete one byte */
                    memmove(b + pos, b + pos + 1, len - pos - 1);
                    len--;
                    break;
                }
                if (len <= 4)
                    break;
            }
            char what[160];
            snprintf(what, sizeof(what), "%.96s mutant %d", in->name, m);
            struct result r = check_input(what, b, len, rng_next(&rng));
            mutants++;
            failing += r.rc != 0;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if ((double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9 >
            MUTATION_SECONDS) {
            print_message("time bound reached after %zu of %zu inputs\n", i + 1, n_inputs);
            break;
        }
    }
    print_message("%lu mutants (%lu malformed), %lu comparisons in all\n", mutants, failing,
                  n_compared);
    assert_true(mutants > 0 && failing > 0);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus),         cmocka_unit_test(test_errors_in_long_body),
        cmocka_unit_test(test_depth_limit),    cmocka_unit_test(test_wanted_end_in_ignored_page),
        cmocka_unit_test(test_string_lengths), cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, load_inputs, free_inputs);
}
