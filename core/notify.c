/*
 * core_notify: the sender thread. See notify.h.
 *
 * Events come from the audit log rather than from calls sprinkled through
 * the writer, the API and enrollment: every change worth telling someone
 * about is audited already, in the transaction that made it. The sender
 * reads the rows after its cursor (meta 'notify_audit_id') and writes the
 * queue rows and the new cursor in one transaction of its own, so an event
 * is queued exactly once whatever stops when. Devices seen but not accepted
 * are not audited (they are not registry rows); the pending table is read
 * the same way with its own cursor, as the event "device.pending".
 *
 * Sending is one row at a time on this thread: a slow SMTP server delays
 * other notifications, never the core. Failures back off from retry_min,
 * doubling to retry_max, and give up after give_up (or at once on a
 * permanent refusal); the row stays, with its last error, for the console
 * and `easgate core notify` to show.
 */
#include "core/notify_int.h"

#include "common/log.h"
#include "common/promx.h"
#include "common/sbuf.h"
#include "common/units.h"
#include "core/ctx.h"
#include "core/dir.h"
#include "core/reg.h"

#include <jansson.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NT_AUDIT_BATCH 500     /* audit rows turned into queue rows per transaction */
#define NT_SEND_BATCH 32       /* due rows read per pass */
#define NT_SCAN_EVERY_MS 60000 /* certificates and old rows are looked at this often */
#define NT_SECRET_MAX 4096
#define NT_MAX_WARN 8

/* device.autoblock and proxy.auth-block: what the proxies' abuse counters
 * did (core/sight.c), which an admin wants to hear of without asking; and
 * proxy.upstream_down / _up: a mail server the proxies cannot reach. */
static const char *const default_admin_events[] = {
    "device.pending",     "device.block",      "device.wipe",         "device.wipe-ack",
    "device.autoblock",   "proxy.auth-block",  "core.redis_down",     "core.redis_up",
    "enroll.ca_expiring", "enroll.crl_failed", "proxy.upstream_down", "proxy.upstream_up"};
static const int64_t default_warn_ms[] = {30LL * 86400000, 7LL * 86400000, 86400000};

enum { CH_MAIL, CH_HOOK, CH_COUNT_ };
static struct {
    atomic_ullong queued[CH_COUNT_], sent[CH_COUNT_], failed[CH_COUNT_], retries[CH_COUNT_];
    atomic_llong depth, oldest_ms, failed_rows;
    atomic_int running;
} nm;

struct core_notify {
    const struct core_notify_cfg *cfg;
    struct core_reg *reg;
    sqlite3 *db;
    struct core_tpls *tpls; /* NULL = no smtp.url: no mail */
    struct core_dir *dir;   /* NULL = no core.directory */
    char *password;
    char **secrets;
    int64_t warn_ms[NT_MAX_WARN];
    size_t n_warn;
    int64_t next_scan_ms;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
};

/* ---- small helpers --------------------------------------------------------- */

static int exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

static int64_t meta_get(sqlite3 *db, const char *key, int64_t def)
{
    sqlite3_stmt *s;
    int64_t v = def;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?1", -1, &s, NULL) != SQLITE_OK)
        return def;
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

static int meta_set(sqlite3 *db, const char *key, int64_t v)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)", -1, &s,
                           NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, v);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

static void col(sqlite3_stmt *s, int i, char *out, size_t n)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    snprintf(out, n, "%s", t ? (const char *)t : "");
}

/* A secret from a file (its first line) or the environment; NULL if none. */
static char *read_secret(const char *file, const char *env, char *err, size_t errlen,
                         const char *what)
{
    if (env) {
        const char *v = getenv(env);
        if (!v || !*v) {
            snprintf(err, errlen, "%s: the environment variable %s is not set", what, env);
            return NULL;
        }
        return strdup(v);
    }
    FILE *f = fopen(file, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot read %s: %s", what, file, strerror(errno));
        return NULL;
    }
    char buf[NT_SECRET_MAX];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    buf[strcspn(buf, "\r\n")] = 0;
    if (!*buf) {
        snprintf(err, errlen, "%s: %s is empty", what, file);
        return NULL;
    }
    return strdup(buf);
}

static void iso_time(int64_t ms, char *out, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static bool listed(const struct yt_strv *v, const char *const *def, size_t ndef, const char *ev)
{
    if (v->n == 0 && !def)
        return true;
    const char *const *names = v->n ? v->v : def;
    size_t n = v->n ? v->n : ndef;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(names[i]);
        if (strcmp(names[i], ev) == 0 || strcmp(names[i], "*") == 0 ||
            (l >= 2 && names[i][l - 1] == '*' && strncmp(names[i], ev, l - 1) == 0))
            return true;
    }
    return false;
}

/* The address and language for a user: the newest invitation's, else the
 * directory's, else the name itself when it is an address. 0 or -1
 * (nowhere to write). */
