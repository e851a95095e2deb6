/* test_proxy_head: the upstream request head built from a client's head
 * (head_upstream): hop-by-hop headers out, headers a Connection header
 * names out, the X-Forwarded-For chain, and the framing the proxy chose;
 * the response head rewritten for the client (head_response), and the
 * client a trusted balancer names (head_xff_client). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/conf.h"
#include "proxy/head.h"

/* A head from "target" and name, value pairs ending in {NULL}. */
static struct head *mk(const char *target, const char *const (*nv)[2])
{
    struct head *h = head_new(4096);
    assert_non_null(h);
    assert_int_equal(head_url(h, target, strlen(target)), 0);
    for (; (*nv)[0]; nv++) {
        assert_int_equal(head_field(h, (*nv)[0], strlen((*nv)[0])), 0);
        assert_int_equal(head_value(h, (*nv)[1], strlen((*nv)[1])), 0);
    }
    return h;
}

static char out[HEAD_UP_MAX];

static const char *build(const struct head *h, const struct head_up *up)
{
    size_t n = head_upstream(h, up, out);
    assert_true(n < sizeof(out));
    out[n] = '\0';
    return out;
}

static const struct head_up plain = {
    .method = "POST",
    .host = "mail.example.com",
    .client = "192.0.2.7",
    .framing = HEAD_NO_BODY,
};

static void test_request_line_and_added(void **state)
{
    static const char *const nv[][2] = {
        {"User-Agent", "Apple-iPhone/1"},
        {NULL},
    };
    struct head *h = mk("/Microsoft-Server-ActiveSync?Cmd=Sync", nv);
    struct head_up up = plain;
    up.tls = 1;
    assert_string_equal(build(h, &up), "POST /Microsoft-Server-ActiveSync?Cmd=Sync HTTP/1.1\r\n"
                                       "User-Agent: Apple-iPhone/1\r\n"
                                       "Host: mail.example.com\r\n"
                                       "X-Forwarded-For: 192.0.2.7\r\n"
                                       "X-Forwarded-Proto: https\r\n"
                                       "\r\n");
    up.tls = 0;
    up.method = "OPTIONS";
    assert_non_null(strstr(build(h, &up), "OPTIONS /Microsoft-Server-ActiveSync?Cmd=Sync "));
    assert_non_null(strstr(out, "\r\nX-Forwarded-Proto: http\r\n"));
    free(h);
}

static void test_hop_by_hop_out(void **state)
{
    static const char *const nv[][2] = {
        {"Host", "proxy.example.com"},
        {"Connection", "keep-alive"},
        {"Keep-Alive", "timeout=5"},
        {"Proxy-Connection", "keep-alive"},
        {"TE", "trailers"},
        {"Upgrade", "h2c"},
        {"Trailer", "X-Checksum"},
        {"Expect", "100-continue"},
        {"transfer-encoding", "chunked"},
        {"Content-Length", "99"},
        {"X-Forwarded-Proto", "gopher"},
        {"Authorization", "Basic dTpw"},
        {"MS-ASProtocolVersion", "14.1"},
        {NULL},
    };
    struct head *h = mk("/x", nv);
    assert_string_equal(build(h, &plain), "POST /x HTTP/1.1\r\n"
                                          "Authorization: Basic dTpw\r\n"
                                          "MS-ASProtocolVersion: 14.1\r\n"
                                          "Host: mail.example.com\r\n"
                                          "X-Forwarded-For: 192.0.2.7\r\n"
                                          "X-Forwarded-Proto: http\r\n"
                                          "\r\n");
    free(h);
}

static void test_connection_named_out(void **state)
{
    static const char *const nv[][2] = {
        {"X-Secret", "1"},     {"Connection", "close,x-secret ,\tX-Other"},
        {"X-Secret-Not", "2"}, {"x-other", "3"},
        {"X-Kept", "4"},       {NULL},
    };
    struct head *h = mk("/x", nv);
    const char *o = build(h, &plain);
    assert_null(strstr(o, "X-Secret:"));
    assert_null(strstr(o, "x-other:"));
    assert_null(strstr(o, "Connection"));
    assert_non_null(strstr(o, "\r\nX-Secret-Not: 2\r\n"));
    assert_non_null(strstr(o, "\r\nX-Kept: 4\r\n"));
    free(h);
}

