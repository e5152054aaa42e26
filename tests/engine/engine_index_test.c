/* engine_index_test.c -- the sort keys of brand aggregates
 * (engine_brand_index_keys, engine/engine.h) at the edges of what they
 * promise: "Distinct means of brands with at most 10^6 assets each get
 * distinct keys in the right order (two such means differ by at least 10^-12
 * micro-units)".  The tightest pairs of means are built with exact integer
 * arithmetic (neighbouring fractions: s1 * n2 - s2 * n1 = +-1) and each key
 * order is compared with the exact order of the two means (cross
 * multiplication); then a pair just past the promise (10^6 + 1 assets) shows
 * where it stops: two different means, one key.  Seeded: the seed is
 * printed; SIGHTLINE_TEST_SEED replays it. */
#include "engine/engine.h"
#include "tests/check.h"
#include "tests/seed.h"

#include <time.h>
#include <unistd.h>

#define MAX_ASSETS 1000000LL /* the promise's bound */

static uint64_t rng_state;

static uint64_t below(uint64_t n)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (rng_state * 2685821657736338717ull) % n;
}

/* The keys of brand `brand` with `count` assets of which n carry
 * memorability with sum micro-units (n 0: none).  The metric lives on the
 * stack: the aggregate owns nothing. */
static void keys_of(const char *brand, int64_t count, int64_t n, int64_t sum, schema_key by_count,
                    schema_key by_mean)
{
    engine_metric m;
    memset(&m, 0, sizeof m);
    snprintf(m.name, sizeof m.name, "%s", ENGINE_METRIC_MEMORABILITY);
    m.n = n;
    m.sum = sum;
    engine_agg a;
    engine_agg_init(&a);
    a.kind = ENGINE_AGG_BRAND;
    snprintf(a.tenant, sizeof a.tenant, "acme");
    snprintf(a.brand, sizeof a.brand, "%s", brand);
    a.count = count;
    a.nmetrics = n ? 1 : 0;
    a.metrics = n ? &m : NULL;
    schema_key gpk;
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(engine_brand_index_keys(&a, gpk, by_count, by_mean, &e) == SL_OK);
    CHECK_STR(gpk, "T#acme#AGG#BRANDS");
}

/* The mean key of (n, sum): its 19 digits as a number; checks the shape. */
static uint64_t mean_key(int64_t n, int64_t sum)
{
    schema_key by_count, by_mean;
    keys_of("b", n, n, sum, by_count, by_mean);
    uint64_t k = 0;
    int ok = strlen(by_mean) == ENGINE_INDEX_DIGITS + 2 && !strcmp(by_mean + 19, "#b");
    for (int i = 0; ok && i < ENGINE_INDEX_DIGITS; i++) {
        ok = by_mean[i] >= '0' && by_mean[i] <= '9';
        k = k * 10 + (uint64_t)(by_mean[i] - '0');
    }
    if (!ok)
        fprintf(stderr, "mean key of n %lld sum %lld is \"%s\"\n", (long long)n, (long long)sum,
                by_mean);
    CHECK(ok);
    return k;
}

/* The sign of s1/n1 - s2/n2, exactly. */
static int mean_cmp(int64_t n1, int64_t s1, int64_t n2, int64_t s2)
{
    __int128 l = (__int128)s1 * n2, r = (__int128)s2 * n1;
    return (l > r) - (l < r);
}

/* 1 when the keys of the two means are ordered as the means are: distinct
 * means, keys in the same order; equal means, equal keys.  Prints otherwise. */
static int ordered_as_means(int64_t n1, int64_t s1, int64_t n2, int64_t s2)
{
    uint64_t k1 = mean_key(n1, s1), k2 = mean_key(n2, s2);
    int want = mean_cmp(n1, s1, n2, s2), got = (k1 > k2) - (k1 < k2);
    if (got != want)
        fprintf(stderr,
                "means %lld/%lld and %lld/%lld compare %d, their keys %llu and %llu compare %d\n",
                (long long)s1, (long long)n1, (long long)s2, (long long)n2, want,
                (unsigned long long)k1, (unsigned long long)k2, got);
    return got == want;
}

/* Shapes: 19 digits, zero-padded, so that byte order is numeric order. */
static void test_shapes(void)
{
    schema_key c, m;
    keys_of("Nike", 12, 12, 0, c, m);
    CHECK_STR(c, "0000000000000000012#Nike");
    CHECK_STR(m, "0000000000000000000#Nike");
    keys_of("Nike", 3, 3, 3000000, c, m);
    CHECK_STR(m, "1000000000000000000#Nike"); /* a mean of 1.0: ENGINE_MEAN_KEY_ONE */
    keys_of("Nike", 3, 3, 1500000, c, m);
    CHECK_STR(m, "0500000000000000000#Nike");
    keys_of("Nike", 3, 3, 1, c, m);
    CHECK_STR(m, "0000000333333333333#Nike"); /* floor(10^12 / 3) */
    keys_of("Nike", 2, 0, 0, c, m);
    CHECK_STR(c, "0000000000000000002#Nike");
    CHECK_STR(m, "-#Nike"); /* no memorability: before every mean ascending */
    CHECK(strcmp("-#Nike", "0000000000000000000#Adidas") < 0);
    keys_of("Nike", -4, 1, 0, c, m);
    CHECK_STR(c, "0000000000000000000#Nike"); /* a negative count as 0 */
    /* Equal keys are ordered by brand, byte by byte. */
    schema_key c2, m2;
    keys_of("Nike", 9, 9, 4500000, c, m);
    keys_of("Adidas", 9, 9, 4500000, c2, m2);
    CHECK(strcmp(m2, m) < 0 && strcmp(c2, c) < 0);
    keys_of("Puma", 10, 10, 4500001, c2, m2);
    CHECK(strcmp(c, c2) < 0); /* 9 before 10 */
    CHECK(strcmp(m2, m) < 0); /* Puma's mean 0.4500001 is below Nike's 0.5 */
}

