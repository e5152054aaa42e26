/* engine_listener_test.c -- listener and recompute on a real temporary SQLite
 * store: randomized workload exact against a model, corruption found and repaired
 * under load, pruned feed, two listeners, an interrupted recompute resuming. */
#include "tests/engine/engine_model.h"

static void quiet_log(void *ctx, const char *level, const char *message)
{
    (void)ctx;
    if (strcmp(level, "info") != 0)
        fprintf(stderr, "listener %s: %s\n", level, message);
}

static store *open_store(const char *uri)
{
    store *s = NULL;
    sl_error e;
    sl_error_clear(&e);
    if (store_open(uri, NULL, &s, &e) != SL_OK)
        fprintf(stderr, "store_open(%s): %s\n", uri, e.message);
    REQUIRE(s != NULL);
    return s;
}

static engine_listener *start(store *s, const char *holder, int64_t lease_ms)
{
    engine_listener_options o = {.holder = holder, .lease_ms = lease_ms, .log = quiet_log};
    engine_listener *l = NULL;
    sl_error e;
    sl_error_clear(&e);
    if (engine_listener_start(s, &o, &l, &e) != SL_OK)
        fprintf(stderr, "engine_listener_start: %s\n", e.message);
    REQUIRE(l != NULL);
    return l;
}

static engine_recompute_report recompute(store *s, int repair)
{
    engine_recompute_options o = {.repair = repair, .fresh = 1};
    engine_recompute_report rep;
    sl_error e;
    sl_error_clear(&e);
    sl_status rc = engine_recompute(s, &o, &rep, &e);
    if (rc != SL_OK)
        fprintf(stderr, "engine_recompute: %s\n", e.message);
    REQUIRE(rc == SL_OK);
    for (size_t i = 0; i < rep.nrows && i < 20; i++)
        fprintf(stderr, "  drift %s %s %s: live %s, recomputed %s\n", rep.rows[i].tenant,
                rep.rows[i].sk, rep.rows[i].field, rep.rows[i].live, rep.rows[i].recomputed);
    return rep;
}

static int compare_all(model *m, store *s)
{
    int bad = 0;
    for (int t = 0; t < MD_COUNT(md_tenants); t++)
        bad += md_compare(m, s, md_tenants[t]);
    return bad;
}

/* Thousands of random operations while the listener runs: every aggregate
 * equals the model exactly, a brand left without assets is gone, and
 * recompute finds no drift. */
static void test_randomized(void)
{
    char dir[64], uri[128];
    md_tempdir(dir, uri);
    store *s = open_store(uri);
    model *m = calloc(1, sizeof *m);
    REQUIRE(m != NULL);
    pthread_mutex_init(&m->mu, NULL);
    engine_listener *l = start(s, "solo", 2000);
    fx_rng r = {test_rng(1)};
    for (int i = 0; i < 4000; i++)
        REQUIRE(md_step(m, s, &r, 1) == SL_OK);
    /* A brand whose only asset goes away must disappear. */
    fx_asset lone = {.tenant = "acme",
                     .id = "lonely",
                     .brand = "solo-brand",
                     .campaign = "only",
                     .sector = "niche",
                     .memorability = 0.5};
    bson_t *d = fx_asset_doc(&lone);
    REQUIRE(store_put(s, STORE_ITEMS, d, (store_cond){0}, NULL, NULL) == SL_OK);
    bson_destroy(d);
    REQUIRE(md_wait_caught_up(s, ENGINE_CONSUMER, 60000));
    bson_t *agg = NULL;
    CHECK_INT(store_get(s, STORE_AGGREGATES, "T#acme#AGG", "BRAND#solo-brand", &agg, NULL), SL_OK);
    if (agg)
        bson_destroy(agg);
    REQUIRE(store_delete(s, STORE_ITEMS, "T#acme#ASSET#lonely", "META", (store_cond){0}, NULL,
                         NULL) == SL_OK);
    REQUIRE(md_wait_caught_up(s, ENGINE_CONSUMER, 60000));
    agg = NULL;
    CHECK_INT(store_get(s, STORE_AGGREGATES, "T#acme#AGG", "BRAND#solo-brand", &agg, NULL),
              SL_ENOTFOUND);
    CHECK_INT(
        store_get(s, STORE_AGGREGATES, "T#acme#AGG", "BRAND#solo-brand#CAMPAIGN#only", &agg, NULL),
        SL_ENOTFOUND);
    CHECK_INT(compare_all(m, s), 0);

    engine_listener_stats st;
    for (int i = 0; i < 200; i++) { /* counters move just after the commit */
        REQUIRE(engine_listener_stats_get(l, &st, NULL) == SL_OK);
        if (st.events_applied >= 3000)
            break;
        usleep(10000);
    }
    CHECK(st.holding_lease);
    CHECK(st.events_applied >= 3000);
    CHECK(st.events_skipped > 0); /* the malformed writes */
    CHECK_INT(st.lag_events, 0);
    int64_t hist_total = 0;
    for (int i = 0; i < ENGINE_LAG_BUCKETS; i++)
        hist_total += st.lag_hist[i];
    CHECK_INT(hist_total, st.events_applied);

    engine_recompute_report rep = recompute(s, 0);
    CHECK_INT(rep.drift_fields, 0);
    CHECK(rep.aggregates_checked > 50);
    CHECK_INT(rep.tenants, 2);
    CHECK(rep.malformed > 0);
    engine_recompute_report_free(&rep);
    engine_listener_stop(&l);
    /* A clean stop gives the lease up at once. */
    CHECK_INT(store_get(s, STORE_AGGREGATES, ENGINE_SYS_PK, "LEASE#" ENGINE_CONSUMER, &agg, NULL),
              SL_ENOTFOUND);
    store_close(&s);
    pthread_mutex_destroy(&m->mu);
    free(m);
    md_rmdir(dir);
}

