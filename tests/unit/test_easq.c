/*
 * test_easq: request identity from queries and headers (eas/easq.h).
 * Table tests for every query form and every malformed case, header forms
 * (Basic, Bearer JWT), precedence, and encoder round trips.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "eas/easq.h"

/* ---- helpers ----------------------------------------------------------- */

static const char b64std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Test-side base64 so the decoder is checked against an independent encoder. */
static void b64(const unsigned char *in, size_t n, char *out, bool url, bool pad)
{
    const char *a = url ? b64url : b64std;
    size_t o = 0, i;
    for (i = 0; i + 2 < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = a[v >> 18], out[o++] = a[v >> 12 & 63], out[o++] = a[v >> 6 & 63],
        out[o++] = a[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        out[o++] = a[v >> 18], out[o++] = a[v >> 12 & 63];
        if (pad)
            out[o++] = '=', out[o++] = '=';
    } else if (n - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        out[o++] = a[v >> 18], out[o++] = a[v >> 12 & 63], out[o++] = a[v >> 6 & 63];
        if (pad)
            out[o++] = '=';
    }
    out[o] = '\0';
}

static int parse_q(struct easq_ident *id, const char *q)
{
    easq_init(id);
    return easq_parse_query(id, q, strlen(q));
}

static int parse_all(struct easq_ident *id, const char *target, const char *const *hdrs)
{
    easq_init(id);
    int rc = easq_parse_target(id, target, strlen(target));
    if (rc)
        return rc;
    for (; hdrs && *hdrs; hdrs += 2) {
        rc = easq_parse_header(id, hdrs[0], strlen(hdrs[0]), hdrs[1], strlen(hdrs[1]));
        if (rc)
            return rc;
    }
    return easq_finish(id);
}

/* Parse a byte sequence given as base64 of raw bytes. */
static int parse_bytes(struct easq_ident *id, const unsigned char *b, size_t n)
{
    char q[4096];
    b64(b, n, q, false, true);
    easq_init(id);
    int rc = easq_parse_query(id, q, strlen(q));
    return rc ? rc : easq_finish(id);
}

/* ---- the MS-ASHTTP example ------------------------------------------- */

static void test_spec_example(void **state)
{
    (void)state;
    struct easq_ident id;
    /* MS-ASHTTP 2.2.1.1.1.1: version 140, Sync, locale en-US (0x0409),
     * DeviceId "v140Device", no policy key, DeviceType "SmartPhone". */
    assert_int_equal(
        parse_all(&id, "/Microsoft-Server-ActiveSync?jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l", NULL),
        0);
    assert_int_equal(id.form, EASQ_QUERY_BASE64);
    assert_int_equal(id.version, 140);
    assert_int_equal(id.cmd, EASQ_CMD_SYNC);
    assert_string_equal(id.cmd_name, "Sync");
    assert_true(id.has_locale);
    assert_int_equal(id.locale, 0x0409);
    assert_string_equal(id.device_id, "v140Device");
    assert_false(id.has_policy_key);
    assert_string_equal(id.device_type, "SmartPhone");
    assert_string_equal(id.query_user, "");
    assert_int_equal(id.user_src, EASQ_USER_NONE);
    assert_false(id.has_options);
}

/* ---- plain form -------------------------------------------------------- */

static void test_plain_provision(void **state)
{
    (void)state;
    struct easq_ident id;
    /* MS-ASPROV 4.1.2 request line and headers. */
    const char *h[] = {"Accept-Language",
                       "en-us",
                       "MS-ASProtocolVersion",
                       "14.0",
                       "Content-Type",
                       "application/vnd.ms-sync.wbxml",
                       "X-MS-PolicyKey",
                       "0",
                       "User-Agent",
                       "ASOM",
                       NULL};
    assert_int_equal(parse_all(&id,
                               "/Microsoft-Server-ActiveSync?User=deviceuser&DeviceId="
                               "6F24CAD599A5BF1A690246B8C68FAE8D&DeviceType=PocketPC&Cmd=Provision",
                               h),
                     0);
    assert_int_equal(id.form, EASQ_QUERY_PLAIN);
    assert_int_equal(id.cmd, EASQ_CMD_PROVISION);
    assert_string_equal(id.cmd_name, "Provision");
    assert_int_equal(id.version, 140);
    assert_true(id.has_policy_key);
    assert_int_equal(id.policy_key, 0);
    assert_string_equal(id.user, "deviceuser");
    assert_string_equal(id.domain, "");
    assert_int_equal(id.user_src, EASQ_USER_QUERY);
    assert_string_equal(id.device_id, "6F24CAD599A5BF1A690246B8C68FAE8D");
    assert_string_equal(id.device_type, "PocketPC");
    assert_string_equal(id.user_agent, "ASOM");
    assert_false(id.has_locale);
}

static void test_plain_params(void **state)
{
    (void)state;
    struct easq_ident id;
    const char *h[] = {"MS-ASProtocolVersion", "12.1", "X-MS-PolicyKey", "3942919513", NULL};
    assert_int_equal(parse_all(&id,
                               "?Cmd=SmartReply&User=CORP%5Calice&DeviceId=androidc1234&"
                               "DeviceType=Android&ItemId=5%3A12&CollectionId=5&"
                               "LongId=RgAAAA%2Bx&Occurrence=2026-11-22T10%3A00%3A00.000Z&"
                               "SaveInSent=T&Extra=ignored",
                               h),
                     0);
    assert_int_equal(id.cmd, EASQ_CMD_SMARTREPLY);
    assert_int_equal(id.version, 121);
    assert_int_equal(id.policy_key, 3942919513u);
    assert_string_equal(id.query_user, "CORP\\alice");
    assert_string_equal(id.user, "alice");
    assert_string_equal(id.domain, "CORP");
    assert_int_equal(id.user_form, EASQ_FORM_DOWNLEVEL);
    assert_string_equal(id.item_id, "5:12");
    assert_string_equal(id.collection_id, "5");
    assert_string_equal(id.long_id, "RgAAAA+x");
    assert_string_equal(id.occurrence, "2026-11-22T10:00:00.000Z");
    assert_true(id.save_in_sent);

    assert_int_equal(parse_all(&id,
                               "Cmd=GetAttachment&User=bob%40corp.example&DeviceId=ApplF17X&"
                               "DeviceType=iPhone&AttachmentName=7%3A1%3A0&SaveInSent=F",
                               NULL),
                     0);
    assert_int_equal(id.cmd, EASQ_CMD_GETATTACHMENT);
    assert_string_equal(id.attachment_name, "7:1:0");
    assert_string_equal(id.user, "bob");
    assert_string_equal(id.domain, "corp.example");
    assert_int_equal(id.user_form, EASQ_FORM_UPN);
    assert_false(id.save_in_sent);
    assert_int_equal(id.version, 0); /* no header: not given */
    assert_false(id.has_policy_key);

    /* Names are case-insensitive; '+' is literal; empty pieces skipped. */
    assert_int_equal(parse_all(&id, "cmd=foldersync&&user=a+b&deviceid=X1&devicetype=T&", NULL), 0);
    assert_int_equal(id.cmd, EASQ_CMD_FOLDERSYNC);
    assert_string_equal(id.cmd_name, "FolderSync");
    assert_string_equal(id.user, "a+b");
}

static void test_target_forms(void **state)
{
    (void)state;
    struct easq_ident id;
    const char *q = "Cmd=Ping&User=u&DeviceId=D1&DeviceType=T";
    const char *forms[] = {
        "Cmd=Ping&User=u&DeviceId=D1&DeviceType=T",
        "?Cmd=Ping&User=u&DeviceId=D1&DeviceType=T",
        "/Microsoft-Server-ActiveSync?Cmd=Ping&User=u&DeviceId=D1&DeviceType=T",
        "https://mail.example.com/Microsoft-Server-ActiveSync?Cmd=Ping&User=u&DeviceId=D1&"
        "DeviceType=T#frag",
        "https://[2001:db8::1]:8443/Microsoft-Server-ActiveSync?Cmd=Ping&User=u&DeviceId=D1&"
        "DeviceType=T",
    };
    (void)q;
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        assert_int_equal(parse_all(&id, forms[i], NULL), 0);
        assert_int_equal(id.cmd, EASQ_CMD_PING);
        assert_string_equal(id.device_id, "D1");
    }
    easq_init(&id);
    assert_int_equal(easq_parse_target(&id, "/Microsoft-Server-ActiveSync", 28), EASQ_E_EMPTY);
    easq_init(&id);
    assert_int_equal(easq_parse_target(&id, "/Microsoft-Server-ActiveSync?", 29), EASQ_E_EMPTY);
    easq_init(&id);
    assert_int_equal(easq_parse_target(&id, "https://h/x", 11), EASQ_E_EMPTY);
    easq_init(&id);
    assert_int_equal(easq_parse_target(&id, "", 0), EASQ_E_EMPTY);
    /* A second query on one ident is refused. */
    easq_init(&id);
    assert_int_equal(easq_parse_query(&id, "Cmd=Sync", 8), 0);
    assert_int_equal(easq_parse_query(&id, "Cmd=Sync", 8), EASQ_E_DUPLICATE);
}

