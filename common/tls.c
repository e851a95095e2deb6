/*
 * tls: sessions over a custom BIO that reads the loop's buffer in place and
 * writes straight to the owner. Why not BIO_s_mem: a memory BIO keeps the
 * largest buffer it ever held for the life of the connection, and a proxy
 * holding 100,000 idle long polls cannot afford that. Here the only per
 * connection state is the SSL object; record buffers are released when idle.
 */
#include "common/tls.h"

#include "common/log.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

/* Mozilla "intermediate" TLS 1.2 suites: ECDHE + AEAD only. TLS 1.3 keeps
 * OpenSSL's defaults, which are all AEAD. */
#define TLS_CIPHERS_12                                                                             \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* Largest plaintext one SSL_read returns (one record). */
#define TLS_PLAIN_MAX 16384

struct tls_ctx {
    SSL_CTX *ssl_ctx;
    int refs; /* atomic: the owner's reference and one per tls_conn */
    int client;
    /* Client CRL: the store a new server session verifies against (CA +
     * CRL) is swapped whole on reload, so a handshake in flight keeps the
     * store it started with (each SSL holds a reference). */
    pthread_mutex_t crl_lock;
    X509_STORE *vstore; /* NULL = no CRL configured */
    X509_CRL *crl;      /* the CRL in vstore, for resumed sessions */
    char *ca_path, *crl_path;
    struct stat crl_st;
};

struct tls_conn {
    SSL *ssl;
    struct tls_ctx *ctx;
    const struct tls_cbs *cbs;
    void *owner;
    const char *in; /* ciphertext not yet read by OpenSSL, valid during feed */
    size_t in_len;
    SSL_SESSION **session_slot;
    struct tls_conn *busy_prev, *busy_next; /* this thread's busy list */
    unsigned ready : 1, in_busy : 1, touched : 1, lean : 1, feeding : 1;
    char err[120];
};

/*
 * Record buffers (about 17 KiB each way) are what a TLS connection costs
 * beyond its SSL object. Freeing them after every record (OpenSSL's
 * SSL_MODE_RELEASE_BUFFERS) makes a busy keep-alive connection allocate and
 * free four of them per proxied request; keeping them forever makes 100,000
 * idle long polls cost 3 GiB. So: a connection that used its buffers goes on
 * its thread's busy list; tls_sweep(), called about once a second, frees the
 * buffers of every listed connection that was not used since the previous
 * sweep. A lean connection gives its buffers back after each read and write
 * instead: every connection starts lean (most phone connections carry one
 * long poll after another and would only hold buffers for the sweep to
 * free), and its owner turns that off once it has shown itself busy (a
 * keep-alive request done, a pooled upstream connection) and back on while
 * a long poll is held.
 */
static __thread struct tls_conn *busy_head;

static void busy_unlink(struct tls_conn *t)
{
    if (!t->in_busy)
        return;
    if (t->busy_prev)
        t->busy_prev->busy_next = t->busy_next;
    else
        busy_head = t->busy_next;
    if (t->busy_next)
        t->busy_next->busy_prev = t->busy_prev;
    t->busy_prev = t->busy_next = NULL;
    t->in_busy = 0;
}

/* After a read or write: keep the buffers for now, or give them back. */
static void used(struct tls_conn *t)
{
    if (t->lean) {
        if (SSL_free_buffers(t->ssl))
            busy_unlink(t);
        return;
    }
    t->touched = 1;
    if (t->in_busy)
        return;
    t->in_busy = 1;
    t->busy_prev = NULL;
    t->busy_next = busy_head;
    if (busy_head)
        busy_head->busy_prev = t;
    busy_head = t;
}

void tls_sweep(void)
{
    struct tls_conn *t = busy_head;
    while (t) {
        struct tls_conn *next = t->busy_next;
        if (t->touched)
            t->touched = 0;
        else if (SSL_free_buffers(t->ssl)) /* fails only with a record half read */
            busy_unlink(t);
        t = next;
    }
}

size_t tls_busy_count(void)
{
    size_t n = 0;
    for (const struct tls_conn *t = busy_head; t; t = t->busy_next)
        n++;
    return n;
}

void tls_conn_set_lean(struct tls_conn *t, int on)
{
    t->lean = on ? 1 : 0;
    if (on && !t->feeding && SSL_free_buffers(t->ssl))
        busy_unlink(t);
}

/* ERR_clear_error walks the whole error queue; peeking is a load. The queue
 * must be empty before an SSL call for SSL_get_error to be right. */
