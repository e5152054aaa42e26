/* usage_params.c -- the parameters of the tool-usage analysis as one table
 * (name, bounds, default, help, field): defaults, checks, setting one from
 * text (the CLI's --param, the API's query) and the help text all come from
 * it.  Why each default is what it is: docs/usage.md, "Parameters". */
#include "usage_int.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Hands, gloves, arms and people, as the whole label, with a side or glove
 * qualifier: COCO's "person", and what hand and arm detectors call theirs.
 * Whole-label, so a "hand towel" or an "armrest" is no occluder. */
#define OCCLUDERS_DEFAULT                                                                          \
    "(?i)(?:(?:left|right|gloved|bare)[ _-]?)?"                                                    \
    "(?:hand|glove|arm|forearm|person|people|surgeon|nurse|staff|human)s?"

typedef struct row {
    engine_usage_param_info info;
    size_t offset; /* of the int64_t field; the pattern has none */
} row;

#define NUM(name, min, max, def, help)                                                             \
    {                                                                                              \
        {#name, min, max, def, help, 0}, offsetof(engine_usage_params, name)                       \
    }

#define HOUR_MS 3600000

static const row rows[] = {
    NUM(open_ms, 1, HOUR_MS, 2000,
        "ms a tool must be seen on the table (in min_fill of the frames) to count as opened"),
    NUM(leave_ms, 1, HOUR_MS, 4000,
        "ms a tool must be absent from its slot, not occluded, to count as having left (used)"),
    NUM(return_ms, 1, HOUR_MS, 1000,
        "ms a new sighting must hold to be taken for an instance missing from the table, "
        "moved or put back"),
    NUM(move_ms, 0, HOUR_MS, 3000,
        "an instance found elsewhere on the table after less than this many ms off it was "
        "moved, not used"),
    NUM(off_ms, 1, HOUR_MS, 2000,
        "ms a tool missing from the table must be seen off it to count as used"),
    NUM(iou_min_micro, 1, 1000000, 300000,
        "a detection belongs to a slot whose box it overlaps this much (IoU, micro-units) ..."),
    NUM(centroid_max_micro, 0, 1000000, 30000,
        "... or whose centre is this close (micro-units of the picture)"),
    NUM(min_confidence_micro, 0, 1000000, 250000,
        "detections below this confidence (micro-units) are ignored"),
    NUM(min_fill_micro, 1, 1000000, 500000,
        "\"sustained\": seen in at least this fraction of the frames (micro-units)"),
    NUM(occlusion_micro, 1, 1000000, 250000,
        "an occluder covering this fraction of a slot (micro-units) hides it: its absence "
        "clock stops"),
    NUM(tracks_max, 1, 1000000, 10000,
        "instances and candidates tracked at once (~400 bytes each); more fail the analysis"),
    {{"occluder_pattern", 1, ENGINE_USAGE_PATTERN_MAX, 0,
      "PCRE2 pattern of the labels that occlude (whole label; default: hands, gloves, arms, "
      "people)",
      1},
     0},
};

#define NROWS (sizeof rows / sizeof rows[0])

size_t engine_usage_param_count(void)
{
    return NROWS;
}

const engine_usage_param_info *engine_usage_param_at(size_t i)
{
    return i < NROWS ? &rows[i].info : NULL;
}

static int64_t *field_of(engine_usage_params *p, const row *r)
{
    return (int64_t *)(void *)((char *)p + r->offset);
}

int64_t engine__usage_param_value(const engine_usage_params *p, size_t i)
{
    assert(i < NROWS && !rows[i].info.is_text);
    return *field_of((engine_usage_params *)p, &rows[i]);
}

void engine_usage_params_default(engine_usage_params *p)
{
    memset(p, 0, sizeof *p);
    for (size_t i = 0; i < NROWS; i++)
        if (!rows[i].info.is_text)
            *field_of(p, &rows[i]) = rows[i].info.def;
    _Static_assert(sizeof OCCLUDERS_DEFAULT <= ENGINE_USAGE_PATTERN_MAX + 1,
                   "the default occluder pattern fits");
    memcpy(p->occluder_pattern, OCCLUDERS_DEFAULT, sizeof OCCLUDERS_DEFAULT);
}

static sl_status check_pattern(const char *pat, size_t len, sl_error *err)
{
    sl_error e;
    sl_error_clear(&e);
    if (len == 0 || len > ENGINE_USAGE_PATTERN_MAX)
        return sl_error_set_at(err, SL_EINVAL, "occluder_pattern", -1,
                               "occluder_pattern must be 1 to %u bytes long, not %zu",
                               ENGINE_USAGE_PATTERN_MAX, len);
    if (schema_utf8_check("occluder_pattern", pat, len, &e) != SL_OK ||
        schema_catalog_pattern_check(pat, len, &e) != SL_OK)
        return sl_error_set_at(err, SL_EINVAL, "occluder_pattern", -1, "occluder_pattern: %s",
                               e.message);
    return SL_OK;
}

sl_status engine_usage_params_check(const engine_usage_params *p, sl_error *err)
{
    sl_status rc = SL_OK;
    for (size_t i = 0; i < NROWS && rc == SL_OK; i++) {
        const engine_usage_param_info *f = &rows[i].info;
        if (f->is_text) {
            size_t len = strnlen(p->occluder_pattern, sizeof p->occluder_pattern);
            if (len == sizeof p->occluder_pattern)
                rc = sl_error_set_at(err, SL_EINVAL, f->name, -1, "%s is not terminated", f->name);
            else
                rc = check_pattern(p->occluder_pattern, len, err);
            continue;
        }
        int64_t v = *field_of((engine_usage_params *)p, &rows[i]);
        if (v < f->min || v > f->max)
            rc = sl_error_set_at(err, SL_EINVAL, f->name, -1, "%s must be %lld to %lld, not %lld",
                                 f->name, (long long)f->min, (long long)f->max, (long long)v);
    }
    return rc;
}

sl_status engine_usage_param_set(engine_usage_params *p, const char *name, const char *value,
                                 sl_error *err)
{
    sl_status rc = SL_OK;
    const row *r = NULL;
    for (size_t i = 0; i < NROWS && !r; i++)
        if (!strcmp(rows[i].info.name, name))
            r = &rows[i];
    if (!r) {
        rc = sl_error_set_at(err, SL_EINVAL, name, -1,
                             "no analysis parameter \"%.64s\" (engine_usage_params_help lists "
                             "them)",
                             name);
        goto out;
    }
    if (r->info.is_text) {
        size_t len = strlen(value);
        if ((rc = check_pattern(value, len, err)) == SL_OK)
            memcpy(p->occluder_pattern, value, len + 1);
        goto out;
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (!value[0] || *end || errno || value[0] == ' ' || value[0] == '+' || v < r->info.min ||
        v > r->info.max) {
        rc = sl_error_set_at(err, SL_EINVAL, r->info.name, -1,
                             "%s must be an integer from %lld to %lld, not \"%.32s\"", r->info.name,
                             (long long)r->info.min, (long long)r->info.max, value);
        goto out;
    }
    *field_of(p, r) = v;
out:
    return rc;
}

void engine_usage_params_help(FILE *out)
{
    for (size_t i = 0; i < NROWS; i++) {
        const engine_usage_param_info *f = &rows[i].info;
        if (f->is_text)
            fprintf(out, "  %-22s %s\n  %-22s (default %s)\n", f->name, f->help, "",
                    OCCLUDERS_DEFAULT);
        else
            fprintf(out, "  %-22s %s\n  %-22s (%lld..%lld, default %lld)\n", f->name, f->help, "",
                    (long long)f->min, (long long)f->max, (long long)f->def);
    }
}

/* ms at fps in whole frames, rounded up, at least one. */
static int64_t frames_of(int64_t ms, double fps)
{
    double f = ceil((double)ms * fps / 1000.0 - 1e-9);
    return f < 1 ? 1 : f > 1e15 ? (int64_t)1e15 : (int64_t)f;
}

void engine__usage_cfg_from_params(const engine_usage_params *p, double fps, engine__usage_cfg *cfg)
{
    cfg->open_frames = frames_of(p->open_ms, fps);
    cfg->leave_frames = frames_of(p->leave_ms, fps);
    cfg->return_frames = frames_of(p->return_ms, fps);
    /* 0 ms: every relocation is a departure */
    cfg->move_frames = p->move_ms ? frames_of(p->move_ms, fps) : 0;
    cfg->off_frames = frames_of(p->off_ms, fps);
    cfg->iou_min = p->iou_min_micro;
    cfg->centroid_max = p->centroid_max_micro;
    cfg->min_confidence = p->min_confidence_micro;
    cfg->min_fill = p->min_fill_micro;
    cfg->occlusion = p->occlusion_micro;
    cfg->tracks_max = (size_t)p->tracks_max;
}
