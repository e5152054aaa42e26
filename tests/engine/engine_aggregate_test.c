/* engine_aggregate_test.c -- the aggregate arithmetic without a store: f(image)
 * for assets and surgery summaries, exact sums (past 2^63 for squares),
 * histogram percentiles, reassignment, count-to-zero, the document codec. */
#include "engine/engine.h"
#include "engine/engine_int.h"
#include "tests/check.h"
#include "tests/engine/engine_fixture.h"
#include "tests/exact.h"

#include <math.h>

static engine_aggset *new_set(void)
{
    engine_aggset *set = NULL;
    REQUIRE(engine_aggset_new(0, &set, NULL) == SL_OK);
    return set;
}

static engine_agg key_brand(const char *tenant, const char *brand)
{
    engine_agg k;
    engine_agg_init(&k);
    k.kind = ENGINE_AGG_BRAND;
    snprintf(k.tenant, sizeof k.tenant, "%s", tenant);
    snprintf(k.brand, sizeof k.brand, "%s", brand);
    return k;
}

static engine_agg key_campaign(const char *tenant, const char *brand, const char *campaign)
{
    engine_agg k = key_brand(tenant, brand);
    k.kind = ENGINE_AGG_CAMPAIGN;
    snprintf(k.campaign, sizeof k.campaign, "%s", campaign);
    return k;
}

static engine_agg key_sector(const char *tenant, const char *sector)
{
    engine_agg k;
    engine_agg_init(&k);
    k.kind = ENGINE_AGG_SECTOR;
    snprintf(k.tenant, sizeof k.tenant, "%s", tenant);
    snprintf(k.sector, sizeof k.sector, "%s", sector);
    return k;
}

static fx_asset asset(const char *id, const char *brand, const char *campaign, const char *sector,
                      double mem)
{
    fx_asset a = {0};
    snprintf(a.tenant, sizeof a.tenant, "acme");
    snprintf(a.id, sizeof a.id, "%s", id);
    snprintf(a.brand, sizeof a.brand, "%s", brand);
    snprintf(a.campaign, sizeof a.campaign, "%s", campaign);
    snprintf(a.sector, sizeof a.sector, "%s", sector);
    a.memorability = mem;
    return a;
}

static void apply(engine_aggset *set, const fx_asset *a, int sign)
{
    bson_t *d = fx_asset_doc(a);
    sl_error e;
    sl_error_clear(&e);
    CHECK_INT(engine_aggset_apply_image(set, d, sign, &e), SL_OK);
    bson_destroy(d);
}

static void test_bins(void)
{
    CHECK_INT(engine_hist_bin(0), 0);
    CHECK_INT(engine_hist_bin(9999), 0);
    CHECK_INT(engine_hist_bin(10000), 1);
    CHECK_INT(engine_hist_bin(505000), 50);
    CHECK_INT(engine_hist_bin(999999), 99);
    CHECK_INT(engine_hist_bin(1000000), 99); /* 1.0 is in the closed last bin */
}

/* The mean equals the mean of round(score * 1e6) / 1e6, and the integer sums
 * are exactly the sums of the rounded micro-units. */
