/* api_ingest_bad_test.c -- each bad-input class of issue 4 through HTTP gets a
 * problem naming offset or path and rule, stores nothing, leaves the server
 * up; a streamed 100 MB string does not grow the server's peak RSS. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "../check.h"
#include "ingest_http.h"

#define TENANT "t1"

static support_server srv;
static ih_keys keys;

/* A darknet object with the given confidence and centre x (as written). */
#define OBJ(conf, cx)                                                                              \
    "{\"class_id\":1, \"name\":\"scalpel\", \"relative_coordinates\":{\"center_x\":" cx            \
    ", \"center_y\":0.5, \"width\":0.1, \"height\":0.1}, \"confidence\":" conf "}"
#define OBJ_NAMED(name)                                                                            \
    "{\"class_id\":1, \"name\":\"" name "\", \"relative_coordinates\":{\"center_x\":0.5, "         \
    "\"center_y\":0.5, \"width\":0.1, \"height\":0.1}, \"confidence\":0.5}"
#define FRAME(id, objs) "{\"frame_id\":" id ", \"filename\":\"f.jpg\", \"objects\": [" objs "]}"

typedef struct bad_case {
    const char *name;
    const char *query; /* after ?, "format=darknet" when NULL */
    const char *body;
    int status;
    const char *slug;
    const char *field;  /* substring of the problem's field, NULL: not checked */
    const char *detail; /* substring of the problem's detail: the rule */
    int offset;         /* the problem must name a byte offset */
} bad_case;

