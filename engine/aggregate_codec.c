/* aggregate_codec.c -- aggregate documents <-> engine_agg (layout in engine.h).
 * Decoding reads a document against the key it is stored under and lists
 * every problem (an unreadable field reads as 0), so recompute can name what
 * is wrong with a damaged aggregate; the strict readers (engine_agg_decode,
 * engine_agg_read) refuse any problem, and the listener quarantines what
 * engine_agg_read refuses. */
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
    if (a->over_metrics) {
        rc = sl_error_set(err, SL_ETOOLARGE,
                          "%s of tenant %s is over the metric limit (more than %d metrics): it "
                          "has no document",
                          sk, a->tenant, ENGINE_AGG_METRICS_MAX);
        goto out;
    }
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
 * Decoding.  A document is read against the key it is stored under (the
 * store's record of it, not what its bytes say): one walk over its elements
 * sorts each into what the layout expects, what is missing, mistyped,
 * duplicated or extra, and whether the bytes are another document
 * altogether (pk, sk or type disagree with the key).
 * ------------------------------------------------------------------------- */
static void problem(engine__problems *p, const char *why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void problem(engine__problems *p, const char *why, const char *fmt, ...)
{
    if (p && p->n == ENGINE__PROBLEMS_MAX) {
        p->more = 1;
    } else if (p) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->field[p->n], sizeof p->field[0], fmt, ap);
        va_end(ap);
        p->why[p->n++] = why;
    }
}

const char *const engine__why_missing = "missing";
const char *const engine__why_type = "wrong type";
const char *const engine__why_extra = "extra field";
const char *const engine__why_duplicate = "duplicate field";
const char *const engine__why_key = "disagrees with the key";
const char *const engine__why_decode = "does not decode";
const char *const engine__why_negative = "negative";
const char *const engine__why_inconsistent = "inconsistent";
const char *const engine__why_stale = "stale";

/* A metric name as stored: 1..ENGINE_METRIC_NAME_MAX bytes, a valid component
 * (saliency names are components) or "memorability". */
int engine__metric_name_ok(const char *name, size_t len)
{
    return len > 0 && len <= ENGINE_METRIC_NAME_MAX && strlen(name) == len &&
           (!strcmp(name, ENGINE_METRIC_MEMORABILITY) ||
            schema_component_check_n("metric", name, len, NULL) == SL_OK);
}

/* Reads an int64 element into *v; a problem (named prefix + key) otherwise. */
static void take_int(const bson_iter_t *it, int64_t *v, engine__problems *p, const char *prefix)
{
    if (BSON_ITER_HOLDS_INT64(it))
        *v = bson_iter_int64(it);
    else
        problem(p, engine__why_type, "%s%s", prefix, bson_iter_key(it));
}

/* Checks a name element against the key's component. */
static void take_name(const bson_iter_t *it, const char *want, engine__problems *p)
{
    if (!BSON_ITER_HOLDS_UTF8(it))
        problem(p, engine__why_type, "%s", bson_iter_key(it));
    else if (strcmp(bson_iter_utf8(it, NULL), want) != 0)
        problem(p, engine__why_key, "%s", bson_iter_key(it));
}

/* Reads a histogram element (the packed binary, or the earlier array of 100
 * int64) into hist; a problem named prefix + "hist" otherwise. */
static void take_hist(const bson_iter_t *it, int64_t *hist, engine__problems *p, const char *prefix)
{
    bson_iter_t bins;
    if (BSON_ITER_HOLDS_BINARY(it)) {
        bson_subtype_t st;
        uint32_t blen;
        const uint8_t *bytes;
        bson_iter_binary(it, &st, &blen, &bytes);
        if (st != BSON_SUBTYPE_BINARY || !hist_unpack(bytes, blen, hist)) {
            memset(hist, 0, ENGINE_HIST_BINS * sizeof *hist);
            problem(p, engine__why_decode, "%shist", prefix);
        }
    } else if (BSON_ITER_HOLDS_ARRAY(it) && bson_iter_recurse(it, &bins)) {
        /* The layout before the packed one: an array of int64, one per bin. */
        int i = 0, bad = 0;
        while (bson_iter_next(&bins)) {
            if (i < ENGINE_HIST_BINS && BSON_ITER_HOLDS_INT64(&bins))
                hist[i] = bson_iter_int64(&bins);
            else
                bad = 1;
            i++;
        }
        if (bad || i != ENGINE_HIST_BINS) { /* not exactly 100 int64 bins */
            memset(hist, 0, ENGINE_HIST_BINS * sizeof *hist);
            problem(p, engine__why_decode, "%shist", prefix);
        }
    } else {
        problem(p, engine__why_type, "%shist", prefix);
    }
}