static void test_mean_exact(void)
{
    engine_aggset *set = new_set();
    fx_rng r = {test_rng(1)};
    int64_t sum = 0;
    __int128 sumsq = 0;
    int64_t hist[ENGINE_HIST_BINS] = {0};
    const int n = 5000;
    for (int i = 0; i < n; i++) {
        char id[16];
        snprintf(id, sizeof id, "a%d", i);
        fx_asset a = asset(id, "nike", "spring", "apparel", fx_score(&r));
        a.nsal = 1;
        snprintf(a.sal_name[0], sizeof a.sal_name[0], "center");
        a.sal[0] = fx_score(&r);
        int64_t m = fx_micro(a.memorability);
        sum += m;
        sumsq += (__int128)m * m;
        hist[m == 1000000 ? 99 : m / 10000]++;
        apply(set, &a, +1);
    }
    engine_agg k = key_brand("acme", "nike");
    engine_agg *b = engine_aggset_find(set, &k);
    REQUIRE(b != NULL);
    CHECK_INT(b->count, n);
    const engine_metric *m = engine_agg_metric(b, "memorability");
    REQUIRE(m != NULL);
    CHECK_INT(m->n, n);
    CHECK_INT(m->sum, sum);
    CHECK(m->sumsq == sumsq);
    int same = 1;
    for (int i = 0; i < ENGINE_HIST_BINS; i++)
        same &= m->hist[i] == hist[i];
    CHECK(same);
    engine_stats st;
    engine_metric_stats(m, &st);
    /* Within one ulp of the exact values of docs/dashboard.md's formulas
     * (tests/exact.h compares in integers). */
    const exact mean = {(unsigned __int128)sum, (unsigned __int128)n * 1000000, 0};
    const exact sd = {(unsigned __int128)((__int128)n * sumsq - (__int128)sum * sum),
                      (unsigned __int128)n * n * 1000000000000ull, 1};
    CHECK(exact_within_ulp(st.mean, &mean));
    CHECK(exact_within_ulp(st.stddev, &sd));
    CHECK(engine_agg_metric(b, "center") != NULL);
    /* The campaign and the sector got the same contributions. */
    engine_agg kc = key_campaign("acme", "nike", "spring"), ks = key_sector("acme", "apparel");
    engine_agg *c = engine_aggset_find(set, &kc), *s = engine_aggset_find(set, &ks);
    REQUIRE(c && s);
    CHECK_INT(engine_agg_metric(c, "memorability")->sum, sum);
    CHECK_INT(engine_agg_metric(s, "memorability")->sum, sum);
    CHECK_INT(engine_aggset_count(set), 3);
    engine_aggset_free(&set);
}

/* Sums of squares pass 2^63 (about 9.2M assets at 1.0) and stay exact through
 * the document codec. */
static void test_sumsq_128(void)
{
    engine_agg big;
    engine_agg_init(&big);
    /* A real image gives the delta its shape; scaling it by hand stands for
     * 6M assets scored 1.0.  Added twice: 1.2e19 > 2^63. */
    engine_aggset *set = new_set();
    fx_asset one = asset("x", "huge", "c", "s", 1.0);
    apply(set, &one, +1);
    engine_agg kb0 = key_brand("acme", "huge");
    engine_agg *d = engine_aggset_find(set, &kb0);
    REQUIRE(d != NULL);
    engine_metric *m = (engine_metric *)engine_agg_metric(d, "memorability");
    REQUIRE(m != NULL);
    m->n = 6000000;
    m->sum = 6000000LL * 1000000;
    m->sumsq = (__int128)6000000 * 1000000 * 1000000;
    m->hist[99] = 6000000;
    d->count = 6000000;
    REQUIRE(engine_agg_add(&big, d, +1, NULL) == SL_OK);
    REQUIRE(engine_agg_add(&big, d, +1, NULL) == SL_OK);
    const engine_metric *bm = engine_agg_metric(&big, "memorability");
    REQUIRE(bm != NULL);
    __int128 want = (__int128)12000000 * 1000000 * 1000000;
    CHECK(want > (__int128)INT64_MAX);
    CHECK(bm->sumsq == want);
    /* One more asset at 0.5 on top: exact to the unit. */
    fx_asset half = asset("y", "huge", "c", "s", 0.5);
    engine_aggset *s2 = new_set();
    apply(s2, &half, +1);
    engine_agg kb = key_brand("acme", "huge");
    REQUIRE(engine_agg_add(&big, engine_aggset_find(s2, &kb), +1, NULL) == SL_OK);
    bm = engine_agg_metric(&big, "memorability");
    want += (__int128)500000 * 500000;
    CHECK(bm->sumsq == want);
    CHECK_INT(bm->n, 12000001);
    /* Codec round trip keeps all 128 bits. */
    bson_t doc;
    bson_init(&doc);
    REQUIRE(engine_agg_encode(&big, &doc, NULL) == SL_OK);
    bson_iter_t it;
    REQUIRE(bson_iter_init(&it, &doc) &&
            bson_iter_find_descendant(&it, "metrics.memorability.sumsq_hi", &it));
    CHECK_INT(bson_iter_int64(&it), (int64_t)(uint64_t)((unsigned __int128)want >> 64));
    engine_agg back;
    engine_agg_init(&back);
    sl_error e;
    sl_error_clear(&e);
    CHECK_INT(engine_agg_decode(&doc, &back, &e), SL_OK);
    const engine_metric *rm = engine_agg_metric(&back, "memorability");
    REQUIRE(rm != NULL);
    CHECK(rm->sumsq == want);
    CHECK_INT(back.count, 12000001);
    engine_stats st;
    engine_metric_stats(rm, &st);
    /* mean = (12e6 * 1.0 + 0.5) / (12e6 + 1); stddev from the exact moments;
     * each within one ulp. */
    const exact mean = {(unsigned __int128)12000000 * 1000000 + 500000,
                        (unsigned __int128)12000001 * 1000000, 0};
    const __int128 sum = (__int128)12000000 * 1000000 + 500000;
    const exact sd = {(unsigned __int128)((__int128)12000001 * want - sum * sum),
                      (unsigned __int128)12000001 * 12000001 * 1000000000000ull, 1};
    CHECK(exact_within_ulp(st.mean, &mean));
    CHECK(exact_within_ulp(st.stddev, &sd));
    CHECK(st.stddev > 0 && st.stddev < 0.001);
    bson_destroy(&doc);
    engine_agg_free(&back);
    engine_agg_free(&big);
    engine_aggset_free(&set);
    engine_aggset_free(&s2);
}