static const bad_case cases[] = {
    {"truncated JSON", NULL, "[" FRAME("1", OBJ("0.9", "0.5")) ", {\"frame_id\":2, \"obj", 400,
     "invalid-input", NULL, "cut off", 1},
    {"wrong type", NULL, "[" FRAME("1", OBJ("\"high\"", "0.5")) "]", 400, "invalid-input",
     "[0].objects[0].confidence", "number", 1},
    {"NaN", NULL, "[" FRAME("1", OBJ("NaN", "0.5")) "]", 400, "invalid-input", "[0].objects[0]",
     "JSON", 1},
    {"Infinity", NULL, "[" FRAME("1", OBJ("0.9", "Infinity")) "]", 400, "invalid-input",
     "[0].objects[0]", "JSON", 1},
    {"huge number", NULL, "[" FRAME("1", OBJ("0.9", "1e400")) "]", 400, "invalid-input", "center_x",
     NULL, 1},
    {"centre outside the image", NULL, "[" FRAME("1", OBJ("0.9", "1.5")) "]", 400, "invalid-input",
     "[0].objects[0].relative_coordinates.center_x", "outside", 1},
    {"negative box", NULL,
     "[{\"frame_id\":1, \"objects\": [{\"name\":\"a\", \"relative_coordinates\":{\"center_x\":0.5, "
     "\"center_y\":0.5, \"width\":-0.1, \"height\":0.1}, \"confidence\":0.5}]}]",
     400, "invalid-input", "width", NULL, 1},
    {"NDJSON box past the edge", "format=ndjson",
     "{\"frame\": 1, \"detections\": []}\n{\"frame\": 2, \"detections\": [{\"label\": \"a\", "
     "\"confidence\": 0.5, \"box\": {\"x\": 0.9, \"y\": 0.1, \"w\": 0.2, \"h\": 0.1}}]}\n",
     400, "invalid-input", "line 2", NULL, 1},
    {"confidence above 1", NULL, "[" FRAME("1", OBJ("1.5", "0.5")) "]", 400, "invalid-input",
     "[0].objects[0].confidence", "[0, 1]", 1},
    {"confidence below 0", NULL, "[" FRAME("1", OBJ("-0.01", "0.5")) "]", 400, "invalid-input",
     "[0].objects[0].confidence", "[0, 1]", 1},
    {"duplicate key", NULL,
     "[{\"frame_id\":1, \"frame_id\":2, \"objects\": [" OBJ("0.9", "0.5") "]}]", 400,
     "invalid-input", "frame_id", "duplicate", 1},
    {"bad frame id (text)", NULL, "[" FRAME("\"x\"", OBJ("0.9", "0.5")) "]", 400, "invalid-input",
     "[0].frame_id", NULL, 1},
    {"bad frame id (fraction)", NULL, "[" FRAME("1.5", OBJ("0.9", "0.5")) "]", 400, "invalid-input",
     "[0].frame_id", NULL, 1},
    {"bad frame id (negative)", NULL, "[" FRAME("-3", OBJ("0.9", "0.5")) "]", 400, "invalid-input",
     "[0]", "frame_id -3", 1},
    {"bad frame id (too large)", NULL, "[" FRAME("1000000000", OBJ("0.9", "0.5")) "]", 400,
     "invalid-input", "[0]", "frame_id 1000000000", 1},
    {"invalid UTF-8", NULL,
     "[{\"frame_id\":1, \"objects\": [{\"name\":\"sc\xff\xfel\", \"relative_coordinates\":"
     "{\"center_x\":0.5, \"center_y\":0.5, \"width\":0.1, \"height\":0.1}, \"confidence\":0.5}]}]",
     400, "invalid-input", "[0].objects[0].name", "not valid UTF-8", 1},
    /* Regression (issue 9, finding 7): what yajl let by and the store kept. */
    {"overlong label", NULL, "[" FRAME("1", OBJ_NAMED("sc\xc0\xafl")) "]", 400, "invalid-input",
     "[0].objects[0].name", "overlong", 1},
    {"surrogate label", NULL, "[" FRAME("1", OBJ_NAMED("sc\xed\xa0\x80l")) "]", 400,
     "invalid-input", "[0].objects[0].name", "surrogate", 1},
    {"label past U+10FFFF", NULL, "[" FRAME("1", OBJ_NAMED("sc\xf4\x90\x80\x80l")) "]", 400,
     "invalid-input", "[0].objects[0].name", "U+10FFFF", 1},
    {"lone high surrogate escape", NULL, "[" FRAME("1", OBJ_NAMED("sc\\ud800l")) "]", 400,
     "invalid-input", "[0].objects[0].name", "high surrogate", 1},
    {"lone low surrogate escape", "format=ndjson",
     "{\"frame\": 1, \"detections\": [{\"label\": \"\\udc00\", \"confidence\": 0.5, "
     "\"box\": {\"x\": 0.1, \"y\": 0.1, \"w\": 0.2, \"h\": 0.1}}]}\n",
     400, "invalid-input", "line 1: detections[0].label", "low surrogate", 1},
    {"trailing garbage", NULL, "[" FRAME("1", OBJ("0.9", "0.5")) "] x", 400, "invalid-input", NULL,
     NULL, 1},
    {"frame named twice", NULL, "[" FRAME("1", OBJ("0.9", "0.5")) ", " FRAME("1", "") "]", 400,
     "invalid-input", NULL, "twice", 1},
    {"unknown format", "format=yolo", "[]", 400, "invalid-input", "format", "darknet", 0},
    {"assets to detections", "format=assets", "[]", 400, "invalid-input", "format", "assets", 0},
    {"no format", "", "[]", 400, "invalid-input", "format", "required", 0},
    {"bad frame_offset", "format=darknet&frame_offset=abc", "[]", 400, "invalid-input",
     "frame_offset", NULL, 0},
    {"half an image size", "format=coco&image_width=640", "[]", 400, "invalid-input",
     "image_height", NULL, 0},
    {"bad categories", "format=coco&categories=%5B1", "[]", 400, "invalid-input", "categories",
     NULL, 0},
    {"empty body", NULL, "", 400, "invalid-input", NULL, NULL, 1},
};

/* Problem member `key` as text (strings) or number text; "" when absent. */
static void member(const char *body, const char *key, char *out, size_t cap)
{
    char err[128];
    yajl_val root = yajl_tree_parse(body, err, sizeof err);
    const char *p[] = {key, NULL};
    yajl_val v = root ? yajl_tree_get(root, p, yajl_t_any) : NULL;
    out[0] = '\0';
    if (v && YAJL_IS_STRING(v))
        snprintf(out, cap, "%s", v->u.string);
    else if (v && YAJL_IS_INTEGER(v))
        snprintf(out, cap, "%lld", YAJL_GET_INTEGER(v));
    if (root)
        yajl_tree_free(root);
}

