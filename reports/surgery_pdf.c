/* surgery_pdf.c -- the surgery tool-usage report as a PDF: read-only over
 * the model (reports_int.h, report_surgery_model) and drawn with the PDF
 * layout kit.  What it holds and how each number is formatted:
 * docs/reports.md ("Surgery tool-usage report"); the tests read the text
 * back with pdftotext and look for every number of GET
 * /v1/surgeries/{id}/usage in these formats. */
#include "reports_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "2026-11-26 08:15 UTC" */
static const char *when(int64_t ms, char out[40])
{
    char iso[25];
    schema_time_format(ms, iso);
    snprintf(out, 40, "%.10s %.5s UTC", iso, iso + 11);
    return out;
}

static void header(rpdf *d, const report_surgery_model *m)
{
    const engine_usage_view *v = &m->v;
    char start[40], done[40], dur[REPORT_NUM_MAX], frames[REPORT_NUM_MAX], fps[32];
    snprintf(fps, sizeof fps, "%.4g frames per second", v->fps);
    const char *labels[] = {
        "Hospital",        "Room",       "Procedure",      "Surgeon", "Date", "Duration (video)",
        "Frames analyzed", "Frame rate", "Detector model", "Analyzed"};
    const char *values[] = {v->hospital,
                            v->room[0] ? v->room : "-",
                            v->procedure,
                            v->surgeon[0] ? v->surgeon : "-",
                            when(v->started_ms, start),
                            report__fmt_clock(m->duration_ms, dur),
                            report__fmt_count(v->frames, frames),
                            fps,
                            "not recorded (no detection format carries it)",
                            when(v->life.analyzed_ms, done)};
    rpdf_facts(d, labels, values, sizeof labels / sizeof labels[0]);
}

static void summary(rpdf *d, const report_surgery_model *m)
{
    const engine_usage_view *v = &m->v;
    char a[REPORT_NUM_MAX], b[REPORT_NUM_MAX], c[REPORT_NUM_MAX], w[REPORT_NUM_MAX],
        u[REPORT_NUM_MAX], rate[32];
    if (v->opened > 0)
        snprintf(rate, sizeof rate, "%.1f %%", 100.0 * (double)v->used / (double)v->opened);
    else
        snprintf(rate, sizeof rate, "-");
    rpdf_heading(d, "Summary");
    const char *labels[] = {"Opened",     "Used",       "Unused",
                            "Usage rate", "Waste cost", "Cost of used tools"};
    const char *values[] = {
        report__fmt_count(v->opened, a),      report__fmt_count(v->used, b),
        report__fmt_count(v->unused, c),      rate,
        report__fmt_money(v->waste_cents, w), report__fmt_money(m->used_cents, u)};
    rpdf_facts(d, labels, values, sizeof labels / sizeof labels[0]);
    rpdf_paragraph(d, "Counts are tool instances (physical items) seen opened on the scrub "
                      "table; used means it left the table. Waste cost is the unused "
                      "single-use instances at their catalog unit cost when analyzed.");
}

static void lines(rpdf *d, const char *title, const report_usage_line *ls, size_t n, int unused,
                  int64_t total_cents)
{
    char q[REPORT_NUM_MAX], uc[REPORT_NUM_MAX], lc[REPORT_NUM_MAX], sum[REPORT_NUM_MAX],
        tq[REPORT_NUM_MAX];
    int64_t quantity = 0;
    rpdf_heading(d, title);
    if (!n) {
        rpdf_paragraph(d, unused ? "Every opened tool was used." : "No opened tool was used.");
        return;
    }
    rpdf_col cols[] = {
        {"tool", 0, RPDF_LEFT},        {"SKU", 100, RPDF_LEFT},
        {"quantity", 48, RPDF_RIGHT},  {"single use", 58, RPDF_LEFT},
        {"unit cost", 66, RPDF_RIGHT}, {unused ? "waste" : "line cost", 76, RPDF_RIGHT}};
    rpdf_table_begin(d, cols, sizeof cols / sizeof cols[0]);
    for (size_t i = 0; i < n; i++) {
        const engine_usage_tool *t = ls[i].tool;
        quantity += ls[i].quantity;
        const char *cells[] = {t->name,
                               t->sku,
                               report__fmt_count(ls[i].quantity, q),
                               t->single_use ? "yes" : "no",
                               report__fmt_money(t->unit_cost_cents, uc),
                               report__fmt_money(ls[i].line_cents, lc)};
        rpdf_table_row(d, cells, 0);
    }
    const char *total[] = {"Total", NULL, report__fmt_count(quantity, tq),
                           NULL,    NULL, report__fmt_money(total_cents, sum)};
    rpdf_table_row(d, total, 1);
    rpdf_table_end(d);
    if (unused)
        rpdf_paragraph(d, "waste: unused instances of single-use tools at their unit cost; an "
                          "unused reusable tool is reprocessed, not wasted ($0.00).");
}

