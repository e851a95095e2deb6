/*
 * enr: invitations, enrollment, renewal, revocation and the CRL over the
 * registry. See enr.h for the transaction rule. Statements are prepared per
 * call: enrollment is rare next to the request path, and it keeps this
 * module's SQL next to the code that needs it.
 */
#include "enroll/enr.h"
#include "enroll/qr.h"

#include "common/log.h"
#include "enroll/err.h"
#include "enroll/prof.h"

#include <openssl/pem.h>
#include <sqlite3.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>

#define MS 1000LL
#define P12_PASSWORD_CHARS 20 /* 100 bits: a one-time password nobody types twice */

static sqlite3 *db(struct enr_ctx *c)
{
    return core_reg_sqlite(c->eng->reg);
}

/* Prepare sql; NULL (with err set) on failure. */
static sqlite3_stmt *prep(struct enr_ctx *c, const char *sql, char *err, size_t errlen)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db(c), sql, -1, &s, NULL) != SQLITE_OK) {
        eg_errf(err, errlen, "registry: %s", sqlite3_errmsg(db(c)));
        eg_error("enroll: registry: %s", sqlite3_errmsg(db(c)));
        return NULL;
    }
    return s;
}

/* Step a statement that returns no rows and finalize it. */
static int run(struct enr_ctx *c, sqlite3_stmt *s, char *err, size_t errlen)
{
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        eg_errf(err, errlen, "registry: %s", sqlite3_errmsg(db(c)));
        eg_error("enroll: registry: %s", sqlite3_errmsg(db(c)));
        return ENR_EDB;
    }
    return 0;
}

static void copy(char *dst, size_t n, const unsigned char *src)
{
    snprintf(dst, n, "%s", src ? (const char *)src : "");
}

int enr_platform_parse(const char *s, enum enr_platform *out)
{
    if (!s || !*s || strcasecmp(s, "none") == 0)
        *out = ENR_PLAT_NONE;
    else if (strcasecmp(s, "ios") == 0 || strcasecmp(s, "ipados") == 0)
        *out = ENR_PLAT_IOS;
    else if (strcasecmp(s, "android") == 0)
        *out = ENR_PLAT_ANDROID;
    else
        return -1;
    return 0;
}

/* ---- open / close -------------------------------------------------------- */

static int load_signer(struct enr_ctx *c, char *err, size_t errlen)
{
    const struct enr_pair *s = &c->cfg->signing;
    if (!s->cert)
        return 0;
    FILE *f = fopen(s->cert, "r");
    if (!f) {
        eg_errf(err, errlen, "enroll.signing.cert %s: cannot open", s->cert);
        return ENR_EIO;
    }
    c->sign_cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    f = fopen(s->key, "r");
    if (f) {
        c->sign_key = PEM_read_PrivateKey(f, NULL, NULL, (void *)"");
        fclose(f);
    }
    if (!c->sign_cert || !c->sign_key || X509_check_private_key(c->sign_cert, c->sign_key) != 1) {
        eg_errf(err, errlen, "enroll.signing: %s / %s is not a PEM certificate with its key",
                s->cert, s->key);
        return ENR_EINVAL;
    }
    return 0;
}

int enr_open(struct enr_ctx *c, const struct enr_cfg *cfg, struct core_eng *eng, char *err,
             size_t errlen)
{
    memset(c, 0, sizeof(*c));
    c->cfg = cfg;
    c->eng = eng;
    int rc = enr_ca_load(cfg->ca.cert, cfg->ca.key, &c->ca, err, errlen);
    if (rc == 0)
        rc = load_signer(c, err, errlen);
    if (rc < 0)
        enr_close(c);
    return rc;
}

void enr_close(struct enr_ctx *c)
{
    enr_ca_free(&c->ca);
    X509_free(c->sign_cert);
    EVP_PKEY_free(c->sign_key);
    c->sign_cert = NULL;
    c->sign_key = NULL;
}

/* ---- invitations --------------------------------------------------------- */

/* A plausible address: one @, something on both sides, no spaces or controls. */
static int email_ok(const char *s)
{
    const char *at = strchr(s, '@');
    if (!at || at == s || !at[1] || strchr(at + 1, '@') || strlen(s) > 254)
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f || *s == ',' || *s == '<' || *s == '>')
            return 0;
    return 1;
}

static void invite_url(const struct enr_cfg *cfg, const char *key, char *out, size_t n)
{
    if (!cfg->url) {
        out[0] = 0;
        return;
    }
    size_t l = strlen(cfg->url);
    snprintf(out, n, "%s%senroll?key=%s", cfg->url, l && cfg->url[l - 1] == '/' ? "" : "/", key);
}

/* The invitation mail with its link and QR code, queued in the caller's
 * transaction: the key exists only now, and the mail is sent later by the
 * core's sender (core/notify.h), never by this thread. */
