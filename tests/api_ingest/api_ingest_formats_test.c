/* api_ingest_formats_test.c -- every fixture format through `sightline serve`
 * and back through GET .../frames (equal to the parser and, byte for byte, to
 * the CLI); re-sends change no byte; failed batches store nothing; realdata.
 * The SKU every label must get is written down (ih_fixture_skus), not asked
 * of ingest's catalog matcher. */
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yajl/yajl_tree.h>

#include "../check.h"
#include "../realdata.h"
#include "ingest_http.h"
#include "store/store.h"

#define TENANT "t1"

typedef struct fixture {
    const char *format;
    const char *file;
    int categories; /* the custom COCO category map */
} fixture;

static const fixture fixtures[] = {
    {"darknet", "darknet/result.json", 0}, {"darknet-stream", "darknet/demo-stream.json", 0},
    {"coco", "coco/results.json", 0},      {"coco", "coco/results-custom.json", 1},
    {"tfod", "tfod/output.json", 0},       {"tfod", "tfod/output.ndjson", 0},
    {"ndjson", "ndjson/frames.ndjson", 0},
};
#define NFIX (sizeof fixtures / sizeof fixtures[0])

static support_server srv;
static ih_keys keys;
static char cats_escaped[2048]; /* the category file as a query value */

static int post_fixture(size_t i, const char *surgery, int chunked, support_resp *r)
{
    char url[4096], file[512];
    snprintf(file, sizeof file, SL_FIXTURES "/%s", fixtures[i].file);
    snprintf(url, sizeof url, "%s/v1/surgeries/%s/detections?format=%s%s%s", srv.url, surgery,
             fixtures[i].format, fixtures[i].categories ? "&categories=" : "",
             fixtures[i].categories ? cats_escaped : "");
    return support_post_file(url, keys.ingest, file, chunked, r);
}

static int64_t json_int(const char *body, const char *key)
{
    char err[128];
    int64_t v = -1;
    yajl_val root = yajl_tree_parse(body, err, sizeof err);
    const char *p[] = {key, NULL};
    yajl_val n = root ? yajl_tree_get(root, p, yajl_t_number) : NULL;
    if (n && YAJL_IS_INTEGER(n))
        v = YAJL_GET_INTEGER(n);
    if (root)
        yajl_tree_free(root);
    return v;
}

/* The frame documents of one surgery, as stored bytes. */
static char *frame_docs(const char *store_uri, const char *surgery, size_t *len)
{
    store *st = NULL;
    store_options o = {.no_create = 1, .read_only = 1};
    store_page page = {0};
    sl_error err;
    char pk[256], *out = NULL;
    sl_error_clear(&err);
    *len = 0;
    snprintf(pk, sizeof pk, "T#" TENANT "#SURGERY#%s", surgery);
    store_query_opts q = {.range = {STORE_RANGE_BEGINS_WITH, "FRAME#", NULL}, .limit = 1000};
    if (store_open(store_uri, &o, &st, &err) == SL_OK &&
        store_query(st, STORE_ITEMS, pk, &q, &page, &err) == SL_OK) {
        out = malloc(1);
        for (size_t i = 0; out && i < page.count; i++) {
            char *grown = realloc(out, *len + page.docs[i].len + 1);
            if (!grown)
                break;
            out = grown;
            memcpy(out + *len, page.docs[i].data, page.docs[i].len);
            *len += page.docs[i].len;
        }
    }
    store_page_free(&page);
    store_close(&st);
    return out;
}

/* Every label of the table, one frame each, through the server: each gets
 * exactly the SKU written down for it (or none). */
