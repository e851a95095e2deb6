/*
 * rstore_cache: the worker's cache of device hashes.
 *
 * A hash table of entries with an LRU list through them, bounded by
 * cache_max: a hit is a probe and a copy of a few pointers, nothing is
 * allocated. An entry is fresh when it was fetched in the current cache
 * generation; a reconnect bumps the generation, which turns every entry into
 * a fallback (served only when Redis cannot answer in time). "No such device"
 * is an entry too (a negative one), so an unknown phone's every request does
 * not become an HGETALL.
 *
 * This is also where a Redis hash becomes an entry, and where a hash the
 * proxy cannot trust becomes a block rather than a guess.
 */
#include "connectors/rstore_int.h"

#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct rs_entry *rs_cache_find(struct rstore *rs, const char *devid, uint32_t h)
{
    for (struct rs_entry *e = rs->buckets[h & rs->mask]; e; e = e->hnext)
        if (e->hash == h && strcmp(e->devid, devid) == 0)
            return e;
    return NULL;
}

static void lru_unlink(struct rstore *rs, struct rs_entry *e)
{
    if (e->lprev)
        e->lprev->lnext = e->lnext;
    else
        rs->lru_head = e->lnext;
    if (e->lnext)
        e->lnext->lprev = e->lprev;
    else
        rs->lru_tail = e->lprev;
    e->lprev = e->lnext = NULL;
}

static void lru_push(struct rstore *rs, struct rs_entry *e)
{
    e->lprev = NULL;
    e->lnext = rs->lru_head;
    if (rs->lru_head)
        rs->lru_head->lprev = e;
    rs->lru_head = e;
    if (!rs->lru_tail)
        rs->lru_tail = e;
}

void rs_cache_touch(struct rstore *rs, struct rs_entry *e)
{
    lru_unlink(rs, e);
    lru_push(rs, e);
}

void rs_cache_remove(struct rstore *rs, struct rs_entry *e)
{
    struct rs_entry **pp = &rs->buckets[e->hash & rs->mask];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(rs, e);
    free(e->strs);
    free(e);
    rs->n_entries--;
    ST_ADD(rs, entries, (uint64_t)-1);
}

/* Entry for devid, created (evicting the least recently used) if absent. */
static struct rs_entry *cache_put(struct rstore *rs, const char *devid, uint32_t h)
{
    struct rs_entry *e = rs_cache_find(rs, devid, h);
    if (e) {
        lru_unlink(rs, e);
        lru_push(rs, e);
        return e;
    }
    if (rs->n_entries >= rs->o.cache_max && rs->lru_tail)
        rs_cache_remove(rs, rs->lru_tail);
    e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->hash = h;
    snprintf(e->devid, sizeof(e->devid), "%s", devid);
    e->hnext = rs->buckets[h & rs->mask];
    rs->buckets[h & rs->mask] = e;
    lru_push(rs, e);
    rs->n_entries++;
    ST_INC(rs, entries);
    return e;
}

void rs_fill_result(const struct rstore *rs, const struct rs_entry *e, struct rstore_result *r,
                    bool fallback)
{
    r->status = e->found ? RSTORE_FOUND : RSTORE_NOT_FOUND;
    r->state = (enum rstore_state)e->state;
    r->user = e->strs ? e->strs : "";
    r->reason = e->reason ? e->reason : "";
    r->bound = e->bound ? e->bound : "";
    r->version = e->version;
    r->updated_ms = e->updated_ms;
    r->wipe_account_only = e->wipe_account != 0;
    r->pk_epoch = e->pk_epoch;
    r->cached_fallback = fallback;
    r->stale = rs_stale(rs);
}

void rs_fill_unavailable(const struct rstore *rs, struct rstore_result *r)
{
    memset(r, 0, sizeof(*r));
    r->status = RSTORE_UNAVAILABLE;
    r->user = "";
    r->reason = "";
    r->bound = "";
    r->stale = rs_stale(rs);
}

/* A device another instance of this process fetched, into this cache as
 * unverified (the next lookup with Redis up fetches it again). */
static struct rs_entry *from_shared(struct rstore *rs, const char *devid, uint32_t h)
{
    struct rs_shared_entry *c = rs_shared_get(rs->o.shared, devid, h);
    if (!c)
        return NULL;
    char *strs = NULL;
    if (c->slen && !(strs = malloc(c->slen))) {
        free(c);
        return NULL;
    }
    struct rs_entry *e = cache_put(rs, devid, h);
    if (!e) {
        free(strs);
        free(c);
        return NULL;
    }
    free(e->strs);
    e->strs = strs;
    e->reason = e->bound = NULL;
    if (strs) {
        memcpy(strs, c->strs, c->slen);
        e->reason = strs + strlen(strs) + 1;
        e->bound = e->reason + strlen(e->reason) + 1;
    }
    e->gen = rs->gen - 1;
    e->fetched_ms = rs_now(rs);
    e->found = c->found;
    e->state = c->state;
    e->wipe_account = c->wipe_account;
    e->pk_epoch = c->pk_epoch;
    e->version = c->version;
    e->updated_ms = c->updated_ms;
    free(c);
    return e;
}