static int user_address(struct core_notify *n, const char *user, char *email, size_t en, char *lang,
                        size_t ln)
{
    sqlite3 *db = n->db;
    *email = *lang = 0;
    sqlite3_stmt *s;
    if (*user && sqlite3_prepare_v2(db,
                                    "SELECT email, lang FROM enroll_invitations WHERE user = ?1 "
                                    "ORDER BY id DESC LIMIT 1",
                                    -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_text(s, 1, user, -1, SQLITE_STATIC);
        if (sqlite3_step(s) == SQLITE_ROW) {
            col(s, 0, email, en);
            col(s, 1, lang, ln);
        }
        sqlite3_finalize(s);
    }
    struct core_dir_user du;
    char e[256];
    if (n->dir && *user && core_dir_lookup(n->dir, user, core_now_ms(), &du, e, sizeof(e)) == 0) {
        if (!*email)
            snprintf(email, en, "%s", du.mail);
        if (!*lang)
            snprintf(lang, ln, "%s", du.lang);
    }
    if (!*email && core_notify_addr_ok(user))
        snprintf(email, en, "%s", user);
    return core_notify_addr_ok(email) ? 0 : -1;
}

/* ---- events into queue rows -------------------------------------------------- */

struct nt_event {
    int64_t id; /* audit id; 0 for device.pending */
    int64_t at_ms;
    char actor[256], address[64], action[64], target[256], detail[512];
};

static void queue_hooks(struct core_notify *n, const struct nt_event *e, const char *user,
                        int64_t now_ms, const char *dedup_base)
{
    const struct core_notify_cfg *cfg = n->cfg;
    char when[32];
    iso_time(e->at_ms, when, sizeof(when));
    for (size_t i = 0; i < cfg->n_webhooks; i++) {
        const struct core_webhook_cfg *w = &cfg->webhooks[i];
        if (!listed(&w->events, NULL, 0, e->action))
            continue;
        json_t *j =
            json_pack("{s:s, s:I, s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:s}", "event", e->action,
                      "id", (json_int_t)e->id, "time", when, "at_ms", (json_int_t)e->at_ms, "actor",
                      e->actor, "address", e->address, "target", e->target, "detail", e->detail,
                      "user", user, "site", cfg->site);
        char *body = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(j);
        if (!body)
            continue;
        char dedup[400];
        snprintf(dedup, sizeof(dedup), "hook:%s:%s", w->name, dedup_base);
        if (core_notify_put(n->db, "webhook", w->name, e->action, dedup, body, strlen(body),
                            now_ms) == 0)
            atomic_fetch_add_explicit(&nm.queued[CH_HOOK], 1, memory_order_relaxed);
        free(body);
    }
}

static void queue_mail(struct core_notify *n, const struct core_mail *m, int64_t now_ms)
{
    char err[256];
    int rc = core_notify_mail(n->reg, n->cfg, n->tpls, m, now_ms, err, sizeof(err));
    if (rc == 0)
        atomic_fetch_add_explicit(&nm.queued[CH_MAIL], 1, memory_order_relaxed);
    else if (rc != CORE_NOTIFY_EDUP)
        eg_warn("notify: %s: %s", m->event, err);
}

bool core_notify_admin_event(const struct core_notify_cfg *cfg, const char *event)
{
    return listed(&cfg->admin_events, default_admin_events,
                  sizeof(default_admin_events) / sizeof(default_admin_events[0]), event);
}

static void queue_admins(struct core_notify *n, const struct nt_event *e, int64_t now_ms,
                         const char *dedup_base)
{
    const struct core_notify_cfg *cfg = n->cfg;
    if (!n->tpls || !core_notify_admin_event(cfg, e->action))
        return;
    char when[32];
    iso_time(e->at_ms, when, sizeof(when));
    struct core_var v[] = {{"site", cfg->site},     {"event", e->action},  {"actor", e->actor},
                           {"address", e->address}, {"target", e->target}, {"detail", e->detail},
                           {"time", when}};
    for (size_t i = 0; i < cfg->admins.n; i++) {
        char dedup[400];
        snprintf(dedup, sizeof(dedup), "admin:%s:%s", cfg->admins.v[i], dedup_base);
        struct core_mail m = {.to = cfg->admins.v[i],
                              .lang = cfg->language,
                              .tpl = CORE_TPL_ADMIN_EVENT,
                              .vars = v,
                              .n_vars = sizeof(v) / sizeof(v[0]),
                              .event = e->action,
                              .dedup = dedup};
        queue_mail(n, &m, now_ms);
    }
}

/* Which user mail an audit row means, if any, and the reason to show. A
 * state the rules changed is "device.state"; an admin's override is its
 * own action. */
static int user_template(const struct nt_event *e, char *reason, size_t rn)
{
    *reason = 0;
    if (strcmp(e->action, "device.wipe-ack") == 0)
        return CORE_TPL_WIPED;
    if (strcmp(e->action, "device.manage") == 0 && strcmp(e->actor, "enroll") == 0)
        return CORE_TPL_ENROLLED;
    /* An admin's action carries its note as the reason. */
    static const struct {
        const char *action;
        int tpl;
    } acts[] = {{"device.quarantine", CORE_TPL_QUARANTINED},
                {"device.block", CORE_TPL_BLOCKED},
                {"device.allow", CORE_TPL_APPROVED},
                {"device.approve", CORE_TPL_APPROVED}};
    for (size_t i = 0; i < sizeof(acts) / sizeof(acts[0]); i++)
        if (strcmp(e->action, acts[i].action) == 0) {
            snprintf(reason, rn, "%.*s", (int)(rn - 1), e->detail);
            return acts[i].tpl;
        }
    if (strcmp(e->action, "device.state") != 0)
        return -1;
    /* "cause: old (reason) -> new (reason)" (core/eng.c) */
    const char *arrow = strstr(e->detail, " -> ");
    if (!arrow)
        return -1;
    const char *to = arrow + 4, *paren = strchr(to, '(');
    if (paren) {
        size_t l = strcspn(paren + 1, ")");
        snprintf(reason, rn, "%.*s", (int)l, paren + 1);
    }
    if (strncmp(to, "quarantine ", 11) == 0)
        return CORE_TPL_QUARANTINED;
    if (strncmp(to, "block ", 6) == 0)
        return CORE_TPL_BLOCKED;
    const char *colon = strstr(e->detail, ": ");
    if (strncmp(to, "allow ", 6) == 0 && colon && strncmp(colon + 2, "quarantine ", 11) == 0)
        return CORE_TPL_APPROVED;
    return -1;
}

static void handle_event(struct core_notify *n, const struct nt_event *e, int64_t now_ms)
{
    char base[300];
    if (e->id)
        snprintf(base, sizeof(base), "audit:%lld", (long long)e->id);
    else
        snprintf(base, sizeof(base), "pending:%s:%lld", e->target, (long long)e->at_ms);
    struct core_device d;
    bool dev =
        strncmp(e->action, "device.", 7) == 0 && core_reg_device_get(n->reg, e->target, &d) == 0;
    queue_hooks(n, e, dev ? d.user : "", now_ms, base);
    queue_admins(n, e, now_ms, base);
    char reason[CORE_REASON_MAX];
    int tpl = user_template(e, reason, sizeof(reason));
    if (tpl < 0 || !dev || !n->tpls)
        return;
    char email[256], lang[16], when[32];
    if (user_address(n, d.user, email, sizeof(email), lang, sizeof(lang)) < 0)
        return; /* nobody to tell: the webhook and the admins still hear of it */
    iso_time(e->at_ms, when, sizeof(when));
    struct core_var v[] = {{"site", n->cfg->site},
                           {"user", d.user},
                           {"email", email},
                           {"device_id", d.device_id},
                           {"device_type", d.device_type},
                           {"model", d.model},
                           {"reason", reason},
                           {"time", when}};
    char dedup[400];
    snprintf(dedup, sizeof(dedup), "user:%s", base);
    struct core_mail m = {.to = email,
                          .lang = lang,
                          .tpl = (enum core_tpl)tpl,
                          .vars = v,
                          .n_vars = sizeof(v) / sizeof(v[0]),
                          .event = e->action,
                          .dedup = dedup};
    queue_mail(n, &m, now_ms);
}

/* New audit rows and pending devices into the queue, cursor and rows in one
 * transaction. */
/* Whether anything is past the cursors: a read, so an idle poll never takes
 * the registry's write lock from the writer. */
static bool events_waiting(struct core_notify *n)
{
    sqlite3_stmt *s;
    bool any = true;
    if (sqlite3_prepare_v2(n->db,
                           "SELECT (SELECT COALESCE(MAX(id), 0) FROM audit) > (SELECT value FROM "
                           "meta WHERE key = 'notify_audit_id') OR (SELECT COALESCE(MAX(first_ms), "
                           "0) FROM pending_devices) > (SELECT value FROM meta WHERE key = "
                           "'notify_pending_ms')",
                           -1, &s, NULL) != SQLITE_OK)
        return true;
    if (sqlite3_step(s) == SQLITE_ROW)
        any = sqlite3_column_int(s, 0) != 0;
    sqlite3_finalize(s);
    return any;
}

static void scan_events(struct core_notify *n, int64_t now_ms)
{
    if (!events_waiting(n) || exec(n->db, "BEGIN IMMEDIATE") < 0)
        return;
    int64_t cur = meta_get(n->db, "notify_audit_id", 0);
    int64_t pend = meta_get(n->db, "notify_pending_ms", 0);
    sqlite3_stmt *s;
    struct nt_event e;
    if (sqlite3_prepare_v2(n->db,
                           "SELECT id, at_ms, actor, address, action, target, detail FROM audit "
                           "WHERE id > ?1 ORDER BY id LIMIT ?2",
                           -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, cur);
        sqlite3_bind_int(s, 2, NT_AUDIT_BATCH);
        while (sqlite3_step(s) == SQLITE_ROW) {
            memset(&e, 0, sizeof(e));
            e.id = cur = sqlite3_column_int64(s, 0);
            e.at_ms = sqlite3_column_int64(s, 1);
            col(s, 2, e.actor, sizeof(e.actor));
            col(s, 3, e.address, sizeof(e.address));
            col(s, 4, e.action, sizeof(e.action));
            col(s, 5, e.target, sizeof(e.target));
            col(s, 6, e.detail, sizeof(e.detail));
            handle_event(n, &e, now_ms);
        }
        sqlite3_finalize(s);
    }
    if (sqlite3_prepare_v2(n->db,
                           "SELECT device_id, user, device_type, user_agent, client_addr, "
                           "first_ms FROM pending_devices WHERE first_ms > ?1 ORDER BY first_ms "
                           "LIMIT ?2",
                           -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, pend);
        sqlite3_bind_int(s, 2, NT_AUDIT_BATCH);
        while (sqlite3_step(s) == SQLITE_ROW) {
            memset(&e, 0, sizeof(e));
            snprintf(e.action, sizeof(e.action), "device.pending");
            snprintf(e.actor, sizeof(e.actor), "proxy");
            col(s, 0, e.target, sizeof(e.target));
            col(s, 4, e.address, sizeof(e.address));
            char u[256], t[64], a[160];
            col(s, 1, u, sizeof(u));
            col(s, 2, t, sizeof(t));
            col(s, 3, a, sizeof(a));
            snprintf(e.detail, sizeof(e.detail),
                     "user %.100s, type %.60s, agent %.150s: waiting for approval", u, t, a);
            e.at_ms = pend = sqlite3_column_int64(s, 5);
            handle_event(n, &e, now_ms);
        }
        sqlite3_finalize(s);
    }
    if (meta_set(n->db, "notify_audit_id", cur) < 0 ||
        meta_set(n->db, "notify_pending_ms", pend) < 0 || exec(n->db, "COMMIT") < 0) {
        eg_warn("notify: cannot store the event cursor: %s", sqlite3_errmsg(n->db));
        exec(n->db, "ROLLBACK");
    }
}

/* Warn each certificate's user once per lead time, the shortest that applies. */
static void scan_certs(struct core_notify *n, int64_t now_ms)
{
    if (!n->tpls || !n->n_warn)
        return;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(n->db,
                           "SELECT c.serial, c.device_id, c.user, c.not_after_ms, "
                           "COALESCE(d.device_type, ''), COALESCE(d.model, ''), c.not_before_ms "
                           "FROM enroll_certs c "
                           "LEFT JOIN devices d ON d.device_id = c.device_id WHERE "
                           "c.revoked_ms = 0 AND c.not_after_ms > ?1 AND c.not_after_ms <= ?2",
                           -1, &s, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_int64(s, 1, now_ms);
    sqlite3_bind_int64(s, 2, now_ms + n->warn_ms[0]);
    while (sqlite3_step(s) == SQLITE_ROW) {
        char serial[80], dev[160], user[256], type[64], model[128], email[256], lang[16];
        col(s, 0, serial, sizeof(serial));
        col(s, 1, dev, sizeof(dev));
        col(s, 2, user, sizeof(user));
        int64_t na = sqlite3_column_int64(s, 3);
        col(s, 4, type, sizeof(type));
        col(s, 5, model, sizeof(model));
        int64_t nb = sqlite3_column_int64(s, 6), lead = 0;
        /* A lead time longer than the certificate's life would warn the
         * moment it is issued: only leads it lived through count. */
        for (size_t i = 0; i < n->n_warn; i++)
            if (na - now_ms <= n->warn_ms[i] && na - n->warn_ms[i] > nb)
                lead = n->warn_ms[i];
        if (!lead || user_address(n, user, email, sizeof(email), lang, sizeof(lang)) < 0)
            continue;
        char when[32], days[16], dedup[200];
        iso_time(na, when, sizeof(when));
        snprintf(days, sizeof(days), "%lld", (long long)((na - now_ms + 86399999) / 86400000));
        snprintf(dedup, sizeof(dedup), "cert:%s:%lld", serial, (long long)lead);
        struct core_var v[] = {{"site", n->cfg->site}, {"user", user},        {"email", email},
                               {"device_id", dev},     {"device_type", type}, {"model", model},
                               {"reason", ""},         {"time", when},        {"serial", serial},
                               {"not_after", when},    {"days", days}};
        struct core_mail m = {.to = email,
                              .lang = lang,
                              .tpl = CORE_TPL_CERT_EXPIRING,
                              .vars = v,
                              .n_vars = sizeof(v) / sizeof(v[0]),
                              .event = "enroll.cert_expiring",
                              .dedup = dedup};
        queue_mail(n, &m, now_ms);
    }
    sqlite3_finalize(s);
}

/* Rows sent or given up on longer ago than keep are dropped (their dedup key with them). */
static void purge(struct core_notify *n, int64_t now_ms)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(n->db,
                           "DELETE FROM notify_queue WHERE state != 'queued' AND next_ms < ?1", -1,
                           &s, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_int64(s, 1, now_ms - n->cfg->keep_ms);
    sqlite3_step(s);
    sqlite3_finalize(s);
}

/*
 * The admins' digest: once a period (digest_ms, aligned to the epoch, so a
 * day's ends at midnight UTC), what the audit log recorded in the period
 * that ended, by event, with the devices waiting for approval and the
 * notifications given up on. The period is remembered in meta with the
 * queue rows, so a restart neither repeats nor skips one; a first start
 * only begins counting.
 */
static void digest(struct core_notify *n, int64_t now_ms)
{
    const struct core_notify_cfg *cfg = n->cfg;
    if (!cfg->digest_ms || !cfg->admins.n || !n->tpls)
        return;
    int64_t period = now_ms / cfg->digest_ms, last = meta_get(n->db, "notify_digest_period", -1);
    if (period == last)
        return;
    if (exec(n->db, "BEGIN IMMEDIATE") < 0)
        return;
    if (last >= 0) {
        int64_t from = (period - 1) * cfg->digest_ms, to = period * cfg->digest_ms;
        struct sbuf b = SBUF_INIT;
        sqlite3_stmt *s;
        size_t events = 0;
        if (sqlite3_prepare_v2(n->db,
                               "SELECT action, COUNT(*) FROM audit WHERE at_ms >= ?1 AND at_ms < "
                               "?2 GROUP BY action ORDER BY 2 DESC, 1 LIMIT 50",
                               -1, &s, NULL) == SQLITE_OK) {
            sqlite3_bind_int64(s, 1, from);
            sqlite3_bind_int64(s, 2, to);
            while (sqlite3_step(s) == SQLITE_ROW) {
                sbuf_printf(&b, "  %-28s %lld\n", (const char *)sqlite3_column_text(s, 0),
                            (long long)sqlite3_column_int64(s, 1));
                events++;
            }
            sqlite3_finalize(s);
        }
        if (!events)
            sbuf_str(&b, "  (no events)\n");
        static const struct {
            const char *label, *sql;
        } extra[] = {
            {"devices waiting for approval", "SELECT COUNT(*) FROM pending_devices"},
            {"notifications given up on",
             "SELECT COUNT(*) FROM notify_queue WHERE state = 'failed' AND next_ms >= ?1 AND "
             "next_ms < ?2"},
        };
        for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++)
            if (sqlite3_prepare_v2(n->db, extra[i].sql, -1, &s, NULL) == SQLITE_OK) {
                if (sqlite3_bind_parameter_count(s) == 2) {
                    sqlite3_bind_int64(s, 1, from);
                    sqlite3_bind_int64(s, 2, to);
                }
                if (sqlite3_step(s) == SQLITE_ROW)
                    sbuf_printf(&b, "%s: %lld\n", extra[i].label,
                                (long long)sqlite3_column_int64(s, 0));
                sqlite3_finalize(s);
            }
        char f[32], t[32], per[80];
        iso_time(from, f, sizeof(f));
        iso_time(to, t, sizeof(t));
        snprintf(per, sizeof(per), "%s - %s", f, t);
        struct core_var v[] = {
            {"site", cfg->site}, {"period", per}, {"summary", b.p ? b.p : ""}, {"time", t}};
        for (size_t i = 0; i < cfg->admins.n; i++) {
            char dedup[400];
            snprintf(dedup, sizeof(dedup), "digest:%lld:%s", (long long)period, cfg->admins.v[i]);
            struct core_mail m = {.to = cfg->admins.v[i],
                                  .lang = cfg->language,
                                  .tpl = CORE_TPL_DIGEST,
                                  .vars = v,
                                  .n_vars = sizeof(v) / sizeof(v[0]),
                                  .event = "digest",
                                  .dedup = dedup};
            queue_mail(n, &m, now_ms);
        }
        sbuf_free(&b);
    }
    if (meta_set(n->db, "notify_digest_period", period) < 0 || exec(n->db, "COMMIT") < 0)
        exec(n->db, "ROLLBACK");
}

/* ---- sending ----------------------------------------------------------------- */

static void row_update(struct core_notify *n, int64_t id, const char *state, int64_t next_ms,
                       int attempts, const char *error, bool drop_body)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(n->db,
                           "UPDATE notify_queue SET state = ?2, next_ms = ?3, attempts = ?4, "
                           "last_error = ?5, sent_ms = CASE WHEN ?2 = 'sent' THEN ?3 ELSE sent_ms "
                           "END, body = CASE WHEN ?6 THEN x'' ELSE body END WHERE id = ?1",
                           -1, &s, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_text(s, 2, state, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, next_ms);
    sqlite3_bind_int(s, 4, attempts);
    sqlite3_bind_text(s, 5, error, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 6, drop_body);
    if (sqlite3_step(s) != SQLITE_DONE)
        eg_warn("notify: cannot update queue row %lld: %s", (long long)id, sqlite3_errmsg(n->db));
    sqlite3_finalize(s);
}

/* When recipient may get the next mail: 0 = now. */
static int64_t rate_wait(struct core_notify *n, const char *to, int64_t now_ms)
{
    sqlite3_stmt *s;
    int64_t until = 0;
    if (sqlite3_prepare_v2(
            n->db,
            "SELECT COUNT(*), MIN(sent_ms) FROM notify_queue WHERE channel = 'mail' "
            "AND target = ?1 AND state = 'sent' AND sent_ms > ?2 AND event != 'digest'",
            -1, &s, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(s, 1, to, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, now_ms - n->cfg->rate_window_ms);
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int64(s, 0) >= n->cfg->rate_limit)
        until = sqlite3_column_int64(s, 1) + n->cfg->rate_window_ms + 1;
    sqlite3_finalize(s);
    return until;
}

static int64_t backoff(const struct core_notify_cfg *cfg, int attempts)
{
    int64_t d = cfg->retry_min_ms;
    for (int i = 1; i < attempts && d < cfg->retry_max_ms; i++)
        d *= 2;
    return d < cfg->retry_max_ms ? d : cfg->retry_max_ms;
}

static void send_one(struct core_notify *n, int64_t id, const char *channel, const char *target,
                     const char *event, const void *body, size_t len, int attempts,
                     int64_t created_ms)
{
    const struct core_notify_cfg *cfg = n->cfg;
    int64_t now = core_now_ms();
    int ch = strcmp(channel, "mail") == 0 ? CH_MAIL : CH_HOOK;
    char err[512] = "";
    bool permanent = false;
    int rc = -1;
    if (ch == CH_MAIL) {
        if (!cfg->smtp.url) {
            row_update(n, id, "queued", now + cfg->retry_max_ms, attempts,
                       "core.notify.smtp.url is not configured", false);
            return;
        }
        /* The digest is one mail a period by construction: never held back. */
        int64_t until = strcmp(event, "digest") == 0 ? 0 : rate_wait(n, target, now);
        if (until > now) {
            row_update(n, id, "queued", until, attempts, "held back: recipient rate limit", false);
            return;
        }
        rc = core_smtp_send(cfg, n->password, target, body, len, &permanent, err, sizeof(err));
    } else {
        size_t w = 0;
        while (w < cfg->n_webhooks && strcmp(cfg->webhooks[w].name, target) != 0)
            w++;
        if (w == cfg->n_webhooks) {
            snprintf(err, sizeof(err), "webhook '%s' is no longer configured", target);
            permanent = true;
        } else {
            rc = core_webhook_send(&cfg->webhooks[w], n->secrets[w], event, id, body, len, now,
                                   &permanent, err, sizeof(err));
        }
    }
    now = core_now_ms();
    attempts++;
    if (rc == 0) {
        row_update(n, id, "sent", now, attempts, "", true);
        atomic_fetch_add_explicit(&nm.sent[ch], 1, memory_order_relaxed);
        return;
    }
    if (permanent || now - created_ms >= cfg->give_up_ms) {
        eg_warn("notify: giving up on %s %lld to %s after %d attempts: %s", channel, (long long)id,
                target, attempts, err);
        row_update(n, id, "failed", now, attempts, err, false);
        atomic_fetch_add_explicit(&nm.failed[ch], 1, memory_order_relaxed);
        return;
    }
    int64_t next = now + backoff(cfg, attempts);
    eg_warn("notify: %s %lld to %s failed (attempt %d), retrying in %lld ms: %s", channel,
            (long long)id, target, attempts, (long long)(next - now), err);
    row_update(n, id, "queued", next, attempts, err, false);
    atomic_fetch_add_explicit(&nm.retries[ch], 1, memory_order_relaxed);
}

/* Send what is due; the number of rows looked at. */
static int send_due(struct core_notify *n)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(n->db,
                           "SELECT id, channel, target, event, body, attempts, created_ms FROM "
                           "notify_queue WHERE state = 'queued' AND next_ms <= ?1 "
                           "ORDER BY next_ms, id LIMIT ?2",
                           -1, &s, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_int64(s, 1, core_now_ms());
    sqlite3_bind_int(s, 2, NT_SEND_BATCH);
    /* Copy the batch out first: sending updates rows the statement reads. */
    struct row {
        int64_t id, created_ms;
        int attempts;
        char channel[16], target[256], event[64];
        void *body;
        size_t len;
    } rows[NT_SEND_BATCH];
    int k = 0;
    while (k < NT_SEND_BATCH && sqlite3_step(s) == SQLITE_ROW) {
        struct row *r = &rows[k];
        r->id = sqlite3_column_int64(s, 0);
        col(s, 1, r->channel, sizeof(r->channel));
        col(s, 2, r->target, sizeof(r->target));
        col(s, 3, r->event, sizeof(r->event));
        r->len = (size_t)sqlite3_column_bytes(s, 4);
        r->body = malloc(r->len + 1);
        if (!r->body)
            break;
        if (r->len)
            memcpy(r->body, sqlite3_column_blob(s, 4), r->len);
        ((char *)r->body)[r->len] = 0;
        r->attempts = sqlite3_column_int(s, 5);
        r->created_ms = sqlite3_column_int64(s, 6);
        k++;
    }
    sqlite3_finalize(s);
    for (int i = 0; i < k; i++) {
        bool stop;
        pthread_mutex_lock(&n->mu);
        stop = n->stop;
        pthread_mutex_unlock(&n->mu);
        if (!stop)
            send_one(n, rows[i].id, rows[i].channel, rows[i].target, rows[i].event, rows[i].body,
                     rows[i].len, rows[i].attempts, rows[i].created_ms);
        free(rows[i].body);
    }
    return k;
}

static void gauges(struct core_notify *n, int64_t now_ms)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(n->db,
                           "SELECT COUNT(*), COALESCE(MIN(created_ms), 0), "
                           "(SELECT COUNT(*) FROM notify_queue WHERE state = 'failed') "
                           "FROM notify_queue WHERE state = 'queued'",
                           -1, &s, NULL) != SQLITE_OK)
        return;
    if (sqlite3_step(s) == SQLITE_ROW) {
        atomic_store(&nm.depth, sqlite3_column_int64(s, 0));
        int64_t oldest = sqlite3_column_int64(s, 1);
        atomic_store(&nm.oldest_ms, oldest ? now_ms - oldest : 0);
        atomic_store(&nm.failed_rows, sqlite3_column_int64(s, 2));
    }
    sqlite3_finalize(s);
}

