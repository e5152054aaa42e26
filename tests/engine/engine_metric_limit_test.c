/* engine_metric_limit_test.c -- the metric limit (ENGINE_AGG_METRICS_MAX,
 * 256 metrics an aggregate holds; engine.h, docs/recompute.md): what a set
 * does at it, and the listener and recompute agreeing on a real temporary
 * SQLite store.
 *
 *  - `sets`: a listener's set refuses the asset that would take an aggregate
 *    past the limit (SL_ETOOLARGE naming the aggregate); a marking set
 *    (recompute's) marks it over instead, with its count exact, and an
 *    aggregate over the limit is never added to or encoded.
 *  - `zero_metrics`: all-zero metrics (a +1 and a -1 of deltas) take no
 *    place.  Regression: an asset rescored nine times with 32 new saliency
 *    names each left 288 all-zero metrics in a set of deltas, and the next
 *    rescore was refused "over the limit" although the aggregate held 33.
 *    recompute, which subtracts the feed's deltas the listener has not
 *    applied, dropped such an event silently and reported drift that was
 *    not there (repair would have written it).
 *  - `recompute`: a brand over the limit that no listener has met yet: a
 *    check names it "not quarantined yet"; --repair quarantines it (cause
 *    metric_limit), rewrites the record of another brand over the limit
 *    quarantined as damaged, repairs the rest of the tenant, and counts them
 *    as drift left; the listener then skips them and keeps everything else
 *    exact; once a brand's assets fit, --repair rebuilds it. */
#include "engine/engine_int.h"
#include "tests/engine/engine_model.h"

#define NAMES ENGINE_ASSET_SALIENCY_MAX /* 32: the most one asset may carry */

/* An asset of tenant acme with nsal saliency measures named "<prefix>x<k>". */
static bson_t *asset(const char *id, const char *brand, const char *prefix, int nsal)
{
    bson_t *d = bson_new(), sal;
    char pk[96], name[32];
    snprintf(pk, sizeof pk, "T#acme#ASSET#%s", id);
    BSON_APPEND_UTF8(d, "pk", pk);
    BSON_APPEND_UTF8(d, "sk", "META");
    BSON_APPEND_UTF8(d, "type", "asset");
    BSON_APPEND_UTF8(d, "tenant", "acme");
    BSON_APPEND_UTF8(d, "asset", id);
    BSON_APPEND_UTF8(d, "brand", brand);
    BSON_APPEND_INT64(d, "memorability_micro", 500000);
    BSON_APPEND_DOCUMENT_BEGIN(d, "saliency_micro", &sal);
    for (int k = 0; k < nsal; k++) {
        snprintf(name, sizeof name, "%sx%d", prefix, k);
        BSON_APPEND_INT64(&sal, name, 10000 * k);
    }
    bson_append_document_end(d, &sal);
    return d;
}

static engine_agg brand_id(const char *brand)
{
    engine_agg id;
    engine_agg_init(&id);
    id.kind = ENGINE_AGG_BRAND;
    snprintf(id.tenant, sizeof id.tenant, "acme");
    snprintf(id.brand, sizeof id.brand, "%s", brand);
    return id;
}

static sl_status apply(engine_aggset *set, bson_t *doc, int sign, sl_error *e)
{
    sl_error_clear(e);
    sl_status rc = engine_aggset_apply_image(set, doc, sign, e);
    bson_destroy(doc);
    return rc;
}

