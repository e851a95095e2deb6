/*
 * wbxml_int: what the codec's own files share and callers never need.
 */
#ifndef EG_WBXML_INT_H
#define EG_WBXML_INT_H

#include <stdint.h>

#include "proxy/eas/wbxml.h"

/* Bit t of wbxml_token_mask_[p]: page p defines token t (wbxml_pages.c). */
extern const uint64_t wbxml_token_mask_[WBXML_NPAGES];

#endif
