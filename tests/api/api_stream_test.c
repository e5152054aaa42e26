/* api_stream_test.c -- body policies served in-process from a test route table:
 * streamed bodies arrive in pieces, never whole; per-route limits give 413;
 * errors mid-stream carry their offset; state is freed when a client hangs up. */
#include "api/api_int.h"
#include "tests/support/support.h"
#include "tests/check.h"

#include <gnutls/crypto.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STREAM_MAX   (8 << 20)
#define BUFFERED_MAX 1024

typedef struct stream_state {
    gnutls_hash_hd_t sha;
    uint64_t bytes;
    size_t chunks, biggest;
} stream_state;

static atomic_int states_made, states_freed;

static void state_free(void *p)
{
    stream_state *st = p;
    gnutls_hash_deinit(st->sha, NULL);
    free(st);
    atomic_fetch_add(&states_freed, 1);
}

static sl_status on_chunk(api_request *req, const char *data, size_t len, sl_error *err)
{
    sl_status rc = SL_OK;
    stream_state *st = api_state(req);
    if (!st) {
        st = calloc(1, sizeof *st);
        REQUIRE(st && gnutls_hash_init(&st->sha, GNUTLS_DIG_SHA256) == 0);
        api_state_set(req, st, state_free);
        atomic_fetch_add(&states_made, 1);
    }
    /* A body holding '!' is refused at that byte (a parse error, as ingest would). */
    const char *bang = memchr(data, '!', len);
    if (bang) {
        int64_t at = (int64_t)(api_body_received(req) - len) + (bang - data);
        rc = sl_error_set_at(err, SL_EINVAL, "body", at, "'!' at byte %lld", (long long)at);
        goto out;
    }
    gnutls_hash(st->sha, data, len);
    st->bytes += len;
    st->chunks++;
    if (len > st->biggest)
        st->biggest = len;
out:
    return rc;
}

static sl_status stream_done(api_request *req, sl_error *err)
{
    stream_state *st = api_state(req);
    unsigned char digest[32];
    char hex[65];
    yajl_gen g = api_json_new();
    gnutls_hash_output(st->sha, digest);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    yajl_gen_map_open(g);
    api_json_kv_int(g, "bytes", (int64_t)st->bytes);
    api_json_kv_int(g, "chunks", (int64_t)st->chunks);
    api_json_kv_int(g, "biggest", (int64_t)st->biggest);
    api_json_kv_str(g, "sha256", hex);
    api_json_kv_str(g, "format", api_query(req, "format"));
    api_json_kv_str(g, "id", api_param(req, "id"));
    yajl_gen_map_close(g);
    sl_status rc = api_reply_json(req, 200, g, err);
    yajl_gen_free(g);
    return rc;
}

static sl_status buffered(api_request *req, sl_error *err)
{
    size_t len = 0;
    const char *body = api_body(req, &len);
    char text[64];
    snprintf(text, sizeof text, "%zu %s", len, body && strlen(body) == len ? "whole" : "torn");
    return api_reply_bytes(req, 200, "text/plain", text, strlen(text), 0, err);
}

static sl_status file_reply(api_request *req, sl_error *err)
{
    sl_status rc = SL_OK;
    char path[] = "/tmp/sl-api-reply-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return sl_error_set(err, SL_EIO, "mkstemp failed");
    unlink(path);
    REQUIRE(write(fd, "%PDF-1.7 fake", 13) == 13);
    if ((rc = api_reply_fd(req, 200, "application/pdf", fd, 13, err)) != SL_OK ||
        (rc = api_reply_header(req, "Content-Disposition", "attachment; filename=\"report.pdf\"",
                               err)) != SL_OK ||
        (rc = api_reply_header(req, "ETag", "\"v1\"", err)) != SL_OK ||
        (rc = api_reply_header(req, "Cache-Control", "private, max-age=60", err)) != SL_OK)
        return rc;
    /* A header with a line break is refused: no response splitting. */
    sl_error e2;
    sl_error_clear(&e2);
    CHECK_INT(api_reply_header(req, "X-Evil", "a\r\nSet-Cookie: x", &e2), SL_EINTERNAL);
    return rc;
}

