/*
 * fuzz_ntlm: libFuzzer target for the NTLM AUTHENTICATE reader and the
 * SPNEGO unwrapper (eas/ntlm.h). The input is a Negotiate/NTLM token after
 * base64 decoding. Whatever the bytes, nothing is read past them (ASan), an
 * inner token lies inside the input, and a name that is read is non-empty
 * UTF-8 without control characters, within its bound.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eas/ntlm.h"

static void check_name(const char *s, int may_be_empty)
{
    size_t n = strnlen(s, NTLM_NAME_MAX + 1);
    if (n > NTLM_NAME_MAX || (!may_be_empty && n == 0))
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7F)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1); /* exact size: ASan sees a read past it */
    if (!copy)
        abort();
    memcpy(copy, data, size);
    struct ntlm_auth a;
    if (ntlm_parse_authenticate(copy, size, &a) == 0) {
        check_name(a.user, 0);
        check_name(a.domain, 1);
    } else if (a.user[0] || a.domain[0]) {
        abort();
    }
    const uint8_t *in;
    size_t inl;
    if (ntlm_from_negotiate(copy, size, &in, &inl) == 0) {
        if (in < copy || inl > size || in + inl > copy + size)
            abort();
        if (ntlm_msg_type(in, inl) == NTLM_E_NOT_NTLM)
            abort();
        if (ntlm_parse_authenticate(in, inl, &a) == 0)
            check_name(a.user, 0);
    }
    (void)ntlm_msg_type(copy, size);
    free(copy);
    return 0;
}
