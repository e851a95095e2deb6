/*
 * rstorebench: how fast the proxy's device state cache answers.
 *
 *   1. hit:   a lookup answered from a warm per-worker cache (the cost every
 *             request pays), in ns per lookup over many lookups; and the
 *             whole cache-hit decision: lookup + pol_decide() over a policy
 *             like conf/policy.yaml;
 *   2. burst: N devices loaded into Redis, a cold cache, then a burst of B
 *             distinct lookups: per-lookup latency (issue -> callback)
 *             p50/p99/max and the time for the whole burst. The burst is
 *             issued all in one loop tick (the worst case: every request of a
 *             thundering herd arrives at once) and, separately, paced at a
 *             given rate (requests arriving over time, as from real phones).
 *
 * It starts its own redis-server on a free loopback port in a temp dir and
 * stops it by pid, unless --port names one already running (it then writes
 * easgate:dev:BENCH* keys there: never point it at production).
 *
 *   rstorebench [--port P] [--devices 100000] [--burst 10000]
 *               [--rate 20000] [--hits 5000000]
 */
#include "common/conf.h"
#include "connectors/rstore.h"
#include "policy/pol.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define PIPELINE 1000

static uint64_t now_ns(void)
{
    return uv_hrtime();
}

/* CPU time of this thread: what a lookup costs, whatever else the machine
 * is doing (wall-clock figures on a shared box include other people's work). */
static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static redisContext *g_rc; /* for INFO commandstats */

/* Redis's own microseconds per HGETALL since the last reset. */
static double redis_usec_per_hgetall(void)
{
    double v = -1;
    redisReply *r = redisCommand(g_rc, "INFO commandstats");
    if (r && r->type == REDIS_REPLY_STRING) {
        const char *p = strstr(r->str, "cmdstat_hgetall:");
        if (p && (p = strstr(p, "usec_per_call=")))
            v = atof(p + 14);
    }
    if (r)
        freeReplyObject(r);
    return v;
}

