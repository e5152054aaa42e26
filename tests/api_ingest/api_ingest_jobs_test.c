/* api_ingest_jobs_test.c -- `serve --threads 1`: a detection job held by this
 * test's store lock stalls no other route; unknown or closed surgeries are
 * refused before the body; one catalog compile per version.  Nothing timed. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../check.h"
#include "ingest_http.h"

#define WAIT_MS 10000 /* a hang guard for raw reads, not a measurement */

static support_server srv;
static ih_keys k;

/* The value of an unlabelled metric line "name N" of GET /metrics, sent on
 * its own connection; -1 when absent or when no answer came. */
static long long metric(const char *name)
{
    char reply[65536], want[128];
    const char *get = "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n";
    long long v = -1;
    int fd = support_connect(srv.port);
    snprintf(want, sizeof want, "\n%s ", name);
    if (fd >= 0 && support_write_all(fd, get, strlen(get)) == 0 &&
        support_read_response(fd, reply, sizeof reply, WAIT_MS) == 200) {
        const char *at = strstr(reply, want);
        if (at)
            v = atoll(at + strlen(want));
    }
    if (fd >= 0)
        close(fd);
    return v;
}

/* Waits until metric `name` reads want; 0 when it did, -1 as soon as the
 * server does not answer or has no such metric. */
static int metric_reaches(const char *name, long long want)
{
    long long v = 0;
    for (int i = 0; i < 1500 && v >= 0; i++) {
        if ((v = metric(name)) == want)
            return 0;
        support_sleep_ms(20);
    }
    return -1;
}

/* A darknet run of `frames` frames of five objects, generated as it is sent. */
typedef struct gen {
    int frame, frames;
    int closed;
} gen;

static size_t gen_darknet(void *ctx, char *buf, size_t cap)
{
    gen *g = ctx;
    size_t n = 0;
    if (g->frame == 0 && !g->closed && cap > 2) {
        buf[n++] = '[';
        buf[n++] = '\n';
    }
    while (g->frame < g->frames && cap - n > 2048) {
        g->frame++;
        n += (size_t)snprintf(buf + n, cap - n,
                              "{\"frame_id\":%d, \"filename\":\"f%d.jpg\", \"objects\": [",
                              g->frame, g->frame);
        for (int o = 0; o < 5; o++)
            n += (size_t)snprintf(buf + n, cap - n,
                                  "%s{\"class_id\":%d, \"name\":\"%s\", \"relative_coordinates\":"
                                  "{\"center_x\":0.%d5, \"center_y\":0.5, \"width\":0.1, "
                                  "\"height\":0.1}, \"confidence\":0.9}",
                                  o ? ", " : "", o, o % 2 ? "scalpel" : "sponge", o + 1);
        n += (size_t)snprintf(buf + n, cap - n, "]}%s\n", g->frame < g->frames ? "," : "");
    }
    if (g->frame == g->frames && !g->closed && cap - n > 2) {
        buf[n++] = ']';
        buf[n++] = '\n';
        g->closed = 1;
    }
    return n;
}

typedef struct upload {
    char url[512];
    gen g;
    support_resp r;
    int rc;
    atomic_int done;
    pthread_t th;
} upload;

static void *upload_main(void *arg)
{
    upload *u = arg;
    u->rc = support_post_gen(u->url, k.ingest, gen_darknet, &u->g, 0, &u->r);
    atomic_store(&u->done, 1);
    return NULL;
}

/* Regression: POST .../detections ran its whole ingest job inside the
 * libmicrohttpd thread, so with one thread nothing else was answered until
 * it finished.  Here the job is held in progress (this test holds the
 * store's write lock, so the job waits to open its batch) and the other
 * routes must answer meanwhile. */
static void test_job_off_the_worker(void)
{
    store *st = NULL;
    store_batch *b = NULL;
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(ih_put_surgery(&srv, k.ingest, "big") == 0);
    REQUIRE(store_open(srv.store, NULL, &st, &e) == SL_OK);
    REQUIRE(store_batch_begin(st, &b, &e) == SL_OK); /* the write lock, until aborted */

    upload *u = calloc(1, sizeof *u);
    REQUIRE(u != NULL);
    snprintf(u->url, sizeof u->url, "%s/v1/surgeries/big/detections?format=darknet", srv.url);
    u->g.frames = 6000; /* about 3.5 MB */
    REQUIRE(pthread_create(&u->th, NULL, upload_main, u) == 0);
    CHECK_INT(metric_reaches("sightline_jobs_running", 1), 0); /* the body is in, the job runs */

    support_resp r;
    CHECK(ih_req(&srv, "GET", "/healthz", NULL, NULL, &r) == 0);
    CHECK_INT(r.status, 200);
    support_resp_free(&r);
    CHECK(ih_req(&srv, "GET", "/v1/tenant", k.staff, NULL, &r) == 0);
    CHECK_INT(r.status, 200);
    CHECK(strstr(r.body, "\"role\":\"staff\"") != NULL);
    support_resp_free(&r);
    /* Both answered while the job was still in progress. */
    CHECK_INT(atomic_load(&u->done), 0);
    CHECK_INT(metric("sightline_jobs_running"), 1);

    store_batch_abort(&b); /* the job goes on */
    pthread_join(u->th, NULL);
    CHECK_INT(u->rc, 0);
    CHECK_INT(u->r.status, 200);
    CHECK(strstr(u->r.body, "\"frames\":6000") != NULL);
    CHECK(strstr(u->r.body, "\"detections\":30000") != NULL);
    support_resp_free(&u->r);
    free(u);
    store_close(&st);
    /* The answer goes out once the job resumed its connection, a moment
     * before the job thread counts itself done. */
    CHECK_INT(metric_reaches("sightline_jobs_running", 0), 0);
    CHECK(metric("sightline_jobs_done_total") >= 1);
}

