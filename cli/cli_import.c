/*
 * cli_import: files of devices and users in and out of the registry
 * through the admin API. See cli_import.h.
 *
 * Reading: one record at a time. A CSV record (RFC 4180: quotes, doubled
 * quotes, commas and line breaks inside quotes) or a JSON line becomes a
 * struct rec of named values with the line it started on; the first CSV
 * record is the header. Bytes are checked as they come: invalid UTF-8, NUL
 * and other control characters, and a record longer than REC_MAX are
 * errors at their line, never truncations.
 */
#include "cli/cli_import.h"

#include "eas/easq.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define REC_MAX 65536     /* bytes of one record */
#define COLS_MAX 32       /* columns of a CSV file */
#define BATCH_ROWS 500    /* rows per request by default */
#define BATCH_BYTES 60000 /* and bytes: under the API's default 64k body limit */
#define ERRORS_SHOWN 50
#define EXPORT_PAGE "1000"

/* ---- reading records ------------------------------------------------------------ */

enum fmt { F_CSV, F_JSONL };

struct reader {
    const char *path;
    FILE *f;
    enum fmt fmt;
    long line;     /* the line the next byte is on */
    long rec_line; /* the line the current record started on */
    char *buf;     /* the record's bytes (CSV: fields separated by '\0') */
    size_t len;
    int ncols; /* CSV: the header's columns */
    char *cols[COLS_MAX];
    char *vals[COLS_MAX];
    int nvals;
    json_t *obj; /* JSONL: the record */
    char err[320];
};

/* The known columns of a file, and what an exported file adds (ignored). */
static const char *const dev_cols[] = {"device_id", "user",  "type", "model",    "os", "os_version",
                                       "managed",   "state", "note", "override", NULL};
static const char *const dev_export_only[] = {"reason",     "version",      "first_seen",
                                              "last_seen",  "last_checkin", "eas_version",
                                              "user_agent", "last_client",  NULL};
static const char *const user_cols[] = {"name", NULL};

/* Spellings a header may use for a column. */
static const char *canonical_col(const char *c)
{
    static const char *const alias[][2] = {
        {"deviceid", "device_id"}, {"device", "device_id"},     {"device_type", "type"},
        {"devicetype", "type"},    {"osversion", "os_version"}, {"os version", "os_version"},
        {"user", "user"},          {"username", "user"},        {"name", "name"},
    };
    for (size_t i = 0; i < sizeof(alias) / sizeof(alias[0]); i++)
        if (strcasecmp(c, alias[i][0]) == 0)
            return alias[i][1];
    return c;
}

static bool in_list(const char *const *l, const char *s)
{
    for (; *l; l++)
        if (strcasecmp(*l, s) == 0)
            return true;
    return false;
}

/* Length of the valid UTF-8 sequence at s (of n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t k = c < 0x80             ? 1
               : (c & 0xE0) == 0xC0 ? 2
               : (c & 0xF0) == 0xE0 ? 3
               : (c & 0xF8) == 0xF0 ? 4
                                    : 0;
    if (!k || k > n || (k == 2 && c < 0xC2) || (k == 4 && c > 0xF4))
        return 0;
    for (size_t i = 1; i < k; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if (k == 3 && ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0)))
        return 0; /* overlong, or a surrogate */
    if (k == 4 && ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] >= 0x90)))
        return 0;
    return k;
}

/* Text a value may hold: valid UTF-8 without control characters. */
static const char *text_error(const char *v)
{
    const unsigned char *s = (const unsigned char *)v;
    size_t n = strlen(v);
    for (size_t i = 0; i < n;) {
        if (s[i] < 0x20 || s[i] == 0x7f)
            return "a control character";
        size_t k = utf8_len(s + i, n - i);
        if (!k)
            return "bytes that are not UTF-8 (save the file as UTF-8)";
        i += k;
    }
    return NULL;
}

static int rd_fail(struct reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int rd_fail(struct reader *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof(r->err), fmt, ap);
    va_end(ap);
    return -1;
}

static int put(struct reader *r, char ch)
{
    if (r->len + 1 >= REC_MAX)
        return rd_fail(r, "a record longer than %d bytes", REC_MAX);
    r->buf[r->len++] = ch;
    return 0;
}

/*
 * The next CSV record into r->vals: 1, 0 at the end, -1 with r->err (the
 * rest of a bad record is skipped, so the next call goes on after it).
 */
