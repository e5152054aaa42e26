/* brand_model.c -- the brand score report's model (reports_int.h,
 * report_brand_model), filled from one store snapshot through the engine's
 * brand read model: the brand, campaign and sector aggregates (the numbers
 * GET /v1/brands/{b}, /campaigns and /v1/sectors/{s} answer) and one walk
 * over the brand's assets through the asset index (gsi1 of items), a store
 * page at a time, which counts them, finds the sectors the brand is in,
 * keeps the top and bottom N by memorability in two bounded heaps (no index
 * sorts assets by score) and digests every asset's key and version.
 *
 * The ETag covers everything the report shows: the renderer and library
 * versions, the options, each aggregate's version and each asset's key and
 * version.  The brand aggregate's version alone would not do: the listener
 * writes an aggregate only when its numbers change, so an asset's new
 * model_version, a move between two campaigns of the brand, or a rescore
 * that keeps the micro-units leave it as it was while the report changes. */
#include "reports_int.h"

#include <stdlib.h>
#include <string.h>

#define METRICS_MAX 64 /* metric columns of the asset sheet */

/* ---------------------------------------------------------------------------
 * Top and bottom: binary heaps of indexes into a pool of kept assets, the
 * root being the one to drop first.
 * ------------------------------------------------------------------------- */
typedef struct ranked {
    report_asset *pool; /* cap entries */
    size_t *heap;       /* n indexes */
    size_t n, cap;
    int best; /* 1: keep the highest (top), 0: the lowest (bottom) */
} ranked;

/* 1 when a ranks before b in the list (top: higher score; bottom: lower;
 * equal scores by asset id, so the order is total and repeatable). */
static int before(const ranked *r, const report_asset *a, const report_asset *b)
{
    if (a->memorability_micro != b->memorability_micro)
        return r->best ? a->memorability_micro > b->memorability_micro
                       : a->memorability_micro < b->memorability_micro;
    return strcmp(a->asset, b->asset) < 0;
}

/* Heap order: the root is the one every other ranks before. */
static int heap_less(const ranked *r, size_t i, size_t j)
{
    return before(r, &r->pool[r->heap[j]], &r->pool[r->heap[i]]);
}

static void swap(size_t *a, size_t *b)
{
    size_t t = *a;
    *a = *b;
    *b = t;
}

static void sift_down(ranked *r, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < r->n && heap_less(r, l, m))
            m = l;
        if (l + 1 < r->n && heap_less(r, l + 1, m))
            m = l + 1;
        if (m == i)
            return;
        swap(&r->heap[i], &r->heap[m]);
        i = m;
    }
}

