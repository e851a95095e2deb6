/*
 * beas: WBXML writing and scanning, the command table and the two query
 * forms, for the bench tools. See beas.h for why this is not eas/.
 *
 * WBXML as ActiveSync uses it (MS-ASWBXML 2.1.1): header 03 01 6A 00
 * (version 1.3, unknown public id, UTF-8, empty string table), then tags
 * (token | 0x40 when the element has content), SWITCH_PAGE (0x00 page),
 * END (0x01), STR_I (0x03 ... 0x00) and OPAQUE (0xC3 mb_u_int32 bytes).
 */
#include "bench/lib/beas.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define WB_SWITCH 0x00
#define WB_END 0x01
#define WB_ENTITY 0x02
#define WB_STR_I 0x03
#define WB_LITERAL 0x04
#define WB_STR_T 0x83
#define WB_OPAQUE 0xC3
#define WB_CONTENT 0x40
#define WB_ATTRS 0x80

/* ---- writer ---- */

static void put(struct bwx *w, const void *p, size_t n)
{
    if (w->err)
        return;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n)
            cap *= 2;
        unsigned char *b = realloc(w->buf, cap);
        if (!b) {
            w->err = -1;
            return;
        }
        w->buf = b;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void put1(struct bwx *w, unsigned char c)
{
    put(w, &c, 1);
}

static void page(struct bwx *w, int pg)
{
    if (w->page != pg) {
        put1(w, WB_SWITCH);
        put1(w, (unsigned char)pg);
        w->page = pg;
    }
}

void bwx_begin(struct bwx *w)
{
    memset(w, 0, sizeof(*w));
    static const unsigned char hdr[] = {0x03, 0x01, 0x6A, 0x00};
    put(w, hdr, sizeof(hdr));
}

void bwx_open(struct bwx *w, int pg, int tok)
{
    page(w, pg);
    put1(w, (unsigned char)(tok | WB_CONTENT));
    w->depth++;
}

void bwx_close(struct bwx *w)
{
    put1(w, WB_END);
    w->depth--;
}

void bwx_text(struct bwx *w, int pg, int tok, const char *s)
{
    bwx_open(w, pg, tok);
    put1(w, WB_STR_I);
    put(w, s, strlen(s) + 1);
    bwx_close(w);
}

void bwx_int(struct bwx *w, int pg, int tok, long v)
{
    char s[32];
    snprintf(s, sizeof(s), "%ld", v);
    bwx_text(w, pg, tok, s);
}

void bwx_filler(struct bwx *w, int pg, int tok, size_t n)
{
    static const char line[] = "Lorem ipsum dolor sit amet, simulated mail body text. ";
    bwx_open(w, pg, tok);
    put1(w, WB_STR_I);
    while (n > 0 && !w->err) {
        size_t k = n < sizeof(line) - 1 ? n : sizeof(line) - 1;
        put(w, line, k);
        n -= k;
    }
    put1(w, 0);
    bwx_close(w);
}

void bwx_free(struct bwx *w)
{
    free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}

/* ---- scanner ---- */

struct scan {
    const unsigned char *p, *end;
    int page;
};

static int mb_u_int32(struct scan *s, uint32_t *v)
{
    uint32_t r = 0;
    for (int i = 0; i < 5; i++) {
        if (s->p >= s->end)
            return -1;
        unsigned char c = *s->p++;
        r = (r << 7) | (c & 0x7F);
        if (!(c & 0x80)) {
            *v = r;
            return 0;
        }
    }
    return -1;
}

static int header(struct scan *s)
{
    uint32_t v;
    if (s->p >= s->end)
        return -1;
    s->p++;                    /* version */
    if (mb_u_int32(s, &v) < 0) /* public id */
        return -1;
    if (v == 0 && mb_u_int32(s, &v) < 0) /* string-table index of the id */
        return -1;
    if (mb_u_int32(s, &v) < 0) /* charset */
        return -1;
    if (mb_u_int32(s, &v) < 0 || v > (uint32_t)(s->end - s->p)) /* string table */
        return -1;
    s->p += v;
    return 0;
}

