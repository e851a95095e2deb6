/*
 * wbxml: the ActiveSync flavour of WAP Binary XML (MS-ASWBXML over WBXML 1.3).
 *
 * ActiveSync bodies are tags from 26 code pages (0..25), inline strings and
 * opaque blobs; no attributes, no string table, no entities. So this codec
 * knows exactly that and refuses the rest with the byte offset where it met it.
 *
 * Four parts, all pure (no I/O, no globals that change):
 *   - the code page tables: token <-> name, namespace names;
 *   - a streaming decoder: feed the body in any pieces (one byte at a time is
 *     fine), get one callback per token. Memory is the struct itself: strings
 *     and opaque data are handed out as pointers into the caller's buffer, in
 *     pieces when they straddle two feeds, never copied. Depth is bounded by
 *     WBXML_MAX_DEPTH;
 *   - a writer for building documents into a caller buffer or a growable one;
 *   - extraction of what the proxy needs (device information, Ping heartbeat,
 *     Provision policy and wipe status) on top of the decoder, without a tree.
 * wbxml_xml_* (the XML face for people and tests) lives at the end.
 */
#ifndef EG_WBXML_H
#define EG_WBXML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- code pages (MS-ASWBXML 2.1.2.1) ---- */

enum wbxml_page {
    WBXML_PAGE_AIRSYNC = 0,
    WBXML_PAGE_CONTACTS = 1,
    WBXML_PAGE_EMAIL = 2,
    WBXML_PAGE_AIRNOTIFY = 3, /* "no longer in use": no tokens */
    WBXML_PAGE_CALENDAR = 4,
    WBXML_PAGE_MOVE = 5,
    WBXML_PAGE_GETITEMESTIMATE = 6,
    WBXML_PAGE_FOLDERHIERARCHY = 7,
    WBXML_PAGE_MEETINGRESPONSE = 8,
    WBXML_PAGE_TASKS = 9,
    WBXML_PAGE_RESOLVERECIPIENTS = 10,
    WBXML_PAGE_VALIDATECERT = 11,
    WBXML_PAGE_CONTACTS2 = 12,
    WBXML_PAGE_PING = 13,
    WBXML_PAGE_PROVISION = 14,
    WBXML_PAGE_SEARCH = 15,
    WBXML_PAGE_GAL = 16,
    WBXML_PAGE_AIRSYNCBASE = 17,
    WBXML_PAGE_SETTINGS = 18,
    WBXML_PAGE_DOCUMENTLIBRARY = 19,
    WBXML_PAGE_ITEMOPERATIONS = 20,
    WBXML_PAGE_COMPOSEMAIL = 21,
    WBXML_PAGE_EMAIL2 = 22,
    WBXML_PAGE_NOTES = 23,
    WBXML_PAGE_RIGHTSMANAGEMENT = 24,
    WBXML_PAGE_FIND = 25,
    WBXML_NPAGES = 26
};

/* A tag is its page and its token (0x05..0x3F) in one number. */
#define WBXML_TAG(page, token) ((uint16_t)(((unsigned)(page) << 8) | (unsigned)(token)))
#define WBXML_TAG_PAGE(tag) ((uint8_t)((tag) >> 8))
#define WBXML_TAG_TOKEN(tag) ((uint8_t)((tag)&0xFF))

