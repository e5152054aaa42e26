/* pdf.c -- the PDF layout kit's document: fonts, pages, text blocks and the
 * final replay onto a cairo PDF surface (reports_int.h, "PDF layout kit").
 *
 * Fonts: a fontconfig configuration per document that holds only the
 * project's font files (SIGHTLINE_FONT_DIR: fonts-dejavu-core) and no
 * configuration file of the machine's, so that no other font installed here
 * can be chosen, for any text; pango gets it through a font map of its own
 * per document (pango font maps are not to be shared across threads).
 * Text is laid out at 72 dpi with hinting off, so positions do not depend
 * on the machine's font settings either.
 *
 * Pages: each page is drawn onto a cairo recording surface while the
 * document is laid out; rpdf_finish() replays them onto the PDF with the
 * footer "page i of N", N known by then.  The PDF's dates are the data's
 * (rpdf_meta.date_ms), never the clock's: cairo 1.16 would write the
 * current time when none is set.  cairo names font subsets after a hash of
 * the glyphs they hold and numbers objects in drawing order, so the same
 * document gives the same bytes. */
#include "pdf_int.h"

#include <cairo-pdf.h>
#include <cairo.h>
#include <errno.h>
#include <fontconfig/fontconfig.h>
#include <glib.h>
#include <math.h>
#include <pango/pangocairo.h>
#include <pango/pangofc-fontmap.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef SIGHTLINE_FONT_DIR
#error "SIGHTLINE_FONT_DIR comes from CMakeLists.txt (the font package's folder)"
#endif

/* ---------------------------------------------------------------------------
 * Fonts.
 * ------------------------------------------------------------------------- */
/* A configuration holding only the project's font files and no rule of the
 * machine's, into *out; SL_EIO naming a file that cannot be read.  One per
 * document: a few milliseconds, and nothing is shared between threads (a
 * process-wide one would also read as leaked to LeakSanitizer, fontconfig
 * keeping its pointers as offsets). */
static sl_status fonts_make(FcConfig **out, sl_error *err)
{
    sl_status rc = SL_OK;
    const char *files[] = {RPDF_FONT_REGULAR, RPDF_FONT_BOLD};
    FcConfig *c = FcConfigCreate();
    if (!c) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory making the font configuration");
        goto out;
    }
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", SIGHTLINE_FONT_DIR, files[i]);
        errno = 0;
        if (access(path, R_OK) != 0 || !FcConfigAppFontAddFile(c, (const FcChar8 *)path)) {
            rc = sl_error_set(err, SL_EIO,
                              "font file %s cannot be read (%s): install the font package "
                              "(scripts/packages/build.txt: fonts-dejavu-core)",
                              path, errno ? strerror(errno) : "not a font");
            goto out;
        }
    }
    *out = c;
    c = NULL;
out:
    if (c)
        FcConfigDestroy(c);
    return rc;
}

/* At exit: pango reads fontconfig's default configuration once (the
 * machine's files, which select nothing here: every font map has the
 * configuration above); FcFini frees it, which LeakSanitizer would
 * otherwise report (fontconfig keeps pointers as offsets it cannot
 * follow).  Every document is freed by then. */
__attribute__((destructor)) static void fonts_fini(void)
{
    FcFini();
}

/* ---------------------------------------------------------------------------
 * The document.
 * ------------------------------------------------------------------------- */
static void fail(rpdf *d, sl_status s, const char *why)
{
    if (d->failed == SL_OK) {
        d->failed = s;
        snprintf(d->why, sizeof d->why, "%s", why);
    }
}

