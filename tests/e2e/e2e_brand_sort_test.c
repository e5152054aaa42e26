/* e2e_brand_sort_test.c -- GET /v1/brands?sort=count|mean under random
 * writes (issue 10, item 8): many brands, random inserts, rescores,
 * reassignments between brands and deletes through the real `sightline
 * serve` with its listener running; after each round, once the listener has
 * caught up, every listing by count and by mean, ascending and descending,
 * paged with small limits, must be exactly the model's order (count, or the
 * exact mean by cross multiplication; ties by brand name, byte order; the
 * descending order the reverse), with each brand's count and sum.  Scores
 * come from a few values (half-micro ties among them), so counts and means
 * tie often.  Meanwhile a second tenant that nobody writes is listed in the
 * middle of each round and must stay exact.  Seeded (printed;
 * SIGHTLINE_TEST_SEED replays).  Argument: rounds (default 8; ctest runs 16). */
#include "tests/check.h"
#include "tests/e2e/e2e.h"

#define NBRANDS 60
#define NIDS    500
#define OPS     400 /* per round */
#define GBRANDS 15  /* the quiet tenant's */

typedef struct sasset {
    int present, brand;
    int score; /* index into scores[] */
} sasset;

/* Few values, so that means tie; micro-units by the rule of docs/formats.md
 * (a half away from zero), written down. */
static const struct {
    const char *text;
    int64_t micro;
} scores[] = {{"0", 0},           {"1", 1000000},        {"0.25", 250000},
              {"0.5", 500000},    {"0.0000005", 1},      {"0.0000015", 2},
              {"5e-7", 1},        {"0.7500005", 750001}, {"0.3333333", 333333},
              {"0.0001245", 125}, {"0.99999949", 999999}};
#define NSCORES ((int)(sizeof scores / sizeof scores[0]))

static char names[NBRANDS][32];
static sasset acme[NIDS], globex[NIDS];
static uint64_t rng;

static uint32_t below(uint32_t n)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (uint32_t)(((rng * 2685821657736338717ull) >> 32) % n);
}

/* Names that sort in byte order unlike in any locale: case, punctuation,
 * spaces, UTF-8. */
static void make_names(void)
{
    static const char *const forms[] = {"brand %02d", "Brand%02d",    "b-%02d",
                                        "b.%02d",     "\xc3\xa9%02d", "z'%02d"};
    for (int i = 0; i < NBRANDS; i++)
        snprintf(names[i], sizeof names[i], forms[i % 6], i / 6);
}

/* ---- the model's order ---- */
typedef struct bagg {
    int64_t count, sum;
} bagg;

static void model_aggs(const sasset *as, bagg out[NBRANDS])
{
    memset(out, 0, NBRANDS * sizeof *out);
    for (int i = 0; i < NIDS; i++)
        if (as[i].present) {
            out[as[i].brand].count++;
            out[as[i].brand].sum += scores[as[i].score].micro;
        }
}

static const bagg *sort_aggs;
static int sort_by_mean;

/* Ascending: count, or the exact mean (every asset carries memorability, so
 * n = count); ties by brand name, byte order. */
static int cmp_brand(const void *pa, const void *pb)
{
    int a = *(const int *)pa, b = *(const int *)pb, c;
    const bagg *A = &sort_aggs[a], *B = &sort_aggs[b];
    if (sort_by_mean) {
        __int128 l = (__int128)A->sum * B->count, r = (__int128)B->sum * A->count;
        c = (l > r) - (l < r);
    } else {
        c = (A->count > B->count) - (A->count < B->count);
    }
    return c ? c : strcmp(names[a], names[b]);
}

/* ---- writes ---- */
static void asset_line(const sasset *a, int id, int with_id, char *out, size_t cap)
{
    char idpart[32] = "";
    if (with_id)
        snprintf(idpart, sizeof idpart, "\"asset\":\"as-%04d\",", id);
    snprintf(out, cap,
             "{%s\"client\":\"cl\",\"brand\":\"%s\",\"campaign\":\"c1\",\"sector\":\"s1\","
             "\"media_type\":\"image\",\"memorability\":%s,\"saliency\":{}}",
             idpart, names[a->brand], scores[a->score].text);
}

