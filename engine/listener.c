/* listener.c -- the change-feed listener thread: holds the lease, reads events
 * from its committed token, merges their deltas per aggregate and commits them
 * with its new token (fenced by the lease) in one store_consumer_commit.  An
 * aggregate it cannot apply deltas to is quarantined (engine.h) in that same
 * commit, and the feed goes on for every other aggregate. */
#include "engine_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Batching: when idle a read waits up to wait_ms for the first event; while
 * events are pending, reads do not wait, and the batch commits as soon as a
 * read comes back short (the feed is drained) or the batch is full.  So a
 * lone event is applied right after it arrives, and a flood is applied in
 * large commits.  Live aggregates are cached between batches with their
 * versions (which fence the writes), so a steady stream re-reads nothing.
 *
 * The feed is opened with a filter that skips frame documents (nearly all of
 * the items writes; no aggregate reads them), applied by the store where the
 * events are.  Skipped events still move the feed's position: each commit
 * records the position, not the last event's token, and when only skipped
 * events came, the position alone is committed once ENGINE__ADVANCE_SKIPPED
 * of them piled up or ENGINE__ADVANCE_MS passed, so the store can prune them. */

#define ENGINE__PENDING_SOFT      20000u  /* aggregates in one batch before it commits */
#define ENGINE__CACHE_MAX         100000u /* live aggregates kept between batches */
#define ENGINE__FEEDGONE_RETRY_MS 2000
#define ENGINE__BACKOFF_MAX_MS    2000
#define ENGINE__CONFLICT_RETRIES  20
#define ENGINE__ADVANCE_SKIPPED   4096u /* skipped events that make a position-only commit */
#define ENGINE__ADVANCE_MS        1000  /* or the time after which one is made */
/* Quarantined aggregates the listener keeps in memory (~1 KB each).  Past it
 * a new quarantine cannot be recorded and the batch that needs it waits,
 * retried, as any batch that cannot be applied: run recompute --repair. */
#define ENGINE__QUARANTINE_MAX 10000u

struct engine_listener {
    store *s;
    char consumer[STORE_CONSUMER_MAX];
    char holder[128];
    int64_t renew_ms;
    size_t batch_max;
    int wait_ms;
    engine_log_fn log;
    void *log_ctx;
    engine_point_fn at; /* test hook (engine.h); NULL in production */
    void *at_ctx;

    pthread_t thread;
    pthread_mutex_t mu; /* guards stop and stats */
    pthread_cond_t cv;  /* signalled on stop */
    int stop;
    engine_listener_stats stats;

    /* Owned by the thread. */
    engine__lease lease;
    int64_t last_renew_mono;
    store_feed *feed;
    char prev_token[STORE_TOKEN_MAX]; /* the consumer's committed token */
    char last_token[STORE_TOKEN_MAX]; /* token after the last pending event */
    engine_aggset *pending;           /* merged deltas of the pending events */
    engine_aggset *cache;             /* live aggregates; version 0 = known absent */
    /* Identities of the quarantined aggregates: loaded from the records when
     * the feed opens (after the lease was taken; only this holder adds
     * records while it holds the lease, and only a repair that took the
     * lease away removes them), grown by this listener's commits. */
    engine_aggset *quarantined;
    int64_t pending_quarantine_skips; /* aggregate deltas of the batch dropped */
    size_t npending;
    int64_t *pending_commit_ms; /* batch_max commit times, for the lag histogram */
    int64_t pending_skipped;
    int64_t rate_mono, rate_applied;
    int64_t filtered_committed; /* events the feed's filter skipped, as of the last commit */
    int64_t advance_mono;       /* when the position was last committed */
};

/* ---------------------------------------------------------------------------
 * Small helpers.
 * ------------------------------------------------------------------------- */
static int stopping(engine_listener *l)
{
    pthread_mutex_lock(&l->mu);
    int s = l->stop;
    pthread_mutex_unlock(&l->mu);
    return s;
}

/* Sleeps up to ms, waking at once on stop. */
static void nap(engine_listener *l, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        if (pthread_cond_timedwait(&l->cv, &l->mu, &ts) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&l->mu);
}

static void note_error(engine_listener *l, const sl_error *e, const char *what)
{
    engine__log(l->log, l->log_ctx, "error", "%s: %s (%s)", what, e->message,
                sl_status_name(e->status));
    pthread_mutex_lock(&l->mu);
    l->stats.errors++;
    snprintf(l->stats.last_error, sizeof l->stats.last_error, "%.60s: %.190s", what, e->message);
    pthread_mutex_unlock(&l->mu);
}