static int invite_mail(struct enr_ctx *c, const struct enr_invite_req *r, const char *user,
                       const char *key, int64_t exp, int64_t now_ms, char *err, size_t errlen)
{
    char url[1024], ex[32] = "-";
    invite_url(c->cfg, key, url, sizeof(url));
    if (!url[0]) {
        eg_errf(err, errlen, "no invitation mail without enroll.url (the link it carries)");
        return ENR_EINVAL;
    }
    if (exp) {
        time_t t = (time_t)(exp / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(ex, sizeof(ex), "%Y-%m-%d %H:%M UTC", &tm);
    }
    unsigned char *png = NULL;
    size_t len = 0;
    if (enr_qr_png(url, ENR_QR_SCALE, &png, &len) < 0) {
        eg_errf(err, errlen, "the QR code of the invitation link could not be made");
        return ENR_ENOMEM;
    }
    struct core_var v[] = {{"site", c->notify->site},
                           {"user", user},
                           {"email", r->email},
                           {"url", url},
                           {"key", key},
                           {"expires", ex}};
    struct core_mail m = {.to = r->email,
                          .lang = r->lang,
                          .tpl = CORE_TPL_INVITE,
                          .vars = v,
                          .n_vars = sizeof(v) / sizeof(v[0]),
                          .png = png,
                          .png_len = len,
                          .event = "enroll.invite"};
    int rc = core_notify_mail(c->eng->reg, c->notify, c->tpls, &m, now_ms, err, errlen);
    free(png);
    OPENSSL_cleanse(url, sizeof(url));
    return rc == CORE_NOTIFY_EINVAL ? ENR_EINVAL : rc < 0 ? ENR_EDB : 0;
}

/* With a directory, only a user it knows and has not disabled is invited;
 * a directory that cannot answer (and no fresh cached answer) refuses too. */
static int dir_check(struct enr_ctx *c, const char *who, int64_t now_ms, struct core_dir_user *u,
                     char *err, size_t errlen)
{
    char e[512] = "";
    int rc = core_dir_lookup(c->dir, who, now_ms, u, e, sizeof(e));
    if (rc == CORE_DIR_ENOTFOUND) {
        eg_errf(err, errlen, "'%s' is not a user of the directory: no invitation", who);
        return ENR_EINVAL;
    }
    if (rc < 0) {
        eg_errf(err, errlen, "the directory cannot say who '%s' is (%s): no invitation", who, e);
        return ENR_EUNAVAIL;
    }
    if (u->disabled) {
        eg_errf(err, errlen, "'%s' is disabled in the directory: no invitation", who);
        return ENR_EINVAL;
    }
    return 0;
}

int enr_invite(struct enr_ctx *c, const struct enr_invite_req *r, int64_t now_ms,
               struct enr_invite *out, char *err, size_t errlen)
{
    int rc0;
    memset(out, 0, sizeof(*out));
    if (!r->email || !email_ok(r->email)) {
        eg_errf(err, errlen, "'%s' is not an e-mail address", r->email ? r->email : "");
        return ENR_EINVAL;
    }
    const char *user = r->user && *r->user ? r->user : r->email;
    if (strlen(user) > 64) {
        eg_errf(err, errlen, "user name is longer than 64 characters (a certificate CN limit)");
        return ENR_EINVAL;
    }
    int max_uses = r->max_uses ? r->max_uses : 1;
    if (max_uses < 1 || max_uses > 100000) {
        eg_errf(err, errlen, "max_uses must be 1 to 100000");
        return ENR_EINVAL;
    }
    int64_t exp = r->expires_ms;
    if (exp == 0)
        exp = c->cfg->invite_expiry_ms ? now_ms + c->cfg->invite_expiry_ms : 0;
    else if (exp < 0)
        exp = 0;
    else if (exp <= now_ms) {
        eg_errf(err, errlen, "the expiry is in the past");
        return ENR_EINVAL;
    }
    char canon[ENR_KEY_CHARS + 1];
    unsigned char hash[ENR_KEY_HASH];
    if (enr_key_new(out->key) < 0 || enr_key_canon(out->key, canon, err, errlen) < 0 ||
        enr_key_hash(canon, hash) < 0) {
        eg_errf(err, errlen, "no random key could be made");
        return ENR_ECRYPTO;
    }
    struct core_dir_user du;
    if (c->dir && (rc0 = dir_check(c, r->user && *r->user ? r->user : r->email, now_ms, &du, err,
                                   errlen)) < 0)
        return rc0;
    if (r->mail && !c->tpls) {
        eg_errf(err, errlen, "no mail can be sent: core.notify.smtp.url is not configured");
        return ENR_EINVAL;
    }
    if (r->lang && strlen(r->lang) > 15) {
        eg_errf(err, errlen, "lang: a language tag such as \"en\" or \"ja\"");
        return ENR_EINVAL;
    }
    sqlite3_stmt *s = prep(c,
                           "INSERT INTO enroll_invitations(key_hash, email, user, max_uses, "
                           "expires_ms, created_ms, created_by, lang) "
                           "VALUES(?1,?2,?3,?4,?5,?6,?7,?8)",
                           err, errlen);
    if (!s)
        return ENR_EDB;
    sqlite3_bind_blob(s, 1, hash, sizeof(hash), SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, r->email, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 3, user, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(s, 4, max_uses);
    sqlite3_bind_int64(s, 5, exp);
    sqlite3_bind_int64(s, 6, now_ms);
    sqlite3_bind_text(s, 7, r->actor ? r->actor : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 8, r->lang ? r->lang : "", -1, SQLITE_TRANSIENT);
    if (core_reg_begin(c->eng->reg) < 0) {
        sqlite3_finalize(s);
        eg_errf(err, errlen, "registry busy");
        return ENR_EDB;
    }
    int rc = run(c, s, err, errlen);
    if (rc == 0) {
        out->id = sqlite3_last_insert_rowid(db(c));
        char detail[512];
        snprintf(detail, sizeof(detail), "invitation %lld for %s (user %s), max_uses %d",
                 (long long)out->id, r->email, user, max_uses);
        if (core_reg_audit_add(c->eng->reg, r->actor ? r->actor : "", r->address ? r->address : "",
                               "enroll.invite", r->email, detail, now_ms) < 0)
            rc = ENR_EDB;
    }
    if (rc == 0 && r->mail)
        rc = invite_mail(c, r, user, out->key, exp, now_ms, err, errlen);
    if (rc == 0 && core_reg_commit(c->eng->reg) < 0)
        rc = ENR_EDB;
    else if (rc < 0)
        core_reg_rollback(c->eng->reg);
    if (rc < 0) {
        OPENSSL_cleanse(out->key, sizeof(out->key));
        return rc;
    }
    invite_url(c->cfg, out->key, out->url, sizeof(out->url));
    snprintf(out->email, sizeof(out->email), "%s", r->email);
    snprintf(out->user, sizeof(out->user), "%s", user);
    out->max_uses = max_uses;
    out->expires_ms = exp;
    out->created_ms = now_ms;
    return 0;
}

int enr_invite_list(struct enr_ctx *c, const char *email, struct enr_invite *out, size_t max,
                    size_t *n)
{
    *n = 0;
    sqlite3_stmt *s = prep(c,
                           "SELECT id, email, user, max_uses, uses, expires_ms, created_ms, "
                           "revoked_ms FROM enroll_invitations WHERE ?1 IS NULL OR email = ?1 "
                           "ORDER BY id DESC LIMIT ?2",
                           NULL, 0);
    if (!s)
        return ENR_EDB;
    if (email)
        sqlite3_bind_text(s, 1, email, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 2, (int64_t)max);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < max) {
        struct enr_invite *v = &out[(*n)++];
        memset(v, 0, sizeof(*v));
        v->id = sqlite3_column_int64(s, 0);
        copy(v->email, sizeof(v->email), sqlite3_column_text(s, 1));
        copy(v->user, sizeof(v->user), sqlite3_column_text(s, 2));
        v->max_uses = sqlite3_column_int(s, 3);
        v->uses = sqlite3_column_int(s, 4);
        v->expires_ms = sqlite3_column_int64(s, 5);
        v->created_ms = sqlite3_column_int64(s, 6);
        v->revoked_ms = sqlite3_column_int64(s, 7);
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : ENR_EDB;
}

int enr_invite_revoke(struct enr_ctx *c, int64_t id, const char *actor, int64_t now_ms, char *err,
                      size_t errlen)
{
    sqlite3_stmt *s = prep(c,
                           "UPDATE enroll_invitations SET revoked_ms = ?2 WHERE id = ?1 AND "
                           "revoked_ms = 0",
                           err, errlen);
    if (!s)
        return ENR_EDB;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, now_ms);
    int rc = run(c, s, err, errlen);
    if (rc == 0 && sqlite3_changes(db(c)) == 0) {
        eg_errf(err, errlen, "no open invitation %lld", (long long)id);
        return ENR_ENOTFOUND;
    }
    if (rc == 0) {
        char t[32];
        snprintf(t, sizeof(t), "%lld", (long long)id);
        core_reg_audit_add(c->eng->reg, actor ? actor : "", "", "enroll.invite_revoke", t, "",
                           now_ms);
    }
    return rc;
}

/* ---- enrollment ---------------------------------------------------------- */

struct inv_row {
    int64_t id;
    char email[256], user[256];
};

/* Find the key's invitation and use it once, or say exactly why not. */
static int key_use(struct enr_ctx *c, const char *key, int64_t now_ms, struct inv_row *inv,
                   char *err, size_t errlen)
{
    char canon[ENR_KEY_CHARS + 1];
    unsigned char hash[ENR_KEY_HASH];
    int rc = enr_key_canon(key, canon, err, errlen);
    if (rc < 0)
        return rc;
    if (enr_key_hash(canon, hash) < 0)
        return ENR_ECRYPTO;
    sqlite3_stmt *s = prep(c,
                           "SELECT id, email, user, max_uses, uses, expires_ms, revoked_ms "
                           "FROM enroll_invitations WHERE key_hash = ?1",
                           err, errlen);
    if (!s)
        return ENR_EDB;
    sqlite3_bind_blob(s, 1, hash, sizeof(hash), SQLITE_TRANSIENT);
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(s);
        if (rc != SQLITE_DONE)
            return ENR_EDB;
        eg_errf(err, errlen, "unknown enrollment key (check it was typed as shown)");
        return ENR_EKEY;
    }
    inv->id = sqlite3_column_int64(s, 0);
    copy(inv->email, sizeof(inv->email), sqlite3_column_text(s, 1));
    copy(inv->user, sizeof(inv->user), sqlite3_column_text(s, 2));
    int max_uses = sqlite3_column_int(s, 3), uses = sqlite3_column_int(s, 4);
    int64_t exp = sqlite3_column_int64(s, 5), revoked = sqlite3_column_int64(s, 6);
    sqlite3_finalize(s);
    if (revoked) {
        eg_errf(err, errlen, "this enrollment key was withdrawn; ask for a new invitation");
        return ENR_EKEY;
    }
    if (exp && now_ms >= exp) {
        eg_errf(err, errlen, "this enrollment key has expired; ask for a new invitation");
        return ENR_EKEY;
    }
    if (uses >= max_uses) {
        eg_errf(err, errlen, "this enrollment key has been used%s; ask for a new invitation",
                max_uses == 1 ? " already" : " as many times as allowed");
        return ENR_EKEY;
    }
    /* Conditional, so that a use counts only while one is left whatever
     * else writes the row (the caller's transaction is IMMEDIATE as well). */
    s = prep(c,
             "UPDATE enroll_invitations SET uses = uses + 1 WHERE id = ?1 AND uses < max_uses "
             "AND revoked_ms = 0",
             err, errlen);
    if (!s)
        return ENR_EDB;
    sqlite3_bind_int64(s, 1, inv->id);
    rc = run(c, s, err, errlen);
    if (rc == 0 && sqlite3_changes(db(c)) != 1) {
        eg_errf(err, errlen, "this enrollment key has been used already; ask for a new invitation");
        return ENR_EKEY;
    }
    return rc;
}

