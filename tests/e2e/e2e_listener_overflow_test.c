/* e2e_listener_overflow_test.c -- a brand whose assets carry more metrics
 * than an aggregate may hold (ENGINE_AGG_METRICS_MAX, 256: nine assets of 32
 * saliency measures each, plus memorability): the listener and recompute
 * agree that it is "over the metric limit" (docs/recompute.md).
 *
 * Regression 1 (found by issue 10, item 8): one NDJSON batch of such assets
 * stopped the listener for every tenant -- merging the batch's deltas
 * failed, the listener dropped the batch, read the same events again and
 * failed again, forever.  Now the events before the one that overflows
 * commit, the aggregates that cannot take it are quarantined, and
 * everything else, the same tenant's other brands and other tenants, goes
 * on.
 *
 * Regression 2: `sightline recompute` and `--repair` then failed (exit 1,
 * "would hold more than 256 metrics") for the whole tenant, so neither that
 * quarantine nor any other drift of the tenant could ever be repaired.  Now
 * recompute reports each over-limit aggregate by name with the limit, keeps
 * it quarantined (the API's 503 says why: type aggregate-over-metric-limit),
 * repairs every other aggregate of the tenant (a damaged Puma here), and
 * exits 3: drift is left.  Once assets are deleted so that the brand fits,
 * `--repair` rebuilds it, lifts the quarantine (exit 0), and the listener
 * keeps it from there. */
#include "tests/check.h"
#include "tests/e2e/e2e.h"

#include "store/store.h"

#define ASSETS   9  /* 9 * 32 measures + memorability > 256 */
#define MEASURES 32 /* the most one asset may carry */

static double metric(support_client *c, const char *name)
{
    double v = -1;
    REQUIRE(support_req(c, "GET", "/metrics", NULL, 0) == 200);
    if (support_metric(support_body(c), name, &v) != 0)
        fprintf(stderr, "no metric %s\n", name);
    return v;
}

/* The metric once it reached want (the counters move just after the commit
 * that feed_behind_events sees), or its value after timeout_ms. */
static double metric_reaching(support_client *c, const char *name, double want, int timeout_ms)
{
    long until = support_now_ms() + timeout_ms;
    double v = metric(c, name);
    while (v < want && support_now_ms() < until) {
        support_sleep_ms(20);
        v = metric(c, name);
    }
    return v;
}

/* Copies src into dst, adding delta to the int64 at the dotted path (one
 * level of sub-documents per dot).  1 when the field was found. */
static int bump(const bson_t *src, bson_t *dst, const char *path, int64_t delta)
{
    const char *dot = strchr(path, '.');
    size_t head = dot ? (size_t)(dot - path) : strlen(path);
    int found = 0;
    bson_iter_t it;
    REQUIRE(bson_iter_init(&it, src));
    while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        int here = strlen(k) == head && !strncmp(k, path, head);
        if (here && !dot && BSON_ITER_HOLDS_INT64(&it)) {
            BSON_APPEND_INT64(dst, k, bson_iter_int64(&it) + delta);
            found = 1;
        } else if (here && dot && BSON_ITER_HOLDS_DOCUMENT(&it)) {
            uint32_t len;
            const uint8_t *data;
            bson_t sub, out;
            bson_iter_document(&it, &len, &data);
            REQUIRE(bson_init_static(&sub, data, len));
            BSON_APPEND_DOCUMENT_BEGIN(dst, k, &out);
            found = bump(&sub, &out, dot + 1, delta);
            bson_append_document_end(dst, &out);
        } else {
            bson_append_iter(dst, k, -1, &it);
        }
    }
    return found;
}

/* Damages acme's BRAND#Puma through the store port (its memorability sum
 * moved by 7 micro-units, fenced on its version): a drift recompute must
 * find and --repair must fix, next to the over-limit aggregates. */
static void damage_puma(const char *store_uri)
{
    store *st = NULL;
    bson_t *doc = NULL, bad = BSON_INITIALIZER;
    bson_iter_t it;
    REQUIRE(store_open(store_uri, NULL, &st, NULL) == SL_OK);
    REQUIRE(store_get(st, STORE_AGGREGATES, "T#acme#AGG", "BRAND#Puma", &doc, NULL) == SL_OK);
    REQUIRE(bson_iter_init_find(&it, doc, "v") && BSON_ITER_HOLDS_INT64(&it));
    int64_t version = bson_iter_int64(&it);
    REQUIRE(bump(doc, &bad, "metrics.memorability.sum", 7));
    CHECK_INT(store_put(st, STORE_AGGREGATES, &bad, (store_cond){STORE_COND_VERSION, version}, NULL,
                        NULL),
              SL_OK);
    bson_destroy(&bad);
    bson_destroy(doc);
    store_close(&st);
}

