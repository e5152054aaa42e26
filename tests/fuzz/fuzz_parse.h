/* fuzz_parse.h -- what every parser fuzz target does: parse the input whole,
 * then again in pieces of 1..13 bytes (the split chosen by the input), and
 * trap when the outcomes differ (status, offset, field, frames, detections)
 * or when an emitted frame breaks the normalized shape (labels strict UTF-8). */
#ifndef SIGHTLINE_FUZZ_PARSE_H
#define SIGHTLINE_FUZZ_PARSE_H

#include "ingest/ingest.h"

#include <stdint.h>
#include <string.h>

typedef struct fuzz_outcome {
    sl_status rc;
    int64_t offset;
    char field[160];
    uint64_t frames, detections, sum; /* sum mixes frame numbers and boxes */
} fuzz_outcome;

static sl_status fuzz_on_frame(void *ctx, const ingest_frame *f, sl_error *err)
{
    fuzz_outcome *o = ctx;
    (void)err;
    o->frames++;
    o->detections += f->count;
    o->sum = o->sum * 31 + f->frame;
    for (uint32_t i = 0; i < f->count; i++) {
        const ingest_detection *d = &f->detections[i];
        if (!(d->confidence >= 0 && d->confidence <= 1 && d->x >= 0 && d->y >= 0 && d->w > 0 &&
              d->h > 0 && d->x + d->w <= 1 + 1e-9 && d->y + d->h <= 1 + 1e-9) ||
            !d->label || !d->label[0])
            __builtin_trap();
        /* Labels are strict UTF-8 (issue 9: yajl's own check let overlong
         * forms and surrogates by). */
        if (schema_utf8_valid_prefix(d->label, strlen(d->label)) != strlen(d->label))
            __builtin_trap();
        o->sum = o->sum * 31 + (uint64_t)(d->x * 1e6) + d->label_id;
    }
    return SL_OK;
}

static void fuzz_parse_once(const ingest_parse_options *opt, const uint8_t *data, size_t size,
                            size_t piece, fuzz_outcome *o)
{
    ingest_parser *p = NULL;
    sl_error e;
    sl_error_clear(&e);
    memset(o, 0, sizeof *o);
    o->rc = ingest_parser_new(opt, fuzz_on_frame, o, &p, &e);
    for (size_t at = 0; o->rc == SL_OK && at < size;) {
        size_t n = piece && size - at > piece ? piece : size - at;
        o->rc = ingest_parser_feed(p, data + at, n, &e);
        at += n;
    }
    if (o->rc == SL_OK)
        o->rc = ingest_parser_finish(p, &e);
    ingest_parser_free(&p);
    if (o->rc != SL_OK) {
        if (e.status != o->rc || !e.message[0])
            __builtin_trap(); /* every refusal says why */
        o->offset = e.offset;
        memcpy(o->field, e.field, sizeof o->field);
        o->frames = o->detections = o->sum = 0; /* a refused input counts nothing */
    }
}

static void fuzz_parse(const ingest_parse_options *opt, const uint8_t *data, size_t size)
{
    fuzz_outcome whole, split;
    fuzz_parse_once(opt, data, size, 0, &whole);
    size_t piece = 1 + (size ? data[size / 2] % 13 : 0);
    fuzz_parse_once(opt, data, size, piece, &split);
    if (whole.rc != split.rc || whole.offset != split.offset ||
        strcmp(whole.field, split.field) != 0 || whole.frames != split.frames ||
        whole.detections != split.detections || whole.sum != split.sum)
        __builtin_trap();
}

#endif
