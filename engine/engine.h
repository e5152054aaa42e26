/* engine.h -- exact cumulative aggregates kept from the change feed of `items`:
 * the aggregate arithmetic (asset and surgery-summary images -> deltas), the
 * listener that applies them exactly once, and the recompute job that proves
 * them right; the tenant's tool catalog as the usage analysis reads it, and
 * the transitions of a surgery's life cycle.  Includes only schema/ and store/.
 *
 * ---------------------------------------------------------------------------
 * Aggregate documents (table `aggregates`, partition `T#<tenant>#AGG`).
 * Field order is fixed; every integer is BSON int64.
 *
 *   brand_agg     sk BRAND#<b>
 *     { pk, sk, gsi1pk, gsi1sk, gsi2pk, gsi2sk, type: "brand_agg", tenant, brand, count,
 *       metrics: { <name>: { n, sum, sumsq_hi, sumsq_lo, hist: <binary> }, ... } }
 *     The index fields sort a tenant's brands for the dashboard
 *     (engine_brand_index_keys): gsi1pk = gsi2pk = T#<t>#AGG#BRANDS,
 *     gsi1sk = <count, 19 digits>#<b> (by count), gsi2sk = <mean memorability
 *     in 10^-18 units, 19 digits>#<b> (by mean; "-#<b>" without memorability).
 *     Campaign and sector aggregates have no index fields.
 *   campaign_agg  sk BRAND#<b>#CAMPAIGN#<c>   as brand_agg, with `campaign` after `brand`
 *   sector_agg    sk SECTOR#<s>               as brand_agg, with `sector` instead of `brand`
 *   tool_agg      sk HOSPITAL#<h>#PROC#<p>#TOOL#<sku>
 *     { pk, sk, type: "tool_agg", tenant, hospital, procedure, sku, surgeries,
 *       surgeries_opened, surgeries_used, units_opened, units_used, waste_cents }
 *
 * Metrics: `memorability` (from memorability_micro) and one per saliency
 * measure (saliency_micro keys), sorted by name (bytewise).  For each metric:
 *   n         assets of the aggregate that carry this metric
 *   sum       sum of the scores in micro-units (round(score * 1e6))
 *   sumsq     sum of their squares, 128 bits: sumsq = sumsq_hi * 2^64 + (uint64)sumsq_lo
 *             (two's complement halves, so a value < 2^63 has sumsq_hi == 0)
 *   hist      100 bins of width 10,000 micro-units: bin i counts the scores in
 *             [i * 10000, (i + 1) * 10000); a score of exactly 1.0 (1,000,000)
 *             goes into the last bin, which is therefore closed: [990000, 1000000].
 *             Stored as a BSON binary of subtype 0 holding the 100 counts in
 *             order, each as a zigzag LEB128 varint (v -> (v << 1) ^ (v >> 63),
 *             then 7 bits a byte, low first, high bit = more): a count under 64
 *             takes one byte.  Readers also accept the earlier layout, an
 *             array of 100 int64.
 * A metric whose fields are all zero is left out; an aggregate whose count (tool:
 * surgeries) returns to 0 with nothing else left is deleted.
 *
 * The metric limit.  An aggregate holds at most ENGINE_AGG_METRICS_MAX (256)
 * metrics: memorability and the distinct saliency names of its assets (one
 * asset carries at most 32, but nothing bounds how many names a brand's
 * assets carry together).  One that would hold more cannot be kept: its
 * document would grow without bound (~1 KB a metric in memory, a few
 * hundred bytes stored).  It is "over the metric limit": the listener
 * quarantines it when its deltas would take it past the limit (cause
 * metric_limit, below), recompute reports it by name and --repair keeps it
 * quarantined (and quarantines it, when the listener has not yet) while it
 * repairs everything else, the API answers 503
 * (aggregate-over-metric-limit) for it; once its assets carry at most 256
 * metrics again (assets rescored, deleted or moved) the next --repair
 * rebuilds it and lifts the quarantine.
 *
 * Overflow.  Every counter and sum is an int64 (sumsq 128 bits), added with
 * its overflow checked: one summary cannot overflow (SCHEMA_UNIT_COST_MAX),
 * but a tool's waste_cents summed over surgeries can (three summaries of
 * 4096 entries of 10^6 units at 10^9 cents; ~9,200 of one entry at the most
 * waste), and any counter of a document near 2^63 (a bad restore) would
 * with its next delta.  An aggregate whose sum would pass int64 cannot be
 * kept exact: it is quarantined the same way as one over the metric limit
 * (cause overflow), recompute reports it by name ("overflow: waste_cents
 * ...") and --repair keeps it quarantined while it repairs everything else,
 * the API answers 503 (aggregate-overflow) for a request that needs it;
 * once its items sum within int64 again (summaries or assets deleted) the
 * next --repair rebuilds it and lifts the quarantine.
 *
 * Tool aggregates, one per (hospital, procedure, sku) of each surgery_summary's
 * `tools` entries (entries with the same sku in one summary are merged):
 *   surgeries         summaries that list the sku
 *   surgeries_opened  ... with opened_units > 0
 *   surgeries_used    ... with used_units > 0
 *   units_opened, units_used   sums of the units
 *   waste_cents       single_use ? max(opened - used, 0) * unit_cost_cents : 0
 *
 * What contributes (the function f of an image; the delta of a change-feed
 * event is f(new_image) - f(old_image)):
 *   - an `asset` at T#t#ASSET#<id> / META whose `tenant` matches its pk and
 *     whose `brand` is a valid component: count 1 to BRAND#b, to
 *     BRAND#b#CAMPAIGN#c when `campaign` is present, to SECTOR#s when `sector`
 *     is present, each with its metrics;
 *   - a `surgery_summary` at T#t#SURGERY#<id> / SUMMARY: its tools as above.
 * Anything else contributes nothing.  A malformed asset or summary (a score
 * outside [0, 1000000], a wrong type, an invalid name, too many entries)
 * contributes nothing as a whole, the same way in the listener and in
 * recompute, and is reported (listener log and stats, recompute counters).
 *
 * Listener state and audits live in partition `SYS#ENGINE` of `aggregates`
 * (never a tenant's: tenant keys start with "T#"):
 *   LEASE#<consumer>       { type: "lease", consumer, holder, acquired_ms, renewed_ms, expires_ms }
 *                          (seized for a moment by a repairing recompute: see Recompute)
 *   LEASE#recompute        held by a repairing recompute run
 *   QUARANTINE#<aggregate pk>#<aggregate sk>   an aggregate set aside (see Quarantine)
 *   CHECKPOINT#RECOMPUTE#<ALL|TENANT:t>#<check|repair>   an unfinished recompute run:
 *       { run_id, started_ms, updated_ms, last_group, items_token, aggregates_token,
 *         feed_gone, consumer_reset, tenants, items_scanned, malformed,
 *         aggregates_checked, drift_fields, drift_aggregates, repaired_aggregates,
 *         over_limit_aggregates, overflow_aggregates, repair_retries }
 *   AUDIT#RECOMPUTE#<started ISO-8601>#<run id>   one per finished run:
 *       { run_id, started_at, started_ms, finished_ms, tenant ("" = all), repair,
 *         resumed, feed_gone, consumer_reset, and the counters above }
 * ------------------------------------------------------------------------- */
