/* recompute.c -- rebuilds every aggregate from the base documents, compares it
 * field by field with the live aggregates, repairs the drift on request, and
 * keeps a checkpoint per tenant and an audit per run. */
#include "engine_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* Consistency: everything is read in one store snapshot.  There the live
 * aggregates reflect the consumer's committed token C and the items the
 * snapshot head H; the shadow (f summed over items) minus the deltas of the
 * feed events in (C, H] describes the same point as the live side.
 *
 * Memory: items are scanned in pk order, so a tenant's documents (pk
 * "T#<t>#...") are contiguous; the shadow holds one tenant at a time, next to
 * the same tenant's live aggregates (scanned in the same order) and the
 * pending deltas of the feed. */

#define ENGINE__RECOMPUTE_AGGS_DEFAULT 2000000u
#define ENGINE__RECOMPUTE_ROWS_DEFAULT 10000u
#define ENGINE__SCAN_PAGE              500u
#define ENGINE__REPAIR_LEASE           "recompute"
#define ENGINE__REPAIR_LEASE_MS        10000
#define ENGINE__REPAIR_RETRIES         100

/* ---------------------------------------------------------------------------
 * A scan cursor that walks pages and remembers the token of its page.
 * ------------------------------------------------------------------------- */
typedef struct run run;
static sl_status renew_repair_lease(run *r, sl_error *err);

typedef struct cursor {
    run *owner; /* renews its repair lease between pages */
    store *s;
    store_table table;
    char prefix[SCHEMA_KEY_MAX];
    store_page page;
    size_t i;
    int started, done;
    char page_token[STORE_TOKEN_MAX]; /* the token that fetched the current page */
    char next_token[STORE_TOKEN_MAX];
    int64_t docs; /* documents passed */
} cursor;

/* Prepares a cursor (no store access yet); its pages are freed by cursor_free(). */
static void cursor_init(cursor *c, run *owner, store *s, store_table t, const char *prefix,
                        const char *token)
{
    memset(c, 0, sizeof *c);
    c->owner = owner;
    c->s = s;
    c->table = t;
    snprintf(c->prefix, sizeof c->prefix, "%s", prefix);
    snprintf(c->next_token, sizeof c->next_token, "%s", token ? token : "");
}

static void cursor_free(cursor *c)
{
    store_page_free(&c->page);
}

/* Makes the current document available in *view; 0 at the end (or on error,
 * with *rc set). */
static int cursor_peek(cursor *c, bson_t *view, sl_status *rc, sl_error *err)
{
    while (!c->done && (!c->started || c->i >= c->page.count)) {
        if (c->started && !c->page.next_token) {
            c->done = 1;
            break;
        }
        if (c->started)
            snprintf(c->next_token, sizeof c->next_token, "%s", c->page.next_token);
        store_page_free(&c->page);
        if ((*rc = renew_repair_lease(c->owner, err)) != SL_OK) {
            c->done = 1;
            break;
        }
        memcpy(c->page_token, c->next_token, sizeof c->page_token);
        store_query_opts q = {.range = {STORE_RANGE_ALL, NULL, NULL},
                              .limit = ENGINE__SCAN_PAGE,
                              .page_token = c->page_token[0] ? c->page_token : NULL};
        *rc = store_scan(c->s, c->table, c->prefix, &q, &c->page, err);
        if (*rc != SL_OK) {
            c->done = 1;
            break;
        }
        c->started = 1;
        c->i = 0;
    }
    if (!c->done && !store_page_view(&c->page, c->i, view)) {
        *rc = sl_error_set(err, SL_ECORRUPT, "unreadable document in a scan of %s",
                           c->table == STORE_ITEMS ? "items" : "aggregates");
        c->done = 1;
    }
    return !c->done;
}

static void cursor_next(cursor *c)
{
    c->i++;
    c->docs++;
}

/* The tenant group ("T#<t>#") of a document, "" when it has none. */
static void doc_group(const bson_t *doc, char *group)
{
    bson_iter_t it;
    group[0] = '\0';
    if (bson_iter_init_find(&it, doc, SCHEMA_F_PK) && BSON_ITER_HOLDS_UTF8(&it) &&
        !engine__tenant_group(bson_iter_utf8(&it, NULL), group))
        group[0] = '\0';
}

/* Peeks the group of the cursor's next document that belongs to a group after
 * `after` (documents without a group, or of groups already done, are passed
 * over).  "" at the end. */
static sl_status cursor_group(cursor *c, const char *after, char *group, sl_error *err)
{
    sl_status rc = SL_OK;
    bson_t view;
    int found = 0;
    while (!found && cursor_peek(c, &view, &rc, err)) {
        doc_group(&view, group);
        found = group[0] && (!after[0] || strcmp(group, after) > 0);
        if (!found)
            cursor_next(c);
    }
    if (!found)
        group[0] = '\0';
    return rc;
}

/* ---------------------------------------------------------------------------
 * The run's state.
 * ------------------------------------------------------------------------- */
