/* test_ews: the EWS operation of a SOAP request, read by libxml2. The four
 * push operations pass in the messages namespace under a SOAP 1.1 or 1.2
 * Envelope; anything else, and every trick a scanner falls for (comments,
 * CDATA, processing instructions, prefixes bound elsewhere, a Body in the
 * header, two operations, a DTD with entities), does not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eas/ews.h"

#define S11 "http://schemas.xmlsoap.org/soap/envelope/"
#define S12 "http://www.w3.org/2003/05/soap-envelope"
#define M "http://schemas.microsoft.com/exchange/services/2006/messages"
#define T "http://schemas.microsoft.com/exchange/services/2006/types"

/* An exact-size heap copy, so ASan sees a read past the end. */
static int op_of(const char *body, enum ews_op *op)
{
    size_t n = strlen(body);
    char *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    memcpy(copy, body, n);
    int rc = ews_request_op(copy, n, op);
    free(copy);
    return rc;
}

static void expect(const char *body, int rc_want, enum ews_op op_want)
{
    enum ews_op op;
    int rc = op_of(body, &op);
    if (rc != rc_want || op != op_want)
        fail_msg("%s\n  -> rc %d (%s) op %s, want rc %d op %s", body, rc, ews_strerror(rc),
                 ews_op_name(op), rc_want, ews_op_name(op_want));
    assert_int_equal(ews_is_subscription(body, strlen(body)),
                     rc_want == 0 && op_want != EWS_OP_OTHER);
}

#define ENV(ns, body)                                                                              \
    "<s:Envelope xmlns:s=\"" ns "\" xmlns:m=\"" M "\" xmlns:t=\"" T "\">" body "</s:Envelope>"

static void push_operations(void **state)
{
    expect("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n" ENV(
               S11, "\n  <s:Header><t:RequestServerVersion Version=\"Exchange2013\"/></s:Header>\n"
                    "  <s:Body>\n    <m:Subscribe><m:StreamingSubscriptionRequest/></m:Subscribe>\n"
                    "  </s:Body>\n"),
           0, EWS_OP_SUBSCRIBE);
    expect(ENV(S11, "<s:Body><GetStreamingEvents xmlns=\"" M "\"><SubscriptionIds/>"
                    "</GetStreamingEvents></s:Body>"),
           0, EWS_OP_GETSTREAMINGEVENTS);
    expect(ENV(S12, "<s:Body><m:GetEvents/></s:Body>"), 0, EWS_OP_GETEVENTS);
    expect(ENV(S11, "<s:Body><!-- c --><m:Unsubscribe/><?pi x?></s:Body>"), 0, EWS_OP_UNSUBSCRIBE);
}

static void other_operations(void **state)
{
    expect(ENV(S11, "<s:Body><m:FindItem/></s:Body>"), 0, EWS_OP_OTHER);
    expect(ENV(S11, "<s:Body><m:GetItem/></s:Body>"), 0, EWS_OP_OTHER);
    expect(ENV(S11, "<s:Body><m:SubscribeX/></s:Body>"), 0, EWS_OP_OTHER);
    /* right name, wrong namespace: the types namespace, none, a lookalike */
    expect(ENV(S11, "<s:Body><t:Subscribe/></s:Body>"), 0, EWS_OP_OTHER);
    expect(ENV(S11, "<s:Body><Subscribe/></s:Body>"), 0, EWS_OP_OTHER);
    expect(ENV(S11, "<s:Body><x:Subscribe xmlns:x=\"" M "/\"/></s:Body>"), 0, EWS_OP_OTHER);
    /* prefix m rebound to another namespace on the element itself */
    expect(ENV(S11, "<s:Body><m:Subscribe xmlns:m=\"urn:evil\"/></s:Body>"), 0, EWS_OP_OTHER);
}

