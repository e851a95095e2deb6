/* test_core_sight: DeviceInformation OS strings split into family and version. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/sight.h"

static void test_split_os(void **state)
{
    static const struct {
        const char *in, *family, *version;
    } rows[] = {
        {"iOS 16.1.1 20B101", "iOS", "16.1.1"},
        {"Android 13", "Android", "13"},
        {"  Android   12.0  ", "Android", "12.0"},
        {"iOS", "iOS", ""},
        {"Windows Phone 8.1", "Windows", ""},
        {"iOS 16.1beta", "iOS", ""},
        {"", "", ""},
        {"iOS 123456789012345678901234567890123456789012345678901234567890123456789", "iOS", ""},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char fam[64], ver[64];
        core_sight_split_os(rows[i].in, fam, sizeof(fam), ver, sizeof(ver));
        if (strcmp(fam, rows[i].family) != 0 || strcmp(ver, rows[i].version) != 0)
            fail_msg("'%s': got '%s' '%s', want '%s' '%s'", rows[i].in, fam, ver, rows[i].family,
                     rows[i].version);
    }
    char fam[4], ver[4];
    core_sight_split_os(NULL, fam, sizeof(fam), ver, sizeof(ver));
    assert_string_equal(fam, "");
    core_sight_split_os("Android 12.1", fam, sizeof(fam), ver, sizeof(ver)); /* small buffers */
    assert_string_equal(fam, "And");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_os),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
