/* tfod.c -- TensorFlow Object Detection API output dicts, one per frame, as a
 * JSON array or NDJSON: boxes [ymin, xmin, ymax, xmax], scores, classes. */
#include "ingest_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Each array may carry the model's batch dimension of 1 ([[...]]).  Only the
 * first num_detections entries count (the model pads the rest).  Labels come
 * from detection_class_entities, else from the category map by class id,
 * else from detection_class_names.  The frame number is "frame" or
 * "image_id", else the dict's position in the input. */

typedef enum tf_col { C_BOXES, C_SCORES, C_CLASSES, C_ENTITIES, C_NAMES, C_NUM, C_COUNT } tf_col;

static const char *const col_name[C_COUNT] = {"detection_boxes",       "detection_scores",
                                              "detection_classes",     "detection_class_entities",
                                              "detection_class_names", "num_detections"};

typedef struct column {
    bool present;
    int rank;       /* depth of the leaves inside the value (0: a bare number) */
    int rel;        /* containers open inside the value */
    uint32_t outer; /* elements of the outermost array */
    uint32_t inner; /* leaves in the innermost array being read */
    uint32_t n, cap;
    double *num;   /* numeric columns */
    uint32_t *lab; /* string columns: interned label ids */
} column;

typedef enum tf_key { K_OTHER = -1, K_FRAME = C_COUNT, K_FILENAME } tf_key;

typedef struct tf_state {
    ingest__skip skip;
    int wrap;              /* 1 when the dicts are elements of a top-level array */
    int key;               /* tf_col, tf_key */
    int cur;               /* the column being read, -1 none */
    int64_t position;      /* dicts read so far */
    ingest__frame_ref ref; /* frame (or image_id), filename */
    column col[C_COUNT];
} tf_state;

/* On success p->fs holds the state (freed by the parser with tf_free). */
static sl_status tf_init(ingest_parser *p, sl_error *err)
{
    sl_status rc = ingest__state_new(p, sizeof(tf_state), err);
    if (rc == SL_OK)
        ((tf_state *)p->fs)->cur = -1;
    return rc;
}

static void tf_free(ingest_parser *p)
{
    tf_state *s = p->fs;
    for (int i = 0; s && i < C_COUNT; i++) {
        free(s->col[i].num);
        free(s->col[i].lab);
    }
}

static int key_of(const char *s, size_t n)
{
    for (int i = 0; i < C_COUNT; i++)
        if (strlen(col_name[i]) == n && memcmp(col_name[i], s, n) == 0)
            return i;
    if ((n == 5 && memcmp(s, "frame", 5) == 0) || (n == 8 && memcmp(s, "image_id", 8) == 0))
        return K_FRAME;
    if (n == 8 && memcmp(s, "filename", 8) == 0)
        return K_FILENAME;
    return K_OTHER;
}

static void dict_start(ingest_parser *p, tf_state *s)
{
    for (int i = 0; i < C_COUNT; i++) {
        column *c = &s->col[i];
        c->present = false;
        c->rank = -1;
        c->rel = 0;
        c->outer = c->inner = c->n = 0;
    }
    s->ref = (ingest__frame_ref){0};
    s->cur = -1;
    p->ndets = 0;
}

static bool leaf(ingest_parser *p, tf_state *s, column *c, ingest__jev ev, const ingest__jval *v)
{
    int ci = (int)(c - s->col);
    bool strings = ci == C_ENTITIES || ci == C_NAMES;
    if (ev != (strings ? INGEST__J_STRING : INGEST__J_NUMBER))
        return ingest__json_fail(p->json, SL_EINVAL, "%s holds %s, not only %s", col_name[ci],
                                 ingest__jev_name(ev), strings ? "strings" : "numbers");
    if (c->rank < 0)
        c->rank = c->rel;
    int want_lo = ci == C_BOXES ? 2 : ci == C_NUM ? 0 : 1;
    if (c->rel != c->rank || c->rank < want_lo || c->rank > want_lo + 1)
        return ingest__json_fail(p->json, SL_EINVAL, "%s has the wrong shape: expected %s",
                                 col_name[ci],
                                 ci == C_BOXES ? "[[ymin, xmin, ymax, xmax], ...] (or with a "
                                                 "batch dimension of 1)"
                                 : ci == C_NUM ? "a number (or [number])"
                                               : "a flat array (or with a batch dimension of 1)");
    uint32_t max = ci == C_BOXES ? 4 * p->lim.max_detections : p->lim.max_detections;
    if (c->n >= max)
        return ingest__json_fail(p->json, SL_EINVAL, "%s has more than %u entries", col_name[ci],
                                 max);
    if (c->n == c->cap) {
        uint32_t cap = c->cap ? c->cap * 2 : 64;
        void *m = realloc(strings ? (void *)c->lab : (void *)c->num,
                          cap * (strings ? sizeof *c->lab : sizeof *c->num));
        if (!m)
            return ingest__json_fail(p->json, SL_ENOMEM, "out of memory");
        if (strings)
            c->lab = m;
        else
            c->num = m;
        c->cap = cap;
    }
    c->inner++;
    if (strings)
        return ingest__label_intern(p, v->s, v->len, &c->lab[c->n++]);
    double d;
    if (!ingest__get_number(p, ev, v, col_name[ci], &d))
        return false;
    if (ci == C_BOXES && !ingest__check_range(p, NULL, "box coordinate", d, 0, false, 1,
                                              "TF-OD boxes are normalized"))
        return false;
    if (ci == C_SCORES && !ingest__check_range(p, NULL, "score", d, 0, false, 1, NULL))
        return false;
    c->num[c->n++] = d;
    return true;
}

