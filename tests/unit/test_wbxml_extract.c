/* test_wbxml_extract: the extractor's own loop (wbxml_extract_feed) against
 * the decoder's callback driving the same handlers
 * (wbxml_extract_feed_generic_, fed the whole body). For every input (the
 * corpus; crafted edge cases: odd nesting, values cut at the field size,
 * strings in several STR_I, opaque inside a value; DeviceInformation values
 * of every length from 0 to 40 bytes) and bounded random mutations of all of
 * them, fed whole, one byte at a time, in TCP-sized pieces and in random
 * pieces, both must read the same facts and return the same error at the
 * same offset. A few facts are pinned too, so both drivers being wrong the
 * same way shows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eas/wbxml.h"
#include "eas/wbxml_int.h"
#include "test_wbxml_util.h"

/* Bounds on the random part, in count and in time. */
#define MUTANTS_PER_INPUT 60
#define MUTATION_SECONDS 20.0

/* ---- facts, compared as a reader sees them ---- */

/* Field by field: the bytes after a string's NUL are unspecified. Returns
 * NULL or the name of the first field that differs. */
static const char *facts_diff(const struct wbxml_facts *a, const struct wbxml_facts *b)
{
    if (a->root != b->root)
        return "root";
    if (a->has_devinfo != b->has_devinfo)
        return "has_devinfo";
    for (int i = 0; i < WBXML_DI_NFIELDS; i++)
        if (strcmp(a->devinfo[i], b->devinfo[i]) != 0)
            return wbxml_devinfo_name((enum wbxml_devinfo_field)i);
    if (a->devinfo_present != b->devinfo_present)
        return "devinfo_present";
    if (a->devinfo_truncated != b->devinfo_truncated)
        return "devinfo_truncated";
    if (a->heartbeat != b->heartbeat)
        return "heartbeat";
    if (strcmp(a->policy_type, b->policy_type) != 0)
        return "policy_type";
    if (strcmp(a->policy_key, b->policy_key) != 0)
        return "policy_key";
    if (a->policy_status != b->policy_status)
        return "policy_status";
    if (a->status != b->status)
        return "status";
    if (a->remote_wipe != b->remote_wipe)
        return "remote_wipe";
    if (a->remote_wipe_status != b->remote_wipe_status)
        return "remote_wipe_status";
    if (a->account_only_remote_wipe != b->account_only_remote_wipe)
        return "account_only_remote_wipe";
    if (a->account_only_remote_wipe_status != b->account_only_remote_wipe_status)
        return "account_only_remote_wipe_status";
    return NULL;
}

/* ---- one extraction ---- */

struct outcome {
    int rc;
    uint64_t off;
    struct wbxml_facts f;
};

static uint32_t rng_next(uint32_t *s)
{
    /* xorshift32: deterministic, so a failure reproduces */
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Fill the facts with junk first: nothing may depend on what was there. */
static void init_dirty(struct wbxml_extractor *x, struct outcome *o, uint8_t junk)
{
    memset(&o->f, junk, sizeof(o->f));
    memset(x, junk ^ 0x5A, sizeof(*x));
    wbxml_extract_init(x, &o->f);
}

static void finish(struct wbxml_extractor *x, struct outcome *o)
{
    if (o->rc == 0)
        o->rc = wbxml_extract_finish(x);
    o->off = wbxml_dec_error_offset(&x->dec);
}

/* The reference: the decoder's callback alone, the body in one piece. */
static void run_generic(const uint8_t *buf, size_t len, struct outcome *o)
{
    struct wbxml_extractor x;
    init_dirty(&x, o, 0xA5);
    o->rc = wbxml_extract_feed_generic_(&x, buf, len);
    finish(&x, o);
}

/* The extractor's loop: in pieces of step bytes (0: whole), or, when rng is
 * set, in random pieces of 1..max_piece bytes. */
static void run_fast(const uint8_t *buf, size_t len, size_t step, uint32_t *rng, size_t max_piece,
                     struct outcome *o)
{
    struct wbxml_extractor x;
    init_dirty(&x, o, (uint8_t)(0x3C + step));
    o->rc = 0;
    size_t i = 0;
    do {
        size_t n = rng ? 1 + rng_next(rng) % max_piece : step ? step : len;
        if (n > len - i)
            n = len - i;
        o->rc = wbxml_extract_feed(&x, buf + i, n);
        i += n;
    } while (i < len && o->rc == 0);
    finish(&x, o);
}

static unsigned long n_compared;

static void same(const char *what, const char *how, const struct outcome *want,
                 const struct outcome *got)
{
    if (want->rc != got->rc || want->off != got->off)
        fail_msg("%s, %s: error %d at %llu, expected %d at %llu", what, how, got->rc,
                 (unsigned long long)got->off, want->rc, (unsigned long long)want->off);
    const char *field = facts_diff(&want->f, &got->f);
    if (field)
        fail_msg("%s, %s: facts differ in %s", what, how, field);
    n_compared++;
}

/* Every way of feeding agrees with the reference; returns it in *ref. */
static void check_input(const char *what, const uint8_t *buf, size_t len, uint32_t seed,
                        struct outcome *ref)
{
    static struct outcome got;
    run_generic(buf, len, ref);

    uint64_t off = 0;
    int rc = wbxml_extract(buf, len, &got.f, &off);
    got.rc = rc;
    got.off = off;
    same(what, "wbxml_extract", ref, &got);

    static const size_t steps[] = {0, 1, 2, 3, 7, 64, 1448};
    for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
        char how[32];
        snprintf(how, sizeof(how), "pieces of %zu", steps[k]);
        run_fast(buf, len, steps[k], NULL, 0, &got);
        same(what, steps[k] ? how : "whole", ref, &got);
    }
    for (int r = 0; r < 3; r++) {
        uint32_t rng = (seed * 2654435761u + (uint32_t)r) | 1;
        run_fast(buf, len, 0, &rng, r == 0 ? 4 : r == 1 ? 24 : 200, &got);
        same(what, "random pieces", ref, &got);
    }
}

