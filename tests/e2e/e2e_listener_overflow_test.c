/* e2e_listener_overflow_test.c -- regression (found by issue 10, item 8,
 * while making the listener's error counter move): one NDJSON batch whose
 * assets give one brand more saliency measures than an aggregate may hold
 * (ENGINE_AGG_METRICS_MAX, 256: nine assets of 32 measures each) stopped the
 * listener for every tenant.  Merging the batch's deltas failed, the listener
 * dropped the batch, read the same events again and failed again, forever:
 * sightline_feed_behind_events never came back to 0 and no tenant's
 * dashboard moved.  Now the events before the one that overflows commit, the
 * aggregates that cannot take it are quarantined (503 until repaired), and
 * everything else, the same tenant's other brands and other tenants, goes
 * on. */
#include "tests/check.h"
#include "tests/e2e/e2e.h"

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
     * that overflowed them: quarantined, answered 503 naming the aggregate. */
    CHECK_INT(support_req(w.viewer[0], "GET", "/v1/brands/Nike", NULL, 0), 503);
    v = e2e_json(support_body(w.viewer[0]));
    const char *type = e2e_get_str(v, "type");
    CHECK(type && strstr(type, "aggregate-needs-repair"));
    if (v)
        yajl_tree_free(v);
    CHECK_INT(support_req(w.viewer[0], "GET", "/v1/sectors/shoes", NULL, 0), 503);
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

    CHECK_INT(e2e_world_stop(&w), 0);
    support_rmrf(w.dir);
    return check_finish();
}