#ifndef SIGHTLINE_ENGINE_H
#define SIGHTLINE_ENGINE_H

#include <bson/bson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../schema/schema.h"
#include "../store/store.h"

__extension__ typedef __int128 engine_i128;

#define ENGINE_MICRO_ONE          1000000 /* a score of 1.0 in micro-units */
#define ENGINE_HIST_BINS          100
#define ENGINE_HIST_BIN_MICRO     10000     /* ENGINE_MICRO_ONE / ENGINE_HIST_BINS */
#define ENGINE_METRIC_NAME_MAX    64        /* bytes of a metric name, without the NUL */
#define ENGINE_ASSET_SALIENCY_MAX 32        /* saliency measures of one asset */
#define ENGINE_AGG_METRICS_MAX    256       /* metrics of one aggregate */
#define ENGINE_SUMMARY_TOOLS_MAX  4096      /* tool entries of one surgery summary */
#define ENGINE_UNITS_MAX          1000000LL /* opened_units / used_units of one entry */
/* unit_cost_cents of one entry: 0..SCHEMA_UNIT_COST_MAX (schema.h), the bound ingest puts on a
 * catalog entry, so every cost the catalog accepts can be summed here. */
#define ENGINE_NAME_SIZE           (SCHEMA_COMPONENT_MAX + 1)
#define ENGINE_CONSUMER            "aggregates" /* the listener's consumer name */
#define ENGINE_SYS_PK              "SYS#ENGINE" /* partition of leases, checkpoints, audits */
#define ENGINE_METRIC_MEMORABILITY "memorability"

/* ---------------------------------------------------------------------------
 * Aggregates in memory.
 * ------------------------------------------------------------------------- */
typedef enum engine_agg_kind {
    ENGINE_AGG_BRAND = 1,
    ENGINE_AGG_CAMPAIGN = 2,
    ENGINE_AGG_SECTOR = 3,
    ENGINE_AGG_TOOL = 4
} engine_agg_kind;

typedef struct engine_metric {
    char name[ENGINE_METRIC_NAME_MAX + 1];
    int64_t n;
    int64_t sum;       /* micro-units */
    engine_i128 sumsq; /* micro-units squared */
    int64_t hist[ENGINE_HIST_BINS];
} engine_metric;

/* One aggregate, or one delta to an aggregate (same shape, signed values).
 * Names that the kind does not use are "". */
typedef struct engine_agg {
    engine_agg_kind kind;
    char tenant[ENGINE_NAME_SIZE];
    char brand[ENGINE_NAME_SIZE];    /* brand, campaign */
    char campaign[ENGINE_NAME_SIZE]; /* campaign */
    char sector[ENGINE_NAME_SIZE];   /* sector */
    char hospital[ENGINE_NAME_SIZE]; /* tool */
    char procedure[ENGINE_NAME_SIZE];
    char sku[ENGINE_NAME_SIZE];
    int64_t count; /* brand, campaign, sector */
    size_t nmetrics;
    size_t cap_metrics;     /* private */
    engine_metric *metrics; /* nmetrics, sorted by name; owned by the aggregate */
    int64_t surgeries, surgeries_opened, surgeries_used; /* tool */
    int64_t units_opened, units_used, waste_cents;
    int64_t version; /* the document's `v` when decoded from the store, else 0 */
    /* 1: over the metric limit.  Only a set that marks (recompute's shadow
     * and feed deltas) makes such an aggregate, instead of failing: its
     * counters stay exact, its metrics are dropped (no metrics, nmetrics 0).
     * engine_agg_add and engine_agg_encode refuse it (SL_ETOOLARGE). */
    int over_metrics;
    /* 1: a counter or sum would pass int64 (engine.h, "Overflow";
     * overflow_field names the first, e.g. "waste_cents", or "metrics").  Only a set that
     * marks makes such an aggregate, instead of failing: its values stop at
     * the last exact state and mean nothing, its metrics are dropped.
     * engine_agg_add and engine_agg_encode refuse it (SL_EOVERFLOW). */
    int overflow;
    char overflow_field[24];
} engine_agg;

/* Zeroes *a (an empty aggregate of no kind). */
void engine_agg_init(engine_agg *a);

/* Frees what *a owns (its metrics) and zeroes it.  NULL is fine. */
void engine_agg_free(engine_agg *a);

/* Copies src into *dst (an initialized aggregate, whose metrics are replaced
 * and freed).  *dst owns the copied metrics: free with engine_agg_free().  On
 * failure *dst is unchanged. */
sl_status engine_agg_copy(engine_agg *dst, const engine_agg *src, sl_error *err);

/* The metric `name` of a, or NULL. */
const engine_metric *engine_agg_metric(const engine_agg *a, const char *name);

/* 1 when every counter, sum and bin of a is zero (metrics all-zero or absent).
 * For an aggregate over the metric limit, when its counters are (an
 * aggregate counting no asset has no metric either). */
int engine_agg_is_zero(const engine_agg *a);

/* dst += sign * delta, metric by metric (sign is +1 or -1); the names of dst
 * are taken from delta when dst has no kind yet.  Metrics left all-zero are
 * removed.  dst keeps owning its (reallocated) metrics; delta is not changed.  SL_EINVAL when the
 * kinds differ, SL_ETOOLARGE past ENGINE_AGG_METRICS_MAX metrics (the message names the aggregate
 * and the limit) or when either is over the metric limit already, SL_EOVERFLOW when a counter or
 * sum would pass int64 or either is marked overflow already (the message names the aggregate and
 * the field), SL_ENOMEM; dst is unchanged on failure. */
sl_status engine_agg_add(engine_agg *dst, const engine_agg *delta, int sign, sl_error *err);

/* The aggregate's keys: pk T#t#AGG and its sort key (see the layout above). */
sl_status engine_agg_keys(const engine_agg *a, schema_key pk, schema_key sk, sl_error *err);

/* Index keys of a brand aggregate (ENGINE_AGG_BRAND; SL_EINVAL for other
 * kinds), written into its document so that the dashboard can page through a
 * tenant's brands in sorted order with store_query_index:
 *   gpk       T#<tenant>#AGG#BRANDS (gsi1pk and gsi2pk)
 *   by_count  gsi1sk: count zero-padded to ENGINE_INDEX_DIGITS digits (a
 *             negative count as 0), '#', brand
 *   by_mean   gsi2sk: floor(sum * 10^12 / n) of the memorability metric (the
 *             mean in units of 10^-18 of a score, 0..ENGINE_MEAN_KEY_ONE) with
 *             ENGINE_INDEX_DIGITS digits, '#', brand; "-#<brand>" when no
 *             asset carries memorability (so those sort first ascending).
 * Distinct means of brands with at most 10^6 assets each get distinct keys in
 * the right order (two such means differ by at least 10^-12 micro-units);
 * equal keys are ordered by brand. */
#define ENGINE_INDEX_DIGITS 19
#define ENGINE_MEAN_KEY_ONE 1000000000000000000LL /* a mean of 1.0 in by_mean units */
sl_status engine_brand_index_keys(const engine_agg *a, schema_key gpk, schema_key by_count,
                                  schema_key by_mean, sl_error *err);

/* Encodes a as its aggregate document (layout above) into *out, which the
 * caller initialized (bson_init) and destroys (bson_destroy), also on failure.
 * SL_ETOOLARGE for an aggregate over the metric limit, SL_EOVERFLOW for one marked overflow
 * (neither has a document). */
