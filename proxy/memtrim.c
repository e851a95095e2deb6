/*
 * memtrim: see memtrim.h. Pure arithmetic over counters: the caller owns
 * the clock, the counters and malloc_trim.
 */
#include "proxy/memtrim.h"

void memtrim_init(struct memtrim *m, uint64_t hs, uint64_t an, uint64_t now_ms)
{
    m->hs_look = m->hs_tick = hs;
    m->an_tick = an;
    m->ms_look = now_ms;
}

enum memtrim_look memtrim_due(struct memtrim *m, uint64_t hs, uint64_t an, uint64_t now_ms)
{
    uint64_t since_look = hs - m->hs_look, hs_tick = hs - m->hs_tick, an_tick = an - m->an_tick;
    m->hs_tick = hs;
    m->an_tick = an;
    enum memtrim_look why = MEMTRIM_NO;
    if (since_look >= MEMTRIM_BURST && hs_tick <= MEMTRIM_QUIET && an_tick <= MEMTRIM_QUIET_ANSWERS)
        why = MEMTRIM_QUIET_AFTER_BURST;
    else if (now_ms - m->ms_look >= MEMTRIM_EVERY_MS)
        why = MEMTRIM_PERIODIC;
    if (why != MEMTRIM_NO) {
        m->hs_look = hs;
        m->ms_look = now_ms;
    }
    return why;
}

int memtrim_worth(enum memtrim_look why, size_t free_bytes, size_t in_use)
{
    if (why == MEMTRIM_PERIODIC)
        return free_bytes >= MEMTRIM_MIN_FREE_BUSY;
    /* Free space under 1/16 of what is used is the allocator's normal
     * slack: trimming it would only be faulted back in. */
    return why == MEMTRIM_QUIET_AFTER_BURST && free_bytes >= MEMTRIM_MIN_FREE &&
           free_bytes >= in_use / 16;
}
