/*
 * ytree: libyaml's event stream folded into a tree of positioned nodes, and
 * the key-table walker every configuration loader uses.
 *
 * Everything lives in one arena per document, so a loader never frees
 * anything piecemeal and a failed load leaks nothing: yt_free() drops it all.
 * Defaults are written in the tables as YAML text and go through the very
 * same parser as the file's values, so a default can never mean something
 * the file could not say, and `easgate check` prints both alike.
 */
#include "common/ytree.h"

#include "common/units.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#define YT_CHUNK_MIN 4096
#define YT_MAX_DEPTH 64       /* nesting deeper than this is not a config */
#define YT_MAX_FILE (4 << 20) /* 4 MiB: refuse to load anything bigger */
#define YT_MAX_MAP_KEYS 10000 /* duplicate detection is quadratic; no config map is this big */
#define YT_SHOW_MAX 48        /* chars of a user string quoted in an error */
#define YT_DEFAULT_FILE "(default)" /* file name of nodes made from table defaults */

struct yt_chunk {
    struct yt_chunk *next;
    size_t used, cap;
    max_align_t data[];
};

struct yt_doc {
    struct yt_chunk *chunks;
    struct yt_node *root;
    const char *name;
};

void *yt_alloc(struct yt_doc *doc, size_t size)
{
    size = (size + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    struct yt_chunk *c = doc->chunks;
    if (!c || c->cap - c->used < size) {
        size_t cap = size > YT_CHUNK_MIN ? size : YT_CHUNK_MIN;
        c = malloc(sizeof(*c) + cap);
        if (!c)
            return NULL;
        c->used = 0;
        c->cap = cap;
        c->next = doc->chunks;
        doc->chunks = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += size;
    memset(p, 0, size);
    return p;
}

char *yt_strndup(struct yt_doc *doc, const char *s, size_t n)
{
    char *p = yt_alloc(doc, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

char *yt_strdup(struct yt_doc *doc, const char *s)
{
    return yt_strndup(doc, s, strlen(s));
}

void yt_free(struct yt_doc *doc)
{
    if (!doc)
        return;
    struct yt_chunk *c = doc->chunks;
    while (c) {
        struct yt_chunk *next = c->next;
        free(c);
        c = next;
    }
    free(doc);
}

const struct yt_node *yt_root(const struct yt_doc *doc)
{
    return doc ? doc->root : NULL;
}

const char *yt_doc_name(const struct yt_doc *doc)
{
    return doc ? doc->name : NULL;
}

const char *yt_type_name(enum yt_type t)
{
    switch (t) {
    case YT_SCALAR:
        return "scalar";
    case YT_MAP:
        return "map";
    case YT_SEQ:
        return "list";
    }
    return "?";
}

/* A user-supplied string made safe and short for an error message. */
static const char *show(const char *s, char *buf, size_t len)
{
    size_t o = 0;
    for (const char *p = s; *p && o + 4 < len; p++) {
        if (o >= YT_SHOW_MAX) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        buf[o++] = isprint((unsigned char)*p) ? *p : '?';
    }
    buf[o] = '\0';
    return buf;
}

static void vset_err(char *err, size_t errlen, const char *file, int line, int col, const char *fmt,
                     va_list ap)
{
    if (!err || !errlen)
        return;
    int n;
    if (line > 0)
        n = snprintf(err, errlen, "%s:%d:%d: ", file ? file : "?", line, col);
    else
        n = snprintf(err, errlen, "%s: ", file ? file : "?");
    if (n < 0 || (size_t)n >= errlen)
        return;
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
}

static void set_err(char *err, size_t errlen, const char *file, int line, int col, const char *fmt,
                    ...) __attribute__((format(printf, 6, 7)));
static void set_err(char *err, size_t errlen, const char *file, int line, int col, const char *fmt,
                    ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset_err(err, errlen, file, line, col, fmt, ap);
    va_end(ap);
}

int yt_err(struct yt_ctx *ctx, const struct yt_node *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *file = n ? n->file : yt_doc_name(ctx->doc);
    vset_err(ctx->err, ctx->errlen, file, n ? n->line : 0, n ? n->col : 0, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* ---- Building the tree from libyaml events ---------------------------- */

struct builder {
    struct yt_doc *doc;
    const char *file;
    struct yt_node *stack[YT_MAX_DEPTH];
    size_t caps[YT_MAX_DEPTH]; /* capacity of items[] (and keys[]) per level */
    int depth;
    char *err;
    size_t errlen;
};

static int grow(struct builder *b, struct yt_node *parent, size_t *cap)
{
    if (parent->n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 8;
    struct yt_node **items = yt_alloc(b->doc, ncap * sizeof(*items));
    struct yt_node **keys = NULL;
    if (!items)
        return -ENOMEM;
    if (parent->type == YT_MAP && !(keys = yt_alloc(b->doc, ncap * sizeof(*keys))))
        return -ENOMEM;
    if (parent->n) {
        memcpy(items, parent->items, parent->n * sizeof(*items));
        if (keys)
            memcpy(keys, parent->keys, parent->n * sizeof(*keys));
    }
    parent->items = items;
    parent->keys = keys;
    *cap = ncap;
    return 0;
}

/* A map alternates key, value: a pending key sits in keys[n] until its value
 * arrives; keys[n] != NULL means "waiting for the value". */
static int attach(struct builder *b, struct yt_node *node)
{
    if (b->depth == 0) {
        b->doc->root = node;
        return 0;
    }
    struct yt_node *parent = b->stack[b->depth - 1];
    size_t *cap = &b->caps[b->depth - 1];
    int rc = grow(b, parent, cap);
    if (rc)
        return rc;
    if (parent->type == YT_SEQ) {
        parent->items[parent->n++] = node;
        return 0;
    }
    if (!parent->keys[parent->n]) {
        if (parent->n >= YT_MAX_MAP_KEYS) {
            set_err(b->err, b->errlen, b->file, node->line, node->col,
                    "more than %d keys in one map", YT_MAX_MAP_KEYS);
            return -EINVAL;
        }
        if (node->type != YT_SCALAR) {
            set_err(b->err, b->errlen, b->file, node->line, node->col,
                    "a key must be a plain word, not a %s", yt_type_name(node->type));
            return -EINVAL;
        }
        for (size_t i = 0; i < parent->n; i++) {
            if (parent->keys[i]->len == node->len &&
                memcmp(parent->keys[i]->str, node->str, node->len) == 0) {
                char s[64];
                set_err(b->err, b->errlen, b->file, node->line, node->col,
                        "duplicate key '%s' (first at line %d)", show(node->str, s, sizeof(s)),
                        parent->keys[i]->line);
                return -EINVAL;
            }
        }
        parent->keys[parent->n] = node;
        return 0;
    }
    parent->items[parent->n++] = node;
    return 0;
}

static struct yt_node *new_node(struct builder *b, enum yt_type t, const yaml_event_t *ev)
{
    struct yt_node *n = yt_alloc(b->doc, sizeof(*n));
    if (!n)
        return NULL;
    n->type = t;
    n->file = b->file;
    n->line = (int)ev->start_mark.line + 1;
    n->col = (int)ev->start_mark.column + 1;
    return n;
}

static bool tag_ok(const yaml_char_t *tag)
{
    return !tag || strncmp((const char *)tag, "tag:yaml.org,2002:", 18) == 0;
}

static int on_event(struct builder *b, const yaml_event_t *ev, bool *done)
{
    struct yt_node *n;
    int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
    switch (ev->type) {
    case YAML_STREAM_START_EVENT:
    case YAML_DOCUMENT_END_EVENT:
    case YAML_NO_EVENT:
        return 0;
    case YAML_STREAM_END_EVENT:
        *done = true;
        return 0;
    case YAML_DOCUMENT_START_EVENT:
        if (b->doc->root) {
            set_err(b->err, b->errlen, b->file, line, col,
                    "only one YAML document per file (remove this '---')");
            return -EINVAL;
        }
        return 0;
    case YAML_ALIAS_EVENT:
        set_err(b->err, b->errlen, b->file, line, col,
                "YAML aliases (*name) are not supported here; write the value out");
        return -EINVAL;
    case YAML_SCALAR_EVENT:
        if (!tag_ok(ev->data.scalar.tag)) {
            set_err(b->err, b->errlen, b->file, line, col, "YAML tags are not supported here");
            return -EINVAL;
        }
        if (!(n = new_node(b, YT_SCALAR, ev)))
            return -ENOMEM;
        n->len = ev->data.scalar.length;
        n->str = yt_strndup(b->doc, (const char *)ev->data.scalar.value, n->len);
        if (!n->str)
            return -ENOMEM;
        n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
        n->null =
            !n->quoted && (n->len == 0 || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0 ||
                           strcmp(n->str, "Null") == 0 || strcmp(n->str, "NULL") == 0);
        return attach(b, n);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        const yaml_char_t *tag = ev->type == YAML_SEQUENCE_START_EVENT ? ev->data.sequence_start.tag
                                                                       : ev->data.mapping_start.tag;
        if (!tag_ok(tag)) {
            set_err(b->err, b->errlen, b->file, line, col, "YAML tags are not supported here");
            return -EINVAL;
        }
        if (b->depth >= YT_MAX_DEPTH) {
            set_err(b->err, b->errlen, b->file, line, col, "nested more than %d levels deep",
                    YT_MAX_DEPTH);
            return -EINVAL;
        }
        n = new_node(b, ev->type == YAML_SEQUENCE_START_EVENT ? YT_SEQ : YT_MAP, ev);
        if (!n)
            return -ENOMEM;
        int rc = attach(b, n);
        if (rc)
            return rc;
        b->caps[b->depth] = 0;
        b->stack[b->depth++] = n;
        return 0;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        if (b->depth > 0)
            b->depth--;
        return 0;
    }
    return 0;
}

static void yaml_error(struct builder *b, const yaml_parser_t *p)
{
    const yaml_mark_t *m = &p->problem_mark;
    const char *problem = p->problem ? p->problem : "malformed YAML";
    if (p->error == YAML_MEMORY_ERROR) {
        set_err(b->err, b->errlen, b->file, 0, 0, "out of memory reading YAML");
        return;
    }
    if (p->context)
        set_err(b->err, b->errlen, b->file, (int)m->line + 1, (int)m->column + 1,
                "YAML syntax error: %s %s (line %d)", problem, p->context,
                (int)p->context_mark.line + 1);
    else
        set_err(b->err, b->errlen, b->file, (int)m->line + 1, (int)m->column + 1,
                "YAML syntax error: %s", problem);
}

int yt_load_buf(const char *name, const char *buf, size_t len, struct yt_doc **out, char *err,
                size_t errlen)
{
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    struct yt_doc *doc = calloc(1, sizeof(*doc));
    if (!doc)
        return -ENOMEM;
    doc->name = yt_strdup(doc, name ? name : "(buffer)");
    if (!doc->name) {
        yt_free(doc);
        return -ENOMEM;
    }
    struct builder b = {.doc = doc, .file = doc->name, .err = err, .errlen = errlen};
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        yt_free(doc);
        return -ENOMEM;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    int rc = 0;
    bool done = false;
    while (!done && rc == 0) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            yaml_error(&b, &parser);
            rc = -EINVAL;
            break;
        }
        rc = on_event(&b, &ev, &done);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    if (rc) {
        if (rc == -ENOMEM)
            set_err(err, errlen, b.file, 0, 0, "out of memory");
        yt_free(doc);
        return rc;
    }
    *out = doc;
    return 0;
}

int yt_load_file(const char *path, struct yt_doc **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_err(err, errlen, path, 0, 0, "cannot open: %s", strerror(errno));
        return -errno;
    }
    size_t cap = 8192, len = 0;
    char *buf = malloc(cap);
    int rc = 0;
    while (buf) {
        if (len == cap) {
            if (cap >= YT_MAX_FILE) {
                set_err(err, errlen, path, 0, 0, "file larger than %d bytes", YT_MAX_FILE);
                rc = -EFBIG;
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                set_err(err, errlen, path, 0, 0, "read error: %s", strerror(errno));
                rc = -EIO;
            }
            break;
        }
    }
    fclose(f);
    if (!buf)
        return -ENOMEM;
    if (rc == 0)
        rc = yt_load_buf(path, buf, len, out, err, errlen);
    free(buf);
    return rc;
}

const struct yt_node *yt_get(const struct yt_node *map, const char *key)
{
    if (!map || map->type != YT_MAP)
        return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->keys[i]->str, key) == 0)
            return map->items[i];
    return NULL;
}

const struct yt_node *yt_get_key(const struct yt_node *map, const char *key)
{
    if (!map || map->type != YT_MAP)
        return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->keys[i]->str, key) == 0)
            return map->keys[i];
    return NULL;
}

/* ---- Suggestions ---------------------------------------------------------- */

#define YT_SUGGEST_MAXLEN 64

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > YT_SUGGEST_MAXLEN || lb > YT_SUGGEST_MAXLEN)
        return SIZE_MAX;
    size_t row[YT_SUGGEST_MAXLEN + 1];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost =
                tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
            size_t best = diag + cost;
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *yt_suggest(const char *word, const char *const *candidates, size_t n)
{
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    size_t limit = strlen(word) / 3 + 1;
    if (limit < 2)
        limit = 2;
    for (size_t i = 0; i < n; i++) {
        size_t d = edit_distance(word, candidates[i]);
        /* A prefix ("user_agent" for "user_agents") is a likely slip too. */
        if (d > limit && strncasecmp(word, candidates[i], strlen(word)) == 0 && strlen(word) >= 3)
            d = limit;
        if (d <= limit && d < best_d) {
            best = candidates[i];
            best_d = d;
        }
    }
    return best;
}