static int csv_next(struct reader *r)
{
    r->len = 0;
    r->nvals = 0;
    r->rec_line = r->line;
    int ch, state = 0; /* 0 field start, 1 unquoted, 2 quoted, 3 quote in quoted */
    size_t starts[COLS_MAX];
    int n = 0, bad = 0;
    starts[n++] = 0;
    for (;;) {
        ch = getc(r->f);
        if (ch == EOF) {
            if (state == 2 && !bad)
                bad = rd_fail(r, "a quoted field is not closed before the end of the file");
            if (r->len == 0 && n == 1 && state == 0)
                return bad ? -1 : 0;
            break;
        }
        if (ch == '\n')
            r->line++;
        if (bad) {
            if (ch == '\n' && state != 2)
                break;
            if (ch == '"')
                state = state == 2 ? 3 : 2;
            else if (state == 3)
                state = 1;
            continue;
        }
        if (ch == '\0') {
            bad = rd_fail(r, "a NUL byte (is this a text file?)");
            continue;
        }
        if (state == 2) {
            if (ch == '"')
                state = 3;
            else if (put(r, (char)ch) < 0)
                bad = -1;
            continue;
        }
        if (state == 3) {
            if (ch == '"') {
                state = 2;
                bad = put(r, '"');
                continue;
            }
            state = 1; /* the quoted part ended: on with the field */
        }
        if (ch == '"' && state == 0) {
            state = 2;
            continue;
        }
        if (ch == '\r')
            continue;
        if (ch == ',' || ch == '\n') {
            if (put(r, '\0') < 0) {
                bad = -1;
                continue;
            }
            if (ch == '\n')
                break;
            if (n == COLS_MAX) {
                bad = rd_fail(r, "more than %d fields", COLS_MAX);
                continue;
            }
            starts[n++] = r->len;
            state = 0;
            continue;
        }
        if (ch == '"') {
            bad = rd_fail(r, "a quote inside an unquoted field (quote the whole field)");
            continue;
        }
        state = 1;
        if (put(r, (char)ch) < 0)
            bad = -1;
    }
    if (bad)
        return -1;
    if (r->len == 0 || r->buf[r->len - 1] != '\0')
        if (put(r, '\0') < 0)
            return -1;
    for (int i = 0; i < n; i++)
        r->vals[i] = r->buf + starts[i];
    r->nvals = n;
    /* A UTF-8 byte order mark on the first line is the editor's, not data. */
    if (r->rec_line == 1 && strncmp(r->vals[0], "\xEF\xBB\xBF", 3) == 0)
        memmove(r->vals[0], r->vals[0] + 3, strlen(r->vals[0] + 3) + 1);
    return 1;
}

/* The next JSON line: 1, 0 at the end, -1 with r->err. Blank lines are skipped. */
static int jsonl_next(struct reader *r)
{
    json_decref(r->obj);
    r->obj = NULL;
    for (;;) {
        r->len = 0;
        r->rec_line = r->line;
        int ch, bad = 0;
        while ((ch = getc(r->f)) != EOF && ch != '\n') {
            if (ch == '\0' && !bad)
                bad = rd_fail(r, "a NUL byte (is this a text file?)");
            if (!bad && put(r, (char)ch) < 0)
                bad = -1;
        }
        if (ch == '\n')
            r->line++;
        if (bad)
            return -1;
        if (ch == EOF && r->len == 0)
            return 0;
        while (r->len && (r->buf[r->len - 1] == '\r' || r->buf[r->len - 1] == ' '))
            r->len--;
        size_t skip = r->rec_line == 1 && r->len >= 3 && !memcmp(r->buf, "\xEF\xBB\xBF", 3) ? 3 : 0;
        if (r->len == skip) {
            if (ch == EOF)
                return 0;
            continue;
        }
        json_error_t e;
        r->obj = json_loadb(r->buf + skip, r->len - skip, JSON_REJECT_DUPLICATES, &e);
        if (!r->obj)
            return rd_fail(r, "invalid JSON at column %d: %s", e.column, e.text);
        if (!json_is_object(r->obj))
            return rd_fail(r, "a line must be one JSON object");
        return 1;
    }
}

static int rd_open(struct reader *r, const char *path, enum fmt fmt)
{
    memset(r, 0, sizeof(*r));
    r->path = path;
    r->fmt = fmt;
    r->line = 1;
    r->f = fopen(path, "rb");
    r->buf = malloc(REC_MAX);
    if (!r->f || !r->buf) {
        fprintf(stderr, "easgate admin: %s: %s\n", path, r->f ? "out of memory" : strerror(errno));
        if (r->f)
            fclose(r->f);
        free(r->buf);
        return -1;
    }
    return 0;
}

static void rd_close(struct reader *r)
{
    if (r->f)
        fclose(r->f);
    json_decref(r->obj);
    for (int i = 0; i < r->ncols; i++)
        free(r->cols[i]);
    free(r->buf);
}

/* ---- rows ----------------------------------------------------------------------- */