static void expect_nothing_stored(const ih_dump *before, const char *what)
{
    ih_dump now;
    support_resp r;
    REQUIRE(ih_dump_store(srv.store, &now) == 0);
    if (now.len != before->len || memcmp(now.bytes, before->bytes, now.len) != 0 ||
        strcmp(now.head, before->head) != 0) {
        fprintf(stderr, "%s: the store changed\n", what);
        CHECK(0);
    }
    ih_dump_free(&now);
    CHECK(ih_req(&srv, "GET", "/healthz", NULL, NULL, &r) == 0 && r.status == 200);
    support_resp_free(&r);
}

static void test_cases(const ih_dump *before)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad_case *c = &cases[i];
        char url[512], field[256], detail[1024], offset[32];
        support_resp r;
        snprintf(url, sizeof url, "%s/v1/surgeries/s1/detections?%s", srv.url,
                 c->query ? c->query : "format=darknet");
        CHECK(support_http("POST", url, keys.ingest, c->body, strlen(c->body), NULL, &r) == 0);
        member(r.body, "field", field, sizeof field);
        member(r.body, "detail", detail, sizeof detail);
        member(r.body, "offset", offset, sizeof offset);
        int ok = support_is_problem(&r, c->status, c->slug) == 0 &&
                 (!c->field || strstr(field, c->field)) &&
                 (!c->detail || strstr(detail, c->detail)) && (!c->offset || offset[0]) &&
                 detail[0];
        if (!ok)
            fprintf(stderr, "case \"%s\": %ld %s\n", c->name, r.status, r.body);
        CHECK(ok);
        support_resp_free(&r);
        expect_nothing_stored(before, c->name);
    }
}

/* Regression (issue 9, finding 7): free text of the PUT bodies (surgeon,
 * room, catalog names and label patterns) with invalid UTF-8 was stored; it
 * is refused naming the member and the byte offset, and nothing changes. */
static void test_put_bodies_utf8(const ih_dump *before)
{
    static const struct {
        const char *path, *body, *field, *detail;
        int offset;
    } put[] = {
        {"/v1/surgeries/s2",
         "{\"hospital\": \"st-mary\", \"room\": \"OR 3\", \"procedure\": \"lap-chole\", "
         "\"surgeon\": \"Dr. \xc3\x80\xc0\xa0Grey\", \"started_at\": \"2026-11-26T08:15:00Z\", "
         "\"fps\": 30, \"frame_width\": 640, \"frame_height\": 480, "
         "\"table\": [[0.05, 0.55], [0.65, 0.55], [0.65, 0.98]]}",
         "surgeon", "overlong", 84},
        {"/v1/surgeries/s2",
         "{\"hospital\": \"st-mary\", \"room\": \"OR \\udbff3\", \"procedure\": \"lap-chole\", "
         "\"surgeon\": \"Dr. Grey\", \"started_at\": \"2026-11-26T08:15:00Z\", "
         "\"fps\": 30, \"frame_width\": 640, \"frame_height\": 480, "
         "\"table\": [[0.05, 0.55], [0.65, 0.55], [0.65, 0.98]]}",
         "room", "high surrogate", 36},
        {"/v1/catalog/SC-11",
         "{\"name\": \"Scalpel \xed\xb2\x80\", \"labels\": [\"scalpel\"], \"unit_cost_cents\": "
         "245, "
         "\"single_use\": true}",
         "name", "surrogate", 18},
        {"/v1/catalog/SC-11",
         "{\"name\": \"Scalpel\", \"labels\": [\"scalpel\", \"\xf4\x90\x80\x80\"], "
         "\"unit_cost_cents\": 245, \"single_use\": true}",
         "labels", "U+10FFFF", 43},
    };
    for (size_t i = 0; i < sizeof put / sizeof put[0]; i++) {
        char field[256], detail[1024], offset[32];
        support_resp r;
        CHECK(ih_req(&srv, "PUT", put[i].path, i < 2 ? keys.ingest : keys.admin, put[i].body, &r) ==
              0);
        member(r.body, "field", field, sizeof field);
        member(r.body, "detail", detail, sizeof detail);
        member(r.body, "offset", offset, sizeof offset);
        int ok = support_is_problem(&r, 400, "invalid-input") == 0 && strstr(field, put[i].field) &&
                 strstr(detail, put[i].detail) && atoi(offset) == put[i].offset;
        if (!ok)
            fprintf(stderr, "PUT case %zu: %ld %s\n", i, r.status, r.body);
        CHECK(ok);
        support_resp_free(&r);
        expect_nothing_stored(before, put[i].path);
    }
}

