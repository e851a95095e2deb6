/*
 * decide: identity, state, policy, server role, verdict. The identity struct
 * is large (every string inline), so it lives on the heap only from the head
 * to the decision; what the access log needs is kept as a compact JSON
 * fragment.
 */
#include "proxy/decide.h"

#include "common/jwks.h"
#include "common/log.h"
#include "connectors/rstore.h"
#include "eas/wbxml.h"
#include "proxy/accesslog.h"
#include "proxy/certbind.h"
#include "proxy/head.h"
#include "proxy/snap.h"
#include "proxy/srv.h"

#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

void verdict_free(struct verdict *v)
{
    free(v->owned);
    v->owned = NULL;
}

/* ---- verdicts ---- */

static void verdict_init(struct verdict *v, enum verdict_kind kind)
{
    memset(v, 0, sizeof(*v) - sizeof(v->a));
    v->kind = kind;
}

static void forward(struct verdict *v, enum m_decision m, const char *decision, const char *reason)
{
    verdict_init(v, VERDICT_FORWARD);
    v->mdec = m;
    v->decision = decision;
    v->reason = reason;
}

/* A plain-text answer of the proxy's own (403, 405, 503). */
static void answer_text(struct verdict *v, int status, const char *extra, const char *body,
                        enum m_decision m, const char *decision, const char *reason)
{
    verdict_init(v, VERDICT_ANSWER);
    v->status = status;
    v->content_type = "text/plain";
    v->extra = extra;
    v->body = body;
    v->len = strlen(body);
    v->mdec = m;
    v->decision = decision;
    v->reason = reason;
}

/* The answer for a situation, in the form the client's version expects. */
static void answer_sit(const struct decide_req *d, struct verdict *v, enum easr_situation sit,
                       enum m_decision m, const char *decision, const char *reason)
{
    verdict_init(v, VERDICT_ANSWER);
    enum easq_cmd cmd =
        d->cmd >= 0 && d->cmd < EASQ_CMD_COUNT ? (enum easq_cmd)d->cmd : EASQ_CMD_UNKNOWN;
    answer_eas(cmd, d->version, sit, &v->a);
    v->status = v->a.http_status;
    v->content_type = v->a.content_type;
    v->body = v->a.body;
    v->len = v->a.len;
    v->mdec = m;
    v->decision = decision;
    v->reason = reason;
}

/* A wipe answered to a Provision that can carry it: RemoteWipe in the
 * Provision answer itself. 0, or -1 when it does not apply. */
static int answer_provision_wipe(const struct decide_req *d, struct verdict *v, const char *reason)
{
    if (d->cmd != EASQ_CMD_PROVISION || !easr_version_uses_status(d->version))
        return -1;
    verdict_init(v, VERDICT_ANSWER);
    struct wbxml_w w;
    const uint8_t *out;
    size_t len;
    wbxml_w_init(&w, v->a.buf, sizeof(v->a.buf));
    easr_provision_wipe(&w, d->version, false);
    if (wbxml_w_finish(&w, &out, &len) < 0)
        return -1;
    v->status = 200;
    v->content_type = ANSWER_WBXML_TYPE;
    v->body = out;
    v->len = len;
    v->mdec = M_WIPE;
    v->decision = pol_action_name(POL_WIPE);
    v->reason = reason;
    return 0;
}

static void set_logid(struct decide_req *d, const char *user, const char *cred, const char *devid,
                      const char *type, const char *ua, size_t ua_len)
{
    if (!accesslog_enabled())
        return; /* only the access log reads it */
    free(d->logid);
    d->logid = accesslog_identity(user, cred, devid, type, ua, ua_len);
}

static uint64_t long_poll_ms(const struct conf_proxy *p, long heartbeat_s)
{
    int64_t max = p->limits.max_heartbeat_ms > 0 ? p->limits.max_heartbeat_ms : 3540000;
    int64_t hb = heartbeat_s > 0 ? (int64_t)heartbeat_s * 1000 : max;
    if (hb > max)
        hb = max;
    return (uint64_t)(hb + p->timeouts.long_poll_margin_ms);
}

/* ---- what the proxy reports to the core ---- */

/* Sightings are facts a request claims about its device. Only Exchange
 * authenticates the user, so they wait for its 2xx: they are copied here
 * at the decision and sent (or dropped) when its answer comes. */
