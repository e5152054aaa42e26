/* brands.c -- the brand read model: what the dashboard API
 * (api/routes_brands.c) and the brand report (reports/) read, so that both
 * show the same numbers from the same documents.  One aggregate by its names
 * (engine_brand_agg_get), listings by key position (engine_brand_list: the
 * tenant's brands by name, count or mean, a brand's campaigns, the sectors,
 * a brand's assets through the asset index), and an asset decoded as the
 * API answers it (engine_asset).  The numbers derived from an aggregate
 * (mean, stddev, percentiles) are engine_metric_stats' (aggregate.c).
 *
 * An aggregate a request needs that is quarantined or damaged is answered
 * SL_ECORRUPT with field ENGINE_FIELD_AGGREGATE and a message naming it:
 * only `sightline recompute --repair` brings it back (the API answers 503). */
#include "engine_int.h"

#include <stdio.h>
#include <string.h>

/* Reads the aggregate stored under (pk, sk) into *a, which must be of kind
 * kind; a damaged one needs repair. */
static sl_status agg_read(const bson_t *doc, const char *pk, const char *sk, engine_agg_kind kind,
                          engine_agg *a, sl_error *err)
{
    sl_error e;
    sl_error_clear(&e);
    sl_status rc = engine_agg_read(doc, pk, sk, a, &e);
    if (rc == SL_OK && a->kind != kind)
        rc = sl_error_set(&e, SL_ECORRUPT, "an aggregate of kind %d where kind %d was expected",
                          (int)a->kind, (int)kind);
    if (rc != SL_OK)
        rc = engine_aggregate_needs_repair(sk, "damaged", err);
    return rc;
}

static const char *kind_word(engine_agg_kind kind)
{
    return kind == ENGINE_AGG_BRAND ? "brand" : kind == ENGINE_AGG_CAMPAIGN ? "campaign" : "sector";
}

sl_status engine_brand_agg_get(store *s, const char *tenant, engine_agg_kind kind, const char *name,
                               const char *campaign, engine_agg *out, sl_error *err)
{
    sl_status rc = SL_OK;
    schema_key pk, sk;
    bson_t *doc = NULL;
    engine_quarantine q;
    engine_agg a;
    const char *what = kind_word(kind), *shown = kind == ENGINE_AGG_CAMPAIGN ? campaign : name;
    engine_agg_init(&a);
    if (kind != ENGINE_AGG_BRAND && kind != ENGINE_AGG_CAMPAIGN && kind != ENGINE_AGG_SECTOR) {
        rc = sl_error_set(err, SL_EINVAL, "kind %d is no brand, campaign or sector", (int)kind);
        goto out;
    }
    rc = kind == ENGINE_AGG_BRAND      ? schema_sk_brand(sk, name, err)
         : kind == ENGINE_AGG_CAMPAIGN ? schema_sk_brand_campaign(sk, name, campaign, err)
                                       : schema_sk_sector(sk, name, err);
    if (rc != SL_OK || (rc = schema_pk_aggregates(pk, tenant, err)) != SL_OK)
        goto out;
    /* Quarantined: whatever its document says, the listener stopped keeping it. */
    rc = engine_quarantine_get(s, pk, sk, &q, err);
    if (rc == SL_OK)
        rc = engine_quarantine_error(&q, err);
    else if (rc == SL_ENOTFOUND)
        sl_error_clear(err);
    if (rc != SL_ENOTFOUND)
        goto out;
    sl_error e;
    sl_error_clear(&e);
    rc = store_get(s, STORE_AGGREGATES, pk, sk, &doc, &e);
    if (rc == SL_ENOTFOUND)
        sl_error_set_at(err, rc, what, -1, "no %s \"%s\" (no asset has it)", what, shown);
    else if (rc == SL_ECORRUPT) /* not BSON */
        rc = engine_aggregate_needs_repair(sk, "damaged", err);
    else if (rc != SL_OK)
        sl_error_set_at(err, rc, e.field[0] ? e.field : NULL, e.offset, "%s", e.message);
    if (rc == SL_OK)
        rc = agg_read(doc, pk, sk, kind, &a, err);
    if (rc == SL_OK && a.count <= 0) /* counts nothing: as good as absent */
        rc = sl_error_set_at(err, SL_ENOTFOUND, what, -1, "no %s \"%s\" (no asset has it)", what,
                             shown);
    if (rc == SL_OK) {
        engine_agg_free(out);
        *out = a;
        engine_agg_init(&a);
    }
out:
    if (doc)
        bson_destroy(doc);
    engine_agg_free(&a);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Assets as the API answers them.
 * ------------------------------------------------------------------------- */
static const char *doc_str(const bson_t *doc, const char *name)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, name) && BSON_ITER_HOLDS_UTF8(&it)
               ? bson_iter_utf8(&it, NULL)
               : NULL;
}

