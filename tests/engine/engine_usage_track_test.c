/* engine_usage_track_test.c -- the tool-usage tracker (engine/usage_track.c,
 * usage_assign.c) on synthetic frame sequences, no store: one test per rule
 * of docs/usage.md ("Algorithm"), each with the frames it decides on and the
 * exact decision, dates and counts it must give.  30 frames/s and the
 * default parameters: open 60 frames, leave 120, return 30, move 90, off 60. */
#include "engine/usage_int.h"
#include "tests/check.h"

#include <math.h>

#define FPS     30
#define MAXDETS 64

/* The table: the lower half of the picture, as the scenarios have it. */
static const int32_t TX[4] = {50000, 950000, 950000, 50000};
static const int32_t TY[4] = {500000, 500000, 980000, 980000};

static engine__usage_cfg config(uint32_t nskus)
{
    engine_usage_params p;
    engine_usage_params_default(&p);
    engine__usage_cfg c;
    memset(&c, 0, sizeof c);
    engine__usage_cfg_from_params(&p, FPS, &c);
    c.nskus = nskus;
    c.npoints = 4;
    c.px = TX;
    c.py = TY;
    return c;
}

typedef struct box {
    double x, y, w, h;
} box;

static engine__usage_det det(uint32_t cls, box b)
{
    return (engine__usage_det){cls,
                               900000,
                               (int32_t)lround(b.x * 1e6),
                               (int32_t)lround(b.y * 1e6),
                               (int32_t)lround(b.w * 1e6),
                               (int32_t)lround(b.h * 1e6)};
}

#define HAND ENGINE__USAGE_OCCLUDER

/* A scene: what each frame holds, from a callback. */
typedef void (*scene_fn)(void *ctx, int64_t frame, engine__usage_det *d, size_t *n);

static engine__usage_tracker *run_frames(const engine__usage_cfg *c, const int64_t *frames,
                                         size_t nframes, scene_fn fn, void *ctx)
{
    engine__usage_tracker *t = NULL;
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(engine__usage_tracker_new(c, &t, &e) == SL_OK);
    for (size_t i = 0; i < nframes; i++) {
        engine__usage_det d[MAXDETS];
        size_t n = 0;
        fn(ctx, frames[i], d, &n);
        REQUIRE(n <= MAXDETS);
        if (engine__usage_feed(t, frames[i], d, n, &e) != SL_OK) {
            fprintf(stderr, "feed %lld: %s\n", (long long)frames[i], e.message);
            REQUIRE(0);
        }
    }
    REQUIRE(engine__usage_finish(t, &e) == SL_OK);
    return t;
}

/* Frames 0..n-1. */
static engine__usage_tracker *run(const engine__usage_cfg *c, int64_t n, scene_fn fn, void *ctx)
{
    int64_t *f = malloc((size_t)n * sizeof *f);
    REQUIRE(f);
    for (int64_t i = 0; i < n; i++)
        f[i] = i;
    engine__usage_tracker *t = run_frames(c, f, (size_t)n, fn, ctx);
    free(f);
    return t;
}

static const engine__usage_instance *inst(const engine__usage_tracker *t, uint32_t sku,
                                          uint32_t number)
{
    for (size_t i = 0; i < engine__usage_count(t); i++) {
        const engine__usage_instance *in = engine__usage_at(t, i);
        if (in->sku == sku && in->number == number)
            return in;
    }
    return NULL;
}

/* A deterministic coin: true with probability pct/100 for (frame, salt). */
static bool coin(int64_t frame, uint64_t salt, int pct)
{
    uint64_t x = (uint64_t)frame * 0x9E3779B97F4A7C15ULL ^ (salt + 1) * 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 31;
    x *= 0x94D049BB133111EBULL;
    x ^= x >> 29;
    return (int)(x % 100) < pct;
}

static const box A = {0.10, 0.55, 0.05, 0.075}, B = {0.30, 0.68, 0.05, 0.075},
                 C = {0.60, 0.81, 0.05, 0.075};

/* ---------------------------------------------------------------------------
 * Still, opened, opened late, set down too briefly.
 * ------------------------------------------------------------------------- */
typedef struct window {
    int64_t from, to; /* present on [from, to) */
    box at;
} window;

