/* test_wbxml_corpus: every .xml under tests/data/eas encodes, and WBXML -> XML ->
 * WBXML is byte-identical; spot checks of what extraction reads from the
 * corpus; the regression inputs under regress/ return without crashing;
 * malformed XML reports its offset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eas/wbxml.h"
#include "test_wbxml_util.h"

/* Encode one corpus file; returns the WBXML (caller frees). */
static uint8_t *encode_file(const char *name, size_t *wlen)
{
    char path[1024];
    size_t len;
    uint64_t off = 0;
    const char *why = NULL;
    uint8_t *w;
    snprintf(path, sizeof(path), "%s/tests/data/eas/%s", srcdir(), name);
    char *xml = slurp(path, &len);
    int rc = wbxml_from_xml(xml, len, &w, wlen, &off, &why);
    if (rc)
        fail_msg("%s: offset %llu: %s", name, (unsigned long long)off, why);
    free(xml);
    return w;
}

static void test_roundtrip_all(void **state)
{
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/tests/data/eas", srcdir());
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)) != NULL) {
        size_t nl = strlen(e->d_name);
        if (nl < 5 || strcmp(e->d_name + nl - 4, ".xml") != 0)
            continue;
        size_t w1len, x1len, w2len, x2len;
        uint64_t off;
        const char *why;
        char *x1, *x2;
        uint8_t *w2;
        uint8_t *w1 = encode_file(e->d_name, &w1len);
        assert_int_equal(wbxml_check(w1, w1len, &off), 0);
        assert_int_equal(wbxml_to_xml(w1, w1len, &x1, &x1len, &off), 0);
        assert_int_equal(wbxml_from_xml(x1, x1len, &w2, &w2len, &off, &why), 0);
        if (w1len != w2len || memcmp(w1, w2, w1len) != 0)
            fail_msg("%s: WBXML -> XML -> WBXML differs", e->d_name);
        assert_int_equal(wbxml_to_xml(w2, w2len, &x2, &x2len, &off), 0);
        assert_string_equal(x1, x2);
        free(w1);
        free(w2);
        free(x1);
        free(x2);
        files++;
    }
    closedir(d);
    assert_true(files >= 40);
}

static void test_corpus_facts(void **state)
{
    struct wbxml_facts f;
    size_t len;
    uint8_t *w = encode_file("provision_initial_request.xml", &len);
    assert_int_equal(wbxml_extract(w, len, &f, NULL), 0);
    assert_string_equal(f.devinfo[WBXML_DI_MODEL], "iPhone15,2");
    assert_string_equal(f.devinfo[WBXML_DI_FRIENDLYNAME], "Alice's iPhone");
    assert_string_equal(f.policy_type, "MS-EAS-Provisioning-WBXML");
    free(w);
    w = encode_file("settings_request.xml", &len);
    assert_int_equal(wbxml_extract(w, len, &f, NULL), 0);
    assert_int_equal(f.root, WBXML_SETTINGS_SETTINGS);
    assert_string_equal(f.devinfo[WBXML_DI_USERAGENT], "SAMSUNG-SM-S918B/101.140205");
    assert_string_equal(f.devinfo[WBXML_DI_MOBILEOPERATOR], "Contoso Funk");
    free(w);
    w = encode_file("ping_request.xml", &len);
    assert_int_equal(wbxml_extract(w, len, &f, NULL), 0);
    assert_int_equal(f.heartbeat, 3540);
    free(w);
    w = encode_file("sync_request.xml", &len);
    assert_int_equal(wbxml_extract(w, len, &f, NULL), 0);
    assert_int_equal(f.heartbeat, 480);
    assert_false(f.has_devinfo);
    free(w);
    w = encode_file("provision_ack_response.xml", &len);
    assert_int_equal(wbxml_extract(w, len, &f, NULL), 0);
    assert_int_equal(f.status, 1);
    assert_int_equal(f.policy_status, 1);
    assert_string_equal(f.policy_key, "3942919513");
    free(w);
    w = encode_file("provision_wipe_ack_request.xml", &len);
    assert_int_equal(wbxml_extract(w, len, &f, NULL), 0);
    assert_true(f.remote_wipe);
    assert_int_equal(f.remote_wipe_status, 1);
    free(w);
    w = encode_file("provision_accountonlywipe_ack_request.xml", &len);
    assert_int_equal(wbxml_extract(w, len, &f, NULL), 0);
    assert_true(f.account_only_remote_wipe);
    assert_int_equal(f.account_only_remote_wipe_status, 1);
    free(w);
    w = encode_file("smartforward_response.xml", &len);
    assert_int_equal(wbxml_extract(w, len, &f, NULL), 0);
    assert_int_equal(f.root, WBXML_CM_SMARTFORWARD);
    assert_int_equal(f.status, 129);
    free(w);
    /* Opaque content survives: SendMail's MIME. */
    w = encode_file("sendmail_request.xml", &len);
    char *x;
    assert_int_equal(wbxml_to_xml(w, len, &x, NULL, NULL), 0);
    assert_non_null(strstr(x, "<Mime><?opaque RnJvbTog"));
    free(x);
    free(w);
}

