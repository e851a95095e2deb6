/*
 * pol: policy.yaml loaded into an immutable, reference-counted snapshot, and
 * the per-request decision (order and reasons documented in pol.h).
 *
 * The decision walks short lists with a glob matcher that cannot blow up
 * (no recursion, O(pattern x subject)), allocates nothing and takes no lock,
 * so a worker can call it on every request while another thread loads the
 * next snapshot. The snapshot's memory is one ytree arena: the parsed tree,
 * the lists and the rules die together when the last reference goes.
 */
#include "policy/pol.h"

#include "common/units.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define POL_USER_MAX 512  /* longest "DOMAIN\user" a rule is matched against */
#define POL_ID_MAX 128    /* DeviceIds are at most 32 characters (MS-ASHTTP) */
#define POL_REASON_MAX 24 /* "rule:NNNNN" */

const char *pol_action_name(enum pol_action a)
{
    switch (a) {
    case POL_ALLOW:
        return "allow";
    case POL_BLOCK:
        return "block";
    case POL_QUARANTINE:
        return "quarantine";
    case POL_WIPE:
        return "wipe";
    }
    return "?";
}

/* ---- Matching ------------------------------------------------------------- */

bool pol_glob(const char *pattern, const char *s)
{
    /* Classic single-star backtracking: on a mismatch, retry from the last
     * star with the subject advanced by one. Later stars supersede earlier
     * ones, which keeps it linear in practice and quadratic at worst. */
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*pattern == '*') {
            star = pattern++;
            resume = s;
        } else if (*pattern == '?' ||
                   (*pattern && tolower((unsigned char)*pattern) == tolower((unsigned char)*s))) {
            pattern++;
            s++;
        } else if (star) {
            pattern = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*pattern == '*')
        pattern++;
    return *pattern == '\0';
}

static bool glob_any(const struct yt_strv *v, const char *s)
{
    for (size_t i = 0; i < v->n; i++)
        if (pol_glob(v->v[i], s))
            return true;
    return false;
}

/* DeviceId lists are sorted case-insensitively at load, so a list of tens
 * of thousands of ids costs a binary search per request, not a scan. */
static int id_cmp(const void *a, const void *b)
{
    return strcasecmp(*(const char *const *)a, *(const char *const *)b);
}

static bool id_in(const struct yt_strv *v, const char *id)
{
    return v->n && bsearch(&id, v->v, v->n, sizeof(v->v[0]), id_cmp) != NULL;
}

struct pol_who {
    const char *name; /* bare user name */
    size_t name_len;
    const char *dom; /* domain, or NULL */
    size_t dom_len;
    char kind; /* '@' (UPN), '\\' (NetBIOS) or 0 */
};

/* "alice", "alice@example.com", "EXAMPLE\alice" -> name, domain, kind. */
static void who_split(const char *s, struct pol_who *w)
{
    const char *bs = strchr(s, '\\');
    const char *at = strrchr(s, '@');
    memset(w, 0, sizeof(*w));
    if (bs) {
        w->dom = s;
        w->dom_len = (size_t)(bs - s);
        w->name = bs + 1;
        w->name_len = strlen(bs + 1);
        w->kind = '\\';
    } else if (at) {
        w->name = s;
        w->name_len = (size_t)(at - s);
        w->dom = at + 1;
        w->dom_len = strlen(at + 1);
        w->kind = '@';
    } else {
        w->name = s;
        w->name_len = strlen(s);
    }
}

static bool eq_n(const char *a, size_t al, const char *b, size_t bl)
{
    return al == bl && strncasecmp(a, b, al) == 0;
}

/* "EXAMPLE" (NetBIOS) against "example.com" (UPN suffix): first label. */
static bool dom_match(const struct pol_who *a, const struct pol_who *b)
{
    if (a->kind == b->kind)
        return eq_n(a->dom, a->dom_len, b->dom, b->dom_len);
    const struct pol_who *nb = a->kind == '\\' ? a : b;
    const struct pol_who *upn = a->kind == '\\' ? b : a;
    const char *dot = memchr(upn->dom, '.', upn->dom_len);
    size_t label = dot ? (size_t)(dot - upn->dom) : upn->dom_len;
    return eq_n(nb->dom, nb->dom_len, upn->dom, label);
}