struct run {
    store *s;    /* live store: repairs, checkpoints, audit */
    store *snap; /* the snapshot: every read of the comparison */
    engine_recompute_options opt;
    char consumer[STORE_CONSUMER_MAX];
    char scope_group[SCHEMA_KEY_MAX]; /* "T#<t>#" with --tenant, else "" */
    char checkpoint_sk[STORE_KEY_MAX];
    char last_group[SCHEMA_KEY_MAX]; /* last finished tenant group */
    engine_recompute_report *rep;
    engine_aggset *pending; /* sum of deltas of the events in (C, H] */
    char **pending_groups;  /* their groups, sorted, distinct */
    size_t npending_groups, next_pending_group;
    engine__lease lease; /* held while repairing */
    int64_t lease_renew_mono;
    engine_recompute_progress progress;
    char progress_tenant[ENGINE_NAME_SIZE];
};

static void add_row(run *r, const char *tenant, const char *sk, const char *field, const char *live,
                    const char *recomputed)
{
    engine_recompute_report *rep = r->rep;
    rep->drift_fields++;
    r->progress.drift_fields++;
    if (rep->nrows < r->opt.max_rows) { /* the count goes on past the rows kept */
        engine_drift_row *row = &rep->rows[rep->nrows++];
        snprintf(row->tenant, sizeof row->tenant, "%s", tenant);
        snprintf(row->sk, sizeof row->sk, "%s", sk);
        snprintf(row->field, sizeof row->field, "%s", field);
        snprintf(row->live, sizeof row->live, "%s", live);
        snprintf(row->recomputed, sizeof row->recomputed, "%s", recomputed);
    }
}

static void fmt_i64(int64_t v, char *out)
{
    snprintf(out, ENGINE_DRIFT_VALUE_MAX, "%lld", (long long)v);
}

/* Compares one counter; adds a row and returns 1 when they differ. */
static int cmp_i64(run *r, const engine_agg *id, const char *sk, const char *field, int64_t live,
                   int64_t shadow)
{
    if (live != shadow) {
        char a[ENGINE_DRIFT_VALUE_MAX], b[ENGINE_DRIFT_VALUE_MAX];
        fmt_i64(live, a);
        fmt_i64(shadow, b);
        add_row(r, id->tenant, sk, field, a, b);
    }
    return live != shadow;
}

static int row_exists(const run *r, size_t from, const char *field)
{
    int found = 0;
    for (size_t i = from; !found && i < r->rep->nrows; i++)
        found = !strcmp(r->rep->rows[i].field, field);
    return found;
}

/* Field-by-field comparison of one aggregate; live or shadow may be NULL
 * (absent).  Returns the number of drifted fields. */
static int64_t compare_agg(run *r, const engine_agg *live, const engine__problems *problems,
                           const engine_agg *shadow)
{
    static const engine_metric zero_metric;
    const engine_agg *id = shadow ? shadow : live;
    engine_agg empty;
    engine_agg_init(&empty);
    const engine_agg *L = live ? live : &empty, *S = shadow ? shadow : &empty;
    schema_key pk, sk;
    if (engine_agg_keys(id, pk, sk, NULL) != SL_OK)
        snprintf(sk, sizeof sk, "?");
    int64_t before = r->rep->drift_fields;
    size_t first_row = r->rep->nrows;
    if (id->kind == ENGINE_AGG_TOOL) {
        cmp_i64(r, id, sk, "surgeries", L->surgeries, S->surgeries);
        cmp_i64(r, id, sk, "surgeries_opened", L->surgeries_opened, S->surgeries_opened);
        cmp_i64(r, id, sk, "surgeries_used", L->surgeries_used, S->surgeries_used);
        cmp_i64(r, id, sk, "units_opened", L->units_opened, S->units_opened);
        cmp_i64(r, id, sk, "units_used", L->units_used, S->units_used);
        cmp_i64(r, id, sk, "waste_cents", L->waste_cents, S->waste_cents);
    } else {
        cmp_i64(r, id, sk, "count", L->count, S->count);
        /* Metrics are sorted by name on both sides: walk them together. */
        size_t i = 0, j = 0;
        while (i < L->nmetrics || j < S->nmetrics) {
            int c = i >= L->nmetrics   ? 1
                    : j >= S->nmetrics ? -1
                                       : strcmp(L->metrics[i].name, S->metrics[j].name);
            const engine_metric *lm = c <= 0 ? &L->metrics[i] : &zero_metric;
            const engine_metric *sm = c >= 0 ? &S->metrics[j] : &zero_metric;
            const char *name = c <= 0 ? lm->name : sm->name;
            char field[ENGINE_METRIC_NAME_MAX + 32];
            snprintf(field, sizeof field, "metrics.%s.n", name);
            cmp_i64(r, id, sk, field, lm->n, sm->n);
            snprintf(field, sizeof field, "metrics.%s.sum", name);
            cmp_i64(r, id, sk, field, lm->sum, sm->sum);
            if (lm->sumsq != sm->sumsq) {
                char a[ENGINE_DRIFT_VALUE_MAX], b[ENGINE_DRIFT_VALUE_MAX];
                engine__i128_format(lm->sumsq, a, sizeof a);
                engine__i128_format(sm->sumsq, b, sizeof b);
                snprintf(field, sizeof field, "metrics.%s.sumsq", name);
                add_row(r, id->tenant, sk, field, a, b);
            }
            for (int bin = 0; bin < ENGINE_HIST_BINS; bin++) {
                if (lm->hist[bin] == sm->hist[bin])
                    continue;
                snprintf(field, sizeof field, "metrics.%s.hist[%d]", name, bin);
                cmp_i64(r, id, sk, field, lm->hist[bin], sm->hist[bin]);
            }
            i += c <= 0;
            j += c >= 0;
        }
    }
    /* Fields that could not be read, unless a value row already names them.
     * A stale index field (gsi*) counts only when nothing else drifted: it
     * follows from the content, so another drift explains it already, and
     * the repair of that drift rewrites it. */
    int64_t value_drift = r->rep->drift_fields - before;
    if (problems)
        for (size_t p = 0; p < problems->n; p++) {
            const char *f = problems->field[p];
            int index = !strncmp(f, "gsi", 3);
            if ((!index || !value_drift) && !row_exists(r, first_row, f))
                add_row(r, id->tenant, sk, f, index ? "stale" : "unreadable", "");
        }
    /* Existence: an all-zero aggregate must not exist. */
    int shadow_exists = shadow && !engine_agg_is_zero(shadow);
    if (r->rep->drift_fields == before && (live != NULL) != shadow_exists)
        add_row(r, id->tenant, sk, "(document)", live ? "present" : "absent",
                shadow_exists ? "present" : "absent");
    return r->rep->drift_fields - before;
}

