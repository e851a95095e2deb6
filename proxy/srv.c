/*
 * srv: the server role's decisions and answers (see srv.h for the why).
 * Every answer is built with the project's WBXML writer into a growable
 * buffer that the caller frees after sending (conn_answer copies it).
 * Status values: MS-ASPROV (Provision and Policy), MS-ASCMD (FolderSync 9
 * and Sync 3 "invalid synchronization key", Sync 12 "folder hierarchy
 * changed"), the common codes through easr.
 */
#include "proxy/srv.h"

#include "proxy/answer.h"
#include "eas/easr.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* MS-ASPROV Provision/Status and Policy/Status values the server sends. */
enum {
    PROV_ST_SUCCESS = 1,
    PROV_ST_PROTOCOL_ERROR = 2,
    POLICY_ST_UNKNOWN_TYPE = 3,
    POLICY_ST_WRONG_KEY = 5,
};
/* MS-ASCMD FolderSync and Sync status values used here. */
enum {
    FOLDERSYNC_ST_INVALID_KEY = 9,
    SYNC_ST_INVALID_KEY = 3,
    SYNC_ST_HIERARCHY_CHANGED = 12,
};
#define FOLDER_TYPE_INBOX 2 /* MS-ASCMD FolderSync Type: default Inbox */

void srv_eas_policy(const struct prov_eas_policy *in, struct easr_provision_policy *out)
{
    easr_policy_init(out);
#define SRV_COPY(f, ...) out->f = in->f;
    PROV_SETTINGS(SRV_COPY)
#undef SRV_COPY
    out->unapproved_in_rom_apps = in->unapproved_in_rom_apps.v;
    out->n_unapproved_in_rom_apps = in->unapproved_in_rom_apps.n;
    out->approved_app_hashes = in->approved_app_hashes.v;
    out->n_approved_app_hashes = in->approved_app_hashes.n;
}