/* ---- base64 form --------------------------------------------------------- */

static void test_b64_full(void **state)
{
    (void)state;
    struct easq_ident id;
    unsigned char b[] = {161, 3,    0x07, 0x04,                  /* 16.1, SmartReply, de-DE */
                         4,   'A',  'b',  'c',  '9',             /* DeviceId */
                         4,   0x78, 0x56, 0x34, 0x12,            /* policy key 0x12345678 */
                         6,   'i',  'P',  'h',  'o',  'n', 'e',  /* DeviceType */
                         1,   1,    '5',                         /* CollectionId */
                         3,   4,    '5',  ':',  '1',  '2',       /* ItemId */
                         4,   2,    'L',  'I',                   /* LongId */
                         6,   3,    'o',  'c',  'c',             /* Occurrence */
                         0,   3,    'a',  '.',  'b',             /* AttachmentName */
                         7,   1,    0x03,                        /* Options */
                         8,   5,    'a',  'l',  'i',  'c', 'e'}; /* User */
    assert_int_equal(parse_bytes(&id, b, sizeof(b)), 0);
    assert_int_equal(id.version, 161);
    assert_int_equal(id.cmd, EASQ_CMD_SMARTREPLY);
    assert_int_equal(id.locale, 0x0407);
    assert_string_equal(id.device_id, "Abc9");
    assert_true(id.has_policy_key);
    assert_int_equal(id.policy_key, 0x12345678u);
    assert_string_equal(id.device_type, "iPhone");
    assert_string_equal(id.collection_id, "5");
    assert_string_equal(id.item_id, "5:12");
    assert_string_equal(id.long_id, "LI");
    assert_string_equal(id.occurrence, "occ");
    assert_string_equal(id.attachment_name, "a.b");
    assert_true(id.has_options);
    assert_int_equal(id.options, 3);
    assert_true(id.save_in_sent);
    assert_true(id.accept_multipart);
    assert_string_equal(id.user, "alice");
    assert_int_equal(id.user_src, EASQ_USER_QUERY);

    /* Unpadded and percent-encoded spellings of the same bytes agree. */
    char q[512], pq[1024];
    b64(b, sizeof(b), q, false, false);
    easq_init(&id);
    assert_int_equal(easq_parse_query(&id, q, strlen(q)), 0);
    assert_int_equal(easq_finish(&id), 0);
    assert_int_equal(id.policy_key, 0x12345678u);
    b64(b, sizeof(b), q, false, true);
    size_t o = 0;
    for (const char *p = q; *p; p++) {
        if (*p == '+' || *p == '/' || *p == '=')
            o += (size_t)sprintf(pq + o, "%%%02X", (unsigned char)*p);
        else
            pq[o++] = *p;
    }
    pq[o] = '\0';
    easq_init(&id);
    assert_int_equal(easq_parse_query(&id, pq, o), 0);
    assert_string_equal(id.device_type, "iPhone");
}

static void test_b64_guid_deviceid(void **state)
{
    (void)state;
    struct easq_ident id;
    unsigned char b[] = {141,  0,    9,    4,    16,   0x6f, 0x24, 0xca, 0xd5,
                         0x99, 0xa5, 0xbf, 0x1a, 0x69, 0x02, 0x46, 0xb8, 0xc6,
                         0x8f, 0xae, 0x8d, 0,    2,    'W',  'P'};
    assert_int_equal(parse_bytes(&id, b, sizeof(b)), 0);
    assert_string_equal(id.device_id, "6F24CAD599A5BF1A690246B8C68FAE8D");
    /* Non-alphanumeric and not 16 bytes: rejected. */
    unsigned char c[] = {141, 0, 9, 4, 3, 'a', '-', 'b', 0, 2, 'W', 'P'};
    assert_int_equal(parse_bytes(&id, c, sizeof(c)), EASQ_E_DEVICEID_CHARS);
}

/* ---- malformed input table ----------------------------------------------- */

struct bad_case {
    const char *name;
    const char *q;
    size_t len; /* 0: strlen */
    int want;
};

