/*
 * fuzz_wbxml: libFuzzer target for the WBXML decoder, the extractor and the
 * XML reader/printer.
 *
 * The decoder and the extractor are fed the input whole and again in pieces
 * whose sizes come from the input itself; both runs must agree on the
 * result, the error offset and the facts read. Whatever decodes must print as XML, and printing is
 * a fixed point after one round: print(parse(print(parse(x)))) == print(parse(x)). The input is
 * also given to the XML reader as text. Seeds: tests/data/eas.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/eas/wbxml.h"

static int count_cb(void *ud, const struct wbxml_ev *ev)
{
    size_t *n = ud;
    (*n)++;
    if (ev->type == WBXML_EV_TEXT || ev->type == WBXML_EV_OPAQUE) {
        /* Touch every byte handed out, so ASan sees a bad pointer. */
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < ev->len; i++)
            sink ^= ev->data[i];
        (void)sink;
    }
    return 0;
}

static void check_splits(const uint8_t *data, size_t size)
{
    struct wbxml_dec d;
    size_t n1 = 0, n2 = 0;
    uint64_t off1, off2;

    wbxml_dec_init(&d, count_cb, &n1);
    int rc1 = wbxml_dec_feed(&d, data, size);
    if (rc1 == 0)
        rc1 = wbxml_dec_finish(&d);
    off1 = wbxml_dec_error_offset(&d);

    /* Piece sizes 1..8 taken from the bytes themselves. */
    wbxml_dec_init(&d, count_cb, &n2);
    int rc2 = 0;
    size_t i = 0, k = 0;
    while (i < size && rc2 == 0) {
        size_t step = 1 + (data[k++ % size] & 7);
        if (step > size - i)
            step = size - i;
        rc2 = wbxml_dec_feed(&d, data + i, step);
        i += step;
    }
    if (rc2 == 0)
        rc2 = wbxml_dec_finish(&d);
    off2 = wbxml_dec_error_offset(&d);
    if (rc1 != rc2 || off1 != off2 || (rc1 == 0 && n1 == 0))
        abort();
    (void)n2;
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

/* Extraction must read the same facts however the body is cut. */
static void check_extract_splits(const uint8_t *data, size_t size)
{
    static struct wbxml_facts whole, parts;
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
    if (rc1 == 0 && memcmp(&whole, &parts, sizeof(whole)) != 0)
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
