/*
 * enr_ca: key pairs, the CA files, CSR checks, device certificates, the CRL
 * and PKCS#12 bundles. See ca.h for what a device certificate carries.
 */
#include "enroll/ca.h"

#include "common/log.h"
#include "enroll/err.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SKEW_S 300         /* notBefore this far back: phones with a slow clock still accept */
#define SERIAL_BYTES 16    /* 128 random bits */
#define FILE_MAX (1 << 20) /* a CA or CSR file larger than this is not one */

/* The OpenSSL reason of the last error, for messages; clears the queue. */
static const char *ossl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    if (!e) {
        snprintf(buf, len, "unknown error");
    } else {
        const char *r = ERR_reason_error_string(e);
        snprintf(buf, len, "%s", r ? r : "unknown error");
    }
    ERR_clear_error();
    return buf;
}

int enr_algo_parse(const char *s, enum enr_algo *out)
{
    static const struct {
        const char *name;
        enum enr_algo a;
    } t[] = {{"ec", ENR_ALGO_EC256},       {"ec256", ENR_ALGO_EC256}, {"p256", ENR_ALGO_EC256},
             {"p-256", ENR_ALGO_EC256},    {"ec384", ENR_ALGO_EC384}, {"p384", ENR_ALGO_EC384},
             {"p-384", ENR_ALGO_EC384},    {"rsa", ENR_ALGO_RSA3072}, {"rsa3072", ENR_ALGO_RSA3072},
             {"rsa2048", ENR_ALGO_RSA2048}};
    for (size_t i = 0; s && i < sizeof(t) / sizeof(t[0]); i++)
        if (strcasecmp(s, t[i].name) == 0) {
            *out = t[i].a;
            return 0;
        }
    return -1;
}

int enr_keygen(enum enr_algo algo, EVP_PKEY **out, char *err, size_t errlen)
{
    EVP_PKEY *k = NULL;
    switch (algo) {
    case ENR_ALGO_EC256:
        k = EVP_EC_gen("P-256");
        break;
    case ENR_ALGO_EC384:
        k = EVP_EC_gen("P-384");
        break;
    case ENR_ALGO_RSA2048:
        k = EVP_RSA_gen(2048);
        break;
    case ENR_ALGO_RSA3072:
        k = EVP_RSA_gen(3072);
        break;
    }
    if (!k) {
        char r[128];
        eg_errf(err, errlen, "key generation failed: %s", ossl_reason(r, sizeof(r)));
        return ENR_ECRYPTO;
    }
    *out = k;
    return 0;
}

/* ---- files --------------------------------------------------------------- */

int enr_write_file(const char *path, const void *buf, size_t len, int mode, char *err,
                   size_t errlen)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
        eg_errf(err, errlen, "%s: path too long", path);
        return ENR_EIO;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        eg_errf(err, errlen, "%s: %s", tmp, strerror(errno));
        return ENR_EIO;
    }
    const unsigned char *p = buf;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            eg_errf(err, errlen, "%s: %s", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            return ENR_EIO;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fchmod(fd, (mode_t)mode) < 0 || fsync(fd) < 0 || close(fd) < 0) {
        eg_errf(err, errlen, "%s: %s", tmp, strerror(errno));
        unlink(tmp);
        return ENR_EIO;
    }
    if (rename(tmp, path) < 0) {
        eg_errf(err, errlen, "%s: %s", path, strerror(errno));
        unlink(tmp);
        return ENR_EIO;
    }
    return 0;
}

int enr_read_file(const char *path, size_t max, unsigned char **buf, size_t *len, char *err,
                  size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        eg_errf(err, errlen, "%s: %s", path, strerror(errno));
        return errno == ENOENT ? ENR_ENOTFOUND : ENR_EIO;
    }
    unsigned char *b = malloc(max + 1);
    if (!b) {
        fclose(f);
        return ENR_ENOMEM;
    }
    size_t n = fread(b, 1, max + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n > max) {
        eg_errf(err, errlen, "%s: %s", path, bad ? "read error" : "file too large");
        free(b);
        return ENR_EIO;
    }
    b[n] = 0;
    *buf = b;
    *len = n;
    return 0;
}

