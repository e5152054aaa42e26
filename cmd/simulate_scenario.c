/* simulate_scenario.c -- reads and checks a scenario (docs/scenarios.md):
 * every member known (a typo is refused, not ignored), every value in range,
 * times in order, slots on the table, and every label checked against the
 * scenario's catalog folder, so the frames it makes exercise the catalog's
 * patterns as the scenario says.  Builds each tool's timeline (segments:
 * on the table, sliding, off it) and the occluders; then the truth. */
#include "simulate.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <bson/bson.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_json.h"
#include "ingest/ingest.h"

/* Random streams (sim_rng_seed's stream ids); tools use SIM_STREAM_TOOL + index. */
enum { SIM_STREAM_HANDS = 2 };

/* The same pattern options as the catalog ingest compiles (whole-label match). */
static const uint32_t pattern_options = PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED | PCRE2_ENDANCHORED;

typedef struct loader {
    sim_scenario *sc;
    sl_error *err;
    char **classes; /* distinct labels, in order of first use: their index is the class id */
    size_t nclasses, classes_cap;
    size_t people_cap;
    const char *reach_label;
} loader;

/* ---------------------------------------------------------------------------
 * Small helpers.
 * ------------------------------------------------------------------------- */
static sl_status nomem(sl_error *err)
{
    return sl_error_set(err, SL_ENOMEM, "out of memory");
}

int64_t sim_frame_of(const sim_scenario *sc, double t)
{
    return (int64_t)llround(t * sc->fps);
}

bool sim_on_table(const sim_scenario *sc, double x, double y)
{
    bool in = false;
    for (size_t i = 0, j = sc->ntable - 1; i < sc->ntable; j = i++) {
        double xi = sc->table[i][0], yi = sc->table[i][1];
        double xj = sc->table[j][0], yj = sc->table[j][1];
        if ((yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi)
            in = !in;
    }
    return in;
}

/* The class id of label (darknet's class_id), adding it when new. */
static sl_status class_of(loader *ld, const char *label, uint32_t *id)
{
    sl_status rc = SL_OK;
    size_t i = 0;
    while (i < ld->nclasses && strcmp(ld->classes[i], label))
        i++;
    if (i == ld->nclasses) {
        if (ld->nclasses == ld->classes_cap) {
            size_t cap = ld->classes_cap ? ld->classes_cap * 2 : 32;
            char **c = realloc(ld->classes, cap * sizeof *c);
            if (!c) {
                rc = nomem(ld->err);
                goto out;
            }
            ld->classes = c;
            ld->classes_cap = cap;
        }
        ld->classes[ld->nclasses++] = (char *)label; /* borrowed: lives as long as the loader */
    }
    *id = (uint32_t)i;
out:
    return rc;
}

/* A box [x, y, w, h].  Strict: inside the image.  Loose (occluders): may
 * reach outside it (a hand coming in from the edge), by up to one image. */
static sl_status read_box(yajl_val v, const char *path, bool loose, sim_box *out, sl_error *err)
{
    sl_status rc = SL_OK;
    double b[4];
    if (!YAJL_IS_ARRAY(v) || v->u.array.len != 4) {
        rc = cmd_json_fail(err, path, "must be a box [x, y, w, h] (normalized, top-left origin)");
        goto out;
    }
    for (size_t i = 0; i < 4 && rc == SL_OK; i++) {
        char sub[CMD_JSON_PATH_MAX];
        cmd_json_path_index(sub, path, i);
        double lo = i < 2 ? (loose ? -1.0 : 0.0) : 1e-6, hi = loose && i < 2 ? 2.0 : 1.0;
        rc = cmd_json_num_value(v->u.array.values[i], sub, lo, hi, &b[i], err);
    }
    if (rc == SL_OK && !loose && (b[0] + b[2] > 1.0 + 1e-9 || b[1] + b[3] > 1.0 + 1e-9))
        rc = cmd_json_fail(err, path, "the box reaches past the image (x + w and y + h <= 1)");
    if (rc == SL_OK)
        *out = (sim_box){b[0], b[1], b[2], b[3]};
out:
    return rc;
}

/* A slot: a box whose centre lies on the table. */
static sl_status read_slot(const sim_scenario *sc, yajl_val v, const char *path, sim_box *out,
                           sl_error *err)
{
    sl_status rc = read_box(v, path, false, out, err);
    if (rc == SL_OK && !sim_on_table(sc, out->x + out->w / 2, out->y + out->h / 2))
        rc = cmd_json_fail(err, path, "the slot's centre (%.3f, %.3f) is not on the table",
                           out->x + out->w / 2, out->y + out->h / 2);
    return rc;
}

/* A time in seconds inside the scenario: its frame in [0, frames). */
static sl_status read_time(const sim_scenario *sc, yajl_val o, const char *path, const char *key,
                           bool required, double *t, int64_t *frame, sl_error *err)
{
    char sub[CMD_JSON_PATH_MAX];
    sl_status rc = cmd_json_num(o, path, key, required, 0, 1e9, t, err);
    if (rc == SL_OK && cmd_json_has(o, key)) {
        *frame = sim_frame_of(sc, *t);
        if (*frame >= sc->frames) {
            cmd_json_path_key(sub, path, key);
            rc = cmd_json_fail(err, sub, "%g s (frame %lld) is past the end (%lld frames)", *t,
                               (long long)*frame, (long long)sc->frames);
        }
    }
    return rc;
}

/* A duration in seconds [0, 1 day] as frames. */
static sl_status read_span(const sim_scenario *sc, yajl_val o, const char *path, const char *key,
                           double def, int64_t *frames, sl_error *err)
{
    double s = def;
    sl_status rc = cmd_json_num(o, path, key, false, 0, 86400, &s, err);
    if (rc == SL_OK)
        *frames = sim_frame_of(sc, s);
    return rc;
}

/* A pair [lo, hi] with lo <= hi inside [min, max]. */
static sl_status read_range(yajl_val o, const char *path, const char *key, double min, double max,
                            double *lo, double *hi, sl_error *err)
{
    sl_status rc = SL_OK;
    char sub[CMD_JSON_PATH_MAX], e0[CMD_JSON_PATH_MAX], e1[CMD_JSON_PATH_MAX];
    yajl_val v = cmd_json_get(o, key);
    cmd_json_path_key(sub, path, key);
    if (!v || YAJL_IS_NULL(v))
        goto out;
    if (!YAJL_IS_ARRAY(v) || v->u.array.len != 2) {
        rc = cmd_json_fail(err, sub, "must be a pair [low, high]");
        goto out;
    }
    cmd_json_path_index(e0, sub, 0);
    cmd_json_path_index(e1, sub, 1);
    double a = 0, b = 0;
    if ((rc = cmd_json_num_value(v->u.array.values[0], e0, min, max, &a, err)) != SL_OK ||
        (rc = cmd_json_num_value(v->u.array.values[1], e1, min, max, &b, err)) != SL_OK)
        goto out;
    if (a > b) {
        rc = cmd_json_fail(err, sub, "low %g is above high %g", a, b);
        goto out;
    }
    *lo = a;
    *hi = b;
out:
    return rc;
}

/* ---------------------------------------------------------------------------
 * The catalog folder: one PUT /v1/catalog/{sku} body per file, SKU.json.
 * ------------------------------------------------------------------------- */
static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads one entry through ingest's own PUT codec (so a fixture the simulator
 * takes is one the service takes) and compiles its patterns. */