#define SIGHT_MAX 4
#define SIGHT_NSTR 16
struct decide_sight {
    size_t n;
    struct rstore_sight s[SIGHT_MAX];
    char text[]; /* the strings the entries point to */
};

static void sight_strs(struct rstore_sight *s, const char **f[SIGHT_NSTR])
{
    const char **all[SIGHT_NSTR] = {
        &s->device_id,        &s->user,        &s->device_type, &s->user_agent,
        &s->protocol_version, &s->client_addr, &s->model,       &s->imei,
        &s->friendly_name,    &s->os,          &s->os_language, &s->phone_number,
        &s->mobile_operator,  &s->status,      &s->enrollment,  &s->bound,
    };
    memcpy(f, all, sizeof(all));
}

/* A copy of v[0..n) that owns its strings; NULL without memory. */
static struct decide_sight *sight_keep(const struct rstore_sight *v, size_t n)
{
    const char **f[SIGHT_NSTR];
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        struct rstore_sight s = v[i];
        sight_strs(&s, f);
        for (size_t k = 0; k < SIGHT_NSTR; k++)
            len += *f[k] ? strlen(*f[k]) + 1 : 0;
    }
    struct decide_sight *ds = malloc(sizeof(*ds) + len);
    if (!ds)
        return NULL;
    ds->n = n;
    char *at = ds->text;
    for (size_t i = 0; i < n; i++) {
        ds->s[i] = v[i];
        sight_strs(&ds->s[i], f);
        for (size_t k = 0; k < SIGHT_NSTR; k++) {
            if (!*f[k])
                continue;
            size_t l = strlen(*f[k]) + 1;
            memcpy(at, *f[k], l);
            *f[k] = at;
            at += l;
        }
    }
    return ds;
}

void decide_report_answered(struct decide_req *d, struct rstore *rs, int status)
{
    struct decide_sight *ds = d->sight;
    d->sight = NULL;
    if (!ds)
        return;
    for (size_t i = 0; rs && status >= 200 && status < 300 && i < ds->n; i++) {
        ds->s[i].auth = RSTORE_AUTH_EXCHANGE;
        rstore_sight(rs, &ds->s[i]);
    }
    free(ds);
}

void decide_report_drop(struct decide_req *d)
{
    free(d->sight);
    d->sight = NULL;
}

/* The request's sightings into v (SIGHT_MAX room); their strings point
 * into id, f, in and the buffers given. Returns how many. */
static size_t sightings_of(const struct decide_in *in, const struct rstore_result *res,
                           const struct easq_ident *id, const struct wbxml_facts *f,
                           const char *bind, char *user, size_t ucap, char *ver, size_t vcap,
                           char *st, size_t scap, struct rstore_sight *v)
{
    size_t n = 0;
    if (!in->rs || !id->device_id[0])
        return 0;
    easq_user_full(id, user, ucap);
    snprintf(ver, vcap, "%d.%d", id->version / 10, id->version % 10);
    struct rstore_sight s = {
        .kind = RSTORE_SIGHT_UNKNOWN,
        .device_id = id->device_id,
        .user = user,
        .device_type = id->device_type,
        .user_agent = id->user_agent,
        .protocol_version = id->version ? ver : NULL,
        .client_addr = in->client,
    };
    if (res && res->status == RSTORE_NOT_FOUND)
        v[n++] = s;
    if (res && res->status == RSTORE_FOUND) {
        /* A known device's contact: last seen, protocol version, user agent
         * and address, once a minute at most (rstore_sight.c). */
        struct rstore_sight seen = s;
        seen.kind = RSTORE_SIGHT_SEEN;
        v[n++] = seen;
    }
    if (f && f->has_devinfo) {
        s.kind = RSTORE_SIGHT_DEVINFO;
        s.model = f->devinfo[WBXML_DI_MODEL];
        s.imei = f->devinfo[WBXML_DI_IMEI];
        s.friendly_name = f->devinfo[WBXML_DI_FRIENDLYNAME];
        s.os = f->devinfo[WBXML_DI_OS];
        s.os_language = f->devinfo[WBXML_DI_OSLANGUAGE];
        s.phone_number = f->devinfo[WBXML_DI_PHONENUMBER];
        s.mobile_operator = f->devinfo[WBXML_DI_MOBILEOPERATOR];
        v[n++] = s;
    }
    if (f && id->cmd == EASQ_CMD_PROVISION &&
        ((f->remote_wipe && f->remote_wipe_status >= 0) ||
         (f->account_only_remote_wipe && f->account_only_remote_wipe_status >= 0))) {
        snprintf(st, scap, "%d",
                 f->remote_wipe_status >= 0 ? f->remote_wipe_status
                                            : f->account_only_remote_wipe_status);
        struct rstore_sight w = s;
        w.kind = RSTORE_SIGHT_WIPE_ACK;
        w.status = st;
        v[n++] = w;
    }
    if (bind && bind[0]) {
        /* The first use of a portal certificate: the core binds on the 2xx. */
        struct rstore_sight b = s;
        b.kind = RSTORE_SIGHT_CERT_BIND;
        b.enrollment = bind;
        v[n++] = b;
    }
    return n;
}