static void timeline(rpdf *d, const report_surgery_model *m)
{
    const engine_usage_view *v = &m->v;
    rpdf_heading(d, "When each tool left the table");
    if (!m->ndepartures) {
        rpdf_paragraph(d, "No tool left the table.");
        return;
    }
    rpdf_span *spans = calloc(m->ndepartures, sizeof *spans);
    char(*notes)[64] = calloc(m->ndepartures, sizeof *notes);
    if (!spans || !notes) {
        rpdf_paragraph(d, "(out of memory drawing the timeline)");
        goto out;
    }
    for (size_t i = 0; i < m->ndepartures; i++) {
        const engine_usage_instance *in = &v->instances[m->departures[i]];
        const engine_usage_tool *t = &v->tools[in->tool];
        char left[REPORT_NUM_MAX], back[REPORT_NUM_MAX];
        /* the instance number goes with the times: a long name is cut at
         * its end, and the number must stay */
        report__fmt_clock(report__frame_ms(m, in->left_frame), left);
        if (in->returned_frame >= 0)
            snprintf(notes[i], sizeof notes[i], "#%d left %s, back %s", (int)in->instance, left,
                     report__fmt_clock(report__frame_ms(m, in->returned_frame), back));
        else
            snprintf(notes[i], sizeof notes[i], "#%d left %s", (int)in->instance, left);
        spans[i] =
            (rpdf_span){.label = t->name,
                        .note = notes[i],
                        .from = (double)report__frame_ms(m, in->first_frame) / 60000.0,
                        .to = (double)report__frame_ms(m, in->left_frame) / 60000.0,
                        .mark = (double)report__frame_ms(m, in->left_frame) / 60000.0,
                        .back = in->returned_frame >= 0
                                    ? (double)report__frame_ms(m, in->returned_frame) / 60000.0
                                    : -1};
    }
    rpdf_timeline tl = {.title = "Departures, in time order",
                        .caption = "bar: on the table since it was opened; diamond: it left "
                                   "(used); circle: it came back. Times from the video's start.",
                        .x_unit = "minutes",
                        .spans = spans,
                        .n = m->ndepartures,
                        .x_max = (double)m->duration_ms / 60000.0};
    rpdf_chart_timeline(d, &tl);
out:
    free(spans);
    free(notes);
}

static void quality(rpdf *d, const report_surgery_model *m)
{
    const engine_usage_view *v = &m->v;
    char line[600], a[REPORT_NUM_MAX], b[REPORT_NUM_MAX], c[REPORT_NUM_MAX], e[REPORT_NUM_MAX];
    rpdf_heading(d, "Data quality");
    snprintf(line, sizeof line,
             "Frames without detections: %s of %s (%.1f %%). Detections: %s, of which %s carry a "
             "label no catalog entry maps (%.1f %%).",
             report__fmt_count(v->frames_empty, a), report__fmt_count(v->frames, b),
             v->frames ? 100.0 * (double)v->frames_empty / (double)v->frames : 0.0,
             report__fmt_count(v->detections, c), report__fmt_count(v->unmapped_detections, e),
             v->detections ? 100.0 * (double)v->unmapped_detections / (double)v->detections : 0.0);
    rpdf_paragraph(d, line);
    if (m->low_confidence) {
        snprintf(line, sizeof line,
                 "%zu of the %zu decisions have a confidence under %.2f (the XLSX lists every "
                 "instance with its confidence, its Instances sheet).",
                 m->low_confidence, v->ninstances, REPORT_LOW_CONFIDENCE_MICRO / 1e6);
        rpdf_paragraph(d, line);
    }
    for (size_t i = 0; i < v->ntools; i++) {
        const engine_usage_tool *t = &v->tools[i];
        const char *why = t->catalog == ENGINE_USAGE_CATALOG_CHANGED
                              ? "its catalog entry changed since the analysis (name, unit cost "
                                "or single use): analyze the surgery again to price it anew"
                          : t->catalog == ENGINE_USAGE_CATALOG_GONE
                              ? "it is no longer in the catalog"
                          : t->catalog == ENGINE_USAGE_CATALOG_UNREADABLE
                              ? "the catalog does not load now (an entry to repair)"
                              : NULL;
        if (!why)
            continue;
        snprintf(line, sizeof line, "SKU %s: %s.", t->sku, why);
        rpdf_paragraph(d, line);
    }
    if (!v->nunmapped) {
        rpdf_paragraph(d, "Every detector label mapped to a catalog entry or an occluder.");
        return;
    }
    rpdf_paragraph(d, "Labels no catalog entry maps, most detections first (occluders: hands, "
                      "arms and people, which hide tools but are none). A tool label here is a "
                      "catalog pattern to add.");
    rpdf_col cols[] = {
        {"label", 0, RPDF_LEFT}, {"detections", 80, RPDF_RIGHT}, {"occluder", 60, RPDF_LEFT}};
    rpdf_table_begin(d, cols, sizeof cols / sizeof cols[0]);
    for (size_t i = 0; i < v->nunmapped; i++) {
        const char *cells[] = {v->unmapped[i].label,
                               report__fmt_count(v->unmapped[i].detections, a),
                               v->unmapped[i].occluder ? "yes" : "no"};
        rpdf_table_row(d, cells, 0);
    }
    rpdf_table_end(d);
}

sl_status report__surgery_pdf(const report_surgery_model *m, int fd, sl_error *err)
{
    sl_status rc = SL_OK;
    rpdf *d = NULL;
    char title[300], sub[600], version[40];
    snprintf(title, sizeof title, "Surgery tool-usage report: %s", m->v.surgery);
    rpdf_meta meta = {
        .title = title, .subject = "Sightline surgery tool usage", .date_ms = m->date_ms};
    if ((rc = rpdf_new(m->opt.paper, &meta, &d, err)) != SL_OK)
        goto out;
    /* The data's version: the ETag's first 16 hex digits (after "surgery-"). */
    snprintf(version, sizeof version, "%.16s", m->etag + 9);
    snprintf(sub, sizeof sub, "Tenant %s. Data version %s.", m->v.tenant, version);
    rpdf_title(d, title, sub);
    header(d, m);
    summary(d, m);
    lines(d, "Used tools", m->used, m->nused, 0, m->used_cents);
    lines(d, "Unused tools", m->unused, m->nunused, 1, m->v.waste_cents);
    timeline(d, m);
    quality(d, m);
    rc = rpdf_finish(d, fd, err);
out:
    rpdf_free(&d);
    return rc;
}
