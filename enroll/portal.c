/*
 * enr_portal: the invitation link's pages. See portal.h for what they do.
 *
 * Why server-rendered HTML and no script: the page has one form and three
 * outcomes, all of which a plain form expresses; without script the CSP is
 * "default-src 'none'" plus our own stylesheet, the page works in every
 * phone browser and in mail apps' built-in viewers, and it is testable
 * with curl. The downloads are links to short-lived tokens rather than
 * data: URIs because iOS installs a profile only from a real download.
 */
#include "enroll/portal.h"

#include "common/backoff.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "enroll/err.h"
#include "enroll/key.h"
#include "enroll/msg.h"

#include <openssl/crypto.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DOWNLOAD_MS (10 * 60 * 1000LL) /* a download link works this long */
#define DOWNLOAD_SLOTS 256             /* downloads kept at once; the oldest goes first */
#define TOKEN_CHARS 26                 /* 130 random bits */
#define PORTAL_KEYS 4096               /* addresses and keys the rate limit keeps each */
#define FORM_MAX 256                   /* a form field or query parameter */

/* Every page: no script at all, our stylesheet only, no framing, no
 * referrer (the URL holds the key), no sniffing. */
#define SEC_HEADERS                                                                                \
    "Content-Security-Policy: default-src 'none'; style-src 'self'; img-src 'self'; "              \
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'\r\n"                              \
    "X-Frame-Options: DENY\r\n"                                                                    \
    "X-Content-Type-Options: nosniff\r\n"                                                          \
    "Referrer-Policy: no-referrer\r\n"                                                             \
    "Cross-Origin-Opener-Policy: same-origin\r\n"                                                  \
    "Strict-Transport-Security: max-age=31536000\r\n"
#define PAGE_HEADERS SEC_HEADERS "Vary: Accept-Language\r\n"

/* An answer's header lines, which httpd frees with it (common/httpd.h): a
 * page that cannot carry its security headers is not sent at all. */
static void set_headers(struct httpd_resp *resp, const char *h)
{
    free(resp->headers);
    resp->headers = strdup(h);
    if (!resp->headers) {
        free(resp->body);
        resp->body = NULL;
        resp->len = 0;
        resp->status = 500;
    }
}

enum dl_kind { DL_NONE, DL_PROFILE, DL_P12 };

struct download {
    char token[TOKEN_CHARS + 1];
    enum dl_kind kind;
    int64_t expires_ms;
    unsigned char *data;
    size_t len;
};

struct enr_portal {
    const struct enr_cfg *cfg;
    struct backoff *by_address, *by_key;
    struct download dl[DOWNLOAD_SLOTS];
};

static const char portal_css[] =
    "body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#1b1b1b;background:#f6f7f9}\n"
    "main{max-width:40rem;margin:0 auto;padding:1rem 1.25rem 3rem;background:#fff;"
    "min-height:100vh;box-sizing:border-box}\n"
    "nav{text-align:right;font-size:.9rem}\n"
    "h1{font-size:1.5rem;margin:.5rem 0 1rem}h2{font-size:1.15rem;margin-top:1.5rem}\n"
    "fieldset{border:1px solid #c8ccd2;border-radius:.5rem;padding:.75rem 1rem;margin:1rem 0}\n"
    "legend{font-weight:600;padding:0 .25rem}\n"
    "label{display:block;padding:.6rem .25rem;font-size:1.05rem}\n"
    "input[type=radio]{width:1.2rem;height:1.2rem;margin-right:.5rem;vertical-align:-.2rem}\n"
    "button,.button{display:inline-block;font:inherit;font-weight:600;padding:.75rem 1.5rem;"
    "border:0;border-radius:.5rem;background:#0b57d0;color:#fff;text-decoration:none}\n"
    "button:focus,.button:focus,a:focus,input:focus{outline:3px solid #f9a825;outline-offset:2px}\n"
    ".error{color:#b3261e;font-weight:600}\n"
    ".note{color:#4a4f57;font-size:.95rem}\n"
    "code{font-size:1.1rem;background:#eef0f3;padding:.1rem .35rem;border-radius:.25rem;"
    "word-break:break-all}\n"
    "table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.4rem;"
    "border-bottom:1px solid #e1e4e8;vertical-align:top}\n";

