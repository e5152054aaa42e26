/* surgery.c -- the surgery META document of PUT /v1/surgeries/{id}: body
 * validation and encoding, and the write that keeps a surgery's life cycle
 * (schema.h, "A surgery's life cycle": a PUT never reopens a surgery nor
 * touches its analysis; only the engine's transitions change them). */
#include "ingest_int.h"

#include <stdio.h>
#include <string.h>

#define TEXT_MAX       256u   /* room, surgeon */
#define FRAME_SIDE_MAX 100000 /* pixels */
#define PUT_RETRIES    8      /* against a concurrent close */

sl_status ingest_surgery_doc(const char *tenant, const char *surgery, const void *json, size_t len,
                             const bson_t *existing, const ingest_limits *lim, bson_t **out,
                             sl_error *err)
{
    sl_status rc;
    ingest__tree *t = NULL;
    bson_t *doc = NULL;
    schema_key pk, gpk, gsk;
    if ((rc = schema_pk_surgery(pk, tenant, surgery, err)) != SL_OK)
        goto out;
    if ((rc = ingest__tree_parse(json, len, lim, &t, err)) != SL_OK)
        goto out;
    const ingest__jnode *root = ingest__tree_root(t), *table = NULL;
    const char *hospital = NULL, *room = NULL, *procedure = NULL, *surgeon = NULL,
               *started_at = NULL;
    double fps = 0;
    int64_t width = 0, height = 0, started_ms = 0;
    if ((rc = ingest__body_object(t, root, "a surgery", err)) ||
        (rc = ingest__tree_component(t, root, SCHEMA_F_HOSPITAL, true, &hospital, err)) ||
        (rc = ingest__tree_string(t, root, "room", true, TEXT_MAX, &room, err)) ||
        (rc = ingest__tree_component(t, root, SCHEMA_F_PROCEDURE, true, &procedure, err)) ||
        (rc = ingest__tree_string(t, root, "surgeon", true, TEXT_MAX, &surgeon, err)) ||
        (rc = ingest__tree_string(t, root, "started_at", true, 64, &started_at, err)) ||
        (rc = ingest__tree_double(t, root, SCHEMA_F_FPS, true, 0, SCHEMA_FPS_MAX, &fps, err)) ||
        (rc = ingest__tree_int(t, root, "frame_width", true, 1, FRAME_SIDE_MAX, &width, err)) ||
        (rc = ingest__tree_int(t, root, "frame_height", true, 1, FRAME_SIDE_MAX, &height, err)) ||
        (rc = ingest__tree_typed(t, root, SCHEMA_F_TABLE, true, INGEST__T_ARRAY, &table, err)))
        goto out;
    if (fps <= 0) {
        rc = ingest__tree_fail(t, ingest__tree_get(root, SCHEMA_F_FPS), err, SL_EINVAL,
                               "fps must be above 0");
        goto out;
    }
    sl_error te;
    sl_error_clear(&te);
    if (schema_time_parse(started_at, &started_ms, &te) != SL_OK) {
        rc = ingest__tree_fail(t, ingest__tree_get(root, "started_at"), err, te.status, "%s",
                               te.message);
        goto out;
    }
    if (table->count < SCHEMA_TABLE_POINTS_MIN || table->count > SCHEMA_TABLE_POINTS_MAX) {
        rc = ingest__tree_fail(t, table, err, SL_EINVAL,
                               "table is a polygon of %u to %u points [x, y], not %u points",
                               SCHEMA_TABLE_POINTS_MIN, SCHEMA_TABLE_POINTS_MAX, table->count);
        goto out;
    }
    for (const ingest__jnode *p = table->first; p; p = p->next) {
        if (p->type != INGEST__T_ARRAY || p->count != 2) {
            rc = ingest__tree_fail(t, p, err, SL_EINVAL,
                                   "each table point is [x, y] in normalized image coordinates");
            goto out;
        }
        double v;
        for (const ingest__jnode *c = p->first; c; c = c->next)
            if ((rc = ingest__tree_node_double(t, c, 0, 1, &v, err)) != SL_OK)
                goto out;
    }
    char canon[25], date[11];
    schema_time_format(started_ms, canon);
    memcpy(date, canon, 10);
    date[10] = '\0';
    if ((rc = schema_pk_hospital(gpk, tenant, hospital, err)) != SL_OK ||
        (rc = schema_sk_surgery_date(gsk, date, surgery, err)) != SL_OK)
        goto out;

    /* A PUT replaces the description, never the life cycle. */
    schema_surgery_life life;
    schema_surgery_life_init(&life);
    if (existing) {
        sl_error le;
        sl_error_clear(&le);
        if (schema_surgery_life_from_bson(existing, &life, &le) != SL_OK) {
            rc = sl_error_set_at(err, le.status, le.field, -1,
                                 "the stored surgery \"%s\" cannot be replaced: %s", surgery,
                                 le.message);
            goto out;
        }
    }

    doc = bson_new();
    bson_t arr;
    char idx[16];
    const char *key;
    bool ok =
        BSON_APPEND_UTF8(doc, SCHEMA_F_PK, pk) &&
        BSON_APPEND_UTF8(doc, SCHEMA_F_SK, SCHEMA_SK_META) &&
        BSON_APPEND_UTF8(doc, SCHEMA_F_GSI1PK, gpk) &&
        BSON_APPEND_UTF8(doc, SCHEMA_F_GSI1SK, gsk) &&
        BSON_APPEND_UTF8(doc, SCHEMA_F_TYPE, SCHEMA_TYPE_SURGERY) &&
        BSON_APPEND_UTF8(doc, SCHEMA_F_TENANT, tenant) &&
        BSON_APPEND_UTF8(doc, SCHEMA_F_SURGERY, surgery) &&
        BSON_APPEND_UTF8(doc, SCHEMA_F_HOSPITAL, hospital) && BSON_APPEND_UTF8(doc, "room", room) &&
        BSON_APPEND_UTF8(doc, SCHEMA_F_PROCEDURE, procedure) &&
        BSON_APPEND_UTF8(doc, "surgeon", surgeon) && BSON_APPEND_UTF8(doc, "started_at", canon) &&
        BSON_APPEND_INT64(doc, SCHEMA_F_STARTED_MS, started_ms) &&
        BSON_APPEND_DOUBLE(doc, SCHEMA_F_FPS, fps) &&
        BSON_APPEND_INT32(doc, "frame_width", (int32_t)width) &&
        BSON_APPEND_INT32(doc, "frame_height", (int32_t)height) &&
        BSON_APPEND_ARRAY_BEGIN(doc, SCHEMA_F_TABLE, &arr);
    uint32_t i = 0;
    for (const ingest__jnode *p = table->first; ok && p; p = p->next, i++) {
        bson_uint32_to_string(i, &key, idx, sizeof idx);
        ok = ingest__bson_numbers(&arr, key, p);
    }
    ok = ok && bson_append_array_end(doc, &arr) && schema_surgery_life_append(doc, &life);
    if (!ok)
        rc = sl_error_set(err, SL_ETOOLARGE, "surgery does not fit in a document");
out:
    return ingest__body_done(rc, &t, doc, out);
}

