/*
 * test_jreq: the one rule for JSON request bodies (common/jreq.h): objects
 * only, duplicate keys refused, unknown fields refused and named with the
 * known ones, types and string bounds, required fields, the empty body.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "common/jreq.h"

static const struct jreq_field fields[] = {
    {"name", JREQ_STR, true}, {"pem", JREQ_TEXT, false},  {"count", JREQ_INT, false},
    {"on", JREQ_BOOL, false}, {"maybe", JREQ_TRI, false}, {0},
};

static json_t *parse(const char *body, char *err, size_t n)
{
    err[0] = '\0';
    return jreq_object(body, strlen(body), fields, 8, err, n);
}

static void refused(const char *body, const char *why)
{
    char err[512];
    json_t *j = parse(body, err, sizeof(err));
    if (j)
        fail_msg("'%s' was accepted", body);
    if (!strstr(err, why))
        fail_msg("'%s': message '%s' does not say '%s'", body, err, why);
}

static void test_accepts(void **state)
{
    (void)state;
    char err[512];
    json_t *j = parse("{\"name\":\"12345678\",\"pem\":\"a long text well over eight bytes\","
                      "\"count\":-3,\"on\":false,\"maybe\":null}",
                      err, sizeof(err));
    assert_non_null(j);
    assert_string_equal(jreq_str(j, "name"), "12345678");
    assert_int_equal(json_integer_value(json_object_get(j, "count")), -3);
    assert_null(jreq_str(j, "absent"));
    json_decref(j);
    /* optional fields may be left out; tri-state takes booleans too */
    j = parse("{\"maybe\":true,\"name\":\"x\"}", err, sizeof(err));
    assert_non_null(j);
    json_decref(j);
}

static void test_refusals(void **state)
{
    (void)state;
    refused("{\"name\":\"a\",\"name\":\"b\"}", "duplicate");
    refused("{\"name\":\"a\",\"colour\":1}", "unknown field 'colour' (known: name, pem, count, on, "
                                             "maybe)");
    refused("{\"name\":1}", "field 'name' must be a string");
    refused("{\"name\":\"a\",\"pem\":[]}", "field 'pem' must be a string");
    refused("{\"name\":\"a\",\"count\":1.5}", "field 'count' must be an integer");
    refused("{\"name\":\"a\",\"on\":\"yes\"}", "field 'on' must be true or false");
    refused("{\"name\":\"a\",\"on\":null}", "field 'on' must be true or false");
    refused("{\"name\":\"a\",\"maybe\":0}", "field 'maybe' must be true, false or null");
    refused("{\"name\":\"123456789\"}", "field 'name' is longer than 8 bytes");
    refused("{\"pem\":\"x\"}", "field 'name' is required");
    refused("[\"name\"]", "the body must be a JSON object");
    refused("\"name\"", "invalid JSON"); /* jansson: an object or an array */
    refused("{\"name\":", "invalid JSON at line 1");
    refused("{\"name\":\"a\\u0000b\"}", "invalid JSON");
    /* an unknown key is cut in the message, not copied whole */
    char body[400], err[512];
    snprintf(body, sizeof(body), "{\"%0200d\":1}", 0);
    assert_null(parse(body, err, sizeof(err)));
    assert_true(strlen(err) < 200);
}

static void test_empty_body(void **state)
{
    (void)state;
    static const struct jreq_field none_required[] = {{"a", JREQ_STR, false}, {0}};
    static const struct jreq_field nothing[] = {{0}};
    char err[256];
    json_t *j = jreq_object("", 0, none_required, 10, err, sizeof(err));
    assert_non_null(j);
    assert_int_equal(json_object_size(j), 0);
    json_decref(j);
    /* empty is {}: a required field is still required */
    assert_null(jreq_object("", 0, fields, 10, err, sizeof(err)));
    assert_non_null(strstr(err, "field 'name' is required"));
    /* a handler that takes no fields refuses any */
    assert_null(jreq_object("{\"a\":1}", 7, nothing, 10, err, sizeof(err)));
    assert_non_null(strstr(err, "unknown field 'a' (known: none)"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_empty_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