static void err_clear(void)
{
    if (ERR_peek_error())
        ERR_clear_error();
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;
static int conn_ex_index = -1;

static int bio_write(BIO *b, const char *data, int len)
{
    struct tls_conn *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len > 0)
        t->cbs->emit(t->owner, data, (size_t)len);
    return len;
}

static int bio_read(BIO *b, char *out, int len)
{
    struct tls_conn *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (t->in_len == 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    size_t n = (size_t)len < t->in_len ? (size_t)len : t->in_len;
    memcpy(out, t->in, n);
    t->in += n;
    t->in_len -= n;
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct tls_conn *t = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_PENDING:
        return t ? (long)t->in_len : 0;
    default:
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void bio_init_once(void)
{
    bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "easgate");
    BIO_meth_set_write(bio_method, bio_write);
    BIO_meth_set_read(bio_method, bio_read);
    BIO_meth_set_ctrl(bio_method, bio_ctrl);
    BIO_meth_set_create(bio_method, bio_create);
    conn_ex_index = SSL_get_ex_new_index(0, "easgate tls_conn", NULL, NULL, NULL);
}

static void ssl_err_text(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    snprintf(err, errlen, "%s%s%s", what, e ? ": " : "", buf);
    ERR_clear_error();
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    /* Only HTTP/1.1 is spoken; a client offering only h2 goes on without
     * ALPN rather than failing, as nginx does. */
    for (unsigned int i = 0; i < inlen;) {
        unsigned int l = in[i];
        if (i + 1 + l > inlen)
            break;
        if (l == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
            *out = in + i + 1;
            *outlen = (unsigned char)l;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + l;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static SSL_CTX *ctx_common(int server, char *err, size_t errlen)
{
    pthread_once(&bio_once, bio_init_once);
    SSL_CTX *c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!c) {
        ssl_err_text(err, errlen, "SSL_CTX_new");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE); /* buffers: see tls_sweep */
    if (SSL_CTX_set_cipher_list(c, TLS_CIPHERS_12) != 1) {
        ssl_err_text(err, errlen, "cipher list");
        SSL_CTX_free(c);
        return NULL;
    }
    return c;
}

static X509_CRL *crl_read(const char *path, char *err, size_t errlen)
{
    BIO *b = BIO_new_file(path, "rb");
    if (!b) {
        snprintf(err, errlen, "%s: cannot open the CRL", path);
        return NULL;
    }
    /* enroll writes DER; PEM is accepted for CRLs made elsewhere. */
    X509_CRL *crl = d2i_X509_CRL_bio(b, NULL);
    if (!crl) {
        (void)BIO_reset(b);
        crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL);
    }
    BIO_free(b);
    ERR_clear_error();
    if (!crl)
        snprintf(err, errlen, "%s: not a CRL (neither DER nor PEM)", path);
    return crl;
}

/* CA file + CRL into a fresh store with CRL checking on. The CRL must be
 * signed by one of the CAs: a CRL of another CA would make every
 * handshake fail with "unable to get certificate CRL". */
static X509_STORE *crl_store(const char *ca_path, const char *crl_path, X509_CRL **crl_out,
                             char *err, size_t errlen)
{
    X509_CRL *crl = crl_read(crl_path, err, errlen);
    if (!crl)
        return NULL;
    X509_STORE *st = X509_STORE_new();
    if (!st || X509_STORE_load_file(st, ca_path) != 1) {
        snprintf(err, errlen, "%s: cannot load client CA", ca_path);
        goto fail;
    }
    int signed_ok = 0;
    STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(st);
    for (int i = 0; i < sk_X509_OBJECT_num(objs) && !signed_ok; i++) {
        X509 *ca = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
        if (ca && X509_NAME_cmp(X509_get_subject_name(ca), X509_CRL_get_issuer(crl)) == 0)
            signed_ok = X509_CRL_verify(crl, X509_get0_pubkey(ca)) == 1;
    }
    if (!signed_ok) {
        snprintf(err, errlen, "%s: the CRL is not signed by a CA in %s", crl_path, ca_path);
        goto fail;
    }
    if (X509_STORE_add_crl(st, crl) != 1) {
        snprintf(err, errlen, "%s: cannot add the CRL", crl_path);
        goto fail;
    }
    X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK);
    ERR_clear_error();
    *crl_out = crl;
    return st;
fail:
    ERR_clear_error();
    X509_STORE_free(st);
    X509_CRL_free(crl);
    return NULL;
}

static int crl_install(struct tls_ctx *t, char *err, size_t errlen)
{
    struct stat sb;
    if (stat(t->crl_path, &sb) < 0) {
        snprintf(err, errlen, "%s: cannot read the CRL", t->crl_path);
        return -1;
    }
    X509_CRL *crl = NULL;
    X509_STORE *st = crl_store(t->ca_path, t->crl_path, &crl, err, errlen);
    if (!st)
        return -1;
    const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
    if (next && X509_cmp_current_time(next) < 0)
        eg_warn("%s: the CRL has expired (next update passed): client certificates fail "
                "until a fresh one is written",
                t->crl_path);
    pthread_mutex_lock(&t->crl_lock);
    X509_STORE *old = t->vstore;
    X509_CRL *oldcrl = t->crl;
    t->vstore = st;
    t->crl = crl;
    t->crl_st = sb;
    pthread_mutex_unlock(&t->crl_lock);
    X509_STORE_free(old);
    X509_CRL_free(oldcrl);
    return 1;
}

const char *tls_ctx_crl_path(const struct tls_ctx *ctx)
{
    return ctx ? ctx->crl_path : NULL;
}

int tls_ctx_crl_refresh(struct tls_ctx *t, char *err, size_t errlen)
{
    if (!t || !t->crl_path)
        return 0;
    struct stat sb;
    if (stat(t->crl_path, &sb) < 0) {
        /* Said once, not every second; loaded again once it is back. */
        if (t->crl_st.st_ino == 0)
            return 0;
        snprintf(err, errlen, "%s: cannot read the CRL", t->crl_path);
        t->crl_st.st_ino = 0;
        return -1;
    }
    if (sb.st_ino == t->crl_st.st_ino && sb.st_size == t->crl_st.st_size &&
        sb.st_mtim.tv_sec == t->crl_st.st_mtim.tv_sec &&
        sb.st_mtim.tv_nsec == t->crl_st.st_mtim.tv_nsec)
        return 0;
    int r = crl_install(t, err, errlen);
    if (r < 0)
        t->crl_st = sb; /* report a broken file once, not every second */
    return r;
}

int tls_ctx_server_crl(struct tls_ctx *t, const char *ca_file, const char *crl_file, char *err,
                       size_t errlen)
{
    if (t->client || t->crl_path) {
        snprintf(err, errlen, "%s: not a server context, or it has a CRL already", crl_file);
        return -1;
    }
    t->ca_path = strdup(ca_file);
    t->crl_path = strdup(crl_file);
    if (!t->ca_path || !t->crl_path) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (crl_install(t, err, errlen) < 0)
        return -1;
    X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(t->ssl_ctx), X509_V_FLAG_CRL_CHECK);
    return 0;
}

