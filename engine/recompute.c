/* recompute.c -- rebuilds every aggregate from the base documents, compares it
 * with the live aggregates and replaces the drifted ones on request: the run
 * (its leases, the feed events it subtracts, its checkpoint and audit).  One
 * tenant group is built and compared in recompute_group.c and
 * recompute_compare.c. */
#include "engine_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* Consistency: everything is read in one store snapshot.  There the live
 * aggregates reflect the consumer's committed token C and the items the
 * snapshot head H; the shadow (f summed over items) minus the deltas of the
 * feed events in (C, H] describes the same point as the live side.
 *
 * Repair replaces, fenced (see repair_group in recompute_group.c): a tenant
 * with drift is rebuilt a second time in a snapshot taken after the
 * listener's lease was seized, so its token cannot move while the rebuilt
 * aggregates are written.
 *
 * Memory: items are scanned in pk order, so a tenant's documents (pk
 * "T#<t>#...") are contiguous; the shadow holds one tenant at a time, next to
 * the same tenant's live aggregates (scanned in the same order), the pending
 * deltas of the feed and the tenant's quarantine records. */

#define ENGINE__RECOMPUTE_AGGS_DEFAULT 2000000u
#define ENGINE__RECOMPUTE_ROWS_DEFAULT 10000u
#define ENGINE__REPAIR_LEASE           "recompute"
#define ENGINE__REPAIR_LEASE_MS        10000

/* ---------------------------------------------------------------------------
 * Leases, kept by a thread.
 *
 * A repairing run holds its own lease for the whole run, and the listener's
 * while it replaces a tenant's aggregates (repair_group).  They used to be
 * renewed where the run's code happened to pass (between pages, every few
 * hundred documents), and only once a third of their lifetime had gone by:
 * one step that outlasted the rest -- a store call waiting for the
 * database's lock or for a slow disk, a big tenant's comparison, a loaded
 * machine -- let the listener's lease expire, the listener took it back, and
 * the next fenced write failed the whole run ("was taken back from this
 * repair", seen under `ctest -j2`).  So a keeper thread renews both every
 * third of their lifetime, whatever the run is doing, and a run that dies
 * stops renewing them (they expire).  r->lease_mu orders its renewals, which
 * change the leases' versions, with the run's writes fenced on those
 * versions (write_fixes, the consumer reset).  A lease taken from us anyway
 * (a renewal that itself waited longer than the lease) is recorded for the
 * run's thread, which stops at its next check; for the listener's lease,
 * the tenant's repair begins again (engine__process_group).
 * ------------------------------------------------------------------------- */

/* The deadline ms from now on CLOCK_MONOTONIC (the keeper's condition). */
static struct timespec mono_deadline(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return ts;
}

/* Renews the leases held (r->lease_mu held).  A lease taken from us is
 * recorded (repair_lost, listener_lost); 0 when a renewal failed for the
 * store's sake (the keeper tries again sooner: the lease is ours until
 * someone takes it, expired or not). */
static int renew_held(engine__run *r)
{
    int ok = 1;
    engine__lease *ls[2] = {&r->lease, &r->listener};
    for (int i = 0; i < 2; i++) {
        sl_error e;
        sl_error_clear(&e);
        sl_status rc = ls[i]->held ? engine__lease_renew(r->s, ls[i], &e) : SL_OK;
        if (rc == SL_ECONDITION && i == 0)
            r->repair_lost = 1;
        else if (rc == SL_ECONDITION)
            r->listener_lost = 1;
        else if (rc != SL_OK) {
            ok = 0;
            snprintf(r->keeper_note, sizeof r->keeper_note, "%.199s", e.message);
        }
    }
    return ok;
}

static void *keeper_main(void *arg)
{
    engine__run *r = arg;
    int64_t period = r->opt.lease_ms / 3;
    int64_t next = engine__mono_ms() + period;
    pthread_mutex_lock(&r->lease_mu);
    while (!r->keeper_stop) {
        int64_t now = engine__mono_ms();
        if (now < next) {
            struct timespec ts = mono_deadline(next - now);
            pthread_cond_timedwait(&r->lease_cv, &r->lease_mu, &ts);
            continue;
        }
        next = engine__mono_ms() + (renew_held(r) ? period : period / 4 + 1);
    }
    pthread_mutex_unlock(&r->lease_mu);
    return NULL;
}

