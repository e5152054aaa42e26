/* simulate_scenario.c -- reads and checks a scenario (docs/scenarios.md):
 * every member known (a typo is refused, not ignored), every value in range,
 * times in order, slots on the table, and every label checked against the
 * scenario's catalog folder, so the frames it makes exercise the catalog's
 * patterns as the scenario says.  Here: the helpers every reader uses, the
 * catalog, the top level, the table, the surgery and the detector; the tools'
 * timelines and the occluders are in simulate_timeline.c.  Then the truth. */
#include "simulate.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <bson/bson.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_json.h"
#include "ingest/ingest.h"

/* The same pattern options as the catalog ingest compiles (whole-label match). */

/* ---------------------------------------------------------------------------
 * Small helpers.
 * ------------------------------------------------------------------------- */
sl_status sim__nomem(sl_error *err)
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
sl_status sim__class_of(sim__loader *ld, const char *label, uint32_t *id)
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
                rc = sim__nomem(ld->err);
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
sl_status sim__read_box(yajl_val v, const char *path, bool loose, sim_box *out, sl_error *err)
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
sl_status sim__read_slot(const sim_scenario *sc, yajl_val v, const char *path, sim_box *out,
                         sl_error *err)
{
    sl_status rc = sim__read_box(v, path, false, out, err);
    if (rc == SL_OK && !sim_on_table(sc, out->x + out->w / 2, out->y + out->h / 2))
        rc = cmd_json_fail(err, path, "the slot's centre (%.3f, %.3f) is not on the table",
                           out->x + out->w / 2, out->y + out->h / 2);
    return rc;
}

/* A time in seconds inside the scenario: its frame in [0, frames). */
sl_status sim__read_time(const sim_scenario *sc, yajl_val o, const char *path, const char *key,
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
sl_status sim__read_span(const sim_scenario *sc, yajl_val o, const char *path, const char *key,
                         double def, int64_t *frames, sl_error *err)
{
    double s = def;
    sl_status rc = cmd_json_num(o, path, key, false, 0, 86400, &s, err);
    if (rc == SL_OK)
        *frames = sim_frame_of(sc, s);
    return rc;
}

/* A pair [lo, hi] with lo <= hi inside [min, max]. */
sl_status sim__read_range(yajl_val o, const char *path, const char *key, double min, double max,
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
 * takes is one the service takes). */
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
        rc = sim__nomem(err);
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
        rc = sim__nomem(err);
        goto out;
    }
    while (bson_iter_next(&arr)) {
        char **p = realloc(k->patterns, (k->npatterns + 1) * sizeof *p);
        if (p)
            k->patterns = p;
        uint32_t plen = 0;
        const char *pat = bson_iter_utf8(&arr, &plen);
        if (!p || !(k->patterns[k->npatterns] = strndup(pat, plen))) {
            rc = sim__nomem(err);
            goto out;
        }
        k->npatterns++;
    }
out:
    if (f)
        fclose(f);
    if (doc)
        bson_destroy(doc);
    free(body);
    return rc;
}

/* The entries compiled with schema's matcher, in SKU byte order: the order
 * the service's loaders add them (their sort keys TOOL#<sku>), so that when
 * two entries' patterns overlap the same one wins here and there. */