/* Means of 10^6 assets each one micro-unit apart (their closest), at the ends
 * of the range and in between. */
static void test_same_count(void)
{
    int bad = 0;
    int64_t n = MAX_ASSETS, top = n * ENGINE_MICRO_ONE;
    const int64_t fixed[] = {0, 1, 2, 499999999999, 500000000000, top - 2, top - 1};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        bad += !ordered_as_means(n, fixed[i], n, fixed[i] + 1);
        CHECK_INT(mean_key(n, fixed[i] + 1) - mean_key(n, fixed[i]), 1000000);
    }
    for (int i = 0; i < 20000; i++) {
        int64_t s = (int64_t)below((uint64_t)top);
        bad += !ordered_as_means(n, s, n, s + 1);
    }
    CHECK_INT(bad, 0);
}

/* The closest distinct means of all: s1/n1 and s2/n2 with s1*n2 - s2*n1 = +-1
 * differ by 1/(n1*n2), at least 1/(10^6 * (10^6 - 1)) micro-units, which
 * is just over the key's unit of 10^-12.  Both neighbours of random fractions,
 * for denominators at and near the bound. */
static void test_neighbours(void)
{
    /* By hand: 1/10^6 and 1/999999 micro-units, keys 10^6 and 1000001. */
    CHECK_INT(mean_key(MAX_ASSETS, 1), 1000000);
    CHECK_INT(mean_key(MAX_ASSETS - 1, 1), 1000001);
    /* (10^6 - 1)/10^6 and 999998/999999: again one key apart. */
    CHECK(ordered_as_means(MAX_ASSETS, MAX_ASSETS - 1, MAX_ASSETS - 1, MAX_ASSETS - 2));
    int bad = 0;
    int64_t pairs = 0;
    for (int i = 0; i < 40000; i++) {
        int64_t n1 = MAX_ASSETS - (int64_t)below(i % 4 ? 3 : 1000);
        int64_t n2 = MAX_ASSETS - (int64_t)below(i % 4 ? 3 : 1000);
        int64_t s1 = (int64_t)below((uint64_t)(n1 * ENGINE_MICRO_ONE + 1));
        /* The fractions of denominator n2 right below and above s1/n1. */
        __int128 x = (__int128)s1 * n2;
        int64_t lo = (int64_t)(x / n1), hi = lo + 1;
        for (int64_t s2 = lo - 1; s2 <= hi; s2++) {
            if (s2 < 0 || s2 > n2 * ENGINE_MICRO_ONE)
                continue;
            bad += !ordered_as_means(n1, s1, n2, s2);
            pairs++;
        }
    }
    /* Denominators far apart: 1 asset against 10^6, 999983 (a prime) against 2. */
    static const int64_t dens[][2] = {{1, MAX_ASSETS}, {999983, 2}, {999983, MAX_ASSETS}, {3, 7}};
    for (size_t d = 0; d < sizeof dens / sizeof dens[0]; d++)
        for (int i = 0; i < 5000; i++) {
            int64_t n1 = dens[d][0], n2 = dens[d][1];
            int64_t s1 = (int64_t)below((uint64_t)(n1 * ENGINE_MICRO_ONE + 1));
            int64_t lo = (int64_t)((__int128)s1 * n2 / n1);
            for (int64_t s2 = lo; s2 <= lo + 1 && s2 <= n2 * ENGINE_MICRO_ONE; s2++) {
                bad += !ordered_as_means(n1, s1, n2, s2);
                pairs++;
            }
        }
    fprintf(stderr, "engine_index_test: %lld pairs of neighbouring means compared\n",
            (long long)pairs);
    CHECK_INT(bad, 0);
}

/* Just past the promise: 10^6 + 1 assets summing to 10^6 micro-units and
 * 10^6 assets summing to 999999 are different means (s1*n2 - s2*n1 = 1, a
 * difference of 1/(10^12 + 10^6) micro-units, under the key's unit), and get
 * the same key: such brands are listed by name, not by mean.  If this starts
 * to fail, the keys got finer: move the bound in engine.h and docs. */
static void test_past_the_promise(void)
{
    int64_t n1 = MAX_ASSETS + 1, s1 = MAX_ASSETS, n2 = MAX_ASSETS, s2 = MAX_ASSETS - 1;
    CHECK_INT(mean_cmp(n1, s1, n2, s2), 1);
    CHECK_INT((__int128)s1 * n2 - (__int128)s2 * n1, 1);
    CHECK_INT(mean_key(n1, s1), 999999000000LL);
    CHECK_INT(mean_key(n2, s2), 999999000000LL);
    schema_key c1, m1, c2, m2;
    keys_of("Zeta", n1, n1, s1, c1, m1);
    keys_of("Alpha", n2, n2, s2, c2, m2);
    CHECK(strcmp(m2, m1) < 0); /* Alpha first ascending, although its mean is lower... */
    keys_of("Alpha", n1, n1, s1, c1, m1);
    keys_of("Zeta", n2, n2, s2, c2, m2);
    CHECK(strcmp(m1, m2) < 0); /* ...and also when it is higher */
}

int main(void)
{
    uint64_t seed = test_seed();
    rng_state = seed;
    test_shapes();
    test_same_count();
    test_neighbours();
    test_past_the_promise();
    return check_finish();
}