/* PEM of whatever fn writes into a memory BIO, malloc'd and NUL-terminated. */
static int bio_take(BIO *b, char **out, size_t *len)
{
    char *p;
    long n = BIO_get_mem_data(b, &p);
    if (n < 0)
        return ENR_ECRYPTO;
    char *c = malloc((size_t)n + 1);
    if (!c)
        return ENR_ENOMEM;
    memcpy(c, p, (size_t)n);
    c[n] = 0;
    *out = c;
    if (len)
        *len = (size_t)n;
    return 0;
}

int enr_cert_pem(X509 *cert, char **pem, size_t *len)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (!b)
        return ENR_ENOMEM;
    int rc = PEM_write_bio_X509(b, cert) == 1 ? bio_take(b, pem, len) : ENR_ECRYPTO;
    BIO_free(b);
    return rc;
}

/* Write the CA's key (0600, refusing to replace a file) and certificate. */
static int ca_write(const char *cert_path, const char *key_path, X509 *cert, EVP_PKEY *key,
                    char *err, size_t errlen)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (!b)
        return ENR_ENOMEM;
    int rc = ENR_ECRYPTO;
    char *p = NULL;
    long n = 0;
    if (PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) == 1)
        n = BIO_get_mem_data(b, &p);
    if (n > 0) {
        int fd = open(key_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            eg_errf(err, errlen, "%s: %s", key_path, strerror(errno));
            rc = errno == EEXIST ? ENR_EEXIST : ENR_EIO;
        } else {
            ssize_t w = write(fd, p, (size_t)n);
            int ok = w == n && fsync(fd) == 0;
            ok = close(fd) == 0 && ok;
            rc = ok ? 0 : ENR_EIO;
            if (!ok) {
                eg_errf(err, errlen, "%s: write failed", key_path);
                unlink(key_path);
            }
        }
    }
    OPENSSL_cleanse(p, n > 0 ? (size_t)n : 0); /* the key's PEM must not linger in memory */
    BIO_free(b);
    if (rc < 0)
        return rc;
    char *pem = NULL;
    size_t len = 0;
    rc = enr_cert_pem(cert, &pem, &len);
    if (rc == 0)
        rc = enr_write_file(cert_path, pem, len, 0644, err, errlen);
    free(pem);
    if (rc < 0)
        unlink(key_path);
    return rc;
}

/* ---- certificates -------------------------------------------------------- */

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!e)
        return -1;
    int ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok ? 0 : -1;
}

/* A random positive serial of SERIAL_BYTES octets into x and hex. */
static int set_serial(X509 *x, char hex[ENR_SERIAL_HEX + 1])
{
    unsigned char b[SERIAL_BYTES];
    if (RAND_bytes(b, sizeof(b)) != 1)
        return -1;
    b[0] = (unsigned char)((b[0] & 0x7f) | 0x40); /* positive, and always 16 octets long */
    BIGNUM *bn = BN_bin2bn(b, sizeof(b), NULL);
    ASN1_INTEGER *ai = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
    int rc = ai && X509_set_serialNumber(x, ai) ? 0 : -1;
    if (rc == 0 && hex) {
        char *h = BN_bn2hex(bn);
        if (h && strlen(h) <= ENR_SERIAL_HEX)
            snprintf(hex, ENR_SERIAL_HEX + 1, "%s", h);
        else
            rc = -1;
        OPENSSL_free(h);
    }
    ASN1_INTEGER_free(ai);
    BN_free(bn);
    return rc;
}

static const EVP_MD *md_for(EVP_PKEY *key)
{
    return EVP_PKEY_get_bits(key) >= 384 && EVP_PKEY_get_base_id(key) == EVP_PKEY_EC ? EVP_sha384()
                                                                                     : EVP_sha256();
}

