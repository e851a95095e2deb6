/*
 * core_wr: the writer thread, its group commit, its background slices and
 * its checkpointer. See wr.h.
 *
 * One mutex guards the queue and the few fields other threads read or set
 * (stop, the rules to adopt, the counters); the writer holds it only to
 * take a group off the queue. Everything else (the engine, the SQLite and
 * Redis connections, the remembered unpushed devices) is touched by the
 * writer thread alone, so it needs no lock.
 */
#include "core/wr.h"

#include "common/log.h"
#include "core/metrics.h"
#include "core/push.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Jobs taken into one transaction at most: bounds a group's commit time
 * (and so the latency of the first job in it). */
#define WR_BATCH 512
#define WR_QUEUE_MAX 4096
/* Background slices: bounded so a group waits at most a few milliseconds. */
#define WR_SEEN_SLICE 1000
#define WR_TICK_SLICE 256
#define WR_EVAL_SLICE 500
/* The checkpointer runs when the WAL passes this many bytes (wal_hook). */
#define WR_CKPT_BYTES (16 << 20)
/* The checkpointer rests this long after each checkpoint: woken by every
 * commit past WR_CKPT_BYTES, it would copy each commit's few frames on its
 * own, with two fsyncs each time and the pages every commit rewrites (the
 * version sequence, the counts, the tails) copied once per commit instead
 * of once per rest. */
#define WR_CKPT_REST_MS 100
/* Devices remembered while pushes are held back; more, and a resync cannot
 * be caught up with them: the writer stays dirty for another one. */
#define WR_UNPUSHED_MAX 100000

struct unpushed {
    char id[CORE_DEVID_MAX + 1];
};

