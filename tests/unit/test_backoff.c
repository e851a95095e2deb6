/* test_backoff: the failure counts and waits of common/backoff.h, at
 * chosen times: free failures, doubling to the cap, the window starting
 * over, forgetting, the bounded table, and the audit's ended windows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "common/backoff.h"

#define S 1000

static void test_doubling(void **state)
{
    (void)state;
    struct backoff_cfg c = {
        .free = 3, .window_ms = 600 * S, .base_ms = S, .max_ms = 8 * S, .max_keys = 16};
    struct backoff *b = backoff_new(&c);
    assert_non_null(b);
    int64_t t = 1000000;
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(backoff_wait(b, "root", t), 0);
        assert_int_equal(backoff_fail(b, "root", t), i);
    }
    assert_int_equal(backoff_wait(b, "root", t), 0); /* three were free */
    const int64_t waits[] = {1 * S, 2 * S, 4 * S, 8 * S, 8 * S};
    for (size_t i = 0; i < 5; i++) {
        backoff_fail(b, "root", t);
        assert_int_equal(backoff_wait(b, "root", t), waits[i]);
        assert_int_equal(backoff_wait(b, "other", t), 0); /* keys are apart */
        t += waits[i];
        assert_int_equal(backoff_wait(b, "root", t), 0);
    }
    struct backoff_state st[4];
    backoff_fail(b, "root", t);
    assert_int_equal(backoff_waiting(b, t, st, 4), 1);
    assert_string_equal(st[0].key, "root");
    assert_int_equal(st[0].failures, 9);
    assert_int_equal(st[0].refused, 5);
    /* Lifted: no wait, and the count starts from nothing. */
    assert_int_equal(backoff_forget(b, "root"), 1);
    assert_int_equal(backoff_forget(b, "root"), 0);
    assert_int_equal(backoff_wait(b, "root", t), 0);
    assert_int_equal(backoff_fail(b, "root", t), 1);
    /* The window ends: the count starts over, free again. */
    for (int i = 0; i < 5; i++)
        backoff_fail(b, "root", t);
    assert_true(backoff_wait(b, "root", t) > 0);
    t += 600 * S;
    assert_int_equal(backoff_wait(b, "root", t), 0);
    assert_int_equal(backoff_fail(b, "root", t), 1);
    assert_int_equal(backoff_wait(b, "root", t), 0);
    backoff_free(b);
}

static void test_bounded(void **state)
{
    (void)state;
    struct backoff_cfg c = {
        .free = 0, .window_ms = 60 * S, .base_ms = S, .max_ms = S, .max_keys = 8};
    struct backoff *b = backoff_new(&c);
    char k[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof(k), "name%d", i);
        backoff_fail(b, k, 5 * S);
    }
    struct backoff_state st[16];
    assert_int_equal(backoff_waiting(b, 5 * S, st, 16), 8); /* the newest eight */
    assert_true(backoff_wait(b, "name999", 5 * S) > 0);
    assert_int_equal(backoff_wait(b, "name0", 5 * S), 0);
    /* A long key is cut, not refused. */
    char longk[1000];
    memset(longk, 'x', sizeof(longk) - 1);
    longk[sizeof(longk) - 1] = '\0';
    backoff_fail(b, longk, 5 * S);
    assert_true(backoff_wait(b, longk, 5 * S) > 0);
    backoff_free(b);
}

/* The audit's use: no wait ever, the first failure of a window is number
 * 1, and the ended windows are taken once with their counts. */
static void test_ended(void **state)
{
    (void)state;
    struct backoff_cfg c = {.free = INT_MAX, .window_ms = 60 * S, .max_keys = 64};
    struct backoff *b = backoff_new(&c);
    int64_t t = 10 * S;
    assert_int_equal(backoff_fail(b, "root 10.0.0.1", t), 1);
    for (int i = 0; i < 99; i++)
        backoff_fail(b, "root 10.0.0.1", t + i);
    assert_int_equal(backoff_fail(b, "root 10.0.0.2", t + 30 * S), 1);
    assert_int_equal(backoff_wait(b, "root 10.0.0.1", t), 0);
    struct backoff_state st[4];
    assert_int_equal(backoff_take_ended(b, t + 59 * S, st, 4), 0);
    assert_int_equal(backoff_take_ended(b, t + 60 * S, st, 4), 1);
    assert_string_equal(st[0].key, "root 10.0.0.1");
    assert_int_equal(st[0].failures, 100);
    assert_int_equal(st[0].start_ms, t);
    assert_int_equal(backoff_take_ended(b, t + 60 * S, st, 4), 0); /* taken once */
    assert_int_equal(backoff_fail(b, "root 10.0.0.1", t + 61 * S), 1);
    backoff_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doubling),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_ended),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