/* The request's identity: user may already carry a domain; an explicit
 * domain argument wins over none. */
static void req_who(const char *user, const char *domain, struct pol_who *w)
{
    who_split(user, w);
    if (!w->kind && domain && *domain) {
        w->dom = domain;
        w->dom_len = strlen(domain);
        w->kind = strchr(domain, '.') ? '@' : '\\';
    }
}

enum pol_devsrc pol_devstate_source(const char *reason)
{
    if (!reason)
        return POL_SRC_RULES;
    if (strncmp(reason, COMPLIANCE_REASON_ADMIN, strlen(COMPLIANCE_REASON_ADMIN)) == 0)
        return POL_SRC_ADMIN;
    if (strncmp(reason, COMPLIANCE_REASON_UNMANAGED, strlen(COMPLIANCE_REASON_UNMANAGED)) == 0)
        return POL_SRC_DEFAULT;
    return POL_SRC_RULES;
}

bool pol_user_match(const char *bound, const char *user, const char *domain)
{
    if (!bound || !*bound)
        return true;
    if (!user || !*user)
        return false;
    struct pol_who b, r;
    who_split(bound, &b);
    req_who(user, domain, &r);
    if (!eq_n(b.name, b.name_len, r.name, r.name_len))
        return false;
    /* A bound domain is only compared when the request names one too: with
     * no domain the name is resolved by Exchange's default domain. */
    if (b.kind && r.kind)
        return dom_match(&b, &r);
    return true;
}

static bool rule_user(const char *glob, const struct pol_request *req)
{
    const char *user = req->user ? req->user : "";
    struct pol_who w;
    char form[POL_USER_MAX];
    req_who(user, req->domain, &w);
    snprintf(form, sizeof(form), "%.*s", (int)w.name_len, w.name);
    if (pol_glob(glob, form))
        return true;
    if (!w.kind)
        return false;
    snprintf(form, sizeof(form), "%.*s@%.*s", (int)w.name_len, w.name, (int)w.dom_len, w.dom);
    if (pol_glob(glob, form))
        return true;
    snprintf(form, sizeof(form), "%.*s\\%.*s", (int)w.dom_len, w.dom, (int)w.name_len, w.name);
    return pol_glob(glob, form);
}

static bool field_match(const char *glob, const char *value)
{
    return !glob || pol_glob(glob, value ? value : "");
}

/* A rule's groups (pol_member): fail closed when the directory cannot say,
 * so an outage never lifts a block meant for a group nor grants an allow
 * meant for one; a proxy (no in_groups) leaves such rules to the core. */
static bool groups_match(const struct pol_rule *r, const struct pol_request *req)
{
    if (!r->groups.n)
        return true;
    if (!req->in_groups)
        return false;
    switch (req->in_groups(&r->groups, req->groups_arg)) {
    case POL_MEMBER_YES:
        return true;
    case POL_MEMBER_UNKNOWN:
        return r->action != POL_ALLOW;
    default:
        return false;
    }
}

static bool rule_match(const struct pol_rule *r, const struct pol_request *req)
{
    return field_match(r->device_type, req->device_type) &&
           field_match(r->device_model, req->device_model) &&
           field_match(r->device_os, req->device_os) &&
           field_match(r->user_agent, req->user_agent) && (!r->user || rule_user(r->user, req)) &&
           groups_match(r, req);
}

const struct pol_rule *pol_group_rule(const struct pol_policy *p)
{
    for (size_t i = 0; p && i < p->n_rules; i++)
        if (p->rules[i].groups.n)
            return &p->rules[i];
    return NULL;
}

/* ---- The decision ---------------------------------------------------------- */

static int decide(struct pol_decision *out, enum pol_action a, const char *reason, int rule)
{
    out->action = a;
    out->reason = reason;
    out->rule = rule;
    return 0;
}

/* The user-agent lists (step 1): true when they block the request. */
static bool ua_blocks(const struct pol_policy *p, const char *ua, struct pol_decision *out)
{
    ua = ua ? ua : "";
    if (glob_any(&p->ua_block, ua))
        return decide(out, POL_BLOCK, "ua-blocked", 0) == 0;
    if (p->ua_allow.n && !glob_any(&p->ua_allow, ua))
        return decide(out, POL_BLOCK, "ua-not-allowed", 0) == 0;
    return false;
}

