/* quarantine.c -- aggregates set aside because their document could not be
 * read (cause "damaged"), because they are over the metric limit (cause
 * "metric_limit", engine.h) or because a sum of theirs passes int64 (cause
 * "overflow").  The record SYS#ENGINE / QUARANTINE#<aggregate pk>#<aggregate sk>
 * in `aggregates` is written by the listener in the same consumer commit as
 * its token (so it is exactly as durable as the deltas it stops applying)
 * and removed only by `recompute --repair`, in the same write that replaces
 * the aggregate (docs/recompute.md, "Quarantine").  Everyone else reads it:
 * the listener (which skips the aggregate's deltas), the API (503 for a
 * request that needs the aggregate), /healthz and /metrics. */
#include "engine_int.h"

#include <stdio.h>
#include <string.h>

#define QUARANTINE_PAGE 200u

sl_status engine__quarantine_sk(const char *agg_pk, const char *agg_sk, char out[STORE_KEY_MAX],
                                sl_error *err)
{
    sl_status rc = SL_OK;
    int n = snprintf(out, STORE_KEY_MAX, "%s%s#%s", ENGINE_QUARANTINE_PREFIX, agg_pk, agg_sk);
    if (n < 0 || (size_t)n >= STORE_KEY_MAX) {
        out[0] = '\0';
        rc = sl_error_set(err, SL_ETOOLARGE, "the quarantine key of %.100s / %.100s is too long",
                          agg_pk, agg_sk);
    }
    return rc;
}

/* The aggregate's key from a record's sort key: after the prefix comes the
 * aggregate's pk, T#<tenant>#AGG (a tenant holds no '#'), then '#' and its
 * sk.  0 when sk is not of that form. */
static int parse_sk(const char *sk, char *agg_pk, char *agg_sk)
{
    size_t plen = strlen(ENGINE_QUARANTINE_PREFIX);
    const char *p = !strncmp(sk, ENGINE_QUARANTINE_PREFIX, plen) ? sk + plen : NULL;
    const char *agg = p && !strncmp(p, "T#", 2) ? strstr(p + 2, "#AGG#") : NULL;
    int ok = agg && (size_t)(agg + 4 - p) < SCHEMA_KEY_MAX && strlen(agg + 5) < SCHEMA_KEY_MAX &&
             agg[5] != '\0';
    if (ok) {
        memcpy(agg_pk, p, (size_t)(agg + 4 - p));
        agg_pk[agg + 4 - p] = '\0';
        memcpy(agg_sk, agg + 5, strlen(agg + 5) + 1);
    }
    return ok;
}

void engine__quarantine_doc(bson_t *d, const char *qsk, const engine_agg *a, const char *agg_pk,
                            const char *agg_sk, const char *consumer, engine_quarantine_cause cause,
                            const char *reason, const char *since_token)
{
    BSON_APPEND_UTF8(d, SCHEMA_F_PK, ENGINE_SYS_PK);
    BSON_APPEND_UTF8(d, SCHEMA_F_SK, qsk);
    BSON_APPEND_UTF8(d, SCHEMA_F_TYPE, "aggregate_quarantine");
    BSON_APPEND_UTF8(d, "agg_pk", agg_pk);
    BSON_APPEND_UTF8(d, "agg_sk", agg_sk);
    BSON_APPEND_UTF8(d, "tenant", a->tenant);
    BSON_APPEND_UTF8(d, "consumer", consumer);
    BSON_APPEND_UTF8(d, "cause",
                     cause == ENGINE_QUARANTINE_METRIC_LIMIT ? "metric_limit"
                     : cause == ENGINE_QUARANTINE_OVERFLOW   ? "overflow"
                                                             : "damaged");
    BSON_APPEND_UTF8(d, "reason", reason);
    BSON_APPEND_INT64(d, "since_ms", engine__now_ms());
    BSON_APPEND_UTF8(d, "since_token", since_token);
}

/* The fields of a record's bytes into *q (those it lacks stay as they are;
 * a record without `cause`, as written before it existed, is "damaged"). */
