/* engine_model.h -- an independent model for the store-backed engine tests:
 * random writes recorded per asset/summary, expected aggregates by plain loops
 * (not the engine's code), exact comparison with the stored documents. */
#ifndef SIGHTLINE_TESTS_ENGINE_MODEL_H
#define SIGHTLINE_TESTS_ENGINE_MODEL_H

#include "engine/engine.h"
#include "tests/check.h"
#include "tests/engine/engine_fixture.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define MD_ASSETS    400
#define MD_SUMMARIES 120
#define MD_NAMES     32

static const char *const md_tenants[] = {"acme", "globex"};
static const char *const md_brands[] = {"nike", "adidas", "puma", "reebok", "asics"};
static const char *const md_campaigns[] = {"spring", "summer", "fall"};
static const char *const md_sectors[] = {"apparel", "shoes", "sport", "retail"};
static const char *const md_saliency[] = {"center", "faces", "text"};
static const char *const md_hospitals[] = {"mercy", "st-luke"};
static const char *const md_procedures[] = {"knee", "hip", "spine"};
static const char *const md_skus[] = {"gauze", "clamp", "suture", "drape", "scalpel", "stapler"};

#define MD_COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

typedef struct md_asset {
    int present;
    int malformed; /* written with an out-of-range score: contributes nothing */
    fx_asset a;
} md_asset;

typedef struct md_summary {
    int present;
    fx_summary s;
} md_summary;

typedef struct model {
    pthread_mutex_t mu;
    md_asset assets[MD_ASSETS];
    md_summary summaries[MD_SUMMARIES];
    int64_t ops;
} model;

/* ---------------------------------------------------------------------------
 * Random writes through the store, recorded in the model.
 * ------------------------------------------------------------------------- */
static inline void md_random_asset(fx_rng *r, int idx, fx_asset *a)
{
    memset(a, 0, sizeof *a);
    snprintf(a->tenant, sizeof a->tenant, "%s", md_tenants[idx % MD_COUNT(md_tenants)]);
    snprintf(a->id, sizeof a->id, "as-%04d", idx);
    snprintf(a->brand, sizeof a->brand, "%s", md_brands[fx_below(r, MD_COUNT(md_brands))]);
    snprintf(a->campaign, sizeof a->campaign, "%s",
             md_campaigns[fx_below(r, MD_COUNT(md_campaigns))]);
    snprintf(a->sector, sizeof a->sector, "%s", md_sectors[fx_below(r, MD_COUNT(md_sectors))]);
    a->memorability = fx_score(r);
    int first = fx_below(r, MD_COUNT(md_saliency));
    a->nsal = fx_below(r, 3);
    for (int i = 0; i < a->nsal; i++) {
        snprintf(a->sal_name[i], sizeof a->sal_name[i], "%s",
                 md_saliency[(first + i) % MD_COUNT(md_saliency)]);
        a->sal[i] = fx_score(r);
    }
}

static inline void md_random_summary(fx_rng *r, int idx, fx_summary *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->tenant, sizeof s->tenant, "%s", md_tenants[idx % MD_COUNT(md_tenants)]);
    snprintf(s->surgery, sizeof s->surgery, "su-%04d", idx);
    snprintf(s->hospital, sizeof s->hospital, "%s",
             md_hospitals[fx_below(r, MD_COUNT(md_hospitals))]);
    snprintf(s->procedure, sizeof s->procedure, "%s",
             md_procedures[fx_below(r, MD_COUNT(md_procedures))]);
    s->ntools = 1 + fx_below(r, FX_TOOLS_MAX - 1);
    for (int i = 0; i < s->ntools; i++) {
        fx_tool *t = &s->tools[i];
        /* Repeated skus on purpose: one summary counts a sku once. */
        snprintf(t->sku, sizeof t->sku, "%s", md_skus[fx_below(r, MD_COUNT(md_skus))]);
        t->opened = fx_below(r, 5);
        t->used = fx_below(r, (int)t->opened + 1);
        t->cost = 100 * (1 + fx_below(r, 50));
        t->single_use = fx_below(r, 3) != 0;
    }
}