enum { M_N = 1, M_SUM = 2, M_HI = 4, M_LO = 8, M_HIST = 16, M_ALL = 31 };

static void decode_metric(engine_agg *a, const char *name, bson_iter_t *it, engine__problems *p)
{
    uint32_t len;
    const uint8_t *data;
    bson_t doc;
    bson_iter_t f;
    char prefix[ENGINE_METRIC_NAME_MAX + 16];
    engine_metric *m = NULL;
    int64_t hi = 0, lo = 0;
    unsigned seen = 0;
    snprintf(prefix, sizeof prefix, "metrics.%s.", name);
    if (engine_agg_metric(a, name)) {
        problem(p, engine__why_duplicate, "metrics.%s", name);
        goto out;
    }
    if (!BSON_ITER_HOLDS_DOCUMENT(it)) {
        problem(p, engine__why_type, "metrics.%s", name);
        goto out;
    }
    bson_iter_document(it, &len, &data);
    if (!(m = engine__agg_metric_get(a, name, NULL)) || !bson_init_static(&doc, data, len) ||
        !bson_iter_init(&f, &doc)) {
        problem(p, engine__why_decode, "metrics.%s", name);
        goto out;
    }
    while (bson_iter_next(&f)) {
        const char *k = bson_iter_key(&f);
        unsigned bit = !strcmp(k, "n")          ? M_N
                       : !strcmp(k, "sum")      ? M_SUM
                       : !strcmp(k, "sumsq_hi") ? M_HI
                       : !strcmp(k, "sumsq_lo") ? M_LO
                       : !strcmp(k, "hist")     ? M_HIST
                                                : 0;
        if (!bit) {
            problem(p, engine__why_extra, "%s%.*s", prefix, ENGINE_METRIC_NAME_MAX, k);
            continue;
        }
        if (seen & bit) {
            problem(p, engine__why_duplicate, "%s%s", prefix, k);
            continue;
        }
        seen |= bit;
        if (bit == M_N)
            take_int(&f, &m->n, p, prefix);
        else if (bit == M_SUM)
            take_int(&f, &m->sum, p, prefix);
        else if (bit == M_HI)
            take_int(&f, &hi, p, prefix);
        else if (bit == M_LO)
            take_int(&f, &lo, p, prefix);
        else
            take_hist(&f, m->hist, p, prefix);
    }
    static const char *const names[] = {"n", "sum", "sumsq_hi", "sumsq_lo", "hist"};
    for (int i = 0; i < 5; i++)
        if (!(seen & (1u << i)))
            problem(p, engine__why_missing, "%s%s", prefix, names[i]);
    m->sumsq = sumsq_join(hi, lo);
out:
    return;
}

/* A brand aggregate's index fields must be those its content gives, or the
 * sorted listings would place it wrongly: a stale one is a problem that
 * recompute reports and --repair rewrites. */
static void check_index(const char *const got[4], const engine_agg *a, engine__problems *p)
{
    static const char *const names[4] = {SCHEMA_F_GSI1PK, SCHEMA_F_GSI1SK, SCHEMA_F_GSI2PK,
                                         SCHEMA_F_GSI2SK};
    schema_key want[4];
    /* The identity was checked already, so the keys can always be built. */
    if (engine_brand_index_keys(a, want[0], want[1], want[3], NULL) == SL_OK) {
        memcpy(want[2], want[0], sizeof want[0]);
        for (int i = 0; i < 4; i++)
            if (!got[i] || strcmp(got[i], want[i]) != 0)
                problem(p, engine__why_stale, "%s", names[i]);
    }
}

int engine__index_problem(const char *field)
{
    return !strncmp(field, "gsi", 3);
}

/* The fields of a kind's layout, in the order engine_agg_encode writes them
 * after pk, sk (and a brand's index fields). */
typedef enum field_id {
    F_NONE = 0,
    F_PK,
    F_SK,
    F_V,
    F_TYPE,
    F_TENANT,
    F_BRAND,
    F_CAMPAIGN,
    F_SECTOR,
    F_HOSPITAL,
    F_PROCEDURE,
    F_SKU,
    F_COUNT,
    F_METRICS,
    F_SURGERIES,
    F_SURG_OPENED,
    F_SURG_USED,
    F_UNITS_OPENED,
    F_UNITS_USED,
    F_WASTE,
    F_GSI1PK,
    F_GSI1SK,
    F_GSI2PK,
    F_GSI2SK,
    F_COUNT_IDS
} field_id;

