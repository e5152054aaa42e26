/* api_ingest_quota_test.c -- what streamed uploads may spool (issue 9,
 * finding 6: 200 concurrent POST .../detections each declaring 1 GiB were all
 * accepted and spooled).  Against the real server: a key's uploads in
 * progress past uploads-per-key are answered 429 while another key's go
 * through; a declared size over what the key may still spool is 429 (507
 * when it alone is over); a chunked body is counted as it comes; a free-disk
 * floor above the disk's free space is 507; nothing of a refused upload is
 * stored; the counts are given back when uploads end.
 *
 * An upload is held "in progress" deterministically: its head goes with
 * Expect: 100-continue, and libmicrohttpd sends 100 Continue only after the
 * head was checked (quota included) and accepted. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../check.h"
#include "ingest_http.h"

#define WAIT_MS 20000

static support_server srv;
static ih_keys a, b; /* tenants "ta" and "tb" */

/* One NDJSON frame line with one detection (about 130 bytes). */
#define LINE                                                                                       \
    "{\"frame\": %d, \"detections\": [{\"label\": \"scalpel\", \"confidence\": 0.5, "              \
    "\"box\": {\"x\": 0.1, \"y\": 0.1, \"w\": 0.2, \"h\": 0.2}}]}\n"

/* count frame lines (frames first..first+count-1) of NDJSON; *len gets the
 * size.  The caller frees. */
static char *ndjson(int first, int count, size_t *len)
{
    size_t cap = (size_t)count * 160 + 1, n = 0;
    char *body = malloc(cap);
    REQUIRE(body != NULL);
    for (int i = 0; i < count; i++)
        n += (size_t)snprintf(body + n, cap - n, LINE, first + i);
    *len = n;
    return body;
}

/* Sends the head of an upload declaring len bytes, with Expect:
 * 100-continue, on a new connection.  Returns the socket (the caller closes
 * it) and the first answer's status in *status (100: accepted, in progress)
 * with its text in reply. */
static int upload_head(const char *surgery, const char *key, size_t len, int *status, char *reply,
                       size_t cap)
{
    char head[1024];
    int fd = support_connect(srv.port);
    REQUIRE(fd >= 0);
    snprintf(head, sizeof head,
             "POST /v1/surgeries/%s/detections?format=ndjson HTTP/1.1\r\nHost: t\r\n"
             "Authorization: Bearer %s\r\nContent-Type: application/x-ndjson\r\n"
             "Content-Length: %zu\r\nExpect: 100-continue\r\n\r\n",
             surgery, key, len);
    *status = support_write_all(fd, head, strlen(head)) == 0
                  ? support_read_response(fd, reply, cap, WAIT_MS)
                  : -1;
    return fd;
}

/* The body of an upload_head() that got 100: its final status. */
static int upload_finish(int fd, const char *body, size_t len)
{
    char reply[4096];
    int status = support_write_all(fd, body, len) == 0
                     ? support_read_response(fd, reply, sizeof reply, WAIT_MS)
                     : -1;
    if (status != 200)
        fprintf(stderr, "upload answered %d: %s\n", status, reply);
    return status;
}

/* A whole upload (Content-Length) of frames first.. of surgery. */
static long upload(const char *surgery, const char *key, int first, int count, char *detail,
                   size_t cap)
{
    size_t len = 0;
    char path[256], *body = ndjson(first, count, &len);
    support_resp r;
    snprintf(path, sizeof path, "/v1/surgeries/%s/detections?format=ndjson", surgery);
    long status = ih_req(&srv, "POST", path, key, body, &r) == 0 ? r.status : -1;
    if (detail) {
        detail[0] = '\0';
        support_json_str(r.body, "detail", detail, cap);
    }
    support_resp_free(&r);
    free(body);
    return status;
}

/* Frames stored for a surgery (-1 when the listing fails). */
static long frames_of(const char *surgery, const char *key)
{
    ih_frames fr;
    long n = ih_get_frames(&srv, key, surgery, 500, NULL, &fr) == 0 ? (long)fr.n : -1;
    ih_frames_free(&fr);
    return n;
}

