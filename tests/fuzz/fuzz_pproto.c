/*
 * fuzz_pproto: libFuzzer target for the PROXY protocol header parser
 * (proxy/pproto.h). The input is the first bytes of a connection. Whatever
 * the bytes, the parser must not read past them (ASan), and its answers must
 * agree with each other: a header it finds whole is found whole, with the
 * same length, in exactly its own bytes, every shorter prefix of it asks for
 * more, and "more" is never said of PP_MAX bytes or more.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/pproto.h"

static int parse_copy(const uint8_t *data, size_t n, struct pp_info *info)
{
    uint8_t *copy = malloc(n ? n : 1); /* exact size: ASan sees a read past n */
    if (!copy)
        abort();
    memcpy(copy, data, n);
    const char *why = NULL;
    int rc = pp_parse(copy, n, info, &why);
    free(copy);
    if (rc == PP_BAD && (!why || !*why))
        abort();
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pp_info info, again;
    int rc = parse_copy(data, size, &info);
    if (rc == PP_MORE && size >= PP_MAX)
        abort();
    if (rc != PP_DONE)
        return 0;
    if (info.len == 0 || info.len > size || info.len > PP_MAX)
        abort();
    if (info.version != 1 && info.version != 2)
        abort();
    if (parse_copy(data, info.len, &again) != PP_DONE || again.len != info.len ||
        again.has_addr != info.has_addr ||
        (info.has_addr && memcmp(&again.src, &info.src, sizeof(info.src)) != 0))
        abort();
    for (size_t k = 0; k < info.len; k++)
        if (parse_copy(data, k, &again) != PP_MORE)
            abort();
    return 0;
}