sl_status engine_agg_encode(const engine_agg *a, bson_t *out, sl_error *err);

/* Decodes an aggregate document into *out (initialized by the caller; its
 * previous content is freed).  *out then owns its metrics: engine_agg_free().  Kind and names come
 * from the document's own pk and sk.  Strict about the layout: a missing, wrongly typed (every
 * integer is int64), duplicated or extra field, a histogram that does not decode, or a name or type
 * field that disagrees with the key is SL_ECORRUPT naming the field.  Stale index fields of a brand
 * aggregate are not (the numbers are still right; recompute reports them and --repair rewrites
 * them).  Values are not checked (engine_agg_check does).  On failure *out is left empty. */
sl_status engine_agg_decode(const bson_t *doc, engine_agg *out, sl_error *err);

/* Reads the aggregate stored under (pk, sk), the key the store keeps for the
 * document (store_get's, or a page's store_doc), whatever the bytes say: as
 * engine_agg_decode, and also SL_ECORRUPT when the bytes are another document
 * (their pk, sk or type disagree with the key) or fail engine_agg_check.
 * What the API serves and the listener adds deltas to. */
sl_status engine_agg_read(const bson_t *doc, const char *pk, const char *sk, engine_agg *out,
                          sl_error *err);

/* SL_ECORRUPT naming the field when a holds what no aggregate of real
 * documents can: a negative count, n, sum, sum of squares, bin or tool
 * counter; n above count; bins that do not add up to n; a sum outside what
 * the bins allow (each score of bin i lies in [i * 10000, i * 10000 + 9999],
 * the last bin up to 1000000); a sum of squares above n * 10^12; more
 * surgeries opened or used than surgeries. */
sl_status engine_agg_check(const engine_agg *a, sl_error *err);

/* Numbers derived on read, in score units ([0, 1]).  Everything is NaN when
 * n == 0.
 *   mean    sum / n / 1e6: the mean of round(score * 1e6) / 1e6 over the assets.
 *   stddev  population standard deviation, sqrt((n*sumsq - sum^2) / n^2) / 1e6,
 *           with the numerator computed exactly in 128-bit integers.
 *   p10, median, p90: from the histogram, assuming the scores of a bin are
 *           spread evenly over it: percentile q is the value x at which the
 *           piecewise-linear cumulative count reaches q * n, i.e. in the bin i
 *           where the cumulative count before it (c) is < q*n <= c + hist[i]:
 *           x = (i * 10000 + (q*n - c) / hist[i] * 10000) / 1e6.  For q*n == 0
 *           it is the lower edge of the first non-empty bin.  Accurate to one
 *           bin (0.01); exact when each bin holds equal values spread evenly.
 *   min, max: lower edge of the first / upper edge of the last non-empty bin. */
typedef struct engine_stats {
    int64_t n;
    double mean, stddev, p10, median, p90, min, max;
} engine_stats;

void engine_metric_stats(const engine_metric *m, engine_stats *out);

/* Percentile q in [0, 1] of a metric's histogram, as above (NaN when n == 0); q is
 * taken in millionths, so that q*n is exact. */
double engine_metric_percentile(const engine_metric *m, double q);

/* The histogram bin of a score in micro-units (0..1000000). */
int engine_hist_bin(int64_t micro);

/* ---------------------------------------------------------------------------
 * The brand read model (engine/brands.c): what the brand dashboard API and
 * the brand report read, so that the JSON, the PDF and the XLSX show the same
 * numbers from the same documents.  Numbers are engine_metric_stats' of the
 * aggregates (above); assets are decoded as the API answers them.
 *
 * An aggregate a read needs that is quarantined or damaged fails with
 * SL_ECORRUPT, err->field ENGINE_FIELD_AGGREGATE and a message naming its
 * sort key: only `sightline recompute --repair` brings it back (the API
 * answers such a failure 503 "aggregate-needs-repair").  One quarantined for
 * being over the metric limit (ENGINE_QUARANTINE_METRIC_LIMIT) fails the
 * same way with field ENGINE_FIELD_AGGREGATE_OVER_LIMIT and a message saying
 * what the tenant can do (503 "aggregate-over-metric-limit"); one
 * quarantined because a sum of it passes int64 (ENGINE_QUARANTINE_OVERFLOW)
 * with field ENGINE_FIELD_AGGREGATE_OVERFLOW (503 "aggregate-overflow").
 * ------------------------------------------------------------------------- */
#define ENGINE_FIELD_AGGREGATE            "aggregate"
#define ENGINE_FIELD_AGGREGATE_OVER_LIMIT "aggregate_over_metric_limit"
#define ENGINE_FIELD_AGGREGATE_OVERFLOW   "aggregate_overflow"

/* The brand (kind ENGINE_AGG_BRAND, name = brand), campaign
 * (ENGINE_AGG_CAMPAIGN, name = brand, campaign) or sector (ENGINE_AGG_SECTOR,
 * name = sector) aggregate of tenant into *out (initialized by the caller;
 * on SL_OK its previous content is freed and it owns the new one:
 * engine_agg_free; out->version is the document's).  SL_ENOTFOUND naming
 * "brand", "campaign" or "sector" when it does not exist or counts nothing;
 * SL_EINVAL for a name that is no component. */
sl_status engine_brand_agg_get(store *s, const char *tenant, engine_agg_kind kind, const char *name,
                               const char *campaign, engine_agg *out, sl_error *err);

/* An asset document as the API answers it, decoded leniently (a field that
 * is absent or of another type reads as absent).  Strings point into the
 * document and live as long as it does. */
typedef struct engine_asset {
    const char *pk; /* the key the store keeps it under */
    const char *asset, *client, *brand, *brand_id, *campaign, *sector, *media_type,
        *model_version; /* NULL when absent; brand_id and model_version are "" when not given */
    int has_memorability;
    double memorability;        /* as received */
    int64_t memorability_micro; /* -1 when absent */
    int has_saliency;           /* `saliency` is a document (perhaps empty) */
    size_t nsaliency;           /* double entries of `saliency`, in document (byte) order */
    struct {
        const char *name;
        double value;  /* as received */
        int64_t micro; /* from saliency_micro; -1 when absent */
    } saliency[ENGINE_ASSET_SALIENCY_MAX];
    int64_t version; /* the document's `v`, -1 when absent */
} engine_asset;

/* Decodes doc (stored under pk) into *out (pointers into doc).  Never fails;
 * saliency entries past ENGINE_ASSET_SALIENCY_MAX (only a damaged document
 * has them) are not read. */
void engine_asset_view(const bson_t *doc, const char *pk, engine_asset *out);

typedef enum engine_listing {
    ENGINE_LIST_BRANDS = 1,      /* brand aggregates by brand (the aggregates partition) */
    ENGINE_LIST_BRANDS_BY_COUNT, /* ... by count (gsi1), then brand */
    ENGINE_LIST_BRANDS_BY_MEAN,  /* ... by mean memorability (gsi2), then brand */
    ENGINE_LIST_CAMPAIGNS,       /* the campaign aggregates of `brand`, by campaign */
    ENGINE_LIST_SECTORS,         /* sector aggregates by sector */
    ENGINE_LIST_ASSETS           /* the assets of `brand` by campaign, then asset (asset index) */
} engine_listing;