/* One row as the API takes it, built from a record; NULL with the error in err. */
static json_t *row_of(struct reader *r, bool devices, char *err, size_t errlen)
{
    const char *const *known = devices ? dev_cols : user_cols;
    json_t *o = json_object();
    const char *key;
    json_t *v;
    if (r->fmt == F_CSV) {
        if (r->nvals != r->ncols) {
            snprintf(err, errlen, "%d fields, the header has %d", r->nvals, r->ncols);
            json_decref(o);
            return NULL;
        }
        for (int i = 0; i < r->ncols; i++) {
            if (r->cols[i][0] == '!' || !r->vals[i][0])
                continue;
            /* Checked before jansson sees it: json_string() of bytes that
             * are not UTF-8 is NULL, which would drop the value silently. */
            const char *why = text_error(r->vals[i]);
            if (why) {
                snprintf(err, errlen, "%s holds %s", r->cols[i], why);
                json_decref(o);
                return NULL;
            }
            json_object_set_new(o, r->cols[i], json_string(r->vals[i]));
        }
    } else {
        json_object_foreach(r->obj, key, v)
        {
            const char *c = canonical_col(key);
            if (!in_list(known, c) && !(devices && in_list(dev_export_only, c))) {
                snprintf(err, errlen, "unknown field '%.40s'", key);
                json_decref(o);
                return NULL;
            }
            if (devices && in_list(dev_export_only, c))
                continue;
            if (json_is_string(v)) {
                if (json_string_value(v)[0])
                    json_object_set_new(o, c, json_string(json_string_value(v)));
            } else if (json_is_boolean(v) && strcmp(c, "managed") == 0) {
                json_object_set_new(o, c, json_string(json_is_true(v) ? "yes" : "no"));
            } else if (!json_is_null(v)) {
                snprintf(err, errlen, "field '%.40s' must be a string%s", key,
                         strcmp(c, "managed") == 0 ? " or true/false" : "");
                json_decref(o);
                return NULL;
            }
        }
    }
    /* The values: text, then the columns with a vocabulary. */
    json_object_foreach(o, key, v)
    {
        const char *why = text_error(json_string_value(v));
        if (why) {
            snprintf(err, errlen, "%s holds %s", key, why);
            json_decref(o);
            return NULL;
        }
    }
    const char *need = devices ? "device_id" : "name";
    if (!json_object_get(o, need)) {
        snprintf(err, errlen, "no %s", need);
        json_decref(o);
        return NULL;
    }
    if (!devices)
        return o;
    char canon[64];
    const char *id = json_string_value(json_object_get(o, "device_id"));
    if (easq_deviceid_norm(id, strlen(id), canon, 33) <= 0) {
        snprintf(err, errlen, "'%.64s' is not a DeviceId (1-32 letters and digits)", id);
        json_decref(o);
        return NULL;
    }
    /* An exported file names the admin's decision override, and its state
     * is what the rules made of the device: read-only. */
    json_t *ov = json_object_get(o, "override");
    if (ov) {
        json_object_set(o, "state", ov);
        json_object_del(o, "override");
    }
    const char *st = json_string_value(json_object_get(o, "state"));
    if (st && strcmp(st, "allow") && strcmp(st, "block") && strcmp(st, "quarantine") &&
        strcmp(st, "none")) {
        snprintf(err, errlen,
                 strcmp(st, "wipe") == 0
                     ? "state wipe is not imported: wipe a device on its own (easgate admin "
                       "devices wipe ID), or leave its state empty"
                     : "state '%.32s' is not allow, block, quarantine or none",
                 st);
        json_decref(o);
        return NULL;
    }
    const char *m = json_string_value(json_object_get(o, "managed"));
    if (m) {
        bool yes = !strcasecmp(m, "yes") || !strcasecmp(m, "true") || !strcmp(m, "1");
        bool no = !strcasecmp(m, "no") || !strcasecmp(m, "false") || !strcmp(m, "0");
        if (!yes && !no) {
            snprintf(err, errlen, "managed '%.16s' is not yes or no", m);
            json_decref(o);
            return NULL;
        }
        json_object_set_new(o, "managed", json_boolean(yes));
    }
    return o;
}