static inline bson_t *md_asset_bson(const md_asset *m)
{
    bson_t *d = fx_asset_doc(&m->a);
    if (!m->malformed)
        return d;
    bson_t *bad = bson_new();
    bson_copy_to_excluding_noinit(d, bad, "memorability_micro", NULL);
    BSON_APPEND_INT64(bad, "memorability_micro", 2000000);
    bson_destroy(d);
    return bad;
}

/* One random operation, written to the store and recorded in the model:
 * insert, rescore, reassignment, delete, identical re-send, malformed write,
 * and the same for surgery summaries.  Returns the store status. */
static inline sl_status md_step(model *m, store *s, fx_rng *r, int with_summaries)
{
    sl_error e;
    sl_error_clear(&e);
    sl_status rc = SL_OK;
    pthread_mutex_lock(&m->mu);
    if (with_summaries && fx_below(r, 4) == 0) {
        int i = fx_below(r, MD_SUMMARIES);
        md_summary *ms = &m->summaries[i];
        md_summary next = *ms;
        int op = fx_below(r, 10);
        if (op < 6 || !ms->present) {
            md_random_summary(r, i, &next.s);
            next.present = 1;
        } else if (op < 8) {
            next.present = 0;
        } /* else: re-send of the same content */
        if (next.present) {
            bson_t *d = fx_summary_doc(&next.s);
            rc = store_put(s, STORE_ITEMS, d, (store_cond){0}, NULL, &e);
            bson_destroy(d);
        } else if (ms->present) {
            char pk[128];
            snprintf(pk, sizeof pk, "T#%s#SURGERY#%s", ms->s.tenant, ms->s.surgery);
            rc = store_delete(s, STORE_ITEMS, pk, "SUMMARY", (store_cond){0}, NULL, &e);
        }
        if (rc == SL_OK)
            *ms = next;
    } else {
        int i = fx_below(r, MD_ASSETS);
        md_asset *ma = &m->assets[i];
        md_asset next = *ma;
        int op = fx_below(r, 20);
        if (!ma->present || op < 4) { /* insert or replace */
            md_random_asset(r, i, &next.a);
            next.present = 1;
            next.malformed = fx_below(r, 50) == 0;
        } else if (op < 9) { /* rescore */
            next.a.memorability = fx_score(r);
            for (int k = 0; k < next.a.nsal; k++)
                next.a.sal[k] = fx_score(r);
            next.malformed = 0;
        } else if (op < 13) { /* reassignment */
            snprintf(next.a.brand, sizeof next.a.brand, "%s",
                     md_brands[fx_below(r, MD_COUNT(md_brands))]);
            snprintf(next.a.campaign, sizeof next.a.campaign, "%s",
                     md_campaigns[fx_below(r, MD_COUNT(md_campaigns))]);
            if (fx_below(r, 2))
                snprintf(next.a.sector, sizeof next.a.sector, "%s",
                         md_sectors[fx_below(r, MD_COUNT(md_sectors))]);
        } else if (op < 16) {
            next.present = 0;
        } /* else: identical re-send */
        if (next.present) {
            bson_t *d = md_asset_bson(&next);
            rc = store_put(s, STORE_ITEMS, d, (store_cond){0}, NULL, &e);
            bson_destroy(d);
        } else {
            char pk[128];
            snprintf(pk, sizeof pk, "T#%s#ASSET#%s", ma->a.tenant, ma->a.id);
            rc = store_delete(s, STORE_ITEMS, pk, "META", (store_cond){0}, NULL, &e);
        }
        if (rc == SL_OK)
            *ma = next;
    }
    if (rc == SL_OK)
        m->ops++;
    pthread_mutex_unlock(&m->mu);
    if (rc != SL_OK)
        fprintf(stderr, "md_step: %s\n", e.message);
    return rc;
}