static void set_quarantined(engine_listener *l)
{
    pthread_mutex_lock(&l->mu);
    l->stats.quarantined = (int64_t)engine_aggset_count(l->quarantined);
    pthread_mutex_unlock(&l->mu);
}

static void set_flags(engine_listener *l, int holding, int feed_gone)
{
    pthread_mutex_lock(&l->mu);
    l->stats.holding_lease = holding;
    l->stats.feed_gone = feed_gone;
    pthread_mutex_unlock(&l->mu);
}

/* Forgets everything read but not committed; the next open re-reads it. */
static void drop_state(engine_listener *l)
{
    store_feed_close(&l->feed);
    engine_aggset_clear(l->pending);
    engine_aggset_clear(l->cache);
    l->npending = 0;
    l->pending_skipped = 0;
    l->pending_quarantine_skips = 0;
}

/* ---------------------------------------------------------------------------
 * The cache of live aggregates.
 * ------------------------------------------------------------------------- */

/* The live state of d's aggregate into *live (version 0 when absent), from
 * the cache or the store.  *live (initialized by the caller) owns its metrics
 * afterwards: the caller frees them with engine_agg_free().  SL_ECORRUPT (err
 * says why) when the stored document cannot be read as that aggregate
 * (engine_agg_read): the caller quarantines it. */
static sl_status live_get(engine_listener *l, const engine_agg *d, engine_agg *live, sl_error *err)
{
    sl_status rc = SL_OK;
    bson_t *doc = NULL;
    schema_key pk, sk;
    engine_agg *c = engine_aggset_find(l->cache, d);
    if (c) {
        rc = engine_agg_copy(live, c, err);
        goto out;
    }
    if ((rc = engine_agg_keys(d, pk, sk, err)) != SL_OK)
        goto out;
    rc = store_get(l->s, STORE_AGGREGATES, pk, sk, &doc, err);
    if (rc == SL_ENOTFOUND) {
        sl_error_clear(err);
        engine_agg_free(live);
        engine__agg_copy_identity(live, d);
        live->version = 0;
        rc = SL_OK;
    } else if (rc == SL_OK) {
        rc = engine_agg_read(doc, pk, sk, live, err);
    }
out:
    if (doc)
        bson_destroy(doc);
    return rc;
}

/* Remembers the state written (version 0: deleted / absent). */
static void cache_put(engine_listener *l, const engine_agg *a)
{
    if (engine_aggset_count(l->cache) >= ENGINE__CACHE_MAX)
        engine_aggset_clear(l->cache);
    engine_agg *c = engine_aggset_find(l->cache, a);
    if (!c) {
        engine_agg empty;
        engine_agg_init(&empty);
        engine__agg_copy_identity(&empty, a);
        /* The cache is an optimization: without room, the entry is simply not kept. */
        if (engine_aggset_add(l->cache, &empty, +1, NULL) == SL_OK)
            c = engine_aggset_find(l->cache, a);
    }
    if (c && engine_agg_copy(c, a, NULL) != SL_OK)
        engine_aggset_clear(l->cache); /* never keep a stale entry */
}

/* ---------------------------------------------------------------------------
 * One commit.
 * ------------------------------------------------------------------------- */

/* The store's before_commit hook: the test hook at ENGINE_POINT_COMMIT. */
static void at_commit(void *ctx)
{
    engine_listener *l = ctx;
    l->at(l->at_ctx, ENGINE_POINT_COMMIT, l->prev_token, l->last_token);
}

typedef struct planned {
    engine_agg next;               /* the state to write */
    int kind;                      /* 0 nothing, 1 put, 2 delete, 3 quarantine */
    engine_quarantine_cause cause; /* kind 3 */
    char why[300];                 /* kind 3: the reason recorded */
} planned;

/* 1 when a failure to apply deltas to one aggregate is the aggregate's own
 * (its document, or what the deltas would make of it), not the store's:
 * that aggregate is quarantined and the batch goes on. */
static int aggregate_failure(sl_status rc)
{
    return rc == SL_ECORRUPT || rc == SL_EINVAL || rc == SL_ETOOLARGE;
}

/* Builds the writes for the pending deltas and commits them with the token.
 * Deltas to a quarantined aggregate are dropped (counted); an aggregate that
 * cannot take its deltas (its document unreadable, or the sum impossible:
 * engine_agg_read, engine_agg_check) is quarantined by a record written with
 * the token instead of the aggregate.  SL_ECONDITION: a version, a record,
 * the lease or the token moved (the caller tells which).  On failure nothing
 * is stored and the pending deltas are kept.  The plan, ops and documents
 * are allocated and freed here. */
