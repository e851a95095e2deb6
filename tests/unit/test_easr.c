/* test_easr: every command's Status answer decodes to its own root and
 * Status; the version table; Provision answers (policy document, ack, wipe);
 * OPTIONS headers; status names. Answers are checked by decoding them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "eas/easr.h"

static void test_status_bodies(void **state)
{
    static const struct {
        enum easq_cmd cmd;
        const char *xml; /* what the answer must print as */
    } cases[] = {
        {EASQ_CMD_SYNC, "<Sync xmlns=\"AirSync\">\n  <Status>129</Status>\n</Sync>"},
        {EASQ_CMD_FOLDERSYNC,
         "<FolderSync xmlns=\"FolderHierarchy\">\n  <Status>129</Status>\n</FolderSync>"},
        {EASQ_CMD_FOLDERCREATE, "<FolderCreate xmlns=\"FolderHierarchy\">"},
        {EASQ_CMD_FOLDERDELETE, "<FolderDelete xmlns=\"FolderHierarchy\">"},
        {EASQ_CMD_FOLDERUPDATE, "<FolderUpdate xmlns=\"FolderHierarchy\">"},
        {EASQ_CMD_PING, "<Ping xmlns=\"Ping\">\n  <Status>129</Status>"},
        {EASQ_CMD_SENDMAIL, "<SendMail xmlns=\"ComposeMail\">"},
        {EASQ_CMD_SMARTREPLY, "<SmartReply xmlns=\"ComposeMail\">"},
        {EASQ_CMD_SMARTFORWARD, "<SmartForward xmlns=\"ComposeMail\">"},
        {EASQ_CMD_PROVISION, "<Provision xmlns=\"Provision\">"},
        {EASQ_CMD_SETTINGS, "<Settings xmlns=\"Settings\">"},
        {EASQ_CMD_ITEMOPERATIONS, "<ItemOperations xmlns=\"ItemOperations\">"},
        {EASQ_CMD_MOVEITEMS, "<MoveItems xmlns=\"Move\">"},
        {EASQ_CMD_GETITEMESTIMATE, "<GetItemEstimate xmlns=\"GetItemEstimate\">"},
        {EASQ_CMD_MEETINGRESPONSE, "<MeetingResponse xmlns=\"MeetingResponse\">"},
        {EASQ_CMD_RESOLVERECIPIENTS, "<ResolveRecipients xmlns=\"ResolveRecipients\">"},
        {EASQ_CMD_VALIDATECERT, "<ValidateCert xmlns=\"ValidateCert\">"},
        {EASQ_CMD_SEARCH, "<Search xmlns=\"Search\">"},
        {EASQ_CMD_FIND, "<Find xmlns=\"Find\">"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct wbxml_w w;
        const uint8_t *out;
        size_t len;
        uint16_t root, st;
        struct wbxml_facts f;
        char *xml;
        uint8_t buf[64];
        wbxml_w_init(&w, buf, sizeof(buf)); /* a status answer fits 64 bytes */
        assert_int_equal(easr_status_body(&w, cases[i].cmd, 129), 0);
        assert_int_equal(wbxml_w_finish(&w, &out, &len), 0);
        assert_int_equal(wbxml_extract(out, len, &f, NULL), 0);
        assert_int_equal(easr_command_tags(cases[i].cmd, &root, &st), 0);
        assert_int_equal(f.root, root);
        assert_int_equal(WBXML_TAG_PAGE(st), WBXML_TAG_PAGE(root));
        assert_int_equal(f.status, 129);
        assert_int_equal(wbxml_to_xml(out, len, &xml, NULL, NULL), 0);
        if (!strstr(xml, cases[i].xml))
            fail_msg("%s: got %s", easq_cmd_name(cases[i].cmd), xml);
        free(xml);
    }
    struct wbxml_w w;
    uint8_t buf[64];
    wbxml_w_init(&w, buf, sizeof(buf));
    assert_int_equal(easr_status_body(&w, EASQ_CMD_GETATTACHMENT, 129), EASR_E_NOBODY);
    assert_int_equal(easr_status_body(&w, EASQ_CMD_OPTIONS, 129), EASR_E_NOBODY);
    assert_int_equal(easr_status_body(&w, EASQ_CMD_UNKNOWN, 129), EASR_E_NOBODY);
    assert_int_equal(easr_command_tags((enum easq_cmd)99, NULL, NULL), EASR_E_NOBODY);
}