int pol_rule_first(const struct pol_policy *p, const struct pol_request *req)
{
    for (size_t i = 0; p && req && i < p->n_rules; i++)
        if (rule_match(&p->rules[i], req))
            return (int)i;
    return -1;
}

int pol_decide_options(const struct pol_policy *p, const char *user_agent, struct pol_decision *out)
{
    if (!p || !out) {
        if (out)
            decide(out, POL_BLOCK, "internal", 0);
        return -EINVAL;
    }
    if (ua_blocks(p, user_agent, out))
        return 0;
    return decide(out, POL_ALLOW, "ua-allowed", 0);
}

int pol_decide(const struct pol_policy *p, const struct pol_request *req,
               const struct pol_devstate *st, int64_t now_ms, struct pol_decision *out)
{
    (void)now_ms;
    if (!p || !req || !out) {
        if (out)
            decide(out, POL_BLOCK, "internal", 0);
        return -EINVAL;
    }
    if (ua_blocks(p, req->user_agent, out))
        return 0;

    if (req->device_id && *req->device_id) {
        if (id_in(&p->dev_block, req->device_id))
            return decide(out, POL_BLOCK, "device-blocked", 0);
        if (id_in(&p->dev_allow, req->device_id))
            return decide(out, POL_ALLOW, "device-allowed", 0);
    }

    /* An admin's decision for this one device is what the admin wanted
     * instead of the rules: approving a rule-quarantined phone must work. */
    bool admin = st && !st->stale && st->state != POL_DEV_UNKNOWN && st->source == POL_SRC_ADMIN;
    const struct pol_rule *allow_rule = NULL;
    for (size_t i = 0; i < p->n_rules && !admin; i++) {
        const struct pol_rule *r = &p->rules[i];
        if (!rule_match(r, req))
            continue;
        if (r->action != POL_ALLOW)
            return decide(out, r->action, r->reason, (int)i + 1);
        allow_rule = r;
        break;
    }

    if (st && st->stale)
        return decide(out, POL_BLOCK, "state-stale", 0);
    bool bound = st && st->state != POL_DEV_UNKNOWN && st->user && *st->user;
    const char *user = req->user, *domain = req->domain;
    if (req->ident == POL_ID_UNVERIFIABLE) {
        enum pol_unverifiable u = p->identity.unverifiable;
        if (u == POL_UNV_BLOCK)
            return decide(out, POL_BLOCK, "identity-unverifiable", 0);
        if (bound && (u != POL_UNV_ALLOW_CERT_BOUND || !req->cert_user ||
                      !pol_user_match(st->user, req->cert_user, NULL)))
            return decide(out, POL_BLOCK, "identity-unverifiable", 0);
        user = req->cert_user, domain = NULL; /* the certificate vouches for the binding */
    }
    enum pol_devstate_kind kind = st ? st->state : POL_DEV_UNKNOWN;
    if (kind != POL_DEV_UNKNOWN && kind != POL_DEV_WIPE && st->source == POL_SRC_DEFAULT &&
        allow_rule) {
        /* The core only applied the default level (unmanaged_devices), which
         * an allow rule replaces, as it replaces unknown_devices: the phone
         * a rule let in must not be turned away once the core has met it. */
        if (req->ident == POL_ID_HANDSHAKE)
            return decide(out, POL_ALLOW, "auth-handshake", 0);
        if (!pol_user_match(st->user, user, domain))
            return decide(out, POL_BLOCK, "user-mismatch", 0);
        return decide(out, POL_ALLOW, allow_rule->reason, (int)(allow_rule - p->rules) + 1);
    }
    switch (kind) {
    case POL_DEV_BLOCK:
        return decide(out, POL_BLOCK, "state-block", 0);
    case POL_DEV_ALLOW:
    case POL_DEV_QUARANTINE:
    case POL_DEV_WIPE:
        /* A bound device used by someone else is blocked whatever its state:
         * a copied DeviceId must neither read mail nor trigger a wipe. A
         * handshake leg names nobody: the next leg is checked. */
        if (req->ident == POL_ID_HANDSHAKE)
            return decide(out, POL_ALLOW, "auth-handshake", 0);
        if (!pol_user_match(st->user, user, domain))
            return decide(out, POL_BLOCK, "user-mismatch", 0);
        if (st->state == POL_DEV_WIPE)
            return decide(out, POL_WIPE, "state-wipe", 0);
        if (st->state == POL_DEV_QUARANTINE)
            return decide(out, POL_QUARANTINE, "state-quarantine", 0);
        return decide(out, POL_ALLOW, "state-allow", 0);
    case POL_DEV_UNKNOWN:
        break;
    }
    if (allow_rule)
        return decide(out, POL_ALLOW, allow_rule->reason, (int)(allow_rule - p->rules) + 1);
    if (req->ident == POL_ID_HANDSHAKE && p->unknown_devices != POL_BLOCK)
        return decide(out, POL_ALLOW, "auth-handshake", 0);
    return decide(out, p->unknown_devices, "unknown-device", 0);
}