static void test_catalog_table(void)
{
    char *body = NULL;
    size_t len = 0, n = 0;
    FILE *m = open_memstream(&body, &len);
    for (const ih_sku *e = ih_fixture_skus; e->label; e++, n++)
        fprintf(m,
                "{\"frame\": %zu, \"detections\": [{\"label\": \"%s\", \"confidence\": 0.5, "
                "\"box\": {\"x\": 0.1, \"y\": 0.1, \"w\": 0.2, \"h\": 0.2}}]}\n",
                n, e->label);
    fclose(m);
    REQUIRE(ih_put_surgery(&srv, keys.ingest, "labels") == 0);
    support_resp r;
    CHECK(ih_req(&srv, "POST", "/v1/surgeries/labels/detections?format=ndjson", keys.ingest, body,
                 &r) == 0);
    CHECK_INT(r.status, 200);
    support_resp_free(&r);
    free(body);
    ih_frames got;
    CHECK(ih_get_frames(&srv, keys.staff, "labels", 1000, NULL, &got) == 0);
    CHECK_INT(got.n, n);
    for (size_t i = 0; i < got.n && i < n; i++) {
        CHECK(got.f[i].n == 1);
        CHECK_STR(got.f[i].d[0].label, ih_fixture_skus[i].label);
    }
    CHECK_INT(ih_frames_check_skus(&got, ih_fixture_skus, "catalog table"), 0);
    int matched = 0;
    for (size_t i = 0; i < got.n; i++)
        matched += got.f[i].n == 1 && got.f[i].d[0].has_sku;
    CHECK_INT(matched, 10); /* 1 forceps, 5 scalpels, 4 sponges in the table */
    ih_frames_free(&got);
}

/* Every fixture: POST, read back, compare with the parser and with the CLI. */
static void test_fixtures(const char *cli_store, const ingest_categories *custom)
{
    for (size_t i = 0; i < NFIX; i++) {
        char surgery[32], file[512], what[600];
        support_resp r;
        snprintf(surgery, sizeof surgery, "fx-%zu", i);
        snprintf(file, sizeof file, SL_FIXTURES "/%s", fixtures[i].file);
        snprintf(what, sizeof what, "%s (%s)", fixtures[i].file, fixtures[i].format);
        REQUIRE(ih_put_surgery(&srv, keys.ingest, surgery) == 0);
        /* Half the uploads chunked, half with a Content-Length. */
        REQUIRE(post_fixture(i, surgery, (int)(i % 2), &r) == 0);
        CHECK_INT(r.status, 200);
        if (r.status != 200)
            fprintf(stderr, "%s: %s\n", what, r.body);
        int64_t frames = json_int(r.body, "frames");
        CHECK(frames > 0);
        CHECK_INT(json_int(r.body, "changed"), frames);
        support_resp_free(&r);

        ingest_parse_options po = {.image_width = 640, .image_height = 480};
        CHECK(ingest_format_parse(fixtures[i].format, &po.format, NULL) == SL_OK);
        po.categories = fixtures[i].categories ? custom : NULL;
        ih_frames want, got;
        REQUIRE(ih_parse_file(file, &po, ih_fixture_skus, &want) == 0);
        CHECK_INT(want.n, frames);
        /* Pages of 2 frames: the cursor must carry on exactly. */
        CHECK(ih_get_frames(&srv, keys.staff, surgery, 2, NULL, &got) == 0);
        CHECK(ih_frames_equal(&got, &want, what) == 0);
        CHECK_INT(got.pages, (want.n + 1) / 2); /* no empty last page */
        ih_frames_free(&got);
        ih_frames_free(&want);

        /* The CLI stores the very same bytes. */
        char out[1024];
        const char *catfile = SL_FIXTURES "/coco/categories.json";
        CHECK_INT(support_cli(out, sizeof out, "ingest", "--store", cli_store, "--tenant", TENANT,
                              "--surgery", surgery, "--format", "surgery",
                              SL_FIXTURES "/surgery/surgery.json", (char *)NULL),
                  0);
        int code = fixtures[i].categories
                       ? support_cli(out, sizeof out, "ingest", "--store", cli_store, "--tenant",
                                     TENANT, "--surgery", surgery, "--format", fixtures[i].format,
                                     "--categories", catfile, file, (char *)NULL)
                       : support_cli(out, sizeof out, "ingest", "--store", cli_store, "--tenant",
                                     TENANT, "--surgery", surgery, "--format", fixtures[i].format,
                                     file, (char *)NULL);
        CHECK_INT(code, 0);
        size_t la = 0, lb = 0;
        char *a = frame_docs(srv.store, surgery, &la), *b = frame_docs(cli_store, surgery, &lb);
        CHECK(a && b && la > 0 && la == lb && memcmp(a, b, la) == 0);
        free(a);
        free(b);
    }
}

