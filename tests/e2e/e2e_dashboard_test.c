/* e2e_dashboard_test.c -- the dashboard contract against the real server:
 * answer shapes; GET /v1/brands sorted by brand, count and mean, both orders,
 * paged with cursors without skips or repeats; campaigns and the asset
 * drill-down paged; 404 for a brand with no asset left; viewer and admin
 * allowed, ingest and staff forbidden, no key 401, another tenant's brand
 * 404; bad parameters 400 naming them; the listener's metrics; the lease
 * released on shutdown; --no-listener with a separate `sightline listen`. */
#include "tests/check.h"
#include "tests/e2e/e2e.h"

#include <math.h>
#include <signal.h>

#include "store/store.h"

#define NAMED 10 /* acme's brands 0..9 keep assets; 10 and 11 lose theirs */

static e2e_model m;
static m_expect x;
static char dir[128], store_uri[200];

/* ---- the data set ---- */

/* Acme: brand b (< NAMED) has 1 + (3b mod 5) assets, all with the same
 * memorability (so means tie in groups of b mod 4) plus "logo" on some;
 * brands 10 and 11 have one asset each.  Globex: two assets of brand 2. */
static void build(void)
{
    static const char *const mem[] = {"0.1", "0.3", "0.5", "0.7"};
    size_t i = 0;
    REQUIRE(e2e_model_init(&m, 64, 7) == 0);
    for (int b = 0; b < M_BRANDS; b++) {
        int n = b < NAMED ? 1 + (3 * b) % 5 : 1;
        for (int j = 0; j < n; j++, i++) {
            m_asset *a = &m.assets[0][i];
            a->present = 1;
            a->brand = b;
            a->campaign = j % M_CAMPAIGNS;
            a->sector = (b + j) % M_SECTORS;
            snprintf(a->score[0], sizeof a->score[0], "%s", mem[b % 4]);
            if (j % 2 == 0)
                snprintf(a->score[2], sizeof a->score[2], "0.%d5", j);
            for (int k = 0; k < M_METRICS; k++)
                a->micro[k] = a->score[k][0] ? e2e_micro_of(a->score[k]) : 0;
        }
    }
    for (int j = 0; j < 2; j++) {
        m_asset *a = &m.assets[1][j];
        a->present = 1;
        a->brand = 2;
        snprintf(a->score[0], sizeof a->score[0], "0.9%d", j);
        a->micro[0] = e2e_micro_of(a->score[0]);
    }
}

/* Sends tenant t's present assets as one NDJSON batch. */
static void send_all(support_client *c, int t)
{
    static char body[64 * 1024];
    size_t len = 0;
    char id[16];
    for (size_t i = 0; i < m.nassets; i++)
        if (m.assets[t][i].present) {
            e2e_asset_id(i, id);
            len += e2e_asset_json(&m.assets[t][i], id, 1, body + len, sizeof body - len);
            body[len++] = '\n';
        }
    REQUIRE(support_req(c, "POST", "/v1/assets:batch", body, len) == 200);
}

/* ---- expected orders ---- */
typedef enum { BY_NAME, BY_COUNT, BY_MEAN } sort_kind;
static sort_kind sorting;

/* -1, 0, 1 as brand a sorts before, with, after brand b ascending. */
static int cmp_brand(const void *pa, const void *pb)
{
    int a = *(const int *)pa, b = *(const int *)pb, c = 0;
    const m_agg *A = &x.brand[a], *B = &x.brand[b];
    if (sorting == BY_COUNT) {
        c = (A->count > B->count) - (A->count < B->count);
    } else if (sorting == BY_MEAN) { /* exact: sum_a / n_a vs sum_b / n_b */
        __int128 l = (__int128)A->m[0].sum * B->m[0].n, r = (__int128)B->m[0].sum * A->m[0].n;
        c = (l > r) - (l < r);
    }
    return c ? c : strcmp(m_brands[a], m_brands[b]);
}

/* Pages through path (limit in it) and compares the names, in order, with
 * want[0..n); also compares each item with the model.  Returns the "next"
 * of the first page into first_next (may be NULL). */
