/*
 * decide: identity, state, policy, answer. The identity struct is large
 * (every string inline), so it lives on the heap only from the head to the
 * decision; what the access log needs is kept as a compact JSON fragment.
 */
#include "proxy/decide.h"

#include "common/log.h"
#include "proxy/accesslog.h"
#include "proxy/answer.h"
#include "proxy/certbind.h"
#include "proxy/conn.h"
#include "eas/wbxml.h"
#include "proxy/srv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_logid(struct req *r, const char *user, const char *devid, const char *type,
                      const char *ua, size_t ua_len)
{
    free(r->logid);
    r->logid = accesslog_identity(user, devid, type, ua, ua_len);
}

static void answer_sit(struct conn *c, enum easr_situation sit, const char *reason,
                       enum m_decision d)
{
    struct req *r = c->req;
    struct answer a;
    enum easq_cmd cmd =
        r->cmd >= 0 && r->cmd < EASQ_CMD_COUNT ? (enum easq_cmd)r->cmd : EASQ_CMD_UNKNOWN;
    answer_eas(cmd, r->version, sit, &a);
    if (!r->reason)
        r->reason = reason;
    conn_answer(c, a.http_status, a.content_type, NULL, a.body, a.len, d);
}

void decide_cancel(struct conn *c)
{
    struct req *r = c->req;
    if (r && r->lookup_pending) {
        rstore_cancel(&r->wait);
        r->lookup_pending = 0;
    }
}

static uint64_t long_poll_ms(const struct conf_proxy *p, long heartbeat_s)
{
    int64_t max = p->limits.max_heartbeat_ms > 0 ? p->limits.max_heartbeat_ms : 3540000;
    int64_t hb = heartbeat_s > 0 ? (int64_t)heartbeat_s * 1000 : max;
    if (hb > max)
        hb = max;
    return (uint64_t)(hb + p->timeouts.long_poll_margin_ms);
}