int enr_ca_create(const char *cert_path, const char *key_path, const char *cn, enum enr_algo algo,
                  int validity_days, char *err, size_t errlen)
{
    if (access(key_path, F_OK) == 0 || access(cert_path, F_OK) == 0) {
        eg_errf(err, errlen, "%s exists; refusing to replace a CA (move it away first)",
                access(key_path, F_OK) == 0 ? key_path : cert_path);
        return ENR_EEXIST;
    }
    EVP_PKEY *key = NULL;
    int rc = enr_keygen(algo, &key, err, errlen);
    if (rc < 0)
        return rc;
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    rc = ENR_ECRYPTO;
    if (x && name && X509_set_version(x, X509_VERSION_3) && set_serial(x, NULL) == 0 &&
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                   0) &&
        X509_set_subject_name(x, name) && X509_set_issuer_name(x, name) &&
        X509_gmtime_adj(X509_getm_notBefore(x), -SKEW_S) &&
        X509_gmtime_adj(X509_getm_notAfter(x), (long)validity_days * 86400L) &&
        X509_set_pubkey(x, key) &&
        add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") == 0 &&
        add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") == 0 &&
        add_ext(x, x, NID_subject_key_identifier, "hash") == 0 &&
        X509_sign(x, key, md_for(key)) > 0)
        rc = 0;
    if (rc < 0) {
        char r[128];
        eg_errf(err, errlen, "making the CA certificate failed: %s", ossl_reason(r, sizeof(r)));
    } else {
        rc = ca_write(cert_path, key_path, x, key, err, errlen);
    }
    X509_NAME_free(name);
    X509_free(x);
    EVP_PKEY_free(key);
    return rc;
}

static int ca_check(X509 *cert, EVP_PKEY *key, const char *src, char *err, size_t errlen)
{
    if (X509_check_ca(cert) < 1) {
        eg_errf(err, errlen, "%s: the certificate is not a CA (basicConstraints CA:TRUE missing)",
                src);
        return ENR_EINVAL;
    }
    if (X509_check_private_key(cert, key) != 1) {
        ERR_clear_error();
        eg_errf(err, errlen, "%s: the private key does not belong to the certificate", src);
        return ENR_EINVAL;
    }
    return 0;
}

int enr_ca_import(const char *src, const char *key_src, const char *password, const char *cert_path,
                  const char *key_path, char *err, size_t errlen)
{
    if (access(key_path, F_OK) == 0 || access(cert_path, F_OK) == 0) {
        eg_errf(err, errlen, "%s exists; refusing to replace a CA (move it away first)",
                access(key_path, F_OK) == 0 ? key_path : cert_path);
        return ENR_EEXIST;
    }
    unsigned char *buf = NULL, *kbuf = NULL;
    size_t len = 0, klen = 0;
    int rc = enr_read_file(src, FILE_MAX, &buf, &len, err, errlen);
    if (rc < 0)
        return rc;
    if (key_src && (rc = enr_read_file(key_src, FILE_MAX, &kbuf, &klen, err, errlen)) < 0) {
        free(buf);
        return rc;
    }
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    char r[128];
    if (len > 10 && memmem(buf, len, "-----BEGIN", 10)) {
        BIO *b = BIO_new_mem_buf(buf, (int)len);
        cert = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
        b = key_src ? BIO_new_mem_buf(kbuf, (int)klen) : BIO_new_mem_buf(buf, (int)len);
        key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, (void *)(password ? password : "")) : NULL;
        BIO_free(b);
        if (!cert || !key)
            eg_errf(err, errlen, "%s: no %s found (%s)",
                    !cert     ? src
                    : key_src ? key_src
                              : src,
                    !cert ? "PEM certificate" : "PEM private key (wrong password?)",
                    ossl_reason(r, sizeof(r)));
    } else {
        const unsigned char *p = buf;
        PKCS12 *p12 = d2i_PKCS12(NULL, &p, (long)len);
        STACK_OF(X509) *chain = NULL;
        if (!p12)
            eg_errf(err, errlen, "%s: neither PEM nor PKCS#12 (%s)", src,
                    ossl_reason(r, sizeof(r)));
        else if (!PKCS12_parse(p12, password ? password : "", &key, &cert, &chain))
            eg_errf(err, errlen, "%s: cannot open the PKCS#12 (wrong password?): %s", src,
                    ossl_reason(r, sizeof(r)));
        else if (!cert || !key)
            eg_errf(err, errlen, "%s: the PKCS#12 holds no certificate with its key", src);
        sk_X509_pop_free(chain, X509_free);
        PKCS12_free(p12);
    }
    rc = cert && key ? ca_check(cert, key, src, err, errlen) : ENR_EINVAL;
    if (rc == 0)
        rc = ca_write(cert_path, key_path, cert, key, err, errlen);
    if (kbuf)
        OPENSSL_cleanse(kbuf, klen);
    OPENSSL_cleanse(buf, len);
    free(kbuf);
    free(buf);
    X509_free(cert);
    EVP_PKEY_free(key);
    return rc;
}

