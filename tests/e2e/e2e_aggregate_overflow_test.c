/* e2e_aggregate_overflow_test.c -- sums past int64 through the real server,
 * listener and CLI (engine.h, "Overflow"; docs/recompute.md).
 *
 * Regression: every counter and sum of an aggregate was added with a plain
 * `+=`, so a sum past 2^63 - 1 wrapped (or aborted the process under
 * UBSan): a tool's waste_cents over three surgery summaries of 4.1e18
 * cents each, or any counter of a document restored near 2^63 at its next
 * delta.  Now the aggregate is quarantined with its own cause:
 *
 *  - a brand whose stored count is 2^63 - 1 (a bad restore, written through
 *    the store port) meets one more asset: the listener quarantines it
 *    (cause overflow) and goes on with everything else; GET /v1/brands/Nike
 *    and the listing answer 503 `aggregate-overflow` naming it; /healthz
 *    says degraded; recompute names it and --repair rebuilds it from its
 *    two assets (its items fit: the document was wrong), lifting the
 *    quarantine;
 *  - tool aggregates of surgery summaries (written through the store port,
 *    a hospital tenant's) whose waste passes int64: the listener
 *    quarantines that tool only, the procedure's recommendations answer
 *    503 aggregate-overflow naming it, `sightline recompute --json` reports
 *    it with "overflow": true and overflow_aggregates 1, exits 3, and
 *    --repair leaves it quarantined while it repairs the Puma drift of the
 *    same run. */
#include "tests/check.h"
#include "tests/e2e/e2e.h"

#include "store/store.h"

static const char *const nike = "{\"client\":\"c\",\"brand\":\"Nike\",\"campaign\":\"spring\","
                                "\"sector\":\"shoes\",\"media_type\":\"image\",\"memorability\":"
                                "0.5,\"saliency\":{}}";
static const char *const puma = "{\"client\":\"c\",\"brand\":\"Puma\",\"campaign\":\"spring\","
                                "\"sector\":\"sport\",\"media_type\":\"image\",\"memorability\":"
                                "0.75,\"saliency\":{}}";

/* Copies src into dst with the int64 field key (top level) set to value. */
static void with_int(const bson_t *src, bson_t *dst, const char *key, int64_t value)
{
    bson_iter_t it;
    int found = 0;
    REQUIRE(bson_iter_init(&it, src));
    while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        if (!strcmp(k, key) && BSON_ITER_HOLDS_INT64(&it)) {
            BSON_APPEND_INT64(dst, k, value);
            found = 1;
        } else {
            bson_append_iter(dst, k, -1, &it);
        }
    }
    REQUIRE(found);
}

/* Sets field key of aggregate (pk, sk) to value through the store port,
 * fenced on its version: a document restored wrong. */
static void restore_wrong(const char *store_uri, const char *pk, const char *sk, const char *key,
                          int64_t value)
{
    store *st = NULL;
    bson_t *doc = NULL, bad = BSON_INITIALIZER;
    bson_iter_t it;
    REQUIRE(store_open(store_uri, NULL, &st, NULL) == SL_OK);
    REQUIRE(store_get(st, STORE_AGGREGATES, pk, sk, &doc, NULL) == SL_OK);
    REQUIRE(bson_iter_init_find(&it, doc, "v") && BSON_ITER_HOLDS_INT64(&it));
    int64_t version = bson_iter_int64(&it);
    with_int(doc, &bad, key, value);
    CHECK_INT(store_put(st, STORE_AGGREGATES, &bad, (store_cond){STORE_COND_VERSION, version}, NULL,
                        NULL),
              SL_OK);
    bson_destroy(&bad);
    bson_destroy(doc);
    store_close(&st);
}

/* Surgery summaries of tenant acme through the store port: summary i holds
 * nbig entries of "implant" (10^6 units opened, none used, 10^9 cents
 * each, single use: 4.095e18 cents of waste with 4095) and one of "gauze". */
