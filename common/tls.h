/*
 * tls: OpenSSL contexts and a TLS session that does no I/O of its own.
 *
 * The event loop owns the socket; a tls_conn only turns ciphertext into
 * plaintext and back. Ciphertext in is handed to tls_conn_feed() straight from
 * the loop's read buffer (a custom BIO reads it in place, so a connection holds
 * no input buffer of its own); ciphertext out goes to the owner's emit callback
 * the moment OpenSSL produces it. Record buffers are kept only while a
 * connection is busy (tls_sweep below): a held long poll costs the SSL object
 * and little else. The same code serves the client-facing (server) side and
 * the upstream (client) side.
 *
 * Contexts are shared by every worker thread (SSL_CTX is thread safe) and
 * reference-counted; a tls_conn belongs to one thread.
 */
#ifndef EG_TLS_H
#define EG_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

struct tls_ctx;
struct tls_conn;

struct tls_server_opts {
    const char *cert;      /* PEM certificate chain file */
    const char *key;       /* PEM private key file */
    const char *client_ca; /* PEM CA file for client certificates, or NULL */
    int client_required;   /* 1 = handshake fails without a valid client certificate */
};

/* Build a server context: TLS 1.2 and 1.3, modern AEAD ciphers, ALPN
 * http/1.1. 0 on success; on failure -1 and a message in err. */
int tls_ctx_server(const struct tls_server_opts *opts, struct tls_ctx **out, char *err,
                   size_t errlen);

/* Build a client context for upstream connections: certificates verified
 * against ca_file (or the system store when NULL) unless verify is 0. */
int tls_ctx_client(const char *ca_file, int verify, struct tls_ctx **out, char *err, size_t errlen);

/* Contexts are reference-counted: every session holds one reference, so a
 * context replaced on reload lives on until its last connection is gone.
 * tls_ctx_free drops the caller's reference. */
struct tls_ctx *tls_ctx_ref(struct tls_ctx *ctx);
void tls_ctx_free(struct tls_ctx *ctx);

/* Check client certificates against a CRL too (X509_V_FLAG_CRL_CHECK):
 * revoked ones fail the handshake, also on a resumed session. ca_file is
 * the server context's client CA file; crl_file is DER or PEM and must be
 * signed by a CA in ca_file. 0, or -1 with "FILE: what is wrong" in err. */
int tls_ctx_server_crl(struct tls_ctx *ctx, const char *ca_file, const char *crl_file, char *err,
                       size_t errlen);

/* Reload the client CRL when its file changed (inode, size or mtime): a
 * stat() and, on change, a parse. Not for the request path: the proxy's main
 * loop calls it once a second. 0 unchanged (or no CRL), 1 reloaded, -1 the
 * new file is broken (message in err; the old CRL stays in force). */
int tls_ctx_crl_refresh(struct tls_ctx *ctx, char *err, size_t errlen);
/* Does the server context's current CRL list certificate x (issuer and
 * serial)? 1 or 0 (no CRL, no x). For connections opened before the CRL
 * changed: the handshake checked them against the CRL of its time. */
int tls_ctx_revoked(struct tls_ctx *ctx, X509 *x);
/* The CRL file a server context checks against, or NULL. */
const char *tls_ctx_crl_path(const struct tls_ctx *ctx);

/* The callbacks a session calls into its owner. */
struct tls_cbs {
    /* Ciphertext to put on the wire, in order. Must accept all of it. */
    void (*emit)(void *owner, const char *data, size_t len);
    /* Plaintext that arrived. Return 0 to go on, nonzero if the owner has
     * stopped (closed): the session must not be touched again. */
    int (*plain)(void *owner, const char *data, size_t len);
    /* The handshake finished. Same return convention as plain. */
    int (*ready)(void *owner);
};

/* A session. For a client session, sni names the server (also checked
 * against its certificate when verifying) and *session_slot, when not NULL,
 * holds a resumable session that the connection both uses and refreshes
 * (the slot owns its reference; free it with tls_session_free). */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, const struct tls_cbs *cbs, void *owner,
                              const char *sni, SSL_SESSION **session_slot);
void tls_conn_free(struct tls_conn *t);

/* Start the handshake (client side emits its ClientHello). 0 or -1. */
int tls_conn_start(struct tls_conn *t);

/* Ciphertext from the socket. Runs the handshake and delivers plaintext.
 * Returns 0 (go on), 1 (the owner stopped inside a callback: t may be gone),
 * -1 (TLS error: see tls_conn_error), or 2 (the peer closed cleanly). */
int tls_conn_feed(struct tls_conn *t, const char *data, size_t len);

/* Encrypt plaintext; the records go out through emit. 0 or -1. */
int tls_conn_write(struct tls_conn *t, const char *data, size_t len);

/* Send close_notify through emit (best effort). */
void tls_conn_shutdown(struct tls_conn *t);

int tls_conn_is_ready(const struct tls_conn *t);
int tls_conn_resumed(const struct tls_conn *t);

/* The verified client certificate, or NULL. Borrowed: valid while t lives. */
X509 *tls_conn_peer_cert(const struct tls_conn *t);

/* The last error as text ("certificate verify failed", ...). */
const char *tls_conn_error(const struct tls_conn *t);

void tls_session_free(SSL_SESSION **slot);

/* Record buffers (about 17 KiB each way). A connection starts lean: it gives
 * them back after each read and write. Once its owner turns lean off (the
 * connection is busy: keep-alive requests, a pooled upstream connection) it
 * keeps them, and tls_sweep, called about once a second by the thread that
 * owns the connections, frees those of every connection not used since the
 * previous sweep. A thread that never sweeps leaves its connections lean. */
void tls_sweep(void);
void tls_conn_set_lean(struct tls_conn *t, int on);
/* Connections of this thread holding buffers until a sweep (for tests and
 * metrics). */
size_t tls_busy_count(void);

#endif