/* A writer thread that keeps stepping until told to stop. */
typedef struct md_writer {
    model *m;
    store *s;
    uint64_t seed;
    int pause_us;
    atomic_int stop;
    atomic_int failed;
} md_writer;

static inline void *md_writer_main(void *arg)
{
    md_writer *w = arg;
    fx_rng r = {w->seed};
    while (!atomic_load(&w->stop)) {
        if (md_step(w->m, w->s, &r, 1) != SL_OK) {
            atomic_store(&w->failed, 1);
            break;
        }
        if (w->pause_us)
            usleep((useconds_t)w->pause_us);
    }
    return NULL;
}

/* ---------------------------------------------------------------------------
 * Expected aggregates, with plain loops.
 * ------------------------------------------------------------------------- */
typedef struct md_metric {
    char name[16];
    int64_t n, sum;
    __int128 sumsq;
    int64_t hist[100];
} md_metric;

typedef struct md_agg {
    char sk[128];
    int64_t count;
    int nm;
    md_metric m[4];
    int64_t tool[6]; /* surgeries, opened, used, units_opened, units_used, waste */
} md_agg;

typedef struct md_expect {
    int n;
    md_agg a[512];
} md_expect;

static inline md_agg *md_find(md_expect *x, const char *sk)
{
    for (int i = 0; i < x->n; i++)
        if (!strcmp(x->a[i].sk, sk))
            return &x->a[i];
    REQUIRE(x->n < (int)(sizeof x->a / sizeof x->a[0]));
    md_agg *a = &x->a[x->n++];
    memset(a, 0, sizeof *a);
    REQUIRE(strlen(sk) < sizeof a->sk); /* the model's keys are short */
    memcpy(a->sk, sk, strlen(sk) + 1);
    return a;
}

static inline void md_metric_add(md_agg *a, const char *name, int64_t micro)
{
    md_metric *m = NULL;
    for (int i = 0; i < a->nm; i++)
        if (!strcmp(a->m[i].name, name))
            m = &a->m[i];
    if (!m) {
        REQUIRE(a->nm < 4);
        m = &a->m[a->nm++];
        memset(m, 0, sizeof *m);
        snprintf(m->name, sizeof m->name, "%s", name);
    }
    m->n++;
    m->sum += micro;
    m->sumsq += (__int128)micro * micro;
    m->hist[micro == 1000000 ? 99 : micro / 10000]++;
}

/* The aggregates one tenant should have, from the model. */
static inline void md_expected(model *m, const char *tenant, md_expect *x)
{
    x->n = 0;
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < MD_ASSETS; i++) {
        const md_asset *ma = &m->assets[i];
        if (!ma->present || ma->malformed || strcmp(ma->a.tenant, tenant))
            continue;
        char sks[3][128];
        snprintf(sks[0], sizeof sks[0], "BRAND#%s", ma->a.brand);
        snprintf(sks[1], sizeof sks[1], "BRAND#%s#CAMPAIGN#%s", ma->a.brand, ma->a.campaign);
        snprintf(sks[2], sizeof sks[2], "SECTOR#%s", ma->a.sector);
        for (int k = 0; k < 3; k++) {
            md_agg *a = md_find(x, sks[k]);
            a->count++;
            md_metric_add(a, "memorability", fx_micro(ma->a.memorability));
            for (int j = 0; j < ma->a.nsal; j++)
                md_metric_add(a, ma->a.sal_name[j], fx_micro(ma->a.sal[j]));
        }
    }
    for (int i = 0; i < MD_SUMMARIES; i++) {
        const md_summary *ms = &m->summaries[i];
        if (!ms->present || strcmp(ms->s.tenant, tenant))
            continue;
        /* Per sku: units summed, the surgery counted once. */
        for (int sku = 0; sku < MD_COUNT(md_skus); sku++) {
            int64_t opened = 0, used = 0, waste = 0;
            int listed = 0;
            for (int t = 0; t < ms->s.ntools; t++) {
                const fx_tool *tl = &ms->s.tools[t];
                if (strcmp(tl->sku, md_skus[sku]))
                    continue;
                listed = 1;
                opened += tl->opened;
                used += tl->used;
                if (tl->single_use && tl->opened > tl->used)
                    waste += (tl->opened - tl->used) * tl->cost;
            }
            if (!listed)
                continue;
            char sk[128];
            snprintf(sk, sizeof sk, "HOSPITAL#%s#PROC#%s#TOOL#%s", ms->s.hospital, ms->s.procedure,
                     md_skus[sku]);
            md_agg *a = md_find(x, sk);
            a->tool[0]++;
            a->tool[1] += opened > 0;
            a->tool[2] += used > 0;
            a->tool[3] += opened;
            a->tool[4] += used;
            a->tool[5] += waste;
        }
    }
    pthread_mutex_unlock(&m->mu);
}

