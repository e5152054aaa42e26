/* api_http_test.c -- the real server against every kind of bad input of issue 3
 * (malformed and oversized heads and bodies, path bytes, dot segments, %2F,
 * ambiguous lengths, unknown methods), problems, request ids, keep-alive. */
#include "tests/support/support.h"
#include "tests/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

static support_server srv;
static char admin[128];
static char url[256];

static const char *u(const char *path)
{
    snprintf(url, sizeof url, "%s%s", srv.url, path);
    return url;
}

/* The server still answers after whatever came before. */
static void check_alive(void)
{
    support_resp r;
    CHECK_INT(support_http("GET", u("/healthz"), NULL, NULL, 0, NULL, &r), 0);
    CHECK_INT(r.status, 200);
    support_resp_free(&r);
}

static int starts_with_status(const char *reply, int status)
{
    char want[32];
    snprintf(want, sizeof want, "HTTP/1.1 %d ", status);
    return !strncmp(reply, want, strlen(want));
}

/* The JSON body of a raw reply (after the head), for problem checks. */
static const char *raw_body(const char *reply)
{
    const char *b = strstr(reply, "\r\n\r\n");
    return b ? b + 4 : "";
}

static void test_healthz_and_request_id(void)
{
    support_resp r;
    char rid[128] = "", store[64] = "";
    REQUIRE(support_http("GET", u("/healthz"), NULL, NULL, 0, NULL, &r) == 0);
    CHECK_INT(r.status, 200);
    CHECK_INT(support_json_str(r.body, "store", store, sizeof store), 0);
    CHECK_STR(store, "sqlite");
    CHECK_INT(support_header(&r, "X-Request-Id", rid, sizeof rid), 0);
    CHECK(strlen(rid) > 8);
    support_resp_free(&r);

    /* A caller's plain request id is kept; a hostile one is replaced. */
    REQUIRE(support_http("GET", u("/nope"), NULL, NULL, 0, "X-Request-Id: trace-42.a", &r) == 0);
    CHECK_INT(support_is_problem(&r, 404, "no-route"), 0);
    CHECK_INT(support_header(&r, "X-Request-Id", rid, sizeof rid), 0);
    CHECK_STR(rid, "trace-42.a");
    support_resp_free(&r);
    REQUIRE(support_http("GET", u("/nope"), NULL, NULL, 0, "X-Request-Id: a\"b{}", &r) == 0);
    CHECK_INT(support_header(&r, "X-Request-Id", rid, sizeof rid), 0);
    CHECK(strcmp(rid, "a\"b{}") != 0 && strlen(rid) > 8);
    support_resp_free(&r);
    /* The same id is in the access log line of that request. */
    CHECK_INT(support_log_count(&srv, "\"request_id\":\"trace-42.a\"", 1), 1);
    CHECK(support_log_count(&srv, "\"status\":404", 2) >= 2);
}

static void test_404_405_501(void)
{
    support_resp r;
    char allow[64] = "", reply[4096];
    REQUIRE(support_http("GET", u("/v1/nothing/here"), admin, NULL, 0, NULL, &r) == 0);
    CHECK_INT(support_is_problem(&r, 404, "no-route"), 0);
    support_resp_free(&r);
    REQUIRE(support_http("DELETE", u("/v1/tenant"), admin, NULL, 0, NULL, &r) == 0);
    CHECK_INT(support_is_problem(&r, 405, "method-not-allowed"), 0);
    CHECK_INT(support_header(&r, "Allow", allow, sizeof allow), 0);
    CHECK_STR(allow, "GET, HEAD");
    support_resp_free(&r);
    /* An unknown method: 501, and the connection stays usable. */
    const char *frob = "FROB /v1/tenant HTTP/1.1\r\nHost: t\r\n\r\n"
                       "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    CHECK(support_raw(srv.port, frob, strlen(frob), reply, sizeof reply, 3000) > 0);
    CHECK(starts_with_status(reply, 501));
    CHECK(strstr(reply, "unknown-method") != NULL);
    CHECK(strstr(reply + 10, "HTTP/1.1 200 ") != NULL);
}

