/*
 * decide: identity, state, policy, server role, verdict. The identity struct
 * is large (every string inline), so it lives on the heap only from the head
 * to the decision; what the access log needs is kept as a compact JSON
 * fragment.
 */
#include "proxy/decide.h"

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

static void set_logid(struct decide_req *d, const char *user, const char *devid, const char *type,
                      const char *ua, size_t ua_len)
{
    if (!accesslog_enabled())
        return; /* only the access log reads it */
    free(d->logid);
    d->logid = accesslog_identity(user, devid, type, ua, ua_len);
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

static void report_sightings(const struct decide_in *in, const struct rstore_result *res,
                             const struct easq_ident *id, const struct wbxml_facts *f)
{
    struct rstore *rs = in->rs;
    if (!rs || !id->device_id[0])
        return;
    char user[2 * EASQ_STR_MAX + 2] = "", ver[32];
    easq_user_full(id, user, sizeof(user));
    snprintf(ver, sizeof(ver), "%d.%d", id->version / 10, id->version % 10);
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
        rstore_sight(rs, &s);
    if (f && f->has_devinfo) {
        s.kind = RSTORE_SIGHT_DEVINFO;
        s.model = f->devinfo[WBXML_DI_MODEL];
        s.imei = f->devinfo[WBXML_DI_IMEI];
        s.friendly_name = f->devinfo[WBXML_DI_FRIENDLYNAME];
        s.os = f->devinfo[WBXML_DI_OS];
        s.os_language = f->devinfo[WBXML_DI_OSLANGUAGE];
        s.phone_number = f->devinfo[WBXML_DI_PHONENUMBER];
        s.mobile_operator = f->devinfo[WBXML_DI_MOBILEOPERATOR];
        rstore_sight(rs, &s);
    }
    if (f && id->cmd == EASQ_CMD_PROVISION &&
        ((f->remote_wipe && f->remote_wipe_status >= 0) ||
         (f->account_only_remote_wipe && f->account_only_remote_wipe_status >= 0))) {
        char st[16];
        snprintf(st, sizeof(st), "%d",
                 f->remote_wipe_status >= 0 ? f->remote_wipe_status
                                            : f->account_only_remote_wipe_status);
        struct rstore_sight w = s;
        w.kind = RSTORE_SIGHT_WIPE_ACK;
        w.status = st;
        rstore_sight(rs, &w);
    }
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
    }
}

static void policy_decide(const struct decide_req *d, const struct decide_in *in,
                          const struct rstore_result *res, struct pol_decision *pd)
{
    const struct easq_ident *id = d->ident;
    const struct wbxml_facts *facts = d->facts;
    *pd = (struct pol_decision){POL_ALLOW, "no-policy", 0};
    if (!in->snap->pol)
        return;
    struct pol_request pr = {
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
    struct pol_devstate st;
    if (res)
        devstate_from(res, &st);
    pol_decide(in->snap->pol, &pr, res ? &st : NULL, in->now_ms, pd);
}

void decide_eas_state(struct decide_req *d, const struct decide_in *in,
                      const struct rstore_result *res, struct verdict *v)
{
    struct pol_decision pd;
    policy_decide(d, in, res, &pd);
    report_sightings(in, res, d->ident, d->facts);
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
    set_logid(d, "", "", "", uab, strlen(uab));
    struct pol_decision pd = {POL_ALLOW, "no-policy", 0};
    if (in->snap->pol)
        pol_decide_options(in->snap->pol, uab, &pd);
    const char *decision = pol_action_name(pd.action);
    if (pd.action != POL_ALLOW) {
        answer_text(v, 403, NULL, "forbidden\n", M_BLOCK, decision, pd.reason);
        return;
    }
    forward(v, M_ALLOW, decision, pd.reason);
}

/* The identity from the target and the headers: 0, or an easq error. */
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
    if (rc == 0)
        rc = easq_finish(id);
    d->cmd = id->cmd;
    d->version = id->version;
    char user[2 * EASQ_STR_MAX + 2] = "";
    easq_user_full(id, user, sizeof(user));
    set_logid(d, user, id->device_id, id->device_type, id->user_agent, strlen(id->user_agent));
    if (rc == 0 && easq_deviceid_norm(id->device_id, strlen(id->device_id), d->devid_norm,
                                      sizeof(d->devid_norm)) < 0)
        d->devid_norm[0] = '\0';
    return rc;
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
    if (rc < 0) {
        answer_sit(d, v, EASR_SIT_BAD_DEVICE_ID, M_INVALID, "invalid", easq_strerror(rc));
        return;
    }
    /* A verified client certificate must be this device's and this user's
     * (proxy/certbind.h); without one the TLS layer already decided. */
    if (in->cert) {
        int b = certbind_check(in->cert, d->devid_norm, d->ident->user, d->ident->domain);
        if (b != CERTBIND_OK) {
            eg_info("instance %s: %s blocked: %s (%s)", in->instance, in->client,
                    certbind_strerror(b), in->cert_id ? in->cert_id : "");
            answer_sit(d, v, EASR_SIT_BLOCKED, M_BLOCK, "block", "cert-mismatch");
            return;
        }
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
    struct wbxml_facts *facts = malloc(sizeof(*facts));
    if (!facts) {
        decide_now(d, in, NULL, v);
        return;
    }
    uint64_t off = 0;
    int rc = wbxml_extract(in->body, in->body_len, facts, &off);
    if (rc < 0) {
        eg_debug("%s body: WBXML error at byte %llu: %s", easq_cmd_name((enum easq_cmd)d->cmd),
                 (unsigned long long)off, wbxml_strerror(rc));
        free(facts);
        facts = NULL;
    }
    decide_now(d, in, facts, v);
}
