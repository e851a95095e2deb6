/*
 * easr: the answers the proxy gives a phone itself, built on the WBXML writer.
 *
 * The proxy answers when it must not forward: a blocked device, a device that
 * must (re)provision, a remote wipe, the server side of Provision, OPTIONS.
 * A phone only obeys an answer in the form its protocol version expects, so
 * this module also says which form to use: from 14.0 on, HTTP 200 with the
 * command's own WBXML Status (MS-ASCMD 2.2.2); up to 12.1, a bare HTTP status
 * (403 blocked, 449 "provision first"). Status values are MS-ASCMD's common
 * status codes; tags are MS-ASWBXML's.
 *
 * Pure: every function writes into a caller's struct wbxml_w (fixed buffer or
 * growable; see wbxml.h for ownership) and returns 0 or a negative error
 * (EASR_E_* or WBXML_E_*). After an error the writer's content is unusable:
 * start a new one. A status answer fits in 64 bytes, the wipe answer in 32.
 */
#ifndef EG_EASR_H
#define EG_EASR_H

#include "eas/easq.h"
#include "eas/wbxml.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* MS-ASCMD 2.2.2 status values common to all commands (Status element). */
enum easr_status {
    EASR_STATUS_SUCCESS = 1, /* per-command success (not a common code) */
    /* Provision's and Settings' own "Protocol error" (not a common code) */
    EASR_STATUS_PROTOCOL_ERROR_PROV = 2,
    EASR_STATUS_INVALID_CONTENT = 101,
    EASR_STATUS_INVALID_WBXML = 102,
    EASR_STATUS_INVALID_XML = 103,
    EASR_STATUS_INVALID_DATETIME = 104,
    EASR_STATUS_INVALID_COMBINATION_OF_IDS = 105,
    EASR_STATUS_INVALID_IDS = 106,
    EASR_STATUS_INVALID_MIME = 107,
    EASR_STATUS_DEVICE_ID_MISSING_OR_INVALID = 108,
    EASR_STATUS_DEVICE_TYPE_MISSING_OR_INVALID = 109,
    EASR_STATUS_SERVER_ERROR = 110,
    EASR_STATUS_SERVER_ERROR_RETRY_LATER = 111,
    EASR_STATUS_ACTIVE_DIRECTORY_ACCESS_DENIED = 112,
    EASR_STATUS_MAILBOX_QUOTA_EXCEEDED = 113,
    EASR_STATUS_MAILBOX_SERVER_OFFLINE = 114,
    EASR_STATUS_SEND_QUOTA_EXCEEDED = 115,
    EASR_STATUS_MESSAGE_RECIPIENT_UNRESOLVED = 116,
    EASR_STATUS_MESSAGE_REPLY_NOT_ALLOWED = 117,
    EASR_STATUS_MESSAGE_PREVIOUSLY_SENT = 118,
    EASR_STATUS_MESSAGE_HAS_NO_RECIPIENT = 119,
    EASR_STATUS_MAIL_SUBMISSION_FAILED = 120,
    EASR_STATUS_MESSAGE_REPLY_FAILED = 121,
    EASR_STATUS_ATTACHMENT_IS_TOO_LARGE = 122,
    EASR_STATUS_USER_HAS_NO_MAILBOX = 123,
    EASR_STATUS_USER_CANNOT_BE_ANONYMOUS = 124,
    EASR_STATUS_USER_PRINCIPAL_COULD_NOT_BE_FOUND = 125,
    EASR_STATUS_USER_DISABLED_FOR_SYNC = 126,
    EASR_STATUS_USER_ON_NEW_MAILBOX_CANNOT_SYNC = 127,
    EASR_STATUS_USER_ON_LEGACY_MAILBOX_CANNOT_SYNC = 128,
    EASR_STATUS_DEVICE_IS_BLOCKED_FOR_THIS_USER = 129,
    EASR_STATUS_ACCESS_DENIED = 130,
    EASR_STATUS_ACCOUNT_DISABLED = 131,
    EASR_STATUS_SYNC_STATE_NOT_FOUND = 132,
    EASR_STATUS_SYNC_STATE_LOCKED = 133,
    EASR_STATUS_SYNC_STATE_CORRUPT = 134,
    EASR_STATUS_SYNC_STATE_ALREADY_EXISTS = 135,
    EASR_STATUS_SYNC_STATE_VERSION_INVALID = 136,
    EASR_STATUS_COMMAND_NOT_SUPPORTED = 137,
    EASR_STATUS_VERSION_NOT_SUPPORTED = 138,
    EASR_STATUS_DEVICE_NOT_FULLY_PROVISIONABLE = 139,
    EASR_STATUS_REMOTE_WIPE_REQUESTED = 140,
    EASR_STATUS_LEGACY_DEVICE_ON_STRICT_POLICY = 141,
    EASR_STATUS_DEVICE_NOT_PROVISIONED = 142,
    EASR_STATUS_POLICY_REFRESH = 143,
    EASR_STATUS_INVALID_POLICY_KEY = 144,
    EASR_STATUS_EXTERNALLY_MANAGED_DEVICES_NOT_ALLOWED = 145,
    EASR_STATUS_NO_RECURRENCE_IN_CALENDAR = 146,
    EASR_STATUS_UNEXPECTED_ITEM_CLASS = 147,
    EASR_STATUS_REMOTE_SERVER_HAS_NO_SSL = 148,
    EASR_STATUS_INVALID_STORED_REQUEST = 149,
    EASR_STATUS_ITEM_NOT_FOUND = 150,
    EASR_STATUS_TOO_MANY_FOLDERS = 151,
    EASR_STATUS_NO_FOLDERS_FOUND = 152,
    EASR_STATUS_ITEMS_LOST_AFTER_MOVE = 153,
    EASR_STATUS_FAILURE_IN_MOVE_OPERATION = 154,
    EASR_STATUS_MOVE_COMMAND_DISALLOWED_FOR_NON_PERSISTENT_MOVE_ACTION = 155,
    EASR_STATUS_MOVE_COMMAND_INVALID_DESTINATION_FOLDER = 156,
    EASR_STATUS_AVAILABILITY_TOO_MANY_RECIPIENTS = 160,
    EASR_STATUS_AVAILABILITY_DL_LIMIT_REACHED = 161,
    EASR_STATUS_AVAILABILITY_TRANSIENT_FAILURE = 162,
    EASR_STATUS_AVAILABILITY_FAILURE = 163,
    EASR_STATUS_BODY_PART_PREFERENCE_TYPE_NOT_SUPPORTED = 164,
    EASR_STATUS_DEVICE_INFORMATION_REQUIRED = 165,
    EASR_STATUS_INVALID_ACCOUNT = 166,
    EASR_STATUS_ACCOUNT_SEND_DISABLED = 167,
    EASR_STATUS_IRM_FEATURE_DISABLED = 168,
    EASR_STATUS_IRM_TRANSIENT_ERROR = 169,
    EASR_STATUS_IRM_PERMANENT_ERROR = 170,
    EASR_STATUS_IRM_INVALID_TEMPLATE_ID = 171,
    EASR_STATUS_IRM_OPERATION_NOT_PERMITTED = 172,
    EASR_STATUS_NO_PICTURE = 173,
    EASR_STATUS_PICTURE_TOO_LARGE = 174,
    EASR_STATUS_PICTURE_LIMIT_REACHED = 175,
    EASR_STATUS_BODY_PART_CONVERSATION_TOO_LARGE = 176,
    EASR_STATUS_MAXIMUM_DEVICES_REACHED = 177,
};

