/*
 * enr_qr: a QR code of a text (the invitation URL) as a PNG image.
 *
 * libqrencode makes the module matrix; the PNG is written here, 1 bit per
 * pixel, with "stored" (uncompressed) deflate blocks, so neither libpng nor
 * zlib is a dependency: a QR code of an invitation URL is a few KiB either
 * way, and the writer is one page of code (chunk CRC-32, zlib Adler-32).
 */
#ifndef EG_ENR_QR_H
#define EG_ENR_QR_H

#include <stddef.h>

#define ENR_QR_SCALE 8  /* pixels per module */
#define ENR_QR_MARGIN 4 /* quiet zone in modules (ISO/IEC 18004 asks for 4) */

/* PNG of text (malloc'd, the caller frees). ENR_EINVAL if text does not fit a QR code. */
int enr_qr_png(const char *text, int scale, unsigned char **png, size_t *len);

/* CRC-32 (PNG/zlib polynomial) of buf, continuing from crc (start with 0). */
unsigned long enr_crc32(unsigned long crc, const unsigned char *buf, size_t len);

#endif