/* ---------------------------------------------------------------------------
 * Repair: add (shadow - live_at_C) to the current document under a version
 * condition, so deltas the listener applied since C are kept.
 * ------------------------------------------------------------------------- */
static sl_status repair_agg(run *r, const engine_agg *live, const engine_agg *shadow, sl_error *err)
{
    sl_status rc = SL_OK;
    engine_agg corr, cur;
    engine_agg_init(&corr);
    engine_agg_init(&cur);
    bson_t *doc = NULL;
    bson_t out;
    bson_init(&out);
    const engine_agg *id = shadow ? shadow : live;
    schema_key pk, sk;
    if ((rc = engine_agg_keys(id, pk, sk, err)) != SL_OK)
        goto done;
    engine__agg_copy_identity(&corr, id);
    if (shadow && (rc = engine_agg_add(&corr, shadow, +1, err)) != SL_OK)
        goto done;
    if (live && (rc = engine_agg_add(&corr, live, -1, err)) != SL_OK)
        goto done;
    for (int attempt = 0;; attempt++) {
        if (attempt == ENGINE__REPAIR_RETRIES) {
            rc = sl_error_set(err, SL_EBUSY,
                              "aggregate %s / %s kept changing; %d repair attempts failed", pk, sk,
                              ENGINE__REPAIR_RETRIES);
            goto done;
        }
        if (doc) {
            bson_destroy(doc);
            doc = NULL;
        }
        engine_agg_free(&cur);
        rc = store_get(r->s, STORE_AGGREGATES, pk, sk, &doc, err);
        int64_t version = 0;
        if (rc == SL_ENOTFOUND) {
            sl_error_clear(err);
            engine__agg_copy_identity(&cur, id);
        } else if (rc != SL_OK) {
            goto done;
        } else if ((rc = engine__agg_decode_lenient(doc, &cur, NULL, err)) != SL_OK) {
            goto done;
        } else {
            version = cur.version;
        }
        if ((rc = engine_agg_add(&cur, &corr, +1, err)) != SL_OK)
            goto done;
        /* The write, fenced by our repair lease: ops[0] checks it. */
        store_op ops[2] = {{.kind = STORE_OP_CHECK,
                            .table = STORE_AGGREGATES,
                            .pk = ENGINE_SYS_PK,
                            .sk = r->lease.sk,
                            .cond = {STORE_COND_VERSION, r->lease.version}},
                           {.table = STORE_AGGREGATES}};
        if (engine_agg_is_zero(&cur)) {
            if (!version)
                break; /* absent, and should be */
            ops[1].kind = STORE_OP_DELETE;
            ops[1].pk = pk;
            ops[1].sk = sk;
            ops[1].cond = (store_cond){STORE_COND_VERSION, version};
        } else {
            bson_reinit(&out);
            if ((rc = engine_agg_encode(&cur, &out, err)) != SL_OK)
                goto done;
            ops[1].kind = STORE_OP_PUT;
            ops[1].doc = &out;
            ops[1].cond = version ? (store_cond){STORE_COND_VERSION, version}
                                  : (store_cond){STORE_COND_NOT_EXISTS, 0};
        }
        rc = store_write_batch(r->s, ops, 2, err);
        if (rc != SL_ECONDITION)
            break;
        if (!strcmp(err->field, "ops[0]")) {
            rc = SL_ECONFLICT;
            sl_error_clear(err);
            sl_error_set(err, rc, "another recompute took the repair lease; stopping this one");
            goto done;
        }
        sl_error_clear(err); /* the listener wrote meanwhile: read again */
    }
    if (rc == SL_OK)
        r->rep->repaired_aggregates++;
done:
    if (doc)
        bson_destroy(doc);
    bson_destroy(&out);
    engine_agg_free(&corr);
    engine_agg_free(&cur);
    return rc;
}

