/*
 * core_notify: mails as RFC 5322 messages, and rows of the queue. See
 * notify.h.
 *
 * A message is built whole when it is queued (Date, Message-ID, the QR
 * image), so what sits in the registry is exactly what will be sent, and a
 * template changed later does not rewrite mail already promised. Bodies go
 * as base64 in UTF-8: Japanese text and long lines pass any relay, and
 * nothing in a value can end a header or the SMTP DATA.
 */
#include "core/notify_int.h"

#include "common/b64.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "core/reg.h"

#include <openssl/rand.h>
#include <sqlite3.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAIL_B64_LINE 76   /* RFC 2045: encoded lines at most 76 characters */
#define MAIL_WORD_BYTES 39 /* bytes per encoded-word: 52 base64 chars, a header line under 78 */
#define MAIL_ADDR_MAX 254  /* RFC 5321 path limit */

bool core_notify_addr_ok(const char *s)
{
    if (!s)
        return false;
    size_t n = strlen(s);
    const char *at = strrchr(s, '@');
    if (n < 3 || n > MAIL_ADDR_MAX || !at || at == s || !at[1] || strchr(s, '@') != at)
        return false;
    if (!strchr(at + 1, '.') && strcmp(at + 1, "localhost") != 0)
        return false;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        /* No spaces, controls, or what would make it a display name, a
         * route or a second recipient. */
        if (c <= 0x20 || c >= 0x7f || strchr("<>()[],;:\\\"", c))
            return false;
    }
    return at[1] != '.' && s[n - 1] != '.';
}

static bool ascii_plain(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

/* RFC 2047 B encoded-words, each whole UTF-8 characters, folded. */
static void put_words(struct sbuf *b, const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t k = n - i < MAIL_WORD_BYTES ? n - i : MAIL_WORD_BYTES;
        while (i + k < n && k > 0 && ((unsigned char)s[i + k] & 0xc0) == 0x80)
            k--; /* do not split a character */
        if (k == 0)
            k = 1;
        char enc[128];
        b64_encode(s + i, k, enc, sizeof(enc), 0, NULL);
        sbuf_printf(b, "%s=?UTF-8?B?%s?=", i ? "\r\n " : "", enc);
        i += k;
    }
}

static void put_b64(struct sbuf *b, const void *data, size_t len)
{
    char *enc = b64_encode_alloc(data, len, 0);
    if (!enc) {
        b->oom = true;
        return;
    }
    size_t n = strlen(enc);
    for (size_t i = 0; i < n; i += MAIL_B64_LINE) {
        sbuf_put(b, enc + i, n - i < MAIL_B64_LINE ? n - i : MAIL_B64_LINE);
        sbuf_str(b, "\r\n");
    }
    free(enc);
}

static void put_html(struct sbuf *b, const char *body)
{
    sbuf_str(b, "<!DOCTYPE html>\r\n<html><body><div style=\"white-space:pre-wrap;"
                "font-family:sans-serif\">");
    /* Line by line: LF becomes CRLF, as everywhere in the message. */
    for (const char *p = body; *p;) {
        size_t n = strcspn(p, "\n");
        sbuf_xml(b, p, n);
        p += n;
        if (*p == '\n') {
            sbuf_str(b, "\r\n");
            p++;
        }
    }
    sbuf_str(b, "</div>\r\n<p><img src=\"cid:qr@easgate\" alt=\"QR code\" width=\"240\" "
                "height=\"240\"></p></body></html>\r\n");
}

/* The body with CRLF line ends (templates are read with LF). */
static char *crlf(const char *s, size_t *len)
{
    struct sbuf b = SBUF_INIT;
    for (; *s; s++) {
        if (*s == '\n')
            sbuf_char(&b, '\r');
        sbuf_char(&b, *s);
    }
    return sbuf_take(&b, len);
}

