/* e2e_recompute_scope_test.c -- two things `sightline recompute` promises
 * and nothing else tested (issue 10, item 8), with the real server and its
 * listener running over a random workload:
 *
 * 1. Stale index fields (docs/documents.md: "a stale one ... is reported by
 *    recompute as drift of gsi1sk/gsi2sk when nothing else of the aggregate
 *    drifted, and --repair rewrites it"): one brand aggregate with a wrong
 *    gsi1sk and gsi2sk, another without its gsi2 pair.  The listings by count
 *    and mean show the damage; recompute names exactly those fields (exit 3);
 *    --repair rewrites them to the keys the model gives (built here from the
 *    counts and exact sums), and every listing is right again.
 * 2. `--tenant` touches only that tenant: aggregates of two tenants are
 *    damaged; `recompute --repair --tenant acme` repairs acme's, leaves every
 *    document of globex byte for byte and version for version as it was, and
 *    a full recompute still reports globex's (and only globex's) drift.
 *
 * Seeded (printed; SIGHTLINE_TEST_SEED replays). */
#include "tests/check.h"
#include "tests/e2e/e2e.h"

#include "store/store.h"

#define OPS 3000

static e2e_world w;
static e2e_model m;
static store *st;
static char out[65536];

/* ---- documents through the store port ---- */

/* What edit_doc does to the field at path. */
typedef enum { ADD_INT, SET_STR, DROP } edit_kind;

/* Copies src into dst with one edit at the dotted path (one level of
 * sub-document per dot); DROP at the top level removes every field named in
 * the space-separated list path.  Returns 1 when the field was found. */
static int edit_doc(const bson_t *src, bson_t *dst, const char *path, edit_kind kind, int64_t by,
                    const char *str)
{
    const char *dot = kind == DROP ? NULL : strchr(path, '.');
    size_t head = dot ? (size_t)(dot - path) : strlen(path);
    int found = 0;
    bson_iter_t it;
    REQUIRE(bson_iter_init(&it, src));
    while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        char word[64];
        snprintf(word, sizeof word, " %s ", k);
        char list[256];
        snprintf(list, sizeof list, " %s ", path);
        int here = kind == DROP ? strstr(list, word) != NULL
                                : strlen(k) == head && !strncmp(k, path, head);
        if (here && kind == DROP) {
            found = 1;
        } else if (here && !dot && kind == ADD_INT && BSON_ITER_HOLDS_INT64(&it)) {
            BSON_APPEND_INT64(dst, k, bson_iter_int64(&it) + by);
            found = 1;
        } else if (here && !dot && kind == SET_STR) {
            BSON_APPEND_UTF8(dst, k, str);
            found = 1;
        } else if (here && dot && BSON_ITER_HOLDS_DOCUMENT(&it)) {
            uint32_t len;
            const uint8_t *data;
            bson_t sub, inner;
            bson_iter_document(&it, &len, &data);
            REQUIRE(bson_init_static(&sub, data, len));
            BSON_APPEND_DOCUMENT_BEGIN(dst, k, &inner);
            found = edit_doc(&sub, &inner, dot + 1, kind, by, str);
            bson_append_document_end(dst, &inner);
        } else {
            bson_append_iter(dst, k, -1, &it);
        }
    }
    return found;
}

/* Rewrites aggregate (T#tenant#AGG, sk) with one edit, fenced on its version
 * (no listener write is lost: nobody writes meanwhile anyway). */
static void damage(const char *tenant, const char *sk, const char *path, edit_kind kind, int64_t by,
                   const char *str)
{
    char pk[64];
    snprintf(pk, sizeof pk, "T#%s#AGG", tenant);
    bson_t *doc = NULL, edited = BSON_INITIALIZER;
    bson_iter_t it;
    REQUIRE(store_get(st, STORE_AGGREGATES, pk, sk, &doc, NULL) == SL_OK);
    REQUIRE(bson_iter_init_find(&it, doc, "v") && BSON_ITER_HOLDS_INT64(&it));
    int64_t v = bson_iter_int64(&it);
    REQUIRE(edit_doc(doc, &edited, path, kind, by, str));
    CHECK_INT(
        store_put(st, STORE_AGGREGATES, &edited, (store_cond){STORE_COND_VERSION, v}, NULL, NULL),
        SL_OK);
    bson_destroy(&edited);
    bson_destroy(doc);
}

