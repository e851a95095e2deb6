/* test_wbxml: the decoder (whole and split at every byte), every malformed
 * case with its offset, the writer, the tables and extraction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eas/wbxml.h"

/* MS-ASWBXML section 3: the Sync response example, byte for byte. */
static const uint8_t spec_example[] = {
    0x03, 0x01, 0x6A, 0x00, 0x45, 0x5C, 0x4F, 0x50, 0x03, 0x43, 0x6F, 0x6E, 0x74, 0x61, 0x63, 0x74,
    0x73, 0x00, 0x01, 0x4B, 0x03, 0x32, 0x00, 0x01, 0x52, 0x03, 0x32, 0x00, 0x01, 0x4E, 0x03, 0x31,
    0x00, 0x01, 0x56, 0x47, 0x4D, 0x03, 0x32, 0x3A, 0x31, 0x00, 0x01, 0x5D, 0x00, 0x11, 0x4A, 0x46,
    0x03, 0x31, 0x00, 0x01, 0x4C, 0x03, 0x30, 0x00, 0x01, 0x4D, 0x03, 0x31, 0x00, 0x01, 0x01, 0x00,
    0x01, 0x5E, 0x03, 0x46, 0x75, 0x6E, 0x6B, 0x2C, 0x20, 0x44, 0x6F, 0x6E, 0x00, 0x01, 0x5F, 0x03,
    0x44, 0x6F, 0x6E, 0x00, 0x01, 0x69, 0x03, 0x46, 0x75, 0x6E, 0x6B, 0x00, 0x01, 0x00, 0x11, 0x56,
    0x03, 0x31, 0x00, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01};

/* Events serialised to text, so two decodings can be compared. */
struct trace {
    char buf[16384];
    size_t len;
};

