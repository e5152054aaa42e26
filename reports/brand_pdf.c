/* brand_pdf.c -- the brand score report as a PDF: read-only over the model
 * (reports_int.h, report_brand_model) and drawn with the PDF layout kit.
 * What it holds and how each number is formatted: docs/reports.md ("Brand
 * score report"); the tests read the text back with pdftotext and look for
 * every number of the JSON answers in these formats. */
#include "reports_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define BARS_MAX 25 /* campaigns in the chart of means */

/* The statistics columns: n, mean, std dev, median, p10, p90, min, max. */
#define STATS_COLS 8
static void stats_cells(const engine_metric *m, char buf[STATS_COLS][REPORT_NUM_MAX],
                        const char **cells)
{
    engine_stats st;
    engine_metric_stats(m, &st);
    cells[0] = report__fmt_count(m->n, buf[0]);
    cells[1] = report__fmt_score(st.mean, buf[1]);
    cells[2] = report__fmt_score(st.stddev, buf[2]);
    cells[3] = report__fmt_score(st.median, buf[3]);
    cells[4] = report__fmt_score(st.p10, buf[4]);
    cells[5] = report__fmt_score(st.p90, buf[5]);
    cells[6] = report__fmt_score(st.min, buf[6]);
    cells[7] = report__fmt_score(st.max, buf[7]);
}

static void stats_cols(rpdf_col *cols)
{
    static const char *const titles[STATS_COLS] = {"n",   "mean", "std dev", "median",
                                                   "p10", "p90",  "min",     "max"};
    for (int i = 0; i < STATS_COLS; i++)
        cols[i] = (rpdf_col){titles[i], i == 0 ? 46 : 42, RPDF_RIGHT};
}

static void scores_table(rpdf *d, const engine_agg *a)
{
    rpdf_col cols[1 + STATS_COLS] = {{"metric", 0, RPDF_LEFT}};
    const engine_metric *ms[ENGINE_AGG_METRICS_MAX];
    size_t n = report__metric_order(a, ms);
    stats_cols(cols + 1);
    rpdf_table_begin(d, cols, 1 + STATS_COLS);
    for (size_t i = 0; i < n; i++) {
        char buf[STATS_COLS][REPORT_NUM_MAX];
        const char *cells[1 + STATS_COLS] = {ms[i]->name};
        stats_cells(ms[i], buf, cells + 1);
        rpdf_table_row(d, cells, 0);
    }
    rpdf_table_end(d);
}

static void histograms(rpdf *d, const engine_agg *a, const char *whose)
{
    const engine_metric *ms[ENGINE_AGG_METRICS_MAX];
    size_t n = report__metric_order(a, ms);
    for (size_t i = 0; i < n; i++) {
        double v[ENGINE_HIST_BINS];
        char title[256], caption[160], cnt[REPORT_NUM_MAX];
        for (int b = 0; b < ENGINE_HIST_BINS; b++)
            v[b] = (double)ms[i]->hist[b];
        snprintf(title, sizeof title, "%s of %s: assets per 0.01 of score", ms[i]->name, whose);
        snprintf(caption, sizeof caption, "%s assets; score from 0 to 1",
                 report__fmt_count(ms[i]->n, cnt));
        rpdf_chart c = {.title = title,
                        .values = v,
                        .n = ENGINE_HIST_BINS,
                        .histogram = 1,
                        .x_min = 0,
                        .x_max = 1,
                        .height = 90,
                        .caption = caption};
        rpdf_chart_bars(d, &c);
    }
}