/* ---------------------------------------------------------------------------
 * One tenant group.
 * ------------------------------------------------------------------------- */
static sl_status progress_tick(run *r, const char *group, sl_error *err)
{
    sl_status rc = SL_OK;
    size_t len = strlen(group);
    if (r->opt.progress) {
        if (len > 3)
            snprintf(r->progress_tenant, sizeof r->progress_tenant, "%.*s", (int)(len - 3),
                     group + 2);
        r->progress.tenant = r->progress_tenant;
        if (r->opt.progress(r->opt.progress_ctx, &r->progress))
            rc = sl_error_set(err, SL_EBUSY,
                              "recompute interrupted by its caller; the next run resumes it");
    }
    return rc;
}

static sl_status renew_repair_lease(run *r, sl_error *err)
{
    sl_status rc = SL_OK;
    if (!r || !r->opt.repair ||
        engine__mono_ms() - r->lease_renew_mono < ENGINE__REPAIR_LEASE_MS / 3)
        goto out;
    rc = engine__lease_renew(r->s, &r->lease, err);
    if (rc == SL_OK)
        r->lease_renew_mono = engine__mono_ms();
    else if (rc == SL_ECONDITION)
        rc = sl_error_set(err, SL_ECONFLICT,
                          "another recompute took the repair lease; stopping this one");
out:
    return rc;
}

/* Rebuilds, compares and (with repair) corrects one tenant group, leaving both
 * cursors at the next group.  The shadow and live sets are freed here. */
