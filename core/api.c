/*
 * core_api: routes, validation and JSON for /api/v1, and the thread that
 * serves them. See api.h.
 *
 * Validation comes before any write: a body is parsed whole (duplicate keys
 * refused), every field must be known and of its type, then the call runs.
 * So a rejected request has changed nothing.
 */
#include "core/api.h"

#include "common/jreq.h"
#include "common/log.h"
#include "common/logfile.h"
#include "common/promx.h"
#include "common/tls.h"
#include "core/auth.h"
#include "core/eng.h"
#include "core/metrics.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define API_LIST_DEFAULT 100
#define API_LIST_MAX 1000
#define API_HISTORY_MAX 50
#define API_STR_MAX 255
/* A check-in's own time may run ahead of ours by this much (clock skew). */
#define API_CLOCK_SKEW_MS (5 * 60 * 1000)
/* /metrics: the core's counters, process and certificate gauges. */
#define API_METRICS_MAX (256 * 1024)
#define API_LOG_LINE_MAX 2048

struct core_api {
    struct core_reg *reg;
    struct rstore_push *push;
    struct core_eng eng;
    struct core_auth *auth;
    struct core_api_opts o;
    /* the service (core_api_start): what it opened and owns */
    bool owns;
    bool batching;   /* check-ins of one loop iteration share a transaction */
    bool batch_open; /* that transaction is open */
    uv_loop_t loop;
    uv_async_t stop;
    uv_timer_t retry;
    struct httpd *httpd;
    struct tls_ctx *tls;
    pthread_t thread;
    uv_timer_t rules_timer;
    const char *policy_path; /* the conf's (immutable, outlives the thread) */
    const struct conf *conf; /* likewise: redis.url or redis.sentinel */
    struct rstore_sync_opts po;
    char redis_host[256];
    int64_t retry_ms;
};

/* ---- replies --------------------------------------------------------------- */

static void reply(struct httpd_resp *r, int status, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    size_t n = s ? strlen(s) : 0;
    char *b = s ? realloc(s, n + 2) : NULL;
    if (!b) {
        free(s);
        r->status = 500;
        r->content_type = "application/json";
        r->body = strdup("{\"error\":\"out of memory\"}\n");
        r->len = r->body ? strlen(r->body) : 0;
        return;
    }
    b[n] = '\n';
    b[n + 1] = '\0';
    r->status = status;
    r->content_type = "application/json";
    r->body = b;
    r->len = n + 1;
}

__attribute__((format(printf, 3, 4))) static void fail(struct httpd_resp *r, int status,
                                                       const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    reply(r, status, json_pack("{s:s}", "error", msg));
}

/* ---- request bodies -------------------------------------------------------- */

/*
 * The body as a JSON object by common/jreq's rule (known fields of their
 * type, no duplicates, strings up to API_STR_MAX). NULL after answering the
 * error (400, or 415 for a body that says it is not JSON).
 */
static json_t *body_object(const struct httpd_req *req, const struct jreq_field *fs,
                           struct httpd_resp *r)
{
    if (req->body_len && req->content_type &&
        strncasecmp(req->content_type, "application/json", 16) != 0) {
        fail(r, 415, "send the body as application/json (got '%.64s')", req->content_type);
        return NULL;
    }
    char err[512];
    json_t *j = jreq_object(req->body, req->body_len, fs, API_STR_MAX, err, sizeof(err));
    if (!j)
        fail(r, 400, "%s", err);
    return j;
}

static enum compliance_tri jtri(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v))
        return COMPLIANCE_UNKNOWN;
    return json_is_true(v) ? COMPLIANCE_YES : COMPLIANCE_NO;
}

/* ---- query strings --------------------------------------------------------- */

/* 0 if every parameter of q is in allowed, else answers 400. */
static int query_known(const char *q, const char *const *allowed, struct httpd_resp *r)
{
    while (q && *q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', len);
        size_t nl = eq ? (size_t)(eq - q) : len;
        bool ok = nl == 0;
        for (const char *const *a = allowed; !ok && *a; a++)
            ok = strlen(*a) == nl && memcmp(*a, q, nl) == 0;
        if (!ok) {
            fail(r, 400, "unknown query parameter '%.*s'", (int)(nl > 64 ? 64 : nl), q);
            return -1;
        }
        q = amp ? amp + 1 : NULL;
    }
    return 0;
}

/* A query parameter into out; 1 present, 0 absent, -1 answered 400. */
static int qget(const struct httpd_req *req, const char *k, char *out, size_t n,
                struct httpd_resp *r)
{
    int rc = httpd_query_get(req->query, k, out, n);
    if (rc < 0)
        fail(r, 400, "query parameter '%s' is too long or badly encoded", k);
    return rc;
}

static int qint(const struct httpd_req *req, const char *k, int64_t lo, int64_t hi, int64_t *out,
                struct httpd_resp *r)
{
    char b[32];
    int rc = qget(req, k, b, sizeof(b), r);
    if (rc <= 0)
        return rc;
    char *end;
    long long v = strtoll(b, &end, 10);
    if (!b[0] || *end || v < lo || v > hi) {
        fail(r, 400, "query parameter '%s' must be an integer from %lld to %lld", k, (long long)lo,
             (long long)hi);
        return -1;
    }
    *out = v;
    return 1;
}

/* ---- JSON of registry rows ------------------------------------------------- */

static json_t *tri_json(enum compliance_tri t)
{
    return t == COMPLIANCE_UNKNOWN ? json_null() : json_boolean(t == COMPLIANCE_YES);
}

