/* api_ingest_lifecycle_test.c -- issue 11, item 2: a surgery takes
 * detections only while open, through the real server.
 *
 * Regression: the API and ingest refused detections only when the status was
 * the word "closed", so an analyzed or failed surgery (whose results, or
 * their failure, describe the frames stored) took new frames behind its
 * analysis' back.  For each status but open: 409 naming the status, at the
 * request head (no body byte sent) and with a body, nothing stored; a PUT of
 * the description keeps the whole life cycle; GET shows it.  Then one
 * surgery goes through the engine's transitions as the API and the analysis
 * job will drive them, checked the same way at each step. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "../check.h"
#include "engine/engine.h"
#include "ingest_http.h"

#define TENANT  "h1"
#define WAIT_MS 10000 /* a hang guard for raw reads, not a measurement */

static support_server srv;
static ih_keys k;

/* Member key of a JSON body as text; "null" for null, "" when absent. */
static const char *get(const char *body, const char *key, char out[2048])
{
    char err[128];
    yajl_val root = yajl_tree_parse(body, err, sizeof err);
    const char *p[] = {key, NULL};
    yajl_val v = root ? yajl_tree_get(root, p, yajl_t_any) : NULL;
    out[0] = '\0';
    if (v && YAJL_IS_STRING(v))
        snprintf(out, 2048, "%s", v->u.string);
    else if (v && YAJL_IS_NUMBER(v))
        snprintf(out, 2048, "%s", YAJL_GET_NUMBER(v));
    else if (v && YAJL_IS_NULL(v))
        snprintf(out, 2048, "null");
    if (root)
        yajl_tree_free(root);
    return out;
}

static long call(const char *method, const char *path, const char *key, const char *body,
                 char **out)
{
    support_resp r;
    long status = ih_req(&srv, method, path, key, body, &r) == 0 ? r.status : -1;
    if (out)
        *out = strdup(r.body ? r.body : "");
    support_resp_free(&r);
    return status;
}

/* A request head declaring a 1 GB body and nothing else: the status of the
 * answer (its text into reply), -1 if none came. */
static int head_only(const char *path, char *reply, size_t cap)
{
    char head[1024];
    int fd = support_connect(srv.port);
    int status = -1;
    snprintf(head, sizeof head,
             "POST %s HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
             "Content-Length: 1000000000\r\n\r\n",
             path, k.ingest);
    if (fd >= 0 && support_write_all(fd, head, strlen(head)) == 0)
        status = support_read_response(fd, reply, cap, WAIT_MS);
    if (fd >= 0)
        close(fd);
    return status;
}

/* Rewrites the surgery's life-cycle fields in the store, as the engine's
 * transitions leave them (same document, the status fields last). */
static void set_life(const char *id, const char *status, int64_t closed_ms, int64_t analyzed_ms,
                     const char *why)
{
    store *st = NULL;
    bson_t *doc = NULL, next = BSON_INITIALIZER;
    char pk[256];
    sl_error e;
    sl_error_clear(&e);
    snprintf(pk, sizeof pk, "T#" TENANT "#SURGERY#%s", id);
    REQUIRE(store_open(srv.store, NULL, &st, &e) == SL_OK);
    REQUIRE(store_get(st, STORE_ITEMS, pk, "META", &doc, &e) == SL_OK);
    bson_copy_to_excluding_noinit(doc, &next, "v", "status", "closed_ms", "analyzed_ms",
                                  "analysis_error", NULL);
    BSON_APPEND_UTF8(&next, "status", status);
    BSON_APPEND_INT64(&next, "closed_ms", closed_ms);
    BSON_APPEND_INT64(&next, "analyzed_ms", analyzed_ms);
    BSON_APPEND_UTF8(&next, "analysis_error", why);
    REQUIRE(store_put(st, STORE_ITEMS, &next, (store_cond){STORE_COND_NONE, 0}, NULL, &e) == SL_OK);
    bson_destroy(&next);
    bson_destroy(doc);
    store_close(&st);
}

static const char *const one_frame = "{\"frame\": 1, \"detections\": [{\"label\": \"scalpel\", "
                                     "\"confidence\": 0.9, \"box\": {\"x\": 0.1, \"y\": 0.6, "
                                     "\"w\": 0.1, \"h\": 0.1}}]}\n";

/* Detections to a surgery that is not open: 409 naming its status, before
 * the body and with it; no frame stored. */
static void check_refused(const char *id, const char *status)
{
    char path[256], reply[8192], want[160], v[2048];
    char *body = NULL;
    snprintf(path, sizeof path, "/v1/surgeries/%s/detections?format=ndjson", id);
    snprintf(want, sizeof want, "surgery \\\"%s\\\" is %s: its detections can no longer change", id,
             status);
    CHECK_INT(head_only(path, reply, sizeof reply), 409);
    if (!strstr(reply, want))
        fprintf(stderr, "%s: head answer: %s\n", status, reply);
    CHECK(strstr(reply, want) != NULL);
    CHECK(strstr(reply, "\"field\":\"id\"") != NULL);
    CHECK_INT(call("POST", path, k.ingest, one_frame, &body), 409);
    CHECK_STR(get(body, "status", v), "409");
    free(body);
    snprintf(path, sizeof path, "/v1/surgeries/%s/frames", id);
    CHECK_INT(call("GET", path, k.staff, NULL, &body), 200);
    CHECK(strstr(body, "\"frames\":[]") != NULL);
    free(body);
}