static void test_plan(void **state)
{
    struct easr_plan p;
    /* 14.0 and later: HTTP 200 + WBXML status. */
    assert_int_equal(easr_plan(141, EASQ_CMD_SYNC, EASR_SIT_BLOCKED, &p), 0);
    assert_int_equal(p.http_status, 200);
    assert_true(p.wbxml);
    assert_int_equal(p.eas_status, 129);
    assert_int_equal(easr_plan(140, EASQ_CMD_PING, EASR_SIT_NOT_PROVISIONED, &p), 0);
    assert_true(p.wbxml);
    assert_int_equal(p.eas_status, 142);
    assert_int_equal(easr_plan(161, EASQ_CMD_FOLDERSYNC, EASR_SIT_REMOTE_WIPE, &p), 0);
    assert_int_equal(p.eas_status, 140);
    assert_int_equal(easr_plan(160, EASQ_CMD_SYNC, EASR_SIT_POLICY_REFRESH, &p), 0);
    assert_int_equal(p.eas_status, 143);
    assert_int_equal(easr_plan(160, EASQ_CMD_SYNC, EASR_SIT_INVALID_POLICY_KEY, &p), 0);
    assert_int_equal(p.eas_status, 144);
    assert_int_equal(easr_plan(141, EASQ_CMD_SYNC, EASR_SIT_RETRY_LATER, &p), 0);
    assert_int_equal(p.eas_status, 111);
    assert_int_equal(easr_plan(141, EASQ_CMD_SYNC, EASR_SIT_BAD_DEVICE_ID, &p), 0);
    assert_int_equal(p.eas_status, 108);
    assert_int_equal(easr_plan(141, EASQ_CMD_FOLDERSYNC, EASR_SIT_INVALID_WBXML, &p), 0);
    assert_true(p.wbxml);
    assert_int_equal(p.eas_status, 102);
    assert_int_equal(easr_plan(121, EASQ_CMD_FOLDERSYNC, EASR_SIT_INVALID_WBXML, &p), 0);
    assert_false(p.wbxml);
    assert_int_equal(p.http_status, 400);
    assert_int_equal(easr_plan(121, EASQ_CMD_PROVISION, EASR_SIT_INVALID_WBXML, &p), 0);
    assert_true(p.wbxml);
    assert_int_equal(p.eas_status, 2);
    assert_int_equal(easr_plan(161, EASQ_CMD_SETTINGS, EASR_SIT_INVALID_WBXML, &p), 0);
    assert_int_equal(p.eas_status, 2);
    /* 12.1 and earlier, and unknown: the legacy HTTP status. */
    assert_int_equal(easr_plan(121, EASQ_CMD_SYNC, EASR_SIT_BLOCKED, &p), 0);
    assert_int_equal(p.http_status, 403);
    assert_false(p.wbxml);
    assert_int_equal(easr_plan(121, EASQ_CMD_SYNC, EASR_SIT_NOT_PROVISIONED, &p), 0);
    assert_int_equal(p.http_status, 449);
    assert_int_equal(easr_plan(120, EASQ_CMD_PING, EASR_SIT_REMOTE_WIPE, &p), 0);
    assert_int_equal(p.http_status, 449);
    assert_int_equal(easr_plan(25, EASQ_CMD_SYNC, EASR_SIT_POLICY_REFRESH, &p), 0);
    assert_int_equal(p.http_status, 449);
    assert_int_equal(easr_plan(0, EASQ_CMD_SYNC, EASR_SIT_BLOCKED, &p), 0);
    assert_int_equal(p.http_status, 403);
    assert_int_equal(easr_plan(121, EASQ_CMD_SYNC, EASR_SIT_RETRY_LATER, &p), 0);
    assert_int_equal(p.http_status, 503);
    /* No WBXML body possible: HTTP status even at 16.1. */
    assert_int_equal(easr_plan(161, EASQ_CMD_GETATTACHMENT, EASR_SIT_BLOCKED, &p), 0);
    assert_int_equal(p.http_status, 403);
    assert_false(p.wbxml);
    assert_int_equal(easr_plan(161, EASQ_CMD_SYNC, (enum easr_situation)42, &p), EASR_E_ARG);
    assert_true(easr_version_uses_status(140));
    assert_false(easr_version_uses_status(121));
}

