/*
 * core_explain: the core's answer to "why is this phone blocked?" (explain.h).
 *
 * Each compliance rule is evaluated on its own by running the very
 * compliance_evaluate with only that rule set and no grace, so the per-rule
 * results cannot drift from the evaluation the engine runs; the policy's
 * half is pol_explain and pol_decide, the proxy's own functions, over the
 * state the core wrote for the device.
 */
#include "core/explain.h"
#include "core/eng.h"

#include "eas/easr.h"
#include "policy/pol.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *tri(enum compliance_tri t)
{
    return t == COMPLIANCE_YES ? "yes" : t == COMPLIANCE_NO ? "no" : "unknown";
}

static json_t *age(int64_t at_ms, int64_t now_ms)
{
    return at_ms > 0 ? json_integer((json_int_t)((now_ms - at_ms) / 1000)) : json_null();
}

static json_t *record(const struct core_device *d, int64_t now_ms)
{
    return json_pack(
        "{s:s,s:b,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:{s:s,s:s,s:s,s:s},s:I,s:o,s:I,s:o,s:s}", "user",
        d->user, "managed", d->managed, "override", compliance_override_name(d->override),
        "device_type", d->device_type, "model", d->model, "os", d->os, "os_version", d->os_version,
        "user_agent", d->user_agent, "eas_version", d->eas_version, "last_client", d->last_client,
        "checkin_facts", "passcode", tri(d->passcode), "encrypted", tri(d->encrypted), "jailbroken",
        tri(d->jailbroken), "agent_version", d->agent_version, "last_seen",
        (json_int_t)d->last_seen_ms, "last_seen_age_s", age(d->last_seen_ms, now_ms),
        "last_checkin", (json_int_t)d->last_checkin_ms, "last_checkin_age_s",
        age(d->last_checkin_ms, now_ms), "facts_source",
        "device type, model, OS, user agent, protocol version and client address as proxies "
        "reported them after Exchange "
        "accepted the device's request; passcode, encryption and jailbreak from its "
        "authenticated check-ins");
}

static json_t *check(const char *name, const char *result, const char *reason)
{
    return json_pack("{s:s,s:s,s:s}", "rule", name, "result", result, "reason", reason);
}

/* One compliance check alone: a copy of rules with only it set. */
static json_t *one_check(const char *name, bool set, const struct compliance_rules *only,
                         const struct compliance_facts *f, int64_t now_ms)
{
    if (!set)
        return check(name, "not required", "");
    struct compliance_facts g = *f;
    g.managed = true;
    g.non_compliant_since_ms = 0;
    g.rule = COMPLIANCE_RULE_NONE;
    g.user_rank = 0;
    struct compliance_result r;
    compliance_evaluate(only, &g, COMPLIANCE_OVR_NONE, now_ms, &r);
    bool pass = strcmp(r.reason, "compliant") == 0;
    return check(name, pass ? "pass" : "fail", pass ? "" : r.reason);
}

static json_t *checks(const struct compliance_rules *rules, const struct compliance_facts *f,
                      uint32_t rank, int64_t now_ms)
{
    json_t *a = json_array();
    struct compliance_rules base;
    compliance_rules_init(&base);
    base.present = true;
    struct compliance_rules r = base;
    r.block_jailbroken = true;
    json_array_append_new(a, one_check("block_jailbroken", rules->block_jailbroken, &r, f, now_ms));
    r = base;
    r.require_passcode = true;
    json_array_append_new(a, one_check("require_passcode", rules->require_passcode, &r, f, now_ms));
    r = base;
    r.require_encryption = true;
    json_array_append_new(
        a, one_check("require_encryption", rules->require_encryption, &r, f, now_ms));
    r = base;
    memcpy(r.os_min, rules->os_min, sizeof(r.os_min));
    r.n_os_min = rules->n_os_min;
    json_array_append_new(a, one_check("min_os_version", rules->n_os_min > 0, &r, f, now_ms));
    r = base;
    r.max_checkin_age_ms = rules->max_checkin_age_ms;
    json_array_append_new(
        a, one_check("max_checkin_age", rules->max_checkin_age_ms > 0, &r, f, now_ms));
    if (rules->max_devices_per_user == 0)
        json_array_append_new(a, check("max_devices_per_user", "not required", ""));
    else
        json_array_append_new(
            a, check("max_devices_per_user", rank <= rules->max_devices_per_user ? "pass" : "fail",
                     rank <= rules->max_devices_per_user ? "" : "too-many-devices"));
    return a;
}

