/* parser.c -- the core the formats plug into: options and limits, interned
 * labels, the frame being built, frame numbers and the checks all share. */
#include "ingest_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The formats live in darknet.c, coco.c, tfod.c and ndjson.c. */

#define FRAME_PAGE_BITS  16u /* frames per page of the seen-frames bitmap: 65,536 */
#define FRAME_PAGE_WORDS ((1u << FRAME_PAGE_BITS) / 64u)
#define FRAME_PAGES_MAX  1024u /* 8 MB of bitmap at most */

void ingest_limits_default(ingest_limits *l)
{
    l->max_input_bytes = INGEST_DEFAULT_MAX_INPUT;
    l->max_depth = INGEST_DEFAULT_MAX_DEPTH;
    l->max_string = INGEST_DEFAULT_MAX_STRING;
    l->max_keys = INGEST_DEFAULT_MAX_KEYS;
    l->max_detections = INGEST_DEFAULT_MAX_DETECTIONS;
    l->max_labels = INGEST_DEFAULT_MAX_LABELS;
    l->max_record = INGEST_DEFAULT_MAX_RECORD;
    l->max_records = INGEST_DEFAULT_MAX_RECORDS;
}

static const struct {
    const char *name;
    ingest_format format;
} format_names[] = {
    {"darknet", INGEST_FORMAT_DARKNET}, {"darknet-stream", INGEST_FORMAT_DARKNET_STREAM},
    {"coco", INGEST_FORMAT_COCO},       {"tfod", INGEST_FORMAT_TFOD},
    {"ndjson", INGEST_FORMAT_NDJSON},   {"assets", INGEST_FORMAT_ASSETS},
};

sl_status ingest_format_parse(const char *name, ingest_format *out, sl_error *err)
{
    size_t i = 0, n = sizeof format_names / sizeof format_names[0];
    while (i < n && !(name && strcmp(name, format_names[i].name) == 0))
        i++;
    if (i < n)
        *out = format_names[i].format;
    return i < n ? SL_OK
                 : sl_error_set_at(err, SL_EUNSUPPORTED, "format", -1,
                                   "unknown format \"%.40s\": use darknet, darknet-stream, coco, "
                                   "tfod, ndjson or assets",
                                   name ? name : "");
}

const char *ingest_format_name(ingest_format f)
{
    for (size_t i = 0; i < sizeof format_names / sizeof format_names[0]; i++)
        if (format_names[i].format == f)
            return format_names[i].name;
    return "unknown";
}

/* ---------------------------------------------------------------------------
 * Labels.
 * ------------------------------------------------------------------------- */
