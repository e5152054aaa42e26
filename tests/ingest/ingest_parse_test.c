/* ingest_parse_test.c -- the parsers without a store: fixtures, the real
 * detector outputs, darknet quirks, the bad-input list, chunking invariance. */
#include "ingest/ingest.h"
#include "tests/check.h"
#include "tests/realdata.h"

#include <math.h>

/* ---------------------------------------------------------------------------
 * Collecting frames.
 * ------------------------------------------------------------------------- */
typedef struct got_det {
    char label[INGEST_LABEL_MAX + 1];
    double conf, x, y, w, h;
} got_det;

typedef struct got_frame {
    uint32_t frame, n;
    got_det *d;
} got_frame;

typedef struct got {
    got_frame *f;
    size_t n, cap;
    uint64_t dets, empty;
} got;

static void got_free(got *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->f[i].d);
    free(g->f);
    memset(g, 0, sizeof *g);
}

static sl_status collect(void *ctx, const ingest_frame *fr, sl_error *err)
{
    got *g = ctx;
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 64;
        g->f = realloc(g->f, sizeof *g->f * g->cap);
        REQUIRE(g->f);
    }
    got_frame *f = &g->f[g->n++];
    f->frame = fr->frame;
    f->n = fr->count;
    f->d = calloc(fr->count ? fr->count : 1, sizeof *f->d);
    REQUIRE(f->d);
    for (uint32_t i = 0; i < fr->count; i++) {
        const ingest_detection *d = &fr->detections[i];
        snprintf(f->d[i].label, sizeof f->d[i].label, "%s", d->label);
        f->d[i] = (got_det){.conf = d->confidence, .x = d->x, .y = d->y, .w = d->w, .h = d->h};
        snprintf(f->d[i].label, sizeof f->d[i].label, "%s", d->label);
        /* every emitted box lies in the image, whatever the input */
        CHECK(d->x >= 0 && d->y >= 0 && d->w > 0 && d->h > 0);
        CHECK(d->x + d->w <= 1 + 1e-12 && d->y + d->h <= 1 + 1e-12);
    }
    g->dets += fr->count;
    g->empty += fr->count == 0;
    (void)err;
    return SL_OK;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(1);
    }
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

/* Parses data fed in pieces of chunk bytes (0: all at once). */
static sl_status parse_opts(const ingest_parse_options *o, const void *data, size_t len,
                            size_t chunk, got *g, sl_error *e)
{
    ingest_parser *p = NULL;
    sl_error_clear(e);
    memset(g, 0, sizeof *g);
    sl_status rc = ingest_parser_new(o, collect, g, &p, e);
    const char *b = data;
    for (size_t at = 0; rc == SL_OK && at < len;) {
        size_t n = chunk && len - at > chunk ? chunk : len - at;
        rc = ingest_parser_feed(p, b + at, n, e);
        at += n;
    }
    if (rc == SL_OK)
        rc = ingest_parser_finish(p, e);
    ingest_parser_free(&p);
    return rc;
}

static sl_status parse(ingest_format fmt, const char *text, got *g, sl_error *e)
{
    ingest_parse_options o = {.format = fmt, .image_width = 640, .image_height = 480};
    return parse_opts(&o, text, strlen(text), 0, g, e);
}

/* Expects text to be refused with a message holding rule, at field and
 * offset (-2: do not check the offset). */
#define REFUSED(fmt, text, rule, want_field, want_offset)                                          \
    do {                                                                                           \
        got g_;                                                                                    \
        sl_error e_;                                                                               \
        sl_status rc_ = parse(fmt, text, &g_, &e_);                                                \
        CHECK(rc_ != SL_OK);                                                                       \
        if (!strstr(e_.message, rule))                                                             \
            fprintf(stderr, "  message was: %s\n", e_.message);                                    \
        CHECK(strstr(e_.message, rule) != NULL);                                                   \
        CHECK_STR(e_.field, want_field);                                                           \
        if ((want_offset) != -2)                                                                   \
            CHECK_INT(e_.offset, want_offset);                                                     \
        got_free(&g_);                                                                             \
    } while (0)

static bool near(double a, double b)
{
    return fabs(a - b) < 1e-9;
}

/* ---------------------------------------------------------------------------
 * Formats.
 * ------------------------------------------------------------------------- */

/* darknet's centre box -> our top-left box, cut to the image. */
static void expect_dk(const got_det *d, const char *label, double conf, double cx, double cy,
                      double w, double h)
{
    double x0 = fmax(0, cx - w / 2), y0 = fmax(0, cy - h / 2);
    double x1 = fmin(1, cx + w / 2), y1 = fmin(1, cy + h / 2);
    CHECK_STR(d->label, label);
    CHECK(near(d->conf, conf));
    CHECK(near(d->x, x0) && near(d->y, y0) && near(d->w, x1 - x0) && near(d->h, y1 - y0));
}

