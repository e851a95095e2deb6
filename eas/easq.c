/*
 * easq: ActiveSync request identity from the URI query and the headers.
 *
 * The proxy runs this on every request, so it is a single pass over bytes
 * that are already in memory: no allocation, no copies beyond the bounded
 * fields of struct easq_ident, and every length is checked before it is
 * trusted. The two query forms (MS-ASHTTP 2.2.1.1.1.1 base64, 2.2.1.1.1.2
 * plain) fill the same fields; headers are kept per source in id->raw and
 * easq_finish() merges them, so the order of the calls does not matter.
 */
#include "eas/easq.h"

#include "common/b64.h"
#include "eas/easq_int.h"
#include "eas/jwt.h"
#include "eas/ntlm.h"

#include <string.h>

/* Upper bound of a base64 query after percent-decoding: the largest byte
 * sequence the fields allow (about 2.1 KiB) in base64, with room to spare. */
#define EASQ_B64_TEXT_MAX 4096
/* Bound of a decoded Basic credential. */
#define EASQ_AUTH_MAX 1024
/* An NTLM message is well under 2 KiB; a Kerberos ticket can be tens of
 * KiB and is unreadable anyway, so it is not decoded past this. */
#define EASQ_NTLM_MAX (16 * 1024)

/* Bits of id->raw.seen, one per parameter, for duplicate detection. */
enum {
    SEEN_CMD = 1u << 0,
    SEEN_USER = 1u << 1,
    SEEN_DEVICEID = 1u << 2,
    SEEN_DEVICETYPE = 1u << 3,
    SEEN_ATTACHMENT = 1u << 4,
    SEEN_COLLECTION = 1u << 5,
    SEEN_ITEM = 1u << 6,
    SEEN_LONGID = 1u << 7,
    SEEN_OCCURRENCE = 1u << 8,
    SEEN_SAVEINSENT = 1u << 9,
    SEEN_OPTIONS = 1u << 10,
    SEEN_H_VERSION = 1u << 16,
    SEEN_H_POLICYKEY = 1u << 17,
    SEEN_H_UA = 1u << 18,
    SEEN_H_AUTH = 1u << 19,
    SEEN_H_MULTIPART = 1u << 20,
};

/* The field or header a bit stands for, named for error reports. */
static const char *seen_name(unsigned bit)
{
    switch (bit) {
    case SEEN_CMD:
        return "Cmd";
    case SEEN_USER:
        return "User";
    case SEEN_DEVICEID:
        return "DeviceId";
    case SEEN_DEVICETYPE:
        return "DeviceType";
    case SEEN_ATTACHMENT:
        return "AttachmentName";
    case SEEN_COLLECTION:
        return "CollectionId";
    case SEEN_ITEM:
        return "ItemId";
    case SEEN_LONGID:
        return "LongId";
    case SEEN_OCCURRENCE:
        return "Occurrence";
    case SEEN_SAVEINSENT:
        return "SaveInSent";
    case SEEN_OPTIONS:
        return "Options";
    case SEEN_H_VERSION:
        return "MS-ASProtocolVersion";
    case SEEN_H_POLICYKEY:
        return "X-MS-PolicyKey";
    case SEEN_H_UA:
        return "User-Agent";
    case SEEN_H_AUTH:
        return "Authorization";
    case SEEN_H_MULTIPART:
        return "MS-ASAcceptMultiPart";
    }
    return "query";
}

/* ---- command names ---------------------------------------------------- */

static const char *const cmd_names[EASQ_CMD_COUNT] = {
    [EASQ_CMD_SYNC] = "Sync",
    [EASQ_CMD_SENDMAIL] = "SendMail",
    [EASQ_CMD_SMARTFORWARD] = "SmartForward",
    [EASQ_CMD_SMARTREPLY] = "SmartReply",
    [EASQ_CMD_GETATTACHMENT] = "GetAttachment",
    [EASQ_CMD_FOLDERSYNC] = "FolderSync",
    [EASQ_CMD_FOLDERCREATE] = "FolderCreate",
    [EASQ_CMD_FOLDERDELETE] = "FolderDelete",
    [EASQ_CMD_FOLDERUPDATE] = "FolderUpdate",
    [EASQ_CMD_MOVEITEMS] = "MoveItems",
    [EASQ_CMD_GETITEMESTIMATE] = "GetItemEstimate",
    [EASQ_CMD_MEETINGRESPONSE] = "MeetingResponse",
    [EASQ_CMD_SEARCH] = "Search",
    [EASQ_CMD_SETTINGS] = "Settings",
    [EASQ_CMD_PING] = "Ping",
    [EASQ_CMD_ITEMOPERATIONS] = "ItemOperations",
    [EASQ_CMD_PROVISION] = "Provision",
    [EASQ_CMD_RESOLVERECIPIENTS] = "ResolveRecipients",
    [EASQ_CMD_VALIDATECERT] = "ValidateCert",
    [EASQ_CMD_FIND] = "Find",
    [EASQ_CMD_OPTIONS] = "OPTIONS",
    [EASQ_CMD_UNKNOWN] = "Unknown",
};

