/*
 * enr_ca: the device certificate authority.
 *
 * One CA (a certificate and its private key in two PEM files) signs the
 * client certificates devices authenticate to the proxy with. Each device
 * certificate binds three things the proxy can check against the request:
 *
 *   subject CN            = the user (as the proxy sees it in Basic auth)
 *   SAN URI               = urn:easgate:device:<DeviceId>  (canonical form)
 *   SAN e-mail            = the user's mail address
 *   extendedKeyUsage      = clientAuth only
 *
 * so a copied DeviceId without the key, or the key used with another
 * DeviceId, gets nothing. Serials are 128 random bits (RFC 5280 allows up
 * to 20 octets; random serials make issuance unpredictable). The CRL is
 * signed by the same key and lists what the registry says is revoked.
 *
 * Keys: EC P-256 (default) or RSA 3072 for the CA; devices may bring RSA
 * >= 2048 or EC P-256/P-384. The CA key file is written 0600 and its
 * contents are never logged. OpenSSL 3 EVP/X509 only.
 *
 * Errors: 0 or a negative ENR_E* (enroll/err.h) with a sentence in err.
 * Every X509 / EVP_PKEY handed out is the caller's to free.
 */
#ifndef EG_ENR_CA_H
#define EG_ENR_CA_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <stddef.h>
#include <stdint.h>

enum enr_algo { ENR_ALGO_EC256, ENR_ALGO_EC384, ENR_ALGO_RSA2048, ENR_ALGO_RSA3072 };

/* "ec", "ec256", "p256", "ec384", "p384", "rsa2048", "rsa3072", "rsa" (3072). 0 or -1. */
int enr_algo_parse(const char *s, enum enr_algo *out);

#define ENR_SERIAL_HEX 40 /* at most 20 octets, upper-case hex */
#define ENR_DEVURN_PREFIX "urn:easgate:device:"
/* A portal certificate names its enrollment instead of a DeviceId: the
 * device is bound to it by its first request Exchange accepts
 * (docs/enrollment.md, "Binding on first use"). */
#define ENR_ENRURN_PREFIX "urn:easgate:enrollment:"
#define ENR_ENRID_CHARS 20 /* 100 random bits from the key alphabet */

struct enr_ca {
    X509 *cert;
    EVP_PKEY *key;
};

/* A fresh key pair. */
int enr_keygen(enum enr_algo algo, EVP_PKEY **out, char *err, size_t errlen);

/*
 * Make a self-signed CA (CN = cn, validity_days) and write cert_path (0644)
 * and key_path (0600, created exclusively). ENR_EEXIST if either exists.
 */
int enr_ca_create(const char *cert_path, const char *key_path, const char *cn, enum enr_algo algo,
                  int validity_days, char *err, size_t errlen);

/*
 * Import an existing CA into cert_path/key_path: src is a PEM holding the
 * certificate (and the key, unless key_src names a PEM key file), or a
 * PKCS#12 file opened with password (NULL = none; also used for an
 * encrypted PEM key). The certificate must be a CA (basicConstraints
 * CA:TRUE) and match the key.
 */
int enr_ca_import(const char *src, const char *key_src, const char *password, const char *cert_path,
                  const char *key_path, char *err, size_t errlen);

/* Load the CA from its two files into *ca (free with enr_ca_free). */
int enr_ca_load(const char *cert_path, const char *key_path, struct enr_ca *ca, char *err,
                size_t errlen);
void enr_ca_free(struct enr_ca *ca);

/*
 * Parse a CSR (PEM or DER, sniffed), verify its self-signature and the
 * strength of its key. ENR_EINVAL malformed, ENR_ESIG bad signature,
 * ENR_EWEAK weak key. *pub receives the public key.
 */
int enr_csr_parse(const unsigned char *buf, size_t len, EVP_PKEY **pub, char *err, size_t errlen);

/* ENR_EWEAK with a sentence unless pub is RSA >= 2048 or EC P-256/P-384. */
int enr_key_check(EVP_PKEY *pub, char *err, size_t errlen);

struct enr_subject {
    const char *user;      /* CN */
    const char *email;     /* SAN rfc822Name; NULL or "" = none */
    const char *device_id; /* canonical DeviceId for the SAN URI */
    /* An enrollment id (the portal): the SAN URI names it instead, and
     * device_id may be NULL. */
    const char *enrollment;
};

/*
 * Issue a client certificate for pub, valid from now_s - 5 min (clock skew)
 * for validity_s seconds, with a random serial (written to serial as
 * upper-case hex).
 */
int enr_ca_issue(const struct enr_ca *ca, const struct enr_subject *s, EVP_PKEY *pub, int64_t now_s,
                 int64_t validity_s, X509 **out, char serial[ENR_SERIAL_HEX + 1], char *err,
                 size_t errlen);

/* A revoked certificate as the CRL lists it. */
struct enr_revoked {
    const char *serial; /* upper-case hex */
    int64_t revoked_s;
};

/* A DER CRL signed by the CA: thisUpdate now_s, nextUpdate next_s, CRLNumber number. */
int enr_ca_crl(const struct enr_ca *ca, const struct enr_revoked *rv, size_t n, int64_t now_s,
               int64_t next_s, int64_t number, unsigned char **der, size_t *len, char *err,
               size_t errlen);

/* cert (+ key and chain ca, if not NULL) as a PKCS#12 under password (malloc'd DER). */
int enr_p12(X509 *cert, EVP_PKEY *key, X509 *ca, const char *name, const char *password,
            unsigned char **der, size_t *len, char *err, size_t errlen);

/* PEM of a certificate, malloc'd and NUL-terminated. */
int enr_cert_pem(X509 *cert, char **pem, size_t *len);

/* The not-after time of cert in Unix seconds. */
int64_t enr_cert_not_after(X509 *cert);

/* Write len bytes to path atomically (temp + rename) with the given mode. */
int enr_write_file(const char *path, const void *buf, size_t len, int mode, char *err,
                   size_t errlen);

/* Read a whole file (at most max bytes) into a malloc'd buffer. */
int enr_read_file(const char *path, size_t max, unsigned char **buf, size_t *len, char *err,
                  size_t errlen);

#endif
