/*
 * buf: fixed-size blocks for outgoing bytes, kept in a per-thread pool.
 *
 * Every byte the proxy writes to a socket sits in one of these blocks until
 * libuv reports the write done; then the block goes back to its pool. An idle
 * connection holds none, and steady traffic allocates nothing: the pool keeps
 * up to max_free blocks for reuse. A pool belongs to one thread.
 */
#ifndef EG_BUF_H
#define EG_BUF_H

#include <stddef.h>

#include <uv.h>

#define BUF_BLOCK_DATA 16384 /* one TLS record of plaintext, or most records with overhead */

struct buf_block {
    struct buf_block *next; /* pool free list, or the owner's queue */
    uv_write_t req;         /* the write this block is in, owned by its user */
    void *owner;
    size_t len; /* bytes used in data */
    char data[BUF_BLOCK_DATA];
};

struct buf_pool {
    struct buf_block *free;
    size_t n_free;
    size_t max_free;
    size_t n_out; /* blocks handed out and not returned: for metrics and leak checks */
};

void buf_pool_init(struct buf_pool *p, size_t max_free);
/* Free every pooled block. Blocks still out are the caller's bug. */
void buf_pool_destroy(struct buf_pool *p);

/* A block with len 0, or NULL when memory is exhausted. */
struct buf_block *buf_get(struct buf_pool *p);
void buf_put(struct buf_pool *p, struct buf_block *b);

#endif
