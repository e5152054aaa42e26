/* brand_xlsx.c -- the brand score report as an XLSX workbook: read-only over
 * the model (reports_int.h) with the XLSX kit, plus the asset sheet, which
 * is streamed from the model's store snapshot a page at a time (a brand of
 * a million assets costs one store page of memory here, and libxlsxwriter's
 * constant_memory mode writes each row out as it is done).  Sheets, columns
 * and types: docs/reports.md ("Brand score report"). */
#include "reports_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* The statistics columns after the leading name columns. */
#define STATS_N 9
static const char *const stats_titles[STATS_N] = {"n",   "mean", "stddev", "median",   "p10",
                                                  "p90", "min",  "max",    "sum_micro"};

static size_t stats_columns(rxlsx_col *cols, size_t at)
{
    for (size_t i = 0; i < STATS_N; i++)
        cols[at + i] = (rxlsx_col){stats_titles[i], i == STATS_N - 1 ? 16 : 10,
                                   i == 0 || i == STATS_N - 1 ? RXLSX_INT : RXLSX_SCORE};
    return at + STATS_N;
}

static void stats_row(rxlsx_sheet *s, uint32_t row, uint16_t at, const engine_metric *m)
{
    engine_stats st;
    engine_metric_stats(m, &st);
    const double v[STATS_N] = {(double)m->n, st.mean, st.stddev, st.median,     st.p10,
                               st.p90,       st.min,  st.max,    (double)m->sum};
    for (uint16_t i = 0; i < STATS_N; i++)
        rxlsx_cell_num(s, row, (uint16_t)(at + i), v[i]);
}

static void summary(rxlsx *x, const report_brand_model *m)
{
    rxlsx_sheet *s = rxlsx_sheet_plain(x, "Summary", 24, 60);
    uint32_t r = 0;
    rxlsx_plain_text(s, r++, 0, "Brand score report", 1);
    rxlsx_plain_text(s, r, 0, "Brand", 1);
    rxlsx_plain_text(s, r++, 1, m->brand, 0);
    rxlsx_plain_text(s, r, 0, "Tenant", 1);
    rxlsx_plain_text(s, r++, 1, m->tenant, 0);
    rxlsx_plain_text(s, r, 0, "Assets (aggregate)", 1);
    rxlsx_plain_num(s, r++, 1, (double)m->brand_agg.count, RXLSX_INT);
    rxlsx_plain_text(s, r, 0, "Assets listed", 1);
    rxlsx_plain_num(s, r++, 1, (double)m->assets, RXLSX_INT);
    rxlsx_plain_text(s, r, 0, "Campaigns", 1);
    rxlsx_plain_num(s, r++, 1, (double)m->ncampaigns, RXLSX_INT);
    rxlsx_plain_text(s, r, 0, "Sectors", 1);
    rxlsx_plain_num(s, r++, 1, (double)m->nsectors, RXLSX_INT);
    rxlsx_plain_text(s, r, 0, "Data version (ETag)", 1);
    rxlsx_plain_text(s, r++, 1, m->etag, 0);
    if (m->campaigns_more) {
        rxlsx_plain_text(s, r, 0, "Note", 1);
        rxlsx_plain_text(s, r++, 1, "the brand has more campaigns than the report covers", 0);
    }
}

static void brand_metrics(rxlsx *x, const report_brand_model *m)
{
    rxlsx_col cols[1 + STATS_N] = {{"metric", 18, RXLSX_TEXT}};
    stats_columns(cols, 1);
    rxlsx_sheet *s = rxlsx_sheet_new(x, "Brand metrics", cols, 1 + STATS_N);
    const engine_metric *ms[ENGINE_AGG_METRICS_MAX];
    size_t n = report__metric_order(&m->brand_agg, ms);
    for (uint32_t i = 0; i < n; i++) {
        rxlsx_cell_text(s, i, 0, ms[i]->name);
        stats_row(s, i, 1, ms[i]);
    }
    rxlsx_sheet_end(s, (uint32_t)n);
}

static void campaigns(rxlsx *x, const report_brand_model *m)
{
    rxlsx_col cols[2 + STATS_N] = {{"campaign", 24, RXLSX_TEXT}, {"metric", 18, RXLSX_TEXT}};
    stats_columns(cols, 2);
    rxlsx_sheet *s = rxlsx_sheet_new(x, "Campaigns", cols, 2 + STATS_N);
    uint32_t r = 0;
    for (size_t i = 0; i < m->ncampaigns; i++) {
        const engine_metric *ms[ENGINE_AGG_METRICS_MAX];
        size_t n = report__metric_order(&m->campaigns[i], ms);
        for (size_t k = 0; k < n; k++, r++) {
            rxlsx_cell_text(s, r, 0, m->campaigns[i].campaign);
            rxlsx_cell_text(s, r, 1, ms[k]->name);
            stats_row(s, r, 2, ms[k]);
        }
    }
    rxlsx_sheet_end(s, r);
}

