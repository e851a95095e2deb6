/* test_conf_units: durations, sizes, listen addresses and host:port, the
 * value syntaxes of easgate.yaml, as tables of input -> value or error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <netinet/in.h>
#include <string.h>

#include "common/units.h"

struct num_case {
    const char *in;
    int rc;
    int64_t want;
};

static void test_duration(void **state)
{
    static const struct num_case cases[] = {
        {"0", 0, 0},
        {"50ms", 0, 50},
        {"15s", 0, 15000},
        {"5m", 0, 300000},
        {"24h", 0, 86400000},
        {"3d", 0, 3 * 86400000LL},
        {"1h30m", 0, 5400000},
        {"1m500ms", 0, 60500},
        {"3540s", 0, 3540000},
        {"60", -EINVAL, 0},   /* no unit: refused */
        {"", -EINVAL, 0},     /* empty */
        {"s", -EINVAL, 0},    /* no number */
        {"-5s", -EINVAL, 0},  /* negative */
        {"5 s", -EINVAL, 0},  /* blank */
        {"5sec", -EINVAL, 0}, /* unknown unit */
        {"5w", -EINVAL, 0},
        {"1.5h", -EINVAL, 0},
        {"99999999999999999999s", -ERANGE, 0},
        {"9223372036854775807d", -ERANGE, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t v = -1;
        const char *why = NULL;
        int rc = units_parse_duration(cases[i].in, &v, &why);
        if (rc != cases[i].rc)
            fail_msg("'%s': rc %d, want %d", cases[i].in, rc, cases[i].rc);
        if (rc == 0)
            assert_int_equal(v, cases[i].want);
        else
            assert_non_null(why);
    }
}

static void test_size(void **state)
{
    static const struct num_case cases[] = {
        {"0", 0, 0},
        {"512", 0, 512},
        {"16k", 0, 16384},
        {"16K", 0, 16384},
        {"64KiB", 0, 65536},
        {"64kb", 0, 65536},
        {"10M", 0, 10485760},
        {"10MiB", 0, 10485760},
        {"1G", 0, 1073741824},
        {"1g", 0, 1073741824},
        {"", -EINVAL, 0},
        {"k", -EINVAL, 0},
        {"4 k", -EINVAL, 0},
        {"4T", -EINVAL, 0},
        {"-4k", -EINVAL, 0},
        {"1.5M", -EINVAL, 0},
        {"99999999999999999G", -ERANGE, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t v = -1;
        int rc = units_parse_size(cases[i].in, &v, NULL);
        if (rc != cases[i].rc)
            fail_msg("'%s': rc %d, want %d", cases[i].in, rc, cases[i].rc);
        if (rc == 0)
            assert_int_equal(v, cases[i].want);
    }
}

static void test_format(void **state)
{
    char b[32];
    units_fmt_duration(0, b, sizeof(b));
    assert_string_equal(b, "0");
    units_fmt_duration(50, b, sizeof(b));
    assert_string_equal(b, "50ms");
    units_fmt_duration(1500, b, sizeof(b));
    assert_string_equal(b, "1500ms");
    units_fmt_duration(90000, b, sizeof(b));
    assert_string_equal(b, "90s");
    units_fmt_duration(5400000, b, sizeof(b));
    assert_string_equal(b, "90m");
    units_fmt_duration(86400000, b, sizeof(b));
    assert_string_equal(b, "24h");
    units_fmt_duration(3 * 86400000LL, b, sizeof(b));
    assert_string_equal(b, "3d");
    units_fmt_duration(60000, b, sizeof(b));
    assert_string_equal(b, "60s");
    units_fmt_duration(180000, b, sizeof(b));
    assert_string_equal(b, "3m");
    units_fmt_duration(1000, b, sizeof(b));
    assert_string_equal(b, "1s");
    units_fmt_size(16384, b, sizeof(b));
    assert_string_equal(b, "16k");
    units_fmt_size(10485760, b, sizeof(b));
    assert_string_equal(b, "10M");
    units_fmt_size(1000, b, sizeof(b));
    assert_string_equal(b, "1000");
    units_fmt_size(0, b, sizeof(b));
    assert_string_equal(b, "0");

    /* Every printed value parses back to itself. */
    static const int64_t ms[] = {1, 999, 1000, 61000, 3540000, 86400000, 90061001};
    for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
        int64_t v;
        units_fmt_duration(ms[i], b, sizeof(b));
        assert_int_equal(units_parse_duration(b, &v, NULL), 0);
        assert_int_equal(v, ms[i]);
    }
}