const char *easq_cmd_name(enum easq_cmd cmd)
{
    if ((int)cmd < 0 || cmd >= EASQ_CMD_COUNT || !cmd_names[cmd])
        return "Unknown";
    return cmd_names[cmd];
}

/* Case-insensitive compare of s[0..len) with the NUL-terminated lit, which
 * holds letters, digits and '-' only. Length first: most candidates differ
 * there, and strlen of a literal folds to a constant. */
static inline bool eq_nocase(const char *s, size_t len, const char *lit)
{
    if (len != strlen(lit))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char a = (unsigned char)s[i], b = (unsigned char)lit[i];
        if (a != b && !(((a | 0x20) == (b | 0x20)) && (b | 0x20) >= 'a' && (b | 0x20) <= 'z'))
            return false;
    }
    return true;
}

enum easq_cmd easq_cmd_from_name(const char *name, size_t len)
{
    if (!name)
        return EASQ_CMD_UNKNOWN;
    /* OPTIONS is an HTTP method, never a Cmd= value: not matched here. */
    for (int c = 0; c < EASQ_CMD_OPTIONS; c++)
        if (cmd_names[c] && eq_nocase(name, len, cmd_names[c]))
            return (enum easq_cmd)c;
    return EASQ_CMD_UNKNOWN;
}

enum easq_cmd easq_cmd_from_code(int code)
{
    if (code < 0 || code > EASQ_CMD_VALIDATECERT || !cmd_names[code])
        return EASQ_CMD_UNKNOWN;
    return (enum easq_cmd)code;
}

int easq_cmd_code(enum easq_cmd cmd)
{
    if ((int)cmd < 0 || cmd > EASQ_CMD_VALIDATECERT || !cmd_names[cmd])
        return -1;
    return (int)cmd;
}

const char *easq_strerror(int err)
{
    switch (err) {
    case EASQ_OK:
        return "ok";
    case EASQ_E_EMPTY:
        return "no query string";
    case EASQ_E_B64:
        return "invalid base64 (character, padding or trailing bits)";
    case EASQ_E_B64_TRUNCATED:
        return "truncated base64 (cut inside a 4-character group)";
    case EASQ_E_TRUNCATED:
        return "base64 query ends inside a fixed field";
    case EASQ_E_LENGTH:
        return "a length field points past the end of the base64 query";
    case EASQ_E_DEVICEID_LEN:
        return "DeviceId empty or longer than 32 characters";
    case EASQ_E_DEVICEID_CHARS:
        return "DeviceId must be letters and digits only";
    case EASQ_E_DEVICEID_MISSING:
        return "DeviceId missing";
    case EASQ_E_DEVICETYPE_MISSING:
        return "DeviceType missing";
    case EASQ_E_POLICYKEY_LEN:
        return "base64 policy key length must be 0 or 4";
    case EASQ_E_POLICYKEY:
        return "X-MS-PolicyKey is not a 32-bit unsigned integer";
    case EASQ_E_DUPLICATE:
        return "parameter or header given twice";
    case EASQ_E_PERCENT:
        return "bad percent-escape";
    case EASQ_E_NUL:
        return "NUL byte in the request";
    case EASQ_E_CTRL:
        return "control character in a value";
    case EASQ_E_UNKNOWN_CMD:
        return "unknown command";
    case EASQ_E_CMD_MISSING:
        return "Cmd missing";
    case EASQ_E_PARAM_TAG:
        return "unknown base64 parameter tag";
    case EASQ_E_PARAM_VALUE:
        return "invalid parameter value";
    case EASQ_E_TOO_LONG:
        return "value too long";
    case EASQ_E_SYNTAX:
        return "malformed query (empty name or missing '=')";
    case EASQ_E_VERSION:
        return "malformed protocol version";
    case EASQ_E_AUTH:
        return "malformed Authorization header";
    case EASQ_E_JWT:
        return "Bearer token is not a JWT with a upn/unique_name/preferred_username";
    case EASQ_E_BUFSIZE:
        return "output buffer too small";
    case EASQ_E_INVAL:
        return "invalid argument";
    case EASQ_E_PARAM_NAME:
        return "query parameter name not letters, digits, '.', '_' or '-'";
    }
    return "unknown error";
}

/* ---- small helpers ----------------------------------------------------- */

/* Copy raw bytes into a bounded, NUL-terminated field, checking each. */
static int set_bytes(char *dst, size_t cap, const unsigned char *src, size_t len)
{
    dst[0] = '\0';
    if (len > cap - 1)
        return EASQ_E_TOO_LONG;
    for (size_t i = 0; i < len; i++) {
        int rc = easq_check_byte(src[i]);
        if (rc) {
            dst[0] = '\0';
            return rc;
        }
        dst[i] = (char)src[i];
    }
    dst[len] = '\0';
    return 0;
}

/* Percent-decode src into dst (cap includes the NUL). '+' stays '+':
 * MS-ASHTTP queries are URIs, not HTML form data. With dst NULL the escapes
 * and bytes are only validated. */