static void test_darknet_fixture(void)
{
    size_t len;
    char *text = slurp(SL_FIXTURES "/darknet/result.json", &len);
    got g, g1;
    sl_error e;
    ingest_parse_options o = {.format = INGEST_FORMAT_DARKNET};
    CHECK_INT(parse_opts(&o, text, len, 0, &g, &e), SL_OK);
    REQUIRE(g.n == 4);
    CHECK_INT(g.f[0].frame, 1);
    CHECK_INT(g.f[0].n, 3);
    /* the same box twice with two classes: both kept */
    expect_dk(&g.f[0].d[0], "scalpel", 0.912345, 0.4125, 0.633333, 0.08125, 0.04375);
    expect_dk(&g.f[0].d[1], "forceps", 0.3012, 0.4125, 0.633333, 0.08125, 0.04375);
    /* a box darknet let stray past the right edge is cut to it */
    expect_dk(&g.f[0].d[2], "sponge", 0.655, 0.98, 0.5, 0.06, 0.1);
    CHECK(near(g.f[0].d[2].x + g.f[0].d[2].w, 1.0));
    CHECK_INT(g.f[1].n, 0); /* an empty frame is a frame */
    CHECK_INT(g.f[2].n, 2);
    expect_dk(&g.f[2].d[1], "needle holder", 0.450001, 0.02, 0.03, 0.06, 0.07);
    expect_dk(&g.f[3].d[0], "sponge", 1.0, 0.5, 0.5, 1.0, 1.0);

    /* Windows names with unescaped backslashes: frame numbers from them,
     * whatever the chunking (held bytes across chunk ends). */
    o.frame_source = INGEST_FRAME_FROM_FILENAME;
    o.frame_offset = -100;
    for (size_t chunk = 1; chunk <= 13; chunk += 4) {
        CHECK_INT(parse_opts(&o, text, len, chunk, &g1, &e), SL_OK);
        CHECK_INT(g1.n, 4);
        CHECK_INT(g1.n ? g1.f[0].frame : 0, 20); /* frame000120.jpg - 100 */
        CHECK_INT(g1.n > 3 ? g1.f[3].frame : 0, 23);
        CHECK_INT(g1.dets, g.dets);
        got_free(&g1);
    }
    got_free(&g);
    free(text);
}

static void test_darknet_escapes(void)
{
    got g;
    sl_error e;
    ingest_parse_options o = {.format = INGEST_FORMAT_DARKNET,
                              .frame_source = INGEST_FRAME_FROM_FILENAME};
    /* \t, \n, \b, \f, \r and \u without four hex digits are characters of a
     * Windows path here; \\ \" \/ and \uXXXX stay JSON escapes. */
    const char *text = "[{\"frame_id\":1,\"filename\":\"D:\\temp\\new\\b\\u12\\img7.jpg\","
                       "\"objects\":[{\"name\":\"a\\\\b\\u00e9\",\"relative_coordinates\":"
                       "{\"center_x\":0.5,\"center_y\":0.5,\"width\":0.2,\"height\":0.2},"
                       "\"confidence\":0.5}]}]";
    for (size_t chunk = 0; chunk <= 5; chunk++) {
        CHECK_INT(parse_opts(&o, text, strlen(text), chunk, &g, &e), SL_OK);
        REQUIRE(g.n == 1);
        CHECK_INT(g.f[0].frame, 7);
        CHECK_STR(g.f[0].d[0].label, "a\\b\xc3\xa9");
        got_free(&g);
    }
    /* Other formats are strict JSON: an invalid escape is an error. */
    CHECK(parse(INGEST_FORMAT_NDJSON, "{\"frame\":1,\"detections\":[],\"f\":\"C:\\x\"}", &g, &e) ==
          SL_EINVAL);
    CHECK(strstr(e.message, "'\\' occurs before a character which it may not") != NULL);
    CHECK_INT(e.offset, 34);
    got_free(&g);
}

static void test_darknet_real(void)
{
    static const struct {
        const char *file;
        size_t frames, objects, empty;
    } good[] = {{"gnefihs-result-1000frames.json", 1000, 2935, 132},
                {"kartikwar-result-300frames.json", 300, 242, 93}};
    for (size_t i = 0; i < 2; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/darknet/%s", SL_REALDATA, good[i].file);
        size_t len;
        char *text = slurp(path, &len);
        got g;
        sl_error e;
        ingest_parse_options o = {.format = INGEST_FORMAT_DARKNET};
        CHECK_INT(parse_opts(&o, text, len, 4096, &g, &e), SL_OK);
        CHECK_INT(g.n, good[i].frames);
        CHECK_INT(g.dets, good[i].objects);
        CHECK_INT(g.empty, good[i].empty);
        for (size_t k = 1; k < g.n; k++)
            CHECK(g.f[k].frame == g.f[k - 1].frame + 1);
        got_free(&g);
        free(text);
    }
    static const struct {
        const char *file, *rule, *field;
        int64_t offset;
    } bad[] = {
        {"gnefihs-result-truncated.json", "cut off", "[42].filename", 24576},
        {"vinishuchiha-result-binary-garbage.json", "not valid UTF-8", "[0].filename", 33},
        {"tsai-result-console-text.json", "invalid char", "", 1},
    };
    for (size_t i = 0; i < 3; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/darknet/%s", SL_REALDATA, bad[i].file);
        size_t len;
        char *text = slurp(path, &len);
        for (size_t chunk = 0; chunk <= 1000; chunk += 333) { /* offsets do not depend on it */
            got g;
            sl_error e;
            ingest_parse_options o = {.format = INGEST_FORMAT_DARKNET};
            CHECK(parse_opts(&o, text, len, chunk, &g, &e) == SL_EINVAL);
            CHECK(strstr(e.message, bad[i].rule) != NULL);
            CHECK_STR(e.field, bad[i].field);
            CHECK_INT(e.offset, bad[i].offset);
            got_free(&g);
        }
        free(text);
    }
}

static void test_darknet_stream(void)
{
    size_t len;
    char *text = slurp(SL_FIXTURES "/darknet/demo-stream.json", &len);
    got g;
    sl_error e;
    ingest_parse_options o = {.format = INGEST_FORMAT_DARKNET_STREAM};
    CHECK_INT(parse_opts(&o, text, len, 7, &g, &e), SL_OK);
    REQUIRE(g.n == 3);
    CHECK_INT(g.f[0].frame, 10);
    CHECK_INT(g.f[1].n, 0);
    CHECK_INT(g.f[2].n, 2);
    got_free(&g);
    /* the same bytes as a -out result are an interrupted run */
    o.format = INGEST_FORMAT_DARKNET;
    CHECK_INT(parse_opts(&o, text, len, 0, &g, &e), SL_EINVAL);
    CHECK(strstr(e.message, "cut off") != NULL);
    CHECK_INT(e.offset, (int64_t)len);
    got_free(&g);
    /* a stream closed by darknet's "\n]" is fine too; one cut inside a frame is not */
    char *closed = malloc(len + 8);
    memcpy(closed, text, len);
    size_t clen = len - 3; /* drop the trailing ", \n" */
    memcpy(closed + clen, "\n]", 2);
    o.format = INGEST_FORMAT_DARKNET_STREAM;
    CHECK_INT(parse_opts(&o, closed, clen + 2, 0, &g, &e), SL_OK);
    CHECK_INT(g.n, 3);
    got_free(&g);
    CHECK_INT(parse_opts(&o, text, len - 20, 0, &g, &e), SL_EINVAL);
    CHECK(strstr(e.message, "cut off") != NULL);
    got_free(&g);
    free(closed);
    free(text);
}