static void report_sightings(struct conn *c, const struct rstore_result *res,
                             const struct easq_ident *id, const struct wbxml_facts *f)
{
    struct rstore *rs = c->w->rs;
    if (!rs || !id->device_id[0])
        return;
    char user[2 * EASQ_STR_MAX + 2] = "", ver[32];
    const char *ip = conn_client(c);
    easq_user_full(id, user, sizeof(user));
    snprintf(ver, sizeof(ver), "%d.%d", id->version / 10, id->version % 10);
    struct rstore_sight s = {
        .kind = RSTORE_SIGHT_UNKNOWN,
        .device_id = id->device_id,
        .user = user,
        .device_type = id->device_type,
        .user_agent = id->user_agent,
        .protocol_version = id->version ? ver : NULL,
        .client_addr = ip,
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

/* Decide with what the state store said (res NULL: no store, or it could
 * not be asked) and answer or forward. */
static void decide_with(struct conn *c, const struct rstore_result *res)
{
    struct req *r = c->req;
    struct easq_ident *id = r->ident;
    const struct wbxml_facts *facts = r->facts;
    const struct pol_policy *pol = r->snap->pol;

    struct pol_decision d = {POL_ALLOW, "no-policy", 0};
    if (pol) {
        struct pol_request pr = {
            .user = id->user[0] ? id->user : NULL,
            .domain = id->domain[0] ? id->domain : NULL,
            .device_id = id->device_id[0] ? id->device_id : NULL,
            .device_type = id->device_type[0] ? id->device_type : NULL,
            .device_model =
                facts && facts->devinfo[WBXML_DI_MODEL][0] ? facts->devinfo[WBXML_DI_MODEL] : NULL,
            .device_os =
                facts && facts->devinfo[WBXML_DI_OS][0] ? facts->devinfo[WBXML_DI_OS] : NULL,
            .user_agent = id->user_agent[0] ? id->user_agent : NULL,
            .command = (int)id->cmd,
            .proto_version = id->version,
        };
        struct pol_devstate st;
        if (res)
            devstate_from(res, &st);
        pol_decide(pol, &pr, res ? &st : NULL, (int64_t)uv_now(&c->w->loop), &d);
    }
    report_sightings(c, res, id, facts);
    if (srv_conn_decide(c, &d, id, res))
        return; /* the server role answered (proxy/srv.h) */
    worker_obj_put(c->w->free_idents, &c->w->n_free_idents, r->ident);
    r->ident = NULL;
    free(r->facts);
    r->facts = NULL;
    r->reason = d.reason;
    r->decision = pol_action_name(d.action);
    switch (d.action) {
    case POL_ALLOW:
        r->mdec = M_ALLOW;
        conn_forward(c);
        return;
    case POL_BLOCK:
        answer_sit(c, EASR_SIT_BLOCKED, d.reason, M_BLOCK);
        return;
    case POL_QUARANTINE:
        /* Like a block for the phone: it gets no mail and no error storm. */
        answer_sit(c, EASR_SIT_BLOCKED, d.reason, M_QUARANTINE);
        return;
    case POL_WIPE:
        if (r->cmd == EASQ_CMD_PROVISION && easr_version_uses_status(r->version)) {
            uint8_t buf[64];
            struct wbxml_w w;
            const uint8_t *out;
            size_t len;
            wbxml_w_init(&w, buf, sizeof(buf));
            easr_provision_wipe(&w, r->version, false);
            if (wbxml_w_finish(&w, &out, &len) == 0) {
                conn_answer(c, 200, ANSWER_WBXML_TYPE, NULL, out, len, M_WIPE);
                return;
            }
        }
        answer_sit(c, EASR_SIT_REMOTE_WIPE, d.reason, M_WIPE);
        return;
    }
}

static void on_lookup(struct rstore_wait *wt, void *arg, const struct rstore_result *res)
{
    struct conn *c = arg;
    c->req->lookup_pending = 0;
    decide_with(c, res);
}

/* facts: owned by the request from here (may be NULL). */
static void decide_now(struct conn *c, struct wbxml_facts *facts)
{
    struct req *r = c->req;
    const struct conf_proxy *p = &r->snap->conf->proxy;
    r->facts = facts;
    if (r->cmd == EASQ_CMD_PING || r->cmd == EASQ_CMD_SYNC)
        r->wait_ms = long_poll_ms(p, facts ? facts->heartbeat : -1);
    if (c->w->rs && r->devid_norm[0]) {
        struct rstore_result res;
        int rc = rstore_lookup(c->w->rs, r->devid_norm, strlen(r->devid_norm), &res, &r->wait,
                               on_lookup, c);
        if (rc == RSTORE_PENDING) {
            r->lookup_pending = 1;
            return;
        }
        if (rc == 0) {
            decide_with(c, &res);
            return;
        }
    }
    decide_with(c, NULL);
}

static void decide_options(struct conn *c)
{
    struct req *r = c->req;
    const struct pol_policy *pol = r->snap->pol;
    size_t ual = 0;
    const char *ua = head_get(c->head, "User-Agent", &ual);
    char uab[EASQ_STR_MAX + 1];
    if (ual > EASQ_STR_MAX)
        ual = EASQ_STR_MAX;
    memcpy(uab, ua ? ua : "", ua ? ual : 0);
    uab[ua ? ual : 0] = '\0';
    r->cmd = EASQ_CMD_OPTIONS;
    set_logid(r, "", "", "", uab, strlen(uab));
    struct pol_decision d = {POL_ALLOW, "no-policy", 0};
    if (pol)
        pol_decide_options(pol, uab, &d);
    r->decision = pol_action_name(d.action);
    r->reason = d.reason;
    if (d.action != POL_ALLOW) {
        conn_answer(c, 403, "text/plain", NULL, "forbidden\n", 10, M_BLOCK);
        return;
    }
    r->mdec = M_ALLOW;
    conn_forward(c);
}

void decide_eas_head(struct conn *c)
{
    struct req *r = c->req;
    struct head *h = c->head;
    if (r->method == HTTP_OPTIONS) {
        decide_options(c);
        return;
    }
    if (r->method != HTTP_POST) {
        r->reason = "method";
        conn_answer(c, 405, "text/plain", "Allow: OPTIONS, POST\r\n", "method not allowed\n", 19,
                    M_DENIED);
        return;
    }
    struct easq_ident *id = worker_obj_take(c->w->free_idents, &c->w->n_free_idents, sizeof(*id));
    if (!id) {
        conn_answer(c, 503, "text/plain", "Retry-After: 5\r\n", "busy\n", 5, M_LIMIT);
        return;
    }
    r->ident = id;
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
    r->cmd = id->cmd;
    r->version = id->version;
    char user[2 * EASQ_STR_MAX + 2] = "";
    easq_user_full(id, user, sizeof(user));
    set_logid(r, user, id->device_id, id->device_type, id->user_agent, strlen(id->user_agent));
    if (rc < 0) {
        r->decision = "invalid";
        r->reason = easq_strerror(rc);
        worker_obj_put(c->w->free_idents, &c->w->n_free_idents, r->ident);
        r->ident = NULL;
        answer_sit(c, EASR_SIT_BAD_DEVICE_ID, r->reason, M_INVALID);
        return;
    }
    if (easq_deviceid_norm(id->device_id, strlen(id->device_id), r->devid_norm,
                           sizeof(r->devid_norm)) < 0)
        r->devid_norm[0] = '\0';
    /* A verified client certificate must be this device's and this user's
     * (proxy/certbind.h); without one the TLS layer already decided. */
    X509 *cert = conn_peer_cert(c);
    if (cert) {
        int b = certbind_check(cert, r->devid_norm, id->user, id->domain);
        if (b != CERTBIND_OK) {
            eg_info("instance %s: %s blocked: %s (%s)", c->inst->ci->name, conn_client(c),
                    certbind_strerror(b), c->cert_id ? c->cert_id : "");
            r->decision = "block";
            worker_obj_put(c->w->free_idents, &c->w->n_free_idents, r->ident);
            r->ident = NULL;
            answer_sit(c, EASR_SIT_BLOCKED, "cert-mismatch", M_BLOCK);
            return;
        }
    }
    if (r->has_body && (r->cmd == EASQ_CMD_PROVISION || r->cmd == EASQ_CMD_SETTINGS ||
                        r->cmd == EASQ_CMD_PING || r->cmd == EASQ_CMD_FOLDERSYNC)) {
        conn_read_body_first(c);
        return;
    }
    decide_now(c, NULL);
}

void decide_eas_body(struct conn *c)
{
    struct req *r = c->req;
    struct wbxml_facts *facts = malloc(sizeof(*facts));
    if (!facts) {
        decide_now(c, NULL);
        return;
    }
    uint64_t off = 0;
    int rc = wbxml_extract(r->body, r->body_len, facts, &off);
    if (rc < 0)
        eg_debug("%s body: WBXML error at byte %llu: %s", easq_cmd_name((enum easq_cmd)r->cmd),
                 (unsigned long long)off, wbxml_strerror(rc));
    if (rc < 0) {
        free(facts);
        facts = NULL;
    }
    decide_now(c, facts);
}
