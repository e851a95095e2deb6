/*
 * test_enr_msg: the enrollment portal's catalogues (enroll/msg.h): every
 * string exists in every language and keeps the placeholders English has,
 * and the language is picked from the switch, then Accept-Language by q.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "enroll/msg.h"

static const char *const names[] = {
#define NAME(n) #n,
    ENR_MSG_LIST(NAME)
#undef NAME
};

static void test_complete(void **state)
{
    (void)state;
    const char *const *cats[] = {enr_msg_en, enr_msg_ja};
    for (size_t l = 0; l < sizeof(cats) / sizeof(cats[0]); l++) {
        for (int i = 0; i < ENR_MSG_COUNT; i++) {
            if (!cats[l][i] || !cats[l][i][0])
                fail_msg("language %zu lacks %s", l, names[i]);
            for (char ph = '1'; ph <= '3'; ph++) {
                char p[4] = {'{', ph, '}', 0};
                if (!strstr(enr_msg_en[i], p) != !strstr(cats[l][i], p))
                    fail_msg("language %zu, %s: placeholder %s differs from English", l, names[i],
                             p);
            }
        }
    }
    assert_string_equal(enr_msg(ENR_LANG_JA, ENR_MSG_HTML_LANG), "ja");
    assert_string_equal(enr_msg(ENR_LANG_EN, ENR_MSG_HTML_LANG), "en");
}

static void test_lang(void **state)
{
    (void)state;
    assert_int_equal(enr_msg_lang(NULL, NULL), ENR_LANG_EN);
    assert_int_equal(enr_msg_lang("", "ja"), ENR_LANG_JA);
    assert_int_equal(enr_msg_lang(NULL, "ja-JP,ja;q=0.9,en;q=0.8"), ENR_LANG_JA);
    assert_int_equal(enr_msg_lang(NULL, "fr-FR, en;q=0.5, ja;q=0.7"), ENR_LANG_JA);
    assert_int_equal(enr_msg_lang(NULL, "en-GB, ja"), ENR_LANG_EN);        /* equal q: first */
    assert_int_equal(enr_msg_lang(NULL, "ja;q=0, en;q=0.1"), ENR_LANG_EN); /* q=0: not wanted */
    assert_int_equal(enr_msg_lang(NULL, "de, fr"), ENR_LANG_EN);
    assert_int_equal(enr_msg_lang(NULL, "jav, japanese"), ENR_LANG_EN); /* not "ja" */
    assert_int_equal(enr_msg_lang("en", "ja"), ENR_LANG_EN);            /* the switch wins */
    assert_int_equal(enr_msg_lang("ja", "en"), ENR_LANG_JA);
    assert_int_equal(enr_msg_lang("<script>", "ja"), ENR_LANG_JA); /* an unknown choice: ignored */
    assert_int_equal(enr_msg_lang(NULL, ",,;q=,ja;q=abc"), ENR_LANG_EN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_complete),
        cmocka_unit_test(test_lang),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
