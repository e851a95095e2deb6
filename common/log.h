/*
 * log: the error log every role writes to (stderr by default).
 *
 * One line per message, "2026-11-22T10:00:00.123Z level message", written
 * with a single write(2) so lines from several threads never interleave.
 * The access log (one JSON line per request) is the proxy's own business.
 */
#ifndef EG_LOG_H
#define EG_LOG_H

#include <stddef.h>

enum eg_log_level { EG_LOG_ERROR, EG_LOG_WARN, EG_LOG_INFO, EG_LOG_DEBUG };

/* Messages above this level are dropped. Default EG_LOG_INFO. */
void eg_log_set_level(enum eg_log_level level);
enum eg_log_level eg_log_get_level(void);

/* "error", "warn", "info", "debug" -> 0, or -1 for anything else. */
int eg_log_parse_level(const char *s, enum eg_log_level *out);

/* Send the log to fd (default 2). The caller owns fd. */
void eg_log_set_fd(int fd);

void eg_log(enum eg_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A message into a caller's error buffer, as functions that return an error
 * with its text do (err NULL or errlen 0: nothing is written). */
void eg_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define eg_error(...) eg_log(EG_LOG_ERROR, __VA_ARGS__)
#define eg_warn(...) eg_log(EG_LOG_WARN, __VA_ARGS__)
#define eg_info(...) eg_log(EG_LOG_INFO, __VA_ARGS__)
#define eg_debug(...)                                                                              \
    do {                                                                                           \
        if (eg_log_get_level() >= EG_LOG_DEBUG)                                                    \
            eg_log(EG_LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)

#endif