static void test_forwarded_for(void **state)
{
    static const char *const nv[][2] = {
        {"X-Forwarded-For", "198.51.100.1, 203.0.113.9"},
        {"Accept", "*/*"},
        {"x-forwarded-for", "10.0.0.3"},
        {NULL},
    };
    struct head *h = mk("/x", nv);
    /* from anyone else the client's own X-Forwarded-For is dropped */
    const char *o = build(h, &plain);
    assert_non_null(strstr(o, "\r\nX-Forwarded-For: 192.0.2.7\r\n"));
    assert_null(strstr(o, "198.51.100.1"));
    assert_null(strstr(o, "x-forwarded-for"));
    /* from a trusted balancer the chain goes on, the balancer appended */
    struct head_up up = plain;
    up.xff_chain = 1;
    o = build(h, &up);
    assert_non_null(
        strstr(o, "\r\nX-Forwarded-For: 198.51.100.1, 203.0.113.9, 10.0.0.3, 192.0.2.7\r\n"));
    assert_null(strstr(o, "x-forwarded-for"));
    free(h);
}

static void test_framing(void **state)
{
    static const char *const nv[][2] = {
        {"Content-Length", "5"},
        {"Transfer-Encoding", "chunked"},
        {NULL},
    };
    struct head *h = mk("/x", nv);
    struct head_up up = plain;
    up.framing = HEAD_LENGTH;
    up.length = 1234567890123ull;
    const char *o = build(h, &up);
    assert_non_null(strstr(o, "X-Forwarded-Proto: http\r\nContent-Length: 1234567890123\r\n\r\n"));
    assert_null(strstr(o, "chunked"));
    assert_null(strstr(o, "Content-Length: 5"));
    up.length = 0; /* a body read first that was empty */
    assert_non_null(strstr(build(h, &up), "\r\nContent-Length: 0\r\n\r\n"));
    up.framing = HEAD_CHUNKED;
    o = build(h, &up);
    assert_non_null(strstr(o, "X-Forwarded-Proto: http\r\nTransfer-Encoding: chunked\r\n\r\n"));
    assert_null(strstr(o, "Content-Length"));
    up.framing = HEAD_NO_BODY;
    o = build(h, &up);
    assert_null(strstr(o, "Content-Length"));
    assert_null(strstr(o, "Transfer-Encoding"));
    free(h);
}

/* The response head toward the client: the upstream's hop-by-hop headers
 * out, its reason phrase kept (or the one given), the proxy's framing. */
static void test_response(void **state)
{
    static const char *const nv[][2] = {
        {"Content-Type", "application/vnd.ms-sync.wbxml"},
        {"Connection", "keep-alive"},
        {"Keep-Alive", "timeout=5"},
        {"Transfer-Encoding", "chunked"},
        {"Trailer", "X-Sum"},
        {"Upgrade", "h2"},
        {"MS-Server-ActiveSync", "15.1"},
        {NULL},
    };
    struct head *h = mk("Fine", nv); /* a response head keeps its reason where the target is */
    static char rout[HEAD_RESP_MAX + 1];
    size_t n = head_response(h, 200, "OK", 1, 0, NULL, rout);
    rout[n] = '\0';
    assert_string_equal(rout, "HTTP/1.1 200 Fine\r\n"
                              "Content-Type: application/vnd.ms-sync.wbxml\r\n"
                              "MS-Server-ActiveSync: 15.1\r\n"
                              "Transfer-Encoding: chunked\r\n"
                              "\r\n");
    free(h);
    static const char *const none[][2] = {{"Content-Length", "3"}, {NULL}};
    h = mk("", none);
    n = head_response(h, 503, "Service Unavailable", 0, 1, NULL, rout);
    rout[n] = '\0';
    assert_string_equal(rout, "HTTP/1.1 503 Service Unavailable\r\n"
                              "Content-Length: 3\r\n"
                              "Connection: close\r\n"
                              "\r\n");
    free(h);
}