sl_status rpdf_new(report_paper paper, const rpdf_meta *meta, rpdf **out, sl_error *err)
{
    sl_status rc = SL_OK;
    rpdf *d = NULL;
    cairo_font_options_t *fo = NULL;
    FcConfig *fonts = NULL;
    if ((rc = fonts_make(&fonts, err)) != SL_OK)
        goto out;
    if (!(d = calloc(1, sizeof *d))) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory starting a PDF");
        goto out;
    }
    /* A4 is 210 x 297 mm, Letter 8.5 x 11 in, in points of 1/72 in. */
    d->page_w = paper == REPORT_LETTER ? 612.0 : 595.2756;
    d->page_h = paper == REPORT_LETTER ? 792.0 : 841.8898;
    d->top = MARGIN;
    d->bottom = d->page_h - MARGIN;
    d->y = d->top;
    d->title = g_strdup(meta->title ? meta->title : "");
    d->subject = g_strdup(meta->subject ? meta->subject : "");
    schema_time_format(meta->date_ms, d->date);
    d->date[19] = 'Z'; /* cairo takes YYYY-MM-DDThh:mm:ssZ */
    d->date[20] = '\0';
    d->fm = pango_cairo_font_map_new_for_font_type(CAIRO_FONT_TYPE_FT);
    if (!d->fm) {
        rc = sl_error_set(err, SL_EIO, "pango has no FreeType font map");
        goto out;
    }
    pango_fc_font_map_set_config(PANGO_FC_FONT_MAP(d->fm), fonts); /* takes a reference */
    pango_cairo_font_map_set_resolution(PANGO_CAIRO_FONT_MAP(d->fm), 72.0);
    d->ctx = pango_font_map_create_context(d->fm);
    fo = cairo_font_options_create();
    cairo_font_options_set_hint_style(fo, CAIRO_HINT_STYLE_NONE);
    cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
    cairo_font_options_set_antialias(fo, CAIRO_ANTIALIAS_GRAY);
    pango_cairo_context_set_font_options(d->ctx, fo);
    pango_cairo_context_set_resolution(d->ctx, 72.0);
    d->layout = pango_layout_new(d->ctx);
    d->probe = pango_layout_new(d->ctx);
    d->font = pango_font_description_new();
    pango_font_description_set_family_static(d->font, RPDF_FONT_FAMILY);
    d->font_size = -1;
    *out = d;
    d = NULL;
out:
    if (fonts)
        FcConfigDestroy(fonts); /* the font map holds it now */
    if (fo)
        cairo_font_options_destroy(fo);
    rpdf_free(&d);
    return rc;
}

void rpdf_free(rpdf **dp)
{
    rpdf *d = dp ? *dp : NULL;
    if (!d)
        return;
    if (d->cr)
        cairo_destroy(d->cr);
    for (size_t i = 0; i < d->npages; i++)
        cairo_surface_destroy(d->pages[i]);
    free(d->pages);
    if (d->font)
        pango_font_description_free(d->font);
    if (d->layout)
        g_object_unref(d->layout);
    if (d->probe)
        g_object_unref(d->probe);
    if (d->ctx)
        g_object_unref(d->ctx);
    if (d->fm) {
        /* pango 1.50 keeps its configuration (and the fonts loaded from it)
         * past the last unref unless told to let go. */
        pango_fc_font_map_shutdown(PANGO_FC_FONT_MAP(d->fm));
        pango_fc_font_map_set_config(PANGO_FC_FONT_MAP(d->fm), NULL);
        g_object_unref(d->fm);
    }
    g_free(d->title);
    g_free(d->subject);
    free(d);
    *dp = NULL;
}

double rpdf_content_width(const rpdf *d)
{
    return d->page_w - 2 * MARGIN;
}

double rpdf__left(const rpdf *d)
{
    (void)d;
    return MARGIN;
}

cairo_t *rpdf__cr(rpdf *d)
{
    return d->cr;
}

void rpdf__new_page(rpdf *d)
{
    if (d->cr) {
        cairo_destroy(d->cr);
        d->cr = NULL;
    }
    if (d->npages == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 16;
        cairo_surface_t **p = realloc(d->pages, cap * sizeof *p);
        if (!p) {
            fail(d, SL_ENOMEM, "out of memory adding a page");
            return;
        }
        d->pages = p;
        d->cap = cap;
    }
    cairo_rectangle_t r = {0, 0, d->page_w, d->page_h};
    d->pages[d->npages++] = cairo_recording_surface_create(CAIRO_CONTENT_COLOR_ALPHA, &r);
    d->cr = cairo_create(d->pages[d->npages - 1]);
    pango_cairo_update_context(d->cr, d->ctx);
    d->y = d->top;
}

int rpdf__reserve(rpdf *d, double h, double *y)
{
    int fresh = 0;
    if (!d->cr || (d->y + h > d->bottom && d->y > d->top)) {
        rpdf__new_page(d);
        fresh = 1;
    }
    /* Without a page (out of memory) nothing is drawn: rpdf_finish reports it. */
    *y = d->y;
    d->y += h;
    return fresh;
}

void rpdf_space(rpdf *d, double points)
{
    d->y += points;
}

void rpdf_page_break(rpdf *d)
{
    if (d->cr && d->y > d->top)
        rpdf__new_page(d);
}

/* Text that pango can take: valid UTF-8 (anything else becomes U+FFFD). */
static char *valid_text(const char *text)
{
    return g_utf8_make_valid(text ? text : "", -1);
}