static int pct_decode_raw(char *dst, size_t cap, const char *src, size_t len, size_t *out_len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '%') {
            if (i + 2 >= len)
                return EASQ_E_PERCENT;
            int hi = easq_hexval((unsigned char)src[i + 1]),
                lo = easq_hexval((unsigned char)src[i + 2]);
            if (hi < 0 || lo < 0)
                return EASQ_E_PERCENT;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        int rc = easq_check_byte(c);
        if (rc)
            return rc;
        if (!dst)
            continue;
        if (o >= cap - 1)
            return EASQ_E_TOO_LONG;
        dst[o++] = (char)c;
    }
    if (dst)
        dst[o] = '\0';
    if (out_len)
        *out_len = o;
    return 0;
}

/* On error the field is left empty, never unterminated: callers may still
 * call easq_finish() or print the struct after a failed parse. */
static int pct_decode(char *dst, size_t cap, const char *src, size_t len, size_t *out_len)
{
    int rc = pct_decode_raw(dst, cap, src, len, out_len);
    if (rc)
        dst[0] = '\0';
    return rc;
}

/* Validate percent-escapes and bytes without keeping the value. */
static int pct_check(const char *src, size_t len)
{
    return pct_decode_raw(NULL, 0, src, len, NULL);
}

/* Base64 (common/b64) with its errors in easq's terms. Padding is optional
 * (clients leave it out) but, if present, must complete the last group;
 * leftover bits must be zero so that one byte sequence has one spelling. */
static int b64_easq(const char *src, size_t len, unsigned char *dst, size_t cap, size_t *out_len)
{
    switch (b64_decode(src, len, dst, cap, B64_NOPAD, out_len)) {
    case 0:
        return 0;
    case B64_E_TRUNCATED:
        return EASQ_E_B64_TRUNCATED;
    case B64_E_SPACE:
        return EASQ_E_TOO_LONG;
    default:
        return EASQ_E_B64;
    }
}

/* ---- init --------------------------------------------------------------- */

void easq_init(struct easq_ident *id)
{
    /* Strings are reset by their first byte only: the struct is ~3 KiB
     * and the proxy initialises one per request. */
    id->cmd = EASQ_CMD_UNKNOWN;
    id->cmd_name[0] = '\0';
    id->err_field = NULL;
    id->form = EASQ_QUERY_NONE;
    id->version = 0;
    id->user[0] = id->domain[0] = id->query_user[0] = '\0';
    id->user_src = EASQ_USER_NONE;
    id->user_form = EASQ_FORM_PLAIN;
    id->device_id[0] = id->device_type[0] = '\0';
    id->has_policy_key = false;
    id->policy_key = 0;
    id->has_locale = false;
    id->locale = 0;
    id->user_agent[0] = '\0';
    id->user_agent_truncated = false;
    id->attachment_name[0] = id->collection_id[0] = id->item_id[0] = '\0';
    id->long_id[0] = id->occurrence[0] = '\0';
    id->has_options = false;
    id->options = 0;
    id->save_in_sent = false;
    id->accept_multipart = false;
    memset(&id->raw, 0,
           offsetof(struct easq_ident, raw.auth_user) - offsetof(struct easq_ident, raw));
    id->raw.auth_user[0] = '\0';
    id->raw.conn_user[0] = '\0';
    id->cred = EASQ_CRED_NONE;
    id->cred_err = 0;
    id->auth_err = 0;
}

const char *easq_cred_name(enum easq_cred c)
{
    switch (c) {
    case EASQ_CRED_BASIC:
        return "basic";
    case EASQ_CRED_BEARER:
        return "bearer";
    case EASQ_CRED_NTLM:
        return "ntlm";
    case EASQ_CRED_NTLM_HANDSHAKE:
        return "ntlm-handshake";
    case EASQ_CRED_UNREADABLE:
        return "unreadable";
    case EASQ_CRED_NONE:
    default:
        return "none";
    }
}

void easq_set_conn_user(struct easq_ident *id, const char *user)
{
    if (!id)
        return;
    size_t n = user ? strlen(user) : 0;
    if (n > EASQ_STR_MAX)
        n = 0; /* cannot happen for a name the proxy read; never cut one */
    memcpy(id->raw.conn_user, user ? user : "", n);
    id->raw.conn_user[n] = '\0';
}

/* ---- DeviceId ----------------------------------------------------------- */

static int check_device_id(const char *s, size_t len)
{
    if (len == 0 || len > EASQ_DEVICEID_MAX)
        return EASQ_E_DEVICEID_LEN;
    for (size_t i = 0; i < len; i++)
        if (!easq_is_alnum((unsigned char)s[i]))
            return EASQ_E_DEVICEID_CHARS;
    return 0;
}

int easq_deviceid_norm(const char *in, size_t len, char *out, size_t out_size)
{
    if (!in || !out)
        return EASQ_E_INVAL;
    int rc = check_device_id(in, len);
    if (rc)
        return rc;
    if (out_size < len + 1)
        return EASQ_E_BUFSIZE;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        out[i] = (c >= 'a' && c <= 'z') ? (char)(c - ('a' - 'A')) : c;
    }
    out[len] = '\0';
    return (int)len;
}

/* ---- plain query (MS-ASHTTP 2.2.1.1.1.2) ------------------------------- */

