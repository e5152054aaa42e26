/* surgery.c -- the transitions of a surgery's life cycle (engine.h,
 * "Surgery life cycle"): read the META document, check the event is allowed
 * from its status, write it back with the new status fields, fenced on the
 * version read. */
#include "engine_int.h"

#include <stdio.h>
#include <string.h>

#define TRANSITION_RETRIES 8 /* against writes racing in (a PUT of the description) */

/* The surgery's META document into *out (the caller destroys it). */
static sl_status read_doc(store *s, const char *tenant, const char *surgery, bson_t **out,
                          sl_error *err)
{
    schema_key pk;
    sl_error e;
    sl_error_clear(&e);
    sl_status rc = schema_pk_surgery(pk, tenant, surgery, err);
    if (rc == SL_OK && (rc = store_get(s, STORE_ITEMS, pk, SCHEMA_SK_META, out, &e)) != SL_OK) {
        if (rc == SL_ENOTFOUND)
            rc = sl_error_set_at(err, SL_ENOTFOUND, "surgery", -1,
                                 "no surgery \"%s\" in tenant \"%s\"", surgery, tenant);
        else
            rc = sl_error_set_at(err, rc, e.field, e.offset, "%s", e.message);
    }
    return rc;
}

static sl_status life_of(const bson_t *doc, const char *surgery, schema_surgery_life *out,
                         sl_error *err)
{
    sl_error e;
    sl_error_clear(&e);
    sl_status rc = schema_surgery_life_from_bson(doc, out, &e);
    if (rc != SL_OK)
        rc = sl_error_set_at(err, rc, e.field, -1, "surgery \"%s\": %s", surgery, e.message);
    return rc;
}

sl_status engine_surgery_life_get(store *s, const char *tenant, const char *surgery,
                                  schema_surgery_life *out, int64_t *version, sl_error *err)
{
    bson_t *doc = NULL;
    schema_surgery_life l;
    sl_status rc = read_doc(s, tenant, surgery, &doc, err);
    if (rc == SL_OK && (rc = life_of(doc, surgery, &l, err)) == SL_OK) {
        bson_iter_t it;
        *out = l;
        if (version)
            *version = bson_iter_init_find(&it, doc, SCHEMA_F_VERSION) && BSON_ITER_HOLDS_INT64(&it)
                           ? bson_iter_int64(&it)
                           : 0;
    }
    if (doc)
        bson_destroy(doc);
    return rc;
}

/* Whether ev may happen in status st, and what to say when not. */
static const char *refusal(engine_surgery_event ev, schema_surgery_status st)
{
    switch (ev) {
    case ENGINE_SURGERY_CLOSE:
        return st == SCHEMA_SURGERY_OPEN ? NULL : "only an open surgery can be closed";
    case ENGINE_SURGERY_REQUEUE:
        if (st == SCHEMA_SURGERY_ANALYZED || st == SCHEMA_SURGERY_FAILED)
            return NULL;
        return st == SCHEMA_SURGERY_OPEN ? "close it first (its detections may still change)"
                                         : "its analysis is already queued or running";
    case ENGINE_SURGERY_ANALYZED:
    case ENGINE_SURGERY_FAILED:
        return st == SCHEMA_SURGERY_CLOSED
                   ? NULL
                   : "only a closed surgery (analysis queued or running) ends an analysis";
    }
    return "unknown transition";
}

/* Copies why into out, at most SCHEMA_ANALYSIS_ERROR_MAX bytes, cut at a
 * character boundary and at a NUL. */
static void copy_reason(char out[SCHEMA_ANALYSIS_ERROR_MAX + 1], const char *why)
{
    size_t n = strlen(why);
    if (n > SCHEMA_ANALYSIS_ERROR_MAX) {
        n = SCHEMA_ANALYSIS_ERROR_MAX;
        while (n > 0 && ((unsigned char)why[n] & 0xc0) == 0x80)
            n--;
    }
    n = schema_utf8_valid_prefix(why, n);
    memcpy(out, why, n);
    out[n] = '\0';
}