static sl_status commit_once(engine_listener *l, sl_error *err)
{
    sl_status rc = SL_OK;
    size_t n = engine_aggset_count(l->pending);
    planned *plan = calloc(n ? n : 1, sizeof *plan);
    store_op *ops = calloc(n + 1, sizeof *ops);
    /* bson_t wants 128-byte alignment, more than calloc promises. */
    bson_t *docs = aligned_alloc(BSON_ALIGNOF(bson_t), (n ? n : 1) * sizeof *docs);
    char(*keys)[2][SCHEMA_KEY_MAX] = calloc(n ? n : 1, sizeof *keys);
    size_t nops = 0, ndocs = 0, nquarantine = 0;
    int64_t skips = 0;
    if (!plan || !ops || !docs || !keys) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory planning a commit of %zu aggregates", n);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const engine_agg *d = engine_aggset_at(l->pending, i);
        engine_agg_init(&plan[i].next);
        if (engine_agg_is_zero(d))
            continue; /* e.g. a rescore undone within the batch */
        if (engine_aggset_find(l->quarantined, d)) {
            skips++; /* recompute --repair rebuilds it from the items, these deltas included */
            continue;
        }
        if ((rc = engine_agg_keys(d, keys[i][0], keys[i][1], err)) != SL_OK)
            goto out;
        sl_error e;
        sl_error_clear(&e);
        sl_status arc = live_get(l, d, &plan[i].next, &e);
        int64_t version = plan[i].next.version;
        /* Over the metric limit (engine.h): only adding can find it. */
        if (arc == SL_OK && (arc = engine_agg_add(&plan[i].next, d, +1, &e)) == SL_ETOOLARGE)
            plan[i].cause = ENGINE_QUARANTINE_METRIC_LIMIT;
        if (arc == SL_OK && !engine_agg_is_zero(&plan[i].next) &&
            (arc = engine_agg_check(&plan[i].next, &e)) != SL_OK)
            sl_error_prefix(&e, "it had drifted: adding its deltas would leave it impossible");
        store_op *op = &ops[nops];
        op->table = STORE_AGGREGATES;
        if (arc != SL_OK && !aggregate_failure(arc)) {
            rc = sl_error_set(err, arc, "%s", e.message); /* the store's: retried */
            goto out;
        } else if (arc != SL_OK) {
            if (engine_aggset_count(l->quarantined) + nquarantine >= ENGINE__QUARANTINE_MAX) {
                rc = sl_error_set(err, SL_ETOOLARGE,
                                  "%s / %s cannot be applied (%s) and %u aggregates are "
                                  "quarantined already: run `sightline recompute --repair`",
                                  keys[i][0], keys[i][1], e.message, ENGINE__QUARANTINE_MAX);
                goto out;
            }
            /* Set it aside: a record, committed with the token, instead of the aggregate. */
            plan[i].kind = 3;
            snprintf(plan[i].why, sizeof plan[i].why, "%.299s", e.message);
            char qsk[STORE_KEY_MAX];
            if ((rc = engine__quarantine_sk(keys[i][0], keys[i][1], qsk, err)) != SL_OK)
                goto out;
            bson_init(&docs[ndocs]);
            engine__quarantine_doc(&docs[ndocs], qsk, d, keys[i][0], keys[i][1], l->consumer,
                                   plan[i].cause, plan[i].why, l->prev_token);
            op->kind = STORE_OP_PUT;
            op->doc = &docs[ndocs++];
            op->cond = (store_cond){STORE_COND_NOT_EXISTS, 0};
            nquarantine++;
        } else if (engine_agg_is_zero(&plan[i].next)) {
            if (version == 0)
                continue; /* absent and stays absent */
            plan[i].kind = 2;
            op->kind = STORE_OP_DELETE;
            op->pk = keys[i][0];
            op->sk = keys[i][1];
            op->cond = (store_cond){STORE_COND_VERSION, version};
        } else {
            plan[i].kind = 1;
            bson_init(&docs[ndocs]);
            ndocs++;
            if ((rc = engine_agg_encode(&plan[i].next, &docs[ndocs - 1], err)) != SL_OK)
                goto out;
            op->kind = STORE_OP_PUT;
            op->doc = &docs[ndocs - 1];
            op->cond = version ? (store_cond){STORE_COND_VERSION, version}
                               : (store_cond){STORE_COND_NOT_EXISTS, 0};
        }
        nops++;
    }
    /* The fence: nothing commits unless we still hold the lease. */
    ops[nops++] = (store_op){.kind = STORE_OP_CHECK,
                             .table = STORE_AGGREGATES,
                             .pk = ENGINE_SYS_PK,
                             .sk = l->lease.sk,
                             .cond = {STORE_COND_VERSION, l->lease.version}};
    const store_commit_options copt = {.before_commit = at_commit, .ctx = l};
    rc = store_consumer_commit_opt(l->s, l->consumer, l->prev_token, l->last_token, ops, nops,
                                   l->at ? &copt : NULL, err);
    if (rc != SL_OK)
        goto out;
    if (l->at)
        l->at(l->at_ctx, ENGINE_POINT_COMMITTED, l->prev_token, l->last_token);
    /* Committed: remember what the store now holds. */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!plan[i].kind)
            continue;
        if (plan[i].kind == 1) {
            plan[i].next.version = ops[k].result.version;
        } else { /* deleted or quarantined: remember it as known-absent */
            engine_agg_free(&plan[i].next);
            engine__agg_copy_identity(&plan[i].next, engine_aggset_at(l->pending, i));
        }
        if (plan[i].kind == 3) {
            /* The set has room (checked above); a failure here is memory, and the
             * record is reloaded when the feed reopens. */
            if (engine_aggset_add(l->quarantined, &plan[i].next, +1, NULL) != SL_OK)
                store_feed_close(&l->feed);
            char once[80] = "";
            if (plan[i].cause == ENGINE_QUARANTINE_METRIC_LIMIT)
                snprintf(once, sizeof once, ", once its assets carry at most %d metrics",
                         ENGINE_AGG_METRICS_MAX);
            engine__log(l->log, l->log_ctx, "error",
                        "aggregate %s / %s quarantined: %s; its deltas are skipped (every "
                        "other aggregate goes on) until `sightline recompute --repair` rebuilds "
                        "it%s",
                        keys[i][0], keys[i][1], plan[i].why, once);
        } else {
            cache_put(l, &plan[i].next);
        }
        k++;
    }
    l->pending_quarantine_skips = skips;
    if (nquarantine) {
        pthread_mutex_lock(&l->mu);
        l->stats.quarantined_total += (int64_t)nquarantine;
        pthread_mutex_unlock(&l->mu);
        set_quarantined(l);
    }
