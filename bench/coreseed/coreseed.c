/*
 * coreseed: the synthetic fleet of fleet.h as a file for
 * `easgate admin devices import` (JSON lines), for the core's benchmarks.
 *
 *   coreseed [--devices N] [--users U] [--prefix P] > fleet.jsonl
 *   easgate admin devices import fleet.jsonl --create-users
 *
 * It writes through the admin API like an admin would (bench/ includes no
 * role: scripts/housecheck), so seeding is itself the import benchmark.
 * What an import cannot say (a device's check-in facts, when it was last
 * seen) comes with the first check-in of each device (bench/core/run.sh
 * runs one pass of checkin.lua before it measures), and the fleet's wipes
 * (an import refuses them: easgate admin devices wipe ID).
 */
#include "bench/coreseed/fleet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    const char *prefix = "BENCH";
    long n = 1000000, users = -1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--devices"))
            n = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--users"))
            users = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--prefix"))
            prefix = argv[i + 1];
        else
            n = 0, i = argc;
    }
    if (users < 0)
        users = n / 10 > 0 ? n / 10 : 1;
    if (n < 1 || users < 1 || (argc % 2) == 0 || strlen(prefix) > 20) {
        fprintf(stderr, "usage: coreseed [--devices N] [--users U] [--prefix P] > fleet.jsonl\n");
        return 2;
    }
    for (long i = 0; i < n; i++) {
        struct fleet_dev f;
        fleet_dev(i, &f);
        if (f.override && !strcmp(f.override, "wipe"))
            f.override = NULL; /* an import does not wipe (docs/core.md): wipe on its own */
        printf("{\"device_id\":\"%s%ld\",\"user\":\"u%ld@example.com\",\"type\":\"%s\","
               "\"model\":\"%s\",\"os\":\"%s\",\"os_version\":\"%s\",\"managed\":%s%s%s%s}\n",
               prefix, i, i % users, f.type, f.type, f.os, f.os_version,
               f.managed ? "true" : "false", f.override ? ",\"state\":\"" : "",
               f.override ? f.override : "", f.override ? "\"" : "");
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