/* libwbxml's way of writing namespaces is read too. */
static void test_foreign_xml(void **state)
{
    const char *xml = "<?xml version=\"1.0\"?>\n"
                      "<!DOCTYPE ActiveSync PUBLIC \"-//MICROSOFT//DTD ActiveSync//EN\" "
                      "\"http://www.microsoft.com/\">\n"
                      "<!-- a comment -->\n"
                      "<Sync xmlns=\"AirSync:\"><Collections><Collection>"
                      "<Class>Contacts</Class><ApplicationData>"
                      "<Body xmlns=\"AirSyncBase:\"><Type>1</Type></Body>"
                      "<FileAs xmlns=\"Contacts:\">Funk, Don &#x263A; <![CDATA[<x>]]></FileAs>"
                      "</ApplicationData></Collection></Collections></Sync>\n";
    uint8_t *w;
    size_t wl;
    uint64_t off;
    const char *why;
    char *x;
    assert_int_equal(wbxml_from_xml(xml, strlen(xml), &w, &wl, &off, &why), 0);
    assert_int_equal(wbxml_to_xml(w, wl, &x, NULL, &off), 0);
    assert_non_null(
        strstr(x, "<contacts:FileAs>Funk, Don \xE2\x98\xBA &lt;x&gt;</contacts:FileAs>"));
    assert_non_null(strstr(x, "<airsyncbase:Type>1</airsyncbase:Type>"));
    free(x);
    free(w);
}

static void test_bad_xml(void **state)
{
    static const struct {
        const char *xml;
        int rc;
        uint64_t off;
    } cases[] = {
        {"<Sync xmlns=\"AirSync\"><Nope/></Sync>", WBXML_E_XMLNAME, 23},
        {"<Sync><Status>1</Status></Sync>", WBXML_E_XMLNAME, 0},
        {"<Sync xmlns=\"Bogus\"/>", WBXML_E_XMLNAME, 13},
        {"<x:Sync xmlns=\"AirSync\"/>", WBXML_E_XMLNAME, 0},
        {"<Sync xmlns=\"AirSync\" id=\"1\"/>", WBXML_E_XML, 22},
        {"<Sync xmlns=\"AirSync\"><Status>1</Sync>", WBXML_E_XML, 31},
        {"<Sync xmlns=\"AirSync\"><Status>&bogus;</Status></Sync>", WBXML_E_XML, 30},
        {"<Sync xmlns=\"AirSync\"><Status>&#0;</Status></Sync>", WBXML_E_XML, 30},
        {"<Sync xmlns=\"AirSync\"><Status>1</Status>", WBXML_E_XML, 40},
        {"<Sync xmlns=\"AirSync\"/><Sync xmlns=\"AirSync\"/>", WBXML_E_XML, 23},
        {"text<Sync xmlns=\"AirSync\"/>", WBXML_E_XML, 0},
        {"<Sync xmlns=\"AirSync\"><?opaque !!!!?></Sync>", WBXML_E_XML, 22},
        {"<Sync xmlns=\"AirSync\"><?opaque QQ=?></Sync>", WBXML_E_XML, 22},
        {"<Sync xmlns=\"AirSync\"><?php x?></Sync>", WBXML_E_XML, 22},
        {"<Sync xmlns=\"AirSync\"><!-- never closed", WBXML_E_XML, 22},
        {"", WBXML_E_EMPTY, 0},
        {"<?xml version=\"1.0\"?>", WBXML_E_EMPTY, 21},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t *w = (uint8_t *)1;
        size_t wl;
        uint64_t off = 99;
        const char *why = NULL;
        int rc = wbxml_from_xml(cases[i].xml, strlen(cases[i].xml), &w, &wl, &off, &why);
        print_message("case %zu: %s -> %d at %llu (%s)\n", i, cases[i].xml, rc,
                      (unsigned long long)off, why ? why : "");
        assert_int_equal(rc, cases[i].rc);
        assert_int_equal(off, cases[i].off);
        assert_non_null(why);
        assert_null(w);
    }
    /* Depth over the limit. */
    char deep[2048] = "<Sync xmlns=\"AirSync\">";
    for (int i = 0; i < WBXML_MAX_DEPTH; i++)
        strcat(deep, "<Sync>");
    uint8_t *w;
    size_t wl;
    uint64_t off;
    const char *why;
    assert_int_equal(wbxml_from_xml(deep, strlen(deep), &w, &wl, &off, &why), WBXML_E_DEPTH);
}

static void test_regressions(void **state)
{
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/tests/data/eas/regress", srcdir());
    DIR *d = opendir(dir);
    if (!d)
        return; /* no regressions recorded */
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[2048];
        size_t len;
        if (e->d_name[0] == '.' || strstr(e->d_name, ".md"))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        char *buf = slurp(path, &len);
        struct wbxml_facts f;
        uint64_t off;
        char *x = NULL;
        uint8_t *w = NULL;
        size_t wl;
        const char *why;
        wbxml_extract(buf, len, &f, &off);
        if (wbxml_to_xml(buf, len, &x, NULL, &off) == 0)
            free(x);
        if (wbxml_from_xml(buf, len, &w, &wl, &off, &why) == 0)
            free(w);
        free(buf);
    }
    closedir(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_all), cmocka_unit_test(test_corpus_facts),
        cmocka_unit_test(test_foreign_xml),   cmocka_unit_test(test_bad_xml),
        cmocka_unit_test(test_regressions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
