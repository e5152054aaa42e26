/* ingest_spool_test.c -- the spool folder on a real directory (inotify) and
 * store: each file taken once, moved to done/ or failed/, restarts. */
#include "ingest/ingest.h"
#include "tests/check.h"
#include "tests/support/support.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* inotify queues events as the file operations return, so
 * ingest_spool_run(sp, 0) after an operation sees it: no sleeps. */

static char root[128], spool[160];
static store *st;

static void path_of(char *out, size_t n, const char *rel)
{
    snprintf(out, n, "%s/%s", spool, rel);
}

static bool exists(const char *rel)
{
    char p[512];
    path_of(p, sizeof p, rel);
    struct stat s;
    return stat(p, &s) == 0;
}

static void write_file(const char *rel, const char *text)
{
    char p[512];
    path_of(p, sizeof p, rel);
    FILE *f = fopen(p, "wb");
    REQUIRE(f);
    REQUIRE(fwrite(text, 1, strlen(text), f) == strlen(text));
    REQUIRE(fclose(f) == 0);
}

static void copy_fixture(const char *fixture, const char *rel)
{
    char src[512];
    snprintf(src, sizeof src, "%s/%s", SL_FIXTURES, fixture);
    FILE *f = fopen(src, "rb");
    REQUIRE(f);
    char *buf = malloc(1 << 20);
    size_t n = fread(buf, 1, 1 << 20, f);
    fclose(f);
    buf[n] = '\0';
    write_file(rel, buf);
    free(buf);
}

static void mkdir_rel(const char *rel)
{
    char p[512];
    path_of(p, sizeof p, rel);
    REQUIRE(mkdir(p, 0755) == 0);
}

static size_t frames_of(const char *surgery)
{
    schema_key pk;
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(schema_pk_surgery(pk, "acme", surgery, &e) == SL_OK);
    store_query_opts q = {.range = {STORE_RANGE_BEGINS_WITH, "FRAME#", NULL},
                          .limit = STORE_PAGE_MAX};
    store_page page = {0};
    REQUIRE(store_query(st, STORE_ITEMS, pk, &q, &page, &e) == SL_OK);
    size_t n = page.count;
    store_page_free(&page);
    return n;
}

static void put_surgery(const char *id)
{
    const char *body = "{\"hospital\":\"h\",\"room\":\"r\",\"procedure\":\"p\",\"surgeon\":\"s\","
                       "\"started_at\":\"2026-11-26T08:00:00Z\",\"fps\":30,\"frame_width\":640,"
                       "\"frame_height\":480,\"table\":[[0,0],[1,0],[1,1]]}";
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(ingest_surgery_put(st, "acme", id, body, strlen(body), NULL, &e) == SL_OK);
}

typedef struct seen {
    int ok, failed;
    char last_error[512];
} seen;

static void on_file(void *ctx, const char *path, const ingest_summary *sum, const sl_error *e)
{
    seen *s = ctx;
    if (getenv("SL_TEST_VERBOSE"))
        fprintf(stderr, "%s: %s\n", path, sum ? "ok" : e->message);
    if (sum)
        s->ok++;
    else {
        s->failed++;
        snprintf(s->last_error, sizeof s->last_error, "%s", e->message);
    }
}

static void run_once(ingest_spool *sp)
{
    sl_error e;
    sl_error_clear(&e);
    CHECK_INT(ingest_spool_run(sp, 0, &e), SL_OK);
}

