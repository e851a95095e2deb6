/*
 * fuzz_easq: libFuzzer target for request identity (eas/easq.h).
 *
 * Input: a request target on the first line, then "Name: value" header
 * lines. Everything must either parse or fail with an error code; what
 * parses must survive an encode/parse round trip unchanged. A mismatch
 * aborts, which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eas/easq.h"

static void roundtrip(const struct easq_ident *id)
{
    char out[4096];
    struct easq_ident back;
    char key[EASQ_DEVICEID_MAX + 1];

    if (easq_deviceid_norm(id->device_id, strlen(id->device_id), key, sizeof(key)) < 0)
        abort();
    int n = easq_encode_b64(id, out, sizeof(out));
    if (n > 0) {
        easq_init(&back);
        if (easq_parse_query(&back, out, (size_t)n) != 0 || easq_finish(&back) != 0)
            abort();
        if (back.cmd != id->cmd || strcmp(back.device_id, id->device_id) != 0 ||
            strcmp(back.device_type, id->device_type) != 0 ||
            strcmp(back.item_id, id->item_id) != 0 || strcmp(back.query_user, id->query_user) != 0)
            abort();
    }
    n = easq_encode_plain(id, out, sizeof(out));
    if (n > 0) {
        easq_init(&back);
        if (easq_parse_query(&back, out, (size_t)n) != 0 || easq_finish(&back) != 0)
            abort();
        if (back.cmd != id->cmd || strcmp(back.device_id, id->device_id) != 0 ||
            strcmp(back.attachment_name, id->attachment_name) != 0)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    const char *nl = memchr(p, '\n', size);
    size_t tlen = nl ? (size_t)(nl - p) : size;
    struct easq_ident id;

    easq_init(&id);
    int rc = easq_parse_target(&id, p, tlen);
    if (rc > 0)
        abort();
    p = nl ? nl + 1 : end;
    while (p < end) {
        nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *colon = memchr(p, ':', (size_t)(le - p));
        if (colon) {
            const char *v = colon + 1;
            if (easq_parse_header(&id, p, (size_t)(colon - p), v, (size_t)(le - v)) > 0)
                abort();
        }
        p = nl ? nl + 1 : end;
    }
    if (easq_finish(&id) == 0 && rc == 0 && id.cmd != EASQ_CMD_OPTIONS)
        roundtrip(&id);
    /* Every string field must be terminated inside its array. */
    if (strnlen(id.user, sizeof(id.user)) == sizeof(id.user) ||
        strnlen(id.domain, sizeof(id.domain)) == sizeof(id.domain) ||
        strnlen(id.user_agent, sizeof(id.user_agent)) == sizeof(id.user_agent))
        abort();
    return 0;
}