typedef struct engine_list_query {
    engine_listing what;
    const char *tenant;
    const char *brand; /* campaigns, assets */
    int descending;
    /* The position of the last item an earlier call listed (its
     * engine_list_result.last); NULL or "" to start at the beginning. */
    const char *after;
    size_t limit;    /* items to list at most; 0: no bound (a whole walk) */
    size_t scan_max; /* stop after reading this many documents (a listing that
                      * passes over some, e.g. campaign aggregates among brands,
                      * then ends early with more set); 0: no bound */
    size_t page;     /* documents per store read; 0: limit + 1, doubling */
} engine_list_query;

/* Called for each listed item in order, with either the aggregate (valid for
 * the call; copy with engine_agg_copy) or the asset (its strings point into
 * the store's page: valid for the call), and the row the store keeps for it
 * (key and version).  An error stops the listing and is returned. */
typedef sl_status (*engine_list_fn)(void *ctx, const engine_agg *agg, const engine_asset *asset,
                                    const store_doc *row, sl_error *err);

typedef struct engine_list_result {
    size_t listed;
    int more;                     /* items are left: go on with after = last */
    char last[STORE_KEY_MAX + 1]; /* the position of the last document read */
} engine_list_result;

/* Walks the listing q: fn for each item, bounded by q->limit and
 * q->scan_max.  Memory is one store page, whatever the listing's length.
 * Aggregates are read as engine_brand_agg_get reads them (a damaged one, or
 * any quarantined one of the listed kind and prefix, needs repair); a page
 * row that is not BSON in items is SL_ECORRUPT naming it. */
sl_status engine_brand_list(store *s, const engine_list_query *q, engine_list_fn fn, void *ctx,
                            engine_list_result *res, sl_error *err);

/* ---------------------------------------------------------------------------
 * Sets of aggregates keyed by (kind, tenant, names): the shadow of a
 * recompute, the merged deltas of a listener batch, a test's expectations.
 * ------------------------------------------------------------------------- */
typedef struct engine_aggset engine_aggset;

/* A new empty set holding at most max_aggs aggregates (0: 1,000,000).  Free
 * with engine_aggset_free(). */
sl_status engine_aggset_new(size_t max_aggs, engine_aggset **out, sl_error *err);
void engine_aggset_free(engine_aggset **set);
void engine_aggset_clear(engine_aggset *set);
size_t engine_aggset_count(const engine_aggset *set);

/* The i-th aggregate in insertion order (or sorted order after
 * engine_aggset_sort), owned by the set; valid until the set changes shape. */
engine_agg *engine_aggset_at(engine_aggset *set, size_t i);

/* Sorts the aggregates by (pk, sk) bytewise. */
void engine_aggset_sort(engine_aggset *set);

/* The aggregate with these identity fields (kind, tenant and names of key),
 * or NULL. */
engine_agg *engine_aggset_find(engine_aggset *set, const engine_agg *key);

/* set[a's identity] += sign * a (the set keeps its own copy; a is not changed).
 * SL_ETOOLARGE when the set is full. */
sl_status engine_aggset_add(engine_aggset *set, const engine_agg *a, int sign, sl_error *err);

/* Adds sign * f(image) (see the top of this file) to the set.  image may be
 * NULL (adds nothing).  A document that is no asset or summary adds nothing
 * and returns SL_OK.  A malformed asset or summary adds nothing and returns
 * SL_EINVAL naming the field; the set is then unchanged. */
sl_status engine_aggset_apply_image(engine_aggset *set, const bson_t *image, int sign,
                                    sl_error *err);

/* ---------------------------------------------------------------------------
 * Quarantine: an aggregate whose document the listener cannot read (not
 * BSON, another document's bytes, a field missing, extra, mistyped,
 * negative or inconsistent: engine_agg_read fails), or would make
 * impossible by adding its deltas (it had drifted), is set aside instead of
 * stopping the feed for everyone.  The listener writes the record
 *   SYS#ENGINE / QUARANTINE#<aggregate pk>#<aggregate sk>
 *     { type: "aggregate_quarantine", agg_pk, agg_sk, tenant, consumer, cause,
 *       reason, since_ms, since_token }
 * in the same consumer commit as its token, leaves the document as it is,
 * and from then on skips the aggregate's deltas while every other aggregate
 * keeps moving.  `recompute --repair` rebuilds the aggregate from the items
 * and removes the record in one write (docs/recompute.md says why that is
 * exact).  Meanwhile the API answers 503 for a request that needs it, and
 * /healthz and /metrics count it.
 *
 * An aggregate over the metric limit (the top of this file) is quarantined
 * the same way, with the record's `cause: "metric_limit"` (else "damaged";
 * a record without the field is "damaged"); --repair removes such a record
 * only once the aggregate fits again, and writes one for an aggregate it
 * finds over the limit without a record, or rewrites the cause of one that
 * had been quarantined as damaged.  An aggregate whose sum passes int64
 * (the top of this file, "Overflow") is handled the same way, with
 * `cause: "overflow"`.
 * ------------------------------------------------------------------------- */
#define ENGINE_QUARANTINE_PREFIX "QUARANTINE#"

typedef enum engine_quarantine_cause {
    ENGINE_QUARANTINE_DAMAGED = 0,      /* "damaged": its document, or its sum, is impossible */
    ENGINE_QUARANTINE_METRIC_LIMIT = 1, /* "metric_limit": over ENGINE_AGG_METRICS_MAX metrics */
    ENGINE_QUARANTINE_OVERFLOW = 2      /* "overflow": a counter or sum would pass int64 */
} engine_quarantine_cause;

typedef struct engine_quarantine {
    char pk[SCHEMA_KEY_MAX]; /* the aggregate's key */
    char sk[SCHEMA_KEY_MAX];
    engine_quarantine_cause cause;
    char reason[256];
    int64_t since_ms; /* 0 when the record's bytes are damaged */
    int64_t version;  /* of the record */
} engine_quarantine;

/* The record of aggregate (pk, sk) into *out: SL_OK when it is quarantined
 * (also when the record's bytes are damaged), SL_ENOTFOUND when it is not. */
sl_status engine_quarantine_get(store *s, const char *pk, const char *sk, engine_quarantine *out,
                                sl_error *err);

/* The first quarantined aggregate of tenant whose sort key starts with
 * sk_prefix ("" or NULL: any) and whose kind is kind (0: any), in key order:
 * SL_OK and *out, or SL_ENOTFOUND. */
sl_status engine_quarantine_first(store *s, const char *tenant, const char *sk_prefix,
                                  engine_agg_kind kind, engine_quarantine *out, sl_error *err);

/* What a reader that needs an aggregate it cannot serve answers (engine.h,
 * "The brand read model": SL_ECORRUPT with err->field naming the case, which
 * the API answers 503):
 *  - engine_aggregate_needs_repair: aggregate sk is damaged (`what` says
 *    how), field ENGINE_FIELD_AGGREGATE;
 *  - engine_quarantine_error: quarantined aggregate q, by its cause
 *    (ENGINE_FIELD_AGGREGATE_OVER_LIMIT, ENGINE_FIELD_AGGREGATE_OVERFLOW,
 *    else ENGINE_FIELD_AGGREGATE);
 *  - engine_quarantine_check: the same for the first quarantined aggregate
 *    of tenant whose sort key starts with sk_prefix and whose kind is kind;
 *    SL_OK when none is (a listing over that range may be served). */