static void test_sets(void)
{
    engine_aggset *plain = NULL;
    sl_error e;
    char prefix[8];
    REQUIRE(engine_aggset_new(0, &plain, NULL) == SL_OK);
    /* 1 + 7 * 32 = 225 metrics fit; the eighth asset would make 257. */
    for (int a = 0; a < 7; a++) {
        snprintf(prefix, sizeof prefix, "m%d", a);
        CHECK_INT(apply(plain, asset("x", "nike", prefix, NAMES), +1, &e), SL_OK);
    }
    engine_agg id = brand_id("nike");
    engine_agg *b = engine_aggset_find(plain, &id);
    REQUIRE(b != NULL);
    CHECK_INT(b->nmetrics, 1 + 7 * NAMES);
    CHECK_INT(apply(plain, asset("x", "nike", "m7", NAMES), +1, &e), SL_ETOOLARGE);
    CHECK(strstr(e.message, "over the metric limit: BRAND#nike of tenant acme would hold more "
                            "than 256 metrics") != NULL);
    /* Unchanged (room made for the refused asset stays all-zero: pruned,
     * it is gone). */
    engine_agg kept;
    engine_agg_init(&kept);
    CHECK_INT(engine_agg_add(&kept, b, +1, &e), SL_OK);
    CHECK_INT(kept.count, 7);
    CHECK_INT(kept.nmetrics, 1 + 7 * NAMES);
    CHECK(!b->over_metrics);
    engine_agg_free(&kept);

    /* A marking set: the aggregate is marked over, its count stays exact. */
    engine_aggset *marking = NULL;
    engine_agg copy;
    engine_agg_init(&copy);
    REQUIRE(engine_aggset_new(0, &marking, NULL) == SL_OK);
    engine__aggset_mark_over(marking);
    for (int a = 0; a < 9; a++) {
        snprintf(prefix, sizeof prefix, "m%d", a);
        CHECK_INT(apply(marking, asset("x", "nike", prefix, NAMES), +1, &e), SL_OK);
    }
    CHECK_INT(apply(marking, asset("y", "puma", "p", 3), +1, &e), SL_OK);
    b = engine_aggset_find(marking, &id);
    REQUIRE(b != NULL);
    CHECK(b->over_metrics);
    CHECK_INT(b->count, 9);
    CHECK_INT(b->nmetrics, 0);
    CHECK(!engine_agg_is_zero(b));
    engine_agg puma = brand_id("puma");
    const engine_agg *p = engine_aggset_find(marking, &puma);
    CHECK(p && !p->over_metrics && p->count == 1 && p->nmetrics == 4);
    /* Never added to, never encoded. */
    bson_t doc = BSON_INITIALIZER;
    sl_error_clear(&e);
    CHECK_INT(engine_agg_encode(b, &doc, &e), SL_ETOOLARGE);
    bson_destroy(&doc);
    sl_error_clear(&e);
    CHECK_INT(engine_agg_add(&copy, b, +1, &e), SL_ETOOLARGE);
    CHECK(copy.kind == 0 && copy.count == 0); /* unchanged */
    /* Subtracting what a set over the limit holds keeps the mark (through
     * engine_aggset_add too); counting nothing, it is zero: absent. */
    CHECK_INT(engine_aggset_add(marking, b, -1, &e), SL_OK);
    b = engine_aggset_find(marking, &id);
    CHECK(b && b->over_metrics && b->count == 0 && engine_agg_is_zero(b));
    engine_agg_free(&copy);
    engine_aggset_free(&plain);
    engine_aggset_free(&marking);
}

static void test_zero_metrics(void)
{
    engine_aggset *deltas = NULL;
    sl_error e;
    char prefix[8], old[8];
    REQUIRE(engine_aggset_new(0, &deltas, NULL) == SL_OK);
    /* The deltas of one asset rescored nine times, each time with 32 new
     * names: +new image, -old image, as the listener and recompute add a
     * feed event. */
    CHECK_INT(apply(deltas, asset("x", "nike", "r0", NAMES), +1, &e), SL_OK);
    for (int i = 1; i < 10; i++) {
        snprintf(prefix, sizeof prefix, "r%d", i);
        snprintf(old, sizeof old, "r%d", i - 1);
        CHECK_INT(apply(deltas, asset("x", "nike", prefix, NAMES), +1, &e), SL_OK);
        if (e.status)
            fprintf(stderr, "rescore %d: %s\n", i, e.message);
        CHECK_INT(apply(deltas, asset("x", "nike", old, NAMES), -1, &e), SL_OK);
    }
    engine_agg id = brand_id("nike");
    engine_agg *b = engine_aggset_find(deltas, &id);
    REQUIRE(b != NULL);
    engine_agg sum;
    engine_agg_init(&sum);
    CHECK_INT(engine_agg_add(&sum, b, +1, &e), SL_OK); /* pruned: the last image's metrics */
    CHECK_INT(sum.count, 1);
    CHECK_INT(sum.nmetrics, 1 + NAMES);
    CHECK(engine_agg_metric(&sum, "r9x5") != NULL && engine_agg_metric(&sum, "r8x5") == NULL);
    engine_agg_free(&sum);
    engine_aggset_free(&deltas);
}

