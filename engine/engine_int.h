/* engine_int.h -- what the engine's files share and nobody else sees: decoding
 * of live aggregates with their problems listed, key parsing, quarantine
 * records, the lease, logging and clocks. */
#ifndef SIGHTLINE_ENGINE_INT_H
#define SIGHTLINE_ENGINE_INT_H

#include "engine.h"

#include <pthread.h>

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

/* From now on an aggregate of set that would pass ENGINE_AGG_METRICS_MAX
 * metrics (engine_aggset_add, engine_aggset_apply_image) is marked
 * over_metrics, keeping its counters and dropping its metrics, instead of
 * failing with SL_ETOOLARGE.  Recompute's shadow and feed deltas: what it
 * rebuilds over the limit it reports, never writes. */
void engine__aggset_mark_over(engine_aggset *set);

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
                            const char *agg_sk, const char *consumer, engine_quarantine_cause cause,
                            const char *reason, const char *since_token);

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

/* ---------------------------------------------------------------------------
 * Recompute (recompute.c: the run; recompute_group.c: one tenant group and
 * the scan cursor; recompute_compare.c: one aggregate compared, the report).
 * ------------------------------------------------------------------------- */
typedef struct engine__run engine__run;

/* A scan cursor that walks pages and remembers the token of its page. */
typedef struct engine__cursor {
    engine__run *owner; /* renews its leases between pages */
    store *s;
    store_table table;
    char prefix[SCHEMA_KEY_MAX];
    store_page page;
    size_t i;
    int started, done;
    char page_token[STORE_PAGE_TOKEN_MAX]; /* the token that fetched the current page */
    char next_token[STORE_PAGE_TOKEN_MAX];
    int64_t docs; /* documents passed */
} engine__cursor;

/* Prepares a cursor (no store access yet); its pages are freed by
 * engine__cursor_free(). */
void engine__cursor_init(engine__cursor *c, engine__run *owner, store *s, store_table t,
                         const char *prefix, const char *token);
void engine__cursor_free(engine__cursor *c);

/* Makes the current row available: *row (the key and version the store
 * keeps, valid until the cursor leaves its page), *view and *readable (0
 * when its bytes are not BSON).  0 at the end (or on error, with *rc set). */
int engine__cursor_peek(engine__cursor *c, const store_doc **row, bson_t *view, int *readable,
                        sl_status *rc, sl_error *err);
void engine__cursor_next(engine__cursor *c);

/* Peeks the group of the cursor's next document that belongs to a group after
 * `after` (documents without a group, or of groups already done, are passed
 * over).  "" at the end. */
sl_status engine__cursor_group(engine__cursor *c, const char *after, char *group, sl_error *err);

/* The run's state. */
struct engine__run {
    store *s;    /* live store: repairs, checkpoints, audit */
    store *snap; /* the snapshot: every read of the comparison */
    engine_recompute_options opt;
    char consumer[STORE_CONSUMER_MAX];
    char scope_group[SCHEMA_KEY_MAX]; /* "T#<t>#" with --tenant, else "" */
    char checkpoint_sk[STORE_KEY_MAX];
    char last_group[SCHEMA_KEY_MAX]; /* last finished tenant group */
    engine_recompute_report *rep;
    engine_aggset *pending; /* sum of deltas of the events in (C, H] */
    char **groups;          /* tenant groups of the pending deltas and of quarantine records */
    size_t ngroups, next_group;
    size_t cap_aggs;        /* of rep->aggs */
    engine__lease lease;    /* held while repairing */
    engine__lease listener; /* the consumer's lease, seized while replacing */
    int listener_for_run;   /* seized before r->snap was opened: replace in the first pass */
    /* The keeper (recompute.c): a thread renewing both leases every third of
     * their lifetime.  lease_mu guards lease, listener, the flags below and
     * keeper_note; the run's writes fenced on the leases hold it. */
    pthread_mutex_t lease_mu;
    pthread_cond_t lease_cv;
    pthread_t keeper;
    int keeper_running, keeper_stop;
    int repair_lost;       /* our repair lease was taken: the run stops */
    int listener_lost;     /* the listener's lease was taken back during a tenant's repair */
    char keeper_note[200]; /* the last renewal's store error, if any */
    int64_t step_written;  /* aggregates a tenant's repair attempt wrote (repaired) */
    int64_t step_fields;   /* their drifted fields */
    engine_recompute_progress progress;
    char progress_tenant[ENGINE_NAME_SIZE];
};