static void tr_put(struct trace *t, const char *s, size_t n)
{
    assert_true(t->len + n < sizeof(t->buf));
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

static int trace_cb(void *ud, const struct wbxml_ev *ev)
{
    struct trace *t = ud;
    char tmp[64];
    int n;
    switch (ev->type) {
    case WBXML_EV_START:
        n = snprintf(tmp, sizeof(tmp), "<%s%s@%d",
                     wbxml_tag_name(WBXML_TAG_PAGE(ev->tag), WBXML_TAG_TOKEN(ev->tag)),
                     ev->content ? "" : "/", ev->depth);
        tr_put(t, tmp, (size_t)n);
        break;
    case WBXML_EV_END:
        n = snprintf(tmp, sizeof(tmp), ">%d", ev->depth);
        tr_put(t, tmp, (size_t)n);
        break;
    case WBXML_EV_TEXT:
    case WBXML_EV_OPAQUE:
        /* Pieces concatenate; the markers show the pieces' ends only. */
        if (ev->first)
            tr_put(t, ev->type == WBXML_EV_TEXT ? "[" : "{", 1);
        tr_put(t, (const char *)ev->data, ev->len);
        if (ev->last)
            tr_put(t, ev->type == WBXML_EV_TEXT ? "]" : "}", 1);
        break;
    }
    return 0;
}

/* Decode buf fed in pieces of `step` bytes (0 = whole); returns the error. */
static int decode_steps(const uint8_t *buf, size_t len, size_t step, struct trace *t, uint64_t *off)
{
    struct wbxml_dec d;
    int rc = 0;
    t->len = 0;
    t->buf[0] = '\0';
    wbxml_dec_init(&d, trace_cb, t);
    if (step == 0)
        step = len ? len : 1;
    for (size_t i = 0; i < len && rc == 0; i += step)
        rc = wbxml_dec_feed(&d, buf + i, len - i < step ? len - i : step);
    if (rc == 0)
        rc = wbxml_dec_finish(&d);
    *off = wbxml_dec_error_offset(&d);
    return rc;
}

/* Decode split once at `cut`. */
static int decode_split(const uint8_t *buf, size_t len, size_t cut, struct trace *t, uint64_t *off)
{
    struct wbxml_dec d;
    t->len = 0;
    t->buf[0] = '\0';
    wbxml_dec_init(&d, trace_cb, t);
    int rc = wbxml_dec_feed(&d, buf, cut);
    if (rc == 0)
        rc = wbxml_dec_feed(&d, buf + cut, len - cut);
    if (rc == 0)
        rc = wbxml_dec_finish(&d);
    *off = wbxml_dec_error_offset(&d);
    return rc;
}

/* Same result (events, error, offset) for every way of cutting the input. */
static void check_all_splits(const uint8_t *buf, size_t len, int want_rc, uint64_t want_off)
{
    static struct trace whole, part;
    uint64_t off;
    int rc = decode_steps(buf, len, 0, &whole, &off);
    assert_int_equal(rc, want_rc);
    if (want_rc)
        assert_int_equal(off, want_off);
    for (size_t cut = 0; cut <= len; cut++) {
        rc = decode_split(buf, len, cut, &part, &off);
        assert_int_equal(rc, want_rc);
        if (want_rc)
            assert_int_equal(off, want_off);
        assert_string_equal(part.buf, whole.buf);
    }
    for (size_t step = 1; step <= 3; step++) {
        rc = decode_steps(buf, len, step, &part, &off);
        assert_int_equal(rc, want_rc);
        if (want_rc)
            assert_int_equal(off, want_off);
        assert_string_equal(part.buf, whole.buf);
    }
}

static void test_spec_example(void **state)
{
    static struct trace t;
    uint64_t off;
    assert_int_equal(decode_steps(spec_example, sizeof(spec_example), 0, &t, &off), 0);
    assert_string_equal(
        t.buf, "<Sync@1<Collections@2<Collection@3<Class@4[Contacts]>4<SyncKey@4[2]>4"
               "<CollectionId@4[2]>4<Status@4[1]>4<Commands@4<Add@5<ServerId@6[2:1]>6"
               "<ApplicationData@6<Body@7<Type@8[1]>8<EstimatedDataSize@8[0]>8<Truncated@8[1]>8>7"
               "<FileAs@7[Funk, Don]>7<FirstName@7[Don]>7<LastName@7[Funk]>7"
               "<NativeBodyType@7[1]>7>6>5>4>3>2>1");
    check_all_splits(spec_example, sizeof(spec_example), 0, 0);
}

static void test_spec_example_xml(void **state)
{
    char *xml;
    size_t xlen;
    uint64_t off;
    uint8_t *back;
    size_t blen;
    const char *why;
    assert_int_equal(wbxml_to_xml(spec_example, sizeof(spec_example), &xml, &xlen, &off), 0);
    assert_non_null(strstr(xml, "<Sync xmlns=\"AirSync\""));
    assert_non_null(strstr(xml, "xmlns:airsyncbase=\"AirSyncBase\""));
    assert_non_null(strstr(xml, "<contacts:FileAs>Funk, Don</contacts:FileAs>"));
    assert_int_equal(wbxml_from_xml(xml, xlen, &back, &blen, &off, &why), 0);
    assert_int_equal(blen, sizeof(spec_example));
    assert_memory_equal(back, spec_example, blen);
    free(back);
    free(xml);
}

struct bad_case {
    const char *name;
    const uint8_t *bytes;
    size_t len;
    int rc;
    uint64_t off;
};

#define HDR 0x03, 0x01, 0x6A, 0x00
#define BAD(name, rc, off, ...)                                                                    \
    {                                                                                              \
        name, (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__}), rc, off      \
    }

