/*
 * core_eng: evaluation, storage and push of device states. See eng.h.
 *
 * The buffered times are an open-addressing hash table keyed by DeviceId
 * (the newest last-seen and last-check-in per device). A flush takes the
 * whole table over (the engine starts an empty one), sorts its entries by
 * DeviceId and writes them a slice per call, in the order of device_seen's
 * primary key, so consecutive updates land on the same narrow pages. While
 * a flush runs, a device's newest times are the larger of the two tables'.
 */
#include "core/eng.h"
#include "core/dir.h"
#include "core/metrics.h"

#include "common/log.h"
#include "policy/pol.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Bulk evaluation commits every this many devices: bounded transactions,
 * and a crash loses at most one batch of work (redone at the next start). */
#define ENG_BATCH 1000
/* Bump when the evaluation itself changes meaning: a restart then
 * re-evaluates every device even with unchanged rules. */
#define ENG_LOGIC_VERSION 2
#define ENG_RULES_KEY "rules_fingerprint"
/* Due timers handled per query round. */
#define ENG_DUE_BATCH 256
/* A due device whose group rules wait for the directory looks again after this. */
#define ENG_GROUPS_WAIT_MS 5000
/* A flush starts early when this many devices' times are buffered. */
#define ENG_SEEN_FLUSH_AT 500000
#define ENG_SEEN_MIN_CAP 1024

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

/* ---- buffered times ------------------------------------------------------ */

struct seen_ent {
    char id[CORE_DEVID_MAX + 1]; /* "" = free slot */
    int64_t seen, checkin;
};

struct seen_tab {
    struct seen_ent *e;
    size_t cap, n; /* cap a power of two, or 0 */
};

struct core_eng_seen {
    struct seen_tab live, flushing;
    struct seen_ent **order; /* flushing's entries sorted by DeviceId */
    size_t n_order, next;    /* the flush writes order[next..n_order) */
    int64_t last_flush_ms;
};

static uint64_t id_hash(const char *id)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 1099511628211ULL;
    return h;
}

static struct seen_ent *tab_find(const struct seen_tab *t, const char *id, bool *found)
{
    *found = false;
    if (!t->cap)
        return NULL;
    size_t i = (size_t)id_hash(id) & (t->cap - 1);
    for (;; i = (i + 1) & (t->cap - 1)) {
        struct seen_ent *x = &t->e[i];
        if (!x->id[0])
            return x;
        if (strcmp(x->id, id) == 0) {
            *found = true;
            return x;
        }
    }
}

static int tab_grow(struct seen_tab *t)
{
    size_t cap = t->cap ? t->cap * 2 : ENG_SEEN_MIN_CAP;
    struct seen_ent *ne = calloc(cap, sizeof(*ne));
    if (!ne)
        return -1;
    struct seen_tab nt = {.e = ne, .cap = cap, .n = 0};
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->e[i].id[0])
            continue;
        bool found;
        *tab_find(&nt, t->e[i].id, &found) = t->e[i];
        nt.n++;
    }
    free(t->e);
    *t = nt;
    return 0;
}

/* The newest times of id, as the engine knows them. */
static void seen_overlay(const struct core_eng *e, struct core_device *d)
{
    if (!e->seen)
        return;
    const struct seen_tab *tabs[2] = {&e->seen->live, &e->seen->flushing};
    for (int k = 0; k < 2; k++) {
        bool found;
        struct seen_ent *x = tab_find(tabs[k], d->device_id, &found);
        if (!found)
            continue;
        if (x->seen > d->last_seen_ms)
            d->last_seen_ms = x->seen;
        if (x->checkin > d->last_checkin_ms)
            d->last_checkin_ms = x->checkin;
    }
}

/* A contact at these times: buffered, or written at once without seen_defer_ms. */
static int seen_note(struct core_eng *e, const char *id, int64_t seen_ms, int64_t checkin_ms)
{
    if (e->seen_defer_ms <= 0)
        return core_reg_seen_times(e->reg, id, seen_ms, checkin_ms);
    if (!e->seen && !(e->seen = calloc(1, sizeof(*e->seen))))
        return core_reg_seen_times(e->reg, id, seen_ms, checkin_ms);
    struct seen_tab *t = &e->seen->live;
    if ((t->n + 1) * 2 > t->cap && tab_grow(t) < 0)
        return core_reg_seen_times(e->reg, id, seen_ms, checkin_ms);
    bool found;
    struct seen_ent *x = tab_find(t, id, &found);
    if (!found) {
        snprintf(x->id, sizeof(x->id), "%s", id);
        x->seen = x->checkin = 0;
        t->n++;
    }
    if (seen_ms > x->seen)
        x->seen = seen_ms;
    if (checkin_ms > x->checkin)
        x->checkin = checkin_ms;
    e->stats.seen_deferred++;
    return 0;
}

/* A deleted device's buffered times must not outlive it. */
static void seen_forget(struct core_eng *e, const char *id)
{
    if (!e->seen)
        return;
    struct seen_tab *tabs[2] = {&e->seen->live, &e->seen->flushing};
    for (int k = 0; k < 2; k++) {
        bool found;
        struct seen_ent *x = tab_find(tabs[k], id, &found);
        if (found)
            x->seen = x->checkin = 0; /* written as "no news": MAX() keeps what is stored */
    }
}

static int ent_cmp(const void *a, const void *b)
{
    return strcmp((*(struct seen_ent *const *)a)->id, (*(struct seen_ent *const *)b)->id);
}

