/*
 * Helpers shared by the rstore tests: Redis from test_redis_util.h, and a uv
 * loop run until a condition holds or a deadline passes.
 */
#ifndef TEST_RSTORE_UTIL_H
#define TEST_RSTORE_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "test_redis_util.h"

/* Run the loop until pred(arg) or ms pass; true if pred held. A repeating
 * timer keeps the loop waking even when nothing else is active. */
static void tr_tick(uv_timer_t *t)
{
    (void)t;
}

static inline bool tr_run_until(uv_loop_t *loop, bool (*pred)(void *), void *arg, int ms)
{
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, tr_tick, 5, 5);
    int64_t end = tr_ms() + ms;
    bool ok = false;
    while (!(ok = pred ? pred(arg) : false) && tr_ms() < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ok;
}

static inline bool tr_never(void *arg)
{
    (void)arg;
    return false;
}

#endif
