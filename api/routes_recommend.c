/* routes_recommend.c -- GET /v1/hospitals/{h}/recommendations?procedure=P
 * [&min_surgeries=N]: for each tool opened in the procedure's analyzed
 * surgeries, its usage rate (instances used / opened) with a Wilson 95 %
 * interval, a recommendation (keep open, open on request, review) by the
 * rules of docs/usage.md ("Recommendations"; thresholds are serve settings,
 * api/config.c), and the yearly savings projected from the waste observed
 * over the days the procedure's surgeries span.
 *
 * Served from aggregates: the procedure's tool aggregates (one per SKU, kept
 * by the listener from the surgeries' summaries) and two reads of the
 * summaries' procedure index (the first and the last day), so a request
 * costs the same with ten surgeries or a million. */
#include "api_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

#define TOOLS_MAX    65536u            /* tool aggregates of one procedure an answer holds */
#define WILSON_Z     1.959963984540054 /* the normal quantile of 97.5 %: a 95 % interval */
#define DAYS_OF_YEAR 365.25
#define DAY_MS       86400000LL

typedef struct reco_tool {
    engine_agg a;
    double rate, low, high;
    const char *verdict, *reason;
    int64_t yearly_waste, yearly_savings;
} reco_tool;

typedef struct reco {
    api_request *req;
    const char *hospital, *procedure;
    int64_t min_surgeries;
    int64_t surgeries; /* the procedure's analyzed surgeries that opened anything */
    char first_day[11], last_day[11];
    int64_t span_days, projection_days;
    reco_tool *tools;
    size_t n, cap;
} reco;

/* The Wilson score interval of k successes in n trials at WILSON_Z. */
static void wilson(int64_t k, int64_t n, double *rate, double *low, double *high)
{
    double p = (double)k / (double)n, z2 = WILSON_Z * WILSON_Z, nn = (double)n;
    double denom = 1 + z2 / nn;
    double centre = (p + z2 / (2 * nn)) / denom;
    double half = WILSON_Z * sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn)) / denom;
    *rate = p;
    *low = fmax(0, centre - half);
    *high = fmin(1, centre + half);
}

/* The rules (docs/usage.md, "Recommendations"). */
static void decide(const reco *r, const api_config *cfg, reco_tool *t)
{
    const engine_agg *a = &t->a;
    t->rate = t->low = t->high = NAN;
    if (a->units_opened > 0)
        wilson(a->units_used, a->units_opened, &t->rate, &t->low, &t->high);
    t->yearly_waste = llround((double)a->waste_cents * DAYS_OF_YEAR / (double)r->projection_days);
    t->yearly_savings = 0;
    if (a->surgeries_opened < r->min_surgeries || a->units_opened <= 0) {
        t->verdict = "review";
        t->reason = "opened in fewer surgeries than min_surgeries: too few to tell";
    } else if (t->high * 100 <= (double)cfg->recommend_on_request_pct) {
        t->verdict = "open on request";
        t->reason = "rarely used: the usage rate's upper bound is at most recommend-on-request";
        t->yearly_savings = t->yearly_waste;
    } else if (t->low * 100 >= (double)cfg->recommend_keep_open_pct) {
        t->verdict = "keep open";
        t->reason = "usually used: the usage rate's lower bound is at least recommend-keep-open";
    } else {
        t->verdict = "review";
        t->reason = "the usage rate lies between the rules' thresholds, or is not yet known "
                    "precisely enough";
    }
}

/* The first (descending 0) or last day of the procedure's analyzed surgeries
 * from the summaries' index: "" when there is none. */
static sl_status edge_day(reco *r, const char *gpk, int descending, char out[11], sl_error *err)
{
    store_page page = {0};
    store_query_opts q = {
        .range = {STORE_RANGE_BEGINS_WITH, "DATE#", NULL}, .descending = descending, .limit = 1};
    sl_status rc =
        store_query_index(api_store(r->req), STORE_ITEMS, STORE_GSI1, gpk, &q, &page, err);
    out[0] = '\0';
    if (rc == SL_OK && page.count == 1) {
        bson_t view;
        const char *sk =
            store_page_view(&page, 0, &view) ? api_doc_str(&view, SCHEMA_F_GSI1SK) : NULL;
        if (!sk || strlen(sk) < 15 || strncmp(sk, "DATE#", 5))
            rc = sl_error_set(err, SL_ECORRUPT, "a surgery summary of %s has a damaged index key",
                              gpk);
        else
            snprintf(out, 11, "%.10s", sk + 5);
    }
    store_page_free(&page);
    return rc;
}

static int64_t day_ms(const char *day)
{
    char text[32];
    int64_t ms = 0;
    sl_error e;
    snprintf(text, sizeof text, "%sT00:00:00Z", day);
    return schema_time_parse(text, &ms, &e) == SL_OK ? ms : 0;
}

