/* api_ingest_resources_test.c -- surgeries, catalog and assets through HTTP:
 * 201/200 with the stored document, versions, validation, pages, batches all
 * or nothing, roles (viewer posting detections: 403) and tenants (404). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "../check.h"
#include "ingest_http.h"

static support_server srv;
static ih_keys a, b;   /* hospital tenants "ta" and "tb" */
static ih_keys ba, bb; /* brand clients "ba" and "bb" (assets) */

/* Member at path (NULL-terminated) of a JSON body as text; "" when absent. */
static const char *get(const char *body, const char *k1, const char *k2, char out[2048])
{
    char err[128];
    yajl_val root = yajl_tree_parse(body, err, sizeof err);
    const char *p[] = {k1, k2, NULL};
    yajl_val v = root ? yajl_tree_get(root, p, yajl_t_any) : NULL;
    out[0] = '\0';
    if (v && YAJL_IS_STRING(v))
        snprintf(out, 2048, "%s", v->u.string);
    else if (v && YAJL_IS_NUMBER(v))
        snprintf(out, 2048, "%s", YAJL_GET_NUMBER(v));
    else if (v && YAJL_IS_TRUE(v))
        snprintf(out, 2048, "true");
    else if (v && YAJL_IS_FALSE(v))
        snprintf(out, 2048, "false");
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

static void test_surgeries(void)
{
    char *body = NULL, v[2048];
    size_t len = 0;
    char *fixture = support_read_file(SL_FIXTURES "/surgery/surgery.json", &len);
    REQUIRE(fixture);
    CHECK_INT(call("PUT", "/v1/surgeries/s1", a.ingest, fixture, &body), 201);
    CHECK_STR(get(body, "hospital", NULL, v), "st-mary");
    CHECK_STR(get(body, "started_at", NULL, v), "2026-11-26T08:15:00.000Z");
    CHECK_STR(get(body, "fps", NULL, v), "30");
    CHECK_STR(get(body, "status", NULL, v), "open");
    CHECK_STR(get(body, "version", NULL, v), "1");
    CHECK_STR(get(body, "pk", NULL, v), ""); /* keys stay inside */
    free(body);
    /* The same description again: nothing changes. */
    CHECK_INT(call("PUT", "/v1/surgeries/s1", a.admin, fixture, &body), 200);
    CHECK_STR(get(body, "version", NULL, v), "1");
    free(body);
    /* Another room: a new version. */
    char *moved = strdup(fixture), *room = strstr(moved, "OR 3");
    REQUIRE(room);
    room[3] = '4';
    CHECK_INT(call("PUT", "/v1/surgeries/s1", a.ingest, moved, &body), 200);
    CHECK_STR(get(body, "room", NULL, v), "OR 4");
    CHECK_STR(get(body, "version", NULL, v), "2");
    free(body);
    CHECK_INT(call("GET", "/v1/surgeries/s1", a.staff, NULL, &body), 200);
    CHECK_STR(get(body, "room", NULL, v), "OR 4");
    CHECK_STR(get(body, "surgery", NULL, v), "s1");
    free(body);
    CHECK_INT(call("GET", "/v1/surgeries/s1", a.ingest, NULL, NULL), 200);
    CHECK_INT(call("GET", "/v1/surgeries/s1", a.viewer, NULL, NULL), 403);
    CHECK_INT(call("PUT", "/v1/surgeries/s1", a.staff, fixture, NULL), 403);
    CHECK_INT(call("GET", "/v1/surgeries/s2", a.staff, NULL, NULL), 404);

    /* Validation names the field. */
    support_resp r;
    CHECK(ih_req(&srv, "PUT", "/v1/surgeries/s2", a.ingest,
                 "{\"hospital\": \"h\", \"room\": \"r\", \"procedure\": \"p\", \"surgeon\": \"s\", "
                 "\"started_at\": \"2026-11-26T08:15:00Z\", \"fps\": \"fast\", \"frame_width\": "
                 "640, \"frame_height\": 480, \"table\": [[0,0],[1,0],[1,1]]}",
                 &r) == 0);
    CHECK(support_is_problem(&r, 400, "invalid-input") == 0);
    CHECK_STR(get(r.body, "field", NULL, v), "fps");
    support_resp_free(&r);
    CHECK(ih_req(&srv, "PUT", "/v1/surgeries/s2", a.ingest,
                 "{\"hospital\": \"h#x\", \"room\": \"r\", \"procedure\": \"p\", \"surgeon\": "
                 "\"s\", \"started_at\": \"2026-11-26T08:15:00Z\", \"fps\": 30, \"frame_width\": "
                 "640, \"frame_height\": 480, \"table\": [[0,0],[1,0],[1,1]]}",
                 &r) == 0);
    CHECK(support_is_problem(&r, 400, "invalid-input") == 0);
    CHECK_STR(get(r.body, "field", NULL, v), "hospital");
    support_resp_free(&r);
    CHECK(ih_req(&srv, "PUT", "/v1/surgeries/s2", a.ingest, "{\"hospital\": \"h\"", &r) == 0);
    CHECK(support_is_problem(&r, 400, "invalid-input") == 0);
    support_resp_free(&r);
    CHECK(ih_req(&srv, "PUT", "/v1/surgeries/bad%23id", a.ingest, fixture, &r) == 0);
    CHECK(support_is_problem(&r, 400, "invalid-path-parameter") == 0);
    support_resp_free(&r);
    CHECK_INT(call("GET", "/v1/surgeries/s2", a.staff, NULL, NULL), 404);

    /* Another tenant: its own s1 is a different surgery; ta's is invisible. */
    CHECK_INT(call("GET", "/v1/surgeries/s1", b.admin, NULL, NULL), 404);
    CHECK_INT(call("GET", "/v1/surgeries/s1/frames", b.admin, NULL, NULL), 404);
    CHECK_INT(call("POST", "/v1/surgeries/s1/detections?format=ndjson", b.admin,
                   "{\"frame\": 1, \"detections\": []}\n", NULL),
              404);
    free(moved);
    free(fixture);
}

static void test_roles_on_detections(void)
{
    const char *line = "{\"frame\": 7, \"detections\": [{\"label\": \"Scalpel-10\", "
                       "\"confidence\": 0.5, \"box\": {\"x\": 0.1, \"y\": 0.1, \"w\": 0.2, \"h\": "
                       "0.2}}, {\"label\": \"retractor\", \"confidence\": 0.25, \"box\": {\"x\": "
                       "0.5, \"y\": 0.5, \"w\": 0.1, \"h\": 0.1}}]}\n";
    support_resp r;
    CHECK(ih_req(&srv, "POST", "/v1/surgeries/s1/detections?format=ndjson", a.viewer, line, &r) ==
          0);
    CHECK(support_is_problem(&r, 403, "role-forbidden") == 0);
    support_resp_free(&r);
    CHECK_INT(call("POST", "/v1/surgeries/s1/detections?format=ndjson", a.staff, line, NULL), 403);
    CHECK_INT(call("GET", "/v1/surgeries/s1/frames", a.ingest, NULL, NULL), 403);
    CHECK_INT(call("GET", "/v1/surgeries/s1/frames", a.viewer, NULL, NULL), 403);
    char *body = NULL, v[2048];
    CHECK_INT(call("POST", "/v1/surgeries/s1/detections?format=ndjson", a.ingest, line, &body),
              200);
    CHECK_STR(get(body, "frames", NULL, v), "1");
    CHECK_STR(get(body, "detections", NULL, v), "2");
    CHECK_STR(get(body, "unmapped", "detections", v), "1");
    CHECK_STR(get(body, "unmapped", "labels", v), "1");
    CHECK(strstr(body, "\"names\":[\"retractor\"]") != NULL);
    CHECK_STR(get(body, "changed", NULL, v), "1");
    free(body);
    /* The catalog maps "Scalpel-10" by its (?i) pattern; retractor is unmapped. */
    ih_frames fr;
    CHECK(ih_get_frames(&srv, a.staff, "s1", 10, NULL, &fr) == 0);
    CHECK(fr.n == 1 && fr.f[0].frame == 7 && fr.f[0].n == 2);
    if (fr.n == 1 && fr.f[0].n == 2) {
        CHECK(fr.f[0].d[0].has_sku);
        CHECK_STR(fr.f[0].d[0].sku, "SC-10");
        CHECK(!fr.f[0].d[1].has_sku);
        CHECK_STR(fr.f[0].d[1].label, "retractor");
    }
    ih_frames_free(&fr);
    CHECK_INT(call("GET", "/v1/surgeries/s1/frames", a.admin, NULL, NULL), 200);
}

static void test_catalog(void)
{
    char *body = NULL, v[2048], path[2200];
    /* Entries were put by ih_put_catalog (201); the same body again is 200. */
    size_t len = 0;
    char *scalpel = support_read_file(SL_FIXTURES "/catalog/scalpel.json", &len);
    REQUIRE(scalpel);
    CHECK_INT(call("PUT", "/v1/catalog/SC-10", a.admin, scalpel, &body), 200);
    CHECK_STR(get(body, "version", NULL, v), "1");
    CHECK_STR(get(body, "unit_cost_cents", NULL, v), "245");
    CHECK_STR(get(body, "single_use", NULL, v), "true");
    free(body);
    CHECK_INT(call("PUT", "/v1/catalog/SC-11", a.staff, scalpel, NULL), 403);
    CHECK_INT(call("PUT", "/v1/catalog/SC-11", a.ingest, scalpel, NULL), 403);
    CHECK_INT(call("GET", "/v1/catalog/SC-10", a.staff, NULL, &body), 200);
    CHECK_STR(get(body, "name", NULL, v), "Scalpel #10, single use");
    free(body);
    CHECK_INT(call("GET", "/v1/catalog/SC-11", a.staff, NULL, NULL), 404);
    CHECK_INT(call("GET", "/v1/catalog/SC-10", b.admin, NULL, NULL), 404);
    free(scalpel);

    support_resp r;
    CHECK(ih_req(&srv, "PUT", "/v1/catalog/BAD-1", a.admin,
                 "{\"name\": \"bad\", \"labels\": [\"ok\", \"(unclosed\"], \"unit_cost_cents\": "
                 "1, \"single_use\": true}",
                 &r) == 0);
    CHECK(support_is_problem(&r, 400, "invalid-input") == 0);
    CHECK_STR(get(r.body, "field", NULL, v), "labels[1]");
    CHECK(strstr(r.body, "does not compile") != NULL);
    support_resp_free(&r);
    CHECK(ih_req(&srv, "PUT", "/v1/catalog/BAD-1", a.admin,
                 "{\"name\": \"bad\", \"labels\": [\"x\"], \"unit_cost_cents\": -5, "
                 "\"single_use\": true}",
                 &r) == 0);
    CHECK(support_is_problem(&r, 400, "invalid-input") == 0);
    CHECK_STR(get(r.body, "field", NULL, v), "unit_cost_cents");
    support_resp_free(&r);

    /* Pages of 2 in SKU order, then the rest; a viewer may not list. */
    CHECK_INT(call("GET", "/v1/catalog?limit=2", a.staff, NULL, &body), 200);
    char next[2048];
    get(body, "next", NULL, next);
    CHECK(strstr(body, "\"FORCEPS-1\"") && strstr(body, "\"SC-10\"") && !strstr(body, "SPONGE"));
    CHECK(next[0] && strcmp(next, "null") != 0);
    free(body);
    snprintf(path, sizeof path, "/v1/catalog?limit=2&cursor=%s", next);
    CHECK_INT(call("GET", path, a.admin, NULL, &body), 200);
    CHECK(strstr(body, "\"SPONGE-18\"") && !strstr(body, "SC-10"));
    CHECK_STR(get(body, "next", NULL, v), "null");
    free(body);
    CHECK_INT(call("GET", "/v1/catalog", a.viewer, NULL, NULL), 403);
    CHECK_INT(call("GET", "/v1/catalog", b.admin, NULL, &body), 200);
    CHECK(strstr(body, "\"entries\":[]") != NULL);
    free(body);
}

#define ASSET                                                                                      \
    "{\"client\": \"acme\", \"brand\": \"%s\", \"campaign\": \"summer\", \"sector\": "             \
    "\"drinks\", \"media_type\": \"image\", \"memorability\": %s, \"saliency\": {\"logo\": 0.61, " \
    "\"product\": 0.82}}"

static void test_assets(void)
{
    char body_in[1024], *body = NULL, v[2048];
    snprintf(body_in, sizeof body_in, ASSET, "sparkle", "0.734");
    CHECK_INT(call("PUT", "/v1/assets/a-1", ba.ingest, body_in, &body), 201);
    CHECK_STR(get(body, "asset", NULL, v), "a-1");
    CHECK_STR(get(body, "memorability", NULL, v), "0.734");
    CHECK_STR(get(body, "saliency", "product", v), "0.82");
    CHECK_STR(get(body, "version", NULL, v), "1");
    CHECK_STR(get(body, "memorability_micro", NULL, v), "");
    free(body);
    /* Identical content: no version bump. */
    CHECK_INT(call("PUT", "/v1/assets/a-1", ba.ingest, body_in, &body), 200);
    CHECK_STR(get(body, "version", NULL, v), "1");
    free(body);
    /* Moved to another brand: an ordinary PUT, a new version. */
    snprintf(body_in, sizeof body_in, ASSET, "glow", "0.734");
    CHECK_INT(call("PUT", "/v1/assets/a-1", ba.admin, body_in, &body), 200);
    CHECK_STR(get(body, "brand", NULL, v), "glow");
    CHECK_STR(get(body, "version", NULL, v), "2");
    free(body);
    CHECK_INT(call("GET", "/v1/assets/a-1", ba.viewer, NULL, &body), 200);
    CHECK_STR(get(body, "brand", NULL, v), "glow");
    /* Optional names not given are left out, so what GET answers can be PUT
     * back as it is: the same document, no new version (found by fuzz_bodies:
     * GET showed "brand_id": "", which PUT refuses). */
    CHECK(strstr(body, "brand_id") == NULL && strstr(body, "model_version") == NULL);
    char *again = NULL;
    CHECK_INT(call("PUT", "/v1/assets/a-1", ba.admin, body, &again), 200);
    CHECK_STR(get(again, "version", NULL, v), "2");
    free(again);
    free(body);
    CHECK_INT(call("GET", "/v1/assets/a-1", ba.staff, NULL, NULL), 403);
    CHECK_INT(call("GET", "/v1/assets/a-1", bb.admin, NULL, NULL), 404);
    CHECK_INT(call("DELETE", "/v1/assets/a-1", ba.viewer, NULL, NULL), 403);
    CHECK_INT(call("DELETE", "/v1/assets/a-1", bb.admin, NULL, NULL), 404);
    CHECK_INT(call("DELETE", "/v1/assets/a-1", ba.ingest, NULL, NULL), 204);
    CHECK_INT(call("DELETE", "/v1/assets/a-1", ba.ingest, NULL, NULL), 404);
    CHECK_INT(call("GET", "/v1/assets/a-1", ba.viewer, NULL, NULL), 404);

    /* Validation errors name the field. */
    static const struct {
        const char *brand, *mem, *field;
    } bad[] = {{"sparkle", "1.5", "memorability"},
               {"sparkle", "\"high\"", "memorability"},
               {"spa#rkle", "0.5", "brand"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        support_resp r;
        snprintf(body_in, sizeof body_in, ASSET, bad[i].brand, bad[i].mem);
        CHECK(ih_req(&srv, "PUT", "/v1/assets/a-2", ba.ingest, body_in, &r) == 0);
        CHECK(support_is_problem(&r, 400, "invalid-input") == 0);
        CHECK_STR(get(r.body, "field", NULL, v), bad[i].field);
        support_resp_free(&r);
    }
    support_resp r;
    CHECK(ih_req(&srv, "PUT", "/v1/assets/a-2", ba.ingest,
                 "{\"asset\": \"a-3\", \"client\": \"c\", \"brand\": \"b\", \"campaign\": \"c\", "
                 "\"sector\": \"s\", \"media_type\": \"gif\", \"memorability\": 0.5, "
                 "\"saliency\": {}}",
                 &r) == 0);
    CHECK(support_is_problem(&r, 400, "invalid-input") == 0);
    support_resp_free(&r);
    CHECK_INT(call("GET", "/v1/assets/a-2", ba.viewer, NULL, NULL), 404);
}

static void test_asset_batches(void)
{
    char url[512], *body = NULL, v[2048];
    support_resp r;
    snprintf(url, sizeof url, "%s/v1/assets:batch", srv.url);
    CHECK(support_post_file(url, ba.ingest, SL_FIXTURES "/assets/assets.ndjson", 1, &r) == 0);
    CHECK_INT(r.status, 200);
    CHECK_STR(get(r.body, "assets", NULL, v), "3");
    CHECK_STR(get(r.body, "changed", NULL, v), "3");
    support_resp_free(&r);
    CHECK(support_post_file(url, ba.admin, SL_FIXTURES "/assets/assets.ndjson", 0, &r) == 0);
    CHECK_INT(r.status, 200);
    CHECK_STR(get(r.body, "changed", NULL, v), "0");
    support_resp_free(&r);
    CHECK_INT(call("GET", "/v1/assets/a-002", ba.viewer, NULL, &body), 200);
    CHECK_STR(get(body, "media_type", NULL, v), "video");
    CHECK(strstr(body, "\"progression\":[0.2,0.35,0.5,0.48]") != NULL);
    CHECK_STR(get(body, "version", NULL, v), "1");
    free(body);
    CHECK_INT(call("POST", "/v1/assets:batch", ba.viewer, "{}\n", NULL), 403);

    /* All or nothing: a batch whose last line is bad stores none of it. */
    char batch[2048];
    snprintf(batch, sizeof batch,
             "{\"asset\": \"b-1\", \"client\": \"c\", \"brand\": \"b\", \"campaign\": \"c\", "
             "\"sector\": \"s\", \"media_type\": \"image\", \"memorability\": 0.5, \"saliency\": "
             "{}}\n"
             "{\"asset\": \"b-2\", \"client\": \"c\", \"brand\": \"b\", \"campaign\": \"c\", "
             "\"sector\": \"s\", \"media_type\": \"image\", \"memorability\": 1.01, "
             "\"saliency\": {}}\n");
    CHECK(ih_req(&srv, "POST", "/v1/assets:batch", ba.ingest, batch, &r) == 0);
    CHECK(support_is_problem(&r, 400, "invalid-input") == 0);
    CHECK(strstr(get(r.body, "field", NULL, v), "line 2") != NULL);
    CHECK(strlen(get(r.body, "offset", NULL, v)) > 0);
    support_resp_free(&r);
    CHECK_INT(call("GET", "/v1/assets/b-1", ba.viewer, NULL, NULL), 404);
    /* The same asset twice in one batch is ambiguous. */
    snprintf(batch, sizeof batch,
             "{\"asset\": \"b-1\", \"client\": \"c\", \"brand\": \"b\", \"campaign\": \"c\", "
             "\"sector\": \"s\", \"media_type\": \"image\", \"memorability\": 0.5, \"saliency\": "
             "{}}\n"
             "{\"asset\": \"b-1\", \"client\": \"c\", \"brand\": \"x\", \"campaign\": \"c\", "
             "\"sector\": \"s\", \"media_type\": \"image\", \"memorability\": 0.5, \"saliency\": "
             "{}}\n");
    CHECK(ih_req(&srv, "POST", "/v1/assets:batch", ba.ingest, batch, &r) == 0);
    CHECK(support_is_problem(&r, 400, "invalid-input") == 0);
    CHECK(strstr(r.body, "twice") != NULL);
    support_resp_free(&r);
    CHECK_INT(call("GET", "/v1/assets/b-1", ba.viewer, NULL, NULL), 404);
    CHECK(ih_req(&srv, "POST", "/v1/assets:batch", ba.ingest, NULL, &r) == 0);
    CHECK(support_is_problem(&r, 400, "invalid-input") == 0);
    support_resp_free(&r);
}

int main(void)
{
    REQUIRE(support_server_init(&srv, NULL, NULL) == 0);
    REQUIRE(support_server_start(&srv, "--access-log", "off", (char *)NULL) == 0);
    REQUIRE(ih_tenant(&srv, "ta", &a) == 0);
    REQUIRE(ih_tenant(&srv, "tb", &b) == 0);
    REQUIRE(ih_tenant_of_kind(&srv, "ba", "brand-client", &ba) == 0);
    REQUIRE(ih_tenant_of_kind(&srv, "bb", "brand-client", &bb) == 0);
    REQUIRE(ih_put_catalog(&srv, a.admin) == 0);
    test_surgeries();
    test_roles_on_detections();
    test_catalog();
    test_assets();
    test_asset_batches();
    CHECK_INT(support_server_stop(&srv), 0);
    support_server_cleanup(&srv);
    return check_finish();
}