static const api_route test_routes[] = {
    {"POST", "/t/{id}/stream", API_PUBLIC, API_KIND_ANY, "format", API_BODY_STREAMED, STREAM_MAX,
     API_RUN_INLINE, NULL, on_chunk, stream_done},
    {"POST", "/t/buffered", API_PUBLIC, API_KIND_ANY, NULL, API_BODY_BUFFERED, BUFFERED_MAX,
     API_RUN_INLINE, NULL, NULL, buffered},
    {"GET", "/t/report.pdf", API_PUBLIC, API_KIND_ANY, NULL, API_BODY_NONE, 0, API_RUN_INLINE, NULL,
     NULL, file_reply},
};
static const api_area test_area = {"test", test_routes, 3};

static char base[128];
static int port;

static void sha_hex(const char *data, size_t len, char hex[65])
{
    unsigned char d[32];
    gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, d);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

static void test_streamed(void)
{
    size_t len = 6 << 20; /* 6 MiB */
    char *body = malloc(len), want[65], got[65] = "", url[256];
    support_resp r;
    for (size_t i = 0; i < len; i++)
        body[i] = (char)('a' + i % 26);
    sha_hex(body, len, want);
    snprintf(url, sizeof url, "%s/t/s-1/stream?format=darknet", base);
    REQUIRE(support_http("POST", url, NULL, body, len, NULL, &r) == 0);
    CHECK_INT(r.status, 200);
    support_json_str(r.body, "sha256", got, sizeof got);
    CHECK_STR(got, want);
    char fmt[32] = "", id[32] = "";
    support_json_str(r.body, "format", fmt, sizeof fmt);
    support_json_str(r.body, "id", id, sizeof id);
    CHECK_STR(fmt, "darknet");
    CHECK_STR(id, "s-1");
    /* Pieces, never the whole: each piece is bounded by the connection's buffer. */
    const char *b = strstr(r.body, "\"biggest\":");
    const char *c = strstr(r.body, "\"chunks\":");
    CHECK(b && atol(b + 10) > 0 && atol(b + 10) <= 256 * 1024);
    CHECK(c && atol(c + 9) >= 24);
    support_resp_free(&r);
    free(body);
}

