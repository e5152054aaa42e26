/* reports_int.h -- what the files of reports/ share and nobody else sees:
 * the output plumbing every report uses (temporary files, the ETag digest,
 * Content-Disposition, number formats), the PDF layout kit (rpdf_*:
 * pdf.c, pdf_table.c, pdf_chart.c) and the XLSX kit (rxlsx_*: xlsx.c), and
 * the brand report's model (brand_model.c) with its two renderers
 * (brand_pdf.c, brand_xlsx.c).  A new report is a model, two renderers on
 * these kits, and an entry point in reports.h. */
#ifndef SIGHTLINE_REPORTS_INT_H
#define SIGHTLINE_REPORTS_INT_H

#include <stdint.h>
#include <stdio.h>

#include "reports.h"

/* ===========================================================================
 * Output plumbing (output.c).
 * ========================================================================= */

/* A new empty file in dir (NULL or "": $TMPDIR, else /tmp), already
 * unlinked: *fd is its only handle (the caller closes it).  SL_EIO naming
 * the directory otherwise. */
sl_status report__tmpfile(const char *dir, int *fd, sl_error *err);

/* The directory report__tmpfile uses for dir. */
const char *report__tmpdir(const char *dir);

/* The ETag digest: SHA-256 over what a report read (glib's GChecksum).
 * Every value is added with its length, so no two sequences collide by
 * concatenation. */
typedef struct report__digest report__digest;

/* A digest started with the report kind, the renderer version, the format,
 * the paper and the library versions (cairo, pango, libxlsxwriter).  NULL
 * when out of memory. */
report__digest *report__digest_new(const char *kind, int renderer_version,
                                   const report_options *opt);
void report__digest_str(report__digest *d, const char *s);
void report__digest_int(report__digest *d, int64_t v);
/* Writes the quoted strong entity tag ("\"<kind>-<64 hex>\"") and frees d. */
void report__digest_end(report__digest **d, char out[REPORT_ETAG_MAX]);
void report__digest_free(report__digest **d);

/* 1 when the If-None-Match value inm (a list of entity tags, or "*")
 * matches etag by the weak comparison (RFC 9110 13.1.2). */
int report__etag_match(const char *inm, const char *etag);

/* Fills out->disposition and out->filename for a download named
 * "<stem>.<ext>" (stem: UTF-8): the ASCII fallback keeps letters, digits,
 * '.', '-' and '_', turns every other run into one '_', and is at most
 * REPORT_FILENAME_MAX - 1 bytes; filename* carries the name itself,
 * percent-encoded, when it differs. */
void report__disposition(const char *stem, const char *ext, report_output *out);

/* Numbers as the reports print them (the tests format the JSON answers the
 * same way): scores with 4 decimals ("0.6123"), "-" for NaN; counts with a
 * comma every three digits ("100,000"). */
#define REPORT_NUM_MAX 32
const char *report__fmt_score(double v, char out[REPORT_NUM_MAX]);
const char *report__fmt_count(int64_t v, char out[REPORT_NUM_MAX]);
/* Money in cents as "$1,234.56" (the XLSX kit's currency format). */
const char *report__fmt_money(int64_t cents, char out[REPORT_NUM_MAX]);
/* A time into the surgery (ms) as "m:ss", or "h:mm:ss" from an hour on;
 * "-" when negative (never). */
const char *report__fmt_clock(int64_t ms, char out[REPORT_NUM_MAX]);

/* Points out[] (room for a->nmetrics) at the metrics of a that counted
 * something, in report order: memorability first, then the others by name
 * (the aggregate keeps them by name).  Returns how many. */
size_t report__metric_order(const engine_agg *a, const engine_metric **out);

/* The date the data carry, in ms since the epoch, for document metadata;
 * REPORT_NO_DATE_MS when the data hold none (the brand data: an asset
 * carries no time, so that a re-sent batch changes nothing): then the
 * documents carry 1980-01-01T00:00:00Z, the date libxlsxwriter gives every
 * zip entry. */
