/*
 * easbench wbxml: how fast the WBXML decoder walks a body and how fast the
 * proxy's extraction reads it. The bodies are built here with the writer,
 * shaped like what phones send: a ~4 KiB Sync request (several collections,
 * changes with ApplicationData in the Email, Calendar and Contacts pages,
 * AirSyncBase body preferences) and a 14.1 Provision request carrying
 * settings:DeviceInformation. Each case runs for about a second on one core
 * and prints MB/s and ns per body, by the thread's CPU time (what the code
 * costs, even on a shared machine) and by the wall clock.
 *
 *     easbench wbxml [-t SECONDS | -n BODIES] [CASE]
 *
 * -n runs each case exactly BODIES times instead of for a time, and CASE
 * runs only the cases whose name contains it ("walk Sync"), so an
 * instruction count (valgrind --tool=callgrind) is short and per case.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eas/wbxml.h"

#define SYNC_TARGET_BYTES 4096

static double now_s(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define T(page, tok) WBXML_TAG(WBXML_PAGE_##page, tok)

/* One Change of an email item: read flag, flag status, categories. */
static void add_email_change(struct wbxml_w *w, int i)
{
    char id[32];
    snprintf(id, sizeof(id), "1:%d", 1000 + i);
    wbxml_w_start(w, T(AIRSYNC, 0x08));                 /* Change */
    wbxml_w_text(w, T(AIRSYNC, 0x0D), id);              /* ServerId */
    wbxml_w_start(w, T(AIRSYNC, 0x1D));                 /* ApplicationData */
    wbxml_w_text(w, T(EMAIL, 0x15), i % 2 ? "1" : "0"); /* Read */
    wbxml_w_start(w, T(EMAIL, 0x3A));                   /* Flag */
    wbxml_w_text(w, T(EMAIL, 0x3B), "2");               /* Status */
    wbxml_w_text(w, T(EMAIL, 0x3D), "Follow up");       /* FlagType */
    wbxml_w_end(w);
    wbxml_w_start(w, T(EMAIL, 0x1B)); /* Categories */
    wbxml_w_text(w, T(EMAIL, 0x1C), "Projects");
    wbxml_w_end(w);
    wbxml_w_end(w);
    wbxml_w_end(w);
}

