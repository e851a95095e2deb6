/*
 * enr_prof: the account settings a device needs, as the platform wants them.
 *
 * iOS/iPadOS: an Apple configuration profile (.mobileconfig), an XML
 * property list with two payloads: com.apple.eas.account (Host = the
 * proxy's public name, UserName, EmailAddress, SSL) and the identity it
 * authenticates with: com.apple.security.pkcs12 (the server-made key pair,
 * with its one-time password) referenced by PayloadCertificateUUID, or, when
 * the device made its own key (CSR), com.apple.security.pkcs1 carrying the
 * issued certificate. The profile is signed (CMS SignedData, content
 * attached, DER) so the phone shows it as verified.
 *
 * Android: a JSON managed-configuration document with the same settings.
 *
 * Strings are XML-escaped here; callers pass plain text. Outputs are
 * malloc'd; the caller frees them.
 */
#ifndef EG_ENR_PROF_H
#define EG_ENR_PROF_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <stddef.h>

struct enr_prof {
    const char *host;         /* the proxy's public name (and :port if not 443) */
    const char *user;         /* EAS user name */
    const char *email;        /* the user's address */
    const char *device_id;    /* for identifiers and the display name */
    const char *org;          /* PayloadOrganization, e.g. the company */
    const char *identifier;   /* reverse-DNS profile id prefix, e.g. "com.example.easgate" */
    const unsigned char *p12; /* server-made identity, or NULL */
    size_t p12_len;
    const char *p12_password;
    const char *cert_pem; /* CSR path: the issued certificate (PEM), when p12 is NULL */
};

/* The unsigned .mobileconfig XML. */
int enr_prof_mobileconfig(const struct enr_prof *p, char **xml, size_t *len);

/* CMS SignedData (attached, DER) over data, by cert/key, with chain (may be NULL). */
int enr_prof_sign(const void *data, size_t len, X509 *cert, EVP_PKEY *key, X509 *chain,
                  unsigned char **der, size_t *der_len, char *err, size_t errlen);

/* The Android managed-configuration JSON (NUL-terminated). */
int enr_prof_android(const struct enr_prof *p, char **json, size_t *len);

#endif