/* Walks the document; for every tag calls fn (may be NULL). fn returns
 * nonzero to stop early, which makes walk return that value. */
typedef int (*tag_fn)(void *arg, struct scan *s, int page, int tok, int content);

static int walk(const unsigned char *buf, size_t len, tag_fn fn, void *arg)
{
    struct scan s = {buf, buf + len, 0};
    if (header(&s) < 0)
        return -1;
    int depth = 0, seen_root = 0;
    while (s.p < s.end) {
        unsigned char c = *s.p++;
        uint32_t n;
        switch (c) {
        case WB_SWITCH:
            if (s.p >= s.end)
                return -1;
            s.page = *s.p++;
            break;
        case WB_END:
            if (--depth < 0)
                return -1;
            break;
        case WB_STR_I: {
            const unsigned char *z = memchr(s.p, 0, (size_t)(s.end - s.p));
            if (!z || depth == 0)
                return -1;
            s.p = z + 1;
            break;
        }
        case WB_OPAQUE:
            if (mb_u_int32(&s, &n) < 0 || n > (uint32_t)(s.end - s.p) || depth == 0)
                return -1;
            s.p += n;
            break;
        case WB_ENTITY:
        case WB_STR_T:
            if (mb_u_int32(&s, &n) < 0 || depth == 0)
                return -1;
            break;
        default:
            if ((c & 0x3F) < 5 || (c & WB_ATTRS)) /* global tokens / attributes: unused by EAS */
                return -1;
            if (depth == 0 && seen_root)
                return -1; /* a second root */
            seen_root = 1;
            if (fn) {
                int r = fn(arg, &s, s.page, c & 0x3F, (c & WB_CONTENT) != 0);
                if (r)
                    return r;
            }
            if (c & WB_CONTENT)
                depth++;
            break;
        }
    }
    return depth == 0 && seen_root ? 0 : -1;
}

int bwx_check(const unsigned char *buf, size_t len)
{
    return walk(buf, len, NULL, NULL) == 0 ? 0 : -1;
}

struct find {
    int page, tok;
    char *out;
    size_t n;
    int len;
};

static int find_fn(void *arg, struct scan *s, int pg, int tok, int content)
{
    struct find *f = arg;
    if (pg != f->page || tok != f->tok)
        return 0;
    f->len = 0;
    if (f->n)
        f->out[0] = '\0';
    if (content && s->p < s->end && *s->p == WB_STR_I) {
        const unsigned char *z = memchr(s->p + 1, 0, (size_t)(s->end - s->p - 1));
        if (!z)
            return -1;
        size_t l = (size_t)(z - s->p - 1);
        if (f->n) {
            size_t k = l < f->n - 1 ? l : f->n - 1;
            memcpy(f->out, s->p + 1, k);
            f->out[k] = '\0';
        }
        f->len = (int)l;
    }
    return 1;
}

int bwx_find_text(const unsigned char *buf, size_t len, int pg, int tok, char *out, size_t n)
{
    struct find f = {pg, tok, out, n, -1};
    if (n)
        out[0] = '\0';
    return walk(buf, len, find_fn, &f) == 1 ? f.len : -1;
}

int bwx_has(const unsigned char *buf, size_t len, int pg, int tok)
{
    struct find f = {pg, tok, NULL, 0, -1};
    return walk(buf, len, find_fn, &f) == 1;
}

/* ---- commands (MS-ASHTTP 2.2.1.1.1.1.2) ---- */

static const struct {
    const char *name;
    int code;
} cmds[] = {
    {"Sync", 0},
    {"SendMail", 1},
    {"SmartForward", 2},
    {"SmartReply", 3},
    {"GetAttachment", 4},
    {"FolderSync", 9},
    {"FolderCreate", 10},
    {"FolderDelete", 11},
    {"FolderUpdate", 12},
    {"MoveItems", 13},
    {"GetItemEstimate", 14},
    {"MeetingResponse", 15},
    {"Search", 16},
    {"Settings", 17},
    {"Ping", 18},
    {"ItemOperations", 19},
    {"Provision", 20},
    {"ResolveRecipients", 21},
    {"ValidateCert", 22},
};