/* A string field of aggregate (T#tenant#AGG, sk) into out ("(absent)"). */
static void field_of(const char *tenant, const char *sk, const char *field, char *o, size_t cap)
{
    char pk[64];
    snprintf(pk, sizeof pk, "T#%s#AGG", tenant);
    bson_t *doc = NULL;
    bson_iter_t it;
    snprintf(o, cap, "(absent)");
    REQUIRE(store_get(st, STORE_AGGREGATES, pk, sk, &doc, NULL) == SL_OK);
    if (bson_iter_init_find(&it, doc, field) && BSON_ITER_HOLDS_UTF8(&it))
        snprintf(o, cap, "%s", bson_iter_utf8(&it, NULL));
    bson_destroy(doc);
}

/* Every aggregate document of a tenant: key, version and bytes. */
typedef struct snap {
    size_t n;
    char sk[512][160];
    int64_t v[512];
    char *bytes[512];
    uint32_t len[512];
} snap;

static void take(const char *tenant, snap *s)
{
    char pk[64], token[STORE_PAGE_TOKEN_MAX] = "";
    snprintf(pk, sizeof pk, "T#%s#AGG", tenant);
    s->n = 0;
    for (;;) {
        store_page page = {0};
        store_query_opts q = {.range = {STORE_RANGE_ALL, NULL, NULL},
                              .limit = 200,
                              .page_token = token[0] ? token : NULL};
        REQUIRE(store_query(st, STORE_AGGREGATES, pk, &q, &page, NULL) == SL_OK);
        for (size_t i = 0; i < page.count; i++) {
            REQUIRE(s->n < 512);
            snprintf(s->sk[s->n], sizeof s->sk[0], "%s", page.docs[i].sk);
            s->v[s->n] = page.docs[i].version;
            s->len[s->n] = page.docs[i].len;
            s->bytes[s->n] = malloc(page.docs[i].len);
            REQUIRE(s->bytes[s->n]);
            memcpy(s->bytes[s->n], page.docs[i].data, page.docs[i].len);
            s->n++;
        }
        int more = page.next_token != NULL;
        if (more)
            snprintf(token, sizeof token, "%s", page.next_token);
        store_page_free(&page);
        if (!more)
            break;
    }
}

static void snap_free(snap *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->bytes[i]);
    s->n = 0;
}

/* The documents of a and b that differ (key, version or bytes), each printed
 * when print is set; sk lists the ones that did, space-separated. */
static int differ(const snap *a, const snap *b, int print, char *sks, size_t cap)
{
    int n = 0;
    size_t used = 0;
    sks[0] = '\0';
    for (size_t i = 0, j = 0; i < a->n || j < b->n;) {
        int c = i >= a->n ? 1 : j >= b->n ? -1 : strcmp(a->sk[i], b->sk[j]);
        const char *sk = c <= 0 ? a->sk[i] : b->sk[j];
        int same = c == 0 && a->v[i] == b->v[j] && a->len[i] == b->len[j] &&
                   !memcmp(a->bytes[i], b->bytes[j], a->len[i]);
        if (!same) {
            n++;
            used += (size_t)snprintf(sks + used, used < cap ? cap - used : 0, "%s%s",
                                     used ? " " : "", sk);
            if (print)
                fprintf(stderr, "  %s: %s\n", sk, c < 0 ? "gone" : c > 0 ? "new" : "changed");
        }
        i += c <= 0;
        j += c >= 0;
    }
    return n;
}

/* ---- recompute ---- */

/* Runs `sightline recompute --store S ARGS...` into out; its exit code. */
static int recompute(const char *a1, const char *a2, const char *a3, const char *a4)
{
    const char *args[] = {"recompute", "--store", w.store, a1, a2, a3, a4, NULL};
    return support_run(out, sizeof out, 0, args);
}

