/* test_core_pool: the pool's threads run its jobs at the nice they were
 * given, above the process's own, and only they: the thread that started
 * the pool keeps its priority. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/pool.h"

struct probe {
    struct core_pool_job job;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int nice, done;
};

static void *open_ctx(void *arg, int i)
{
    return arg;
}

static void close_ctx(void *ctx)
{
}

static void run(struct core_pool_job *j, void *ctx)
{
    struct probe *p = (struct probe *)j;
    int n = getpriority(PRIO_PROCESS, (id_t)gettid());
    pthread_mutex_lock(&p->mu);
    p->nice = n;
    p->done = 1;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* The nice a job of a pool started with nice runs at. */
static int job_nice(int nice)
{
    struct core_pool *pool;
    static int ctx;
    assert_int_equal(core_pool_start(2, 8, nice, open_ctx, close_ctx, &ctx, &pool), 0);
    struct probe p = {
        .job.run = run, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    assert_int_equal(core_pool_submit(pool, &p.job), 0);
    pthread_mutex_lock(&p.mu);
    while (!p.done)
        pthread_cond_wait(&p.cv, &p.mu);
    pthread_mutex_unlock(&p.mu);
    core_pool_stop(pool);
    return p.nice;
}

static void test_nice(void **state)
{
    int base = getpriority(PRIO_PROCESS, 0);
    if (base > 9)
        skip(); /* already too nice to see a step of 5 */
    assert_int_equal(job_nice(5), base + 5);
    assert_int_equal(job_nice(0), base);
    assert_int_equal(job_nice(40), 19); /* clamped */
    /* the starting thread, and so the process's other threads, unchanged */
    assert_int_equal(getpriority(PRIO_PROCESS, (id_t)gettid()), base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_nice)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
