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
#include <strings.h>
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

/*
 * The search and the orders (issue 18): every statement a page may run for
 * a search, an order and a direction, with the filters alone and in pairs,
 * is served from an index; and with a cursor, the ordered walks (a budget
 * page and its end) are ranges from it, never a walk from the start.
 */
static bool walk_from_start(const char *sql, const char *plan)
{
    if (!strstr(sql, "IN (SELECT device_id") && !strstr(sql, "OFFSET"))
        return false;
    return strstr(plan, "SCAN devices") || strstr(plan, "SCAN device_seen");
}

struct seen_sorted {
    struct seen s;
    bool cursor;
};

static int check_plan_sorted(const char *sql, const char *plan, void *arg)
{
    struct seen_sorted *ss = arg;
    check_plan(sql, plan, &ss->s);
    if (ss->cursor && walk_from_start(sql, plan)) {
        ss->s.bad++;
        fprintf(stderr, "walk from the start with a cursor for %s:\n  %s\n  plan:\n%s\n",
                ss->s.what, sql, plan);
    }
    return 0;
}

static void test_search_sort_use_indexes(void **state)
{
    (void)state;
    struct core_reg *reg = open_reg();
    static const unsigned qfields[] = {0, CORE_Q_DEVICE_ID, CORE_Q_USER,
                                       CORE_Q_MODEL | CORE_Q_PHONE};
    int total = 0;
    for (int sort = CORE_SORT_DEVICE_ID; sort <= CORE_SORT_OS; sort++)
        for (int desc = 0; desc < 2; desc++)
            for (int mask = 0; mask < (1 << 8); mask++) {
                if (__builtin_popcount((unsigned)mask) > 2)
                    continue; /* alone and in pairs (the page's drivers are per filter) */
                for (size_t qi = 0; qi < sizeof(qfields) / sizeof(qfields[0]); qi++) {
                    if ((mask & 128) && qi > 0)
                        continue; /* no search: its fields do not matter */
                    struct core_dev_filter f;
                    core_dev_filter_init(&f);
                    f.sort = (enum core_dev_sort)sort;
                    f.desc = desc;
                    f.q = "ali";
                    f.q_fields = qfields[qi];
                    if (mask & 1)
                        f.user = "alice@example.com";
                    if (mask & 2)
                        f.state = COMPLIANCE_WIPE;
                    if (mask & 4)
                        f.device_type = "iPhone";
                    if (mask & 8)
                        f.os = "iOS";
                    if (mask & 16)
                        f.seen_since_ms = 1000;
                    if (mask & 32)
                        f.compliance = CORE_COMPLIANCE_FAILING;
                    if (mask & 64) {
                        f.after = "DEV0042";
                        f.after_key = "x";
                    }
                    if (mask & 128)
                        f.q = NULL;
                    char what[96];
                    snprintf(what, sizeof(what), "sort %d desc %d mask 0x%x q fields 0x%x", sort,
                             desc, mask, qfields[qi]);
                    struct seen_sorted ss = {.s = {.what = what}, .cursor = f.after != NULL};
                    assert_int_equal(core_reg_device_plans(reg, &f, check_plan_sorted, &ss), 0);
                    assert_true(ss.s.statements > 0);
                    assert_int_equal(ss.s.bad, 0);
                    total += ss.s.statements;
                }
            }
    assert_true(total > 5000);
    close_reg(reg);
}

/* A fleet with every order's key mixed (case too), searched and sorted
 * page by page, compared with the same done by hand. */
#define N_MIX 6000
static struct mixdev {
    char id[16], user[32], type[16], os[16], model[16], phone[16];
    int state;
    int64_t hour;
} mix[N_MIX];

static const char *const state_names[] = {"allow", "block", "quarantine", "wipe"};

static void mix_fill(struct core_reg *reg)
{
    static const char *const types[] = {"iPhone", "IPHONE", "Android", "iPad", "android"};
    static const char *const oses[] = {"iOS", "IOS", "Android", "", "ios"};
    assert_int_equal(core_reg_begin(reg), 0);
    for (int i = 0; i < N_MIX; i++) {
        struct mixdev *m = &mix[i];
        snprintf(m->id, sizeof(m->id), "DEV%05d", (i * 7919) % N_MIX);
        snprintf(m->user, sizeof(m->user), "%s%03d@x.example", i % 7 ? "alice" : "Bob", i % 250);
        snprintf(m->type, sizeof(m->type), "%s", types[i % 5]);
        snprintf(m->os, sizeof(m->os), "%s", oses[(i / 5) % 5]);
        snprintf(m->model, sizeof(m->model), "Model-%d", i % 50);
        snprintf(m->phone, sizeof(m->phone), "%s", "");
        if (i % 5 == 0)
            snprintf(m->phone, sizeof(m->phone), "+8190%06d", i);
        m->state = i % 4;
        m->hour = 400000 + (i % 40);
        struct core_devinfo in = {.device_type = m->type,
                                  .os = m->os,
                                  .model = m->model,
                                  .phone_number = m->phone,
                                  .user = m->user};
        assert_int_equal(core_reg_device_seen(reg, m->id, &in, m->hour * 3600000 + i % 1000, NULL),
                         0);
        assert_int_equal(core_reg_set_state(reg, m->id, (enum compliance_state)m->state, "x", 0, 0,
                                            1, NULL, NULL),
                         0);
    }
    assert_int_equal(core_reg_commit(reg), 0);
}

