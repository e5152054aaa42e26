/* engine_overflow_test.c -- sums past int64 (engine.h, "Overflow";
 * docs/recompute.md): a tool's waste_cents summed over surgery summaries
 * passes 2^63 - 1 with three summaries of 4096 entries of 10^6 units at
 * 10^9 cents (4.1e18 each, which SCHEMA_UNIT_COST_MAX keeps within int64
 * for one summary).  Regression: the sums were plain `+=`, so the third
 * summary wrapped the aggregate negative -- or aborted the listener under
 * UBSan ("signed integer overflow" in apply_summary) -- where it must be
 * quarantined with its own cause, named by recompute, and the rest kept.
 *
 *  - `sets`: a listener's set refuses the summary that would pass int64
 *    (SL_EOVERFLOW naming the aggregate and the field), unchanged; a marking
 *    set (recompute's) marks the aggregate overflowing and keeps the others
 *    exact; an overflowing aggregate is never added to or encoded; a live
 *    document near 2^63 (a bad restore) refuses its next delta, in a tool's
 *    counter, a brand's count and a metric's sum.
 *  - `listener`: the listener quarantines the tool (cause overflow) and
 *    keeps every other aggregate exact, then skips its deltas; recompute
 *    names it ("overflow: its waste_cents ..."), --repair leaves it
 *    quarantined; once summaries are deleted and it fits, --repair
 *    rebuilds it exactly and lifts the quarantine.
 *  - `repair_first`: recompute --repair on a store no listener has applied:
 *    it quarantines the tool (cause overflow, "not quarantined yet" before),
 *    repairs the rest of the tenant, and the listener then agrees. */
#include "engine/engine_int.h"
#include "tests/engine/engine_model.h"

#define BIG_ENTRIES 4095         /* ENGINE_SUMMARY_TOOLS_MAX, less the gauze entry */
#define BIG_UNITS   1000000LL    /* ENGINE_UNITS_MAX */
#define BIG_COST    1000000000LL /* SCHEMA_UNIT_COST_MAX */
#define BIG_WASTE   ((int64_t)BIG_ENTRIES * BIG_UNITS * BIG_COST) /* 4.095e18 a summary */

/* A summary of surgery id (tenant acme, mercy, knee): nbig entries of the
 * sku "implant", each 10^6 units opened, none used, 10^9 cents, single use;
 * then one entry of "gauze" (3 opened, 1 used, 100 cents). */
static bson_t *summary(const char *id, int nbig)
{
    bson_t *d = bson_new(), tools, t;
    char pk[96], key[16];
    snprintf(pk, sizeof pk, "T#acme#SURGERY#%s", id);
    BSON_APPEND_UTF8(d, "pk", pk);
    BSON_APPEND_UTF8(d, "sk", "SUMMARY");
    BSON_APPEND_UTF8(d, "type", "surgery_summary");
    BSON_APPEND_UTF8(d, "tenant", "acme");
    BSON_APPEND_UTF8(d, "surgery", id);
    BSON_APPEND_UTF8(d, "hospital", "mercy");
    BSON_APPEND_UTF8(d, "procedure", "knee");
    BSON_APPEND_ARRAY_BEGIN(d, "tools", &tools);
    for (int i = 0; i <= nbig; i++) {
        snprintf(key, sizeof key, "%d", i);
        int big = i < nbig;
        BSON_APPEND_DOCUMENT_BEGIN(&tools, key, &t);
        BSON_APPEND_UTF8(&t, "sku", big ? "implant" : "gauze");
        BSON_APPEND_INT64(&t, "opened_units", big ? BIG_UNITS : 3);
        BSON_APPEND_INT64(&t, "used_units", big ? 0 : 1);
        BSON_APPEND_INT64(&t, "unit_cost_cents", big ? BIG_COST : 100);
        BSON_APPEND_BOOL(&t, "single_use", true);
        bson_append_document_end(&tools, &t);
    }
    bson_append_array_end(d, &tools);
    return d;
}

