/* api_unit_test.c -- the pieces of api/ that need no server: the limits
 * table, route compilation and matching, path and query decoding, JSON out
 * with hostile bytes, problem bodies, key shape and hash, cursors, metrics. */
#include "api/api_int.h"
#include "tests/check.h"

#include <stdlib.h>
#include <string.h>

static sl_status dummy(api_request *req, sl_error *err)
{
    return SL_OK;
}

static sl_status dummy_chunk(api_request *req, const char *d, size_t n, sl_error *err)
{
    return SL_OK;
}

static void test_config(void)
{
    api_config c;
    sl_error e;
    api_config_defaults(&c);
    CHECK_INT(c.max_connections, 16384);
    CHECK_STR(c.listen, "127.0.0.1:8080");
    sl_error_clear(&e);
    CHECK_INT(api_config_set(&c, "max-json-body", "64k", &e), SL_OK);
    CHECK_INT(c.max_json_body, 65536);
    CHECK_INT(api_config_set(&c, "max-upload-body", "2G", &e), SL_OK);
    CHECK_INT(c.max_upload_body, INT64_C(2) << 30);
    CHECK_INT(api_config_set(&c, "threads", "300", &e), SL_EINVAL); /* max 256 */
    CHECK(strstr(e.message, "0..256") != NULL);
    CHECK_INT(c.threads, 0); /* unchanged on failure */
    sl_error_clear(&e);
    CHECK_INT(api_config_set(&c, "threads", "4k", &e), SL_EINVAL); /* no suffix for counts */
    sl_error_clear(&e);
    CHECK_INT(api_config_set(&c, "max-header-bytes", "-5", &e), SL_EINVAL);
    sl_error_clear(&e);
    CHECK_INT(api_config_set(&c, "max-header-bytes", "99999999999999999999999", &e), SL_EINVAL);
    sl_error_clear(&e);
    CHECK_INT(api_config_set(&c, "no-such-limit", "1", &e), SL_EINVAL);
    CHECK(strstr(e.message, "no-such-limit") != NULL);
    CHECK(api_config_has("key-cache-ms"));
    CHECK(!api_config_has("listen")); /* text options are not in the table */
}

static const api_route table_ok[] = {
    {"GET", "/v1/keys/{key_id}", API_ROLE_ADMIN, API_BODY_NONE, 0, NULL, dummy},
    {"GET", "/v1/keys/mine", API_ANY_ROLE, API_BODY_NONE, 0, NULL, dummy},
    {"DELETE", "/v1/keys/{key_id}", API_ROLE_ADMIN, API_BODY_NONE, 0, NULL, dummy},
    {"POST", "/v1/surgeries/{id}/detections", API_ROLE_INGEST, API_BODY_STREAMED, 0, dummy_chunk,
     dummy},
    {"GET", "/healthz", API_PUBLIC, API_BODY_NONE, 0, NULL, dummy},
};
static const api_area area_ok = {"ok", table_ok, sizeof table_ok / sizeof table_ok[0]};

static sl_status build_one(const api_route *r, api__router *rt, sl_error *e)
{
    api_area a = {"bad", r, 1};
    const api_area *areas[] = {&a, NULL};
    sl_error_clear(e);
    return api__router_build(rt, areas, e);
}

static void test_router_build(void)
{
    api__router rt;
    sl_error e;
    const api_route no_roles = {"GET", "/x", 0, API_BODY_NONE, 0, NULL, dummy};
    const api_route no_handler = {"GET", "/x", API_PUBLIC, API_BODY_NONE, 0, NULL, NULL};
    const api_route stream_no_chunk = {"POST", "/x", API_PUBLIC, API_BODY_STREAMED, 0, NULL, dummy};
    const api_route bad_param = {"GET", "/x/{}", API_PUBLIC, API_BODY_NONE, 0, NULL, dummy};
    const api_route empty_seg = {"GET", "/x//y", API_PUBLIC, API_BODY_NONE, 0, NULL, dummy};
    const api_route head = {"HEAD", "/x", API_PUBLIC, API_BODY_NONE, 0, NULL, dummy};
    CHECK_INT(build_one(&no_roles, &rt, &e), SL_EINTERNAL);
    CHECK(strstr(e.message, "GET /x") != NULL);
    CHECK_INT(build_one(&no_handler, &rt, &e), SL_EINTERNAL);
    CHECK_INT(build_one(&stream_no_chunk, &rt, &e), SL_EINTERNAL);
    CHECK_INT(build_one(&bad_param, &rt, &e), SL_EINTERNAL);
    CHECK_INT(build_one(&empty_seg, &rt, &e), SL_EINTERNAL);
    CHECK_INT(build_one(&head, &rt, &e), SL_EINTERNAL);

    /* The same shape twice (parameter names aside) is a clash. */
    const api_route twice[] = {
        {"GET", "/a/{x}", API_PUBLIC, API_BODY_NONE, 0, NULL, dummy},
        {"GET", "/a/{y}", API_PUBLIC, API_BODY_NONE, 0, NULL, dummy},
    };
    api_area a2 = {"twice", twice, 2};
    const api_area *areas2[] = {&a2, NULL};
    sl_error_clear(&e);
    CHECK_INT(api__router_build(&rt, areas2, &e), SL_EINTERNAL);
    CHECK(strstr(e.message, "clashes") != NULL);
}

