/* usage_track.c -- the tool-usage tracker (usage_int.h; the rules and their
 * reasons: docs/usage.md, "Algorithm").  Pure: frames of classified
 * detections in, decisions per physical instance out; no store, no clock.
 *
 * A track is one physical instance, or a candidate for one, of a SKU:
 *
 *   candidate --(held open_ms, filled)--------------------------> present
 *   candidate --(held return_ms, an instance of its SKU missing)-> that instance,
 *                relocated: a move (off the table < move_ms) or a return
 *   present  --(not seen this frame)--> missing (the absence clock runs, but
 *                                       not while an occluder covers its slot)
 *   missing  --(seen in its slot)-----> present (flicker: nothing happened)
 *   missing  --(absent leave_ms, or seen off the table off_ms)--> left (used)
 *   left     --(a candidate is taken for it)--> present (returned)
 *
 * Time is counted in ticks, one per analyzed frame, so frames that were
 * never ingested stretch the windows instead of counting as absences.
 * Memory: the tracks (bounded by cfg.tracks_max; an opened instance is never
 * freed, a candidate is when it fades) and per-frame scratch that grows with
 * the largest frame; no allocation in the steady state. */
#include "usage_int.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum { T_FREE = 0, T_CAND, T_PRESENT, T_MISSING, T_LEFT };
enum { WHY_NONE = 0, WHY_ABSENT, WHY_OFF, WHY_RELOCATED };

typedef struct track {
    uint8_t state, used, why;
    uint32_t sku;
    int32_t prev, next; /* the SKU's list (or the free list), -1 at the ends */
    int32_t box[4];     /* where it is now: its last sighting */
    int32_t open_box[4];
    int64_t seen_tick; /* matched in this tick */
    int64_t off_tick;  /* its SKU seen off the table in this tick, attributed to it */
    int64_t first_tick, last_tick, seen; /* sightings (seen: a candidate's) */
    int64_t first_frame, last_frame, opened_frame;
    /* the current absence */
    int64_t absent; /* ticks absent and not occluded */
    int64_t absent_start, absent_start_tick, off_seen, off_first, depart_last_frame;
    int64_t run, run_start, run_start_tick;  /* the current run of counted frames in a row */
    int64_t steady_start, steady_start_tick; /* the first run of STEADY frames, -1 */
    int64_t longest;                         /* the longest absence that was no departure */
    /* the first departure */
    int64_t left_frame, returned_frame, decided_frame, left_tick, end_tick, reloc_gap, off_peak,
        off_first_dec, depart_last_dec;
} track;

#define BANDS 64 /* horizontal bands of the table's edges */

/* The departure is dated by the first run of this many counted absent
 * frames in a row: an occluder the detector missed for a frame or two while
 * a hand reached for the tool does not date it early. */
#define STEADY 3

#define GRID 256 /* cells a side of the table's raster */

struct engine__usage_tracker {
    engine__usage_cfg cfg;
    int64_t *px, *py; /* the table, doubled micro-units */
    int32_t band_start[BANDS + 1];
    int32_t *band_edges;
    uint8_t *grid; /* GRID x GRID cells: CELL_OUT, CELL_IN, or CELL_EDGE (test exactly) */
    track *tr;
    size_t ntr, cap; /* slots used (high water), allocated */
    int32_t free_head;
    size_t live, peak;
    /* per SKU */
    int32_t *head;
    int64_t *stamp;
    uint32_t *n_on, *n_off, *cursor;
    /* per frame, grown with the largest frame */
    uint32_t *touched, *bucket;
    int32_t *cands; /* candidates seen in this frame */
    size_t ncands;
    uint8_t *on;
    int32_t (*occ)[4], (*boxes)[4];
    engine__usage_slot *slots;
    int32_t *slot_track, *det_of_slot;
    uint8_t *det_taken;
    size_t dcap, scap;
    size_t nocc;
    engine__usage_assign *assign;
    int64_t tick, frame;
    bool started, finished, failed;
    engine__usage_instance *out;
    size_t nout;
};

/* ---------------------------------------------------------------------------
 * The table: even-odd point in polygon, the edges bucketed by horizontal
 * band so a test looks at the few edges of its band.
 * ------------------------------------------------------------------------- */
#define SPAN 2000000 /* doubled micro-units: the picture's height */

static int band_of(int64_t y)
{
    int64_t b = y * BANDS / (SPAN + 1);
    return b < 0 ? 0 : b >= BANDS ? BANDS - 1 : (int)b;
}

