/* test_prov: the `provisioning:` section loader (values, defaults, notices,
 * FILE:LINE:COL errors) through pol_load_buf, and the notice language choice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/pol.h"
#include "policy/prov.h"

static struct pol_policy *load(const char *text, char *err, size_t errlen)
{
    struct pol_policy *p = NULL;
    err[0] = '\0';
    int rc = pol_load_buf("policy.yaml", text, strlen(text), &p, err, errlen);
    if (rc < 0)
        return NULL;
    return p;
}

static void test_absent(void **state)
{
    char err[256];
    struct pol_policy *p = load("unknown_devices: allow\n", err, sizeof(err));
    assert_non_null(p);
    assert_false(p->provisioning.present);
    assert_int_equal(p->provisioning.mode, PROV_PASSTHROUGH);
    assert_int_equal(p->provisioning.eas.allow_camera, PROV_UNSET);
    assert_int_equal(p->provisioning.n_notices, 1);
    assert_string_equal(prov_notice_for(&p->provisioning, "de")->lang, "en");
    pol_unref(p);
    /* An empty eas_policy (as pol_print writes it) loads back. */
    p = load("provisioning:\n  mode: proxy\n  eas_policy:\n", err, sizeof(err));
    if (!p)
        fail_msg("%s", err);
    assert_true(p->provisioning.present);
    pol_unref(p);
}

static void test_full(void **state)
{
    char err[256];
    struct pol_policy *p =
        load("provisioning:\n"
             "  mode: proxy\n"
             "  eas_policy:\n"
             "    device_password_enabled: true\n"
             "    min_device_password_length: 6\n"
             "    alphanumeric_device_password_required: no\n"
             "    max_inactivity_time_device_lock: 300\n"
             "    max_device_password_failed_attempts: 10\n"
             "    require_device_encryption: true\n"
             "    allow_simple_device_password: false\n"
             "    device_password_expiration: 90\n"
             "    attachments_enabled: true\n"
             "    max_attachment_size: 10485760\n"
             "    allow_camera: false\n"
             "    allow_bluetooth: handsfree\n"
             "    max_calendar_age_filter: 2w\n"
             "    max_email_age_filter: 1m\n"
             "    require_encryption_smime_algorithm: rc2-40\n"
             "    min_device_password_complex_characters: ~\n"
             "    approved_app_hashes: [0123456789abcdef0123456789abcdef01234567]\n"
             "    unapproved_in_rom_apps: [\"Internet Explorer\"]\n"
             "  quarantine_notice:\n"
             "    de: { subject: \"Warten\", body: \"Bitte IT anrufen\" }\n"
             "    en: { subject: \"Waiting\", body: \"Call IT\" }\n",
             err, sizeof(err));
    assert_non_null(p);
    if (!p)
        fail_msg("%s", err);
    const struct prov_conf *c = &p->provisioning;
    assert_true(c->present);
    assert_int_equal(c->mode, PROV_PROXY);
    assert_int_equal(c->eas.device_password_enabled, 1);
    assert_int_equal(c->eas.min_device_password_length, 6);
    assert_int_equal(c->eas.alphanumeric_device_password_required, 0);
    assert_int_equal(c->eas.max_inactivity_time_device_lock, 300);
    assert_int_equal(c->eas.max_device_password_failed_attempts, 10);
    assert_int_equal(c->eas.require_device_encryption, 1);
    assert_int_equal(c->eas.device_password_expiration, 90);
    assert_int_equal(c->eas.max_attachment_size, 10485760);
    assert_int_equal(c->eas.allow_camera, 0);
    assert_int_equal(c->eas.allow_bluetooth, 1);
    assert_int_equal(c->eas.max_calendar_age_filter, 4);
    assert_int_equal(c->eas.max_email_age_filter, 5);
    assert_int_equal(c->eas.require_encryption_smime_algorithm, 4);
    assert_int_equal(c->eas.min_device_password_complex_characters, PROV_UNSET);
    assert_int_equal(c->eas.allow_wifi, PROV_UNSET);
    assert_int_equal(c->eas.approved_app_hashes.n, 1);
    assert_string_equal(c->eas.unapproved_in_rom_apps.v[0], "Internet Explorer");
    assert_int_equal(c->n_notices, 2);
    /* Language choice: exact, primary subtag, Accept-Language, fallback en. */
    assert_string_equal(prov_notice_for(c, "de")->subject, "Warten");
    assert_string_equal(prov_notice_for(c, "de-CH")->subject, "Warten");
    assert_string_equal(prov_notice_for(c, "de-DE,de;q=0.9,en;q=0.8")->subject, "Warten");
    assert_string_equal(prov_notice_for(c, "fr")->subject, "Waiting");
    assert_string_equal(prov_notice_for(c, NULL)->subject, "Waiting");
    assert_string_equal(prov_notice_for(c, "")->subject, "Waiting");
    assert_string_equal(prov_lcid_lang(0x0407), "de");
    assert_string_equal(prov_lcid_lang(0x0809), "en");
    assert_null(prov_lcid_lang(0x7f));

    /* The fingerprint follows the settings. */
    uint32_t fp = c->fingerprint;
    struct pol_policy *q = load("provisioning:\n  mode: proxy\n  eas_policy:\n"
                                "    device_password_enabled: true\n",
                                err, sizeof(err));
    assert_non_null(q);
    assert_int_not_equal(fp, q->provisioning.fingerprint);

    /* The printed form loads back with the same fingerprint. */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    pol_print(f, p);
    fclose(f);
    struct pol_policy *r = load(buf, err, sizeof(err));
    if (!r)
        fail_msg("reload: %s\n%s", err, buf);
    assert_int_equal(r->provisioning.fingerprint, fp);
    assert_int_equal(r->provisioning.n_notices, 2);
    free(buf);
    pol_unref(r);
    pol_unref(q);
    pol_unref(p);
}