/* The new document: doc's fields but `v` and the life cycle's, in order,
 * then the life cycle (ingest writes it last too). */
static sl_status rebuild(const bson_t *doc, const schema_surgery_life *l, bson_t *out,
                         sl_error *err)
{
    bson_copy_to_excluding_noinit(doc, out, SCHEMA_F_VERSION, SCHEMA_F_STATUS, SCHEMA_F_CLOSED_MS,
                                  SCHEMA_F_ANALYZED_MS, SCHEMA_F_ANALYSIS_ERROR, NULL);
    if (!schema_surgery_life_append(out, l))
        return sl_error_set(err, SL_ETOOLARGE, "surgery does not fit in a document");
    return SL_OK;
}

sl_status engine_surgery_transition(store *s, const char *tenant, const char *surgery,
                                    engine_surgery_event ev, int64_t now_ms, const char *why,
                                    schema_surgery_life *out, sl_error *err)
{
    sl_status rc = SL_OK;
    schema_surgery_life l;
    if (now_ms <= 0)
        now_ms = engine__now_ms();
    if (ev == ENGINE_SURGERY_FAILED && (!why || !why[0]))
        return sl_error_set_at(err, SL_EINVAL, SCHEMA_F_ANALYSIS_ERROR, -1,
                               "a failed analysis says why");
    for (int attempt = 0; attempt < TRANSITION_RETRIES; attempt++) {
        bson_t *doc = NULL, next = BSON_INITIALIZER;
        bson_iter_t it;
        int64_t v = 0;
        if ((rc = read_doc(s, tenant, surgery, &doc, err)) != SL_OK ||
            (rc = life_of(doc, surgery, &l, err)) != SL_OK)
            goto next;
        const char *no = refusal(ev, l.status);
        if (no) {
            rc = sl_error_set_at(err, SL_ECONFLICT, SCHEMA_F_STATUS, -1, "surgery \"%s\" is %s: %s",
                                 surgery, schema_surgery_status_name(l.status), no);
            if (out)
                *out = l;
            goto next;
        }
        switch (ev) {
        case ENGINE_SURGERY_CLOSE:
            l.status = SCHEMA_SURGERY_CLOSED;
            l.closed_ms = now_ms;
            break;
        case ENGINE_SURGERY_REQUEUE:
            l.status = SCHEMA_SURGERY_CLOSED; /* closed_ms stays: the first close */
            l.analysis_error[0] = '\0';       /* set only while failed */
            break;
        case ENGINE_SURGERY_ANALYZED:
            l.status = SCHEMA_SURGERY_ANALYZED;
            l.analyzed_ms = now_ms;
            l.analysis_error[0] = '\0';
            break;
        case ENGINE_SURGERY_FAILED:
            l.status = SCHEMA_SURGERY_FAILED;
            l.analyzed_ms = now_ms;
            copy_reason(l.analysis_error, why);
            break;
        }
        if (bson_iter_init_find(&it, doc, SCHEMA_F_VERSION) && BSON_ITER_HOLDS_INT64(&it))
            v = bson_iter_int64(&it);
        if ((rc = rebuild(doc, &l, &next, err)) == SL_OK) {
            sl_error e;
            sl_error_clear(&e);
            rc = store_put(s, STORE_ITEMS, &next, (store_cond){STORE_COND_VERSION, v}, NULL, &e);
            if (rc != SL_OK && rc != SL_ECONDITION)
                sl_error_set_at(err, rc, e.field, e.offset, "%s", e.message);
        }
    next:
        bson_destroy(&next);
        if (doc)
            bson_destroy(doc);
        if (rc != SL_ECONDITION)
            break;
    }
    if (rc == SL_ECONDITION)
        rc = sl_error_set(err, SL_EBUSY,
                          "surgery \"%s\" kept changing while its status was set; "
                          "retry",
                          surgery);
    if (rc == SL_OK && out)
        *out = l;
    return rc;
}
