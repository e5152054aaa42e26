/* api_unit_test.c -- the pieces of api/ that need no server: the limits
 * table, route compilation and matching, path and query decoding, JSON out
 * with hostile bytes, doubles and stored BSON, problem bodies, key shape and
 * hash, cursors (with a real multi-KB page token), the job pool, metrics. */
#include "api/api_int.h"
#include "tests/support/support.h"
#include "tests/check.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    CHECK_INT(c.max_connections, 4096);
    CHECK_INT(c.max_connections_per_ip, 128);
    CHECK_INT(c.connection_memory, 16384);
    /* Text rows with a default: the TLS priorities start as TLS 1.2/1.3 only. */
    CHECK(strstr(c.tls_priorities, "-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2") != NULL);
    CHECK_STR(c.metrics_key, "");
    CHECK_INT(c.hsts_max_age_s, 31536000);
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

    /* The upload directory is a row of the table (no environment hop). */
    CHECK(api_config_has("upload-dir"));
    CHECK_STR(c.upload_dir, ""); /* "": the ingest default ($TMPDIR or /tmp) */
    CHECK_INT(api_config_set(&c, "upload-dir", "/var/spool/sightline", &e), SL_OK);
    CHECK_STR(c.upload_dir, "/var/spool/sightline");
    char longdir[API_PATH_MAX + 8];
    memset(longdir, 'd', sizeof longdir - 1);
    longdir[sizeof longdir - 1] = '\0';
    sl_error_clear(&e);
    CHECK_INT(api_config_set(&c, "upload-dir", longdir, &e), SL_EINVAL);
    CHECK_STR(e.field, "upload-dir");
    CHECK_STR(c.upload_dir, "/var/spool/sightline"); /* unchanged on failure */
    CHECK_INT(c.job_threads, 1);
    CHECK_INT(c.job_queue, 16);
    sl_error_clear(&e);
    CHECK_INT(api_config_set(&c, "job-threads", "0", &e), SL_EINVAL);
    sl_error_clear(&e);
    CHECK_INT(api_config_set(&c, "job-queue", "0", &e), SL_OK);
    char *help = NULL;
    size_t hlen = 0;
    FILE *hf = open_memstream(&help, &hlen);
    REQUIRE(hf != NULL);
    api_config_help(hf);
    fclose(hf);
    CHECK(strstr(help, "--upload-dir DIR") != NULL);
    CHECK(strstr(help, "--tls-priorities STRING") != NULL);
    CHECK(strstr(help, "(default NORMAL:%SERVER_PRECEDENCE") != NULL);
    CHECK(strstr(help, "--max-connections-per-ip N") != NULL);
    CHECK(strstr(help, "--upload-free-floor N") != NULL);
    CHECK(strstr(help, "--job-threads N") != NULL);
    free(help);
}