/* A metric of the server's /metrics page, -1 when absent. */
static double metric(const char *name)
{
    support_resp r;
    double v = -1;
    char url[256];
    snprintf(url, sizeof url, "%s/metrics", srv.url);
    if (support_http("GET", url, NULL, NULL, 0, NULL, &r) == 0 && r.status == 200)
        support_metric(r.body, name, &v);
    support_resp_free(&r);
    return v;
}

/* The problem text of a raw answer holds each of the needles. */
static int says(const char *reply, const char *a1, const char *a2)
{
    return strstr(reply, a1) != NULL && (!a2 || strstr(reply, a2) != NULL);
}

static void start(const char *const *extra)
{
    REQUIRE(support_server_init(&srv, NULL, NULL) == 0);
    REQUIRE(support_server_startv(&srv, extra) == 0);
    REQUIRE(ih_tenant(&srv, "ta", &a) == 0);
    REQUIRE(ih_tenant(&srv, "tb", &b) == 0);
    REQUIRE(ih_put_surgery(&srv, a.ingest, "held") == 0);
    REQUIRE(ih_put_surgery(&srv, a.ingest, "refused") == 0);
    REQUIRE(ih_put_surgery(&srv, b.ingest, "other") == 0);
}

static void stop(void)
{
    CHECK_INT(support_server_stop(&srv), 0);
    support_server_cleanup(&srv);
}

/* Default limits (uploads-per-key 4): a fifth upload of one key while four
 * are in progress is 429; another key's upload still goes through. */
static void test_uploads_per_key(void)
{
    static const char *const extra[] = {"--access-log", "off", NULL};
    char reply[8192];
    size_t len = 0;
    int status = 0, fds[4];
    start(extra);
    char *body = ndjson(1, 20, &len);
    for (int i = 0; i < 4; i++) {
        fds[i] = upload_head("held", a.ingest, len, &status, reply, sizeof reply);
        CHECK_INT(status, 100);
    }
    int fd = upload_head("refused", a.ingest, len, &status, reply, sizeof reply);
    CHECK_INT(status, 429);
    CHECK(says(reply, "application/problem+json", "upload-quota"));
    CHECK(says(reply, "uploads-per-key", "4 uploads in progress"));
    CHECK(strcasestr(reply, "\r\nRetry-After: ") != NULL);
    close(fd);
    /* Another key is not held back by this one's uploads. */
    CHECK_INT(upload("other", b.ingest, 1, 3, NULL, 0), 200);
    /* The four finish; nothing of the refused one was stored. */
    for (int i = 0; i < 4; i++) {
        CHECK_INT(upload_finish(fds[i], body, len), 200);
        close(fds[i]);
    }
    CHECK_INT(frames_of("held", a.staff), 20);
    CHECK_INT(frames_of("refused", a.staff), 0);
    /* Each upload gives its share back before its answer: uploads one after
     * another never find the last one still counted. */
    for (int i = 0; i < 6; i++)
        CHECK_INT(upload("held", a.ingest, 100 + i * 10, 10, NULL, 0), 200);
    CHECK_INT(metric("sightline_uploads_active"), 0);
    CHECK_INT(metric("sightline_uploads_refused_total{limit=\"uploads-per-key\"}"), 1);
    free(body);
    stop();
}

/* A chunked body of frames from first, up to len bytes, made as asked. */
typedef struct gen_ctx {
    int frame;
    size_t left;
} gen_ctx;

static size_t gen_lines(void *ctx, char *buf, size_t cap)
{
    gen_ctx *g = ctx;
    size_t n = 0;
    while (g->left > 0 && cap - n > 160) {
        int w = snprintf(buf + n, cap - n, LINE, g->frame++);
        n += (size_t)w;
        g->left = g->left > (size_t)w ? g->left - (size_t)w : 0;
    }
    return n;
}

/* upload-bytes-per-key 64k: a declared length counts in full at once, a
 * chunked body as it comes; the bytes are given back at the end, also of
 * an upload that was abandoned. */