/* The procedure's tool aggregates into r->tools. */
static sl_status read_tools(reco *r, sl_error *err)
{
    sl_status rc = SL_OK;
    schema_key pk, sk;
    char prefix[SCHEMA_KEY_MAX];
    store_page page = {0}, prev = {0};
    const char *tenant = api_auth_of(r->req)->tenant;
    /* the sort key of SKU "x", less the "x": every SKU's key starts with it */
    if ((rc = schema_pk_aggregates(pk, tenant, err)) != SL_OK ||
        (rc = schema_sk_tool_aggregate(sk, r->hospital, r->procedure, "x", err)) != SL_OK)
        goto out;
    snprintf(prefix, sizeof prefix, "%.*s", (int)strlen(sk) - 1, sk);
    store_query_opts q = {.range = {STORE_RANGE_BEGINS_WITH, prefix, NULL},
                          .limit = STORE_PAGE_MAX};
    for (;;) {
        rc = store_query(api_store(r->req), STORE_AGGREGATES, pk, &q, &page, err);
        store_page_free(&prev);
        if (rc != SL_OK)
            goto out;
        for (size_t i = 0; i < page.count; i++) {
            if (r->n == TOOLS_MAX) {
                rc =
                    sl_error_set_at(err, SL_ETOOLARGE, "procedure", -1,
                                    "procedure %s has more than %u tools", r->procedure, TOOLS_MAX);
                goto out;
            }
            if (r->n == r->cap) {
                size_t cap = r->cap ? r->cap * 2 : 64;
                reco_tool *t = realloc(r->tools, cap * sizeof *t);
                if (!t) {
                    rc = sl_error_set(err, SL_ENOMEM, "out of memory reading tool aggregates");
                    goto out;
                }
                r->tools = t;
                r->cap = cap;
            }
            reco_tool *t = &r->tools[r->n];
            memset(t, 0, sizeof *t);
            engine_agg_init(&t->a);
            bson_t view;
            sl_error e;
            sl_error_clear(&e);
            const store_doc *row = &page.docs[i];
            if (!store_page_view(&page, i, &view) ||
                engine_agg_read(&view, row->pk, row->sk, &t->a, &e) != SL_OK ||
                t->a.kind != ENGINE_AGG_TOOL) {
                engine_agg_free(&t->a);
                sl_error_set_at(&e, SL_ECORRUPT, "aggregate", -1,
                                "aggregate %s is damaged and cannot be served until an operator "
                                "runs `sightline recompute --repair`, which rebuilds it",
                                row->sk);
                api__request_fail(r->req, 503, "aggregate-needs-repair", &e);
                rc = sl_error_set_at(err, SL_ECORRUPT, "aggregate", -1, "%s", e.message);
                goto out;
            }
            r->n++;
            if (t->a.surgeries > r->surgeries)
                r->surgeries = t->a.surgeries;
        }
        if (!page.next_token)
            break;
        prev = page;
        memset(&page, 0, sizeof page);
        q.page_token = prev.next_token;
    }
out:
    store_page_free(&page);
    store_page_free(&prev);
    return rc;
}

/* Most projected savings first, then by yearly waste, then SKU. */
static int by_savings(const void *x, const void *y)
{
    const reco_tool *a = x, *b = y;
    if (a->yearly_savings != b->yearly_savings)
        return a->yearly_savings > b->yearly_savings ? -1 : 1;
    if (a->yearly_waste != b->yearly_waste)
        return a->yearly_waste > b->yearly_waste ? -1 : 1;
    return strcmp(a->a.sku, b->a.sku);
}

static void kv_rate(yajl_gen g, const char *k, double v)
{
    api_json_str(g, k);
    if (isnan(v))
        yajl_gen_null(g);
    else
        api_json_double(g, round(v * 1e6) / 1e6);
}