sl_status engine_aggregate_needs_repair(const char *sk, const char *what, sl_error *err);
sl_status engine_quarantine_error(const engine_quarantine *q, sl_error *err);
sl_status engine_quarantine_check(store *s, const char *tenant, const char *sk_prefix,
                                  engine_agg_kind kind, sl_error *err);

/* How many aggregates are quarantined (all tenants) into *n, and the first
 * max of them (in key order) into first[] (may be NULL). */
sl_status engine_quarantine_count(store *s, int64_t *n, engine_quarantine *first, size_t max,
                                  sl_error *err);

/* ---------------------------------------------------------------------------
 * The listener: one per store (a lease decides which), as a thread.
 * ------------------------------------------------------------------------- */
typedef struct engine_listener engine_listener;

typedef void (*engine_log_fn)(void *ctx, const char *level, const char *message);

/* The points of the listener's loop where a crash matters, for a test that
 * aims its kills there (engine_listener_options.at; `sightline listen
 * --debug-stop-at`).  A kill at each must leave the aggregates exact after
 * the next listener catches up, every event applied exactly once. */
typedef enum engine_listener_point {
    ENGINE_POINT_READ = 1,     /* events read into the batch, none of them committed */
    ENGINE_POINT_COMMIT = 2,   /* inside the consumer commit: its writes made, not committed */
    ENGINE_POINT_COMMITTED = 3 /* the consumer commit returned; nothing else done since */
} engine_listener_point;

/* Called on the listener thread at a point.  committed: the consumer token
 * the listener last committed ("" for none); token: at READ, the feed
 * position past the events read; at COMMIT and COMMITTED, the token being
 * committed (so COMMITTED means the store now holds token). */
typedef void (*engine_point_fn)(void *ctx, engine_listener_point point, const char *committed,
                                const char *token);

typedef struct engine_listener_options {
    const char *consumer; /* feed consumer name; NULL: ENGINE_CONSUMER */
    const char *holder;   /* lease holder id; NULL: "<host>:<pid>:<random>" */
    int64_t lease_ms;     /* lease lifetime; 0: 10000 (min 50, max 600000) */
    int64_t renew_ms;     /* renewal period; 0: lease_ms / 3 */
    size_t batch_max;     /* events per commit; 0: 16384 (max 65536) */
    int wait_ms;          /* how long one read waits when idle; 0: 50 (max 1000) */
    engine_log_fn log;    /* NULL: lines on stderr */
    void *log_ctx;
    /* A test hook, NULL in production (then it costs one test of a pointer
     * per read and per commit): called at every point above. */
    engine_point_fn at;
    void *at_ctx;
} engine_listener_options;

/* Starts the listener thread on s (which must outlive it).  On success *out
 * is freed by engine_listener_stop(). */
sl_status engine_listener_start(store *s, const engine_listener_options *opt, engine_listener **out,
                                sl_error *err);

/* Stops the thread (waits at most about one read), releases the lease and
 * frees the handle; *l becomes NULL.  NULL is fine. */
void engine_listener_stop(engine_listener **l);

#define ENGINE_LAG_BUCKETS 1025 /* 1 ms buckets 0..1023 ms, then one for >= 1024 ms */

typedef struct engine_listener_stats {
    int holding_lease;         /* 1 while this instance holds the lease */
    int feed_gone;             /* 1 when the feed position was pruned: run recompute --repair */
    int64_t events_applied;    /* events whose deltas were committed (since start) */
    int64_t events_skipped;    /* malformed images among them (contributed nothing) */
    int64_t commits;           /* consumer commits */
    int64_t conflicts;         /* commits retried after a version conflict */
    int64_t errors;            /* store errors survived (retried) */
    int64_t quarantined;       /* aggregates quarantined now, as this listener last read them */
    int64_t quarantined_total; /* aggregates this listener quarantined (since start) */
    int64_t quarantine_skips;  /* deltas to quarantined aggregates dropped (since start) */
    double applied_per_s;      /* over the last few seconds */
    int64_t lag_events;        /* events not applied yet (-1: unknown) */
    int64_t lag_ms;            /* age of the oldest event not applied (0: caught up) */
    /* Commit-to-applied latency of every applied event, in 1 ms buckets. */
    int64_t lag_hist[ENGINE_LAG_BUCKETS];
    int64_t lag_sum_ms; /* the sum of those latencies, exact (the last bucket has no top) */
    char last_error[256];
} engine_listener_stats;

/* A copy of the listener's counters; lag_* are asked of the store now. */
sl_status engine_listener_stats_get(engine_listener *l, engine_listener_stats *out, sl_error *err);

/* Writes the listener's counters as Prometheus text (sightline_listener_*:
 * running, lease_held, feed_gone, events_applied_total, events_skipped_total,
 * commits_total, conflicts_total, errors_total, quarantined,
 * quarantined_total, quarantine_skips_total, applied_events_per_second and
 * the histogram apply_latency_seconds).  l may be NULL (a process without a
 * listener): then only sightline_listener_running 0.  The lag itself is the
 * store's to tell (store_feed_stats_get), whoever runs the listener. */
void engine_listener_metrics_write(engine_listener *l, FILE *out);

/* ---------------------------------------------------------------------------
 * The tool catalog (engine/catalog.c).  The usage analysis maps detection
 * labels with the tenant's CURRENT catalog (not the sku ingest stored with a
 * frame), through schema's compiled matcher (schema.h, "The tool catalog").
 * ------------------------------------------------------------------------- */

/* Reads the catalog of tenant (T#<t>#CATALOG / TOOL#..., page by page
 * through store_query) and compiles it, entries in SKU byte order: when the
 * patterns of two entries overlap, the smaller SKU wins (schema_catalog_match).
 * Strict: a document that does not decode (schema_catalog_entry_from_bson),
 * is stored under another SKU's key, or has a pattern that does not compile
 * fails the whole load with SL_ECORRUPT naming the entry and the field, so
 * that no analysis prices a surgery with part of a catalog; a PUT of the
 * entry repairs it.  A catalog of more than SCHEMA_CATALOG_ENTRIES_MAX
 * entries fails with SL_ETOOLARGE naming the bound, having compiled no more
 * than that.  A tenant without a catalog gets an empty one (every label
 * unmapped).  On SL_OK *out is the caller's: schema_catalog_free().
 *
 * Use: load once per analysis; map each DISTINCT label once with
 * schema_catalog_match (frames list their distinct labels) and keep the index;
 * schema_catalog_at(c, index) gives the sku, name, unit cost and single_use. */
sl_status engine_catalog_load(store *s, const char *tenant, schema_catalog **out, sl_error *err);

