/* engine_recompute_test.c -- recompute's loose ends, each on a real temporary
 * SQLite store (docs/recompute.md):
 *
 *  - `feed_full`: the changes the listener has not applied yet (the feed
 *    events in (C, H], subtracted from the shadow) touch more aggregates
 *    than --max-aggregates.  Regression: the reader dropped the deltas that
 *    did not fit without a word, so a check reported drift that was not there
 *    (and a repair could write it); now the run fails naming the bound, and
 *    writes nothing.  With room, the same store compares clean.
 *  - `lease_stall`: a repair step that stalls (here: at its write, three
 *    lease lifetimes) while the listener waits to take its lease back.
 *    Regression (a flake of e2e_recompute_scope_test under load: "the
 *    listener's lease aggregates was taken back from this repair"): the
 *    leases were renewed only where the run's code passed a renewal point,
 *    so a step longer than the lease (a store stall, a slow machine) lost
 *    it; now a keeper thread renews them every third of their lifetime
 *    whatever the step does, and the listener never gets it meanwhile.
 *  - `lease_taken`: the listener's lease taken back during a step anyway
 *    (the test takes it, as a listener does once it expired): the tenant is
 *    repaired again from a new seizure and snapshot, exactly; what a step
 *    wrote before it lost the lease stays written and reported; a lease
 *    taken every time fails the run after a bounded number of attempts,
 *    naming it. */
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

/* ---------------------------------------------------------------------------
 * Leases.
 * ------------------------------------------------------------------------- */
static void quiet_log(void *ctx, const char *level, const char *message)
{
    (void)ctx;
    if (strcmp(level, "info") != 0)
        fprintf(stderr, "listener %s: %s\n", level, message);
}

/* A store whose tenant acme has `brands` brands of one asset each, applied
 * by a listener, then the first `damaged` brand aggregates deleted behind
 * its back: drift a repair must write. */
static store *lease_world(char dir[64], int brands, int damaged)
{
    char uri[128], id[16], brand[16], sk[32];
    store *s = NULL;
    md_tempdir(dir, uri);
    REQUIRE(store_open(uri, NULL, &s, NULL) == SL_OK);
    for (int b = 0; b < brands; b++) {
        snprintf(id, sizeof id, "a%d", b);
        snprintf(brand, sizeof brand, "b%03d", b);
        put_item(s, asset("acme", id, brand));
    }
    engine_listener_options o = {.holder = "setup", .log = quiet_log};
    engine_listener *l = NULL;
    REQUIRE(engine_listener_start(s, &o, &l, NULL) == SL_OK);
    REQUIRE(md_wait_caught_up(s, ENGINE_CONSUMER, 30000));
    engine_listener_stop(&l);
    for (int b = 0; b < damaged; b++) {
        snprintf(sk, sizeof sk, "BRAND#b%03d", b);
        REQUIRE(store_delete(s, STORE_AGGREGATES, "T#acme#AGG", sk, (store_cond){0}, NULL, NULL) ==
                SL_OK);
    }
    return s;
}

/* The listener's lease document: holder and renewed_ms (0 / "" when absent). */
static void listener_lease(store *s, char holder[128], int64_t *renewed)
{
    bson_t *d = NULL;
    bson_iter_t it;
    holder[0] = '\0';
    *renewed = 0;
    if (store_get(s, STORE_AGGREGATES, ENGINE_SYS_PK, "LEASE#" ENGINE_CONSUMER, &d, NULL) != SL_OK)
        return;
    if (bson_iter_init_find(&it, d, "holder") && BSON_ITER_HOLDS_UTF8(&it))
        snprintf(holder, 128, "%s", bson_iter_utf8(&it, NULL));
    if (bson_iter_init_find(&it, d, "renewed_ms") && BSON_ITER_HOLDS_INT64(&it))
        *renewed = bson_iter_int64(&it);
    bson_destroy(d);
}