void engine_asset_view(const bson_t *doc, const char *pk, engine_asset *out)
{
    bson_iter_t it, sub;
    memset(out, 0, sizeof *out);
    out->pk = pk;
    out->asset = doc_str(doc, "asset");
    out->client = doc_str(doc, "client");
    out->brand = doc_str(doc, "brand");
    out->brand_id = doc_str(doc, "brand_id");
    out->campaign = doc_str(doc, "campaign");
    out->sector = doc_str(doc, "sector");
    out->media_type = doc_str(doc, "media_type");
    out->model_version = doc_str(doc, "model_version");
    out->memorability_micro = -1;
    out->version = -1;
    if (bson_iter_init_find(&it, doc, "memorability") && BSON_ITER_HOLDS_DOUBLE(&it)) {
        out->has_memorability = 1;
        out->memorability = bson_iter_double(&it);
    }
    if (bson_iter_init_find(&it, doc, "memorability_micro") && BSON_ITER_HOLDS_INT64(&it))
        out->memorability_micro = bson_iter_int64(&it);
    if (bson_iter_init_find(&it, doc, "saliency") && BSON_ITER_HOLDS_DOCUMENT(&it) &&
        bson_iter_recurse(&it, &sub)) {
        out->has_saliency = 1;
        while (bson_iter_next(&sub) && out->nsaliency < ENGINE_ASSET_SALIENCY_MAX) {
            if (!BSON_ITER_HOLDS_DOUBLE(&sub))
                continue;
            out->saliency[out->nsaliency].name = bson_iter_key(&sub);
            out->saliency[out->nsaliency].value = bson_iter_double(&sub);
            out->saliency[out->nsaliency].micro = -1;
            out->nsaliency++;
        }
    }
    if (out->nsaliency && bson_iter_init_find(&it, doc, "saliency_micro") &&
        BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &sub)) {
        /* Both sub-documents hold the same names in the same (byte) order. */
        for (size_t i = 0; i < out->nsaliency && bson_iter_next(&sub);)
            if (BSON_ITER_HOLDS_INT64(&sub) && !strcmp(bson_iter_key(&sub), out->saliency[i].name))
                out->saliency[i++].micro = bson_iter_int64(&sub);
    }
    if (bson_iter_init_find(&it, doc, SCHEMA_F_VERSION) && BSON_ITER_HOLDS_INT64(&it))
        out->version = bson_iter_int64(&it);
}

/* ---------------------------------------------------------------------------
 * Listings by key position.
 *
 * A listing walks one key range in order: the aggregates partition (by sort
 * key), the brand index (gsi1 by count, gsi2 by mean) or the asset index
 * (gsi1).  It starts at `after` (the position of the last item a previous
 * call listed), inclusive, and skips it -- positions are unique within a
 * listing -- so nothing is skipped or repeated among documents that stay
 * put.  One more item than the limit is looked for, so `more` is 0 exactly
 * at the end.
 * ------------------------------------------------------------------------- */
typedef struct listing {
    store_table table;
    store_index index;     /* 0: the partition itself */
    const char *key;       /* pk, or the index partition key */
    const char *prefix;    /* every listed key starts with it ("" for all) */
    const char *pos_field; /* the document field holding the index key */
    const char *array;     /* what is listed, for messages */
    engine_agg_kind kind;  /* aggregates: their kind; 0 for assets */
    int brands_only;       /* the partition walk passes over campaign aggregates */
} listing;

/* The range of the listing after position pos ("" for the start).  succ
 * (SCHEMA_KEY_MAX) receives the prefix's successor: the prefix with its last
 * byte raised ('#' -> '$'), the first key past every key with the prefix. */