int tls_ctx_revoked(struct tls_ctx *c, X509 *x)
{
    if (!c || c->client || !c->crl_path || !x)
        return 0;
    X509_REVOKED *rev = NULL;
    pthread_mutex_lock(&c->crl_lock);
    int hit = c->crl && X509_CRL_get0_by_cert(c->crl, &rev, x) == 1;
    pthread_mutex_unlock(&c->crl_lock);
    return hit;
}

/* A resumed session skips certificate verification; the CRL must still
 * refuse a certificate revoked since the session was made. */
static int resumed_revoked(struct tls_conn *t)
{
    struct tls_ctx *c = t->ctx;
    if (!c || !SSL_session_reused(t->ssl))
        return 0;
    int hit = tls_ctx_revoked(c, SSL_get0_peer_certificate(t->ssl));
    if (hit) {
        SSL_CTX_remove_session(c->ssl_ctx, SSL_get0_session(t->ssl));
        snprintf(t->err, sizeof(t->err), "certificate verify failed: certificate revoked");
    }
    return hit;
}

int tls_ctx_server(const struct tls_server_opts *o, struct tls_ctx **out, char *err, size_t errlen)
{
    SSL_CTX *c = ctx_common(1, err, errlen);
    if (!c)
        return -1;
    if (SSL_CTX_use_certificate_chain_file(c, o->cert) != 1) {
        char what[300];
        snprintf(what, sizeof(what), "%s: cannot load certificate", o->cert);
        ssl_err_text(err, errlen, what);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(c, o->key, SSL_FILETYPE_PEM) != 1) {
        char what[300];
        snprintf(what, sizeof(what), "%s: cannot load private key", o->key);
        ssl_err_text(err, errlen, what);
        goto fail;
    }
    if (SSL_CTX_check_private_key(c) != 1) {
        ssl_err_text(err, errlen, "private key does not match the certificate");
        goto fail;
    }
    if (o->client_ca) {
        if (SSL_CTX_load_verify_locations(c, o->client_ca, NULL) != 1) {
            char what[300];
            snprintf(what, sizeof(what), "%s: cannot load client CA", o->client_ca);
            ssl_err_text(err, errlen, what);
            goto fail;
        }
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->client_ca);
        if (names)
            SSL_CTX_set_client_CA_list(c, names);
        SSL_CTX_set_verify(
            c, SSL_VERIFY_PEER | (o->client_required ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
    }
    static const unsigned char sid_ctx[] = "easgate";
    SSL_CTX_set_session_id_context(c, sid_ctx, sizeof(sid_ctx) - 1);
    SSL_CTX_set_num_tickets(c, 1);
    SSL_CTX_set_alpn_select_cb(c, alpn_select, NULL);

    struct tls_ctx *t = calloc(1, sizeof(*t));
    if (!t) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    t->ssl_ctx = c;
    t->refs = 1;
    pthread_mutex_init(&t->crl_lock, NULL);
    *out = t;
    return 0;
fail:
    SSL_CTX_free(c);
    return -1;
}

static int client_new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct tls_conn *t = SSL_get_ex_data(ssl, conn_ex_index);
    if (!t || !t->session_slot)
        return 0;
    if (*t->session_slot)
        SSL_SESSION_free(*t->session_slot);
    *t->session_slot = sess;
    return 1; /* we keep the reference */
}

