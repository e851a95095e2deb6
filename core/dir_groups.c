/*
 * core_dirgrp: who is in which directory group, for device rules that say
 * `groups: [...]` (policy/pol.h, docs/directory.md section 3a).
 *
 * The engine matches rules on the core's writer thread, which must never
 * wait for an LDAP server: it only reads this table. A user the table has
 * never heard of is PENDING: the engine leaves the device as it is (a new
 * device stays unknown to the proxies) and queues the user; a thread of
 * its own asks the directory (core_dir_lookup, its cache and max_stale),
 * stores the answer, and has the writer evaluate that user's devices again.
 * The same thread asks again for every user older than cache_ttl, and
 * whenever an answer changes (groups, disabled, gone, or past max_stale
 * without a new one) the user's devices are evaluated again.
 *
 * Fail closed: an answer older than max_stale, a user the directory could
 * not be asked about, a disabled user and one the directory no longer has
 * are all UNKNOWN, for which a block or quarantine rule with groups matches
 * and an allow rule does not (pol.c, groups_match). So an outage can make a
 * group's rule stricter for everybody it could concern, never laxer.
 *
 * The CLI (no thread) asks inline: it may block, and answers at once.
 * The table holds up to DIRGRP_MAX users; when full it starts over (the
 * users are asked again; their devices wait, as PENDING, meanwhile).
 */
#include "core/dir.h"

#include "common/log.h"
#include "core/ctx.h"
#include "core/eng.h"
#include "core/reg.h"
#include "core/wr.h"
#include "policy/pol.h"

#include <sqlite3.h>

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DIRGRP_SLOTS 16384
#define DIRGRP_MAX 8192
#define DIRGRP_IDLE_MS 1000 /* the thread looks for aged answers this often */
#define DIRGRP_BATCH 64     /* users asked before the devices are evaluated again */

enum ent_state { ENT_PENDING, ENT_ANSWERED, ENT_FAILED };

struct ent {
    char *user;         /* as the registry spells it (the key) */
    int st;             /* enum ent_state */
    bool bad;           /* disabled, or no longer in the directory */
    char *groups;       /* "\n"-joined, as the directory names them */
    int64_t fetched_ms; /* when the directory said so */
    int64_t asked_ms;   /* when the thread last asked */
    bool queued;        /* waiting for the thread */
    int view;           /* the last answer the devices were evaluated with */
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool on;     /* set up: rules with groups are answered here */
    int refs;    /* core_dirgrp_setup calls not yet released (one per core_ctx) */
    bool thread; /* a thread answers; otherwise lookups are inline */
    bool stop;
    const struct core_dir_cfg *cfg;
    struct core_dir *dir; /* the inline handle, or the thread's */
    struct ent *slot[DIRGRP_SLOTS];
    size_t n;
    char **queue; /* users to ask (copies) */
    size_t nq, capq;
    struct core_reg *reg; /* the thread's own connection */
    struct core_wr *wr;
    pthread_t th;
    uint64_t asked, failed;
} G = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)tolower((unsigned char)*s)) * 16777619u;
    return h;
}

static struct ent **find(const char *user)
{
    uint32_t i = hash(user) % DIRGRP_SLOTS;
    while (G.slot[i] && strcasecmp(G.slot[i]->user, user) != 0)
        i = (i + 1) % DIRGRP_SLOTS;
    return &G.slot[i];
}

static void ent_free(struct ent *e)
{
    if (!e)
        return;
    free(e->user);
    free(e->groups);
    free(e);
}

static void table_clear(void)
{
    for (size_t i = 0; i < DIRGRP_SLOTS; i++) {
        ent_free(G.slot[i]);
        G.slot[i] = NULL;
    }
    G.n = 0;
}

static void enqueue(struct ent *e)
{
    if (e->queued)
        return;
    if (G.nq == G.capq) {
        size_t cap = G.capq ? 2 * G.capq : 64;
        char **q = realloc(G.queue, cap * sizeof(*q));
        if (!q)
            return;
        G.queue = q;
        G.capq = cap;
    }
    char *u = strdup(e->user);
    if (!u)
        return;
    G.queue[G.nq++] = u;
    e->queued = true;
    pthread_cond_signal(&G.cv);
}

