/* simulate.h -- the scenario simulator behind `sightline simulate` (cmd/
 * only; the oracle of tool-usage analytics, so it shares no code with the
 * analyzer in engine/).  A scenario (docs/scenarios.md) says what physically
 * happens on a scrub table: the tools, when each is put on the table, moved,
 * picked up, put back or carried away, and the hands passing over it.  From
 * it the simulator writes
 *   - frames: what a real detector would emit, box by box, frame by frame,
 *     with parameterised realism (misses and miss bursts, occlusion, false
 *     positives, box jitter, confidence noise, label variants), streamed
 *     (memory bounded by the scenario, never by the number of frames);
 *   - the ground truth: what physically happened to each tool instance,
 *     independent of the detector's realism and of the seed.
 *
 * Files: simulate.c (the command), simulate_scenario.c (reading and checking
 * a scenario), simulate_timeline.c (its tools' timelines and occluders),
 * simulate_frames.c (the detector model and the writers), simulate_truth.c
 * (the truth), simulate_rng.c (random numbers, output helpers).  All randomness comes from sim_rng
 * streams seeded from (seed, stream id): the same scenario and seed give the same bytes on every
 * machine. */
#ifndef SIGHTLINE_CMD_SIMULATE_H
#define SIGHTLINE_CMD_SIMULATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <yajl/yajl_tree.h>

#include "schema/schema.h"

/* ---------------------------------------------------------------------------
 * Limits of one scenario (docs/scenarios.md, "Limits").  With them a frame
 * holds at most SIM_TOOLS_MAX + SIM_PEOPLE_MAX + SIM_FP_PER_FRAME_MAX
 * detections, below ingest's 10,000 per frame.
 * ------------------------------------------------------------------------- */
#define SIM_SCENARIO_BYTES_MAX (4u << 20) /* the scenario file */
#define SIM_TOOLS_MAX          1000u
#define SIM_EVENTS_MAX         1000u /* per tool */
#define SIM_LABELS_MAX         16u   /* label variants of a tool */
#define SIM_PEOPLE_MAX         4096u /* occluders: listed, repeated, reaching and random hands */
#define SIM_PATH_MAX           64u   /* boxes of one occluder's path */
#define SIM_FP_LABELS_MAX      64u
#define SIM_FP_PER_FRAME_MAX   64u /* false positives drawn for one frame, at most */
#define SIM_FP_RATE_MAX        16.0
#define SIM_CATALOG_MAX        1000u /* entries in the catalog folder */
#define SIM_LABEL_MAX          128u  /* bytes of a label, as ingest takes them */

/* A box, normalized, top-left origin. */
typedef struct sim_box {
    double x, y, w, h;
} sim_box;

/* ---------------------------------------------------------------------------
 * Random numbers: xoshiro256** seeded through splitmix64.
 * ------------------------------------------------------------------------- */
typedef struct sim_rng {
    uint64_t s[4];
} sim_rng;

/* The streams: false positives, random hands, occluders, then per tool i
 * SIM_STREAM_TOOL + 2i (presence: bursts, misses, occlusion) and + 2i + 1
 * (appearance: jitter, confidence, label). */
enum { SIM_STREAM_FP = 1, SIM_STREAM_HANDS = 2, SIM_STREAM_PEOPLE = 3, SIM_STREAM_TOOL = 1000 };

/* Stream `stream` of seed: independent streams, so that a knob of one source
 * (say false positives) does not move the draws of another (a tool's misses). */
void sim_rng_seed(sim_rng *r, uint64_t seed, uint64_t stream);
uint64_t sim_rng_next(sim_rng *r);
double sim_rng_uniform(sim_rng *r);                  /* [0, 1) */
double sim_rng_normal(sim_rng *r);                   /* mean 0, sd 1 */
uint32_t sim_rng_below(sim_rng *r, uint32_t n);      /* [0, n), n > 0 */
uint32_t sim_rng_poisson(sim_rng *r, double lambda); /* lambda <= SIM_FP_RATE_MAX */

/* ---------------------------------------------------------------------------
 * The scenario, as read and checked (simulate_scenario.c).
 * ------------------------------------------------------------------------- */

/* A catalog entry: a PUT /v1/catalog/{sku} body of the catalog folder. */
typedef struct sim_sku {
    char *sku, *name;
    char **patterns;
    size_t npatterns;
    int64_t unit_cost_cents;
    bool single_use;
} sim_sku;

/* Where a tool is during [from, to) frames. */
typedef enum sim_seg_kind {
    SIM_SEG_ON,    /* on the table at a */
    SIM_SEG_SLIDE, /* on the table, moving from a to b */
    SIM_SEG_OFF    /* off the table: held, or carried away; seen at a while seen_to > frame */
} sim_seg_kind;

