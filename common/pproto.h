/*
 * pproto: the PROXY protocol header (HAProxy's, versions 1 and 2) that a
 * TCP load balancer puts before the client's first byte to say who the
 * client is. A pure parser: no I/O, no allocation.
 *
 * Version 1 is one text line, "PROXY TCP4|TCP6|UNKNOWN src dst sport dport"
 * and CRLF, at most 107 bytes. Version 2 is a 16-byte binary head (a 12-byte
 * signature, version and command, family and transport, a big-endian length)
 * followed by that many bytes: the addresses, then TLVs, which are skipped.
 * LOCAL (a balancer's own health check), UNKNOWN and families other than
 * TCP over IPv4/IPv6 carry no client: the connection's own addresses stand.
 */
#ifndef EG_PPROTO_H
#define EG_PPROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest header accepted: v2's 16 bytes plus addresses and the TLVs that
 * balancers send (AWS adds a VPC endpoint id, others an SSL summary). */
#define PP_MAX 1024

enum pp_rc {
    PP_MORE = 0, /* a valid beginning: more bytes are needed */
    PP_DONE = 1, /* a whole header: see struct pp_info */
    PP_BAD = -1, /* not a PROXY header, or a broken one: why says what */
};

struct pp_info {
    size_t len;                  /* header bytes, to skip before the client's data */
    int version;                 /* 1 or 2 */
    int has_addr;                /* 0: LOCAL, UNKNOWN or another family: keep the socket's */
    struct sockaddr_storage src; /* the client, when has_addr */
    struct sockaddr_storage dst; /* the address the client connected to */
};

/* Parse the header at the start of buf[0, n). Reads nothing at or past
 * buf + n. PP_MORE says the n bytes so far can begin a header (call again
 * with more); PP_BAD sets *why to a static text. */
int pp_parse(const uint8_t *buf, size_t n, struct pp_info *out, const char **why);

#endif