static void present(void *ctx, int64_t f, engine__usage_det *d, size_t *n)
{
    const window *w = ctx;
    for (; w->to > w->from; w++)
        if (f >= w->from && f < w->to)
            d[(*n)++] = det(0, w->at);
}

static void test_still_and_late(void)
{
    engine__usage_cfg c = config(1);
    window w[] = {{0, 1800, A}, {0, 0, A}};
    engine__usage_tracker *t = run(&c, 1800, present, w);
    CHECK_INT(engine__usage_count(t), 1);
    const engine__usage_instance *in = inst(t, 0, 1);
    REQUIRE(in);
    CHECK(!in->used);
    CHECK_INT(in->first_seen_frame, 0);
    CHECK_INT(in->first_frame, 59); /* seen 60 frames: opened */
    CHECK_INT(in->last_frame, 1799);
    CHECK_INT(in->left_frame, -1);
    CHECK_INT(in->returned_frame, -1);
    CHECK_INT(in->confidence_micro, 1000000); /* never absent */
    CHECK_INT(in->slot[0], 100000);
    CHECK_INT(in->nevidence, 3);
    CHECK_INT(in->evidence[0], 0);
    CHECK_INT(in->evidence[1], 59);
    CHECK_INT(in->evidence[2], 1799);
    engine__usage_tracker_free(&t);

    /* Opened late (at 3000); and a tool set down for 59 frames (just short of
     * the window) and taken away again is never opened, so not counted. */
    window late[] = {{3000, 3600, A}, {100, 159, B}, {0, 0, A}};
    t = run(&c, 3600, present, late);
    CHECK_INT(engine__usage_count(t), 1);
    in = inst(t, 0, 1);
    REQUIRE(in);
    CHECK_INT(in->first_seen_frame, 3000);
    CHECK_INT(in->first_frame, 3059);
    CHECK_INT(in->slot[1], 550000); /* A's: the tool at B was never opened */
    engine__usage_tracker_free(&t);

    /* 60 frames: exactly the window, opened. */
    window just[] = {{100, 160, B}, {0, 0, A}};
    t = run(&c, 600, present, just);
    CHECK_INT(engine__usage_count(t), 1);
    CHECK(engine__usage_count(t) == 1 && engine__usage_at(t, 0)->used); /* then gone 440 frames */
    engine__usage_tracker_free(&t);
}

/* ---------------------------------------------------------------------------
 * Flicker: misses and bursts shorter than the window change nothing; a gap
 * of the window's length is a departure.
 * ------------------------------------------------------------------------- */
typedef struct flicker {
    int pct;               /* single-frame misses */
    int64_t burst[4][2];   /* [from, to) missed */
    int64_t away_from, to; /* really off the table */
} flicker;

static void flickering(void *ctx, int64_t f, engine__usage_det *d, size_t *n)
{
    const flicker *k = ctx;
    if (f >= k->away_from && f < k->to)
        return;
    for (int i = 0; i < 4; i++)
        if (f >= k->burst[i][0] && f < k->burst[i][1])
            return;
    if (f > 100 && coin(f, 7, k->pct))
        return;
    d[(*n)++] = det(0, A);
}

static void test_flicker(void)
{
    engine__usage_cfg c = config(1);
    /* 30 % of frames missed, bursts of 110 and 90 frames: not used */
    flicker k = {30, {{300, 410}, {900, 990}}, -1, -1};
    engine__usage_tracker *t = run(&c, 3000, flickering, &k);
    CHECK_INT(engine__usage_count(t), 1);
    const engine__usage_instance *in = inst(t, 0, 1);
    REQUIRE(in);
    CHECK(!in->used);
    /* its longest absence (the 110-frame burst, perhaps a few misses more)
     * came close to the window: the confidence says so */
    CHECK(in->confidence_micro >= 500000 && in->confidence_micro <= 1000000 - 110 * 500000 / 120);
    engine__usage_tracker_free(&t);

    /* A gap of 121 frames: gone longer than the window (120), used, dated
     * at the gap's first frame; back in its slot: returned. */
    flicker g = {0, {{600, 721}}, -1, -1};
    t = run(&c, 1800, flickering, &g);
    CHECK_INT(engine__usage_count(t), 1);
    in = inst(t, 0, 1);
    REQUIRE(in);
    CHECK(in->used);
    CHECK_INT(in->left_frame, 600);
    CHECK_INT(in->returned_frame, 721);
    engine__usage_tracker_free(&t);

    /* 119 frames: not. */
    flicker s = {0, {{600, 719}}, -1, -1};
    t = run(&c, 1800, flickering, &s);
    CHECK(engine__usage_count(t) == 1 && !engine__usage_at(t, 0)->used);
    engine__usage_tracker_free(&t);
}