struct enr_portal *enr_portal_new(const struct enr_cfg *cfg)
{
    struct enr_portal *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->cfg = cfg;
    int64_t win = cfg->portal_window_ms;
    struct backoff_cfg a = {.free = cfg->portal_per_address,
                            .window_ms = win,
                            .base_ms = 1000,
                            .max_ms = win,
                            .max_keys = PORTAL_KEYS};
    struct backoff_cfg k = a;
    k.free = cfg->portal_per_key;
    p->by_address = backoff_new(&a);
    p->by_key = backoff_new(&k);
    if (!p->by_address || !p->by_key) {
        enr_portal_free(p);
        return NULL;
    }
    return p;
}

static void dl_clear(struct download *d)
{
    if (d->data)
        OPENSSL_cleanse(d->data, d->len);
    free(d->data);
    memset(d, 0, sizeof(*d));
}

void enr_portal_free(struct enr_portal *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < DOWNLOAD_SLOTS; i++)
        dl_clear(&p->dl[i]);
    backoff_free(p->by_address);
    backoff_free(p->by_key);
    free(p);
}

/* ---- pages ----------------------------------------------------------------- */

struct page {
    struct sbuf b;
    enum enr_lang lang;
};

static void esc(struct page *pg, const char *s)
{
    sbuf_xml(&pg->b, s, strlen(s));
}

/* A catalogue string with {1}..{3} replaced by args; all of it escaped. */
static void msg(struct page *pg, enum enr_msg_id id, const char *a1, const char *a2, const char *a3)
{
    const char *args[3] = {a1, a2, a3};
    const char *s = enr_msg(pg->lang, id);
    while (*s) {
        const char *o = strchr(s, '{');
        if (!o) {
            esc(pg, s);
            return;
        }
        sbuf_xml(&pg->b, s, (size_t)(o - s));
        if (o[1] >= '1' && o[1] <= '3' && o[2] == '}') {
            const char *a = args[o[1] - '1'];
            esc(pg, a ? a : "");
            s = o + 3;
        } else {
            sbuf_str(&pg->b, "{");
            s = o + 1;
        }
    }
}

/* "<tag>message</tag>" */
static void tag_msg(struct page *pg, const char *open, enum enr_msg_id id, const char *a1,
                    const char *a2, const char *a3)
{
    sbuf_printf(&pg->b, "<%s>", open);
    msg(pg, id, a1, a2, a3);
    size_t n = strcspn(open, " ");
    sbuf_printf(&pg->b, "</%.*s>\n", (int)n, open);
}

/* Percent-encoded for a query value (then escaped as an attribute). */
static void url_value(struct sbuf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.')
            sbuf_char(b, (char)ch);
        else
            sbuf_printf(b, "%%%02X", ch);
    }
}

/* The head, the language switch (to the same page in the other language;
 * key: the canonical key to keep in the link, or NULL) and the title. */
static void page_open(struct page *pg, enum enr_msg_id title, const char *key)
{
    struct sbuf *b = &pg->b;
    sbuf_str(b, "<!DOCTYPE html>\n<html lang=\"");
    esc(pg, enr_msg(pg->lang, ENR_MSG_HTML_LANG));
    sbuf_str(b, "\">\n<head>\n<meta charset=\"utf-8\">\n"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                "<title>");
    msg(pg, title, NULL, NULL, NULL);
    sbuf_str(b, "</title>\n<link rel=\"stylesheet\" href=\"/enroll/portal.css\">\n</head>\n"
                "<body>\n<main>\n<nav aria-label=\"");
    msg(pg, ENR_MSG_LANG_SWITCH, NULL, NULL, NULL);
    sbuf_str(b, "\">");
    for (int l = 0; l < ENR_LANG_COUNT; l++) {
        if (l == (int)pg->lang)
            continue;
        const char *code = enr_msg((enum enr_lang)l, ENR_MSG_HTML_LANG);
        struct sbuf u = SBUF_INIT;
        sbuf_str(&u, "/enroll?");
        if (key) {
            sbuf_str(&u, "key=");
            url_value(&u, key);
            sbuf_str(&u, "&");
        }
        sbuf_str(&u, "lang=");
        url_value(&u, code);
        char *href = sbuf_take(&u, NULL);
        sbuf_str(b, "<a href=\"");
        esc(pg, href ? href : "/enroll");
        free(href);
        sbuf_str(b, "\" hreflang=\"");
        esc(pg, code);
        sbuf_str(b, "\" lang=\"");
        esc(pg, code);
        sbuf_str(b, "\">");
        esc(pg, enr_msg((enum enr_lang)l, ENR_MSG_LANG_NAME));
        sbuf_str(b, "</a>");
    }
    sbuf_str(b, "</nav>\n");
    tag_msg(pg, "h1", title, NULL, NULL, NULL);
}

