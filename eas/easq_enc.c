/*
 * easq_enc: write a request identity back as a query, in either form.
 *
 * The load generator uses this to speak like real phones (most send the
 * base64 form; older ones and some Android clients the plain form), and the
 * tests use it for round trips through the parser. The output is canonical:
 * padded base64, percent-escapes in upper case, parameters in one fixed
 * order, so equal identities give equal bytes.
 */
#include "eas/easq.h"

#include "common/b64.h"

#include <string.h>

/* The largest byte sequence the fields allow: fixed part, DeviceId, policy
 * key, DeviceType and seven tagged parameters of at most 255 bytes. */
#define EASQ_ENC_BYTES_MAX (5 + EASQ_DEVICEID_MAX + 5 + 1 + EASQ_STR_MAX + 7 * (2 + EASQ_STR_MAX))

struct bytebuf {
    unsigned char b[EASQ_ENC_BYTES_MAX];
    size_t n;
};

static void put_byte(struct bytebuf *bb, unsigned v)
{
    bb->b[bb->n++] = (unsigned char)v;
}

/* Length-prefixed string; the struct bounds every field to 255 bytes. */
static void put_lstr(struct bytebuf *bb, const char *s)
{
    size_t len = strnlen(s, EASQ_STR_MAX);
    put_byte(bb, (unsigned)len);
    memcpy(bb->b + bb->n, s, len);
    bb->n += len;
}

static void put_param(struct bytebuf *bb, unsigned tag, const char *s)
{
    if (s[0] == '\0')
        return;
    put_byte(bb, tag);
    put_lstr(bb, s);
}

static uint8_t options_byte(const struct easq_ident *id)
{
    uint8_t o = id->options;
    if (id->save_in_sent)
        o |= EASQ_OPT_SAVEINSENT;
    if (id->accept_multipart)
        o |= EASQ_OPT_ACCEPTMULTIPART;
    return o;
}

int easq_encode_b64(const struct easq_ident *id, char *out, size_t out_size)
{
    struct bytebuf bb;
    if (!id || !out)
        return EASQ_E_INVAL;
    int code = easq_cmd_code(id->cmd);
    size_t dlen = strnlen(id->device_id, EASQ_DEVICEID_MAX + 1);
    if (code < 0 || dlen == 0 || dlen > EASQ_DEVICEID_MAX || id->version < 0 || id->version > 255)
        return EASQ_E_INVAL;

    bb.n = 0;
    put_byte(&bb, id->version ? (unsigned)id->version : 141);
    put_byte(&bb, (unsigned)code);
    put_byte(&bb, id->locale & 0xff);
    put_byte(&bb, id->locale >> 8);
    put_lstr(&bb, id->device_id);
    if (id->has_policy_key) {
        put_byte(&bb, 4);
        for (int i = 0; i < 4; i++)
            put_byte(&bb, (id->policy_key >> (8 * i)) & 0xff);
    } else {
        put_byte(&bb, 0);
    }
    put_lstr(&bb, id->device_type);
    put_param(&bb, 0, id->attachment_name);
    put_param(&bb, 1, id->collection_id);
    put_param(&bb, 3, id->item_id);
    put_param(&bb, 4, id->long_id);
    put_param(&bb, 6, id->occurrence);
    uint8_t opt = options_byte(id);
    if (id->has_options || opt) {
        put_byte(&bb, 7);
        put_byte(&bb, 1);
        put_byte(&bb, opt);
    }
    put_param(&bb, 8, id->query_user);

    size_t o;
    if (b64_encode(bb.b, bb.n, out, out_size, 0, &o) < 0)
        return EASQ_E_BUFSIZE;
    return (int)o;
}

/* ---- plain form ---------------------------------------------------------- */

struct textbuf {
    char *p;
    size_t cap, n;
    bool full;
};

static void put_raw(struct textbuf *t, const char *s, size_t len)
{
    if (t->full || t->n + len + 1 > t->cap) {
        t->full = true;
        return;
    }
    memcpy(t->p + t->n, s, len);
    t->n += len;
}

/* RFC 3986 unreserved characters stay; everything else is %XX. */
static void put_escaped(struct textbuf *t, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            put_raw(t, s, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            put_raw(t, e, 3);
        }
    }
}

static void put_kv(struct textbuf *t, const char *name, const char *value, bool always)
{
    if (!always && value[0] == '\0')
        return;
    if (t->n)
        put_raw(t, "&", 1);
    put_raw(t, name, strlen(name));
    put_raw(t, "=", 1);
    put_escaped(t, value);
}

int easq_encode_plain(const struct easq_ident *id, char *out, size_t out_size)
{
    if (!id || !out || out_size == 0)
        return EASQ_E_INVAL;
    if (easq_cmd_code(id->cmd) < 0 && id->cmd != EASQ_CMD_FIND)
        return EASQ_E_INVAL;
    struct textbuf t = {out, out_size, 0, false};
    put_kv(&t, "Cmd", easq_cmd_name(id->cmd), true);
    put_kv(&t, "User", id->query_user, false);
    put_kv(&t, "DeviceId", id->device_id, true);
    put_kv(&t, "DeviceType", id->device_type, true);
    put_kv(&t, "AttachmentName", id->attachment_name, false);
    put_kv(&t, "CollectionId", id->collection_id, false);
    put_kv(&t, "ItemId", id->item_id, false);
    put_kv(&t, "LongId", id->long_id, false);
    put_kv(&t, "Occurrence", id->occurrence, false);
    if (id->save_in_sent)
        put_kv(&t, "SaveInSent", "T", true);
    if (t.full)
        return EASQ_E_BUFSIZE;
    out[t.n] = '\0';
    return (int)t.n;
}