static sl_status reco_json(yajl_gen g, const void *ctx, sl_error *err)
{
    const reco *r = ctx;
    const api_config *cfg = api_config_of(r->req);
    schema_key cpk, csk;
    sl_status rc = schema_pk_catalog(cpk, api_auth_of(r->req)->tenant, err);
    if (rc != SL_OK)
        return rc;
    yajl_gen_map_open(g);
    api_json_kv_str(g, "hospital", r->hospital);
    api_json_kv_str(g, "procedure", r->procedure);
    api_json_kv_int(g, "surgeries", r->surgeries);
    api_json_kv_str(g, "first_day", r->first_day[0] ? r->first_day : NULL);
    api_json_kv_str(g, "last_day", r->last_day[0] ? r->last_day : NULL);
    api_json_kv_int(g, "span_days", r->span_days);
    api_json_kv_double(
        g, "surgeries_per_year",
        round((double)r->surgeries * DAYS_OF_YEAR / (double)r->projection_days * 10) / 10);
    api_json_str(g, "rules");
    yajl_gen_map_open(g);
    api_json_kv_int(g, "min_surgeries", r->min_surgeries);
    api_json_kv_int(g, "keep_open_pct", cfg->recommend_keep_open_pct);
    api_json_kv_int(g, "on_request_pct", cfg->recommend_on_request_pct);
    api_json_kv_int(g, "min_span_days", cfg->recommend_min_span_days);
    yajl_gen_map_close(g);
    int64_t savings = 0;
    api_json_str(g, "tools");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < r->n; i++) {
        const reco_tool *t = &r->tools[i];
        bson_t *entry = NULL;
        sl_error e;
        sl_error_clear(&e);
        /* the name as the catalog has it now (a SKU since removed has none) */
        if (schema_sk_catalog_tool(csk, t->a.sku, &e) == SL_OK)
            (void)store_get(api_store(r->req), STORE_ITEMS, cpk, csk, &entry, &e);
        const char *name = entry ? api_doc_str(entry, SCHEMA_F_NAME) : NULL;
        yajl_gen_map_open(g);
        api_json_kv_str(g, "sku", t->a.sku);
        api_json_kv_str(g, "name", name ? name : t->a.sku);
        api_json_kv_int(g, "surgeries", t->a.surgeries);
        api_json_kv_int(g, "surgeries_opened", t->a.surgeries_opened);
        api_json_kv_int(g, "surgeries_used", t->a.surgeries_used);
        api_json_kv_int(g, "units_opened", t->a.units_opened);
        api_json_kv_int(g, "units_used", t->a.units_used);
        kv_rate(g, "usage_rate", t->rate);
        kv_rate(g, "usage_rate_low", t->low);
        kv_rate(g, "usage_rate_high", t->high);
        api_json_kv_str(g, "recommendation", t->verdict);
        api_json_kv_str(g, "reason", t->reason);
        api_json_kv_int(g, "waste_cents", t->a.waste_cents);
        api_json_kv_int(g, "projected_yearly_waste_cents", t->yearly_waste);
        api_json_kv_int(g, "projected_yearly_savings_cents", t->yearly_savings);
        yajl_gen_map_close(g);
        savings += t->yearly_savings;
        if (entry)
            bson_destroy(entry);
    }
    yajl_gen_array_close(g);
    api_json_kv_int(g, "projected_yearly_savings_cents", savings);
    yajl_gen_map_close(g);
    return SL_OK;
}

static sl_status recommendations_get(api_request *req, sl_error *err)
{
    sl_status rc;
    reco r = {.req = req, .hospital = api_param(req, "h")};
    const char *tenant = api_auth_of(req)->tenant;
    const api_config *cfg = api_config_of(req);
    schema_key gpk;
    r.procedure = api_query(req, "procedure");
    if (!r.procedure) {
        rc = sl_error_set_at(err, SL_EINVAL, "procedure", -1,
                             "procedure is required: the recommendations are per procedure");
        goto out;
    }
    if ((rc = schema_component_check("procedure", r.procedure, err)) != SL_OK ||
        (rc = api_query_int(req, "min_surgeries", 1, 1000000, 5, &r.min_surgeries, err)) != SL_OK ||
        (rc = schema_pk_hospital_procedure(gpk, tenant, r.hospital, r.procedure, err)) != SL_OK ||
        (rc = edge_day(&r, gpk, 0, r.first_day, err)) != SL_OK ||
        (rc = edge_day(&r, gpk, 1, r.last_day, err)) != SL_OK ||
        (rc = read_tools(&r, err)) != SL_OK)
        goto out;
    r.span_days = r.first_day[0] ? (day_ms(r.last_day) - day_ms(r.first_day)) / DAY_MS + 1 : 0;
    r.projection_days =
        r.span_days > cfg->recommend_min_span_days ? r.span_days : cfg->recommend_min_span_days;
    for (size_t i = 0; i < r.n; i++)
        decide(&r, cfg, &r.tools[i]);
    if (r.n) /* qsort of NULL is undefined, even of none */
        qsort(r.tools, r.n, sizeof *r.tools, by_savings);
    rc = api_reply_json_with(req, 200, reco_json, &r, err);
out:
    for (size_t i = 0; i < r.n; i++)
        engine_agg_free(&r.tools[i].a);
    free(r.tools);
    return rc;
}

static const api_route routes[] = {
    {"GET", "/v1/hospitals/{h}/recommendations", API_ROLE_STAFF | API_ROLE_VIEWER,
     API_KIND_HOSPITAL, "procedure min_surgeries", API_BODY_NONE, 0, API_RUN_INLINE, NULL, NULL,
     recommendations_get},
};

API_AREA(recommend, routes);