static void put_summary(const char *store_uri, const char *tenant, int i, int nbig)
{
    store *st = NULL;
    bson_t *d = bson_new(), tools, t;
    char pk[64], id[16], key[16];
    snprintf(id, sizeof id, "s%d", i);
    snprintf(pk, sizeof pk, "T#%s#SURGERY#%s", tenant, id);
    BSON_APPEND_UTF8(d, "pk", pk);
    BSON_APPEND_UTF8(d, "sk", "SUMMARY");
    BSON_APPEND_UTF8(d, "type", "surgery_summary");
    BSON_APPEND_UTF8(d, "tenant", tenant);
    BSON_APPEND_UTF8(d, "surgery", id);
    BSON_APPEND_UTF8(d, "hospital", "mercy");
    BSON_APPEND_UTF8(d, "procedure", "knee");
    BSON_APPEND_ARRAY_BEGIN(d, "tools", &tools);
    for (int k = 0; k <= nbig; k++) {
        int big = k < nbig;
        snprintf(key, sizeof key, "%d", k);
        BSON_APPEND_DOCUMENT_BEGIN(&tools, key, &t);
        BSON_APPEND_UTF8(&t, "sku", big ? "implant" : "gauze");
        BSON_APPEND_INT64(&t, "opened_units", big ? 1000000 : 3);
        BSON_APPEND_INT64(&t, "used_units", big ? 0 : 1);
        BSON_APPEND_INT64(&t, "unit_cost_cents", big ? 1000000000 : 100);
        BSON_APPEND_BOOL(&t, "single_use", true);
        bson_append_document_end(&tools, &t);
    }
    bson_append_array_end(d, &tools);
    REQUIRE(store_open(store_uri, NULL, &st, NULL) == SL_OK);
    CHECK_INT(store_put(st, STORE_ITEMS, d, (store_cond){0}, NULL, NULL), SL_OK);
    store_close(&st);
    bson_destroy(d);
}

/* GET path on the viewer: 503 aggregate-overflow naming sk and int64. */
static void check_overflow_answer(support_client *c, const char *path, const char *sk)
{
    CHECK_INT(support_req(c, "GET", path, NULL, 0), 503);
    yajl_val v = e2e_json(support_body(c));
    const char *type = e2e_get_str(v, "type"), *detail = e2e_get_str(v, "detail");
    CHECK(type && strstr(type, "/aggregate-overflow"));
    CHECK(detail && strstr(detail, sk) && strstr(detail, "int64"));
    if (!type || !strstr(type, "/aggregate-overflow"))
        fprintf(stderr, "GET %s: %s\n", path, support_body(c));
    if (v)
        yajl_tree_free(v);
}

static int64_t healthz_quarantined(support_client *c)
{
    CHECK_INT(support_req(c, "GET", "/healthz", NULL, 0), 200);
    yajl_val v = e2e_json(support_body(c));
    int64_t n = e2e_get_int(v, "aggregates_quarantined", -1);
    if (v)
        yajl_tree_free(v);
    return n;
}

/* The JSON report's entry for aggregate sk, or NULL. */
static yajl_val report_agg(yajl_val rep, const char *sk)
{
    yajl_val aggs = e2e_get(rep, "aggregates");
    for (size_t i = 0; YAJL_IS_ARRAY(aggs) && i < aggs->u.array.len; i++) {
        const char *a = e2e_get_str(aggs->u.array.values[i], "aggregate");
        if (a && !strcmp(a, sk))
            return aggs->u.array.values[i];
    }
    return NULL;
}

static void test_brand(e2e_world *w)
{
    static char out[1 << 16];
    const char *repair[] = {"recompute", "--store", w->store, "--repair", NULL};
    CHECK_INT(support_req(w->ingest[0], "PUT", "/v1/assets/n-1", nike, strlen(nike)), 201);
    CHECK_INT(support_req(w->ingest[0], "PUT", "/v1/assets/p-1", puma, strlen(puma)), 201);
    REQUIRE(e2e_wait_caught_up(w->viewer[0], 30000) == 0);
    restore_wrong(w->store, "T#acme#AGG", "BRAND#Nike", "count", INT64_MAX);
    CHECK_INT(support_req(w->viewer[0], "GET", "/v1/brands/Nike", NULL, 0), 200);

    /* One more asset: count 2^63 - 1 + 1.  Quarantined; the rest goes on. */
    CHECK_INT(support_req(w->ingest[0], "PUT", "/v1/assets/n-2", nike, strlen(nike)), 201);
    CHECK_INT(support_req(w->ingest[0], "PUT", "/v1/assets/p-2", puma, strlen(puma)), 201);
    REQUIRE(e2e_wait_caught_up(w->viewer[0], 30000) == 0);
    check_overflow_answer(w->viewer[0], "/v1/brands/Nike", "BRAND#Nike");
    check_overflow_answer(w->viewer[0], "/v1/brands", "BRAND#Nike");
    CHECK_INT(support_req(w->viewer[0], "GET", "/v1/brands/Puma", NULL, 0), 200);
    yajl_val v = e2e_json(support_body(w->viewer[0]));
    CHECK_INT(e2e_get_int(v, "count", -1), 2);
    if (v)
        yajl_tree_free(v);
    CHECK_INT(support_req(w->viewer[0], "GET", "/v1/sectors/shoes", NULL, 0), 200);
    v = e2e_json(support_body(w->viewer[0]));
    CHECK_INT(e2e_get_int(v, "count", -1), 2);
    if (v)
        yajl_tree_free(v);
    CHECK_INT(healthz_quarantined(w->viewer[0]), 1);

    /* Its items fit (two assets): --repair rebuilds it and lifts the quarantine. */
    CHECK_INT(support_run(out, sizeof out, 0, repair), 0);
    CHECK(strstr(out, "acme BRAND#Nike: quarantined by the listener since") &&
          strstr(out, "overflow: count of BRAND#Nike") && strstr(out, "(repaired)"));
    if (!strstr(out, "overflow: count of BRAND#Nike"))
        fprintf(stderr, "recompute --repair said:\n%s\n", out);
    CHECK_INT(support_req(w->viewer[0], "GET", "/v1/brands/Nike", NULL, 0), 200);
    v = e2e_json(support_body(w->viewer[0]));
    CHECK_INT(e2e_get_int(v, "count", -1), 2);
    if (v)
        yajl_tree_free(v);
    CHECK_INT(healthz_quarantined(w->viewer[0]), 0);
}