static sl_status read_sku(const char *dir, const char *file, sim_sku *k, sl_error *err)
{
    sl_status rc = SL_OK;
    char path[4096], *body = NULL;
    bson_t *doc = NULL;
    FILE *f = NULL;
    size_t n = 0;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    k->sku = strndup(file, strlen(file) - 5); /* without ".json" */
    body = malloc(INGEST_DEFAULT_MAX_RECORD + 1);
    if (!k->sku || !body) {
        rc = nomem(err);
        goto out;
    }
    if ((f = fopen(path, "rb")) == NULL) {
        rc = sl_error_set(err, SL_EIO, "%s: cannot open: %s", path, strerror(errno));
        goto out;
    }
    n = fread(body, 1, INGEST_DEFAULT_MAX_RECORD + 1, f);
    if (n > INGEST_DEFAULT_MAX_RECORD) {
        rc = sl_error_set(err, SL_ETOOLARGE, "%s: larger than %u bytes", path,
                          INGEST_DEFAULT_MAX_RECORD);
        goto out;
    }
    if ((rc = ingest_catalog_doc("sim", k->sku, body, n, NULL, &doc, err)) != SL_OK) {
        sl_error_prefix(err, "catalog entry %s", path);
        goto out;
    }
    bson_iter_t it, arr;
    if (bson_iter_init_find(&it, doc, "name"))
        k->name = strdup(bson_iter_utf8(&it, NULL));
    if (bson_iter_init_find(&it, doc, "unit_cost_cents"))
        k->unit_cost_cents = bson_iter_int64(&it);
    if (bson_iter_init_find(&it, doc, "single_use"))
        k->single_use = bson_iter_bool(&it);
    if (!k->name || !bson_iter_init_find(&it, doc, "labels") || !bson_iter_recurse(&it, &arr)) {
        rc = nomem(err);
        goto out;
    }
    while (bson_iter_next(&arr)) {
        char **p = realloc(k->patterns, (k->npatterns + 1) * sizeof *p);
        void **r = realloc(k->re, (k->npatterns + 1) * sizeof *r);
        if (p)
            k->patterns = p;
        if (r)
            k->re = r;
        uint32_t plen = 0;
        const char *pat = bson_iter_utf8(&arr, &plen);
        int code;
        PCRE2_SIZE where;
        if (!p || !r || !(k->patterns[k->npatterns] = strndup(pat, plen))) {
            rc = nomem(err);
            goto out;
        }
        k->re[k->npatterns] =
            pcre2_compile((PCRE2_SPTR)pat, plen, pattern_options, &code, &where, NULL);
        k->npatterns++;
        if (!k->re[k->npatterns - 1]) { /* ingest compiled it: only memory */
            rc = nomem(err);
            goto out;
        }
    }
out:
    if (f)
        fclose(f);
    if (doc)
        bson_destroy(doc);
    free(body);
    return rc;
}

static sl_status read_catalog(sim_scenario *sc, const char *rel, sl_error *err)
{
    sl_status rc = SL_OK;
    char **names = NULL;
    size_t n = 0, cap = 0;
    DIR *d = NULL;
    size_t len = strlen(sc->dir) + strlen(rel) + 2;
    if ((sc->catalog_dir = malloc(len)) == NULL) {
        rc = nomem(err);
        goto out;
    }
    if (rel[0] == '/')
        snprintf(sc->catalog_dir, len, "%s", rel);
    else
        snprintf(sc->catalog_dir, len, "%s/%s", sc->dir, rel);
    if ((d = opendir(sc->catalog_dir)) == NULL) {
        rc = sl_error_set_at(err, SL_EIO, "catalog", -1, "catalog folder %s: %s", sc->catalog_dir,
                             strerror(errno));
        goto out;
    }
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l <= 5 || strcmp(e->d_name + l - 5, ".json"))
            continue;
        if (n == SIM_CATALOG_MAX) {
            rc = sl_error_set_at(err, SL_ETOOLARGE, "catalog", -1,
                                 "catalog folder %s holds more than %u entries", sc->catalog_dir,
                                 SIM_CATALOG_MAX);
            goto out;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **p = realloc(names, cap * sizeof *p);
            if (!p) {
                rc = nomem(err);
                goto out;
            }
            names = p;
        }
        if ((names[n] = strdup(e->d_name)) == NULL) {
            rc = nomem(err);
            goto out;
        }
        n++;
    }
    if (n == 0) {
        rc = sl_error_set_at(err, SL_EINVAL, "catalog", -1,
                             "catalog folder %s holds no SKU.json entry", sc->catalog_dir);
        goto out;
    }
    /* Entries are tried in SKU order, as the service does (its keys sort so). */
    qsort(names, n, sizeof *names, name_cmp);
    if ((sc->skus = calloc(n, sizeof *sc->skus)) == NULL) {
        rc = nomem(err);
        goto out;
    }
    for (size_t i = 0; i < n && rc == SL_OK; i++) {
        sc->nskus = i + 1;
        rc = read_sku(sc->catalog_dir, names[i], &sc->skus[i], err);
    }
out:
    if (d)
        closedir(d);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

/* The catalog entry a label maps to (the first in SKU order with a matching
 * pattern), or NULL. */
static sl_status match_label(const sim_scenario *sc, const char *label, const sim_sku **out,
                             sl_error *err)
{
    sl_status rc = SL_OK;
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    *out = NULL;
    if (!md) {
        rc = nomem(err);
        goto out;
    }
    for (size_t i = 0; i < sc->nskus && !*out; i++)
        for (size_t k = 0; k < sc->skus[i].npatterns && !*out; k++)
            if (pcre2_match(sc->skus[i].re[k], (PCRE2_SPTR)label, strlen(label), 0, 0, md, NULL) >=
                0)
                *out = &sc->skus[i];
out:
    pcre2_match_data_free(md);
    return rc;
}

/* A label read at path that must map to no catalog entry (occluders, random
 * false positives): it is what the service reports as unmapped. */
static sl_status read_free_label(loader *ld, yajl_val v, const char *path, char **json,
                                 uint32_t *class_id)
{
    sl_status rc = SL_OK;
    sl_error e;
    sl_error_clear(&e);
    const char *s = YAJL_GET_STRING(v);
    const sim_sku *k = NULL;
    if (!s || !s[0] || strlen(s) > SIM_LABEL_MAX) {
        rc = cmd_json_fail(ld->err, path, "must be a label of 1 to %u bytes", SIM_LABEL_MAX);
        goto out;
    }
    if (schema_text_check("label", s, strlen(s), &e) != SL_OK) {
        rc = cmd_json_fail(ld->err, path, "%s", e.message);
        goto out;
    }
    if ((rc = match_label(ld->sc, s, &k, ld->err)) != SL_OK)
        goto out;
    if (k) {
        rc = cmd_json_fail(ld->err, path,
                           "\"%s\" maps to %s in the catalog: an occluder or random false positive "
                           "must match no catalog entry",
                           s, k->sku);
        goto out;
    }
    if ((rc = class_of(ld, s, class_id)) != SL_OK)
        goto out;
    if ((*json = sim_json_escape(s)) == NULL)
        rc = nomem(ld->err);
out:
    return rc;
}

/* ---------------------------------------------------------------------------
 * Top level: frame, table, surgery, truth windows.
 * ------------------------------------------------------------------------- */