/* The CSV header: known columns only (an exported file's extras are ignored). */
static int read_header(struct reader *r, bool devices)
{
    int rc = csv_next(r);
    if (rc <= 0)
        return rc < 0 ? -1 : rd_fail(r, "the file is empty (a CSV file starts with a header)");
    const char *const *known = devices ? dev_cols : user_cols;
    bool has_override = false;
    for (int i = 0; i < r->nvals; i++)
        has_override |= strcasecmp(canonical_col(r->vals[i]), "override") == 0;
    for (int i = 0; i < r->nvals; i++) {
        const char *c = canonical_col(r->vals[i]);
        char *name;
        if (devices && (in_list(dev_export_only, c) || (has_override && !strcasecmp(c, "state"))))
            name = strdup("!"); /* read-only: skipped */
        else if (in_list(known, c))
            name = strdup(c);
        else {
            char list[256] = "";
            for (const char *const *k = known; *k; k++)
                snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
                         k == known ? "" : ", ", *k);
            return rd_fail(r, "unknown column '%.40s' (known: %s)", r->vals[i], list);
        }
        for (int k = 0; k < i; k++)
            if (name[0] != '!' && strcmp(r->cols[k], name) == 0) {
                free(name);
                return rd_fail(r, "column '%s' twice", c);
            }
        r->cols[r->ncols++] = name;
    }
    return 0;
}

/* ---- the passes ------------------------------------------------------------------- */

struct seen_ids { /* DeviceIds or user names met so far, for duplicates */
    char **k;
    long *line;
    size_t n, cap;
};

