/*
 * easq: ActiveSync request identity (MS-ASHTTP 2.2.1.1).
 *
 * Every ActiveSync request says who and what it is in two places: the URI
 * query (the plain "Cmd=Sync&User=..&DeviceId=..&DeviceType=.." form, or the
 * base64 form that packs the same facts into a byte sequence) and a few
 * headers (MS-ASProtocolVersion, X-MS-PolicyKey, User-Agent, Authorization).
 * This module turns both into one fixed-size struct the proxy decides on.
 *
 * Pure and allocation-free: the struct holds every string inline, so the
 * caller owns it (stack or per-request memory) and may copy it with memcpy.
 * Nothing here keeps a pointer into the caller's buffers.
 *
 * Use:
 *     struct easq_ident id;
 *     easq_init(&id);
 *     rc = easq_parse_target(&id, target, target_len); // path?query or query
 *     for each header: rc = easq_parse_header(&id, name, nlen, value, vlen);
 *     rc = easq_finish(&id);   // merges sources, checks what is required
 * Each step returns 0 or a negative enum easq_err; easq_strerror() names it.
 * A header error does not spoil the struct: the caller may log it and go on.
 */
#ifndef EG_EASQ_H
#define EG_EASQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * ActiveSync commands. Values 0..22 are the MS-ASHTTP 2.2.1.1.1.1.2 command
 * codes of the base64 query (5..8 are unassigned). Find has no base64 code;
 * OPTIONS is the HTTP method the caller answers itself; UNKNOWN is anything
 * else. EASQ_CMD_COUNT sizes tables indexed by command.
 */
enum easq_cmd {
    EASQ_CMD_SYNC = 0,
    EASQ_CMD_SENDMAIL = 1,
    EASQ_CMD_SMARTFORWARD = 2,
    EASQ_CMD_SMARTREPLY = 3,
    EASQ_CMD_GETATTACHMENT = 4,
    EASQ_CMD_FOLDERSYNC = 9,
    EASQ_CMD_FOLDERCREATE = 10,
    EASQ_CMD_FOLDERDELETE = 11,
    EASQ_CMD_FOLDERUPDATE = 12,
    EASQ_CMD_MOVEITEMS = 13,
    EASQ_CMD_GETITEMESTIMATE = 14,
    EASQ_CMD_MEETINGRESPONSE = 15,
    EASQ_CMD_SEARCH = 16,
    EASQ_CMD_SETTINGS = 17,
    EASQ_CMD_PING = 18,
    EASQ_CMD_ITEMOPERATIONS = 19,
    EASQ_CMD_PROVISION = 20,
    EASQ_CMD_RESOLVERECIPIENTS = 21,
    EASQ_CMD_VALIDATECERT = 22,
    EASQ_CMD_FIND = 23,    /* 16.1; plain query only */
    EASQ_CMD_OPTIONS = 24, /* HTTP OPTIONS, answered by the caller */
    EASQ_CMD_UNKNOWN = 25,
    EASQ_CMD_COUNT = 26
};

/* Errors: every malformed input has its own code. */
enum easq_err {
    EASQ_OK = 0,
    EASQ_E_EMPTY = -1,            /* no query at all */
    EASQ_E_B64 = -2,              /* character outside base64, bad padding or trailing bits */
    EASQ_E_B64_TRUNCATED = -3,    /* base64 text cut inside a 4-character group */
    EASQ_E_TRUNCATED = -4,        /* decoded bytes end inside a fixed field */
    EASQ_E_LENGTH = -5,           /* a length field points past the end */
    EASQ_E_DEVICEID_LEN = -6,     /* DeviceId empty or longer than EASQ_DEVICEID_MAX */
    EASQ_E_DEVICEID_CHARS = -7,   /* DeviceId not letters and digits */
    EASQ_E_DEVICEID_MISSING = -8, /* command needs a DeviceId and has none */
    EASQ_E_DEVICETYPE_MISSING = -9,
    EASQ_E_POLICYKEY_LEN = -10, /* base64 policy key length not 0 or 4 */
    EASQ_E_POLICYKEY = -11,     /* X-MS-PolicyKey not a 32-bit unsigned integer */
    EASQ_E_DUPLICATE = -12,     /* a parameter given twice */
    EASQ_E_PERCENT = -13,       /* bad percent-escape */
    EASQ_E_NUL = -14,           /* NUL byte, raw or %00 */
    EASQ_E_CTRL = -15,          /* other control character in a value */
    EASQ_E_UNKNOWN_CMD = -16,   /* Cmd name or command code not known */
    EASQ_E_CMD_MISSING = -17,   /* plain query without Cmd */
    EASQ_E_PARAM_TAG = -18,     /* base64 parameter tag not in MS-ASHTTP */
    EASQ_E_PARAM_VALUE = -19,   /* e.g. SaveInSent not T/F, Options length not 1 */
    EASQ_E_TOO_LONG = -20,      /* a value longer than its field */
    EASQ_E_SYNTAX = -21,        /* plain query: empty name, missing '=' */
    EASQ_E_VERSION = -22,       /* protocol version not "N.N" / byte 0 */
    EASQ_E_AUTH = -23,          /* Authorization malformed (scheme, base64, no ':') */
    EASQ_E_JWT = -24,           /* Bearer token not a JWT or without a user claim */
    EASQ_E_BUFSIZE = -25,       /* encoder output buffer too small */
    EASQ_E_INVAL = -26,         /* NULL or out-of-range argument */
    EASQ_E_PARAM_NAME = -27     /* plain query name not [A-Za-z0-9._-] (e.g. "Device%49d") */
};