static store_range listing_range(const listing *ls, int descending, const char *pos, char *succ)
{
    store_range r = {STORE_RANGE_ALL, NULL, NULL};
    size_t plen = strlen(ls->prefix);
    if (plen) {
        memcpy(succ, ls->prefix, plen + 1);
        succ[plen - 1]++;
    }
    if (!pos[0] && plen)
        r = (store_range){STORE_RANGE_BEGINS_WITH, ls->prefix, NULL};
    else if (pos[0] && !plen)
        r = descending ? (store_range){STORE_RANGE_LE, NULL, pos}
                       : (store_range){STORE_RANGE_GE, pos, NULL};
    else if (pos[0])
        r = descending ? (store_range){STORE_RANGE_BETWEEN, ls->prefix, pos}
                       : (store_range){STORE_RANGE_BETWEEN, pos, succ};
    return r;
}

/* A brand aggregate's key (BRAND#<b>, no campaign), whatever its bytes say. */
static int is_brand_key(const char *sk)
{
    size_t plen = strlen(SCHEMA_SK_BRAND_PREFIX);
    return !strncmp(sk, SCHEMA_SK_BRAND_PREFIX, plen) && !strchr(sk + plen, '#');
}

/* The listing q names, with its keys in pk, gpk, prefix (SCHEMA_KEY_MAX each),
 * after the quarantine check of the aggregates it lists. */
static sl_status listing_of(store *s, const engine_list_query *q, listing *ls, char *pk, char *gpk,
                            char *prefix, sl_error *err)
{
    sl_status rc = SL_OK;
    memset(ls, 0, sizeof *ls);
    ls->table = STORE_AGGREGATES;
    ls->key = pk;
    ls->prefix = prefix;
    prefix[0] = '\0';
    switch (q->what) {
    case ENGINE_LIST_BRANDS:
    case ENGINE_LIST_BRANDS_BY_COUNT:
    case ENGINE_LIST_BRANDS_BY_MEAN:
        ls->array = "brands";
        ls->kind = ENGINE_AGG_BRAND;
        if ((rc = schema_pk_aggregates(pk, q->tenant, err)) != SL_OK ||
            (rc = schema_gpk_brand_aggs(gpk, q->tenant, err)) != SL_OK)
            break;
        if (q->what == ENGINE_LIST_BRANDS) {
            snprintf(prefix, SCHEMA_KEY_MAX, "%s", SCHEMA_SK_BRAND_PREFIX);
            ls->brands_only = 1;
        } else {
            ls->index = q->what == ENGINE_LIST_BRANDS_BY_COUNT ? STORE_GSI1 : STORE_GSI2;
            ls->key = gpk;
            ls->pos_field =
                q->what == ENGINE_LIST_BRANDS_BY_COUNT ? SCHEMA_F_GSI1SK : SCHEMA_F_GSI2SK;
        }
        rc = engine_quarantine_check(s, q->tenant, SCHEMA_SK_BRAND_PREFIX, ENGINE_AGG_BRAND, err);
        break;
    case ENGINE_LIST_CAMPAIGNS:
        ls->array = "campaigns";
        ls->kind = ENGINE_AGG_CAMPAIGN;
        if ((rc = schema_pk_aggregates(pk, q->tenant, err)) == SL_OK &&
            (rc = schema_sk_brand_campaigns_prefix(prefix, q->brand, err)) == SL_OK)
            rc = engine_quarantine_check(s, q->tenant, prefix, ENGINE_AGG_CAMPAIGN, err);
        break;
    case ENGINE_LIST_SECTORS:
        ls->array = "sectors";
        ls->kind = ENGINE_AGG_SECTOR;
        snprintf(prefix, SCHEMA_KEY_MAX, "%s", SCHEMA_SK_SECTOR_PREFIX);
        if ((rc = schema_pk_aggregates(pk, q->tenant, err)) == SL_OK)
            rc = engine_quarantine_check(s, q->tenant, SCHEMA_SK_SECTOR_PREFIX, ENGINE_AGG_SECTOR,
                                         err);
        break;
    case ENGINE_LIST_ASSETS:
        ls->array = "assets";
        ls->table = STORE_ITEMS;
        ls->index = STORE_GSI1;
        ls->key = gpk;
        ls->pos_field = SCHEMA_F_GSI1SK;
        if ((rc = schema_pk_assets_index(gpk, q->tenant, err)) == SL_OK)
            rc = schema_sk_brand_campaigns_prefix(prefix, q->brand, err);
        break;
    default:
        rc = sl_error_set(err, SL_EINVAL, "no listing %d", (int)q->what);
    }
    return rc;
}