/* The tags this project's own code names (full tables in wbxml_pages.c). */
enum {
    WBXML_AIRSYNC_SYNC = WBXML_TAG(0, 0x05),
    WBXML_AIRSYNC_STATUS = WBXML_TAG(0, 0x0E),
    WBXML_AIRSYNC_HEARTBEATINTERVAL = WBXML_TAG(0, 0x29),
    WBXML_MOVE_MOVEITEMS = WBXML_TAG(5, 0x05),
    WBXML_MOVE_STATUS = WBXML_TAG(5, 0x0B),
    WBXML_GIE_GETITEMESTIMATE = WBXML_TAG(6, 0x05),
    WBXML_GIE_STATUS = WBXML_TAG(6, 0x0E),
    WBXML_FH_STATUS = WBXML_TAG(7, 0x0C),
    WBXML_FH_FOLDERCREATE = WBXML_TAG(7, 0x13),
    WBXML_FH_FOLDERDELETE = WBXML_TAG(7, 0x14),
    WBXML_FH_FOLDERUPDATE = WBXML_TAG(7, 0x15),
    WBXML_FH_FOLDERSYNC = WBXML_TAG(7, 0x16),
    WBXML_MR_MEETINGRESPONSE = WBXML_TAG(8, 0x07),
    WBXML_MR_STATUS = WBXML_TAG(8, 0x0B),
    WBXML_RR_RESOLVERECIPIENTS = WBXML_TAG(10, 0x05),
    WBXML_RR_STATUS = WBXML_TAG(10, 0x07),
    WBXML_VC_VALIDATECERT = WBXML_TAG(11, 0x05),
    WBXML_VC_STATUS = WBXML_TAG(11, 0x0A),
    WBXML_PING_PING = WBXML_TAG(13, 0x05),
    WBXML_PING_STATUS = WBXML_TAG(13, 0x07),
    WBXML_PING_HEARTBEATINTERVAL = WBXML_TAG(13, 0x08),
    WBXML_PROV_PROVISION = WBXML_TAG(14, 0x05),
    WBXML_PROV_POLICIES = WBXML_TAG(14, 0x06),
    WBXML_PROV_POLICY = WBXML_TAG(14, 0x07),
    WBXML_PROV_POLICYTYPE = WBXML_TAG(14, 0x08),
    WBXML_PROV_POLICYKEY = WBXML_TAG(14, 0x09),
    WBXML_PROV_DATA = WBXML_TAG(14, 0x0A),
    WBXML_PROV_STATUS = WBXML_TAG(14, 0x0B),
    WBXML_PROV_REMOTEWIPE = WBXML_TAG(14, 0x0C),
    WBXML_PROV_EASPROVISIONDOC = WBXML_TAG(14, 0x0D),
    WBXML_PROV_APPLICATIONNAME = WBXML_TAG(14, 0x38),
    WBXML_PROV_HASH = WBXML_TAG(14, 0x3A),
    WBXML_PROV_ACCOUNTONLYREMOTEWIPE = WBXML_TAG(14, 0x3B),
    WBXML_SEARCH_SEARCH = WBXML_TAG(15, 0x05),
    WBXML_SEARCH_STATUS = WBXML_TAG(15, 0x0C),
    WBXML_SETTINGS_SETTINGS = WBXML_TAG(18, 0x05),
    WBXML_SETTINGS_STATUS = WBXML_TAG(18, 0x06),
    WBXML_SETTINGS_SET = WBXML_TAG(18, 0x08),
    WBXML_SETTINGS_DEVICEINFORMATION = WBXML_TAG(18, 0x16),
    WBXML_SETTINGS_MODEL = WBXML_TAG(18, 0x17),
    WBXML_SETTINGS_IMEI = WBXML_TAG(18, 0x18),
    WBXML_SETTINGS_FRIENDLYNAME = WBXML_TAG(18, 0x19),
    WBXML_SETTINGS_OS = WBXML_TAG(18, 0x1A),
    WBXML_SETTINGS_OSLANGUAGE = WBXML_TAG(18, 0x1B),
    WBXML_SETTINGS_PHONENUMBER = WBXML_TAG(18, 0x1C),
    WBXML_SETTINGS_USERAGENT = WBXML_TAG(18, 0x20),
    WBXML_SETTINGS_ENABLEOUTBOUNDSMS = WBXML_TAG(18, 0x21),
    WBXML_SETTINGS_MOBILEOPERATOR = WBXML_TAG(18, 0x22),
    WBXML_IO_ITEMOPERATIONS = WBXML_TAG(20, 0x05),
    WBXML_IO_STATUS = WBXML_TAG(20, 0x0D),
    WBXML_CM_SENDMAIL = WBXML_TAG(21, 0x05),
    WBXML_CM_SMARTFORWARD = WBXML_TAG(21, 0x06),
    WBXML_CM_SMARTREPLY = WBXML_TAG(21, 0x07),
    WBXML_CM_STATUS = WBXML_TAG(21, 0x12),
    WBXML_FIND_FIND = WBXML_TAG(25, 0x05),
    WBXML_FIND_STATUS = WBXML_TAG(25, 0x0A),
};

