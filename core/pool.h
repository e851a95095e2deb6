/*
 * core_pool: a fixed set of threads serving one queue of jobs, each thread
 * with a context of its own (the admin API's readers each hold a registry
 * connection; its hashers a connection and the argon2 work). A pool is how
 * slow work leaves the API's loop thread: the loop queues a job and goes
 * on accepting and answering; the job answers through its own completion
 * (core/api.c wakes the loop).
 *
 * The queue is bounded: past queue_max, core_pool_submit refuses and the
 * caller answers "busy" (503 with Retry-After) instead of letting a flood
 * of slow requests grow memory and latency without end. Jobs are owned by
 * their submitter; run() is called once, on one of the pool's threads.
 */
#ifndef EG_CORE_POOL_H
#define EG_CORE_POOL_H

#include <stddef.h>

struct core_pool;

struct core_pool_job {
    void (*run)(struct core_pool_job *j, void *ctx);
    struct core_pool_job *next; /* private */
};

/*
 * Start threads threads; open(arg, i) makes thread i's context (NULL =
 * failure: nothing starts) and close(ctx) ends it when the pool stops.
 * Each thread runs at nice (0 to 19, above the process's own: a pool of
 * slow work yields the CPUs to the rest of the process when they are
 * short, and has them all when they are not). 0, or -1.
 */
int core_pool_start(int threads, size_t queue_max, int nice, void *(*open)(void *arg, int i),
                    void (*close)(void *ctx), void *arg, struct core_pool **out);
/* 0, or -1 when the queue is full or the pool stops (j was not taken). Any thread. */
int core_pool_submit(struct core_pool *p, struct core_pool_job *j);
/* Jobs waiting (not running). */
size_t core_pool_queued(struct core_pool *p);
/* Run what is queued, stop the threads, close their contexts. NULL is fine. */
void core_pool_stop(struct core_pool *p);

#endif
