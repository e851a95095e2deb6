/* test_ytree: the YAML tree keeps positions; syntax errors, duplicates and
 * aliases say where; key tables check types, ranges, enums, required keys,
 * unknown keys (with a hint) and apply defaults; yt_print reads back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/units.h"
#include "common/ytree.h"

static struct yt_doc *load_ok(const char *text)
{
    struct yt_doc *doc = NULL;
    char err[512] = "";
    int rc = yt_load_buf("t.yaml", text, strlen(text), &doc, err, sizeof(err));
    if (rc)
        fail_msg("load failed: %s", err);
    return doc;
}

static void load_err(const char *text, const char *want)
{
    struct yt_doc *doc = NULL;
    char err[512] = "";
    int rc = yt_load_buf("t.yaml", text, strlen(text), &doc, err, sizeof(err));
    if (rc == 0) {
        yt_free(doc);
        fail_msg("loaded, wanted error '%s'", want);
    }
    assert_null(doc);
    if (!strstr(err, want))
        fail_msg("error '%s' lacks '%s'", err, want);
}

static void test_positions(void **state)
{
    struct yt_doc *doc = load_ok("a: 1\n"
                                 "b:\n"
                                 "  - x\n"
                                 "  - { k: \"v\" }\n"
                                 "c: ~\n");
    const struct yt_node *root = yt_root(doc);
    assert_int_equal(root->type, YT_MAP);
    assert_int_equal(root->n, 3);
    const struct yt_node *b = yt_get(root, "b");
    assert_non_null(b);
    assert_int_equal(b->type, YT_SEQ);
    assert_int_equal(b->line, 3);
    assert_int_equal(b->col, 3);
    assert_int_equal(b->n, 2);
    assert_string_equal(b->items[0]->str, "x");
    const struct yt_node *v = yt_get(b->items[1], "k");
    assert_string_equal(v->str, "v");
    assert_true(v->quoted);
    assert_int_equal(v->line, 4);
    assert_int_equal(v->col, 10);
    const struct yt_node *key = yt_get_key(root, "b");
    assert_int_equal(key->line, 2);
    assert_int_equal(key->col, 1);
    assert_true(yt_get(root, "c")->null);
    assert_false(yt_get(root, "a")->null);
    assert_null(yt_get(root, "zz"));
    assert_null(yt_get(b, "x")); /* not a map */
    yt_free(doc);
}

static void test_big_map(void **state)
{
    /* Enough keys to make the child arrays grow several times. */
    char buf[8192];
    size_t o = 0;
    for (int i = 0; i < 300; i++)
        o += (size_t)snprintf(buf + o, sizeof(buf) - o, "k%d: %d\n", i, i);
    struct yt_doc *doc = load_ok(buf);
    const struct yt_node *root = yt_root(doc);
    assert_int_equal(root->n, 300);
    assert_string_equal(yt_get(root, "k299")->str, "299");
    assert_int_equal(yt_get(root, "k150")->line, 151);
    yt_free(doc);
}

static void test_errors(void **state)
{
    load_err("a: [1, 2\n", "t.yaml:2:1: YAML syntax error");
    load_err("a: 1\n  b: 2\n", "t.yaml:2:4: YAML syntax error");
    load_err("a: 1\nb: 2\na: 3\n", "t.yaml:3:1: duplicate key 'a' (first at line 1)");
    load_err("a: &x 1\nb: *x\n", "t.yaml:2:4: YAML aliases");
    load_err("a: 1\n---\nb: 2\n", "t.yaml:2:1: only one YAML document");
    load_err("? [a]\n: 1\n", "a key must be a plain word");
    load_err("a: !custom 1\n", "t.yaml:1:4: YAML tags are not supported");
    load_err("\t- x\n", "t.yaml:1:1: YAML syntax error");
    char deep[400];
    size_t o = 0;
    for (int i = 0; i < 100; i++)
        deep[o++] = '[';
    deep[o] = '\0';
    load_err(deep, "nested more than");

    /* A map too big for the duplicate check is refused, not slowly loaded. */
    size_t cap = 10001 * 16;
    char *big = malloc(cap);
    size_t bo = 0;
    for (int i = 0; i <= 10000; i++)
        bo += (size_t)snprintf(big + bo, cap - bo, "k%d: 1\n", i);
    load_err(big, "t.yaml:10001:1: more than 10000 keys in one map");
    free(big);

    struct yt_doc *doc;
    char err[256];
    assert_true(yt_load_file("/nonexistent/x.yaml", &doc, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "/nonexistent/x.yaml: cannot open"));
}