static inline int64_t md_int(bson_iter_t *parent, const char *path)
{
    bson_iter_t it;
    if (!bson_iter_find_descendant(parent, path, &it))
        return INT64_MIN;
    return BSON_ITER_HOLDS_INT64(&it) ? bson_iter_int64(&it) : INT64_MIN;
}

static inline int64_t md_get(const bson_t *doc, const char *path)
{
    bson_iter_t it;
    REQUIRE(bson_iter_init(&it, doc));
    return md_int(&it, path);
}

/* Reads the histogram at path (engine.h: a binary of 100 zigzag LEB128
 * varints) into out; 0 when it is not exactly that. */
static inline int md_hist(const bson_t *doc, const char *path, int64_t out[100])
{
    bson_iter_t it, h;
    bson_subtype_t st;
    uint32_t len = 0, at = 0;
    const uint8_t *b = NULL;
    if (!bson_iter_init(&it, doc) || !bson_iter_find_descendant(&it, path, &h) ||
        !BSON_ITER_HOLDS_BINARY(&h))
        return 0;
    bson_iter_binary(&h, &st, &len, &b);
    for (int i = 0; i < 100; i++) {
        uint64_t z = 0;
        for (int shift = 0;; shift += 7) {
            if (at >= len || shift > 63)
                return 0;
            z |= (uint64_t)(b[at] & 0x7f) << shift;
            if (!(b[at++] & 0x80))
                break;
        }
        out[i] = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
    }
    return st == BSON_SUBTYPE_BINARY && at == len;
}

/* 1 when sk is one of skip[0..nskip). */
static inline int md_skipped(const char *sk, const char *const *skip, int nskip)
{
    for (int i = 0; i < nskip; i++)
        if (!strcmp(skip[i], sk))
            return 1;
    return 0;
}

/* Compares every aggregate document of tenant in s with the model: exact
 * equality of every field, and no document the model does not expect,
 * passing over the sort keys in skip[0..nskip).  Returns the number of
 * mismatches (each also printed). */