int enr_ca_load(const char *cert_path, const char *key_path, struct enr_ca *ca, char *err,
                size_t errlen)
{
    memset(ca, 0, sizeof(*ca));
    char r[128];
    FILE *f = fopen(cert_path, "r");
    if (!f) {
        eg_errf(err, errlen, "%s: %s (run easgate core init-ca first)", cert_path, strerror(errno));
        return ENR_ENOTFOUND;
    }
    ca->cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (!ca->cert) {
        eg_errf(err, errlen, "%s: not a PEM certificate (%s)", cert_path,
                ossl_reason(r, sizeof(r)));
        return ENR_EINVAL;
    }
    f = fopen(key_path, "r");
    if (!f) {
        eg_errf(err, errlen, "%s: %s", key_path, strerror(errno));
        enr_ca_free(ca);
        return ENR_ENOTFOUND;
    }
    ca->key = PEM_read_PrivateKey(f, NULL, NULL, (void *)"");
    fclose(f);
    int rc = ca->key ? ca_check(ca->cert, ca->key, cert_path, err, errlen) : ENR_EINVAL;
    if (!ca->key)
        eg_errf(err, errlen, "%s: not an unencrypted PEM private key (%s)", key_path,
                ossl_reason(r, sizeof(r)));
    if (rc < 0)
        enr_ca_free(ca);
    return rc;
}

void enr_ca_free(struct enr_ca *ca)
{
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    ca->cert = NULL;
    ca->key = NULL;
}

/* ---- CSRs ---------------------------------------------------------------- */

int enr_key_check(EVP_PKEY *pub, char *err, size_t errlen)
{
    int bits = EVP_PKEY_get_bits(pub);
    switch (EVP_PKEY_get_base_id(pub)) {
    case EVP_PKEY_RSA:
        if (bits < 2048) {
            eg_errf(err, errlen, "RSA key of %d bits is too weak (at least 2048 bits)", bits);
            return ENR_EWEAK;
        }
        return 0;
    case EVP_PKEY_EC: {
        char group[64] = "";
        size_t glen = 0;
        if (!EVP_PKEY_get_utf8_string_param(pub, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                            &glen))
            group[0] = 0;
        if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0 ||
            strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0)
            return 0;
        eg_errf(err, errlen, "EC curve %s is not accepted (use P-256 or P-384)",
                group[0] ? group : "(unnamed)");
        return ENR_EWEAK;
    }
    default:
        eg_errf(err, errlen, "key type %s is not accepted (use RSA >= 2048 or EC P-256/P-384)",
                OBJ_nid2sn(EVP_PKEY_get_base_id(pub)));
        return ENR_EWEAK;
    }
}

int enr_csr_parse(const unsigned char *buf, size_t len, EVP_PKEY **pub, char *err, size_t errlen)
{
    X509_REQ *req = NULL;
    char r[128];
    if (len == 0 || len > FILE_MAX) {
        eg_errf(err, errlen, "CSR is %s", len ? "too large" : "empty");
        return ENR_EINVAL;
    }
    if (len > 10 && memmem(buf, len, "-----BEGIN", 10)) {
        BIO *b = BIO_new_mem_buf(buf, (int)len);
        req = b ? PEM_read_bio_X509_REQ(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
    } else {
        const unsigned char *p = buf;
        req = d2i_X509_REQ(NULL, &p, (long)len);
        if (req && p != buf + len) { /* trailing bytes: not one DER CSR */
            X509_REQ_free(req);
            req = NULL;
        }
    }
    if (!req) {
        eg_errf(err, errlen, "malformed CSR: not a PKCS#10 request in PEM or DER (%s)",
                ossl_reason(r, sizeof(r)));
        return ENR_EINVAL;
    }
    EVP_PKEY *k = X509_REQ_get_pubkey(req);
    int rc = 0;
    if (!k) {
        eg_errf(err, errlen, "malformed CSR: unreadable public key (%s)",
                ossl_reason(r, sizeof(r)));
        rc = ENR_EINVAL;
    } else if (X509_REQ_verify(req, k) != 1) {
        ERR_clear_error();
        eg_errf(err, errlen,
                "CSR signature does not verify (the request was altered or is not "
                "signed by its own key)");
        rc = ENR_ESIG;
    } else {
        rc = enr_key_check(k, err, errlen);
    }
    X509_REQ_free(req);
    if (rc < 0)
        EVP_PKEY_free(k);
    else
        *pub = k;
    return rc;
}

/* ---- device certificates ------------------------------------------------- */

static int add_gen(GENERAL_NAMES *gens, int type, const char *value)
{
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *s = ASN1_IA5STRING_new();
    if (!gn || !s || !ASN1_STRING_set(s, value, -1)) {
        GENERAL_NAME_free(gn);
        ASN1_IA5STRING_free(s);
        return -1;
    }
    GENERAL_NAME_set0_value(gn, type, s);
    if (!sk_GENERAL_NAME_push(gens, gn)) {
        GENERAL_NAME_free(gn);
        return -1;
    }
    return 0;
}

/* IA5String holds ASCII only; a SAN with anything else would not parse on the phone. */
static int is_ascii_printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
            return 0;
    return 1;
}

