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
#include <stdint.h>

/* path NULL = off. 0 or -errno. */
int accesslog_open(const char *path);
/* Reopen the same path (SIGUSR1). 0 or -errno; the old file stays in use
 * on failure. */
int accesslog_reopen(void);
void accesslog_close(void);
int accesslog_enabled(void);
void accesslog_write(const char *line, size_t len);

/* One request as its line shows it. Strings are borrowed for the call;
 * NULL writes "". */
struct accesslog_rec {
    const char *instance;
    const char *client;   /* address as text */
    const char *identity; /* accesslog_identity()'s fragment; NULL: empty fields */
    int cmd;              /* easq_cmd, or the M_CMD_* of the other routes (metrics.h) */
    int version;          /* 141 = 14.1, 0 unknown */
    const char *decision, *reason;
    int status, upstream_status;
    uint64_t bytes_in, bytes_out, duration_ms;
    const char *client_cert; /* summary of the verified certificate */
};
/* Write the request's line, stamped with the time now. */
void accesslog_request(const struct accesslog_rec *r);

/* The identity fields of a line as a JSON fragment ("\"user\":...,"),
 * computed once per request when the identity is known; malloc'd (the
 * caller frees), NULL when the log is off or without memory. cred names
 * where the user came from ("basic", "ntlm", "connection", "none", ...; a
 * static string that needs no escaping). */
char *accesslog_identity(const char *user, const char *cred, const char *device_id,
                         const char *device_type, const char *user_agent, size_t ua_len);

/* Append s as a JSON string body (no quotes) to out; returns bytes written,
 * never more than cap - 1, always NUL-terminated. */
size_t json_escape(char *out, size_t cap, const char *s, size_t len);

#endif