static json_t *device_json(const struct core_device *d)
{
    json_t *j = json_object();
    json_object_set_new(j, "device_id", json_string(d->device_id));
    json_object_set_new(j, "user", json_string(d->user));
    json_object_set_new(j, "device_type", json_string(d->device_type));
    json_object_set_new(j, "model", json_string(d->model));
    json_object_set_new(j, "os", json_string(d->os));
    json_object_set_new(j, "os_version", json_string(d->os_version));
    json_object_set_new(j, "imei", json_string(d->imei));
    json_object_set_new(j, "friendly_name", json_string(d->friendly_name));
    json_object_set_new(j, "phone_number", json_string(d->phone_number));
    json_object_set_new(j, "user_agent", json_string(d->user_agent));
    json_object_set_new(j, "managed", json_boolean(d->managed));
    json_object_set_new(j, "state", json_string(compliance_state_name(d->state)));
    json_object_set_new(j, "reason", json_string(d->reason));
    json_object_set_new(j, "override", json_string(compliance_override_name(d->override)));
    json_object_set_new(j, "version", json_integer(d->version));
    json_object_set_new(j, "passcode", tri_json(d->passcode));
    json_object_set_new(j, "encrypted", tri_json(d->encrypted));
    json_object_set_new(j, "jailbroken", tri_json(d->jailbroken));
    json_object_set_new(j, "agent_version", json_string(d->agent_version));
    json_object_set_new(j, "first_seen", json_integer(d->first_seen_ms));
    json_object_set_new(j, "last_seen", json_integer(d->last_seen_ms));
    json_object_set_new(j, "last_checkin", json_integer(d->last_checkin_ms));
    json_object_set_new(j, "updated", json_integer(d->updated_ms));
    json_object_set_new(j, "non_compliant_since", json_integer(d->non_compliant_since_ms));
    json_object_set_new(j, "wipe_acked", json_integer(d->wipe_acked_ms));
    json_object_set_new(j, "wipe_kind", json_string(d->wipe_account ? "account" : "full"));
    json_object_set_new(j, "eas_version", json_string(d->eas_version));
    json_object_set_new(j, "pk_epoch", json_integer(d->pk_epoch));
    json_object_set_new(j, "policy_key", json_integer(d->policy_key));
    json_object_set_new(j, "provisioned", json_integer(d->provisioned_ms));
    return j;
}

/* ---- handlers -------------------------------------------------------------- */

struct call {
    struct core_api *a;
    const struct httpd_req *req;
    struct httpd_resp *r;
    struct core_principal who;
    char (*p)[HTTPD_PARAM_LEN];
    int64_t now;
};

static int64_t now_ms(const struct core_api *a)
{
    return a->o.now_ms ? a->o.now_ms() : core_now_ms();
}

/* The canonical DeviceId of a path parameter, or 400. */
static int path_devid(struct call *c, const char *in, char *id)
{
    if (core_reg_devid(in, id) < 0) {
        fail(c->r, 400, "'%.64s' is not a DeviceId (1-32 letters and digits)", in);
        return -1;
    }
    return 0;
}

static void h_devices(struct call *c)
{
    static const char *const allowed[] = {"user",        "state", "type",  "managed", "seen_since",
                                          "seen_before", "limit", "after", NULL};
    if (query_known(c->req->query, allowed, c->r) < 0)
        return;
    struct core_dev_filter f;
    core_dev_filter_init(&f);
    char user[CORE_USER_MAX], type[CORE_SHORT_MAX], state[32], managed[8], after[64];
    int rc;
    if ((rc = qget(c->req, "user", user, sizeof(user), c->r)) < 0)
        return;
    if (rc)
        f.user = user;
    if ((rc = qget(c->req, "type", type, sizeof(type), c->r)) < 0)
        return;
    if (rc)
        f.device_type = type;
    if ((rc = qget(c->req, "state", state, sizeof(state), c->r)) < 0)
        return;
    if (rc) {
        enum compliance_state s;
        if (compliance_state_parse(state, &s) < 0) {
            fail(c->r, 400, "state must be allow, block, quarantine or wipe");
            return;
        }
        f.state = (int)s;
    }
    if ((rc = qget(c->req, "managed", managed, sizeof(managed), c->r)) < 0)
        return;
    if (rc) {
        if (!strcmp(managed, "yes") || !strcmp(managed, "true"))
            f.managed = 1;
        else if (!strcmp(managed, "no") || !strcmp(managed, "false"))
            f.managed = 0;
        else {
            fail(c->r, 400, "managed must be yes or no");
            return;
        }
    }
    if ((rc = qget(c->req, "after", after, sizeof(after), c->r)) < 0)
        return;
    char after_id[CORE_DEVID_MAX + 1];
    if (rc) {
        if (core_reg_devid(after, after_id) < 0) {
            fail(c->r, 400, "after must be a DeviceId (the 'next' of the previous page)");
            return;
        }
        f.after = after_id;
    }
    int64_t limit = API_LIST_DEFAULT;
    if (qint(c->req, "seen_since", 0, INT64_MAX, &f.seen_since_ms, c->r) < 0 ||
        qint(c->req, "seen_before", 0, INT64_MAX, &f.seen_before_ms, c->r) < 0 ||
        qint(c->req, "limit", 1, API_LIST_MAX, &limit, c->r) < 0)
        return;
    struct core_device *d = malloc(sizeof(*d) * (size_t)(limit + 1));
    if (!d) {
        fail(c->r, 500, "out of memory");
        return;
    }
    size_t n = 0;
    if (core_reg_device_list(c->a->reg, &f, d, (size_t)limit + 1, &n) < 0) {
        free(d);
        fail(c->r, 500, "reading the registry failed");
        return;
    }
    bool more = n > (size_t)limit;
    if (more)
        n = (size_t)limit;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, device_json(&d[i]));
    json_t *next = more ? json_string(d[n - 1].device_id) : json_null();
    free(d);
    reply(c->r, 200, json_pack("{s:o,s:o}", "devices", arr, "next", next));
}

static void h_device(struct call *c)
{
    if (query_known(c->req->query, (const char *const[]){NULL}, c->r) < 0)
        return;
    char id[CORE_DEVID_MAX + 1];
    if (path_devid(c, c->p[0], id) < 0)
        return;
    struct core_device d;
    int rc = core_reg_device_get(c->a->reg, id, &d);
    if (rc == CORE_REG_ENOTFOUND) {
        fail(c->r, 404, "no device %s", id);
        return;
    }
    struct core_action *h = malloc(sizeof(*h) * API_HISTORY_MAX);
    size_t n = 0;
    if (rc < 0 || !h || core_reg_action_list(c->a->reg, id, 0, h, API_HISTORY_MAX, &n) < 0) {
        free(h);
        fail(c->r, 500, "reading the registry failed");
        return;
    }
    json_t *hist = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(hist, json_pack("{s:I,s:I,s:s,s:s,s:s}", "id", (json_int_t)h[i].id,
                                              "at", (json_int_t)h[i].at_ms, "action", h[i].action,
                                              "actor", h[i].actor, "note", h[i].note));
    free(h);
    reply(c->r, 200, json_pack("{s:o,s:o}", "device", device_json(&d), "history", hist));
}