sl_status ingest_surgery_write(store *s, const char *tenant, const char *surgery, const void *json,
                               size_t len, store_put_result *res, bson_t **written, sl_error *err)
{
    schema_key pk;
    bson_t *kept = NULL;
    store_put_result r = {0, 0};
    sl_status rc = schema_pk_surgery(pk, tenant, surgery, err);
    /* Read, rebuild keeping the status, write if the version did not move:
     * a close racing with this PUT is neither lost nor undone. */
    for (int attempt = 0; rc == SL_OK && attempt < PUT_RETRIES; attempt++) {
        bson_t *existing = NULL, *doc = NULL;
        sl_error e;
        sl_error_clear(&e);
        rc = store_get(s, STORE_ITEMS, pk, SCHEMA_SK_META, &existing, &e);
        if (rc != SL_OK && rc != SL_ENOTFOUND) {
            sl_error_set_at(err, e.status, e.field, e.offset, "%s", e.message);
            break;
        }
        store_cond cond = {STORE_COND_NOT_EXISTS, 0};
        bson_iter_t it;
        if (existing && bson_iter_init_find(&it, existing, SCHEMA_F_VERSION) &&
            BSON_ITER_HOLDS_INT64(&it))
            cond = (store_cond){STORE_COND_VERSION, bson_iter_int64(&it)};
        rc = ingest_surgery_doc(tenant, surgery, json, len, existing, NULL, &doc, err);
        if (rc == SL_OK) {
            sl_error_clear(&e);
            rc = store_put(s, STORE_ITEMS, doc, cond, &r, &e);
            if (rc != SL_OK && rc != SL_ECONDITION)
                sl_error_set_at(err, e.status, e.field, e.offset, "%s", e.message);
        }
        if (existing)
            bson_destroy(existing);
        if (rc == SL_OK) {
            kept = doc;
            doc = NULL;
        }
        if (doc)
            bson_destroy(doc);
        if (rc != SL_ECONDITION)
            break;
        rc = SL_OK; /* someone wrote in between: read again */
        if (attempt + 1 == PUT_RETRIES)
            rc = sl_error_set(err, SL_EBUSY, "surgery %s kept changing while it was written; retry",
                              surgery);
    }
    if (rc == SL_OK) {
        if (res)
            *res = r;
        if (written) {
            *written = kept;
            kept = NULL;
        }
    }
    if (kept)
        bson_destroy(kept);
    return rc;
}

sl_status ingest_surgery_put(store *s, const char *tenant, const char *surgery, const void *json,
                             size_t len, store_put_result *res, sl_error *err)
{
    return ingest_surgery_write(s, tenant, surgery, json, len, res, NULL, err);
}
