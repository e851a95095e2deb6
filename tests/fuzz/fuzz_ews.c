/*
 * fuzz_ews: libFuzzer target for the EWS operation reader (eas/ews.h). The
 * input is a request body. Whatever the bytes, nothing is read past them
 * (ASan), libxml2 is asked for no network or entity work, the answer is one
 * of the documented codes, and a subscription verdict agrees with the
 * operation read.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eas/ews.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ews_xml_ready(); /* libxml2 opened before the first input is timed */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1);
    if (!copy)
        abort();
    memcpy(copy, data, size);
    enum ews_op op;
    int rc = ews_request_op(copy, size, &op);
    if (rc > 0 || rc < EWS_E_INVAL || (rc < 0 && op != EWS_OP_OTHER))
        abort();
    if (ews_is_subscription(copy, size) != (rc == 0 && op != EWS_OP_OTHER))
        abort();
    free(copy);
    return 0;
}
