/*
 * test_core_scale: the registry at scale, checked for correctness at any
 * size and measured when asked to.
 *
 *   EG_BENCH_DEVICES=1000000 build/tests/test_core_scale
 *
 * fills a registry with that many devices (3 per user) and prints: fill
 * rate, `devices list` filtered by user (worst and p99 of 1000 random
 * users), a filtered state listing, and check-ins per second through the
 * engine (store + evaluate, one transaction each, as the API will do).
 * The default size is small so that ctest stays quick; nothing here asserts
 * a time (machines differ), only results.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/eng.h"

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void test_scale(void **state)
{
    const char *env = getenv("EG_BENCH_DEVICES");
    long n = env ? atol(env) : 3000;
    if (n < 30 || n > 5000000)
        n = 3000;
    long users = n / 3;
    char dir[] = "/tmp/eg-scale-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], err[256];
    snprintf(path, sizeof(path), "%s/reg.db", dir);
    struct core_reg *reg;
    assert_int_equal(core_reg_open(path, &reg, err, sizeof(err)), 0);

    double t0 = mono();
    assert_int_equal(core_reg_begin(reg), 0);
    for (long i = 0; i < n; i++) {
        char id[32], user[40];
        snprintf(id, sizeof(id), "SCALE%08ld", i);
        snprintf(user, sizeof(user), "user%07ld@example.com", (i * 7919) % users);
        struct core_devinfo in = {.user = user,
                                  .device_type = i % 2 ? "iPhone" : "Android",
                                  .model = "Model X",
                                  .user_agent = "Apple-iPhone14C2/2001.2"};
        assert_int_equal(core_reg_device_seen(reg, id, &in, 1000 + i, NULL), 0);
        /* Nine in ten managed and compliant (the check-ins below keep them so),
         * one in ten unmanaged and blocked. */
        if (i % 10)
            assert_int_equal(core_reg_set_managed(reg, id, true, NULL), 0);
        assert_int_equal(core_reg_set_state(reg, id, i % 10 ? COMPLIANCE_ALLOW : COMPLIANCE_BLOCK,
                                            i % 10 ? "compliant" : "unmanaged", 0, 0, 1000 + i,
                                            NULL, NULL),
                         0);
        if (i % 10000 == 9999) {
            assert_int_equal(core_reg_commit(reg), 0);
            assert_int_equal(core_reg_begin(reg), 0);
        }
    }
    assert_int_equal(core_reg_commit(reg), 0);
    double fill = mono() - t0;
    assert_int_equal(core_reg_device_count(reg), n);

    /* devices list --user U, for random users. */
    enum { Q = 1000 };
    static double lat[Q];
    struct core_device page[100];
    struct core_dev_filter f;
    srand(42);
    for (int q = 0; q < Q; q++) {
        char user[40];
        snprintf(user, sizeof(user), "USER%07ld@example.com", (long)rand() % users);
        core_dev_filter_init(&f);
        f.user = user;
        size_t k;
        double a = mono();
        assert_int_equal(core_reg_device_list(reg, &f, page, 100, &k), 0);
        lat[q] = (mono() - a) * 1000;
        assert_int_equal(k, 3);
        for (size_t j = 0; j < k; j++)
            assert_true(strcasecmp(page[j].user, user) == 0);
    }
    qsort(lat, Q, sizeof(lat[0]), cmp_double);

    /* A filtered state listing: the first page of blocked devices. */
    core_dev_filter_init(&f);
    f.state = COMPLIANCE_BLOCK;
    size_t k;
    double a = mono();
    assert_int_equal(core_reg_device_list(reg, &f, page, 100, &k), 0);
    double state_ms = (mono() - a) * 1000;
    assert_int_equal(k, (size_t)(n / 10 < 100 ? (n + 9) / 10 : 100));
    for (size_t j = 0; j < k; j++)
        assert_int_equal(page[j].state, COMPLIANCE_BLOCK);

    /* Check-ins through the engine: store, evaluate, store the result. */
    struct compliance_rules rules;
    compliance_rules_init(&rules);
    rules.present = true;
    rules.require_passcode = true;
    rules.max_devices_per_user = 5;
    struct core_eng e;
    core_eng_init(&e, reg, NULL, &rules);
    long nc = n < 20000 ? n : 20000;
    a = mono();
    clock_t cpu0 = clock();
    for (long i = 0; i < nc; i++) {
        char id[32];
        long pick = (i * 104729) % n;
        if (pick % 10 == 0)
            pick++; /* a managed one: the steady state of a compliant fleet */
        snprintf(id, sizeof(id), "SCALE%08ld", pick % n);
        struct core_checkin c = {.os = "iOS",
                                 .os_version = "17.1",
                                 .passcode = COMPLIANCE_YES,
                                 .encrypted = COMPLIANCE_YES,
                                 .jailbroken = COMPLIANCE_NO};
        assert_int_equal(core_eng_checkin(&e, id, &c, 5000000 + i), 0);
    }
    double ci = mono() - a;
    double ci_cpu = (double)(clock() - cpu0) / CLOCKS_PER_SEC;
    assert_int_equal(e.changes, 0); /* compliant devices checking in change nothing */
    fprintf(stderr,
            "registry of %ld devices (%ld users): filled at %.0f devices/s; list by user: "
            "p50 %.3f ms, p99 %.3f ms, max %.3f ms; first 100 blocked: %.3f ms; "
            "%ld check-ins at %.0f/s (%.0f per CPU-second)\n",
            n, users, n / fill, lat[Q / 2], lat[Q * 99 / 100], lat[Q - 1], state_ms, nc, nc / ci,
            ci_cpu > 0 ? nc / ci_cpu : 0.0);
    core_reg_close(reg);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    core_eng_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
