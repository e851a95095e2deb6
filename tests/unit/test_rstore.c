/*
 * test_rstore: the per-worker device state cache against a real redis-server
 * (started here on a free loopback port, stopped by pid): miss then hit, one
 * HGETALL for many concurrent lookups, negative entries, invalidation by
 * PUBLISH, user binding and malformed hashes, lookup timeout, outage and
 * max_stale, reconnect, and rate-limited sightings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/conf.h"
#include "connectors/rstore.h"
#include "test_rstore_util.h"

static int g_port;
static pid_t g_redis;
static redisContext *g_rc;             /* the test's own blocking connection: plays the core */
static int64_t g_refresh_ms;           /* 0 = the default */
static struct rstore_shared *g_shared; /* NULL = none */

struct fix {
    uv_loop_t loop;
    struct conf_redis conf;
    struct rstore *rs;
    int changes, resets;
    char changed_dev[RSTORE_DEVID_MAX + 1];
    struct rstore_result changed;
    char changed_user[64];
};

struct lk {
    struct rstore_wait w;
    int called;
    struct rstore_result res;
    char user[64], reason[64];
    int64_t at_ms;
};

static void lk_cb(struct rstore_wait *w, void *arg, const struct rstore_result *res)
{
    struct lk *l = arg;
    assert_ptr_equal(w, &l->w);
    l->called++;
    l->res = *res;
    snprintf(l->user, sizeof(l->user), "%s", res->user);
    snprintf(l->reason, sizeof(l->reason), "%s", res->reason);
    l->res.user = l->user;
    l->res.reason = l->reason;
    l->at_ms = tr_ms();
}

static void on_change(void *arg, const char *dev, const struct rstore_result *res)
{
    struct fix *f = arg;
    if (!dev) {
        f->resets++;
        return;
    }
    f->changes++;
    snprintf(f->changed_dev, sizeof(f->changed_dev), "%s", dev);
    f->changed = *res;
    snprintf(f->changed_user, sizeof(f->changed_user), "%s", res->user);
}

static bool is_connected(void *arg)
{
    return rstore_connected(((struct fix *)arg)->rs);
}

static bool is_down(void *arg)
{
    return !rstore_connected(((struct fix *)arg)->rs);
}

static bool lk_done(void *arg)
{
    return ((struct lk *)arg)->called > 0;
}

static bool fix_changed(void *arg)
{
    return ((struct fix *)arg)->changes > 0;
}

static bool fix_gone(void *arg)
{
    struct fix *f = arg;
    return f->changes > 0 && f->changed.status == RSTORE_NOT_FOUND;
}

static struct fix *fix_new_conf(int64_t max_stale_ms, const char *password, int db, bool wait)
{
    struct fix *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->conf.enabled = true;
    f->conf.host = "127.0.0.1";
    f->conf.port = g_port;
    f->conf.max_stale_ms = max_stale_ms;
    f->conf.lookup_timeout_ms = 50;
    f->conf.sighting_interval_ms = 60000;
    f->conf.stream_maxlen = 1000;
    f->conf.password = password;
    f->conf.db = db;
    struct rstore_opts o = {.instance = "test",
                            .heartbeat_ms = 100,
                            .connect_ms = 500,
                            .refresh_ms = g_refresh_ms,
                            .shared = g_shared};
    f->rs = rstore_new_ex(&f->loop, &f->conf, &o);
    assert_non_null(f->rs);
    rstore_on_change(f->rs, on_change, f);
    if (wait)
        assert_true(tr_run_until(&f->loop, is_connected, f, 5000));
    return f;
}

static struct fix *fix_new(int64_t max_stale_ms)
{
    return fix_new_conf(max_stale_ms, NULL, 0, true);
}

static void fix_free(struct fix *f)
{
    rstore_free(f->rs);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
}

/* Look up and wait for the answer, sync or async. Returns the rc. */
static int lookup_wait(struct fix *f, const char *dev, struct lk *l)
{
    memset(l, 0, sizeof(*l));
    struct rstore_result out;
    int rc = rstore_lookup(f->rs, dev, strlen(dev), &out, &l->w, lk_cb, l);
    if (rc == 0) {
        lk_cb(&l->w, l, &out);
    } else if (rc == RSTORE_PENDING) {
        assert_true(tr_run_until(&f->loop, lk_done, l, 2000));
        assert_int_equal(l->called, 1);
    }
    return rc;
}

static void set_dev(const char *dev, const char *state, const char *user, long version)
{
    tr_do(g_rc, "HSET easgate:dev:%s state %s user %s reason %s version %ld updated %lld", dev,
          state, user, "test", version, (long long)time(NULL) * 1000);
}

static int group_setup(void **state)
{
    if (!tr_have("redis-server")) {
        fprintf(stderr, "redis-server not installed: skipping\n");
        return 0;
    }
    g_port = tr_free_port();
    g_redis = tr_redis_start(g_port, NULL, 0);
    g_rc = tr_connect(g_port, 5000);
    return g_rc ? 0 : -1;
}

static int group_teardown(void **state)
{
    if (g_rc)
        redisFree(g_rc);
    tr_kill(g_redis, SIGTERM);
    tr_rmtmp();
    return 0;
}