/* Field limits (bytes, excluding the terminating NUL). */
#define EASQ_DEVICEID_MAX 32 /* MS-ASHTTP 2.2.1.1.1.2: device-id = 1*32(ALPHA / DIGIT) */
#define EASQ_STR_MAX 255     /* a base64 length byte; the bound for every other string */
#define EASQ_CMD_NAME_MAX 31

/* Where the effective user came from. The user is read from exactly the
 * credential Exchange will authenticate; the query's User= is used only
 * when the request carries no credential at all and its connection no NTLM
 * identity (then Exchange answers 401 and no mailbox is reached). */
enum easq_user_src {
    EASQ_USER_NONE = 0,
    EASQ_USER_BASIC,  /* Authorization: Basic */
    EASQ_USER_BEARER, /* Authorization: Bearer, JWT claim (unverified here) */
    EASQ_USER_QUERY,  /* User= / base64 User parameter, no credential anywhere */
    EASQ_USER_NTLM,   /* NTLM AUTHENTICATE (raw, or inside Negotiate) */
    EASQ_USER_CONN    /* no Authorization: the connection's NTLM user (easq_set_conn_user) */
};

/* What the Authorization header carried. */
enum easq_cred {
    EASQ_CRED_NONE = 0,       /* no Authorization header */
    EASQ_CRED_BASIC,          /* canonical Basic; user read */
    EASQ_CRED_BEARER,         /* a JWT whose user claim was read (not verified here) */
    EASQ_CRED_NTLM,           /* NTLM AUTHENTICATE; user read */
    EASQ_CRED_NTLM_HANDSHAKE, /* NTLM NEGOTIATE: names nobody, Exchange answers 401 */
    EASQ_CRED_UNREADABLE      /* Kerberos, an opaque or oversized Bearer, another scheme */
};

/* How the user was written: "alice", "CORP\alice" or "alice@corp.example". */
enum easq_user_form { EASQ_FORM_PLAIN = 0, EASQ_FORM_DOWNLEVEL, EASQ_FORM_UPN };

enum easq_query_form { EASQ_QUERY_NONE = 0, EASQ_QUERY_PLAIN, EASQ_QUERY_BASE64 };

/* MS-ASHTTP Options parameter bits (base64 tag 7). */
#define EASQ_OPT_SAVEINSENT 0x01
#define EASQ_OPT_ACCEPTMULTIPART 0x02

struct easq_ident {
    enum easq_cmd cmd;
    char cmd_name[EASQ_CMD_NAME_MAX + 1]; /* canonical spelling, e.g. "FolderSync" */
    enum easq_query_form form;
    /* After an error: the field or header it was found in ("DeviceId",
     * "policy key", "Authorization", ...); a static string, or NULL. */
    const char *err_field;

    int version; /* 141 for "14.1"; 0 = not given */

    /* Effective user, split: user "alice", domain "corp.example" or "CORP". */
    char user[EASQ_STR_MAX + 1];
    char domain[EASQ_STR_MAX + 1];
    enum easq_user_src user_src;
    enum easq_user_form user_form;
    /* The credential: what it was, why it could not be read (cred_err, an
     * easq_err or an ntlm_err for UNREADABLE), and auth_err, set when the
     * header itself is malformed or given twice (the proxy answers 400). */
    enum easq_cred cred;
    int cred_err;
    int auth_err;
    char query_user[EASQ_STR_MAX + 1]; /* User= from the query, as given (logging) */

    char device_id[EASQ_DEVICEID_MAX + 1]; /* as sent; see easq_deviceid_norm() */
    char device_type[EASQ_STR_MAX + 1];

    bool has_policy_key;
    uint32_t policy_key;

    bool has_locale; /* base64 form only: MS-LCID, e.g. 0x0409 */
    uint16_t locale;

    char user_agent[EASQ_STR_MAX + 1];
    bool user_agent_truncated;