static void check_listing(support_client *c, const char *path, const int *want, int n,
                          char *first_next, size_t cap)
{
    char url[1600], cursor[1100] = "";
    int got = 0, pages = 0;
    for (;;) {
        snprintf(url, sizeof url, "%s%s%s", path, cursor[0] ? "&cursor=" : "", cursor);
        REQUIRE(support_req(c, "GET", url, NULL, 0) == 200);
        yajl_val v = e2e_json(support_body(c));
        yajl_val arr = e2e_get(v, "brands"), next = e2e_get(v, "next");
        REQUIRE(YAJL_IS_ARRAY(arr) && (YAJL_IS_NULL(next) || YAJL_IS_STRING(next)));
        for (size_t i = 0; i < arr->u.array.len; i++, got++) {
            const char *name = e2e_get_str(arr->u.array.values[i], "brand");
            CHECK(got < n);
            if (got < n) {
                CHECK_STR(name, m_brands[want[got]]);
                CHECK_INT(e2e_compare_agg(url, arr->u.array.values[i], &x.brand[want[got]]), 0);
            }
        }
        if (pages++ == 0 && first_next)
            snprintf(first_next, cap, "%s", YAJL_IS_STRING(next) ? next->u.string : "");
        int last = YAJL_IS_NULL(next);
        if (!last)
            snprintf(cursor, sizeof cursor, "%s", next->u.string);
        yajl_tree_free(v);
        if (last)
            break;
        REQUIRE(pages < 100);
    }
    CHECK_INT(got, n);
}

static void test_sorting(support_client *viewer)
{
    int order[M_BRANDS], n = 0;
    char path[1400], next_count[1100], next_mean[1100];
    for (int b = 0; b < M_BRANDS; b++)
        if (x.brand[b].count > 0)
            order[n++] = b;
    static const char *const sorts[] = {"brand", "count", "mean"};
    for (int s = 0; s < 3; s++) {
        sorting = (sort_kind)s;
        qsort(order, (size_t)n, sizeof order[0], cmp_brand);
        for (int limit = 1; limit <= 4; limit += 3) {
            snprintf(path, sizeof path, "/v1/brands?sort=%s&order=asc&limit=%d", sorts[s], limit);
            check_listing(viewer, path, order, n, s == 1 ? next_count : next_mean,
                          sizeof next_count);
            int rev[M_BRANDS];
            for (int i = 0; i < n; i++)
                rev[i] = order[n - 1 - i];
            snprintf(path, sizeof path, "/v1/brands?sort=%s&order=desc&limit=%d", sorts[s], limit);
            check_listing(viewer, path, rev, n, NULL, 0);
        }
    }
    /* Defaults: by brand ascending; by count and mean descending. */
    sorting = BY_NAME;
    qsort(order, (size_t)n, sizeof order[0], cmp_brand);
    check_listing(viewer, "/v1/brands", order, n, NULL, 0);
    sorting = BY_COUNT;
    qsort(order, (size_t)n, sizeof order[0], cmp_brand);
    int rev[M_BRANDS];
    for (int i = 0; i < n; i++)
        rev[i] = order[n - 1 - i];
    check_listing(viewer, "/v1/brands?sort=count&limit=5", rev, n, NULL, 0);
    /* A cursor works only for the listing that made it. */
    REQUIRE(next_count[0] && next_mean[0]);
    snprintf(path, sizeof path, "/v1/brands?sort=mean&order=asc&limit=4&cursor=%s", next_count);
    CHECK_INT(support_req(viewer, "GET", path, NULL, 0), 400);
    yajl_val v = e2e_json(support_body(viewer));
    CHECK_STR(e2e_get_str(v, "field"), "cursor");
    if (v)
        yajl_tree_free(v);
    snprintf(path, sizeof path, "/v1/brands?sort=mean&order=desc&limit=4&cursor=%s", next_mean);
    CHECK_INT(support_req(viewer, "GET", path, NULL, 0), 400);
}

