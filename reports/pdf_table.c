/* pdf_table.c -- tables of the PDF layout kit: fixed column widths, one
 * line per row, a header row repeated at the top of every page the table
 * spans.  A cell's text that does not fit its column is cut with an
 * ellipsis (pango measures it) and clipped to the cell, so no text ever
 * reaches the next cell, whatever it holds (right-to-left runs, combining
 * marks, emoji, 500 characters without a space). */
#include "pdf_int.h"

#include <string.h>

#define CELL_SIZE 8.0
#define CELL_PAD  3.0

static double row_height(rpdf *d)
{
    return rpdf__line_height(d, CELL_SIZE) + 2 * CELL_PAD;
}

/* Draws one row of cells at y (header: bold on a grey band). */
static void draw_row(rpdf *d, double y, const char *const *cells, int header, int bold)
{
    cairo_t *cr = rpdf__cr(d);
    double x = rpdf__left(d), h = row_height(d), w = 0;
    if (!cr)
        return;
    for (size_t i = 0; i < d->ncols; i++)
        w += d->widths[i];
    if (header) {
        cairo_set_source_rgb(cr, 0.86, 0.89, 0.94);
        cairo_rectangle(cr, x, y, w, h);
        cairo_fill(cr);
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    for (size_t i = 0; i < d->ncols; i++) {
        double cw = d->widths[i] - 2 * CELL_PAD;
        const char *t = cells[i] ? cells[i] : "";
        if (cw > 1 && t[0]) {
            PangoLayout *l = rpdf__layout(d, t, header || bold, CELL_SIZE, cw, 1);
            if (d->cols[i].align == RPDF_RIGHT)
                pango_layout_set_alignment(l, PANGO_ALIGN_RIGHT);
            rpdf__show(d, l, x + CELL_PAD, y + CELL_PAD, cw, h - 2 * CELL_PAD);
        }
        x += d->widths[i];
    }
    cairo_set_source_rgb(cr, 0.75, 0.75, 0.75);
    cairo_set_line_width(cr, 0.4);
    cairo_move_to(cr, rpdf__left(d), y + h);
    cairo_line_to(cr, rpdf__left(d) + w, y + h);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
}

static void draw_header(rpdf *d)
{
    const char *titles[RPDF_COLS_MAX];
    double y;
    for (size_t i = 0; i < d->ncols; i++)
        titles[i] = d->cols[i].title;
    rpdf__reserve(d, row_height(d), &y);
    draw_row(d, y, titles, 1, 1);
}

void rpdf_table_begin(rpdf *d, const rpdf_col *cols, size_t ncols)
{
    double fixed = 0, total = rpdf_content_width(d), y;
    size_t shared = 0;
    if (ncols > RPDF_COLS_MAX)
        ncols = RPDF_COLS_MAX;
    memcpy(d->cols, cols, ncols * sizeof *cols);
    d->ncols = ncols;
    for (size_t i = 0; i < ncols; i++) {
        fixed += cols[i].width > 0 ? cols[i].width : 0;
        shared += cols[i].width > 0 ? 0 : 1;
    }
    double rest = total > fixed ? total - fixed : 0, scale = fixed > total ? total / fixed : 1;
    for (size_t i = 0; i < ncols; i++)
        d->widths[i] = cols[i].width > 0 ? cols[i].width * scale : rest / (double)shared;
    /* The header is never the last line of a page: it keeps a row with it. */
    if (d->cr && d->y + 2 * row_height(d) > d->bottom)
        rpdf__new_page(d);
    (void)y;
    draw_header(d);
    d->in_table = 1;
}

void rpdf_table_row(rpdf *d, const char *const *cells, int bold)
{
    double y;
    if (rpdf__reserve(d, row_height(d), &y)) {
        /* A new page: the header again, then the row under it. */
        d->y = y;
        draw_header(d);
        rpdf__reserve(d, row_height(d), &y);
    }
    draw_row(d, y, cells, 0, bold);
}

void rpdf_table_end(rpdf *d)
{
    d->in_table = 0;
    rpdf_space(d, 8);
}
