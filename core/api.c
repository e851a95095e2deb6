/*
 * core_api: routes, validation and JSON for /api/v1, and the threads that
 * serve them. See api.h.
 *
 * Validation comes before any write: a body is parsed whole (duplicate keys
 * refused), every field must be known and of its type, then the call runs.
 * So a rejected request has changed nothing.
 *
 * A handler runs with a context (struct api_ctx): a registry connection, an
 * auth over it, and the engine when it may write. In the service those are
 * a reader's own (reads), the writer's (changes, inside its group
 * transaction) or a hasher's (the password check of a login); with
 * core_api_new one context serves every route on the caller's thread.
 */
#include "core/api.h"
#include "core/notify.h"
#include "core/explain.h"

#include "common/b64.h"
#include "common/backoff.h"
#include "common/jreq.h"
#include "common/log.h"
#include "common/logfile.h"
#include "common/promx.h"
#include "common/tls.h"
#include "common/units.h"
#include "connectors/rstore_presence.h"
#include "core/auth.h"
#include "core/eng.h"
#include "core/metrics.h"
#include "core/pool.h"
#include "core/ui.h"
#include "core/wr.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define API_LIST_DEFAULT 100
#define API_LIST_MAX 1000
/* Rows in one import request; the client sends smaller batches by default. */
#define API_IMPORT_MAX 1000
/* Queued reads and logins beyond these are answered 503 at once. */
#define API_READ_QUEUE 1024
#define API_POOL_NICE 10 /* the readers' nice, above the process's */
#define API_LOGIN_QUEUE 64
#define API_RETRY_AFTER_S 1
/* Accounts, addresses and pairs the login back-off and audit keep each. */
#define API_LOGIN_KEYS 4096
/* How often the login windows that ended are written to the audit log. */
#define API_FLUSH_MS 1000
#define API_HISTORY_MAX 50
#define API_STR_MAX 255
/* A check-in's own time may run ahead of ours by this much (clock skew). */
#define API_CLOCK_SKEW_MS (5 * 60 * 1000)
/* /metrics: the core's counters, process and certificate gauges. */
#define API_METRICS_MAX (256 * 1024)
#define API_LOG_LINE_MAX 2048
/* The console's session cookie (docs/console.md). __Host-: the browser
 * keeps it only if it came Secure, for Path=/, from this host alone. */
#define API_COOKIE "__Host-egc"
/* A console session's idle expiry is moved on at most this often. */
#define API_TOUCH_MS (60 * 1000)
#define API_IDLE_DEFAULT_MS (30 * 60 * 1000LL)

/* What a handler runs with (see above). */
struct api_ctx {
    struct core_api *a;
    struct core_reg *reg;
    struct core_auth *auth;
    struct core_eng *eng; /* NULL where the registry is only read */
};

struct core_api {
    struct core_api_opts o;
    struct api_ctx inl; /* core_api_new: every route on the caller's thread */
    struct core_eng inl_eng;
    /* the service (core_api_start) */
    const char *database;
    struct core_wr *wr; /* borrowed: the run loop's */
    struct core_pool *readers, *hashers;
    /* Logins: back-off per account and per address, and the failures of
     * each account and address pair counted for the audit log (see
     * login_throttle). NULL with core_api_new: no throttling. */
    struct backoff *by_account, *by_address, *login_pairs;
    int64_t login_audit_window_ms;
    uv_timer_t flush;
    uv_loop_t loop;
    uv_async_t stop, done;
    struct httpd *httpd;
    struct tls_ctx *tls;
    pthread_t thread;
    pthread_mutex_t done_mu;
    struct api_job *done_head;
    size_t inflight; /* held requests not yet answered (loop thread) */
    bool stopping;
    /* The rules and policy explain reads (readers copy them under the lock;
     * core_api_rules replaces them on a reload). */
    pthread_mutex_t rules_mu;
    struct compliance_rules rules;
    /* Where the proxies' presence keys are (GET /api/v1/proxies); NULL
     * without a redis: section, or with core_api_new. Borrowed: the
     * context's configuration outlives the API. */
    const struct conf_redis *redis;
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
    json_object_set_new(j, "eas_os", json_string(d->eas_os));
    json_object_set_new(j, "eas_os_version", json_string(d->eas_os_version));
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
    json_object_set_new(j, "last_client", json_string(d->last_client));
    json_object_set_new(j, "cert_enrollment", json_string(d->cert_enrollment));
    json_object_set_new(j, "pk_epoch", json_integer(d->pk_epoch));
    json_object_set_new(j, "policy_key", json_integer(d->policy_key));
    json_object_set_new(j, "provisioned", json_integer(d->provisioned_ms));
    /* The last autoblock (core/sight.c); in force while later than now. */
    json_object_set_new(j, "autoblock_until", json_integer(d->autoblock_until_ms));
    json_object_set_new(j, "autoblock_reason", json_string(d->autoblock_reason));
    return j;
}

/* ---- handlers -------------------------------------------------------------- */