static void *notify_main(void *arg)
{
    struct core_notify *n = arg;
    for (;;) {
        pthread_mutex_lock(&n->mu);
        bool stop = n->stop;
        pthread_mutex_unlock(&n->mu);
        if (stop)
            break;
        int64_t now = core_now_ms();
        scan_events(n, now);
        digest(n, now);
        if (now >= n->next_scan_ms) {
            scan_certs(n, now);
            purge(n, now);
            n->next_scan_ms = now + NT_SCAN_EVERY_MS;
        }
        int sent = send_due(n);
        gauges(n, core_now_ms());
        if (sent == NT_SEND_BATCH)
            continue; /* more is due: no sleep */
        pthread_mutex_lock(&n->mu);
        if (!n->stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t ns = ts.tv_nsec + (n->cfg->poll_ms % 1000) * 1000000;
            ts.tv_sec += n->cfg->poll_ms / 1000 + ns / 1000000000;
            ts.tv_nsec = ns % 1000000000;
            pthread_cond_timedwait(&n->cv, &n->mu, &ts);
        }
        pthread_mutex_unlock(&n->mu);
    }
    return NULL;
}

static void notify_free(struct core_notify *n)
{
    if (!n)
        return;
    core_reg_close(n->reg);
    core_tpls_free(n->tpls);
    core_dir_close(n->dir);
    free(n->password);
    for (size_t i = 0; n->secrets && i < n->cfg->n_webhooks; i++)
        free(n->secrets[i]);
    free(n->secrets);
    free(n);
}

