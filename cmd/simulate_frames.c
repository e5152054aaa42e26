/* simulate_frames.c -- the detector model: what a real detector would emit,
 * frame by frame, for a scenario (docs/scenarios.md, "Detector"), written as
 * darknet `-out` JSON or Sightline NDJSON.  Streaming: the state is per tool
 * and per occluder, never per frame.  The detector knows nothing of tracks or
 * instances: it emits boxes, labels and confidences per frame.
 *
 * Random streams: one per tool for presence (bursts, misses, occlusion) and
 * one for appearance (jitter, confidence, label variant), one for occluders,
 * one for false positives; so turning one knob leaves the draws of the others
 * where they were (a test can compare two runs that differ in one knob). */
#include "simulate.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The output buffer, and the room kept free for one detection (a label is at
 * most 128 bytes, 768 escaped; the rest of a record is under 300). */
#define OUT_CAP   (1u << 20)
#define OUT_SLACK 4096u

typedef struct out {
    char *buf;
    size_t len;
    FILE *f;
    const char *path;
    sl_status rc;
    sl_error *err;
} out;

static void out_flush(out *o)
{
    if (o->rc == SL_OK && o->len && fwrite(o->buf, 1, o->len, o->f) != o->len)
        o->rc = sl_error_set(o->err, SL_EIO, "%s: cannot write: %s", o->path, strerror(errno));
    o->len = 0;
}

/* Room for one more record; flushes when short. */
static inline char *out_room(out *o)
{
    if (o->len + OUT_SLACK > OUT_CAP)
        out_flush(o);
    return o->buf + o->len;
}