static int plain_param(struct easq_ident *id, const char *name, size_t nlen, const char *val,
                       size_t vlen)
{
    char *dst = NULL;
    size_t cap = EASQ_STR_MAX + 1;
    unsigned bit = 0;
    char buf[EASQ_STR_MAX + 1];
    size_t len;
    int rc;

    if (eq_nocase(name, nlen, "Cmd")) {
        bit = SEEN_CMD;
    } else if (eq_nocase(name, nlen, "User")) {
        bit = SEEN_USER, dst = id->query_user;
    } else if (eq_nocase(name, nlen, "DeviceId")) {
        bit = SEEN_DEVICEID;
    } else if (eq_nocase(name, nlen, "DeviceType")) {
        bit = SEEN_DEVICETYPE, dst = id->device_type;
    } else if (eq_nocase(name, nlen, "AttachmentName")) {
        bit = SEEN_ATTACHMENT, dst = id->attachment_name;
    } else if (eq_nocase(name, nlen, "CollectionId")) {
        bit = SEEN_COLLECTION, dst = id->collection_id;
    } else if (eq_nocase(name, nlen, "ItemId")) {
        bit = SEEN_ITEM, dst = id->item_id;
    } else if (eq_nocase(name, nlen, "LongId")) {
        bit = SEEN_LONGID, dst = id->long_id;
    } else if (eq_nocase(name, nlen, "Occurrence")) {
        bit = SEEN_OCCURRENCE, dst = id->occurrence;
    } else if (eq_nocase(name, nlen, "SaveInSent")) {
        bit = SEEN_SAVEINSENT;
    } else {
        /* Unknown parameters pass through to Exchange, but must still be
         * well-formed: a bad escape or NUL anywhere rejects the request. */
        id->err_field = "unknown parameter";
        return pct_check(val, vlen);
    }
    id->err_field = seen_name(bit);
    if (id->raw.seen & bit)
        return EASQ_E_DUPLICATE;
    id->raw.seen |= bit;

    if (dst)
        return pct_decode(dst, cap, val, vlen, &len);

    rc = pct_decode(buf, sizeof(buf), val, vlen, &len);
    if (rc)
        return rc;
    if (bit == SEEN_CMD) {
        if (len == 0)
            return EASQ_E_CMD_MISSING;
        id->cmd = easq_cmd_from_name(buf, len);
        if (id->cmd == EASQ_CMD_UNKNOWN)
            return EASQ_E_UNKNOWN_CMD;
        memcpy(id->cmd_name, cmd_names[id->cmd], strlen(cmd_names[id->cmd]) + 1);
        return 0;
    }
    if (bit == SEEN_DEVICEID) {
        rc = check_device_id(buf, len);
        if (rc)
            return rc;
        memcpy(id->device_id, buf, len + 1);
        return 0;
    }
    /* SaveInSent: "T" or "F" (MS-ASHTTP 2.2.1.1.1.2.5). */
    if (len != 1 || (buf[0] != 'T' && buf[0] != 'F'))
        return EASQ_E_PARAM_VALUE;
    id->raw.plain_save_in_sent = buf[0] == 'T';
    return 0;
}

/* Parameter names are read as sent, never decoded: ASP.NET decodes "%49"
 * and "%u0049" in names, so "Device%49d=B" would be a second DeviceId to
 * Exchange and an unknown parameter here. No ActiveSync name needs more
 * than these characters, so any other is refused. */
static bool param_name_ok(const char *n, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)n[i];
        if (!easq_is_alnum(c) && c != '.' && c != '_' && c != '-')
            return false;
    }
    return true;
}

static int parse_plain(struct easq_ident *id, const char *q, size_t len)
{
    size_t i = 0;
    id->form = EASQ_QUERY_PLAIN;
    while (i < len) {
        const char *p = q + i;
        const char *amp = memchr(p, '&', len - i);
        size_t plen = amp ? (size_t)(amp - p) : len - i;
        i += plen + 1;
        if (plen == 0)
            continue; /* "a=1&&b=2", trailing '&' */
        const char *eq = memchr(p, '=', plen);
        if (!eq || eq == p) {
            id->err_field = "query";
            return EASQ_E_SYNTAX;
        }
        size_t nlen = (size_t)(eq - p);
        if (!param_name_ok(p, nlen)) {
            id->err_field = "query";
            return EASQ_E_PARAM_NAME;
        }
        int rc = plain_param(id, p, nlen, eq + 1, plen - nlen - 1);
        if (rc)
            return rc;
    }
    if (!(id->raw.seen & SEEN_CMD)) {
        id->err_field = "Cmd";
        return EASQ_E_CMD_MISSING;
    }
    return 0;
}

/* ---- base64 query (MS-ASHTTP 2.2.1.1.1.1) ------------------------------ */

/* Base64 parameter tags (2.2.1.1.1.1.3). */
enum {
    TAG_ATTACHMENTNAME = 0,
    TAG_COLLECTIONID = 1,
    TAG_ITEMID = 3,
    TAG_LONGID = 4,
    TAG_OCCURRENCE = 6,
    TAG_OPTIONS = 7,
    TAG_USER = 8,
};

static const char hexdig[] = "0123456789ABCDEF";

/* The Device ID field is "a string or a GUID": letters and digits are kept
 * as sent; a 16-byte binary GUID becomes its 32 upper-case hex digits. */
