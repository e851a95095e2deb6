/* enr_srv: the enrollment endpoint over common/httpd. See srv.h. */
#include "enroll/srv.h"

#include "common/b64.h"
#include "common/backoff.h"
#include "common/jreq.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/units.h"
#include "core/api.h"
#include "core/auth.h"
#include "core/ctx.h"
#include "enroll/err.h"
#include "enroll/key.h"
#include "enroll/portal.h"
#include "enroll/qr.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CRL_CHECK_MS 60000 /* how often the CRL's age is looked at */
#define CRL_FILE_MAX (16 << 20)
#define SRV_STR_MAX 256 /* longest string field of a request body (a CSR is a JREQ_TEXT) */
/* The longest "expires" of an invitation: ten years, as enroll.invite_expiry. */
#define SRV_EXPIRES_MAX_MS (3650LL * 86400 * 1000)
#define INV_LIST_MAX 1000
#define INV_QUEUE_MAX 256 /* the core API's invitation calls waiting for this loop */
#define SRV_LIMIT_KEYS                                                                             \
    4096 /* addresses and keys the refusal back-off keeps each */ /* invitations one GET returns,  \
                                                                     newest first */

/*
 * Refused enrollments and renewals back off per client address and per
 * enrollment key (common/backoff.h): past enroll.refusal_free_failures
 * within enroll.refusal_window, each refusal doubles the wait before the
 * address, or the key, is heard again; meanwhile it gets 429 with
 * Retry-After and costs no registry work and no log line (5,500 refusals a
 * second each wrote one). The refusal that starts an address's wait is
 * logged saying so. NULL tables (enr_srv_handle, for tests): no limit.
 */
struct srv_limits {
    struct backoff *by_address, *by_key;
    int free;
};
#define CA_WARN_MS (30 * 24 * 3600 * 1000LL) /* the CA's end is audited this long before */

struct enr_srv {
    struct srv_limits lim;
    struct enr_portal *portal; /* the invitation link's pages */
    struct core_ctx core;
    struct enr_ctx enr;
    struct core_auth *auth; /* the admin routes' bearer tokens, on core.reg */
    struct tls_ctx *tls;
    struct core_tpls *tpls;              /* invitation mail templates; NULL = no core.notify.smtp */
    struct core_dir *dir;                /* core.directory for invitations; NULL = none */
    int64_t ca_warned_ms, crl_warned_ms; /* when the last audit row about them was written */
    uv_loop_t loop;
    uv_async_t stop, revoked; /* revoked: enr_srv_revoked */
    uv_timer_t crl;
    struct httpd *httpd;
    pthread_t thread;
    /* The core API's /api/v1/invitations calls (core/api.h), queued by its
     * readers and run on this loop, the one thread that uses enr. */
    pthread_mutex_t inv_mu;
    struct core_api_inv_call *inv_head, **inv_tail;
    size_t inv_queued;
    bool inv_closed; /* stopping: no more calls; set before inv_async closes */
    uv_async_t inv_async;
};

static void answer(struct httpd_resp *r, int status, const char *type, char *body, size_t len)
{
    r->status = status;
    r->content_type = type;
    r->body = body;
    r->len = len;
}

static void answer_json(struct httpd_resp *r, int status, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    answer(r, s ? status : 500, "application/json", s, s ? strlen(s) : 0);
}

static void answer_err(struct httpd_resp *r, int status, const char *msg)
{
    answer_json(r, status, json_pack("{s:s}", "error", msg));
}

