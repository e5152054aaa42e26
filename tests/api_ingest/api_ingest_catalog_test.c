/* api_ingest_catalog_test.c -- issue 11, item 1: one unit-cost bound for the
 * whole tool catalog, from the PUT that accepts an entry to the tool
 * aggregates the listener and recompute keep, through the real server.
 *
 * Regression: ingest accepted unit_cost_cents up to 1e11 while the engine
 * read surgery summaries only up to 1e10, so a catalog entry ingest accepted
 * made the summary priced with it contribute nothing: no tool aggregate, a
 * skipped event.  (And 1e10 itself let the engine's sum over one summary's
 * entries overflow int64.)  The test asks the server for its bound, as a
 * client would learn it, and follows the largest accepted cost through. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "../check.h"
#include "engine/engine.h"
#include "ingest_http.h"

#define TENANT "h1"
#define SKU    "STAPLER-RELOAD"

static support_server srv;
static ih_keys k;

/* Member k1 (then k2) of a JSON body as text; "" when absent. */
static const char *get(const char *body, const char *k1, const char *k2, char out[2048])
{
    char err[128];
    yajl_val root = yajl_tree_parse(body, err, sizeof err);
    const char *p[] = {k1, k2, NULL};
    yajl_val v = root ? yajl_tree_get(root, p, yajl_t_any) : NULL;
    out[0] = '\0';
    if (v && YAJL_IS_STRING(v))
        snprintf(out, 2048, "%s", v->u.string);
    else if (v && YAJL_IS_NUMBER(v))
        snprintf(out, 2048, "%s", YAJL_GET_NUMBER(v));
    else if (v && YAJL_IS_TRUE(v))
        snprintf(out, 2048, "true");
    if (root)
        yajl_tree_free(root);
    return out;
}

static long call(const char *method, const char *path, const char *key, const char *body,
                 char **out)
{
    support_resp r;
    long status = ih_req(&srv, method, path, key, body, &r) == 0 ? r.status : -1;
    if (out)
        *out = strdup(r.body ? r.body : "");
    support_resp_free(&r);
    return status;
}

static long put_entry(const char *cost, char **out)
{
    char body[256];
    snprintf(body, sizeof body,
             "{\"name\": \"Stapler reload\", \"labels\": [\"stapler[ _-]?reload\"], "
             "\"unit_cost_cents\": %s, \"single_use\": true}",
             cost);
    return call("PUT", "/v1/catalog/" SKU, k.admin, body, out);
}

/* A surgery_summary as the usage analysis writes it (docs/documents.md):
 * n entries of SKU, each opened/used units at unit cost cost. */
static void put_summary(store *st, const char *surgery, int n, int64_t opened, int64_t used,
                        int64_t cost)
{
    char pk[128], gsk[128];
    snprintf(pk, sizeof pk, "T#" TENANT "#SURGERY#%s", surgery);
    snprintf(gsk, sizeof gsk, "DATE#2026-11-26#SURGERY#%s", surgery);
    bson_t *d = bson_new(), arr, t;
    BSON_APPEND_UTF8(d, "pk", pk);
    BSON_APPEND_UTF8(d, "sk", "SUMMARY");
    BSON_APPEND_UTF8(d, "gsi1pk", "T#" TENANT "#HOSPITAL#st-mary#PROC#lap-chole");
    BSON_APPEND_UTF8(d, "gsi1sk", gsk);
    BSON_APPEND_UTF8(d, "type", "surgery_summary");
    BSON_APPEND_UTF8(d, "tenant", TENANT);
    BSON_APPEND_UTF8(d, "surgery", surgery);
    BSON_APPEND_UTF8(d, "hospital", "st-mary");
    BSON_APPEND_UTF8(d, "procedure", "lap-chole");
    BSON_APPEND_INT64(d, "opened", n * opened);
    BSON_APPEND_INT64(d, "used", n * used);
    BSON_APPEND_INT64(d, "unused", n * (opened - used));
    BSON_APPEND_INT64(d, "waste_cents", 0); /* the engine computes its own */
    BSON_APPEND_ARRAY_BEGIN(d, "tools", &arr);
    for (int i = 0; i < n; i++) {
        char key[16];
        snprintf(key, sizeof key, "%d", i);
        BSON_APPEND_DOCUMENT_BEGIN(&arr, key, &t);
        BSON_APPEND_UTF8(&t, "sku", SKU);
        BSON_APPEND_INT64(&t, "opened_units", opened);
        BSON_APPEND_INT64(&t, "used_units", used);
        BSON_APPEND_INT64(&t, "unit_cost_cents", cost);
        BSON_APPEND_BOOL(&t, "single_use", true);
        bson_append_document_end(&arr, &t);
    }
    bson_append_array_end(d, &arr);
    sl_error e;
    sl_error_clear(&e);
    CHECK_INT(store_put(st, STORE_ITEMS, d, (store_cond){STORE_COND_NONE, 0}, NULL, &e), SL_OK);
    bson_destroy(d);
}

/* A counter of GET /metrics ("name value" line); -1 when absent. */
static long long metric(const char *name)
{
    char *body = NULL, want[128];
    long long v = -1;
    snprintf(want, sizeof want, "\n%s ", name);
    if (call("GET", "/metrics", NULL, NULL, &body) == 200) {
        const char *at = strstr(body, want);
        if (at)
            v = atoll(at + strlen(want));
    }
    free(body);
    return v;
}

