/* engine_corrupt_test.c -- issue 9, findings 16 and 17: aggregate documents
 * damaged in every way a disk fault, a bad restore or a bug would (another
 * kind's document under a key, bytes that are not BSON, a field missing,
 * extra or mistyped, a negative count, a histogram that does not decode, a
 * tool counter out of range), on a real SQLite store while a writer writes
 * and the listener runs (and a name field disagreeing with the key).  The
 * listener quarantines each one it meets and
 * keeps every other aggregate exact; recompute names each document and what
 * is wrong with it, in one line each; --repair, with the writer still
 * writing, replaces them; at the end every aggregate equals the model, the
 * listener has caught up and recompute finds nothing. */
#include "tests/engine/engine_model.h"

static void quiet_log(void *ctx, const char *level, const char *message)
{
    (void)ctx;
    if (!strcmp(level, "error"))
        fprintf(stderr, "listener %s: %s\n", level, message);
}

static store *open_store(const char *uri)
{
    store *s = NULL;
    REQUIRE(store_open(uri, NULL, &s, NULL) == SL_OK);
    return s;
}

static engine_recompute_report recompute(store *s, int repair)
{
    engine_recompute_options o = {.repair = repair, .fresh = 1};
    engine_recompute_report rep;
    sl_error e;
    sl_error_clear(&e);
    sl_status rc = engine_recompute(s, &o, &rep, &e);
    if (rc != SL_OK)
        fprintf(stderr, "engine_recompute(repair %d): %s\n", repair, e.message);
    REQUIRE(rc == SL_OK);
    for (size_t i = 0; i < rep.naggs; i++)
        fprintf(stderr, "  %s %s: %s%s\n", rep.aggs[i].tenant, rep.aggs[i].sk, rep.aggs[i].summary,
                rep.aggs[i].repaired ? " (repaired)" : "");
    return rep;
}

/* The summary recompute gave aggregate (tenant, sk), or NULL. */
static const engine_drift_agg *summary_of(const engine_recompute_report *rep, const char *tenant,
                                          const char *sk)
{
    for (size_t i = 0; i < rep->naggs; i++)
        if (!strcmp(rep->aggs[i].tenant, tenant) && !strcmp(rep->aggs[i].sk, sk))
            return &rep->aggs[i];
    return NULL;
}

/* The first aggregate of tenant whose sort key starts with prefix, into sk. */
static void pick(store *s, const char *tenant, const char *prefix, char *sk, size_t cap)
{
    char pk[64];
    store_page page = {0};
    snprintf(pk, sizeof pk, "T#%s#AGG", tenant);
    store_query_opts q = {.range = {STORE_RANGE_BEGINS_WITH, prefix, NULL}, .limit = 1};
    REQUIRE(store_query(s, STORE_AGGREGATES, pk, &q, &page, NULL) == SL_OK);
    REQUIRE(page.count == 1);
    bson_t d;
    bson_iter_t it;
    REQUIRE(store_page_view(&page, 0, &d) && bson_iter_init_find(&it, &d, "sk"));
    snprintf(sk, cap, "%s", bson_iter_utf8(&it, NULL));
    store_page_free(&page);
}

static int quarantined(store *s, const char *pk, const char *sk)
{
    char qsk[STORE_KEY_MAX];
    bson_t *doc = NULL;
    snprintf(qsk, sizeof qsk, "QUARANTINE#%s#%s", pk, sk);
    sl_status rc = store_get(s, STORE_AGGREGATES, ENGINE_SYS_PK, qsk, &doc, NULL);
    if (doc)
        bson_destroy(doc);
    return rc == SL_OK;
}

typedef struct victim {
    const char *tenant;
    char sk[160];
    const char *what; /* the kind of damage */
    const char *says; /* what recompute's line for it must say */
    int quarantine;   /* 1: the listener must set it aside once it meets it */
} victim;