static void campaigns(rpdf *d, const report_brand_model *m)
{
    char line[512], a[REPORT_NUM_MAX], b[REPORT_NUM_MAX];
    rpdf_heading(d, "Campaigns");
    snprintf(line, sizeof line,
             m->campaigns_more
                 ? "The first %s campaigns by name; the brand has more (the report covers at "
                   "most %s)."
                 : "%s campaigns.%s",
             report__fmt_count((int64_t)m->ncampaigns, a),
             m->campaigns_more ? report__fmt_count((int64_t)m->opt.campaigns_max, b) : "");
    rpdf_paragraph(d, line);
    if (!m->ncampaigns)
        return;
    /* Mean memorability per campaign, the first BARS_MAX by name. */
    double v[BARS_MAX];
    const char *labels[BARS_MAX];
    size_t nb = 0;
    for (size_t i = 0; i < m->ncampaigns && nb < BARS_MAX; i++) {
        const engine_metric *mem = engine_agg_metric(&m->campaigns[i], ENGINE_METRIC_MEMORABILITY);
        engine_stats st;
        if (!mem || mem->n <= 0)
            continue;
        engine_metric_stats(mem, &st);
        labels[nb] = m->campaigns[i].campaign;
        v[nb++] = st.mean;
    }
    if (nb) {
        rpdf_chart c = {.title = "Mean memorability by campaign",
                        .values = v,
                        .labels = labels,
                        .n = nb,
                        .caption = m->ncampaigns > nb ? "the first campaigns by name" : NULL};
        rpdf_chart_bars(d, &c);
    }
    rpdf_col cols[2 + STATS_COLS] = {{"campaign", 0, RPDF_LEFT}, {"metric", 78, RPDF_LEFT}};
    stats_cols(cols + 2);
    rpdf_table_begin(d, cols, 2 + STATS_COLS);
    for (size_t i = 0; i < m->ncampaigns; i++) {
        const engine_metric *ms[ENGINE_AGG_METRICS_MAX];
        size_t n = report__metric_order(&m->campaigns[i], ms);
        for (size_t k = 0; k < n; k++) {
            char buf[STATS_COLS][REPORT_NUM_MAX];
            const char *cells[2 + STATS_COLS] = {m->campaigns[i].campaign, ms[k]->name};
            stats_cells(ms[k], buf, cells + 2);
            rpdf_table_row(d, cells, k == 0);
        }
    }
    rpdf_table_end(d);
}

static void sectors(rpdf *d, const report_brand_model *m)
{
    char line[256], a[REPORT_NUM_MAX];
    rpdf_heading(d, "Sector comparison");
    rpdf_paragraph(d, "Each sector the brand's assets are in, all of the tenant's assets in it "
                      "against the brand's; difference = brand mean - sector mean.");
    rpdf_col cols[] = {{"sector", 0, RPDF_LEFT},         {"metric", 74, RPDF_LEFT},
                       {"brand assets", 58, RPDF_RIGHT}, {"sector n", 44, RPDF_RIGHT},
                       {"sector mean", 56, RPDF_RIGHT},  {"sector median", 64, RPDF_RIGHT},
                       {"brand mean", 54, RPDF_RIGHT},   {"difference", 52, RPDF_RIGHT}};
    rpdf_table_begin(d, cols, sizeof cols / sizeof cols[0]);
    for (size_t i = 0; i < m->nsectors; i++) {
        const report_sector *s = &m->sectors[i];
        const engine_metric *ms[ENGINE_AGG_METRICS_MAX];
        size_t n = s->agg.kind ? report__metric_order(&s->agg, ms) : 0;
        char ba[REPORT_NUM_MAX];
        report__fmt_count(s->brand_assets, ba);
        if (!n) {
            const char *cells[8] = {s->name, "-", ba, "-", "-", "-", "-", "-"};
            rpdf_table_row(d, cells, 1);
        }
        for (size_t k = 0; k < n; k++) {
            engine_stats ss, bs = {0};
            char b[5][REPORT_NUM_MAX];
            const engine_metric *bm = engine_agg_metric(&m->brand_agg, ms[k]->name);
            engine_metric_stats(ms[k], &ss);
            if (bm)
                engine_metric_stats(bm, &bs);
            else
                bs.mean = NAN;
            const char *cells[8] = {s->name,
                                    ms[k]->name,
                                    k == 0 ? ba : "",
                                    report__fmt_count(ms[k]->n, b[0]),
                                    report__fmt_score(ss.mean, b[1]),
                                    report__fmt_score(ss.median, b[2]),
                                    report__fmt_score(bs.mean, b[3]),
                                    report__fmt_score(bs.mean - ss.mean, b[4])};
            rpdf_table_row(d, cells, k == 0);
        }
    }
    rpdf_table_end(d);
    if (m->sectors_other) {
        snprintf(line, sizeof line, "%s of the brand's assets are in further sectors, not shown.",
                 report__fmt_count(m->sectors_other, a));
        rpdf_paragraph(d, line);
    }
}