static inline int md_compare_skip(model *m, store *s, const char *tenant, const char *const *skip,
                                  int nskip)
{
    md_expect *x = calloc(1, sizeof *x);
    REQUIRE(x != NULL);
    md_expected(m, tenant, x);
    int bad = 0, seen = 0;
    char pk[64];
    snprintf(pk, sizeof pk, "T#%s#AGG", tenant);
    char token[STORE_TOKEN_MAX] = "";
    for (;;) {
        store_page page = {0};
        store_query_opts q = {.range = {STORE_RANGE_ALL, NULL, NULL},
                              .limit = 200,
                              .page_token = token[0] ? token : NULL};
        sl_error e;
        sl_error_clear(&e);
        REQUIRE(store_query(s, STORE_AGGREGATES, pk, &q, &page, &e) == SL_OK);
        for (size_t i = 0; i < page.count; i++) {
            bson_t d;
            const char *sk = page.docs[i].sk;
            if (md_skipped(sk, skip, nskip))
                continue;
            if (!store_page_view(&page, i, &d)) {
                fprintf(stderr, "%s / %s: not BSON\n", pk, sk);
                bad++;
                continue;
            }
            bson_iter_t it;
            md_agg *a = NULL;
            for (int k = 0; k < x->n; k++)
                if (!strcmp(x->a[k].sk, sk))
                    a = &x->a[k];
            if (!a) {
                fprintf(stderr, "%s / %s: not expected (count %lld)\n", pk, sk,
                        (long long)md_get(&d, "count"));
                bad++;
                continue;
            }
            seen++;
            if (!strncmp(sk, "HOSPITAL#", 9)) {
                static const char *const f[6] = {"surgeries",      "surgeries_opened",
                                                 "surgeries_used", "units_opened",
                                                 "units_used",     "waste_cents"};
                for (int k = 0; k < 6; k++)
                    if (md_get(&d, f[k]) != a->tool[k]) {
                        fprintf(stderr, "%s / %s: %s %lld, expected %lld\n", pk, sk, f[k],
                                (long long)md_get(&d, f[k]), (long long)a->tool[k]);
                        bad++;
                    }
                continue;
            }
            if (md_get(&d, "count") != a->count) {
                fprintf(stderr, "%s / %s: count %lld, expected %lld\n", pk, sk,
                        (long long)md_get(&d, "count"), (long long)a->count);
                bad++;
            }
            int nmetrics = 0;
            bson_iter_t ms;
            if (bson_iter_init_find(&it, &d, "metrics") && bson_iter_recurse(&it, &ms))
                while (bson_iter_next(&ms))
                    nmetrics++;
            if (nmetrics != a->nm) {
                fprintf(stderr, "%s / %s: %d metrics, expected %d\n", pk, sk, nmetrics, a->nm);
                bad++;
            }
            for (int k = 0; k < a->nm; k++) {
                const md_metric *mm = &a->m[k];
                char path[96];
                snprintf(path, sizeof path, "metrics.%s.n", mm->name);
                int ok = md_get(&d, path) == mm->n;
                snprintf(path, sizeof path, "metrics.%s.sum", mm->name);
                ok &= md_get(&d, path) == mm->sum;
                snprintf(path, sizeof path, "metrics.%s.sumsq_hi", mm->name);
                int64_t hi = md_get(&d, path);
                snprintf(path, sizeof path, "metrics.%s.sumsq_lo", mm->name);
                int64_t lo = md_get(&d, path);
                ok &= (((unsigned __int128)(uint64_t)hi << 64) | (uint64_t)lo) ==
                      (unsigned __int128)mm->sumsq;
                int64_t hist[100] = {0};
                snprintf(path, sizeof path, "metrics.%s.hist", mm->name);
                ok &= md_hist(&d, path, hist);
                for (int b = 0; b < 100; b++)
                    ok &= hist[b] == mm->hist[b];
                if (!ok) {
                    fprintf(stderr, "%s / %s: metric %s differs (n %lld, sum %lld expected)\n", pk,
                            sk, mm->name, (long long)mm->n, (long long)mm->sum);
                    bad++;
                }
            }
        }
        int more = page.next_token != NULL;
        if (more)
            snprintf(token, sizeof token, "%s", page.next_token);
        store_page_free(&page);
        if (!more)
            break;
    }
    int want = 0;
    for (int k = 0; k < x->n; k++)
        want += !md_skipped(x->a[k].sk, skip, nskip);
    if (seen != want) {
        fprintf(stderr, "%s: %d aggregates found of %d expected\n", pk, seen, want);
        bad++;
    }
    free(x);
    return bad;
}

static inline int md_compare(model *m, store *s, const char *tenant)
{
    return md_compare_skip(m, s, tenant, NULL, 0);
}

/* Adds `by` to an int64 field of an aggregate (a metric's when metric is
 * set), under a version condition so no listener update is overwritten. */
