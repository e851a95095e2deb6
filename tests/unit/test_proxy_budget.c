/* test_proxy_budget: the token bucket, a worker's budgets without Redis,
 * and the abuse: section of policy.yaml. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "eas/easq.h"
#include "policy/pol.h"
#include "proxy/budget.h"

static void test_bucket(void **state)
{
    (void)state;
    struct pol_bucket cf = {.per_minute = 60, .burst = 3}; /* one a second */
    struct budget_bucket bk = {0};
    int64_t t = 1000;
    for (int i = 0; i < 3; i++)
        assert_int_equal(budget_bucket_take(&bk, &cf, t), 0); /* the burst */
    int64_t wait = budget_bucket_take(&bk, &cf, t);
    assert_true(wait > 0 && wait <= 1001);
    assert_true(budget_bucket_take(&bk, &cf, t + 500) > 0); /* half a token */
    assert_int_equal(budget_bucket_take(&bk, &cf, t + 1000), 0);
    assert_true(budget_bucket_take(&bk, &cf, t + 1000) > 0);
    /* a long pause refills to the burst, never beyond */
    for (int i = 0; i < 3; i++)
        assert_int_equal(budget_bucket_take(&bk, &cf, t + 60000), 0);
    assert_true(budget_bucket_take(&bk, &cf, t + 60000) > 0);
    /* others' use is charged in full; the debt is at most a minute and a
     * burst (63 tokens) */
    budget_bucket_charge(&bk, &cf, 10, t + 60000);
    assert_true(bk.tokens < -9.9 && bk.tokens > -10.1);
    assert_true(budget_bucket_take(&bk, &cf, t + 70000) > 0);
    assert_int_equal(budget_bucket_take(&bk, &cf, t + 71001), 0);
    budget_bucket_charge(&bk, &cf, 1000, t + 71001);
    assert_true(bk.tokens >= -63.0 - 1e-9);
    assert_true(budget_bucket_take(&bk, &cf, t + 71001 + 63000) > 0);
    assert_int_equal(budget_bucket_take(&bk, &cf, t + 71001 + 64001), 0);
    /* per_minute 0 is no limit */
    struct pol_bucket off = {0};
    for (int i = 0; i < 1000; i++)
        assert_int_equal(budget_bucket_take(&bk, &off, t), 0);
}

static struct pol_policy *load(const char *yaml, char *err, size_t errlen)
{
    struct pol_policy *p = NULL;
    if (pol_load_buf("policy.yaml", yaml, strlen(yaml), &p, err, errlen) < 0)
        return NULL;
    return p;
}

static void test_policy(void **state)
{
    (void)state;
    char err[256];
    struct pol_policy *p = load("unknown_devices: allow\n", err, sizeof(err));
    assert_non_null(p);
    const struct pol_abuse *a = &p->abuse;
    assert_int_equal(a->budget[POL_BUDGET_DEVICE].per_minute, 30);
    assert_int_equal(a->budget[POL_BUDGET_DEVICE].burst, 600);
    assert_int_equal(a->budget[POL_BUDGET_CLIENT].burst, 120000);
    assert_int_equal(a->retry_after_ms, 30000);
    assert_int_equal(a->cred.user_failures, 10);
    assert_int_equal(a->cred.block_ms, 60000);
    assert_int_equal(a->autoblock[POL_AB_SYNC_COMMANDS].limit, 0);
    pol_unref(p);

    p = load("abuse:\n  budgets:\n    user: { per_minute: 10 }\n  autoblock:\n"
             "    user_agent_changes: { limit: 3, window: 1h, block: 14h }\n",
             err, sizeof(err));
    assert_non_null(p);
    assert_int_equal(p->abuse.budget[POL_BUDGET_USER].burst, 200); /* twenty minutes' worth */
    assert_int_equal(p->abuse.autoblock[POL_AB_USER_AGENT_CHANGES].block_ms, 14 * 3600000LL);
    assert_int_equal(p->abuse.autoblock[POL_AB_USER_AGENT_CHANGES].action, POL_AB_BLOCK);
    pol_unref(p);

    p = load("abuse:\n  autoblock:\n    out_of_budgets: { limit: 3, action: quarantine }\n", err,
             sizeof(err));
    assert_non_null(p);
    assert_int_equal(p->abuse.autoblock[POL_AB_OUT_OF_BUDGETS].action, POL_AB_QUARANTINE);
    pol_unref(p);
    assert_null(load("abuse:\n  autoblock:\n    out_of_budgets: { limit: 3, action: wipe }\n", err,
                     sizeof(err)));
    assert_non_null(strstr(err, "policy.yaml:3:"));
    assert_non_null(strstr(err, "allowed: block, quarantine"));

    assert_null(load("abuse:\n  credentials: { block: 2h, block_max: 1h }\n", err, sizeof(err)));
    assert_non_null(strstr(err, "block_max"));
    assert_null(load("abuse:\n  autoblock:\n    watsons: { limit: 1 }\n", err, sizeof(err)));
    assert_non_null(strstr(err, "policy.yaml:3:5"));
    assert_null(load("abuse:\n  budgets:\n    device: { per_minute: -1 }\n", err, sizeof(err)));
}