/* What to say when Redis cannot answer: the cached entry if any, else what
 * another instance of this process fetched. */
void rs_fill_fallback(struct rstore *rs, const char *devid, uint32_t h, struct rstore_result *r)
{
    struct rs_entry *e = rs_cache_find(rs, devid, h);
    if (!e)
        e = from_shared(rs, devid, h);
    if (e) {
        rs_fill_result(rs, e, r, true);
        ST_INC(rs, fallbacks);
    } else {
        rs_fill_unavailable(rs, r);
        ST_INC(rs, unavailable);
    }
}

bool rs_parse_u64(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 19)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

/*
 * Store an HGETALL reply. A hash we cannot trust (unknown state, oversized
 * strings) becomes a block with a reason naming the fault: the core wrote
 * something this proxy does not understand, and the safe reading is "no".
 */
struct rs_entry *rs_cache_store(struct rstore *rs, const char *devid, uint32_t h,
                                const redisReply *r)
{
    struct rs_entry *e = cache_put(rs, devid, h);
    if (!e)
        return NULL;
    free(e->strs);
    e->strs = NULL;
    e->reason = e->bound = NULL;
    e->gen = rs->gen;
    e->fetched_ms = rs_now(rs);
    e->version = 0;
    e->updated_ms = 0;
    e->state = RSTORE_BLOCK;
    e->wipe_account = 0;
    e->pk_epoch = 0;
    e->found = r->elements > 0;
    if (!e->found)
        return e;

    const char *user = "", *reason = "", *bound = "", *fault = NULL;
    size_t ulen = 0, rlen = 0, blen = 0;
    bool have_state = false;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(k->str, RSTORE_F_STATE) == 0) {
            enum rstore_state st;
            have_state = rstore_state_parse(v->str, v->len, &st) == 0;
            if (have_state)
                e->state = (uint8_t)st;
        } else if (strcmp(k->str, RSTORE_F_USER) == 0) {
            user = v->str;
            ulen = v->len;
        } else if (strcmp(k->str, RSTORE_F_REASON) == 0) {
            reason = v->str;
            rlen = v->len;
        } else if (strcmp(k->str, devid[0] == RSTORE_ENR_MARK ? RSTORE_F_DEVICE
                                                              : RSTORE_F_ENROLLMENT) == 0) {
            bound = v->str;
            blen = v->len;
        } else if (strcmp(k->str, RSTORE_F_VERSION) == 0) {
            if (!rs_parse_u64(v->str, v->len, &e->version))
                fault = "state-invalid-version";
        } else if (strcmp(k->str, RSTORE_F_WIPE_KIND) == 0) {
            /* Anything but "account" is the full wipe, the contract's default. */
            e->wipe_account = v->len == sizeof(RSTORE_WIPE_ACCOUNT) - 1 &&
                              strncasecmp(v->str, RSTORE_WIPE_ACCOUNT, v->len) == 0;
        } else if (strcmp(k->str, RSTORE_F_PK_EPOCH) == 0) {
            /* Not a number: epoch 0, the policy's own keys (a fault here
             * would only make the device provision again, not let it in). */
            if (!rs_parse_u64(v->str, v->len, &e->pk_epoch))
                e->pk_epoch = 0;
        } else if (strcmp(k->str, RSTORE_F_UPDATED) == 0) {
            uint64_t u = 0;
            if (rs_parse_u64(v->str, v->len, &u))
                e->updated_ms = (int64_t)u;
        }
    }
    if (!have_state)
        fault = "state-invalid";
    if (ulen > RSTORE_USER_MAX || memchr(user, '\0', ulen))
        fault = "state-invalid-user";
    if (blen > RSTORE_DEVID_MAX || memchr(bound, '\0', blen))
        fault = "state-invalid-binding";
    if (rlen > RSTORE_REASON_MAX)
        rlen = RSTORE_REASON_MAX; /* the reason is only logged: cut it */
    if (fault) {
        e->state = RSTORE_BLOCK;
        user = "";
        ulen = 0;
        bound = "";
        blen = 0;
        reason = fault;
        rlen = strlen(fault);
        eg_warn("redis: %s%s has an unusable hash (%s): device blocked", RSTORE_KEY_PREFIX, devid,
                fault);
    }
    e->strs = malloc(ulen + rlen + blen + 3);
    if (!e->strs) {
        rs_cache_remove(rs, e);
        return NULL;
    }
    memcpy(e->strs, user, ulen);
    e->strs[ulen] = '\0';
    memcpy(e->strs + ulen + 1, reason, rlen);
    e->strs[ulen + 1 + rlen] = '\0';
    e->reason = e->strs + ulen + 1;
    memcpy(e->strs + ulen + rlen + 2, bound, blen);
    e->strs[ulen + rlen + 2 + blen] = '\0';
    e->bound = e->strs + ulen + rlen + 2;
    return e;
}
