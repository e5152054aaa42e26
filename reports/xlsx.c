/* xlsx.c -- the XLSX kit (reports_int.h, "XLSX kit") on libxlsxwriter 1.1.4.
 *
 * libxlsxwriter writes to a file name: the workbook goes to a file made in
 * the temporary directory (report__tmpfile's folder) whose name lives only
 * while the workbook is written; rxlsx_finish() opens it, unlinks it and
 * hands the descriptor over, and every failure path removes it.
 * libxlsxwriter's own temporary files (one per sheet in constant_memory
 * mode) go to the same folder and are unlinked by it as soon as they are
 * made.
 *
 * Determinism: docProps/core.xml's dcterms:created and dcterms:modified
 * both come from lxw_doc_properties.created, set here from the data (1.1.4
 * writes the clock's time when it is 0, so REPORT_NO_DATE_MS is used, never
 * 0); every zip entry is dated 1980-01-01 00:00 by libxlsxwriter's packager
 * (fixed in its code); nothing else in the package holds a time or a random
 * value.  Numbers are written by libxlsxwriter with "%.16G": 16 significant
 * digits, one more than Excel keeps. */
#include "reports_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xlsxwriter.h>

#define SHEETS_MAX 32

struct rxlsx_sheet {
    rxlsx *x;
    lxw_worksheet *ws;
    char name[32];
    rxlsx_col cols[64];
    uint16_t ncols;
};

struct rxlsx {
    lxw_workbook *wb;
    char path[4096];
    char *title, *subject;
    lxw_format *bold, *header, *integer, *score, *money, *date, *duration;
    rxlsx_sheet sheets[SHEETS_MAX];
    size_t nsheets;
    lxw_error failed;
    char why[200];
};

static void fail(rxlsx *x, lxw_error e, const char *what)
{
    if (e != LXW_NO_ERROR && x->failed == LXW_NO_ERROR) {
        x->failed = e;
        snprintf(x->why, sizeof x->why, "%s: %s", what, lxw_strerror(e));
    }
}

sl_status rxlsx_new(const char *tmpdir, const char *title, const char *subject, int64_t date_ms,
                    rxlsx **out, sl_error *err)
{
    sl_status rc = SL_OK;
    rxlsx *x = calloc(1, sizeof *x);
    const char *dir = report__tmpdir(tmpdir);
    if (!x) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory starting an XLSX");
        goto out;
    }
    int n = snprintf(x->path, sizeof x->path, "%s/sl-report-XXXXXX", dir);
    int fd = n > 0 && (size_t)n < sizeof x->path ? mkostemp(x->path, O_CLOEXEC) : -1;
    if (fd < 0) {
        x->path[0] = '\0';
        rc = sl_error_set_at(err, errno == ENOSPC ? SL_EBUSY : SL_EIO, "tmpdir", -1,
                             "cannot make a report file in %.200s: %s", dir, strerror(errno));
        goto out;
    }
    close(fd); /* libxlsxwriter opens it again by name */
    lxw_workbook_options o = {.constant_memory = LXW_TRUE, .tmpdir = (char *)dir};
    if (!(x->wb = workbook_new_opt(x->path, &o))) {
        rc = sl_error_set(err, SL_ENOMEM, "libxlsxwriter could not start a workbook");
        goto out;
    }
    x->title = strdup(title ? title : "");
    x->subject = strdup(subject ? subject : "");
    lxw_doc_properties p = {.title = x->title,
                            .subject = x->subject,
                            .author = "Sightline",
                            .company = "Sightline",
                            .comments = "Sightline " SIGHTLINE_VERSION " reports",
                            .created =
                                (time_t)((date_ms > 0 ? date_ms : REPORT_NO_DATE_MS) / 1000)};
    fail(x, workbook_set_properties(x->wb, &p), "document properties");
    x->bold = workbook_add_format(x->wb);
    format_set_bold(x->bold);
    x->header = workbook_add_format(x->wb);
    format_set_bold(x->header);
    format_set_bg_color(x->header, 0xDCE3EF);
    format_set_bottom(x->header, LXW_BORDER_THIN);
    x->integer = workbook_add_format(x->wb);
    format_set_num_format(x->integer, "#,##0");
    x->score = workbook_add_format(x->wb);
    format_set_num_format(x->score, "0.0000");
    x->money = workbook_add_format(x->wb);
    format_set_num_format(x->money, "\"$\"#,##0.00");
    x->date = workbook_add_format(x->wb);
    format_set_num_format(x->date, "yyyy-mm-dd hh:mm");
    x->duration = workbook_add_format(x->wb);
    format_set_num_format(x->duration, "[h]:mm:ss");
    *out = x;
    x = NULL;