static void scanner_tricks(void **state)
{
    /* a Subscribe inside a comment, the real operation a FindItem */
    expect(ENV(S11, "<s:Body><!-- <m:Subscribe/> --><m:FindItem/></s:Body>"), 0, EWS_OP_OTHER);
    /* inside CDATA: text beside the operation is refused outright */
    expect(ENV(S11, "<s:Body><![CDATA[<m:Subscribe/>]]><m:FindItem/></s:Body>"), EWS_E_OP,
           EWS_OP_OTHER);
    /* inside a processing instruction */
    expect(ENV(S11, "<s:Body><?x <m:Subscribe/> ?><m:GetItem/></s:Body>"), 0, EWS_OP_OTHER);
    /* inside an attribute value */
    expect(ENV(S11, "<s:Body><m:GetItem a=\"&lt;m:Subscribe/>\"/></s:Body>"), 0, EWS_OP_OTHER);
    /* a fake Body in the header, the real one asks for something else */
    expect(ENV(S11, "<s:Header><s:Body><m:Subscribe/></s:Body></s:Header>"
                    "<s:Body><m:FindItem/></s:Body>"),
           0, EWS_OP_OTHER);
    /* a Body element from another namespace in front of the real one */
    expect(
        ENV(S11, "<x:Body xmlns:x=\"urn:x\"><m:Subscribe/></x:Body><s:Body><m:FindItem/></s:Body>"),
        EWS_E_BODY, EWS_OP_OTHER);
    /* two operations, the first a subscription */
    expect(ENV(S11, "<s:Body><m:Subscribe/><m:FindItem/></s:Body>"), EWS_E_OP, EWS_OP_OTHER);
    /* two Bodies */
    expect(ENV(S11, "<s:Body><m:Subscribe/></s:Body><s:Body><m:FindItem/></s:Body>"), EWS_E_BODY,
           EWS_OP_OTHER);
    /* an Envelope of SOAP 1.1 with a Body of SOAP 1.2 */
    expect("<s:Envelope xmlns:s=\"" S11 "\" xmlns:b=\"" S12 "\" xmlns:m=\"" M "\">"
           "<b:Body><m:Subscribe/></b:Body></s:Envelope>",
           EWS_E_BODY, EWS_OP_OTHER);
    /* text beside the Body */
    expect(ENV(S11, "junk<s:Body><m:Subscribe/></s:Body>"), EWS_E_BODY, EWS_OP_OTHER);
}

static void not_soap(void **state)
{
    expect("", EWS_E_XML, EWS_OP_OTHER);
    expect("<<<<", EWS_E_XML, EWS_OP_OTHER);
    expect("<m:Subscribe xmlns:m=\"" M "\"/>", EWS_E_ENVELOPE, EWS_OP_OTHER);
    expect("<Envelope><Body><Subscribe/></Body></Envelope>", EWS_E_ENVELOPE, EWS_OP_OTHER);
    expect(ENV(S11, ""), EWS_E_BODY, EWS_OP_OTHER);
    expect(ENV(S11, "<s:Body/>"), EWS_E_OP, EWS_OP_OTHER);
    expect(ENV(S11, "<s:Header/>"), EWS_E_BODY, EWS_OP_OTHER);
    expect(ENV(S11, "<s:Body><m:Subscribe/></s:Body><s:Header/>"), EWS_E_BODY, EWS_OP_OTHER);
    /* not well-formed: unclosed, undeclared prefix, garbage after the root */
    expect("<s:Envelope xmlns:s=\"" S11 "\"><s:Body><m:Subscribe/></s:Body>", EWS_E_XML,
           EWS_OP_OTHER);
    expect(ENV(S11, "<s:Body><q:Subscribe/></s:Body>"), EWS_E_XML, EWS_OP_OTHER);
    expect(ENV(S11, "<s:Body><m:Subscribe/></s:Body>") "<x/>", EWS_E_XML, EWS_OP_OTHER);
    expect(ENV(S11, "<s:Body><m:Subscribe/></s:Body>") "\x01", EWS_E_XML, EWS_OP_OTHER);
    /* NUL inside */
    enum ews_op op;
    static const char nul[] = ENV(S11, "<s:Body><m:Subscribe/>\0</s:Body>");
    assert_true(ews_request_op(nul, sizeof(nul) - 1, &op) < 0);
    assert_int_equal(ews_request_op(NULL, 0, &op), EWS_E_INVAL);
}

