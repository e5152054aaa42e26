/* store_int.h -- what store.c shares with the adapters (not part of the port).
 *
 * store.c owns everything adapters have in common: URI dispatch, validation of
 * keys, documents, ranges, consumer names and tokens, the stored-document
 * layout, page building and page tokens.  An adapter fills a store__vtable and
 * sees only inputs that are already valid.  Adding the MongoDB adapter means
 * one more vtable and one more line in store.c's scheme table. */
#ifndef SIGHTLINE_STORE_INT_H
#define SIGHTLINE_STORE_INT_H

#include "store.h"

typedef struct store__vtable store__vtable;

/* The handle the port hands out.  impl is the adapter's state. */
struct store {
    const store__vtable *vt;
    void *impl;
    int read_only; /* opened read_only, or a snapshot: every write is SL_EINVAL */
    int snapshot;
};

struct store_batch {
    store *st;
    void *impl;
    int broken; /* an operation failed: only abort (or a failing commit) is left */
};

/* A validated feed filter (store.h's store_feed_filter): each prefix with
 * the smallest string above every string that starts with it (NULL when
 * there is none), so an adapter can test "starts with" as a range. */
typedef struct store__prefix {
    char *lo;
    char *hi;
} store__prefix;

typedef struct store__filter {
    size_t nskip, nkeep;
    store__prefix skip[STORE_FEED_FILTER_MAX];
    store__prefix keep[STORE_FEED_FILTER_MAX];
} store__filter;

struct store_feed {
    store *st;
    void *impl;
    store__filter *filter; /* NULL when unfiltered; outlives impl */
};

/* A validated document ready to store.  The key pointers point into the
 * caller's document and are NUL-terminated; gsi_pk[i]/gsi_sk[i] are both NULL
 * or both set.  blob is the stored form: the caller's fields without any `v`,
 * then `v` (int64) as the last element, so "same content" is a length check
 * and a memcmp.  store__doc_make allocates blob; store__doc_free frees it. */
typedef struct store__doc {
    const char *pk, *sk;
    const char *gsi_pk[2], *gsi_sk[2];
    uint8_t *blob;
    uint32_t blob_len;
} store__doc;

/* Bytes at the end of a stored blob taken by the v element and the final NUL:
 * type byte, "v\0", int64, document terminator. */
#define STORE__V_TAIL 12u

/* Validates doc (field named `field` in messages, e.g. "doc" or "ops[3].doc")
 * and builds d.  On success d->blob is malloc'd (free with store__doc_free);
 * on failure d is zeroed. */
sl_status store__doc_make(const bson_t *doc, const char *field, store__doc *d, sl_error *err);
void store__doc_free(store__doc *d);

/* Writes version v into a stored blob. */
void store__blob_set_version(uint8_t *blob, uint32_t len, int64_t v);

/* The version of a stored blob, or -1 when it is not in the stored layout. */
int64_t store__blob_version(const uint8_t *blob, uint32_t len);

/* 1 when two stored blobs hold the same fields (ignoring v), else 0. */
int store__blob_same_content(const uint8_t *a, uint32_t alen, const uint8_t *b, uint32_t blen);

/* ---------------------------------------------------------------------------
 * Queries as adapters see them: one shape for partition queries, index
 * queries and scans.  Ordering columns: partition (sk); index (gsi sk, pk,
 * sk); scan (pk, sk).  The range applies to the first ordering column.
 * ------------------------------------------------------------------------- */
typedef enum store__qkind { STORE__Q_PARTITION = 0, STORE__Q_INDEX, STORE__Q_SCAN } store__qkind;
typedef enum store__lo_op { STORE__LO_NONE = 0, STORE__LO_GE } store__lo_op;
typedef enum store__hi_op { STORE__HI_NONE = 0, STORE__HI_LT, STORE__HI_LE } store__hi_op;

typedef struct store__query {
    store__qkind kind;
    store_table table;
    store_index index; /* STORE__Q_INDEX only */
    const char *key;   /* pk (partition), gsi pk (index); unused for scans */
    store__lo_op lo_op;
    const char *lo;
    store__hi_op hi_op;
    const char *hi;
    int descending;
    size_t limit; /* 1..STORE_PAGE_MAX */
    /* Where the previous page ended (from its token): npos ordering columns
     * (1 for partitions, 3 for index queries, 2 for scans); 0 on a first
     * page.  The position lies inside the range (store.c checked it), so an
     * adapter may replace the leading bound with "after the position". */
    int npos;
    const char *pos[3];
} store__query;

