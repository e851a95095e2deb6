/*
 * test_httpd: answering later (httpd_hold / httpd_answer), as the admin API
 * does once its work is done on another thread:
 *   - pipelined requests on one connection, each held and answered out of
 *     order by the "workers", still get their answers in request order;
 *   - a connection that goes away while its request is held is freed when
 *     the answer comes (ASan build: no use after free, no leak);
 *   - a 503 answer carries Retry-After.
 * A libuv loop runs httpd on a thread; the test talks plain HTTP to it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/httpd.h"

struct held {
    struct httpd_hold *h;
    char path[64];
};

static uv_loop_t loop;
static uv_timer_t answer_timer;
static uv_async_t stop_async;
static struct httpd *srv;
static struct held held[16];
static int n_held;
static int port;

/* Every request is held; the timer answers what is held, newest first. */
static void on_req(void *arg, const struct httpd_req *req, struct httpd_resp *resp)
{
    (void)arg;
    (void)resp;
    struct httpd_hold *h = httpd_hold(req);
    assert_non_null(h);
    assert_null(httpd_hold(req)); /* one hold per request */
    held[n_held].h = h;
    snprintf(held[n_held].path, sizeof(held[0].path), "%s", req->path);
    n_held++;
}

static void on_answer(uv_timer_t *t)
{
    (void)t;
    /* An answer may let the next pipelined request in (and held): take the list first. */
    struct held now[16];
    int n = n_held;
    memcpy(now, held, sizeof(now));
    n_held = 0;
    for (int i = n - 1; i >= 0; i--) {
        struct httpd_resp r = {.status = strcmp(now[i].path, "/busy") == 0 ? 503 : 200,
                               .content_type = "text/plain"};
        r.body = strdup(now[i].path);
        r.len = strlen(r.body);
        if (r.status == 503)
            r.retry_after = 1;
        httpd_answer(now[i].h, &r);
    }
}

static void on_stop(uv_async_t *a)
{
    httpd_stop(srv);
    on_answer(NULL); /* what is still held is answered after the stop too */
    assert_int_equal(n_held, 0);
    uv_close((uv_handle_t *)&answer_timer, NULL);
    uv_close((uv_handle_t *)a, NULL);
}

static void *loop_main(void *arg)
{
    (void)arg;
    uv_run(&loop, UV_RUN_DEFAULT);
    return NULL;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t l = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &l);
    close(fd);
    return ntohs(sa.sin_port);
}

static int connect_srv(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Read until n answers' bodies are in (Content-Length framed); into buf. */
static size_t read_answers(int fd, char *buf, size_t cap, int n)
{
    size_t have = 0;
    for (;;) {
        int got = 0;
        const char *p = buf;
        while (p < buf + have) {
            const char *e = memmem(p, (size_t)(buf + have - p), "\r\n\r\n", 4);
            if (!e)
                break;
            const char *cl = memmem(p, (size_t)(e - p), "Content-Length: ", 16);
            size_t len = cl ? (size_t)atoi(cl + 16) : 0;
            if ((size_t)(buf + have - (e + 4)) < len)
                break;
            p = e + 4 + len;
            got++;
        }
        if (got >= n)
            return have;
        ssize_t k = read(fd, buf + have, cap - have - 1);
        if (k <= 0)
            return have;
        have += (size_t)k;
        buf[have] = '\0';
    }
}

static int setup(void **state)
{
    (void)state;
    port = free_port();
    uv_loop_init(&loop);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct httpd_opts o = {.max_body = 4096, .keepalive = 1};
    assert_int_equal(httpd_serve(&loop, (struct sockaddr *)&sa, &o, on_req, NULL, &srv), 0);
    uv_timer_init(&loop, &answer_timer);
    uv_timer_start(&answer_timer, on_answer, 50, 50);
    uv_async_init(&loop, &stop_async, on_stop);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, loop_main, NULL), 0);
    *state = (void *)(uintptr_t)t;
    return 0;
}

static int teardown(void **state)
{
    uv_async_send(&stop_async);
    pthread_join((pthread_t)(uintptr_t)*state, NULL);
    return uv_loop_close(&loop) == 0 ? 0 : -1;
}

static void test_pipelined_in_order(void **state)
{
    (void)state;
    int fd = connect_srv();
    const char *reqs = "GET /one HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /two HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /three HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(write(fd, reqs, strlen(reqs)), (ssize_t)strlen(reqs));
    char buf[8192];
    size_t n = read_answers(fd, buf, sizeof(buf), 3);
    assert_true(n > 0);
    char *a = strstr(buf, "\r\n\r\n/one"), *b = strstr(buf, "\r\n\r\n/two"),
         *c = strstr(buf, "\r\n\r\n/three");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_true(a < b && b < c);
    /* the connection goes on after held answers */
    const char *busy = "GET /busy HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(write(fd, busy, strlen(busy)), (ssize_t)strlen(busy));
    n = read_answers(fd, buf, sizeof(buf), 1);
    assert_non_null(strstr(buf, "HTTP/1.1 503"));
    assert_non_null(strstr(buf, "Retry-After: 1\r\n"));
    close(fd);
}

static void test_client_leaves_while_held(void **state)
{
    (void)state;
    for (int i = 0; i < 5; i++) {
        int fd = connect_srv();
        const char *r = "GET /gone HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\n";
        assert_int_equal(write(fd, r, strlen(r)), (ssize_t)strlen(r));
        usleep(10000);
        close(fd); /* before the answer */
    }
    usleep(150000); /* the answers come and find the connections closed */
    int fd = connect_srv();
    const char *r = "GET /still HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(write(fd, r, strlen(r)), (ssize_t)strlen(r));
    char buf[4096];
    read_answers(fd, buf, sizeof(buf), 1);
    assert_non_null(strstr(buf, "/still"));
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipelined_in_order),
        cmocka_unit_test(test_client_leaves_while_held),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
