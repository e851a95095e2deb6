/*
 * enr: the enrollment role's operations over the registry.
 *
 *   invite   an admin names a user (e-mail, optional EAS user name) and
 *            gets a key (shown once), an invitation URL and a QR code;
 *   enroll   a device presents the key, its EAS DeviceId and a CSR (or asks
 *            for a server-made key pair) and gets its certificate and the
 *            account profile; the device becomes managed, bound to the user;
 *   renew    a device whose certificate nears its end sends a CSR signed by
 *            the same key; the new certificate replaces the old one;
 *   revoke   a certificate (or every certificate of a device) is revoked and
 *            the CRL file is rewritten at once.
 *
 * Everything one enrollment writes (the key's use, the certificate row, the
 * device's managed flag and user, the audit line, the superseded
 * certificates' revocation) is one SQLite transaction on the registry's own
 * connection (core_reg_sqlite), opened through the engine (core_eng_begin)
 * so the device state reaches Redis only after the commit. Any failure
 * rolls it all back: nothing half-written.
 *
 * One struct enr_ctx is used by one thread (like core_reg and core_eng).
 * Errors: 0 or ENR_E* (enroll/err.h), with a sentence for the person in err.
 */
#ifndef EG_ENR_H
#define EG_ENR_H

#include "core/dir.h"
#include "core/eng.h"
#include "core/notify.h"
#include "enroll/ca.h"
#include "enroll/cfg.h"
#include "enroll/key.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct enr_ctx {
    const struct enr_cfg *cfg; /* borrowed */
    struct core_eng *eng;      /* borrowed; its reg is the registry written */
    struct enr_ca ca;
    X509 *sign_cert; /* profile signer; NULL = profiles go out unsigned */
    EVP_PKEY *sign_key;
    int64_t crl_written_ms;  /* when this process last wrote the CRL */
    int64_t crl_revocations; /* the revocations the registry held at that write */
    /* Invitation mail (core.notify): both borrowed; tpls NULL = no mail server. */
    const struct core_notify_cfg *notify;
    const struct core_tpls *tpls;
    /* core.directory: invitations only for users it knows and has enabled;
     * borrowed, NULL = no directory */
    struct core_dir *dir;
};

/* Load the CA and the signer named by cfg. */
int enr_open(struct enr_ctx *c, const struct enr_cfg *cfg, struct core_eng *eng, char *err,
             size_t errlen);
void enr_close(struct enr_ctx *c);

/* ---- invitations --------------------------------------------------------- */

struct enr_invite_req {
    const char *email;  /* required */
    const char *user;   /* EAS user name; NULL/"" = the e-mail address */
    int max_uses;       /* 1 = single-use; 0 = 1 */
    int64_t expires_ms; /* absolute; 0 = cfg->invite_expiry from now; -1 = never */
    const char *actor;  /* who asked, for the audit log */
    const char *address;
    bool mail;        /* queue the invitation mail (link and QR code) in the same transaction */
    const char *lang; /* the user's language ("ja"); NULL/"" = core.notify.language */
};

struct enr_invite {
    int64_t id;
    char key[ENR_KEY_SHOWN + 1]; /* shown once: only its hash is stored */
    char url[1024];              /* the invitation link (cfg->url based), "" if no url */
    char email[256], user[256];
    int max_uses, uses;
    int64_t expires_ms, created_ms, revoked_ms;
};

int enr_invite(struct enr_ctx *c, const struct enr_invite_req *r, int64_t now_ms,
               struct enr_invite *out, char *err, size_t errlen);

/* Invitations (without keys), newest first, for one address (NULL = all). */
int enr_invite_list(struct enr_ctx *c, const char *email, struct enr_invite *out, size_t max,
                    size_t *n);

/* Withdraw an invitation: its key stops working. */
int enr_invite_revoke(struct enr_ctx *c, int64_t id, const char *actor, int64_t now_ms, char *err,
                      size_t errlen);

/* ---- enrollment ---------------------------------------------------------- */

enum enr_platform { ENR_PLAT_NONE, ENR_PLAT_IOS, ENR_PLAT_ANDROID };
/* "ios", "ipados", "android", "none" / "" -> 0, else -1. */
int enr_platform_parse(const char *s, enum enr_platform *out);

