/*
 * accesslog: a descriptor that can be swapped under running writers. Reopen
 * opens the new file and dup2()s it over the old descriptor number, so a
 * worker writing at that moment lands in one file or the other, never in a
 * closed descriptor.
 */
#include "proxy/accesslog.h"

#include "proxy/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
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

char *accesslog_identity(const char *user, const char *cred, const char *devid, const char *type,
                         const char *ua, size_t ua_len)
{
    if (!accesslog_enabled())
        return NULL; /* only the access log reads it */
    char u[600], d[80], t[600], a[600];
    json_escape(u, sizeof(u), user, strlen(user));
    json_escape(d, sizeof(d), devid, strlen(devid));
    json_escape(t, sizeof(t), type, strlen(type));
    json_escape(a, sizeof(a), ua, ua_len);
    size_t n = strlen(u) + strlen(cred) + strlen(d) + strlen(t) + strlen(a) + 100;
    char *out = malloc(n);
    if (out)
        snprintf(out, n,
                 "\"user\":\"%s\",\"credential\":\"%s\",\"device_id\":\"%s\",\"device_type\":"
                 "\"%s\",\"user_agent\":\"%s\",",
                 u, cred, d, t, a);
    return out;
}

static const char *cmd_name(int cmd)
{
    return cmd == M_CMD_AUTODISCOVER ? "autodiscover"
           : cmd == M_CMD_EWS        ? "ews"
           : cmd == M_CMD_OTHER      ? "-"
                                     : easq_cmd_name((enum easq_cmd)cmd);
}

/* "2026-12-03T10:00:00.123Z" */
static void stamp(char *ts, size_t cap)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    size_t tl = strftime(ts, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + tl, cap - tl, ".%03dZ", (int)(tv.tv_usec / 1000));
}

static void escape_str(char *out, size_t cap, const char *s)
{
    json_escape(out, cap, s ? s : "", s ? strlen(s) : 0);
}

void accesslog_request(const struct accesslog_rec *r)
{
    char line[4096], ts[40], reason[160], cert[600], ver[16] = "";
    stamp(ts, sizeof(ts));
    escape_str(reason, sizeof(reason), r->reason);
    escape_str(cert, sizeof(cert), r->client_cert);
    if (r->version > 0)
        snprintf(ver, sizeof(ver), "%d.%d", r->version / 10 % 100, r->version % 10);
    int n = snprintf(line, sizeof(line),
                     "{\"time\":\"%s\",\"instance\":\"%s\",\"client\":\"%s\",%s"
                     "\"command\":\"%s\",\"version\":\"%s\",\"decision\":\"%s\","
                     "\"reason\":\"%s\",\"status\":%d,\"upstream_status\":%d,"
                     "\"bytes_in\":%llu,\"bytes_out\":%llu,\"duration_ms\":%llu,"
                     "\"client_cert\":\"%s\"}\n",
                     ts, r->instance, r->client,
                     r->identity ? r->identity
                                 : "\"user\":\"\",\"device_id\":\"\",\"device_type\":\"\","
                                   "\"user_agent\":\"\",",
                     cmd_name(r->cmd), ver, r->decision ? r->decision : "", reason, r->status,
                     r->upstream_status, (unsigned long long)r->bytes_in,
                     (unsigned long long)r->bytes_out, (unsigned long long)r->duration_ms, cert);
    if (n > 0)
        accesslog_write(line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}