/* Re-sending every fixture twice changes no byte of the store and makes no
 * feed event. */
static void test_resend_identical(void)
{
    ih_dump before, after;
    CHECK(ih_wait_listener(srv.store) == 0);
    REQUIRE(ih_dump_store(srv.store, &before) == 0);
    for (int round = 0; round < 2; round++)
        for (size_t i = 0; i < NFIX; i++) {
            char surgery[32];
            support_resp r;
            snprintf(surgery, sizeof surgery, "fx-%zu", i);
            CHECK(post_fixture(i, surgery, round, &r) == 0);
            CHECK_INT(r.status, 200);
            CHECK_INT(json_int(r.body, "changed"), 0);
            support_resp_free(&r);
        }
    CHECK(ih_wait_listener(srv.store) == 0);
    REQUIRE(ih_dump_store(srv.store, &after) == 0);
    CHECK(before.docs > 0);
    CHECK_INT(after.docs, before.docs);
    CHECK(after.len == before.len && memcmp(after.bytes, before.bytes, after.len) == 0);
    CHECK_STR(after.head, before.head);
    ih_dump_free(&before);
    ih_dump_free(&after);
}

/* GET output is NDJSON input: sending it back to another surgery stores the
 * same frames. */
static void test_ndjson_roundtrip(void)
{
    ih_frames a, b;
    REQUIRE(ih_get_frames(&srv, keys.staff, "fx-0", 1000, NULL, &a) == 0);
    REQUIRE(ih_put_surgery(&srv, keys.ingest, "echo") == 0);
    char path[128], *body = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&body, &len);
    for (size_t i = 0; i < a.n; i++) {
        fprintf(m, "{\"frame\": %lld, \"detections\": [", (long long)a.f[i].frame);
        for (size_t k = 0; k < a.f[i].n; k++) {
            const ih_det *d = &a.f[i].d[k];
            fprintf(m,
                    "%s{\"label\": \"%s\", \"confidence\": %.6f, \"box\": {\"x\": %.6f, \"y\": "
                    "%.6f, \"w\": %.6f, \"h\": %.6f}}",
                    k ? ", " : "", d->label, d->conf, d->x, d->y, d->w, d->h);
        }
        fprintf(m, "]}\n");
    }
    fclose(m);
    snprintf(path, sizeof path, "/v1/surgeries/echo/detections?format=ndjson");
    support_resp r;
    CHECK(ih_req(&srv, "POST", path, keys.ingest, body, &r) == 0);
    CHECK_INT(r.status, 200);
    support_resp_free(&r);
    CHECK(ih_get_frames(&srv, keys.staff, "echo", 1000, NULL, &b) == 0);
    CHECK(ih_frames_equal(&b, &a, "NDJSON echo of GET frames") == 0);
    free(body);
    ih_frames_free(&a);
    ih_frames_free(&b);
}

/* Box edges in micro-units, from the decimals GET answers. */
static long long um(double v)
{
    return llround(v * 1e6);
}

/* 0 when every box of fr has x + w and y + h at most 1,000,000 micro-units
 * (docs/formats.md, Boxes); else prints each that does not. */