static sl_status build_matcher(sim_scenario *sc, sl_error *err)
{
    sl_status rc = SL_OK;
    uint32_t *lens = NULL;
    if ((sc->matcher_sku = malloc(sc->nskus * sizeof *sc->matcher_sku)) == NULL) {
        rc = sim__nomem(err);
        goto out;
    }
    /* insertion sort: the files came in name order, which is SKU order but
     * where a SKU is a prefix of another ("A.json" sorts after "A-B.json") */
    for (size_t i = 0; i < sc->nskus; i++) {
        size_t j = i;
        for (; j > 0 && strcmp(sc->skus[sc->matcher_sku[j - 1]].sku, sc->skus[i].sku) > 0; j--)
            sc->matcher_sku[j] = sc->matcher_sku[j - 1];
        sc->matcher_sku[j] = i;
    }
    if ((rc = schema_catalog_new(&sc->matcher, err)) != SL_OK)
        goto out;
    for (size_t i = 0; i < sc->nskus && rc == SL_OK; i++) {
        const sim_sku *k = &sc->skus[sc->matcher_sku[i]];
        uint32_t *l = realloc(lens, (k->npatterns ? k->npatterns : 1) * sizeof *l);
        if (!l) {
            rc = sim__nomem(err);
            goto out;
        }
        lens = l;
        for (size_t j = 0; j < k->npatterns; j++)
            lens[j] = (uint32_t)strlen(k->patterns[j]);
        schema_catalog_entry e = {.sku = k->sku,
                                  .name = k->name,
                                  .labels = (const char *const *)k->patterns,
                                  .label_len = lens,
                                  .nlabels = (uint32_t)k->npatterns,
                                  .unit_cost_cents = k->unit_cost_cents,
                                  .single_use = k->single_use};
        if ((rc = schema_catalog_add(sc->matcher, &e, err)) != SL_OK)
            sl_error_prefix(err, "catalog entry %s", k->sku);
    }
out:
    free(lens);
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
        rc = sim__nomem(err);
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
                rc = sim__nomem(err);
                goto out;
            }
            names = p;
        }
        if ((names[n] = strdup(e->d_name)) == NULL) {
            rc = sim__nomem(err);
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
        rc = sim__nomem(err);
        goto out;
    }
    for (size_t i = 0; i < n && rc == SL_OK; i++) {
        sc->nskus = i + 1;
        rc = read_sku(sc->catalog_dir, names[i], &sc->skus[i], err);
    }
    if (rc == SL_OK)
        rc = build_matcher(sc, err);
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
sl_status sim__match_label(const sim_scenario *sc, const char *label, const sim_sku **out,
                           sl_error *err)
{
    size_t i = SCHEMA_CATALOG_NONE;
    sl_status rc = schema_catalog_match(sc->matcher, label, strlen(label), &i, err);
    *out = rc == SL_OK && i != SCHEMA_CATALOG_NONE ? &sc->skus[sc->matcher_sku[i]] : NULL;
    return rc;
}

/* A label read at path that must map to no catalog entry (occluders, random
 * false positives): it is what the service reports as unmapped. */
sl_status sim__read_free_label(sim__loader *ld, yajl_val v, const char *path, char **json,
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
    if ((rc = sim__match_label(ld->sc, s, &k, ld->err)) != SL_OK)
        goto out;
    if (k) {
        rc = cmd_json_fail(ld->err, path,
                           "\"%s\" maps to %s in the catalog: an occluder or random false positive "
                           "must match no catalog entry",
                           s, k->sku);
        goto out;
    }
    if ((rc = sim__class_of(ld, s, class_id)) != SL_OK)
        goto out;
    if ((*json = sim_json_escape(s)) == NULL)
        rc = sim__nomem(ld->err);
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
        rc = sim__nomem(err);
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
        rc = sim__nomem(err);
out:
    return rc;
}

/* ---------------------------------------------------------------------------
 * The detector model.
 * ------------------------------------------------------------------------- */