static void test_largest_cost_reaches_the_aggregates(void)
{
    char *body = NULL, v[2048];

    /* The bound, as the server states it when refused. */
    CHECK_INT(put_entry("9000000000000000", &body), 400); /* 9e15: exact in a double */
    CHECK_STR(get(body, "field", NULL, v), "unit_cost_cents");
    const char *at = strstr(get(body, "detail", NULL, v), "is outside [0, ");
    REQUIRE(at != NULL);
    long long max = atoll(at + strlen("is outside [0, "));
    free(body);
    fprintf(stderr, "the server's unit-cost bound: %lld cents\n", max);
    CHECK_INT(max, SCHEMA_UNIT_COST_MAX);
    REQUIRE(max > 0);

    /* One more is refused, naming the field, and stores nothing. */
    char cost[32];
    snprintf(cost, sizeof cost, "%lld", max + 1);
    CHECK_INT(put_entry(cost, &body), 400);
    CHECK_STR(get(body, "field", NULL, v), "unit_cost_cents");
    CHECK(strstr(get(body, "detail", NULL, v), cost) != NULL);
    free(body);
    CHECK_INT(call("GET", "/v1/catalog/" SKU, k.staff, NULL, NULL), 404);

    /* The largest is accepted and shown. */
    snprintf(cost, sizeof cost, "%lld", max);
    CHECK_INT(put_entry(cost, &body), 201);
    free(body);
    CHECK_INT(call("GET", "/v1/catalog/" SKU, k.staff, NULL, &body), 200);
    CHECK_STR(get(body, "unit_cost_cents", NULL, v), cost);
    free(body);

    /* The engine reads the entry as the usage analysis will, and prices two
     * summaries with it: an ordinary one (3 opened, 1 used) and the largest
     * one a summary may be (4096 entries of the SKU, each 10^6 opened and
     * unused units, which the engine merges into one). */
    store *st = NULL;
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(store_open(srv.store, NULL, &st, &e) == SL_OK);
    schema_catalog *cat = NULL;
    REQUIRE(engine_catalog_load(st, TENANT, &cat, &e) == SL_OK);
    size_t i = schema_catalog_find(cat, SKU);
    REQUIRE(i != SCHEMA_CATALOG_NONE);
    int64_t unit = schema_catalog_at(cat, i)->unit_cost_cents;
    CHECK_INT(unit, max);
    CHECK(schema_catalog_at(cat, i)->single_use);
    size_t hit = SCHEMA_CATALOG_NONE;
    CHECK_INT(schema_catalog_match(cat, "stapler reload", 14, &hit, &e), SL_OK);
    CHECK_INT(hit, i);
    schema_catalog_free(&cat);

    REQUIRE(ih_put_surgery(&srv, k.ingest, "s1") == 0);
    REQUIRE(ih_put_surgery(&srv, k.ingest, "s2") == 0);
    put_summary(st, "s1", 1, 3, 1, unit);
    put_summary(st, "s2", (int)ENGINE_SUMMARY_TOOLS_MAX, ENGINE_UNITS_MAX, 0, unit);
    REQUIRE(ih_wait_listener(srv.store) == 0);

    /* The tool aggregate holds both, to the cent. */
    __int128 worst = (__int128)ENGINE_SUMMARY_TOOLS_MAX * ENGINE_UNITS_MAX * unit;
    __int128 waste = (__int128)2 * unit + worst;
    CHECK(waste <= INT64_MAX); /* the bound keeps the sums in int64 */
    bson_t *doc = NULL;
    const char *pk = "T#" TENANT "#AGG", *sk = "HOSPITAL#st-mary#PROC#lap-chole#TOOL#" SKU;
    sl_error_clear(&e);
    CHECK_INT(store_get(st, STORE_AGGREGATES, pk, sk, &doc, &e), SL_OK);
    if (doc) {
        engine_agg a;
        engine_agg_init(&a);
        CHECK_INT(engine_agg_read(doc, pk, sk, &a, &e), SL_OK);
        CHECK_INT(a.surgeries, 2);
        CHECK_INT(a.surgeries_opened, 2);
        CHECK_INT(a.surgeries_used, 1);
        CHECK_INT(a.units_opened, 3 + ENGINE_SUMMARY_TOOLS_MAX * ENGINE_UNITS_MAX);
        CHECK_INT(a.units_used, 1);
        CHECK(waste <= INT64_MAX && a.waste_cents == (int64_t)waste);
        fprintf(stderr, "tool_agg waste_cents %lld\n", (long long)a.waste_cents);
        engine_agg_free(&a);
        bson_destroy(doc);
    }
    store_close(&st);
    /* The listener read every summary (none skipped as malformed) ... */
    CHECK_INT(metric("sightline_listener_events_skipped_total"), 0);
    /* ... and recompute builds the same from the items. */
    char out[65536];
    const char *check[] = {"recompute", "--store", srv.store, "--json", NULL};
    CHECK_INT(support_run(out, sizeof out, 0, check), 0);
    CHECK_STR(get(out, "malformed", NULL, v), "0");
    CHECK_STR(get(out, "drift_fields", NULL, v), "0");
}

int main(void)
{
    REQUIRE(support_server_init(&srv, NULL, NULL) == 0);
    REQUIRE(support_server_start(&srv, "--access-log", "off", (char *)NULL) == 0);
    REQUIRE(ih_tenant(&srv, TENANT, &k) == 0);
    test_largest_cost_reaches_the_aggregates();
    CHECK_INT(support_server_stop(&srv), 0);
    support_server_cleanup(&srv);
    return check_finish();
}