typedef struct batch {
    char body[NIDS * 256];
    size_t len;
    int n, ids[NIDS];
    sasset next[NIDS];
    char busy[NIDS];
} batch;

static int flush(support_client *c, sasset *as, batch *b)
{
    int bad = 0;
    if (b->n == 0)
        return 0;
    long s = support_req(c, "POST", "/v1/assets:batch", b->body, b->len);
    yajl_val v = s == 200 ? e2e_json(support_body(c)) : NULL;
    if (!v || e2e_get_int(v, "assets", -1) != b->n) {
        fprintf(stderr, "a batch of %d lines answered %ld: %.300s\n", b->n, s, support_body(c));
        bad++;
    } else {
        for (int i = 0; i < b->n; i++)
            as[b->ids[i]] = b->next[i];
    }
    if (v)
        yajl_tree_free(v);
    memset(b->busy, 0, sizeof b->busy);
    b->n = 0;
    b->len = 0;
    return bad;
}

/* One random operation on tenant `as` through client c. */
static int step(support_client *c, sasset *as, batch *b)
{
    int id = (int)below(NIDS), bad = 0;
    char line[256], path[64];
    if (b->busy[id])
        return flush(c, as, b);
    sasset next = as[id];
    uint32_t r = below(100);
    if (as[id].present && r < 15) { /* delete: the batch first, to keep the order */
        bad += flush(c, as, b);
        snprintf(path, sizeof path, "/v1/assets/as-%04d", id);
        long s = support_req(c, "DELETE", path, NULL, 0);
        if (s == 204) {
            as[id].present = 0;
        } else {
            fprintf(stderr, "DELETE %s answered %ld\n", path, s);
            bad++;
        }
        return bad;
    }
    if (!as[id].present) { /* insert */
        next.present = 1;
        next.brand = (int)below(NBRANDS);
        next.score = (int)below(NSCORES);
    } else if (r < 55) { /* reassign to another brand, sometimes rescored too */
        next.brand = (as[id].brand + 1 + (int)below(NBRANDS - 1)) % NBRANDS;
        if (below(3) == 0)
            next.score = (int)below(NSCORES);
    } else { /* rescore (maybe to the same value: an identical re-send) */
        next.score = (int)below(NSCORES);
    }
    if (below(10) == 0) { /* a single PUT */
        bad += flush(c, as, b);
        snprintf(path, sizeof path, "/v1/assets/as-%04d", id);
        asset_line(&next, id, 0, line, sizeof line);
        long s = support_req(c, "PUT", path, line, strlen(line));
        if (s == 200 || s == 201) {
            as[id] = next;
        } else {
            fprintf(stderr, "PUT %s answered %ld: %.300s\n", path, s, support_body(c));
            bad++;
        }
        return bad;
    }
    asset_line(&next, id, 1, line, sizeof line);
    b->len += (size_t)snprintf(b->body + b->len, sizeof b->body - b->len, "%s\n", line);
    b->ids[b->n] = id;
    b->next[b->n++] = next;
    b->busy[id] = 1;
    if (b->n >= 1 + (int)below(64))
        bad += flush(c, as, b);
    return bad;
}

/* ---- checks ---- */

/* Pages through /v1/brands?sort=..&order=..&limit=.. and compares names,
 * counts and sums with want[0..n) in order.  Returns the differences. */