/* ---- Scalars -------------------------------------------------------------- */

int yt_want(struct yt_ctx *ctx, const struct yt_node *n, enum yt_type t, const char *what)
{
    if (n->type == t)
        return 0;
    return yt_err(ctx, n, "expected %s, got a %s", what, yt_type_name(n->type));
}

int yt_scalar_str(struct yt_ctx *ctx, const struct yt_node *n, const char **out)
{
    int rc = yt_want(ctx, n, YT_SCALAR, "a string");
    if (rc)
        return rc;
    if (strlen(n->str) != n->len)
        return yt_err(ctx, n, "string contains a NUL character");
    *out = n->str;
    return 0;
}

int yt_scalar_bool(struct yt_ctx *ctx, const struct yt_node *n, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    int rc = yt_want(ctx, n, YT_SCALAR, "true or false");
    if (rc)
        return rc;
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(n->str, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(n->str, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    char s[64];
    return yt_err(ctx, n, "expected true or false, got '%s'", show(n->str, s, sizeof(s)));
}

static int parse_int(const char *s, int64_t *out)
{
    const char *p = s;
    bool neg = false;
    if (*p == '-') {
        neg = true;
        p++;
    }
    if (!isdigit((unsigned char)*p))
        return -EINVAL;
    int64_t v = 0;
    for (; isdigit((unsigned char)*p); p++) {
        int d = *p - '0';
        if (v > (INT64_MAX - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    if (*p)
        return -EINVAL;
    *out = neg ? -v : v;
    return 0;
}

/* ---- Key tables ----------------------------------------------------------- */

static void fmt_num(const struct yt_key *k, int64_t v, char *buf, size_t len)
{
    if (k->type == YK_DUR)
        units_fmt_duration(v, buf, len);
    else if (k->type == YK_SIZE)
        units_fmt_size(v, buf, len);
    else
        snprintf(buf, len, "%" PRId64, v);
}

static int check_range(const struct yt_key *k, const struct yt_node *n, int64_t v,
                       struct yt_ctx *ctx)
{
    int64_t min = k->min, max = k->max;
    if (min == 0 && max == 0)
        max = INT64_MAX;
    if (v >= min && v <= max)
        return 0;
    char a[32], b[32];
    fmt_num(k, min, a, sizeof(a));
    fmt_num(k, max, b, sizeof(b));
    if (max == INT64_MAX)
        return yt_err(ctx, n, "%s must be at least %s", k->name, a);
    return yt_err(ctx, n, "%s must be between %s and %s", k->name, a, b);
}

static int apply_scalar(const struct yt_key *k, const struct yt_node *n, char *field,
                        struct yt_ctx *ctx)
{
    const char *s = NULL;
    const char *why = NULL;
    char shown[64];
    int64_t v;
    int rc;

    if (k->type == YK_BOOL)
        return yt_scalar_bool(ctx, n, (bool *)field);
    if ((rc = yt_scalar_str(ctx, n, &s)))
        return rc;
    switch (k->type) {
    case YK_STR:
        *(const char **)field = s;
        return 0;
    case YK_PATH:
        if (!*s)
            return yt_err(ctx, n, "%s: empty path", k->name);
        if (s[0] != '/' && ctx->dir && strcmp(ctx->dir, ".") != 0) {
            size_t dl = strlen(ctx->dir), sl = strlen(s);
            char *p = yt_alloc(ctx->doc, dl + sl + 2);
            if (!p)
                return yt_err(ctx, n, "out of memory");
            memcpy(p, ctx->dir, dl);
            p[dl] = '/';
            memcpy(p + dl + 1, s, sl + 1);
            s = p;
        }
        *(const char **)field = s;
        return 0;
    case YK_INT:
    case YK_I64:
        rc = parse_int(s, &v);
        if (rc)
            return yt_err(ctx, n, "%s: expected a whole number, got '%s'", k->name,
                          show(s, shown, sizeof(shown)));
        if ((rc = check_range(k, n, v, ctx)))
            return rc;
        if (k->type == YK_INT) {
            if (v < INT32_MIN || v > INT32_MAX)
                return yt_err(ctx, n, "%s: number out of range", k->name);
            *(int *)field = (int)v;
        } else {
            *(int64_t *)field = v;
        }
        return 0;
    case YK_DUR:
    case YK_SIZE:
        rc = k->type == YK_DUR ? units_parse_duration(s, &v, &why) : units_parse_size(s, &v, &why);
        if (rc)
            return yt_err(ctx, n, "%s: bad %s '%s': %s", k->name,
                          k->type == YK_DUR ? "duration" : "size", show(s, shown, sizeof(shown)),
                          why);
        if ((rc = check_range(k, n, v, ctx)))
            return rc;
        *(int64_t *)field = v;
        return 0;
    case YK_ENUM: {
        char allowed[256];
        size_t o = 0;
        for (int i = 0; k->enums[i]; i++) {
            if (strcasecmp(s, k->enums[i]) == 0) {
                *(int *)field = i;
                return 0;
            }
            int w = snprintf(allowed + o, sizeof(allowed) - o, "%s%s", i ? ", " : "", k->enums[i]);
            if (w > 0 && (size_t)w < sizeof(allowed) - o)
                o += (size_t)w;
        }
        return yt_err(ctx, n, "%s: bad value '%s' (allowed: %s)", k->name,
                      show(s, shown, sizeof(shown)), allowed);
    }
    case YK_ADDR:
        if (units_parse_addr(s, (struct units_addr *)field, &why))
            return yt_err(ctx, n, "%s: bad address '%s': %s", k->name,
                          show(s, shown, sizeof(shown)), why);
        return 0;
    default:
        return yt_err(ctx, n, "%s: internal error: bad key type", k->name);
    }
}

static int apply_strlist(const struct yt_key *k, const struct yt_node *n, struct yt_strv *v,
                         struct yt_ctx *ctx)
{
    const char *s = NULL;
    int rc;
    if (n->type == YT_MAP)
        return yt_err(ctx, n, "%s: expected a string or a list of strings, got a map", k->name);
    if (n->type == YT_SCALAR) {
        if ((rc = yt_scalar_str(ctx, n, &s)))
            return rc;
        if (!(v->v = yt_alloc(ctx->doc, sizeof(*v->v))))
            return yt_err(ctx, n, "out of memory");
        v->v[0] = s;
        v->n = 1;
        return 0;
    }
    v->n = 0;
    if (n->n && !(v->v = yt_alloc(ctx->doc, n->n * sizeof(*v->v))))
        return yt_err(ctx, n, "out of memory");
    for (size_t i = 0; i < n->n; i++) {
        if (n->items[i]->type != YT_SCALAR)
            return yt_err(ctx, n->items[i], "%s: list entries must be strings, not a %s", k->name,
                          yt_type_name(n->items[i]->type));
        if ((rc = yt_scalar_str(ctx, n->items[i], &s)))
            return rc;
        v->v[v->n++] = s;
    }
    return 0;
}

static int apply_seq(const struct yt_key *k, const struct yt_node *n, char *obj, struct yt_ctx *ctx)
{
    if (n->type != YT_SEQ)
        return yt_err(ctx, n, "%s: expected a list (of maps), got a %s", k->name,
                      yt_type_name(n->type));
    char *arr = NULL;
    if (n->n && !(arr = yt_alloc(ctx->doc, n->n * k->elem_size)))
        return yt_err(ctx, n, "out of memory");
    for (size_t i = 0; i < n->n; i++) {
        const struct yt_node *item = n->items[i];
        if (item->type != YT_MAP)
            return yt_err(ctx, item, "%s: each entry must be a map, not a %s", k->name,
                          yt_type_name(item->type));
        int rc = yt_apply(k->sub, item, arr + i * k->elem_size, ctx);
        if (rc)
            return rc;
    }
    *(void **)(obj + k->off) = arr;
    *(size_t *)(obj + k->off2) = n->n;
    return 0;
}

/* The node for a key: the file's, or one made from the table default. */
static const struct yt_node *key_node(const struct yt_key *k, const struct yt_node *map,
                                      struct yt_node *tmp)
{
    const struct yt_node *n = yt_get(map, k->name);
    if (n && !(n->type == YT_SCALAR && n->null))
        return n;
    if (!k->def)
        return NULL;
    memset(tmp, 0, sizeof(*tmp));
    tmp->type = YT_SCALAR;
    tmp->file = YT_DEFAULT_FILE;
    tmp->str = k->def;
    tmp->len = strlen(k->def);
    return tmp;
}

static size_t table_len(const struct yt_key *keys)
{
    size_t n = 0;
    while (keys[n].name)
        n++;
    return n;
}

int yt_apply(const struct yt_key *keys, const struct yt_node *map, void *obj, struct yt_ctx *ctx)
{
    size_t nk = table_len(keys);
    if (map && map->type != YT_MAP)
        return yt_err(ctx, map, "expected a map of keys, got a %s", yt_type_name(map->type));

    /* Unknown keys first: a typo is the likeliest mistake and the hint helps. */
    for (size_t i = 0; map && i < map->n; i++) {
        const char *name = map->keys[i]->str;
        bool known = false;
        for (size_t j = 0; j < nk && !known; j++)
            known = strcmp(keys[j].name, name) == 0;
        if (known)
            continue;
        const char *cand[64];
        size_t nc = 0;
        for (size_t j = 0; j < nk && nc < 64; j++)
            cand[nc++] = keys[j].name;
        const char *hint = yt_suggest(name, cand, nc);
        char s[64];
        if (hint)
            return yt_err(ctx, map->keys[i], "unknown key '%s' (did you mean '%s'?)",
                          show(name, s, sizeof(s)), hint);
        return yt_err(ctx, map->keys[i], "unknown key '%s'", show(name, s, sizeof(s)));
    }

    for (size_t j = 0; j < nk; j++) {
        const struct yt_key *k = &keys[j];
        struct yt_node tmp;
        const struct yt_node *n = key_node(k, map, &tmp);
        char *field = (char *)obj + k->off;
        int rc = 0;
        if (!n) {
            if (k->flags & YK_REQUIRED) {
                const struct yt_node *at = yt_get_key(map, k->name);
                return yt_err(ctx, at ? at : map, "missing required key '%s'", k->name);
            }
            if (k->type == YK_MAP)
                rc = yt_apply(k->sub, NULL, field, ctx);
            if (rc)
                return rc;
            continue;
        }
        switch (k->type) {
        case YK_MAP:
            if (n->type != YT_MAP)
                return yt_err(ctx, n, "%s: expected a map, got a %s", k->name,
                              yt_type_name(n->type));
            rc = yt_apply(k->sub, n, field, ctx);
            break;
        case YK_SEQ:
            rc = apply_seq(k, n, obj, ctx);
            break;
        case YK_STRLIST:
            rc = apply_strlist(k, n, (struct yt_strv *)field, ctx);
            break;
        case YK_FN:
            rc = k->fn(n, field, ctx);
            break;
        default:
            if (n->type != YT_SCALAR)
                return yt_err(ctx, n, "%s: expected a single value, got a %s", k->name,
                              yt_type_name(n->type));
            rc = apply_scalar(k, n, field, ctx);
            break;
        }
        if (rc)
            return rc;
    }
    if (keys[nk].check)
        return keys[nk].check(obj, map, ctx);
    return 0;
}

/* ---- Printing ------------------------------------------------------------- */

static void print_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\x%02x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void print_value(FILE *f, const struct yt_key *k, const char *field)
{
    char buf[64];
    if (k->flags & YK_SECRET) {
        fputs(*(const char *const *)field ? "\"***\"" : "~", f);
        return;
    }
    switch (k->type) {
    case YK_STR:
    case YK_PATH: {
        const char *s = *(const char *const *)field;
        if (s)
            print_quoted(f, s);
        else
            fputs("~", f);
        break;
    }
    case YK_BOOL:
        fputs(*(const bool *)field ? "true" : "false", f);
        break;
    case YK_INT:
        fprintf(f, "%d", *(const int *)field);
        break;
    case YK_I64:
    case YK_DUR:
    case YK_SIZE:
        fmt_num(k, *(const int64_t *)field, buf, sizeof(buf));
        fputs(buf, f);
        break;
    case YK_ENUM:
        fputs(k->enums[*(const int *)field], f);
        break;
    case YK_ADDR: {
        const struct units_addr *a = (const struct units_addr *)field;
        fputs(a->port ? a->text : "~", f);
        break;
    }
    case YK_STRLIST: {
        const struct yt_strv *v = (const struct yt_strv *)field;
        fputc('[', f);
        for (size_t i = 0; i < v->n; i++) {
            if (i)
                fputs(", ", f);
            print_quoted(f, v->v[i]);
        }
        fputc(']', f);
        break;
    }
    case YK_FN:
        if (k->print)
            k->print(f, field);
        else
            fputs("~", f);
        break;
    default:
        break;
    }
}

/* first: what to print before the first key instead of the indent ("- "). */
static void print_table(FILE *f, const struct yt_key *keys, const char *obj, int indent,
                        const char *first)
{
    for (size_t j = 0; keys[j].name; j++) {
        const struct yt_key *k = &keys[j];
        if (k->flags & YK_HIDDEN)
            continue;
        if (first) {
            fprintf(f, "%*s%s", indent - (int)strlen(first), "", first);
            first = NULL;
        } else {
            fprintf(f, "%*s", indent, "");
        }
        const char *field = obj + k->off;
        if (k->type == YK_MAP) {
            fprintf(f, "%s:\n", k->name);
            print_table(f, k->sub, field, indent + 2, NULL);
        } else if (k->type == YK_SEQ) {
            const char *arr = *(const char *const *)field;
            size_t cnt = *(const size_t *)(obj + k->off2);
            fprintf(f, "%s:%s\n", k->name, cnt ? "" : " []");
            for (size_t i = 0; i < cnt; i++)
                print_table(f, k->sub, arr + i * k->elem_size, indent + 4, "- ");
        } else {
            fprintf(f, "%s: ", k->name);
            print_value(f, k, field);
            fputc('\n', f);
        }
    }
}

void yt_print(FILE *f, const struct yt_key *keys, const void *obj, int indent)
{
    print_table(f, keys, obj, indent, NULL);
}