/* Namespace name as MS-ASWBXML spells it ("AirSync", "Gal", ...); NULL if
 * page >= WBXML_NPAGES. */
const char *wbxml_page_name(unsigned page);
/* Page for a namespace name, case-insensitive, a trailing ':' tolerated
 * ("AirSync:" is what older Exchange wrote); -1 if unknown. */
int wbxml_page_by_name(const char *name, size_t len);
/* Tag name, or NULL for a token the page does not define. */
const char *wbxml_tag_name(unsigned page, unsigned token);
/* Token for a tag name within a page (case-sensitive, as XML is); -1 if none. */
int wbxml_tag_by_name(unsigned page, const char *name, size_t len);

/* ---- errors ---- */

enum wbxml_err {
    WBXML_OK = 0,
    WBXML_E_HEADER = -1,      /* bad version/public id/charset header */
    WBXML_E_PAGE = -2,        /* SWITCH_PAGE to a page ActiveSync does not define */
    WBXML_E_TOKEN = -3,       /* tag token unknown in the current page */
    WBXML_E_MBUINT = -4,      /* multi-byte integer truncated or over 32 bits */
    WBXML_E_STRING = -5,      /* inline string without its terminating NUL */
    WBXML_E_OPAQUE = -6,      /* opaque length runs past the end of the body */
    WBXML_E_DEPTH = -7,       /* nesting deeper than WBXML_MAX_DEPTH */
    WBXML_E_UNSUPPORTED = -8, /* attributes, entities, literals, PI, ext */
    WBXML_E_END = -9,         /* END with no open element */
    WBXML_E_TRUNCATED = -10,  /* body ends with elements still open */
    WBXML_E_TRAILING = -11,   /* bytes after the root element closed */
    WBXML_E_CONTENT = -12,    /* string/opaque outside any element */
    WBXML_E_EMPTY = -13,      /* no root element at all */
    WBXML_E_STOPPED = -14,    /* the callback asked to stop */
    WBXML_E_NOSPACE = -15,    /* writer: caller buffer too small */
    WBXML_E_NOMEM = -16,      /* writer: allocation failed */
    WBXML_E_ARG = -17,        /* writer: misuse (unknown tag, NUL in string, ...) */
    WBXML_E_XML = -18,        /* XML reader: malformed XML */
    WBXML_E_XMLNAME = -19,    /* XML reader: element/namespace not in the tables */
    WBXML_E_STRTBL = -20,     /* a non-empty string table (MS-ASWBXML uses none) */
};

/* Short English reason for an error code ("unknown tag token"). */
const char *wbxml_strerror(int err);

/* ---- streaming decoder ---- */

#define WBXML_MAX_DEPTH 32

enum wbxml_ev_type {
    WBXML_EV_START,  /* a tag opens; if !content its END follows at once */
    WBXML_EV_END,    /* a tag closes (content=false: synthetic, tag was empty) */
    WBXML_EV_TEXT,   /* a piece of an inline string */
    WBXML_EV_OPAQUE, /* a piece of opaque data */
};

struct wbxml_ev {
    enum wbxml_ev_type type;
    uint16_t tag;    /* START/END: the tag; TEXT/OPAQUE: the enclosing tag */
    bool content;    /* START/END: the tag has content */
    int depth;       /* depth of the tag (root = 1); for TEXT the enclosing one */
    uint64_t offset; /* byte offset of the token in the body */
    /* TEXT/OPAQUE: one piece. Strings may come in several pieces when the
     * body is fed in pieces; first/last mark the ends. data points into the
     * caller's buffer and is valid only during the callback. */
    const uint8_t *data;
    size_t len;
    bool first, last;
    uint32_t total; /* OPAQUE: length of the whole blob */
};

/* Return 0 to go on, anything else to stop (feed returns WBXML_E_STOPPED). */
typedef int (*wbxml_cb)(void *ud, const struct wbxml_ev *ev);

/* The decoder lives wherever the caller puts it (stack, connection struct);
 * it owns nothing and needs no free. Fields are read-only for callers. */