static int b64_device_id(struct easq_ident *id, const unsigned char *p, size_t len)
{
    if (len > EASQ_DEVICEID_MAX)
        return EASQ_E_DEVICEID_LEN;
    if (check_device_id((const char *)p, len) == 0) {
        memcpy(id->device_id, p, len);
        id->device_id[len] = '\0';
        return 0;
    }
    if (len != 16)
        return EASQ_E_DEVICEID_CHARS;
    for (size_t i = 0; i < 16; i++) {
        id->device_id[2 * i] = hexdig[p[i] >> 4];
        id->device_id[2 * i + 1] = hexdig[p[i] & 15];
    }
    id->device_id[32] = '\0';
    return 0;
}

static int b64_param(struct easq_ident *id, unsigned tag, const unsigned char *v, size_t len)
{
    char *dst;
    unsigned bit;
    switch (tag) {
    case TAG_ATTACHMENTNAME:
        dst = id->attachment_name, bit = SEEN_ATTACHMENT;
        break;
    case TAG_COLLECTIONID:
        dst = id->collection_id, bit = SEEN_COLLECTION;
        break;
    case TAG_ITEMID:
        dst = id->item_id, bit = SEEN_ITEM;
        break;
    case TAG_LONGID:
        dst = id->long_id, bit = SEEN_LONGID;
        break;
    case TAG_OCCURRENCE:
        dst = id->occurrence, bit = SEEN_OCCURRENCE;
        break;
    case TAG_USER:
        dst = id->query_user, bit = SEEN_USER;
        break;
    case TAG_OPTIONS:
        dst = NULL, bit = SEEN_OPTIONS;
        break;
    default:
        id->err_field = "parameter tag";
        return EASQ_E_PARAM_TAG;
    }
    id->err_field = seen_name(bit);
    if (id->raw.seen & bit)
        return EASQ_E_DUPLICATE;
    id->raw.seen |= bit;
    if (!dst) {
        /* Options: "a single-byte bitmask". */
        if (len != 1)
            return EASQ_E_PARAM_VALUE;
        id->has_options = true;
        id->options = v[0];
        return 0;
    }
    return set_bytes(dst, EASQ_STR_MAX + 1, v, len);
}

static int parse_b64_bytes(struct easq_ident *id, const unsigned char *b, size_t n)
{
    size_t pos = 0, len;
    int rc;

    /* Protocol version, command code, locale (2, little-endian), DeviceId length. */
    id->err_field = "fixed fields";
    if (n < 5)
        return EASQ_E_TRUNCATED;
    id->err_field = "protocol version";
    if (b[0] == 0)
        return EASQ_E_VERSION;
    id->err_field = "command code";
    id->raw.q_version = b[0];
    id->cmd = easq_cmd_from_code(b[1]);
    if (id->cmd == EASQ_CMD_UNKNOWN)
        return EASQ_E_UNKNOWN_CMD;
    memcpy(id->cmd_name, cmd_names[id->cmd], strlen(cmd_names[id->cmd]) + 1);
    id->raw.seen |= SEEN_CMD;
    id->has_locale = true;
    id->locale = (uint16_t)(b[2] | b[3] << 8);
    len = b[4];
    pos = 5;
    id->err_field = "DeviceId";
    if (len == 0)
        return EASQ_E_DEVICEID_LEN;
    if (len > n - pos)
        return EASQ_E_LENGTH;
    rc = b64_device_id(id, b + pos, len);
    if (rc)
        return rc;
    id->raw.seen |= SEEN_DEVICEID;
    pos += len;

    /* Policy key: length 0 (absent) or 4, little-endian like the locale. */
    id->err_field = "policy key";
    if (pos >= n)
        return EASQ_E_TRUNCATED;
    len = b[pos++];
    if (len != 0 && len != 4)
        return EASQ_E_POLICYKEY_LEN;
    if (len > n - pos)
        return EASQ_E_LENGTH;
    if (len == 4) {
        id->raw.q_has_pk = true;
        id->raw.q_pk = (uint32_t)b[pos] | (uint32_t)b[pos + 1] << 8 | (uint32_t)b[pos + 2] << 16 |
                       (uint32_t)b[pos + 3] << 24;
        pos += 4;
    }

    /* DeviceType. */
    id->err_field = "DeviceType";
    if (pos >= n)
        return EASQ_E_TRUNCATED;
    len = b[pos++];
    if (len > n - pos)
        return EASQ_E_LENGTH;
    rc = set_bytes(id->device_type, sizeof(id->device_type), b + pos, len);
    if (rc)
        return rc;
    id->raw.seen |= SEEN_DEVICETYPE;
    pos += len;

    /* Tagged parameters to the end. */
    id->err_field = "parameters";
    while (pos < n) {
        if (n - pos < 2)
            return EASQ_E_TRUNCATED;
        unsigned tag = b[pos];
        len = b[pos + 1];
        pos += 2;
        if (len > n - pos)
            return EASQ_E_LENGTH;
        rc = b64_param(id, tag, b + pos, len);
        if (rc)
            return rc;
        pos += len;
    }
    return 0;
}