/* ---------------------------------------------------------------------------
 * Occlusion: a hand over the slot stops the absence clock; the departure is
 * dated after the reach even when the hand's detections flicker.
 * ------------------------------------------------------------------------- */
typedef struct occl {
    int64_t hidden_from, hidden_to; /* the tool is not detected */
    int64_t hand_from, hand_to;     /* a hand covers it (detected but for hand_pct misses) */
    int hand_pct;
    int64_t gone_from;        /* the tool left the table (-1: never) */
    int64_t off_from, off_to; /* seen off the table */
    box hand;
} occl;

static void occluded_scene(void *ctx, int64_t f, engine__usage_det *d, size_t *n)
{
    const occl *o = ctx;
    bool gone = o->gone_from >= 0 && f >= o->gone_from;
    bool hidden = f >= o->hidden_from && f < o->hidden_to;
    if (!gone && !hidden)
        d[(*n)++] = det(0, A);
    if (f >= o->hand_from && f < o->hand_to && !coin(f, 5, o->hand_pct))
        d[(*n)++] = det(HAND, o->hand);
    if (f >= o->off_from && f < o->off_to)
        d[(*n)++] = det(0, (box){0.4, 0.2, 0.05, 0.075});
}

static void test_occlusion(void)
{
    engine__usage_cfg c = config(1);
    box hand = {0.08, 0.53, 0.09, 0.12};
    /* hidden 10 s under a resting arm, detected but for 5 % of frames */
    occl o = {600, 900, 600, 900, 5, -1, -1, -1, hand};
    engine__usage_tracker *t = run(&c, 1800, occluded_scene, &o);
    CHECK(engine__usage_count(t) == 1 && !engine__usage_at(t, 0)->used);
    engine__usage_tracker_free(&t);
    /* the same 10 s with no hand: it left */
    occl bare = {600, 900, 0, 0, 0, -1, -1, -1, hand};
    t = run(&c, 1800, occluded_scene, &bare);
    CHECK(engine__usage_count(t) == 1 && engine__usage_at(t, 0)->used);
    CHECK_INT(engine__usage_at(t, 0)->left_frame, 600);
    engine__usage_tracker_free(&t);
    /* a hand that only touches a corner (under occlusion_micro) hides
     * nothing: the absence counts */
    occl corner = {600, 900, 600, 900, 0, -1, -1, -1, {0.14, 0.615, 0.05, 0.05}};
    t = run(&c, 1800, occluded_scene, &corner);
    CHECK(engine__usage_count(t) == 1 && engine__usage_at(t, 0)->used);
    engine__usage_tracker_free(&t);

    /* The reach: a hand covers the slot 24 frames before the pick-up at 600
     * (its detector misses some of them), then tool and hand are gone: the
     * departure is dated 600, not at the first frame the hand was missed. */
    occl reach = {576, 600, 576, 600, 10, 600, -1, -1, hand}; /* missed: 581 583 587 592 */
    t = run(&c, 1800, occluded_scene, &reach);
    REQUIRE(engine__usage_count(t) == 1);
    CHECK(engine__usage_at(t, 0)->used);
    CHECK_INT(engine__usage_at(t, 0)->left_frame, 600);
    engine__usage_tracker_free(&t);
}

/* ---------------------------------------------------------------------------
 * Seen off the table: it left even though its slot is covered.
 * ------------------------------------------------------------------------- */
