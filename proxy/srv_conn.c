/*
 * srv_conn: the server role's glue to a proxied connection -- gather what
 * srv_decide() needs from the request, send its answer, log what matters.
 */
#include "proxy/srv.h"

#include "common/log.h"
#include "connectors/rstore.h"
#include "proxy/conn.h"
#include "proxy/metrics.h"

#include <string.h>
#include <strings.h>
#include <time.h>

/*
 * Drop a request header toward the upstream. The forwarder skips hop-by-hop
 * headers by name; renaming this one in place to a shorter hop-by-hop name
 * ("keep-alive") makes it skip it too, without a second copy of the head.
 */
static void drop_header(struct head *h, const char *name)
{
    static const char hop[] = "keep-alive";
    for (uint32_t i = 0; i < h->n; i++) {
        if (!head_name_is(h, i, name) || h->h[i].n_len < sizeof(hop) - 1)
            continue;
        memcpy(h->data + h->h[i].n_off, hop, sizeof(hop) - 1);
        h->h[i].n_len = sizeof(hop) - 1;
    }
}

static enum m_decision mdec_for(const struct pol_decision *d)
{
    switch (d->action) {
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

/*
 * Tell the core which final key the device now holds ("provisioned"
 * sighting, never rate-limited): it records the key and when in the
 * registry and writes it into the device hash, so an admin can see it.
 * Best effort, like every sighting: Redis down means no record, not a
 * failed Provision.
 */
static void report_provisioned(struct conn *c, const struct easq_ident *id, uint32_t key,
                               uint32_t fingerprint, uint64_t epoch)
{
    struct rstore *rs = c->w->rs;
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
        {"client_addr", conn_client(c)},
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

int srv_conn_decide(struct conn *c, const struct pol_decision *d, const struct easq_ident *id,
                    const struct rstore_result *res)
{
    struct req *r = c->req;
    const struct pol_policy *pol = r->snap->pol;
    if (!pol)
        return 0;
    size_t pkl = 0, all = 0;
    const char *pkh = id->has_policy_key ? NULL : head_get(c->head, "X-MS-PolicyKey", &pkl);
    /* The language matters only for the quarantine notice. */
    const char *al =
        d->action == POL_QUARANTINE ? head_get(c->head, "Accept-Language", &all) : NULL;
    char lang[64] = "";
    if (al && all) {
        size_t n = all < sizeof(lang) - 1 ? all : sizeof(lang) - 1;
        memcpy(lang, al, n);
        lang[n] = '\0';
    } else if (d->action == POL_QUARANTINE && id->has_locale && prov_lcid_lang(id->locale)) {
        snprintf(lang, sizeof(lang), "%s", prov_lcid_lang(id->locale));
    }
    /* A request without a body counts as read (an empty Sync). */
    bool body_read = r->body_mode == BODY_BUFFER || !r->has_body;
    struct srv_request rq = {
        .cmd = id->cmd,
        .version = id->version,
        .device_id = r->devid_norm,
        .has_policy_key = id->has_policy_key,
        .policy_key = id->policy_key,
        .policy_key_bad = pkh && pkl && !id->has_policy_key,
        .lang = lang[0] ? lang : NULL,
        .wipe_account_only = res && res->status == RSTORE_FOUND && res->wipe_account_only,
        .pk_epoch = res && res->status == RSTORE_FOUND ? res->pk_epoch : 0,
        .body = r->body_mode == BODY_BUFFER ? (const uint8_t *)r->body : NULL,
        .body_len = r->body_mode == BODY_BUFFER ? r->body_len : 0,
        .body_read = body_read,
        .facts = r->facts,
        .now_ms = (int64_t)time(NULL) * 1000,
    };
    struct srv_answer a;
    switch (srv_decide(&pol->provisioning, d, &rq, &a)) {
    case SRV_PASS:
        if (a.strip_policy_key)
            drop_header(c->head, "X-MS-PolicyKey");
        return 0;
    case SRV_NEED_BODY:
        conn_read_body_first(c);
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
        report_provisioned(c, id, a.provisioned_key, pol->provisioning.fingerprint, rq.pk_epoch);
    r->decision = a.decision ? a.decision : pol_action_name(d->action);
    r->reason = a.reason ? a.reason : d->reason;
    conn_answer(c, a.http_status, a.content_type, NULL, a.body, a.len, mdec_for(d));
    srv_answer_free(&a);
    return 1;
}
