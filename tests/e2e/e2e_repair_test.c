/* e2e_repair_test.c -- issue 5, "Done when" (3): after a workload through
 * HTTP, one brand aggregate is corrupted on purpose through the store port
 * (its memorability sum moved by 7 micro-units).  The API shows the damage
 * (it reads aggregates only); `sightline recompute` exits 3 and its drift
 * table names exactly that field with both values; `--repair` fixes it (exit
 * 0), a new run finds nothing, and the API answers the right numbers. */
#include "tests/check.h"
#include "tests/e2e/e2e.h"

#include "store/store.h"

#define OPS 4000

/* Copies src into dst, adding delta to the int64 at the dotted path (one
 * level of sub-documents per dot).  Returns 1 when the field was found. */
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

/* The text of a drift row value ("live", "recomputed"): a number or a string. */
static void value_text(yajl_val v, char *out, size_t cap)
{
    if (YAJL_IS_NUMBER(v))
        snprintf(out, cap, "%s", YAJL_GET_NUMBER(v));
    else if (YAJL_IS_STRING(v))
        snprintf(out, cap, "%s", v->u.string);
    else
        snprintf(out, cap, "?");
}

int main(void)
{
    char out[16384], path[256], eb[128], sk[200], want_live[32], want_rec[32], got[64];
    e2e_world w;
    e2e_model m;
    support_client *const *ingest = w.ingest, *const *viewer = w.viewer;
    const char *store_uri = w.store;
    store *st = NULL;
    uint64_t seed = e2e_seed();
    fprintf(stderr, "e2e_repair_test: seed %llu\n", (unsigned long long)seed);
    REQUIRE(e2e_world_start(&w, NULL) == 0);
    REQUIRE(e2e_model_init(&m, 600, seed) == 0);
    e2e_workload_stats ws;
    CHECK_INT(e2e_workload(&m, ingest, OPS, NULL, NULL, &ws), 0);
    REQUIRE(e2e_wait_caught_up(viewer[0], 60000) == 0);
    CHECK_INT(e2e_check_all(&m, 0, viewer[0], 50), 0);
    const char *check[] = {"recompute", "--store", store_uri, NULL};
    CHECK_INT(support_run(out, sizeof out, 0, check), 0);

    /* The victim: tenant acme's biggest brand. */
    m_expect *x = malloc(sizeof *x);
    REQUIRE(x != NULL);
    e2e_expect(&m, 0, x);
    int b = 0;
    for (int i = 1; i < M_BRANDS; i++)
        if (x->brand[i].count > x->brand[b].count)
            b = i;
    REQUIRE(x->brand[b].count > 0);
    const m_metric *mem = &x->brand[b].m[0];
    snprintf(sk, sizeof sk, "BRAND#%s", m_brands[b]);
    snprintf(want_live, sizeof want_live, "%lld", (long long)(mem->sum + 7));
    snprintf(want_rec, sizeof want_rec, "%lld", (long long)mem->sum);

    /* Corrupt it through the store port, fenced on its version. */
    REQUIRE(store_open(store_uri, NULL, &st, NULL) == SL_OK);
    bson_t *doc = NULL, bad = BSON_INITIALIZER;
    bson_iter_t it;
    REQUIRE(store_get(st, STORE_AGGREGATES, "T#acme#AGG", sk, &doc, NULL) == SL_OK);
    REQUIRE(bson_iter_init_find(&it, doc, "v") && BSON_ITER_HOLDS_INT64(&it));
    int64_t version = bson_iter_int64(&it);
    REQUIRE(bump(doc, &bad, "metrics.memorability.sum", 7));
    CHECK_INT(store_put(st, STORE_AGGREGATES, &bad, (store_cond){STORE_COND_VERSION, version}, NULL,
                        NULL),
              SL_OK);
    bson_destroy(&bad);
    bson_destroy(doc);

    /* The API reads the aggregate: it shows the damage. */
    support_escape(m_brands[b], eb, sizeof eb);
    snprintf(path, sizeof path, "/v1/brands/%s", eb);
    REQUIRE(support_req(viewer[0], "GET", path, NULL, 0) == 200);
    yajl_val v = e2e_json(support_body(viewer[0]));
    const char *sum_path[] = {"metrics", "memorability", "sum_micro", NULL};
    yajl_val sum = v ? yajl_tree_get(v, sum_path, yajl_t_number) : NULL;
    CHECK(sum && YAJL_IS_INTEGER(sum) && YAJL_GET_INTEGER(sum) == mem->sum + 7);
    if (v)
        yajl_tree_free(v);

    /* recompute: exit 3, and its one line for the aggregate names exactly that field. */
    CHECK_INT(support_run(out, sizeof out, 0, check), 3);
    char line[400];
    snprintf(line, sizeof line, "acme %s: metrics.memorability.sum live %s recomputed %s\n", sk,
             want_live, want_rec);
    CHECK(strstr(out, line) != NULL);
    CHECK(strstr(out, "drift: 1 fields in 1 aggregates") != NULL);
    const char *check_json[] = {"recompute", "--store", store_uri, "--json", "--verbose", NULL};
    CHECK_INT(support_run(out, sizeof out, 0, check_json), 3);
    yajl_val rep = e2e_json(out);
    CHECK_INT(e2e_get_int(rep, "drift_fields", -1), 1);
    CHECK_INT(e2e_get_int(rep, "drift_aggregates", -1), 1);
    yajl_val aggs = e2e_get(rep, "aggregates");
    REQUIRE(YAJL_IS_ARRAY(aggs) && aggs->u.array.len == 1);
    CHECK_STR(e2e_get_str(aggs->u.array.values[0], "aggregate"), sk);
    yajl_val rows = e2e_get(rep, "drift");
    REQUIRE(YAJL_IS_ARRAY(rows) && rows->u.array.len == 1);
    yajl_val row = rows->u.array.values[0];
    CHECK_STR(e2e_get_str(row, "tenant"), "acme");
    CHECK_STR(e2e_get_str(row, "aggregate"), sk);
    CHECK_STR(e2e_get_str(row, "field"), "metrics.memorability.sum");
    value_text(e2e_get(row, "live"), got, sizeof got);
    CHECK_STR(got, want_live);
    value_text(e2e_get(row, "recomputed"), got, sizeof got);
    CHECK_STR(got, want_rec);
    yajl_tree_free(rep);

    /* --repair fixes it while the server (and its listener) runs. */
    const char *repair[] = {"recompute", "--store", store_uri, "--repair", "--json", NULL};
    CHECK_INT(support_run(out, sizeof out, 0, repair), 0);
    rep = e2e_json(out);
    CHECK_INT(e2e_get_int(rep, "repaired_aggregates", -1), 1);
    if (rep)
        yajl_tree_free(rep);
    CHECK_INT(support_run(out, sizeof out, 0, check), 0);
    CHECK(strstr(out, "no drift") != NULL);
    for (int t = 0; t < M_TENANTS; t++)
        CHECK_INT(e2e_check_all(&m, t, viewer[t], 50), 0);
    /* And the listener goes on from the repaired document. */
    CHECK_INT(e2e_workload(&m, ingest, 500, NULL, NULL, &ws), 0);
    REQUIRE(e2e_wait_caught_up(viewer[0], 60000) == 0);
    CHECK_INT(e2e_check_all(&m, 0, viewer[0], 50), 0);
    CHECK_INT(support_run(out, sizeof out, 0, check), 0);

    free(x);
    store_close(&st);
    CHECK_INT(e2e_world_stop(&w), 0);
    e2e_model_free(&m);
    support_rmrf(w.dir);
    return check_finish();
}
