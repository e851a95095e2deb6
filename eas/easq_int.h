/*
 * easq_int: byte helpers shared by the files of request identity (easq.c,
 * jwt.c). Internal to eas/: no other module includes this.
 */
#ifndef EG_EASQ_INT_H
#define EG_EASQ_INT_H

#include "eas/easq.h"

#include <stdbool.h>

static inline bool easq_is_alnum(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline int easq_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'Z')
        c += 'a' - 'A';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* A decoded byte that may go into a text field: NUL and other controls
 * would let a client smuggle line breaks into logs and keys. */
static inline int easq_check_byte(unsigned char c)
{
    if (c == 0)
        return EASQ_E_NUL;
    if (c < 0x20 || c == 0x7f)
        return EASQ_E_CTRL;
    return 0;
}

#endif
