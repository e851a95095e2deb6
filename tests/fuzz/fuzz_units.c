/*
 * fuzz_units: libFuzzer target for every value syntax an admin or a client
 * gives as a duration, size, deadline or address (common/units.h: the
 * core:, enroll: and proxy: keys, an invitation's "expires"). Whatever the
 * bytes, no parser reads past them or overflows (ASan, UBSan), and the
 * answers agree: a duration or size parsed is printed back and reads as the
 * same value, and a deadline is the exact sum of now and the duration.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/units.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1); /* exact size: ASan sees a read past the NUL */
    if (!s)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    int64_t v = 0, again = 0;
    char buf[64];
    if (units_parse_duration(s, &v, NULL) == 0) {
        units_fmt_duration(v, buf, sizeof(buf));
        if (units_parse_duration(buf, &again, NULL) != 0 || again != v)
            abort();
        static const int64_t nows[] = {0, 1765000000000LL, INT64_MAX};
        for (size_t i = 0; i < sizeof(nows) / sizeof(nows[0]); i++) {
            int64_t at = 0;
            const char *why = NULL;
            int rc = units_deadline(nows[i], s, INT64_MAX, &at, &why);
            if (rc == 0 && (v <= 0 || at - v != nows[i]))
                abort();
            if (rc < 0 && (!why || (v > 0 && nows[i] <= INT64_MAX - v)))
                abort();
        }
    }
    if (units_parse_size(s, &v, NULL) == 0) {
        units_fmt_size(v, buf, sizeof(buf));
        if (units_parse_size(buf, &again, NULL) != 0 || again != v)
            abort();
    }
    struct units_addr a, b;
    if (units_parse_addr(s, &a, NULL) == 0 &&
        (units_parse_addr(a.text, &b, NULL) != 0 || strcmp(a.text, b.text) != 0))
        abort();
    char host[256];
    int port = 0;
    if (units_parse_hostport(s, host, sizeof(host), &port, NULL) == 0 && (port < 1 || port > 65535))
        abort();
    free(s);
    return 0;
}