/* ---------------------------------------------------------------------------
 * On a store.
 * ------------------------------------------------------------------------- */
static void put_item(store *s, bson_t *doc)
{
    sl_error e;
    sl_error_clear(&e);
    if (store_put(s, STORE_ITEMS, doc, (store_cond){0}, NULL, &e) != SL_OK)
        fprintf(stderr, "store_put: %s\n", e.message);
    bson_destroy(doc);
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
    for (size_t i = 0; i < rep.naggs; i++)
        fprintf(stderr, "  %s %s%s: %.200s\n", rep.aggs[i].tenant, rep.aggs[i].sk,
                rep.aggs[i].repaired ? " (repaired)" : "", rep.aggs[i].summary);
    return rep;
}

static const engine_drift_agg *find_agg(const engine_recompute_report *rep, const char *sk)
{
    for (size_t i = 0; i < rep->naggs; i++)
        if (!strcmp(rep->aggs[i].sk, sk))
            return &rep->aggs[i];
    return NULL;
}

static void quiet_log(void *ctx, const char *level, const char *message)
{
    (void)ctx;
    if (strcmp(level, "info") != 0)
        fprintf(stderr, "listener %s: %s\n", level, message);
}

static void test_lagging_feed(void)
{
    char dir[64], uri[128], prefix[8];
    store *s = NULL;
    md_tempdir(dir, uri);
    REQUIRE(store_open(uri, NULL, &s, NULL) == SL_OK);
    /* No listener has run: every event is one recompute brings back. */
    for (int i = 0; i < 10; i++) {
        snprintf(prefix, sizeof prefix, "r%d", i);
        put_item(s, asset("x", "nike", prefix, NAMES));
    }
    engine_recompute_report rep = recompute(s, 0);
    CHECK_INT(rep.drift_aggregates, 0);
    CHECK_INT(rep.over_limit_aggregates, 0);
    engine_recompute_report_free(&rep);
    /* The listener takes the ten events (one batch) and agrees. */
    engine_listener_options o = {.holder = "lag", .log = quiet_log};
    engine_listener *l = NULL;
    REQUIRE(engine_listener_start(s, &o, &l, NULL) == SL_OK);
    CHECK(md_wait_caught_up(s, ENGINE_CONSUMER, 30000));
    engine_listener_stats st;
    REQUIRE(engine_listener_stats_get(l, &st, NULL) == SL_OK);
    CHECK_INT(st.quarantined, 0);
    engine_listener_stop(&l);
    rep = recompute(s, 0);
    CHECK_INT(rep.drift_aggregates, 0);
    engine_recompute_report_free(&rep);
    store_close(&s);
    md_rmdir(dir);
}

/* Moves the listener's consumer to the head of the feed without applying
 * anything: the aggregates are then stale (absent), as after a restore of
 * the items alone, and no listener has met what they should hold. */
static void consumer_to_head(store *s)
{
    store_feed_stats fs;
    char tok[STORE_TOKEN_MAX] = "";
    REQUIRE(store_feed_stats_get(s, ENGINE_CONSUMER, &fs, NULL) == SL_OK);
    if (store_consumer_token(s, ENGINE_CONSUMER, tok, NULL) != SL_OK)
        tok[0] = '\0';
    REQUIRE(store_consumer_commit(s, ENGINE_CONSUMER, tok, fs.head_token, NULL, 0, NULL) == SL_OK);
}

