/*
 * test_sbuf: the string builder (common/sbuf.h): appends of every kind,
 * growth past the first block, reset, take and free, and that an allocation
 * failure sticks (later appends are no-ops, take gives NULL).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/sbuf.h"

static void test_append(void **state)
{
    (void)state;
    struct sbuf b = SBUF_INIT;
    sbuf_str(&b, "<a>");
    sbuf_char(&b, 'x');
    sbuf_put(&b, "yz!", 2);
    sbuf_printf(&b, "%d-%s", 42, "ok");
    sbuf_put(&b, "", 0);
    assert_false(b.oom);
    assert_string_equal(b.p, "<a>xyz42-ok");
    assert_int_equal(b.len, strlen("<a>xyz42-ok"));
    /* bytes, NUL included, go in as they are */
    sbuf_put(&b, "\0q", 2);
    assert_int_equal(b.len, 13);
    assert_memory_equal(b.p + 11, "\0q", 3);
    sbuf_free(&b);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
}

static void test_growth(void **state)
{
    (void)state;
    struct sbuf b = SBUF_INIT;
    char chunk[100];
    memset(chunk, 'k', sizeof(chunk));
    for (int i = 0; i < 1000; i++)
        sbuf_put(&b, chunk, sizeof(chunk));
    sbuf_printf(&b, "%5000s", "end");
    assert_false(b.oom);
    assert_int_equal(b.len, 100000 + 5000);
    assert_true(b.cap > b.len);
    assert_int_equal(b.p[b.len], '\0');
    assert_int_equal(b.p[99999], 'k');
    assert_memory_equal(b.p + b.len - 3, "end", 3);
    sbuf_free(&b);
}

static void test_reset_and_take(void **state)
{
    (void)state;
    struct sbuf b = SBUF_INIT;
    size_t len = 99;
    /* nothing appended: take still gives a string */
    char *s = sbuf_take(&b, &len);
    assert_non_null(s);
    assert_string_equal(s, "");
    assert_int_equal(len, 0);
    free(s);
    sbuf_str(&b, "first");
    sbuf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.p, "");
    sbuf_str(&b, "second");
    s = sbuf_take(&b, &len);
    assert_string_equal(s, "second");
    assert_int_equal(len, 6);
    assert_null(b.p); /* handed over: b is empty again */
    assert_int_equal(b.len, 0);
    free(s);
    sbuf_reset(&b); /* on an empty buffer: harmless */
    sbuf_free(&b);
}

static void test_oom_sticks(void **state)
{
    (void)state;
    struct sbuf b = SBUF_INIT;
    sbuf_str(&b, "kept");
    /* a size no allocator gives: the failure is noted, not fatal */
    sbuf_put(&b, "x", SIZE_MAX - 8);
    assert_true(b.oom);
    sbuf_str(&b, "ignored");
    sbuf_printf(&b, "%s", "ignored");
    assert_int_equal(b.len, 4);
    size_t len = 99;
    assert_null(sbuf_take(&b, &len));
    assert_int_equal(len, 0);
    assert_false(b.oom); /* take leaves a fresh buffer */
    sbuf_str(&b, "again");
    assert_string_equal(b.p, "again");
    sbuf_free(&b);
}

static void test_xml(void **state)
{
    (void)state;
    struct sbuf b = SBUF_INIT;
    const char *s = "a<b> & \"c\"\n\xc3\xa9";
    sbuf_xml(&b, s, strlen(s));
    assert_string_equal(b.p, "a&lt;b&gt; &amp; &quot;c&quot;\n\xc3\xa9");
    sbuf_reset(&b);
    sbuf_xml(&b, "x&y", 1); /* only n bytes */
    sbuf_xml(&b, "", 0);
    assert_string_equal(b.p, "x");
    sbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_reset_and_take),
        cmocka_unit_test(test_oom_sticks),
        cmocka_unit_test(test_xml),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