static engine_recompute_report check_run(store *s)
{
    engine_recompute_options o = {.fresh = 1};
    engine_recompute_report rep;
    sl_error e;
    sl_error_clear(&e);
    sl_status rc = engine_recompute(s, &o, &rep, &e);
    if (rc != SL_OK)
        fprintf(stderr, "check: %s\n", e.message);
    REQUIRE(rc == SL_OK);
    return rep;
}

/* The stall: at the first write of the repair, wait three lease lifetimes,
 * watching the listener's lease (its holder and renewals). */
typedef struct stall_ctx {
    store *s;
    int64_t stall_ms;
    int writes;
    int taken;    /* someone else held the listener's lease during the stall */
    int renewals; /* renewals of it seen during the stall */
} stall_ctx;

static void stall_at(void *ctx, engine_recompute_point point, const char *tenant)
{
    stall_ctx *c = ctx;
    char holder[128];
    int64_t renewed, last = 0;
    if (point != ENGINE_RECOMPUTE_WRITE || c->writes++ || strcmp(tenant, "acme") != 0)
        return;
    for (int64_t waited = 0; waited < c->stall_ms && !c->taken; waited += 10) {
        listener_lease(c->s, holder, &renewed);
        c->taken = strncmp(holder, "recompute:", 10) != 0;
        if (c->taken)
            fprintf(stderr, "lease_stall: the lease went to \"%s\" after %lld ms\n", holder,
                    (long long)waited);
        c->renewals += last && renewed != last;
        last = renewed;
        usleep(10000);
    }
}

static void test_lease_stall(void)
{
    char dir[64];
    store *s = lease_world(dir, 3, 1);
    /* A listener that takes the lease within 50 ms of its expiry. */
    engine_listener_options lo = {.holder = "waiting", .lease_ms = 200, .log = quiet_log};
    engine_listener *l = NULL;
    REQUIRE(engine_listener_start(s, &lo, &l, NULL) == SL_OK);
    stall_ctx c = {.s = s, .stall_ms = 6000};
    engine_recompute_options o = {
        .repair = 1, .fresh = 1, .lease_ms = 2000, .at = stall_at, .at_ctx = &c};
    engine_recompute_report rep;
    sl_error e;
    sl_error_clear(&e);
    memset(&rep, 0, sizeof rep);
    sl_status rc = engine_recompute(s, &o, &rep, &e);
    if (rc != SL_OK)
        fprintf(stderr, "lease_stall: %s\n", e.message);
    CHECK_INT(rc, SL_OK);
    CHECK_INT(c.writes, 1);
    CHECK(!c.taken);
    CHECK(c.renewals >= 3); /* every ~667 ms for 6 s */
    CHECK_INT(rep.repaired_aggregates, 1);
    CHECK_INT(rep.repair_retries, 0);
    engine_recompute_report_free(&rep);
    engine_listener_stop(&l);
    rep = check_run(s);
    CHECK_INT(rep.drift_aggregates, 0);
    engine_recompute_report_free(&rep);
    store_close(&s);
    md_rmdir(dir);
}

/* Takes the listener's lease at the writes listed, as a listener does once
 * the lease expired. */
typedef struct take_ctx {
    store *s;
    int writes;     /* writes seen */
    int take_first; /* the first write (1-based) at which to take it */
    int take_every; /* and then at every write */
    int taken;
} take_ctx;

static void take_at(void *ctx, engine_recompute_point point, const char *tenant)
{
    take_ctx *c = ctx;
    (void)tenant;
    if (point != ENGINE_RECOMPUTE_WRITE)
        return;
    c->writes++;
    if (c->writes == c->take_first || (c->take_every && c->writes > c->take_first)) {
        engine__lease thief;
        engine__lease_init(&thief, ENGINE_CONSUMER, "thief", 10000);
        REQUIRE(engine__lease_seize(c->s, &thief, NULL) == SL_OK);
        c->taken++;
    }
}