static void test_bad_queries(void **state)
{
    (void)state;
    char long_val[400], long_dev[64], q[512];
    memset(long_val, 'x', 300);
    long_val[300] = '\0';
    memset(long_dev, 'A', 33);
    long_dev[33] = '\0';
    const struct bad_case cases[] = {
        {"empty", "", 0, EASQ_E_EMPTY},
        {"b64 invalid char", "jAAJ*Ap2MTQw", 0, EASQ_E_B64},
        {"b64 url alphabet", "jAAJ-Ap2MTQw", 0, EASQ_E_B64},
        {"b64 cut in group", "jAAJB", 0, EASQ_E_B64_TRUNCATED},
        {"b64 only padding", "==", 0, EASQ_E_B64_TRUNCATED},
        {"b64 pad mid", "jA=AjAAJ", 0, EASQ_E_CMD_MISSING}, /* '=' inside: read as plain */
        {"b64 bad pad count", "jAAJBA=", 0, EASQ_E_B64},
        {"b64 nonzero trailing bits", "jAB", 0, EASQ_E_B64},
        {"b64 three bytes", "jAAJ", 0, EASQ_E_TRUNCATED},
        {"b64 raw NUL", "jAAJ\0Ap2", 8, EASQ_E_NUL},
        {"b64 bad escape", "jAAJ%2", 0, EASQ_E_PERCENT},
        {"plain dup Cmd", "Cmd=Sync&Cmd=Ping&DeviceId=A&DeviceType=T", 0, EASQ_E_DUPLICATE},
        {"plain dup DeviceId case", "Cmd=Sync&DeviceId=A&deviceid=B&DeviceType=T", 0,
         EASQ_E_DUPLICATE},
        {"plain dup User", "Cmd=Sync&User=a&User=a&DeviceId=A&DeviceType=T", 0, EASQ_E_DUPLICATE},
        {"plain bad escape short", "Cmd=Sync&User=%4", 0, EASQ_E_PERCENT},
        {"plain bad escape hex", "Cmd=Sync&User=%zz", 0, EASQ_E_PERCENT},
        {"plain bad escape end", "Cmd=Sync&User=a%", 0, EASQ_E_PERCENT},
        {"plain bad escape unknown param", "Cmd=Sync&Foo=%G1", 0, EASQ_E_PERCENT},
        {"plain %00", "Cmd=Sync&User=a%00b", 0, EASQ_E_NUL},
        {"plain encoded name", "Cmd=Sync&Device%49d=B&DeviceType=T", 0, EASQ_E_PARAM_NAME},
        {"plain %u-encoded name", "Cmd=Sync&Device%u0049d=B", 0, EASQ_E_PARAM_NAME},
        {"plain '+' in name", "Cmd=Sync&Device+Id=B", 0, EASQ_E_PARAM_NAME},
        {"plain encoded Cmd name", "%43md=Sync&DeviceId=A", 0, EASQ_E_PARAM_NAME},
        {"plain space in name", "Cmd=Sync&Device Id=B", 0, EASQ_E_PARAM_NAME},
        {"plain raw NUL", "Cmd=Sync&User=a\0b", 16, EASQ_E_NUL},
        {"plain %0A", "Cmd=Sync&User=a%0Ab", 0, EASQ_E_CTRL},
        {"plain %0D in unknown", "Cmd=Sync&X=%0D", 0, EASQ_E_CTRL},
        {"plain unknown Cmd", "Cmd=Frobnicate&DeviceId=A&DeviceType=T", 0, EASQ_E_UNKNOWN_CMD},
        {"plain OPTIONS as Cmd", "Cmd=OPTIONS&DeviceId=A&DeviceType=T", 0, EASQ_E_UNKNOWN_CMD},
        {"plain empty Cmd", "Cmd=&DeviceId=A", 0, EASQ_E_CMD_MISSING},
        {"plain no Cmd", "User=a&DeviceId=A&DeviceType=T", 0, EASQ_E_CMD_MISSING},
        {"plain no '='", "Cmd=Sync&DeviceId", 0, EASQ_E_SYNTAX},
        {"plain empty name", "=x&Cmd=Sync", 0, EASQ_E_SYNTAX},
        {"plain DeviceId too long", NULL, 0, EASQ_E_DEVICEID_LEN},
        {"plain DeviceId empty", "Cmd=Sync&DeviceId=&DeviceType=T", 0, EASQ_E_DEVICEID_LEN},
        {"plain DeviceId chars", "Cmd=Sync&DeviceId=abc-def&DeviceType=T", 0,
         EASQ_E_DEVICEID_CHARS},
        {"plain DeviceId escaped dash", "Cmd=Sync&DeviceId=abc%2Ddef", 0, EASQ_E_DEVICEID_CHARS},
        {"plain SaveInSent value", "Cmd=SendMail&SaveInSent=yes", 0, EASQ_E_PARAM_VALUE},
        {"plain value too long", NULL, 1, EASQ_E_TOO_LONG},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *qq = cases[i].q;
        size_t len = cases[i].len;
        if (!qq && cases[i].want == EASQ_E_DEVICEID_LEN) {
            snprintf(q, sizeof(q), "Cmd=Sync&DeviceId=%s&DeviceType=T", long_dev);
            qq = q, len = 0;
        } else if (!qq) {
            snprintf(q, sizeof(q), "Cmd=Sync&DeviceType=%s", long_val);
            qq = q, len = 0;
        }
        if (len == 0)
            len = strlen(qq);
        struct easq_ident id;
        easq_init(&id);
        int rc = easq_parse_query(&id, qq, len);
        if (rc != cases[i].want)
            fail_msg("%s: got %d (%s), want %d (%s)", cases[i].name, rc, easq_strerror(rc),
                     cases[i].want, easq_strerror(cases[i].want));
    }
}

struct bad_bytes {
    const char *name;
    unsigned char b[24];
    size_t n;
    int want;
};