/* What the devices see of an entry now (the answer, or UNKNOWN by age):
 * when this changes, they are evaluated again. */
static int ent_view(const struct ent *e, int64_t now_ms)
{
    if (e->st == ENT_PENDING)
        return 0;
    if (e->st == ENT_FAILED || e->bad || now_ms - e->fetched_ms > G.cfg->max_stale_ms)
        return 1;
    return 2 + (int)(hash(e->groups ? e->groups : "") & 0x3fffffff);
}

/* Store an answer of core_dir_lookup (rc) into e. */
static void ent_answer(struct ent *e, int rc, const struct core_dir_user *u, int64_t now_ms)
{
    e->asked_ms = now_ms;
    if (rc == CORE_DIR_ENOTFOUND || (rc == 0 && u->disabled)) {
        e->st = ENT_ANSWERED;
        e->bad = true;
        e->fetched_ms = rc == 0 ? u->fetched_ms : now_ms;
        return;
    }
    if (rc < 0) {
        /* Keep an older answer: its age decides (max_stale). */
        if (e->st == ENT_PENDING)
            e->st = ENT_FAILED;
        return;
    }
    size_t len = 1;
    for (size_t i = 0; i < u->n_groups; i++)
        len += strlen(u->groups[i]) + 1;
    char *g = malloc(len), *p = g;
    if (!g) {
        if (e->st == ENT_PENDING)
            e->st = ENT_FAILED;
        return;
    }
    *p = '\0';
    for (size_t i = 0; i < u->n_groups; i++)
        p += sprintf(p, "%s%s", i ? "\n" : "", u->groups[i]);
    free(e->groups);
    e->groups = g;
    e->st = ENT_ANSWERED;
    e->bad = false;
    e->fetched_ms = u->fetched_ms;
}

static bool in_any(const char *joined, const struct yt_strv *groups)
{
    for (const char *p = joined; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        for (size_t i = 0; i < groups->n; i++)
            if (strlen(groups->v[i]) == len && strncasecmp(groups->v[i], p, len) == 0)
                return true;
        p = nl ? nl + 1 : p + len;
    }
    return false;
}

static void ask_inline(struct ent *e, int64_t now_ms)
{
    struct core_dir_user u;
    char err[512];
    int rc = core_dir_lookup(G.dir, e->user, now_ms, &u, err, sizeof(err));
    if (rc < 0 && rc != CORE_DIR_ENOTFOUND)
        eg_warn("directory: groups of '%s': %s", e->user, err);
    ent_answer(e, rc, &u, now_ms);
}

int core_dirgrp_member(const char *user, const struct yt_strv *groups, int64_t now_ms)
{
    if (!user || !*user)
        return POL_MEMBER_NO; /* no user, in no group */
    pthread_mutex_lock(&G.mu);
    if (!G.on) {
        pthread_mutex_unlock(&G.mu);
        return POL_MEMBER_UNKNOWN;
    }
    struct ent **pe = find(user);
    if (!*pe) {
        if (G.n >= DIRGRP_MAX) {
            table_clear();
            pe = find(user);
        }
        struct ent *e = calloc(1, sizeof(*e));
        if (!e || !(e->user = strdup(user))) {
            free(e);
            pthread_mutex_unlock(&G.mu);
            return POL_MEMBER_UNKNOWN;
        }
        *pe = e;
        G.n++;
    }
    struct ent *e = *pe;
    if (!G.thread && (e->st == ENT_PENDING || now_ms - e->asked_ms >= G.cfg->cache_ttl_ms))
        ask_inline(e, now_ms);
    else if (e->st == ENT_PENDING)
        enqueue(e);
    int r;
    if (e->st == ENT_PENDING)
        r = POL_MEMBER_PENDING;
    else if (e->st == ENT_FAILED || e->bad || now_ms - e->fetched_ms > G.cfg->max_stale_ms)
        r = POL_MEMBER_UNKNOWN;
    else
        r = in_any(e->groups, groups) ? POL_MEMBER_YES : POL_MEMBER_NO;
    if (e->st != ENT_PENDING && G.thread)
        e->view = ent_view(e, now_ms); /* what the devices were just evaluated with */
    pthread_mutex_unlock(&G.mu);
    return r;
}