static uint32_t hash_bytes(const char *s, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* Copies of the names are owned by the parser (freed by ingest_parser_free). */
bool ingest__label_intern(ingest_parser *p, const char *s, size_t len, uint32_t *id)
{
    uint32_t h = hash_bytes(s, len);
    uint32_t mask = p->nslots - 1;
    for (uint32_t i = h & mask;; i = (i + 1) & mask) {
        uint32_t slot = p->slots[i];
        if (slot == 0) {
            if (len == 0 || len > INGEST_LABEL_MAX)
                return ingest__json_fail(p->json, SL_EINVAL,
                                         "label must be 1 to %u bytes long, not %zu",
                                         INGEST_LABEL_MAX, len);
            for (size_t k = 0; k < len; k++)
                if ((unsigned char)s[k] < 0x20 || s[k] == 0x7f)
                    return ingest__json_fail(p->json, SL_EINVAL,
                                             "label holds a control character (byte %zu)", k);
            if (p->nlabels >= p->lim.max_labels)
                return ingest__json_fail(p->json, SL_EINVAL,
                                         "more than %u distinct labels in one input",
                                         p->lim.max_labels);
            if (p->nlabels == p->cap_labels) {
                uint32_t cap = p->cap_labels ? p->cap_labels * 2 : 64;
                ingest__label *l = realloc(p->labels, sizeof *l * cap);
                if (!l)
                    return ingest__json_fail(p->json, SL_ENOMEM, "out of memory keeping labels");
                p->labels = l;
                p->cap_labels = cap;
            }
            char *name = malloc(len + 1);
            if (!name)
                return ingest__json_fail(p->json, SL_ENOMEM, "out of memory keeping labels");
            memcpy(name, s, len);
            name[len] = '\0';
            p->labels[p->nlabels] = (ingest__label){.name = name, .len = (uint32_t)len, .hash = h};
            p->slots[i] = ++p->nlabels;
            *id = p->nlabels - 1;
            return true;
        }
        const ingest__label *l = &p->labels[slot - 1];
        if (l->hash == h && l->len == len && memcmp(l->name, s, len) == 0) {
            *id = slot - 1;
            return true;
        }
    }
}

uint32_t ingest_parser_labels(const ingest_parser *p)
{
    return p->nlabels;
}

const char *ingest_parser_label(const ingest_parser *p, uint32_t label_id)
{
    return label_id < p->nlabels ? p->labels[label_id].name : NULL;
}

/* ---------------------------------------------------------------------------
 * Frames.
 * ------------------------------------------------------------------------- */
bool ingest__det_push(ingest_parser *p, const ingest_detection *d)
{
    if (p->ndets >= p->lim.max_detections)
        return ingest__json_fail(p->json, SL_EINVAL, "frame has more than %u detections",
                                 p->lim.max_detections);
    if (p->ndets == p->cap_dets) {
        uint32_t cap = p->cap_dets ? p->cap_dets * 2 : 64;
        ingest_detection *n = realloc(p->dets, sizeof *n * cap);
        if (!n)
            return ingest__json_fail(p->json, SL_ENOMEM, "out of memory building a frame");
        p->dets = n;
        p->cap_dets = cap;
    }
    p->dets[p->ndets++] = *d;
    return true;
}

bool ingest__frame_number(ingest_parser *p, int64_t raw, const char *what, uint32_t *frame)
{
    if (raw < 0 || raw > (int64_t)SCHEMA_FRAME_MAX)
        return ingest__json_fail(p->json, SL_EINVAL, "%s %lld is not a frame number (0 to %u)",
                                 what, (long long)raw, SCHEMA_FRAME_MAX);
    int64_t f = raw + p->opt.frame_offset; /* both bounded: cannot overflow */
    if (f < 0 || f > SCHEMA_FRAME_MAX)
        return ingest__json_fail(
            p->json, SL_EINVAL, "%s %lld with frame offset %lld gives frame %lld, outside 0 to %u",
            what, (long long)raw, (long long)p->opt.frame_offset, (long long)f, SCHEMA_FRAME_MAX);
    *frame = (uint32_t)f;
    return true;
}

bool ingest__filename_number(const char *s, size_t len, int64_t *out)
{
    size_t base = 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '/' || s[i] == '\\')
            base = i + 1;
    size_t end = len;
    while (end > base && !(s[end - 1] >= '0' && s[end - 1] <= '9'))
        end--;
    if (end == base)
        return false;
    size_t start = end;
    while (start > base && s[start - 1] >= '0' && s[start - 1] <= '9')
        start--;
    while (start + 1 < end && s[start] == '0')
        start++; /* leading zeros: "000396" is 396 */
    if (end - start > 12)
        return false;
    int64_t v = 0;
    for (size_t i = start; i < end; i++)
        v = v * 10 + (s[i] - '0');
    *out = v;
    return true;
}

sl_status ingest__state_new(ingest_parser *p, size_t size, sl_error *err)
{
    p->fs = calloc(1, size);
    return p->fs ? SL_OK : sl_error_set(err, SL_ENOMEM, "out of memory");
}

bool ingest__members_present(ingest_parser *p, unsigned have, const ingest__member *required,
                             size_t n, const char *thing)
{
    size_t i = 0;
    while (i < n && (have & required[i].bit))
        i++;
    return i == n || ingest__json_fail(p->json, SL_EINVAL, "%s has no %s", thing, required[i].name);
}