static void test_empty(void **state)
{
    struct yt_doc *doc = load_ok("");
    assert_null(yt_root(doc));
    yt_free(doc);
    doc = load_ok("# only a comment\n");
    assert_null(yt_root(doc));
    yt_free(doc);
}

/* ---- key tables ---- */

struct sample {
    const char *name;
    const char *path;
    bool on;
    int count;
    int64_t big;
    int64_t wait_ms;
    int64_t buf;
    int mode;
    struct units_addr addr;
    struct yt_strv list;
    struct {
        int depth;
    } inner;
    struct item {
        const char *id;
        int weight;
    } * items;
    size_t n_items;
};

static const char *const modes[] = {"fast", "safe", "off", NULL};

static const struct yt_key inner_keys[] = {
    {.name = "depth", .type = YK_INT, .off = 0, .def = "3", .min = 1, .max = 9},
    {0},
};

static int item_check(void *obj, const struct yt_node *map, struct yt_ctx *ctx)
{
    struct item *it = obj;
    if (strcmp(it->id, "bad") == 0)
        return yt_err(ctx, map, "item 'bad' refused");
    return 0;
}

static const struct yt_key item_keys[] = {
    {.name = "id", .type = YK_STR, .off = offsetof(struct item, id), .flags = YK_REQUIRED},
    {.name = "weight", .type = YK_INT, .off = offsetof(struct item, weight), .def = "1"},
    {.check = item_check},
};

#define SO(f) offsetof(struct sample, f)
static const struct yt_key sample_keys[] = {
    {.name = "name", .type = YK_STR, .off = SO(name), .flags = YK_REQUIRED},
    {.name = "path", .type = YK_PATH, .off = SO(path), .def = "data/x"},
    {.name = "on", .type = YK_BOOL, .off = SO(on), .def = "true"},
    {.name = "count", .type = YK_INT, .off = SO(count), .def = "10", .min = 1, .max = 100},
    {.name = "big", .type = YK_I64, .off = SO(big), .def = "-5", .min = -10, .max = 1LL << 40},
    {.name = "wait", .type = YK_DUR, .off = SO(wait_ms), .def = "15s", .min = 1000, .max = 60000},
    {.name = "buffer", .type = YK_SIZE, .off = SO(buf), .def = "16k"},
    {.name = "mode", .type = YK_ENUM, .off = SO(mode), .def = "safe", .enums = modes},
    {.name = "listen", .type = YK_ADDR, .off = SO(addr), .def = "127.0.0.1:80"},
    {.name = "list", .type = YK_STRLIST, .off = SO(list)},
    {.name = "inner", .type = YK_MAP, .off = SO(inner), .sub = inner_keys},
    {.name = "items",
     .type = YK_SEQ,
     .off = SO(items),
     .off2 = SO(n_items),
     .elem_size = sizeof(struct item),
     .sub = item_keys},
    {0},
};

static int apply(const char *text, struct sample *s, struct yt_doc **docp, char *err, size_t errlen)
{
    struct yt_doc *doc = load_ok(text);
    struct yt_ctx ctx = {.doc = doc, .dir = "/etc/eg", .err = err, .errlen = errlen};
    memset(s, 0, sizeof(*s));
    int rc = yt_apply(sample_keys, yt_root(doc), s, &ctx);
    *docp = doc;
    return rc;
}