out:
    if (plan)
        for (size_t i = 0; i < n; i++)
            engine_agg_free(&plan[i].next);
    for (size_t i = 0; i < ndocs; i++)
        bson_destroy(&docs[i]);
    free(plan);
    free(ops);
    free(docs);
    free(keys);
    return rc;
}

/* Why did a commit fail its conditions?  1: the lease or the token is no
 * longer ours (stand down); 0: an aggregate's version moved (retry). */
static int lost_ownership(engine_listener *l)
{
    sl_error e;
    sl_error_clear(&e);
    bson_t *doc = NULL;
    bson_iter_t it;
    int64_t v = -1;
    char tok[STORE_TOKEN_MAX] = "";
    /* A lease that is gone or unreadable counts as lost: never write on a guess. */
    if (store_get(l->s, STORE_AGGREGATES, ENGINE_SYS_PK, l->lease.sk, &doc, &e) == SL_OK &&
        bson_iter_init_find(&it, doc, SCHEMA_F_VERSION) && BSON_ITER_HOLDS_INT64(&it))
        v = bson_iter_int64(&it);
    int lost = v != l->lease.version;
    if (lost) {
        l->lease.held = 0;
        engine__log(l->log, l->log_ctx, "warning", "lost lease %s: standing by", l->lease.name);
        goto out;
    }
    sl_error_clear(&e);
    sl_status rc = store_consumer_token(l->s, l->consumer, tok, &e);
    lost = rc != SL_OK && rc != SL_ENOTFOUND;
    if (!lost && strcmp(tok, l->prev_token) != 0) {
        engine__log(l->log, l->log_ctx, "warning",
                    "consumer %s was moved by someone else; re-reading from its token",
                    l->consumer);
        lost = 1;
    }
out:
    if (doc)
        bson_destroy(doc);
    return lost;
}