static void expect_err(const char *text, const char *want)
{
    char err[256];
    struct pol_policy *p = load(text, err, sizeof(err));
    if (p) {
        pol_unref(p);
        fail_msg("loaded, expected error '%s' for:\n%s", want, text);
    }
    if (!strstr(err, want))
        fail_msg("error '%s' does not contain '%s'", err, want);
}

static void test_errors(void **state)
{
    expect_err("provisioning: []\n", "policy.yaml:1:15: expected a map (mode, eas_policy)");
    expect_err("provisioning:\n  mode: both\n",
               "policy.yaml:2:9: mode: 'both' is not one of: passthrough, proxy");
    expect_err("provisioning:\n  mdoe: proxy\n", "policy.yaml:2:3: provisioning: unknown key "
                                                 "'mdoe' (did you mean 'mode'?)");
    expect_err("provisioning:\n  eas_policy:\n    allow_camra: true\n",
               "policy.yaml:3:5: eas_policy: unknown setting 'allow_camra' (did you mean "
               "'allow_camera'?)");
    expect_err("provisioning:\n  eas_policy:\n    min_device_password_length: 40\n",
               "policy.yaml:3:33: min_device_password_length: 40 is out of range (1 to 16");
    expect_err("provisioning:\n  eas_policy:\n    max_device_password_failed_attempts: 2\n",
               "out of range (4 to 16, MS-ASPROV MaxDevicePasswordFailedAttempts)");
    expect_err("provisioning:\n  eas_policy:\n    max_attachment_size: 10MB\n",
               "policy.yaml:3:26: max_attachment_size: '10MB' is not a whole number");
    expect_err("provisioning:\n  eas_policy:\n    allow_camera: maybe\n",
               "policy.yaml:3:19: expected true or false, got 'maybe'");
    expect_err("provisioning:\n  eas_policy:\n    allow_bluetooth: sometimes\n",
               "allow_bluetooth: 'sometimes' is not one of: off, handsfree, on");
    expect_err("provisioning:\n  eas_policy:\n    max_calendar_age_filter: 1d\n",
               "not one of: all, 2w, 1m, 3m, 6m");
    expect_err("provisioning:\n  eas_policy:\n    approved_app_hashes: [abc]\n",
               "policy.yaml:3:27: approved_app_hashes: 'abc' is not a SHA-1 hash");
    expect_err("provisioning:\n  quarantine_notice:\n    en: { subject: x }\n",
               "policy.yaml:3:9: quarantine_notice.en: needs both subject and body");
    expect_err("provisioning:\n  quarantine_notice:\n    \"e n\": { subject: x, body: y }\n",
               "policy.yaml:3:5: quarantine_notice: 'e n' is not a language tag");
    expect_err("provisioning:\n  quarantine_notice:\n    en: { subject: x, body: y, "
               "footer: z }\n",
               "quarantine_notice.en: unknown key 'footer'");
    expect_err("provisioning:\n  quarantine_notice: {}\n", "give at least one language");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_absent),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
