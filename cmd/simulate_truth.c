/* simulate_truth.c -- the ground truth of a scenario: what physically
 * happened to each tool instance, decided from its timeline alone (never
 * from what the detector saw, and so independent of the seed), with the
 * definitions of DESIGN.md "Tool-usage analytics" (docs/scenarios.md,
 * "Truth"):
 *   opened  -- lay on the table for open_s seconds in a row (sliding on it
 *              counts as lying on it);
 *   used    -- opened, and off the table (picked up, carried away) for
 *              leave_s seconds in a row at least once;
 *   left_at_frame     -- the first frame of the first such departure;
 *   returned_at_frame -- the first frame back on the table after it (null
 *                        when carried away for good).
 * Also the PUT /v1/surgeries/{id} body of the scenario. */
#include "simulate.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Instances of a SKU are numbered in order of their first appearance on the
 * table; ties (tools opened together) by the slot's centre, left to right,
 * then top to bottom, then the order of the scenario. */
static int appearance_cmp(const void *a, const void *b)
{
    const sim_tool *x = *(const sim_tool *const *)a, *y = *(const sim_tool *const *)b;
    int c = strcmp(x->sku->sku, y->sku->sku);
    if (c)
        return c;
    if (x->opened_frame != y->opened_frame)
        return x->opened_frame < y->opened_frame ? -1 : 1;
    double xc = x->slot.x + x->slot.w / 2, yc = y->slot.x + y->slot.w / 2;
    if (xc != yc)
        return xc < yc ? -1 : 1;
    xc = x->slot.y + x->slot.h / 2;
    yc = y->slot.y + y->slot.h / 2;
    if (xc != yc)
        return xc < yc ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index ? 1 : 0;
}

void sim_truth_compute(sim_scenario *sc)
{
    int64_t open_frames = sim_frame_of(sc, sc->open_s),
            leave_frames = sim_frame_of(sc, sc->leave_s);
    for (size_t i = 0; i < sc->ntools; i++) {
        sim_tool *t = &sc->tools[i];
        int64_t run = 0;
        t->opened = t->used = false;
        t->left_frame = t->returned_frame = -1;
        for (size_t k = 0; k < t->nsegs; k++) {
            const sim_seg *s = &t->segs[k];
            if (s->kind != SIM_SEG_OFF) {
                run += s->to - s->from;
                if (run >= open_frames && run > 0)
                    t->opened = true;
            } else {
                run = 0;
            }
        }
        for (size_t k = 0; t->opened && k < t->nsegs && t->left_frame < 0; k++) {
            const sim_seg *s = &t->segs[k];
            if (s->kind == SIM_SEG_OFF && s->to - s->from >= leave_frames && s->to > s->from) {
                t->used = true;
                t->left_frame = s->from;
                t->returned_frame = s->to < sc->frames ? s->to : -1;
            }
        }
    }
    const sim_tool **by = malloc((sc->ntools + 1) * sizeof *by);
    if (!by) { /* numbering falls back to the scenario's order */
        for (size_t i = 0; i < sc->ntools; i++)
            sc->tools[i].instance = (uint32_t)i + 1;
        return;
    }
    for (size_t i = 0; i < sc->ntools; i++)
        by[i] = &sc->tools[i];
    qsort(by, sc->ntools, sizeof *by, appearance_cmp);
    for (size_t i = 0; i < sc->ntools; i++) {
        sim_tool *t = &sc->tools[by[i]->index];
        t->instance = i > 0 && by[i - 1]->sku == t->sku ? by[i - 1]->instance + 1 : 1;
    }
    free(by);
}

/* ---------------------------------------------------------------------------
 * Writing.
 * ------------------------------------------------------------------------- */
static void put_str(FILE *f, const char *s)
{
    char *e = sim_json_escape(s);
    fprintf(f, "\"%s\"", e ? e : "");
    free(e);
}

static void put_box(FILE *f, const sim_box *b)
{
    fprintf(f, "{\"x\": %.6f, \"y\": %.6f, \"w\": %.6f, \"h\": %.6f}", b->x, b->y, b->w, b->h);
}

static void put_frame(FILE *f, int64_t v)
{
    if (v < 0)
        fputs("null", f);
    else
        fprintf(f, "%lld", (long long)v);
}

static int instance_cmp(const void *a, const void *b)
{
    const sim_tool *x = *(const sim_tool *const *)a, *y = *(const sim_tool *const *)b;
    int c = strcmp(x->sku->sku, y->sku->sku);
    return c ? c : x->instance < y->instance ? -1 : x->instance > y->instance ? 1 : 0;
}