/* The decision is v. A forwarded request keeps its sightings for
 * Exchange's answer: sent with auth "exchange" after a 2xx, dropped after
 * a refusal. One the proxy answers itself (blocked, quarantined, the
 * server role's Provision) reports them now without auth: the core keeps
 * such devices apart from the registry, in its bounded table of devices
 * seen but never accepted, where an admin can still approve one. */
static void report_sightings(struct decide_req *d, const struct decide_in *in,
                             const struct rstore_result *res, const struct verdict *v)
{
    if (v->kind != VERDICT_FORWARD && v->kind != VERDICT_ANSWER)
        return;
    struct rstore_sight list[SIGHT_MAX];
    char user[2 * EASQ_STR_MAX + 2] = "", ver[32], st[16];
    size_t n = sightings_of(in, res, d->ident, d->facts, d->enr_bind ? d->enr_id : NULL, user,
                            sizeof(user), ver, sizeof(ver), st, sizeof(st), list);
    if (!n)
        return;
    if (v->kind == VERDICT_FORWARD) {
        decide_report_drop(d);
        d->sight = sight_keep(list, n);
        return;
    }
    for (size_t i = 0; i < n; i++)
        rstore_sight(in->rs, &list[i]);
}

/*
 * Tell the core which final key the device now holds ("provisioned"
 * sighting, never rate-limited): it records the key and when in the
 * registry and writes it into the device hash, so an admin can see it.
 * Best effort, like every sighting: Redis down means no record, not a
 * failed Provision.
 */
static void report_provisioned(const struct decide_in *in, const struct easq_ident *id,
                               uint32_t key, uint32_t fingerprint, uint64_t epoch)
{
    struct rstore *rs = in->rs;
    if (!rs || !id->device_id[0])
        return;
    char user[2 * EASQ_STR_MAX + 2] = "", ver[16] = "", ks[16], fp[16], ep[24];
    easq_user_full(id, user, sizeof(user));
    if (id->version)
        snprintf(ver, sizeof(ver), "%d.%d", id->version / 10, id->version % 10);
    snprintf(ks, sizeof(ks), "%lu", (unsigned long)key);
    snprintf(fp, sizeof(fp), "%08lx", (unsigned long)fingerprint);
    snprintf(ep, sizeof(ep), "%llu", (unsigned long long)epoch);
    const char *kv[][2] = {
        {"policy_key", ks},
        {"fingerprint", fp},
        {"pk_epoch", ep},
        {"protocol_version", ver},
        {"user", user},
        {"device_type", id->device_type},
        {"user_agent", id->user_agent},
        {"client_addr", in->client},
    };
    const char *fields[2 * (sizeof(kv) / sizeof(kv[0]))];
    size_t n = 0;
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
        if (kv[i][1][0]) {
            fields[n++] = kv[i][0];
            fields[n++] = kv[i][1];
        }
    rstore_sighting(rs, RSTORE_SIGHT_PROVISIONED, id->device_id, strlen(id->device_id), fields, n);
}

/* ---- the server role (srv.h) ---- */

static enum m_decision mdec_for(const struct pol_decision *pd)
{
    switch (pd->action) {
    case POL_WIPE:
        return M_WIPE;
    case POL_QUARANTINE:
        return M_QUARANTINE;
    case POL_BLOCK:
        return M_BLOCK;
    default:
        return M_ALLOW;
    }
}

/* The notice's language for a quarantined device: Accept-Language, else
 * the locale the query gave; "" when neither. */
static void notice_lang(const struct decide_in *in, const struct easq_ident *id, char *lang,
                        size_t cap)
{
    size_t all = 0;
    const char *al = head_get(in->head, "Accept-Language", &all);
    lang[0] = '\0';
    if (al && all) {
        size_t n = all < cap - 1 ? all : cap - 1;
        memcpy(lang, al, n);
        lang[n] = '\0';
    } else if (id->has_locale && prov_lcid_lang(id->locale)) {
        snprintf(lang, cap, "%s", prov_lcid_lang(id->locale));
    }
}