struct core_wr {
    struct core_wr_opts o;
    struct compliance_rules rules;
    /* the writer thread's own */
    struct core_reg *reg;
    struct core_eng eng;
    struct core_auth *auth;
    struct rstore_push *push;
    bool redis; /* Redis is configured */
    char redis_host[256];
    struct unpushed *unp;
    size_t n_unp, cap_unp;
    bool unp_overflow;
    char eval_cursor[CORE_DEVID_MAX + 1];
    bool evaluating;
    size_t eval_n;
    uint64_t eval_changes;
    int64_t next_tick, next_summary;
    bool tick_more;
    int resync_rc;
    struct core_eng_stats last;
    /* shared, under mu */
    pthread_mutex_t mu;
    pthread_cond_t wake, idle;
    struct core_wr_job *head, *tail;
    size_t queued;
    bool stop;
    bool reload;
    struct compliance_rules new_rules;
    struct core_wr_stats st;
    volatile int dirty; /* eng.dirty or no connection, for other threads */
    pthread_t thread;
    /* the checkpointer */
    struct core_reg *ckpt_reg;
    pthread_t ckpt_thread;
    pthread_mutex_t ckpt_mu;
    pthread_cond_t ckpt_wake;
    bool ckpt_due, ckpt_stop;
    int ckpt_pages; /* WR_CKPT_BYTES in the registry's pages */
    int wal_pages;  /* frames in the WAL after the writer's last commit */
    int ckpt_done;  /* under mu: frames of this WAL in the file after the last checkpoint */
    struct core_auth_cache *cache;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- Redis -------------------------------------------------------------------- */

/* Where pushes go now: redis.url, or the master the Sentinels name. */
static int redis_open(struct core_wr *w)
{
    const struct conf_redis *rc = &w->o.conf->redis;
    struct rstore_sync_opts po = {.password = rc->password, .db = rc->db};
    if (rc->sentinel.master) {
        if (rstore_sentinel_master(rc, w->redis_host, sizeof(w->redis_host), &po.port) < 0)
            return -1;
    } else {
        snprintf(w->redis_host, sizeof(w->redis_host), "%s", rc->host ? rc->host : "127.0.0.1");
        po.port = rc->port;
    }
    po.host = w->redis_host;
    char err[512];
    if (rstore_push_open(&po, &w->push, err, sizeof(err)) < 0) {
        eg_warn("core: writer: %s; changes are stored and pushed after a resync", err);
        return -1;
    }
    w->eng.push = w->push;
    return 0;
}

static void set_dirty(struct core_wr *w)
{
    __atomic_store_n(&w->dirty, w->redis && (w->eng.dirty || !w->push), __ATOMIC_RELEASE);
}

/*
 * The engine held a push back or lost one: remember the device for after
 * the resync. Repeats are not looked for: catching up reads each device as
 * the registry holds it then (present: its hash; gone: a removal), so a
 * device named twice is pushed twice, the second time without news.
 */
static void on_unpushed(void *arg, const char *device_id, bool deleted)
{
    struct core_wr *w = arg;
    (void)deleted;
    if (w->n_unp == w->cap_unp) {
        size_t cap = w->cap_unp ? w->cap_unp * 2 : 64;
        struct unpushed *u = cap <= WR_UNPUSHED_MAX ? realloc(w->unp, cap * sizeof(*u)) : NULL;
        if (!u) {
            w->unp_overflow = true;
            return;
        }
        w->unp = u;
        w->cap_unp = cap;
    }
    snprintf(w->unp[w->n_unp++].id, sizeof(w->unp[0].id), "%s", device_id);
}

/* ---- the checkpointer ------------------------------------------------------------ */

/*
 * After each commit of the writer, with the WAL's size in pages. Past
 * WR_CKPT_BYTES the checkpointer is woken to copy the WAL into the file
 * beside the writer. But a checkpoint running beside a busy writer never
 * catches up with the WAL's end, and the WAL starts over from its beginning
 * only once all of it was copied: at twice the size, the writer finishes
 * the job itself, here, between its own commits, where nothing is appended
 * behind it. Most frames are in the file already by then, so it is short.
 */
/*
 * A checkpoint ended with done frames of the WAL in the file. SQLite counts
 * them from the WAL's start, so what this one copied is the difference
 * from the last count of the same WAL (ckpt_done, back to 0 when the WAL
 * starts over). An upper bound of the pages written: a page with several
 * frames is written once.
 */
static void ckpt_count(struct core_wr *w, int done)
{
    pthread_mutex_lock(&w->mu);
    int copied = done >= w->ckpt_done ? done - w->ckpt_done : done;
    w->ckpt_done = done;
    w->st.checkpoints++;
    w->st.checkpoint_pages += (uint64_t)(copied > 0 ? copied : 0);
    pthread_mutex_unlock(&w->mu);
    core_metrics_checkpoint(copied);
}

static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
    struct core_wr *w = arg;
    /* Fewer pages than after the last commit: the WAL started over, and
     * this commit's frames are all there is. */
    core_metrics_wal(pages >= w->wal_pages ? pages - w->wal_pages : pages);
    if (pages < w->wal_pages) {
        pthread_mutex_lock(&w->mu);
        w->ckpt_done = 0;
        pthread_mutex_unlock(&w->mu);
    }
    w->wal_pages = pages;
    if (pages >= 2 * w->ckpt_pages) {
        int log = 0, done = 0;
        if (sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, &log, &done) ==
            SQLITE_OK)
            ckpt_count(w, done);
    } else if (pages >= w->ckpt_pages) {
        pthread_mutex_lock(&w->ckpt_mu);
        w->ckpt_due = true;
        pthread_cond_signal(&w->ckpt_wake);
        pthread_mutex_unlock(&w->ckpt_mu);
    }
    return SQLITE_OK;
}

