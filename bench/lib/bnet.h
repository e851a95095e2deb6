/*
 * bnet: one TCP connection over libuv, with optional TLS done through
 * OpenSSL memory BIOs, for the bench tools (exsim and easload) only.
 *
 * The bench kit deliberately does not share the proxy's TLS/HTTP plumbing,
 * so that the thing measuring cannot hide a bug in the thing measured. It is
 * kept small: no backpressure beyond libuv's write queue, whole writes copied
 * once, one shared read buffer per process (every bench tool runs one loop
 * per process).
 *
 * Life cycle: the owner embeds or allocates a struct bnet_conn, sets the
 * callbacks and data, then calls bnet_accept() or bnet_connect(). It calls
 * bnet_close() once; on_close runs after libuv has let go of the handle and
 * is the only place the owner may free the memory. c->err says why it closed.
 */
#ifndef EG_BENCH_BNET_H
#define EG_BENCH_BNET_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

/* c->err after close; 0 = closed by us or a clean end of stream. */
enum bnet_err {
    BNET_OK = 0,
    BNET_ECONNECT = -1, /* TCP connect failed */
    BNET_ETLS = -2,     /* handshake or record-layer failure */
    BNET_EEOF = -3,     /* peer closed */
    BNET_EIO = -4,      /* read or write error */
};

struct bnet_conn;
typedef void (*bnet_data_cb)(struct bnet_conn *c, const char *buf, size_t len);
typedef void (*bnet_conn_cb)(struct bnet_conn *c);

struct bnet_conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    SSL *ssl; /* NULL for plain TCP */
    BIO *rbio, *wbio;
    void *data;            /* the owner's */
    bnet_data_cb on_data;  /* plaintext arrived */
    bnet_conn_cb on_ready; /* client: connected and handshake done */
    bnet_conn_cb on_close; /* handle released; free here */
    int err;               /* enum bnet_err, set before on_close */
    unsigned handshake_done : 1;
    unsigned closing : 1;
    unsigned reading : 1;
    unsigned resumed : 1; /* client: TLS session was resumed */
    unsigned close_drained : 1;
    size_t write_queued; /* bytes handed to libuv, not yet written */
    uint64_t bytes_in, bytes_out;
};

/* Accept a pending connection on server into c (TLS if ctx is not NULL) and
 * start reading. Returns 0, after which on_close always runs once (also when
 * the accept itself failed), or negative when nothing was set up. */
int bnet_accept(uv_stream_t *server, struct bnet_conn *c, SSL_CTX *ctx);

/* Connect to addr; on_ready runs when the connection (and TLS handshake) is
 * up, or on_close with c->err set if it fails. sess (may be NULL) is offered
 * for resumption; sni may be NULL. Returns 0, after which on_close always
 * runs once, or negative when nothing was set up. */
int bnet_connect(uv_loop_t *loop, struct bnet_conn *c, const struct sockaddr *addr, SSL_CTX *ctx,
                 SSL_SESSION *sess, const char *sni);

/* Queue len bytes of plaintext; copied, so buf may be reused at once.
 * Returns 0 or negative (the connection is then being closed). */
int bnet_write(struct bnet_conn *c, const void *buf, size_t len);

/* Close (idempotent). err is recorded in c->err unless one is already set. */
void bnet_close(struct bnet_conn *c, int err);

/* Close once every queued byte has been written (an answer sent with
 * "Connection: close" must arrive whole). */
void bnet_close_after_write(struct bnet_conn *c);

/* Stop / restart reading from the socket (held requests need no reads). */
void bnet_pause(struct bnet_conn *c);
void bnet_resume(struct bnet_conn *c);

/* TLS contexts. Server: cert and key files, session cache and tickets on.
 * Client: verify against cafile if given, otherwise verify nothing (bench
 * only). Both return NULL and fill err (size n) on failure. */
SSL_CTX *bnet_server_ctx(const char *cert, const char *key, char *err, size_t n);
SSL_CTX *bnet_client_ctx(const char *cafile, char *err, size_t n);

/* Parse "host:port", "[v6]:port" or ":port" (= 127.0.0.1) into ss. 0 or -1. */
int bnet_parse_addr(const char *s, struct sockaddr_storage *ss);

/* Bind and listen a libuv TCP server on addr. reuseport: set SO_REUSEPORT so
 * several worker processes can each hold their own listening socket.
 * Returns 0 or a negative error; fills err. */
int bnet_listen(uv_loop_t *loop, uv_tcp_t *srv, const struct sockaddr *addr, int reuseport,
                uv_connection_cb cb, char *err, size_t n);

#endif