static const api_route table_ok[] = {
    {"GET", "/v1/keys/{key_id}", API_ROLE_ADMIN, API_KIND_ANY, NULL, API_BODY_NONE, 0,
     API_RUN_INLINE, NULL, NULL, dummy},
    {"GET", "/v1/keys/mine", API_ANY_ROLE, API_KIND_ANY, NULL, API_BODY_NONE, 0, API_RUN_INLINE,
     NULL, NULL, dummy},
    {"DELETE", "/v1/keys/{key_id}", API_ROLE_ADMIN, API_KIND_ANY, NULL, API_BODY_NONE, 0,
     API_RUN_INLINE, NULL, NULL, dummy},
    {"POST", "/v1/surgeries/{id}/detections", API_ROLE_INGEST, API_KIND_ANY, NULL,
     API_BODY_STREAMED, 0, API_RUN_INLINE, NULL, dummy_chunk, dummy},
    {"GET", "/healthz", API_PUBLIC, API_KIND_ANY, NULL, API_BODY_NONE, 0, API_RUN_INLINE, NULL,
     NULL, dummy},
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
    const api_route no_roles = {"GET", "/x",           0,    API_KIND_ANY, NULL, API_BODY_NONE,
                                0,     API_RUN_INLINE, NULL, NULL,         dummy};
    const api_route no_handler = {"GET", "/x",          API_PUBLIC, API_KIND_ANY,
                                  NULL,  API_BODY_NONE, 0,          API_RUN_INLINE,
                                  NULL,  NULL,          NULL};
    const api_route stream_no_chunk = {
        "POST", "/x",           API_PUBLIC, API_KIND_ANY, NULL, API_BODY_STREAMED,
        0,      API_RUN_INLINE, NULL,       NULL,         dummy};
    const api_route bad_param = {"GET", "/x/{}",       API_PUBLIC, API_KIND_ANY,
                                 NULL,  API_BODY_NONE, 0,          API_RUN_INLINE,
                                 NULL,  NULL,          dummy};
    const api_route empty_seg = {"GET", "/x//y",       API_PUBLIC, API_KIND_ANY,
                                 NULL,  API_BODY_NONE, 0,          API_RUN_INLINE,
                                 NULL,  NULL,          dummy};
    const api_route head = {"HEAD", "/x",           API_PUBLIC, API_KIND_ANY, NULL, API_BODY_NONE,
                            0,      API_RUN_INLINE, NULL,       NULL,         dummy};
    const api_route bad_run = {"GET", "/x",          API_PUBLIC, API_KIND_ANY,
                               NULL,  API_BODY_NONE, 0,          (api_run_kind)7,
                               NULL,  NULL,          dummy};
    CHECK_INT(build_one(&no_roles, &rt, &e), SL_EINTERNAL);
    CHECK(strstr(e.message, "GET /x") != NULL);
    CHECK_INT(build_one(&no_handler, &rt, &e), SL_EINTERNAL);
    CHECK_INT(build_one(&stream_no_chunk, &rt, &e), SL_EINTERNAL);
    CHECK_INT(build_one(&bad_param, &rt, &e), SL_EINTERNAL);
    CHECK_INT(build_one(&empty_seg, &rt, &e), SL_EINTERNAL);
    CHECK_INT(build_one(&head, &rt, &e), SL_EINTERNAL);
    CHECK_INT(build_one(&bad_run, &rt, &e), SL_EINTERNAL);
    CHECK(strstr(e.message, "API_RUN_JOB") != NULL);

    /* Kinds: a mask of both, not 0; a public route has no key, so both. */
    const api_route no_kind = {
        "GET", "/x", API_ROLE_VIEWER, 0, NULL, API_BODY_NONE, 0, API_RUN_INLINE, NULL, NULL, dummy};
    const api_route bad_kind = {
        "GET", "/x", API_ROLE_VIEWER, 8, NULL, API_BODY_NONE, 0, API_RUN_INLINE, NULL, NULL, dummy};
    const api_route public_kind = {"GET", "/x",          API_PUBLIC, API_KIND_BRAND,
                                   NULL,  API_BODY_NONE, 0,          API_RUN_INLINE,
                                   NULL,  NULL,          dummy};
    CHECK_INT(build_one(&no_kind, &rt, &e), SL_EINTERNAL);
    CHECK(strstr(e.message, "kinds") != NULL);
    CHECK_INT(build_one(&bad_kind, &rt, &e), SL_EINTERNAL);
    CHECK_INT(build_one(&public_kind, &rt, &e), SL_EINTERNAL);
    /* Query declarations: names of [a-z0-9_], space-separated, each once. */
    static const char *const bad_queries[] = {"limit limit", "Limit", "a  b", " a",
                                              "a ",          "a,b",   "a-b"};
    for (size_t i = 0; i < sizeof bad_queries / sizeof bad_queries[0]; i++) {
        const api_route q = {"GET",          "/x",          API_PUBLIC, API_KIND_ANY,
                             bad_queries[i], API_BODY_NONE, 0,          API_RUN_INLINE,
                             NULL,           NULL,          dummy};
        CHECK_INT(build_one(&q, &rt, &e), SL_EINTERNAL);
        CHECK(strstr(e.message, "query parameters") != NULL);
    }
    const api_route good_q = {
        "GET",          "/x", API_PUBLIC, API_KIND_ANY, "from to limit cursor", API_BODY_NONE, 0,
        API_RUN_INLINE, NULL, NULL,       dummy};
    REQUIRE(build_one(&good_q, &rt, &e) == SL_OK);
    CHECK_INT(rt.routes[0].nquery, 4);
    CHECK(api__route_takes(&rt.routes[0], "cursor") && !api__route_takes(&rt.routes[0], "cur"));
    /* Regression (issue 9, finding 10): repeated parameters were resolved
     * first-wins (limit=1&limit=500) and unknown ones ignored. */
    static const struct {
        const char *query, *field;
    } checks[] = {
        {"from=1&to=2&limit=3&cursor=x", NULL},
        {"", NULL},
        {"limit=1&limit=500", "limit"},
        {"to=1&from=2&to=3", "to"},
        {"fro=1", "fro"},
        {"format=ndjson", "format"},
        {"limit", NULL},
        {"x&limit=1", "x"},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        api__query q;
        sl_error_clear(&e);
        REQUIRE(api__query_parse(checks[i].query, strlen(checks[i].query), &q, &e) == SL_OK);
        sl_status rc = api__query_check(&rt.routes[0], &q, &e);
        CHECK_INT(rc, checks[i].field ? SL_EINVAL : SL_OK);
        if (checks[i].field) {
            CHECK_STR(e.field, checks[i].field);
            CHECK(strstr(e.message, i < 4 ? "more than once" : "takes no query parameter") != NULL);
        }
        free(q.buf);
    }
    api__router_free(&rt);

    /* The same shape twice (parameter names aside) is a clash. */
    const api_route twice[] = {
        {"GET", "/a/{x}", API_PUBLIC, API_KIND_ANY, NULL, API_BODY_NONE, 0, API_RUN_INLINE, NULL,
         NULL, dummy},
        {"GET", "/a/{y}", API_PUBLIC, API_KIND_ANY, NULL, API_BODY_NONE, 0, API_RUN_INLINE, NULL,
         NULL, dummy},
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

/* Regression (found by fuzz_http): the query parser read past raw[len) with
 * strcspn when the bytes were not NUL-terminated; ASan flags the overread. */
static void test_query_unterminated(void)
{
    char *raw = malloc(5);
    REQUIRE(raw);
    memcpy(raw, "a=1&b", 5); /* no NUL */
    api__query q;
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(api__query_parse(raw, 5, &q, &e) == SL_OK);
    CHECK_INT(q.n, 2);
    CHECK_STR(q.value[0], "1");
    CHECK_STR(q.name[1], "b");
    free(q.buf);
    free(raw);
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
    /* Regression (issue 9, finding 7): what yajl's own check lets through. */
    api_json_kv_str(g, "lax", "o\xc0\xafs\xed\xa0\x80t\xf4\x90\x80\x80");
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
    const char *pl[] = {"lax", NULL};
    yajl_val lax = yajl_tree_get(v, pl, yajl_t_string);
    const char *ls = lax ? YAJL_GET_STRING(lax) : "";
    CHECK(strncmp(ls, "o\xef\xbf\xbd", 4) == 0);
    CHECK(schema_utf8_valid_prefix(copy, len) == len); /* the whole answer is valid UTF-8 */
    CHECK(strstr(copy, "\\u0001") != NULL);            /* control bytes escaped, never raw */
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
    CHECK_STR(e.field, "a"); /* the member at fault */
    CHECK(e.offset >= 10 && e.offset <= 12);
    sl_error_clear(&e);
    CHECK_INT(api__json_check("[1,", 3, 64, &e), SL_EINVAL);
    CHECK_STR(e.field, "body"); /* at the top: the body */
    /* Regression (issue 9, finding 9): yajl_tree keeps the last of two
     * members of one name, so {"role":"viewer","role":"admin"} made an
     * admin key.  Every body is held to the ingest reader's rules. */
    const char *dup = "{\"role\":\"viewer\",\"role\":\"admin\"}";
    sl_error_clear(&e);
    CHECK_INT(api__json_check(dup, strlen(dup), 64, &e), SL_EINVAL);
    CHECK_STR(e.field, "role");
    CHECK_INT(e.offset, 17);
    CHECK(strstr(e.message, "duplicate key \"role\"") != NULL);
    const char *nested = "{\"a\":{\"b\":1,\"c\":{\"b\":2},\"b\":3}}";
    sl_error_clear(&e);
    CHECK_INT(api__json_check(nested, strlen(nested), 64, &e), SL_EINVAL);
    CHECK_STR(e.field, "a.b");
    const char *lone = "{\"name\":\"x\\ud800\"}";
    sl_error_clear(&e);
    CHECK_INT(api__json_check(lone, strlen(lone), 64, &e), SL_EINVAL); /* finding 7 */
    CHECK(strstr(e.message, "high surrogate") != NULL);
    CHECK_STR(e.field, "name");
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

/* Regression (issue 9, finding 14): cursors were the listing's position in
 * base64 or hex, readable and forgeable.  A sealed cursor hides the position,
 * opens only with the key and binding it was sealed with, and refuses every
 * change of a single character and every cut. */
static void test_cursor(void)
{
    unsigned char s1[32], s2[32], pos[API__CURSOR_POS_MAX];
    api__cursor_key k1, k2;
    char c[API_CURSOR_MAX], again[API_CURSOR_MAX], bad[API_CURSOR_MAX];
    size_t len = 0;
    sl_error e;
    memset(s1, 1, sizeof s1);
    memset(s2, 2, sizeof s2);
    api__cursor_key_derive(s1, &k1);
    api__cursor_key_derive(s2, &k2);
    const char *b1[] = {"acme", "GET /v1/surgeries/{id}/frames", "id", "s1", "from", "0"};
    const char *position = "T#acme#SURGERY#s1|FRAME#000000042";
    sl_error_clear(&e);
    REQUIRE(api__cursor_seal(&k1, b1, 6, position, strlen(position), c, &e) == SL_OK);
    CHECK(strspn(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
          strlen(c));
    CHECK(strlen(c) < strlen(position) * 4 / 3 + 25); /* 17 bytes more than the position */
    CHECK_INT(api__cursor_open(&k1, b1, 6, c, pos, &len, &e), SL_OK);
    CHECK(len == strlen(position) && !memcmp(pos, position, len));
    /* Deterministic: the same position seals to the same cursor. */
    CHECK_INT(api__cursor_seal(&k1, b1, 6, position, strlen(position), again, &e), SL_OK);
    CHECK_STR(again, c);
    /* Opaque: no trace of the position in the cursor's bytes. */
    {
        unsigned char raw[API__CURSOR_RAW_MAX];
        size_t n = 0;
        uint32_t acc = 0;
        int bits = 0;
        for (const char *p = c; *p; p++) {
            const char *al = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            acc = acc << 6 | (uint32_t)(strchr(al, *p) - al);
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                raw[n++] = (unsigned char)(acc >> bits);
            }
        }
        CHECK(memmem(raw, n, "FRAME", 5) == NULL && memmem(raw, n, "acme", 4) == NULL);
    }
    /* Every single changed character and every cut is refused. */
    const char *al = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t clen = strlen(c), opened = 0;
    for (size_t i = 0; i < clen; i++)
        for (size_t a = 0; a < 64; a += 7) {
            memcpy(bad, c, clen + 1);
            if (bad[i] == al[a])
                continue;
            bad[i] = al[a];
            sl_error_clear(&e);
            opened += api__cursor_open(&k1, b1, 6, bad, pos, &len, &e) == SL_OK;
        }
    for (size_t cut = 0; cut < clen; cut++) {
        memcpy(bad, c, cut);
        bad[cut] = '\0';
        sl_error_clear(&e);
        opened += api__cursor_open(&k1, b1, 6, bad, pos, &len, &e) == SL_OK;
    }
    CHECK_INT(opened, 0);
    CHECK_STR(e.field, "cursor");
    /* Another store (secret), tenant, listing or parameter: refused. */
    const char *b_tenant[] = {"globex", "GET /v1/surgeries/{id}/frames", "id", "s1", "from", "0"};
    const char *b_route[] = {"acme", "GET /v1/catalog", "id", "s1", "from", "0"};
    const char *b_param[] = {"acme", "GET /v1/surgeries/{id}/frames", "id", "s2", "from", "0"};
    const char *b_more[] = {"acme", "GET /v1/surgeries/{id}/frames", "id", "s1"};
    const char *b_shift[] = {"acme", "GET /v1/surgeries/{id}/frames", "id", "s1f", "rom", "0"};
    CHECK_INT(api__cursor_open(&k2, b1, 6, c, pos, &len, &e), SL_EINVAL);
    CHECK_INT(api__cursor_open(&k1, b_tenant, 6, c, pos, &len, &e), SL_EINVAL);
    CHECK_INT(api__cursor_open(&k1, b_route, 6, c, pos, &len, &e), SL_EINVAL);
    CHECK_INT(api__cursor_open(&k1, b_param, 6, c, pos, &len, &e), SL_EINVAL);
    CHECK_INT(api__cursor_open(&k1, b_more, 4, c, pos, &len, &e), SL_EINVAL);
    CHECK_INT(api__cursor_open(&k1, b_shift, 6, c, pos, &len, &e), SL_EINVAL);
    /* Garbage of every shape. */
    static const char *const junk[] = {
        "", "ab cd", "ab%2F", "AQ", "A", "=", "AAAAAAAAAAAAAAAAAAAAAAAA"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        sl_error_clear(&e);
        CHECK_INT(api__cursor_open(&k1, b1, 6, junk[i], pos, &len, &e), SL_EINVAL);
        CHECK_STR(e.field, "cursor");
    }
    char *huge = malloc(API_CURSOR_MAX + 2);
    REQUIRE(huge != NULL);
    memset(huge, 'A', API_CURSOR_MAX + 1);
    huge[API_CURSOR_MAX + 1] = '\0';
    CHECK_INT(api__cursor_open(&k1, b1, 6, huge, pos, &len, &e), SL_EINVAL);
    free(huge);
    /* The largest position fits API_CURSOR_MAX; one byte more is refused. */
    unsigned char *big = malloc(API__CURSOR_POS_MAX + 1);
    REQUIRE(big != NULL);
    memset(big, 0xa5, API__CURSOR_POS_MAX + 1);
    sl_error_clear(&e);
    CHECK_INT(api__cursor_seal(&k1, b1, 6, big, API__CURSOR_POS_MAX, c, &e), SL_OK);
    CHECK_INT(strlen(c), API_CURSOR_MAX - 1);
    CHECK_INT(api__cursor_open(&k1, b1, 6, c, pos, &len, &e), SL_OK);
    CHECK(len == API__CURSOR_POS_MAX && !memcmp(pos, big, len));
    CHECK_INT(api__cursor_seal(&k1, b1, 6, big, API__CURSOR_POS_MAX + 1, c, &e), SL_EINTERNAL);
    free(big);
}

/* A request of route cr with query string q, as the server makes it before
 * a handler runs (tenant "acme"); free req->query.buf. */
static void fake_request(api_request *req, const api__croute *cr, const api__cursor_key *k,
                         const char *tenant, const char *q)
{
    sl_error e;
    memset(req, 0, sizeof *req);
    req->cursor_key = k;
    req->authed = 1;
    snprintf(req->auth.tenant, sizeof req->auth.tenant, "%s", tenant);
    req->match.route = cr;
    sl_error_clear(&e);
    REQUIRE(api__query_parse(q, strlen(q), &req->query, &e) == SL_OK);
}

/* Regression: cursors were cut at STORE_TOKEN_MAX (511 bytes) while page
 * tokens of index queries over long keys run to several KB, so page 2 of
 * such a listing was refused.  A real token from a real store goes through
 * encode and decode and still pages on. */
static void test_cursor_long_page_token(void)
{
    char dir[128], uri[256], dec[STORE_PAGE_TOKEN_MAX], query[API_CURSOR_MAX + 16];
    char pk[STORE_KEY_MAX + 1], sk[STORE_KEY_MAX + 1], gsk[STORE_KEY_MAX + 1];
    store *st = NULL;
    store_page page = {0}, next = {0};
    api__router rt;
    api__cursor_key k;
    unsigned char secret[32] = {7};
    sl_error e;
    sl_error_clear(&e);
    api__cursor_key_derive(secret, &k);
    const api_route list = {
        "GET",         "/v1/list", API_ROLE_VIEWER, API_KIND_ANY, "limit cursor",
        API_BODY_NONE, 0,          API_RUN_INLINE,  NULL,         NULL,
        dummy};
    REQUIRE(build_one(&list, &rt, &e) == SL_OK);
    REQUIRE(support_tmpdir(dir, "api") == 0);
    snprintf(uri, sizeof uri, "sqlite:%s/sl.db", dir);
    REQUIRE(store_open(uri, NULL, &st, &e) == SL_OK);
    for (int i = 0; i < 3; i++) {
        /* Three keys near STORE_KEY_MAX: a position of about 3 KB. */
        memset(pk, 'p', 1000);
        memset(sk, 's', 1000);
        memset(gsk, 'g', 1000);
        snprintf(pk + 1000, 16, "%d", i);
        snprintf(sk + 1000, 16, "%d", i);
        snprintf(gsk + 1000, 16, "%d", i);
        bson_t *doc = BCON_NEW("pk", BCON_UTF8(pk), "sk", BCON_UTF8(sk), "gsi1pk", BCON_UTF8("G"),
                               "gsi1sk", BCON_UTF8(gsk), "n", BCON_INT32(i));
        CHECK_INT(store_put(st, STORE_ITEMS, doc, (store_cond){STORE_COND_NONE, 0}, NULL, &e),
                  SL_OK);
        bson_destroy(doc);
    }
    store_query_opts q = {.limit = 1};
    REQUIRE(store_query_index(st, STORE_ITEMS, STORE_GSI1, "G", &q, &page, &e) == SL_OK);
    REQUIRE(page.next_token != NULL);
    CHECK(strlen(page.next_token) > 3000); /* far past the old 511-byte cut */
    /* The token sealed as the `next` of a page, read back from `cursor`. */
    api_request req;
    fake_request(&req, &rt.routes[0], &k, "acme", "limit=1");
    yajl_gen g = api_json_new();
    const unsigned char *buf = NULL;
    size_t blen = 0;
    yajl_gen_map_open(g);
    CHECK_INT(api_json_cursor(&req, g, "next", page.next_token, &e), SL_OK);
    yajl_gen_map_close(g);
    REQUIRE(yajl_gen_get_buf(g, &buf, &blen) == yajl_gen_status_ok);
    char *json = strndup((const char *)buf, blen);
    yajl_gen_free(g);
    free(req.query.buf);
    char *c = strstr(json, ":\"") ? strstr(json, ":\"") + 2 : json;
    c[strcspn(c, "\"")] = '\0';
    CHECK(strlen(c) < strlen(page.next_token) + 64); /* packed: hardly longer than the token */
    CHECK(strlen(c) + 200 < 8192);                   /* fits a request line */
    snprintf(query, sizeof query, "limit=2&cursor=%s", c);
    fake_request(&req, &rt.routes[0], &k, "acme", query);
    CHECK_INT(api_cursor_param(&req, dec, &e), SL_OK);
    CHECK_STR(dec, page.next_token);
    free(req.query.buf);
    /* Another tenant's request does not open it. */
    fake_request(&req, &rt.routes[0], &k, "globex", query);
    sl_error_clear(&e);
    CHECK_INT(api_cursor_param(&req, dec, &e), SL_EINVAL);
    CHECK_STR(e.field, "cursor");
    free(req.query.buf);
    free(json);
    q.page_token = page.next_token;
    CHECK_INT(api_page_query(st, STORE_ITEMS, STORE_GSI1, "G", &q, &next, &e), SL_OK);
    CHECK_INT(next.count, 1);
    bson_t view;
    if (next.count == 1 && store_page_view(&next, 0, &view)) {
        bson_iter_t it;
        CHECK(bson_iter_init_find(&it, &view, "n") && bson_iter_int32(&it) == 1);
    }
    store_page_free(&next);
    /* A token cut short (what the old cursor did) is the cursor's fault: 400. */
    snprintf(dec, sizeof dec, "%.511s", page.next_token);
    q.page_token = dec;
    sl_error_clear(&e);
    CHECK_INT(api_page_query(st, STORE_ITEMS, STORE_GSI1, "G", &q, &next, &e), SL_EINVAL);
    CHECK_STR(e.field, "cursor");
    store_page_free(&page);
    store_close(&st);
    api__router_free(&rt);
    support_rmrf(dir);
}

/* The shared JSON writers: doubles in their shortest exact form, stored BSON
 * of every type the documents hold, hidden fields left out. */
static void test_json_bson(void)
{
    yajl_gen g = api_json_new();
    const unsigned char *buf;
    size_t len;
    REQUIRE(g != NULL);
    bson_t *doc = BCON_NEW("pk", BCON_UTF8("T#t"), "name", BCON_UTF8("x"), "n", BCON_INT32(3),
                           "big", BCON_INT64(INT64_C(9007199254740993)), "f", BCON_DOUBLE(0.61),
                           "w", BCON_DOUBLE(30.0), "t", BCON_DOUBLE(0.1 + 0.2), "yes",
                           BCON_BOOL(true), "none", BCON_NULL, "tbl", "[", "[", BCON_DOUBLE(0.05),
                           BCON_DOUBLE(1.0), "]", "]", "sub", "{", "k", BCON_UTF8("v"), "}", "bin",
                           BCON_BIN(BSON_SUBTYPE_BINARY, (const uint8_t *)"ab", 2));
    static const char *const hidden[] = {"pk"};
    yajl_gen_map_open(g);
    api_json_bson_fields(g, doc, hidden, 1);
    api_json_kv_double(g, "nan", NAN);
    yajl_gen_map_close(g);
    REQUIRE(yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok);
    CHECK_STR((const char *)buf,
              "{\"name\":\"x\",\"n\":3,\"big\":9007199254740993,\"f\":0.61,\"w\":30,"
              "\"t\":0.30000000000000004,\"yes\":true,\"none\":null,\"tbl\":[[0.05,1]],"
              "\"sub\":{\"k\":\"v\"},\"bin\":null,\"nan\":null}");
    bson_destroy(doc);
    yajl_gen_free(g);

    /* Nesting past the bound is cut to null, not recursed into. */
    bson_t *deep = bson_new();
    bson_t *cur = deep;
    bson_t levels[40];
    for (int i = 0; i < 40; i++) {
        bson_append_document_begin(cur, "d", 1, &levels[i]);
        cur = &levels[i];
    }
    for (int i = 39; i >= 0; i--)
        bson_append_document_end(i ? &levels[i - 1] : deep, &levels[i]);
    g = api_json_new();
    yajl_gen_map_open(g);
    api_json_bson_fields(g, deep, NULL, 0);
    yajl_gen_map_close(g);
    CHECK(yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok);
    CHECK(strstr((const char *)buf, "null") != NULL);
    yajl_gen_free(g);
    bson_destroy(deep);
}

/* The job pool: bounded, refuses when full, cancels queued jobs at a stop
 * and waits for the running one. */
typedef struct pool_job {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started, release, ran, cancelled;
} pool_job;

static void pool_run(void *arg)
{
    pool_job *j = arg;
    pthread_mutex_lock(&j->mu);
    j->started = 1;
    pthread_cond_broadcast(&j->cv);
    while (!j->release)
        pthread_cond_wait(&j->cv, &j->mu);
    j->ran = 1;
    pthread_mutex_unlock(&j->mu);
}

static void pool_cancel(void *arg)
{
    pool_job *j = arg;
    pthread_mutex_lock(&j->mu);
    j->cancelled = 1;
    pthread_mutex_unlock(&j->mu);
}

static void *pool_stopper(void *arg)
{
    api__jobs_stop(arg);
    return NULL;
}

static void test_job_pool(void)
{
    api__jobs *p = NULL;
    api__jobs_stats js;
    pool_job a = {.started = 0}, b = {.started = 0}, c = {.started = 0};
    pool_job *all[] = {&a, &b, &c};
    sl_error e;
    sl_error_clear(&e);
    for (int i = 0; i < 3; i++) {
        pthread_mutex_init(&all[i]->mu, NULL);
        pthread_cond_init(&all[i]->cv, NULL);
    }
    REQUIRE(api__jobs_new(1, 1, &p, &e) == SL_OK);
    CHECK_INT(api__jobs_submit(p, pool_run, pool_cancel, &a, &e), SL_OK);
    pthread_mutex_lock(&a.mu);
    while (!a.started)
        pthread_cond_wait(&a.cv, &a.mu);
    pthread_mutex_unlock(&a.mu);
    CHECK_INT(api__jobs_submit(p, pool_run, pool_cancel, &b, &e), SL_OK);    /* queued */
    CHECK_INT(api__jobs_submit(p, pool_run, pool_cancel, &c, &e), SL_EBUSY); /* full */
    CHECK(strstr(e.message, "busy") != NULL);
    api__jobs_stats_get(p, &js);
    CHECK_INT(js.running, 1);
    CHECK_INT(js.queued, 1);
    CHECK_INT(js.refused, 1);
    /* A stop cancels b (never started) and waits for a. */
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, pool_stopper, p) == 0);
    for (int i = 0; i < 1000; i++) { /* the stop has taken b out */
        pthread_mutex_lock(&b.mu);
        int done = b.cancelled;
        pthread_mutex_unlock(&b.mu);
        if (done)
            break;
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&a.mu);
    CHECK_INT(a.ran, 0); /* still held: the stop is waiting for it */
    a.release = 1;
    pthread_cond_broadcast(&a.cv);
    pthread_mutex_unlock(&a.mu);
    pthread_join(th, NULL);
    CHECK_INT(a.ran, 1);
    CHECK_INT(b.cancelled, 1);
    CHECK_INT(b.ran, 0);
    CHECK_INT(c.ran + c.cancelled, 0);
    sl_error_clear(&e);
    CHECK_INT(api__jobs_submit(p, pool_run, pool_cancel, &c, &e), SL_EBUSY); /* stopped */
    CHECK(strstr(e.message, "stopping") != NULL);
    api__jobs_free(&p);
    CHECK(p == NULL);
    for (int i = 0; i < 3; i++) {
        pthread_mutex_destroy(&all[i]->mu);
        pthread_cond_destroy(&all[i]->cv);
    }
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
    test_query_unterminated();
    test_json_out();
    test_json_in();
    test_problem_body();
    test_key_shape();
    test_cursor();
    test_cursor_long_page_token();
    test_json_bson();
    test_job_pool();
    test_metrics();
    test_text_check();
    return check_finish();
}
