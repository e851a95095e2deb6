/* test_proxy_log: JSON escaping for the access log (any input must give a
 * valid JSON string) and the Prometheus rendering of the metrics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "proxy/accesslog.h"
#include "proxy/metrics.h"

static const char *J(const char *s, size_t len)
{
    static char out[256];
    json_escape(out, sizeof(out), s, len);
    return out;
}

static void test_escape(void **state)
{
    assert_string_equal(J("alice", 5), "alice");
    assert_string_equal(J("a\"b\\c", 5), "a\\\"b\\\\c");
    assert_string_equal(J("a\nb\x01", 4), "a\\u000ab\\u0001");
    assert_string_equal(J("a\0b", 3), "a\\u0000b");
    /* valid UTF-8 kept, invalid bytes escaped */
    assert_string_equal(J("J\xc3\xb6rg", 5), "J\xc3\xb6rg");
    assert_string_equal(J("\xe2\x82\xac", 3), "\xe2\x82\xac");
    assert_string_equal(J("\xff\xc3", 2), "\\u00ff\\u00c3");
    assert_string_equal(J("\xc0\xaf", 2), "\\u00c0\\u00af");            /* overlong '/' */
    assert_string_equal(J("\xed\xa0\x80", 3), "\\u00ed\\u00a0\\u0080"); /* surrogate */
    /* cut, never overflowing, always terminated */
    char small[8];
    size_t n = json_escape(small, sizeof(small), "\"\"\"\"\"\"", 6);
    assert_true(n < sizeof(small));
    assert_int_equal(strlen(small), n);
    assert_int_equal(n % 2, 0); /* never half an escape */
}

static void test_metrics(void **state)
{
    static struct metrics a, b;
    metrics_request(&a, 0, EASQ_CMD_SYNC, M_ALLOW);
    metrics_request(&b, 0, EASQ_CMD_SYNC, M_ALLOW);
    metrics_request(&b, 0, EASQ_CMD_PING, M_BLOCK);
    metrics_request(&b, 0, 9999, M_DENIED); /* out of range: counted as other */
    metrics_request(&b, 1, EASQ_CMD_SYNC, M_ALLOW);
    metrics_latency(&a, 500);     /* 0.5 ms */
    metrics_latency(&b, 3000000); /* 3 s */
    M_ADD(a.open_conns, 2);
    struct metrics *ms[2] = {&a, &b};
    static const char *const names[] = {"main", "second"};
    struct metrics_extra x = {1, 0, 3, 1, names, 2};
    static char out[65536];
    size_t len = metrics_render(ms, 2, &x, out, sizeof(out));
    assert_true(len > 0 && len < sizeof(out));
    /* per instance, named as proxy.instances[].name */
    assert_non_null(strstr(out, "easgate_requests_total{instance_name=\"main\",command=\"Sync\","
                                "decision=\"allow\"} 2\n"));
    assert_non_null(strstr(out, "easgate_requests_total{instance_name=\"main\",command=\"Ping\","
                                "decision=\"block\"} 1\n"));
    assert_non_null(strstr(out, "easgate_requests_total{instance_name=\"main\",command=\"other\","
                                "decision=\"denied\"} 1\n"));
    assert_non_null(strstr(out, "easgate_requests_total{instance_name=\"second\",command=\"Sync\","
                                "decision=\"allow\"} 1\n"));
    assert_non_null(strstr(out, "easgate_upstream_latency_seconds_bucket{le=\"0.001\"} 1\n"));
    assert_non_null(strstr(out, "easgate_upstream_latency_seconds_bucket{le=\"5\"} 2\n"));
    assert_non_null(strstr(out, "easgate_upstream_latency_seconds_bucket{le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(out, "easgate_upstream_latency_seconds_count 2\n"));
    assert_non_null(strstr(out, "easgate_open_connections 2\n"));
    assert_non_null(strstr(out, "easgate_reloads_total 3\n"));
    /* every line is a comment or "name{labels} value" */
    for (char *l = out; *l; l = strchr(l, '\n') + 1) {
        if (*l == '#')
            continue;
        char *sp = strchr(l, ' ');
        assert_non_null(sp);
        assert_true(sp < strchr(l, '\n'));
    }
    /* a small buffer is cut, not overrun */
    char tiny[64];
    size_t t = metrics_render(ms, 2, &x, tiny, sizeof(tiny));
    assert_true(t < sizeof(tiny));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
