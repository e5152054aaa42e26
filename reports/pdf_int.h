/* pdf_int.h -- the PDF layout kit's document, shared by pdf.c (document,
 * fonts, text, replay), pdf_table.c and pdf_chart.c; nobody else sees it. */
#ifndef SIGHTLINE_REPORTS_PDF_INT_H
#define SIGHTLINE_REPORTS_PDF_INT_H

#include <cairo.h>
#include <pango/pangocairo.h>

#include "reports_int.h"

#define MARGIN      48.0
#define FOOTER_GAP  22.0 /* from the bottom margin's edge to the footer's baseline area */
#define BODY_SIZE   9.0
#define TITLE_SIZE  18.0
#define HEAD_SIZE   12.5
#define FOOTER_SIZE 7.5

struct rpdf {
    double page_w, page_h;
    double top, bottom, y; /* the content area's top and bottom, the next position */
    char *title, *subject;
    char date[32]; /* ISO-8601, for cairo's metadata */
    PangoFontMap *fm;
    PangoContext *ctx;
    PangoLayout *layout;
    PangoLayout *probe; /* measures line heights, so as not to touch layout */
    PangoFontDescription *font;
    int font_bold;
    double font_size;
    /* line heights measured, by size (rpdf__line_height): a table row asks
     * for its height several times, and each measure is a pango layout */
    double lh_size[8], lh_value[8];
    size_t nlh;
    cairo_surface_t **pages;
    size_t npages, cap;
    cairo_t *cr; /* on the last page */
    sl_status failed;
    char why[200];
    /* the open table (pdf_table.c keeps its state here) */
    rpdf_col cols[RPDF_COLS_MAX];
    double widths[RPDF_COLS_MAX];
    size_t ncols;
    int in_table;
};

/* Starts a new page (pdf.c). */
void rpdf__new_page(rpdf *d);

#endif /* SIGHTLINE_REPORTS_PDF_INT_H */
