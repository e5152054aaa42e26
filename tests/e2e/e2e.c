/* e2e.c -- the usual start (store, tenants, keys, server, clients), JSON
 * helpers, the asset model with its expected aggregates, the random workload
 * and the full check of a tenant's dashboard (see e2e.h).  Processes and
 * HTTP come from the test-support library (tests/support). */
#include "e2e.h"
#include "tests/seed.h"

#include "tests/exact.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int e2e_wait_caught_up(support_client *c, int timeout_ms)
{
    long until = support_now_ms() + timeout_ms;
    double behind = -1;
    int rc = -1;
    do {
        if (support_req(c, "GET", "/metrics", NULL, 0) == 200 &&
            support_metric(support_body(c), "sightline_feed_behind_events", &behind) == 0 &&
            behind == 0)
            rc = 0;
        else
            support_sleep_ms(50);
    } while (rc != 0 && support_now_ms() < until);
    if (rc != 0)
        fprintf(stderr, "e2e: the listener is still %.0f events behind after %d ms\n", behind,
                timeout_ms);
    return rc;
}

int e2e_world_start(e2e_world *w, const char *const *extra)
{
    int rc = support_tmpdir(w->dir, "e2e");
    memset(w->ingest, 0, sizeof w->ingest);
    memset(w->viewer, 0, sizeof w->viewer);
    snprintf(w->store, sizeof w->store, "sqlite:%s/sl.db", w->dir);
    for (int t = 0; rc == 0 && t < M_TENANTS; t++)
        if (support_tenant(w->store, m_tenants[t], "brand-client") != 0 ||
            support_key(w->store, m_tenants[t], "ingest", w->ingest_key[t]) != 0 ||
            support_key(w->store, m_tenants[t], "viewer", w->viewer_key[t]) != 0)
            rc = -1;
    if (rc == 0 && (support_server_init(&w->srv, w->dir, w->store) != 0 ||
                    support_server_startv(&w->srv, extra) != 0))
        rc = -1;
    for (int t = 0; rc == 0 && t < M_TENANTS; t++)
        if (!(w->ingest[t] = support_client_new(w->srv.url, w->ingest_key[t])) ||
            !(w->viewer[t] = support_client_new(w->srv.url, w->viewer_key[t])))
            rc = -1;
    return rc;
}

int e2e_world_stop(e2e_world *w)
{
    for (int t = 0; t < M_TENANTS; t++) {
        support_client_free(&w->ingest[t]);
        support_client_free(&w->viewer[t]);
    }
    return support_server_stop(&w->srv);
}

/* ---------------------------------------------------------------------------
 * JSON.
 * ------------------------------------------------------------------------- */
yajl_val e2e_json(const char *text)
{
    char why[256] = "";
    yajl_val v = yajl_tree_parse(text, why, sizeof why);
    if (!v)
        fprintf(stderr, "e2e: not JSON (%s): %.300s\n", why, text);
    return v;
}

yajl_val e2e_get(yajl_val v, const char *key)
{
    if (!YAJL_IS_OBJECT(v))
        return NULL;
    for (size_t i = 0; i < v->u.object.len; i++)
        if (!strcmp(v->u.object.keys[i], key))
            return v->u.object.values[i];
    return NULL;
}

const char *e2e_get_str(yajl_val v, const char *key)
{
    yajl_val x = e2e_get(v, key);
    return YAJL_IS_STRING(x) ? YAJL_GET_STRING(x) : NULL;
}

int64_t e2e_get_int(yajl_val v, const char *key, int64_t fallback)
{
    yajl_val x = e2e_get(v, key);
    return YAJL_IS_INTEGER(x) ? (int64_t)YAJL_GET_INTEGER(x) : fallback;
}

double e2e_get_num(yajl_val v, const char *key, double fallback)
{
    yajl_val x = e2e_get(v, key);
    /* The text of the number, read back exactly (yajl's double is the same). */
    return YAJL_IS_NUMBER(x) ? strtod(YAJL_GET_NUMBER(x), NULL) : fallback;
}

/* ---------------------------------------------------------------------------
 * The model.
 * ------------------------------------------------------------------------- */
const char *const m_tenants[M_TENANTS] = {"acme", "globex"};
/* Names with spaces, '&', '\'' and '+' go through URLs percent-encoded. */
const char *const m_brands[M_BRANDS] = {"Nike",     "Adidas",  "Puma",   "H&M",
                                        "Blue Sky", "Reebok",  "asics",  "Zara",
                                        "Uniqlo",   "L'Oreal", "Levi's", "Coca-Cola"};
const char *const m_campaigns[M_CAMPAIGNS] = {"spring", "summer 26", "fall", "c+1"};
const char *const m_sectors[M_SECTORS] = {"apparel", "shoes",  "beauty & care",
                                          "drinks",  "retail", "sport"};
const char *const m_metric_names[M_METRICS] = {"memorability", "face", "logo", "product", "text"};

uint64_t e2e_seed(void)
{
    return test_seed();
}