struct wbxml_dec {
    wbxml_cb cb;
    void *ud;
    uint64_t off;      /* bytes consumed so far */
    uint64_t item_off; /* where the multi-byte integer being read started */
    uint64_t tok_off;  /* where the string/opaque/switch being read started */
    int err;
    uint64_t err_off;
    uint8_t state, page, hdr_step;
    uint8_t mb_len;  /* bytes of the multi-byte integer read so far */
    uint32_t mb;     /* the multi-byte integer being read */
    uint32_t remain; /* opaque bytes still to come */
    uint32_t total;
    bool piece_first, had_root;
    uint8_t ev_mask;    /* event types delivered (bit per wbxml_ev_type) */
    uint8_t open_depth; /* START/END at this depth or less always delivered */
    uint32_t page_mask; /* deeper START/END delivered for these pages only */
    int depth;
    uint16_t stack[WBXML_MAX_DEPTH + 1]; /* stack[1] is the root */
};

void wbxml_dec_init(struct wbxml_dec *d, wbxml_cb cb, void *ud);
/* Deliver only some events (all by default): event types whose bit
 * (1 << WBXML_EV_*) is in ev_mask; and of START/END, those at depth <=
 * open_depth or in a page whose bit (1 << page) is in page_mask. Checking is
 * unchanged; this only spares the callback the tokens it would ignore, which
 * is most of the speed of extraction. May be changed from the callback. */
void wbxml_dec_filter(struct wbxml_dec *d, unsigned ev_mask, unsigned open_depth,
                      uint32_t page_mask);
/* Decode the next piece of the body. Returns 0 or a negative wbxml_err; after
 * an error every further call returns the same error. */
int wbxml_dec_feed(struct wbxml_dec *d, const void *buf, size_t len);
/* The body is complete: 0 if it held exactly one closed root element, else
 * the error (truncated string/opaque/integer, open elements, empty body). */
int wbxml_dec_finish(struct wbxml_dec *d);
/* Byte offset of the error (0 if none). */
uint64_t wbxml_dec_error_offset(const struct wbxml_dec *d);

/* Validate a whole body in one call; *err_off gets the offset on error. */
int wbxml_check(const void *buf, size_t len, uint64_t *err_off);

/* ---- writer ---- */

/* Writes "03 01 6A 00" (WBXML 1.3, unknown public id, UTF-8, no string table)
 * then the tags. Errors are sticky: after the first one every call is a no-op
 * and wbxml_w_finish returns it, so a builder can call away and check once. */
struct wbxml_w {
    uint8_t *buf;
    size_t len, cap;
    bool owned; /* buf is ours (growable) */
    int err;
    uint8_t page;
    uint8_t last;    /* what was written last (merging strings, empty tags) */
    size_t last_pos; /* where the last start tag byte is */
    int depth;
    uint16_t stack[WBXML_MAX_DEPTH + 1];
};

/* buf != NULL: write into the caller's buf[cap] (WBXML_E_NOSPACE when full).
 * buf == NULL: grow a malloc'd buffer as needed; free with wbxml_w_free. */
void wbxml_w_init(struct wbxml_w *w, uint8_t *buf, size_t cap);
void wbxml_w_free(struct wbxml_w *w);
int wbxml_w_start(struct wbxml_w *w, uint16_t tag); /* tag with content */
int wbxml_w_empty(struct wbxml_w *w, uint16_t tag); /* <Tag/> */
int wbxml_w_end(struct wbxml_w *w);
int wbxml_w_str(struct wbxml_w *w, const char *s, size_t len); /* no NUL in s */
int wbxml_w_opaque(struct wbxml_w *w, const void *data, size_t len);
/* <Tag>text</Tag> and <Tag>decimal</Tag>. */
int wbxml_w_text(struct wbxml_w *w, uint16_t tag, const char *s);
int wbxml_w_uint(struct wbxml_w *w, uint16_t tag, unsigned long v);
/* Checks every element is closed; out and len point at the document, which
 * stays owned by the writer (or is the caller's buf). */
int wbxml_w_finish(struct wbxml_w *w, const uint8_t **out, size_t *len);

/* ---- extraction (what the proxy reads from Provision/Settings/Ping) ---- */

#define WBXML_FIELD_MAX 128 /* longer values are cut and flagged truncated */