int beas_cmd_code(const char *name)
{
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (strcasecmp(cmds[i].name, name) == 0)
            return cmds[i].code;
    return -1;
}

const char *beas_cmd_name(int code)
{
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (cmds[i].code == code)
            return cmds[i].name;
    return NULL;
}

/* ---- query forms ---- */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64val(int c)
{
    const char *p = c ? strchr(b64chars, c) : NULL;
    return p ? (int)(p - b64chars) : -1;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Percent-decode src[0..len) into dst (size n). Returns length or -1. */
static int pct_decode(const char *src, size_t len, char *dst, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)src[i];
        if (c == '%' && i + 2 < len + 0 && hexval(src[i + 1]) >= 0 && hexval(src[i + 2]) >= 0) {
            c = hexval(src[i + 1]) * 16 + hexval(src[i + 2]);
            i += 2;
        }
        if (o + 1 >= n)
            return -1;
        dst[o++] = (char)c;
    }
    dst[o] = '\0';
    return (int)o;
}

static int parse_plain(const char *q, size_t len, struct beas_query *out)
{
    const char *p = q, *end = q + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        if (eq) {
            size_t kl = (size_t)(eq - p);
            char *dst = NULL;
            size_t dn = 0;
            if (kl == 3 && strncasecmp(p, "Cmd", 3) == 0)
                dst = out->cmd, dn = sizeof(out->cmd);
            else if (kl == 4 && strncasecmp(p, "User", 4) == 0)
                dst = out->user, dn = sizeof(out->user);
            else if (kl == 8 && strncasecmp(p, "DeviceId", 8) == 0)
                dst = out->device_id, dn = sizeof(out->device_id);
            else if (kl == 10 && strncasecmp(p, "DeviceType", 10) == 0)
                dst = out->device_type, dn = sizeof(out->device_type);
            if (dst && pct_decode(eq + 1, (size_t)(stop - eq - 1), dst, dn) < 0)
                return -1;
        }
        p = stop + 1;
    }
    return out->cmd[0] ? 0 : -1;
}

static int b64_decode(const char *s, size_t len, unsigned char *out, size_t n)
{
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '=')
            break;
        int v = b64val((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= n)
                return -1;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return (int)o;
}

/* One length-prefixed field of the base64 form into dst. */
static int take(const unsigned char **p, const unsigned char *end, char *dst, size_t n)
{
    if (*p >= end)
        return -1;
    size_t l = **p;
    (*p)++;
    if (l > (size_t)(end - *p))
        return -1;
    if (dst) {
        size_t k = l < n - 1 ? l : n - 1;
        memcpy(dst, *p, k);
        dst[k] = '\0';
    }
    *p += l;
    return 0;
}

static int parse_b64(const char *q, size_t len, struct beas_query *out)
{
    char text[1024];
    unsigned char raw[768];
    int tl = pct_decode(q, len, text, sizeof(text));
    if (tl < 0)
        return -1;
    int rl = b64_decode(text, (size_t)tl, raw, sizeof(raw));
    if (rl < 5)
        return -1;
    const unsigned char *p = raw, *end = raw + rl;
    unsigned ver = p[0];
    const char *name = beas_cmd_name(p[1]);
    if (!name || ver < 10)
        return -1;
    snprintf(out->proto, sizeof(out->proto), "%u.%u", ver / 10, ver % 10);
    snprintf(out->cmd, sizeof(out->cmd), "%s", name);
    p += 4; /* version, command, locale (2) */
    if (take(&p, end, out->device_id, sizeof(out->device_id)) < 0)
        return -1;
    if (take(&p, end, NULL, 0) < 0) /* policy key */
        return -1;
    if (take(&p, end, out->device_type, sizeof(out->device_type)) < 0)
        return -1;
    while (p < end) { /* command parameters: tag, length, value */
        unsigned tag = *p++;
        if (take(&p, end, tag == 8 ? out->user : NULL, sizeof(out->user)) < 0)
            return -1;
    }
    out->base64 = 1;
    return 0;
}

