/* e2e_corrupt_test.c -- issue 9, findings 16 and 17, "Done when": the real
 * `sightline serve` (with its listener) while assets are put and deleted
 * over HTTP, and aggregate documents damaged in each way a disk fault, a bad
 * restore or a bug would -- another kind's document under a key, bytes that
 * are not BSON (written into the SQLite file), a field missing, an extra
 * field, a wrongly typed field, a negative count, a histogram that does not
 * decode.  The listener quarantines each one it meets and every other
 * aggregate of both tenants keeps moving; the API answers 503 for the
 * quarantined ones, /healthz and /metrics say so; `recompute` names each
 * document and what is wrong with it (exit 3); `recompute --repair`, with
 * the writes going on, replaces them (exit 0); at the end every aggregate
 * equals the independent model, the listener has caught up and `recompute`
 * finds nothing (exit 0). */
#include "tests/check.h"
#include "tests/e2e/e2e.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>

#include "store/store.h"

#define OPS 3000

/* ---------------------------------------------------------------------------
 * Writes going on: the workload over HTTP on a thread of its own (its own
 * clients), in chunks, until told to stop.  The model is the writer's while
 * it runs.
 * ------------------------------------------------------------------------- */
typedef struct writer {
    e2e_model *m;
    e2e_world *w;
    atomic_int stop;
    int bad;
    int64_t ops;
    pthread_t thread;
} writer;

static void *writer_main(void *arg)
{
    writer *wr = arg;
    support_client *c[M_TENANTS];
    for (int t = 0; t < M_TENANTS; t++)
        c[t] = support_client_new(wr->w->srv.url, wr->w->ingest_key[t]);
    e2e_workload_stats ws;
    while (!atomic_load(&wr->stop)) {
        wr->bad += e2e_workload(wr->m, c, 100, NULL, NULL, &ws);
        wr->ops += 100;
    }
    for (int t = 0; t < M_TENANTS; t++)
        support_client_free(&c[t]);
    return NULL;
}

static void writer_start(writer *wr)
{
    atomic_store(&wr->stop, 0);
    REQUIRE(pthread_create(&wr->thread, NULL, writer_main, wr) == 0);
}

static void writer_stop(writer *wr)
{
    atomic_store(&wr->stop, 1);
    REQUIRE(pthread_join(wr->thread, NULL) == 0);
    CHECK_INT(wr->bad, 0);
}

/* ---------------------------------------------------------------------------
 * Damage.
 * ------------------------------------------------------------------------- */

/* Runs sql on the store's SQLite file itself, ?1..?3 bound to a1..a3 (NULL:
 * unbound), as a disk fault or a bad restore would change it. */
static int raw_sql(const char *uri, const char *sql, const char *a1, const char *a2, const char *a3)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    REQUIRE(!strncmp(uri, "sqlite:", 7));
    REQUIRE(sqlite3_open_v2(uri + 7, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK);
    sqlite3_busy_timeout(db, 30000);
    REQUIRE(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK);
    const char *a[3] = {a1, a2, a3};
    for (int k = 0; k < 3; k++)
        if (a[k])
            sqlite3_bind_text(st, k + 1, a[k], -1, SQLITE_STATIC);
    REQUIRE(sqlite3_step(st) == SQLITE_DONE);
    int changed = sqlite3_changes(db);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return changed;
}

typedef enum edit { DROP = 1, SET_INT, SET_STR, SET_BYTES, ADD } edit;

/* Copies src into dst with one field (dotted path) edited; 1 when found. */
static int edit_doc(const bson_t *src, bson_t *dst, const char *path, edit e, int64_t i,
                    const char *str)
{
    const char *dot = strchr(path, '.');
    size_t head = dot ? (size_t)(dot - path) : strlen(path);
    int found = 0;
    bson_iter_t it;
    REQUIRE(bson_iter_init(&it, src));
    while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        int here = e != ADD && strlen(k) == head && !strncmp(k, path, head);
        if (here && !dot) {
            found = 1;
            if (e == SET_INT)
                BSON_APPEND_INT64(dst, k, i);
            else if (e == SET_STR)
                BSON_APPEND_UTF8(dst, k, str);
            else if (e == SET_BYTES)
                BSON_APPEND_BINARY(dst, k, BSON_SUBTYPE_BINARY, (const uint8_t *)str,
                                   (uint32_t)strlen(str));
        } else if (here && BSON_ITER_HOLDS_DOCUMENT(&it)) {
            uint32_t len;
            const uint8_t *data;
            bson_t sub, out;
            bson_iter_document(&it, &len, &data);
            REQUIRE(bson_init_static(&sub, data, len));
            BSON_APPEND_DOCUMENT_BEGIN(dst, k, &out);
            found = edit_doc(&sub, &out, dot + 1, e, i, str);
            bson_append_document_end(dst, &out);
        } else {
            bson_append_iter(dst, k, -1, &it);
        }
    }
    if (e == ADD) {
        BSON_APPEND_INT64(dst, path, i);
        found = 1;
    }
    return found;
}

