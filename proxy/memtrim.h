/*
 * memtrim: when to hand the heap's free pages back to the system.
 *
 * TLS handshakes allocate tens of KiB for a few milliseconds (record and
 * handshake buffers, key shares, certificate chains), in between the small
 * long-lived allocations of the connections they open. After a burst of
 * them (a reconnect storm, a ramp of long polls) the allocator keeps the
 * holes: RSS stays at the burst's high water while the connections held use
 * much less. malloc_trim gives whole free pages back, but it locks every
 * arena while it walks them (measured: 0.3 s for 35 MiB free among 5,000
 * held Pings on a busy 2-core VM), stalling every request meanwhile. So
 * it runs when it is likely to pay and to cost nobody: once a burst of
 * handshakes is over and the proxy is quiet (a second with few handshakes
 * and few answers after many handshakes since the last look), if at least
 * 4 MiB and 1/16 of what is in use is free; and as before every 30 s
 * whatever the traffic, but only with 32 MiB free.
 *
 * memtrim_due is pure (tested in tests/unit/test_proxy_memtrim.c); the
 * proxy's main loop calls it once a second with the handshakes counted so
 * far and does the trimming.
 */
#ifndef EG_MEMTRIM_H
#define EG_MEMTRIM_H

#include <stddef.h>
#include <stdint.h>

/* Once a second: every 30 s, or after a burst (256 handshakes since the
 * last look) once a second brings at most 32 handshakes and 256 upstream
 * answers. Worth it after a burst with 4 MiB free (and 1/16 of the heap in
 * use), at the 30 s look with 32 MiB. */
#define MEMTRIM_TICK_MS 1000
#define MEMTRIM_EVERY_MS 30000
#define MEMTRIM_BURST 256
#define MEMTRIM_QUIET 32
#define MEMTRIM_QUIET_ANSWERS 256
#define MEMTRIM_MIN_FREE (4u << 20)
#define MEMTRIM_MIN_FREE_BUSY (32u << 20)

enum memtrim_look { MEMTRIM_NO, MEMTRIM_QUIET_AFTER_BURST, MEMTRIM_PERIODIC };

struct memtrim {
    uint64_t hs_look; /* handshakes counted at the last look */
    uint64_t hs_tick; /* ... at the previous tick */
    uint64_t an_tick; /* answers counted at the previous tick */
    uint64_t ms_look; /* when the last look was (ms, any monotonic clock) */
};

/* Start counting from hs handshakes and an answers at now_ms. */
void memtrim_init(struct memtrim *m, uint64_t hs, uint64_t an, uint64_t now_ms);

/* Is it time to look at the heap (and maybe trim), and why? hs:
 * handshakes counted so far, an: upstream answers so far, both
 * monotonic; now_ms: the clock. Anything but MEMTRIM_NO counts as a look. */
enum memtrim_look memtrim_due(struct memtrim *m, uint64_t hs, uint64_t an, uint64_t now_ms);

/* Worth trimming, at this look, a heap with free_bytes free and in_use used? */
int memtrim_worth(enum memtrim_look why, size_t free_bytes, size_t in_use);

#endif