int e2e_model_init(e2e_model *m, size_t nassets, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    m->nassets = nassets;
    m->rng = seed ? seed : 1;
    for (int t = 0; t < M_TENANTS; t++)
        if (!(m->assets[t] = calloc(nassets, sizeof *m->assets[t])))
            return -1;
    return 0;
}

void e2e_model_free(e2e_model *m)
{
    for (int t = 0; t < M_TENANTS; t++) {
        free(m->assets[t]);
        m->assets[t] = NULL;
    }
}

uint32_t e2e_below(e2e_model *m, uint32_t n)
{
    /* xorshift64*: quick, seeded, good enough to pick operations. */
    m->rng ^= m->rng >> 12;
    m->rng ^= m->rng << 25;
    m->rng ^= m->rng >> 27;
    return (uint32_t)(((m->rng * 2685821657736338717ull) >> 32) % n);
}

/* docs/formats.md, "Scores": the number as written, rounded to the nearest
 * millionth, a half away from zero, decided on the decimal.  Done here on the
 * text alone, without a double and without schema/'s code: the digits are
 * written out as a fixed-point string with the decimal point moved by the
 * exponent, and the seventh digit after the point decides. */
int64_t e2e_micro_of(const char *s)
{
    char digits[160];
    size_t nd = 0, nint = 0;
    long exp10 = 0;
    const char *p = s;
    if (*p == '-')
        p++; /* only "-0" reaches here: a negative score is refused */
    for (; *p >= '0' && *p <= '9' && nd < 64; p++, nint++)
        digits[nd++] = *p;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9' && nd < 64; p++)
            digits[nd++] = *p;
    if (*p == 'e' || *p == 'E')
        exp10 = strtol(p + 1, NULL, 10);
    /* Where the point goes among the digits; pad with zeros on either side
     * until there is one digit before it and seven after. */
    long point = (long)nint + exp10;
    if (point > 64) /* far past 1: no score of the tests */
        return INT64_MAX;
    if (point < -64)
        return 0;
    char fixed[240];
    size_t n = 0;
    for (long k = point < 1 ? point - 1 : 0; k < point + 7; k++)
        fixed[n++] = k >= 0 && k < (long)nd ? digits[k] : '0';
    fixed[n] = '\0';
    /* fixed: the integer part, then exactly seven decimals; micro-units are
     * everything but the last digit, which rounds them. */
    int64_t micro = 0;
    for (size_t i = 0; i + 1 < n; i++)
        micro = micro * 10 + (fixed[i] - '0');
    return micro + (fixed[n - 1] >= '5');
}

/* A score as a client would send it, with its micro-units known by
 * construction: m micro-units, then a tail that says which way it rounds --
 * none, a tie ("5", up: away from zero), just below half ("49999"), just
 * above ("50001"), or three digits -- in several spellings (plain, trailing
 * zeros, exponent). */
static void random_score(e2e_model *m, char out[24], int64_t *micro)
{
    uint32_t r = e2e_below(m, 100), v = e2e_below(m, 1000000), k = e2e_below(m, 8);
    if (r < 3) {
        snprintf(out, 24, "%s", k < 4 ? "0" : "0.0");
        *micro = 0;
    } else if (r < 6) {
        snprintf(out, 24, "%s", k < 4 ? "1" : "1.0000000");
        *micro = 1000000;
    } else if (r < 16) { /* exactly six decimals */
        snprintf(out, 24, k < 4 ? "0.%06u" : "0.%06u000", v);
        *micro = v;
    } else if (r < 36) { /* a tie at half a micro-unit */
        if (k < 4)
            snprintf(out, 24, "0.%06u5", v);
        else if (k < 6 && v > 0)
            snprintf(out, 24, "%u5e-7", v);
        else
            snprintf(out, 24, "0.%06u50E-0", v);
        *micro = (int64_t)v + 1;
    } else if (r < 44) { /* as close to a tie as a double can tell apart */
        snprintf(out, 24, k < 4 ? "0.%06u49999999" : "0.%06u50000001", v);
        *micro = (int64_t)v + (k >= 4);
    } else { /* nine decimals: a tie when the last three are 500 */
        uint32_t rest = e2e_below(m, 1000);
        snprintf(out, 24, "0.%06u%03u", v, rest);
        *micro = (int64_t)v + (rest >= 500);
    }
    /* Two derivations must agree: a failure here is the test's own. */
    if (e2e_micro_of(out) != *micro) {
        fprintf(stderr, "e2e: the model reads score %s as %lld micro-units, built as %lld\n", out,
                (long long)e2e_micro_of(out), (long long)*micro);
        exit(1);
    }
}

void e2e_random_scores(e2e_model *m, m_asset *a)
{
    random_score(m, a->score[0], &a->micro[0]);
    for (int k = 1; k < M_METRICS; k++) {
        a->micro[k] = 0;
        if (e2e_below(m, 2))
            random_score(m, a->score[k], &a->micro[k]);
        else
            a->score[k][0] = '\0';
    }
}