/* Where a row is kept, as the adapter knows it apart from the document's
 * bytes: its key, its version and, for an index query, its index sort key
 * (NULL otherwise).  They become the page's store_doc fields and position
 * the next page. */
typedef struct store__row {
    const char *pk, *sk, *gsk;
    int64_t version;
} store__row;

/* Adds a copy of a document and its row to a page under construction.
 * Adapters call it for each row, then return; store.c finishes the page. */
sl_status store__page_add(store_page *page, const uint8_t *data, uint32_t len,
                          const store__row *row, sl_error *err);

/* 1 once a page holds so many bytes (16 MiB) that it should end there, with
 * a next token, even below its limit. */
int store__page_full(const store_page *page);

/* Feed tokens are the adapters' own business; store.c only bounds them. */

/* The adapter.  Every function gets valid input (see store.c); the store it
 * gets is the handle, so an adapter can tell a snapshot from the main store
 * through its impl.  Ownership is as in store.h. */
struct store__vtable {
    const char *name;
    void (*close)(void *impl);
    sl_status (*ping)(store *s, sl_error *err);
    sl_status (*get)(store *s, store_table t, const char *pk, const char *sk, bson_t **out,
                     sl_error *err);

    /* Batches.  Single puts and deletes are one-operation batches. */
    sl_status (*batch_begin)(store *s, void **impl, sl_error *err);
    sl_status (*batch_put)(void *b, store_table t, store__doc *d, store_cond cond,
                           store_put_result *res, sl_error *err);
    sl_status (*batch_delete)(void *b, store_table t, const char *pk, const char *sk,
                              store_cond cond, int *deleted, sl_error *err);
    sl_status (*batch_check)(void *b, store_table t, const char *pk, const char *sk,
                             store_cond cond, sl_error *err);
    sl_status (*batch_commit)(void *b, sl_error *err); /* frees b whatever the outcome */
    void (*batch_abort)(void *b);                      /* frees b */

    /* Fills page with up to q->limit documents via store__page_add and sets
     * *more when documents follow the last one. */
    sl_status (*query)(store *s, const store__query *q, store_page *page, int *more, sl_error *err);

    /* filter is NULL or valid until feed_close. */
    sl_status (*feed_open)(store *s, const char *consumer, const store__filter *filter, void **impl,
                           sl_error *err);
    sl_status (*feed_read)(void *f, size_t max, int wait_ms, const store_event **events, size_t *n,
                           sl_error *err);
    void (*feed_position)(const void *f, store_feed_pos *out);
    void (*feed_close)(void *f);

    /* ops are validated: docs already made (docs[i] for op i; unused for
     * non-puts), tables and kinds checked.  token is non-NULL for a commit,
     * NULL for a reset (move to the head).  opt may be NULL; its
     * before_commit, when set, runs as store.h says. */
    sl_status (*consumer_commit)(store *s, const char *consumer, const char *prev_token,
                                 const char *token, store_op *ops, store__doc *docs, size_t n,
                                 const store_commit_options *opt, sl_error *err);
    sl_status (*consumer_token)(store *s, const char *consumer, char out[STORE_TOKEN_MAX],
                                sl_error *err);
    sl_status (*consumer_drop)(store *s, const char *consumer, sl_error *err);
    sl_status (*feed_stats)(store *s, const char *consumer, store_feed_stats *out, sl_error *err);
    sl_status (*snapshot_open)(store *s, void **impl, sl_error *err);
};

/* Validated open parameters from the URI. */
typedef struct store__param {
    const char *name;
    const char *value;
} store__param;

#define STORE__PARAMS_MAX 8

/* The SQLite adapter (store_sqlite.c).  path is the file; params are the
 * URI's query parameters (name=value), which the adapter checks. */
extern const store__vtable store__sqlite_vtable;
sl_status store__sqlite_open(const char *path, const store__param *params, size_t nparams,
                             const store_options *opt, void **impl, sl_error *err);

#endif /* SIGHTLINE_STORE_INT_H */