static int parse_b64(struct easq_ident *id, const char *q, size_t len)
{
    char text[EASQ_B64_TEXT_MAX + 1];
    unsigned char bytes[EASQ_B64_TEXT_MAX / 4 * 3];
    size_t n;
    int rc;

    id->form = EASQ_QUERY_BASE64;
    id->err_field = "base64 query";
    /* Some clients percent-encode '+', '/' and '='. */
    if (memchr(q, '%', len)) {
        rc = pct_decode(text, sizeof(text), q, len, &len);
        if (rc)
            return rc;
        q = text;
    } else if (len > EASQ_B64_TEXT_MAX) {
        return EASQ_E_TOO_LONG;
    }
    rc = b64_easq(q, len, bytes, sizeof(bytes), &n);
    if (rc)
        return rc;
    return parse_b64_bytes(id, bytes, n);
}

/* Plain if it has '&', or a '=' followed by anything but more '=' (base64
 * may only end in '='). A lone "Cmd=Sync" is plain; "jAAJ...==" is base64. */
static bool looks_plain(const char *q, size_t len)
{
    if (memchr(q, '&', len))
        return true;
    const char *eq = memchr(q, '=', len);
    if (!eq)
        return false;
    for (const char *p = eq; p < q + len; p++)
        if (*p != '=')
            return true;
    return false;
}

int easq_parse_query(struct easq_ident *id, const char *q, size_t len)
{
    if (!id || (!q && len))
        return EASQ_E_INVAL;
    id->err_field = "query";
    if (id->form != EASQ_QUERY_NONE)
        return EASQ_E_DUPLICATE;
    if (len == 0)
        return EASQ_E_EMPTY;
    if (memchr(q, '\0', len))
        return EASQ_E_NUL;
    return looks_plain(q, len) ? parse_plain(id, q, len) : parse_b64(id, q, len);
}

int easq_parse_target(struct easq_ident *id, const char *t, size_t len)
{
    if (!id || (!t && len))
        return EASQ_E_INVAL;
    const char *hash = t ? memchr(t, '#', len) : NULL;
    if (hash)
        len = (size_t)(hash - t);
    const char *qm = t ? memchr(t, '?', len) : NULL;
    if (qm)
        return easq_parse_query(id, qm + 1, len - (size_t)(qm + 1 - t));
    /* No '?': a path or URL carries no query; anything else is the query. */
    if (len == 0 || t[0] == '/' || (len >= 3 && memmem(t, len, "://", 3))) {
        id->err_field = "query";
        return EASQ_E_EMPTY;
    }
    return easq_parse_query(id, t, len);
}

/* ---- headers ------------------------------------------------------------ */

