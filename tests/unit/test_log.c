/* test_log: level parsing and that a line is one timestamped write. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <unistd.h>

#include "common/log.h"

static void test_parse_level(void **state)
{
    enum eg_log_level l;
    assert_int_equal(eg_log_parse_level("debug", &l), 0);
    assert_int_equal(l, EG_LOG_DEBUG);
    assert_int_equal(eg_log_parse_level("WARN", &l), 0);
    assert_int_equal(l, EG_LOG_WARN);
    assert_int_equal(eg_log_parse_level("verbose", &l), -1);
}

static void test_line(void **state)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    eg_log_set_fd(p[1]);
    eg_log_set_level(EG_LOG_INFO);
    eg_info("hello %d", 42);
    eg_debug("dropped");
    eg_log_set_fd(2);
    close(p[1]);
    char buf[256] = {0};
    ssize_t n = read(p[0], buf, sizeof(buf) - 1);
    close(p[0]);
    assert_true(n > 0);
    assert_non_null(strstr(buf, " info hello 42\n"));
    assert_null(strstr(buf, "dropped"));
    assert_int_equal(buf[4], '-');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_level),
        cmocka_unit_test(test_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