/* ---- Explaining --------------------------------------------------------------- */

static const char *yes(bool b)
{
    return b ? "match" : "no match";
}

static const char *src_name(enum pol_devsrc s)
{
    return s == POL_SRC_ADMIN ? "admin override" : s == POL_SRC_DEFAULT ? "default level" : "rules";
}

static const char *kind_name(enum pol_devstate_kind k)
{
    static const char *const names[] = {"unknown", "allow", "block", "quarantine", "wipe"};
    return (unsigned)k < 5 ? names[k] : "?";
}

static void explain_rule(FILE *f, const struct pol_rule *r, size_t i, bool hit, const char *note,
                         bool req_has_groups)
{
    fprintf(f, "  device_rules[%zu] (line %d) %s:", i + 1, r->line, pol_action_name(r->action));
    const char *k[] = {"device_type", "device_model", "device_os", "user_agent", "user"};
    const char *v[] = {r->device_type, r->device_model, r->device_os, r->user_agent, r->user};
    for (size_t j = 0; j < 5; j++)
        if (v[j])
            fprintf(f, " %s=\"%s\"", k[j], v[j]);
    for (size_t j = 0; j < r->groups.n; j++)
        fprintf(f, "%s\"%s\"%s", j ? ", " : " groups=[", r->groups.v[j],
                j + 1 == r->groups.n ? "]" : "");
    fprintf(f, ": %s%s%s\n", yes(hit), note,
            r->groups.n && !hit && !req_has_groups ? " (groups: decided by the core)" : "");
}

void pol_explain(FILE *f, const struct pol_policy *p, const struct pol_request *req,
                 const struct pol_devstate *st, int64_t now_ms)
{
    const char *ua = req->user_agent ? req->user_agent : "";
    fprintf(f, "policy %s:\n", p->path ? p->path : "-");
    fprintf(f, "  user_agents.block (%zu): %s\n", p->ua_block.n, yes(glob_any(&p->ua_block, ua)));
    if (p->ua_allow.n)
        fprintf(f, "  user_agents.allow (%zu): %s\n", p->ua_allow.n,
                yes(glob_any(&p->ua_allow, ua)));
    else
        fputs("  user_agents.allow: empty (every app not blocked)\n", f);
    const char *id = req->device_id ? req->device_id : "";
    fprintf(f, "  devices.block (%zu): %s\n", p->dev_block.n, yes(*id && id_in(&p->dev_block, id)));
    fprintf(f, "  devices.allow (%zu): %s\n", p->dev_allow.n, yes(*id && id_in(&p->dev_allow, id)));
    bool admin = st && !st->stale && st->state != POL_DEV_UNKNOWN && st->source == POL_SRC_ADMIN;
    bool first = true;
    for (size_t i = 0; i < p->n_rules; i++) {
        bool hit = rule_match(&p->rules[i], req);
        explain_rule(f, &p->rules[i], i, hit,
                     !hit           ? ""
                     : admin        ? " (skipped: an admin's override decides this device)"
                     : first && hit ? " (first match)"
                                    : " (a rule above matched first)",
                     req->in_groups != NULL);
        first = first && !hit;
    }
    if (!p->n_rules)
        fputs("  device_rules: none\n", f);
    static const char *const unv[] = {"block", "allow_unbound", "allow_cert_bound"};
    fprintf(f, "  identity: %s; identity.unverifiable: %s%s%s\n",
            req->ident == POL_ID_VERIFIED       ? "verified"
            : req->ident == POL_ID_HANDSHAKE    ? "NTLM handshake leg"
            : req->ident == POL_ID_UNVERIFIABLE ? "unverifiable credential"
                                                : "no credential",
            unv[p->identity.unverifiable], req->cert_user ? "; certificate names " : "",
            req->cert_user ? req->cert_user : "");
    if (!st || st->state == POL_DEV_UNKNOWN)
        fprintf(f, "  state: unknown device%s; unknown_devices: %s\n",
                st && st->stale ? " (state store stale)" : "", pol_action_name(p->unknown_devices));
    else
        fprintf(f, "  state: %s, reason %s (%s), bound to %s%s\n", kind_name(st->state),
                st->reason ? st->reason : "-", src_name(st->source),
                st->user && *st->user ? st->user : "any user",
                st->stale ? "; STALE (no contact with Redis for max_stale)" : "");
    struct pol_decision d;
    pol_decide(p, req, st, now_ms, &d);
    fprintf(f, "  policy decision: %s (%s)\n", pol_action_name(d.action), d.reason);
}