static sl_status table_build(engine__usage_tracker *t, sl_error *err)
{
    size_t n = t->cfg.npoints, total = 0;
    int32_t count[BANDS] = {0};
    t->px = malloc(n * sizeof *t->px);
    t->py = malloc(n * sizeof *t->py);
    if (!t->px || !t->py)
        return sl_error_set(err, SL_ENOMEM, "out of memory keeping the table");
    for (size_t i = 0; i < n; i++) {
        t->px[i] = 2 * (int64_t)t->cfg.px[i];
        t->py[i] = 2 * (int64_t)t->cfg.py[i];
    }
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            int64_t y0 = t->py[i], y1 = t->py[(i + 1) % n];
            int b0 = band_of(y0 < y1 ? y0 : y1), b1 = band_of(y0 < y1 ? y1 : y0);
            for (int b = b0; b <= b1; b++) {
                if (pass == 0)
                    count[b]++;
                else
                    t->band_edges[t->band_start[b] + --count[b]] = (int32_t)i;
            }
        }
        if (pass == 0) {
            t->band_start[0] = 0;
            for (int b = 0; b < BANDS; b++)
                t->band_start[b + 1] = t->band_start[b] + count[b];
            total = (size_t)t->band_start[BANDS];
            if (!(t->band_edges = malloc((total ? total : 1) * sizeof *t->band_edges)))
                return sl_error_set(err, SL_ENOMEM, "out of memory keeping the table");
            for (int b = 0; b < BANDS; b++)
                count[b] = t->band_start[b + 1] - t->band_start[b];
        }
    }
    return SL_OK;
}

/* Whether (x, y), doubled micro-units, lies on the table: exactly. */
static bool inside(const engine__usage_tracker *t, int64_t x, int64_t y)
{
    bool in = false;
    int b = band_of(y);
    size_t n = t->cfg.npoints;
    for (int32_t k = t->band_start[b]; k < t->band_start[b + 1]; k++) {
        size_t i = (size_t)t->band_edges[k], j = (i + 1) % n;
        int64_t xi = t->px[i], yi = t->py[i], xj = t->px[j], yj = t->py[j];
        if ((yi > y) == (yj > y))
            continue;
        /* x < xi + (y - yi) * (xj - xi) / (yj - yi), without dividing */
        int64_t lhs = (x - xi) * (yj - yi), rhs = (y - yi) * (xj - xi);
        if (yj > yi ? lhs < rhs : lhs > rhs)
            in = !in;
    }
    return in;
}

/* The raster: a cell no edge comes near is wholly in or out, and one look
 * answers for every point in it; a cell an edge crosses is tested exactly.
 * Built once per analysis: for each edge and each row it crosses, the cells
 * its stretch in that row comes within a cell of (a generous margin: an
 * extra cell tested exactly costs a few ns). */
enum { CELL_OUT = 0, CELL_IN = 1, CELL_EDGE = 2 };

static int64_t cell_lo(int c)
{
    return (int64_t)c * (SPAN + 1) / GRID;
}

static int cell_of(int64_t v)
{
    return (int)(v * GRID / (SPAN + 1));
}

static sl_status grid_build(engine__usage_tracker *t, sl_error *err)
{
    size_t n = t->cfg.npoints;
    if (!(t->grid = calloc((size_t)GRID * GRID, 1)))
        return sl_error_set(err, SL_ENOMEM, "out of memory keeping the table");
    for (size_t i = 0; i < n; i++) {
        int64_t x0 = t->px[i], y0 = t->py[i], x1 = t->px[(i + 1) % n], y1 = t->py[(i + 1) % n];
        int64_t ylo = y0 < y1 ? y0 : y1, yhi = y0 < y1 ? y1 : y0;
        int cy0 = cell_of(ylo), cy1 = cell_of(yhi);
        cy0 -= cy0 > 0;
        cy1 += cy1 < GRID - 1;
        for (int cy = cy0; cy <= cy1; cy++) {
            /* the part of the edge within the row (grown by a unit) */
            int64_t ra = cell_lo(cy) - 1, rb = cell_lo(cy + 1) + 1;
            if (ra < ylo)
                ra = ylo;
            if (rb > yhi)
                rb = yhi;
            if (ra > rb)
                continue;
            int64_t xa = x0, xb = x1;
            if (y1 != y0) {
                xa = x0 + (ra - y0) * (x1 - x0) / (y1 - y0);
                xb = x0 + (rb - y0) * (x1 - x0) / (y1 - y0);
            }
            int64_t xlo = (xa < xb ? xa : xb) - 2, xhi = (xa < xb ? xb : xa) + 2;
            int cx0 = cell_of(xlo < 0 ? 0 : xlo), cx1 = cell_of(xhi > SPAN ? SPAN : xhi);
            cx0 -= cx0 > 0;
            cx1 += cx1 < GRID - 1;
            memset(&t->grid[cy * GRID + cx0], CELL_EDGE, (size_t)(cx1 - cx0 + 1));
        }
    }
    /* No edge comes between two neighbours of a row that no edge comes near
     * (a cell's rectangle was grown): each run of them is in or out as a
     * whole, one exact test answers for it. */
    for (int cy = 0; cy < GRID; cy++) {
        uint8_t run = CELL_OUT;
        bool fresh = true;
        for (int cx = 0; cx < GRID; cx++) {
            uint8_t *g = &t->grid[cy * GRID + cx];
            if (*g == CELL_EDGE) {
                fresh = true;
                continue;
            }
            if (fresh)
                run = inside(t, (cell_lo(cx) + cell_lo(cx + 1)) / 2,
                             (cell_lo(cy) + cell_lo(cy + 1)) / 2)
                          ? CELL_IN
                          : CELL_OUT;
            fresh = false;
            *g = run;
        }
    }
    return SL_OK;
}