int enr_ca_issue(const struct enr_ca *ca, const struct enr_subject *s, EVP_PKEY *pub, int64_t now_s,
                 int64_t validity_s, X509 **out, char serial[ENR_SERIAL_HEX + 1], char *err,
                 size_t errlen)
{
    char urn[128];
    bool enr = s->enrollment && *s->enrollment;
    if (!s->user || !*s->user || (!enr && (!s->device_id || !*s->device_id))) {
        eg_errf(err, errlen, "a certificate needs a user and a DeviceId (or an enrollment id)");
        return ENR_EINVAL;
    }
    if (s->email && *s->email && !is_ascii_printable(s->email)) {
        eg_errf(err, errlen, "e-mail address '%s' is not plain ASCII", s->email);
        return ENR_EINVAL;
    }
    snprintf(urn, sizeof(urn), "%s%s", enr ? ENR_ENRURN_PREFIX : ENR_DEVURN_PREFIX,
             enr ? s->enrollment : s->device_id);
    int rc = enr_key_check(pub, err, errlen);
    if (rc < 0)
        return rc;
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    rc = ENR_ECRYPTO;
    int is_rsa = EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA;
    if (!x || !name || !gens)
        goto out;
    if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)s->user, -1,
                                    -1, 0)) {
        ERR_clear_error();
        eg_errf(err, errlen, "user '%s' cannot be a certificate CN (at most 64 characters)",
                s->user);
        rc = ENR_EINVAL;
        goto out;
    }
    if (add_gen(gens, GEN_URI, urn) < 0 ||
        (s->email && *s->email && add_gen(gens, GEN_EMAIL, s->email) < 0))
        goto out;
    if (X509_set_version(x, X509_VERSION_3) && set_serial(x, serial) == 0 &&
        X509_set_subject_name(x, name) &&
        X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) &&
        ASN1_TIME_set(X509_getm_notBefore(x), (time_t)(now_s - SKEW_S)) &&
        ASN1_TIME_set(X509_getm_notAfter(x), (time_t)(now_s + validity_s)) &&
        X509_set_pubkey(x, pub) &&
        add_ext(x, ca->cert, NID_basic_constraints, "critical,CA:FALSE") == 0 &&
        add_ext(x, ca->cert, NID_key_usage,
                is_rsa ? "critical,digitalSignature,keyEncipherment"
                       : "critical,digitalSignature") == 0 &&
        add_ext(x, ca->cert, NID_ext_key_usage, "clientAuth") == 0 &&
        add_ext(x, ca->cert, NID_subject_key_identifier, "hash") == 0 &&
        add_ext(x, ca->cert, NID_authority_key_identifier, "keyid:always") == 0 &&
        X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) == 1 &&
        X509_sign(x, ca->key, md_for(ca->key)) > 0)
        rc = 0;
out:
    if (rc == ENR_ECRYPTO) {
        char r[128];
        eg_errf(err, errlen, "issuing the certificate failed: %s", ossl_reason(r, sizeof(r)));
    }
    GENERAL_NAMES_free(gens);
    X509_NAME_free(name);
    if (rc < 0)
        X509_free(x);
    else
        *out = x;
    return rc;
}

int64_t enr_cert_not_after(X509 *cert)
{
    struct tm tm;
    if (!ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm))
        return 0;
    return (int64_t)timegm(&tm);
}