static void test_coco(void)
{
    size_t len;
    char *text = slurp(SL_FIXTURES "/coco/results.json", &len);
    got g;
    sl_error e;
    ingest_parse_options o = {
        .format = INGEST_FORMAT_COCO, .image_width = 640, .image_height = 480, .frame_offset = 5};
    CHECK_INT(parse_opts(&o, text, len, 3, &g, &e), SL_OK);
    /* results of image 12 were scattered: grouped, in input order, images in order */
    REQUIRE(g.n == 3);
    CHECK_INT(g.f[0].frame, 15);
    CHECK_INT(g.f[1].frame, 16);
    CHECK_INT(g.f[2].frame, 17);
    REQUIRE(g.f[2].n == 3);
    CHECK_STR(g.f[2].d[0].label, "scissors");
    CHECK(near(g.f[2].d[0].conf, 0.912));
    CHECK(near(g.f[2].d[0].x, 264.0 / 640) && near(g.f[2].d[0].y, 304.5 / 480));
    CHECK(near(g.f[2].d[0].w, 51.2 / 640) && near(g.f[2].d[0].h, 28.0 / 480));
    CHECK_STR(g.f[2].d[1].label, "knife");
    CHECK(near(g.f[2].d[1].w, 20.0 / 640)); /* [620, 100, 40, 30] cut at the right edge */
    CHECK(near(g.f[2].d[2].conf, 0.201));
    CHECK_STR(g.f[0].d[0].label, "person");
    CHECK(near(g.f[0].d[0].w, 1.0) && near(g.f[0].d[0].h, 1.0));
    got_free(&g);
    free(text);

    /* a custom category map (COCO "categories" array) */
    ingest_categories *cats = NULL;
    CHECK_INT(ingest_categories_load(SL_FIXTURES "/coco/categories.json", NULL, &cats, &e), SL_OK);
    REQUIRE(cats);
    CHECK_STR(ingest_categories_name(cats, 3), "sponge");
    CHECK(ingest_categories_name(cats, 4) == NULL);
    text = slurp(SL_FIXTURES "/coco/results-custom.json", &len);
    o = (ingest_parse_options){
        .format = INGEST_FORMAT_COCO, .image_width = 640, .image_height = 480, .categories = cats};
    CHECK_INT(parse_opts(&o, text, len, 0, &g, &e), SL_OK);
    REQUIRE(g.n == 2 && g.f[0].n == 2);
    CHECK_STR(g.f[0].d[0].label, "scalpel");
    CHECK_STR(g.f[0].d[1].label, "sponge");
    got_free(&g);
    free(text);
    ingest_categories_free(&cats);
    /* maps in the other shapes */
    const char *whole = "{\"info\":{\"year\":2014},\"images\":[{\"id\":1,\"file_name\":\"a.jpg\"}],"
                        "\"categories\":[{\"id\":7,\"name\":\"clamp\"}],\"annotations\":[]}";
    CHECK_INT(ingest_categories_parse(whole, strlen(whole), NULL, &cats, &e), SL_OK);
    CHECK_STR(cats ? ingest_categories_name(cats, 7) : NULL, "clamp");
    ingest_categories_free(&cats);
    const char *one = "{\"1\":\"retractor\"}";
    CHECK_INT(ingest_categories_parse(one, strlen(one), NULL, &cats, &e), SL_OK);
    CHECK_STR(cats ? ingest_categories_name(cats, 1) : NULL, "retractor");
    ingest_categories_free(&cats);
    const char *dup = "[{\"id\":1,\"name\":\"a\"},{\"id\":1,\"name\":\"b\"}]";
    CHECK_INT(ingest_categories_parse(dup, strlen(dup), NULL, &cats, &e), SL_EINVAL);
    CHECK(strstr(e.message, "twice") != NULL);
}

static void test_coco_real(void)
{
    size_t len;
    char path[512];
    snprintf(path, sizeof path, "%s/coco/instances_val2014_fakebbox100_results.json", SL_REALDATA);
    char *text = slurp(path, &len);
    got g;
    sl_error e;
    ingest_parse_options o = {
        .format = INGEST_FORMAT_COCO, .image_width = 640, .image_height = 640};
    CHECK_INT(parse_opts(&o, text, len, 0, &g, &e), SL_OK);
    CHECK_INT(g.n, 99);
    CHECK_INT(g.dets, 734);
    got_free(&g);
    free(text);
}