/* MS-ASCMD's name for a common status ("DeviceIsBlockedForThisUser"), or NULL. */
const char *easr_status_name(int status);

/* HTTP statuses of the legacy (12.1 and earlier) answers. */
#define EASR_HTTP_OK 200
#define EASR_HTTP_BAD_REQUEST 400
#define EASR_HTTP_FORBIDDEN 403
#define EASR_HTTP_NEED_PROVISION 449 /* MS-ASHTTP: "Retry after sending a Provision command" */
#define EASR_HTTP_SERVICE_UNAVAILABLE 503

enum easr_err {
    EASR_E_NOBODY = -100,  /* the command has no WBXML answer (GetAttachment, OPTIONS) */
    EASR_E_VERSION = -101, /* not possible at this protocol version */
    EASR_E_ARG = -102,
};

/* The root and Status tags of a command's answer. EASR_E_NOBODY for
 * GetAttachment, OPTIONS and unknown commands. */
int easr_command_tags(enum easq_cmd cmd, uint16_t *root, uint16_t *status);

/* <Cmd><Status>status</Status></Cmd> in the command's code page. */
int easr_status_body(struct wbxml_w *w, enum easq_cmd cmd, int status);

/* Why the proxy answers instead of forwarding. */
enum easr_situation {
    EASR_SIT_BLOCKED,            /* 129, or 403 */
    EASR_SIT_NOT_PROVISIONED,    /* 142, or 449 */
    EASR_SIT_POLICY_REFRESH,     /* 143, or 449 */
    EASR_SIT_INVALID_POLICY_KEY, /* 144, or 449 */
    EASR_SIT_REMOTE_WIPE,        /* 140, or 449: the phone then runs Provision */
    EASR_SIT_RETRY_LATER,        /* 111, or 503 */
    EASR_SIT_BAD_DEVICE_ID,      /* 108, or 400 */
    EASR_SIT_INVALID_WBXML,      /* 102, or 400; Provision and Settings: their Status 2 */
};