static void skip_without_redis(void)
{
    if (!g_rc)
        skip();
}

/* ---- tests ---- */

static void test_devid_norm(void **state)
{
    char out[RSTORE_DEVID_MAX + 1];
    assert_int_equal(rstore_devid_norm("ApplF17abc", 10, out), 10);
    assert_string_equal(out, "APPLF17ABC");
    /* The parser's rule, not a wider one of the store's own. */
    assert_int_equal(rstore_devid_norm("a-b_c.d9", 8, out), -EINVAL);
    assert_int_equal(rstore_devid_norm("", 0, out), -EINVAL);
    assert_int_equal(rstore_devid_norm("a b", 3, out), -EINVAL);
    assert_int_equal(rstore_devid_norm("a:b", 3, out), -EINVAL);
    assert_int_equal(rstore_devid_norm("a\0b", 3, out), -EINVAL);
    char longid[RSTORE_DEVID_MAX + 2];
    memset(longid, 'x', sizeof(longid));
    assert_int_equal(rstore_devid_norm(longid, RSTORE_DEVID_MAX, out), RSTORE_DEVID_MAX);
    assert_int_equal(rstore_devid_norm(longid, RSTORE_DEVID_MAX + 1, out), -EINVAL);
}

static void test_miss_then_hit(void **state)
{
    skip_without_redis();
    struct fix *f = fix_new(3000);
    set_dev("HITDEV1", "allow", "alice", 1);
    struct lk l;
    /* Lower case on the wire, upper case in Redis: the key is canonical. */
    assert_int_equal(lookup_wait(f, "hitdev1", &l), RSTORE_PENDING);
    assert_int_equal(l.res.status, RSTORE_FOUND);
    assert_int_equal(l.res.state, RSTORE_ALLOW);
    assert_string_equal(l.user, "alice");
    assert_string_equal(l.reason, "test");
    assert_int_equal(l.res.version, 1);
    assert_false(l.res.cached_fallback);
    assert_false(l.res.stale);
    assert_int_equal(lookup_wait(f, "HitDev1", &l), 0);
    assert_int_equal(l.res.status, RSTORE_FOUND);
    assert_string_equal(l.user, "alice");
    struct rstore_stats st;
    rstore_stats_get(f->rs, &st);
    assert_int_equal(st.stale, 0);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.fetches, 1);
    assert_int_equal(st.lat_count, 1);
    assert_int_equal(st.connected, 1);
    assert_int_equal(rstore_lookup(f->rs, "bad id", 6, &l.res, &l.w, lk_cb, &l), -EINVAL);
    fix_free(f);
}

static void test_no_stampede(void **state)
{
    skip_without_redis();
    struct fix *f = fix_new(3000);
    set_dev("HERD1", "block", "", 7);
    tr_do(g_rc, "CONFIG RESETSTAT");
    enum { N = 64 };
    struct lk *l = calloc(N, sizeof(*l));
    struct rstore_result out;
    for (int i = 0; i < N; i++)
        assert_int_equal(rstore_lookup(f->rs, "herd1", 5, &out, &l[i].w, lk_cb, &l[i]),
                         RSTORE_PENDING);
    /* One cancelled before the answer: it must not be called. */
    rstore_cancel(&l[5].w);
    rstore_cancel(&l[5].w); /* twice is harmless */
    assert_true(tr_run_until(&f->loop, lk_done, &l[N - 1], 2000));
    for (int i = 0; i < N; i++) {
        if (i == 5) {
            assert_int_equal(l[i].called, 0);
            continue;
        }
        assert_int_equal(l[i].called, 1);
        assert_int_equal(l[i].res.state, RSTORE_BLOCK);
        assert_int_equal(l[i].res.version, 7);
    }
    assert_int_equal(tr_calls(g_rc, "hgetall"), 1);
    free(l);
    fix_free(f);
}

static void test_negative_cache(void **state)
{
    skip_without_redis();
    struct fix *f = fix_new(3000);
    tr_do(g_rc, "DEL easgate:dev:NOSUCH1");
    struct lk l;
    assert_int_equal(lookup_wait(f, "nosuch1", &l), RSTORE_PENDING);
    assert_int_equal(l.res.status, RSTORE_NOT_FOUND);
    tr_do(g_rc, "CONFIG RESETSTAT");
    assert_int_equal(lookup_wait(f, "NOSUCH1", &l), 0);
    assert_int_equal(l.res.status, RSTORE_NOT_FOUND);
    assert_int_equal(tr_calls(g_rc, "hgetall"), 0);
    struct rstore_stats st;
    rstore_stats_get(f->rs, &st);
    assert_int_equal(st.negative_hits, 1);
    fix_free(f);
}