static inline void md_corrupt(store *s, const char *pk, const char *sk, const char *metric,
                              const char *field, int64_t by, int as_string)
{
    for (int attempt = 0; attempt < 1000; attempt++) {
        bson_t *doc = NULL;
        REQUIRE(store_get(s, STORE_AGGREGATES, pk, sk, &doc, NULL) == SL_OK);
        int64_t v = md_get(doc, "v");
        bson_t out = BSON_INITIALIZER;
        bson_iter_t it;
        REQUIRE(bson_iter_init(&it, doc));
        while (bson_iter_next(&it)) {
            const char *k = bson_iter_key(&it);
            if (!metric && !strcmp(k, field)) {
                if (as_string)
                    BSON_APPEND_UTF8(&out, k, "corrupt");
                else
                    BSON_APPEND_INT64(&out, k, bson_iter_int64(&it) + by);
            } else if (metric && !strcmp(k, "metrics")) {
                bson_t ms, src;
                uint32_t len;
                const uint8_t *data;
                bson_iter_document(&it, &len, &data);
                REQUIRE(bson_init_static(&src, data, len));
                BSON_APPEND_DOCUMENT_BEGIN(&out, "metrics", &ms);
                bson_iter_t mi;
                REQUIRE(bson_iter_init(&mi, &src));
                while (bson_iter_next(&mi)) {
                    bson_t mdoc, msrc;
                    bson_iter_document(&mi, &len, &data);
                    REQUIRE(bson_init_static(&msrc, data, len));
                    if (strcmp(bson_iter_key(&mi), metric)) {
                        BSON_APPEND_DOCUMENT(&ms, bson_iter_key(&mi), &msrc);
                        continue;
                    }
                    BSON_APPEND_DOCUMENT_BEGIN(&ms, metric, &mdoc);
                    bson_iter_t fi;
                    REQUIRE(bson_iter_init(&fi, &msrc));
                    while (bson_iter_next(&fi)) {
                        if (!strcmp(bson_iter_key(&fi), field))
                            BSON_APPEND_INT64(&mdoc, field, bson_iter_int64(&fi) + by);
                        else
                            bson_append_iter(&mdoc, NULL, 0, &fi);
                    }
                    bson_append_document_end(&ms, &mdoc);
                }
                bson_append_document_end(&out, &ms);
            } else {
                bson_append_iter(&out, NULL, 0, &it);
            }
        }
        sl_status rc =
            store_put(s, STORE_AGGREGATES, &out, (store_cond){STORE_COND_VERSION, v}, NULL, NULL);
        bson_destroy(&out);
        bson_destroy(doc);
        if (rc == SL_OK)
            return;
        REQUIRE(rc == SL_ECONDITION);
    }
    REQUIRE(!"corrupt: the aggregate never stood still");
}

/* What md_rewrite does to the field at its path. */
typedef enum md_edit { MD_DROP = 1, MD_SET_INT, MD_SET_STR, MD_SET_BYTES, MD_ADD } md_edit;

/* Copies src into dst with the edit applied at path (dotted: one level of
 * sub-document per dot; MD_ADD appends path as a new top-level int field).
 * Returns 1 when the field was found (or added). */
static inline int md_edit_doc(const bson_t *src, bson_t *dst, const char *path, md_edit edit,
                              int64_t i, const char *str)
{
    const char *dot = strchr(path, '.');
    size_t head = dot ? (size_t)(dot - path) : strlen(path);
    int found = 0;
    bson_iter_t it;
    REQUIRE(bson_iter_init(&it, src));
    while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        int here = edit != MD_ADD && strlen(k) == head && !strncmp(k, path, head);
        if (here && !dot) {
            found = 1;
            if (edit == MD_SET_INT)
                BSON_APPEND_INT64(dst, k, i);
            else if (edit == MD_SET_STR)
                BSON_APPEND_UTF8(dst, k, str);
            else if (edit == MD_SET_BYTES)
                BSON_APPEND_BINARY(dst, k, BSON_SUBTYPE_BINARY, (const uint8_t *)str,
                                   (uint32_t)strlen(str));
        } else if (here && BSON_ITER_HOLDS_DOCUMENT(&it)) {
            uint32_t len;
            const uint8_t *data;
            bson_t sub, out;
            bson_iter_document(&it, &len, &data);
            REQUIRE(bson_init_static(&sub, data, len));
            BSON_APPEND_DOCUMENT_BEGIN(dst, k, &out);
            found = md_edit_doc(&sub, &out, dot + 1, edit, i, str);
            bson_append_document_end(dst, &out);
        } else {
            bson_append_iter(dst, k, -1, &it);
        }
    }
    if (edit == MD_ADD) {
        BSON_APPEND_INT64(dst, path, i);
        found = 1;
    }
    return found;
}