/* What the server role needs of the request. */
static void srv_request_of(const struct decide_req *d, const struct decide_in *in,
                           const struct pol_decision *pd, const struct rstore_result *res,
                           char *lang, size_t lang_cap, struct srv_request *rq)
{
    const struct easq_ident *id = d->ident;
    size_t pkl = 0;
    const char *pkh = id->has_policy_key ? NULL : head_get(in->head, "X-MS-PolicyKey", &pkl);
    /* The language matters only for the quarantine notice. */
    lang[0] = '\0';
    if (pd->action == POL_QUARANTINE)
        notice_lang(in, id, lang, lang_cap);
    bool found = res && res->status == RSTORE_FOUND;
    *rq = (struct srv_request){
        .cmd = id->cmd,
        .version = id->version,
        .device_id = d->devid_norm,
        .has_policy_key = id->has_policy_key,
        .policy_key = id->policy_key,
        .policy_key_bad = pkh && pkl && !id->has_policy_key,
        .lang = lang[0] ? lang : NULL,
        .wipe_account_only = found && res->wipe_account_only,
        .pk_epoch = found ? res->pk_epoch : 0,
        .body = in->body_read ? (const uint8_t *)in->body : NULL,
        .body_len = in->body_read ? in->body_len : 0,
        /* a request without a body counts as read (an empty Sync) */
        .body_read = in->body_read || !in->has_body,
        .facts = d->facts,
        .now_ms = (int64_t)time(NULL) * 1000,
    };
}

/* The server role's word after pol_decide: 1 with the verdict in v (an
 * answer of its own, or read the body first), 0 when the usual decision
 * goes on (*strip: X-MS-PolicyKey stays with the proxy). */
static int server_role(const struct decide_req *d, const struct decide_in *in,
                       const struct pol_decision *pd, const struct rstore_result *res, bool *strip,
                       struct verdict *v)
{
    const struct pol_policy *pol = in->snap->pol;
    if (!pol)
        return 0;
    char lang[64];
    struct srv_request rq;
    srv_request_of(d, in, pd, res, lang, sizeof(lang), &rq);
    struct srv_answer a;
    switch (srv_decide(&pol->provisioning, pd, &rq, &a)) {
    case SRV_PASS:
        *strip = a.strip_policy_key;
        return 0;
    case SRV_NEED_BODY:
        verdict_init(v, VERDICT_READ_BODY);
        return 1;
    case SRV_FORWARD:
        forward(v, mdec_for(pd), a.decision, a.reason);
        return 1;
    case SRV_ANSWER:
        break;
    }
    if (a.log[0]) {
        if (a.log_warn)
            eg_warn("%s", a.log);
        else
            eg_info("%s", a.log);
    }
    if (a.provisioned_key)
        report_provisioned(in, d->ident, a.provisioned_key, pol->provisioning.fingerprint,
                           rq.pk_epoch);
    verdict_init(v, VERDICT_ANSWER);
    v->status = a.http_status;
    v->content_type = a.content_type;
    v->body = a.body;
    v->len = a.len;
    v->owned = a.body; /* srv_answer_free's job, done by verdict_free */
    v->mdec = mdec_for(pd);
    v->decision = a.decision ? a.decision : pol_action_name(pd->action);
    v->reason = a.reason ? a.reason : pd->reason;
    return 1;
}

/* ---- the decision ---- */

static void devstate_from(const struct rstore_result *res, struct pol_devstate *st)
{
    static const enum pol_devstate_kind kinds[] = {POL_DEV_ALLOW, POL_DEV_BLOCK, POL_DEV_QUARANTINE,
                                                   POL_DEV_WIPE};
    memset(st, 0, sizeof(*st));
    st->state = POL_DEV_UNKNOWN;
    st->stale = res->stale;
    if (res->status == RSTORE_FOUND) {
        st->state = kinds[res->state];
        st->user = res->user;
        st->reason = res->reason;
        st->source = pol_devstate_source(res->reason);
    }
}