static void page_close(struct page *pg, struct httpd_resp *resp, int status)
{
    sbuf_str(&pg->b, "</main>\n</body>\n</html>\n");
    size_t len = 0;
    char *s = sbuf_take(&pg->b, &len);
    resp->status = s ? status : 500;
    resp->content_type = "text/html; charset=utf-8";
    set_headers(resp, PAGE_HEADERS);
    resp->body = s;
    resp->len = s ? len : 0;
}

/* A refusal: the title, what is wrong (with arg), and the way out. */
static void page_error(struct page *pg, struct httpd_resp *resp, int status, enum enr_msg_id why,
                       const char *arg)
{
    page_open(pg, ENR_MSG_ERR_TITLE, NULL);
    tag_msg(pg, "p class=\"error\" role=\"alert\"", why, arg, NULL, NULL);
    if (status != 429 && status != 500)
        tag_msg(pg, "p", ENR_MSG_ASK_ADMIN, NULL, NULL, NULL);
    page_close(pg, resp, status);
}

static void utc_time(int64_t ms, char *out, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%d %H:%M UTC", &tm);
}

/* The page of an invitation that can be used: who, what, the choice. */
static void page_invite(struct page *pg, const struct enr_invite_info *inv, const char *canon,
                        const char *bad_platform, struct httpd_resp *resp, int status)
{
    struct sbuf *b = &pg->b;
    page_open(pg, ENR_MSG_TITLE, canon);
    if (inv->created_by[0])
        tag_msg(pg, "p", ENR_MSG_INVITED_BY, inv->created_by, inv->user, inv->email);
    else
        tag_msg(pg, "p", ENR_MSG_INVITED, inv->user, inv->email, NULL);
    char t[40];
    if (inv->expires_ms) {
        utc_time(inv->expires_ms, t, sizeof(t));
        tag_msg(pg, "p class=\"note\"", ENR_MSG_EXPIRES, t, NULL, NULL);
    } else {
        tag_msg(pg, "p class=\"note\"", ENR_MSG_NO_EXPIRY, NULL, NULL, NULL);
    }
    if (inv->max_uses > 1) {
        snprintf(t, sizeof(t), "%d", inv->max_uses - inv->uses);
        tag_msg(pg, "p class=\"note\"", ENR_MSG_USES_LEFT, t, NULL, NULL);
    }
    sbuf_str(b, "<form method=\"post\" action=\"/enroll\">\n<input type=\"hidden\" name=\"key\" "
                "value=\"");
    esc(pg, canon);
    sbuf_str(b, "\">\n<input type=\"hidden\" name=\"lang\" value=\"");
    esc(pg, enr_msg(pg->lang, ENR_MSG_HTML_LANG));
    sbuf_str(b, "\">\n<fieldset");
    if (bad_platform)
        sbuf_str(b, " aria-describedby=\"platform-error\"");
    sbuf_str(b, ">\n");
    tag_msg(pg, "legend", ENR_MSG_PICK, NULL, NULL, NULL);
    if (bad_platform)
        tag_msg(pg, "p class=\"error\" id=\"platform-error\" role=\"alert\"", ENR_MSG_ERR_PLATFORM,
                NULL, NULL, NULL);
    static const struct {
        const char *value;
        enum enr_msg_id label;
    } plats[] = {{"ios", ENR_MSG_PLAT_IOS},
                 {"android", ENR_MSG_PLAT_ANDROID},
                 {"other", ENR_MSG_PLAT_OTHER}};
    for (size_t i = 0; i < sizeof(plats) / sizeof(plats[0]); i++) {
        sbuf_printf(b, "<label><input type=\"radio\" name=\"platform\" value=\"%s\" required> ",
                    plats[i].value);
        msg(pg, plats[i].label, NULL, NULL, NULL);
        sbuf_str(b, "</label>\n");
    }
    sbuf_str(b, "</fieldset>\n");
    tag_msg(pg, "p class=\"note\"", ENR_MSG_WHAT_NEXT, NULL, NULL, NULL);
    sbuf_str(b, "<button type=\"submit\">");
    msg(pg, ENR_MSG_CONTINUE, NULL, NULL, NULL);
    sbuf_str(b, "</button>\n</form>\n");
    page_close(pg, resp, status);
}

