/* recompute.c -- rebuilds every aggregate from the base documents, compares it
 * field by field with the live aggregates (read against the keys the store
 * keeps, so a damaged document is named as such), replaces the drifted ones
 * on request, and keeps a checkpoint per tenant and an audit per run. */
#include "engine_int.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* Consistency: everything is read in one store snapshot.  There the live
 * aggregates reflect the consumer's committed token C and the items the
 * snapshot head H; the shadow (f summed over items) minus the deltas of the
 * feed events in (C, H] describes the same point as the live side.
 *
 * Repair replaces, fenced (see repair_group): a tenant with drift is rebuilt
 * a second time in a snapshot taken after the listener's lease was seized,
 * so its token cannot move while the rebuilt aggregates are written.
 *
 * Memory: items are scanned in pk order, so a tenant's documents (pk
 * "T#<t>#...") are contiguous; the shadow holds one tenant at a time, next to
 * the same tenant's live aggregates (scanned in the same order), the pending
 * deltas of the feed and the tenant's quarantine records. */

#define ENGINE__RECOMPUTE_AGGS_DEFAULT 2000000u
#define ENGINE__RECOMPUTE_ROWS_DEFAULT 10000u
#define ENGINE__SCAN_PAGE              500u
#define ENGINE__REPAIR_LEASE           "recompute"
#define ENGINE__REPAIR_LEASE_MS        10000
#define ENGINE__REPAIR_BATCH           100u /* aggregates replaced by one atomic write */

/* ---------------------------------------------------------------------------
 * A scan cursor that walks pages and remembers the token of its page.
 * ------------------------------------------------------------------------- */
typedef struct run run;
static sl_status renew_leases(run *r, sl_error *err);