/* What pol_decide reads of the request. */
static void pol_request_of(const struct decide_req *d, struct pol_request *out)
{
    const struct easq_ident *id = d->ident;
    const struct wbxml_facts *facts = d->facts;
    *out = (struct pol_request){
        .ident = (enum pol_ident)d->trust,
        .cert_user = d->cert_user,
        .user = id->user[0] ? id->user : NULL,
        .domain = id->domain[0] ? id->domain : NULL,
        .device_id = id->device_id[0] ? id->device_id : NULL,
        .device_type = id->device_type[0] ? id->device_type : NULL,
        .device_model =
            facts && facts->devinfo[WBXML_DI_MODEL][0] ? facts->devinfo[WBXML_DI_MODEL] : NULL,
        .device_os = facts && facts->devinfo[WBXML_DI_OS][0] ? facts->devinfo[WBXML_DI_OS] : NULL,
        .user_agent = id->user_agent[0] ? id->user_agent : NULL,
        .command = (int)id->cmd,
        .proto_version = id->version,
    };
}

static void policy_decide(const struct decide_req *d, const struct decide_in *in,
                          const struct rstore_result *res, struct pol_decision *pd)
{
    struct pol_request pr;
    pol_request_of(d, &pr);
    struct pol_devstate st;
    if (res)
        devstate_from(res, &st);
    pol_decide(in->snap->pol, &pr, res ? &st : NULL, in->now_ms, pd);
}

void decide_explain(FILE *f, const struct decide_req *d, const struct decide_in *in,
                    const struct rstore_result *res)
{
    struct pol_request pr;
    pol_request_of(d, &pr);
    struct pol_devstate st;
    if (res)
        devstate_from(res, &st);
    pol_explain(f, in->snap->pol, &pr, res ? &st : NULL, in->now_ms);
}

static void decide_by_policy(struct decide_req *d, const struct decide_in *in,
                             const struct rstore_result *res, const struct pol_decision *pd,
                             struct verdict *v);

void decide_enr_state(struct decide_req *d, const struct rstore_result *res)
{
    d->enr_looked = res && res->status != RSTORE_UNAVAILABLE;
    snprintf(d->enr_bound, sizeof(d->enr_bound), "%s",
             d->enr_looked && res->status == RSTORE_FOUND && res->bound ? res->bound : "");
}

/*
 * Binding on first use (docs/enrollment.md section 7). A device bound to a
 * portal certificate works with that certificate only; a portal
 * certificate bound to a device works with that device only; one not yet
 * bound is let through (the policy still decides) and its first request
 * Exchange accepts binds it (a cert-bind sighting). true when the request
 * was refused (v filled): cert-mismatch, reported to the core for the
 * audit log, or the binding could not be read (Redis away: fail closed).
 */
static bool portal_binding(struct decide_req *d, const struct decide_in *in,
                           const struct rstore_result *res, struct verdict *v)
{
    const char *dev_bound = res && res->status == RSTORE_FOUND && res->bound ? res->bound : "";
    const char *why, *other = "";
    if (dev_bound[0]) {
        if (strcmp(dev_bound, d->enr_id) == 0)
            return false;
        why = d->enr_id[0] ? "the device is bound to another portal certificate"
                           : "the device is bound to a portal certificate and none was presented";
    } else if (!d->enr_id[0]) {
        return false;
    } else if (!d->enr_looked) {
        eg_info("instance %s: %s blocked: the binding of enrollment %s could not be read",
                in->instance, in->client, d->enr_id);
        answer_sit(d, v, EASR_SIT_BLOCKED, M_BLOCK, "block", "cert-binding-unavailable");
        return true;
    } else if (d->enr_bound[0] && strcmp(d->enr_bound, d->devid_norm) != 0) {
        why = "the portal certificate is bound to another device";
        other = d->enr_bound;
    } else {
        d->enr_bind = !d->enr_bound[0];
        return false;
    }
    eg_info("instance %s: %s blocked: device %s, enrollment %s: %s%s%s", in->instance, in->client,
            d->devid_norm, d->enr_id[0] ? d->enr_id : "-", why, other[0] ? " " : "", other);
    if (in->rs && d->ident) {
        char user[2 * EASQ_STR_MAX + 2] = "";
        easq_user_full(d->ident, user, sizeof(user));
        struct rstore_sight s = {.kind = RSTORE_SIGHT_CERT_MISMATCH,
                                 .device_id = d->ident->device_id,
                                 .user = user,
                                 .client_addr = in->client,
                                 .enrollment = d->enr_id,
                                 .bound = other};
        rstore_sight(in->rs, &s);
    }
    answer_sit(d, v, EASR_SIT_BLOCKED, M_BLOCK, "block", "cert-mismatch");
    return true;
}

