/* api_ingest_spool_test.c -- `serve --spool DIR --upload-dir DIR2`: a file
 * dropped while serving is ingested and moved to done/ (a bad one to failed/,
 * with an error file naming the fault and where), a surgery folder swapped
 * for a link to an outside folder while the watcher is busy is not followed
 * (issue 9), uploads leave nothing in DIR2, a missing DIR2 is a 503, clean
 * stop.  `realdata`, its own ctest entry (skipped without ../shared/realdata):
 * a real detector's console text dropped in the spool is refused the same
 * way. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "../check.h"
#include "../realdata.h"
#include "ingest_http.h"

/* Copies src to dir/.name, then renames it to dir/name (a complete file
 * appears at once, as the spool expects). */
static int drop(const char *src, const char *dir, const char *name)
{
    size_t len = 0;
    char tmp[1024], dst[1024];
    char *data = support_read_file(src, &len);
    snprintf(tmp, sizeof tmp, "%s/.%s", dir, name);
    snprintf(dst, sizeof dst, "%s/%s", dir, name);
    FILE *f = data ? fopen(tmp, "wb") : NULL;
    int rc = f && fwrite(data, 1, len, f) == len ? 0 : -1;
    if (f && fclose(f) != 0)
        rc = -1;
    free(data);
    return rc == 0 ? rename(tmp, dst) : -1;
}

/* Writes a large NDJSON input (frames with one detection each) to
 * dir/.name, then renames it to dir/name: it keeps the watcher busy. */
static int drop_large(const char *dir, const char *name, int frames)
{
    char tmp[1024], dst[1024];
    snprintf(tmp, sizeof tmp, "%s/.%s", dir, name);
    snprintf(dst, sizeof dst, "%s/%s", dir, name);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return -1;
    for (int i = 0; i < frames; i++)
        fprintf(f,
                "{\"frame\": %d, \"detections\": [{\"label\": \"scalpel\", \"confidence\": "
                "0.9, \"box\": {\"x\": 0.1, \"y\": 0.1, \"w\": 0.2, \"h\": 0.2}}]}\n",
                i);
    return fclose(f) == 0 ? rename(tmp, dst) : -1;
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static int entries(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d)
        closedir(d);
    return d ? n : -1;
}

/* A JSON string's text ("" when v is absent or not a string). */
static const char *str_of(yajl_val v)
{
    const char *s = v ? YAJL_GET_STRING(v) : NULL;
    return s ? s : "";
}

/* Waits (60 s at most) for failed/NAME and failed/NAME.error.json in sdir,
 * then checks the error file: JSON naming the file, the status, a message
 * holding `message`, the member `field` (NULL: none expected) and the byte
 * `offset`, and when it failed; the file itself is moved there unchanged
 * (same size as src). */
static void check_failed(const char *sdir, const char *name, const char *src, const char *status,
                         const char *message, const char *field, long long offset)
{
    char path[1024], err[256];
    snprintf(path, sizeof path, "%s/failed/%s.error.json", sdir, name);
    for (int i = 0; i < 1200 && !exists(path); i++)
        support_sleep_ms(50);
    size_t len = 0;
    char *text = support_read_file(path, &len);
    REQUIRE(text != NULL);
    yajl_val v = yajl_tree_parse(text, err, sizeof err);
    if (!v)
        fprintf(stderr, "%s is not JSON (%s): %s\n", path, err, text);
    REQUIRE(v != NULL);
    const char *fp[] = {"file", NULL}, *sp[] = {"status", NULL}, *mp[] = {"message", NULL},
               *dp[] = {"field", NULL}, *op[] = {"offset", NULL}, *tp[] = {"failed_at", NULL};
    yajl_val file = yajl_tree_get(v, fp, yajl_t_string), st = yajl_tree_get(v, sp, yajl_t_string),
             msg = yajl_tree_get(v, mp, yajl_t_string), fld = yajl_tree_get(v, dp, yajl_t_string),
             off = yajl_tree_get(v, op, yajl_t_number), at = yajl_tree_get(v, tp, yajl_t_string);
    CHECK_STR(str_of(file), name);
    CHECK_STR(str_of(st), status);
    CHECK(strstr(str_of(msg), message) != NULL);
    if (field)
        CHECK_STR(str_of(fld), field);
    else
        CHECK(fld == NULL);
    CHECK(off && YAJL_IS_INTEGER(off));
    CHECK_INT(off && YAJL_IS_INTEGER(off) ? YAJL_GET_INTEGER(off) : -1, offset);
    CHECK(strlen(str_of(at)) == 24 && str_of(at)[23] == 'Z'); /* 2026-01-02T03:04:05.678Z */
    if (check_failures_)
        fprintf(stderr, "%s: %s\n", path, text);
    yajl_tree_free(v);
    free(text);
    /* The refused file itself, whole, beside it; nothing of it left in the folder. */
    struct stat a, b;
    snprintf(path, sizeof path, "%s/failed/%s", sdir, name);
    CHECK(stat(path, &a) == 0 && stat(src, &b) == 0 && a.st_size == b.st_size);
    snprintf(path, sizeof path, "%s/%s", sdir, name);
    CHECK(!exists(path));
}

