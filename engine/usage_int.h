/* usage_int.h -- the tool-usage analysis inside the engine (engine.h, "Tool
 * usage"; docs/usage.md): the tracker, which knows nothing of the store
 * (frames of detections in, instance decisions out: what the unit tests and
 * the fuzz target drive), the association of detections with slots, and what
 * the store side's files share.
 *
 * Files: usage_params.c (the parameter table), usage_track.c (the tracker's
 * states and rules), usage_assign.c (detections -> slots, per SKU and frame),
 * usage_frames.c (the surgery, the labels, the frames from the store),
 * usage_docs.c (the documents and their writes), usage.c (analyze, run). */
#ifndef SIGHTLINE_ENGINE_USAGE_INT_H
#define SIGHTLINE_ENGINE_USAGE_INT_H

#include "engine_int.h"

#include <stdbool.h>

/* ---------------------------------------------------------------------------
 * The tracker.
 * ------------------------------------------------------------------------- */

/* The class of a detection: a SKU index (< cfg.nskus), or one of these. */
#define ENGINE__USAGE_OCCLUDER UINT32_MAX        /* hides what it covers */
#define ENGINE__USAGE_IGNORE   (UINT32_MAX - 1u) /* no tool, no occluder (unmapped) */

typedef struct engine__usage_det {
    uint32_t cls;
    int32_t confidence; /* micro-units, 0..1000000 */
    int32_t x, y, w, h; /* micro-units of the picture, top-left origin */
} engine__usage_det;

/* What the tracker needs: the parameters in frames (each >= 1, move_frames >= 0) and
 * micro-units, and the table. */
typedef struct engine__usage_cfg {
    uint32_t nskus; /* classes 0..nskus-1 are SKUs; at most ENGINE__USAGE_SKUS_MAX */
    int64_t open_frames, leave_frames, return_frames, move_frames, off_frames;
    int64_t iou_min, centroid_max, min_confidence, min_fill, occlusion; /* micro-units */
    size_t tracks_max;
    size_t npoints;    /* SCHEMA_TABLE_POINTS_MIN..MAX */
    const int32_t *px; /* npoints x, micro-units (copied by engine__usage_tracker_new) */
    const int32_t *py; /* npoints y */
} engine__usage_cfg;
#define ENGINE__USAGE_SKUS_MAX 1000000u

/* The value of numeric parameter i (engine_usage_param_at(i), not the
 * pattern) of p. */
int64_t engine__usage_param_value(const engine_usage_params *p, size_t i);

/* cfg's windows and thresholds from p at fps frames per second (windows
 * rounded up to whole frames, at least one); nskus, the table and
 * tracks_max are the caller's to set (tracks_max from p). */
void engine__usage_cfg_from_params(const engine_usage_params *p, double fps,
                                   engine__usage_cfg *cfg);

/* One opened instance, as the tracker decided it. */
typedef struct engine__usage_instance {
    uint32_t sku;    /* its class */
    uint32_t number; /* 1.. within its SKU, by first sighting, then slot left to right, top down */
    bool used;
    int64_t first_seen_frame; /* first sighting of the presence that opened it */
    int64_t first_frame;      /* the frame it counted as opened */
    int64_t last_frame;       /* last sighting on the table */
    int64_t left_frame;       /* first frame of its first departure; -1 never left */
    int64_t returned_frame;   /* first sighting back on the table after it; -1 */
    int64_t confidence_micro; /* 500000..1000000: how far past (or short of) the window */
    int32_t slot[4];          /* x, y, w, h (micro) where it was opened */
    uint32_t nevidence;
    int64_t evidence[SCHEMA_EVIDENCE_MAX]; /* ascending frame numbers, see docs/usage.md */
} engine__usage_instance;

typedef struct engine__usage_tracker engine__usage_tracker;

/* A tracker for cfg (copied).  SL_EINVAL naming the setting when cfg is
 * out of bounds; SL_ENOMEM.  On SL_OK free *out with
 * engine__usage_tracker_free(). */
sl_status engine__usage_tracker_new(const engine__usage_cfg *cfg, engine__usage_tracker **out,
                                    sl_error *err);
void engine__usage_tracker_free(engine__usage_tracker **t); /* NULL fine; *t becomes NULL */

/* Feeds one frame: its number (above the previous one's; gaps are frames
 * never analyzed, which count as nothing) and its detections (n of them;
 * classes as above, boxes and confidences within 0..1000000; the caller
 * checked them).  The work is O(n x instances of each detection's SKU +
 * instances tracked); memory grows only with the instances tracked.
 *   SL_EINVAL     frame not above the last one, or after finish, or a box or
 *                 class out of range
 *   SL_ETOOLARGE  more than cfg.tracks_max tracked at once (naming the frame)
 *   SL_ENOMEM
 * After an error the tracker can only be freed. */
sl_status engine__usage_feed(engine__usage_tracker *t, int64_t frame, const engine__usage_det *dets,
                             size_t n, sl_error *err);

/* Ends the video: decides what is pending (an absence shorter than the
 * window is no departure; a candidate never held long enough was never
 * opened) and numbers the opened instances.  Then the instances are read
 * with the two functions below, ordered by SKU class, then number.
 * SL_ETOOLARGE when a SKU has more than SCHEMA_INSTANCE_MAX instances;
 * SL_ENOMEM. */
sl_status engine__usage_finish(engine__usage_tracker *t, sl_error *err);
size_t engine__usage_count(const engine__usage_tracker *t);
const engine__usage_instance *engine__usage_at(const engine__usage_tracker *t, size_t i);