static engine_agg tool_id(const char *sku)
{
    engine_agg id;
    engine_agg_init(&id);
    id.kind = ENGINE_AGG_TOOL;
    snprintf(id.tenant, sizeof id.tenant, "acme");
    snprintf(id.hospital, sizeof id.hospital, "mercy");
    snprintf(id.procedure, sizeof id.procedure, "knee");
    snprintf(id.sku, sizeof id.sku, "%s", sku);
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
    engine_aggset *plain = NULL, *marking = NULL;
    sl_error e;
    engine_agg implant = tool_id("implant"), gauze = tool_id("gauze");
    REQUIRE(engine_aggset_new(0, &plain, NULL) == SL_OK);
    CHECK_INT(apply(plain, summary("s1", BIG_ENTRIES), +1, &e), SL_OK);
    CHECK_INT(apply(plain, summary("s2", BIG_ENTRIES), +1, &e), SL_OK);
    const engine_agg *a = engine_aggset_find(plain, &implant);
    REQUIRE(a != NULL);
    CHECK_INT(a->waste_cents, 2 * BIG_WASTE); /* 8.19e18: fits */
    /* The third would pass 2^63 - 1: refused, naming it; the set unchanged
     * (its gauze entry not added either). */
    CHECK_INT(apply(plain, summary("s3", BIG_ENTRIES), +1, &e), SL_EOVERFLOW);
    CHECK(strstr(e.message, "overflow: waste_cents of HOSPITAL#mercy#PROC#knee#TOOL#implant of "
                            "tenant acme would pass the int64 maximum") != NULL);
    CHECK(!strcmp(e.field, "waste_cents"));
    a = engine_aggset_find(plain, &implant);
    CHECK(a && a->waste_cents == 2 * BIG_WASTE && a->surgeries == 2 && !a->overflow);
    const engine_agg *g = engine_aggset_find(plain, &gauze);
    CHECK(g && g->surgeries == 2 && g->waste_cents == 400);

    /* A marking set: the tool marked overflowing, the others exact. */
    REQUIRE(engine_aggset_new(0, &marking, NULL) == SL_OK);
    engine__aggset_mark_over(marking);
    for (int i = 0; i < 4; i++) {
        char id[8];
        snprintf(id, sizeof id, "s%d", i);
        CHECK_INT(apply(marking, summary(id, BIG_ENTRIES), +1, &e), SL_OK);
    }
    engine_agg *m = engine_aggset_find(marking, &implant);
    REQUIRE(m != NULL);
    CHECK(m->overflow && !strcmp(m->overflow_field, "waste_cents"));
    CHECK(!engine_agg_is_zero(m));
    g = engine_aggset_find(marking, &gauze);
    CHECK(g && g->surgeries == 4 && g->units_opened == 12 && g->waste_cents == 800);
    /* Subtracting keeps the mark (a sum past int64 is not known any more). */
    CHECK_INT(apply(marking, summary("s0", BIG_ENTRIES), -1, &e), SL_OK);
    m = engine_aggset_find(marking, &implant);
    CHECK(m && m->overflow);
    /* Never added to, never encoded. */
    engine_agg copy;
    engine_agg_init(&copy);
    bson_t doc = BSON_INITIALIZER;
    sl_error_clear(&e);
    CHECK_INT(engine_agg_encode(m, &doc, &e), SL_EOVERFLOW);
    bson_destroy(&doc);
    sl_error_clear(&e);
    CHECK_INT(engine_agg_add(&copy, m, +1, &e), SL_EOVERFLOW);
    CHECK(copy.kind == 0 && copy.waste_cents == 0);
    /* engine_aggset_add into a marking set carries the mark. */
    engine_aggset *other = NULL;
    REQUIRE(engine_aggset_new(0, &other, NULL) == SL_OK);
    engine__aggset_mark_over(other);
    CHECK_INT(engine_aggset_add(other, m, -1, &e), SL_OK);
    const engine_agg *o = engine_aggset_find(other, &implant);
    CHECK(o && o->overflow && !strcmp(o->overflow_field, "waste_cents"));
    engine_aggset_free(&other);

    /* A live document near 2^63 (a bad restore) and its next delta. */
    engine_agg live = tool_id("implant"), delta = tool_id("implant");
    live.surgeries = 5;
    live.units_used = INT64_MAX - 2;
    delta.surgeries = 1;
    delta.units_used = 3;
    sl_error_clear(&e);
    CHECK_INT(engine_agg_add(&live, &delta, +1, &e), SL_EOVERFLOW);
    CHECK(!strcmp(e.field, "units_used") && strstr(e.message, "overflow: units_used of"));
    CHECK(live.surgeries == 5 && live.units_used == INT64_MAX - 2); /* unchanged */
    /* Subtracting the most negative value overflows in the product. */
    delta.units_used = INT64_MIN;
    live.units_used = 0;
    sl_error_clear(&e);
    CHECK_INT(engine_agg_add(&live, &delta, -1, &e), SL_EOVERFLOW);
    CHECK(!strcmp(e.field, "units_used") && live.units_used == 0);

    engine_agg brand, bd;
    engine_agg_init(&brand);
    engine_agg_init(&bd);
    brand.kind = bd.kind = ENGINE_AGG_BRAND;
    snprintf(brand.tenant, sizeof brand.tenant, "acme");
    snprintf(brand.brand, sizeof brand.brand, "nike");
    engine__agg_copy_identity(&bd, &brand);
    brand.count = INT64_MAX;
    bd.count = 1;
    sl_error_clear(&e);
    CHECK_INT(engine_agg_add(&brand, &bd, +1, &e), SL_EOVERFLOW);
    CHECK(!strcmp(e.field, "count") && strstr(e.message, "overflow: count of BRAND#nike"));
    brand.count = 10;
    engine_metric *bm = engine__agg_metric_get(&brand, "memorability", NULL);
    engine_metric *dm = engine__agg_metric_get(&bd, "memorability", NULL);
    REQUIRE(bm && dm);
    bm->n = 10;
    bm->sum = INT64_MAX - 10;
    dm->n = 1;
    dm->sum = 1000000;
    dm->hist[99] = 1;
    sl_error_clear(&e);
    CHECK_INT(engine_agg_add(&brand, &bd, +1, &e), SL_EOVERFLOW);
    CHECK(!strcmp(e.field, "metrics.memorability"));
    CHECK(brand.count == 10 && brand.metrics[0].sum == INT64_MAX - 10);
    /* The stats of such a metric: n * sumsq past 2^127 is not wrapped. */
    engine_metric big = {.n = INT64_MAX / 2, .sum = 0};
    big.sumsq = (engine_i128)(INT64_MAX / 2) * 1000000000000LL;
    big.hist[50] = big.n;
    engine_stats st;
    engine_metric_stats(&big, &st);
    CHECK(st.stddev >= 0.99 && st.stddev <= 1.01);
    engine_agg_free(&brand);
    engine_agg_free(&bd);
    engine_agg_free(&copy);
    engine_aggset_free(&plain);
    engine_aggset_free(&marking);
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

static void del_summary(store *s, const char *id)
{
    char pk[96];
    snprintf(pk, sizeof pk, "T#acme#SURGERY#%s", id);
    REQUIRE(store_delete(s, STORE_ITEMS, pk, "SUMMARY", (store_cond){0}, NULL, NULL) == SL_OK);
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
        fprintf(stderr, "  %s %s%s: %.300s\n", rep.aggs[i].tenant, rep.aggs[i].sk,
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

#define IMPLANT_SK "HOSPITAL#mercy#PROC#knee#TOOL#implant"
#define GAUZE_SK   "HOSPITAL#mercy#PROC#knee#TOOL#gauze"

/* The stored tool aggregate of sku into *out; SL_ENOTFOUND when absent. */
static sl_status stored_tool(store *s, const char *sk, engine_agg *out)
{
    bson_t *doc = NULL;
    sl_status rc = store_get(s, STORE_AGGREGATES, "T#acme#AGG", sk, &doc, NULL);
    engine_agg_init(out);
    if (rc == SL_OK) {
        rc = engine_agg_read(doc, "T#acme#AGG", sk, out, NULL);
        bson_destroy(doc);
    }
    return rc;
}

static void test_listener(void)
{
    char dir[64], uri[128];
    store *s = NULL;
    engine_quarantine q;
    engine_agg a;
    md_tempdir(dir, uri);
    REQUIRE(store_open(uri, NULL, &s, NULL) == SL_OK);
    engine_listener_options o = {.holder = "t", .log = quiet_log};
    engine_listener *l = NULL;
    REQUIRE(engine_listener_start(s, &o, &l, NULL) == SL_OK);
    /* One batch or several: either way the third takes the implant past
     * int64, and the gauze of every summary is applied. */
    put_item(s, summary("s1", BIG_ENTRIES));
    put_item(s, summary("s2", BIG_ENTRIES));
    put_item(s, summary("s3", BIG_ENTRIES));
    put_item(s, summary("s4", 0));
    CHECK(md_wait_caught_up(s, ENGINE_CONSUMER, 60000));
    engine_listener_stats st;
    REQUIRE(engine_listener_stats_get(l, &st, NULL) == SL_OK);
    CHECK_INT(st.quarantined, 1);
    REQUIRE(engine_quarantine_get(s, "T#acme#AGG", IMPLANT_SK, &q, NULL) == SL_OK);
    CHECK_INT(q.cause, ENGINE_QUARANTINE_OVERFLOW);
    CHECK(strstr(q.reason, "overflow: waste_cents of " IMPLANT_SK) != NULL);
    REQUIRE(stored_tool(s, GAUZE_SK, &a) == SL_OK);
    CHECK(a.surgeries == 4 && a.units_opened == 12 && a.units_used == 4 && a.waste_cents == 800);
    engine_agg_free(&a);
    /* What stays stored of the implant is exact (two summaries' worth, or
     * nothing when the three came in one batch), never a wrapped value. */
    if (stored_tool(s, IMPLANT_SK, &a) == SL_OK)
        CHECK(a.waste_cents >= 0 && a.waste_cents <= 2 * BIG_WASTE &&
              a.waste_cents % BIG_WASTE == 0);
    engine_agg_free(&a);

    /* Its deltas are skipped from now on; the gauze goes on. */
    put_item(s, summary("s5", 1));
    CHECK(md_wait_caught_up(s, ENGINE_CONSUMER, 60000));
    REQUIRE(engine_listener_stats_get(l, &st, NULL) == SL_OK);
    CHECK(st.quarantine_skips >= 1);
    REQUIRE(stored_tool(s, GAUZE_SK, &a) == SL_OK);
    CHECK_INT(a.surgeries, 5);
    engine_agg_free(&a);

    /* Recompute names it; --repair has nothing to write for it. */
    engine_recompute_report rep = recompute(s, 0);
    const engine_drift_agg *d = find_agg(&rep, IMPLANT_SK);
    CHECK(d && d->overflow && !d->over_metric_limit && !d->repaired);
    CHECK(d && strstr(d->summary, "overflow: its waste_cents passes the int64 maximum") &&
          strstr(d->summary, "quarantined by the listener since"));
    CHECK_INT(rep.overflow_aggregates, 1);
    CHECK_INT(rep.drift_aggregates, 1);
    engine_recompute_report_free(&rep);
    rep = recompute(s, 1);
    CHECK_INT(rep.drift_aggregates, 1);
    CHECK_INT(rep.repaired_aggregates, 0);
    CHECK_INT(rep.overflow_aggregates, 1);
    engine_recompute_report_free(&rep);
    CHECK_INT(engine_quarantine_get(s, "T#acme#AGG", IMPLANT_SK, &q, NULL), SL_OK);

    /* Made to fit (two summaries gone: s1 and s5 left, 4.1e18 + 10^15):
     * rebuilt exactly, released, kept by the listener from there. */
    del_summary(s, "s2");
    del_summary(s, "s3");
    CHECK(md_wait_caught_up(s, ENGINE_CONSUMER, 60000));
    rep = recompute(s, 1);
    CHECK_INT(rep.drift_aggregates, 1);
    CHECK_INT(rep.repaired_aggregates, 1);
    CHECK_INT(rep.overflow_aggregates, 0);
    d = find_agg(&rep, IMPLANT_SK);
    CHECK(d && d->repaired && !d->overflow);
    engine_recompute_report_free(&rep);
    CHECK_INT(engine_quarantine_get(s, "T#acme#AGG", IMPLANT_SK, &q, NULL), SL_ENOTFOUND);
    put_item(s, summary("s6", 2));
    CHECK(md_wait_caught_up(s, ENGINE_CONSUMER, 60000));
    REQUIRE(stored_tool(s, IMPLANT_SK, &a) == SL_OK);
    CHECK_INT(a.surgeries, 3);
    CHECK_INT(a.waste_cents, BIG_WASTE + 3 * BIG_UNITS * BIG_COST);
    engine_agg_free(&a);
    rep = recompute(s, 0);
    CHECK_INT(rep.drift_aggregates, 0);
    engine_recompute_report_free(&rep);
    engine_listener_stop(&l);
    store_close(&s);
    md_rmdir(dir);
}

/* Moves the listener's consumer to the head of the feed without applying
 * anything (as engine_metric_limit_test does). */
static void consumer_to_head(store *s)
{
    store_feed_stats fs;
    char tok[STORE_TOKEN_MAX] = "";
    REQUIRE(store_feed_stats_get(s, ENGINE_CONSUMER, &fs, NULL) == SL_OK);
    if (store_consumer_token(s, ENGINE_CONSUMER, tok, NULL) != SL_OK)
        tok[0] = '\0';
    REQUIRE(store_consumer_commit(s, ENGINE_CONSUMER, tok, fs.head_token, NULL, 0, NULL) == SL_OK);
}

static void test_repair_first(void)
{
    char dir[64], uri[128];
    store *s = NULL;
    engine_quarantine q;
    engine_agg a;
    md_tempdir(dir, uri);
    REQUIRE(store_open(uri, NULL, &s, NULL) == SL_OK);
    put_item(s, summary("s1", BIG_ENTRIES));
    put_item(s, summary("s2", BIG_ENTRIES));
    put_item(s, summary("s3", BIG_ENTRIES));
    consumer_to_head(s);

    engine_recompute_report rep = recompute(s, 0);
    const engine_drift_agg *d = find_agg(&rep, IMPLANT_SK);
    CHECK(d && d->overflow && strstr(d->summary, "not quarantined yet"));
    CHECK(find_agg(&rep, GAUZE_SK) != NULL); /* absent live */
    CHECK_INT(rep.overflow_aggregates, 1);
    CHECK_INT(rep.drift_aggregates, 2);
    engine_recompute_report_free(&rep);

    rep = recompute(s, 1);
    CHECK_INT(rep.drift_aggregates, 2);
    CHECK_INT(rep.repaired_aggregates, 1);
    CHECK_INT(rep.overflow_aggregates, 1);
    engine_recompute_report_free(&rep);
    REQUIRE(engine_quarantine_get(s, "T#acme#AGG", IMPLANT_SK, &q, NULL) == SL_OK);
    CHECK_INT(q.cause, ENGINE_QUARANTINE_OVERFLOW);
    CHECK(strstr(q.reason, "overflow: its waste_cents passes the int64 maximum") != NULL);
    CHECK_INT(stored_tool(s, IMPLANT_SK, &a), SL_ENOTFOUND);
    engine_agg_free(&a);
    REQUIRE(stored_tool(s, GAUZE_SK, &a) == SL_OK);
    CHECK_INT(a.surgeries, 3);
    engine_agg_free(&a);

    /* The listener loads the record, skips the implant, keeps the rest. */
    engine_listener_options o = {.holder = "t", .log = quiet_log};
    engine_listener *l = NULL;
    REQUIRE(engine_listener_start(s, &o, &l, NULL) == SL_OK);
    put_item(s, summary("s4", 1));
    CHECK(md_wait_caught_up(s, ENGINE_CONSUMER, 60000));
    engine_listener_stats st;
    REQUIRE(engine_listener_stats_get(l, &st, NULL) == SL_OK);
    CHECK_INT(st.quarantined, 1);
    CHECK(st.quarantine_skips >= 1);
    REQUIRE(stored_tool(s, GAUZE_SK, &a) == SL_OK);
    CHECK_INT(a.surgeries, 4);
    engine_agg_free(&a);
    rep = recompute(s, 1); /* quarantined for it already: nothing to write */
    CHECK_INT(rep.drift_aggregates, 1);
    CHECK_INT(rep.repaired_aggregates, 0);
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
    if (!only || !strcmp(only, "listener"))
        test_listener();
    if (!only || !strcmp(only, "repair_first"))
        test_repair_first();
    return check_finish();
}
