/*
 * budget: request budgets, failed-login blocks and autoblock counts of one
 * worker (budget.h says what and why).
 *
 * Every key (a DeviceId, a user, a client address, a blocked address or
 * user-and-address) is an entry in one open-addressed table of
 * BUDGET_SLOTS, probed over BUDGET_PROBE slots. The table is bounded, so a
 * site with more active keys than slots loses some state: when no slot is
 * free the entry that costs least to forget goes (one whose bucket has
 * refilled and that holds no block, else the least recently used). A key
 * that comes back starts with a full burst, which is what it would mostly
 * have had anyway.
 *
 * Sharing: each admitted request adds one to its entries' unsent counts and
 * puts them on the active list; every BUDGET_SYNC_MS the list goes to Redis
 * as one script (an HINCRBY per key into the current wall-clock second's
 * hash, rstore_count_add). Each total that comes back is every proxy's count
 * for that key and second; what is not this worker's own is charged to the
 * local bucket. A key being refused here stays on the list for
 * BUDGET_HOT_MS and asks for the totals even when it admits nothing, and
 * the first flush of a second asks once more for the last one's. Wall-clock
 * seconds, so proxies must keep their clocks within a fraction of a second
 * (NTP does).
 */
#include "proxy/budget.h"

#include "common/log.h"
#include "connectors/rstore.h"
#include "eas/easq.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BUDGET_SLOTS 16384u /* entries per worker, a power of two */
#define BUDGET_PROBE 8u
#define BUDGET_SYNC_MS 100  /* how often a worker tells Redis what it let through */
#define BUDGET_HOT_MS 2000  /* how long a refused key keeps asking for the totals */
#define BUDGET_KEY_MAX 80   /* a DeviceId, "|" and an IPv6 address */
#define BUDGET_AB_PEND 4096 /* devices with autoblock incidents waiting for a flush */

/* ---- the token bucket ---- */

static double bucket_cap(const struct pol_bucket *cf)
{
    return (double)(cf->burst > 0 ? cf->burst : cf->per_minute);
}

static void bucket_refill(struct budget_bucket *bk, const struct pol_bucket *cf, int64_t now_ms)
{
    double cap = bucket_cap(cf);
    if (bk->last_ms == 0) {
        bk->tokens = cap;
        bk->last_ms = now_ms ? now_ms : 1;
        return;
    }
    if (now_ms > bk->last_ms) {
        bk->tokens += (double)(now_ms - bk->last_ms) * cf->per_minute / 60000.0;
        bk->last_ms = now_ms;
    }
    if (bk->tokens > cap)
        bk->tokens = cap;
}

int64_t budget_bucket_take(struct budget_bucket *bk, const struct pol_bucket *cf, int64_t now_ms)
{
    if (cf->per_minute <= 0)
        return 0;
    bucket_refill(bk, cf, now_ms);
    if (bk->tokens >= 1.0) {
        bk->tokens -= 1.0;
        return 0;
    }
    double ms = (1.0 - bk->tokens) * 60000.0 / cf->per_minute;
    return (int64_t)ms + 1;
}

void budget_bucket_charge(struct budget_bucket *bk, const struct pol_bucket *cf, double n,
                          int64_t now_ms)
{
    if (cf->per_minute <= 0 || n <= 0)
        return;
    bucket_refill(bk, cf, now_ms);
    bk->tokens -= n;
    /* The others' requests spent the same budget: they are owed in full,
     * or this worker lets through what they already used (a floor of one
     * burst lost most of a second's total whenever the burst was small).
     * Bounded all the same, at a minute and a burst, so that a count gone
     * wrong cannot lock a key out for long. */
    double floor = -(bucket_cap(cf) + cf->per_minute);
    if (bk->tokens < floor)
        bk->tokens = floor;
}

/* ---- the table ---- */

enum ekind {
    E_DEVICE = 'd', /* budget, autoblock counts */
    E_USER = 'u',
    E_CLIENT = 'c',
    E_BLK_CLIENT = 'C', /* failed-login blocks */
    E_BLK_USER = 'U',
    E_BLK_KNOWN = 'K',
};