PangoLayout *rpdf__layout(rpdf *d, const char *text, int bold, double size, double width,
                          int ellipsize)
{
    char *t = valid_text(text);
    if (bold != d->font_bold || size != d->font_size) {
        pango_font_description_set_weight(d->font, bold ? PANGO_WEIGHT_BOLD : PANGO_WEIGHT_NORMAL);
        pango_font_description_set_absolute_size(d->font, size * PANGO_SCALE);
        pango_layout_set_font_description(d->layout, d->font);
        d->font_bold = bold;
        d->font_size = size;
    }
    pango_layout_set_alignment(d->layout, PANGO_ALIGN_LEFT);
    pango_layout_set_width(d->layout, width > 0 ? (int)(width * PANGO_SCALE) : -1);
    pango_layout_set_ellipsize(d->layout, ellipsize ? PANGO_ELLIPSIZE_END : PANGO_ELLIPSIZE_NONE);
    pango_layout_set_single_paragraph_mode(d->layout, ellipsize ? TRUE : FALSE);
    pango_layout_set_wrap(d->layout, PANGO_WRAP_WORD_CHAR);
    pango_layout_set_text(d->layout, t, -1);
    g_free(t);
    return d->layout;
}

double rpdf__line_height(rpdf *d, double size)
{
    int w, h;
    for (size_t i = 0; i < d->nlh; i++)
        if (d->lh_size[i] == size)
            return d->lh_value[i];
    PangoFontDescription *f = pango_font_description_copy_static(d->font);
    pango_font_description_set_weight(f, PANGO_WEIGHT_NORMAL);
    pango_font_description_set_absolute_size(f, size * PANGO_SCALE);
    pango_layout_set_font_description(d->probe, f);
    pango_layout_set_text(d->probe, "Hg", -1);
    pango_layout_get_size(d->probe, &w, &h);
    pango_font_description_free(f);
    double v = (double)h / PANGO_SCALE;
    if (d->nlh < sizeof d->lh_size / sizeof d->lh_size[0]) {
        d->lh_size[d->nlh] = size;
        d->lh_value[d->nlh++] = v;
    }
    return v;
}

void rpdf__show(rpdf *d, PangoLayout *layout, double x, double y, double w, double h)
{
    cairo_t *cr = d->cr;
    if (!cr)
        return;
    cairo_save(cr);
    cairo_rectangle(cr, x, y, w, h);
    cairo_clip(cr);
    cairo_move_to(cr, x, y);
    pango_cairo_show_layout(cr, layout);
    cairo_restore(cr);
}

/* A block of text of the content width: wrapped (or cut) and drawn. */
static void text_block(rpdf *d, const char *text, int bold, double size, int ellipsize,
                       double gap_after, double r, double g, double b)
{
    double y, w = rpdf_content_width(d);
    int lw, lh;
    PangoLayout *l = rpdf__layout(d, text, bold, size, w, ellipsize);
    pango_layout_get_size(l, &lw, &lh);
    double h = (double)lh / PANGO_SCALE;
    if (h > d->bottom - d->top)
        h = d->bottom - d->top; /* a paragraph longer than a page is cut at its foot */
    rpdf__reserve(d, h + gap_after, &y);
    l = rpdf__layout(d, text, bold, size, w, ellipsize); /* a new page updated the context */
    if (d->cr)
        cairo_set_source_rgb(d->cr, r, g, b);
    rpdf__show(d, l, rpdf__left(d), y, w, h);
    if (d->cr)
        cairo_set_source_rgb(d->cr, 0, 0, 0);
}

void rpdf_title(rpdf *d, const char *title, const char *subtitle)
{
    text_block(d, title, 1, TITLE_SIZE, 1, 4, 0.08, 0.16, 0.32);
    if (subtitle)
        text_block(d, subtitle, 0, BODY_SIZE + 1, 0, 10, 0.3, 0.3, 0.3);
}

void rpdf_heading(rpdf *d, const char *text)
{
    double y;
    /* A heading keeps at least a few lines of what follows on its page. */
    double need = rpdf__line_height(d, HEAD_SIZE) + 6 + 4 * rpdf__line_height(d, BODY_SIZE);
    if (d->cr && d->y + need > d->bottom)
        rpdf__new_page(d);
    rpdf__reserve(d, 8, &y);
    text_block(d, text, 1, HEAD_SIZE, 1, 6, 0.08, 0.16, 0.32);
}

void rpdf_paragraph(rpdf *d, const char *text)
{
    text_block(d, text, 0, BODY_SIZE, 0, 6, 0, 0, 0);
}

