/*
 * hist: a log-linear latency histogram in the manner of HdrHistogram.
 *
 * Values (microseconds, or any unsigned unit) are counted in buckets whose
 * width grows with the value so that every recorded value is known to within
 * 1/128 (under 0.8 %) at any magnitude, in a fixed 42 KiB array: recording is
 * one shift and one increment, and percentiles over millions of samples cost
 * a single pass. Histograms of the same kind merge by adding counts, which is
 * how several load-generator processes are combined.
 *
 * The struct is plain data: embed it or allocate it; hist_reset() clears it.
 */
#ifndef EG_BENCH_HIST_H
#define EG_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 8 /* bucket width <= 1/128 of the values it holds */
#define HIST_MAGNITUDES 41
#define HIST_BUCKETS ((1u << HIST_SUB_BITS) + (HIST_MAGNITUDES - 1) * (1u << (HIST_SUB_BITS - 1)))

struct hist {
    uint64_t count;
    uint64_t min, max;
    double sum;
    uint64_t buckets[HIST_BUCKETS];
};

void hist_reset(struct hist *h);

/* Count one value. Values beyond the top bucket (about 2^48) are clamped. */
void hist_record(struct hist *h, uint64_t v);

/* The value at percentile p (0..100): the highest value of the bucket that
 * holds the p-th sample, never more than the largest value recorded.
 * 0 for an empty histogram. */
uint64_t hist_percentile(const struct hist *h, double p);

double hist_mean(const struct hist *h);

/* dst += src. */
void hist_merge(struct hist *dst, const struct hist *src);

/* Bucket index of v and the highest value that bucket holds (for tests). */
unsigned hist_index(uint64_t v);
uint64_t hist_bucket_top(unsigned idx);

#endif
