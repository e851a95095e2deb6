/* test_proxy_tls: common/tls sessions wired back to back in memory: the
 * handshake, data both ways, certificate checks and session resumption,
 * without a socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/tls.h"

static char dir[256];

struct side {
    struct tls_conn *t;
    struct side *peer;
    char wire[65536]; /* ciphertext waiting for the peer */
    size_t wire_len;
    char got[65536]; /* plaintext received */
    size_t got_len;
    int ready;
};

static void emit(void *o, const char *d, size_t n)
{
    struct side *s = o;
    assert_true(s->wire_len + n <= sizeof(s->wire));
    memcpy(s->wire + s->wire_len, d, n);
    s->wire_len += n;
}

static int plain(void *o, const char *d, size_t n)
{
    struct side *s = o;
    assert_true(s->got_len + n <= sizeof(s->got));
    memcpy(s->got + s->got_len, d, n);
    s->got_len += n;
    return 0;
}

static int ready(void *o)
{
    ((struct side *)o)->ready = 1;
    return 0;
}

static const struct tls_cbs cbs = {emit, plain, ready};

/* Deliver ciphertext both ways until quiet; returns the first feed error. */
static int pump(struct side *a, struct side *b)
{
    for (int i = 0; i < 20; i++) {
        int moved = 0;
        struct side *s[2] = {a, b};
        for (int k = 0; k < 2; k++) {
            struct side *from = s[k], *to = s[1 - k];
            if (!from->wire_len)
                continue;
            char buf[65536];
            size_t n = from->wire_len;
            memcpy(buf, from->wire, n);
            from->wire_len = 0;
            int r = tls_conn_feed(to->t, buf, n);
            if (r < 0)
                return r;
            moved = 1;
        }
        if (!moved)
            return 0;
    }
    return 0;
}

/* A server and a client session wired to each other through emit/pump. */
static void new_pair(struct tls_ctx *sc, struct tls_ctx *cc, const char *sni, SSL_SESSION **slot,
                     struct side **srv, struct side **cli)
{
    *srv = calloc(1, sizeof(**srv));
    *cli = calloc(1, sizeof(**cli));
    assert_non_null(*srv);
    assert_non_null(*cli);
    (*srv)->t = tls_conn_new(sc, &cbs, *srv, NULL, NULL);
    (*cli)->t = tls_conn_new(cc, &cbs, *cli, sni, slot);
    assert_non_null((*srv)->t);
    assert_non_null((*cli)->t);
}

static char *path(const char *f)
{
    static char p[8][512];
    static int i;
    i = (i + 1) % 8;
    snprintf(p[i], sizeof(p[i]), "%s/%s", dir, f);
    return p[i];
}

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/easgate-tls-test.%d", (int)getpid());
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "bash %s/certs/mkcerts %s >/dev/null 2>&1", EG_SOURCE_DIR, dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_handshake_and_data(void **state)
{
    char err[512];
    struct tls_ctx *sc, *cc;
    struct tls_server_opts o = {path("proxy.crt"), path("proxy.key"), NULL, 0};
    assert_int_equal(tls_ctx_server(&o, &sc, err, sizeof(err)), 0);
    assert_int_equal(tls_ctx_client(path("ca.crt"), 1, &cc, err, sizeof(err)), 0);
    SSL_SESSION *slot = NULL;
    for (int round = 0; round < 2; round++) {
        struct side *srv, *cli;
        new_pair(sc, cc, "localhost", &slot, &srv, &cli);
        assert_int_equal(tls_conn_start(cli->t), 0);
        assert_int_equal(pump(cli, srv), 0);
        assert_true(srv->ready && cli->ready);
        assert_int_equal(tls_conn_write(cli->t, "hello", 5), 0);
        assert_int_equal(tls_conn_write(srv->t, "world!", 6), 0);
        assert_int_equal(pump(cli, srv), 0);
        assert_int_equal(srv->got_len, 5);
        assert_memory_equal(srv->got, "hello", 5);
        assert_int_equal(cli->got_len, 6);
        assert_memory_equal(cli->got, "world!", 6);
        /* a 40 kB write crosses several records */
        static char big[40000];
        memset(big, 'x', sizeof(big));
        assert_int_equal(tls_conn_write(cli->t, big, sizeof(big)), 0);
        assert_int_equal(pump(cli, srv), 0);
        assert_int_equal(srv->got_len, 5 + sizeof(big));
        if (round == 1)
            assert_true(tls_conn_resumed(cli->t)); /* the ticket from round 0 */
        else
            assert_non_null(slot);
        assert_null(tls_conn_peer_cert(srv->t));
        tls_conn_free(srv->t);
        tls_conn_free(cli->t);
        free(srv);
        free(cli);
    }
    tls_session_free(&slot);
    tls_ctx_free(sc);
    tls_ctx_free(cc);
}

/* Record buffers: a new connection is lean (nothing waits for a sweep); a
 * busy one keeps its buffers until a sweep finds it unused since the one
 * before; made lean again, it lets go at once. */