static void sift_up(ranked *r, size_t i)
{
    while (i && heap_less(r, i, (i - 1) / 2)) {
        swap(&r->heap[i], &r->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
}

static void asset_copy(report_asset *d, const engine_asset *a)
{
    snprintf(d->asset, sizeof d->asset, "%s", a->asset ? a->asset : "");
    snprintf(d->campaign, sizeof d->campaign, "%s", a->campaign ? a->campaign : "");
    snprintf(d->sector, sizeof d->sector, "%s", a->sector ? a->sector : "");
    snprintf(d->media_type, sizeof d->media_type, "%s", a->media_type ? a->media_type : "");
    snprintf(d->model_version, sizeof d->model_version, "%s",
             a->model_version ? a->model_version : "");
    d->memorability = a->memorability;
    d->memorability_micro = a->memorability_micro;
    d->version = a->version;
}

static void ranked_offer(ranked *r, const engine_asset *a)
{
    report_asset cand;
    if (!r->cap)
        return;
    cand.memorability_micro = a->memorability_micro;
    snprintf(cand.asset, sizeof cand.asset, "%s", a->asset ? a->asset : "");
    if (r->n < r->cap) {
        asset_copy(&r->pool[r->n], a);
        r->heap[r->n] = r->n;
        r->n++;
        sift_up(r, r->n - 1);
    } else if (before(r, &cand, &r->pool[r->heap[0]])) {
        asset_copy(&r->pool[r->heap[0]], a);
        sift_down(r, 0);
    }
}

static int ranked_cmp_top(const void *a, const void *b)
{
    const report_asset *x = a, *y = b;
    ranked r = {.best = 1};
    return before(&r, x, y) ? -1 : before(&r, y, x) ? 1 : 0;
}

static int ranked_cmp_bottom(const void *a, const void *b)
{
    const report_asset *x = a, *y = b;
    ranked r = {.best = 0};
    return before(&r, x, y) ? -1 : before(&r, y, x) ? 1 : 0;
}

/* ---------------------------------------------------------------------------
 * The walk over the brand's assets.
 * ------------------------------------------------------------------------- */
typedef struct scan {
    report_brand_model *m;
    report__digest *dg;
    ranked top, bottom;
    size_t last_sector; /* the sector the previous asset was in (most are in one) */
} scan;

static sl_status sector_tally(scan *sc, const char *name, sl_error *err)
{
    report_brand_model *m = sc->m;
    if (!name)
        return SL_OK;
    if (sc->last_sector < m->nsectors && !strcmp(m->sectors[sc->last_sector].name, name)) {
        m->sectors[sc->last_sector].brand_assets++;
        return SL_OK;
    }
    for (size_t i = 0; i < m->nsectors; i++)
        if (!strcmp(m->sectors[i].name, name)) {
            m->sectors[i].brand_assets++;
            sc->last_sector = i;
            return SL_OK;
        }
    if (m->nsectors == REPORT_SECTORS_MAX) {
        m->sectors_other++;
        return SL_OK;
    }
    report_sector *s = &m->sectors[m->nsectors];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    engine_agg_init(&s->agg);
    s->brand_assets = 1;
    sc->last_sector = m->nsectors++;
    (void)err;
    return SL_OK;
}

static void metric_note(report_brand_model *m, const char *name)
{
    for (size_t i = 0; i < m->nmetrics; i++)
        if (!strcmp(m->metrics[i], name))
            return;
    if (m->nmetrics < METRICS_MAX)
        snprintf(m->metrics[m->nmetrics++], ENGINE_METRIC_NAME_MAX + 1, "%s", name);
}

static sl_status on_asset(void *ctx, const engine_agg *agg, const engine_asset *a,
                          const store_doc *row, sl_error *err)
{
    scan *sc = ctx;
    report_brand_model *m = sc->m;
    (void)agg;
    if (++m->assets > m->opt.assets_max)
        return sl_error_set_at(err, SL_ETOOLARGE, "brand", -1,
                               "brand \"%s\" has more than %lld assets, the most one report reads "
                               "(report-assets-max)",
                               m->brand, (long long)m->opt.assets_max);
    report__digest_str(sc->dg, row->pk);
    report__digest_int(sc->dg, row->version);
    if (a->memorability_micro >= 0) {
        ranked_offer(&sc->top, a);
        ranked_offer(&sc->bottom, a);
    }
    for (size_t i = 0; i < a->nsaliency; i++)
        metric_note(m, a->saliency[i].name);
    return sector_tally(sc, a->sector, err);
}

static sl_status on_campaign(void *ctx, const engine_agg *agg, const engine_asset *a,
                             const store_doc *row, sl_error *err)
{
    report_brand_model *m = ctx;
    (void)a;
    (void)row;
    engine_agg_init(&m->campaigns[m->ncampaigns]);
    sl_status rc = engine_agg_copy(&m->campaigns[m->ncampaigns], agg, err);
    if (rc == SL_OK)
        m->ncampaigns++;
    return rc;
}

static int sector_cmp(const void *a, const void *b)
{
    return strcmp(((const report_sector *)a)->name, ((const report_sector *)b)->name);
}

static void digest_agg(report__digest *dg, const engine_agg *a)
{
    report__digest_int(dg, a->kind);
    report__digest_str(dg, a->brand);
    report__digest_str(dg, a->campaign);
    report__digest_str(dg, a->sector);
    report__digest_int(dg, a->version);
}

sl_status report__brand_model_fill(store *s, const char *tenant, const char *brand,
                                   const report_options *opt, report_brand_model *m, sl_error *err)
{
    sl_status rc = SL_OK;
    scan sc = {.m = m};
    engine_list_result res;
    m->opt = *opt;
    m->opt.paper = opt->paper ? opt->paper : REPORT_A4;
    m->opt.top =
        opt->top ? (opt->top > REPORT_TOP_MAX ? REPORT_TOP_MAX : opt->top) : REPORT_TOP_DEFAULT;
    m->opt.campaigns_max = opt->campaigns_max ? opt->campaigns_max : REPORT_CAMPAIGNS_DEFAULT;
    m->opt.assets_max = opt->assets_max > 0 ? opt->assets_max : REPORT_ASSETS_DEFAULT;
    m->date_ms = REPORT_NO_DATE_MS;
    engine_agg_init(&m->brand_agg);
    snprintf(m->tenant, sizeof m->tenant, "%s", tenant);
    snprintf(m->brand, sizeof m->brand, "%s", brand);
    sc.top = (ranked){.best = 1, .cap = m->opt.top};
    sc.bottom = (ranked){.best = 0, .cap = m->opt.top};
    sc.top.pool = calloc(m->opt.top, sizeof *sc.top.pool);
    sc.top.heap = calloc(m->opt.top, sizeof *sc.top.heap);
    sc.bottom.pool = calloc(m->opt.top, sizeof *sc.bottom.pool);
    sc.bottom.heap = calloc(m->opt.top, sizeof *sc.bottom.heap);
    m->campaigns = calloc(m->opt.campaigns_max, sizeof *m->campaigns);
    m->sectors = calloc(REPORT_SECTORS_MAX, sizeof *m->sectors);
    m->metrics = calloc(METRICS_MAX, sizeof *m->metrics);
    sc.dg = report__digest_new("brand", REPORT_BRAND_RENDERER, &m->opt);
    if (!sc.top.pool || !sc.top.heap || !sc.bottom.pool || !sc.bottom.heap || !m->campaigns ||
        !m->sectors || !m->metrics || !sc.dg) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory starting a brand report");
        goto out;
    }
    /* One point in time for every read, the XLSX asset sheet's included. */
    if ((rc = store_snapshot_open(s, &m->snap, err)) != SL_OK)
        goto out;
    if ((rc = engine_brand_agg_get(m->snap, tenant, ENGINE_AGG_BRAND, brand, NULL, &m->brand_agg,
                                   err)) != SL_OK)
        goto out;
    if (m->brand_agg.count > m->opt.assets_max) {
        rc = sl_error_set_at(err, SL_ETOOLARGE, "brand", -1,
                             "brand \"%s\" has %lld assets; one report reads at most %lld "
                             "(report-assets-max)",
                             brand, (long long)m->brand_agg.count, (long long)m->opt.assets_max);
        goto out;
    }
    report__digest_str(sc.dg, tenant);
    report__digest_int(sc.dg, (int64_t)m->opt.top);
    report__digest_int(sc.dg, (int64_t)m->opt.campaigns_max);
    digest_agg(sc.dg, &m->brand_agg);
    for (size_t i = 0; i < m->brand_agg.nmetrics; i++)
        metric_note(m, m->brand_agg.metrics[i].name);
    /* The campaigns, by name. */
    engine_list_query q = {.what = ENGINE_LIST_CAMPAIGNS,
                           .tenant = tenant,
                           .brand = brand,
                           .limit = m->opt.campaigns_max};
    if ((rc = engine_brand_list(m->snap, &q, on_campaign, m, &res, err)) != SL_OK)
        goto out;
    m->campaigns_more = res.more;
    for (size_t i = 0; i < m->ncampaigns; i++)
        digest_agg(sc.dg, &m->campaigns[i]);
    /* Every asset, a page at a time. */
    q = (engine_list_query){
        .what = ENGINE_LIST_ASSETS, .tenant = tenant, .brand = brand, .page = STORE_PAGE_MAX};
    if ((rc = engine_brand_list(m->snap, &q, on_asset, &sc, &res, err)) != SL_OK)
        goto out;
    report__digest_int(sc.dg, m->assets);
    /* The sectors the brand is in, by name, with their aggregates. */
    qsort(m->sectors, m->nsectors, sizeof *m->sectors, sector_cmp);
    for (size_t i = 0; i < m->nsectors; i++) {
        report_sector *sec = &m->sectors[i];
        rc = engine_brand_agg_get(m->snap, tenant, ENGINE_AGG_SECTOR, sec->name, NULL, &sec->agg,
                                  err);
        if (rc == SL_ENOTFOUND) { /* the listener has not counted it yet */
            sl_error_clear(err);
            rc = SL_OK;
        }
        if (rc != SL_OK)
            goto out;
        report__digest_str(sc.dg, sec->name);
        report__digest_int(sc.dg, sec->brand_assets);
        digest_agg(sc.dg, &sec->agg);
    }
    report__digest_int(sc.dg, m->sectors_other);
    /* The lists, best (worst) first. */
    m->ntop = sc.top.n;
    m->nbottom = sc.bottom.n;
    m->top = calloc(m->ntop ? m->ntop : 1, sizeof *m->top);
    m->bottom = calloc(m->nbottom ? m->nbottom : 1, sizeof *m->bottom);
    if (!m->top || !m->bottom) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory listing assets");
        goto out;
    }
    for (size_t i = 0; i < m->ntop; i++)
        m->top[i] = sc.top.pool[sc.top.heap[i]];
    for (size_t i = 0; i < m->nbottom; i++)
        m->bottom[i] = sc.bottom.pool[sc.bottom.heap[i]];
    qsort(m->top, m->ntop, sizeof *m->top, ranked_cmp_top);
    qsort(m->bottom, m->nbottom, sizeof *m->bottom, ranked_cmp_bottom);
    report__digest_end(&sc.dg, m->etag);
out:
    report__digest_free(&sc.dg);
    free(sc.top.pool);
    free(sc.top.heap);
    free(sc.bottom.pool);
    free(sc.bottom.heap);
    return rc;
}