/* Percentiles on data whose answer follows from the documented interpolation. */
static void test_percentiles(void)
{
    engine_metric m;
    memset(&m, 0, sizeof m);
    /* One score per bin: the cumulative count reaches q*n at the top of bin q*100-1. */
    for (int i = 0; i < ENGINE_HIST_BINS; i++)
        m.hist[i] = 1;
    m.n = 100;
    CHECK(fabs(engine_metric_percentile(&m, 0.10) - 0.10) < 1e-12);
    CHECK(fabs(engine_metric_percentile(&m, 0.50) - 0.50) < 1e-12);
    CHECK(fabs(engine_metric_percentile(&m, 0.90) - 0.90) < 1e-12);
    CHECK(fabs(engine_metric_percentile(&m, 0.0) - 0.0) < 1e-12);
    CHECK(fabs(engine_metric_percentile(&m, 1.0) - 1.0) < 1e-12);
    /* Twelve scores of 0.6 in bin 60: spread evenly over [0.60, 0.61). */
    memset(&m, 0, sizeof m);
    m.hist[60] = 12;
    m.n = 12;
    CHECK(fabs(engine_metric_percentile(&m, 0.5) - 0.605) < 1e-12);
    CHECK(fabs(engine_metric_percentile(&m, 0.1) - 0.601) < 1e-12);
    engine_stats st;
    engine_metric_stats(&m, &st);
    CHECK(fabs(st.min - 0.60) < 1e-12 && fabs(st.max - 0.61) < 1e-12);
    /* A rank on a bin's edge lands on it exactly.  Regression: q = 0.1 as a
     * double is a little above 1/10, so q*n overshot the edge of bin 3 into
     * bin 4 and the 10th percentile came out as 0.04000000000000001. */
    memset(&m, 0, sizeof m);
    m.hist[3] = 100;
    m.hist[4] = 1;
    m.hist[50] = 899;
    m.n = 1000;
    CHECK(engine_metric_percentile(&m, 0.10) == 0.04);
    CHECK(engine_metric_percentile(&m, 0.101) == 0.05); /* all of bin 4: its top */
    CHECK(fabs(engine_metric_percentile(&m, 0.30) - (0.5 + 0.01 * 199.0 / 899.0)) < 1e-15);
    /* Empty: NaN, not a made-up number. */
    memset(&m, 0, sizeof m);
    CHECK(isnan(engine_metric_percentile(&m, 0.5)));
    engine_metric_stats(&m, &st);
    CHECK(isnan(st.mean) && isnan(st.median));

    /* Random data: each percentile is within one bin of the true order statistic. */
    engine_aggset *set = new_set();
    fx_rng r = {test_rng(2)};
    double v[999];
    for (int i = 0; i < 999; i++) {
        char id[16];
        snprintf(id, sizeof id, "p%d", i);
        double x = (double)fx_below(&r, 1000001) / 1e6;
        x = x * x; /* skewed towards 0 */
        fx_asset a = asset(id, "b", "c", "s", x);
        v[i] = fx_micro(x) / 1e6;
        apply(set, &a, +1);
    }
    for (int i = 1; i < 999; i++) /* insertion sort: small */
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    engine_agg kb = key_brand("acme", "b");
    const engine_metric *bm = engine_agg_metric(engine_aggset_find(set, &kb), "memorability");
    REQUIRE(bm != NULL);
    double qs[] = {0.1, 0.5, 0.9};
    for (int i = 0; i < 3; i++) {
        double truth = v[(int)ceil(qs[i] * 999) - 1];
        double got = engine_metric_percentile(bm, qs[i]);
        CHECK(fabs(got - truth) <= 0.01 + 1e-12);
    }
    engine_aggset_free(&set);
}