static void sectors(rxlsx *x, const report_brand_model *m)
{
    const rxlsx_col cols[] = {{"sector", 24, RXLSX_TEXT},       {"brand assets", 12, RXLSX_INT},
                              {"metric", 18, RXLSX_TEXT},       {"sector n", 10, RXLSX_INT},
                              {"sector mean", 12, RXLSX_SCORE}, {"sector median", 13, RXLSX_SCORE},
                              {"sector p10", 11, RXLSX_SCORE},  {"sector p90", 11, RXLSX_SCORE},
                              {"brand mean", 11, RXLSX_SCORE},  {"difference", 11, RXLSX_SCORE}};
    rxlsx_sheet *s = rxlsx_sheet_new(x, "Sectors", cols, sizeof cols / sizeof cols[0]);
    uint32_t r = 0;
    for (size_t i = 0; i < m->nsectors; i++) {
        const report_sector *sec = &m->sectors[i];
        const engine_metric *ms[ENGINE_AGG_METRICS_MAX];
        size_t n = sec->agg.kind ? report__metric_order(&sec->agg, ms) : 0;
        if (!n) {
            rxlsx_cell_text(s, r, 0, sec->name);
            rxlsx_cell_num(s, r++, 1, (double)sec->brand_assets);
        }
        for (size_t k = 0; k < n; k++, r++) {
            engine_stats ss, bs;
            const engine_metric *bm = engine_agg_metric(&m->brand_agg, ms[k]->name);
            engine_metric_stats(ms[k], &ss);
            bs.mean = NAN;
            if (bm)
                engine_metric_stats(bm, &bs);
            rxlsx_cell_text(s, r, 0, sec->name);
            rxlsx_cell_num(s, r, 1, (double)sec->brand_assets);
            rxlsx_cell_text(s, r, 2, ms[k]->name);
            rxlsx_cell_num(s, r, 3, (double)ms[k]->n);
            rxlsx_cell_num(s, r, 4, ss.mean);
            rxlsx_cell_num(s, r, 5, ss.median);
            rxlsx_cell_num(s, r, 6, ss.p10);
            rxlsx_cell_num(s, r, 7, ss.p90);
            rxlsx_cell_num(s, r, 8, bs.mean);
            rxlsx_cell_num(s, r, 9, bs.mean - ss.mean);
        }
    }
    rxlsx_sheet_end(s, r);
}

/* The histograms of the brand's metrics side by side, with a native column
 * chart of each (at most CHARTS_MAX). */
#define CHARTS_MAX 8
static void histograms(rxlsx *x, const report_brand_model *m)
{
    const engine_metric *ms[ENGINE_AGG_METRICS_MAX];
    size_t n = report__metric_order(&m->brand_agg, ms);
    if (n > 60)
        n = 60;
    rxlsx_col cols[64] = {{"from", 8, RXLSX_SCORE}, {"to", 8, RXLSX_SCORE}};
    for (size_t k = 0; k < n; k++)
        cols[2 + k] = (rxlsx_col){ms[k]->name, 14, RXLSX_INT};
    rxlsx_sheet *s = rxlsx_sheet_new(x, "Histograms", cols, 2 + n);
    for (uint32_t b = 0; b < ENGINE_HIST_BINS; b++) {
        rxlsx_cell_num(s, b, 0, b / (double)ENGINE_HIST_BINS);
        rxlsx_cell_num(s, b, 1, (b + 1) / (double)ENGINE_HIST_BINS);
        for (size_t k = 0; k < n; k++)
            rxlsx_cell_num(s, b, (uint16_t)(2 + k), (double)ms[k]->hist[b]);
    }
    rxlsx_sheet_end(s, ENGINE_HIST_BINS);
    for (size_t k = 0; k < n && k < CHARTS_MAX; k++) {
        char title[128];
        snprintf(title, sizeof title, "%s: assets per 0.01 of score", ms[k]->name);
        rxlsx_chart c = {.title = title,
                         .x_title = "score (bin start)",
                         .y_title = "assets",
                         .src = s,
                         .first = 0,
                         .last = ENGINE_HIST_BINS - 1,
                         .cat_col = 0,
                         .value_col = (uint16_t)(2 + k),
                         .gap0 = 1};
        rxlsx_chart_column(x, s, (uint32_t)(1 + 18 * k), (uint16_t)(3 + n), &c);
    }
}

static void asset_list(rxlsx *x, const char *name, const report_asset *as, size_t n)
{
    const rxlsx_col cols[] = {{"rank", 6, RXLSX_INT},
                              {"asset", 24, RXLSX_TEXT},
                              {"campaign", 20, RXLSX_TEXT},
                              {"sector", 16, RXLSX_TEXT},
                              {"media_type", 10, RXLSX_TEXT},
                              {"model_version", 16, RXLSX_TEXT},
                              {"memorability", 13, RXLSX_SCORE},
                              {"version", 9, RXLSX_INT}};
    rxlsx_sheet *s = rxlsx_sheet_new(x, name, cols, sizeof cols / sizeof cols[0]);
    for (uint32_t i = 0; i < n; i++) {
        rxlsx_cell_num(s, i, 0, i + 1);
        rxlsx_cell_text(s, i, 1, as[i].asset);
        rxlsx_cell_text(s, i, 2, as[i].campaign);
        rxlsx_cell_text(s, i, 3, as[i].sector);
        rxlsx_cell_text(s, i, 4, as[i].media_type);
        rxlsx_cell_text(s, i, 5, as[i].model_version);
        rxlsx_cell_num(s, i, 6, as[i].memorability);
        rxlsx_cell_num(s, i, 7, (double)as[i].version);
    }
    rxlsx_sheet_end(s, (uint32_t)n);
}