struct bent {
    uint32_t hash; /* 0: empty */
    uint32_t gen;  /* bumped when the slot takes another key */
    uint8_t kind, klen, listed;
    char key[BUDGET_KEY_MAX];
    int64_t touched;
    struct budget_bucket bk;
    int32_t unsent;             /* admitted (less refunds), not yet told to Redis */
    int64_t sec[2];             /* the last two seconds told: */
    int64_t own[2], seen[2];    /* ours told, others' charged */
    int64_t block_until;        /* loop ms; failed-login blocks */
    int64_t hot_until;          /* refused lately: ask Redis for the totals */
    uint32_t ab_n[POL_AB_N];    /* autoblock: incidents in the window */
    int64_t ab_start[POL_AB_N]; /* its start, loop ms */
    uint32_t ua_h;              /* the last accepted User-Agent's hash */
    uint64_t ok_user_h;         /* who Exchange last accepted for the device, */
    uint32_t ok_client_h;       /* from where, */
    int64_t ok_ms;              /* and when (loop ms; 0: never) */
    uint16_t abp;               /* its autoblock incidents waiting: index + 1 in abp */
};

struct ab_pend {
    uint32_t slot, gen;
    uint32_t by[POL_AB_N];
    char user[64], client[46]; /* the last incident's */
};

struct budget {
    uv_loop_t *loop;
    struct rstore *rs;
    struct metrics *m;
    uv_timer_t timer;
    struct pol_bucket cf[POL_BUDGET_N]; /* the last policy's, for charging */
    struct bent *tab;
    uint32_t *active; /* slots with unsent counts */
    size_t n_active;
    struct pol_autoblock ab[POL_AB_N]; /* the last policy's, for the totals */
    struct ab_pend *abp;               /* autoblock incidents for the next flush */
    size_t n_abp;
};

