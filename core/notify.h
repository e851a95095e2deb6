/*
 * core_notify: e-mail and webhook notifications from a persistent queue in
 * the registry (docs/notifications.md).
 *
 * Every notification is a row of notify_queue (schema 10) before anything is
 * sent: the whole RFC 5322 message for a mail, the JSON body for a webhook.
 * One sender thread (core_notify_start) owns its own registry connection
 * and a libcurl handle; it turns new audit rows into queue rows (the cursor
 * is stored in meta in the same transaction, so a restart neither loses nor
 * repeats an event), warns about certificates nearing their end, and sends
 * what is due: retries back off exponentially, a recipient gets at most
 * rate_limit mails per rate_window, and a row whose dedup key exists already
 * is not queued twice. The API and writer threads never wait for a server.
 *
 * Anything may queue from any thread with its own registry connection
 * (core_notify_mail, e.g. the invitation inside enroll's transaction); the
 * sender picks the row up at its next poll.
 *
 * Errors: 0 or a negative CORE_NOTIFY_E*, with a sentence in err.
 */
#ifndef EG_CORE_NOTIFY_H
#define EG_CORE_NOTIFY_H

#include "common/ytree.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct core_reg;

enum {
    CORE_NOTIFY_EINVAL = -1, /* bad address, unknown template or variable */
    CORE_NOTIFY_EDB = -2,
    CORE_NOTIFY_ENOMEM = -3,
    CORE_NOTIFY_EIO = -4, /* template file unreadable */
    CORE_NOTIFY_EDUP = -5 /* a row with this dedup key exists: nothing queued */
};

enum core_smtp_tls { CORE_SMTP_STARTTLS, CORE_SMTP_IMPLICIT, CORE_SMTP_NONE };

struct core_webhook_cfg {
    const char *name, *url;
    const char *secret_file, *secret_env; /* the HMAC key: one of the two */
    struct yt_strv events;                /* audit event names; empty = every event */
    const char *ca_file;
    bool verify;
};

/* core.notify (docs/configuration.md). A section without smtp.url sends no
 * mail; without webhooks, no webhook. */
struct core_notify_cfg {
    bool enabled;          /* the section is present */
    const char *templates; /* directory holding en/, ja/, ... */
    const char *language;  /* when the user's is unknown */
    const char *site;      /* the service's name in mails */
    struct yt_strv admins; /* admin addresses */
    struct yt_strv admin_events;
    struct yt_strv cert_warn; /* lead times before a device certificate ends: "30d" ... */
    int64_t poll_ms, retry_min_ms, retry_max_ms, give_up_ms, rate_window_ms, keep_ms;
    int64_t digest_ms; /* the admins' summary every this long (aligned to the epoch); 0 = none */
    int rate_limit;
    struct {
        const char *url; /* smtp://host:port or smtps://host:port */
        int tls;         /* enum core_smtp_tls */
        const char *from, *username, *password_file, *password_env, *ca_file;
        bool verify;
        int64_t timeout_ms;
    } smtp;
    struct core_webhook_cfg *webhooks;
    size_t n_webhooks;
};

/* The key table of core.notify, for core/cfg.c's YK_MAP. */
extern const struct yt_key core_notify_keys[];

/* ---- templates (core/notify_tpl.c) ----------------------------------------- */

/* The templates, by name; each names the variables it may use. */
enum core_tpl {
    CORE_TPL_INVITE,
    CORE_TPL_QUARANTINED,
    CORE_TPL_APPROVED,
    CORE_TPL_BLOCKED,
    CORE_TPL_WIPED,
    CORE_TPL_ENROLLED,
    CORE_TPL_CERT_EXPIRING,
    CORE_TPL_ADMIN_EVENT,
    CORE_TPL_DIGEST,
    CORE_TPL_COUNT_
};

struct core_tpls;

/*
 * Load every template of every language directory under dir (en/ is
 * required; each language must have all of them). A variable a template
 * may not use is an error naming file, line and the variables it may.
 */
int core_tpls_load(const char *dir, struct core_tpls **out, char *err, size_t errlen);
void core_tpls_free(struct core_tpls *t);
/* Whether lang has templates (lang may be "ja-JP": its primary tag counts). */
const char *core_tpls_lang(const struct core_tpls *t, const char *lang, const char *fallback);

struct core_var {
    const char *name, *value;
};

/* ---- queueing (core/notify_q.c) ------------------------------------------ */

struct core_mail {
    const char *to;    /* one address */
    const char *lang;  /* NULL = cfg->language */
    enum core_tpl tpl; /* the template */
    const struct core_var *vars;
    size_t n_vars;
    const unsigned char *png; /* an inline image (the QR code), or NULL */
    size_t png_len;
    const char *event; /* the event name recorded with the row */
    const char *dedup; /* NULL = never a duplicate */
};

/* Render m and queue it on reg's connection (inside the caller's
 * transaction if one is open). */
int core_notify_mail(struct core_reg *reg, const struct core_notify_cfg *cfg,
                     const struct core_tpls *tpls, const struct core_mail *m, int64_t now_ms,
                     char *err, size_t errlen);

/* Whether s is an address a mail may go to (addr-spec, no display name). */
bool core_notify_addr_ok(const char *s);

/* Whether the audit event (an action: "device.block") is mailed to the
 * admins: cfg->admin_events, or the defaults when that is empty. */
bool core_notify_admin_event(const struct core_notify_cfg *cfg, const char *event);

/* ---- reading the queue (core/notify_q.c) --------------------------------- */

/* One row as the API and the CLI show it (never its body: an invitation's
 * holds the enrollment key until it is sent). */
struct core_notify_row {
    int64_t id;
    char channel[16], target[256], event[64], state[16];
    int attempts;
    int64_t created_ms, next_ms, sent_ms; /* next_ms: the next attempt (queued) or the last */
    char last_error[512];
};

/* The newest rows first, with id below before (0 = from the newest), in
 * state (NULL = any: queued, sent or failed), at most max. 0 or
 * CORE_NOTIFY_EDB. */
int core_notify_list(struct core_reg *reg, const char *state, int64_t before,
                     struct core_notify_row *out, size_t max, size_t *n);

/* Rows in each state now: for /metrics and the API's summary. */
int core_notify_counts(struct core_reg *reg, int64_t *queued, int64_t *sent, int64_t *failed);

/* ---- the sender thread (core/notify.c) ----------------------------------- */

struct core_notify;

struct core_dir_cfg;
/* Start the sender over the registry at database; dir (NULL = none) gives
 * the address and language of users no invitation names. */
int core_notify_start(const struct core_notify_cfg *cfg, const struct core_dir_cfg *dir,
                      const char *database, struct core_notify **out, char *err, size_t errlen);
void core_notify_stop(struct core_notify *n);

/* The queue's counters for /metrics (appended with promx_put). */
int core_notify_metrics(char *buf, size_t n, size_t *len);

#endif
