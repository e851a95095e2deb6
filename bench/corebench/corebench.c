/*
 * corebench: load for the management core's admin API.
 *
 *   corebench --addr 127.0.0.1:PORT [--tls --cacert CA] --token T
 *             [--conns N] [--seconds S] [--depth D]
 *             checkin PREFIX COUNT     POST /api/v1/checkin for PREFIX0..PREFIX(COUNT-1),
 *                                      reporting what bench/coreseed stored for each
 *                                      (bench/coreseed/fleet.h)
 *           | get PATH                 GET PATH (e.g. "/api/v1/devices?user=u42")
 *
 * One thread per connection, keep-alive, D requests in flight per
 * connection (HTTP/1.1 pipelining; answers come back in order). curl is too
 * slow to load a server at thousands of requests a second; this is plain
 * sockets and OpenSSL with nothing in between. Prints requests per second,
 * latency percentiles and how many answers were not 200.
 */
#include "bench/coreseed/fleet.h"
#include "bench/lib/hist.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CB_MAX_CONNS 256
#define CB_MAX_DEPTH 64
#define CB_BUF 65536

struct cfg {
    char host[64];
    int port;
    bool tls;
    const char *cacert, *token;
    int conns, depth;
    double seconds;
    bool checkin;
    const char *prefix, *path;
    long count;
};

static struct cfg cfg;
static SSL_CTX *ctx;
static atomic_long next_dev;

struct worker {
    pthread_t t;
    struct hist h;
    long ok, bad, errors;
    int first_bad_status;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct conn {
    int fd;
    SSL *ssl;
    char buf[CB_BUF];
    size_t have;
};

static int c_open(struct conn *c)
{
    memset(c, 0, sizeof(*c));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg.port)};
    if (inet_pton(AF_INET, cfg.host, &sa.sin_addr) != 1)
        return -1;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (cfg.tls) {
        c->ssl = SSL_new(ctx);
        SSL_set_fd(c->ssl, c->fd);
        SSL_set_tlsext_host_name(c->ssl, "localhost");
        if (SSL_connect(c->ssl) != 1)
            return -1;
    }
    return 0;
}

static void c_close(struct conn *c)
{
    if (c->ssl)
        SSL_free(c->ssl);
    if (c->fd >= 0)
        close(c->fd);
}

static int c_write(struct conn *c, const char *d, size_t n)
{
    while (n) {
        ssize_t k = c->ssl ? SSL_write(c->ssl, d, (int)n) : write(c->fd, d, n);
        if (k <= 0)
            return -1;
        d += k;
        n -= (size_t)k;
    }
    return 0;
}

static int c_fill(struct conn *c)
{
    if (c->have == sizeof(c->buf))
        return -1;
    ssize_t k = c->ssl ? SSL_read(c->ssl, c->buf + c->have, (int)(sizeof(c->buf) - c->have))
                       : read(c->fd, c->buf + c->have, sizeof(c->buf) - c->have);
    if (k <= 0)
        return -1;
    c->have += (size_t)k;
    return 0;
}

/* Read one answer; its status into *status. 0 or -1. */
static int c_answer(struct conn *c, int *status)
{
    for (;;) {
        char *end = c->have ? memmem(c->buf, c->have, "\r\n\r\n", 4) : NULL;
        if (end) {
            size_t head = (size_t)(end - c->buf) + 4;
            *status = atoi(c->buf + 9);
            char *cl = memmem(c->buf, head, "Content-Length:", 15);
            size_t body = cl ? (size_t)strtoul(cl + 15, NULL, 10) : 0;
            while (c->have < head + body)
                if (c_fill(c) < 0)
                    return -1;
            memmove(c->buf, c->buf + head + body, c->have - head - body);
            c->have -= head + body;
            return 0;
        }
        if (c_fill(c) < 0)
            return -1;
    }
}