/* Starts the keeper (the repair lease is held).  Stopped by keeper_stop(). */
static sl_status keeper_start(engine__run *r, sl_error *err)
{
    sl_status rc = SL_OK;
    int e = pthread_create(&r->keeper, NULL, keeper_main, r);
    if (e != 0)
        rc = sl_error_set(err, SL_EINTERNAL, "cannot start the thread that renews the leases: %s",
                          strerror(e));
    else
        r->keeper_running = 1;
    return rc;
}

static void keeper_stop(engine__run *r)
{
    if (r->keeper_running) {
        pthread_mutex_lock(&r->lease_mu);
        r->keeper_stop = 1;
        pthread_cond_broadcast(&r->lease_cv);
        pthread_mutex_unlock(&r->lease_mu);
        pthread_join(r->keeper, NULL);
        r->keeper_running = 0;
    }
}

sl_status engine__lease_lost(engine__run *r, sl_error *err)
{
    sl_status rc = SL_OK;
    if (r->repair_lost)
        rc = sl_error_set(err, SL_ECONFLICT,
                          "another recompute took the repair lease; stopping this one");
    else if (r->listener_lost)
        rc = sl_error_set(err, SL_ECONFLICT,
                          "the listener's lease %s was taken back from this repair (it went "
                          "unrenewed for its %lld ms lifetime%s%s)",
                          r->listener.name, (long long)r->opt.lease_ms,
                          r->keeper_note[0] ? "; the last renewal failed: " : "", r->keeper_note);
    return rc;
}

sl_status engine__check_leases(engine__run *r, sl_error *err)
{
    sl_status rc = SL_OK;
    if (r && r->keeper_running) {
        pthread_mutex_lock(&r->lease_mu);
        rc = engine__lease_lost(r, err);
        pthread_mutex_unlock(&r->lease_mu);
    }
    return rc;
}

sl_status engine__seize_listener(engine__run *r, sl_error *err)
{
    pthread_mutex_lock(&r->lease_mu);
    r->listener_lost = 0;
    r->keeper_note[0] = '\0';
    sl_status rc = engine__lease_seize(r->s, &r->listener, err);
    pthread_mutex_unlock(&r->lease_mu);
    return rc;
}

void engine__release_listener(engine__run *r)
{
    pthread_mutex_lock(&r->lease_mu);
    engine__lease_release(r->s, &r->listener);
    pthread_mutex_unlock(&r->lease_mu);
}

/* ---------------------------------------------------------------------------
 * Feed events in (C, H].
 * ------------------------------------------------------------------------- */

/* Adds the deltas of one event (its new image +1, its old image -1) to out.
 * A malformed image contributes nothing, as in the listener.  Any other
 * failure -- the set full (more aggregates than --max-aggregates), memory --
 * fails, naming the event and the cause: a delta left out would leave the
 * shadow away from C, so the run would report drift that is not there (and
 * a repair write it). */
static sl_status add_event_deltas(engine__run *r, engine_aggset *out, const store_event *ev,
                                  sl_error *err)
{
    sl_status rc = SL_OK;
    for (int side = 0; side < 2 && rc == SL_OK; side++) {
        sl_error e;
        sl_error_clear(&e);
        rc = engine_aggset_apply_image(out, side ? ev->old_image : ev->new_image, side ? -1 : +1,
                                       &e);
        if (rc == SL_EINVAL)
            rc = SL_OK; /* malformed: contributes nothing */
        else if (rc == SL_ETOOLARGE)
            rc = sl_error_set(err, rc,
                              "the changes consumer %s has not applied yet touch more "
                              "aggregates than recompute holds (--max-aggregates %zu), at %s / "
                              "%s: %s; the comparison cannot be exact, so nothing was compared "
                              "from here; run again once the listener has caught up, or with a "
                              "larger --max-aggregates",
                              r->consumer, r->opt.max_aggregates, ev->pk, ev->sk, e.message);
        else if (rc != SL_OK)
            rc = sl_error_set(err, rc,
                              "reading the change of %s / %s that consumer %s has not applied "
                              "yet: %s",
                              ev->pk, ev->sk, r->consumer, e.message);
    }
    return rc;
}

/* Adds the deltas of the events after the consumer's token up to the head of
 * snap (its C and H), of the events of scope ("T#<t>#", or "" for all), to
 * *out.  *gone = 1 when the consumer's position was pruned (nothing read).
 * Fails (add_event_deltas) rather than leave out a delta. */
