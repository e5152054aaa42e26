/* api_input_test.c -- lax input at the edges of the HTTP server (issue 9,
 * findings 8, 9, 10 and 12), against the real server: NUL bytes in the
 * request line and headers, duplicate JSON members in request bodies,
 * repeated and unknown query parameters, and libmicrohttpd's own refusals
 * (which of them now get a problem answer, and what the others still get). */
#include "tests/support/support.h"
#include "tests/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static support_server srv;
static char admin[128], ingest[128], staff[128], brand_admin[128];
static char url[4096];

static const char *u(const char *path)
{
    snprintf(url, sizeof url, "%s%s", srv.url, path);
    return url;
}

/* Sends req on a new connection, each '@' of it as a NUL byte (no request
 * here has another '@'); the reply in out.  The reply's status, -1 for none. */
static int raw(const char *req, char *out, size_t cap)
{
    size_t n = strlen(req);
    char *buf = malloc(n + 1);
    int status = -1;
    REQUIRE(buf);
    memcpy(buf, req, n + 1);
    for (size_t i = 0; i < n; i++)
        if (buf[i] == '@')
            buf[i] = '\0';
    if (support_raw(srv.port, buf, n, out, cap, 3000) > 0)
        sscanf(out, "HTTP/1.%*d %d", &status);
    free(buf);
    return status;
}

/* The value of header name in a raw reply's head into out; 0 when found. */
static int raw_header(const char *reply, const char *name, char *out, size_t cap)
{
    const char *end = strstr(reply, "\r\n\r\n");
    size_t nl = strlen(name);
    out[0] = '\0';
    for (const char *p = strstr(reply, "\r\n"); p && end && p < end; p = strstr(p + 2, "\r\n")) {
        if (!strncasecmp(p + 2, name, nl) && p[2 + nl] == ':') {
            const char *v = p + 3 + nl + strspn(p + 3 + nl, " ");
            snprintf(out, cap, "%.*s", (int)strcspn(v, "\r"), v);
            return 0;
        }
    }
    return -1;
}

/* 0 when a raw reply is the problem an error answer of the server is: the
 * status, application/problem+json with the type slug and field (NULL: not
 * checked), nosniff, no-store, a request id.  Prints why not. */
static int raw_problem(const char *reply, int status, const char *slug, const char *field)
{
    char ct[128], nosniff[64], cache[64], rid[64], want[256];
    int got = -1;
    sscanf(reply, "HTTP/1.%*d %d", &got);
    const char *body = strstr(reply, "\r\n\r\n");
    snprintf(want, sizeof want, "\"type\":\"https://sightline.dev/problems/%s\"", slug);
    int ok = got == status && raw_header(reply, "Content-Type", ct, sizeof ct) == 0 &&
             !strcmp(ct, "application/problem+json") &&
             raw_header(reply, "X-Content-Type-Options", nosniff, sizeof nosniff) == 0 &&
             !strcmp(nosniff, "nosniff") &&
             raw_header(reply, "Cache-Control", cache, sizeof cache) == 0 &&
             !strcmp(cache, "no-store") &&
             raw_header(reply, "X-Request-Id", rid, sizeof rid) == 0 && body && strstr(body, want);
    if (ok && field) {
        snprintf(want, sizeof want, "\"field\":\"%s\"", field);
        ok = strstr(body, want) != NULL;
    }
    if (!ok)
        fprintf(stderr, "wanted a %d %s problem (field %s), got:\n%.600s\n", status, slug,
                field ? field : "-", reply);
    return ok ? 0 : -1;
}

static void check_alive(void)
{
    support_resp r;
    CHECK_INT(support_http("GET", u("/healthz"), NULL, NULL, 0, NULL, &r), 0);
    CHECK_INT(r.status, 200);
    support_resp_free(&r);
}

/* ---------------------------------------------------------------------------
 * Finding 8: a NUL byte cut the request line and header values short.
 * ------------------------------------------------------------------------- */