/* ---- the model's listings ---- */
static const m_agg *sort_x;
static int sort_mean;

static int cmp_brand(const void *pa, const void *pb)
{
    int a = *(const int *)pa, b = *(const int *)pb, c;
    const m_agg *A = &sort_x[a], *B = &sort_x[b];
    if (sort_mean) {
        __int128 l = (__int128)A->m[0].sum * B->m[0].n, r = (__int128)B->m[0].sum * A->m[0].n;
        c = (l > r) - (l < r);
    } else {
        c = (A->count > B->count) - (A->count < B->count);
    }
    return c ? c : strcmp(m_brands[a], m_brands[b]);
}

/* 0 when GET /v1/brands?sort=..&order=asc (pages of 2) lists exactly the
 * model's order of tenant t; else prints the first difference. */
static int listing_right(int t, int by_mean, int print)
{
    m_expect *x = malloc(sizeof *x);
    REQUIRE(x);
    e2e_expect(&m, t, x);
    int want[M_BRANDS], n = 0, got = 0, diffs = 0;
    for (int b = 0; b < M_BRANDS; b++)
        if (x->brand[b].count)
            want[n++] = b;
    sort_x = x->brand;
    sort_mean = by_mean;
    qsort(want, (size_t)n, sizeof want[0], cmp_brand);
    char url[1600], cursor[1100] = "";
    for (int pages = 0; pages < 100; pages++) {
        snprintf(url, sizeof url, "/v1/brands?sort=%s&order=asc&limit=2%s%s",
                 by_mean ? "mean" : "count", cursor[0] ? "&cursor=" : "", cursor);
        REQUIRE(support_req(w.viewer[t], "GET", url, NULL, 0) == 200);
        yajl_val v = e2e_json(support_body(w.viewer[t]));
        yajl_val arr = e2e_get(v, "brands"), next = e2e_get(v, "next");
        REQUIRE(YAJL_IS_ARRAY(arr));
        for (size_t i = 0; i < arr->u.array.len; i++, got++) {
            const char *name = e2e_get_str(arr->u.array.values[i], "brand");
            if (got >= n || !name || strcmp(name, m_brands[want[got]])) {
                if (print && !diffs)
                    fprintf(stderr, "  %s by %s: #%d is %s, expected %s\n", m_tenants[t],
                            by_mean ? "mean" : "count", got, name ? name : "(none)",
                            got < n ? m_brands[want[got]] : "nothing");
                diffs++;
            }
        }
        int last = !YAJL_IS_STRING(next);
        if (!last)
            snprintf(cursor, sizeof cursor, "%s", YAJL_GET_STRING(next));
        yajl_tree_free(v);
        if (last)
            break;
    }
    if (got != n) {
        if (print)
            fprintf(stderr, "  %s by %s: %d brands listed, expected %d\n", m_tenants[t],
                    by_mean ? "mean" : "count", got, n);
        diffs++;
    }
    free(x);
    return diffs;
}

/* The index keys brand b of tenant t must carry, from the model: the count
 * zero-padded to 19 digits, and floor(sum * 10^12 / n) of memorability. */
static void want_keys(int t, int b, char gsi1sk[200], char gsi2sk[200])
{
    m_expect *x = malloc(sizeof *x);
    REQUIRE(x);
    e2e_expect(&m, t, x);
    const m_agg *a = &x->brand[b];
    REQUIRE(a->count > 0 && a->m[0].n > 0);
    unsigned __int128 k = (unsigned __int128)a->m[0].sum * 1000000000000ull / (uint64_t)a->m[0].n;
    snprintf(gsi1sk, 200, "%019lld#%s", (long long)a->count, m_brands[b]);
    snprintf(gsi2sk, 200, "%019llu#%s", (unsigned long long)k, m_brands[b]);
    free(x);
}

/* The drift rows of a --json --verbose report, as "tenant sk field live"
 * lines in order, into rows. */