/* Rewrites aggregate (pk, sk) through the store with one field edited, as a
 * buggy writer would (under a version condition, so no listener update is
 * overwritten; the version moves, so the listener reads it again). */
static inline void md_rewrite(store *s, const char *pk, const char *sk, const char *path,
                              md_edit edit, int64_t i, const char *str)
{
    for (int attempt = 0; attempt < 1000; attempt++) {
        bson_t *doc = NULL, out = BSON_INITIALIZER;
        REQUIRE(store_get(s, STORE_AGGREGATES, pk, sk, &doc, NULL) == SL_OK);
        int64_t v = md_get(doc, "v");
        REQUIRE(md_edit_doc(doc, &out, path, edit, i, str));
        sl_status rc =
            store_put(s, STORE_AGGREGATES, &out, (store_cond){STORE_COND_VERSION, v}, NULL, NULL);
        bson_destroy(&out);
        bson_destroy(doc);
        if (rc == SL_OK)
            return;
        REQUIRE(rc == SL_ECONDITION);
    }
    REQUIRE(!"rewrite: the aggregate never stood still");
}

/* Runs sql on the store's SQLite file directly, as a disk fault or a bad
 * restore would change it, with ?1..?3 bound to a1..a3 (NULL: unbound).
 * Returns the rows it changed. */
static inline int md_raw(const char *uri, const char *sql, const char *a1, const char *a2,
                         const char *a3)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    REQUIRE(!strncmp(uri, "sqlite:", 7));
    REQUIRE(sqlite3_open_v2(uri + 7, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK);
    sqlite3_busy_timeout(db, 30000);
    REQUIRE(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK);
    const char *a[3] = {a1, a2, a3};
    for (int k = 0; k < 3; k++)
        if (a[k])
            sqlite3_bind_text(st, k + 1, a[k], -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        fprintf(stderr, "md_raw: %s\n", sqlite3_errmsg(db));
    REQUIRE(rc == SQLITE_DONE);
    int changed = sqlite3_changes(db);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return changed;
}

/* A fresh directory under /tmp and the store URI of a file in it. */
static inline void md_tempdir(char dir[64], char uri[128])
{
    snprintf(dir, 64, "/tmp/sl-engine-XXXXXX");
    REQUIRE(mkdtemp(dir) != NULL);
    snprintf(uri, 128, "sqlite:%s/store.db", dir);
}

/* Removes the directory and the store files in it (names SQLite uses). */
static inline void md_rmdir(const char *dir)
{
    static const char *const names[] = {"store.db", "store.db-wal", "store.db-shm",
                                        "store.db-journal"};
    char path[160];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* Waits until consumer has applied every event (at most timeout_ms). */
static inline int md_wait_caught_up(store *s, const char *consumer, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        store_feed_stats st;
        sl_error e;
        sl_error_clear(&e);
        if (store_feed_stats_get(s, consumer, &st, &e) == SL_OK && st.behind_events == 0) {
            char tok[STORE_TOKEN_MAX];
            /* behind_events is 0 for an empty feed too: require the token at the head. */
            if (!st.head_token[0] || (store_consumer_token(s, consumer, tok, &e) == SL_OK &&
                                      !strcmp(tok, st.head_token)))
                return 1;
        }
        usleep(10000);
    }
    return 0;
}

#endif