static sl_status process_group(run *r, const char *group, cursor *items, cursor *aggs,
                               sl_error *err)
{
    sl_status rc = SL_OK;
    engine_aggset *shadow = NULL, *live = NULL;
    engine__problems *problems = NULL;
    size_t nproblems = 0, cap_problems = 0;
    bson_t view;
    char g[SCHEMA_KEY_MAX];
    if ((rc = engine_aggset_new(r->opt.max_aggregates, &shadow, err)) != SL_OK ||
        (rc = engine_aggset_new(r->opt.max_aggregates, &live, err)) != SL_OK)
        goto out;
    /* The shadow: f over the tenant's items. */
    int64_t page_mark = items->docs;
    while (cursor_peek(items, &view, &rc, err)) {
        doc_group(&view, g);
        if (strcmp(g, group) != 0)
            break;
        sl_error e;
        sl_error_clear(&e);
        sl_status arc = engine_aggset_apply_image(shadow, &view, +1, &e);
        if (arc == SL_EINVAL) {
            r->rep->malformed++;
        } else if (arc != SL_OK) {
            rc = sl_error_set(err, arc, "tenant %s: %s", group, e.message);
            goto out;
        }
        bson_iter_t it;
        if (bson_iter_init_find(&it, &view, SCHEMA_F_TYPE) && BSON_ITER_HOLDS_UTF8(&it) &&
            !strcmp(bson_iter_utf8(&it, NULL), SCHEMA_TYPE_ASSET))
            r->progress.assets_scanned++;
        r->rep->items_scanned++;
        r->progress.items_scanned++;
        cursor_next(items);
        if (items->docs - page_mark >= ENGINE__SCAN_PAGE) {
            page_mark = items->docs;
            if ((rc = progress_tick(r, group, err)) != SL_OK ||
                (rc = renew_repair_lease(r, err)) != SL_OK)
                goto out;
        }
    }
    if (rc != SL_OK)
        goto out;
    /* Back to the consumer's point C: minus the deltas it has not applied. */
    for (size_t i = 0; i < engine_aggset_count(r->pending); i++) {
        const engine_agg *p = engine_aggset_at(r->pending, i);
        char pg[SCHEMA_KEY_MAX];
        snprintf(pg, sizeof pg, "T#%s#", p->tenant);
        if (!strcmp(pg, group) && (rc = engine_aggset_add(shadow, p, -1, err)) != SL_OK)
            goto out;
    }
    /* The live side, with what could not be read of it. */
    while (cursor_peek(aggs, &view, &rc, err)) {
        doc_group(&view, g);
        if (strcmp(g, group) != 0)
            break;
        engine_agg a;
        engine_agg_init(&a);
        engine__problems p = {0};
        sl_error e;
        sl_error_clear(&e);
        if (engine__agg_decode_lenient(&view, &a, &p, &e) != SL_OK) {
            /* Not an aggregate key at all: report it; repair cannot guess its identity. */
            bson_iter_t it;
            const char *sk =
                bson_iter_init_find(&it, &view, SCHEMA_F_SK) && BSON_ITER_HOLDS_UTF8(&it)
                    ? bson_iter_utf8(&it, NULL)
                    : "?";
            add_row(r, group, sk, "(key)", "unreadable", "");
            r->rep->drift_aggregates++;
            cursor_next(aggs);
            continue;
        }
        if (engine_aggset_find(live, &a)) {
            engine_agg_free(&a);
            cursor_next(aggs);
            continue; /* cannot happen: keys are unique */
        }
        rc = engine_aggset_add(live, &a, +1, err);
        int64_t version = a.version;
        engine_agg_free(&a);
        if (rc != SL_OK)
            goto out;
        (void)version;
        /* The live entry's version field holds its index + 1 here (negated
         * once compared); repair reads the current version anyway. */
        engine_agg *stored = engine_aggset_at(live, engine_aggset_count(live) - 1);
        stored->version = (int64_t)nproblems + 1;
        if (nproblems == cap_problems) {
            size_t cap = cap_problems ? cap_problems * 2 : 64;
            engine__problems *np = realloc(problems, cap * sizeof *np);
            if (!np) {
                rc = sl_error_set(err, SL_ENOMEM, "out of memory reading live aggregates");
                goto out;
            }
            problems = np;
            cap_problems = cap;
        }
        problems[nproblems++] = p;
        cursor_next(aggs);
    }
    if (rc != SL_OK)
        goto out;
    /* Compare every aggregate either side has. */
    engine_aggset_sort(shadow);
    size_t nlive = engine_aggset_count(live);
    for (size_t i = 0; i < engine_aggset_count(shadow); i++) {
        const engine_agg *sa = engine_aggset_at(shadow, i);
        engine_agg *la = engine_aggset_find(live, sa);
        if (!la && engine_agg_is_zero(sa))
            continue;
        size_t li = la ? (size_t)(la->version - 1) : 0;
        r->rep->aggregates_checked++;
        int64_t d = compare_agg(r, la, la ? &problems[li] : NULL, sa);
        if (la)
            la->version = -la->version; /* mark as compared */
        if (d) {
            r->rep->drift_aggregates++;
            if (r->opt.repair && (rc = repair_agg(r, la, sa, err)) != SL_OK)
                goto out;
        }
    }
    for (size_t i = 0; i < nlive; i++) {
        engine_agg *la = engine_aggset_at(live, i);
        if (la->version < 0)
            continue;
        r->rep->aggregates_checked++;
        if (compare_agg(r, la, &problems[i], NULL)) {
            r->rep->drift_aggregates++;
            if (r->opt.repair && (rc = repair_agg(r, la, NULL, err)) != SL_OK)
                goto out;
        }
    }
    r->rep->tenants++;
    r->progress.tenants_done++;
out:
    engine_aggset_free(&shadow);
    engine_aggset_free(&live);
    free(problems);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Feed events in (C, H].
 * ------------------------------------------------------------------------- */
static int group_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void pending_groups_free(run *r)
{
    for (size_t i = 0; i < r->npending_groups; i++)
        free(r->pending_groups[i]);
    free(r->pending_groups);
    r->pending_groups = NULL;
    r->npending_groups = r->next_pending_group = 0;
}

/* Reads the events in (C, H] into r->pending and lists their tenant groups in
 * r->pending_groups (strdup'ed, freed by pending_groups_free()).  *gone = 1
 * when the consumer's position was pruned (nothing read). */
static sl_status read_pending(run *r, int *gone, sl_error *err)
{
    sl_status rc;
    store_feed *f = NULL;
    store_feed_stats fs;
    *gone = 0;
    engine_aggset_clear(r->pending);
    pending_groups_free(r);
    if ((rc = store_feed_stats_get(r->snap, r->consumer, &fs, err)) != SL_OK)
        goto out;
    rc = store_feed_open(r->snap, r->consumer, &f, err);
    if (rc == SL_EFEEDGONE) {
        sl_error_clear(err);
        *gone = 1;
        rc = SL_OK;
        goto out;
    }
    if (rc != SL_OK)
        goto out;
    int at_head = fs.head_token[0] == '\0';
    while (!at_head) {
        const store_event *ev;
        size_t n = 0;
        if ((rc = store_feed_read(f, 1000, 0, &ev, &n, err)) != SL_OK ||
            (rc = renew_repair_lease(r, err)) != SL_OK)
            goto out;
        if (n == 0)
            break;
        for (size_t i = 0; i < n && !at_head; i++) {
            char g[SCHEMA_KEY_MAX];
            if (!r->scope_group[0] ||
                (engine__tenant_group(ev[i].pk, g) && !strcmp(g, r->scope_group))) {
                /* Malformed images contribute nothing, as in the listener. */
                (void)engine_aggset_apply_image(r->pending, ev[i].new_image, +1, NULL);
                (void)engine_aggset_apply_image(r->pending, ev[i].old_image, -1, NULL);
            }
            /* Events past the snapshot's head are not part of this point. */
            at_head = !strcmp(ev[i].token, fs.head_token);
        }
    }
    /* The distinct tenant groups the deltas touch, sorted. */
    size_t n = engine_aggset_count(r->pending);
    if (n) {
        r->pending_groups = calloc(n, sizeof *r->pending_groups);
        if (!r->pending_groups) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory listing pending tenants");
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            const engine_agg *a = engine_aggset_at(r->pending, i);
            char g[SCHEMA_KEY_MAX];
            snprintf(g, sizeof g, "T#%s#", a->tenant);
            if (!(r->pending_groups[r->npending_groups] = strdup(g))) {
                rc = sl_error_set(err, SL_ENOMEM, "out of memory listing pending tenants");
                goto out;
            }
            r->npending_groups++;
        }
        qsort(r->pending_groups, r->npending_groups, sizeof *r->pending_groups, group_cmp);
        size_t w = 0;
        for (size_t i = 0; i < r->npending_groups; i++) {
            if (w && !strcmp(r->pending_groups[w - 1], r->pending_groups[i])) {
                free(r->pending_groups[i]);
                continue;
            }
            r->pending_groups[w++] = r->pending_groups[i];
        }
        r->npending_groups = w;
    }
out:
    store_feed_close(&f);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Checkpoint and audit.
 * ------------------------------------------------------------------------- */
static void put_counters(bson_t *d, const engine_recompute_report *rep)
{
    BSON_APPEND_INT64(d, "tenants", rep->tenants);
    BSON_APPEND_INT64(d, "items_scanned", rep->items_scanned);
    BSON_APPEND_INT64(d, "malformed", rep->malformed);
    BSON_APPEND_INT64(d, "aggregates_checked", rep->aggregates_checked);
    BSON_APPEND_INT64(d, "drift_fields", rep->drift_fields);
    BSON_APPEND_INT64(d, "drift_aggregates", rep->drift_aggregates);
    BSON_APPEND_INT64(d, "repaired_aggregates", rep->repaired_aggregates);
}

static int64_t get_int(const bson_t *d, const char *key)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, d, key) && BSON_ITER_HOLDS_INT64(&it) ? bson_iter_int64(&it)
                                                                          : 0;
}

