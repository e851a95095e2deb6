/*
 * test_http: the one reason-phrase table (common/http.h) knows every status
 * the proxy, the admin API, the enrollment endpoint and the admin listener
 * send, including ActiveSync's 449 and enrollment's 422, and says
 * "Unknown" for the rest (the proxy may relay any code from upstream).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "common/http.h"

static void test_known(void **state)
{
    (void)state;
    static const struct {
        int status;
        const char *reason;
    } t[] = {
        {100, "Continue"},
        {200, "OK"},
        {201, "Created"},
        {204, "No Content"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {409, "Conflict"},
        {413, "Payload Too Large"},
        {415, "Unsupported Media Type"},
        {422, "Unprocessable Content"},
        {431, "Request Header Fields Too Large"},
        {449, "Retry With"},
        {500, "Internal Server Error"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        assert_string_equal(http_reason(t[i].status), t[i].reason);
}

static void test_unknown(void **state)
{
    (void)state;
    assert_string_equal(http_reason(299), "Unknown");
    assert_string_equal(http_reason(0), "Unknown");
    assert_string_equal(http_reason(-1), "Unknown");
    assert_string_equal(http_reason(1000), "Unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known),
        cmocka_unit_test(test_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
