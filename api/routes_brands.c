/* routes_brands.c -- the brand dashboard: brand, campaign and sector
 * aggregates, read from aggregate documents only (a request costs the same
 * with a thousand assets or ten million), and the drill-down to a brand's
 * assets through the asset index.  Viewer and admin keys; the tenant is the
 * key's.  Shapes, numbers and cursors: docs/dashboard.md.  What is read and
 * how is the engine's brand read model (engine.h, engine/brands.c), which the
 * brand report reads too; this file turns it into JSON.  An aggregate the
 * request needs that is damaged or quarantined (engine.h) is answered 503,
 * naming it: only `sightline recompute --repair` brings it back. */
#include "api_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

#define LIST_DEFAULT 50
#define LIST_MAX     500
/* Documents one listing request may read while it skips those it does not
 * list (campaign aggregates among brands): past it the page ends early,
 * with a cursor, so a request's cost stays bounded. */
#define SCAN_MAX 20000u

/* ---------------------------------------------------------------------------
 * JSON of aggregates.
 * ------------------------------------------------------------------------- */

/* {"n", "mean", "stddev", "median", "p10", "p90", "min", "max", "sum_micro"}
 * and, with hist, "histogram": the 100 bin counts. */
static void metric_json(yajl_gen g, const engine_metric *m, int hist)
{
    engine_stats st;
    engine_metric_stats(m, &st);
    yajl_gen_map_open(g);
    api_json_kv_int(g, "n", m->n);
    api_json_kv_double(g, "mean", st.mean);
    api_json_kv_double(g, "stddev", st.stddev);
    api_json_kv_double(g, "median", st.median);
    api_json_kv_double(g, "p10", st.p10);
    api_json_kv_double(g, "p90", st.p90);
    api_json_kv_double(g, "min", st.min);
    api_json_kv_double(g, "max", st.max);
    api_json_kv_int(g, "sum_micro", m->sum);
    if (hist) {
        api_json_str(g, "histogram");
        yajl_gen_array_open(g);
        for (int i = 0; i < ENGINE_HIST_BINS; i++)
            api_json_int(g, m->hist[i]);
        yajl_gen_array_close(g);
    }
    yajl_gen_map_close(g);
}

/* {"brand", ["campaign"] | "sector", "count", "metrics": {name: {...}}}. */
static void agg_json(yajl_gen g, const engine_agg *a, int hist)
{
    yajl_gen_map_open(g);
    if (a->kind == ENGINE_AGG_SECTOR) {
        api_json_kv_str(g, "sector", a->sector);
    } else {
        api_json_kv_str(g, "brand", a->brand);
        if (a->kind == ENGINE_AGG_CAMPAIGN)
            api_json_kv_str(g, "campaign", a->campaign);
    }
    api_json_kv_int(g, "count", a->count);
    api_json_str(g, "metrics");
    yajl_gen_map_open(g);
    for (size_t i = 0; i < a->nmetrics; i++) {
        if (a->metrics[i].n <= 0)
            continue; /* only a damaged aggregate has such a metric */
        api_json_str(g, a->metrics[i].name);
        metric_json(g, &a->metrics[i], hist);
    }
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
}

/* ---------------------------------------------------------------------------
 * Listings: pages by key position (engine_brand_list).
 *
 * A cursor seals (api_cursor_seal: opaque, authenticated, bound to the
 * tenant, the route and its parameters, so to the listing with its sort and
 * order) the position (sort key, or index sort key) of the last document the
 * previous page covered; the engine goes on after it.
 * ------------------------------------------------------------------------- */
typedef struct list_emit {
    api_request *req;
    yajl_gen g;
} list_emit;

/* An asset as clients sent it: its names, media type and scores (doubles as
 * received), model version and document version; not the keys, the
 * micro-unit copies or a video's per-second progression (GET
 * /v1/assets/{id} has it all). */