struct call {
    struct core_api *a;
    struct api_ctx *x;
    const struct httpd_req *req;
    struct httpd_resp *r;
    struct core_principal who;
    char (*p)[HTTPD_PARAM_LEN];
    int64_t now;
    bool failed;  /* a registry error after writing began: the change is rolled back */
    bool console; /* authenticated by the console's cookie: tok is its session */
    bool revoked; /* a certificate was revoked: the CRL's keeper hears of it after the commit */
    char tok[CORE_TOKEN_MAX];
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

/*
 * The device list's cursor: the DeviceId of the last device in DeviceId
 * order, as it always was; in another order DEVICEID.KEY, KEY its sort key
 * in base64url (a user name may hold any character). Opaque to clients:
 * they pass "next" back as "after".
 */
#define API_CURSOR_MAX (CORE_DEVID_MAX + 2 + ((CORE_SORT_KEY_MAX + 2) / 3) * 4 + 1)

static void cursor_make(const char *id, enum core_dev_sort sort, const char *key,
                        char out[API_CURSOR_MAX])
{
    size_t n = (size_t)snprintf(out, API_CURSOR_MAX, "%s", id);
    if (sort == CORE_SORT_DEVICE_ID || !id[0])
        return;
    out[n++] = '.';
    if (b64_encode(key, strlen(key), out + n, API_CURSOR_MAX - n, B64_URL | B64_NOPAD, NULL) < 0)
        out[n] = '\0';
}

static int cursor_parse(const char *in, enum core_dev_sort sort, char id[CORE_DEVID_MAX + 1],
                        char key[CORE_SORT_KEY_MAX])
{
    const char *dot = strchr(in, '.');
    if ((sort == CORE_SORT_DEVICE_ID) != !dot)
        return -1;
    char idb[CORE_DEVID_MAX + 2];
    size_t il = dot ? (size_t)(dot - in) : strlen(in);
    if (il >= sizeof(idb))
        return -1;
    memcpy(idb, in, il);
    idb[il] = '\0';
    if (core_reg_devid(idb, id) < 0)
        return -1;
    key[0] = '\0';
    if (!dot)
        return 0;
    size_t kl = 0;
    if (b64_decode(dot + 1, strlen(dot + 1), key, CORE_SORT_KEY_MAX - 1, B64_URL | B64_NOPAD, &kl) <
            0 ||
        memchr(key, '\0', kl))
        return -1;
    key[kl] = '\0';
    if (sort == CORE_SORT_LAST_SEEN) {
        if (!kl || kl > 18 || strspn(key, "0123456789") != kl)
            return -1;
    }
    return 0;
}

static void h_devices(struct call *c)
{
    static const char *const allowed[] = {
        "user",  "state",      "type",        "os", "managed", "compliance", "limit",
        "after", "seen_since", "seen_before", "q",  "sort",    "order",      NULL};
    if (query_known(c->req->query, allowed, c->r) < 0)
        return;
    struct core_dev_filter f;
    core_dev_filter_init(&f);
    char user[CORE_USER_MAX], type[CORE_SHORT_MAX], os[CORE_SHORT_MAX], state[32], managed[8],
        compl [16], after[API_CURSOR_MAX], q[CORE_Q_MAX + 1], sort[16], order[8];
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
    if ((rc = qget(c->req, "os", os, sizeof(os), c->r)) < 0)
        return;
    if (rc)
        f.os = os;
    if ((rc = qget(c->req, "compliance", compl, sizeof(compl ), c->r)) < 0)
        return;
    if (rc) {
        static const char *const names[] = {"compliant", "failing", "grace", "unchecked"};
        for (int k = 0; k < 4; k++)
            if (strcmp(compl, names[k]) == 0)
                f.compliance = k;
        if (f.compliance < 0) {
            fail(c->r, 400, "compliance must be compliant, failing, grace or unchecked");
            return;
        }
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
    if ((rc = qget(c->req, "q", q, sizeof(q), c->r)) < 0)
        return;
    if (rc && q[0])
        f.q = q;
    if ((rc = qget(c->req, "sort", sort, sizeof(sort), c->r)) < 0)
        return;
    if (rc && core_dev_sort_parse(sort, &f.sort) < 0) {
        fail(c->r, 400, "sort must be device_id, user, last_seen, state, type or os");
        return;
    }
    if ((rc = qget(c->req, "order", order, sizeof(order), c->r)) < 0)
        return;
    if (rc && strcmp(order, "asc") != 0 && strcmp(order, "desc") != 0) {
        fail(c->r, 400, "order must be asc or desc");
        return;
    }
    f.desc = rc && strcmp(order, "desc") == 0;
    if ((rc = qget(c->req, "after", after, sizeof(after), c->r)) < 0)
        return;
    char after_id[CORE_DEVID_MAX + 1], after_key[CORE_SORT_KEY_MAX];
    if (rc) {
        if (cursor_parse(after, f.sort, after_id, after_key) < 0) {
            fail(c->r, 400,
                 "after must be the 'next' of the previous page (of the same sort: a DeviceId, "
                 "or DEVICEID.KEY in another order)");
            return;
        }
        f.after = after_id;
        f.after_key = f.sort != CORE_SORT_DEVICE_ID ? after_key : NULL;
    }
    int64_t limit = API_LIST_DEFAULT;
    if (qint(c->req, "seen_since", 0, INT64_MAX, &f.seen_since_ms, c->r) < 0 ||
        qint(c->req, "seen_before", 0, INT64_MAX, &f.seen_before_ms, c->r) < 0 ||
        qint(c->req, "limit", 1, API_LIST_MAX, &limit, c->r) < 0)
        return;
    struct core_device *d = malloc(sizeof(*d) * (size_t)limit);
    if (!d) {
        fail(c->r, 500, "out of memory");
        return;
    }
    size_t n = 0;
    char cursor[CORE_DEVID_MAX + 1], key[CORE_SORT_KEY_MAX], next_s[API_CURSOR_MAX];
    if (core_reg_device_page_sorted(c->x->reg, &f, d, (size_t)limit, &n, cursor, key) < 0) {
        free(d);
        fail(c->r, 500, "reading the registry failed");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, device_json(&d[i]));
    cursor_make(cursor, f.sort, key, next_s);
    json_t *next = cursor[0] ? json_string(next_s) : json_null();
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
    int rc = core_reg_device_get(c->x->reg, id, &d);
    if (rc == CORE_REG_ENOTFOUND) {
        fail(c->r, 404, "no device %s", id);
        return;
    }
    struct core_action *h = malloc(sizeof(*h) * API_HISTORY_MAX);
    size_t n = 0;
    if (rc < 0 || !h || core_reg_action_list(c->x->reg, id, 0, h, API_HISTORY_MAX, &n) < 0) {
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

/* Why the device gets what it gets (core/explain.h), for it as recorded or
 * for a request it might send (?user=&ua=&type=&version=). An unknown
 * DeviceId is said to be unknown and the request is still decided. */
static void h_explain(struct call *c)
{
    static const char *const allowed[] = {"user", "ua", "type", "version", NULL};
    if (query_known(c->req->query, allowed, c->r) < 0)
        return;
    char id[CORE_DEVID_MAX + 1];
    if (path_devid(c, c->p[0], id) < 0)
        return;
    char user[CORE_USER_MAX], ua[CORE_AGENT_MAX], type[CORE_SHORT_MAX], ver[CORE_EASVER_MAX];
    int hu, ha, ht, hv;
    if ((hu = qget(c->req, "user", user, sizeof(user), c->r)) < 0 ||
        (ha = qget(c->req, "ua", ua, sizeof(ua), c->r)) < 0 ||
        (ht = qget(c->req, "type", type, sizeof(type), c->r)) < 0 ||
        (hv = qget(c->req, "version", ver, sizeof(ver), c->r)) < 0)
        return;
    if (hv > 0 && core_eas_version(ver) == 0) {
        fail(c->r, 400, "version: '%.16s' is not an ActiveSync version (e.g. 14.1, 16.1)", ver);
        return;
    }
    struct core_device d;
    int rc = core_reg_device_get(c->x->reg, id, &d);
    if (rc < 0 && rc != CORE_REG_ENOTFOUND) {
        fail(c->r, 500, "reading the registry failed");
        return;
    }
    pthread_mutex_lock(&c->a->rules_mu);
    struct compliance_rules rules = c->a->rules;
    pthread_mutex_unlock(&c->a->rules_mu);
    uint32_t rank = 0;
    if (rc == 0 && rules.max_devices_per_user > 0 && d.user[0] &&
        core_reg_user_rank(c->x->reg, id, &rank) < 0) {
        fail(c->r, 500, "reading the registry failed");
        return;
    }
    struct core_explain_req rq = {.user = hu > 0 ? user : NULL,
                                  .user_agent = ha > 0 ? ua : NULL,
                                  .device_type = ht > 0 ? type : NULL,
                                  .version = hv > 0 ? ver : NULL};
    json_t *j = core_explain(&rules, id, rc == 0 ? &d : NULL, rank, &rq, c->now);
    if (!j) {
        fail(c->r, 500, "out of memory");
        return;
    }
    reply(c->r, 200, j);
}

/* ---- a device's certificates (the enrollment role's, in the registry) ------- */

#define API_CERTS_MAX 50

/* Who keeps the CRL (core_api_on_revoke). Under the lock, so that once it
 * is cleared no writer calls into a role that stops. */
static pthread_mutex_t revoke_mu = PTHREAD_MUTEX_INITIALIZER;
static void (*revoke_fn)(void *arg);
static void *revoke_arg;

void core_api_on_revoke(void (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&revoke_mu);
    revoke_fn = fn;
    revoke_arg = arg;
    pthread_mutex_unlock(&revoke_mu);
}

/* Told: true if someone keeps the CRL here. */
static bool revoke_notify(void)
{
    pthread_mutex_lock(&revoke_mu);
    bool told = revoke_fn != NULL;
    if (told)
        revoke_fn(revoke_arg);
    pthread_mutex_unlock(&revoke_mu);
    return told;
}

static bool revoke_kept(void)
{
    pthread_mutex_lock(&revoke_mu);
    bool kept = revoke_fn != NULL;
    pthread_mutex_unlock(&revoke_mu);
    return kept;
}

/* The subject of a certificate in PEM, one line (RFC 2253), "" if unreadable. */
static void cert_subject(const char *pem, char *out, size_t n)
{
    out[0] = '\0';
    BIO *b = pem[0] ? BIO_new_mem_buf(pem, -1) : NULL;
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO *m = x ? BIO_new(BIO_s_mem()) : NULL;
    if (m && X509_NAME_print_ex(m, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0) {
        int k = BIO_read(m, out, (int)n - 1);
        out[k > 0 ? k : 0] = '\0';
    }
    BIO_free(m);
    X509_free(x);
    BIO_free(b);
}

static json_t *cert_json(const struct core_cert *ct, int64_t now)
{
    char subject[512];
    cert_subject(ct->pem, subject, sizeof(subject));
    const char *status = ct->revoked_ms ? "revoked" : ct->not_after_ms <= now ? "expired" : "valid";
    json_t *j = json_object();
    json_object_set_new(j, "serial", json_string(ct->serial));
    json_object_set_new(j, "subject", json_string(subject));
    json_object_set_new(j, "device_id", json_string(ct->device_id));
    json_object_set_new(j, "user", json_string(ct->user));
    json_object_set_new(j, "enrollment", json_string(ct->enrollment));
    json_object_set_new(j, "issued", json_integer(ct->issued_ms));
    json_object_set_new(j, "not_before", json_integer(ct->not_before_ms));
    json_object_set_new(j, "not_after", json_integer(ct->not_after_ms));
    json_object_set_new(j, "bound", json_integer(ct->bound_ms));
    json_object_set_new(j, "revoked", json_integer(ct->revoked_ms));
    json_object_set_new(j, "revoke_reason", json_string(ct->revoke_reason));
    json_object_set_new(j, "status", json_string(status));
    return j;
}

static void h_certs(struct call *c)
{
    if (query_known(c->req->query, (const char *const[]){NULL}, c->r) < 0)
        return;
    char id[CORE_DEVID_MAX + 1];
    if (path_devid(c, c->p[0], id) < 0)
        return;
    int ex = core_reg_device_exists(c->x->reg, id);
    if (ex == 0) {
        fail(c->r, 404, "no device %s", id);
        return;
    }
    struct core_cert *v = malloc(sizeof(*v) * API_CERTS_MAX);
    size_t n = 0;
    if (ex < 0 || !v || core_reg_cert_list(c->x->reg, id, v, API_CERTS_MAX, &n) < 0) {
        free(v);
        fail(c->r, 500, "reading the registry failed");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, cert_json(&v[i], c->now));
    free(v);
    reply(c->r, 200, json_pack("{s:s,s:o}", "device_id", id, "certificates", arr));
}

/* A certificate serial as the enrollment role writes it: hex, upper-case. */
static int serial_of(struct call *c, const char *in, char out[64])
{
    size_t l = strlen(in);
    bool ok = l > 0 && l < 64;
    for (size_t i = 0; ok && i < l; i++) {
        char ch = in[i];
        ok = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
        out[i] = (char)(ch >= 'a' ? ch - 'a' + 'A' : ch);
    }
    if (!ok) {
        fail(c->r, 400, "'%.64s' is not a certificate serial (hex digits)", in);
        return -1;
    }
    out[l] = '\0';
    return 0;
}

static void h_cert_revoke(struct call *c)
{
    static const struct jreq_field fs[] = {{"reason", JREQ_STR, false}, {0}};
    char id[CORE_DEVID_MAX + 1], sn[64];
    if (path_devid(c, c->p[0], id) < 0 || serial_of(c, c->p[1], sn) < 0)
        return;
    json_t *b = body_object(c->req, fs, c->r);
    if (!b)
        return;
    const char *reason = jreq_str(b, "reason");
    if (reason && strlen(reason) > 63) {
        json_decref(b);
        fail(c->r, 400, "field 'reason' is longer than 63 bytes");
        return;
    }
    int rc = core_eng_cert_revoke(c->x->eng, id, sn, reason, c->who.name, c->req->peer, c->now);
    json_decref(b);
    if (rc == CORE_REG_ENOTFOUND) {
        fail(c->r, 404, "device %s has no unrevoked certificate %s", id, sn);
        return;
    }
    if (rc < 0) {
        c->failed = true;
        fail(c->r, 500, "revoking %s of %s failed (registry error); nothing changed", sn, id);
        return;
    }
    eg_info("api: %s (%s) revoked certificate %s of %s", c->who.name, c->req->peer, sn, id);
    c->revoked = true;
    bool pushed = !c->x->eng->dirty && c->x->eng->push;
    reply(c->r, 200,
          json_pack("{s:s,s:s,s:b,s:s}", "revoked", sn, "device_id", id, "pushed", pushed, "crl",
                    revoke_kept() ? "rewriting" : "not here"));
}

void core_api_rules(struct core_api *a, const struct compliance_rules *rules)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->rules_mu);
    a->rules = *rules;
    pthread_mutex_unlock(&a->rules_mu);
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
    int ex = core_reg_device_exists(c->x->reg, id);
    if (ex <= 0) {
        json_decref(b);
        if (ex == 0)
            fail(c->r, 404, "no device %s", id);
        else
            fail(c->r, 500, "reading the registry failed");
        return;
    }
    int rc = core_eng_action(c->x->eng, id, act, jreq_str(b, "user"), c->who.name, c->req->peer,
                             jreq_str(b, "note") ? jreq_str(b, "note") : "", c->now);
    json_decref(b);
    if (rc == CORE_REG_ENOTFOUND) {
        fail(c->r, 404, "no device %s", id);
        return;
    }
    if (rc == CORE_REG_EPROTO) {
        struct core_device pd;
        bool got = core_reg_device_get(c->x->reg, id, &pd) == 0 && pd.eas_version[0];
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
    bool pushed = !c->x->eng->dirty && c->x->eng->push;
    if (act == CORE_ACT_DELETE) {
        reply(c->r, 200, json_pack("{s:s,s:b}", "deleted", id, "pushed", pushed));
        return;
    }
    struct core_device d;
    if (core_reg_device_get(c->x->reg, id, &d) < 0) {
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
    /* On the writer: this is one job of its group, committed with the
     * others before the answer leaves (core/wr.h). */
    struct core_device d;
    int rc = core_eng_checkin_get(c->x->eng, id, &ci, c->now, &d);
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
        core_reg_user_list(c->x->reg, has_after ? after : NULL, u, (size_t)limit + 1, &n) < 0) {
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
    static const char *const allowed[] = {"before", "limit", "target", NULL};
    if (query_known(c->req->query, allowed, c->r) < 0)
        return;
    int64_t before = 0, limit = API_LIST_DEFAULT;
    char target[CORE_USER_MAX];
    int has_target = qget(c->req, "target", target, sizeof(target), c->r);
    if (has_target < 0 || qint(c->req, "before", 1, INT64_MAX, &before, c->r) < 0 ||
        qint(c->req, "limit", 1, API_LIST_MAX, &limit, c->r) < 0)
        return;
    const char *t = has_target ? target : NULL;
    struct core_audit *au = malloc(sizeof(*au) * (size_t)(limit + 1));
    size_t n = 0;
    int rc = au ? core_reg_audit_find(c->x->reg, t, before, au, (size_t)limit + 1, &n) : -1;
    /* A DeviceId in any case finds the device's entries (stored canonical). */
    char canon[CORE_DEVID_MAX + 1];
    if (rc == 0 && n == 0 && t && core_reg_devid(t, canon) == 0 && strcmp(canon, t) != 0)
        rc = core_reg_audit_find(c->x->reg, canon, before, au, (size_t)limit + 1, &n);
    if (rc < 0) {
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

/* The chart's series over the last `n` buckets of `per` hours each, the
 * newest ending with the current hour: [{"at","registered","certified",
 * "blocked"}], oldest first, "at" the bucket's start (ms). */
static json_t *activity_json(int64_t (*h)[CORE_ACTIVITY_KINDS], int64_t from_hour, size_t n,
                             size_t per)
{
    json_t *arr = json_array();
    for (size_t b = 0; b < n; b++) {
        json_t *o =
            json_pack("{s:I}", "at", (json_int_t)((from_hour + (int64_t)(b * per)) * 3600000));
        for (int k = 0; k < CORE_ACTIVITY_KINDS; k++) {
            int64_t sum = 0;
            for (size_t i = b * per; i < (b + 1) * per; i++)
                sum += h[i][k];
            json_object_set_new(o, core_activity_name((enum core_activity_kind)k),
                                json_integer(sum));
        }
        json_array_append_new(arr, o);
    }
    return arr;
}

/* The dashboard's figures: devices per state and per compliance verdict,
 * pending devices, and the chart's registrations, certificates and blocks
 * per day for 30 days and per hour for 48 hours. The counts and the series
 * are kept by the database (schema 14): a few rows and one range of the
 * activity table (at most 31 x 24 rows) at any size; the pending count is
 * its table's index. Days are UTC days. */
static void h_stats(struct call *c)
{
    if (query_known(c->req->query, (const char *const[]){NULL}, c->r) < 0)
        return;
    struct core_reg_counts n;
    int64_t pending = core_reg_pending_count(c->x->reg);
    /* 30 whole days up to today (today so far included), and the last 48 hours. */
    int64_t hour = c->now / 3600000, day_from = (hour / 24 - 29) * 24;
    size_t hours = (size_t)(hour - day_from + 1);
    /* calloc: the hours of today still to come are read as zeros */
    int64_t(*h)[CORE_ACTIVITY_KINDS] = calloc(CORE_ACTIVITY_MAX_HOURS, sizeof(*h));
    if (!h || core_reg_counts(c->x->reg, &n) < 0 || pending < 0 ||
        core_reg_activity(c->x->reg, day_from, hours, h) < 0) {
        free(h);
        fail(c->r, 500, "reading the registry failed");
        return;
    }
    json_t *states = json_object();
    for (int i = 0; i < CORE_STATE_COUNT; i++)
        json_object_set_new(states, compliance_state_name((enum compliance_state)i),
                            json_integer(n.states[i]));
    json_t *days = activity_json(h, day_from, 30, 24);
    json_t *last48 = activity_json(h + (hours - 48), hour - 47, 48, 1);
    free(h);
    reply(c->r, 200,
          json_pack("{s:o,s:I,s:I,s:{s:I,s:I,s:I,s:I},s:{s:o,s:o}}", "states", states, "devices",
                    (json_int_t)n.devices, "pending", (json_int_t)pending, "compliance",
                    "compliant", (json_int_t)n.compliant, "failing", (json_int_t)n.failing, "grace",
                    (json_int_t)n.grace, "unchecked", (json_int_t)n.unchecked, "activity", "days",
                    days, "hours", last48));
}

/* The proxies alive now, as their workers announce themselves in Redis
 * (connectors/rstore_presence.h): one connection per call, bounded by a
 * 1 s timeout per reply, on a reader. */
static void h_proxies(struct call *c)
{
    if (query_known(c->req->query, (const char *const[]){NULL}, c->r) < 0)
        return;
    const struct conf_redis *rc = c->a->redis;
    if (!rc) {
        reply(c->r, 200, json_pack("{s:[]}", "proxies"));
        return;
    }
    struct rstore_sync_opts po = {.password = rc->password, .db = rc->db, .timeout_ms = 1000};
    char host[256];
    if (rc->sentinel.master) {
        if (rstore_sentinel_master(rc, host, sizeof(host), &po.port) < 0) {
            fail(c->r, 503, "no sentinel named a Redis master: the proxies cannot be listed");
            return;
        }
    } else {
        snprintf(host, sizeof(host), "%s", rc->host ? rc->host : "127.0.0.1");
        po.port = rc->port;
    }
    po.host = host;
    struct rstore_presence *p = malloc(sizeof(*p) * RSTORE_PRESENCE_MAX);
    size_t n = 0;
    char err[256];
    if (!p || rstore_presence_read(&po, p, RSTORE_PRESENCE_MAX, &n, err, sizeof(err)) < 0) {
        free(p);
        fail(c->r, 503, "reading the proxies' presence failed: %s", p ? err : "out of memory");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *j = json_loads(p[i].json, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(j)) { /* not one a proxy wrote: skipped */
            json_decref(j);
            continue;
        }
        json_object_set_new(j, "key", json_string(p[i].key));
        json_object_set_new(j, "expires_in", json_integer(p[i].ttl_ms));
        json_array_append_new(arr, j);
    }
    free(p);
    reply(c->r, 200, json_pack("{s:o}", "proxies", arr));
}

/* A login in two halves: the password check (argon2: a hasher's thread in
 * the service) and the session with its audit row (the writer's). */
struct login_state {
    char user[CORE_USER_MAX];
    int rc;
    int64_t wait_ms; /* > 0: refused by the back-off, the password unchecked */
    struct core_principal who;
    bool console; /* the console's sign-in: a session in a cookie, not a token */
};

/*
 * Guessing is slowed per account and per address (common/backoff.h): past
 * core.login_free_failures within core.login_window, each failure doubles
 * the wait before either may try again, and an attempt during the wait is
 * answered 429 with Retry-After without looking at the password. Every
 * name is counted alike, known or not, and costs the same argon2 work
 * (core_auth_verify), so neither the answer nor its time tells which names
 * exist. A success forgets its account's failures, never its address's:
 * one good account must not reset an attacker's address.
 */
static void login_throttle(struct call *c, struct login_state *ls, const char *password)
{
    struct core_api *a = c->a;
    int64_t wa = backoff_wait(a->by_account, ls->user, c->now);
    int64_t wp = backoff_wait(a->by_address, c->req->peer, c->now);
    ls->wait_ms = wa > wp ? wa : wp;
    if (ls->wait_ms > 0) {
        ls->rc = CORE_AUTH_EDENIED;
        return;
    }
    ls->rc = core_auth_verify(c->x->auth, ls->user, password, &ls->who);
    if (ls->rc == CORE_AUTH_EDENIED) {
        backoff_fail(a->by_account, ls->user, c->now);
        backoff_fail(a->by_address, c->req->peer, c->now);
    } else if (ls->rc == 0) {
        backoff_forget(a->by_account, ls->user);
    }
}

/* The audit key of an account and address pair: the address first (it
 * holds no newline; a name given to a login may). */
static void pair_key(const char *user, const char *peer, char *key, size_t len)
{
    snprintf(key, len, "%s\n%s", peer, user);
}

/* One audit row for the failures of a pair's window after its first (the
 * first was written as it happened). On the writer. */
static void pair_row(struct core_reg *reg, const struct backoff_state *st, int64_t window_ms)
{
    if (st->failures < 2)
        return;
    char peer[HTTPD_PEER_MAX], detail[160];
    const char *nl = strchr(st->key, '\n');
    const char *user = nl ? nl + 1 : "";
    size_t pl = nl ? (size_t)(nl - st->key) : 0;
    snprintf(peer, sizeof(peer), "%.*s", (int)(pl < sizeof(peer) ? pl : sizeof(peer) - 1), st->key);
    char win[32];
    units_fmt_duration(window_ms, win, sizeof(win));
    snprintf(detail, sizeof(detail),
             "%d more failed or refused logins in the %s after the first (one row per window)",
             st->failures - 1, win);
    core_reg_audit_add(reg, user, peer, "login-failed", user, detail, st->start_ms + window_ms);
}

/* Write the rows of every pair whose window has ended. On the writer. */
static void pairs_flush(struct core_api *a, struct core_reg *reg, int64_t now)
{
    struct backoff_state st[32];
    size_t n;
    while ((n = backoff_take_ended(a->login_pairs, now, st, 32)) > 0)
        for (size_t i = 0; i < n; i++)
            pair_row(reg, &st[i], a->login_audit_window_ms);
}

/* false when the request was answered already (a bad body). */
static bool login_verify(struct call *c, struct login_state *ls)
{
    static const struct jreq_field fs[] = {
        {"user", JREQ_STR, true}, {"password", JREQ_STR, true}, {"console", JREQ_BOOL, false}, {0}};
    json_t *b = body_object(c->req, fs, c->r);
    if (!b)
        return false;
    snprintf(ls->user, sizeof(ls->user), "%s", jreq_str(b, "user"));
    ls->console = json_is_true(json_object_get(b, "console"));
    login_throttle(c, ls, jreq_str(b, "password"));
    json_decref(b);
    return true;
}

/* A Set-Cookie header line for the console's session (value "" with
 * Max-Age=0 ends it in the browser). NULL when out of memory. */
static char *session_cookie(const char *value, int64_t max_age_ms)
{
    char *h = malloc(256);
    if (h)
        snprintf(h, 256,
                 "Set-Cookie: " API_COOKIE "=%s; Path=/; Max-Age=%lld; Secure; HttpOnly; "
                 "SameSite=Strict\r\n",
                 value, (long long)(max_age_ms / 1000));
    return h;
}

/* The console's sign-in: the session goes into an HttpOnly cookie that
 * the page's scripts cannot read; the page gets the CSRF token instead. */
static void console_signed_in(struct call *c, const struct login_state *ls, const char *token)
{
    char csrf[CORE_CSRF_LEN + 1];
    core_auth_csrf(token, csrf);
    char *cookie = session_cookie(token, c->a->o.session_ttl_ms);
    if (!cookie) {
        fail(c->r, 500, "out of memory");
        return;
    }
    reply(c->r, 200,
          json_pack("{s:s,s:s,s:s,s:I}", "user", ls->who.name, "role", core_role_name(ls->who.role),
                    "csrf", csrf, "idle_ms", (json_int_t)c->a->o.console_idle_ms));
    c->r->headers = cookie;
}

static void login_finish(struct call *c, struct login_state *ls)
{
    char token[CORE_TOKEN_MAX];
    int rc = ls->rc;
    if (rc == 0 && ls->console)
        rc = core_auth_console_open(c->x->auth, &ls->who, c->a->o.session_ttl_ms,
                                    c->a->o.console_idle_ms, c->now, token);
    else if (rc == 0)
        rc = core_auth_session_open(c->x->auth, &ls->who, c->a->o.session_ttl_ms, c->now, token);
    if (rc == 0) {
        core_reg_audit_add(c->x->reg, ls->user, c->req->peer, "login", ls->user, "", c->now);
    } else if (rc == CORE_AUTH_EDENIED) {
        /* The first failure of an account and address in a window is a
         * row at once, the rest one row with their count when the window
         * ends: a flood of guesses cannot flood the append-only log. */
        char key[BACKOFF_KEY_MAX];
        pair_key(ls->user, c->req->peer, key, sizeof(key));
        pairs_flush(c->a, c->x->reg, c->now);
        if (backoff_fail(c->a->login_pairs, key, c->now) <= 1)
            core_reg_audit_add(c->x->reg, ls->user, c->req->peer, "login-failed", ls->user,
                               ls->wait_ms > 0 ? "refused: backing off" : "", c->now);
    }
    if (rc == CORE_AUTH_EDENIED && ls->wait_ms > 0) {
        core_metrics_login_failure();
        fail(c->r, 429, "too many failed logins: try again in %lld s",
             (long long)((ls->wait_ms + 999) / 1000));
        c->r->retry_after = (int)((ls->wait_ms + 999) / 1000);
        return;
    }
    if (rc == CORE_AUTH_EDENIED) {
        core_metrics_login_failure();
        fail(c->r, 401, "wrong user name or password");
        return;
    }
    if (rc < 0) {
        fail(c->r, 500, "login failed (registry error)");
        return;
    }
    if (ls->console) {
        console_signed_in(c, ls, token);
        return;
    }
    reply(c->r, 200,
          json_pack("{s:s,s:s,s:s,s:I}", "token", token, "user", ls->who.name, "role",
                    core_role_name(ls->who.role), "expires",
                    (json_int_t)(c->now + c->a->o.session_ttl_ms)));
}

static void h_login(struct call *c)
{
    struct login_state ls;
    if (login_verify(c, &ls))
        login_finish(c, &ls);
}

static void h_logout(struct call *c)
{
    const char *t = c->tok;
    if (!c->console) {
        t = c->req->authorization + 7;
        while (*t == ' ')
            t++;
    }
    core_auth_logout(c->x->auth, t);
    reply(c->r, 200, json_pack("{s:b}", "ok", 1));
    if (c->console)
        c->r->headers = session_cookie("", 0);
}

static void h_whoami(struct call *c)
{
    json_t *j = json_pack("{s:s,s:s,s:I}", "user", c->who.name, "role", core_role_name(c->who.role),
                          "token_id", (json_int_t)c->who.token_id);
    if (c->console) { /* a reloaded page learns its CSRF token again */
        char csrf[CORE_CSRF_LEN + 1];
        core_auth_csrf(c->tok, csrf);
        json_object_set_new(j, "csrf", json_string(csrf));
        json_object_set_new(j, "idle_ms", json_integer(c->a->o.console_idle_ms));
    }
    reply(c->r, 200, j);
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
    int rc = core_auth_token_mint(c->x->auth, c->who.name, (enum core_role)role, label, c->now,
                                  token, &id);
    if (rc == 0) {
        char target[32];
        snprintf(target, sizeof(target), "token:%lld", (long long)id);
        char detail[300];
        snprintf(detail, sizeof(detail), "role=%s name=%s", core_role_name((enum core_role)role),
                 label);
        core_reg_audit_add(c->x->reg, c->who.name, c->req->peer, "token.mint", target, detail,
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
    int rc = core_auth_token_revoke(c->x->auth, id);
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
    core_reg_audit_add(c->x->reg, c->who.name, c->req->peer, "token.revoke", target, "", c->now);
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
    int rc = list ? core_auth_account_list(c->x->auth, list, API_ACCOUNTS_MAX, &n) : -1;
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
    core_reg_audit_add(c->x->reg, c->who.name, c->req->peer, action, target, detail ? detail : "",
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
    int rc = core_auth_account_add(c->x->auth, name, (enum core_role)role, jreq_str(b, "password"),
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
    int rc = core_auth_account_delete(c->x->auth, c->p[0]);
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
        int rc = core_auth_account_disable(c->x->auth, name, off);
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
    int rc = core_auth_account_passwd(c->x->auth, name, jreq_str(b, "password"), why, sizeof(why));
    json_decref(b);
    if (rc == CORE_AUTH_EINVAL) {
        fail(c->r, 422, "%s", why);
        return;
    }
    if (account_fail(c, rc, "resetting the password of") < 0)
        return;
    core_auth_sessions_end(c->x->auth, name);
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
    /* Guessing the old password with a stolen session waits like a login
     * (the account's back-off), and costs the writer no argon2 meanwhile. */
    int64_t wait = backoff_wait(c->a->by_account, c->who.name, c->now);
    if (wait > 0) {
        json_decref(b);
        fail(c->r, 429, "too many failed logins: try again in %lld s",
             (long long)((wait + 999) / 1000));
        c->r->retry_after = (int)((wait + 999) / 1000);
        return;
    }
    int rc = core_auth_verify(c->x->auth, c->who.name, jreq_str(b, "old_password"), NULL);
    if (rc == CORE_AUTH_EDENIED) {
        json_decref(b);
        backoff_fail(c->a->by_account, c->who.name, c->now);
        core_metrics_login_failure();
        audit(c, "account.password-change-failed", c->who.name, "wrong old password");
        fail(c->r, 403, "the old password is wrong");
        return;
    }
    char why[256] = "registry error";
    if (rc == 0)
        rc = core_auth_account_passwd(c->x->auth, c->who.name, jreq_str(b, "password"), why,
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
    core_auth_sessions_end(c->x->auth, c->who.name);
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
        list ? core_auth_token_list(c->x->auth, by ? account : NULL, list, API_TOKENS_MAX, &n) : -1;
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

/* ---- the notification queue ---------------------------------------------------- */

/* The queue's rows, newest first (docs/notifications.md section 4): what
 * waits, what was sent, what was given up on and why. Never a body: an
 * invitation's holds the enrollment key until it is sent. */
static void h_notifications(struct call *c)
{
    static const char *const allowed[] = {"state", "before", "limit", NULL};
    if (query_known(c->req->query, allowed, c->r) < 0)
        return;
    int64_t before = 0, limit = API_LIST_DEFAULT;
    char state[16];
    int has_state = qget(c->req, "state", state, sizeof(state), c->r);
    if (has_state < 0 || qint(c->req, "before", 1, INT64_MAX, &before, c->r) < 0 ||
        qint(c->req, "limit", 1, API_LIST_MAX, &limit, c->r) < 0)
        return;
    if (has_state && strcmp(state, "queued") != 0 && strcmp(state, "sent") != 0 &&
        strcmp(state, "failed") != 0) {
        fail(c->r, 400, "state: '%s' is not queued, sent or failed", state);
        return;
    }
    struct core_notify_row *rows = malloc(sizeof(*rows) * (size_t)(limit + 1));
    size_t n = 0;
    int64_t q, sent, failed;
    if (!rows ||
        core_notify_list(c->x->reg, has_state ? state : NULL, before, rows, (size_t)limit + 1, &n) <
            0 ||
        core_notify_counts(c->x->reg, &q, &sent, &failed) < 0) {
        free(rows);
        fail(c->r, 500, "reading the notification queue failed (registry error)");
        return;
    }
    bool more = n > (size_t)limit;
    if (more)
        n = (size_t)limit;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct core_notify_row *r = &rows[i];
        bool done = strcmp(r->state, "queued") != 0;
        json_array_append_new(
            arr, json_pack("{s:I,s:s,s:s,s:s,s:s,s:i,s:I,s:I,s:I,s:s}", "id", (json_int_t)r->id,
                           "channel", r->channel, "to", r->target, "event", r->event, "state",
                           r->state, "attempts", r->attempts, "queued", (json_int_t)r->created_ms,
                           "next", (json_int_t)(done ? 0 : r->next_ms), "done",
                           (json_int_t)(strcmp(r->state, "sent") == 0 ? r->sent_ms
                                        : done                        ? r->next_ms
                                                                      : 0),
                           "last_error", r->last_error));
    }
    json_t *next = more ? json_integer(rows[n - 1].id) : json_null();
    free(rows);
    reply(c->r, 200,
          json_pack("{s:o,s:o,s:{s:I,s:I,s:I}}", "notifications", arr, "next", next, "counts",
                    "queued", (json_int_t)q, "sent", (json_int_t)sent, "failed",
                    (json_int_t)failed));
}

/* ---- devices seen but never accepted ----------------------------------------- */

static json_t *pending_json(const struct core_pending_row *r)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I}", "device_id", r->device_id, "user",
                     r->user, "device_type", r->device_type, "user_agent", r->user_agent,
                     "client_addr", r->client_addr, "first_seen", (json_int_t)r->first_ms,
                     "last_seen", (json_int_t)r->last_ms, "count", (json_int_t)r->count,
                     "policy_key", (json_int_t)r->policy_key, "provisioned",
                     (json_int_t)r->provisioned_ms);
}

static void h_pending(struct call *c)
{
    static const char *const allowed[] = {"limit", "after", NULL};
    if (query_known(c->req->query, allowed, c->r) < 0)
        return;
    int64_t limit = API_LIST_DEFAULT;
    char after[CORE_DEVID_MAX + 1] = "";
    if (qint(c->req, "limit", 1, API_LIST_MAX, &limit, c->r) < 0 ||
        qget(c->req, "after", after, sizeof(after), c->r) < 0)
        return;
    struct core_pending_row *rows = calloc((size_t)limit, sizeof(*rows));
    size_t n = 0;
    if (!rows || core_reg_pending_list(c->x->reg, after, rows, (size_t)limit, &n) < 0) {
        free(rows);
        fail(c->r, 500, "listing the pending devices failed (registry error)");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, pending_json(&rows[i]));
    json_t *next = n == (size_t)limit ? json_string(rows[n - 1].device_id) : json_null();
    free(rows);
    reply(c->r, 200, json_pack("{s:o,s:o}", "pending", arr, "next", next));
}

/* Approve a device seen but never accepted: its registry row is created
 * (unmanaged, evaluated like any new device) with the type and user agent
 * seen, and the user only when the admin names one: the user a turned-away
 * request claimed was never checked. "allow": true also gives it an admin
 * allow override (as the allow action, recorded with who and when), in the
 * same transaction: under unknown_devices: block an unmanaged device stays
 * blocked, and approving should not mean that by accident. Without it the
 * approval only registers (docs/access-model.md says why that is the
 * default). */
static void h_pending_approve(struct call *c)
{
    char id[CORE_DEVID_MAX + 1];
    if (path_devid(c, c->p[0], id) < 0)
        return;
    static const struct jreq_field fs[] = {
        {"user", JREQ_STR, false}, {"allow", JREQ_BOOL, false}, {"note", JREQ_STR, false}, {0}};
    json_t *b = c->req->body_len ? body_object(c->req, fs, c->r) : json_object();
    if (!b)
        return;
    struct core_pending_row r;
    int rc = core_reg_pending_get(c->x->reg, id, &r);
    if (rc == CORE_REG_ENOTFOUND) {
        json_decref(b);
        fail(c->r, 404, "no pending device %s (expired, approved, or never seen)", id);
        return;
    }
    const char *user = jreq_str(b, "user");
    struct core_devinfo in = {.device_type = r.device_type[0] ? r.device_type : NULL,
                              .user_agent = r.user_agent[0] ? r.user_agent : NULL,
                              .client_addr = r.client_addr[0] ? r.client_addr : NULL,
                              .user = user && user[0] ? user : NULL};
    bool created = false, allow = json_is_true(json_object_get(b, "allow"));
    const char *note = jreq_str(b, "note");
    /* One transaction with the answer (core_api_handle): registered and
     * allowed, or neither. */
    if (rc == 0)
        rc = core_eng_seen(c->x->eng, id, &in, c->now, &created); /* drops it from pending */
    if (rc == 0)
        rc = core_reg_audit_add(c->x->reg, c->who.name, c->req->peer, "device.approve", id,
                                user && user[0] ? user : "", c->now);
    if (rc == 0 && allow)
        rc = core_eng_action(c->x->eng, id, CORE_ACT_ALLOW, NULL, c->who.name, c->req->peer,
                             note ? note : "approved", c->now);
    json_decref(b);
    if (rc < 0) {
        c->failed = true;
        fail(c->r, 500, "approving the device failed (registry error)");
        return;
    }
    struct core_device d;
    if (core_reg_device_get(c->x->reg, id, &d) < 0) {
        c->failed = true;
        fail(c->r, 500, "approving the device failed (registry error)");
        return;
    }
    reply(c->r, created ? 201 : 200, device_json(&d));
}

/* ---- bulk import --------------------------------------------------------------- */

/* The rows' errors as [{"row": i, "error": "..."}] (rows count from 0). */
static void row_error(json_t *errs, size_t row, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void row_error(json_t *errs, size_t row, const char *fmt, ...)
{
    char m[480];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof(m), fmt, ap);
    va_end(ap);
    json_array_append_new(errs, json_pack("{s:I,s:s}", "row", (json_int_t)row, "error", m));
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/*
 * The array field key of an import body: 1..API_IMPORT_MAX objects, each
 * checked by fs. 0, or -1 after answering 400 with every row's error.
 */
static int import_rows(struct call *c, json_t *b, const char *key, const struct jreq_field *fs,
                       size_t *n)
{
    json_t *rows = json_object_get(b, key);
    *n = json_array_size(rows);
    if (*n == 0 || *n > API_IMPORT_MAX) {
        fail(c->r, 400, "'%s' must hold 1 to %d rows (send a larger file in batches)", key,
             API_IMPORT_MAX);
        return -1;
    }
    json_t *errs = json_array();
    for (size_t i = 0; i < *n; i++) {
        char err[256];
        if (!jreq_check(json_array_get(rows, i), fs, API_STR_MAX, err, sizeof(err)))
            row_error(errs, i, "%s", err);
    }
    if (json_array_size(errs)) {
        reply(c->r, 400,
              json_pack("{s:s,s:o}", "error", "some rows are not valid; nothing was stored", "rows",
                        errs));
        return -1;
    }
    json_decref(errs);
    return 0;
}

static void h_import_devices(struct call *c)
{
    static const struct jreq_field top[] = {{"dry_run", JREQ_BOOL, false},
                                            {"validate", JREQ_BOOL, false},
                                            {"create_users", JREQ_BOOL, false},
                                            {"devices", JREQ_ARRAY, true},
                                            {0}};
    static const struct jreq_field fs[] = {
        {"device_id", JREQ_STR, true}, {"user", JREQ_STR, false},
        {"type", JREQ_STR, false},     {"model", JREQ_STR, false},
        {"os", JREQ_STR, false},       {"os_version", JREQ_STR, false},
        {"managed", JREQ_TRI, false},  {"state", JREQ_STR, false},
        {"note", JREQ_STR, false},     {0}};
    json_t *b = body_object(c->req, top, c->r);
    size_t n = 0;
    if (!b || import_rows(c, b, "devices", fs, &n) < 0) {
        json_decref(b);
        return;
    }
    /* validate: the check a client makes before storing anything, which
     * needs only the errors (no registry read per row, no changes listed) */
    bool validate = json_is_true(json_object_get(b, "validate"));
    bool dry = validate || json_is_true(json_object_get(b, "dry_run"));
    bool create_users = json_is_true(json_object_get(b, "create_users"));
    json_t *rows = json_object_get(b, "devices");
    struct core_import_row *r = calloc(n, sizeof(*r));
    struct core_import_res *res = calloc(n, sizeof(*res));
    char(*canon)[CORE_DEVID_MAX + 1] = calloc(n, sizeof(*canon));
    char **sorted = calloc(n, sizeof(*sorted));
    json_t *errs = json_array();
    if (!r || !res || !canon || !sorted) {
        fail(c->r, 500, "out of memory");
        goto out;
    }
    /* What each row means, checked whole before anything is written. */
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(rows, i);
        r[i] = (struct core_import_row){.device_id = jreq_str(o, "device_id"),
                                        .user = jreq_str(o, "user"),
                                        .device_type = jreq_str(o, "type"),
                                        .model = jreq_str(o, "model"),
                                        .os = jreq_str(o, "os"),
                                        .os_version = jreq_str(o, "os_version"),
                                        .note = jreq_str(o, "note"),
                                        .managed = -1,
                                        .override = -1};
        json_t *m = json_object_get(o, "managed");
        if (m && !json_is_null(m))
            r[i].managed = json_is_true(m);
        if (core_reg_devid(r[i].device_id, canon[i]) < 0)
            row_error(errs, i, "device_id '%.64s' is not a DeviceId (1-32 letters and digits)",
                      r[i].device_id);
        sorted[i] = canon[i];
        struct compliance_ver ver;
        if (r[i].os_version && r[i].os_version[0] &&
            compliance_ver_parse(r[i].os_version, &ver) < 0)
            row_error(errs, i, "os_version '%.64s' is not a version like 16.1 or 16.1.2",
                      r[i].os_version);
        const char *st = jreq_str(o, "state");
        enum compliance_override ov;
        if (!st || !st[0])
            ;
        else if (strcmp(st, "wipe") == 0)
            row_error(errs, i,
                      "state wipe is not imported: wipe a device on its own "
                      "(easgate admin devices wipe ID)");
        else if (compliance_override_parse(st, &ov) == 0)
            r[i].override = (int)ov;
        else
            row_error(errs, i, "state '%.32s' is not allow, block, quarantine or none", st);
    }
    /* One DeviceId twice in a batch would make its outcome depend on the order. */
    qsort(sorted, n, sizeof(*sorted), cmp_str);
    for (size_t i = 1; i < n; i++)
        if (sorted[i][0] && strcmp(sorted[i], sorted[i - 1]) == 0) {
            for (size_t k = 0; k < n; k++)
                if (strcmp(canon[k], sorted[i]) == 0)
                    row_error(errs, k, "device %s is in this batch more than once", sorted[i]);
            while (i + 1 < n && strcmp(sorted[i + 1], sorted[i]) == 0)
                i++;
        }
    if (json_array_size(errs)) {
        reply(c->r, 400,
              json_pack("{s:s,s:O}", "error", "some rows are not valid; nothing was stored", "rows",
                        errs));
        goto out;
    }
    size_t nerr = 0;
    int rc = validate ? core_eng_import_check(c->x->eng, r, n, create_users, res, &nerr)
                      : core_eng_import(c->x->eng, r, n, dry, create_users, c->who.name,
                                        c->req->peer, c->now, res, &nerr);
    if (rc < 0) {
        fail(c->r, 500, "the import failed (registry error); nothing of this batch was stored");
        goto out;
    }
    static const char *const outcome[] = {"unchanged", "created", "updated", "error"};
    size_t count[4] = {0};
    json_t *out_rows = json_array();
    for (size_t i = 0; i < n; i++) {
        count[res[i].outcome]++;
        if (res[i].outcome == CORE_IMPORT_UNCHANGED)
            continue;
        json_array_append_new(out_rows,
                              json_pack("{s:I,s:s,s:s,s:s}", "row", (json_int_t)i, "device_id",
                                        canon[i], "outcome", outcome[res[i].outcome],
                                        res[i].outcome == CORE_IMPORT_ERROR ? "error" : "changes",
                                        res[i].what));
    }
    if (validate) {
        reply(c->r, 200,
              json_pack("{s:b,s:b,s:b,s:I,s:o}", "dry_run", true, "validate", true, "stored", false,
                        "errors", (json_int_t)nerr, "rows", out_rows));
        goto out;
    }
    bool stored = !dry && nerr == 0;
    if (stored) {
        char detail[128];
        snprintf(detail, sizeof(detail), "created %zu, updated %zu, unchanged %zu",
                 count[CORE_IMPORT_CREATED], count[CORE_IMPORT_UPDATED],
                 count[CORE_IMPORT_UNCHANGED]);
        core_reg_audit_add(c->x->reg, c->who.name, c->req->peer, "devices.import", "", detail,
                           c->now);
    }
    json_t *j = json_pack("{s:b,s:b,s:I,s:I,s:I,s:I,s:o}", "dry_run", dry, "stored", stored,
                          "created", (json_int_t)count[CORE_IMPORT_CREATED], "updated",
                          (json_int_t)count[CORE_IMPORT_UPDATED], "unchanged",
                          (json_int_t)count[CORE_IMPORT_UNCHANGED], "errors", (json_int_t)nerr,
                          "rows", out_rows);
    if (nerr && !dry)
        json_object_set_new(j, "error",
                            json_string("some rows were refused; nothing of this batch was "
                                        "stored"));
    reply(c->r, nerr && !dry ? 422 : 200, j);
out:
    json_decref(errs);
    json_decref(b);
    free(r);
    free(res);
    free(canon);
    free(sorted);
}

static void h_import_users(struct call *c)
{
    static const struct jreq_field top[] = {{"dry_run", JREQ_BOOL, false},
                                            {"validate", JREQ_BOOL, false},
                                            {"users", JREQ_ARRAY, true},
                                            {0}};
    static const struct jreq_field fs[] = {{"name", JREQ_STR, true}, {0}};
    json_t *b = body_object(c->req, top, c->r);
    size_t n = 0;
    if (!b || import_rows(c, b, "users", fs, &n) < 0) {
        json_decref(b);
        return;
    }
    bool dry = json_is_true(json_object_get(b, "dry_run"));
    json_t *rows = json_object_get(b, "users");
    json_t *errs = json_array();
    for (size_t i = 0; i < n; i++) {
        const char *name = jreq_str(json_array_get(rows, i), "name");
        bool bad = !name[0];
        for (const char *p = name; *p; p++)
            bad |= (unsigned char)*p < 0x20 || *p == 0x7f;
        if (bad)
            row_error(errs, i, "a user name is 1-255 bytes without control characters");
        for (size_t k = 0; k < i; k++)
            if (strcasecmp(name, jreq_str(json_array_get(rows, k), "name")) == 0)
                row_error(errs, i, "user '%.64s' is in this batch more than once (row %zu)", name,
                          k);
    }
    if (json_array_size(errs)) {
        reply(c->r, 400,
              json_pack("{s:s,s:o}", "error", "some rows are not valid; nothing was stored", "rows",
                        errs));
        json_decref(b);
        return;
    }
    json_decref(errs);
    if (json_is_true(json_object_get(b, "validate"))) { /* names are all a user row has */
        json_decref(b);
        reply(c->r, 200,
              json_pack("{s:b,s:b,s:b,s:I,s:[]}", "dry_run", true, "validate", true, "stored",
                        false, "errors", (json_int_t)0, "rows"));
        return;
    }
    size_t created = 0, unchanged = 0;
    json_t *out_rows = json_array();
    int rc = 0;
    for (size_t i = 0; i < n && rc >= 0; i++) {
        const char *name = jreq_str(json_array_get(rows, i), "name");
        rc = dry ? core_reg_user_exists(c->x->reg, name)
                 : core_reg_user_add(c->x->reg, name, c->now);
        /* exists: 1 known; add: 1 created */
        bool made = dry ? rc == 0 : rc == 1;
        if (rc < 0)
            break;
        if (made) {
            created++;
            json_array_append_new(out_rows, json_pack("{s:I,s:s,s:s}", "row", (json_int_t)i, "name",
                                                      name, "outcome", "created"));
        } else {
            unchanged++;
        }
    }
    if (rc < 0) {
        json_decref(out_rows);
        json_decref(b);
        fail(c->r, 500, "the import failed (registry error); nothing of this batch was stored");
        /* the writer rolls this job back (the handler's registry error) */
        c->failed = true;
        return;
    }
    if (!dry && created) {
        char detail[96];
        snprintf(detail, sizeof(detail), "created %zu, unchanged %zu", created, unchanged);
        core_reg_audit_add(c->x->reg, c->who.name, c->req->peer, "users.import", "", detail,
                           c->now);
    }
    json_decref(b);
    reply(c->r, 200,
          json_pack("{s:b,s:b,s:I,s:I,s:o}", "dry_run", dry, "stored", !dry, "created",
                    (json_int_t)created, "unchanged", (json_int_t)unchanged, "rows", out_rows));
}

/* GET /api/v1/lockouts: the accounts and addresses waiting now. */
static void h_lockouts(struct call *c)
{
    struct backoff_state *st = malloc(sizeof(*st) * API_LIST_MAX);
    if (!st) {
        fail(c->r, 500, "out of memory");
        return;
    }
    json_t *arr = json_array();
    struct backoff *tabs[2] = {c->a->by_account, c->a->by_address};
    for (int k = 0; k < 2; k++) {
        size_t n = backoff_waiting(tabs[k], c->now, st, API_LIST_MAX);
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, json_pack("{s:s,s:s,s:i,s:i,s:I,s:I}", "kind",
                                                 k ? "address" : "account", "key", st[i].key,
                                                 "failures", st[i].failures, "refused",
                                                 st[i].refused, "since", (json_int_t)st[i].start_ms,
                                                 "until", (json_int_t)st[i].until_ms));
    }
    free(st);
    reply(c->r, 200, json_pack("{s:o}", "lockouts", arr));
}

/* POST /api/v1/lockouts/lift {"account": NAME} or {"address": ADDR}: the
 * wait ends and the failures are forgotten (audited). */
static void h_lockout_lift(struct call *c)
{
    static const struct jreq_field fs[] = {
        {"account", JREQ_STR, false}, {"address", JREQ_STR, false}, {0}};
    json_t *b = body_object(c->req, fs, c->r);
    if (!b)
        return;
    const char *acc = jreq_str(b, "account"), *addr = jreq_str(b, "address");
    if (!acc && !addr) {
        json_decref(b);
        fail(c->r, 400, "give the account or the address to lift");
        return;
    }
    int na = acc ? backoff_forget(c->a->by_account, acc) : 0;
    int np = addr ? backoff_forget(c->a->by_address, addr) : 0;
    if (na)
        audit(c, "login.lift", acc, "account");
    if (np)
        audit(c, "login.lift", addr, "address");
    int n = na + np;
    json_decref(b);
    reply(c->r, 200, json_pack("{s:i}", "lifted", n));
}

/* ---- invitations: the enrollment role's, when it runs here (api.h) ----------- */

static struct core_api_inv inv_provider; /* submit NULL = none */

void core_api_invitations(const struct core_api_inv *inv)
{
    inv_provider = inv ? *inv : (struct core_api_inv){0};
}

static enum core_api_inv_op inv_op(const char *method)
{
    if (strcmp(method, "POST") == 0)
        return CORE_API_INV_CREATE;
    return strcmp(method, "DELETE") == 0 ? CORE_API_INV_WITHDRAW : CORE_API_INV_LIST;
}

static void inv_busy(struct httpd_resp *r)
{
    fail(r, 503, "the enrollment role is busy or stopping; try again in a moment");
    r->retry_after = API_RETRY_AFTER_S;
}

static void inv_done_inline(struct core_api_inv_call *call)
{
    (void)call; /* core_api_handle: answered before submit returned */
}

/* Without a provider, say where the invitations are; with core_api_handle
 * (tests), hand the call over on this thread. The service hands it over
 * in job_call instead, without waiting. */
static void h_inv(struct call *c)
{
    if (!inv_provider.submit) {
        fail(c->r, 404,
             "invitations are the enrollment role's, which does not run in this process: set "
             "enroll.listen (docs/enrollment.md), or use that server's /enroll/v1/invitations");
        return;
    }
    struct core_api_inv_call ic = {.op = inv_op(c->req->method),
                                   .id = c->p[0],
                                   .req = c->req,
                                   .who = c->who,
                                   .resp = c->r,
                                   .done = inv_done_inline};
    if (inv_provider.submit(inv_provider.arg, &ic) < 0)
        inv_busy(c->r);
}

/* ---- the route table --------------------------------------------------------- */

enum need { N_NONE, N_VIEW, N_ADMIN, N_CHECKIN };

/* Where a route runs in the service: a reader, the writer, a hasher then
 * the writer, or a reader (to authenticate) then the invitations'
 * provider (core_api_invitations). */
enum run_on { ON_READ, ON_WRITE, ON_LOGIN, ON_INV };

static const struct httpd_route routes[] = {
    {"POST", "/api/v1/login"},
    {"POST", "/api/v1/logout"},
    {"GET", "/api/v1/whoami"},
    {"GET", "/api/v1/devices"},
    {"POST", "/api/v1/devices/import"},
    {"GET", "/api/v1/devices/:id"},
    {"GET", "/api/v1/devices/:id/explain"},
    {"DELETE", "/api/v1/devices/:id"},
    {"POST", "/api/v1/devices/:id/:action"},
    {"POST", "/api/v1/checkin"},
    {"GET", "/api/v1/users"},
    {"POST", "/api/v1/users/import"},
    {"GET", "/api/v1/audit"},
    {"POST", "/api/v1/tokens"},
    {"DELETE", "/api/v1/tokens/:id"},
    {"GET", "/api/v1/tokens"},
    {"GET", "/api/v1/admins"},
    {"POST", "/api/v1/admins"},
    {"DELETE", "/api/v1/admins/:name"},
    {"POST", "/api/v1/admins/:name/:action"},
    {"POST", "/api/v1/password"},
    {"GET", "/api/v1/pending"},
    {"POST", "/api/v1/pending/:id/approve"},
    {"GET", "/api/v1/lockouts"},
    {"POST", "/api/v1/lockouts/lift"},
    {"GET", "/api/v1/notifications"},
    {"GET", "/api/v1/stats"},
    {"GET", "/api/v1/proxies"},
    {"POST", "/api/v1/invitations"},
    {"GET", "/api/v1/invitations"},
    {"DELETE", "/api/v1/invitations/:id"},
    {"GET", "/api/v1/devices/:id/certs"},
    {"POST", "/api/v1/devices/:id/certs/:serial/revoke"},
    {NULL, NULL},
};

/* The routes as /metrics and the request log name them: the table's, then
 * the listener's own paths (health()). */
static const char *const route_names[] = {
    "POST /api/v1/login",
    "POST /api/v1/logout",
    "GET /api/v1/whoami",
    "GET /api/v1/devices",
    "POST /api/v1/devices/import",
    "GET /api/v1/devices/:id",
    "GET /api/v1/devices/:id/explain",
    "DELETE /api/v1/devices/:id",
    "POST /api/v1/devices/:id/:action",
    "POST /api/v1/checkin",
    "GET /api/v1/users",
    "POST /api/v1/users/import",
    "GET /api/v1/audit",
    "POST /api/v1/tokens",
    "DELETE /api/v1/tokens/:id",
    "GET /api/v1/tokens",
    "GET /api/v1/admins",
    "POST /api/v1/admins",
    "DELETE /api/v1/admins/:name",
    "POST /api/v1/admins/:name/:action",
    "POST /api/v1/password",
    "GET /api/v1/pending",
    "POST /api/v1/pending/:id/approve",
    "GET /api/v1/lockouts",
    "POST /api/v1/lockouts/lift",
    "GET /api/v1/notifications",
    "GET /api/v1/stats",
    "GET /api/v1/proxies",
    "POST /api/v1/invitations",
    "GET /api/v1/invitations",
    "DELETE /api/v1/invitations/:id",
    "GET /api/v1/devices/:id/certs",
    "POST /api/v1/devices/:id/certs/:serial/revoke",
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    NULL,
};
#define ROUTE_HEALTHZ (sizeof(routes) / sizeof(routes[0]) - 1)
_Static_assert(sizeof(route_names) / sizeof(route_names[0]) == ROUTE_HEALTHZ + 4,
               "one name per route, then the three health paths");

/* Account changes hash a password (argon2) on the writer: rare admin calls,
 * each a few tens of milliseconds of the writer's time. */
static const struct {
    void (*fn)(struct call *c);
    enum need need;
    enum run_on on;
} route_fns[] = {
    {h_login, N_NONE, ON_LOGIN},
    {h_logout, N_VIEW, ON_WRITE},
    {h_whoami, N_VIEW, ON_READ},
    {h_devices, N_VIEW, ON_READ},
    {h_import_devices, N_ADMIN, ON_WRITE},
    {h_device, N_VIEW, ON_READ},
    {h_explain, N_VIEW, ON_READ},
    {h_delete, N_ADMIN, ON_WRITE},
    {h_action, N_ADMIN, ON_WRITE},
    {h_checkin, N_CHECKIN, ON_WRITE},
    {h_users, N_VIEW, ON_READ},
    {h_import_users, N_ADMIN, ON_WRITE},
    {h_audit, N_VIEW, ON_READ},
    {h_token_new, N_ADMIN, ON_WRITE},
    {h_token_del, N_ADMIN, ON_WRITE},
    {h_tokens, N_ADMIN, ON_READ},
    {h_admins, N_ADMIN, ON_READ},
    {h_admin_new, N_ADMIN, ON_WRITE},
    {h_admin_del, N_ADMIN, ON_WRITE},
    {h_admin_action, N_ADMIN, ON_WRITE},
    {h_password, N_VIEW, ON_WRITE},
    {h_pending, N_VIEW, ON_READ},
    {h_pending_approve, N_ADMIN, ON_WRITE},
    {h_lockouts, N_ADMIN, ON_READ},
    {h_lockout_lift, N_ADMIN, ON_WRITE},
    {h_notifications, N_VIEW, ON_READ},
    {h_stats, N_VIEW, ON_READ},
    {h_proxies, N_VIEW, ON_READ},
    {h_inv, N_ADMIN, ON_INV},
    {h_inv, N_VIEW, ON_INV},
    {h_inv, N_ADMIN, ON_INV},
    {h_certs, N_VIEW, ON_READ},
    {h_cert_revoke, N_ADMIN, ON_WRITE},
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

/* The route of a request: its index, or -1 after answering 400/404/405. */
static int route_of(const struct httpd_req *req, char params[HTTPD_PARAMS_MAX][HTTPD_PARAM_LEN],
                    struct httpd_resp *resp)
{
    int i = httpd_route_match(routes, req->method, req->path, params);
    if (i == -405)
        fail(resp, 405, "%s is not allowed on %.200s", req->method, req->path);
    else if (i == -400)
        fail(resp, 400, "a path segment is too long or badly encoded");
    else if (i < 0)
        fail(resp, 404, "no such endpoint: %.200s (the API lives under /api/v1)", req->path);
    return i < 0 ? -1 : i;
}

/* The console's session token from a Cookie header into tok: 0, or -1
 * when there is none (or it is not one of ours). */
static int cookie_token(const char *cookie, char tok[CORE_TOKEN_MAX])
{
    static const char name[] = API_COOKIE "=";
    for (const char *p = cookie; p && *p;) {
        p += strspn(p, " \t");
        size_t len = strcspn(p, ";");
        if (len > sizeof(name) - 1 && memcmp(p, name, sizeof(name) - 1) == 0) {
            size_t vl = len - (sizeof(name) - 1);
            const char *v = p + sizeof(name) - 1;
            if (vl >= CORE_TOKEN_MAX || vl < 5 || memcmp(v, "egc_", 4) != 0)
                return -1;
            memcpy(tok, v, vl);
            tok[vl] = '\0';
            return 0;
        }
        p += len;
        p += *p == ';';
    }
    return -1;
}

/* A console session's idle expiry moves on through the writer (readers
 * hold read-only connections): at most once per API_TOUCH_MS a session. */
struct touch_job {
    struct core_wr_job wj;
    struct core_api *a;
    char tok[CORE_TOKEN_MAX];
    int64_t at_ms;
};

static int touch_run(struct core_wr_job *wj, struct core_wr_env *env)
{
    struct touch_job *t = (struct touch_job *)wj;
    core_auth_console_touch(env->auth, t->tok, t->a->o.session_ttl_ms, t->a->o.console_idle_ms,
                            t->at_ms);
    return 0; /* bookkeeping: never undoes the group's other jobs */
}

static void touch_done(struct core_wr_job *wj, int rc)
{
    (void)rc;
    free(wj);
}

static void console_touch(struct call *c)
{
    struct core_api *a = c->a;
    if (c->who.expires_ms - c->now > a->o.console_idle_ms - API_TOUCH_MS)
        return;   /* moved on less than a minute ago */
    if (!a->wr) { /* core_api_new: one connection does everything */
        core_auth_console_touch(c->x->auth, c->tok, a->o.session_ttl_ms, a->o.console_idle_ms,
                                c->now);
        return;
    }
    struct touch_job *t = malloc(sizeof(*t));
    if (!t)
        return;
    *t = (struct touch_job){.wj = {.run = touch_run, .done = touch_done}, .a = a, .at_ms = c->now};
    memcpy(t->tok, c->tok, sizeof(t->tok));
    if (core_wr_submit(a->wr, &t->wj) < 0)
        free(t);
}

static bool safe_method(const char *m)
{
    return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
}

/*
 * Authenticate c for route i: 0, or -1 after answering 401/403/500.
 * A bearer token in Authorization (API clients), or else the console's
 * session cookie, which must come with the session's CSRF token on every
 * call that may change something: a page of another site can make the
 * browser send the cookie (SameSite=Strict aside), never the header.
 */
static int authorize(struct call *c, int i)
{
    if (route_fns[i].need == N_NONE)
        return 0;
    const char *authz = c->req->authorization;
    char bearer[16 + CORE_TOKEN_MAX];
    if (authz) {
        const char *t = authz + (strncasecmp(authz, "Bearer ", 7) == 0 ? 7 : 0);
        while (*t == ' ')
            t++;
        if (strncmp(t, "egc_", 4) == 0) {
            fail(c->r, 401, "a console session is valid only in its cookie");
            return -1;
        }
    } else if (cookie_token(c->req->cookie, c->tok) == 0) {
        c->console = true;
        snprintf(bearer, sizeof(bearer), "Bearer %s", c->tok);
        authz = bearer;
    }
    int rc = core_auth_check(c->x->auth, authz, c->now, &c->who);
    if (rc == 0 && c->console && !safe_method(c->req->method) &&
        !core_auth_csrf_ok(c->tok, c->req->csrf)) {
        fail(c->r, 403, "send the session's X-CSRF-Token with every change (reload the console)");
        return -1;
    }
    if (rc == 0 && c->console)
        console_touch(c);
    if (rc == CORE_AUTH_EDENIED && c->console) {
        fail(c->r, 401, "the console session has expired or ended: sign in again");
        return -1;
    }
    if (rc == CORE_AUTH_EDENIED) {
        fail(c->r, 401,
             c->req->authorization ? "the token is unknown, expired or revoked"
                                   : "send Authorization: Bearer TOKEN (log in or mint a token)");
        return -1;
    }
    if (rc < 0) {
        fail(c->r, 500, "checking the token failed (registry error)");
        return -1;
    }
    return allowed(c, route_fns[i].need);
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

/* Count and log one answered request (route: its index, -1 = none matched). */
static void account_req(const struct httpd_req *req, int status, const char *user, int route,
                        int64_t start_ms, int64_t end_ms)
{
    const char *name = route >= 0 ? route_names[route] : NULL;
    core_metrics_api(name, status);
    if (api_log_fd < 0 || route >= (int)ROUTE_HEALTHZ) /* scrapes and probes stay out */
        return;
    char at[32], line[API_LOG_LINE_MAX];
    time_t s = (time_t)(start_ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%S", &tm);
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:s,s:s,s:I}", "time", at, "role", "core",
                          "method", req->method, "route", name ? name : "", "path", req->path,
                          "status", status, "user", user, "client", req->peer ? req->peer : "",
                          "duration_ms", (json_int_t)(end_ms - start_ms));
    char *d = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(j);
    if (d) {
        int n = snprintf(line, sizeof(line), "%s\n", d);
        if (n > 0 && (size_t)n < sizeof(line))
            logfile_write(api_log_fd, line, (size_t)n);
        free(d);
    }
}

void core_api_handle(struct core_api *a, const struct httpd_req *req, struct httpd_resp *resp)
{
    char params[HTTPD_PARAMS_MAX][HTTPD_PARAM_LEN];
    struct call c = {.a = a, .x = &a->inl, .req = req, .r = resp, .p = params, .now = now_ms(a)};
    if (core_ui_serve(req, resp))
        return;
    int i = health(req, resp);
    if (i < 0)
        i = route_of(req, params, resp);
    if (i >= 0 && i < (int)ROUTE_HEALTHZ && authorize(&c, i) == 0) {
        /* Like the writer: a change and its answer commit together (the
         * invitations' provider writes on its own connection). */
        bool tx = route_fns[i].on != ON_READ && route_fns[i].on != ON_INV &&
                  core_eng_begin(c.x->eng) == 0;
        route_fns[i].fn(&c);
        if (tx && c.failed)
            core_eng_rollback(c.x->eng);
        else if (tx && core_eng_commit(c.x->eng) < 0) {
            free(resp->body);
            free(resp->headers);
            resp->body = resp->headers = NULL;
            fail(resp, 503, "the registry could not store this; nothing changed, try again");
        } else if (c.revoked) {
            revoke_notify();
        }
    }
    account_req(req, resp->status, c.who.name, i, c.now, now_ms(a));
}

/* ---- construction ------------------------------------------------------------ */

static int ctx_open(struct api_ctx *x, struct core_api *a, struct core_reg *reg,
                    struct core_auth_cache *cache)
{
    x->a = a;
    x->reg = reg;
    if (core_auth_open(reg, &x->auth) < 0)
        return -1;
    core_auth_set_cache(x->auth, cache);
    return 0;
}

int core_api_new(struct core_reg *reg, struct rstore_push *push,
                 const struct compliance_rules *rules, const struct core_api_opts *o,
                 struct core_api **out)
{
    *out = NULL;
    struct core_api *a = calloc(1, sizeof(*a));
    if (!a)
        return -1;
    if (o)
        a->o = *o;
    if (a->o.session_ttl_ms <= 0)
        a->o.session_ttl_ms = 12 * 3600 * 1000LL;
    if (a->o.console_idle_ms <= 0)
        a->o.console_idle_ms = API_IDLE_DEFAULT_MS;
    if (ctx_open(&a->inl, a, reg, NULL) < 0) {
        free(a);
        return -1;
    }
    core_eng_init(&a->inl_eng, reg, push, rules);
    a->inl.eng = &a->inl_eng;
    pthread_mutex_init(&a->rules_mu, NULL);
    a->rules = a->inl_eng.rules;
    core_metrics_routes(route_names);
    *out = a;
    return 0;
}

void core_api_free(struct core_api *a)
{
    if (!a)
        return;
    core_eng_free(&a->inl_eng);
    core_auth_close(a->inl.auth);
    pthread_mutex_destroy(&a->rules_mu);
    free(a);
}

/* ---- the service: a loop thread, readers, hashers and the writer ---------------------- */

/*
 * One request on its way through the threads. The loop thread copies what
 * the handler needs (the request's strings live only during the httpd
 * callback), holds the request (httpd_hold) and queues the job; a worker
 * runs the handler into resp; the job comes back on the done list and the
 * loop thread answers it. A login goes to a hasher first, then, with the
 * password's verdict, to the writer.
 */
struct api_job {
    union {
        struct core_pool_job pj;
        struct core_wr_job wj;
    } q;
    struct core_api *a;
    int route;
    char params[HTTPD_PARAMS_MAX][HTTPD_PARAM_LEN];
    struct httpd_req req;
    struct httpd_hold *hold;
    struct httpd_resp resp;
    struct login_state login;
    struct core_api_inv_call inv; /* ON_INV: the call the provider answers */
    bool verified;                /* the login's first half ran */
    bool failed;                  /* the handler hit a registry error: the writer rolls it back */
    bool revoked;                 /* call.revoked */
    int64_t start_ms;
    char user[CORE_USER_MAX]; /* who called, for the request log */
    struct api_job *next_done;
    char buf[]; /* the request's strings */
};

static void job_done(struct api_job *j)
{
    struct core_api *a = j->a;
    pthread_mutex_lock(&a->done_mu);
    j->next_done = a->done_head;
    a->done_head = j;
    pthread_mutex_unlock(&a->done_mu);
    uv_async_send(&a->done);
}

static void inv_done(struct core_api_inv_call *call)
{
    job_done((struct api_job *)((char *)call - offsetof(struct api_job, inv)));
}

/* true when the job went to the invitations' provider, which completes it
 * (from then on the job is not ours to touch); false when it is answered. */
static bool job_call(struct api_job *j, struct api_ctx *x)
{
    struct call c = {.a = j->a, .x = x, .req = &j->req, .r = &j->resp, .p = j->params};
    c.now = now_ms(j->a);
    if (j->route == 0 && j->verified) { /* a login's second half */
        login_finish(&c, &j->login);
        return false;
    }
    int rc = authorize(&c, j->route);
    snprintf(j->user, sizeof(j->user), "%s", c.who.name);
    if (rc < 0)
        return false;
    if (j->route == 0) {
        if (!login_verify(&c, &j->login))
            j->route = -1; /* answered: a bad body */
        j->verified = true;
        return false;
    }
    if (route_fns[j->route].on == ON_INV && inv_provider.submit) {
        j->inv = (struct core_api_inv_call){.op = inv_op(j->req.method),
                                            .id = j->params[0],
                                            .req = &j->req,
                                            .who = c.who,
                                            .resp = &j->resp,
                                            .done = inv_done};
        if (inv_provider.submit(inv_provider.arg, &j->inv) == 0)
            return true;
        inv_busy(&j->resp);
        return false;
    }
    route_fns[j->route].fn(&c);
    j->failed = c.failed;
    j->revoked = c.revoked;
    return false;
}

static void busy(struct httpd_resp *r)
{
    fail(r, 503, "the core is busy; try again in a moment");
    r->retry_after = API_RETRY_AFTER_S;
}

/* On a reader. */
static void read_run(struct core_pool_job *pj, void *ctx)
{
    struct api_job *j = (struct api_job *)pj;
    if (!job_call(j, ctx))
        job_done(j);
}

/* On the writer, in its group. */
static int write_run(struct core_wr_job *wj, struct core_wr_env *env)
{
    struct api_job *j = (struct api_job *)wj;
    struct api_ctx x = {.a = j->a, .reg = env->reg, .auth = env->auth, .eng = env->eng};
    job_call(j, &x);
    return j->failed ? CORE_REG_EDB : 0;
}

static void write_done(struct core_wr_job *wj, int rc)
{
    struct api_job *j = (struct api_job *)wj;
    if (rc < 0 && !j->failed) {
        /* The group did not commit: no one may hear "stored". */
        free(j->resp.body);
        free(j->resp.headers);
        j->resp = (struct httpd_resp){0};
        fail(&j->resp, 503, "the registry could not store this; nothing changed, try again");
        j->resp.retry_after = API_RETRY_AFTER_S;
    }
    if (rc >= 0 && j->revoked)
        revoke_notify();
    job_done(j);
}

/* On a hasher: the password; then the session on the writer. */
static void login_run(struct core_pool_job *pj, void *ctx)
{
    struct api_job *j = (struct api_job *)pj;
    job_call(j, ctx);
    if (j->route < 0 || j->resp.status) { /* answered: a bad body */
        job_done(j);
        return;
    }
    j->q.wj = (struct core_wr_job){.run = write_run, .done = write_done};
    if (core_wr_submit(j->a->wr, &j->q.wj) < 0) {
        busy(&j->resp);
        job_done(j);
    }
}

/* A copy of the request the job owns. NULL when out of memory. */
static struct api_job *job_new(struct core_api *a, const struct httpd_req *req)
{
    enum { NSTR = 8 };
    const char *str[NSTR] = {req->method,       req->path, req->query,  req->authorization,
                             req->content_type, req->peer, req->cookie, req->csrf};
    size_t need = req->body_len + 1;
    for (int k = 0; k < NSTR; k++)
        need += str[k] ? strlen(str[k]) + 1 : 0;
    struct api_job *j = calloc(1, sizeof(*j) + need);
    if (!j)
        return NULL;
    j->a = a;
    char *at = j->buf;
    const char **dst[NSTR] = {&j->req.method,        &j->req.path,         &j->req.query,
                              &j->req.authorization, &j->req.content_type, &j->req.peer,
                              &j->req.cookie,        &j->req.csrf};
    for (int k = 0; k < NSTR; k++) {
        if (!str[k])
            continue;
        size_t l = strlen(str[k]) + 1;
        memcpy(at, str[k], l);
        *dst[k] = at;
        at += l;
    }
    memcpy(at, req->body, req->body_len);
    at[req->body_len] = '\0';
    j->req.body = at;
    j->req.body_len = req->body_len;
    return j;
}

static void on_request(void *arg, const struct httpd_req *req, struct httpd_resp *resp)
{
    struct core_api *a = arg;
    char params[HTTPD_PARAMS_MAX][HTTPD_PARAM_LEN];
    int64_t start = now_ms(a);
    /* The console's files are in the binary: answered here. */
    if (core_ui_serve(req, resp))
        return;
    /* Probes and scrapes read atomics only: answered here, never queued
     * behind a slow list or a busy writer. */
    int i = health(req, resp);
    if (i < 0)
        i = route_of(req, params, resp);
    if (i < 0 || i >= (int)ROUTE_HEALTHZ) {
        account_req(req, resp->status, "", i, start, now_ms(a));
        return; /* answered here: nothing to look up */
    }
    struct api_job *j = job_new(a, req);
    struct httpd_hold *h = j ? httpd_hold(req) : NULL;
    if (!h) {
        free(j);
        fail(resp, 500, "out of memory");
        account_req(req, resp->status, "", i, start, now_ms(a));
        return;
    }
    j->hold = h;
    j->route = i;
    j->start_ms = start;
    memcpy(j->params, params, sizeof(params));
    int rc;
    if (route_fns[i].on == ON_READ || route_fns[i].on == ON_INV) {
        j->q.pj = (struct core_pool_job){.run = read_run};
        rc = core_pool_submit(a->readers, &j->q.pj);
    } else if (route_fns[i].on == ON_LOGIN) {
        j->q.pj = (struct core_pool_job){.run = login_run};
        rc = core_pool_submit(a->hashers, &j->q.pj);
    } else {
        j->q.wj = (struct core_wr_job){.run = write_run, .done = write_done};
        rc = core_wr_submit(a->wr, &j->q.wj);
    }
    a->inflight++;
    if (rc < 0) {
        busy(&j->resp);
        job_done(j);
    }
}

/* The audit rows of the login windows that have ended, taken on the loop
 * thread and written on the writer. The job owns its copies: it may run
 * after the API has stopped. */
#define FLUSH_BATCH 64
struct flush_job {
    struct core_wr_job wj;
    int64_t window_ms;
    size_t n;
    struct backoff_state st[FLUSH_BATCH];
};

static int flush_run(struct core_wr_job *wj, struct core_wr_env *env)
{
    struct flush_job *f = (struct flush_job *)wj;
    for (size_t i = 0; i < f->n; i++)
        pair_row(env->reg, &f->st[i], f->window_ms);
    return 0;
}

static void flush_done(struct core_wr_job *wj, int rc)
{
    (void)rc;
    free(wj);
}

/* Each second: a window's failures are in the log soon after it ends, even
 * when no further login comes to write them. */
static void on_flush(uv_timer_t *t)
{
    struct core_api *a = t->data;
    for (;;) {
        struct flush_job *f = malloc(sizeof(*f));
        if (!f)
            return;
        *f = (struct flush_job){.wj = {.run = flush_run, .done = flush_done},
                                .window_ms = a->login_audit_window_ms};
        f->n = backoff_take_ended(a->login_pairs, now_ms(a), f->st, FLUSH_BATCH);
        if (f->n == 0 || core_wr_submit(a->wr, &f->wj) < 0) {
            /* Nothing to write; or a writer too busy for bookkeeping, and
             * these counts are lost (a full queue is already an overload). */
            free(f);
            return;
        }
    }
}

static void close_handles(struct core_api *a)
{
    uv_close((uv_handle_t *)&a->flush, NULL);
    uv_close((uv_handle_t *)&a->done, NULL);
    uv_close((uv_handle_t *)&a->stop, NULL);
}

/* Answers from the workers, on the loop thread. */
static void on_done(uv_async_t *as)
{
    struct core_api *a = as->data;
    pthread_mutex_lock(&a->done_mu);
    struct api_job *list = a->done_head;
    a->done_head = NULL;
    pthread_mutex_unlock(&a->done_mu);
    while (list) {
        struct api_job *j = list;
        list = j->next_done;
        /* The route as routed (a login's j->route is -1 after a bad body). */
        account_req(&j->req, j->resp.status, j->user, j->route < 0 ? 0 : j->route, j->start_ms,
                    now_ms(a));
        httpd_answer(j->hold, &j->resp);
        free(j);
        a->inflight--;
    }
    if (a->stopping && a->inflight == 0)
        close_handles(a);
}

static void on_stop(uv_async_t *as)
{
    struct core_api *a = as->data;
    httpd_stop(a->httpd);
    a->stopping = true;
    /* Requests still in the workers are answered (to closed connections)
     * before the loop ends: their jobs are freed there. */
    if (a->inflight == 0)
        close_handles(a);
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

/* A token's last use, noted by a reader's check: a small job of its own on
 * the writer (best effort: a refused one waits for the next minute's). */
struct used_job {
    struct core_wr_job wj;
    int64_t token_id, at_ms;
};

static int used_run(struct core_wr_job *wj, struct core_wr_env *env)
{
    struct used_job *u = (struct used_job *)wj;
    core_auth_token_used(env->auth, u->token_id, u->at_ms);
    return 0; /* bookkeeping: never undoes the group's other jobs */
}

static void used_done(struct core_wr_job *wj, int rc)
{
    (void)rc;
    free(wj);
}

static void used_post(void *arg, int64_t token_id, int64_t now_ms)
{
    struct core_api *a = arg;
    struct used_job *u = malloc(sizeof(*u));
    if (!u)
        return;
    *u = (struct used_job){
        .wj = {.run = used_run, .done = used_done}, .token_id = token_id, .at_ms = now_ms};
    if (core_wr_submit(a->wr, &u->wj) < 0)
        free(u);
}

/* A reader's or hasher's own connection, read-only. */
static void *worker_open(void *arg, int idx)
{
    (void)idx;
    struct core_api *a = arg;
    struct api_ctx *x = calloc(1, sizeof(*x));
    struct core_reg *reg = NULL;
    char e[1024];
    if (!x || core_reg_open(a->database, &reg, e, sizeof(e)) < 0) {
        eg_error("core: admin API: %s", x ? e : "out of memory");
        free(x);
        return NULL;
    }
    /* Guard: nothing on these threads may write (the writer owns writes). */
    core_reg_query_only(reg);
    if (ctx_open(x, a, reg, core_wr_auth_cache(a->wr)) < 0) {
        core_reg_close(reg);
        free(x);
        return NULL;
    }
    core_auth_set_used_sink(x->auth, used_post, a);
    return x;
}

static void worker_close(void *ctx)
{
    struct api_ctx *x = ctx;
    core_auth_close(x->auth);
    core_reg_close(x->reg);
    free(x);
}

int core_api_start(struct core_ctx *c, struct core_wr *wr, struct core_api **out, char *err,
                   size_t errlen)
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
    struct core_api *a = calloc(1, sizeof(*a));
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    a->o.session_ttl_ms = cfg->session_ttl_ms > 0 ? cfg->session_ttl_ms : 12 * 3600 * 1000LL;
    a->o.console_idle_ms = cfg->console_idle_ms > 0 ? cfg->console_idle_ms : API_IDLE_DEFAULT_MS;
    a->redis = c->conf->redis.enabled ? &c->conf->redis : NULL;
    a->database = cfg->database;
    a->wr = wr;
    core_metrics_routes(route_names);
    pthread_mutex_init(&a->done_mu, NULL);
    pthread_mutex_init(&a->rules_mu, NULL);
    a->rules = c->rules;
    if (cfg->tls.cert) {
        struct tls_server_opts to = {.cert = cfg->tls.cert, .key = cfg->tls.key};
        char e[512];
        if (tls_ctx_server(&to, &a->tls, e, sizeof(e)) < 0) {
            snprintf(err, errlen, "core.tls: %s", e);
            goto fail;
        }
    }
    struct backoff_cfg bc = {.free = cfg->login_free_failures,
                             .window_ms = cfg->login_window_ms,
                             .base_ms = cfg->login_backoff_ms,
                             .max_ms = cfg->login_backoff_max_ms,
                             .max_keys = API_LOGIN_KEYS};
    struct backoff_cfg pc = {
        .free = INT_MAX, .window_ms = cfg->login_audit_window_ms, .max_keys = API_LOGIN_KEYS};
    a->login_audit_window_ms = cfg->login_audit_window_ms;
    if (!(a->by_account = backoff_new(&bc)) || !(a->by_address = backoff_new(&bc)) ||
        !(a->login_pairs = backoff_new(&pc))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    /* Readers run at a lower priority than the loop and the writer: on
     * CPUs shared with them, a viewer repeating a heavy listing takes the
     * CPU time check-ins leave, not the time check-ins need (docs/core.md,
     * "Scale"). Hashers keep the core's: a login starved by check-ins
     * would time out, and failed logins are already held back by the
     * back-off. */
    if (core_pool_start((int)cfg->api_threads, API_READ_QUEUE, API_POOL_NICE, worker_open,
                        worker_close, a, &a->readers) < 0 ||
        core_pool_start((int)cfg->login_threads, API_LOGIN_QUEUE, 0, worker_open, worker_close, a,
                        &a->hashers) < 0) {
        snprintf(err, errlen, "admin API: cannot start its threads (registry not readable?)");
        goto fail;
    }
    uv_loop_init(&a->loop);
    struct httpd_opts ho = {.tls = a->tls,
                            .max_body = (size_t)cfg->api_max_body,
                            .keepalive = 1,
                            .max_per_client = cfg->api_max_conns_per_client,
                            .head_ms = cfg->api_head_timeout_ms};
    int r = httpd_serve(&a->loop, (const struct sockaddr *)&cfg->listen.sa, &ho, on_request, a,
                        &a->httpd);
    if (r < 0) {
        snprintf(err, errlen, "core.listen %s: %s", cfg->listen.text, uv_strerror(r));
        uv_run(&a->loop, UV_RUN_DEFAULT);
        uv_loop_close(&a->loop);
        goto fail;
    }
    uv_async_init(&a->loop, &a->stop, on_stop);
    a->stop.data = a;
    uv_async_init(&a->loop, &a->done, on_done);
    a->done.data = a;
    uv_timer_init(&a->loop, &a->flush);
    a->flush.data = a;
    uv_timer_start(&a->flush, on_flush, API_FLUSH_MS, API_FLUSH_MS);
    if (pthread_create(&a->thread, NULL, api_main, a) != 0) {
        snprintf(err, errlen, "admin API: cannot start its thread");
        on_stop(&a->stop);
        uv_run(&a->loop, UV_RUN_DEFAULT);
        uv_loop_close(&a->loop);
        goto fail;
    }
    eg_info("core: admin API on %s://%s/api/v1 (%d readers, %d login threads, one writer)",
            a->tls ? "https" : "http", cfg->listen.text, cfg->api_threads, cfg->login_threads);
    *out = a;
    return 0;
fail:
    core_pool_stop(a->readers);
    core_pool_stop(a->hashers);
    backoff_free(a->by_account);
    backoff_free(a->by_address);
    backoff_free(a->login_pairs);
    tls_ctx_free(a->tls);
    pthread_mutex_destroy(&a->done_mu);
    pthread_mutex_destroy(&a->rules_mu);
    free(a);
    return -1;
}

void core_api_stop(struct core_api *a)
{
    if (!a)
        return;
    uv_async_send(&a->stop);
    pthread_join(a->thread, NULL);
    uv_loop_close(&a->loop);
    core_pool_stop(a->readers);
    core_pool_stop(a->hashers);
    backoff_free(a->by_account);
    backoff_free(a->by_address);
    backoff_free(a->login_pairs);
    tls_ctx_free(a->tls);
    pthread_mutex_destroy(&a->done_mu);
    pthread_mutex_destroy(&a->rules_mu);
    free(a);
}