static void get_str(const bson_t *d, const char *key, char *out, size_t size)
{
    bson_iter_t it;
    out[0] = '\0';
    if (bson_iter_init_find(&it, d, key) && BSON_ITER_HOLDS_UTF8(&it))
        snprintf(out, size, "%s", bson_iter_utf8(&it, NULL));
}

static sl_status save_checkpoint(run *r, const char *items_token, const char *aggs_token,
                                 sl_error *err)
{
    bson_t d = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&d, SCHEMA_F_PK, ENGINE_SYS_PK);
    BSON_APPEND_UTF8(&d, SCHEMA_F_SK, r->checkpoint_sk);
    BSON_APPEND_UTF8(&d, SCHEMA_F_TYPE, "recompute_checkpoint");
    BSON_APPEND_UTF8(&d, "run_id", r->rep->run_id);
    BSON_APPEND_INT64(&d, "started_ms", r->rep->started_ms);
    BSON_APPEND_INT64(&d, "updated_ms", engine__now_ms());
    BSON_APPEND_UTF8(&d, "last_group", r->last_group);
    BSON_APPEND_UTF8(&d, "items_token", items_token);
    BSON_APPEND_UTF8(&d, "aggregates_token", aggs_token);
    BSON_APPEND_BOOL(&d, "feed_gone", r->rep->feed_gone);
    BSON_APPEND_BOOL(&d, "consumer_reset", r->rep->consumer_reset);
    put_counters(&d, r->rep);
    sl_status rc = store_put(r->s, STORE_AGGREGATES, &d, (store_cond){0}, NULL, err);
    bson_destroy(&d);
    return rc;
}

/* Loads an interrupted run of the same scope into the report; 1 if found. */
static int load_checkpoint(run *r, char *items_token, char *aggs_token)
{
    bson_t *d = NULL;
    engine_recompute_report *rep = r->rep;
    int found =
        store_get(r->s, STORE_AGGREGATES, ENGINE_SYS_PK, r->checkpoint_sk, &d, NULL) == SL_OK;
    if (!found)
        goto out;
    get_str(d, "run_id", rep->run_id, sizeof rep->run_id);
    get_str(d, "last_group", r->last_group, sizeof r->last_group);
    get_str(d, "items_token", items_token, STORE_TOKEN_MAX);
    get_str(d, "aggregates_token", aggs_token, STORE_TOKEN_MAX);
    rep->started_ms = get_int(d, "started_ms");
    rep->tenants = get_int(d, "tenants");
    rep->items_scanned = get_int(d, "items_scanned");
    rep->malformed = get_int(d, "malformed");
    rep->aggregates_checked = get_int(d, "aggregates_checked");
    rep->drift_fields = get_int(d, "drift_fields");
    rep->drift_aggregates = get_int(d, "drift_aggregates");
    rep->repaired_aggregates = get_int(d, "repaired_aggregates");
    bson_iter_t it;
    if (bson_iter_init_find(&it, d, "consumer_reset") && BSON_ITER_HOLDS_BOOL(&it))
        rep->consumer_reset = bson_iter_bool(&it);
    bson_destroy(d);
out:
    return found;
}