/* ---- CRL ----------------------------------------------------------------- */

static ASN1_INTEGER *serial_from_hex(const char *hex)
{
    BIGNUM *bn = NULL;
    if (!BN_hex2bn(&bn, hex))
        return NULL;
    ASN1_INTEGER *ai = BN_to_ASN1_INTEGER(bn, NULL);
    BN_free(bn);
    return ai;
}

int enr_ca_crl(const struct enr_ca *ca, const struct enr_revoked *rv, size_t n, int64_t now_s,
               int64_t next_s, int64_t number, unsigned char **der, size_t *len, char *err,
               size_t errlen)
{
    X509_CRL *crl = X509_CRL_new();
    ASN1_TIME *t1 = ASN1_TIME_set(NULL, (time_t)now_s), *t2 = ASN1_TIME_set(NULL, (time_t)next_s);
    ASN1_INTEGER *num = ASN1_INTEGER_new();
    int rc = ENR_ECRYPTO;
    if (!crl || !t1 || !t2 || !num || !X509_CRL_set_version(crl, X509_CRL_VERSION_2) ||
        !X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca->cert)) ||
        !X509_CRL_set1_lastUpdate(crl, t1) || !X509_CRL_set1_nextUpdate(crl, t2) ||
        !ASN1_INTEGER_set_int64(num, number) ||
        !X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0))
        goto out;
    for (size_t i = 0; i < n; i++) {
        X509_REVOKED *r = X509_REVOKED_new();
        ASN1_INTEGER *sn = serial_from_hex(rv[i].serial);
        ASN1_TIME *at = ASN1_TIME_set(NULL, (time_t)rv[i].revoked_s);
        int ok = r && sn && at && X509_REVOKED_set_serialNumber(r, sn) &&
                 X509_REVOKED_set_revocationDate(r, at) && X509_CRL_add0_revoked(crl, r);
        ASN1_INTEGER_free(sn);
        ASN1_TIME_free(at);
        if (!ok) {
            X509_REVOKED_free(r);
            goto out;
        }
    }
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, ca->cert, NULL, NULL, crl, 0);
    X509_EXTENSION *e =
        X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid:always");
    int ok = e && X509_CRL_add_ext(crl, e, -1);
    X509_EXTENSION_free(e);
    if (!ok || !X509_CRL_sort(crl) || !X509_CRL_sign(crl, ca->key, md_for(ca->key)))
        goto out;
    int l = i2d_X509_CRL(crl, der);
    if (l > 0) {
        *len = (size_t)l;
        rc = 0;
    }
out:
    if (rc < 0) {
        char r[128];
        eg_errf(err, errlen, "making the CRL failed: %s", ossl_reason(r, sizeof(r)));
    }
    ASN1_INTEGER_free(num);
    ASN1_TIME_free(t1);
    ASN1_TIME_free(t2);
    X509_CRL_free(crl);
    return rc;
}

/* ---- PKCS#12 ------------------------------------------------------------- */

int enr_p12(X509 *cert, EVP_PKEY *key, X509 *ca, const char *name, const char *password,
            unsigned char **der, size_t *len, char *err, size_t errlen)
{
    STACK_OF(X509) *chain = NULL;
    if (ca) {
        chain = sk_X509_new_null();
        if (!chain || !sk_X509_push(chain, ca)) {
            sk_X509_free(chain);
            return ENR_ENOMEM;
        }
    }
    /* SHA1/3DES PBE: the one every iOS and Android release imports. The
     * password is random and used once, so the old KDF costs little. */
    PKCS12 *p12 =
        PKCS12_create(password, name, key, cert, chain, NID_pbe_WithSHA1And3_Key_TripleDES_CBC,
                      NID_pbe_WithSHA1And3_Key_TripleDES_CBC, 0, 0, 0);
    sk_X509_free(chain); /* the stack only; ca stays the caller's */
    int rc = ENR_ECRYPTO;
    if (p12) {
        int l = i2d_PKCS12(p12, der);
        if (l > 0) {
            *len = (size_t)l;
            rc = 0;
        }
        PKCS12_free(p12);
    }
    if (rc < 0) {
        char r[128];
        eg_errf(err, errlen, "making the PKCS#12 failed: %s", ossl_reason(r, sizeof(r)));
    }
    return rc;
}