/* Events inside a column's value. */
static bool in_column(ingest_parser *p, tf_state *s, ingest__jev ev, const ingest__jval *v)
{
    column *c = &s->col[s->cur];
    switch (ev) {
    case INGEST__J_ARRAY:
        if (c->rel == 1)
            c->outer++;
        c->rel++;
        c->inner = 0;
        return true;
    case INGEST__J_END_ARRAY:
        if (s->cur == C_BOXES && c->rel == c->rank && c->inner != 4)
            return ingest__json_fail(p->json, SL_EINVAL,
                                     "a box has %u numbers; TF-OD boxes are [ymin, xmin, ymax, "
                                     "xmax]",
                                     c->inner);
        if (--c->rel == 0) {
            int batched = s->cur == C_BOXES ? 3 : s->cur == C_NUM ? 1 : 2;
            if (c->rank == batched && c->outer > 1)
                return ingest__json_fail(p->json, SL_EINVAL,
                                         "%s holds a batch of %u images; send one dict per frame",
                                         col_name[s->cur], c->outer);
            s->cur = -1;
        }
        return true;
    case INGEST__J_MAP:
        return ingest__json_fail(p->json, SL_EINVAL, "%s holds an object", col_name[s->cur]);
    default:
        if (c->rel == 1)
            c->outer++;
        if (!leaf(p, s, c, ev, v))
            return false;
        if (c->rel == 0)
            s->cur = -1;
        return true;
    }
}