out:
    rxlsx_free(&x);
    return rc;
}

void rxlsx_free(rxlsx **xp)
{
    rxlsx *x = xp ? *xp : NULL;
    if (!x)
        return;
    if (x->wb) {
        /* Closing is the only way to free a workbook: what it writes is
         * removed below. */
        workbook_close(x->wb);
    }
    if (x->path[0])
        unlink(x->path);
    free(x->title);
    free(x->subject);
    free(x);
    *xp = NULL;
}

static rxlsx_sheet *sheet_add(rxlsx *x, const char *name)
{
    if (x->nsheets == SHEETS_MAX) {
        fail(x, LXW_ERROR_PARAMETER_VALIDATION, "too many sheets");
        return NULL;
    }
    lxw_error e = workbook_validate_sheet_name(x->wb, name);
    if (e != LXW_NO_ERROR) {
        fail(x, e, name);
        return NULL;
    }
    rxlsx_sheet *s = &x->sheets[x->nsheets];
    if (!(s->ws = workbook_add_worksheet(x->wb, name))) {
        fail(x, LXW_ERROR_MEMORY_MALLOC_FAILED, name);
        return NULL;
    }
    s->x = x;
    snprintf(s->name, sizeof s->name, "%s", name);
    x->nsheets++;
    return s;
}

rxlsx_sheet *rxlsx_sheet_new(rxlsx *x, const char *name, const rxlsx_col *cols, size_t ncols)
{
    rxlsx_sheet *s = sheet_add(x, name);
    if (!s)
        return NULL;
    if (ncols > sizeof s->cols / sizeof s->cols[0])
        ncols = sizeof s->cols / sizeof s->cols[0];
    memcpy(s->cols, cols, ncols * sizeof *cols);
    s->ncols = (uint16_t)ncols;
    for (uint16_t c = 0; c < s->ncols; c++) {
        fail(x, worksheet_set_column(s->ws, c, c, cols[c].width, NULL), name);
        fail(x, worksheet_write_string(s->ws, 0, c, cols[c].title, x->header), name);
    }
    worksheet_freeze_panes(s->ws, 1, 0);
    return s;
}

rxlsx_sheet *rxlsx_sheet_plain(rxlsx *x, const char *name, double col0_width, double col1_width)
{
    rxlsx_sheet *s = sheet_add(x, name);
    if (s) {
        worksheet_set_column(s->ws, 0, 0, col0_width, NULL);
        worksheet_set_column(s->ws, 1, 1, col1_width, NULL);
    }
    return s;
}

static lxw_format *format_of(rxlsx *x, rxlsx_type t)
{
    return t == RXLSX_INT        ? x->integer
           : t == RXLSX_SCORE    ? x->score
           : t == RXLSX_MONEY    ? x->money
           : t == RXLSX_DATE     ? x->date
           : t == RXLSX_DURATION ? x->duration
                                 : NULL;
}

void rxlsx_cell_text(rxlsx_sheet *s, uint32_t row, uint16_t col, const char *text)
{
    if (s && text && text[0])
        fail(s->x, worksheet_write_string(s->ws, row + 1, col, text, NULL), s->name);
}

void rxlsx_cell_num(rxlsx_sheet *s, uint32_t row, uint16_t col, double v)
{
    if (s && col < s->ncols && v == v) /* NaN: an empty cell */
        fail(s->x,
             worksheet_write_number(s->ws, row + 1, col, v, format_of(s->x, s->cols[col].type)),
             s->name);
}

/* Excel's serial date: days since 1899-12-30, the epoch being day 25569. */
static double excel_date(int64_t ms)
{
    return 25569.0 + (double)ms / 86400000.0;
}

void rxlsx_cell_date(rxlsx_sheet *s, uint32_t row, uint16_t col, int64_t ms)
{
    if (s)
        fail(s->x, worksheet_write_number(s->ws, row + 1, col, excel_date(ms), s->x->date),
             s->name);
}