/* Rewrites an aggregate through the store port with one field edited, as a
 * buggy writer would: under a version condition (no listener update is
 * overwritten), retried while the listener moves it. */
static void rewrite(store *st, const char *pk, const char *sk, const char *path, edit e, int64_t i,
                    const char *str)
{
    for (int attempt = 0; attempt < 1000; attempt++) {
        bson_t *doc = NULL, out = BSON_INITIALIZER;
        bson_iter_t it;
        REQUIRE(store_get(st, STORE_AGGREGATES, pk, sk, &doc, NULL) == SL_OK);
        REQUIRE(bson_iter_init_find(&it, doc, "v") && BSON_ITER_HOLDS_INT64(&it));
        int64_t v = bson_iter_int64(&it);
        REQUIRE(edit_doc(doc, &out, path, e, i, str));
        sl_status rc =
            store_put(st, STORE_AGGREGATES, &out, (store_cond){STORE_COND_VERSION, v}, NULL, NULL);
        bson_destroy(&out);
        bson_destroy(doc);
        if (rc == SL_OK)
            return;
        REQUIRE(rc == SL_ECONDITION);
    }
    REQUIRE(!"the aggregate never stood still");
}

static int quarantined(store *st, const char *pk, const char *sk)
{
    char qsk[1024];
    bson_t *doc = NULL;
    snprintf(qsk, sizeof qsk, "QUARANTINE#%s#%s", pk, sk);
    sl_status rc = store_get(st, STORE_AGGREGATES, "SYS#ENGINE", qsk, &doc, NULL);
    if (doc)
        bson_destroy(doc);
    return rc == SL_OK;
}

/* One aggregate damaged on purpose. */
typedef struct victim {
    int tenant;
    char sk[160];
    const char *what;
    const char *says; /* in recompute's line for it */
    char path[480];   /* its GET path */
} victim;

/* GET path through c: 200 compared with want (histogram included), or 404
 * when want counts nothing.  Returns the differences. */
static int check_agg(support_client *c, const char *path, const char *what, const m_agg *want)
{
    char url[700];
    snprintf(url, sizeof url, "%s?histogram=true", path);
    long s = support_req(c, "GET", url, NULL, 0);
    int diffs = 0;
    if (want->count == 0) {
        diffs += s != 404;
    } else if (s != 200) {
        diffs++;
    } else {
        yajl_val v = e2e_json(support_body(c));
        diffs += v ? e2e_compare_agg(what, v, want) : 1;
        if (v)
            yajl_tree_free(v);
    }
    if (diffs)
        fprintf(stderr, "e2e: %s (GET %s answered %ld): %d differences\n", what, path, s, diffs);
    return diffs;
}

/* Every brand, campaign and sector aggregate of tenant t through single
 * GETs, passing over the damaged ones. */
