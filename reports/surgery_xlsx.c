/* surgery_xlsx.c -- the surgery tool-usage report as an XLSX workbook:
 * read-only over the model (reports_int.h, report_surgery_model) with the
 * XLSX kit.  Money is in currency units with the kit's currency format,
 * the surgery's start and each departure are Excel dates, times into the
 * surgery are Excel time spans; the departures carry a native bar chart.
 * Sheets and columns: docs/reports.md ("Surgery tool-usage report"). */
#include "reports_int.h"

#include <stdio.h>
#include <string.h>

static double money(int64_t cents)
{
    return (double)cents / 100.0;
}

static void summary(rxlsx *x, const report_surgery_model *m)
{
    const engine_usage_view *v = &m->v;
    rxlsx_sheet *s = rxlsx_sheet_plain(x, "Summary", 30, 60);
    uint32_t r = 0;
    rxlsx_plain_text(s, r++, 0, "Surgery tool-usage report", 1);
#define TEXT(label, value)                                                                         \
    do {                                                                                           \
        rxlsx_plain_text(s, r, 0, label, 1);                                                       \
        rxlsx_plain_text(s, r++, 1, value, 0);                                                     \
    } while (0)
#define NUM(label, value, type)                                                                    \
    do {                                                                                           \
        rxlsx_plain_text(s, r, 0, label, 1);                                                       \
        rxlsx_plain_num(s, r++, 1, (double)(value), type);                                         \
    } while (0)
    TEXT("Surgery", v->surgery);
    TEXT("Tenant", v->tenant);
    TEXT("Hospital", v->hospital);
    TEXT("Room", v->room);
    TEXT("Procedure", v->procedure);
    TEXT("Surgeon", v->surgeon);
    NUM("Started", v->started_ms, RXLSX_DATE);
    NUM("Duration (video)", m->duration_ms, RXLSX_DURATION);
    NUM("Frames analyzed", v->frames, RXLSX_INT);
    NUM("Frame rate (per second)", v->fps, RXLSX_SCORE);
    TEXT("Detector model", "not recorded (no detection format carries it)");
    NUM("Analyzed", v->life.analyzed_ms, RXLSX_DATE);
    NUM("Opened", v->opened, RXLSX_INT);
    NUM("Used", v->used, RXLSX_INT);
    NUM("Unused", v->unused, RXLSX_INT);
    NUM("Waste cost", money(v->waste_cents), RXLSX_MONEY);
    NUM("Cost of used tools", money(m->used_cents), RXLSX_MONEY);
    NUM("Frames without detections", v->frames_empty, RXLSX_INT);
    NUM("Detections", v->detections, RXLSX_INT);
    NUM("Unmapped detections", v->unmapped_detections, RXLSX_INT);
    NUM("Decisions under 0.75 confidence", m->low_confidence, RXLSX_INT);
    TEXT("Data version (ETag)", m->etag);
    for (size_t i = 0; i < v->ntools; i++) {
        const engine_usage_tool *t = &v->tools[i];
        char note[400];
        if (t->catalog == ENGINE_USAGE_CATALOG_SAME)
            continue;
        snprintf(note, sizeof note, "SKU %s: %s", t->sku,
                 t->catalog == ENGINE_USAGE_CATALOG_CHANGED
                     ? "its catalog entry changed since the analysis: analyze again"
                 : t->catalog == ENGINE_USAGE_CATALOG_GONE ? "no longer in the catalog"
                                                           : "the catalog does not load now");
        TEXT("Note", note);
    }
#undef TEXT
#undef NUM
}

static void lines(rxlsx *x, const char *name, const report_usage_line *ls, size_t n, int unused)
{
    const rxlsx_col cols[] = {
        {"tool", 32, RXLSX_TEXT},       {"sku", 18, RXLSX_TEXT},
        {"quantity", 10, RXLSX_INT},    {"single_use", 10, RXLSX_TEXT},
        {"unit_cost", 12, RXLSX_MONEY}, {unused ? "waste" : "line_cost", 12, RXLSX_MONEY}};
    rxlsx_sheet *s = rxlsx_sheet_new(x, name, cols, sizeof cols / sizeof cols[0]);
    for (uint32_t i = 0; i < n; i++) {
        rxlsx_cell_text(s, i, 0, ls[i].tool->name);
        rxlsx_cell_text(s, i, 1, ls[i].tool->sku);
        rxlsx_cell_num(s, i, 2, (double)ls[i].quantity);
        rxlsx_cell_text(s, i, 3, ls[i].tool->single_use ? "yes" : "no");
        rxlsx_cell_num(s, i, 4, money(ls[i].tool->unit_cost_cents));
        rxlsx_cell_num(s, i, 5, money(ls[i].line_cents));
    }
    rxlsx_sheet_end(s, (uint32_t)n);
}

