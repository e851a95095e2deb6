/*
 * prov: the `provisioning:` section of policy.yaml -- who provisions phones
 * (Exchange, or the proxy itself), the ActiveSync security policy the proxy
 * hands out (MS-ASPROV EASProvisionDoc), and the quarantine notice text.
 *
 * Pure like the rest of policy/: a key table over ytree, so every value is
 * checked (type, range, enum) before anything starts and errors carry
 * FILE:LINE:COL. The EAS library is not included (policy/ stays below
 * proxy/); PROV_SETTINGS lists the settings once, and the proxy copies them
 * into its EASProvisionDoc builder with the same X-macro.
 *
 * Memory: everything points into the policy document's arena and lives as
 * long as the struct pol_policy snapshot that holds it.
 */
#ifndef EG_PROV_H
#define EG_PROV_H

#include "common/ytree.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PROV_UNSET (-1) /* the setting is left out of the document */

/* Value kinds: a boolean (0/1), an integer in [min, max], or one of a list
 * of names whose index is the protocol value. */
enum prov_kind { PROV_BOOL, PROV_INT, PROV_ENUM };

/*
 * X(field, yaml key, MS-ASPROV element, kind, min, max, enum names)
 * Ranges are MS-ASPROV's where it gives one, else what a phone accepts.
 */
#define PROV_SETTINGS(X)                                                                           \
    X(device_password_enabled, "device_password_enabled", "DevicePasswordEnabled", PROV_BOOL, 0,   \
      1, NULL)                                                                                     \
    X(alphanumeric_device_password_required, "alphanumeric_device_password_required",              \
      "AlphanumericDevicePasswordRequired", PROV_BOOL, 0, 1, NULL)                                 \
    X(require_storage_card_encryption, "require_storage_card_encryption",                          \
      "RequireStorageCardEncryption", PROV_BOOL, 0, 1, NULL)                                       \
    X(password_recovery_enabled, "password_recovery_enabled", "PasswordRecoveryEnabled",           \
      PROV_BOOL, 0, 1, NULL)                                                                       \
    X(attachments_enabled, "attachments_enabled", "AttachmentsEnabled", PROV_BOOL, 0, 1, NULL)     \
    X(min_device_password_length, "min_device_password_length", "MinDevicePasswordLength",         \
      PROV_INT, 1, 16, NULL)                                                                       \
    X(max_inactivity_time_device_lock, "max_inactivity_time_device_lock",                          \
      "MaxInactivityTimeDeviceLock", PROV_INT, 0, 9999, NULL)                                      \
    X(max_device_password_failed_attempts, "max_device_password_failed_attempts",                  \
      "MaxDevicePasswordFailedAttempts", PROV_INT, 4, 16, NULL)                                    \
    X(max_attachment_size, "max_attachment_size", "MaxAttachmentSize", PROV_INT, 0, 2147483647,    \
      NULL)                                                                                        \
    X(allow_simple_device_password, "allow_simple_device_password", "AllowSimpleDevicePassword",   \
      PROV_BOOL, 0, 1, NULL)                                                                       \
    X(device_password_expiration, "device_password_expiration", "DevicePasswordExpiration",        \
      PROV_INT, 0, 730, NULL)                                                                      \
    X(device_password_history, "device_password_history", "DevicePasswordHistory", PROV_INT, 0,    \
      50, NULL)                                                                                    \
    X(allow_storage_card, "allow_storage_card", "AllowStorageCard", PROV_BOOL, 0, 1, NULL)         \
    X(allow_camera, "allow_camera", "AllowCamera", PROV_BOOL, 0, 1, NULL)                          \
    X(require_device_encryption, "require_device_encryption", "RequireDeviceEncryption",           \
      PROV_BOOL, 0, 1, NULL)                                                                       \
    X(allow_unsigned_applications, "allow_unsigned_applications", "AllowUnsignedApplications",     \
      PROV_BOOL, 0, 1, NULL)                                                                       \
    X(allow_unsigned_installation_packages, "allow_unsigned_installation_packages",                \
      "AllowUnsignedInstallationPackages", PROV_BOOL, 0, 1, NULL)                                  \
    X(min_device_password_complex_characters, "min_device_password_complex_characters",            \
      "MinDevicePasswordComplexCharacters", PROV_INT, 1, 4, NULL)                                  \
    X(allow_wifi, "allow_wifi", "AllowWiFi", PROV_BOOL, 0, 1, NULL)                                \
    X(allow_text_messaging, "allow_text_messaging", "AllowTextMessaging", PROV_BOOL, 0, 1, NULL)   \
    X(allow_pop_imap_email, "allow_pop_imap_email", "AllowPOPIMAPEmail", PROV_BOOL, 0, 1, NULL)    \
    X(allow_bluetooth, "allow_bluetooth", "AllowBluetooth", PROV_ENUM, 0, 2, prov_bluetooth_names) \
    X(allow_irda, "allow_irda", "AllowIrDA", PROV_BOOL, 0, 1, NULL)                                \
    X(require_manual_sync_when_roaming, "require_manual_sync_when_roaming",                        \
      "RequireManualSyncWhenRoaming", PROV_BOOL, 0, 1, NULL)                                       \
    X(allow_desktop_sync, "allow_desktop_sync", "AllowDesktopSync", PROV_BOOL, 0, 1, NULL)         \
    X(max_calendar_age_filter, "max_calendar_age_filter", "MaxCalendarAgeFilter", PROV_ENUM, 0, 7, \
      prov_calendar_age_names)                                                                     \
    X(allow_html_email, "allow_html_email", "AllowHTMLEmail", PROV_BOOL, 0, 1, NULL)               \
    X(max_email_age_filter, "max_email_age_filter", "MaxEmailAgeFilter", PROV_ENUM, 0, 5,          \
      prov_email_age_names)                                                                        \
    X(max_email_body_truncation_size, "max_email_body_truncation_size",                            \
      "MaxEmailBodyTruncationSize", PROV_INT, 0, 2147483647, NULL)                                 \
    X(max_email_html_body_truncation_size, "max_email_html_body_truncation_size",                  \
      "MaxEmailHTMLBodyTruncationSize", PROV_INT, 0, 2147483647, NULL)                             \
    X(require_signed_smime_messages, "require_signed_smime_messages",                              \
      "RequireSignedSMIMEMessages", PROV_BOOL, 0, 1, NULL)                                         \
    X(require_encrypted_smime_messages, "require_encrypted_smime_messages",                        \
      "RequireEncryptedSMIMEMessages", PROV_BOOL, 0, 1, NULL)                                      \
    X(require_signed_smime_algorithm, "require_signed_smime_algorithm",                            \
      "RequireSignedSMIMEAlgorithm", PROV_ENUM, 0, 1, prov_sign_alg_names)                         \
    X(require_encryption_smime_algorithm, "require_encryption_smime_algorithm",                    \
      "RequireEncryptionSMIMEAlgorithm", PROV_ENUM, 0, 4, prov_enc_alg_names)                      \
    X(allow_smime_encryption_algorithm_negotiation,                                                \
      "allow_smime_encryption_algorithm_negotiation", "AllowSMIMEEncryptionAlgorithmNegotiation",  \
      PROV_ENUM, 0, 2, prov_negotiation_names)                                                     \
    X(allow_smime_soft_certs, "allow_smime_soft_certs", "AllowSMIMESoftCerts", PROV_BOOL, 0, 1,    \
      NULL)                                                                                        \
    X(allow_browser, "allow_browser", "AllowBrowser", PROV_BOOL, 0, 1, NULL)                       \
    X(allow_consumer_email, "allow_consumer_email", "AllowConsumerEmail", PROV_BOOL, 0, 1, NULL)   \
    X(allow_remote_desktop, "allow_remote_desktop", "AllowRemoteDesktop", PROV_BOOL, 0, 1, NULL)   \
    X(allow_internet_sharing, "allow_internet_sharing", "AllowInternetSharing", PROV_BOOL, 0, 1,   \
      NULL)

