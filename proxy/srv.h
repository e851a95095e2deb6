/*
 * srv: the ActiveSync server role of the proxy -- the parts of the protocol
 * the proxy answers itself instead of Exchange (docs/server-role.md):
 *
 *   - Provision in `provisioning: mode: proxy`: both phases (the policy
 *     download with an EASProvisionDoc built from eas_policy and a temporary
 *     key, then the acknowledgement with the final key), and the policy-key
 *     check on every other command (142/144, or HTTP 449 for 12.x);
 *   - remote wipe: the Provision that follows the 140/449 carries RemoteWipe
 *     (AccountOnlyRemoteWipe when asked for; a request below 16.1, which
 *     cannot express it, is blocked rather than wiped in full);
 *   - quarantine: FolderSync and Sync answers showing one notice message in
 *     an Inbox of our own, sync keys of the form "EGQ-<n>", so that a device
 *     released later and coming back with such a key is told to start over
 *     (FolderSync Status 9, Sync Status 3) and resynchronises from Exchange.
 *
 * Policy keys are derived, not looked up: a key is a hash of the DeviceId,
 * the eas_policy fingerprint, the device's provisioning epoch (pk_epoch in
 * its Redis hash, which the core bumps on "reprovision") and the phase. So
 * every proxy computes the same key for the same device without a Redis
 * write in the request path; a changed eas_policy makes every issued key
 * stale, a new epoch only that device's. Issued final keys are tracked by
 * the core: the proxy reports each acknowledgement as a "provisioned"
 * sighting, the core stores it and writes it back into the device hash.
 *
 * Pure: srv_decide() reads a description of the request and fills a struct
 * srv_answer; the decision point (decide.c) turns it into a verdict. No I/O,
 * no globals.
 */
#ifndef EG_SRV_H
#define EG_SRV_H

#include "policy/pol.h"
#include "eas/easq.h"
#include "eas/wbxml.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Prefix of every sync key and folder id the quarantine answers hand out. */
#define SRV_QKEY_PREFIX "EGQ-"
#define SRV_QINBOX_ID "EGQ-inbox"
/* MS-ASPROV: AccountOnlyRemoteWipe exists from EAS 16.1 (major*10+minor). */
#define SRV_ACCOUNT_WIPE_VERSION 161

/* What the proxy knows about the request when it decides. */
struct srv_request {
    enum easq_cmd cmd;
    int version;            /* 141 = 14.1; 0 = unknown */
    const char *device_id;  /* normalised (easq_deviceid_norm) */
    bool has_policy_key;    /* X-MS-PolicyKey header or base64 field */
    uint32_t policy_key;    /* when has_policy_key */
    bool policy_key_bad;    /* present but not a 32-bit number */
    const char *lang;       /* Accept-Language value or LCID tag; may be NULL */
    bool wipe_account_only; /* the state asks for AccountOnlyRemoteWipe */
    uint64_t pk_epoch;      /* the device's provisioning epoch (0 if none) */
    /* The request body, when it was read (Provision, Settings, Ping,
     * FolderSync; Sync only when the device is quarantined). */
    const uint8_t *body;
    size_t body_len;
    bool body_read;
    /* Facts from the body (NULL: no body, or it is not WBXML). */
    const struct wbxml_facts *facts;
    int64_t now_ms; /* wall clock, for the notice's date */
};

enum srv_verdict {
    SRV_PASS,      /* not the server role's business: the usual decision */
    SRV_ANSWER,    /* send the answer in struct srv_answer */
    SRV_NEED_BODY, /* read the body and call again (quarantined Sync) */
    SRV_FORWARD,   /* to Exchange, though the device is quarantined (decision and
                      reason in struct srv_answer): a passthrough Provision */
};

struct srv_answer {
    int http_status;
    const char *content_type; /* NULL: no body */
    uint8_t *body;            /* malloc'd; srv_answer_free() */
    size_t len;
    const char *decision;  /* access log: "provision", "quarantine", ... */
    const char *reason;    /* static */
    bool strip_policy_key; /* SRV_PASS: drop X-MS-PolicyKey toward Exchange */
    char log[160];         /* a line worth logging at info/warn, "" if none */
    bool log_warn;
    uint32_t provisioned_key; /* a Provision acknowledgement got this final key; 0 = none */
};

/*
 * The server role's verdict for a request that pol_decide() decided as d.
 * prov NULL (no policy loaded): always SRV_PASS.
 */
enum srv_verdict srv_decide(const struct prov_conf *prov, const struct pol_decision *d,
                            const struct srv_request *req, struct srv_answer *out);
void srv_answer_free(struct srv_answer *a);

/* The policy key for a device: phase 0 temporary (the download), phase 1
 * final (after the acknowledgement). Never 0. */
uint32_t srv_policy_key(const char *device_id, uint32_t fingerprint, int phase);
/* The fingerprint a device's keys are derived from: the policy's, mixed
 * with its provisioning epoch (epoch 0 leaves it unchanged, so keys issued
 * before epochs existed stay valid). */
uint32_t srv_key_fingerprint(uint32_t fingerprint, uint64_t pk_epoch);

/* The SyncKey (FolderHierarchy or AirSync) and the first CollectionId of a
 * FolderSync or Sync body, "" when absent. 0, or a negative WBXML error. */
int srv_body_keys(const uint8_t *body, size_t len, char *sync_key, size_t sklen, char *coll_id,
                  size_t cilen);

/* Build the EASProvisionDoc settings from the policy (exposed for tests). */
struct easr_provision_policy;
void srv_eas_policy(const struct prov_eas_policy *in, struct easr_provision_policy *out);

#endif