static void instances(rxlsx *x, const report_surgery_model *m)
{
    const engine_usage_view *v = &m->v;
    const rxlsx_col cols[] = {{"tool", 32, RXLSX_TEXT},
                              {"sku", 18, RXLSX_TEXT},
                              {"instance", 9, RXLSX_INT},
                              {"used", 6, RXLSX_TEXT},
                              {"opened_at", 10, RXLSX_DURATION},
                              {"left_at", 10, RXLSX_DURATION},
                              {"returned_at", 11, RXLSX_DURATION},
                              {"left_time", 17, RXLSX_DATE},
                              {"confidence", 11, RXLSX_SCORE},
                              {"first_seen_frame", 16, RXLSX_INT},
                              {"first_frame", 12, RXLSX_INT},
                              {"last_frame", 12, RXLSX_INT},
                              {"left_frame", 12, RXLSX_INT},
                              {"returned_frame", 14, RXLSX_INT}};
    rxlsx_sheet *s = rxlsx_sheet_new(x, "Instances", cols, sizeof cols / sizeof cols[0]);
    for (uint32_t i = 0; i < v->ninstances; i++) {
        const engine_usage_instance *in = &v->instances[i];
        const engine_usage_tool *t = &v->tools[in->tool];
        rxlsx_cell_text(s, i, 0, t->name);
        rxlsx_cell_text(s, i, 1, t->sku);
        rxlsx_cell_num(s, i, 2, in->instance);
        rxlsx_cell_text(s, i, 3, in->used ? "yes" : "no");
        rxlsx_cell_duration(s, i, 4, report__frame_ms(m, in->first_frame));
        rxlsx_cell_duration(s, i, 5, report__frame_ms(m, in->left_frame));
        rxlsx_cell_duration(s, i, 6, report__frame_ms(m, in->returned_frame));
        if (in->left_frame >= 0)
            rxlsx_cell_date(s, i, 7, v->started_ms + report__frame_ms(m, in->left_frame));
        rxlsx_cell_num(s, i, 8, (double)in->confidence_micro / 1e6);
        rxlsx_cell_num(s, i, 9, (double)in->first_seen_frame);
        rxlsx_cell_num(s, i, 10, (double)in->first_frame);
        rxlsx_cell_num(s, i, 11, (double)in->last_frame);
        if (in->left_frame >= 0)
            rxlsx_cell_num(s, i, 12, (double)in->left_frame);
        if (in->returned_frame >= 0)
            rxlsx_cell_num(s, i, 13, (double)in->returned_frame);
    }
    rxlsx_sheet_end(s, (uint32_t)v->ninstances);
}

/* The departures in time order, with a native bar chart of the minute each
 * tool left at (the timeline). */
static void timeline(rxlsx *x, const report_surgery_model *m)
{
    const engine_usage_view *v = &m->v;
    const rxlsx_col cols[] = {{"tool", 36, RXLSX_TEXT},      {"sku", 18, RXLSX_TEXT},
                              {"instance", 9, RXLSX_INT},    {"opened_min", 11, RXLSX_SCORE},
                              {"left_min", 10, RXLSX_SCORE}, {"returned_min", 13, RXLSX_SCORE},
                              {"left_time", 17, RXLSX_DATE}};
    rxlsx_sheet *s = rxlsx_sheet_new(x, "Timeline", cols, sizeof cols / sizeof cols[0]);
    for (uint32_t i = 0; i < m->ndepartures; i++) {
        const engine_usage_instance *in = &v->instances[m->departures[i]];
        const engine_usage_tool *t = &v->tools[in->tool];
        char label[ENGINE_USAGE_TEXT_MAX + 16];
        snprintf(label, sizeof label, "%s #%d", t->name, (int)in->instance);
        rxlsx_cell_text(s, i, 0, label);
        rxlsx_cell_text(s, i, 1, t->sku);
        rxlsx_cell_num(s, i, 2, in->instance);
        rxlsx_cell_num(s, i, 3, (double)report__frame_ms(m, in->first_frame) / 60000.0);
        rxlsx_cell_num(s, i, 4, (double)report__frame_ms(m, in->left_frame) / 60000.0);
        if (in->returned_frame >= 0)
            rxlsx_cell_num(s, i, 5, (double)report__frame_ms(m, in->returned_frame) / 60000.0);
        rxlsx_cell_date(s, i, 6, v->started_ms + report__frame_ms(m, in->left_frame));
    }
    rxlsx_sheet_end(s, (uint32_t)m->ndepartures);
    if (m->ndepartures) {
        rxlsx_chart c = {.title = "When each tool left the table",
                         .x_title = "tool",
                         .y_title = "minutes from the start",
                         .src = s,
                         .first = 0,
                         .last = (uint32_t)m->ndepartures - 1,
                         .cat_col = 0,
                         .value_col = 4,
                         .bar = 1};
        rxlsx_chart_column(x, s, 1, 8, &c);
    }
}

static void unmapped(rxlsx *x, const report_surgery_model *m)
{
    const engine_usage_view *v = &m->v;
    const rxlsx_col cols[] = {
        {"label", 32, RXLSX_TEXT}, {"detections", 12, RXLSX_INT}, {"occluder", 10, RXLSX_TEXT}};
    rxlsx_sheet *s = rxlsx_sheet_new(x, "Unmapped labels", cols, sizeof cols / sizeof cols[0]);
    for (uint32_t i = 0; i < v->nunmapped; i++) {
        rxlsx_cell_text(s, i, 0, v->unmapped[i].label);
        rxlsx_cell_num(s, i, 1, (double)v->unmapped[i].detections);
        rxlsx_cell_text(s, i, 2, v->unmapped[i].occluder ? "yes" : "no");
    }
    rxlsx_sheet_end(s, (uint32_t)v->nunmapped);
}

sl_status report__surgery_xlsx(const report_surgery_model *m, int *fd, uint64_t *size,
                               sl_error *err)
{
    sl_status rc = SL_OK;
    rxlsx *x = NULL;
    char title[300];
    snprintf(title, sizeof title, "Surgery tool-usage report: %s", m->v.surgery);
    if ((rc = rxlsx_new(m->opt.tmpdir, title, "Sightline surgery tool usage", m->date_ms, &x,
                        err)) != SL_OK)
        goto out;
    summary(x, m);
    lines(x, "Used tools", m->used, m->nused, 0);
    lines(x, "Unused tools", m->unused, m->nunused, 1);
    timeline(x, m);
    instances(x, m);
    unmapped(x, m);
    rc = rxlsx_finish(&x, fd, size, err);
out:
    rxlsx_free(&x);
    return rc;
}
