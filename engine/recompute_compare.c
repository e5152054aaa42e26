/* recompute_compare.c -- compares one aggregate as rebuilt with the live one
 * as read, field by field: the drift rows and the summary of each drifted
 * aggregate in the report. */
#include "engine_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------
 * The report: drift rows and summaries.
 * ------------------------------------------------------------------------- */
void engine__add_row(engine__run *r, const char *tenant, const char *sk, const char *field,
                     const char *live, const char *recomputed)
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

void engine__sb_part(engine__sbuf *b, const char *fmt, ...)
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
sl_status engine__add_summary(engine__run *r, const char *tenant, const char *sk, int64_t fields,
                              const engine__sbuf *b, sl_error *err)
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
void engine__group_free(engine__group_state *g)
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
static const char *unread_why(const engine__live_info *li, const char *field)
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
    engine__run *r;
    const engine_agg *id;
    const engine__live_info *li;
    const char *sk;
    engine__sbuf *sb;
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
    engine__add_row(c->r, c->id->tenant, c->sk, field, why ? why : live, recomputed);
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
        engine__sb_part(c->sb, "%s %s recomputed %s", d.field, d.live, d.recomputed);
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
        engine__sb_part(c->sb, "metrics.%s only %s (n %lld)", name,
                        live_has ? "live" : "recomputed", (long long)(live_has ? lm->n : sm->n));
    else if (nscalar == 1 && !bins)
        engine__sb_part(c->sb, "%s %s recomputed %s", one.field, one.live, one.recomputed);
    else
        engine__sb_part(c->sb, "metrics.%s: %s differ", name, parts);
}

/* 1 for a problem of a value that reads fine but is impossible. */
static int value_problem(const char *why)
{
    return why == engine__why_negative || why == engine__why_inconsistent;
}

static int row_exists(const engine__run *r, size_t from, const char *field)
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
int64_t engine__compare_agg(engine__run *r, const engine_agg *id, const engine_agg *live,
                            const engine__live_info *li, const engine_agg *shadow,
                            const engine_quarantine *q, sl_status *rc, sl_error *err)
{
    static const engine_metric zero_metric;
    engine_agg empty;
    engine_agg_init(&empty);
    const engine_agg *L = live ? live : &empty, *S = shadow ? shadow : &empty;
    schema_key pk, sk;
    /* The summary: what is wrong with the document, then the values. */
    engine__sbuf sb = {.len = 0}, values = {.len = 0};
    sb.s[0] = values.s[0] = '\0';
    if (engine_agg_keys(id, pk, sk, NULL) != SL_OK)
        snprintf(sk, sizeof sk, "?");
    int64_t before = r->rep->drift_fields;
    size_t first_row = r->rep->nrows;
    int shadow_exists = shadow && !engine_agg_is_zero(shadow);
    const char *exists = shadow_exists ? "present" : "absent";
    cmp_ctx c = {r, id, live ? li : NULL, sk, &values};
    if (shadow_exists && shadow->over_metrics) {
        /* Over the metric limit (engine.h): it cannot be kept, whatever the
         * live side holds, so nothing of it is compared field by field.  It
         * is drift that --repair does not repair: it stays quarantined. */
        char since[25] = "an unknown time";
        if (q && q->since_ms > 0)
            schema_time_format(q->since_ms, since);
        engine__add_row(r, id->tenant, sk, "(metric limit)",
                        q      ? "quarantined"
                        : live ? "present"
                               : "absent",
                        "over the limit");
        engine__sb_part(&sb,
                        "over the metric limit: its assets carry more than %d metrics, more than "
                        "an aggregate holds",
                        ENGINE_AGG_METRICS_MAX);
        if (q && q->cause == ENGINE_QUARANTINE_METRIC_LIMIT)
            engine__sb_part(&sb, "quarantined by the listener since %s", since);
        else if (q)
            engine__sb_part(&sb, "quarantined by the listener since %s as damaged: %s", since,
                            q->reason);
        else
            engine__sb_part(&sb, "not quarantined yet (--repair quarantines it)");
        engine__sb_part(&sb,
                        "it stays quarantined until they carry at most %d (assets rescored, "
                        "deleted or moved), then --repair rebuilds it",
                        ENGINE_AGG_METRICS_MAX);
        goto out;
    }
    if (q) {
        char since[25] = "an unknown time";
        if (q->since_ms > 0)
            schema_time_format(q->since_ms, since);
        engine__add_row(r, id->tenant, sk, "(quarantine)", "quarantined", "");
        /* Its reason only when the document does not say it below. */
        if (!live || li->state == ENGINE__LIVE_OK)
            engine__sb_part(&sb, "quarantined by the listener since %s: %s", since, q->reason);
        else
            engine__sb_part(&sb, "quarantined by the listener since %s", since);
    }
    if (live && li->state == ENGINE__LIVE_UNREADABLE) {
        /* Nothing of it can be compared: it is replaced as a whole. */
        engine__add_row(r, id->tenant, sk, "(document)", "not BSON", exists);
        engine__sb_part(&sb, "document is not BSON (%u bytes), recomputed %s", li->bytes, exists);
    } else if (live && li->state == ENGINE__LIVE_FOREIGN) {
        engine__add_row(r, id->tenant, sk, "(document)", "another document", exists);
        engine__sb_part(&sb, "document holds %s, recomputed %s", li->problems.foreign, exists);
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
            engine__add_row(r, id->tenant, sk, f, why, "");
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
            engine__sb_part(&sb, "fields: %s%s", fields, live && li->problems.more ? ", ..." : "");
        if (values.len)
            engine__sb_part(&sb, "%s", values.s);
        if (slen)
            engine__sb_part(&sb, "index fields stale or misplaced: %s", stale);
        /* Existence: an all-zero aggregate must not exist. */
        if (r->rep->drift_fields == before && (live != NULL) != shadow_exists) {
            engine__add_row(r, id->tenant, sk, "(document)", live ? "present" : "absent", exists);
            engine__sb_part(&sb, "document %s live, %s recomputed", live ? "present" : "absent",
                            exists);
        }
    }
out:;
    int64_t fields = r->rep->drift_fields - before;
    size_t kept = r->rep->naggs;
    if (fields)
        *rc = engine__add_summary(r, id->tenant, sk, fields, &sb, err);
    if (r->rep->naggs > kept && shadow_exists && shadow->over_metrics)
        r->rep->aggs[kept].over_metric_limit = 1;
    return fields;
}
