/*
 * rstore_metrics: the store's counters, for /metrics.
 *
 * Each instance counts on its own loop thread into plain fields with relaxed
 * atomic stores (ST_INC in rstore_int.h); the admin thread reads them here
 * with relaxed loads, adds the workers up and formats them. No lock is taken
 * on the request path, and a scrape sees each counter whole, if not every
 * counter at the same instant.
 */
#include "connectors/rstore_int.h"

#include <stdio.h>
#include <string.h>

const uint32_t rstore_lat_bounds_us[RSTORE_LAT_BUCKETS - 1] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 1000000};

#define LD(f) __atomic_load_n(&rs->st.f, __ATOMIC_RELAXED)

void rstore_stats_get(const struct rstore *rs, struct rstore_stats *o)
{
    memset(o, 0, sizeof(*o));
    o->hits = LD(hits);
    o->misses = LD(misses);
    o->negative_hits = LD(negative_hits);
    o->fallbacks = LD(fallbacks);
    o->timeouts = LD(timeouts);
    o->unavailable = LD(unavailable);
    o->fetches = LD(fetches);
    o->fetch_errors = LD(fetch_errors);
    o->invalidations = LD(invalidations);
    o->reconnects = LD(reconnects);
    o->sightings_sent = LD(sightings_sent);
    o->sightings_suppressed = LD(sightings_suppressed);
    o->sightings_dropped = LD(sightings_dropped);
    o->abuse_ops = LD(abuse_ops);
    o->lat_count = LD(lat_count);
    o->lat_sum_us = LD(lat_sum_us);
    for (int i = 0; i < RSTORE_LAT_BUCKETS; i++)
        o->lat_buckets[i] = LD(lat_buckets[i]);
    o->entries = LD(entries);
    /* link and last_contact are plain fields owned by the loop thread; a
     * torn read is impossible for aligned ints on the targets we build for. */
    enum rs_link link = __atomic_load_n(&rs->link, __ATOMIC_RELAXED);
    int64_t last = __atomic_load_n(&rs->last_contact, __ATOMIC_RELAXED);
    o->connected = link == LINK_UP;
    o->stale = link != LINK_UP && (int64_t)(uv_hrtime() / 1000000) - last > rs->max_stale_ms;
    o->since_contact_ms = link == LINK_UP ? 0 : (int64_t)(uv_hrtime() / 1000000) - last;
}

void rstore_stats_add(struct rstore_stats *sum, const struct rstore_stats *one)
{
    sum->hits += one->hits;
    sum->misses += one->misses;
    sum->negative_hits += one->negative_hits;
    sum->fallbacks += one->fallbacks;
    sum->timeouts += one->timeouts;
    sum->unavailable += one->unavailable;
    sum->fetches += one->fetches;
    sum->fetch_errors += one->fetch_errors;
    sum->invalidations += one->invalidations;
    sum->reconnects += one->reconnects;
    sum->sightings_sent += one->sightings_sent;
    sum->sightings_suppressed += one->sightings_suppressed;
    sum->sightings_dropped += one->sightings_dropped;
    sum->abuse_ops += one->abuse_ops;
    sum->lat_count += one->lat_count;
    sum->lat_sum_us += one->lat_sum_us;
    for (int i = 0; i < RSTORE_LAT_BUCKETS; i++)
        sum->lat_buckets[i] += one->lat_buckets[i];
    sum->entries += one->entries;
    sum->connected += one->connected;
    sum->stale += one->stale;
    if (one->since_contact_ms > sum->since_contact_ms)
        sum->since_contact_ms = one->since_contact_ms;
}

int rstore_stats_format(const struct rstore_stats *st, char *buf, size_t len)
{
    size_t off = 0;
#define OUT(...)                                                                                   \
    do {                                                                                           \
        int n_ = snprintf(buf + off, off < len ? len - off : 0, __VA_ARGS__);                      \
        if (n_ < 0 || off + (size_t)n_ >= len)                                                     \
            return RSTORE_ENOSPC;                                                                  \
        off += (size_t)n_;                                                                         \
    } while (0)
    OUT("# TYPE easgate_redis_cache_hits_total counter\neasgate_redis_cache_hits_total %llu\n",
        (unsigned long long)st->hits);
    OUT("# TYPE easgate_redis_cache_negative_hits_total counter\n"
        "easgate_redis_cache_negative_hits_total %llu\n",
        (unsigned long long)st->negative_hits);
    OUT("# TYPE easgate_redis_cache_misses_total counter\neasgate_redis_cache_misses_total %llu\n",
        (unsigned long long)st->misses);
    OUT("# TYPE easgate_redis_cache_entries gauge\neasgate_redis_cache_entries %llu\n",
        (unsigned long long)st->entries);
    OUT("# TYPE easgate_redis_fallbacks_total counter\neasgate_redis_fallbacks_total %llu\n",
        (unsigned long long)st->fallbacks);
    OUT("# TYPE easgate_redis_lookup_timeouts_total counter\n"
        "easgate_redis_lookup_timeouts_total %llu\n",
        (unsigned long long)st->timeouts);
    OUT("# TYPE easgate_redis_unavailable_total counter\neasgate_redis_unavailable_total %llu\n",
        (unsigned long long)st->unavailable);
    OUT("# TYPE easgate_redis_fetches_total counter\neasgate_redis_fetches_total %llu\n",
        (unsigned long long)st->fetches);
    OUT("# TYPE easgate_redis_fetch_errors_total counter\neasgate_redis_fetch_errors_total %llu\n",
        (unsigned long long)st->fetch_errors);
    OUT("# TYPE easgate_redis_invalidations_total counter\n"
        "easgate_redis_invalidations_total %llu\n",
        (unsigned long long)st->invalidations);
    OUT("# TYPE easgate_redis_connects_total counter\neasgate_redis_connects_total %llu\n",
        (unsigned long long)st->reconnects);
    OUT("# TYPE easgate_redis_sightings_total counter\n"
        "easgate_redis_sightings_total{result=\"sent\"} %llu\n"
        "easgate_redis_sightings_total{result=\"suppressed\"} %llu\n"
        "easgate_redis_sightings_total{result=\"dropped\"} %llu\n",
        (unsigned long long)st->sightings_sent, (unsigned long long)st->sightings_suppressed,
        (unsigned long long)st->sightings_dropped);
    OUT("# TYPE easgate_redis_abuse_commands_total counter\n"
        "easgate_redis_abuse_commands_total %llu\n",
        (unsigned long long)st->abuse_ops);
    OUT("# TYPE easgate_redis_lookup_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < RSTORE_LAT_BUCKETS; i++) {
        cum += st->lat_buckets[i];
        if (i < RSTORE_LAT_BUCKETS - 1)
            OUT("easgate_redis_lookup_seconds_bucket{le=\"%g\"} %llu\n",
                rstore_lat_bounds_us[i] / 1e6, (unsigned long long)cum);
        else
            OUT("easgate_redis_lookup_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    OUT("easgate_redis_lookup_seconds_sum %.6f\neasgate_redis_lookup_seconds_count %llu\n",
        st->lat_sum_us / 1e6, (unsigned long long)st->lat_count);
    OUT("# TYPE easgate_redis_connected gauge\neasgate_redis_connected %llu\n",
        (unsigned long long)st->connected);
    OUT("# TYPE easgate_redis_stale gauge\neasgate_redis_stale %llu\n",
        (unsigned long long)st->stale);
    OUT("# TYPE easgate_redis_seconds_since_contact gauge\n"
        "easgate_redis_seconds_since_contact %.3f\n",
        st->since_contact_ms / 1e3);
#undef OUT
    return (int)off;
}