void report__brand_model_free(report_brand_model *m)
{
    engine_agg_free(&m->brand_agg);
    for (size_t i = 0; m->campaigns && i < m->ncampaigns; i++)
        engine_agg_free(&m->campaigns[i]);
    for (size_t i = 0; m->sectors && i < m->nsectors; i++)
        engine_agg_free(&m->sectors[i].agg);
    free(m->campaigns);
    free(m->sectors);
    free(m->metrics);
    free(m->top);
    free(m->bottom);
    store_close(&m->snap);
    memset(m, 0, sizeof *m);
}

typedef struct each_ctx {
    report_asset_fn fn;
    void *ctx;
} each_ctx;

static sl_status each_one(void *ctx, const engine_agg *agg, const engine_asset *a,
                          const store_doc *row, sl_error *err)
{
    const each_ctx *e = ctx;
    (void)agg;
    (void)row;
    return e->fn(e->ctx, a, err);
}

sl_status report__brand_assets_each(const report_brand_model *m, report_asset_fn fn, void *ctx,
                                    sl_error *err)
{
    engine_list_result res;
    each_ctx e = {fn, ctx};
    engine_list_query q = {
        .what = ENGINE_LIST_ASSETS, .tenant = m->tenant, .brand = m->brand, .page = STORE_PAGE_MAX};
    return engine_brand_list(m->snap, &q, each_one, &e, &res, err);
}

/* The metrics of a in report order (reports_int.h). */
size_t report__metric_order(const engine_agg *a, const engine_metric **out)
{
    size_t n = 0;
    const engine_metric *mem = engine_agg_metric(a, ENGINE_METRIC_MEMORABILITY);
    if (mem && mem->n > 0)
        out[n++] = mem;
    for (size_t i = 0; i < a->nmetrics; i++)
        if (&a->metrics[i] != mem && a->metrics[i].n > 0)
            out[n++] = &a->metrics[i];
    return n;
}
