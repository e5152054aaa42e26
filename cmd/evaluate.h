/* evaluate.h -- `sightline evaluate` (cmd/ only): compares tool-usage results
 * with a scenario's ground truth (docs/scenarios.md, "Evaluate").  Results
 * come from a JSON file (the GET /v1/surgeries/{id}/usage answer, or
 * per-instance results shaped like tool_result documents) or from the store
 * (the surgery's TOOL#<sku>#<n> documents and its SUMMARY, through the store
 * port).  evaluate_read.c reads; evaluate.c matches, scores and prints. */
#ifndef SIGHTLINE_CMD_EVALUATE_H
#define SIGHTLINE_CMD_EVALUATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "schema/schema.h"
#include "store/store.h"

#define EV_FILE_BYTES_MAX (64u << 20) /* a truth or results file */
#define EV_INSTANCES_MAX  100000u     /* instances in one truth or one result */
#define EV_SCENARIOS_MAX  10000u      /* truth files in a folder */

typedef struct ev_box {
    double x, y, w, h; /* normalized, top-left origin */
} ev_box;

/* One tool instance, of the truth or of a result.  -1 marks a frame that is
 * unknown or never happened. */
typedef struct ev_inst {
    char *sku;
    int64_t instance;
    bool opened, used;
    int64_t first_frame, left_frame, returned_frame;
    ev_box
        *slots; /* truth: every place it lay (the first is where it was opened); result: 0 or 1 */
    size_t nslots;
    int64_t unit_cost_cents; /* -1: not given (then the truth's catalog says) */
    int single_use;          /* -1: not given */
} ev_inst;

/* Per SKU: the truth's catalog (cost), or a usage answer's counts. */
typedef struct ev_sku {
    char *sku;
    int64_t unit_cost_cents;
    bool single_use;
    int64_t opened, used;
} ev_sku;

typedef struct ev_truth {
    char *scenario, *path;
    double fps;
    int64_t frames;
    ev_inst *inst;
    size_t n;
    ev_sku *skus;
    size_t nskus;
    int64_t waste_cents;
} ev_truth;

typedef struct ev_result {
    char *source;     /* file or "store surgery S" */
    bool counts_only; /* a usage answer: per-SKU quantities, no instances */
    ev_inst *inst;
    size_t n;
    ev_sku *skus; /* counts_only */
    size_t nskus;
    bool has_waste; /* the result states its waste (usage answer, SUMMARY) */
    int64_t waste_cents;
} ev_result;

/* Reads a truth file written by `sightline simulate --truth`. */
sl_status ev_truth_load(const char *path, ev_truth *out, sl_error *err);

/* Reads a results file: a usage answer {"status": "analyzed", "used": [...],
 * "unused": [...], "waste_cost_cents"}, or instances: an array of them, or
 * an object holding one under "tools", "results" or "instances" (and
 * optionally "waste_cents" / "waste_cost_cents"). */
sl_status ev_result_load(const char *path, ev_result *out, sl_error *err);

/* Reads the surgery's tool_result documents (TOOL#...) and its SUMMARY's
 * waste through the store port. */
sl_status ev_result_from_store(store *s, const char *tenant, const char *surgery, ev_result *out,
                               sl_error *err);

void ev_truth_free(ev_truth *t);
void ev_result_free(ev_result *r);

/* A slot's numbers: normalized, or micro-units when any is above 1. */
void ev_box_normalize(double v[4], ev_box *out);

#endif
