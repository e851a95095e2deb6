/*
 * fuzz_conf: easgate.yaml and policy.yaml loaders from memory. The first
 * byte picks the loader; the rest is the file. A file that loads is also
 * printed (the `easgate check` path) and, for a policy, decided on a few
 * requests, so the printers and the decision see whatever the loaders let
 * through. Any crash, leak or sanitizer report is a bug: an admin's typo
 * must give an error, never take the proxy down.
 *
 *   make fuzz && build-fuzz/tests/fuzz_conf -max_len=4096 conf/
 */
#include "common/conf.h"
#include "policy/pol.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static FILE *sink;

static void decide_some(const struct pol_policy *p)
{
    static const struct pol_request reqs[] = {
        {.user = "alice",
         .device_id = "ABC",
         .device_type = "iPhone",
         .user_agent = "Apple-iPhone9C1/1402.100",
         .command = 1,
         .proto_version = 161},
        {.user = "EXAMPLE\\bob",
         .device_id = "BADDEVICE0001",
         .device_type = "WindowsMail",
         .device_os = "Android 9.0",
         .user_agent = "Outlook-Evil/1"},
        {0},
    };
    static const struct pol_devstate states[] = {
        {.state = POL_DEV_UNKNOWN},
        {.state = POL_DEV_ALLOW, .user = "alice@example.com"},
        {.state = POL_DEV_WIPE, .user = "bob", .stale = true},
    };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++)
        for (size_t j = 0; j < sizeof(states) / sizeof(states[0]); j++) {
            struct pol_decision d;
            if (pol_decide(p, &reqs[i], &states[j], 0, &d) == 0 && !d.reason)
                __builtin_trap();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024];
    if (size < 1)
        return 0;
    if (!sink)
        sink = fopen("/dev/null", "w");
    bool policy = data[0] & 1;
    const char *text = (const char *)data + 1;
    size--;
    err[0] = '\0';
    if (policy) {
        struct pol_policy *p;
        if (pol_load_buf("fuzz.yaml", text, size, &p, err, sizeof(err)) == 0) {
            pol_print(sink, p);
            decide_some(p);
            pol_unref(p);
        } else if (!err[0]) {
            __builtin_trap(); /* every failure must say why */
        }
    } else {
        struct conf *c;
        if (conf_load_buf("fuzz.yaml", "/etc/easgate", text, size, &c, err, sizeof(err)) == 0) {
            conf_print(sink, c);
            conf_free(c);
        } else if (!err[0]) {
            __builtin_trap();
        }
    }
    return 0;
}
