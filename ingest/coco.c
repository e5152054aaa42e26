/* coco.c -- COCO detection results ([{image_id, category_id, bbox, score}]),
 * grouped by image_id into frames in bounded memory. */
#include "ingest_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Results of one image may be scattered through the file: records are kept
 * in a bounded buffer, sorted, spilled as sorted runs to an unnamed temporary
 * file when it fills, and merged at the end. */

#define RUN_RECORDS   (128u * 1024u) /* records in memory: 7 MB */
#define RUNS_MAX      256u           /* so at most 33.5 M results per input */
#define MERGE_RECORDS 1024u          /* read buffer per run while merging */

typedef struct rec {
    uint32_t frame, seq, label, pad;
    double score, x, y, w, h;
} rec;

typedef struct run {
    off_t at;    /* file offset of the run */
    size_t n;    /* records in the run */
    size_t next; /* next record to read */
    rec *buf;
    size_t have, pos; /* records in buf, next in buf */
} run;

typedef enum co_key { K_OTHER, K_IMAGE, K_CATEGORY, K_BBOX, K_SCORE } co_key;
enum { HAVE_IMAGE = 1, HAVE_CATEGORY = 2, HAVE_BBOX = 4, HAVE_SCORE = 8 };

typedef struct co_state {
    ingest__skip skip;
    co_key key;
    unsigned have;
    int64_t image_id, category_id;
    double score, bbox[4];
    uint32_t nbbox;
    rec *buf;
    size_t n;
    uint32_t seq;
    int fd; /* spill file, -1 until needed */
    run runs[RUNS_MAX];
    size_t nruns;
    off_t spilled;
} co_state;

/* On success p->fs holds the state (freed by the parser with co_free). */
static sl_status co_init(ingest_parser *p, sl_error *err)
{
    sl_status rc = SL_OK;
    co_state *s = NULL;
    if (p->opt.image_width == 0 || p->opt.image_height == 0) {
        rc = sl_error_set_at(err, SL_EINVAL, "image_width", -1,
                             "COCO boxes are in pixels: the image size is required");
    } else if (p->opt.frame_source == INGEST_FRAME_FROM_FILENAME) {
        rc = sl_error_set_at(err, SL_EINVAL, "frame_source", -1,
                             "COCO results name their images by image_id only");
    } else if (!(s = calloc(1, sizeof *s)) || !(s->buf = malloc(sizeof *s->buf * RUN_RECORDS))) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        free(s);
    } else {
        s->fd = -1;
        p->fs = s;
    }
    return rc;
}

static void co_free(ingest_parser *p)
{
    co_state *s = p->fs;
    if (!s)
        return;
    free(s->buf);
    for (size_t i = 0; i < s->nruns; i++)
        free(s->runs[i].buf);
    if (s->fd >= 0)
        close(s->fd);
}