static void test_lease_taken(void)
{
    /* Taken at the first write: repaired again, exactly. */
    char dir[64];
    store *s = lease_world(dir, 3, 2);
    take_ctx c = {.s = s, .take_first = 1};
    engine_recompute_options o = {.repair = 1, .fresh = 1, .at = take_at, .at_ctx = &c};
    engine_recompute_report rep;
    sl_error e;
    sl_error_clear(&e);
    memset(&rep, 0, sizeof rep);
    sl_status rc = engine_recompute(s, &o, &rep, &e);
    if (rc != SL_OK)
        fprintf(stderr, "lease_taken: %s\n", e.message);
    CHECK_INT(rc, SL_OK);
    CHECK_INT(c.taken, 1);
    CHECK_INT(c.writes, 2);
    CHECK_INT(rep.repair_retries, 1);
    CHECK_INT(rep.drift_aggregates, 2);
    CHECK_INT(rep.repaired_aggregates, 2);
    CHECK_INT(rep.naggs, 2);
    for (size_t i = 0; i < rep.naggs; i++)
        CHECK(rep.aggs[i].repaired);
    engine_recompute_report_free(&rep);
    rep = check_run(s);
    CHECK_INT(rep.drift_aggregates, 0);
    engine_recompute_report_free(&rep);
    store_close(&s);
    md_rmdir(dir);

    /* 150 drifted: the first batch of 100 written, the lease taken at the
     * second; the retry writes the other 50, and the report has all 150. */
    s = lease_world(dir, 160, 150);
    rep = check_run(s); /* what a repair must report */
    CHECK_INT(rep.drift_aggregates, 150);
    int64_t fields = rep.drift_fields;
    engine_recompute_report_free(&rep);
    c = (take_ctx){.s = s, .take_first = 2};
    sl_error_clear(&e);
    memset(&rep, 0, sizeof rep);
    rc = engine_recompute(s, &o, &rep, &e);
    if (rc != SL_OK)
        fprintf(stderr, "lease_taken (150): %s\n", e.message);
    CHECK_INT(rc, SL_OK);
    CHECK_INT(c.taken, 1);
    CHECK_INT(c.writes, 3);
    CHECK_INT(rep.repair_retries, 1);
    CHECK_INT(rep.drift_aggregates, 150);
    CHECK_INT(rep.repaired_aggregates, 150);
    CHECK_INT(rep.drift_fields, fields);
    CHECK(rep.nrows > 0 && (int64_t)rep.nrows == fields);
    CHECK_INT(rep.naggs, 150);
    int repaired = 0;
    for (size_t i = 0; i < rep.naggs; i++)
        repaired += rep.aggs[i].repaired;
    CHECK_INT(repaired, 150);
    engine_recompute_report_free(&rep);
    rep = check_run(s);
    CHECK_INT(rep.drift_aggregates, 0);
    engine_recompute_report_free(&rep);
    store_close(&s);
    md_rmdir(dir);

    /* Taken every time: a bounded number of attempts, then the run fails
     * naming it, and nothing of the tenant was written. */
    s = lease_world(dir, 3, 2);
    c = (take_ctx){.s = s, .take_first = 1, .take_every = 1};
    sl_error_clear(&e);
    memset(&rep, 0, sizeof rep);
    CHECK_INT(engine_recompute(s, &o, &rep, &e), SL_ECONFLICT);
    CHECK(strstr(e.message, "the listener's lease aggregates was taken back from this repair") !=
          NULL);
    CHECK(strstr(e.message, "5 times") != NULL);
    CHECK_INT(c.taken, 5);
    engine_recompute_report_free(&rep);
    rep = check_run(s);
    CHECK_INT(rep.drift_aggregates, 2);
    engine_recompute_report_free(&rep);
    store_close(&s);
    md_rmdir(dir);
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    if (!only || !strcmp(only, "feed_full"))
        test_feed_full();
    if (!only || !strcmp(only, "lease_stall"))
        test_lease_stall();
    if (!only || !strcmp(only, "lease_taken"))
        test_lease_taken();
    return check_finish();
}