static json_t *result_json(const struct enr_result *res)
{
    char na[32];
    time_t t = (time_t)(res->not_after_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(na, sizeof(na), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "device_id", res->device_id, "user",
                          res->user, "email", res->email, "serial", res->serial, "not_after", na,
                          "certificate", res->cert_pem ? res->cert_pem : "");
    if (!o)
        return NULL;
    if (res->p12) {
        char *p = b64_encode_alloc(res->p12, res->p12_len, 0);
        json_object_set_new(o, "pkcs12", json_string(p ? p : ""));
        json_object_set_new(o, "pkcs12_password", json_string(res->p12_password));
        free(p);
    }
    if (res->profile) {
        char *p = b64_encode_alloc(res->profile, res->profile_len, 0);
        json_object_set_new(o, "profile", json_string(p ? p : ""));
        json_object_set_new(o, "profile_type", json_string(res->profile_type));
        free(p);
    }
    return o;
}

/* The body by common/jreq's rule, or NULL after answering 400. */
static json_t *body_object(const struct httpd_req *req, const struct jreq_field *fs,
                           struct httpd_resp *resp)
{
    char err[512];
    json_t *in = jreq_object(req->body, req->body_len, fs, SRV_STR_MAX, err, sizeof(err));
    if (!in)
        answer_err(resp, 400, err);
    return in;
}

static void too_many(struct httpd_resp *resp, int64_t wait_ms)
{
    char msg[96];
    int s = (int)((wait_ms + 999) / 1000);
    snprintf(msg, sizeof(msg), "too many refused requests: try again in %d s", s);
    answer_err(resp, 429, msg);
    resp->retry_after = s;
}

/* Count a refusal of req (key may be NULL): true when it is to be logged. */
static bool refused(struct srv_limits *lim, const struct httpd_req *req, const char *key,
                    int64_t now_ms)
{
    if (!lim || !lim->by_address)
        return true;
    if (key && key[0])
        backoff_fail(lim->by_key, key, now_ms);
    int n = backoff_fail(lim->by_address, req->peer, now_ms);
    if (n == lim->free + 1)
        eg_warn("enroll: %d refusals from %s: it backs off now (further refusals are not logged)",
                n, req->peer);
    return n <= lim->free;
}

static void do_enroll(struct enr_ctx *c, struct srv_limits *lim, const struct httpd_req *req,
                      struct httpd_resp *resp, int64_t now_ms, int renew)
{
    int64_t wait = lim ? backoff_wait(lim->by_address, req->peer, now_ms) : 0;
    if (wait > 0) {
        too_many(resp, wait);
        return;
    }
    static const struct jreq_field enroll_fields[] = {
        {"key", JREQ_STR, true},
        {"device_id", JREQ_STR, true},
        {"csr", JREQ_TEXT, false},
        {"platform", JREQ_STR, false},
        {"generate_key", JREQ_BOOL, false},
        {0},
    };
    static const struct jreq_field renew_fields[] = {
        {"device_id", JREQ_STR, true}, {"csr", JREQ_TEXT, true}, {0}};
    json_t *in = body_object(req, renew ? renew_fields : enroll_fields, resp);
    if (!in) {
        refused(lim, req, NULL, now_ms);
        return;
    }
    const char *key = jreq_str(in, "key");
    /* The key as the registry knows it, so that spellings count as one. */
    char kc[ENR_KEY_CHARS + 1] = "";
    if (key && enr_key_canon(key, kc, NULL, 0) < 0)
        snprintf(kc, sizeof(kc), "%s", key);
    if (lim && kc[0] && (wait = backoff_wait(lim->by_key, kc, now_ms)) > 0) {
        json_decref(in);
        too_many(resp, wait);
        return;
    }
    const char *dev = jreq_str(in, "device_id");
    const char *csr = jreq_str(in, "csr");
    const char *plat = jreq_str(in, "platform");
    int gen = json_is_true(json_object_get(in, "generate_key"));
    enum enr_platform p = ENR_PLAT_NONE;
    const char *bad = NULL;
    if (!renew && !csr == !gen)
        bad = "give either csr (PEM) or \"generate_key\": true";
    else if (enr_platform_parse(plat, &p) < 0)
        bad = "platform must be ios, android or none";
    if (bad) {
        json_decref(in);
        refused(lim, req, kc, now_ms);
        answer_err(resp, 400, bad);
        return;
    }
    struct enr_result res;
    char err[1024] = "";
    int rc;
    if (renew) {
        rc = enr_renew(c, dev, (const unsigned char *)csr, strlen(csr), now_ms, &res, err,
                       sizeof(err));
    } else {
        struct enr_request r = {.key = key,
                                .device_id = dev,
                                .csr = (const unsigned char *)csr,
                                .csr_len = csr ? strlen(csr) : 0,
                                .platform = p,
                                .address = req->peer};
        rc = enr_enroll(c, &r, now_ms, &res, err, sizeof(err));
    }
    json_decref(in);
    if (rc < 0) {
        int st = enr_err_status(rc);
        if (st >= 500 || refused(lim, req, kc, now_ms))
            eg_info("enroll: %s from %s refused (%d): %s", renew ? "renewal" : "enrollment",
                    req->peer, st, err);
        answer_err(resp, st, st >= 500 ? "internal error; see the server log" : err);
        if (st >= 500)
            eg_error("enroll: %s", err);
        return;
    }
    json_t *o = result_json(&res);
    enr_result_free(&res);
    if (!o)
        answer_err(resp, 500, "out of memory");
    else
        answer_json(resp, 200, o);
}

static void do_file(const char *path, const char *type, struct httpd_resp *resp)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    char err[512];
    if (enr_read_file(path, CRL_FILE_MAX, &buf, &len, err, sizeof(err)) < 0) {
        eg_warn("enroll: %s", err);
        answer_err(resp, 404, "not available");
        return;
    }
    answer(resp, 200, type, (char *)buf, len);
}