bool ingest__frame_ref_id(ingest_parser *p, ingest__frame_ref *r, ingest__jev ev,
                          const ingest__jval *v)
{
    bool number = ev == INGEST__J_NUMBER;
    r->have_id = number && ingest__number_int(v->s, v->len, &r->id);
    return r->have_id ||
           ingest__json_fail(p->json, SL_EINVAL, "frame must be a whole number, not %.*s",
                             number ? (int)v->len : 32, number ? v->s : ingest__jev_name(ev));
}

bool ingest__frame_ref_filename(ingest_parser *p, ingest__frame_ref *r, ingest__jev ev,
                                const ingest__jval *v)
{
    bool ok = ev == INGEST__J_STRING;
    if (ok)
        r->have_file_no = ingest__filename_number(v->s, v->len, &r->file_no);
    return ok || ingest__json_fail(p->json, SL_EINVAL, "filename must be a string, not %s",
                                   ingest__jev_name(ev));
}

bool ingest__frame_pick(ingest_parser *p, const ingest__frame_ref *r, const char *thing,
                        const char *id_name, const char *no_id, int64_t *raw, const char **what)
{
    bool ok;
    if (p->opt.frame_source == INGEST_FRAME_FROM_FILENAME) {
        ok = r->have_file_no ||
             ingest__json_fail(p->json, SL_EINVAL,
                               "%s has no filename with a number, and frame numbers were asked "
                               "from file names",
                               thing);
        *raw = r->file_no;
        *what = "number in filename";
    } else {
        ok = r->have_id || ingest__json_fail(p->json, SL_EINVAL, "%s", no_id);
        *raw = r->id;
        *what = id_name;
    }
    return ok;
}

bool ingest__frame_emit(ingest_parser *p, int64_t raw, const char *what)
{
    uint32_t frame = 0;
    return ingest__frame_number(p, raw, what, &frame) &&
           ingest__emit(p, frame, ingest__json_offset(p->json), p->err) == SL_OK;
}

/* Marks frame f as seen; false when it already was. */
static sl_status frameset_claim(ingest__frameset *fs, uint32_t f, bool *fresh, sl_error *err)
{
    uint32_t page = f >> FRAME_PAGE_BITS;
    size_t lo = 0, hi = fs->n;
    if (fs->n > 0 && fs->page_no[fs->n - 1] == page)
        lo = fs->n - 1; /* frames mostly come in order */
    else
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (fs->page_no[mid] < page)
                lo = mid + 1;
            else
                hi = mid;
        }
    sl_status rc = SL_OK;
    if (lo == fs->n || fs->page_no[lo] != page) {
        if (fs->n >= FRAME_PAGES_MAX) {
            rc = sl_error_set(err, SL_ETOOLARGE,
                              "frame numbers of one input are spread over more than %u blocks of "
                              "%u frames; split the input",
                              FRAME_PAGES_MAX, 1u << FRAME_PAGE_BITS);
            goto out;
        }
        if (fs->n == fs->cap) {
            size_t cap = fs->cap ? fs->cap * 2 : 8;
            uint32_t *pn = realloc(fs->page_no, sizeof *pn * cap);
            if (pn)
                fs->page_no = pn;
            uint64_t **b = realloc(fs->bits, sizeof *b * cap);
            if (b)
                fs->bits = b;
            if (!pn || !b) {
                rc = sl_error_set(err, SL_ENOMEM, "out of memory");
                goto out;
            }
            fs->cap = cap;
        }
        uint64_t *words = calloc(FRAME_PAGE_WORDS, sizeof *words);
        if (!words) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
            goto out;
        }
        memmove(fs->page_no + lo + 1, fs->page_no + lo, sizeof *fs->page_no * (fs->n - lo));
        memmove(fs->bits + lo + 1, fs->bits + lo, sizeof *fs->bits * (fs->n - lo));
        fs->page_no[lo] = page;
        fs->bits[lo] = words;
        fs->n++;
    }
    uint32_t bit = f & ((1u << FRAME_PAGE_BITS) - 1);
    uint64_t m = 1ull << (bit % 64);
    *fresh = !(fs->bits[lo][bit / 64] & m);
    fs->bits[lo][bit / 64] |= m;
