/* enr_prof: .mobileconfig and Android JSON, CMS signing. See prof.h. */
#include "enroll/prof.h"

#include "common/b64.h"
#include "common/sbuf.h"
#include "enroll/err.h"

#include <jansson.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void kv_str(struct sbuf *b, const char *ind, const char *k, const char *v)
{
    sbuf_str(b, ind);
    sbuf_str(b, "<key>");
    sbuf_str(b, k);
    sbuf_str(b, "</key>\n");
    sbuf_str(b, ind);
    sbuf_str(b, "<string>");
    sbuf_xml(b, v ? v : "", v ? strlen(v) : 0);
    sbuf_str(b, "</string>\n");
}

static void kv_raw(struct sbuf *b, const char *ind, const char *k, const char *raw)
{
    sbuf_str(b, ind);
    sbuf_str(b, "<key>");
    sbuf_str(b, k);
    sbuf_str(b, "</key>\n");
    sbuf_str(b, ind);
    sbuf_str(b, raw);
    sbuf_str(b, "\n");
}

static void kv_data(struct sbuf *b, const char *ind, const char *k, const unsigned char *d,
                    size_t n)
{
    sbuf_str(b, ind);
    sbuf_str(b, "<key>");
    sbuf_str(b, k);
    sbuf_str(b, "</key>\n");
    sbuf_str(b, ind);
    sbuf_str(b, "<data>");
    char line[100];
    for (size_t off = 0; off < n; off += 48) { /* 64 base64 characters a line */
        size_t m = n - off > 48 ? 48 : n - off;
        size_t l = 0;
        b64_encode(d + off, m, line, sizeof(line), 0, &l);
        sbuf_str(b, "\n");
        sbuf_str(b, ind);
        sbuf_put(b, line, l);
    }
    sbuf_str(b, "\n");
    sbuf_str(b, ind);
    sbuf_str(b, "</data>\n");
}

/* A random (version 4) UUID, upper-case as Apple writes them. */
static int uuid4(char out[37])
{
    unsigned char r[16];
    if (RAND_bytes(r, sizeof(r)) != 1)
        return -1;
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X", r[0],
             r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13],
             r[14], r[15]);
    return 0;
}

int enr_prof_mobileconfig(const struct enr_prof *p, char **xml, size_t *len)
{
    char u_top[37], u_eas[37], u_id[37];
    if (uuid4(u_top) < 0 || uuid4(u_eas) < 0 || uuid4(u_id) < 0)
        return ENR_ECRYPTO;
    const char *idp = p->identifier && *p->identifier ? p->identifier : "org.easgate.enroll";
    char ident[512], name[256];
    struct sbuf b = SBUF_INIT;
    const char *I = "\t\t\t";
    sbuf_str(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
                 "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
                 "<plist version=\"1.0\">\n<dict>\n"
                 "\t<key>PayloadContent</key>\n\t<array>\n");
    /* The identity first: the account refers to it by UUID. */
    sbuf_str(&b, "\t\t<dict>\n");
    snprintf(ident, sizeof(ident), "%s.%s.identity", idp, p->device_id);
    if (p->p12) {
        kv_str(&b, I, "Password", p->p12_password);
        kv_str(&b, I, "PayloadCertificateFileName", "device.p12");
        kv_data(&b, I, "PayloadContent", p->p12, p->p12_len);
        kv_str(&b, I, "PayloadType", "com.apple.security.pkcs12");
    } else {
        kv_str(&b, I, "PayloadCertificateFileName", "device.crt");
        kv_data(&b, I, "PayloadContent", (const unsigned char *)(p->cert_pem ? p->cert_pem : ""),
                p->cert_pem ? strlen(p->cert_pem) : 0);
        kv_str(&b, I, "PayloadType", "com.apple.security.pkcs1");
    }
    kv_str(&b, I, "PayloadDisplayName", "Mail certificate");
    kv_str(&b, I, "PayloadIdentifier", ident);
    kv_str(&b, I, "PayloadUUID", u_id);
    kv_raw(&b, I, "PayloadVersion", "<integer>1</integer>");
    sbuf_str(&b, "\t\t</dict>\n\t\t<dict>\n");
    snprintf(ident, sizeof(ident), "%s.%s.eas", idp, p->device_id);
    kv_str(&b, I, "EmailAddress", p->email);
    kv_str(&b, I, "Host", p->host);
    if (p->p12)
        kv_str(&b, I, "PayloadCertificateUUID", u_id);
    kv_str(&b, I, "PayloadDisplayName", "Exchange ActiveSync");
    kv_str(&b, I, "PayloadIdentifier", ident);
    kv_str(&b, I, "PayloadType", "com.apple.eas.account");
    kv_str(&b, I, "PayloadUUID", u_eas);
    kv_raw(&b, I, "PayloadVersion", "<integer>1</integer>");
    kv_raw(&b, I, "SSL", "<true/>");
    kv_str(&b, I, "UserName", p->user);
    sbuf_str(&b, "\t\t</dict>\n\t</array>\n");
    snprintf(name, sizeof(name), "Mail for %s", p->email && *p->email ? p->email : p->user);
    snprintf(ident, sizeof(ident), "%s.%s", idp, p->device_id);
    kv_str(&b, "\t", "PayloadDescription",
           "Sets up the Exchange account and the certificate this device signs in with.");
    kv_str(&b, "\t", "PayloadDisplayName", name);
    kv_str(&b, "\t", "PayloadIdentifier", ident);
    kv_str(&b, "\t", "PayloadOrganization", p->org && *p->org ? p->org : "easgate");
    kv_raw(&b, "\t", "PayloadRemovalDisallowed", "<false/>");
    kv_str(&b, "\t", "PayloadType", "Configuration");
    kv_str(&b, "\t", "PayloadUUID", u_top);
    kv_raw(&b, "\t", "PayloadVersion", "<integer>1</integer>");
    sbuf_str(&b, "</dict>\n</plist>\n");
    *xml = sbuf_take(&b, len);
    return *xml ? 0 : ENR_ENOMEM;
}