int core_dirgrp_setup(const struct core_dir_cfg *cfg, char *err, size_t errlen)
{
    if (!cfg || !cfg->enabled)
        return 0;
    pthread_mutex_lock(&G.mu);
    bool again = G.refs++ > 0; /* the enrollment role's context in the same process */
    pthread_mutex_unlock(&G.mu);
    if (again)
        return 0;
    struct core_dir *d;
    if (core_dir_open(cfg, &d, err, errlen) < 0) {
        pthread_mutex_lock(&G.mu);
        G.refs--;
        pthread_mutex_unlock(&G.mu);
        return CORE_DIR_EINVAL;
    }
    pthread_mutex_lock(&G.mu);
    G.cfg = cfg;
    G.dir = d;
    G.on = true;
    pthread_mutex_unlock(&G.mu);
    return 0;
}

/* ---- the thread ------------------------------------------------------------ */

struct reeval_arg {
    char **users;
    size_t n;
};

/* On the writer: evaluate every device of these users again. */
static int reeval_fn(struct core_wr_env *env, void *arg)
{
    struct reeval_arg *a = arg;
    sqlite3 *db = core_reg_sqlite(env->reg);
    for (size_t u = 0; u < a->n; u++) {
        sqlite3_stmt *s;
        if (sqlite3_prepare_v2(db, "SELECT device_id FROM devices WHERE user = ?1", -1, &s, NULL) !=
            SQLITE_OK)
            return -1;
        sqlite3_bind_text(s, 1, a->users[u], -1, SQLITE_STATIC);
        char ids[64][CORE_DEVID_MAX + 1];
        size_t n = 0;
        while (n < 64 && sqlite3_step(s) == SQLITE_ROW)
            snprintf(ids[n++], sizeof(ids[0]), "%s", (const char *)sqlite3_column_text(s, 0));
        sqlite3_finalize(s);
        env->eng->cause = "directory";
        for (size_t i = 0; i < n; i++) {
            int rc = core_eng_evaluate(env->eng, ids[i], core_now_ms(), NULL);
            if (rc < 0 && rc != CORE_REG_ENOTFOUND)
                return rc;
        }
    }
    return 0;
}

static void reeval(char **users, size_t n)
{
    if (!n)
        return;
    struct reeval_arg a = {users, n};
    int rc = core_wr_call(G.wr, reeval_fn, &a);
    if (rc < 0)
        eg_warn("directory: evaluating the devices of %zu users again failed (%d)", n, rc);
    for (size_t i = 0; i < n; i++)
        free(users[i]);
}

/* Queue every user whose answer is cache_ttl old; collect (into out, up to
 * max) the users whose view changed by age alone (past max_stale). */
static size_t sweep(int64_t now_ms, char **out, size_t max)
{
    size_t k = 0;
    for (size_t i = 0; i < DIRGRP_SLOTS; i++) {
        struct ent *e = G.slot[i];
        if (!e || e->st == ENT_PENDING)
            continue;
        if (now_ms - e->asked_ms >= G.cfg->cache_ttl_ms)
            enqueue(e);
        int v = ent_view(e, now_ms);
        if (v != e->view && k < max) {
            char *u = strdup(e->user);
            if (u) {
                out[k++] = u;
                e->view = v;
            }
        }
    }
    return k;
}