sl_status engine__read_feed_deltas(engine__run *r, store *snap, const char *scope,
                                   engine_aggset *out, int *gone, sl_error *err)
{
    sl_status rc;
    store_feed *f = NULL;
    store_feed_stats fs;
    *gone = 0;
    if ((rc = store_feed_stats_get(snap, r->consumer, &fs, err)) != SL_OK)
        goto out;
    rc = store_feed_open(snap, r->consumer, &f, err);
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
            (rc = engine__check_leases(r, err)) != SL_OK)
            goto out;
        if (n == 0)
            break;
        for (size_t i = 0; i < n && !at_head; i++) {
            char g[SCHEMA_KEY_MAX];
            if ((!scope[0] || (engine__tenant_group(ev[i].pk, g) && !strcmp(g, scope))) &&
                (rc = add_event_deltas(r, out, &ev[i], err)) != SL_OK)
                goto out;
            /* Events past the snapshot's head are not part of this point. */
            at_head = !strcmp(ev[i].token, fs.head_token);
        }
    }
out:
    store_feed_close(&f);
    return rc;
}

static int group_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void groups_free(engine__run *r)
{
    for (size_t i = 0; i < r->ngroups; i++)
        free(r->groups[i]);
    free(r->groups);
    r->groups = NULL;
    r->ngroups = r->next_group = 0;
}

typedef struct group_list {
    char **g;
    size_t n, cap;
    int failed;
} group_list;

static void group_list_add(group_list *l, const char *tenant)
{
    char g[SCHEMA_KEY_MAX];
    if (l->failed)
        return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **grown = realloc(l->g, cap * sizeof *grown);
        if (!grown) {
            l->failed = 1;
            return;
        }
        l->g = grown;
        l->cap = cap;
    }
    snprintf(g, sizeof g, "T#%s#", tenant);
    if (!(l->g[l->n] = strdup(g)))
        l->failed = 1;
    else
        l->n++;
}

typedef struct scope_ctx {
    engine__run *r;
    group_list *list;
} scope_ctx;

static int quarantine_group(void *ctx, const engine_quarantine *q)
{
    scope_ctx *c = ctx;
    engine_agg id;
    if (engine__agg_identity(q->pk, q->sk, &id, NULL) == SL_OK &&
        (!c->r->scope_group[0] || !strncmp(q->pk, c->r->scope_group, strlen(c->r->scope_group))))
        group_list_add(c->list, id.tenant);
    return !c->list->failed;
}

/* Reads the events in (C, H] into r->pending and lists the tenant groups
 * they, and the quarantine records, touch in r->groups (sorted, distinct;
 * freed by groups_free()): tenants that may have no item and no aggregate
 * document left, whose aggregates must still be compared.  *gone = 1 when
 * the consumer's position was pruned (nothing read). */
static sl_status read_pending(engine__run *r, int *gone, sl_error *err)
{
    sl_status rc;
    group_list list = {0};
    scope_ctx sc = {r, &list};
    engine_aggset_clear(r->pending);
    groups_free(r);
    if ((rc = engine__read_feed_deltas(r, r->snap, r->scope_group, r->pending, gone, err)) !=
            SL_OK ||
        *gone)
        goto out;
    for (size_t i = 0; i < engine_aggset_count(r->pending); i++)
        group_list_add(&list, engine_aggset_at(r->pending, i)->tenant);
    if ((rc = engine__quarantine_each(r->snap, NULL, NULL, quarantine_group, &sc, err)) != SL_OK)
        goto out;
    if (list.failed) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory listing pending tenants");
        goto out;
    }
    if (list.n)
        qsort(list.g, list.n, sizeof *list.g, group_cmp);
    size_t w = 0;
    for (size_t i = 0; i < list.n; i++) {
        if (w && !strcmp(list.g[w - 1], list.g[i])) {
            free(list.g[i]);
            continue;
        }
        list.g[w++] = list.g[i];
    }
    r->groups = list.g;
    r->ngroups = w;
    list.g = NULL;
    list.n = 0;
out:
    for (size_t i = 0; i < list.n; i++)
        free(list.g[i]);
    free(list.g);
    return rc;
}