/* Whether the centre of box lies on the table. */
static bool on_table(const engine__usage_tracker *t, const int32_t box[4])
{
    int64_t x = 2 * (int64_t)box[0] + box[2], y = 2 * (int64_t)box[1] + box[3];
    if (x > SPAN || y > SPAN) /* a box reaching past the picture */
        return inside(t, x, y);
    uint8_t g = t->grid[cell_of(y) * GRID + cell_of(x)];
    return g == CELL_EDGE ? inside(t, x, y) : g == CELL_IN;
}

/* ---------------------------------------------------------------------------
 * Tracks.
 * ------------------------------------------------------------------------- */
static void unlink_track(engine__usage_tracker *t, int32_t i)
{
    track *r = &t->tr[i];
    if (r->prev >= 0)
        t->tr[r->prev].next = r->next;
    else
        t->head[r->sku] = r->next;
    if (r->next >= 0)
        t->tr[r->next].prev = r->prev;
}

static void free_track(engine__usage_tracker *t, int32_t i)
{
    unlink_track(t, i);
    t->tr[i].state = T_FREE;
    t->tr[i].next = t->free_head;
    t->free_head = i;
    t->live--;
}

/* A new candidate of sku at box, seen now; its index into *out.  Indices
 * stay, pointers into t->tr do not (the array grows). */
static sl_status new_candidate(engine__usage_tracker *t, uint32_t sku, const int32_t box[4],
                               int32_t *out, sl_error *err)
{
    int32_t i;
    if (t->live >= t->cfg.tracks_max)
        return sl_error_set_at(err, SL_ETOOLARGE, "tracks_max", -1,
                               "more than %zu tool instances and candidates at once at frame "
                               "%lld (raise tracks_max, or look for a detector emitting tools "
                               "everywhere)",
                               t->cfg.tracks_max, (long long)t->frame);
    if (t->free_head >= 0) {
        i = t->free_head;
        t->free_head = t->tr[i].next;
    } else {
        if (t->ntr == t->cap) {
            size_t cap = t->cap ? t->cap * 2 : 64;
            if (cap > t->cfg.tracks_max)
                cap = t->cfg.tracks_max;
            track *n = realloc(t->tr, cap * sizeof *n);
            if (!n)
                return sl_error_set(err, SL_ENOMEM, "out of memory tracking tools");
            t->tr = n;
            t->cap = cap;
        }
        i = (int32_t)t->ntr++;
    }
    track *r = &t->tr[i];
    memset(r, 0, sizeof *r);
    r->state = T_CAND;
    r->sku = sku;
    memcpy(r->box, box, sizeof r->box);
    r->seen_tick = r->first_tick = r->last_tick = t->tick;
    r->off_tick = -1;
    r->seen = 1;
    r->first_frame = r->last_frame = t->frame;
    r->opened_frame = r->left_frame = r->returned_frame = r->decided_frame = -1;
    r->absent_start = r->off_first = r->end_tick = r->off_first_dec = r->depart_last_dec =
        r->steady_start = -1;
    r->prev = -1;
    r->next = t->head[sku];
    if (r->next >= 0)
        t->tr[r->next].prev = i;
    t->head[sku] = i;
    if (++t->live > t->peak)
        t->peak = t->live;
    *out = i;
    return SL_OK;
}

/* Whether an occluder of this frame covers cfg.occlusion of box. */
static bool occluded(const engine__usage_tracker *t, const int32_t box[4])
{
    int64_t area = (int64_t)box[2] * box[3];
    for (size_t k = 0; k < t->nocc; k++) {
        const int32_t *o = t->occ[k];
        int64_t x0 = box[0] > o[0] ? box[0] : o[0], y0 = box[1] > o[1] ? box[1] : o[1];
        int64_t x1 = (int64_t)box[0] + box[2] < (int64_t)o[0] + o[2] ? (int64_t)box[0] + box[2]
                                                                     : (int64_t)o[0] + o[2];
        int64_t y1 = (int64_t)box[1] + box[3] < (int64_t)o[1] + o[3] ? (int64_t)box[1] + box[3]
                                                                     : (int64_t)o[1] + o[3];
        if (area == 0) { /* a degenerate box: covered when its point is */
            if (x1 >= x0 && y1 >= y0)
                return true;
            continue;
        }
        if (x1 > x0 && y1 > y0 && (x1 - x0) * (y1 - y0) * 1000000 >= t->cfg.occlusion * area)
            return true;
    }
    return false;
}

