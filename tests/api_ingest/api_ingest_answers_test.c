/* api_ingest_answers_test.c -- through `sightline serve`: a surgery PUT answers
 * its own write while another races it; listings of 128-byte keys page through;
 * the upload directory comes from the server's settings, not the environment. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yajl/yajl_tree.h>

#include "../check.h"
#include "ingest_http.h"

#define RACE_PUTS 500 /* per writer */

static support_server srv;
static ih_keys k;
static char fixture[4096];

/* Member `key` of a JSON object body as text (strings and numbers); "" when absent. */
static void member(const char *body, const char *key, char *out, size_t cap)
{
    char err[128];
    const char *path[] = {key, NULL};
    yajl_val root = yajl_tree_parse(body, err, sizeof err);
    yajl_val v = root ? yajl_tree_get(root, path, yajl_t_any) : NULL;
    out[0] = '\0';
    if (v && YAJL_IS_STRING(v))
        snprintf(out, cap, "%s", v->u.string);
    else if (v && YAJL_IS_NUMBER(v))
        snprintf(out, cap, "%s", YAJL_GET_NUMBER(v));
    if (root)
        yajl_tree_free(root);
}

typedef struct writer {
    char room[16];
    pthread_t th;
    int ok;         /* answers with status 200/201 */
    int mismatched; /* answers showing another writer's room */
    long version[RACE_PUTS];
    char shown[RACE_PUTS][16];
} writer;

static void *writer_main(void *arg)
{
    writer *w = arg;
    char body[4096], *at;
    snprintf(body, sizeof body, "%s", fixture);
    at = strstr(body, "\"OR 3\"");
    REQUIRE(at != NULL);
    memcpy(at + 1, w->room, 4); /* "OR 3" -> the writer's own room, same length */
    for (int i = 0; i < RACE_PUTS; i++) {
        support_resp r;
        char v[32];
        w->version[i] = -1;
        if (ih_req(&srv, "PUT", "/v1/surgeries/race", k.ingest, body, &r) == 0 &&
            (r.status == 200 || r.status == 201)) {
            w->ok++;
            member(r.body, "room", w->shown[i], sizeof w->shown[i]);
            member(r.body, "version", v, sizeof v);
            w->version[i] = atol(v);
            w->mismatched += strcmp(w->shown[i], w->room) != 0;
        }
        support_resp_free(&r);
    }
    return NULL;
}

/* Regression: the surgery PUT answered with a store_get made after its
 * write, so a PUT racing in between showed up in the answer as if it were
 * this one.  Two writers alternate rooms on one surgery: every answer must
 * show its own room, and one version never stands for two contents. */
static void test_put_answers_its_own_write(void)
{
    writer a = {.room = "OR-A"}, b = {.room = "OR-B"};
    REQUIRE(ih_put_surgery(&srv, k.ingest, "race") == 0);
    REQUIRE(pthread_create(&a.th, NULL, writer_main, &a) == 0);
    REQUIRE(pthread_create(&b.th, NULL, writer_main, &b) == 0);
    pthread_join(a.th, NULL);
    pthread_join(b.th, NULL);
    CHECK_INT(a.ok, RACE_PUTS);
    CHECK_INT(b.ok, RACE_PUTS);
    CHECK_INT(a.mismatched, 0);
    CHECK_INT(b.mismatched, 0);
    int clashes = 0;
    for (int i = 0; i < RACE_PUTS; i++)
        for (int j = 0; j < RACE_PUTS; j++)
            clashes += a.version[i] >= 0 && a.version[i] == b.version[j] &&
                       strcmp(a.shown[i], b.shown[j]) != 0;
    CHECK_INT(clashes, 0);
}

/* A 128-byte identifier: prefix, then 'x' up to the limit, then a number. */
static void long_id(char out[SCHEMA_COMPONENT_MAX + 1], const char *prefix, int n)
{
    char tail[16]; /* "-" and any int */
    snprintf(tail, sizeof tail, "-%03d", n);
    size_t p = strlen(prefix), t = strlen(tail);
    memcpy(out, prefix, p);
    memset(out + p, 'x', SCHEMA_COMPONENT_MAX - p - t);
    memcpy(out + SCHEMA_COMPONENT_MAX - t, tail, t + 1);
}

/* The catalog listing of a tenant whose SKUs are at the 128-byte limit,
 * two to a page: every entry once, in SKU order, with cursors that are
 * URL-safe as they come. */