/* The device may be enrolled by user: new, unbound, or bound to the same user. */
static int device_free_for(struct enr_ctx *c, const char *id, const char *user, char *err,
                           size_t errlen)
{
    struct core_device d;
    int rc = core_reg_device_get(c->eng->reg, id, &d);
    if (rc == CORE_REG_ENOTFOUND)
        return 0;
    if (rc < 0) {
        eg_errf(err, errlen, "registry error");
        return ENR_EDB;
    }
    if (d.user[0] && strcasecmp(d.user, user) != 0) {
        eg_errf(err, errlen, "device %s is already enrolled to another user", id);
        return ENR_ECONFLICT;
    }
    return 0;
}

/* enrollment: the portal's enrollment id ("" for a device certificate, id ""
 * for a portal one until it is bound). */
static int cert_store(struct enr_ctx *c, const char *serial, const char *id, const char *enrollment,
                      const char *user, int64_t inv_id, X509 *x, const char *pem, int64_t now_ms,
                      char *err, size_t errlen)
{
    sqlite3_stmt *s = prep(c,
                           "INSERT INTO enroll_certs(serial, device_id, user, invitation_id, "
                           "not_before_ms, not_after_ms, issued_ms, pem, enrollment) "
                           "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)",
                           err, errlen);
    if (!s)
        return ENR_EDB;
    sqlite3_bind_text(s, 1, serial, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 3, user, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 4, inv_id);
    sqlite3_bind_int64(s, 5, now_ms);
    sqlite3_bind_int64(s, 6, enr_cert_not_after(x) * MS);
    sqlite3_bind_int64(s, 7, now_ms);
    sqlite3_bind_text(s, 8, pem, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 9, enrollment, -1, SQLITE_TRANSIENT);
    return run(c, s, err, errlen);
}