/* More results than fit in memory: they spill as sorted runs and merge. */
static void test_coco_spill(void)
{
    const size_t n = 300000, images = 997; /* > one in-memory run of 131072 */
    size_t cap = n * 90 + 16, at = 0;
    char *text = malloc(cap);
    REQUIRE(text);
    text[at++] = '[';
    for (size_t i = 0; i < n; i++) {
        size_t img = (i * 7919) % images; /* scattered */
        at += (size_t)snprintf(text + at, cap - at,
                               "%s{\"image_id\":%zu,\"category_id\":%d,\"bbox\":[%zu,10,20,30],"
                               "\"score\":0.5}",
                               i ? "," : "", img, 1 + (int)(i % 3), i / images % 600);
    }
    text[at++] = ']';
    got g;
    sl_error e;
    ingest_parse_options o = {
        .format = INGEST_FORMAT_COCO, .image_width = 640, .image_height = 480, .spill_dir = "/tmp"};
    ingest_limits lim;
    ingest_limits_default(&lim);
    lim.max_detections = 1000;
    o.limits = &lim;
    CHECK_INT(parse_opts(&o, text, at, 0, &g, &e), SL_OK);
    CHECK_INT(g.n, images);
    CHECK_INT(g.dets, n);
    bool ordered = true, input_order = true;
    for (size_t i = 0; i < g.n; i++) {
        if (i && g.f[i].frame <= g.f[i - 1].frame)
            ordered = false;
        /* within an image, results keep their input order: x grows with i */
        for (uint32_t k = 1; k < g.f[i].n; k++)
            if (g.f[i].d[k].x < g.f[i].d[k - 1].x)
                input_order = false;
    }
    CHECK(ordered);
    CHECK(input_order);
    got_free(&g);
    free(text);
}

static void test_tfod(void)
{
    size_t len;
    char *text = slurp(SL_FIXTURES "/tfod/output.json", &len);
    got g;
    sl_error e;
    ingest_parse_options o = {.format = INGEST_FORMAT_TFOD};
    CHECK_INT(parse_opts(&o, text, len, 5, &g, &e), SL_OK);
    REQUIRE(g.n == 3);
    CHECK_INT(g.f[0].frame, 0); /* no frame key: the position */
    CHECK_INT(g.f[2].frame, 2);
    REQUIRE(g.f[0].n == 2); /* num_detections, not the padding */
    CHECK_STR(g.f[0].d[0].label, "scissors");
    /* [ymin, xmin, ymax, xmax] -> x, y, w, h */
    CHECK(near(g.f[0].d[0].x, 0.37) && near(g.f[0].d[0].y, 0.61));
    CHECK(near(g.f[0].d[0].w, 0.45 - 0.37) && near(g.f[0].d[0].h, 0.66 - 0.61));
    CHECK_STR(g.f[0].d[1].label, "knife");
    CHECK_INT(g.f[1].n, 0);
    CHECK_STR(g.f[2].d[0].label, "bottle");
    got_free(&g);
    free(text);

    text = slurp(SL_FIXTURES "/tfod/output.ndjson", &len);
    CHECK_INT(parse_opts(&o, text, len, 0, &g, &e), SL_OK);
    REQUIRE(g.n == 3);
    CHECK_INT(g.f[0].frame, 100);
    CHECK_STR(g.f[0].d[0].label, "Scalpel"); /* entity names win over class ids */
    CHECK_STR(g.f[0].d[1].label, "Surgical sponge");
    CHECK_INT(g.f[1].n, 0);
    got_free(&g);
    free(text);

    REFUSED(INGEST_FORMAT_TFOD,
            "{\"detection_boxes\":[[0.1,0.2,0.3]],\"detection_scores\":[0.5],"
            "\"detection_classes\":[1],\"num_detections\":1}",
            "TF-OD boxes are [ymin, xmin, ymax, xmax]", "line 1: detection_boxes[0]", 20);
    REFUSED(INGEST_FORMAT_TFOD,
            "{\"detection_boxes\":[[0.5,0.2,0.3,0.4]],\"detection_scores\":[0.5],"
            "\"detection_classes\":[1],\"num_detections\":1}",
            "no area", "line 1: detection_boxes[0]", 0);
    REFUSED(INGEST_FORMAT_TFOD,
            "{\"detection_boxes\":[[[0.1,0.2,0.3,0.4]],[[0.1,0.2,0.3,0.4]]],"
            "\"detection_scores\":[[0.5],[0.5]],\"detection_classes\":[[1],[1]],"
            "\"num_detections\":[1,1]}",
            "batch of 2", "line 1: detection_boxes", 19);
    REFUSED(INGEST_FORMAT_TFOD,
            "{\"detection_boxes\":[[0.1,0.2,0.3,0.4]],\"detection_scores\":[0.5],"
            "\"detection_classes\":[95],\"num_detections\":1}",
            "not in the category map", "line 1: detection_classes[0]", 0);
    REFUSED(INGEST_FORMAT_TFOD,
            "{\"detection_boxes\":[[0.1,0.2,0.3,0.4]],\"detection_scores\":[1.5],"
            "\"detection_classes\":[1],\"num_detections\":1}",
            "score 1.5 is outside [0, 1]", "line 1: detection_scores[0]", 59);
}

static void test_ndjson(void)
{
    size_t len;
    char *text = slurp(SL_FIXTURES "/ndjson/frames.ndjson", &len);
    got g;
    sl_error e;
    ingest_parse_options o = {.format = INGEST_FORMAT_NDJSON};
    CHECK_INT(parse_opts(&o, text, len, 2, &g, &e), SL_OK);
    REQUIRE(g.n == 4);
    CHECK_INT(g.f[0].n, 2);
    CHECK(near(g.f[0].d[0].x, 0.372125) && near(g.f[0].d[0].h, 0.04375));
    CHECK_INT(g.f[1].n, 0);
    CHECK_STR(g.f[3].d[0].label, "Pinzette (anatomisch)");
    got_free(&g);
    free(text);
    /* numbers are read exactly as strtod reads them */
    const char *nums[] = {"0.1",    "0.30000000000000004", "1e-7", "0.999999999999999999",
                          "5e-324", "0.7310585786300049",  "1E0",  "0.123456789012345678901234"};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        char line[256];
        snprintf(line, sizeof line,
                 "{\"frame\":1,\"detections\":[{\"label\":\"a\",\"confidence\":%s,"
                 "\"box\":{\"x\":0,\"y\":0,\"w\":1,\"h\":1}}]}",
                 nums[i]);
        CHECK_INT(parse(INGEST_FORMAT_NDJSON, line, &g, &e), SL_OK);
        CHECK(g.n == 1 && g.f[0].d[0].conf == strtod(nums[i], NULL));
        got_free(&g);
    }
    REFUSED(INGEST_FORMAT_NDJSON,
            "{\"frame\":1,\"detections\":[]}\n{\"frame\":2,\"detections\":[{\"label\":\"a\","
            "\"confidence\":0.5,\"box\":{\"x\":0.9,\"y\":0,\"w\":0.2,\"h\":1}}]}",
            "passes the image's right edge", "line 2: detections[0].box", -2);
    REFUSED(INGEST_FORMAT_NDJSON, "{\"frame\":1,\"detections\":[]}\n[1]",
            "each line must be a frame object", "line 2", 28);
}