int tls_ctx_client(const char *ca_file, int verify, struct tls_ctx **out, char *err, size_t errlen)
{
    SSL_CTX *c = ctx_common(0, err, errlen);
    if (!c)
        return -1;
    if (verify) {
        int ok = ca_file ? SSL_CTX_load_verify_locations(c, ca_file, NULL)
                         : SSL_CTX_set_default_verify_paths(c);
        if (ok != 1) {
            char what[300];
            snprintf(what, sizeof(what), "%s: cannot load CA", ca_file ? ca_file : "system");
            ssl_err_text(err, errlen, what);
            SSL_CTX_free(c);
            return -1;
        }
        SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
    }
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(c, alpn, sizeof(alpn) - 1);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c, client_new_session);

    struct tls_ctx *t = calloc(1, sizeof(*t));
    if (!t) {
        SSL_CTX_free(c);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    t->ssl_ctx = c;
    t->refs = 1;
    t->client = 1;
    pthread_mutex_init(&t->crl_lock, NULL);
    *out = t;
    return 0;
}

struct tls_ctx *tls_ctx_ref(struct tls_ctx *ctx)
{
    __atomic_add_fetch(&ctx->refs, 1, __ATOMIC_RELAXED);
    return ctx;
}

void tls_ctx_free(struct tls_ctx *ctx)
{
    if (!ctx || __atomic_sub_fetch(&ctx->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    SSL_CTX_free(ctx->ssl_ctx);
    X509_STORE_free(ctx->vstore);
    X509_CRL_free(ctx->crl);
    free(ctx->ca_path);
    free(ctx->crl_path);
    pthread_mutex_destroy(&ctx->crl_lock);
    free(ctx);
}

static int is_ip_literal(const char *host)
{
    unsigned char b[16];
    return inet_pton(AF_INET, host, b) == 1 || inet_pton(AF_INET6, host, b) == 1;
}

struct tls_conn *tls_conn_new(struct tls_ctx *ctx, const struct tls_cbs *cbs, void *owner,
                              const char *sni, SSL_SESSION **session_slot)
{
    struct tls_conn *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->ssl = SSL_new(ctx->ssl_ctx);
    BIO *b = BIO_new(bio_method);
    if (!t->ssl || !b) {
        BIO_free(b);
        SSL_free(t->ssl);
        free(t);
        return NULL;
    }
    BIO_set_data(b, t);
    SSL_set_bio(t->ssl, b, b);
    SSL_set_ex_data(t->ssl, conn_ex_index, t);
    t->cbs = cbs;
    t->owner = owner;
    t->lean = 1; /* until its owner says it is busy: see tls_sweep */
    if (ctx->client) {
        SSL_set_connect_state(t->ssl);
        t->session_slot = session_slot;
        if (sni && *sni) {
            if (is_ip_literal(sni)) {
                X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), sni);
            } else {
                SSL_set_tlsext_host_name(t->ssl, sni);
                SSL_set1_host(t->ssl, sni);
            }
        }
        if (session_slot && *session_slot)
            SSL_set_session(t->ssl, *session_slot);
    } else {
        SSL_set_accept_state(t->ssl);
        if (ctx->crl_path) {
            pthread_mutex_lock(&ctx->crl_lock);
            int ok = SSL_set1_verify_cert_store(t->ssl, ctx->vstore);
            pthread_mutex_unlock(&ctx->crl_lock);
            if (!ok) {
                SSL_free(t->ssl);
                free(t);
                return NULL;
            }
        }
    }
    t->ctx = tls_ctx_ref(ctx);
    return t;
}