/* The refusal page an invitation state calls for. */
static void page_state(struct page *pg, const struct enr_invite_info *inv, struct httpd_resp *resp)
{
    char t[40] = "";
    switch (inv->state) {
    case ENR_INV_UNKNOWN:
        page_error(pg, resp, 404, ENR_MSG_ERR_UNKNOWN, NULL);
        return;
    case ENR_INV_USED:
        page_error(pg, resp, 410, ENR_MSG_ERR_USED, NULL);
        return;
    case ENR_INV_EXPIRED:
        utc_time(inv->expires_ms, t, sizeof(t));
        page_error(pg, resp, 410, ENR_MSG_ERR_EXPIRED, t);
        return;
    case ENR_INV_WITHDRAWN:
        page_error(pg, resp, 410, ENR_MSG_ERR_WITHDRAWN, NULL);
        return;
    case ENR_INV_OPEN:
        break;
    }
    page_error(pg, resp, 500, ENR_MSG_ERR_INTERNAL, NULL);
}

/* ---- downloads ------------------------------------------------------------ */

static void dl_sweep(struct enr_portal *p, int64_t now_ms)
{
    for (size_t i = 0; i < DOWNLOAD_SLOTS; i++)
        if (p->dl[i].kind != DL_NONE && p->dl[i].expires_ms <= now_ms)
            dl_clear(&p->dl[i]);
}

/* Keep data (taken over) for a download: its token, or NULL (data freed). */
static const char *dl_put(struct enr_portal *p, enum dl_kind kind, unsigned char *data, size_t len,
                          int64_t now_ms)
{
    dl_sweep(p, now_ms);
    struct download *slot = &p->dl[0];
    for (size_t i = 0; i < DOWNLOAD_SLOTS; i++) {
        if (p->dl[i].kind == DL_NONE) {
            slot = &p->dl[i];
            break;
        }
        if (p->dl[i].expires_ms < slot->expires_ms)
            slot = &p->dl[i];
    }
    dl_clear(slot);
    if (enr_key_random(slot->token, sizeof(slot->token), TOKEN_CHARS, 0) < 0) {
        OPENSSL_cleanse(data, len);
        free(data);
        return NULL;
    }
    slot->kind = kind;
    slot->data = data;
    slot->len = len;
    slot->expires_ms = now_ms + DOWNLOAD_MS;
    return slot->token;
}

static void do_download(struct enr_portal *p, struct page *pg, const char *token,
                        struct httpd_resp *resp, int64_t now_ms)
{
    dl_sweep(p, now_ms);
    struct download *d = NULL;
    for (size_t i = 0; token[0] && i < DOWNLOAD_SLOTS && !d; i++)
        if (p->dl[i].kind != DL_NONE && CRYPTO_memcmp(p->dl[i].token, token, TOKEN_CHARS) == 0 &&
            strlen(token) == TOKEN_CHARS)
            d = &p->dl[i];
    if (!d) {
        page_error(pg, resp, 404, ENR_MSG_ERR_DOWNLOAD, NULL);
        return;
    }
    char *copy = malloc(d->len ? d->len : 1);
    if (!copy) {
        page_error(pg, resp, 500, ENR_MSG_ERR_INTERNAL, NULL);
        return;
    }
    memcpy(copy, d->data, d->len);
    sbuf_free(&pg->b);
    resp->status = 200;
    resp->body = copy;
    resp->len = d->len;
    if (d->kind == DL_PROFILE) {
        resp->content_type = "application/x-apple-aspen-config";
        set_headers(resp, SEC_HEADERS
                    "Content-Disposition: attachment; filename=\"mail.mobileconfig\"\r\n");
    } else {
        resp->content_type = "application/x-pkcs12";
        set_headers(resp, SEC_HEADERS "Content-Disposition: attachment; filename=\"mail.p12\"\r\n");
    }
}

/* ---- the choice ----------------------------------------------------------- */