/* Revoke the device's live certificates other than keep (superseded). *n counts them. */
static int supersede(struct enr_ctx *c, const char *id, const char *keep, int64_t now_ms, int *n,
                     char *err, size_t errlen)
{
    sqlite3_stmt *s = prep(c,
                           "UPDATE enroll_certs SET revoked_ms = ?3, revoke_reason = "
                           "'superseded' WHERE device_id = ?1 AND serial <> ?2 AND revoked_ms = 0 "
                           "AND not_after_ms > ?3",
                           err, errlen);
    if (!s)
        return ENR_EDB;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, keep, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 3, now_ms);
    int rc = run(c, s, err, errlen);
    *n = rc == 0 ? sqlite3_changes(db(c)) : 0;
    return rc;
}

/* Certificate, key pair and profile for one device. Nothing touches the registry. */
static int make_cert(struct enr_ctx *c, const struct enr_subject *subj, const unsigned char *csr,
                     size_t csr_len, enum enr_platform plat, int64_t now_ms, struct enr_result *out,
                     X509 **xout, char *err, size_t errlen)
{
    EVP_PKEY *pub = NULL, *pair = NULL;
    int rc;
    if (csr) {
        rc = enr_csr_parse(csr, csr_len, &pub, err, errlen);
    } else {
        enum enr_algo a = ENR_ALGO_EC256;
        enr_algo_parse(c->cfg->key_algo, &a);
        rc = enr_keygen(a, &pair, err, errlen);
        pub = pair;
    }
    X509 *x = NULL;
    if (rc == 0)
        rc = enr_ca_issue(&c->ca, subj, pub, now_ms / MS, c->cfg->validity_ms / MS, &x, out->serial,
                          err, errlen);
    if (rc == 0)
        rc = enr_cert_pem(x, &out->cert_pem, NULL);
    if (rc == 0 && pair) {
        if (enr_key_random(out->p12_password, sizeof(out->p12_password), P12_PASSWORD_CHARS, 0) < 0)
            rc = ENR_ECRYPTO;
        else
            rc = enr_p12(x, pair, c->ca.cert, subj->user, out->p12_password, &out->p12,
                         &out->p12_len, err, errlen);
    }
    if (rc == 0 && plat != ENR_PLAT_NONE) {
        struct enr_prof p = {
            .host = c->cfg->public_host,
            .user = subj->user,
            .email = subj->email,
            .device_id = subj->device_id ? subj->device_id : subj->enrollment,
            .org = c->cfg->org,
            .identifier = c->cfg->identifier,
            .p12 = out->p12,
            .p12_len = out->p12_len,
            .p12_password = out->p12_password,
            .cert_pem = out->cert_pem,
        };
        char *doc = NULL;
        size_t len = 0;
        if (plat == ENR_PLAT_ANDROID) {
            rc = enr_prof_android(&p, &doc, &len);
            out->profile = (unsigned char *)doc;
            out->profile_len = len;
            out->profile_type = "application/json";
        } else {
            rc = enr_prof_mobileconfig(&p, &doc, &len);
            if (rc == 0 && c->sign_cert) {
                rc = enr_prof_sign(doc, len, c->sign_cert, c->sign_key, NULL, &out->profile,
                                   &out->profile_len, err, errlen);
                free(doc);
            } else {
                out->profile = (unsigned char *)doc;
                out->profile_len = len;
            }
            out->profile_type = "application/x-apple-aspen-config";
        }
        if (rc < 0 && !err[0])
            eg_errf(err, errlen, "making the profile failed");
    }
    if (rc == 0)
        out->not_after_ms = enr_cert_not_after(x) * MS;
    EVP_PKEY_free(pub);
    if (rc < 0)
        X509_free(x);
    else
        *xout = x;
    return rc;
}