/* ---------------------------------------------------------------------------
 * Surgery life cycle (engine/surgery.c).  The status fields of the surgery
 * META document (schema.h, "A surgery's life cycle") change only through
 * these transitions, which the API (close, analyze), the CLI (analyze) and
 * the analysis job call; ingest only reads them (it refuses detections
 * unless open) and keeps them across a PUT of the description.  They live in
 * the engine because the engine ends analyses and may not include ingest,
 * and the API and the CLI may include the engine.
 *
 *        close               analysis ends
 *   open ------> closed -----------------------> analyzed
 *                  ^    \----------------------> failed (analysis_error)
 *                  |  requeue (analyze again)      |
 *                  +-------------------------------+  (from analyzed or failed)
 *
 * closed means "analysis queued or running"; whoever runs analyses requeues
 * a surgery a crash left closed (no transition is needed for that: it is
 * already closed).  Each transition reads the document and writes it back
 * fenced on the version it read (retried a few times when another write
 * raced in), keeping every other field and the field order.
 * ------------------------------------------------------------------------- */
typedef enum engine_surgery_event {
    ENGINE_SURGERY_CLOSE = 1,    /* open -> closed; closed_ms = now */
    ENGINE_SURGERY_REQUEUE = 2,  /* analyzed | failed -> closed (re-analysis, e.g. catalog
                                    fix); analysis_error "", analyzed_ms kept (the last end) */
    ENGINE_SURGERY_ANALYZED = 3, /* closed -> analyzed; analyzed_ms = now, analysis_error "" */
    ENGINE_SURGERY_FAILED = 4    /* closed -> failed; analyzed_ms = now, analysis_error = why */
} engine_surgery_event;

/* The life cycle of a surgery into *out (and its document's version into
 * *version, may be NULL).  SL_ENOTFOUND naming "surgery" when the tenant has
 * no such surgery; SL_ECORRUPT naming the field when its status fields do
 * not read. */
sl_status engine_surgery_life_get(store *s, const char *tenant, const char *surgery,
                                  schema_surgery_life *out, int64_t *version, sl_error *err);

/* Applies event ev to the surgery at now_ms (ms since the epoch; <= 0: the
 * clock's now).  why is the failure's reason for ENGINE_SURGERY_FAILED
 * (NULL or "" is refused: a failure says why; cut to SCHEMA_ANALYSIS_ERROR_MAX
 * bytes at a character boundary), ignored otherwise.
 *   SL_OK          written; *out (may be NULL) is the new life cycle
 *   SL_ECONFLICT   the status does not allow ev (naming "status": "surgery
 *                  \"s\" is analyzed: only an open surgery can be closed");
 *                  nothing written, and *out is the CURRENT life cycle, so a
 *                  caller can answer an idempotent repeat (a second close)
 *   SL_ENOTFOUND   no such surgery (naming "surgery")
 *   SL_EBUSY       other writes kept moving its version (retry)
 *   SL_ECORRUPT    its status fields do not read
 * and the store's errors. */
sl_status engine_surgery_transition(store *s, const char *tenant, const char *surgery,
                                    engine_surgery_event ev, int64_t now_ms, const char *why,
                                    schema_surgery_life *out, sl_error *err);

/* ---------------------------------------------------------------------------
 * Tool usage (engine/usage*.c; the algorithm, every parameter and why its
 * default is what it is: docs/usage.md).  Which opened tools left the scrub
 * table: a surgery's frames, read in frame order, go through a tracker that
 * follows each physical instance by its slot on the table; the results are
 * one tool_result per opened instance and the surgery's SUMMARY, whose tools
 * the listener turns into tool aggregates (docs/documents.md).
 *
 *   engine_usage_analyze  reads and writes; never changes the life cycle
 *   engine_usage_run      the job of a closed surgery: analyze, then the
 *                         transition closed -> analyzed, or -> failed naming
 *                         why (what the API's close / analyze jobs and the
 *                         CLI call)
 * ------------------------------------------------------------------------- */

/* The parameters.  Windows are in milliseconds of the surgery's video,
 * turned into frames with its fps (at least one frame each) and counted in
 * ANALYZED frames: a frame that was never ingested is no evidence either way,
 * so gaps in the frames stretch the windows.  Fractions are micro-units
 * (1000000 = 1).  Bounds and defaults: the table in engine/usage_params.c
 * (engine_usage_param_info); each default is justified in docs/usage.md. */
#define ENGINE_USAGE_PATTERN_MAX SCHEMA_CATALOG_PATTERN_MAX
typedef struct engine_usage_params {
    int64_t open_ms;       /* seen on the table this long, in min_fill of the frames => opened */
    int64_t leave_ms;      /* absent from its slot, not occluded, this long => left (used) */
    int64_t return_ms;     /* a new sighting held this long => a return (or move) of an instance
                              missing from the table, when there is one */
    int64_t move_ms;       /* an instance found elsewhere on the table after less than this
                              off it was moved, not used */
    int64_t off_ms;        /* seen off the table this long while missing from it => used */
    int64_t iou_min_micro; /* a detection belongs to a slot with this IoU ... */
    int64_t centroid_max_micro;   /* ... or centres this close (normalized distance) */
    int64_t min_confidence_micro; /* detections below are ignored */
    int64_t min_fill_micro;       /* "sustained": seen in at least this fraction of frames */
    int64_t occlusion_micro;      /* an occluder covering this fraction of a slot hides it */
    int64_t tracks_max;           /* instances and candidates tracked at once (memory) */
    /* PCRE2 pattern (whole label, as a catalog pattern) of the labels that
     * occlude: hands, gloves, arms, people.  A label the catalog maps is a
     * tool, never an occluder. */
    char occluder_pattern[ENGINE_USAGE_PATTERN_MAX + 1];
} engine_usage_params;

/* The defaults into *p. */
void engine_usage_params_default(engine_usage_params *p);

/* SL_OK when every parameter is within its bounds and the pattern compiles;
 * else SL_EINVAL naming the parameter ("leave_ms must be 100 to 3600000,
 * not 5"). */
sl_status engine_usage_params_check(const engine_usage_params *p, sl_error *err);

/* One parameter by name, from text (a decimal integer, or the pattern):
 * SL_EINVAL naming it when the name is unknown or the value is not one it
 * takes; *p is changed only on SL_OK.  For the CLI and the API's query. */
sl_status engine_usage_param_set(engine_usage_params *p, const char *name, const char *value,
                                 sl_error *err);

/* The table of parameters, for help texts and listings. */
typedef struct engine_usage_param_info {
    const char *name; /* as engine_usage_param_set takes it, and the summary's params hold it */
    int64_t min, max, def; /* numbers; for the pattern: byte bounds of its text, def unused */
    const char *help;
    int is_text; /* 1: the occluder pattern */
} engine_usage_param_info;
size_t engine_usage_param_count(void);
const engine_usage_param_info *engine_usage_param_at(size_t i);

/* Writes one line per parameter (name, bounds, default, help) to out. */
void engine_usage_params_help(FILE *out);

/* What an analysis found and did, for its caller (CLI, API, bench). */
typedef struct engine_usage_result {
    int64_t frames, frames_empty, detections, unmapped_detections;
    int64_t instances; /* opened instances (tool_result documents) */
    int64_t opened, used, unused, waste_cents;
    int64_t written;     /* documents written whose content changed (feed events) */
    int64_t deleted;     /* stale tool_result documents deleted */
    int64_t tracks_peak; /* instances and candidates tracked at once, at most */
} engine_usage_result;