static int check_listing(support_client *c, const char *sort, const char *order, int limit,
                         const int *want, int n, const bagg *aggs)
{
    char url[1600], cursor[1100] = "";
    int got = 0, diffs = 0;
    for (int pages = 0; pages < 1000; pages++) {
        snprintf(url, sizeof url, "/v1/brands?sort=%s%s%s&limit=%d%s%s", sort,
                 order ? "&order=" : "", order ? order : "", limit, cursor[0] ? "&cursor=" : "",
                 cursor);
        long s = support_req(c, "GET", url, NULL, 0);
        yajl_val v = s == 200 ? e2e_json(support_body(c)) : NULL;
        yajl_val arr = e2e_get(v, "brands"), next = e2e_get(v, "next");
        if (!YAJL_IS_ARRAY(arr) || !(YAJL_IS_NULL(next) || YAJL_IS_STRING(next)) ||
            arr->u.array.len > (size_t)limit) {
            fprintf(stderr, "GET %s answered %ld: %.300s\n", url, s, support_body(c));
            if (v)
                yajl_tree_free(v);
            return diffs + 1;
        }
        for (size_t i = 0; i < arr->u.array.len; i++, got++) {
            yajl_val item = arr->u.array.values[i];
            const char *name = e2e_get_str(item, "brand");
            int64_t count = e2e_get_int(item, "count", -1);
            const char *sp[] = {"metrics", "memorability", "sum_micro", NULL};
            yajl_val sum = yajl_tree_get(item, sp, yajl_t_number);
            if (got >= n || !name || strcmp(name, names[want[got]]) ||
                count != aggs[want[got]].count || !sum || !YAJL_IS_INTEGER(sum) ||
                YAJL_GET_INTEGER(sum) != aggs[want[got]].sum) {
                fprintf(stderr,
                        "sort=%s order=%s limit=%d: #%d is %s (count %lld), expected %s "
                        "(count %lld, sum %lld)\n",
                        sort, order ? order : "(default)", limit, got, name ? name : "(none)",
                        (long long)count, got < n ? names[want[got]] : "nothing",
                        got < n ? (long long)aggs[want[got]].count : 0LL,
                        got < n ? (long long)aggs[want[got]].sum : 0LL);
                diffs++;
            }
        }
        int last = YAJL_IS_NULL(next);
        if (!last) {
            const char *tok = YAJL_GET_STRING(next);
            snprintf(cursor, sizeof cursor, "%s", tok ? tok : "");
        }
        yajl_tree_free(v);
        if (last)
            break;
    }
    if (got != n) {
        fprintf(stderr, "sort=%s order=%s limit=%d: %d brands listed, expected %d\n", sort,
                order ? order : "(default)", limit, got, n);
        diffs++;
    }
    return diffs;
}

/* Every listing by count and by mean of the tenant the model `as` holds. */
static int check_sorts(support_client *c, const sasset *as, int *listed)
{
    static const int limits[] = {1, 2, 3, 5, 7, 50};
    static bagg aggs[NBRANDS]; /* static: cmp_brand reads it through sort_aggs */
    int order[NBRANDS], rev[NBRANDS], n = 0, diffs = 0;
    model_aggs(as, aggs);
    for (int b = 0; b < NBRANDS; b++)
        if (aggs[b].count > 0)
            order[n++] = b;
    sort_aggs = aggs;
    for (int by_mean = 0; by_mean < 2; by_mean++) {
        const char *sort = by_mean ? "mean" : "count";
        sort_by_mean = by_mean;
        qsort(order, (size_t)n, sizeof order[0], cmp_brand);
        for (int i = 0; i < n; i++)
            rev[i] = order[n - 1 - i];
        diffs += check_listing(c, sort, "asc", limits[below(6)], order, n, aggs);
        diffs += check_listing(c, sort, "desc", limits[below(6)], rev, n, aggs);
        diffs += check_listing(c, sort, NULL, limits[below(6)], rev, n, aggs); /* desc */
    }
    *listed = n;
    return diffs;
}

/* Distinct counts and distinct means among the listed brands, and how many
 * brands share one with another: the listings tested ties, not only order. */