static void download_link(struct page *pg, const char *token, enum enr_msg_id label)
{
    sbuf_str(&pg->b, "<p><a class=\"button\" href=\"/enroll/dl/");
    esc(pg, token);
    sbuf_str(&pg->b, "\" download>");
    msg(pg, label, NULL, NULL, NULL);
    sbuf_str(&pg->b, "</a></p>\n");
    char m[16];
    snprintf(m, sizeof(m), "%lld", DOWNLOAD_MS / 60000);
    tag_msg(pg, "p class=\"note\"", ENR_MSG_DL_NOTE, m, NULL, NULL);
}

static void settings_row(struct page *pg, enum enr_msg_id name, const char *value,
                         enum enr_msg_id value_msg)
{
    sbuf_str(&pg->b, "<tr><th scope=\"row\">");
    msg(pg, name, NULL, NULL, NULL);
    sbuf_str(&pg->b, "</th><td>");
    if (value)
        esc(pg, value);
    else
        msg(pg, value_msg, NULL, NULL, NULL);
    sbuf_str(&pg->b, "</td></tr>\n");
}

static void settings_table(struct page *pg, const struct enr_cfg *cfg, const struct enr_result *r)
{
    char host[256], port[16] = "443";
    snprintf(host, sizeof(host), "%s", cfg->public_host ? cfg->public_host : "");
    char *colon = strrchr(host, ':');
    if (colon && !strchr(colon, ']')) {
        snprintf(port, sizeof(port), "%s", colon + 1);
        *colon = 0;
    }
    tag_msg(pg, "h2", ENR_MSG_SETTINGS, NULL, NULL, NULL);
    sbuf_str(&pg->b, "<table>\n");
    settings_row(pg, ENR_MSG_S_TYPE, NULL, ENR_MSG_S_TYPE_VALUE);
    settings_row(pg, ENR_MSG_S_SERVER, host, 0);
    settings_row(pg, ENR_MSG_S_PORT, port, 0);
    settings_row(pg, ENR_MSG_S_SECURITY, NULL, ENR_MSG_S_SECURITY_VALUE);
    settings_row(pg, ENR_MSG_S_EMAIL, r->email, 0);
    settings_row(pg, ENR_MSG_S_USER, r->user, 0);
    settings_row(pg, ENR_MSG_S_PASSWORD, NULL, ENR_MSG_S_PASSWORD_VALUE);
    settings_row(pg, ENR_MSG_S_CERT, NULL, ENR_MSG_S_CERT_VALUE);
    sbuf_str(&pg->b, "</table>\n");
}

static void password_line(struct page *pg, const char *pw)
{
    sbuf_str(&pg->b, "<p>");
    msg(pg, ENR_MSG_PW_LABEL, NULL, NULL, NULL);
    sbuf_str(&pg->b, " <code>");
    esc(pg, pw);
    sbuf_str(&pg->b, "</code></p>\n");
}

/* The page after the choice; takes the result's downloads. */
static void page_done(struct enr_portal *p, struct page *pg, enum enr_platform plat,
                      struct enr_result *r, struct httpd_resp *resp, int64_t now_ms)
{
    const char *token;
    if (plat == ENR_PLAT_IOS) {
        token = dl_put(p, DL_PROFILE, r->profile, r->profile_len, now_ms);
        r->profile = NULL;
    } else {
        unsigned char *d = malloc(r->p12_len ? r->p12_len : 1);
        if (d)
            memcpy(d, r->p12, r->p12_len);
        token = d ? dl_put(p, DL_P12, d, r->p12_len, now_ms) : NULL;
    }
    if (!token) {
        page_error(pg, resp, 500, ENR_MSG_ERR_INTERNAL, NULL);
        return;
    }
    page_open(pg, ENR_MSG_DONE_TITLE, NULL);
    tag_msg(pg, "p", ENR_MSG_DONE_INTRO, r->user, NULL, NULL);
    tag_msg(pg, "p class=\"note\"", ENR_MSG_ONCE_NOTE, NULL, NULL, NULL);
    if (plat == ENR_PLAT_IOS) {
        download_link(pg, token, ENR_MSG_DL_PROFILE);
        sbuf_str(&pg->b, "<ol>\n");
        tag_msg(pg, "li", ENR_MSG_IOS_STEP1, NULL, NULL, NULL);
        tag_msg(pg, "li", ENR_MSG_IOS_STEP2, NULL, NULL, NULL);
        tag_msg(pg, "li", ENR_MSG_IOS_STEP3, r->email, NULL, NULL);
        sbuf_str(&pg->b, "</ol>\n");
    } else {
        password_line(pg, r->p12_password);
        download_link(pg, token, ENR_MSG_DL_P12);
        char host[256];
        snprintf(host, sizeof(host), "%s", p->cfg->public_host ? p->cfg->public_host : "");
        if (plat == ENR_PLAT_ANDROID) {
            sbuf_str(&pg->b, "<ol>\n");
            tag_msg(pg, "li", ENR_MSG_AND_STEP1, NULL, NULL, NULL);
            tag_msg(pg, "li", ENR_MSG_AND_STEP2, NULL, NULL, NULL);
            sbuf_str(&pg->b, "</ol>\n");
            tag_msg(pg, "h2", ENR_MSG_AND_GMAIL, NULL, NULL, NULL);
            tag_msg(pg, "p", ENR_MSG_AND_GMAIL_STEPS, r->email, host, NULL);
            tag_msg(pg, "h2", ENR_MSG_AND_SAMSUNG, NULL, NULL, NULL);
            tag_msg(pg, "p", ENR_MSG_AND_SAMSUNG_STEPS, r->email, host, NULL);
        } else {
            tag_msg(pg, "p", ENR_MSG_OTHER_INTRO, NULL, NULL, NULL);
        }
        settings_table(pg, p->cfg, r);
    }
    tag_msg(pg, "p class=\"note\"", ENR_MSG_BIND_NOTE, NULL, NULL, NULL);
    page_close(pg, resp, 200);
}

