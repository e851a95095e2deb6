/*
 * core_pool: threads over one mutex-guarded queue. See pool.h.
 */
#include "core/pool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

struct worker {
    struct core_pool *p;
    pthread_t t;
    void *ctx;
};

struct core_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct core_pool_job *head, *tail;
    size_t queued, queue_max;
    bool stop;
    int n, nice;
    void (*close)(void *ctx);
    struct worker w[];
};

static void *pool_main(void *arg)
{
    struct worker *w = arg;
    struct core_pool *p = w->p;
    /* Linux keeps a nice value per thread (setpriority(2), "BUGS"): this
     * thread's alone. Raising it needs no privilege; a failure leaves the
     * thread at the process's priority, which is only less polite. */
    if (p->nice > 0) {
        int base = getpriority(PRIO_PROCESS, 0);
        (void)setpriority(PRIO_PROCESS, (id_t)gettid(), base + p->nice > 19 ? 19 : base + p->nice);
    }
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        struct core_pool_job *j = p->head;
        if (!j)
            break; /* stopping, and nothing left */
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
        p->queued--;
        pthread_mutex_unlock(&p->mu);
        j->next = NULL;
        j->run(j, w->ctx);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int core_pool_start(int threads, size_t queue_max, int nice, void *(*open)(void *arg, int i),
                    void (*close)(void *ctx), void *arg, struct core_pool **out)
{
    *out = NULL;
    if (threads < 1)
        return -1;
    struct core_pool *p = calloc(1, sizeof(*p) + (size_t)threads * sizeof(p->w[0]));
    if (!p)
        return -1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->queue_max = queue_max;
    p->nice = nice < 0 ? 0 : nice > 19 ? 19 : nice;
    p->close = close;
    int i = 0;
    for (; i < threads; i++) {
        p->w[i].p = p;
        if (!(p->w[i].ctx = open(arg, i)))
            break;
    }
    int opened = i, started = 0;
    if (opened == threads)
        for (; started < threads; started++)
            if (pthread_create(&p->w[started].t, NULL, pool_main, &p->w[started]) != 0)
                break;
    p->n = started;
    if (started < threads) {
        core_pool_stop(p); /* joins what started */
        for (int k = started; k < opened; k++)
            close(p->w[k].ctx);
        return -1;
    }
    *out = p;
    return 0;
}

int core_pool_submit(struct core_pool *p, struct core_pool_job *j)
{
    pthread_mutex_lock(&p->mu);
    if (p->stop || p->queued >= p->queue_max) {
        pthread_mutex_unlock(&p->mu);
        return -1;
    }
    j->next = NULL;
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    p->queued++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

size_t core_pool_queued(struct core_pool *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->queued;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void core_pool_stop(struct core_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n; i++) {
        pthread_join(p->w[i].t, NULL);
        p->close(p->w[i].ctx);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}