/* The answer of a decision at a version, for a Sync (docs/access-model.md). */
static void answer(enum pol_action a, int version, char *out, size_t cap)
{
    struct easr_plan p;
    enum easr_situation sit = a == POL_WIPE ? EASR_SIT_REMOTE_WIPE : EASR_SIT_BLOCKED;
    if (a == POL_ALLOW) {
        snprintf(out, cap, "forwarded to the mail server");
        return;
    }
    char plan[96] = "?";
    if (easr_plan(version, EASQ_CMD_PING, sit, &p) == 0) {
        const char *name = p.wbxml ? easr_status_name(p.eas_status) : NULL;
        if (p.wbxml)
            snprintf(plan, sizeof(plan), "HTTP %d, Status %d%s%s%s", p.http_status, p.eas_status,
                     name ? " (" : "", name ? name : "", name ? ")" : "");
        else
            snprintf(plan, sizeof(plan), "HTTP %d", p.http_status);
    }
    if (a == POL_QUARANTINE)
        snprintf(out, cap, "FolderSync and Sync: the quarantine notice; other commands: %s", plan);
    else if (a == POL_WIPE)
        snprintf(out, cap, "Provision: RemoteWipe; other commands: %s", plan);
    else
        snprintf(out, cap, "%s", plan);
}

/* pol_explain's lines as a JSON array. */
static json_t *policy_steps(const struct pol_policy *p, const struct pol_request *rq,
                            const struct pol_devstate *st, int64_t now_ms)
{
    json_t *a = json_array();
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return a;
    pol_explain(f, p, rq, st, now_ms);
    fclose(f);
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        while (*line == ' ')
            line++;
        json_array_append_new(a, json_string(line));
    }
    free(buf);
    return a;
}