/* The client behind trusted balancers: from the right of X-Forwarded-For,
 * the first address that is not a balancer's. */
static void test_xff_client(void **state)
{
    struct conf_net nets[2] = {{.bits = 104}, {.bits = 128}}; /* 10.0.0.0/8, 2001:db8::1 */
    assert_int_equal(conf_ip16("10.0.0.0", 8, nets[0].addr), 0);
    assert_int_equal(conf_ip16("2001:db8::1", 11, nets[1].addr), 0);
    static const char *const nv[][2] = {
        {"X-Forwarded-For", "198.51.100.7, 203.0.113.9"},
        {"X-Forwarded-For", " 10.1.2.3 ,2001:db8::1"},
        {NULL},
    };
    struct head *h = mk("/x", nv);
    char ip[46] = "";
    assert_int_equal(head_xff_client(h, nets, 2, ip, sizeof(ip)), 1);
    assert_string_equal(ip, "203.0.113.9");
    free(h);
    /* every address a balancer's: the leftmost stands */
    static const char *const all[][2] = {{"X-Forwarded-For", "10.9.9.9, 10.0.0.1"}, {NULL}};
    h = mk("/x", all);
    assert_int_equal(head_xff_client(h, nets, 2, ip, sizeof(ip)), 1);
    assert_string_equal(ip, "10.9.9.9");
    free(h);
    /* a value that is not an address ends the walk: the last address read */
    static const char *const junk[][2] = {{"X-Forwarded-For", "198.51.100.7, junk, 10.0.0.2"},
                                          {NULL}};
    h = mk("/x", junk);
    assert_int_equal(head_xff_client(h, nets, 2, ip, sizeof(ip)), 1);
    assert_string_equal(ip, "10.0.0.2");
    free(h);
    /* none at all */
    static const char *const none[][2] = {{"Accept", "*/*"}, {NULL}};
    h = mk("/x", none);
    strcpy(ip, "kept");
    assert_int_equal(head_xff_client(h, nets, 2, ip, sizeof(ip)), 0);
    assert_string_equal(ip, "kept");
    free(h);
}

/* The largest head a client may send still fits the buffer. */
/* A server under a path: the route's path replaced, the rest as sent. */
static void test_server_path(void **state)
{
    static const char *const nv[][2] = {{NULL}};
    const char *t = "/microsoft-server-activesync/?Cmd=Ping&User=a";
    struct head *h = mk(t, nv);
    struct head_up up = plain;
    up.path = "/SOGo/Microsoft-Server-ActiveSync";
    up.path_skip = strlen("/microsoft-server-activesync");
    assert_non_null(strstr(build(h, &up),
                           "POST /SOGo/Microsoft-Server-ActiveSync/?Cmd=Ping&User=a HTTP/1.1\r\n"));
    up.path_skip = strlen(t) + 1; /* beyond the target: it goes as sent */
    assert_non_null(strstr(build(h, &up), "POST /microsoft-server-activesync/?Cmd=Ping&User=a "));
    free(h);
    (void)state;
}