/* Sends req on a new connection and reads one answer into reply: its
 * status, -1 when none came in time.  *closed_after (when not NULL) tells
 * whether the server then closed the connection (within 5 s). */
static int exchange(const char *req, size_t len, char *reply, size_t cap, int *closed_after)
{
    int fd = support_connect(srv.port);
    REQUIRE(fd >= 0);
    (void)support_write_all(fd, req, len); /* a refusal may come before the last byte */
    int status = support_read_response(fd, reply, cap, 10000);
    if (closed_after)
        *closed_after = status > 0 && support_wait_closed(fd, 5000) == 1;
    close(fd);
    return status;
}

/* A JSON string's text ("" when v is absent or not a string). */
static const char *str_of(yajl_val v)
{
    const char *s = v ? YAJL_GET_STRING(v) : NULL;
    return s ? s : "";
}

/* Whether req is answered by closing the connection, no byte sent back. */
static int closed_unanswered(const char *req)
{
    int fd = support_connect(srv.port);
    REQUIRE(fd >= 0);
    (void)support_write_all(fd, req, strlen(req));
    int closed = support_wait_closed(fd, 10000) == 1;
    close(fd);
    return closed;
}

/* A problem answer in a raw reply: status, slug, and field (NULL: none). */
static int raw_problem(const char *reply, int status, const char *slug, const char *field)
{
    char type[128], want[160] = "", err[128];
    snprintf(type, sizeof type, "https://sightline.dev/problems/%s", slug);
    yajl_val v = yajl_tree_parse(raw_body(reply), err, sizeof err);
    const char *tp[] = {"type", NULL}, *fp[] = {"field", NULL};
    yajl_val t = v ? yajl_tree_get(v, tp, yajl_t_string) : NULL;
    yajl_val f = v ? yajl_tree_get(v, fp, yajl_t_string) : NULL;
    int ok = starts_with_status(reply, status) && strstr(reply, "application/problem+json") &&
             !strcmp(str_of(t), type) && (field ? !strcmp(str_of(f), field) : f == NULL);
    if (!ok) {
        snprintf(want, sizeof want, "%d %s field %s", status, slug, field ? field : "(none)");
        fprintf(stderr, "expected a problem %s, got: %.400s\n", want, reply);
    }
    if (v)
        yajl_tree_free(v);
    return ok;
}

static void test_malformed_heads(void)
{
    char reply[4096];
    int closed = 0;
    /* No request line: closed by libmicrohttpd without an answer. */
    CHECK(closed_unanswered("GARBAGE\r\n\r\n"));
    CHECK(closed_unanswered("GET\r\n\r\n"));
    /* libmicrohttpd's own answers (docs/security.md), then it closes. */
    const char *v99 = "GET / HTTP/9.9\r\nHost: t\r\n\r\n";
    CHECK_INT(exchange(v99, strlen(v99), reply, sizeof reply, &closed), 505);
    CHECK(strcasestr(reply, "\r\nConnection: close\r\n") && closed);
    const char *colon = "GET /healthz HTTP/1.1\r\nHost: t\r\nNo colon here\r\n\r\n";
    CHECK_INT(exchange(colon, strlen(colon), reply, sizeof reply, &closed), 400);
    CHECK(strcasestr(reply, "\r\nConnection: close\r\n") && closed);
    /* Ours: a problem naming what is wrong. */
    const char *name = "GET /healthz HTTP/1.1\r\nHost: t\r\nBad Name: x\r\n\r\n";
    CHECK_INT(exchange(name, strlen(name), reply, sizeof reply, NULL), 400);
    CHECK(raw_problem(reply, 400, "malformed-header", "headers"));
    CHECK(strstr(reply, "header name \\\"Bad Name\\\" is not a token") != NULL);
    /* HTTP/1.1 without Host. */
    const char *nohost = "GET /healthz HTTP/1.1\r\n\r\n";
    CHECK_INT(exchange(nohost, strlen(nohost), reply, sizeof reply, NULL), 400);
    CHECK(raw_problem(reply, 400, "missing-host", "Host"));
    check_alive();
}