int core_notify_start(const struct core_notify_cfg *cfg, const struct core_dir_cfg *dir,
                      const char *database, struct core_notify **out, char *err, size_t errlen)
{
    *out = NULL;
    struct core_notify *n = calloc(1, sizeof(*n));
    if (!n)
        return CORE_NOTIFY_ENOMEM;
    n->cfg = cfg;
    int rc = 0;
    n->secrets = calloc(cfg->n_webhooks + 1, sizeof(char *));
    if (!n->secrets)
        rc = CORE_NOTIFY_ENOMEM;
    for (size_t i = 0; rc == 0 && i < cfg->n_webhooks; i++) {
        char what[300];
        snprintf(what, sizeof(what), "core.notify.webhooks '%s'", cfg->webhooks[i].name);
        n->secrets[i] = read_secret(cfg->webhooks[i].secret_file, cfg->webhooks[i].secret_env, err,
                                    errlen, what);
        if (!n->secrets[i])
            rc = CORE_NOTIFY_EINVAL;
    }
    if (rc == 0 && cfg->smtp.url) {
        rc = core_tpls_load(cfg->templates, &n->tpls, err, errlen);
        if (rc == 0 && (cfg->smtp.password_file || cfg->smtp.password_env) &&
            !(n->password = read_secret(cfg->smtp.password_file, cfg->smtp.password_env, err,
                                        errlen, "core.notify.smtp")))
            rc = CORE_NOTIFY_EINVAL;
    }
    if (rc == 0 && dir && n->tpls && core_dir_open(dir, &n->dir, err, errlen) < 0)
        rc = CORE_NOTIFY_EINVAL;
    for (size_t i = 0; i < cfg->cert_warn.n && i < NT_MAX_WARN; i++) {
        const char *why;
        units_parse_duration(cfg->cert_warn.v[i], &n->warn_ms[n->n_warn++], &why);
    }
    if (!cfg->cert_warn.n)
        for (size_t i = 0; i < sizeof(default_warn_ms) / sizeof(default_warn_ms[0]); i++)
            n->warn_ms[n->n_warn++] = default_warn_ms[i];
    /* Longest first: scan_certs reads warn_ms[0] as the horizon. */
    for (size_t i = 0; i < n->n_warn; i++)
        for (size_t j = i + 1; j < n->n_warn; j++)
            if (n->warn_ms[j] > n->warn_ms[i]) {
                int64_t t = n->warn_ms[i];
                n->warn_ms[i] = n->warn_ms[j];
                n->warn_ms[j] = t;
            }
    char e2[512];
    if (rc == 0 && core_reg_open(database, &n->reg, e2, sizeof(e2)) < 0) {
        snprintf(err, errlen, "notify: %s", e2);
        rc = CORE_NOTIFY_EDB;
    }
    if (rc < 0) {
        notify_free(n);
        return rc;
    }
    n->db = core_reg_sqlite(n->reg);
    /* The cursors start where schema 10 found the audit log; a registry
     * without them (edited by hand) starts now rather than with the past. */
    if (meta_get(n->db, "notify_audit_id", -1) < 0) {
        sqlite3_stmt *s;
        int64_t max = 0;
        if (sqlite3_prepare_v2(n->db, "SELECT COALESCE(MAX(id), 0) FROM audit", -1, &s, NULL) ==
            SQLITE_OK) {
            if (sqlite3_step(s) == SQLITE_ROW)
                max = sqlite3_column_int64(s, 0);
            sqlite3_finalize(s);
        }
        meta_set(n->db, "notify_audit_id", max);
        meta_set(n->db, "notify_pending_ms", core_now_ms());
    }
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cv, NULL);
    if (pthread_create(&n->th, NULL, notify_main, n) != 0) {
        snprintf(err, errlen, "notify: cannot start the sender thread");
        pthread_mutex_destroy(&n->mu);
        pthread_cond_destroy(&n->cv);
        notify_free(n);
        return CORE_NOTIFY_ENOMEM;
    }
    atomic_store(&nm.running, 1);
    eg_info("notify: sender running (mail %s, %zu webhooks)", cfg->smtp.url ? cfg->smtp.url : "off",
            cfg->n_webhooks);
    *out = n;
    return 0;
}

