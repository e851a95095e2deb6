/*
 * easr: protocol answers. Tables first (command -> tags, status -> name,
 * policy field -> token), then small builders over the WBXML writer, so an
 * answer is a handful of writer calls whose shape can be read off the code.
 */
#include "eas/easr.h"

#include <stddef.h>
#include <string.h>

/* ---- status names (MS-ASCMD 2.2.2) ---- */

static const char *const status_names[] = {
    [101 - 101] = "InvalidContent",
    [102 - 101] = "InvalidWBXML",
    [103 - 101] = "InvalidXML",
    [104 - 101] = "InvalidDateTime",
    [105 - 101] = "InvalidCombinationOfIDs",
    [106 - 101] = "InvalidIDs",
    [107 - 101] = "InvalidMIME",
    [108 - 101] = "DeviceIdMissingOrInvalid",
    [109 - 101] = "DeviceTypeMissingOrInvalid",
    [110 - 101] = "ServerError",
    [111 - 101] = "ServerErrorRetryLater",
    [112 - 101] = "ActiveDirectoryAccessDenied",
    [113 - 101] = "MailboxQuotaExceeded",
    [114 - 101] = "MailboxServerOffline",
    [115 - 101] = "SendQuotaExceeded",
    [116 - 101] = "MessageRecipientUnresolved",
    [117 - 101] = "MessageReplyNotAllowed",
    [118 - 101] = "MessagePreviouslySent",
    [119 - 101] = "MessageHasNoRecipient",
    [120 - 101] = "MailSubmissionFailed",
    [121 - 101] = "MessageReplyFailed",
    [122 - 101] = "AttachmentIsTooLarge",
    [123 - 101] = "UserHasNoMailbox",
    [124 - 101] = "UserCannotBeAnonymous",
    [125 - 101] = "UserPrincipalCouldNotBeFound",
    [126 - 101] = "UserDisabledForSync",
    [127 - 101] = "UserOnNewMailboxCannotSync",
    [128 - 101] = "UserOnLegacyMailboxCannotSync",
    [129 - 101] = "DeviceIsBlockedForThisUser",
    [130 - 101] = "AccessDenied",
    [131 - 101] = "AccountDisabled",
    [132 - 101] = "SyncStateNotFound",
    [133 - 101] = "SyncStateLocked",
    [134 - 101] = "SyncStateCorrupt",
    [135 - 101] = "SyncStateAlreadyExists",
    [136 - 101] = "SyncStateVersionInvalid",
    [137 - 101] = "CommandNotSupported",
    [138 - 101] = "VersionNotSupported",
    [139 - 101] = "DeviceNotFullyProvisionable",
    [140 - 101] = "RemoteWipeRequested",
    [141 - 101] = "LegacyDeviceOnStrictPolicy",
    [142 - 101] = "DeviceNotProvisioned",
    [143 - 101] = "PolicyRefresh",
    [144 - 101] = "InvalidPolicyKey",
    [145 - 101] = "ExternallyManagedDevicesNotAllowed",
    [146 - 101] = "NoRecurrenceInCalendar",
    [147 - 101] = "UnexpectedItemClass",
    [148 - 101] = "RemoteServerHasNoSSL",
    [149 - 101] = "InvalidStoredRequest",
    [150 - 101] = "ItemNotFound",
    [151 - 101] = "TooManyFolders",
    [152 - 101] = "NoFoldersFound",
    [153 - 101] = "ItemsLostAfterMove",
    [154 - 101] = "FailureInMoveOperation",
    [155 - 101] = "MoveCommandDisallowedForNonPersistentMoveAction",
    [156 - 101] = "MoveCommandInvalidDestinationFolder",
    [160 - 101] = "AvailabilityTooManyRecipients",
    [161 - 101] = "AvailabilityDLLimitReached",
    [162 - 101] = "AvailabilityTransientFailure",
    [163 - 101] = "AvailabilityFailure",
    [164 - 101] = "BodyPartPreferenceTypeNotSupported",
    [165 - 101] = "DeviceInformationRequired",
    [166 - 101] = "InvalidAccount",
    [167 - 101] = "AccountSendDisabled",
    [168 - 101] = "IRM_FeatureDisabled",
    [169 - 101] = "IRM_TransientError",
    [170 - 101] = "IRM_PermanentError",
    [171 - 101] = "IRM_InvalidTemplateID",
    [172 - 101] = "IRM_OperationNotPermitted",
    [173 - 101] = "NoPicture",
    [174 - 101] = "PictureTooLarge",
    [175 - 101] = "PictureLimitReached",
    [176 - 101] = "BodyPart_ConversationTooLarge",
    [177 - 101] = "MaximumDevicesReached",
};