/* 1 when a and b store the same: both absent, or the same nearest double and
 * the same micro-units (two spellings of one number store equal bytes). */
static int same_score(const char *a, const char *b)
{
    if (!a[0] || !b[0])
        return !a[0] && !b[0];
    return strtod(a, NULL) == strtod(b, NULL) && e2e_micro_of(a) == e2e_micro_of(b);
}

int e2e_same_scores(const m_asset *a, const m_asset *b)
{
    for (int k = 0; k < M_METRICS; k++)
        if (!same_score(a->score[k], b->score[k]))
            return 0;
    return 1;
}

void e2e_asset_id(size_t i, char out[16])
{
    snprintf(out, 16, "as-%06u", (unsigned)i); /* ids per tenant stay far below 2^32 */
}

size_t e2e_asset_json(const m_asset *a, const char *id, int with_id, char *out, size_t cap)
{
    size_t n = 0;
#define PUT(...) n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, __VA_ARGS__)
    PUT("{");
    if (with_id)
        PUT("\"asset\":\"%s\",", id);
    PUT("\"client\":\"cl-1\",\"brand\":\"%s\",\"campaign\":\"%s\",\"sector\":\"%s\","
        "\"media_type\":\"%s\",\"memorability\":%s,\"saliency\":{",
        m_brands[a->brand], m_campaigns[a->campaign], m_sectors[a->sector],
        a->video ? "video" : "image", a->score[0]);
    int first = 1;
    for (int k = 1; k < M_METRICS; k++)
        if (a->score[k][0]) {
            PUT("%s\"%s\":%s", first ? "" : ",", m_metric_names[k], a->score[k]);
            first = 0;
        }
    PUT("}}");
#undef PUT
    return n < cap ? n : cap - 1;
}

static void agg_add(m_agg *g, const m_asset *a)
{
    g->count++;
    for (int k = 0; k < M_METRICS; k++) {
        if (!a->score[k][0])
            continue;
        m_metric *x = &g->m[k];
        int64_t v = a->micro[k];
        x->n++;
        x->sum += v;
        x->sumsq += (__int128)v * v;
        x->hist[v >= 1000000 ? M_BINS - 1 : v / 10000]++;
    }
}

void e2e_expect(const e2e_model *m, int t, m_expect *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < m->nassets; i++) {
        const m_asset *a = &m->assets[t][i];
        if (!a->present)
            continue;
        agg_add(&out->brand[a->brand], a);
        agg_add(&out->campaign[a->brand][a->campaign], a);
        agg_add(&out->sector[a->sector], a);
    }
}

/* ---------------------------------------------------------------------------
 * The expected numbers, exactly.  docs/dashboard.md, "Numbers", defines each
 * as a rational of the integer sums (or the square root of one); the API's
 * double must lie within one ulp of it (tests/exact.h: compared in integers,
 * sharing no floating-point step with the engine).
 * ------------------------------------------------------------------------- */
/* mean = sum / n / 1e6 */
static exact exact_mean(const m_metric *m)
{
    return (exact){(unsigned __int128)m->sum, (unsigned __int128)m->n * 1000000, 0};
}

/* stddev = sqrt((n * sumsq - sum^2) / n^2) / 1e6, population */
static exact exact_stddev(const m_metric *m)
{
    __int128 num = (__int128)m->n * m->sumsq - (__int128)m->sum * m->sum;
    return (exact){(unsigned __int128)num, (unsigned __int128)m->n * m->n * 1000000000000ull, 1};
}

/* The documented interpolation: in the bin i where the cumulative count
 * before it, c, satisfies c < q*n <= c + hist[i],
 * x = (i * 10000 + (q*n - c) / hist[i] * 10000) / 1e6; for q*n == 0 the
 * lower edge of the first non-empty bin.  With q in hundredths (q100) and
 * h = hist[i]: x = (i * 10000 * h + (q100 * n - 100 * c) * 100) / (h * 1e6). */
static exact exact_percentile(const m_metric *m, int q100)
{
    __int128 rank = (__int128)q100 * m->n, c = 0; /* in hundredths */
    for (int i = 0; i < M_BINS; i++) {
        if (m->hist[i] == 0)
            continue;
        __int128 h = m->hist[i];
        if (rank <= (c + h) * 100) {
            __int128 within = rank > c * 100 ? (rank - c * 100) * 100 : 0;
            return (exact){(unsigned __int128)((__int128)i * 10000 * h + within),
                           (unsigned __int128)h * 1000000, 0};
        }
        c += h;
    }
    return (exact){0, 0, 0}; /* bins that do not add up to n: never in the model */
}