static void apply_err(const char *text, const char *want)
{
    struct sample s;
    struct yt_doc *doc;
    char err[512] = "";
    int rc = apply(text, &s, &doc, err, sizeof(err));
    yt_free(doc);
    if (rc == 0)
        fail_msg("applied, wanted '%s'", want);
    if (!strstr(err, want))
        fail_msg("error '%s' lacks '%s'", err, want);
}

static void test_defaults(void **state)
{
    struct sample s;
    struct yt_doc *doc;
    char err[256];
    assert_int_equal(apply("name: x\n", &s, &doc, err, sizeof(err)), 0);
    assert_string_equal(s.name, "x");
    assert_string_equal(s.path, "/etc/eg/data/x");
    assert_true(s.on);
    assert_int_equal(s.count, 10);
    assert_int_equal(s.big, -5);
    assert_int_equal(s.wait_ms, 15000);
    assert_int_equal(s.buf, 16384);
    assert_int_equal(s.mode, 1);
    assert_string_equal(s.addr.text, "127.0.0.1:80");
    assert_int_equal(s.list.n, 0);
    assert_int_equal(s.inner.depth, 3);
    assert_int_equal(s.n_items, 0);
    yt_free(doc);
}

static void test_values(void **state)
{
    struct sample s;
    struct yt_doc *doc;
    char err[256] = "";
    int rc = apply("name: x\npath: /abs\non: no\ncount: ~\nbig: 1099511627776\nwait: 1m\n"
                   "buffer: 1M\nmode: OFF\nlisten: \"[::1]:8443\"\nlist: one\n"
                   "inner: { depth: 9 }\nitems:\n  - id: a\n  - { id: b, weight: 7 }\n"
                   "",
                   &s, &doc, err, sizeof(err));
    if (rc)
        fail_msg("%s", err);
    (void)rc;
    assert_string_equal(s.path, "/abs");
    assert_false(s.on);
    assert_int_equal(s.count, 10); /* null = default */
    assert_int_equal(s.big, 1LL << 40);
    assert_int_equal(s.wait_ms, 60000);
    assert_int_equal(s.buf, 1 << 20);
    assert_int_equal(s.mode, 2);
    assert_string_equal(s.addr.text, "[::1]:8443");
    assert_int_equal(s.list.n, 1);
    assert_string_equal(s.list.v[0], "one");
    assert_int_equal(s.inner.depth, 9);
    assert_int_equal(s.n_items, 2);
    assert_string_equal(s.items[0].id, "a");
    assert_int_equal(s.items[0].weight, 1);
    assert_int_equal(s.items[1].weight, 7);
    yt_free(doc);
}

static void test_apply_errors(void **state)
{
    apply_err("nmae: x\n", "t.yaml:1:1: unknown key 'nmae' (did you mean 'name'?)");
    apply_err("name: x\nitem:\n  - id: a\n",
              "t.yaml:2:1: unknown key 'item' (did you mean 'items'?)");
    apply_err("name: x\nzzzzzz: 1\n", "t.yaml:2:1: unknown key 'zzzzzz'");
    apply_err("path: y\n", "missing required key 'name'");
    apply_err("name: [x]\n", "t.yaml:1:7: name: expected a single value, got a list");
    apply_err("name: x\non: maybe\n", "t.yaml:2:5: expected true or false, got 'maybe'");
    apply_err("name: x\ncount: 101\n", "t.yaml:2:8: count must be between 1 and 100");
    apply_err("name: x\ncount: 0\n", "count must be between 1 and 100");
    apply_err("name: x\ncount: ten\n", "count: expected a whole number, got 'ten'");
    apply_err("name: x\ncount: 99999999999999999999\n", "expected a whole number");
    apply_err("name: x\nbig: -11\n", "big must be between -10 and");
}