sl_status sim_truth_write(const sim_scenario *sc, FILE *f, const char *path, sl_error *err)
{
    sl_status rc = SL_OK;
    const sim_tool **by = malloc((sc->ntools + 1) * sizeof *by);
    if (!by) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < sc->ntools; i++)
        by[i] = &sc->tools[i];
    qsort(by, sc->ntools, sizeof *by, instance_cmp);
    fputs("{\n  \"scenario\": ", f);
    put_str(f, sc->name);
    fputs(",\n  \"description\": ", f);
    put_str(f, sc->description);
    fputs(",\n  \"surgery\": {\"id\": ", f);
    put_str(f, sc->name);
    fputs(", \"hospital\": ", f);
    put_str(f, sc->hospital);
    fputs(", \"procedure\": ", f);
    put_str(f, sc->procedure);
    fprintf(f,
            "},\n  \"fps\": %.10g,\n  \"frames\": %lld,\n  \"frame_width\": %d,\n"
            "  \"frame_height\": %d,\n",
            sc->fps, (long long)sc->frames, sc->frame_width, sc->frame_height);
    fprintf(f,
            "  \"definitions\": {\"open_s\": %.10g, \"leave_s\": %.10g, \"open_frames\": %lld, "
            "\"leave_frames\": %lld},\n",
            sc->open_s, sc->leave_s, (long long)sim_frame_of(sc, sc->open_s),
            (long long)sim_frame_of(sc, sc->leave_s));
    fputs("  \"instances\": [", f);
    for (size_t i = 0; i < sc->ntools; i++) {
        const sim_tool *t = by[i];
        fputs(i ? ",\n    {\"sku\": " : "\n    {\"sku\": ", f);
        put_str(f, t->sku->sku);
        fprintf(f, ", \"instance\": %u, \"tool\": %zu, \"label\": ", t->instance, t->index);
        put_str(f, t->labels[0]);
        fputs(", \"slot\": ", f);
        put_box(f, &t->slot);
        fputs(", \"slots\": [", f);
        for (size_t k = 0; k < t->nslots; k++) {
            if (k)
                fputs(", ", f);
            put_box(f, &t->slots[k]);
        }
        fprintf(
            f, "], \"opened\": %s, \"used\": %s, \"opened_at_frame\": %lld, \"left_at_frame\": ",
            t->opened ? "true" : "false", t->used ? "true" : "false", (long long)t->opened_frame);
        put_frame(f, t->left_frame);
        fputs(", \"returned_at_frame\": ", f);
        put_frame(f, t->returned_frame);
        fprintf(f, ", \"single_use\": %s, \"unit_cost_cents\": %lld}",
                t->sku->single_use ? "true" : "false", (long long)t->sku->unit_cost_cents);
    }
    fputs(sc->ntools ? "\n  ],\n  \"skus\": [" : "],\n  \"skus\": [", f);
    int64_t opened = 0, used = 0, waste = 0;
    bool first = true;
    for (size_t k = 0; k < sc->nskus; k++) {
        const sim_sku *s = &sc->skus[k];
        int64_t o = 0, u = 0, any = 0;
        for (size_t i = 0; i < sc->ntools; i++)
            if (sc->tools[i].sku == s) {
                any++;
                o += sc->tools[i].opened;
                u += sc->tools[i].used;
            }
        if (!any)
            continue; /* in the catalog, not in this scenario */
        int64_t w = s->single_use ? (o - u) * s->unit_cost_cents : 0;
        fputs(first ? "\n    {\"sku\": " : ",\n    {\"sku\": ", f);
        first = false;
        put_str(f, s->sku);
        fputs(", \"name\": ", f);
        put_str(f, s->name);
        fprintf(f,
                ", \"unit_cost_cents\": %lld, \"single_use\": %s, \"instances\": %lld, "
                "\"opened\": %lld, \"used\": %lld, \"unused\": %lld, \"waste_cost_cents\": %lld}",
                (long long)s->unit_cost_cents, s->single_use ? "true" : "false", (long long)any,
                (long long)o, (long long)u, (long long)(o - u), (long long)w);
        opened += o;
        used += u;
        waste += w;
    }
    fprintf(f,
            "%s],\n  \"totals\": {\"instances\": %zu, \"opened\": %lld, \"used\": %lld, "
            "\"unused\": %lld, \"waste_cost_cents\": %lld}\n}\n",
            first ? "" : "\n  ", sc->ntools, (long long)opened, (long long)used,
            (long long)(opened - used), (long long)waste);
    if (fflush(f) != 0 || ferror(f))
        rc = sl_error_set(err, SL_EIO, "%s: cannot write: %s", path, strerror(errno));
out:
    free(by);
    return rc;
}

sl_status sim_surgery_write(const sim_scenario *sc, FILE *f, const char *path, sl_error *err)
{
    sl_status rc = SL_OK;
    fputs("{\"hospital\": ", f);
    put_str(f, sc->hospital);
    fputs(", \"room\": ", f);
    put_str(f, sc->room);
    fputs(", \"procedure\": ", f);
    put_str(f, sc->procedure);
    fputs(", \"surgeon\": ", f);
    put_str(f, sc->surgeon);
    fputs(", \"started_at\": ", f);
    put_str(f, sc->started_at);
    fprintf(f, ", \"fps\": %.10g, \"frame_width\": %d, \"frame_height\": %d, \"table\": [", sc->fps,
            sc->frame_width, sc->frame_height);
    for (size_t i = 0; i < sc->ntable; i++)
        fprintf(f, "%s[%.10g, %.10g]", i ? ", " : "", sc->table[i][0], sc->table[i][1]);
    fputs("]}\n", f);
    if (fflush(f) != 0 || ferror(f))
        rc = sl_error_set(err, SL_EIO, "%s: cannot write: %s", path, strerror(errno));
    return rc;
}
