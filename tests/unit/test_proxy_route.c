/* test_proxy_route: request routing table and the EWS subscription check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "proxy/head.h"
#include "proxy/route.h"

static enum route_kind R(const char *t)
{
    return route_of(t, strlen(t));
}

static void test_routes(void **state)
{
    assert_int_equal(R("/Microsoft-Server-ActiveSync?Cmd=Sync&DeviceId=A"), RT_EAS);
    assert_int_equal(R("/microsoft-server-activesync"), RT_EAS);
    assert_int_equal(R("/Microsoft-Server-ActiveSync/"), RT_EAS);
    assert_int_equal(R("/Microsoft-Server-ActiveSync?jAAJBAp2MTQw"), RT_EAS);
    assert_int_equal(R("https://mail.example.com/Microsoft-Server-ActiveSync?Cmd=Ping"), RT_EAS);
    assert_int_equal(R("/Microsoft-Server-ActiveSyncX"), RT_OTHER);
    assert_int_equal(R("/Microsoft-Server-ActiveSync/../owa"), RT_OTHER);
    assert_int_equal(R("/autodiscover/autodiscover.xml"), RT_AUTODISCOVER);
    assert_int_equal(R("/AutoDiscover/AutoDiscover.XML"), RT_AUTODISCOVER);
    assert_int_equal(R("/autodiscover/autodiscover.json"), RT_OTHER);
    assert_int_equal(R("/EWS/Exchange.asmx"), RT_EWS);
    assert_int_equal(R("/ews/exchange.asmx?x=1"), RT_EWS);
    assert_int_equal(R("/"), RT_OTHER);
    assert_int_equal(R("/owa/"), RT_OTHER);
    assert_int_equal(R(""), RT_OTHER);
    assert_int_equal(R("*"), RT_OTHER);
    assert_int_equal(R("mail.example.com:443"), RT_OTHER);
}

/* How much of the target the server's path replaces. */
static void test_path_end(void **state)
{
    static const struct {
        const char *t;
        enum route_kind k;
        size_t want;
    } cases[] = {
        {"/Microsoft-Server-ActiveSync?Cmd=Sync", RT_EAS, 28},
        {"/microsoft-server-activesync/", RT_EAS, 28},
        {"https://mail.example.com/Microsoft-Server-ActiveSync?x", RT_EAS, 52},
        {"/autodiscover/autodiscover.xml", RT_AUTODISCOVER, 30},
        {"/EWS/Exchange.asmx", RT_EWS, 4},
        {"/ews/exchange.asmx", RT_EWS, 4},
        {"/nothing", RT_OTHER, 0},
        {"https://host", RT_EAS, 0},
        {"x", RT_EAS, 0},
        {"/EWS", RT_EAS, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t got = route_path_end(cases[i].t, strlen(cases[i].t), cases[i].k);
        if (got != cases[i].want)
            fail_msg("%s: %zu, want %zu", cases[i].t, got, cases[i].want);
    }
    (void)state;
}

static void test_ews_path_tricks(void **state)
{
    /* the server would normalise these to another endpoint */
    assert_int_equal(R("/EWS/../owa/auth.owa"), RT_OTHER);
    assert_int_equal(R("/EWS/%2e%2e/ecp/"), RT_OTHER);
    assert_int_equal(R("/EWS/..\\ecp"), RT_OTHER);
    assert_int_equal(R("/EWS/./Exchange.asmx"), RT_OTHER);
    assert_int_equal(R("/EWS/Exchange.asmx;x"), RT_OTHER);
}

static int S(const char *b)
{
    return route_ews_is_subscription(b, strlen(b));
}

/* The namespaces a real EWS request uses. */
#define SOAP "http://schemas.xmlsoap.org/soap/envelope/"
#define MSG "http://schemas.microsoft.com/exchange/services/2006/messages"
#define TYP "http://schemas.microsoft.com/exchange/services/2006/types"
#define ENV "<s:Envelope xmlns:s=\"" SOAP "\" xmlns:m=\"" MSG "\" xmlns:t=\"" TYP "\">"

static void test_ews_subscription(void **state)
{
    assert_true(S("<?xml version=\"1.0\"?><soap:Envelope xmlns:soap=\"" SOAP "\"><soap:Header/>"
                  "<soap:Body><m:Subscribe xmlns:m=\"" MSG "\"><m:PushSubscriptionRequest/>"
                  "</m:Subscribe></soap:Body></soap:Envelope>"));
    assert_true(S(ENV "<s:Body>\n  <!-- c --> <m:GetEvents/></s:Body></s:Envelope>"));
    assert_true(S(ENV "<s:Header><t:RequestServerVersion Version=\"Exchange2013\"/>"
                      "</s:Header><s:Body><m:Subscribe/></s:Body></s:Envelope>"));
    assert_true(S(ENV "<s:Body><GetStreamingEvents xmlns=\"" MSG "\"/></s:Body></s:Envelope>"));
    assert_true(S(ENV "<s:Body><m:Unsubscribe/></s:Body></s:Envelope>"));
    assert_false(S(ENV "<s:Body><m:FindItem/></s:Body></s:Envelope>"));
    assert_false(S(ENV "<s:Body><m:SubscribeX/></s:Body></s:Envelope>"));
    assert_false(S(ENV "<s:Body/></s:Envelope>"));
    assert_false(S(ENV "<s:Header><m:Subscribe/></s:Header></s:Envelope>"));
    assert_false(S(""));
    assert_false(S("<s:Body>"));
    assert_false(S("<<<<"));
    /* a fake Body inside the header, the real one asks for something else */
    assert_false(S(ENV "<s:Header><x:Body xmlns:x=\"" SOAP "\"><m:Subscribe/></x:Body></s:Header>"
                       "<s:Body><m:FindItem/></s:Body></s:Envelope>"));
    assert_false(S(ENV "<s:Header><s:Header></s:Header><s:Body><m:Subscribe/></s:Body>"
                       "</s:Header><s:Body><m:FindItem/></s:Body></s:Envelope>"));
    assert_false(S(ENV "<s:Header>"));
    /* a Subscribe only in a header, a FindItem in the body */
    assert_false(S(ENV "<s:Header><m:Subscribe/></s:Header><s:Body><m:FindItem/></s:Body>"
                       "</s:Envelope>"));
    /* what the scanner that stood here let through: a Subscribe in a
     * comment, a CDATA section or a processing instruction before the real
     * operation; a prefix bound to another namespace; a Subscribe followed
     * by a second operation */
    assert_false(S(ENV "<s:Body><!--<m:Subscribe/>--><m:FindItem/></s:Body></s:Envelope>"));
    assert_false(S(ENV "<s:Body><![CDATA[<m:Subscribe/>]]><m:GetItem/></s:Body></s:Envelope>"));
    assert_false(S(ENV "<s:Body><?x <m:Subscribe/> ?><m:FindItem/></s:Body></s:Envelope>"));
    assert_false(S(ENV "<s:Body><m:Subscribe xmlns:m=\"" TYP "\"/></s:Body></s:Envelope>"));
    assert_false(S("<s:Envelope xmlns:s=\"urn:fake\"><s:Body><m:Subscribe xmlns:m=\"" MSG
                   "\"/></s:Body></s:Envelope>"));
    assert_false(S(ENV "<s:Body><m:Subscribe/><m:FindItem/></s:Body></s:Envelope>"));
    /* no DTD, so no entity can stand for the operation */
    assert_false(S("<!DOCTYPE s:Envelope [<!ENTITY sub \"<m:Subscribe/>\">]>" ENV
                   "<s:Body>&sub;</s:Body></s:Envelope>"));
}

static int T(const char *t, struct route_target *out)
{
    return route_target_check(t, strlen(t), out);
}

static void test_target(void **state)
{
    struct route_target t;
    assert_int_equal(T("/Microsoft-Server-ActiveSync?Cmd=Sync&DeviceId=A", &t), ROUTE_TARGET_OK);
    assert_null(t.authority);
    assert_int_equal(t.origin_off, 0);
    /* absolute form: the authority, and where the origin form starts */
    const char *abs = "HTTPS://Mail.Example.com:8443/Microsoft-Server-ActiveSync?Cmd=Ping";
    assert_int_equal(T(abs, &t), ROUTE_TARGET_OK);
    assert_int_equal(t.authority_len, strlen("Mail.Example.com:8443"));
    assert_memory_equal(t.authority, "Mail.Example.com:8443", t.authority_len);
    assert_string_equal(abs + t.origin_off, "/Microsoft-Server-ActiveSync?Cmd=Ping");
    assert_int_equal(T("http://[::1]:80/x", &t), ROUTE_TARGET_OK);
    assert_memory_equal(t.authority, "[::1]:80", t.authority_len);
    assert_int_equal(T("http://h/", &t), ROUTE_TARGET_OK);
    assert_int_equal(t.origin_off, 8);
    assert_int_equal(T("http://h", &t), ROUTE_TARGET_FORM);
    assert_int_equal(T("http://h?Cmd=Sync", &t), ROUTE_TARGET_FORM);
    assert_int_equal(T("http:///x", &t), ROUTE_TARGET_FORM);
    assert_int_equal(T("http://u:p@h/x", &t), ROUTE_TARGET_FORM);
    assert_int_equal(T("ftp://h/x", &t), ROUTE_TARGET_FORM);
    /* no route takes these: left to route_of (404) */
    assert_int_equal(T("*", &t), ROUTE_TARGET_OK);
    assert_int_equal(T("mail.example.com:443", &t), ROUTE_TARGET_OK);
    /* fragments, anywhere */
    assert_int_equal(T("/a?Cmd=Sync#x", &t), ROUTE_TARGET_FRAGMENT);
    assert_int_equal(T("/a#?Cmd=Sync", &t), ROUTE_TARGET_FRAGMENT);
    assert_int_equal(T("http://h#/a", &t), ROUTE_TARGET_FRAGMENT);
    /* a '%' in a parameter name, in any query parameter */
    assert_int_equal(T("/a?Cmd=Sync&Device%49d=X", &t), ROUTE_TARGET_ENCODED_NAME);
    assert_int_equal(T("/a?Cmd=Sync&Device%u0049d=X", &t), ROUTE_TARGET_ENCODED_NAME);
    assert_int_equal(T("/a?%43md=Sync", &t), ROUTE_TARGET_ENCODED_NAME);
    assert_int_equal(T("/a?Cmd=Sync&x%", &t), ROUTE_TARGET_ENCODED_NAME);
    assert_int_equal(T("http://h/a?D%65viceId=1&Cmd=Sync", &t), ROUTE_TARGET_ENCODED_NAME);
    /* ... but values may be encoded, and a base64 query is one token */
    assert_int_equal(T("/a?Cmd=Sync&User=dom%5Cuser&ItemId=a%2Fb", &t), ROUTE_TARGET_OK);
    assert_int_equal(T("/a?jAAJBAp2MTQw%2BAAA%3D%3D", &t), ROUTE_TARGET_OK);
    assert_int_equal(T("/a?jAAJBAp2%2BMTQw==", &t), ROUTE_TARGET_OK);
    assert_string_equal(route_target_reason(ROUTE_TARGET_ENCODED_NAME), "target-encoded-name");
}

static int H(const char *host, const char *const *globs, size_t n)
{
    return route_host_allowed(host, strlen(host), globs, n);
}

static void test_host_allowed(void **state)
{
    const char *const names[] = {"mail.example.com", "*.corp.example", "[::1]"};
    assert_true(H("anything", NULL, 0));
    assert_true(H("mail.example.com", names, 3));
    assert_true(H("MAIL.Example.COM:443", names, 3));
    assert_true(H("mail.example.com.", names, 3));
    assert_true(H("eas.corp.example", names, 3));
    assert_true(H("a.b.corp.example:8443", names, 3));
    assert_true(H("[::1]:443", names, 3));
    assert_false(H("corp.example", names, 3));
    assert_false(H("evil.example", names, 3));
    assert_false(H("mail.example.com.evil", names, 3));
    assert_false(H("xmail.example.com", names, 3));
    assert_false(H("mail.example.com:44x", names, 3));
    assert_false(H("mail.example.com@evil", names, 3));
    assert_false(H("[::2]", names, 3));
    assert_false(H("[::1", names, 3));
    assert_false(H("", names, 3));
    assert_false(H(":443", names, 3));
    const char *const star[] = {"*"};
    assert_true(H("whatever.example", star, 1));
}

static void test_head(void **state)
{
    struct head *h = head_new(64);
    assert_non_null(h);
    assert_int_equal(head_url(h, "/a", 2), 0);
    assert_int_equal(head_url(h, "?b", 2), 0);
    assert_int_equal(head_field(h, "Ho", 2), 0);
    assert_int_equal(head_field(h, "st", 2), 0);
    assert_int_equal(head_value(h, "ex", 2), 0);
    assert_int_equal(head_value(h, "ample", 5), 0);
    assert_int_equal(head_field(h, "X", 1), 0);
    assert_int_equal(head_value(h, "1", 1), 0);
    assert_int_equal(h->n, 2);
    assert_memory_equal(h->data + h->url_off, "/a?b", 4);
    size_t vl;
    const char *v = head_get(h, "host", &vl);
    assert_non_null(v);
    assert_int_equal(vl, 7);
    assert_memory_equal(v, "example", 7);
    assert_null(head_get(h, "Cookie", &vl));
    /* over the cap */
    char big[80];
    memset(big, 'a', sizeof(big));
    assert_int_equal(head_value(h, big, sizeof(big)), -1);
    free(h);
    /* too many headers */
    h = head_new(HEAD_MAX_BYTES);
    int rc = 0;
    for (int i = 0; i <= HEAD_MAX_HEADERS && rc == 0; i++) {
        rc = head_field(h, "A", 1);
        if (rc == 0)
            rc = head_value(h, "b", 1);
    }
    assert_int_equal(rc, -1);
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),   cmocka_unit_test(test_ews_path_tricks),
        cmocka_unit_test(test_path_end), cmocka_unit_test(test_ews_subscription),
        cmocka_unit_test(test_target),   cmocka_unit_test(test_host_allowed),
        cmocka_unit_test(test_head),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