/* 10^6 nested arrays, streamed chunked: refused at the depth limit. */
typedef struct repeat_gen {
    const char *head, *tail;
    char fill;
    uint64_t fill_len, pos;
} repeat_gen;

static size_t gen_repeat(void *ctx, char *buf, size_t cap)
{
    repeat_gen *g = ctx;
    size_t n = 0, hl = strlen(g->head), tl = strlen(g->tail);
    uint64_t total = hl + g->fill_len + tl;
    while (n < cap && g->pos < total) {
        uint64_t p = g->pos;
        if (p < hl) {
            buf[n++] = g->head[p];
            g->pos++;
        } else if (p < hl + g->fill_len) {
            uint64_t run = hl + g->fill_len - p;
            size_t k = run < cap - n ? (size_t)run : cap - n;
            memset(buf + n, g->fill, k);
            n += k;
            g->pos += k;
        } else {
            buf[n++] = g->tail[p - hl - g->fill_len];
            g->pos++;
        }
    }
    return n;
}

/* An unknown surgery (also the key's own tenant has none of that name). */
static void test_unknown_surgery(const ih_dump *before)
{
    char url[512];
    support_resp r;
    const char *body = "[" FRAME("1", OBJ("0.9", "0.5")) "]";
    snprintf(url, sizeof url, "%s/v1/surgeries/nope/detections?format=darknet", srv.url);
    CHECK(support_http("POST", url, keys.ingest, body, strlen(body), NULL, &r) == 0);
    CHECK(support_is_problem(&r, 404, "not-found") == 0);
    CHECK(strstr(r.body, "nope") != NULL);
    support_resp_free(&r);
    /* A large chunked body: refused from its head alone -- the 404 comes
     * before any body byte is sent, then the server closes the connection
     * and the body is never read (8 MiB sent after it cannot all go).  Sent
     * in that order on a raw socket, so the outcome cannot depend on who is
     * first: a client pushing the body before reading may instead see its
     * send fail once the server has closed. */
    char head[512], reply[4096];
    snprintf(head, sizeof head,
             "POST /v1/surgeries/nope/detections?format=darknet HTTP/1.1\r\nHost: t\r\n"
             "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
             "Transfer-Encoding: chunked\r\n\r\n",
             keys.ingest);
    int fd = support_connect(srv.port);
    REQUIRE(fd >= 0);
    CHECK_INT(support_write_all(fd, head, strlen(head)), 0);
    CHECK_INT(support_read_response(fd, reply, sizeof reply, 30000), 404);
    CHECK(strcasestr(reply, "\r\nConnection: close\r\n") != NULL);
    const char *at = strstr(reply, "\r\n\r\n");
    CHECK(at && strstr(at, "https://sightline.dev/problems/not-found") &&
          strstr(at, "no surgery \\\"nope\\\""));
    CHECK_INT(support_wait_closed(fd, 30000), 1);
    static char chunk[1 << 16];
    int n = snprintf(chunk, sizeof chunk, "%x\r\n", (unsigned)(sizeof chunk - 16));
    memset(chunk + n, ' ', sizeof chunk - 16);
    memcpy(chunk + n + sizeof chunk - 16, "\r\n", 2);
    int refused = 0;
    for (int i = 0; i < 128 && !refused; i++) /* 8 MiB */
        refused = support_write_all(fd, chunk, (size_t)n + sizeof chunk - 14) != 0;
    CHECK(refused);
    close(fd);
    expect_nothing_stored(before, "unknown surgery");
}