/* Counts a committed batch and forgets it. */
static void batch_done(engine_listener *l)
{
    int64_t now = engine__now_ms();
    pthread_mutex_lock(&l->mu);
    l->stats.events_applied += (int64_t)l->npending;
    l->stats.events_skipped += l->pending_skipped;
    l->stats.quarantine_skips += l->pending_quarantine_skips;
    l->stats.commits++;
    for (size_t i = 0; i < l->npending; i++) {
        int64_t lag = now - l->pending_commit_ms[i];
        if (lag < 0)
            lag = 0;
        l->stats.lag_hist[lag >= ENGINE_LAG_BUCKETS - 1 ? ENGINE_LAG_BUCKETS - 1 : lag]++;
        l->stats.lag_sum_ms += lag;
    }
    pthread_mutex_unlock(&l->mu);
    memcpy(l->prev_token, l->last_token, sizeof l->prev_token);
    engine_aggset_clear(l->pending);
    l->npending = 0;
    l->pending_skipped = 0;
    l->pending_quarantine_skips = 0;
}

/* Commits the pending batch (or, with no event pending, the position the
 * filter moved), retrying version conflicts and store errors.  Returns 1 when
 * committed (or nothing was to commit), 0 when the state was dropped (lease
 * lost, stop requested, or the batch could not be applied). */
static int commit_pending(engine_listener *l)
{
    int64_t backoff = 50;
    int conflicts = 0, dropped = 0;
    int done = !l->npending && !strcmp(l->last_token, l->prev_token);
    while (!done && !dropped) {
        sl_error e;
        sl_error_clear(&e);
        sl_status rc = commit_once(l, &e);
        if (rc == SL_OK) {
            batch_done(l);
            done = 1;
        } else if (rc == SL_ECONDITION) {
            engine_aggset_clear(l->cache);
            if (lost_ownership(l) || ++conflicts > ENGINE__CONFLICT_RETRIES) {
                drop_state(l);
                dropped = 1;
            } else { /* re-read the moved aggregates and try again */
                pthread_mutex_lock(&l->mu);
                l->stats.conflicts++;
                pthread_mutex_unlock(&l->mu);
            }
        } else if (rc == SL_ETOOLARGE || rc == SL_EINVAL || rc == SL_ECORRUPT || stopping(l)) {
            /* Cannot apply as it stands: forget the batch, re-read it after a pause. */
            note_error(l, &e, "commit");
            drop_state(l);
            nap(l, ENGINE__BACKOFF_MAX_MS);
            dropped = 1;
        } else { /* the store is busy or unreachable: wait, keep the lease, retry */
            note_error(l, &e, "commit");
            engine_aggset_clear(l->cache);
            nap(l, backoff);
            backoff = backoff * 2 > ENGINE__BACKOFF_MAX_MS ? ENGINE__BACKOFF_MAX_MS : backoff * 2;
            if (engine__mono_ms() - l->last_renew_mono >= l->renew_ms) {
                sl_error_clear(&e);
                if (engine__lease_renew(l->s, &l->lease, &e) == SL_OK)
                    l->last_renew_mono = engine__mono_ms();
            }
        }
    }
    return done;
}

/* ---------------------------------------------------------------------------
 * The loop.
 * ------------------------------------------------------------------------- */

/* Adds both images of one event to set (the new one +1, the old one -1).  A
 * malformed image contributes nothing (*skipped is set), here and in
 * recompute.  On any other failure set is left as it was: a new image
 * already added is taken out again (its aggregates and metrics exist by
 * then, so that cannot fail). */
static sl_status apply_event(engine_listener *l, engine_aggset *set, const store_event *ev,
                             int *skipped, sl_error *err)
{
    sl_status rc = SL_OK;
    int added_new = 0;
    for (int side = 0; side < 2 && rc == SL_OK; side++) {
        const bson_t *img = side ? ev->old_image : ev->new_image;
        sl_error_clear(err);
        rc = engine_aggset_apply_image(set, img, side ? -1 : +1, err);
        if (rc == SL_EINVAL) {
            *skipped = 1;
            int64_t total = l->stats.events_skipped + l->pending_skipped;
            if ((total & (total + 1)) == 0) /* log the 1st, 2nd, 4th, 8th, ... */
                engine__log(l->log, l->log_ctx, "warning", "skipping a malformed image: %s",
                            err->message);
            sl_error_clear(err);
            rc = SL_OK;
        } else if (rc == SL_OK && side == 0) {
            added_new = 1;
        }
    }
    if (rc != SL_OK && added_new)
        (void)engine_aggset_apply_image(set, ev->new_image, -1, NULL);
    return rc;
}

/* Adds one event's delta to the pending batch.  0 when it cannot be applied
 * (the state was dropped; the event will be read again). */
