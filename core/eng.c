/*
 * core_eng: evaluation, storage and push of device states. See eng.h.
 */
#include "core/eng.h"
#include "core/metrics.h"

#include "common/log.h"

#include <stdlib.h>
#include <string.h>

/* Bulk evaluation commits every this many devices: bounded transactions,
 * and a crash loses at most one batch of work (redone at the next start). */
#define ENG_BATCH 1000
/* Bump when the evaluation itself changes meaning: a restart then
 * re-evaluates every device even with unchanged rules. */
#define ENG_LOGIC_VERSION 1
#define ENG_RULES_KEY "rules_fingerprint"
/* Due timers handled per query round. */
#define ENG_DUE_BATCH 256

static const char *const action_names[] = {"allow",        "block",      "quarantine", "wipe",
                                           "reset",        "delete",     "manage",     "unmanage",
                                           "wipe-account", "reprovision"};

int core_eas_version(const char *s)
{
    if (!s || *s < '0' || *s > '9')
        return 0;
    char *end;
    long major = strtol(s, &end, 10);
    if (*end != '.' || end[1] < '0' || end[1] > '9' || major > 99)
        return 0;
    long minor = strtol(end + 1, &end, 10);
    if (*end || minor > 9)
        return 0;
    return (int)(major * 10 + minor);
}

int core_action_parse(const char *s, enum core_act *out)
{
    for (size_t i = 0; s && i < sizeof(action_names) / sizeof(action_names[0]); i++)
        if (strcmp(s, action_names[i]) == 0) {
            *out = (enum core_act)i;
            return 0;
        }
    return -1;
}

const char *core_action_name(enum core_act a)
{
    if ((unsigned)a >= sizeof(action_names) / sizeof(action_names[0]))
        return NULL;
    return action_names[a];
}

void core_eng_init(struct core_eng *e, struct core_reg *reg, struct rstore_push *push,
                   const struct compliance_rules *rules)
{
    memset(e, 0, sizeof(*e));
    e->reg = reg;
    e->push = push;
    if (rules)
        e->rules = *rules;
    else
        compliance_rules_init(&e->rules);
}

void core_eng_free(struct core_eng *e)
{
    free(e->pend);
    e->pend = NULL;
    e->n_pend = e->cap_pend = 0;
}

static void push_now(struct core_eng *e, const struct core_device *d)
{
    if (!e->push || e->dirty)
        return; /* a resync will carry it */
    bool ok = core_push_device(e->push, d) == 0;
    core_metrics_push(ok);
    if (!ok) {
        e->dirty = true;
        e->push_failures++;
        eg_warn("core: could not push %s (state %s, version %lld): %s; will resync", d->device_id,
                compliance_state_name(d->state), (long long)d->version, rstore_push_error(e->push));
    }
}

static void push_delete_now(struct core_eng *e, const char *device_id, int64_t version)
{
    if (!e->push || e->dirty)
        return;
    if (core_push_delete(e->push, device_id, version) < 0) {
        e->dirty = true;
        e->push_failures++;
        eg_warn("core: could not remove %s from redis: %s; will resync", device_id,
                rstore_push_error(e->push));
    }
}

/* A change waiting for its transaction to commit. */
struct core_eng_pend {
    struct core_device d; /* state to write, or for a deletion the id and version */
    bool deleted;
};

static void pend_flush(struct core_eng *e)
{
    for (size_t i = 0; i < e->n_pend; i++) {
        if (e->pend[i].deleted)
            push_delete_now(e, e->pend[i].d.device_id, e->pend[i].d.version);
        else
            push_now(e, &e->pend[i].d);
    }
    e->n_pend = 0;
}

/* Push d now, or remember it until the open transaction commits. */
static void push_one(struct core_eng *e, const struct core_device *d, bool deleted)
{
    if (!e->push || e->dirty)
        return; /* a resync will carry it */
    if (e->n_pend == e->cap_pend) {
        size_t cap = e->cap_pend ? e->cap_pend * 2 : 16;
        struct core_eng_pend *p = realloc(e->pend, cap * sizeof(*p));
        if (!p) {
            e->dirty = true; /* cannot remember it: let a resync carry it */
            return;
        }
        e->pend = p;
        e->cap_pend = cap;
    }
    e->pend[e->n_pend].d = *d;
    e->pend[e->n_pend++].deleted = deleted;
    if (e->depth == 0)
        pend_flush(e);
}