static api__match_result match(const api__router *rt, const char *method, const char *raw,
                               api__match *m)
{
    api__path p;
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(api__path_parse(raw, strlen(raw), &p, &e) == SL_OK);
    api__match_result r = api__router_match(rt, method, &p, m);
    /* Values point into the path: copy what the checks need before freeing. */
    static char v0[256];
    if (r == API__MATCH_FOUND && m->nparams) {
        snprintf(v0, sizeof v0, "%s", m->values[0]);
        m->values[0] = v0;
    }
    free(p.buf);
    return r;
}

static void test_router_match(void)
{
    api__router rt;
    api__match m;
    sl_error e;
    const api_area *areas[] = {&area_ok, NULL};
    sl_error_clear(&e);
    REQUIRE(api__router_build(&rt, areas, &e) == SL_OK);
    CHECK_INT(rt.n, 5);

    CHECK_INT(match(&rt, "GET", "/v1/keys/abc", &m), API__MATCH_FOUND);
    CHECK_STR(m.route->route->pattern, "/v1/keys/{key_id}");
    CHECK_INT(m.nparams, 1);
    CHECK_STR(m.names[0], "key_id");
    CHECK_STR(m.values[0], "abc");
    /* A literal beats a parameter, whatever the table order. */
    CHECK_INT(match(&rt, "GET", "/v1/keys/mine", &m), API__MATCH_FOUND);
    CHECK_STR(m.route->route->pattern, "/v1/keys/mine");
    /* HEAD is served by GET. */
    CHECK_INT(match(&rt, "HEAD", "/healthz", &m), API__MATCH_FOUND);
    /* The path exists, the method does not: 405 with the allowed list. */
    CHECK_INT(match(&rt, "PUT", "/v1/keys/abc", &m), API__MATCH_NO_METHOD);
    CHECK_STR(m.allow, "GET, HEAD, DELETE");
    CHECK_INT(match(&rt, "GET", "/v1/keys", &m), API__MATCH_NO_PATH);
    CHECK_INT(match(&rt, "GET", "/v1/keys/abc/more", &m), API__MATCH_NO_PATH);
    /* An empty segment is never a parameter; a trailing slash is another path. */
    CHECK_INT(match(&rt, "GET", "/v1/keys/", &m), API__MATCH_NO_PATH);
    CHECK_INT(match(&rt, "GET", "/healthz/", &m), API__MATCH_NO_PATH);
    /* An escaped '/' stays inside its segment (and is later refused as a key id). */
    CHECK_INT(match(&rt, "GET", "/v1/keys/a%2Fb", &m), API__MATCH_FOUND);
    CHECK_STR(m.values[0], "a/b");
    CHECK_INT(match(&rt, "POST", "/v1/surgeries/s%201/detections", &m), API__MATCH_FOUND);
    CHECK_STR(m.values[0], "s 1");
    api__router_free(&rt);
    CHECK(rt.routes == NULL);
}

static sl_status path(const char *raw, size_t len, sl_error *e)
{
    api__path p;
    sl_error_clear(e);
    sl_status rc = api__path_parse(raw, len, &p, e);
    if (rc == SL_OK)
        free(p.buf);
    return rc;
}