static const engine_drift_row *find_row(const engine_recompute_report *rep, const char *sk,
                                        const char *field)
{
    for (size_t i = 0; i < rep->nrows; i++)
        if (!strcmp(rep->rows[i].sk, sk) && !strcmp(rep->rows[i].field, field))
            return &rep->rows[i];
    return NULL;
}

/* Damage made on purpose is found exactly, while writes and the listener go
 * on, and --repair fixes it without losing any listener update. */
static void test_corrupt_and_repair(void)
{
    char dir[64], uri[128];
    md_tempdir(dir, uri);
    store *s = open_store(uri), *ws = open_store(uri);
    model *m = calloc(1, sizeof *m);
    REQUIRE(m != NULL);
    pthread_mutex_init(&m->mu, NULL);
    /* Every brand, campaign and sector of acme exists before the damage. */
    fx_rng r0 = {test_rng(2)};
    for (int i = 0; i < 1500; i++)
        REQUIRE(md_step(m, ws, &r0, 0) == SL_OK);
    engine_listener *l = start(s, "main", 2000);
    REQUIRE(md_wait_caught_up(s, ENGINE_CONSUMER, 60000));
    md_writer w = {.m = m, .s = ws, .seed = test_rng(3), .pause_us = 300};
    pthread_t wt;
    REQUIRE(pthread_create(&wt, NULL, md_writer_main, &w) == 0);
    usleep(100000);

    md_corrupt(s, "T#acme#AGG", "BRAND#nike", "memorability", "sum", 7, 0);
    engine_recompute_report rep = recompute(s, 0);
    CHECK_INT(rep.drift_fields, 1);
    CHECK_INT(rep.drift_aggregates, 1);
    const engine_drift_row *row = find_row(&rep, "BRAND#nike", "metrics.memorability.sum");
    CHECK(row != NULL);
    if (row)
        CHECK_INT(atoll(row->live) - atoll(row->recomputed), 7);
    engine_recompute_report_free(&rep);

    /* More kinds of damage: an unreadable field, an aggregate that should not exist. */
    md_corrupt(s, "T#acme#AGG", "BRAND#puma#CAMPAIGN#fall", NULL, "count", 0, 1);
    bson_t *ghost = BCON_NEW("pk", "T#acme#AGG", "sk", "BRAND#ghost", "type", "brand_agg", "tenant",
                             "acme", "brand", "ghost", "count", BCON_INT64(3), "metrics", "{", "}");
    REQUIRE(store_put(s, STORE_AGGREGATES, ghost, (store_cond){0}, NULL, NULL) == SL_OK);
    bson_destroy(ghost);
    rep = recompute(s, 0);
    CHECK_INT(rep.drift_aggregates, 3);
    /* 3, or more once the listener has quarantined the campaign (its
     * deltas are then skipped until the repair). */
    CHECK(rep.drift_fields >= 3);
    CHECK(find_row(&rep, "BRAND#ghost", "count") != NULL);
    CHECK(find_row(&rep, "BRAND#puma#CAMPAIGN#fall", "count") != NULL);
    engine_recompute_report_free(&rep);

    rep = recompute(s, 1);
    CHECK_INT(rep.drift_aggregates, 3);
    CHECK_INT(rep.repaired_aggregates, 3);
    engine_recompute_report_free(&rep);
    rep = recompute(s, 0);
    CHECK_INT(rep.drift_fields, 0);
    engine_recompute_report_free(&rep);

    atomic_store(&w.stop, 1);
    pthread_join(wt, NULL);
    CHECK(!atomic_load(&w.failed));
    REQUIRE(md_wait_caught_up(s, ENGINE_CONSUMER, 60000));
    CHECK_INT(compare_all(m, s), 0);
    bson_t *doc = NULL;
    CHECK_INT(store_get(s, STORE_AGGREGATES, "T#acme#AGG", "BRAND#ghost", &doc, NULL),
              SL_ENOTFOUND);
    /* Every finished run left an audit document. */
    store_page page = {0};
    store_query_opts q = {.range = {STORE_RANGE_BEGINS_WITH, "AUDIT#RECOMPUTE#", NULL}};
    REQUIRE(store_query(s, STORE_AGGREGATES, ENGINE_SYS_PK, &q, &page, NULL) == SL_OK);
    CHECK_INT(page.count, 4);
    store_page_free(&page);
    engine_listener_stop(&l);
    store_close(&ws);
    store_close(&s);
    pthread_mutex_destroy(&m->mu);
    free(m);
    md_rmdir(dir);
}