/* The server's redirects mapped back to what the client knows. */
static void test_map_location(void **state)
{
    static const struct head_map m = {
        .authority = "groupware:20000",
        .prefix = "/SOGo",
        .server = {"/SOGo/Microsoft-Server-ActiveSync", "/SOGo/autodiscover/autodiscover.xml",
                   "/SOGo/EWS"},
        .client = {"/Microsoft-Server-ActiveSync", "/autodiscover/autodiscover.xml", "/EWS"},
    };
    static const struct {
        const char *in, *want; /* want NULL: left as it is */
    } cases[] = {
        {"http://groupware:20000/SOGo/Microsoft-Server-ActiveSync?Cmd=Sync",
         "/Microsoft-Server-ActiveSync?Cmd=Sync"},
        {"HTTPS://GROUPWARE:20000/SOGo/Microsoft-Server-ActiveSync",
         "/Microsoft-Server-ActiveSync"},
        {"/SOGo/Microsoft-Server-ActiveSync/", "/Microsoft-Server-ActiveSync/"},
        {"/SOGo/EWS/Exchange.asmx", "/EWS/Exchange.asmx"},
        {"/SOGo/autodiscover/autodiscover.xml", "/autodiscover/autodiscover.xml"},
        {"/SOGo/so/alice/Mail", "/so/alice/Mail"},
        {"/SOGo", "/"},
        {"/SOGo?x=1", "/?x=1"},
        {"/SOGo/Microsoft-Server-ActiveSyncX", "/Microsoft-Server-ActiveSyncX"},
        {"/SOGoX/a", NULL},
        {"/sogo/a", NULL}, /* paths are case-sensitive */
        {"http://elsewhere/SOGo/a", NULL},
        {"http://groupware:2000/SOGo/a", NULL},
        {"http://groupware:20000", NULL},
        {"http://groupware:20000?x", NULL},
        {"//groupware:20000/SOGo/a", NULL},
        {"Microsoft-Server-ActiveSync", NULL},
        {"", NULL},
        {"/", NULL},
        {"http:", NULL},
        {"http://", NULL},
    };
    char o[512];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *in = cases[i].in;
        int n = head_map_location(&m, in, strlen(in), o);
        if (!cases[i].want) {
            if (n != -1)
                fail_msg("'%s' mapped to '%.*s'", in, n, o);
            continue;
        }
        if (n < 0 || (size_t)n != strlen(cases[i].want) || memcmp(o, cases[i].want, (size_t)n))
            fail_msg("'%s' -> '%.*s', want '%s'", in, n < 0 ? 0 : n, o, cases[i].want);
    }
    /* In a response: the first Location only, hop-by-hop still out. */
    static const char *const nv[][2] = {
        {"Location", "http://groupware:20000/SOGo/Microsoft-Server-ActiveSync"},
        {"Connection", "close"},
        {NULL},
    };
    struct head *h = mk("Found", nv);
    static char rout[HEAD_RESP_MAX];
    size_t len = head_response(h, 302, NULL, 0, 0, &m, rout);
    rout[len] = '\0';
    assert_string_equal(rout,
                        "HTTP/1.1 302 Found\r\nLocation: /Microsoft-Server-ActiveSync\r\n\r\n");
    free(h);
    (void)state;
}

static void test_largest_fits(void **state)
{
    struct head *h = head_new(HEAD_MAX_BYTES);
    assert_non_null(h);
    char v[1000];
    memset(v, 'v', sizeof(v));
    assert_int_equal(head_url(h, "/", 1), 0);
    for (int i = 0; i < HEAD_MAX_HEADERS; i++) {
        assert_int_equal(head_field(h, "X-Forwarded-For", 15), 0);
        assert_int_equal(head_value(h, v, sizeof(v)), 0);
    }
    struct head_up up = plain;
    up.xff_chain = 1;
    up.framing = HEAD_LENGTH;
    up.length = UINT64_MAX;
    size_t n = head_upstream(h, &up, out);
    assert_true(n <= HEAD_UP_MAX);
    assert_true(n > (size_t)HEAD_MAX_HEADERS * sizeof(v));
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_line_and_added),
        cmocka_unit_test(test_hop_by_hop_out),
        cmocka_unit_test(test_connection_named_out),
        cmocka_unit_test(test_forwarded_for),
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_response),
        cmocka_unit_test(test_xff_client),
        cmocka_unit_test(test_largest_fits),
        cmocka_unit_test(test_server_path),
        cmocka_unit_test(test_map_location),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