static void test_invalidation(void **state)
{
    skip_without_redis();
    struct fix *f = fix_new(3000);
    set_dev("INVAL1", "allow", "bob", 1);
    struct lk l;
    lookup_wait(f, "inval1", &l);
    assert_int_equal(l.res.state, RSTORE_ALLOW);
    assert_int_equal(lookup_wait(f, "inval1", &l), 0);

    /* The core's write: HSET and PUBLISH in one transaction. */
    int64_t t0 = tr_ms();
    tr_do(g_rc, "MULTI");
    tr_do(g_rc, "HSET easgate:dev:INVAL1 state block reason admin version 2");
    tr_do(g_rc, "PUBLISH easgate:changed %s", "INVAL1 2");
    tr_do(g_rc, "EXEC");
    assert_true(tr_run_until(&f->loop, fix_changed, f, 1000));
    assert_true(tr_ms() - t0 < 1000);
    assert_string_equal(f->changed_dev, "INVAL1");
    assert_int_equal(f->changed.status, RSTORE_FOUND);
    assert_int_equal(f->changed.state, RSTORE_BLOCK);
    assert_string_equal(f->changed_user, "bob");
    assert_int_equal(lookup_wait(f, "inval1", &l), 0);
    assert_int_equal(l.res.state, RSTORE_BLOCK);
    assert_string_equal(l.reason, "admin");

    /* An old version number changes nothing and fetches nothing. */
    tr_do(g_rc, "CONFIG RESETSTAT");
    f->changes = 0;
    tr_do(g_rc, "PUBLISH easgate:changed %s", "INVAL1 1");
    tr_run_until(&f->loop, tr_never, NULL, 200);
    assert_int_equal(f->changes, 0);
    assert_int_equal(tr_calls(g_rc, "hgetall"), 0);

    /* A device this worker never asked about: nothing to refetch. */
    tr_do(g_rc, "CONFIG RESETSTAT");
    tr_do(g_rc, "PUBLISH easgate:changed %s", "NEVERASKED 4");
    tr_run_until(&f->loop, tr_never, NULL, 200);
    assert_int_equal(f->changes, 0);
    assert_int_equal(tr_calls(g_rc, "hgetall"), 0);

    /* Deleted by the core: the device becomes unknown. Garbage is ignored. */
    tr_do(g_rc, "PUBLISH easgate:changed %s", "not:valid 3");
    tr_do(g_rc, "PUBLISH easgate:changed %s", "");
    tr_do(g_rc, "PUBLISH easgate:changed %s", " 5");
    tr_do(g_rc, "PUBLISH easgate:changed %s", "INVAL1 notanumber99999999999999999999");
    char huge[2048];
    memset(huge, 'A', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    tr_do(g_rc, "PUBLISH easgate:changed %s", huge);
    tr_do(g_rc, "DEL easgate:dev:INVAL1");
    tr_do(g_rc, "PUBLISH easgate:changed %s", "inval1 3");
    assert_true(tr_run_until(&f->loop, fix_gone, f, 1000));
    assert_int_equal(f->changed.status, RSTORE_NOT_FOUND);
    assert_int_equal(lookup_wait(f, "inval1", &l), 0);
    assert_int_equal(l.res.status, RSTORE_NOT_FOUND);
    fix_free(f);
}

static void test_bad_hash_fails_closed(void **state)
{
    skip_without_redis();
    struct fix *f = fix_new(3000);
    tr_do(g_rc, "HSET easgate:dev:BAD1 state maybe user carol version 1");
    tr_do(g_rc, "HSET easgate:dev:BAD2 user dave version 1");
    tr_do(g_rc, "HSET easgate:dev:BAD3 state allow version nope");
    tr_do(g_rc, "SET easgate:dev:BAD4 notahash");
    const char *devs[] = {"bad1", "bad2", "bad3"};
    struct lk l;
    for (int i = 0; i < 3; i++) {
        lookup_wait(f, devs[i], &l);
        assert_int_equal(l.res.status, RSTORE_FOUND);
        assert_int_equal(l.res.state, RSTORE_BLOCK);
        assert_non_null(strstr(l.reason, "state-invalid"));
        assert_string_equal(l.user, "");
    }
    /* WRONGTYPE: an error, not a device; nothing cached, nothing found. */
    lookup_wait(f, "bad4", &l);
    assert_int_equal(l.res.status, RSTORE_UNAVAILABLE);
    fix_free(f);
}

static void test_lookup_timeout(void **state)
{
    skip_without_redis();
    struct fix *f = fix_new(3000);
    set_dev("SLOW1", "allow", "", 1);
    /* A stopped server holds our HGETALL; the lookup must give up after
     * 50 ms (well before the heartbeat declares the link dead). */
    struct lk l;
    memset(&l, 0, sizeof(l));
    struct rstore_result out;
    kill(g_redis, SIGSTOP);
    int64_t t0 = tr_ms();
    int rc = rstore_lookup(f->rs, "slow1", 5, &out, &l.w, lk_cb, &l);
    assert_int_equal(rc, RSTORE_PENDING);
    bool done = tr_run_until(&f->loop, lk_done, &l, 250);
    kill(g_redis, SIGCONT);
    assert_true(done);
    assert_true(l.at_ms - t0 < 200);
    assert_int_equal(l.res.status, RSTORE_UNAVAILABLE);
    struct rstore_stats st;
    rstore_stats_get(f->rs, &st);
    assert_int_equal(st.timeouts, 1);
    /* The late answer still lands in the cache. */
    tr_run_until(&f->loop, tr_never, NULL, 100);
    assert_int_equal(lookup_wait(f, "slow1", &l), 0);
    assert_int_equal(l.res.state, RSTORE_ALLOW);
    fix_free(f);
}

static void test_sightings(void **state)
{
    skip_without_redis();
    struct fix *f = fix_new(3000);
    tr_do(g_rc, "DEL easgate:sightings");
    const char *fields[] = {"user", "alice", "device_type", "iPhone"};
    assert_int_equal(rstore_sighting(f->rs, RSTORE_SIGHT_UNKNOWN, "sight1", 6, fields, 4), 0);
    assert_int_equal(rstore_sighting(f->rs, RSTORE_SIGHT_UNKNOWN, "SIGHT1", 6, fields, 4), 1);
    assert_int_equal(rstore_sighting(f->rs, RSTORE_SIGHT_DEVINFO, "sight1", 6, fields, 2), 0);
    /* An authenticated sighting is not held back by an unauthenticated one
     * (the core registers devices only from those); a second one is. */
    const char *authed[] = {"user", "alice", "auth", "exchange"};
    assert_int_equal(rstore_sighting(f->rs, RSTORE_SIGHT_UNKNOWN, "sight1", 6, authed, 4), 0);
    assert_int_equal(rstore_sighting(f->rs, RSTORE_SIGHT_UNKNOWN, "sight1", 6, authed, 4), 1);
    assert_int_equal(rstore_sighting(f->rs, RSTORE_SIGHT_UNKNOWN, "sight1", 6, fields, 4), 1);
    assert_int_equal(rstore_sighting(f->rs, RSTORE_SIGHT_UNKNOWN, "sight2", 6, NULL, 0), 0);
    assert_int_equal(rstore_sighting(f->rs, RSTORE_SIGHT_WIPE_ACK, "sight1", 6, NULL, 0), 0);
    assert_int_equal(rstore_sighting(f->rs, RSTORE_SIGHT_WIPE_ACK, "sight1", 6, NULL, 0), 0);
    assert_int_equal(rstore_sighting(f->rs, RSTORE_SIGHT_UNKNOWN, "sight3", 6, fields, 3), -EINVAL);
    assert_int_equal(rstore_sighting(f->rs, RSTORE_SIGHT_UNKNOWN, "bad id", 6, NULL, 0), -EINVAL);
    struct rstore_sight si = {.kind = RSTORE_SIGHT_DEVINFO,
                              .device_id = "sight4",
                              .model = "iPhone15,2",
                              .imei = "",
                              .os = "iOS 17.4"};
    assert_int_equal(rstore_sight(f->rs, &si), 0);
    tr_run_until(&f->loop, tr_never, NULL, 150);
    redisReply *r = tr_cmd(g_rc, "XLEN easgate:sightings");
    assert_non_null(r);
    assert_int_equal(r->integer, 7);
    freeReplyObject(r);
    r = tr_cmd(g_rc, "XREVRANGE easgate:sightings + - COUNT 1");
    redisReply *last = r->element[0]->element[1];
    assert_int_equal(last->elements, 12); /* 4 fixed pairs + model + os, empty imei left out */
    assert_string_equal(last->element[1]->str, "device-info");
    assert_string_equal(last->element[8]->str, "model");
    assert_string_equal(last->element[9]->str, "iPhone15,2");
    assert_string_equal(last->element[10]->str, "os");
    freeReplyObject(r);
    r = tr_cmd(g_rc, "XRANGE easgate:sightings - + COUNT 1");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    redisReply *kv = r->element[0]->element[1];
    const char *want[] = {"kind",     "unknown-device", "device",      "SIGHT1",
                          "instance", "test",           "time",        NULL,
                          "user",     "alice",          "device_type", "iPhone"};
    assert_int_equal(kv->elements, 12);
    for (size_t i = 0; i < 12; i++)
        if (want[i])
            assert_string_equal(kv->element[i]->str, want[i]);
    freeReplyObject(r);
    struct rstore_stats st;
    rstore_stats_get(f->rs, &st);
    assert_int_equal(st.sightings_sent, 7);
    assert_int_equal(st.sightings_suppressed, 3);
    fix_free(f);
}

/* ---- abuse counters (rstore_count.c) ---- */

struct counts {
    long long total[4];
    size_t got;
    bool done;
};

static void count_cb(void *arg, size_t i, long long total)
{
    struct counts *c = arg;
    if (i == SIZE_MAX) {
        c->done = true;
        return;
    }
    assert_true(i < 4);
    c->total[i] = total;
    c->got++;
}

static bool counts_done(void *arg)
{
    return ((struct counts *)arg)->done;
}

struct fails {
    enum rstore_fail_outcome o;
    long long value, strike;
    int calls;
};

static void fail_cb(void *arg, uint64_t tag, enum rstore_fail_outcome o, long long value,
                    long long strike)
{
    struct fails *f = arg;
    assert_int_equal(tag, 7);
    f->o = o, f->value = value, f->strike = strike;
    f->calls++;
}

static bool fails_called(void *arg)
{
    return ((struct fails *)arg)->calls > 0;
}

static struct fails fail_once(struct fix *fx, const struct rstore_fail *fl)
{
    struct fails f = {0};
    assert_int_equal(rstore_fail_add(fx->rs, fl, fail_cb, &f, 7), 0);
    assert_true(tr_run_until(&fx->loop, fails_called, &f, 2000));
    return f;
}

static void test_abuse_counters(void **state)
{
    skip_without_redis();
    struct fix *fx = fix_new(3000);
    /* budgets: the totals of every adder, per field and second, and a TTL */
    tr_do(g_rc, "DEL easgate:bud:1000");
    tr_do(g_rc, "HSET easgate:bud:1000 d:DEV1 5");
    struct rstore_count v[3] = {{"d:DEV1", 6, 2}, {"c:192.0.2.1", 11, 1}, {"d:DEV1", 6, -1}};
    struct counts c = {0};
    assert_int_equal(rstore_count_add(fx->rs, 1000, v, 3, count_cb, &c), 0);
    assert_true(tr_run_until(&fx->loop, counts_done, &c, 2000));
    assert_int_equal(c.got, 3);
    assert_int_equal(c.total[0], 7); /* another proxy's 5 and these 2 */
    assert_int_equal(c.total[1], 1);
    assert_int_equal(c.total[2], 6); /* a 401's refund */
    redisReply *r = tr_cmd(g_rc, "PTTL easgate:bud:1000");
    assert_true(r->integer > 0 && r->integer <= RSTORE_BUDGET_TTL_MS);
    freeReplyObject(r);

    /* failed logins: counted to the limit, then a block that doubles per
     * repeat up to block_max; a block in force answers what is left */
    tr_do(g_rc, "DEL easgate:auth:n:user:t1 easgate:auth:b:user:t1 easgate:auth:s:user:t1");
    struct rstore_fail fl = {.scope = "user",
                             .id = "t1",
                             .window_ms = 60000,
                             .limit = 3,
                             .block_ms = 300,
                             .block_max_ms = 1000,
                             .memory_ms = 60000};
    struct fails f = fail_once(fx, &fl);
    assert_int_equal(f.o, RSTORE_FAIL_COUNTED);
    assert_int_equal(f.value, 1);
    fail_once(fx, &fl);
    f = fail_once(fx, &fl);
    assert_int_equal(f.o, RSTORE_FAIL_BLOCKED);
    assert_int_equal(f.value, 300);
    assert_int_equal(f.strike, 1);
    f = fail_once(fx, &fl);
    assert_int_equal(f.o, RSTORE_FAIL_ALREADY);
    assert_true(f.value > 0 && f.value <= 300);
    tr_run_until(&fx->loop, tr_never, NULL, 350);
    for (int i = 0; i < 2; i++)
        assert_int_equal(fail_once(fx, &fl).o, RSTORE_FAIL_COUNTED); /* counted afresh */
    f = fail_once(fx, &fl);
    assert_int_equal(f.o, RSTORE_FAIL_BLOCKED);
    assert_int_equal(f.value, 600);
    assert_int_equal(f.strike, 2);
    tr_do(g_rc, "DEL easgate:auth:b:user:t1");
    tr_do(g_rc, "SET easgate:auth:s:user:t1 5");
    for (int i = 0; i < 2; i++)
        fail_once(fx, &fl);
    f = fail_once(fx, &fl);
    assert_int_equal(f.value, 1000); /* 300 doubled five times, capped */
    struct rstore_stats st;
    rstore_stats_get(fx->rs, &st);
    assert_int_equal(st.abuse_ops, 1 + 10);
    fix_free(fx);
}

static void test_metrics_format(void **state)
{
    struct rstore_stats a = {.hits = 3, .misses = 1, .lat_count = 1, .connected = 1}, sum = {0};
    a.lat_buckets[2] = 1;
    a.lat_sum_us = 400;
    rstore_stats_add(&sum, &a);
    rstore_stats_add(&sum, &a);
    char buf[4096];
    int n = rstore_stats_format(&sum, buf, sizeof(buf));
    assert_true(n > 0);
    assert_non_null(strstr(buf, "easgate_redis_cache_hits_total 6\n"));
    assert_non_null(strstr(buf, "easgate_redis_connected 2\n"));
    assert_non_null(strstr(buf, "easgate_redis_lookup_seconds_bucket{le=\"0.0005\"} 2\n"));
    assert_non_null(strstr(buf, "easgate_redis_lookup_seconds_bucket{le=\"+Inf\"} 2\n"));
    assert_int_equal(rstore_stats_format(&sum, buf, 100), -ENOSPC);
}

static void test_auth_and_db(void **state)
{
    skip_without_redis();
    tr_do(g_rc, "SELECT 3");
    set_dev("DB3DEV", "wipe", "", 9);
    tr_do(g_rc, "SELECT 0");
    tr_do(g_rc, "CONFIG SET requirepass %s", "s3cret");
    tr_do(g_rc, "AUTH %s", "s3cret");

    struct fix *f = fix_new_conf(3000, "s3cret", 3, true);
    struct lk l;
    assert_int_equal(lookup_wait(f, "db3dev", &l), RSTORE_PENDING);
    assert_int_equal(l.res.status, RSTORE_FOUND);
    assert_int_equal(l.res.state, RSTORE_WIPE);
    fix_free(f);

    /* A wrong password never comes up, and says so by staying down. */
    f = fix_new_conf(3000, "wrong", 0, false);
    tr_run_until(&f->loop, tr_never, NULL, 500);
    assert_false(rstore_connected(f->rs));
    assert_int_equal(lookup_wait(f, "db3dev", &l), 0);
    assert_int_equal(l.res.status, RSTORE_UNAVAILABLE);
    fix_free(f);
    tr_do(g_rc, "CONFIG SET requirepass %s", "");
}

/* A message the core forgot to publish is caught by the background refresh
 * of old entries: the old answer is served once, the next one is fresh. */
static void test_background_refresh(void **state)
{
    skip_without_redis();
    g_refresh_ms = 200;
    struct fix *f = fix_new(3000);
    g_refresh_ms = 0;
    set_dev("REFR1", "allow", "", 1);
    struct lk l;
    lookup_wait(f, "refr1", &l);
    assert_int_equal(l.res.state, RSTORE_ALLOW);
    set_dev("REFR1", "block", "", 2); /* no PUBLISH */
    tr_run_until(&f->loop, tr_never, NULL, 300);
    assert_int_equal(lookup_wait(f, "refr1", &l), 0);
    assert_int_equal(l.res.state, RSTORE_ALLOW); /* served at once, refetch started */
    tr_run_until(&f->loop, tr_never, NULL, 100);
    assert_int_equal(lookup_wait(f, "refr1", &l), 0);
    assert_int_equal(l.res.state, RSTORE_BLOCK);
    assert_int_equal(l.res.version, 2);
    fix_free(f);
}

/* A host name is resolved off the loop; freeing while it resolves (or with
 * lookups waiting) leaks nothing and calls nobody back. */
static void test_hostname_and_early_free(void **state)
{
    skip_without_redis();
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct conf_redis conf = {.enabled = true, .host = "localhost", .port = g_port};
    struct rstore *rs = rstore_new(&loop, &conf);
    assert_non_null(rs);
    rstore_free(rs); /* resolve still in flight */
    uv_run(&loop, UV_RUN_DEFAULT);

    conf.host = "127.0.0.1";
    struct rstore_opts o = {.heartbeat_ms = 100};
    rs = rstore_new_ex(&loop, &conf, &o);
    assert_true(tr_run_until(&loop, (bool (*)(void *))rstore_connected, rs, 5000));
    struct lk l[3];
    memset(l, 0, sizeof(l));
    struct rstore_result out;
    for (int i = 0; i < 3; i++)
        assert_int_equal(rstore_lookup(rs, "early1", 6, &out, &l[i].w, lk_cb, &l[i]),
                         RSTORE_PENDING);
    rstore_free(rs);
    uv_run(&loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 3; i++)
        assert_int_equal(l[i].called, 0);
    assert_int_equal(uv_loop_close(&loop), 0);

    /* A name that does not resolve: no crash, just not connected. */
    uv_loop_init(&loop);
    conf.host = "no-such-host.invalid";
    rs = rstore_new(&loop, &conf);
    tr_run_until(&loop, tr_never, NULL, 300);
    assert_false(rstore_connected(rs));
    rstore_free(rs);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);

    /* Unusable configurations are refused, not crashed on. */
    struct conf_redis bad = {.enabled = true};
    assert_null(rstore_new(&loop, &bad));
    bad.sentinel.master = "m"; /* no nodes */
    assert_null(rstore_new(&loop, &bad));
    assert_null(rstore_new(NULL, &conf));
}