/* Analyzes surgery of tenant and writes its results (any status: the life
 * cycle is engine_usage_run's business; a caller analyzing an open surgery
 * gets the frames stored so far).
 *
 * Reads the META (hospital, procedure, start, fps, table), the tenant's
 * CURRENT catalog (engine_catalog_load: labels are mapped again, not with the
 * SKU ingest stored), and the frames in frame order a page at a time: memory
 * is bounded by the instances tracked (p->tracks_max) and the distinct
 * labels (ENGINE_USAGE_LABELS_MAX), never by the number of frames.  Then
 * writes, in batches of at most ENGINE_USAGE_BATCH_DOCS documents each
 * fenced on the META's version read at the start: every TOOL#<sku>#<nnnn>
 * result, deletes of the TOOL# results an earlier run left that this one has
 * not (a catalog change, new parameters), and the SUMMARY last, so the
 * summary always describes results that stand.  Idempotent: the same frames,
 * catalog and parameters write the same bytes, so a re-run changes nothing
 * and makes no feed event (out->written == 0).
 *
 * Errors (*out is written only on SL_OK):
 *   SL_EINVAL      p out of bounds (naming the parameter); a label the
 *                  catalog's patterns cannot finish matching (naming the entry)
 *   SL_ENOTFOUND   no such surgery (naming "surgery")
 *   SL_ECORRUPT    the META, a frame or a catalog entry does not read (naming
 *                  the frame or the field)
 *   SL_ETOOLARGE   more than p->tracks_max tracked at once, more than
 *                  SCHEMA_INSTANCE_MAX instances of one SKU, more than
 *                  ENGINE_SUMMARY_TOOLS_MAX SKUs opened, more than
 *                  ENGINE_USAGE_LABELS_MAX distinct labels
 *   SL_ECONDITION  the surgery's META changed while it was analyzed (a PUT of
 *                  its description, another analysis ending): nothing more
 *                  is written; analyze again
 *   and the store's errors.  After an error part of the results may stand
 *   (every batch is atomic, the analysis as a whole is not); the SUMMARY is
 *   written only by a run that wrote everything else. */
#define ENGINE_USAGE_BATCH_DOCS 256    /* documents of one write batch */
#define ENGINE_USAGE_LABELS_MAX 65536u /* distinct detector labels of one surgery */
sl_status engine_usage_analyze(store *s, const char *tenant, const char *surgery,
                               const engine_usage_params *p, engine_usage_result *out,
                               sl_error *err);

/* The analysis job of a surgery that is `closed` (queued): analyzes it and
 * moves it to `analyzed`, or to `failed` with the analysis's error as
 * analysis_error (then returns that error).  A surgery in another status is
 * refused with SL_ECONFLICT naming "status" and left as it is (close it, or
 * requeue an analyzed or failed one, first: engine_surgery_transition).  When
 * even the failed transition cannot be written (the store is down) the
 * surgery stays closed, which is how a crashed job looks too: whoever runs
 * jobs requeues closed surgeries. */
sl_status engine_usage_run(store *s, const char *tenant, const char *surgery,
                           const engine_usage_params *p, engine_usage_result *out, sl_error *err);

/* ---------------------------------------------------------------------------
 * The tool-usage read model (engine/usage_read.c): what an analyzed
 * surgery's analysis found, as plain numbers, for the surgery report
 * (reports/) and any answer that wants the same numbers.  Everything comes
 * from ONE store snapshot: the META (description, life cycle), the SUMMARY
 * (totals, per-SKU lines, data-quality counts), every TOOL# result and the
 * last frame's number; the tenant's current catalog only marks the SKUs it
 * now prices differently from the analysis.  The numbers are those GET
 * /v1/surgeries/{id}/usage answers (the summary's, not recomputed).
 * ------------------------------------------------------------------------- */
#define ENGINE_USAGE_READ_INSTANCES_MAX 100000u /* tool results one read takes (~100 B each) */
#define ENGINE_USAGE_TEXT_MAX           256u    /* room, surgeon, tool names (ingest's bound) */

/* How the current catalog's entry of a SKU compares with what the analysis
 * priced it at (name, unit cost, single use). */
typedef enum engine_usage_catalog {
    ENGINE_USAGE_CATALOG_SAME = 0,
    ENGINE_USAGE_CATALOG_CHANGED = 1,   /* analyze again to price it as the catalog does now */
    ENGINE_USAGE_CATALOG_GONE = 2,      /* no entry now */
    ENGINE_USAGE_CATALOG_UNREADABLE = 3 /* the catalog does not load (an entry to repair) */
} engine_usage_catalog;

/* One SKU the analysis found opened (a summary `tools` entry). */
typedef struct engine_usage_tool {
    char sku[SCHEMA_COMPONENT_MAX + 1];
    char name[ENGINE_USAGE_TEXT_MAX + 1];
    int64_t opened, used, unused; /* instances */
    int64_t unit_cost_cents;      /* as priced by the analysis */
    int64_t waste_cents;          /* unused x unit cost when single use, else 0 */
    bool single_use;
    engine_usage_catalog catalog;
} engine_usage_tool;

/* One opened instance (a TOOL#<sku>#<nnnn> result). */
typedef struct engine_usage_instance {
    size_t tool; /* index in engine_usage_view.tools */
    int32_t instance;
    bool used;
    int64_t first_seen_frame, first_frame, last_frame;
    int64_t left_frame, returned_frame; /* -1: never */
    int64_t confidence_micro;
    int64_t version; /* the stored document's */
} engine_usage_instance;

typedef struct engine_usage_label {
    char label[ENGINE_USAGE_TEXT_MAX + 1];
    int64_t detections;
    bool occluder;
} engine_usage_label;

typedef struct engine_usage_view {
    char tenant[SCHEMA_COMPONENT_MAX + 1], surgery[SCHEMA_COMPONENT_MAX + 1];
    /* the META */
    char hospital[SCHEMA_COMPONENT_MAX + 1], procedure[SCHEMA_COMPONENT_MAX + 1];
    char room[ENGINE_USAGE_TEXT_MAX + 1], surgeon[ENGINE_USAGE_TEXT_MAX + 1];
    int64_t started_ms;
    double fps;
    schema_surgery_life life;
    int64_t meta_version;
    /* the SUMMARY */
    int64_t summary_version;
    int64_t opened, used, unused, waste_cents; /* instances; cents */
    int64_t frames, frames_empty, detections, unmapped_detections;
    engine_usage_label unmapped[SCHEMA_UNMAPPED_LABELS_MAX]; /* the first by count */
    size_t nunmapped;
    engine_usage_tool *tools; /* ntools, in the summary's (SKU) order */
    size_t ntools;
    /* the results, in key order (SKU, then instance number) */
    engine_usage_instance *instances;
    size_t ninstances;
    int64_t last_frame; /* the last frame stored; -1: none */
} engine_usage_view;

/* Reads surgery of tenant into *out (zeroed first; free it with
 * engine_usage_view_free, also after an error).
 *   SL_OK          analyzed: everything read
 *   SL_ECONFLICT   not analyzed (open, closed = analysis queued or running,
 *                  or failed), naming "status"; out->life says which
 *   SL_ENOTFOUND   no such surgery (naming "surgery")
 *   SL_ECORRUPT    a document of the surgery does not read (naming it and
 *                  the field), or the summary is missing
 *   SL_ETOOLARGE   more than ENGINE_USAGE_READ_INSTANCES_MAX results
 * and the store's errors. */
sl_status engine_usage_read(store *s, const char *tenant, const char *surgery,
                            engine_usage_view *out, sl_error *err);
