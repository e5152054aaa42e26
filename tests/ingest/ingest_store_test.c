/* ingest_store_test.c -- ingest through the real SQLite store: round trips,
 * byte-identical re-sends, atomic failures, bad input, body codecs. */
#include "ingest/ingest.h"
#include "tests/check.h"

#include <dirent.h>
#include <math.h>
#include <unistd.h>

#define T "acme"

static char dir[64];
static store *st;

/* ---------------------------------------------------------------------------
 * Helpers.
 * ------------------------------------------------------------------------- */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    REQUIRE(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    REQUIRE(buf && fread(buf, 1, (size_t)n, f) == (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Every document of both tables, in key order, as one byte string. */
static char *dump(size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    REQUIRE(out);
    for (int t = 0; t < 2; t++) {
        char token[STORE_TOKEN_MAX] = "";
        for (;;) {
            store_query_opts q = {.range = {STORE_RANGE_ALL, NULL, NULL},
                                  .limit = STORE_PAGE_MAX,
                                  .page_token = token[0] ? token : NULL};
            store_page page = {0};
            sl_error e;
            sl_error_clear(&e);
            REQUIRE(store_scan(st, (store_table)t, "", &q, &page, &e) == SL_OK);
            for (size_t i = 0; i < page.count; i++) {
                while (n + page.docs[i].len > cap) {
                    cap *= 2;
                    out = realloc(out, cap);
                    REQUIRE(out);
                }
                memcpy(out + n, page.docs[i].data, page.docs[i].len);
                n += page.docs[i].len;
            }
            bool more = page.next_token != NULL;
            if (more)
                snprintf(token, sizeof token, "%s", page.next_token);
            store_page_free(&page);
            if (!more)
                break;
        }
    }
    *len = n;
    return out;
}

static bool same_dump(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}

typedef struct det {
    char label[INGEST_LABEL_MAX + 1];
    char sku[64]; /* "" when unmapped */
    double conf, x, y, w, h;
} det;

typedef struct frame {
    uint32_t frame, n;
    det *d;
} frame;

typedef struct frames {
    frame *f;
    size_t n, cap;
} frames;

static void frames_free(frames *fs)
{
    for (size_t i = 0; i < fs->n; i++)
        free(fs->f[i].d);
    free(fs->f);
    memset(fs, 0, sizeof *fs);
}

static frame *frames_add(frames *fs, uint32_t no, uint32_t n)
{
    if (fs->n == fs->cap) {
        fs->cap = fs->cap ? fs->cap * 2 : 64;
        fs->f = realloc(fs->f, sizeof *fs->f * fs->cap);
        REQUIRE(fs->f);
    }
    frame *f = &fs->f[fs->n++];
    f->frame = no;
    f->n = n;
    f->d = calloc(n ? n : 1, sizeof *f->d);
    REQUIRE(f->d);
    return f;
}

static sl_status collect(void *ctx, const ingest_frame *fr, sl_error *err)
{
    frame *f = frames_add(ctx, fr->frame, fr->count);
    for (uint32_t i = 0; i < fr->count; i++) {
        const ingest_detection *d = &fr->detections[i];
        snprintf(f->d[i].label, sizeof f->d[i].label, "%s", d->label);
        f->d[i].conf = d->confidence;
        f->d[i].x = d->x;
        f->d[i].y = d->y;
        f->d[i].w = d->w;
        f->d[i].h = d->h;
    }
    (void)err;
    return SL_OK;
}

/* What the parser makes of a file: the "what went in" of a round trip. */
static void parse_file(const ingest_parse_options *o, const char *path, frames *out)
{
    size_t len;
    char *text = slurp(path, &len);
    ingest_parser *p = NULL;
    sl_error e;
    sl_error_clear(&e);
    memset(out, 0, sizeof *out);
    REQUIRE(ingest_parser_new(o, collect, out, &p, &e) == SL_OK);
    REQUIRE(ingest_parser_feed(p, text, len, &e) == SL_OK);
    REQUIRE(ingest_parser_finish(p, &e) == SL_OK);
    ingest_parser_free(&p);
    free(text);
}

/* Decodes one frame document (docs/documents.md "frame"). */
static void decode_frame(const bson_t *doc, frames *out)
{
    bson_iter_t it, arr;
    int64_t no = -1;
    int32_t n = -1;
    const char *labels[256], *skus[256];
    uint32_t nl = 0, ns = 0;
    const uint8_t *bin = NULL;
    uint32_t bin_len = 0;
    bson_subtype_t sub;
    if (bson_iter_init_find(&it, doc, "frame") && BSON_ITER_HOLDS_INT64(&it))
        no = bson_iter_int64(&it);
    if (bson_iter_init_find(&it, doc, "n") && BSON_ITER_HOLDS_INT32(&it))
        n = bson_iter_int32(&it);
    if (bson_iter_init_find(&it, doc, "labels") && bson_iter_recurse(&it, &arr))
        while (bson_iter_next(&arr) && nl < 256)
            labels[nl++] = bson_iter_utf8(&arr, NULL);
    if (bson_iter_init_find(&it, doc, "skus") && bson_iter_recurse(&it, &arr))
        while (bson_iter_next(&arr) && ns < 256)
            skus[ns++] = BSON_ITER_HOLDS_UTF8(&arr) ? bson_iter_utf8(&arr, NULL) : NULL;
    if (bson_iter_init_find(&it, doc, "det") && BSON_ITER_HOLDS_BINARY(&it))
        bson_iter_binary(&it, &sub, &bin_len, &bin);
    REQUIRE(no >= 0 && n >= 0 && nl == ns);
    CHECK_INT(bin_len, (uint32_t)n * SCHEMA_FRAME_DET_SIZE);
    frame *f = frames_add(out, (uint32_t)no, (uint32_t)n);
    for (int32_t i = 0; i < n; i++) {
        schema_frame_det r;
        sl_error e;
        sl_error_clear(&e);
        REQUIRE(schema_frame_det_unpack(bin, bin_len, (size_t)i, nl, &r, &e) == SL_OK);
        snprintf(f->d[i].label, sizeof f->d[i].label, "%s", labels[r.label]);
        snprintf(f->d[i].sku, sizeof f->d[i].sku, "%s", skus[r.label] ? skus[r.label] : "");
        f->d[i].conf = r.confidence / 1e6;
        f->d[i].x = r.x / 1e6;
        f->d[i].y = r.y / 1e6;
        f->d[i].w = r.w / 1e6;
        f->d[i].h = r.h / 1e6;
    }
}

/* The frames of a surgery, in frame order, paged as the API will. */
static void read_frames(const char *surgery, frames *out)
{
    schema_key pk;
    sl_error e;
    sl_error_clear(&e);
    memset(out, 0, sizeof *out);
    REQUIRE(schema_pk_surgery(pk, T, surgery, &e) == SL_OK);
    char token[STORE_TOKEN_MAX] = "";
    for (;;) {
        store_query_opts q = {.range = {STORE_RANGE_BETWEEN, "FRAME#000000000", "FRAME#999999999"},
                              .limit = 7, /* several pages */
                              .page_token = token[0] ? token : NULL};
        store_page page = {0};
        REQUIRE(store_query(st, STORE_ITEMS, pk, &q, &page, &e) == SL_OK);
        for (size_t i = 0; i < page.count; i++) {
            bson_t view;
            REQUIRE(store_page_view(&page, i, &view));
            decode_frame(&view, out);
        }
        bool more = page.next_token != NULL;
        if (more)
            snprintf(token, sizeof token, "%s", page.next_token);
        store_page_free(&page);
        if (!more)
            break;
    }
}

/* The catalog of the fixtures: whole-label matches, case as written unless
 * the pattern says (?i). */
static const char *expected_sku(const char *label)
{
    if (!strcmp(label, "scalpel") || !strcmp(label, "Scalpel-10") || !strcmp(label, "scalpel 10"))
        return "SCALPEL-10";
    if (!strcmp(label, "sponge") || !strcasecmp(label, "surgical sponge"))
        return "SPONGE-18";
    if (!strcmp(label, "forceps"))
        return "FORCEPS";
    return "";
}

static bool micro_equal(double stored, double in)
{
    return fabs(stored - in) <= 0.5e-6 + 1e-12;
}

static void compare(const frames *want, const frames *got)
{
    CHECK_INT(got->n, want->n);
    for (size_t i = 0; i < want->n && i < got->n; i++) {
        const frame *a = &want->f[i], *b = &got->f[i];
        CHECK_INT(b->frame, a->frame);
        CHECK_INT(b->n, a->n);
        for (uint32_t k = 0; k < a->n && k < b->n; k++) {
            CHECK_STR(b->d[k].label, a->d[k].label);
            CHECK_STR(b->d[k].sku, expected_sku(a->d[k].label));
            CHECK(micro_equal(b->d[k].conf, a->d[k].conf));
            CHECK(micro_equal(b->d[k].x, a->d[k].x) && micro_equal(b->d[k].y, a->d[k].y));
            CHECK(micro_equal(b->d[k].w, a->d[k].w) && micro_equal(b->d[k].h, a->d[k].h));
        }
    }
}

static void put_surgery(const char *id)
{
    size_t len;
    char *body = slurp(SL_FIXTURES "/surgery/surgery.json", &len);
    sl_error e;
    sl_error_clear(&e);
    CHECK_INT(ingest_surgery_put(st, T, id, body, len, NULL, &e), SL_OK);
    free(body);
}

static void put_catalog(void)
{
    static const struct {
        const char *sku, *file;
    } entries[] = {{"SCALPEL-10", "scalpel"}, {"SPONGE-18", "sponge"}, {"FORCEPS", "forceps"}};
    for (size_t i = 0; i < 3; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/catalog/%s.json", SL_FIXTURES, entries[i].file);
        size_t len;
        char *body = slurp(path, &len);
        sl_error e;
        sl_error_clear(&e);
        CHECK_INT(ingest_catalog_put(st, T, entries[i].sku, body, len, NULL, &e), SL_OK);
        free(body);
    }
}

static sl_status ingest_mem(const ingest_request *rq, const char *text, size_t len,
                            ingest_summary *sum, sl_error *e)
{
    ingest_job *j = NULL;
    sl_error_clear(e);
    sl_status rc = ingest_job_begin(st, rq, &j, e);
    if (rc == SL_OK)
        rc = ingest_job_feed(j, text, len, e);
    if (rc == SL_OK)
        rc = ingest_job_commit(&j, sum, e);
    ingest_job_abort(&j);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Round trips and idempotency.
 * ------------------------------------------------------------------------- */
typedef struct fixture {
    const char *surgery, *file;
    ingest_format format;
    int64_t offset;
    uint32_t width, height;
} fixture;

static const fixture fixtures[] = {
    {"s-darknet", "darknet/result.json", INGEST_FORMAT_DARKNET, 0, 0, 0},
    {"s-stream", "darknet/demo-stream.json", INGEST_FORMAT_DARKNET_STREAM, 1000, 0, 0},
    {"s-coco", "coco/results.json", INGEST_FORMAT_COCO, 0, 0, 0},         /* surgery's 640x480 */
    {"s-coco-hd", "coco/results.json", INGEST_FORMAT_COCO, 0, 1280, 960}, /* request's size */
    {"s-tfod", "tfod/output.json", INGEST_FORMAT_TFOD, 0, 0, 0},
    {"s-tfod-nd", "tfod/output.ndjson", INGEST_FORMAT_TFOD, -100, 0, 0},
    {"s-ndjson", "ndjson/frames.ndjson", INGEST_FORMAT_NDJSON, 0, 0, 0},
};
#define NFIX (sizeof fixtures / sizeof fixtures[0])

static void ingest_fixture(const fixture *fx, ingest_summary *sum)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", SL_FIXTURES, fx->file);
    ingest_request rq = {.tenant = T,
                         .surgery = fx->surgery,
                         .format = fx->format,
                         .frame_offset = fx->offset,
                         .image_width = fx->width,
                         .image_height = fx->height};
    sl_error e;
    sl_error_clear(&e);
    sl_status rc = ingest_file(st, &rq, path, NULL, NULL, sum, &e);
    if (rc != SL_OK)
        fprintf(stderr, "%s: %s (%s, %lld)\n", fx->file, e.message, e.field, (long long)e.offset);
    CHECK_INT(rc, SL_OK);
}

static void test_round_trips(void)
{
    for (size_t i = 0; i < NFIX; i++) {
        const fixture *fx = &fixtures[i];
        put_surgery(fx->surgery);
        ingest_summary sum;
        ingest_fixture(fx, &sum);
        char path[256];
        snprintf(path, sizeof path, "%s/%s", SL_FIXTURES, fx->file);
        ingest_parse_options o = {.format = fx->format,
                                  .frame_offset = fx->offset,
                                  .image_width = fx->width ? fx->width : 640,
                                  .image_height = fx->height ? fx->height : 480};
        frames want, got;
        parse_file(&o, path, &want);
        read_frames(fx->surgery, &got);
        compare(&want, &got);
        CHECK_INT(sum.frames, want.n);
        CHECK_INT(sum.changed, want.n);
        uint64_t dets = 0, unmapped = 0;
        for (size_t k = 0; k < want.n; k++)
            for (uint32_t d = 0; d < want.f[k].n; d++) {
                dets++;
                unmapped += expected_sku(want.f[k].d[d].label)[0] == '\0';
            }
        CHECK_INT(sum.detections, dets);
        CHECK_INT(sum.unmapped, unmapped);
        frames_free(&want);
        frames_free(&got);
    }
}

static void test_resend_identical(void)
{
    size_t alen, blen, clen;
    char *a = dump(&alen);
    store_feed_stats s1, s2;
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(store_feed_stats_get(st, NULL, &s1, &e) == SL_OK);
    for (int round = 0; round < 2; round++)
        for (size_t i = 0; i < NFIX; i++) {
            ingest_summary sum;
            ingest_fixture(&fixtures[i], &sum);
            CHECK_INT(sum.changed, 0); /* equal content is not a write */
            CHECK(sum.frames > 0);
        }
    char *b = dump(&blen);
    CHECK(same_dump(a, alen, b, blen));
    REQUIRE(store_feed_stats_get(st, NULL, &s2, &e) == SL_OK);
    CHECK_STR(s2.head_token, s1.head_token); /* and no feed event */
    /* the assets fixture too */
    ingest_request rq = {.tenant = T, .format = INGEST_FORMAT_ASSETS};
    ingest_summary sum;
    CHECK_INT(ingest_file(st, &rq, SL_FIXTURES "/assets/assets.ndjson", NULL, NULL, &sum, &e),
              SL_OK);
    free(b);
    b = dump(&blen);
    CHECK_INT(ingest_file(st, &rq, SL_FIXTURES "/assets/assets.ndjson", NULL, NULL, &sum, &e),
              SL_OK);
    CHECK_INT(sum.changed, 0);
    char *c = dump(&clen);
    CHECK(same_dump(b, blen, c, clen));
    free(a);
    free(b);
    free(c);
}

/* ---------------------------------------------------------------------------
 * Atomicity and bad input.
 * ------------------------------------------------------------------------- */
#define DK_FRAME(id, conf)                                                                         \
    "{\"frame_id\":" #id ",\"objects\":[{\"name\":\"scalpel\",\"relative_coordinates\":"           \
    "{\"center_x\":0.5,\"center_y\":0.5,\"width\":0.1,\"height\":0.1},\"confidence\":" conf "}]}"

static void test_atomic(void)
{
    put_surgery("s-atomic");
    size_t alen, blen;
    char *a = dump(&alen);
    ingest_request rq = {.tenant = T, .surgery = "s-atomic", .format = INGEST_FORMAT_DARKNET};
    ingest_summary sum;
    sl_error e;
    /* 200 good frames, then one whose confidence breaks the rule */
    size_t cap = 200 * 200 + 512, n = 0;
    char *text = malloc(cap);
    REQUIRE(text);
    n += (size_t)snprintf(text + n, cap - n, "[");
    for (int i = 1; i <= 200; i++)
        n += (size_t)snprintf(text + n, cap - n, DK_FRAME(% d, "0.5") ",", i);
    n += (size_t)snprintf(text + n, cap - n, DK_FRAME(201, "1.01") "]");
    CHECK_INT(ingest_mem(&rq, text, n, &sum, &e), SL_EINVAL);
    CHECK(strstr(e.message, "confidence 1.01 is outside [0, 1]") != NULL);
    CHECK_STR(e.field, "[200].objects[0].confidence");
    frames got;
    read_frames("s-atomic", &got);
    CHECK_INT(got.n, 0);
    frames_free(&got);
    char *b = dump(&blen);
    CHECK(same_dump(a, alen, b, blen));
    free(b);
    /* a frame number that repeats at the end */
    n -= strlen(DK_FRAME(201, "1.01") "]");
    n += (size_t)snprintf(text + n, cap - n, DK_FRAME(7, "0.5") "]");
    CHECK_INT(ingest_mem(&rq, text, n, &sum, &e), SL_EINVAL);
    CHECK(strstr(e.message, "frame 7 appears twice") != NULL);
    CHECK_STR(e.field, "[200]");
    b = dump(&blen);
    CHECK(same_dump(a, alen, b, blen));
    free(b);
    /* the good part cut off before its closing ']': refused, nothing stored */
    n -= strlen(DK_FRAME(7, "0.5") "]");
    CHECK_INT(ingest_mem(&rq, text, n, &sum, &e), SL_EINVAL);
    CHECK(strstr(e.message, "cut off") != NULL);
    CHECK_INT(e.offset, (int64_t)n);
    b = dump(&blen);
    CHECK(same_dump(a, alen, b, blen));
    free(b);
    /* and the good part alone goes in whole */
    text[n - 1] = ']';
    CHECK_INT(ingest_mem(&rq, text, n, &sum, &e), SL_OK);
    CHECK_INT(sum.frames, 200);
    free(text);
    free(a);
}

static void test_bad_input_stores_nothing(void)
{
    static const struct {
        ingest_format format;
        const char *text, *rule;
    } bad[] = {
        {INGEST_FORMAT_DARKNET, "[" DK_FRAME(1, "0.5") "," DK_FRAME(2, "\"x\"") "]",
         "confidence must be a number"},
        {INGEST_FORMAT_DARKNET, "[" DK_FRAME(1, "0.5") "," DK_FRAME(2, "NaN") "]", "NaN"},
        {INGEST_FORMAT_DARKNET, "[" DK_FRAME(1, "0.5") ",{\"frame_id\":2,\"frame_id\":3}]",
         "duplicate key"},
        {INGEST_FORMAT_DARKNET, "[" DK_FRAME(1, "0.5") ",{\"frame_id\":\"x\",\"objects\":[]}]",
         "frame_id must be a whole number"},
        {INGEST_FORMAT_DARKNET, "[" DK_FRAME(1, "0.5") ",{\"frame_id\":2,\"filename\":\"\xff\"}]",
         "not valid UTF-8"},
        {INGEST_FORMAT_NDJSON,
         "{\"frame\":1,\"detections\":[]}\n{\"frame\":2,\"detections\":[{\"label\":\"a\","
         "\"confidence\":0.5,\"box\":{\"x\":-0.1,\"y\":0,\"w\":0.2,\"h\":0.2}}]}",
         "x -0.1 is outside [0, 1]"},
        {INGEST_FORMAT_COCO,
         "[{\"image_id\":1,\"category_id\":1,\"bbox\":[1,1,2,2],\"score\":0.5},"
         "{\"image_id\":2,\"category_id\":1,\"bbox\":[1,1,2,2],\"score\":2}]",
         "score 2 is outside [0, 1]"},
        {INGEST_FORMAT_TFOD,
         "{\"detection_boxes\":[[0.1,0.2,0.3,0.4]],\"detection_scores\":[0.5],"
         "\"detection_classes\":[1],\"num_detections\":1}\n{\"detection_boxes\":[[0.1,0.2,"
         "0.3,1.4]],\"detection_scores\":[0.5],\"detection_classes\":[1],\"num_detections\":1}",
         "box coordinate 1.4 is outside [0, 1]"},
    };
    put_surgery("s-bad");
    size_t alen, blen;
    char *a = dump(&alen);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ingest_request rq = {.tenant = T, .surgery = "s-bad", .format = bad[i].format};
        ingest_summary sum;
        sl_error e;
        CHECK(ingest_mem(&rq, bad[i].text, strlen(bad[i].text), &sum, &e) != SL_OK);
        if (!strstr(e.message, bad[i].rule))
            fprintf(stderr, "case %zu: %s\n", i, e.message);
        CHECK(strstr(e.message, bad[i].rule) != NULL);
        CHECK(e.offset >= 0);
        CHECK(e.field[0] != '\0');
        char *b = dump(&blen);
        CHECK(same_dump(a, alen, b, blen));
        free(b);
    }
    /* unknown surgery, unknown tenant spelling, closed surgery */
    sl_error e;
    ingest_summary sum;
    ingest_request rq = {.tenant = T, .surgery = "nope", .format = INGEST_FORMAT_DARKNET};
    CHECK_INT(ingest_mem(&rq, "[]", 2, &sum, &e), SL_ENOTFOUND);
    CHECK(strstr(e.message, "unknown surgery \"nope\"") != NULL);
    rq.tenant = "bad#tenant";
    CHECK_INT(ingest_mem(&rq, "[]", 2, &sum, &e), SL_EINVAL);
    CHECK(strstr(e.message, "'#'") != NULL);
    char *b = dump(&blen);
    CHECK(same_dump(a, alen, b, blen));
    free(b);
    free(a);
}

/* Regression (issue 11): only a "closed" surgery refused detections; every
 * status but open must (closed: analysis queued or running; analyzed and
 * failed: its results, or their failure, describe the frames stored), and a
 * PUT of the description keeps the whole life cycle. */
static void test_not_open_surgery(void)
{
    static const char *const statuses[] = {"closed", "analyzed", "failed"};
    for (size_t i = 0; i < 3; i++) {
        char id[32];
        snprintf(id, sizeof id, "s-%s", statuses[i]);
        put_surgery(id);
        schema_key pk;
        sl_error e;
        sl_error_clear(&e);
        REQUIRE(schema_pk_surgery(pk, T, id, &e) == SL_OK);
        bson_t *doc = NULL, set = BSON_INITIALIZER;
        REQUIRE(store_get(st, STORE_ITEMS, pk, SCHEMA_SK_META, &doc, &e) == SL_OK);
        /* as the engine's transitions leave it: same document, other status */
        bson_copy_to_excluding_noinit(doc, &set, "status", "closed_ms", "analyzed_ms",
                                      "analysis_error", "v", NULL);
        BSON_APPEND_UTF8(&set, "status", statuses[i]);
        BSON_APPEND_INT64(&set, "closed_ms", 1764144000000);
        BSON_APPEND_INT64(&set, "analyzed_ms", i ? 1764144060000 : 0);
        BSON_APPEND_UTF8(&set, "analysis_error", i == 2 ? "catalog entry TOOL#X: bad" : "");
        CHECK_INT(store_put(st, STORE_ITEMS, &set, (store_cond){STORE_COND_NONE, 0}, NULL, &e),
                  SL_OK);
        bson_destroy(doc);
        bson_destroy(&set);
        /* a PUT keeps the life cycle */
        put_surgery(id);
        REQUIRE(store_get(st, STORE_ITEMS, pk, SCHEMA_SK_META, &doc, &e) == SL_OK);
        bson_iter_t it;
        CHECK(bson_iter_init_find(&it, doc, "status") &&
              !strcmp(bson_iter_utf8(&it, NULL), statuses[i]));
        CHECK(bson_iter_init_find(&it, doc, "closed_ms") && bson_iter_int64(&it) == 1764144000000);
        CHECK(bson_iter_init_find(&it, doc, "analyzed_ms") &&
              bson_iter_int64(&it) == (i ? 1764144060000 : 0));
        CHECK(bson_iter_init_find(&it, doc, "analysis_error") &&
              !strcmp(bson_iter_utf8(&it, NULL), i == 2 ? "catalog entry TOOL#X: bad" : ""));
        bson_destroy(doc);
        /* detections are refused, naming the status, and nothing is stored */
        size_t alen, blen;
        char *a = dump(&alen);
        ingest_request rq = {.tenant = T, .surgery = id, .format = INGEST_FORMAT_DARKNET};
        ingest_summary sum;
        const char *in = "[" DK_FRAME(1, "0.5") "]";
        sl_error_clear(&e);
        CHECK_INT(ingest_mem(&rq, in, strlen(in), &sum, &e), SL_ECONFLICT);
        char want[96];
        snprintf(want, sizeof want, "surgery \"%s\" is %s: its detections can no longer change", id,
                 statuses[i]);
        if (!strstr(e.message, want))
            fprintf(stderr, "%s: %s\n", statuses[i], e.message);
        CHECK(strstr(e.message, want) != NULL);
        char *b = dump(&blen);
        CHECK(same_dump(a, alen, b, blen));
        free(a);
        free(b);
    }
}

/* ---------------------------------------------------------------------------
 * Surgery, catalog and asset bodies.
 * ------------------------------------------------------------------------- */
static void test_surgery_doc(void)
{
    sl_error e;
    bson_t *doc = NULL;
    const char *good = "{\"hospital\":\"st-mary\",\"room\":\"OR 3\",\"procedure\":\"lap-chole\","
                       "\"surgeon\":\"Dr. Grey\",\"started_at\":\"2026-11-26T08:15:00.000+00:00\","
                       "\"fps\":29.97,\"frame_width\":1920,\"frame_height\":1080,"
                       "\"table\":[[0,0.5],[1,0.5],[0.5,1]]}";
    sl_error_clear(&e);
    CHECK_INT(ingest_surgery_doc(T, "s9", good, strlen(good), NULL, NULL, &doc, &e), SL_OK);
    REQUIRE(doc);
    bson_iter_t it;
    CHECK(bson_iter_init_find(&it, doc, "gsi1pk") &&
          !strcmp(bson_iter_utf8(&it, NULL), "T#acme#HOSPITAL#st-mary"));
    CHECK(bson_iter_init_find(&it, doc, "gsi1sk") &&
          !strcmp(bson_iter_utf8(&it, NULL), "DATE#2026-11-26#SURGERY#s9"));
    CHECK(bson_iter_init_find(&it, doc, "started_at") &&
          !strcmp(bson_iter_utf8(&it, NULL), "2026-11-26T08:15:00.000Z"));
    CHECK(bson_iter_init_find(&it, doc, "status") && !strcmp(bson_iter_utf8(&it, NULL), "open"));
    bson_destroy(doc);
    static const struct {
        const char *body, *rule, *field;
    } bad[] = {
        {"{\"room\":\"a\"}", "hospital is required", "hospital"},
        {"{\"hospital\":\"a/b\",\"room\":\"r\"}", "'/'", "hospital"},
        {"{\"hospital\":\"h\",\"room\":\"r\",\"procedure\":\"p\",\"surgeon\":\"s\","
         "\"started_at\":\"yesterday\",\"fps\":30,\"frame_width\":640,\"frame_height\":480,"
         "\"table\":[[0,0],[1,0],[1,1]]}",
         "is not UTC ISO-8601", "started_at"},
        {"{\"hospital\":\"h\",\"room\":\"r\",\"procedure\":\"p\",\"surgeon\":\"s\","
         "\"started_at\":\"2026-11-26T08:00:00Z\",\"fps\":30,\"frame_width\":640,"
         "\"frame_height\":480,\"table\":[[0,0],[1,0],[1,1.5]]}",
         "1.5 is outside [0, 1]", "table[2][1]"},
        {"{\"hospital\":\"h\",\"room\":\"r\",\"procedure\":\"p\",\"surgeon\":\"s\","
         "\"started_at\":\"2026-11-26T08:00:00Z\",\"fps\":30,\"frame_width\":640.5,"
         "\"frame_height\":480,\"table\":[[0,0],[1,0],[1,1]]}",
         "frame_width must be a whole number", "frame_width"},
        {"{\"hospital\":\"h\",\"room\":\"r\",\"procedure\":\"p\",\"surgeon\":\"s\","
         "\"started_at\":\"2026-11-26T08:00:00Z\",\"fps\":0,\"frame_width\":640,"
         "\"frame_height\":480,\"table\":[[0,0],[1,0]]}",
         "fps must be above 0", "fps"},
        {"[1]", "a surgery is a JSON object", ""},
        {"{\"hospital\":\"h\",\"hospital\":\"g\"}", "duplicate key", "hospital"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl_error_clear(&e);
        doc = NULL;
        CHECK_INT(
            ingest_surgery_doc(T, "s9", bad[i].body, strlen(bad[i].body), NULL, NULL, &doc, &e),
            SL_EINVAL);
        CHECK(doc == NULL);
        if (!strstr(e.message, bad[i].rule))
            fprintf(stderr, "surgery case %zu: %s\n", i, e.message);
        CHECK(strstr(e.message, bad[i].rule) != NULL);
        CHECK_STR(e.field, bad[i].field);
    }
}

/* The SKU label maps to, NULL when unmapped, "(error)" when matching failed. */
static const char *match(const ingest_catalog *c, const char *label)
{
    const char *sku = NULL;
    sl_error e;
    sl_error_clear(&e);
    return ingest_catalog_match(c, label, strlen(label), &sku, &e) == SL_OK ? sku : "(error)";
}

static void test_catalog(void)
{
    sl_error e;
    bson_t *doc = NULL;
    const char *bad_re = "{\"name\":\"x\",\"labels\":[\"ok\",\"sc(alpel\"],\"unit_cost_cents\":1,"
                         "\"single_use\":true}";
    sl_error_clear(&e);
    CHECK_INT(ingest_catalog_doc(T, "X", bad_re, strlen(bad_re), NULL, &doc, &e), SL_EINVAL);
    CHECK(strstr(e.message, "does not compile") && strstr(e.message, "pattern offset 8"));
    CHECK_STR(e.field, "labels[1]");
    CHECK_INT(e.offset, 27);
    const char *bad_cost = "{\"name\":\"x\",\"labels\":[\"a\"],\"unit_cost_cents\":-1,"
                           "\"single_use\":true}";
    sl_error_clear(&e);
    CHECK_INT(ingest_catalog_doc(T, "X", bad_cost, strlen(bad_cost), NULL, &doc, &e), SL_EINVAL);
    CHECK_STR(e.field, "unit_cost_cents");
    const char *bad_bool = "{\"name\":\"x\",\"labels\":[\"a\"],\"unit_cost_cents\":1,"
                           "\"single_use\":\"yes\"}";
    sl_error_clear(&e);
    CHECK_INT(ingest_catalog_doc(T, "X", bad_bool, strlen(bad_bool), NULL, &doc, &e), SL_EINVAL);
    CHECK(strstr(e.message, "single_use must be a boolean, not a string") != NULL);

    /* The bounds are schema's: the largest cost is accepted, one more is not. */
    char body[256];
    snprintf(body, sizeof body,
             "{\"name\":\"x\",\"labels\":[\"a\"],\"unit_cost_cents\":%lld,\"single_use\":true}",
             (long long)SCHEMA_UNIT_COST_MAX);
    sl_error_clear(&e);
    CHECK_INT(ingest_catalog_doc(T, "X", body, strlen(body), NULL, &doc, &e), SL_OK);
    bson_destroy(doc);
    doc = NULL;
    snprintf(body, sizeof body,
             "{\"name\":\"x\",\"labels\":[\"a\"],\"unit_cost_cents\":%lld,\"single_use\":true}",
             (long long)SCHEMA_UNIT_COST_MAX + 1);
    sl_error_clear(&e);
    CHECK_INT(ingest_catalog_doc(T, "X", body, strlen(body), NULL, &doc, &e), SL_EINVAL);
    CHECK_STR(e.field, "unit_cost_cents");
    CHECK(doc == NULL);

    /* compiled once per catalog version */
    ingest_catalog_cache *cc = NULL;
    ingest_catalog *c = NULL;
    REQUIRE(ingest_catalog_cache_new(&cc, &e) == SL_OK);
    CHECK_INT(ingest_catalog_cache_get(cc, st, T, &c, &e), SL_OK);
    CHECK_INT(ingest_catalog_size(c), 3);
    CHECK_STR(match(c, "scalpel"), "SCALPEL-10");
    CHECK_STR(match(c, "Scalpel_10"), "SCALPEL-10");
    CHECK(match(c, "scalpel-holder") == NULL); /* whole label only */
    CHECK(match(c, "Scalpel") == NULL);        /* case as written */
    ingest_catalog_release(&c);
    CHECK_INT(ingest_catalog_cache_get(cc, st, T, &c, &e), SL_OK);
    ingest_catalog_release(&c);
    CHECK_INT(ingest_catalog_cache_compiles(cc), 1);
    put_catalog(); /* same content: no new version */
    CHECK_INT(ingest_catalog_cache_get(cc, st, T, &c, &e), SL_OK);
    ingest_catalog_release(&c);
    CHECK_INT(ingest_catalog_cache_compiles(cc), 1);
    const char *holder = "{\"name\":\"Scalpel holder\",\"labels\":[\"scalpel-holder\"],"
                         "\"unit_cost_cents\":900,\"single_use\":false}";
    CHECK_INT(ingest_catalog_put(st, T, "HOLDER", holder, strlen(holder), NULL, &e), SL_OK);
    CHECK_INT(ingest_catalog_cache_get(cc, st, T, &c, &e), SL_OK);
    CHECK_INT(ingest_catalog_cache_compiles(cc), 2);
    CHECK_STR(match(c, "scalpel-holder"), "HOLDER");
    CHECK_INT(ingest_catalog_skipped(c), 0);
    ingest_catalog_release(&c);
    /* A stored entry no PUT would write (an earlier version's cost) is
     * skipped: its labels go unmapped, the others still map. */
    bson_t *bad = BCON_NEW("pk", "T#" T "#CATALOG", "sk", "TOOL#OLD", "type", "catalog_tool", "sku",
                           "OLD", "name", "old", "labels", "[", "retractor", "]", "unit_cost_cents",
                           BCON_INT64(SCHEMA_UNIT_COST_MAX * 10), "single_use", BCON_BOOL(true));
    CHECK_INT(store_put(st, STORE_ITEMS, bad, (store_cond){STORE_COND_NONE, 0}, NULL, &e), SL_OK);
    bson_destroy(bad);
    CHECK_INT(ingest_catalog_cache_get(cc, st, T, &c, &e), SL_OK);
    CHECK_INT(ingest_catalog_cache_compiles(cc), 3);
    CHECK_INT(ingest_catalog_size(c), 4);
    CHECK_INT(ingest_catalog_skipped(c), 1);
    CHECK(match(c, "retractor") == NULL);
    CHECK_STR(match(c, "scalpel"), "SCALPEL-10");
    ingest_catalog_release(&c);
    CHECK_INT(store_delete(st, STORE_ITEMS, "T#" T "#CATALOG", "TOOL#OLD",
                           (store_cond){STORE_COND_NONE, 0}, NULL, &e),
              SL_OK);
    ingest_catalog_cache_free(&cc);

    /* A pattern PCRE2 cannot finish matching (2^30 ways for (a|a)+ before
     * the '-') is an error naming it; an ingest job keeps the label
     * unmapped and the detections. */
    const char *slow = "{\"name\":\"slow\",\"labels\":[\"(a|a)+c\"],\"unit_cost_cents\":1,"
                       "\"single_use\":true}";
    CHECK_INT(ingest_catalog_put(st, T, "AAA-SLOW", slow, strlen(slow), NULL, &e), SL_OK);
    REQUIRE(ingest_catalog_load(st, T, &c, &e) == SL_OK);
    const char *sku = "x", *label = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-c";
    sl_error_clear(&e);
    CHECK_INT(ingest_catalog_match(c, label, strlen(label), &sku, &e), SL_EINVAL);
    CHECK(strstr(e.message, "catalog entry AAA-SLOW, label pattern 0") != NULL);
    CHECK_STR(sku, "x"); /* untouched */
    ingest_catalog_release(&c);
    put_surgery("s-slow");
    ingest_request rq = {.tenant = T, .surgery = "s-slow", .format = INGEST_FORMAT_DARKNET};
    ingest_summary sum;
    const char *in = "[{\"frame_id\":1,\"objects\":[{\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-c\","
                     "\"relative_coordinates\":{\"center_x\":0.5,\"center_y\":0.5,\"width\":0.1,"
                     "\"height\":0.1},\"confidence\":0.5}]}]";
    CHECK_INT(ingest_mem(&rq, in, strlen(in), &sum, &e), SL_OK);
    CHECK_INT(sum.detections, 1);
    CHECK_INT(sum.unmapped, 1);
    CHECK_STR(sum.unmapped_names[0], label);
    CHECK_INT(store_delete(st, STORE_ITEMS, "T#" T "#CATALOG", "TOOL#AAA-SLOW",
                           (store_cond){STORE_COND_NONE, 0}, NULL, &e),
              SL_OK);
}

static void test_assets(void)
{
    ingest_request rq = {.tenant = T, .format = INGEST_FORMAT_ASSETS};
    ingest_summary sum;
    sl_error e;
    sl_error_clear(&e);
    CHECK_INT(ingest_file(st, &rq, SL_FIXTURES "/assets/assets.ndjson", NULL, NULL, &sum, &e),
              SL_OK);
    CHECK_INT(sum.assets, 3);
    schema_key pk;
    REQUIRE(schema_pk_asset(pk, T, "a-002", &e) == SL_OK);
    bson_t *doc = NULL;
    REQUIRE(store_get(st, STORE_ITEMS, pk, SCHEMA_SK_META, &doc, &e) == SL_OK);
    bson_iter_t it, sub;
    CHECK(bson_iter_init_find(&it, doc, "gsi1sk") &&
          !strcmp(bson_iter_utf8(&it, NULL), "BRAND#sparkle#CAMPAIGN#summer-2026#ASSET#a-002"));
    CHECK(bson_iter_init_find(&it, doc, "memorability_micro") && bson_iter_int64(&it) == 500000);
    /* saliency in name order, whatever the body's order */
    CHECK(bson_iter_init_find(&it, doc, "saliency") && bson_iter_recurse(&it, &sub) &&
          bson_iter_next(&sub) && !strcmp(bson_iter_key(&sub), "logo"));
    CHECK(bson_iter_init_find(&it, doc, "saliency_micro") && bson_iter_recurse(&it, &sub) &&
          bson_iter_next(&sub) && bson_iter_int64(&sub) == 250000);
    CHECK(bson_iter_init_find(&it, doc, "progression") && bson_iter_recurse(&it, &sub) &&
          bson_iter_next(&sub) && bson_iter_double(&sub) == 0.2);
    bson_destroy(doc);

    static const struct {
        const char *text, *rule, *field;
    } bad[] = {
        {"{\"asset\":\"b1\",\"client\":\"c\",\"brand\":\"b\",\"sector\":\"s\",\"campaign\":\"k\","
         "\"media_type\":\"image\",\"memorability\":1.2,\"saliency\":{}}",
         "1.2 is outside [0, 1]", "line 1: memorability"},
        {"{\"asset\":\"b1\",\"client\":\"c\",\"brand\":\"b\",\"sector\":\"s\",\"campaign\":\"k\","
         "\"media_type\":\"image\",\"memorability\":0.2,\"saliency\":{}}\n"
         "{\"asset\":\"b1\",\"client\":\"c\",\"brand\":\"b\",\"sector\":\"s\",\"campaign\":\"k\","
         "\"media_type\":\"image\",\"memorability\":0.3,\"saliency\":{}}",
         "asset b1 appears twice", "line 2"},
        {"{\"asset\":\"b1\",\"client\":\"c\",\"brand\":\"b\",\"sector\":\"s\",\"campaign\":\"k\","
         "\"media_type\":\"image\",\"memorability\":0.2,\"saliency\":{},\"progression\":[0.1]}",
         "this asset is an image", "line 1: progression"},
        {"{\"asset\":\"b1\",\"client\":\"c\",\"brand\":\"b\",\"sector\":\"s\",\"campaign\":\"k\","
         "\"media_type\":\"gif\",\"memorability\":0.2,\"saliency\":{}}",
         "media_type must be \"image\" or \"video\"", "line 1: media_type"},
        {"{\"asset\":\"b1\",\"client\":\"c\",\"brand\":\"b\",\"sector\":\"s\",\"campaign\":\"k\","
         "\"media_type\":\"image\",\"memorability\":0.2,\"saliency\":{\"lo#go\":0.5}}",
         "'#'", "line 1: saliency.lo#go"},
        {"", "input is empty", ""},
    };
    size_t alen, blen;
    char *a = dump(&alen);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(ingest_mem(&rq, bad[i].text, strlen(bad[i].text), &sum, &e) != SL_OK);
        if (!strstr(e.message, bad[i].rule))
            fprintf(stderr, "asset case %zu: %s\n", i, e.message);
        CHECK(strstr(e.message, bad[i].rule) != NULL);
        CHECK_STR(e.field, bad[i].field);
        char *b = dump(&blen);
        CHECK(same_dump(a, alen, b, blen));
        free(b);
    }
    free(a);
    /* PUT and DELETE */
    const char *body = "{\"client\":\"c\",\"brand\":\"b\",\"sector\":\"s\",\"campaign\":\"k\","
                       "\"media_type\":\"image\",\"memorability\":0.25,\"saliency\":{}}";
    store_put_result res;
    CHECK_INT(ingest_asset_put(st, T, "p1", body, strlen(body), &res, &e), SL_OK);
    CHECK_INT(res.version, 1);
    const char *other = "{\"asset\":\"p2\",\"client\":\"c\",\"brand\":\"b\",\"sector\":\"s\","
                        "\"campaign\":\"k\",\"media_type\":\"image\",\"memorability\":0.25,"
                        "\"saliency\":{}}";
    sl_error_clear(&e);
    CHECK_INT(ingest_asset_put(st, T, "p1", other, strlen(other), &res, &e), SL_EINVAL);
    CHECK(strstr(e.message, "differs from \"p1\" in the path") != NULL);
    int deleted = 0;
    CHECK_INT(ingest_asset_delete(st, T, "p1", &deleted, &e), SL_OK);
    CHECK_INT(deleted, 1);
}

static void cleanup(void)
{
    store_close(&st);
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/sl-ingest-store-XXXXXX");
    REQUIRE(mkdtemp(dir));
    char uri[128];
    snprintf(uri, sizeof uri, "sqlite:%s/store.db", dir);
    sl_error e;
    sl_error_clear(&e);
    if (store_open(uri, NULL, &st, &e) != SL_OK) {
        fprintf(stderr, "store_open: %s\n", e.message);
        cleanup();
        return 1;
    }
    put_catalog();
    test_round_trips();
    test_resend_identical();
    test_atomic();
    test_bad_input_stores_nothing();
    test_not_open_surgery();
    test_surgery_doc();
    test_catalog();
    test_assets();
    cleanup();
    return check_finish();
}