out:
    return rc;
}

sl_status ingest__emit(ingest_parser *p, uint32_t frame, int64_t offset, sl_error *err)
{
    bool fresh = false;
    sl_error e;
    sl_error_clear(&e);
    sl_status rc = frameset_claim(&p->seen, frame, &fresh, &e);
    if (rc == SL_OK && !fresh)
        rc = sl_error_set(&e, SL_EINVAL,
                          "frame %u appears twice in this input: which detections count is "
                          "ambiguous",
                          frame);
    if (rc != SL_OK) {
        /* Inside the reader the path names the frame's record. */
        if (ingest__json_active(p->json))
            ingest__json_fail(p->json, rc, "%s", e.message);
        else
            sl_error_set_at(err, rc, NULL, offset, "%s", e.message);
    }
    if (rc == SL_OK) {
        ingest_frame f = {
            .frame = frame, .count = p->ndets, .detections = p->dets, .offset = offset};
        rc = p->fn(p->ctx, &f, err);
    }
    p->ndets = 0;
    return rc;
}

/* ---------------------------------------------------------------------------
 * Shared checks.
 * ------------------------------------------------------------------------- */
void ingest__fmt_number(double v, char out[32])
{
    /* The shortest text that reads back as v: 0.1, not 0.10000000000000001. */
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, 32, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

bool ingest__check_range(ingest_parser *p, const char *sub, const char *name, double v, double lo,
                         bool lo_open, double hi, const char *why)
{
    if ((lo_open ? v > lo : v >= lo) && v <= hi)
        return true;
    char num[32];
    ingest__fmt_number(v, num);
    return ingest__json_fail_at(p->json, sub, SL_EINVAL, "%s %s is outside %c%g, %g]%s%s", name,
                                num, lo_open ? '(' : '[', lo, hi, why ? ": " : "", why ? why : "");
}

bool ingest__get_number(ingest_parser *p, ingest__jev ev, const ingest__jval *v, const char *name,
                        double *out)
{
    if (ev != INGEST__J_NUMBER)
        return ingest__json_fail(p->json, SL_EINVAL, "%s must be a number, not %s", name,
                                 ingest__jev_name(ev));
    if (!ingest__number(v->s, v->len, out))
        return ingest__json_fail(p->json, SL_EINVAL, "%s %.*s is not a finite number", name,
                                 (int)v->len, v->s);
    return true;
}

bool ingest__box_set(ingest_parser *p, const char *sub, ingest_detection *d, double x, double y,
                     double w, double h)
{
    double x0 = x < 0 ? 0 : x, y0 = y < 0 ? 0 : y;
    double x1 = x + w > 1 ? 1 : x + w, y1 = y + h > 1 ? 1 : y + h;
    /* Stored in millionths: a box that thin would be stored with no size. */
    if (x1 - x0 < INGEST_BOX_MIN || y1 - y0 < INGEST_BOX_MIN)
        return ingest__json_fail_at(p->json, sub, SL_EINVAL,
                                    "box is %g x %g of the image inside it; the least is %g",
                                    x1 - x0, y1 - y0, INGEST_BOX_MIN);
    d->x = x0;
    d->y = y0;
    d->w = x1 - x0;
    d->h = y1 - y0;
    return true;
}

/* ---------------------------------------------------------------------------
 * Life cycle.
 * ------------------------------------------------------------------------- */
static const ingest__format *format_of(ingest_format f)
{
    switch (f) {
    case INGEST_FORMAT_DARKNET:
        return &ingest__fmt_darknet;
    case INGEST_FORMAT_DARKNET_STREAM:
        return &ingest__fmt_darknet_stream;
    case INGEST_FORMAT_COCO:
        return &ingest__fmt_coco;
    case INGEST_FORMAT_TFOD:
        return &ingest__fmt_tfod;
    case INGEST_FORMAT_NDJSON:
        return &ingest__fmt_ndjson;
    default:
        return NULL;
    }
}

sl_status ingest_parser_new(const ingest_parse_options *opt, ingest_frame_fn fn, void *ctx,
                            ingest_parser **out, sl_error *err)
{
    sl_status rc = SL_OK;
    ingest_parser *p = NULL;
    const ingest__format *fmt = format_of(opt->format);
    if (!fmt) {
        rc = sl_error_set_at(err, SL_EUNSUPPORTED, "format", -1,
                             "format %s does not hold detections", ingest_format_name(opt->format));
        goto out;
    }
    if (opt->frame_offset < -(int64_t)SCHEMA_FRAME_MAX ||
        opt->frame_offset > (int64_t)SCHEMA_FRAME_MAX) {
        rc = sl_error_set_at(err, SL_EINVAL, "frame_offset", -1,
                             "frame offset %lld is outside -%u to %u", (long long)opt->frame_offset,
                             SCHEMA_FRAME_MAX, SCHEMA_FRAME_MAX);
        goto out;
    }
    p = calloc(1, sizeof *p);
    if (!p) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory creating a parser");
        goto out;
    }
    p->opt = *opt;
    if (opt->limits)
        p->lim = *opt->limits;
    else
        ingest_limits_default(&p->lim);
    if (!p->opt.categories)
        p->opt.categories = ingest_categories_coco();
    p->fn = fn;
    p->ctx = ctx;
    p->fmt = fmt;
    p->nslots = 64;
    while (p->nslots < 2u * p->lim.max_labels)
        p->nslots *= 2;
    p->slots = calloc(p->nslots, sizeof *p->slots);
    if (!p->slots) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory creating a parser");
        goto out;
    }
    ingest__json_options jo = {
        .limits = &p->lim, .multi = fmt->multi, .darknet_escapes = fmt->darknet_escapes};
    rc = ingest__json_new(&jo, fmt->event, p, &p->json, err);
    if (rc == SL_OK && fmt->init)
        rc = fmt->init(p, err);