static void *dirgrp_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&G.mu);
    while (!G.stop) {
        char *changed[DIRGRP_BATCH];
        size_t nc = sweep(core_now_ms(), changed, DIRGRP_BATCH);
        while (G.nq && nc < DIRGRP_BATCH && !G.stop) {
            char *user = G.queue[--G.nq];
            pthread_mutex_unlock(&G.mu);
            struct core_dir_user u;
            char err[512] = "";
            int64_t now = core_now_ms();
            int rc = core_dir_lookup(G.dir, user, now, &u, err, sizeof(err));
            if (rc < 0 && rc != CORE_DIR_ENOTFOUND)
                eg_warn("directory: groups of '%s': %s", user, err);
            pthread_mutex_lock(&G.mu);
            G.asked++;
            G.failed += rc < 0 && rc != CORE_DIR_ENOTFOUND;
            struct ent *e = *find(user);
            if (e) {
                e->queued = false;
                ent_answer(e, rc, &u, now);
                int v = ent_view(e, now);
                eg_debug("directory: groups of '%s': %s (view %d, was %d)", user,
                         e->st == ENT_ANSWERED ? (e->bad ? "disabled or gone" : e->groups)
                                               : "no answer",
                         v, e->view);
                if (v != e->view) {
                    e->view = v;
                    changed[nc++] = user;
                    user = NULL;
                }
            }
            free(user);
        }
        if (nc) {
            pthread_mutex_unlock(&G.mu);
            reeval(changed, nc);
            pthread_mutex_lock(&G.mu);
            continue;
        }
        if (G.nq)
            continue;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + (int64_t)DIRGRP_IDLE_MS * 1000000;
        ts.tv_sec += ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&G.cv, &G.mu, &ts);
    }
    pthread_mutex_unlock(&G.mu);
    return NULL;
}

/* Every user with devices, asked at start, so their devices are decided
 * with an answer soon rather than at their next event. */
static void warm(void)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(core_reg_sqlite(G.reg),
                           "SELECT DISTINCT user FROM devices WHERE user != '' LIMIT ?1", -1, &s,
                           NULL) != SQLITE_OK)
        return;
    sqlite3_bind_int(s, 1, DIRGRP_MAX);
    while (sqlite3_step(s) == SQLITE_ROW) {
        const char *user = (const char *)sqlite3_column_text(s, 0);
        struct ent **pe = find(user);
        if (*pe)
            continue;
        struct ent *e = calloc(1, sizeof(*e));
        if (!e || !(e->user = strdup(user))) {
            free(e);
            break;
        }
        *pe = e;
        G.n++;
        enqueue(e);
    }
    sqlite3_finalize(s);
}

void core_dirgrp_defer(void)
{
    pthread_mutex_lock(&G.mu);
    G.thread = G.on;
    pthread_mutex_unlock(&G.mu);
}

int core_dirgrp_start(const char *database, struct core_wr *wr, bool warm_up, char *err,
                      size_t errlen)
{
    pthread_mutex_lock(&G.mu);
    bool on = G.on;
    pthread_mutex_unlock(&G.mu);
    if (!on)
        return 0;
    char e[512];
    if (core_reg_open(database, &G.reg, e, sizeof(e)) < 0) {
        snprintf(err, errlen, "directory groups: %s", e);
        return CORE_DIR_EINVAL;
    }
    pthread_mutex_lock(&G.mu);
    G.wr = wr;
    G.thread = true;
    G.stop = false;
    if (warm_up)
        warm();
    if (pthread_create(&G.th, NULL, dirgrp_main, NULL) != 0) {
        G.thread = false;
        pthread_mutex_unlock(&G.mu);
        core_reg_close(G.reg);
        G.reg = NULL;
        snprintf(err, errlen, "directory groups: cannot start its thread");
        return CORE_DIR_ENOMEM;
    }
    pthread_mutex_unlock(&G.mu);
    return 0;
}

void core_dirgrp_stop(void)
{
    pthread_mutex_lock(&G.mu);
    bool running = G.reg != NULL;
    G.stop = true;
    pthread_cond_signal(&G.cv);
    pthread_mutex_unlock(&G.mu);
    if (!running)
        return;
    pthread_join(G.th, NULL);
    core_reg_close(G.reg);
    G.reg = NULL;
    G.wr = NULL; /* misses stay queued: nobody asks on a caller's thread now */
}

void core_dirgrp_release(void)
{
    pthread_mutex_lock(&G.mu);
    bool last = G.refs > 0 && --G.refs == 0;
    pthread_mutex_unlock(&G.mu);
    if (!last)
        return;
    core_dirgrp_stop();
    pthread_mutex_lock(&G.mu);
    G.thread = false;
    G.on = false;
    G.stop = false;
    table_clear();
    for (size_t i = 0; i < G.nq; i++)
        free(G.queue[i]);
    free(G.queue);
    G.queue = NULL;
    G.nq = G.capq = 0;
    core_dir_close(G.dir);
    G.dir = NULL;
    pthread_mutex_unlock(&G.mu);
}
