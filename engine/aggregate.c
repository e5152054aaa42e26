/* aggregate.c -- one aggregate in memory: metric arithmetic (exact int64 sums,
 * 128-bit sums of squares, fixed-bin histograms), the numbers derived on read,
 * and identity/keys.  Encoding and decoding are in aggregate_codec.c. */
#include "engine_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void engine_agg_init(engine_agg *a)
{
    memset(a, 0, sizeof *a);
}

void engine_agg_free(engine_agg *a)
{
    if (a) {
        free(a->metrics);
        memset(a, 0, sizeof *a);
    }
}

sl_status engine_agg_copy(engine_agg *dst, const engine_agg *src, sl_error *err)
{
    sl_status rc = SL_OK;
    engine_metric *m = NULL;
    if (src->nmetrics) {
        m = malloc(src->nmetrics * sizeof *m);
        if (!m) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory copying an aggregate");
            goto out;
        }
        memcpy(m, src->metrics, src->nmetrics * sizeof *m);
    }
    free(dst->metrics);
    *dst = *src;
    dst->metrics = m;
    dst->cap_metrics = src->nmetrics;
out:
    return rc;
}

/* Index of name in a's sorted metrics, or -(insertion point) - 1. */
static long metric_search(const engine_agg *a, const char *name)
{
    size_t lo = 0, hi = a->nmetrics;
    long found = -1;
    while (lo < hi && found < 0) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(a->metrics[mid].name, name);
        if (c == 0)
            found = (long)mid;
        else if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return found >= 0 ? found : -(long)lo - 1;
}

const engine_metric *engine_agg_metric(const engine_agg *a, const char *name)
{
    long i = metric_search(a, name);
    return i >= 0 ? &a->metrics[i] : NULL;
}

static int metric_is_zero(const engine_metric *m)
{
    int zero = !m->n && !m->sum && !m->sumsq;
    for (int i = 0; zero && i < ENGINE_HIST_BINS; i++)
        zero = !m->hist[i];
    return zero;
}

int engine_agg_is_zero(const engine_agg *a)
{
    int zero = !a->count && !a->surgeries && !a->surgeries_opened && !a->surgeries_used &&
               !a->units_opened && !a->units_used && !a->waste_cents;
    /* (Over the metric limit it has no metrics: the counters say it all.) */
    for (size_t i = 0; zero && i < a->nmetrics; i++)
        zero = metric_is_zero(&a->metrics[i]);
    return zero;
}

engine_metric *engine__agg_metric_get(engine_agg *a, const char *name, sl_error *err)
{
    engine_metric *m = NULL;
    long i = metric_search(a, name);
    if (i >= 0) {
        m = &a->metrics[i];
        goto out;
    }
    size_t at = (size_t)(-i - 1);
    if (a->nmetrics >= ENGINE_AGG_METRICS_MAX) {
        schema_key pk, sk;
        if (engine_agg_keys(a, pk, sk, NULL) != SL_OK)
            snprintf(sk, sizeof sk, "an aggregate");
        sl_error_set(err, SL_ETOOLARGE,
                     "over the metric limit: %s of tenant %s would hold more than %d metrics "
                     "(adding \"%s\")",
                     sk, a->tenant, ENGINE_AGG_METRICS_MAX, name);
        goto out;
    }
    if (a->nmetrics == a->cap_metrics) {
        size_t cap = a->cap_metrics ? a->cap_metrics * 2 : 4;
        engine_metric *grown = realloc(a->metrics, cap * sizeof *grown);
        if (!grown) {
            sl_error_set(err, SL_ENOMEM, "out of memory growing an aggregate's metrics");
            goto out;
        }
        a->metrics = grown;
        a->cap_metrics = cap;
    }
    memmove(&a->metrics[at + 1], &a->metrics[at], (a->nmetrics - at) * sizeof *a->metrics);
    a->nmetrics++;
    m = &a->metrics[at];
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s", name);
out:
    return m;
}

void engine__agg_prune(engine_agg *a)
{
    size_t w = 0;
    for (size_t r = 0; r < a->nmetrics; r++) {
        if (metric_is_zero(&a->metrics[r]))
            continue;
        if (w != r)
            a->metrics[w] = a->metrics[r];
        w++;
    }
    a->nmetrics = w;
}

