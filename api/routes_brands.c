/* routes_brands.c -- the brand dashboard: brand, campaign and sector
 * aggregates, read from aggregate documents only (a request costs the same
 * with a thousand assets or ten million), and the drill-down to a brand's
 * assets through the asset index.  Viewer and admin keys; the tenant is the
 * key's.  Shapes, numbers and cursors: docs/dashboard.md.  An aggregate the
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

/* Records the answer to a request that needs aggregate sk of the caller's
 * tenant, which cannot be served: 503, type aggregate-needs-repair, naming
 * it (the details -- which may name what its damaged bytes hold -- are the
 * operator's, in recompute's report).  Returns SL_ECORRUPT; the problem
 * recorded here is the one answered (the first recorded wins). */
static sl_status needs_repair(api_request *req, const char *sk, const char *what, sl_error *err)
{
    sl_error e;
    sl_error_clear(&e);
    sl_error_set_at(&e, SL_ECORRUPT, "aggregate", -1,
                    "aggregate %s is %s and cannot be served until an operator runs `sightline "
                    "recompute --repair`, which rebuilds it",
                    sk, what);
    api__request_fail(req, 503, "aggregate-needs-repair", &e);
    return sl_error_set_at(err, SL_ECORRUPT, "aggregate", -1, "%s", e.message);
}

/* The answer for quarantined aggregate q: over the metric limit, 503 of its
 * own type saying what the tenant can do (its assets must carry fewer
 * metrics; docs/recompute.md), else needs_repair.  Returns SL_ECORRUPT. */
static sl_status quarantined(api_request *req, const engine_quarantine *q, sl_error *err)
{
    sl_error e;
    sl_status rc;
    if (q->cause != ENGINE_QUARANTINE_METRIC_LIMIT) {
        rc = needs_repair(req, q->sk, "quarantined (its document could not be read)", err);
        goto out;
    }
    sl_error_clear(&e);
    sl_error_set_at(&e, SL_ECORRUPT, "aggregate", -1,
                    "aggregate %s is over the metric limit: its assets carry more than %d metrics "
                    "(memorability and the distinct saliency names), more than an aggregate "
                    "holds, so it is not kept; it is served again once they carry at most %d "
                    "(assets rescored, deleted or moved) and an operator runs `sightline "
                    "recompute --repair`",
                    q->sk, ENGINE_AGG_METRICS_MAX, ENGINE_AGG_METRICS_MAX);
    api__request_fail(req, 503, "aggregate-over-metric-limit", &e);
    rc = sl_error_set_at(err, SL_ECORRUPT, "aggregate", -1, "%s", e.message);
out:
    return rc;
}

/* 503 (quarantined) when an aggregate of the tenant whose sort key starts
 * with prefix and whose kind is kind is quarantined; SL_OK when none is. */
static sl_status quarantine_check(api_request *req, const char *prefix, engine_agg_kind kind,
                                  sl_error *err)
{
    engine_quarantine q;
    sl_status rc =
        engine_quarantine_first(api_store(req), api_auth_of(req)->tenant, prefix, kind, &q, err);
    if (rc == SL_ENOTFOUND) {
        sl_error_clear(err);
        rc = SL_OK;
    } else if (rc == SL_OK) {
        rc = quarantined(req, &q, err);
    }
    return rc;
}

/* Reads the aggregate stored under (pk, sk) into *a (initialized; the caller
 * frees it with engine_agg_free), which must be of kind kind.  A damaged one
 * is answered 503 (needs_repair). */