static void trim(const char **s, size_t *len)
{
    while (*len && (**s == ' ' || **s == '\t'))
        (*s)++, (*len)--;
    while (*len && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
        (*len)--;
}

int easq_parse_version(const char *s, size_t len)
{
    /* "N.N" or "NN.N": major 1..2 digits, minor one digit (MS-ASHTTP 2.2.1.1.2.6). */
    if (!s)
        return EASQ_E_VERSION;
    size_t i = 0;
    int major = 0;
    while (i < len && i < 3 && s[i] >= '0' && s[i] <= '9')
        major = major * 10 + (s[i++] - '0');
    if (i == 0 || i > 2 || i + 2 != len || s[i] != '.' || s[i + 1] < '0' || s[i + 1] > '9')
        return EASQ_E_VERSION;
    int v = major * 10 + (s[i + 1] - '0');
    return v > 0 ? v : EASQ_E_VERSION;
}

static int parse_u32(const char *s, size_t len, uint32_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 10)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int parse_basic(struct easq_ident *id, const char *v, size_t len)
{
    unsigned char buf[EASQ_AUTH_MAX];
    size_t n;
    /* Canonical base64 with its padding (RFC 4648; RFC 7617's token68):
     * another spelling of the same bytes is refused, not read. */
    int rc = b64_decode(v, len, buf, sizeof(buf), 0, &n);
    if (rc == B64_E_SPACE)
        return EASQ_E_TOO_LONG;
    if (rc)
        return EASQ_E_AUTH;
    const unsigned char *colon = memchr(buf, ':', n);
    if (!colon)
        return EASQ_E_AUTH;
    rc = set_bytes(id->raw.auth_user, sizeof(id->raw.auth_user), buf, (size_t)(colon - buf));
    if (rc)
        return rc;
    if (id->raw.auth_user[0] == '\0')
        return EASQ_E_AUTH;
    id->raw.auth_src = EASQ_USER_BASIC;
    id->cred = EASQ_CRED_BASIC;
    return 0;
}

static int parse_bearer(struct easq_ident *id, const char *v, size_t len)
{
    char user[EASQ_STR_MAX + 1];
    int rc = jwt_user(v, len, user, sizeof(user));
    if (rc)
        return rc;
    memcpy(id->raw.auth_user, user, strlen(user) + 1);
    id->raw.auth_src = EASQ_USER_BEARER;
    id->cred = EASQ_CRED_BEARER;
    return 0;
}

/* NTLM, raw or inside Negotiate (eas/ntlm.h): AUTHENTICATE names the user
 * in clear; NEGOTIATE names nobody. Anything else under these schemes
 * (Kerberos, a CHALLENGE sent by a client, a message that does not parse)
 * cannot be read, and says why in cred_err. */
static int parse_ntlm(struct easq_ident *id, const char *v, size_t len, bool negotiate)
{
    static _Thread_local uint8_t tok[EASQ_NTLM_MAX];
    size_t n;
    int rc = b64_decode(v, len, tok, sizeof(tok), 0, &n);
    if (rc == B64_E_SPACE) {
        id->cred_err = EASQ_E_TOO_LONG; /* a Kerberos ticket with a large PAC */
        return 0;
    }
    if (rc)
        return EASQ_E_AUTH;
    const uint8_t *msg = tok;
    size_t ml = n;
    if (negotiate && (rc = ntlm_from_negotiate(tok, n, &msg, &ml)) < 0) {
        id->cred_err = rc;
        return 0;
    }
    int type = ntlm_msg_type(msg, ml);
    if (type == NTLM_MSG_NEGOTIATE) {
        id->cred = EASQ_CRED_NTLM_HANDSHAKE;
        return 0;
    }
    if (type != NTLM_MSG_AUTHENTICATE) {
        id->cred_err = type < 0 ? type : NTLM_E_TYPE;
        return 0;
    }
    struct ntlm_auth a;
    if ((rc = ntlm_parse_authenticate(msg, ml, &a)) < 0) {
        id->cred_err = rc;
        return 0;
    }
    size_t ul = strlen(a.user), dl = strlen(a.domain);
    bool down = dl && !strchr(a.user, '@'); /* "CORP\alice"; a UPN stands alone */
    if (ul + (down ? dl + 1 : 0) > EASQ_STR_MAX) {
        id->cred_err = EASQ_E_TOO_LONG;
        return 0;
    }
    char *o = id->raw.auth_user;
    if (down) {
        memcpy(o, a.domain, dl);
        o[dl] = '\\';
        o += dl + 1;
    }
    memcpy(o, a.user, ul + 1);
    id->raw.auth_src = EASQ_USER_NTLM;
    id->cred = EASQ_CRED_NTLM;
    return 0;
}

static int parse_authorization(struct easq_ident *id, const char *v, size_t len)
{
    /* Until read, a credential is one the proxy cannot vouch for: whatever
     * fails below leaves it so, and the query's User= never stands in. */
    id->cred = EASQ_CRED_UNREADABLE;
    const char *sp = memchr(v, ' ', len);
    size_t slen = sp ? (size_t)(sp - v) : len;
    const char *cred = sp ? sp + 1 : v + len;
    size_t clen = sp ? len - slen - 1 : 0;
    trim(&cred, &clen);
    int rc;
    if (eq_nocase(v, slen, "Basic"))
        rc = clen ? parse_basic(id, cred, clen) : EASQ_E_AUTH;
    else if (eq_nocase(v, slen, "NTLM") || eq_nocase(v, slen, "Negotiate"))
        rc = clen ? parse_ntlm(id, cred, clen, slen == 9) : EASQ_E_AUTH;
    else if (eq_nocase(v, slen, "Bearer")) {
        rc = clen ? parse_bearer(id, cred, clen) : EASQ_E_JWT;
        if (rc < 0) /* opaque or encrypted tokens are legitimate: unreadable, not malformed */
            id->cred_err = rc;
        return rc;
    } else {
        id->cred_err = EASQ_E_AUTH; /* a scheme Exchange may know and the proxy does not */
        return 0;
    }
    if (rc < 0)
        id->auth_err = rc;
    return rc;
}

int easq_parse_header(struct easq_ident *id, const char *name, size_t nlen, const char *v,
                      size_t vlen)
{
    unsigned bit;
    int rc;
    if (!id || !name || (!v && vlen))
        return EASQ_E_INVAL;
    if (eq_nocase(name, nlen, "MS-ASProtocolVersion"))
        bit = SEEN_H_VERSION;
    else if (eq_nocase(name, nlen, "X-MS-PolicyKey"))
        bit = SEEN_H_POLICYKEY;
    else if (eq_nocase(name, nlen, "User-Agent"))
        bit = SEEN_H_UA;
    else if (eq_nocase(name, nlen, "Authorization"))
        bit = SEEN_H_AUTH;
    else if (eq_nocase(name, nlen, "MS-ASAcceptMultiPart"))
        bit = SEEN_H_MULTIPART;
    else
        return 0;
    id->err_field = seen_name(bit);
    if (id->raw.seen & bit) {
        if (bit == SEEN_H_AUTH) { /* which one would Exchange read? neither is trusted */
            id->auth_err = EASQ_E_DUPLICATE;
            id->cred = EASQ_CRED_UNREADABLE;
            id->raw.auth_src = EASQ_USER_NONE;
        }
        return EASQ_E_DUPLICATE;
    }
    id->raw.seen |= bit;
    if (vlen && memchr(v, '\0', vlen)) {
        if (bit == SEEN_H_AUTH) {
            id->auth_err = EASQ_E_NUL;
            id->cred = EASQ_CRED_UNREADABLE;
        }
        return EASQ_E_NUL;
    }
    trim(&v, &vlen);

    switch (bit) {
    case SEEN_H_VERSION:
        rc = easq_parse_version(v, vlen);
        if (rc < 0)
            return rc;
        id->raw.hdr_version = rc;
        return 0;
    case SEEN_H_POLICYKEY:
        if (parse_u32(v, vlen, &id->raw.hdr_pk))
            return EASQ_E_POLICYKEY;
        id->raw.hdr_has_pk = true;
        return 0;
    case SEEN_H_MULTIPART:
        if (vlen != 1 || (v[0] != 'T' && v[0] != 'F'))
            return EASQ_E_PARAM_VALUE;
        id->raw.hdr_multipart = v[0] == 'T';
        return 0;
    case SEEN_H_UA: {
        /* Kept for matching and logs; a longer one is cut, and says so. */
        size_t n = vlen > EASQ_STR_MAX ? EASQ_STR_MAX : vlen;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)v[i];
            if (c == '\t')
                c = ' ';
            if ((rc = easq_check_byte(c))) {
                id->user_agent[0] = '\0';
                return rc;
            }
            id->user_agent[i] = (char)c;
        }
        id->user_agent[n] = '\0';
        id->user_agent_truncated = n < vlen;
        return 0;
    }
    default:
        return parse_authorization(id, v, vlen);
    }
}

