/* aggregate_codec.c -- aggregate documents <-> engine_agg (layout in engine.h).
 * Decoding is lenient underneath: an unreadable field reads as 0 and is listed,
 * so a damaged aggregate still takes deltas and recompute can repair it. */
#include "engine_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *kind_type(engine_agg_kind k)
{
    static const char *const types[] = {
        [ENGINE_AGG_BRAND] = SCHEMA_TYPE_BRAND_AGG,
        [ENGINE_AGG_CAMPAIGN] = SCHEMA_TYPE_CAMPAIGN_AGG,
        [ENGINE_AGG_SECTOR] = SCHEMA_TYPE_SECTOR_AGG,
        [ENGINE_AGG_TOOL] = SCHEMA_TYPE_TOOL_AGG,
    };
    unsigned i = (unsigned)k;
    return i < sizeof types / sizeof types[0] && types[i] ? types[i] : "";
}

static void sumsq_split(engine_i128 v, int64_t *hi, int64_t *lo)
{
    unsigned __int128 u = (unsigned __int128)v;
    *hi = (int64_t)(uint64_t)(u >> 64);
    *lo = (int64_t)(uint64_t)u;
}

static engine_i128 sumsq_join(int64_t hi, int64_t lo)
{
    return (engine_i128)(((unsigned __int128)(uint64_t)hi << 64) | (uint64_t)lo);
}

/* The histogram is stored as a BSON binary (subtype 0) of ENGINE_HIST_BINS
 * zigzag LEB128 varints, one per bin in order: ~100-300 bytes for three
 * metrics' worth of counts instead of 1.2 KB each as an int64 array.  An
 * aggregate is rewritten on every consumer commit that touches it, so its
 * size is the listener's page traffic: as arrays, aggregates were ~4 KB and
 * a commit of 100 of them wrote ~100 16 KB pages. */
#define HIST_VARINT_MAX 10 /* bytes of one varint: 64 bits, 7 a byte */
#define HIST_BIN_MAX    (ENGINE_HIST_BINS * HIST_VARINT_MAX)

static uint32_t hist_pack(const int64_t *hist, uint8_t *buf)
{
    uint32_t at = 0;
    for (int i = 0; i < ENGINE_HIST_BINS; i++) {
        uint64_t z = ((uint64_t)hist[i] << 1) ^ (uint64_t)(hist[i] >> 63);
        while (z >= 0x80) {
            buf[at++] = (uint8_t)(z | 0x80);
            z >>= 7;
        }
        buf[at++] = (uint8_t)z;
    }
    return at;
}

/* Reads exactly ENGINE_HIST_BINS varints filling len bytes into hist;
 * 0 when the bytes are anything else (too few or too many, a varint past 64
 * bits).  Redundant encodings (80 00 for 0) are read; the encoder never writes them. */
static int hist_unpack(const uint8_t *buf, uint32_t len, int64_t *hist)
{
    uint32_t at = 0;
    for (int i = 0; i < ENGINE_HIST_BINS; i++) {
        uint64_t z = 0;
        int shift = 0, more = 1;
        while (more) {
            if (at >= len || shift > 63 || (shift == 63 && buf[at] > 1))
                return 0;
            z |= (uint64_t)(buf[at] & 0x7f) << shift;
            more = buf[at++] & 0x80;
            shift += 7;
        }
        hist[i] = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
    }
    return at == len;
}

static int encode_metric(bson_t *metrics, const engine_metric *m)
{
    bson_t doc;
    uint8_t hbuf[HIST_BIN_MAX];
    int64_t hi, lo;
    sumsq_split(m->sumsq, &hi, &lo);
    int ok = bson_append_document_begin(metrics, m->name, -1, &doc);
    ok = ok && bson_append_int64(&doc, "n", 1, m->n) && bson_append_int64(&doc, "sum", 3, m->sum) &&
         bson_append_int64(&doc, "sumsq_hi", 8, hi) && bson_append_int64(&doc, "sumsq_lo", 8, lo) &&
         bson_append_binary(&doc, "hist", 4, BSON_SUBTYPE_BINARY, hbuf, hist_pack(m->hist, hbuf));
    ok = ok && bson_append_document_end(metrics, &doc);
    return ok;
}

