/*
 * test_rstore_sentinel: Sentinel discovery and failover. Two redis-servers
 * (a master and its replica) and one redis-sentinel, all private to the test.
 * The master is killed; the cached device must keep being answered the whole
 * time, and once Sentinel promotes the replica the instance must follow it
 * without being restarted: new lookups and invalidations work on the new
 * master. Skipped when redis-sentinel is not installed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/conf.h"
#include "connectors/rstore.h"
#include "test_rstore_util.h"

#define MASTER_NAME "egtest"

static pid_t pa, pb, ps;
static int porta, portb, ports;

struct lk {
    struct rstore_wait w;
    int called;
    struct rstore_result res;
};

static void lk_cb(struct rstore_wait *w, void *arg, const struct rstore_result *res)
{
    struct lk *l = arg;
    l->called++;
    l->res = *res;
}

static bool lk_done(void *arg)
{
    return ((struct lk *)arg)->called > 0;
}

static int changes;
static struct rstore_result last_change;
static void on_change(void *arg, const char *dev, const struct rstore_result *res)
{
    if (dev) {
        changes++;
        last_change = *res;
    }
}

static bool connected(void *arg)
{
    return rstore_connected(arg);
}

static bool changed(void *arg)
{
    return changes > 0;
}

static int lookup_wait(uv_loop_t *loop, struct rstore *rs, const char *dev, struct lk *l)
{
    memset(l, 0, sizeof(*l));
    struct rstore_result out;
    int rc = rstore_lookup(rs, dev, strlen(dev), &out, &l->w, lk_cb, l);
    if (rc == 0)
        lk_cb(&l->w, l, &out);
    else if (rc == RSTORE_PENDING && !tr_run_until(loop, lk_done, l, 2000))
        return -ETIMEDOUT;
    return rc;
}

/* Poll a blocking condition on a server, bounded. */
static bool wait_info(int port, const char *section, const char *needle, int ms)
{
    int64_t end = tr_ms() + ms;
    while (tr_ms() < end) {
        redisContext *c = tr_connect(port, 500);
        if (c) {
            redisReply *r = redisCommand(c, "INFO %s", section);
            bool ok = r && r->type == REDIS_REPLY_STRING && strstr(r->str, needle);
            if (r)
                freeReplyObject(r);
            redisFree(c);
            if (ok)
                return true;
        }
        usleep(100000);
    }
    return false;
}

static bool sentinel_knows_replica(int ms)
{
    int64_t end = tr_ms() + ms;
    while (tr_ms() < end) {
        redisContext *c = tr_connect(ports, 500);
        if (c) {
            redisReply *r = redisCommand(c, "SENTINEL replicas %s", MASTER_NAME);
            bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0;
            if (r)
                freeReplyObject(r);
            redisFree(c);
            if (ok)
                return true;
        }
        usleep(100000);
    }
    return false;
}

static bool sentinel_knows_replica_port(int port, int ms)
{
    char needle[16];
    snprintf(needle, sizeof(needle), "%d", port);
    int64_t end = tr_ms() + ms;
    while (tr_ms() < end) {
        redisContext *c = tr_connect(ports, 500);
        bool ok = false;
        if (c) {
            redisReply *r = redisCommand(c, "SENTINEL replicas %s", MASTER_NAME);
            for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
                redisReply *e = r->element[i];
                bool port_ok = false, flags_ok = false;
                for (size_t j = 0; j + 1 < e->elements; j += 2) {
                    if (strcmp(e->element[j]->str, "port") == 0)
                        port_ok = strcmp(e->element[j + 1]->str, needle) == 0;
                    if (strcmp(e->element[j]->str, "flags") == 0)
                        flags_ok = strcmp(e->element[j + 1]->str, "slave") == 0;
                }
                ok |= port_ok && flags_ok;
            }
            if (r)
                freeReplyObject(r);
            redisFree(c);
        }
        if (ok)
            return true;
        usleep(200000);
    }
    return false;
}

/* Until the store is connected and Sentinel names port as the master. */
static bool wait_master(int port, uv_loop_t *loop, int ms)
{
    int64_t end = tr_ms() + ms;
    while (tr_ms() < end) {
        redisContext *c = tr_connect(ports, 500);
        bool ok = false;
        if (c) {
            redisReply *r = redisCommand(c, "SENTINEL get-master-addr-by-name %s", MASTER_NAME);
            ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                 atoi(r->element[1]->str) == port;
            if (r)
                freeReplyObject(r);
            redisFree(c);
        }
        if (ok)
            return true;
        tr_run_until(loop, NULL, NULL, 100);
    }
    return false;
}

