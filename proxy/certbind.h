/*
 * certbind: does a verified client certificate belong to the request?
 *
 * Enrollment binds a certificate to one device and one user: the SAN URI
 * urn:easgate:device:<DeviceId> and the subject CN. The rule:
 *   - the certificate must carry at least one urn:easgate:device: URI
 *     (scheme and prefix compared without case, as URNs are), and one of
 *     them, normalised like easq_deviceid_norm, must equal the request's
 *     normalised DeviceId;
 *   - the subject CN must be present and name the request's user as
 *     pol_user_match compares users: the names are compared without case,
 *     and a domain (DOMAIN\user or user@domain) only counts when both the
 *     CN and the request carry one. So CN "alice" matches "alice",
 *     "CORP\alice" and "alice@corp.example"; CN "CORP\alice" matches
 *     "alice" but not "OTHER\alice".
 * Pure: no I/O, no allocation that outlives the call.
 */
#ifndef EG_CERTBIND_H
#define EG_CERTBIND_H

#include <openssl/x509.h>

#define CERTBIND_URI_PREFIX "urn:easgate:device:"

enum certbind_result {
    CERTBIND_OK = 0,
    CERTBIND_NO_DEVICE = -1, /* no urn:easgate:device: URI in the certificate */
    CERTBIND_DEVICE = -2,    /* the certificate names another DeviceId */
    CERTBIND_NO_USER = -3,   /* no subject CN */
    CERTBIND_USER = -4,      /* the CN names another user */
};

/* devid_norm: the request's DeviceId as easq_deviceid_norm made it ("" if
 * it had none); user and domain as the request gave them (domain may be
 * NULL or ""). Returns CERTBIND_OK or one of the negative results. */
int certbind_check(X509 *leaf, const char *devid_norm, const char *user, const char *domain);

/* Room for a subject CN (at most 64 characters by RFC 5280's
 * ub-common-name; more is kept for names written past it). */
#define CERTBIND_CN_MAX 512

/* The device half of the rule alone, for a request whose user the proxy
 * cannot read (identity.unverifiable: allow_cert_bound): CERTBIND_OK with
 * the subject CN in user (cap bytes, CERTBIND_CN_MAX is enough), or
 * CERTBIND_NO_DEVICE, CERTBIND_DEVICE, CERTBIND_NO_USER. */
int certbind_device_user(X509 *leaf, const char *devid_norm, char *user, size_t cap);

/*
 * A portal certificate (docs/enrollment.md section 7) names an enrollment
 * instead of a device: SAN URI urn:easgate:enrollment:<ID> (prefix compared
 * without case, ID letters and digits, upper-cased into out, at most
 * CERTBIND_ENR_MAX). 1 with the id when leaf carries one and no device URI
 * (a device URI binds by itself), 0 when it carries none, -1 when the id
 * is malformed (the request is refused like a mismatch). Which device it
 * may be used with is the state store's to say.
 */
#define CERTBIND_ENR_PREFIX "urn:easgate:enrollment:"
#define CERTBIND_ENR_MAX 24
int certbind_enrollment(X509 *leaf, char out[CERTBIND_ENR_MAX + 1]);

/* The user half alone (a portal certificate): CERTBIND_OK, CERTBIND_NO_USER
 * or CERTBIND_USER by the rule above; with user NULL (a request whose user
 * the proxy cannot read) the CN is copied into cn (cap bytes) instead. */
int certbind_user(X509 *leaf, const char *user, const char *domain, char *cn, size_t cap);

/* "CN=alice urn:easgate:device:DEVICE0001": the subject's common name and
 * the URI names, which is where enrollment binds a device; for the access
 * log (JSON-escaped when written). malloc'd, NULL without memory. */
char *certbind_summary(X509 *leaf);

/* "certificate names another device", ... for logs. */
const char *certbind_strerror(int r);

#endif
