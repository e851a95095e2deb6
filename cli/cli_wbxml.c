/*
 * cli_wbxml: easgate wbxml decode|encode [FILE]
 *
 * decode: ActiveSync WBXML (a captured request or response body) to indented
 * XML on stdout. encode: that XML back to WBXML on stdout. FILE defaults to
 * stdin. Malformed input prints "offset N: reason" (N = byte offset in the
 * input) and exits 1; usage errors exit 2.
 */
#include "cli/cli.h"
#include "eas/wbxml.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLI_WBXML_MAX_INPUT (64u << 20) /* bodies are small; refuse surprises */

/* Read all of FILE (or stdin) into a malloc'd buffer. */
static int read_all(const char *path, char **out, size_t *len)
{
    FILE *f = path ? fopen(path, "rb") : stdin;
    size_t cap = 65536, n = 0;
    char *buf;

    if (!f) {
        fprintf(stderr, "easgate wbxml: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    buf = malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
        if (n == cap) {
            if (cap >= CLI_WBXML_MAX_INPUT) {
                fprintf(stderr, "easgate wbxml: input larger than %u bytes\n", CLI_WBXML_MAX_INPUT);
                free(buf);
                buf = NULL;
                break;
            }
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    int bad = buf == NULL || ferror(f);
    if (bad && buf)
        fprintf(stderr, "easgate wbxml: cannot read %s\n", path ? path : "stdin");
    if (path)
        fclose(f);
    if (bad) {
        free(buf);
        return -1;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* argv[0] is "decode" or "encode"; one FILE at most. */
static int convert(int argc, char **argv)
{
    char *in = NULL;
    size_t inlen = 0;
    uint64_t off = 0;
    int rc;

    if (argc > 2) {
        fprintf(stderr, "easgate wbxml %s: one FILE at most\n", argv[0]);
        return CLI_USAGE;
    }
    bool decode = strcmp(argv[0], "decode") == 0;
    if (read_all(argc == 2 ? argv[1] : NULL, &in, &inlen))
        return 1;
    if (decode) {
        char *xml;
        size_t xlen;
        rc = wbxml_to_xml(in, inlen, &xml, &xlen, &off);
        if (rc == 0) {
            fwrite(xml, 1, xlen, stdout);
            free(xml);
        } else {
            fprintf(stderr, "offset %" PRIu64 ": %s\n", off, wbxml_strerror(rc));
        }
    } else {
        uint8_t *wb;
        size_t wlen;
        const char *why = NULL;
        rc = wbxml_from_xml(in, inlen, &wb, &wlen, &off, &why);
        if (rc == 0) {
            fwrite(wb, 1, wlen, stdout);
            free(wb);
        } else {
            fprintf(stderr, "offset %" PRIu64 ": %s\n", off, why ? why : wbxml_strerror(rc));
        }
    }
    free(in);
    if (rc == 0 && fflush(stdout) != 0) {
        fprintf(stderr, "easgate wbxml: write error: %s\n", strerror(errno));
        return 1;
    }
    return rc == 0 ? 0 : 1;
}

static const struct cli_cmd wbxml_decode = {
    "decode", "WBXML to indented XML",
    "usage: easgate wbxml decode [FILE]\n"
    "  ActiveSync WBXML (FILE, or stdin) to indented XML on stdout\n",
    convert, NULL};
static const struct cli_cmd wbxml_encode = {
    "encode", "XML back to WBXML",
    "usage: easgate wbxml encode [FILE]\n"
    "  XML (FILE, or stdin) to ActiveSync WBXML on stdout\n",
    convert, NULL};

static const struct cli_cmd *const wbxml_cmds[] = {&wbxml_decode, &wbxml_encode, NULL};

const struct cli_cmd cli_wbxml_cmd = {
    "wbxml", "convert ActiveSync WBXML: wbxml decode|encode [FILE]",
    "usage: easgate wbxml decode|encode [FILE]\n"
    "  malformed input prints \"offset N: reason\" (N = byte offset) and exits 1\n",
    NULL, wbxml_cmds};
