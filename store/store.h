/* store.h -- the storage port.  Engine, ingest, reports and api see only this.
 *
 * Two tables of BSON documents keyed by (pk, sk): `items` (base documents, with
 * a change feed) and `aggregates` (derived state, no feed).  Both have two
 * optional secondary indexes (gsi1, gsi2) on the string fields
 * gsi1pk/gsi1sk and gsi2pk/gsi2sk.  Every document carries an int64 version
 * `v` kept by the store: 1 on insert, +1 on each write that changes content.
 *
 * Adapters: "sqlite:PATH" (store_sqlite.c, the embedded default) and later
 * "mongodb://..." (store_mongo.c).  Both must pass tests/store/conformance.c.
 *
 * Threads: a `store` handle may be used from many threads at once.  A
 * `store_feed` or `store_batch` belongs to one thread at a time. */
#ifndef SIGHTLINE_STORE_H
#define SIGHTLINE_STORE_H

#include <bson/bson.h>
#include <stddef.h>
#include <stdint.h>

#include "../schema/schema.h"

typedef struct store store;

typedef enum store_table { STORE_ITEMS = 0, STORE_AGGREGATES = 1 } store_table;
typedef enum store_index { STORE_GSI1 = 1, STORE_GSI2 = 2 } store_index;

/* Limits every adapter honours (MongoDB's 16 MB document limit is far above). */
#define STORE_DOC_MAX      (4u << 20) /* bytes of one document */
#define STORE_KEY_MAX      1024u      /* bytes of pk, sk or a gsi key */
#define STORE_PAGE_MAX     1000u      /* documents in one page */
#define STORE_PAGE_DEFAULT 100u       /* when a query says limit 0 */
#define STORE_TOKEN_MAX    512u       /* bytes of a feed token, with NUL (page tokens: below) */
#define STORE_CONSUMER_MAX 64u        /* bytes of a consumer name */
/* Bytes of a page token, with NUL: the position of an index query (index sort
 * key, pk, sk: three keys of STORE_KEY_MAX bytes) always fits. */
#define STORE_PAGE_TOKEN_MAX  4128u
#define STORE_FEED_FILTER_MAX 16u /* prefixes in each list of a feed filter */

/* ---------------------------------------------------------------------------
 * Opening.
 * ------------------------------------------------------------------------- */
typedef struct store_options {
    int no_create;       /* refuse to create a missing store (default: create it) */
    int read_only;       /* refuse every write with SL_EINVAL */
    int64_t cache_bytes; /* sqlite page cache per connection; 0 = adapter default */
} store_options;

/* Opens the store at uri ("sqlite:PATH", a bare path means sqlite).  opt may
 * be NULL for defaults.  On success *out owns the handle: free it with
 * store_close().  On failure *out is NULL and err says why.
 *
 * "sqlite:PATH?name=value&..." takes these parameters:
 *   sync=normal|full      fsync the WAL on every commit (full) or only at
 *                         checkpoints (normal, the default; a power loss may
 *                         lose the last commits, never corrupts);
 *   busy_ms=1..600000     how long a writer waits for another (default 5000);
 *   readers=1..64         pooled reader connections (default 8);
 *   feed_retain=N         change-feed events kept at most, whatever the
 *                         consumers (default 10000000; 0: no bound);
 *   feed_retain_ms=N      age of the oldest event kept, in ms, whatever the
 *                         consumers (default 604800000, 7 days; 0: no bound);
 *   wal_pages=16..1048576 WAL length, in pages, at which a background thread
 *                         copies it back into the database (default 4096);
 *   page_size=4096..65536 page size (a power of two) of a store this open
 *                         creates (default 16384: fastest for ingest); an
 *                         existing store must have it or the open fails.
 *                         4096 halves the listener's p99 lag under random
 *                         asset writes but slows frame ingest by a third.
 * A consumer whose unapplied events went past either bound gets
 * SL_EFEEDGONE and must recompute (`sightline recompute --repair`). */
sl_status store_open(const char *uri, const store_options *opt, store **out, sl_error *err);

/* Closes the handle and sets *s to NULL.  Open feeds and batches must have
 * been closed first.  NULL and *s == NULL are fine. */
void store_close(store **s);

/* Answers whether the store is reachable and writable (for /healthz). */
sl_status store_ping(store *s, sl_error *err);

/* The adapter's name ("sqlite", "mongo"). */
const char *store_backend(const store *s);

/* ---------------------------------------------------------------------------
 * Single documents.
 * ------------------------------------------------------------------------- */
