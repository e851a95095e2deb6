/*
 * psock: one TCP connection of the proxy, plain or TLS, client-facing or
 * upstream. It hides the TLS layer: the owner reads and writes plaintext.
 *
 * Life cycle: psock_init, then psock_accept (listener) or psock_connect;
 * psock_close when done. The owner frees the memory holding the psock only in
 * its closed callback, never earlier, so a callback may call psock_close and
 * the caller up the stack can still look at the struct.
 *
 * Reading uses the loop's shared read buffer (no per-connection buffer);
 * every byte handed to the data callback must be consumed or copied before it
 * returns. Writes are copied into pooled blocks (common/buf.h) and counted in
 * queued until the kernel has them; psock_congested() tells the other side of
 * a proxied stream to stop reading (back-pressure), and the drained callback
 * tells it to start again.
 */
#ifndef EG_PSOCK_H
#define EG_PSOCK_H

#include "common/buf.h"
#include "common/pproto.h"
#include "common/tls.h"

#include <stddef.h>
#include <uv.h>

struct psock;

#define PSOCK_RBUF 65536

/* What the sockets of one event loop share (one thread): the loop, one read
 * buffer, the pool of write blocks, the sockets to flush when the current
 * read callback returns, and where TLS handshakes are counted (relaxed
 * atomic counters the owner gives, e.g. its metrics). */
struct psock_io {
    uv_loop_t *loop;
    struct buf_pool pool;
    struct psock *flush_list;
    int in_read;
    uint64_t *handshakes, *handshake_failures;
    char rbuf[PSOCK_RBUF];
};

/* Back-pressure marks (bytes queued for the kernel). */
#define PSOCK_HIGH_WATER (256 * 1024)
#define PSOCK_LOW_WATER (64 * 1024)

struct psock_cbs {
    /* Plaintext in. Return nonzero if the owner closed the socket. */
    int (*data)(struct psock *s, const char *d, size_t n);
    /* Connected (and TLS handshake done when TLS). Same return convention. */
    int (*ready)(struct psock *s);
    /* The read side ended: err 0 = clean end, else a libuv error or
     * PSOCK_ETLS with the text in why. The socket is not closed for you. */
    void (*end)(struct psock *s, int err, const char *why);
    /* Queue fell below the low water mark after being above the high one. */
    void (*drained)(struct psock *s);
    /* The handle is closed: the owner may free its memory now. */
    void (*closed)(struct psock *s);
    /* The PROXY protocol header (psock_expect_proxy_header) has arrived;
     * the bytes after it go on to TLS or to data. Same return convention as
     * data. May be NULL. */
    int (*proxied)(struct psock *s, const struct pp_info *info);
};

#define PSOCK_ETLS (-100000)
#define PSOCK_EPROXY (-100001) /* a broken PROXY protocol header; why says how */

struct psock {
    uv_tcp_t tcp;
    uv_connect_t *connect_req; /* only while connecting */
    struct psock_io *io;
    const struct psock_cbs *cbs;
    void *owner;
    struct tls_conn *tls;
    struct buf_block *cur;        /* block being filled, not yet handed to libuv */
    struct buf_block *plain;      /* TLS: plaintext not yet sealed into a record */
    struct psock *flush_next;     /* in io's flush list */
    struct psock_pp *pp;          /* PROXY header still expected (partial bytes), else NULL */
    size_t queued;                /* bytes in uv_write not yet completed */
    uint64_t bytes_in, bytes_out; /* plaintext counters */
    unsigned reading : 1, closing : 1, above_high : 1, ready : 1, close_after_flush : 1,
        tls_failed : 1, in_flush_list : 1;
};

/* io: the loop's shared state (above); it outlives every socket of the loop. */
int psock_init(struct psock *s, struct psock_io *io, const struct psock_cbs *cbs, void *owner);

/* Client-facing: the listener accepted into s->tcp; start TLS (ctx may be
 * NULL for plain HTTP) and reading. 0 or negative. */
int psock_start_server(struct psock *s, struct tls_ctx *ctx);

/* Upstream: connect to addr, TLS when ctx (sni, session slot as tls.h). */
int psock_connect(struct psock *s, const struct sockaddr *addr, struct tls_ctx *ctx,
                  const char *sni, SSL_SESSION **session_slot);

/* Before anything else on this connection a PROXY protocol header (v1 or
 * v2, common/pproto.h) must come: the proxied callback gets it, a broken
 * one ends the connection with PSOCK_EPROXY. Call before reading starts.
 * 0, or -1 without memory. */
int psock_expect_proxy_header(struct psock *s);

void psock_read_start(struct psock *s);
void psock_read_stop(struct psock *s);

/* Queue plaintext; psock_flush seals it into TLS records and hands it to the
 * kernel. Pieces written between two flushes travel in as few records and
 * writes as fit: a request head and its body are one record, one write.
 * While a read callback of the same loop runs, a flush only marks the
 * socket; every marked socket is flushed once when that callback returns,
 * so one read's worth of work costs one write per peer. psock_send = write
 * + flush. 0, or -1 if the socket is closing or TLS failed. */
int psock_write(struct psock *s, const char *d, size_t n);
void psock_flush(struct psock *s);
int psock_send(struct psock *s, const char *d, size_t n);
/* Several pieces as if one (psock_write of each). */
int psock_writev(struct psock *s, const uv_buf_t *b, int n);

int psock_congested(const struct psock *s);

/* The connection will be idle for long (a held long poll): give TLS record
 * buffers back after every read and write rather than at the next sweep. */
void psock_lean(struct psock *s, int on);

/* Close now (pending writes are dropped). */
void psock_close(struct psock *s);
/* Send close_notify, let queued bytes go out, then close. */
void psock_close_graceful(struct psock *s);

/* The peer's address as text ("192.0.2.1", "2001:db8::1"). */
/* An address as text, IPv4-mapped IPv6 shown as IPv4. */
void psock_addr_text(const struct sockaddr *sa, char *buf, size_t len);
void psock_peer_text(const struct psock *s, char *buf, size_t len);

#endif