static bool dict_end(ingest_parser *p, tf_state *s)
{
    ingest__json *j = p->json;
    column *boxes = &s->col[C_BOXES], *scores = &s->col[C_SCORES], *classes = &s->col[C_CLASSES];
    column *ent = &s->col[C_ENTITIES], *names = &s->col[C_NAMES], *num = &s->col[C_NUM];
    int64_t pos = s->position++;
    if (!boxes->present || !scores->present)
        return ingest__json_fail(j, SL_EINVAL, "output dict has no %s",
                                 boxes->present ? "detection_scores" : "detection_boxes");
    uint32_t n = scores->n;
    if (num->present) {
        int64_t k;
        if (num->n != 1 || num->num[0] != floor(num->num[0]) || num->num[0] < 0)
            return ingest__json_fail_at(j, "num_detections", SL_EINVAL,
                                        "num_detections must be one whole number >= 0");
        k = (int64_t)num->num[0];
        if (k > (int64_t)p->lim.max_detections)
            return ingest__json_fail_at(j, "num_detections", SL_EINVAL,
                                        "num_detections %lld is above the limit %u", (long long)k,
                                        p->lim.max_detections);
        n = (uint32_t)k;
    }
    if (scores->n < n || boxes->n / 4 < n)
        return ingest__json_fail(j, SL_EINVAL,
                                 "num_detections is %u but detection_scores has %u entries and "
                                 "detection_boxes %u",
                                 n, scores->n, boxes->n / 4);
    bool use_ent = ent->present && ent->n >= n;
    if (ent->present && !use_ent)
        return ingest__json_fail_at(j, "detection_class_entities", SL_EINVAL,
                                    "has %u entries, fewer than num_detections %u", ent->n, n);
    if (!use_ent && classes->n < n)
        return ingest__json_fail(j, SL_EINVAL,
                                 "num_detections is %u but detection_classes has %u entries", n,
                                 classes->n);
    for (uint32_t i = 0; i < n; i++) {
        char sub[64];
        ingest_detection d = {.confidence = scores->num[i]};
        if (use_ent) {
            d.label_id = ent->lab[i];
        } else {
            double cl = classes->num[i];
            const char *name = cl == floor(cl) && fabs(cl) < 1e15
                                   ? ingest_categories_name(p->opt.categories, (int64_t)cl)
                                   : NULL;
            if (name) {
                if (!ingest__label_intern(p, name, strlen(name), &d.label_id))
                    return false;
            } else if (names->present && names->n > i) {
                d.label_id = names->lab[i];
            } else {
                char text[32];
                ingest__fmt_number(cl, text);
                snprintf(sub, sizeof sub, "detection_classes[%u]", i);
                return ingest__json_fail_at(j, sub, SL_EINVAL,
                                            "class %s is not in the category map (and the dict "
                                            "has no class names)",
                                            text);
            }
        }
        const double *b = &boxes->num[4 * (size_t)i];
        if (b[2] <= b[0] || b[3] <= b[1]) {
            snprintf(sub, sizeof sub, "detection_boxes[%u]", i);
            return ingest__json_fail_at(j, sub, SL_EINVAL,
                                        "box [%g, %g, %g, %g] has no area: ymax must be above "
                                        "ymin and xmax above xmin",
                                        b[0], b[1], b[2], b[3]);
        }
        d.label = p->labels[d.label_id].name;
        snprintf(sub, sizeof sub, "detection_boxes[%u]", i);
        if (!ingest__box_set(p, sub, &d, b[1], b[0], b[3] - b[1], b[2] - b[0]) ||
            !ingest__det_push(p, &d))
            return false;
    }
    /* Without a frame member, the dict's position numbers it. */
    ingest__frame_ref ref = s->ref;
    const char *id_name = ref.have_id ? "frame" : "position of the dict", *what;
    int64_t raw;
    if (!ref.have_id) {
        ref.have_id = true;
        ref.id = pos;
    }
    return ingest__frame_pick(p, &ref, "dict", id_name, NULL, &raw, &what) &&
           ingest__frame_emit(p, raw, what);
}

static bool tf_event(void *ctx, ingest__jev ev, const ingest__jval *v)
{
    ingest_parser *p = ctx;
    tf_state *s = p->fs;
    ingest__json *j = p->json;
    if (ingest__skipping(&s->skip, ev))
        return true;
    if (s->cur >= 0)
        return in_column(p, s, ev, v);
    int d = ingest__json_depth(j);
    int cd = ev == INGEST__J_MAP || ev == INGEST__J_ARRAY ? d - 1 : d;
    switch (ev) {
    case INGEST__J_KEY:
        s->key = key_of(v->s, v->len);
        return true;
    case INGEST__J_END_MAP:
        return d == 1 + s->wrap ? dict_end(p, s) : true;
    case INGEST__J_END_ARRAY:
        return true;
    default:
        break;
    }
    if (cd == 0) {
        s->wrap = ev == INGEST__J_ARRAY ? 1 : 0;
        if (ev == INGEST__J_MAP) {
            dict_start(p, s);
            return true;
        }
        return ev == INGEST__J_ARRAY ||
               ingest__json_fail(j, SL_EINVAL,
                                 "TF-OD input is an array of output dicts or one dict per line, "
                                 "not %s",
                                 ingest__jev_name(ev));
    }
    if (cd == s->wrap && s->wrap == 1) {
        if (ev != INGEST__J_MAP)
            return ingest__json_fail(j, SL_EINVAL, "each output dict must be an object, not %s",
                                     ingest__jev_name(ev));
        dict_start(p, s);
        return true;
    }
    if (cd != 1 + s->wrap) {
        ingest__skip_value(&s->skip, ev);
        return true;
    }
    if (s->key == K_FRAME)
        return ingest__frame_ref_id(p, &s->ref, ev, v);
    if (s->key == K_FILENAME)
        return ingest__frame_ref_filename(p, &s->ref, ev, v);
    if (s->key < 0 || s->key >= C_COUNT) {
        ingest__skip_value(&s->skip, ev); /* timing and other members */
        return true;
    }
    s->cur = s->key;
    s->col[s->cur].present = true;
    return in_column(p, s, ev, v);
}

const ingest__format ingest__fmt_tfod = {
    .init = tf_init, .event = tf_event, .free_state = tf_free, .multi = true};