typedef struct sim_seg {
    sim_seg_kind kind;
    int64_t from, to;
    sim_box a, b;
    bool seen;       /* OFF: detected at a (held over the patient) until seen_to */
    int64_t seen_to; /* OFF: frames [from, seen_to) are seen */
} sim_seg;

typedef struct sim_tool {
    size_t index; /* in the scenario's tools[] */
    const sim_sku *sku;
    char **labels;      /* [0] the usual label, the others variants */
    char **labels_json; /* the same, escaped for a JSON string */
    size_t nlabels;
    uint32_t *class_ids; /* parallel to labels */
    sim_box slot;        /* where it is put when opened */
    int64_t opened_frame;
    double miss_rate, variant_rate, conf_mean; /* the detector's, or the tool's own */
    sim_seg *segs;                             /* from opened_frame to the end, in order */
    size_t nsegs;
    /* the truth (simulate_truth.c) */
    uint32_t instance;
    bool opened, used;
    int64_t left_frame, returned_frame; /* -1: never */
    sim_box *slots;                     /* every place it lay on the table, in order */
    size_t nslots;
} sim_tool;

typedef struct sim_person {
    char *label_json;
    uint32_t class_id;
    int64_t from, to; /* frames [from, to) */
    sim_box *path;    /* boxes passed through, evenly over [from, to) */
    size_t npath;
    bool detected; /* emitted as a detection (occludes either way) */
} sim_person;

typedef struct sim_detector {
    double miss_rate;
    double burst_per_min;         /* miss bursts started per minute per tool */
    int64_t burst_min, burst_max; /* frames */
    double jitter_px;
    double conf_mean, conf_sd, conf_max;
    double threshold; /* the detector's: below it nothing is emitted */
    double variant_rate;
    double occl_cover;                    /* fraction of a tool's box an occluder must cover */
    double occl_hide;                     /* probability a covered tool is not detected */
    double occl_factor;                   /* confidence factor of a covered tool still detected */
    double fp_rate;                       /* false positives per frame (Poisson mean) */
    double fp_catalog_off, fp_catalog_on; /* fractions with a catalog label off / on the table */
    double fp_conf_lo, fp_conf_hi;
    double fp_size_lo, fp_size_hi;
    char **fp_labels_json;
    uint32_t *fp_class_ids;
    size_t nfp_labels;
} sim_detector;

typedef struct sim_scenario {
    char *name, *description;
    char *dir; /* the scenario file's folder (the catalog is relative to it) */
    uint64_t seed;
    double fps;
    int64_t frames;
    int32_t frame_width, frame_height;
    double (*table)[2];
    size_t ntable;
    sim_box table_bounds;
    char *hospital, *procedure, *room, *surgeon, *started_at;
    double open_s, leave_s; /* the truth's windows */
    sim_detector det;
    sim_sku *skus; /* the catalog, in SKU order */
    size_t nskus;
    /* The entries compiled by schema's matcher (schema_catalog_match: what
     * ingest and the analysis map labels with), added in SKU byte order;
     * matcher_sku[i] is the index in skus of the matcher's entry i. */
    schema_catalog *matcher;
    size_t *matcher_sku;
    char *catalog_dir;
    sim_tool *tools;
    size_t ntools;
    sim_person *people; /* sorted by from */
    size_t npeople;
} sim_scenario;

/* Reads, checks and prepares the scenario at path: the catalog folder is
 * read, every tool label must map to its tool's SKU and no occluder or false
 * positive label to any (so the catalog patterns are exercised), times must
 * follow each other, slots lie on the table.  Random occluders ("hands") are
 * drawn here from seed's stream, as everything else random.  On success *out
 * is freed with sim_scenario_free().  Errors name the JSON path at fault. */
sl_status sim_scenario_load(const char *path, uint64_t seed, bool seed_given, sim_scenario **out,
                            sl_error *err);
/* The same from text[0..len) (text[len] must be '\0'): name is the file name
 * (errors, and the default scenario name), dir the folder the catalog is
 * relative to. */
sl_status sim_scenario_parse(const char *name, const char *dir, const char *text, size_t len,
                             uint64_t seed, bool seed_given, sim_scenario **out, sl_error *err);
void sim_scenario_free(sim_scenario **sc);

/* True when (x, y) is inside the table polygon. */
bool sim_on_table(const sim_scenario *sc, double x, double y);

/* The frame of time t seconds: round(t * fps). */
int64_t sim_frame_of(const sim_scenario *sc, double t);