static void test_malformed(void **state)
{
    static uint8_t deep[4 + WBXML_MAX_DEPTH + 1];
    const struct bad_case cases[] = {
        BAD("bad version", WBXML_E_HEADER, 0, 0x07, 0x01, 0x6A, 0x00, 0x45, 0x01),
        BAD("header only", WBXML_E_EMPTY, 4, HDR),
        BAD("header cut in charset", WBXML_E_MBUINT, 2, 0x03, 0x01, 0x81),
        BAD("header cut before charset", WBXML_E_HEADER, 2, 0x03, 0x01),
        BAD("string table", WBXML_E_STRTBL, 3, 0x03, 0x01, 0x6A, 0x02, 'a', 0, 0x45, 0x01),
        BAD("oversized public id", WBXML_E_MBUINT, 1, 0x03, 0x90, 0x80, 0x80, 0x80, 0x00, 0x6A,
            0x00),
        BAD("unknown page", WBXML_E_PAGE, 5, HDR, 0x00, 0x1A, 0x45, 0x01),
        BAD("unknown token", WBXML_E_TOKEN, 5, HDR, 0x45, 0x51, 0x01, 0x01),
        BAD("AirNotify has no tokens", WBXML_E_TOKEN, 6, HDR, 0x00, 0x03, 0x45, 0x01),
        BAD("attributes", WBXML_E_UNSUPPORTED, 4, HDR, 0xC5, 0x01, 0x01),
        BAD("entity", WBXML_E_UNSUPPORTED, 5, HDR, 0x45, 0x02, 0x41, 0x01),
        BAD("literal", WBXML_E_UNSUPPORTED, 5, HDR, 0x45, 0x04, 0x00, 0x01),
        BAD("extension", WBXML_E_UNSUPPORTED, 5, HDR, 0x45, 0xC0, 0x01),
        BAD("unterminated string", WBXML_E_STRING, 5, HDR, 0x45, 0x03, 'a', 'b'),
        BAD("opaque past end", WBXML_E_OPAQUE, 5, HDR, 0x45, 0xC3, 0x05, 'a', 'b'),
        BAD("opaque length cut", WBXML_E_MBUINT, 6, HDR, 0x45, 0xC3, 0x81),
        BAD("opaque length missing", WBXML_E_MBUINT, 5, HDR, 0x45, 0xC3),
        BAD("opaque length over 32 bits", WBXML_E_MBUINT, 6, HDR, 0x45, 0xC3, 0x90, 0x80, 0x80,
            0x80, 0x00),
        BAD("END at top", WBXML_E_END, 4, HDR, 0x01),
        BAD("trailing bytes", WBXML_E_TRAILING, 5, HDR, 0x05, 0x05),
        BAD("trailing after content root", WBXML_E_TRAILING, 6, HDR, 0x45, 0x01, 0x00),
        BAD("string outside root", WBXML_E_CONTENT, 4, HDR, 0x03, 'a', 0x00),
        BAD("opaque outside root", WBXML_E_CONTENT, 4, HDR, 0xC3, 0x00),
        BAD("open element", WBXML_E_TRUNCATED, 7, HDR, 0x45, 0x5C, 0x01),
        BAD("switch page cut", WBXML_E_TRUNCATED, 5, HDR, 0x45, 0x00),
        BAD("empty body", WBXML_E_EMPTY, 0, 0x00),
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct bad_case *c = &cases[i];
        size_t len = strcmp(c->name, "empty body") == 0 ? 0 : c->len;
        print_message("case: %s\n", c->name);
        check_all_splits(c->bytes, len, c->rc, c->off);
        uint64_t off;
        assert_int_equal(wbxml_check(c->bytes, len, &off), c->rc);
        assert_int_equal(off, c->off);
        /* The XML face reports the same error and offset. */
        char *xml;
        assert_int_equal(wbxml_to_xml(c->bytes, len, &xml, NULL, &off), c->rc);
        assert_int_equal(off, c->off);
        assert_null(xml);
        assert_non_null(wbxml_strerror(c->rc));
    }
    /* Depth: WBXML_MAX_DEPTH nested Sync tags are fine, one more is not. */
    memcpy(deep, (const uint8_t[]){HDR}, 4);
    memset(deep + 4, 0x45, sizeof(deep) - 4);
    check_all_splits(deep, sizeof(deep), WBXML_E_DEPTH, 4 + WBXML_MAX_DEPTH);
}

static void test_opaque_and_empty(void **state)
{
    /* <Sync><SyncKey/><Status>OPAQUE "hi" + empty OPAQUE</Status></Sync> */
    const uint8_t doc[] = {HDR, 0x45, 0x0B, 0x4E, 0xC3, 0x02, 'h', 'i', 0xC3, 0x00, 0x01, 0x01};
    static struct trace t;
    uint64_t off;
    assert_int_equal(decode_steps(doc, sizeof(doc), 0, &t, &off), 0);
    assert_string_equal(t.buf, "<Sync@1<SyncKey/@2>2<Status@2{hi}{}>2>1");
    check_all_splits(doc, sizeof(doc), 0, 0);
}

static int stop_cb(void *ud, const struct wbxml_ev *ev)
{
    int *n = ud;
    return ++*n == 3;
}

