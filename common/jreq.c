/*
 * jreq: one rule for JSON request bodies. See jreq.h. The whole body is
 * parsed (jansson) and checked against the field table before the caller
 * sees it, so a handler reads only fields that exist and have their type.
 */
#include "common/jreq.h"

#include <stdio.h>
#include <string.h>

/* How much of an unknown key an error message repeats. */
#define JREQ_KEY_SHOWN 64

static const char *type_text(enum jreq_type t)
{
    switch (t) {
    case JREQ_STR:
    case JREQ_TEXT:
        return "a string";
    case JREQ_INT:
        return "an integer";
    case JREQ_BOOL:
        return "true or false";
    case JREQ_TRI:
        return "true, false or null";
    case JREQ_ARRAY:
        return "an array";
    }
    return "?";
}

static bool type_ok(enum jreq_type t, const json_t *v)
{
    switch (t) {
    case JREQ_STR:
    case JREQ_TEXT:
        return json_is_string(v);
    case JREQ_INT:
        return json_is_integer(v);
    case JREQ_BOOL:
        return json_is_boolean(v);
    case JREQ_TRI:
        return json_is_boolean(v) || json_is_null(v);
    case JREQ_ARRAY:
        return json_is_array(v);
    }
    return false;
}

static void known_list(const struct jreq_field *fs, char *out, size_t n)
{
    size_t o = 0;
    out[0] = '\0';
    for (const struct jreq_field *f = fs; f->name && o < n; f++) {
        int w = snprintf(out + o, n - o, "%s%s", f == fs ? "" : ", ", f->name);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    if (!out[0])
        snprintf(out, n, "none");
}

static bool fail(json_t *j, char *err, size_t errlen, const char *msg)
{
    json_decref(j);
    snprintf(err, errlen, "%s", msg);
    return false;
}

/* Every key known and of its type. */
static bool check_fields(json_t *j, const struct jreq_field *fs, size_t str_max, char *err,
                         size_t errlen)
{
    char m[512];
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v)
    {
        const struct jreq_field *f = fs;
        while (f->name && strcmp(f->name, k) != 0)
            f++;
        if (!f->name) {
            char known[256];
            known_list(fs, known, sizeof(known));
            snprintf(m, sizeof(m), "unknown field '%.*s' (known: %s)", JREQ_KEY_SHOWN, k, known);
            return fail(j, err, errlen, m);
        }
        if (!type_ok(f->type, v)) {
            snprintf(m, sizeof(m), "field '%s' must be %s", k, type_text(f->type));
            return fail(j, err, errlen, m);
        }
        if (f->type == JREQ_STR && json_string_length(v) > str_max) {
            snprintf(m, sizeof(m), "field '%s' is longer than %zu bytes", k, str_max);
            return fail(j, err, errlen, m);
        }
    }
    for (const struct jreq_field *f = fs; f->name; f++) {
        if (f->required && !json_object_get(j, f->name)) {
            snprintf(m, sizeof(m), "field '%s' is required", f->name);
            return fail(j, err, errlen, m);
        }
    }
    return true;
}

json_t *jreq_object(const char *body, size_t len, const struct jreq_field *fields, size_t str_max,
                    char *err, size_t errlen)
{
    json_t *j;
    if (len == 0) {
        j = json_object();
        if (!j) {
            fail(NULL, err, errlen, "out of memory");
            return NULL;
        }
    } else {
        json_error_t e;
        j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &e);
        if (!j) {
            snprintf(err, errlen, "invalid JSON at line %d, column %d: %s", e.line, e.column,
                     e.text);
            return NULL;
        }
    }
    if (!json_is_object(j)) {
        fail(j, err, errlen, "the body must be a JSON object");
        return NULL;
    }
    return check_fields(j, fields, str_max, err, errlen) ? j : NULL;
}

bool jreq_check(json_t *o, const struct jreq_field *fields, size_t str_max, char *err,
                size_t errlen)
{
    if (!json_is_object(o)) {
        snprintf(err, errlen, "not a JSON object");
        return false;
    }
    json_incref(o); /* check_fields releases it on failure; the caller keeps its reference */
    bool ok = check_fields(o, fields, str_max, err, errlen);
    if (ok)
        json_decref(o);
    return ok;
}

const char *jreq_str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}