int core_eng_begin(struct core_eng *e)
{
    if (e->depth == (int)(sizeof(e->marks) / sizeof(e->marks[0])))
        return CORE_REG_EINVAL;
    int rc = core_reg_begin(e->reg);
    if (rc == 0)
        e->marks[e->depth++] = e->n_pend;
    return rc;
}

int core_eng_commit(struct core_eng *e)
{
    if (e->depth == 0)
        return CORE_REG_EINVAL;
    int rc = core_reg_commit(e->reg);
    e->depth--;
    if (rc < 0) {
        /* Nothing was committed: drop what waited on it. */
        e->n_pend = e->marks[e->depth];
        return rc;
    }
    if (e->depth == 0)
        pend_flush(e);
    return 0;
}

void core_eng_rollback(struct core_eng *e)
{
    if (e->depth == 0)
        return;
    core_reg_rollback(e->reg);
    e->n_pend = e->marks[--e->depth];
}

/* End a transaction begun by the caller: commit on success, else roll back. */
static int finish(struct core_eng *e, int rc)
{
    if (rc < 0) {
        core_eng_rollback(e);
        return rc;
    }
    return core_eng_commit(e);
}

/* Evaluate d (as read from the registry), store, push; d is updated in place. */
static int eval_dev(struct core_eng *e, struct core_device *d, int64_t now_ms)
{
    uint32_t rank = 0;
    if (e->rules.max_devices_per_user > 0 && d->user[0]) {
        int rc = core_reg_user_rank(e->reg, d->device_id, &rank);
        if (rc < 0)
            return rc;
    }
    struct compliance_facts f = {
        .managed = d->managed,
        .passcode = d->passcode,
        .encrypted = d->encrypted,
        .jailbroken = d->jailbroken,
        .os = d->os,
        .os_version = d->os_version,
        .last_checkin_ms = d->last_checkin_ms,
        .non_compliant_since_ms = d->non_compliant_since_ms,
        .user_rank = rank,
    };
    struct compliance_result res;
    compliance_evaluate(&e->rules, &f, d->override, now_ms, &res);
    bool changed = false;
    int64_t version = 0;
    int rc =
        core_reg_set_state(e->reg, d->device_id, res.state, res.reason, res.non_compliant_since_ms,
                           res.next_eval_ms, now_ms, &changed, &version);
    if (rc < 0)
        return rc;
    e->evaluations++;
    core_metrics_evaluation(res.state);
    d->non_compliant_since_ms = res.non_compliant_since_ms;
    d->next_eval_ms = res.next_eval_ms;
    if (!changed)
        return 0;
    e->changes++;
    eg_log(e->bulk ? EG_LOG_DEBUG : EG_LOG_INFO,
           "core: device %s user '%s': %s -> %s (%s%s), version %lld", d->device_id, d->user,
           compliance_state_name(d->state), compliance_state_name(res.state), res.reason,
           res.in_grace ? ", in grace" : "", (long long)version);
    d->state = res.state;
    snprintf(d->reason, sizeof(d->reason), "%s", res.reason);
    d->version = version;
    d->updated_ms = now_ms;
    push_one(e, d, false);
    return 0;
}

int core_eng_evaluate(struct core_eng *e, const char *device_id, int64_t now_ms,
                      struct core_device *out)
{
    struct core_device d;
    int rc = core_reg_device_get(e->reg, device_id, &d);
    if (rc < 0)
        return rc;
    rc = eval_dev(e, &d, now_ms);
    if (rc == 0 && out)
        *out = d;
    return rc;
}

struct bulk {
    struct core_eng *e;
    int64_t now_ms;
    size_t n, in_tx;
};

static int bulk_one(const struct core_device *dev, void *arg)
{
    struct bulk *b = arg;
    struct core_device d = *dev;
    int rc = eval_dev(b->e, &d, b->now_ms);
    if (rc < 0)
        return rc;
    b->n++;
    if (++b->in_tx >= ENG_BATCH) {
        b->in_tx = 0;
        if ((rc = core_eng_commit(b->e)) < 0 || (rc = core_eng_begin(b->e)) < 0)
            return rc;
    }
    return 0;
}

/* FNV-1a over the rules (their padding is zeroed by compliance_rules_init
 * and the loader), mixed with the engine's logic version; 63 bits. */