/* Instances and candidates tracked at once, at most, so far. */
size_t engine__usage_tracks_peak(const engine__usage_tracker *t);

/* Whether the centre of box lies on t's table (its raster, exact near the
 * edges): for the tests, which check it against a plain polygon test. */
bool engine__usage_on_table(const engine__usage_tracker *t, const int32_t box[4]);

/* ---------------------------------------------------------------------------
 * Association (usage_assign.c): the detections of one SKU on the table in one
 * frame against the slots of that SKU's tracks.
 * ------------------------------------------------------------------------- */

/* A slot to match: where a track is, and whether it is only a candidate
 * (never preferred over an instance). */
typedef struct engine__usage_slot {
    int32_t box[4];
    bool candidate;
} engine__usage_slot;

typedef struct engine__usage_assign engine__usage_assign; /* scratch, reused across frames */

sl_status engine__usage_assign_new(engine__usage_assign **out, sl_error *err);
void engine__usage_assign_free(engine__usage_assign **a);

/* Matches boxes[0..nd) with slots[0..ns): det_of_slot[i] gets the index of
 * the detection matched with slot i, or -1.  A pair may match only within
 * the gate (IoU >= iou_min or centres within centroid_max, micro-units);
 * among the assignments with the most pairs, the one whose summed centre
 * distance is least, a candidate slot counting as farther than any
 * instance: an optimal assignment, not nearest-first, so that identical
 * tools side by side never swap.  Exact (Hungarian) on up to
 * ENGINE__USAGE_ASSIGN_EXACT slots or detections with a gated pair; past
 * that greedy by increasing distance.  O(ns x nd) to gate, more only when a
 * detection is within the gate of two slots.  SL_ENOMEM (its scratch grows
 * with the largest frame, then stays). */
#define ENGINE__USAGE_ASSIGN_EXACT 64
sl_status engine__usage_assign_run(engine__usage_assign *a, const engine__usage_slot *slots,
                                   size_t ns, const int32_t (*boxes)[4], size_t nd, int64_t iou_min,
                                   int64_t centroid_max, int32_t *det_of_slot, sl_error *err);

/* ---------------------------------------------------------------------------
 * The store side.
 * ------------------------------------------------------------------------- */

/* The surgery's META as the analysis reads it. */
typedef struct engine__usage_surgery {
    char hospital[SCHEMA_COMPONENT_MAX + 1];
    char procedure[SCHEMA_COMPONENT_MAX + 1];
    int64_t started_ms;
    double fps;
    size_t npoints;
    int32_t px[SCHEMA_TABLE_POINTS_MAX], py[SCHEMA_TABLE_POINTS_MAX];
    int64_t version; /* the META's v: every write of the results is fenced on it */
} engine__usage_surgery;

/* Reads surgery's META: SL_ENOTFOUND naming "surgery", SL_ECORRUPT naming
 * the field that does not read. */
sl_status engine__usage_surgery_get(store *s, const char *tenant, const char *surgery,
                                    engine__usage_surgery *out, sl_error *err);

/* A detector label's count, for the summary's unmapped labels. */
typedef struct engine__usage_label {
    const char *label; /* len bytes, not NUL-terminated; owned by the label map */
    size_t len;
    int64_t detections;
    bool occluder; /* it matched the occluder pattern */
} engine__usage_label;

/* What reading the frames counted. */
typedef struct engine__usage_counts {
    int64_t frames, frames_empty, detections, unmapped_detections;
} engine__usage_counts;

typedef struct engine__usage_labels engine__usage_labels; /* label -> class, with counts */

/* Feeds the frames of surgery (T#t#SURGERY#id / FRAME#..., in frame order,
 * STORE_PAGE_MAX at a time) to t, each label mapped once with catalog (its
 * index is the class) and, when it maps to no entry, with occluders (an
 * occluder, else ignored).  *labels gets the map (the caller frees it with
 * engine__usage_labels_free, also on failure) for the unmapped labels.
 * SL_ECORRUPT naming the frame when a frame document does not read; the
 * tracker's and the matcher's errors. */
sl_status engine__usage_frames(store *s, const char *tenant, const char *surgery,
                               const schema_catalog *catalog, const schema_catalog *occluders,
                               engine__usage_tracker *t, engine__usage_counts *counts,
                               engine__usage_labels **labels, sl_error *err);
void engine__usage_labels_free(engine__usage_labels **l);

/* The unmapped labels (their class ENGINE__USAGE_IGNORE), most detections
 * first, then by label bytewise: at most max into out; returns how many. */
size_t engine__usage_labels_unmapped(const engine__usage_labels *l, engine__usage_label *out,
                                     size_t max);

/* Everything the documents are made of. */
typedef struct engine__usage_run {
    const char *tenant, *surgery;
    const engine__usage_surgery *meta;
    const schema_catalog *catalog;
    const engine_usage_params *params;
    const engine__usage_tracker *tracker; /* finished */
    engine__usage_counts counts;
    const engine__usage_label *unmapped;
    size_t nunmapped;
} engine__usage_run;

/* Writes the results (usage_docs.c): every tool_result, the deletes of the
 * stale ones, the SUMMARY last; batches fenced on run->meta->version.
 * Fills out's totals and write counters. */
sl_status engine__usage_write(store *s, const engine__usage_run *run, engine_usage_result *out,
                              sl_error *err);

#endif /* SIGHTLINE_ENGINE_USAGE_INT_H */