static void test_addr(void **state)
{
    struct units_addr a;
    assert_int_equal(units_parse_addr("0.0.0.0:8443", &a, NULL), 0);
    assert_int_equal(a.port, 8443);
    assert_int_equal(a.sa.ss_family, AF_INET);
    assert_string_equal(a.text, "0.0.0.0:8443");
    assert_int_equal(ntohs(((struct sockaddr_in *)&a.sa)->sin_port), 8443);

    assert_int_equal(units_parse_addr("[::1]:9090", &a, NULL), 0);
    assert_int_equal(a.sa.ss_family, AF_INET6);
    assert_int_equal(a.salen, sizeof(struct sockaddr_in6));
    assert_string_equal(a.text, "[::1]:9090");

    assert_int_equal(units_parse_addr("[0:0::1]:9090", &a, NULL), 0);
    assert_string_equal(a.text, "[::1]:9090"); /* normalised */

    assert_int_equal(units_parse_addr("*:443", &a, NULL), 0);
    assert_int_equal(a.sa.ss_family, AF_INET6);
    assert_string_equal(a.text, "*:443");

    static const char *const bad[] = {
        "",           "8443",          ":8443",          "0.0.0.0",  "0.0.0.0:",
        "0.0.0.0:0",  "0.0.0.0:65536", "0.0.0.0:80x",    "::1:8443", "[::1]8443",
        "[::1:8443",  "[1.2.3.4]:80",  "localhost:8443", "1.2.3:80", "256.1.1.1:80",
        "[zz::]:443", "0.0.0.0:-1",    "0.0.0.0:+80",    "[]:80",    "*:",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = NULL;
        if (units_parse_addr(bad[i], &a, &why) != -EINVAL)
            fail_msg("'%s' accepted as an address", bad[i]);
        assert_non_null(why);
    }
}