static uint64_t h64(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* The line key was first met on, or 0 after remembering it at line. */
static long seen_add(struct seen_ids *s, const char *key, long line)
{
    if ((s->n + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        char **k = calloc(cap, sizeof(*k));
        long *l = calloc(cap, sizeof(*l));
        if (!k || !l) {
            free(k);
            free(l);
            return 0; /* out of memory: the server still refuses duplicates in a batch */
        }
        for (size_t i = 0; i < s->cap; i++)
            if (s->k[i]) {
                size_t j = h64(s->k[i]) & (cap - 1);
                while (k[j])
                    j = (j + 1) & (cap - 1);
                k[j] = s->k[i];
                l[j] = s->line[i];
            }
        free(s->k);
        free(s->line);
        s->k = k;
        s->line = l;
        s->cap = cap;
    }
    size_t j = h64(key) & (s->cap - 1);
    for (; s->k[j]; j = (j + 1) & (s->cap - 1))
        if (strcmp(s->k[j], key) == 0)
            return s->line[j];
    s->k[j] = strdup(key);
    s->line[j] = line;
    s->n++;
    return 0;
}

static void seen_free(struct seen_ids *s)
{
    for (size_t i = 0; i < s->cap; i++)
        free(s->k[i]);
    free(s->k);
    free(s->line);
}

/*
 * A batch as the API takes it, built as text: each row serialised once, as
 * it is read, and the body is the rows between a prefix and "]}". Two of
 * them take turns, so the next batch is read and built while the core
 * stores the one before (the sender thread waits for its answer).
 */
struct batch {
    char *text; /* the rows, separated by ',' */
    size_t len, cap;
    size_t *off; /* where row i begins in text */
    long *lines; /* the line row i came from */
    size_t n, cap_n;
};

struct import {
    const struct cli_admin_client *cl;
    const char *file, *what;
    enum fmt fmt;
    const struct cli_import_opts *o;
    bool devices;
    long errors;
    size_t byte_budget;
    long created, updated, unchanged, stored_rows;
    bool no_validate; /* a core before "validate": full dry runs instead */
};

static void report(struct import *im, long line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void report(struct import *im, long line, const char *fmt, ...)
{
    if (++im->errors > ERRORS_SHOWN)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s:%ld: ", im->file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Pass 1: every record, here. Returns the rows that are good, or -1 if unreadable. */
static long check_file(struct import *im)
{
    struct reader r;
    if (rd_open(&r, im->file, im->fmt) < 0)
        return -1;
    struct seen_ids seen = {0};
    long good = 0;
    if (im->fmt == F_CSV && read_header(&r, im->devices) < 0) {
        report(im, r.rec_line, "%s", r.err);
        rd_close(&r);
        return -1;
    }
    for (;;) {
        int rc = im->fmt == F_CSV ? csv_next(&r) : jsonl_next(&r);
        if (rc == 0)
            break;
        if (rc < 0) {
            report(im, r.rec_line, "%s", r.err);
            if (!r.f || feof(r.f))
                break;
            continue;
        }
        if (im->fmt == F_CSV && r.nvals == 1 && !r.vals[0][0])
            continue; /* a blank line */
        char err[320];
        json_t *row = row_of(&r, im->devices, err, sizeof(err));
        if (!row) {
            report(im, r.rec_line, "%s", err);
            continue;
        }
        /* Duplicates as the registry sees them: canonical DeviceIds, user
         * names without regard to ASCII case. */
        char key[300];
        const char *k = json_string_value(json_object_get(row, im->devices ? "device_id" : "name"));
        if (im->devices) {
            easq_deviceid_norm(k, strlen(k), key, 33);
        } else {
            size_t i = 0;
            for (; k[i] && i < sizeof(key) - 1; i++)
                key[i] = (char)(k[i] >= 'A' && k[i] <= 'Z' ? k[i] + 'a' - 'A' : k[i]);
            key[i] = '\0';
        }
        long first = seen_add(&seen, key, r.rec_line);
        if (first)
            report(im, r.rec_line, "%s %s is on line %ld already", im->devices ? "device" : "user",
                   key, first);
        else
            good++;
        json_decref(row);
    }
    seen_free(&seen);
    rd_close(&r);
    return good;
}

/* One request in flight: its body, and the answer the sender thread got. */
struct flight {
    const struct cli_admin_client *cl;
    char path[64];
    char *body;
    size_t len;
    json_t *answer;
    long status;
    int rc;
};

static void *flight_run(void *arg)
{
    struct flight *f = arg;
    f->rc = cli_admin_request_text(f->cl, "POST", f->path, NULL, f->body, f->len, &f->answer,
                                   &f->status);
    return NULL;
}

/* The body of rows [a, end) of b: 0, or -1 out of memory. */
static int flight_body(struct import *im, const struct batch *b, size_t a, size_t end, bool dry,
                       struct flight *f)
{
    char head[128];
    /* The check before storing asks for the errors only (`validate`): the
     * core need not compare each row with the registry, nor the CLI read
     * what would change. */
    int hl = snprintf(head, sizeof(head), "{\"dry_run\":%s,%s%s\"%s\":[", dry ? "true" : "false",
                      dry && !im->o->dry_run && !im->no_validate ? "\"validate\":true," : "",
                      im->devices && im->o->create_users ? "\"create_users\":true," : "",
                      im->devices ? "devices" : "users");
    size_t from = b->off[a], to = end < b->n ? b->off[end] - 1 : b->len;
    f->len = (size_t)hl + (to - from) + 2;
    f->body = malloc(f->len + 1);
    if (!f->body)
        return -1;
    memcpy(f->body, head, (size_t)hl);
    memcpy(f->body + hl, b->text + from, to - from);
    memcpy(f->body + hl + (to - from), "]}", 3);
    f->cl = im->cl;
    snprintf(f->path, sizeof(f->path), "/api/v1/%s/import", im->what);
    f->answer = NULL;
    f->status = 0;
    f->rc = 0;
    return 0;
}

static int range_send(struct import *im, const struct batch *b, size_t a, size_t end, bool dry);

/*
 * What the core said of rows [a, end) of b: errors at their lines, a dry
 * run's changes, the counts. A batch too large for the core (413) is sent
 * again in halves, here. 0, or 1 when the batch was refused.
 */
static int range_done(struct import *im, const struct batch *b, size_t a, size_t end, bool dry,
                      struct flight *f)
{
    free(f->body);
    f->body = NULL;
    json_t *j = f->answer;
    long status = f->status;
    if (f->rc) {
        json_decref(j);
        return 1;
    }
    size_t n = end - a;
    if (status == 413 && n > 1) { /* the server takes less: halve and try again */
        json_decref(j);
        im->byte_budget /= 2;
        size_t half = a + n / 2;
        int rc = range_send(im, b, a, half, dry);
        return rc ? rc : range_send(im, b, half, end, dry);
    }
    const long *lines = b->lines + a;
    json_t *rows = json_object_get(j, "rows");
    const char *why = json_string_value(json_object_get(j, "error"));
    if (status == 400 && dry && !im->no_validate && !json_array_size(rows) && why &&
        strstr(why, "unknown field 'validate'")) { /* an older core: ask for a dry run */
        json_decref(j);
        im->no_validate = true;
        return range_send(im, b, a, end, dry);
    }
    size_t i;
    json_t *e;
    json_array_foreach(rows, i, e)
    {
        size_t k = (size_t)json_integer_value(json_object_get(e, "row"));
        long line = k < n ? lines[k] : 0;
        const char *err = json_string_value(json_object_get(e, "error"));
        const char *out = json_string_value(json_object_get(e, "outcome"));
        const char *id = json_string_value(json_object_get(e, im->devices ? "device_id" : "name"));
        if (err)
            report(im, line, "%s", err);
        else if (dry && im->o->dry_run && out)
            printf("%s:%ld: %s: would be %s%s%s\n", im->file, line, id ? id : "", out,
                   json_string_value(json_object_get(e, "changes")) ? ": " : "",
                   json_string_value(json_object_get(e, "changes"))
                       ? json_string_value(json_object_get(e, "changes"))
                       : "");
    }
    bool ok = status == 200;
    if (!ok && !json_array_size(rows)) {
        const char *msg = json_string_value(json_object_get(j, "error"));
        report(im, lines[0], "lines %ld-%ld: %s (HTTP %ld)", lines[0], lines[n - 1],
               msg ? msg : "the server refused the batch", status);
    }
    if (ok) {
        im->created += json_integer_value(json_object_get(j, "created"));
        im->updated += json_integer_value(json_object_get(j, "updated"));
        im->unchanged += json_integer_value(json_object_get(j, "unchanged"));
        if (!dry)
            im->stored_rows += (long)n;
    }
    json_decref(j);
    return ok ? 0 : 1;
}

/* Rows [a, end) of b, waiting for the answer. 0, or 1 when it failed. */
static int range_send(struct import *im, const struct batch *b, size_t a, size_t end, bool dry)
{
    struct flight f;
    if (flight_body(im, b, a, end, dry, &f) < 0) {
        report(im, b->lines[a], "out of memory");
        return 1;
    }
    flight_run(&f);
    return range_done(im, b, a, end, dry, &f);
}

/* Append a row's text (len bytes, with its line) to b: 0, or -1 out of memory. */
static int batch_add(struct batch *b, const char *row, size_t len, long line)
{
    if (b->n == b->cap_n) {
        size_t cap = b->cap_n ? b->cap_n * 2 : 256;
        size_t *o = realloc(b->off, cap * sizeof(*o));
        if (o)
            b->off = o;
        long *l = o ? realloc(b->lines, cap * sizeof(*l)) : NULL;
        if (!l)
            return -1;
        b->lines = l;
        b->cap_n = cap;
    }
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (b->len + len + 1 > cap)
            cap *= 2;
        char *t = realloc(b->text, cap);
        if (!t)
            return -1;
        b->text = t;
        b->cap = cap;
    }
    if (b->n)
        b->text[b->len++] = ',';
    b->off[b->n] = b->len;
    b->lines[b->n++] = line;
    memcpy(b->text + b->len, row, len);
    b->len += len;
    return 0;
}

static void batch_free(struct batch *b)
{
    free(b->text);
    free(b->off);
    free(b->lines);
}

/*
 * Passes 2 and 3: the file in batches, one request at a time. While the
 * sender thread waits for the core's answer to one batch, this thread
 * reads and builds the next; it is sent only once the first was stored,
 * so a refused batch still stops everything after it. 0, or 1 (stopped
 * at a refused batch).
 */
static int send_file(struct import *im, bool dry)
{
    struct reader r;
    if (rd_open(&r, im->file, im->fmt) < 0)
        return 1;
    if (im->fmt == F_CSV && read_header(&r, im->devices) < 0) {
        rd_close(&r);
        return 1;
    }
    int rc = 0;
    size_t limit = (size_t)(im->o->batch > 0 ? im->o->batch : BATCH_ROWS);
    struct batch bs[2] = {{0}}, *cur = &bs[0], *sent = &bs[1];
    struct flight f = {0};
    pthread_t th;
    bool flying = false;
    for (;;) {
        int k = im->fmt == F_CSV ? csv_next(&r) : jsonl_next(&r);
        bool last = k <= 0;
        if (!last && im->fmt == F_CSV && r.nvals == 1 && !r.vals[0][0])
            continue;
        char *txt = NULL;
        size_t len = 0;
        if (!last) {
            char err[320];
            json_t *row = row_of(&r, im->devices, err, sizeof(err));
            if (!row)
                continue; /* pass 1 reported it */
            txt = json_dumps(row, JSON_COMPACT);
            json_decref(row);
            if (!txt) {
                report(im, r.rec_line, "out of memory");
                rc = 1;
                break;
            }
            len = strlen(txt) + 1;
        }
        if (cur->n && (last || cur->n >= limit || cur->len + len > im->byte_budget)) {
            if (flying) {
                pthread_join(th, NULL);
                flying = false;
                rc = range_done(im, sent, 0, sent->n, dry, &f);
                sent->n = sent->len = 0;
            }
            if (rc == 0 && flight_body(im, cur, 0, cur->n, dry, &f) < 0) {
                report(im, cur->lines[0], "out of memory");
                rc = 1;
            }
            if (rc == 0 && pthread_create(&th, NULL, flight_run, &f) != 0) {
                flight_run(&f); /* no thread: send it from here */
                rc = range_done(im, cur, 0, cur->n, dry, &f);
                cur->n = cur->len = 0;
            } else if (rc == 0) {
                flying = true;
                struct batch *t = sent;
                sent = cur;
                cur = t;
            }
        }
        if (rc == 0 && !last && batch_add(cur, txt, len - 1, r.rec_line) < 0) {
            report(im, r.rec_line, "out of memory");
            rc = 1;
        }
        free(txt);
        if (rc || last)
            break;
    }
    if (flying) {
        pthread_join(th, NULL);
        int done = range_done(im, sent, 0, sent->n, dry, &f);
        rc = rc ? rc : done;
    }
    batch_free(&bs[0]);
    batch_free(&bs[1]);
    rd_close(&r);
    return rc;
}

static int fmt_of(const char *file, const char *format, enum fmt *out)
{
    const char *f = format;
    if (!f) {
        const char *dot = strrchr(file, '.');
        f = dot && (!strcasecmp(dot, ".jsonl") || !strcasecmp(dot, ".ndjson") ||
                    !strcasecmp(dot, ".json"))
                ? "jsonl"
                : "csv";
    }
    if (!strcasecmp(f, "csv"))
        *out = F_CSV;
    else if (!strcasecmp(f, "jsonl") || !strcasecmp(f, "json"))
        *out = F_JSONL;
    else
        return -1;
    return 0;
}

int cli_import(const struct cli_admin_client *cl, const char *what, const char *file,
               const struct cli_import_opts *o)
{
    struct import im = {.cl = cl,
                        .file = file,
                        .what = what,
                        .o = o,
                        .devices = strcmp(what, "devices") == 0,
                        .byte_budget = BATCH_BYTES};
    if (fmt_of(file, o->format, &im.fmt) < 0) {
        fprintf(stderr, "easgate admin: --format is csv or jsonl\n");
        return 2;
    }
    long good = check_file(&im);
    if (good < 0 || im.errors) {
        if (im.errors > ERRORS_SHOWN)
            fprintf(stderr, "... and %ld more errors\n", im.errors - ERRORS_SHOWN);
        fprintf(stderr, "%s: %ld error%s; nothing was sent\n", file, im.errors,
                im.errors == 1 ? "" : "s");
        return 1;
    }
    /* The server checks what only it can (users it does not know) before
     * anything is stored; a dry run stops there. */
    int rc = send_file(&im, true);
    if (rc || im.errors) {
        if (im.errors > ERRORS_SHOWN)
            fprintf(stderr, "... and %ld more errors\n", im.errors - ERRORS_SHOWN);
        fprintf(stderr, "%s: %ld error%s; nothing was stored\n", file, im.errors,
                im.errors == 1 ? "" : "s");
        rc = 1;
        goto out;
    }
    if (o->dry_run) {
        printf("%s: %ld rows: %ld would be created, %ld updated, %ld unchanged (dry run: nothing "
               "was stored)\n",
               file, good, im.created, im.updated, im.unchanged);
        goto out;
    }
    im.created = im.updated = im.unchanged = 0;
    rc = send_file(&im, false);
    if (rc) {
        fprintf(stderr,
                "%s: stopped: the batch above was not stored, nor anything after it; %ld rows "
                "before it were (%ld created, %ld updated, %ld unchanged)\n",
                file, im.stored_rows, im.created, im.updated, im.unchanged);
        goto out;
    }
    printf("%s: %ld rows: %ld created, %ld updated, %ld unchanged\n", file, good, im.created,
           im.updated, im.unchanged);
out:
    return rc;
}

long cli_import_check(const char *what, const char *file, const char *format, long *errors)
{
    struct cli_import_opts o = {.format = format};
    struct import im = {
        .file = file, .what = what, .o = &o, .devices = strcmp(what, "devices") == 0};
    long good = fmt_of(file, format, &im.fmt) < 0 ? -1 : check_file(&im);
    if (errors)
        *errors = im.errors;
    return good;
}

/* ---- export ------------------------------------------------------------------------ */

/* A CSV field: quoted when it holds a comma, a quote or a line break. */
static void csv_field(FILE *out, const char *v, bool last)
{
    if (strpbrk(v, ",\"\r\n")) {
        fputc('"', out);
        for (; *v; v++) {
            if (*v == '"')
                fputc('"', out);
            fputc(*v, out);
        }
        fputc('"', out);
    } else {
        fputs(v, out);
    }
    fputc(last ? '\n' : ',', out);
}

static const char *iso(json_int_t ms, char *b, size_t n)
{
    if (ms <= 0)
        return "";
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(b, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return b;
}

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* An exported device's columns, in order (the CSV header and each row).
 * The per-device facts a proxy reported (version, user agent, address,
 * last seen) are there for the admin's eyes; import ignores them
 * (dev_export_only): only a device's own requests may set them. */
static const char *const dev_export_cols[] = {
    "device_id", "user",         "type",        "model",      "os",          "os_version",
    "managed",   "override",     "state",       "reason",     "version",     "first_seen",
    "last_seen", "last_checkin", "eas_version", "user_agent", "last_client", NULL};

/* The flat record of a device: what import reads back (override as its decision). */
static void export_device(json_t *d, enum fmt f, FILE *out)
{
    const char *const *cols = dev_export_cols;
    json_t *r = json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:s,s:b,s:s,s:s,s:s,s:O,s:O,s:O,s:O,s:s,s:s,s:s}", "device_id",
        str(d, "device_id"), "user", str(d, "user"), "type", str(d, "device_type"), "model",
        str(d, "model"), "os", str(d, "os"), "os_version", str(d, "os_version"), "managed",
        json_is_true(json_object_get(d, "managed")), "override", str(d, "override"), "state",
        str(d, "state"), "reason", str(d, "reason"), "version", json_object_get(d, "version"),
        "first_seen", json_object_get(d, "first_seen"), "last_seen",
        json_object_get(d, "last_seen"), "last_checkin", json_object_get(d, "last_checkin"),
        "eas_version", str(d, "eas_version"), "user_agent", str(d, "user_agent"), "last_client",
        str(d, "last_client"));
    if (!r)
        return;
    if (f == F_JSONL) {
        char *s = json_dumps(r, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (s)
            fprintf(out, "%s\n", s);
        free(s);
    } else {
        for (int i = 0; cols[i]; i++) {
            json_t *v = json_object_get(r, cols[i]);
            char b[40];
            const char *t =
                json_is_string(v)    ? json_string_value(v)
                : json_is_boolean(v) ? (json_is_true(v) ? "yes" : "no")
                : strstr(cols[i], "seen") || strstr(cols[i], "checkin")
                    ? iso(json_integer_value(v), b, sizeof(b))
                    : (snprintf(b, sizeof(b), "%lld", (long long)json_integer_value(v)), b);
            csv_field(out, t, !cols[i + 1]);
        }
    }
    json_decref(r);
}

static void export_audit(json_t *a, enum fmt f, FILE *out)
{
    if (f == F_JSONL) {
        char *s = json_dumps(a, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (s)
            fprintf(out, "%s\n", s);
        free(s);
        return;
    }
    char id[24], b[40];
    snprintf(id, sizeof(id), "%lld", (long long)json_integer_value(json_object_get(a, "id")));
    csv_field(out, id, false);
    csv_field(out, iso(json_integer_value(json_object_get(a, "at")), b, sizeof(b)), false);
    static const char *const cols[] = {"actor", "address", "action", "target", "detail", NULL};
    for (int i = 0; cols[i]; i++)
        csv_field(out, str(a, cols[i]), !cols[i + 1]);
}

int cli_export(const struct cli_admin_client *cl, const char *what, const char *query,
               const char *format, FILE *out)
{
    enum fmt f;
    if (fmt_of("", format ? format : "csv", &f) < 0) {
        fprintf(stderr, "easgate admin: --format is csv or jsonl\n");
        return 2;
    }
    bool devices = strcmp(what, "devices") == 0;
    if (f == F_CSV && devices)
        for (int i = 0; dev_export_cols[i]; i++)
            csv_field(out, dev_export_cols[i], !dev_export_cols[i + 1]);
    else if (f == F_CSV)
        fputs("id,at,actor,address,action,target,detail\n", out);
    char cursor[256] = "";
    long rows = 0;
    for (;;) {
        char path[2048];
        char *e = cursor[0] ? curl_easy_escape(NULL, cursor, 0) : NULL;
        snprintf(path, sizeof(path), "/api/v1/%s?limit=" EXPORT_PAGE "%s%s%s%s",
                 devices ? "devices" : "audit", query && query[0] ? "&" : "", query ? query : "",
                 e ? (devices ? "&after=" : "&before=") : "", e ? e : "");
        curl_free(e);
        json_t *j = NULL;
        long status = 0;
        if (cli_admin_request(cl, "GET", path, NULL, &j, &status) || status != 200) {
            const char *msg = json_string_value(json_object_get(j, "error"));
            fprintf(stderr, "easgate admin: export stopped after %ld rows: %s (HTTP %ld)\n", rows,
                    msg ? msg : "no answer", status);
            json_decref(j);
            return 1;
        }
        size_t i;
        json_t *x;
        json_array_foreach(json_object_get(j, devices ? "devices" : "audit"), i, x)
        {
            if (devices)
                export_device(x, f, out);
            else
                export_audit(x, f, out);
            rows++;
        }
        json_t *next = json_object_get(j, "next");
        bool more = json_is_string(next) || json_is_integer(next);
        if (json_is_string(next))
            snprintf(cursor, sizeof(cursor), "%s", json_string_value(next));
        else if (json_is_integer(next))
            snprintf(cursor, sizeof(cursor), "%lld", (long long)json_integer_value(next));
        json_decref(j);
        if (!more)
            break;
    }
    if (fflush(out) != 0 || ferror(out)) {
        fprintf(stderr, "easgate admin: export: writing failed: %s\n", strerror(errno));
        return 1;
    }
    fprintf(stderr, "%ld %s exported\n", rows, devices ? "devices" : "audit entries");
    return 0;
}