static void test_path_refusals(void)
{
    sl_error e;
    CHECK_INT(path("/v1/tenant", 10, &e), SL_OK);
    CHECK_INT(path("v1/tenant", 9, &e), SL_EINVAL);
    CHECK_INT(path("/v1/\x01tenant", 11, &e), SL_EINVAL);
    CHECK_INT(e.offset, 4);
    CHECK(strstr(e.message, "0x01") != NULL);
    CHECK_INT(path("/a%00b", 6, &e), SL_EINVAL);
    CHECK(strstr(e.message, "0x00") != NULL);
    CHECK_INT(path("/a%C3%28", 8, &e), SL_EINVAL); /* invalid UTF-8 once decoded */
    CHECK(strstr(e.message, "UTF-8") != NULL);
    CHECK_INT(path("/a\xff", 3, &e), SL_EINVAL);
    CHECK_INT(path("/caf%C3%A9", 10, &e), SL_OK);
    CHECK_INT(path("/a%2", 4, &e), SL_EINVAL);
    CHECK(strstr(e.message, "percent") != NULL);
    CHECK_INT(path("/a%zz", 5, &e), SL_EINVAL);
    CHECK_INT(path("/v1/keys/..", 11, &e), SL_EINVAL);
    CHECK(strstr(e.message, "dot segments") != NULL);
    CHECK_INT(path("/v1/%2e%2E/x", 12, &e), SL_EINVAL);
    CHECK_INT(path("/./x", 4, &e), SL_EINVAL);
    CHECK_INT(path("/a..b", 5, &e), SL_OK); /* only whole dot segments */
    char deep[128] = "";
    for (int i = 0; i < 17; i++)
        strcat(deep, "/a");
    CHECK_INT(path(deep, strlen(deep), &e), SL_EINVAL);
    CHECK(strstr(e.message, "segments") != NULL);
}

static void test_query(void)
{
    api__query q;
    sl_error e;
    const char *raw = "format=darknet&x=a+b%2Fc&flag&&empty=";
    sl_error_clear(&e);
    REQUIRE(api__query_parse(raw, strlen(raw), &q, &e) == SL_OK);
    CHECK_INT(q.n, 4);
    CHECK_STR(q.name[0], "format");
    CHECK_STR(q.value[0], "darknet");
    CHECK_STR(q.value[1], "a b/c");
    CHECK_STR(q.name[2], "flag");
    CHECK_STR(q.value[2], "");
    CHECK_STR(q.name[3], "empty");
    free(q.buf);
    sl_error_clear(&e);
    CHECK_INT(api__query_parse("a=%ZZ", 5, &q, &e), SL_EINVAL);
    CHECK_STR(e.field, "query");
    sl_error_clear(&e);
    CHECK_INT(api__query_parse("a=%01", 5, &q, &e), SL_EINVAL);
    sl_error_clear(&e);
    CHECK_INT(api__query_parse("a=%C3", 5, &q, &e), SL_EINVAL);
    char many[512] = "";
    for (int i = 0; i < 33; i++)
        strcat(many, "a=1&");
    sl_error_clear(&e);
    CHECK_INT(api__query_parse(many, strlen(many), &q, &e), SL_EINVAL);
}

/* Hostile bytes in, valid JSON out. */
static void test_json_out(void)
{
    yajl_gen g = api_json_new();
    const unsigned char *buf;
    size_t len;
    char err[128];
    REQUIRE(g != NULL);
    yajl_gen_map_open(g);
    api_json_kv_str(g, "bad",
                    "a\xff\xfe"
                    "b\xc3");
    api_json_kv_str(g, "ctl", "x\x01y\n\"z\\");
    api_json_kv_str(g, "ok", "caf\xc3\xa9");
    api_json_kv_str(g, "null", NULL);
    yajl_gen_map_close(g);
    REQUIRE(yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok);
    char *copy = strndup((const char *)buf, len);
    yajl_val v = yajl_tree_parse(copy, err, sizeof err);
    CHECK(v != NULL);
    const char *pb[] = {"bad", NULL}, *pc[] = {"ctl", NULL}, *po[] = {"ok", NULL};
    yajl_val bad = yajl_tree_get(v, pb, yajl_t_string);
    yajl_val ctl = yajl_tree_get(v, pc, yajl_t_string);
    yajl_val ok = yajl_tree_get(v, po, yajl_t_string);
    CHECK_STR(bad ? YAJL_GET_STRING(bad) : NULL, "a\xef\xbf\xbd\xef\xbf\xbd"
                                                 "b\xef\xbf\xbd");
    CHECK_STR(ctl ? YAJL_GET_STRING(ctl) : NULL, "x\x01y\n\"z\\");
    CHECK_STR(ok ? YAJL_GET_STRING(ok) : NULL, "caf\xc3\xa9");
    CHECK(strstr(copy, "\\u0001") != NULL); /* control bytes escaped, never raw */
    yajl_tree_free(v);
    free(copy);
    yajl_gen_free(g);
}