static void test_apply_errors2(void **state)
{
    apply_err("name: x\nwait: 61s\n", "t.yaml:2:7: wait must be between 1s and 60s");
    apply_err("name: x\nwait: 30\n", "t.yaml:2:7: wait: bad duration '30': missing unit");
    apply_err("name: x\nbuffer: 1T\n", "buffer: bad size '1T'");
    apply_err("name: x\nmode: slow\n", "mode: bad value 'slow' (allowed: fast, safe, off)");
    apply_err("name: x\nlisten: localhost:80\n", "listen: bad address 'localhost:80'");
    apply_err("name: x\nlist: { a: 1 }\n", "list: expected a string or a list of strings");
    apply_err("name: x\nlist: [a, [b]]\n", "t.yaml:2:11: list: list entries must be strings");
    apply_err("name: x\ninner: 5\n", "inner: expected a map, got a scalar");
    apply_err("name: x\ninner: { depth: 0 }\n", "depth must be between 1 and 9");
    apply_err("name: x\ninner: { dpeth: 2 }\n", "unknown key 'dpeth' (did you mean 'depth'?)");
    apply_err("name: x\nitems: { id: a }\n", "items: expected a list (of maps), got a map");
    apply_err("name: x\nitems: [a]\n", "items: each entry must be a map, not a scalar");
    apply_err("name: x\nitems:\n  - weight: 2\n", "t.yaml:3:5: missing required key 'id'");
    apply_err("name: x\nitems:\n  - id: bad\n", "t.yaml:3:5: item 'bad' refused");
    apply_err("[1, 2]\n", "expected a map of keys, got a list");
    apply_err("name: \"a\\0b\"\n", "NUL");
}

static void test_suggest(void **state)
{
    static const char *const c[] = {"user_agents", "devices", "device_rules", "ews"};
    assert_string_equal(yt_suggest("user_agent", c, 4), "user_agents");
    assert_string_equal(yt_suggest("device", c, 4), "devices");
    assert_string_equal(yt_suggest("devcie_rules", c, 4), "device_rules");
    assert_string_equal(yt_suggest("EWS", c, 4), "ews");
    assert_null(yt_suggest("compliance", c, 4));
    assert_null(yt_suggest("", c, 4));
}

static void test_print_roundtrip(void **state)
{
    struct sample s, s2;
    struct yt_doc *doc, *doc2;
    char err[256] = "";
    int rc0 = apply("name: \"q\\\"x\"\npath: /abs\nlist: [a, \"b c\"]\nwait: 45s\n"
                    "items:\n  - id: a\n  - { id: b, weight: 7 }\n",
                    &s, &doc, err, sizeof(err));
    if (rc0)
        fail_msg("%s", err);
    char *out = NULL;
    size_t outlen = 0;
    FILE *f = open_memstream(&out, &outlen);
    yt_print(f, sample_keys, &s, 0);
    fclose(f);
    assert_non_null(strstr(out, "wait: 45s\n"));
    assert_non_null(strstr(out, "buffer: 16k\n"));
    assert_non_null(strstr(out, "mode: safe\n"));
    assert_non_null(strstr(out, "  - id: \"a\"\n    weight: 1\n"));
    int rc = apply(out, &s2, &doc2, err, sizeof(err));
    if (rc)
        fail_msg("printed output does not load back: %s\n%s", err, out);
    assert_string_equal(s2.name, "q\"x");
    assert_int_equal(s2.wait_ms, s.wait_ms);
    assert_int_equal(s2.n_items, 2);
    assert_int_equal(s2.items[1].weight, 7);
    assert_int_equal(s2.list.n, 2);
    assert_string_equal(s2.list.v[1], "b c");
    free(out);
    yt_free(doc);
    yt_free(doc2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_positions),    cmocka_unit_test(test_big_map),
        cmocka_unit_test(test_errors),       cmocka_unit_test(test_empty),
        cmocka_unit_test(test_defaults),     cmocka_unit_test(test_values),
        cmocka_unit_test(test_apply_errors), cmocka_unit_test(test_apply_errors2),
        cmocka_unit_test(test_suggest),      cmocka_unit_test(test_print_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