/* One Add of a calendar item from the phone. */
static void add_calendar_add(struct wbxml_w *w, int i)
{
    char id[32];
    snprintf(id, sizeof(id), "client-%d", i);
    wbxml_w_start(w, T(AIRSYNC, 0x07));    /* Add */
    wbxml_w_text(w, T(AIRSYNC, 0x0C), id); /* ClientId */
    wbxml_w_start(w, T(AIRSYNC, 0x1D));
    wbxml_w_text(w, T(CALENDAR, 0x05),
                 "xP///0MAZQBuAHQAcgBhAGwAIABFAHUAcgBvAHAAZQAgAFMAdABhAG4AZABhAHIAZAAgAFQAaQBtAGUA"
                 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAKAAAABQADAAAAAAAAAAAAAAA="); /* Timezone */
    wbxml_w_text(w, T(CALENDAR, 0x06), "0");                /* AllDayEvent */
    wbxml_w_text(w, T(CALENDAR, 0x27), "20261124T090000Z"); /* StartTime */
    wbxml_w_text(w, T(CALENDAR, 0x12), "20261124T100000Z"); /* EndTime */
    wbxml_w_text(w, T(CALENDAR, 0x26), "Planning review");  /* Subject */
    wbxml_w_text(w, T(CALENDAR, 0x0D), "2");                /* BusyStatus */
    wbxml_w_text(w, T(CALENDAR, 0x24), "15");               /* Reminder */
    wbxml_w_start(w, T(AIRSYNCBASE, 0x0A));                 /* Body */
    wbxml_w_text(w, T(AIRSYNCBASE, 0x06), "1");
    wbxml_w_text(w, T(AIRSYNCBASE, 0x0B), "Agenda: numbers, hiring, next steps.");
    wbxml_w_end(w);
    wbxml_w_end(w);
    wbxml_w_end(w);
}

static void open_collection(struct wbxml_w *w, const char *key, const char *id)
{
    wbxml_w_start(w, T(AIRSYNC, 0x0F)); /* Collection */
    wbxml_w_text(w, T(AIRSYNC, 0x0B), key);
    wbxml_w_text(w, T(AIRSYNC, 0x12), id);
    wbxml_w_empty(w, T(AIRSYNC, 0x1E)); /* DeletesAsMoves */
    wbxml_w_empty(w, T(AIRSYNC, 0x13)); /* GetChanges */
    wbxml_w_text(w, T(AIRSYNC, 0x15), "100");
    wbxml_w_start(w, T(AIRSYNC, 0x17)); /* Options */
    wbxml_w_text(w, T(AIRSYNC, 0x18), "3");
    wbxml_w_start(w, T(AIRSYNCBASE, 0x05)); /* BodyPreference */
    wbxml_w_text(w, T(AIRSYNCBASE, 0x06), "2");
    wbxml_w_text(w, T(AIRSYNCBASE, 0x07), "51200");
    wbxml_w_end(w);
    wbxml_w_end(w);
    wbxml_w_start(w, T(AIRSYNC, 0x16)); /* Commands */
}

/* A Sync request of about SYNC_TARGET_BYTES bytes. */
static size_t build_sync(struct wbxml_w *w)
{
    const uint8_t *out;
    size_t len;
    int i = 0;
    wbxml_w_init(w, NULL, 0);
    wbxml_w_start(w, T(AIRSYNC, 0x05));
    wbxml_w_start(w, T(AIRSYNC, 0x1C)); /* Collections */
    open_collection(w, "1284327170", "2");
    for (int k = 0; k < 6; k++)
        add_calendar_add(w, i++);
    wbxml_w_end(w);
    wbxml_w_end(w);
    open_collection(w, "998877", "1");
    while (w->len < SYNC_TARGET_BYTES - 120)
        add_email_change(w, i++);
    wbxml_w_end(w);
    wbxml_w_end(w);
    wbxml_w_end(w);
    wbxml_w_text(w, T(AIRSYNC, 0x29), "480");
    wbxml_w_end(w);
    if (wbxml_w_finish(w, &out, &len) != 0)
        return 0;
    return len;
}

static size_t build_provision(struct wbxml_w *w)
{
    const uint8_t *out;
    size_t len;
    wbxml_w_init(w, NULL, 0);
    wbxml_w_start(w, WBXML_PROV_PROVISION);
    wbxml_w_start(w, WBXML_SETTINGS_DEVICEINFORMATION);
    wbxml_w_start(w, WBXML_SETTINGS_SET);
    wbxml_w_text(w, WBXML_SETTINGS_MODEL, "iPhone15,2");
    wbxml_w_text(w, WBXML_SETTINGS_IMEI, "356938035643809");
    wbxml_w_text(w, WBXML_SETTINGS_FRIENDLYNAME, "Alice's iPhone");
    wbxml_w_text(w, WBXML_SETTINGS_OS, "iOS 17.4.1 21E236");
    wbxml_w_text(w, WBXML_SETTINGS_OSLANGUAGE, "en-US");
    wbxml_w_text(w, WBXML_SETTINGS_PHONENUMBER, "+15555550100");
    wbxml_w_text(w, WBXML_SETTINGS_USERAGENT, "Apple-iPhone15C2/2104.84");
    wbxml_w_text(w, WBXML_SETTINGS_ENABLEOUTBOUNDSMS, "0");
    wbxml_w_text(w, WBXML_SETTINGS_MOBILEOPERATOR, "Contoso Mobile");
    wbxml_w_end(w);
    wbxml_w_end(w);
    wbxml_w_start(w, WBXML_PROV_POLICIES);
    wbxml_w_start(w, WBXML_PROV_POLICY);
    wbxml_w_text(w, WBXML_PROV_POLICYTYPE, "MS-EAS-Provisioning-WBXML");
    wbxml_w_end(w);
    wbxml_w_end(w);
    wbxml_w_end(w);
    if (wbxml_w_finish(w, &out, &len) != 0)
        return 0;
    return len;
}

enum bench_kind { B_WALK, B_EXTRACT, B_EXTRACT_SEGMENTS };

static const char *const case_names[] = {
    "walk Sync request",
    "extract Sync request",
    "extract Sync request (1448 B pieces)",
    "walk Provision+DeviceInformation",
    "extract Provision+DeviceInformation",
};

static volatile long sink;

static int run_once(enum bench_kind kind, const uint8_t *buf, size_t len)
{
    struct wbxml_facts f;
    if (kind == B_WALK)
        return wbxml_check(buf, len, NULL);
    if (kind == B_EXTRACT) {
        int rc = wbxml_extract(buf, len, &f, NULL);
        sink += f.heartbeat + f.devinfo[WBXML_DI_MODEL][0];
        return rc;
    }
    /* As it comes off a socket: 1448-byte TCP segments. */
    struct wbxml_extractor x;
    wbxml_extract_init(&x, &f);
    for (size_t i = 0; i < len; i += 1448) {
        int rc = wbxml_extract_feed(&x, buf + i, len - i < 1448 ? len - i : 1448);
        if (rc)
            return rc;
    }
    sink += f.heartbeat;
    return wbxml_extract_finish(&x);
}

/* Run only the case so named, or else those whose name contains this. */
static const char *only;
static bool only_exact;

static int bench(const char *name, enum bench_kind kind, const uint8_t *buf, size_t len,
                 double seconds, long count)
{
    if (only && (only_exact ? strcmp(name, only) != 0 : !strstr(name, only)))
        return 0;
    long iters = 0, batch = count > 0 ? count : 1000;
    double t0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_THREAD_CPUTIME_ID), t, c;
    if (run_once(kind, buf, len) != 0) {
        fprintf(stderr, "easbench wbxml: %s: the body does not decode\n", name);
        return -1;
    }
    do {
        for (long i = 0; i < batch; i++)
            run_once(kind, buf, len);
        iters += batch;
        t = now_s(CLOCK_MONOTONIC) - t0;
    } while (count <= 0 && t < seconds);
    c = now_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    double bytes = (double)len * (double)iters;
    printf("%-36s %5zu B  cpu %7.1f MB/s %8.1f ns/body   wall %7.1f MB/s  (%ld bodies)\n", name,
           len, bytes / c / 1e6, c * 1e9 / (double)iters, bytes / t / 1e6, iters);
    return 0;
}