static int take_event(engine_listener *l, const store_event *ev)
{
    sl_error e;
    int skipped = 0, ok = 1;
    sl_status rc = apply_event(l, l->pending, ev, &skipped, &e);
    if (rc == SL_ETOOLARGE && l->npending) {
        /* The batch's deltas to one aggregate would hold more metrics than an
         * aggregate may (ENGINE_AGG_METRICS_MAX): commit the events before
         * this one, then take it alone.  One event always fits (two images of
         * at most 1 + ENGINE_ASSET_SALIENCY_MAX metrics each), and an
         * aggregate that cannot take its delta is quarantined by the commit.
         * Dropping the batch instead read the same events again and refused
         * them again, forever: the listener stopped for every tenant. */
        ok = commit_pending(l);
        skipped = 0;
        if (ok)
            rc = apply_event(l, l->pending, ev, &skipped, &e);
    }
    if (ok && rc != SL_OK) {
        note_error(l, &e, "applying an event");
        drop_state(l);
        nap(l, ENGINE__BACKOFF_MAX_MS);
        ok = 0;
    }
    if (ok) {
        l->pending_skipped += skipped;
        l->pending_commit_ms[l->npending++] = ev->commit_ms;
        memcpy(l->last_token, ev->token, sizeof l->last_token);
    }
    return ok;
}

static int load_one(void *ctx, const engine_quarantine *q)
{
    engine_listener *l = ctx;
    engine_agg id;
    /* A record whose key names no aggregate stands for nothing the listener applies. */
    if (engine__agg_identity(q->pk, q->sk, &id, NULL) == SL_OK &&
        engine_aggset_add(l->quarantined, &id, +1, NULL) != SL_OK)
        return 0;
    return 1;
}

/* Loads the identities of the quarantined aggregates (see struct
 * engine_listener).  0 when they could not all be read. */
static int load_quarantined(engine_listener *l)
{
    sl_error e;
    sl_error_clear(&e);
    engine_aggset_clear(l->quarantined);
    sl_status rc = engine__quarantine_each(l->s, NULL, NULL, load_one, l, &e);
    if (rc == SL_OK && engine_aggset_count(l->quarantined) >= ENGINE__QUARANTINE_MAX)
        rc = sl_error_set(&e, SL_ETOOLARGE,
                          "%u or more aggregates are quarantined: run `sightline recompute "
                          "--repair`",
                          ENGINE__QUARANTINE_MAX);
    if (rc != SL_OK)
        note_error(l, &e, "reading the quarantined aggregates");
    set_quarantined(l);
    return rc == SL_OK;
}

/* Opens the feed at the committed token.  0 when it could not. */
static int open_feed(engine_listener *l)
{
    sl_error e;
    sl_error_clear(&e);
    int ok = 0;
    static const char *const skip[] = {SCHEMA_SK_FRAME_PREFIX};
    const store_feed_filter filter = {.skip = skip, .nskip = 1};
    sl_status rc = store_feed_open_filtered(l->s, l->consumer, &filter, &l->feed, &e);
    if (rc == SL_EFEEDGONE) {
        pthread_mutex_lock(&l->mu);
        int was = l->stats.feed_gone;
        l->stats.feed_gone = 1;
        pthread_mutex_unlock(&l->mu);
        if (!was)
            engine__log(l->log, l->log_ctx, "error",
                        "feed position of consumer %s was pruned: aggregates cannot be kept "
                        "exact; run `sightline recompute --repair` (it rebuilds them and "
                        "resets the consumer)",
                        l->consumer);
        nap(l, ENGINE__FEEDGONE_RETRY_MS);
        goto out;
    }
    if (rc != SL_OK) {
        note_error(l, &e, "opening the change feed");
        nap(l, ENGINE__BACKOFF_MAX_MS);
        goto out;
    }
    sl_error_clear(&e);
    rc = store_consumer_token(l->s, l->consumer, l->prev_token, &e);
    if (rc == SL_ENOTFOUND) {
        l->prev_token[0] = '\0';
    } else if (rc != SL_OK) {
        note_error(l, &e, "reading the consumer token");
        store_feed_close(&l->feed);
        nap(l, ENGINE__BACKOFF_MAX_MS);
        goto out;
    }
    if (!load_quarantined(l)) {
        store_feed_close(&l->feed);
        nap(l, ENGINE__BACKOFF_MAX_MS);
        goto out;
    }
    memcpy(l->last_token, l->prev_token, sizeof l->last_token);
    l->filtered_committed = 0;
    l->advance_mono = engine__mono_ms();
    pthread_mutex_lock(&l->mu);
    if (l->stats.feed_gone)
        engine__log(l->log, l->log_ctx, "info", "feed of consumer %s is readable again",
                    l->consumer);
    l->stats.feed_gone = 0;
    pthread_mutex_unlock(&l->mu);
    ok = 1;
out:
    return ok;
}