static void do_action(struct call *c, const char *devid, const char *action)
{
    static const struct jreq_field fs[] = {
        {"note", JREQ_STR, false}, {"user", JREQ_STR, false}, {"kind", JREQ_STR, false}, {0}};
    enum core_act act;
    /* The account-only wipe is the wipe action with {"kind":"account"}. */
    if (core_action_parse(action, &act) < 0 || act == CORE_ACT_WIPE_ACCOUNT) {
        fail(c->r, 404,
             "unknown action '%.32s' (allow, block, quarantine, wipe, reset, delete, manage, "
             "unmanage, reprovision)",
             action);
        return;
    }
    char id[CORE_DEVID_MAX + 1];
    if (path_devid(c, devid, id) < 0)
        return;
    json_t *b = body_object(c->req, fs, c->r);
    if (!b)
        return;
    if (jreq_str(b, "user") && act != CORE_ACT_MANAGE) {
        json_decref(b);
        fail(c->r, 400, "field 'user' goes with the manage action only");
        return;
    }
    const char *kind = jreq_str(b, "kind");
    if (kind && act != CORE_ACT_WIPE) {
        json_decref(b);
        fail(c->r, 400, "field 'kind' goes with the wipe action only");
        return;
    }
    if (kind && strcmp(kind, "full") != 0 && strcmp(kind, "account") != 0) {
        json_decref(b);
        fail(c->r, 400, "field 'kind' must be \"full\" or \"account\" (account-only wipe)");
        return;
    }
    if (kind && strcmp(kind, "account") == 0)
        act = CORE_ACT_WIPE_ACCOUNT;
    int ex = core_reg_device_exists(c->a->reg, id);
    if (ex <= 0) {
        json_decref(b);
        if (ex == 0)
            fail(c->r, 404, "no device %s", id);
        else
            fail(c->r, 500, "reading the registry failed");
        return;
    }
    int rc = core_eng_action(&c->a->eng, id, act, jreq_str(b, "user"), c->who.name, c->req->peer,
                             jreq_str(b, "note") ? jreq_str(b, "note") : "", c->now);
    json_decref(b);
    if (rc == CORE_REG_ENOTFOUND) {
        fail(c->r, 404, "no device %s", id);
        return;
    }
    if (rc == CORE_REG_EPROTO) {
        struct core_device pd;
        bool got = core_reg_device_get(c->a->reg, id, &pd) == 0 && pd.eas_version[0];
        fail(c->r, 409,
             "account-only wipe of %s refused: the device last spoke ActiveSync %s, and "
             "AccountOnlyRemoteWipe needs 16.1 or later (an older phone only knows the full "
             "wipe); nothing changed. Send {\"kind\":\"full\"} to order a full wipe",
             id, got ? pd.eas_version : "(never seen)");
        return;
    }
    if (rc < 0) {
        fail(c->r, 500, "the %s of %s failed (registry error); nothing changed", action, id);
        return;
    }
    eg_info("api: %s (%s) %s %s", c->who.name, c->req->peer, action, id);
    bool pushed = !c->a->eng.dirty && c->a->eng.push;
    if (act == CORE_ACT_DELETE) {
        reply(c->r, 200, json_pack("{s:s,s:b}", "deleted", id, "pushed", pushed));
        return;
    }
    struct core_device d;
    if (core_reg_device_get(c->a->reg, id, &d) < 0) {
        fail(c->r, 500, "reading the registry failed");
        return;
    }
    reply(c->r, 200, json_pack("{s:o,s:b}", "device", device_json(&d), "pushed", pushed));
}

static void h_action(struct call *c)
{
    do_action(c, c->p[0], c->p[1]);
}

static void h_delete(struct call *c)
{
    do_action(c, c->p[0], "delete");
}

static void h_checkin(struct call *c)
{
    static const struct jreq_field fs[] = {
        {"device_id", JREQ_STR, true},
        {"os", JREQ_STR, false},
        {"os_version", JREQ_STR, false},
        {"passcode", JREQ_TRI, false},
        {"encrypted", JREQ_TRI, false},
        {"jailbroken", JREQ_TRI, false},
        {"agent_version", JREQ_STR, false},
        {"time", JREQ_INT, false},
        {0},
    };
    json_t *b = body_object(c->req, fs, c->r);
    if (!b)
        return;
    char id[CORE_DEVID_MAX + 1];
    if (core_reg_devid(jreq_str(b, "device_id"), id) < 0) {
        fail(c->r, 400, "device_id '%.64s' is not a DeviceId (1-32 letters and digits)",
             jreq_str(b, "device_id"));
        json_decref(b);
        return;
    }
    json_t *t = json_object_get(b, "time");
    if (t && json_integer_value(t) > c->now + API_CLOCK_SKEW_MS) {
        fail(c->r, 400, "time is in the future (more than 5 minutes ahead of the core's clock)");
        json_decref(b);
        return;
    }
    const char *osv = jreq_str(b, "os_version");
    struct compliance_ver ver;
    if (osv && osv[0] && compliance_ver_parse(osv, &ver) < 0) {
        fail(c->r, 400, "os_version '%.64s' is not a version like 16.1 or 16.1.2", osv);
        json_decref(b);
        return;
    }
    struct core_checkin ci = {
        .os = jreq_str(b, "os"),
        .os_version = osv,
        .agent_version = jreq_str(b, "agent_version"),
        .passcode = jtri(b, "passcode"),
        .encrypted = jtri(b, "encrypted"),
        .jailbroken = jtri(b, "jailbroken"),
    };
    /* Group commit: the first check-in of a loop iteration opens a
     * transaction that batch_end commits before any of the answers leave;
     * each check-in inside it is a savepoint of its own. */
    if (c->a->batching && !c->a->batch_open) {
        if (core_eng_begin(&c->a->eng) < 0) {
            json_decref(b);
            fail(c->r, 500, "the registry is busy; try again");
            return;
        }
        c->a->batch_open = true;
    }
    /* core_eng_checkin's steps, keeping the evaluated device for the
     * answer (one registry read less per check-in). */
    struct core_device d;
    int rc = core_eng_begin(&c->a->eng);
    if (rc == 0) {
        rc = core_reg_checkin(c->a->reg, id, &ci, c->now);
        if (rc == 0)
            rc = core_eng_evaluate(&c->a->eng, id, c->now, &d);
        if (rc == 0)
            rc = core_eng_commit(&c->a->eng);
        else
            core_eng_rollback(&c->a->eng);
    }
    json_decref(b);
    if (rc == 0)
        core_metrics_checkin();
    if (rc == CORE_REG_ENOTFOUND) {
        fail(c->r, 404, "no device %s: a device is registered when a proxy first sees it", id);
        return;
    }
    if (rc < 0) {
        fail(c->r, 500, "storing the check-in failed (registry error)");
        return;
    }
    reply(c->r, 200,
          json_pack("{s:s,s:s,s:s,s:I}", "device_id", id, "state", compliance_state_name(d.state),
                    "reason", d.reason, "version", (json_int_t)d.version));
}