typedef struct cursor {
    run *owner; /* renews its leases between pages */
    store *s;
    store_table table;
    char prefix[SCHEMA_KEY_MAX];
    store_page page;
    size_t i;
    int started, done;
    char page_token[STORE_PAGE_TOKEN_MAX]; /* the token that fetched the current page */
    char next_token[STORE_PAGE_TOKEN_MAX];
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

/* Makes the current row available: *row (the key and version the store
 * keeps, valid until the cursor leaves its page), *view and *readable (0
 * when its bytes are not BSON).  0 at the end (or on error, with *rc set). */
static int cursor_peek(cursor *c, const store_doc **row, bson_t *view, int *readable, sl_status *rc,
                       sl_error *err)
{
    while (!c->done && (!c->started || c->i >= c->page.count)) {
        if (c->started && !c->page.next_token) {
            c->done = 1;
            break;
        }
        if (c->started)
            snprintf(c->next_token, sizeof c->next_token, "%s", c->page.next_token);
        store_page_free(&c->page);
        if ((*rc = renew_leases(c->owner, err)) != SL_OK) {
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

static void cursor_next(cursor *c)
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
static sl_status cursor_group(cursor *c, const char *after, char *group, sl_error *err)
{
    sl_status rc = SL_OK;
    const store_doc *row;
    bson_t view;
    int readable, found = 0;
    while (!found && cursor_peek(c, &row, &view, &readable, &rc, err)) {
        row_group(row, group);
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
    char **groups;          /* tenant groups of the pending deltas and of quarantine records */
    size_t ngroups, next_group;
    size_t cap_aggs;        /* of rep->aggs */
    engine__lease lease;    /* held while repairing */
    engine__lease listener; /* the consumer's lease, seized while replacing */
    int listener_for_run;   /* seized before r->snap was opened: replace in the first pass */
    int64_t lease_renew_mono;
    engine_recompute_progress progress;
    char progress_tenant[ENGINE_NAME_SIZE];
};

/* The report's counters and list lengths, to take back a first look at a
 * tenant that is then rebuilt under the listener's lease. */
typedef struct report_mark {
    engine_recompute_report counters;
    size_t nrows, naggs;
} report_mark;

static void mark_take(const run *r, report_mark *m)
{
    m->counters = *r->rep;
    m->nrows = r->rep->nrows;
    m->naggs = r->rep->naggs;
}

static void mark_restore(run *r, const report_mark *m)
{
    engine_recompute_report *rep = r->rep;
    rep->items_scanned = m->counters.items_scanned;
    rep->malformed = m->counters.malformed;
    rep->aggregates_checked = m->counters.aggregates_checked;
    rep->drift_fields = m->counters.drift_fields;
    rep->drift_aggregates = m->counters.drift_aggregates;
    rep->repaired_aggregates = m->counters.repaired_aggregates;
    rep->nrows = m->nrows;
    rep->naggs = m->naggs;
}

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

/* A summary under construction: parts separated by "; ", cut with "..." when
 * full. */
typedef struct sbuf {
    char s[ENGINE_DRIFT_SUMMARY_MAX];
    size_t len;
} sbuf;

static void sb_part(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_part(sbuf *b, const char *fmt, ...)
{
    char part[ENGINE_DRIFT_SUMMARY_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(part, sizeof part, fmt, ap);
    va_end(ap);
    size_t room = sizeof b->s - b->len;
    if (room > 4) {
        int n = snprintf(b->s + b->len, room, "%s%s", b->len ? "; " : "", part);
        b->len = n < 0 ? b->len : (size_t)n >= room ? sizeof b->s - 1 : b->len + (size_t)n;
        if (b->len == sizeof b->s - 1)
            memcpy(b->s + sizeof b->s - 4, "...", 4);
    }
}

/* Records one drifted aggregate's summary (the count goes on past the
 * entries kept, as for rows). */
static sl_status add_summary(run *r, const char *tenant, const char *sk, int64_t fields,
                             const sbuf *b, sl_error *err)
{
    sl_status rc = SL_OK;
    engine_recompute_report *rep = r->rep;
    if (rep->naggs >= r->opt.max_rows)
        goto out;
    if (rep->naggs == r->cap_aggs) {
        size_t cap = r->cap_aggs ? r->cap_aggs * 2 : 16;
        engine_drift_agg *grown = realloc(rep->aggs, cap * sizeof *grown);
        if (!grown) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory listing drifted aggregates");
            goto out;
        }
        rep->aggs = grown;
        r->cap_aggs = cap;
    }
    engine_drift_agg *a = &rep->aggs[rep->naggs++];
    memset(a, 0, sizeof *a);
    snprintf(a->tenant, sizeof a->tenant, "%s", tenant);
    snprintf(a->sk, sizeof a->sk, "%s", sk);
    snprintf(a->summary, sizeof a->summary, "%s", b->s);
    a->fields = fields;
out:
    return rc;
}

static void fmt_i64(int64_t v, char *out)
{
    snprintf(out, ENGINE_DRIFT_VALUE_MAX, "%lld", (long long)v);
}

/* ---------------------------------------------------------------------------
 * One tenant's state: the shadow, the live documents as read, the
 * quarantine records.
 * ------------------------------------------------------------------------- */
typedef enum live_state {
    LIVE_OK = 0,    /* the layout holds (values may still drift) */
    LIVE_FIELDS,    /* fields missing, mistyped, extra, negative, inconsistent, stale */
    LIVE_FOREIGN,   /* another document's bytes */
    LIVE_UNREADABLE /* not BSON */
} live_state;

typedef struct live_info {
    live_state state;
    engine__problems problems;
    int64_t version; /* the stored version (store_doc), for the repair's condition */
    uint32_t bytes;
    int compared;
} live_info;

typedef struct group_state {
    engine_aggset *shadow, *live;
    live_info *info; /* info[i] for the live aggregate whose version field is i + 1 */
    size_t ninfo, cap_info;
    engine_quarantine *q; /* this tenant's records, in key order */
    size_t nq, cap_q;
    char *q_compared;
} group_state;

static void group_free(group_state *g)
{
    engine_aggset_free(&g->shadow);
    engine_aggset_free(&g->live);
    free(g->info);
    free(g->q);
    free(g->q_compared);
    memset(g, 0, sizeof *g);
}

/* Why a field (or the metric or histogram it belongs to) could not be read
 * as a number, from the problems: NULL when its value is what it says. */
static const char *unread_why(const live_info *li, const char *field)
{
    const char *why = NULL;
    for (size_t i = 0; li && !why && i < li->problems.n; i++) {
        const char *f = li->problems.field[i], *w = li->problems.why[i];
        size_t fl = strlen(f);
        int value_unknown = w == engine__why_missing || w == engine__why_type ||
                            w == engine__why_duplicate || w == engine__why_decode;
        /* "metrics.x" covers its fields; "metrics.x.hist" its bins; sumsq_hi/_lo the sumsq. */
        int covers = !strcmp(f, field) ||
                     (!strncmp(field, f, fl) && (field[fl] == '.' || field[fl] == '[')) ||
                     (!strncmp(f, field, strlen(field)) && !strcmp(f + strlen(field), "_hi")) ||
                     (!strncmp(f, field, strlen(field)) && !strcmp(f + strlen(field), "_lo"));
        if (covers && value_unknown)
            why = w;
    }
    return why;
}

typedef struct cmp_ctx {
    run *r;
    const engine_agg *id;
    const live_info *li;
    const char *sk;
    sbuf *sb;
} cmp_ctx;

/* One differing field as the summary tells it: "live 3" or the reason it
 * could not be read ("missing"), and the recomputed value. */
typedef struct diff {
    char field[ENGINE_METRIC_NAME_MAX + 32];
    char live[ENGINE_DRIFT_VALUE_MAX + 8];
    char recomputed[ENGINE_DRIFT_VALUE_MAX];
} diff;

/* One field given as text: a row when live and recomputed differ (or the
 * live value could not be read), described in *d.  1 when it differs. */
static int cmp_text(cmp_ctx *c, const char *field, const char *live, const char *recomputed,
                    diff *d)
{
    const char *why = unread_why(c->li, field);
    if (!why && !strcmp(live, recomputed))
        return 0;
    add_row(c->r, c->id->tenant, c->sk, field, why ? why : live, recomputed);
    if (d) {
        snprintf(d->field, sizeof d->field, "%s", field);
        snprintf(d->live, sizeof d->live, "%s%s", why ? "" : "live ", why ? why : live);
        snprintf(d->recomputed, sizeof d->recomputed, "%s", recomputed);
    }
    return 1;
}

static int cmp_i64(cmp_ctx *c, const char *field, int64_t live, int64_t shadow, diff *d)
{
    char a[ENGINE_DRIFT_VALUE_MAX], b[ENGINE_DRIFT_VALUE_MAX];
    fmt_i64(live, a);
    fmt_i64(shadow, b);
    return cmp_text(c, field, a, b, d);
}

/* A scalar of the aggregate itself (count, a tool counter): its own part of
 * the summary. */
static void cmp_top(cmp_ctx *c, const char *field, int64_t live, int64_t shadow)
{
    diff d;
    if (cmp_i64(c, field, live, shadow, &d))
        sb_part(c->sb, "%s %s recomputed %s", d.field, d.live, d.recomputed);
}

/* One metric present on either side (the other may be the zero metric):
 * rows for each field and bin, one part of the summary. */
static void cmp_metric(cmp_ctx *c, const char *name, const engine_metric *lm,
                       const engine_metric *sm, int live_has, int shadow_has)
{
    char field[ENGINE_METRIC_NAME_MAX + 32], parts[96] = "";
    char a[ENGINE_DRIFT_VALUE_MAX], b[ENGINE_DRIFT_VALUE_MAX];
    diff d, one;
    int nscalar = 0, bins = 0;
    size_t plen = 0;
    static const char *const names[3] = {"n", "sum", "sumsq"};
    for (int k = 0; k < 3; k++) {
        snprintf(field, sizeof field, "metrics.%s.%s", name, names[k]);
        if (k < 2) {
            fmt_i64(k ? lm->sum : lm->n, a);
            fmt_i64(k ? sm->sum : sm->n, b);
        } else {
            engine__i128_format(lm->sumsq, a, sizeof a);
            engine__i128_format(sm->sumsq, b, sizeof b);
        }
        if (cmp_text(c, field, a, b, &d)) {
            plen += (size_t)snprintf(parts + plen, sizeof parts - plen, "%s%s", plen ? ", " : "",
                                     names[k]);
            one = d;
            nscalar++;
        }
    }
    snprintf(field, sizeof field, "metrics.%s.hist", name);
    const char *hist_why = unread_why(c->li, field);
    if (hist_why) { /* one row, not a hundred for bins it never had */
        cmp_text(c, field, "", "", NULL);
        snprintf(parts + plen, sizeof parts - plen, "%shist (%s)", plen ? ", " : "", hist_why);
        bins = 1;
    }
    for (int bin = 0; !hist_why && bin < ENGINE_HIST_BINS; bin++) {
        snprintf(field, sizeof field, "metrics.%s.hist[%d]", name, bin);
        bins += cmp_i64(c, field, lm->hist[bin], sm->hist[bin], NULL);
    }
    if (bins && !hist_why)
        snprintf(parts + plen, sizeof parts - plen, "%shist (%d bin%s)", plen ? ", " : "", bins,
                 bins == 1 ? "" : "s");
    if (!nscalar && !bins)
        return;
    if (!live_has || !shadow_has)
        sb_part(c->sb, "metrics.%s only %s (n %lld)", name, live_has ? "live" : "recomputed",
                (long long)(live_has ? lm->n : sm->n));
    else if (nscalar == 1 && !bins)
        sb_part(c->sb, "%s %s recomputed %s", one.field, one.live, one.recomputed);
    else
        sb_part(c->sb, "metrics.%s: %s differ", name, parts);
}

/* 1 for a problem of a value that reads fine but is impossible. */
static int value_problem(const char *why)
{
    return why == engine__why_negative || why == engine__why_inconsistent;
}

static int row_exists(const run *r, size_t from, const char *field)
{
    int found = 0;
    for (size_t i = from; !found && i < r->rep->nrows; i++)
        found = !strcmp(r->rep->rows[i].field, field);
    return found;
}

/* Compares one aggregate: live (NULL when absent) as read (li), with the
 * shadow (NULL when nothing contributes) and its quarantine record (NULL
 * when none).  Adds rows and a summary; returns the number of drifted fields
 * (SL_ENOMEM aside, which *rc reports). */
static int64_t compare_agg(run *r, const engine_agg *id, const engine_agg *live,
                           const live_info *li, const engine_agg *shadow,
                           const engine_quarantine *q, sl_status *rc, sl_error *err)
{
    static const engine_metric zero_metric;
    engine_agg empty;
    engine_agg_init(&empty);
    const engine_agg *L = live ? live : &empty, *S = shadow ? shadow : &empty;
    schema_key pk, sk;
    /* The summary: what is wrong with the document, then the values. */
    sbuf sb = {.len = 0}, values = {.len = 0};
    sb.s[0] = values.s[0] = '\0';
    if (engine_agg_keys(id, pk, sk, NULL) != SL_OK)
        snprintf(sk, sizeof sk, "?");
    int64_t before = r->rep->drift_fields;
    size_t first_row = r->rep->nrows;
    int shadow_exists = shadow && !engine_agg_is_zero(shadow);
    const char *exists = shadow_exists ? "present" : "absent";
    cmp_ctx c = {r, id, live ? li : NULL, sk, &values};
    if (q) {
        char since[25] = "an unknown time";
        if (q->since_ms > 0)
            schema_time_format(q->since_ms, since);
        add_row(r, id->tenant, sk, "(quarantine)", "quarantined", "");
        /* Its reason only when the document does not say it below. */
        if (!live || li->state == LIVE_OK)
            sb_part(&sb, "quarantined by the listener since %s: %s", since, q->reason);
        else
            sb_part(&sb, "quarantined by the listener since %s", since);
    }
    if (live && li->state == LIVE_UNREADABLE) {
        /* Nothing of it can be compared: it is replaced as a whole. */
        add_row(r, id->tenant, sk, "(document)", "not BSON", exists);
        sb_part(&sb, "document is not BSON (%u bytes), recomputed %s", li->bytes, exists);
    } else if (live && li->state == LIVE_FOREIGN) {
        add_row(r, id->tenant, sk, "(document)", "another document", exists);
        sb_part(&sb, "document holds %s, recomputed %s", li->problems.foreign, exists);
    } else {
        if (id->kind == ENGINE_AGG_TOOL) {
            cmp_top(&c, "surgeries", L->surgeries, S->surgeries);
            cmp_top(&c, "surgeries_opened", L->surgeries_opened, S->surgeries_opened);
            cmp_top(&c, "surgeries_used", L->surgeries_used, S->surgeries_used);
            cmp_top(&c, "units_opened", L->units_opened, S->units_opened);
            cmp_top(&c, "units_used", L->units_used, S->units_used);
            cmp_top(&c, "waste_cents", L->waste_cents, S->waste_cents);
        } else {
            cmp_top(&c, "count", L->count, S->count);
            /* Metrics are sorted by name on both sides: walk them together. */
            size_t i = 0, j = 0;
            while (i < L->nmetrics || j < S->nmetrics) {
                int d = i >= L->nmetrics   ? 1
                        : j >= S->nmetrics ? -1
                                           : strcmp(L->metrics[i].name, S->metrics[j].name);
                const engine_metric *lm = d <= 0 ? &L->metrics[i] : &zero_metric;
                const engine_metric *sm = d >= 0 ? &S->metrics[j] : &zero_metric;
                cmp_metric(&c, d <= 0 ? lm->name : sm->name, lm, sm, d <= 0, d >= 0);
                i += d <= 0;
                j += d >= 0;
            }
        }
        /* Problems no value row names (an extra or duplicated field, say): a
         * row each, listed first.  A negative or inconsistent value, or a
         * stale index field (gsi*), counts only when nothing else drifted:
         * it follows from the values, so their drift explains it already (a
         * wrong n makes the bins disagree with it, though they are right),
         * and the replacement rewrites it. */
        int64_t value_drift = r->rep->drift_fields - before;
        char fields[ENGINE_DRIFT_SUMMARY_MAX] = "", stale[128] = "";
        size_t flen = 0, slen = 0;
        for (size_t p = 0; live && p < li->problems.n; p++) {
            const char *f = li->problems.field[p], *why = li->problems.why[p];
            int index = engine__index_problem(f);
            if (((index || value_problem(why)) && value_drift) || row_exists(r, first_row, f))
                continue;
            add_row(r, id->tenant, sk, f, why, "");
            if (index)
                slen +=
                    (size_t)snprintf(stale + slen, slen < sizeof stale ? sizeof stale - slen : 0,
                                     "%s%s", slen ? ", " : "", f);
            else
                flen +=
                    (size_t)snprintf(fields + flen, flen < sizeof fields ? sizeof fields - flen : 0,
                                     "%s%s %s", flen ? ", " : "", f, why);
        }
        if (flen || (live && li->problems.more))
            sb_part(&sb, "fields: %s%s", fields, live && li->problems.more ? ", ..." : "");
        if (values.len)
            sb_part(&sb, "%s", values.s);
        if (slen)
            sb_part(&sb, "index fields stale or misplaced: %s", stale);
        /* Existence: an all-zero aggregate must not exist. */
        if (r->rep->drift_fields == before && (live != NULL) != shadow_exists) {
            add_row(r, id->tenant, sk, "(document)", live ? "present" : "absent", exists);
            sb_part(&sb, "document %s live, %s recomputed", live ? "present" : "absent", exists);
        }
    }
    int64_t fields = r->rep->drift_fields - before;
    if (fields)
        *rc = add_summary(r, id->tenant, sk, fields, &sb, err);
    return fields;
}

/* ---------------------------------------------------------------------------
 * Leases.
 * ------------------------------------------------------------------------- */
static sl_status renew_leases(run *r, sl_error *err)
{
    sl_status rc = SL_OK;
    if (!r || !r->opt.repair ||
        engine__mono_ms() - r->lease_renew_mono < ENGINE__REPAIR_LEASE_MS / 3)
        goto out;
    rc = engine__lease_renew(r->s, &r->lease, err);
    if (rc == SL_ECONDITION) {
        rc = sl_error_set(err, SL_ECONFLICT,
                          "another recompute took the repair lease; stopping this one");
        goto out;
    }
    if (rc == SL_OK && r->listener.held) {
        rc = engine__lease_renew(r->s, &r->listener, err);
        if (rc == SL_ECONDITION)
            rc = sl_error_set(err, SL_ECONFLICT,
                              "the listener's lease %s was taken from this repair (it went "
                              "unrenewed for %d ms); stopping",
                              r->listener.name, ENGINE__REPAIR_LEASE_MS);
    }
    if (rc == SL_OK)
        r->lease_renew_mono = engine__mono_ms();
out:
    return rc;
}

/* Takes the listener's lease (see repair_group). */
static sl_status seize_listener(run *r, sl_error *err)
{
    sl_status rc = engine__lease_seize(r->s, &r->listener, err);
    if (rc == SL_OK)
        r->lease_renew_mono = 0; /* renew both from now on together */
    if (rc == SL_OK)
        rc = renew_leases(r, err);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Feed events in (C, H].
 * ------------------------------------------------------------------------- */

/* Adds the deltas of the events after the consumer's token up to the head of
 * snap (its C and H), of the events of scope ("T#<t>#", or "" for all), to
 * *out.  *gone = 1 when the consumer's position was pruned (nothing read). */
static sl_status read_feed_deltas(run *r, store *snap, const char *scope, engine_aggset *out,
                                  int *gone, sl_error *err)
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
            (rc = renew_leases(r, err)) != SL_OK)
            goto out;
        if (n == 0)
            break;
        for (size_t i = 0; i < n && !at_head; i++) {
            char g[SCHEMA_KEY_MAX];
            if (!scope[0] || (engine__tenant_group(ev[i].pk, g) && !strcmp(g, scope))) {
                /* Malformed images contribute nothing, as in the listener. */
                (void)engine_aggset_apply_image(out, ev[i].new_image, +1, NULL);
                (void)engine_aggset_apply_image(out, ev[i].old_image, -1, NULL);
            }
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

static void groups_free(run *r)
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
    run *r;
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
static sl_status read_pending(run *r, int *gone, sl_error *err)
{
    sl_status rc;
    group_list list = {0};
    scope_ctx sc = {r, &list};
    engine_aggset_clear(r->pending);
    groups_free(r);
    if ((rc = read_feed_deltas(r, r->snap, r->scope_group, r->pending, gone, err)) != SL_OK ||
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
 * One tenant group: build, compare, replace.
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

/* A live document's problems, kept apart from live_info: only damaged
 * documents have them, and a tenant may have millions of aggregates. */
typedef struct group_build {
    group_state *g;
    engine__problems *problems;
    size_t nproblems, cap_problems;
    int failed;
} group_build;

static int collect_quarantine(void *ctx, const engine_quarantine *q)
{
    group_state *g = ctx;
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
static sl_status build_group(run *r, store *snap, const char *group, cursor *items, cursor *aggs,
                             engine_aggset *pending, group_state *g, sl_error *err)
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
    /* The shadow: f over the tenant's items. */
    int64_t page_mark = items->docs;
    while (cursor_peek(items, &row, &view, &readable, &rc, err)) {
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
        cursor_next(items);
        if (items->docs - page_mark >= ENGINE__SCAN_PAGE) {
            page_mark = items->docs;
            if ((rc = progress_tick(r, group, err)) != SL_OK ||
                (rc = renew_leases(r, err)) != SL_OK)
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
    while (cursor_peek(aggs, &row, &view, &readable, &rc, err)) {
        row_group(row, rg);
        if (strcmp(rg, group) != 0)
            break;
        engine_agg a;
        engine_agg_init(&a);
        live_info li = {.state = LIVE_OK, .version = row->version, .bytes = row->len};
        if (engine__agg_identity(row->pk, row->sk, &a, NULL) != SL_OK) {
            /* Not an aggregate key: named, not repaired (its identity is unknown). */
            sbuf sb = {.len = 0};
            sb.s[0] = '\0';
            sb_part(&sb, "not an aggregate key (left as it is)");
            add_row(r, group, row->sk, "(key)", "not an aggregate", "");
            r->rep->drift_aggregates++;
            if ((rc = add_summary(r, group, row->sk, 1, &sb, err)) != SL_OK)
                goto out;
            cursor_next(aggs);
            continue;
        }
        if (!readable) {
            li.state = LIVE_UNREADABLE;
        } else {
            (void)engine__agg_decode_at(&view, row->pk, row->sk, &a, &li.problems, NULL);
            if (li.problems.foreign[0])
                li.state = LIVE_FOREIGN;
            else if (li.problems.n || li.problems.more)
                li.state = LIVE_FIELDS; /* its values are not all there: not checked */
            else if ((engine__agg_check(&a, &li.problems), li.problems.n || li.problems.more))
                li.state = LIVE_FIELDS;
        }
        if (engine_aggset_find(g->live, &a)) {
            engine_agg_free(&a);
            cursor_next(aggs);
            continue; /* cannot happen: keys are unique */
        }
        rc = engine_aggset_add(g->live, &a, +1, err);
        engine_agg_free(&a);
        if (rc != SL_OK)
            goto out;
        if (g->ninfo == g->cap_info) {
            size_t cap = g->cap_info ? g->cap_info * 2 : 64;
            live_info *grown = realloc(g->info, cap * sizeof *grown);
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
        cursor_next(aggs);
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
static engine_quarantine *find_quarantine(group_state *g, const engine_agg *a, size_t *at)
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
 * shadow counts nothing), its quarantine record goes. */
typedef struct fix {
    engine_agg id;            /* identity only */
    const engine_agg *shadow; /* NULL or all-zero: delete */
    int64_t live_version;     /* the stored version the snapshot showed; 0: absent */
    int64_t q_version;        /* the record's version; 0: no record */
    long summary;             /* index into rep->aggs, -1 when not kept */
} fix;

/* Writes fixes[0..n) in one atomic batch, fenced on the repair lease and the
 * listener's lease and on each document's version as the snapshot showed it
 * (nothing else writes them while the listener's lease is ours). */
static sl_status write_fixes(run *r, fix *fixes, size_t n, sl_error *err)
{
    sl_status rc = SL_OK;
    store_op ops[2 + 2 * ENGINE__REPAIR_BATCH];
    bson_t docs[ENGINE__REPAIR_BATCH];
    /* Keys are big (100 * 3.3 KB): on the heap. */
    schema_key(*keys)[2] = calloc(ENGINE__REPAIR_BATCH, sizeof *keys);
    char(*qsk)[STORE_KEY_MAX] = calloc(ENGINE__REPAIR_BATCH, sizeof *qsk);
    size_t nops = 0, ndocs = 0;
    assert(n <= ENGINE__REPAIR_BATCH);
    memset(ops, 0, sizeof ops);
    if (!keys || !qsk) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory writing repairs");
        goto out;
    }
    ops[nops++] = (store_op){.kind = STORE_OP_CHECK,
                             .table = STORE_AGGREGATES,
                             .pk = ENGINE_SYS_PK,
                             .sk = r->lease.sk,
                             .cond = {STORE_COND_VERSION, r->lease.version}};
    ops[nops++] = (store_op){.kind = STORE_OP_CHECK,
                             .table = STORE_AGGREGATES,
                             .pk = ENGINE_SYS_PK,
                             .sk = r->listener.sk,
                             .cond = {STORE_COND_VERSION, r->listener.version}};
    for (size_t i = 0; i < n; i++) {
        fix *f = &fixes[i];
        if ((rc = engine_agg_keys(&f->id, keys[i][0], keys[i][1], err)) != SL_OK)
            goto out;
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
    rc = store_write_batch(r->s, ops, nops, err);
    if (rc == SL_ECONDITION) {
        char field[sizeof err->field];
        snprintf(field, sizeof field, "%s", err->field);
        sl_error_clear(err);
        if (!strcmp(field, "ops[0]"))
            rc = sl_error_set(err, SL_ECONFLICT,
                              "another recompute took the repair lease; stopping this one");
        else if (!strcmp(field, "ops[1]"))
            rc = sl_error_set(err, SL_ECONFLICT,
                              "the listener's lease %s was taken back from this repair; "
                              "nothing of this tenant was written by the failed step, run "
                              "again",
                              r->listener.name);
        else
            rc = sl_error_set(err, SL_ECONFLICT,
                              "an aggregate of tenant %s changed while the listener was "
                              "stopped (%s): another writer? nothing of this batch was "
                              "written",
                              fixes[0].id.tenant, field);
        goto out;
    }
    if (rc != SL_OK)
        goto out;
    r->rep->repaired_aggregates += (int64_t)n;
    for (size_t i = 0; i < n; i++)
        if (fixes[i].summary >= 0)
            r->rep->aggs[fixes[i].summary].repaired = 1;
out:
    for (size_t i = 0; i < ndocs; i++)
        bson_destroy(&docs[i]);
    free(keys);
    free(qsk);
    return rc;
}

/* Compares every aggregate g has on either side or in a record; with
 * replace, writes each drifted one as rebuilt (see repair_group for when
 * that is exact).  *drifted counts the drifted aggregates. */
static sl_status compare_group(run *r, group_state *g, int replace, int64_t *drifted, sl_error *err)
{
    sl_status rc = SL_OK;
    fix *fixes = calloc(ENGINE__REPAIR_BATCH, sizeof *fixes);
    size_t nfix = 0;
    *drifted = 0;
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
            live_info *li = la ? &g->info[la->version - 1] : NULL;
            if (li)
                li->compared = 1;
            if (q)
                g->q_compared[qi] = 1;
            r->rep->aggregates_checked++;
            size_t summaries = r->rep->naggs;
            int64_t d = compare_agg(r, id, la, li, sa, q, &rc, err);
            if (rc != SL_OK)
                goto out;
            if (!d)
                continue;
            r->rep->drift_aggregates++;
            (*drifted)++;
            if (!replace)
                continue;
            fix *f = &fixes[nfix++];
            memset(f, 0, sizeof *f);
            engine__agg_copy_identity(&f->id, id);
            f->shadow = sa;
            f->live_version = li ? li->version : 0;
            f->q_version = q ? q->version : 0;
            f->summary = r->rep->naggs > summaries ? (long)summaries : -1;
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
 * The first look (process_group) compared at the run's snapshot, where the
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
static sl_status repair_group(run *r, const char *group, sl_error *err)
{
    sl_status rc = SL_OK;
    store *snap = NULL;
    engine_aggset *pending = NULL;
    group_state g;
    cursor items, aggs;
    int gone = 0;
    int64_t drifted = 0;
    memset(&g, 0, sizeof g);
    cursor_init(&items, r, NULL, STORE_ITEMS, group, NULL);
    cursor_init(&aggs, r, NULL, STORE_AGGREGATES, group, NULL);
    if ((rc = seize_listener(r, err)) != SL_OK)
        goto out;
    if ((rc = store_snapshot_open(r->s, &snap, err)) != SL_OK ||
        (rc = engine_aggset_new(r->opt.max_aggregates, &pending, err)) != SL_OK ||
        (rc = read_feed_deltas(r, snap, group, pending, &gone, err)) != SL_OK)
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
    rc = compare_group(r, &g, 1, &drifted, err);
out:
    group_free(&g);
    cursor_free(&items);
    cursor_free(&aggs);
    engine_aggset_free(&pending);
    store_close(&snap);
    engine__lease_release(r->s, &r->listener);
    return rc;
}

/* Rebuilds and compares one tenant group at the run's snapshot, leaving both
 * cursors at the next group; with repair, replaces its drift (in place when
 * the listener's lease is held for the whole run, else by repair_group). */
static sl_status process_group(run *r, const char *group, cursor *items, cursor *aggs,
                               sl_error *err)
{
    sl_status rc = SL_OK;
    group_state g;
    report_mark m;
    int64_t drifted = 0;
    mark_take(r, &m);
    if ((rc = build_group(r, r->snap, group, items, aggs, r->pending, &g, err)) != SL_OK ||
        (rc = compare_group(r, &g, r->opt.repair && r->listener_for_run, &drifted, err)) != SL_OK)
        goto out;
    if (r->opt.repair && !r->listener_for_run && drifted) {
        /* What the repair finds, under the listener's lease, is what the run reports. */
        group_free(&g);
        mark_restore(r, &m);
        if ((rc = repair_group(r, group, err)) != SL_OK)
            goto out;
    }
    r->rep->tenants++;
    r->progress.tenants_done++;
out:
    group_free(&g);
    return rc;
}

/* ---------------------------------------------------------------------------
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
    const store_doc *row;
    bson_t view;
    int readable;
    sl_status rc = SL_OK;
    int64_t total = 0;
    char prefix[SCHEMA_KEY_MAX];
    snprintf(prefix, sizeof prefix, "%s", r->scope_group[0] ? r->scope_group : "T#");
    cursor_init(&c, r, r->snap, STORE_AGGREGATES, prefix, NULL);
    while (cursor_peek(&c, &row, &view, &readable, &rc, NULL)) {
        bson_iter_t it;
        if (readable && bson_iter_init_find(&it, &view, SCHEMA_F_TYPE) &&
            BSON_ITER_HOLDS_UTF8(&it) && !strcmp(bson_iter_utf8(&it, NULL), SCHEMA_TYPE_BRAND_AGG))
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
        if ((rc = process_group(r, group, &items, &aggs, err)) != SL_OK)
            goto out;
        snprintf(r->last_group, sizeof r->last_group, "%s", group);
        if ((rc = save_checkpoint(r, items.page_token, aggs.page_token, err)) != SL_OK ||
            (rc = renew_leases(r, err)) != SL_OK || (rc = progress_tick(r, group, err)) != SL_OK)
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
        free(r->aggs);
        memset(r, 0, sizeof *r);
    }
}

sl_status engine_recompute(store *s, const engine_recompute_options *opt,
                           engine_recompute_report *out, sl_error *err)
{
    sl_status rc = SL_OK;
    run r;
    engine_recompute_report rep;
    char items_token[STORE_PAGE_TOKEN_MAX] = "", aggs_token[STORE_PAGE_TOKEN_MAX] = "";
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
        char holder[128], lholder[128];
        engine__holder_default(holder, sizeof holder);
        engine__lease_init(&r.lease, ENGINE__REPAIR_LEASE, holder, ENGINE__REPAIR_LEASE_MS);
        snprintf(lholder, sizeof lholder, "recompute:%.100s", holder);
        engine__lease_init(&r.listener, r.consumer, lholder, ENGINE__REPAIR_LEASE_MS);
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
            /* The listener cannot apply anything now: hold its lease for the
             * whole run, move the consumer to the head, and replace every
             * drifted aggregate with what a snapshot taken after shows. */
            store_close(&r.snap);
            if ((rc = seize_listener(&r, err)) != SL_OK)
                goto out;
            r.listener_for_run = 1;
            store_op fence = {.kind = STORE_OP_CHECK,
                              .table = STORE_AGGREGATES,
                              .pk = ENGINE_SYS_PK,
                              .sk = r.listener.sk,
                              .cond = {STORE_COND_VERSION, r.listener.version}};
            if ((rc = store_consumer_reset(s, r.consumer, &fence, 1, err)) != SL_OK)
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
    engine__lease_release(s, &r.listener);
    if (r.opt.repair)
        engine__lease_release(s, &r.lease);
    engine_aggset_free(&r.pending);
    groups_free(&r);
    engine_recompute_report_free(&rep);
    return rc;
}