static int seen_flush_start(struct core_eng_seen *s)
{
    struct seen_ent **order = malloc((s->live.n ? s->live.n : 1) * sizeof(*order));
    if (!order)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < s->live.cap; i++)
        if (s->live.e[i].id[0])
            order[k++] = &s->live.e[i];
    qsort(order, k, sizeof(*order), ent_cmp);
    s->flushing = s->live;
    s->live = (struct seen_tab){0};
    s->order = order;
    s->n_order = k;
    s->next = 0;
    return 0;
}

static void seen_flush_end(struct core_eng_seen *s)
{
    free(s->order);
    free(s->flushing.e);
    s->order = NULL;
    s->flushing = (struct seen_tab){0};
    s->n_order = s->next = 0;
}

int core_eng_seen_flush(struct core_eng *e, int64_t now_ms, bool force, size_t max, size_t *pending)
{
    struct core_eng_seen *s = e->seen;
    if (pending)
        *pending = 0;
    if (!s)
        return 0;
    if (!s->order) {
        /* The first look starts the period: a buffer is not due at once
         * just because no flush ever ran. */
        if (s->last_flush_ms == 0)
            s->last_flush_ms = now_ms;
        bool due = force || now_ms - s->last_flush_ms >= e->seen_defer_ms ||
                   s->live.n >= ENG_SEEN_FLUSH_AT;
        if (!due || s->live.n == 0)
            return 0;
        if (seen_flush_start(s) < 0)
            return CORE_REG_ENOMEM;
        s->last_flush_ms = now_ms;
    }
    size_t end = s->next + max < s->n_order ? s->next + max : s->n_order;
    for (; s->next < end; s->next++) {
        const struct seen_ent *x = s->order[s->next];
        if (!x->seen && !x->checkin)
            continue;
        int rc = core_reg_seen_times(e->reg, x->id, x->seen, x->checkin);
        if (rc < 0)
            return rc; /* the slice is retried: writing the same times again is harmless */
        e->stats.seen_written++;
    }
    if (pending)
        *pending = s->n_order - s->next;
    if (s->next == s->n_order)
        seen_flush_end(s);
    return 0;
}

int core_eng_seen_flush_all(struct core_eng *e, int64_t now_ms)
{
    for (int round = 0; round < 2; round++) { /* a flush under way, then the rest */
        size_t pending = 0;
        int rc = core_eng_seen_flush(e, now_ms, true, SIZE_MAX, &pending);
        if (rc < 0)
            return rc;
    }
    return 0;
}

size_t core_eng_seen_buffered(const struct core_eng *e)
{
    if (!e->seen)
        return 0;
    return e->seen->live.n + (e->seen->n_order - e->seen->next);
}

static void seen_free(struct core_eng_seen *s)
{
    if (!s)
        return;
    free(s->live.e);
    seen_flush_end(s);
    free(s);
}

/* The device as the engine knows it: the registry's row, the newest times. */
static int eng_get(struct core_eng *e, const char *device_id, struct core_device *d)
{
    int rc = core_reg_device_get(e->reg, device_id, d);
    if (rc == 0)
        seen_overlay(e, d);
    return rc;
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
    seen_free(e->seen);
    e->seen = NULL;
}

static void unpushed(struct core_eng *e, const char *device_id, bool deleted)
{
    if (e->on_unpushed)
        e->on_unpushed(e->unpushed_arg, device_id, deleted);
}

static void push_now(struct core_eng *e, const struct core_device *d)
{
    if (!e->push || e->dirty) {
        unpushed(e, d->device_id, false); /* a resync will carry it */
        return;
    }
    bool ok = core_push_device(e->push, d) == 0;
    core_metrics_push(ok);
    if (!ok) {
        unpushed(e, d->device_id, false);
        e->dirty = true;
        e->push_failures++;
        eg_warn("core: could not push %s (state %s, version %lld): %s; will resync", d->device_id,
                compliance_state_name(d->state), (long long)d->version, rstore_push_error(e->push));
    }
}