/* ---- merge -------------------------------------------------------------- */

static void split_user(struct easq_ident *id, const char *s)
{
    const char *bs = strchr(s, '\\');
    const char *at = strrchr(s, '@');
    size_t len = strlen(s);
    if (bs) {
        size_t dlen = (size_t)(bs - s);
        memcpy(id->domain, s, dlen);
        id->domain[dlen] = '\0';
        memcpy(id->user, bs + 1, len - dlen);
        id->user_form = EASQ_FORM_DOWNLEVEL;
    } else if (at) {
        size_t ulen = (size_t)(at - s);
        memcpy(id->user, s, ulen);
        id->user[ulen] = '\0';
        memcpy(id->domain, at + 1, len - ulen);
        id->user_form = EASQ_FORM_UPN;
    } else {
        memcpy(id->user, s, len + 1);
        id->domain[0] = '\0';
        id->user_form = EASQ_FORM_PLAIN;
    }
}

int easq_finish(struct easq_ident *id)
{
    if (!id)
        return EASQ_E_INVAL;
    if (id->form == EASQ_QUERY_BASE64 && id->raw.q_version)
        id->version = id->raw.q_version;
    else
        id->version = id->raw.hdr_version;
    if (id->raw.q_has_pk) {
        id->has_policy_key = true;
        id->policy_key = id->raw.q_pk;
    } else {
        id->has_policy_key = id->raw.hdr_has_pk;
        id->policy_key = id->raw.hdr_has_pk ? id->raw.hdr_pk : 0;
    }
    id->save_in_sent = id->raw.plain_save_in_sent || (id->options & EASQ_OPT_SAVEINSENT);
    id->accept_multipart = id->raw.hdr_multipart || (id->options & EASQ_OPT_ACCEPTMULTIPART);

    if (id->cred != EASQ_CRED_NONE && id->raw.auth_src != EASQ_USER_NONE) {
        split_user(id, id->raw.auth_user);
        id->user_src = id->raw.auth_src;
    } else if (id->cred != EASQ_CRED_NONE) {
        id->user[0] = id->domain[0] = '\0'; /* a credential nobody here can read */
        id->user_src = EASQ_USER_NONE;
        id->user_form = EASQ_FORM_PLAIN;
    } else if (id->raw.conn_user[0]) {
        split_user(id, id->raw.conn_user);
        id->user_src = EASQ_USER_CONN;
    } else if (id->query_user[0]) {
        split_user(id, id->query_user);
        id->user_src = EASQ_USER_QUERY;
    } else {
        id->user[0] = id->domain[0] = '\0';
        id->user_src = EASQ_USER_NONE;
        id->user_form = EASQ_FORM_PLAIN;
    }

    if (id->cmd == EASQ_CMD_OPTIONS)
        return 0;
    id->err_field = "query";
    if (id->form == EASQ_QUERY_NONE)
        return EASQ_E_EMPTY;
    id->err_field = "Cmd";
    if (id->cmd == EASQ_CMD_UNKNOWN)
        return EASQ_E_CMD_MISSING;
    id->err_field = "DeviceId";
    if (id->device_id[0] == '\0')
        return EASQ_E_DEVICEID_MISSING;
    id->err_field = "DeviceType";
    if (id->device_type[0] == '\0')
        return EASQ_E_DEVICETYPE_MISSING;
    id->err_field = NULL;
    return 0;
}

int easq_user_full(const struct easq_ident *id, char *out, size_t out_size)
{
    if (!id || !out || out_size == 0)
        return EASQ_E_INVAL;
    size_t ul = strlen(id->user), dl = strlen(id->domain);
    size_t need = ul + (dl ? dl + 1 : 0);
    if (need + 1 > out_size)
        return EASQ_E_BUFSIZE;
    if (!dl) {
        memcpy(out, id->user, ul + 1);
    } else if (id->user_form == EASQ_FORM_DOWNLEVEL) {
        memcpy(out, id->domain, dl);
        out[dl] = '\\';
        memcpy(out + dl + 1, id->user, ul + 1);
    } else {
        memcpy(out, id->user, ul);
        out[ul] = '@';
        memcpy(out + ul + 1, id->domain, dl + 1);
    }
    return (int)need;
}
