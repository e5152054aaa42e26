/* pdf_chart.c -- vector bar charts of the PDF layout kit: a histogram
 * (adjacent vertical bins over [x_min, x_max], the count axis rounded up to
 * a 1-2-5 step) and labelled bars (horizontal, one per label: names of any
 * length are cut to the label column with an ellipsis, the value is written
 * at the bar's end).  Everything is drawn as paths and pango text, so the
 * charts stay sharp at any zoom and their numbers are in the text layer. */
#include "pdf_int.h"

#include <math.h>
#include <stdio.h>

#define LABEL_SIZE 7.0

/* The smallest 1, 2 or 5 times a power of ten at least v (1 for v <= 0). */
static double nice_ceil(double v)
{
    if (!(v > 0))
        return 1;
    double p = pow(10, floor(log10(v)));
    return v <= p ? p : v <= 2 * p ? 2 * p : v <= 5 * p ? 5 * p : 10 * p;
}

static void number(double v, char *out, size_t cap)
{
    if (v == floor(v) && fabs(v) < 1e15)
        snprintf(out, cap, "%.0f", v);
    else
        snprintf(out, cap, "%.2f", v);
}

static void label(rpdf *d, const char *text, double x, double y, double w, int align_right,
                  int center)
{
    PangoLayout *l = rpdf__layout(d, text, 0, LABEL_SIZE, w, 1);
    if (align_right)
        pango_layout_set_alignment(l, PANGO_ALIGN_RIGHT);
    else if (center)
        pango_layout_set_alignment(l, PANGO_ALIGN_CENTER);
    rpdf__show(d, l, x, y, w, rpdf__line_height(d, LABEL_SIZE) + 1);
}

