/* engine_fixture.h -- builders for the base documents the engine reads (asset,
 * surgery_summary, as docs/documents.md shapes them) and a seeded generator. */
#ifndef SIGHTLINE_TESTS_ENGINE_FIXTURE_H
#define SIGHTLINE_TESTS_ENGINE_FIXTURE_H

#include <bson/bson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/seed.h"

#define FX_SAL_MAX 4

typedef struct fx_asset {
    char tenant[32], id[32], brand[32], campaign[32], sector[32];
    double memorability;
    int nsal;
    char sal_name[FX_SAL_MAX][16];
    double sal[FX_SAL_MAX];
} fx_asset;

/* round(score * 1e6), computed here independently of schema/. */
static inline int64_t fx_micro(double score)
{
    return (int64_t)llround(score * 1e6);
}

/* An asset document as ingest writes it. */
static inline bson_t *fx_asset_doc(const fx_asset *a)
{
    bson_t *d = bson_new();
    char pk[128], gsi1pk[96], gsi1sk[160];
    snprintf(pk, sizeof pk, "T#%s#ASSET#%s", a->tenant, a->id);
    snprintf(gsi1pk, sizeof gsi1pk, "T#%s#ASSETS", a->tenant);
    snprintf(gsi1sk, sizeof gsi1sk, "BRAND#%s#CAMPAIGN#%s#ASSET#%s", a->brand, a->campaign, a->id);
    BSON_APPEND_UTF8(d, "pk", pk);
    BSON_APPEND_UTF8(d, "sk", "META");
    BSON_APPEND_UTF8(d, "gsi1pk", gsi1pk);
    BSON_APPEND_UTF8(d, "gsi1sk", gsi1sk);
    BSON_APPEND_UTF8(d, "type", "asset");
    BSON_APPEND_UTF8(d, "tenant", a->tenant);
    BSON_APPEND_UTF8(d, "asset", a->id);
    BSON_APPEND_UTF8(d, "client", "client-1");
    BSON_APPEND_UTF8(d, "brand", a->brand);
    BSON_APPEND_UTF8(d, "brand_id", a->brand);
    BSON_APPEND_UTF8(d, "sector", a->sector);
    BSON_APPEND_UTF8(d, "campaign", a->campaign);
    BSON_APPEND_UTF8(d, "media_type", "image");
    BSON_APPEND_DOUBLE(d, "memorability", a->memorability);
    BSON_APPEND_INT64(d, "memorability_micro", fx_micro(a->memorability));
    bson_t sal, salm;
    BSON_APPEND_DOCUMENT_BEGIN(d, "saliency", &sal);
    for (int i = 0; i < a->nsal; i++)
        BSON_APPEND_DOUBLE(&sal, a->sal_name[i], a->sal[i]);
    bson_append_document_end(d, &sal);
    BSON_APPEND_DOCUMENT_BEGIN(d, "saliency_micro", &salm);
    for (int i = 0; i < a->nsal; i++)
        BSON_APPEND_INT64(&salm, a->sal_name[i], fx_micro(a->sal[i]));
    bson_append_document_end(d, &salm);
    BSON_APPEND_UTF8(d, "model_version", "m-1");
    return d;
}

#define FX_TOOLS_MAX 6

typedef struct fx_tool {
    char sku[16];
    int64_t opened, used, cost;
    int single_use;
} fx_tool;

typedef struct fx_summary {
    char tenant[32], surgery[32], hospital[32], procedure[32];
    int ntools;
    fx_tool tools[FX_TOOLS_MAX];
} fx_summary;

/* A surgery_summary document as the tool-usage analysis writes it. */
static inline bson_t *fx_summary_doc(const fx_summary *s)
{
    bson_t *d = bson_new();
    char pk[128], gsi1pk[128];
    snprintf(pk, sizeof pk, "T#%s#SURGERY#%s", s->tenant, s->surgery);
    snprintf(gsi1pk, sizeof gsi1pk, "T#%s#HOSPITAL#%s#PROC#%s", s->tenant, s->hospital,
             s->procedure);
    int64_t opened = 0, used = 0, waste = 0;
    for (int i = 0; i < s->ntools; i++) {
        opened += s->tools[i].opened;
        used += s->tools[i].used;
        if (s->tools[i].single_use && s->tools[i].opened > s->tools[i].used)
            waste += (s->tools[i].opened - s->tools[i].used) * s->tools[i].cost;
    }
    BSON_APPEND_UTF8(d, "pk", pk);
    BSON_APPEND_UTF8(d, "sk", "SUMMARY");
    BSON_APPEND_UTF8(d, "gsi1pk", gsi1pk);
    BSON_APPEND_UTF8(d, "gsi1sk", "DATE#2026-11-26#SURGERY#x");
    BSON_APPEND_UTF8(d, "type", "surgery_summary");
    BSON_APPEND_UTF8(d, "tenant", s->tenant);
    BSON_APPEND_UTF8(d, "surgery", s->surgery);
    BSON_APPEND_UTF8(d, "hospital", s->hospital);
    BSON_APPEND_UTF8(d, "procedure", s->procedure);
    BSON_APPEND_INT64(d, "opened", opened);
    BSON_APPEND_INT64(d, "used", used);
    BSON_APPEND_INT64(d, "unused", opened - used);
    BSON_APPEND_INT64(d, "waste_cents", waste);
    bson_t arr;
    BSON_APPEND_ARRAY_BEGIN(d, "tools", &arr);
    for (int i = 0; i < s->ntools; i++) {
        char key[16];
        snprintf(key, sizeof key, "%d", i);
        bson_t t;
        BSON_APPEND_DOCUMENT_BEGIN(&arr, key, &t);
        BSON_APPEND_UTF8(&t, "sku", s->tools[i].sku);
        BSON_APPEND_INT64(&t, "opened_units", s->tools[i].opened);
        BSON_APPEND_INT64(&t, "used_units", s->tools[i].used);
        BSON_APPEND_INT64(&t, "unit_cost_cents", s->tools[i].cost);
        BSON_APPEND_BOOL(&t, "single_use", s->tools[i].single_use);
        bson_append_document_end(&arr, &t);
    }
    bson_append_array_end(d, &arr);
    return d;
}

/* xorshift64*: deterministic from its start, test_rng(k) (tests/seed.h): a
 * run prints its seed, and SIGHTLINE_TEST_SEED repeats it. */
typedef struct fx_rng {
    uint64_t s;
} fx_rng;

static inline uint64_t fx_next(fx_rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 2685821657736338717ULL;
}

static inline int fx_below(fx_rng *r, int n)
{
    return (int)(fx_next(r) % (uint64_t)n);
}

/* A score in [0, 1] with up to 9 decimals, sometimes exactly 0 or 1. */
static inline double fx_score(fx_rng *r)
{
    int k = fx_below(r, 50);
    if (k == 0)
        return 0.0;
    if (k == 1)
        return 1.0;
    return (double)(fx_next(r) % 1000000001ULL) / 1e9;
}

#endif