json_t *core_explain(const struct compliance_rules *rules, const char *device_id,
                     const struct core_device *d, uint32_t rank, const struct core_explain_req *rq,
                     int64_t now_ms)
{
    static const struct core_device none;
    const struct core_device *dev = d ? d : &none;
    json_t *o = json_object();
    json_object_set_new(o, "device_id", json_string(device_id));
    json_object_set_new(o, "known", json_boolean(d != NULL));
    struct compliance_facts f = {
        .managed = dev->managed,
        .passcode = d ? dev->passcode : COMPLIANCE_UNKNOWN,
        .encrypted = d ? dev->encrypted : COMPLIANCE_UNKNOWN,
        .jailbroken = d ? dev->jailbroken : COMPLIANCE_UNKNOWN,
        .os = dev->os,
        .os_version = dev->os_version,
        .last_checkin_ms = dev->last_checkin_ms,
        .non_compliant_since_ms = dev->non_compliant_since_ms,
        .user_rank = rank,
        .autoblock_until_ms = dev->autoblock_until_ms,
        .autoblock_reason = dev->autoblock_reason,
    };
    core_eng_rule_facts(rules, dev, now_ms, &f);
    if (d) {
        json_object_set_new(o, "registry", record(d, now_ms));
        json_object_set_new(
            o, "state",
            json_pack("{s:s,s:s,s:I,s:I,s:s}", "state", compliance_state_name(d->state), "reason",
                      d->reason, "version", (json_int_t)d->version, "updated",
                      (json_int_t)d->updated_ms, "source",
                      pol_devstate_source(d->reason) == POL_SRC_ADMIN     ? "admin override"
                      : pol_devstate_source(d->reason) == POL_SRC_DEFAULT ? "default level"
                                                                          : "rules"));
        json_t *c = json_array();
        json_array_append_new(c, check("override", d->override ? "set" : "none",
                                       compliance_override_name(d->override)));
        /* A proxy's autoblock report (abuse.autoblock): until when, and why. */
        char ab[CORE_REASON_MAX + 48] = "";
        bool blocked = d->autoblock_until_ms > now_ms;
        if (blocked)
            snprintf(ab, sizeof(ab), "%s, %lld s left", d->autoblock_reason,
                     (long long)((d->autoblock_until_ms - now_ms + 999) / 1000));
        bool q = strncmp(d->autoblock_reason, COMPLIANCE_REASON_AUTOQUARANTINE,
                         sizeof(COMPLIANCE_REASON_AUTOQUARANTINE) - 1) == 0;
        json_array_append_new(c, check("autoblock",
                                       !blocked ? "none"
                                       : q      ? "quarantined"
                                                : "blocked",
                                       ab));
        json_array_append_new(c, check("device_rules",
                                       f.rule == COMPLIANCE_RULE_NONE ? "no match" : "match",
                                       f.rule_reason ? f.rule_reason : ""));
        json_array_append_new(c, check("unmanaged_devices",
                                       d->managed ? "not applied (enrolled)" : "applied",
                                       compliance_state_name(rules->unmanaged)));
        json_t *each = checks(rules, &f, rank, now_ms);
        json_array_extend(c, each); /* copies the references: each is still ours */
        json_decref(each);
        json_object_set_new(o, "compliance", c);
        struct compliance_result r;
        compliance_evaluate(rules, &f, d->override, now_ms, &r);
        json_object_set_new(o, "core_verdict",
                            json_pack("{s:s,s:s,s:b}", "state", compliance_state_name(r.state),
                                      "reason", r.reason, "in_grace", r.in_grace));
    } else {
        json_object_set_new(o, "registry", json_null());
        json_object_set_new(o, "state", json_null());
        json_object_set_new(o, "note",
                            json_string("unknown DeviceId: the registry and Redis hold nothing; "
                                        "the proxies apply the policy to it as an unknown device"));
    }
    const struct pol_policy *p = rules->devrules;
    char os[2 * CORE_SHORT_MAX + 2];
    snprintf(os, sizeof(os), "%s%s%s", dev->os, dev->os[0] && dev->os_version[0] ? " " : "",
             dev->os_version);
    const char *ver = rq && rq->version ? rq->version : dev->eas_version;
    struct pol_request pr = {
        .ident = POL_ID_VERIFIED,
        .user = rq && rq->user ? rq->user
                : dev->user[0] ? dev->user
                               : NULL,
        .device_id = device_id,
        .device_type = rq && rq->device_type ? rq->device_type
                       : dev->device_type[0] ? dev->device_type
                                             : NULL,
        .device_model = dev->model[0] ? dev->model : NULL,
        .device_os = os[0] ? os : NULL,
        .user_agent = rq && rq->user_agent ? rq->user_agent
                      : dev->user_agent[0] ? dev->user_agent
                                           : NULL,
        .command = EASQ_CMD_SYNC,
        .proto_version = core_eas_version(ver),
    };
    json_object_set_new(o, "request",
                        json_pack("{s:s?,s:s?,s:s?,s:s,s:s}", "user", pr.user, "device_type",
                                  pr.device_type, "user_agent", pr.user_agent, "version",
                                  ver && *ver ? ver : "none", "credential",
                                  "assumed verified (the core cannot see the request's)"));
    struct pol_devstate st = {0};
    if (d) {
        st.state = (enum pol_devstate_kind)(d->state + 1); /* allow.. wipe after unknown */
        st.user = d->user;
        st.reason = d->reason;
        st.source = pol_devstate_source(d->reason);
    }
    struct pol_decision pd = {POL_ALLOW, "no-policy", 0};
    if (p) {
        json_object_set_new(o, "policy", policy_steps(p, &pr, d ? &st : NULL, now_ms));
        pol_decide(p, &pr, d ? &st : NULL, now_ms, &pd);
    } else {
        json_object_set_new(o, "policy", json_pack("[s]", "no policy: every request is allowed"));
    }
    char ans[256];
    answer(pd.action, pr.proto_version, ans, sizeof(ans));
    json_object_set_new(o, "decision",
                        json_pack("{s:s,s:s,s:s}", "action", pol_action_name(pd.action), "reason",
                                  pd.reason, "answer", ans));
    return o;
}