static inline char *put(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

static inline char *put_int(char *p, int64_t v)
{
    char tmp[24];
    int n = 0;
    if (v < 0) {
        *p++ = '-';
        v = -v;
    }
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static inline int64_t clamp64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* One detection, box given by its centre and size (micro-units). */
typedef struct det {
    const char *label_json;
    uint32_t class_id;
    int64_t cx, cy, w, h, conf;
} det;

typedef struct writer {
    const sim_scenario *sc;
    sim_format fmt;
    out o;
    uint64_t in_frame; /* detections written in the current frame */
    sim_stats *st;
} writer;

static void frame_begin(writer *w, int64_t f)
{
    char *p = out_room(&w->o);
    if (w->fmt == SIM_FORMAT_DARKNET) {
        /* darknet's detection_to_json(), with -out's ", \n" between frames */
        if (f > 0)
            p = put(p, ", \n");
        p = put(p, "{\n \"frame_id\":");
        p = put_int(p, f);
        p = put(p, ", \n \"filename\":\"frames/frame");
        char num[16];
        int64_t v = f;
        for (int i = 8; i >= 0; i--, v /= 10)
            num[i] = (char)('0' + v % 10);
        num[9] = '\0';
        p = put(p, num);
        p = put(p, ".jpg\", \n \"objects\": [ \n");
    } else {
        p = put(p, "{\"frame\": ");
        p = put_int(p, f);
        p = put(p, ", \"detections\": [");
    }
    w->o.len = (size_t)(p - w->o.buf);
    w->in_frame = 0;
}

static void frame_end(writer *w)
{
    char *p = out_room(&w->o);
    if (w->fmt == SIM_FORMAT_DARKNET)
        p = put(p, "\n ] \n}"); /* after the last object, or "[ \n" when none */
    else
        p = put(p, "]}\n");
    w->o.len = (size_t)(p - w->o.buf);
    w->st->frames++;
    if (!w->in_frame)
        w->st->empty_frames++;
}

/* A box's start and size along one axis from its centre and size (micro),
 * cut to the image as ingest cuts a detector's box (ingest__box_set, then
 * micro-units by rounding). */
static void clip(int64_t c, int64_t size, int64_t *start, int64_t *len)
{
    double cd = (double)c / 1e6, sd = (double)size / 1e6;
    double a = cd - sd / 2, b = a + sd;
    double a0 = a < 0 ? 0 : a, b0 = b > 1 ? 1 : b;
    *start = llround(a0 * 1e6);
    *len = llround((b0 - a0) * 1e6);
    /* Rounding both may pass the edge by a millionth, which NDJSON refuses
     * (ingest stores the darknet box so; then the two formats differ by it). */
    if (*start + *len > 1000000)
        *len = 1000000 - *start;
}

static void emit(writer *w, const det *d)
{
    char *p = out_room(&w->o);
    int64_t cx = clamp64(d->cx, 1, 999999), cy = clamp64(d->cy, 1, 999999);
    int64_t bw = clamp64(d->w, 1, 1000000), bh = clamp64(d->h, 1, 1000000);
    if (w->fmt == SIM_FORMAT_DARKNET) {
        if (w->in_frame)
            p = put(p, ", \n");
        p = put(p, "  {\"class_id\":");
        p = put_int(p, d->class_id);
        p = put(p, ", \"name\":\"");
        p = put(p, d->label_json);
        p = put(p, "\", \"relative_coordinates\":{\"center_x\":");
        p = sim_fmt_micro(p, cx);
        p = put(p, ", \"center_y\":");
        p = sim_fmt_micro(p, cy);
        p = put(p, ", \"width\":");
        p = sim_fmt_micro(p, bw);
        p = put(p, ", \"height\":");
        p = sim_fmt_micro(p, bh);
        p = put(p, "}, \"confidence\":");
        p = sim_fmt_micro(p, d->conf);
        *p++ = '}';
    } else {
        /* Sightline NDJSON boxes lie inside the image: clipped as ingest
         * clips the darknet box, with the same arithmetic, so that both
         * formats of a run store the same documents. */
        int64_t x0, xw, y0, yh;
        clip(cx, bw, &x0, &xw);
        clip(cy, bh, &y0, &yh);
        if (w->in_frame)
            p = put(p, ", ");
        p = put(p, "{\"label\": \"");
        p = put(p, d->label_json);
        p = put(p, "\", \"confidence\": ");
        p = sim_fmt_micro(p, d->conf);
        p = put(p, ", \"box\": {\"x\": ");
        p = sim_fmt_micro(p, x0);
        p = put(p, ", \"y\": ");
        p = sim_fmt_micro(p, y0);
        p = put(p, ", \"w\": ");
        p = sim_fmt_micro(p, xw);
        p = put(p, ", \"h\": ");
        p = sim_fmt_micro(p, yh);
        p = put(p, "}}");
    }
    w->o.len = (size_t)(p - w->o.buf);
    w->in_frame++;
    w->st->detections++;
}

/* ---------------------------------------------------------------------------
 * The model.
 * ------------------------------------------------------------------------- */
typedef struct tool_rt {
    size_t seg;
    int64_t burst_left;
    bool cooldown; /* a burst just ended: none starts on this frame */
    sim_rng presence, look;
} tool_rt;

static double cover_of(const sim_box *tool, const sim_box *occ)
{
    double ix = fmin(tool->x + tool->w, occ->x + occ->w) - fmax(tool->x, occ->x);
    double iy = fmin(tool->y + tool->h, occ->y + occ->h) - fmax(tool->y, occ->y);
    return ix > 0 && iy > 0 ? ix * iy / (tool->w * tool->h) : 0.0;
}

static sim_box lerp(const sim_box *a, const sim_box *b, double u)
{
    return (sim_box){a->x + (b->x - a->x) * u, a->y + (b->y - a->y) * u, a->w + (b->w - a->w) * u,
                     a->h + (b->h - a->h) * u};
}

static sim_box person_box(const sim_person *p, int64_t f)
{
    if (p->npath == 1)
        return p->path[0];
    double u = (double)(f - p->from) / (double)(p->to - p->from) * (double)(p->npath - 1);
    size_t i = (size_t)u;
    if (i >= p->npath - 1)
        return p->path[p->npath - 1];
    return lerp(&p->path[i], &p->path[i + 1], u - (double)i);
}

/* A confidence drawn around mean; 0 when below the detector's threshold
 * (then nothing is emitted). */
static int64_t confidence(const sim_detector *d, sim_rng *r, double mean, double factor)
{
    double c = mean;
    if (d->conf_sd > 0)
        c += d->conf_sd * sim_rng_normal(r);
    c *= factor;
    if (c > d->conf_max)
        c = d->conf_max;
    if (c > 1.0)
        c = 1.0;
    return c < d->threshold || c <= 0 ? 0 : sim_micro(c);
}

/* The box as emitted: jittered by jitter_px (sd, in pixels) on each edge. */
static void jittered(const sim_scenario *sc, sim_rng *r, const sim_box *b, det *d)
{
    double cx = b->x + b->w / 2, cy = b->y + b->h / 2, w = b->w, h = b->h;
    if (sc->det.jitter_px > 0) {
        double jx = sc->det.jitter_px / sc->frame_width, jy = sc->det.jitter_px / sc->frame_height;
        cx += jx * sim_rng_normal(r);
        cy += jy * sim_rng_normal(r);
        w += jx * sim_rng_normal(r);
        h += jy * sim_rng_normal(r);
    }
    d->cx = sim_micro(cx);
    d->cy = sim_micro(cy);
    d->w = sim_micro(w);
    d->h = sim_micro(h);
}

typedef struct model {
    const sim_scenario *sc;
    writer *w;
    sim_stats *st;
    tool_rt *rt;
    size_t *active; /* indexes of the occluders present in this frame */
    sim_box *abox;  /* and their boxes */
    size_t nactive, next_person;
    sim_rng people, fp;
    double burst_p;
} model;

static void tool_frame(model *m, size_t i, int64_t f)
{
    const sim_scenario *sc = m->sc;
    const sim_detector *d = &sc->det;
    const sim_tool *t = &sc->tools[i];
    tool_rt *rt = &m->rt[i];
    if (f < t->opened_frame)
        return; /* still closed, off the table */
    while (t->segs[rt->seg].to <= f)
        rt->seg++;
    const sim_seg *s = &t->segs[rt->seg];
    /* The burst process runs from the opening on, seen or not. */
    bool burst = false;
    if (rt->burst_left > 0) {
        burst = true;
        rt->cooldown = --rt->burst_left == 0;
    } else if (rt->cooldown) {
        rt->cooldown = false;
    } else if (m->burst_p > 0 && sim_rng_uniform(&rt->presence) < m->burst_p) {
        int64_t len = d->burst_min +
                      sim_rng_below(&rt->presence, (uint32_t)(d->burst_max - d->burst_min + 1));
        burst = true;
        rt->burst_left = len - 1;
        rt->cooldown = rt->burst_left == 0;
        m->st->bursts++;
    }
    sim_box b;
    if (s->kind == SIM_SEG_ON)
        b = s->a;
    else if (s->kind == SIM_SEG_SLIDE)
        b = lerp(&s->a, &s->b, (double)(f - s->from) / (double)(s->to - s->from));
    else if (s->seen && f < s->seen_to)
        b = s->a;
    else
        return; /* held out of sight, or gone */
    double factor = 1.0;
    for (size_t k = 0; k < m->nactive; k++)
        if (cover_of(&b, &m->abox[k]) >= d->occl_cover) {
            if (d->occl_hide >= 1.0 || sim_rng_uniform(&rt->presence) < d->occl_hide) {
                m->st->occluded_hidden++;
                return;
            }
            factor = d->occl_factor;
            m->st->occluded_dimmed++;
            break;
        }
    if (burst || (t->miss_rate > 0 && sim_rng_uniform(&rt->presence) < t->miss_rate)) {
        m->st->missed++;
        return;
    }
    det e;
    jittered(sc, &rt->look, &b, &e);
    if ((e.conf = confidence(d, &rt->look, t->conf_mean, factor)) == 0) {
        m->st->below_threshold++;
        return;
    }
    size_t k = 0;
    if (t->nlabels > 1 && t->variant_rate > 0 && sim_rng_uniform(&rt->look) < t->variant_rate) {
        k = 1 + sim_rng_below(&rt->look, (uint32_t)(t->nlabels - 1));
        m->st->variants++;
    }
    e.label_json = t->labels_json[k];
    e.class_id = t->class_ids[k];
    emit(m->w, &e);
    if (s->kind == SIM_SEG_OFF)
        m->st->seen_off_table++;
    else
        m->st->tool_detections++;
}

/* Occluders present in frame f: enter, leave, and their boxes. */
static void people_frame(model *m, int64_t f)
{
    const sim_scenario *sc = m->sc;
    size_t n = 0;
    for (size_t k = 0; k < m->nactive; k++)
        if (sc->people[m->active[k]].to > f)
            m->active[n++] = m->active[k];
    m->nactive = n;
    while (m->next_person < sc->npeople && sc->people[m->next_person].from <= f)
        m->active[m->nactive++] = m->next_person++;
    for (size_t k = 0; k < m->nactive; k++)
        m->abox[k] = person_box(&sc->people[m->active[k]], f);
}

static void people_emit(model *m)
{
    const sim_scenario *sc = m->sc;
    for (size_t k = 0; k < m->nactive; k++) {
        const sim_person *p = &sc->people[m->active[k]];
        const sim_box *b = &m->abox[k];
        double cx = b->x + b->w / 2, cy = b->y + b->h / 2;
        if (!p->detected || cx <= 0 || cx >= 1 || cy <= 0 || cy >= 1)
            continue; /* not a detection, or its centre is out of the picture */
        if (sc->det.miss_rate > 0 && sim_rng_uniform(&m->people) < sc->det.miss_rate)
            continue;
        det e = {.label_json = p->label_json, .class_id = p->class_id};
        jittered(sc, &m->people, b, &e);
        if ((e.conf = confidence(&sc->det, &m->people, sc->det.conf_mean, 1.0)) == 0)
            continue;
        emit(m->w, &e);
        m->st->occluder_detections++;
    }
}

static void fp_frame(model *m)
{
    const sim_scenario *sc = m->sc;
    const sim_detector *d = &sc->det;
    uint32_t n = sim_rng_poisson(&m->fp, d->fp_rate);
    if (n > SIM_FP_PER_FRAME_MAX)
        n = SIM_FP_PER_FRAME_MAX;
    double aspect = (double)sc->frame_width / sc->frame_height;
    for (uint32_t i = 0; i < n; i++) {
        double r = sim_rng_uniform(&m->fp), x = 0, y = 0;
        det e;
        bool placed = true;
        if (r < d->fp_catalog_off + d->fp_catalog_on) {
            const sim_tool *t = &sc->tools[sim_rng_below(&m->fp, (uint32_t)sc->ntools)];
            e.label_json = t->labels_json[0];
            e.class_id = t->class_ids[0];
            bool on = r >= d->fp_catalog_off;
            placed = false;
            for (int k = 0; k < 100 && !placed; k++) {
                x = sim_rng_uniform(&m->fp);
                y = sim_rng_uniform(&m->fp);
                placed = sim_on_table(sc, x, y) == on;
            }
        } else {
            size_t k = sim_rng_below(&m->fp, (uint32_t)d->nfp_labels);
            e.label_json = d->fp_labels_json[k];
            e.class_id = d->fp_class_ids[k];
            x = sim_rng_uniform(&m->fp);
            y = sim_rng_uniform(&m->fp);
        }
        double s = d->fp_size_lo + sim_rng_uniform(&m->fp) * (d->fp_size_hi - d->fp_size_lo);
        double c = d->fp_conf_lo + sim_rng_uniform(&m->fp) * (d->fp_conf_hi - d->fp_conf_lo);
        if (!placed || c < d->threshold)
            continue;
        e.cx = sim_micro(x);
        e.cy = sim_micro(y);
        e.w = sim_micro(s);
        e.h = sim_micro(fmin(s * aspect, 1.0));
        e.conf = sim_micro(c);
        emit(m->w, &e);
        m->st->false_positives++;
    }
}

sl_status sim_frames_write(const sim_scenario *sc, sim_format fmt, FILE *f, const char *path,
                           sim_stats *stats, sl_error *err)
{
    sl_status rc = SL_OK;
    sim_stats st = {0};
    writer w = {.sc = sc, .fmt = fmt, .st = &st, .o = {.f = f, .path = path, .err = err}};
    model m = {.sc = sc, .w = &w, .st = &st};
    w.o.buf = malloc(OUT_CAP);
    m.rt = calloc(sc->ntools + 1, sizeof *m.rt);
    m.active = calloc(sc->npeople + 1, sizeof *m.active);
    m.abox = calloc(sc->npeople + 1, sizeof *m.abox);
    if (!w.o.buf || !m.rt || !m.active || !m.abox) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < sc->ntools; i++) {
        sim_rng_seed(&m.rt[i].presence, sc->seed, SIM_STREAM_TOOL + 2 * (uint64_t)i);
        sim_rng_seed(&m.rt[i].look, sc->seed, SIM_STREAM_TOOL + 2 * (uint64_t)i + 1);
    }
    sim_rng_seed(&m.people, sc->seed, SIM_STREAM_PEOPLE);
    sim_rng_seed(&m.fp, sc->seed, SIM_STREAM_FP);
    m.burst_p = sc->det.burst_per_min / (60.0 * sc->fps);
    w.o.rc = SL_OK;
    if (fmt == SIM_FORMAT_DARKNET) {
        memcpy(w.o.buf, "[\n", 2);
        w.o.len = 2;
    }
    for (int64_t fr = 0; fr < sc->frames && w.o.rc == SL_OK; fr++) {
        frame_begin(&w, fr);
        people_frame(&m, fr);
        for (size_t i = 0; i < sc->ntools; i++)
            tool_frame(&m, i, fr);
        people_emit(&m);
        if (sc->det.fp_rate > 0)
            fp_frame(&m);
        frame_end(&w);
    }
    if (fmt == SIM_FORMAT_DARKNET) {
        char *p = out_room(&w.o);
        p = put(p, "\n]\n");
        w.o.len = (size_t)(p - w.o.buf);
    }
    out_flush(&w.o);
    if (w.o.rc == SL_OK && fflush(f) != 0)
        w.o.rc = sl_error_set(err, SL_EIO, "%s: cannot write: %s", path, strerror(errno));
    if ((rc = w.o.rc) == SL_OK)
        *stats = st;
out:
    free(w.o.buf);
    free(m.rt);
    free(m.active);
    free(m.abox);
    return rc;
}