struct enr_request {
    const char *key;          /* as typed */
    const char *device_id;    /* the EAS DeviceId as the device sends it */
    const unsigned char *csr; /* PEM or DER; NULL = server-generated key */
    size_t csr_len;
    enum enr_platform platform;
    const char *address; /* client address, for the audit log */
};

struct enr_result {
    char device_id[CORE_DEVID_MAX + 1]; /* canonical */
    char user[256], email[256];
    char serial[ENR_SERIAL_HEX + 1];
    int64_t not_after_ms;
    char *cert_pem;
    unsigned char *p12; /* server-generated key only */
    size_t p12_len;
    char p12_password[32];
    unsigned char *profile; /* signed .mobileconfig (DER CMS) or JSON; NULL for NONE */
    size_t profile_len;
    const char *profile_type;             /* MIME type of profile */
    char enrollment[ENR_ENRID_CHARS + 1]; /* portal only: the id the certificate names */
};

int enr_enroll(struct enr_ctx *c, const struct enr_request *r, int64_t now_ms,
               struct enr_result *out, char *err, size_t errlen);
void enr_result_free(struct enr_result *r);

/* ---- the portal (enroll/portal.h) ------------------------------------------ */

enum enr_inv_state {
    ENR_INV_OPEN,
    ENR_INV_UNKNOWN,
    ENR_INV_USED,
    ENR_INV_EXPIRED,
    ENR_INV_WITHDRAWN
};

/* What the invitation page shows; no key, no hash. */
struct enr_invite_info {
    int64_t id;
    char email[256], user[256], created_by[256];
    int max_uses, uses;
    int64_t expires_ms; /* 0 = never */
    enum enr_inv_state state;
};

/* The invitation of a key as typed, without using it: 0 with out->state
 * (ENR_INV_UNKNOWN when no invitation has it), ENR_EINVAL with the reason
 * in err when the key is malformed, ENR_EDB. */
int enr_invite_peek(struct enr_ctx *c, const char *key, int64_t now_ms, struct enr_invite_info *out,
                    char *err, size_t errlen);

/*
 * Enrollment without a DeviceId: the key is used once (ENR_EKEY when none
 * is left: used up, expired, withdrawn or unknown), a key pair is made, and
 * the certificate names the user and a fresh enrollment id
 * (out->enrollment; SAN URI urn:easgate:enrollment:ID) rather than a
 * device. It is stored with no device; the first request Exchange accepts
 * with it binds the device (core/sight.c). out carries the PKCS#12, its
 * password and, for iOS, the signed profile. One transaction.
 */
int enr_portal_enroll(struct enr_ctx *c, const char *key, enum enr_platform plat,
                      const char *address, int64_t now_ms, struct enr_result *out, char *err,
                      size_t errlen);

/*
 * Renewal: csr must be signed by the key of an unrevoked certificate of
 * device_id that expires within cfg->renew_before (proof of possession
 * without a key). The new certificate keeps the user; the old one is
 * revoked (superseded).
 */
int enr_renew(struct enr_ctx *c, const char *device_id, const unsigned char *csr, size_t csr_len,
              int64_t now_ms, struct enr_result *out, char *err, size_t errlen);

/* ---- certificates and the CRL -------------------------------------------- */

struct enr_cert {
    char serial[ENR_SERIAL_HEX + 1];
    char device_id[CORE_DEVID_MAX + 1];
    char user[256];
    int64_t not_before_ms, not_after_ms, issued_ms, revoked_ms;
    char revoke_reason[64];
};

/* Certificates of one device (NULL = all), newest first. */
int enr_cert_list(struct enr_ctx *c, const char *device_id, struct enr_cert *out, size_t max,
                  size_t *n);

/* Revoke one certificate by serial, or (serial NULL) every live one of device_id. */
int enr_revoke(struct enr_ctx *c, const char *serial, const char *device_id, const char *reason,
               const char *actor, int64_t now_ms, char *err, size_t errlen);

/*
 * Write the CRL file (cfg->crl_path) from the registry. With force = false
 * only when it is missing, past half of crl_validity, or when the registry
 * holds another number of revocations than when this process last wrote it
 * (one was written elsewhere: the admin API, another process): call it
 * from a timer, and when told of a revocation (enroll/srv.h).
 */
int enr_crl_update(struct enr_ctx *c, bool force, int64_t now_ms, char *err, size_t errlen);

#endif