/* ---- invitations over the API (admin bearer tokens) --------------------- */

static void iso_time(int64_t ms, char *b, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(b, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/*
 * Who calls, and may they? write = create or withdraw (admin only); reading
 * is for admins and viewers. A device token never manages invitations.
 * 0 with *who filled, or -1 with the answer written.
 */
static int authorize(struct core_auth *auth, const struct httpd_req *req, int64_t now_ms, int write,
                     struct core_principal *who, struct httpd_resp *resp)
{
    if (!auth) {
        answer_err(resp, 500, "internal error; see the server log");
        return -1;
    }
    int rc = core_auth_check(auth, req->authorization, now_ms, who);
    if (rc == CORE_AUTH_EDENIED) {
        answer_err(resp, 401,
                   req->authorization ? "the token is unknown, expired or revoked"
                                      : "send Authorization: Bearer TOKEN (an admin API token)");
        return -1;
    }
    if (rc < 0) {
        answer_err(resp, 500, "checking the token failed (registry error)");
        return -1;
    }
    if (who->role == CORE_ROLE_ADMIN || (!write && who->role == CORE_ROLE_VIEWER))
        return 0;
    answer_err(resp, 403,
               who->role == CORE_ROLE_VIEWER
                   ? "the viewer role is read-only: inviting and withdrawing need an admin"
                   : "a device token cannot manage invitations");
    eg_info("enroll: %s %s by %s (role %s) from %s refused", req->method, req->path, who->name,
            core_role_name(who->role), req->peer);
    return -1;
}

/* The body of POST /invitations: known fields of their type, email required. */
static json_t *invite_body(const struct httpd_req *req, struct httpd_resp *resp)
{
    static const struct jreq_field fields[] = {
        {"email", JREQ_STR, false}, /* or group */
        {"group", JREQ_STR, false},
        {"user", JREQ_STR, false},
        {"max_uses", JREQ_INT, false},
        {"expires", JREQ_STR, false},
        {"mail", JREQ_BOOL, false},
        {"lang", JREQ_STR, false},
        {0},
    };
    return body_object(req, fields, resp);
}

/*
 * Every member of a directory group (nested groups included) invited by
 * mail, each invitation its own transaction: a member who is disabled or
 * has no address is skipped and named in the answer, and one failure does
 * not undo the others. The keys are only in the mails.
 */
static void inv_group(struct enr_ctx *c, const struct enr_invite_req *base, const char *group,
                      const struct core_principal *who, struct httpd_resp *resp, int64_t now_ms)
{
    char err[512] = "";
    if (!c->dir) {
        answer_err(resp, 400, "group invitations need core.directory");
        return;
    }
    struct core_dir_user *m = NULL;
    size_t n = 0;
    int rc = core_dir_group_members(c->dir, group, &m, &n, err, sizeof(err));
    if (rc < 0) {
        answer_err(resp, rc == CORE_DIR_ENOTFOUND ? 404 : rc == CORE_DIR_EUNAVAIL ? 503 : 400, err);
        return;
    }
    json_t *invited = json_array(), *skipped = json_array();
    for (size_t i = 0; i < n; i++) {
        const char *why = NULL;
        if (m[i].disabled)
            why = "disabled in the directory";
        else if (!m[i].mail[0])
            why = "no e-mail address in the directory";
        else if (!core_notify_addr_ok(m[i].mail))
            why = "the directory's e-mail address is not one a mail can go to";
        struct enr_invite inv;
        struct enr_invite_req r = *base;
        r.email = m[i].mail;
        r.user = m[i].name;
        r.lang = base->lang ? base->lang : m[i].lang;
        if (!why && (rc = enr_invite(c, &r, now_ms, &inv, err, sizeof(err))) < 0)
            why = err;
        if (why) {
            json_array_append_new(skipped, json_pack("{s:s, s:s}", "user", m[i].name, "why", why));
            continue;
        }
        OPENSSL_cleanse(inv.key, sizeof(inv.key));
        json_array_append_new(invited, json_pack("{s:I, s:s, s:s}", "id", (json_int_t)inv.id,
                                                 "email", inv.email, "user", inv.user));
    }
    free(m);
    eg_info("enroll: group %s invited by %s: %zu invitations, %zu skipped", group, who->name,
            json_array_size(invited), json_array_size(skipped));
    answer_json(
        resp, 201,
        json_pack("{s:s, s:o, s:o}", "group", group, "invited", invited, "skipped", skipped));
}

static void inv_create(struct enr_ctx *c, const struct core_principal *who,
                       const struct httpd_req *req, struct httpd_resp *resp, int64_t now_ms)
{
    json_t *in = invite_body(req, resp);
    if (!in)
        return;
    struct enr_invite_req r = {.email = jreq_str(in, "email"),
                               .user = jreq_str(in, "user"),
                               .max_uses = 1,
                               .actor = who->name,
                               .address = req->peer,
                               .mail = json_is_true(json_object_get(in, "mail")),
                               .lang = jreq_str(in, "lang")};
    json_t *mu = json_object_get(in, "max_uses");
    const char *exp = jreq_str(in, "expires");
    const char *bad = NULL;
    if (mu && (json_integer_value(mu) < 1 || json_integer_value(mu) > 100000))
        bad = "max_uses must be 1 to 100000";
    else if (mu)
        r.max_uses = (int)json_integer_value(mu);
    if (!bad && exp) {
        if (strcmp(exp, "never") == 0)
            r.expires_ms = -1;
        else if (units_deadline(now_ms, exp, SRV_EXPIRES_MAX_MS, &r.expires_ms, NULL) < 0)
            bad = "expires must be a duration such as \"30d\" or \"12h\" (at most 3650d), or "
                  "\"never\"";
    }
    const char *group = jreq_str(in, "group");
    if (!bad && !r.email == !group)
        bad = "give email (one user) or group (every member), not both";
    else if (!bad && group && (r.user || !r.mail))
        bad = "a group invitation is mailed (\"mail\": true) and names no user";
    if (bad) {
        json_decref(in);
        answer_err(resp, 400, bad);
        return;
    }
    if (group) {
        inv_group(c, &r, group, who, resp, now_ms);
        json_decref(in);
        return;
    }
    struct enr_invite inv;
    char err[512] = "";
    int rc = enr_invite(c, &r, now_ms, &inv, err, sizeof(err));
    json_decref(in);
    if (rc < 0) {
        int st = enr_err_status(rc);
        if (st >= 500)
            eg_error("enroll: invitation by %s: %s", who->name, err);
        /* 503: the directory did not answer; the admin may retry, and may know why. */
        answer_err(resp, st, st >= 500 && st != 503 ? "internal error; see the server log" : err);
        return;
    }
    char ex[32] = "never";
    if (inv.expires_ms)
        iso_time(inv.expires_ms, ex, sizeof(ex));
    json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:i, s:s, s:s, s:s}", "id", (json_int_t)inv.id,
                          "email", inv.email, "user", inv.user, "key", inv.key, "max_uses",
                          inv.max_uses, "expires", ex, "url", inv.url, "note",
                          "the key is shown only this once; only its hash is stored");
    if (o && inv.url[0]) {
        /* The QR code is of the URL, which holds the key: it too exists only now. */
        unsigned char *png = NULL;
        size_t len = 0;
        if (enr_qr_png(inv.url, ENR_QR_SCALE, &png, &len) == 0) {
            char *p = b64_encode_alloc(png, len, 0);
            json_object_set_new(o, "qr_png", json_string(p ? p : ""));
            free(p);
        }
        free(png);
    }
    OPENSSL_cleanse(inv.key, sizeof(inv.key));
    OPENSSL_cleanse(inv.url, sizeof(inv.url));
    eg_info("enroll: invitation %lld for %s created by %s from %s", (long long)inv.id, inv.email,
            who->name, req->peer);
    if (!o)
        answer_err(resp, 500, "out of memory");
    else
        answer_json(resp, 201, o);
}

