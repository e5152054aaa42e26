/* engine_recompute_test.c -- recompute's loose ends, each on a real temporary
 * SQLite store (docs/recompute.md):
 *
 *  - `feed_full`: the changes the listener has not applied yet (the feed
 *    events in (C, H], subtracted from the shadow) touch more aggregates
 *    than --max-aggregates.  Regression: the reader dropped the deltas that
 *    did not fit without a word, so a check reported drift that was not there
 *    (and a repair could write it); now the run fails naming the bound, and
 *    writes nothing.  With room, the same store compares clean. */
#include "engine/engine_int.h"
#include "tests/engine/engine_model.h"

/* An asset of tenant t, brand b, memorability 0.5, no saliency. */
static bson_t *asset(const char *t, const char *id, const char *brand)
{
    bson_t *d = bson_new();
    char pk[96];
    snprintf(pk, sizeof pk, "T#%s#ASSET#%s", t, id);
    BSON_APPEND_UTF8(d, "pk", pk);
    BSON_APPEND_UTF8(d, "sk", "META");
    BSON_APPEND_UTF8(d, "type", "asset");
    BSON_APPEND_UTF8(d, "tenant", t);
    BSON_APPEND_UTF8(d, "asset", id);
    BSON_APPEND_UTF8(d, "brand", brand);
    BSON_APPEND_INT64(d, "memorability_micro", 500000);
    return d;
}

static void put_item(store *s, bson_t *doc)
{
    sl_error e;
    sl_error_clear(&e);
    if (store_put(s, STORE_ITEMS, doc, (store_cond){0}, NULL, &e) != SL_OK)
        fprintf(stderr, "store_put: %s\n", e.message);
    bson_destroy(doc);
}

/* The number of documents in SYS#ENGINE whose sort key starts with prefix. */
static int sys_docs(store *s, const char *prefix)
{
    store_page page = {0};
    store_query_opts q = {.range = {STORE_RANGE_BEGINS_WITH, prefix, NULL}, .limit = 1000};
    REQUIRE(store_query(s, STORE_AGGREGATES, ENGINE_SYS_PK, &q, &page, NULL) == SL_OK);
    int n = (int)page.count;
    store_page_free(&page);
    return n;
}

static void test_feed_full(void)
{
    char dir[64], uri[128], id[16], brand[16];
    store *s = NULL;
    md_tempdir(dir, uri);
    REQUIRE(store_open(uri, NULL, &s, NULL) == SL_OK);
    /* Three brands in each of two tenants, and no listener has applied a
     * thing: the pending deltas touch six aggregates, each tenant's shadow
     * three. */
    for (int t = 0; t < 2; t++)
        for (int b = 0; b < 3; b++) {
            snprintf(id, sizeof id, "a%d", b);
            snprintf(brand, sizeof brand, "b%d", b);
            put_item(s, asset(t ? "globex" : "acme", id, brand));
        }
    for (int repair = 0; repair < 2; repair++) {
        engine_recompute_options o = {.repair = repair, .fresh = 1, .max_aggregates = 4};
        engine_recompute_report rep;
        sl_error e;
        sl_error_clear(&e);
        memset(&rep, 0, sizeof rep);
        sl_status rc = engine_recompute(s, &o, &rep, &e);
        if (rc == SL_OK)
            fprintf(stderr, "feed_full (repair %d): no failure, %lld drifted aggregates\n", repair,
                    (long long)rep.drift_aggregates);
        CHECK_INT(rc, SL_ETOOLARGE);
        CHECK(strstr(e.message, "the changes consumer aggregates has not applied yet touch more "
                                "aggregates than recompute holds (--max-aggregates 4)") != NULL);
        CHECK(strstr(e.message, "more than 4 aggregates in one set") != NULL);
        engine_recompute_report_free(&rep);
    }
    /* Nothing written: no aggregate, no audit of a finished run. */
    store_page page = {0};
    store_query_opts q = {.range = {STORE_RANGE_ALL, NULL, NULL}, .limit = 10};
    REQUIRE(store_query(s, STORE_AGGREGATES, "T#acme#AGG", &q, &page, NULL) == SL_OK);
    CHECK_INT(page.count, 0);
    store_page_free(&page);
    CHECK_INT(sys_docs(s, "AUDIT#"), 0);
    /* With room the same point compares clean: the shadow minus the pending
     * deltas is the (empty) live side. */
    engine_recompute_options o = {.fresh = 1, .max_aggregates = 6};
    engine_recompute_report rep;
    sl_error e;
    sl_error_clear(&e);
    CHECK_INT(engine_recompute(s, &o, &rep, &e), SL_OK);
    CHECK_INT(rep.drift_aggregates, 0);
    CHECK_INT(rep.tenants, 2);
    engine_recompute_report_free(&rep);
    store_close(&s);
    md_rmdir(dir);
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    if (!only || !strcmp(only, "feed_full"))
        test_feed_full();
    return check_finish();
}