static void test_bad_b64_structure(void **state)
{
    (void)state;
    const struct bad_bytes cases[] = {
        {"version 0", {0, 0, 9, 4, 1, 'A', 0, 1, 'T'}, 9, EASQ_E_VERSION},
        {"unassigned code 5", {141, 5, 9, 4, 1, 'A', 0, 1, 'T'}, 9, EASQ_E_UNKNOWN_CMD},
        {"code 200", {141, 200, 9, 4, 1, 'A', 0, 1, 'T'}, 9, EASQ_E_UNKNOWN_CMD},
        {"four bytes", {141, 0, 9, 4}, 4, EASQ_E_TRUNCATED},
        {"DeviceId length 0", {141, 0, 9, 4, 0, 0, 1, 'T'}, 8, EASQ_E_DEVICEID_LEN},
        {"DeviceId past end", {141, 0, 9, 4, 10, 'a', 'b'}, 7, EASQ_E_LENGTH},
        {"no policy key length", {141, 0, 9, 4, 1, 'A'}, 6, EASQ_E_TRUNCATED},
        {"policy key length 3",
         {141, 0, 9, 4, 1, 'A', 3, 1, 2, 3, 1, 'T'},
         12,
         EASQ_E_POLICYKEY_LEN},
        {"policy key past end", {141, 0, 9, 4, 1, 'A', 4, 1, 2}, 9, EASQ_E_LENGTH},
        {"no DeviceType length", {141, 0, 9, 4, 1, 'A', 0}, 7, EASQ_E_TRUNCATED},
        {"DeviceType past end", {141, 0, 9, 4, 1, 'A', 0, 9, 'T'}, 9, EASQ_E_LENGTH},
        {"DeviceType empty", {141, 0, 9, 4, 1, 'A', 0, 0}, 8, EASQ_E_DEVICETYPE_MISSING},
        {"DeviceType NUL", {141, 0, 9, 4, 1, 'A', 0, 2, 'T', 0}, 10, EASQ_E_NUL},
        {"DeviceType CR", {141, 0, 9, 4, 1, 'A', 0, 2, 'T', '\r'}, 10, EASQ_E_CTRL},
        {"param tag only", {141, 0, 9, 4, 1, 'A', 0, 1, 'T', 1}, 10, EASQ_E_TRUNCATED},
        {"param past end", {141, 0, 9, 4, 1, 'A', 0, 1, 'T', 1, 5, 'x'}, 12, EASQ_E_LENGTH},
        {"param tag 2", {141, 0, 9, 4, 1, 'A', 0, 1, 'T', 2, 1, 'x'}, 12, EASQ_E_PARAM_TAG},
        {"param tag 9", {141, 0, 9, 4, 1, 'A', 0, 1, 'T', 9, 0}, 11, EASQ_E_PARAM_TAG},
        {"options length 2", {141, 0, 9, 4, 1, 'A', 0, 1, 'T', 7, 2, 1, 1}, 13, EASQ_E_PARAM_VALUE},
        {"dup param",
         {141, 0, 9, 4, 1, 'A', 0, 1, 'T', 1, 1, 'x', 1, 1, 'y'},
         15,
         EASQ_E_DUPLICATE},
        {"param NUL", {141, 0, 9, 4, 1, 'A', 0, 1, 'T', 8, 2, 'a', 0}, 13, EASQ_E_NUL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct easq_ident id;
        int rc = parse_bytes(&id, cases[i].b, cases[i].n);
        if (rc != cases[i].want)
            fail_msg("%s: got %d (%s), want %d (%s)", cases[i].name, rc, easq_strerror(rc),
                     cases[i].want, easq_strerror(cases[i].want));
    }
    /* DeviceId of 33 letters, present in full: too long, not "past end". */
    unsigned char big[64] = {141, 0, 9, 4, 33};
    memset(big + 5, 'A', 33);
    big[38] = 0, big[39] = 1, big[40] = 'T';
    struct easq_ident id;
    assert_int_equal(parse_bytes(&id, big, 41), EASQ_E_DEVICEID_LEN);
}

static void test_finish_requirements(void **state)
{
    (void)state;
    struct easq_ident id;
    assert_int_equal(parse_all(&id, "Cmd=Sync&User=a&DeviceType=T", NULL), EASQ_E_DEVICEID_MISSING);
    assert_int_equal(parse_all(&id, "Cmd=Sync&User=a&DeviceId=D", NULL), EASQ_E_DEVICETYPE_MISSING);
    easq_init(&id);
    assert_int_equal(easq_finish(&id), EASQ_E_EMPTY);
    /* OPTIONS: the caller sets it; nothing else is required. */
    easq_init(&id);
    id.cmd = EASQ_CMD_OPTIONS;
    assert_int_equal(easq_finish(&id), 0);
}

/* ---- headers ------------------------------------------------------------- */

static int hdr(struct easq_ident *id, const char *name, const char *value)
{
    return easq_parse_header(id, name, strlen(name), value, strlen(value));
}

static void basic_of(const char *cred, char *out)
{
    strcpy(out, "Basic ");
    b64((const unsigned char *)cred, strlen(cred), out + 6, false, true);
}

static void test_header_basic(void **state)
{
    (void)state;
    struct easq_ident id;
    char h[1024];
    struct {
        const char *cred, *user, *domain;
        enum easq_user_form form;
    } ok[] = {
        {"alice:secret", "alice", "", EASQ_FORM_PLAIN},
        {"CORP\\alice:se:cret", "alice", "CORP", EASQ_FORM_DOWNLEVEL},
        {"alice@corp.example:pw", "alice", "corp.example", EASQ_FORM_UPN},
        {"al@ce@corp.example:pw", "al@ce", "corp.example", EASQ_FORM_UPN},
        {"j\xc3\xa9r\xc3\xb4me:pw", "j\xc3\xa9r\xc3\xb4me", "", EASQ_FORM_PLAIN},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        parse_q(&id, "Cmd=Sync&User=other&DeviceId=A&DeviceType=T");
        basic_of(ok[i].cred, h);
        assert_int_equal(hdr(&id, "authorization", h), 0);
        assert_int_equal(easq_finish(&id), 0);
        assert_string_equal(id.user, ok[i].user);
        assert_string_equal(id.domain, ok[i].domain);
        assert_int_equal(id.user_form, ok[i].form);
        assert_int_equal(id.user_src, EASQ_USER_BASIC);
        assert_string_equal(id.query_user, "other");
    }
    char full[64];
    parse_q(&id, "Cmd=Sync&DeviceId=A&DeviceType=T");
    basic_of("CORP\\alice:pw", h);
    hdr(&id, "Authorization", h);
    easq_finish(&id);
    assert_int_equal(easq_user_full(&id, full, sizeof(full)), 10);
    assert_string_equal(full, "CORP\\alice");
    assert_int_equal(easq_user_full(&id, full, 5), EASQ_E_BUFSIZE);

    struct {
        const char *value;
        int want;
    } bad[] = {
        {"Basic", EASQ_E_AUTH},
        {"Basic ", EASQ_E_AUTH},
        {"Basic !!!!", EASQ_E_AUTH},
        {"Basic YWxpY2U", EASQ_E_AUTH},      /* "alice": no ':' */
        {"Basic OnB3", EASQ_E_AUTH},         /* ":pw": empty user */
        {"Basic YQ==YQ==", EASQ_E_AUTH},     /* padding in the middle */
        {"Basic YWxpY2UKOnB3", EASQ_E_CTRL}, /* "alice\n:pw" */
        {"Basic YQBiOnB3", EASQ_E_NUL},      /* "a\0b:pw" */
        {"Basic", EASQ_E_AUTH},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        parse_q(&id, "Cmd=Sync&DeviceId=A&DeviceType=T");
        int rc = hdr(&id, "Authorization", bad[i].value);
        if (rc != bad[i].want)
            fail_msg("'%s': got %d (%s), want %d", bad[i].value, rc, easq_strerror(rc),
                     bad[i].want);
        /* The struct stays usable: the query user (none) is the answer. */
        assert_int_equal(easq_finish(&id), 0);
        assert_int_equal(id.user_src, EASQ_USER_NONE);
    }
    /* A user name longer than the field. */
    char cred[600];
    memset(cred, 'u', 300);
    strcpy(cred + 300, ":pw");
    basic_of(cred, h);
    parse_q(&id, "Cmd=Sync&DeviceId=A&DeviceType=T");
    assert_int_equal(hdr(&id, "Authorization", h), EASQ_E_TOO_LONG);
    /* A Negotiate token that is not a whole NTLM message: unreadable, and
     * the query's User= does not stand in for it. */
    parse_q(&id, "Cmd=Sync&User=q&DeviceId=A&DeviceType=T");
    assert_int_equal(hdr(&id, "Authorization", "Negotiate TlRMTVNTUAAB"), 0);
    assert_int_equal(easq_finish(&id), 0);
    assert_int_equal(id.cred, EASQ_CRED_UNREADABLE);
    assert_int_equal(id.user_src, EASQ_USER_NONE);
    assert_string_equal(id.user, "");
}

/* An NTLM message (MS-NLMP 2.2.1.1 / 2.2.1.3), base64 into out. */
static void ntlm_msg(int type, const char *domain, const char *user, char *out)
{
    unsigned char m[256] = "NTLMSSP";
    size_t n = type == 3 ? 88 : 32;
    m[8] = (unsigned char)type;
    m[60] = 0x01; /* NTLMSSP_NEGOTIATE_UNICODE */
    if (type == 3) {
        const char *f[2] = {domain, user};
        for (int k = 0; k < 2; k++) {
            size_t at = k ? 36 : 28, l = strlen(f[k]);
            m[at] = m[at + 2] = (unsigned char)(2 * l);
            m[at + 4] = (unsigned char)n;
            for (size_t i = 0; i < l; i++) {
                m[n++] = (unsigned char)f[k][i];
                m[n++] = 0;
            }
        }
    }
    b64(m, n, out, false, true);
}

static void test_identity_rule(void **state)
{
    (void)state;
    struct easq_ident id;
    char h[1024], v[1100];

    /* two Authorization headers: malformed, no user, not even the query's */
    parse_q(&id, "Cmd=Sync&User=bob&DeviceId=A&DeviceType=T");
    basic_of("alice:pw", h);
    assert_int_equal(hdr(&id, "Authorization", h), 0);
    assert_int_equal(hdr(&id, "authorization", h), EASQ_E_DUPLICATE);
    assert_int_equal(easq_finish(&id), 0);
    assert_int_equal(id.auth_err, EASQ_E_DUPLICATE);
    assert_int_equal(id.user_src, EASQ_USER_NONE);
    assert_string_equal(id.user, "");

    /* Basic must be canonical base64 */
    const char *noncanon[] = {
        "Basic YWxpY2U6cHc",    /* "alice:pw" without its padding */
        "Basic YWxpY2U6cHd=",   /* non-zero bits after the last byte */
        "Basic YWxp Y2U6cHc=",  /* split by a space */
        "Basic YWxp\tY2U6cHc=", /* a tab inside */
        "Basic YWxpY2U6cHc===", /* too much padding */
    };
    for (size_t i = 0; i < sizeof(noncanon) / sizeof(noncanon[0]); i++) {
        parse_q(&id, "Cmd=Sync&User=alice&DeviceId=A&DeviceType=T");
        const char *x = noncanon[i];
        assert_true(hdr(&id, "Authorization", x) < 0);
        assert_int_equal(easq_finish(&id), 0);
        if (id.auth_err == 0)
            fail_msg("'%s' was read", x);
        assert_int_equal(id.user_src, EASQ_USER_NONE);
    }
    parse_q(&id, "Cmd=Sync&DeviceId=A&DeviceType=T");
    assert_int_equal(hdr(&id, "Authorization", "Basic YWxpY2U6cHc="), 0);
    assert_int_equal(easq_finish(&id), 0);
    assert_int_equal(id.auth_err, 0);
    assert_string_equal(id.user, "alice");

    /* NTLM AUTHENTICATE names the user, raw and under Negotiate */
    const char *schemes[] = {"NTLM", "Negotiate", "ntlm"};
    for (size_t i = 0; i < 3; i++) {
        parse_q(&id, "Cmd=Sync&User=bob&DeviceId=A&DeviceType=T");
        ntlm_msg(3, "CORP", "alice", h);
        snprintf(v, sizeof(v), "%s %s", schemes[i], h);
        assert_int_equal(hdr(&id, "Authorization", v), 0);
        assert_int_equal(easq_finish(&id), 0);
        assert_int_equal(id.cred, EASQ_CRED_NTLM);
        assert_int_equal(id.user_src, EASQ_USER_NTLM);
        assert_string_equal(id.user, "alice");
        assert_string_equal(id.domain, "CORP");
        assert_int_equal(id.user_form, EASQ_FORM_DOWNLEVEL);
    }
    parse_q(&id, "Cmd=Sync&DeviceId=A&DeviceType=T");
    ntlm_msg(3, "", "carol@corp.example", h);
    snprintf(v, sizeof(v), "NTLM %s", h);
    assert_int_equal(hdr(&id, "Authorization", v), 0);
    easq_finish(&id);
    assert_string_equal(id.user, "carol");
    assert_string_equal(id.domain, "corp.example");

    /* NEGOTIATE leg: a handshake, nobody named */
    parse_q(&id, "Cmd=Sync&User=bob&DeviceId=A&DeviceType=T");
    ntlm_msg(1, "", "", h);
    snprintf(v, sizeof(v), "NTLM %s", h);
    assert_int_equal(hdr(&id, "Authorization", v), 0);
    easq_finish(&id);
    assert_int_equal(id.cred, EASQ_CRED_NTLM_HANDSHAKE);
    assert_int_equal(id.user_src, EASQ_USER_NONE);
    assert_int_equal(id.auth_err, 0);

    /* NTLM with broken base64 is malformed; a CHALLENGE from a client,
     * Kerberos, an unknown scheme, an opaque Bearer: unreadable */
    parse_q(&id, "Cmd=Sync&User=bob&DeviceId=A&DeviceType=T");
    assert_int_equal(hdr(&id, "Authorization", "NTLM !!!!"), EASQ_E_AUTH);
    easq_finish(&id);
    assert_int_equal(id.auth_err, EASQ_E_AUTH);
    const char *unreadable[] = {
        "NTLM TlRMTVNTUAACAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
        "Negotiate YIIBAAYJKoZIhvcSAQICAQBu",
        "Digest username=\"bob\"",
        "Bearer opaque-token-of-some-provider",
        "Kerberos",
    };
    for (size_t i = 0; i < sizeof(unreadable) / sizeof(unreadable[0]); i++) {
        parse_q(&id, "Cmd=Sync&User=bob&DeviceId=A&DeviceType=T");
        hdr(&id, "Authorization", unreadable[i]);
        assert_int_equal(easq_finish(&id), 0);
        if (id.cred != EASQ_CRED_UNREADABLE || id.auth_err != 0)
            fail_msg("'%s': cred %d auth_err %d", unreadable[i], id.cred, id.auth_err);
        assert_int_equal(id.user_src, EASQ_USER_NONE);
        assert_string_equal(id.user, "");
        assert_true(id.cred_err < 0);
    }

    /* the connection's NTLM user serves requests without Authorization,
     * and never overrides one that is there */
    parse_q(&id, "Cmd=Sync&User=bob&DeviceId=A&DeviceType=T");
    easq_set_conn_user(&id, "CORP\\alice");
    assert_int_equal(easq_finish(&id), 0);
    assert_int_equal(id.user_src, EASQ_USER_CONN);
    assert_string_equal(id.user, "alice");
    assert_string_equal(id.domain, "CORP");
    parse_q(&id, "Cmd=Sync&DeviceId=A&DeviceType=T");
    easq_set_conn_user(&id, "CORP\\alice");
    basic_of("dave:pw", h);
    hdr(&id, "Authorization", h);
    easq_finish(&id);
    assert_int_equal(id.user_src, EASQ_USER_BASIC);
    assert_string_equal(id.user, "dave");
    /* no credential at all: the query's User= is the hint it always was */
    parse_q(&id, "Cmd=Sync&User=bob&DeviceId=A&DeviceType=T");
    assert_int_equal(easq_finish(&id), 0);
    assert_int_equal(id.cred, EASQ_CRED_NONE);
    assert_int_equal(id.user_src, EASQ_USER_QUERY);
}

static void bearer_of(const char *payload, char *out)
{
    char p[4096];
    b64((const unsigned char *)payload, strlen(payload), p, true, false);
    sprintf(out, "Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.%s.c2lnbmF0dXJl", p);
}

static void test_header_bearer(void **state)
{
    (void)state;
    struct easq_ident id;
    char h[8192];
    struct {
        const char *payload, *user, *domain;
    } ok[] = {
        {"{\"upn\":\"alice@corp.example\"}", "alice", "corp.example"},
        {"{\"aud\":\"x\",\"unique_name\":\"CORP\\\\bob\",\"iat\":1700000000}", "bob", "CORP"},
        {"{\"preferred_username\":\"carol@corp.example\",\"ver\":\"2.0\"}", "carol",
         "corp.example"},
        /* upn wins over the others, whatever the order */
        {"{\"preferred_username\":\"p@x\",\"unique_name\":\"u@x\",\"upn\":\"upn@x\"}", "upn", "x"},
        {"{\"upn\":\"upn@x\",\"unique_name\":\"u@x\"}", "upn", "x"},
        /* nested values, arrays, escapes and literals are skipped */
        {"{\"a\":{\"b\":[1,2,{\"upn\":\"no@no\"}],\"c\":null},\"d\":[true,false,-1.5e3],"
         "\"e\":\"q\\\"\\\\\\/\",\"upn\":\"d\\u00e9v@corp.example\"}",
         "d\xc3\xa9v", "corp.example"},
        {" {\n \"upn\" : \"s@x\" \n} ", "s", "x"},
        /* a surrogate pair decodes to 4-byte UTF-8 */
        {"{\"upn\":\"\\ud83d\\ude00@x\"}", "\xf0\x9f\x98\x80", "x"},
        /* an empty preferred claim does not hide a later one */
        {"{\"upn\":\"\",\"unique_name\":\"u@x\"}", "u", "x"},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        parse_q(&id, "Cmd=Sync&DeviceId=A&DeviceType=T");
        bearer_of(ok[i].payload, h);
        int rc = hdr(&id, "Authorization", h);
        if (rc)
            fail_msg("payload %zu: %s", i, easq_strerror(rc));
        assert_int_equal(easq_finish(&id), 0);
        assert_string_equal(id.user, ok[i].user);
        assert_string_equal(id.domain, ok[i].domain);
        assert_int_equal(id.user_src, EASQ_USER_BEARER);
    }
    struct {
        const char *payload;
        int want;
    } bad[] = {
        {"{\"sub\":\"123\"}", EASQ_E_JWT},
        {"{}", EASQ_E_JWT},
        {"[\"upn\",\"a@b\"]", EASQ_E_JWT},
        {"{\"upn\":42}", EASQ_E_JWT},
        {"{\"upn\":\"a@b\"", EASQ_E_JWT},
        {"{\"upn\" \"a@b\"}", EASQ_E_JWT},
        {"{\"upn\":\"a\\x\"}", EASQ_E_JWT},
        {"{\"upn\":\"\\ud83d\"}", EASQ_E_JWT},
        {"{\"upn\":\"a\\u0000b\"}", EASQ_E_NUL},
        {"{\"upn\":\"a\\nb\"}", EASQ_E_CTRL},
        {"{\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],"
         "\"upn\":\"a@b\"}",
         EASQ_E_JWT},
        {"not json", EASQ_E_JWT},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        parse_q(&id, "Cmd=Sync&DeviceId=A&DeviceType=T");
        bearer_of(bad[i].payload, h);
        int rc = hdr(&id, "Authorization", h);
        if (rc != bad[i].want)
            fail_msg("payload '%s': got %d (%s), want %d", bad[i].payload, rc, easq_strerror(rc),
                     bad[i].want);
    }
    const char *bad_tokens[] = {"Bearer",         "Bearer abc",
                                "Bearer a.b",     "Bearer a..c",
                                "Bearer a.!!!.c", "Bearer a.eyJ1cG4iOiJhQGIifQ==x.c"};
    for (size_t i = 0; i < sizeof(bad_tokens) / sizeof(bad_tokens[0]); i++) {
        parse_q(&id, "Cmd=Sync&DeviceId=A&DeviceType=T");
        int rc = hdr(&id, "Authorization", bad_tokens[i]);
        if (rc != EASQ_E_JWT && rc != EASQ_E_AUTH)
            fail_msg("'%s': got %d (%s)", bad_tokens[i], rc, easq_strerror(rc));
    }
    /* Padded base64url payload is accepted too. */
    parse_q(&id, "Cmd=Sync&DeviceId=A&DeviceType=T");
    assert_int_equal(hdr(&id, "Authorization", "Bearer h.eyJ1cG4iOiJhQGIifQ==.s"), 0);
    easq_finish(&id);
    assert_string_equal(id.user, "a");
}

static void test_header_misc(void **state)
{
    (void)state;
    struct easq_ident id;
    struct {
        const char *v;
        int want;
    } versions[] = {{"14.1", 141},
                    {"2.5", 25},
                    {"16.0", 160},
                    {" 12.1 ", 121},
                    {"14", EASQ_E_VERSION},
                    {"14.1.1", EASQ_E_VERSION},
                    {"abc", EASQ_E_VERSION},
                    {"", EASQ_E_VERSION},
                    {"141.0", EASQ_E_VERSION},
                    {"0.0", EASQ_E_VERSION},
                    {"1a.1", EASQ_E_VERSION}};
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        parse_q(&id, "Cmd=Sync&DeviceId=A&DeviceType=T");
        int rc = hdr(&id, "MS-ASProtocolVersion", versions[i].v);
        if (versions[i].want > 0) {
            assert_int_equal(rc, 0);
            easq_finish(&id);
            assert_int_equal(id.version, versions[i].want);
        } else if (rc != versions[i].want) {
            fail_msg("version '%s': got %d", versions[i].v, rc);
        }
    }
    struct {
        const char *v;
        int ok;
        uint32_t key;
    } keys[] = {{"0", 1, 0},
                {"3942919513", 1, 3942919513u},
                {"4294967295", 1, 4294967295u},
                {"4294967296", 0, 0},
                {"-1", 0, 0},
                {"", 0, 0},
                {"12a", 0, 0},
                {"99999999999", 0, 0}};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        parse_q(&id, "Cmd=Sync&DeviceId=A&DeviceType=T");
        int rc = hdr(&id, "x-ms-policykey", keys[i].v);
        if (keys[i].ok) {
            assert_int_equal(rc, 0);
            easq_finish(&id);
            assert_true(id.has_policy_key);
            assert_int_equal(id.policy_key, keys[i].key);
        } else {
            assert_int_equal(rc, EASQ_E_POLICYKEY);
        }
    }
    /* Duplicates, unrelated headers, User-Agent truncation, multipart. */
    parse_q(&id, "Cmd=ItemOperations&DeviceId=A&DeviceType=T");
    assert_int_equal(hdr(&id, "User-Agent", "Apple-iPhone9C1/1602.92"), 0);
    assert_int_equal(hdr(&id, "user-agent", "again"), EASQ_E_DUPLICATE);
    assert_int_equal(hdr(&id, "Host", "anything\x01"), 0);
    assert_int_equal(hdr(&id, "MS-ASAcceptMultiPart", "T"), 0);
    assert_int_equal(easq_finish(&id), 0);
    assert_string_equal(id.user_agent, "Apple-iPhone9C1/1602.92");
    assert_true(id.accept_multipart);
    parse_q(&id, "Cmd=Sync&DeviceId=A&DeviceType=T");
    assert_int_equal(hdr(&id, "MS-ASAcceptMultiPart", "yes"), EASQ_E_PARAM_VALUE);
    assert_int_equal(hdr(&id, "MS-ASProtocolVersion", "14.1"), 0);
    assert_int_equal(hdr(&id, "MS-ASProtocolVersion", "14.1"), EASQ_E_DUPLICATE);
    char ua[400];
    memset(ua, 'u', 399);
    ua[399] = '\0';
    assert_int_equal(hdr(&id, "User-Agent", ua), 0);
    easq_finish(&id);
    assert_int_equal(strlen(id.user_agent), EASQ_STR_MAX);
    assert_true(id.user_agent_truncated);
    parse_q(&id, "Cmd=Sync&DeviceId=A&DeviceType=T");
    assert_int_equal(easq_parse_header(&id, "User-Agent", 10, "a\0b", 3), EASQ_E_NUL);
    assert_int_equal(hdr(&id, "X-MS-PolicyKey", "1\r\n"), EASQ_E_POLICYKEY);
}