static const char *inv_state(const struct enr_invite *v, int64_t now_ms)
{
    if (v->revoked_ms)
        return "withdrawn";
    if (v->uses >= v->max_uses)
        return "used";
    if (v->expires_ms && now_ms >= v->expires_ms)
        return "expired";
    return "open";
}

static void inv_list(struct enr_ctx *c, const struct core_principal *who,
                     const struct httpd_req *req, struct httpd_resp *resp, int64_t now_ms)
{
    char email[SRV_STR_MAX + 1];
    int has = httpd_query_get(req->query, "email", email, sizeof(email));
    if (has < 0) {
        answer_err(resp, 400, "query parameter 'email' is too long or badly encoded");
        return;
    }
    for (const char *q = req->query; q && *q;) {
        size_t l = strcspn(q, "&");
        if (l && !(l >= 5 && strncmp(q, "email", 5) == 0 && (l == 5 || q[5] == '='))) {
            char m[128];
            snprintf(m, sizeof(m), "unknown query parameter '%.*s' (known: email)",
                     (int)strcspn(q, "=&") > 64 ? 64 : (int)strcspn(q, "=&"), q);
            answer_err(resp, 400, m);
            return;
        }
        q += l + (q[l] == '&');
    }
    struct enr_invite *v = calloc(INV_LIST_MAX, sizeof(*v));
    size_t n = 0;
    if (!v || enr_invite_list(c, has ? email : NULL, v, INV_LIST_MAX, &n) < 0) {
        free(v);
        answer_err(resp, 500, "listing the invitations failed; see the server log");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        char ex[32] = "never", cr[32], rv[32];
        if (v[i].expires_ms)
            iso_time(v[i].expires_ms, ex, sizeof(ex));
        iso_time(v[i].created_ms, cr, sizeof(cr));
        if (v[i].revoked_ms)
            iso_time(v[i].revoked_ms, rv, sizeof(rv));
        json_array_append_new(arr, json_pack("{s:I, s:s, s:s, s:i, s:i, s:s, s:s, s:o, s:s}", "id",
                                             (json_int_t)v[i].id, "email", v[i].email, "user",
                                             v[i].user, "max_uses", v[i].max_uses, "uses",
                                             v[i].uses, "expires", ex, "created", cr, "withdrawn",
                                             v[i].revoked_ms ? json_string(rv) : json_null(),
                                             "state", inv_state(&v[i], now_ms)));
    }
    free(v);
    core_reg_audit_add(c->eng->reg, who->name, req->peer, "enroll.invite_list", has ? email : "*",
                       "", now_ms);
    if (!arr)
        answer_err(resp, 500, "out of memory");
    else
        answer_json(resp, 200, json_pack("{s:o}", "invitations", arr));
}