/* `realdata`: a darknet run's console text (not JSON) dropped in the spool
 * goes to failed/ with an error file naming where it stopped; nothing of it
 * is stored. */
static int test_realdata(void)
{
    support_server srv;
    ih_keys k;
    char spool[256], sdir[512];
    realdata_require();
    REQUIRE(support_server_init(&srv, NULL, NULL) == 0);
    snprintf(spool, sizeof spool, "%s/spool", srv.dir);
    snprintf(sdir, sizeof sdir, "%s/t1/s1", spool);
    REQUIRE(mkdir(spool, 0700) == 0);
    snprintf(sdir, sizeof sdir, "%s/t1", spool);
    REQUIRE(mkdir(sdir, 0700) == 0);
    snprintf(sdir, sizeof sdir, "%s/t1/s1", spool);
    REQUIRE(mkdir(sdir, 0700) == 0);
    REQUIRE(support_server_start(&srv, "--access-log", "off", "--spool", spool, (char *)NULL) == 0);
    REQUIRE(ih_tenant(&srv, "t1", &k) == 0);
    REQUIRE(ih_put_surgery(&srv, k.ingest, "s1") == 0);
    const char *src = SL_REALDATA "/darknet/tsai-result-console-text.json";
    REQUIRE(drop(src, sdir, "console.json") == 0);
    /* It starts " CUDNN_HALF=1": the fault is its second byte. */
    check_failed(sdir, "console.json", src, "SL_EINVAL", "invalid JSON", NULL, 1);
    ih_frames fr = {0};
    CHECK(ih_get_frames(&srv, k.staff, "s1", 100, NULL, &fr) == 0);
    CHECK_INT(fr.n, 0);
    ih_frames_free(&fr);
    CHECK_INT(support_server_stop(&srv), 0);
    support_server_cleanup(&srv);
    return check_finish();
}