static void asset_json(yajl_gen g, const engine_asset *x)
{
    const char *const names[] = {"asset",    "client", "brand",      "brand_id",
                                 "campaign", "sector", "media_type", "model_version"};
    const char *const values[] = {x->asset,    x->client, x->brand,      x->brand_id,
                                  x->campaign, x->sector, x->media_type, x->model_version};
    yajl_gen_map_open(g);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (values[i] && values[i][0]) /* brand_id and model_version are "" when not given */
            api_json_kv_str(g, names[i], values[i]);
    if (x->has_memorability)
        api_json_kv_double(g, "memorability", x->memorability);
    if (x->has_saliency) {
        api_json_str(g, "saliency");
        yajl_gen_map_open(g);
        for (size_t i = 0; i < x->nsaliency; i++)
            api_json_kv_double(g, x->saliency[i].name, x->saliency[i].value);
        yajl_gen_map_close(g);
    }
    if (x->version >= 0)
        api_json_kv_int(g, "version", x->version);
    yajl_gen_map_close(g);
}

static sl_status emit_item(void *ctx, const engine_agg *agg, const engine_asset *asset,
                           const store_doc *row, sl_error *err)
{
    const list_emit *e = ctx;
    (void)row;
    (void)err;
    if (agg)
        agg_json(e->g, agg, 0);
    else
        asset_json(e->g, asset);
    return SL_OK;
}

/* The cursor's position into pos (STORE_KEY_MAX + 1); "" without a cursor.
 * SL_EINVAL naming `cursor` when it does not open for this request's listing
 * (api_cursor_open). */
static sl_status cursor_position(api_request *req, char *pos, sl_error *err)
{
    unsigned char raw[API__CURSOR_POS_MAX];
    size_t len = 0;
    sl_status rc = api_cursor_open(req, raw, &len, err);
    pos[0] = '\0';
    if (rc != SL_OK || len == 0)
        goto out;
    /* It opened, so this listing sealed it: anything else is a bug here. */
    if (len > STORE_KEY_MAX || memchr(raw, '\0', len)) {
        rc = sl_error_set(err, SL_EINTERNAL, "a cursor of this listing holds no key of it");
        goto out;
    }
    memcpy(pos, raw, len);
    pos[len] = '\0';
out:
    return rc;
}

/* Writes {"<array>": [...], "next": cursor-or-null} for one page of at most
 * limit items.  Returns the number of items written in *nitems. */
static sl_status listing_run(api_request *req, engine_list_query *q, const char *array, yajl_gen g,
                             size_t *nitems, sl_error *err)
{
    sl_status rc = SL_OK;
    char pos[STORE_KEY_MAX + 1], next[API_CURSOR_MAX];
    engine_list_result res;
    list_emit e = {req, g};
    if ((rc = cursor_position(req, pos, err)) != SL_OK)
        goto out;
    q->tenant = api_auth_of(req)->tenant;
    q->after = pos;
    q->scan_max = SCAN_MAX;
    api_json_str(g, array);
    yajl_gen_array_open(g);
    rc = api__aggregate_check(req, engine_brand_list(api_store(req), q, emit_item, &e, &res, err),
                              err);
    if (rc != SL_OK)
        goto out;
    yajl_gen_array_close(g);
    api_json_str(g, "next");
    if (res.more) {
        if ((rc = api_cursor_seal(req, res.last, strlen(res.last), next, err)) != SL_OK)
            goto out;
        api_json_str(g, next);
    } else {
        yajl_gen_null(g);
    }
    *nitems = res.listed;
out:
    return rc;
}

/* Parses `order` (asc|desc; def when absent) into *descending. */
static sl_status order_param(api_request *req, int def_desc, int *descending, sl_error *err)
{
    sl_status rc = SL_OK;
    const char *o = api_query(req, "order");
    if (!o)
        *descending = def_desc;
    else if (!strcmp(o, "asc") || !strcmp(o, "desc"))
        *descending = !strcmp(o, "desc");
    else
        rc = sl_error_set_at(err, SL_EINVAL, "order", -1,
                             "order must be asc or desc, not \"%.40s\"", o);
    return rc;
}

/* One listing's answer: {"<array>": [...], "next"}; not_found (may be
 * NULL): the message of a 404 when the first page is empty (a brand with
 * nothing to list does not exist). */
typedef struct list_answer {
    api_request *req;
    engine_list_query *q;
    const char *array, *not_found;
} list_answer;