static void test_seen_off_table(void)
{
    engine__usage_cfg c = config(1);
    box arm = {0.05, 0.52, 0.2, 0.15};
    /* an arm rests over the slot from 500 to the end; the tool leaves at 600
     * and is seen in a hand off the table for 90 frames */
    occl o = {500, 1800, 500, 1800, 0, 600, 600, 690, arm};
    engine__usage_tracker *t = run(&c, 1800, occluded_scene, &o);
    REQUIRE(engine__usage_count(t) == 1);
    const engine__usage_instance *in = engine__usage_at(t, 0);
    CHECK(in->used);
    /* off the table from 600; its slot's absence is counted from then */
    CHECK_INT(in->left_frame, 600);
    int found = 0;
    for (uint32_t i = 0; i < in->nevidence; i++)
        found += in->evidence[i] == 600 || in->evidence[i] == 659; /* left; decided */
    CHECK_INT(found, 2);
    engine__usage_tracker_free(&t);
    /* without the sighting the covered slot proves nothing: not used */
    occl hid = {500, 1800, 500, 1800, 0, 600, -1, -1, arm};
    t = run(&c, 1800, occluded_scene, &hid);
    CHECK(engine__usage_count(t) == 1 && !engine__usage_at(t, 0)->used);
    engine__usage_tracker_free(&t);
    /* seen off the table only 50 frames (off_ms: 60): not used */
    occl brief = {500, 1800, 500, 1800, 0, 600, 600, 650, arm};
    t = run(&c, 1800, occluded_scene, &brief);
    CHECK(engine__usage_count(t) == 1 && !engine__usage_at(t, 0)->used);
    engine__usage_tracker_free(&t);
}

/* Two of one SKU under the arm, one seen off the table: which one cannot be
 * told, so neither is taken for used. */
static void two_under_arm(void *ctx, int64_t f, engine__usage_det *d, size_t *n)
{
    (void)ctx;
    box l = {0.10, 0.55, 0.05, 0.075}, r = {0.16, 0.55, 0.05, 0.075};
    if (f < 500) {
        d[(*n)++] = det(0, l);
        d[(*n)++] = det(0, r);
    } else {
        d[(*n)++] = det(HAND, (box){0.05, 0.52, 0.25, 0.15});
    }
    if (f >= 600 && f < 800)
        d[(*n)++] = det(0, (box){0.4, 0.2, 0.05, 0.075});
}

static void test_seen_off_ambiguous(void)
{
    engine__usage_cfg c = config(1);
    engine__usage_tracker *t = run(&c, 1800, two_under_arm, NULL);
    CHECK_INT(engine__usage_count(t), 2);
    for (size_t i = 0; i < engine__usage_count(t); i++)
        CHECK(!engine__usage_at(t, i)->used);
    engine__usage_tracker_free(&t);
}

/* ---------------------------------------------------------------------------
 * On-table moves: a slide is followed; a jump is a relocation within
 * move_ms; neither is a departure.  Put back elsewhere after long: a return.
 * ------------------------------------------------------------------------- */
typedef struct slide {
    int64_t at, over; /* starts moving at, for over frames (0: jumps) */
    int64_t away;     /* frames off the table before it reappears at `to` (0: none) */
    box from, to;
} slide;

static void sliding(void *ctx, int64_t f, engine__usage_det *d, size_t *n)
{
    const slide *s = ctx;
    box b = s->from;
    if (f >= s->at) {
        if (s->away) {
            if (f < s->at + s->away)
                return;
            b = s->to;
        } else if (s->over == 0 || f >= s->at + s->over) {
            b = s->to;
        } else {
            double k = (double)(f - s->at) / (double)s->over;
            b.x = s->from.x + k * (s->to.x - s->from.x);
            b.y = s->from.y + k * (s->to.y - s->from.y);
        }
    }
    d[(*n)++] = det(0, b);
}