/* An event's delta is f(new) - f(old): rescores add the difference, a move to
 * another brand/campaign/sector subtracts from the old and adds to the new. */
static void test_rescore_and_reassign(void)
{
    engine_aggset *set = new_set();
    fx_asset a = asset("a1", "nike", "spring", "apparel", 0.3);
    fx_asset b = a;
    b.memorability = 0.7;
    apply(set, &b, +1); /* rescore: new - old */
    apply(set, &a, -1);
    engine_agg kb = key_brand("acme", "nike");
    engine_agg *n = engine_aggset_find(set, &kb);
    REQUIRE(n != NULL);
    CHECK_INT(n->count, 0);
    const engine_metric *m = engine_agg_metric(n, "memorability");
    REQUIRE(m != NULL);
    CHECK_INT(m->n, 0);
    CHECK_INT(m->sum, 400000);
    CHECK(m->sumsq == (__int128)700000 * 700000 - (__int128)300000 * 300000);
    CHECK_INT(m->hist[30], -1);
    CHECK_INT(m->hist[70], 1);

    engine_aggset_clear(set);
    fx_asset c = b;
    snprintf(c.brand, sizeof c.brand, "adidas");
    snprintf(c.campaign, sizeof c.campaign, "fall");
    snprintf(c.sector, sizeof c.sector, "shoes");
    apply(set, &c, +1); /* reassignment: new - old */
    apply(set, &b, -1);
    engine_agg ka = key_brand("acme", "adidas"), kca = key_campaign("acme", "adidas", "fall"),
               kcn = key_campaign("acme", "nike", "spring"), kso = key_sector("acme", "apparel"),
               ksn = key_sector("acme", "shoes");
    engine_agg *old_b = engine_aggset_find(set, &kb), *new_b = engine_aggset_find(set, &ka);
    REQUIRE(old_b && new_b);
    CHECK_INT(old_b->count, -1);
    CHECK_INT(new_b->count, 1);
    CHECK_INT(engine_agg_metric(old_b, "memorability")->sum, -700000);
    CHECK_INT(engine_agg_metric(new_b, "memorability")->sum, 700000);
    CHECK_INT(engine_aggset_find(set, &kcn)->count, -1);
    CHECK_INT(engine_aggset_find(set, &kca)->count, 1);
    CHECK_INT(engine_aggset_find(set, &kso)->count, -1);
    CHECK_INT(engine_aggset_find(set, &ksn)->count, 1);

    /* Applying that delta to a live brand holding just the asset empties it:
     * the listener then deletes the document. */
    engine_agg live;
    engine_agg_init(&live);
    engine_aggset *one = new_set();
    apply(one, &b, +1);
    REQUIRE(engine_agg_copy(&live, engine_aggset_find(one, &kb), NULL) == SL_OK);
    CHECK(!engine_agg_is_zero(&live));
    REQUIRE(engine_agg_add(&live, old_b, +1, NULL) == SL_OK);
    CHECK(engine_agg_is_zero(&live));
    CHECK_INT(live.nmetrics, 0); /* all-zero metrics are dropped */
    engine_agg_free(&live);
    engine_aggset_free(&one);
    engine_aggset_free(&set);
}

