/*
 * beas: the little ActiveSync the bench tools need, written independently of
 * eas/ so that the simulator and load generator do not share the
 * proxy's bugs: a WBXML writer for answers and requests, a WBXML scanner
 * (well-formedness and "text of the first <page:tag>"), the command-code
 * table, and both request query forms (plain and base64, MS-ASHTTP
 * 2.2.1.1.1.1 / 2.2.1.1.1.2).
 *
 * Token values come from MS-ASWBXML; only those the bench uses are named.
 */
#ifndef EG_BENCH_BEAS_H
#define EG_BENCH_BEAS_H

#include <stddef.h>
#include <stdint.h>

/* WBXML code pages (MS-ASWBXML 2.1.2.1). */
enum {
    BWX_AIRSYNC = 0,
    BWX_GIE = 6, /* GetItemEstimate */
    BWX_FOLDER = 7,
    BWX_PING = 13,
    BWX_PROVISION = 14,
    BWX_ASBASE = 17, /* AirSyncBase */
    BWX_SETTINGS = 18,
    BWX_ITEMOPS = 20,
};

/* A growing WBXML document. Errors (out of memory) are sticky in err. */
struct bwx {
    unsigned char *buf;
    size_t len, cap;
    int page;
    int depth;
    int err;
};

void bwx_begin(struct bwx *w);                                  /* header: v1.3, UTF-8 */
void bwx_open(struct bwx *w, int page, int tok);                /* <tag> with content */
void bwx_close(struct bwx *w);                                  /* </tag> */
void bwx_text(struct bwx *w, int page, int tok, const char *s); /* <tag>s</tag> */
void bwx_int(struct bwx *w, int page, int tok, long v);
/* <tag> then n bytes of filler text (printable), then </tag>. */
void bwx_filler(struct bwx *w, int page, int tok, size_t n);
void bwx_free(struct bwx *w);

/* 0 if buf is one well-formed WBXML document (header, balanced tags,
 * terminated strings), -1 otherwise. */
int bwx_check(const unsigned char *buf, size_t len);

/* Copy the inline string content of the first element (page, tok) into out
 * (NUL-terminated, truncated to n-1). Returns its length or -1 if absent. */
int bwx_find_text(const unsigned char *buf, size_t len, int page, int tok, char *out, size_t n);

/* 1 if an element (page, tok) occurs anywhere, else 0. */
int bwx_has(const unsigned char *buf, size_t len, int page, int tok);

/* ActiveSync commands and their base64 command codes (MS-ASHTTP
 * 2.2.1.1.1.1.2). Returns -1 / NULL for unknown ones. */
int beas_cmd_code(const char *name);
const char *beas_cmd_name(int code);

/* What a request URI says about itself. */
struct beas_query {
    char cmd[32];
    char user[128];
    char device_id[64];
    char device_type[64];
    char proto[8]; /* "14.1" from the base64 form; empty for plain */
    int base64;    /* 1 if the base64 form was used */
};

/* Decode the query part (after '?') in either form. 0 or -1 if it is neither. */
int beas_parse_query(const char *q, size_t len, struct beas_query *out);

/* Build the query part (no '?') in the base64 form: proto like "14.1".
 * Returns the length written (NUL-terminated) or -1 if out is too small or a
 * field does not fit its one-byte length. */
int beas_b64_query(char *out, size_t n, const char *proto, const char *cmd, const char *user,
                   const char *device_id, const char *device_type);

/* Plain form: Cmd=..&User=..&DeviceId=..&DeviceType=.. (values must be
 * URL-safe). Returns length or -1. */
int beas_plain_query(char *out, size_t n, const char *cmd, const char *user, const char *device_id,
                     const char *device_type);

#endif
