/* surgery.c -- the life-cycle fields of a surgery document (schema.h, "A
 * surgery's life cycle"): ingest keeps them across a PUT and refuses
 * detections unless open, the engine's transitions change them, the API
 * shows them; all read and write them here. */
#include "schema.h"

#include <string.h>

static const char *const status_names[] = {
    [SCHEMA_SURGERY_OPEN] = "open",
    [SCHEMA_SURGERY_CLOSED] = "closed",
    [SCHEMA_SURGERY_ANALYZED] = "analyzed",
    [SCHEMA_SURGERY_FAILED] = "failed",
};
#define STATUS_N (sizeof status_names / sizeof status_names[0])

const char *schema_surgery_status_name(schema_surgery_status s)
{
    return (size_t)s < STATUS_N && status_names[s] ? status_names[s] : "?";
}

sl_status schema_surgery_status_parse(const char *s, size_t len, schema_surgery_status *out,
                                      sl_error *err)
{
    for (size_t i = 1; i < STATUS_N; i++)
        if (strlen(status_names[i]) == len && !memcmp(status_names[i], s, len)) {
            *out = (schema_surgery_status)i;
            return SL_OK;
        }
    return sl_error_set_at(err, SL_EINVAL, SCHEMA_F_STATUS, -1,
                           "status is open, closed, analyzed or failed, not \"%.*s\"",
                           len > 40 ? 40 : (int)len, s);
}

void schema_surgery_life_init(schema_surgery_life *l)
{
    memset(l, 0, sizeof *l);
    l->status = SCHEMA_SURGERY_OPEN;
}

static sl_status bad(sl_error *err, const char *field, const char *why)
{
    return sl_error_set_at(err, SL_ECORRUPT, field, -1, "surgery document: %s %s", field, why);
}

/* An int64 time field: *ms, or SL_ECORRUPT.  Absent is 0 when optional. */
static sl_status time_field(const bson_t *doc, const char *field, bool required, int64_t *ms,
                            sl_error *err)
{
    bson_iter_t it;
    *ms = 0;
    if (!bson_iter_init_find(&it, doc, field))
        return required ? bad(err, field, "is missing") : SL_OK;
    if (!BSON_ITER_HOLDS_INT64(&it))
        return bad(err, field, "is not an int64");
    *ms = bson_iter_int64(&it);
    return *ms < 0 ? bad(err, field, "is negative") : SL_OK;
}

sl_status schema_surgery_life_from_bson(const bson_t *doc, schema_surgery_life *out, sl_error *err)
{
    sl_status rc = SL_OK;
    schema_surgery_life l;
    bson_iter_t it;
    uint32_t len = 0;
    schema_surgery_life_init(&l);
    if (!bson_iter_init_find(&it, doc, SCHEMA_F_STATUS)) {
        rc = bad(err, SCHEMA_F_STATUS, "is missing");
        goto out;
    }
    if (!BSON_ITER_HOLDS_UTF8(&it)) {
        rc = bad(err, SCHEMA_F_STATUS, "is not a string");
        goto out;
    }
    const char *s = bson_iter_utf8(&it, &len);
    sl_error e;
    sl_error_clear(&e);
    if (schema_surgery_status_parse(s, len, &l.status, &e) != SL_OK) {
        rc = sl_error_set_at(err, SL_ECORRUPT, SCHEMA_F_STATUS, -1, "surgery document: %s",
                             e.message);
        goto out;
    }
    if ((rc = time_field(doc, SCHEMA_F_CLOSED_MS, true, &l.closed_ms, err)) != SL_OK ||
        (rc = time_field(doc, SCHEMA_F_ANALYZED_MS, false, &l.analyzed_ms, err)) != SL_OK)
        goto out;
    if (bson_iter_init_find(&it, doc, SCHEMA_F_ANALYSIS_ERROR)) {
        const char *m = BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, &len) : NULL;
        if (!m || len > SCHEMA_ANALYSIS_ERROR_MAX ||
            schema_utf8_check(SCHEMA_F_ANALYSIS_ERROR, m, len, NULL) != SL_OK ||
            memchr(m, '\0', len)) {
            rc = bad(err, SCHEMA_F_ANALYSIS_ERROR, "is not a string of at most 511 bytes of UTF-8");
            goto out;
        }
        memcpy(l.analysis_error, m, len);
        l.analysis_error[len] = '\0';
    }
    *out = l;
out:
    return rc;
}

bool schema_surgery_life_append(bson_t *doc, const schema_surgery_life *l)
{
    return BSON_APPEND_UTF8(doc, SCHEMA_F_STATUS, schema_surgery_status_name(l->status)) &&
           BSON_APPEND_INT64(doc, SCHEMA_F_CLOSED_MS, l->closed_ms) &&
           BSON_APPEND_INT64(doc, SCHEMA_F_ANALYZED_MS, l->analyzed_ms) &&
           BSON_APPEND_UTF8(doc, SCHEMA_F_ANALYSIS_ERROR, l->analysis_error);
}
