/* bench.h -- what the benchmarks that load the store directly share: a
 * monotonic clock, a seeded generator and the brand asset document as ingest
 * writes it (docs/documents.md).  Built as the static library sl_bench
 * (bench/CMakeLists.txt). */
#ifndef SIGHTLINE_BENCH_H
#define SIGHTLINE_BENCH_H

#include <stdint.h>

#include <bson/bson.h>

/* CLOCK_MONOTONIC in microseconds. */
int64_t bench_mono_us(void);

/* xorshift64 from a fixed seed: the same figures run after run. */
uint64_t bench_rnd(void);

/* The fields of one asset; scores in micro-units (0..1000000). */
typedef struct bench_asset {
    const char *tenant, *id, *client, *brand, *brand_id, *campaign, *sector;
    int64_t memorability;
    const char *saliency[2]; /* two named saliency measures */
    int64_t saliency_micro[2];
} bench_asset;

/* Appends the asset document of a to d (which the caller initialized). */
void bench_asset_doc(bson_t *d, const bench_asset *a);

#endif