void rpdf_facts(rpdf *d, const char *const *labels, const char *const *values, size_t n)
{
    double lw = 150, w = rpdf_content_width(d), lh = rpdf__line_height(d, BODY_SIZE) + 3;
    for (size_t i = 0; i < n; i++) {
        double y;
        rpdf__reserve(d, lh, &y);
        PangoLayout *l = rpdf__layout(d, labels[i], 1, BODY_SIZE, lw - 8, 1);
        rpdf__show(d, l, rpdf__left(d), y, lw - 8, lh);
        l = rpdf__layout(d, values[i], 0, BODY_SIZE, w - lw, 1);
        rpdf__show(d, l, rpdf__left(d) + lw, y, w - lw, lh);
    }
    rpdf_space(d, 6);
}

/* ---------------------------------------------------------------------------
 * The replay.
 * ------------------------------------------------------------------------- */
static cairo_status_t write_fd(void *closure, const unsigned char *data, unsigned int len)
{
    int fd = *(int *)closure;
    while (len) {
        ssize_t w = write(fd, data, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return CAIRO_STATUS_WRITE_ERROR;
        data += w;
        len -= (unsigned int)w;
    }
    return CAIRO_STATUS_SUCCESS;
}

sl_status rpdf_finish(rpdf *d, int fd, sl_error *err)
{
    sl_status rc = SL_OK;
    cairo_surface_t *pdf = NULL;
    cairo_t *cr = NULL;
    int fdv = fd;
    if (!d->npages)
        rpdf__new_page(d);
    if (d->cr) {
        cairo_destroy(d->cr);
        d->cr = NULL;
    }
    for (size_t i = 0; i < d->npages && d->failed == SL_OK; i++)
        if (cairo_surface_status(d->pages[i]) != CAIRO_STATUS_SUCCESS)
            fail(d, SL_ENOMEM, cairo_status_to_string(cairo_surface_status(d->pages[i])));
    if (d->failed != SL_OK) {
        rc = sl_error_set(err, d->failed, "laying out the PDF failed: %s", d->why);
        goto out;
    }
    pdf = cairo_pdf_surface_create_for_stream(write_fd, &fdv, d->page_w, d->page_h);
    cairo_pdf_surface_set_metadata(pdf, CAIRO_PDF_METADATA_TITLE, d->title);
    cairo_pdf_surface_set_metadata(pdf, CAIRO_PDF_METADATA_SUBJECT, d->subject);
    cairo_pdf_surface_set_metadata(pdf, CAIRO_PDF_METADATA_AUTHOR, "Sightline");
    cairo_pdf_surface_set_metadata(pdf, CAIRO_PDF_METADATA_CREATOR,
                                   "Sightline " SIGHTLINE_VERSION " reports");
    cairo_pdf_surface_set_metadata(pdf, CAIRO_PDF_METADATA_CREATE_DATE, d->date);
    cairo_pdf_surface_set_metadata(pdf, CAIRO_PDF_METADATA_MOD_DATE, d->date);
    cr = cairo_create(pdf);
    d->cr = cr;
    pango_cairo_update_context(cr, d->ctx);
    for (size_t i = 0; i < d->npages; i++) {
        char page[64];
        double fy = d->page_h - MARGIN + FOOTER_GAP - rpdf__line_height(d, FOOTER_SIZE);
        double w = rpdf_content_width(d);
        cairo_set_source_surface(cr, d->pages[i], 0, 0);
        cairo_paint(cr);
        cairo_set_source_rgb(cr, 0.45, 0.45, 0.45);
        cairo_set_line_width(cr, 0.5);
        cairo_move_to(cr, MARGIN, fy - 4);
        cairo_line_to(cr, MARGIN + w, fy - 4);
        cairo_stroke(cr);
        snprintf(page, sizeof page, "page %zu of %zu", i + 1, d->npages);
        PangoLayout *l = rpdf__layout(d, page, 0, FOOTER_SIZE, 90, 1);
        pango_layout_set_alignment(l, PANGO_ALIGN_RIGHT);
        rpdf__show(d, l, MARGIN + w - 90, fy, 90, 12);
        l = rpdf__layout(d, d->title, 0, FOOTER_SIZE, w - 110, 1);
        rpdf__show(d, l, MARGIN, fy, w - 110, 12);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_show_page(cr);
    }
    d->cr = NULL;
    cairo_destroy(cr);
    cr = NULL;
    cairo_surface_finish(pdf);
    if (cairo_surface_status(pdf) != CAIRO_STATUS_SUCCESS)
        rc = sl_error_set(err, SL_EIO, "writing the PDF failed: %s",
                          cairo_status_to_string(cairo_surface_status(pdf)));
out:
    if (cr)
        cairo_destroy(cr);
    if (pdf)
        cairo_surface_destroy(pdf);
    return rc;
}
