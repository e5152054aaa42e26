/* bench.c -- the clock, generator and asset document of the benchmarks (see
 * bench.h). */
#include "bench.h"

#include <stdio.h>
#include <time.h>

static uint64_t rng_state = 88172645463325252ULL;

int64_t bench_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

uint64_t bench_rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

void bench_asset_doc(bson_t *d, const bench_asset *a)
{
    char pk[160], gpk[96], gsk[256];
    bson_t s;
    snprintf(pk, sizeof pk, "T#%s#ASSET#%s", a->tenant, a->id);
    snprintf(gpk, sizeof gpk, "T#%s#ASSETS", a->tenant);
    snprintf(gsk, sizeof gsk, "BRAND#%s#CAMPAIGN#%s#ASSET#%s", a->brand, a->campaign, a->id);
    BSON_APPEND_UTF8(d, "pk", pk);
    BSON_APPEND_UTF8(d, "sk", "META");
    BSON_APPEND_UTF8(d, "gsi1pk", gpk);
    BSON_APPEND_UTF8(d, "gsi1sk", gsk);
    BSON_APPEND_UTF8(d, "type", "asset");
    BSON_APPEND_UTF8(d, "tenant", a->tenant);
    BSON_APPEND_UTF8(d, "asset", a->id);
    BSON_APPEND_UTF8(d, "client", a->client);
    BSON_APPEND_UTF8(d, "brand", a->brand);
    BSON_APPEND_UTF8(d, "brand_id", a->brand_id);
    BSON_APPEND_UTF8(d, "sector", a->sector);
    BSON_APPEND_UTF8(d, "campaign", a->campaign);
    BSON_APPEND_UTF8(d, "media_type", "image");
    BSON_APPEND_DOUBLE(d, "memorability", (double)a->memorability / 1e6);
    BSON_APPEND_INT64(d, "memorability_micro", a->memorability);
    BSON_APPEND_DOCUMENT_BEGIN(d, "saliency", &s);
    for (int i = 0; i < 2; i++)
        bson_append_double(&s, a->saliency[i], -1, (double)a->saliency_micro[i] / 1e6);
    bson_append_document_end(d, &s);
    BSON_APPEND_DOCUMENT_BEGIN(d, "saliency_micro", &s);
    for (int i = 0; i < 2; i++)
        bson_append_int64(&s, a->saliency[i], -1, a->saliency_micro[i]);
    bson_append_document_end(d, &s);
    BSON_APPEND_UTF8(d, "model_version", "m-1");
}