static int boxes_inside(const ih_frames *fr, const char *what)
{
    int bad = 0;
    for (size_t i = 0; i < fr->n; i++)
        for (size_t k = 0; k < fr->f[i].n; k++) {
            const ih_det *d = &fr->f[i].d[k];
            if (um(d->x) + um(d->w) > 1000000 || um(d->y) + um(d->h) > 1000000) {
                fprintf(stderr, "%s: frame %lld detection %zu: x %lld w %lld y %lld h %lld\n", what,
                        (long long)fr->f[i].frame, k, um(d->x), um(d->w), um(d->y), um(d->h));
                bad++;
            }
        }
    return bad;
}

/* GET .../frames of surgery as NDJSON lines (each frame's values as the
 * decimals GET answered, which have at most six places). */
static char *frames_ndjson(const ih_frames *a)
{
    char *body = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&body, &len);
    REQUIRE(m);
    for (size_t i = 0; i < a->n; i++) {
        fprintf(m, "{\"frame\": %lld, \"detections\": [", (long long)a->f[i].frame);
        for (size_t k = 0; k < a->f[i].n; k++) {
            const ih_det *d = &a->f[i].d[k];
            fprintf(m,
                    "%s{\"label\": \"%s\", \"confidence\": %.6f, \"box\": {\"x\": %.6f, \"y\": "
                    "%.6f, \"w\": %.6f, \"h\": %.6f}}",
                    k ? ", " : "", d->label, d->conf, d->x, d->y, d->w, d->h);
        }
        fprintf(m, "]}\n");
    }
    fclose(m);
    return body;
}

/* Boxes a detector left past the image's edges, cut there: stored with x + w
 * and y + h at most 1 exactly, so GET's answer goes back in as NDJSON and
 * stores the same frames.  Regression: the cut was made in doubles and the
 * corner and size rounded to micro-units apart, so center_y 0.97, height
 * 0.060001 was stored as y 940000, h 60001; the NDJSON reader refused the
 * answer for some such boxes ("passes the image's bottom edge") and stored
 * others cut differently (h 60000: not the same document). */