#define REPORT_NO_DATE_MS 315532800000LL

/* ===========================================================================
 * PDF layout kit (pdf.c, pdf_table.c, pdf_chart.c).
 *
 * A document is laid out top to bottom, page by page: each page is recorded
 * (a cairo recording surface) as it is laid out, and rpdf_finish() replays
 * the pages onto a cairo PDF surface, adding the footer with "page i of N"
 * once N is known.  Text is laid out by pango with the project's fonts only
 * (pdf.c: an fontconfig configuration holding just those files), no hinting,
 * at 72 dpi (sizes in points).  Nothing drawn leaves its box: a table cell
 * or a label too narrow for its text is cut with an ellipsis (and clipped
 * to its box besides); paragraphs wrap, breaking inside words if needed.
 * Drawing errors are sticky and reported by rpdf_finish().
 * ========================================================================= */
typedef struct rpdf rpdf;

typedef struct rpdf_meta {
    const char *title;   /* document title (metadata) and footer */
    const char *subject; /* may be NULL */
    int64_t date_ms;     /* CreationDate / ModDate: the data's date (REPORT_NO_DATE_MS) */
} rpdf_meta;

/* Font files (fonts-dejavu-core), in SIGHTLINE_FONT_DIR. */
#define RPDF_FONT_REGULAR "DejaVuSans.ttf"
#define RPDF_FONT_BOLD    "DejaVuSans-Bold.ttf"
#define RPDF_FONT_FAMILY  "DejaVu Sans"

/* A new document.  SL_EIO naming a font file that is missing. */
sl_status rpdf_new(report_paper paper, const rpdf_meta *meta, rpdf **out, sl_error *err);
void rpdf_free(rpdf **d);

double rpdf_content_width(const rpdf *d); /* points between the margins */

/* Blocks, laid out at the current position (a new page first when the
 * block does not fit the rest of this one). */
void rpdf_title(rpdf *d, const char *title, const char *subtitle);
void rpdf_heading(rpdf *d, const char *text);
void rpdf_paragraph(rpdf *d, const char *text);
/* Label / value pairs in two columns. */
void rpdf_facts(rpdf *d, const char *const *labels, const char *const *values, size_t n);
void rpdf_space(rpdf *d, double points);
void rpdf_page_break(rpdf *d);

/* Tables: columns of fixed widths (points; 0 = share what is left equally),
 * one header row repeated at the top of every page the table spans. */
typedef enum rpdf_align { RPDF_LEFT = 0, RPDF_RIGHT = 1 } rpdf_align;
typedef struct rpdf_col {
    const char *title;
    double width;
    rpdf_align align;
} rpdf_col;
#define RPDF_COLS_MAX 16

void rpdf_table_begin(rpdf *d, const rpdf_col *cols, size_t ncols);
/* One row: ncols cells (NULL is empty); bold for a group's first row. */
void rpdf_table_row(rpdf *d, const char *const *cells, int bold);
void rpdf_table_end(rpdf *d);

/* Bar charts, drawn as vectors.  A histogram has n adjacent bins over
 * [x_min, x_max] with the axis labelled at its ends and middle; plain bars
 * are labelled one by one (labels cut to fit). */
typedef struct rpdf_chart {
    const char *title;
    const double *values; /* n >= 1, each >= 0 */
    size_t n;
    const char *const *labels; /* bars: n labels; histogram: NULL */
    int histogram;
    double x_min, x_max; /* histogram */
    double height;       /* points of the plot area; 0: 120 */
    const char *caption; /* under the axis; may be NULL */
} rpdf_chart;

void rpdf_chart_bars(rpdf *d, const rpdf_chart *c);