/* The first departure of r decided: it left (used). */
static void depart(engine__usage_tracker *t, track *r, int why)
{
    r->state = T_LEFT;
    if (r->used)
        return; /* a later departure: the first one is what is reported */
    r->used = 1;
    r->why = (uint8_t)why;
    if (r->steady_start >= 0) {
        r->left_frame = r->steady_start;
        r->left_tick = r->steady_start_tick;
    } else if (r->absent_start >= 0) {
        r->left_frame = r->absent_start;
        r->left_tick = r->absent_start_tick;
    } else {
        r->left_frame = r->depart_last_frame + 1;
        r->left_tick = r->last_tick + 1;
    }
    r->decided_frame = t->frame;
    r->off_peak = r->off_seen;
    r->off_first_dec = r->off_first;
    r->depart_last_dec = r->depart_last_frame;
}

/* Candidate c is instance r, found again: moved, or returned. */
static void relocate(engine__usage_tracker *t, int32_t ri, int32_t ci)
{
    track *r = &t->tr[ri], *c = &t->tr[ci];
    if (r->state == T_MISSING) {
        int64_t gap = c->first_tick - r->last_tick - 1; /* ticks off its slot */
        if (gap >= t->cfg.move_frames) {                /* it was away: a departure and a return */
            if (!r->used) {
                depart(t, r, WHY_RELOCATED);
                r->reloc_gap = gap;
            }
        } /* else a move: it never left the table, and its absence was none */
    }
    if (r->used && r->returned_frame < 0) {
        r->returned_frame = c->first_frame;
        r->end_tick = c->first_tick;
        /* Seen back before its slot's absence was dated (the slot was
         * covered): it left after its last sighting there, no later. */
        if (r->left_frame >= r->returned_frame)
            r->left_frame = r->depart_last_dec + 1;
    }
    r->state = T_PRESENT;
    memcpy(r->box, c->box, sizeof r->box);
    r->seen_tick = r->last_tick = t->tick;
    r->last_frame = t->frame;
    free_track(t, ci);
}

/* Candidate ci, seen in this frame: a relocation, an opening, or nothing yet.
 * While an instance of its SKU is missing from the table since before the
 * candidate appeared, the candidate may be that instance: it waits
 * return_ms, then the nearest such instance is taken to be it (moved, or
 * put back).  Only with none is it a new instance, after open_ms.  So
 * which of the two windows is shorter changes nothing. */
static void promote(engine__usage_tracker *t, int32_t ci)
{
    track *c = &t->tr[ci];
    int64_t span = c->last_tick - c->first_tick + 1;
    if (c->seen * 1000000 < t->cfg.min_fill * span)
        return; /* not sustained */
    int32_t best = -1;
    int64_t best_d = INT64_MAX;
    for (int32_t k = t->head[c->sku]; k >= 0; k = t->tr[k].next) {
        const track *r = &t->tr[k];
        if ((r->state != T_MISSING && r->state != T_LEFT) || r->last_tick >= c->first_tick)
            continue;
        int64_t dx = (2 * (int64_t)r->box[0] + r->box[2]) - (2 * (int64_t)c->box[0] + c->box[2]);
        int64_t dy = (2 * (int64_t)r->box[1] + r->box[3]) - (2 * (int64_t)c->box[1] + c->box[3]);
        int64_t d = dx * dx + dy * dy;
        if (d < best_d) {
            best_d = d;
            best = k;
        }
    }
    if (best >= 0) {
        if (span >= t->cfg.return_frames)
            relocate(t, best, ci);
        return;
    }
    if (span >= t->cfg.open_frames) {
        c->state = T_PRESENT;
        c->opened_frame = t->frame;
        memcpy(c->open_box, c->box, sizeof c->open_box);
    }
}