/* A malformed asset contributes nothing and leaves the set unchanged. */
static void test_malformed(void)
{
    engine_aggset *set = new_set();
    fx_asset a = asset("a1", "nike", "spring", "apparel", 0.5);
    apply(set, &a, +1);
    bson_t *d = fx_asset_doc(&a);
    bson_t bad = BSON_INITIALIZER;
    bson_copy_to_excluding_noinit(d, &bad, "memorability_micro", NULL);
    BSON_APPEND_INT64(&bad, "memorability_micro", 1000001);
    sl_error e;
    sl_error_clear(&e);
    CHECK_INT(engine_aggset_apply_image(set, &bad, +1, &e), SL_EINVAL);
    CHECK_STR(e.field, "memorability_micro");
    bson_destroy(&bad);
    /* A tenant field that disagrees with the key cannot reach another tenant. */
    bson_t other = BSON_INITIALIZER;
    bson_copy_to_excluding_noinit(d, &other, "tenant", NULL);
    BSON_APPEND_UTF8(&other, "tenant", "victim");
    sl_error_clear(&e);
    CHECK_INT(engine_aggset_apply_image(set, &other, +1, &e), SL_EINVAL);
    bson_destroy(&other);
    /* A brand name that could forge a key. */
    fx_asset forged = a;
    snprintf(forged.brand, sizeof forged.brand, "x#CAMPAIGN#y");
    bson_t *fd = fx_asset_doc(&forged);
    sl_error_clear(&e);
    CHECK_INT(engine_aggset_apply_image(set, fd, +1, &e), SL_EINVAL);
    bson_destroy(fd);
    CHECK_INT(engine_aggset_count(set), 3);
    engine_agg kb = key_brand("acme", "nike");
    CHECK_INT(engine_aggset_find(set, &kb)->count, 1);
    /* Other document types contribute nothing and are not errors. */
    bson_t *frame = BCON_NEW("pk", "T#acme#SURGERY#s1", "sk", "FRAME#000000001", "type", "frame");
    CHECK_INT(engine_aggset_apply_image(set, frame, +1, NULL), SL_OK);
    CHECK_INT(engine_aggset_count(set), 3);
    bson_destroy(frame);
    bson_destroy(d);
    engine_aggset_free(&set);
}

/* Tool aggregates from surgery summaries: units, surgeries, waste. */
static void test_tools(void)
{
    engine_aggset *set = new_set();
    fx_summary s = {.tenant = "mercy", .surgery = "s1", .hospital = "h1", .procedure = "knee"};
    s.ntools = 3;
    s.tools[0] = (fx_tool){"gauze", 4, 1, 250, 1};
    s.tools[1] = (fx_tool){"clamp", 2, 0, 9000, 0}; /* reusable: no waste */
    s.tools[2] = (fx_tool){"gauze", 2, 2, 250, 1};  /* same sku again: one surgery */
    bson_t *d = fx_summary_doc(&s);
    CHECK_INT(engine_aggset_apply_image(set, d, +1, NULL), SL_OK);
    CHECK_INT(engine_aggset_count(set), 2);
    engine_agg k;
    engine_agg_init(&k);
    k.kind = ENGINE_AGG_TOOL;
    snprintf(k.tenant, sizeof k.tenant, "mercy");
    snprintf(k.hospital, sizeof k.hospital, "h1");
    snprintf(k.procedure, sizeof k.procedure, "knee");
    snprintf(k.sku, sizeof k.sku, "gauze");
    engine_agg *g = engine_aggset_find(set, &k);
    REQUIRE(g != NULL);
    CHECK_INT(g->surgeries, 1);
    CHECK_INT(g->surgeries_opened, 1);
    CHECK_INT(g->surgeries_used, 1);
    CHECK_INT(g->units_opened, 6);
    CHECK_INT(g->units_used, 3);
    CHECK_INT(g->waste_cents, 3 * 250);
    snprintf(k.sku, sizeof k.sku, "clamp");
    engine_agg *c = engine_aggset_find(set, &k);
    REQUIRE(c != NULL);
    CHECK_INT(c->surgeries_used, 0);
    CHECK_INT(c->waste_cents, 0);
    schema_key pk, sk;
    REQUIRE(engine_agg_keys(c, pk, sk, NULL) == SL_OK);
    CHECK_STR(pk, "T#mercy#AGG");
    CHECK_STR(sk, "HOSPITAL#h1#PROC#knee#TOOL#clamp");
    /* Deleting the summary takes everything back. */
    CHECK_INT(engine_aggset_apply_image(set, d, -1, NULL), SL_OK);
    CHECK(engine_agg_is_zero(g) && engine_agg_is_zero(c));
    /* Negative units are refused. */
    s.tools[0].used = -1;
    bson_t *bad = fx_summary_doc(&s);
    sl_error e;
    sl_error_clear(&e);
    CHECK_INT(engine_aggset_apply_image(set, bad, +1, &e), SL_EINVAL);
    CHECK_STR(e.field, "tools[0]");
    bson_destroy(bad);
    bson_destroy(d);
    engine_aggset_free(&set);
}