/* The mean of the memorability metric as an integer in units of 10^-18 (of a
 * score): floor(sum * 10^12 / n) with sum in micro-units, clamped to
 * [0, 10^18]; -1 when no asset carries the metric.  sum * 10^12 fits in 128
 * bits for any n < 2^63. */
static int64_t mean_key(const engine_agg *a)
{
    const engine_metric *m = engine_agg_metric(a, ENGINE_METRIC_MEMORABILITY);
    int64_t k = -1;
    if (m && m->n > 0) {
        engine_i128 sum = m->sum < 0 ? 0 : m->sum;
        engine_i128 q = sum * (engine_i128)1000000000000LL / m->n;
        k = q > (engine_i128)ENGINE_MEAN_KEY_ONE ? ENGINE_MEAN_KEY_ONE : (int64_t)q;
    }
    return k;
}

sl_status engine_brand_index_keys(const engine_agg *a, schema_key gpk, schema_key by_count,
                                  schema_key by_mean, sl_error *err)
{
    sl_status rc = SL_OK;
    schema_key g;
    if (a->kind != ENGINE_AGG_BRAND) {
        rc = sl_error_set(err, SL_EINVAL, "only brand aggregates are indexed (kind %d)",
                          (int)a->kind);
        goto out;
    }
    if ((rc = schema_gpk_brand_aggs(g, a->tenant, err)) != SL_OK ||
        (rc = schema_component_check("brand", a->brand, err)) != SL_OK)
        goto out;
    int64_t k = mean_key(a);
    /* Cannot truncate: 19 digits, '#' and a component of at most 128 bytes. */
    snprintf(by_count, SCHEMA_KEY_MAX, "%0*lld#%s", ENGINE_INDEX_DIGITS,
             (long long)(a->count < 0 ? 0 : a->count), a->brand);
    if (k < 0)
        snprintf(by_mean, SCHEMA_KEY_MAX, "-#%s", a->brand);
    else
        snprintf(by_mean, SCHEMA_KEY_MAX, "%0*lld#%s", ENGINE_INDEX_DIGITS, (long long)k, a->brand);
    memcpy(gpk, g, sizeof g);
out:
    return rc;
}