/* A timeline: one row per span, a bar from `from` to `to` (on the table), a
 * filled mark at `mark` (it left) and a hollow one at `back` (it came back;
 * < 0: none), over an axis from 0 to x_max in x_unit; `note` is written at
 * the row's right end (the times as text, so they are in the text layer).
 * Rows break across pages, the axis repeated under each part. */
typedef struct rpdf_span {
    const char *label, *note;
    double from, to, mark, back;
} rpdf_span;
typedef struct rpdf_timeline {
    const char *title, *caption, *x_unit;
    const rpdf_span *spans;
    size_t n;
    double x_max;
} rpdf_timeline;
void rpdf_chart_timeline(rpdf *d, const rpdf_timeline *t);

/* Replays the pages with their footers onto a PDF written to fd (from its
 * current position); SL_EIO / SL_ENOMEM when drawing or writing failed. */
sl_status rpdf_finish(rpdf *d, int fd, sl_error *err);

/* For pdf_*.c: the pieces of the document they share. */
typedef struct _cairo cairo_t;
typedef struct _PangoLayout PangoLayout;
cairo_t *rpdf__cr(rpdf *d);
/* Lays text out in layout (bold, size in points, width in points or <= 0
 * for none, ellipsize 1 to cut with an ellipsis on one line, 0 to wrap).
 * The layout belongs to d. */
PangoLayout *rpdf__layout(rpdf *d, const char *text, int bold, double size, double width,
                          int ellipsize);
/* Height of one line of text of size points. */
double rpdf__line_height(rpdf *d, double size);
/* Ensures h points are left on the page (a new page otherwise: 1 when one
 * was started); *y the position to draw at, advanced by h. */
int rpdf__reserve(rpdf *d, double h, double *y);
double rpdf__left(const rpdf *d);
/* Draws layout at (x, y) clipped to the box w x h. */
void rpdf__show(rpdf *d, PangoLayout *layout, double x, double y, double w, double h);

/* ===========================================================================
 * XLSX kit (xlsx.c).  One sheet per table: a bold header row, frozen, with
 * an autofilter over the data and column widths; typed cells; native
 * charts.  The workbook is written in constant_memory mode (rows go to disk
 * as they are written, strings inline), so a sheet of a million rows costs
 * no more memory than one of ten: rows of a sheet must be written in order,
 * and the sheets may be written in any order.  Metadata and the creation
 * date come from the data; libxlsxwriter dates every zip entry 1980-01-01.
 * ========================================================================= */
typedef struct rxlsx rxlsx;
typedef struct rxlsx_sheet rxlsx_sheet;

typedef enum rxlsx_type {
    RXLSX_TEXT = 0,
    RXLSX_INT,     /* whole number, "#,##0" */
    RXLSX_SCORE,   /* number, "0.0000" (stored at full precision) */
    RXLSX_MONEY,   /* number of currency units, "$#,##0.00" */
    RXLSX_DATE,    /* an Excel date-time, "yyyy-mm-dd hh:mm" */
    RXLSX_DURATION /* an Excel time span, "[h]:mm:ss" (cells take ms) */
} rxlsx_type;

typedef struct rxlsx_col {
    const char *title;
    double width; /* characters */
    rxlsx_type type;
} rxlsx_col;

/* A new workbook writing to a file in tmpdir (report__tmpfile's rules).
 * title, subject: metadata; date_ms: its creation date. */
sl_status rxlsx_new(const char *tmpdir, const char *title, const char *subject, int64_t date_ms,
                    rxlsx **out, sl_error *err);
/* Frees everything; the file, if any, is removed.  NULL is fine. */
void rxlsx_free(rxlsx **x);

/* A sheet named name (at most 31 characters, none of []:*?/\), with its
 * header row written; NULL when the workbook refused it (the error is kept
 * for rxlsx_finish). */