static int check_others(e2e_model *m, int t, support_client *viewer, const victim *v, int nv)
{
    m_expect *x = malloc(sizeof *x);
    char eb[200], ec[200], path[600], what[500], sk[400];
    int diffs = 0;
    REQUIRE(x != NULL);
    e2e_expect(m, t, x);
    for (int b = 0; b < M_BRANDS; b++) {
        for (int c = -1; c < M_CAMPAIGNS; c++) {
            if (c < 0)
                snprintf(sk, sizeof sk, "BRAND#%s", m_brands[b]);
            else
                snprintf(sk, sizeof sk, "BRAND#%s#CAMPAIGN#%s", m_brands[b], m_campaigns[c]);
            int skip = 0;
            for (int i = 0; i < nv; i++)
                skip |= v[i].tenant == t && !strcmp(v[i].sk, sk);
            if (skip)
                continue;
            support_escape(m_brands[b], eb, sizeof eb);
            if (c < 0) {
                snprintf(path, sizeof path, "/v1/brands/%s", eb);
            } else {
                support_escape(m_campaigns[c], ec, sizeof ec);
                snprintf(path, sizeof path, "/v1/brands/%s/campaigns/%s", eb, ec);
            }
            snprintf(what, sizeof what, "%s %s", m_tenants[t], sk);
            diffs += check_agg(viewer, path, what, c < 0 ? &x->brand[b] : &x->campaign[b][c]);
        }
    }
    for (int s = 0; s < M_SECTORS; s++) {
        snprintf(sk, sizeof sk, "SECTOR#%s", m_sectors[s]);
        int skip = 0;
        for (int i = 0; i < nv; i++)
            skip |= v[i].tenant == t && !strcmp(v[i].sk, sk);
        if (skip)
            continue;
        support_escape(m_sectors[s], eb, sizeof eb);
        snprintf(path, sizeof path, "/v1/sectors/%s", eb);
        snprintf(what, sizeof what, "%s %s", m_tenants[t], sk);
        diffs += check_agg(viewer, path, what, &x->sector[s]);
    }
    free(x);
    return diffs;
}

/* The value of metric name on /metrics once it equals want (the listener
 * counts a quarantine just after its commit), or its last value after 10 s. */
static double metric_of(support_client *c, const char *name, double want)
{
    double v = -1;
    long until = support_now_ms() + 10000;
    do {
        if (support_req(c, "GET", "/metrics", NULL, 0) != 200 ||
            support_metric(support_body(c), name, &v) != 0)
            v = -1;
        if (v != want)
            support_sleep_ms(50);
    } while (v != want && support_now_ms() < until);
    return v;
}