void rxlsx_cell_duration(rxlsx_sheet *s, uint32_t row, uint16_t col, int64_t ms)
{
    if (s && ms >= 0)
        fail(s->x,
             worksheet_write_number(s->ws, row + 1, col, (double)ms / 86400000.0, s->x->duration),
             s->name);
}

void rxlsx_plain_text(rxlsx_sheet *s, uint32_t row, uint16_t col, const char *text, int bold)
{
    if (s && text && text[0])
        fail(s->x, worksheet_write_string(s->ws, row, col, text, bold ? s->x->bold : NULL),
             s->name);
}

void rxlsx_plain_num(rxlsx_sheet *s, uint32_t row, uint16_t col, double v, rxlsx_type type)
{
    if (s && v == v)
        fail(s->x,
             worksheet_write_number(s->ws, row, col,
                                    type == RXLSX_DATE       ? excel_date((int64_t)v)
                                    : type == RXLSX_DURATION ? v / 86400000.0
                                                             : v,
                                    format_of(s->x, type)),
             s->name);
}

void rxlsx_sheet_end(rxlsx_sheet *s, uint32_t nrows)
{
    if (s && s->ncols)
        fail(s->x, worksheet_autofilter(s->ws, 0, 0, nrows, (lxw_col_t)(s->ncols - 1)), s->name);
}

void rxlsx_chart_column(rxlsx *x, rxlsx_sheet *at, uint32_t row, uint16_t col, const rxlsx_chart *c)
{
    if (!at || !c->src)
        return;
    lxw_chart *ch = workbook_add_chart(x->wb, c->bar ? LXW_CHART_BAR : LXW_CHART_COLUMN);
    if (!ch) {
        fail(x, LXW_ERROR_MEMORY_MALLOC_FAILED, "chart");
        return;
    }
    lxw_chart_series *se = chart_add_series(ch, NULL, NULL);
    chart_series_set_categories(se, c->src->name, c->first + 1, c->cat_col, c->last + 1,
                                c->cat_col);
    chart_series_set_values(se, c->src->name, c->first + 1, c->value_col, c->last + 1,
                            c->value_col);
    chart_title_set_name(ch, c->title);
    if (c->x_title)
        chart_axis_set_name(ch->x_axis, c->x_title);
    if (c->y_title)
        chart_axis_set_name(ch->y_axis, c->y_title);
    chart_legend_set_position(ch, LXW_CHART_LEGEND_NONE);
    if (c->gap0)
        chart_set_series_gap(ch, 0);
    if (c->bar) /* the first category at the top, as the sheet reads */
        chart_axis_set_reverse(ch->x_axis);
    /* bars: tall enough for a readable row each (Excel's default 15 rows) */
    double rows = (double)(c->last - c->first + 1);
    lxw_chart_options o = {.x_scale = 1.6,
                           .y_scale = c->bar && rows > 12 ? 1.1 * (rows / 12.0) : 1.1};
    fail(x, worksheet_insert_chart_opt(at->ws, row, col, ch, &o), at->name);
}

sl_status rxlsx_finish(rxlsx **xp, int *fd, uint64_t *size, sl_error *err)
{
    sl_status rc = SL_OK;
    rxlsx *x = *xp;
    struct stat st;
    int f = -1;
    if (x->failed != LXW_NO_ERROR) {
        rc = sl_error_set(err, SL_EINTERNAL, "writing the XLSX failed: %s", x->why);
        goto out;
    }
    lxw_error e = workbook_close(x->wb);
    x->wb = NULL;
    if (e != LXW_NO_ERROR) {
        rc = sl_error_set(err, e == LXW_ERROR_MEMORY_MALLOC_FAILED ? SL_ENOMEM : SL_EIO,
                          "writing the XLSX failed: %s", lxw_strerror(e));
        goto out;
    }
    if ((f = open(x->path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(f, &st) != 0) {
        rc = sl_error_set(err, SL_EIO, "reading the XLSX back failed: %s", strerror(errno));
        goto out;
    }
    *fd = f;
    *size = (uint64_t)st.st_size;
    f = -1;
out:
    if (f >= 0)
        close(f);
    rxlsx_free(xp); /* unlinks the file: the descriptor is its only handle */
    return rc;
}
