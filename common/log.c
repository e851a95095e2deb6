/*
 * log: timestamped lines to one descriptor, one write(2) per line so that
 * worker threads never interleave. Long messages are cut, never allocated.
 */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define EG_LOG_LINE_MAX 2048

static volatile int log_level = EG_LOG_INFO;
static volatile int log_fd = 2;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void eg_log_set_level(enum eg_log_level level)
{
    log_level = level;
}

enum eg_log_level eg_log_get_level(void)
{
    return (enum eg_log_level)log_level;
}

void eg_log_set_fd(int fd)
{
    log_fd = fd;
}

int eg_log_parse_level(const char *s, enum eg_log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (enum eg_log_level)i;
            return 0;
        }
    }
    return -1;
}

void eg_log(enum eg_log_level level, const char *fmt, ...)
{
    if ((int)level > log_level)
        return;

    char line[EG_LOG_LINE_MAX];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03dZ %s ", (int)(tv.tv_usec / 1000),
                  level_names[level]);

    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += m;
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';

    ssize_t w = write(log_fd, line, (size_t)n);
    (void)w;
}

void eg_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