int easbench_wbxml(int argc, char **argv)
{
    double seconds = 1.0;
    long count = 0;
    struct wbxml_w sync, prov;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            count = atol(argv[++i]);
            if (count <= 0 || count > 100000000L) {
                fprintf(stderr, "easbench wbxml: -n wants 1 <= BODIES <= 100000000\n");
                return 2;
            }
        } else if (argv[i][0] != '-' && !only) {
            only = argv[i];
        } else {
            fprintf(stderr, "usage: easbench wbxml [-t SECONDS | -n BODIES] [CASE]\n");
            return 2;
        }
    }
    if (seconds <= 0 || seconds > 60) {
        fprintf(stderr, "easbench wbxml: -t wants 0 < SECONDS <= 60\n");
        return 2;
    }
    bool any = !only;
    for (size_t k = 0; only && k < sizeof(case_names) / sizeof(case_names[0]); k++) {
        only_exact |= strcmp(only, case_names[k]) == 0;
        any |= strstr(case_names[k], only) != NULL;
    }
    if (!any) {
        fprintf(stderr, "easbench wbxml: no case named '%s'; the cases are:\n", only);
        for (size_t k = 0; k < sizeof(case_names) / sizeof(case_names[0]); k++)
            fprintf(stderr, "  %s\n", case_names[k]);
        return 2;
    }
    size_t slen = build_sync(&sync), plen = build_provision(&prov);
    if (!slen || !plen) {
        fprintf(stderr, "easbench wbxml: building the bodies failed\n");
        return 1;
    }
    int rc = 0;
    rc |= bench(case_names[0], B_WALK, sync.buf, slen, seconds, count);
    rc |= bench(case_names[1], B_EXTRACT, sync.buf, slen, seconds, count);
    rc |= bench(case_names[2], B_EXTRACT_SEGMENTS, sync.buf, slen, seconds, count);
    rc |= bench(case_names[3], B_WALK, prov.buf, plen, seconds, count);
    rc |= bench(case_names[4], B_EXTRACT, prov.buf, plen, seconds, count);
    wbxml_w_free(&sync);
    wbxml_w_free(&prov);
    return rc ? 1 : 0;
}