static void test_stop(void **state)
{
    struct wbxml_dec d;
    int n = 0;
    wbxml_dec_init(&d, stop_cb, &n);
    assert_int_equal(wbxml_dec_feed(&d, spec_example, sizeof(spec_example)), WBXML_E_STOPPED);
    assert_int_equal(wbxml_dec_error_offset(&d), 6); /* third event: <Collection> */
    assert_int_equal(wbxml_dec_feed(&d, spec_example, 1), WBXML_E_STOPPED);
}

static void test_filter(void **state)
{
    static struct trace t;
    struct wbxml_dec d;
    /* Only text, and tags at depth <= 2 or in page 17 (AirSyncBase). */
    for (size_t step = 1; step <= sizeof(spec_example); step += 7) {
        t.len = 0;
        t.buf[0] = '\0';
        wbxml_dec_init(&d, trace_cb, &t);
        wbxml_dec_filter(&d, (1u << WBXML_EV_START) | (1u << WBXML_EV_END) | (1u << WBXML_EV_TEXT),
                         2, 1u << WBXML_PAGE_AIRSYNCBASE);
        for (size_t i = 0; i < sizeof(spec_example); i += step)
            assert_int_equal(
                wbxml_dec_feed(&d, spec_example + i,
                               sizeof(spec_example) - i < step ? sizeof(spec_example) - i : step),
                0);
        assert_int_equal(wbxml_dec_finish(&d), 0);
        assert_string_equal(t.buf,
                            "<Sync@1<Collections@2[Contacts][2][2][1][2:1]<Body@7<Type@8[1]>8"
                            "<EstimatedDataSize@8[0]>8<Truncated@8[1]>8>7[Funk, Don][Don]"
                            "[Funk]<NativeBodyType@7[1]>7>2>1");
    }
    /* Nothing at all: the decoder still checks everything. */
    wbxml_dec_init(&d, trace_cb, &t);
    wbxml_dec_filter(&d, 0, 0, 0);
    t.len = 0;
    t.buf[0] = '\0';
    assert_int_equal(wbxml_dec_feed(&d, spec_example, sizeof(spec_example) - 1), 0);
    assert_int_equal(wbxml_dec_finish(&d), WBXML_E_TRUNCATED);
    assert_string_equal(t.buf, "");
}

static void test_tables(void **state)
{
    assert_string_equal(wbxml_page_name(WBXML_PAGE_FIND), "Find");
    assert_string_equal(wbxml_page_name(WBXML_PAGE_GAL), "Gal");
    assert_null(wbxml_page_name(26));
    assert_int_equal(wbxml_page_by_name("AirSync:", 8), 0);
    assert_int_equal(wbxml_page_by_name("airsyncbase", 11), 17);
    assert_int_equal(wbxml_page_by_name("RightsManagement", 16), 24);
    assert_int_equal(wbxml_page_by_name("Nope", 4), -1);
    assert_string_equal(wbxml_tag_name(14, 0x3B), "AccountOnlyRemoteWipe");
    assert_string_equal(wbxml_tag_name(25, 0x22), "Picture");
    assert_string_equal(wbxml_tag_name(18, 0x2B), "RightsManagementInformation");
    assert_null(wbxml_tag_name(0, 0x11));
    assert_null(wbxml_tag_name(3, 0x05));
    assert_null(wbxml_tag_name(14, 0x12));
    assert_int_equal(wbxml_tag_by_name(0, "HeartbeatInterval", 17), 0x29);
    assert_int_equal(wbxml_tag_by_name(13, "HeartbeatInterval", 17), 0x08);
    assert_int_equal(wbxml_tag_by_name(7, "FolderSync", 10), 0x16);
    assert_int_equal(wbxml_tag_by_name(7, "foldersync", 10), -1);
    /* The decoder accepts exactly the tokens the name tables define. */
    int defined = 0;
    for (unsigned page = 0; page < WBXML_NPAGES; page++)
        for (unsigned tok = 5; tok < 64; tok++) {
            const uint8_t doc[] = {HDR, 0x00, (uint8_t)page, (uint8_t)tok};
            int rc = wbxml_check(doc, sizeof(doc), NULL);
            assert_int_equal(rc, wbxml_tag_name(page, tok) ? 0 : WBXML_E_TOKEN);
            defined += rc == 0;
        }
    assert_int_equal(defined, 608); /* MS-ASWBXML 2.1.2.1, pages 0..25 */
    /* Every named constant in wbxml.h is a real tag. */
    const uint16_t named[] = {WBXML_AIRSYNC_SYNC,
                              WBXML_PING_HEARTBEATINTERVAL,
                              WBXML_PROV_ACCOUNTONLYREMOTEWIPE,
                              WBXML_SETTINGS_MOBILEOPERATOR,
                              WBXML_CM_STATUS,
                              WBXML_FIND_STATUS,
                              WBXML_FH_FOLDERSYNC};
    for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++)
        assert_non_null(wbxml_tag_name(WBXML_TAG_PAGE(named[i]), WBXML_TAG_TOKEN(named[i])));
}