static int64_t rules_fingerprint(const struct compliance_rules *r)
{
    uint64_t h = 1469598103934665603ULL;
    const unsigned char *p = (const unsigned char *)r;
    for (size_t i = 0; i < sizeof(*r); i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    h = (h ^ ENG_LOGIC_VERSION) * 1099511628211ULL;
    return (int64_t)(h >> 1);
}

bool core_eng_rules_current(struct core_eng *e)
{
    int64_t v;
    return core_reg_meta_get(e->reg, ENG_RULES_KEY, &v) == 0 && v == rules_fingerprint(&e->rules);
}

int core_eng_evaluate_all(struct core_eng *e, int64_t now_ms, size_t *n)
{
    struct bulk b = {.e = e, .now_ms = now_ms};
    uint64_t changes = e->changes;
    int rc = core_eng_begin(e);
    if (rc < 0)
        return rc;
    e->bulk = true;
    rc = core_reg_device_foreach(e->reg, bulk_one, &b);
    e->bulk = false;
    if (rc == 0)
        rc = core_reg_meta_set(e->reg, ENG_RULES_KEY, rules_fingerprint(&e->rules));
    if (rc < 0)
        core_eng_rollback(e);
    else
        rc = core_eng_commit(e);
    eg_info("core: evaluated %zu devices, %llu changed state", b.n,
            (unsigned long long)(e->changes - changes));
    if (n)
        *n = b.n;
    return rc;
}

int core_eng_tick(struct core_eng *e, int64_t now_ms, size_t *n)
{
    size_t total = 0;
    char ids[ENG_DUE_BATCH][CORE_DEVID_MAX + 1];
    /* Each round re-arms or clears the timers it handled, so the next round
     * sees new ones; the bound stops a pathological loop from hogging the core. */
    for (int round = 0; round < 64; round++) {
        size_t k;
        int rc = core_reg_due(e->reg, now_ms, ids, ENG_DUE_BATCH, &k);
        if (rc < 0)
            return rc;
        for (size_t i = 0; i < k; i++) {
            rc = core_eng_evaluate(e, ids[i], now_ms, NULL);
            if (rc < 0 && rc != CORE_REG_ENOTFOUND)
                return rc;
        }
        total += k;
        if (k < ENG_DUE_BATCH)
            break;
    }
    if (n)
        *n = total;
    return 0;
}

/* The facts and their evaluation commit together: one transaction, and no
 * window in which the registry holds new facts under an old state. */
int core_eng_seen(struct core_eng *e, const char *device_id, const struct core_devinfo *info,
                  int64_t now_ms, bool *created)
{
    int rc = core_eng_begin(e);
    if (rc < 0)
        return rc;
    rc = core_reg_device_seen(e->reg, device_id, info, now_ms, created);
    if (rc == 0)
        rc = core_eng_evaluate(e, device_id, now_ms, NULL);
    return finish(e, rc);
}

int core_eng_checkin(struct core_eng *e, const char *device_id, const struct core_checkin *c,
                     int64_t now_ms)
{
    int rc = core_eng_begin(e);
    if (rc < 0)
        return rc;
    rc = core_reg_checkin(e->reg, device_id, c, now_ms);
    if (rc == 0)
        rc = core_eng_evaluate(e, device_id, now_ms, NULL);
    if (rc == 0)
        core_metrics_checkin();
    return finish(e, rc);
}

/* After a delete, the user's later devices may move up in rank. */
static int reevaluate_user(struct core_eng *e, const char *user, int64_t now_ms)
{
    if (!user[0] || e->rules.max_devices_per_user == 0)
        return 0;
    struct core_dev_filter f;
    core_dev_filter_init(&f);
    f.user = user;
    struct core_device page[32];
    char after[CORE_DEVID_MAX + 1] = "";
    for (int guard = 0; guard < 100000; guard++) {
        size_t n;
        f.after = after[0] ? after : NULL;
        int rc = core_reg_device_list(e->reg, &f, page, 32, &n);
        if (rc < 0)
            return rc;
        for (size_t i = 0; i < n; i++)
            if ((rc = eval_dev(e, &page[i], now_ms)) < 0)
                return rc;
        if (n < 32)
            break;
        memcpy(after, page[n - 1].device_id, sizeof(after));
    }
    return 0;
}

static int do_delete(struct core_eng *e, const char *id, const char *actor, const char *address,
                     const char *note, int64_t now_ms)
{
    struct core_device d;
    int rc = core_reg_device_get(e->reg, id, &d);
    if (rc < 0)
        return rc;
    if ((rc = core_eng_begin(e)) < 0)
        return rc;
    if ((rc = core_reg_device_delete(e->reg, id)) == 0 &&
        (rc = core_reg_action_add(e->reg, id, "delete", actor, note, now_ms)) == 0 &&
        (rc = core_reg_audit_add(e->reg, actor, address, "device.delete", d.device_id, note,
                                 now_ms)) == 0 &&
        (rc = core_reg_next_version(e->reg, &d.version)) == 0) {
        push_one(e, &d, true);
        rc = reevaluate_user(e, d.user, now_ms);
    }
    if ((rc = finish(e, rc)) == 0)
        eg_info("core: device %s deleted by %s", d.device_id, actor);
    return rc;
}

int core_eng_action(struct core_eng *e, const char *device_id, enum core_act a, const char *user,
                    const char *actor, const char *address, const char *note, int64_t now_ms)
{
    char id[CORE_DEVID_MAX + 1];
    const char *name = core_action_name(a);
    if (!name || !actor || core_reg_devid(device_id, id) < 0)
        return CORE_REG_EINVAL;
    if (a == CORE_ACT_DELETE)
        return do_delete(e, id, actor, address, note, now_ms);
    int rc = core_eng_begin(e);
    if (rc < 0)
        return rc;
    struct core_device before = {0};
    switch (a) {
    case CORE_ACT_ALLOW:
        rc = core_reg_set_override(e->reg, id, COMPLIANCE_OVR_ALLOW);
        break;
    case CORE_ACT_BLOCK:
        rc = core_reg_set_override(e->reg, id, COMPLIANCE_OVR_BLOCK);
        break;
    case CORE_ACT_QUARANTINE:
        rc = core_reg_set_override(e->reg, id, COMPLIANCE_OVR_QUARANTINE);
        break;
    case CORE_ACT_WIPE:
    case CORE_ACT_WIPE_ACCOUNT:
        rc = core_reg_device_get(e->reg, id, &before);
        if (rc == 0 && a == CORE_ACT_WIPE_ACCOUNT &&
            core_eas_version(before.eas_version) < CORE_EAS_ACCOUNT_WIPE)
            rc = CORE_REG_EPROTO;
        if (rc == 0)
            rc = core_reg_set_override(e->reg, id, COMPLIANCE_OVR_WIPE);
        if (rc == 0)
            rc = core_reg_set_wipe_kind(e->reg, id, a == CORE_ACT_WIPE_ACCOUNT);
        break;
    case CORE_ACT_REPROVISION:
        rc = core_reg_device_get(e->reg, id, &before);
        break;
    case CORE_ACT_RESET:
        rc = core_reg_set_override(e->reg, id, COMPLIANCE_OVR_NONE);
        break;
    case CORE_ACT_MANAGE:
        rc = core_reg_set_managed(e->reg, id, true, user);
        break;
    case CORE_ACT_UNMANAGE:
        rc = core_reg_set_managed(e->reg, id, false, NULL);
        break;
    case CORE_ACT_DELETE:
        break;
    }
    char what[32];
    snprintf(what, sizeof(what), "device.%s", name);
    if (rc == 0)
        rc = core_reg_action_add(e->reg, id, name, actor, note, now_ms);
    if (rc == 0)
        rc = core_reg_audit_add(e->reg, actor, address, what, id, note, now_ms);
    struct core_device d;
    if (rc == 0)
        rc = core_eng_evaluate(e, id, now_ms, &d);
    /* Enrolling or releasing a device changes who holds the user's slots. */
    if (rc == 0 && (a == CORE_ACT_MANAGE || a == CORE_ACT_UNMANAGE))
        rc = reevaluate_user(e, d.user, now_ms);
    /* A new wipe kind or epoch with an unchanged state still has to reach
     * the proxies: move the version so the push is written and announced. */
    bool moved = rc == 0 && d.version != before.version;
    if (rc == 0 && (a == CORE_ACT_REPROVISION ||
                    (!moved && (a == CORE_ACT_WIPE || a == CORE_ACT_WIPE_ACCOUNT)))) {
        rc = core_reg_touch(e->reg, id, a == CORE_ACT_REPROVISION, now_ms, NULL);
        if (rc == 0)
            rc = core_reg_device_get(e->reg, id, &d);
        if (rc == 0)
            push_one(e, &d, false);
    }
    return finish(e, rc);
}

int core_eng_push(struct core_eng *e, const char *device_id)
{
    struct core_device d;
    int rc = core_reg_device_get(e->reg, device_id, &d);
    if (rc == 0)
        push_one(e, &d, false);
    return rc;
}

int core_eng_resync(struct core_eng *e, struct rstore_resync_stats *st)
{
    if (!e->push)
        return CORE_PUSH_EREDIS;
    int rc = core_push_resync(e->push, e->reg, st);
    if (rc == 0)
        e->dirty = false;
    core_metrics_resync(rc == 0 && st ? st->elapsed_ms : 0, rc == 0);
    return rc;
}
