/*
 * fuzz_import: libFuzzer target for the files `easgate admin devices|users
 * import` reads (CSV with a header, or JSON lines), through the check pass
 * the CLI runs before it sends anything (cli_import_check). Whatever the
 * bytes, the reader and the row checks stay inside them (ASan, UBSan), and
 * the answers hold together: a good row takes at least one line of the
 * file, and the same file checked twice gives the same counts.
 *
 * Run: make fuzz && build-fuzz/tests/fuzz_import -close_fd_mask=2 \
 *        -max_total_time=600 CORPUS tests/fuzz/seeds/import
 * (-close_fd_mask=2: the FILE:LINE errors each bad row prints.)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli/cli_import.h"

/* The check pass never talks to a server; the import's sending half is
 * linked in with it and must find these. */
int cli_admin_request(const struct cli_admin_client *cl, const char *method, const char *path,
                      json_t *body, json_t **out, long *status)
{
    abort();
}

int cli_admin_request_text(const struct cli_admin_client *cl, const char *method, const char *path,
                           json_t *body, const char *text, size_t len, json_t **out, long *status)
{
    abort();
}

static void check(const char *what, const char *path, const char *format, size_t lines)
{
    long e1 = 0, e2 = 0;
    long g1 = cli_import_check(what, path, format, &e1);
    if (g1 >= 0 && (size_t)g1 > lines)
        abort(); /* more good rows than lines */
    long g2 = cli_import_check(what, path, format, &e2);
    if (g1 != g2 || e1 != e2)
        abort(); /* the same file, another answer */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz_import", 0);
        if (fd < 0)
            abort();
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();
    size_t lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n' || data[i] == '\r';
    check("devices", path, "csv", lines);
    check("users", path, "csv", lines);
    check("devices", path, "jsonl", lines);
    check("users", path, "jsonl", lines);
    return 0;
}