uint32_t srv_policy_key(const char *device_id, uint32_t fingerprint, int phase)
{
    /* FNV-1a from our own offset basis, so keys are not plain FNV of the id. */
    uint32_t h = 0x6ea5ca7eu ^ fingerprint;
    for (const char *s = device_id ? device_id : ""; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    /* Finalise so close inputs give unrelated keys (murmur3's mixer). */
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    /* The phase is the top bit: a temporary key can never be a final one. */
    h = phase ? (h | 0x80000000u) : (h & 0x7fffffffu);
    return h ? h : 1;
}

uint32_t srv_key_fingerprint(uint32_t fingerprint, uint64_t pk_epoch)
{
    if (pk_epoch == 0)
        return fingerprint;
    /* splitmix64's finaliser: epochs 1, 2, 3 give unrelated fingerprints. */
    uint64_t z = pk_epoch + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return fingerprint ^ (uint32_t)z ^ (uint32_t)(z >> 32);
}

static uint32_t key_temp(const char *dev, uint32_t fp, uint64_t epoch)
{
    return srv_policy_key(dev, srv_key_fingerprint(fp, epoch), 0);
}

static uint32_t key_final(const char *dev, uint32_t fp, uint64_t epoch)
{
    return srv_policy_key(dev, srv_key_fingerprint(fp, epoch), 1);
}

/* ---- body keys ---- */

struct keys_ud {
    uint16_t synckey_fh, synckey_as, collid;
    char *sk, *ci;
    size_t skl, cil;
    bool got_sk, got_ci;
};

static void take(char *dst, size_t cap, const struct wbxml_ev *ev)
{
    size_t have = strlen(dst);
    size_t n = ev->len < cap - 1 - have ? ev->len : cap - 1 - have;
    memcpy(dst + have, ev->data, n);
    dst[have + n] = '\0';
}

static int keys_cb(void *ud, const struct wbxml_ev *ev)
{
    struct keys_ud *k = ud;
    if (ev->type != WBXML_EV_TEXT)
        return 0;
    if ((ev->tag == k->synckey_fh || ev->tag == k->synckey_as) && !k->got_sk) {
        take(k->sk, k->skl, ev);
        if (ev->last)
            k->got_sk = true;
    } else if (ev->tag == k->collid && !k->got_ci) {
        take(k->ci, k->cil, ev);
        if (ev->last)
            k->got_ci = true;
    }
    return 0;
}

static uint16_t tag(unsigned page, const char *name)
{
    int t = wbxml_tag_by_name(page, name, strlen(name));
    return t < 0 ? 0 : WBXML_TAG(page, t);
}

int srv_body_keys(const uint8_t *body, size_t len, char *sk, size_t skl, char *ci, size_t cil)
{
    sk[0] = ci[0] = '\0';
    struct keys_ud k = {
        .synckey_fh = tag(WBXML_PAGE_FOLDERHIERARCHY, "SyncKey"),
        .synckey_as = tag(WBXML_PAGE_AIRSYNC, "SyncKey"),
        .collid = tag(WBXML_PAGE_AIRSYNC, "CollectionId"),
        .sk = sk,
        .ci = ci,
        .skl = skl,
        .cil = cil,
    };
    struct wbxml_dec d;
    wbxml_dec_init(&d, keys_cb, &k);
    int rc = wbxml_dec_feed(&d, body, len);
    if (rc == 0)
        rc = wbxml_dec_finish(&d);
    return rc;
}

/* ---- answers ---- */

static void out_init(struct srv_answer *a)
{
    /* Everything but the log text, which is set whole when used. */
    memset(a, 0, offsetof(struct srv_answer, log));
    a->log[0] = '\0';
    a->log_warn = false;
    a->provisioned_key = 0;
}

void srv_answer_free(struct srv_answer *a)
{
    if (a) {
        free(a->body);
        a->body = NULL;
    }
}

/* Take the writer's document into a (as a WBXML 200 answer). */
static enum srv_verdict finish(struct wbxml_w *w, struct srv_answer *a)
{
    const uint8_t *doc;
    size_t len;
    int rc = wbxml_w_finish(w, &doc, &len);
    if (rc == 0 && (a->body = malloc(len)) != NULL) {
        memcpy(a->body, doc, len);
        a->len = len;
        a->http_status = 200;
        a->content_type = ANSWER_WBXML_TYPE;
    } else {
        /* Cannot happen with a growable writer short of memory: a bare 503
         * is still an answer the phone understands (it retries). */
        a->http_status = 503;
        a->content_type = NULL;
        a->len = 0;
        snprintf(a->log, sizeof(a->log), "server role: building the answer failed (%d)", rc);
        a->log_warn = true;
    }
    wbxml_w_free(w);
    return SRV_ANSWER;
}

/* The protocol's status answer for a situation (easr's version plan). */
static enum srv_verdict situation(enum easq_cmd cmd, int version, enum easr_situation sit,
                                  struct srv_answer *a)
{
    struct answer ans;
    answer_eas(cmd, version, sit, &ans);
    a->http_status = ans.http_status;
    a->content_type = ans.content_type;
    if (ans.len && (a->body = malloc(ans.len)) != NULL) {
        memcpy(a->body, ans.body, ans.len);
        a->len = ans.len;
    } else {
        a->content_type = NULL;
    }
    return SRV_ANSWER;
}

static enum srv_verdict status_body(enum easq_cmd cmd, int status, struct srv_answer *a)
{
    struct wbxml_w w;
    wbxml_w_init(&w, NULL, 0);
    easr_status_body(&w, cmd, status);
    return finish(&w, a);
}

static enum srv_verdict provision_answer(const struct wbxml_facts *f, int policy_status,
                                         uint32_t key, const struct easr_provision_policy *doc,
                                         struct srv_answer *a)
{
    struct easr_provision_answer pa = {
        .status = PROV_ST_SUCCESS,
        .devinfo_status = f && f->has_devinfo ? 1 : EASR_UNSET,
        .policy_type = EASR_POLICY_TYPE_WBXML,
        .policy_status = policy_status,
        .policy_key = key,
        .has_policy_key = key != 0,
        .policy = doc,
    };
    struct wbxml_w w;
    wbxml_w_init(&w, NULL, 0);
    easr_provision(&w, &pa);
    return finish(&w, a);
}

static bool parse_key(const char *s, uint32_t *out)
{
    if (!*s || strlen(s) > 10)
        return false;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* Provision, both phases, in proxy mode (MS-ASPROV 3.2.5.1). */
static enum srv_verdict provision(const struct prov_conf *prov, const struct srv_request *rq,
                                  struct srv_answer *a)
{
    const struct wbxml_facts *f = rq->facts;
    const char *dev = rq->device_id ? rq->device_id : "";
    a->decision = "provision";
    if (!f || f->root != WBXML_PROV_PROVISION || !f->policy_type[0]) {
        a->reason = "provision-bad-request";
        snprintf(a->log, sizeof(a->log), "Provision from %s: body is %s: Status %d", dev,
                 !rq->body_len ? "empty"
                 : !f          ? "not WBXML"
                               : "not a Provision request",
                 PROV_ST_PROTOCOL_ERROR);
        a->log_warn = true;
        return status_body(EASQ_CMD_PROVISION, PROV_ST_PROTOCOL_ERROR, a);
    }
    if (strcmp(f->policy_type, EASR_POLICY_TYPE_WBXML) != 0) {
        a->reason = "provision-policy-type";
        snprintf(a->log, sizeof(a->log), "Provision from %s: PolicyType '%.40s' not supported", dev,
                 f->policy_type);
        a->log_warn = true;
        return provision_answer(f, POLICY_ST_UNKNOWN_TYPE, 0, NULL, a);
    }
    uint32_t temp = key_temp(dev, prov->fingerprint, rq->pk_epoch);
    uint32_t fin = key_final(dev, prov->fingerprint, rq->pk_epoch);
    if (!f->policy_key[0]) {
        /* Phase 1: the policy download, with the temporary key. */
        struct easr_provision_policy doc;
        srv_eas_policy(&prov->eas, &doc);
        a->reason = "provision-download";
        return provision_answer(f, PROV_ST_SUCCESS, temp, &doc, a);
    }
    uint32_t k;
    if (!parse_key(f->policy_key, &k) || (k != temp && k != fin)) {
        a->reason = "provision-wrong-key";
        snprintf(a->log, sizeof(a->log),
                 "Provision from %s: acknowledges policy key '%.20s' that was never issued: "
                 "Policy Status %d",
                 dev, f->policy_key, POLICY_ST_WRONG_KEY);
        a->log_warn = true;
        return provision_answer(f, POLICY_ST_WRONG_KEY, 0, NULL, a);
    }
    /* Phase 2: the acknowledgement. 1 = applied, 2 = partly applied (the
     * phone could not enforce everything; Exchange's default policy lets
     * such phones in too). 3 and 4 mean not applied at all. */
    if (f->policy_status != 1 && f->policy_status != 2) {
        a->reason = "provision-not-applied";
        snprintf(a->log, sizeof(a->log),
                 "Provision from %s: the phone did not apply the policy (Status %d)", dev,
                 f->policy_status);
        a->log_warn = true;
        if (easr_version_uses_status(rq->version))
            return status_body(EASQ_CMD_PROVISION, EASR_STATUS_DEVICE_NOT_FULLY_PROVISIONABLE, a);
        a->http_status = EASR_HTTP_FORBIDDEN;
        return SRV_ANSWER;
    }
    a->reason = "provision-acknowledged";
    a->provisioned_key = fin;
    snprintf(a->log, sizeof(a->log), "Provision from %s: policy acknowledged (Status %d)", dev,
             f->policy_status);
    return provision_answer(f, PROV_ST_SUCCESS, fin, NULL, a);
}

/* 142/144 (449 for 12.x) when the request does not carry the final key. */
static enum srv_verdict key_check(const struct prov_conf *prov, const struct srv_request *rq,
                                  struct srv_answer *a)
{
    const char *dev = rq->device_id ? rq->device_id : "";
    if (rq->policy_key_bad) {
        a->decision = "provision";
        a->reason = "policy-key-invalid";
        snprintf(a->log, sizeof(a->log), "%s from %s: policy key is not a number",
                 easq_cmd_name(rq->cmd), dev);
        a->log_warn = true;
        return situation(rq->cmd, rq->version, EASR_SIT_INVALID_POLICY_KEY, a);
    }
    if (!rq->has_policy_key || rq->policy_key == 0) {
        a->decision = "provision";
        a->reason = "not-provisioned";
        return situation(rq->cmd, rq->version, EASR_SIT_NOT_PROVISIONED, a);
    }
    if (rq->policy_key != key_final(dev, prov->fingerprint, rq->pk_epoch)) {
        a->decision = "provision";
        a->reason = "policy-key-stale";
        return situation(rq->cmd, rq->version, EASR_SIT_INVALID_POLICY_KEY, a);
    }
    return SRV_PASS;
}

static bool is_qkey(const char *k)
{
    return strncmp(k, SRV_QKEY_PREFIX, strlen(SRV_QKEY_PREFIX)) == 0;
}

/* ---- quarantine ---- */

static enum srv_verdict q_foldersync(const char *sk, struct srv_answer *a)
{
    const unsigned P = WBXML_PAGE_FOLDERHIERARCHY;
    struct wbxml_w w;
    wbxml_w_init(&w, NULL, 0);
    wbxml_w_start(&w, tag(P, "FolderSync"));
    wbxml_w_uint(&w, tag(P, "Status"), 1);
    if (is_qkey(sk)) {
        /* Already has our hierarchy: no changes. */
        wbxml_w_text(&w, tag(P, "SyncKey"), sk);
    } else {
        wbxml_w_text(&w, tag(P, "SyncKey"), SRV_QKEY_PREFIX "1");
        wbxml_w_start(&w, tag(P, "Changes"));
        wbxml_w_uint(&w, tag(P, "Count"), 1);
        wbxml_w_start(&w, tag(P, "Add"));
        wbxml_w_text(&w, tag(P, "ServerId"), SRV_QINBOX_ID);
        wbxml_w_text(&w, tag(P, "ParentId"), "0");
        wbxml_w_text(&w, tag(P, "DisplayName"), "Inbox");
        wbxml_w_uint(&w, tag(P, "Type"), FOLDER_TYPE_INBOX);
        wbxml_w_end(&w);
        wbxml_w_end(&w);
    }
    wbxml_w_end(&w);
    return finish(&w, a);
}

static void notice_item(struct wbxml_w *w, const struct prov_notice *n, int64_t now_ms)
{
    const unsigned A = WBXML_PAGE_AIRSYNC, E = WBXML_PAGE_EMAIL, B = WBXML_PAGE_AIRSYNCBASE;
    char date[32], size[24];
    time_t t = (time_t)(now_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S.000Z", &tm);
    snprintf(size, sizeof(size), "%zu", strlen(n->body));
    wbxml_w_start(w, tag(A, "Add"));
    wbxml_w_text(w, tag(A, "ServerId"), SRV_QINBOX_ID ":1");
    wbxml_w_start(w, tag(A, "ApplicationData"));
    wbxml_w_text(w, tag(E, "To"), "\"You\" <device@quarantine.invalid>");
    wbxml_w_text(w, tag(E, "From"), "\"Mail access\" <no-reply@quarantine.invalid>");
    wbxml_w_text(w, tag(E, "Subject"), n->subject);
    wbxml_w_text(w, tag(E, "DateReceived"), date);
    wbxml_w_text(w, tag(E, "DisplayTo"), "You");
    wbxml_w_uint(w, tag(E, "Importance"), 2);
    wbxml_w_uint(w, tag(E, "Read"), 0);
    wbxml_w_start(w, tag(B, "Body"));
    wbxml_w_uint(w, tag(B, "Type"), 1); /* plain text */
    wbxml_w_text(w, tag(B, "EstimatedDataSize"), size);
    wbxml_w_text(w, tag(B, "Data"), n->body);
    wbxml_w_end(w);
    wbxml_w_text(w, tag(E, "MessageClass"), "IPM.Note");
    wbxml_w_end(w);
    wbxml_w_end(w);
}

static enum srv_verdict q_sync(const struct prov_conf *prov, const struct srv_request *rq,
                               struct srv_answer *a)
{
    const unsigned A = WBXML_PAGE_AIRSYNC;
    char sk[64], ci[64];
    if (!rq->body_len) {
        /* An empty Sync repeats the last one: nothing changed. */
        a->http_status = 200;
        return SRV_ANSWER;
    }
    if (srv_body_keys(rq->body, rq->body_len, sk, sizeof(sk), ci, sizeof(ci)) < 0) {
        a->reason = "quarantine-bad-body";
        return status_body(EASQ_CMD_SYNC, EASR_STATUS_INVALID_WBXML, a);
    }
    struct wbxml_w w;
    wbxml_w_init(&w, NULL, 0);
    wbxml_w_start(&w, tag(A, "Sync"));
    if (strcmp(ci, SRV_QINBOX_ID) != 0) {
        /* A folder from before the quarantine: tell it to sync folders. */
        wbxml_w_uint(&w, tag(A, "Status"), SYNC_ST_HIERARCHY_CHANGED);
        wbxml_w_end(&w);
        return finish(&w, a);
    }
    wbxml_w_start(&w, tag(A, "Collections"));
    wbxml_w_start(&w, tag(A, "Collection"));
    if (strcmp(sk, "0") == 0) {
        wbxml_w_text(&w, tag(A, "SyncKey"), SRV_QKEY_PREFIX "1");
        wbxml_w_text(&w, tag(A, "CollectionId"), ci);
        wbxml_w_uint(&w, tag(A, "Status"), 1);
    } else if (strcmp(sk, SRV_QKEY_PREFIX "1") == 0) {
        wbxml_w_text(&w, tag(A, "SyncKey"), SRV_QKEY_PREFIX "2");
        wbxml_w_text(&w, tag(A, "CollectionId"), ci);
        wbxml_w_uint(&w, tag(A, "Status"), 1);
        wbxml_w_start(&w, tag(A, "Commands"));
        notice_item(&w, prov_notice_for(prov, rq->lang), rq->now_ms);
        wbxml_w_end(&w);
    } else if (is_qkey(sk)) {
        wbxml_w_text(&w, tag(A, "SyncKey"), sk);
        wbxml_w_text(&w, tag(A, "CollectionId"), ci);
        wbxml_w_uint(&w, tag(A, "Status"), 1);
    } else {
        wbxml_w_text(&w, tag(A, "SyncKey"), "0");
        wbxml_w_text(&w, tag(A, "CollectionId"), ci);
        wbxml_w_uint(&w, tag(A, "Status"), SYNC_ST_INVALID_KEY);
    }
    wbxml_w_end(&w);
    wbxml_w_end(&w);
    wbxml_w_end(&w);
    return finish(&w, a);
}

static enum srv_verdict quarantine(const struct prov_conf *prov, const struct srv_request *rq,
                                   const char *why, struct srv_answer *a)
{
    a->decision = "quarantine";
    /* The policy's reason (rule:N, unknown-device, state-quarantine): the
     * access log must say which input quarantined the phone. */
    a->reason = why ? why : "state-quarantine";
    char sk[64], ci[64];
    switch (rq->cmd) {
    case EASQ_CMD_FOLDERSYNC:
        if (rq->body_len &&
            srv_body_keys(rq->body, rq->body_len, sk, sizeof(sk), ci, sizeof(ci)) < 0)
            return status_body(EASQ_CMD_FOLDERSYNC, EASR_STATUS_INVALID_WBXML, a);
        if (!rq->body_len)
            sk[0] = '\0';
        return q_foldersync(sk, a);
    case EASQ_CMD_SYNC:
        if (!rq->body_read)
            return SRV_NEED_BODY;
        return q_sync(prov, rq, a);
    default:
        return SRV_PASS; /* the usual quarantine answer (refused) */
    }
}

/* A device to be wiped: RemoteWipe in its Provision, or a block when only
 * an account wipe was ordered and the version cannot say it. */
static enum srv_verdict wipe(const struct srv_request *rq, struct srv_answer *a)
{
    if (rq->wipe_account_only && rq->version < SRV_ACCOUNT_WIPE_VERSION) {
        /* The admin ordered the account-only wipe, and this version can
         * only say "wipe everything", which would erase a personal
         * phone: do less than ordered, never more. Blocked, not wiped,
         * until the phone speaks 16.1 or the admin orders a full wipe. */
        a->decision = "block";
        a->reason = "wipe-account-unsupported";
        snprintf(a->log, sizeof(a->log),
                 "device %s: account-only wipe ordered but the request is EAS %d.%d "
                 "(AccountOnlyRemoteWipe needs 16.1): blocked, not wiped",
                 rq->device_id ? rq->device_id : "", rq->version / 10, rq->version % 10);
        a->log_warn = true;
        return situation(rq->cmd, rq->version, EASR_SIT_BLOCKED, a);
    }
    if (rq->cmd != EASQ_CMD_PROVISION)
        return SRV_PASS;
    /* Any version: RemoteWipe exists in every Provision version. */
    bool acct = rq->wipe_account_only;
    struct wbxml_w w;
    wbxml_w_init(&w, NULL, 0);
    easr_provision_wipe(&w, rq->version, acct);
    a->decision = "wipe";
    a->reason = acct ? "state-wipe-account" : "state-wipe";
    if (rq->facts && (rq->facts->remote_wipe || rq->facts->account_only_remote_wipe))
        snprintf(a->log, sizeof(a->log), "device %s acknowledged the remote wipe",
                 rq->device_id ? rq->device_id : "");
    return finish(&w, a);
}

/* An allowed FolderSync with one of our quarantine keys: the device was
 * released; our hierarchy means nothing to Exchange, so the phone starts
 * over with SyncKey 0. */
static enum srv_verdict released(const struct srv_request *rq, struct srv_answer *a)
{
    char sk[64], ci[64];
    if (srv_body_keys(rq->body, rq->body_len, sk, sizeof(sk), ci, sizeof(ci)) != 0 || !is_qkey(sk))
        return SRV_PASS;
    a->decision = "resync";
    a->reason = "quarantine-released";
    a->strip_policy_key = false;
    snprintf(a->log, sizeof(a->log), "device %s left quarantine: FolderSync Status %d (start over)",
             rq->device_id ? rq->device_id : "", FOLDERSYNC_ST_INVALID_KEY);
    return status_body(EASQ_CMD_FOLDERSYNC, FOLDERSYNC_ST_INVALID_KEY, a);
}

enum srv_verdict srv_decide(const struct prov_conf *prov, const struct pol_decision *d,
                            const struct srv_request *rq, struct srv_answer *a)
{
    out_init(a);
    if (!prov)
        return SRV_PASS;
    bool proxy_mode = prov->mode == PROV_PROXY;
    switch (d->action) {
    case POL_BLOCK:
        return SRV_PASS;
    case POL_WIPE:
        return wipe(rq, a);
    case POL_QUARANTINE:
        if (rq->cmd == EASQ_CMD_PROVISION) {
            if (proxy_mode)
                return provision(prov, rq, a);
            /* Exchange provisions in passthrough mode: refusing its Provision
             * would stop a phone that provisions first before the FolderSync
             * and Sync that show it the notice, and look like a block. */
            a->decision = "quarantine";
            a->reason = "quarantine-provision";
            return SRV_FORWARD;
        }
        return quarantine(prov, rq, d->reason, a);
    case POL_ALLOW:
        break;
    }
    if (proxy_mode) {
        if (rq->cmd == EASQ_CMD_PROVISION)
            return provision(prov, rq, a);
        if (rq->cmd != EASQ_CMD_UNKNOWN && rq->cmd != EASQ_CMD_OPTIONS) {
            enum srv_verdict v = key_check(prov, rq, a);
            if (v != SRV_PASS)
                return v;
        }
        a->strip_policy_key = true;
    }
    if (rq->cmd == EASQ_CMD_FOLDERSYNC && rq->body_len)
        return released(rq, a);
    return SRV_PASS;
}