static sl_status agg_read(api_request *req, const bson_t *doc, const char *pk, const char *sk,
                          engine_agg_kind kind, engine_agg *a, sl_error *err)
{
    sl_error e;
    sl_error_clear(&e);
    sl_status rc = engine_agg_read(doc, pk, sk, a, &e);
    if (rc == SL_OK && a->kind != kind)
        rc = sl_error_set(&e, SL_ECORRUPT, "an aggregate of kind %d where kind %d was expected",
                          (int)a->kind, (int)kind);
    if (rc != SL_OK)
        rc = needs_repair(req, sk, "damaged", err);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Listings: pages by key position.
 *
 * A cursor seals (api_cursor_seal: opaque, authenticated, bound to the
 * tenant, the route and its parameters, so to the listing with its sort and
 * order) the key (sort key, or index sort key) of the last document the
 * previous page covered.  The next page starts at that key, inclusive, and
 * skips it -- keys are unique within a listing -- so nothing is skipped or
 * repeated among documents that stay put.  One more item than the limit is
 * looked for, so `next` is null exactly on the last page.
 * ------------------------------------------------------------------------- */
typedef struct listing {
    store_table table;
    store_index index;     /* 0: the partition itself */
    const char *key;       /* pk, or the index partition key */
    const char *prefix;    /* every listed key starts with it ("" for all) */
    const char *pos_field; /* the document field holding the key: sk (the stored key is
                            * used), gsi1sk, gsi2sk */
    int descending;
    /* 1 to list the document, 0 to pass over it (row: its stored key). */
    int (*keep)(const bson_t *doc, const store_doc *row);
    /* Writes one listed document; an error ends the listing. */
    sl_status (*emit)(api_request *req, yajl_gen g, const bson_t *doc, const store_doc *row,
                      sl_error *err);
} listing;

/* The cursor's position for this listing into pos (STORE_KEY_MAX + 1); ""
 * without a cursor.  SL_EINVAL naming `cursor` when it does not open for
 * this request's listing (api_cursor_open). */
static sl_status cursor_position(api_request *req, const listing *ls, char *pos, sl_error *err)
{
    unsigned char raw[API__CURSOR_POS_MAX];
    size_t len = 0, plen = strlen(ls->prefix);
    sl_status rc = api_cursor_open(req, raw, &len, err);
    pos[0] = '\0';
    if (rc != SL_OK || len == 0)
        goto out;
    /* It opened, so this listing sealed it: anything else is a bug here. */
    if (len > STORE_KEY_MAX || memchr(raw, '\0', len) || len < plen ||
        memcmp(raw, ls->prefix, plen) != 0) {
        rc = sl_error_set(err, SL_EINTERNAL, "a cursor of this listing holds no key of it");
        goto out;
    }
    memcpy(pos, raw, len);
    pos[len] = '\0';
out:
    return rc;
}

/* The range of the listing after position pos ("" for the start).  succ
 * (SCHEMA_KEY_MAX) receives the prefix's successor: the prefix with its last
 * byte raised ('#' -> '$'), the first key past every key with the prefix. */
static store_range listing_range(const listing *ls, const char *pos, char *succ)
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
        r = ls->descending ? (store_range){STORE_RANGE_LE, NULL, pos}
                           : (store_range){STORE_RANGE_GE, pos, NULL};
    else if (pos[0])
        r = ls->descending ? (store_range){STORE_RANGE_BETWEEN, ls->prefix, pos}
                           : (store_range){STORE_RANGE_BETWEEN, pos, succ};
    return r;
}

/* Writes {"<array>": [...], "next": cursor-or-null} for one page of at most
 * limit items.  Returns the number of items written in *nitems. */
static sl_status listing_run(api_request *req, const listing *ls, const char *array, size_t limit,
                             yajl_gen g, size_t *nitems, sl_error *err)
{
    sl_status rc = SL_OK;
    store_page page = {0}, prev = {0}; /* prev holds the token of the page read next */
    char pos[STORE_KEY_MAX + 1], last[STORE_KEY_MAX + 1] = "";
    char succ[SCHEMA_KEY_MAX], next[API_CURSOR_MAX];
    size_t emitted = 0, scanned = 0, page_size = limit + 1;
    int more = 0, done = 0;
    if ((rc = cursor_position(req, ls, pos, err)) != SL_OK)
        goto out;
    store_query_opts q = {.range = listing_range(ls, pos, succ), .descending = ls->descending};
    api_json_str(g, array);
    yajl_gen_array_open(g);
    while (!done) {
        q.limit = page_size < STORE_PAGE_MAX ? page_size : STORE_PAGE_MAX;
        q.page_token = prev.next_token;
        rc = ls->index
                 ? store_query_index(api_store(req), ls->table, ls->index, ls->key, &q, &page, err)
                 : store_query(api_store(req), ls->table, ls->key, &q, &page, err);
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
                !(at = ls->index ? api_doc_str(&view, ls->pos_field) : row->sk)) {
                /* Bytes that are not BSON (or lack their key) under this key. */
                rc =
                    ls->table == STORE_AGGREGATES
                        ? needs_repair(req, row->sk, "damaged", err)
                        : sl_error_set(err, SL_ECORRUPT, "document %s / %s of a %s page is damaged",
                                       row->pk, row->sk, array);
                goto out;
            }
            scanned++;
            if (pos[0] && !strcmp(at, pos))
                continue; /* the previous page's last */
            if (ls->keep && !ls->keep(&view, row)) {
                snprintf(last, sizeof last, "%s", at);
                continue;
            }
            if (emitted == limit) {
                more = done = 1; /* one more exists: the page is full */
                break;
            }
            if ((rc = ls->emit(req, g, &view, row, err)) != SL_OK)
                goto out;
            emitted++;
            snprintf(last, sizeof last, "%s", at);
        }
        if (!done && !page.next_token) {
            done = 1;
        } else if (!done && scanned >= SCAN_MAX) {
            more = done = 1; /* bounded work: the client goes on from `last` */
        } else if (!done) {
            prev = page; /* its token positions the next read */
            memset(&page, 0, sizeof page);
            page_size *= 2;
        }
    }
    yajl_gen_array_close(g);
    api_json_str(g, "next");
    if (more && last[0]) {
        if ((rc = api_cursor_seal(req, last, strlen(last), next, err)) != SL_OK)
            goto out;
        api_json_str(g, next);
    } else {
        yajl_gen_null(g);
    }
    *nitems = emitted;