static sl_status list_json(yajl_gen g, const void *ctx, sl_error *err)
{
    const list_answer *a = ctx;
    size_t n = 0;
    const char *c = api_query(a->req, "cursor");
    yajl_gen_map_open(g);
    sl_status rc = listing_run(a->req, a->q, a->array, g, &n, err);
    yajl_gen_map_close(g);
    if (rc == SL_OK && a->not_found && n == 0 && (!c || !c[0]))
        rc = sl_error_set_at(err, SL_ENOTFOUND, "brand", -1, "%s", a->not_found);
    return rc;
}

/* Runs a listing and answers it (see list_answer). */
static sl_status list_reply(api_request *req, engine_list_query *q, const char *array,
                            const char *not_found, sl_error *err)
{
    int64_t limit = 0;
    sl_status rc = api_query_int(req, "limit", 1, LIST_MAX, LIST_DEFAULT, &limit, err);
    q->limit = (size_t)limit;
    list_answer a = {req, q, array, not_found};
    return rc == SL_OK ? api_reply_json_with(req, 200, list_json, &a, err) : rc;
}

/* ---------------------------------------------------------------------------
 * Handlers.
 * ------------------------------------------------------------------------- */

/* GET /v1/brands?sort=brand|count|mean&order=asc|desc&limit=&cursor=
 * sort=brand (default, ascending by default) walks the aggregates partition
 * and passes over campaign aggregates; count and mean (descending by
 * default) walk the brand index gsi1 / gsi2. */
static sl_status brands_list(api_request *req, sl_error *err)
{
    sl_status rc = SL_OK;
    const char *sort = api_query(req, "sort");
    int by_name = !sort || !strcmp(sort, "brand");
    int by_count = sort && !strcmp(sort, "count");
    int by_mean = sort && !strcmp(sort, "mean");
    int desc = 0;
    if (!by_name && !by_count && !by_mean) {
        rc = sl_error_set_at(err, SL_EINVAL, "sort", -1,
                             "sort must be brand, count or mean (of memorability), not \"%.40s\"",
                             sort);
        goto out;
    }
    if ((rc = order_param(req, !by_name, &desc, err)) != SL_OK)
        goto out;
    engine_list_query q = {.what = by_name    ? ENGINE_LIST_BRANDS
                                   : by_count ? ENGINE_LIST_BRANDS_BY_COUNT
                                              : ENGINE_LIST_BRANDS_BY_MEAN,
                           .descending = desc};
    rc = list_reply(req, &q, "brands", NULL, err);
out:
    return rc;
}

/* Parses `histogram` (true|false, default false) into *on. */
static sl_status histogram_param(api_request *req, int *on, sl_error *err)
{
    sl_status rc = SL_OK;
    const char *h = api_query(req, "histogram");
    if (!h || !strcmp(h, "false"))
        *on = 0;
    else if (!strcmp(h, "true") || !h[0])
        *on = 1;
    else
        rc = sl_error_set_at(err, SL_EINVAL, "histogram", -1,
                             "histogram must be true or false, not \"%.40s\"", h);
    return rc;
}

typedef struct agg_answer {
    const engine_agg *a;
    int hist;
} agg_answer;

static sl_status agg_answer_json(yajl_gen g, const void *ctx, sl_error *err)
{
    const agg_answer *ans = ctx;
    agg_json(g, ans->a, ans->hist);
    return SL_OK;
}

/* Reads one aggregate (engine_brand_agg_get) and answers it, with its
 * histograms when asked (?histogram=true: 100 counts per metric make the
 * answer several times larger); 404 when it does not exist or counts
 * nothing. */
static sl_status agg_get(api_request *req, engine_agg_kind kind, const char *name,
                         const char *campaign, sl_error *err)
{
    sl_status rc = SL_OK;
    int hist = 0;
    engine_agg a;
    engine_agg_init(&a);
    if ((rc = histogram_param(req, &hist, err)) != SL_OK)
        goto out;
    rc = engine_brand_agg_get(api_store(req), api_auth_of(req)->tenant, kind, name, campaign, &a,
                              err);
    if ((rc = api__aggregate_check(req, rc, err)) == SL_OK) {
        agg_answer ans = {&a, hist};
        rc = api_reply_json_with(req, 200, agg_answer_json, &ans, err);
    }
out:
    engine_agg_free(&a);
    return rc;
}

static sl_status brand_get(api_request *req, sl_error *err)
{
    return agg_get(req, ENGINE_AGG_BRAND, api_param(req, "brand"), NULL, err);
}

