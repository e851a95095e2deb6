/*
 * fuzz_proxy: libFuzzer target for the whole request path: llhttp, the
 * connection's state machine, the decision point, the forward, the answer.
 *
 * The proxy runs in this process (proxy_main on a thread of its own, one
 * worker, plain HTTP, a policy with rules, EWS subscriptions and the server
 * role's provisioning) in front of an upstream that also runs here, on a
 * thread of its own, and answers whatever the input tells it to. Each input
 * is split in two by its first two bytes: the client's bytes, sent on a new
 * connection cut into pieces whose sizes come from the input too, and the
 * upstream's bytes, written back on every request it reads. The client
 * reads until the proxy closes or stays quiet a few milliseconds, then
 * goes. Whatever the bytes, the proxy must neither crash (ASan and UBSan
 * abort) nor stop answering: every 256 inputs, and at the end of each input
 * with a valid request, a plain request must still get an answer.
 *
 * Leaks are left to the ASan test suite (run with -detect_leaks=0): the
 * proxy frees a connection on its own thread after the input has returned,
 * which libFuzzer's per-input leak check would misread.
 *
 * Run: make fuzz && build-fuzz/tests/fuzz_proxy -detect_leaks=0 \
 *        -max_total_time=600 tests/fuzz/corpus/proxy
 */
#include "proxy/proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define QUIET_MS 15 /* the proxy said nothing this long: the input is over */
#define MAX_WAIT_MS 300
#define UP_MAX 8192 /* upstream answer bytes kept from an input */
#define UP_CONNS 64

static int proxy_port, up_port;
static pthread_mutex_t up_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t up_answer[UP_MAX];
static size_t up_len;

/* A listening socket on a free loopback port. */
static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 128) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &l) < 0)
        abort();
    *port = ntohs(a.sin_port);
    return fd;
}

static int free_port(void)
{
    int port, fd = listen_any(&port);
    close(fd);
    return port;
}

/* ---- the upstream: answers every request it reads with up_answer ---- */

static void up_answer_now(int fd)
{
    uint8_t buf[UP_MAX];
    pthread_mutex_lock(&up_lock);
    size_t n = up_len;
    memcpy(buf, up_answer, n);
    pthread_mutex_unlock(&up_lock);
    if (n)
        (void)!send(fd, buf, n, MSG_NOSIGNAL);
}

static void *upstream_main(void *arg)
{
    int lfd = *(int *)arg;
    struct pollfd p[UP_CONNS + 1];
    int n = 1;
    p[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
    for (;;) {
        if (poll(p, (nfds_t)n, -1) <= 0)
            continue;
        if (p[0].revents & POLLIN) {
            int fd = accept(lfd, NULL, NULL);
            if (fd >= 0 && n <= UP_CONNS)
                p[n++] = (struct pollfd){.fd = fd, .events = POLLIN};
            else if (fd >= 0)
                close(fd);
        }
        for (int i = 1; i < n; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[65536];
            ssize_t r = recv(p[i].fd, buf, sizeof(buf), 0);
            if (r <= 0) {
                close(p[i].fd);
                p[i--] = p[--n];
                continue;
            }
            /* Every piece that ends a head (or any piece of a body) gets the
             * scripted answer: enough to reach every response path. */
            if (memmem(buf, (size_t)r, "\r\n\r\n", 4) || r < 64)
                up_answer_now(p[i].fd);
        }
    }
    return NULL;
}

/* ---- the proxy ---- */

static char conf_path[256];

static void *proxy_thread(void *arg)
{
    (void)arg;
    int rc = proxy_main(conf_path);
    fprintf(stderr, "fuzz_proxy: proxy_main returned %d\n", rc);
    abort(); /* it must run for as long as the fuzzer does */
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        abort();
}

static int connect_proxy(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)proxy_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Read what the proxy says until it closes or is quiet; bytes read. */
static size_t drain(int fd, int quiet_ms)
{
    size_t total = 0;
    int waited = 0;
    char buf[65536];
    while (waited < MAX_WAIT_MS) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, quiet_ms);
        if (r <= 0)
            break;
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0)
            break;
        total += (size_t)n;
        waited += 1;
    }
    return total;
}