static sl_status write_audit(run *r, sl_error *err)
{
    engine_recompute_report *rep = r->rep;
    char when[25], sk[STORE_KEY_MAX];
    schema_time_format(rep->started_ms, when);
    snprintf(sk, sizeof sk, "AUDIT#RECOMPUTE#%s#%s", when, rep->run_id);
    bson_t d = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&d, SCHEMA_F_PK, ENGINE_SYS_PK);
    BSON_APPEND_UTF8(&d, SCHEMA_F_SK, sk);
    BSON_APPEND_UTF8(&d, SCHEMA_F_TYPE, "recompute_audit");
    BSON_APPEND_UTF8(&d, "run_id", rep->run_id);
    BSON_APPEND_UTF8(&d, "started_at", when);
    BSON_APPEND_INT64(&d, "started_ms", rep->started_ms);
    BSON_APPEND_INT64(&d, "finished_ms", rep->finished_ms);
    BSON_APPEND_UTF8(&d, "tenant", r->opt.tenant ? r->opt.tenant : "");
    BSON_APPEND_BOOL(&d, "repair", r->opt.repair != 0);
    BSON_APPEND_BOOL(&d, "resumed", rep->resumed != 0);
    BSON_APPEND_BOOL(&d, "feed_gone", rep->feed_gone != 0);
    BSON_APPEND_BOOL(&d, "consumer_reset", rep->consumer_reset != 0);
    put_counters(&d, rep);
    sl_status rc = store_put(r->s, STORE_AGGREGATES, &d, (store_cond){0}, NULL, err);
    bson_destroy(&d);
    return rc;
}

/* ---------------------------------------------------------------------------
 * The run.
 * ------------------------------------------------------------------------- */

/* Sum of the live brand counts in scope, for the progress bar. */
static int64_t estimate_assets(run *r)
{
    cursor c;
    bson_t view;
    sl_status rc = SL_OK;
    int64_t total = 0;
    char prefix[SCHEMA_KEY_MAX];
    snprintf(prefix, sizeof prefix, "%s", r->scope_group[0] ? r->scope_group : "T#");
    cursor_init(&c, r, r->snap, STORE_AGGREGATES, prefix, NULL);
    while (cursor_peek(&c, &view, &rc, NULL)) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, &view, SCHEMA_F_TYPE) && BSON_ITER_HOLDS_UTF8(&it) &&
            !strcmp(bson_iter_utf8(&it, NULL), SCHEMA_TYPE_BRAND_AGG))
            total += get_int(&view, "count");
        cursor_next(&c);
    }
    cursor_free(&c);
    return total;
}

static sl_status compare_all(run *r, const char *items_token, const char *aggs_token, sl_error *err)
{
    sl_status rc = SL_OK;
    cursor items, aggs;
    char prefix[SCHEMA_KEY_MAX];
    snprintf(prefix, sizeof prefix, "%s", r->scope_group[0] ? r->scope_group : "T#");
    cursor_init(&items, r, r->snap, STORE_ITEMS, prefix, items_token);
    cursor_init(&aggs, r, r->snap, STORE_AGGREGATES, prefix, aggs_token);
    for (;;) {
        char gi[SCHEMA_KEY_MAX], ga[SCHEMA_KEY_MAX], gp[SCHEMA_KEY_MAX] = "";
        sl_error e;
        sl_error_clear(&e);
        rc = cursor_group(&items, r->last_group, gi, &e);
        if (rc == SL_EINVAL && items_token[0] && items.docs == 0) {
            /* The saved page token is not accepted here: scan from the start
             * and pass over the finished tenants instead. */
            cursor_free(&items);
            cursor_init(&items, r, r->snap, STORE_ITEMS, prefix, NULL);
            items_token = "";
            sl_error_clear(&e);
            rc = cursor_group(&items, r->last_group, gi, &e);
        }
        if (rc == SL_OK) {
            rc = cursor_group(&aggs, r->last_group, ga, &e);
            if (rc == SL_EINVAL && aggs_token[0] && aggs.docs == 0) {
                cursor_free(&aggs);
                cursor_init(&aggs, r, r->snap, STORE_AGGREGATES, prefix, NULL);
                aggs_token = "";
                sl_error_clear(&e);
                rc = cursor_group(&aggs, r->last_group, ga, &e);
            }
        }
        if (rc != SL_OK) {
            sl_error_set(err, e.status, "%s", e.message);
            goto out;
        }
        while (r->next_pending_group < r->npending_groups && r->last_group[0] &&
               strcmp(r->pending_groups[r->next_pending_group], r->last_group) <= 0)
            r->next_pending_group++;
        if (r->next_pending_group < r->npending_groups)
            snprintf(gp, sizeof gp, "%s", r->pending_groups[r->next_pending_group]);
        /* The smallest group of the three sources is next. */
        const char *g = NULL;
        const char *cand[3] = {gi, ga, gp};
        for (int i = 0; i < 3; i++)
            if (cand[i][0] && (!g || strcmp(cand[i], g) < 0))
                g = cand[i];
        if (!g)
            break;
        char group[SCHEMA_KEY_MAX];
        snprintf(group, sizeof group, "%s", g);
        if ((rc = process_group(r, group, &items, &aggs, err)) != SL_OK)
            goto out;
        snprintf(r->last_group, sizeof r->last_group, "%s", group);
        if ((rc = save_checkpoint(r, items.page_token, aggs.page_token, err)) != SL_OK ||
            (rc = renew_repair_lease(r, err)) != SL_OK ||
            (rc = progress_tick(r, group, err)) != SL_OK)
            goto out;
    }
out:
    cursor_free(&items);
    cursor_free(&aggs);
    return rc;
}

void engine_recompute_report_free(engine_recompute_report *r)
{
    if (r) {
        free(r->rows);
        memset(r, 0, sizeof *r);
    }
}