/* One tenant's state: the shadow, the live documents as read, the
 * quarantine records. */
typedef enum engine__live_state {
    ENGINE__LIVE_OK = 0,    /* the layout holds (values may still drift) */
    ENGINE__LIVE_FIELDS,    /* fields missing, mistyped, extra, negative, inconsistent, stale */
    ENGINE__LIVE_FOREIGN,   /* another document's bytes */
    ENGINE__LIVE_UNREADABLE /* not BSON */
} engine__live_state;

typedef struct engine__live_info {
    engine__live_state state;
    engine__problems problems;
    int64_t version; /* the stored version (store_doc), for the repair's condition */
    uint32_t bytes;
    int compared;
} engine__live_info;

typedef struct engine__group_state {
    engine_aggset *shadow, *live;
    engine__live_info *info; /* info[i] for the live aggregate whose version field is i + 1 */
    size_t ninfo, cap_info;
    engine_quarantine *q; /* this tenant's records, in key order */
    size_t nq, cap_q;
    char *q_compared;
} engine__group_state;

/* A summary under construction: parts separated by "; ", cut with "..." when
 * full. */
typedef struct engine__sbuf {
    char s[ENGINE_DRIFT_SUMMARY_MAX];
    size_t len;
} engine__sbuf;

/* SL_ECONFLICT, saying which, when the keeper found a lease of the run
 * taken from it (r->lease_mu held by the caller; recompute.c). */
sl_status engine__lease_lost(engine__run *r, sl_error *err);

/* The same, taking r->lease_mu; SL_OK in a run that holds no lease.  Called
 * between pages and every few hundred documents: a run that lost a lease
 * stops there rather than at its next write. */
sl_status engine__check_leases(engine__run *r, sl_error *err);

/* Takes the listener's lease (see repair_group in recompute_group.c), which
 * the keeper renews from then on, and forgets an earlier loss of it. */
sl_status engine__seize_listener(engine__run *r, sl_error *err);

/* Gives the listener's lease back (errors ignored: it then expires). */
void engine__release_listener(engine__run *r);

/* Adds the deltas of the events after the consumer's token up to the head of
 * snap (its C and H), of the events of scope ("T#<t>#", or "" for all), to
 * *out.  *gone = 1 when the consumer's position was pruned (nothing read).
 * A malformed image contributes nothing; any other failure to add a delta
 * (the set full: --max-aggregates; memory) fails, naming the event. */
sl_status engine__read_feed_deltas(engine__run *r, store *snap, const char *scope,
                                   engine_aggset *out, int *gone, sl_error *err);

/* Tells the caller's progress function (if any) where the run is; SL_EBUSY
 * when it asks to stop (recompute_group.c). */
sl_status engine__progress_tick(engine__run *r, const char *group, sl_error *err);

/* Rebuilds and compares one tenant group at the run's snapshot, leaving both
 * cursors at the next group; with repair, replaces its drift
 * (recompute_group.c). */
sl_status engine__process_group(engine__run *r, const char *group, engine__cursor *items,
                                engine__cursor *aggs, sl_error *err);

/* A drift row of the report (recompute_compare.c; the count goes on past
 * the rows kept). */
void engine__add_row(engine__run *r, const char *tenant, const char *sk, const char *field,
                     const char *live, const char *recomputed);

/* Adds a part to a summary, "; " between parts, cut with "..." when full. */
void engine__sb_part(engine__sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records one drifted aggregate's summary (the count goes on past the
 * entries kept, as for rows). */
sl_status engine__add_summary(engine__run *r, const char *tenant, const char *sk, int64_t fields,
                              const engine__sbuf *b, sl_error *err);

void engine__group_free(engine__group_state *g);

/* Compares one aggregate: live (NULL when absent) as read (li), with the
 * shadow (NULL when nothing contributes) and its quarantine record (NULL
 * when none).  Adds rows and a summary; returns the number of drifted fields
 * (SL_ENOMEM aside, which *rc reports). */
int64_t engine__compare_agg(engine__run *r, const engine_agg *id, const engine_agg *live,
                            const engine__live_info *li, const engine_agg *shadow,
                            const engine_quarantine *q, sl_status *rc, sl_error *err);

#endif /* SIGHTLINE_ENGINE_INT_H */