    /* Command parameters (MS-ASHTTP 2.2.1.1.1.2.5 / 2.2.1.1.1.1.3). */
    char attachment_name[EASQ_STR_MAX + 1];
    char collection_id[EASQ_STR_MAX + 1];
    char item_id[EASQ_STR_MAX + 1];
    char long_id[EASQ_STR_MAX + 1];
    char occurrence[EASQ_STR_MAX + 1];
    bool has_options;
    uint8_t options;       /* EASQ_OPT_* bits (base64 tag 7) */
    bool save_in_sent;     /* SaveInSent=T, or Options & EASQ_OPT_SAVEINSENT */
    bool accept_multipart; /* MS-ASAcceptMultiPart: T, or Options & EASQ_OPT_ACCEPTMULTIPART */

    /* Raw per-source facts, merged by easq_finish(); callers read the above. */
    struct {
        unsigned seen;   /* bit set of parameters seen, for duplicates */
        int hdr_version; /* from MS-ASProtocolVersion */
        int q_version;   /* from the base64 version byte */
        bool hdr_has_pk;
        uint32_t hdr_pk;
        bool q_has_pk;
        uint32_t q_pk;
        bool hdr_multipart;
        bool plain_save_in_sent;
        enum easq_user_src auth_src; /* user from Authorization, if any */
        char auth_user[EASQ_STR_MAX + 1];
        char conn_user[EASQ_STR_MAX + 1]; /* easq_set_conn_user */
    } raw;
};

/* "none", "basic", "bearer", "ntlm", "ntlm-handshake", "unreadable" */
const char *easq_cred_name(enum easq_cred c);

/* The user an NTLM handshake authenticated this request's connection as
 * ("DOMAIN\user" or "user@domain"), which IIS applies to requests that
 * carry no Authorization. Call before easq_finish; NULL or "" clears. */
void easq_set_conn_user(struct easq_ident *id, const char *user);

/* Reset to "nothing known" (cmd UNKNOWN). Cheap: no full memset of strings. */
void easq_init(struct easq_ident *id);

/*
 * Parse a request target: "/Microsoft-Server-ActiveSync?Q", "?Q", "Q", or a
 * whole URL "https://host/Microsoft-Server-ActiveSync?Q". A fragment (#...)
 * is ignored. Chooses the plain or base64 form by looking at Q.
 */
int easq_parse_target(struct easq_ident *id, const char *target, size_t len);

/* Parse just the query (no '?'), plain or base64, detected. */
int easq_parse_query(struct easq_ident *id, const char *q, size_t len);

/*
 * Feed one request header. Names match case-insensitively; headers this
 * module does not care about return 0 and change nothing. A repeated header
 * of interest is EASQ_E_DUPLICATE.
 */
int easq_parse_header(struct easq_ident *id, const char *name, size_t name_len, const char *value,
                      size_t value_len);

/*
 * Merge the sources and check completeness. Precedence (documented in
 * docs/protocol.md "Request identity"):
 *   version, policy key: base64 query field, else header;
 *   user: Authorization (Basic, then Bearer claim), else the query User;
 * Then: a command other than OPTIONS needs a DeviceId and a DeviceType.
 */
int easq_finish(struct easq_ident *id);

/* "Sync", "FolderSync", ... ; "OPTIONS"; "Unknown" for anything else. */
const char *easq_cmd_name(enum easq_cmd cmd);
/* Case-insensitive name -> command; EASQ_CMD_UNKNOWN if none. */
enum easq_cmd easq_cmd_from_name(const char *name, size_t len);
/* MS-ASHTTP command code -> command (UNKNOWN for unassigned), and back (-1 if none). */
enum easq_cmd easq_cmd_from_code(int code);
int easq_cmd_code(enum easq_cmd cmd);

const char *easq_strerror(int err);

/* "16.1" -> 161, "2.5" -> 25; negative EASQ_E_VERSION if malformed. */
int easq_parse_version(const char *s, size_t len);

/*
 * Canonical DeviceId for cache and Redis keys: ActiveSync DeviceIds are
 * case-insensitive, so the key is the DeviceId in upper-case ASCII. Writes
 * NUL-terminated output (out_size >= EASQ_DEVICEID_MAX + 1 always suffices)
 * and returns its length, or a negative error for an invalid DeviceId.
 */
int easq_deviceid_norm(const char *in, size_t len, char *out, size_t out_size);

/* user@domain or DOMAIN\user as it was given (user alone if no domain). */
int easq_user_full(const struct easq_ident *id, char *out, size_t out_size);

/*
 * Encoders, for the load generator and tests. The base64 form carries
 * version (default 141 when 0), command code, locale, DeviceId, policy key
 * (if has_policy_key), DeviceType and the parameters that are set (User from
 * query_user). The plain form writes Cmd, User, DeviceId, DeviceType and the
 * parameters, percent-encoded. Both write a NUL-terminated query without '?'
 * and return its length, or EASQ_E_BUFSIZE / EASQ_E_INVAL.
 */
int easq_encode_b64(const struct easq_ident *id, char *out, size_t out_size);
int easq_encode_plain(const struct easq_ident *id, char *out, size_t out_size);

#endif