static void test_moves(void)
{
    engine__usage_cfg c = config(1);
    box far = {0.70, 0.85, 0.05, 0.075};
    slide s = {300, 60, 0, A, far}; /* across the table in 2 s */
    engine__usage_tracker *t = run(&c, 1800, sliding, &s);
    CHECK_INT(engine__usage_count(t), 1);
    CHECK(engine__usage_count(t) == 1 && !engine__usage_at(t, 0)->used);
    CHECK_INT(engine__usage_tracks_peak(t), 1); /* followed: never a candidate */
    engine__usage_tracker_free(&t);

    slide j = {300, 0, 0, A, far}; /* a jump: lifted and set down at once */
    t = run(&c, 1800, sliding, &j);
    CHECK_INT(engine__usage_count(t), 1);
    CHECK(engine__usage_count(t) == 1 && !engine__usage_at(t, 0)->used);
    CHECK_INT(engine__usage_tracks_peak(t), 2);         /* a candidate, taken for it */
    CHECK_INT(engine__usage_at(t, 0)->slot[0], 100000); /* reported where it was opened */
    engine__usage_tracker_free(&t);

    /* set down elsewhere after 60 frames off the table (2 s, under
     * move_ms 3 s): moved, not used */
    slide lift = {300, 0, 60, A, far};
    t = run(&c, 1800, sliding, &lift);
    CHECK(engine__usage_count(t) == 1 && !engine__usage_at(t, 0)->used);
    engine__usage_tracker_free(&t);

    /* put back elsewhere after 20 s: used, returned there */
    slide back = {600, 0, 600, A, far};
    t = run(&c, 1800, sliding, &back);
    REQUIRE(engine__usage_count(t) == 1);
    const engine__usage_instance *in = engine__usage_at(t, 0);
    CHECK(in->used);
    CHECK_INT(in->left_frame, 600);
    CHECK_INT(in->returned_frame, 1200);
    CHECK(in->confidence_micro == 1000000); /* gone 600 frames, five times the window */
    engine__usage_tracker_free(&t);

    /* put back elsewhere after 100 frames: used (its slot's absence
     * reached the window while the sighting elsewhere was being held) */
    slide soon = {600, 0, 100, A, far};
    t = run(&c, 1800, sliding, &soon);
    REQUIRE(engine__usage_count(t) == 1);
    CHECK(engine__usage_at(t, 0)->used);
    CHECK_INT(engine__usage_at(t, 0)->left_frame, 600);
    CHECK_INT(engine__usage_at(t, 0)->returned_frame, 700);
    engine__usage_tracker_free(&t);

    /* With a long leave window the relocation alone decides: off the table
     * 100 frames (past move_ms, 90) is a departure, 80 is a move. */
    c.leave_frames = 1000;
    t = run(&c, 1800, sliding, &soon);
    REQUIRE(engine__usage_count(t) == 1);
    CHECK(engine__usage_at(t, 0)->used);
    CHECK_INT(engine__usage_at(t, 0)->left_frame, 600);
    CHECK_INT(engine__usage_at(t, 0)->returned_frame, 700);
    /* 100 - 90 past the window of 90: 0.5 + 0.5 * 10 / 90 */
    CHECK_INT(engine__usage_at(t, 0)->confidence_micro, 500000 + 10 * 500000 / 90);
    engine__usage_tracker_free(&t);
    slide short_lift = {600, 0, 80, A, far};
    t = run(&c, 1800, sliding, &short_lift);
    CHECK(engine__usage_count(t) == 1 && !engine__usage_at(t, 0)->used);
    engine__usage_tracker_free(&t);
}

/* ---------------------------------------------------------------------------
 * Identical tools side by side.
 * ------------------------------------------------------------------------- */
static void twins(void *ctx, int64_t f, engine__usage_det *d, size_t *n)
{
    const int64_t *right_away = ctx; /* [from, to) the right one is off the table */
    box l = {0.30, 0.55, 0.05, 0.075}, r = {0.35, 0.55, 0.05, 0.075};
    if (!coin(f, 11, 10))
        d[(*n)++] = det(0, l);
    if (!(f >= right_away[0] && f < right_away[1]) && !coin(f, 13, 10))
        d[(*n)++] = det(0, r);
}