int e2e_oracle_selftest(void)
{
    int bad = 0;
    uint64_t rng = 88172645463325252ull;
    for (int i = 0; i < 2000; i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        m_metric m = {0};
        m.n = 1 + (int64_t)(rng % 1000);
        for (int64_t k = 0; k < m.n; k++) {
            int64_t v = (int64_t)((rng >> 11) + (uint64_t)k * 7919u) % 1000001;
            m.sum += v;
            m.sumsq += (__int128)v * v;
            m.hist[v >= 1000000 ? M_BINS - 1 : v / 10000]++;
        }
        const exact x[] = {exact_mean(&m),
                           exact_stddev(&m),
                           exact_percentile(&m, 10),
                           exact_percentile(&m, 90),
                           {(unsigned)(rng % 101), 100, 0}};
        for (size_t j = 0; j < sizeof x / sizeof x[0]; j++) {
            /* Nearest double to x (long double first: well within half an ulp). */
            double d = (double)exact_approx(&x[j]);
            double two_up = nextafter(nextafter(d, INFINITY), INFINITY);
            double two_down = nextafter(nextafter(d, -INFINITY), -INFINITY);
            if (!exact_within_ulp(d, &x[j]) || exact_within_ulp(two_up, &x[j]) ||
                (d > 0 && exact_within_ulp(two_down, &x[j]))) {
                fprintf(stderr, "e2e: the one-ulp comparison is wrong for %.21Lg (%zu of n %lld)\n",
                        exact_approx(&x[j]), j, (long long)m.n);
                bad++;
            }
        }
    }
    return bad;
}

static int metric_index(const char *name)
{
    for (int k = 0; k < M_METRICS; k++)
        if (!strcmp(m_metric_names[k], name))
            return k;
    return -1;
}

int e2e_compare_agg(const char *what, yajl_val obj, const m_agg *want)
{
    int diffs = 0;
#define DIFF(...)                                                                                  \
    do {                                                                                           \
        diffs++;                                                                                   \
        fprintf(stderr, "e2e: %s: ", what);                                                        \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
    } while (0)
    int64_t count = e2e_get_int(obj, "count", -1);
    if (count != want->count)
        DIFF("count %lld, expected %lld", (long long)count, (long long)want->count);
    yajl_val metrics = e2e_get(obj, "metrics");
    if (!YAJL_IS_OBJECT(metrics)) {
        DIFF("no metrics object");
        goto out;
    }
    for (size_t i = 0; i < metrics->u.object.len; i++) {
        int k = metric_index(metrics->u.object.keys[i]);
        if (k < 0 || want->m[k].n == 0)
            DIFF("metric %s is listed but no asset carries it", metrics->u.object.keys[i]);
    }
    for (int k = 0; k < M_METRICS; k++) {
        const m_metric *w = &want->m[k];
        const char *name = m_metric_names[k];
        yajl_val got = e2e_get(metrics, name);
        if (w->n == 0)
            continue;
        if (!YAJL_IS_OBJECT(got)) {
            DIFF("metric %s is missing (expected n %lld)", name, (long long)w->n);
            continue;
        }
        int64_t n = e2e_get_int(got, "n", -1), sum = e2e_get_int(got, "sum_micro", -1);
        if (n != w->n)
            DIFF("%s.n %lld, expected %lld", name, (long long)n, (long long)w->n);
        if (sum != w->sum)
            DIFF("%s.sum_micro %lld, expected %lld", name, (long long)sum, (long long)w->sum);
        static const char *const pn[] = {"mean", "stddev", "p10", "median", "p90"};
        const exact want_x[] = {exact_mean(w), exact_stddev(w), exact_percentile(w, 10),
                                exact_percentile(w, 50), exact_percentile(w, 90)};
        for (int p = 0; p < 5; p++) {
            double x = e2e_get_num(got, pn[p], NAN);
            if (!exact_within_ulp(x, &want_x[p]))
                DIFF("%s.%s %.17g, expected %.21Lg (within one ulp)", name, pn[p], x,
                     exact_approx(&want_x[p]));
        }
        int lo = -1, hi = -1;
        for (int b = 0; b < M_BINS; b++)
            if (w->hist[b]) {
                hi = b;
                if (lo < 0)
                    lo = b;
            }
        const exact edge[2] = {{(unsigned)lo, 100, 0}, {(unsigned)hi + 1, 100, 0}};
        double mn = e2e_get_num(got, "min", NAN), mx = e2e_get_num(got, "max", NAN);
        if (!exact_within_ulp(mn, &edge[0]) || !exact_within_ulp(mx, &edge[1]))
            DIFF("%s min/max %.17g/%.17g, expected %d/100 and %d/100", name, mn, mx, lo, hi + 1);
        yajl_val hist = e2e_get(got, "histogram");
        if (hist) {
            if (!YAJL_IS_ARRAY(hist) || hist->u.array.len != M_BINS) {
                DIFF("%s.histogram is not an array of %d counts", name, M_BINS);
            } else {
                for (int b = 0; b < M_BINS; b++) {
                    yajl_val v = hist->u.array.values[b];
                    long long c = YAJL_IS_INTEGER(v) ? YAJL_GET_INTEGER(v) : -1;
                    if (c != w->hist[b])
                        DIFF("%s.histogram[%d] %lld, expected %lld", name, b, c,
                             (long long)w->hist[b]);
                }
            }
        }
    }
out:
#undef DIFF
    return diffs;
}

/* ---------------------------------------------------------------------------
 * The workload.
 * ------------------------------------------------------------------------- */
