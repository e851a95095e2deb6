/* certbind: the certificate-to-request binding. The rule is in certbind.h. */
#include "proxy/certbind.h"

#include "policy/pol.h"
#include "eas/easq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/x509v3.h>

/* 1 if any device URI names devid_norm, 0 if none does, -1 if there is no
 * device URI at all. */
static int device_match(X509 *x, const char *devid_norm)
{
    const size_t plen = sizeof(CERTBIND_URI_PREFIX) - 1;
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int seen = 0, hit = 0;
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans) && !hit; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type != GEN_URI)
            continue;
        const char *u = (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
        int ul = ASN1_STRING_length(g->d.uniformResourceIdentifier);
        if (ul < 0 || (size_t)ul <= plen || strncasecmp(u, CERTBIND_URI_PREFIX, plen) != 0)
            continue;
        seen = 1;
        char norm[EASQ_DEVICEID_MAX + 1];
        /* An embedded NUL or a bad character fails normalisation: no match. */
        if (memchr(u, '\0', (size_t)ul) ||
            easq_deviceid_norm(u + plen, (size_t)ul - plen, norm, sizeof(norm)) < 0)
            continue;
        hit = devid_norm && devid_norm[0] && strcmp(norm, devid_norm) == 0;
    }
    GENERAL_NAMES_free(sans);
    return hit ? 1 : seen ? 0 : -1;
}

/* The subject CN into out (NUL-terminated): 0, or CERTBIND_NO_USER. */
static int subject_cn(X509 *x, char *out, size_t cap)
{
    X509_NAME *name = X509_get_subject_name(x);
    int i = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
    if (i < 0)
        return CERTBIND_NO_USER;
    ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    int n = ASN1_STRING_length(cn);
    const unsigned char *p = ASN1_STRING_get0_data(cn);
    if (n <= 0 || (size_t)n >= cap || memchr(p, '\0', (size_t)n))
        return CERTBIND_NO_USER;
    memcpy(out, p, (size_t)n);
    out[n] = '\0';
    return CERTBIND_OK;
}

int certbind_device_user(X509 *x, const char *devid_norm, char *user, size_t cap)
{
    int d = device_match(x, devid_norm);
    if (d < 0)
        return CERTBIND_NO_DEVICE;
    if (d == 0)
        return CERTBIND_DEVICE;
    return subject_cn(x, user, cap);
}

int certbind_check(X509 *x, const char *devid_norm, const char *user, const char *domain)
{
    char bound[CERTBIND_CN_MAX];
    int rc = certbind_device_user(x, devid_norm, bound, sizeof(bound));
    if (rc != CERTBIND_OK)
        return rc;
    /* pol_user_match treats an empty bound as "anyone"; an empty CN was
     * refused above, and a request without a user matches no CN. */
    if (!user || !*user || !pol_user_match(bound, user, domain && *domain ? domain : NULL))
        return CERTBIND_USER;
    return CERTBIND_OK;
}

int certbind_enrollment(X509 *x, char out[CERTBIND_ENR_MAX + 1])
{
    const size_t plen = sizeof(CERTBIND_ENR_PREFIX) - 1;
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int found = 0;
    out[0] = '\0';
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type != GEN_URI)
            continue;
        const char *u = (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
        int ul = ASN1_STRING_length(g->d.uniformResourceIdentifier);
        if (ul > 0 && (size_t)ul > sizeof(CERTBIND_URI_PREFIX) - 1 &&
            strncasecmp(u, CERTBIND_URI_PREFIX, sizeof(CERTBIND_URI_PREFIX) - 1) == 0) {
            found = 0; /* a device URI: the device rule applies, not this one */
            break;
        }
        if (ul < 0 || (size_t)ul <= plen || strncasecmp(u, CERTBIND_ENR_PREFIX, plen) != 0 || found)
            continue;
        size_t n = (size_t)ul - plen;
        found = n <= CERTBIND_ENR_MAX ? 1 : -1;
        for (size_t k = 0; found == 1 && k < n; k++) {
            char c = u[plen + k];
            if (c >= 'a' && c <= 'z')
                c = (char)(c - 32);
            if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
                found = -1;
            out[k] = c;
        }
        out[found == 1 ? n : 0] = '\0';
    }
    GENERAL_NAMES_free(sans);
    if (found != 1)
        out[0] = '\0';
    return found;
}

int certbind_user(X509 *x, const char *user, const char *domain, char *cn, size_t cap)
{
    char bound[CERTBIND_CN_MAX];
    int rc = subject_cn(x, bound, sizeof(bound));
    if (rc != CERTBIND_OK)
        return rc;
    if (!user) {
        snprintf(cn, cap, "%s", bound);
        return CERTBIND_OK;
    }
    if (!*user || !pol_user_match(bound, user, domain && *domain ? domain : NULL))
        return CERTBIND_USER;
    return CERTBIND_OK;
}

const char *certbind_strerror(int r)
{
    switch (r) {
    case CERTBIND_OK:
        return "ok";
    case CERTBIND_NO_DEVICE:
        return "certificate carries no urn:easgate:device: URI";
    case CERTBIND_DEVICE:
        return "certificate names another device";
    case CERTBIND_NO_USER:
        return "certificate has no subject CN";
    case CERTBIND_USER:
        return "certificate names another user";
    }
    return "unknown";
}

char *certbind_summary(X509 *x)
{
    char out[512];
    size_t n = 0;
    out[0] = '\0';
    X509_NAME *name = X509_get_subject_name(x);
    int i = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
    if (i >= 0) {
        ASN1_STRING *d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
        n += (size_t)snprintf(out + n, sizeof(out) - n, "CN=%.*s", ASN1_STRING_length(d),
                              (const char *)ASN1_STRING_get0_data(d));
    }
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (int k = 0; sans && k < sk_GENERAL_NAME_num(sans) && n < sizeof(out) - 1; k++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, k);
        if (g->type != GEN_URI)
            continue;
        n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%.*s", n ? " " : "",
                              ASN1_STRING_length(g->d.uniformResourceIdentifier),
                              (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier));
    }
    GENERAL_NAMES_free(sans);
    return strdup(out);
}
