/* engine_int.h -- what the engine's files share and nobody else sees: lenient
 * decoding of live aggregates, key parsing, the lease, logging and clocks. */
#ifndef SIGHTLINE_ENGINE_INT_H
#define SIGHTLINE_ENGINE_INT_H

#include "engine.h"

/* Fields of a live aggregate document that could not be read (missing, wrong
 * type, out of range, disagreeing with the key).  Decoding goes on with 0 for
 * them, so the listener keeps applying deltas and recompute can repair. */
#define ENGINE__PROBLEMS_MAX 16
typedef struct engine__problems {
    size_t n;
    int more; /* problems past ENGINE__PROBLEMS_MAX were dropped */
    char field[ENGINE__PROBLEMS_MAX][ENGINE_METRIC_NAME_MAX + 32];
} engine__problems;

/* Lenient decode: as engine_agg_decode (*out owns its metrics afterwards: free
 * with engine_agg_free), but unreadable fields become 0 and are listed in
 * *problems (may be NULL).  Fails (SL_ECORRUPT) only when pk or sk
 * is not an aggregate key, since then the document's identity is unknown. */
sl_status engine__agg_decode_lenient(const bson_t *doc, engine_agg *out, engine__problems *problems,
                                     sl_error *err);

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