/* via: the route that was asked, for the audit line. */
static void inv_delete(struct enr_ctx *c, const struct core_principal *who,
                       const struct httpd_req *req, const char *id_s, struct httpd_resp *resp,
                       int64_t now_ms, const char *via)
{
    char *end;
    long long id = strtoll(id_s, &end, 10);
    if (!*id_s || *end || id <= 0) {
        answer_err(resp, 400, "the invitation id is a positive number");
        return;
    }
    char err[512] = "";
    int rc = enr_invite_revoke(c, id, who->name, now_ms, err, sizeof(err));
    if (rc < 0) {
        int st = enr_err_status(rc);
        answer_err(resp, st, st >= 500 ? "internal error; see the server log" : err);
        return;
    }
    /* enr_invite_revoke's own audit line has no address: this one says where from. */
    core_reg_audit_add(c->eng->reg, who->name, req->peer, "enroll.uninvite", id_s, via, now_ms);
    eg_info("enroll: invitation %lld withdrawn by %s from %s", id, who->name, req->peer);
    answer_json(resp, 200, json_pack("{s:I, s:s}", "id", (json_int_t)id, "state", "withdrawn"));
}

static void handle(struct enr_ctx *c, struct srv_limits *lim, struct core_auth *auth,
                   struct enr_portal *portal, const struct httpd_req *req, struct httpd_resp *resp,
                   int64_t now_ms)
{
    if (portal && enr_portal_handle(portal, c, req, resp, now_ms))
        return;
    static const struct httpd_route routes[] = {
        {"POST", "/enroll/v1/enroll"},
        {"POST", "/enroll/v1/renew"},
        {"GET", "/enroll/v1/crl"},
        {"GET", "/enroll/v1/ca"},
        {"POST", "/enroll/v1/invitations"},
        {"GET", "/enroll/v1/invitations"},
        {"DELETE", "/enroll/v1/invitations/:id"},
        {NULL, NULL},
    };
    char params[HTTPD_PARAMS_MAX][HTTPD_PARAM_LEN];
    int r = httpd_route_match(routes, req->method, req->path, params);
    struct core_principal who;
    if (r >= 4 && authorize(auth, req, now_ms, r != 5, &who, resp) < 0)
        return;
    switch (r) {
    case 0:
    case 1:
        do_enroll(c, lim, req, resp, now_ms, r == 1);
        return;
    case 2:
        enr_crl_update(c, false, now_ms, NULL, 0);
        do_file(c->cfg->crl_path, "application/pkix-crl", resp);
        return;
    case 3:
        do_file(c->cfg->ca.cert, "application/x-pem-file", resp);
        return;
    case 4:
        inv_create(c, &who, req, resp, now_ms);
        return;
    case 5:
        inv_list(c, &who, req, resp, now_ms);
        return;
    case 6:
        inv_delete(c, &who, req, params[0], resp, now_ms, "DELETE /enroll/v1/invitations");
        return;
    case -400:
        answer_err(resp, 400, "a path segment is too long or badly encoded");
        return;
    case -405:
        answer_err(resp, 405, "method not allowed");
        return;
    default:
        answer_err(resp, 404, "no such endpoint");
        return;
    }
}