static const char *const field_names[F_COUNT_IDS] = {
    [F_PK] = SCHEMA_F_PK,
    [F_SK] = SCHEMA_F_SK,
    [F_V] = SCHEMA_F_VERSION,
    [F_TYPE] = SCHEMA_F_TYPE,
    [F_TENANT] = "tenant",
    [F_BRAND] = "brand",
    [F_CAMPAIGN] = "campaign",
    [F_SECTOR] = "sector",
    [F_HOSPITAL] = "hospital",
    [F_PROCEDURE] = "procedure",
    [F_SKU] = "sku",
    [F_COUNT] = "count",
    [F_METRICS] = "metrics",
    [F_SURGERIES] = "surgeries",
    [F_SURG_OPENED] = "surgeries_opened",
    [F_SURG_USED] = "surgeries_used",
    [F_UNITS_OPENED] = "units_opened",
    [F_UNITS_USED] = "units_used",
    [F_WASTE] = "waste_cents",
    [F_GSI1PK] = SCHEMA_F_GSI1PK,
    [F_GSI1SK] = SCHEMA_F_GSI1SK,
    [F_GSI2PK] = SCHEMA_F_GSI2PK,
    [F_GSI2SK] = SCHEMA_F_GSI2SK,
};

static field_id field_of(const char *k)
{
    field_id f = F_NONE;
    for (int i = 1; i < F_COUNT_IDS && f == F_NONE; i++)
        if (!strcmp(field_names[i], k))
            f = (field_id)i;
    return f;
}

/* 1 when kind k's documents carry field f (the index fields: brands only). */
static int kind_has(engine_agg_kind k, field_id f)
{
    int brandish = k == ENGINE_AGG_BRAND || k == ENGINE_AGG_CAMPAIGN || k == ENGINE_AGG_SECTOR;
    switch (f) {
    case F_PK:
    case F_SK:
    case F_V:
    case F_TYPE:
    case F_TENANT:
        return 1;
    case F_BRAND:
        return k == ENGINE_AGG_BRAND || k == ENGINE_AGG_CAMPAIGN;
    case F_CAMPAIGN:
        return k == ENGINE_AGG_CAMPAIGN;
    case F_SECTOR:
        return k == ENGINE_AGG_SECTOR;
    case F_COUNT:
    case F_METRICS:
        return brandish;
    case F_GSI1PK:
    case F_GSI1SK:
    case F_GSI2PK:
    case F_GSI2SK:
        return k == ENGINE_AGG_BRAND;
    default: /* the tool fields */
        return k == ENGINE_AGG_TOOL;
    }
}

static void take_metrics(engine_agg *a, const bson_iter_t *it, engine__problems *p)
{
    bson_iter_t ms;
    if (!BSON_ITER_HOLDS_DOCUMENT(it) || !bson_iter_recurse(it, &ms)) {
        problem(p, engine__why_type, "metrics");
        return;
    }
    while (bson_iter_next(&ms)) {
        uint32_t klen = bson_iter_key_len(&ms);
        const char *name = bson_iter_key(&ms);
        if (!engine__metric_name_ok(name, klen))
            problem(p, engine__why_extra, "metrics.%.*s", ENGINE_METRIC_NAME_MAX, name);
        else
            decode_metric(a, name, &ms, p);
    }
}