/* ---- Loading --------------------------------------------------------------- */

struct load_state {
    int rules_seen; /* numbers rules as they are checked, 1-based */
};

static int nonempty_list_check(const struct yt_strv *v, const struct yt_node *list,
                               const char *what, bool is_id, struct yt_ctx *ctx)
{
    for (size_t i = 0; i < v->n; i++) {
        const struct yt_node *at = list && list->type == YT_SEQ ? list->items[i] : list;
        size_t len = strlen(v->v[i]);
        if (len == 0)
            return yt_err(ctx, at, "%s: empty entry", what);
        if (is_id && len > POL_ID_MAX)
            return yt_err(ctx, at, "%s: '%.20s...' is too long for a DeviceId", what, v->v[i]);
        for (const char *c = v->v[i]; is_id && *c; c++)
            if (!isgraph((unsigned char)*c))
                return yt_err(ctx, at, "%s: a DeviceId has no spaces or control characters", what);
    }
    return 0;
}

static int ua_check(void *obj, const struct yt_node *map, struct yt_ctx *ctx)
{
    struct pol_policy *p =
        (struct pol_policy *)((char *)obj - offsetof(struct pol_policy, ua_allow));
    int rc = nonempty_list_check(&p->ua_allow, yt_get(map, "allow"), "allow", false, ctx);
    return rc ? rc : nonempty_list_check(&p->ua_block, yt_get(map, "block"), "block", false, ctx);
}

static int dev_check(void *obj, const struct yt_node *map, struct yt_ctx *ctx)
{
    struct pol_policy *p =
        (struct pol_policy *)((char *)obj - offsetof(struct pol_policy, dev_allow));
    int rc = nonempty_list_check(&p->dev_allow, yt_get(map, "allow"), "allow", true, ctx);
    if (rc)
        return rc;
    if ((rc = nonempty_list_check(&p->dev_block, yt_get(map, "block"), "block", true, ctx)))
        return rc;
    if (p->dev_allow.n)
        qsort(p->dev_allow.v, p->dev_allow.n, sizeof(p->dev_allow.v[0]), id_cmp);
    if (p->dev_block.n)
        qsort(p->dev_block.v, p->dev_block.n, sizeof(p->dev_block.v[0]), id_cmp);
    for (size_t i = 0; i < p->dev_allow.n; i++)
        if (id_in(&p->dev_block, p->dev_allow.v[i]))
            return yt_err(ctx, map, "DeviceId '%s' is on both the allow and the block list",
                          p->dev_allow.v[i]);
    return 0;
}