out:
    store_page_free(&page);
    store_page_free(&prev);
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
    const listing *ls;
    const char *array, *not_found;
    size_t limit;
} list_answer;

static sl_status list_json(yajl_gen g, const void *ctx, sl_error *err)
{
    const list_answer *a = ctx;
    size_t n = 0;
    const char *c = api_query(a->req, "cursor");
    yajl_gen_map_open(g);
    sl_status rc = listing_run(a->req, a->ls, a->array, a->limit, g, &n, err);
    yajl_gen_map_close(g);
    if (rc == SL_OK && a->not_found && n == 0 && (!c || !c[0]))
        rc = sl_error_set_at(err, SL_ENOTFOUND, "brand", -1, "%s", a->not_found);
    return rc;
}

/* Runs a listing and answers it (see list_answer). */
static sl_status list_reply(api_request *req, const listing *ls, const char *array,
                            const char *not_found, sl_error *err)
{
    int64_t limit = 0;
    sl_status rc = api_query_int(req, "limit", 1, LIST_MAX, LIST_DEFAULT, &limit, err);
    list_answer a = {req, ls, array, not_found, (size_t)limit};
    return rc == SL_OK ? api_reply_json_with(req, 200, list_json, &a, err) : rc;
}

/* ---------------------------------------------------------------------------
 * Emitters and filters.
 * ------------------------------------------------------------------------- */
/* A brand aggregate's key (BRAND#<b>, no campaign), whatever its bytes say. */
static int is_brand_agg(const bson_t *doc, const store_doc *row)
{
    (void)doc;
    return !strncmp(row->sk, SCHEMA_SK_BRAND_PREFIX, strlen(SCHEMA_SK_BRAND_PREFIX)) &&
           !strchr(row->sk + strlen(SCHEMA_SK_BRAND_PREFIX), '#');
}

static sl_status emit_agg(api_request *req, yajl_gen g, const bson_t *doc, const store_doc *row,
                          engine_agg_kind kind, sl_error *err)
{
    engine_agg a;
    engine_agg_init(&a);
    sl_status rc = agg_read(req, doc, row->pk, row->sk, kind, &a, err);
    if (rc == SL_OK)
        agg_json(g, &a, 0);
    engine_agg_free(&a);
    return rc;
}

static sl_status emit_brand(api_request *req, yajl_gen g, const bson_t *doc, const store_doc *row,
                            sl_error *err)
{
    return emit_agg(req, g, doc, row, ENGINE_AGG_BRAND, err);
}

static sl_status emit_campaign(api_request *req, yajl_gen g, const bson_t *doc,
                               const store_doc *row, sl_error *err)
{
    return emit_agg(req, g, doc, row, ENGINE_AGG_CAMPAIGN, err);
}

static sl_status emit_sector(api_request *req, yajl_gen g, const bson_t *doc, const store_doc *row,
                             sl_error *err)
{
    return emit_agg(req, g, doc, row, ENGINE_AGG_SECTOR, err);
}

/* An asset as clients sent it: its names, media type and scores (doubles as
 * received), model version and document version; not the keys, the
 * micro-unit copies or a video's per-second progression (GET
 * /v1/assets/{id} has it all). */