/* ---------------------------------------------------------------------------
 * Bad input (issue 4).
 * ------------------------------------------------------------------------- */
#define DK_OBJ(conf, cx, w)                                                                        \
    "{\"class_id\":0,\"name\":\"x\",\"relative_coordinates\":{\"center_x\":" cx                    \
    ",\"center_y\":0.5,\"width\":" w ",\"height\":0.1},\"confidence\":" conf "}"

static void test_bad_input(void)
{
    const ingest_format D = INGEST_FORMAT_DARKNET;
    /* truncated */
    REFUSED(D, "[{\"frame_id\":1,\"objects\":[]},{\"frame_id\":2,\"obj", "cut off", "[1]", 47);
    REFUSED(D, "[{\"frame_id\":1,\"objects\":[]}", "cut off", "", 28);
    /* wrong types */
    REFUSED(D, "[{\"frame_id\":1,\"objects\":[" DK_OBJ("\"high\"", "0.5", "0.1") "]}]",
            "confidence must be a number, not a string", "[0].objects[0].confidence", 144);
    REFUSED(D, "[{\"frame_id\":1,\"objects\":{}}]", "objects must be an array, not an object",
            "[0].objects", 25);
    REFUSED(D, "{\"frame_id\":1}", "darknet output is a JSON array", "", 0);
    /* NaN and Infinity */
    REFUSED(D, "[{\"frame_id\":1,\"objects\":[" DK_OBJ("NaN", "0.5", "0.1") "]}]",
            "NaN and Infinity are not JSON numbers", "[0].objects[0].confidence", 144);
    REFUSED(D, "[{\"frame_id\":1,\"objects\":[" DK_OBJ("0.5", "-Infinity", "0.1") "]}]",
            "NaN and Infinity are not JSON numbers", "[0].objects[0].relative_coordinates.center_x",
            86);
    REFUSED(D, "[{\"frame_id\":1,\"objects\":[" DK_OBJ("0.5", "1e999", "0.1") "]}]",
            "not a finite number", "[0].objects[0].relative_coordinates.center_x", 86);
    /* coordinates outside [0, 1], negative boxes */
    REFUSED(D, "[{\"frame_id\":1,\"objects\":[" DK_OBJ("0.5", "1.2", "0.1") "]}]",
            "center_x 1.2 is outside [0, 1]", "[0].objects[0].relative_coordinates.center_x", 86);
    REFUSED(D, "[{\"frame_id\":1,\"objects\":[" DK_OBJ("0.5", "0.5", "-0.1") "]}]",
            "width -0.1 is outside (0, 1]", "[0].objects[0].relative_coordinates.width", -2);
    REFUSED(D, "[{\"frame_id\":1,\"objects\":[" DK_OBJ("0.5", "0.5", "0") "]}]",
            "width 0 is outside (0, 1]", "[0].objects[0].relative_coordinates.width", -2);
    REFUSED(INGEST_FORMAT_COCO,
            "[{\"image_id\":1,\"category_id\":1,\"bbox\":[10,10,-5,20],\"score\":0.5}]",
            "has no area", "[0].bbox", 38);
    REFUSED(INGEST_FORMAT_COCO,
            "[{\"image_id\":1,\"category_id\":1,\"bbox\":[700,10,5,20],\"score\":0.5}]",
            "centre outside the 640x480 image", "[0].bbox", 38);
    /* confidence outside [0, 1] */
    REFUSED(D, "[{\"frame_id\":1,\"objects\":[" DK_OBJ("1.5", "0.5", "0.1") "]}]",
            "confidence 1.5 is outside [0, 1]", "[0].objects[0].confidence", 144);
    REFUSED(D, "[{\"frame_id\":1,\"objects\":[" DK_OBJ("-0.01", "0.5", "0.1") "]}]",
            "confidence -0.01 is outside [0, 1]", "[0].objects[0].confidence", 144);
    /* duplicate keys */
    REFUSED(D, "[{\"frame_id\":1,\"objects\":[],\"frame_id\":2}]", "duplicate key \"frame_id\"",
            "[0].frame_id", 28);
    /* frame ids that do not parse */
    REFUSED(D, "[{\"frame_id\":\"12a\",\"objects\":[]}]", "frame_id must be a whole number",
            "[0].frame_id", 13);
    REFUSED(D, "[{\"frame_id\":1.5,\"objects\":[]}]", "frame_id 1.5 is not a whole number",
            "[0].frame_id", 13);
    REFUSED(D, "[{\"frame_id\":-3,\"objects\":[]}]", "not a frame number", "[0]", 1);
    REFUSED(D, "[{\"frame_id\":1000000000,\"objects\":[]}]", "not a frame number", "[0]", 1);
    REFUSED(D, "[{\"objects\":[]}]", "frame has no frame_id", "[0]", 1);
    /* found by fuzz_darknet: 19 digits overflowed int64 (UBSan) */
    REFUSED(D, "[{\"frame_id\":9999999999999999999,\"objects\":[]}]", "not a whole number",
            "[0].frame_id", 13);
    REFUSED(D, "[{\"frame_id\":-999999999999999999,\"objects\":[]}]", "not a frame number", "[0]",
            1);
    /* found by fuzz_ndjson: a positive width too small to store */
    REFUSED(INGEST_FORMAT_NDJSON,
            "{\"frame\":1,\"detections\":[{\"label\":\"a\",\"confidence\":0.5,"
            "\"box\":{\"x\":0.95,\"y\":0,\"w\":1e-20,\"h\":0.5}}]}",
            "the least is 1e-06", "line 1: detections[0].box", 25);
    REFUSED(D, "[{\"frame_id\":4,\"objects\":[]},{\"frame_id\":4,\"objects\":[]}]",
            "frame 4 appears twice", "[1]", 29);
    /* invalid UTF-8 */
    REFUSED(D, "[{\"frame_id\":1,\"filename\":\"ok\xc3(\",\"objects\":[]}]", "not valid UTF-8",
            "[0].filename", 29);
    REFUSED(D, "[{\"frame_id\":1,\"filename\":\"a\x01\",\"objects\":[]}]",
            "invalid character inside string", "[0].filename", 28);
    /* garbage */
    REFUSED(D, "[{\"frame_id\":1,\"objects\":[]}] trailing", "trailing garbage", "", 30);
    REFUSED(D, "", "input is empty", "", 0);
    /* missing fields */
    REFUSED(D,
            "[{\"frame_id\":1,\"objects\":[{\"name\":\"x\",\"relative_coordinates\":"
            "{\"center_x\":0.5,\"center_y\":0.5,\"width\":0.1},\"confidence\":0.5}]}]",
            "object has no relative_coordinates.height", "[0].objects[0]", 26);
    /* unknown formats */
    ingest_format f;
    sl_error e;
    sl_error_clear(&e);
    CHECK_INT(ingest_format_parse("yolo", &f, &e), SL_EUNSUPPORTED);
    CHECK(strstr(e.message, "unknown format \"yolo\"") && strstr(e.message, "darknet"));
    CHECK_STR(e.field, "format");
    ingest_parser *p = NULL;
    ingest_parse_options o = {.format = INGEST_FORMAT_ASSETS};
    CHECK_INT(ingest_parser_new(&o, collect, NULL, &p, &e), SL_EUNSUPPORTED);
    CHECK(p == NULL);
}