rxlsx_sheet *rxlsx_sheet_new(rxlsx *x, const char *name, const rxlsx_col *cols, size_t ncols);
/* A sheet without a table (a summary or charts): no header, no filter. */
rxlsx_sheet *rxlsx_sheet_plain(rxlsx *x, const char *name, double col0_width, double col1_width);

/* Cells of data row `row` (0 = the first row under the header), typed by
 * their column (rxlsx_cell_num writes an INT/SCORE/MONEY column; dates
 * take ms since the epoch, UTC). */
void rxlsx_cell_text(rxlsx_sheet *s, uint32_t row, uint16_t col, const char *text);
void rxlsx_cell_num(rxlsx_sheet *s, uint32_t row, uint16_t col, double v);
void rxlsx_cell_date(rxlsx_sheet *s, uint32_t row, uint16_t col, int64_t ms);
/* A time span of ms milliseconds (a DURATION column); negative: empty. */
void rxlsx_cell_duration(rxlsx_sheet *s, uint32_t row, uint16_t col, int64_t ms);
/* Plain sheets: a label and a value in bold / normal at (row, col). */
void rxlsx_plain_text(rxlsx_sheet *s, uint32_t row, uint16_t col, const char *text, int bold);
void rxlsx_plain_num(rxlsx_sheet *s, uint32_t row, uint16_t col, double v, rxlsx_type type);
/* Ends a table sheet of nrows data rows: the autofilter over them. */
void rxlsx_sheet_end(rxlsx_sheet *s, uint32_t nrows);

/* A native column chart of the values in data rows [first, last] of column
 * value_col of sheet src, categories from cat_col, placed on sheet at at
 * (row, col) of that sheet's cells. */
typedef struct rxlsx_chart {
    const char *title, *x_title, *y_title;
    rxlsx_sheet *src;
    uint32_t first, last;
    uint16_t cat_col, value_col;
    int gap0; /* a histogram: no gap between the bars */
    int bar;  /* horizontal bars (categories down the side), not columns */
} rxlsx_chart;
void rxlsx_chart_column(rxlsx *x, rxlsx_sheet *at, uint32_t row, uint16_t col,
                        const rxlsx_chart *c);

/* Closes the workbook; on SL_OK *fd is the file (unlinked, the caller's)
 * of *size bytes.  x is freed whatever the outcome. */
sl_status rxlsx_finish(rxlsx **x, int *fd, uint64_t *size, sl_error *err);

/* ===========================================================================
 * The brand score report (brand_model.c, brand_pdf.c, brand_xlsx.c).
 * ========================================================================= */
#define REPORT_BRAND_RENDERER                                                                      \
    2 /* raise when a renderer's bytes change (2: the kit's duration format) */
#define REPORT_SECTORS_MAX 64 /* sectors of one brand compared; more are counted */

/* One listed asset (top and bottom lists). */
typedef struct report_asset {
    char asset[ENGINE_NAME_SIZE], campaign[ENGINE_NAME_SIZE], sector[ENGINE_NAME_SIZE];
    char media_type[16];
    char model_version[264];
    double memorability;        /* as received */
    int64_t memorability_micro; /* what ranks it */
    int64_t version;
} report_asset;

typedef struct report_sector {
    char name[ENGINE_NAME_SIZE];
    int64_t brand_assets; /* the brand's assets in it (as scanned) */
    engine_agg agg;       /* the sector's aggregate (kind 0: none) */
} report_sector;