static void test_writer(void **state)
{
    struct wbxml_w w;
    const uint8_t *out;
    size_t len;
    wbxml_w_init(&w, NULL, 0);
    wbxml_w_start(&w, WBXML_PROV_PROVISION);             /* 00 0E 45 */
    wbxml_w_start(&w, WBXML_SETTINGS_DEVICEINFORMATION); /* 00 12 56 */
    wbxml_w_end(&w);                                     /* empty: 56 -> 16 */
    wbxml_w_start(&w, WBXML_PROV_STATUS);                /* 00 0E 4B */
    wbxml_w_str(&w, "1", 1);
    wbxml_w_str(&w, "23", 2); /* merged into one STR_I */
    wbxml_w_end(&w);
    wbxml_w_start(&w, WBXML_PROV_DATA);
    wbxml_w_opaque(&w, "\x00\x01", 2);
    wbxml_w_end(&w);
    wbxml_w_end(&w);
    assert_int_equal(wbxml_w_finish(&w, &out, &len), 0);
    const uint8_t want[] = {HDR, 0x00, 0x0E, 0x45, 0x00, 0x12, 0x16, 0x00, 0x0E, 0x4B, 0x03, '1',
                            '2', '3',  0x00, 0x01, 0x4A, 0xC3, 0x02, 0x00, 0x01, 0x01, 0x01};
    assert_int_equal(len, sizeof(want));
    assert_memory_equal(out, want, len);
    assert_int_equal(wbxml_check(out, len, NULL), 0);
    wbxml_w_free(&w);

    /* Misuse is sticky and reported once at the end. */
    wbxml_w_init(&w, NULL, 0);
    wbxml_w_start(&w, WBXML_TAG(0, 0x11)); /* no such tag */
    wbxml_w_start(&w, WBXML_AIRSYNC_SYNC);
    assert_int_equal(wbxml_w_finish(&w, &out, &len), WBXML_E_ARG);
    wbxml_w_free(&w);
    wbxml_w_init(&w, NULL, 0);
    wbxml_w_start(&w, WBXML_AIRSYNC_SYNC);
    assert_int_equal(wbxml_w_str(&w, "a\0b", 3), WBXML_E_ARG);
    wbxml_w_free(&w);
    wbxml_w_init(&w, NULL, 0);
    assert_int_equal(wbxml_w_end(&w), WBXML_E_ARG);
    wbxml_w_free(&w);
    wbxml_w_init(&w, NULL, 0);
    wbxml_w_start(&w, WBXML_AIRSYNC_SYNC);
    assert_int_equal(wbxml_w_finish(&w, &out, &len), WBXML_E_ARG); /* still open */
    wbxml_w_free(&w);
    wbxml_w_init(&w, NULL, 0);
    assert_int_equal(wbxml_w_finish(&w, &out, &len), WBXML_E_ARG); /* no root */
    wbxml_w_free(&w);
    wbxml_w_init(&w, NULL, 0);
    wbxml_w_empty(&w, WBXML_AIRSYNC_SYNC);
    assert_int_equal(wbxml_w_empty(&w, WBXML_AIRSYNC_SYNC), WBXML_E_ARG); /* second root */
    wbxml_w_free(&w);
    wbxml_w_init(&w, NULL, 0);
    for (int i = 0; i < WBXML_MAX_DEPTH; i++)
        assert_int_equal(wbxml_w_start(&w, WBXML_AIRSYNC_SYNC), 0);
    assert_int_equal(wbxml_w_start(&w, WBXML_AIRSYNC_SYNC), WBXML_E_DEPTH);
    wbxml_w_free(&w);

    /* A caller buffer that is too small. */
    uint8_t small[8];
    wbxml_w_init(&w, small, sizeof(small));
    wbxml_w_text(&w, WBXML_AIRSYNC_SYNC, "hello");
    assert_int_equal(wbxml_w_finish(&w, &out, &len), WBXML_E_NOSPACE);
    uint8_t big[64];
    wbxml_w_init(&w, big, sizeof(big));
    wbxml_w_uint(&w, WBXML_AIRSYNC_SYNC, 4294967295ul);
    assert_int_equal(wbxml_w_finish(&w, &out, &len), 0);
    assert_ptr_equal(out, big);
    assert_int_equal(len, 4 + 1 + 1 + 10 + 1 + 1);

    /* Large opaque: multi-byte length. */
    static uint8_t blob[300];
    memset(blob, 0xAB, sizeof(blob));
    wbxml_w_init(&w, NULL, 0);
    wbxml_w_start(&w, WBXML_AIRSYNC_SYNC);
    wbxml_w_opaque(&w, blob, sizeof(blob));
    wbxml_w_end(&w);
    assert_int_equal(wbxml_w_finish(&w, &out, &len), 0);
    assert_int_equal(out[6], 0x82); /* 300 = 0x82 0x2C */
    assert_int_equal(out[7], 0x2C);
    static struct trace t;
    uint64_t off;
    assert_int_equal(decode_steps(out, len, 7, &t, &off), 0);
    wbxml_w_free(&w);
}

