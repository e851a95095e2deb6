/*
 * fleet: the synthetic fleet the core's benchmarks use, as a pure function
 * of a device's index, so that the seeding tool (coreseed), the load tool
 * (corebench) and the wrk scripts (bench/core/, Lua) agree on what device
 * i is and on what it reports when it checks in unchanged.
 *
 *   DeviceId  PREFIX<i>                        ("BENCH0" .. "BENCH999999")
 *   user      u<i % users>@example.com         (10 devices a user by default)
 *   type/OS   55 % iPhone (iOS), 40 % Android, 4 % iPad (iOS), 1 % rare
 *             types (WindowsMail, BlackBerry, SAMSUNGSMG998B, Outlook)
 *   version   iOS 17.<i % 3>, Android 1<2 + i % 3>, the rare ones 10
 *   managed   every device but one in ten (i % 10 == 0 is unmanaged)
 *   override  i % 100 == 3 block, i % 1000 == 1 quarantine, i % 10000 == 2 wipe
 *   facts     passcode, encrypted, not jailbroken, agent 1.0
 *   last seen spread over the 30 days before the seed time
 *
 * bench/core/checkin.lua computes the same (keep them in step).
 */
#ifndef EG_BENCH_FLEET_H
#define EG_BENCH_FLEET_H

#include <stdio.h>

struct fleet_dev {
    const char *type, *os;
    char os_version[16];
    int managed;
    const char *override; /* NULL, "block", "quarantine", "wipe" */
    long long seen_ago_ms;
};

static inline void fleet_dev(long i, struct fleet_dev *d)
{
    static const char *const rare[] = {"WindowsMail", "BlackBerry", "SAMSUNGSMG998B", "Outlook"};
    long r = i % 100;
    if (r < 55 || (r >= 95 && r < 99)) {
        d->type = r < 55 ? "iPhone" : "iPad";
        d->os = "iOS";
        snprintf(d->os_version, sizeof(d->os_version), "17.%ld", i % 3);
    } else if (r < 95) {
        d->type = "Android";
        d->os = "Android";
        snprintf(d->os_version, sizeof(d->os_version), "1%ld", 2 + i % 3);
    } else {
        d->type = rare[(i / 100) % 4];
        d->os = "Other";
        snprintf(d->os_version, sizeof(d->os_version), "10");
    }
    d->managed = i % 10 != 0;
    d->override = i % 10000 == 2  ? "wipe"
                  : i % 1000 == 1 ? "quarantine"
                  : i % 100 == 3  ? "block"
                                  : NULL;
    d->seen_ago_ms = (i * 7919LL) % (30LL * 86400 * 1000);
}

#endif