static void read_fields(const bson_t *doc, engine_quarantine *q)
{
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, "reason") && BSON_ITER_HOLDS_UTF8(&it))
        snprintf(q->reason, sizeof q->reason, "%s", bson_iter_utf8(&it, NULL));
    if (bson_iter_init_find(&it, doc, "since_ms") && BSON_ITER_HOLDS_INT64(&it))
        q->since_ms = bson_iter_int64(&it);
    if (bson_iter_init_find(&it, doc, "cause") && BSON_ITER_HOLDS_UTF8(&it)) {
        const char *cause = bson_iter_utf8(&it, NULL);
        if (!strcmp(cause, "metric_limit"))
            q->cause = ENGINE_QUARANTINE_METRIC_LIMIT;
        else if (!strcmp(cause, "overflow"))
            q->cause = ENGINE_QUARANTINE_OVERFLOW;
    }
}

/* Fills *q from a record row: the key from the row (it holds even when the
 * bytes are damaged), the rest from the bytes when they can be read.  0 when
 * the row's key is not a quarantine key of an aggregate. */
static int record_of(const store_page *page, size_t i, engine_quarantine *q)
{
    bson_t view;
    memset(q, 0, sizeof *q);
    if (!parse_sk(page->docs[i].sk, q->pk, q->sk))
        return 0;
    q->version = page->docs[i].version;
    snprintf(q->reason, sizeof q->reason, "the quarantine record is damaged");
    if (store_page_view(page, i, &view))
        read_fields(&view, q);
    return 1;
}

sl_status engine__quarantine_each(store *s, const char *tenant, const char *sk_prefix,
                                  int (*fn)(void *ctx, const engine_quarantine *q), void *ctx,
                                  sl_error *err)
{
    sl_status rc = SL_OK;
    char prefix[STORE_KEY_MAX];
    char token[STORE_PAGE_TOKEN_MAX] = "";
    store_page page = {0};
    int go = 1;
    int n = tenant ? snprintf(prefix, sizeof prefix, "%sT#%s#AGG#%s", ENGINE_QUARANTINE_PREFIX,
                              tenant, sk_prefix ? sk_prefix : "")
                   : snprintf(prefix, sizeof prefix, "%s", ENGINE_QUARANTINE_PREFIX);
    if (n < 0 || (size_t)n >= sizeof prefix) {
        rc = sl_error_set(err, SL_EINVAL, "quarantine prefix too long");
        goto out;
    }
    while (go) {
        store_query_opts q = {.range = {STORE_RANGE_BEGINS_WITH, prefix, NULL},
                              .limit = QUARANTINE_PAGE,
                              .page_token = token[0] ? token : NULL};
        if ((rc = store_query(s, STORE_AGGREGATES, ENGINE_SYS_PK, &q, &page, err)) != SL_OK)
            goto out;
        for (size_t i = 0; go && i < page.count; i++) {
            engine_quarantine rec;
            if (record_of(&page, i, &rec))
                go = fn(ctx, &rec);
        }
        go = go && page.next_token;
        if (go)
            snprintf(token, sizeof token, "%s", page.next_token);
        store_page_free(&page);
    }
out:
    store_page_free(&page);
    return rc;
}

sl_status engine_quarantine_get(store *s, const char *pk, const char *sk, engine_quarantine *out,
                                sl_error *err)
{
    char qsk[STORE_KEY_MAX];
    bson_t *doc = NULL;
    bson_iter_t it;
    sl_status rc = engine__quarantine_sk(pk, sk, qsk, err);
    if (rc == SL_OK)
        rc = store_get(s, STORE_AGGREGATES, ENGINE_SYS_PK, qsk, &doc, err);
    if (rc == SL_ECORRUPT) { /* damaged bytes: the record still says "quarantined" */
        sl_error_clear(err);
        rc = SL_OK;
    }
    if (rc == SL_OK) {
        memset(out, 0, sizeof *out);
        snprintf(out->pk, sizeof out->pk, "%s", pk);
        snprintf(out->sk, sizeof out->sk, "%s", sk);
        snprintf(out->reason, sizeof out->reason, "the quarantine record is damaged");
        if (doc)
            read_fields(doc, out);
        if (doc && bson_iter_init_find(&it, doc, SCHEMA_F_VERSION) && BSON_ITER_HOLDS_INT64(&it))
            out->version = bson_iter_int64(&it);
    }
    if (doc)
        bson_destroy(doc);
    return rc;
}