static void test_oversized_heads(void)
{
    char reply[8192];
    /* Over max-header-bytes (4096) but within libmicrohttpd's pool: our 431. */
    size_t big = 6000;
    char *req = malloc(big + 256);
    int n = snprintf(req, 256, "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: ");
    memset(req + n, 'a', big);
    memcpy(req + n + big, "\r\n\r\n", 5);
    CHECK(support_raw(srv.port, req, strlen(req), reply, sizeof reply, 3000) > 0);
    CHECK(starts_with_status(reply, 431));
    CHECK(strstr(reply, "application/problem+json") != NULL);
    CHECK(strstr(raw_body(reply), "headers-too-large") != NULL);
    free(req);
    /* Far over (not in the connection's buffer): libmicrohttpd's own 431,
     * then it closes. */
    big = 200000;
    req = malloc(big + 256);
    n = snprintf(req, 256, "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: ");
    memset(req + n, 'a', big);
    memcpy(req + n + big, "\r\n\r\n", 5);
    int closed = 0;
    CHECK_INT(exchange(req, strlen(req), reply, sizeof reply, &closed), 431);
    CHECK(strcasestr(reply, "\r\nConnection: close\r\n") && closed);
    free(req);
    check_alive();
}

static void test_body_too_large_before_read(void)
{
    char head[512], reply[4096];
    /* Only the head is sent: the 413 must come without the body. */
    snprintf(head, sizeof head,
             "POST /v1/keys HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
             "Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n",
             admin);
    CHECK(support_raw(srv.port, head, strlen(head), reply, sizeof reply, 3000) > 0);
    CHECK(starts_with_status(reply, 413));
    CHECK(strstr(raw_body(reply), "body-too-large") != NULL);
    CHECK(strstr(raw_body(reply), "100000000") != NULL);
    /* A body on a route that takes none. */
    snprintf(head, sizeof head,
             "GET /v1/tenant HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
             "Content-Length: 5\r\n\r\nhello",
             admin);
    CHECK(support_raw(srv.port, head, strlen(head), reply, sizeof reply, 3000) > 0);
    CHECK(starts_with_status(reply, 413));
    CHECK(strstr(raw_body(reply), "takes no request body") != NULL);
}

/* Sends `total` bytes of body as chunks of at most 1000 (spaces). */
static int send_chunks(int fd, uint64_t total)
{
    char chunk[1100];
    int rc = 0;
    for (uint64_t sent = 0; rc == 0 && sent < total;) {
        size_t n = total - sent < 1000 ? (size_t)(total - sent) : 1000;
        int h = snprintf(chunk, sizeof chunk, "%zx\r\n", n);
        memset(chunk + h, ' ', n);
        memcpy(chunk + h + n, "\r\n", 2);
        rc = support_write_all(fd, chunk, (size_t)h + n + 2);
        sent += n;
    }
    return rc;
}

static void test_chunked_too_large(void)
{
    char head[512], reply[4096];
    /* 8 chunks of 1000 bytes against the 4096-byte limit of POST /v1/keys. */
    snprintf(head, sizeof head,
             "POST /v1/keys HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
             "Transfer-Encoding: chunked\r\n\r\n",
             admin);
    int fd = support_connect(srv.port);
    REQUIRE(fd >= 0);
    CHECK_INT(support_write_all(fd, head, strlen(head)), 0);
    CHECK_INT(send_chunks(fd, 8000), 0);
    CHECK_INT(support_write_all(fd, "0\r\n\r\n", 5), 0);
    CHECK_INT(support_read_response(fd, reply, sizeof reply, 10000), 413);
    CHECK(strstr(raw_body(reply), "body-too-large") != NULL);
    close(fd);

    /* Past the limit the body is read and dropped up to the drain allowance
     * (drain-bytes, 65536 here), then the connection is closed.  Exactly at
     * the allowance the server has read every byte and is still there: the
     * end of the body brings the 413. */
    const uint64_t allowance = 4096 + 65536; /* the route's limit + drain-bytes */
    fd = support_connect(srv.port);
    REQUIRE(fd >= 0);
    CHECK_INT(support_write_all(fd, head, strlen(head)), 0);
    CHECK_INT(send_chunks(fd, allowance), 0);
    CHECK_INT(support_write_all(fd, "0\r\n\r\n", 5), 0);
    CHECK_INT(support_read_response(fd, reply, sizeof reply, 10000), 413);
    CHECK(strstr(raw_body(reply), "body-too-large") != NULL);
    close(fd);
    /* One byte more and the server closes the connection, with no answer:
     * well inside the idle timeout (300 s here), which would close it too. */
    fd = support_connect(srv.port);
    REQUIRE(fd >= 0);
    CHECK_INT(support_write_all(fd, head, strlen(head)), 0);
    CHECK_INT(send_chunks(fd, allowance + 1), 0);
    long t0 = support_now_ms();
    int closed = support_wait_closed(fd, 20000);
    CHECK_INT(closed, 1);
    fprintf(stderr, "drain: %s %ld ms after the byte past the allowance\n",
            closed == 1 ? "closed" : "still open", support_now_ms() - t0);
    close(fd);
    check_alive();
}