/* One track, after this frame's matching. */
static void update(engine__usage_tracker *t, int32_t i)
{
    track *r = &t->tr[i];
    bool seen = r->seen_tick == t->tick;
    switch (r->state) {
    case T_CAND:
        if (!seen && t->tick - r->last_tick > t->cfg.open_frames)
            free_track(t, i); /* faded: a false positive, or a tool set down and taken again */
        return;
    case T_PRESENT:
        if (seen)
            return;
        r->state = T_MISSING;
        r->absent = 0;
        r->absent_start = -1;
        r->off_seen = 0;
        r->off_first = -1;
        r->run = 0;
        r->steady_start = -1;
        r->depart_last_frame = r->last_frame;
        /* this frame is the first of its absence */
        __attribute__((fallthrough));
    case T_MISSING:
        if (seen) {
            if (r->absent > r->longest)
                r->longest = r->absent;
            r->state = T_PRESENT;
            return;
        }
        bool off = r->off_tick == t->tick;
        if (off) {
            r->off_seen++;
            if (r->off_first < 0)
                r->off_first = t->frame;
        }
        /* Seen off the table, its slot's occlusion explains nothing. */
        if (off || !occluded(t, r->box)) {
            r->absent++;
            if (r->absent_start < 0) {
                r->absent_start = t->frame;
                r->absent_start_tick = t->tick;
            }
            if (r->run++ == 0) {
                r->run_start = t->frame;
                r->run_start_tick = t->tick;
            }
            if (r->run == STEADY && r->steady_start < 0) {
                r->steady_start = r->run_start;
                r->steady_start_tick = r->run_start_tick;
            }
        } else {
            r->run = 0;
        }
        if (r->absent >= t->cfg.leave_frames)
            depart(t, r, WHY_ABSENT);
        else if (r->off_seen >= t->cfg.off_frames)
            depart(t, r, WHY_OFF);
        return;
    default: /* left: nothing to do until a candidate is taken for it */
        return;
    }
}

/* ---------------------------------------------------------------------------
 * Life.
 * ------------------------------------------------------------------------- */
sl_status engine__usage_tracker_new(const engine__usage_cfg *cfg, engine__usage_tracker **out,
                                    sl_error *err)
{
    sl_status rc = SL_OK;
    engine__usage_tracker *t = NULL;
    const char *bad = NULL;
    if (cfg->nskus > ENGINE__USAGE_SKUS_MAX)
        bad = "nskus";
    else if (cfg->open_frames < 1 || cfg->leave_frames < 1 || cfg->return_frames < 1 ||
             cfg->off_frames < 1 || cfg->move_frames < 0)
        bad = "windows";
    else if (cfg->iou_min < 1 || cfg->iou_min > 1000000 || cfg->centroid_max < 0 ||
             cfg->centroid_max > 1000000 || cfg->min_confidence < 0 ||
             cfg->min_confidence > 1000000 || cfg->min_fill < 1 || cfg->min_fill > 1000000 ||
             cfg->occlusion < 1 || cfg->occlusion > 1000000)
        bad = "thresholds";
    else if (cfg->tracks_max < 1 || cfg->tracks_max > INT32_MAX / 2)
        bad = "tracks_max";
    else if (cfg->npoints < SCHEMA_TABLE_POINTS_MIN || cfg->npoints > SCHEMA_TABLE_POINTS_MAX ||
             !cfg->px || !cfg->py)
        bad = "table";
    for (size_t i = 0; !bad && i < cfg->npoints; i++)
        if (cfg->px[i] < 0 || cfg->px[i] > 1000000 || cfg->py[i] < 0 || cfg->py[i] > 1000000)
            bad = "table";
    if (bad) {
        rc = sl_error_set_at(err, SL_EINVAL, bad, -1, "usage tracker: %s out of bounds", bad);
        goto out;
    }
    if (!(t = calloc(1, sizeof *t)))
        goto nomem;
    t->cfg = *cfg;
    t->free_head = -1;
    size_t k = cfg->nskus ? cfg->nskus : 1;
    t->head = malloc(k * sizeof *t->head);
    t->stamp = calloc(k, sizeof *t->stamp);
    t->n_on = calloc(k, sizeof *t->n_on);
    t->n_off = calloc(k, sizeof *t->n_off);
    t->cursor = calloc(k, sizeof *t->cursor);
    if (!t->head || !t->stamp || !t->n_on || !t->n_off || !t->cursor)
        goto nomem;
    for (size_t i = 0; i < k; i++)
        t->head[i] = -1;
    if ((rc = table_build(t, err)) != SL_OK || (rc = grid_build(t, err)) != SL_OK ||
        (rc = engine__usage_assign_new(&t->assign, err)))
        goto out;
    *out = t;
    t = NULL;
    goto out;
nomem:
    rc = sl_error_set(err, SL_ENOMEM, "out of memory making a usage tracker");
out:
    engine__usage_tracker_free(&t);
    return rc;
}

void engine__usage_tracker_free(engine__usage_tracker **tp)
{
    if (!tp || !*tp)
        return;
    engine__usage_tracker *t = *tp;
    free(t->px);
    free(t->py);
    free(t->band_edges);
    free(t->grid);
    free(t->tr);
    free(t->head);
    free(t->stamp);
    free(t->n_on);
    free(t->n_off);
    free(t->cursor);
    free(t->touched);
    free(t->cands);
    free(t->bucket);
    free(t->on);
    free(t->occ);
    free(t->boxes);
    free(t->slots);
    free(t->slot_track);
    free(t->det_of_slot);
    free(t->det_taken);
    engine__usage_assign_free(&t->assign);
    free(t->out);
    free(t);
    *tp = NULL;
}