static void test_every_kind_while_writing(void)
{
    char dir[64], uri[128], pk[64];
    md_tempdir(dir, uri);
    store *s = open_store(uri), *ws = open_store(uri);
    model *m = calloc(1, sizeof *m);
    REQUIRE(m != NULL);
    pthread_mutex_init(&m->mu, NULL);
    /* Every brand, campaign, sector and some tool aggregates exist before the damage. */
    fx_rng r0 = {test_rng(1)};
    for (int i = 0; i < 2000; i++)
        REQUIRE(md_step(m, ws, &r0, 1) == SL_OK);
    engine_listener_options lo = {.holder = "main", .lease_ms = 2000, .log = quiet_log};
    engine_listener *l = NULL;
    REQUIRE(engine_listener_start(s, &lo, &l, NULL) == SL_OK);
    REQUIRE(md_wait_caught_up(s, ENGINE_CONSUMER, 60000));
    md_writer w = {.m = m, .s = ws, .seed = test_rng(2), .pause_us = 300};
    pthread_t wt;
    REQUIRE(pthread_create(&wt, NULL, md_writer_main, &w) == 0);
    usleep(100000);

    victim v[] = {
        {"acme", "BRAND#nike", "another kind's document",
         "document holds a campaign_agg document "
         "of T#acme#AGG / BRAND#nike#CAMPAIGN#",
         1},
        {"acme", "BRAND#puma", "not BSON", "document is not BSON (8 bytes)", 1},
        {"acme", "BRAND#adidas#CAMPAIGN#fall", "a missing field", "count missing recomputed", 1},
        {"acme", "SECTOR#shoes", "an extra field", "fields: bogus extra field", 1},
        {"globex", "BRAND#reebok", "a wrongly typed field", "count wrong type recomputed", 1},
        {"globex", "BRAND#asics#CAMPAIGN#summer", "a negative count", "count live -5 recomputed",
         1},
        {"globex", "SECTOR#sport", "a histogram that does not decode",
         "hist (does not decode) differ", 1},
        {"globex", "", "a negative tool counter", "surgeries live -3 recomputed", 1},
        {"globex", "BRAND#nike", "a name disagreeing with the key",
         "fields: brand disagrees with the key", 1},
        {"acme", "SECTOR#retail", "a disk fault (not BSON, version kept)", "", 0},
    };
    const int nv = (int)(sizeof v / sizeof v[0]);
    pick(s, "globex", "HOSPITAL#", v[7].sk, sizeof v[7].sk);

    /* The damage, while the writer writes and the listener applies. */
    REQUIRE(md_raw(uri,
                   "UPDATE aggregates SET v = v + 1, doc = (SELECT doc FROM aggregates WHERE pk = "
                   "?1 AND sk = ?3) WHERE pk = ?1 AND sk = ?2",
                   "T#acme#AGG", v[0].sk, "BRAND#nike#CAMPAIGN#spring") == 1);
    REQUIRE(md_raw(uri,
                   "UPDATE aggregates SET v = v + 1, doc = x'0badf00d0badf00d' WHERE pk = ?1 AND "
                   "sk = ?2",
                   "T#acme#AGG", v[1].sk, NULL) == 1);
    md_rewrite(ws, "T#acme#AGG", v[2].sk, "count", MD_DROP, 0, NULL);
    md_rewrite(ws, "T#acme#AGG", v[3].sk, "bogus", MD_ADD, 1, NULL);
    md_rewrite(ws, "T#globex#AGG", v[4].sk, "count", MD_SET_STR, 0, "three");
    md_rewrite(ws, "T#globex#AGG", v[5].sk, "count", MD_SET_INT, -5, NULL);
    md_rewrite(ws, "T#globex#AGG", v[6].sk, "metrics.memorability.hist", MD_SET_BYTES, 0, "\x81");
    md_rewrite(ws, "T#globex#AGG", v[7].sk, "surgeries", MD_SET_INT, -3, NULL);
    md_rewrite(ws, "T#globex#AGG", v[8].sk, "brand", MD_SET_STR, 0, "puma");
    REQUIRE(md_raw(uri, "UPDATE aggregates SET doc = randomblob(64) WHERE pk = ?1 AND sk = ?2",
                   "T#acme#AGG", v[9].sk, NULL) == 1);

    /* The listener meets each and sets it aside (the writer touches them all). */
    for (int i = 0; i < nv; i++) {
        if (!v[i].quarantine)
            continue;
        snprintf(pk, sizeof pk, "T#%s#AGG", v[i].tenant);
        int waited = 0;
        while (!quarantined(s, pk, v[i].sk) && waited < 60000) {
            usleep(20000);
            waited += 20;
        }
        if (!quarantined(s, pk, v[i].sk))
            fprintf(stderr, "%s / %s (%s) was not quarantined\n", pk, v[i].sk, v[i].what);
        CHECK(quarantined(s, pk, v[i].sk));
    }

    /* The feed goes on for everyone else: every other aggregate, of both
     * tenants, is exact once the writer stops. */
    atomic_store(&w.stop, 1);
    pthread_join(wt, NULL);
    CHECK(!atomic_load(&w.failed));
    CHECK(md_wait_caught_up(s, ENGINE_CONSUMER, 60000));
    for (int t = 0; t < MD_COUNT(md_tenants); t++) {
        const char *skip[16];
        int n = 0;
        for (int i = 0; i < nv; i++)
            if (!strcmp(v[i].tenant, md_tenants[t]))
                skip[n++] = v[i].sk;
        CHECK_INT(md_compare_skip(m, s, md_tenants[t], skip, n), 0);
    }
    /* A rescore of a quarantined brand's asset: its delta is dropped (counted). */
    int rescored = 0;
    for (int i = 0; i < MD_ASSETS && !rescored; i++) {
        md_asset *ma = &m->assets[i];
        if (!ma->present || ma->malformed || strcmp(ma->a.tenant, "acme") ||
            strcmp(ma->a.brand, "nike"))
            continue;
        ma->a.memorability = ma->a.memorability > 0.5 ? 0.25 : 0.75;
        bson_t *d = md_asset_bson(ma);
        REQUIRE(store_put(ws, STORE_ITEMS, d, (store_cond){0}, NULL, NULL) == SL_OK);
        bson_destroy(d);
        rescored = 1;
    }
    REQUIRE(rescored);
    CHECK(md_wait_caught_up(s, ENGINE_CONSUMER, 60000));
    engine_listener_stats st;
    for (int i = 0; i < 500; i++) { /* counters move just after the commit */
        REQUIRE(engine_listener_stats_get(l, &st, NULL) == SL_OK);
        if (st.quarantined >= nv - 1 && st.quarantine_skips > 0)
            break;
        usleep(10000);
    }
    CHECK(st.quarantined >= nv - 1);
    CHECK(st.quarantine_skips > 0);
    CHECK(st.holding_lease);

    /* recompute names each damaged document and what is wrong with it, in
     * one line each; a document that is not BSON is not compared field by
     * field (it has none). */
    engine_recompute_report rep = recompute(s, 0);
    CHECK(rep.drift_aggregates >= nv - 1);
    for (int i = 0; i < nv; i++) {
        const engine_drift_agg *a = summary_of(&rep, v[i].tenant, v[i].sk);
        if (!v[i].quarantine && !a)
            continue; /* the listener rewrote it from what it held */
        if (!a || !strstr(a->summary, v[i].says) ||
            (v[i].quarantine && strncmp(a->summary, "quarantined by the listener since ", 34)))
            fprintf(stderr, "%s %s (%s): expected \"%s\", got \"%s\"\n", v[i].tenant, v[i].sk,
                    v[i].what, v[i].says, a ? a->summary : "(nothing)");
        CHECK(a && strstr(a->summary, v[i].says));
        CHECK(!v[i].quarantine || (a && strstr(a->summary, "quarantined by the listener since ")));
    }
    const engine_drift_agg *bin = summary_of(&rep, "acme", "BRAND#puma");
    CHECK(bin && bin->fields == 2); /* (quarantine) and (document) */
    engine_recompute_report_free(&rep);

    /* --repair while the writer writes again: every damaged one is replaced. */
    atomic_store(&w.stop, 0);
    w.seed = test_rng(3);
    REQUIRE(pthread_create(&wt, NULL, md_writer_main, &w) == 0);
    usleep(100000);
    rep = recompute(s, 1);
    CHECK(rep.drift_aggregates >= nv - 1);
    CHECK_INT(rep.repaired_aggregates, rep.drift_aggregates);
    for (size_t i = 0; i < rep.naggs; i++)
        CHECK(rep.aggs[i].repaired);
    engine_recompute_report_free(&rep);
    usleep(200000); /* the listener takes its lease back and goes on */
    atomic_store(&w.stop, 1);
    pthread_join(wt, NULL);
    CHECK(!atomic_load(&w.failed));

    /* Every aggregate exact, the listener caught up, no quarantine left. */
    REQUIRE(md_wait_caught_up(s, ENGINE_CONSUMER, 60000));
    for (int t = 0; t < MD_COUNT(md_tenants); t++)
        CHECK_INT(md_compare(m, s, md_tenants[t]), 0);
    rep = recompute(s, 0);
    CHECK_INT(rep.drift_fields, 0);
    engine_recompute_report_free(&rep);
    int64_t nq = -1;
    CHECK_INT(engine_quarantine_count(s, &nq, NULL, 0, NULL), SL_OK);
    CHECK_INT(nq, 0);
    for (int i = 0; i < 500; i++) { /* it reloads its records when it takes the lease back */
        REQUIRE(engine_listener_stats_get(l, &st, NULL) == SL_OK);
        if (st.holding_lease && st.quarantined == 0)
            break;
        usleep(10000);
    }
    CHECK(st.holding_lease);
    CHECK_INT(st.quarantined, 0);
    engine_listener_stop(&l);
    store_close(&ws);
    store_close(&s);
    pthread_mutex_destroy(&m->mu);
    free(m);
    md_rmdir(dir);
}