static void test_precedence(void **state)
{
    (void)state;
    struct easq_ident id;
    /* base64 with policy key 7 and version 141; headers say otherwise. */
    unsigned char b[] = {141, 18, 9, 4, 1, 'A', 4, 7, 0, 0, 0, 1, 'T', 8, 1, 'q'};
    char q[64], h[128];
    b64(b, sizeof(b), q, false, true);
    easq_init(&id);
    assert_int_equal(easq_parse_query(&id, q, strlen(q)), 0);
    assert_int_equal(hdr(&id, "X-MS-PolicyKey", "99"), 0);
    assert_int_equal(hdr(&id, "MS-ASProtocolVersion", "12.1"), 0);
    basic_of("CORP\\alice:pw", h);
    assert_int_equal(hdr(&id, "Authorization", h), 0);
    assert_int_equal(easq_finish(&id), 0);
    assert_int_equal(id.cmd, EASQ_CMD_PING);
    assert_int_equal(id.policy_key, 7);
    assert_int_equal(id.version, 141);
    assert_string_equal(id.user, "alice");
    assert_string_equal(id.query_user, "q");
    /* base64 without policy key: the header's counts. Headers first works too. */
    unsigned char c[] = {141, 18, 9, 4, 1, 'A', 0, 1, 'T'};
    b64(c, sizeof(c), q, false, true);
    easq_init(&id);
    assert_int_equal(hdr(&id, "X-MS-PolicyKey", "99"), 0);
    assert_int_equal(easq_parse_query(&id, q, strlen(q)), 0);
    assert_int_equal(easq_finish(&id), 0);
    assert_true(id.has_policy_key);
    assert_int_equal(id.policy_key, 99);
    /* finish is idempotent */
    assert_int_equal(easq_finish(&id), 0);
    assert_int_equal(id.policy_key, 99);
}

