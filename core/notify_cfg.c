/*
 * core_notify: the key table of core.notify. See notify.h and
 * docs/configuration.md.
 */
#include "core/notify.h"

#include "common/units.h"

#include <stddef.h>
#include <string.h>

#define SEC 1000
#define DAY (24LL * 3600 * SEC)

#define NO(f) offsetof(struct core_notify_cfg, f)
#define SM(f) (offsetof(struct core_notify_cfg, smtp.f) - offsetof(struct core_notify_cfg, smtp))
#define WH(f) offsetof(struct core_webhook_cfg, f)

static const char *const smtp_tls_names[] = {"starttls", "implicit", "none", NULL};

static int smtp_check(void *obj, const struct yt_node *map, struct yt_ctx *ctx)
{
    const struct core_notify_cfg *c = (const void *)((char *)obj - NO(smtp));
    if (!c->smtp.url)
        return 0;
    bool smtps = strncmp(c->smtp.url, "smtps://", 8) == 0;
    if (!smtps && strncmp(c->smtp.url, "smtp://", 7) != 0)
        return yt_err(ctx, map, "smtp.url: give smtp://HOST:PORT or smtps://HOST:PORT");
    if (smtps != (c->smtp.tls == CORE_SMTP_IMPLICIT))
        return yt_err(ctx, map,
                      "smtp: tls: implicit goes with an smtps:// url, and an smtps:// url "
                      "with tls: implicit");
    if (!c->smtp.from || !core_notify_addr_ok(c->smtp.from))
        return yt_err(ctx, map, "smtp.from: the sender address (user@domain) is required");
    if (c->smtp.password_file && c->smtp.password_env)
        return yt_err(ctx, map, "smtp: give password_file or password_env, not both");
    if ((c->smtp.password_file || c->smtp.password_env) && !c->smtp.username)
        return yt_err(ctx, map, "smtp: a password needs a username");
    return 0;
}

static const struct yt_key smtp_keys[] = {
    {.name = "url", .type = YK_STR, .off = SM(url)},
    {.name = "tls", .type = YK_ENUM, .off = SM(tls), .def = "starttls", .enums = smtp_tls_names},
    {.name = "from", .type = YK_STR, .off = SM(from)},
    {.name = "username", .type = YK_STR, .off = SM(username)},
    {.name = "password_file", .type = YK_PATH, .off = SM(password_file)},
    {.name = "password_env", .type = YK_STR, .off = SM(password_env)},
    {.name = "ca_file", .type = YK_PATH, .off = SM(ca_file)},
    {.name = "verify", .type = YK_BOOL, .off = SM(verify), .def = "true"},
    {.name = "timeout",
     .type = YK_DUR,
     .off = SM(timeout_ms),
     .def = "30s",
     .min = SEC,
     .max = 10 * 60 * SEC},
    {.check = smtp_check},
};

static int webhook_check(void *obj, const struct yt_node *map, struct yt_ctx *ctx)
{
    const struct core_webhook_cfg *w = obj;
    if (strncmp(w->url, "https://", 8) != 0 && strncmp(w->url, "http://", 7) != 0)
        return yt_err(ctx, map, "webhooks: url must be http:// or https://");
    if (!w->secret_file == !w->secret_env)
        return yt_err(ctx, map,
                      "webhooks: give secret_file or secret_env (one of the two): "
                      "receivers verify the signature with it");
    return 0;
}

static const struct yt_key webhook_keys[] = {
    {.name = "name", .type = YK_STR, .off = WH(name), .flags = YK_REQUIRED},
    {.name = "url", .type = YK_STR, .off = WH(url), .flags = YK_REQUIRED},
    {.name = "secret_file", .type = YK_PATH, .off = WH(secret_file)},
    {.name = "secret_env", .type = YK_STR, .off = WH(secret_env)},
    {.name = "events", .type = YK_STRLIST, .off = WH(events)},
    {.name = "ca_file", .type = YK_PATH, .off = WH(ca_file)},
    {.name = "verify", .type = YK_BOOL, .off = WH(verify), .def = "true"},
    {.check = webhook_check},
};

static int notify_check(void *obj, const struct yt_node *map, struct yt_ctx *ctx)
{
    struct core_notify_cfg *c = obj;
    c->enabled = map != NULL;
    for (size_t i = 0; i < c->admins.n; i++)
        if (!core_notify_addr_ok(c->admins.v[i]))
            return yt_err(ctx, map, "admins: '%s' is not an e-mail address", c->admins.v[i]);
    for (size_t i = 0; i < c->cert_warn.n; i++) {
        int64_t ms;
        const char *why;
        if (units_parse_duration(c->cert_warn.v[i], &ms, &why) < 0 || ms <= 0)
            return yt_err(ctx, map, "cert_warn: '%s' is not a duration such as 30d",
                          c->cert_warn.v[i]);
    }
    for (size_t i = 0; i < c->n_webhooks; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->webhooks[i].name, c->webhooks[j].name) == 0)
                return yt_err(ctx, map, "webhooks: the name '%s' is used twice",
                              c->webhooks[i].name);
    if (c->retry_max_ms < c->retry_min_ms)
        return yt_err(ctx, map, "retry_max must not be below retry_min");
    return 0;
}

const struct yt_key core_notify_keys[] = {
    {.name = "templates", .type = YK_PATH, .off = NO(templates), .def = "notify"},
    {.name = "language", .type = YK_STR, .off = NO(language), .def = "en"},
    {.name = "site", .type = YK_STR, .off = NO(site), .def = "easgate"},
    {.name = "admins", .type = YK_STRLIST, .off = NO(admins)},
    {.name = "admin_events", .type = YK_STRLIST, .off = NO(admin_events)},
    {.name = "cert_warn", .type = YK_STRLIST, .off = NO(cert_warn)},
    {.name = "poll", .type = YK_DUR, .off = NO(poll_ms), .def = "1s", .min = 50, .max = 60 * SEC},
    {.name = "retry_min",
     .type = YK_DUR,
     .off = NO(retry_min_ms),
     .def = "30s",
     .min = 100,
     .max = DAY},
    {.name = "retry_max",
     .type = YK_DUR,
     .off = NO(retry_max_ms),
     .def = "1h",
     .min = 100,
     .max = DAY},
    {.name = "give_up",
     .type = YK_DUR,
     .off = NO(give_up_ms),
     .def = "3d",
     .min = SEC,
     .max = 30 * DAY},
    {.name = "rate_limit",
     .type = YK_INT,
     .off = NO(rate_limit),
     .def = "20",
     .min = 1,
     .max = 100000},
    {.name = "rate_window",
     .type = YK_DUR,
     .off = NO(rate_window_ms),
     .def = "1h",
     .min = SEC,
     .max = DAY},
    {.name = "digest",
     .type = YK_DUR,
     .off = NO(digest_ms),
     .def = "1d",
     .min = 0,
     .max = 30 * DAY},
    {.name = "keep",
     .type = YK_DUR,
     .off = NO(keep_ms),
     .def = "30d",
     .min = SEC,
     .max = 3650 * DAY},
    {.name = "smtp", .type = YK_MAP, .off = NO(smtp), .sub = smtp_keys},
    {.name = "webhooks",
     .type = YK_SEQ,
     .off = NO(webhooks),
     .off2 = NO(n_webhooks),
     .elem_size = sizeof(struct core_webhook_cfg),
     .sub = webhook_keys},
    {.check = notify_check},
};