static int build(char *out, size_t n)
{
    if (!cfg.checkin)
        return snprintf(out, n, "GET %s HTTP/1.1\r\nHost: core\r\nAuthorization: Bearer %s\r\n\r\n",
                        cfg.path, cfg.token);
    long i = atomic_fetch_add(&next_dev, 1) % cfg.count;
    /* What bench/coreseed stored for device i: an unchanged check-in. */
    struct fleet_dev f;
    fleet_dev(i, &f);
    char body[256];
    int bl = snprintf(body, sizeof(body),
                      "{\"device_id\":\"%s%ld\",\"os\":\"%s\",\"os_version\":\"%s\","
                      "\"passcode\":true,\"encrypted\":true,\"jailbroken\":false,"
                      "\"agent_version\":\"1.0\"}",
                      cfg.prefix, i, f.os, f.os_version);
    return snprintf(out, n,
                    "POST /api/v1/checkin HTTP/1.1\r\nHost: core\r\nAuthorization: Bearer %s\r\n"
                    "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                    cfg.token, bl, body);
}

static void *work(void *arg)
{
    struct worker *w = arg;
    hist_reset(&w->h);
    struct conn *c = malloc(sizeof(*c));
    if (!c || c_open(c) < 0) {
        w->errors++;
        free(c);
        return NULL;
    }
    double end = now_s() + cfg.seconds;
    char req[CB_MAX_DEPTH][1024];
    int len[CB_MAX_DEPTH];
    while (now_s() < end) {
        double t0 = now_s();
        size_t total = 0;
        for (int i = 0; i < cfg.depth; i++) {
            len[i] = build(req[i], sizeof(req[i]));
            total += (size_t)len[i];
        }
        char *all = malloc(total);
        size_t off = 0;
        for (int i = 0; i < cfg.depth; i++) {
            memcpy(all + off, req[i], (size_t)len[i]);
            off += (size_t)len[i];
        }
        int rc = c_write(c, all, total);
        free(all);
        if (rc < 0) {
            w->errors++;
            break;
        }
        for (int i = 0; i < cfg.depth; i++) {
            int st = 0;
            if (c_answer(c, &st) < 0) {
                w->errors++;
                goto out;
            }
            hist_record(&w->h, (uint64_t)((now_s() - t0) * 1e6));
            if (st == 200) {
                w->ok++;
            } else {
                if (!w->bad)
                    w->first_bad_status = st;
                w->bad++;
            }
        }
    }
out:
    c_close(c);
    free(c);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: corebench --addr IP:PORT [--tls --cacert CA] --token T [--conns N]\n"
                    "                 [--seconds S] [--depth D] checkin PREFIX COUNT | get PATH\n");
}

int main(int argc, char **argv)
{
    cfg.conns = 4;
    cfg.depth = 1;
    cfg.seconds = 5;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--tls")) {
            cfg.tls = true;
            continue;
        }
        if (!v) {
            usage();
            return 2;
        }
        i++;
        if (!strcmp(a, "--addr")) {
            const char *colon = strrchr(v, ':');
            if (!colon || (size_t)(colon - v) >= sizeof(cfg.host)) {
                usage();
                return 2;
            }
            memcpy(cfg.host, v, (size_t)(colon - v));
            cfg.port = atoi(colon + 1);
        } else if (!strcmp(a, "--cacert")) {
            cfg.cacert = v;
        } else if (!strcmp(a, "--token")) {
            cfg.token = v;
        } else if (!strcmp(a, "--conns")) {
            cfg.conns = atoi(v);
        } else if (!strcmp(a, "--seconds")) {
            cfg.seconds = atof(v);
        } else if (!strcmp(a, "--depth")) {
            cfg.depth = atoi(v);
        } else {
            usage();
            return 2;
        }
    }
    if (i < argc && !strcmp(argv[i], "checkin") && i + 2 < argc) {
        cfg.checkin = true;
        cfg.prefix = argv[i + 1];
        cfg.count = atol(argv[i + 2]);
    } else if (i < argc && !strcmp(argv[i], "get") && i + 1 < argc) {
        cfg.path = argv[i + 1];
    } else {
        usage();
        return 2;
    }
    if (!cfg.port || !cfg.token || cfg.conns < 1 || cfg.conns > CB_MAX_CONNS || cfg.depth < 1 ||
        cfg.depth > CB_MAX_DEPTH || cfg.seconds <= 0 || (cfg.checkin && cfg.count < 1)) {
        usage();
        return 2;
    }
    if (cfg.tls) {
        ctx = SSL_CTX_new(TLS_client_method());
        if (cfg.cacert) {
            SSL_CTX_load_verify_locations(ctx, cfg.cacert, NULL);
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        }
    }
    struct worker *w = calloc((size_t)cfg.conns, sizeof(*w));
    if (!w)
        return 1;
    double t0 = now_s();
    for (int k = 0; k < cfg.conns; k++)
        pthread_create(&w[k].t, NULL, work, &w[k]);
    struct hist *all = calloc(1, sizeof(*all));
    hist_reset(all);
    long ok = 0, bad = 0, errors = 0;
    int first_bad = 0;
    for (int k = 0; k < cfg.conns; k++) {
        pthread_join(w[k].t, NULL);
        hist_merge(all, &w[k].h);
        ok += w[k].ok;
        bad += w[k].bad;
        errors += w[k].errors;
        if (!first_bad)
            first_bad = w[k].first_bad_status;
    }
    double el = now_s() - t0;
    printf("%s: %ld ok, %ld not 200 (first: %d), %ld connection errors in %.2f s: %.0f req/s; "
           "latency (per batch of %d) p50 %.2f ms p99 %.2f ms max %.2f ms\n",
           cfg.checkin ? "checkin" : cfg.path, ok, bad, first_bad, errors, el,
           (double)(ok + bad) / el, cfg.depth, (double)hist_percentile(all, 50) / 1000.0,
           (double)hist_percentile(all, 99) / 1000.0, (double)all->max / 1000.0);
    free(all);
    free(w);
    SSL_CTX_free(ctx);
    return errors || bad ? 1 : 0;
}