sl_status engine_recompute(store *s, const engine_recompute_options *opt,
                           engine_recompute_report *out, sl_error *err)
{
    sl_status rc = SL_OK;
    run r;
    engine_recompute_report rep;
    char items_token[STORE_TOKEN_MAX] = "", aggs_token[STORE_TOKEN_MAX] = "";
    memset(&r, 0, sizeof r);
    memset(&rep, 0, sizeof rep);
    r.s = s;
    r.rep = &rep;
    r.opt = opt ? *opt : (engine_recompute_options){0};
    if (!r.opt.max_aggregates)
        r.opt.max_aggregates = ENGINE__RECOMPUTE_AGGS_DEFAULT;
    if (!r.opt.max_rows)
        r.opt.max_rows = ENGINE__RECOMPUTE_ROWS_DEFAULT;
    if (r.opt.tenant && !r.opt.tenant[0])
        r.opt.tenant = NULL;
    snprintf(r.consumer, sizeof r.consumer, "%s",
             r.opt.consumer && r.opt.consumer[0] ? r.opt.consumer : ENGINE_CONSUMER);
    if (r.opt.tenant) {
        if ((rc = schema_component_check("tenant", r.opt.tenant, err)) != SL_OK)
            goto out;
        snprintf(r.scope_group, sizeof r.scope_group, "T#%s#", r.opt.tenant);
    }
    snprintf(r.checkpoint_sk, sizeof r.checkpoint_sk, "CHECKPOINT#RECOMPUTE#%s%s#%s",
             r.opt.tenant ? "TENANT:" : "ALL", r.opt.tenant ? r.opt.tenant : "",
             r.opt.repair ? "repair" : "check");
    rep.rows = calloc(r.opt.max_rows, sizeof *rep.rows);
    if (!rep.rows) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory for %zu drift rows", r.opt.max_rows);
        goto out;
    }
    if ((rc = engine_aggset_new(r.opt.max_aggregates, &r.pending, err)) != SL_OK)
        goto out;
    if (r.opt.repair) {
        char holder[128];
        engine__holder_default(holder, sizeof holder);
        engine__lease_init(&r.lease, ENGINE__REPAIR_LEASE, holder, ENGINE__REPAIR_LEASE_MS);
        if ((rc = engine__lease_acquire(s, &r.lease, err)) != SL_OK) {
            sl_error_prefix(err, "another repairing recompute runs");
            goto out;
        }
        r.lease_renew_mono = engine__mono_ms();
    }
    if (!r.opt.fresh && load_checkpoint(&r, items_token, aggs_token)) {
        rep.resumed = 1;
    } else {
        unsigned char rnd[8] = {0};
        if (getrandom(rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd)
            memset(rnd, 0, sizeof rnd);
        snprintf(rep.run_id, sizeof rep.run_id, "%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1],
                 rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
        rep.started_ms = engine__now_ms();
    }
    r.progress.tenants_done = rep.tenants;

    int gone = 0;
    if ((rc = store_snapshot_open(s, &r.snap, err)) != SL_OK)
        goto out;
    if ((rc = read_pending(&r, &gone, err)) != SL_OK)
        goto out;
    if (gone) {
        rep.feed_gone = 1;
        if (r.opt.repair) {
            if (r.opt.tenant) {
                rc = sl_error_set(err, SL_EINVAL,
                                  "the feed position of consumer %s was pruned, so every "
                                  "tenant's aggregates are stale: run recompute --repair "
                                  "without --tenant",
                                  r.consumer);
                goto out;
            }
            /* Move the consumer to the head first; then the usual repair at
             * the new point corrects every aggregate, whatever the listener
             * applies meanwhile. */
            store_close(&r.snap);
            if ((rc = store_consumer_reset(s, r.consumer, NULL, 0, err)) != SL_OK)
                goto out;
            rep.consumer_reset = 1;
            r.last_group[0] = '\0';
            items_token[0] = aggs_token[0] = '\0';
            if ((rc = store_snapshot_open(s, &r.snap, err)) != SL_OK ||
                (rc = read_pending(&r, &gone, err)) != SL_OK)
                goto out;
            if (gone) {
                rc = sl_error_set(err, SL_EFEEDGONE,
                                  "consumer %s still cannot read its feed after a reset",
                                  r.consumer);
                goto out;
            }
        }
        /* Without repair: the live side is stale by an unknown amount; the
         * comparison is against the snapshot head and will show drift. */
    }
    if (r.opt.progress)
        r.progress.assets_estimate = estimate_assets(&r);
    if ((rc = compare_all(&r, items_token, aggs_token, err)) != SL_OK)
        goto out;
    rep.finished_ms = engine__now_ms();
    if ((rc = write_audit(&r, err)) != SL_OK)
        goto out;
    (void)store_delete(s, STORE_AGGREGATES, ENGINE_SYS_PK, r.checkpoint_sk, (store_cond){0}, NULL,
                       NULL);
    *out = rep;
    memset(&rep, 0, sizeof rep);
out:
    store_close(&r.snap);
    if (r.opt.repair)
        engine__lease_release(s, &r.lease);
    engine_aggset_free(&r.pending);
    pending_groups_free(&r);
    engine_recompute_report_free(&rep);
    return rc;
}