void decide_eas_state(struct decide_req *d, const struct decide_in *in,
                      const struct rstore_result *res, struct verdict *v)
{
    if (portal_binding(d, in, res, v)) {
        report_sightings(d, in, res, v);
        return;
    }
    struct pol_decision pd;
    policy_decide(d, in, res, &pd);
    decide_by_policy(d, in, res, &pd, v);
    report_sightings(d, in, res, v);
}

static void decide_by_policy(struct decide_req *d, const struct decide_in *in,
                             const struct rstore_result *res, const struct pol_decision *ppd,
                             struct verdict *v)
{
    struct pol_decision pd = *ppd;
    bool strip = false;
    if (server_role(d, in, &pd, res, &strip, v))
        return;
    const char *decision = pol_action_name(pd.action);
    switch (pd.action) {
    case POL_ALLOW:
        forward(v, M_ALLOW, decision, pd.reason);
        v->strip_policy_key = strip;
        return;
    case POL_BLOCK:
        answer_sit(d, v, EASR_SIT_BLOCKED, M_BLOCK, decision, pd.reason);
        return;
    case POL_QUARANTINE:
        /* Like a block for the phone: it gets no mail and no error storm. */
        answer_sit(d, v, EASR_SIT_BLOCKED, M_QUARANTINE, decision, pd.reason);
        return;
    case POL_WIPE:
        if (answer_provision_wipe(d, v, pd.reason) < 0)
            answer_sit(d, v, EASR_SIT_REMOTE_WIPE, M_WIPE, decision, pd.reason);
        return;
    }
}

bool decide_body_is_wbxml(const struct decide_req *d, const struct head *h)
{
    switch (d->cmd) {
    case EASQ_CMD_SENDMAIL:
    case EASQ_CMD_SMARTREPLY:
    case EASQ_CMD_SMARTFORWARD: {
        /* MIME before 14.0 (message/rfc822), WBXML from 14.0 on */
        size_t l = 0;
        const char *ct = head_get(h, "Content-Type", &l);
        return ct && l >= 24 && strncasecmp(ct, "application/vnd.ms-sync", 23) == 0;
    }
    case EASQ_CMD_UNKNOWN:
    case EASQ_CMD_OPTIONS:
    case EASQ_CMD_GETATTACHMENT:
        return false;
    default:
        return d->cmd >= 0 && d->cmd < EASQ_CMD_COUNT;
    }
}

/* facts: owned by the request from here (may be NULL). */
static void decide_now(struct decide_req *d, const struct decide_in *in, struct wbxml_facts *facts,
                       struct verdict *v)
{
    d->facts = facts;
    if (d->cmd == EASQ_CMD_PING || d->cmd == EASQ_CMD_SYNC)
        d->wait_ms = long_poll_ms(&in->snap->conf->proxy, facts ? facts->heartbeat : -1);
    verdict_init(v, VERDICT_LOOKUP);
}

/* OPTIONS names no device: only the user-agent lists apply. */
static void decide_options(struct decide_req *d, const struct decide_in *in, struct verdict *v)
{
    size_t ual = 0;
    const char *ua = head_get(in->head, "User-Agent", &ual);
    char uab[EASQ_STR_MAX + 1];
    if (ual > EASQ_STR_MAX)
        ual = EASQ_STR_MAX;
    memcpy(uab, ua ? ua : "", ua ? ual : 0);
    uab[ua ? ual : 0] = '\0';
    d->cmd = EASQ_CMD_OPTIONS;
    set_logid(d, "", "none", "", "", uab, strlen(uab));
    struct pol_decision pd;
    pol_decide_options(in->snap->pol, uab, &pd);
    const char *decision = pol_action_name(pd.action);
    if (pd.action != POL_ALLOW) {
        answer_text(v, 403, NULL, "forbidden\n", M_BLOCK, decision, pd.reason);
        return;
    }
    forward(v, M_ALLOW, decision, pd.reason);
}

/* A Bearer token: believed when its signature and claims check out against
 * identity.bearer.jwks (*checked set), or when the operator opted into
 * trust_unverified; otherwise the request cannot be vouched for. */