/* ---------------------------------------------------------------------------
 * Strict UTF-8 (issue 9, finding 7).
 * ------------------------------------------------------------------------- */

/* Expects text (len bytes, may hold NUL) refused the same way whatever the
 * chunking: the rule in the message, the field and the byte offset. */
static void refused_chunked(ingest_format fmt, const char *text, size_t len, const char *rule,
                            const char *field, int64_t offset)
{
    ingest_parse_options o = {.format = fmt, .image_width = 640, .image_height = 480};
    for (size_t chunk = 0; chunk <= 7; chunk++) {
        got g;
        sl_error e;
        CHECK_INT(parse_opts(&o, text, len, chunk, &g, &e), SL_EINVAL);
        if (!strstr(e.message, rule) || strcmp(e.field, field) || e.offset != offset)
            fprintf(stderr,
                    "  chunk %zu: %s (field \"%s\", offset %lld), wanted \"%s\" at %s %lld\n",
                    chunk, e.message, e.field, (long long)e.offset, rule, field, (long long)offset);
        CHECK(strstr(e.message, rule) != NULL);
        CHECK_STR(e.field, field);
        CHECK_INT(e.offset, offset);
        CHECK_INT(g.n, 0); /* nothing of the input came out */
        got_free(&g);
    }
}

#define DK_LABEL(label)                                                                            \
    "[{\"frame_id\":1,\"filename\":\"D:\\\\or\\\\f1.jpg\",\"objects\":[{\"name\":\"" label         \
    "\",\"relative_coordinates\":{\"center_x\":0.5,\"center_y\":0.5,\"width\":0.2,"                \
    "\"height\":0.2},\"confidence\":0.5}]}]"
#define DK_LABEL_AT 63 /* offset of the label's first byte in DK_LABEL */
#define NDJ_LABEL(label)                                                                           \
    "{\"frame\":1,\"detections\":[{\"label\":\"" label "\",\"confidence\":0.5,"                    \
    "\"box\":{\"x\":0.1,\"y\":0.1,\"w\":0.2,\"h\":0.2}}]}\n"
#define NDJ_LABEL_AT 35

/* Regression: yajl accepted overlong forms, UTF-8-encoded surrogates and code
 * points above U+10FFFF in any string (labels were stored with them, and GET
 * .../frames then answered invalid UTF-8), decoded a lone \ud800 escape as
 * '?' and a lone \udc00 as an encoded surrogate.  Every string of every
 * format is now held to schema's UTF-8 check, naming field and offset. */