/* The plain form names its parameters; a base64 query cannot start with
 * "Cmd=" (that would mean protocol version 8..11, none of which exists). */
static int is_plain(const char *q, size_t len)
{
    for (size_t i = 0; i + 4 <= len; i++)
        if ((i == 0 || q[i - 1] == '&') && strncasecmp(q + i, "Cmd=", 4) == 0)
            return 1;
    return 0;
}

int beas_parse_query(const char *q, size_t len, struct beas_query *out)
{
    memset(out, 0, sizeof(*out));
    if (len == 0)
        return -1;
    return is_plain(q, len) ? parse_plain(q, len, out) : parse_b64(q, len, out);
}

static int b64_encode(const unsigned char *in, size_t len, char *out, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        if (o + 4 >= n)
            return -1;
        out[o++] = b64chars[(v >> 18) & 63];
        out[o++] = b64chars[(v >> 12) & 63];
        out[o++] = i + 1 < len ? b64chars[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? b64chars[v & 63] : '=';
    }
    out[o] = '\0';
    return (int)o;
}

static int put_field(unsigned char *raw, size_t *o, size_t cap, const char *s)
{
    size_t l = strlen(s);
    if (l > 255 || *o + 1 + l > cap)
        return -1;
    raw[(*o)++] = (unsigned char)l;
    memcpy(raw + *o, s, l);
    *o += l;
    return 0;
}

int beas_b64_query(char *out, size_t n, const char *proto, const char *cmd, const char *user,
                   const char *device_id, const char *device_type)
{
    unsigned major = 0, minor = 0;
    int code = beas_cmd_code(cmd);
    if (code < 0 || sscanf(proto, "%u.%u", &major, &minor) != 2 || major * 10 + minor > 255)
        return -1;
    unsigned char raw[600];
    size_t o = 0;
    raw[o++] = (unsigned char)(major * 10 + minor);
    raw[o++] = (unsigned char)code;
    raw[o++] = 0x09; /* locale 0x0409 (en-US), little-endian */
    raw[o++] = 0x04;
    if (put_field(raw, &o, sizeof(raw), device_id) < 0)
        return -1;
    raw[o++] = 0; /* no policy key */
    if (put_field(raw, &o, sizeof(raw), device_type) < 0)
        return -1;
    if (user && *user) {
        raw[o++] = 8; /* User */
        if (put_field(raw, &o, sizeof(raw), user) < 0)
            return -1;
    }
    /* '+', '/' and '=' are legal in a query, but percent-encode them as
     * clients do so that the proxy's decoder is exercised. */
    char b64[820];
    int bl = b64_encode(raw, o, b64, sizeof(b64));
    if (bl < 0)
        return -1;
    size_t w = 0;
    for (int i = 0; i < bl; i++) {
        const char *rep = b64[i] == '+'   ? "%2B"
                          : b64[i] == '/' ? "%2F"
                          : b64[i] == '=' ? "%3D"
                                          : NULL;
        size_t k = rep ? 3 : 1;
        if (w + k >= n)
            return -1;
        if (rep)
            memcpy(out + w, rep, 3);
        else
            out[w] = b64[i];
        w += k;
    }
    out[w] = '\0';
    return (int)w;
}

int beas_plain_query(char *out, size_t n, const char *cmd, const char *user, const char *device_id,
                     const char *device_type)
{
    int r = snprintf(out, n, "Cmd=%s&User=%s&DeviceId=%s&DeviceType=%s", cmd, user, device_id,
                     device_type);
    return r < 0 || (size_t)r >= n ? -1 : r;
}
