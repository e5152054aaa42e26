/* fuzz_usage.c -- libFuzzer target: the tool-usage tracker (engine/
 * usage_track.c, usage_assign.c) fed arbitrary frame sequences with small
 * windows and a small cap.  It must not crash, must refuse nothing it was
 * given correctly (only the cap may stop it), and what it decides must hold
 * together: every instance opened and numbered 1..n per SKU, used exactly
 * when it has a departure, a departure after its opening, a return after
 * the departure, confidence in [0.5, 1], evidence ascending within the
 * frames fed; the table test agrees with a plain polygon test; and the same
 * input gives the same decisions twice.
 *
 * Input: 8 bytes of settings (windows of 1..16 frames, 1..4 SKUs, a cap of
 * 1..64 tracks, a table, min_fill), then frames: a byte (frame step 1..3,
 * detections 0..15), then 6 bytes per detection (class: a SKU, an occluder
 * or an unmapped label; x, y; w, h; confidence). */
#include "engine/usage_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const int32_t RX[4] = {50000, 950000, 950000, 50000},
                     RY[4] = {500000, 500000, 980000, 980000};
static const int32_t TX[3] = {0, 1000000, 500000}, TY[3] = {1000000, 1000000, 0};
static const int32_t LX[6] = {100000, 900000, 900000, 500000, 500000, 100000};
static const int32_t LY[6] = {100000, 100000, 400000, 400000, 900000, 900000};

static bool plain_inside(const engine__usage_cfg *c, int64_t x, int64_t y)
{
    bool in = false;
    for (size_t i = 0, j = c->npoints - 1; i < c->npoints; j = i++) {
        int64_t xi = 2 * (int64_t)c->px[i], yi = 2 * (int64_t)c->py[i], xj = 2 * (int64_t)c->px[j],
                yj = 2 * (int64_t)c->py[j];
        if ((yi > y) != (yj > y)) {
            int64_t lhs = (x - xi) * (yj - yi), rhs = (y - yi) * (xj - xi);
            if (yj > yi ? lhs < rhs : lhs > rhs)
                in = !in;
        }
    }
    return in;
}

/* Runs the input; *last gets the last frame fed.  NULL when the cap stopped
 * it (the only refusal allowed). */
static engine__usage_tracker *run(const engine__usage_cfg *c, const uint8_t *data, size_t size,
                                  int64_t *last)
{
    engine__usage_tracker *t = NULL;
    sl_error e;
    sl_error_clear(&e);
    if (engine__usage_tracker_new(c, &t, &e) != SL_OK)
        abort();
    engine__usage_det d[16];
    int64_t frame = -1;
    size_t p = 8;
    while (p < size) {
        uint8_t h = data[p++];
        size_t n = (size_t)(h >> 2) % 16;
        frame += h % 3 + 1;
        size_t k = 0;
        for (; k < n && p + 6 <= size; k++, p += 6) {
            const uint8_t *b = data + p;
            uint32_t cls = b[0] % (c->nskus + 2);
            d[k].cls = cls < c->nskus    ? cls
                       : cls == c->nskus ? ENGINE__USAGE_OCCLUDER
                                         : ENGINE__USAGE_IGNORE;
            d[k].x = (int32_t)(b[1] * 1000000 / 255);
            d[k].y = (int32_t)(b[2] * 1000000 / 255);
            d[k].w = (int32_t)(b[3] % 64 * 2000);
            d[k].h = (int32_t)(b[4] % 64 * 2000);
            if (d[k].x + d[k].w > 1000000)
                d[k].w = 1000000 - d[k].x;
            if (d[k].y + d[k].h > 1000000)
                d[k].h = 1000000 - d[k].y;
            d[k].confidence = (int32_t)(b[5] * 1000000 / 255);
            bool want = plain_inside(c, 2 * (int64_t)d[k].x + d[k].w, 2 * (int64_t)d[k].y + d[k].h);
            int32_t box[4] = {d[k].x, d[k].y, d[k].w, d[k].h};
            if (engine__usage_on_table(t, box) != want)
                abort();
        }
        sl_status rc = engine__usage_feed(t, frame, d, k, &e);
        if (rc == SL_ETOOLARGE) {
            engine__usage_tracker_free(&t);
            return NULL;
        }
        if (rc != SL_OK)
            abort();
    }
    if (engine__usage_finish(t, &e) != SL_OK)
        abort(); /* fewer instances than SCHEMA_INSTANCE_MAX: the cap is 64 */
    *last = frame;
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    engine__usage_cfg c;
    memset(&c, 0, sizeof c);
    c.open_frames = data[0] % 16 + 1;
    c.leave_frames = data[1] % 16 + 1;
    c.return_frames = data[2] % 16 + 1;
    c.move_frames = data[3] % 17;
    c.off_frames = data[4] % 16 + 1;
    c.nskus = data[5] % 4 + 1;
    c.tracks_max = data[6] % 64 + 1;
    c.iou_min = 300000;
    c.centroid_max = 30000;
    c.min_confidence = 250000;
    c.min_fill = (data[7] >> 2) % 4 * 250000 + 250000;
    c.occlusion = 250000;
    switch (data[7] % 3) {
    case 0:
        c.npoints = 4, c.px = RX, c.py = RY;
        break;
    case 1:
        c.npoints = 3, c.px = TX, c.py = TY;
        break;
    default:
        c.npoints = 6, c.px = LX, c.py = LY;
    }
    int64_t last = -1, last2 = -1;
    engine__usage_tracker *t = run(&c, data, size, &last);
    if (!t)
        return 0;
    size_t n = engine__usage_count(t);
    if (n > engine__usage_tracks_peak(t) || engine__usage_tracks_peak(t) > c.tracks_max)
        abort();
    for (size_t i = 0; i < n; i++) {
        const engine__usage_instance *in = engine__usage_at(t, i);
        const engine__usage_instance *prev = i ? engine__usage_at(t, i - 1) : NULL;
        uint32_t want = prev && prev->sku == in->sku ? prev->number + 1 : 1;
        if (in->sku >= c.nskus || in->number != want || (prev && prev->sku > in->sku))
            abort();
        if (in->first_seen_frame < 0 || in->first_frame < in->first_seen_frame ||
            in->last_frame < in->first_frame || in->last_frame > last)
            abort();
        if (in->used != (in->left_frame >= 0) || (in->used && in->left_frame <= in->first_frame))
            abort();
        if (in->returned_frame >= 0 && (!in->used || in->returned_frame < in->left_frame))
            abort();
        if (in->confidence_micro < 500000 || in->confidence_micro > 1000000)
            abort();
        if (in->nevidence < 1 || in->nevidence > SCHEMA_EVIDENCE_MAX)
            abort();
        for (uint32_t k = 0; k < in->nevidence; k++)
            if (in->evidence[k] < in->first_seen_frame || in->evidence[k] > last ||
                (k && in->evidence[k] <= in->evidence[k - 1]))
                abort();
    }
    engine__usage_tracker *t2 = run(&c, data, size, &last2);
    if (!t2 || engine__usage_count(t2) != n)
        abort();
    for (size_t i = 0; i < n; i++)
        if (memcmp(engine__usage_at(t, i), engine__usage_at(t2, i), sizeof(engine__usage_instance)))
            abort();
    engine__usage_tracker_free(&t);
    engine__usage_tracker_free(&t2);
    return 0;
}