const char *easr_status_name(int status)
{
    if (status < 101 || status - 101 >= (int)(sizeof(status_names) / sizeof(status_names[0])))
        return NULL;
    return status_names[status - 101];
}

/* ---- command -> answer tags ---- */

static const struct {
    uint16_t root, status;
} cmd_tags[EASQ_CMD_COUNT] = {
    [EASQ_CMD_SYNC] = {WBXML_AIRSYNC_SYNC, WBXML_AIRSYNC_STATUS},
    [EASQ_CMD_SENDMAIL] = {WBXML_CM_SENDMAIL, WBXML_CM_STATUS},
    [EASQ_CMD_SMARTFORWARD] = {WBXML_CM_SMARTFORWARD, WBXML_CM_STATUS},
    [EASQ_CMD_SMARTREPLY] = {WBXML_CM_SMARTREPLY, WBXML_CM_STATUS},
    [EASQ_CMD_FOLDERSYNC] = {WBXML_FH_FOLDERSYNC, WBXML_FH_STATUS},
    [EASQ_CMD_FOLDERCREATE] = {WBXML_FH_FOLDERCREATE, WBXML_FH_STATUS},
    [EASQ_CMD_FOLDERDELETE] = {WBXML_FH_FOLDERDELETE, WBXML_FH_STATUS},
    [EASQ_CMD_FOLDERUPDATE] = {WBXML_FH_FOLDERUPDATE, WBXML_FH_STATUS},
    [EASQ_CMD_MOVEITEMS] = {WBXML_MOVE_MOVEITEMS, WBXML_MOVE_STATUS},
    [EASQ_CMD_GETITEMESTIMATE] = {WBXML_GIE_GETITEMESTIMATE, WBXML_GIE_STATUS},
    [EASQ_CMD_MEETINGRESPONSE] = {WBXML_MR_MEETINGRESPONSE, WBXML_MR_STATUS},
    [EASQ_CMD_SEARCH] = {WBXML_SEARCH_SEARCH, WBXML_SEARCH_STATUS},
    [EASQ_CMD_SETTINGS] = {WBXML_SETTINGS_SETTINGS, WBXML_SETTINGS_STATUS},
    [EASQ_CMD_PING] = {WBXML_PING_PING, WBXML_PING_STATUS},
    [EASQ_CMD_ITEMOPERATIONS] = {WBXML_IO_ITEMOPERATIONS, WBXML_IO_STATUS},
    [EASQ_CMD_PROVISION] = {WBXML_PROV_PROVISION, WBXML_PROV_STATUS},
    [EASQ_CMD_RESOLVERECIPIENTS] = {WBXML_RR_RESOLVERECIPIENTS, WBXML_RR_STATUS},
    [EASQ_CMD_VALIDATECERT] = {WBXML_VC_VALIDATECERT, WBXML_VC_STATUS},
    [EASQ_CMD_FIND] = {WBXML_FIND_FIND, WBXML_FIND_STATUS},
    /* GetAttachment answers with the attachment itself; OPTIONS with
     * headers; neither has a WBXML body to carry a Status. */
};

int easr_command_tags(enum easq_cmd cmd, uint16_t *root, uint16_t *status)
{
    if ((unsigned)cmd >= EASQ_CMD_COUNT || cmd_tags[cmd].root == 0)
        return EASR_E_NOBODY;
    if (root)
        *root = cmd_tags[cmd].root;
    if (status)
        *status = cmd_tags[cmd].status;
    return 0;
}

int easr_status_body(struct wbxml_w *w, enum easq_cmd cmd, int status)
{
    uint16_t root, st;
    int rc = easr_command_tags(cmd, &root, &st);
    if (rc)
        return rc;
    if (status < 0)
        return EASR_E_ARG;
    wbxml_w_start(w, root);
    wbxml_w_uint(w, st, (unsigned long)status);
    return wbxml_w_end(w);
}

/* ---- which form of answer ---- */

#define EASR_FIRST_STATUS_VERSION 140 /* 14.0: common status codes in WBXML */

bool easr_version_uses_status(int version)
{
    return version >= EASR_FIRST_STATUS_VERSION;
}