void enr_result_free(struct enr_result *r)
{
    free(r->cert_pem);
    if (r->p12)
        OPENSSL_cleanse(r->p12, r->p12_len);
    OPENSSL_free(r->p12);
    free(r->profile);
    OPENSSL_cleanse(r->p12_password, sizeof(r->p12_password));
    memset(r, 0, sizeof(*r));
}

int enr_enroll(struct enr_ctx *c, const struct enr_request *r, int64_t now_ms,
               struct enr_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (err && errlen)
        err[0] = 0;
    if (!r->device_id || core_reg_devid(r->device_id, out->device_id) < 0) {
        eg_errf(err, errlen, "DeviceId '%s' is not valid (1 to 32 letters and digits)",
                r->device_id ? r->device_id : "");
        return ENR_EINVAL;
    }
    /* The cheap refusals (key syntax, CSR) come before the transaction. */
    char canon[ENR_KEY_CHARS + 1];
    int rc = enr_key_canon(r->key, canon, err, errlen);
    if (rc < 0)
        return rc;
    EVP_PKEY *probe = NULL;
    if (r->csr) {
        if ((rc = enr_csr_parse(r->csr, r->csr_len, &probe, err, errlen)) < 0)
            return rc;
        EVP_PKEY_free(probe);
    }
    struct core_eng *e = c->eng;
    if (core_eng_begin(e) < 0) {
        eg_errf(err, errlen, "registry busy; try again");
        return ENR_EDB;
    }
    struct inv_row inv;
    X509 *x = NULL;
    rc = key_use(c, r->key, now_ms, &inv, err, errlen);
    bool keep_use = false;
    if (rc == 0 &&
        (rc = device_free_for(c, out->device_id, inv.user, err, errlen)) == ENR_ECONFLICT) {
        /* The key's use stays spent and the answer names no owner: one key
         * must not probe which DeviceIds are whose, again and again. */
        char note[128];
        snprintf(note, sizeof(note), "bound to another user; invitation %lld counted as used",
                 (long long)inv.id);
        keep_use = core_reg_audit_add(e->reg, "enroll", r->address ? r->address : "",
                                      "enroll.refused", out->device_id, note, now_ms) == 0;
        eg_errf(err, errlen,
                "device %s cannot be enrolled with this key; the attempt used the key once. "
                "Ask your administrator",
                out->device_id);
    }
    if (rc == 0) {
        struct enr_subject subj = {
            .user = inv.user, .email = inv.email, .device_id = out->device_id};
        rc = make_cert(c, &subj, r->csr, r->csr_len, r->platform, now_ms, out, &x, err, errlen);
    }
    int superseded = 0;
    if (rc == 0)
        rc = cert_store(c, out->serial, out->device_id, "", inv.user, inv.id, x, out->cert_pem,
                        now_ms, err, errlen);
    if (rc == 0)
        rc = supersede(c, out->device_id, out->serial, now_ms, &superseded, err, errlen);
    if (rc == 0) {
        struct core_devinfo info = {.user = inv.user};
        char note[160];
        snprintf(note, sizeof(note), "enrolled with invitation %lld, certificate %s",
                 (long long)inv.id, out->serial);
        if (core_eng_seen(e, out->device_id, &info, now_ms, NULL) < 0 ||
            core_eng_action(e, out->device_id, CORE_ACT_MANAGE, inv.user, "enroll",
                            r->address ? r->address : "", note, now_ms) < 0) {
            eg_errf(err, errlen, "registry error while binding the device");
            rc = ENR_EDB;
        }
    }
    if (rc < 0) {
        if (!keep_use || core_eng_commit(e) < 0)
            core_eng_rollback(e);
        X509_free(x);
        enr_result_free(out);
        return rc;
    }
    if (core_eng_commit(e) < 0) {
        X509_free(x);
        enr_result_free(out);
        eg_errf(err, errlen, "registry error at commit; nothing was enrolled");
        return ENR_EDB;
    }
    X509_free(x);
    snprintf(out->user, sizeof(out->user), "%s", inv.user);
    snprintf(out->email, sizeof(out->email), "%s", inv.email);
    eg_info("enroll: device %s enrolled for %s (invitation %lld, certificate %s)", out->device_id,
            inv.user, (long long)inv.id, out->serial);
    if (superseded) {
        char e2[256];
        if (enr_crl_update(c, true, now_ms, e2, sizeof(e2)) < 0)
            eg_error("enroll: CRL not rewritten after superseding %d certificate(s): %s",
                     superseded, e2);
    }
    return 0;
}

/* ---- the portal ------------------------------------------------------------ */