static void test_provision_policy(void **state)
{
    struct easr_provision_policy pol;
    static const char *const apps[] = {"Games", "Solitaire"};
    static const char *const hashes[] = {"1C8B1EF5D3A2B4C6E8F00112233445566778899A"};
    struct easr_provision_answer a = {
        .status = 1,
        .devinfo_status = 1,
        .policy_status = 1,
        .policy_key = 1307199584u,
        .has_policy_key = true,
        .policy = &pol,
    };
    struct wbxml_w w;
    const uint8_t *out;
    size_t len;
    struct wbxml_facts f;
    char *xml;

    easr_policy_init(&pol);
    assert_int_equal(pol.allow_camera, EASR_UNSET);
    assert_int_equal(pol.allow_internet_sharing, EASR_UNSET);
    pol.device_password_enabled = 1;
    pol.min_device_password_length = 6;
    pol.max_inactivity_time_device_lock = 300;
    pol.allow_bluetooth = 2;
    pol.require_device_encryption = 1;
    pol.allow_internet_sharing = 0;
    pol.unapproved_in_rom_apps = apps;
    pol.n_unapproved_in_rom_apps = 2;
    pol.approved_app_hashes = hashes;
    pol.n_approved_app_hashes = 1;

    wbxml_w_init(&w, NULL, 0);
    assert_int_equal(easr_provision(&w, &a), 0);
    assert_int_equal(wbxml_w_finish(&w, &out, &len), 0);
    assert_int_equal(wbxml_extract(out, len, &f, NULL), 0);
    assert_int_equal(f.root, WBXML_PROV_PROVISION);
    assert_int_equal(f.status, 1);
    assert_int_equal(f.policy_status, 1);
    assert_string_equal(f.policy_key, "1307199584");
    assert_string_equal(f.policy_type, "MS-EAS-Provisioning-WBXML");
    assert_int_equal(wbxml_to_xml(out, len, &xml, NULL, NULL), 0);
    const char *want = "<Provision xmlns=\"Provision\" xmlns:settings=\"Settings\">\n"
                       "  <settings:DeviceInformation>\n"
                       "    <settings:Status>1</settings:Status>\n"
                       "  </settings:DeviceInformation>\n"
                       "  <Status>1</Status>\n"
                       "  <Policies>\n"
                       "    <Policy>\n"
                       "      <PolicyType>MS-EAS-Provisioning-WBXML</PolicyType>\n"
                       "      <Status>1</Status>\n"
                       "      <PolicyKey>1307199584</PolicyKey>\n"
                       "      <Data>\n"
                       "        <EASProvisionDoc>\n"
                       "          <DevicePasswordEnabled>1</DevicePasswordEnabled>\n"
                       "          <MinDevicePasswordLength>6</MinDevicePasswordLength>\n"
                       "          <MaxInactivityTimeDeviceLock>300</MaxInactivityTimeDeviceLock>\n"
                       "          <RequireDeviceEncryption>1</RequireDeviceEncryption>\n"
                       "          <AllowBluetooth>2</AllowBluetooth>\n"
                       "          <AllowInternetSharing>0</AllowInternetSharing>\n"
                       "          <UnapprovedInROMApplicationList>\n"
                       "            <ApplicationName>Games</ApplicationName>\n"
                       "            <ApplicationName>Solitaire</ApplicationName>\n"
                       "          </UnapprovedInROMApplicationList>\n"
                       "          <ApprovedApplicationList>\n"
                       "            <Hash>1C8B1EF5D3A2B4C6E8F00112233445566778899A</Hash>\n"
                       "          </ApprovedApplicationList>\n"
                       "        </EASProvisionDoc>\n"
                       "      </Data>\n"
                       "    </Policy>\n"
                       "  </Policies>\n"
                       "</Provision>\n";
    if (!strstr(xml, want))
        fail_msg("got:\n%s", xml);
    free(xml);
    wbxml_w_free(&w);

    /* The acknowledgement answer: no Data, no DeviceInformation. */
    a.policy = NULL;
    a.devinfo_status = EASR_UNSET;
    a.policy_key = 3942919513u;
    wbxml_w_init(&w, NULL, 0);
    assert_int_equal(easr_provision(&w, &a), 0);
    assert_int_equal(wbxml_w_finish(&w, &out, &len), 0);
    assert_int_equal(wbxml_to_xml(out, len, &xml, NULL, NULL), 0);
    assert_null(strstr(xml, "Data"));
    assert_null(strstr(xml, "DeviceInformation"));
    assert_non_null(strstr(xml, "<PolicyKey>3942919513</PolicyKey>"));
    free(xml);
    wbxml_w_free(&w);

    /* A negative setting other than EASR_UNSET is refused. */
    easr_policy_init(&pol);
    pol.allow_camera = -5;
    a.policy = &pol;
    wbxml_w_init(&w, NULL, 0);
    assert_int_equal(easr_provision(&w, &a), EASR_E_ARG);
    wbxml_w_free(&w);
}

