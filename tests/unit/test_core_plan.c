/*
 * test_core_plan: every documented device filter, alone and combined, is
 * served from an index (issue 21.2): EXPLAIN QUERY PLAN of every statement
 * core_reg_device_page may run for it, and of every statement the registry
 * prepares, must show no scan of a table without an index. An empty
 * registry is enough: the plans are SQLite's choices for the schema, and
 * the page's own statements force their index.
 *
 * Then the bounded page at work on a registry big enough for the budget to
 * matter: filters that are rare together come back as short pages with a
 * cursor, and following the cursors finds exactly what the exact listing
 * finds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/reg.h"

static char dir[64], path[128];

static struct core_reg *open_reg(void)
{
    snprintf(dir, sizeof(dir), "/tmp/eg-plan-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/reg.db", dir);
    struct core_reg *reg;
    char err[256];
    assert_int_equal(core_reg_open(path, &reg, err, sizeof(err)), 0);
    return reg;
}

static void close_reg(struct core_reg *reg)
{
    core_reg_close(reg);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

struct seen {
    int statements, bad;
    const char *what;
};

/* A plan line "SCAN t" without an index is a full table scan ("SCAN
 * (subquery-1)" reads a subquery, bounded by its own plan). */
static bool full_scan(const char *plan)
{
    for (const char *l = plan; l && *l;) {
        const char *e = strchr(l, '\n');
        size_t n = e ? (size_t)(e - l) : strlen(l);
        char line[512];
        snprintf(line, sizeof(line), "%.*s", (int)(n < sizeof(line) ? n : sizeof(line) - 1), l);
        if (strncmp(line, "SCAN ", 5) == 0 && line[5] != '(' && !strstr(line, " USING ") &&
            !strstr(line, "CONSTANT ROW"))
            return true;
        l = e ? e + 1 : NULL;
    }
    return false;
}

static int check_plan(const char *sql, const char *plan, void *arg)
{
    struct seen *s = arg;
    s->statements++;
    if (full_scan(plan)) {
        s->bad++;
        fprintf(stderr, "full scan for %s:\n  %s\n  plan:\n%s\n", s->what, sql, plan);
    }
    return 0;
}

/* Every filter of docs/core.md's device list, alone and in the pairs and
 * triples that matter. */
static void test_filters_use_indexes(void **state)
{
    (void)state;
    struct core_reg *reg = open_reg();
    enum {
        F_USER = 1 << 0,
        F_STATE = 1 << 1,
        F_TYPE = 1 << 2,
        F_OS = 1 << 3,
        F_MANAGED = 1 << 4,
        F_COMPLIANT = 1 << 5,
        F_FAILING = 1 << 6,
        F_GRACE = 1 << 7,
        F_SINCE = 1 << 8,
        F_BEFORE = 1 << 9,
        F_AFTER = 1 << 10,
        F_UNCHECKED = 1 << 11,
        F_ALL = 1 << 12
    };
    int total = 0;
    /* Every subset of up to three filters (and none). */
    for (int mask = 0; mask < F_ALL; mask++) {
        if (__builtin_popcount((unsigned)mask) > 3)
            continue;
        if (__builtin_popcount(
                (unsigned)(mask & (F_COMPLIANT | F_FAILING | F_GRACE | F_UNCHECKED))) > 1)
            continue; /* one compliance value at a time */
        struct core_dev_filter f;
        core_dev_filter_init(&f);
        if (mask & F_USER)
            f.user = "alice@example.com";
        if (mask & F_STATE)
            f.state = COMPLIANCE_WIPE;
        if (mask & F_TYPE)
            f.device_type = "iPhone";
        if (mask & F_OS)
            f.os = "iOS";
        if (mask & F_MANAGED)
            f.managed = 0;
        if (mask & F_COMPLIANT)
            f.compliance = CORE_COMPLIANCE_COMPLIANT;
        if (mask & F_FAILING)
            f.compliance = CORE_COMPLIANCE_FAILING;
        if (mask & F_GRACE)
            f.compliance = CORE_COMPLIANCE_GRACE;
        if (mask & F_UNCHECKED)
            f.compliance = CORE_COMPLIANCE_UNCHECKED;
        if (mask & F_SINCE)
            f.seen_since_ms = 1000;
        if (mask & F_BEFORE)
            f.seen_before_ms = 2000;
        if (mask & F_AFTER)
            f.after = "DEV0042";
        char what[64];
        snprintf(what, sizeof(what), "filter mask 0x%x", mask);
        struct seen s = {.what = what};
        assert_int_equal(core_reg_device_plans(reg, &f, check_plan, &s), 0);
        assert_true(s.statements > 0);
        assert_int_equal(s.bad, 0);
        total += s.statements;
    }
    assert_true(total > 1000);
    close_reg(reg);
}