/* ---- shapes, drill-down, 404s, roles, errors ---- */
static void expect_problem(support_client *c, const char *path, long status, const char *field)
{
    CHECK_INT(support_req(c, "GET", path, NULL, 0), status);
    yajl_val v = e2e_json(support_body(c));
    CHECK(v != NULL);
    CHECK_INT(e2e_get_int(v, "status", 0), status);
    if (field)
        CHECK_STR(e2e_get_str(v, "field"), field);
    if (v)
        yajl_tree_free(v);
}

static void test_shapes(support_client *viewer)
{
    REQUIRE(support_req(viewer, "GET", "/v1/brands/Nike", NULL, 0) == 200);
    yajl_val v = e2e_json(support_body(viewer));
    CHECK_STR(e2e_get_str(v, "brand"), "Nike");
    CHECK_INT(e2e_get_int(v, "count", -1), x.brand[0].count);
    yajl_val mem = e2e_get(e2e_get(v, "metrics"), "memorability");
    static const char *const fields[] = {"mean", "stddev", "median", "p10", "p90"};
    for (int i = 0; i < 5; i++)
        CHECK(YAJL_IS_NUMBER(e2e_get(mem, fields[i])));
    CHECK(YAJL_IS_OBJECT(e2e_get(e2e_get(v, "metrics"), "logo")));
    CHECK(e2e_get(mem, "histogram") == NULL); /* only when asked for */
    CHECK_INT(e2e_compare_agg("GET /v1/brands/Nike", v, &x.brand[0]), 0);
    yajl_tree_free(v);
    REQUIRE(support_req(viewer, "GET", "/v1/brands/Nike?histogram=true", NULL, 0) == 200);
    v = e2e_json(support_body(viewer));
    mem = e2e_get(e2e_get(v, "metrics"), "memorability");
    CHECK(YAJL_IS_ARRAY(e2e_get(mem, "histogram")));
    CHECK_INT(e2e_compare_agg("GET /v1/brands/Nike?histogram=true", v, &x.brand[0]), 0);
    yajl_tree_free(v);

    REQUIRE(support_req(viewer, "GET", "/v1/brands/Adidas/campaigns?limit=1", NULL, 0) == 200);
    v = e2e_json(support_body(viewer));
    yajl_val arr = e2e_get(v, "campaigns");
    REQUIRE(YAJL_IS_ARRAY(arr) && arr->u.array.len == 1);
    yajl_val c0 = arr->u.array.values[0];
    CHECK_STR(e2e_get_str(c0, "brand"), "Adidas");
    const char *cname = e2e_get_str(c0, "campaign");
    int ci = -1;
    for (int c = 0; c < M_CAMPAIGNS; c++)
        if (cname && !strcmp(cname, m_campaigns[c]))
            ci = c;
    REQUIRE(ci >= 0);
    CHECK_INT(e2e_compare_agg("first campaign of Adidas", c0, &x.campaign[1][ci]), 0);
    CHECK(YAJL_IS_STRING(e2e_get(v, "next"))); /* Adidas has 4 assets in 4 campaigns */
    yajl_tree_free(v);

    REQUIRE(support_req(viewer, "GET", "/v1/sectors/shoes", NULL, 0) == 200);
    v = e2e_json(support_body(viewer));
    CHECK_STR(e2e_get_str(v, "sector"), "shoes");
    CHECK_INT(e2e_compare_agg("sector shoes", v, &x.sector[1]), 0);
    yajl_tree_free(v);
}