static void test_edge_roundtrip(void)
{
    static const char darknet[] =
        "[\n"
        "{\"frame_id\":1, \"filename\":\"f1.jpg\", \"objects\": [\n"
        " {\"class_id\":0, \"name\":\"scalpel\", \"relative_coordinates\":{\"center_x\":0.5, "
        "\"center_y\":0.97, \"width\":0.1, \"height\":0.060001}, \"confidence\":0.9},\n"
        " {\"class_id\":1, \"name\":\"forceps\", \"relative_coordinates\":{\"center_x\":0.95, "
        "\"center_y\":0.5, \"width\":0.100001, \"height\":0.2}, \"confidence\":0.8},\n"
        " {\"class_id\":2, \"name\":\"sponge\", \"relative_coordinates\":{\"center_x\":0.99, "
        "\"center_y\":0.9, \"width\":0.020003, \"height\":0.200001}, \"confidence\":0.7},\n"
        " {\"class_id\":0, \"name\":\"scalpel\", \"relative_coordinates\":{\"center_x\":0.02, "
        "\"center_y\":0.03, \"width\":0.060001, \"height\":0.060001}, \"confidence\":0.6}\n"
        "]},\n"
        "{\"frame_id\":2, \"filename\":\"f2.jpg\", \"objects\": [\n"
        " {\"class_id\":1, \"name\":\"forceps\", \"relative_coordinates\":{\"center_x\":0.9, "
        "\"center_y\":0.9, \"width\":0.200001, \"height\":0.200001}, \"confidence\":0.5},\n"
        " {\"class_id\":2, \"name\":\"sponge\", \"relative_coordinates\":{\"center_x\":0.5, "
        "\"center_y\":0.5, \"width\":1, \"height\":1}, \"confidence\":1}\n"
        "]}\n"
        "]\n";
    support_resp r;
    ih_frames a, b, c;
    REQUIRE(ih_put_surgery(&srv, keys.ingest, "edge") == 0);
    CHECK(ih_req(&srv, "POST", "/v1/surgeries/edge/detections?format=darknet", keys.ingest, darknet,
                 &r) == 0);
    CHECK_INT(r.status, 200);
    support_resp_free(&r);
    REQUIRE(ih_get_frames(&srv, keys.staff, "edge", 1000, NULL, &a) == 0);
    REQUIRE(a.n == 2 && a.f[0].n == 4 && a.f[1].n == 2);
    CHECK_INT(boxes_inside(&a, "darknet edge boxes"), 0);
    /* center_y 0.97, height 0.060001: from 0.9399995 to the edge. */
    CHECK_INT(um(a.f[0].d[0].y), 940000);
    CHECK_INT(um(a.f[0].d[0].h), 60000);
    /* Cut at the top and left edges: from 0. */
    CHECK_INT(um(a.f[0].d[3].x), 0);
    CHECK_INT(um(a.f[0].d[3].y), 0);

    /* The answer, sent back as NDJSON, stores the same frames. */
    char *body = frames_ndjson(&a);
    REQUIRE(ih_put_surgery(&srv, keys.ingest, "edge-echo") == 0);
    CHECK(ih_req(&srv, "POST", "/v1/surgeries/edge-echo/detections?format=ndjson", keys.ingest,
                 body, &r) == 0);
    CHECK_INT(r.status, 200);
    if (r.status != 200)
        fprintf(stderr, "NDJSON echo of the edge boxes: %s\n", r.body);
    support_resp_free(&r);
    free(body);
    CHECK(ih_get_frames(&srv, keys.staff, "edge-echo", 1000, NULL, &b) == 0);
    CHECK(ih_frames_equal(&b, &a, "NDJSON echo of darknet edge boxes") == 0);

    /* What GET answered for such a box before: one micro-unit past the edge,
     * which sums past 1.000001 as doubles for some (0.999998 + 0.000003).
     * Taken, to the micro-unit, and cut to the edge. */
    static const char old[] = "{\"frame\": 7, \"detections\": ["
                              "{\"label\": \"scalpel\", \"confidence\": 0.5, \"box\": {\"x\": "
                              "0.999998, \"y\": 0.94, \"w\": 0.000003, \"h\": 0.060001}}]}\n";
    REQUIRE(ih_put_surgery(&srv, keys.ingest, "edge-old") == 0);
    CHECK(ih_req(&srv, "POST", "/v1/surgeries/edge-old/detections?format=ndjson", keys.ingest, old,
                 &r) == 0);
    CHECK_INT(r.status, 200);
    support_resp_free(&r);
    CHECK(ih_get_frames(&srv, keys.staff, "edge-old", 1000, NULL, &c) == 0);
    CHECK(c.n == 1 && c.f[0].n == 1);
    if (c.n == 1 && c.f[0].n == 1) {
        CHECK_INT(um(c.f[0].d[0].x), 999998);
        CHECK_INT(um(c.f[0].d[0].w), 2);
        CHECK_INT(um(c.f[0].d[0].y), 940000);
        CHECK_INT(um(c.f[0].d[0].h), 60000);
    }
    /* Two micro-units past is still refused, naming the edge. */
    static const char past[] = "{\"frame\": 8, \"detections\": ["
                               "{\"label\": \"scalpel\", \"confidence\": 0.5, \"box\": {\"x\": "
                               "0.5, \"y\": 0.94, \"w\": 0.1, \"h\": 0.060002}}]}\n";
    CHECK(ih_req(&srv, "POST", "/v1/surgeries/edge-old/detections?format=ndjson", keys.ingest, past,
                 &r) == 0);
    CHECK(support_is_problem(&r, 400, "invalid-input") == 0);
    CHECK(r.body && strstr(r.body, "passes the image's bottom edge") != NULL);
    support_resp_free(&r);
    ih_frames_free(&a);
    ih_frames_free(&b);
    ih_frames_free(&c);
}

