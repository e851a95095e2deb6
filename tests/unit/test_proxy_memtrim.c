/* test_proxy_memtrim: when the proxy hands free heap pages back
 * (proxy/memtrim.h): once a burst of handshakes is over and the proxy is
 * quiet, not while the burst goes on nor under steady traffic, every 30 s
 * with much free, and only when enough is free to pay. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "proxy/memtrim.h"

/* A ramp of held Pings, 1,000 handshakes a second for 5 s, then quiet: no
 * look during the ramp, one in the first quiet second, none after it. */
static void test_after_burst(void **state)
{
    struct memtrim m;
    memtrim_init(&m, 0, 0, 0);
    uint64_t hs = 0, ms = 0;
    for (int s = 0; s < 5; s++) {
        hs += 1000;
        ms += MEMTRIM_TICK_MS;
        assert_int_equal(memtrim_due(&m, hs, 400, ms), MEMTRIM_NO);
    }
    ms += MEMTRIM_TICK_MS;
    assert_int_equal(memtrim_due(&m, hs + 3, 410, ms), MEMTRIM_QUIET_AFTER_BURST);
    for (int s = 0; s < 10; s++) {
        ms += MEMTRIM_TICK_MS;
        assert_int_equal(memtrim_due(&m, hs + 3, 410, ms), MEMTRIM_NO);
    }
}

/* The same burst followed by steady keep-alive traffic: no early look (a
 * trim would stall the requests), only the 30 s one. */
static void test_burst_then_busy(void **state)
{
    struct memtrim m;
    memtrim_init(&m, 0, 0, 0);
    uint64_t hs = 1024, an = 0, ms = 0;
    for (int s = 1; s < 30; s++) {
        an += 50000;
        ms += MEMTRIM_TICK_MS;
        assert_int_equal(memtrim_due(&m, hs, an, ms), MEMTRIM_NO);
    }
    ms += MEMTRIM_TICK_MS;
    assert_int_equal(memtrim_due(&m, hs, an + 50000, ms), MEMTRIM_PERIODIC);
}

/* A few handshakes now and then are no burst: only the 30 s look. */
static void test_trickle(void **state)
{
    struct memtrim m;
    memtrim_init(&m, 0, 0, 0);
    uint64_t hs = 0, ms = 0;
    int looks = 0;
    for (int s = 0; s < 60; s++) {
        hs += 5;
        ms += MEMTRIM_TICK_MS;
        looks += memtrim_due(&m, hs, 0, ms) != MEMTRIM_NO;
    }
    assert_int_equal(looks, 2);
}

static void test_worth(void **state)
{
    const enum memtrim_look q = MEMTRIM_QUIET_AFTER_BURST, p = MEMTRIM_PERIODIC;
    assert_false(memtrim_worth(q, 1u << 20, 1u << 20));           /* little free */
    assert_true(memtrim_worth(q, 35u << 20, 159u << 20));         /* 5,000 Pings after the ramp */
    assert_false(memtrim_worth(q, 5u << 20, (size_t)200u << 20)); /* slack of a big heap */
    assert_false(memtrim_worth(p, 35u << 20 >> 1, 159u << 20));   /* busy: only with much free */
    assert_true(memtrim_worth(p, MEMTRIM_MIN_FREE_BUSY, 10u << 20));
    assert_false(memtrim_worth(MEMTRIM_NO, 64u << 20, 10u << 20));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_after_burst),
        cmocka_unit_test(test_burst_then_busy),
        cmocka_unit_test(test_trickle),
        cmocka_unit_test(test_worth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