/* Every statement the registry prepares: none scans a table, but the count
 * of all devices (a scan of the narrowest index, at start only). */
static int check_stmt(const char *sql, const char *plan, void *arg)
{
    struct seen *s = arg;
    s->statements++;
    if (strcmp(sql, "SELECT COUNT(*) FROM devices") == 0)
        return 0;
    if (full_scan(plan)) {
        s->bad++;
        fprintf(stderr, "full scan:\n  %s\n  plan:\n%s\n", sql, plan);
    }
    return 0;
}

static void test_statements_use_indexes(void **state)
{
    (void)state;
    struct core_reg *reg = open_reg();
    struct seen s = {.what = "statement"};
    assert_int_equal(core_reg_statement_plans(reg, check_stmt, &s), 0);
    assert_true(s.statements > 20);
    assert_int_equal(s.bad, 0);
    close_reg(reg);
}

/*
 * 20,000 devices: a third iPhones (never wiped), the rest Androids of which
 * every other one is wiped. state=wipe&type=iPhone matches nothing while
 * each filter alone matches thousands (past the planner's cap): the pages
 * are bounded, short, and their cursors walk to the end.
 */
#define N_DEV 20000
static void test_bounded_pages(void **state)
{
    (void)state;
    struct core_reg *reg = open_reg();
    assert_int_equal(core_reg_begin(reg), 0);
    for (int i = 0; i < N_DEV; i++) {
        char id[32];
        snprintf(id, sizeof(id), "DEV%05d", i);
        bool iphone = i % 3 == 0;
        struct core_devinfo in = {.device_type = iphone ? "iPhone" : "Android",
                                  .os = iphone ? "iOS" : "Android",
                                  .user = "bob@example.com"};
        assert_int_equal(core_reg_device_seen(reg, id, &in, 1000 + i, NULL), 0);
        enum compliance_state st = !iphone && i % 2 == 1 ? COMPLIANCE_WIPE : COMPLIANCE_ALLOW;
        assert_int_equal(core_reg_set_state(reg, id, st, "x", 0, 0, 1, NULL, NULL), 0);
    }
    assert_int_equal(core_reg_commit(reg), 0);

    struct core_device page[50];
    char next[CORE_DEVID_MAX + 1], cursor[CORE_DEVID_MAX + 1] = "";
    struct core_dev_filter f;

    /* Rare together: short pages that still end. */
    core_dev_filter_init(&f);
    f.state = COMPLIANCE_WIPE;
    f.device_type = "iPhone";
    int pages = 0, short_pages = 0;
    size_t n, found = 0;
    do {
        f.after = cursor[0] ? cursor : NULL;
        assert_int_equal(core_reg_device_page(reg, &f, page, 50, &n, next), 0);
        found += n;
        short_pages += n < 50 && next[0];
        memcpy(cursor, next, sizeof(cursor));
        assert_true(++pages < 100);
    } while (cursor[0]);
    assert_int_equal(found, 0);
    assert_true(short_pages > 0); /* the budget cut the walk at least once */

    /* Following the cursors finds exactly what the exact list finds. */
    core_dev_filter_init(&f);
    f.state = COMPLIANCE_WIPE;
    f.device_type = "android";
    cursor[0] = '\0';
    found = 0;
    char last[CORE_DEVID_MAX + 1] = "";
    do {
        f.after = cursor[0] ? cursor : NULL;
        assert_int_equal(core_reg_device_page(reg, &f, page, 50, &n, next), 0);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(page[i].state, COMPLIANCE_WIPE);
            assert_string_equal(page[i].device_type, "Android");
            assert_true(strcmp(page[i].device_id, last) > 0); /* in order, no repeats */
            memcpy(last, page[i].device_id, sizeof(last));
        }
        found += n;
        memcpy(cursor, next, sizeof(cursor));
    } while (cursor[0]);
    size_t exact = 0;
    for (int i = 0; i < N_DEV; i++)
        exact += i % 3 != 0 && i % 2 == 1;
    assert_int_equal(found, exact);

    /* A last-seen range with few matches is served from its index, whole. */
    core_dev_filter_init(&f);
    f.seen_since_ms = 1000 + N_DEV - 10;
    assert_int_equal(core_reg_device_page(reg, &f, page, 50, &n, next), 0);
    assert_int_equal(n, 10);
    assert_string_equal(next, "");
    assert_string_equal(page[0].device_id, "DEV19990");

    /* No filter: plain pages in DeviceId order, the last one ends. */
    core_dev_filter_init(&f);
    f.after = "DEV19979";
    assert_int_equal(core_reg_device_page(reg, &f, page, 20, &n, next), 0);
    assert_int_equal(n, 20);
    assert_string_equal(next, "");
    close_reg(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filters_use_indexes),
        cmocka_unit_test(test_statements_use_indexes),
        cmocka_unit_test(test_bounded_pages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