/* The drill-down lists brand b's assets once each, by campaign then id. */
static void test_assets(support_client *viewer, int b, const char *order)
{
    char want[16][160], url[1600], cursor[1100] = "", eb[64];
    int n = 0, got = 0;
    for (size_t i = 0; i < m.nassets; i++) {
        const m_asset *a = &m.assets[0][i];
        if (a->present && a->brand == b && n < 16) {
            char id[16];
            e2e_asset_id(i, id);
            snprintf(want[n++], sizeof want[0], "%s#ASSET#%s", m_campaigns[a->campaign], id);
        }
    }
    qsort(want, (size_t)n, sizeof want[0], (int (*)(const void *, const void *))strcmp);
    int desc = !strcmp(order, "desc");
    support_escape(m_brands[b], eb, sizeof eb);
    for (int pages = 0; pages < 50; pages++) {
        snprintf(url, sizeof url, "/v1/brands/%s/assets?limit=2&order=%s%s%s", eb, order,
                 cursor[0] ? "&cursor=" : "", cursor);
        REQUIRE(support_req(viewer, "GET", url, NULL, 0) == 200);
        yajl_val v = e2e_json(support_body(viewer));
        yajl_val arr = e2e_get(v, "assets"), next = e2e_get(v, "next");
        REQUIRE(YAJL_IS_ARRAY(arr));
        CHECK(arr->u.array.len <= 2);
        for (size_t i = 0; i < arr->u.array.len; i++, got++) {
            yajl_val a = arr->u.array.values[i];
            char key[160];
            snprintf(key, sizeof key, "%s#ASSET#%s", e2e_get_str(a, "campaign"),
                     e2e_get_str(a, "asset"));
            CHECK_STR(e2e_get_str(a, "brand"), m_brands[b]);
            CHECK(got < n && !strcmp(key, want[desc ? n - 1 - got : got]));
            CHECK(YAJL_IS_NUMBER(e2e_get(a, "memorability")));
        }
        int last = !YAJL_IS_STRING(next);
        if (!last)
            snprintf(cursor, sizeof cursor, "%s", next->u.string);
        yajl_tree_free(v);
        if (last)
            break;
    }
    CHECK_INT(got, n);
}

static void test_gone(support_client *ingest, support_client *viewer)
{
    /* Levi's loses its asset to a delete, Coca-Cola to a reassignment. */
    char path[64], body[768], id[16];
    for (size_t i = 0; i < m.nassets; i++) {
        m_asset *a = &m.assets[0][i];
        if (!a->present || a->brand < NAMED)
            continue;
        e2e_asset_id(i, id);
        snprintf(path, sizeof path, "/v1/assets/%s", id);
        if (a->brand == 10) {
            CHECK_INT(support_req(ingest, "DELETE", path, NULL, 0), 204);
            a->present = 0;
        } else {
            a->brand = 0;
            e2e_asset_json(a, id, 0, body, sizeof body);
            CHECK_INT(support_req(ingest, "PUT", path, body, strlen(body)), 200);
        }
    }
    REQUIRE(e2e_wait_caught_up(viewer, 30000) == 0);
    e2e_expect(&m, 0, &x);
    CHECK_INT(x.brand[10].count, 0);
    CHECK_INT(x.brand[11].count, 0);
    expect_problem(viewer, "/v1/brands/Levi%27s", 404, NULL);
    expect_problem(viewer, "/v1/brands/Coca-Cola", 404, NULL);
    expect_problem(viewer, "/v1/brands/Coca-Cola/campaigns", 404, NULL);
    expect_problem(viewer, "/v1/brands/Coca-Cola/assets", 404, NULL);
    expect_problem(viewer, "/v1/brands/Never-Seen", 404, NULL);
    CHECK_INT(e2e_check_all(&m, 0, viewer, 3), 0);
}

static void test_access(const char *url, const char *keys[5])
{
    /* keys: ingest, staff, viewer, admin (acme), viewer (globex) */
    support_client *c = support_client_new(url, NULL);
    REQUIRE(c != NULL);
    CHECK_INT(support_req(c, "GET", "/v1/brands/Nike", NULL, 0), 401);
    support_client_set_key(c, keys[0]);
    CHECK_INT(support_req(c, "GET", "/v1/brands/Nike", NULL, 0), 403);
    CHECK_INT(support_req(c, "GET", "/v1/brands", NULL, 0), 403);
    support_client_set_key(c, keys[1]);
    CHECK_INT(support_req(c, "GET", "/v1/brands/Nike/campaigns", NULL, 0), 403);
    support_client_set_key(c, keys[2]);
    CHECK_INT(support_req(c, "GET", "/v1/brands/Nike", NULL, 0), 200);
    support_client_set_key(c, keys[3]);
    CHECK_INT(support_req(c, "GET", "/v1/brands/Nike", NULL, 0), 200);
    CHECK_INT(support_req(c, "GET", "/v1/brands/Nike/assets", NULL, 0), 200);
    /* Globex sees its own Puma and nothing of acme's. */
    support_client_set_key(c, keys[4]);
    CHECK_INT(support_req(c, "GET", "/v1/brands/Nike", NULL, 0), 404);
    CHECK_INT(support_req(c, "GET", "/v1/brands/Nike/campaigns", NULL, 0), 404);
    CHECK_INT(support_req(c, "GET", "/v1/brands/Nike/assets", NULL, 0), 404);
    CHECK_INT(support_req(c, "GET", "/v1/brands/Puma", NULL, 0), 200);
    CHECK_INT(e2e_check_all(&m, 1, c, 10), 0);
    support_client_free(&c);
}

