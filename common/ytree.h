/*
 * ytree: a YAML document as a small tree of nodes that remember where they
 * came from (file, line, column; 1-based), plus the key tables every loader
 * (easgate.yaml, policy.yaml, compliance, core, enroll) declares its keys with.
 *
 * Why a tree and not libyaml events: validation errors must point at the
 * offending key ("policy.yaml:14:7: unknown key 'user_agent' (did you mean
 * 'user_agents'?)"), and loaders want to look keys up, not follow a stream.
 *
 * Memory: a yt_doc owns every node and everything allocated with yt_alloc /
 * yt_strdup on it (one arena). Structures filled from a document point into
 * it, so whoever keeps those structures keeps the document and frees it with
 * yt_free() at the end. Nothing here is thread-safe while loading; a loaded
 * document is read-only and may be read from any thread.
 *
 * Errors: every function that can fail returns 0 or a negative errno-style
 * code and writes "FILE:LINE:COL: message" into the caller's buffer.
 */
#ifndef EG_YTREE_H
#define EG_YTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum yt_type { YT_SCALAR, YT_MAP, YT_SEQ };

struct yt_node {
    enum yt_type type;
    const char *file; /* as given to the loader; owned by the doc */
    int line, col;    /* 1-based, where the node starts */
    /* scalar: NUL-terminated text (may hold NULs: len is the truth) */
    const char *str;
    size_t len;
    bool quoted; /* scalar was quoted: "yes" is a string, yes is a bool */
    bool null;   /* plain "~", "null" or empty: no value */
    /* map: n pairs keys[i] -> items[i] (keys are scalars, unique);
     * seq: n entries in items[] */
    size_t n;
    struct yt_node **keys;
    struct yt_node **items;
};

struct yt_doc; /* opaque: arena + root */

/* Parse a whole YAML file / buffer (one document; an empty one gives a NULL
 * root). Aliases, tags other than the core ones, and duplicate keys are
 * rejected with their position. On success *out must be yt_free()d. */
int yt_load_file(const char *path, struct yt_doc **out, char *err, size_t errlen);
int yt_load_buf(const char *name, const char *buf, size_t len, struct yt_doc **out, char *err,
                size_t errlen);
void yt_free(struct yt_doc *doc);

const struct yt_node *yt_root(const struct yt_doc *doc);
const char *yt_doc_name(const struct yt_doc *doc);

/* Arena allocation tied to the document's lifetime: zeroed, never NULL
 * unless out of memory. */
void *yt_alloc(struct yt_doc *doc, size_t size);
char *yt_strdup(struct yt_doc *doc, const char *s);
char *yt_strndup(struct yt_doc *doc, const char *s, size_t n);

/* The value under key in a map node, or NULL (also when map is not a map). */
const struct yt_node *yt_get(const struct yt_node *map, const char *key);
/* The key node of that pair (for error positions), or NULL. */
const struct yt_node *yt_get_key(const struct yt_node *map, const char *key);
const char *yt_type_name(enum yt_type t); /* "scalar", "map", "list" */

/* ---- Key tables -------------------------------------------------------- */

struct yt_ctx;

enum yt_ktype {
    YK_STR,     /* const char *; scalar text */
    YK_PATH,    /* const char *; relative paths resolved against ctx->dir */
    YK_BOOL,    /* bool; true/false/yes/no/on/off */
    YK_INT,     /* int; decimal, range [min, max] */
    YK_I64,     /* int64_t; decimal, range [min, max] */
    YK_DUR,     /* int64_t milliseconds; "50ms" "15s" "5m" "24h" "3d" "1h30m" */
    YK_SIZE,    /* int64_t bytes; "512" "16k" "10MiB" "1G" (k = 1024) */
    YK_ENUM,    /* int; index into enums[] (NULL-terminated names) */
    YK_ADDR,    /* struct units_addr; numeric "IP:port", "[v6]:port", "*:port" */
    YK_STRLIST, /* struct yt_strv; a scalar or a list of scalars */
    YK_MAP,     /* nested map filled by sub (a table) into obj + off */
    YK_SEQ,     /* list of maps: elem_size each, array pointer at off,
                   size_t count at off2, each filled by sub */
    YK_FN,      /* custom: fn(node, obj + off, ctx) */
};

#define YK_REQUIRED 0x1u /* the key must be present */
#define YK_HIDDEN 0x2u   /* not printed by yt_print (secrets print as "***") */
#define YK_SECRET 0x4u   /* printed as "***" */

struct yt_strv {
    const char **v;
    size_t n;
};

struct yt_key {
    const char *name;
    enum yt_ktype type;
    size_t off;
    const char *def;  /* default in YAML scalar text, parsed like the file's;
                         NULL = none (zero / NULL / not set) */
    int64_t min, max; /* numeric range for INT, I64, DUR, SIZE; both 0 = any >= 0 */
    const char *const *enums;
    const struct yt_key *sub;                                            /* YK_MAP, YK_SEQ */
    size_t off2, elem_size;                                              /* YK_SEQ */
    int (*fn)(const struct yt_node *n, void *field, struct yt_ctx *ctx); /* YK_FN */
    void (*print)(FILE *f, const void *field);                           /* YK_FN */
    unsigned flags;
    /* The terminating entry (name == NULL) may carry a validator run after the
     * whole map is applied, with the map node for positions. */
    int (*check)(void *obj, const struct yt_node *map, struct yt_ctx *ctx);
};

struct yt_ctx {
    struct yt_doc *doc; /* allocations for the filled structures */
    const char *dir;    /* base for YK_PATH; NULL = leave relative */
    char *err;
    size_t errlen;
    void *user; /* for the caller's handlers */
};

/* Fill obj from map according to keys: every key is checked (unknown keys
 * are errors with a "did you mean" hint, wrong types, ranges and enums say
 * what is allowed), absent keys take their default. map may be NULL (all
 * defaults). Stops at the first error. */
int yt_apply(const struct yt_key *keys, const struct yt_node *map, void *obj, struct yt_ctx *ctx);

/* Print obj's effective settings as YAML, one key per line, at indent. */
void yt_print(FILE *f, const struct yt_key *keys, const void *obj, int indent);

/* Write "FILE:LINE:COL: message" for node n (or "FILE: message" when n is
 * NULL) into ctx->err; returns -EINVAL so handlers can `return yt_err(...)`. */
int yt_err(struct yt_ctx *ctx, const struct yt_node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Scalar helpers for YK_FN handlers: 0 or yt_err()'s code. */
int yt_want(struct yt_ctx *ctx, const struct yt_node *n, enum yt_type t, const char *what);
int yt_scalar_str(struct yt_ctx *ctx, const struct yt_node *n, const char **out);
int yt_scalar_bool(struct yt_ctx *ctx, const struct yt_node *n, bool *out);

/* The closest candidate to word within a small edit distance, or NULL. */
const char *yt_suggest(const char *word, const char *const *candidates, size_t n);

#endif