int main(int argc, char **argv)
{
    if (realdata_mode(argc, argv))
        return test_realdata();
    support_server srv;
    ih_keys k;
    char spool[256], uploads[256], sdir[512], path[1024];
    REQUIRE(support_server_init(&srv, NULL, NULL) == 0);
    snprintf(spool, sizeof spool, "%s/spool", srv.dir);
    snprintf(uploads, sizeof uploads, "%s/uploads", srv.dir);
    REQUIRE(mkdir(uploads, 0700) == 0);
    REQUIRE(support_server_start(&srv, "--access-log", "off", "--spool", spool, "--upload-dir",
                                 uploads, (char *)NULL) == 0);
    REQUIRE(ih_tenant(&srv, "t1", &k) == 0);
    REQUIRE(ih_put_surgery(&srv, k.ingest, "s1") == 0);
    REQUIRE(ih_put_surgery(&srv, k.ingest, "s2") == 0);

    /* A file dropped while serving is picked up. */
    snprintf(sdir, sizeof sdir, "%s/t1/s1", spool);
    REQUIRE(mkdir(spool, 0700) == 0 || exists(spool));
    snprintf(path, sizeof path, "%s/t1", spool);
    REQUIRE(mkdir(path, 0700) == 0 || exists(path));
    REQUIRE(mkdir(sdir, 0700) == 0);
    REQUIRE(drop(SL_FIXTURES "/darknet/result.json", sdir, "run1.json") == 0);
    ih_frames fr = {0};
    for (int i = 0; i < 200 && fr.n == 0; i++) {
        support_sleep_ms(50);
        ih_frames_free(&fr);
        CHECK(ih_get_frames(&srv, k.staff, "s1", 100, NULL, &fr) == 0);
    }
    ih_frames want;
    ingest_parse_options po = {.format = INGEST_FORMAT_DARKNET};
    REQUIRE(ih_parse_file(SL_FIXTURES "/darknet/result.json", &po, NULL, &want) == 0);
    CHECK(fr.n > 0);
    CHECK(ih_frames_equal(&fr, &want, "spooled darknet file") == 0);
    ih_frames_free(&fr);
    ih_frames_free(&want);
    snprintf(path, sizeof path, "%s/done/run1.json", sdir);
    for (int i = 0; i < 100 && !exists(path); i++)
        support_sleep_ms(50);
    CHECK(exists(path));

    /* A refused file goes to failed/ with its reason: COCO categories under
     * a darknet name -- JSON, but no frame_id in the first object. */
    REQUIRE(drop(SL_FIXTURES "/coco/categories.json", sdir, "bad.json") == 0);
    check_failed(sdir, "bad.json", SL_FIXTURES "/coco/categories.json", "SL_EINVAL",
                 "frame has no frame_id", "[0]", 1);

    /* Issue 9: while a large file keeps the watcher busy (as the probe did),
     * a surgery folder is made, removed and replaced by a link to an outside
     * folder holding a file.  The link is not followed: nothing from there is
     * stored (its frames stay empty) and nothing there moves.  A file
     * dropped after the swap into another folder is the sentinel: inotify
     * reports events in order, so once it is in done/, the swap was seen. */
    char outside[512], s3[512], s4[512], sentinel[1024];
    REQUIRE(ih_put_surgery(&srv, k.ingest, "s3") == 0);
    REQUIRE(ih_put_surgery(&srv, k.ingest, "s4") == 0);
    snprintf(outside, sizeof outside, "%s/outside", srv.dir);
    REQUIRE(mkdir(outside, 0700) == 0);
    REQUIRE(drop(SL_FIXTURES "/darknet/result.json", outside, "x.json") == 0);
    snprintf(s4, sizeof s4, "%s/t1/s4", spool);
    REQUIRE(mkdir(s4, 0700) == 0);
    snprintf(s3, sizeof s3, "%s/t1/s3", spool);
    REQUIRE(drop_large(s4, "big.ndjson", 40000) == 0);
    REQUIRE(mkdir(s3, 0700) == 0);
    REQUIRE(rmdir(s3) == 0);
    REQUIRE(symlink(outside, s3) == 0);
    REQUIRE(drop(SL_FIXTURES "/darknet/result.json", sdir, "sentinel.json") == 0);
    snprintf(sentinel, sizeof sentinel, "%s/done/sentinel.json", sdir);
    for (int i = 0; i < 1200 && !exists(sentinel); i++) /* 60 s on a loaded machine */
        support_sleep_ms(50);
    REQUIRE(exists(sentinel));
    CHECK(ih_get_frames(&srv, k.staff, "s3", 100, NULL, &fr) == 0);
    CHECK_INT(fr.n, 0);
    ih_frames_free(&fr);
    snprintf(path, sizeof path, "%s/x.json", outside);
    CHECK(exists(path));
    snprintf(path, sizeof path, "%s/done", outside);
    CHECK(!exists(path));
    CHECK_INT(entries(outside), 1);
    size_t elen = 0;
    char *errlog = support_read_file(srv.err_path, &elen);
    CHECK(errlog && strstr(errlog, "/t1/s3: a symbolic link, not a folder: not followed"));
    free(errlog);
    snprintf(path, sizeof path, "%s/done/big.ndjson", s4);
    CHECK(exists(path));

    /* Uploads are spooled in --upload-dir and leave nothing behind. */
    char url[512];
    support_resp r;
    snprintf(url, sizeof url, "%s/v1/surgeries/s2/detections?format=darknet", srv.url);
    CHECK(support_post_file(url, k.ingest, SL_FIXTURES "/darknet/result.json", 1, &r) == 0);
    CHECK_INT(r.status, 200);
    support_resp_free(&r);
    CHECK_INT(entries(uploads), 0);
    /* The directory gone: a problem answer naming it, and the server goes on. */
    REQUIRE(rmdir(uploads) == 0);
    CHECK(support_post_file(url, k.ingest, SL_FIXTURES "/darknet/result.json", 0, &r) == 0);
    CHECK(support_is_problem(&r, 503, "storage-unavailable") == 0);
    support_resp_free(&r);
    CHECK(ih_req(&srv, "GET", "/healthz", NULL, NULL, &r) == 0 && r.status == 200);
    support_resp_free(&r);

    CHECK_INT(support_server_stop(&srv), 0);
    support_server_cleanup(&srv);
    return check_finish();
}
