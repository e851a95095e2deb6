/*
 * accesslog: a descriptor that can be swapped under running writers. Reopen
 * opens the new file and dup2()s it over the old descriptor number, so a
 * worker writing at that moment lands in one file or the other, never in a
 * closed descriptor.
 */
#include "proxy/accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int log_fd = -1;
static char *log_path;

static int open_path(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

int accesslog_open(const char *path)
{
    accesslog_close();
    if (!path)
        return 0;
    if (strcmp(path, "-") == 0) {
        log_fd = 1;
        return 0;
    }
    int fd = open_path(path);
    if (fd < 0)
        return -errno;
    log_fd = fd;
    log_path = strdup(path);
    return 0;
}

int accesslog_reopen(void)
{
    if (!log_path || log_fd < 0)
        return 0;
    int fd = open_path(log_path);
    if (fd < 0)
        return -errno;
    if (dup2(fd, log_fd) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    close(fd);
    return 0;
}

void accesslog_close(void)
{
    if (log_fd > 2)
        close(log_fd);
    log_fd = -1;
    free(log_path);
    log_path = NULL;
}

int accesslog_enabled(void)
{
    return log_fd >= 0;
}

void accesslog_write(const char *line, size_t len)
{
    if (log_fd < 0)
        return;
    ssize_t w = write(log_fd, line, len);
    (void)w;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s, size_t left)
{
    size_t n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (n == 0 || n > left || s[0] > 0xf4)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    /* no overlong forms, no surrogates, nothing above U+10FFFF */
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) ||
        (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))
        return 0;
    return n;
}

/* Every input gives valid JSON: quotes, backslashes and control characters
 * are escaped, valid UTF-8 is kept, any other byte becomes \u00XX. */
size_t json_escape(char *out, size_t cap, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (cap == 0)
        return 0;
    for (size_t i = 0; i < len;) {
        const unsigned char *u = (const unsigned char *)s + i;
        unsigned char c = u[0];
        char esc[7];
        size_t el, take = 1;
        const char *src = esc;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            el = 2;
        } else if (c < 0x20 || c == 0x7f || (c >= 0x80 && utf8_len(u, len - i) == 0)) {
            esc[0] = '\\';
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            el = 6;
        } else if (c >= 0x80) {
            take = el = utf8_len(u, len - i);
            src = (const char *)u;
        } else {
            esc[0] = (char)c;
            el = 1;
        }
        if (o + el >= cap)
            break;
        memcpy(out + o, src, el);
        o += el;
        i += take;
    }
    out[o] = '\0';
    return o;
}