typedef enum store_cond_kind {
    STORE_COND_NONE = 0,   /* unconditional */
    STORE_COND_NOT_EXISTS, /* the document must not exist */
    STORE_COND_EXISTS,     /* the document must exist (any version) */
    STORE_COND_VERSION     /* the document must exist with v == version */
} store_cond_kind;

typedef struct store_cond {
    store_cond_kind kind;
    int64_t version;
} store_cond;

/* Reads one document.  On SL_OK *out is a new document including `v`; free it
 * with bson_destroy().  SL_ENOTFOUND when absent (*out untouched). */
sl_status store_get(store *s, store_table t, const char *pk, const char *sk, bson_t **out,
                    sl_error *err);

typedef struct store_put_result {
    int64_t version; /* version of the document after the call */
    int changed;     /* 0 when the content was equal and nothing was written */
} store_put_result;

/* Writes doc, which must hold string fields pk and sk (and gsiNpk/gsiNsk in
 * pairs, or neither).  A `v` field in doc is ignored: the store sets it.
 *
 * Equal content is not a write: when the stored document equals doc byte for
 * byte (ignoring v), nothing is written, no feed event is produced, the
 * version stays and res->changed is 0.  That is what makes re-sending a batch
 * idempotent.
 *
 * A failed condition returns SL_ECONDITION and writes nothing.  res may be NULL. */
sl_status store_put(store *s, store_table t, const bson_t *doc, store_cond cond,
                    store_put_result *res, sl_error *err);

/* Deletes (pk, sk).  Deleting a missing document is not an error with
 * STORE_COND_NONE (*deleted = 0); with any other condition it is SL_ECONDITION.
 * deleted may be NULL. */
sl_status store_delete(store *s, store_table t, const char *pk, const char *sk, store_cond cond,
                       int *deleted, sl_error *err);

/* ---------------------------------------------------------------------------
 * Queries.  Results are ordered by sort key (index queries: by index sort key,
 * then pk, then sk), ascending or descending.  Pages carry an opaque token;
 * a page never holds more than its limit.  Pagination is by key position, so
 * paging while others insert neither skips nor repeats a document that
 * existed throughout.
 * ------------------------------------------------------------------------- */
typedef enum store_range_kind {
    STORE_RANGE_ALL = 0,     /* every sort key */
    STORE_RANGE_BEGINS_WITH, /* sk starts with lo (byte-wise) */
    STORE_RANGE_BETWEEN,     /* lo <= sk <= hi */
    STORE_RANGE_GE,          /* sk >= lo */
    STORE_RANGE_LE           /* sk <= hi */
} store_range_kind;

typedef struct store_range {
    store_range_kind kind;
    const char *lo;
    const char *hi;
} store_range;

typedef struct store_query_opts {
    store_range range;
    int descending;
    size_t limit;           /* 1..STORE_PAGE_MAX; 0 means STORE_PAGE_DEFAULT */
    const char *page_token; /* NULL or "" for the first page; else a next_token */
} store_query_opts;

/* One document of a page.  pk, sk and version are the store's own record of
 * where the document is kept and its `v` (the key a condition or a delete
 * names), read beside the bytes, not from them: they are what identifies the
 * document even when its bytes were damaged (not BSON, or naming another
 * key), which store_page_view() then cannot or should not be trusted for. */
typedef struct store_doc {
    const uint8_t *data; /* BSON bytes, valid until store_page_free() */
    uint32_t len;
    const char *pk, *sk; /* the key it is stored under, valid until store_page_free() */
    int64_t version;     /* the stored version (what STORE_COND_VERSION compares) */
} store_doc;

typedef struct store_page {
    size_t count;
    store_doc *docs;  /* count documents, each with its `v` */
    char *next_token; /* NULL on the last page; below STORE_PAGE_TOKEN_MAX bytes */
    void *arena_;     /* private */
} store_page;

/* Frees what a query put into page and zeroes it.  Safe on a zeroed page. */
void store_page_free(store_page *page);

/* Initializes *view as a read-only view of docs[i] (no copy; do not destroy).
 * 0 when the stored bytes are not a BSON document (docs[i].pk and .sk still
 * name it). */
int store_page_view(const store_page *page, size_t i, bson_t *view);

/* Documents of partition pk in table t.  On SL_OK *page must be freed with
 * store_page_free(); on error it is zeroed.  A page token from another query,
 * or a forged one, is SL_EINVAL.  Pages are positioned by the keys the store
 * keeps (store_doc), so a document with damaged bytes neither ends a query
 * nor moves its next page. */
sl_status store_query(store *s, store_table t, const char *pk, const store_query_opts *q,
                      store_page *page, sl_error *err);

