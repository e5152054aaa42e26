/* e2e_random_test.c -- issue 5, "Done when" (1): random operations through
 * HTTP (inserts, rescores, reassignments across brands, campaigns and
 * sectors, deletes, identical re-sends, refused bodies; single PUT/DELETE and
 * NDJSON batches) against the real `sightline serve` with its listener
 * thread; once the listener has caught up, every brand, campaign and sector
 * aggregate the API answers equals the model's, and `sightline recompute`
 * exits 0 with zero drift.  Argument: operations (default 100000); the seed
 * comes from $SIGHTLINE_TEST_SEED or getrandom and is printed, to replay a
 * failure. */
#include "tests/check.h"
#include "tests/e2e/e2e.h"

static double secs(void)
{
    return (double)support_now_ms() / 1e3;
}

int main(int argc, char **argv)
{
    int64_t ops = argc > 1 ? atoll(argv[1]) : 100000;
    uint64_t seed = e2e_seed();
    char out[4096];
    e2e_world w;
    e2e_model m;
    support_client *const *ingest = w.ingest, *const *viewer = w.viewer;
    fprintf(stderr, "e2e_random_test: %lld operations, seed %llu\n", (long long)ops,
            (unsigned long long)seed);
    REQUIRE(ops > 0);
    REQUIRE(e2e_world_start(&w, NULL) == 0);
    /* Few enough ids that assets are rewritten, moved and deleted many times. */
    REQUIRE(e2e_model_init(&m, ops / 16 + 64, seed) == 0);
    /* What the listener applied before the workload (the tenants' and keys'
     * documents), so that what it applies for the workload is known exactly. */
    double applied_before = -1;
    REQUIRE(e2e_wait_caught_up(viewer[0], 120000) == 0);
    REQUIRE(support_req(viewer[0], "GET", "/metrics", NULL, 0) == 200);
    CHECK(support_metric(support_body(viewer[0]), "sightline_listener_events_applied_total",
                         &applied_before) == 0);

    double t0 = secs();
    e2e_workload_stats st;
    CHECK_INT(e2e_workload(&m, ingest, ops, NULL, NULL, &st), 0);
    double t1 = secs();
    REQUIRE(e2e_wait_caught_up(viewer[0], 120000) == 0);
    double t2 = secs();
    for (int t = 0; t < M_TENANTS; t++)
        CHECK_INT(e2e_check_all(&m, t, viewer[t], 5), 0);
    /* The check can fail: one micro-unit more on one asset of the model is
     * seen (in its brand, campaign and sector). */
    for (size_t i = 0; i < m.nassets; i++) {
        m_asset *a = &m.assets[0][i];
        if (a->present && a->micro[0] < 1000000) {
            fprintf(stderr, "e2e_random_test: differences expected below (model altered):\n");
            a->micro[0]++;
            CHECK(e2e_check_all(&m, 0, viewer[0], 5) >= 3);
            a->micro[0]--;
            break;
        }
    }
    double t3 = secs();
    /* The listener's own counters are on /metrics. */
    /* Exactly one event per change that was answered as one (an insert, a
     * rescore, a reassignment, a delete); identical re-sends and refused
     * bodies write nothing; nothing was malformed. */
    double applied = 0, held = 0, skipped = -1;
    REQUIRE(support_req(viewer[0], "GET", "/metrics", NULL, 0) == 200);
    CHECK(support_metric(support_body(viewer[0]), "sightline_listener_events_applied_total",
                         &applied) == 0);
    CHECK_INT((int64_t)(applied - applied_before),
              st.inserts + st.rescores + st.reassigns + st.deletes);
    CHECK(support_metric(support_body(viewer[0]), "sightline_listener_events_skipped_total",
                         &skipped) == 0 &&
          skipped == 0);
    CHECK(support_metric(support_body(viewer[0]), "sightline_listener_lease_held", &held) == 0 &&
          held == 1);

    const char *rargs[] = {"recompute", "--store", w.store, "--json", NULL};
    CHECK_INT(support_run(out, sizeof out, 0, rargs), 0);
    yajl_val rep = e2e_json(out);
    CHECK(rep != NULL);
    CHECK_INT(e2e_get_int(rep, "drift_fields", -1), 0);
    CHECK_INT(e2e_get_int(rep, "malformed", -1), 0);
    CHECK(e2e_get_int(rep, "aggregates_checked", 0) > 0);
    if (rep)
        yajl_tree_free(rep);
    double t4 = secs();
    fprintf(stderr,
            "e2e_random_test: %lld operations in %.1f s (%.0f/s): %lld inserts, %lld rescores, "
            "%lld reassignments, %lld deletes, %lld identical re-sends, %lld refused; %lld "
            "single requests, %lld batches; listener caught up %.2f s later; check %.1f s; "
            "recompute %.1f s\n",
            (long long)ops, t1 - t0, (double)ops / (t1 - t0), (long long)st.inserts,
            (long long)st.rescores, (long long)st.reassigns, (long long)st.deletes,
            (long long)st.resends, (long long)st.refused, (long long)st.single_requests,
            (long long)st.batch_requests, t2 - t1, t3 - t2, t4 - t3);

    CHECK_INT(e2e_world_stop(&w), 0);
    e2e_model_free(&m);
    support_rmrf(w.dir);
    return check_finish();
}