/* ---------------------------------------------------------------------------
 * The checkpoint and the audit.
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
    BSON_APPEND_INT64(d, "over_limit_aggregates", rep->over_limit_aggregates);
    BSON_APPEND_INT64(d, "repair_retries", rep->repair_retries);
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

static sl_status save_checkpoint(engine__run *r, const char *items_token, const char *aggs_token,
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
static int load_checkpoint(engine__run *r, char *items_token, char *aggs_token)
{
    bson_t *d = NULL;
    engine_recompute_report *rep = r->rep;
    int found =
        store_get(r->s, STORE_AGGREGATES, ENGINE_SYS_PK, r->checkpoint_sk, &d, NULL) == SL_OK;
    if (!found)
        goto out;
    get_str(d, "run_id", rep->run_id, sizeof rep->run_id);
    get_str(d, "last_group", r->last_group, sizeof r->last_group);
    get_str(d, "items_token", items_token, STORE_PAGE_TOKEN_MAX);
    get_str(d, "aggregates_token", aggs_token, STORE_PAGE_TOKEN_MAX);
    rep->started_ms = get_int(d, "started_ms");
    rep->tenants = get_int(d, "tenants");
    rep->items_scanned = get_int(d, "items_scanned");
    rep->malformed = get_int(d, "malformed");
    rep->aggregates_checked = get_int(d, "aggregates_checked");
    rep->drift_fields = get_int(d, "drift_fields");
    rep->drift_aggregates = get_int(d, "drift_aggregates");
    rep->repaired_aggregates = get_int(d, "repaired_aggregates");
    rep->over_limit_aggregates = get_int(d, "over_limit_aggregates");
    rep->repair_retries = get_int(d, "repair_retries");
    bson_iter_t it;
    if (bson_iter_init_find(&it, d, "consumer_reset") && BSON_ITER_HOLDS_BOOL(&it))
        rep->consumer_reset = bson_iter_bool(&it);
    bson_destroy(d);
out:
    return found;
}

static sl_status write_audit(engine__run *r, sl_error *err)
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
static int64_t estimate_assets(engine__run *r)
{
    engine__cursor c;
    const store_doc *row;
    bson_t view;
    int readable;
    sl_status rc = SL_OK;
    int64_t total = 0;
    char prefix[SCHEMA_KEY_MAX];
    snprintf(prefix, sizeof prefix, "%s", r->scope_group[0] ? r->scope_group : "T#");
    engine__cursor_init(&c, r, r->snap, STORE_AGGREGATES, prefix, NULL);
    while (engine__cursor_peek(&c, &row, &view, &readable, &rc, NULL)) {
        bson_iter_t it;
        if (readable && bson_iter_init_find(&it, &view, SCHEMA_F_TYPE) &&
            BSON_ITER_HOLDS_UTF8(&it) && !strcmp(bson_iter_utf8(&it, NULL), SCHEMA_TYPE_BRAND_AGG))
            total += get_int(&view, "count");
        engine__cursor_next(&c);
    }
    engine__cursor_free(&c);
    return total;
}

static sl_status compare_all(engine__run *r, const char *items_token, const char *aggs_token,
                             sl_error *err)
{
    sl_status rc = SL_OK;
    engine__cursor items, aggs;
    char prefix[SCHEMA_KEY_MAX];
    snprintf(prefix, sizeof prefix, "%s", r->scope_group[0] ? r->scope_group : "T#");
    engine__cursor_init(&items, r, r->snap, STORE_ITEMS, prefix, items_token);
    engine__cursor_init(&aggs, r, r->snap, STORE_AGGREGATES, prefix, aggs_token);
    for (;;) {
        char gi[SCHEMA_KEY_MAX], ga[SCHEMA_KEY_MAX], gp[SCHEMA_KEY_MAX] = "";
        sl_error e;
        sl_error_clear(&e);
        rc = engine__cursor_group(&items, r->last_group, gi, &e);
        if (rc == SL_EINVAL && items_token[0] && items.docs == 0) {
            /* The saved page token is not accepted here: scan from the start
             * and pass over the finished tenants instead. */
            engine__cursor_free(&items);
            engine__cursor_init(&items, r, r->snap, STORE_ITEMS, prefix, NULL);
            items_token = "";
            sl_error_clear(&e);
            rc = engine__cursor_group(&items, r->last_group, gi, &e);
        }
        if (rc == SL_OK) {
            rc = engine__cursor_group(&aggs, r->last_group, ga, &e);
            if (rc == SL_EINVAL && aggs_token[0] && aggs.docs == 0) {
                engine__cursor_free(&aggs);
                engine__cursor_init(&aggs, r, r->snap, STORE_AGGREGATES, prefix, NULL);
                aggs_token = "";
                sl_error_clear(&e);
                rc = engine__cursor_group(&aggs, r->last_group, ga, &e);
            }
        }
        if (rc != SL_OK) {
            sl_error_set(err, e.status, "%s", e.message);
            goto out;
        }
        while (r->next_group < r->ngroups && r->last_group[0] &&
               strcmp(r->groups[r->next_group], r->last_group) <= 0)
            r->next_group++;
        if (r->next_group < r->ngroups)
            snprintf(gp, sizeof gp, "%s", r->groups[r->next_group]);
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
        if ((rc = engine__process_group(r, group, &items, &aggs, err)) != SL_OK)
            goto out;
        snprintf(r->last_group, sizeof r->last_group, "%s", group);
        if ((rc = save_checkpoint(r, items.page_token, aggs.page_token, err)) != SL_OK ||
            (rc = engine__check_leases(r, err)) != SL_OK ||
            (rc = engine__progress_tick(r, group, err)) != SL_OK)
            goto out;
    }