static void count_ties(const sasset *as, int *tied_counts, int *tied_means)
{
    bagg aggs[NBRANDS];
    model_aggs(as, aggs);
    *tied_counts = *tied_means = 0;
    for (int a = 0; a < NBRANDS; a++)
        for (int b = 0; b < NBRANDS; b++)
            if (a != b && aggs[a].count && aggs[b].count) {
                if (aggs[a].count == aggs[b].count) {
                    ++*tied_counts;
                    break;
                }
            }
    for (int a = 0; a < NBRANDS; a++)
        for (int b = 0; b < NBRANDS; b++)
            if (a != b && aggs[a].count && aggs[b].count &&
                (__int128)aggs[a].sum * aggs[b].count == (__int128)aggs[b].sum * aggs[a].count) {
                ++*tied_means;
                break;
            }
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 8;
    uint64_t seed = e2e_seed();
    char dir[128], store_uri[200], ikey[2][128], vkey[2][128];
    fprintf(stderr, "e2e_brand_sort_test: %d rounds of %d operations, seed %llu\n", rounds, OPS,
            (unsigned long long)seed);
    rng = seed;
    make_names();
    REQUIRE(rounds > 0);
    REQUIRE(support_tmpdir(dir, "e2e") == 0);
    snprintf(store_uri, sizeof store_uri, "sqlite:%s/sl.db", dir);
    static const char *const tenants[2] = {"acme", "globex"};
    for (int t = 0; t < 2; t++)
        REQUIRE(support_tenant(store_uri, tenants[t], "brand-client") == 0 &&
                support_key(store_uri, tenants[t], "ingest", ikey[t]) == 0 &&
                support_key(store_uri, tenants[t], "viewer", vkey[t]) == 0);
    support_server srv;
    REQUIRE(support_server_init(&srv, dir, store_uri) == 0 &&
            support_server_startv(&srv, NULL) == 0);
    support_client *in[2], *view[2];
    for (int t = 0; t < 2; t++) {
        in[t] = support_client_new(srv.url, ikey[t]);
        view[t] = support_client_new(srv.url, vkey[t]);
        REQUIRE(in[t] && view[t]);
    }
    static batch b;
    int listed = 0;
    /* The quiet tenant, written once: brand i has 1 + i % 3 assets, all
     * scored scores[i / 3 % 4], so three brands in a row share a mean with
     * different counts, and brands 12 apart share both. */
    for (int i = 0, id = 0; i < GBRANDS; i++)
        for (int k = 0; k <= i % 3; k++, id++) {
            char line[256];
            globex[id] = (sasset){1, i, i / 3 % 4};
            asset_line(&globex[id], id, 1, line, sizeof line);
            b.len += (size_t)snprintf(b.body + b.len, sizeof b.body - b.len, "%s\n", line);
            b.ids[b.n] = id;
            b.next[b.n++] = globex[id];
        }
    CHECK_INT(flush(in[1], globex, &b), 0);
    REQUIRE(e2e_wait_caught_up(view[1], 60000) == 0);
    CHECK_INT(check_sorts(view[1], globex, &listed), 0);
    CHECK_INT(listed, GBRANDS);

    int most = 0, tied_counts = 0, tied_means = 0;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < OPS; i++) {
            CHECK_INT(step(in[0], acme, &b), 0);
            if (i == OPS / 2) { /* while acme's writes are applied */
                CHECK_INT(check_sorts(view[1], globex, &listed), 0);
            }
        }
        CHECK_INT(flush(in[0], acme, &b), 0);
        REQUIRE(e2e_wait_caught_up(view[0], 60000) == 0);
        CHECK_INT(check_sorts(view[0], acme, &listed), 0);
        int tc, tm;
        count_ties(acme, &tc, &tm);
        tied_counts += tc;
        tied_means += tm;
        if (listed > most)
            most = listed;
    }
    fprintf(stderr,
            "e2e_brand_sort_test: up to %d brands listed; over the rounds %d brands shared their "
            "count and %d their mean with another\n",
            most, tied_counts, tied_means);
    /* The data exercised what it is meant to (ties of means: the quiet tenant's by construction).
     */
    CHECK(most >= NBRANDS / 2);
    CHECK(tied_counts > 0);

    for (int t = 0; t < 2; t++) {
        support_client_free(&in[t]);
        support_client_free(&view[t]);
    }
    CHECK_INT(support_server_stop(&srv), 0);
    support_rmrf(dir);
    return check_finish();
}