static enum pol_ident bearer_trust(const struct decide_in *in, bool *checked)
{
    const struct pol_policy *pol = in->snap->pol;
    *checked = false;
    if (!pol || !in->snap->jwks)
        return pol && pol->identity.bearer.trust_unverified ? POL_ID_VERIFIED : POL_ID_UNVERIFIABLE;
    size_t vl = 0;
    const char *v = head_get(in->head, "Authorization", &vl);
    const char *sp = v ? memchr(v, ' ', vl) : NULL;
    if (!sp)
        return POL_ID_UNVERIFIABLE;
    const char *tok = sp + 1;
    size_t tl = vl - (size_t)(tok - v);
    while (tl && *tok == ' ')
        tok++, tl--;
    while (tl && tok[tl - 1] == ' ')
        tl--;
    struct jwks_check chk = {
        .issuer = pol->identity.bearer.issuer,
        .audience = pol->identity.bearer.audience,
        .now_s = (int64_t)time(NULL),
        .leeway_s = pol->identity.bearer.leeway_ms / 1000,
    };
    int rc = jwks_verify(in->snap->jwks, tok, tl, &chk);
    if (rc < 0) {
        eg_info("instance %s: %s: Bearer token not accepted: %s", in->instance, in->client,
                jwks_strerror(rc));
        return POL_ID_UNVERIFIABLE;
    }
    *checked = true;
    return POL_ID_VERIFIED;
}

/* How far the request's user can be believed (pol.h step 3b), and the
 * access log's name for where it came from. */
static enum pol_ident trust_of(const struct decide_in *in, const struct easq_ident *id,
                               const char **cred)
{
    bool checked;
    *cred = easq_cred_name(id->cred);
    switch (id->cred) {
    case EASQ_CRED_NONE:
        if (id->user_src == EASQ_USER_CONN) {
            *cred = "connection";
            return POL_ID_VERIFIED;
        }
        return POL_ID_NONE;
    case EASQ_CRED_BASIC:
    case EASQ_CRED_NTLM:
        return POL_ID_VERIFIED;
    case EASQ_CRED_NTLM_HANDSHAKE:
        return POL_ID_HANDSHAKE;
    case EASQ_CRED_BEARER: {
        enum pol_ident t = bearer_trust(in, &checked);
        *cred = checked ? "bearer" : "bearer-unverified";
        return t;
    }
    case EASQ_CRED_UNREADABLE:
    default:
        return POL_ID_UNVERIFIABLE;
    }
}

/* The identity from the target, the headers and the connection's NTLM
 * user: 0, or an easq error. */
static int identify(struct decide_req *d, const struct decide_in *in)
{
    const struct head *h = in->head;
    struct easq_ident *id = d->ident;
    easq_init(id);
    int rc = easq_parse_target(id, h->data + h->url_off, h->url_len);
    for (uint32_t i = 0; i < h->n; i++) {
        int e = easq_parse_header(id, h->data + h->h[i].n_off, h->h[i].n_len,
                                  h->data + h->h[i].v_off, h->h[i].v_len);
        if (e < 0)
            eg_debug("ActiveSync header %.*s: %s", (int)h->h[i].n_len, h->data + h->h[i].n_off,
                     easq_strerror(e));
    }
    if (in->conn_user && in->conn_user[0])
        easq_set_conn_user(id, in->conn_user);
    if (rc == 0)
        rc = easq_finish(id);
    d->cmd = id->cmd;
    d->version = id->version;
    d->cred = (uint8_t)id->cred;
    const char *cred;
    d->trust = (uint8_t)trust_of(in, id, &cred);
    char user[2 * EASQ_STR_MAX + 2] = "";
    easq_user_full(id, user, sizeof(user));
    if (id->cred == EASQ_CRED_NTLM) {
        d->ntlm_auth = true;
        free(d->ntlm_user);
        d->ntlm_user = strdup(user);
    }
    set_logid(d, user, cred, id->device_id, id->device_type, id->user_agent,
              strlen(id->user_agent));
    if (rc == 0 && easq_deviceid_norm(id->device_id, strlen(id->device_id), d->devid_norm,
                                      sizeof(d->devid_norm)) < 0)
        d->devid_norm[0] = '\0';
    return rc;
}

/* A verified client certificate must be this device's and this user's
 * (proxy/certbind.h). When the request names no user the proxy can believe
 * (a credential it cannot read, a NEGOTIATE leg) only the device half
 * applies, and the certificate's user is kept for allow_cert_bound. 0, or
 * -1 when the certificate does not belong to the request. */
