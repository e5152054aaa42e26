/* e2e.h -- what the end-to-end tests share on top of the test-support
 * library (tests/support/support.h: processes, the server, the keep-alive
 * HTTP client): the usual start, JSON helpers (yajl), and an independent
 * model of brand assets that computes the expected aggregates with plain
 * loops (no engine code).  Functions report failures by their return value
 * and a line on stderr; the tests turn them into CHECKs. */
#ifndef SIGHTLINE_TESTS_E2E_H
#define SIGHTLINE_TESTS_E2E_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <yajl/yajl_tree.h>

#include "tests/support/support.h"

/* ---------------------------------------------------------------------------
 * The listener.
 * ------------------------------------------------------------------------- */

/* Waits until /metrics says the aggregates listener applied every event
 * (sightline_feed_behind_events 0); 0 when it did within timeout_ms. */
int e2e_wait_caught_up(support_client *c, int timeout_ms);

/* ---------------------------------------------------------------------------
 * JSON.
 * ------------------------------------------------------------------------- */

/* Parses text into a tree the caller frees with yajl_tree_free(); NULL (and
 * a line on stderr) when it is not JSON. */
yajl_val e2e_json(const char *text);

/* Member `key` of an object, NULL when absent or v is no object. */
yajl_val e2e_get(yajl_val v, const char *key);

/* A string / integer / number member; the fallback when absent or mistyped. */
const char *e2e_get_str(yajl_val v, const char *key);
int64_t e2e_get_int(yajl_val v, const char *key, int64_t fallback);
double e2e_get_num(yajl_val v, const char *key, double fallback);

/* ---------------------------------------------------------------------------
 * The model: assets of several tenants, and the aggregates they imply.
 * ------------------------------------------------------------------------- */
#define M_TENANTS   2
#define M_BRANDS    12
#define M_CAMPAIGNS 4
#define M_SECTORS   6
#define M_SAL       4 /* saliency measures an asset may carry */
#define M_METRICS   (1 + M_SAL)
#define M_BINS      100

extern const char *const m_tenants[M_TENANTS];
extern const char *const m_brands[M_BRANDS];
extern const char *const m_campaigns[M_CAMPAIGNS];
extern const char *const m_sectors[M_SECTORS];
extern const char *const m_metric_names[M_METRICS]; /* memorability, then saliency names */

typedef struct m_asset {
    int present;
    int brand, campaign, sector;
    int video;
    char score[M_METRICS][24]; /* as sent; "" = metric absent (saliency only) */
    int64_t micro[M_METRICS];
    int64_t version; /* the document's `v` the store should hold */
} m_asset;

typedef struct m_metric {
    int64_t n, sum;
    __int128 sumsq;
    int64_t hist[M_BINS];
} m_metric;

typedef struct m_agg {
    int64_t count;
    m_metric m[M_METRICS];
} m_agg;

typedef struct m_expect {
    m_agg brand[M_BRANDS];
    m_agg campaign[M_BRANDS][M_CAMPAIGNS];
    m_agg sector[M_SECTORS];
} m_expect;

typedef struct e2e_model {
    size_t nassets; /* ids per tenant */
    m_asset *assets[M_TENANTS];
    uint64_t rng;
} e2e_model;

/* The usual start: a temporary directory with a store, each tenant of the
 * model (kind brand-client) with an ingest and a viewer key, a server (extra
 * arguments: NULL-terminated, may be NULL) and a keep-alive client per tenant
 * and key; 0 on success.  e2e_world_stop frees the clients and stops the
 * server, returning its exit code; the directory stays for the test to
 * remove (support_rmrf). */
typedef struct e2e_world {
    char dir[128], store[200];
    char ingest_key[M_TENANTS][128], viewer_key[M_TENANTS][128];
    support_server srv;
    support_client *ingest[M_TENANTS], *viewer[M_TENANTS];
} e2e_world;

int e2e_world_start(e2e_world *w, const char *const *extra);
int e2e_world_stop(e2e_world *w);

/* The seed of a run: tests/seed.h's test_seed() ($SIGHTLINE_TEST_SEED, else
 * drawn from getrandom; printed, to replay a failure). */
uint64_t e2e_seed(void);

/* A model with nassets ids per tenant ("as-000000" ...), all absent; free
 * its arrays with e2e_model_free(). */
int e2e_model_init(e2e_model *m, size_t nassets, uint64_t seed);
void e2e_model_free(e2e_model *m);

/* A pseudo-random number below n (n > 0), from the model's generator. */
uint32_t e2e_below(e2e_model *m, uint32_t n);

/* Fresh random scores for a (keeps names), with their micro-units known by
 * construction; a fifth of them are ties at half a micro-unit. */
void e2e_random_scores(e2e_model *m, m_asset *a);

/* The micro-units of a score as written (docs/formats.md, "Scores": the
 * decimal rounded to the nearest millionth, a half away from zero), from the
 * text alone. */
int64_t e2e_micro_of(const char *score);

/* 1 when a and b store the same scores (equal nearest doubles and
 * micro-units: two spellings of one number are one score). */
int e2e_same_scores(const m_asset *a, const m_asset *b);

/* The JSON body of a's PUT; with_id adds "asset": id (a batch line).
 * Returns the length written (< cap). */
size_t e2e_asset_json(const m_asset *a, const char *id, int with_id, char *out, size_t cap);

/* The asset id of index i ("as-000042"). */
void e2e_asset_id(size_t i, char out[16]);

/* The aggregates tenant t's present assets imply, by plain loops. */
void e2e_expect(const e2e_model *m, int t, m_expect *out);

/* Compares an aggregate object of the API ({"count", "metrics": {...}}) with
 * the expected one: count, the set of metrics, each metric's n and sum_micro
 * exactly; mean, stddev, p10/median/p90 (the documented interpolation in the
 * histogram) and min/max within one ulp of the exact rational docs/dashboard.md
 * defines (compared in integer arithmetic, no floating-point step shared with
 * the engine); and the histogram itself when the object carries it.  Prints
 * each difference naming what; returns their number. */
int e2e_compare_agg(const char *what, yajl_val obj, const m_agg *want);

/* Checks e2e_compare_agg's exact comparison itself on random sums: the
 * double nearest each expected number passes, one two ulps away does not.
 * Returns the number of failures (each printed). */
int e2e_oracle_selftest(void);

/* One random operation mix through HTTP (see e2e.c): inserts, rescores,
 * reassignments across brands, campaigns and sectors, deletes, identical
 * re-sends and refused bodies, as single PUT/DELETE and NDJSON batches.
 * `ops` operations in all; each tenant's ingest client is ingest[t].  After
 * every operation, hook (may be NULL) is called with the count so far.
 * Returns the number of unexpected answers (each printed). */
typedef struct e2e_workload_stats {
    int64_t inserts, rescores, reassigns, deletes, resends, refused;
    int64_t single_requests, batch_requests;
} e2e_workload_stats;

int e2e_workload(e2e_model *m, support_client *const ingest[M_TENANTS], int64_t ops,
                 void (*hook)(void *ctx, int64_t done), void *ctx, e2e_workload_stats *st);

/* Checks every brand, campaign and sector aggregate of tenant t through the
 * API (the viewer client) against the model: lists (paginated, limit
 * page_limit), single GETs, 404s for those with no asset.  Returns the
 * number of differences (each printed). */
int e2e_check_all(e2e_model *m, int t, support_client *viewer, int page_limit);

#endif