/* ---- inputs ---- */

static const struct input *find_input(const char *name)
{
    for (size_t i = 0; i < n_inputs; i++)
        if (strcmp(inputs[i].name, name) == 0)
            return &inputs[i];
    fail_msg("no input %s", name);
    return NULL;
}

#define PROV "<Provision xmlns=\"Provision\" xmlns:settings=\"Settings\">"
#define LONG64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define LONG128 LONG64 LONG64

/* Bodies that take the extractor's less usual paths. */
static const struct {
    const char *name, *xml;
} crafted[] = {
    {"devinfo, values around the field size", PROV
     "<settings:DeviceInformation><settings:Set>"
     "<settings:Model>" LONG128 "</settings:Model>"
     "<settings:IMEI>" LONG64 LONG64 "x</settings:IMEI>"
     "<settings:OS>" LONG64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde"
     "</settings:OS>"
     "<settings:FriendlyName></settings:FriendlyName>"
     "<settings:OSLanguage/>"
     "<settings:PhoneNumber>" LONG128 LONG128 "</settings:PhoneNumber>"
     "<settings:UserAgent>0123456789abcdef0123456789abcde</settings:UserAgent>"
     "<settings:MobileOperator>0123456789abcdef0123456789abcdef</settings:MobileOperator>"
     "<settings:EnableOutboundSMS>0123456789abcdef0123456789abcdef0</settings:EnableOutboundSMS>"
     "</settings:Set></settings:DeviceInformation>"
     "<Policies><Policy><PolicyType>" LONG128 "</PolicyType><PolicyKey>" LONG64
     "</PolicyKey></Policy></Policies></Provision>"},
    {"devinfo, value with a child and text around it",
     PROV "<settings:DeviceInformation><settings:Set><settings:Model>iPhone"
          "<settings:IMEI>1234</settings:IMEI>15,2</settings:Model>"
          "<settings:OS>iOS<settings:Set/>17</settings:OS>"
          "</settings:Set></settings:DeviceInformation></Provision>"},
    {"devinfo, value with opaque inside",
     PROV "<settings:DeviceInformation><settings:Set><settings:Model>a<?opaque AAECAw==?>b"
          "</settings:Model><settings:OS>x</settings:OS></settings:Set>"
          "</settings:DeviceInformation></Provision>"},
    {"devinfo twice, nested, and fields outside it",
     PROV "<settings:Model>outside</settings:Model>"
          "<settings:DeviceInformation><settings:DeviceInformation><settings:Model>inner"
          "</settings:Model></settings:DeviceInformation><settings:OS>after inner</settings:OS>"
          "</settings:DeviceInformation><settings:OS>after outer</settings:OS>"
          "<settings:DeviceInformation/><settings:IMEI>after empty</settings:IMEI></Provision>"},
    {"devinfo, text in it and a field repeated",
     PROV "<settings:DeviceInformation>loose text<settings:Model>first</settings:Model>"
          "<settings:Model>second</settings:Model><settings:Model/></settings:DeviceInformation>"
          "</Provision>"},
    {"policy values nested in each other",
     PROV "<Policies><Policy><PolicyKey>12<RemoteWipe><Status>3</Status></RemoteWipe>34"
          "</PolicyKey><PolicyType>t<PolicyKey>k</PolicyKey>u</PolicyType>"
          "<Status>x1</Status><Status>123456789012</Status></Policy>"
          "<Policy><Status/></Policy></Policies><Status>2</Status>"
          "<AccountOnlyRemoteWipe><Status>4</Status></AccountOnlyRemoteWipe>"
          "<RemoteWipe/></Provision>"},
    {"policy type not under Policy", PROV "<PolicyType>no</PolicyType><Policies><PolicyType>no"
                                          "</PolicyType></Policies></Provision>"},
    {"Sync heartbeat in pieces with a child",
     "<Sync xmlns=\"AirSync\"><HeartbeatInterval>4<Wait>1</Wait>8<GetChanges/>0"
     "</HeartbeatInterval><Status>1</Status></Sync>"},
    {"Sync heartbeat too big", "<Sync xmlns=\"AirSync\"><Collections><Collection><SyncKey>1"
                               "</SyncKey></Collection></Collections>"
                               "<HeartbeatInterval>99999999999</HeartbeatInterval></Sync>"},
    {"Ping deep heartbeat ignored",
     "<Ping xmlns=\"Ping\"><Folders><Folder><HeartbeatInterval>5</HeartbeatInterval>"
     "</Folder></Folders><HeartbeatInterval>60</HeartbeatInterval></Ping>"},
    {"FolderSync status", "<FolderSync xmlns=\"FolderHierarchy\"><Status>142</Status>"
                          "<SyncKey>0</SyncKey></FolderSync>"},
    {"Settings devinfo empty status", "<Settings xmlns=\"Settings\"><Status/><DeviceInformation>"
                                      "<Set><Model>m</Model></Set></DeviceInformation></Settings>"},
    {"root is a leaf", "<Provision xmlns=\"Provision\">text</Provision>"},
    {"root is empty", "<Ping xmlns=\"Ping\"/>"},
    {"root devinfo", "<DeviceInformation xmlns=\"Settings\"><Model>m</Model></DeviceInformation>"},
};