sl_status engine_agg_encode(const engine_agg *a, bson_t *out, sl_error *err)
{
    schema_key pk, sk, gpk, by_count, by_mean;
    sl_status rc = engine_agg_keys(a, pk, sk, err);
    if (rc != SL_OK)
        goto out;
    int ok = BSON_APPEND_UTF8(out, SCHEMA_F_PK, pk) && BSON_APPEND_UTF8(out, SCHEMA_F_SK, sk);
    if (a->kind == ENGINE_AGG_BRAND) {
        if ((rc = engine_brand_index_keys(a, gpk, by_count, by_mean, err)) != SL_OK)
            goto out;
        ok = ok && BSON_APPEND_UTF8(out, SCHEMA_F_GSI1PK, gpk) &&
             BSON_APPEND_UTF8(out, SCHEMA_F_GSI1SK, by_count) &&
             BSON_APPEND_UTF8(out, SCHEMA_F_GSI2PK, gpk) &&
             BSON_APPEND_UTF8(out, SCHEMA_F_GSI2SK, by_mean);
    }
    ok = ok && BSON_APPEND_UTF8(out, SCHEMA_F_TYPE, kind_type(a->kind)) &&
         BSON_APPEND_UTF8(out, "tenant", a->tenant);
    if (a->kind == ENGINE_AGG_TOOL) {
        ok = ok && BSON_APPEND_UTF8(out, "hospital", a->hospital) &&
             BSON_APPEND_UTF8(out, "procedure", a->procedure) &&
             BSON_APPEND_UTF8(out, "sku", a->sku) &&
             BSON_APPEND_INT64(out, "surgeries", a->surgeries) &&
             BSON_APPEND_INT64(out, "surgeries_opened", a->surgeries_opened) &&
             BSON_APPEND_INT64(out, "surgeries_used", a->surgeries_used) &&
             BSON_APPEND_INT64(out, "units_opened", a->units_opened) &&
             BSON_APPEND_INT64(out, "units_used", a->units_used) &&
             BSON_APPEND_INT64(out, "waste_cents", a->waste_cents);
    } else {
        if (a->kind == ENGINE_AGG_SECTOR) {
            ok = ok && BSON_APPEND_UTF8(out, "sector", a->sector);
        } else {
            ok = ok && BSON_APPEND_UTF8(out, "brand", a->brand);
            if (a->kind == ENGINE_AGG_CAMPAIGN)
                ok = ok && BSON_APPEND_UTF8(out, "campaign", a->campaign);
        }
        ok = ok && BSON_APPEND_INT64(out, "count", a->count);
        bson_t metrics;
        ok = ok && BSON_APPEND_DOCUMENT_BEGIN(out, "metrics", &metrics);
        for (size_t i = 0; ok && i < a->nmetrics; i++)
            ok = encode_metric(&metrics, &a->metrics[i]);
        ok = ok && bson_append_document_end(out, &metrics);
    }
    if (!ok)
        rc =
            sl_error_set(err, SL_ETOOLARGE, "aggregate %s / %s does not fit in a document", pk, sk);
out:
    return rc;
}

/* ---------------------------------------------------------------------------
 * Decoding.
 * ------------------------------------------------------------------------- */
static void problem(engine__problems *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void problem(engine__problems *p, const char *fmt, ...)
{
    if (p && p->n == ENGINE__PROBLEMS_MAX) {
        p->more = 1;
    } else if (p) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->field[p->n++], sizeof p->field[0], fmt, ap);
        va_end(ap);
    }
}

/* Reads an integer field of doc (int64 or int32); 0 and a problem otherwise. */
static int64_t iter_int(const bson_iter_t *it, int *ok)
{
    int64_t v = 0;
    if (BSON_ITER_HOLDS_INT64(it))
        v = bson_iter_int64(it);
    else if (BSON_ITER_HOLDS_INT32(it))
        v = bson_iter_int32(it);
    else
        *ok = 0;
    return v;
}

static int64_t read_int(const bson_t *doc, const char *key, engine__problems *p, const char *prefix)
{
    bson_iter_t it;
    int ok = bson_iter_init_find(&it, doc, key);
    int64_t v = ok ? iter_int(&it, &ok) : 0;
    if (!ok)
        problem(p, "%s%s", prefix, key);
    return v;
}

static void check_name(const bson_t *doc, const char *key, const char *want, engine__problems *p)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_UTF8(&it) ||
        strcmp(bson_iter_utf8(&it, NULL), want) != 0)
        problem(p, "%s", key);
}

/* A metric name as stored: 1..ENGINE_METRIC_NAME_MAX bytes, a valid component
 * (saliency names are components) or "memorability". */
int engine__metric_name_ok(const char *name, size_t len)
{
    return len > 0 && len <= ENGINE_METRIC_NAME_MAX && strlen(name) == len &&
           (!strcmp(name, ENGINE_METRIC_MEMORABILITY) ||
            schema_component_check_n("metric", name, len, NULL) == SL_OK);
}