/* A 14.1 Provision request carrying settings:DeviceInformation. */
static size_t build_provision_request(struct wbxml_w *w, const char *model)
{
    const uint8_t *out;
    size_t len;
    wbxml_w_init(w, NULL, 0);
    wbxml_w_start(w, WBXML_PROV_PROVISION);
    wbxml_w_start(w, WBXML_SETTINGS_DEVICEINFORMATION);
    wbxml_w_start(w, WBXML_SETTINGS_SET);
    wbxml_w_text(w, WBXML_SETTINGS_MODEL, model);
    wbxml_w_text(w, WBXML_SETTINGS_IMEI, "356938035643809");
    wbxml_w_text(w, WBXML_SETTINGS_FRIENDLYNAME, "Alice's phone");
    wbxml_w_text(w, WBXML_SETTINGS_OS, "iOS 17.4.1");
    wbxml_w_text(w, WBXML_SETTINGS_OSLANGUAGE, "en-US");
    wbxml_w_text(w, WBXML_SETTINGS_PHONENUMBER, "+15555550100");
    wbxml_w_text(w, WBXML_SETTINGS_USERAGENT, "Apple-iPhone15C2/2104.84");
    wbxml_w_text(w, WBXML_SETTINGS_ENABLEOUTBOUNDSMS, "0");
    wbxml_w_text(w, WBXML_SETTINGS_MOBILEOPERATOR, "Contoso Mobile");
    wbxml_w_end(w);
    wbxml_w_end(w);
    wbxml_w_start(w, WBXML_PROV_POLICIES);
    wbxml_w_start(w, WBXML_PROV_POLICY);
    wbxml_w_text(w, WBXML_PROV_POLICYTYPE, "MS-EAS-Provisioning-WBXML");
    wbxml_w_end(w);
    wbxml_w_end(w);
    wbxml_w_end(w);
    assert_int_equal(wbxml_w_finish(w, &out, &len), 0);
    return len;
}