static void test_hostport(void **state)
{
    char host[64];
    int port;
    assert_int_equal(
        units_parse_hostport("redis.example.com:6379", host, sizeof(host), &port, NULL), 0);
    assert_string_equal(host, "redis.example.com");
    assert_int_equal(port, 6379);
    assert_int_equal(units_parse_hostport("[2001:db8::1]:26379", host, sizeof(host), &port, NULL),
                     0);
    assert_string_equal(host, "2001:db8::1");
    assert_int_equal(port, 26379);
    assert_int_equal(units_parse_hostport("10.0.0.1:1", host, sizeof(host), &port, NULL), 0);

    static const char *const bad[] = {"",       "host",      "host:",       "host:0", "ho st:80",
                                      "a:b:80", "[fe80::1]", "[nothex]:80", "h/x:80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (units_parse_hostport(bad[i], host, sizeof(host), &port, NULL) == 0)
            fail_msg("'%s' accepted as host:port", bad[i]);
    /* A host longer than the buffer is refused, not cut. */
    assert_int_not_equal(
        units_parse_hostport("abcdefghijklmnopqrstuvwxyz:80", host, 8, &port, NULL), 0);
}

/*
 * A property over every spelling of a large duration: the parser agrees
 * with a 128-bit reference (the value when it fits in int64, -ERANGE when
 * not), and a deadline now + duration is the exact sum or an error, for
 * any now: never a wrapped time (UBSan checks the arithmetic itself). Each
 * number is 1, 9...9 or 10...0 with 1 to 22 digits, or the largest count
 * of its unit and the two around it, alone or summed with a second term.
 */
static const struct {
    const char *name;
    int64_t mul;
} prop_units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
#define PROP_UNITS (sizeof(prop_units) / sizeof(prop_units[0]))

static int prop_numbers(int64_t mul, char out[][32])
{
    int n = 0;
    snprintf(out[n++], 32, "1");
    for (int digits = 1; digits <= 22; digits++) {
        memset(out[n], '9', (size_t)digits);
        out[n++][digits] = '\0';
        out[n][0] = '1';
        memset(out[n] + 1, '0', (size_t)digits - 1);
        out[n++][digits] = '\0';
    }
    snprintf(out[n++], 32, "%lld", (long long)(INT64_MAX / mul - 1));
    snprintf(out[n++], 32, "%lld", (long long)(INT64_MAX / mul));
    if (mul > 1) /* INT64_MAX + 1 would overflow here */
        snprintf(out[n++], 32, "%lld", (long long)(INT64_MAX / mul + 1));
    return n;
}

static __int128 prop_ref(const char *num, int64_t mul)
{
    __int128 v = 0;
    for (const char *p = num; *p; p++)
        v = v * 10 + (*p - '0');
    return v * mul;
}

static void prop_check(const char *text, __int128 want)
{
    static const int64_t nows[] = {0, 1765000000000LL, INT64_MAX - 1000, INT64_MAX};
    static const int64_t maxes[] = {3650LL * 86400000, INT64_MAX};
    int64_t got = -1;
    int rc = units_parse_duration(text, &got, NULL);
    if (want <= INT64_MAX) {
        assert_int_equal(rc, 0);
        assert_true(got == (int64_t)want);
    } else {
        assert_int_equal(rc, -ERANGE);
    }
    for (size_t i = 0; i < sizeof(nows) / sizeof(nows[0]); i++)
        for (size_t k = 0; k < sizeof(maxes) / sizeof(maxes[0]); k++) {
            int64_t at = 0;
            const char *why = NULL;
            rc = units_deadline(nows[i], text, maxes[k], &at, &why);
            bool ok = want > 0 && want <= maxes[k] && (__int128)nows[i] + want <= INT64_MAX;
            if (ok) {
                assert_int_equal(rc, 0);
                assert_true((__int128)at == (__int128)nows[i] + want);
            } else {
                assert_true(rc < 0);
                assert_non_null(why);
            }
        }
}

static void test_duration_property(void **state)
{
    (void)state;
    char a[64][32], b[64][32];
    char text[4200]; /* what the compiler allows for two rows of a and b */
    for (size_t u = 0; u < PROP_UNITS; u++) {
        int na = prop_numbers(prop_units[u].mul, a);
        for (int i = 0; i < na; i++) {
            snprintf(text, sizeof(text), "%s%s", a[i], prop_units[u].name);
            prop_check(text, prop_ref(a[i], prop_units[u].mul));
            /* a sum: this term, then one of a smaller unit */
            for (size_t v = 0; v < u; v++) {
                int nb = prop_numbers(prop_units[v].mul, b);
                for (int k = 0; k < nb; k++) {
                    snprintf(text, sizeof(text), "%s%s%s%s", a[i], prop_units[u].name, b[k],
                             prop_units[v].name);
                    prop_check(text, prop_ref(a[i], prop_units[u].mul) +
                                         prop_ref(b[k], prop_units[v].mul));
                }
            }
        }
    }
    /* "0" and the errors are errors for a deadline, whatever now is. */
    int64_t at;
    assert_int_equal(units_deadline(0, "0", INT64_MAX, &at, NULL), -EINVAL);
    assert_int_equal(units_deadline(0, "-1s", INT64_MAX, &at, NULL), -EINVAL);
    assert_int_equal(units_deadline(0, "", INT64_MAX, &at, NULL), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration), cmocka_unit_test(test_size),
        cmocka_unit_test(test_format),   cmocka_unit_test(test_addr),
        cmocka_unit_test(test_hostport), cmocka_unit_test(test_duration_property),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