static void *ckpt_main(void *arg)
{
    struct core_wr *w = arg;
    pthread_mutex_lock(&w->ckpt_mu);
    for (;;) {
        while (!w->ckpt_due && !w->ckpt_stop)
            pthread_cond_wait(&w->ckpt_wake, &w->ckpt_mu);
        if (w->ckpt_stop)
            break;
        w->ckpt_due = false;
        pthread_mutex_unlock(&w->ckpt_mu);
        int log = 0, done = 0;
        if (core_reg_checkpoint(w->ckpt_reg, &log, &done) == 0)
            ckpt_count(w, done);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += WR_CKPT_REST_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_mutex_lock(&w->ckpt_mu);
        while (!w->ckpt_stop &&
               pthread_cond_timedwait(&w->ckpt_wake, &w->ckpt_mu, &until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&w->ckpt_mu);
    return NULL;
}

/* ---- groups ---------------------------------------------------------------------- */

static void run_group(struct core_wr *w, struct core_wr_job *list)
{
    struct core_wr_env env = {.reg = w->reg, .eng = &w->eng, .auth = w->auth};
    size_t n = 0;
    int rc = core_eng_begin(&w->eng);
    for (struct core_wr_job *j = list; j; j = j->next, n++) {
        if (rc < 0) {
            j->rc = rc;
            continue;
        }
        /* Each job a savepoint: a failing one takes none of the others with it. */
        j->rc = core_eng_begin(&w->eng);
        if (j->rc < 0)
            continue;
        j->rc = j->run(j, &env);
        if (j->rc < 0)
            core_eng_rollback(&w->eng);
        else
            core_eng_commit(&w->eng);
    }
    int crc = rc < 0 ? rc : core_eng_commit(&w->eng);
    if (crc < 0)
        eg_error("core: writer: committing a group of %zu failed; its requests are answered "
                 "as not stored",
                 n);
    set_dirty(w);
    pthread_mutex_lock(&w->mu);
    w->st.groups++;
    w->st.jobs += n;
    if (crc < 0)
        w->st.commit_failures++;
    pthread_mutex_unlock(&w->mu);
    core_metrics_group(n);
    while (list) {
        struct core_wr_job *j = list;
        list = j->next;
        j->next = NULL;
        j->done(j, crc < 0 ? CORE_REG_EDB : j->rc);
    }
}

/* ---- background: timers, buffered times, re-evaluation --------------------------- */

static void summary(struct core_wr *w)
{
    const struct core_eng_stats *a = &w->eng.stats, *b = &w->last;
    uint64_t ci = a->checkins - b->checkins, si = a->sightings - b->sightings,
             cr = a->created - b->created, ch = a->changes - b->changes;
    if (ci || si || cr || ch) {
        char tr[512] = "";
        size_t at = 0;
        for (int f = 0; f < 4; f++)
            for (int t = 0; t < 4; t++) {
                uint64_t k = a->transitions[f][t] - b->transitions[f][t];
                if (k && at < sizeof(tr))
                    at += (size_t)snprintf(tr + at, sizeof(tr) - at, "%s%s->%s %llu",
                                           at ? ", " : "", compliance_state_name(f),
                                           compliance_state_name(t), (unsigned long long)k);
            }
        struct core_wr_stats st;
        core_wr_stats(w, &st);
        eg_info("core: last %llds: %llu check-ins, %llu sightings, %llu new devices, %llu state "
                "changes%s%s%s; last seen: %zu buffered, %llu written; %llu checkpoints so far",
                (long long)(w->o.summary_ms / 1000), (unsigned long long)ci, (unsigned long long)si,
                (unsigned long long)cr, (unsigned long long)ch, tr[0] ? " (" : "", tr,
                tr[0] ? ")" : "", core_eng_seen_buffered(&w->eng),
                (unsigned long long)(a->seen_written - b->seen_written),
                (unsigned long long)st.checkpoints);
    }
    w->last = *a;
}

/* One slice of each background task that is due; true when more is waiting. */
static bool background(struct core_wr *w, int64_t now_mono)
{
    int64_t now = wall_ms();
    bool tick = now_mono >= w->next_tick || w->tick_more;
    size_t pending = 0;
    if (core_eng_begin(&w->eng) < 0)
        return false;
    int rc = core_eng_seen_flush(&w->eng, now, false, WR_SEEN_SLICE, &pending);
    if (rc == 0 && tick) {
        size_t n;
        rc = core_eng_tick_some(&w->eng, now, WR_TICK_SLICE, &n, &w->tick_more);
        if (now_mono >= w->next_tick)
            w->next_tick = now_mono + w->o.tick_ms;
    }
    if (rc == 0 && w->evaluating) {
        size_t n = 0;
        bool done = false;
        uint64_t ch = w->eng.changes;
        rc = core_eng_evaluate_some(&w->eng, now, w->eval_cursor, WR_EVAL_SLICE, &n, &done);
        w->eval_n += n;
        w->eval_changes += w->eng.changes - ch;
        if (rc == 0 && done) {
            w->evaluating = false;
            eg_info("core: reload: %zu devices re-evaluated with the new compliance rules, "
                    "%llu changed state",
                    w->eval_n, (unsigned long long)w->eval_changes);
        }
    }
    if (rc < 0) {
        core_eng_rollback(&w->eng);
        eg_error("core: writer: background work failed (registry error %d); retrying", rc);
        return false;
    }
    if (core_eng_commit(&w->eng) < 0)
        eg_error("core: writer: committing background work failed; retrying");
    set_dirty(w);
    if (w->o.summary_ms > 0 && now_mono >= w->next_summary) {
        summary(w);
        w->next_summary = now_mono + w->o.summary_ms;
    }
    return pending > 0 || w->tick_more || w->evaluating;
}

static void *wr_main(void *arg)
{
    struct core_wr *w = arg;
    bool more = false;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        int64_t now = mono_ms();
        while (!w->head && !w->stop && !w->reload && !more) {
            /* The buffered times are looked at every tick too. */
            int64_t until = w->next_tick;
            if (w->o.summary_ms > 0 && w->next_summary < until)
                until = w->next_summary;
            if (until <= now)
                break;
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int64_t ns = (int64_t)ts.tv_nsec + (until - now) * 1000000;
            ts.tv_sec += (time_t)(ns / 1000000000);
            ts.tv_nsec = (long)(ns % 1000000000);
            pthread_cond_timedwait(&w->wake, &w->mu, &ts);
            now = mono_ms();
        }
        if (w->stop && !w->head)
            break;
        if (w->reload) {
            w->reload = false;
            w->rules = w->new_rules;
            pthread_mutex_unlock(&w->mu);
            w->eng.rules = w->rules;
            w->evaluating = true;
            w->eval_cursor[0] = '\0';
            w->eval_n = 0;
            w->eval_changes = 0;
            pthread_mutex_lock(&w->mu);
        }
        struct core_wr_job *list = w->head, *last = NULL;
        size_t n = 0;
        for (struct core_wr_job *j = list; j && n < WR_BATCH; j = j->next, n++)
            last = j;
        if (last) {
            w->head = last->next;
            if (!w->head)
                w->tail = NULL;
            last->next = NULL;
            w->queued -= n;
        }
        pthread_mutex_unlock(&w->mu);
        if (list)
            run_group(w, list);
        more = background(w, mono_ms());
        pthread_cond_broadcast(&w->idle);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ---- construction ------------------------------------------------------------------ */

static void wr_free(struct core_wr *w)
{
    if (!w)
        return;
    core_eng_free(&w->eng);
    core_auth_close(w->auth);
    rstore_push_close(w->push);
    core_reg_close(w->reg);
    core_reg_close(w->ckpt_reg);
    core_auth_cache_free(w->cache);
    free(w->unp);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->wake);
    pthread_cond_destroy(&w->idle);
    pthread_mutex_destroy(&w->ckpt_mu);
    pthread_cond_destroy(&w->ckpt_wake);
    free(w);
}

int core_wr_start(const struct core_wr_opts *o, struct core_wr **out, char *err, size_t errlen)
{
    *out = NULL;
    struct core_wr *w = calloc(1, sizeof(*w));
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    w->o = *o;
    if (w->o.queue_max == 0)
        w->o.queue_max = WR_QUEUE_MAX;
    if (w->o.tick_ms <= 0)
        w->o.tick_ms = 1000;
    w->rules = *o->rules;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->wake, NULL);
    pthread_cond_init(&w->idle, NULL);
    pthread_mutex_init(&w->ckpt_mu, NULL);
    pthread_cond_init(&w->ckpt_wake, NULL);
    char e[1024];
    if (core_reg_open(o->database, &w->reg, e, sizeof(e)) < 0 ||
        core_reg_open(o->database, &w->ckpt_reg, e, sizeof(e)) < 0) {
        snprintf(err, errlen, "writer: %s", e);
        wr_free(w);
        return -1;
    }
    if (!(w->cache = core_auth_cache_new(CORE_AUTH_CACHE_TTL_MS)) ||
        core_auth_open(w->reg, &w->auth) < 0) {
        snprintf(err, errlen, "writer: cannot prepare the accounts' statements");
        wr_free(w);
        return -1;
    }
    core_auth_set_cache(w->auth, w->cache);
    /* The checkpointer copies the WAL; a commit never does. */
    int ps = core_reg_page_size(w->reg);
    w->ckpt_pages = WR_CKPT_BYTES / (ps > 0 ? ps : 4096);
    sqlite3_wal_hook(core_reg_sqlite(w->reg), wal_hook, w);
    core_eng_init(&w->eng, w->reg, NULL, &w->rules);
    w->eng.seen_defer_ms = o->seen_flush_ms;
    w->eng.pending_max = o->pending_max;
    w->eng.pending_ttl_ms = o->pending_ttl_ms;
    w->redis = o->conf && o->conf->redis.enabled;
    if (w->redis) {
        w->eng.on_unpushed = on_unpushed;
        w->eng.unpushed_arg = w;
        if (o->start_dirty || redis_open(w) < 0)
            w->eng.dirty = true;
    }
    set_dirty(w);
    w->next_tick = mono_ms() + w->o.tick_ms;
    w->next_summary = mono_ms() + (w->o.summary_ms > 0 ? w->o.summary_ms : 0);
    if (pthread_create(&w->ckpt_thread, NULL, ckpt_main, w) != 0) {
        snprintf(err, errlen, "writer: cannot start the checkpointer thread");
        wr_free(w);
        return -1;
    }
    if (pthread_create(&w->thread, NULL, wr_main, w) != 0) {
        snprintf(err, errlen, "writer: cannot start its thread");
        pthread_mutex_lock(&w->ckpt_mu);
        w->ckpt_stop = true;
        pthread_cond_signal(&w->ckpt_wake);
        pthread_mutex_unlock(&w->ckpt_mu);
        pthread_join(w->ckpt_thread, NULL);
        wr_free(w);
        return -1;
    }
    *out = w;
    return 0;
}

void core_wr_stop(struct core_wr *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    /* Nothing buffered is lost: the times go to the registry now. */
    int64_t now = wall_ms();
    if (core_eng_begin(&w->eng) == 0) {
        if (core_eng_seen_flush_all(&w->eng, now) == 0)
            core_eng_commit(&w->eng);
        else
            core_eng_rollback(&w->eng);
    }
    if (w->o.summary_ms > 0)
        summary(w);
    pthread_mutex_lock(&w->ckpt_mu);
    w->ckpt_stop = true;
    pthread_cond_signal(&w->ckpt_wake);
    pthread_mutex_unlock(&w->ckpt_mu);
    pthread_join(w->ckpt_thread, NULL);
    wr_free(w);
}

static void enqueue(struct core_wr *w, struct core_wr_job *j)
{
    j->next = NULL;
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    if (++w->queued > w->st.queue_peak)
        w->st.queue_peak = w->queued;
    pthread_cond_signal(&w->wake);
}

int core_wr_submit(struct core_wr *w, struct core_wr_job *j)
{
    pthread_mutex_lock(&w->mu);
    int rc = 0;
    if (w->stop || w->queued >= w->o.queue_max) {
        w->st.refused++;
        rc = -1;
    } else {
        enqueue(w, j);
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

/* A synchronous call: the job and the caller's wait. */
struct call {
    struct core_wr_job job;
    int (*fn)(struct core_wr_env *env, void *arg);
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int rc;
};

static int call_run(struct core_wr_job *j, struct core_wr_env *env)
{
    struct call *c = (struct call *)j;
    return c->fn(env, c->arg);
}

static void call_done(struct core_wr_job *j, int rc)
{
    struct call *c = (struct call *)j;
    pthread_mutex_lock(&c->mu);
    c->rc = rc;
    c->done = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

int core_wr_call(struct core_wr *w, int (*fn)(struct core_wr_env *env, void *arg), void *arg)
{
    struct call c = {.job = {.run = call_run, .done = call_done}, .fn = fn, .arg = arg};
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    pthread_mutex_lock(&w->mu);
    enqueue(w, &c.job);
    pthread_mutex_unlock(&w->mu);
    pthread_mutex_lock(&c.mu);
    while (!c.done)
        pthread_cond_wait(&c.cv, &c.mu);
    pthread_mutex_unlock(&c.mu);
    pthread_mutex_destroy(&c.mu);
    pthread_cond_destroy(&c.cv);
    return c.rc;
}

void core_wr_reload(struct core_wr *w, const struct compliance_rules *rules)
{
    pthread_mutex_lock(&w->mu);
    w->new_rules = *rules;
    w->reload = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->mu);
}

bool core_wr_dirty(struct core_wr *w)
{
    return __atomic_load_n(&w->dirty, __ATOMIC_ACQUIRE) != 0;
}

/* ---- resync handshake (wr.h) ---------------------------------------------------------- */

static int resync_begin(struct core_wr_env *env, void *arg)
{
    (void)env;
    struct core_wr *w = arg;
    /* From here on, what changes is remembered; before, the resync reads it. */
    w->n_unp = 0;
    w->unp_overflow = false;
    w->eng.dirty = true; /* hold pushes back until done: they could race the resync's */
    set_dirty(w);
    return 0;
}

int core_wr_resync_begin(struct core_wr *w)
{
    return core_wr_call(w, resync_begin, w);
}

/* The group's result is the engine's; this one's goes in w->resync_rc (a
 * job failing would roll back the versions taken for removals). */
static int resync_done(struct core_wr_env *env, void *arg)
{
    struct core_wr *w = arg;
    w->resync_rc = -1;
    if (w->unp_overflow)
        return 0; /* too much changed meanwhile: another resync */
    if (!w->push && redis_open(w) < 0)
        return 0;
    /* Push each remembered device as the registry holds it now (the
     * commit of this group adds nothing to push: it writes nothing). */
    size_t i = 0;
    for (; i < w->n_unp; i++) {
        struct core_device d;
        int rc = core_reg_device_get(env->reg, w->unp[i].id, &d);
        if (rc == 0)
            rc = core_push_device(w->push, &d) < 0 ? -1 : 0;
        else if (rc == CORE_REG_ENOTFOUND) {
            int64_t v;
            rc = core_reg_next_version(env->reg, &v);
            if (rc == 0)
                rc = core_push_delete(w->push, w->unp[i].id, v) < 0 ? -1 : 0;
        }
        if (rc < 0)
            break;
    }
    if (i < w->n_unp) {
        eg_warn("core: writer: redis failed again while catching up: %s",
                rstore_push_error(w->push));
        rstore_push_close(w->push);
        w->push = w->eng.push = NULL;
        memmove(w->unp, w->unp + i, (w->n_unp - i) * sizeof(*w->unp));
        w->n_unp -= i;
        return 0;
    }
    if (w->n_unp)
        eg_info("core: writer: %zu devices that changed during the resync pushed", w->n_unp);
    w->n_unp = 0;
    w->eng.dirty = false;
    w->resync_rc = 0;
    return 0;
}

int core_wr_resync_done(struct core_wr *w)
{
    int rc = core_wr_call(w, resync_done, w);
    /* the call returned: the writer wrote resync_rc before its group ended */
    return rc < 0 || w->resync_rc < 0 ? -1 : 0;
}

struct core_auth_cache *core_wr_auth_cache(struct core_wr *w)
{
    return w->cache;
}

void core_wr_stats(struct core_wr *w, struct core_wr_stats *st)
{
    pthread_mutex_lock(&w->mu);
    *st = w->st;
    st->queue = w->queued;
    pthread_mutex_unlock(&w->mu);
}
