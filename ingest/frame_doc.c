/* frame_doc.c -- the frame document: detections packed as fixed-size records
 * (schema/frame.c) beside the frame's distinct labels and SKUs. */
#include "ingest_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Packed, 25 detections take ~0.9 KB instead of ~2.8 KB of nested BSON and
 * encode with a handful of appends (measured: docs/documents.md). */

int32_t ingest__micro(double v)
{
    /* Inputs are checked to lie in [0, 1]; the clamp only guards rounding. */
    long long m = llround(v * 1e6);
    return (int32_t)(m < 0 ? 0 : m > INGEST_MICRO_ONE ? INGEST_MICRO_ONE : m);
}

/* A box's corner and size along one axis in micro-units, cut at the image's
 * edge there: rounded apart, a box the parser cut at the edge (pos + size
 * == 1 as doubles) could pass it by one micro-unit (0.9399995 + 0.0600005
 * -> 940000 + 60001), which no reader takes back (docs/formats.md, Boxes). */
static void box_axis(double pos, double size, int32_t *p, int32_t *s)
{
    int32_t a = ingest__micro(pos), b = ingest__micro(size);
    if (a + b > INGEST_MICRO_ONE)
        b = INGEST_MICRO_ONE - a; /* >= 1: ingest__box_set left size >= 1e-6 inside the image */
    *p = a;
    *s = b;
}

/* Makes e's scratch big enough (owned by e, freed by ingest__frame_enc_free). */
static sl_status grow(ingest__frame_enc *e, uint32_t nlabels, size_t dets, sl_error *err)
{
    sl_status rc = SL_OK;
    if (nlabels > e->cap) {
        uint32_t cap = e->cap ? e->cap : 64;
        while (cap < nlabels)
            cap *= 2;
        uint32_t *stamp = realloc(e->stamp, sizeof *stamp * cap);
        if (stamp)
            e->stamp = stamp;
        uint16_t *local = realloc(e->local, sizeof *local * cap);
        if (local)
            e->local = local;
        uint32_t *order = realloc(e->order, sizeof *order * cap);
        if (order)
            e->order = order;
        if (!stamp || !local || !order) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory encoding a frame");
            goto out;
        }
        memset(e->stamp + e->cap, 0, sizeof *e->stamp * (cap - e->cap));
        e->cap = cap;
    }
    size_t need = dets * SCHEMA_FRAME_DET_SIZE;
    if (need > e->det_cap) {
        size_t cap = e->det_cap ? e->det_cap : 4096;
        while (cap < need)
            cap *= 2;
        uint8_t *d = realloc(e->det, cap);
        if (!d) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory encoding a frame");
            goto out;
        }
        e->det = d;
        e->det_cap = cap;
    }
out:
    return rc;
}

sl_status ingest__frame_doc(ingest__frame_enc *e, bson_t *doc, const char *pk,
                            const ingest_frame *f, uint32_t nlabels, const char *const *names,
                            const char *const *skus, sl_error *err)
{
    schema_key sk;
    sl_status rc = grow(e, nlabels, f->count, err);
    if (rc != SL_OK || (rc = schema_sk_frame(sk, f->frame, err)) != SL_OK)
        goto out;
    if (++e->gen == 0) { /* wrapped: forget every stamp */
        memset(e->stamp, 0, sizeof *e->stamp * e->cap);
        e->gen = 1;
    }
    uint32_t nlocal = 0;
    for (uint32_t i = 0; i < f->count; i++) {
        const ingest_detection *d = &f->detections[i];
        uint32_t id = d->label_id;
        if (e->stamp[id] != e->gen) {
            e->stamp[id] = e->gen;
            e->local[id] = (uint16_t)nlocal;
            e->order[nlocal++] = id;
        }
        schema_frame_det r = {.label = e->local[id], .confidence = ingest__micro(d->confidence)};
        box_axis(d->x, d->w, &r.x, &r.w);
        box_axis(d->y, d->h, &r.y, &r.h);
        schema_frame_det_pack(e->det + (size_t)i * SCHEMA_FRAME_DET_SIZE, &r);
    }
    bson_t arr;
    char idx[16];
    const char *key;
    bool ok = BSON_APPEND_UTF8(doc, SCHEMA_F_PK, pk) && BSON_APPEND_UTF8(doc, SCHEMA_F_SK, sk) &&
              BSON_APPEND_UTF8(doc, SCHEMA_F_TYPE, SCHEMA_TYPE_FRAME) &&
              BSON_APPEND_INT64(doc, SCHEMA_F_FRAME, f->frame) &&
              BSON_APPEND_INT32(doc, SCHEMA_F_FRAME_N, (int32_t)f->count);
    ok = ok && BSON_APPEND_ARRAY_BEGIN(doc, SCHEMA_F_FRAME_LABELS, &arr);
    for (uint32_t i = 0; ok && i < nlocal; i++) {
        bson_uint32_to_string(i, &key, idx, sizeof idx);
        ok = bson_append_utf8(&arr, key, -1, names[e->order[i]], -1);
    }
    ok = ok && bson_append_array_end(doc, &arr);
    ok = ok && BSON_APPEND_ARRAY_BEGIN(doc, SCHEMA_F_FRAME_SKUS, &arr);
    for (uint32_t i = 0; ok && i < nlocal; i++) {
        bson_uint32_to_string(i, &key, idx, sizeof idx);
        const char *sku = skus[e->order[i]];
        ok = sku ? bson_append_utf8(&arr, key, -1, sku, -1) : bson_append_null(&arr, key, -1);
    }
    ok = ok && bson_append_array_end(doc, &arr);
    ok = ok && bson_append_binary(doc, SCHEMA_F_FRAME_DET, -1, BSON_SUBTYPE_BINARY, e->det,
                                  (uint32_t)((size_t)f->count * SCHEMA_FRAME_DET_SIZE));
    if (!ok)
        rc = sl_error_set(err, SL_ETOOLARGE, "frame %u does not fit in a document", f->frame);
out:
    return rc;
}

void ingest__frame_enc_free(ingest__frame_enc *e)
{
    free(e->stamp);
    free(e->local);
    free(e->order);
    free(e->det);
    memset(e, 0, sizeof *e);
}