static sl_status emit_asset(api_request *req, yajl_gen g, const bson_t *doc, const store_doc *row,
                            sl_error *err)
{
    (void)req;
    (void)row;
    static const char *const names[] = {"asset",    "client", "brand",      "brand_id",
                                        "campaign", "sector", "media_type", "model_version"};
    bson_iter_t it;
    yajl_gen_map_open(g);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = api_doc_str(doc, names[i]);
        if (v && v[0]) /* brand_id and model_version are "" when not given */
            api_json_kv_str(g, names[i], v);
    }
    if (bson_iter_init_find(&it, doc, "memorability") && BSON_ITER_HOLDS_DOUBLE(&it))
        api_json_kv_double(g, "memorability", bson_iter_double(&it));
    bson_iter_t sal;
    if (bson_iter_init_find(&it, doc, "saliency") && BSON_ITER_HOLDS_DOCUMENT(&it) &&
        bson_iter_recurse(&it, &sal)) {
        api_json_str(g, "saliency");
        yajl_gen_map_open(g);
        while (bson_iter_next(&sal))
            if (BSON_ITER_HOLDS_DOUBLE(&sal))
                api_json_kv_double(g, bson_iter_key(&sal), bson_iter_double(&sal));
        yajl_gen_map_close(g);
    }
    if (bson_iter_init_find(&it, doc, SCHEMA_F_VERSION) && BSON_ITER_HOLDS_INT64(&it))
        api_json_kv_int(g, "version", bson_iter_int64(&it));
    yajl_gen_map_close(g);
    (void)err;
    return SL_OK;
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
    schema_key pk, gpk;
    const char *tenant = api_auth_of(req)->tenant;
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
    if ((rc = schema_pk_aggregates(pk, tenant, err)) != SL_OK ||
        (rc = schema_gpk_brand_aggs(gpk, tenant, err)) != SL_OK ||
        (rc = quarantine_check(req, SCHEMA_SK_BRAND_PREFIX, ENGINE_AGG_BRAND, err)) != SL_OK)
        goto out;
    listing ls = {.table = STORE_AGGREGATES,
                  .index = by_name    ? 0
                           : by_count ? STORE_GSI1
                                      : STORE_GSI2,
                  .key = by_name ? pk : gpk,
                  .prefix = by_name ? SCHEMA_SK_BRAND_PREFIX : "",
                  .pos_field = by_name    ? SCHEMA_F_SK
                               : by_count ? SCHEMA_F_GSI1SK
                                          : SCHEMA_F_GSI2SK,
                  .descending = desc,
                  .keep = by_name ? is_brand_agg : NULL,
                  .emit = emit_brand};
    rc = list_reply(req, &ls, "brands", NULL, err);
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

/* Reads one aggregate (pk T#t#AGG, sort key sk) and answers it, with its
 * histograms when asked (?histogram=true: 100 counts per metric make the
 * answer several times larger); 404 (naming `what`) when it does not exist
 * or counts nothing. */
static sl_status agg_get(api_request *req, const char *sk, engine_agg_kind kind, const char *what,
                         const char *name, sl_error *err)
{
    sl_status rc = SL_OK;
    schema_key pk;
    bson_t *doc = NULL;
    int hist = 0;
    engine_agg a;
    engine_quarantine q;
    engine_agg_init(&a);
    if ((rc = histogram_param(req, &hist, err)) != SL_OK ||
        (rc = schema_pk_aggregates(pk, api_auth_of(req)->tenant, err)) != SL_OK)
        goto out;
    /* Quarantined: whatever its document says, the listener stopped keeping it. */
    rc = engine_quarantine_get(api_store(req), pk, sk, &q, err);
    if (rc == SL_OK)
        rc = quarantined(req, &q, err);
    else if (rc == SL_ENOTFOUND)
        sl_error_clear(err);
    if (rc != SL_ENOTFOUND)
        goto out;
    rc = api_get_doc(api_store(req), STORE_AGGREGATES, pk, sk, &doc, err, what,
                     "no %s \"%s\" (no asset has it)", what, name);
    if (rc == SL_ECORRUPT) /* not BSON */
        rc = needs_repair(req, sk, "damaged", err);
    if (rc == SL_OK)
        rc = agg_read(req, doc, pk, sk, kind, &a, err);
    if (rc == SL_OK && a.count <= 0) /* counts nothing: as good as absent */
        rc = sl_error_set_at(err, SL_ENOTFOUND, what, -1, "no %s \"%s\" (no asset has it)", what,
                             name);
    if (rc == SL_OK) {
        agg_answer ans = {&a, hist};
        rc = api_reply_json_with(req, 200, agg_answer_json, &ans, err);
    }
out:
    if (doc)
        bson_destroy(doc);
    engine_agg_free(&a);
    return rc;
}