static struct pol_abuse abuse_of(int dev, int user, int client, int burst)
{
    struct pol_abuse a = {0};
    a.budget[POL_BUDGET_DEVICE] = (struct pol_bucket){dev, burst};
    a.budget[POL_BUDGET_USER] = (struct pol_bucket){user, burst};
    a.budget[POL_BUDGET_CLIENT] = (struct pol_bucket){client, burst};
    a.retry_after_ms = 5000;
    return a;
}

static void test_budgets(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct metrics m = {0};
    struct budget *b = budget_new(&loop, NULL, &m);
    assert_non_null(b);
    struct pol_abuse a = abuse_of(60, 0, 0, 2);
    struct budget_mark mk = {0};
    budget_mark_set(&mk, "alice", "DEV1", "192.0.2.1", false, true);
    struct budget_verdict v;
    int64_t t = 5000;
    budget_take(b, &a, &mk, EASQ_CMD_SYNC, "UA", t, &v);
    assert_false(v.refused);
    budget_take(b, &a, &mk, EASQ_CMD_SYNC, "UA", t, &v);
    assert_false(v.refused);
    budget_take(b, &a, &mk, EASQ_CMD_SYNC, "UA", t, &v);
    assert_true(v.refused);
    assert_string_equal(v.reason, "budget-device");
    assert_string_equal(v.throttle, "OutOfBudgets");
    assert_int_equal(v.retry_ms, 5000); /* the policy's least Retry-After */
    assert_int_equal(m.budget_refused[POL_BUDGET_DEVICE], 1);
    /* another device of the same user and address is not held */
    struct budget_mark mk2 = mk;
    budget_mark_set(&mk2, "alice", "DEV2", "192.0.2.1", false, true);
    budget_take(b, &a, &mk2, EASQ_CMD_PING, "UA", t, &v);
    assert_false(v.refused);
    /* a 401 gives the device its token back */
    budget_refund(b, &a, &mk);
    budget_take(b, &a, &mk, EASQ_CMD_SYNC, "UA", t, &v);
    assert_false(v.refused);

    /* the user's budget spans devices; a refusal takes nothing from the others */
    a = abuse_of(60, 60, 0, 3);
    budget_mark_set(&mk, "Bob", "DEV3", "192.0.2.2", false, true);
    budget_mark_set(&mk2, "bob", "DEV4", "192.0.2.2", false, true); /* same user, any case */
    for (int i = 0; i < 3; i++) {
        budget_take(b, &a, i % 2 ? &mk2 : &mk, EASQ_CMD_SYNC, "UA", t, &v);
        assert_false(v.refused);
    }
    budget_take(b, &a, &mk, EASQ_CMD_SYNC, "UA", t, &v);
    assert_true(v.refused);
    assert_string_equal(v.reason, "budget-user");
    a.budget[POL_BUDGET_USER].per_minute = 0;
    budget_take(b, &a, &mk, EASQ_CMD_SYNC, "UA", t, &v); /* DEV3's token came back */
    assert_false(v.refused);

    /* the client address */
    a = abuse_of(0, 0, 60, 1);
    budget_mark_set(&mk, "", "DEV5", "192.0.2.3", false, false);
    budget_take(b, &a, &mk, EASQ_CMD_SYNC, "UA", t, &v);
    assert_false(v.refused);
    budget_take(b, &a, &mk, EASQ_CMD_SYNC, "UA", t, &v);
    assert_true(v.refused);
    assert_string_equal(v.reason, "budget-client");
    budget_take(b, &a, &mk, EASQ_CMD_SYNC, "UA", t + 1000, &v); /* a second later */
    assert_false(v.refused);

    budget_free(b);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}

/* More keys than the table holds: no crash, and the keys in use keep
 * their state (the least recently used are forgotten first). */
static void test_pressure(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct metrics m = {0};
    struct budget *b = budget_new(&loop, NULL, &m);
    struct pol_abuse a = abuse_of(60, 0, 0, 1);
    struct budget_mark hot = {0}, mk = {0};
    budget_mark_set(&hot, "", "HOTDEV", "192.0.2.9", false, false);
    struct budget_verdict v;
    int64_t t = 1000;
    budget_take(b, &a, &hot, EASQ_CMD_SYNC, "", t, &v);
    assert_false(v.refused);
    char dev[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(dev, sizeof(dev), "D%d", i);
        budget_mark_set(&mk, "", dev, "192.0.2.9", false, false);
        budget_take(b, &a, &mk, EASQ_CMD_SYNC, "", t + i / 100, &v);
        assert_false(v.refused);
        if (i % 1000 == 0) { /* the hot key is used all along: never forgotten */
            budget_take(b, &a, &hot, EASQ_CMD_SYNC, "", t + i / 100, &v);
            assert_true(v.refused);
        }
    }
    budget_free(b);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}

