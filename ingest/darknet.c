/* darknet.c -- darknet's `-out result.json` (an array of frame objects) and
 * its video demo stream (the same objects without filename, never closed). */
#include "ingest_int.h"

#include <string.h>

/* Shape, from darknet's src/network.c detection_to_json():
 *   {"frame_id": 1, "filename": "...", "objects": [{"class_id": 2,
 *    "name": "car", "relative_coordinates": {"center_x", "center_y",
 *    "width", "height"}, "confidence": 0.81}]}
 * Quirks handled on purpose: names printed unescaped (json_filter.c repairs
 * backslashes), the same box listed once per class (each kept), boxes that
 * are not clipped to the image (clipped here), a run cut off before ']'
 * (refused by json_filter.c, except for the stream). */

typedef enum dk_key {
    K_OTHER,
    K_FRAME_ID,
    K_FILENAME,
    K_OBJECTS,
    K_CLASS_ID,
    K_NAME,
    K_REL,
    K_CONFIDENCE,
    K_CX,
    K_CY,
    K_W,
    K_H
} dk_key;

enum {
    HAVE_NAME = 1,
    HAVE_REL = 2,
    HAVE_CONF = 4,
    HAVE_CX = 8,
    HAVE_CY = 16,
    HAVE_W = 32,
    HAVE_H = 64
};

typedef struct dk_state {
    ingest__skip skip;
    int key; /* dk_key */
    /* the frame being read */
    ingest__frame_ref ref; /* frame_id, filename */
    bool have_objects;
    /* the detection being read */
    unsigned have;
    uint32_t label_id;
    double conf, cx, cy, w, h;
} dk_state;

static sl_status dk_init(ingest_parser *p, sl_error *err)
{
    return ingest__state_new(p, sizeof(dk_state), err);
}

static int key_of(int depth, const char *s, size_t n)
{
#define IS(lit) (n == sizeof(lit) - 1 && memcmp(s, lit, n) == 0)
    if (depth == 2)
        return IS("frame_id")   ? K_FRAME_ID
               : IS("filename") ? K_FILENAME
               : IS("objects")  ? K_OBJECTS
                                : K_OTHER;
    if (depth == 4)
        return IS("name")                   ? K_NAME
               : IS("relative_coordinates") ? K_REL
               : IS("confidence")           ? K_CONFIDENCE
               : IS("class_id")             ? K_CLASS_ID
                                            : K_OTHER;
    if (depth == 5)
        return IS("center_x")   ? K_CX
               : IS("center_y") ? K_CY
               : IS("width")    ? K_W
               : IS("height")   ? K_H
                                : K_OTHER;
#undef IS
    return K_OTHER;
}

static bool frame_end(ingest_parser *p)
{
    dk_state *s = p->fs;
    int64_t raw;
    const char *what;
    return ingest__frame_pick(p, &s->ref, "frame", "frame_id", "frame has no frame_id", &raw,
                              &what) &&
           (s->have_objects ||
            ingest__json_fail(p->json, SL_EINVAL, "frame has no objects array")) &&
           ingest__frame_emit(p, raw, what);
}

static bool det_end(ingest_parser *p)
{
    dk_state *s = p->fs;
    static const ingest__member required[] = {{HAVE_NAME, "name"},
                                              {HAVE_REL, "relative_coordinates"},
                                              {HAVE_CONF, "confidence"},
                                              {HAVE_CX, "relative_coordinates.center_x"},
                                              {HAVE_CY, "relative_coordinates.center_y"},
                                              {HAVE_W, "relative_coordinates.width"},
                                              {HAVE_H, "relative_coordinates.height"}};
    if (!ingest__members_present(p, s->have, required, sizeof required / sizeof required[0],
                                 "object"))
        return false;
    ingest_detection d = {
        .label_id = s->label_id, .label = p->labels[s->label_id].name, .confidence = s->conf};
    return ingest__box_set(p, "relative_coordinates", &d, s->cx - s->w / 2, s->cy - s->h / 2, s->w,
                           s->h) &&
           ingest__det_push(p, &d);
}

static bool expect(ingest_parser *p, ingest__jev ev, ingest__jev want, const char *name,
                   const char *what)
{
    if (ev == want)
        return true;
    return ingest__json_fail(p->json, SL_EINVAL, "%s must be %s, not %s", name, what,
                             ingest__jev_name(ev));
}