static void histogram(rpdf *d, const rpdf_chart *c, double top)
{
    cairo_t *cr = rpdf__cr(d);
    double lh = rpdf__line_height(d, LABEL_SIZE);
    double axis_w = 44, x0 = rpdf__left(d) + axis_w, w = rpdf_content_width(d) - axis_w - 8;
    double h = c->height > 0 ? c->height : 120, y0 = top + h; /* the baseline */
    double max = 0;
    char buf[32];
    for (size_t i = 0; i < c->n; i++)
        max = c->values[i] > max ? c->values[i] : max;
    double ymax = nice_ceil(max);
    /* grid and count axis: 0, half, top */
    cairo_set_line_width(cr, 0.4);
    for (int k = 0; k <= 2; k++) {
        double y = y0 - h * k / 2.0;
        cairo_set_source_rgb(cr, 0.8, 0.8, 0.8);
        cairo_move_to(cr, x0, y);
        cairo_line_to(cr, x0 + w, y);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        number(ymax * k / 2.0, buf, sizeof buf);
        label(d, buf, rpdf__left(d), y - lh / 2, axis_w - 4, 1, 0);
    }
    /* bins */
    cairo_set_source_rgb(cr, 0.22, 0.42, 0.69);
    double bw = w / (double)c->n;
    for (size_t i = 0; i < c->n; i++) {
        double bh = c->values[i] > 0 ? h * c->values[i] / ymax : 0;
        if (bh > 0) {
            cairo_rectangle(cr, x0 + bw * (double)i, y0 - bh, bw, bh);
            cairo_fill(cr);
        }
    }
    /* value axis: ends and middle */
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    for (int k = 0; k <= 2; k++) {
        double v = c->x_min + (c->x_max - c->x_min) * k / 2.0, x = x0 + w * k / 2.0;
        number(v, buf, sizeof buf);
        label(d, buf, x - 30, y0 + 2, 60, 0, 1);
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
}

static void bars(rpdf *d, const rpdf_chart *c, double top, double row)
{
    cairo_t *cr = rpdf__cr(d);
    double lw = 150, x0 = rpdf__left(d) + lw, w = rpdf_content_width(d) - lw - 60;
    double max = 0;
    char buf[32];
    for (size_t i = 0; i < c->n; i++)
        max = c->values[i] > max ? c->values[i] : max;
    double xmax = max > 0 ? max : 1;
    for (size_t i = 0; i < c->n; i++) {
        double y = top + row * (double)i, bw = w * (c->values[i] > 0 ? c->values[i] : 0) / xmax;
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        label(d, c->labels[i], rpdf__left(d), y + 1, lw - 6, 1, 0);
        cairo_set_source_rgb(cr, 0.22, 0.42, 0.69);
        cairo_rectangle(cr, x0, y + 2, bw, row - 4);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        report__fmt_score(c->values[i], buf);
        label(d, buf, x0 + bw + 3, y + 1, 56, 0, 0);
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
}

void rpdf_chart_bars(rpdf *d, const rpdf_chart *c)
{
    double lh = rpdf__line_height(d, LABEL_SIZE), th = rpdf__line_height(d, BODY_SIZE) + 4;
    double row = lh + 5, h = c->histogram ? (c->height > 0 ? c->height : 120) : row * (double)c->n;
    double need = th + h + (c->histogram ? lh + 6 : 0) + (c->caption ? lh + 4 : 0) + 10, y;
    if (c->n == 0)
        return;
    rpdf__reserve(d, need, &y);
    if (!rpdf__cr(d))
        return;
    PangoLayout *l = rpdf__layout(d, c->title, 1, BODY_SIZE, rpdf_content_width(d), 1);
    rpdf__show(d, l, rpdf__left(d), y, rpdf_content_width(d), th);
    if (c->histogram)
        histogram(d, c, y + th);
    else
        bars(d, c, y + th, row);
    if (c->caption) {
        cairo_set_source_rgb(rpdf__cr(d), 0.35, 0.35, 0.35);
        label(d, c->caption, rpdf__left(d), y + th + h + (c->histogram ? lh + 6 : 2),
              rpdf_content_width(d), 0, 1);
        cairo_set_source_rgb(rpdf__cr(d), 0, 0, 0);
    }
}

/* ---------------------------------------------------------------------------
 * Timelines.
 * ------------------------------------------------------------------------- */
#define TL_LABEL_W 150.0 /* the rows' labels */
#define TL_NOTE_W  110.0 /* the notes at the right */

/* Rows [first, first + k) drawn from top: title, rows, axis. */
static void timeline_part(rpdf *d, const rpdf_timeline *t, size_t first, size_t k, double top,
                          double th, double row, int cont)
{
    cairo_t *cr = rpdf__cr(d);
    double lh = rpdf__line_height(d, LABEL_SIZE);
    double x0 = rpdf__left(d) + TL_LABEL_W, w = rpdf_content_width(d) - TL_LABEL_W - TL_NOTE_W;
    double xmax = t->x_max > 0 ? t->x_max : 1, step = nice_ceil(xmax / 6.0);
    double y0 = top + th, y1 = y0 + row * (double)k;
    char title[300], buf[32];
    if (!cr)
        return;
    snprintf(title, sizeof title, "%s%s", t->title, cont ? " (continued)" : "");
    PangoLayout *l = rpdf__layout(d, title, 1, BODY_SIZE, rpdf_content_width(d), 1);
    rpdf__show(d, l, rpdf__left(d), top, rpdf_content_width(d), th);
    /* the grid: a line per tick, labelled under the rows */
    cairo_set_line_width(cr, 0.4);
    for (double v = 0; v <= xmax + step * 1e-9; v += step) {
        double x = x0 + w * v / xmax;
        cairo_set_source_rgb(cr, 0.85, 0.85, 0.85);
        cairo_move_to(cr, x, y0);
        cairo_line_to(cr, x, y1);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        number(v, buf, sizeof buf);
        label(d, buf, x - 20, y1 + 2, 40, 0, 1);
    }
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    if (t->x_unit)
        label(d, t->x_unit, x0 + w + 16, y1 + 2, TL_NOTE_W - 16, 0, 0);
    for (size_t i = 0; i < k; i++) {
        const rpdf_span *s = &t->spans[first + i];
        double y = y0 + row * (double)i, mid = y + row / 2;
        double a = s->from < 0 ? 0 : s->from > xmax ? xmax : s->from;
        double b = s->to < a ? a : s->to > xmax ? xmax : s->to;
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        label(d, s->label, rpdf__left(d), y + 1, TL_LABEL_W - 6, 1, 0);
        /* on the table: a light bar */
        cairo_set_source_rgb(cr, 0.75, 0.83, 0.93);
        cairo_rectangle(cr, x0 + w * a / xmax, mid - 2.5, w * (b - a) / xmax + 0.8, 5);
        cairo_fill(cr);
        if (s->mark >= 0) { /* left: a filled diamond */
            double x = x0 + w * (s->mark > xmax ? xmax : s->mark) / xmax;
            cairo_set_source_rgb(cr, 0.78, 0.23, 0.16);
            cairo_move_to(cr, x, mid - 4);
            cairo_line_to(cr, x + 4, mid);
            cairo_line_to(cr, x, mid + 4);
            cairo_line_to(cr, x - 4, mid);
            cairo_close_path(cr);
            cairo_fill(cr);
        }
        if (s->back >= 0) { /* back: a hollow circle */
            double x = x0 + w * (s->back > xmax ? xmax : s->back) / xmax;
            cairo_set_source_rgb(cr, 0.13, 0.45, 0.25);
            cairo_set_line_width(cr, 1.0);
            cairo_new_sub_path(cr);
            cairo_arc(cr, x, mid, 3, 0, 2 * 3.14159265358979);
            cairo_stroke(cr);
            cairo_set_line_width(cr, 0.4);
        }
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        if (s->note)
            label(d, s->note, x0 + w + 4, y + 1, TL_NOTE_W - 4, 0, 0);
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    (void)lh;
}

void rpdf_chart_timeline(rpdf *d, const rpdf_timeline *t)
{
    double lh = rpdf__line_height(d, LABEL_SIZE), th = rpdf__line_height(d, BODY_SIZE) + 4;
    double row = lh + 5, axis = lh + 6, y;
    size_t i = 0;
    if (t->n == 0)
        return;
    while (i < t->n) {
        if (!d->cr || d->y + th + 2 * row + axis + 10 > d->bottom)
            rpdf__new_page(d);
        double avail = d->bottom - d->y - th - axis - 10;
        size_t k = (size_t)(avail / row);
        if (k < 1)
            k = 1;
        if (k > t->n - i)
            k = t->n - i;
        rpdf__reserve(d, th + row * (double)k + axis + 10, &y);
        timeline_part(d, t, i, k, y, th, row, i > 0);
        i += k;
    }
    if (t->caption) {
        rpdf__reserve(d, lh + 6, &y);
        if (d->cr) {
            cairo_set_source_rgb(d->cr, 0.35, 0.35, 0.35);
            label(d, t->caption, rpdf__left(d), y, rpdf_content_width(d), 0, 0);
            cairo_set_source_rgb(d->cr, 0, 0, 0);
        }
    }
}