static void test_ambiguous_length(void)
{
    char reply[4096];
    const char *cases[] = {
        /* conflicting: "hello" then a smuggled request in the second length */
        "POST /v1/keys HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 46\r\n\r\n"
        "helloGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
        /* duplicate, equal */
        "POST /v1/keys HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
        /* both framings */
        "POST /v1/keys HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nTransfer-Encoding: "
        "chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(support_raw(srv.port, cases[i], strlen(cases[i]), reply, sizeof reply, 2000) > 0);
        CHECK(starts_with_status(reply, 400));
        CHECK(strstr(raw_body(reply), "ambiguous-body-length") != NULL);
        /* Nothing after the refusal was taken as a request. */
        CHECK(strstr(reply + 8, "HTTP/1.1") == NULL);
    }
    /* A transfer coding other than chunked: 501 naming it, then closed (the
     * body's length is unknown). */
    const char *gzip = "POST /v1/keys HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n";
    int closed = 0;
    CHECK_INT(exchange(gzip, strlen(gzip), reply, sizeof reply, &closed), 501);
    CHECK(raw_problem(reply, 501, "unsupported-transfer-encoding", NULL));
    CHECK(strstr(raw_body(reply), "Transfer-Encoding \\\"gzip\\\" is not supported") != NULL);
    CHECK(strcasestr(reply, "\r\nConnection: close\r\n") && closed);
}

static void test_path_bytes(void)
{
    char reply[4096];
    const char *cases[] = {
        "GET /v1/\x01tenant HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /v1/tenant%00 HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /v1/%C3%28 HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /v1/\xff\xfe HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /v1/ten%ZZant HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /v1/../v1/tenant HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /v1/%2e%2e/healthz HTTP/1.1\r\nHost: t\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(support_raw(srv.port, cases[i], strlen(cases[i]), reply, sizeof reply, 2000) > 0);
        int ok = starts_with_status(reply, 400) && strstr(raw_body(reply), "invalid-path");
        if (!ok)
            fprintf(stderr, "path case %zu: %.200s\n", i, reply);
        CHECK(ok);
    }
}

static void test_path_params(void)
{
    support_resp r;
    char field[64] = "";
    /* %2F decodes inside the parameter and is refused there. */
    REQUIRE(support_http("GET", u("/v1/keys/a%2Fb"), admin, NULL, 0, NULL, &r) == 0);
    CHECK_INT(support_is_problem(&r, 400, "invalid-path-parameter"), 0);
    CHECK_INT(support_json_str(r.body, "field", field, sizeof field), 0);
    CHECK_STR(field, "key_id");
    support_resp_free(&r);
    REQUIRE(support_http("GET", u("/v1/keys/..%2F..%2Fx"), admin, NULL, 0, NULL, &r) == 0);
    CHECK_INT(support_is_problem(&r, 400, "invalid-path-parameter"), 0);
    support_resp_free(&r);
    REQUIRE(support_http("GET", u("/v1/keys/a%23b"), admin, NULL, 0, NULL, &r) == 0); /* '#' */
    CHECK_INT(support_is_problem(&r, 400, "invalid-path-parameter"), 0);
    support_resp_free(&r);
    /* Well-formed but absent: 404 from the handler. */
    REQUIRE(support_http("GET", u("/v1/keys/0000000000000000"), admin, NULL, 0, NULL, &r) == 0);
    CHECK_INT(support_is_problem(&r, 404, "not-found"), 0);
    support_resp_free(&r);
}