void engine_usage_view_free(engine_usage_view *v);

/* ---------------------------------------------------------------------------
 * Recompute: rebuild aggregates from base documents, compare, repair.
 *
 * One store snapshot per run: in it the live aggregates reflect the consumer's
 * committed token C while items reflect the snapshot head H; the shadow built
 * from items is brought back to C by subtracting the deltas of the feed events
 * in (C, H], so both sides describe the same point.  The shadow is kept in
 * memory one tenant at a time (items are scanned in pk order, so a tenant's
 * documents are contiguous), bounded by max_aggregates.  Every live document
 * is read against the key the store keeps for it (store_doc), so a document
 * that is not BSON, holds another document's bytes, or has a field missing,
 * extra, mistyped, negative or inconsistent is named as such; so is a
 * quarantined aggregate (its record).
 *
 * --repair replaces, it never adds: for a tenant with drift it takes the
 * listener's lease (engine__lease_seize: the listener's commits stop, its
 * token C' stays put), rebuilds that tenant in a fresh snapshot taken after,
 * and writes each drifted aggregate as rebuilt, removing its quarantine
 * record in the same write, each write fenced on the version the snapshot
 * showed and on both leases; then gives the lease back and the listener goes
 * on from C'.  docs/recompute.md ("Repair") argues why nothing is lost or
 * applied twice.  Only one repairing run at a time (a lease RECOMPUTE#... in
 * SYS#ENGINE).  A thread of the run renews both leases every third of
 * their lifetime whatever the run does; a tenant whose repair loses the
 * listener's lease anyway (it expired and the listener took it) is repaired
 * again from a new seizure, at most 5 times (repair_retries).  When the consumer's feed position
 * was pruned, repair holds the listener's lease for the whole run, resets the consumer to the head,
 * then repairs every tenant.
 *
 * Resumable: after each tenant the run records a checkpoint; a run with the
 * same scope (tenant option and repair) continues after the last finished
 * tenant unless `fresh` is set.
 * ------------------------------------------------------------------------- */
#define ENGINE_DRIFT_VALUE_MAX   48
#define ENGINE_DRIFT_SUMMARY_MAX 768

/* One drifted field (the --verbose listing). */
typedef struct engine_drift_row {
    char tenant[ENGINE_NAME_SIZE];
    char sk[SCHEMA_KEY_MAX];                 /* the aggregate's sort key */
    char field[ENGINE_METRIC_NAME_MAX + 32]; /* "count", "metrics.memorability.hist[42]", ... */
    char live[ENGINE_DRIFT_VALUE_MAX]; /* "absent" when missing; what is wrong when unreadable */
    char recomputed[ENGINE_DRIFT_VALUE_MAX];
} engine_drift_row;

/* One drifted aggregate, its fields summed up by group: what is wrong with
 * the document itself ("document is not BSON (12 bytes)", "document holds a
 * campaign_agg document of T#a#AGG / BRAND#b#CAMPAIGN#c", "quarantined by the
 * listener since ...: why", "fields: count missing"), then each scalar that
 * differs ("count live 3 recomputed 4") and each metric that differs
 * ("metrics.memorability: n, sum, sumsq, hist (12 bins) differ"), separated
 * by "; ". */
typedef struct engine_drift_agg {
    char tenant[ENGINE_NAME_SIZE];
    char sk[SCHEMA_KEY_MAX];
    int64_t fields;        /* drifted fields (rows) of this aggregate */
    int repaired;          /* 1 when this run replaced it */
    int over_metric_limit; /* 1 when rebuilt it is over the metric limit: never repaired */
    int overflow;          /* 1 when rebuilt a sum of it passes int64: never repaired */
    char summary[ENGINE_DRIFT_SUMMARY_MAX];
} engine_drift_agg;

typedef struct engine_recompute_progress {
    const char *tenant; /* being processed */
    int64_t tenants_done;
    int64_t items_scanned;
    int64_t assets_scanned;
    int64_t assets_estimate; /* from the live brand aggregates; 0 when unknown */
    int64_t drift_fields;
} engine_recompute_progress;

/* Where a repair step is, for a test that aims there (engine_recompute_options.at). */
typedef enum engine_recompute_point {
    ENGINE_RECOMPUTE_SEIZED = 1, /* a tenant's repair took the listener's lease; no snapshot yet */
    ENGINE_RECOMPUTE_WRITE = 2   /* it is about to write a batch, fenced on both leases */
} engine_recompute_point;

typedef struct engine_recompute_options {
    const char *tenant; /* NULL or "": every tenant */
    int repair;
    int fresh;            /* ignore a checkpoint of an interrupted run */
    const char *consumer; /* NULL: ENGINE_CONSUMER */
    /* Of one tenant in memory, and of the pending feed deltas (the changes
     * in (C, H] of every tenant in scope: past it the run fails, SL_ETOOLARGE,
     * rather than leave one out); 0: 2,000,000. */
    size_t max_aggregates;
    size_t max_rows; /* drift rows, and drifted aggregates, kept in the report; 0: 10,000 */
    /* Called every few hundred documents and after each tenant; a nonzero
     * return interrupts the run (SL_EBUSY), which resumes from its checkpoint. */
    int (*progress)(void *ctx, const engine_recompute_progress *p);
    void *progress_ctx;
    /* Lifetime of the leases a repair holds (its own, and the listener's
     * while it replaces a tenant's aggregates), renewed every third of it;
     * 0: 10000 (50..600000).  A run that dies leaves them to expire. */
    int64_t lease_ms;
    /* A test hook, NULL in production: called on the run's thread at each
     * point, with the tenant being repaired. */
    void (*at)(void *ctx, engine_recompute_point point, const char *tenant);
    void *at_ctx;
} engine_recompute_options;

typedef struct engine_recompute_report {
    char run_id[40];
    int64_t started_ms, finished_ms;
    int resumed;        /* continued an interrupted run */
    int feed_gone;      /* the consumer's position had been pruned */
    int consumer_reset; /* ... and repair moved it to the head */
    int64_t tenants;    /* tenants compared (this run and the one it resumed) */
    int64_t items_scanned;
    int64_t malformed; /* assets / summaries that contribute nothing */
    int64_t aggregates_checked;
    int64_t drift_fields;
    int64_t drift_aggregates;
    int64_t repaired_aggregates;
    int64_t over_limit_aggregates; /* drifted ones over the metric limit (left quarantined) */
    int64_t overflow_aggregates;   /* drifted ones whose sums pass int64 (left quarantined) */
    int64_t repair_retries; /* tenant repairs begun again: the listener took its lease back */
    size_t nrows;           /* rows kept (at most max_rows) of this process's part */
    engine_drift_row *rows;
    size_t naggs; /* drifted aggregates kept (at most max_rows) of this process's part */
    engine_drift_agg *aggs;
} engine_recompute_report;

/* Runs a recompute.  On SL_OK *out holds the report: free it with
 * engine_recompute_report_free().  Drift is not an error: look at
 * out->drift_fields.  An audit document is written for every finished run. */
sl_status engine_recompute(store *s, const engine_recompute_options *opt,
                           engine_recompute_report *out, sl_error *err);

void engine_recompute_report_free(engine_recompute_report *r);

#endif /* SIGHTLINE_ENGINE_H */