static void drift_rows(yajl_val rep, char *rows, size_t cap)
{
    yajl_val arr = e2e_get(rep, "drift");
    size_t used = 0;
    rows[0] = '\0';
    for (size_t i = 0; YAJL_IS_ARRAY(arr) && i < arr->u.array.len; i++) {
        yajl_val r = arr->u.array.values[i], live = e2e_get(r, "live");
        used += (size_t)snprintf(rows + used, used < cap ? cap - used : 0, "%s %s %s %s\n",
                                 e2e_get_str(r, "tenant"), e2e_get_str(r, "aggregate"),
                                 e2e_get_str(r, "field"),
                                 YAJL_IS_STRING(live) ? YAJL_GET_STRING(live) : "(number)");
    }
}

/* ---- 1: stale index fields ---- */
static void test_stale_index(void)
{
    m_expect *x = malloc(sizeof *x);
    REQUIRE(x);
    e2e_expect(&m, 0, x);
    /* Two acme brands: the largest by count, and another. */
    int big = -1, other = -1;
    for (int b = 0; b < M_BRANDS; b++)
        if (x->brand[b].count && (big < 0 || x->brand[b].count > x->brand[big].count))
            big = b;
    for (int b = 0; b < M_BRANDS; b++)
        if (b != big && x->brand[b].count &&
            (other < 0 || x->brand[b].count < x->brand[other].count))
            other = b;
    REQUIRE(big >= 0 && other >= 0);
    free(x);
    char sk_big[200], sk_other[200], stale1[200], stale2[200];
    snprintf(sk_big, sizeof sk_big, "BRAND#%s", m_brands[big]);
    snprintf(sk_other, sizeof sk_other, "BRAND#%s", m_brands[other]);
    /* big claims no asset and a mean of 1; other leaves the mean index. */
    snprintf(stale1, sizeof stale1, "0000000000000000000#%s", m_brands[big]);
    snprintf(stale2, sizeof stale2, "1000000000000000000#%s", m_brands[big]);
    damage("acme", sk_big, "gsi1sk", SET_STR, 0, stale1);
    damage("acme", sk_big, "gsi2sk", SET_STR, 0, stale2);
    damage("acme", sk_other, "gsi2pk gsi2sk", DROP, 0, NULL);

    /* The listings read the index: they are wrong now; the numbers are not. */
    CHECK(listing_right(0, 0, 0) > 0);
    CHECK(listing_right(0, 1, 0) > 0);
    CHECK_INT(e2e_check_all(&m, 0, w.viewer[0], 50), 0);

    /* recompute names exactly the four fields. */
    CHECK_INT(recompute("--json", "--verbose", NULL, NULL), 3);
    yajl_val rep = e2e_json(out);
    REQUIRE(rep);
    CHECK_INT(e2e_get_int(rep, "drift_fields", -1), 4);
    CHECK_INT(e2e_get_int(rep, "drift_aggregates", -1), 2);
    char rows[4096], want[1024];
    drift_rows(rep, rows, sizeof rows);
    /* Rows come in key order of the aggregates, fields in layout order. */
    int big_first = strcmp(sk_big, sk_other) < 0;
    snprintf(want, sizeof want, "acme %s gsi1sk stale\nacme %s gsi2sk stale\n", sk_big, sk_big);
    char want_other[1024];
    snprintf(want_other, sizeof want_other, "acme %s gsi2pk stale\nacme %s gsi2sk stale\n",
             sk_other, sk_other);
    char full[4096];
    snprintf(full, sizeof full, "%s%s", big_first ? want : want_other,
             big_first ? want_other : want);
    CHECK_STR(rows, full);
    yajl_val aggs = e2e_get(rep, "aggregates");
    for (size_t i = 0; YAJL_IS_ARRAY(aggs) && i < aggs->u.array.len; i++) {
        const char *summary = e2e_get_str(aggs->u.array.values[i], "summary");
        const char *sk = e2e_get_str(aggs->u.array.values[i], "aggregate");
        CHECK(summary && sk);
        if (summary && sk)
            CHECK_STR(summary, !strcmp(sk, sk_big)
                                   ? "index fields stale or misplaced: gsi1sk, gsi2sk"
                                   : "index fields stale or misplaced: gsi2pk, gsi2sk");
    }
    yajl_tree_free(rep);
    /* The text report says it in one line per aggregate. */
    char line[400];
    CHECK_INT(recompute(NULL, NULL, NULL, NULL), 3);
    snprintf(line, sizeof line, "acme %s: index fields stale or misplaced: gsi1sk, gsi2sk\n",
             sk_big);
    CHECK(strstr(out, line) != NULL);

    /* --repair rewrites them to what the model gives. */
    CHECK_INT(recompute("--repair", "--json", NULL, NULL), 0);
    rep = e2e_json(out);
    CHECK_INT(e2e_get_int(rep, "repaired_aggregates", -1), 2);
    if (rep)
        yajl_tree_free(rep);
    const int victims[2] = {big, other};
    for (int i = 0; i < 2; i++) {
        char sk[200], k1[200], k2[200], got[200];
        snprintf(sk, sizeof sk, "BRAND#%s", m_brands[victims[i]]);
        want_keys(0, victims[i], k1, k2);
        field_of("acme", sk, "gsi1sk", got, sizeof got);
        CHECK_STR(got, k1);
        field_of("acme", sk, "gsi2sk", got, sizeof got);
        CHECK_STR(got, k2);
        field_of("acme", sk, "gsi1pk", got, sizeof got);
        CHECK_STR(got, "T#acme#AGG#BRANDS");
        field_of("acme", sk, "gsi2pk", got, sizeof got);
        CHECK_STR(got, "T#acme#AGG#BRANDS");
    }
    CHECK_INT(listing_right(0, 0, 1), 0);
    CHECK_INT(listing_right(0, 1, 1), 0);
    CHECK_INT(recompute(NULL, NULL, NULL, NULL), 0);
    CHECK(strstr(out, "no drift") != NULL);
}