int main(void)
{
    static char out[1 << 20];
    char pk[64], eb[200], ec[200];
    e2e_world w;
    e2e_model m;
    store *st = NULL;
    uint64_t seed = e2e_seed();
    fprintf(stderr, "e2e_corrupt_test: seed %llu\n", (unsigned long long)seed);
    REQUIRE(e2e_world_start(&w, NULL) == 0);
    REQUIRE(e2e_model_init(&m, 600, seed) == 0);
    e2e_workload_stats ws;
    CHECK_INT(e2e_workload(&m, w.ingest, OPS, NULL, NULL, &ws), 0);
    REQUIRE(e2e_wait_caught_up(w.viewer[0], 60000) == 0);
    for (int t = 0; t < M_TENANTS; t++)
        CHECK_INT(e2e_check_all(&m, t, w.viewer[t], 50), 0);
    REQUIRE(store_open(w.store, NULL, &st, NULL) == SL_OK);

    /* The victims: aggregates that exist now (brands hold ~25 assets). */
    victim v[] = {
        {0, "BRAND#Nike", "another kind's document under its key",
         "document holds a campaign_agg document of T#acme#AGG / BRAND#Nike#CAMPAIGN#", ""},
        {0, "BRAND#Adidas", "bytes that are not BSON", "document is not BSON (12 bytes)", ""},
        {1, "", "a missing field", "count missing recomputed", ""},
        {0, "SECTOR#shoes", "an extra field", "fields: bogus extra field", ""},
        {1, "BRAND#Puma", "a wrongly typed field", "count wrong type recomputed", ""},
        {1, "", "a negative count", "count live -5 recomputed", ""},
        {0, "SECTOR#drinks", "a histogram that does not decode", "hist (does not decode)", ""},
    };
    const int nv = (int)(sizeof v / sizeof v[0]);
    /* Campaigns hold a few assets: take two that exist. */
    for (int i = 2; i <= 5; i += 3) {
        store_page page = {0};
        store_query_opts q = {.range = {STORE_RANGE_BEGINS_WITH,
                                        i == 2 ? "BRAND#Zara#CAMPAIGN#" : "BRAND#asics#CAMPAIGN#",
                                        NULL},
                              .limit = 1};
        REQUIRE(store_query(st, STORE_AGGREGATES, "T#globex#AGG", &q, &page, NULL) == SL_OK);
        REQUIRE(page.count == 1);
        bson_t d;
        bson_iter_t it;
        REQUIRE(store_page_view(&page, 0, &d) && bson_iter_init_find(&it, &d, "sk"));
        snprintf(v[i].sk, sizeof v[i].sk, "%s", bson_iter_utf8(&it, NULL));
        store_page_free(&page);
    }
    for (int i = 0; i < nv; i++) {
        const char *sk = v[i].sk, *name = strchr(sk, '#') + 1;
        if (!strncmp(sk, "SECTOR#", 7)) {
            support_escape(name, eb, sizeof eb);
            snprintf(v[i].path, sizeof v[i].path, "/v1/sectors/%s", eb);
        } else {
            char brand[64];
            const char *c = strstr(sk, "#CAMPAIGN#");
            snprintf(brand, sizeof brand, "%.*s", c ? (int)(c - name) : 63, name);
            support_escape(brand, eb, sizeof eb);
            if (c) {
                support_escape(c + 10, ec, sizeof ec);
                snprintf(v[i].path, sizeof v[i].path, "/v1/brands/%s/campaigns/%s", eb, ec);
            } else {
                snprintf(v[i].path, sizeof v[i].path, "/v1/brands/%s", eb);
            }
        }
    }

    /* The damage, while assets are put and deleted over HTTP. */
    writer wr = {.m = &m, .w = &w};
    writer_start(&wr);
    support_sleep_ms(300);
    CHECK_INT(raw_sql(w.store,
                      "UPDATE aggregates SET v = v + 1, doc = (SELECT doc FROM aggregates WHERE "
                      "pk = ?1 AND sk = ?3) WHERE pk = ?1 AND sk = ?2",
                      "T#acme#AGG", v[0].sk, "BRAND#Nike#CAMPAIGN#spring"),
              1);
    CHECK_INT(raw_sql(w.store,
                      "UPDATE aggregates SET v = v + 1, doc = x'deadbeef0badf00d0badf00d' WHERE "
                      "pk = ?1 AND sk = ?2",
                      "T#acme#AGG", v[1].sk, NULL),
              1);
    rewrite(st, "T#globex#AGG", v[2].sk, "count", DROP, 0, NULL);
    rewrite(st, "T#acme#AGG", v[3].sk, "bogus", ADD, 1, NULL);
    rewrite(st, "T#globex#AGG", v[4].sk, "count", SET_STR, 0, "five");
    rewrite(st, "T#globex#AGG", v[5].sk, "count", SET_INT, -5, NULL);
    rewrite(st, "T#acme#AGG", v[6].sk, "metrics.memorability.hist", SET_BYTES, 0, "\xff\xff");

    /* The listener meets each one (the writes touch them all) and sets it aside. */
    for (int i = 0; i < nv; i++) {
        snprintf(pk, sizeof pk, "T#%s#AGG", m_tenants[v[i].tenant]);
        long until = support_now_ms() + 60000;
        while (!quarantined(st, pk, v[i].sk) && support_now_ms() < until)
            support_sleep_ms(50);
        if (!quarantined(st, pk, v[i].sk))
            fprintf(stderr, "%s / %s (%s) was not quarantined after %ld ms\n", pk, v[i].sk,
                    v[i].what, support_now_ms() - until + 60000);
        CHECK(quarantined(st, pk, v[i].sk));
    }

    /* While they are quarantined: 503 for a request that needs one, naming
     * it; /healthz and /metrics say so. */
    for (int i = 0; i < nv; i++) {
        char url[700];
        support_resp r;
        snprintf(url, sizeof url, "%s%s", w.srv.url, v[i].path);
        REQUIRE(support_http("GET", url, w.viewer_key[v[i].tenant], NULL, 0, NULL, &r) == 0);
        CHECK_INT(support_is_problem(&r, 503, "aggregate-needs-repair"), 0);
        if (!strstr(r.body, v[i].sk) || !strstr(r.body, "recompute --repair"))
            fprintf(stderr, "503 for %s does not name it: %s\n", v[i].sk, r.body);
        CHECK(strstr(r.body, v[i].sk) && strstr(r.body, "recompute --repair"));
        support_resp_free(&r);
    }
    CHECK_INT(support_req(w.viewer[0], "GET", "/v1/brands", NULL, 0), 503); /* lists Nike */
    CHECK_INT(support_req(w.viewer[0], "GET", "/v1/sectors", NULL, 0), 503);
    support_client *pub = support_client_new(w.srv.url, NULL);
    REQUIRE(pub != NULL);
    CHECK_INT(support_req(pub, "GET", "/healthz", NULL, 0), 200);
    yajl_val h = e2e_json(support_body(pub));
    CHECK_STR(e2e_get_str(h, "status"), "degraded");
    CHECK_INT(e2e_get_int(h, "aggregates_quarantined", -1), nv);
    if (h)
        yajl_tree_free(h);
    CHECK(metric_of(pub, "sightline_aggregates_quarantined", nv) == nv);
    CHECK(metric_of(pub, "sightline_listener_quarantined", nv) == nv);

    /* Every other aggregate keeps moving, in both tenants: once the writes
     * stop, the listener catches up and each one equals the model. */
    writer_stop(&wr);
    CHECK_INT(e2e_workload(&m, w.ingest, 500, NULL, NULL, &ws), 0);
    CHECK_INT(e2e_wait_caught_up(pub, 60000), 0);
    for (int t = 0; t < M_TENANTS; t++)
        CHECK_INT(check_others(&m, t, w.viewer[t], v, nv), 0);
    CHECK_INT(support_req(w.viewer[1], "GET", "/v1/sectors", NULL, 0), 200); /* none quarantined */

    /* recompute: exit 3, one line per damaged aggregate saying what is wrong. */
    const char *check[] = {"recompute", "--store", w.store, NULL};
    CHECK_INT(support_run(out, sizeof out, 0, check), 3);
    for (int i = 0; i < nv; i++) {
        char head[300];
        snprintf(head, sizeof head, "\n%s %s: quarantined by the listener since ",
                 m_tenants[v[i].tenant], v[i].sk);
        const char *line = strstr(out, head);
        const char *end = line ? strchr(line + 1, '\n') : NULL;
        const char *says = line ? strstr(line, v[i].says) : NULL;
        if (!line || !says || (end && says > end))
            fprintf(stderr, "recompute does not say \"%s\" of %s (%s)\n", v[i].says, v[i].sk,
                    v[i].what);
        CHECK(line && says && (!end || says < end));
    }
    CHECK(strstr(out, "(--verbose lists each of the") != NULL);
    if (check_failures_)
        fprintf(stderr, "recompute printed:\n%.4000s\n", out);

    /* --repair with the writes going on again: exit 0. */
    writer_start(&wr);
    support_sleep_ms(300);
    const char *repair[] = {"recompute", "--store", w.store, "--repair", NULL};
    int rc = support_run(out, sizeof out, 0, repair);
    if (rc != 0)
        fprintf(stderr, "recompute --repair exited %d:\n%s\n", rc, out);
    CHECK_INT(rc, 0);
    support_sleep_ms(300);
    writer_stop(&wr);

    /* Every aggregate exact, the listener caught up, recompute clean. */
    CHECK_INT(e2e_wait_caught_up(pub, 60000), 0);
    for (int t = 0; t < M_TENANTS; t++)
        CHECK_INT(e2e_check_all(&m, t, w.viewer[t], 50), 0);
    CHECK_INT(support_run(out, sizeof out, 0, check), 0);
    CHECK(strstr(out, "no drift") != NULL);
    CHECK_INT(support_req(pub, "GET", "/healthz", NULL, 0), 200);
    h = e2e_json(support_body(pub));
    CHECK_STR(e2e_get_str(h, "status"), "ok");
    CHECK_INT(e2e_get_int(h, "aggregates_quarantined", -1), 0);
    if (h)
        yajl_tree_free(h);
    CHECK(metric_of(pub, "sightline_aggregates_quarantined", 0) == 0);
    for (int i = 0; i < nv; i++)
        CHECK_INT(support_req(w.viewer[v[i].tenant], "GET", v[i].path, NULL, 0), 200);
    /* And the listener goes on from the repaired documents. */
    CHECK_INT(e2e_workload(&m, w.ingest, 500, NULL, NULL, &ws), 0);
    CHECK_INT(e2e_wait_caught_up(pub, 60000), 0);
    for (int t = 0; t < M_TENANTS; t++)
        CHECK_INT(e2e_check_all(&m, t, w.viewer[t], 50), 0);
    CHECK_INT(support_run(out, sizeof out, 0, check), 0);

    support_client_free(&pub);
    store_close(&st);
    CHECK_INT(e2e_world_stop(&w), 0);
    e2e_model_free(&m);
    support_rmrf(w.dir);
    return check_finish();
}