static int match_check(void *obj, const struct yt_node *map, struct yt_ctx *ctx)
{
    struct pol_rule *r = obj;
    if (!map)
        return 0;
    if (!r->device_type && !r->device_model && !r->device_os && !r->user_agent && !r->user &&
        !r->groups.n)
        return yt_err(ctx, map,
                      "match: give at least one of device_type, device_model, device_os, "
                      "user_agent, user, groups");
    const struct yt_node *g = yt_get(map, "groups");
    if (g) {
        int rc = nonempty_list_check(&r->groups, g, "groups", false, ctx);
        if (rc)
            return rc;
        if (!r->groups.n)
            return yt_err(ctx, g, "groups: name at least one directory group");
        r->groups_line = g->line;
        r->groups_col = g->col;
    }
    const char *const *f[] = {&r->device_type, &r->device_model, &r->device_os, &r->user_agent,
                              &r->user};
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
        if (*f[i] && !**f[i])
            return yt_err(ctx, map,
                          "match: an empty pattern matches only a missing value; "
                          "use \"*\" for anything");
    return 0;
}

static int rule_check(void *obj, const struct yt_node *map, struct yt_ctx *ctx)
{
    struct pol_rule *r = obj;
    struct load_state *ls = ctx->user;
    char reason[POL_REASON_MAX];
    snprintf(reason, sizeof(reason), "rule:%d", ++ls->rules_seen);
    if (!(r->reason = yt_strdup(ctx->doc, reason)))
        return yt_err(ctx, map, "out of memory");
    r->line = map ? map->line : 0;
    return 0;
}

static int compliance_fn(const struct yt_node *n, void *field, struct yt_ctx *ctx)
{
    /* The core role owns these keys and their table (policy/compliance.h). */
    return pol_compliance_load(n, ctx, field);
}

static int provisioning_fn(const struct yt_node *n, void *field, struct yt_ctx *ctx)
{
    /* The proxy's server role owns these keys (policy/prov.h). */
    return prov_load(n, ctx, field);
}

#define PO(f) offsetof(struct pol_policy, f)
#define SUBOFF(st, outer, fld) (offsetof(st, fld) - offsetof(st, outer))

/* Indexes match enum pol_action. wipe is an admin action on one device,
 * never a default or a rule. */
static const char *const unknown_actions[] = {"allow", "block", "quarantine", NULL};
_Static_assert((int)POL_ALLOW == (int)COMPLIANCE_ALLOW && (int)POL_BLOCK == (int)COMPLIANCE_BLOCK &&
                   (int)POL_QUARANTINE == (int)COMPLIANCE_QUARANTINE,
               "unknown_devices is handed to pol_compliance_unify as a compliance state");

static const struct yt_key ua_keys[] = {
    {.name = "allow", .type = YK_STRLIST, .off = SUBOFF(struct pol_policy, ua_allow, ua_allow)},
    {.name = "block", .type = YK_STRLIST, .off = SUBOFF(struct pol_policy, ua_allow, ua_block)},
    {.check = ua_check},
};

static const struct yt_key dev_keys[] = {
    {.name = "allow", .type = YK_STRLIST, .off = SUBOFF(struct pol_policy, dev_allow, dev_allow)},
    {.name = "block", .type = YK_STRLIST, .off = SUBOFF(struct pol_policy, dev_allow, dev_block)},
    {.check = dev_check},
};

#define RU(f) offsetof(struct pol_rule, f)
static const struct yt_key match_keys[] = {
    {.name = "device_type", .type = YK_STR, .off = RU(device_type)},
    {.name = "device_model", .type = YK_STR, .off = RU(device_model)},
    {.name = "device_os", .type = YK_STR, .off = RU(device_os)},
    {.name = "user_agent", .type = YK_STR, .off = RU(user_agent)},
    {.name = "user", .type = YK_STR, .off = RU(user)},
    {.name = "groups", .type = YK_STRLIST, .off = RU(groups)},
    {.check = match_check},
};

static const struct yt_key rule_keys[] = {
    {.name = "match", .type = YK_MAP, .off = 0, .sub = match_keys, .flags = YK_REQUIRED},
    {.name = "action",
     .type = YK_ENUM,
     .off = RU(action),
     .enums = unknown_actions,
     .flags = YK_REQUIRED},
    {.check = rule_check},
};

static const struct yt_key ews_keys[] = {
    {.name = "allow_subscriptions",
     .type = YK_BOOL,
     .off = SUBOFF(struct pol_policy, ews, ews.allow_subscriptions),
     .def = "false"},
    {0},
};

static const char *const unverifiable_names[] = {"block", "allow_unbound", "allow_cert_bound",
                                                 NULL};