void enr_srv_handle(struct enr_ctx *c, const struct httpd_req *req, struct httpd_resp *resp,
                    int64_t now_ms)
{
    /* Callers without a server (tests) get the tokens checked all the same. */
    struct core_auth *auth = NULL;
    if (core_auth_open(c->eng->reg, &auth) < 0)
        auth = NULL;
    /* A portal per call: its pages work, its downloads and budgets do not last. */
    struct enr_portal *portal = enr_portal_new(c->cfg);
    handle(c, NULL, auth, portal, req, resp, now_ms);
    enr_portal_free(portal);
    core_auth_close(auth);
}

static void on_request(void *arg, const struct httpd_req *req, struct httpd_resp *resp)
{
    struct enr_srv *s = arg;
    handle(&s->enr, &s->lim, s->auth, s->portal, req, resp, core_now_ms());
}

/* ---- invitations for the core's API (core/api.h, core_api_invitations) ---- */

/* One call, authenticated and its role checked by the core: the same
 * handlers, checks and audit lines as this endpoint's own routes. */
static void inv_call(struct enr_ctx *c, struct core_api_inv_call *k, int64_t now_ms)
{
    switch (k->op) {
    case CORE_API_INV_CREATE:
        inv_create(c, &k->who, k->req, k->resp, now_ms);
        return;
    case CORE_API_INV_LIST:
        inv_list(c, &k->who, k->req, k->resp, now_ms);
        return;
    case CORE_API_INV_WITHDRAW:
        inv_delete(c, &k->who, k->req, k->id ? k->id : "", k->resp, now_ms,
                   "DELETE /api/v1/invitations");
        return;
    }
    answer_err(k->resp, 500, "internal error; see the server log");
}

/* Any thread (the core API's readers). */
static int inv_submit(void *arg, struct core_api_inv_call *call)
{
    struct enr_srv *s = arg;
    pthread_mutex_lock(&s->inv_mu);
    bool ok = !s->inv_closed && s->inv_queued < INV_QUEUE_MAX;
    if (ok) {
        call->next = NULL;
        *s->inv_tail = call;
        s->inv_tail = &call->next;
        s->inv_queued++;
        /* under the lock: on_stop closes the handle only after inv_closed */
        uv_async_send(&s->inv_async);
    }
    pthread_mutex_unlock(&s->inv_mu);
    return ok ? 0 : -1;
}

static struct core_api_inv_call *inv_take(struct enr_srv *s, bool close)
{
    pthread_mutex_lock(&s->inv_mu);
    struct core_api_inv_call *list = s->inv_head;
    s->inv_head = NULL;
    s->inv_tail = &s->inv_head;
    s->inv_queued = 0;
    if (close)
        s->inv_closed = true;
    pthread_mutex_unlock(&s->inv_mu);
    return list;
}

static void on_inv(uv_async_t *a)
{
    struct enr_srv *s = a->data;
    for (struct core_api_inv_call *k = inv_take(s, false), *next; k; k = next) {
        next = k->next; /* done() hands k back: not ours after it */
        inv_call(&s->enr, k, core_now_ms());
        k->done(k);
    }
}