typedef struct report_brand_model {
    /* what and how */
    char tenant[ENGINE_NAME_SIZE], brand[ENGINE_NAME_SIZE];
    report_options opt; /* with defaults filled in */
    store *snap;        /* the snapshot everything was read from (owned) */
    int64_t date_ms;    /* REPORT_NO_DATE_MS: brand data carry no date */
    char etag[REPORT_ETAG_MAX];
    /* aggregates */
    engine_agg brand_agg;
    engine_agg *campaigns; /* ncampaigns, by campaign name */
    size_t ncampaigns;
    int campaigns_more;     /* the brand has more than campaigns_max */
    report_sector *sectors; /* nsectors, by sector name */
    size_t nsectors;
    int64_t sectors_other; /* assets in sectors past REPORT_SECTORS_MAX */
    /* assets, as scanned */
    int64_t assets; /* listed through the asset index */
    size_t ntop, nbottom;
    report_asset *top;    /* ntop, best first */
    report_asset *bottom; /* nbottom, worst first */
    /* the metric names of the asset sheet: the brand aggregate's, then any
     * an asset carries that it lacks (a listener behind), sorted, bounded */
    char (*metrics)[ENGINE_METRIC_NAME_MAX + 1];
    size_t nmetrics;
} report_brand_model;

/* Fills *m (zeroed by the caller) from a snapshot of s; report_brand's
 * errors.  Free with report__brand_model_free() also on failure. */
sl_status report__brand_model_fill(store *s, const char *tenant, const char *brand,
                                   const report_options *opt, report_brand_model *m, sl_error *err);
void report__brand_model_free(report_brand_model *m);

/* Streams the brand's assets again, from the model's snapshot, in asset
 * index order (the XLSX asset sheet). */
typedef sl_status (*report_asset_fn)(void *ctx, const engine_asset *a, sl_error *err);
sl_status report__brand_assets_each(const report_brand_model *m, report_asset_fn fn, void *ctx,
                                    sl_error *err);

/* The renderers: read the model, write the file into *fd / *size. */
sl_status report__brand_pdf(const report_brand_model *m, int fd, sl_error *err);
sl_status report__brand_xlsx(const report_brand_model *m, int *fd, uint64_t *size, sl_error *err);

/* ===========================================================================
 * The surgery tool-usage report (surgery_model.c, surgery_pdf.c,
 * surgery_xlsx.c, surgery.c).  The model is the engine's tool-usage read
 * model (engine.h, engine_usage_view: one snapshot) plus what both
 * renderers derive from it, computed once here so they cannot disagree.
 * ========================================================================= */
#define REPORT_SURGERY_RENDERER 1 /* raise when a renderer's bytes change */

/* One line of the used or the unused table: a SKU with instances in it. */
typedef struct report_usage_line {
    const engine_usage_tool *tool;
    int64_t quantity;
    int64_t line_cents; /* used: quantity x unit cost; unused: the waste (single use only) */
} report_usage_line;

typedef struct report_surgery_model {
    report_options opt;
    engine_usage_view v;
    int64_t date_ms;     /* the surgery's start: the documents' date */
    int64_t duration_ms; /* the video: (last frame + 1) / fps */
    char etag[REPORT_ETAG_MAX];
    report_usage_line *used, *unused; /* nused, nunused, in the summary's (SKU) order */
    size_t nused, nunused;
    int64_t used_cents; /* sum of the used lines */
    size_t *departures; /* ndepartures instance indexes that left, by left_frame */
    size_t ndepartures;
    size_t catalog_changed; /* tools whose catalog entry differs now */
    size_t low_confidence;  /* decisions under REPORT_LOW_CONFIDENCE_MICRO */
} report_surgery_model;
#define REPORT_LOW_CONFIDENCE_MICRO 750000 /* a decision the notes point at */

/* ms into the surgery of frame f (at the model's fps). */
int64_t report__frame_ms(const report_surgery_model *m, int64_t frame);

sl_status report__surgery_model_fill(store *s, const char *tenant, const char *surgery,
                                     const report_options *opt, report_surgery_model *m,
                                     sl_error *err);
void report__surgery_model_free(report_surgery_model *m);
sl_status report__surgery_pdf(const report_surgery_model *m, int fd, sl_error *err);
sl_status report__surgery_xlsx(const report_surgery_model *m, int *fd, uint64_t *size,
                               sl_error *err);

#endif /* SIGHTLINE_REPORTS_INT_H */