static void decode_metric(engine_agg *a, const char *name, bson_iter_t *it, engine__problems *p)
{
    uint32_t len;
    const uint8_t *data;
    bson_t doc;
    bson_iter_t h, bins;
    char prefix[ENGINE_METRIC_NAME_MAX + 16];
    engine_metric *m = NULL;
    snprintf(prefix, sizeof prefix, "metrics.%s.", name);
    /* A duplicate key, a full aggregate or a metric that is no document. */
    if (engine_agg_metric(a, name) || !BSON_ITER_HOLDS_DOCUMENT(it) ||
        !(m = engine__agg_metric_get(a, name, NULL))) {
        problem(p, "metrics.%s", name);
        goto out;
    }
    bson_iter_document(it, &len, &data);
    if (!bson_init_static(&doc, data, len)) {
        problem(p, "metrics.%s", name);
        goto out;
    }
    m->n = read_int(&doc, "n", p, prefix);
    m->sum = read_int(&doc, "sum", p, prefix);
    engine__problems sq = {0};
    int64_t hi = read_int(&doc, "sumsq_hi", &sq, prefix);
    int64_t lo = read_int(&doc, "sumsq_lo", &sq, prefix);
    if (sq.n)
        problem(p, "%ssumsq", prefix);
    else
        m->sumsq = sumsq_join(hi, lo);
    if (!bson_iter_init_find(&h, &doc, "hist")) {
        problem(p, "%shist", prefix);
    } else if (BSON_ITER_HOLDS_BINARY(&h)) {
        bson_subtype_t st;
        uint32_t blen;
        const uint8_t *bytes;
        bson_iter_binary(&h, &st, &blen, &bytes);
        if (st != BSON_SUBTYPE_BINARY || !hist_unpack(bytes, blen, m->hist)) {
            memset(m->hist, 0, sizeof m->hist);
            problem(p, "%shist", prefix);
        }
    } else if (BSON_ITER_HOLDS_ARRAY(&h) && bson_iter_recurse(&h, &bins)) {
        /* The layout before the packed one: an array of int64, one per bin. */
        int i = 0, extra = 0;
        while (bson_iter_next(&bins)) {
            if (i >= ENGINE_HIST_BINS) {
                extra = 1;
                continue;
            }
            int ok = 1;
            int64_t v = iter_int(&bins, &ok);
            if (!ok)
                problem(p, "%shist[%d]", prefix, i);
            m->hist[i++] = v;
        }
        if (i < ENGINE_HIST_BINS || extra)
            problem(p, "%shist", prefix); /* not exactly 100 bins */
    } else {
        problem(p, "%shist", prefix);
    }
out:
    return;
}

/* A brand aggregate's index fields must be those its content gives, or the
 * sorted listings would place it wrongly: a stale one is a problem that
 * recompute reports and --repair rewrites. */
static void check_index(const bson_t *doc, const engine_agg *a, engine__problems *p)
{
    schema_key gpk, by_count, by_mean;
    /* The identity was checked already, so the keys can always be built. */
    if (engine_brand_index_keys(a, gpk, by_count, by_mean, NULL) == SL_OK) {
        check_name(doc, SCHEMA_F_GSI1PK, gpk, p);
        check_name(doc, SCHEMA_F_GSI1SK, by_count, p);
        check_name(doc, SCHEMA_F_GSI2PK, gpk, p);
        check_name(doc, SCHEMA_F_GSI2SK, by_mean, p);
    }
}

/* 1 for a problem with an index field only (see engine_agg_decode). */
static int index_problem(const char *field)
{
    return !strncmp(field, "gsi", 3);
}