static void h_users(struct call *c)
{
    static const char *const allowed[] = {"after", "limit", NULL};
    if (query_known(c->req->query, allowed, c->r) < 0)
        return;
    char after[CORE_USER_MAX];
    int has_after = qget(c->req, "after", after, sizeof(after), c->r);
    int64_t limit = API_LIST_DEFAULT;
    if (has_after < 0 || qint(c->req, "limit", 1, API_LIST_MAX, &limit, c->r) < 0)
        return;
    struct core_user *u = malloc(sizeof(*u) * (size_t)(limit + 1));
    size_t n = 0;
    if (!u ||
        core_reg_user_list(c->a->reg, has_after ? after : NULL, u, (size_t)limit + 1, &n) < 0) {
        free(u);
        fail(c->r, 500, "reading the registry failed");
        return;
    }
    bool more = n > (size_t)limit;
    if (more)
        n = (size_t)limit;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s,s:I,s:I}", "name", u[i].name, "created",
                                             (json_int_t)u[i].created_ms, "devices",
                                             (json_int_t)u[i].devices));
    json_t *next = more ? json_string(u[n - 1].name) : json_null();
    free(u);
    reply(c->r, 200, json_pack("{s:o,s:o}", "users", arr, "next", next));
}

static void h_audit(struct call *c)
{
    static const char *const allowed[] = {"before", "limit", NULL};
    if (query_known(c->req->query, allowed, c->r) < 0)
        return;
    int64_t before = 0, limit = API_LIST_DEFAULT;
    if (qint(c->req, "before", 1, INT64_MAX, &before, c->r) < 0 ||
        qint(c->req, "limit", 1, API_LIST_MAX, &limit, c->r) < 0)
        return;
    struct core_audit *au = malloc(sizeof(*au) * (size_t)(limit + 1));
    size_t n = 0;
    if (!au || core_reg_audit_list(c->a->reg, before, au, (size_t)limit + 1, &n) < 0) {
        free(au);
        fail(c->r, 500, "reading the audit log failed");
        return;
    }
    bool more = n > (size_t)limit;
    if (more)
        n = (size_t)limit;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            arr, json_pack("{s:I,s:I,s:s,s:s,s:s,s:s,s:s}", "id", (json_int_t)au[i].id, "at",
                           (json_int_t)au[i].at_ms, "actor", au[i].actor, "address", au[i].address,
                           "action", au[i].action, "target", au[i].target, "detail", au[i].detail));
    json_t *next = more ? json_integer(au[n - 1].id) : json_null();
    free(au);
    reply(c->r, 200, json_pack("{s:o,s:o}", "audit", arr, "next", next));
}

static void h_login(struct call *c)
{
    static const struct jreq_field fs[] = {
        {"user", JREQ_STR, true}, {"password", JREQ_STR, true}, {0}};
    json_t *b = body_object(c->req, fs, c->r);
    if (!b)
        return;
    char token[CORE_TOKEN_MAX];
    struct core_principal who;
    const char *user = jreq_str(b, "user");
    int rc = core_auth_login(c->a->auth, user, jreq_str(b, "password"), c->a->o.session_ttl_ms,
                             c->now, token, &who);
    core_reg_audit_add(c->a->reg, user, c->req->peer, rc == 0 ? "login" : "login-failed", user, "",
                       c->now);
    json_decref(b);
    if (rc == CORE_AUTH_EDENIED) {
        core_metrics_login_failure();
        fail(c->r, 401, "wrong user name or password");
        return;
    }
    if (rc < 0) {
        fail(c->r, 500, "login failed (registry error)");
        return;
    }
    reply(c->r, 200,
          json_pack("{s:s,s:s,s:s,s:I}", "token", token, "user", who.name, "role",
                    core_role_name(who.role), "expires",
                    (json_int_t)(c->now + c->a->o.session_ttl_ms)));
}

static void h_logout(struct call *c)
{
    const char *t = c->req->authorization + 7;
    while (*t == ' ')
        t++;
    core_auth_logout(c->a->auth, t);
    reply(c->r, 200, json_pack("{s:b}", "ok", 1));
}

static void h_whoami(struct call *c)
{
    reply(c->r, 200,
          json_pack("{s:s,s:s,s:I}", "user", c->who.name, "role", core_role_name(c->who.role),
                    "token_id", (json_int_t)c->who.token_id));
}

static void h_token_new(struct call *c)
{
    static const struct jreq_field fs[] = {
        {"role", JREQ_STR, true}, {"name", JREQ_STR, false}, {0}};
    json_t *b = body_object(c->req, fs, c->r);
    if (!b)
        return;
    int role = core_role_parse(jreq_str(b, "role"));
    if (role < 0) {
        json_decref(b);
        fail(c->r, 400, "role must be admin, viewer or device");
        return;
    }
    char token[CORE_TOKEN_MAX];
    int64_t id = 0;
    const char *label = jreq_str(b, "name") ? jreq_str(b, "name") : "";
    int rc = core_auth_token_mint(c->a->auth, c->who.name, (enum core_role)role, label, c->now,
                                  token, &id);
    if (rc == 0) {
        char target[32];
        snprintf(target, sizeof(target), "token:%lld", (long long)id);
        char detail[300];
        snprintf(detail, sizeof(detail), "role=%s name=%s", core_role_name((enum core_role)role),
                 label);
        core_reg_audit_add(c->a->reg, c->who.name, c->req->peer, "token.mint", target, detail,
                           c->now);
    }
    json_decref(b);
    if (rc < 0) {
        fail(c->r, 500, "minting the token failed");
        return;
    }
    reply(c->r, 201,
          json_pack("{s:I,s:s,s:s}", "id", (json_int_t)id, "token", token, "role",
                    core_role_name((enum core_role)role)));
}

static void h_token_del(struct call *c)
{
    char *end;
    long long id = strtoll(c->p[0], &end, 10);
    if (*end || id <= 0) {
        fail(c->r, 400, "a token id is a positive integer");
        return;
    }
    int rc = core_auth_token_revoke(c->a->auth, id);
    if (rc == CORE_AUTH_ENOTFOUND) {
        fail(c->r, 404, "no token %lld", id);
        return;
    }
    if (rc < 0) {
        fail(c->r, 500, "revoking the token failed");
        return;
    }
    char target[32];
    snprintf(target, sizeof(target), "token:%lld", id);
    core_reg_audit_add(c->a->reg, c->who.name, c->req->peer, "token.revoke", target, "", c->now);
    reply(c->r, 200, json_pack("{s:I}", "revoked", (json_int_t)id));
}