enum { OP_INSERT = 1, OP_RESCORE, OP_REASSIGN, OP_RESEND };

typedef struct pending_line {
    size_t idx;
    int kind;
    m_asset next;
} pending_line;

#define BATCH_MAX  256
#define LINE_MAX_B 768

typedef struct tenant_work {
    pending_line lines[BATCH_MAX];
    size_t n, target;
    char *busy; /* ids in the pending batch */
} tenant_work;

static int present_free(const e2e_model *m, const tenant_work *w, int t, size_t i, int want_present)
{
    return m->assets[t][i].present == want_present && !w->busy[i];
}

/* A random id that is (not) present and not in the pending batch; -1 when
 * a few tries found none. */
static long pick(e2e_model *m, const tenant_work *w, int t, int want_present)
{
    for (int tries = 0; tries < 32; tries++) {
        size_t i = e2e_below(m, (uint32_t)m->nassets);
        if (present_free(m, w, t, i, want_present))
            return (long)i;
    }
    return -1;
}

/* After a batch answered other counts than expected: prints the lines whose
 * content the model thinks changes but is equal to the stored one, or the
 * other way round (ingest keys cannot read assets back). */
static void diagnose(e2e_model *m, const tenant_work *w, int t)
{
    char id[16], before[LINE_MAX_B], after[LINE_MAX_B];
    for (size_t i = 0; i < w->n; i++) {
        const pending_line *l = &w->lines[i];
        const m_asset *cur = &m->assets[t][l->idx];
        e2e_asset_id(l->idx, id);
        e2e_asset_json(cur, id, 0, before, sizeof before);
        e2e_asset_json(&l->next, id, 0, after, sizeof after);
        int same = cur->present && !strcmp(before, after);
        if (same != (l->kind == OP_RESEND))
            fprintf(stderr, "e2e:   line %zu (%s, kind %d): before %s (present %d), after %s\n", i,
                    id, l->kind, before, cur->present, after);
    }
}

/* Sends the pending batch of tenant t; on 200 the model takes its lines.
 * Sometimes a bad line is appended first: the whole batch must be refused
 * (400) and nothing of it stored, then it is sent again without it. */
static int flush(e2e_model *m, tenant_work *w, int t, support_client *c, e2e_workload_stats *st)
{
    int bad = 0;
    if (!w->n)
        return 0;
    char *body = malloc(w->n * LINE_MAX_B + LINE_MAX_B);
    size_t len = 0;
    int expect_changed = 0;
    for (size_t i = 0; i < w->n; i++) {
        char id[16];
        e2e_asset_id(w->lines[i].idx, id);
        len += e2e_asset_json(&w->lines[i].next, id, 1, body + len, LINE_MAX_B);
        body[len++] = '\n';
        expect_changed += w->lines[i].kind != OP_RESEND;
    }
    if (e2e_below(m, 100) < 3) {
        size_t with_bad = len + (size_t)snprintf(body + len, LINE_MAX_B,
                                                 "{\"asset\":\"bad-1\",\"client\":\"cl-1\","
                                                 "\"brand\":\"Nike\",\"campaign\":\"x\",\"sector\":"
                                                 "\"y\",\"media_type\":\"image\",\"memorability\":"
                                                 "1.5,\"saliency\":{}}\n");
        long s = support_req(c, "POST", "/v1/assets:batch", body, with_bad);
        st->batch_requests++;
        st->refused++;
        if (s != 400) {
            bad++;
            fprintf(stderr, "e2e: a batch with a bad last line answered %ld: %.300s\n", s,
                    support_body(c));
        }
    }
    long s = support_req(c, "POST", "/v1/assets:batch", body, len);
    st->batch_requests++;
    yajl_val v = s == 200 ? e2e_json(support_body(c)) : NULL;
    if (!v || e2e_get_int(v, "assets", -1) != (int64_t)w->n ||
        e2e_get_int(v, "changed", -1) != expect_changed) {
        bad++;
        fprintf(stderr, "e2e: batch of %zu lines (%d changing) answered %ld: %.300s\n", w->n,
                expect_changed, s, support_body(c));
    }
    if (s == 200 && bad)
        diagnose(m, w, t);
    if (s == 200)
        for (size_t i = 0; i < w->n; i++)
            m->assets[t][w->lines[i].idx] = w->lines[i].next;
    for (size_t i = 0; i < w->n; i++)
        w->busy[w->lines[i].idx] = 0;
    w->n = 0;
    w->target = 16 + e2e_below(m, BATCH_MAX - 16);
    if (v)
        yajl_tree_free(v);
    free(body);
    return bad;
}