static void test_bytes_per_key(void)
{
    static const char *const extra[] = {"--access-log", "off", "--upload-bytes-per-key", "64k",
                                        NULL};
    char reply[8192], detail[512], url[512];
    size_t len = 0;
    int status = 0;
    start(extra);
    char *body = ndjson(1, 300, &len); /* ~38 KB: one fits, two do not */
    REQUIRE(len > 32768 && len < 65536);
    int held = upload_head("held", a.ingest, len, &status, reply, sizeof reply);
    CHECK_INT(status, 100);
    int fd = upload_head("refused", a.ingest, len, &status, reply, sizeof reply);
    CHECK_INT(status, 429);
    CHECK(says(reply, "upload-quota", "upload-bytes-per-key"));
    CHECK(strcasestr(reply, "\r\nRetry-After: ") != NULL);
    close(fd);
    /* Larger than a key may spool at all: 507, and no Retry-After. */
    fd = upload_head("refused", a.ingest, 100000, &status, reply, sizeof reply);
    CHECK_INT(status, 507);
    CHECK(says(reply, "upload-quota", "at most 65536"));
    CHECK(strcasestr(reply, "\r\nRetry-After: ") == NULL);
    close(fd);
    /* The other tenant's key has its own quota. */
    CHECK_INT(upload("other", b.ingest, 1, 300, NULL, 0), 200);
    CHECK_INT(upload_finish(held, body, len), 200);
    close(held);
    /* Given back: the same size again is taken. */
    CHECK_INT(upload("held", a.ingest, 2000, 300, NULL, 0), 200);

    /* Chunked, no length declared: refused when it passes the quota.  The
     * answer comes when the body has ended (libmicrohttpd cannot answer
     * earlier); nothing of it is stored. */
    gen_ctx g = {1, 100000};
    support_resp r;
    snprintf(url, sizeof url, "%s/v1/surgeries/refused/detections?format=ndjson", srv.url);
    CHECK(support_post_gen(url, a.ingest, gen_lines, &g, 0, &r) == 0);
    CHECK_INT(support_is_problem(&r, 507, "upload-quota"), 0);
    support_json_str(r.body, "detail", detail, sizeof detail);
    CHECK(strstr(detail, "upload-bytes-per-key") != NULL);
    support_resp_free(&r);
    CHECK_INT(frames_of("refused", a.staff), 0);

    /* An abandoned upload gives its bytes back when the server sees it go. */
    held = upload_head("held", a.ingest, len, &status, reply, sizeof reply);
    CHECK_INT(status, 100);
    close(held);
    long until = support_now_ms() + WAIT_MS;
    while (metric("sightline_uploads_active") != 0 && support_now_ms() < until)
        support_sleep_ms(20);
    CHECK_INT(metric("sightline_upload_reserved_bytes"), 0);
    CHECK_INT(upload("held", a.ingest, 3000, 300, NULL, 0), 200);
    free(body);
    stop();
}

/* upload-free-floor above the disk's free space: every upload is 507, with
 * nothing stored. */
static void test_free_floor(void)
{
    static const char *const extra[] = {"--access-log", "off", "--upload-free-floor", "1000T",
                                        NULL};
    char reply[8192], detail[512];
    int status = 0;
    start(extra);
    CHECK_INT(upload("refused", a.ingest, 1, 3, detail, sizeof detail), 507);
    CHECK(strstr(detail, "upload-free-floor") != NULL);
    int fd = upload_head("refused", a.ingest, 1000, &status, reply, sizeof reply);
    CHECK_INT(status, 507);
    CHECK(says(reply, "application/problem+json", "insufficient-storage"));
    close(fd);
    CHECK_INT(frames_of("refused", a.staff), 0);
    CHECK_INT(metric("sightline_uploads_refused_total{limit=\"upload-free-floor\"}"), 2);
    /* Bodies the server holds (buffered JSON) are not uploads: still fine. */
    CHECK_INT(ih_put_surgery(&srv, a.ingest, "still-writable"), 0);
    stop();
}

int main(void)
{
    test_uploads_per_key();
    test_bytes_per_key();
    test_free_floor();
    return check_finish();
}