/* The listener's feed position is pruned while it is down: it must not
 * guess; recompute --repair rebuilds and resets the consumer. */
static void test_feed_gone(void)
{
    char dir[64], uri[128], pruning[160];
    md_tempdir(dir, uri);
    snprintf(pruning, sizeof pruning, "%s?feed_retain=20", uri);
    store *s = open_store(uri);
    model *m = calloc(1, sizeof *m);
    REQUIRE(m != NULL);
    pthread_mutex_init(&m->mu, NULL);
    fx_rng r = {test_rng(4)};
    engine_listener *l = start(s, "gone", 2000);
    for (int i = 0; i < 300; i++)
        REQUIRE(md_step(m, s, &r, 1) == SL_OK);
    REQUIRE(md_wait_caught_up(s, ENGINE_CONSUMER, 60000));
    engine_listener_stop(&l);
    store *ps = open_store(pruning);
    for (int i = 0; i < 300; i++)
        REQUIRE(md_step(m, ps, &r, 1) == SL_OK);
    store_close(&ps);
    l = start(s, "gone", 2000);
    engine_listener_stats st = {0};
    for (int i = 0; i < 3000 && !st.feed_gone; i++) {
        REQUIRE(engine_listener_stats_get(l, &st, NULL) == SL_OK);
        usleep(10000);
    }
    CHECK(st.feed_gone);
    engine_recompute_report rep = recompute(s, 0);
    CHECK(rep.feed_gone);
    CHECK(!rep.consumer_reset);
    CHECK(rep.drift_fields > 0);
    engine_recompute_report_free(&rep);
    rep = recompute(s, 1);
    CHECK(rep.feed_gone);
    CHECK(rep.consumer_reset);
    engine_recompute_report_free(&rep);
    for (int i = 0; i < 200; i++) /* the listener goes on from the head */
        REQUIRE(md_step(m, s, &r, 1) == SL_OK);
    REQUIRE(md_wait_caught_up(s, ENGINE_CONSUMER, 60000));
    CHECK_INT(compare_all(m, s), 0);
    REQUIRE(engine_listener_stats_get(l, &st, NULL) == SL_OK);
    CHECK(!st.feed_gone);
    rep = recompute(s, 0);
    CHECK_INT(rep.drift_fields, 0);
    engine_recompute_report_free(&rep);
    engine_listener_stop(&l);
    store_close(&s);
    pthread_mutex_destroy(&m->mu);
    free(m);
    md_rmdir(dir);
}

/* Two listeners on one store: one holds the lease, nothing is applied twice,
 * and the other takes over when the first stops. */