int enr_invite_peek(struct enr_ctx *c, const char *key, int64_t now_ms, struct enr_invite_info *out,
                    char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    char canon[ENR_KEY_CHARS + 1];
    unsigned char hash[ENR_KEY_HASH];
    int rc = enr_key_canon(key ? key : "", canon, err, errlen);
    if (rc < 0)
        return rc;
    if (enr_key_hash(canon, hash) < 0)
        return ENR_ECRYPTO;
    sqlite3_stmt *s = prep(c,
                           "SELECT id, email, user, created_by, max_uses, uses, expires_ms, "
                           "revoked_ms FROM enroll_invitations WHERE key_hash = ?1",
                           err, errlen);
    if (!s)
        return ENR_EDB;
    sqlite3_bind_blob(s, 1, hash, sizeof(hash), SQLITE_TRANSIENT);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        out->id = sqlite3_column_int64(s, 0);
        copy(out->email, sizeof(out->email), sqlite3_column_text(s, 1));
        copy(out->user, sizeof(out->user), sqlite3_column_text(s, 2));
        copy(out->created_by, sizeof(out->created_by), sqlite3_column_text(s, 3));
        out->max_uses = sqlite3_column_int(s, 4);
        out->uses = sqlite3_column_int(s, 5);
        out->expires_ms = sqlite3_column_int64(s, 6);
        int64_t revoked = sqlite3_column_int64(s, 7);
        out->state = revoked                                        ? ENR_INV_WITHDRAWN
                     : out->expires_ms && now_ms >= out->expires_ms ? ENR_INV_EXPIRED
                     : out->uses >= out->max_uses                   ? ENR_INV_USED
                                                                    : ENR_INV_OPEN;
    } else {
        out->state = ENR_INV_UNKNOWN;
    }
    sqlite3_finalize(s);
    OPENSSL_cleanse(canon, sizeof(canon));
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : ENR_EDB;
}

int enr_portal_enroll(struct enr_ctx *c, const char *key, enum enr_platform plat,
                      const char *address, int64_t now_ms, struct enr_result *out, char *err,
                      size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (err && errlen)
        err[0] = 0;
    char canon[ENR_KEY_CHARS + 1];
    int rc = enr_key_canon(key ? key : "", canon, err, errlen);
    if (rc < 0)
        return rc;
    if (enr_key_random(out->enrollment, sizeof(out->enrollment), ENR_ENRID_CHARS, 0) < 0) {
        eg_errf(err, errlen, "no random enrollment id could be made");
        return ENR_ECRYPTO;
    }
    if (core_reg_begin(c->eng->reg) < 0) {
        eg_errf(err, errlen, "registry busy; try again");
        return ENR_EDB;
    }
    struct inv_row inv;
    X509 *x = NULL;
    rc = key_use(c, key, now_ms, &inv, err, errlen);
    if (rc == 0) {
        struct enr_subject subj = {
            .user = inv.user, .email = inv.email, .enrollment = out->enrollment};
        rc = make_cert(c, &subj, NULL, 0, plat, now_ms, out, &x, err, errlen);
    }
    if (rc == 0)
        rc = cert_store(c, out->serial, "", out->enrollment, inv.user, inv.id, x, out->cert_pem,
                        now_ms, err, errlen);
    if (rc == 0) {
        char note[200];
        snprintf(note, sizeof(note), "portal: invitation %lld, enrollment %s, certificate %s, %s",
                 (long long)inv.id, out->enrollment, out->serial,
                 plat == ENR_PLAT_IOS       ? "ios"
                 : plat == ENR_PLAT_ANDROID ? "android"
                                            : "other");
        if (core_reg_audit_add(c->eng->reg, "enroll", address ? address : "", "enroll.portal",
                               inv.user, note, now_ms) < 0)
            rc = ENR_EDB;
    }
    X509_free(x);
    if (rc < 0) {
        core_reg_rollback(c->eng->reg);
        enr_result_free(out);
        return rc;
    }
    if (core_reg_commit(c->eng->reg) < 0) {
        enr_result_free(out);
        eg_errf(err, errlen, "registry error at commit; nothing was issued");
        return ENR_EDB;
    }
    snprintf(out->user, sizeof(out->user), "%s", inv.user);
    snprintf(out->email, sizeof(out->email), "%s", inv.email);
    eg_info("enroll: portal enrollment %s for %s (invitation %lld, certificate %s) from %s",
            out->enrollment, inv.user, (long long)inv.id, out->serial, address ? address : "-");
    return 0;
}