static void test_utf8_strict(void)
{
    static const struct {
        const char *bytes, *rule;
        int64_t at; /* offset of the fault within the label */
    } raw[] = {
        {"sc\xc0\xafl", "an overlong form", 2},
        {"\xe0\x80\xaf", "an overlong form", 0},
        {"ab\xf0\x80\x80\xaf", "an overlong form", 2},
        {"x\xed\xa0\x80y", "a UTF-16 surrogate", 1},
        {"\xed\xbf\xbf", "a UTF-16 surrogate", 0},
        {"tool\xf4\x90\x80\x80", "a code point above U+10FFFF", 4},
        {"\xf7\xbf\xbf\xbf", "a code point above U+10FFFF", 0},
        {"cut\xe2\x82", "a character cut short", 3},
    };
    char text[512];
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
        int n = snprintf(text, sizeof text, DK_LABEL("%s"), raw[i].bytes);
        refused_chunked(INGEST_FORMAT_DARKNET, text, (size_t)n, raw[i].rule, "[0].objects[0].name",
                        DK_LABEL_AT + raw[i].at);
        n = snprintf(text, sizeof text, NDJ_LABEL("%s"), raw[i].bytes);
        refused_chunked(INGEST_FORMAT_NDJSON, text, (size_t)n, raw[i].rule,
                        "line 1: detections[0].label", NDJ_LABEL_AT + raw[i].at);
    }

    /* Surrogate escapes: a pair is one character; anything else is refused at
     * the escape that has no partner (darknet's own escape repair included). */
    static const struct {
        const char *label, *rule;
        int64_t at;
    } esc[] = {
        {"a\\ud800", "high surrogate", 1},
        {"a\\ud800b", "high surrogate", 1},
        {"\\udbff\\n", "high surrogate", 0},
        {"\\ud800\\ud800\\udc00", "high surrogate", 0},
        {"\\ud800\\u0041", "high surrogate", 0},
        {"ab\\udc00", "a low surrogate with no high", 2},
        {"\\ud83d\\udd2a\\udfff", "a low surrogate with no high", 12},
    };
    for (size_t i = 0; i < sizeof esc / sizeof esc[0]; i++) {
        int n = snprintf(text, sizeof text, DK_LABEL("%s"), esc[i].label);
        refused_chunked(INGEST_FORMAT_DARKNET, text, (size_t)n, esc[i].rule, "[0].objects[0].name",
                        DK_LABEL_AT + esc[i].at);
        n = snprintf(text, sizeof text, NDJ_LABEL("%s"), esc[i].label);
        refused_chunked(INGEST_FORMAT_NDJSON, text, (size_t)n, esc[i].rule,
                        "line 1: detections[0].label", NDJ_LABEL_AT + esc[i].at);
    }
    /* darknet's repair path (a Windows path earlier in the same chunk) too. */
    const char *dk_repair =
        "[{\"frame_id\":1,\"filename\":\"C:\\new\\a\\ud800.jpg\",\"objects\":[]}]";
    refused_chunked(INGEST_FORMAT_DARKNET, dk_repair, strlen(dk_repair), "high surrogate",
                    "[0].filename", 35);

    /* A surrogate pair and every plane pass, decoded exactly. */
    const char *good[] = {
        DK_LABEL("\\ud83d\\udd2a \xf0\x9f\x94\xaa \xe2\x80\x94 \xf4\x8f\xbf\xbf"),
        NDJ_LABEL("\\ud83d\\udd2a \xf0\x9f\x94\xaa \xe2\x80\x94 \xf4\x8f\xbf\xbf")};
    for (size_t i = 0; i < 2; i++)
        for (size_t chunk = 0; chunk <= 7; chunk++) {
            got g;
            sl_error e;
            ingest_parse_options o = {.format = i ? INGEST_FORMAT_NDJSON : INGEST_FORMAT_DARKNET};
            CHECK_INT(parse_opts(&o, good[i], strlen(good[i]), chunk, &g, &e), SL_OK);
            REQUIRE(g.n == 1 && g.f[0].n == 1);
            CHECK_STR(g.f[0].d[0].label,
                      "\xf0\x9f\x94\xaa \xf0\x9f\x94\xaa \xe2\x80\x94 \xf4\x8f\xbf\xbf");
            got_free(&g);
        }

    /* Strings the formats skip are held to it too: COCO and TF-OD members
     * nobody reads, object keys. */
    const char *coco = "[{\"image_id\":1,\"category_id\":1,\"bbox\":[1,1,2,2],\"score\":0.5,"
                       "\"note\":\"\xed\xa0\x80\"}]";
    refused_chunked(INGEST_FORMAT_COCO, coco, strlen(coco), "a UTF-16 surrogate", "[0].note", 68);
    const char *tfod = "{\"detection_boxes\":[[0.1,0.2,0.3,0.4]],\"detection_scores\":[0.5],"
                       "\"detection_classes\":[1],\"num_detections\":1,\"model\":\"\\udc01\"}";
    refused_chunked(INGEST_FORMAT_TFOD, tfod, strlen(tfod), "a low surrogate", "line 1: model",
                    116);
    const char *key = "{\"frame\":1,\"detections\":[],\"k\xc0\x80\":1}\n";
    refused_chunked(INGEST_FORMAT_NDJSON, key, strlen(key), "an overlong form", "line 1", 29);

    /* The PUT bodies' free text: an asset's model_version, a surgery's
     * surgeon (the codecs read them through the same reader). */
    bson_t *doc = NULL;
    sl_error de;
    const char *asset = "{\"client\": \"c\", \"brand\": \"b\", \"campaign\": \"c\", "
                        "\"sector\": \"s\", \"media_type\": \"image\", \"memorability\": 0.5, "
                        "\"saliency\": {}, \"model_version\": \"v2\xed\xb0\x80\"}";
    sl_error_clear(&de);
    CHECK_INT(ingest_asset_doc("t", "a1", asset, strlen(asset), NULL, &doc, &de), SL_EINVAL);
    CHECK_STR(de.field, "model_version");
    CHECK_INT(de.offset, 142);
    CHECK(strstr(de.message, "surrogate") != NULL && doc == NULL);

    /* Category maps (COCO / TF-OD names). */
    ingest_categories *cats = NULL;
    sl_error e;
    sl_error_clear(&e);
    const char *map = "{\"1\":\"scalpel\",\"2\":\"forceps\\udfff\"}";
    CHECK_INT(ingest_categories_parse(map, strlen(map), NULL, &cats, &e), SL_EINVAL);
    CHECK(strstr(e.message, "low surrogate") != NULL);
    CHECK_STR(e.field, "2");
    CHECK_INT(e.offset, 27);
    CHECK(cats == NULL);
}

/* 10^6-deep nesting and a 100 MB string, streamed: refused early, in bounded
 * memory (the parser never holds them). */
