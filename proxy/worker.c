/*
 * worker: the per-request objects a worker keeps for reuse.
 */
#include "proxy/worker.h"

#include <stdlib.h>

void *worker_obj_take(void **pool, int *n, size_t size)
{
    if (*n > 0)
        return pool[--*n];
    return malloc(size);
}

void worker_obj_put(void **pool, int *n, void *p)
{
    if (!p)
        return;
    if (*n < WORKER_FREE_OBJS)
        pool[(*n)++] = p;
    else
        free(p);
}