char *core_mail_build(const struct core_notify_cfg *cfg, const char *to, const char *lang,
                      const char *subject, const char *body, const unsigned char *png,
                      size_t png_len, int64_t now_ms, size_t *len)
{
    unsigned char rnd[8];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return NULL;
    char tag[17];
    for (int i = 0; i < 8; i++)
        snprintf(tag + 2 * i, 3, "%02x", rnd[i]);
    const char *from = cfg->smtp.from ? cfg->smtp.from : "easgate@localhost";
    const char *domain = strrchr(from, '@') ? strrchr(from, '@') + 1 : "localhost";
    time_t t = (time_t)(now_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct sbuf b = SBUF_INIT;
    const char *site = cfg->site ? cfg->site : "easgate";
    if (ascii_plain(site) && !strpbrk(site, "\"\\")) {
        sbuf_printf(&b, "From: \"%s\" <%s>\r\n", site, from);
    } else {
        sbuf_str(&b, "From: ");
        put_words(&b, site);
        sbuf_printf(&b, "\r\n <%s>\r\n", from);
    }
    sbuf_printf(&b, "To: <%s>\r\nSubject: ", to);
    if (ascii_plain(subject) && strlen(subject) <= 70)
        sbuf_str(&b, subject);
    else
        put_words(&b, subject);
    sbuf_printf(&b,
                "\r\nDate: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n"
                "Message-ID: <%lld.%s@%s>\r\n"
                "MIME-Version: 1.0\r\n"
                "Auto-Submitted: auto-generated\r\n"
                "Content-Language: %s\r\n",
                days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
                tm.tm_min, tm.tm_sec, (long long)now_ms, tag, domain, lang);
    size_t blen;
    char *text = crlf(body, &blen);
    if (!text) {
        sbuf_free(&b);
        return NULL;
    }
    if (!png) {
        sbuf_str(&b, "Content-Type: text/plain; charset=UTF-8\r\n"
                     "Content-Transfer-Encoding: base64\r\n\r\n");
        put_b64(&b, text, blen);
    } else {
        /* The text, or the same as HTML with the QR code shown inline. */
        sbuf_printf(&b,
                    "Content-Type: multipart/alternative; boundary=\"=_eg_%s_a\"\r\n\r\n"
                    "This is a MIME message.\r\n"
                    "--=_eg_%s_a\r\n"
                    "Content-Type: text/plain; charset=UTF-8\r\n"
                    "Content-Transfer-Encoding: base64\r\n\r\n",
                    tag, tag);
        put_b64(&b, text, blen);
        sbuf_printf(&b,
                    "--=_eg_%s_a\r\n"
                    "Content-Type: multipart/related; type=\"text/html\";\r\n"
                    " boundary=\"=_eg_%s_r\"\r\n\r\n"
                    "--=_eg_%s_r\r\n"
                    "Content-Type: text/html; charset=UTF-8\r\n"
                    "Content-Transfer-Encoding: base64\r\n\r\n",
                    tag, tag, tag);
        struct sbuf h = SBUF_INIT;
        put_html(&h, body);
        put_b64(&b, h.p ? h.p : "", h.len);
        if (h.oom)
            b.oom = true;
        sbuf_free(&h);
        sbuf_printf(&b,
                    "--=_eg_%s_r\r\n"
                    "Content-Type: image/png; name=\"enroll-qr.png\"\r\n"
                    "Content-Transfer-Encoding: base64\r\n"
                    "Content-ID: <qr@easgate>\r\n"
                    "Content-Disposition: inline; filename=\"enroll-qr.png\"\r\n\r\n",
                    tag);
        put_b64(&b, png, png_len);
        sbuf_printf(&b, "--=_eg_%s_r--\r\n--=_eg_%s_a--\r\n", tag, tag);
    }
    free(text);
    return sbuf_take(&b, len);
}

int core_notify_put(sqlite3 *db, const char *channel, const char *target, const char *event,
                    const char *dedup, const void *body, size_t len, int64_t now_ms)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db,
                           "INSERT OR IGNORE INTO notify_queue(channel, target, event, dedup, "
                           "body, created_ms, next_ms) VALUES(?1,?2,?3,?4,?5,?6,?6)",
                           -1, &s, NULL) != SQLITE_OK)
        return CORE_NOTIFY_EDB;
    sqlite3_bind_text(s, 1, channel, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, target, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, event ? event : "", -1, SQLITE_STATIC);
    if (dedup)
        sqlite3_bind_text(s, 4, dedup, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 5, body, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, now_ms);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return CORE_NOTIFY_EDB;
    return sqlite3_changes(db) ? 0 : CORE_NOTIFY_EDUP;
}