static sl_status read_table(sim_scenario *sc, yajl_val root, sl_error *err)
{
    sl_status rc = SL_OK;
    yajl_val t = cmd_json_get(root, "table");
    if (!t || !YAJL_IS_ARRAY(t) || t->u.array.len < 3 || t->u.array.len > 256) {
        rc = cmd_json_fail(err, "table", "must be a polygon of 3 to 256 [x, y] points");
        goto out;
    }
    sc->ntable = t->u.array.len;
    if ((sc->table = calloc(sc->ntable, sizeof *sc->table)) == NULL) {
        rc = nomem(err);
        goto out;
    }
    double x0 = 1, y0 = 1, x1 = 0, y1 = 0;
    for (size_t i = 0; i < sc->ntable && rc == SL_OK; i++) {
        char p[CMD_JSON_PATH_MAX], q[CMD_JSON_PATH_MAX];
        yajl_val pt = t->u.array.values[i];
        cmd_json_path_index(p, "table", i);
        if (!YAJL_IS_ARRAY(pt) || pt->u.array.len != 2) {
            rc = cmd_json_fail(err, p, "must be a point [x, y]");
            break;
        }
        for (size_t k = 0; k < 2 && rc == SL_OK; k++) {
            cmd_json_path_index(q, p, k);
            rc = cmd_json_num_value(pt->u.array.values[k], q, 0, 1, &sc->table[i][k], err);
        }
        x0 = fmin(x0, sc->table[i][0]);
        y0 = fmin(y0, sc->table[i][1]);
        x1 = fmax(x1, sc->table[i][0]);
        y1 = fmax(y1, sc->table[i][1]);
    }
    sc->table_bounds = (sim_box){x0, y0, x1 - x0, y1 - y0};
    if (rc == SL_OK && (x1 - x0 <= 0 || y1 - y0 <= 0))
        rc = cmd_json_fail(err, "table", "the polygon has no area");
out:
    return rc;
}

static sl_status read_surgery(sim_scenario *sc, yajl_val root, sl_error *err)
{
    static const char *const known[] = {"hospital", "procedure",  "room",
                                        "surgeon",  "started_at", NULL};
    sl_status rc = SL_OK;
    const char *hospital = "sim-hospital", *procedure = "sim-procedure", *room = "OR 1",
               *surgeon = "Dr. Sim", *started = "2026-01-05T08:00:00Z";
    yajl_val s = cmd_json_get(root, "surgery");
    sl_error e;
    sl_error_clear(&e);
    if (s && ((rc = cmd_json_object(s, "surgery", known, err)) ||
              (rc = cmd_json_str(s, "surgery", "hospital", false, SCHEMA_COMPONENT_MAX, &hospital,
                                 err)) ||
              (rc = cmd_json_str(s, "surgery", "procedure", false, SCHEMA_COMPONENT_MAX, &procedure,
                                 err)) ||
              (rc = cmd_json_str(s, "surgery", "room", false, 256, &room, err)) ||
              (rc = cmd_json_str(s, "surgery", "surgeon", false, 256, &surgeon, err)) ||
              (rc = cmd_json_str(s, "surgery", "started_at", false, 64, &started, err))))
        goto out;
    int64_t ms;
    if (schema_component_check("hospital", hospital, &e) != SL_OK) {
        rc = cmd_json_fail(err, "surgery.hospital", "%s", e.message);
        goto out;
    }
    if (schema_component_check("procedure", procedure, &e) != SL_OK) {
        rc = cmd_json_fail(err, "surgery.procedure", "%s", e.message);
        goto out;
    }
    if (schema_time_parse(started, &ms, &e) != SL_OK) {
        rc = cmd_json_fail(err, "surgery.started_at", "%s", e.message);
        goto out;
    }
    if (!(sc->hospital = strdup(hospital)) || !(sc->procedure = strdup(procedure)) ||
        !(sc->room = strdup(room)) || !(sc->surgeon = strdup(surgeon)) ||
        !(sc->started_at = strdup(started)))
        rc = nomem(err);
out:
    return rc;
}

/* ---------------------------------------------------------------------------
 * The detector model.
 * ------------------------------------------------------------------------- */
static sl_status read_detector(loader *ld, yajl_val root)
{
    static const char *const known[] = {"miss_rate",  "miss_bursts",     "jitter_px",
                                        "confidence", "threshold",       "label_variants",
                                        "occlusion",  "false_positives", NULL};
    static const char *const k_bursts[] = {"per_minute", "min_frames", "max_frames", NULL};
    static const char *const k_conf[] = {"mean", "sd", "max", NULL};
    static const char *const k_occl[] = {"cover", "hide", "confidence_factor", NULL};
    static const char *const k_fp[] = {
        "per_frame", "labels", "catalog_off_table", "catalog_on_table", "confidence", "size", NULL};
    sim_scenario *sc = ld->sc;
    sim_detector *d = &sc->det;
    sl_error *err = ld->err;
    sl_status rc = SL_OK;
    *d = (sim_detector){.burst_min = 5,
                        .burst_max = 30,
                        .conf_mean = 0.9,
                        .conf_max = 1.0,
                        .threshold = 0.25,
                        .occl_cover = 0.5,
                        .occl_hide = 1.0,
                        .occl_factor = 0.5,
                        .fp_conf_lo = 0.25,
                        .fp_conf_hi = 0.6,
                        .fp_size_lo = 0.02,
                        .fp_size_hi = 0.08};
    yajl_val v = cmd_json_get(root, "detector");
    if (!v)
        goto out;
    if ((rc = cmd_json_object(v, "detector", known, err)) ||
        (rc = cmd_json_num(v, "detector", "miss_rate", false, 0, 1, &d->miss_rate, err)) ||
        (rc = cmd_json_num(v, "detector", "jitter_px", false, 0, 1000, &d->jitter_px, err)) ||
        (rc = cmd_json_num(v, "detector", "threshold", false, 0, 1, &d->threshold, err)) ||
        (rc = cmd_json_num(v, "detector", "label_variants", false, 0, 1, &d->variant_rate, err)))
        goto out;
    yajl_val b = cmd_json_get(v, "miss_bursts");
    if (b && ((rc = cmd_json_object(b, "detector.miss_bursts", k_bursts, err)) ||
              (rc = cmd_json_num(b, "detector.miss_bursts", "per_minute", true, 0, 600,
                                 &d->burst_per_min, err)) ||
              (rc = cmd_json_int(b, "detector.miss_bursts", "min_frames", false, 1, 1000000,
                                 &d->burst_min, err)) ||
              (rc = cmd_json_int(b, "detector.miss_bursts", "max_frames", false, 1, 1000000,
                                 &d->burst_max, err))))
        goto out;
    if (d->burst_min > d->burst_max) {
        rc = cmd_json_fail(err, "detector.miss_bursts.max_frames", "is below min_frames (%lld)",
                           (long long)d->burst_min);
        goto out;
    }
    yajl_val c = cmd_json_get(v, "confidence");
    if (c &&
        ((rc = cmd_json_object(c, "detector.confidence", k_conf, err)) ||
         (rc = cmd_json_num(c, "detector.confidence", "mean", false, 0, 1, &d->conf_mean, err)) ||
         (rc = cmd_json_num(c, "detector.confidence", "sd", false, 0, 1, &d->conf_sd, err)) ||
         (rc = cmd_json_num(c, "detector.confidence", "max", false, 0, 1, &d->conf_max, err))))
        goto out;
    if (d->conf_max < d->threshold) {
        rc = cmd_json_fail(err, "detector.confidence.max",
                           "%g is below the threshold %g: nothing would be emitted", d->conf_max,
                           d->threshold);
        goto out;
    }
    yajl_val o = cmd_json_get(v, "occlusion");
    if (o &&
        ((rc = cmd_json_object(o, "detector.occlusion", k_occl, err)) ||
         (rc = cmd_json_num(o, "detector.occlusion", "cover", false, 0.01, 1, &d->occl_cover,
                            err)) ||
         (rc = cmd_json_num(o, "detector.occlusion", "hide", false, 0, 1, &d->occl_hide, err)) ||
         (rc = cmd_json_num(o, "detector.occlusion", "confidence_factor", false, 0, 1,
                            &d->occl_factor, err))))
        goto out;
    yajl_val f = cmd_json_get(v, "false_positives");
    const char *fpp = "detector.false_positives";
    if (f &&
        ((rc = cmd_json_object(f, fpp, k_fp, err)) ||
         (rc = cmd_json_num(f, fpp, "per_frame", true, 0, SIM_FP_RATE_MAX, &d->fp_rate, err)) ||
         (rc = cmd_json_num(f, fpp, "catalog_off_table", false, 0, 1, &d->fp_catalog_off, err)) ||
         (rc = cmd_json_num(f, fpp, "catalog_on_table", false, 0, 1, &d->fp_catalog_on, err)) ||
         (rc = read_range(f, fpp, "confidence", 0, 1, &d->fp_conf_lo, &d->fp_conf_hi, err)) ||
         (rc = read_range(f, fpp, "size", 0.001, 0.5, &d->fp_size_lo, &d->fp_size_hi, err))))
        goto out;
    if (d->fp_catalog_off + d->fp_catalog_on > 1.0 + 1e-9) {
        rc = cmd_json_fail(err, "detector.false_positives.catalog_on_table",
                           "catalog_off_table + catalog_on_table is above 1");
        goto out;
    }
    yajl_val labels = cmd_json_get(f, "labels");
    if (labels && !YAJL_IS_NULL(labels)) {
        if (!YAJL_IS_ARRAY(labels) || labels->u.array.len > SIM_FP_LABELS_MAX) {
            rc = cmd_json_fail(err, "detector.false_positives.labels",
                               "must be an array of at most %u labels", SIM_FP_LABELS_MAX);
            goto out;
        }
        d->nfp_labels = labels->u.array.len;
        d->fp_labels_json = calloc(d->nfp_labels + 1, sizeof *d->fp_labels_json);
        d->fp_class_ids = calloc(d->nfp_labels + 1, sizeof *d->fp_class_ids);
        if (!d->fp_labels_json || !d->fp_class_ids) {
            rc = nomem(err);
            goto out;
        }
        for (size_t i = 0; i < d->nfp_labels && rc == SL_OK; i++) {
            char p[CMD_JSON_PATH_MAX];
            cmd_json_path_index(p, "detector.false_positives.labels", i);
            rc = read_free_label(ld, labels->u.array.values[i], p, &d->fp_labels_json[i],
                                 &d->fp_class_ids[i]);
        }
        if (rc != SL_OK)
            goto out;
    }
    if (d->fp_rate > 0 && d->nfp_labels == 0 && d->fp_catalog_off + d->fp_catalog_on < 1.0 - 1e-9) {
        rc = cmd_json_fail(err, "detector.false_positives.labels",
                           "random labels are needed when catalog_off_table + catalog_on_table "
                           "is below 1");
        goto out;
    }
out:
    return rc;
}