sl_status engine__agg_decode_at(const bson_t *doc, const char *pk, const char *sk, engine_agg *out,
                                engine__problems *problems, sl_error *err)
{
    sl_status rc = SL_OK;
    bson_iter_t it;
    engine_agg a;
    engine_agg_init(&a);
    engine__problems local = {0}, *p = problems ? problems : &local;
    const char *gsi[4] = {NULL, NULL, NULL, NULL};
    const char *doc_pk = pk, *doc_sk = sk, *doc_type = NULL;
    int foreign = 0;
    uint32_t seen = 0;
    if ((rc = engine__agg_identity(pk, sk, &a, err)) != SL_OK)
        goto out;
    const char *type = kind_type(a.kind);
    const char *names[F_COUNT_IDS] = {
        [F_TENANT] = a.tenant, [F_BRAND] = a.brand,       [F_CAMPAIGN] = a.campaign,
        [F_SECTOR] = a.sector, [F_HOSPITAL] = a.hospital, [F_PROCEDURE] = a.procedure,
        [F_SKU] = a.sku};
    int64_t *ints[F_COUNT_IDS] = {[F_COUNT] = &a.count,
                                  [F_SURGERIES] = &a.surgeries,
                                  [F_SURG_OPENED] = &a.surgeries_opened,
                                  [F_SURG_USED] = &a.surgeries_used,
                                  [F_UNITS_OPENED] = &a.units_opened,
                                  [F_UNITS_USED] = &a.units_used,
                                  [F_WASTE] = &a.waste_cents};
    if (!bson_iter_init(&it, doc)) {
        problem(p, engine__why_decode, "(document)");
        goto done;
    }
    while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        field_id f = field_of(k);
        if (f == F_NONE || !kind_has(a.kind, f)) {
            problem(p, engine__why_extra, "%.*s", ENGINE_METRIC_NAME_MAX, k);
            continue;
        }
        if (seen & (1u << f)) {
            problem(p, engine__why_duplicate, "%s", k);
            continue;
        }
        seen |= 1u << f;
        switch (f) {
        case F_PK:
        case F_SK:
            if (!BSON_ITER_HOLDS_UTF8(&it) ||
                strcmp(bson_iter_utf8(&it, NULL), f == F_PK ? pk : sk) != 0) {
                foreign = 1;
                problem(p, engine__why_key, "%s", k);
                if (BSON_ITER_HOLDS_UTF8(&it))
                    *(f == F_PK ? &doc_pk : &doc_sk) = bson_iter_utf8(&it, NULL);
            }
            break;
        case F_V:
            if (BSON_ITER_HOLDS_INT64(&it))
                a.version = bson_iter_int64(&it);
            break;
        case F_TYPE:
            if (!BSON_ITER_HOLDS_UTF8(&it) || strcmp(bson_iter_utf8(&it, NULL), type) != 0) {
                foreign = 1;
                problem(p, engine__why_key, "%s", k);
                doc_type = BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, NULL) : NULL;
            }
            break;
        case F_METRICS:
            take_metrics(&a, &it, p);
            break;
        case F_GSI1PK:
        case F_GSI1SK:
        case F_GSI2PK:
        case F_GSI2SK:
            gsi[f - F_GSI1PK] = BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, NULL) : NULL;
            break;
        default:
            if (names[f])
                take_name(&it, names[f], p);
            else
                take_int(&it, ints[f], p, "");
            break;
        }
    }
    for (int f = F_PK; f < F_COUNT_IDS; f++)
        if (f != F_V && f != F_GSI1PK && f != F_GSI1SK && f != F_GSI2PK && f != F_GSI2SK &&
            kind_has(a.kind, (field_id)f) && !(seen & (1u << f))) {
            problem(p, engine__why_missing, "%s", field_names[f]);
            /* Without its own key or type it is no aggregate document at all. */
            foreign |= f == F_PK || f == F_SK || f == F_TYPE;
        }
    if (a.kind == ENGINE_AGG_BRAND)
        check_index(gsi, &a, p);
done:
    if (foreign && problems)
        snprintf(problems->foreign, sizeof problems->foreign, "%s%s document of %s / %s",
                 doc_type ? "a " : "an untyped", doc_type ? doc_type : "", doc_pk, doc_sk);
    free(out->metrics);
    *out = a;
    engine_agg_init(&a);
out:
    engine_agg_free(&a);
    return rc;
}

/* ---------------------------------------------------------------------------
 * What every aggregate of real documents satisfies (each asset adds 1 to
 * count and to n of each metric it carries, one bin and its score to sum).
 * ------------------------------------------------------------------------- */