static void test_sentinel_failover(void **state)
{
    if (!tr_have("redis-server") || !tr_have("redis-sentinel"))
        skip();
    porta = tr_free_port();
    portb = tr_free_port();
    ports = tr_free_port();
    pa = tr_redis_start(porta, NULL, 0);
    char pas[16];
    snprintf(pas, sizeof(pas), "%d", porta);
    const char *rep[] = {"--replicaof", "127.0.0.1", pas};
    pb = tr_redis_start(portb, rep, 3);
    redisContext *a = tr_connect(porta, 5000);
    assert_non_null(a);
    assert_true(wait_info(portb, "replication", "master_link_status:up", 10000));
    ps = tr_sentinel_start(ports, porta, MASTER_NAME);
    assert_true(sentinel_knows_replica(15000));

    uv_loop_t loop;
    uv_loop_init(&loop);
    const char *nodes[] = {"localhost:1", NULL}; /* first node dead: must move on */
    char node[32];
    snprintf(node, sizeof(node), "127.0.0.1:%d", ports);
    nodes[1] = node;
    struct conf_redis conf = {.enabled = true,
                              .max_stale_ms = 60000,
                              .lookup_timeout_ms = 50,
                              .sentinel = {.master = MASTER_NAME, .nodes = {nodes, 2}}};
    struct rstore_opts o = {.heartbeat_ms = 100, .connect_ms = 500, .backoff_max_ms = 500};
    struct rstore *rs = rstore_new_ex(&loop, &conf, &o);
    assert_non_null(rs);
    rstore_on_change(rs, on_change, NULL);
    assert_true(tr_run_until(&loop, connected, rs, 10000));

    redisReply *r = tr_cmd(a, "HSET easgate:dev:FAIL1 state allow user zoe version 1");
    freeReplyObject(r);
    redisFree(a);
    struct lk l;
    assert_int_equal(lookup_wait(&loop, rs, "fail1", &l), RSTORE_PENDING);
    assert_int_equal(l.res.state, RSTORE_ALLOW);
    assert_true(wait_info(portb, "keyspace", "db0:keys=1", 5000));

    /* Kill the master. Keep asking for the cached device while Sentinel
     * fails over: every answer must be the cached allow. */
    tr_kill(pa, SIGKILL);
    pa = 0;
    int64_t t0 = tr_ms();
    int asked = 0;
    bool was_down = false;
    while (tr_ms() - t0 < 20000) {
        assert_true(lookup_wait(&loop, rs, "fail1", &l) >= 0);
        asked++;
        assert_int_equal(l.res.status, RSTORE_FOUND);
        assert_int_equal(l.res.state, RSTORE_ALLOW);
        assert_false(l.res.stale);
        if (!rstore_connected(rs))
            was_down = true;
        if (was_down && rstore_connected(rs))
            break;
        tr_run_until(&loop, NULL, NULL, 50);
    }
    assert_true(was_down);
    assert_true(rstore_connected(rs));
    fprintf(stderr, "followed the failover in %lld ms, %d lookups answered meanwhile\n",
            (long long)(tr_ms() - t0), asked);

    /* The replica is the master now, and we talk to it. */
    redisContext *b = tr_connect(portb, 2000);
    assert_non_null(b);
    r = tr_cmd(b, "ROLE");
    assert_string_equal(r->element[0]->str, "master");
    freeReplyObject(r);
    tr_do(b, "HSET easgate:dev:FAIL2 state quarantine user yan version 1");
    assert_int_equal(lookup_wait(&loop, rs, "fail2", &l), RSTORE_PENDING);
    assert_int_equal(l.res.status, RSTORE_FOUND);
    assert_int_equal(l.res.state, RSTORE_QUARANTINE);
    tr_do(b, "HSET easgate:dev:FAIL1 state block version 2");
    tr_do(b, "PUBLISH easgate:changed %s", "FAIL1 2");
    assert_true(tr_run_until(&loop, changed, NULL, 1000));
    assert_int_equal(last_change.state, RSTORE_BLOCK);

    /* A planned switchover: both servers alive, so our link to the old
     * master never breaks; only +switch-master can tell us to move. */
    char pbs[16];
    snprintf(pbs, sizeof(pbs), "%d", portb);
    const char *rep2[] = {"--replicaof", "127.0.0.1", pbs};
    pa = tr_redis_start(porta, rep2, 3);
    assert_true(wait_info(porta, "replication", "master_link_status:up", 30000));
    assert_true(sentinel_knows_replica_port(porta, 20000));
    redisContext *s = tr_connect(ports, 1000);
    assert_non_null(s);
    int64_t t1 = tr_ms();
    bool started = false;
    while (!started && tr_ms() - t1 < 10000) {
        r = tr_cmd(s, "SENTINEL FAILOVER %s", MASTER_NAME);
        started = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
        if (!started)
            tr_run_until(&loop, NULL, NULL, 200);
    }
    redisFree(s);
    assert_true(started);
    assert_true(wait_master(porta, &loop, 15000));
    /* Now only a writer on the new master reaches us. */
    changes = 0;
    redisContext *a2 = tr_connect(porta, 2000);
    assert_non_null(a2);
    int64_t t2 = tr_ms();
    while (changes == 0 && tr_ms() - t2 < 10000) {
        tr_do(a2, "HSET easgate:dev:FAIL1 state wipe version %lld", (long long)(3 + tr_ms() - t2));
        tr_do(a2, "PUBLISH easgate:changed %s", "FAIL1 999999");
        tr_run_until(&loop, changed, NULL, 300);
    }
    assert_true(changes > 0);
    assert_int_equal(last_change.state, RSTORE_WIPE);
    fprintf(stderr, "followed a planned switchover in %lld ms\n", (long long)(tr_ms() - t1));
    redisFree(a2);
    redisFree(b);

    rstore_free(rs);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static int teardown(void **state)
{
    tr_kill(ps, SIGTERM);
    tr_kill(pa, SIGTERM);
    tr_kill(pb, SIGTERM);
    tr_rmtmp();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sentinel_failover),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, teardown);
}