static void test_buffer_sweep(void **state)
{
    char err[512];
    struct tls_ctx *sc, *cc;
    struct tls_server_opts o = {path("proxy.crt"), path("proxy.key"), NULL, 0};
    assert_int_equal(tls_ctx_server(&o, &sc, err, sizeof(err)), 0);
    assert_int_equal(tls_ctx_client(path("ca.crt"), 1, &cc, err, sizeof(err)), 0);
    struct side *srv, *cli;
    new_pair(sc, cc, "localhost", NULL, &srv, &cli);
    assert_int_equal(tls_conn_start(cli->t), 0);
    assert_int_equal(pump(cli, srv), 0);
    assert_int_equal(tls_busy_count(), 0);

    tls_conn_set_lean(srv->t, 0);
    assert_int_equal(tls_conn_write(cli->t, "ping", 4), 0);
    assert_int_equal(pump(cli, srv), 0);
    assert_int_equal(tls_busy_count(), 1); /* srv read: it keeps its buffers */
    tls_sweep();
    assert_int_equal(tls_busy_count(), 1); /* used since the last sweep */
    tls_sweep();
    assert_int_equal(tls_busy_count(), 0); /* idle for a whole period */

    assert_int_equal(tls_conn_write(srv->t, "pong", 4), 0);
    assert_int_equal(tls_busy_count(), 1);
    tls_conn_set_lean(srv->t, 1);
    assert_int_equal(tls_busy_count(), 0);
    assert_int_equal(pump(cli, srv), 0);
    assert_int_equal(cli->got_len, 4);

    tls_conn_set_lean(srv->t, 0);
    assert_int_equal(tls_conn_write(srv->t, "x", 1), 0);
    assert_int_equal(tls_busy_count(), 1);
    tls_conn_free(srv->t); /* freeing unlists it */
    assert_int_equal(tls_busy_count(), 0);
    tls_conn_free(cli->t);
    free(srv);
    free(cli);
    tls_ctx_free(sc);
    tls_ctx_free(cc);
}

static void test_verify_fails(void **state)
{
    char err[512];
    struct tls_ctx *sc, *cc;
    struct tls_server_opts o = {path("proxy.crt"), path("proxy.key"), NULL, 0};
    assert_int_equal(tls_ctx_server(&o, &sc, err, sizeof(err)), 0);
    /* trusting the device CA only: the server's certificate is not trusted */
    assert_int_equal(tls_ctx_client(path("device-ca.crt"), 1, &cc, err, sizeof(err)), 0);
    struct side *srv, *cli;
    new_pair(sc, cc, "localhost", NULL, &srv, &cli);
    assert_int_equal(tls_conn_start(cli->t), 0);
    assert_int_equal(pump(cli, srv), -1);
    assert_non_null(strstr(tls_conn_error(cli->t), "certificate verify failed"));
    tls_conn_free(srv->t);
    tls_conn_free(cli->t);
    free(srv);
    free(cli);
    /* wrong name */
    tls_ctx_free(cc);
    assert_int_equal(tls_ctx_client(path("ca.crt"), 1, &cc, err, sizeof(err)), 0);
    srv = calloc(1, sizeof(*srv));
    cli = calloc(1, sizeof(*cli));
    srv->t = tls_conn_new(sc, &cbs, srv, NULL, NULL);
    cli->t = tls_conn_new(cc, &cbs, cli, "mail.example.com", NULL);
    assert_int_equal(tls_conn_start(cli->t), 0);
    assert_int_equal(pump(cli, srv), -1);
    tls_conn_free(srv->t);
    tls_conn_free(cli->t);
    free(srv);
    free(cli);
    tls_ctx_free(sc);
    tls_ctx_free(cc);
}

static void test_client_cert_required(void **state)
{
    char err[512];
    struct tls_ctx *sc, *cc;
    struct tls_server_opts o = {path("proxy.crt"), path("proxy.key"), path("device-ca.crt"), 1};
    assert_int_equal(tls_ctx_server(&o, &sc, err, sizeof(err)), 0);
    assert_int_equal(tls_ctx_client(path("ca.crt"), 1, &cc, err, sizeof(err)), 0);
    struct side *srv, *cli;
    new_pair(sc, cc, "localhost", NULL, &srv, &cli);
    assert_int_equal(tls_conn_start(cli->t), 0);
    assert_int_equal(pump(cli, srv), -1);
    assert_false(srv->ready);
    tls_conn_free(srv->t);
    tls_conn_free(cli->t);
    free(srv);
    free(cli);
    tls_ctx_free(sc);
    tls_ctx_free(cc);
}

static void test_bad_files(void **state)
{
    char err[512];
    struct tls_ctx *sc;
    struct tls_server_opts o = {path("nope.crt"), path("proxy.key"), NULL, 0};
    assert_int_equal(tls_ctx_server(&o, &sc, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "nope.crt"));
    struct tls_server_opts o2 = {path("proxy.crt"), path("exsim.key"), NULL, 0};
    assert_int_equal(tls_ctx_server(&o2, &sc, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "exsim.key"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_and_data), cmocka_unit_test(test_buffer_sweep),
        cmocka_unit_test(test_verify_fails),       cmocka_unit_test(test_client_cert_required),
        cmocka_unit_test(test_bad_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
