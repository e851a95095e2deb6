/*
 * accesslog: one JSON object per line per request (log.access).
 *
 * "-" writes to stdout; a path is opened for append and reopened on SIGUSR1
 * (log rotation: move the file, send SIGUSR1). A line is one write(2), so
 * lines from several workers never interleave. Fields are documented in
 * docs/operations.md.
 */
#ifndef EG_ACCESSLOG_H
#define EG_ACCESSLOG_H

#include <stddef.h>

/* path NULL = off. 0 or -errno. */
int accesslog_open(const char *path);
/* Reopen the same path (SIGUSR1). 0 or -errno; the old file stays in use
 * on failure. */
int accesslog_reopen(void);
void accesslog_close(void);
int accesslog_enabled(void);
void accesslog_write(const char *line, size_t len);

/* Append s as a JSON string body (no quotes) to out; returns bytes written,
 * never more than cap - 1, always NUL-terminated. */
size_t json_escape(char *out, size_t cap, const char *s, size_t len);

#endif