/* Strict decoding names the damaged field; lenient decoding is used inside. */
static void test_codec_corrupt(void)
{
    engine_aggset *set = new_set();
    fx_asset a = asset("a1", "nike", "spring", "apparel", 0.25);
    a.nsal = 1;
    snprintf(a.sal_name[0], sizeof a.sal_name[0], "center");
    a.sal[0] = 1.0;
    apply(set, &a, +1);
    engine_agg kc = key_campaign("acme", "nike", "spring");
    engine_agg *c = engine_aggset_find(set, &kc);
    REQUIRE(c != NULL);
    bson_t doc;
    bson_init(&doc);
    REQUIRE(engine_agg_encode(c, &doc, NULL) == SL_OK);
    engine_agg back;
    engine_agg_init(&back);
    REQUIRE(engine_agg_decode(&doc, &back, NULL) == SL_OK);
    CHECK_INT(back.kind, ENGINE_AGG_CAMPAIGN);
    CHECK_STR(back.campaign, "spring");
    CHECK_INT(back.count, 1);
    CHECK_INT(engine_agg_metric(&back, "center")->hist[99], 1);
    bson_t bad = BSON_INITIALIZER;
    bson_copy_to_excluding_noinit(&doc, &bad, "count", NULL);
    BSON_APPEND_UTF8(&bad, "count", "one");
    sl_error e;
    sl_error_clear(&e);
    CHECK_INT(engine_agg_decode(&bad, &back, &e), SL_ECORRUPT);
    CHECK_STR(e.field, "count");
    bson_destroy(&bad);
    engine_agg_free(&back);
    bson_destroy(&doc);
    engine_aggset_free(&set);
}

/* The histogram's packing (engine.h): zigzag LEB128, one varint per bin.
 * Expected bytes written out by hand from the varint rules. */
typedef struct hist_case {
    int64_t v;
    uint8_t bytes[10];
    int n;
} hist_case;