/* A listener that finds an aggregate impossible after adding its deltas
 * (it had drifted: units opened one summary short go negative when the
 * summary goes) quarantines it rather than write it; the repair of it goes
 * through while the listener holds the lease, which it then takes back. */
static void test_drift_found_by_the_listener(void)
{
    char dir[64], uri[128];
    const char *pk = "T#acme#AGG", *sk = "HOSPITAL#mercy#PROC#knee#TOOL#clamp";
    md_tempdir(dir, uri);
    store *s = open_store(uri);
    engine_listener_options lo = {.holder = "drift", .lease_ms = 2000, .log = quiet_log};
    engine_listener *l = NULL;
    REQUIRE(engine_listener_start(s, &lo, &l, NULL) == SL_OK);
    fx_summary sum = {
        .tenant = "acme", .surgery = "s1", .hospital = "mercy", .procedure = "knee", .ntools = 1};
    sum.tools[0] = (fx_tool){.sku = "clamp", .opened = 3, .used = 1, .cost = 250, .single_use = 1};
    bson_t *d = fx_summary_doc(&sum);
    REQUIRE(store_put(s, STORE_ITEMS, d, (store_cond){0}, NULL, NULL) == SL_OK);
    bson_destroy(d);
    REQUIRE(md_wait_caught_up(s, ENGINE_CONSUMER, 60000));
    md_rewrite(s, pk, sk, "units_opened", MD_SET_INT, 0, NULL); /* wrong, but possible */
    REQUIRE(store_delete(s, STORE_ITEMS, "T#acme#SURGERY#s1", "SUMMARY", (store_cond){0}, NULL,
                         NULL) == SL_OK);
    REQUIRE(md_wait_caught_up(s, ENGINE_CONSUMER, 60000));
    CHECK(quarantined(s, pk, sk));
    bson_t *doc = NULL;
    CHECK_INT(store_get(s, STORE_AGGREGATES, pk, sk, &doc, NULL), SL_OK); /* left as it was */
    if (doc) {
        CHECK_INT(md_get(doc, "units_opened"), 0);
        bson_destroy(doc);
    }
    engine_recompute_report rep = recompute(s, 1);
    CHECK_INT(rep.repaired_aggregates, 1);
    engine_recompute_report_free(&rep);
    CHECK_INT(store_get(s, STORE_AGGREGATES, pk, sk, &doc, NULL), SL_ENOTFOUND);
    CHECK(!quarantined(s, pk, sk));
    /* The listener takes its lease back and goes on from the repaired point. */
    d = fx_summary_doc(&sum);
    REQUIRE(store_put(s, STORE_ITEMS, d, (store_cond){0}, NULL, NULL) == SL_OK);
    bson_destroy(d);
    REQUIRE(md_wait_caught_up(s, ENGINE_CONSUMER, 60000));
    CHECK_INT(store_get(s, STORE_AGGREGATES, pk, sk, &doc, NULL), SL_OK);
    if (doc) {
        CHECK_INT(md_get(doc, "units_opened"), 3);
        CHECK_INT(md_get(doc, "waste_cents"), 500);
        bson_destroy(doc);
    }
    rep = recompute(s, 0);
    CHECK_INT(rep.drift_fields, 0);
    engine_recompute_report_free(&rep);
    engine_listener_stop(&l);
    store_close(&s);
    md_rmdir(dir);
}

int main(void)
{
    test_seed(); /* printed first; SIGHTLINE_TEST_SEED repeats the run */
    test_drift_found_by_the_listener();
    test_every_kind_while_writing();
    return check_finish();
}
