/* engine_int.h -- what the engine's files share and nobody else sees: decoding
 * of live aggregates with their problems listed, key parsing, quarantine
 * records, the lease, logging and clocks. */
#ifndef SIGHTLINE_ENGINE_INT_H
#define SIGHTLINE_ENGINE_INT_H

#include "engine.h"

/* What is wrong with a live aggregate document, read against the key it is
 * stored under: each field that is missing, of the wrong type, duplicated,
 * extra, disagreeing with the key, not decoding (a histogram), negative or
 * inconsistent with the others (engine__agg_check), or a stale index field;
 * and whether the bytes are another document altogether (foreign: its pk,
 * sk or type disagree with the key or are missing).  Unreadable fields read
 * as 0, so recompute can still compare what is there. */
#define ENGINE__PROBLEMS_MAX 16
typedef struct engine__problems {
    size_t n;
    int more; /* problems past ENGINE__PROBLEMS_MAX were dropped */
    char field[ENGINE__PROBLEMS_MAX][ENGINE_METRIC_NAME_MAX + 32];
    const char *why[ENGINE__PROBLEMS_MAX]; /* one of the engine__why_* strings */
    char foreign[2 * SCHEMA_KEY_MAX + 64]; /* "" or "a campaign_agg document of <pk> / <sk>" */
} engine__problems;

extern const char *const engine__why_missing,
    *const engine__why_type, *const engine__why_extra,
                                 *const engine__why_duplicate,
                                     *const engine__why_key,
                                         *const engine__why_decode,
                                             *const engine__why_negative,
                                                 *const engine__why_inconsistent,
                                                     *const engine__why_stale;

/* Decodes the document stored under (pk, sk): kind and names come from that
 * key, not from the bytes.  Unreadable fields become 0 and are listed in
 * *problems (may be NULL), with what the bytes are when they are another
 * document.  *out owns its metrics afterwards: free with engine_agg_free.
 * Fails (SL_ECORRUPT) only when (pk, sk) is not an aggregate key. */
sl_status engine__agg_decode_at(const bson_t *doc, const char *pk, const char *sk, engine_agg *out,
                                engine__problems *problems, sl_error *err);

/* Adds to *p every value of a that no aggregate of real documents has (see
 * engine_agg_check). */
void engine__agg_check(const engine_agg *a, engine__problems *p);

/* 1 for a problem with an index field only (gsi*: stale, missing, or on a
 * kind without index): the content is still right, and the next write of
 * the aggregate rewrites them. */
int engine__index_problem(const char *field);

/* Kind and names of an aggregate from its keys (T#t#AGG and its sort key);
 * components are validated.  *out is initialized here (no metrics). */
sl_status engine__agg_identity(const char *pk, const char *sk, engine_agg *out, sl_error *err);

/* Metric `name` of a (name checked by the caller), created zeroed if absent; it
 * belongs to a and moves when a metric is added.  NULL when a is full or memory
 * ran out (err says which). */
engine_metric *engine__agg_metric_get(engine_agg *a, const char *name, sl_error *err);

/* Removes the metrics whose fields are all zero (absent and zero are the same). */
void engine__agg_prune(engine_agg *a);

/* 1 when name (len bytes, from a BSON key) may name a metric: "memorability"
 * or a valid component of 1..ENGINE_METRIC_NAME_MAX bytes. */
int engine__metric_name_ok(const char *name, size_t len);

/* 1 when a and b have the same kind, tenant and names. */
int engine__agg_same_identity(const engine_agg *a, const engine_agg *b);

/* Copies kind and names of src into dst (metrics and counters untouched). */
void engine__agg_copy_identity(engine_agg *dst, const engine_agg *src);

/* "T#<tenant>#" of a pk into out (SCHEMA_KEY_MAX); 0 if pk is not a tenant key. */
int engine__tenant_group(const char *pk, char *out);

/* ---------------------------------------------------------------------------
 * Quarantine records (engine.h, "Quarantine").
 * ------------------------------------------------------------------------- */

/* The record's sort key for aggregate (agg_pk, agg_sk) into out. */
sl_status engine__quarantine_sk(const char *agg_pk, const char *agg_sk, char out[STORE_KEY_MAX],
                                sl_error *err);

/* Appends the record's fields to d (initialized by the caller). */
void engine__quarantine_doc(bson_t *d, const char *qsk, const engine_agg *a, const char *agg_pk,
                            const char *agg_sk, const char *consumer, const char *reason,
                            const char *since_token);

/* Calls fn for each record of tenant (NULL: every tenant, and then
 * sk_prefix is ignored) whose aggregate's sort key starts with sk_prefix,
 * in key order, until fn returns 0.  The aggregate's key comes from the
 * record's key, so a record with damaged bytes still counts. */
sl_status engine__quarantine_each(store *s, const char *tenant, const char *sk_prefix,
                                  int (*fn)(void *ctx, const engine_quarantine *q), void *ctx,
                                  sl_error *err);

/* Wall-clock milliseconds since the epoch (what feed commit_ms and lease
 * expiries use) and a monotonic clock in ms for intervals. */
int64_t engine__now_ms(void);
int64_t engine__mono_ms(void);

/* Formats an int128 in decimal into out (>= 41 bytes). */
void engine__i128_format(engine_i128 v, char *out, size_t size);

/* ---------------------------------------------------------------------------
 * Leases: a document SYS#ENGINE / LEASE#<name> in `aggregates` naming its
 * holder and expiry.  Whoever holds it fences its writes with a version
 * check on it (the version changes when anyone else takes it).
 * ------------------------------------------------------------------------- */
typedef struct engine__lease {
    char sk[STORE_KEY_MAX];
    char name[STORE_CONSUMER_MAX];
    char holder[128];
    int64_t ttl_ms;
    int held;           /* 1 after a successful acquire or renew */
    int64_t version;    /* version of the lease document we wrote last */
    int64_t expires_ms; /* wall clock */
    int64_t acquired_ms;
} engine__lease;

/* Prepares *l for lease `name` (no store access). */
void engine__lease_init(engine__lease *l, const char *name, const char *holder, int64_t ttl_ms);

/* Takes the lease if it is free, expired, or ours.  SL_OK and l->held = 1 on
 * success; SL_EBUSY when someone else holds it (err says who, until when). */
sl_status engine__lease_acquire(store *s, engine__lease *l, sl_error *err);

/* Takes the lease whoever holds it, as long as no one renews it between our
 * read and our write (then reads again).  The holder's writes, fenced on the
 * version it wrote, fail from then on; it gets the lease back once we release
 * it or it expires.  For a repairing recompute, which stops the listener's
 * commits this way while it replaces aggregates (docs/recompute.md). */
sl_status engine__lease_seize(store *s, engine__lease *l, sl_error *err);

/* Extends our lease.  SL_ECONDITION (l->held = 0) when it was taken from us. */
sl_status engine__lease_renew(store *s, engine__lease *l, sl_error *err);

/* Gives the lease up (deletes it if still ours).  Errors are ignored: the
 * lease then simply expires. */
void engine__lease_release(store *s, engine__lease *l);

/* A default holder id "<host>:<pid>:<random hex>" into out. */
void engine__holder_default(char *out, size_t size);

/* Logging through an engine_log_fn, or to stderr when fn is NULL. */
void engine__log(engine_log_fn fn, void *ctx, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif /* SIGHTLINE_ENGINE_INT_H */
