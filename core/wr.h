/*
 * core_wr: the core's writer, the one thread of a core process that writes
 * the registry (docs/architecture.md, "core/: threads").
 *
 * Everything that changes the registry reaches it as a job on one queue:
 * the admin API's changes and check-ins, the run loop's batches of
 * sightings, and its own background work (due timers every tick, the
 * buffered last-seen times, re-evaluating every device after a rules
 * reload). It takes every job queued (up to WR_BATCH) into one SQLite
 * transaction, each job a savepoint of its own, commits once, pushes the
 * state changes to Redis after the commit, and only then tells each job
 * how it ended (group commit: one commit and one WAL append for many
 * requests; no one hears "stored" before it is). Background work runs
 * between groups, a slice at a time, so no request waits behind a reload
 * of a million devices or a flush.
 *
 * Ownership. The writer owns its registry connection, its engine (with the
 * buffered times, eng.h), its Redis connection for pushes, and a
 * checkpointer thread with a connection of its own: SQLite's automatic
 * checkpoint is off on the writer's connection and the checkpointer runs a
 * PASSIVE one whenever the WAL has grown past WR_CKPT_BYTES (at most one
 * each WR_CKPT_REST_MS), so no commit waits for the WAL to be copied into
 * the file. Readers (the API's pool,
 * the CLI) have connections of their own and never wait for the writer
 * (WAL).
 *
 * Jobs are owned by their submitter: the writer calls run() and done() and
 * then never touches a job again. done() runs on the writer thread; it
 * must only hand the result over (the admin API wakes its loop).
 *
 * Redis. A push that fails leaves the engine dirty: later pushes are held
 * back and the devices they concern remembered. Whoever resyncs (the run
 * loop, core/run.c) calls core_wr_resync_begin, rewrites Redis from the
 * registry on its own connections, then core_wr_resync_done: the writer
 * reconnects, pushes what changed while the resync ran, and is clean. So
 * the writer never does a full resync itself and never stalls for one.
 */
#ifndef EG_CORE_WR_H
#define EG_CORE_WR_H

#include "common/conf.h"
#include "core/auth.h"
#include "core/eng.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct core_wr;

struct core_wr_opts {
    const char *database;
    const struct conf *conf;              /* redis: where pushes go; NULL or disabled = none */
    const struct compliance_rules *rules; /* copied */
    int64_t tick_ms;                      /* due timers are looked at this often */
    int64_t seen_flush_ms;                /* buffered times are written this often */
    int64_t summary_ms;                   /* the info summary of what was done; 0 = none */
    size_t pending_max;                   /* devices seen but never accepted (core/eng.h) */
    int64_t pending_ttl_ms;
    int64_t redis_retry_ms;
    size_t queue_max; /* jobs waiting beyond this are refused (core_wr_submit); 0 = 4096 */
    bool start_dirty; /* Redis is known to be behind (a failed resync at start) */
};

/* What a job's run() may use: all of it the writer's, on the writer's thread. */
struct core_wr_env {
    struct core_reg *reg;
    struct core_eng *eng;
    struct core_auth *auth;
};

struct core_wr_job {
    /* In the group's transaction; rc < 0 undoes this job's writes only. */
    int (*run)(struct core_wr_job *j, struct core_wr_env *env);
    /* After the commit: rc is run()'s, or CORE_REG_EDB when the commit failed. */
    void (*done)(struct core_wr_job *j, int rc);
    struct core_wr_job *next; /* private */
    int rc;                   /* private */
};

/* Open the registry, Redis, start the threads. 0, or -1 with err. */
int core_wr_start(const struct core_wr_opts *o, struct core_wr **out, char *err, size_t errlen);
/* Run what is queued, write the buffered times, stop, close. NULL is fine. */
void core_wr_stop(struct core_wr *w);

/* Queue a job: 0, or -1 when the queue is full or the writer stops (the
 * caller answers "busy"; j was not taken). Any thread. */
int core_wr_submit(struct core_wr *w, struct core_wr_job *j);

/* Run fn in the writer's next group and wait for the commit: fn's result,
 * or the commit's failure. Never refused for a full queue (the sightings
 * must not be dropped). Any thread but the writer's. */
int core_wr_call(struct core_wr *w, int (*fn)(struct core_wr_env *env, void *arg), void *arg);

/* New rules: the writer adopts them and re-evaluates every device, a slice at a time. */
void core_wr_reload(struct core_wr *w, const struct compliance_rules *rules);

/* Pushes are held back (Redis failed, or was never reached): resync. */
bool core_wr_dirty(struct core_wr *w);
/* Around a resync done elsewhere (see above): begin before reading the
 * registry; done after Redis holds it. done: 0 clean, -1 still dirty. */
int core_wr_resync_begin(struct core_wr *w);
int core_wr_resync_done(struct core_wr *w);

/* The token cache the writer's and the API's core_auth share. */
struct core_auth_cache *core_wr_auth_cache(struct core_wr *w);

/* Counters since start, for /metrics and the bench. */
struct core_wr_stats {
    uint64_t groups, jobs, refused, commit_failures;
    uint64_t checkpoints, checkpoint_pages;
    size_t queue, queue_peak, seen_buffered;
};
void core_wr_stats(struct core_wr *w, struct core_wr_stats *st);

#endif