int easr_plan(int version, enum easq_cmd cmd, enum easr_situation sit, struct easr_plan *out)
{
    static const struct {
        int eas, http;
    } by_sit[] = {
        [EASR_SIT_BLOCKED] = {EASR_STATUS_DEVICE_IS_BLOCKED_FOR_THIS_USER, EASR_HTTP_FORBIDDEN},
        [EASR_SIT_NOT_PROVISIONED] = {EASR_STATUS_DEVICE_NOT_PROVISIONED, EASR_HTTP_NEED_PROVISION},
        [EASR_SIT_POLICY_REFRESH] = {EASR_STATUS_POLICY_REFRESH, EASR_HTTP_NEED_PROVISION},
        [EASR_SIT_INVALID_POLICY_KEY] = {EASR_STATUS_INVALID_POLICY_KEY, EASR_HTTP_NEED_PROVISION},
        [EASR_SIT_REMOTE_WIPE] = {EASR_STATUS_REMOTE_WIPE_REQUESTED, EASR_HTTP_NEED_PROVISION},
        [EASR_SIT_RETRY_LATER] = {EASR_STATUS_SERVER_ERROR_RETRY_LATER,
                                  EASR_HTTP_SERVICE_UNAVAILABLE},
        [EASR_SIT_BAD_DEVICE_ID] = {EASR_STATUS_DEVICE_ID_MISSING_OR_INVALID,
                                    EASR_HTTP_BAD_REQUEST},
        [EASR_SIT_INVALID_WBXML] = {EASR_STATUS_INVALID_WBXML, EASR_HTTP_BAD_REQUEST},
    };
    if (!out || (unsigned)sit >= sizeof(by_sit) / sizeof(by_sit[0]))
        return EASR_E_ARG;
    out->eas_status = by_sit[sit].eas;
    if (sit == EASR_SIT_INVALID_WBXML && (cmd == EASQ_CMD_PROVISION || cmd == EASQ_CMD_SETTINGS)) {
        /* Their own "Protocol error" (MS-ASPROV 2.2.2.54.2, MS-ASCMD
         * 2.2.3.177.15), which every version knows. */
        out->eas_status = EASR_STATUS_PROTOCOL_ERROR_PROV;
        out->http_status = EASR_HTTP_OK;
        out->wbxml = true;
        return 0;
    }
    if (easr_version_uses_status(version) && easr_command_tags(cmd, NULL, NULL) == 0) {
        out->http_status = EASR_HTTP_OK;
        out->wbxml = true;
    } else {
        out->http_status = by_sit[sit].http;
        out->wbxml = false;
    }
    return 0;
}

/* ---- Provision ---- */

/* EASProvisionDoc settings in code page 14 token order. */
static const struct {
    uint8_t token;
    size_t off;
} policy_fields[] = {
#define PF(tok, field)                                                                             \
    {                                                                                              \
        tok, offsetof(struct easr_provision_policy, field)                                         \
    }
    PF(0x0E, device_password_enabled),
    PF(0x0F, alphanumeric_device_password_required),
    PF(0x10, require_storage_card_encryption),
    PF(0x11, password_recovery_enabled),
    PF(0x13, attachments_enabled),
    PF(0x14, min_device_password_length),
    PF(0x15, max_inactivity_time_device_lock),
    PF(0x16, max_device_password_failed_attempts),
    PF(0x17, max_attachment_size),
    PF(0x18, allow_simple_device_password),
    PF(0x19, device_password_expiration),
    PF(0x1A, device_password_history),
    PF(0x1B, allow_storage_card),
    PF(0x1C, allow_camera),
    PF(0x1D, require_device_encryption),
    PF(0x1E, allow_unsigned_applications),
    PF(0x1F, allow_unsigned_installation_packages),
    PF(0x20, min_device_password_complex_characters),
    PF(0x21, allow_wifi),
    PF(0x22, allow_text_messaging),
    PF(0x23, allow_pop_imap_email),
    PF(0x24, allow_bluetooth),
    PF(0x25, allow_irda),
    PF(0x26, require_manual_sync_when_roaming),
    PF(0x27, allow_desktop_sync),
    PF(0x28, max_calendar_age_filter),
    PF(0x29, allow_html_email),
    PF(0x2A, max_email_age_filter),
    PF(0x2B, max_email_body_truncation_size),
    PF(0x2C, max_email_html_body_truncation_size),
    PF(0x2D, require_signed_smime_messages),
    PF(0x2E, require_encrypted_smime_messages),
    PF(0x2F, require_signed_smime_algorithm),
    PF(0x30, require_encryption_smime_algorithm),
    PF(0x31, allow_smime_encryption_algorithm_negotiation),
    PF(0x32, allow_smime_soft_certs),
    PF(0x33, allow_browser),
    PF(0x34, allow_consumer_email),
    PF(0x35, allow_remote_desktop),
    PF(0x36, allow_internet_sharing),
#undef PF
};

#define UNAPPROVED_IN_ROM_LIST WBXML_TAG(WBXML_PAGE_PROVISION, 0x37)
#define APPROVED_APP_LIST WBXML_TAG(WBXML_PAGE_PROVISION, 0x39)