static char *read_rel(const char *rel)
{
    char p[512];
    path_of(p, sizeof p, rel);
    FILE *f = fopen(p, "rb");
    if (!f)
        return NULL;
    char *buf = calloc(1, 8192);
    size_t n = fread(buf, 1, 8191, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

int main(void)
{
    REQUIRE(support_tmpdir(root, "ingest-spool") == 0);
    snprintf(spool, sizeof spool, "%s/spool", root);
    char uri[160];
    snprintf(uri, sizeof uri, "sqlite:%s/store.db", root);
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(store_open(uri, NULL, &st, &e) == SL_OK);
    put_surgery("s1");
    put_surgery("s2");
    put_surgery("s3");

    /* waiting before the spool starts: one complete, one still being written */
    REQUIRE(mkdir(spool, 0755) == 0);
    mkdir_rel("acme");
    mkdir_rel("acme/s1");
    copy_fixture("darknet/result.json", "acme/s1/early.json");
    char held[512];
    path_of(held, sizeof held, "acme/s1/held.ndjson");
    int fd = open(held, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    const char *line = "{\"frame\": 50, \"detections\": []}\n";
    REQUIRE(write(fd, line, strlen(line)) == (ssize_t)strlen(line));

    seen s = {0};
    ingest_spool *sp = NULL;
    ingest_spool_options o = {.on_file = on_file, .ctx = &s};
    REQUIRE(ingest_spool_open(st, spool, &o, &sp, &e) == SL_OK);
    run_once(sp);
    CHECK(exists("acme/s1/done/early.json"));
    CHECK(!exists("acme/s1/early.json"));
    CHECK_INT(frames_of("s1"), 4);
    CHECK(exists("acme/s1/held.ndjson")); /* open for writing: left alone */
    CHECK(!exists("acme/s1/done/held.ndjson"));
    close(fd); /* IN_CLOSE_WRITE */
    run_once(sp);
    CHECK(exists("acme/s1/done/held.ndjson"));
    CHECK_INT(frames_of("s1"), 5);

    /* folders made while running; a file written in place; one moved in */
    mkdir_rel("acme/s2");
    mkdir_rel("acme/s3");
    run_once(sp);
    copy_fixture("ndjson/frames.ndjson", "acme/s2/a.ndjson");
    copy_fixture("tfod/output.json", "acme/s3/.b.tfod.json"); /* hidden while written */
    run_once(sp);
    CHECK(exists("acme/s2/done/a.ndjson"));
    CHECK(exists("acme/s3/.b.tfod.json"));
    char from[512], to[512];
    path_of(from, sizeof from, "acme/s3/.b.tfod.json");
    path_of(to, sizeof to, "acme/s3/b.tfod.json");
    REQUIRE(rename(from, to) == 0); /* IN_MOVED_TO */
    run_once(sp);
    CHECK(exists("acme/s3/done/b.tfod.json"));
    CHECK_INT(frames_of("s2"), 4);
    CHECK_INT(frames_of("s3"), 3);

    /* a new tenant with assets; a bad file; a name that says no format */
    mkdir_rel("beta");
    run_once(sp);
    mkdir_rel("beta/assets");
    run_once(sp);
    copy_fixture("assets/assets.ndjson", "beta/assets/scores.ndjson");
    write_file("acme/s2/cut.json", "[{\"frame_id\":1,\"objects\":[]},{\"frame_id\":2,");
    write_file("acme/s2/notes.txt", "hello");
    run_once(sp);
    CHECK(exists("beta/assets/done/scores.ndjson"));
    CHECK(exists("acme/s2/failed/cut.json"));
    char *err_json = read_rel("acme/s2/failed/cut.json.error.json");
    CHECK(err_json && strstr(err_json, "cut off") && strstr(err_json, "\"offset\" : 43") &&
          strstr(err_json, "\"status\" : \"SL_EINVAL\""));
    free(err_json);
    CHECK(exists("acme/s2/failed/notes.txt"));
    err_json = read_rel("acme/s2/failed/notes.txt.error.json");
    CHECK(err_json && strstr(err_json, "cannot tell the format from the name"));
    free(err_json);
    CHECK_INT(frames_of("s2"), 4); /* the bad file stored nothing */
    CHECK_INT(ingest_spool_taken(sp), 7);
    CHECK_INT(ingest_spool_failed(sp), 2);
    CHECK_INT(s.ok, 5);
    CHECK_INT(s.failed, 2);

    /* stop() makes a blocking run return */
    ingest_spool_stop(sp);
    CHECK_INT(ingest_spool_run(sp, -1, &e), SL_OK);
    ingest_spool_close(&sp);

    /* a restart takes nothing again (done/ and failed/ are not watched) */
    seen s2 = {0};
    o.ctx = &s2;
    REQUIRE(ingest_spool_open(st, spool, &o, &sp, &e) == SL_OK);
    run_once(sp);
    CHECK_INT(ingest_spool_taken(sp), 0);
    CHECK_INT(s2.ok + s2.failed, 0);
    /* but a file dropped while it was down is taken */
    ingest_spool_close(&sp);
    copy_fixture("darknet/demo-stream.json", "acme/s1/late.darknet-stream.json");
    REQUIRE(ingest_spool_open(st, spool, &o, &sp, &e) == SL_OK);
    run_once(sp);
    CHECK_INT(ingest_spool_taken(sp), 1);
    CHECK(exists("acme/s1/done/late.darknet-stream.json"));
    ingest_spool_close(&sp);

    store_close(&st);
    support_rmrf(root);
    return check_finish();
}