static void test_extract_provision(void **state)
{
    struct wbxml_w w;
    struct wbxml_facts f;
    size_t len = build_provision_request(&w, "iPhone15,2");
    uint64_t off;
    assert_int_equal(wbxml_extract(w.buf, len, &f, &off), 0);
    assert_int_equal(f.root, WBXML_PROV_PROVISION);
    assert_true(f.has_devinfo);
    assert_string_equal(f.devinfo[WBXML_DI_MODEL], "iPhone15,2");
    assert_string_equal(f.devinfo[WBXML_DI_IMEI], "356938035643809");
    assert_string_equal(f.devinfo[WBXML_DI_FRIENDLYNAME], "Alice's phone");
    assert_string_equal(f.devinfo[WBXML_DI_OS], "iOS 17.4.1");
    assert_string_equal(f.devinfo[WBXML_DI_OSLANGUAGE], "en-US");
    assert_string_equal(f.devinfo[WBXML_DI_PHONENUMBER], "+15555550100");
    assert_string_equal(f.devinfo[WBXML_DI_USERAGENT], "Apple-iPhone15C2/2104.84");
    assert_string_equal(f.devinfo[WBXML_DI_ENABLEOUTBOUNDSMS], "0");
    assert_string_equal(f.devinfo[WBXML_DI_MOBILEOPERATOR], "Contoso Mobile");
    assert_int_equal(f.devinfo_present, (1u << WBXML_DI_NFIELDS) - 1);
    assert_int_equal(f.devinfo_truncated, 0);
    assert_string_equal(f.policy_type, "MS-EAS-Provisioning-WBXML");
    assert_string_equal(f.policy_key, "");
    assert_int_equal(f.policy_status, -1);
    assert_int_equal(f.status, -1);
    assert_false(f.remote_wipe);
    assert_string_equal(wbxml_devinfo_name(WBXML_DI_OSLANGUAGE), "OSLanguage");

    /* The same facts whatever the feeding. */
    for (size_t step = 1; step < 9; step++) {
        struct wbxml_extractor x;
        struct wbxml_facts g;
        wbxml_extract_init(&x, &g);
        for (size_t i = 0; i < len; i += step)
            assert_int_equal(wbxml_extract_feed(&x, w.buf + i, len - i < step ? len - i : step), 0);
        assert_int_equal(wbxml_extract_finish(&x), 0);
        /* Field by field: the bytes after a string's NUL are unspecified. */
        assert_int_equal(f.root, g.root);
        assert_int_equal(f.has_devinfo, g.has_devinfo);
        for (int i = 0; i < WBXML_DI_NFIELDS; i++)
            assert_string_equal(f.devinfo[i], g.devinfo[i]);
        assert_int_equal(f.devinfo_present, g.devinfo_present);
        assert_int_equal(f.devinfo_truncated, g.devinfo_truncated);
        assert_string_equal(f.policy_type, g.policy_type);
        assert_string_equal(f.policy_key, g.policy_key);
        assert_int_equal(f.heartbeat, g.heartbeat);
        assert_int_equal(f.policy_status, g.policy_status);
        assert_int_equal(f.status, g.status);
        assert_int_equal(f.remote_wipe, g.remote_wipe);
        assert_int_equal(f.remote_wipe_status, g.remote_wipe_status);
        assert_int_equal(f.account_only_remote_wipe, g.account_only_remote_wipe);
        assert_int_equal(f.account_only_remote_wipe_status, g.account_only_remote_wipe_status);
    }
    wbxml_w_free(&w);

    /* A value longer than the field is cut and flagged. */
    char longmodel[300];
    memset(longmodel, 'M', sizeof(longmodel) - 1);
    longmodel[sizeof(longmodel) - 1] = '\0';
    len = build_provision_request(&w, longmodel);
    assert_int_equal(wbxml_extract(w.buf, len, &f, &off), 0);
    assert_int_equal(strlen(f.devinfo[WBXML_DI_MODEL]), WBXML_FIELD_MAX - 1);
    assert_int_equal(f.devinfo_truncated, 1u << WBXML_DI_MODEL);
    wbxml_w_free(&w);
}