static int cert_binding(struct decide_req *d, const struct decide_in *in)
{
    int b;
    int enr = certbind_enrollment(in->cert, d->enr_id);
    if (enr != 0) {
        /* A portal certificate: the user half here, the device half once
         * the state store has said what it is bound to (decide_eas_state). */
        bool unverifiable = d->trust == POL_ID_UNVERIFIABLE || d->trust == POL_ID_HANDSHAKE;
        char cn[CERTBIND_CN_MAX];
        b = enr < 0 ? CERTBIND_NO_DEVICE
                    : certbind_user(in->cert, unverifiable ? NULL : d->ident->user,
                                    d->ident->domain, cn, sizeof(cn));
        if (b == CERTBIND_OK && d->trust == POL_ID_UNVERIFIABLE) {
            free(d->cert_user);
            d->cert_user = strdup(cn);
        }
    } else if (d->trust == POL_ID_UNVERIFIABLE || d->trust == POL_ID_HANDSHAKE) {
        char cn[CERTBIND_CN_MAX];
        b = certbind_device_user(in->cert, d->devid_norm, cn, sizeof(cn));
        if (b == CERTBIND_OK && d->trust == POL_ID_UNVERIFIABLE) {
            free(d->cert_user);
            d->cert_user = strdup(cn);
        }
    } else {
        b = certbind_check(in->cert, d->devid_norm, d->ident->user, d->ident->domain);
    }
    if (b == CERTBIND_OK)
        return 0;
    eg_info("instance %s: %s blocked: %s (%s)", in->instance, in->client, certbind_strerror(b),
            in->cert_id ? in->cert_id : "");
    return -1;
}

void decide_eas_head(struct decide_req *d, const struct decide_in *in, struct verdict *v)
{
    if (in->method == HTTP_OPTIONS) {
        decide_options(d, in, v);
        return;
    }
    if (in->method != HTTP_POST) {
        answer_text(v, 405, "Allow: OPTIONS, POST\r\n", "method not allowed\n", M_DENIED, NULL,
                    "method");
        return;
    }
    if (!d->ident) {
        answer_text(v, 503, "Retry-After: 5\r\n", "busy\n", M_LIMIT, NULL, NULL);
        return;
    }
    int rc = identify(d, in);
    if (d->ident->auth_err) {
        /* Two Authorization headers, or one Exchange would read otherwise
         * than the proxy (non-canonical Basic, a malformed NTLM message):
         * which user would Exchange authenticate? Nobody is bound. */
        answer_text(v, 400, NULL, "bad Authorization header\n", M_INVALID, "invalid",
                    "authorization-invalid");
        return;
    }
    if (rc < 0) {
        answer_sit(d, v, EASR_SIT_BAD_DEVICE_ID, M_INVALID, "invalid", easq_strerror(rc));
        return;
    }
    /* Without a verified client certificate the TLS layer already decided. */
    if (in->cert && cert_binding(d, in) < 0) {
        answer_sit(d, v, EASR_SIT_BLOCKED, M_BLOCK, "block", "cert-mismatch");
        return;
    }
    if (in->has_body && (d->cmd == EASQ_CMD_PROVISION || d->cmd == EASQ_CMD_SETTINGS ||
                         d->cmd == EASQ_CMD_PING || d->cmd == EASQ_CMD_FOLDERSYNC)) {
        verdict_init(v, VERDICT_READ_BODY);
        return;
    }
    decide_now(d, in, NULL, v);
}

void decide_eas_body(struct decide_req *d, const struct decide_in *in, struct verdict *v)
{
    if (in->body_len == 0) {
        /* A chunked body that ended without a byte is no body, as with
         * Content-Length: 0 (an empty Ping sent chunked). */
        decide_now(d, in, NULL, v);
        return;
    }
    struct wbxml_facts *facts = malloc(sizeof(*facts));
    if (!facts) {
        decide_now(d, in, NULL, v);
        return;
    }
    uint64_t off = 0;
    int rc = wbxml_extract(in->body, in->body_len, facts, &off);
    if (rc < 0) {
        /* Exchange would parse what the proxy could not: it never sees it. */
        eg_info("instance %s: %s: %s body: WBXML error at byte %llu: %s", in->instance, in->client,
                easq_cmd_name((enum easq_cmd)d->cmd), (unsigned long long)off, wbxml_strerror(rc));
        free(facts);
        answer_sit(d, v, EASR_SIT_INVALID_WBXML, M_INVALID, "invalid", "wbxml-invalid");
        return;
    }
    decide_now(d, in, facts, v);
}