/* Provision requests whose DeviceInformation values have every length from
 * 0 to 40 (around the 16- and 32-byte scans and copies), with, in some, a
 * tag that is no field, a value in two strings or an empty field among
 * them. */
static void add_devinfo_lengths(void)
{
    static const uint16_t fields[] = {
        WBXML_SETTINGS_MODEL,     WBXML_SETTINGS_IMEI,           WBXML_SETTINGS_FRIENDLYNAME,
        WBXML_SETTINGS_OS,        WBXML_SETTINGS_OSLANGUAGE,     WBXML_SETTINGS_PHONENUMBER,
        WBXML_SETTINGS_USERAGENT, WBXML_SETTINGS_MOBILEOPERATOR, WBXML_SETTINGS_ENABLEOUTBOUNDSMS,
    };
    char val[64], name[64];
    for (int len = 0; len <= 40; len++) {
        struct wbxml_w w;
        const uint8_t *out;
        size_t n;
        wbxml_w_init(&w, NULL, 0);
        wbxml_w_start(&w, WBXML_PROV_PROVISION);
        wbxml_w_start(&w, WBXML_SETTINGS_DEVICEINFORMATION);
        wbxml_w_start(&w, WBXML_SETTINGS_SET);
        for (int i = 0; i < 9; i++) {
            int l = (len + 5 * i) % 41;
            memset(val, 'a' + i, (size_t)l);
            val[l] = '\0';
            if (len % 4 == 1 && i == 4) {
                wbxml_w_empty(&w, WBXML_SETTINGS_SET); /* no field */
            } else if (len % 4 == 2 && i == 3) {
                wbxml_w_start(&w, fields[i]); /* two strings */
                wbxml_w_str(&w, val, (size_t)l);
                wbxml_w_opaque(&w, "x", 1);
                wbxml_w_str(&w, "tail", 4);
                wbxml_w_end(&w);
                continue;
            } else if (len % 4 == 3 && i == 2) {
                wbxml_w_empty(&w, fields[i]);
                continue;
            }
            wbxml_w_text(&w, fields[i], val);
        }
        wbxml_w_end(&w);
        wbxml_w_end(&w);
        wbxml_w_start(&w, WBXML_PROV_POLICIES);
        wbxml_w_start(&w, WBXML_PROV_POLICY);
        wbxml_w_text(&w, WBXML_PROV_POLICYTYPE, "MS-EAS-Provisioning-WBXML");
        wbxml_w_end(&w);
        wbxml_w_end(&w);
        wbxml_w_end(&w);
        assert_int_equal(wbxml_w_finish(&w, &out, &n), 0);
        snprintf(name, sizeof(name), "devinfo values of %d bytes and up", len);
        add_input(name, out, n);
        wbxml_w_free(&w);
    }
}