/* A plain request must get an answer: the proxy is alive and serving. */
static void check_alive(void)
{
    static const char up_ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    pthread_mutex_lock(&up_lock);
    memcpy(up_answer, up_ok, sizeof(up_ok) - 1);
    up_len = sizeof(up_ok) - 1;
    pthread_mutex_unlock(&up_lock);
    static const char req[] = "OPTIONS /Microsoft-Server-ActiveSync HTTP/1.1\r\nHost: x\r\n"
                              "Connection: close\r\n\r\n";
    for (int tries = 0; tries < 50; tries++) {
        int fd = connect_proxy();
        if (fd >= 0) {
            (void)!send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL);
            char buf[16] = "";
            struct pollfd p = {.fd = fd, .events = POLLIN};
            ssize_t n = poll(&p, 1, 2000) > 0 ? recv(fd, buf, sizeof(buf) - 1, 0) : -1;
            close(fd);
            if (n >= 12 && memcmp(buf, "HTTP/1.1 ", 9) == 0)
                return;
        }
        usleep(20000);
    }
    fprintf(stderr, "fuzz_proxy: the proxy stopped answering\n");
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    static int lfd;
    lfd = listen_any(&up_port);
    proxy_port = free_port();
    int admin = free_port();
    char dir[] = "/tmp/fuzz_proxy.XXXXXX";
    if (!mkdtemp(dir))
        abort();
    char pol[300], text[2048];
    snprintf(pol, sizeof(pol), "%s/policy.yaml", dir);
    write_file(pol, "unknown_devices: allow\n"
                    "user_agents: { block: [\"BadAgent*\"] }\n"
                    "devices: { block: [BLOCKED1], allow: [ALLOWED1] }\n"
                    "device_rules:\n"
                    "  - { match: { device_type: \"Android*\" }, action: quarantine }\n"
                    "ews: { allow_subscriptions: true }\n"
                    "identity: { unverifiable: allow_unbound }\n"
                    /* budgets on, so their path is fuzzed, and far above
                     * what a run sends, so they refuse nothing that would
                     * hide the deeper paths (a real limit would answer 503
                     * to every input after the first few hundred) */
                    "abuse:\n"
                    "  budgets:\n"
                    "    device: { per_minute: 1000000, burst: 10000000 }\n"
                    "    user: { per_minute: 1000000, burst: 10000000 }\n"
                    "    client: { per_minute: 1000000, burst: 10000000 }\n"
                    "  autoblock: { user_agent_changes: { limit: 3 } }\n");
    snprintf(conf_path, sizeof(conf_path), "%s/easgate.yaml", dir);
    snprintf(text, sizeof(text),
             "proxy:\n"
             "  workers: 1\n"
             "  admin_listen: 127.0.0.1:%d\n"
             "  limits: { max_header_size: 16KiB, max_body_read: 64KiB }\n"
             "  timeouts: { header: 2s, body: 2s, upstream_response: 2s }\n"
             "  instances:\n"
             "    - name: fuzz\n"
             "      listen: 127.0.0.1:%d\n"
             /* under a prefix: every target and Location goes through the mapping */
             "      upstream: { url: http://127.0.0.1:%d/fz, pool_size: 4 }\n"
             "policy: policy.yaml\n"
             "log: { access: \"off\", error: /dev/null, level: error }\n",
             admin, proxy_port, up_port);
    write_file(conf_path, text);
    pthread_t t;
    if (pthread_create(&t, NULL, upstream_main, &lfd) != 0 ||
        pthread_create(&t, NULL, proxy_thread, NULL) != 0)
        abort();
    check_alive();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned count;
    if (size < 3)
        return 0;
    size_t req_len = ((size_t)data[0] << 8 | data[1]) % (size - 2 + 1);
    uint8_t cut = data[2];
    const uint8_t *req = data + 3;
    if (req_len > size - 3)
        req_len = size - 3;
    const uint8_t *up = req + req_len;
    size_t up_n = size - 3 - req_len;
    if (up_n > UP_MAX)
        up_n = UP_MAX;
    pthread_mutex_lock(&up_lock);
    memcpy(up_answer, up, up_n);
    up_len = up_n;
    pthread_mutex_unlock(&up_lock);

    int fd = connect_proxy();
    if (fd < 0)
        abort();
    /* Pieces of 1..(cut % 64 + 1) bytes, or all at once when cut is 0. */
    size_t piece = cut ? (size_t)(cut % 64) + 1 : req_len ? req_len : 1;
    for (size_t off = 0; off < req_len; off += piece) {
        size_t n = req_len - off < piece ? req_len - off : piece;
        if (send(fd, req + off, n, MSG_NOSIGNAL) < 0)
            break;
        if (cut & 0x80)
            drain(fd, 0); /* read as we go: answers interleave with pieces */
    }
    if (cut & 0x40)
        shutdown(fd, SHUT_WR); /* the client half-closes */
    drain(fd, QUIET_MS);
    close(fd);
    if (++count % 256 == 0)
        check_alive();
    return 0;
}