static void test_query_errors(void)
{
    support_resp r;
    char field[64] = "";
    REQUIRE(support_http("GET", u("/v1/keys?limit=abc"), admin, NULL, 0, NULL, &r) == 0);
    CHECK_INT(support_is_problem(&r, 400, "invalid-input"), 0);
    CHECK_INT(support_json_str(r.body, "field", field, sizeof field), 0);
    CHECK_STR(field, "limit");
    support_resp_free(&r);
    REQUIRE(support_http("GET", u("/v1/keys?limit=1000"), admin, NULL, 0, NULL, &r) == 0);
    CHECK_INT(support_is_problem(&r, 400, "invalid-input"), 0);
    support_resp_free(&r);
    REQUIRE(support_http("GET", u("/v1/keys?cursor=%ZZ"), admin, NULL, 0, NULL, &r) == 0);
    CHECK_INT(support_is_problem(&r, 400, "invalid-query"), 0);
    support_resp_free(&r);
    REQUIRE(support_http("GET", u("/v1/keys?cursor=notacursor"), admin, NULL, 0, NULL, &r) == 0);
    CHECK_INT(support_is_problem(&r, 400, "invalid-input"), 0);
    support_resp_free(&r);
    REQUIRE(support_http("GET", u("/v1/tenant?x=%01"), admin, NULL, 0, NULL, &r) == 0);
    CHECK_INT(support_is_problem(&r, 400, "invalid-query"), 0);
    support_resp_free(&r);
}

/* One connection answers many requests, pipelined or not, without closing. */
static void test_keep_alive(void)
{
    char req[512], reply[8192];
    int fd = support_connect(srv.port);
    REQUIRE(fd >= 0);
    int answered = 0;
    for (int i = 0; i < 60; i++) {
        const char *path = i % 3 == 0 ? "/healthz" : i % 3 == 1 ? "/v1/tenant" : "/missing";
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n\r\n",
                 path, admin);
        if (support_write_all(fd, req, strlen(req)) != 0)
            break;
        int status = support_read_response(fd, reply, sizeof reply, 3000);
        if (status != (i % 3 == 2 ? 404 : 200))
            break;
        if (strcasestr(reply, "Connection: close"))
            break;
        answered++;
    }
    CHECK_INT(answered, 60);
    /* Pipelined: three requests in one write, three answers in order. */
    snprintf(req, sizeof req,
             "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\n\r\n"
             "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK_INT(support_write_all(fd, req, strlen(req)), 0);
    size_t n = 0;
    reply[0] = '\0';
    while (n + 1 < sizeof reply) {
        const char *third = strstr(reply, "HTTP/1.1 ");
        for (int k = 0; k < 2 && third; k++)
            third = strstr(third + 1, "HTTP/1.1 ");
        if (third && strstr(third, "\r\n\r\n") &&
            strlen(strstr(third, "\r\n\r\n")) >= 4 + 10) /* the /healthz body is longer */
            break;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 3000) <= 0)
            break;
        ssize_t got = recv(fd, reply + n, sizeof reply - 1 - n, 0);
        if (got <= 0)
            break;
        n += (size_t)got;
        reply[n] = '\0';
    }
    const char *a1 = strstr(reply, "HTTP/1.1 200 ");
    const char *a2 = a1 ? strstr(a1 + 1, "HTTP/1.1 404 ") : NULL;
    const char *a3 = a2 ? strstr(a2 + 1, "HTTP/1.1 200 ") : NULL;
    CHECK(a1 == reply && a2 != NULL && a3 != NULL);
    close(fd);
}