/* The next state of an upsert of kind on asset idx into *next. */
static void upsert_state(e2e_model *m, int t, size_t idx, int kind, m_asset *next)
{
    const m_asset *cur = &m->assets[t][idx];
    *next = *cur;
    next->present = 1;
    next->version = kind == OP_INSERT ? 1 : cur->version + (kind != OP_RESEND);
    if (kind == OP_INSERT) {
        next->brand = (int)e2e_below(m, M_BRANDS);
        next->campaign = (int)e2e_below(m, M_CAMPAIGNS);
        next->sector = (int)e2e_below(m, M_SECTORS);
        next->video = (int)e2e_below(m, 4) == 0;
        e2e_random_scores(m, next);
    } else if (kind == OP_RESCORE) {
        /* New scores, never all equal to the old ones (a 1 with no saliency
         * comes round again often enough to matter): a rescore changes. */
        do
            e2e_random_scores(m, next);
        while (e2e_same_scores(next, cur));
    } else if (kind == OP_REASSIGN) {
        uint32_t what = 1 + e2e_below(m, 7); /* any non-empty subset of brand, campaign, sector */
        if (what & 1)
            next->brand = (cur->brand + 1 + (int)e2e_below(m, M_BRANDS - 1)) % M_BRANDS;
        if (what & 2)
            next->campaign = (cur->campaign + 1 + (int)e2e_below(m, M_CAMPAIGNS - 1)) % M_CAMPAIGNS;
        if (what & 4)
            next->sector = (cur->sector + 1 + (int)e2e_below(m, M_SECTORS - 1)) % M_SECTORS;
        if (e2e_below(m, 3) == 0)
            e2e_random_scores(m, next);
    }
}

int e2e_workload(e2e_model *m, support_client *const ingest[M_TENANTS], int64_t ops,
                 void (*hook)(void *ctx, int64_t done), void *ctx, e2e_workload_stats *st)
{
    int bad = 0;
    tenant_work *w = calloc(M_TENANTS, sizeof *w);
    char body[LINE_MAX_B], path[128], id[16];
    memset(st, 0, sizeof *st);
    for (int t = 0; t < M_TENANTS; t++) {
        w[t].busy = calloc(m->nassets, 1);
        w[t].target = 16 + e2e_below(m, BATCH_MAX - 16);
    }
    for (int64_t done = 0; done < ops; done++) {
        int t = (int)e2e_below(m, M_TENANTS);
        tenant_work *tw = &w[t];
        uint32_t r = e2e_below(m, 100);
        long idx = -1;
        if (r < 9 && (idx = pick(m, tw, t, 1)) >= 0) { /* delete */
            e2e_asset_id((size_t)idx, id);
            snprintf(path, sizeof path, "/v1/assets/%s", id);
            long s = support_req(ingest[t], "DELETE", path, NULL, 0);
            st->single_requests++;
            st->deletes++;
            if (s == 204) {
                m->assets[t][idx].present = 0;
            } else {
                bad++;
                fprintf(stderr, "e2e: DELETE %s answered %ld: %.300s\n", path, s,
                        support_body(ingest[t]));
            }
        } else if (r < 10) { /* refused: a score outside [0, 1] */
            m_asset a;
            memset(&a, 0, sizeof a);
            snprintf(a.score[0], sizeof a.score[0], "1.5");
            e2e_asset_json(&a, "x", 0, body, sizeof body);
            idx = (long)e2e_below(m, (uint32_t)m->nassets);
            e2e_asset_id((size_t)idx, id);
            snprintf(path, sizeof path, "/v1/assets/%s", id);
            long s = support_req(ingest[t], "PUT", path, body, strlen(body));
            st->single_requests++;
            st->refused++;
            if (s != 400) {
                bad++;
                fprintf(stderr, "e2e: a PUT with memorability 1.5 answered %ld\n", s);
            }
        } else {
            uint32_t k = e2e_below(m, 90);
            int kind = k < 35 ? OP_INSERT : k < 55 ? OP_RESCORE : k < 75 ? OP_REASSIGN : OP_RESEND;
            idx = pick(m, tw, t, kind == OP_INSERT ? 0 : 1);
            if (idx < 0) { /* none free of that kind: the other kind */
                kind = kind == OP_INSERT ? OP_RESCORE : OP_INSERT;
                idx = pick(m, tw, t, kind == OP_INSERT ? 0 : 1);
            }
            if (idx < 0) { /* everything is in the pending batch */
                bad += flush(m, tw, t, ingest[t], st);
                done--;
                continue;
            }
            st->inserts += kind == OP_INSERT;
            st->rescores += kind == OP_RESCORE;
            st->reassigns += kind == OP_REASSIGN;
            st->resends += kind == OP_RESEND;
            m_asset next;
            upsert_state(m, t, (size_t)idx, kind, &next);
            if (e2e_below(m, 100) < 12) { /* a single PUT */
                e2e_asset_id((size_t)idx, id);
                snprintf(path, sizeof path, "/v1/assets/%s", id);
                e2e_asset_json(&next, id, 0, body, sizeof body);
                long s = support_req(ingest[t], "PUT", path, body, strlen(body));
                st->single_requests++;
                yajl_val v = s == 200 || s == 201 ? e2e_json(support_body(ingest[t])) : NULL;
                int64_t version = e2e_get_int(v, "version", -1);
                if (v)
                    yajl_tree_free(v);
                if (s == (kind == OP_INSERT ? 201 : 200) && version == next.version) {
                    m->assets[t][idx] = next;
                } else {
                    bad++;
                    fprintf(stderr, "e2e: PUT %s (kind %d) answered %ld: %.300s\n", path, kind, s,
                            support_body(ingest[t]));
                }
            } else {
                tw->lines[tw->n++] = (pending_line){(size_t)idx, kind, next};
                tw->busy[idx] = 1;
                if (tw->n >= tw->target)
                    bad += flush(m, tw, t, ingest[t], st);
            }
        }
        if (hook)
            hook(ctx, done + 1);
    }
    for (int t = 0; t < M_TENANTS; t++) {
        bad += flush(m, &w[t], t, ingest[t], st);
        free(w[t].busy);
    }
    free(w);
    return bad;
}