static const hist_case hist_cases[] = {
    {0, {0x00}, 1},
    {-1, {0x01}, 1},
    {1, {0x02}, 1},
    {63, {0x7e}, 1},
    {-64, {0x7f}, 1},
    {64, {0x80, 0x01}, 2},
    {300, {0xd8, 0x04}, 2},
    {INT64_MAX, {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 10},
    {INT64_MIN, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 10},
};
#define HIST_CASES (sizeof hist_cases / sizeof hist_cases[0])

/* A sector aggregate with one metric whose bins are hist_cases, repeated. */
static void layout_agg(engine_agg *a)
{
    engine_agg_init(a);
    a->kind = ENGINE_AGG_SECTOR;
    snprintf(a->tenant, sizeof a->tenant, "acme");
    snprintf(a->sector, sizeof a->sector, "apparel");
    a->count = 123456789012LL;
    engine_metric *m = engine__agg_metric_get(a, "memorability", NULL);
    REQUIRE(m != NULL);
    m->n = 3;
    m->sum = -5;
    m->sumsq = ((engine_i128)7 << 64) + 11;
    for (int i = 0; i < ENGINE_HIST_BINS; i++)
        m->hist[i] = hist_cases[i % HIST_CASES].v;
}

/* The document as engine.h documents it, built field by field with libbson
 * (hist given as bytes, or NULL for the older int64-array layout). */
static void layout_doc(const engine_agg *a, const uint8_t *hist, uint32_t hlen, bson_t *want)
{
    bson_t metrics, md, arr;
    const engine_metric *m = &a->metrics[0];
    bson_init(want);
    BSON_APPEND_UTF8(want, "pk", "T#acme#AGG");
    BSON_APPEND_UTF8(want, "sk", "SECTOR#apparel");
    BSON_APPEND_UTF8(want, "type", "sector_agg");
    BSON_APPEND_UTF8(want, "tenant", "acme");
    BSON_APPEND_UTF8(want, "sector", "apparel");
    BSON_APPEND_INT64(want, "count", a->count);
    BSON_APPEND_DOCUMENT_BEGIN(want, "metrics", &metrics);
    BSON_APPEND_DOCUMENT_BEGIN(&metrics, m->name, &md);
    BSON_APPEND_INT64(&md, "n", m->n);
    BSON_APPEND_INT64(&md, "sum", m->sum);
    BSON_APPEND_INT64(&md, "sumsq_hi", (int64_t)(m->sumsq >> 64));
    BSON_APPEND_INT64(&md, "sumsq_lo", (int64_t)(uint64_t)m->sumsq);
    if (hist) {
        BSON_APPEND_BINARY(&md, "hist", BSON_SUBTYPE_BINARY, hist, hlen);
    } else {
        BSON_APPEND_ARRAY_BEGIN(&md, "hist", &arr);
        for (int i = 0; i < ENGINE_HIST_BINS; i++) {
            char key[16];
            snprintf(key, sizeof key, "%d", i);
            bson_append_int64(&arr, key, -1, m->hist[i]);
        }
        bson_append_array_end(&md, &arr);
    }
    bson_append_document_end(&metrics, &md);
    bson_append_document_end(want, &metrics);
}

static void test_codec_layout(void)
{
    engine_agg a, back;
    layout_agg(&a);
    engine_agg_init(&back);
    uint8_t packed[ENGINE_HIST_BINS * 10];
    uint32_t plen = 0;
    for (int i = 0; i < ENGINE_HIST_BINS; i++) {
        const hist_case *c = &hist_cases[i % HIST_CASES];
        memcpy(packed + plen, c->bytes, (size_t)c->n);
        plen += (uint32_t)c->n;
    }
    bson_t got, want;
    bson_init(&got);
    REQUIRE(engine_agg_encode(&a, &got, NULL) == SL_OK);
    layout_doc(&a, packed, plen, &want);
    CHECK_INT(got.len, want.len);
    CHECK(got.len == want.len && memcmp(bson_get_data(&got), bson_get_data(&want), got.len) == 0);
    REQUIRE(engine_agg_decode(&got, &back, NULL) == SL_OK);
    CHECK(memcmp(back.metrics[0].hist, a.metrics[0].hist, sizeof a.metrics[0].hist) == 0);
    bson_destroy(&want);

    /* Stores written before the packing hold int64 arrays: still read. */
    layout_doc(&a, NULL, 0, &want);
    engine_agg_free(&back);
    engine_agg_init(&back);
    REQUIRE(engine_agg_decode(&want, &back, NULL) == SL_OK);
    CHECK(memcmp(back.metrics[0].hist, a.metrics[0].hist, sizeof a.metrics[0].hist) == 0);
    CHECK_INT(back.count, a.count);
    bson_destroy(&want);

    /* Damaged packings: each is named as the metric's hist. */
    uint8_t bad[sizeof packed + 1];
    struct {
        const char *what;
        uint32_t len;
        int edit; /* 0 none, 1 overlong last varint, 2 varint past 64 bits at the start */
    } cases[] = {
        {"a byte short", plen - 1, 0},     {"a byte too many", plen + 1, 0},   {"empty", 0, 0},
        {"an unfinished varint", plen, 1}, {"a varint past 64 bits", plen, 2},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        memcpy(bad, packed, plen);
        bad[plen] = 0;
        if (cases[k].edit == 1)
            bad[plen - 1] |= 0x80; /* the last varint never ends */
        if (cases[k].edit == 2) {  /* bin 0 as INT64_MIN with a 2 in its 10th byte, then bins 1.. */
            memcpy(bad, hist_cases[8].bytes, 10);
            bad[9] = 0x02;
            uint32_t at = 10;
            for (int i = 1; i < ENGINE_HIST_BINS; i++) {
                const hist_case *c = &hist_cases[i % HIST_CASES];
                memcpy(bad + at, c->bytes, (size_t)c->n);
                at += (uint32_t)c->n;
            }
            cases[k].len = at;
        }
        layout_doc(&a, bad, cases[k].len, &want);
        sl_error e;
        sl_error_clear(&e);
        engine_agg_free(&back);
        engine_agg_init(&back);
        sl_status rc = engine_agg_decode(&want, &back, &e);
        if (rc != SL_ECORRUPT)
            fprintf(stderr, "  hist %s: %s, not SL_ECORRUPT\n", cases[k].what, sl_status_name(rc));
        CHECK_INT(rc, SL_ECORRUPT);
        CHECK_STR(e.field, "metrics.memorability.hist");
        bson_destroy(&want);
    }
    /* A binary of another subtype is not a histogram either. */
    bson_t doc = BSON_INITIALIZER, metrics, md;
    bson_copy_to_excluding_noinit(&got, &doc, "metrics", NULL);
    BSON_APPEND_DOCUMENT_BEGIN(&doc, "metrics", &metrics);
    BSON_APPEND_DOCUMENT_BEGIN(&metrics, "memorability", &md);
    BSON_APPEND_INT64(&md, "n", 3);
    BSON_APPEND_INT64(&md, "sum", -5);
    BSON_APPEND_INT64(&md, "sumsq_hi", 7);
    BSON_APPEND_INT64(&md, "sumsq_lo", 11);
    BSON_APPEND_BINARY(&md, "hist", BSON_SUBTYPE_USER, packed, plen);
    bson_append_document_end(&metrics, &md);
    bson_append_document_end(&doc, &metrics);
    sl_error e;
    sl_error_clear(&e);
    CHECK_INT(engine_agg_decode(&doc, &back, &e), SL_ECORRUPT);
    CHECK_STR(e.field, "metrics.memorability.hist");
    bson_destroy(&doc);
    bson_destroy(&got);
    engine_agg_free(&back);
    engine_agg_free(&a);
}

/* The fuzz seeds in fixtures/aggregates (written by its make.py, apart
 * from this code) decode to what make.py put in them. */
static void test_codec_fixtures(void)
{
    static const char *const names[] = {"brand.bson", "campaign-array.bson", "tool.bson"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        char path[512];
        snprintf(path, sizeof path, "%s/aggregates/%s", SL_FIXTURES, names[k]);
        FILE *f = fopen(path, "rb");
        REQUIRE(f != NULL);
        uint8_t buf[4096];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        bson_t doc;
        REQUIRE(bson_init_static(&doc, buf, n));
        engine_agg a;
        engine_agg_init(&a);
        sl_error e;
        sl_error_clear(&e);
        CHECK_INT(engine_agg_decode(&doc, &a, &e), SL_OK);
        if (k < 2) {
            const engine_metric *m = engine_agg_metric(&a, "memorability");
            CHECK_INT(a.count, 4);
            CHECK(m && m->n == 4 && m->hist[61] == 2 && m->hist[70] == 1 && m->hist[99] == 1);
            CHECK(m && m->sum == 615000 * 2 + 705000 + 995000);
        } else {
            CHECK_STR(a.sku, "SCALPEL");
            CHECK_INT(a.waste_cents, 2400);
        }
        if (k == 0) {
            const engine_metric *c = engine_agg_metric(&a, "center");
            CHECK(c && c->hist[10] == 3 && c->hist[20] == 1 && c->n == 4);
        }
        engine_agg_free(&a);
    }
}

int main(void)
{
    test_seed(); /* printed first; SIGHTLINE_TEST_SEED repeats the run */
    test_bins();
    test_mean_exact();
    test_sumsq_128();
    test_percentiles();
    test_rescore_and_reassign();
    test_malformed();
    test_tools();
    test_codec_corrupt();
    test_codec_layout();
    test_codec_fixtures();
    return check_finish();
}