/* ---- admin accounts ------------------------------------------------------------- */

#define API_ACCOUNTS_MAX 1000

static json_t *account_json(const struct core_account *ac)
{
    return json_pack("{s:s,s:s,s:I,s:b}", "name", ac->name, "role", core_role_name(ac->role),
                     "created", (json_int_t)ac->created_ms, "disabled", ac->disabled);
}

static void h_admins(struct call *c)
{
    if (query_known(c->req->query, (const char *const[]){NULL}, c->r) < 0)
        return;
    struct core_account *list = calloc(API_ACCOUNTS_MAX, sizeof(*list));
    size_t n = 0;
    int rc = list ? core_auth_account_list(c->a->auth, list, API_ACCOUNTS_MAX, &n) : -1;
    if (rc < 0) {
        free(list);
        fail(c->r, 500, "listing the accounts failed (registry error)");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, account_json(&list[i]));
    free(list);
    reply(c->r, 200, json_pack("{s:o}", "admins", arr));
}

static void audit(struct call *c, const char *action, const char *target, const char *detail)
{
    core_reg_audit_add(c->a->reg, c->who.name, c->req->peer, action, target, detail ? detail : "",
                       c->now);
}

static void h_admin_new(struct call *c)
{
    static const struct jreq_field fs[] = {
        {"name", JREQ_STR, true}, {"role", JREQ_STR, false}, {"password", JREQ_STR, true}, {0}};
    json_t *b = body_object(c->req, fs, c->r);
    if (!b)
        return;
    const char *role_s = jreq_str(b, "role") ? jreq_str(b, "role") : "admin";
    int role = core_role_parse(role_s);
    if (role != CORE_ROLE_ADMIN && role != CORE_ROLE_VIEWER) {
        json_decref(b);
        fail(c->r, 400, "role must be admin or viewer (device tokens belong to an account)");
        return;
    }
    char why[256];
    const char *name = jreq_str(b, "name");
    int rc = core_auth_account_add(c->a->auth, name, (enum core_role)role, jreq_str(b, "password"),
                                   c->now, why, sizeof(why));
    if (rc == 0) {
        audit(c, "account.create", name, role_s);
        reply(c->r, 201, json_pack("{s:s,s:s}", "name", name, "role", role_s));
    } else if (rc == CORE_AUTH_EEXIST) {
        fail(c->r, 409, "an account '%s' exists already", name);
    } else if (rc == CORE_AUTH_EINVAL) {
        fail(c->r, 422, "%s", why);
    } else {
        fail(c->r, 500, "creating the account failed: %s", why);
    }
    json_decref(b);
}

/* After a lifecycle call on account p[0]: the answer for rc. 0 if rc was 0. */
static int account_fail(struct call *c, int rc, const char *what)
{
    if (rc == 0)
        return 0;
    if (rc == CORE_AUTH_ENOTFOUND)
        fail(c->r, 404, "no account '%s'", c->p[0]);
    else if (rc == CORE_AUTH_ELAST)
        fail(c->r, 409,
             "'%s' is the last enabled admin: %s it would leave nobody to administer "
             "the API (create or enable another admin first)",
             c->p[0], what);
    else
        fail(c->r, 500, "%s the account failed (registry error)", what);
    return -1;
}

static void h_admin_del(struct call *c)
{
    int rc = core_auth_account_delete(c->a->auth, c->p[0]);
    if (account_fail(c, rc, "deleting") < 0)
        return;
    audit(c, "account.delete", c->p[0], "sessions ended, tokens revoked");
    reply(c->r, 200, json_pack("{s:s}", "deleted", c->p[0]));
}

static void h_admin_action(struct call *c)
{
    const char *name = c->p[0], *action = c->p[1];
    if (strcmp(action, "disable") == 0 || strcmp(action, "enable") == 0) {
        bool off = action[0] == 'd';
        int rc = core_auth_account_disable(c->a->auth, name, off);
        if (account_fail(c, rc, off ? "disabling" : "enabling") < 0)
            return;
        audit(c, off ? "account.disable" : "account.enable", name, "");
        reply(c->r, 200, json_pack("{s:s,s:b}", "name", name, "disabled", off));
        return;
    }
    if (strcmp(action, "password") != 0) {
        fail(c->r, 404, "no action '%s' (disable, enable, password)", action);
        return;
    }
    static const struct jreq_field fs[] = {{"password", JREQ_STR, true}, {0}};
    json_t *b = body_object(c->req, fs, c->r);
    if (!b)
        return;
    char why[256];
    int rc = core_auth_account_passwd(c->a->auth, name, jreq_str(b, "password"), why, sizeof(why));
    json_decref(b);
    if (rc == CORE_AUTH_EINVAL) {
        fail(c->r, 422, "%s", why);
        return;
    }
    if (account_fail(c, rc, "resetting the password of") < 0)
        return;
    core_auth_sessions_end(c->a->auth, name);
    audit(c, "account.password-reset", name, "sessions ended");
    reply(c->r, 200, json_pack("{s:s}", "name", name));
}

/* Change one's own password: the old one is required, as a stolen session
 * alone must not be enough to take the account over. */
static void h_password(struct call *c)
{
    static const struct jreq_field fs[] = {
        {"old_password", JREQ_STR, true}, {"password", JREQ_STR, true}, {0}};
    json_t *b = body_object(c->req, fs, c->r);
    if (!b)
        return;
    int rc = core_auth_verify(c->a->auth, c->who.name, jreq_str(b, "old_password"), NULL);
    if (rc == CORE_AUTH_EDENIED) {
        json_decref(b);
        core_metrics_login_failure();
        audit(c, "account.password-change-failed", c->who.name, "wrong old password");
        fail(c->r, 403, "the old password is wrong");
        return;
    }
    char why[256] = "registry error";
    if (rc == 0)
        rc = core_auth_account_passwd(c->a->auth, c->who.name, jreq_str(b, "password"), why,
                                      sizeof(why));
    json_decref(b);
    if (rc == CORE_AUTH_EINVAL) {
        fail(c->r, 422, "%s", why);
        return;
    }
    if (rc < 0) {
        fail(c->r, 500, "changing the password failed: %s", why);
        return;
    }
    core_auth_sessions_end(c->a->auth, c->who.name);
    audit(c, "account.password-change", c->who.name, "sessions ended");
    reply(c->r, 200,
          json_pack("{s:s,s:s}", "name", c->who.name, "note",
                    "every session of this account ended: log in again"));
}

#define API_TOKENS_MAX 1000