/* The line of the text report for aggregate sk of acme ("" when absent). */
static const char *report_line(const char *out, const char *sk, char *line, size_t cap)
{
    char head[128];
    snprintf(head, sizeof head, "\nacme %s: ", sk);
    const char *p = strstr(out, head);
    size_t n = 0;
    if (p) {
        p++;
        n = strcspn(p, "\n");
        n = n < cap - 1 ? n : cap - 1;
        memcpy(line, p, n);
    }
    line[n] = '\0';
    return line;
}

static const char *const over[3] = {"BRAND#Nike", "BRAND#Nike#CAMPAIGN#spring", "SECTOR#shoes"};

/* GET path on the viewer: 503 aggregate-over-metric-limit naming the limit. */
static void check_over_answer(support_client *c, const char *path, const char *sk)
{
    CHECK_INT(support_req(c, "GET", path, NULL, 0), 503);
    yajl_val v = e2e_json(support_body(c));
    const char *type = e2e_get_str(v, "type"), *detail = e2e_get_str(v, "detail");
    CHECK(type && strstr(type, "/aggregate-over-metric-limit"));
    CHECK(detail && strstr(detail, sk) && strstr(detail, "more than 256 metrics"));
    if (!detail || !strstr(detail, "more than 256 metrics"))
        fprintf(stderr, "GET %s: %s\n", path, support_body(c));
    if (v)
        yajl_tree_free(v);
}

/* Regression 2: recompute and --repair on the tenant with the over-limit
 * aggregates (the listener quarantined them in main). */
