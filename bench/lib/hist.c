/*
 * hist: log-linear histogram. Bucket layout: the first 2^S buckets hold the
 * values 0..2^S-1 exactly; above that, each power of two ("magnitude" m >= 1)
 * is cut into 2^(S-1) buckets of width 2^m. A value there is at least
 * 2^(S-1+m), so a bucket is never wider than 1/2^(S-1) of what it holds:
 * 1/128 for S = 8.
 */
#include "bench/lib/hist.h"

#include <string.h>

#define SUB (1u << HIST_SUB_BITS)
#define HALF (SUB / 2)

void hist_reset(struct hist *h)
{
    memset(h, 0, sizeof(*h));
}

static unsigned msb64(uint64_t v)
{
    return 63u - (unsigned)__builtin_clzll(v | 1);
}

unsigned hist_index(uint64_t v)
{
    if (v < SUB)
        return (unsigned)v;
    unsigned m = msb64(v) - HIST_SUB_BITS + 1; /* v >> m lies in [HALF, SUB) */
    if (m > HIST_MAGNITUDES - 1)
        return HIST_BUCKETS - 1;
    return SUB + (m - 1) * HALF + (unsigned)((v >> m) - HALF);
}

uint64_t hist_bucket_top(unsigned idx)
{
    if (idx < SUB)
        return idx;
    unsigned m = (idx - SUB) / HALF + 1;
    uint64_t sub = (idx - SUB) % HALF + HALF;
    return ((sub + 1) << m) - 1;
}

void hist_record(struct hist *h, uint64_t v)
{
    if (h->count == 0 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->count++;
    h->sum += (double)v;
    h->buckets[hist_index(v)]++;
}

uint64_t hist_percentile(const struct hist *h, double p)
{
    if (h->count == 0)
        return 0;
    if (p < 0)
        p = 0;
    if (p > 100)
        p = 100;
    /* rank of the sample wanted, 1-based, rounded up */
    uint64_t rank = (uint64_t)((p / 100.0) * (double)h->count + 0.999999);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t top = hist_bucket_top(i);
            if (top > h->max)
                top = h->max;
            if (top < h->min)
                top = h->min;
            return top;
        }
    }
    return h->max;
}

double hist_mean(const struct hist *h)
{
    return h->count ? h->sum / (double)h->count : 0.0;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
    if (src->count == 0)
        return;
    if (dst->count == 0 || src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    dst->count += src->count;
    dst->sum += src->sum;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
}