static void h_tokens(struct call *c)
{
    static const char *const allowed[] = {"account", NULL};
    if (query_known(c->req->query, allowed, c->r) < 0)
        return;
    char account[CORE_USER_MAX];
    int got = qget(c->req, "account", account, sizeof(account), c->r);
    if (got < 0)
        return;
    bool by = got > 0;
    struct core_token *list = calloc(API_TOKENS_MAX, sizeof(*list));
    size_t n = 0;
    int rc =
        list ? core_auth_token_list(c->a->auth, by ? account : NULL, list, API_TOKENS_MAX, &n) : -1;
    if (rc < 0) {
        free(list);
        fail(c->r, 500, "listing the tokens failed (registry error)");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            arr, json_pack("{s:I,s:s,s:s,s:s,s:I,s:I,s:b}", "id", (json_int_t)list[i].id, "account",
                           list[i].account, "role", core_role_name(list[i].role), "name",
                           list[i].name, "created", (json_int_t)list[i].created_ms, "last_used",
                           (json_int_t)list[i].last_used_ms, "revoked", list[i].revoked));
    free(list);
    reply(c->r, 200, json_pack("{s:o}", "tokens", arr));
}

/* ---- the route table --------------------------------------------------------- */

enum need { N_NONE, N_VIEW, N_ADMIN, N_CHECKIN };

static const struct httpd_route routes[] = {
    {"POST", "/api/v1/login"},
    {"POST", "/api/v1/logout"},
    {"GET", "/api/v1/whoami"},
    {"GET", "/api/v1/devices"},
    {"GET", "/api/v1/devices/:id"},
    {"DELETE", "/api/v1/devices/:id"},
    {"POST", "/api/v1/devices/:id/:action"},
    {"POST", "/api/v1/checkin"},
    {"GET", "/api/v1/users"},
    {"GET", "/api/v1/audit"},
    {"POST", "/api/v1/tokens"},
    {"DELETE", "/api/v1/tokens/:id"},
    {"GET", "/api/v1/tokens"},
    {"GET", "/api/v1/admins"},
    {"POST", "/api/v1/admins"},
    {"DELETE", "/api/v1/admins/:name"},
    {"POST", "/api/v1/admins/:name/:action"},
    {"POST", "/api/v1/password"},
    {NULL, NULL},
};

/* The routes as /metrics and the request log name them. */
static const char *const route_names[] = {
    "POST /api/v1/login",
    "POST /api/v1/logout",
    "GET /api/v1/whoami",
    "GET /api/v1/devices",
    "GET /api/v1/devices/:id",
    "DELETE /api/v1/devices/:id",
    "POST /api/v1/devices/:id/:action",
    "POST /api/v1/checkin",
    "GET /api/v1/users",
    "GET /api/v1/audit",
    "POST /api/v1/tokens",
    "DELETE /api/v1/tokens/:id",
    "GET /api/v1/tokens",
    "GET /api/v1/admins",
    "POST /api/v1/admins",
    "DELETE /api/v1/admins/:name",
    "POST /api/v1/admins/:name/:action",
    "POST /api/v1/password",
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    NULL,
};
#define ROUTE_HEALTHZ (sizeof(routes) / sizeof(routes[0]) - 1)

static const struct {
    void (*fn)(struct call *c);
    enum need need;
} route_fns[] = {
    {h_login, N_NONE},         {h_logout, N_VIEW},   {h_whoami, N_VIEW},     {h_devices, N_VIEW},
    {h_device, N_VIEW},        {h_delete, N_ADMIN},  {h_action, N_ADMIN},    {h_checkin, N_CHECKIN},
    {h_users, N_VIEW},         {h_audit, N_VIEW},    {h_token_new, N_ADMIN}, {h_token_del, N_ADMIN},
    {h_tokens, N_ADMIN},       {h_admins, N_ADMIN},  {h_admin_new, N_ADMIN}, {h_admin_del, N_ADMIN},
    {h_admin_action, N_ADMIN}, {h_password, N_VIEW},
};
_Static_assert(sizeof(route_fns) / sizeof(route_fns[0]) == sizeof(routes) / sizeof(routes[0]) - 1,
               "one handler per route");

/* May who call a route that needs need? 0, or answers 403. */
static int allowed(struct call *c, enum need need)
{
    enum core_role r = c->who.role;
    if (need == N_CHECKIN && (r == CORE_ROLE_DEVICE || r == CORE_ROLE_ADMIN))
        return 0;
    if (need == N_VIEW && (r == CORE_ROLE_VIEWER || r == CORE_ROLE_ADMIN))
        return 0;
    if (need == N_ADMIN && r == CORE_ROLE_ADMIN)
        return 0;
    if (r == CORE_ROLE_VIEWER)
        fail(c->r, 403, "the viewer role is read-only: this needs an admin");
    else if (r == CORE_ROLE_DEVICE)
        fail(c->r, 403, "a device token may only check in (POST /api/v1/checkin)");
    else
        fail(c->r, 403, "this needs an admin");
    return -1;
}

/* ---- the admin listener's own paths: health and metrics --------------------- */

static const char *const *metric_certs, *const *metric_crls;

void core_api_metric_files(const char *const *certs, const char *const *crls)
{
    metric_certs = certs;
    metric_crls = crls;
}

static void text(struct httpd_resp *r, int status, const char *ctype, char *body, size_t len)
{
    r->status = status;
    r->content_type = ctype;
    r->body = body;
    r->len = len;
}

/*
 * GET /healthz, /readyz, /metrics, without a token (as on the proxy's admin
 * listener: keep core.listen off the Internet, or filter these paths at a
 * balancer). The route's index, or -1 when the path is none of them.
 */
static int health(const struct httpd_req *req, struct httpd_resp *resp)
{
    const char *const paths[] = {"/healthz", "/readyz", "/metrics"};
    int k = -1;
    for (int i = 0; i < 3; i++)
        if (strcmp(req->path, paths[i]) == 0)
            k = i;
    if (k < 0 || strcmp(req->method, "GET") != 0)
        return -1;
    if (k == 0) {
        text(resp, 200, "text/plain", strdup("ok\n"), 3);
    } else if (k == 1) {
        char why[256];
        int ready = core_metrics_ready(why, sizeof(why));
        size_t l = strlen(why);
        char *b = malloc(l + 2);
        if (b) {
            memcpy(b, why, l);
            b[l] = '\n';
            b[l + 1] = '\0';
        }
        text(resp, ready ? 200 : 503, "text/plain", b, b ? l + 1 : 0);
    } else {
        char *b = malloc(API_METRICS_MAX);
        int n = b ? core_metrics_render(b, API_METRICS_MAX) : -1;
        size_t len = n > 0 ? (size_t)n : 0;
        if (n >= 0) {
            int rc = promx_cert_headers(b, API_METRICS_MAX, &len);
            for (const char *const *f = metric_certs; rc == 0 && f && *f; f++)
                rc = promx_cert_expiry(b, API_METRICS_MAX, &len, *f);
            for (const char *const *f = metric_crls; rc == 0 && f && *f; f++)
                rc = promx_crl_next_update(b, API_METRICS_MAX, &len, *f);
        }
        if (n < 0) {
            free(b);
            text(resp, 500, "text/plain", strdup("metrics do not fit\n"), 19);
        } else {
            text(resp, 200, "text/plain; version=0.0.4", b, len);
        }
    }
    return (int)ROUTE_HEALTHZ + k;
}