static void test_errors(support_client *viewer)
{
    expect_problem(viewer, "/v1/brands?sort=size", 400, "sort");
    expect_problem(viewer, "/v1/brands?sort=count&order=up", 400, "order");
    expect_problem(viewer, "/v1/brands?limit=0", 400, "limit");
    expect_problem(viewer, "/v1/brands?limit=501", 400, "limit");
    expect_problem(viewer, "/v1/brands?cursor=zz", 400, "cursor");
    expect_problem(viewer, "/v1/brands?cursor=41", 400, "cursor");
    expect_problem(viewer, "/v1/brands/Nike/campaigns?order=sideways", 400, "order");
    expect_problem(viewer, "/v1/brands/Nike/assets?cursor=4142", 400, "cursor");
    expect_problem(viewer, "/v1/brands/Nike?histogram=maybe", 400, "histogram");
    /* A name that cannot be a key component is refused, not looked up. */
    CHECK_INT(support_req(viewer, "GET", "/v1/brands/a%23b", NULL, 0), 400);
}

static void test_metrics(support_client *c)
{
    static const char *const present[] = {"sightline_feed_behind_events",
                                          "sightline_feed_lag_seconds",
                                          "sightline_listener_applied_events_per_second",
                                          "sightline_listener_commits_total",
                                          "sightline_listener_apply_latency_seconds_count",
                                          "sightline_listener_feed_gone"};
    double v = -1;
    REQUIRE(support_req(c, "GET", "/metrics", NULL, 0) == 200);
    const char *body = support_body(c);
    for (size_t i = 0; i < sizeof present / sizeof present[0]; i++)
        CHECK(support_metric(body, present[i], &v) == 0);
    CHECK(support_metric(body, "sightline_listener_running", &v) == 0 && v == 1);
    CHECK(support_metric(body, "sightline_listener_lease_held", &v) == 0 && v == 1);
    CHECK(support_metric(body, "sightline_listener_events_applied_total", &v) == 0 && v >= 36);
    CHECK(support_metric(body, "sightline_feed_behind_events", &v) == 0 && v == 0);
    CHECK(strstr(body, "# TYPE sightline_listener_apply_latency_seconds histogram") != NULL);
}

/* After a clean stop the listener's lease is gone, so another takes over at once. */
static void check_lease_released(void)
{
    store *st = NULL;
    bson_t *doc = NULL;
    REQUIRE(store_open(store_uri, NULL, &st, NULL) == SL_OK);
    CHECK_INT(store_get(st, STORE_AGGREGATES, "SYS#ENGINE", "LEASE#aggregates", &doc, NULL),
              SL_ENOTFOUND);
    if (doc)
        bson_destroy(doc);
    store_close(&st);
}