/* ---- encoders, names, normalisation ------------------------------------- */

static void fill_ident(struct easq_ident *id)
{
    easq_init(id);
    id->cmd = EASQ_CMD_SMARTFORWARD;
    id->version = 160;
    id->locale = 0x0409;
    strcpy(id->device_id, "ApplF17XYZ09");
    strcpy(id->device_type, "iPhone");
    strcpy(id->query_user, "CORP\\alice");
    strcpy(id->collection_id, "5");
    strcpy(id->item_id, "5:12");
    strcpy(id->long_id, "RgAA+/=&x");
    strcpy(id->occurrence, "2026-11-22T10:00:00.000Z");
    strcpy(id->attachment_name, "a b\xc3\xa9.pdf");
    id->has_policy_key = true;
    id->policy_key = 3942919513u;
    id->save_in_sent = true;
}

static void assert_same_params(const struct easq_ident *a, const struct easq_ident *b)
{
    assert_int_equal(a->cmd, b->cmd);
    assert_string_equal(a->device_id, b->device_id);
    assert_string_equal(a->device_type, b->device_type);
    assert_string_equal(a->query_user, b->query_user);
    assert_string_equal(a->collection_id, b->collection_id);
    assert_string_equal(a->item_id, b->item_id);
    assert_string_equal(a->long_id, b->long_id);
    assert_string_equal(a->occurrence, b->occurrence);
    assert_string_equal(a->attachment_name, b->attachment_name);
    assert_int_equal(a->save_in_sent, b->save_in_sent);
}