/* ---- one request: route, authorize, answer; counted and logged ------------- */

/* The request log: one JSON object a line on log.access (core_api_set_log). */
static int api_log_fd = -1;

void core_api_set_log(int fd)
{
    api_log_fd = fd;
}

static void log_request(const struct call *c, const char *route, int64_t took_ms)
{
    if (api_log_fd < 0)
        return;
    char at[32], line[API_LOG_LINE_MAX];
    time_t s = (time_t)(c->now / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%S", &tm);
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:s,s:s,s:I}", "time", at, "role", "core",
                          "method", c->req->method, "route", route ? route : "", "path",
                          c->req->path, "status", c->r->status, "user", c->who.name, "client",
                          c->req->peer ? c->req->peer : "", "duration_ms", (json_int_t)took_ms);
    char *d = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(j);
    if (d) {
        int n = snprintf(line, sizeof(line), "%s\n", d);
        if (n > 0 && (size_t)n < sizeof(line))
            logfile_write(api_log_fd, line, (size_t)n);
        free(d);
    }
}

static int route_call(struct call *c);

void core_api_handle(struct core_api *a, const struct httpd_req *req, struct httpd_resp *resp)
{
    char params[HTTPD_PARAMS_MAX][HTTPD_PARAM_LEN];
    struct call c = {.a = a, .req = req, .r = resp, .p = params, .now = now_ms(a)};
    int i = health(req, resp);
    if (i < 0)
        i = route_call(&c);
    const char *route = i >= 0 ? route_names[i] : NULL;
    core_metrics_api(route, resp->status);
    if (i < (int)ROUTE_HEALTHZ) /* scrapes and probes stay out of the request log */
        log_request(&c, route, now_ms(a) - c.now);
}

/* The route's index (after answering), or -1 when none matched. */
static int route_call(struct call *c)
{
    struct core_api *a = c->a;
    const struct httpd_req *req = c->req;
    struct httpd_resp *resp = c->r;
    int i = httpd_route_match(routes, req->method, req->path, c->p);
    if (i == -405) {
        fail(resp, 405, "%s is not allowed on %.200s", req->method, req->path);
        return -1;
    }
    if (i == -400) {
        fail(resp, 400, "a path segment is too long or badly encoded");
        return -1;
    }
    if (i < 0) {
        fail(resp, 404, "no such endpoint: %.200s (the API lives under /api/v1)", req->path);
        return -1;
    }
    if (route_fns[i].need != N_NONE) {
        int rc = core_auth_check(a->auth, req->authorization, c->now, &c->who);
        if (rc == CORE_AUTH_EDENIED) {
            fail(resp, 401,
                 req->authorization ? "the token is unknown, expired or revoked"
                                    : "send Authorization: Bearer TOKEN (log in or mint a token)");
            return i;
        }
        if (rc < 0) {
            fail(resp, 500, "checking the token failed (registry error)");
            return i;
        }
        if (allowed(c, route_fns[i].need) < 0)
            return i;
    }
    route_fns[i].fn(c);
    return i;
}

/* ---- construction ------------------------------------------------------------ */

int core_api_new(struct core_reg *reg, struct rstore_push *push,
                 const struct compliance_rules *rules, const struct core_api_opts *o,
                 struct core_api **out)
{
    *out = NULL;
    struct core_api *a = calloc(1, sizeof(*a));
    if (!a)
        return -1;
    a->reg = reg;
    a->push = push;
    if (o)
        a->o = *o;
    if (a->o.session_ttl_ms <= 0)
        a->o.session_ttl_ms = 12 * 3600 * 1000LL;
    if (core_auth_open(reg, &a->auth) < 0) {
        free(a);
        return -1;
    }
    core_eng_init(&a->eng, reg, push, rules);
    core_metrics_routes(route_names);
    *out = a;
    return 0;
}

void core_api_free(struct core_api *a)
{
    if (!a)
        return;
    core_eng_free(&a->eng);
    core_auth_close(a->auth);
    free(a);
}

/* ---- the service thread -------------------------------------------------------- */

static void on_request(void *arg, const struct httpd_req *req, struct httpd_resp *resp)
{
    core_api_handle(arg, req, resp);
}

/* The loop iteration's requests are handled: commit their check-ins. */
static int on_batch_end(void *arg)
{
    struct core_api *a = arg;
    if (!a->batch_open)
        return 0;
    a->batch_open = false;
    if (core_eng_commit(&a->eng) == 0)
        return 0;
    eg_error("core: admin API: committing a batch of check-ins failed; their answers are dropped");
    core_eng_rollback(&a->eng);
    return -1;
}

/*
 * Where the API's engine writes: the master the Sentinels name right now
 * (asked at every connect, as the run loop does), or redis.url.
 */
static int api_redis_addr(struct core_api *a)
{
    const struct conf_redis *rc = &a->conf->redis;
    if (rc->sentinel.master) {
        int port = 0;
        if (rstore_sentinel_master(rc, a->redis_host, sizeof(a->redis_host), &port) < 0)
            return -1;
        a->po.port = port;
    } else {
        snprintf(a->redis_host, sizeof(a->redis_host), "%s", rc->host ? rc->host : "127.0.0.1");
        a->po.port = rc->port;
    }
    a->po.host = a->redis_host;
    a->po.password = rc->password;
    a->po.db = rc->db;
    return 0;
}

/* Redis went away under the API's engine: reconnect and resync, like the run loop. */
static void on_retry(uv_timer_t *t)
{
    struct core_api *a = t->data;
    if (!a->eng.dirty)
        return;
    /* From scratch: after a failover the old address is gone or a read-only replica. */
    rstore_push_close(a->push);
    a->push = a->eng.push = NULL;
    char err[512];
    if (api_redis_addr(a) < 0)
        return;
    if (rstore_push_open(&a->po, &a->push, err, sizeof(err)) < 0)
        return;
    a->eng.push = a->push;
    struct rstore_resync_stats st;
    if (core_eng_resync(&a->eng, &st) == 0)
        eg_info("core: admin API: redis back, %zu devices rewritten", st.written);
}