static void push_delete_now(struct core_eng *e, const char *device_id, int64_t version)
{
    if (!e->push || e->dirty) {
        unpushed(e, device_id, true);
        return;
    }
    if (core_push_delete(e->push, device_id, version) < 0) {
        unpushed(e, device_id, true);
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

/* Push pend[from, to) (writes, no deletions) in one round trip. */
static void push_run(struct core_eng *e, size_t from, size_t to)
{
    if (to - from == 1 || !e->push || e->dirty) {
        for (size_t i = from; i < to; i++)
            push_now(e, &e->pend[i].d);
        return;
    }
    const struct core_device *ds[CORE_PUSH_MANY] = {0};
    for (size_t i = from; i < to; i++)
        ds[i - from] = &e->pend[i].d;
    bool ok = core_push_devices(e->push, ds, to - from) == 0;
    for (size_t i = from; i < to; i++) {
        core_metrics_push(ok);
        if (!ok)
            unpushed(e, e->pend[i].d.device_id, false);
    }
    if (!ok) {
        e->dirty = true;
        e->push_failures++;
        eg_warn("core: could not push %zu devices (%s first): %s; will resync", to - from,
                e->pend[from].d.device_id, rstore_push_error(e->push));
    }
}

/* The changes of a committed transaction, in order: runs of writes go
 * pipelined (an import's batch, a tick's evaluations: one round trip per
 * CORE_PUSH_MANY devices instead of one each). */
static void pend_flush(struct core_eng *e)
{
    size_t i = 0;
    while (i < e->n_pend) {
        if (e->pend[i].deleted) {
            push_delete_now(e, e->pend[i].d.device_id, e->pend[i].d.version);
            i++;
            continue;
        }
        size_t j = i;
        while (j < e->n_pend && !e->pend[j].deleted && j - i < CORE_PUSH_MANY)
            j++;
        push_run(e, i, j);
        i = j;
    }
    e->n_pend = 0;
}

/* Push d now, or remember it until the open transaction commits. */
static void push_one(struct core_eng *e, const struct core_device *d, bool deleted)
{
    if ((!e->push || e->dirty) && !e->on_unpushed)
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

/* The audit row of a state change the rules made (eng.h says which get one). */
static int audit_change(struct core_eng *e, const struct core_device *d,
                        const struct compliance_result *res, int64_t now_ms)
{
    if (d->version == 0 || (e->action_id && strcmp(e->action_id, d->device_id) == 0))
        return 0;
    char detail[200];
    snprintf(detail, sizeof(detail), "%s: %s (%s) -> %s (%s%s)", e->cause ? e->cause : "rules",
             compliance_state_name(d->state), d->reason, compliance_state_name(res->state),
             res->reason, res->in_grace ? ", in grace" : "");
    e->stats.audit_rows++;
    return core_reg_audit_add(e->reg, "core", "", "device.state", d->device_id, detail, now_ms);
}

/*
 * Whether an evaluation needs a write. A changed state or reason does, and
 * a changed non-compliant mark. A timer moved later does not while the
 * stored one is still ahead: it wakes the device early, which re-evaluates
 * it and stores the later time then (a check-in that only moves a
 * check-in-age timer writes nothing).
 */
static bool needs_store(const struct core_device *d, const struct compliance_result *res,
                        int64_t now_ms)
{
    if (res->state != d->state || strcmp(res->reason, d->reason) != 0 ||
        res->non_compliant_since_ms != d->non_compliant_since_ms)
        return true;
    if (res->next_eval_ms == d->next_eval_ms)
        return false;
    bool stored_ahead = d->next_eval_ms > now_ms;
    bool later = res->next_eval_ms == 0 || res->next_eval_ms > d->next_eval_ms;
    return !(stored_ahead && later);
}

/* A rule's groups, answered by the directory table (core/dir_groups.c);
 * a PENDING answer is remembered so the caller can wait for it. */
struct grp_arg {
    const char *user;
    int64_t now_ms;
    bool pending;
};

static int in_groups(const struct yt_strv *groups, void *arg)
{
    struct grp_arg *g = arg;
    int r = core_dirgrp_member(g->user, groups, g->now_ms);
    g->pending |= r == POL_MEMBER_PENDING;
    return r;
}

/* The first of the policy's device_rules that matches d as recorded, as a
 * proxy would match a request carrying these facts (device_os is matched
 * against "<family> <version>", the OS the core split the report into). */
bool core_eng_rule_facts(const struct compliance_rules *rules, const struct core_device *d,
                         int64_t now_ms, struct compliance_facts *f)
{
    const struct pol_policy *p = rules->devrules;
    if (!p)
        return false;
    char os[2 * CORE_SHORT_MAX + 2];
    snprintf(os, sizeof(os), "%s%s%s", d->os, d->os[0] && d->os_version[0] ? " " : "",
             d->os_version);
    struct grp_arg g = {.user = d->user, .now_ms = now_ms};
    struct pol_request rq = {
        .ident = POL_ID_VERIFIED,
        .user = d->user[0] ? d->user : NULL,
        .device_id = d->device_id,
        .device_type = d->device_type[0] ? d->device_type : NULL,
        .device_model = d->model[0] ? d->model : NULL,
        .device_os = os[0] ? os : NULL,
        .user_agent = d->user_agent[0] ? d->user_agent : NULL,
        .command = -1,
        .in_groups = in_groups,
        .groups_arg = &g,
    };
    int i = pol_rule_first(p, &rq);
    if (i < 0)
        return g.pending;
    static const enum compliance_rule_hit hit[] = {
        [POL_ALLOW] = COMPLIANCE_RULE_ALLOW,
        [POL_BLOCK] = COMPLIANCE_RULE_BLOCK,
        [POL_QUARANTINE] = COMPLIANCE_RULE_QUARANTINE,
        [POL_WIPE] = COMPLIANCE_RULE_NONE,
    };
    f->rule = hit[p->rules[i].action];
    f->rule_reason = p->rules[i].reason;
    return g.pending;
}

/*
 * A device whose rules wait for the directory's first answer about its
 * user keeps what it has (a new one stays unknown to the proxies) and is
 * evaluated again when the answer comes (core/dir_groups.c). A due timer
 * is moved on a little, so the tick does not meet it again at once.
 */
static int eval_wait(struct core_eng *e, struct core_device *d, int64_t now_ms)
{
    if (d->next_eval_ms == 0 || d->next_eval_ms > now_ms)
        return 0;
    bool changed = false;
    int64_t version = d->version;
    int rc = core_reg_state_store(e->reg, d, d->state, d->reason, d->non_compliant_since_ms,
                                  now_ms + ENG_GROUPS_WAIT_MS, now_ms, &changed, &version);
    if (rc == 0)
        d->next_eval_ms = now_ms + ENG_GROUPS_WAIT_MS;
    return rc;
}

/*
 * The rules' answer for d into *res: 1, or 0 when it must wait for the
 * directory's first answer about d's user (eval_wait), or a registry
 * error. The rank among the user's devices is read from the registry, so
 * d must be stored when the rules limit devices per user.
 */
static int eval_decide(struct core_eng *e, const struct core_device *d, int64_t now_ms,
                       struct compliance_result *res)
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
        .eas_os = d->eas_os,
        .eas_os_version = d->eas_os_version,
        .last_checkin_ms = d->last_checkin_ms,
        .non_compliant_since_ms = d->non_compliant_since_ms,
        .user_rank = rank,
        .autoblock_until_ms = d->autoblock_until_ms,
        .autoblock_reason = d->autoblock_reason,
    };
    if (core_eng_rule_facts(&e->rules, d, now_ms, &f))
        return 0;
    if (e->rules.groups.n && d->managed && d->user[0]) {
        /* The checks are for some groups only: exempt only on the
         * directory's word that the user is in none of them. */
        int m = core_dirgrp_member(d->user, &e->rules.groups, now_ms);
        if (m == POL_MEMBER_PENDING)
            return 0;
        f.groups_exempt = m == POL_MEMBER_NO;
    }
    compliance_evaluate(&e->rules, &f, d->override, now_ms, res);
    e->evaluations++;
    e->stats.evaluations++;
    core_metrics_evaluation(res->state);
    return 1;
}

/* d moved to res (stored with version): count it, say it at debug, update d, push. */
static void eval_changed(struct core_eng *e, struct core_device *d,
                         const struct compliance_result *res, int64_t version, int64_t now_ms)
{
    e->changes++;
    e->stats.changes++;
    if ((unsigned)d->state < 4 && (unsigned)res->state < 4)
        e->stats.transitions[d->state][res->state]++;
    /* One line per device would be millions after a rules change or an
     * outage: debug; the writer's summary counts them at info. */
    eg_debug("core: device %s user '%s': %s -> %s (%s%s), version %lld", d->device_id, d->user,
             compliance_state_name(d->state), compliance_state_name(res->state), res->reason,
             res->in_grace ? ", in grace" : "", (long long)version);
    d->state = res->state;
    snprintf(d->reason, sizeof(d->reason), "%s", res->reason);
    d->version = version;
    d->updated_ms = now_ms;
    push_one(e, d, false);
}

/* Evaluate d (as read from the registry), store, push; d is updated in place. */
static int eval_dev(struct core_eng *e, struct core_device *d, int64_t now_ms)
{
    struct compliance_result res;
    int rc = eval_decide(e, d, now_ms, &res);
    if (rc <= 0)
        return rc < 0 ? rc : eval_wait(e, d, now_ms);
    bool changed = false;
    int64_t version = d->version;
    if (needs_store(d, &res, now_ms)) {
        rc = core_reg_state_store(e->reg, d, res.state, res.reason, res.non_compliant_since_ms,
                                  res.next_eval_ms, now_ms, &changed, &version);
        if (rc == 0 && changed)
            rc = audit_change(e, d, &res, now_ms);
        if (rc < 0)
            return rc;
        d->non_compliant_since_ms = res.non_compliant_since_ms;
        d->next_eval_ms = res.next_eval_ms;
    }
    if (changed)
        eval_changed(e, d, &res, version, now_ms);
    return 0;
}

int core_eng_evaluate(struct core_eng *e, const char *device_id, int64_t now_ms,
                      struct core_device *out)
{
    struct core_device d;
    int rc = eng_get(e, device_id, &d);
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
    seen_overlay(b->e, &d);
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
static uint64_t fnv_str(uint64_t h, const char *s)
{
    for (; s && *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (h ^ 0xff) * 1099511628211ULL; /* a separator: "ab","c" differs from "a","bc" */
}

static int64_t rules_fingerprint(const struct compliance_rules *rules)
{
    uint64_t h = 1469598103934665603ULL;
    struct compliance_rules r;
    memcpy(&r, rules, sizeof(r)); /* padding too: the loader zeroed it */
    r.devrules = NULL;            /* a new load of the same file is the same rules */
    r.groups.v = NULL;            /* likewise: the names are hashed below */
    const unsigned char *p = (const unsigned char *)&r;
    for (size_t i = 0; i < sizeof(r); i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    for (size_t k = 0; k < rules->groups.n; k++)
        h = fnv_str(h, rules->groups.v[k]);
    const struct pol_policy *pol = rules->devrules;
    for (size_t i = 0; pol && i < pol->n_rules; i++) {
        const struct pol_rule *x = &pol->rules[i];
        const char *f[] = {x->device_type, x->device_model, x->device_os,
                           x->user_agent,  x->user,         pol_action_name(x->action)};
        for (size_t k = 0; k < sizeof(f) / sizeof(f[0]); k++)
            h = fnv_str(h, f[k] ? f[k] : "\x01"); /* absent differs from "" */
        for (size_t k = 0; k < x->groups.n; k++)  /* none: the fingerprint of before groups */
            h = fnv_str(h, x->groups.v[k]);
    }
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
    e->cause = "rules";
    core_reg_flat_begin(e->reg); /* all or nothing: no savepoint per device */
    rc = core_reg_device_foreach(e->reg, bulk_one, &b);
    if (core_reg_flat_end(e->reg) && rc == 0)
        rc = CORE_REG_EDB;
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

int core_eng_evaluate_some(struct core_eng *e, int64_t now_ms, char cursor[CORE_DEVID_MAX + 1],
                           size_t max, size_t *n, bool *done)
{
    *n = 0;
    *done = false;
    struct core_dev_filter f;
    core_dev_filter_init(&f);
    f.after = cursor[0] ? cursor : NULL;
    struct core_device *page = malloc((max ? max : 1) * sizeof(*page));
    if (!page)
        return CORE_REG_ENOMEM;
    size_t k = 0;
    int rc = core_reg_device_list(e->reg, &f, page, max, &k);
    e->bulk = true;
    e->cause = "rules";
    for (size_t i = 0; i < k && rc == 0; i++) {
        seen_overlay(e, &page[i]);
        rc = eval_dev(e, &page[i], now_ms);
    }
    e->bulk = false;
    if (rc == 0 && k > 0)
        memcpy(cursor, page[k - 1].device_id, CORE_DEVID_MAX + 1);
    free(page);
    if (rc < 0)
        return rc;
    *n = k;
    if (k < max) {
        *done = true;
        rc = core_reg_meta_set(e->reg, ENG_RULES_KEY, rules_fingerprint(&e->rules));
    }
    return rc;
}

int core_eng_tick_some(struct core_eng *e, int64_t now_ms, size_t max, size_t *n, bool *more)
{
    size_t total = 0;
    *more = false;
    char ids[ENG_DUE_BATCH][CORE_DEVID_MAX + 1];
    e->cause = "timer";
    /* Each round re-arms or clears the timers it handled, so the next round
     * sees new ones. */
    while (total < max) {
        size_t k, want = max - total < ENG_DUE_BATCH ? max - total : ENG_DUE_BATCH;
        int rc = core_reg_due(e->reg, now_ms, ids, want, &k);
        if (rc < 0)
            return rc;
        for (size_t i = 0; i < k; i++) {
            rc = core_eng_evaluate(e, ids[i], now_ms, NULL);
            if (rc < 0 && rc != CORE_REG_ENOTFOUND)
                return rc;
        }
        total += k;
        if (k < want)
            break;
        *more = total >= max;
    }
    if (n)
        *n = total;
    return 0;
}

int core_eng_tick(struct core_eng *e, int64_t now_ms, size_t *n)
{
    bool more;
    /* The bound stops a pathological loop from hogging the core. */
    return core_eng_tick_some(e, now_ms, 64 * ENG_DUE_BATCH, n, &more);
}

/*
 * A new registry row (an authenticated sighting, an approval, an admin's
 * add or import): the device is no longer pending, and the policy key a
 * proxy issued it while pending becomes its own.
 */
static int eng_register(struct core_eng *e, const char *device_id, const struct core_devinfo *info,
                        int64_t now_ms)
{
    struct core_pending_row p;
    int pr = core_reg_pending_get(e->reg, device_id, &p);
    int rc = pr < 0 && pr != CORE_REG_ENOTFOUND ? pr : 0;
    if (rc == 0)
        rc = core_reg_device_seen(e->reg, device_id, info, now_ms, NULL);
    if (rc == 0 && pr == 0 && p.provisioned_ms > 0)
        rc = core_reg_provisioned(e->reg, device_id, p.policy_key, p.provisioned_ms);
    if (rc == 0 && pr == 0)
        rc = core_reg_pending_delete(e->reg, device_id);
    return rc;
}

/*
 * The facts and their evaluation commit together: one transaction, and no
 * window in which the registry holds new facts under an old state. A
 * sighting that brings nothing new writes no device row and needs no
 * evaluation (no rule depends on when a proxy last saw the device; the
 * timers carry what time changes): its time is noted, nothing else.
 */
int core_eng_seen(struct core_eng *e, const char *device_id, const struct core_devinfo *info,
                  int64_t now_ms, bool *created)
{
    static const struct core_devinfo none;
    if (!info)
        info = &none;
    e->stats.sightings++;
    int rc = core_eng_begin(e);
    if (rc < 0)
        return rc;
    e->cause = "sighting";
    struct core_device d;
    bool wrote = false, made = false;
    rc = eng_get(e, device_id, &d);
    if (rc == CORE_REG_ENOTFOUND) {
        rc = eng_register(e, device_id, info, now_ms);
        made = wrote = rc == 0;
        if (made)
            e->stats.created++;
    } else if (rc == 0) {
        rc = core_reg_device_merge(e->reg, &d, info, now_ms, &wrote);
        if (rc == 0)
            rc = seen_note(e, d.device_id, now_ms, 0);
    }
    if (rc == 0 && wrote)
        rc = core_eng_evaluate(e, device_id, now_ms, NULL);
    if (rc == 0 && created)
        *created = made;
    return finish(e, rc);
}

int core_eng_sighting(struct core_eng *e, const char *device_id, const struct core_devinfo *info,
                      bool authenticated, const char *client_addr, int64_t when_ms, int64_t now_ms,
                      enum core_sighted *out)
{
    *out = CORE_SIGHTED_IGNORED;
    if (authenticated) {
        bool created = false;
        int rc = core_eng_seen(e, device_id, info, when_ms, &created);
        if (rc == 0)
            *out = created ? CORE_SIGHTED_CREATED : CORE_SIGHTED_STORED;
        return rc;
    }
    int ex = core_reg_device_exists(e->reg, device_id);
    if (ex != 0)
        return ex < 0 ? ex : 0;
    struct core_pending p = {.user = info ? info->user : NULL,
                             .device_type = info ? info->device_type : NULL,
                             .user_agent = info ? info->user_agent : NULL,
                             .client_addr = client_addr};
    int rc = core_reg_pending_note(
        e->reg, device_id, &p, when_ms, e->pending_max ? e->pending_max : CORE_PENDING_MAX,
        e->pending_ttl_ms > 0 ? e->pending_ttl_ms : CORE_PENDING_TTL_MS, now_ms);
    if (rc == 0)
        *out = CORE_SIGHTED_PENDING;
    return rc;
}

int core_eng_checkin_get(struct core_eng *e, const char *device_id, const struct core_checkin *c,
                         int64_t now_ms, struct core_device *out)
{
    e->stats.checkins++;
    int rc = core_eng_begin(e);
    if (rc < 0)
        return rc;
    e->cause = "check-in";
    struct core_device d;
    bool wrote = false;
    rc = eng_get(e, device_id, &d);
    if (rc == 0)
        rc = core_reg_checkin_facts(e->reg, &d, c, &wrote);
    if (rc == 0)
        rc = seen_note(e, d.device_id, now_ms, now_ms);
    if (rc == 0 && wrote)
        rc = eng_get(e, device_id, &d); /* the facts as stored */
    if (rc == 0) {
        if (now_ms > d.last_checkin_ms)
            d.last_checkin_ms = now_ms;
        if (now_ms > d.last_seen_ms)
            d.last_seen_ms = now_ms;
        rc = eval_dev(e, &d, now_ms);
    }
    if (rc == 0 && out)
        *out = d;
    return finish(e, rc);
}

int core_eng_checkin(struct core_eng *e, const char *device_id, const struct core_checkin *c,
                     int64_t now_ms)
{
    int rc = core_eng_checkin_get(e, device_id, c, now_ms, NULL);
    if (rc == 0)
        core_metrics_checkin();
    return rc;
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
        for (size_t i = 0; i < n; i++) {
            seen_overlay(e, &page[i]);
            if ((rc = eval_dev(e, &page[i], now_ms)) < 0)
                return rc;
        }
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
    e->cause = "delete";
    seen_forget(e, id);
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

/* An admin's allow or reset ends an autoblock too: the admin has the last
 * word, and a reset that left the device blocked would not be one. */
static int lift_autoblock(struct core_eng *e, const char *id)
{
    bool moved;
    return core_reg_autoblock(e->reg, id, 0, NULL, &moved);
}

int core_eng_autoblock(struct core_eng *e, const char *device_id, const char *rule, bool quarantine,
                       int64_t until_ms, const char *address, const char *detail, int64_t now_ms,
                       bool *applied)
{
    *applied = false;
    char reason[CORE_REASON_MAX];
    if (!rule || !*rule || until_ms <= 0 ||
        snprintf(reason, sizeof(reason), "%s%s",
                 quarantine ? COMPLIANCE_REASON_AUTOQUARANTINE : COMPLIANCE_REASON_AUTOBLOCK,
                 rule) >= (int)sizeof(reason))
        return CORE_REG_EINVAL;
    int ex = core_reg_device_exists(e->reg, device_id);
    if (ex <= 0)
        return ex < 0 ? ex : CORE_REG_ENOTFOUND;
    if (until_ms <= now_ms)
        return 0; /* over already (a late replay): nothing to block, nothing to audit */
    int rc = core_eng_begin(e);
    if (rc < 0)
        return rc;
    e->cause = "autoblock";
    e->action_id = device_id; /* its audit row below records the change */
    bool moved = false;
    rc = core_reg_autoblock(e->reg, device_id, until_ms, reason, &moved);
    if (rc == 0 && moved)
        rc = core_reg_audit_add(e->reg, "proxy", address, "device.autoblock", device_id, detail,
                                now_ms);
    if (rc == 0 && moved)
        rc = core_eng_evaluate(e, device_id, now_ms, NULL);
    e->action_id = NULL;
    if (rc == 0)
        *applied = moved;
    return finish(e, rc);
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
    e->cause = "admin";
    e->action_id = id; /* its own audit row below records this device's change */
    struct core_device before = {0};
    switch (a) {
    case CORE_ACT_ALLOW:
        rc = core_reg_set_override(e->reg, id, COMPLIANCE_OVR_ALLOW);
        if (rc == 0)
            rc = lift_autoblock(e, id);
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
        if (rc == 0)
            rc = lift_autoblock(e, id);
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
    e->action_id = NULL;
    return finish(e, rc);
}

int core_eng_cert_revoke(struct core_eng *e, const char *device_id, const char *serial,
                         const char *reason, const char *actor, const char *address, int64_t now_ms)
{
    char id[CORE_DEVID_MAX + 1];
    if (!actor || !serial || core_reg_devid(device_id, id) < 0)
        return CORE_REG_EINVAL;
    if (!reason || !*reason)
        reason = "revoked";
    int rc = core_eng_begin(e);
    if (rc < 0)
        return rc;
    struct core_device before, d;
    char detail[200];
    snprintf(detail, sizeof(detail), "certificate %.64s: %.64s", serial, reason);
    rc = core_reg_device_get(e->reg, id, &before);
    if (rc == 0)
        rc = core_reg_cert_revoke(e->reg, id, serial, reason, now_ms);
    if (rc == 0)
        rc = core_reg_action_add(e->reg, id, "cert-revoke", actor, detail, now_ms);
    if (rc == 0)
        rc = core_reg_audit_add(e->reg, actor, address ? address : "", "enroll.revoke", id, detail,
                                now_ms);
    if (rc == 0)
        rc = core_reg_device_get(e->reg, id, &d);
    /* The portal binding went with the certificate: announce the device without it. */
    if (rc == 0 && strcmp(before.cert_enrollment, d.cert_enrollment) != 0) {
        rc = core_reg_touch(e->reg, id, false, now_ms, NULL);
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

/* ---- bulk import ------------------------------------------------------------ */

struct what {
    char *s;
    size_t len, n;
};

__attribute__((format(printf, 2, 3))) static void what_add(struct what *w, const char *fmt, ...)
{
    if (w->n >= w->len - 1)
        return;
    if (w->n)
        w->n += (size_t)snprintf(w->s + w->n, w->len - w->n, "; ");
    if (w->n >= w->len - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(w->s + w->n, w->len - w->n, fmt, ap);
    va_end(ap);
    if (k > 0)
        w->n = w->n + (size_t)k < w->len ? w->n + (size_t)k : w->len - 1;
}

/* A text field of the row against the stored value; noted in w when it differs. */
static bool field(struct what *w, const char *name, const char *want, const char *have)
{
    if (!want || strcmp(want, have) == 0)
        return false;
    what_add(w, "%s: '%s' -> '%s'", name, have, want);
    return true;
}

/*
 * What a row can be refused for: a DeviceId that is none, a user the
 * registry does not have (unless create_users). 1 when it may go on (id
 * its canonical DeviceId), 0 with res the error, or a registry error.
 */
static int row_usable(struct core_eng *e, const struct core_import_row *r, bool create_users,
                      char id[CORE_DEVID_MAX + 1], struct core_import_res *res)
{
    struct what w = {.s = res->what, .len = sizeof(res->what), .n = 0};
    res->what[0] = '\0';
    if (core_reg_devid(r->device_id, id) < 0) {
        res->outcome = CORE_IMPORT_ERROR;
        what_add(&w, "'%.40s' is not a DeviceId (1-32 letters and digits)",
                 r->device_id ? r->device_id : "");
        return 0;
    }
    if (!r->user || !r->user[0] || create_users)
        return 1;
    int ex = core_reg_user_exists(e->reg, r->user);
    if (ex == 0) {
        res->outcome = CORE_IMPORT_ERROR;
        what_add(&w, "unknown user '%.200s' (import the users first, or allow new ones)", r->user);
    }
    return ex;
}

/* New devices built in memory, waiting to be written together. */
struct import_new_rows {
    struct core_device *d;
    size_t n, cap;
};

/* Write them: before a row that inserts a device the general way (the
 * registry's order of insertion stays the file's), and at the batch's end. */
static int import_flush(struct core_eng *e, struct import_new_rows *nr)
{
    int rc = core_reg_devices_add(e->reg, nr->d, nr->n);
    nr->n = 0;
    return rc;
}

/*
 * A new device the short way: its row is built and evaluated in memory,
 * then written by one INSERT with the batch's other new devices. The general way (eng_register,
 * then core_reg_set_managed, core_reg_set_override, core_eng_evaluate) inserts it bare and updates
 * it twice, each write moving entries in the devices table's ten indexes, and reads it back twice:
 * the bulk of an import's time. Both leave the same rows, versions, pushes and counters (a test
 * compares them). The general way is taken when the evaluation needs the
 * stored row (a rank among the user's devices) or a pending sighting's
 * policy key must be carried over: 1 then, else 0 or a registry error.
 */
static int import_new(struct core_eng *e, const struct core_import_row *r, const char *id,
                      const struct core_devinfo *in, const char *actor, int64_t now_ms,
                      struct import_new_rows *nr)
{
    if (!nr || nr->n == nr->cap || (e->rules.max_devices_per_user > 0 && r->user && r->user[0]))
        return 1;
    struct core_pending_row p;
    int rc = core_reg_pending_get(e->reg, id, &p);
    if (rc != CORE_REG_ENOTFOUND)
        return rc < 0 ? rc : 1;
    struct core_devinfo ni = *in;
    ni.user = r->user;
    struct core_device d;
    if ((rc = core_reg_device_blank(e->reg, id, &ni, now_ms, &d)) < 0)
        return rc;
    if (r->managed >= 0)
        d.managed = r->managed != 0;
    if (r->override >= 0)
        d.override = (enum compliance_override)r->override;
    e->stats.created++;
    struct compliance_result res;
    int decided = eval_decide(e, &d, now_ms, &res);
    if (decided < 0)
        return decided;
    /* What eval_dev and core_reg_state_store would write (a device that
     * waits for the directory keeps its blank state, as eval_wait does). */
    if (decided && needs_store(&d, &res, now_ms)) {
        char reason[CORE_REASON_MAX];
        core_reg_text_as_stored(reason, res.reason, sizeof(reason));
        bool changed = res.state != d.state || strcmp(reason, d.reason) != 0;
        int64_t version = 0;
        if (changed && (rc = core_reg_next_version(e->reg, &version)) < 0)
            return rc;
        d.non_compliant_since_ms = res.non_compliant_since_ms;
        d.next_eval_ms = res.next_eval_ms;
        if (changed) {
            eval_changed(e, &d, &res, version, now_ms); /* pushed as eval_dev pushes it */
            memcpy(d.reason, reason, sizeof(reason));   /* stored as the registry stores it */
        }
    }
    nr->d[nr->n++] = d;
    return core_reg_action_add(e->reg, id, "import", actor, r->note, now_ms);
}

static int import_row(struct core_eng *e, const struct core_import_row *r, bool dry_run,
                      bool create_users, const char *actor, const char *address, int64_t now_ms,
                      struct core_import_res *res, struct import_new_rows *nr)
{
    char id[CORE_DEVID_MAX + 1];
    int ok = row_usable(e, r, create_users, id, res);
    if (ok <= 0)
        return ok;
    struct what w = {.s = res->what, .len = sizeof(res->what), .n = 0};
    struct core_device d;
    int rc = eng_get(e, id, &d);
    if (rc < 0 && rc != CORE_REG_ENOTFOUND)
        return rc;
    bool exists = rc == 0;
    if (!exists) {
        memset(&d, 0, sizeof(d));
        snprintf(d.device_id, sizeof(d.device_id), "%s", id);
    }
    /* What would change (the same texts as stored: clipped, no control characters). */
    struct core_devinfo in = {
        .device_type = r->device_type, .model = r->model, .os = r->os, .os_version = r->os_version};
    bool facts = exists ? core_reg_devinfo_differs(&d, &in, now_ms) : false;
    if (exists) {
        field(&w, "type", r->device_type, d.device_type);
        field(&w, "model", r->model, d.model);
        field(&w, "os", r->os, d.os);
        field(&w, "os_version", r->os_version, d.os_version);
    }
    bool user = r->user && r->user[0] && strcasecmp(r->user, d.user) != 0;
    if (user && exists)
        what_add(&w, "user: '%s' -> '%s'", d.user, r->user);
    bool managed = r->managed >= 0 && (!exists || (r->managed != 0) != d.managed);
    if (managed && exists)
        what_add(&w, "managed: %s -> %s", d.managed ? "yes" : "no", r->managed ? "yes" : "no");
    bool ovr = r->override >= 0 && (!exists || (enum compliance_override)r->override != d.override);
    if (ovr && exists)
        what_add(&w, "override: %s -> %s", compliance_override_name(d.override),
                 compliance_override_name((enum compliance_override)r->override));
    if (!exists)
        what_add(&w, "new device");
    res->outcome = !exists                           ? CORE_IMPORT_CREATED
                   : facts || user || managed || ovr ? CORE_IMPORT_UPDATED
                                                     : CORE_IMPORT_UNCHANGED;
    if (dry_run || res->outcome == CORE_IMPORT_UNCHANGED)
        return 0;
    if (!exists && (rc = import_new(e, r, id, &in, actor, now_ms, nr)) != 1)
        return rc;
    if (!exists && nr && (rc = import_flush(e, nr)) < 0)
        return rc;
    if (!exists) {
        struct core_devinfo ni = in;
        ni.user = r->user;
        rc = eng_register(e, id, &ni, now_ms);
        e->stats.created++;
    } else if (facts) {
        rc = core_reg_device_merge(e->reg, &d, &in, now_ms, NULL);
    }
    if (rc == 0 && (managed || user))
        rc = core_reg_set_managed(e->reg, id, r->managed >= 0 ? r->managed != 0 : d.managed,
                                  user ? r->user : NULL);
    if (rc == 0 && ovr)
        rc = core_reg_set_override(e->reg, id, (enum compliance_override)r->override);
    if (rc == 0)
        rc = core_reg_action_add(e->reg, id, "import", actor, r->note, now_ms);
    (void)address;
    struct core_device after;
    if (rc == 0)
        rc = core_eng_evaluate(e, id, now_ms, &after);
    if (rc == 0 && (user || managed))
        rc = reevaluate_user(e, after.user, now_ms);
    return rc;
}

int core_eng_import(struct core_eng *e, const struct core_import_row *rows, size_t n, bool dry_run,
                    bool create_users, const char *actor, const char *address, int64_t now_ms,
                    struct core_import_res *res, size_t *errors)
{
    *errors = 0;
    int rc = core_eng_begin(e);
    if (rc < 0)
        return rc;
    e->cause = "import";
    /* The batch is kept whole or not at all: its rows need no savepoints,
     * and the version sequence is written once, at its end. */
    core_reg_flat_begin(e->reg);
    struct import_new_rows nr = {0};
    if (!dry_run) {
        rc = core_reg_seq_hold(e->reg);
        nr.cap = n < CORE_REG_ADD_MAX ? n : CORE_REG_ADD_MAX;
        nr.d = malloc(nr.cap * sizeof(*nr.d)); /* none: every row the general way */
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        e->action_id = NULL;
        rc = import_row(e, &rows[i], dry_run, create_users, actor, address, now_ms, &res[i],
                        nr.d ? &nr : NULL);
        if (rc == 0 && res[i].outcome == CORE_IMPORT_ERROR)
            (*errors)++;
    }
    if (rc == 0 && nr.d)
        rc = import_flush(e, &nr);
    free(nr.d);
    int sr = core_reg_seq_release(e->reg);
    if (rc == 0)
        rc = sr;
    if (core_reg_flat_end(e->reg) && rc == 0)
        rc = CORE_REG_EDB; /* a step inside failed and was not reported: drop the batch */
    /* A batch lands whole or not at all: one bad row, and nothing of it is kept. */
    if (rc == 0 && (*errors || dry_run)) {
        core_eng_rollback(e);
        return 0;
    }
    return finish(e, rc);
}

int core_eng_import_check(struct core_eng *e, const struct core_import_row *rows, size_t n,
                          bool create_users, struct core_import_res *res, size_t *errors)
{
    *errors = 0;
    for (size_t i = 0; i < n; i++) {
        char id[CORE_DEVID_MAX + 1];
        res[i].outcome = CORE_IMPORT_UNCHANGED;
        int ok = row_usable(e, &rows[i], create_users, id, &res[i]);
        if (ok < 0)
            return ok;
        *errors += ok == 0;
    }
    return 0;
}