static void test_deep_nesting(const ih_dump *before)
{
    char url[512], field[256], offset[32];
    support_resp r;
    /* Inside a member detectors may add (unknown members are skipped, yet
     * bounded), so the depth rule is what refuses it. */
    repeat_gen g = {"[{\"frame_id\":1, \"objects\": [], \"extra\": ", "", '[', 1000000, 0};
    snprintf(url, sizeof url, "%s/v1/surgeries/s1/detections?format=darknet", srv.url);
    CHECK(support_post_gen(url, keys.ingest, gen_repeat, &g, 0, &r) == 0);
    CHECK(r.status == 400 || r.status == 413);
    CHECK(support_is_problem(&r, (int)r.status, r.status == 400 ? "invalid-input" : "too-large") ==
          0);
    member(r.body, "offset", offset, sizeof offset);
    member(r.body, "field", field, sizeof field);
    CHECK(offset[0] && atol(offset) < 100); /* refused where the depth passed the limit */
    CHECK(strstr(field, "[0].extra") != NULL);
    CHECK(strstr(r.body, "nest") != NULL);
    fprintf(stderr, "deep nesting: %ld %s\n", r.status, r.body);
    support_resp_free(&r);
    expect_nothing_stored(before, "deep nesting");
}

/* A 100 MB file name, streamed with a Content-Length: refused naming the
 * place, and the server's memory does not grow with the string. */
static void test_huge_string(const ih_dump *before)
{
    char url[512], offset[32];
    support_resp r;
    long rss_before = support_proc_kb(srv.pid, "VmRSS:");
    repeat_gen g = {"[{\"frame_id\":1, \"filename\":\"", "\", \"objects\": []}]", 'A', 100ull << 20,
                    0};
    uint64_t total = strlen(g.head) + g.fill_len + strlen(g.tail);
    snprintf(url, sizeof url, "%s/v1/surgeries/s1/detections?format=darknet", srv.url);
    CHECK(support_post_gen(url, keys.ingest, gen_repeat, &g, total, &r) == 0);
    CHECK(r.status == 400 || r.status == 413);
    CHECK(support_is_problem(&r, (int)r.status, r.status == 400 ? "invalid-input" : "too-large") ==
          0);
    member(r.body, "offset", offset, sizeof offset);
    CHECK(offset[0] != '\0');
    CHECK(strstr(r.body, "[0].filename") != NULL);
    fprintf(stderr, "huge string: %ld %s\n", r.status, r.body);
    support_resp_free(&r);
    long hwm_after = support_proc_kb(srv.pid, "VmHWM:");
    fprintf(stderr, "server RSS before %ld kB, peak after the 100 MB string %ld kB\n", rss_before,
            hwm_after);
    CHECK(rss_before > 0 && hwm_after > 0);
    CHECK(hwm_after - rss_before < 32 * 1024); /* far below the 100 MB it was sent */
    expect_nothing_stored(before, "100 MB string");
}

int main(void)
{
    ih_dump before;
    REQUIRE(support_server_init(&srv, NULL, NULL) == 0);
    REQUIRE(support_server_start(&srv, "--access-log", "off", (char *)NULL) == 0);
    REQUIRE(ih_tenant(&srv, TENANT, &keys) == 0);
    REQUIRE(ih_put_surgery(&srv, keys.ingest, "s1") == 0);
    CHECK(ih_wait_listener(srv.store) == 0);
    REQUIRE(ih_dump_store(&srv.store[0], &before) == 0);

    test_huge_string(&before); /* first: the peak RSS is still the start-up one */
    test_deep_nesting(&before);
    test_cases(&before);
    test_put_bodies_utf8(&before);
    test_unknown_surgery(&before);

    /* After all that, a good batch still goes in. */
    const char *good = "[" FRAME("1", OBJ("0.9", "0.5")) "]";
    char url[512];
    support_resp r;
    snprintf(url, sizeof url, "%s/v1/surgeries/s1/detections?format=darknet", srv.url);
    CHECK(support_http("POST", url, keys.ingest, good, strlen(good), NULL, &r) == 0);
    CHECK_INT(r.status, 200);
    support_resp_free(&r);

    ih_dump_free(&before);
    CHECK_INT(support_server_stop(&srv), 0);
    support_server_cleanup(&srv);
    return check_finish();
}
