/* simulate_timeline.c -- the moving parts of a scenario (docs/scenarios.md):
 * each tool's timeline from its events (segments on the table, sliding, off
 * it; the truth's slots), the hands reaching for it, the occluders listed
 * (repeated when asked) and the random hand passes.  Read and checked with
 * the helpers of simulate_scenario.c, errors naming the JSON path. */
#include "simulate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_json.h"

/* ---------------------------------------------------------------------------
 * People: occluders over the table.
 * ------------------------------------------------------------------------- */
static sl_status add_person(sim__loader *ld, const char *path, const sim_person *p)
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
            rc = sim__nomem(ld->err);
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
        rc = sim__nomem(ld->err);
        goto out;
    }
    memcpy(n->path, p->path, p->npath * sizeof *n->path);
    sc->npeople++;
out:
    return rc;
}

sl_status sim__read_people(sim__loader *ld, yajl_val root)
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
        if ((rc = sim__read_free_label(ld, lv, q, &label_json, &n.class_id)) ||
            (rc = sim__read_time(sc, v, p, "from", true, &from, &f0, err)) ||
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
            rc = sim__read_box(pv->u.array.values[k], r, true, &path[k], err);
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
sl_status sim__read_hands(sim__loader *ld, yajl_val root)
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
        (rc = sim__read_range(h, "hands", "size", 0.01, 0.5, &size_lo, &size_hi, err)))
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
        rc = sim__read_free_label(ld, lv->u.array.values[i], p, &labels[i], &ids[i]);
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
            rc = sim__nomem(tl->err);
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
            rc = sim__nomem(tl->err);
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
static sl_status add_reach(sim__loader *ld, const char *path, sim_box slot, int64_t from,
                           int64_t to)
{
    sl_status rc = SL_OK;
    char *json = NULL;
    sim_person n = {.from = from < 0 ? 0 : from, .to = to, .npath = 1, .detected = true};
    sim_box b = {slot.x - 0.02, slot.y - 0.02, slot.w + 0.04, slot.h + 0.04};
    n.path = &b;
    if (n.to <= n.from)
        goto out;
    if ((json = sim_json_escape(ld->reach_label)) == NULL) {
        rc = sim__nomem(ld->err);
        goto out;
    }
    n.label_json = json;
    if ((rc = sim__class_of(ld, ld->reach_label, &n.class_id)) == SL_OK)
        rc = add_person(ld, path, &n);
out:
    free(json);
    return rc;
}

static sl_status read_event(sim__loader *ld, timeline *tl, yajl_val e, const char *p,
                            int64_t *cursor, sim_box *cur, bool *gone)
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
        if ((rc = sim__read_slot(sc, cmd_json_get(e, "move_to"), q, &to, err)) ||
            (rc = sim__read_time(sc, e, p, "at", true, &t0, &f0, err)) ||
            (rc = sim__read_span(sc, e, p, "over_s", 1.0, &over, err)))
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
    if ((rc = sim__read_time(sc, e, p, "pick_up_at", true, &t0, &f0, err)))
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
        if ((rc = sim__read_time(sc, e, p, "put_back_at", true, &t1, &f1, err)))
            goto out;
        cmd_json_path_key(q, p, "put_back_at");
        if (f1 <= f0) {
            rc = cmd_json_fail(err, q, "%g s (frame %lld) is not after pick_up_at (%g s)", t1,
                               (long long)f1, t0);
            goto out;
        }
        cmd_json_path_key(q, p, "put_back_slot");
        if (cmd_json_has(e, "put_back_slot") &&
            (rc = sim__read_slot(sc, cmd_json_get(e, "put_back_slot"), q, &to, err)))
            goto out;
    }
    sim_box seen = {0};
    int64_t seen_frames = f1 - f0, reach = 0;
    if (cmd_json_has(e, "seen_at")) {
        cmd_json_path_key(q, p, "seen_at");
        if ((rc = sim__read_box(cmd_json_get(e, "seen_at"), q, false, &seen, err)))
            goto out;
        if (sim_on_table(sc, seen.x + seen.w / 2, seen.y + seen.h / 2)) {
            rc = cmd_json_fail(err, q,
                               "the box's centre is on the table: a tool seen there is "
                               "not off it");
            goto out;
        }
        if (cmd_json_has(e, "seen_s") &&
            (rc = sim__read_span(sc, e, p, "seen_s", 0, &seen_frames, err)))
            goto out;
    }
    if ((rc = sim__read_span(sc, e, p, "reach_s", 0, &reach, err)))
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

static sl_status read_tool(sim__loader *ld, yajl_val v, size_t i)
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
        (rc = sim__read_time(sc, v, p, "opened_at", false, &opened_at, &t->opened_frame, err)) ||
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
        rc = sim__nomem(err);
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
        if ((rc = sim__match_label(sc, label, &m, err)) != SL_OK)
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
            rc = sim__nomem(err);
        else
            rc = sim__class_of(ld, t->labels[k], &t->class_ids[k]);
    }
    if (rc != SL_OK)
        goto out;
    cmd_json_path_key(q, p, "slot");
    if ((rc = sim__read_slot(sc, cmd_json_get(v, "slot"), q, &t->slot, err)))
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

sl_status sim__read_tools(sim__loader *ld, yajl_val root)
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
        rc = sim__nomem(ld->err);
        goto out;
    }
    for (size_t i = 0; i < sc->ntools && rc == SL_OK; i++)
        rc = read_tool(ld, tools->u.array.values[i], i);
out:
    return rc;
}