sl_status engine_brand_list(store *s, const engine_list_query *q, engine_list_fn fn, void *ctx,
                            engine_list_result *res, sl_error *err)
{
    sl_status rc = SL_OK;
    listing ls;
    store_page page = {0}, prev = {0}; /* prev holds the token of the page read next */
    schema_key pk, gpk, prefix;
    char pos[STORE_KEY_MAX + 1], succ[SCHEMA_KEY_MAX];
    const char *after = q->after ? q->after : "";
    size_t listed = 0, scanned = 0, limit = q->limit ? q->limit : SIZE_MAX;
    size_t page_size = q->page ? q->page : limit < STORE_PAGE_MAX ? limit + 1 : STORE_PAGE_MAX;
    int more = 0, done = 0;
    engine_agg a;
    engine_agg_init(&a);
    memset(res, 0, sizeof *res);
    if ((rc = listing_of(s, q, &ls, pk, gpk, prefix, err)) != SL_OK)
        goto out;
    size_t alen = strlen(after), plen = strlen(ls.prefix);
    /* A position this listing handed out: anything else is the caller's bug. */
    if (alen > STORE_KEY_MAX || (alen && (alen < plen || memcmp(after, ls.prefix, plen) != 0))) {
        rc = sl_error_set(err, SL_EINTERNAL, "a cursor of this listing holds no key of it");
        goto out;
    }
    memcpy(pos, after, alen + 1);
    store_query_opts sq = {.range = listing_range(&ls, q->descending, pos, succ),
                           .descending = q->descending};
    while (!done) {
        sq.limit = page_size < STORE_PAGE_MAX ? page_size : STORE_PAGE_MAX;
        sq.page_token = prev.next_token;
        rc = ls.index ? store_query_index(s, ls.table, ls.index, ls.key, &sq, &page, err)
                      : store_query(s, ls.table, ls.key, &sq, &page, err);
        store_page_free(&prev);
        if (rc != SL_OK)
            goto out;
        for (size_t i = 0; i < page.count && !done; i++) {
            bson_t view;
            const char *at = NULL;
            const store_doc *row = &page.docs[i];
            /* A partition is walked by the keys the store keeps, whatever a
             * document's bytes say; an index by the index key in them. */
            if (!store_page_view(&page, i, &view) ||
                !(at = ls.index ? doc_str(&view, ls.pos_field) : row->sk)) {
                /* Bytes that are not BSON (or lack their key) under this key. */
                rc =
                    ls.table == STORE_AGGREGATES
                        ? engine_aggregate_needs_repair(row->sk, "damaged", err)
                        : sl_error_set(err, SL_ECORRUPT, "document %s / %s of a %s page is damaged",
                                       row->pk, row->sk, ls.array);
                goto out;
            }
            scanned++;
            if (pos[0] && !strcmp(at, pos))
                continue; /* the previous page's last */
            if (ls.brands_only && !is_brand_key(row->sk)) {
                snprintf(res->last, sizeof res->last, "%s", at);
                continue;
            }
            if (listed == limit) {
                more = done = 1; /* one more exists: the page is full */
                break;
            }
            if (ls.kind) {
                if ((rc = agg_read(&view, row->pk, row->sk, ls.kind, &a, err)) != SL_OK ||
                    (rc = fn(ctx, &a, NULL, row, err)) != SL_OK)
                    goto out;
            } else {
                engine_asset x;
                engine_asset_view(&view, row->pk, &x);
                if ((rc = fn(ctx, NULL, &x, row, err)) != SL_OK)
                    goto out;
            }
            listed++;
            snprintf(res->last, sizeof res->last, "%s", at);
        }
        if (!done && !page.next_token) {
            done = 1;
        } else if (!done && q->scan_max && scanned >= q->scan_max) {
            more = done = 1; /* bounded work: the caller goes on from `last` */
        } else if (!done) {
            prev = page; /* its token positions the next read */
            memset(&page, 0, sizeof page);
            if (!q->page)
                page_size *= 2;
        }
    }
    res->listed = listed;
    res->more = more && res->last[0];
out:
    store_page_free(&page);
    store_page_free(&prev);
    engine_agg_free(&a);
    return rc;
}
