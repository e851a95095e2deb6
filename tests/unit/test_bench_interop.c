/* test_bench_interop: the bench kit and the proxy's protocol code are two
 * independent readings of the same specifications. Each checks the other:
 * every exsim answer and the Ping body easload sends must decode with the
 * proxy's WBXML codec to the elements meant, and the two base64 query
 * encoders must read each other's output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "bench/exsim/exsim.h"
#include "bench/lib/beas.h"
#include "eas/easq.h"
#include "eas/wbxml.h"

/* exsim's answer builders are part of the exsim executable, not a library:
 * compile them into this test. */
#include "bench/exsim/exsim_answers.c"

static char *to_xml(const struct exsim_body *b)
{
    char *xml = NULL;
    size_t n = 0;
    uint64_t off = 0;
    assert_int_equal(wbxml_check(b->buf, b->len, &off), 0);
    assert_int_equal(wbxml_to_xml(b->buf, b->len, &xml, &n, &off), 0);
    return xml;
}

static void expect(const struct exsim_body *b, const char *const *needles)
{
    char *xml = to_xml(b);
    for (; *needles; needles++)
        if (!strstr(xml, *needles))
            fail_msg("'%s' not in:\n%s", *needles, xml);
    free(xml);
}

static void test_answers_decode(void **state)
{
    struct exsim_body b;
    assert_int_equal(exsim_foldersync(&b, 0), 0);
    expect(&b, (const char *const[]){"<FolderSync", "<Status>1</Status>", "<Count>12</Count>",
                                     "<DisplayName>Inbox</DisplayName>", NULL});
    exsim_body_free(&b);
    assert_int_equal(exsim_sync(&b, 3000), 0);
    expect(&b, (const char *const[]){"<Sync", "<Collections>", "<CollectionId>1</CollectionId>",
                                     "<ServerId>1:1</ServerId>", "<airsyncbase:Data>", NULL});
    exsim_body_free(&b);
    assert_int_equal(exsim_estimate(&b), 0);
    expect(&b, (const char *const[]){"<GetItemEstimate", "<Estimate>5</Estimate>", NULL});
    exsim_body_free(&b);
    assert_int_equal(exsim_itemops(&b, 2000), 0);
    expect(&b, (const char *const[]){"<ItemOperations", "<Fetch>", "<Properties>",
                                     "<airsync:ServerId>1:1</airsync:ServerId>", NULL});
    exsim_body_free(&b);
    assert_int_equal(exsim_ping(&b, 1), 0);
    expect(&b, (const char *const[]){"<Ping", "<Status>1</Status>", NULL});
    exsim_body_free(&b);
    assert_int_equal(exsim_settings(&b, 1), 0);
    expect(&b, (const char *const[]){"<Settings", "<DeviceInformation>", NULL});
    exsim_body_free(&b);
}

static void test_provision_facts(void **state)
{
    struct exsim_body b;
    struct wbxml_facts f;
    uint64_t off;
    assert_int_equal(exsim_provision(&b, 0, 1), 0);
    assert_int_equal(wbxml_extract(b.buf, b.len, &f, &off), 0);
    assert_string_equal(f.policy_type, "MS-EAS-Provisioning-WBXML");
    assert_string_equal(f.policy_key, EXSIM_TEMP_POLICY_KEY);
    assert_int_equal(f.status, 1);
    assert_int_equal(f.policy_status, 1);
    char *xml = to_xml(&b);
    assert_non_null(strstr(xml, "<EASProvisionDoc>"));
    free(xml);
    exsim_body_free(&b);
    assert_int_equal(exsim_provision(&b, 1, 0), 0);
    assert_int_equal(wbxml_extract(b.buf, b.len, &f, &off), 0);
    assert_string_equal(f.policy_key, EXSIM_FINAL_POLICY_KEY);
    exsim_body_free(&b);
}

static void test_ping_request(void **state)
{
    /* the Ping body easload sends (bench/easload/easload.c build_bodies) */
    struct bwx w;
    bwx_begin(&w);
    bwx_open(&w, BWX_PING, 0x05);
    bwx_int(&w, BWX_PING, 0x08, 3540);
    bwx_open(&w, BWX_PING, 0x09);
    bwx_open(&w, BWX_PING, 0x0A);
    bwx_text(&w, BWX_PING, 0x0B, "1");
    bwx_text(&w, BWX_PING, 0x0C, "Email");
    bwx_close(&w), bwx_close(&w), bwx_close(&w);
    struct wbxml_facts f;
    uint64_t off;
    assert_int_equal(wbxml_extract(w.buf, w.len, &f, &off), 0);
    assert_int_equal(f.heartbeat, 3540);
    bwx_free(&w);
}

static void test_queries_both_ways(void **state)
{
    char q[700];
    struct easq_ident id;
    /* bench encoder -> proxy decoder */
    assert_true(beas_b64_query(q, sizeof(q), "14.1", "ItemOperations", "bob@example.com",
                               "EASLOAD00000042", "iPhone") > 0);
    easq_init(&id);
    assert_int_equal(easq_parse_query(&id, q, strlen(q)), 0);
    assert_int_equal(easq_finish(&id), 0); /* merges the per-source facts */
    assert_int_equal(id.cmd, EASQ_CMD_ITEMOPERATIONS);
    assert_int_equal(id.version, 141);
    assert_string_equal(id.device_id, "EASLOAD00000042");
    assert_string_equal(id.device_type, "iPhone");
    assert_string_equal(id.query_user, "bob@example.com");
    assert_int_equal(id.form, EASQ_QUERY_BASE64);
    /* proxy encoder -> bench decoder */
    char out[700];
    assert_true(easq_encode_b64(&id, out, sizeof(out)) > 0);
    struct beas_query bq;
    assert_int_equal(beas_parse_query(out, strlen(out), &bq), 0);
    assert_string_equal(bq.cmd, "ItemOperations");
    assert_string_equal(bq.proto, "14.1");
    assert_string_equal(bq.device_id, "EASLOAD00000042");
    assert_string_equal(bq.device_type, "iPhone");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answers_decode),
        cmocka_unit_test(test_provision_facts),
        cmocka_unit_test(test_ping_request),
        cmocka_unit_test(test_queries_both_ways),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