/* --no-listener: writes wait in the feed until `sightline listen` applies them. */
static void test_no_listener(const char *ingest_key, const char *viewer_key)
{
    support_server srv;
    const char *extra[] = {"--no-listener", NULL};
    char body[768], log[200];
    double v = -1;
    REQUIRE(support_server_init(&srv, dir, store_uri) == 0 &&
            support_server_startv(&srv, extra) == 0);
    support_client *in = support_client_new(srv.url, ingest_key),
                   *view = support_client_new(srv.url, viewer_key);
    REQUIRE(in && view);
    m_asset *a = &m.assets[0][m.nassets - 1];
    REQUIRE(!a->present);
    *a = m.assets[0][0];
    e2e_asset_json(a, "as-000063", 0, body, sizeof body);
    CHECK_INT(support_req(in, "PUT", "/v1/assets/as-000063", body, strlen(body)), 201);
    REQUIRE(support_req(view, "GET", "/metrics", NULL, 0) == 200);
    CHECK(support_metric(support_body(view), "sightline_listener_running", &v) == 0 && v == 0);
    CHECK(support_metric(support_body(view), "sightline_feed_behind_events", &v) == 0 && v >= 1);
    CHECK(strstr(support_body(view), "sightline_listener_lease_held") == NULL);
    fprintf(stderr, "e2e_dashboard_test: differences expected below (not applied yet):\n");
    CHECK_INT(e2e_check_all(&m, 0, view, 50) > 0, 1);
    snprintf(log, sizeof log, "%s/listen.log", dir);
    const char *args[] = {"listen", "--store", store_uri, NULL};
    pid_t l = support_spawn(log, log, 0, args);
    REQUIRE(l > 0);
    REQUIRE(e2e_wait_caught_up(view, 30000) == 0);
    CHECK_INT(e2e_check_all(&m, 0, view, 50), 0);
    support_kill(l, SIGTERM);
    CHECK_INT(support_wait(l, 20000), 0);
    support_client_free(&in);
    support_client_free(&view);
    CHECK_INT(support_server_stop(&srv), 0);
    check_lease_released();
}

int main(void)
{
    static const char *const roles[] = {"ingest", "staff", "viewer", "admin"};
    char keys[5][128];
    const char *key_ptrs[5];
    support_server srv;
    REQUIRE(support_tmpdir(dir, "e2e") == 0);
    snprintf(store_uri, sizeof store_uri, "sqlite:%s/sl.db", dir);
    for (int t = 0; t < M_TENANTS; t++)
        REQUIRE(support_tenant(store_uri, m_tenants[t], "brand-client") == 0);
    for (int r = 0; r < 4; r++)
        REQUIRE(support_key(store_uri, "acme", roles[r], keys[r]) == 0);
    REQUIRE(support_key(store_uri, "globex", "viewer", keys[4]) == 0);
    char globex_ingest[128];
    REQUIRE(support_key(store_uri, "globex", "ingest", globex_ingest) == 0);
    for (int i = 0; i < 5; i++)
        key_ptrs[i] = keys[i];
    REQUIRE(support_server_init(&srv, dir, store_uri) == 0 &&
            support_server_startv(&srv, NULL) == 0);
    support_client *ingest = support_client_new(srv.url, keys[0]);
    support_client *viewer = support_client_new(srv.url, keys[2]);
    support_client *gingest = support_client_new(srv.url, globex_ingest);
    REQUIRE(ingest && viewer && gingest);

    CHECK_INT(e2e_oracle_selftest(), 0);
    build();
    send_all(ingest, 0);
    send_all(gingest, 1);
    REQUIRE(e2e_wait_caught_up(viewer, 30000) == 0);
    e2e_expect(&m, 0, &x);
    CHECK_INT(e2e_check_all(&m, 0, viewer, 4), 0);
    test_shapes(viewer);
    test_sorting(viewer);
    test_assets(viewer, 3, "asc");  /* H&M, 5 assets */
    test_assets(viewer, 8, "desc"); /* Uniqlo, 5 assets */
    test_access(srv.url, key_ptrs);
    test_errors(viewer);
    test_gone(ingest, viewer);
    e2e_expect(&m, 0, &x);
    test_sorting(viewer); /* without the brands that lost every asset */
    test_metrics(viewer);

    support_client_free(&ingest);
    support_client_free(&viewer);
    support_client_free(&gingest);
    CHECK_INT(support_server_stop(&srv), 0);
    check_lease_released();
    test_no_listener(keys[0], keys[2]);
    e2e_model_free(&m);
    support_rmrf(dir);
    return check_finish();
}