void easr_policy_init(struct easr_provision_policy *p)
{
    memset(p, 0, sizeof(*p));
    for (size_t i = 0; i < sizeof(policy_fields) / sizeof(policy_fields[0]); i++)
        *(int *)((char *)p + policy_fields[i].off) = EASR_UNSET;
}

static int write_list(struct wbxml_w *w, uint16_t list, uint16_t item, const char *const *v,
                      size_t n)
{
    if (n == 0)
        return 0;
    if (!v)
        return EASR_E_ARG;
    wbxml_w_start(w, list);
    for (size_t i = 0; i < n; i++)
        wbxml_w_text(w, item, v[i] ? v[i] : "");
    return wbxml_w_end(w);
}

static int write_policy_doc(struct wbxml_w *w, const struct easr_provision_policy *p)
{
    wbxml_w_start(w, WBXML_PROV_EASPROVISIONDOC);
    for (size_t i = 0; i < sizeof(policy_fields) / sizeof(policy_fields[0]); i++) {
        int v = *(const int *)((const char *)p + policy_fields[i].off);
        if (v == EASR_UNSET)
            continue;
        if (v < 0)
            return EASR_E_ARG;
        wbxml_w_uint(w, WBXML_TAG(WBXML_PAGE_PROVISION, policy_fields[i].token), (unsigned long)v);
    }
    if (write_list(w, UNAPPROVED_IN_ROM_LIST, WBXML_PROV_APPLICATIONNAME, p->unapproved_in_rom_apps,
                   p->n_unapproved_in_rom_apps) ||
        write_list(w, APPROVED_APP_LIST, WBXML_PROV_HASH, p->approved_app_hashes,
                   p->n_approved_app_hashes))
        return EASR_E_ARG;
    return wbxml_w_end(w);
}

int easr_provision(struct wbxml_w *w, const struct easr_provision_answer *a)
{
    int rc;
    if (!a || a->status < 0 || a->policy_status < 0)
        return EASR_E_ARG;
    /* Order per MS-ASPROV ProvisionResponse schema: DeviceInformation,
     * Status, Policies/Policy(PolicyType, Status, PolicyKey, Data). */
    wbxml_w_start(w, WBXML_PROV_PROVISION);
    if (a->devinfo_status != EASR_UNSET) {
        if (a->devinfo_status < 0)
            return EASR_E_ARG;
        wbxml_w_start(w, WBXML_SETTINGS_DEVICEINFORMATION);
        wbxml_w_uint(w, WBXML_SETTINGS_STATUS, (unsigned long)a->devinfo_status);
        wbxml_w_end(w);
    }
    wbxml_w_uint(w, WBXML_PROV_STATUS, (unsigned long)a->status);
    wbxml_w_start(w, WBXML_PROV_POLICIES);
    wbxml_w_start(w, WBXML_PROV_POLICY);
    wbxml_w_text(w, WBXML_PROV_POLICYTYPE,
                 a->policy_type ? a->policy_type : EASR_POLICY_TYPE_WBXML);
    wbxml_w_uint(w, WBXML_PROV_STATUS, (unsigned long)a->policy_status);
    if (a->has_policy_key)
        wbxml_w_uint(w, WBXML_PROV_POLICYKEY, a->policy_key);
    if (a->policy) {
        wbxml_w_start(w, WBXML_PROV_DATA);
        if ((rc = write_policy_doc(w, a->policy)) != 0)
            return rc;
        wbxml_w_end(w);
    }
    wbxml_w_end(w); /* Policy */
    wbxml_w_end(w); /* Policies */
    return wbxml_w_end(w);
}

int easr_provision_wipe(struct wbxml_w *w, int version, bool account_only)
{
    /* AccountOnlyRemoteWipe exists from 16.1 on (MS-ASWBXML code page 14). */
    if (account_only && version < 161)
        return EASR_E_VERSION;
    wbxml_w_start(w, WBXML_PROV_PROVISION);
    wbxml_w_uint(w, WBXML_PROV_STATUS, EASR_STATUS_SUCCESS);
    wbxml_w_empty(w, account_only ? WBXML_PROV_ACCOUNTONLYREMOTEWIPE : WBXML_PROV_REMOTEWIPE);
    return wbxml_w_end(w);
}

/* ---- OPTIONS ---- */

const struct easr_header *easr_options_headers(size_t *n)
{
    static const struct easr_header hdrs[] = {
        {"Allow", "OPTIONS,POST"},
        {"Public", "OPTIONS,POST"},
        {"MS-ASProtocolVersions", EASR_PROTOCOL_VERSIONS},
        {"MS-ASProtocolCommands", EASR_PROTOCOL_COMMANDS},
    };
    if (n)
        *n = sizeof(hdrs) / sizeof(hdrs[0]);
    return hdrs;
}
