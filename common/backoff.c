/*
 * backoff: a fixed ring of entries, found through a chained hash. See
 * backoff.h. A new key takes the ring's next slot (the oldest entry made,
 * unlinked first), so a full table costs O(1) per new key, not a scan for
 * the least recently used: under a flood that is what matters.
 */
#include "common/backoff.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ent {
    struct backoff_state s;
    uint32_t hash;
    int next; /* in its bucket; -1 = end */
    bool used;
};

struct backoff {
    pthread_mutex_t mu;
    struct backoff_cfg cfg;
    size_t hand;   /* the ring slot the next new key takes */
    size_t nheads; /* a power of two */
    int *heads;
    struct ent *e;
};

static uint32_t hash_key(const char *k)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *k; k++)
        h = (h ^ (unsigned char)*k) * 16777619u;
    return h;
}

struct backoff *backoff_new(const struct backoff_cfg *cfg)
{
    struct backoff *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->cfg = *cfg;
    if (b->cfg.max_keys < 1)
        b->cfg.max_keys = 1;
    b->nheads = 1;
    while (b->nheads < b->cfg.max_keys)
        b->nheads <<= 1;
    b->heads = malloc(b->nheads * sizeof(*b->heads));
    b->e = calloc(b->cfg.max_keys, sizeof(*b->e));
    if (!b->heads || !b->e) {
        backoff_free(b);
        return NULL;
    }
    for (size_t i = 0; i < b->nheads; i++)
        b->heads[i] = -1;
    pthread_mutex_init(&b->mu, NULL);
    return b;
}

void backoff_free(struct backoff *b)
{
    if (!b)
        return;
    if (b->heads && b->e)
        pthread_mutex_destroy(&b->mu);
    free(b->heads);
    free(b->e);
    free(b);
}

static struct ent *find(struct backoff *b, const char *key, uint32_t h)
{
    for (int i = b->heads[h & (b->nheads - 1)]; i >= 0; i = b->e[i].next)
        if (b->e[i].hash == h && strcmp(b->e[i].s.key, key) == 0)
            return &b->e[i];
    return NULL;
}

static void unlink_ent(struct backoff *b, struct ent *x)
{
    int idx = (int)(x - b->e);
    int *p = &b->heads[x->hash & (b->nheads - 1)];
    while (*p >= 0 && *p != idx)
        p = &b->e[*p].next;
    if (*p == idx)
        *p = x->next;
    x->used = false;
}

/* key's entry, made (in the ring's next slot) when it has none. */
static struct ent *get(struct backoff *b, const char *key)
{
    char k[BACKOFF_KEY_MAX];
    snprintf(k, sizeof(k), "%s", key);
    uint32_t h = hash_key(k);
    struct ent *x = find(b, k, h);
    if (x)
        return x;
    x = &b->e[b->hand];
    b->hand = (b->hand + 1) % b->cfg.max_keys;
    if (x->used)
        unlink_ent(b, x);
    memset(x, 0, sizeof(*x));
    memcpy(x->s.key, k, sizeof(k));
    x->hash = h;
    x->used = true;
    int *head = &b->heads[h & (b->nheads - 1)];
    x->next = *head;
    *head = (int)(x - b->e);
    return x;
}

static bool ended(const struct backoff *b, const struct ent *x, int64_t now_ms)
{
    return x->s.start_ms && now_ms - x->s.start_ms >= b->cfg.window_ms;
}

/* A window that has ended starts over (a wait in force still runs). */
static void roll(struct backoff *b, struct ent *x, int64_t now_ms)
{
    if (ended(b, x, now_ms)) {
        x->s.failures = x->s.refused = 0;
        x->s.start_ms = 0;
    }
}

int64_t backoff_wait(struct backoff *b, const char *key, int64_t now_ms)
{
    if (!b || !key)
        return 0;
    pthread_mutex_lock(&b->mu);
    char k[BACKOFF_KEY_MAX];
    snprintf(k, sizeof(k), "%s", key);
    struct ent *x = find(b, k, hash_key(k));
    int64_t wait = x && x->s.until_ms > now_ms ? x->s.until_ms - now_ms : 0;
    if (wait > 0) {
        roll(b, x, now_ms);
        x->s.refused++;
        x->s.last_ms = now_ms;
    }
    pthread_mutex_unlock(&b->mu);
    return wait;
}

int backoff_fail(struct backoff *b, const char *key, int64_t now_ms)
{
    if (!b || !key)
        return 0;
    pthread_mutex_lock(&b->mu);
    struct ent *x = get(b, key);
    roll(b, x, now_ms);
    if (!x->s.start_ms)
        x->s.start_ms = now_ms;
    x->s.last_ms = now_ms;
    int n = ++x->s.failures;
    if (n > b->cfg.free) {
        int64_t w = b->cfg.base_ms;
        for (int i = b->cfg.free + 1; i < n && w < b->cfg.max_ms; i++)
            w = w > INT64_MAX / 2 ? INT64_MAX : w * 2;
        if (w > b->cfg.max_ms)
            w = b->cfg.max_ms;
        x->s.until_ms = now_ms > INT64_MAX - w ? INT64_MAX : now_ms + w;
    }
    pthread_mutex_unlock(&b->mu);
    return n;
}

int backoff_forget(struct backoff *b, const char *key)
{
    if (!b || !key)
        return 0;
    pthread_mutex_lock(&b->mu);
    char k[BACKOFF_KEY_MAX];
    snprintf(k, sizeof(k), "%s", key);
    struct ent *x = find(b, k, hash_key(k));
    if (x)
        unlink_ent(b, x);
    pthread_mutex_unlock(&b->mu);
    return x != NULL;
}

size_t backoff_waiting(struct backoff *b, int64_t now_ms, struct backoff_state *out, size_t max)
{
    size_t n = 0;
    if (!b)
        return 0;
    pthread_mutex_lock(&b->mu);
    for (size_t i = 0; i < b->cfg.max_keys && n < max; i++)
        if (b->e[i].used && b->e[i].s.until_ms > now_ms)
            out[n++] = b->e[i].s;
    pthread_mutex_unlock(&b->mu);
    return n;
}

size_t backoff_take_ended(struct backoff *b, int64_t now_ms, struct backoff_state *out, size_t max)
{
    size_t n = 0;
    if (!b)
        return 0;
    pthread_mutex_lock(&b->mu);
    for (size_t i = 0; i < b->cfg.max_keys && n < max; i++) {
        struct ent *x = &b->e[i];
        if (!x->used || !ended(b, x, now_ms))
            continue;
        out[n++] = x->s;
        if (x->s.until_ms > now_ms)
            roll(b, x, now_ms);
        else
            unlink_ent(b, x);
    }
    pthread_mutex_unlock(&b->mu);
    return n;
}