static void test_recompute(e2e_world *w)
{
    static char out[1 << 16];
    char line[1024];
    const char *check[] = {"recompute", "--store", w->store, NULL};
    const char *repair[] = {"recompute", "--store", w->store, "--repair", NULL};
    const char *repair_json[] = {"recompute", "--store", w->store, "--repair", "--json", NULL};
    check_over_answer(w->viewer[0], "/v1/brands/Nike", "BRAND#Nike");
    check_over_answer(w->viewer[0], "/v1/brands/Nike/campaigns/spring",
                      "BRAND#Nike#CAMPAIGN#spring");
    check_over_answer(w->viewer[0], "/v1/sectors/shoes", "SECTOR#shoes");
    damage_puma(w->store);

    /* A check: every aggregate of acme compared, the three named with the
     * limit, Puma's drift named; exit 3. */
    CHECK_INT(support_run(out, sizeof out, 0, check), 3);
    for (int i = 0; i < 3; i++) {
        report_line(out, over[i], line, sizeof line);
        CHECK(strstr(line, "over the metric limit: its assets carry more than 256 metrics") &&
              strstr(line, "quarantined by the listener since") && !strstr(line, "(repaired)"));
        if (!strstr(line, "over the metric limit"))
            fprintf(stderr, "%s: \"%s\"\n", over[i], line);
    }
    CHECK_STR(report_line(out, "BRAND#Puma", line, sizeof line),
              "acme BRAND#Puma: metrics.memorability.sum live 750007 recomputed 750000");
    CHECK(strstr(out, "drift: 4 fields in 4 aggregates, not repaired") != NULL);

    /* --repair: Puma repaired, the three stay quarantined, still over the
     * limit; exit 3 (drift left). */
    CHECK_INT(support_run(out, sizeof out, 0, repair_json), 3);
    yajl_val rep = e2e_json(out);
    CHECK_INT(e2e_get_int(rep, "drift_aggregates", -1), 4);
    CHECK_INT(e2e_get_int(rep, "repaired_aggregates", -1), 1);
    CHECK_INT(e2e_get_int(rep, "over_metric_limit_aggregates", -1), 3);
    yajl_val aggs = e2e_get(rep, "aggregates");
    int seen = 0;
    for (size_t i = 0; YAJL_IS_ARRAY(aggs) && i < aggs->u.array.len; i++) {
        yajl_val a = aggs->u.array.values[i];
        const char *sk = e2e_get_str(a, "aggregate");
        int is_over = 0;
        for (int k = 0; k < 3; k++)
            is_over |= sk && !strcmp(sk, over[k]);
        yajl_val flag = e2e_get(a, "over_metric_limit"), fixed = e2e_get(a, "repaired");
        CHECK(flag && (is_over ? YAJL_IS_TRUE(flag) : YAJL_IS_FALSE(flag)));
        CHECK(fixed && (is_over ? YAJL_IS_FALSE(fixed) : YAJL_IS_TRUE(fixed)));
        seen++;
    }
    CHECK_INT(seen, 4);
    if (rep)
        yajl_tree_free(rep);
    CHECK_INT(support_req(w->viewer[0], "GET", "/v1/brands/Puma", NULL, 0), 200);
    yajl_val v = e2e_json(support_body(w->viewer[0]));
    const char *sum_path[] = {"metrics", "memorability", "sum_micro", NULL};
    yajl_val sum = v ? yajl_tree_get(v, sum_path, yajl_t_number) : NULL;
    CHECK(sum && YAJL_IS_INTEGER(sum) && YAJL_GET_INTEGER(sum) == 750000);
    if (v)
        yajl_tree_free(v);
    check_over_answer(w->viewer[0], "/v1/brands/Nike", "BRAND#Nike");
    /* The tenant's listing names the reason too. */
    check_over_answer(w->viewer[0], "/v1/brands", "BRAND#Nike");
    CHECK_INT(support_run(out, sizeof out, 0, check), 3);
    CHECK(strstr(out, "drift: 3 fields in 3 aggregates, not repaired") != NULL);
    CHECK(strstr(out, "acme BRAND#Puma") == NULL);

    /* The brand made to fit (two of its nine assets deleted: 7 * 32 + 1
     * metrics): --repair rebuilds the three and lifts the quarantine. */
    CHECK_INT(support_req(w->ingest[0], "DELETE", "/v1/assets/as-0", NULL, 0), 204);
    CHECK_INT(support_req(w->ingest[0], "DELETE", "/v1/assets/as-1", NULL, 0), 204);
    REQUIRE(e2e_wait_caught_up(w->viewer[0], 30000) == 0);
    CHECK_INT(support_run(out, sizeof out, 0, repair), 0);
    for (int i = 0; i < 3; i++)
        CHECK(strstr(report_line(out, over[i], line, sizeof line), "(repaired)") != NULL);
    CHECK_INT(support_req(w->viewer[0], "GET", "/v1/brands/Nike", NULL, 0), 200);
    v = e2e_json(support_body(w->viewer[0]));
    CHECK_INT(e2e_get_int(v, "count", -1), 8); /* as-2..as-8 and as-10 */
    yajl_val metrics = e2e_get(v, "metrics");
    CHECK(YAJL_IS_OBJECT(metrics) && metrics->u.object.len == 7 * MEASURES + 1);
    if (v)
        yajl_tree_free(v);
    CHECK_INT(support_req(w->viewer[0], "GET", "/healthz", NULL, 0), 200);
    v = e2e_json(support_body(w->viewer[0]));
    CHECK_INT(e2e_get_int(v, "aggregates_quarantined", -1), 0);
    if (v)
        yajl_tree_free(v);
    /* The listener keeps it from there. */
    const char *nike = "{\"client\":\"c\",\"brand\":\"Nike\",\"campaign\":\"spring\",\"sector\":"
                       "\"shoes\",\"media_type\":\"image\",\"memorability\":0.5,\"saliency\":{}}";
    CHECK_INT(support_req(w->ingest[0], "PUT", "/v1/assets/as-11", nike, strlen(nike)), 201);
    REQUIRE(e2e_wait_caught_up(w->viewer[0], 30000) == 0);
    CHECK_INT(support_req(w->viewer[0], "GET", "/v1/brands/Nike", NULL, 0), 200);
    v = e2e_json(support_body(w->viewer[0]));
    CHECK_INT(e2e_get_int(v, "count", -1), 9);
    if (v)
        yajl_tree_free(v);
    CHECK_INT(support_run(out, sizeof out, 0, check), 0);
    CHECK(strstr(out, "no drift") != NULL);
}