void enr_srv_invitations(struct enr_srv *s, struct core_api_inv *out)
{
    *out = (struct core_api_inv){.submit = inv_submit, .arg = s};
}

/*
 * The CA nearing its end and a CRL that cannot be refreshed are audit
 * events (enroll.ca_expiring, enroll.crl_failed), so admins and webhooks
 * hear of them (docs/notifications.md); at most one row a day (CA) or an
 * hour (CRL) per process.
 */
static void audit_ca(struct enr_srv *s, int64_t now_ms, const char *crl_err)
{
    int64_t na = enr_cert_not_after(s->enr.ca.cert) * 1000;
    char detail[600];
    if (na > 0 && na - now_ms < CA_WARN_MS && now_ms - s->ca_warned_ms >= 24 * 3600 * 1000LL) {
        snprintf(detail, sizeof(detail),
                 "the device CA ends in %lld days: renew it (docs/enrollment.md)",
                 (long long)((na - now_ms) / (24 * 3600 * 1000LL)));
        if (core_reg_audit_add(s->core.reg, "enroll", "", "enroll.ca_expiring", "device-ca", detail,
                               now_ms) == 0)
            s->ca_warned_ms = now_ms;
    }
    if (crl_err && now_ms - s->crl_warned_ms >= 3600 * 1000LL) {
        snprintf(detail, sizeof(detail), "the CRL could not be refreshed: %.500s", crl_err);
        if (core_reg_audit_add(s->core.reg, "enroll", "", "enroll.crl_failed", "device-ca", detail,
                               now_ms) == 0)
            s->crl_warned_ms = now_ms;
    }
}

static void on_crl(uv_timer_t *t)
{
    struct enr_srv *s = t->data;
    char err[512];
    int64_t now = core_now_ms();
    int rc = enr_crl_update(&s->enr, false, now, err, sizeof(err));
    if (rc < 0)
        eg_error("enroll: CRL refresh failed: %s", err);
    audit_ca(s, now, rc < 0 ? err : NULL);
}

/* A certificate was revoked elsewhere (the admin API): the CRL at once. */
static void on_revoked(uv_async_t *a)
{
    struct enr_srv *s = a->data;
    char err[512];
    if (enr_crl_update(&s->enr, false, core_now_ms(), err, sizeof(err)) < 0)
        eg_error("enroll: CRL not rewritten after a revocation: %s", err);
}

void enr_srv_revoked(void *srv)
{
    uv_async_send(&((struct enr_srv *)srv)->revoked);
}

static void close_cb(uv_handle_t *h)
{
    (void)h;
}

static void on_stop(uv_async_t *a)
{
    struct enr_srv *s = a->data;
    if (s->httpd)
        httpd_stop(s->httpd);
    /* The core's API stops before this endpoint; calls still queued then
     * are answered, not run. */
    for (struct core_api_inv_call *k = inv_take(s, true), *next; k; k = next) {
        next = k->next;
        answer_err(k->resp, 503, "the enrollment role is stopping");
        k->done(k);
    }
    uv_close((uv_handle_t *)&s->inv_async, close_cb);
    uv_close((uv_handle_t *)&s->crl, close_cb);
    uv_close((uv_handle_t *)&s->stop, close_cb);
    uv_close((uv_handle_t *)&s->revoked, close_cb);
}