static void test_autoblock(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct metrics m = {0};
    struct budget *b = budget_new(&loop, NULL, &m);
    struct pol_abuse a = abuse_of(0, 0, 0, 1);
    a.autoblock[POL_AB_SYNC_COMMANDS] = (struct pol_autoblock){3, 60000, 3600000, POL_AB_BLOCK};
    a.autoblock[POL_AB_COMMAND_FREQUENCY] = (struct pol_autoblock){5, 60000, 3600000, POL_AB_BLOCK};
    a.autoblock[POL_AB_USER_AGENT_CHANGES] =
        (struct pol_autoblock){2, 60000, 3600000, POL_AB_BLOCK};
    struct budget_mark mk = {0};
    budget_mark_set(&mk, "carol", "DEV6", "192.0.2.4", false, true);
    struct budget_verdict v;
    const char *uas[] = {"A", "A", "B", "B", "C", "D"};
    /* Requests Exchange did not accept (no budget_answered) count nothing:
     * anyone can name a DeviceId. */
    for (int i = 0; i < 6; i++) {
        budget_take(b, &a, &mk, EASQ_CMD_SYNC, uas[i], 500 + i, &v);
        assert_false(v.refused);
    }
    for (int r = 0; r < POL_AB_N; r++)
        assert_int_equal(m.autoblock_crossed[r], 0);
    for (int i = 0; i < 6; i++) {
        budget_take(b, &a, &mk, i < 4 ? EASQ_CMD_SYNC : EASQ_CMD_PING, uas[i], 1000 + i, &v);
        assert_false(v.refused); /* the core blocks; the proxy only reports */
        budget_answered(b, &a, &mk, 1000 + i);
    }
    assert_int_equal(m.autoblock_crossed[POL_AB_SYNC_COMMANDS], 1); /* once per window */
    assert_int_equal(m.autoblock_crossed[POL_AB_COMMAND_FREQUENCY], 1);
    assert_int_equal(m.autoblock_crossed[POL_AB_USER_AGENT_CHANGES], 1);
    /* a new window counts afresh */
    for (int i = 0; i < 3; i++) {
        budget_take(b, &a, &mk, EASQ_CMD_SYNC, "D", 70000 + i, &v);
        budget_answered(b, &a, &mk, 70000 + i);
    }
    assert_int_equal(m.autoblock_crossed[POL_AB_SYNC_COMMANDS], 2);
    budget_free(b);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}

/* OutOfBudgets: a refusal is the device's incident only when it comes
 * with the credentials, user and address Exchange last accepted for it. */
static void test_out_of_budgets(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct metrics m = {0};
    struct budget *b = budget_new(&loop, NULL, &m);
    struct pol_abuse a = abuse_of(1, 0, 0, 1);
    a.autoblock[POL_AB_OUT_OF_BUDGETS] = (struct pol_autoblock){1, 3600000, 3600000, POL_AB_BLOCK};
    struct budget_mark phone = {0}, other = {0}, anon = {0}, elsewhere = {0};
    budget_mark_set(&phone, "dave", "DEV7", "192.0.2.5", false, true);
    budget_mark_set(&other, "mallory", "DEV7", "192.0.2.5", false, true);
    budget_mark_set(&anon, "", "DEV7", "192.0.2.5", false, false);
    budget_mark_set(&elsewhere, "dave", "DEV7", "198.51.100.7", false, true);
    struct budget_verdict v;
    int64_t t = 1000;
    /* never accepted: a refusal is nobody's incident */
    budget_take(b, &a, &anon, EASQ_CMD_SYNC, "", t, &v);
    assert_false(v.refused);
    budget_take(b, &a, &anon, EASQ_CMD_SYNC, "", t, &v);
    assert_true(v.refused);
    assert_int_equal(m.autoblock_crossed[POL_AB_OUT_OF_BUDGETS], 0);
    /* the phone is accepted once; others' refusals still count nothing */
    budget_answered(b, &a, &phone, t);
    const struct budget_mark *not_own[] = {&other, &anon, &elsewhere};
    for (size_t i = 0; i < 3; i++) {
        budget_take(b, &a, (struct budget_mark *)not_own[i], EASQ_CMD_SYNC, "", t + 1, &v);
        assert_true(v.refused);
    }
    assert_int_equal(m.autoblock_crossed[POL_AB_OUT_OF_BUDGETS], 0);
    /* the phone's own refusal does */
    budget_take(b, &a, &phone, EASQ_CMD_SYNC, "", t + 2, &v);
    assert_true(v.refused);
    assert_int_equal(m.autoblock_crossed[POL_AB_OUT_OF_BUDGETS], 1);
    budget_free(b);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket),    cmocka_unit_test(test_policy),
        cmocka_unit_test(test_budgets),   cmocka_unit_test(test_pressure),
        cmocka_unit_test(test_autoblock), cmocka_unit_test(test_out_of_budgets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