static void test_head(void)
{
    support_resp r;
    REQUIRE(support_http("HEAD", u("/v1/tenant"), admin, NULL, 0, NULL, &r) == 0);
    CHECK_INT(r.status, 200);
    CHECK_INT(r.len, 0);
    support_resp_free(&r);
}

static void test_problem_bytes_escaped(void)
{
    char reply[4096], err[128];
    /* A method of raw high bytes: echoed in the detail, as valid JSON. */
    const char *m = "G\xc3\x28T /v1/tenant HTTP/1.1\r\nHost: t\r\n\r\n";
    CHECK_INT(exchange(m, strlen(m), reply, sizeof reply, NULL), 501);
    CHECK(raw_problem(reply, 501, "unknown-method", NULL)); /* parsed: valid JSON */
    /* The bytes that are not UTF-8 as U+FFFD. */
    CHECK(strstr(raw_body(reply), "method \\\"G\xef\xbf\xbd(T\\\" is not implemented") != NULL);
    /* The access log stays valid JSON line by line, whatever was sent. */
    support_log_count(&srv, "\"path\":\"/v1/tenant\"", 20); /* flushed */
    FILE *f = fopen(srv.log_path, "r");
    REQUIRE(f != NULL);
    char *line = NULL;
    size_t cap = 0;
    int lines = 0, bad = 0;
    for (ssize_t len; (len = getline(&line, &cap, f)) > 0;) {
        /* The server is still writing: its last line may be cut where its
         * buffer was flushed, and ends with the next flush. */
        if (line[len - 1] != '\n')
            break;
        yajl_val v = yajl_tree_parse(line, err, sizeof err);
        lines++;
        bad += v == NULL;
        if (!v)
            fprintf(stderr, "access log line %d is not JSON (%s): %.300s\n", lines, err, line);
        if (v)
            yajl_tree_free(v);
        CHECK(strstr(line, admin + 20) == NULL); /* no secret in the log */
        CHECK(strstr(line, "limit=") == NULL);   /* no query string either */
    }
    free(line);
    fclose(f);
    CHECK(lines > 20);
    CHECK_INT(bad, 0);
}

static void test_metrics(void)
{
    support_resp r;
    REQUIRE(support_http("GET", u("/metrics"), NULL, NULL, 0, NULL, &r) == 0);
    CHECK_INT(r.status, 200);
    CHECK(strstr(r.body, "sightline_http_requests_total{method=\"GET\",route=\"/healthz\","
                         "status=\"200\"}") != NULL);
    CHECK(strstr(r.body, "route=\"(unmatched)\",status=\"404\"}") != NULL);
    CHECK(strstr(r.body, "sightline_http_request_duration_seconds_bucket{method=\"GET\","
                         "route=\"/v1/tenant\",le=\"+Inf\"}") != NULL);
    CHECK(strstr(r.body, "sightline_http_in_flight_requests 1\n") != NULL); /* this one */
    CHECK(strstr(r.body, "sightline_store_errors_total{status=\"SL_EIO\"} 0") != NULL);
    /* The feed lag comes through the metrics hook (cmd/serve.c). */
    CHECK(strstr(r.body, "\nsightline_feed_lag_seconds ") != NULL);
    support_resp_free(&r);
}

int main(void)
{
    REQUIRE(support_server_init(&srv, NULL, NULL) == 0);
    REQUIRE(support_server_start(&srv, "--max-header-bytes", "4096", "--drain-bytes", "65536",
                                 "--idle-timeout", "300", (char *)NULL) == 0);
    REQUIRE(support_tenant(srv.store, "acme", "hospital") == 0 &&
            support_key(srv.store, "acme", "admin", admin) == 0);
    test_healthz_and_request_id();
    test_404_405_501();
    test_malformed_heads();
    test_oversized_heads();
    test_body_too_large_before_read();
    test_chunked_too_large();
    test_ambiguous_length();
    test_path_bytes();
    test_path_params();
    test_query_errors();
    test_keep_alive();
    test_head();
    test_problem_bytes_escaped();
    test_metrics();
    CHECK_INT(support_server_stop(&srv), 0); /* graceful, and clean under the sanitizers */
    support_server_cleanup(&srv);
    return check_finish();
}