static void test_streamed_chunked_and_limits(void)
{
    char head[512], reply[4096];
    /* Chunked upload within the limit. */
    snprintf(head, sizeof head,
             "POST /t/c/stream HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
             "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    CHECK(support_raw(port, head, strlen(head), reply, sizeof reply, 3000) > 0);
    char want[65];
    sha_hex("hello world", 11, want);
    CHECK(strstr(reply, want) != NULL);

    /* Declared over the route's 8 MiB: 413 from the head alone. */
    snprintf(head, sizeof head,
             "POST /t/c/stream HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n", STREAM_MAX + 1);
    CHECK(support_raw(port, head, strlen(head), reply, sizeof reply, 3000) > 0);
    CHECK(!strncmp(reply, "HTTP/1.1 413 ", 13));
    CHECK(strstr(reply, "body-too-large") != NULL);

    /* Buffered: whole in the handler within 1 KiB, 413 past it when chunked. */
    snprintf(head, sizeof head,
             "POST /t/buffered HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789");
    CHECK(support_raw(port, head, strlen(head), reply, sizeof reply, 2000) > 0);
    CHECK(strstr(reply, "\r\n\r\n10 whole") != NULL);
    int fd = support_connect(port);
    REQUIRE(fd >= 0);
    const char *h2 = "POST /t/buffered HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    support_write_all(fd, h2, strlen(h2));
    char chunk[600];
    int n = snprintf(chunk, sizeof chunk, "200\r\n");
    memset(chunk + n, 'x', 512);
    memcpy(chunk + n + 512, "\r\n", 2);
    for (int i = 0; i < 3; i++)
        support_write_all(fd, chunk, (size_t)n + 514);
    support_write_all(fd, "0\r\n\r\n", 5);
    CHECK_INT(support_read_response(fd, reply, sizeof reply, 3000), 413);
    close(fd);
}

static void test_handler_error_mid_stream(void)
{
    size_t len = 1 << 20;
    char *body = malloc(len), url[256], field[32] = "";
    support_resp r;
    memset(body, 'z', len);
    body[700000] = '!';
    snprintf(url, sizeof url, "%s/t/e/stream", base);
    REQUIRE(support_http("POST", url, NULL, body, len, NULL, &r) == 0);
    CHECK_INT(support_is_problem(&r, 400, "invalid-input"), 0);
    CHECK(strstr(r.body, "\"offset\":700000") != NULL);
    support_json_str(r.body, "field", field, sizeof field);
    CHECK_STR(field, "body");
    support_resp_free(&r);
    free(body);
}

static void test_state_freed_on_abort(void)
{
    char head[256], data[4096];
    int made = atomic_load(&states_made);
    snprintf(head, sizeof head,
             "POST /t/a/stream HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n");
    int fd = support_connect(port);
    REQUIRE(fd >= 0);
    memset(data, 'q', sizeof data);
    support_write_all(fd, head, strlen(head));
    support_write_all(fd, data, sizeof data);
    for (int i = 0; i < 250 && atomic_load(&states_made) == made; i++) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    CHECK_INT(atomic_load(&states_made), made + 1);
    close(fd); /* hang up mid-body */
    /* Every state made so far, this one included, gets freed (earlier
     * requests may finish their own cleanup meanwhile). */
    for (int i = 0; i < 250 && atomic_load(&states_freed) != atomic_load(&states_made); i++) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    CHECK_INT(atomic_load(&states_freed), atomic_load(&states_made));
}

static void test_file_reply(void)
{
    support_resp r;
    char url[256], cd[128] = "", etag[32] = "", cc[64] = "";
    snprintf(url, sizeof url, "%s/t/report.pdf", base);
    REQUIRE(support_http("GET", url, NULL, NULL, 0, NULL, &r) == 0);
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body, "%PDF-1.7 fake");
    support_header(&r, "Content-Disposition", cd, sizeof cd);
    support_header(&r, "ETag", etag, sizeof etag);
    support_header(&r, "Cache-Control", cc, sizeof cc);
    CHECK_STR(cd, "attachment; filename=\"report.pdf\"");
    CHECK_STR(etag, "\"v1\"");
    CHECK_STR(cc, "private, max-age=60"); /* the handler's, not the default no-store */
    support_resp_free(&r);
}

int main(void)
{
    char dir[128], uri[256];
    store *st = NULL;
    api_server *srv = NULL;
    api_config cfg;
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(support_tmpdir(dir, "api") == 0);
    snprintf(uri, sizeof uri, "sqlite:%s/sl.db", dir);
    REQUIRE(store_open(uri, NULL, &st, &e) == SL_OK);
    api_config_defaults(&cfg);
    snprintf(cfg.listen, sizeof cfg.listen, "127.0.0.1:0");
    cfg.access_log = NULL;
    cfg.threads = 2;
    const api_area *areas[] = {&test_area, NULL};
    REQUIRE(api__server_start_areas(&cfg, st, areas, &srv, &e) == SL_OK);
    port = api_server_port(srv);
    snprintf(base, sizeof base, "%s", api_server_url(srv));

    test_streamed();
    test_streamed_chunked_and_limits();
    test_handler_error_mid_stream();
    test_state_freed_on_abort();
    test_file_reply();

    api_server_stop(srv);
    api_server_free(&srv);
    CHECK(srv == NULL);
    /* Every state made was freed. */
    CHECK_INT(atomic_load(&states_freed), atomic_load(&states_made));
    store_close(&st);
    support_rmrf(dir);
    return check_finish();
}
