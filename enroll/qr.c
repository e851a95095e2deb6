/* enr_qr: QR code PNG writer. See qr.h. */
#include "enroll/qr.h"

#include "enroll/err.h"

#include <qrencode.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define STORED_MAX 65535 /* a stored deflate block holds at most this many bytes */

unsigned long enr_crc32(unsigned long crc, const unsigned char *buf, size_t len)
{
    static uint32_t table[256];
    static int ready;
    if (!ready) { /* racy but idempotent: every thread writes the same table */
        for (uint32_t n = 0; n < 256; n++) {
            uint32_t c = n;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
            table[n] = c;
        }
        ready = 1;
    }
    uint32_t c = (uint32_t)crc ^ 0xffffffffu;
    for (size_t i = 0; i < len; i++)
        c = table[(c ^ buf[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

static uint32_t adler32(const unsigned char *buf, size_t len)
{
    uint32_t a = 1, b = 0;
    for (size_t i = 0; i < len; i++) {
        a = (a + buf[i]) % 65521;
        b = (b + a) % 65521;
    }
    return (b << 16) | a;
}

static unsigned char *put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
    return p + 4;
}

/* One chunk: length, type, data, CRC over type and data. */
static unsigned char *chunk(unsigned char *p, const char *type, const unsigned char *data,
                            size_t len)
{
    p = put32(p, (uint32_t)len);
    unsigned char *crc_from = p;
    memcpy(p, type, 4);
    p += 4;
    if (len)
        memcpy(p, data, len);
    p += len;
    return put32(p, (uint32_t)enr_crc32(0, crc_from, len + 4));
}

int enr_qr_png(const char *text, int scale, unsigned char **png, size_t *len)
{
    if (scale < 1 || scale > 64)
        return ENR_EINVAL;
    QRcode *qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    if (!qr)
        return ENR_EINVAL;
    size_t side = ((size_t)qr->width + 2 * ENR_QR_MARGIN) * (size_t)scale;
    size_t row = 1 + (side + 7) / 8; /* filter byte + 1-bit pixels */
    size_t raw_len = row * side;
    size_t blocks = raw_len / STORED_MAX + 1;
    size_t z_len = 2 + blocks * 5 + raw_len + 4;
    unsigned char *raw = calloc(1, raw_len);
    unsigned char *z = malloc(z_len);
    unsigned char *out = malloc(8 + 25 + 12 + z_len + 12);
    if (!raw || !z || !out) {
        free(raw);
        free(z);
        free(out);
        QRcode_free(qr);
        return ENR_ENOMEM;
    }
    /* Pixels: 1 = white (greyscale), dark modules 0; filter type 0 per row. */
    for (size_t y = 0; y < side; y++) {
        unsigned char *r = raw + y * row + 1;
        long my = (long)(y / (size_t)scale) - ENR_QR_MARGIN;
        for (size_t x = 0; x < side; x++) {
            long mx = (long)(x / (size_t)scale) - ENR_QR_MARGIN;
            int dark = my >= 0 && mx >= 0 && my < qr->width && mx < qr->width &&
                       (qr->data[my * qr->width + mx] & 1);
            if (!dark)
                r[x / 8] |= (unsigned char)(0x80 >> (x % 8));
        }
    }
    QRcode_free(qr);
    /* zlib stream of stored blocks. */
    unsigned char *p = z;
    *p++ = 0x78;
    *p++ = 0x01;
    for (size_t off = 0; off < raw_len || off == 0;) {
        size_t n = raw_len - off > STORED_MAX ? STORED_MAX : raw_len - off;
        int last = off + n == raw_len;
        *p++ = (unsigned char)last;
        *p++ = (unsigned char)(n & 0xff);
        *p++ = (unsigned char)(n >> 8);
        *p++ = (unsigned char)(~n & 0xff);
        *p++ = (unsigned char)((~n >> 8) & 0xff);
        memcpy(p, raw + off, n);
        p += n;
        off += n;
        if (last)
            break;
    }
    p = put32(p, adler32(raw, raw_len));
    size_t zl = (size_t)(p - z);
    free(raw);

    unsigned char ihdr[13];
    put32(ihdr, (uint32_t)side);
    put32(ihdr + 4, (uint32_t)side);
    ihdr[8] = 1;  /* bit depth */
    ihdr[9] = 0;  /* greyscale */
    ihdr[10] = 0; /* deflate */
    ihdr[11] = 0; /* adaptive filtering */
    ihdr[12] = 0; /* no interlace */
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(out, sig, 8);
    p = chunk(out + 8, "IHDR", ihdr, sizeof(ihdr));
    p = chunk(p, "IDAT", z, zl);
    p = chunk(p, "IEND", NULL, 0);
    free(z);
    *png = out;
    *len = (size_t)(p - out);
    return 0;
}