static void redis_reset_stats(void)
{
    redisReply *r = redisCommand(g_rc, "CONFIG RESETSTAT");
    if (r)
        freeReplyObject(r);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static pid_t start_redis(int port, const char *dir)
{
    char p[16];
    snprintf(p, sizeof(p), "%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, 1);
        execlp("redis-server", "redis-server", "--port", p, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", dir, "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static redisContext *connect_wait(int port)
{
    struct timeval tv = {2, 0};
    for (int i = 0; i < 250; i++) {
        redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
        if (c && !c->err) {
            redisReply *r = redisCommand(c, "PING");
            int ok = r && r->type == REDIS_REPLY_STATUS;
            if (r)
                freeReplyObject(r);
            if (ok)
                return c;
        }
        if (c)
            redisFree(c);
        usleep(20000);
    }
    return NULL;
}

/* HSET N devices through a pipeline of PIPELINE commands at a time. */
static int load_devices(redisContext *c, int n)
{
    for (int base = 0; base < n; base += PIPELINE) {
        int k = n - base < PIPELINE ? n - base : PIPELINE;
        for (int i = 0; i < k; i++)
            redisAppendCommand(c,
                               "HSET easgate:dev:BENCH%07d state %s user user%d reason %s "
                               "version 1 updated 1700000000000",
                               base + i, (base + i) % 10 ? "allow" : "block", base + i, "bench");
        for (int i = 0; i < k; i++) {
            redisReply *r = NULL;
            if (redisGetReply(c, (void **)&r) != REDIS_OK)
                return -1;
            freeReplyObject(r);
        }
    }
    return 0;
}

static void tick(uv_timer_t *t)
{
    (void)t;
}

static int run_until(uv_loop_t *loop, int (*pred)(void *), void *arg, int ms)
{
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, tick, 1, 1);
    uint64_t end = now_ns() + (uint64_t)ms * 1000000u;
    int ok = 0;
    while (!(ok = pred(arg)) && now_ns() < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ok;
}

static int is_connected(void *arg)
{
    return rstore_connected(arg);
}

struct burst {
    struct rstore *rs;
    uv_loop_t *loop;
    int n, issued, done, errors, sync;
    double rate; /* lookups per second; 0 = all at once */
    uint64_t t0;
    uint64_t *lat_ns;
    uint64_t *start_ns;
    struct rstore_wait *w;
    uv_timer_t pace;
};

static void burst_cb(struct rstore_wait *w, void *arg, const struct rstore_result *res)
{
    struct burst *b = arg;
    int i = (int)(w - b->w);
    b->lat_ns[i] = now_ns() - b->start_ns[i];
    if (res->status != RSTORE_FOUND)
        b->errors++;
    b->done++;
}

static void burst_issue(struct burst *b, int upto)
{
    char id[32];
    for (; b->issued < upto && b->issued < b->n; b->issued++) {
        int i = b->issued;
        /* Spread over the loaded devices so paced runs do not reuse the ids
         * of the all-at-once run. */
        int len = snprintf(id, sizeof(id), "bench%07d", i);
        struct rstore_result out;
        b->start_ns[i] = now_ns();
        int rc = rstore_lookup(b->rs, id, (size_t)len, &out, &b->w[i], burst_cb, b);
        if (rc == 0) {
            b->lat_ns[i] = now_ns() - b->start_ns[i];
            b->sync++;
            b->done++;
            if (out.status != RSTORE_FOUND)
                b->errors++;
        } else if (rc < 0) {
            b->errors++;
            b->done++;
        }
    }
}

static void pace_cb(uv_timer_t *t)
{
    struct burst *b = t->data;
    double secs = (double)(now_ns() - b->t0) / 1e9;
    burst_issue(b, (int)(secs * b->rate) + 1);
    if (b->issued >= b->n)
        uv_timer_stop(t);
}

static int burst_done(void *arg)
{
    struct burst *b = arg;
    return b->done >= b->n;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static struct rstore *new_store(uv_loop_t *loop, int port, int timeout_ms)
{
    struct conf_redis conf = {.enabled = true,
                              .host = "127.0.0.1",
                              .port = port,
                              .max_stale_ms = 24LL * 3600 * 1000,
                              .lookup_timeout_ms = timeout_ms,
                              .sighting_interval_ms = 3600000,
                              .stream_maxlen = 100000};
    struct rstore *rs = rstore_new(loop, &conf);
    if (rs && !run_until(loop, is_connected, rs, 5000)) {
        rstore_free(rs);
        uv_run(loop, UV_RUN_DEFAULT);
        return NULL;
    }
    return rs;
}

/* One burst on a cold instance; prints one result line. */
static int run_burst(uv_loop_t *loop, int port, int n, double rate)
{
    /* A generous timeout: we measure Redis round trips, not the cut-off. */
    struct rstore *rs = new_store(loop, port, 5000);
    if (!rs)
        return -1;
    struct burst b = {.rs = rs, .loop = loop, .n = n, .rate = rate};
    b.lat_ns = calloc((size_t)n, sizeof(uint64_t));
    b.start_ns = calloc((size_t)n, sizeof(uint64_t));
    b.w = calloc((size_t)n, sizeof(struct rstore_wait));
    if (!b.lat_ns || !b.start_ns || !b.w)
        return -1;
    redis_reset_stats();
    uint64_t c0 = cpu_ns();
    b.t0 = now_ns();
    if (rate <= 0) {
        burst_issue(&b, n);
        printf("      issuing %d lookups took %.1f ms (%.2f us CPU each)\n", n,
               (now_ns() - b.t0) / 1e6, (cpu_ns() - c0) / 1e3 / n);
    } else {
        uv_timer_init(loop, &b.pace);
        b.pace.data = &b;
        uv_timer_start(&b.pace, pace_cb, 0, 1);
    }
    int ok = run_until(loop, burst_done, &b, 30000);
    uint64_t total = now_ns() - b.t0;
    if (rate > 0)
        uv_close((uv_handle_t *)&b.pace, NULL);
    qsort(b.lat_ns, (size_t)n, sizeof(uint64_t), cmp_u64);
    char mode[48];
    if (rate > 0)
        snprintf(mode, sizeof(mode), "paced %.0f/s", rate);
    else
        snprintf(mode, sizeof(mode), "all at once");
    printf("burst %-14s %6d lookups: p50 %7.3f ms  p99 %7.3f ms  max %7.3f ms  whole burst "
           "%7.1f ms  errors %d  %s\n",
           mode, n, b.lat_ns[n / 2] / 1e6, b.lat_ns[(size_t)((n - 1) * 0.99)] / 1e6,
           b.lat_ns[n - 1] / 1e6, total / 1e6, b.errors, ok ? "" : "(INCOMPLETE)");
    uint64_t cpu = cpu_ns() - c0;
    struct rstore_stats st;
    rstore_stats_get(rs, &st);
    double us_call = redis_usec_per_hgetall();
    printf("      redis commands %llu for %d lookups (cache misses %llu); client CPU %.2f us per "
           "lookup (issue + reply, heartbeats included); redis %.2f us per HGETALL\n",
           (unsigned long long)st.fetches, n, (unsigned long long)st.misses, cpu / 1e3 / n,
           us_call);
    rstore_free(rs);
    uv_run(loop, UV_RUN_DEFAULT);
    free(b.lat_ns);
    free(b.start_ns);
    free(b.w);
    return ok && b.errors == 0 ? 0 : -1;
}

static int run_hits(uv_loop_t *loop, int port, long iters)
{
    struct rstore *rs = new_store(loop, port, 1000);
    if (!rs)
        return -1;
    enum { WARM = 1024 };
    struct burst b = {.rs = rs, .loop = loop, .n = WARM};
    b.lat_ns = calloc(WARM, sizeof(uint64_t));
    b.start_ns = calloc(WARM, sizeof(uint64_t));
    b.w = calloc(WARM, sizeof(struct rstore_wait));
    burst_issue(&b, WARM);
    run_until(loop, burst_done, &b, 10000);
    char ids[WARM][16], users[WARM][16];
    for (int i = 0; i < WARM; i++) {
        snprintf(ids[i], sizeof(ids[i]), "bench%07d", i);
        snprintf(users[i], sizeof(users[i]), "user%d", i); /* each device's bound user */
    }
    struct rstore_result out;
    struct rstore_wait w;
    long found = 0;
    uint64_t c0 = cpu_ns();
    uint64_t t0 = now_ns();
    for (long i = 0; i < iters; i++) {
        const char *id = ids[i & (WARM - 1)];
        if (rstore_lookup(rs, id, 12, &out, &w, burst_cb, &b) == 0 && out.status == RSTORE_FOUND)
            found++;
    }
    uint64_t dt = now_ns() - t0, dc = cpu_ns() - c0;
    printf("hit   %ld lookups over %d cached devices: %.1f ns per lookup wall, %.1f ns CPU (%ld "
           "found)\n",
           iters, WARM, (double)dt / (double)iters, (double)dc / (double)iters, found);

    /* The decision a cached device gets: lookup, state for the policy, pol_decide. */
    static const char policy[] =
        "unknown_devices: block\n"
        "user_agents:\n"
        "  allow: [\"Apple-iPhone*\", \"Apple-iPad*\", \"Outlook-iOS*\", \"Outlook-Android*\", "
        "\"Android-Mail*\"]\n"
        "  block: []\n"
        "devices: { allow: [], block: [\"BADDEVICE0001\"] }\n"
        "device_rules:\n"
        "  - match: { device_type: \"WindowsMail*\" }\n"
        "    action: block\n"
        "  - match: { device_os: \"Android 9*\" }\n"
        "    action: quarantine\n";
    struct pol_policy *pol = NULL;
    char err[256];
    if (pol_load_buf("bench-policy", policy, sizeof(policy) - 1, &pol, err, sizeof(err)) < 0) {
        fprintf(stderr, "rstorebench: policy: %s\n", err);
    } else {
        static const enum pol_devstate_kind kinds[] = {POL_DEV_ALLOW, POL_DEV_BLOCK,
                                                       POL_DEV_QUARANTINE, POL_DEV_WIPE};
        long allowed = 0;
        c0 = cpu_ns();
        t0 = now_ns();
        for (long i = 0; i < iters; i++) {
            const char *id = ids[i & (WARM - 1)];
            if (rstore_lookup(rs, id, 12, &out, &w, burst_cb, &b) != 0)
                continue;
            struct pol_devstate ds = {.state = POL_DEV_UNKNOWN, .stale = out.stale};
            if (out.status == RSTORE_FOUND) {
                ds.state = kinds[out.state];
                ds.user = out.user;
                ds.reason = out.reason;
            }
            struct pol_request pr = {.user = users[i & (WARM - 1)],
                                     .domain = "EXAMPLE",
                                     .device_id = id,
                                     .device_type = "iPhone",
                                     .user_agent = "Apple-iPhone15C2/2104.5",
                                     .command = 0,
                                     .proto_version = 161};
            struct pol_decision d;
            pol_decide(pol, &pr, &ds, 0, &d);
            allowed += d.action == POL_ALLOW;
        }
        dt = now_ns() - t0;
        dc = cpu_ns() - c0;
        printf("decide %ld cache-hit decisions (lookup + pol_decide): %.1f ns wall, %.1f ns CPU "
               "each (%ld allowed; every 10th device is blocked by the core)\n",
               iters, (double)dt / (double)iters, (double)dc / (double)iters, allowed);
        pol_unref(pol);
    }
    rstore_free(rs);
    uv_run(loop, UV_RUN_DEFAULT);
    free(b.lat_ns);
    free(b.start_ns);
    free(b.w);
    return found == iters ? 0 : -1;
}

int main(int argc, char **argv)
{
    int port = 0, devices = 100000, burst = 10000;
    double rate = 20000;
    long hits = 5000000;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--port") == 0)
            port = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--devices") == 0)
            devices = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--burst") == 0)
            burst = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--rate") == 0)
            rate = atof(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--hits") == 0)
            hits = atol(argv[++i]);
        else {
            fprintf(stderr, "usage: rstorebench [--port P] [--devices N] [--burst B] "
                            "[--rate R] [--hits H]\n");
            return 2;
        }
    }
    if (devices < 1024 || burst < 1 || burst > devices || hits < 1) {
        fprintf(stderr, "rstorebench: need devices >= 1024 and 1 <= burst <= devices\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    pid_t pid = 0;
    char dir[] = "/tmp/rstorebench.XXXXXX";
    if (!port) {
        if (!mkdtemp(dir) || (port = free_port()) < 0) {
            perror("rstorebench: temp dir or port");
            return 1;
        }
        pid = start_redis(port, dir);
    }
    int rc = 1;
    redisContext *c = connect_wait(port);
    g_rc = c;
    if (!c) {
        fprintf(stderr, "rstorebench: no redis-server on 127.0.0.1:%d\n", port);
        goto out;
    }
    uint64_t t0 = now_ns();
    if (load_devices(c, devices) < 0) {
        fprintf(stderr, "rstorebench: loading devices failed\n");
        goto out;
    }
    printf("loaded %d devices into Redis in %.0f ms (pipeline of %d)\n", devices,
           (now_ns() - t0) / 1e6, PIPELINE);

    uv_loop_t loop;
    uv_loop_init(&loop);
    rc = 0;
    rc |= run_hits(&loop, port, hits);
    rc |= run_burst(&loop, port, burst, 0);
    rc |= run_burst(&loop, port, burst, rate);
    uv_loop_close(&loop);
out:
    if (c)
        redisFree(c);
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        char cmd[64];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "rstorebench: could not remove %s\n", dir);
    }
    return rc ? 1 : 0;
}