out:
    if (rc != SL_OK)
        ingest_parser_free(&p);
    else
        *out = p;
    return rc;
}

sl_status ingest_parser_feed(ingest_parser *p, const void *data, size_t len, sl_error *err)
{
    sl_status rc = SL_OK;
    if (p->failed || p->finished) {
        rc = sl_error_set(err, SL_EINVAL, "parser already %s", p->failed ? "failed" : "finished");
    } else {
        p->err = err;
        rc = ingest__json_feed(p->json, data, len, err);
        p->failed = rc != SL_OK;
    }
    return rc;
}

sl_status ingest_parser_finish(ingest_parser *p, sl_error *err)
{
    sl_status rc = SL_OK;
    if (p->failed || p->finished) {
        rc = sl_error_set(err, SL_EINVAL, "parser already %s", p->failed ? "failed" : "finished");
    } else {
        p->err = err;
        rc = ingest__json_finish(p->json, p->fmt->open_top, err);
        if (rc == SL_OK && p->fmt->finish)
            rc = p->fmt->finish(p, err);
        p->failed = rc != SL_OK;
        p->finished = true;
    }
    return rc;
}

void ingest_parser_free(ingest_parser **pp)
{
    if (!pp || !*pp)
        return;
    ingest_parser *p = *pp;
    if (p->fmt && p->fmt->free_state)
        p->fmt->free_state(p);
    free(p->fs);
    ingest__json_free(&p->json);
    for (uint32_t i = 0; i < p->nlabels; i++)
        free(p->labels[i].name);
    free(p->labels);
    free(p->slots);
    free(p->dets);
    for (size_t i = 0; i < p->seen.n; i++)
        free(p->seen.bits[i]);
    free(p->seen.bits);
    free(p->seen.page_no);
    free(p);
    *pp = NULL;
}