/* ---------------------------------------------------------------------------
 * People: occluders over the table.
 * ------------------------------------------------------------------------- */
static sl_status add_person(loader *ld, const char *path, const sim_person *p)
{
    sl_status rc = SL_OK;
    sim_scenario *sc = ld->sc;
    if (sc->npeople == SIM_PEOPLE_MAX) {
        rc = sl_error_set_at(ld->err, SL_ETOOLARGE, path, -1,
                             "more than %u occluders (listed, repeated, reaching and random "
                             "hands together)",
                             SIM_PEOPLE_MAX);
        goto out;
    }
    if (sc->npeople == ld->people_cap) {
        size_t cap = ld->people_cap ? ld->people_cap * 2 : 16;
        sim_person *q = realloc(sc->people, cap * sizeof *q);
        if (!q) {
            rc = nomem(ld->err);
            goto out;
        }
        sc->people = q;
        ld->people_cap = cap;
    }
    sim_person *n = &sc->people[sc->npeople];
    *n = *p;
    n->label_json = strdup(p->label_json);
    n->path = malloc(p->npath * sizeof *n->path);
    if (!n->label_json || !n->path) {
        free(n->label_json);
        free(n->path);
        rc = nomem(ld->err);
        goto out;
    }
    memcpy(n->path, p->path, p->npath * sizeof *n->path);
    sc->npeople++;
out:
    return rc;
}

static sl_status read_people(loader *ld, yajl_val root)
{
    static const char *const known[] = {"label",    "from",    "to",    "path",
                                        "detected", "every_s", "until", NULL};
    sim_scenario *sc = ld->sc;
    sl_error *err = ld->err;
    sl_status rc = SL_OK;
    sim_box path[SIM_PATH_MAX];
    yajl_val people = cmd_json_get(root, "people");
    if (!people || YAJL_IS_NULL(people))
        goto out;
    if (!YAJL_IS_ARRAY(people)) {
        rc = cmd_json_fail(err, "people", "must be an array");
        goto out;
    }
    for (size_t i = 0; i < people->u.array.len && rc == SL_OK; i++) {
        yajl_val v = people->u.array.values[i];
        char p[CMD_JSON_PATH_MAX], q[CMD_JSON_PATH_MAX];
        cmd_json_path_index(p, "people", i);
        sim_person n = {.detected = true, .path = path};
        char *label_json = NULL;
        double from = 0, to = 0, every = 0, until = 0;
        int64_t f0 = 0, f1 = 0, fu = 0;
        if ((rc = cmd_json_object(v, p, known, err)))
            break;
        cmd_json_path_key(q, p, "label");
        yajl_val lv = cmd_json_get(v, "label");
        if (!lv) {
            rc = cmd_json_fail(err, q, "is required");
            break;
        }
        if ((rc = read_free_label(ld, lv, q, &label_json, &n.class_id)) ||
            (rc = read_time(sc, v, p, "from", true, &from, &f0, err)) ||
            (rc = cmd_json_num(v, p, "to", true, 0, 1e9, &to, err)) ||
            (rc = cmd_json_bool(v, p, "detected", false, &n.detected, err)) ||
            (rc = cmd_json_num(v, p, "every_s", false, 0, 1e9, &every, err))) {
            free(label_json);
            break;
        }
        f1 = sim_frame_of(sc, to);
        cmd_json_path_key(q, p, "to");
        if (f1 <= f0)
            rc = cmd_json_fail(err, q, "%g s is not after from (%g s)", to, from);
        else if (f1 > sc->frames)
            rc = cmd_json_fail(err, q, "%g s is past the end (%lld frames)", to,
                               (long long)sc->frames);
        if (rc == SL_OK && cmd_json_has(v, "until") && !cmd_json_has(v, "every_s"))
            rc = cmd_json_fail(err, p, "until goes with every_s");
        if (rc == SL_OK && cmd_json_has(v, "every_s")) {
            until = (double)sc->frames / sc->fps;
            if ((rc = cmd_json_num(v, p, "until", false, 0, until, &until, err)) == SL_OK &&
                sim_frame_of(sc, every) < f1 - f0) {
                cmd_json_path_key(q, p, "every_s");
                rc = cmd_json_fail(err, q, "%g s repeats the pass before it ends (%g s long)",
                                   every, to - from);
            }
        }
        fu = sim_frame_of(sc, until);
        yajl_val pv = cmd_json_get(v, "path");
        cmd_json_path_key(q, p, "path");
        if (rc == SL_OK &&
            (!YAJL_IS_ARRAY(pv) || pv->u.array.len < 1 || pv->u.array.len > SIM_PATH_MAX))
            rc = cmd_json_fail(err, q, "must be an array of 1 to %u boxes", SIM_PATH_MAX);
        for (size_t k = 0; rc == SL_OK && k < pv->u.array.len; k++) {
            char r[CMD_JSON_PATH_MAX];
            cmd_json_path_index(r, q, k);
            rc = read_box(pv->u.array.values[k], r, true, &path[k], err);
        }
        if (rc == SL_OK) {
            n.npath = pv->u.array.len;
            n.label_json = label_json;
            int64_t step = every > 0 ? sim_frame_of(sc, every) : 0;
            for (int64_t s = 0; rc == SL_OK; s += step) {
                n.from = f0 + s;
                n.to = f1 + s;
                if (s > 0 && (n.to > sc->frames || n.from > fu))
                    break;
                rc = add_person(ld, p, &n);
                if (step == 0)
                    break;
            }
        }
        free(label_json);
    }
out:
    return rc;
}