int enr_renew(struct enr_ctx *c, const char *device_id, const unsigned char *csr, size_t csr_len,
              int64_t now_ms, struct enr_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (err && errlen)
        err[0] = 0;
    if (!device_id || core_reg_devid(device_id, out->device_id) < 0) {
        eg_errf(err, errlen, "DeviceId '%s' is not valid", device_id ? device_id : "");
        return ENR_EINVAL;
    }
    EVP_PKEY *pub = NULL;
    int rc = enr_csr_parse(csr, csr_len, &pub, err, errlen);
    if (rc < 0)
        return rc;
    /* The live certificate whose key signed this CSR. */
    sqlite3_stmt *s = prep(c,
                           "SELECT serial, user, not_after_ms, pem FROM enroll_certs WHERE "
                           "device_id = ?1 AND revoked_ms = 0 AND not_after_ms > ?2 "
                           "ORDER BY not_after_ms DESC",
                           err, errlen);
    if (!s) {
        EVP_PKEY_free(pub);
        return ENR_EDB;
    }
    sqlite3_bind_text(s, 1, out->device_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 2, now_ms);
    char old[ENR_SERIAL_HEX + 1] = "", user[256] = "";
    int64_t old_end = 0;
    while (sqlite3_step(s) == SQLITE_ROW) {
        const char *pem = (const char *)sqlite3_column_text(s, 3);
        BIO *b = pem ? BIO_new_mem_buf(pem, -1) : NULL;
        X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
        int same = x && EVP_PKEY_eq(X509_get0_pubkey(x), pub) == 1;
        X509_free(x);
        if (same) {
            copy(old, sizeof(old), sqlite3_column_text(s, 0));
            copy(user, sizeof(user), sqlite3_column_text(s, 1));
            old_end = sqlite3_column_int64(s, 2);
            break;
        }
    }
    sqlite3_finalize(s);
    EVP_PKEY_free(pub);
    if (!old[0]) {
        eg_errf(err, errlen,
                "no valid certificate of device %s has this CSR's key; renewal "
                "needs the current key (enroll again with a new invitation)",
                out->device_id);
        return ENR_EKEY;
    }
    if (old_end - now_ms > c->cfg->renew_before_ms) {
        eg_errf(err, errlen,
                "certificate %s is not due for renewal until %lld days before it "
                "expires",
                old, (long long)(c->cfg->renew_before_ms / (86400 * MS)));
        return ENR_ECONFLICT;
    }
    struct core_device d;
    const char *email = NULL;
    if (core_reg_device_get(c->eng->reg, out->device_id, &d) == 0 && d.user[0] &&
        strcasecmp(d.user, user) != 0) {
        eg_errf(err, errlen, "device %s is bound to another user now", out->device_id);
        return ENR_ECONFLICT;
    }
    /* Keep the e-mail of the old certificate's invitation. */
    char mail[256] = "";
    s = prep(c,
             "SELECT i.email FROM enroll_certs c JOIN enroll_invitations i ON i.id = "
             "c.invitation_id WHERE c.serial = ?1",
             err, errlen);
    if (s) {
        sqlite3_bind_text(s, 1, old, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(s) == SQLITE_ROW)
            copy(mail, sizeof(mail), sqlite3_column_text(s, 0));
        sqlite3_finalize(s);
        email = mail;
    }
    if (core_reg_begin(c->eng->reg) < 0) {
        eg_errf(err, errlen, "registry busy; try again");
        return ENR_EDB;
    }
    X509 *x = NULL;
    int n = 0;
    struct enr_subject subj = {.user = user, .email = email, .device_id = out->device_id};
    rc = make_cert(c, &subj, csr, csr_len, ENR_PLAT_NONE, now_ms, out, &x, err, errlen);
    if (rc == 0)
        rc = cert_store(c, out->serial, out->device_id, "", user, 0, x, out->cert_pem, now_ms, err,
                        errlen);
    if (rc == 0)
        rc = supersede(c, out->device_id, out->serial, now_ms, &n, err, errlen);
    if (rc == 0 && core_reg_audit_add(c->eng->reg, "enroll", "", "enroll.renew", out->device_id,
                                      out->serial, now_ms) < 0)
        rc = ENR_EDB;
    X509_free(x);
    if (rc < 0 || core_reg_commit(c->eng->reg) < 0) {
        if (rc < 0)
            core_reg_rollback(c->eng->reg);
        enr_result_free(out);
        return rc < 0 ? rc : ENR_EDB;
    }
    snprintf(out->user, sizeof(out->user), "%s", user);
    snprintf(out->email, sizeof(out->email), "%s", mail);
    char e2[256];
    if (enr_crl_update(c, true, now_ms, e2, sizeof(e2)) < 0)
        eg_error("enroll: CRL not rewritten after renewal: %s", e2);
    return 0;
}

/* ---- certificates and the CRL -------------------------------------------- */

int enr_cert_list(struct enr_ctx *c, const char *device_id, struct enr_cert *out, size_t max,
                  size_t *n)
{
    *n = 0;
    char id[CORE_DEVID_MAX + 1];
    if (device_id && core_reg_devid(device_id, id) < 0)
        return ENR_EINVAL;
    sqlite3_stmt *s = prep(c,
                           "SELECT serial, device_id, user, not_before_ms, not_after_ms, "
                           "issued_ms, revoked_ms, revoke_reason FROM enroll_certs WHERE ?1 IS "
                           "NULL OR device_id = ?1 ORDER BY issued_ms DESC, serial LIMIT ?2",
                           NULL, 0);
    if (!s)
        return ENR_EDB;
    if (device_id)
        sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 2, (int64_t)max);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < max) {
        struct enr_cert *v = &out[(*n)++];
        copy(v->serial, sizeof(v->serial), sqlite3_column_text(s, 0));
        copy(v->device_id, sizeof(v->device_id), sqlite3_column_text(s, 1));
        copy(v->user, sizeof(v->user), sqlite3_column_text(s, 2));
        v->not_before_ms = sqlite3_column_int64(s, 3);
        v->not_after_ms = sqlite3_column_int64(s, 4);
        v->issued_ms = sqlite3_column_int64(s, 5);
        v->revoked_ms = sqlite3_column_int64(s, 6);
        copy(v->revoke_reason, sizeof(v->revoke_reason), sqlite3_column_text(s, 7));
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : ENR_EDB;
}