static int load_inputs(void **state)
{
    add_corpus();
    for (size_t i = 0; i < sizeof(crafted) / sizeof(crafted[0]); i++)
        add_xml(crafted[i].name, crafted[i].xml);
    add_devinfo_lengths();
    return 0;
}

static int free_inputs(void **state)
{
    free_all_inputs();
    return 0;
}

/* ---- tests ---- */

static void test_corpus_and_crafted(void **state)
{
    struct outcome ref;
    assert_true(n_inputs > 40);
    for (size_t i = 0; i < n_inputs; i++) {
        check_input(inputs[i].name, inputs[i].buf, inputs[i].len, (uint32_t)i, &ref);
        if (ref.rc != 0)
            fail_msg("%s: does not decode: %s", inputs[i].name, wbxml_strerror(ref.rc));
    }
    /* Pins: what the reference itself must read. */
    const struct input *in = find_input("provision_initial_request.xml");
    check_input(in->name, in->buf, in->len, 1, &ref);
    assert_string_equal(ref.f.devinfo[WBXML_DI_MODEL], "iPhone15,2");
    assert_string_equal(ref.f.policy_type, "MS-EAS-Provisioning-WBXML");
    assert_int_equal(ref.f.devinfo_present, (1u << WBXML_DI_NFIELDS) - 1);

    in = find_input("devinfo, values around the field size");
    check_input(in->name, in->buf, in->len, 2, &ref);
    assert_int_equal(strlen(ref.f.devinfo[WBXML_DI_MODEL]), WBXML_FIELD_MAX - 1);
    assert_int_equal(strlen(ref.f.devinfo[WBXML_DI_OS]), WBXML_FIELD_MAX - 1);
    assert_int_equal(ref.f.devinfo_truncated,
                     (1u << WBXML_DI_MODEL) | (1u << WBXML_DI_IMEI) | (1u << WBXML_DI_PHONENUMBER));
    assert_string_equal(ref.f.devinfo[WBXML_DI_FRIENDLYNAME], "");
    assert_true(ref.f.devinfo_present & (1u << WBXML_DI_OSLANGUAGE));
    assert_int_equal(strlen(ref.f.policy_type), WBXML_FIELD_MAX - 1);

    in = find_input("devinfo, value with a child and text around it");
    check_input(in->name, in->buf, in->len, 3, &ref);
    assert_string_equal(ref.f.devinfo[WBXML_DI_OS], "iOS17");

    in = find_input("devinfo twice, nested, and fields outside it");
    check_input(in->name, in->buf, in->len, 4, &ref);
    assert_string_equal(ref.f.devinfo[WBXML_DI_MODEL], "inner");
    /* the inner DeviceInformation's END ends the scope of both */
    assert_string_equal(ref.f.devinfo[WBXML_DI_OS], "");
    assert_string_equal(ref.f.devinfo[WBXML_DI_IMEI], "");

    in = find_input("devinfo values of 0 bytes and up");
    check_input(in->name, in->buf, in->len, 6, &ref);
    assert_string_equal(ref.f.devinfo[WBXML_DI_MODEL], "");
    assert_int_equal(strlen(ref.f.devinfo[WBXML_DI_ENABLEOUTBOUNDSMS]), 40);
    assert_int_equal(strlen(ref.f.devinfo[WBXML_DI_USERAGENT]), 30);
    assert_int_equal(ref.f.devinfo_present, (1u << WBXML_DI_NFIELDS) - 1);

    in = find_input("Sync heartbeat in pieces with a child");
    check_input(in->name, in->buf, in->len, 5, &ref);
    assert_int_equal(ref.f.heartbeat, 480);
    assert_int_equal(ref.f.status, 1);
}