int engine__agg_same_identity(const engine_agg *a, const engine_agg *b)
{
    return a->kind == b->kind && !strcmp(a->tenant, b->tenant) && !strcmp(a->brand, b->brand) &&
           !strcmp(a->campaign, b->campaign) && !strcmp(a->sector, b->sector) &&
           !strcmp(a->hospital, b->hospital) && !strcmp(a->procedure, b->procedure) &&
           !strcmp(a->sku, b->sku);
}

void engine__agg_copy_identity(engine_agg *dst, const engine_agg *src)
{
    dst->kind = src->kind;
    memcpy(dst->tenant, src->tenant, sizeof dst->tenant);
    memcpy(dst->brand, src->brand, sizeof dst->brand);
    memcpy(dst->campaign, src->campaign, sizeof dst->campaign);
    memcpy(dst->sector, src->sector, sizeof dst->sector);
    memcpy(dst->hospital, src->hospital, sizeof dst->hospital);
    memcpy(dst->procedure, src->procedure, sizeof dst->procedure);
    memcpy(dst->sku, src->sku, sizeof dst->sku);
}

sl_status engine_agg_add(engine_agg *dst, const engine_agg *delta, int sign, sl_error *err)
{
    sl_status rc = SL_OK;
    engine_agg work;
    engine_agg_init(&work);
    if (dst->kind && dst->kind != delta->kind) {
        rc = sl_error_set(err, SL_EINVAL, "cannot add an aggregate of kind %d to one of kind %d",
                          (int)delta->kind, (int)dst->kind);
        goto out;
    }
    if (dst->over_metrics || delta->over_metrics) { /* its metrics are not there to add */
        rc = sl_error_set(err, SL_ETOOLARGE,
                          "over the metric limit: an aggregate of tenant %s holds more than %d "
                          "metrics",
                          delta->tenant, ENGINE_AGG_METRICS_MAX);
        goto out;
    }
    /* Work on a copy so that dst is unchanged when a metric cannot be added;
     * all-zero metrics (a set's, left by a +1 and a -1) take no place. */
    if ((rc = engine_agg_copy(&work, dst, err)) != SL_OK)
        goto out;
    engine__agg_prune(&work);
    if (!work.kind)
        engine__agg_copy_identity(&work, delta);
    int64_t s = sign < 0 ? -1 : 1;
    work.count += s * delta->count;
    work.surgeries += s * delta->surgeries;
    work.surgeries_opened += s * delta->surgeries_opened;
    work.surgeries_used += s * delta->surgeries_used;
    work.units_opened += s * delta->units_opened;
    work.units_used += s * delta->units_used;
    work.waste_cents += s * delta->waste_cents;
    for (size_t i = 0; i < delta->nmetrics; i++) {
        const engine_metric *d = &delta->metrics[i];
        if (metric_is_zero(d))
            continue;
        engine_metric *m = engine__agg_metric_get(&work, d->name, err);
        if (!m) {
            rc = err ? err->status : SL_ENOMEM;
            goto out;
        }
        m->n += s * d->n;
        m->sum += s * d->sum;
        m->sumsq += (engine_i128)s * d->sumsq;
        for (int b = 0; b < ENGINE_HIST_BINS; b++)
            m->hist[b] += s * d->hist[b];
    }
    engine__agg_prune(&work);
    free(dst->metrics);
    *dst = work;
    engine_agg_init(&work);
out:
    engine_agg_free(&work);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Keys.
 * ------------------------------------------------------------------------- */
sl_status engine_agg_keys(const engine_agg *a, schema_key pk, schema_key sk, sl_error *err)
{
    sl_status rc = schema_pk_aggregates(pk, a->tenant, err);
    if (rc != SL_OK)
        goto out;
    switch (a->kind) {
    case ENGINE_AGG_BRAND:
        rc = schema_sk_brand(sk, a->brand, err);
        break;
    case ENGINE_AGG_CAMPAIGN:
        rc = schema_sk_brand_campaign(sk, a->brand, a->campaign, err);
        break;
    case ENGINE_AGG_SECTOR:
        rc = schema_sk_sector(sk, a->sector, err);
        break;
    case ENGINE_AGG_TOOL:
        rc = schema_sk_tool_aggregate(sk, a->hospital, a->procedure, a->sku, err);
        break;
    default:
        rc = sl_error_set(err, SL_EINVAL, "aggregate has no kind");
        break;
    }
out:
    return rc;
}

/* Splits s at '#' into at most max parts (pointers into buf); returns the count,
 * or -1 when there are more or s does not fit. */
static int split_hash(const char *s, char *buf, size_t size, char **parts, int max)
{
    size_t len = strlen(s);
    int n = 0, fits = len + 1 <= size;
    char *p = fits ? buf : NULL;
    if (fits)
        memcpy(buf, s, len + 1);
    while (p && n < max) {
        parts[n++] = p;
        char *h = strchr(p, '#');
        if (h)
            *h = '\0';
        p = h ? h + 1 : NULL;
    }
    return !fits || p ? -1 : n; /* p still set: more parts than max */
}

static sl_status copy_component(char *dst, const char *what, const char *v, sl_error *err)
{
    sl_status rc = schema_component_check(what, v, err);
    if (rc == SL_OK)
        snprintf(dst, ENGINE_NAME_SIZE, "%s", v);
    return rc;
}

sl_status engine__agg_identity(const char *pk, const char *sk, engine_agg *out, sl_error *err)
{
    sl_status rc = SL_OK;
    char buf[STORE_KEY_MAX + 1];
    char *p[7];
    engine_agg a;
    engine_agg_init(&a);
    int n = split_hash(pk, buf, sizeof buf, p, 4);
    if (n != 3 || strcmp(p[0], "T") || strcmp(p[2], "AGG")) {
        rc = sl_error_set_at(err, SL_ECORRUPT, "pk", -1,
                             "\"%.80s\" is not an aggregate partition (T#<tenant>#AGG)", pk);
        goto out;
    }
    if ((rc = copy_component(a.tenant, "tenant", p[1], err)) != SL_OK)
        goto out;
    n = split_hash(sk, buf, sizeof buf, p, 7);
    if (n == 2 && !strcmp(p[0], "BRAND")) {
        a.kind = ENGINE_AGG_BRAND;
        rc = copy_component(a.brand, "brand", p[1], err);
    } else if (n == 4 && !strcmp(p[0], "BRAND") && !strcmp(p[2], "CAMPAIGN")) {
        a.kind = ENGINE_AGG_CAMPAIGN;
        if ((rc = copy_component(a.brand, "brand", p[1], err)) == SL_OK)
            rc = copy_component(a.campaign, "campaign", p[3], err);
    } else if (n == 2 && !strcmp(p[0], "SECTOR")) {
        a.kind = ENGINE_AGG_SECTOR;
        rc = copy_component(a.sector, "sector", p[1], err);
    } else if (n == 6 && !strcmp(p[0], "HOSPITAL") && !strcmp(p[2], "PROC") &&
               !strcmp(p[4], "TOOL")) {
        a.kind = ENGINE_AGG_TOOL;
        if ((rc = copy_component(a.hospital, "hospital", p[1], err)) == SL_OK &&
            (rc = copy_component(a.procedure, "procedure", p[3], err)) == SL_OK)
            rc = copy_component(a.sku, "sku", p[5], err);
    } else {
        rc = sl_error_set_at(err, SL_ECORRUPT, "sk", -1,
                             "\"%.80s\" is not an aggregate sort key (BRAND#, SECTOR#, HOSPITAL#)",
                             sk);
    }
    if (rc != SL_OK)
        goto out;
    *out = a;
out:
    return rc;
}

int engine__tenant_group(const char *pk, char *out)
{
    const char *h = strncmp(pk, "T#", 2) == 0 ? strchr(pk + 2, '#') : NULL;
    int ok = h && h != pk + 2 && (size_t)(h - pk) + 2 <= SCHEMA_KEY_MAX;
    if (ok) {
        size_t len = (size_t)(h - pk) + 1;
        memcpy(out, pk, len);
        out[len] = '\0';
    }
    return ok;
}

/* ---------------------------------------------------------------------------
 * Numbers derived on read.
 * ------------------------------------------------------------------------- */
int engine_hist_bin(int64_t micro)
{
    /* The last bin is closed: 1.0 belongs to it. */
    return micro <= 0                  ? 0
           : micro >= ENGINE_MICRO_ONE ? ENGINE_HIST_BINS - 1
                                       : (int)(micro / ENGINE_HIST_BIN_MICRO);
}

/* The rank q*n is taken with q rounded to millionths and kept as the exact
 * integer q_micro * n, so that a rank falling on a bin's edge lands there
 * exactly: with q as a double (0.1 is a little above 1/10) the 10th
 * percentile of 10 scores came out as 0.04000000000000001, not 0.04. */
double engine_metric_percentile(const engine_metric *m, double q)
{
    double x = NAN;
    int last = -1, found = 0;
    if (m->n <= 0 || !(q >= 0.0 && q <= 1.0))
        goto out;
    const __int128 one = ENGINE_MICRO_ONE;
    __int128 rank = (__int128)llround(q * (double)ENGINE_MICRO_ONE) * m->n; /* q*n in millionths */
    __int128 before = 0;
    for (int i = 0; i < ENGINE_HIST_BINS && !found; i++) {
        if (m->hist[i] <= 0)
            continue;
        __int128 h = m->hist[i];
        last = i;
        if (rank <= (before + h) * one) {
            __int128 num = rank > before * one ? rank - before * one : 0;
            long double within = (long double)num * ENGINE_HIST_BIN_MICRO / ((long double)h * one);
            x = (double)(((long double)i * ENGINE_HIST_BIN_MICRO + within) / ENGINE_MICRO_ONE);
            found = 1;
        }
        before += h;
    }
    /* Bins sum to less than n (a corrupt aggregate): the top of the last one. */
    if (!found && last >= 0)
        x = (double)(last + 1) * ENGINE_HIST_BIN_MICRO / ENGINE_MICRO_ONE;
out:
    return x;
}

void engine_metric_stats(const engine_metric *m, engine_stats *out)
{
    engine_stats st = {.n = m->n,
                       .mean = NAN,
                       .stddev = NAN,
                       .p10 = NAN,
                       .median = NAN,
                       .p90 = NAN,
                       .min = NAN,
                       .max = NAN};
    if (m->n > 0) {
        st.mean = (double)((long double)m->sum / (long double)m->n / ENGINE_MICRO_ONE);
        /* n * sumsq - sum^2 is exact: n < 2^63 and sumsq < 2^64 * 1e12 keep it
         * well inside 127 bits for any realistic n (9e6 assets: ~8e25). */
        engine_i128 num = (engine_i128)m->n * m->sumsq - (engine_i128)m->sum * m->sum;
        if (num < 0)
            num = 0;
        long double var = (long double)num / ((long double)m->n * (long double)m->n);
        st.stddev = (double)(sqrtl(var) / ENGINE_MICRO_ONE);
        st.p10 = engine_metric_percentile(m, 0.10);
        st.median = engine_metric_percentile(m, 0.50);
        st.p90 = engine_metric_percentile(m, 0.90);
        for (int i = 0; i < ENGINE_HIST_BINS; i++)
            if (m->hist[i] > 0) {
                st.min = (double)i * ENGINE_HIST_BIN_MICRO / ENGINE_MICRO_ONE;
                break;
            }
        for (int i = ENGINE_HIST_BINS - 1; i >= 0; i--)
            if (m->hist[i] > 0) {
                st.max = (double)(i + 1) * ENGINE_HIST_BIN_MICRO / ENGINE_MICRO_ONE;
                break;
            }
    }
    *out = st;
}

/* ---------------------------------------------------------------------------
 * Small shared helpers.
 * ------------------------------------------------------------------------- */
int64_t engine__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t engine__mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void engine__i128_format(engine_i128 v, char *out, size_t size)
{
    char digits[48];
    size_t n = 0;
    int neg = v < 0;
    /* Work on the unsigned magnitude so that the most negative value works too. */
    unsigned __int128 u = neg ? (unsigned __int128)0 - (unsigned __int128)v : (unsigned __int128)v;
    do {
        digits[n++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u && n < sizeof digits);
    size_t w = 0;
    if (neg && w + 1 < size)
        out[w++] = '-';
    while (n && w + 1 < size)
        out[w++] = digits[--n];
    if (size)
        out[w < size ? w : size - 1] = '\0';
}

void engine__log(engine_log_fn fn, void *ctx, const char *level, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (fn) {
        fn(ctx, level, msg);
    } else {
        char when[25];
        schema_time_format(engine__now_ms(), when);
        fprintf(stderr, "%s %s engine: %s\n", when, level, msg);
    }
}