/* ---------------------------------------------------------------------------
 * The asset sheet, streamed.
 * ------------------------------------------------------------------------- */
#define ASSET_FIXED 9 /* columns before the saliency measures */
typedef struct asset_sheet {
    const report_brand_model *m;
    rxlsx_sheet *s;
    uint32_t row;
    int64_t left_out;   /* past the sheet's rows */
    size_t sal_col[64]; /* by metric index; 0: no column */
} asset_sheet;

static sl_status asset_row(void *ctx, const engine_asset *a, sl_error *err)
{
    asset_sheet *as = ctx;
    const report_brand_model *m = as->m;
    (void)err;
    if (as->row >= REPORT_XLSX_ROWS_MAX) {
        as->left_out++;
        return SL_OK;
    }
    uint32_t r = as->row++;
    rxlsx_cell_text(as->s, r, 0, a->asset);
    rxlsx_cell_text(as->s, r, 1, a->campaign);
    rxlsx_cell_text(as->s, r, 2, a->sector);
    rxlsx_cell_text(as->s, r, 3, a->client);
    rxlsx_cell_text(as->s, r, 4, a->brand_id);
    rxlsx_cell_text(as->s, r, 5, a->media_type);
    rxlsx_cell_text(as->s, r, 6, a->model_version);
    if (a->version >= 0)
        rxlsx_cell_num(as->s, r, 7, (double)a->version);
    if (a->has_memorability)
        rxlsx_cell_num(as->s, r, 8, a->memorability);
    /* Saliency columns follow the model's metric names; an asset's measures
     * are in name order, as the columns are, so one merge pass finds them. */
    size_t col = 0;
    for (size_t i = 0; i < a->nsaliency; i++) {
        for (size_t k = 0; k < m->nmetrics; k++) {
            size_t c = (col + k) % m->nmetrics;
            if (!strcmp(m->metrics[c], a->saliency[i].name)) {
                if (as->sal_col[c])
                    rxlsx_cell_num(as->s, r, (uint16_t)as->sal_col[c], a->saliency[i].value);
                col = c + 1;
                break;
            }
        }
    }
    return SL_OK;
}

static sl_status assets(rxlsx *x, const report_brand_model *m, sl_error *err)
{
    rxlsx_col cols[ASSET_FIXED + 64] = {
        {"asset", 24, RXLSX_TEXT},         {"campaign", 20, RXLSX_TEXT},
        {"sector", 16, RXLSX_TEXT},        {"client", 16, RXLSX_TEXT},
        {"brand_id", 12, RXLSX_TEXT},      {"media_type", 10, RXLSX_TEXT},
        {"model_version", 16, RXLSX_TEXT}, {"version", 9, RXLSX_INT},
        {"memorability", 13, RXLSX_SCORE}};
    asset_sheet as = {.m = m};
    size_t ncols = ASSET_FIXED;
    for (size_t k = 0; k < m->nmetrics; k++) {
        if (!strcmp(m->metrics[k], ENGINE_METRIC_MEMORABILITY))
            continue;
        as.sal_col[k] = ncols;
        cols[ncols++] = (rxlsx_col){m->metrics[k], 13, RXLSX_SCORE};
    }
    as.s = rxlsx_sheet_new(x, "Assets", cols, ncols);
    sl_status rc = report__brand_assets_each(m, asset_row, &as, err);
    rxlsx_sheet_end(as.s, as.row);
    return rc;
}

sl_status report__brand_xlsx(const report_brand_model *m, int *fd, uint64_t *size, sl_error *err)
{
    sl_status rc = SL_OK;
    rxlsx *x = NULL;
    char title[300];
    snprintf(title, sizeof title, "Brand score report: %s", m->brand);
    if ((rc = rxlsx_new(m->opt.tmpdir, title, "Sightline brand scores", m->date_ms, &x, err)) !=
        SL_OK)
        goto out;
    summary(x, m);
    brand_metrics(x, m);
    campaigns(x, m);
    sectors(x, m);
    histograms(x, m);
    asset_list(x, "Top assets", m->top, m->ntop);
    asset_list(x, "Bottom assets", m->bottom, m->nbottom);
    if ((rc = assets(x, m, err)) != SL_OK)
        goto out;
    rc = rxlsx_finish(&x, fd, size, err);
out:
    rxlsx_free(&x);
    return rc;
}