/* ---------------------------------------------------------------------------
 * Reading a scenario: what simulate_scenario.c and simulate_timeline.c share
 * (cmd/ internals).  Each reader records SL_EINVAL naming the JSON path of
 * the value at fault, and writes its output only on success.
 * ------------------------------------------------------------------------- */
typedef struct sim__loader {
    sim_scenario *sc;
    sl_error *err;
    char **classes; /* distinct labels, in order of first use: their index is the class id */
    size_t nclasses, classes_cap;
    size_t people_cap;
    const char *reach_label;
} sim__loader;

sl_status sim__nomem(sl_error *err);
/* The class id of label (darknet's class_id), adding it when new; label
 * must live as long as the loader. */
sl_status sim__class_of(sim__loader *ld, const char *label, uint32_t *id);
/* A box [x, y, w, h]: strict, inside the image; loose (occluders), reaching
 * outside it by up to one image. */
sl_status sim__read_box(yajl_val v, const char *path, bool loose, sim_box *out, sl_error *err);
/* A box whose centre lies on the table. */
sl_status sim__read_slot(const sim_scenario *sc, yajl_val v, const char *path, sim_box *out,
                         sl_error *err);
/* Member key of o, a time in seconds whose frame is in [0, frames). */
sl_status sim__read_time(const sim_scenario *sc, yajl_val o, const char *path, const char *key,
                         bool required, double *t, int64_t *frame, sl_error *err);
/* Member key of o, a duration in seconds [0, 1 day] (default def), as frames. */
sl_status sim__read_span(const sim_scenario *sc, yajl_val o, const char *path, const char *key,
                         double def, int64_t *frames, sl_error *err);
/* Member key of o, a pair [lo, hi], lo <= hi, inside [min, max]. */
sl_status sim__read_range(yajl_val o, const char *path, const char *key, double min, double max,
                          double *lo, double *hi, sl_error *err);
/* The catalog entry label maps to (the first in SKU order whose pattern
 * matches the whole label), or NULL. */
sl_status sim__match_label(const sim_scenario *sc, const char *label, const sim_sku **out,
                           sl_error *err);
/* A label at path that must map to no catalog entry (occluders, random false
 * positives); *json (the label escaped for JSON) is the caller's to free. */
sl_status sim__read_free_label(sim__loader *ld, yajl_val v, const char *path, char **json,
                               uint32_t *class_id);
/* The members tools, people and hands (simulate_timeline.c). */
sl_status sim__read_tools(sim__loader *ld, yajl_val root);
sl_status sim__read_people(sim__loader *ld, yajl_val root);
sl_status sim__read_hands(sim__loader *ld, yajl_val root);

/* ---------------------------------------------------------------------------
 * Frames (simulate_frames.c).
 * ------------------------------------------------------------------------- */
typedef enum sim_format { SIM_FORMAT_DARKNET = 0, SIM_FORMAT_NDJSON } sim_format;

typedef struct sim_stats {
    uint64_t frames, empty_frames, detections;
    uint64_t tool_detections, seen_off_table, occluder_detections, false_positives;
    uint64_t missed, bursts, occluded_hidden, occluded_dimmed, below_threshold, variants;
} sim_stats;

/* Writes every frame of the scenario to out (a stream: nothing is kept),
 * named path in errors.  Deterministic for (sc, sc->seed). */
sl_status sim_frames_write(const sim_scenario *sc, sim_format fmt, FILE *out, const char *path,
                           sim_stats *stats, sl_error *err);

/* ---------------------------------------------------------------------------
 * Truth (simulate_truth.c).
 * ------------------------------------------------------------------------- */

/* Decides each tool's truth from its segments and numbers the instances
 * (per SKU, in order of opening); sim_scenario_load calls it. */
void sim_truth_compute(sim_scenario *sc);

/* Writes the truth JSON (docs/scenarios.md, "Truth"). */
sl_status sim_truth_write(const sim_scenario *sc, FILE *out, const char *path, sl_error *err);

/* Writes the PUT /v1/surgeries/{id} body of the scenario. */
sl_status sim_surgery_write(const sim_scenario *sc, FILE *out, const char *path, sl_error *err);

/* ---------------------------------------------------------------------------
 * Output helpers shared by the writers.
 * ------------------------------------------------------------------------- */

/* s escaped as the inside of a JSON string (quotes not included); NULL when
 * out of memory.  The caller frees it. */
char *sim_json_escape(const char *s);

/* Writes v (>= 0, < 1e12) with six decimals ("0.081250") into p; returns
 * the end.  From micro-units: v_micro 81250 -> "0.081250". */
char *sim_fmt_micro(char *p, int64_t v_micro);

/* round(v * 1e6) */
int64_t sim_micro(double v);

#endif