static int by_frame(const void *a, const void *b)
{
    const rec *x = a, *y = b;
    if (x->frame != y->frame)
        return x->frame < y->frame ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static sl_status open_spill(ingest_parser *p, co_state *s, sl_error *err)
{
    const char *dir = p->opt.spill_dir;
    if (!dir || !dir[0])
        dir = getenv("TMPDIR");
    if (!dir || !dir[0])
        dir = "/tmp";
    /* O_TMPFILE has no name: nothing is left behind, even after a crash. */
    s->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (s->fd < 0) {
        char path[4096];
        snprintf(path, sizeof path, "%s/sightline-coco-XXXXXX", dir);
        s->fd = mkostemp(path, O_CLOEXEC);
        if (s->fd >= 0)
            unlink(path);
    }
    return s->fd >= 0 ? SL_OK
                      : sl_error_set(err, SL_EIO, "cannot create a spill file in %s: %s", dir,
                                     strerror(errno));
}

/* Sorts the buffer and writes it as one run. */
static sl_status spill(ingest_parser *p, co_state *s, sl_error *err)
{
    sl_status rc = SL_OK;
    if (s->nruns == RUNS_MAX) {
        rc = sl_error_set(err, SL_ETOOLARGE, "COCO input holds more than %u results",
                          RUNS_MAX * RUN_RECORDS);
        goto out;
    }
    if (s->fd < 0 && (rc = open_spill(p, s, err)) != SL_OK)
        goto out;
    qsort(s->buf, s->n, sizeof *s->buf, by_frame);
    size_t bytes = s->n * sizeof *s->buf, done = 0;
    while (done < bytes) {
        ssize_t w = pwrite(s->fd, (char *)s->buf + done, bytes - done, s->spilled + (off_t)done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = sl_error_set(err, SL_EIO, "cannot write the spill file: %s",
                              w < 0 ? strerror(errno) : "disk full");
            goto out;
        }
        done += (size_t)w;
    }
    s->runs[s->nruns++] = (run){.at = s->spilled, .n = s->n};
    s->spilled += (off_t)bytes;
    s->n = 0;
out:
    return rc;
}

static bool record_end(ingest_parser *p, co_state *s)
{
    ingest__json *j = p->json;
    static const struct {
        unsigned bit;
        const char *name;
    } required[] = {{HAVE_IMAGE, "image_id"},
                    {HAVE_CATEGORY, "category_id"},
                    {HAVE_BBOX, "bbox"},
                    {HAVE_SCORE, "score"}};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (!(s->have & required[i].bit))
            return ingest__json_fail(
                j, SL_EINVAL, "result has no %s%s", required[i].name,
                required[i].bit == HAVE_BBOX ? " (segmentation results are not detections)" : "");
    uint32_t frame;
    if (!ingest__frame_number(p, s->image_id, "image_id", &frame))
        return false;
    const char *name = ingest_categories_name(p->opt.categories, s->category_id);
    if (!name)
        return ingest__json_fail_at(j, "category_id", SL_EINVAL,
                                    "category_id %lld is not in the category map",
                                    (long long)s->category_id);
    rec r = {.frame = frame, .seq = s->seq++, .score = s->score};
    if (!ingest__label_intern(p, name, strlen(name), &r.label))
        return false;
    double W = p->opt.image_width, H = p->opt.image_height;
    const double *b = s->bbox;
    ingest_detection d;
    if (!ingest__box_set(p, "bbox", &d, b[0] / W, b[1] / H, b[2] / W, b[3] / H))
        return false;
    r.x = d.x;
    r.y = d.y;
    r.w = d.w;
    r.h = d.h;
    if (s->n == RUN_RECORDS) {
        sl_error e;
        sl_error_clear(&e);
        if (spill(p, s, &e) != SL_OK)
            return ingest__json_fail(j, e.status, "%s", e.message);
    }
    s->buf[s->n++] = r;
    return true;
}

static bool bbox_end(ingest_parser *p, co_state *s)
{
    double W = p->opt.image_width, H = p->opt.image_height;
    const double *b = s->bbox;
    if (s->nbbox != 4)
        return ingest__json_fail(p->json, SL_EINVAL,
                                 "bbox has %u numbers; COCO boxes are [x, y, "
                                 "width, height] in pixels",
                                 s->nbbox);
    if (!(b[2] > 0 && b[3] > 0))
        return ingest__json_fail(p->json, SL_EINVAL,
                                 "bbox [%g, %g, %g, %g] has no area: width and height must be > 0",
                                 b[0], b[1], b[2], b[3]);
    if (b[2] > W || b[3] > H)
        return ingest__json_fail(p->json, SL_EINVAL,
                                 "bbox [%g, %g, %g, %g] is larger than the %gx%g image", b[0], b[1],
                                 b[2], b[3], W, H);
    double cx = b[0] + b[2] / 2, cy = b[1] + b[3] / 2;
    if (cx < 0 || cx > W || cy < 0 || cy > H)
        return ingest__json_fail(p->json, SL_EINVAL,
                                 "bbox [%g, %g, %g, %g] has its centre outside the %gx%g image",
                                 b[0], b[1], b[2], b[3], W, H);
    s->have |= HAVE_BBOX;
    return true;
}

static bool co_event(void *ctx, ingest__jev ev, const ingest__jval *v)
{
    ingest_parser *p = ctx;
    co_state *s = p->fs;
    ingest__json *j = p->json;
    if (ingest__skipping(&s->skip, ev))
        return true;
    int d = ingest__json_depth(j);
    int cd = ev == INGEST__J_MAP || ev == INGEST__J_ARRAY ? d - 1 : d;
    switch (ev) {
    case INGEST__J_KEY:
#define IS(lit) (v->len == sizeof(lit) - 1 && memcmp(v->s, lit, v->len) == 0)
        s->key = d != 2              ? K_OTHER
                 : IS("image_id")    ? K_IMAGE
                 : IS("category_id") ? K_CATEGORY
                 : IS("bbox")        ? K_BBOX
                 : IS("score")       ? K_SCORE
                                     : K_OTHER;
#undef IS
        return true;
    case INGEST__J_END_MAP:
        return d == 2 ? record_end(p, s) : true;
    case INGEST__J_END_ARRAY:
        return d == 3 ? bbox_end(p, s) : true;
    default:
        break;
    }
    if (cd == 0)
        return ev == INGEST__J_ARRAY ||
               ingest__json_fail(j, SL_EINVAL, "COCO results are a JSON array of objects, not %s",
                                 ingest__jev_name(ev));
    if (cd == 1) {
        if (ev != INGEST__J_MAP)
            return ingest__json_fail(j, SL_EINVAL, "each result must be an object, not %s",
                                     ingest__jev_name(ev));
        s->have = 0;
        return true;
    }
    if (cd == 3 && s->key == K_BBOX) {
        if (s->nbbox >= 4)
            return ingest__json_fail(j, SL_EINVAL, "bbox has more than 4 numbers");
        return ingest__get_number(p, ev, v, "bbox value", &s->bbox[s->nbbox++]);
    }
    if (cd != 2) {
        ingest__skip_value(&s->skip, ev);
        return true;
    }
    switch (s->key) {
    case K_IMAGE:
        if (ev != INGEST__J_NUMBER || !ingest__number_int(v->s, v->len, &s->image_id))
            return ingest__json_fail(j, SL_EINVAL, "image_id must be a whole number, not %s",
                                     ev == INGEST__J_NUMBER ? "a fraction" : ingest__jev_name(ev));
        s->have |= HAVE_IMAGE;
        return true;
    case K_CATEGORY:
        if (ev != INGEST__J_NUMBER || !ingest__number_int(v->s, v->len, &s->category_id))
            return ingest__json_fail(j, SL_EINVAL, "category_id must be a whole number, not %s",
                                     ev == INGEST__J_NUMBER ? "a fraction" : ingest__jev_name(ev));
        s->have |= HAVE_CATEGORY;
        return true;
    case K_SCORE:
        s->have |= HAVE_SCORE;
        return ingest__get_number(p, ev, v, "score", &s->score) &&
               ingest__check_range(p, NULL, "score", s->score, 0, false, 1, NULL);
    case K_BBOX:
        if (ev != INGEST__J_ARRAY)
            return ingest__json_fail(j, SL_EINVAL, "bbox must be an array [x, y, w, h], not %s",
                                     ingest__jev_name(ev));
        s->nbbox = 0;
        return true;
    default:
        ingest__skip_value(&s->skip, ev);
        return true;
    }
}

/* ---------------------------------------------------------------------------
 * Grouping: emit one frame per image_id, in image_id order.
 * ------------------------------------------------------------------------- */
static sl_status group_add(ingest_parser *p, const rec *r, sl_error *err)
{
    ingest_detection d = {.label = p->labels[r->label].name,
                          .label_id = r->label,
                          .confidence = r->score,
                          .x = r->x,
                          .y = r->y,
                          .w = r->w,
                          .h = r->h};
    sl_status rc = SL_OK;
    if (p->ndets >= p->lim.max_detections)
        rc = sl_error_set_at(err, SL_EINVAL, "image_id", -1, "image %u has more than %u results",
                             r->frame, p->lim.max_detections);
    else if (!ingest__det_push(p, &d))
        rc = err->status;
    return rc;
}

static sl_status emit_sorted(ingest_parser *p, const rec *r, size_t n, sl_error *err)
{
    sl_status rc = SL_OK;
    for (size_t i = 0; i < n && rc == SL_OK; i++) {
        rc = group_add(p, &r[i], err);
        if (rc == SL_OK && (i + 1 == n || r[i + 1].frame != r[i].frame))
            rc = ingest__emit(p, r[i].frame, -1, err);
    }
    return rc;
}

static sl_status run_fill(co_state *s, run *r, sl_error *err)
{
    size_t want = r->n - r->next < MERGE_RECORDS ? r->n - r->next : MERGE_RECORDS;
    size_t bytes = want * sizeof(rec), done = 0;
    off_t at = r->at + (off_t)(r->next * sizeof(rec));
    sl_status rc = SL_OK;
    while (rc == SL_OK && done < bytes) {
        ssize_t got = pread(s->fd, (char *)r->buf + done, bytes - done, at + (off_t)done);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            rc = sl_error_set(err, SL_EIO, "cannot read the spill file: %s",
                              got < 0 ? strerror(errno) : "short file");
        else
            done += (size_t)got;
    }
    if (rc == SL_OK) {
        r->next += want;
        r->have = want;
        r->pos = 0;
    }
    return rc;
}

static bool heap_less(const run *a, const run *b)
{
    return by_frame(&a->buf[a->pos], &b->buf[b->pos]) < 0;
}

static void heap_down(run **h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < n && heap_less(h[l], h[m]))
            m = l;
        if (l + 1 < n && heap_less(h[l + 1], h[m]))
            m = l + 1;
        if (m == i)
            return;
        run *t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static sl_status merge_runs(ingest_parser *p, co_state *s, sl_error *err)
{
    sl_status rc = SL_OK;
    run *heap[RUNS_MAX];
    size_t n = 0;
    for (size_t i = 0; rc == SL_OK && i < s->nruns; i++) {
        run *r = &s->runs[i];
        r->buf = malloc(sizeof(rec) * MERGE_RECORDS); /* freed by co_free */
        if (!r->buf)
            rc = sl_error_set(err, SL_ENOMEM, "out of memory merging COCO results");
        else if ((rc = run_fill(s, r, err)) == SL_OK)
            heap[n++] = r;
    }
    if (rc != SL_OK)
        n = 0;
    for (size_t i = n / 2; i-- > 0;)
        heap_down(heap, n, i);
    while (n > 0 && rc == SL_OK) {
        run *r = heap[0];
        rec cur = r->buf[r->pos++];
        rc = group_add(p, &cur, err);
        if (rc != SL_OK)
            break;
        if (r->pos == r->have) {
            if (r->next < r->n)
                rc = run_fill(s, r, err);
            else
                heap[0] = heap[--n];
        }
        if (n > 0)
            heap_down(heap, n, 0);
        bool last = n == 0 || heap[0]->buf[heap[0]->pos].frame != cur.frame;
        if (rc == SL_OK && last)
            rc = ingest__emit(p, cur.frame, -1, err);
    }
    return rc;
}

static sl_status co_finish(ingest_parser *p, sl_error *err)
{
    co_state *s = p->fs;
    sl_status rc = SL_OK;
    if (s->nruns == 0) {
        qsort(s->buf, s->n, sizeof *s->buf, by_frame);
        rc = emit_sorted(p, s->buf, s->n, err);
    } else {
        rc = s->n ? spill(p, s, err) : SL_OK;
        free(s->buf); /* the merge needs its memory */
        s->buf = NULL;
        if (rc == SL_OK)
            rc = merge_runs(p, s, err);
    }
    return rc;
}

const ingest__format ingest__fmt_coco = {
    .init = co_init, .event = co_event, .finish = co_finish, .free_state = co_free};