static void test_encode_roundtrip(void **state)
{
    (void)state;
    struct easq_ident a, b;
    char out[2048];
    fill_ident(&a);
    int n = easq_encode_b64(&a, out, sizeof(out));
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(out));
    easq_init(&b);
    assert_int_equal(easq_parse_query(&b, out, (size_t)n), 0);
    assert_int_equal(easq_finish(&b), 0);
    assert_int_equal(b.form, EASQ_QUERY_BASE64);
    assert_same_params(&a, &b);
    assert_int_equal(b.version, 160);
    assert_int_equal(b.locale, 0x0409);
    assert_int_equal(b.policy_key, 3942919513u);
    assert_true(b.has_options);
    assert_int_equal(b.options, EASQ_OPT_SAVEINSENT);
    /* encode(parse(encode(x))) == encode(x) */
    char again[2048];
    assert_int_equal(easq_encode_b64(&b, again, sizeof(again)), n);
    assert_string_equal(out, again);
    /* The spec example re-encodes to itself. */
    parse_q(&b, "jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l");
    assert_int_equal(easq_finish(&b), 0);
    assert_int_equal(easq_encode_b64(&b, again, sizeof(again)), 36);
    assert_string_equal(again, "jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l");

    n = easq_encode_plain(&a, out, sizeof(out));
    assert_true(n > 0);
    easq_init(&b);
    assert_int_equal(easq_parse_query(&b, out, (size_t)n), 0);
    assert_int_equal(easq_finish(&b), 0);
    assert_int_equal(b.form, EASQ_QUERY_PLAIN);
    assert_same_params(&a, &b);

    /* Every command with a code round-trips through both forms. */
    for (int c = 0; c < EASQ_CMD_COUNT; c++) {
        if (easq_cmd_code((enum easq_cmd)c) < 0)
            continue;
        a.cmd = (enum easq_cmd)c;
        easq_init(&b);
        n = easq_encode_b64(&a, out, sizeof(out));
        assert_int_equal(easq_parse_query(&b, out, (size_t)n), 0);
        assert_int_equal(b.cmd, c);
        easq_init(&b);
        n = easq_encode_plain(&a, out, sizeof(out));
        assert_int_equal(easq_parse_query(&b, out, (size_t)n), 0);
        assert_int_equal(b.cmd, c);
    }
    /* Too small a buffer, and identities that cannot be encoded. */
    fill_ident(&a);
    assert_int_equal(easq_encode_b64(&a, out, 10), EASQ_E_BUFSIZE);
    assert_int_equal(easq_encode_plain(&a, out, 10), EASQ_E_BUFSIZE);
    a.cmd = EASQ_CMD_FIND;
    assert_int_equal(easq_encode_b64(&a, out, sizeof(out)), EASQ_E_INVAL);
    assert_true(easq_encode_plain(&a, out, sizeof(out)) > 0);
    assert_non_null(strstr(out, "Cmd=Find&"));
    a.cmd = EASQ_CMD_SYNC;
    a.device_id[0] = '\0';
    assert_int_equal(easq_encode_b64(&a, out, sizeof(out)), EASQ_E_INVAL);
}