/* How often the API looks whether the run loop reloaded the rules. */
#define API_RULES_CHECK_MS 1000

/*
 * The run loop owns rule reloads (SIGHUP): it re-reads the policy, evaluates
 * every device and stores the rules' fingerprint. When the stored
 * fingerprint stops matching ours, read the policy file again and adopt it
 * if it is the one the run loop evaluated with, so a check-in through the
 * API is never judged by older rules than the rest of the registry.
 */
static void on_rules_check(uv_timer_t *t)
{
    struct core_api *a = t->data;
    if (core_eng_rules_current(&a->eng))
        return;
    struct compliance_rules r, old = a->eng.rules;
    char err[1024];
    if (core_cfg_rules(a->policy_path, &r, err, sizeof(err)) < 0)
        return;
    a->eng.rules = r;
    if (core_eng_rules_current(&a->eng))
        eg_info("core: admin API: now uses the reloaded compliance rules");
    else
        a->eng.rules = old; /* the run loop has not evaluated with them (yet) */
}

static void on_stop(uv_async_t *as)
{
    struct core_api *a = as->data;
    httpd_stop(a->httpd);
    uv_close((uv_handle_t *)&a->rules_timer, NULL);
    uv_close((uv_handle_t *)&a->retry, NULL);
    uv_close((uv_handle_t *)&a->stop, NULL);
}

static void *api_main(void *arg)
{
    struct core_api *a = arg;
    uv_run(&a->loop, UV_RUN_DEFAULT);
    return NULL;
}

static bool is_loopback(const struct units_addr *ad)
{
    const struct sockaddr *sa = (const struct sockaddr *)&ad->sa;
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return memcmp(a6, &in6addr_loopback, sizeof(*a6)) == 0;
    }
    return false;
}

static void api_close_owned(struct core_api *a, struct core_reg *reg)
{
    struct rstore_push *p = a->push;
    core_api_free(a);
    rstore_push_close(p);
    core_reg_close(reg);
}

int core_api_start(struct core_ctx *c, struct core_api **out, char *err, size_t errlen)
{
    *out = NULL;
    const struct core_cfg *cfg = c->cfg;
    if (!cfg || cfg->listen.port == 0)
        return 0;
    if (!cfg->tls.cert && !is_loopback(&cfg->listen)) {
        snprintf(err, errlen,
                 "core.listen %s: the admin API carries passwords and tokens; give core.tls "
                 "(cert and key), or listen on 127.0.0.1 / [::1] for plain HTTP",
                 cfg->listen.text);
        return -1;
    }
    struct tls_ctx *tls = NULL;
    if (cfg->tls.cert) {
        struct tls_server_opts to = {.cert = cfg->tls.cert, .key = cfg->tls.key};
        char e[512];
        if (tls_ctx_server(&to, &tls, e, sizeof(e)) < 0) {
            snprintf(err, errlen, "core.tls: %s", e);
            return -1;
        }
    }
    struct core_reg *reg = NULL;
    char e[1024];
    if (core_reg_open(cfg->database, &reg, e, sizeof(e)) < 0) {
        snprintf(err, errlen, "admin API: %s", e);
        tls_ctx_free(tls);
        return -1;
    }
    struct core_api_opts ao = {.session_ttl_ms = cfg->session_ttl_ms};
    struct core_api *a = NULL;
    if (core_api_new(reg, NULL, &c->rules, &ao, &a) < 0) {
        snprintf(err, errlen, "admin API: cannot prepare its statements (registry too old?)");
        core_reg_close(reg);
        tls_ctx_free(tls);
        return -1;
    }
    a->owns = true;
    a->tls = tls;
    a->retry_ms = cfg->redis_retry_ms;
    a->conf = c->conf;
    if (c->conf->redis.enabled) {
        if (api_redis_addr(a) < 0) {
            eg_warn("core: admin API: no Sentinel named a master for '%s'; changes are stored "
                    "and pushed when Redis is back",
                    c->conf->redis.sentinel.master);
            a->eng.dirty = true;
        } else if (rstore_push_open(&a->po, &a->push, e, sizeof(e)) < 0) {
            eg_warn("core: admin API: %s; changes are stored and pushed when Redis is back", e);
            a->eng.dirty = true;
        }
        a->eng.push = a->push;
    }
    uv_loop_init(&a->loop);
    a->batching = true;
    struct httpd_opts ho = {.tls = tls,
                            .max_body = (size_t)cfg->api_max_body,
                            .keepalive = 1,
                            .batch_end = on_batch_end};
    int r = httpd_serve(&a->loop, (const struct sockaddr *)&cfg->listen.sa, &ho, on_request, a,
                        &a->httpd);
    if (r < 0) {
        snprintf(err, errlen, "core.listen %s: %s", cfg->listen.text, uv_strerror(r));
        uv_run(&a->loop, UV_RUN_DEFAULT);
        uv_loop_close(&a->loop);
        api_close_owned(a, reg);
        tls_ctx_free(tls);
        return -1;
    }
    uv_async_init(&a->loop, &a->stop, on_stop);
    a->stop.data = a;
    uv_timer_init(&a->loop, &a->retry);
    a->retry.data = a;
    uv_timer_start(&a->retry, on_retry, (uint64_t)a->retry_ms, (uint64_t)a->retry_ms);
    a->policy_path = c->conf->policy_path;
    uv_timer_init(&a->loop, &a->rules_timer);
    a->rules_timer.data = a;
    uv_timer_start(&a->rules_timer, on_rules_check, API_RULES_CHECK_MS, API_RULES_CHECK_MS);
    if (pthread_create(&a->thread, NULL, api_main, a) != 0) {
        snprintf(err, errlen, "admin API: cannot start its thread");
        on_stop(&a->stop);
        uv_run(&a->loop, UV_RUN_DEFAULT);
        uv_loop_close(&a->loop);
        api_close_owned(a, reg);
        tls_ctx_free(tls);
        return -1;
    }
    eg_info("core: admin API on %s://%s/api/v1", tls ? "https" : "http", cfg->listen.text);
    *out = a;
    return 0;
}

void core_api_stop(struct core_api *a)
{
    if (!a)
        return;
    uv_async_send(&a->stop);
    pthread_join(a->thread, NULL);
    uv_loop_close(&a->loop);
    struct tls_ctx *tls = a->tls;
    api_close_owned(a, a->reg);
    tls_ctx_free(tls);
}