/* Per-frame scratch for n detections (and n touched SKUs). */
static bool grow_dets(engine__usage_tracker *t, size_t n)
{
    if (n <= t->dcap)
        return true;
    size_t c = t->dcap ? t->dcap : 256;
    while (c < n)
        c *= 2;
    uint32_t *touched = realloc(t->touched, c * sizeof *touched);
    if (touched)
        t->touched = touched;
    int32_t *cands = realloc(t->cands, c * sizeof *cands);
    if (cands)
        t->cands = cands;
    uint32_t *bucket = realloc(t->bucket, c * sizeof *bucket);
    if (bucket)
        t->bucket = bucket;
    uint8_t *on = realloc(t->on, c);
    if (on)
        t->on = on;
    int32_t(*occ)[4] = realloc(t->occ, c * sizeof *occ);
    if (occ)
        t->occ = occ;
    int32_t(*boxes)[4] = realloc(t->boxes, c * sizeof *boxes);
    if (boxes)
        t->boxes = boxes;
    uint8_t *taken = realloc(t->det_taken, c);
    if (taken)
        t->det_taken = taken;
    if (!touched || !cands || !bucket || !on || !occ || !boxes || !taken)
        return false;
    t->dcap = c;
    return true;
}

/* Per-SKU scratch for n slots. */
static bool grow_slots(engine__usage_tracker *t, size_t n)
{
    if (n <= t->scap)
        return true;
    size_t c = t->scap ? t->scap : 64;
    while (c < n)
        c *= 2;
    engine__usage_slot *slots = realloc(t->slots, c * sizeof *slots);
    if (slots)
        t->slots = slots;
    int32_t *st = realloc(t->slot_track, c * sizeof *st);
    if (st)
        t->slot_track = st;
    int32_t *ds = realloc(t->det_of_slot, c * sizeof *ds);
    if (ds)
        t->det_of_slot = ds;
    if (!slots || !st || !ds)
        return false;
    t->scap = c;
    return true;
}

/* The on-table detections of sku (bucket[from..from+nd)) against its tracks;
 * the unmatched ones become candidates. */
static sl_status associate(engine__usage_tracker *t, const engine__usage_det *dets, uint32_t sku,
                           size_t from, size_t nd, sl_error *err)
{
    sl_status rc = SL_OK;
    size_t ns = 0;
    for (int32_t k = t->head[sku]; k >= 0; k = t->tr[k].next) {
        const track *r = &t->tr[k];
        if (r->state == T_LEFT)
            continue;
        if (!grow_slots(t, ns + 1)) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory tracking tools");
            goto out;
        }
        memcpy(t->slots[ns].box, r->box, sizeof r->box);
        t->slots[ns].candidate = r->state == T_CAND;
        t->slot_track[ns++] = k;
    }
    for (size_t j = 0; j < nd; j++) {
        const engine__usage_det *d = &dets[t->bucket[from + j]];
        t->boxes[j][0] = d->x;
        t->boxes[j][1] = d->y;
        t->boxes[j][2] = d->w;
        t->boxes[j][3] = d->h;
        t->det_taken[j] = 0;
    }
    if ((rc = engine__usage_assign_run(t->assign, t->slots, ns, (const int32_t(*)[4])t->boxes, nd,
                                       t->cfg.iou_min, t->cfg.centroid_max, t->det_of_slot, err)) !=
        SL_OK)
        goto out;
    for (size_t i = 0; i < ns; i++) {
        int32_t j = t->det_of_slot[i];
        if (j < 0)
            continue;
        track *r = &t->tr[t->slot_track[i]];
        memcpy(r->box, t->boxes[j], sizeof r->box);
        r->seen_tick = r->last_tick = t->tick;
        r->last_frame = t->frame;
        if (r->state == T_CAND) {
            r->seen++;
            t->cands[t->ncands++] = t->slot_track[i];
        }
        t->det_taken[j] = 1;
    }
    for (size_t j = 0; j < nd && rc == SL_OK; j++) {
        int32_t ci = -1;
        if (!t->det_taken[j] && (rc = new_candidate(t, sku, t->boxes[j], &ci, err)) == SL_OK)
            t->cands[t->ncands++] = ci;
    }
out:
    return rc;
}

/* Seen off the table: when its SKU has no more instances off the table (or
 * missing from it) than detections off it this frame, each instance missing
 * from its slot gets the sighting (DESIGN.md: "or is seen off the table");
 * with more, which one it is cannot be told and none gets it. */