static void test_cmd_tables(void **state)
{
    (void)state;
    static const char *const names[23] = {"Sync",
                                          "SendMail",
                                          "SmartForward",
                                          "SmartReply",
                                          "GetAttachment",
                                          NULL,
                                          NULL,
                                          NULL,
                                          NULL,
                                          "FolderSync",
                                          "FolderCreate",
                                          "FolderDelete",
                                          "FolderUpdate",
                                          "MoveItems",
                                          "GetItemEstimate",
                                          "MeetingResponse",
                                          "Search",
                                          "Settings",
                                          "Ping",
                                          "ItemOperations",
                                          "Provision",
                                          "ResolveRecipients",
                                          "ValidateCert"};
    for (int code = 0; code < 23; code++) {
        enum easq_cmd c = easq_cmd_from_code(code);
        if (!names[code]) {
            assert_int_equal(c, EASQ_CMD_UNKNOWN);
            continue;
        }
        assert_string_equal(easq_cmd_name(c), names[code]);
        assert_int_equal(easq_cmd_code(c), code);
        assert_int_equal(easq_cmd_from_name(names[code], strlen(names[code])), c);
    }
    assert_int_equal(easq_cmd_from_code(-1), EASQ_CMD_UNKNOWN);
    assert_int_equal(easq_cmd_from_code(23), EASQ_CMD_UNKNOWN);
    assert_int_equal(easq_cmd_from_code(255), EASQ_CMD_UNKNOWN);
    assert_int_equal(easq_cmd_from_name("find", 4), EASQ_CMD_FIND);
    assert_int_equal(easq_cmd_from_name("PING", 4), EASQ_CMD_PING);
    assert_int_equal(easq_cmd_from_name("Pin", 3), EASQ_CMD_UNKNOWN);
    assert_int_equal(easq_cmd_from_name("Pings", 5), EASQ_CMD_UNKNOWN);
    assert_int_equal(easq_cmd_from_name("OPTIONS", 7), EASQ_CMD_UNKNOWN);
    assert_int_equal(easq_cmd_code(EASQ_CMD_FIND), -1);
    assert_int_equal(easq_cmd_code(EASQ_CMD_OPTIONS), -1);
    assert_string_equal(easq_cmd_name(EASQ_CMD_OPTIONS), "OPTIONS");
    assert_string_equal(easq_cmd_name((enum easq_cmd)99), "Unknown");
    for (int e = 0; e >= EASQ_E_INVAL; e--)
        assert_string_not_equal(easq_strerror(e), "unknown error");
    assert_string_equal(easq_strerror(-999), "unknown error");
}

static void test_deviceid_norm(void **state)
{
    (void)state;
    char out[EASQ_DEVICEID_MAX + 1];
    assert_int_equal(easq_deviceid_norm("ApplF17abc09", 12, out, sizeof(out)), 12);
    assert_string_equal(out, "APPLF17ABC09");
    assert_int_equal(easq_deviceid_norm("androidc1234", 12, out, sizeof(out)), 12);
    assert_string_equal(out, "ANDROIDC1234");
    assert_int_equal(easq_deviceid_norm("abc-1", 5, out, sizeof(out)), EASQ_E_DEVICEID_CHARS);
    assert_int_equal(easq_deviceid_norm("", 0, out, sizeof(out)), EASQ_E_DEVICEID_LEN);
    assert_int_equal(easq_deviceid_norm("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 33, out, sizeof(out)),
                     EASQ_E_DEVICEID_LEN);
    assert_int_equal(easq_deviceid_norm("abc", 3, out, 3), EASQ_E_BUFSIZE);
    assert_int_equal(easq_deviceid_norm(NULL, 3, out, 3), EASQ_E_INVAL);
}

/* Inputs the fuzzer found or that once looked risky; each must fail cleanly. */
static void test_regressions(void **state)
{
    (void)state;
    const char *inputs[] = {"%",
                            "%%",
                            "&",
                            "=",
                            "==",
                            "a=",
                            "?",
                            "#",
                            "/?#",
                            "A===",
                            "====",
                            "AAAA",
                            "jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25",
                            "Cmd=Sync&=",
                            "Cmd=Sync&DeviceId=%41%42&DeviceType=%"};
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        struct easq_ident id;
        easq_init(&id);
        int rc = easq_parse_target(&id, inputs[i], strlen(inputs[i]));
        if (rc == 0)
            rc = easq_finish(&id);
        assert_true(rc < 0);
    }
}

/* Fuzzer find: a value cut by EASQ_E_TOO_LONG was left unterminated and a
 * later easq_finish() read past it. A failed field must be left empty. */
static void test_failed_field_terminated(void **state)
{
    (void)state;
    char q[1024];
    struct easq_ident id;
    memset(q, 'P', sizeof(q));
    memcpy(q, "Cmd=Sync&User=CO", 16);
    easq_init(&id);
    assert_int_equal(easq_parse_query(&id, q, 400), EASQ_E_TOO_LONG);
    easq_finish(&id);
    assert_true(strnlen(id.query_user, sizeof(id.query_user)) < sizeof(id.query_user));
    assert_true(strnlen(id.user, sizeof(id.user)) < sizeof(id.user));
    memcpy(q + 100, "%0A", 3);
    memcpy(q, "Cmd=Sync&DeviceType=X", 21);
    easq_init(&id);
    assert_int_equal(easq_parse_query(&id, q, 400), EASQ_E_CTRL);
    assert_string_equal(id.device_type, "");
    easq_init(&id);
    char ua[300];
    memset(ua, 'a', sizeof(ua));
    ua[200] = '\x01';
    assert_int_equal(easq_parse_header(&id, "User-Agent", 10, ua, sizeof(ua)), EASQ_E_CTRL);
    assert_string_equal(id.user_agent, "");
}

static void test_err_field(void **state)
{
    (void)state;
    struct easq_ident id;
    struct {
        const char *q;
        const char *field;
    } cases[] = {
        {"Cmd=Sync&User=%zz", "User"},
        {"Cmd=Sync&Foo=%zz", "unknown parameter"},
        {"Cmd=Sync&DeviceId=a-b", "DeviceId"},
        {"Cmd=Nope", "Cmd"},
        {"Cmd=Sync&x", "query"},
        {"jAAJ*Ap2", "base64 query"},
        {"jAAJ", "fixed fields"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_true(parse_q(&id, cases[i].q) < 0);
        assert_non_null(id.err_field);
        assert_string_equal(id.err_field, cases[i].field);
    }
    unsigned char pk[] = {141, 0, 9, 4, 1, 'A', 3, 1, 2, 3, 1, 'T'};
    assert_int_equal(parse_bytes(&id, pk, sizeof(pk)), EASQ_E_POLICYKEY_LEN);
    assert_string_equal(id.err_field, "policy key");
    assert_int_equal(parse_all(&id, "Cmd=Sync&DeviceId=A", NULL), EASQ_E_DEVICETYPE_MISSING);
    assert_string_equal(id.err_field, "DeviceType");
    parse_q(&id, "Cmd=Sync&DeviceId=A&DeviceType=T");
    assert_int_equal(hdr(&id, "X-MS-PolicyKey", "x"), EASQ_E_POLICYKEY);
    assert_string_equal(id.err_field, "X-MS-PolicyKey");
    assert_int_equal(easq_finish(&id), 0);
    assert_null(id.err_field);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_example),
        cmocka_unit_test(test_plain_provision),
        cmocka_unit_test(test_plain_params),
        cmocka_unit_test(test_target_forms),
        cmocka_unit_test(test_b64_full),
        cmocka_unit_test(test_b64_guid_deviceid),
        cmocka_unit_test(test_bad_queries),
        cmocka_unit_test(test_bad_b64_structure),
        cmocka_unit_test(test_finish_requirements),
        cmocka_unit_test(test_header_basic),
        cmocka_unit_test(test_header_bearer),
        cmocka_unit_test(test_identity_rule),
        cmocka_unit_test(test_header_misc),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_encode_roundtrip),
        cmocka_unit_test(test_cmd_tables),
        cmocka_unit_test(test_deviceid_norm),
        cmocka_unit_test(test_regressions),
        cmocka_unit_test(test_failed_field_terminated),
        cmocka_unit_test(test_err_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
