/*
 * jreq: JSON request bodies of the HTTPS servers (the admin API, core/api.c,
 * and the enrollment endpoint, enroll/srv.c), checked by one rule before a
 * handler looks at them:
 *
 *   - the body is one JSON object (an empty body is the empty object);
 *   - a key given twice is refused (jansson's JSON_REJECT_DUPLICATES), so
 *     no two readers can disagree about which value counts;
 *   - every key must be in the handler's field table, else the error names
 *     it and lists the known ones; a typo is an error, not a default;
 *   - every value has the field's type; strings have a length bound;
 *   - required fields are present.
 *
 * A body that fails changes nothing: the handler has not run. Checking the
 * media type (415) stays with each server, since only the admin API insists
 * on application/json.
 *
 * Errors: NULL with a message for the client in err (every failure is a
 * 400); the object otherwise, which the caller releases with json_decref.
 */
#ifndef EG_JREQ_H
#define EG_JREQ_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

enum jreq_type {
    JREQ_STR,   /* a string of at most str_max bytes (jansson refuses \u0000) */
    JREQ_TEXT,  /* a string bounded only by the body limit (a PEM, for one) */
    JREQ_INT,   /* an integer */
    JREQ_BOOL,  /* true or false */
    JREQ_TRI,   /* true, false or null (a fact that may be unknown) */
    JREQ_ARRAY, /* an array; its elements are the handler's to check (jreq_check) */
};

struct jreq_field {
    const char *name;
    enum jreq_type type;
    bool required;
};

/* fields ends with an entry whose name is NULL; str_max bounds JREQ_STR. */
json_t *jreq_object(const char *body, size_t len, const struct jreq_field *fields, size_t str_max,
                    char *err, size_t errlen);

/* The same rule for an object inside a body (an element of a JREQ_ARRAY):
 * true, or false with the message in err. o is not released. */
bool jreq_check(json_t *o, const struct jreq_field *fields, size_t str_max, char *err,
                size_t errlen);

/* The string value of key, or NULL if absent (the type was checked). */
const char *jreq_str(const json_t *o, const char *key);

#endif