/* Error and truncation offsets: every cut of the Provision request, and a
 * bad byte at every position of it. */
static void test_cuts_and_bad_bytes(void **state)
{
    const struct input *in = find_input("provision_initial_request.xml");
    struct outcome ref;
    uint8_t b[1024];
    assert_true(in->len < sizeof(b));
    unsigned long failing = 0;
    for (size_t cut = 0; cut <= in->len; cut++) {
        check_input("Provision cut short", in->buf, cut, (uint32_t)cut, &ref);
        failing += ref.rc != 0;
    }
    static const uint8_t bad[] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x7F, 0x85, 0xC3, 0xFF};
    for (size_t pos = 0; pos < in->len; pos++) {
        for (size_t k = 0; k < sizeof(bad); k++) {
            memcpy(b, in->buf, in->len);
            b[pos] = bad[k];
            check_input("Provision with a bad byte", b, in->len, (uint32_t)(pos * 16 + k), &ref);
            failing += ref.rc != 0;
        }
    }
    /* Trailing bytes after the root, right after its END. */
    memcpy(b, in->buf, in->len);
    memcpy(b + in->len, (const uint8_t[]){0x45, 0x01}, 2);
    check_input("Provision with trailing bytes", b, in->len + 2, 9, &ref);
    assert_int_equal(ref.rc, WBXML_E_TRAILING);
    assert_int_equal(ref.off, in->len);
    assert_true(failing > in->len);
}

/* Random mutations of every input, bounded in count and time. */
static void test_mutations(void **state)
{
    static const uint8_t tokens[] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
                                     0x0E, 0x12, 0x16, 0x17, 0x18, 0x0B, 0x0C, 0x3B, 0x40,
                                     0x45, 0x46, 0x47, 0x48, 0x49, 0x4B, 0x4C, 0x56, 0x57,
                                     0x7F, 0x80, 0x83, 0xC3, 0xC0, 0xFF};
    uint32_t rng = 0x9E3779B9u;
    size_t cap = 1 << 16;
    uint8_t *b = malloc(cap);
    assert_non_null(b);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned long mutants = 0, failing = 0;
    struct outcome ref;
    for (size_t i = 0; i < n_inputs; i++) {
        const struct input *in = &inputs[i];
        if (in->len < 8 || in->len > cap / 2)
            continue;
        for (int m = 0; m < MUTANTS_PER_INPUT; m++) {
            size_t len = in->len;
            memcpy(b, in->buf, len);
            int edits = 1 + (int)(rng_next(&rng) % 3);
            for (int e = 0; e < edits; e++) {
                size_t pos = 4 + rng_next(&rng) % (len - 4);
                switch (rng_next(&rng) % 6) {
                case 0: /* a token-ish byte */
                case 1:
                    b[pos] = tokens[rng_next(&rng) % sizeof(tokens)];
                    break;
                case 2: /* any byte */
                    b[pos] = (uint8_t)rng_next(&rng);
                    break;
                case 3: /* cut */
                    len = pos;
                    break;
                case 4: /* a switch to a page the extractor reads */
                    if (pos + 1 < len) {
                        b[pos] = 0x00;
                        b[pos + 1] = (uint8_t[]){13, 14, 18, 0}[rng_next(&rng) % 4];
                    }
                    break;
                default: /* delete one byte */
                    memmove(b + pos, b + pos + 1, len - pos - 1);
                    len--;
                    break;
                }
                if (len <= 4)
                    break;
            }
            char what[160];
            snprintf(what, sizeof(what), "%.96s mutant %d", in->name, m);
            check_input(what, b, len, rng_next(&rng), &ref);
            mutants++;
            failing += ref.rc != 0;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if ((double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9 >
            MUTATION_SECONDS) {
            print_message("time bound reached after %zu of %zu inputs\n", i + 1, n_inputs);
            break;
        }
    }
    print_message("%lu mutants (%lu malformed), %lu comparisons in all\n", mutants, failing,
                  n_compared);
    assert_true(mutants > 0 && failing > 0 && failing < mutants);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus_and_crafted),
        cmocka_unit_test(test_cuts_and_bad_bytes),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, load_inputs, free_inputs);
}