#define IDOFF(fld)                                                                                 \
    (offsetof(struct pol_policy, identity.fld) - offsetof(struct pol_policy, identity))
#define BEOFF(fld)                                                                                 \
    (offsetof(struct pol_policy, identity.bearer.fld) -                                            \
     offsetof(struct pol_policy, identity.bearer))

static int bearer_check(void *obj, const struct yt_node *map, struct yt_ctx *ctx)
{
    const struct pol_policy *p =
        (const struct pol_policy *)((char *)obj - offsetof(struct pol_policy, identity.bearer));
    if (!map)
        return 0;
    if (p->identity.bearer.jwks && p->identity.bearer.trust_unverified)
        return yt_err(ctx, map,
                      "bearer: trust_unverified has no meaning with jwks (tokens are checked); "
                      "remove one of them");
    if (!p->identity.bearer.jwks && (p->identity.bearer.issuer || p->identity.bearer.audience))
        return yt_err(ctx, map, "bearer: issuer and audience are checked only with jwks: FILE");
    return 0;
}

static const struct yt_key bearer_keys[] = {
    {.name = "jwks", .type = YK_PATH, .off = BEOFF(jwks)},
    {.name = "issuer", .type = YK_STR, .off = BEOFF(issuer)},
    {.name = "audience", .type = YK_STR, .off = BEOFF(audience)},
    {.name = "trust_unverified", .type = YK_BOOL, .off = BEOFF(trust_unverified), .def = "false"},
    {.name = "leeway", .type = YK_DUR, .off = BEOFF(leeway_ms), .def = "60s", .max = 3600000},
    {.check = bearer_check},
};

static const struct yt_key identity_keys[] = {
    {.name = "unverifiable",
     .type = YK_ENUM,
     .off = IDOFF(unverifiable),
     .def = "allow_unbound",
     .enums = unverifiable_names},
    {.name = "bearer", .type = YK_MAP, .off = IDOFF(bearer), .sub = bearer_keys},
    {0},
};

static const struct yt_key policy_keys[] = {
    {.name = "unknown_devices",
     .type = YK_ENUM,
     .off = PO(unknown_devices),
     .def = "allow",
     .enums = unknown_actions},
    {.name = "user_agents", .type = YK_MAP, .off = PO(ua_allow), .sub = ua_keys},
    {.name = "devices", .type = YK_MAP, .off = PO(dev_allow), .sub = dev_keys},
    {.name = "device_rules",
     .type = YK_SEQ,
     .off = PO(rules),
     .off2 = PO(n_rules),
     .elem_size = sizeof(struct pol_rule),
     .sub = rule_keys},
    {.name = "ews", .type = YK_MAP, .off = PO(ews), .sub = ews_keys},
    {.name = "identity", .type = YK_MAP, .off = PO(identity), .sub = identity_keys},
    {.name = "abuse", .type = YK_MAP, .off = PO(abuse), .sub = pol_abuse_keys},
    {.name = "compliance",
     .type = YK_FN,
     .off = PO(compliance),
     .fn = compliance_fn,
     .flags = YK_HIDDEN}, /* printed by pol_compliance_print */
    {.name = "provisioning",
     .type = YK_FN,
     .off = PO(provisioning),
     .fn = provisioning_fn,
     .flags = YK_HIDDEN},
    {0},
};

static int load_doc(struct yt_doc *doc, struct pol_policy **out, char *err, size_t errlen)
{
    struct pol_policy *p = yt_alloc(doc, sizeof(*p));
    if (!p) {
        yt_free(doc);
        return -ENOMEM;
    }
    p->doc = doc;
    p->path = yt_doc_name(doc);
    p->refs = 1;
    compliance_rules_init(&p->compliance);
    prov_conf_init(&p->provisioning);
    struct load_state ls = {0};
    /* Paths in the policy (identity.bearer.jwks) are relative to its file. */
    const char *slash = p->path ? strrchr(p->path, '/') : NULL;
    const char *dir = !p->path           ? NULL
                      : !slash           ? "."
                      : slash == p->path ? "/"
                                         : yt_strndup(doc, p->path, (size_t)(slash - p->path));
    struct yt_ctx ctx = {.doc = doc, .dir = dir, .err = err, .errlen = errlen, .user = &ls};
    const struct yt_node *root = yt_root(doc);
    int rc = 0;
    if (root && root->type == YT_SCALAR && root->null)
        root = NULL; /* an empty policy is all defaults */
    rc = yt_apply(policy_keys, root, p, &ctx);
    if (rc == 0)
        rc = pol_compliance_unify(&p->compliance, root ? yt_get(root, "compliance") : NULL,
                                  (enum compliance_state)p->unknown_devices,
                                  root ? yt_get(root, "unknown_devices") : NULL, &ctx);
    if (rc) {
        yt_free(doc);
        return rc;
    }
    *out = p;
    return 0;
}