/* from/to select frames; frame_offset shifts them; an unknown surgery is 404. */
static void test_ranges(void)
{
    ih_frames all, part, want;
    REQUIRE(ih_get_frames(&srv, keys.staff, "fx-0", 1000, NULL, &all) == 0);
    REQUIRE(all.n >= 3);
    char extra[64];
    snprintf(extra, sizeof extra, "from=%lld&to=%lld", (long long)all.f[1].frame,
             (long long)all.f[2].frame);
    CHECK(ih_get_frames(&srv, keys.staff, "fx-0", 1000, extra, &part) == 0);
    CHECK_INT(part.n, 2);
    CHECK(part.n == 2 && part.f[0].frame == all.f[1].frame && part.f[1].frame == all.f[2].frame);
    ih_frames_free(&part);
    ih_frames_free(&all);

    support_resp r;
    CHECK(ih_req(&srv, "GET", "/v1/surgeries/fx-0/frames?from=5&to=4", keys.staff, NULL, &r) == 0);
    CHECK(support_is_problem(&r, 400, "invalid-input") == 0);
    support_resp_free(&r);
    CHECK(ih_req(&srv, "GET", "/v1/surgeries/fx-0/frames?cursor=zz", keys.staff, NULL, &r) == 0);
    CHECK(support_is_problem(&r, 400, "invalid-input") == 0);
    support_resp_free(&r);
    CHECK(ih_req(&srv, "GET", "/v1/surgeries/none/frames", keys.staff, NULL, &r) == 0);
    CHECK(support_is_problem(&r, 404, "not-found") == 0);
    support_resp_free(&r);

    char url[512];
    REQUIRE(ih_put_surgery(&srv, keys.ingest, "shifted") == 0);
    snprintf(url, sizeof url, "%s/v1/surgeries/shifted/detections?format=darknet&frame_offset=100",
             srv.url);
    CHECK(support_post_file(url, keys.ingest, SL_FIXTURES "/darknet/result.json", 0, &r) == 0);
    CHECK_INT(r.status, 200);
    support_resp_free(&r);
    ingest_parse_options po = {.format = INGEST_FORMAT_DARKNET, .frame_offset = 100};
    REQUIRE(ih_parse_file(SL_FIXTURES "/darknet/result.json", &po, ih_fixture_skus, &want) == 0);
    CHECK(want.n > 0 && want.f[0].frame >= 100);
    CHECK(ih_get_frames(&srv, keys.staff, "shifted", 1000, NULL, &part) == 0);
    CHECK(ih_frames_equal(&part, &want, "frame_offset=100") == 0);
    ih_frames_free(&part);
    ih_frames_free(&want);

    /* Frame numbers from the image file names ("...frame000120.jpg"). */
    REQUIRE(ih_put_surgery(&srv, keys.ingest, "named") == 0);
    snprintf(url, sizeof url, "%s/v1/surgeries/named/detections?format=darknet&frame_from=filename",
             srv.url);
    CHECK(support_post_file(url, keys.ingest, SL_FIXTURES "/darknet/result.json", 1, &r) == 0);
    CHECK_INT(r.status, 200);
    support_resp_free(&r);
    po.frame_offset = 0;
    po.frame_source = INGEST_FRAME_FROM_FILENAME;
    REQUIRE(ih_parse_file(SL_FIXTURES "/darknet/result.json", &po, ih_fixture_skus, &want) == 0);
    CHECK(want.n > 0 && want.f[0].frame == 120);
    CHECK(ih_get_frames(&srv, keys.staff, "named", 1000, NULL, &part) == 0);
    CHECK(ih_frames_equal(&part, &want, "frame_from=filename") == 0);
    ih_frames_free(&part);
    ih_frames_free(&want);
}

/* Six frames of 10,000 detections: a page stops after the frame that
 * reaches 50,000 detections, and the cursor resumes right after it. */