/* ---------------------------------------------------------------------------
 * The full check of a tenant's dashboard.
 * ------------------------------------------------------------------------- */

/* GETs every page of path (which has a '?') holding array `array`; calls
 * fn for each item.  Returns differences (bad pages), counting items. */
static int each_item(support_client *c, const char *path, const char *array,
                     int (*fn)(void *ctx, yajl_val item), void *ctx, int *items)
{
    int diffs = 0;
    char cursor[1100] = "", url[1600];
    *items = 0;
    for (int pages = 0; pages < 10000; pages++) {
        snprintf(url, sizeof url, "%s%s%s", path, cursor[0] ? "&cursor=" : "", cursor);
        long s = support_req(c, "GET", url, NULL, 0);
        yajl_val v = s == 200 ? e2e_json(support_body(c)) : NULL;
        yajl_val arr = e2e_get(v, array), next = e2e_get(v, "next");
        if (!YAJL_IS_ARRAY(arr) || !(YAJL_IS_NULL(next) || YAJL_IS_STRING(next))) {
            fprintf(stderr, "e2e: GET %s answered %ld: %.300s\n", url, s, support_body(c));
            diffs++;
            if (v)
                yajl_tree_free(v);
            break;
        }
        for (size_t i = 0; i < arr->u.array.len; i++, (*items)++)
            diffs += fn(ctx, arr->u.array.values[i]);
        int last = YAJL_IS_NULL(next);
        const char *nx = last ? NULL : YAJL_GET_STRING(next); /* a string: checked above */
        if (nx)
            snprintf(cursor, sizeof cursor, "%s", nx);
        yajl_tree_free(v);
        if (last)
            break;
    }
    return diffs;
}

typedef struct list_ctx {
    const m_expect *x;
    int brand; /* campaigns: of this brand */
    int seen[M_BRANDS > M_SECTORS ? M_BRANDS : M_SECTORS];
    char last[160]; /* names must come in ascending byte order */
} list_ctx;

static int name_index(const char *const *names, int n, const char *s)
{
    for (int i = 0; s && i < n; i++)
        if (!strcmp(names[i], s))
            return i;
    return -1;
}

static int check_order(list_ctx *lc, const char *name)
{
    int bad = lc->last[0] && strcmp(lc->last, name) >= 0;
    if (bad)
        fprintf(stderr, "e2e: \"%s\" listed after \"%s\"\n", name, lc->last);
    snprintf(lc->last, sizeof lc->last, "%s", name);
    return bad;
}

static int on_brand(void *ctx, yajl_val item)
{
    list_ctx *lc = ctx;
    const char *name = e2e_get_str(item, "brand");
    int b = name_index(m_brands, M_BRANDS, name), diffs = 0;
    char what[200];
    if (b < 0 || lc->seen[b]++ || lc->x->brand[b].count == 0) {
        fprintf(stderr, "e2e: brand \"%s\" listed wrongly (unknown, twice, or has no asset)\n",
                name ? name : "(none)");
        return 1;
    }
    diffs += check_order(lc, name);
    snprintf(what, sizeof what, "listed brand %s", name);
    return diffs + e2e_compare_agg(what, item, &lc->x->brand[b]);
}

static int on_campaign(void *ctx, yajl_val item)
{
    list_ctx *lc = ctx;
    const char *name = e2e_get_str(item, "campaign"), *brand = e2e_get_str(item, "brand");
    int c = name_index(m_campaigns, M_CAMPAIGNS, name), diffs = 0;
    char what[200];
    if (c < 0 || !brand || strcmp(brand, m_brands[lc->brand]) || lc->seen[c]++ ||
        lc->x->campaign[lc->brand][c].count == 0) {
        fprintf(stderr, "e2e: campaign \"%s\" of %s listed wrongly\n", name ? name : "(none)",
                m_brands[lc->brand]);
        return 1;
    }
    diffs += check_order(lc, name);
    snprintf(what, sizeof what, "listed campaign %s / %s", m_brands[lc->brand], name);
    return diffs + e2e_compare_agg(what, item, &lc->x->campaign[lc->brand][c]);
}