int pol_load(const char *path, struct pol_policy **out, char *err, size_t errlen)
{
    struct yt_doc *doc;
    *out = NULL;
    int rc = yt_load_file(path, &doc, err, errlen);
    return rc ? rc : load_doc(doc, out, err, errlen);
}

int pol_load_buf(const char *name, const char *buf, size_t len, struct pol_policy **out, char *err,
                 size_t errlen)
{
    struct yt_doc *doc;
    *out = NULL;
    int rc = yt_load_buf(name, buf, len, &doc, err, errlen);
    return rc ? rc : load_doc(doc, out, err, errlen);
}

struct pol_policy *pol_ref(struct pol_policy *p)
{
    if (p)
        __atomic_fetch_add(&p->refs, 1, __ATOMIC_RELAXED);
    return p;
}

void pol_unref(struct pol_policy *p)
{
    /* acq_rel: every reader's last use happens before the free. */
    if (p && __atomic_fetch_sub(&p->refs, 1, __ATOMIC_ACQ_REL) == 1)
        yt_free(p->doc); /* p lives in the doc's arena */
}

/* What a device in each situation gets under this policy, as comments
 * (docs/access-model.md): the question an admin asks before a rollout. */
static void print_decisions(FILE *f, const struct pol_policy *p)
{
    const struct compliance_rules *c = &p->compliance;
    const char *unknown = pol_action_name(p->unknown_devices);
    bool checks = c->present && (c->require_passcode || c->require_encryption ||
                                 c->block_jailbroken || c->n_os_min || c->max_checkin_age_ms);
    char grace[32];
    units_fmt_duration(c->grace_period_ms, grace, sizeof(grace));
    fputs("# effective decisions (docs/access-model.md):\n", f);
    fprintf(f, "#   unknown device (not in Redis):          %s (unknown_devices)%s\n", unknown,
            p->n_rules ? "; device_rules first" : "");
    fprintf(f, "#   unmanaged device (never enrolled):      %s (unmanaged_devices%s)\n",
            compliance_state_name(c->unmanaged),
            c->unmanaged_set ? "" : ", follows unknown_devices");
    if (!checks)
        fputs("#   non-compliant device:                   none: no compliance check is set\n", f);
    else if (c->grace_period_ms > 0)
        fprintf(f,
                "#   non-compliant device:                   allow for grace_period %s, then "
                "block\n",
                grace);
    else
        fputs("#   non-compliant device:                   block at once (grace_period 0)\n", f);
    fputs("#   quarantined device:                     no mail (the notice on FolderSync and "
          "Sync, Status 129 or HTTP 403 elsewhere) until an admin allows or blocks it\n",
          f);
    fputs("#   admin allow / block of one device:      wins over device_rules until reset\n", f);
}

void pol_print(FILE *f, const struct pol_policy *p)
{
    fprintf(f, "# effective policy from %s (defaults included)\n", p->path);
    yt_print(f, policy_keys, p, 0);
    if (p->compliance.present) {
        fputs("compliance:\n", f);
        pol_compliance_print(f, &p->compliance, 2);
    } else {
        fprintf(f,
                "# compliance: not configured (no checks; unmanaged_devices follows "
                "unknown_devices: %s)\n",
                compliance_state_name(p->compliance.unmanaged));
    }
    if (p->provisioning.present) {
        fputs("provisioning:\n", f);
        prov_print(f, &p->provisioning, 2);
    } else {
        fputs("# provisioning: not configured (Exchange provisions phones)\n", f);
    }
    print_decisions(f, p);
}