static void dtd_and_entities(void **state)
{
    /* billion laughs, external entity, external DTD: refused at the DOCTYPE */
    expect("<?xml version=\"1.0\"?><!DOCTYPE s:Envelope [<!ENTITY a \"aaaaaaaaaa\">"
           "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c "
           "\"&b;&b;&b;&b;&b;&b;&b;&b;\">]>" ENV(S11,
                                                 "<s:Body><m:Subscribe>&c;</m:Subscribe></s:Body>"),
           EWS_E_DTD, EWS_OP_OTHER);
    expect("<!DOCTYPE x SYSTEM \"file:///etc/passwd\">" ENV(S11, "<s:Body><m:Subscribe/></s:Body>"),
           EWS_E_DTD, EWS_OP_OTHER);
    expect("<!DOCTYPE x [<!ENTITY e SYSTEM \"http://127.0.0.1:1/\">]>" ENV(
               S11, "<s:Body><m:Subscribe>&e;</m:Subscribe></s:Body>"),
           EWS_E_DTD, EWS_OP_OTHER);
    /* an entity reference without a DTD is not well-formed */
    expect(ENV(S11, "<s:Body>&x;<m:Subscribe/></s:Body>"), EWS_E_XML, EWS_OP_OTHER);
    /* predefined entities and character references are fine where text may be */
    expect(ENV(S11, "<s:Body><m:Subscribe><t:x>&lt;&#65;</t:x></m:Subscribe></s:Body>"), 0,
           EWS_OP_SUBSCRIBE);
}

static void deep_nesting(void **state)
{
    /* 10,000 levels inside the operation: libxml2's depth limit, no crash */
    size_t depth = 10000;
    size_t cap = depth * 8 + 512;
    char *b = malloc(cap);
    assert_non_null(b);
    size_t o = (size_t)snprintf(
        b, cap, "<s:Envelope xmlns:s=\"" S11 "\" xmlns:m=\"" M "\"><s:Body><m:Subscribe>");
    for (size_t i = 0; i < depth; i++)
        o += (size_t)snprintf(b + o, cap - o, "<a>");
    for (size_t i = 0; i < depth; i++)
        o += (size_t)snprintf(b + o, cap - o, "</a>");
    o += (size_t)snprintf(b + o, cap - o, "</m:Subscribe></s:Body></s:Envelope>");
    enum ews_op op;
    assert_int_equal(ews_request_op(b, o, &op), EWS_E_XML);
    free(b);
}

/* Bad bytes for the declared encoding, an unknown encoding, a truncated
 * UTF-16 body: refused, and nothing is printed. libxml2 reports encoding
 * errors through its per-thread generic error handler, which writes to
 * stderr unless told otherwise: a phone could fill the proxy's log. */
static void quiet_on_bad_encodings(void **state)
{
    static const struct {
        const char *b;
        size_t n;
    } bodies[] = {
#define B(x) {x, sizeof(x) - 1}
        B("<?xml version=\"1.0\" encoding=\"Shift_JIS\"?><a>\x81\x20\xff\xfe</a>"),
        B("<?xml version=\"1.0\" encoding=\"ISO-2022-JP\"?><a>\x1b$B\xff\xff</a>"),
        B("<?xml version=\"1.0\" encoding=\"UTF-16\"?><a>x</a>"),
        B("<?xml version=\"1.0\" encoding=\"x-no-such-thing\"?><a/>"),
        B("<?xml version=\"1.0\" encoding=\"UTF-8\"?><a>\xc3\x28\xed\xa0\x80</a>"),
        B("\xff\xfe<\0a\0>\0\xd8"),
#undef B
    };
    char path[] = "/tmp/test_ews.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        enum ews_op op;
        int rc = ews_request_op(bodies[i].b, bodies[i].n, &op);
        assert_true(rc < 0); /* none of these is a SOAP request */
    }
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    off_t printed = lseek(fd, 0, SEEK_END);
    char buf[256] = "";
    if (printed > 0) {
        lseek(fd, 0, SEEK_SET);
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        buf[n > 0 ? n : 0] = 0;
    }
    close(fd);
    if (printed != 0)
        fail_msg("libxml2 printed %lld bytes: %s", (long long)printed, buf);
}

int main(void)
{
    if (!ews_xml_ready()) {
        fprintf(stderr, "libxml2 cannot be opened\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(push_operations),        cmocka_unit_test(other_operations),
        cmocka_unit_test(scanner_tricks),         cmocka_unit_test(not_soap),
        cmocka_unit_test(dtd_and_entities),       cmocka_unit_test(deep_nesting),
        cmocka_unit_test(quiet_on_bad_encodings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