static int on_sector(void *ctx, yajl_val item)
{
    list_ctx *lc = ctx;
    const char *name = e2e_get_str(item, "sector");
    int s = name_index(m_sectors, M_SECTORS, name), diffs = 0;
    char what[200];
    if (s < 0 || lc->seen[s]++ || lc->x->sector[s].count == 0) {
        fprintf(stderr, "e2e: sector \"%s\" listed wrongly\n", name ? name : "(none)");
        return 1;
    }
    diffs += check_order(lc, name);
    snprintf(what, sizeof what, "listed sector %s", name);
    return diffs + e2e_compare_agg(what, item, &lc->x->sector[s]);
}

/* GET path: 200 compared with want (histogram included), or 404 when want
 * counts nothing. */
static int check_one(support_client *c, const char *path, const char *what, const m_agg *want)
{
    char url[700];
    snprintf(url, sizeof url, "%s?histogram=true", path);
    long s = support_req(c, "GET", url, NULL, 0);
    int diffs = 0;
    if (want->count == 0) {
        if (s != 404) {
            fprintf(stderr, "e2e: %s has no asset but GET %s answered %ld\n", what, path, s);
            diffs++;
        }
    } else if (s != 200) {
        fprintf(stderr, "e2e: GET %s answered %ld: %.300s\n", path, s, support_body(c));
        diffs++;
    } else {
        yajl_val v = e2e_json(support_body(c));
        diffs += v ? e2e_compare_agg(what, v, want) : 1;
        yajl_val ms = e2e_get(v, "metrics");
        for (size_t i = 0; YAJL_IS_OBJECT(ms) && i < ms->u.object.len; i++)
            if (!e2e_get(ms->u.object.values[i], "histogram")) {
                fprintf(stderr, "e2e: %s: metric %s has no histogram\n", what,
                        ms->u.object.keys[i]);
                diffs++;
            }
        if (v)
            yajl_tree_free(v);
    }
    return diffs;
}

int e2e_check_all(e2e_model *m, int t, support_client *viewer, int page_limit)
{
    int diffs = 0, items = 0, want = 0;
    m_expect *x = malloc(sizeof *x);
    char path[600], eb[200], ec[200], what[300];
    e2e_expect(m, t, x);
    /* Every brand, by name, page by page. */
    list_ctx lc = {.x = x};
    snprintf(path, sizeof path, "/v1/brands?limit=%d", page_limit);
    diffs += each_item(viewer, path, "brands", on_brand, &lc, &items);
    for (int b = 0; b < M_BRANDS; b++)
        want += x->brand[b].count > 0;
    if (items != want) {
        fprintf(stderr, "e2e: %s: %d brands listed, expected %d\n", m_tenants[t], items, want);
        diffs++;
    }
    for (int b = 0; b < M_BRANDS; b++) {
        support_escape(m_brands[b], eb, sizeof eb);
        snprintf(path, sizeof path, "/v1/brands/%s", eb);
        snprintf(what, sizeof what, "%s brand %s", m_tenants[t], m_brands[b]);
        diffs += check_one(viewer, path, what, &x->brand[b]);
        list_ctx cc = {.x = x, .brand = b};
        snprintf(path, sizeof path, "/v1/brands/%s/campaigns?limit=%d", eb, page_limit);
        if (x->brand[b].count == 0) {
            long s = support_req(viewer, "GET", path, NULL, 0);
            if (s != 404) {
                fprintf(stderr, "e2e: GET %s answered %ld for a brand with no asset\n", path, s);
                diffs++;
            }
            continue;
        }
        diffs += each_item(viewer, path, "campaigns", on_campaign, &cc, &items);
        want = 0;
        for (int c = 0; c < M_CAMPAIGNS; c++) {
            want += x->campaign[b][c].count > 0;
            support_escape(m_campaigns[c], ec, sizeof ec);
            snprintf(path, sizeof path, "/v1/brands/%s/campaigns/%s", eb, ec);
            snprintf(what, sizeof what, "%s campaign %s / %s", m_tenants[t], m_brands[b],
                     m_campaigns[c]);
            diffs += check_one(viewer, path, what, &x->campaign[b][c]);
        }
        if (items != want) {
            fprintf(stderr, "e2e: %d campaigns of %s listed, expected %d\n", items, m_brands[b],
                    want);
            diffs++;
        }
    }
    list_ctx sc = {.x = x};
    snprintf(path, sizeof path, "/v1/sectors?limit=%d", page_limit);
    diffs += each_item(viewer, path, "sectors", on_sector, &sc, &items);
    want = 0;
    for (int s = 0; s < M_SECTORS; s++) {
        want += x->sector[s].count > 0;
        support_escape(m_sectors[s], eb, sizeof eb);
        snprintf(path, sizeof path, "/v1/sectors/%s", eb);
        snprintf(what, sizeof what, "%s sector %s", m_tenants[t], m_sectors[s]);
        diffs += check_one(viewer, path, what, &x->sector[s]);
    }
    if (items != want) {
        fprintf(stderr, "e2e: %d sectors listed, expected %d\n", items, want);
        diffs++;
    }
    free(x);
    return diffs;
}