/* Sends a request head declaring a 1 GB body and nothing else; returns the
 * status of the answer (its text into reply), -1 if none came. */
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

/* Marks a surgery closed in the store, as closing it will. */
static int close_surgery(const char *id)
{
    store *st = NULL;
    bson_t *doc = NULL, closed = BSON_INITIALIZER;
    schema_key pk;
    sl_error e;
    bson_iter_t it;
    int rc = -1;
    sl_error_clear(&e);
    if (store_open(srv.store, NULL, &st, &e) != SL_OK || schema_pk_surgery(pk, "t1", id, &e) ||
        store_get(st, STORE_ITEMS, pk, "META", &doc, &e) != SL_OK || !bson_iter_init(&it, doc))
        goto out;
    while (bson_iter_next(&it))
        if (strcmp(bson_iter_key(&it), "status") && strcmp(bson_iter_key(&it), "closed_ms"))
            bson_append_iter(&closed, NULL, 0, &it);
    BSON_APPEND_UTF8(&closed, "status", "closed");
    BSON_APPEND_INT64(&closed, "closed_ms", 1790000000000);
    rc = store_put(st, STORE_ITEMS, &closed, (store_cond){STORE_COND_NONE, 0}, NULL, &e) == SL_OK
             ? 0
             : -1;
out:
    bson_destroy(&closed);
    if (doc)
        bson_destroy(doc);
    store_close(&st);
    return rc;
}

/* Regression: an unknown or closed surgery was found out only when the
 * first body byte arrived, so a client sent its upload to be refused.  The
 * head is enough now: the answer comes although no body byte is sent. */
static void test_refused_before_the_body(void)
{
    char reply[8192];
    CHECK_INT(head_only("/v1/surgeries/nosuch/detections?format=darknet", reply, sizeof reply),
              404);
    CHECK(strstr(reply, "no surgery \\\"nosuch\\\"") != NULL);
    CHECK(strstr(reply, "\"field\":\"id\"") != NULL);
    REQUIRE(ih_put_surgery(&srv, k.ingest, "shut") == 0);
    REQUIRE(close_surgery("shut") == 0);
    CHECK_INT(head_only("/v1/surgeries/shut/detections?format=darknet", reply, sizeof reply), 409);
    CHECK(strstr(reply, "is closed") != NULL);
    CHECK_INT(head_only("/v1/surgeries/big/detections?format=yolo", reply, sizeof reply), 400);
    CHECK(strstr(reply, "\"field\":\"format\"") != NULL);
    /* The server is fine afterwards. */
    support_resp r;
    CHECK(ih_req(&srv, "GET", "/healthz", NULL, NULL, &r) == 0 && r.status == 200);
    support_resp_free(&r);
}

static int post_ndjson(const char *surgery, int frame)
{
    char path[256], body[512];
    support_resp r;
    snprintf(path, sizeof path, "/v1/surgeries/%s/detections?format=ndjson", surgery);
    snprintf(body, sizeof body,
             "{\"frame\": %d, \"detections\": [{\"label\": \"scalpel\", \"confidence\": 0.5, "
             "\"box\": {\"x\": 0.1, \"y\": 0.1, \"w\": 0.2, \"h\": 0.2}}]}\n",
             frame);
    int status = ih_req(&srv, "POST", path, k.ingest, body, &r) == 0 ? (int)r.status : -1;
    support_resp_free(&r);
    return status;
}

/* Regression: every detection request compiled the tenant's catalog; the
 * server keeps one compiled catalog per tenant and catalog version. */
static void test_catalog_compiled_once_per_version(void)
{
    REQUIRE(ih_put_surgery(&srv, k.ingest, "cat") == 0);
    CHECK_INT(post_ndjson("cat", 1), 200);
    long long base = metric("sightline_catalog_compiles_total");
    CHECK(base >= 1);
    for (int i = 2; i < 6; i++)
        CHECK_INT(post_ndjson("cat", i), 200);
    CHECK_INT(metric("sightline_catalog_compiles_total"), base); /* same version: no compile */
    support_resp r;
    CHECK(ih_req(&srv, "PUT", "/v1/catalog/RET-1", k.admin,
                 "{\"name\": \"Retractor\", \"labels\": [\"retractor\"], \"unit_cost_cents\": 900, "
                 "\"single_use\": false}",
                 &r) == 0);
    CHECK_INT(r.status, 201);
    support_resp_free(&r);
    CHECK_INT(post_ndjson("cat", 6), 200);
    CHECK_INT(post_ndjson("cat", 7), 200);
    CHECK_INT(metric("sightline_catalog_compiles_total"), base + 1); /* once for the new version */
}

int main(void)
{
    REQUIRE(support_server_init(&srv, NULL, NULL) == 0);
    /* The server waits for a store lock as long as this test holds one. */
    strncat(srv.store, "?busy_ms=120000", sizeof srv.store - strlen(srv.store) - 1);
    REQUIRE(support_server_start(&srv, "--access-log", "off", "--threads", "1", "--no-listener",
                                 (char *)NULL) == 0);
    REQUIRE(ih_tenant(&srv, "t1", &k) == 0);
    REQUIRE(ih_put_catalog(&srv, k.admin) == 0);

    test_job_off_the_worker();
    test_refused_before_the_body();
    test_catalog_compiled_once_per_version();

    CHECK_INT(support_server_stop(&srv), 0);
    support_server_cleanup(&srv);
    return check_finish();
}