static sl_status read_detector(sim__loader *ld, yajl_val root)
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
         (rc = sim__read_range(f, fpp, "confidence", 0, 1, &d->fp_conf_lo, &d->fp_conf_hi, err)) ||
         (rc = sim__read_range(f, fpp, "size", 0.001, 0.5, &d->fp_size_lo, &d->fp_size_hi, err))))
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
            rc = sim__nomem(err);
            goto out;
        }
        for (size_t i = 0; i < d->nfp_labels && rc == SL_OK; i++) {
            char p[CMD_JSON_PATH_MAX];
            cmd_json_path_index(p, "detector.false_positives.labels", i);
            rc = sim__read_free_label(ld, labels->u.array.values[i], p, &d->fp_labels_json[i],
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
 * The whole scenario.
 * ------------------------------------------------------------------------- */
static int person_cmp(const void *a, const void *b)
{
    const sim_person *x = a, *y = b;
    return x->from < y->from ? -1 : x->from > y->from ? 1 : 0;
}

static sl_status read_top(sim__loader *ld, const char *path, yajl_val root, uint64_t seed,
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
        rc = sim__nomem(err);
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
        (rc = read_catalog(sc, catalog, err)))
        goto out;
    yajl_val rl = cmd_json_get(root, "reach_label");
    if (rl) { /* an occluder's label: it must map to no catalog entry */
        char *json = NULL;
        uint32_t id;
        rc = sim__read_free_label(ld, rl, "reach_label", &json, &id);
        free(json);
        if (rc != SL_OK)
            goto out;
    }
    if ((rc = read_detector(ld, root)) || (rc = sim__read_tools(ld, root)) ||
        (rc = sim__read_people(ld, root)) || (rc = sim__read_hands(ld, root)))
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

sl_status sim_scenario_parse(const char *name, const char *dir, const char *text, size_t len,
                             uint64_t seed, bool seed_given, sim_scenario **out, sl_error *err)
{
    sl_status rc = SL_OK;
    yajl_val root = NULL;
    sim_scenario *sc = calloc(1, sizeof *sc);
    sim__loader ld = {.sc = sc, .err = err, .reach_label = "hand"};
    if (!sc || !(sc->dir = strdup(dir))) {
        rc = sim__nomem(err);
        goto out;
    }
    if ((rc = cmd_json_parse(name, text, len, &root, err)) != SL_OK)
        goto out;
    if ((rc = read_top(&ld, name, root, seed, seed_given)) != SL_OK) {
        sl_error_prefix(err, "%s", name);
        goto out;
    }
    if (ld.nclasses > INGEST_DEFAULT_MAX_LABELS) { /* what ingest takes in one input */
        rc = cmd_json_fail(err, "tools",
                           "%zu distinct labels (tools, variants, occluders, false positives): "
                           "ingest takes at most %u in one input",
                           ld.nclasses, INGEST_DEFAULT_MAX_LABELS);
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

sl_status sim_scenario_load(const char *path, uint64_t seed, bool seed_given, sim_scenario **out,
                            sl_error *err)
{
    sl_status rc = SL_OK;
    char *dir = NULL, *text = malloc(SIM_SCENARIO_BYTES_MAX + 1);
    size_t len = 0;
    FILE *f = NULL;
    const char *slash = strrchr(path, '/');
    dir = slash ? strndup(path, (size_t)(slash - path == 0 ? 1 : slash - path)) : strdup(".");
    if (!dir || !text) {
        rc = sim__nomem(err);
        goto out;
    }
    if (!(f = fopen(path, "rb"))) {
        rc = sl_error_set(err, SL_EIO, "%s: cannot open: %s", path, strerror(errno));
        goto out;
    }
    len = fread(text, 1, SIM_SCENARIO_BYTES_MAX + 1, f);
    if (ferror(f)) {
        rc = sl_error_set(err, SL_EIO, "%s: cannot read: %s", path, strerror(errno));
        goto out;
    }
    if (len > SIM_SCENARIO_BYTES_MAX) {
        rc = sl_error_set(err, SL_ETOOLARGE, "%s: larger than %u bytes", path,
                          SIM_SCENARIO_BYTES_MAX);
        goto out;
    }
    text[len] = '\0';
    rc = sim_scenario_parse(path, dir, text, len, seed, seed_given, out, err);
out:
    if (f)
        fclose(f);
    free(text);
    free(dir);
    return rc;
}

void sim_scenario_free(sim_scenario **scp)
{
    if (!scp || !*scp)
        return;
    sim_scenario *sc = *scp;
    for (size_t i = 0; i < sc->nskus; i++) {
        sim_sku *k = &sc->skus[i];
        for (size_t j = 0; j < k->npatterns; j++)
            free(k->patterns[j]);
        free(k->patterns);
        free(k->sku);
        free(k->name);
    }
    free(sc->skus);
    schema_catalog_free(&sc->matcher);
    free(sc->matcher_sku);
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