out:
    engine__cursor_free(&items);
    engine__cursor_free(&aggs);
    return rc;
}

void engine_recompute_report_free(engine_recompute_report *r)
{
    if (r) {
        free(r->rows);
        free(r->aggs);
        memset(r, 0, sizeof *r);
    }
}

sl_status engine_recompute(store *s, const engine_recompute_options *opt,
                           engine_recompute_report *out, sl_error *err)
{
    sl_status rc = SL_OK;
    engine__run r;
    engine_recompute_report rep;
    char items_token[STORE_PAGE_TOKEN_MAX] = "", aggs_token[STORE_PAGE_TOKEN_MAX] = "";
    pthread_condattr_t ca;
    memset(&r, 0, sizeof r);
    memset(&rep, 0, sizeof rep);
    pthread_mutex_init(&r.lease_mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the keeper's period ignores clock jumps */
    pthread_cond_init(&r.lease_cv, &ca);
    pthread_condattr_destroy(&ca);
    r.s = s;
    r.rep = &rep;
    r.opt = opt ? *opt : (engine_recompute_options){0};
    if (!r.opt.max_aggregates)
        r.opt.max_aggregates = ENGINE__RECOMPUTE_AGGS_DEFAULT;
    if (!r.opt.max_rows)
        r.opt.max_rows = ENGINE__RECOMPUTE_ROWS_DEFAULT;
    if (!r.opt.lease_ms)
        r.opt.lease_ms = ENGINE__REPAIR_LEASE_MS;
    if (r.opt.lease_ms < 50 || r.opt.lease_ms > 600000) {
        rc = sl_error_set_at(err, SL_EINVAL, "lease_ms", -1,
                             "lease of %lld ms is outside 50..600000", (long long)r.opt.lease_ms);
        goto out;
    }
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
    engine__aggset_mark_over(r.pending); /* the deltas may pass the metric limit: engine.h */
    if (r.opt.repair) {
        char holder[128], lholder[128];
        engine__holder_default(holder, sizeof holder);
        engine__lease_init(&r.lease, ENGINE__REPAIR_LEASE, holder, r.opt.lease_ms);
        snprintf(lholder, sizeof lholder, "recompute:%.100s", holder);
        engine__lease_init(&r.listener, r.consumer, lholder, r.opt.lease_ms);
        if ((rc = engine__lease_acquire(s, &r.lease, err)) != SL_OK) {
            sl_error_prefix(err, "another repairing recompute runs");
            goto out;
        }
        if ((rc = keeper_start(&r, err)) != SL_OK)
            goto out;
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
            /* The listener cannot apply anything now: hold its lease for the
             * whole run, move the consumer to the head, and replace every
             * drifted aggregate with what a snapshot taken after shows. */
            store_close(&r.snap);
            if ((rc = engine__seize_listener(&r, err)) != SL_OK)
                goto out;
            r.listener_for_run = 1;
            pthread_mutex_lock(&r.lease_mu); /* the version the fence checks stays put */
            store_op fence = {.kind = STORE_OP_CHECK,
                              .table = STORE_AGGREGATES,
                              .pk = ENGINE_SYS_PK,
                              .sk = r.listener.sk,
                              .cond = {STORE_COND_VERSION, r.listener.version}};
            rc = engine__lease_lost(&r, err);
            if (rc == SL_OK)
                rc = store_consumer_reset(s, r.consumer, &fence, 1, err);
            pthread_mutex_unlock(&r.lease_mu);
            if (rc != SL_OK)
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
    keeper_stop(&r);
    engine__lease_release(s, &r.listener);
    if (r.opt.repair)
        engine__lease_release(s, &r.lease);
    pthread_cond_destroy(&r.lease_cv);
    pthread_mutex_destroy(&r.lease_mu);
    engine_aggset_free(&r.pending);
    groups_free(&r);
    engine_recompute_report_free(&rep);
    return rc;
}