static void test_extract_answers(void **state)
{
    struct wbxml_w w;
    struct wbxml_facts f;
    const uint8_t *out;
    size_t len;

    /* Provision acknowledgement answer. */
    wbxml_w_init(&w, NULL, 0);
    wbxml_w_start(&w, WBXML_PROV_PROVISION);
    wbxml_w_text(&w, WBXML_PROV_STATUS, "1");
    wbxml_w_start(&w, WBXML_PROV_POLICIES);
    wbxml_w_start(&w, WBXML_PROV_POLICY);
    wbxml_w_text(&w, WBXML_PROV_POLICYTYPE, "MS-EAS-Provisioning-WBXML");
    wbxml_w_text(&w, WBXML_PROV_STATUS, "2");
    wbxml_w_text(&w, WBXML_PROV_POLICYKEY, "3942919513");
    wbxml_w_end(&w);
    wbxml_w_end(&w);
    wbxml_w_start(&w, WBXML_PROV_REMOTEWIPE);
    wbxml_w_text(&w, WBXML_PROV_STATUS, "1");
    wbxml_w_end(&w);
    wbxml_w_start(&w, WBXML_PROV_ACCOUNTONLYREMOTEWIPE);
    wbxml_w_text(&w, WBXML_PROV_STATUS, "2");
    wbxml_w_end(&w);
    wbxml_w_end(&w);
    assert_int_equal(wbxml_w_finish(&w, &out, &len), 0);
    assert_int_equal(wbxml_extract(out, len, &f, NULL), 0);
    assert_int_equal(f.status, 1);
    assert_int_equal(f.policy_status, 2);
    assert_string_equal(f.policy_key, "3942919513");
    assert_true(f.remote_wipe);
    assert_int_equal(f.remote_wipe_status, 1);
    assert_true(f.account_only_remote_wipe);
    assert_int_equal(f.account_only_remote_wipe_status, 2);
    assert_false(f.has_devinfo);
    wbxml_w_free(&w);

    /* Ping with a heartbeat; Sync with one; a bad number. */
    wbxml_w_init(&w, NULL, 0);
    wbxml_w_start(&w, WBXML_PING_PING);
    wbxml_w_text(&w, WBXML_PING_HEARTBEATINTERVAL, "3540");
    wbxml_w_end(&w);
    assert_int_equal(wbxml_w_finish(&w, &out, &len), 0);
    assert_int_equal(wbxml_extract(out, len, &f, NULL), 0);
    assert_int_equal(f.root, WBXML_PING_PING);
    assert_int_equal(f.heartbeat, 3540);
    wbxml_w_free(&w);
    wbxml_w_init(&w, NULL, 0);
    wbxml_w_start(&w, WBXML_AIRSYNC_SYNC);
    wbxml_w_text(&w, WBXML_AIRSYNC_HEARTBEATINTERVAL, "x60");
    wbxml_w_text(&w, WBXML_AIRSYNC_STATUS, "129");
    wbxml_w_end(&w);
    assert_int_equal(wbxml_w_finish(&w, &out, &len), 0);
    assert_int_equal(wbxml_extract(out, len, &f, NULL), 0);
    assert_int_equal(f.heartbeat, -1);
    assert_int_equal(f.status, 129);
    wbxml_w_free(&w);

    /* Settings request with DeviceInformation; malformed body reports offset. */
    wbxml_w_init(&w, NULL, 0);
    wbxml_w_start(&w, WBXML_SETTINGS_SETTINGS);
    wbxml_w_start(&w, WBXML_SETTINGS_DEVICEINFORMATION);
    wbxml_w_start(&w, WBXML_SETTINGS_SET);
    wbxml_w_text(&w, WBXML_SETTINGS_MODEL, "SM-S918B");
    wbxml_w_empty(&w, WBXML_SETTINGS_IMEI);
    wbxml_w_end(&w);
    wbxml_w_end(&w);
    wbxml_w_text(&w, WBXML_SETTINGS_MODEL, "outside DeviceInformation");
    wbxml_w_end(&w);
    assert_int_equal(wbxml_w_finish(&w, &out, &len), 0);
    assert_int_equal(wbxml_extract(out, len, &f, NULL), 0);
    assert_string_equal(f.devinfo[WBXML_DI_MODEL], "SM-S918B");
    assert_int_equal(f.devinfo_present, (1u << WBXML_DI_MODEL) | (1u << WBXML_DI_IMEI));
    uint64_t off;
    assert_int_equal(wbxml_extract(out, len - 2, &f, &off), WBXML_E_TRUNCATED);
    assert_int_equal(off, len - 2);
    wbxml_w_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_example),
        cmocka_unit_test(test_spec_example_xml),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_opaque_and_empty),
        cmocka_unit_test(test_stop),
        cmocka_unit_test(test_filter),
        cmocka_unit_test(test_tables),
        cmocka_unit_test(test_writer),
        cmocka_unit_test(test_extract_provision),
        cmocka_unit_test(test_extract_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