int main(void)
{
    e2e_world w;
    REQUIRE(e2e_world_start(&w, NULL) == 0);
    REQUIRE(e2e_wait_caught_up(w.viewer[0], 30000) == 0);
    double applied0 = metric(w.viewer[0], "sightline_listener_events_applied_total");
    /* acme: the batch, then an asset of another brand and sector. */
    static char body[64 * 1024];
    size_t len = 0;
    for (int a = 0; a < ASSETS; a++) {
        len += (size_t)snprintf(body + len, sizeof body - len,
                                "{\"asset\":\"as-%d\",\"client\":\"c\",\"brand\":\"Nike\","
                                "\"campaign\":\"spring\",\"sector\":\"shoes\",\"media_type\":"
                                "\"image\",\"memorability\":0.5,\"saliency\":{",
                                a);
        for (int k = 0; k < MEASURES; k++)
            len += (size_t)snprintf(body + len, sizeof body - len, "%s\"m%dx%d\":0.25",
                                    k ? "," : "", a, k);
        len += (size_t)snprintf(body + len, sizeof body - len, "}}\n");
    }
    len += (size_t)snprintf(body + len, sizeof body - len,
                            "{\"asset\":\"as-p\",\"client\":\"c\",\"brand\":\"Puma\",\"campaign\":"
                            "\"spring\",\"sector\":\"sport\",\"media_type\":\"image\","
                            "\"memorability\":0.75,\"saliency\":{}}\n");
    REQUIRE(len < sizeof body);
    CHECK_INT(support_req(w.ingest[0], "POST", "/v1/assets:batch", body, len), 200);
    /* globex writes after it. */
    const char *one = "{\"client\":\"c\",\"brand\":\"Adidas\",\"campaign\":\"fall\",\"sector\":"
                      "\"sport\",\"media_type\":\"image\",\"memorability\":0.25,\"saliency\":{}}";
    CHECK_INT(support_req(w.ingest[1], "PUT", "/v1/assets/g-1", one, strlen(one)), 201);

    /* The listener gets through all of it. */
    REQUIRE(e2e_wait_caught_up(w.viewer[0], 30000) == 0);
    CHECK_INT(support_req(w.viewer[0], "GET", "/v1/brands/Puma", NULL, 0), 200);
    yajl_val v = e2e_json(support_body(w.viewer[0]));
    CHECK_INT(e2e_get_int(v, "count", -1), 1);
    if (v)
        yajl_tree_free(v);
    CHECK_INT(support_req(w.viewer[0], "GET", "/v1/sectors/sport", NULL, 0), 200);
    CHECK_INT(support_req(w.viewer[1], "GET", "/v1/brands/Adidas", NULL, 0), 200);
    /* Nike's brand, campaign and sector aggregates could not take the asset
     * that overflowed them: quarantined, answered 503 naming the aggregate
     * and the limit. */
    check_over_answer(w.viewer[0], "/v1/brands/Nike", "BRAND#Nike");
    check_over_answer(w.viewer[0], "/v1/sectors/shoes", "SECTOR#shoes");
    CHECK_INT(metric_reaching(w.viewer[0], "sightline_listener_quarantined_total", 3, 10000), 3);
    CHECK_INT(metric(w.viewer[0], "sightline_listener_quarantined"), 3);
    CHECK_INT(metric(w.viewer[0], "sightline_listener_errors_total"), 0);
    CHECK_INT(metric_reaching(w.viewer[0], "sightline_listener_events_applied_total",
                              applied0 + ASSETS + 2, 10000) -
                  applied0,
              ASSETS + 2);
    /* A later asset of Nike is skipped for its three aggregates, and counted. */
    double skips0 = metric(w.viewer[0], "sightline_listener_quarantine_skips_total");
    const char *nike = "{\"client\":\"c\",\"brand\":\"Nike\",\"campaign\":\"spring\",\"sector\":"
                       "\"shoes\",\"media_type\":\"image\",\"memorability\":0.5,\"saliency\":{}}";
    CHECK_INT(support_req(w.ingest[0], "PUT", "/v1/assets/as-10", nike, strlen(nike)), 201);
    REQUIRE(e2e_wait_caught_up(w.viewer[0], 30000) == 0);
    CHECK_INT(metric_reaching(w.viewer[0], "sightline_listener_quarantine_skips_total", skips0 + 3,
                              10000) -
                  skips0,
              3);
    CHECK_INT(support_req(w.viewer[0], "GET", "/healthz", NULL, 0), 200);
    v = e2e_json(support_body(w.viewer[0]));
    CHECK_INT(e2e_get_int(v, "aggregates_quarantined", -1), 3);
    if (v)
        yajl_tree_free(v);

    test_recompute(&w);
    CHECK_INT(e2e_world_stop(&w), 0);
    support_rmrf(w.dir);
    return check_finish();
}