static void *srv_main(void *arg)
{
    struct enr_srv *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void srv_free(struct enr_srv *s)
{
    backoff_free(s->lim.by_address);
    backoff_free(s->lim.by_key);
    enr_portal_free(s->portal);
    core_auth_close(s->auth);
    enr_close(&s->enr);
    core_tpls_free(s->tpls);
    core_dir_close(s->dir);
    core_ctx_close(&s->core);
    tls_ctx_free(s->tls);
    pthread_mutex_destroy(&s->inv_mu);
    free(s);
}

int enr_srv_start(const char *config, struct enr_srv **out, char *err, size_t errlen)
{
    *out = NULL;
    struct enr_srv *s = calloc(1, sizeof(*s));
    if (!s)
        return ENR_ENOMEM;
    pthread_mutex_init(&s->inv_mu, NULL);
    s->inv_tail = &s->inv_head;
    enr_cfg_register();
    if (core_ctx_open(&s->core, config, CORE_REDIS_TRY, err, errlen) != 0) {
        srv_free(s);
        return ENR_EINVAL;
    }
    const struct enr_cfg *cfg = enr_cfg_get(s->core.conf);
    if (!cfg || cfg->listen.port == 0) {
        srv_free(s);
        return 0;
    }
    if (!cfg->tls.cert) {
        snprintf(err, errlen,
                 "enroll.listen %s needs enroll.tls (cert and key): enrollment "
                 "carries keys and certificates",
                 cfg->listen.text);
        srv_free(s);
        return ENR_EINVAL;
    }
    struct tls_server_opts to = {.cert = cfg->tls.cert, .key = cfg->tls.key};
    char e[512];
    if (tls_ctx_server(&to, &s->tls, e, sizeof(e)) < 0) {
        snprintf(err, errlen, "enroll.tls: %s", e);
        srv_free(s);
        return ENR_EINVAL;
    }
    if (enr_open(&s->enr, cfg, &s->core.eng, err, errlen) < 0) {
        srv_free(s);
        return ENR_EINVAL;
    }
    struct backoff_cfg bc = {.free = cfg->refusal_free_failures,
                             .window_ms = cfg->refusal_window_ms,
                             .base_ms = cfg->refusal_backoff_ms,
                             .max_ms = cfg->refusal_backoff_max_ms,
                             .max_keys = SRV_LIMIT_KEYS};
    s->lim.free = cfg->refusal_free_failures;
    if (!(s->lim.by_address = backoff_new(&bc)) || !(s->lim.by_key = backoff_new(&bc)) ||
        !(s->portal = enr_portal_new(cfg))) {
        snprintf(err, errlen, "out of memory");
        srv_free(s);
        return ENR_ENOMEM;
    }
    const struct core_notify_cfg *nc = &s->core.cfg->notify;
    if (nc->enabled && nc->smtp.url) {
        if (core_tpls_load(nc->templates, &s->tpls, err, errlen) < 0) {
            srv_free(s);
            return ENR_EINVAL;
        }
        s->enr.notify = nc;
        s->enr.tpls = s->tpls;
    }
    if (s->core.cfg->directory.enabled) {
        if (core_dir_open(&s->core.cfg->directory, &s->dir, err, errlen) < 0) {
            srv_free(s);
            return ENR_EINVAL;
        }
        s->enr.dir = s->dir;
    }
    if (core_auth_open(s->core.reg, &s->auth) < 0) {
        snprintf(err, errlen, "enroll: cannot open the accounts tables of the registry");
        srv_free(s);
        return ENR_EDB;
    }
    uv_loop_init(&s->loop);
    struct httpd_opts ho = {.tls = s->tls,
                            .max_body = (size_t)cfg->max_body,
                            .keepalive = 1,
                            .max_per_client = cfg->max_conns_per_client,
                            .head_ms = cfg->head_timeout_ms};
    int r = httpd_serve(&s->loop, (const struct sockaddr *)&cfg->listen.sa, &ho, on_request, s,
                        &s->httpd);
    if (r < 0) {
        snprintf(err, errlen, "enroll.listen %s: %s", cfg->listen.text, uv_strerror(r));
        uv_run(&s->loop, UV_RUN_DEFAULT);
        uv_loop_close(&s->loop);
        srv_free(s);
        return ENR_EIO;
    }
    uv_async_init(&s->loop, &s->stop, on_stop);
    uv_async_init(&s->loop, &s->revoked, on_revoked);
    s->stop.data = s->revoked.data = s;
    uv_async_init(&s->loop, &s->inv_async, on_inv);
    s->inv_async.data = s;
    uv_timer_init(&s->loop, &s->crl);
    s->crl.data = s;
    uv_timer_start(&s->crl, on_crl, 0, CRL_CHECK_MS);
    if (pthread_create(&s->thread, NULL, srv_main, s) != 0) {
        snprintf(err, errlen, "enroll: cannot start its thread");
        on_stop(&s->stop);
        uv_run(&s->loop, UV_RUN_DEFAULT);
        uv_loop_close(&s->loop);
        srv_free(s);
        return ENR_EIO;
    }
    eg_info("enroll: endpoint on https://%s/enroll/v1", cfg->listen.text);
    *out = s;
    return 0;
}

void enr_srv_stop(struct enr_srv *s)
{
    if (!s)
        return;
    uv_async_send(&s->stop);
    pthread_join(s->thread, NULL);
    uv_loop_close(&s->loop);
    srv_free(s);
}