/* Documents whose index partition key equals gpk, ranged on the index sort key. */
sl_status store_query_index(store *s, store_table t, store_index index, const char *gpk,
                            const store_query_opts *q, store_page *page, sl_error *err);

/* Every document whose pk starts with pk_prefix ("" for all), ordered by
 * (pk, sk); q->range must be STORE_RANGE_ALL.  For recompute and dumps. */
sl_status store_scan(store *s, store_table t, const char *pk_prefix, const store_query_opts *q,
                     store_page *page, sl_error *err);

/* ---------------------------------------------------------------------------
 * Atomic batches: all operations commit together or none does.  A batch may be
 * very large (a whole detector file) and is streamed: operations are applied
 * as they are added, and only commit makes them visible.
 * ------------------------------------------------------------------------- */
typedef struct store_batch store_batch;

/* Starts a batch.  On success *out must end with store_batch_commit() or
 * store_batch_abort().  While a batch is open other writers may wait. */
sl_status store_batch_begin(store *s, store_batch **out, sl_error *err);

/* As store_put / store_delete, inside the batch.  After any error the batch
 * can only be aborted. */
sl_status store_batch_put(store_batch *b, store_table t, const bson_t *doc, store_cond cond,
                          store_put_result *res, sl_error *err);
sl_status store_batch_delete(store_batch *b, store_table t, const char *pk, const char *sk,
                             store_cond cond, int *deleted, sl_error *err);

/* Fails with SL_ECONDITION unless (pk, sk) satisfies cond; writes nothing.
 * (DynamoDB's ConditionCheck: used to fence a writer with its lease.) */
sl_status store_batch_check(store_batch *b, store_table t, const char *pk, const char *sk,
                            store_cond cond, sl_error *err);

/* Commits and frees the batch; *b becomes NULL whatever the outcome.  On
 * error nothing of the batch is stored. */
sl_status store_batch_commit(store_batch **b, sl_error *err);

/* Discards and frees the batch; *b becomes NULL.  NULL is fine. */
void store_batch_abort(store_batch **b);

/* One operation of store_write_batch(). */
typedef enum store_op_kind { STORE_OP_PUT = 0, STORE_OP_DELETE, STORE_OP_CHECK } store_op_kind;

typedef struct store_op {
    store_op_kind kind;
    store_table table;
    const bson_t *doc;   /* STORE_OP_PUT */
    const char *pk, *sk; /* STORE_OP_DELETE, STORE_OP_CHECK */
    store_cond cond;
    store_put_result result; /* out: PUT only */
} store_op;

/* Applies ops[0..n) atomically.  On a failed condition returns SL_ECONDITION
 * with err->field "ops[i]" naming the first failing operation; nothing is
 * stored. */
sl_status store_write_batch(store *s, store_op *ops, size_t n, sl_error *err);

/* ---------------------------------------------------------------------------
 * The change feed of `items`.  Every committed put that changed content and
 * every delete that removed a document yields one event, in commit order.
 *
 * A consumer is a name.  It reads events after its committed token and
 * commits its writes to `aggregates` together with its new token in one
 * atomic step (store_consumer_commit), so across crashes every event is
 * applied exactly once.  Events below every consumer's token may be pruned,
 * and so are events past the adapter's retention bound (see store_open),
 * whatever the consumers.
 * ------------------------------------------------------------------------- */
typedef enum store_event_op { STORE_EVENT_PUT = 1, STORE_EVENT_DELETE = 2 } store_event_op;

typedef struct store_event {
    char token[STORE_TOKEN_MAX]; /* position just after this event */
    store_event_op op;
    const char *pk, *sk;
    const bson_t *old_image; /* NULL on insert */
    const bson_t *new_image; /* NULL on delete */
    int64_t commit_ms;       /* wall-clock time of the commit, ms since epoch */
} store_event;

typedef struct store_feed store_feed;

/* Opens a reader positioned after `consumer`'s committed token, or at the
 * oldest retained event for a consumer that never committed.  Returns
 * SL_EFEEDGONE when events the consumer has not applied were pruned: it must
 * rebuild (recompute) and then store_consumer_reset() to the head.
 * On success *out is freed with store_feed_close(). */
sl_status store_feed_open(store *s, const char *consumer, store_feed **out, sl_error *err);

/* Which events a feed hands out.  The adapter applies it where the data is
 * (SQLite: in the query over its changes table; MongoDB: a $match stage of
 * the change stream), so skipped events cost the reader next to nothing.  An
 * event is handed out when its sort key starts with one of keep[0..nkeep)
 * (or nkeep is 0) and with none of skip[0..nskip).  Prefixes are non-empty
 * keys; each list holds at most STORE_FEED_FILTER_MAX. */