/* Enum names; the index is the MS-ASPROV value, NULL entries are values the
 * protocol does not define (MaxCalendarAgeFilter has no 1..3). */
extern const char *const prov_bluetooth_names[];    /* off, handsfree, on */
extern const char *const prov_calendar_age_names[]; /* all, -, -, -, 2w, 1m, 3m, 6m */
extern const char *const prov_email_age_names[];    /* all, 1d, 3d, 1w, 2w, 1m */
extern const char *const prov_sign_alg_names[];     /* sha1, md5 */
extern const char *const prov_enc_alg_names[];      /* 3des, des, rc2-128, rc2-64, rc2-40 */
extern const char *const prov_negotiation_names[];  /* none, strong, any */

struct prov_eas_policy {
#define PROV_FIELD(f, ...) int f;
    PROV_SETTINGS(PROV_FIELD)
#undef PROV_FIELD
    struct yt_strv unapproved_in_rom_apps; /* UnapprovedInROMApplicationList */
    struct yt_strv approved_app_hashes;    /* ApprovedApplicationList (SHA-1 hex) */
};

enum prov_mode { PROV_PASSTHROUGH, PROV_PROXY };

/* One quarantine notice in one language ("en", "de", "pt-BR"). */
struct prov_notice {
    const char *lang;
    const char *subject;
    const char *body;
};

#define PROV_MAX_NOTICES 32

struct prov_conf {
    bool present;        /* the file has a provisioning: section */
    enum prov_mode mode; /* default passthrough */
    struct prov_eas_policy eas;
    /* quarantine_notice, in file order (the built-in English one when the
     * file gives none). English, else the first, is the fallback. */
    struct prov_notice notices[PROV_MAX_NOTICES];
    size_t n_notices;
    /* A number that changes whenever eas_policy changes (FNV-1a over the
     * values): policy keys are derived from it, so a new policy makes every
     * key stale and phones provision again. */
    uint32_t fingerprint;
};

/* Defaults: passthrough, every setting PROV_UNSET, the English notice. */
void prov_conf_init(struct prov_conf *c);

/* Fill c from the provisioning: map n (a YK_FN handler's job). 0, or
 * yt_err()'s negative code with FILE:LINE:COL in ctx->err. */
int prov_load(const struct yt_node *n, struct yt_ctx *ctx, struct prov_conf *c);

/* Effective settings as YAML at indent. */
void prov_print(FILE *f, const struct prov_conf *c, int indent);

/* The notice for a language: an exact tag match ("de-CH"), then the
 * primary subtag ("de"), then the first notice. lang may be NULL. An
 * Accept-Language value is also accepted (its first entry is used). */
const struct prov_notice *prov_notice_for(const struct prov_conf *c, const char *lang);

/* Language tag ("de") for an MS-LCID (0x0407), or NULL when unknown. */
const char *prov_lcid_lang(unsigned lcid);

const char *prov_mode_name(enum prov_mode m);

#endif
