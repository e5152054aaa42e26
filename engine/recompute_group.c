/* recompute_group.c -- one tenant group of a recompute: the scan cursor that
 * walks it in pages, building its shadow and reading its live aggregates,
 * comparing them and replacing the drifted ones (fenced on both leases). */
#include "engine_int.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ENGINE__SCAN_PAGE       500u
#define ENGINE__REPAIR_BATCH    100u /* aggregates replaced by one atomic write */
#define ENGINE__REPAIR_ATTEMPTS 5    /* of one tenant's repair, when the listener's lease is lost */

/* ---------------------------------------------------------------------------
 * A scan cursor that walks pages and remembers the token of its page.
 * ------------------------------------------------------------------------- */

/* Prepares a cursor (no store access yet); its pages are freed by engine__cursor_free(). */
void engine__cursor_init(engine__cursor *c, engine__run *owner, store *s, store_table t,
                         const char *prefix, const char *token)
{
    memset(c, 0, sizeof *c);
    c->owner = owner;
    c->s = s;
    c->table = t;
    snprintf(c->prefix, sizeof c->prefix, "%s", prefix);
    snprintf(c->next_token, sizeof c->next_token, "%s", token ? token : "");
}

void engine__cursor_free(engine__cursor *c)
{
    store_page_free(&c->page);
}

/* Makes the current row available: *row (the key and version the store
 * keeps, valid until the cursor leaves its page), *view and *readable (0
 * when its bytes are not BSON).  0 at the end (or on error, with *rc set). */