static void test_json_in(void)
{
    sl_error e;
    char deep[200];
    sl_error_clear(&e);
    CHECK_INT(api__json_check("{\"a\": [1, 2]}", 13, 64, &e), SL_OK);
    CHECK_INT(api__json_check("{\"a\": [1, 2}", 12, 64, &e), SL_EINVAL);
    CHECK_STR(e.field, "body");
    CHECK(e.offset >= 10 && e.offset <= 12);
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    sl_error_clear(&e);
    CHECK_INT(api__json_check(deep, 200, 64, &e), SL_EINVAL);
    CHECK(strstr(e.message, "deeper than 64") != NULL);
    sl_error_clear(&e);
    CHECK_INT(api__json_check(deep + 40, 120, 64, &e), SL_OK); /* 60 deep is fine */
    sl_error_clear(&e);
    CHECK_INT(api__json_check("{\"a\":\"\xff\"}", 9, 64, &e), SL_EINVAL); /* bad UTF-8 */
    sl_error_clear(&e);
    CHECK_INT(api__json_check("{} {}", 5, 64, &e), SL_EINVAL); /* one value only */
}

static void test_problem_body(void)
{
    char *body = NULL, err[128];
    size_t len = 0;
    REQUIRE(api__problem_body(400, "invalid-path", "Bad request", "segment \xff holds \x02", "path",
                              7, "abc-1", &body, &len) == SL_OK);
    yajl_val v = yajl_tree_parse(body, err, sizeof err);
    REQUIRE(v != NULL);
    const char *pt[] = {"type", NULL}, *ps[] = {"status", NULL}, *po[] = {"offset", NULL},
               *pf[] = {"field", NULL}, *pr[] = {"request_id", NULL};
    CHECK_STR(YAJL_GET_STRING(yajl_tree_get(v, pt, yajl_t_string)),
              "https://sightline.dev/problems/invalid-path");
    CHECK_INT(YAJL_GET_INTEGER(yajl_tree_get(v, ps, yajl_t_number)), 400);
    CHECK_INT(YAJL_GET_INTEGER(yajl_tree_get(v, po, yajl_t_number)), 7);
    CHECK_STR(YAJL_GET_STRING(yajl_tree_get(v, pf, yajl_t_string)), "path");
    CHECK_STR(YAJL_GET_STRING(yajl_tree_get(v, pr, yajl_t_string)), "abc-1");
    yajl_tree_free(v);
    free(body);
    REQUIRE(api__problem_body(404, "no-route", "Not found", "x", NULL, -1, "r", &body, &len) ==
            SL_OK);
    CHECK(strstr(body, "offset") == NULL && strstr(body, "field") == NULL);
    free(body);
    CHECK_STR(api__status_slug(SL_EINVAL), "invalid-input");
    CHECK_STR(api__status_slug((sl_status)999), "internal-error");
}