typedef struct first_ctx {
    engine_agg_kind kind;
    engine_quarantine *out;
    int found;
} first_ctx;

static int first_of_kind(void *ctx, const engine_quarantine *q)
{
    first_ctx *f = ctx;
    engine_agg id;
    if (engine__agg_identity(q->pk, q->sk, &id, NULL) == SL_OK &&
        (!f->kind || id.kind == f->kind)) {
        *f->out = *q;
        f->found = 1;
    }
    return !f->found;
}

sl_status engine_quarantine_first(store *s, const char *tenant, const char *sk_prefix,
                                  engine_agg_kind kind, engine_quarantine *out, sl_error *err)
{
    first_ctx f = {kind, out, 0};
    sl_status rc = engine__quarantine_each(s, tenant, sk_prefix, first_of_kind, &f, err);
    if (rc == SL_OK && !f.found)
        rc = sl_error_set(err, SL_ENOTFOUND, "no quarantined aggregate");
    return rc;
}

typedef struct count_ctx {
    int64_t n;
    engine_quarantine *first;
    size_t max;
} count_ctx;

static int count_one(void *ctx, const engine_quarantine *q)
{
    count_ctx *c = ctx;
    if ((size_t)c->n < c->max)
        c->first[c->n] = *q;
    c->n++;
    return 1;
}

sl_status engine_quarantine_count(store *s, int64_t *n, engine_quarantine *first, size_t max,
                                  sl_error *err)
{
    count_ctx c = {0, first, first ? max : 0};
    sl_status rc = engine__quarantine_each(s, NULL, NULL, count_one, &c, err);
    if (rc == SL_OK)
        *n = c.n;
    return rc;
}

/* ---------------------------------------------------------------------------
 * What a reader is told of an aggregate it cannot serve.
 * ------------------------------------------------------------------------- */
sl_status engine_aggregate_needs_repair(const char *sk, const char *what, sl_error *err)
{
    return sl_error_set_at(err, SL_ECORRUPT, ENGINE_FIELD_AGGREGATE, -1,
                           "aggregate %s is %s and cannot be served until an operator runs "
                           "`sightline recompute --repair`, which rebuilds it",
                           sk, what);
}

sl_status engine_quarantine_error(const engine_quarantine *q, sl_error *err)
{
    if (q->cause == ENGINE_QUARANTINE_OVERFLOW)
        return sl_error_set_at(err, SL_ECORRUPT, ENGINE_FIELD_AGGREGATE_OVERFLOW, -1,
                               "aggregate %s overflows: a count or sum of what it adds up passes "
                               "the int64 maximum (9223372036854775807), more than an aggregate "
                               "holds exactly, so it is not kept; it is served again once its "
                               "items sum within it (items deleted or moved) and an operator runs "
                               "`sightline recompute --repair`",
                               q->sk);
    if (q->cause != ENGINE_QUARANTINE_METRIC_LIMIT)
        return engine_aggregate_needs_repair(q->sk, "quarantined (its document could not be read)",
                                             err);
    return sl_error_set_at(err, SL_ECORRUPT, ENGINE_FIELD_AGGREGATE_OVER_LIMIT, -1,
                           "aggregate %s is over the metric limit: its assets carry more than %d "
                           "metrics (memorability and the distinct saliency names), more than an "
                           "aggregate holds, so it is not kept; it is served again once they carry "
                           "at most %d (assets rescored, deleted or moved) and an operator runs "
                           "`sightline recompute --repair`",
                           q->sk, ENGINE_AGG_METRICS_MAX, ENGINE_AGG_METRICS_MAX);
}

sl_status engine_quarantine_check(store *s, const char *tenant, const char *sk_prefix,
                                  engine_agg_kind kind, sl_error *err)
{
    engine_quarantine q;
    sl_status rc = engine_quarantine_first(s, tenant, sk_prefix, kind, &q, err);
    if (rc == SL_ENOTFOUND) {
        sl_error_clear(err);
        rc = SL_OK;
    } else if (rc == SL_OK) {
        rc = engine_quarantine_error(&q, err);
    }
    return rc;
}