/* A value at container depth cd (the depth before it opens, if it does). */
static bool value(ingest_parser *p, int cd, ingest__jev ev, const ingest__jval *v)
{
    dk_state *s = p->fs;
    ingest__json *j = p->json;
    switch (cd) {
    case 0:
        return ev == INGEST__J_ARRAY ||
               ingest__json_fail(j, SL_EINVAL,
                                 "darknet output is a JSON array of frame objects, not %s",
                                 ingest__jev_name(ev));
    case 1:
        if (ev != INGEST__J_MAP)
            return ingest__json_fail(j, SL_EINVAL, "each frame must be an object, not %s",
                                     ingest__jev_name(ev));
        s->ref = (ingest__frame_ref){0};
        s->have_objects = false;
        p->ndets = 0;
        return true;
    case 2:
        switch (s->key) {
        case K_FRAME_ID:
            if (!expect(p, ev, INGEST__J_NUMBER, "frame_id", "a whole number"))
                return false;
            if (!ingest__number_int(v->s, v->len, &s->ref.id))
                return ingest__json_fail(j, SL_EINVAL, "frame_id %.*s is not a whole number",
                                         (int)v->len, v->s);
            s->ref.have_id = true;
            return true;
        case K_FILENAME:
            return ingest__frame_ref_filename(p, &s->ref, ev, v);
        case K_OBJECTS:
            s->have_objects = true;
            return expect(p, ev, INGEST__J_ARRAY, "objects", "an array");
        default:
            ingest__skip_value(&s->skip, ev);
            return true;
        }
    case 3:
        if (ev != INGEST__J_MAP)
            return ingest__json_fail(j, SL_EINVAL, "each detection must be an object, not %s",
                                     ingest__jev_name(ev));
        s->have = 0;
        return true;
    case 4:
        switch (s->key) {
        case K_NAME:
            if (!expect(p, ev, INGEST__J_STRING, "name", "a string") ||
                !ingest__label_intern(p, v->s, v->len, &s->label_id))
                return false;
            s->have |= HAVE_NAME;
            return true;
        case K_REL:
            s->have |= HAVE_REL;
            return expect(p, ev, INGEST__J_MAP, "relative_coordinates", "an object");
        case K_CONFIDENCE:
            s->have |= HAVE_CONF;
            return ingest__get_number(p, ev, v, "confidence", &s->conf) &&
                   ingest__check_range(p, NULL, "confidence", s->conf, 0, false, 1, NULL);
        case K_CLASS_ID: {
            int64_t id;
            if (!expect(p, ev, INGEST__J_NUMBER, "class_id", "a whole number"))
                return false;
            if (!ingest__number_int(v->s, v->len, &id) || id < 0)
                return ingest__json_fail(j, SL_EINVAL, "class_id %.*s is not a whole number >= 0",
                                         (int)v->len, v->s);
            return true;
        }
        default:
            ingest__skip_value(&s->skip, ev);
            return true;
        }
    case 5: {
        double *dst;
        unsigned bit;
        const char *name;
        bool size;
        switch (s->key) {
        case K_CX:
            dst = &s->cx, bit = HAVE_CX, name = "center_x", size = false;
            break;
        case K_CY:
            dst = &s->cy, bit = HAVE_CY, name = "center_y", size = false;
            break;
        case K_W:
            dst = &s->w, bit = HAVE_W, name = "width", size = true;
            break;
        case K_H:
            dst = &s->h, bit = HAVE_H, name = "height", size = true;
            break;
        default:
            ingest__skip_value(&s->skip, ev);
            return true;
        }
        s->have |= bit;
        return ingest__get_number(p, ev, v, name, dst) &&
               ingest__check_range(p, NULL, name, *dst, 0, size, 1,
                                   size ? "a box's size is a fraction of the image's"
                                        : "a box's centre must lie in the image");
    }
    default:
        ingest__skip_value(&s->skip, ev);
        return true;
    }
}

/* Frames are objects at depth 2, detections at depth 4. */
static const ingest__objects dk_shape = {2, 4, key_of, frame_end, det_end, value};

static bool dk_event(void *ctx, ingest__jev ev, const ingest__jval *v)
{
    ingest_parser *p = ctx;
    dk_state *s = p->fs;
    return ingest__objects_event(p, &dk_shape, &s->skip, &s->key, ev, v);
}

const ingest__format ingest__fmt_darknet = {
    .init = dk_init, .event = dk_event, .darknet_escapes = true};

const ingest__format ingest__fmt_darknet_stream = {
    .init = dk_init, .event = dk_event, .darknet_escapes = true, .open_top = true};