/* GET shows the life cycle: status, closed_at, analyzed_at, analysis_error. */
static void check_shown(const char *id, const char *status, const char *closed_at,
                        const char *analyzed_at, const char *why)
{
    char path[256], v[2048];
    char *body = NULL;
    snprintf(path, sizeof path, "/v1/surgeries/%s", id);
    CHECK_INT(call("GET", path, k.staff, NULL, &body), 200);
    CHECK_STR(get(body, "status", v), status);
    CHECK_STR(get(body, "closed_at", v), closed_at);
    CHECK_STR(get(body, "analyzed_at", v), analyzed_at);
    CHECK_STR(get(body, "analysis_error", v), why);
    CHECK(strstr(body, "closed_ms") == NULL && strstr(body, "analyzed_ms") == NULL);
    free(body);
}

static void test_every_status_but_open_refuses(void)
{
    static const struct {
        const char *status;
        int64_t analyzed_ms;
        const char *why, *analyzed_at;
    } cases[] = {
        {"closed", 0, "", "null"},
        {"analyzed", 1790000600000, "", "2026-09-21T14:23:20.000Z"},
        {"failed", 1790000600000, "catalog entry TOOL#X: unit_cost_cents is missing",
         "2026-09-21T14:23:20.000Z"},
    };
    char *body = NULL, v[2048];
    /* The control: an open surgery takes them. */
    REQUIRE(ih_put_surgery(&srv, k.ingest, "s-open") == 0);
    CHECK_INT(
        call("POST", "/v1/surgeries/s-open/detections?format=ndjson", k.ingest, one_frame, &body),
        200);
    free(body);
    check_shown("s-open", "open", "null", "null", "null");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char id[32];
        snprintf(id, sizeof id, "s-%s", cases[i].status);
        REQUIRE(ih_put_surgery(&srv, k.ingest, id) == 0);
        set_life(id, cases[i].status, 1790000000000, cases[i].analyzed_ms, cases[i].why);
        check_refused(id, cases[i].status);
        const char *why = cases[i].why[0] ? cases[i].why : "null";
        check_shown(id, cases[i].status, "2026-09-21T14:13:20.000Z", cases[i].analyzed_at, why);
        /* A PUT of the description changes it, never the life cycle. */
        char path[64];
        snprintf(path, sizeof path, "/v1/surgeries/%s", id);
        CHECK_INT(call("PUT", path, k.ingest,
                       "{\"hospital\": \"st-mary\", \"room\": \"OR 4\", \"procedure\": "
                       "\"lap-chole\", \"surgeon\": \"Dr. Grey\", \"started_at\": "
                       "\"2026-11-26T08:15:00Z\", \"fps\": 30, \"frame_width\": 640, "
                       "\"frame_height\": 480, \"table\": [[0, 0.5], [1, 0.5], [0.5, 1]]}",
                       &body),
                  200);
        CHECK_STR(get(body, "room", v), "OR 4");
        CHECK_STR(get(body, "status", v), cases[i].status);
        free(body);
        check_shown(id, cases[i].status, "2026-09-21T14:13:20.000Z", cases[i].analyzed_at, why);
        check_refused(id, cases[i].status);
    }
}

/* One surgery driven by the engine's transitions, as close, the analysis
 * job and analyze will drive it. */
static void test_transitions_through_the_server(void)
{
    store *st = NULL;
    sl_error e;
    schema_surgery_life l;
    sl_error_clear(&e);
    REQUIRE(ih_put_surgery(&srv, k.ingest, "s-life") == 0);
    REQUIRE(store_open(srv.store, NULL, &st, &e) == SL_OK);
    CHECK_INT(engine_surgery_transition(st, TENANT, "s-life", ENGINE_SURGERY_CLOSE, 1790000000000,
                                        NULL, &l, &e),
              SL_OK);
    check_refused("s-life", "closed");
    check_shown("s-life", "closed", "2026-09-21T14:13:20.000Z", "null", "null");
    CHECK_INT(engine_surgery_transition(st, TENANT, "s-life", ENGINE_SURGERY_FAILED, 1790000600000,
                                        "the catalog could not be read", &l, &e),
              SL_OK);
    check_refused("s-life", "failed");
    check_shown("s-life", "failed", "2026-09-21T14:13:20.000Z", "2026-09-21T14:23:20.000Z",
                "the catalog could not be read");
    CHECK_INT(
        engine_surgery_transition(st, TENANT, "s-life", ENGINE_SURGERY_REQUEUE, 0, NULL, &l, &e),
        SL_OK);
    check_refused("s-life", "closed");
    CHECK_INT(engine_surgery_transition(st, TENANT, "s-life", ENGINE_SURGERY_ANALYZED,
                                        1790000900000, NULL, &l, &e),
              SL_OK);
    check_refused("s-life", "analyzed");
    check_shown("s-life", "analyzed", "2026-09-21T14:13:20.000Z", "2026-09-21T14:28:20.000Z",
                "null");
    /* A PUT after all that still changes only the description. */
    REQUIRE(ih_put_surgery(&srv, k.ingest, "s-life") == 0);
    check_shown("s-life", "analyzed", "2026-09-21T14:13:20.000Z", "2026-09-21T14:28:20.000Z",
                "null");
    check_refused("s-life", "analyzed");
    store_close(&st);
}

int main(void)
{
    REQUIRE(support_server_init(&srv, NULL, NULL) == 0);
    REQUIRE(support_server_start(&srv, "--access-log", "off", (char *)NULL) == 0);
    REQUIRE(ih_tenant(&srv, TENANT, &k) == 0);
    REQUIRE(ih_put_catalog(&srv, k.admin) == 0);
    test_every_status_but_open_refuses();
    test_transitions_through_the_server();
    CHECK_INT(support_server_stop(&srv), 0);
    support_server_cleanup(&srv);
    return check_finish();
}
