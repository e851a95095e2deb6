/*
 * rstore_shared: the process-wide fallback (rstore.h, struct rstore_shared).
 *
 * Each worker's cache is its own, and a phone's next connection may land on
 * any worker. While Redis answers that costs nothing; while it is away, a
 * device one worker knows would be "unknown" to the others. So every fetched
 * hash is also put here, and a worker that cannot ask Redis looks here before
 * it says "unknown". It is read only in that case, so the locks (striped, 64
 * of them) are taken on every fetch but almost never contended.
 */
#include "connectors/rstore_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define RS_SHARED_LOCKS 64

struct rstore_shared {
    size_t mask;
    struct rs_shared_entry **slot;
    pthread_mutex_t lock[RS_SHARED_LOCKS];
};

struct rstore_shared *rstore_shared_new(size_t slots)
{
    size_t n = 1;
    while (n < slots && n < ((size_t)1 << 24))
        n <<= 1;
    struct rstore_shared *sh = calloc(1, sizeof(*sh));
    if (!sh)
        return NULL;
    sh->slot = calloc(n, sizeof(*sh->slot));
    if (!sh->slot) {
        free(sh);
        return NULL;
    }
    sh->mask = n - 1;
    for (int i = 0; i < RS_SHARED_LOCKS; i++)
        pthread_mutex_init(&sh->lock[i], NULL);
    return sh;
}

void rstore_shared_free(struct rstore_shared *sh)
{
    if (!sh)
        return;
    for (size_t i = 0; i <= sh->mask; i++)
        free(sh->slot[i]);
    for (int i = 0; i < RS_SHARED_LOCKS; i++)
        pthread_mutex_destroy(&sh->lock[i]);
    free(sh->slot);
    free(sh);
}

void rs_shared_put(struct rstore_shared *sh, const struct rs_entry *e)
{
    if (!sh)
        return;
    size_t slen = 0;
    if (e->strs)
        slen = strlen(e->strs) + 1 + strlen(e->reason) + 1 + strlen(e->bound) + 1;
    struct rs_shared_entry *n = malloc(sizeof(*n) + slen);
    if (!n)
        return;
    n->found = e->found;
    n->state = e->state;
    n->wipe_account = e->wipe_account;
    n->pk_epoch = e->pk_epoch;
    n->version = e->version;
    n->updated_ms = e->updated_ms;
    memcpy(n->devid, e->devid, sizeof(n->devid));
    n->slen = slen;
    if (slen)
        memcpy(n->strs, e->strs, slen);
    size_t i = e->hash & sh->mask;
    pthread_mutex_t *l = &sh->lock[i % RS_SHARED_LOCKS];
    pthread_mutex_lock(l);
    struct rs_shared_entry *old = sh->slot[i];
    sh->slot[i] = n;
    pthread_mutex_unlock(l);
    free(old);
}

/* Drop devid's entry if it is older than version (a change message's), or
 * whatever its version when the message had none (version UINT64_MAX). */
void rs_shared_del(struct rstore_shared *sh, const char *devid, uint32_t h, uint64_t version)
{
    if (!sh)
        return;
    size_t i = h & sh->mask;
    struct rs_shared_entry *old = NULL;
    pthread_mutex_t *l = &sh->lock[i % RS_SHARED_LOCKS];
    pthread_mutex_lock(l);
    const struct rs_shared_entry *e = sh->slot[i];
    if (e && strcmp(e->devid, devid) == 0 &&
        (version == UINT64_MAX || !e->found || e->version < version)) {
        old = sh->slot[i];
        sh->slot[i] = NULL;
    }
    pthread_mutex_unlock(l);
    free(old);
}

/* A copy of the shared entry for devid, or NULL (caller frees). */
struct rs_shared_entry *rs_shared_get(struct rstore_shared *sh, const char *devid, uint32_t h)
{
    if (!sh)
        return NULL;
    size_t i = h & sh->mask;
    struct rs_shared_entry *c = NULL;
    pthread_mutex_t *l = &sh->lock[i % RS_SHARED_LOCKS];
    pthread_mutex_lock(l);
    const struct rs_shared_entry *e = sh->slot[i];
    if (e && strcmp(e->devid, devid) == 0) {
        c = malloc(sizeof(*c) + e->slen);
        if (c)
            memcpy(c, e, sizeof(*c) + e->slen);
    }
    pthread_mutex_unlock(l);
    return c;
}