sl_status engine__agg_decode_lenient(const bson_t *doc, engine_agg *out, engine__problems *problems,
                                     sl_error *err)
{
    sl_status rc = SL_OK;
    bson_iter_t it;
    engine_agg a;
    engine_agg_init(&a);
    char pk[STORE_KEY_MAX + 1] = "", sk[STORE_KEY_MAX + 1] = "";
    if (bson_iter_init_find(&it, doc, SCHEMA_F_PK) && BSON_ITER_HOLDS_UTF8(&it))
        snprintf(pk, sizeof pk, "%s", bson_iter_utf8(&it, NULL));
    if (bson_iter_init_find(&it, doc, SCHEMA_F_SK) && BSON_ITER_HOLDS_UTF8(&it))
        snprintf(sk, sizeof sk, "%s", bson_iter_utf8(&it, NULL));
    if ((rc = engine__agg_identity(pk, sk, &a, err)) != SL_OK)
        goto out;
    if (bson_iter_init_find(&it, doc, SCHEMA_F_VERSION) && BSON_ITER_HOLDS_INT64(&it))
        a.version = bson_iter_int64(&it);
    check_name(doc, SCHEMA_F_TYPE, kind_type(a.kind), problems);
    check_name(doc, "tenant", a.tenant, problems);
    if (a.kind == ENGINE_AGG_TOOL) {
        check_name(doc, "hospital", a.hospital, problems);
        check_name(doc, "procedure", a.procedure, problems);
        check_name(doc, "sku", a.sku, problems);
        a.surgeries = read_int(doc, "surgeries", problems, "");
        a.surgeries_opened = read_int(doc, "surgeries_opened", problems, "");
        a.surgeries_used = read_int(doc, "surgeries_used", problems, "");
        a.units_opened = read_int(doc, "units_opened", problems, "");
        a.units_used = read_int(doc, "units_used", problems, "");
        a.waste_cents = read_int(doc, "waste_cents", problems, "");
    } else {
        if (a.kind == ENGINE_AGG_SECTOR) {
            check_name(doc, "sector", a.sector, problems);
        } else {
            check_name(doc, "brand", a.brand, problems);
            if (a.kind == ENGINE_AGG_CAMPAIGN)
                check_name(doc, "campaign", a.campaign, problems);
        }
        a.count = read_int(doc, "count", problems, "");
        bson_iter_t ms;
        if (!bson_iter_init_find(&it, doc, "metrics") || !BSON_ITER_HOLDS_DOCUMENT(&it) ||
            !bson_iter_recurse(&it, &ms)) {
            problem(problems, "metrics");
        } else {
            while (bson_iter_next(&ms)) {
                uint32_t klen = bson_iter_key_len(&ms);
                const char *name = bson_iter_key(&ms);
                if (!engine__metric_name_ok(name, klen)) {
                    problem(problems, "metrics.%.*s", ENGINE_METRIC_NAME_MAX, name);
                    continue;
                }
                decode_metric(&a, name, &ms, problems);
            }
        }
        if (a.kind == ENGINE_AGG_BRAND)
            check_index(doc, &a, problems);
    }
    free(out->metrics);
    *out = a;
    engine_agg_init(&a);
out:
    engine_agg_free(&a);
    return rc;
}

sl_status engine_agg_decode(const bson_t *doc, engine_agg *out, sl_error *err)
{
    engine__problems p = {0};
    engine_agg a;
    engine_agg_init(&a);
    sl_status rc = engine__agg_decode_lenient(doc, &a, &p, err);
    /* Stale index fields do not make the content unreadable: only listings
     * depend on them, and recompute --repair rewrites them. */
    size_t first = 0, counted = 0;
    for (size_t i = 0; i < p.n; i++)
        if (!index_problem(p.field[i]) && !counted++)
            first = i;
    if (rc == SL_OK && (counted || p.more)) {
        const char *f = counted ? p.field[first] : "(more)";
        rc = sl_error_set_at(err, SL_ECORRUPT, f, -1,
                             "aggregate field %s is missing, mistyped or disagrees with the key%s",
                             f, counted > 1 || p.more ? " (and others)" : "");
    }
    if (rc == SL_OK) {
        free(out->metrics);
        *out = a;
        engine_agg_init(&a);
    } else {
        engine_agg_free(out);
    }
    engine_agg_free(&a);
    return rc;
}