void core_notify_stop(struct core_notify *n)
{
    if (!n)
        return;
    pthread_mutex_lock(&n->mu);
    n->stop = true;
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->mu);
    pthread_join(n->th, NULL);
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->cv);
    atomic_store(&nm.running, 0);
    notify_free(n);
}

int core_notify_metrics(char *buf, size_t n, size_t *len)
{
    if (!atomic_load(&nm.running))
        return 0;
    static const char *const chs[] = {"mail", "webhook"};
    /* The four counters by channel: name, help, values. */
    const struct {
        const char *name, *help;
        atomic_ullong *v;
    } fam[] = {
        {"queued", "Notifications queued by the sender, by channel.", nm.queued},
        {"sent", "Notifications delivered, by channel.", nm.sent},
        {"retries", "Failed attempts that will be retried, by channel.", nm.retries},
        {"failed", "Notifications given up on, by channel.", nm.failed},
    };
    int rc = 0;
    for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
        rc |= promx_put(buf, n, len,
                        "# HELP easgate_core_notify_%s_total %s\n"
                        "# TYPE easgate_core_notify_%s_total counter\n",
                        fam[f].name, fam[f].help, fam[f].name);
        for (int c = 0; c < CH_COUNT_; c++)
            rc |= promx_put(buf, n, len, "easgate_core_notify_%s_total{channel=\"%s\"} %llu\n",
                            fam[f].name, chs[c], (unsigned long long)atomic_load(&fam[f].v[c]));
    }
    rc |= promx_put(buf, n, len,
                    "# HELP easgate_core_notify_queue_depth Notifications waiting to be sent.\n"
                    "# TYPE easgate_core_notify_queue_depth gauge\n"
                    "easgate_core_notify_queue_depth %lld\n"
                    "# HELP easgate_core_notify_oldest_seconds Age of the oldest notification "
                    "waiting.\n"
                    "# TYPE easgate_core_notify_oldest_seconds gauge\n"
                    "easgate_core_notify_oldest_seconds %.3f\n"
                    "# HELP easgate_core_notify_failed_rows Notifications given up on and still "
                    "kept in the registry (a restart does not reset it).\n"
                    "# TYPE easgate_core_notify_failed_rows gauge\n"
                    "easgate_core_notify_failed_rows %lld\n",
                    (long long)atomic_load(&nm.depth), (double)atomic_load(&nm.oldest_ms) / 1000.0,
                    (long long)atomic_load(&nm.failed_rows));
    return rc ? -1 : 0;
}