int enr_prof_sign(const void *data, size_t len, X509 *cert, EVP_PKEY *key, X509 *chain,
                  unsigned char **der, size_t *der_len, char *err, size_t errlen)
{
    BIO *in = BIO_new_mem_buf(data, (int)len);
    STACK_OF(X509) *certs = chain ? sk_X509_new_null() : NULL;
    if (certs)
        sk_X509_push(certs, chain);
    /* CMS_BINARY: the plist is signed byte for byte (no MIME canonical line ends). */
    CMS_ContentInfo *cms = in ? CMS_sign(cert, key, certs, in, CMS_BINARY) : NULL;
    int rc = ENR_ECRYPTO;
    if (cms) {
        int l = i2d_CMS_ContentInfo(cms, der);
        if (l > 0) {
            *der_len = (size_t)l;
            rc = 0;
        }
    }
    if (rc < 0) {
        unsigned long e = ERR_peek_last_error();
        const char *r = e ? ERR_reason_error_string(e) : NULL;
        snprintf(err, errlen, "signing the profile failed: %s", r ? r : "unknown error");
        ERR_clear_error();
    }
    CMS_ContentInfo_free(cms);
    sk_X509_free(certs);
    BIO_free(in);
    return rc;
}

int enr_prof_android(const struct enr_prof *p, char **json, size_t *len)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:b, s:s}", "type", "exchange_activesync", "host",
                          p->host ? p->host : "", "username", p->user ? p->user : "", "email",
                          p->email ? p->email : "", "ssl", 1, "device_id",
                          p->device_id ? p->device_id : "");
    if (!o)
        return ENR_ENOMEM;
    json_t *c = json_object();
    if (p->p12) {
        char *b64 = b64_encode_alloc(p->p12, p->p12_len, 0);
        if (b64) {
            json_object_set_new(c, "format", json_string("pkcs12"));
            json_object_set_new(c, "pkcs12_base64", json_string(b64));
            json_object_set_new(c, "password", json_string(p->p12_password ? p->p12_password : ""));
            free(b64);
        }
    } else {
        json_object_set_new(c, "format", json_string("pem"));
        json_object_set_new(c, "pem", json_string(p->cert_pem ? p->cert_pem : ""));
    }
    json_object_set_new(o, "client_certificate", c);
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(o);
    if (!s)
        return ENR_ENOMEM;
    *json = s;
    *len = strlen(s);
    return 0;
}