static void update_rate(engine_listener *l)
{
    int64_t now = engine__mono_ms();
    if (now - l->rate_mono >= 1000) {
        pthread_mutex_lock(&l->mu);
        l->stats.applied_per_s = (double)(l->stats.events_applied - l->rate_applied) * 1000.0 /
                                 (double)(now - l->rate_mono);
        l->rate_applied = l->stats.events_applied;
        pthread_mutex_unlock(&l->mu);
        l->rate_mono = now;
    }
}

/* Holds (or waits for) the lease.  0 when not holding it now. */
static int keep_lease(engine_listener *l)
{
    sl_error e;
    sl_error_clear(&e);
    int holding = l->lease.held;
    if (!holding) {
        sl_status rc = engine__lease_acquire(l->s, &l->lease, &e);
        if (rc != SL_OK) {
            set_flags(l, 0, 0);
            if (rc != SL_EBUSY)
                note_error(l, &e, "taking the listener lease");
            int64_t poll = l->lease.ttl_ms / 4;
            nap(l, poll < 20 ? 20 : poll > 1000 ? 1000 : poll);
        } else {
            engine__log(l->log, l->log_ctx, "info", "holding lease %s as %s", l->lease.name,
                        l->lease.holder);
            l->last_renew_mono = engine__mono_ms();
            pthread_mutex_lock(&l->mu);
            l->stats.holding_lease = 1;
            pthread_mutex_unlock(&l->mu);
            holding = 1;
        }
    } else if (engine__mono_ms() - l->last_renew_mono >= l->renew_ms) {
        sl_status rc = engine__lease_renew(l->s, &l->lease, &e);
        if (rc == SL_OK) {
            l->last_renew_mono = engine__mono_ms();
        } else if (rc == SL_ECONDITION) {
            engine__log(l->log, l->log_ctx, "warning", "lost lease %s: standing by", l->lease.name);
            drop_state(l);
            set_flags(l, 0, 0);
            holding = 0;
        } else {
            note_error(l, &e, "renewing the listener lease"); /* commits stay fenced */
        }
    }
    return holding;
}

static void *listener_main(void *arg)
{
    engine_listener *l = arg;
    while (!stopping(l)) {
        update_rate(l);
        if (!keep_lease(l))
            continue;
        if (!l->feed && !open_feed(l))
            continue;
        size_t room = l->batch_max - l->npending;
        const store_event *ev = NULL;
        size_t n = 0;
        sl_error e;
        sl_error_clear(&e);
        sl_status rc = store_feed_read(l->feed, room, l->npending ? 0 : l->wait_ms, &ev, &n, &e);
        if (rc != SL_OK) {
            if (rc != SL_EFEEDGONE)
                note_error(l, &e, "reading the change feed");
            drop_state(l); /* reopen from the committed token (or report the gap) */
            if (rc != SL_EFEEDGONE)
                nap(l, ENGINE__BACKOFF_MAX_MS / 4);
            continue;
        }
        int ok = 1;
        for (size_t i = 0; ok && i < n; i++) {
            /* A batch that grew large commits before it takes more. */
            if (engine_aggset_count(l->pending) >= ENGINE__PENDING_SOFT)
                ok = commit_pending(l);
            ok = ok && take_event(l, &ev[i]);
        }
        store_feed_pos pos;
        if (!ok || store_feed_position(l->feed, &pos, NULL) != SL_OK)
            continue;
        /* Past the events read and the ones the filter skipped around them. */
        memcpy(l->last_token, pos.token, sizeof l->last_token);
        if (n && l->at)
            l->at(l->at_ctx, ENGINE_POINT_READ, l->prev_token, l->last_token);
        int64_t now = engine__mono_ms();
        int advance = !l->npending && strcmp(l->last_token, l->prev_token) &&
                      (pos.skipped - l->filtered_committed >= ENGINE__ADVANCE_SKIPPED ||
                       now - l->advance_mono >= ENGINE__ADVANCE_MS);
        if ((l->npending && (n < room || l->npending >= l->batch_max)) || advance) {
            if (commit_pending(l)) {
                l->filtered_committed = pos.skipped;
                l->advance_mono = now;
            }
        }
    }
    /* Stopping: keep what was read if it commits at once, then step down. */
    if (l->feed && l->lease.held && l->npending) {
        sl_error e;
        sl_error_clear(&e);
        if (commit_once(l, &e) == SL_OK)
            batch_done(l);
    }
    drop_state(l);
    engine__lease_release(l->s, &l->lease);
    set_flags(l, 0, 0);
    return NULL;
}

