/* test_srv: the server role's decision and answer functions (proxy/srv.h):
 * Provision both phases, the key check per version, wipe, quarantine
 * answers, release; every WBXML answer is decoded back and checked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/pol.h"
#include "eas/easr.h"
#include "eas/wbxml.h"
#include "proxy/srv.h"

static struct pol_policy *pol;
static uint8_t *body; /* the last request body run() encoded */

static int setup(void **state)
{
    const char *y = "provisioning:\n"
                    "  mode: proxy\n"
                    "  eas_policy: { device_password_enabled: true, min_device_password_length: 6,"
                    " allow_camera: false }\n"
                    "  quarantine_notice:\n"
                    "    en: { subject: \"Waiting\", body: \"Call IT\" }\n"
                    "    fr: { subject: \"En attente\", body: \"Appelez l'IT\" }\n";
    char err[256];
    if (pol_load_buf("policy.yaml", y, strlen(y), &pol, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    pol_unref(pol);
    free(body);
    return 0;
}

/* XML of an answer (for substring checks); caller frees. */
static char *xml_of(const struct srv_answer *a)
{
    char *x = NULL;
    size_t xl;
    uint64_t off;
    assert_non_null(a->body);
    assert_int_equal(wbxml_to_xml(a->body, a->len, &x, &xl, &off), 0);
    return x;
}

static uint8_t *encode(const char *xml, size_t *len)
{
    uint8_t *out = NULL;
    uint64_t off;
    const char *why;
    assert_int_equal(wbxml_from_xml(xml, strlen(xml), &out, len, &off, &why), 0);
    return out;
}

/* Run srv_decide on a request whose body is xml (NULL: none). */
static enum srv_verdict run(enum pol_action act, enum easq_cmd cmd, int version, const char *xml,
                            struct srv_request *rq, struct srv_answer *a, char **x)
{
    static struct wbxml_facts f;
    free(body);
    body = NULL;
    size_t len = 0;
    rq->cmd = cmd;
    rq->version = version;
    if (!rq->device_id)
        rq->device_id = "DEV1";
    if (xml) {
        body = encode(xml, &len);
        uint64_t off;
        rq->facts = wbxml_extract(body, len, &f, &off) == 0 ? &f : NULL;
        rq->body = body;
        rq->body_len = len;
        rq->body_read = true;
    }
    struct pol_decision d = {act, "test", 0};
    enum srv_verdict v = srv_decide(&pol->provisioning, &d, rq, a);
    *x = v == SRV_ANSWER && a->body && a->len ? xml_of(a) : NULL;
    return v;
}

#define DOWNLOAD                                                                                   \
    "<Provision xmlns=\"Provision\"><Policies><Policy><PolicyType>MS-EAS-Provisioning-WBXML</"     \
    "PolicyType></Policy></Policies></Provision>"

static void test_provision_phases(void **state)
{
    struct srv_request rq = {0};
    struct srv_answer a;
    char *x;
    uint32_t fp = pol->provisioning.fingerprint;
    assert_int_equal(run(POL_ALLOW, EASQ_CMD_PROVISION, 141, DOWNLOAD, &rq, &a, &x), SRV_ANSWER);
    assert_int_equal(a.http_status, 200);
    assert_non_null(strstr(x, "<MinDevicePasswordLength>6</MinDevicePasswordLength>"));
    assert_non_null(strstr(x, "<AllowCamera>0</AllowCamera>"));
    assert_null(strstr(x, "<AllowWiFi>")); /* unset settings are left out */
    char want[64];
    snprintf(want, sizeof(want), "<PolicyKey>%u</PolicyKey>", srv_policy_key("DEV1", fp, 0));
    assert_non_null(strstr(x, want));
    free(x);
    srv_answer_free(&a);

    /* acknowledgement of the temporary key -> final key */
    char ack[512];
    snprintf(ack, sizeof(ack),
             "<Provision xmlns=\"Provision\"><Policies><Policy><PolicyType>MS-EAS-Provisioning-"
             "WBXML</PolicyType><PolicyKey>%u</PolicyKey><Status>1</Status></Policy></Policies>"
             "</Provision>",
             srv_policy_key("DEV1", fp, 0));
    memset(&rq, 0, sizeof(rq));
    assert_int_equal(run(POL_ALLOW, EASQ_CMD_PROVISION, 141, ack, &rq, &a, &x), SRV_ANSWER);
    assert_string_equal(a.reason, "provision-acknowledged");
    assert_null(strstr(x, "EASProvisionDoc"));
    uint32_t fin = srv_policy_key("DEV1", fp, 1);
    snprintf(want, sizeof(want), "<PolicyKey>%u</PolicyKey>", fin);
    assert_non_null(strstr(x, want));
    free(x);
    srv_answer_free(&a);

    /* never issued key -> Policy Status 5, no key */
    memset(&rq, 0, sizeof(rq));
    snprintf(ack, sizeof(ack),
             "<Provision xmlns=\"Provision\"><Policies><Policy><PolicyType>MS-EAS-Provisioning-"
             "WBXML</PolicyType><PolicyKey>77</PolicyKey><Status>1</Status></Policy></Policies>"
             "</Provision>");
    assert_int_equal(run(POL_ALLOW, EASQ_CMD_PROVISION, 141, ack, &rq, &a, &x), SRV_ANSWER);
    assert_non_null(strstr(x, "<Status>5</Status>"));
    assert_null(strstr(x, "PolicyKey"));
    assert_true(a.log_warn);
    free(x);
    srv_answer_free(&a);

    /* not applied (Status 3) -> 139 at 14.1, 403 at 12.1 */
    snprintf(ack, sizeof(ack),
             "<Provision xmlns=\"Provision\"><Policies><Policy><PolicyType>MS-EAS-Provisioning-"
             "WBXML</PolicyType><PolicyKey>%u</PolicyKey><Status>3</Status></Policy></Policies>"
             "</Provision>",
             srv_policy_key("DEV1", fp, 0));
    memset(&rq, 0, sizeof(rq));
    assert_int_equal(run(POL_ALLOW, EASQ_CMD_PROVISION, 141, ack, &rq, &a, &x), SRV_ANSWER);
    assert_non_null(strstr(x, "<Status>139</Status>"));
    free(x);
    srv_answer_free(&a);
    memset(&rq, 0, sizeof(rq));
    assert_int_equal(run(POL_ALLOW, EASQ_CMD_PROVISION, 121, ack, &rq, &a, &x), SRV_ANSWER);
    assert_int_equal(a.http_status, 403);
    srv_answer_free(&a);

    /* wrong PolicyType -> Policy Status 3 */
    memset(&rq, 0, sizeof(rq));
    assert_int_equal(run(POL_ALLOW, EASQ_CMD_PROVISION, 141,
                         "<Provision xmlns=\"Provision\"><Policies><Policy><PolicyType>MS-WAP-"
                         "Provisioning-XML</PolicyType></Policy></Policies></Provision>",
                         &rq, &a, &x),
                     SRV_ANSWER);
    assert_non_null(strstr(x, "<Status>3</Status>"));
    free(x);
    srv_answer_free(&a);

    /* not WBXML -> Provision Status 2 */
    static const uint8_t junk[] = "junk";
    memset(&rq, 0, sizeof(rq));
    rq.body = junk;
    rq.body_len = 4;
    rq.body_read = true;
    assert_int_equal(run(POL_ALLOW, EASQ_CMD_PROVISION, 141, NULL, &rq, &a, &x), SRV_ANSWER);
    assert_non_null(strstr(x, "<Status>2</Status>"));
    assert_non_null(strstr(a.log, "not WBXML"));
    free(x);
    srv_answer_free(&a);
}

static void test_key_check(void **state)
{
    uint32_t fp = pol->provisioning.fingerprint;
    struct srv_request rq = {0};
    struct srv_answer a;
    char *x;
    /* missing: 142 at 14.1, 449 at 12.1 */
    assert_int_equal(run(POL_ALLOW, EASQ_CMD_SYNC, 141, NULL, &rq, &a, &x), SRV_ANSWER);
    assert_non_null(strstr(x, "<Status>142</Status>"));
    free(x);
    srv_answer_free(&a);
    assert_int_equal(run(POL_ALLOW, EASQ_CMD_SYNC, 121, NULL, &rq, &a, &x), SRV_ANSWER);
    assert_int_equal(a.http_status, 449);
    assert_null(a.body);
    /* stale: 144; bad: 144 + warning; final: pass and strip */
    rq.has_policy_key = true;
    rq.policy_key = srv_policy_key("DEV1", fp, 0);
    assert_int_equal(run(POL_ALLOW, EASQ_CMD_FOLDERSYNC, 140, NULL, &rq, &a, &x), SRV_ANSWER);
    assert_non_null(strstr(x, "<Status>144</Status>"));
    free(x);
    srv_answer_free(&a);
    rq.has_policy_key = false;
    rq.policy_key_bad = true;
    assert_int_equal(run(POL_ALLOW, EASQ_CMD_PING, 141, NULL, &rq, &a, &x), SRV_ANSWER);
    assert_non_null(strstr(x, "<Status>144</Status>"));
    assert_true(a.log_warn);
    free(x);
    srv_answer_free(&a);
    rq.policy_key_bad = false;
    rq.has_policy_key = true;
    rq.policy_key = srv_policy_key("DEV1", fp, 1);
    assert_int_equal(run(POL_ALLOW, EASQ_CMD_SYNC, 141, NULL, &rq, &a, &x), SRV_PASS);
    assert_true(a.strip_policy_key);
    /* another device's key is not this one's */
    rq.device_id = "DEV2";
    assert_int_equal(run(POL_ALLOW, EASQ_CMD_SYNC, 141, NULL, &rq, &a, &x), SRV_ANSWER);
    free(x);
    srv_answer_free(&a);
    /* block is never the server role's */
    assert_int_equal(run(POL_BLOCK, EASQ_CMD_SYNC, 141, NULL, &rq, &a, &x), SRV_PASS);
    /* keys: never 0, phases differ, the policy changes them */
    assert_int_not_equal(srv_policy_key("DEV1", fp, 0), srv_policy_key("DEV1", fp, 1));
    assert_int_not_equal(srv_policy_key("DEV1", fp, 1), srv_policy_key("DEV1", fp + 1, 1));
}

/* The provisioning epoch (pk_epoch, bumped by the core's "reprovision"):
 * a new epoch makes the device's keys stale, the new ones pass, and the
 * acknowledgement reports the final key for the "provisioned" sighting. */
static void test_pk_epoch(void **state)
{
    uint32_t fp = pol->provisioning.fingerprint;
    assert_int_equal(srv_key_fingerprint(fp, 0), fp);
    assert_int_not_equal(srv_key_fingerprint(fp, 1), fp);
    assert_int_not_equal(srv_key_fingerprint(fp, 2), srv_key_fingerprint(fp, 1));
    uint32_t fp1 = srv_key_fingerprint(fp, 1);
    struct srv_request rq = {.pk_epoch = 1, .has_policy_key = true};
    struct srv_answer a;
    char *x;
    /* the key of epoch 0 is stale at epoch 1 */
    rq.policy_key = srv_policy_key("DEV1", fp, 1);
    assert_int_equal(run(POL_ALLOW, EASQ_CMD_SYNC, 161, NULL, &rq, &a, &x), SRV_ANSWER);
    assert_non_null(strstr(x, "<Status>144</Status>"));
    assert_string_equal(a.reason, "policy-key-stale");
    free(x);
    srv_answer_free(&a);
    rq.policy_key = srv_policy_key("DEV1", fp1, 1);
    assert_int_equal(run(POL_ALLOW, EASQ_CMD_SYNC, 161, NULL, &rq, &a, &x), SRV_PASS);
    /* download and acknowledgement at epoch 1 */
    memset(&rq, 0, sizeof(rq));
    rq.pk_epoch = 1;
    assert_int_equal(run(POL_ALLOW, EASQ_CMD_PROVISION, 161, DOWNLOAD, &rq, &a, &x), SRV_ANSWER);
    char want[64];
    snprintf(want, sizeof(want), "<PolicyKey>%u</PolicyKey>", srv_policy_key("DEV1", fp1, 0));
    assert_non_null(strstr(x, want));
    assert_int_equal(a.provisioned_key, 0); /* not final yet */
    free(x);
    srv_answer_free(&a);
    char ack[512];
    const char *fmt = "<Provision xmlns=\"Provision\"><Policies><Policy><PolicyType>MS-EAS-"
                      "Provisioning-WBXML</PolicyType><PolicyKey>%u</PolicyKey><Status>1</Status>"
                      "</Policy></Policies></Provision>";
    snprintf(ack, sizeof(ack), fmt, srv_policy_key("DEV1", fp1, 0));
    memset(&rq, 0, sizeof(rq));
    rq.pk_epoch = 1;
    assert_int_equal(run(POL_ALLOW, EASQ_CMD_PROVISION, 161, ack, &rq, &a, &x), SRV_ANSWER);
    assert_int_equal(a.provisioned_key, srv_policy_key("DEV1", fp1, 1));
    free(x);
    srv_answer_free(&a);
    /* acknowledging the temporary key of the old epoch: never issued now */
    snprintf(ack, sizeof(ack), fmt, srv_policy_key("DEV1", fp, 0));
    memset(&rq, 0, sizeof(rq));
    rq.pk_epoch = 1;
    assert_int_equal(run(POL_ALLOW, EASQ_CMD_PROVISION, 161, ack, &rq, &a, &x), SRV_ANSWER);
    assert_non_null(strstr(x, "<Status>5</Status>"));
    assert_int_equal(a.provisioned_key, 0);
    free(x);
    srv_answer_free(&a);
}

static void test_wipe(void **state)
{
    struct srv_request rq = {0};
    struct srv_answer a;
    char *x;
    assert_int_equal(run(POL_WIPE, EASQ_CMD_PROVISION, 121, DOWNLOAD, &rq, &a, &x), SRV_ANSWER);
    assert_non_null(strstr(x, "<RemoteWipe/>"));
    free(x);
    srv_answer_free(&a);
    rq.wipe_account_only = true;
    assert_int_equal(run(POL_WIPE, EASQ_CMD_PROVISION, 161, DOWNLOAD, &rq, &a, &x), SRV_ANSWER);
    assert_non_null(strstr(x, "<AccountOnlyRemoteWipe/>"));
    free(x);
    srv_answer_free(&a);
    /* below 16.1 only the full wipe exists: blocked (129 / 403), never wiped in full */
    assert_int_equal(run(POL_WIPE, EASQ_CMD_PROVISION, 141, DOWNLOAD, &rq, &a, &x), SRV_ANSWER);
    assert_null(strstr(x, "RemoteWipe"));
    assert_non_null(strstr(x, "<Status>129</Status>"));
    assert_string_equal(a.reason, "wipe-account-unsupported");
    assert_true(a.log_warn);
    free(x);
    srv_answer_free(&a);
    assert_int_equal(run(POL_WIPE, EASQ_CMD_SYNC, 141, NULL, &rq, &a, &x), SRV_ANSWER);
    assert_non_null(strstr(x, "<Status>129</Status>"));
    free(x);
    srv_answer_free(&a);
    assert_int_equal(run(POL_WIPE, EASQ_CMD_PROVISION, 121, DOWNLOAD, &rq, &a, &x), SRV_ANSWER);
    assert_int_equal(a.http_status, 403);
    free(x);
    srv_answer_free(&a);
    rq.wipe_account_only = false;
    /* other commands: the usual 140/449 answer (decide.c) */
    assert_int_equal(run(POL_WIPE, EASQ_CMD_SYNC, 141, NULL, &rq, &a, &x), SRV_PASS);
}

static void test_quarantine(void **state)
{
    struct srv_request rq = {.lang = "fr-FR", .now_ms = 1700000000000};
    struct srv_answer a;
    char *x;
    assert_int_equal(run(POL_QUARANTINE, EASQ_CMD_FOLDERSYNC, 141,
                         "<FolderSync xmlns=\"FolderHierarchy\"><SyncKey>0</SyncKey></FolderSync>",
                         &rq, &a, &x),
                     SRV_ANSWER);
    assert_non_null(strstr(x, "<ServerId>EGQ-inbox</ServerId>"));
    assert_non_null(strstr(x, "<SyncKey>EGQ-1</SyncKey>"));
    free(x);
    srv_answer_free(&a);
    /* Sync needs its body first */
    struct srv_request nb = {0};
    assert_int_equal(run(POL_QUARANTINE, EASQ_CMD_SYNC, 141, NULL, &nb, &a, &x), SRV_NEED_BODY);
    assert_int_equal(run(POL_QUARANTINE, EASQ_CMD_SYNC, 141,
                         "<Sync xmlns=\"AirSync\"><Collections><Collection><SyncKey>EGQ-1</"
                         "SyncKey><CollectionId>EGQ-inbox</CollectionId></Collection>"
                         "</Collections></Sync>",
                         &rq, &a, &x),
                     SRV_ANSWER);
    assert_non_null(strstr(x, "En attente"));
    assert_non_null(strstr(x, "2023-11-14T22:13:20.000Z"));
    assert_non_null(strstr(x, "<SyncKey>EGQ-2</SyncKey>"));
    free(x);
    srv_answer_free(&a);
    /* a sync key from Exchange: Status 3; an Exchange folder: Status 12 */
    assert_int_equal(run(POL_QUARANTINE, EASQ_CMD_SYNC, 141,
                         "<Sync xmlns=\"AirSync\"><Collections><Collection><SyncKey>{abc}7</"
                         "SyncKey><CollectionId>EGQ-inbox</CollectionId></Collection>"
                         "</Collections></Sync>",
                         &rq, &a, &x),
                     SRV_ANSWER);
    assert_non_null(strstr(x, "<Status>3</Status>"));
    free(x);
    srv_answer_free(&a);
    assert_int_equal(run(POL_QUARANTINE, EASQ_CMD_SYNC, 141,
                         "<Sync xmlns=\"AirSync\"><Collections><Collection><SyncKey>5</"
                         "SyncKey><CollectionId>7</CollectionId></Collection>"
                         "</Collections></Sync>",
                         &rq, &a, &x),
                     SRV_ANSWER);
    assert_non_null(strstr(x, "<Status>12</Status>"));
    free(x);
    srv_answer_free(&a);
    /* other commands: refused the usual way */
    assert_int_equal(run(POL_QUARANTINE, EASQ_CMD_ITEMOPERATIONS, 141, NULL, &rq, &a, &x),
                     SRV_PASS);
    /* released: a quarantine key gets FolderSync Status 9 (with the final key) */
    struct srv_request rel = {.has_policy_key = true};
    rel.policy_key = srv_policy_key("DEV1", pol->provisioning.fingerprint, 1);
    assert_int_equal(run(POL_ALLOW, EASQ_CMD_FOLDERSYNC, 141,
                         "<FolderSync xmlns=\"FolderHierarchy\"><SyncKey>EGQ-1</SyncKey>"
                         "</FolderSync>",
                         &rel, &a, &x),
                     SRV_ANSWER);
    assert_non_null(strstr(x, "<Status>9</Status>"));
    free(x);
    srv_answer_free(&a);
    assert_int_equal(run(POL_ALLOW, EASQ_CMD_FOLDERSYNC, 141,
                         "<FolderSync xmlns=\"FolderHierarchy\"><SyncKey>0</SyncKey></FolderSync>",
                         &rel, &a, &x),
                     SRV_PASS);
}

/* Passthrough mode: Exchange provisions, a quarantined phone too (so it gets
 * to the FolderSync and Sync that show the notice, which stay ours). */
static void test_quarantine_passthrough(void **state)
{
    (void)state;
    const char *y = "provisioning: { mode: passthrough }\n";
    char err[256];
    struct pol_policy *pp = NULL;
    assert_int_equal(pol_load_buf("policy.yaml", y, strlen(y), &pp, err, sizeof(err)), 0);
    struct pol_decision d = {POL_QUARANTINE, "state-quarantine", 0};
    struct srv_request rq = {.cmd = EASQ_CMD_PROVISION, .version = 141, .device_id = "DEV1"};
    struct srv_answer a;
    assert_int_equal(srv_decide(&pp->provisioning, &d, &rq, &a), SRV_FORWARD);
    assert_string_equal(a.decision, "quarantine");
    assert_string_equal(a.reason, "quarantine-provision");
    srv_answer_free(&a);
    rq.cmd = EASQ_CMD_FOLDERSYNC;
    assert_int_equal(srv_decide(&pp->provisioning, &d, &rq, &a), SRV_ANSWER);
    assert_string_equal(a.reason, "state-quarantine");
    srv_answer_free(&a);
    /* a rule's quarantine keeps its reason in the notice answer */
    struct pol_decision byrule = {POL_QUARANTINE, "rule:2", 2};
    assert_int_equal(srv_decide(&pp->provisioning, &byrule, &rq, &a), SRV_ANSWER);
    assert_string_equal(a.reason, "rule:2");
    srv_answer_free(&a);
    rq.cmd = EASQ_CMD_PING;
    assert_int_equal(srv_decide(&pp->provisioning, &d, &rq, &a), SRV_PASS);
    srv_answer_free(&a);
    pol_unref(pp);
}

static void test_body_keys(void **state)
{
    char sk[8], ci[8];
    size_t len;
    uint8_t *b = encode("<Sync xmlns=\"AirSync\"><Collections><Collection><SyncKey>"
                        "0123456789</SyncKey><CollectionId>1</CollectionId></Collection>"
                        "</Collections></Sync>",
                        &len);
    assert_int_equal(srv_body_keys(b, len, sk, sizeof(sk), ci, sizeof(ci)), 0);
    assert_string_equal(sk, "0123456"); /* cut to the buffer */
    assert_string_equal(ci, "1");
    assert_true(srv_body_keys(b, len / 2, sk, sizeof(sk), ci, sizeof(ci)) < 0);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_provision_phases), cmocka_unit_test(test_key_check),
        cmocka_unit_test(test_pk_epoch),         cmocka_unit_test(test_wipe),
        cmocka_unit_test(test_quarantine),       cmocka_unit_test(test_quarantine_passthrough),
        cmocka_unit_test(test_body_keys),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