void engine__agg_check(const engine_agg *a, engine__problems *p)
{
    if (a->kind == ENGINE_AGG_TOOL) {
        static const char *const names[] = {"surgeries",    "surgeries_opened", "surgeries_used",
                                            "units_opened", "units_used",       "waste_cents"};
        const int64_t v[] = {a->surgeries,    a->surgeries_opened, a->surgeries_used,
                             a->units_opened, a->units_used,       a->waste_cents};
        for (int i = 0; i < 6; i++)
            if (v[i] < 0)
                problem(p, engine__why_negative, "%s", names[i]);
        if (a->surgeries_opened > a->surgeries || a->surgeries_used > a->surgeries)
            problem(p, engine__why_inconsistent, "%s",
                    a->surgeries_opened > a->surgeries ? "surgeries_opened" : "surgeries_used");
        return;
    }
    if (a->count < 0)
        problem(p, engine__why_negative, "count");
    for (size_t i = 0; i < a->nmetrics; i++) {
        const engine_metric *m = &a->metrics[i];
        engine_i128 total = 0, lo = 0, hi = 0;
        int negative_bin = 0;
        for (int b = 0; b < ENGINE_HIST_BINS; b++) {
            negative_bin |= m->hist[b] < 0;
            total += m->hist[b];
            /* The scores of bin b lie in [b * 10000, b * 10000 + 9999] (the last: up to 1e6). */
            lo += (engine_i128)m->hist[b] * b * ENGINE_HIST_BIN_MICRO;
            hi += (engine_i128)m->hist[b] * (b == ENGINE_HIST_BINS - 1
                                                 ? ENGINE_MICRO_ONE
                                                 : (b + 1) * ENGINE_HIST_BIN_MICRO - 1);
        }
        if (m->n < 0)
            problem(p, engine__why_negative, "metrics.%s.n", m->name);
        else if (m->n > a->count)
            problem(p, engine__why_inconsistent, "metrics.%s.n", m->name);
        if (negative_bin)
            problem(p, engine__why_negative, "metrics.%s.hist", m->name);
        else if (total != m->n)
            problem(p, engine__why_inconsistent, "metrics.%s.hist", m->name);
        if (m->sum < 0)
            problem(p, engine__why_negative, "metrics.%s.sum", m->name);
        else if (!negative_bin && total == m->n && (m->sum < lo || m->sum > hi))
            problem(p, engine__why_inconsistent, "metrics.%s.sum", m->name);
        if (m->sumsq < 0)
            problem(p, engine__why_negative, "metrics.%s.sumsq", m->name);
        else if (m->n >= 0 && m->sumsq > (engine_i128)m->n * ENGINE_MICRO_ONE * ENGINE_MICRO_ONE)
            problem(p, engine__why_inconsistent, "metrics.%s.sumsq", m->name);
    }
}

/* The first problem that makes the content unreadable (not an index field)
 * as an SL_ECORRUPT naming it; SL_OK when there is none. */
static sl_status problems_status(const char *pk, const char *sk, const engine__problems *p,
                                 sl_error *err)
{
    size_t first = 0, counted = 0;
    for (size_t i = 0; i < p->n; i++)
        if (!engine__index_problem(p->field[i]) && !counted++)
            first = i;
    sl_status rc = SL_OK;
    if (p->foreign[0])
        rc = sl_error_set_at(err, SL_ECORRUPT, "(document)", -1,
                             "aggregate %s / %s holds %s, not its own", pk, sk, p->foreign);
    else if (counted || p->more)
        rc = sl_error_set_at(
            err, SL_ECORRUPT, counted ? p->field[first] : "(more)", -1,
            "aggregate %s / %s: field %s: %s%s", pk, sk, counted ? p->field[first] : "(more)",
            counted ? p->why[first] : "damaged", counted > 1 || p->more ? " (and more)" : "");
    return rc;
}

/* Decodes doc as the aggregate stored under (pk, sk) into *out (freed and
 * replaced on success, freed on failure); with check, also refuses values
 * no aggregate of real documents has (engine__agg_check). */
static sl_status decode_into(const bson_t *doc, const char *pk, const char *sk, int check,
                             engine_agg *out, sl_error *err)
{
    engine__problems p = {0};
    engine_agg a;
    engine_agg_init(&a);
    sl_status rc = engine__agg_decode_at(doc, pk, sk, &a, &p, err);
    if (rc == SL_OK && check && !p.foreign[0])
        engine__agg_check(&a, &p);
    /* Stale index fields do not make the content unreadable: only listings
     * depend on them, and recompute --repair rewrites them. */
    if (rc == SL_OK)
        rc = problems_status(pk, sk, &p, err);
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

sl_status engine_agg_decode(const bson_t *doc, engine_agg *out, sl_error *err)
{
    bson_iter_t it;
    char pk[STORE_KEY_MAX + 1] = "", sk[STORE_KEY_MAX + 1] = "";
    if (bson_iter_init_find(&it, doc, SCHEMA_F_PK) && BSON_ITER_HOLDS_UTF8(&it))
        snprintf(pk, sizeof pk, "%s", bson_iter_utf8(&it, NULL));
    if (bson_iter_init_find(&it, doc, SCHEMA_F_SK) && BSON_ITER_HOLDS_UTF8(&it))
        snprintf(sk, sizeof sk, "%s", bson_iter_utf8(&it, NULL));
    return decode_into(doc, pk, sk, 0, out, err);
}

sl_status engine_agg_read(const bson_t *doc, const char *pk, const char *sk, engine_agg *out,
                          sl_error *err)
{
    return decode_into(doc, pk, sk, 1, out, err);
}

sl_status engine_agg_check(const engine_agg *a, sl_error *err)
{
    engine__problems p = {0};
    schema_key pk = "?", sk = "?";
    engine__agg_check(a, &p);
    if (p.n)
        (void)engine_agg_keys(a, pk, sk, NULL);
    return problems_status(pk, sk, &p, err);
}
