/* test_bench_hist: the bench histogram's buckets, percentiles and merge, and
 * the bench WBXML writer/scanner and query forms exsim and easload rely on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "bench/lib/beas.h"
#include "bench/lib/hist.h"

static struct hist h1, h2;

static void test_exact_small(void **state)
{
    for (uint64_t v = 0; v < 256; v++) {
        assert_int_equal(hist_index(v), v);
        assert_int_equal(hist_bucket_top(hist_index(v)), v);
    }
}

/* Every value lands in a bucket whose top is >= it and within 1/128. */
static void test_relative_error(void **state)
{
    unsigned prev = 0;
    for (uint64_t v = 1; v < (1ull << 44); v = v + v / 7 + 1) {
        unsigned i = hist_index(v);
        uint64_t top = hist_bucket_top(i);
        assert_true(i >= prev);
        assert_true(i < HIST_BUCKETS);
        assert_true(top >= v);
        assert_true((double)(top - v) <= (double)v / 128.0 + 1);
        if (i > 0)
            assert_true(hist_bucket_top(i - 1) < v);
        prev = i;
    }
}

static void test_percentiles(void **state)
{
    hist_reset(&h1);
    assert_int_equal(hist_percentile(&h1, 50), 0);
    for (uint64_t v = 1; v <= 10000; v++)
        hist_record(&h1, v);
    assert_int_equal(h1.count, 10000);
    assert_int_equal(h1.min, 1);
    assert_int_equal(h1.max, 10000);
    uint64_t p50 = hist_percentile(&h1, 50), p99 = hist_percentile(&h1, 99);
    uint64_t p999 = hist_percentile(&h1, 99.9);
    assert_true(p50 >= 5000 && p50 <= 5000 + 5000 / 128 + 1);
    assert_true(p99 >= 9900 && p99 <= 9900 + 9900 / 128 + 1);
    assert_true(p999 >= 9990 && p999 <= 10000);
    assert_int_equal(hist_percentile(&h1, 100), 10000);
    assert_int_equal(hist_percentile(&h1, 0), 1);
    assert_true(hist_mean(&h1) > 5000.4 && hist_mean(&h1) < 5000.6);
}

static void test_merge_and_clamp(void **state)
{
    hist_reset(&h1);
    hist_reset(&h2);
    for (int i = 0; i < 99; i++)
        hist_record(&h1, 100);
    hist_record(&h2, UINT64_MAX); /* clamped into the top bucket, max kept */
    hist_merge(&h1, &h2);
    assert_int_equal(h1.count, 100);
    assert_int_equal(hist_percentile(&h1, 50), 100);
    assert_int_equal(hist_percentile(&h1, 99), 100);
    assert_int_equal(h1.max, UINT64_MAX);
    assert_true(hist_percentile(&h1, 100) > (1ull << 47));
}

static void test_wbxml_roundtrip(void **state)
{
    struct bwx w;
    bwx_begin(&w);
    bwx_open(&w, BWX_PING, 0x05);
    bwx_text(&w, BWX_PING, 0x08, "480");
    bwx_close(&w);
    assert_int_equal(w.err, 0);
    static const unsigned char want[] = {0x03, 0x01, 0x6a, 0x00, 0x00, 0x0d, 0x45, 0x48,
                                         0x03, '4',  '8',  '0',  0x00, 0x01, 0x01};
    assert_int_equal(w.len, sizeof(want));
    assert_memory_equal(w.buf, want, sizeof(want));
    assert_int_equal(bwx_check(w.buf, w.len), 0);
    char hb[8];
    assert_int_equal(bwx_find_text(w.buf, w.len, BWX_PING, 0x08, hb, sizeof(hb)), 3);
    assert_string_equal(hb, "480");
    assert_int_equal(bwx_find_text(w.buf, w.len, BWX_PING, 0x07, hb, sizeof(hb)), -1);
    assert_int_equal(bwx_has(w.buf, w.len, BWX_PING, 0x05), 1);
    /* truncated and unbalanced documents are refused */
    assert_int_equal(bwx_check(w.buf, w.len - 1), -1);
    assert_int_equal(bwx_check(w.buf, 10), -1);
    assert_int_equal(bwx_check(w.buf, 3), -1);
    bwx_free(&w);
}

static void test_queries(void **state)
{
    struct beas_query q;
    /* MS-ASHTTP's own example: Sync, 14.0, device v140Device, SmartPhone */
    const char *ex = "jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l";
    assert_int_equal(beas_parse_query(ex, strlen(ex), &q), 0);
    assert_string_equal(q.cmd, "Sync");
    assert_string_equal(q.proto, "14.0");
    assert_string_equal(q.device_id, "v140Device");
    assert_string_equal(q.device_type, "SmartPhone");
    assert_int_equal(q.base64, 1);

    char buf[512];
    assert_true(beas_b64_query(buf, sizeof(buf), "14.1", "Ping", "bob@example.com", "DEV42",
                               "Android") > 0);
    assert_int_equal(beas_parse_query(buf, strlen(buf), &q), 0);
    assert_string_equal(q.cmd, "Ping");
    assert_string_equal(q.proto, "14.1");
    assert_string_equal(q.user, "bob@example.com");
    assert_string_equal(q.device_id, "DEV42");

    assert_true(beas_plain_query(buf, sizeof(buf), "FolderSync", "al", "D1", "iPhone") > 0);
    assert_int_equal(beas_parse_query(buf, strlen(buf), &q), 0);
    assert_string_equal(q.cmd, "FolderSync");
    assert_string_equal(q.device_type, "iPhone");
    assert_int_equal(q.base64, 0);

    assert_int_equal(beas_parse_query("%%%", 3, &q), -1);
    assert_int_equal(beas_parse_query("User=x", 6, &q), -1);
    assert_int_equal(beas_b64_query(buf, sizeof(buf), "14.1", "NoSuchCmd", "u", "d", "t"), -1);
    assert_int_equal(beas_cmd_code("ItemOperations"), 19);
    assert_string_equal(beas_cmd_name(20), "Provision");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_small),     cmocka_unit_test(test_relative_error),
        cmocka_unit_test(test_percentiles),     cmocka_unit_test(test_merge_and_clamp),
        cmocka_unit_test(test_wbxml_roundtrip), cmocka_unit_test(test_queries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