int enr_revoke(struct enr_ctx *c, const char *serial, const char *device_id, const char *reason,
               const char *actor, int64_t now_ms, char *err, size_t errlen)
{
    char id[CORE_DEVID_MAX + 1] = "";
    if (!serial && (!device_id || core_reg_devid(device_id, id) < 0)) {
        eg_errf(err, errlen, "name a certificate serial or a valid DeviceId");
        return ENR_EINVAL;
    }
    char sn[ENR_SERIAL_HEX + 1] = "";
    if (serial) {
        size_t l = strlen(serial);
        if (l == 0 || l > ENR_SERIAL_HEX) {
            eg_errf(err, errlen, "'%s' is not a certificate serial", serial);
            return ENR_EINVAL;
        }
        for (size_t i = 0; i < l; i++) {
            char ch = serial[i];
            if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
                  (ch >= 'A' && ch <= 'F'))) {
                eg_errf(err, errlen, "'%s' is not a certificate serial (hex digits)", serial);
                return ENR_EINVAL;
            }
            sn[i] = (char)(ch >= 'a' ? ch - 32 : ch);
        }
    }
    sqlite3_stmt *s = prep(c,
                           serial ? "UPDATE enroll_certs SET revoked_ms = ?2, revoke_reason = ?3 "
                                    "WHERE serial = ?1 AND revoked_ms = 0"
                                  : "UPDATE enroll_certs SET revoked_ms = ?2, revoke_reason = ?3 "
                                    "WHERE device_id = ?1 AND revoked_ms = 0",
                           err, errlen);
    if (!s)
        return ENR_EDB;
    sqlite3_bind_text(s, 1, serial ? sn : id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 2, now_ms);
    sqlite3_bind_text(s, 3, reason && *reason ? reason : "revoked", -1, SQLITE_TRANSIENT);
    if (core_reg_begin(c->eng->reg) < 0) {
        sqlite3_finalize(s);
        return ENR_EDB;
    }
    int rc = run(c, s, err, errlen);
    int n = rc == 0 ? sqlite3_changes(db(c)) : 0;
    if (rc == 0 && n == 0) {
        eg_errf(err, errlen, "no unrevoked certificate %s%s",
                serial ? "with serial " : "of device ", serial ? sn : id);
        rc = ENR_ENOTFOUND;
    }
    if (rc == 0 && core_reg_audit_add(c->eng->reg, actor ? actor : "", "", "enroll.revoke",
                                      serial ? sn : id, reason ? reason : "", now_ms) < 0)
        rc = ENR_EDB;
    if (rc < 0) {
        core_reg_rollback(c->eng->reg);
        return rc;
    }
    if (core_reg_commit(c->eng->reg) < 0)
        return ENR_EDB;
    eg_info("enroll: %d certificate(s) of %s revoked by %s", n, serial ? sn : id,
            actor ? actor : "-");
    return enr_crl_update(c, true, now_ms, err, errlen);
}

int enr_crl_update(struct enr_ctx *c, bool force, int64_t now_ms, char *err, size_t errlen)
{
    const char *path = c->cfg->crl_path;
    struct stat st;
    /* How many revocations there are (the partial index on revoked_ms): one
     * made where the CA key is not (the admin API) is listed at the next look. */
    int64_t revocations = 0;
    sqlite3_stmt *s =
        prep(c, "SELECT count(*) FROM enroll_certs WHERE revoked_ms > 0", err, errlen);
    if (!s)
        return ENR_EDB;
    if (sqlite3_step(s) == SQLITE_ROW)
        revocations = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    if (!force && revocations == c->crl_revocations && stat(path, &st) == 0 &&
        (int64_t)st.st_mtime * MS + c->cfg->crl_validity_ms / 2 > now_ms)
        return 0;
    /* Every revoked certificate not yet expired (expired ones need no listing). */
    s = prep(c,
             "SELECT serial, revoked_ms FROM enroll_certs WHERE revoked_ms > 0 AND "
             "not_after_ms > ?1 ORDER BY serial",
             err, errlen);
    if (!s)
        return ENR_EDB;
    sqlite3_bind_int64(s, 1, now_ms);
    struct enr_revoked *rv = NULL;
    char(*sn)[ENR_SERIAL_HEX + 1] = NULL;
    size_t n = 0, cap = 0;
    int rc = 0, step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            void *a = realloc(rv, cap * sizeof(*rv)), *b = realloc(sn, cap * sizeof(*sn));
            if (a)
                rv = a;
            if (b)
                sn = b;
            if (!a || !b) {
                rc = ENR_ENOMEM;
                break;
            }
        }
        copy(sn[n], sizeof(sn[n]), sqlite3_column_text(s, 0));
        rv[n].serial = sn[n];
        rv[n].revoked_s = sqlite3_column_int64(s, 1) / MS;
        n++;
    }
    sqlite3_finalize(s);
    if (rc == 0 && step != SQLITE_DONE)
        rc = ENR_EDB;
    for (size_t i = 0; i < n; i++)
        rv[i].serial = sn[i]; /* sn may have moved while growing */
    int64_t number = 0;
    if (rc == 0) {
        s = prep(c, "UPDATE meta SET value = value + 1 WHERE key = 'crl_number' RETURNING value",
                 err, errlen);
        if (s && sqlite3_step(s) == SQLITE_ROW)
            number = sqlite3_column_int64(s, 0);
        else
            rc = ENR_EDB;
        sqlite3_finalize(s);
    }
    unsigned char *der = NULL;
    size_t len = 0;
    if (rc == 0)
        rc = enr_ca_crl(&c->ca, rv, n, now_ms / MS, (now_ms + c->cfg->crl_validity_ms) / MS, number,
                        &der, &len, err, errlen);
    if (rc == 0)
        rc = enr_write_file(path, der, len, 0644, err, errlen);
    if (rc == 0) {
        c->crl_written_ms = now_ms;
        c->crl_revocations = revocations;
        eg_info("enroll: CRL %lld written to %s (%zu revoked)", (long long)number, path, n);
    }
    OPENSSL_free(der);
    free(rv);
    free(sn);
    return rc;
}
