/* surgery_model.c -- the surgery tool-usage report's model (reports_int.h,
 * report_surgery_model): the engine's tool-usage read model of one
 * snapshot (engine_usage_read: META, SUMMARY, TOOL# results, catalog) and
 * what both renderers derive from it -- the used and unused lines, the
 * departures in time order, the data-quality counts -- computed once here
 * so the PDF and the XLSX cannot disagree.
 *
 * The ETag covers every document the report shows: the META's version (the
 * description: room, surgeon, start), the SUMMARY's (every total and line),
 * each TOOL# result's key and version (the timeline, the instance table),
 * and how the current catalog compares with each SKU's pricing (a note),
 * plus the renderer and library versions and the options. */
#include "reports_int.h"

#include <stdlib.h>
#include <string.h>

int64_t report__frame_ms(const report_surgery_model *m, int64_t frame)
{
    if (frame < 0)
        return -1;
    return (int64_t)((double)frame * 1000.0 / m->v.fps + 0.5);
}

/* Departures in time order; ties by key order (SKU, instance). */
typedef struct departure {
    int64_t left_frame;
    size_t index;
} departure;

static int by_departure(const void *a, const void *b)
{
    const departure *x = a, *y = b;
    if (x->left_frame != y->left_frame)
        return x->left_frame < y->left_frame ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

sl_status report__surgery_model_fill(store *s, const char *tenant, const char *surgery,
                                     const report_options *opt, report_surgery_model *m,
                                     sl_error *err)
{
    sl_status rc = SL_OK;
    report__digest *dg = NULL;
    departure *dep = NULL;
    const engine_usage_view *v = &m->v;
    m->opt = *opt;
    m->opt.paper = opt->paper ? opt->paper : REPORT_A4;
    if ((rc = engine_usage_read(s, tenant, surgery, &m->v, err)) != SL_OK)
        goto out;
    m->date_ms = v->started_ms;
    m->duration_ms = v->last_frame >= 0 ? report__frame_ms(m, v->last_frame + 1) : 0;
    m->used = calloc(v->ntools ? v->ntools : 1, sizeof *m->used);
    m->unused = calloc(v->ntools ? v->ntools : 1, sizeof *m->unused);
    m->departures = calloc(v->ninstances ? v->ninstances : 1, sizeof *m->departures);
    dep = calloc(v->ninstances ? v->ninstances : 1, sizeof *dep);
    if (!(dg = report__digest_new("surgery", REPORT_SURGERY_RENDERER, &m->opt)) || !m->used ||
        !m->unused || !m->departures || !dep) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory starting a surgery report");
        goto out;
    }
    for (size_t i = 0; i < v->ntools; i++) {
        const engine_usage_tool *t = &v->tools[i];
        if (t->used > 0) {
            m->used[m->nused++] = (report_usage_line){t, t->used, t->used * t->unit_cost_cents};
            m->used_cents += t->used * t->unit_cost_cents;
        }
        if (t->unused > 0)
            m->unused[m->nunused++] = (report_usage_line){t, t->unused, t->waste_cents};
        m->catalog_changed += t->catalog != ENGINE_USAGE_CATALOG_SAME;
    }
    for (size_t i = 0; i < v->ninstances; i++) {
        if (v->instances[i].left_frame >= 0)
            dep[m->ndepartures++] = (departure){v->instances[i].left_frame, i};
        m->low_confidence += v->instances[i].confidence_micro < REPORT_LOW_CONFIDENCE_MICRO;
    }
    qsort(dep, m->ndepartures, sizeof *dep, by_departure);
    for (size_t i = 0; i < m->ndepartures; i++)
        m->departures[i] = dep[i].index;
    report__digest_str(dg, tenant);
    report__digest_str(dg, surgery);
    report__digest_int(dg, v->meta_version);
    report__digest_int(dg, v->summary_version);
    report__digest_int(dg, v->last_frame);
    for (size_t i = 0; i < v->ntools; i++) {
        report__digest_str(dg, v->tools[i].sku);
        report__digest_int(dg, v->tools[i].catalog);
    }
    for (size_t i = 0; i < v->ninstances; i++) {
        report__digest_int(dg, (int64_t)v->instances[i].tool);
        report__digest_int(dg, v->instances[i].instance);
        report__digest_int(dg, v->instances[i].version);
    }
    report__digest_end(&dg, m->etag);
out:
    free(dep);
    report__digest_free(&dg);
    return rc;
}

void report__surgery_model_free(report_surgery_model *m)
{
    engine_usage_view_free(&m->v);
    free(m->used);
    free(m->unused);
    free(m->departures);
    memset(m, 0, sizeof *m);
}