/* ---- requests ------------------------------------------------------------- */

/* A form field or query parameter ("" if absent or unreadable). */
static void param(const char *src, const char *name, char *out, size_t n)
{
    if (httpd_query_get(src, name, out, n) != 1)
        out[0] = 0;
}

/* The rate limit: true (after answering 429) when req must wait. Every
 * request counts, answered or not: the budget is of requests, and the one
 * past it starts the wait (common/backoff.h). */
static bool limited(struct enr_portal *p, struct page *pg, const struct httpd_req *req,
                    const char *canon, struct httpd_resp *resp, int64_t now_ms)
{
    int64_t wait = backoff_wait(p->by_address, req->peer, now_ms);
    if (wait <= 0 && canon && canon[0])
        wait = backoff_wait(p->by_key, canon, now_ms);
    if (wait <= 0) {
        int n = backoff_fail(p->by_address, req->peer, now_ms);
        if (n == p->cfg->portal_per_address + 1)
            eg_warn("enroll: portal: %s is over %d requests: it waits now", req->peer,
                    p->cfg->portal_per_address);
        if (n > p->cfg->portal_per_address)
            wait = backoff_wait(p->by_address, req->peer, now_ms);
        if (wait <= 0 && canon && canon[0] &&
            backoff_fail(p->by_key, canon, now_ms) > p->cfg->portal_per_key)
            wait = backoff_wait(p->by_key, canon, now_ms);
    }
    if (wait <= 0)
        return false;
    char s[24];
    int secs = (int)((wait + 999) / 1000);
    snprintf(s, sizeof(s), "%d", secs);
    page_error(pg, resp, 429, ENR_MSG_ERR_LIMIT, s);
    resp->retry_after = secs;
    return true;
}

/* The invitation behind the key, or a refusal page (false). */
static bool lookup(struct enr_ctx *c, struct page *pg, const char *key, struct enr_invite_info *inv,
                   struct httpd_resp *resp, int64_t now_ms)
{
    char err[256];
    int rc = enr_invite_peek(c, key, now_ms, inv, err, sizeof(err));
    if (rc == ENR_EINVAL || rc == ENR_EKEY) {
        page_error(pg, resp, 400, ENR_MSG_ERR_MALFORMED, NULL);
        return false;
    }
    if (rc < 0) {
        eg_error("enroll: portal: %s", err);
        page_error(pg, resp, 500, ENR_MSG_ERR_INTERNAL, NULL);
        return false;
    }
    if (inv->state != ENR_INV_OPEN) {
        page_state(pg, inv, resp);
        return false;
    }
    return true;
}