/* A point inside the table polygon, drawn uniformly (rejection in its bounds). */
static void table_point(const sim_scenario *sc, sim_rng *r, double *x, double *y)
{
    const sim_box *b = &sc->table_bounds;
    for (int i = 0; i < 1000; i++) {
        *x = b->x + sim_rng_uniform(r) * b->w;
        *y = b->y + sim_rng_uniform(r) * b->h;
        if (sim_on_table(sc, *x, *y))
            return;
    }
    *x = b->x + b->w / 2; /* a table that thin: its middle */
    *y = b->y + b->h / 2;
}

/* Random hands: passes over the table at random times, each coming from
 * beyond the table's lower edge (where the staff stand), reaching a random
 * point of the table and going back. */
static sl_status read_hands(loader *ld, yajl_val root)
{
    static const char *const known[] = {"per_minute", "min_s", "max_s", "labels", "size", NULL};
    sim_scenario *sc = ld->sc;
    sl_error *err = ld->err;
    sl_status rc = SL_OK;
    double rate = 0, min_s = 1, max_s = 4, size_lo = 0.08, size_hi = 0.16;
    char *labels[SIM_FP_LABELS_MAX] = {0};
    uint32_t ids[SIM_FP_LABELS_MAX];
    size_t nlabels = 0;
    yajl_val h = cmd_json_get(root, "hands");
    if (!h || YAJL_IS_NULL(h))
        goto out;
    if ((rc = cmd_json_object(h, "hands", known, err)) ||
        (rc = cmd_json_num(h, "hands", "per_minute", true, 0, 60, &rate, err)) ||
        (rc = cmd_json_num(h, "hands", "min_s", false, 0.1, 600, &min_s, err)) ||
        (rc = cmd_json_num(h, "hands", "max_s", false, 0.1, 600, &max_s, err)) ||
        (rc = read_range(h, "hands", "size", 0.01, 0.5, &size_lo, &size_hi, err)))
        goto out;
    if (max_s < min_s) {
        rc = cmd_json_fail(err, "hands.max_s", "is below min_s (%g)", min_s);
        goto out;
    }
    yajl_val lv = cmd_json_get(h, "labels");
    if (!YAJL_IS_ARRAY(lv) || lv->u.array.len < 1 || lv->u.array.len > SIM_FP_LABELS_MAX) {
        rc = cmd_json_fail(err, "hands.labels", "must be an array of 1 to %u labels",
                           SIM_FP_LABELS_MAX);
        goto out;
    }
    for (size_t i = 0; i < lv->u.array.len && rc == SL_OK; i++) {
        char p[CMD_JSON_PATH_MAX];
        cmd_json_path_index(p, "hands.labels", i);
        rc = read_free_label(ld, lv->u.array.values[i], p, &labels[i], &ids[i]);
        nlabels = i + 1;
    }
    if (rc != SL_OK || rate <= 0)
        goto out;
    sim_rng r;
    sim_rng_seed(&r, sc->seed, SIM_STREAM_HANDS);
    double aspect = (double)sc->frame_width / sc->frame_height;
    double t = 0, end = (double)sc->frames / sc->fps;
    const sim_box *tb = &sc->table_bounds;
    for (;;) {
        t += -log(1.0 - sim_rng_uniform(&r)) * 60.0 / rate; /* exponential gaps */
        double len = min_s + sim_rng_uniform(&r) * (max_s - min_s);
        if (t + len >= end)
            break;
        double s = size_lo + sim_rng_uniform(&r) * (size_hi - size_lo);
        double w = s, hh = fmin(s * aspect, 1.0);
        double tx, ty;
        table_point(sc, &r, &tx, &ty);
        double sx = tb->x + sim_rng_uniform(&r) * tb->w, ex = tb->x + sim_rng_uniform(&r) * tb->w;
        double below = fmin(tb->y + tb->h + hh / 2, 1.5);
        sim_box path[3] = {{sx - w / 2, below - hh / 2, w, hh},
                           {tx - w / 2, ty - hh / 2, w, hh},
                           {ex - w / 2, below - hh / 2, w, hh}};
        size_t k = sim_rng_below(&r, (uint32_t)nlabels);
        sim_person n = {.label_json = labels[k],
                        .class_id = ids[k],
                        .from = sim_frame_of(sc, t),
                        .to = sim_frame_of(sc, t + len),
                        .path = path,
                        .npath = 3,
                        .detected = true};
        if (n.to > n.from && (rc = add_person(ld, "hands.per_minute", &n)) != SL_OK)
            break;
    }
out:
    for (size_t i = 0; i < nlabels; i++)
        free(labels[i]);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Tools and their events.
 * ------------------------------------------------------------------------- */
typedef struct timeline {
    sim_tool *t;
    size_t cap, slots_cap;
    sl_error *err;
} timeline;

/* Starts a segment at frame from (ending the previous one there). */
static sl_status seg_push(timeline *tl, sim_seg_kind kind, int64_t from, sim_box a, sim_box b)
{
    sl_status rc = SL_OK;
    sim_tool *t = tl->t;
    if (t->nsegs == tl->cap) {
        size_t cap = tl->cap ? tl->cap * 2 : 8;
        sim_seg *s = realloc(t->segs, cap * sizeof *s);
        if (!s) {
            rc = nomem(tl->err);
            goto out;
        }
        t->segs = s;
        tl->cap = cap;
    }
    if (t->nsegs)
        t->segs[t->nsegs - 1].to = from;
    t->segs[t->nsegs++] = (sim_seg){.kind = kind, .from = from, .a = a, .b = b};
out:
    return rc;
}

/* Records a place the tool lies in (the truth's slots), when new. */
static sl_status slot_push(timeline *tl, sim_box b)
{
    sl_status rc = SL_OK;
    sim_tool *t = tl->t;
    if (t->nslots && !memcmp(&t->slots[t->nslots - 1], &b, sizeof b))
        goto out;
    if (t->nslots == tl->slots_cap) {
        size_t cap = tl->slots_cap ? tl->slots_cap * 2 : 4;
        sim_box *s = realloc(t->slots, cap * sizeof *s);
        if (!s) {
            rc = nomem(tl->err);
            goto out;
        }
        t->slots = s;
        tl->slots_cap = cap;
    }
    t->slots[t->nslots++] = b;
out:
    return rc;
}

/* The hand reaching for a slot: a box a little larger than the tool, over it. */
static sl_status add_reach(loader *ld, const char *path, sim_box slot, int64_t from, int64_t to)
{
    sl_status rc = SL_OK;
    char *json = NULL;
    sim_person n = {.from = from < 0 ? 0 : from, .to = to, .npath = 1, .detected = true};
    sim_box b = {slot.x - 0.02, slot.y - 0.02, slot.w + 0.04, slot.h + 0.04};
    n.path = &b;
    if (n.to <= n.from)
        goto out;
    if ((json = sim_json_escape(ld->reach_label)) == NULL) {
        rc = nomem(ld->err);
        goto out;
    }
    n.label_json = json;
    if ((rc = class_of(ld, ld->reach_label, &n.class_id)) == SL_OK)
        rc = add_person(ld, path, &n);
out:
    free(json);
    return rc;
}

static sl_status read_event(loader *ld, timeline *tl, yajl_val e, const char *p, int64_t *cursor,
                            sim_box *cur, bool *gone)
{
    static const char *const known[] = {"pick_up_at", "put_back_at", "put_back_slot", "seen_at",
                                        "seen_s",     "reach_s",     "move_to",       "at",
                                        "over_s",     NULL};
    sim_scenario *sc = ld->sc;
    sl_error *err = ld->err;
    sl_status rc = SL_OK;
    char q[CMD_JSON_PATH_MAX];
    double t0 = 0, t1 = 0;
    int64_t f0 = 0, f1 = 0;
    if ((rc = cmd_json_object(e, p, known, err)))
        goto out;
    if (*gone) {
        rc = cmd_json_fail(err, p,
                           "the tool was carried away by an earlier event (no "
                           "put_back_at): nothing can follow");
        goto out;
    }
    bool move = cmd_json_has(e, "move_to"), pick = cmd_json_has(e, "pick_up_at");
    if (move == pick) {
        rc = cmd_json_fail(err, p,
                           "an event is either a pick-up (pick_up_at, put_back_at, ...) or an "
                           "on-table move (move_to, at, over_s)");
        goto out;
    }
    if (move) {
        static const char *const bad[] = {"put_back_at", "put_back_slot", "seen_at",
                                          "seen_s",      "reach_s",       NULL};
        for (size_t i = 0; bad[i]; i++)
            if (cmd_json_get(e, bad[i])) {
                cmd_json_path_key(q, p, bad[i]);
                rc = cmd_json_fail(err, q, "belongs to a pick-up, not to a move");
                goto out;
            }
        sim_box to;
        int64_t over = 0;
        cmd_json_path_key(q, p, "move_to");
        if ((rc = read_slot(sc, cmd_json_get(e, "move_to"), q, &to, err)) ||
            (rc = read_time(sc, e, p, "at", true, &t0, &f0, err)) ||
            (rc = read_span(sc, e, p, "over_s", 1.0, &over, err)))
            goto out;
        cmd_json_path_key(q, p, "at");
        if (f0 <= *cursor) {
            rc = cmd_json_fail(err, q,
                               "%g s (frame %lld) is not after the previous change "
                               "(frame %lld)",
                               t0, (long long)f0, (long long)*cursor);
            goto out;
        }
        f1 = f0 + over;
        if (f1 >= sc->frames) {
            rc = cmd_json_fail(err, q, "the move ends past the end (%lld frames)",
                               (long long)sc->frames);
            goto out;
        }
        if (over > 0 && (rc = seg_push(tl, SIM_SEG_SLIDE, f0, *cur, to)) != SL_OK)
            goto out;
        if ((rc = seg_push(tl, SIM_SEG_ON, f1, to, to)) || (rc = slot_push(tl, to)))
            goto out;
        *cur = to;
        *cursor = f1;
        goto out;
    }
    /* a pick-up */
    if (cmd_json_get(e, "at") || cmd_json_get(e, "over_s")) {
        cmd_json_path_key(q, p, cmd_json_get(e, "at") ? "at" : "over_s");
        rc = cmd_json_fail(err, q, "belongs to a move (move_to), not to a pick-up");
        goto out;
    }
    if ((rc = read_time(sc, e, p, "pick_up_at", true, &t0, &f0, err)))
        goto out;
    cmd_json_path_key(q, p, "pick_up_at");
    if (f0 <= *cursor) {
        rc = cmd_json_fail(err, q,
                           "%g s (frame %lld) is not after the previous change (frame "
                           "%lld)",
                           t0, (long long)f0, (long long)*cursor);
        goto out;
    }
    bool back = cmd_json_has(e, "put_back_at");
    if (!back && cmd_json_has(e, "put_back_slot")) {
        cmd_json_path_key(q, p, "put_back_slot");
        rc = cmd_json_fail(err, q, "needs put_back_at (without it the tool is carried away)");
        goto out;
    }
    if (cmd_json_has(e, "seen_s") && !cmd_json_has(e, "seen_at")) {
        cmd_json_path_key(q, p, "seen_s");
        rc = cmd_json_fail(err, q, "needs seen_at (where the tool is seen off the table)");
        goto out;
    }
    f1 = sc->frames;
    sim_box to = *cur;
    if (back) {
        if ((rc = read_time(sc, e, p, "put_back_at", true, &t1, &f1, err)))
            goto out;
        cmd_json_path_key(q, p, "put_back_at");
        if (f1 <= f0) {
            rc = cmd_json_fail(err, q, "%g s (frame %lld) is not after pick_up_at (%g s)", t1,
                               (long long)f1, t0);
            goto out;
        }
        cmd_json_path_key(q, p, "put_back_slot");
        if (cmd_json_has(e, "put_back_slot") &&
            (rc = read_slot(sc, cmd_json_get(e, "put_back_slot"), q, &to, err)))
            goto out;
    }
    sim_box seen = {0};
    int64_t seen_frames = f1 - f0, reach = 0;
    if (cmd_json_has(e, "seen_at")) {
        cmd_json_path_key(q, p, "seen_at");
        if ((rc = read_box(cmd_json_get(e, "seen_at"), q, false, &seen, err)))
            goto out;
        if (sim_on_table(sc, seen.x + seen.w / 2, seen.y + seen.h / 2)) {
            rc = cmd_json_fail(err, q,
                               "the box's centre is on the table: a tool seen there is "
                               "not off it");
            goto out;
        }
        if (cmd_json_has(e, "seen_s") && (rc = read_span(sc, e, p, "seen_s", 0, &seen_frames, err)))
            goto out;
    }
    if ((rc = read_span(sc, e, p, "reach_s", 0, &reach, err)))
        goto out;
    if ((rc = seg_push(tl, SIM_SEG_OFF, f0, seen, seen)))
        goto out;
    sim_seg *off = &tl->t->segs[tl->t->nsegs - 1];
    off->seen = cmd_json_has(e, "seen_at");
    off->seen_to = f0 + (seen_frames < f1 - f0 ? seen_frames : f1 - f0);
    cmd_json_path_key(q, p, "reach_s");
    if (reach > 0 && (rc = add_reach(ld, q, *cur, f0 - reach, f0)))
        goto out;
    if (back) {
        if ((rc = seg_push(tl, SIM_SEG_ON, f1, to, to)) || (rc = slot_push(tl, to)))
            goto out;
        if (reach > 0 &&
            (rc = add_reach(ld, q, to, f1, f1 + reach < sc->frames ? f1 + reach : sc->frames)))
            goto out;
        *cur = to;
        *cursor = f1;
    } else {
        *gone = true;
    }
out:
    return rc;
}

static sl_status read_tool(loader *ld, yajl_val v, size_t i)
{
    static const char *const known[] = {"sku",    "label",     "slot",           "opened_at",
                                        "events", "miss_rate", "label_variants", "confidence",
                                        NULL};
    sim_scenario *sc = ld->sc;
    sl_error *err = ld->err;
    sl_status rc = SL_OK;
    sim_tool *t = &sc->tools[i];
    char p[CMD_JSON_PATH_MAX], q[CMD_JSON_PATH_MAX];
    const char *sku = NULL;
    double opened_at = 0;
    timeline tl = {.t = t, .err = err};
    t->index = i;
    t->left_frame = t->returned_frame = -1;
    t->miss_rate = sc->det.miss_rate;
    t->variant_rate = sc->det.variant_rate;
    t->conf_mean = sc->det.conf_mean;
    cmd_json_path_index(p, "tools", i);
    if ((rc = cmd_json_object(v, p, known, err)) ||
        (rc = cmd_json_str(v, p, "sku", true, SCHEMA_COMPONENT_MAX, &sku, err)) ||
        (rc = read_time(sc, v, p, "opened_at", false, &opened_at, &t->opened_frame, err)) ||
        (rc = cmd_json_num(v, p, "miss_rate", false, 0, 1, &t->miss_rate, err)) ||
        (rc = cmd_json_num(v, p, "label_variants", false, 0, 1, &t->variant_rate, err)) ||
        (rc = cmd_json_num(v, p, "confidence", false, 0, 1, &t->conf_mean, err)))
        goto out;
    for (size_t k = 0; k < sc->nskus && !t->sku; k++)
        if (!strcmp(sc->skus[k].sku, sku))
            t->sku = &sc->skus[k];
    if (!t->sku) {
        cmd_json_path_key(q, p, "sku");
        rc = cmd_json_fail(err, q, "\"%s\" is not in the catalog (%s)", sku, sc->catalog_dir);
        goto out;
    }
    /* labels: a string, or the usual label then its variants */
    cmd_json_path_key(q, p, "label");
    yajl_val lv = cmd_json_get(v, "label");
    size_t n = YAJL_IS_ARRAY(lv) ? lv->u.array.len : 1;
    if (!lv || (!YAJL_IS_STRING(lv) && !YAJL_IS_ARRAY(lv)) || n < 1 || n > SIM_LABELS_MAX) {
        rc = cmd_json_fail(err, q,
                           "must be a label or an array of 1 to %u labels (the first "
                           "the usual one)",
                           SIM_LABELS_MAX);
        goto out;
    }
    t->labels = calloc(n, sizeof *t->labels);
    t->labels_json = calloc(n, sizeof *t->labels_json);
    t->class_ids = calloc(n, sizeof *t->class_ids);
    if (!t->labels || !t->labels_json || !t->class_ids) {
        rc = nomem(err);
        goto out;
    }
    for (size_t k = 0; k < n && rc == SL_OK; k++) {
        char r[CMD_JSON_PATH_MAX];
        yajl_val s = YAJL_IS_ARRAY(lv) ? lv->u.array.values[k] : lv;
        const char *label = YAJL_GET_STRING(s);
        const sim_sku *m = NULL;
        sl_error e;
        sl_error_clear(&e);
        if (YAJL_IS_ARRAY(lv))
            cmd_json_path_index(r, q, k);
        else
            snprintf(r, sizeof r, "%s", q);
        if (!label || !label[0] || strlen(label) > SIM_LABEL_MAX) {
            rc = cmd_json_fail(err, r, "must be a label of 1 to %u bytes", SIM_LABEL_MAX);
            break;
        }
        if (schema_text_check("label", label, strlen(label), &e) != SL_OK) {
            rc = cmd_json_fail(err, r, "%s", e.message);
            break;
        }
        if ((rc = match_label(sc, label, &m, err)) != SL_OK)
            break;
        if (m != t->sku) {
            rc = cmd_json_fail(err, r,
                               m ? "\"%s\" maps to %s in the catalog, not to the tool's %s"
                                 : "\"%s\"%.0s matches no pattern of the catalog (the tool is %s)",
                               label, m ? m->sku : "", t->sku->sku);
            break;
        }
        t->nlabels = k + 1;
        if (!(t->labels[k] = strdup(label)) || !(t->labels_json[k] = sim_json_escape(label)))
            rc = nomem(err);
        else
            rc = class_of(ld, t->labels[k], &t->class_ids[k]);
    }
    if (rc != SL_OK)
        goto out;
    cmd_json_path_key(q, p, "slot");
    if ((rc = read_slot(sc, cmd_json_get(v, "slot"), q, &t->slot, err)))
        goto out;
    /* the timeline */
    int64_t cursor = t->opened_frame;
    sim_box cur = t->slot;
    bool gone = false;
    if ((rc = seg_push(&tl, SIM_SEG_ON, t->opened_frame, cur, cur)) || (rc = slot_push(&tl, cur)))
        goto out;
    yajl_val ev = cmd_json_get(v, "events");
    cmd_json_path_key(q, p, "events");
    if (ev && !YAJL_IS_NULL(ev) && (!YAJL_IS_ARRAY(ev) || ev->u.array.len > SIM_EVENTS_MAX)) {
        rc = cmd_json_fail(err, q, "must be an array of at most %u events", SIM_EVENTS_MAX);
        goto out;
    }
    for (size_t k = 0; YAJL_IS_ARRAY(ev) && k < ev->u.array.len && rc == SL_OK; k++) {
        char r[CMD_JSON_PATH_MAX];
        cmd_json_path_index(r, q, k);
        rc = read_event(ld, &tl, ev->u.array.values[k], r, &cursor, &cur, &gone);
    }
    if (rc == SL_OK)
        t->segs[t->nsegs - 1].to = sc->frames;
out:
    return rc;
}

static sl_status read_tools(loader *ld, yajl_val root)
{
    sim_scenario *sc = ld->sc;
    sl_status rc = SL_OK;
    yajl_val tools = cmd_json_get(root, "tools");
    if (!YAJL_IS_ARRAY(tools) || tools->u.array.len > SIM_TOOLS_MAX) {
        rc = cmd_json_fail(ld->err, "tools", "must be an array of at most %u tools", SIM_TOOLS_MAX);
        goto out;
    }
    sc->ntools = tools->u.array.len;
    if (sc->ntools && (sc->tools = calloc(sc->ntools, sizeof *sc->tools)) == NULL) {
        rc = nomem(ld->err);
        goto out;
    }
    for (size_t i = 0; i < sc->ntools && rc == SL_OK; i++)
        rc = read_tool(ld, tools->u.array.values[i], i);
out:
    return rc;
}

/* ---------------------------------------------------------------------------
 * The whole scenario.
 * ------------------------------------------------------------------------- */
static int person_cmp(const void *a, const void *b)
{
    const sim_person *x = a, *y = b;
    return x->from < y->from ? -1 : x->from > y->from ? 1 : 0;
}

static sl_status read_top(loader *ld, const char *path, yajl_val root, uint64_t seed,
                          bool seed_given)
{
    static const char *const known[] = {
        "name",         "description", "seed",  "catalog",     "fps",   "frame_width",
        "frame_height", "duration_s",  "table", "surgery",     "truth", "detector",
        "tools",        "people",      "hands", "reach_label", NULL};
    static const char *const k_truth[] = {"open_s", "leave_s", NULL};
    sim_scenario *sc = ld->sc;
    sl_error *err = ld->err;
    sl_status rc = SL_OK;
    const char *name = NULL, *desc = "", *catalog = NULL;
    int64_t w = 0, h = 0, s = 1;
    double duration = 0;
    sl_error e;
    sl_error_clear(&e);
    if ((rc = cmd_json_object(root, "", known, err)) ||
        (rc = cmd_json_str(root, "", "name", false, SCHEMA_COMPONENT_MAX, &name, err)) ||
        (rc = cmd_json_str(root, "", "description", false, 4096, &desc, err)) ||
        (rc = cmd_json_int(root, "", "seed", false, 0, INT64_MAX, &s, err)) ||
        (rc = cmd_json_str(root, "", "catalog", true, 4096, &catalog, err)) ||
        (rc = cmd_json_num(root, "", "fps", true, 0.001, 1000, &sc->fps, err)) ||
        (rc = cmd_json_int(root, "", "frame_width", true, 1, 100000, &w, err)) ||
        (rc = cmd_json_int(root, "", "frame_height", true, 1, 100000, &h, err)) ||
        (rc = cmd_json_num(root, "", "duration_s", true, 0.001, 1e9, &duration, err)) ||
        (rc = cmd_json_str(root, "", "reach_label", false, SIM_LABEL_MAX, &ld->reach_label, err)))
        goto out;
    sc->seed = seed_given ? seed : (uint64_t)s;
    sc->frame_width = (int32_t)w;
    sc->frame_height = (int32_t)h;
    sc->frames = sim_frame_of(sc, duration);
    if (sc->frames < 1 || sc->frames > (int64_t)SCHEMA_FRAME_MAX + 1) {
        rc = cmd_json_fail(err, "duration_s", "%g s at %g frames/s is %lld frames: 1 to %u",
                           duration, sc->fps, (long long)sc->frames, SCHEMA_FRAME_MAX + 1);
        goto out;
    }
    /* the name: the surgery id the frames are meant for */
    if (!name) {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        size_t len = strlen(base);
        sc->name =
            len > 5 && !strcmp(base + len - 5, ".json") ? strndup(base, len - 5) : strdup(base);
    } else {
        sc->name = strdup(name);
    }
    if (!sc->name || !(sc->description = strdup(desc))) {
        rc = nomem(err);
        goto out;
    }
    if (schema_component_check("name", sc->name, &e) != SL_OK) {
        rc = cmd_json_fail(err, "name", "the scenario's name (its surgery id) %s", e.message);
        goto out;
    }
    yajl_val tv = cmd_json_get(root, "truth");
    sc->open_s = 2.0;
    sc->leave_s = 2.0;
    if (tv && ((rc = cmd_json_object(tv, "truth", k_truth, err)) ||
               (rc = cmd_json_num(tv, "truth", "open_s", false, 0, 3600, &sc->open_s, err)) ||
               (rc = cmd_json_num(tv, "truth", "leave_s", false, 0, 3600, &sc->leave_s, err))))
        goto out;
    if ((rc = read_table(sc, root, err)) || (rc = read_surgery(sc, root, err)) ||
        (rc = read_catalog(sc, catalog, err)) || (rc = read_detector(ld, root)) ||
        (rc = read_tools(ld, root)) || (rc = read_people(ld, root)) || (rc = read_hands(ld, root)))
        goto out;
    if ((sc->det.fp_catalog_off > 0 || sc->det.fp_catalog_on > 0) && sc->det.fp_rate > 0 &&
        sc->ntools == 0) {
        rc = cmd_json_fail(err, "detector.false_positives",
                           "false positives with catalog labels need a tool to take them from");
        goto out;
    }
    /* people sorted by start; qsort is not stable, so make the order total */
    for (size_t i = 1; i < sc->npeople; i++)
        if (sc->people[i].from < sc->people[i - 1].from) {
            qsort(sc->people, sc->npeople, sizeof *sc->people, person_cmp);
            break;
        }
out:
    return rc;
}

sl_status sim_scenario_load(const char *path, uint64_t seed, bool seed_given, sim_scenario **out,
                            sl_error *err)
{
    sl_status rc = SL_OK;
    yajl_val root = NULL;
    sim_scenario *sc = calloc(1, sizeof *sc);
    loader ld = {.sc = sc, .err = err, .reach_label = "hand"};
    if (!sc) {
        rc = nomem(err);
        goto out;
    }
    const char *slash = strrchr(path, '/');
    sc->dir = slash ? strndup(path, (size_t)(slash - path == 0 ? 1 : slash - path)) : strdup(".");
    if (!sc->dir) {
        rc = nomem(err);
        goto out;
    }
    if ((rc = cmd_json_load(path, SIM_SCENARIO_BYTES_MAX, &root, err)) != SL_OK)
        goto out;
    if ((rc = read_top(&ld, path, root, seed, seed_given)) != SL_OK) {
        sl_error_prefix(err, "%s", path);
        goto out;
    }
    sim_truth_compute(sc);
    for (size_t i = 0; i < sc->ntools; i++)
        if (sc->tools[i].instance > SCHEMA_INSTANCE_MAX) {
            char p[CMD_JSON_PATH_MAX];
            cmd_json_path_index(p, "tools", i);
            rc = cmd_json_fail(err, p, "more than %u instances of %s", SCHEMA_INSTANCE_MAX,
                               sc->tools[i].sku->sku);
            goto out;
        }
    *out = sc;
    sc = NULL;
out:
    free(ld.classes);
    if (root)
        yajl_tree_free(root);
    sim_scenario_free(&sc);
    return rc;
}

void sim_scenario_free(sim_scenario **scp)
{
    if (!scp || !*scp)
        return;
    sim_scenario *sc = *scp;
    for (size_t i = 0; i < sc->nskus; i++) {
        sim_sku *k = &sc->skus[i];
        for (size_t j = 0; j < k->npatterns; j++) {
            free(k->patterns[j]);
            pcre2_code_free(k->re[j]);
        }
        free(k->patterns);
        free(k->re);
        free(k->sku);
        free(k->name);
    }
    free(sc->skus);
    for (size_t i = 0; i < sc->ntools; i++) {
        sim_tool *t = &sc->tools[i];
        for (size_t j = 0; j < t->nlabels; j++) {
            free(t->labels[j]);
            free(t->labels_json[j]);
        }
        free(t->labels);
        free(t->labels_json);
        free(t->class_ids);
        free(t->segs);
        free(t->slots);
    }
    free(sc->tools);
    for (size_t i = 0; i < sc->npeople; i++) {
        free(sc->people[i].label_json);
        free(sc->people[i].path);
    }
    free(sc->people);
    for (size_t i = 0; i < sc->det.nfp_labels; i++)
        free(sc->det.fp_labels_json[i]);
    free(sc->det.fp_labels_json);
    free(sc->det.fp_class_ids);
    free(sc->table);
    free(sc->name);
    free(sc->description);
    free(sc->dir);
    free(sc->catalog_dir);
    free(sc->hospital);
    free(sc->procedure);
    free(sc->room);
    free(sc->surgeon);
    free(sc->started_at);
    free(sc);
    *scp = NULL;
}