static const struct core_dev_filter *cmp_f;

static int key_cmp(const struct mixdev *a, const struct mixdev *b, enum core_dev_sort s)
{
    switch (s) {
    case CORE_SORT_USER:
        return strcasecmp(a->user, b->user);
    case CORE_SORT_LAST_SEEN:
        return a->hour < b->hour ? -1 : a->hour > b->hour;
    case CORE_SORT_STATE:
        return strcmp(state_names[a->state], state_names[b->state]);
    case CORE_SORT_TYPE:
        return strcasecmp(a->type, b->type);
    case CORE_SORT_OS:
        return strcasecmp(a->os, b->os);
    case CORE_SORT_DEVICE_ID:
        break;
    }
    return 0;
}

static int mix_cmp(const void *x, const void *y)
{
    const struct mixdev *a = *(const struct mixdev *const *)x,
                        *b = *(const struct mixdev *const *)y;
    int c = key_cmp(a, b, cmp_f->sort);
    if (c == 0)
        c = strcmp(a->id, b->id);
    return cmp_f->desc ? -c : c;
}

static bool mix_match(const struct mixdev *m, const struct core_dev_filter *f)
{
    if (f->state >= 0 && m->state != f->state)
        return false;
    if (f->device_type && strcasecmp(m->type, f->device_type) != 0)
        return false;
    if (!f->q)
        return true;
    size_t n = strlen(f->q);
    return strncasecmp(m->id, f->q, n) == 0 || strncasecmp(m->user, f->q, n) == 0 ||
           strncasecmp(m->model, f->q, n) == 0 || strncmp(m->phone, f->q, n) == 0;
}

/* Walk f's pages (about six of them); compare with the expected order. */
static void mix_walk(struct core_reg *reg, struct core_dev_filter f)
{
    static const struct mixdev *want[N_MIX];
    size_t nw = 0;
    for (int i = 0; i < N_MIX; i++)
        if (mix_match(&mix[i], &f))
            want[nw++] = &mix[i];
    size_t per = nw / 6 + 7;
    cmp_f = &f;
    qsort(want, nw, sizeof(want[0]), mix_cmp);
    struct core_device *page = calloc(per, sizeof(*page));
    assert_non_null(page);
    char next[CORE_DEVID_MAX + 1] = "", key[CORE_SORT_KEY_MAX] = "";
    char after[CORE_DEVID_MAX + 1], after_key[CORE_SORT_KEY_MAX];
    size_t got = 0;
    int pages = 0;
    do {
        memcpy(after, next, sizeof(after));
        memcpy(after_key, key, sizeof(after_key));
        f.after = after[0] ? after : NULL;
        f.after_key = after[0] ? after_key : NULL;
        size_t n;
        assert_int_equal(core_reg_device_page_sorted(reg, &f, page, per, &n, next, key), 0);
        for (size_t i = 0; i < n; i++) {
            if (got >= nw || strcmp(page[i].device_id, want[got]->id) != 0) {
                fprintf(stderr, "sort %d desc %d q %s state %d: row %zu is %s, want %s\n", f.sort,
                        f.desc, f.q ? f.q : "-", f.state, got, page[i].device_id,
                        got < nw ? want[got]->id : "(end)");
                fail();
            }
            got++;
        }
        assert_true(++pages < 1000);
    } while (next[0]);
    assert_int_equal(got, nw);
    free(page);
}

static void test_search_sort_pages(void **state)
{
    (void)state;
    struct core_reg *reg = open_reg();
    mix_fill(reg);
    struct core_dev_filter f;
    for (int sort = CORE_SORT_DEVICE_ID; sort <= CORE_SORT_OS; sort++)
        for (int desc = 0; desc < 2; desc++) {
            core_dev_filter_init(&f);
            f.sort = (enum core_dev_sort)sort;
            f.desc = desc;
            mix_walk(reg, f); /* the whole registry: budget walks of the order's index */
            static const char *const qs[] = {"alice01",  "dev0", "a",   "model-1",
                                             "+8190000", "BOB2", "zzz", "dev01"};
            /* Descending: the three kinds of search (driven, narrowed, broad). */
            for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]) && (!desc || i < 3); i++) {
                f.q = qs[i];
                mix_walk(reg, f);
            }
            f.q = "a";
            f.state = COMPLIANCE_QUARANTINE;
            mix_walk(reg, f);
            f.q = NULL;
            f.device_type = "iphone";
            mix_walk(reg, f);
        }
    /* A sorted cursor needs its key. */
    core_dev_filter_init(&f);
    f.sort = CORE_SORT_USER;
    f.after = "DEV00001";
    struct core_device d;
    size_t n;
    char next[CORE_DEVID_MAX + 1], key[CORE_SORT_KEY_MAX];
    assert_int_equal(core_reg_device_page_sorted(reg, &f, &d, 1, &n, next, key), CORE_REG_EINVAL);
    close_reg(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filters_use_indexes), cmocka_unit_test(test_statements_use_indexes),
        cmocka_unit_test(test_bounded_pages),       cmocka_unit_test(test_search_sort_use_indexes),
        cmocka_unit_test(test_search_sort_pages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