static void test_nul_bytes(void)
{
    char req[2048], reply[8192];
    support_resp r;
    const char *surgery = "{\"hospital\": \"st-mary\", \"room\": \"OR 3\", \"procedure\": "
                          "\"lap-chole\", \"surgeon\": \"Dr. Grey\", \"started_at\": "
                          "\"2026-11-26T08:15:00Z\", \"fps\": 30, \"frame_width\": 640, "
                          "\"frame_height\": 480, \"table\": [[0.05, 0.55], [0.65, 0.55], "
                          "[0.65, 0.98]]}";
    /* Regression: this created surgery "a". */
    snprintf(req, sizeof req,
             "PUT /v1/surgeries/a@b HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
             "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             ingest, strlen(surgery), surgery);
    CHECK_INT(raw(req, reply, sizeof reply), 400);
    CHECK_INT(raw_problem(reply, 400, "nul-byte", "request-line"), 0);
    CHECK(strstr(reply, "request target") != NULL);
    REQUIRE(support_http("GET", u("/v1/surgeries/a"), ingest, NULL, 0, NULL, &r) == 0);
    CHECK_INT(support_is_problem(&r, 404, "not-found"), 0); /* nothing was created */
    support_resp_free(&r);
    /* The same without the NUL is a good request: the refusal was the NUL's. */
    snprintf(req, sizeof req,
             "PUT /v1/surgeries/ab HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
             "Authorization: Bearer %s\r\nContent-Length: %zu\r\n\r\n%s",
             ingest, strlen(surgery), surgery);
    CHECK_INT(raw(req, reply, sizeof reply), 201);

    /* Regression: a key followed by NUL and anything was accepted. */
    static const char *const auth_tails[] = {"@garbage", "@", "@@", "@ x"};
    for (size_t i = 0; i < sizeof auth_tails / sizeof auth_tails[0]; i++) {
        snprintf(req, sizeof req,
                 "GET /v1/tenant HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                 "Authorization: Bearer %s%s\r\nAccept: */*\r\n\r\n",
                 admin, auth_tails[i]);
        CHECK_INT(raw(req, reply, sizeof reply), 400);
        CHECK_INT(raw_problem(reply, 400, "nul-byte", "Authorization"), 0);
    }
    /* ... also as the last header, before the empty line. */
    snprintf(req, sizeof req,
             "GET /v1/tenant HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
             "Authorization: Bearer %s@garbage\r\n\r\n",
             admin);
    CHECK_INT(raw(req, reply, sizeof reply), 400);
    CHECK_INT(raw_problem(reply, 400, "nul-byte", "Authorization"), 0);

    /* Everywhere else in the head: the query, the method, a value's start,
     * a line that starts with NUL (libmicrohttpd took it for the empty line
     * that ends the head); and a line folded over two (obsolete), whose
     * copy libmicrohttpd makes elsewhere. */
    static const struct {
        const char *req, *field;
    } others[] = {
        {"GET /v1/tenant?x@y HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", "request-line"},
        {"GE@T /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", "request-line"},
        {"GET /healthz@ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", "request-line"},
        {"GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: @v\r\nConnection: close\r\n\r\n", "X-A"},
        {"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n@X-A: v\r\n\r\n", "Connection"},
        {"GET /healthz HTTP/1.1\r\nConnection: close\r\nHost: t@\r\n\r\n", "Host"},
    };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        CHECK_INT(raw(others[i].req, reply, sizeof reply), 400);
        CHECK_INT(raw_problem(reply, 400, "nul-byte", others[i].field), 0);
    }
    CHECK_INT(raw("GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: v\r\n w\r\nConnection: close\r\n\r\n",
                  reply, sizeof reply),
              400);
    CHECK_INT(raw_problem(reply, 400, "folded-header", "headers"), 0);

    /* What libmicrohttpd 0.9.75 refuses itself, before any callback of
     * ours: a NUL inside a field name (it finds no colon) or the version.
     * Still 400, but its HTML page (finding 12: cannot be changed). */
    CHECK_INT(raw("GET /healthz HTTP/1.1\r\nHost: t\r\nX-@A: v\r\n\r\n", reply, sizeof reply), 400);
    CHECK(strstr(reply, "problem+json") == NULL);
    CHECK_INT(raw("GET /healthz HTTP/1@.1\r\nHost: t\r\n\r\n", reply, sizeof reply), 400);

    /* No false alarm: bare LF line ends, empty and padded values, tabs,
     * a query, a cookie, a body, two requests on one connection. */
    CHECK_INT(raw("GET /healthz HTTP/1.1\nHost: t\nConnection: close\n\n", reply, sizeof reply),
              200);
    snprintf(req, sizeof req,
             "GET /v1/keys?limit=2&cursor= HTTP/1.1\r\nHost:t\r\nX-Empty:\r\nX-Pad: \t v \t\r\n"
             "Cookie: a=1; b=\"2\"\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n",
             admin);
    CHECK_INT(raw(req, reply, sizeof reply), 200);
    snprintf(req, sizeof req,
             "POST /v1/keys HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
             "Content-Length: 17\r\n\r\n{\"role\":\"viewer\"}"
             "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
             admin);
    CHECK_INT(raw(req, reply, sizeof reply), 201);
    CHECK(strstr(reply, "HTTP/1.1 200 ") != NULL); /* the second answer */
    check_alive();
}

/* ---------------------------------------------------------------------------
 * Finding 9: duplicate members in a JSON body.
 * ------------------------------------------------------------------------- */
static int count_keys(void)
{
    support_resp r;
    int n = 0;
    REQUIRE(support_http("GET", u("/v1/keys?limit=100"), admin, NULL, 0, NULL, &r) == 0);
    for (const char *p = strstr(r.body, "\"key_id\""); p; p = strstr(p + 1, "\"key_id\""))
        n++;
    support_resp_free(&r);
    return n;
}

static void test_duplicate_members(void)
{
    support_resp r;
    char field[64] = "", offset[32] = "";
    int before = count_keys();
    /* Regression: this created an admin key (yajl_tree keeps the last). */
    const char *dup = "{\"role\":\"viewer\",\"role\":\"admin\"}";
    REQUIRE(support_http("POST", u("/v1/keys"), admin, dup, strlen(dup), NULL, &r) == 0);
    CHECK_INT(support_is_problem(&r, 400, "invalid-input"), 0);
    CHECK_INT(support_json_str(r.body, "field", field, sizeof field), 0);
    CHECK_STR(field, "role");
    CHECK(strstr(r.body, "\"offset\":17") != NULL);
    CHECK(strstr(r.body, "duplicate key") != NULL);
    support_resp_free(&r);
    const char *dup2 = "{\"name\":\"a\",\"role\":\"viewer\",\"name\":\"b\"}";
    REQUIRE(support_http("POST", u("/v1/keys"), admin, dup2, strlen(dup2), NULL, &r) == 0);
    CHECK_INT(support_is_problem(&r, 400, "invalid-input"), 0);
    support_resp_free(&r);
    CHECK_INT(count_keys(), before); /* no key was made */

    /* Every other JSON body of the API too (they go through ingest's reader). */
    static const struct {
        const char *method, *path, *body;
        const char *key; /* 0 admin, 1 ingest, 2 brand admin */
        int who;
    } bodies[] = {
        {"PUT", "/v1/surgeries/dup",
         "{\"hospital\": \"h\", \"room\": \"r\", \"room\": \"s\", \"procedure\": \"p\", "
         "\"surgeon\": \"x\", \"started_at\": \"2026-11-26T08:15:00Z\", \"fps\": 30, "
         "\"frame_width\": 640, \"frame_height\": 480, \"table\": [[0, 0], [1, 0], [1, 1]]}",
         "room", 1},
        {"PUT", "/v1/catalog/DUP-1",
         "{\"name\": \"n\", \"labels\": [\"a\"], \"unit_cost_cents\": 1, \"single_use\": true, "
         "\"unit_cost_cents\": 2}",
         "unit_cost_cents", 0},
        {"PUT", "/v1/assets/dup",
         "{\"client\": \"c\", \"brand\": \"b\", \"campaign\": \"c\", \"sector\": \"s\", "
         "\"media_type\": \"image\", \"memorability\": 0.5, \"saliency\": {\"x\": 0.1, \"x\": "
         "0.2}}",
         "saliency.x", 2},
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        const char *key = bodies[i].who == 0 ? admin : bodies[i].who == 1 ? ingest : brand_admin;
        REQUIRE(support_http(bodies[i].method, u(bodies[i].path), key, bodies[i].body,
                             strlen(bodies[i].body), NULL, &r) == 0);
        CHECK_INT(support_is_problem(&r, 400, "invalid-input"), 0);
        CHECK_INT(support_json_str(r.body, "field", field, sizeof field), 0);
        CHECK_STR(field, bodies[i].key);
        CHECK(strstr(r.body, "duplicate key") != NULL && strstr(r.body, "\"offset\":") != NULL);
        support_resp_free(&r);
    }
    (void)offset;
}

/* ---------------------------------------------------------------------------
 * Finding 10: repeated and unknown query parameters.
 * ------------------------------------------------------------------------- */
static void expect_query_refused(const char *path, const char *key, const char *method,
                                 const char *field, const char *rule)
{
    support_resp r;
    char got[128] = "";
    REQUIRE(support_http(method, u(path), key, NULL, 0, NULL, &r) == 0);
    int ok = support_is_problem(&r, 400, "invalid-query") == 0 &&
             support_json_str(r.body, "field", got, sizeof got) == 0 && !strcmp(got, field) &&
             strstr(r.body, rule);
    if (!ok)
        fprintf(stderr, "%s %s: %ld %s\n", method, path, r.status, r.body);
    CHECK(ok);
    support_resp_free(&r);
}

static void test_query_parameters(void)
{
    support_resp r;
    /* Regression: first-wins (limit=1 was used, 500 ignored). */
    expect_query_refused("/v1/keys?limit=1&limit=500", admin, "GET", "limit", "more than once");
    expect_query_refused("/v1/keys?limit=1&cursor=&limit=1", admin, "GET", "limit",
                         "more than once");
    expect_query_refused("/v1/surgeries/ab/detections?format=ndjson&format=darknet", ingest, "POST",
                         "format", "more than once");
    expect_query_refused("/v1/surgeries/ab/frames?from=1&to=5&from=2", staff, "GET", "from",
                         "more than once");
    /* Regression: unknown parameters were ignored (a typo changed nothing). */
    expect_query_refused("/v1/keys?limt=1", admin, "GET", "limt", "takes no query parameter");
    expect_query_refused("/v1/surgeries/ab/frames?frm=3", staff, "GET", "frm",
                         "(it takes from, to, limit, cursor)");
    expect_query_refused("/v1/surgeries/ab?verbose", staff, "GET", "verbose", "(it takes none)");
    expect_query_refused("/v1/catalog?sort=sku", staff, "GET", "sort", "takes no query");
    expect_query_refused("/v1/tenant?tenant=x", admin, "GET", "tenant", "takes no query");
    expect_query_refused("/healthz?probe=1", NULL, "GET", "probe", "takes no query");
    expect_query_refused("/v1/keys?LIMIT=1", admin, "GET", "LIMIT", "takes no query");
    expect_query_refused("/v1/brands?sort=count&limit=3&sort=mean", brand_admin, "GET", "sort",
                         "more than once");
    expect_query_refused("/v1/brands/b?histogram=true&hist=1", brand_admin, "GET", "hist",
                         "takes no query");
    expect_query_refused("/v1/sectors?order=asc&cursor=&page=2", brand_admin, "GET", "page",
                         "takes no query");
    /* A refused request with a body is answered before the body is read. */
    expect_query_refused("/v1/assets:batch?dry_run=1", brand_admin, "POST", "dry_run",
                         "takes no query");
    /* The declared ones still work, in any order. */
    REQUIRE(support_http("GET", u("/v1/surgeries/ab/frames?limit=5&to=9&from=0"), staff, NULL, 0,
                         NULL, &r) == 0);
    CHECK_INT(r.status, 200);
    support_resp_free(&r);
    REQUIRE(support_http("GET", u("/v1/keys?limit=1"), admin, NULL, 0, NULL, &r) == 0);
    CHECK_INT(r.status, 200);
    support_resp_free(&r);
}

/* ---------------------------------------------------------------------------
 * Finding 12: libmicrohttpd's own error pages.
 * ------------------------------------------------------------------------- */
static void test_http_layer_refusals(void)
{
    char reply[8192], v[128];
    /* Regression: these were libmicrohttpd's HTML (or a silent close for the
     * space), without Content-Type, nosniff or no-store.  Now problems. */
    CHECK_INT(raw("GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n", reply, sizeof reply), 400);
    CHECK_INT(raw_problem(reply, 400, "missing-host", "Host"), 0);
    CHECK_INT(raw("GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n", reply,
                  sizeof reply),
              400);
    CHECK_INT(raw_problem(reply, 400, "duplicate-header", "Host"), 0);
    CHECK_INT(raw("GET /v1/ten ant HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", reply,
                  sizeof reply),
              400);
    CHECK_INT(raw_problem(reply, 400, "invalid-path", "path"), 0);
    /* HTTP/1.0 needs no Host. */
    CHECK_INT(raw("GET /healthz HTTP/1.0\r\n\r\n", reply, sizeof reply), 200);

    /* What libmicrohttpd 0.9.75 still answers itself: it refuses these
     * before calling anything of ours (a bad Content-Length or chunk size,
     * an HTTP version it does not speak), so the answer is its HTML page
     * with its status and `Connection: close`, and no Content-Type.  Pinned
     * here so docs/formats.md stays true. */
    static const struct {
        const char *req;
        int status;
    } mhd[] = {
        {"POST /v1/keys HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n", 400},
        {"POST /v1/keys HTTP/1.1\r\nHost: t\r\nContent-Length: 12 \r\n\r\n", 400},
        {"POST /v1/keys HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999999\r\n\r\n",
         413},
        {"POST /v1/keys HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
         "Transfer-Encoding: chunked\r\n\r\nzz\r\n",
         400},
        {"POST /v1/keys HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
         "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\n",
         413},
        {"GET /healthz HTTP/2.0\r\nHost: t\r\n\r\n", 505},
        {"GET /healthz HTTP/0.9\r\n\r\n", 505},
    };
    for (size_t i = 0; i < sizeof mhd / sizeof mhd[0]; i++) {
        char req[1024];
        snprintf(req, sizeof req, mhd[i].req, admin); /* a chunked body past a key check */
        int got = raw(req, reply, sizeof reply);
        if (got != mhd[i].status)
            fprintf(stderr, "libmicrohttpd case %zu: %.200s\n", i, reply);
        CHECK_INT(got, mhd[i].status);
        CHECK_INT(raw_header(reply, "Connection", v, sizeof v), 0);
        CHECK(!strcasecmp(v, "close"));
        CHECK(raw_header(reply, "Content-Type", v, sizeof v) != 0);
    }
    check_alive();
}

int main(void)
{
    REQUIRE(support_server_init(&srv, NULL, NULL) == 0);
    REQUIRE(support_server_start(&srv, (char *)NULL) == 0);
    REQUIRE(support_tenant(srv.store, "acme", "hospital") == 0 &&
            support_key(srv.store, "acme", "admin", admin) == 0 &&
            support_key(srv.store, "acme", "ingest", ingest) == 0 &&
            support_key(srv.store, "acme", "staff", staff) == 0);
    REQUIRE(support_tenant(srv.store, "glow", "brand-client") == 0 &&
            support_key(srv.store, "glow", "admin", brand_admin) == 0);
    test_nul_bytes(); /* creates surgery "ab", which the tests below read */
    test_duplicate_members();
    test_query_parameters();
    test_http_layer_refusals();
    CHECK_INT(support_server_stop(&srv), 0);
    support_server_cleanup(&srv);
    return check_finish();
}