/* What to send: http_status, and when wbxml is set, an answer body built with
 * easr_status_body(cmd, eas_status) and Content-Type
 * application/vnd.ms-sync.wbxml. */
struct easr_plan {
    int http_status;
    bool wbxml;
    int eas_status;
};

/* True when a client of this protocol version (141 = 14.1) is answered with
 * a WBXML Status; false for 12.1 and earlier, and for 0 (version unknown),
 * which get the legacy HTTP status every client understands. */
bool easr_version_uses_status(int version);

/* The answer for a situation. Commands without a WBXML answer
 * (GetAttachment, unknown) get the HTTP status at every version. */
int easr_plan(int version, enum easq_cmd cmd, enum easr_situation sit, struct easr_plan *out);

/* ---- Provision (MS-ASPROV) ---- */

#define EASR_UNSET (-1)
#define EASR_POLICY_TYPE_WBXML "MS-EAS-Provisioning-WBXML"

/* Every EASProvisionDoc setting (MS-ASPROV 2.2.2, code page 14 order).
 * EASR_UNSET leaves the setting out of the document (the phone's default). */
struct easr_provision_policy {
    int device_password_enabled;                      /* 0/1 */
    int alphanumeric_device_password_required;        /* 0/1 */
    int require_storage_card_encryption;              /* 0/1 */
    int password_recovery_enabled;                    /* 0/1 */
    int attachments_enabled;                          /* 0/1 */
    int min_device_password_length;                   /* characters */
    int max_inactivity_time_device_lock;              /* seconds */
    int max_device_password_failed_attempts;          /* count */
    int max_attachment_size;                          /* bytes */
    int allow_simple_device_password;                 /* 0/1 */
    int device_password_expiration;                   /* days, 0 = never */
    int device_password_history;                      /* count */
    int allow_storage_card;                           /* 0/1 */
    int allow_camera;                                 /* 0/1 */
    int require_device_encryption;                    /* 0/1 */
    int allow_unsigned_applications;                  /* 0/1 */
    int allow_unsigned_installation_packages;         /* 0/1 */
    int min_device_password_complex_characters;       /* 1..4 */
    int allow_wifi;                                   /* 0/1 */
    int allow_text_messaging;                         /* 0/1 */
    int allow_pop_imap_email;                         /* 0/1 */
    int allow_bluetooth;                              /* 0 off, 1 hands-free, 2 all */
    int allow_irda;                                   /* 0/1 */
    int require_manual_sync_when_roaming;             /* 0/1 */
    int allow_desktop_sync;                           /* 0/1 */
    int max_calendar_age_filter;                      /* MS-ASPROV filter code */
    int allow_html_email;                             /* 0/1 */
    int max_email_age_filter;                         /* MS-ASPROV filter code */
    int max_email_body_truncation_size;               /* KB */
    int max_email_html_body_truncation_size;          /* KB */
    int require_signed_smime_messages;                /* 0/1 */
    int require_encrypted_smime_messages;             /* 0/1 */
    int require_signed_smime_algorithm;               /* 0 SHA1, 1 MD5 */
    int require_encryption_smime_algorithm;           /* 0 3DES .. 4 RC2-40 */
    int allow_smime_encryption_algorithm_negotiation; /* 0..2 */
    int allow_smime_soft_certs;                       /* 0/1 */
    int allow_browser;                                /* 0/1 */
    int allow_consumer_email;                         /* 0/1 */
    int allow_remote_desktop;                         /* 0/1 */
    int allow_internet_sharing;                       /* 0/1 */
    /* UnapprovedInROMApplicationList/ApplicationName and
     * ApprovedApplicationList/Hash; n == 0 leaves the list out. */
    const char *const *unapproved_in_rom_apps;
    size_t n_unapproved_in_rom_apps;
    const char *const *approved_app_hashes;
    size_t n_approved_app_hashes;
};

