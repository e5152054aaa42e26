/* frame.c -- the packed detection records of frame documents: written by
 * ingest, read by engine and api, so the byte layout lives here, once. */
#include "schema.h"

#include <string.h>

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_i32(uint8_t *p, int32_t v)
{
    uint32_t u = (uint32_t)v;
    p[0] = (uint8_t)u;
    p[1] = (uint8_t)(u >> 8);
    p[2] = (uint8_t)(u >> 16);
    p[3] = (uint8_t)(u >> 24);
}

static int32_t get_i32(const uint8_t *p)
{
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24);
}

void schema_frame_det_pack(uint8_t out[SCHEMA_FRAME_DET_SIZE], const schema_frame_det *d)
{
    put_u16(out, d->label);
    put_i32(out + 2, d->confidence);
    put_i32(out + 6, d->x);
    put_i32(out + 10, d->y);
    put_i32(out + 14, d->w);
    put_i32(out + 18, d->h);
}

sl_status schema_frame_det_unpack(const uint8_t *det, size_t det_len, size_t i, uint32_t nlabels,
                                  schema_frame_det *out, sl_error *err)
{
    sl_status rc = SL_OK;
    if (det_len % SCHEMA_FRAME_DET_SIZE != 0) {
        rc = sl_error_set_at(err, SL_ECORRUPT, SCHEMA_F_FRAME_DET, -1,
                             "frame det is %zu bytes, not a multiple of %u", det_len,
                             SCHEMA_FRAME_DET_SIZE);
        goto out;
    }
    if (i >= det_len / SCHEMA_FRAME_DET_SIZE) {
        rc = sl_error_set_at(err, SL_ECORRUPT, SCHEMA_F_FRAME_DET, -1,
                             "frame det has %zu records; record %zu asked",
                             det_len / SCHEMA_FRAME_DET_SIZE, i);
        goto out;
    }
    const uint8_t *p = det + i * SCHEMA_FRAME_DET_SIZE;
    schema_frame_det d = {.label = (uint16_t)(p[0] | p[1] << 8),
                          .confidence = get_i32(p + 2),
                          .x = get_i32(p + 6),
                          .y = get_i32(p + 10),
                          .w = get_i32(p + 14),
                          .h = get_i32(p + 18)};
    if (d.label >= nlabels) {
        rc = sl_error_set_at(err, SL_ECORRUPT, SCHEMA_F_FRAME_DET, -1,
                             "frame det record %zu names label %u of %u", i, d.label, nlabels);
        goto out;
    }
    const int32_t v[5] = {d.confidence, d.x, d.y, d.w, d.h};
    for (int k = 0; rc == SL_OK && k < 5; k++)
        if (v[k] < 0 || v[k] > 1000000)
            rc = sl_error_set_at(err, SL_ECORRUPT, SCHEMA_F_FRAME_DET, -1,
                                 "frame det record %zu holds %d, outside 0..1000000", i, v[k]);
    if (rc == SL_OK)
        *out = d;
out:
    return rc;
}