/* ---- 2: --tenant ---- */
static int first_brand(int t, int skip)
{
    m_expect *x = malloc(sizeof *x);
    REQUIRE(x);
    e2e_expect(&m, t, x);
    int b = -1;
    for (int i = 0; i < M_BRANDS && b < 0; i++)
        if (x->brand[i].count && i != skip)
            b = i;
    free(x);
    REQUIRE(b >= 0);
    return b;
}

static void test_tenant_scope(void)
{
    char sk_a[200], sk_g1[200], sk_g2[200], changed[8192], stale[200];
    int a = first_brand(0, -1), g1 = first_brand(1, -1), g2 = first_brand(1, g1);
    snprintf(sk_a, sizeof sk_a, "BRAND#%s", m_brands[a]);
    snprintf(sk_g1, sizeof sk_g1, "BRAND#%s", m_brands[g1]);
    snprintf(sk_g2, sizeof sk_g2, "BRAND#%s", m_brands[g2]);
    snprintf(stale, sizeof stale, "0000000000000000000#%s", m_brands[g2]);
    damage("acme", sk_a, "metrics.memorability.sum", ADD_INT, 7, NULL);
    damage("globex", sk_g1, "metrics.memorability.sum", ADD_INT, 5, NULL);
    damage("globex", sk_g2, "gsi1sk", SET_STR, 0, stale);
    static snap acme0, acme1, globex0, globex1;
    take("acme", &acme0);
    take("globex", &globex0);
    CHECK(globex0.n > 0);

    /* Repair acme alone. */
    CHECK_INT(recompute("--tenant", "acme", "--repair", "--json"), 0);
    yajl_val rep = e2e_json(out);
    REQUIRE(rep);
    CHECK_INT(e2e_get_int(rep, "tenants", -1), 1);
    CHECK_INT(e2e_get_int(rep, "repaired_aggregates", -1), 1);
    CHECK_INT(e2e_get_int(rep, "drift_aggregates", -1), 1);
    CHECK_STR(e2e_get_str(rep, "tenant"), "acme");
    yajl_val aggs = e2e_get(rep, "aggregates");
    CHECK(YAJL_IS_ARRAY(aggs) && aggs->u.array.len == 1);
    if (YAJL_IS_ARRAY(aggs) && aggs->u.array.len == 1) {
        CHECK_STR(e2e_get_str(aggs->u.array.values[0], "tenant"), "acme");
        CHECK_STR(e2e_get_str(aggs->u.array.values[0], "aggregate"), sk_a);
    }
    yajl_tree_free(rep);
    take("acme", &acme1);
    take("globex", &globex1);
    /* globex: every document as it was, byte for byte and version for version. */
    int n = differ(&globex0, &globex1, 1, changed, sizeof changed);
    CHECK_INT(n, 0);
    /* acme: the repaired aggregate alone changed. */
    n = differ(&acme0, &acme1, 0, changed, sizeof changed);
    CHECK_INT(n, 1);
    CHECK_STR(changed, sk_a);
    CHECK_INT(e2e_check_all(&m, 0, w.viewer[0], 50), 0);

    /* A full run still finds globex's two, and only those. */
    CHECK_INT(recompute("--json", "--verbose", NULL, NULL), 3);
    rep = e2e_json(out);
    REQUIRE(rep);
    CHECK_INT(e2e_get_int(rep, "drift_aggregates", -1), 2);
    CHECK_INT(e2e_get_int(rep, "repaired_aggregates", -1), 0);
    char rows[4096];
    drift_rows(rep, rows, sizeof rows);
    CHECK(strstr(rows, "acme") == NULL);
    char want1[400], want2[400];
    snprintf(want1, sizeof want1, "globex %s metrics.memorability.sum (number)\n", sk_g1);
    snprintf(want2, sizeof want2, "globex %s gsi1sk stale\n", sk_g2);
    CHECK(strstr(rows, want1) != NULL);
    CHECK(strstr(rows, want2) != NULL);
    yajl_tree_free(rep);
    CHECK_INT(recompute("--tenant", "globex", NULL, NULL), 3);
    CHECK_INT(recompute("--tenant", "acme", NULL, NULL), 0);
    snap_free(&globex1);
    take("globex", &globex1);
    CHECK_INT(differ(&globex0, &globex1, 1, changed, sizeof changed), 0); /* checks write nothing */

    /* And a full repair fixes the rest. */
    CHECK_INT(recompute("--repair", "--json", NULL, NULL), 0);
    rep = e2e_json(out);
    CHECK_INT(e2e_get_int(rep, "repaired_aggregates", -1), 2);
    if (rep)
        yajl_tree_free(rep);
    CHECK_INT(recompute(NULL, NULL, NULL, NULL), 0);
    for (int t = 0; t < M_TENANTS; t++) {
        CHECK_INT(e2e_check_all(&m, t, w.viewer[t], 50), 0);
        CHECK_INT(listing_right(t, 0, 1), 0);
        CHECK_INT(listing_right(t, 1, 1), 0);
    }
    snap_free(&acme0);
    snap_free(&acme1);
    snap_free(&globex0);
    snap_free(&globex1);
}

int main(void)
{
    uint64_t seed = e2e_seed();
    fprintf(stderr, "e2e_recompute_scope_test: seed %llu\n", (unsigned long long)seed);
    REQUIRE(e2e_world_start(&w, NULL) == 0);
    REQUIRE(e2e_model_init(&m, 400, seed) == 0);
    e2e_workload_stats ws;
    CHECK_INT(e2e_workload(&m, w.ingest, OPS, NULL, NULL, &ws), 0);
    REQUIRE(e2e_wait_caught_up(w.viewer[0], 60000) == 0);
    for (int t = 0; t < M_TENANTS; t++)
        CHECK_INT(e2e_check_all(&m, t, w.viewer[t], 50), 0);
    CHECK_INT(recompute(NULL, NULL, NULL, NULL), 0);
    REQUIRE(store_open(w.store, NULL, &st, NULL) == SL_OK);

    test_stale_index();
    test_tenant_scope();

    store_close(&st);
    CHECK_INT(e2e_world_stop(&w), 0);
    e2e_model_free(&m);
    support_rmrf(w.dir);
    return check_finish();
}