/* ---------------------------------------------------------------------------
 * The handle.
 * ------------------------------------------------------------------------- */
static void listener_free(engine_listener *l)
{
    if (l) {
        engine_aggset_free(&l->pending);
        engine_aggset_free(&l->cache);
        engine_aggset_free(&l->quarantined);
        free(l->pending_commit_ms);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
        free(l);
    }
}

/* Allocates the handle, its sets and thread; engine_listener_stop() frees them. */
sl_status engine_listener_start(store *s, const engine_listener_options *opt, engine_listener **out,
                                sl_error *err)
{
    sl_status rc = SL_OK;
    engine_listener_options o = opt ? *opt : (engine_listener_options){0};
    engine_listener *l = calloc(1, sizeof *l);
    if (!l) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory starting the listener");
        goto out;
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    const char *consumer = o.consumer && o.consumer[0] ? o.consumer : ENGINE_CONSUMER;
    if (strlen(consumer) >= sizeof l->consumer) {
        rc = sl_error_set_at(err, SL_EINVAL, "consumer", -1, "consumer name longer than %u bytes",
                             STORE_CONSUMER_MAX - 1);
        goto out;
    }
    if (o.lease_ms == 0)
        o.lease_ms = 10000;
    if (o.lease_ms < 50 || o.lease_ms > 600000) {
        rc = sl_error_set_at(err, SL_EINVAL, "lease_ms", -1,
                             "lease of %lld ms is outside 50..600000", (long long)o.lease_ms);
        goto out;
    }
    if (o.renew_ms <= 0 || o.renew_ms >= o.lease_ms)
        o.renew_ms = o.lease_ms / 3;
    if (o.batch_max == 0)
        o.batch_max = 16384;
    if (o.batch_max > 65536) {
        rc = sl_error_set_at(err, SL_EINVAL, "batch_max", -1, "batch of %zu events is over 65536",
                             o.batch_max);
        goto out;
    }
    if (o.wait_ms <= 0)
        o.wait_ms = 50;
    if (o.wait_ms > 1000)
        o.wait_ms = 1000;
    snprintf(l->consumer, sizeof l->consumer, "%s", consumer);
    if (o.holder && o.holder[0])
        snprintf(l->holder, sizeof l->holder, "%s", o.holder);
    else
        engine__holder_default(l->holder, sizeof l->holder);
    l->s = s;
    l->renew_ms = o.renew_ms;
    l->batch_max = o.batch_max;
    l->wait_ms = o.wait_ms;
    l->log = o.log;
    l->log_ctx = o.log_ctx;
    l->at = o.at;
    l->at_ctx = o.at_ctx;
    engine__lease_init(&l->lease, l->consumer, l->holder, o.lease_ms);
    l->pending_commit_ms = calloc(o.batch_max, sizeof *l->pending_commit_ms);
    if (!l->pending_commit_ms) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory starting the listener");
        goto out;
    }
    /* Room for a full soft batch plus the largest single event (a summary
     * with the most tools, old and new image). */
    if ((rc = engine_aggset_new(ENGINE__PENDING_SOFT + 2 * ENGINE_SUMMARY_TOOLS_MAX + 16,
                                &l->pending, err)) != SL_OK ||
        (rc = engine_aggset_new(ENGINE__CACHE_MAX + 1, &l->cache, err)) != SL_OK ||
        (rc = engine_aggset_new(ENGINE__QUARANTINE_MAX + 1, &l->quarantined, err)) != SL_OK)
        goto out;
    l->rate_mono = engine__mono_ms();
    int e = pthread_create(&l->thread, NULL, listener_main, l);
    if (e != 0) {
        rc = sl_error_set(err, SL_EINTERNAL, "cannot start the listener thread: %s", strerror(e));
        goto out;
    }
    *out = l;
    l = NULL;
out:
    listener_free(l);
    return rc;
}

void engine_listener_stop(engine_listener **lp)
{
    engine_listener *l = lp ? *lp : NULL;
    if (l) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
        listener_free(l);
        *lp = NULL;
    }
}

sl_status engine_listener_stats_get(engine_listener *l, engine_listener_stats *out, sl_error *err)
{
    store_feed_stats fs;
    sl_status rc = store_feed_stats_get(l->s, l->consumer, &fs, err);
    if (rc == SL_OK) {
        pthread_mutex_lock(&l->mu);
        *out = l->stats;
        pthread_mutex_unlock(&l->mu);
        out->lag_events = fs.behind_events;
        out->lag_ms = fs.behind_ms;
    }
    return rc;
}