static void test_long_keys_page_through(void)
{
    ih_keys t2;
    char sku[SCHEMA_COMPONENT_MAX + 1], path[4400], cursor[4200] = "";
    support_resp r;
    REQUIRE(ih_tenant(&srv, "t2", &t2) == 0);
    for (int i = 0; i < 7; i++) {
        long_id(sku, "SKU", i);
        snprintf(path, sizeof path, "/v1/catalog/%s", sku);
        CHECK(ih_req(&srv, "PUT", path, t2.admin,
                     "{\"name\": \"tool\", \"labels\": [\"tool\"], \"unit_cost_cents\": 1, "
                     "\"single_use\": true}",
                     &r) == 0);
        CHECK_INT(r.status, 201);
        support_resp_free(&r);
    }
    int seen = 0, pages = 0;
    for (;;) {
        char err[128];
        snprintf(path, sizeof path, "/v1/catalog?limit=2%s%s", cursor[0] ? "&cursor=" : "", cursor);
        REQUIRE(ih_req(&srv, "GET", path, t2.staff, NULL, &r) == 0);
        CHECK_INT(r.status, 200);
        pages++;
        yajl_val root = yajl_tree_parse(r.body, err, sizeof err);
        const char *pe[] = {"entries", NULL}, *pn[] = {"next", NULL}, *ps[] = {"sku", NULL};
        yajl_val entries = root ? yajl_tree_get(root, pe, yajl_t_array) : NULL;
        yajl_val next = root ? yajl_tree_get(root, pn, yajl_t_any) : NULL;
        REQUIRE(entries != NULL && next != NULL);
        CHECK(entries->u.array.len <= 2);
        for (size_t i = 0; i < entries->u.array.len; i++) {
            yajl_val s = yajl_tree_get(entries->u.array.values[i], ps, yajl_t_string);
            long_id(sku, "SKU", seen);
            CHECK_STR(s ? YAJL_GET_STRING(s) : NULL, sku);
            seen++;
        }
        int more = YAJL_IS_STRING(next);
        if (more) {
            snprintf(cursor, sizeof cursor, "%s", next->u.string);
            CHECK(strspn(cursor,
                         "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
                  strlen(cursor));
        }
        yajl_tree_free(root);
        support_resp_free(&r);
        if (!more || pages > 10)
            break;
    }
    CHECK_INT(seen, 7);
    CHECK_INT(pages, 4);

    /* Frames of a surgery whose id is at the limit page the same way. */
    char id[SCHEMA_COMPONENT_MAX + 1], body[2048] = "";
    long_id(id, "S", 1);
    REQUIRE(ih_put_surgery(&srv, t2.ingest, id) == 0);
    for (int f = 0; f < 5; f++)
        snprintf(body + strlen(body), sizeof body - strlen(body),
                 "{\"frame\": %d, \"detections\": []}\n", f);
    snprintf(path, sizeof path, "/v1/surgeries/%s/detections?format=ndjson", id);
    CHECK(ih_req(&srv, "POST", path, t2.ingest, body, &r) == 0);
    CHECK_INT(r.status, 200);
    support_resp_free(&r);
    ih_frames fr;
    CHECK(ih_get_frames(&srv, t2.staff, id, 2, NULL, &fr) == 0);
    CHECK_INT(fr.n, 5);
    CHECK_INT(fr.pages, 3);
    ih_frames_free(&fr);

    /* A cursor that is not one: 400 naming it. */
    CHECK(ih_req(&srv, "GET", "/v1/catalog?cursor=AAAA", t2.staff, NULL, &r) == 0);
    CHECK(support_is_problem(&r, 400, "invalid-input") == 0);
    CHECK(strstr(r.body, "\"field\":\"cursor\"") != NULL);
    support_resp_free(&r);
}

/* Regression: serve passed the upload directory to the routes through
 * $SIGHTLINE_UPLOAD_DIR, so that variable, inherited from anywhere,
 * redirected uploads.  It is a server setting now (--upload-dir, default
 * the store's directory): a stray variable naming a missing directory
 * changes nothing. */
static void test_upload_dir_not_from_environment(const char *stray)
{
    char path[256];
    support_resp r;
    struct stat sb;
    REQUIRE(ih_put_surgery(&srv, k.ingest, "env") == 0);
    snprintf(path, sizeof path, "/v1/surgeries/env/detections?format=ndjson");
    CHECK(ih_req(&srv, "POST", path, k.ingest, "{\"frame\": 1, \"detections\": []}\n", &r) == 0);
    CHECK_INT(r.status, 200);
    support_resp_free(&r);
    CHECK(stat(stray, &sb) != 0);
}

int main(void)
{
    char stray[256];
    size_t len = 0;
    char *fx = support_read_file(SL_FIXTURES "/surgery/surgery.json", &len);
    REQUIRE(fx != NULL && len < sizeof fixture);
    memcpy(fixture, fx, len + 1);
    free(fx);
    REQUIRE(support_server_init(&srv, NULL, NULL) == 0);
    snprintf(stray, sizeof stray, "%s/no-such-dir", srv.dir);
    setenv("SIGHTLINE_UPLOAD_DIR", stray, 1); /* inherited by the server */
    REQUIRE(support_server_start(&srv, "--access-log", "off", "--no-listener", (char *)NULL) == 0);
    unsetenv("SIGHTLINE_UPLOAD_DIR");
    REQUIRE(ih_tenant(&srv, "t1", &k) == 0);

    test_put_answers_its_own_write();
    test_long_keys_page_through();
    test_upload_dir_not_from_environment(stray);

    CHECK_INT(support_server_stop(&srv), 0);
    support_server_cleanup(&srv);
    return check_finish();
}