static void test_tools(e2e_world *w)
{
    static char out[1 << 16];
    const char *check_json[] = {"recompute", "--store", w->store, "--json", NULL};
    const char *repair_json[] = {"recompute", "--store", w->store, "--repair", "--json", NULL};
    const char *implant = "HOSPITAL#mercy#PROC#knee#TOOL#implant";
    char key[128];
    support_client *staff = NULL;
    /* a hospital whose staff reads the procedure's recommendations */
    REQUIRE(support_tenant(w->store, "mercyhq", "hospital") == 0 &&
            support_key(w->store, "mercyhq", "staff", key) == 0 &&
            (staff = support_client_new(w->srv.url, key)) != NULL);
    for (int i = 0; i < 3; i++)
        put_summary(w->store, "mercyhq", i, 4095);
    put_summary(w->store, "mercyhq", 3, 0);
    REQUIRE(e2e_wait_caught_up(w->viewer[0], 60000) == 0);
    CHECK_INT(healthz_quarantined(w->viewer[0]), 1);
    /* The recommendations read the procedure's tool aggregates: one that
     * overflowed is not the procedure's count. */
    check_overflow_answer(staff, "/v1/hospitals/mercy/recommendations?procedure=knee", implant);
    /* Puma damaged too: drift the same run repairs. */
    restore_wrong(w->store, "T#acme#AGG", "BRAND#Puma", "count", 5);

    CHECK_INT(support_run(out, sizeof out, 0, check_json), 3);
    yajl_val rep = e2e_json(out);
    CHECK_INT(e2e_get_int(rep, "overflow_aggregates", -1), 1);
    CHECK_INT(e2e_get_int(rep, "drift_aggregates", -1), 2);
    yajl_val a = report_agg(rep, implant);
    CHECK(a && YAJL_IS_TRUE(e2e_get(a, "overflow")) &&
          YAJL_IS_FALSE(e2e_get(a, "over_metric_limit")));
    const char *summary = a ? e2e_get_str(a, "summary") : NULL;
    CHECK(summary && strstr(summary, "overflow: its waste_cents passes the int64 maximum") &&
          strstr(summary, "quarantined by the listener since"));
    if (rep)
        yajl_tree_free(rep);

    CHECK_INT(support_run(out, sizeof out, 0, repair_json), 3);
    rep = e2e_json(out);
    CHECK_INT(e2e_get_int(rep, "repaired_aggregates", -1), 1);
    CHECK_INT(e2e_get_int(rep, "overflow_aggregates", -1), 1);
    a = report_agg(rep, "BRAND#Puma");
    CHECK(a && YAJL_IS_TRUE(e2e_get(a, "repaired")));
    a = report_agg(rep, implant);
    CHECK(a && YAJL_IS_FALSE(e2e_get(a, "repaired")) && YAJL_IS_TRUE(e2e_get(a, "overflow")));
    if (rep)
        yajl_tree_free(rep);
    CHECK_INT(healthz_quarantined(w->viewer[0]), 1);
    CHECK_INT(support_req(w->viewer[0], "GET", "/v1/brands/Puma", NULL, 0), 200);
    yajl_val v = e2e_json(support_body(w->viewer[0]));
    CHECK_INT(e2e_get_int(v, "count", -1), 2);
    if (v)
        yajl_tree_free(v);
    check_overflow_answer(staff, "/v1/hospitals/mercy/recommendations?procedure=knee", implant);
    support_client_free(&staff);
}

int main(void)
{
    e2e_world w;
    REQUIRE(e2e_world_start(&w, NULL) == 0);
    REQUIRE(e2e_wait_caught_up(w.viewer[0], 30000) == 0);
    test_brand(&w);
    test_tools(&w);
    CHECK_INT(e2e_world_stop(&w), 0);
    support_rmrf(w.dir);
    return check_finish();
}