static sl_status brand_get(api_request *req, sl_error *err)
{
    schema_key sk;
    const char *b = api_param(req, "brand");
    sl_status rc = schema_sk_brand(sk, b, err);
    return rc == SL_OK ? agg_get(req, sk, ENGINE_AGG_BRAND, "brand", b, err) : rc;
}

static sl_status campaign_get(api_request *req, sl_error *err)
{
    schema_key sk;
    const char *b = api_param(req, "brand"), *c = api_param(req, "campaign");
    sl_status rc = schema_sk_brand_campaign(sk, b, c, err);
    return rc == SL_OK ? agg_get(req, sk, ENGINE_AGG_CAMPAIGN, "campaign", c, err) : rc;
}

static sl_status sector_get(api_request *req, sl_error *err)
{
    schema_key sk;
    const char *s = api_param(req, "sector");
    sl_status rc = schema_sk_sector(sk, s, err);
    return rc == SL_OK ? agg_get(req, sk, ENGINE_AGG_SECTOR, "sector", s, err) : rc;
}

/* GET /v1/brands/{brand}/campaigns?order=&limit=&cursor= (by campaign name). */
static sl_status campaigns_list(api_request *req, sl_error *err)
{
    sl_status rc = SL_OK;
    schema_key pk, prefix;
    char missing[64 + SCHEMA_COMPONENT_MAX];
    int desc = 0;
    const char *b = api_param(req, "brand");
    if ((rc = order_param(req, 0, &desc, err)) != SL_OK ||
        (rc = schema_pk_aggregates(pk, api_auth_of(req)->tenant, err)) != SL_OK ||
        (rc = schema_sk_brand_campaigns_prefix(prefix, b, err)) != SL_OK ||
        (rc = quarantine_check(req, prefix, ENGINE_AGG_CAMPAIGN, err)) != SL_OK)
        goto out;
    snprintf(missing, sizeof missing, "no brand \"%s\" (no asset has it)", b);
    listing ls = {.table = STORE_AGGREGATES,
                  .key = pk,
                  .prefix = prefix,
                  .pos_field = SCHEMA_F_SK,
                  .descending = desc,
                  .emit = emit_campaign};
    rc = list_reply(req, &ls, "campaigns", missing, err);
out:
    return rc;
}

/* GET /v1/sectors?order=&limit=&cursor= (by sector name). */
static sl_status sectors_list(api_request *req, sl_error *err)
{
    sl_status rc = SL_OK;
    schema_key pk;
    int desc = 0;
    if ((rc = order_param(req, 0, &desc, err)) != SL_OK ||
        (rc = schema_pk_aggregates(pk, api_auth_of(req)->tenant, err)) != SL_OK ||
        (rc = quarantine_check(req, SCHEMA_SK_SECTOR_PREFIX, ENGINE_AGG_SECTOR, err)) != SL_OK)
        goto out;
    listing ls = {.table = STORE_AGGREGATES,
                  .key = pk,
                  .prefix = SCHEMA_SK_SECTOR_PREFIX,
                  .pos_field = SCHEMA_F_SK,
                  .descending = desc,
                  .emit = emit_sector};
    rc = list_reply(req, &ls, "sectors", NULL, err);
out:
    return rc;
}

/* GET /v1/brands/{brand}/assets?order=&limit=&cursor=: the brand's assets
 * by campaign then asset id, through the asset index (gsi1 of items:
 * T#t#ASSETS / BRAND#b#CAMPAIGN#c#ASSET#id). */
static sl_status brand_assets(api_request *req, sl_error *err)
{
    sl_status rc = SL_OK;
    schema_key gpk, prefix;
    char missing[64 + SCHEMA_COMPONENT_MAX];
    int desc = 0;
    const char *b = api_param(req, "brand");
    if ((rc = order_param(req, 0, &desc, err)) != SL_OK ||
        (rc = schema_pk_assets_index(gpk, api_auth_of(req)->tenant, err)) != SL_OK ||
        (rc = schema_sk_brand_campaigns_prefix(prefix, b, err)) != SL_OK)
        goto out;
    snprintf(missing, sizeof missing, "no brand \"%s\" (no asset has it)", b);
    listing ls = {.table = STORE_ITEMS,
                  .index = STORE_GSI1,
                  .key = gpk,
                  .prefix = prefix,
                  .pos_field = SCHEMA_F_GSI1SK,
                  .descending = desc,
                  .emit = emit_asset};
    rc = list_reply(req, &ls, "assets", missing, err);
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