static void do_page(struct enr_portal *p, struct enr_ctx *c, struct page *pg,
                    const struct httpd_req *req, struct httpd_resp *resp, int64_t now_ms)
{
    char key[FORM_MAX], canon[ENR_KEY_CHARS + 1] = "";
    param(req->query, "key", key, sizeof(key));
    bool ok = enr_key_canon(key, canon, NULL, 0) == 0;
    if (limited(p, pg, req, ok ? canon : NULL, resp, now_ms))
        return;
    if (!ok) {
        page_error(pg, resp, 400, ENR_MSG_ERR_MALFORMED, NULL);
        return;
    }
    struct enr_invite_info inv;
    if (lookup(c, pg, canon, &inv, resp, now_ms))
        page_invite(pg, &inv, canon, NULL, resp, 200);
}

static void do_choose(struct enr_portal *p, struct enr_ctx *c, struct page *pg,
                      const struct httpd_req *req, struct httpd_resp *resp, int64_t now_ms)
{
    char key[FORM_MAX], plat_s[FORM_MAX], canon[ENR_KEY_CHARS + 1] = "";
    param(req->body, "key", key, sizeof(key));
    param(req->body, "platform", plat_s, sizeof(plat_s));
    bool ok = enr_key_canon(key, canon, NULL, 0) == 0;
    if (limited(p, pg, req, ok ? canon : NULL, resp, now_ms))
        return;
    if (!ok) {
        page_error(pg, resp, 400, ENR_MSG_ERR_MALFORMED, NULL);
        return;
    }
    struct enr_invite_info inv;
    if (!lookup(c, pg, canon, &inv, resp, now_ms))
        return;
    enum enr_platform plat;
    if (strcmp(plat_s, "ios") == 0)
        plat = ENR_PLAT_IOS;
    else if (strcmp(plat_s, "android") == 0)
        plat = ENR_PLAT_ANDROID;
    else if (strcmp(plat_s, "other") == 0)
        plat = ENR_PLAT_NONE;
    else {
        /* The form again, with the error next to the choice. */
        page_invite(pg, &inv, canon, plat_s, resp, 400);
        return;
    }
    struct enr_result r;
    char err[1024] = "";
    int rc = enr_portal_enroll(c, canon, plat, req->peer, now_ms, &r, err, sizeof(err));
    if (rc == ENR_EKEY) {
        /* Used up meanwhile (another request was first): say which way. */
        if (enr_invite_peek(c, canon, now_ms, &inv, err, sizeof(err)) == 0 &&
            inv.state != ENR_INV_OPEN)
            page_state(pg, &inv, resp);
        else
            page_error(pg, resp, 410, ENR_MSG_ERR_USED, NULL);
        return;
    }
    if (rc < 0) {
        eg_error("enroll: portal enrollment from %s failed: %s", req->peer, err);
        page_error(pg, resp, 500, ENR_MSG_ERR_INTERNAL, NULL);
        return;
    }
    page_done(p, pg, plat, &r, resp, now_ms);
    enr_result_free(&r);
}

int enr_portal_handle(struct enr_portal *p, struct enr_ctx *c, const struct httpd_req *req,
                      struct httpd_resp *resp, int64_t now_ms)
{
    const char *path = req->path;
    bool root = strcmp(path, "/enroll") == 0 || strcmp(path, "/enroll/") == 0;
    bool css = strcmp(path, "/enroll/portal.css") == 0;
    bool dl = strncmp(path, "/enroll/dl/", 11) == 0;
    if (!root && !css && !dl)
        return 0;
    bool get = strcmp(req->method, "GET") == 0;
    if (css && get) {
        char *s = strdup(portal_css);
        resp->status = s ? 200 : 500;
        resp->content_type = "text/css; charset=utf-8";
        set_headers(resp, SEC_HEADERS);
        resp->body = s;
        resp->len = s ? strlen(s) : 0;
        return 1;
    }
    char lang[16];
    param(req->method[0] == 'P' ? req->body : req->query, "lang", lang, sizeof(lang));
    struct page pg = {SBUF_INIT, enr_msg_lang(lang, req->accept_language)};
    if (root && get)
        do_page(p, c, &pg, req, resp, now_ms);
    else if (root && strcmp(req->method, "POST") == 0)
        do_choose(p, c, &pg, req, resp, now_ms);
    else if (dl && get && !limited(p, &pg, req, NULL, resp, now_ms))
        do_download(p, &pg, path + 11, resp, now_ms);
    else if (!resp->status) {
        page_error(&pg, resp, 405, ENR_MSG_ERR_NOT_FOUND, NULL);
        set_headers(resp, PAGE_HEADERS "Allow: GET, POST\r\n");
    }
    sbuf_free(&pg.b);
    return 1;
}