static void test_bounds(void)
{
    ingest_parser *p = NULL;
    sl_error e;
    got g = {0};
    ingest_parse_options o = {.format = INGEST_FORMAT_DARKNET};
    const char *head = "[{\"frame_id\":1,\"extra\":";
    char *chunk = malloc(1 << 16);
    REQUIRE(chunk);
    memset(chunk, '[', 1 << 16);
    sl_error_clear(&e);
    REQUIRE(ingest_parser_new(&o, collect, &g, &p, &e) == SL_OK);
    sl_status rc = ingest_parser_feed(p, head, strlen(head), &e);
    size_t fed = 0;
    while (rc == SL_OK && fed < 1000000) {
        rc = ingest_parser_feed(p, chunk, 1 << 16, &e);
        fed += 1 << 16;
    }
    CHECK_INT(rc, SL_EINVAL);
    CHECK(fed <= 1 << 16); /* refused within the first chunk */
    CHECK(strstr(e.message, "nested deeper than 16 levels") != NULL);
    CHECK_INT(e.offset, (int64_t)strlen(head) + 14);
    ingest_parser_free(&p);

    memset(chunk, 'a', 1 << 16);
    head = "[{\"frame_id\":1,\"filename\":\"";
    sl_error_clear(&e);
    REQUIRE(ingest_parser_new(&o, collect, &g, &p, &e) == SL_OK);
    rc = ingest_parser_feed(p, head, strlen(head), &e);
    fed = 0;
    while (rc == SL_OK && fed < (size_t)100 << 20) {
        rc = ingest_parser_feed(p, chunk, 1 << 16, &e);
        fed += 1 << 16;
    }
    CHECK_INT(rc, SL_ETOOLARGE);
    CHECK(fed <= 1 << 16);
    CHECK(strstr(e.message, "string longer than 16384 bytes") != NULL);
    CHECK_STR(e.field, "[0].filename");
    CHECK_INT(e.offset, (int64_t)strlen(head) - 1);
    ingest_parser_free(&p);

    /* a number that never ends */
    memset(chunk, '1', 1 << 16);
    head = "[{\"frame_id\":";
    sl_error_clear(&e);
    REQUIRE(ingest_parser_new(&o, collect, &g, &p, &e) == SL_OK);
    rc = ingest_parser_feed(p, head, strlen(head), &e);
    fed = 0;
    while (rc == SL_OK && fed < (size_t)100 << 20) {
        rc = ingest_parser_feed(p, chunk, 1 << 16, &e);
        fed += 1 << 16;
    }
    CHECK_INT(rc, SL_EINVAL);
    CHECK(fed <= 2 << 16); /* refused once the run passes 64 KiB */
    CHECK(strstr(e.message, "runs on for more than 65536 bytes") != NULL);
    CHECK_INT(e.offset, (int64_t)strlen(head));
    ingest_parser_free(&p);

    /* detections per frame and total size are bounded by the limits */
    ingest_limits lim;
    ingest_limits_default(&lim);
    lim.max_detections = 2;
    lim.max_input_bytes = 100;
    o.limits = &lim;
    const char *three = "[{\"frame_id\":1,\"objects\":[" DK_OBJ("0.5", "0.5", "0.1") "," DK_OBJ(
        "0.5", "0.5", "0.1") "," DK_OBJ("0.5", "0.5", "0.1") "]}]";
    lim.max_input_bytes = 1 << 20;
    CHECK_INT(parse_opts(&o, three, strlen(three), 0, &g, &e), SL_EINVAL);
    CHECK(strstr(e.message, "more than 2 detections") != NULL);
    got_free(&g);
    lim.max_input_bytes = 100;
    CHECK_INT(parse_opts(&o, three, strlen(three), 10, &g, &e), SL_ETOOLARGE);
    CHECK(strstr(e.message, "larger than 100 bytes") != NULL);
    got_free(&g);
    free(chunk);
}

/* The packed records of frame documents (schema/frame.c), as readers see them. */
static void test_frame_codec(void)
{
    uint8_t buf[2 * SCHEMA_FRAME_DET_SIZE];
    schema_frame_det a = {.label = 1,
                          .confidence = 912345,
                          .x = 0,
                          .y = 999999,
                          .w = 1000000,
                          .h = 7},
                     b;
    sl_error e;
    schema_frame_det_pack(buf + SCHEMA_FRAME_DET_SIZE, &a);
    sl_error_clear(&e);
    CHECK_INT(schema_frame_det_unpack(buf, sizeof buf, 1, 2, &b, &e), SL_OK);
    CHECK(b.label == 1 && b.confidence == 912345 && b.x == 0 && b.y == 999999 && b.w == 1000000 &&
          b.h == 7);
    CHECK_INT(schema_frame_det_unpack(buf, sizeof buf - 1, 0, 2, &b, &e), SL_ECORRUPT);
    CHECK(strstr(e.message, "not a multiple of 22") != NULL);
    sl_error_clear(&e);
    CHECK_INT(schema_frame_det_unpack(buf, sizeof buf, 2, 2, &b, &e), SL_ECORRUPT);
    sl_error_clear(&e);
    CHECK_INT(schema_frame_det_unpack(buf, sizeof buf, 1, 1, &b, &e), SL_ECORRUPT);
    CHECK(strstr(e.message, "names label 1 of 1") != NULL);
    a.w = 1000001;
    schema_frame_det_pack(buf, &a);
    sl_error_clear(&e);
    CHECK_INT(schema_frame_det_unpack(buf, sizeof buf, 0, 2, &b, &e), SL_ECORRUPT);
    CHECK(strstr(e.message, "outside 0..1000000") != NULL);
}

int main(int argc, char **argv)
{
    if (realdata_mode(argc, argv)) {
        realdata_require();
        test_darknet_real();
        test_coco_real();
        return check_finish();
    }
    test_frame_codec();
    test_darknet_fixture();
    test_darknet_escapes();
    test_darknet_stream();
    test_coco();
    test_coco_spill();
    test_tfod();
    test_ndjson();
    test_bad_input();
    test_utf8_strict();
    test_bounds();
    return check_finish();
}