static void test_twins(void)
{
    engine__usage_cfg c = config(1);
    int64_t never[2] = {-1, -1};
    engine__usage_tracker *t = run(&c, 3000, twins, never);
    CHECK_INT(engine__usage_count(t), 2);
    CHECK_INT(engine__usage_tracks_peak(t), 2); /* no detection ever went unmatched */
    for (size_t i = 0; i < engine__usage_count(t); i++)
        CHECK(!engine__usage_at(t, i)->used);
    engine__usage_tracker_free(&t);

    int64_t away[2] = {600, 1500}; /* the right one: picked up and put back in its slot */
    t = run(&c, 3000, twins, away);
    REQUIRE(engine__usage_count(t) == 2);
    const engine__usage_instance *l = inst(t, 0, 1), *r = inst(t, 0, 2);
    REQUIRE(l && r);
    CHECK_INT(l->slot[0], 300000); /* numbered left to right */
    CHECK_INT(r->slot[0], 350000);
    CHECK(!l->used);
    CHECK(r->used);
    CHECK(r->left_frame >= 595 && r->left_frame <= 600); /* its last sightings may be missed */
    CHECK(r->returned_frame >= 1500 && r->returned_frame <= 1503);
    engine__usage_tracker_free(&t);
}

/* Nearest-first would swap these: the detection between the two slots is
 * nearer the right slot, and the right slot's own detection is then out of
 * the left slot's gate.  The assignment gives each slot its detection. */
static void test_assignment(void)
{
    engine__usage_assign *a = NULL;
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(engine__usage_assign_new(&a, &e) == SL_OK);
    engine__usage_slot slots[2] = {{{300000, 550000, 50000, 75000}, false},
                                   {{330000, 550000, 50000, 75000}, false}};
    int32_t boxes[2][4] = {{318000, 550000, 50000, 75000}, {345000, 550000, 50000, 75000}};
    int32_t got[2];
    /* IoU gate off (1.0), centres within 0.03 */
    REQUIRE(engine__usage_assign_run(a, slots, 2, (const int32_t(*)[4])boxes, 2, 1000000, 30000,
                                     got, &e) == SL_OK);
    CHECK_INT(got[0], 0);
    CHECK_INT(got[1], 1);
    /* a candidate never wins over an instance at the same distance */
    engine__usage_slot mixed[2] = {{{300000, 550000, 50000, 75000}, true},
                                   {{300000, 550000, 50000, 75000}, false}};
    REQUIRE(engine__usage_assign_run(a, mixed, 2, (const int32_t(*)[4])boxes, 1, 1000000, 30000,
                                     got, &e) == SL_OK);
    CHECK_INT(got[0], -1);
    CHECK_INT(got[1], 0);
    /* more pairs beat shorter distances: three slots in a row, three
     * detections shifted right; each slot keeps one */
    engine__usage_slot row[3] = {{{100000, 550000, 50000, 75000}, false},
                                 {{120000, 550000, 50000, 75000}, false},
                                 {{140000, 550000, 50000, 75000}, false}};
    int32_t shifted[3][4] = {{115000, 550000, 50000, 75000},
                             {135000, 550000, 50000, 75000},
                             {155000, 550000, 50000, 75000}};
    int32_t g3[3];
    REQUIRE(engine__usage_assign_run(a, row, 3, (const int32_t(*)[4])shifted, 3, 1000000, 30000, g3,
                                     &e) == SL_OK);
    CHECK_INT(g3[0], 0);
    CHECK_INT(g3[1], 1);
    CHECK_INT(g3[2], 2);
    engine__usage_assign_free(&a);
}

/* ---------------------------------------------------------------------------
 * Carried away; false positives; a tool only ever off the table.
 * ------------------------------------------------------------------------- */
static void test_carried_away(void)
{
    engine__usage_cfg c = config(1);
    window w[] = {{0, 600, A}, {0, 0, A}};
    engine__usage_tracker *t = run(&c, 1800, present, w);
    REQUIRE(engine__usage_count(t) == 1);
    const engine__usage_instance *in = engine__usage_at(t, 0);
    CHECK(in->used);
    CHECK_INT(in->left_frame, 600);
    CHECK_INT(in->returned_frame, -1);
    CHECK_INT(in->last_frame, 599);
    CHECK_INT(in->confidence_micro, 1000000);
    /* first seen, opened, last seen, left, decided (120 absent frames), last */
    int64_t want[] = {0, 59, 599, 600, 719};
    CHECK_INT(in->nevidence, 5);
    for (size_t i = 0; i < 5 && i < in->nevidence; i++)
        CHECK_INT(in->evidence[i], want[i]);
    engine__usage_tracker_free(&t);
}