static uint32_t fnv(uint32_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static uint32_t key_hash(char kind, const char *key, size_t n)
{
    uint32_t h = fnv(2166136261u, &kind, 1);
    h = fnv(h, key, n);
    return h ? h : 1;
}

/* Is the entry cheap to forget at now? */
static bool forgettable(const struct bent *e, int64_t now)
{
    return !e->listed && !e->abp && e->block_until <= now && now - e->touched > 60000;
}

/* The entry for (kind, key): found, or made when make (else NULL). */
static struct bent *entry(struct budget *b, char kind, const char *key, bool make, int64_t now)
{
    size_t n = strlen(key);
    if (n >= BUDGET_KEY_MAX)
        n = BUDGET_KEY_MAX - 1;
    uint32_t h = key_hash(kind, key, n);
    struct bent *empty = NULL, *cheap = NULL, *lru = NULL;
    for (uint32_t i = 0; i < BUDGET_PROBE; i++) {
        struct bent *e = &b->tab[(h + i) & (BUDGET_SLOTS - 1)];
        if (e->hash == h && e->kind == (uint8_t)kind && e->klen == n &&
            memcmp(e->key, key, n) == 0) {
            e->touched = now;
            return e;
        }
        if (!make)
            continue;
        if (e->hash == 0) {
            if (!empty)
                empty = e;
        } else if (forgettable(e, now)) {
            if (!cheap)
                cheap = e;
        } else if (!e->listed && !e->abp && e->block_until <= now && e->touched < now &&
                   (!lru || e->touched < lru->touched)) {
            /* never one touched this very millisecond: it may be another
             * entry of the request being counted */
            lru = e;
        }
    }
    struct bent *victim = empty ? empty : cheap ? cheap : lru;
    if (!victim)
        return NULL; /* every slot is busy or blocking: this key is not counted */
    uint32_t gen = victim->gen + 1;
    memset(victim, 0, sizeof(*victim));
    victim->gen = gen;
    victim->hash = h;
    victim->kind = (uint8_t)kind;
    victim->klen = (uint8_t)n;
    memcpy(victim->key, key, n);
    victim->touched = now;
    return victim;
}

/* ---- lifetime ---- */

static void on_sync(uv_timer_t *t);
static void ab_flush(struct budget *b);

struct budget *budget_new(uv_loop_t *loop, struct rstore *rs, struct metrics *m)
{
    struct budget *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->tab = calloc(BUDGET_SLOTS, sizeof(*b->tab));
    b->active = calloc(BUDGET_SLOTS, sizeof(*b->active));
    if (!b->tab || !b->active) {
        free(b->tab);
        free(b->active);
        free(b);
        return NULL;
    }
    b->loop = loop;
    b->rs = rs;
    b->m = m;
    uv_timer_init(loop, &b->timer);
    b->timer.data = b;
    if (rs) {
        uv_timer_start(&b->timer, on_sync, BUDGET_SYNC_MS, BUDGET_SYNC_MS);
        uv_unref((uv_handle_t *)&b->timer);
    }
    return b;
}

static void on_closed(uv_handle_t *h)
{
    struct budget *b = h->data;
    free(b->abp);
    free(b->tab);
    free(b->active);
    free(b);
}

void budget_free(struct budget *b)
{
    if (!b)
        return;
    uv_close((uv_handle_t *)&b->timer, on_closed);
}

/* ---- sharing through Redis ---- */

struct flush {
    struct budget *b;
    size_t n;
    struct {
        uint32_t slot, gen;
        int64_t own, sec;
    } it[];
};

static const struct pol_bucket *cf_of(const struct budget *b, uint8_t kind)
{
    return &b->cf[kind == E_DEVICE ? POL_BUDGET_DEVICE
                  : kind == E_USER ? POL_BUDGET_USER
                                   : POL_BUDGET_CLIENT];
}

static void on_totals(void *arg, size_t i, long long total)
{
    struct flush *f = arg;
    if (i == SIZE_MAX) {
        free(f);
        return;
    }
    if (i >= f->n || total < 0)
        return;
    struct budget *b = f->b;
    struct bent *e = &b->tab[f->it[i].slot];
    if (e->gen != f->it[i].gen)
        return; /* the slot holds another key now */
    int j = e->sec[0] == f->it[i].sec ? 0 : e->sec[1] == f->it[i].sec ? 1 : -1;
    long long others = total - (long long)f->it[i].own;
    if (j < 0 || others <= e->seen[j])
        return;
    budget_bucket_charge(&e->bk, cf_of(b, e->kind), (double)(others - e->seen[j]),
                         (int64_t)uv_now(b->loop));
    e->seen[j] = others;
}

/* One batch for one second's hash: room for n entries. */
struct batch {
    struct flush *f;
    struct rstore_count *v;
    char *fields;
    size_t k;
};

static bool batch_init(struct batch *bt, size_t n)
{
    bt->f = malloc(sizeof(*bt->f) + n * sizeof(bt->f->it[0]));
    bt->v = malloc(n * sizeof(*bt->v));
    bt->fields = malloc(n * (BUDGET_KEY_MAX + 2));
    bt->k = 0;
    return bt->f && bt->v && bt->fields;
}

static void batch_add(struct batch *bt, uint32_t slot, const struct bent *e, int32_t by,
                      int64_t own, int64_t sec)
{
    char *fl = bt->fields + bt->k * (BUDGET_KEY_MAX + 2);
    fl[0] = (char)e->kind;
    fl[1] = ':';
    memcpy(fl + 2, e->key, e->klen);
    bt->v[bt->k] = (struct rstore_count){fl, (size_t)e->klen + 2, by};
    bt->f->it[bt->k].slot = slot;
    bt->f->it[bt->k].gen = e->gen;
    bt->f->it[bt->k].own = own;
    bt->f->it[bt->k].sec = sec;
    bt->k++;
}

static void batch_send(struct budget *b, struct batch *bt, int64_t sec)
{
    if (bt->f) {
        bt->f->b = b;
        bt->f->n = bt->k;
    }
    if (!bt->k || rstore_count_add(b->rs, sec, bt->v, bt->k, on_totals, bt->f) < 0)
        free(bt->f); /* Redis away: each worker holds its limits alone meanwhile */
    free(bt->v);
    free(bt->fields);
}

static void on_sync(uv_timer_t *t)
{
    struct budget *b = t->data;
    ab_flush(b);
    if (!b->n_active)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t sec = (int64_t)ts.tv_sec;
    size_t n = b->n_active, keep = 0;
    struct batch cur, prev;
    /* both are initialised whatever the other did: both are freed below */
    bool ok_cur = batch_init(&cur, n), ok_prev = batch_init(&prev, n);
    bool ok = ok_cur && ok_prev;
    int64_t now = (int64_t)uv_now(b->loop);
    for (size_t i = 0; i < n; i++) {
        uint32_t slot = b->active[i];
        struct bent *e = &b->tab[slot];
        int32_t u = e->unsent;
        e->unsent = 0;
        /* A key that is being refused here asks for the totals even when
         * it let nothing through: a worker that only learnt what others
         * spent when it spent something itself would miss every second in
         * which they left it nothing, and let its refilled burst through. */
        bool hot = e->hot_until > now;
        if (hot)
            b->active[keep++] = slot;
        else
            e->listed = 0;
        if ((!u && !hot) || !ok)
            continue;
        if (e->sec[0] != sec) {
            /* What the others added to the last second after this
             * worker's last word on it is asked once more (HINCRBY 0),
             * else every second would lose up to a sync interval of it. */
            if (e->sec[0] == sec - 1)
                batch_add(&prev, slot, e, 0, e->own[0], sec - 1);
            e->sec[1] = e->sec[0], e->own[1] = e->own[0], e->seen[1] = e->seen[0];
            e->sec[0] = sec, e->own[0] = 0, e->seen[0] = 0;
        }
        e->own[0] += u;
        batch_add(&cur, slot, e, u, e->own[0], sec);
    }
    b->n_active = keep;
    batch_send(b, &prev, sec - 1);
    batch_send(b, &cur, sec);
}

static void admitted(struct budget *b, struct bent *e, int32_t n)
{
    if (!e || !b->rs)
        return;
    e->unsent += n;
    if (!e->listed) {
        e->listed = 1;
        b->active[b->n_active++] = (uint32_t)(e - b->tab);
    }
}

/* ---- who ---- */

static uint64_t fnv64(const char *s)
{
    uint64_t h = 14695981039346656037ull;
    for (; *s; s++) {
        h ^= (unsigned char)tolower((unsigned char)*s);
        h *= 1099511628211ull;
    }
    return h ? h : 1;
}

void budget_mark_set(struct budget_mark *m, const char *user, const char *devid, const char *client,
                     bool known, bool cred)
{
    m->user_h = user && user[0] ? fnv64(user) : 0;
    snprintf(m->user, sizeof(m->user), "%s", user ? user : "");
    snprintf(m->devid, sizeof(m->devid), "%s", devid ? devid : "");
    snprintf(m->client, sizeof(m->client), "%s", client ? client : "");
    m->known = known;
    m->cred = cred;
}

static void user_key(const struct budget_mark *m, char *out, size_t cap)
{
    snprintf(out, cap, "%016llx", (unsigned long long)m->user_h);
}

/* ---- autoblock ---- */

static void autoblock_report(struct budget *b, const struct pol_autoblock *ab,
                             const struct budget_mark *m, enum pol_autoblock_rule r, long long n)
{
    M_ADD(b->m->autoblock_crossed[r], 1);
    eg_warn("autoblock: device %s (user %s, %s) crossed %s: %lld in %llds", m->devid,
            m->user[0] ? m->user : "-", m->client, pol_autoblock_name(r), n,
            (long long)(ab->window_ms / 1000));
    if (!b->rs)
        return;
    char cnt[24], win[24], blk[24];
    snprintf(cnt, sizeof(cnt), "%lld", n);
    snprintf(win, sizeof(win), "%lld", (long long)ab->window_ms);
    snprintf(blk, sizeof(blk), "%lld", (long long)ab->block_ms);
    const char *f[] = {RSTORE_SF_RULE,        pol_autoblock_name(r),
                       RSTORE_SF_COUNT,       cnt,
                       RSTORE_SF_WINDOW,      win,
                       RSTORE_SF_BLOCK,       blk,
                       RSTORE_SF_ACTION,      pol_autoblock_action_name(ab->action),
                       RSTORE_SF_CLIENT_ADDR, m->client,
                       RSTORE_SF_USER,        m->user}; /* last: left out when "" */
    size_t nf = sizeof(f) / sizeof(f[0]) - (m->user[0] ? 0 : 2);
    rstore_sighting(b->rs, RSTORE_SIGHT_AUTOBLOCK, m->devid, strlen(m->devid), f, nf);
}

/* This worker's own count: by incidents more in the rule's window, reported
 * once per window, when the count reaches the limit. */
static void autoblock_local(struct budget *b, const struct pol_autoblock *ab,
                            const struct budget_mark *m, struct bent *e, enum pol_autoblock_rule r,
                            uint32_t by, int64_t now)
{
    if (e->ab_n[r] == 0 || now - e->ab_start[r] >= ab->window_ms) {
        e->ab_start[r] = now;
        e->ab_n[r] = 0;
    }
    uint32_t was = e->ab_n[r];
    e->ab_n[r] += by;
    if (was < (uint32_t)ab->limit && e->ab_n[r] >= (uint32_t)ab->limit)
        autoblock_report(b, ab, m, r, e->ab_n[r]);
}

/* Incidents waiting for the next flush to Redis, one item per device with
 * who sent the last of them (for the report). */
static struct ab_pend *ab_pending(struct budget *b, const struct budget_mark *m, struct bent *e)
{
    uint32_t slot = (uint32_t)(e - b->tab);
    if (e->abp && e->abp <= b->n_abp && b->abp[e->abp - 1].slot == slot &&
        b->abp[e->abp - 1].gen == e->gen) {
        struct ab_pend *p = &b->abp[e->abp - 1];
        snprintf(p->user, sizeof(p->user), "%s", m->user);
        snprintf(p->client, sizeof(p->client), "%s", m->client);
        return p;
    }
    if (!b->abp && !(b->abp = calloc(BUDGET_AB_PEND, sizeof(*b->abp))))
        return NULL;
    if (b->n_abp == BUDGET_AB_PEND)
        return NULL;
    struct ab_pend *p = &b->abp[b->n_abp++];
    memset(p, 0, sizeof(*p));
    p->slot = slot;
    p->gen = e->gen;
    snprintf(p->user, sizeof(p->user), "%s", m->user);
    snprintf(p->client, sizeof(p->client), "%s", m->client);
    e->abp = (uint16_t)b->n_abp;
    return p;
}

/*
 * One incident of rule r for the device e. With Redis, it waits for the
 * next flush and every proxy's count for the window decides (the worker
 * whose addition reaches the limit reports, so a device whose requests
 * spread over proxies is reported once, as on one); without, or when the
 * table of waiting items is full, the worker counts alone.
 */
static void autoblock_count(struct budget *b, const struct pol_abuse *a,
                            const struct budget_mark *m, struct bent *e, enum pol_autoblock_rule r,
                            int64_t now)
{
    const struct pol_autoblock *ab = &a->autoblock[r];
    if (!e || ab->limit <= 0)
        return;
    b->ab[r] = *ab;
    struct ab_pend *p = b->rs && rstore_connected(b->rs) ? ab_pending(b, m, e) : NULL;
    if (p)
        p->by[r]++;
    else
        autoblock_local(b, ab, m, e, r, 1, now);
}

struct ab_flush {
    struct budget *b;
    size_t n;
    struct {
        struct budget_mark m;
        uint8_t rule;
        uint32_t by;
    } it[];
};

static void ab_local_all(struct budget *b, struct ab_flush *f, size_t from)
{
    int64_t now = (int64_t)uv_now(b->loop);
    for (size_t i = from; i < f->n; i++) {
        struct bent *e = entry(b, E_DEVICE, f->it[i].m.devid, true, now);
        if (e)
            autoblock_local(b, &b->ab[f->it[i].rule], &f->it[i].m, e, f->it[i].rule, f->it[i].by,
                            now);
    }
}

static void on_ab_totals(void *arg, size_t i, long long total)
{
    struct ab_flush *f = arg;
    if (i == SIZE_MAX) {
        free(f);
        return;
    }
    if (i >= f->n)
        return;
    struct budget *b = f->b;
    const struct pol_autoblock *ab = &b->ab[f->it[i].rule];
    if (total < 0) { /* Redis did not answer: this worker counts them alone */
        int64_t now = (int64_t)uv_now(b->loop);
        struct bent *e = entry(b, E_DEVICE, f->it[i].m.devid, true, now);
        if (e)
            autoblock_local(b, ab, &f->it[i].m, e, f->it[i].rule, f->it[i].by, now);
        return;
    }
    if (ab->limit > 0 && total - f->it[i].by < ab->limit && total >= ab->limit)
        autoblock_report(b, ab, &f->it[i].m, f->it[i].rule, total);
}

static void ab_flush(struct budget *b)
{
    if (!b->n_abp)
        return;
    size_t n = 0;
    for (size_t i = 0; i < b->n_abp; i++)
        for (int r = 0; r < POL_AB_N; r++)
            n += b->abp[i].by[r] > 0;
    struct ab_flush *f = malloc(sizeof(*f) + n * sizeof(f->it[0]));
    struct rstore_ab *v = malloc(n * sizeof(*v));
    if (!f || !v) {
        free(f), free(v);
        b->n_abp = 0; /* out of memory: these incidents are lost */
        return;
    }
    f->b = b;
    f->n = 0;
    for (size_t i = 0; i < b->n_abp; i++) {
        struct ab_pend *p = &b->abp[i];
        struct bent *e = &b->tab[p->slot];
        if (e->gen != p->gen)
            continue; /* the slot holds another key now: forgotten with it */
        e->abp = 0;
        for (int r = 0; r < POL_AB_N; r++) {
            if (!p->by[r])
                continue;
            struct budget_mark *m = &f->it[f->n].m;
            memset(m, 0, sizeof(*m));
            memcpy(m->devid, e->key, e->klen);
            snprintf(m->user, sizeof(m->user), "%s", p->user);
            snprintf(m->client, sizeof(m->client), "%s", p->client);
            f->it[f->n].rule = (uint8_t)r;
            f->it[f->n].by = p->by[r];
            v[f->n] = (struct rstore_ab){pol_autoblock_name((enum pol_autoblock_rule)r), m->devid,
                                         p->by[r], b->ab[r].window_ms};
            f->n++;
        }
    }
    b->n_abp = 0;
    int rc = f->n ? rstore_ab_add(b->rs, v, f->n, on_ab_totals, f) : -1;
    free(v);
    if (rc < 0) {
        ab_local_all(b, f, 0);
        free(f);
    }
}

/* ---- a request ---- */

static bool blocked(struct budget *b, char kind, const char *key, int64_t now, int64_t *left)
{
    struct bent *e = entry(b, kind, key, false, now);
    if (!e || e->block_until <= now)
        return false;
    *left = e->block_until - now;
    return true;
}

static bool auth_refused(struct budget *b, const struct budget_mark *m, int64_t now,
                         struct budget_verdict *v)
{
    char key[BUDGET_KEY_MAX];
    int64_t left = 0;
    if (!m->client[0])
        return false;
    int scope = -1;
    if (m->known && m->devid[0]) {
        /* A device the registry knows is held only by its own count, so
         * a spray from its address does not lock its owner out. */
        snprintf(key, sizeof(key), "%s|%s", m->devid, m->client);
        if (blocked(b, E_BLK_KNOWN, key, now, &left))
            scope = 2, v->reason = "auth-block-device";
    } else if (blocked(b, E_BLK_CLIENT, m->client, now, &left)) {
        scope = 0, v->reason = "auth-block-client";
    } else if (m->user_h) {
        char uk[20];
        user_key(m, uk, sizeof(uk));
        snprintf(key, sizeof(key), "%s|%s", uk, m->client);
        if (blocked(b, E_BLK_USER, key, now, &left))
            scope = 1, v->reason = "auth-block-user";
    }
    if (scope < 0)
        return false;
    M_ADD(b->m->auth_refused[scope], 1);
    v->refused = true;
    v->throttle = NULL;
    v->retry_ms = left;
    return true;
}

/* A refused request is the device's own when it carries credentials and
 * comes from the user and address whose request Exchange last accepted
 * for the device, within the OutOfBudgets window. Behind one NAT address
 * an attacker who names the same user still passes: documented. */
static bool own_request(const struct bent *dev, const struct pol_abuse *a,
                        const struct budget_mark *m, int64_t now)
{
    return m->cred && dev->ok_ms &&
           now - dev->ok_ms < a->autoblock[POL_AB_OUT_OF_BUDGETS].window_ms &&
           dev->ok_user_h == m->user_h &&
           dev->ok_client_h == key_hash('c', m->client, strlen(m->client));
}

void budget_take(struct budget *b, const struct pol_abuse *a, struct budget_mark *m, int cmd,
                 const char *ua, int64_t now, struct budget_verdict *v)
{
    *v = (struct budget_verdict){0};
    if (!b || !a || !m)
        return;
    memcpy(b->cf, a->budget, sizeof(b->cf));
    if (auth_refused(b, m, now, v))
        return;
    char uk[20];
    user_key(m, uk, sizeof(uk));
    const char *keys[POL_BUDGET_N] = {m->devid, m->user_h ? uk : "", m->client};
    const char kinds[POL_BUDGET_N] = {E_DEVICE, E_USER, E_CLIENT};
    bool ab_on = false;
    for (int r = 0; r < POL_AB_N; r++)
        ab_on |= a->autoblock[r].limit > 0;
    struct bent *e[POL_BUDGET_N] = {0};
    for (int k = 0; k < POL_BUDGET_N; k++) {
        bool want = a->budget[k].per_minute > 0 || (k == POL_BUDGET_DEVICE && ab_on);
        if (keys[k][0] && want)
            e[k] = entry(b, kinds[k], keys[k], true, now);
    }
    struct bent *dev = e[POL_BUDGET_DEVICE];
    m->cmd = cmd;
    m->ua_h = ua && ua[0] ? key_hash('a', ua, strlen(ua)) : 0;
    for (int k = 0; k < POL_BUDGET_N; k++) {
        if (!e[k])
            continue;
        int64_t wait = budget_bucket_take(&e[k]->bk, &a->budget[k], now);
        if (wait == 0)
            continue;
        /* Refused: the tokens already taken for this request go back. */
        for (int i = 0; i < k; i++)
            if (e[i] && a->budget[i].per_minute > 0)
                e[i]->bk.tokens += 1.0;
        M_ADD(b->m->budget_refused[k], 1);
        if (b->rs) {
            e[k]->hot_until = now + BUDGET_HOT_MS;
            admitted(b, e[k], 0);
        }
        if (k == POL_BUDGET_DEVICE && ab_on && own_request(dev, a, m, now))
            autoblock_count(b, a, m, dev, POL_AB_OUT_OF_BUDGETS, now);
        v->refused = true;
        v->reason = pol_budget_reason((enum pol_budget_kind)k);
        /* What Exchange itself says when a device runs out of budget. */
        v->throttle = "OutOfBudgets";
        int64_t s = (wait + 999) / 1000 * 1000;
        v->retry_ms = s > a->retry_after_ms ? s : a->retry_after_ms;
        return;
    }
    for (int k = 0; k < POL_BUDGET_N; k++)
        if (a->budget[k].per_minute > 0)
            admitted(b, e[k], 1);
}

void budget_answered(struct budget *b, const struct pol_abuse *a, const struct budget_mark *m,
                     int64_t now)
{
    if (!b || !a || !m || !m->devid[0])
        return;
    bool ab_on = false;
    for (int r = 0; r < POL_AB_N; r++)
        ab_on |= a->autoblock[r].limit > 0;
    if (!ab_on)
        return;
    struct bent *dev = entry(b, E_DEVICE, m->devid, true, now);
    if (!dev)
        return;
    autoblock_count(b, a, m, dev, POL_AB_COMMAND_FREQUENCY, now);
    if (m->cmd == EASQ_CMD_SYNC)
        autoblock_count(b, a, m, dev, POL_AB_SYNC_COMMANDS, now);
    if (m->ua_h) {
        if (dev->ua_h && dev->ua_h != m->ua_h)
            autoblock_count(b, a, m, dev, POL_AB_USER_AGENT_CHANGES, now);
        dev->ua_h = m->ua_h;
    }
    dev->ok_user_h = m->user_h;
    dev->ok_client_h = key_hash('c', m->client, strlen(m->client));
    dev->ok_ms = now ? now : 1;
}

void budget_refund(struct budget *b, const struct pol_abuse *a, const struct budget_mark *m)
{
    if (!b || !a || !m)
        return;
    int64_t now = (int64_t)uv_now(b->loop);
    char uk[20];
    user_key(m, uk, sizeof(uk));
    const char *keys[2] = {m->devid, m->user_h ? uk : ""};
    const char kinds[2] = {E_DEVICE, E_USER};
    for (int k = 0; k < 2; k++) {
        struct bent *e = keys[k][0] && a->budget[k].per_minute > 0
                             ? entry(b, kinds[k], keys[k], false, now)
                             : NULL;
        if (!e)
            continue;
        e->bk.tokens += 1.0;
        if (e->bk.tokens > bucket_cap(&a->budget[k]))
            e->bk.tokens = bucket_cap(&a->budget[k]);
        admitted(b, e, -1);
    }
}

/* ---- failed logins ---- */

struct fail_ctx {
    struct budget *b;
    int scope; /* 0 client, 1 user, 2 known-device */
    char kind;
    char key[BUDGET_KEY_MAX];
    char user[64], devid[EASQ_DEVICEID_MAX + 1], client[46];
};

static const char *const scope_names[] = {"client", "user", "known-device"};

static void on_fail(void *arg, uint64_t tag, enum rstore_fail_outcome o, long long value,
                    long long strike)
{
    (void)tag;
    struct fail_ctx *f = arg;
    struct budget *b = f->b;
    int64_t now = (int64_t)uv_now(b->loop);
    if (o == RSTORE_FAIL_BLOCKED || o == RSTORE_FAIL_ALREADY) {
        struct bent *e = entry(b, f->kind, f->key, true, now);
        if (e)
            e->block_until = now + value;
    }
    if (o == RSTORE_FAIL_BLOCKED) {
        M_ADD(b->m->auth_blocks[f->scope], 1);
        eg_warn("failed logins: %s blocked for %llds (repeat %lld): user %s, client %s, device %s",
                scope_names[f->scope], value / 1000, strike, f->user[0] ? f->user : "-", f->client,
                f->devid[0] ? f->devid : "-");
        char blk[24], st[24];
        snprintf(blk, sizeof(blk), "%lld", value);
        snprintf(st, sizeof(st), "%lld", strike);
        const char *fl[] = {RSTORE_SF_SCOPE,       scope_names[f->scope],
                            RSTORE_SF_BLOCK,       blk,
                            RSTORE_SF_STRIKE,      st,
                            RSTORE_SF_CLIENT_ADDR, f->client,
                            RSTORE_SF_USER,        f->user}; /* last: left out when "" */
        size_t nf = sizeof(fl) / sizeof(fl[0]) - (f->user[0] ? 0 : 2);
        /* The audit trail goes through the core, which keys sightings by
         * device: a request without a DeviceId is only logged. */
        if (f->devid[0] && b->rs)
            rstore_sighting(b->rs, RSTORE_SIGHT_AUTH_BLOCK, f->devid, strlen(f->devid), fl, nf);
    }
    free(f);
}

static void fail_one(struct budget *b, const struct pol_abuse *a, const struct budget_mark *m,
                     int scope, char kind, const char *key, int limit)
{
    if (limit <= 0)
        return;
    struct fail_ctx *f = calloc(1, sizeof(*f));
    if (!f)
        return;
    f->b = b;
    f->scope = scope;
    f->kind = kind;
    snprintf(f->key, sizeof(f->key), "%s", key);
    snprintf(f->user, sizeof(f->user), "%s", m->user);
    snprintf(f->devid, sizeof(f->devid), "%s", m->devid);
    snprintf(f->client, sizeof(f->client), "%s", m->client);
    struct rstore_fail fl = {
        .scope = scope_names[scope],
        .id = f->key,
        .window_ms = a->cred.window_ms,
        .limit = limit,
        .block_ms = a->cred.block_ms,
        .block_max_ms = a->cred.block_max_ms,
        .memory_ms = a->cred.memory_ms,
    };
    if (rstore_fail_add(b->rs, &fl, on_fail, f, 0) < 0)
        free(f); /* Redis away: failed logins are not counted meanwhile */
}

void budget_auth_failed(struct budget *b, const struct pol_abuse *a, const struct budget_mark *m)
{
    if (!b || !a || !m || !m->cred || !m->client[0])
        return;
    M_ADD(b->m->auth_failures, 1);
    if (!b->rs)
        return;
    char key[BUDGET_KEY_MAX];
    if (m->known && m->devid[0]) {
        snprintf(key, sizeof(key), "%s|%s", m->devid, m->client);
        fail_one(b, a, m, 2, E_BLK_KNOWN, key, a->cred.known_failures);
        return;
    }
    fail_one(b, a, m, 0, E_BLK_CLIENT, m->client, a->cred.client_failures);
    if (m->user_h) {
        char uk[20];
        user_key(m, uk, sizeof(uk));
        snprintf(key, sizeof(key), "%s|%s", uk, m->client);
        fail_one(b, a, m, 1, E_BLK_USER, key, a->cred.user_failures);
    }
}
