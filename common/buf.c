/*
 * buf: a free list of blocks. Blocks past max_free go back to malloc so that
 * a burst (a big download to many clients at once) does not pin its peak
 * memory forever.
 */
#include "common/buf.h"

#include <stdlib.h>

void buf_pool_init(struct buf_pool *p, size_t max_free)
{
    p->free = NULL;
    p->n_free = 0;
    p->max_free = max_free;
    p->n_out = 0;
}

void buf_pool_destroy(struct buf_pool *p)
{
    while (p->free) {
        struct buf_block *b = p->free;
        p->free = b->next;
        free(b);
    }
    p->n_free = 0;
}

struct buf_block *buf_get(struct buf_pool *p)
{
    struct buf_block *b = p->free;
    if (b) {
        p->free = b->next;
        p->n_free--;
    } else {
        b = malloc(sizeof(*b));
        if (!b)
            return NULL;
    }
    b->next = NULL;
    b->owner = NULL;
    b->len = 0;
    p->n_out++;
    return b;
}

void buf_put(struct buf_pool *p, struct buf_block *b)
{
    p->n_out--;
    if (p->n_free >= p->max_free) {
        free(b);
        return;
    }
    b->next = p->free;
    p->free = b;
    p->n_free++;
}