static void test_detection_budget(void)
{
    char *body = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&body, &len);
    for (int f = 0; f < 6; f++) {
        fprintf(m, "{\"frame\": %d, \"detections\": [", f);
        for (int k = 0; k < 10000; k++)
            fprintf(m,
                    "%s{\"label\": \"l%d\", \"confidence\": 0.5, \"box\": {\"x\": 0.1, \"y\": 0.1, "
                    "\"w\": 0.2, \"h\": 0.2}}",
                    k ? "," : "", k % 7);
        fprintf(m, "]}\n");
    }
    fclose(m);
    REQUIRE(ih_put_surgery(&srv, keys.ingest, "dense") == 0);
    support_resp r;
    CHECK(ih_req(&srv, "POST", "/v1/surgeries/dense/detections?format=ndjson", keys.ingest, body,
                 &r) == 0);
    CHECK_INT(r.status, 200);
    support_resp_free(&r);
    free(body);
    ih_frames got;
    CHECK(ih_get_frames(&srv, keys.staff, "dense", 100, NULL, &got) == 0);
    CHECK_INT(got.n, 6);
    CHECK_INT(got.pages, 2); /* 5 frames, then 1 */
    for (size_t i = 0; i < got.n; i++)
        CHECK(got.f[i].frame == (int64_t)i && got.f[i].n == 10000);
    ih_frames_free(&got);
}

/* A darknet batch whose last frame breaks a rule: refused, nothing stored. */
static void test_fails_at_last_frame(void)
{
    ih_dump before, after;
    REQUIRE(ih_put_surgery(&srv, keys.ingest, "lastbad") == 0);
    CHECK(ih_wait_listener(srv.store) == 0);
    REQUIRE(ih_dump_store(srv.store, &before) == 0);
    char *body = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&body, &len);
    fprintf(m, "[\n");
    for (int f = 1; f <= 200; f++)
        fprintf(m,
                "{\"frame_id\":%d, \"filename\":\"f%d.jpg\", \"objects\": [{\"class_id\":0, "
                "\"name\":\"scalpel\", \"relative_coordinates\":{\"center_x\":0.5, "
                "\"center_y\":0.5, \"width\":0.1, \"height\":0.1}, \"confidence\":%s}]}%s\n",
                f, f, f == 200 ? "1.5" : "0.9", f == 200 ? "" : ",");
    fprintf(m, "]\n");
    fclose(m);
    support_resp r;
    CHECK(ih_req(&srv, "POST", "/v1/surgeries/lastbad/detections?format=darknet", keys.ingest, body,
                 &r) == 0);
    CHECK(support_is_problem(&r, 400, "invalid-input") == 0);
    CHECK(strstr(r.body, "[199].objects[0].confidence") != NULL);
    CHECK(strstr(r.body, "\"offset\":") != NULL);
    support_resp_free(&r);
    free(body);
    ih_frames got;
    CHECK(ih_get_frames(&srv, keys.staff, "lastbad", 1000, NULL, &got) == 0);
    CHECK_INT(got.n, 0);
    ih_frames_free(&got);
    REQUIRE(ih_dump_store(srv.store, &after) == 0);
    CHECK(after.len == before.len && memcmp(after.bytes, before.bytes, after.len) == 0);
    CHECK_STR(after.head, before.head);
    ih_dump_free(&before);
    ih_dump_free(&after);
}

/* Real detector outputs: the complete runs ingest; the cut, garbage and
 * console-text files are refused with an offset. */
