/* ndjson.c -- Sightline NDJSON frames, one per line, the shape the frames API
 * answers: {"frame", "detections": [{"label", "confidence", "box"}]}. */
#include "ingest_int.h"

#include <string.h>

/* A "sku" member is accepted and ignored (the catalog decides); boxes are
 * already normalized and must lie inside the image (docs/formats.md): x + w
 * and y + h at most 1 and one micro-unit (the rounding of six decimals),
 * compared in the micro-units boxes are stored in -- as doubles, 0.999998 +
 * 0.000003 passes 1.000001 -- and cut to 1 when stored. */

#define BOX_SLACK_MICRO 1 /* x + w may pass 1 by one micro-unit */

typedef enum nd_key {
    K_OTHER,
    K_FRAME,
    K_FILENAME,
    K_DETECTIONS,
    K_LABEL,
    K_CONF,
    K_BOX,
    K_X,
    K_Y,
    K_W,
    K_H
} nd_key;

enum {
    HAVE_LABEL = 1,
    HAVE_CONF = 2,
    HAVE_BOX = 4,
    HAVE_X = 8,
    HAVE_Y = 16,
    HAVE_W = 32,
    HAVE_H = 64
};

typedef struct nd_state {
    ingest__skip skip;
    int key;               /* nd_key */
    ingest__frame_ref ref; /* frame, filename */
    unsigned have;
    uint32_t label_id;
    double conf, x, y, w, h;
} nd_state;

static sl_status nd_init(ingest_parser *p, sl_error *err)
{
    return ingest__state_new(p, sizeof(nd_state), err);
}

static int key_of(int depth, const char *s, size_t n)
{
#define IS(lit) (n == sizeof(lit) - 1 && memcmp(s, lit, n) == 0)
    if (depth == 1)
        return IS("frame")        ? K_FRAME
               : IS("detections") ? K_DETECTIONS
               : IS("filename")   ? K_FILENAME
                                  : K_OTHER;
    if (depth == 3)
        return IS("label") ? K_LABEL : IS("confidence") ? K_CONF : IS("box") ? K_BOX : K_OTHER;
    if (depth == 4)
        return IS("x") ? K_X : IS("y") ? K_Y : IS("w") ? K_W : IS("h") ? K_H : K_OTHER;
#undef IS
    return K_OTHER;
}

static bool frame_end(ingest_parser *p)
{
    nd_state *s = p->fs;
    int64_t raw;
    const char *what;
    return ingest__frame_pick(p, &s->ref, "frame", "frame", "frame has no \"frame\" number", &raw,
                              &what) &&
           ingest__frame_emit(p, raw, what);
}

static bool det_end(ingest_parser *p)
{
    nd_state *s = p->fs;
    static const ingest__member required[] = {
        {HAVE_LABEL, "label"}, {HAVE_CONF, "confidence"}, {HAVE_BOX, "box"}, {HAVE_X, "box.x"},
        {HAVE_Y, "box.y"},     {HAVE_W, "box.w"},         {HAVE_H, "box.h"}};
    if (!ingest__members_present(p, s->have, required, sizeof required / sizeof required[0],
                                 "detection"))
        return false;
    if (ingest__micro(s->x) + ingest__micro(s->w) > INGEST_MICRO_ONE + BOX_SLACK_MICRO)
        return ingest__json_fail_at(p->json, "box", SL_EINVAL,
                                    "box.x + box.w = %.9g passes the image's right edge (1)",
                                    s->x + s->w);
    if (ingest__micro(s->y) + ingest__micro(s->h) > INGEST_MICRO_ONE + BOX_SLACK_MICRO)
        return ingest__json_fail_at(p->json, "box", SL_EINVAL,
                                    "box.y + box.h = %.9g passes the image's bottom edge (1)",
                                    s->y + s->h);
    ingest_detection d = {
        .label_id = s->label_id, .label = p->labels[s->label_id].name, .confidence = s->conf};
    return ingest__box_set(p, "box", &d, s->x, s->y, s->w, s->h) && ingest__det_push(p, &d);
}

static bool value(ingest_parser *p, int cd, ingest__jev ev, const ingest__jval *v)
{
    nd_state *s = p->fs;
    ingest__json *j = p->json;
    if (cd == 0) {
        if (ev != INGEST__J_MAP)
            return ingest__json_fail(j, SL_EINVAL,
                                     "each line must be a frame object {\"frame\": n, "
                                     "\"detections\": [...]}, not %s",
                                     ingest__jev_name(ev));
        s->ref = (ingest__frame_ref){0};
        p->ndets = 0;
        return true;
    }
    if (cd == 2) {
        if (ev != INGEST__J_MAP)
            return ingest__json_fail(j, SL_EINVAL, "each detection must be an object, not %s",
                                     ingest__jev_name(ev));
        s->have = 0;
        return true;
    }
    switch (cd == 1 || cd == 3 || cd == 4 ? s->key : K_OTHER) {
    case K_FRAME:
        return ingest__frame_ref_id(p, &s->ref, ev, v);
    case K_FILENAME:
        return ingest__frame_ref_filename(p, &s->ref, ev, v);
    case K_DETECTIONS:
        return ev == INGEST__J_ARRAY ||
               ingest__json_fail(j, SL_EINVAL, "detections must be an array, not %s",
                                 ingest__jev_name(ev));
    case K_LABEL:
        if (ev != INGEST__J_STRING)
            return ingest__json_fail(j, SL_EINVAL, "label must be a string, not %s",
                                     ingest__jev_name(ev));
        s->have |= HAVE_LABEL;
        return ingest__label_intern(p, v->s, v->len, &s->label_id);
    case K_CONF:
        s->have |= HAVE_CONF;
        return ingest__get_number(p, ev, v, "confidence", &s->conf) &&
               ingest__check_range(p, NULL, "confidence", s->conf, 0, false, 1, NULL);
    case K_BOX:
        s->have |= HAVE_BOX;
        return ev == INGEST__J_MAP ||
               ingest__json_fail(j, SL_EINVAL, "box must be an object {x, y, w, h}, not %s",
                                 ingest__jev_name(ev));
    case K_X:
        s->have |= HAVE_X;
        return ingest__get_number(p, ev, v, "x", &s->x) &&
               ingest__check_range(p, NULL, "x", s->x, 0, false, 1, "boxes are normalized");
    case K_Y:
        s->have |= HAVE_Y;
        return ingest__get_number(p, ev, v, "y", &s->y) &&
               ingest__check_range(p, NULL, "y", s->y, 0, false, 1, "boxes are normalized");
    case K_W:
        s->have |= HAVE_W;
        return ingest__get_number(p, ev, v, "w", &s->w) &&
               ingest__check_range(p, NULL, "w", s->w, 0, true, 1, "boxes are normalized");
    case K_H:
        s->have |= HAVE_H;
        return ingest__get_number(p, ev, v, "h", &s->h) &&
               ingest__check_range(p, NULL, "h", s->h, 0, true, 1, "boxes are normalized");
    default:
        ingest__skip_value(&s->skip, ev);
        return true;
    }
}

/* Frames are objects at depth 1 (one a line), detections at depth 3. */
static const ingest__objects nd_shape = {1, 3, key_of, frame_end, det_end, value};

static bool nd_event(void *ctx, ingest__jev ev, const ingest__jval *v)
{
    ingest_parser *p = ctx;
    nd_state *s = p->fs;
    return ingest__objects_event(p, &nd_shape, &s->skip, &s->key, ev, v);
}

const ingest__format ingest__fmt_ndjson = {.init = nd_init, .event = nd_event, .multi = true};