/* Bounds: at most max_inflight distinct fetches, at most cache_max entries
 * (the least recently used goes first). */
static void test_bounds(void **state)
{
    skip_without_redis();
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct conf_redis conf = {.enabled = true, .host = "127.0.0.1", .port = g_port};
    struct rstore_opts o = {.heartbeat_ms = 100, .cache_max = 2, .max_inflight = 2};
    struct rstore *rs = rstore_new_ex(&loop, &conf, &o);
    assert_true(tr_run_until(&loop, (bool (*)(void *))rstore_connected, rs, 5000));
    set_dev("BND1", "allow", "", 1);
    set_dev("BND2", "allow", "", 1);
    set_dev("BND3", "block", "", 1);
    struct lk l[3];
    memset(l, 0, sizeof(l));
    struct rstore_result out;
    assert_int_equal(rstore_lookup(rs, "bnd1", 4, &out, &l[0].w, lk_cb, &l[0]), RSTORE_PENDING);
    assert_int_equal(rstore_lookup(rs, "bnd2", 4, &out, &l[1].w, lk_cb, &l[1]), RSTORE_PENDING);
    /* A third distinct device while two are in flight: answered now. */
    assert_int_equal(rstore_lookup(rs, "bnd3", 4, &out, &l[2].w, lk_cb, &l[2]), 0);
    assert_int_equal(out.status, RSTORE_UNAVAILABLE);
    assert_true(tr_run_until(&loop, lk_done, &l[1], 2000));
    assert_true(tr_run_until(&loop, lk_done, &l[0], 2000));
    /* Both cached; touching bnd1 makes bnd2 the least recently used. */
    assert_int_equal(rstore_lookup(rs, "bnd1", 4, &out, &l[0].w, lk_cb, &l[0]), 0);
    memset(&l[2], 0, sizeof(l[2]));
    assert_int_equal(rstore_lookup(rs, "bnd3", 4, &out, &l[2].w, lk_cb, &l[2]), RSTORE_PENDING);
    assert_true(tr_run_until(&loop, lk_done, &l[2], 2000));
    assert_int_equal(l[2].res.state, RSTORE_BLOCK);
    struct rstore_stats st;
    rstore_stats_get(rs, &st);
    assert_int_equal(st.entries, 2);
    assert_int_equal(rstore_lookup(rs, "bnd1", 4, &out, &l[0].w, lk_cb, &l[0]), 0);
    memset(&l[1], 0, sizeof(l[1]));
    assert_int_equal(rstore_lookup(rs, "bnd2", 4, &out, &l[1].w, lk_cb, &l[1]), RSTORE_PENDING);
    rstore_cancel(&l[1].w);
    rstore_free(rs);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Last: it stops and restarts the shared redis-server. */
static void test_outage_stale_reconnect(void **state)
{
    skip_without_redis();
    struct fix *f = fix_new(3000);
    set_dev("OUT1", "allow", "erin", 4);
    struct lk l;
    lookup_wait(f, "out1", &l);
    assert_int_equal(l.res.state, RSTORE_ALLOW);
    int resets0 = f->resets;

    tr_kill(g_redis, SIGKILL);
    g_redis = 0;
    assert_true(tr_run_until(&f->loop, is_down, f, 2000));
    assert_false(rstore_connected(f->rs));
    /* Known device: cached state, not yet stale. */
    assert_int_equal(lookup_wait(f, "out1", &l), 0);
    assert_int_equal(l.res.status, RSTORE_FOUND);
    assert_int_equal(l.res.state, RSTORE_ALLOW);
    assert_true(l.res.cached_fallback);
    assert_false(l.res.stale);
    assert_false(rstore_stale(f->rs));
    /* Unknown device: nothing to say, the policy decides. */
    assert_int_equal(lookup_wait(f, "never1", &l), 0);
    assert_int_equal(l.res.status, RSTORE_UNAVAILABLE);
    assert_int_equal(rstore_sighting(f->rs, RSTORE_SIGHT_UNKNOWN, "never1", 6, NULL, 0), -ENOTCONN);

    /* max_stale (3 s) after the last contact: stale, fail closed. */
    tr_run_until(&f->loop, tr_never, NULL, 3300);
    assert_true(rstore_stale(f->rs));
    assert_int_equal(lookup_wait(f, "out1", &l), 0);
    assert_int_equal(l.res.status, RSTORE_FOUND);
    assert_true(l.res.stale);
    struct rstore_stats st;
    rstore_stats_get(f->rs, &st);
    assert_int_equal(st.connected, 0);
    assert_int_equal(st.stale, 1);
    assert_true(st.since_contact_ms >= 3000);

    /* Back: reconnect within the 5 s backoff cap, whole cache invalidated. */
    g_redis = tr_redis_start(g_port, NULL, 0);
    redisFree(g_rc);
    g_rc = tr_connect(g_port, 5000);
    assert_non_null(g_rc);
    set_dev("OUT1", "block", "erin", 5); /* changed while we were away */
    int64_t t0 = tr_ms();
    assert_true(tr_run_until(&f->loop, is_connected, f, 7000));
    assert_true(tr_ms() - t0 < 6000);
    assert_int_equal(f->resets, resets0 + 1);
    assert_false(rstore_stale(f->rs));
    assert_int_equal(lookup_wait(f, "out1", &l), RSTORE_PENDING);
    assert_int_equal(l.res.state, RSTORE_BLOCK);
    assert_false(l.res.stale);
    fix_free(f);
}

/* Two instances (two workers) sharing the process-wide fallback: what one
 * fetched answers for the other while Redis is away, including a state the
 * other never looked up and one changed by a message; a device nobody
 * fetched stays unavailable. */
/* Kill Redis and run both loops until both instances know. */
static void kill_redis(struct fix *a, struct fix *b)
{
    tr_kill(g_redis, SIGKILL);
    g_redis = 0;
    for (int i = 0; i < 40 && (rstore_connected(a->rs) || rstore_connected(b->rs)); i++) {
        tr_run_until(&a->loop, tr_never, NULL, 50);
        tr_run_until(&b->loop, tr_never, NULL, 50);
    }
    assert_false(rstore_connected(a->rs));
    assert_false(rstore_connected(b->rs));
}

/* Free both instances and the shared copy; Redis back for the next test. */
static void shared_done(struct fix *a, struct fix *b)
{
    fix_free(a);
    fix_free(b);
    rstore_shared_free(g_shared);
    g_shared = NULL;
    g_redis = tr_redis_start(g_port, NULL, 0);
    redisFree(g_rc);
    g_rc = tr_connect(g_port, 5000);
    assert_non_null(g_rc);
}

static void test_shared_fallback(void **state)
{
    skip_without_redis();
    g_shared = rstore_shared_new(1024);
    assert_non_null(g_shared);
    struct fix *a = fix_new(60000), *b = fix_new(60000);
    set_dev("SH1", "allow", "bob", 1);
    set_dev("SH2", "block", "", 1);
    set_dev("SH3", "allow", "carol", 1);
    struct lk l;
    lookup_wait(a, "sh1", &l);
    lookup_wait(a, "sh2", &l);
    lookup_wait(a, "sh3", &l);
    lookup_wait(a, "nosuch1", &l);
    assert_int_equal(l.res.status, RSTORE_NOT_FOUND);
    lookup_wait(b, "sh3", &l); /* b holds SH3 too */

    /* SH3 is blocked by the core: both instances get the message */
    tr_do(g_rc, "HSET easgate:dev:SH3 state block version 2");
    tr_do(g_rc, "PUBLISH easgate:changed %s", "SH3 2");
    assert_true(tr_run_until(&a->loop, fix_changed, a, 2000));
    assert_true(tr_run_until(&b->loop, fix_changed, b, 2000));
    assert_int_equal(a->changed.state, RSTORE_BLOCK);

    kill_redis(a, b);

    /* b never looked SH1 and SH2 up: a's answers stand in */
    assert_int_equal(lookup_wait(b, "SH1", &l), 0);
    assert_int_equal(l.res.status, RSTORE_FOUND);
    assert_int_equal(l.res.state, RSTORE_ALLOW);
    assert_string_equal(l.user, "bob");
    assert_string_equal(l.reason, "test");
    assert_int_equal(l.res.version, 1);
    assert_true(l.res.cached_fallback);
    assert_int_equal(lookup_wait(b, "sh2", &l), 0);
    assert_int_equal(l.res.state, RSTORE_BLOCK);
    assert_int_equal(lookup_wait(b, "nosuch1", &l), 0);
    assert_int_equal(l.res.status, RSTORE_NOT_FOUND);
    assert_true(l.res.cached_fallback);
    /* the changed device: the state after the message, from either */
    assert_int_equal(lookup_wait(b, "sh3", &l), 0);
    assert_int_equal(l.res.state, RSTORE_BLOCK);
    assert_int_equal(l.res.version, 2);
    /* nobody fetched it: unavailable, the policy decides */
    assert_int_equal(lookup_wait(b, "never2", &l), 0);
    assert_int_equal(l.res.status, RSTORE_UNAVAILABLE);
    struct rstore_stats st;
    rstore_stats_get(b->rs, &st);
    assert_true(st.fallbacks >= 4);

    shared_done(a, b);
}

/* After a test that kills Redis: start it again if the test failed before
 * it could, so the tests after it do not fail too. */
static int redis_back(void **state)
{
    if (g_redis || !g_rc)
        return 0;
    rstore_shared_free(g_shared);
    g_shared = NULL;
    g_redis = tr_redis_start(g_port, NULL, 0);
    redisFree(g_rc);
    g_rc = tr_connect(g_port, 5000);
    return g_rc ? 0 : -1;
}

static bool b_invalidated(void *arg)
{
    struct rstore_stats st;
    rstore_stats_get(((struct fix *)arg)->rs, &st);
    return st.invalidations > 0;
}

/* A change message drops an older process-wide copy even where no cache
 * holds the device, so an outage cannot bring the old state back. */
static void test_shared_change_drops_old(void **state)
{
    skip_without_redis();
    g_shared = rstore_shared_new(1024);
    struct fix *a = fix_new(60000), *b = fix_new(60000);
    set_dev("SH4", "allow", "dave", 1);
    struct lk l;
    lookup_wait(a, "sh4", &l);
    assert_int_equal(l.res.state, RSTORE_ALLOW);
    /* The core blocks SH4. Only b, which never looked it up, reads the
     * message before Redis dies (a's loop does not run meanwhile, so a
     * cannot refetch): b must drop a's older copy all the same. */
    tr_do(g_rc, "HSET easgate:dev:SH4 state block version 2");
    tr_do(g_rc, "PUBLISH easgate:changed %s", "SH4 2");
    assert_true(tr_run_until(&b->loop, b_invalidated, b, 2000));
    kill_redis(a, b);
    /* not the old "allow": nobody knows the new state, so unknown */
    assert_int_equal(lookup_wait(b, "sh4", &l), 0);
    assert_int_equal(l.res.status, RSTORE_UNAVAILABLE);
    shared_done(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_devid_norm),
        cmocka_unit_test(test_metrics_format),
        cmocka_unit_test(test_miss_then_hit),
        cmocka_unit_test(test_no_stampede),
        cmocka_unit_test(test_negative_cache),
        cmocka_unit_test(test_invalidation),
        cmocka_unit_test(test_bad_hash_fails_closed),
        cmocka_unit_test(test_lookup_timeout),
        cmocka_unit_test(test_sightings),
        cmocka_unit_test(test_abuse_counters),
        cmocka_unit_test(test_auth_and_db),
        cmocka_unit_test(test_background_refresh),
        cmocka_unit_test(test_hostname_and_early_free),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test_teardown(test_shared_fallback, redis_back),
        cmocka_unit_test_teardown(test_shared_change_drops_old, redis_back),
        cmocka_unit_test(test_outage_stale_reconnect),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
