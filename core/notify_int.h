/*
 * core_notify's parts among themselves (core/notify*.c): templates,
 * message building, the queue's SQL and the two ways out. Not for callers
 * outside core_notify; they use notify.h.
 */
#ifndef EG_CORE_NOTIFY_INT_H
#define EG_CORE_NOTIFY_INT_H

#include "core/notify.h"

#include <sqlite3.h>

/* The template's file name ("invite"). */
const char *core_tpl_name(enum core_tpl t);

/* Subject (one line) and body of template k in lang (or English); the
 * caller frees both. */
int core_tpls_render(const struct core_tpls *t, const char *lang, enum core_tpl k,
                     const struct core_var *v, size_t n, char **subject, char **body);

/* An RFC 5322 message with CRLF line ends (multipart with the inline
 * image when png); the caller frees it. */
char *core_mail_build(const struct core_notify_cfg *cfg, const char *to, const char *lang,
                      const char *subject, const char *body, const unsigned char *png,
                      size_t png_len, int64_t now_ms, size_t *len);

/* Queue a row; CORE_NOTIFY_EDUP when dedup (not NULL) is queued already. */
int core_notify_put(sqlite3 *db, const char *channel, const char *target, const char *event,
                    const char *dedup, const void *body, size_t len, int64_t now_ms);

/* One send: 0, or -1 with why in err; *permanent when a retry cannot help
 * (a 5xx SMTP reply to the recipient, a 4xx webhook answer but 408/429). */
int core_smtp_send(const struct core_notify_cfg *cfg, const char *password, const char *to,
                   const char *msg, size_t len, bool *permanent, char *err, size_t errlen);
int core_webhook_send(const struct core_webhook_cfg *w, const char *secret, const char *event,
                      int64_t id, const char *body, size_t len, int64_t now_ms, bool *permanent,
                      char *err, size_t errlen);

/* "sha256=" and the hex HMAC-SHA256 of "<ts>.<body>" under secret (out: 72 bytes). */
void core_webhook_sign(const char *secret, const char *ts, const char *body, size_t len,
                       char out[72]);

#endif