static void attribute_off(engine__usage_tracker *t, uint32_t sku)
{
    uint32_t away = 0, missing = 0;
    for (int32_t k = t->head[sku]; k >= 0; k = t->tr[k].next) {
        const track *r = &t->tr[k];
        bool gone = r->state == T_LEFT ||
                    ((r->state == T_PRESENT || r->state == T_MISSING) && r->seen_tick != t->tick);
        away += gone;
        missing += gone && r->state != T_LEFT;
    }
    if (!missing || away > t->n_off[sku])
        return;
    for (int32_t k = t->head[sku]; k >= 0; k = t->tr[k].next) {
        track *r = &t->tr[k];
        if ((r->state == T_PRESENT || r->state == T_MISSING) && r->seen_tick != t->tick)
            r->off_tick = t->tick;
    }
}

sl_status engine__usage_feed(engine__usage_tracker *t, int64_t frame, const engine__usage_det *dets,
                             size_t n, sl_error *err)
{
    sl_status rc = SL_OK;
    if (t->failed || t->finished || frame < 0 || (t->started && frame <= t->frame)) {
        rc = sl_error_set_at(err, SL_EINVAL, "frame", -1,
                             t->failed     ? "usage tracker: fed after an error"
                             : t->finished ? "usage tracker: fed after the end"
                                           : "usage tracker: frame %lld is not after frame %lld",
                             (long long)frame, (long long)t->frame);
        goto out;
    }
    if (!grow_dets(t, n)) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory tracking tools");
        goto fail;
    }
    t->started = true;
    t->frame = frame;
    t->tick++;
    /* Sort the detections out: occluders, and each SKU's on and off the table. */
    size_t ntouched = 0;
    t->nocc = 0;
    t->ncands = 0;
    for (size_t i = 0; i < n; i++) {
        const engine__usage_det *d = &dets[i];
        if (d->confidence < 0 || d->confidence > 1000000 || d->x < 0 || d->x > 1000000 ||
            d->y < 0 || d->y > 1000000 || d->w < 0 || d->w > 1000000 || d->h < 0 ||
            d->h > 1000000 ||
            (d->cls >= t->cfg.nskus && d->cls != ENGINE__USAGE_OCCLUDER &&
             d->cls != ENGINE__USAGE_IGNORE)) {
            rc = sl_error_set_at(err, SL_EINVAL, "detection", -1,
                                 "usage tracker: detection %zu of frame %lld is out of range", i,
                                 (long long)frame);
            goto fail;
        }
        t->on[i] = 0;
        if (d->confidence < t->cfg.min_confidence || d->cls == ENGINE__USAGE_IGNORE)
            continue;
        int32_t box[4] = {d->x, d->y, d->w, d->h};
        if (d->cls == ENGINE__USAGE_OCCLUDER) {
            memcpy(t->occ[t->nocc++], box, sizeof box);
            continue;
        }
        if (t->stamp[d->cls] != t->tick) {
            t->stamp[d->cls] = t->tick;
            t->n_on[d->cls] = t->n_off[d->cls] = 0;
            t->touched[ntouched++] = d->cls;
        }
        if (on_table(t, box)) {
            t->on[i] = 1;
            t->n_on[d->cls]++;
        } else {
            t->n_off[d->cls]++;
        }
    }
    /* Each SKU's on-table detections together, in input order. */
    uint32_t pos = 0;
    for (size_t k = 0; k < ntouched; k++) {
        uint32_t s = t->touched[k];
        t->cursor[s] = pos;
        pos += t->n_on[s];
    }
    for (size_t i = 0; i < n; i++)
        if (t->on[i])
            t->bucket[t->cursor[dets[i].cls]++] = (uint32_t)i;
    for (size_t k = 0; k < ntouched; k++) {
        uint32_t s = t->touched[k];
        if (t->n_on[s] &&
            (rc = associate(t, dets, s, t->cursor[s] - t->n_on[s], t->n_on[s], err)) != SL_OK)
            goto fail;
    }
    for (size_t k = 0; k < ntouched; k++)
        if (t->n_off[t->touched[k]])
            attribute_off(t, t->touched[k]);
    for (size_t i = 0; i < t->ntr; i++)
        if (t->tr[i].state != T_FREE)
            update(t, (int32_t)i);
    /* Candidates seen in this frame may now be held long enough (each is
     * listed once: a detection matches one slot, and a new one is new). */
    for (size_t k = 0; k < t->ncands; k++)
        if (t->tr[t->cands[k]].state == T_CAND)
            promote(t, t->cands[k]);
    goto out;
fail:
    t->failed = true;
out:
    return rc;
}

/* ---------------------------------------------------------------------------
 * The end.
 * ------------------------------------------------------------------------- */
static int by_sku_first(const void *x, const void *y)
{
    const engine__usage_instance *a = x, *b = y;
    if (a->sku != b->sku)
        return a->sku < b->sku ? -1 : 1;
    if (a->first_seen_frame != b->first_seen_frame)
        return a->first_seen_frame < b->first_seen_frame ? -1 : 1;
    int64_t ax = 2 * (int64_t)a->slot[0] + a->slot[2], bx = 2 * (int64_t)b->slot[0] + b->slot[2];
    if (ax != bx)
        return ax < bx ? -1 : 1;
    int64_t ay = 2 * (int64_t)a->slot[1] + a->slot[3], by = 2 * (int64_t)b->slot[1] + b->slot[3];
    return ay < by ? -1 : ay > by;
}