int engine__cursor_peek(engine__cursor *c, const store_doc **row, bson_t *view, int *readable,
                        sl_status *rc, sl_error *err)
{
    while (!c->done && (!c->started || c->i >= c->page.count)) {
        if (c->started && !c->page.next_token) {
            c->done = 1;
            break;
        }
        if (c->started)
            snprintf(c->next_token, sizeof c->next_token, "%s", c->page.next_token);
        store_page_free(&c->page);
        if ((*rc = engine__check_leases(c->owner, err)) != SL_OK) {
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
    if (!c->done) {
        *row = &c->page.docs[c->i];
        *readable = store_page_view(&c->page, c->i, view);
    }
    return !c->done;
}

void engine__cursor_next(engine__cursor *c)
{
    c->i++;
    c->docs++;
}

/* The tenant group ("T#<t>#") of a row's key, "" when it has none. */
static void row_group(const store_doc *row, char *group)
{
    if (!engine__tenant_group(row->pk, group))
        group[0] = '\0';
}

/* Peeks the group of the cursor's next document that belongs to a group after
 * `after` (documents without a group, or of groups already done, are passed
 * over).  "" at the end. */
sl_status engine__cursor_group(engine__cursor *c, const char *after, char *group, sl_error *err)
{
    sl_status rc = SL_OK;
    const store_doc *row;
    bson_t view;
    int readable, found = 0;
    while (!found && engine__cursor_peek(c, &row, &view, &readable, &rc, err)) {
        row_group(row, group);
        found = group[0] && (!after[0] || strcmp(group, after) > 0);
        if (!found)
            engine__cursor_next(c);
    }
    if (!found)
        group[0] = '\0';
    return rc;
}

/* ---------------------------------------------------------------------------
 * One tenant group: build, compare, replace.
 * ------------------------------------------------------------------------- */
/* The report's counters and list lengths, to take back a first look at a
 * tenant that is then rebuilt under the listener's lease. */
typedef struct report_mark {
    engine_recompute_report counters;
    size_t nrows, naggs;
} report_mark;

static void mark_take(const engine__run *r, report_mark *m)
{
    m->counters = *r->rep;
    m->nrows = r->rep->nrows;
    m->naggs = r->rep->naggs;
}

static void mark_restore(engine__run *r, const report_mark *m)
{
    engine_recompute_report *rep = r->rep;
    rep->items_scanned = m->counters.items_scanned;
    rep->malformed = m->counters.malformed;
    rep->aggregates_checked = m->counters.aggregates_checked;
    rep->drift_fields = m->counters.drift_fields;
    rep->drift_aggregates = m->counters.drift_aggregates;
    rep->repaired_aggregates = m->counters.repaired_aggregates;
    rep->over_limit_aggregates = m->counters.over_limit_aggregates;
    rep->nrows = m->nrows;
    rep->naggs = m->naggs;
}

sl_status engine__progress_tick(engine__run *r, const char *group, sl_error *err)
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

/* A live document's problems, kept apart from engine__live_info: only damaged
 * documents have them, and a tenant may have millions of aggregates. */
typedef struct group_build {
    engine__group_state *g;
    engine__problems *problems;
    size_t nproblems, cap_problems;
    int failed;
} group_build;

static int collect_quarantine(void *ctx, const engine_quarantine *q)
{
    engine__group_state *g = ctx;
    if (g->nq == g->cap_q) {
        size_t cap = g->cap_q ? g->cap_q * 2 : 8;
        engine_quarantine *grown = realloc(g->q, cap * sizeof *grown);
        if (!grown)
            return 0;
        g->q = grown;
        g->cap_q = cap;
    }
    g->q[g->nq++] = *q;
    return 1;
}

/* Builds *g for group from cursors over snap: the shadow (f over the items,
 * minus the pending deltas of the group), the live aggregates as read
 * against their stored keys (info[] says what is wrong with each), the
 * quarantine records of the tenant.  Both cursors are left at the next
 * group.  Documents under the tenant's aggregates partition whose key names
 * no aggregate are reported here (they are not repaired: nothing tells what
 * they should be). */
static sl_status build_group(engine__run *r, store *snap, const char *group, engine__cursor *items,
                             engine__cursor *aggs, engine_aggset *pending, engine__group_state *g,
                             sl_error *err)
{
    sl_status rc = SL_OK;
    const store_doc *row;
    bson_t view;
    int readable;
    char rg[SCHEMA_KEY_MAX];
    memset(g, 0, sizeof *g);
    if ((rc = engine_aggset_new(r->opt.max_aggregates, &g->shadow, err)) != SL_OK ||
        (rc = engine_aggset_new(r->opt.max_aggregates, &g->live, err)) != SL_OK)
        goto out;
    /* What is rebuilt over the metric limit is reported, not a failure of
     * the tenant (engine.h). */
    engine__aggset_mark_over(g->shadow);
    /* The shadow: f over the tenant's items. */
    int64_t page_mark = items->docs;
    while (engine__cursor_peek(items, &row, &view, &readable, &rc, err)) {
        row_group(row, rg);
        if (strcmp(rg, group) != 0)
            break;
        sl_error e;
        sl_error_clear(&e);
        sl_status arc = readable ? engine_aggset_apply_image(g->shadow, &view, +1, &e) : SL_EINVAL;
        if (arc == SL_EINVAL) {
            r->rep->malformed++; /* contributes nothing, as in the listener */
        } else if (arc != SL_OK) {
            rc = sl_error_set(err, arc, "tenant %s: %s", group, e.message);
            goto out;
        }
        bson_iter_t it;
        if (readable && bson_iter_init_find(&it, &view, SCHEMA_F_TYPE) &&
            BSON_ITER_HOLDS_UTF8(&it) && !strcmp(bson_iter_utf8(&it, NULL), SCHEMA_TYPE_ASSET))
            r->progress.assets_scanned++;
        r->rep->items_scanned++;
        r->progress.items_scanned++;
        engine__cursor_next(items);
        if (items->docs - page_mark >= ENGINE__SCAN_PAGE) {
            page_mark = items->docs;
            if ((rc = engine__progress_tick(r, group, err)) != SL_OK ||
                (rc = engine__check_leases(r, err)) != SL_OK)
                goto out;
        }
    }
    if (rc != SL_OK)
        goto out;
    /* Back to the consumer's point C: minus the deltas it has not applied. */
    for (size_t i = 0; i < engine_aggset_count(pending); i++) {
        const engine_agg *p = engine_aggset_at(pending, i);
        char pg[SCHEMA_KEY_MAX];
        snprintf(pg, sizeof pg, "T#%s#", p->tenant);
        if (!strcmp(pg, group) && (rc = engine_aggset_add(g->shadow, p, -1, err)) != SL_OK)
            goto out;
    }
    /* The live side, read against the keys the store keeps. */
    while (engine__cursor_peek(aggs, &row, &view, &readable, &rc, err)) {
        row_group(row, rg);
        if (strcmp(rg, group) != 0)
            break;
        engine_agg a;
        engine_agg_init(&a);
        engine__live_info li = {
            .state = ENGINE__LIVE_OK, .version = row->version, .bytes = row->len};
        if (engine__agg_identity(row->pk, row->sk, &a, NULL) != SL_OK) {
            /* Not an aggregate key: named, not repaired (its identity is unknown). */
            engine__sbuf sb = {.len = 0};
            sb.s[0] = '\0';
            engine__sb_part(&sb, "not an aggregate key (left as it is)");
            engine__add_row(r, group, row->sk, "(key)", "not an aggregate", "");
            r->rep->drift_aggregates++;
            if ((rc = engine__add_summary(r, group, row->sk, 1, &sb, err)) != SL_OK)
                goto out;
            engine__cursor_next(aggs);
            continue;
        }
        if (!readable) {
            li.state = ENGINE__LIVE_UNREADABLE;
        } else {
            (void)engine__agg_decode_at(&view, row->pk, row->sk, &a, &li.problems, NULL);
            if (li.problems.foreign[0])
                li.state = ENGINE__LIVE_FOREIGN;
            else if (li.problems.n || li.problems.more)
                li.state = ENGINE__LIVE_FIELDS; /* its values are not all there: not checked */
            else if ((engine__agg_check(&a, &li.problems), li.problems.n || li.problems.more))
                li.state = ENGINE__LIVE_FIELDS;
        }
        if (engine_aggset_find(g->live, &a)) {
            engine_agg_free(&a);
            engine__cursor_next(aggs);
            continue; /* cannot happen: keys are unique */
        }
        rc = engine_aggset_add(g->live, &a, +1, err);
        engine_agg_free(&a);
        if (rc != SL_OK)
            goto out;
        if (g->ninfo == g->cap_info) {
            size_t cap = g->cap_info ? g->cap_info * 2 : 64;
            engine__live_info *grown = realloc(g->info, cap * sizeof *grown);
            if (!grown) {
                rc = sl_error_set(err, SL_ENOMEM, "out of memory reading live aggregates");
                goto out;
            }
            g->info = grown;
            g->cap_info = cap;
        }
        /* The live entry's version field holds its index + 1 here; the
         * stored version is in its info. */
        engine_aggset_at(g->live, engine_aggset_count(g->live) - 1)->version =
            (int64_t)g->ninfo + 1;
        g->info[g->ninfo++] = li;
        engine__cursor_next(aggs);
    }
    if (rc != SL_OK)
        goto out;
    /* The tenant's quarantine records, in the same snapshot. */
    char tenant[ENGINE_NAME_SIZE];
    snprintf(tenant, sizeof tenant, "%.*s", (int)(strlen(group) - 3), group + 2);
    if ((rc = engine__quarantine_each(snap, tenant, NULL, collect_quarantine, g, err)) != SL_OK)
        goto out;
    if (!(g->q_compared = calloc(g->nq ? g->nq : 1, 1)))
        rc = sl_error_set(err, SL_ENOMEM, "out of memory reading quarantine records");
out:
    return rc;
}

/* The quarantine record of aggregate a in g, or NULL. */
static engine_quarantine *find_quarantine(engine__group_state *g, const engine_agg *a, size_t *at)
{
    schema_key pk, sk;
    engine_quarantine *q = NULL;
    if (engine_agg_keys(a, pk, sk, NULL) == SL_OK)
        for (size_t i = 0; !q && i < g->nq; i++)
            if (!strcmp(g->q[i].pk, pk) && !strcmp(g->q[i].sk, sk)) {
                q = &g->q[i];
                *at = i;
            }
    return q;
}

/* One replacement: the aggregate becomes its shadow (or goes, when the
 * shadow counts nothing), its quarantine record goes.  Or, for a shadow over
 * the metric limit, the aggregate stays as it is and stays quarantined: its
 * record is written (q_version 0) or rewritten with that cause. */
typedef struct fix {
    engine_agg id;            /* identity only */
    const engine_agg *shadow; /* NULL or all-zero: delete */
    int64_t live_version;     /* the stored version the snapshot showed; 0: absent */
    int64_t q_version;        /* the record's version; 0: no record */
    long summary;             /* index into rep->aggs, -1 when not kept */
    int over;                 /* shadow over the metric limit: the record only */
    int64_t fields;           /* its drifted fields */
} fix;

/* Writes fixes[0..n) in one atomic batch, fenced on the repair lease and the
 * listener's lease and on each document's version as the snapshot showed it
 * (nothing else writes them while the listener's lease is ours). */
static sl_status write_fixes(engine__run *r, fix *fixes, size_t n, sl_error *err)
{
    sl_status rc = SL_OK;
    store_op ops[2 + 2 * ENGINE__REPAIR_BATCH];
    bson_t docs[ENGINE__REPAIR_BATCH];
    /* Keys are big (100 * 3.3 KB): on the heap. */
    schema_key(*keys)[2] = calloc(ENGINE__REPAIR_BATCH, sizeof *keys);
    char(*qsk)[STORE_KEY_MAX] = calloc(ENGINE__REPAIR_BATCH, sizeof *qsk);
    size_t nops = 0, ndocs = 0, nover = 0;
    char token[STORE_TOKEN_MAX] = "";
    assert(n <= ENGINE__REPAIR_BATCH);
    memset(ops, 0, sizeof ops);
    if (!keys || !qsk) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory writing repairs");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        nover += fixes[i].over;
    if (r->opt.at)
        r->opt.at(r->opt.at_ctx, ENGINE_RECOMPUTE_WRITE, fixes[0].id.tenant);
    /* The listener's token, frozen while its lease is ours: where a record
     * written here sets the aggregate aside. */
    if (nover && (rc = store_consumer_token(r->s, r->consumer, token, err)) == SL_ENOTFOUND) {
        sl_error_clear(err);
        rc = SL_OK;
    }
    if (rc != SL_OK)
        goto out;
    nops = 2; /* ops[0] and ops[1]: the leases, filled in under lease_mu below */
    for (size_t i = 0; i < n; i++) {
        fix *f = &fixes[i];
        if ((rc = engine_agg_keys(&f->id, keys[i][0], keys[i][1], err)) != SL_OK)
            goto out;
        if (f->over) {
            char why[160];
            snprintf(why, sizeof why,
                     "over the metric limit: its assets carry more than %d metrics (found by "
                     "recompute %s)",
                     ENGINE_AGG_METRICS_MAX, r->rep->run_id);
            if ((rc = engine__quarantine_sk(keys[i][0], keys[i][1], qsk[i], err)) != SL_OK)
                goto out;
            bson_init(&docs[ndocs]);
            engine__quarantine_doc(&docs[ndocs], qsk[i], &f->id, keys[i][0], keys[i][1],
                                   r->consumer, ENGINE_QUARANTINE_METRIC_LIMIT, why, token);
            ops[nops++] =
                (store_op){.kind = STORE_OP_PUT,
                           .table = STORE_AGGREGATES,
                           .doc = &docs[ndocs++],
                           .cond = f->q_version ? (store_cond){STORE_COND_VERSION, f->q_version}
                                                : (store_cond){STORE_COND_NOT_EXISTS, 0}};
            continue;
        }
        if (f->shadow && !engine_agg_is_zero(f->shadow)) {
            bson_init(&docs[ndocs]);
            ndocs++;
            if ((rc = engine_agg_encode(f->shadow, &docs[ndocs - 1], err)) != SL_OK)
                goto out;
            ops[nops++] = (store_op){.kind = STORE_OP_PUT,
                                     .table = STORE_AGGREGATES,
                                     .doc = &docs[ndocs - 1],
                                     .cond = f->live_version
                                                 ? (store_cond){STORE_COND_VERSION, f->live_version}
                                                 : (store_cond){STORE_COND_NOT_EXISTS, 0}};
        } else if (f->live_version) {
            ops[nops++] = (store_op){.kind = STORE_OP_DELETE,
                                     .table = STORE_AGGREGATES,
                                     .pk = keys[i][0],
                                     .sk = keys[i][1],
                                     .cond = {STORE_COND_VERSION, f->live_version}};
        }
        if (f->q_version) {
            if ((rc = engine__quarantine_sk(keys[i][0], keys[i][1], qsk[i], err)) != SL_OK)
                goto out;
            ops[nops++] = (store_op){.kind = STORE_OP_DELETE,
                                     .table = STORE_AGGREGATES,
                                     .pk = ENGINE_SYS_PK,
                                     .sk = qsk[i],
                                     .cond = {STORE_COND_VERSION, f->q_version}};
        }
    }
    /* The keeper renews (and so changes the versions of) both leases: not
     * between reading their versions and the write that checks them. */
    pthread_mutex_lock(&r->lease_mu);
    ops[0] = (store_op){.kind = STORE_OP_CHECK,
                        .table = STORE_AGGREGATES,
                        .pk = ENGINE_SYS_PK,
                        .sk = r->lease.sk,
                        .cond = {STORE_COND_VERSION, r->lease.version}};
    ops[1] = (store_op){.kind = STORE_OP_CHECK,
                        .table = STORE_AGGREGATES,
                        .pk = ENGINE_SYS_PK,
                        .sk = r->listener.sk,
                        .cond = {STORE_COND_VERSION, r->listener.version}};
    rc = engine__lease_lost(r, err);
    if (rc == SL_OK)
        rc = store_write_batch(r->s, ops, nops, err);
    if (rc == SL_ECONDITION) {
        char field[sizeof err->field];
        snprintf(field, sizeof field, "%s", err->field);
        sl_error_clear(err);
        if (!strcmp(field, "ops[0]")) {
            r->repair_lost = 1;
            rc = sl_error_set(err, SL_ECONFLICT,
                              "another recompute took the repair lease; stopping this one");
        } else if (!strcmp(field, "ops[1]")) {
            r->listener_lost = 1;
            rc = sl_error_set(err, SL_ECONFLICT,
                              "the listener's lease %s was taken back from this repair; this "
                              "batch was not written",
                              r->listener.name);
        } else
            rc = sl_error_set(err, SL_ECONFLICT,
                              "an aggregate of tenant %s changed while the listener was "
                              "stopped (%s): another writer? nothing of this batch was "
                              "written",
                              fixes[0].id.tenant, field);
    }
    pthread_mutex_unlock(&r->lease_mu);
    if (rc != SL_OK)
        goto out;
    r->rep->repaired_aggregates += (int64_t)(n - nover);
    for (size_t i = 0; i < n; i++) {
        if (fixes[i].over)
            continue;
        r->step_written++;
        r->step_fields += fixes[i].fields;
        if (fixes[i].summary >= 0)
            r->rep->aggs[fixes[i].summary].repaired = 1;
    }
out:
    for (size_t i = 0; i < ndocs; i++)
        bson_destroy(&docs[i]);
    free(keys);
    free(qsk);
    return rc;
}

/* Compares every aggregate g has on either side or in a record; with
 * replace, writes each drifted one as rebuilt (see repair_group for when
 * that is exact), or, over the metric limit, its quarantine record when it
 * has none or one of another cause.  *writes counts the drifted aggregates
 * that need a write (all of them but those over the limit and quarantined
 * for it already). */
static sl_status compare_group(engine__run *r, engine__group_state *g, int replace, int64_t *writes,
                               sl_error *err)
{
    sl_status rc = SL_OK;
    fix *fixes = calloc(ENGINE__REPAIR_BATCH, sizeof *fixes);
    size_t nfix = 0;
    *writes = 0;
    if (!fixes) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory planning repairs");
        goto out;
    }
    engine_aggset_sort(g->shadow);
    size_t nshadow = engine_aggset_count(g->shadow), nlive = engine_aggset_count(g->live);
    /* Three passes: shadow (with its live document and record), live left
     * over, records left over. */
    for (size_t pass = 0; pass < 3; pass++) {
        size_t count = pass == 0 ? nshadow : pass == 1 ? nlive : g->nq;
        for (size_t i = 0; i < count; i++) {
            engine_agg qid;
            const engine_agg *sa = NULL, *id;
            engine_agg *la = NULL;
            engine_quarantine *q = NULL;
            size_t qi = 0;
            if (pass == 0) {
                sa = engine_aggset_at(g->shadow, i);
                la = engine_aggset_find(g->live, sa);
                id = sa;
            } else if (pass == 1) {
                la = engine_aggset_at(g->live, i);
                if (g->info[la->version - 1].compared)
                    continue;
                id = la;
            } else {
                if (g->q_compared[i] ||
                    engine__agg_identity(g->q[i].pk, g->q[i].sk, &qid, NULL) != SL_OK)
                    continue;
                q = &g->q[i];
                qi = i;
                id = &qid;
            }
            if (pass < 2)
                q = find_quarantine(g, id, &qi);
            if (pass == 0 && !la && !q && engine_agg_is_zero(sa))
                continue;
            engine__live_info *li = la ? &g->info[la->version - 1] : NULL;
            if (li)
                li->compared = 1;
            if (q)
                g->q_compared[qi] = 1;
            r->rep->aggregates_checked++;
            size_t summaries = r->rep->naggs;
            int64_t d = engine__compare_agg(r, id, la, li, sa, q, &rc, err);
            if (rc != SL_OK)
                goto out;
            if (!d)
                continue;
            r->rep->drift_aggregates++;
            int over = sa && sa->over_metrics && !engine_agg_is_zero(sa);
            r->rep->over_limit_aggregates += over;
            if (over && q && q->cause == ENGINE_QUARANTINE_METRIC_LIMIT)
                continue; /* quarantined for it already: nothing to write */
            (*writes)++;
            if (!replace)
                continue;
            fix *f = &fixes[nfix++];
            memset(f, 0, sizeof *f);
            engine__agg_copy_identity(&f->id, id);
            f->shadow = sa;
            f->live_version = li ? li->version : 0;
            f->q_version = q ? q->version : 0;
            f->summary = r->rep->naggs > summaries ? (long)summaries : -1;
            f->over = over;
            f->fields = d;
            if (nfix == ENGINE__REPAIR_BATCH) {
                if ((rc = write_fixes(r, fixes, nfix, err)) != SL_OK)
                    goto out;
                nfix = 0;
            }
        }
    }
    if (nfix)
        rc = write_fixes(r, fixes, nfix, err);
out:
    free(fixes);
    return rc;
}

/* Replaces the drifted aggregates of group, exactly.
 *
 * The first look (engine__process_group) compared at the run's snapshot, where the
 * live side is at the consumer's token C; the listener has gone on since,
 * so writing that shadow now could lose what it applied after C.  So: take
 * the listener's lease first.  From then on the listener cannot commit
 * (every commit checks that lease's version in the same transaction), so its
 * token stays at some C' and no aggregate moves.  A snapshot opened after
 * that sees the aggregates at exactly C', and its shadow minus the deltas of
 * (C', H'] is the truth at C'.  Each drifted aggregate is written as that
 * shadow (or deleted), its quarantine record removed in the same write, each
 * write checking both leases and the version the snapshot showed.  Then the
 * lease goes back: the listener, having lost it, has dropped its cache and
 * state, re-reads its quarantine records and the documents, and goes on from
 * C' -- every event up to C' is in the shadow, every later one it applies
 * itself.  The pause is one scan of this tenant's items. */
static sl_status repair_group(engine__run *r, const char *group, sl_error *err)
{
    sl_status rc = SL_OK;
    store *snap = NULL;
    engine_aggset *pending = NULL;
    engine__group_state g;
    engine__cursor items, aggs;
    int gone = 0;
    int64_t writes = 0;
    memset(&g, 0, sizeof g);
    engine__cursor_init(&items, r, NULL, STORE_ITEMS, group, NULL);
    engine__cursor_init(&aggs, r, NULL, STORE_AGGREGATES, group, NULL);
    if ((rc = engine__seize_listener(r, err)) != SL_OK)
        goto out;
    if (r->opt.at) {
        char tenant[ENGINE_NAME_SIZE];
        snprintf(tenant, sizeof tenant, "%.*s", (int)(strlen(group) - 3), group + 2);
        r->opt.at(r->opt.at_ctx, ENGINE_RECOMPUTE_SEIZED, tenant);
    }
    if ((rc = store_snapshot_open(r->s, &snap, err)) != SL_OK ||
        (rc = engine_aggset_new(r->opt.max_aggregates, &pending, err)) != SL_OK)
        goto out;
    engine__aggset_mark_over(pending);
    if ((rc = engine__read_feed_deltas(r, snap, group, pending, &gone, err)) != SL_OK)
        goto out;
    if (gone) {
        rc = sl_error_set(err, SL_EFEEDGONE,
                          "the feed position of consumer %s was pruned during the run: run "
                          "recompute --repair again (without --tenant)",
                          r->consumer);
        goto out;
    }
    items.s = aggs.s = snap;
    if ((rc = build_group(r, snap, group, &items, &aggs, pending, &g, err)) != SL_OK)
        goto out;
    rc = compare_group(r, &g, 1, &writes, err);
out:
    engine__group_free(&g);
    engine__cursor_free(&items);
    engine__cursor_free(&aggs);
    engine_aggset_free(&pending);
    store_close(&snap);
    engine__release_listener(r);
    return rc;
}

/* After a tenant's repair attempt that lost the listener's lease: the
 * batches it wrote stay written (each is atomic and exact at the C' of that
 * attempt), so the report keeps those aggregates -- counted, summed up and
 * listed as repaired -- and drops the rest of the attempt, which the next
 * one finds again (or no longer, when the listener meanwhile made it right).
 * *m moves past what is kept. */
static void keep_written(engine__run *r, report_mark *m)
{
    engine_recompute_report *rep = r->rep;
    size_t na = m->naggs, nr = m->nrows;
    for (size_t i = m->naggs; i < rep->naggs; i++)
        if (rep->aggs[i].repaired)
            rep->aggs[na++] = rep->aggs[i];
    for (size_t i = m->nrows; i < rep->nrows; i++) {
        int kept = 0;
        for (size_t j = m->naggs; !kept && j < na; j++)
            kept = !strcmp(rep->rows[i].sk, rep->aggs[j].sk);
        if (kept)
            rep->rows[nr++] = rep->rows[i];
    }
    mark_restore(r, m);
    rep->naggs = na;
    rep->nrows = nr;
    rep->drift_aggregates += r->step_written;
    rep->repaired_aggregates += r->step_written;
    rep->drift_fields += r->step_fields;
    mark_take(r, m);
}

/* repair_group, begun again from a new seizure and snapshot (so exact as
 * the first attempt) when the listener's lease was taken back from it --
 * by a listener that found it expired: a renewal that waited longer than
 * the lease.  A pause between attempts lets the listener apply what
 * waited meanwhile.  After ENGINE__REPAIR_ATTEMPTS the run fails, naming it. */
static sl_status repair_again(engine__run *r, const char *group, report_mark *m, sl_error *err)
{
    sl_status rc = SL_OK;
    for (int attempt = 1;; attempt++) {
        r->step_written = r->step_fields = 0;
        rc = repair_group(r, group, err);
        pthread_mutex_lock(&r->lease_mu);
        int again = rc == SL_ECONFLICT && r->listener_lost && !r->repair_lost;
        pthread_mutex_unlock(&r->lease_mu);
        if (!again)
            break;
        keep_written(r, m);
        if (attempt == ENGINE__REPAIR_ATTEMPTS) {
            char last[sizeof err->message];
            snprintf(last, sizeof last, "%s", err->message);
            sl_error_clear(err);
            rc = sl_error_set(err, SL_ECONFLICT,
                              "the listener's lease %s was taken back from this repair %d times "
                              "in tenant %.*s (the last: %s); what was written is exact, run "
                              "again for the rest",
                              r->listener.name, attempt, (int)(strlen(group) - 3), group + 2, last);
            break;
        }
        sl_error_clear(err);
        r->rep->repair_retries++;
        int64_t pause = r->opt.lease_ms / 4 < 250 ? r->opt.lease_ms / 4 : 250;
        usleep((useconds_t)(pause * attempt * 1000));
    }
    return rc;
}

/* Rebuilds and compares one tenant group at the run's snapshot, leaving both
 * cursors at the next group; with repair, replaces its drift (in place when
 * the listener's lease is held for the whole run, else by repair_group). */
sl_status engine__process_group(engine__run *r, const char *group, engine__cursor *items,
                                engine__cursor *aggs, sl_error *err)
{
    sl_status rc = SL_OK;
    engine__group_state g;
    report_mark m;
    int64_t writes = 0;
    mark_take(r, &m);
    if ((rc = build_group(r, r->snap, group, items, aggs, r->pending, &g, err)) != SL_OK ||
        (rc = compare_group(r, &g, r->opt.repair && r->listener_for_run, &writes, err)) != SL_OK)
        goto out;
    /* (Drift that needs no write -- over the metric limit and quarantined
     * for it already -- does not stop the listener.) */
    if (r->opt.repair && !r->listener_for_run && writes) {
        /* What the repair finds, under the listener's lease, is what the run reports. */
        engine__group_free(&g);
        mark_restore(r, &m);
        if ((rc = repair_again(r, group, &m, err)) != SL_OK)
            goto out;
    }
    r->rep->tenants++;
    r->progress.tenants_done++;
out:
    engine__group_free(&g);
    return rc;
}