static void test_two_listeners(void)
{
    char dir[64], uri[128];
    md_tempdir(dir, uri);
    store *s = open_store(uri), *s1 = open_store(uri), *s2 = open_store(uri);
    model *m = calloc(1, sizeof *m);
    REQUIRE(m != NULL);
    pthread_mutex_init(&m->mu, NULL);
    engine_listener *a = start(s1, "A", 1000), *b = start(s2, "B", 1000);
    fx_rng r = {test_rng(5)};
    for (int i = 0; i < 1500; i++)
        REQUIRE(md_step(m, s, &r, 1) == SL_OK);
    REQUIRE(md_wait_caught_up(s, ENGINE_CONSUMER, 60000));
    /* Exactly one holds it (during a takeover both flags may be up for a
     * moment, until the old holder notices: look again). */
    engine_listener_stats sa, sb;
    for (int i = 0; i < 200; i++) {
        REQUIRE(engine_listener_stats_get(a, &sa, NULL) == SL_OK);
        REQUIRE(engine_listener_stats_get(b, &sb, NULL) == SL_OK);
        if (sa.holding_lease + sb.holding_lease == 1)
            break;
        usleep(10000);
    }
    CHECK_INT(sa.holding_lease + sb.holding_lease, 1);
    CHECK_INT(compare_all(m, s), 0);
    engine_listener **holder = sa.holding_lease ? &a : &b;
    engine_listener *other = sa.holding_lease ? b : a;
    engine_listener_stop(holder);
    for (int i = 0; i < 1500; i++)
        REQUIRE(md_step(m, s, &r, 1) == SL_OK);
    REQUIRE(md_wait_caught_up(s, ENGINE_CONSUMER, 60000));
    /* Its counters move just after its commit: give them a moment. */
    engine_listener_stats so;
    for (int i = 0; i < 200; i++) {
        REQUIRE(engine_listener_stats_get(other, &so, NULL) == SL_OK);
        if (so.events_applied > 0)
            break;
        usleep(10000);
    }
    CHECK(so.holding_lease);
    CHECK(so.events_applied > 0);
    CHECK_INT(compare_all(m, s), 0);
    engine_listener_stop(&a);
    engine_listener_stop(&b);
    store_close(&s1);
    store_close(&s2);
    store_close(&s);
    pthread_mutex_destroy(&m->mu);
    free(m);
    md_rmdir(dir);
}

static int stop_after_first_tenant(void *ctx, const engine_recompute_progress *p)
{
    (void)ctx;
    return p->tenants_done >= 1;
}

/* A run interrupted after its first tenant resumes with the second. */
static void test_resume(void)
{
    char dir[64], uri[128];
    md_tempdir(dir, uri);
    store *s = open_store(uri);
    model *m = calloc(1, sizeof *m);
    REQUIRE(m != NULL);
    pthread_mutex_init(&m->mu, NULL);
    engine_listener *l = start(s, "resume", 2000);
    fx_rng r = {test_rng(6)};
    for (int i = 0; i < 800; i++)
        REQUIRE(md_step(m, s, &r, 1) == SL_OK);
    REQUIRE(md_wait_caught_up(s, ENGINE_CONSUMER, 60000));
    md_corrupt(s, "T#globex#AGG", "BRAND#adidas", NULL, "count", 2, 0);
    engine_recompute_options o = {.progress = stop_after_first_tenant};
    engine_recompute_report rep;
    sl_error e;
    sl_error_clear(&e);
    CHECK_INT(engine_recompute(s, &o, &rep, &e), SL_EBUSY);
    bson_t *cp = NULL;
    CHECK_INT(
        store_get(s, STORE_AGGREGATES, ENGINE_SYS_PK, "CHECKPOINT#RECOMPUTE#ALL#check", &cp, NULL),
        SL_OK);
    if (cp)
        bson_destroy(cp);
    o.progress = NULL;
    sl_error_clear(&e);
    REQUIRE(engine_recompute(s, &o, &rep, &e) == SL_OK);
    CHECK(rep.resumed);
    CHECK_INT(rep.tenants, 2); /* acme from the first part, globex now */
    CHECK_INT(rep.drift_fields, 1);
    CHECK(find_row(&rep, "BRAND#adidas", "count") != NULL);
    engine_recompute_report_free(&rep);
    /* Finished: the checkpoint is gone, the next run starts afresh. */
    CHECK_INT(
        store_get(s, STORE_AGGREGATES, ENGINE_SYS_PK, "CHECKPOINT#RECOMPUTE#ALL#check", &cp, NULL),
        SL_ENOTFOUND);
    sl_error_clear(&e);
    REQUIRE(engine_recompute(s, &o, &rep, &e) == SL_OK);
    CHECK(!rep.resumed);
    engine_recompute_report_free(&rep);
    engine_listener_stop(&l);
    store_close(&s);
    pthread_mutex_destroy(&m->mu);
    free(m);
    md_rmdir(dir);
}

int main(void)
{
    test_seed(); /* printed first; SIGHTLINE_TEST_SEED repeats the run */
    test_randomized();
    test_corrupt_and_repair();
    test_feed_gone();
    test_two_listeners();
    test_resume();
    return check_finish();
}