static void test_realdata(void)
{
    static const struct {
        const char *file;
        int frames; /* 0: refused */
    } cases[] = {
        {"gnefihs-result-1000frames.json", 1000}, {"kartikwar-result-300frames.json", 300},
        {"gnefihs-result-truncated.json", 0},     {"vinishuchiha-result-binary-garbage.json", 0},
        {"tsai-result-console-text.json", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char surgery[32], url[512], file[512];
        support_resp r;
        snprintf(surgery, sizeof surgery, "real-%zu", i);
        snprintf(file, sizeof file, SL_REALDATA "/darknet/%s", cases[i].file);
        snprintf(url, sizeof url, "%s/v1/surgeries/%s/detections?format=darknet", srv.url, surgery);
        REQUIRE(ih_put_surgery(&srv, keys.ingest, surgery) == 0);
        CHECK(support_post_file(url, keys.ingest, file, 0, &r) == 0);
        ih_frames got;
        CHECK(ih_get_frames(&srv, keys.staff, surgery, 1000, NULL, &got) == 0);
        if (cases[i].frames) {
            CHECK_INT(r.status, 200);
            CHECK_INT(json_int(r.body, "frames"), cases[i].frames);
            CHECK_INT(got.n, cases[i].frames);
            CHECK_INT(ih_frames_check_skus(&got, ih_fixture_skus, file), 0);
        } else {
            CHECK(support_is_problem(&r, 400, "invalid-input") == 0);
            CHECK(json_int(r.body, "offset") >= 0);
            CHECK_INT(got.n, 0);
        }
        ih_frames_free(&got);
        support_resp_free(&r);
    }
}

int main(int argc, char **argv)
{
    int real = realdata_mode(argc, argv);
    if (real)
        realdata_require(); /* exits 77 (skipped) without ../shared/realdata */
    char cli_store[300];
    ingest_categories *custom = NULL;
    sl_error err;
    sl_error_clear(&err);
    REQUIRE(support_server_init(&srv, NULL, NULL) == 0);
    REQUIRE(support_server_start(&srv, "--access-log", "off", (char *)NULL) == 0);
    REQUIRE(ih_tenant(&srv, TENANT, &keys) == 0);
    REQUIRE(ih_put_catalog(&srv, keys.admin) == 0);
    snprintf(cli_store, sizeof cli_store, "sqlite:%s/cli.db", srv.dir);
    char out[256];
    REQUIRE(support_cli(out, sizeof out, "tenants", "create", TENANT, "--kind", "hospital",
                        "--store", cli_store, (char *)NULL) == 0);
    static const char *const skus[][2] = {
        {"FORCEPS-1", "forceps"}, {"SC-10", "scalpel"}, {"SPONGE-18", "sponge"}};
    for (size_t i = 0; i < 3; i++) {
        char file[512];
        snprintf(file, sizeof file, SL_FIXTURES "/catalog/%s.json", skus[i][1]);
        REQUIRE(support_cli(out, sizeof out, "ingest", "--store", cli_store, "--tenant", TENANT,
                            "--sku", skus[i][0], "--format", "catalog", file, (char *)NULL) == 0);
    }
    REQUIRE(ingest_categories_load(SL_FIXTURES "/coco/categories.json", NULL, &custom, &err) ==
            SL_OK);
    size_t clen = 0;
    char *cats = support_read_file(SL_FIXTURES "/coco/categories.json", &clen);
    REQUIRE(cats);
    while (clen > 0 && (cats[clen - 1] == '\n' || cats[clen - 1] == ' '))
        clen--; /* a query value holds no control byte */
    char *esc = curl_easy_escape(NULL, cats, (int)clen);
    REQUIRE(esc && strlen(esc) < sizeof cats_escaped);
    snprintf(cats_escaped, sizeof cats_escaped, "%s", esc);
    curl_free(esc);
    free(cats);

    if (real) { /* `realdata`: its own ctest entry, skipped without ../shared/realdata */
        test_realdata();
    } else {
        test_catalog_table();
        test_fixtures(cli_store, custom);
        test_resend_identical();
        test_ndjson_roundtrip();
        test_edge_roundtrip();
        test_ranges();
        test_detection_budget();
        test_fails_at_last_frame();
    }

    support_resp r;
    CHECK(ih_req(&srv, "GET", "/healthz", NULL, NULL, &r) == 0 && r.status == 200);
    support_resp_free(&r);
    ingest_categories_free(&custom);
    CHECK_INT(support_server_stop(&srv), 0);
    support_server_cleanup(&srv);
    return check_finish();
}