int core_notify_mail(struct core_reg *reg, const struct core_notify_cfg *cfg,
                     const struct core_tpls *tpls, const struct core_mail *m, int64_t now_ms,
                     char *err, size_t errlen)
{
    if (!core_notify_addr_ok(m->to)) {
        eg_errf(err, errlen, "'%s' is not an address a mail can go to", m->to ? m->to : "");
        return CORE_NOTIFY_EINVAL;
    }
    const char *lang = core_tpls_lang(tpls, m->lang, cfg->language);
    char *subject = NULL, *body = NULL;
    int rc = core_tpls_render(tpls, lang, m->tpl, m->vars, m->n_vars, &subject, &body);
    if (rc < 0) {
        eg_errf(err, errlen, "the %s template could not be rendered", core_tpl_name(m->tpl));
        return rc;
    }
    size_t len = 0;
    char *msg = core_mail_build(cfg, m->to, lang, subject, body, m->png, m->png_len, now_ms, &len);
    free(subject);
    free(body);
    if (!msg) {
        eg_errf(err, errlen, "out of memory building a mail");
        return CORE_NOTIFY_ENOMEM;
    }
    rc = core_notify_put(core_reg_sqlite(reg), "mail", m->to,
                         m->event ? m->event : core_tpl_name(m->tpl), m->dedup, msg, len, now_ms);
    free(msg);
    if (rc == CORE_NOTIFY_EDB)
        eg_errf(err, errlen, "the notification queue could not be written: %s",
                sqlite3_errmsg(core_reg_sqlite(reg)));
    return rc;
}

/* ---- reading the queue ------------------------------------------------------- */

static void col_text(sqlite3_stmt *s, int i, char *out, size_t n)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    snprintf(out, n, "%s", t ? (const char *)t : "");
}

int core_notify_list(struct core_reg *reg, const char *state, int64_t before,
                     struct core_notify_row *out, size_t max, size_t *n)
{
    *n = 0;
    sqlite3 *db = core_reg_sqlite(reg);
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db,
                           "SELECT id, channel, target, event, state, attempts, created_ms, "
                           "next_ms, sent_ms, last_error FROM notify_queue "
                           "WHERE (?1 IS NULL OR state = ?1) AND (?2 = 0 OR id < ?2) "
                           "ORDER BY id DESC LIMIT ?3",
                           -1, &s, NULL) != SQLITE_OK)
        return CORE_NOTIFY_EDB;
    if (state)
        sqlite3_bind_text(s, 1, state, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, before);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)max);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < max) {
        struct core_notify_row *r = &out[(*n)++];
        r->id = sqlite3_column_int64(s, 0);
        col_text(s, 1, r->channel, sizeof(r->channel));
        col_text(s, 2, r->target, sizeof(r->target));
        col_text(s, 3, r->event, sizeof(r->event));
        col_text(s, 4, r->state, sizeof(r->state));
        r->attempts = sqlite3_column_int(s, 5);
        r->created_ms = sqlite3_column_int64(s, 6);
        r->next_ms = sqlite3_column_int64(s, 7);
        r->sent_ms = sqlite3_column_int64(s, 8);
        col_text(s, 9, r->last_error, sizeof(r->last_error));
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : CORE_NOTIFY_EDB;
}

int core_notify_counts(struct core_reg *reg, int64_t *queued, int64_t *sent, int64_t *failed)
{
    *queued = *sent = *failed = 0;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(core_reg_sqlite(reg),
                           "SELECT state, COUNT(*) FROM notify_queue GROUP BY state", -1, &s,
                           NULL) != SQLITE_OK)
        return CORE_NOTIFY_EDB;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *st = (const char *)sqlite3_column_text(s, 0);
        int64_t c = sqlite3_column_int64(s, 1);
        if (!st)
            continue;
        if (strcmp(st, "queued") == 0)
            *queued = c;
        else if (strcmp(st, "sent") == 0)
            *sent = c;
        else if (strcmp(st, "failed") == 0)
            *failed = c;
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? 0 : CORE_NOTIFY_EDB;
}