typedef struct store_feed_filter {
    const char *const *skip;
    size_t nskip;
    const char *const *keep;
    size_t nkeep;
} store_feed_filter;

/* As store_feed_open, handing out only the events filter lets through
 * (NULL: every event).  The filter is copied.  Skipped events still move
 * the feed's position (store_feed_position). */
sl_status store_feed_open_filtered(store *s, const char *consumer, const store_feed_filter *filter,
                                   store_feed **out, sl_error *err);

/* Reads up to max events after the last one read, waiting up to wait_ms for
 * the first one to arrive (0: do not wait).  *events points to *n events
 * owned by the feed, valid until the next read or close.  *n == 0 when
 * nothing arrived in time. */
sl_status store_feed_read(store_feed *f, size_t max, int wait_ms, const store_event **events,
                          size_t *n, sl_error *err);

void store_feed_close(store_feed **f);

/* Where a feed stands: the token just after the last event it has looked
 * at, handed out or skipped by its filter ("" before the first event), and
 * how many events its filter has skipped since it was opened.  A filtered
 * consumer commits this token rather than its last event's, so that its
 * position, and pruning, move past the events it never sees. */
typedef struct store_feed_pos {
    char token[STORE_TOKEN_MAX];
    int64_t skipped;
} store_feed_pos;

/* Cannot fail on a feed that opened; SL_EINVAL on NULL arguments. */
sl_status store_feed_position(const store_feed *f, store_feed_pos *out, sl_error *err);

/* Atomically applies ops (aggregates table, or checks) and records token as
 * consumer's position.  If the consumer's stored token is not prev_token
 * ("" for none) the commit fails with SL_ECONDITION: another instance moved
 * it.  ops may be empty (n == 0) to just advance the token. */
sl_status store_consumer_commit(store *s, const char *consumer, const char *prev_token,
                                const char *token, store_op *ops, size_t n, sl_error *err);

/* Options of one consumer commit (store_consumer_commit_opt). */
typedef struct store_commit_options {
    /* A test hook, NULL in production: called once, on the committing
     * thread, inside the commit's transaction after its writes and the new
     * token are made and before they are committed, so that a crash test can
     * kill the process there (a crash at that point must leave nothing of
     * the commit).  Not called when the commit fails before that point.  It
     * must not use the store. */
    void (*before_commit)(void *ctx);
    void *ctx;
} store_commit_options;

/* store_consumer_commit with options (opt NULL: none). */
sl_status store_consumer_commit_opt(store *s, const char *consumer, const char *prev_token,
                                    const char *token, store_op *ops, size_t n,
                                    const store_commit_options *opt, sl_error *err);

/* The consumer's committed token into out; SL_ENOTFOUND if it never committed. */
sl_status store_consumer_token(store *s, const char *consumer, char out[STORE_TOKEN_MAX],
                               sl_error *err);

/* Moves the consumer's token to the current head (after a recompute rebuilt
 * its state).  Writes ops atomically with the move, as a consumer commit. */
sl_status store_consumer_reset(store *s, const char *consumer, store_op *ops, size_t n,
                               sl_error *err);

/* Forgets a consumer that is gone for good: its position no longer holds
 * events back from pruning.  SL_ENOTFOUND when it never committed.  A feed
 * opened for it afterwards starts at the oldest event kept. */
sl_status store_consumer_drop(store *s, const char *consumer, sl_error *err);

/* Where the feed stands: the head token (position after the newest event, ""
 * when empty), its commit time, and, for consumer (may be NULL), how many
 * events it has not applied and how long ago the oldest of them committed. */
typedef struct store_feed_stats {
    char head_token[STORE_TOKEN_MAX];
    int64_t head_commit_ms;
    int64_t behind_events; /* -1 when the adapter cannot count */
    int64_t behind_ms;     /* 0 when caught up */
} store_feed_stats;

sl_status store_feed_stats_get(store *s, const char *consumer, store_feed_stats *out,
                               sl_error *err);

/* ---------------------------------------------------------------------------
 * Snapshots: a read-only handle on which every read (get, query, scan, feed
 * stats, consumer token) sees one consistent point in time, for recompute.
 * ------------------------------------------------------------------------- */

/* On success *out is a read-only store; free it with store_close() before
 * closing s.  Writes through it fail with SL_EINVAL. */
sl_status store_snapshot_open(store *s, store **out, sl_error *err);

#endif /* SIGHTLINE_STORE_H */