static void test_key_shape(void)
{
    char id[API_KEY_ID_LEN + 1], h1[65], h2[65];
    sl_error e;
    const char *good = "sl_0123456789abcdef_"
                       "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    sl_error_clear(&e);
    CHECK_INT(strlen(good), API_KEY_LEN);
    CHECK_INT(api__key_split(good, strlen(good), id, &e), SL_OK);
    CHECK_STR(id, "0123456789abcdef");
    CHECK_INT(api__key_split(good, strlen(good) - 1, id, &e), SL_EAUTH);
    char upper[API_KEY_LEN + 1];
    memcpy(upper, good, sizeof upper);
    upper[30] = 'A';
    sl_error_clear(&e);
    CHECK_INT(api__key_split(upper, strlen(upper), id, &e), SL_EAUTH);
    CHECK(strstr(e.message, upper + 20) == NULL); /* the secret is never echoed */
    REQUIRE(api__key_hash(good, strlen(good), h1, &e) == SL_OK);
    REQUIRE(api__key_hash(upper, strlen(upper), h2, &e) == SL_OK);
    CHECK_INT(strlen(h1), 64);
    CHECK(strcmp(h1, h2) != 0);
    /* SHA-256("abc"), the FIPS 180-2 example. */
    REQUIRE(api__key_hash("abc", 3, h1, &e) == SL_OK);
    CHECK_STR(h1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    api_role r;
    CHECK_INT(api_role_parse("viewer", &r, &e), SL_OK);
    CHECK_INT(r, API_ROLE_VIEWER);
    sl_error_clear(&e);
    CHECK_INT(api_role_parse("root", &r, &e), SL_EINVAL);
    CHECK(strstr(e.message, "ingest, staff, viewer, admin") != NULL);
    CHECK_STR(api_role_name(API_ROLE_INGEST), "ingest");
}

static void test_cursor(void)
{
    char enc[2 * STORE_TOKEN_MAX], dec[STORE_TOKEN_MAX];
    sl_error e;
    sl_error_clear(&e);
    api_cursor_encode("T#acme|KEY#0001 x/y?", enc);
    CHECK(strspn(enc, "0123456789abcdef") == strlen(enc)); /* URL-safe */
    CHECK_INT(api_cursor_decode(enc, dec, &e), SL_OK);
    CHECK_STR(dec, "T#acme|KEY#0001 x/y?");
    CHECK_INT(api_cursor_decode("abc", dec, &e), SL_EINVAL);
    sl_error_clear(&e);
    CHECK_INT(api_cursor_decode("zz", dec, &e), SL_EINVAL);
    sl_error_clear(&e);
    CHECK_INT(api_cursor_decode("6100", dec, &e), SL_EINVAL); /* an embedded NUL */
    CHECK_STR(e.field, "cursor");
}

static void test_metrics(void)
{
    const char *labels[] = {"GET /v1/tenant", "POST /v1/keys"};
    api__metrics *m = NULL;
    sl_error e;
    char *text = NULL;
    size_t len = 0;
    sl_error_clear(&e);
    REQUIRE(api__metrics_new(labels, 2, &m, &e) == SL_OK);
    api__metrics_observe(m, 0, 200, 300);  /* 0.3 ms */
    api__metrics_observe(m, 0, 200, 7000); /* 7 ms */
    api__metrics_observe(m, 1, 413, 50);
    api__metrics_observe(m, 2, 404, 10); /* unmatched */
    api__metrics_observe(m, 0, 418, 10); /* untracked status */
    api__metrics_in_flight(m, 3);
    api__metrics_in_flight(m, -1);
    api__metrics_store_error(m, SL_EIO);
    FILE *f = open_memstream(&text, &len);
    REQUIRE(api__metrics_render(m, f, &e) == SL_OK);
    fclose(f);
    CHECK(strstr(text, "sightline_http_requests_total{method=\"GET\",route=\"/v1/tenant\","
                       "status=\"200\"} 2\n") != NULL);
    CHECK(strstr(text, "route=\"/v1/keys\",status=\"413\"} 1\n") != NULL);
    CHECK(strstr(text, "route=\"(unmatched)\",status=\"404\"} 1\n") != NULL);
    CHECK(strstr(text, "status=\"other\"} 1\n") != NULL);
    /* Cumulative buckets over 10 us, 0.3 ms and 7 ms. */
    CHECK(strstr(text, "route=\"/v1/tenant\",le=\"0.0001\"} 1\n") != NULL);
    CHECK(strstr(text, "route=\"/v1/tenant\",le=\"0.0005\"} 2\n") != NULL);
    CHECK(strstr(text, "route=\"/v1/tenant\",le=\"0.005\"} 2\n") != NULL);
    CHECK(strstr(text, "route=\"/v1/tenant\",le=\"0.01\"} 3\n") != NULL);
    CHECK(strstr(text, "route=\"/v1/tenant\",le=\"+Inf\"} 3\n") != NULL);
    CHECK(strstr(text, "sightline_http_in_flight_requests 2\n") != NULL);
    CHECK(strstr(text, "sightline_store_errors_total{status=\"SL_EIO\"} 1\n") != NULL);
    CHECK(strstr(text, "sightline_store_errors_total{status=\"SL_EBUSY\"} 0\n") != NULL);
    free(text);
    api__metrics_free(&m);
    CHECK(m == NULL);
}

static void test_text_check(void)
{
    sl_error e;
    sl_error_clear(&e);
    CHECK_INT(schema_utf8_valid_prefix("ab\xc3\xa9"
                                       "c",
                                       5),
              5);
    CHECK_INT(schema_utf8_valid_prefix("ab\xc3", 3), 2);
    CHECK_INT(schema_utf8_valid_prefix("\xed\xa0\x80", 3), 0); /* a UTF-16 surrogate */
    CHECK_INT(schema_utf8_valid_prefix("", 0), 0);
    CHECK_INT(schema_text_check("name", "ok name", 7, &e), SL_OK);
    CHECK_INT(schema_text_check("name", "a\tb", 3, &e), SL_EINVAL);
    CHECK_INT(e.offset, 1);
    schema_key k;
    sl_error_clear(&e);
    CHECK_INT(schema_gsi1pk_key_id(k, "0123abcd", &e), SL_OK);
    CHECK_STR(k, "KEYID#0123abcd");
    CHECK_INT(schema_gsi1pk_key_id(k, "a#b", &e), SL_EINVAL);
    CHECK_STR(k, "");
}

int main(void)
{
    test_config();
    test_router_build();
    test_router_match();
    test_path_refusals();
    test_query();
    test_json_out();
    test_json_in();
    test_problem_body();
    test_key_shape();
    test_cursor();
    test_metrics();
    test_text_check();
    return check_finish();
}