static void asset_list(rpdf *d, const char *title, const report_asset *as, size_t n)
{
    rpdf_heading(d, title);
    if (!n) {
        rpdf_paragraph(d, "No asset carries memorability.");
        return;
    }
    rpdf_col cols[] = {{"#", 24, RPDF_RIGHT},           {"asset", 0, RPDF_LEFT},
                       {"campaign", 92, RPDF_LEFT},     {"sector", 70, RPDF_LEFT},
                       {"media", 36, RPDF_LEFT},        {"model version", 72, RPDF_LEFT},
                       {"memorability", 68, RPDF_RIGHT}};
    rpdf_table_begin(d, cols, sizeof cols / sizeof cols[0]);
    for (size_t i = 0; i < n; i++) {
        char rank[24], mem[REPORT_NUM_MAX];
        snprintf(rank, sizeof rank, "%zu", i + 1);
        const char *cells[] = {rank,
                               as[i].asset,
                               as[i].campaign,
                               as[i].sector,
                               as[i].media_type,
                               as[i].model_version,
                               report__fmt_score(as[i].memorability, mem)};
        rpdf_table_row(d, cells, 0);
    }
    rpdf_table_end(d);
}

sl_status report__brand_pdf(const report_brand_model *m, int fd, sl_error *err)
{
    sl_status rc = SL_OK;
    rpdf *d = NULL;
    char title[300], sub[600], n1[REPORT_NUM_MAX], n2[REPORT_NUM_MAX], n3[REPORT_NUM_MAX],
        n4[REPORT_NUM_MAX], n5[REPORT_NUM_MAX], version[40];
    snprintf(title, sizeof title, "Brand score report: %s", m->brand);
    rpdf_meta meta = {.title = title, .subject = "Sightline brand scores", .date_ms = m->date_ms};
    if ((rc = rpdf_new(m->opt.paper, &meta, &d, err)) != SL_OK)
        goto out;
    /* The data's version: the ETag's first 16 hex digits (after "brand-"). */
    snprintf(version, sizeof version, "%.16s", m->etag + 7);
    snprintf(sub, sizeof sub, "Tenant %s. Data version %s.", m->tenant, version);
    rpdf_title(d, title, sub);
    const char *labels[] = {"Brand", "Assets (aggregate)", "Assets listed", "Campaigns", "Sectors"};
    const char *values[] = {
        m->brand, report__fmt_count(m->brand_agg.count, n1), report__fmt_count(m->assets, n2),
        report__fmt_count((int64_t)m->ncampaigns, n3), report__fmt_count((int64_t)m->nsectors, n4)};
    (void)n5;
    rpdf_facts(d, labels, values, sizeof labels / sizeof labels[0]);
    rpdf_paragraph(d, "Scores are in [0, 1]. mean and std dev (population) are exact; median, p10 "
                      "and p90 are read from 100-bin histograms (to 0.01), min and max are the "
                      "edges of the first and last non-empty bins. Assets listed: those the "
                      "asset index holds now; the aggregate counts what the listener has applied.");
    rpdf_heading(d, "Scores of the brand");
    scores_table(d, &m->brand_agg);
    rpdf_heading(d, "Distributions");
    histograms(d, &m->brand_agg, m->brand);
    campaigns(d, m);
    sectors(d, m);
    char t[128];
    snprintf(t, sizeof t, "Top %zu assets by memorability", m->ntop);
    asset_list(d, t, m->top, m->ntop);
    snprintf(t, sizeof t, "Bottom %zu assets by memorability", m->nbottom);
    asset_list(d, t, m->bottom, m->nbottom);
    rc = rpdf_finish(d, fd, err);
out:
    rpdf_free(&d);
    return rc;
}