/* 0.5 at the window, 1 at twice the window or more: how far past it. */
static int64_t past(int64_t got, int64_t window)
{
    if (window <= 0)
        return 1000000;
    int64_t over = got - window;
    if (over <= 0)
        return 500000;
    if (over >= window)
        return 1000000;
    return 500000 + over * 500000 / window;
}

static void add_evidence(engine__usage_instance *o, int64_t frame)
{
    if (frame < 0 || o->nevidence == SCHEMA_EVIDENCE_MAX)
        return;
    size_t i = o->nevidence;
    for (size_t k = 0; k < o->nevidence; k++)
        if (o->evidence[k] == frame)
            return;
    while (i > 0 && o->evidence[i - 1] > frame) {
        o->evidence[i] = o->evidence[i - 1];
        i--;
    }
    o->evidence[i] = frame;
    o->nevidence++;
}

static void instance_of(const engine__usage_tracker *t, const track *r, engine__usage_instance *o)
{
    memset(o, 0, sizeof *o);
    o->sku = r->sku;
    o->used = r->used;
    o->first_seen_frame = r->first_frame;
    o->first_frame = r->opened_frame;
    o->last_frame = r->last_frame;
    o->left_frame = r->used ? r->left_frame : -1;
    o->returned_frame = r->used ? r->returned_frame : -1;
    memcpy(o->slot, r->open_box, sizeof o->slot);
    if (r->used) {
        int64_t end = r->end_tick >= 0 ? r->end_tick : t->tick + 1;
        int64_t c = past(end - r->left_tick, t->cfg.leave_frames);
        if (r->why == WHY_OFF || r->off_peak > 0) {
            int64_t off = past(r->off_peak, t->cfg.off_frames);
            c = off > c ? off : c;
        }
        if (r->why == WHY_RELOCATED)
            c = past(r->reloc_gap, t->cfg.move_frames);
        o->confidence_micro = c;
    } else {
        int64_t longest = r->longest;
        if (r->state == T_MISSING && r->absent > longest)
            longest = r->absent; /* pending at the end: shorter than the window */
        o->confidence_micro = longest >= t->cfg.leave_frames
                                  ? 500000
                                  : 1000000 - longest * 500000 / t->cfg.leave_frames;
    }
    add_evidence(o, o->first_seen_frame);
    add_evidence(o, o->first_frame);
    if (r->used) {
        add_evidence(o, r->depart_last_dec);
        add_evidence(o, o->left_frame);
        add_evidence(o, r->decided_frame);
        add_evidence(o, r->off_first_dec);
        add_evidence(o, o->returned_frame);
    }
    add_evidence(o, o->last_frame);
}

sl_status engine__usage_finish(engine__usage_tracker *t, sl_error *err)
{
    sl_status rc = SL_OK;
    size_t n = 0;
    if (t->failed || t->finished) {
        rc = sl_error_set(err, SL_EINVAL, "usage tracker: finished twice, or after an error");
        goto out;
    }
    for (size_t i = 0; i < t->ntr; i++)
        n += t->tr[i].state >= T_PRESENT;
    if (n && !(t->out = malloc(n * sizeof *t->out))) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory listing tool instances");
        goto fail;
    }
    for (size_t i = 0; i < t->ntr; i++)
        if (t->tr[i].state >= T_PRESENT)
            instance_of(t, &t->tr[i], &t->out[t->nout++]);
    if (t->nout)
        qsort(t->out, t->nout, sizeof *t->out, by_sku_first);
    uint32_t number = 0;
    for (size_t i = 0; i < t->nout; i++) {
        number = i && t->out[i - 1].sku == t->out[i].sku ? number + 1 : 1;
        if (number > SCHEMA_INSTANCE_MAX) {
            rc = sl_error_set_at(err, SL_ETOOLARGE, "instance", -1,
                                 "more than %u instances of one SKU", SCHEMA_INSTANCE_MAX);
            goto fail;
        }
        t->out[i].number = number;
    }
    t->finished = true;
    goto out;
fail:
    t->failed = true;
out:
    return rc;
}

size_t engine__usage_count(const engine__usage_tracker *t)
{
    return t->finished ? t->nout : 0;
}

const engine__usage_instance *engine__usage_at(const engine__usage_tracker *t, size_t i)
{
    return t->finished && i < t->nout ? &t->out[i] : NULL;
}

size_t engine__usage_tracks_peak(const engine__usage_tracker *t)
{
    return t->peak;
}

bool engine__usage_on_table(const engine__usage_tracker *t, const int32_t box[4])
{
    return on_table(t, box);
}
