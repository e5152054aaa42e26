/* usage.c -- a surgery's tool-usage analysis from end to end (engine.h,
 * "Tool usage"): the surgery, the catalog and the occluder pattern, the
 * frames through the tracker, the documents; and the job around it that
 * moves a closed surgery to analyzed or failed. */
#include "usage_int.h"

#include <stdlib.h>
#include <string.h>

/* The occluder pattern as a one-entry catalog: schema's matcher gives it
 * the catalog's semantics (whole label, UTF-8, match limit). */
static sl_status occluders_new(const engine_usage_params *p, schema_catalog **out, sl_error *err)
{
    sl_status rc;
    const char *labels[1] = {p->occluder_pattern};
    uint32_t len[1] = {(uint32_t)strlen(p->occluder_pattern)};
    schema_catalog_entry e = {
        .sku = "occluder", .name = "occluders", .labels = labels, .label_len = len, .nlabels = 1};
    sl_error ee;
    sl_error_clear(&ee);
    if ((rc = schema_catalog_new(out, err)) == SL_OK &&
        (rc = schema_catalog_add(*out, &e, &ee)) != SL_OK) {
        rc = sl_error_set_at(err, rc, "occluder_pattern", -1, "occluder_pattern: %s", ee.message);
        schema_catalog_free(out);
    }
    return rc;
}

sl_status engine_usage_analyze(store *s, const char *tenant, const char *surgery,
                               const engine_usage_params *p, engine_usage_result *out,
                               sl_error *err)
{
    sl_status rc = SL_OK;
    engine__usage_surgery *meta = NULL;
    schema_catalog *catalog = NULL, *occluders = NULL;
    engine__usage_tracker *t = NULL;
    engine__usage_labels *labels = NULL;
    engine__usage_label unmapped[SCHEMA_UNMAPPED_LABELS_MAX];
    engine_usage_result res;
    memset(&res, 0, sizeof res);
    if ((rc = engine_usage_params_check(p, err)) != SL_OK ||
        (rc = schema_component_check("tenant", tenant, err)) != SL_OK ||
        (rc = schema_component_check("surgery", surgery, err)) != SL_OK)
        goto out;
    if (!(meta = malloc(sizeof *meta))) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory analyzing a surgery");
        goto out;
    }
    if ((rc = engine__usage_surgery_get(s, tenant, surgery, meta, err)) != SL_OK ||
        (rc = engine_catalog_load(s, tenant, &catalog, err)) != SL_OK ||
        (rc = occluders_new(p, &occluders, err)) != SL_OK)
        goto out;
    engine__usage_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    engine__usage_cfg_from_params(p, meta->fps, &cfg);
    cfg.nskus = (uint32_t)schema_catalog_size(catalog);
    cfg.npoints = meta->npoints;
    cfg.px = meta->px;
    cfg.py = meta->py;
    engine__usage_counts counts;
    if ((rc = engine__usage_tracker_new(&cfg, &t, err)) != SL_OK ||
        (rc = engine__usage_frames(s, tenant, surgery, catalog, occluders, t, &counts, &labels,
                                   err)) != SL_OK ||
        (rc = engine__usage_finish(t, err)) != SL_OK)
        goto out;
    engine__usage_run run = {.tenant = tenant,
                             .surgery = surgery,
                             .meta = meta,
                             .catalog = catalog,
                             .params = p,
                             .tracker = t,
                             .counts = counts,
                             .unmapped = unmapped};
    run.nunmapped = engine__usage_labels_unmapped(labels, unmapped, SCHEMA_UNMAPPED_LABELS_MAX);
    if ((rc = engine__usage_write(s, &run, &res, err)) != SL_OK)
        goto out;
    res.frames = counts.frames;
    res.frames_empty = counts.frames_empty;
    res.detections = counts.detections;
    res.unmapped_detections = counts.unmapped_detections;
    res.tracks_peak = (int64_t)engine__usage_tracks_peak(t);
    *out = res;
out:
    engine__usage_labels_free(&labels);
    engine__usage_tracker_free(&t);
    schema_catalog_free(&occluders);
    schema_catalog_free(&catalog);
    free(meta);
    return rc;
}

sl_status engine_usage_run(store *s, const char *tenant, const char *surgery,
                           const engine_usage_params *p, engine_usage_result *out, sl_error *err)
{
    sl_status rc = SL_OK;
    schema_surgery_life life;
    engine_usage_result res;
    if ((rc = engine_surgery_life_get(s, tenant, surgery, &life, NULL, err)) != SL_OK)
        goto out;
    if (life.status != SCHEMA_SURGERY_CLOSED) {
        rc = sl_error_set_at(err, SL_ECONFLICT, SCHEMA_F_STATUS, -1,
                             "surgery \"%s\" is %s: only a closed surgery is analyzed (%s)",
                             surgery, schema_surgery_status_name(life.status),
                             life.status == SCHEMA_SURGERY_OPEN ? "close it first"
                                                                : "requeue it first");
        goto out;
    }
    sl_error e;
    sl_error_clear(&e);
    if ((rc = engine_usage_analyze(s, tenant, surgery, p, &res, &e)) != SL_OK) {
        /* Recorded as the surgery's analysis_error; the error as it was goes
         * back to the caller either way. */
        sl_error te;
        sl_error_clear(&te);
        (void)engine_surgery_transition(s, tenant, surgery, ENGINE_SURGERY_FAILED, 0,
                                        e.message[0] ? e.message : sl_status_title(rc), NULL, &te);
        sl_error_set_at(err, rc, e.field, e.offset, "%s", e.message);
        goto out;
    }
    if ((rc = engine_surgery_transition(s, tenant, surgery, ENGINE_SURGERY_ANALYZED, 0, NULL, NULL,
                                        err)) != SL_OK)
        goto out;
    *out = res;
out:
    return rc;
}