static void test_recompute(void)
{
    char dir[64], uri[128], prefix[8], id[8];
    store *s = NULL;
    engine_quarantine q;
    md_tempdir(dir, uri);
    REQUIRE(store_open(uri, NULL, &s, NULL) == SL_OK);
    for (int a = 0; a < 9; a++) { /* nike and asics: 1 + 9 * 32 metrics */
        snprintf(prefix, sizeof prefix, "m%d", a);
        snprintf(id, sizeof id, "n%d", a);
        put_item(s, asset(id, "nike", prefix, NAMES));
        snprintf(id, sizeof id, "a%d", a);
        put_item(s, asset(id, "asics", prefix, NAMES));
    }
    put_item(s, asset("p0", "puma", "p", 3));
    put_item(s, asset("r0", "reebok", "q", 2));
    /* Records of another cause (as written before causes existed): reebok
     * fits, so repair rebuilds it and removes its record; asics does not,
     * so repair rewrites its record's cause. */
    for (int i = 0; i < 2; i++) {
        const char *brand = i ? "asics" : "reebok";
        char sk[64], agg_sk[32];
        snprintf(sk, sizeof sk, "QUARANTINE#T#acme#AGG#BRAND#%s", brand);
        snprintf(agg_sk, sizeof agg_sk, "BRAND#%s", brand);
        bson_t *rec =
            BCON_NEW("pk", ENGINE_SYS_PK, "sk", sk, "type", "aggregate_quarantine", "agg_pk",
                     "T#acme#AGG", "agg_sk", agg_sk, "tenant", "acme", "reason", "a test");
        REQUIRE(store_put(s, STORE_AGGREGATES, rec, (store_cond){0}, NULL, NULL) == SL_OK);
        bson_destroy(rec);
    }
    consumer_to_head(s);

    /* A check: nike over the limit, not quarantined yet; asics over it,
     * quarantined as damaged; puma and reebok drift (absent live). */
    engine_recompute_report rep = recompute(s, 0);
    const engine_drift_agg *n = find_agg(&rep, "BRAND#nike"), *a = find_agg(&rep, "BRAND#asics");
    CHECK(n && n->over_metric_limit && !n->repaired);
    CHECK(n &&
          strstr(n->summary, "over the metric limit: its assets carry more than 256 metrics") &&
          strstr(n->summary, "not quarantined yet"));
    CHECK(a && a->over_metric_limit && strstr(a->summary, "as damaged: a test"));
    CHECK_INT(rep.over_limit_aggregates, 2);
    CHECK_INT(rep.drift_aggregates, 4);
    engine_recompute_report_free(&rep);

    /* --repair: puma and reebok written, nike quarantined for the limit,
     * asics's record rewritten with that cause. */
    rep = recompute(s, 1);
    CHECK_INT(rep.drift_aggregates, 4);
    CHECK_INT(rep.repaired_aggregates, 2);
    CHECK_INT(rep.over_limit_aggregates, 2);
    n = find_agg(&rep, "BRAND#nike");
    CHECK(n && n->over_metric_limit && !n->repaired);
    const engine_drift_agg *r = find_agg(&rep, "BRAND#reebok");
    CHECK(r && r->repaired && !r->over_metric_limit);
    engine_recompute_report_free(&rep);
    for (int i = 0; i < 2; i++) {
        REQUIRE(engine_quarantine_get(s, "T#acme#AGG", i ? "BRAND#asics" : "BRAND#nike", &q,
                                      NULL) == SL_OK);
        CHECK_INT(q.cause, ENGINE_QUARANTINE_METRIC_LIMIT);
        CHECK(strstr(q.reason, "over the metric limit") != NULL);
    }
    CHECK_INT(engine_quarantine_get(s, "T#acme#AGG", "BRAND#reebok", &q, NULL), SL_ENOTFOUND);
    bson_t *doc = NULL;
    CHECK_INT(store_get(s, STORE_AGGREGATES, "T#acme#AGG", "BRAND#nike", &doc, NULL), SL_ENOTFOUND);

    /* The listener agrees: it loads the record, skips nike, keeps the rest. */
    engine_listener_options o = {.holder = "t", .log = quiet_log};
    engine_listener *l = NULL;
    REQUIRE(engine_listener_start(s, &o, &l, NULL) == SL_OK);
    put_item(s, asset("p1", "puma", "p", 3));
    put_item(s, asset("n9", "nike", "z", 1));
    CHECK(md_wait_caught_up(s, ENGINE_CONSUMER, 30000));
    engine_listener_stats st;
    REQUIRE(engine_listener_stats_get(l, &st, NULL) == SL_OK);
    CHECK_INT(st.quarantined, 2);
    CHECK(st.quarantine_skips >= 1);
    rep = recompute(s, 1); /* nike and asics: quarantined for it already, nothing to write */
    CHECK_INT(rep.drift_aggregates, 2);
    CHECK_INT(rep.repaired_aggregates, 0);
    n = find_agg(&rep, "BRAND#nike");
    CHECK(n && n->over_metric_limit && strstr(n->summary, "quarantined by the listener since"));
    engine_recompute_report_free(&rep);

    /* Made to fit (three assets gone: 1 + 6 * 32 + 1 metrics): rebuilt,
     * released, kept by the listener from there. */
    for (int i = 0; i < 3; i++) {
        char pk[32];
        snprintf(pk, sizeof pk, "T#acme#ASSET#n%d", i);
        REQUIRE(store_delete(s, STORE_ITEMS, pk, "META", (store_cond){0}, NULL, NULL) == SL_OK);
    }
    CHECK(md_wait_caught_up(s, ENGINE_CONSUMER, 30000));
    rep = recompute(s, 1);
    CHECK_INT(rep.drift_aggregates, 2);
    CHECK_INT(rep.repaired_aggregates, 1);
    CHECK_INT(rep.over_limit_aggregates, 1); /* asics */
    n = find_agg(&rep, "BRAND#nike");
    CHECK(n && n->repaired && !n->over_metric_limit);
    engine_recompute_report_free(&rep);
    CHECK_INT(engine_quarantine_get(s, "T#acme#AGG", "BRAND#nike", &q, NULL), SL_ENOTFOUND);
    put_item(s, asset("n10", "nike", "z", 1));
    CHECK(md_wait_caught_up(s, ENGINE_CONSUMER, 30000));
    REQUIRE(store_get(s, STORE_AGGREGATES, "T#acme#AGG", "BRAND#nike", &doc, NULL) == SL_OK);
    engine_agg nike;
    engine_agg_init(&nike);
    CHECK_INT(engine_agg_decode(doc, &nike, NULL), SL_OK);
    CHECK_INT(nike.count, 8);
    CHECK_INT(nike.nmetrics, 1 + 6 * NAMES + 1);
    engine_agg_free(&nike);
    bson_destroy(doc);
    rep = recompute(s, 0);
    CHECK_INT(rep.drift_aggregates, 1); /* asics, still over */
    CHECK(rep.naggs == 1 && !strcmp(rep.aggs[0].sk, "BRAND#asics"));
    engine_recompute_report_free(&rep);
    engine_listener_stop(&l);
    store_close(&s);
    md_rmdir(dir);
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    if (!only || !strcmp(only, "sets"))
        test_sets();
    if (!only || !strcmp(only, "zero_metrics"))
        test_zero_metrics();
    if (!only || !strcmp(only, "lagging_feed"))
        test_lagging_feed();
    if (!only || !strcmp(only, "recompute"))
        test_recompute();
    return check_finish();
}