static void phantoms(void *ctx, int64_t f, engine__usage_det *d, size_t *n)
{
    (void)ctx;
    d[(*n)++] = det(0, B); /* a real tool */
    /* one frame in three: a false positive at a random place on the table */
    if (f % 3 == 0) {
        double x = 0.06 + (double)((f * 7919) % 800) / 1000.0;
        double y = 0.51 + (double)((f * 104729) % 380) / 1000.0;
        engine__usage_det p = det(1 + (uint32_t)(f % 2), (box){x, y, 0.04, 0.04});
        p.confidence = 300000;
        d[(*n)++] = p;
    }
    /* two frames in a row, every 5 s, at one place */
    if (f % 150 == 0 || f % 150 == 1)
        d[(*n)++] = det(1, (box){0.8, 0.6, 0.04, 0.04});
    /* a tool off the table the whole time */
    d[(*n)++] = det(3, (box){0.5, 0.1, 0.05, 0.075});
}

static void test_phantoms(void)
{
    engine__usage_cfg c = config(4);
    engine__usage_tracker *t = run(&c, 5400, phantoms, NULL);
    CHECK_INT(engine__usage_count(t), 1); /* the real one */
    CHECK(engine__usage_count(t) == 1 && engine__usage_at(t, 0)->sku == 0);
    CHECK(engine__usage_tracks_peak(t) < 200); /* candidates fade */
    engine__usage_tracker_free(&t);
}

/* ---------------------------------------------------------------------------
 * Frames never analyzed are no absence.
 * ------------------------------------------------------------------------- */
static void test_gaps(void)
{
    engine__usage_cfg c = config(1);
    window w[] = {{0, 200000, A}, {0, 0, A}};
    int64_t frames[600];
    for (int i = 0; i < 300; i++) {
        frames[i] = i;
        frames[300 + i] = 100000 + i; /* an hour of frames missing */
    }
    engine__usage_tracker *t = run_frames(&c, frames, 600, present, w);
    CHECK(engine__usage_count(t) == 1 && !engine__usage_at(t, 0)->used);
    CHECK_INT(engine__usage_at(t, 0)->last_frame, 100299);
    engine__usage_tracker_free(&t);
}

/* ---------------------------------------------------------------------------
 * Errors and bounds.
 * ------------------------------------------------------------------------- */
static void test_errors(void)
{
    engine__usage_cfg c = config(2);
    engine__usage_tracker *t = NULL;
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(engine__usage_tracker_new(&c, &t, &e) == SL_OK);
    engine__usage_det d[3] = {det(0, A), det(1, B), det(0, C)};
    CHECK_INT(engine__usage_feed(t, 5, d, 3, &e), SL_OK);
    sl_error_clear(&e);
    CHECK_INT(engine__usage_feed(t, 5, d, 3, &e), SL_EINVAL); /* not after the last */
    CHECK(strstr(e.message, "frame 5 is not after frame 5") != NULL);
    engine__usage_tracker_free(&t);

    REQUIRE(engine__usage_tracker_new(&c, &t, &e) == SL_OK);
    engine__usage_det bad = det(7, A); /* no such class */
    sl_error_clear(&e);
    CHECK_INT(engine__usage_feed(t, 0, &bad, 1, &e), SL_EINVAL);
    engine__usage_tracker_free(&t);

    c.tracks_max = 2;
    REQUIRE(engine__usage_tracker_new(&c, &t, &e) == SL_OK);
    sl_error_clear(&e);
    CHECK_INT(engine__usage_feed(t, 0, d, 3, &e), SL_ETOOLARGE);
    CHECK_STR(e.field, "tracks_max");
    CHECK(strstr(e.message, "more than 2 tool instances and candidates at once at frame 0") !=
          NULL);
    engine__usage_tracker_free(&t);

    c = config(1);
    REQUIRE(engine__usage_tracker_new(&c, &t, &e) == SL_OK);
    CHECK_INT(engine__usage_finish(t, &e), SL_OK);
    sl_error_clear(&e);
    CHECK_INT(engine__usage_finish(t, &e), SL_EINVAL);
    CHECK_INT(engine__usage_feed(t, 9, d, 1, &e), SL_EINVAL);
    engine__usage_tracker_free(&t);

    c.npoints = 2;
    sl_error_clear(&e);
    CHECK_INT(engine__usage_tracker_new(&c, &t, &e), SL_EINVAL);
    CHECK_STR(e.field, "table");
    CHECK(t == NULL);
}