enum wbxml_devinfo_field {
    WBXML_DI_MODEL,
    WBXML_DI_IMEI,
    WBXML_DI_FRIENDLYNAME,
    WBXML_DI_OS,
    WBXML_DI_OSLANGUAGE,
    WBXML_DI_PHONENUMBER,
    WBXML_DI_USERAGENT,
    WBXML_DI_MOBILEOPERATOR,
    WBXML_DI_ENABLEOUTBOUNDSMS,
    WBXML_DI_NFIELDS
};

/* Every field is set by wbxml_extract_init: strings to "" (only their first
 * byte: the bytes after a string's NUL are unspecified, so compare facts
 * field by field, never with memcmp), numbers to -1, flags to false. */
struct wbxml_facts {
    uint16_t root; /* the root tag, e.g. WBXML_PROV_PROVISION; 0 if none yet */
    /* settings:DeviceInformation (in Settings/Set or in Provision, 14.1+) */
    bool has_devinfo;
    char devinfo[WBXML_DI_NFIELDS][WBXML_FIELD_MAX]; /* "" when absent */
    uint16_t devinfo_present;                        /* bit per field */
    uint16_t devinfo_truncated;                      /* bit per field */
    long heartbeat; /* Ping or Sync HeartbeatInterval (s); -1 if absent */
    /* Provision */
    char policy_type[WBXML_FIELD_MAX]; /* Policy/PolicyType, "" if absent */
    char policy_key[WBXML_FIELD_MAX];  /* Policy/PolicyKey, "" if absent */
    int policy_status;                 /* Policy/Status, -1 if absent */
    int status;                        /* <Root>/Status, -1 if absent */
    bool remote_wipe;                  /* RemoteWipe element present */
    int remote_wipe_status;            /* RemoteWipe/Status, -1 if absent */
    bool account_only_remote_wipe;
    int account_only_remote_wipe_status;
};

/* Streaming: a decoder plus a small accumulator for the value being read.
 * wbxml_extract_feed runs its own loop over whole tokens and leaves the rest
 * (header, strings cut by the end of a piece, opaque data, errors) to the
 * decoder, so the facts, errors and offsets do not depend on the cutting.
 * Nothing is allocated; nothing needs freeing. */
struct wbxml_extractor {
    struct wbxml_dec dec;
    struct wbxml_facts *facts;
    int collect_depth; /* depth of the element whose text we collect, 0: none */
    char *str;         /* text value destination (WBXML_FIELD_MAX bytes) */
    size_t len;
    bool too_long;
    uint16_t *trunc_mask, trunc_bit;
    int *int_dst; /* numeric value destination (or long_dst) */
    long *long_dst;
    char num[WBXML_FIELD_MAX];
    int devinfo_depth; /* depth of DeviceInformation while inside it, else 0 */
};

void wbxml_extract_init(struct wbxml_extractor *x, struct wbxml_facts *facts);
int wbxml_extract_feed(struct wbxml_extractor *x, const void *buf, size_t len);
int wbxml_extract_finish(struct wbxml_extractor *x);
/* One call over a whole body. */
int wbxml_extract(const void *buf, size_t len, struct wbxml_facts *facts, uint64_t *err_off);
/* Field name as in MS-ASCMD ("Model", "IMEI", ...). */
const char *wbxml_devinfo_name(enum wbxml_devinfo_field f);

/* ---- XML for people (the CLI and the tests) ---- */

/* WBXML -> indented XML. Namespaces are MS-ASWBXML's names: the root's page
 * is the default namespace (xmlns="AirSync"), other pages get a lowercase
 * prefix declared on the root (xmlns:airsyncbase="AirSyncBase"). OPAQUE data
 * is written as a processing instruction <?opaque BASE64?> (docs/protocol.md).
 * *out is malloc'd (caller frees). On error *err_off is the WBXML offset. */
int wbxml_to_xml(const void *buf, size_t len, char **out, size_t *out_len, uint64_t *err_off);
/* XML -> WBXML, the reverse. On error *err_off is the byte offset in the
 * XML and *why (if not NULL) a static reason. *out is malloc'd. */
int wbxml_from_xml(const char *xml, size_t len, uint8_t **out, size_t *out_len, uint64_t *err_off,
                   const char **why);

#endif