/* Every setting EASR_UNSET, no lists. */
void easr_policy_init(struct easr_provision_policy *p);

struct easr_provision_answer {
    int status;              /* Provision/Status, normally 1 */
    int devinfo_status;      /* settings:DeviceInformation/Status, EASR_UNSET to omit */
    const char *policy_type; /* NULL: EASR_POLICY_TYPE_WBXML */
    int policy_status;       /* Policy/Status, 1 = success */
    uint32_t policy_key;     /* the key the phone must send back */
    bool has_policy_key;
    /* Initial answer: the policy document. NULL: the acknowledgement
     * answer, which carries no Data. */
    const struct easr_provision_policy *policy;
};

/* The Provision answer with Policies/Policy (and EASProvisionDoc if policy). */
int easr_provision(struct wbxml_w *w, const struct easr_provision_answer *a);

/* The Provision answer that orders a wipe: <Status>1</Status><RemoteWipe/>,
 * or <AccountOnlyRemoteWipe/> (16.1 only; EASR_E_VERSION below 161). */
int easr_provision_wipe(struct wbxml_w *w, int version, bool account_only);

/* ---- OPTIONS (MS-ASHTTP 2.2.4) ---- */

#define EASR_PROTOCOL_VERSIONS "2.5,12.0,12.1,14.0,14.1,16.0,16.1"
#define EASR_PROTOCOL_COMMANDS                                                                     \
    "Sync,SendMail,SmartForward,SmartReply,GetAttachment,GetHierarchy,CreateCollection,"           \
    "DeleteCollection,MoveCollection,FolderSync,FolderCreate,FolderDelete,FolderUpdate,"           \
    "MoveItems,GetItemEstimate,MeetingResponse,Search,Settings,Ping,ItemOperations,Provision,"     \
    "ResolveRecipients,ValidateCert,Find"

struct easr_header {
    const char *name, *value;
};

/* The headers of the OPTIONS answer (HTTP 200, empty body): Allow, Public,
 * MS-ASProtocolVersions, MS-ASProtocolCommands. Static; *n gets the count. */
const struct easr_header *easr_options_headers(size_t *n);

#endif