/* ---------------------------------------------------------------------------
 * The table's raster agrees with a plain even-odd test everywhere, edges and
 * corners included.
 * ------------------------------------------------------------------------- */
static bool plain_inside(const int32_t *px, const int32_t *py, size_t n, int64_t x, int64_t y)
{
    bool in = false;
    for (size_t i = 0, j = n - 1; i < n; j = i++) {
        int64_t xi = 2 * (int64_t)px[i], yi = 2 * (int64_t)py[i], xj = 2 * (int64_t)px[j],
                yj = 2 * (int64_t)py[j];
        if ((yi > y) != (yj > y)) {
            /* x < xi + (y - yi) * (xj - xi) / (yj - yi), exactly */
            int64_t lhs = (x - xi) * (yj - yi), rhs = (y - yi) * (xj - xi);
            if (yj > yi ? lhs < rhs : lhs > rhs)
                in = !in;
        }
    }
    return in;
}

static void check_table(const int32_t *px, const int32_t *py, size_t n)
{
    engine__usage_cfg c = config(1);
    c.npoints = n;
    c.px = px;
    c.py = py;
    engine__usage_tracker *t = NULL;
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(engine__usage_tracker_new(&c, &t, &e) == SL_OK);
    int bad = 0;
    uint64_t s = 88172645463325252ULL;
    for (int i = 0; i < 200000; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        int32_t b[4];
        if (i % 4 == 0) { /* on a vertex or an edge's midpoint: the hard cases */
            size_t k = s % n, k2 = (k + 1) % n;
            b[0] = (i % 8 == 0) ? px[k] : (px[k] + px[k2]) / 2;
            b[1] = (i % 8 == 0) ? py[k] : (py[k] + py[k2]) / 2;
            b[2] = b[3] = (int32_t)(s >> 40) % 3 * 2; /* centre stays on it */
            b[0] -= b[2] / 2;
            b[1] -= b[3] / 2;
            if (b[0] < 0 || b[1] < 0)
                continue;
        } else {
            b[0] = (int32_t)(s % 1000001);
            b[1] = (int32_t)((s >> 20) % 1000001);
            b[2] = (int32_t)((s >> 40) % (uint64_t)(1000001 - b[0]));
            b[3] = (int32_t)((s >> 44) % (uint64_t)(1000001 - b[1]));
        }
        bool want = plain_inside(px, py, n, 2 * (int64_t)b[0] + b[2], 2 * (int64_t)b[1] + b[3]);
        bad += engine__usage_on_table(t, b) != want;
    }
    CHECK_INT(bad, 0);
    engine__usage_tracker_free(&t);
}

static void test_table(void)
{
    check_table(TX, TY, 4);
    int32_t tx[3] = {0, 1000000, 500000}, ty[3] = {1000000, 1000000, 0}; /* a triangle */
    check_table(tx, ty, 3);
    int32_t lx[6] = {100000, 900000, 900000, 500000, 500000, 100000}; /* an L */
    int32_t ly[6] = {100000, 100000, 400000, 400000, 900000, 900000};
    check_table(lx, ly, 6);
    int32_t cx[256], cy[256]; /* a star of 256 points */
    for (int i = 0; i < 256; i++) {
        double r = i % 2 ? 0.45 : 0.2, a = 2 * M_PI * i / 256;
        cx[i] = (int32_t)lround((0.5 + r * cos(a)) * 1e6);
        cy[i] = (int32_t)lround((0.5 + r * sin(a)) * 1e6);
    }
    check_table(cx, cy, 256);
}

int main(void)
{
    test_still_and_late();
    test_flicker();
    test_occlusion();
    test_seen_off_table();
    test_seen_off_ambiguous();
    test_moves();
    test_twins();
    test_assignment();
    test_carried_away();
    test_phantoms();
    test_gaps();
    test_errors();
    test_table();
    return check_finish();
}