static sl_status campaign_get(api_request *req, sl_error *err)
{
    return agg_get(req, ENGINE_AGG_CAMPAIGN, api_param(req, "brand"), api_param(req, "campaign"),
                   err);
}

static sl_status sector_get(api_request *req, sl_error *err)
{
    return agg_get(req, ENGINE_AGG_SECTOR, api_param(req, "sector"), NULL, err);
}

/* GET /v1/brands/{brand}/campaigns?order=&limit=&cursor= (by campaign name). */
static sl_status campaigns_list(api_request *req, sl_error *err)
{
    sl_status rc = SL_OK;
    char missing[64 + SCHEMA_COMPONENT_MAX];
    int desc = 0;
    const char *b = api_param(req, "brand");
    if ((rc = order_param(req, 0, &desc, err)) != SL_OK)
        goto out;
    snprintf(missing, sizeof missing, "no brand \"%s\" (no asset has it)", b);
    engine_list_query q = {.what = ENGINE_LIST_CAMPAIGNS, .brand = b, .descending = desc};
    rc = list_reply(req, &q, "campaigns", missing, err);
out:
    return rc;
}

/* GET /v1/sectors?order=&limit=&cursor= (by sector name). */
static sl_status sectors_list(api_request *req, sl_error *err)
{
    sl_status rc = SL_OK;
    int desc = 0;
    if ((rc = order_param(req, 0, &desc, err)) != SL_OK)
        goto out;
    engine_list_query q = {.what = ENGINE_LIST_SECTORS, .descending = desc};
    rc = list_reply(req, &q, "sectors", NULL, err);
out:
    return rc;
}

/* GET /v1/brands/{brand}/assets?order=&limit=&cursor=: the brand's assets
 * by campaign then asset id, through the asset index (gsi1 of items:
 * T#t#ASSETS / BRAND#b#CAMPAIGN#c#ASSET#id). */
static sl_status brand_assets(api_request *req, sl_error *err)
{
    sl_status rc = SL_OK;
    char missing[64 + SCHEMA_COMPONENT_MAX];
    int desc = 0;
    const char *b = api_param(req, "brand");
    if ((rc = order_param(req, 0, &desc, err)) != SL_OK)
        goto out;
    snprintf(missing, sizeof missing, "no brand \"%s\" (no asset has it)", b);
    engine_list_query q = {.what = ENGINE_LIST_ASSETS, .brand = b, .descending = desc};
    rc = list_reply(req, &q, "assets", missing, err);
out:
    return rc;
}

static const api_route routes[] = {
    {"GET", "/v1/brands", API_ROLE_VIEWER, API_KIND_BRAND, "sort order limit cursor", API_BODY_NONE,
     0, API_RUN_INLINE, NULL, NULL, brands_list},
    {"GET", "/v1/brands/{brand}", API_ROLE_VIEWER, API_KIND_BRAND, "histogram", API_BODY_NONE, 0,
     API_RUN_INLINE, NULL, NULL, brand_get},
    {"GET", "/v1/brands/{brand}/campaigns", API_ROLE_VIEWER, API_KIND_BRAND, "order limit cursor",
     API_BODY_NONE, 0, API_RUN_INLINE, NULL, NULL, campaigns_list},
    {"GET", "/v1/brands/{brand}/campaigns/{campaign}", API_ROLE_VIEWER, API_KIND_BRAND, "histogram",
     API_BODY_NONE, 0, API_RUN_INLINE, NULL, NULL, campaign_get},
    {"GET", "/v1/brands/{brand}/assets", API_ROLE_VIEWER, API_KIND_BRAND, "order limit cursor",
     API_BODY_NONE, 0, API_RUN_INLINE, NULL, NULL, brand_assets},
    {"GET", "/v1/sectors", API_ROLE_VIEWER, API_KIND_BRAND, "order limit cursor", API_BODY_NONE, 0,
     API_RUN_INLINE, NULL, NULL, sectors_list},
    {"GET", "/v1/sectors/{sector}", API_ROLE_VIEWER, API_KIND_BRAND, "histogram", API_BODY_NONE, 0,
     API_RUN_INLINE, NULL, NULL, sector_get},
};

API_AREA(brands, routes);