static void test_provision_wipe(void **state)
{
    struct wbxml_w w;
    const uint8_t *out;
    size_t len;
    struct wbxml_facts f;
    uint8_t buf[32];

    wbxml_w_init(&w, buf, sizeof(buf));
    assert_int_equal(easr_provision_wipe(&w, 141, false), 0);
    assert_int_equal(wbxml_w_finish(&w, &out, &len), 0);
    /* 00 0E: Provision page; 45 Provision; 4B 03 "1" 00 01 Status; 0C RemoteWipe/; 01 */
    const uint8_t want[] = {0x03, 0x01, 0x6A, 0x00, 0x00, 0x0E, 0x45,
                            0x4B, 0x03, '1',  0x00, 0x01, 0x0C, 0x01};
    assert_int_equal(len, sizeof(want));
    assert_memory_equal(out, want, len);
    assert_int_equal(wbxml_extract(out, len, &f, NULL), 0);
    assert_true(f.remote_wipe);
    assert_false(f.account_only_remote_wipe);
    assert_int_equal(f.status, 1);

    wbxml_w_init(&w, buf, sizeof(buf));
    assert_int_equal(easr_provision_wipe(&w, 161, true), 0);
    assert_int_equal(wbxml_w_finish(&w, &out, &len), 0);
    assert_int_equal(wbxml_extract(out, len, &f, NULL), 0);
    assert_true(f.account_only_remote_wipe);
    assert_false(f.remote_wipe);

    wbxml_w_init(&w, buf, sizeof(buf));
    assert_int_equal(easr_provision_wipe(&w, 160, true), EASR_E_VERSION);
}

static void test_options_and_names(void **state)
{
    size_t n;
    const struct easr_header *h = easr_options_headers(&n);
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(h[i].name, "MS-ASProtocolVersions") == 0) {
            assert_string_equal(h[i].value, "2.5,12.0,12.1,14.0,14.1,16.0,16.1");
            seen |= 1;
        }
        if (strcmp(h[i].name, "MS-ASProtocolCommands") == 0) {
            /* Every command the proxy knows by name is advertised. */
            for (int c = 0; c < EASQ_CMD_COUNT; c++) {
                if (c == EASQ_CMD_OPTIONS || c == EASQ_CMD_UNKNOWN ||
                    easq_cmd_from_code(c) == EASQ_CMD_UNKNOWN)
                    if (c != EASQ_CMD_FIND)
                        continue;
                assert_non_null(strstr(h[i].value, easq_cmd_name((enum easq_cmd)c)));
            }
            seen |= 2;
        }
    }
    assert_int_equal(seen, 3);
    assert_string_equal(easr_status_name(129), "DeviceIsBlockedForThisUser");
    assert_string_equal(easr_status_name(108), "DeviceIdMissingOrInvalid");
    assert_string_equal(easr_status_name(140), "RemoteWipeRequested");
    assert_string_equal(easr_status_name(177), "MaximumDevicesReached");
    assert_null(easr_status_name(157));
    assert_null(easr_status_name(100));
    assert_null(easr_status_name(178));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_bodies),     cmocka_unit_test(test_plan),
        cmocka_unit_test(test_provision_policy),  cmocka_unit_test(test_provision_wipe),
        cmocka_unit_test(test_options_and_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