void tls_conn_free(struct tls_conn *t)
{
    if (!t)
        return;
    /* OpenSSL marks a session it did not see shut down as not resumable.
     * Our connections end by a plain close (pool expiry, peer gone) far more
     * often than by close_notify; a session that never failed stays usable. */
    if (t->ready && !t->err[0])
        SSL_set_shutdown(t->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    busy_unlink(t);
    SSL_free(t->ssl); /* frees the BIO too */
    tls_ctx_free(t->ctx);
    free(t);
}

static int fail(struct tls_conn *t, SSL *ssl, int r)
{
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_ZERO_RETURN)
        return 2;
    long v = SSL_get_verify_result(ssl);
    unsigned long q = ERR_peek_error();
    if (v != X509_V_OK)
        snprintf(t->err, sizeof(t->err), "certificate verify failed: %s",
                 X509_verify_cert_error_string(v));
    else if (q)
        ERR_error_string_n(q, t->err, sizeof(t->err));
    else if (e == SSL_ERROR_SYSCALL)
        snprintf(t->err, sizeof(t->err), "unexpected end of stream");
    else
        snprintf(t->err, sizeof(t->err), "TLS error %d", e);
    ERR_clear_error();
    return -1;
}

int tls_conn_start(struct tls_conn *t)
{
    err_clear();
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        t->ready = 1;
        return 0;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        used(t);
        return 0;
    }
    fail(t, t->ssl, r);
    return -1;
}

int tls_conn_feed(struct tls_conn *t, const char *data, size_t len)
{
    static __thread char plain[TLS_PLAIN_MAX];
    SSL *ssl = t->ssl;
    t->in = data;
    t->in_len = len;
    err_clear();
    if (!t->ready) {
        int r = SSL_do_handshake(ssl);
        if (r != 1) {
            int e = SSL_get_error(ssl, r);
            t->in_len = 0;
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                used(t); /* between handshake flights */
                return 0;
            }
            return fail(t, ssl, r);
        }
        t->ready = 1;
        if (resumed_revoked(t)) {
            t->in_len = 0;
            return -1;
        }
        if (t->cbs->ready && t->cbs->ready(t->owner))
            return 1;
    }
    t->feeding = 1;
    for (;;) {
        int n = SSL_read(ssl, plain, sizeof(plain));
        if (n > 0) {
            if (t->cbs->plain(t->owner, plain, (size_t)n))
                return 1; /* the owner stopped: t must not be touched */
            /* all input taken and no record half read: the next SSL_read
             * could only say "want read", so do not ask */
            if (t->in_len == 0 && !SSL_has_pending(ssl))
                break;
            continue;
        }
        int e = SSL_get_error(ssl, n);
        t->in_len = 0;
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        t->feeding = 0;
        return fail(t, ssl, n);
    }
    t->feeding = 0;
    used(t);
    return 0;
}

int tls_conn_write(struct tls_conn *t, const char *data, size_t len)
{
    err_clear();
    while (len > 0) {
        int n = SSL_write(t->ssl, data, len > INT32_MAX ? INT32_MAX : (int)len);
        if (n <= 0) {
            fail(t, t->ssl, n);
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    if (!t->feeding)
        used(t);
    return 0;
}

void tls_conn_shutdown(struct tls_conn *t)
{
    if (t->ready) {
        ERR_clear_error();
        SSL_shutdown(t->ssl);
        ERR_clear_error();
    }
}

int tls_conn_is_ready(const struct tls_conn *t)
{
    return t->ready;
}

int tls_conn_resumed(const struct tls_conn *t)
{
    return SSL_session_reused(t->ssl);
}

X509 *tls_conn_peer_cert(const struct tls_conn *t)
{
    if (SSL_get_verify_result(t->ssl) != X509_V_OK)
        return NULL;
    return SSL_get0_peer_certificate(t->ssl);
}

const char *tls_conn_error(const struct tls_conn *t)
{
    return t->err[0] ? t->err : "TLS error";
}

void tls_session_free(SSL_SESSION **slot)
{
    if (slot && *slot) {
        SSL_SESSION_free(*slot);
        *slot = NULL;
    }
}
