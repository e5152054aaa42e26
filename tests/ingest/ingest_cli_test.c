/* ingest_cli_test.c -- `sightline ingest` as a real process on a real store:
 * exit codes, the summary line per file, the error line naming file, offset
 * and rule, descriptions, assets, and --watch stopped by SIGTERM. */
#include "tests/check.h"
#include "tests/realdata.h"
#include "tests/support/support.h"

#include <signal.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char dir[128];

typedef struct result {
    int code;
    char out[8192], err[8192];
} result;

static void read_into(const char *path, char *buf, size_t n)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    size_t got = fread(buf, 1, n - 1, f);
    buf[got] = '\0';
    fclose(f);
}

/* Starts `sightline ingest ARGS` (NULL-terminated) with the test's
 * $SIGHTLINE_STORE; stdout and stderr go to files. */
static pid_t start(const char *const *args)
{
    char out[160], err[160];
    snprintf(out, sizeof out, "%s/out.txt", dir);
    snprintf(err, sizeof err, "%s/err.txt", dir);
    const char *argv[32] = {"ingest"};
    int n = 1;
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = support_spawn(out, err, SUPPORT_TRUNCATE | SUPPORT_KEEP_STORE, argv);
    REQUIRE(pid >= 0);
    return pid;
}

static void finish(pid_t pid, result *r)
{
    r->code = support_wait(pid, 600000);
    REQUIRE(r->code != -1);
    char path[160];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    read_into(path, r->out, sizeof r->out);
    snprintf(path, sizeof path, "%s/err.txt", dir);
    read_into(path, r->err, sizeof r->err);
}

static void run(result *r, const char *const *args)
{
    finish(start(args), r);
}

#define RUN(r, ...)                                                                                \
    do {                                                                                           \
        const char *a_[] = {__VA_ARGS__, NULL};                                                    \
        run(r, a_);                                                                                \
    } while (0)

int main(int argc, char **argv)
{
    /* `realdata` runs the whole sequence with the real files in it. */
    int with_realdata = realdata_mode(argc, argv);
    if (with_realdata)
        realdata_require();
    REQUIRE(support_tmpdir(dir, "ingest-cli") == 0);
    char store[160];
    snprintf(store, sizeof store, "sqlite:%s/store.db", dir);
    setenv("SIGHTLINE_STORE", store, 1);
    result r;

    RUN(&r, "--help");
    CHECK_INT(r.code, 0);
    CHECK(strstr(r.out, "usage: sightline ingest") != NULL);
    RUN(&r, "--format", "darknet", "x.json");
    CHECK_INT(r.code, 2);
    CHECK(strstr(r.err, "--tenant and --format are required") != NULL);
    RUN(&r, "--tenant", "acme", "--surgery", "s1", "--format", "yolo", "x.json");
    CHECK_INT(r.code, 2);
    CHECK(strstr(r.err, "unknown format \"yolo\"") != NULL);
    RUN(&r, "--tenant", "acme", "--format", "assets", "--spool-owner", "any", "x.ndjson");
    CHECK_INT(r.code, 2);
    CHECK(strstr(r.err, "--spool-owner goes with --watch") != NULL);
    RUN(&r, "--watch", dir, "--spool-owner", "no-such-user-here");
    CHECK_INT(r.code, 2);
    CHECK(strstr(r.err, "spool owner \"no-such-user-here\": no such user") != NULL);

    RUN(&r, "--tenant", "acme", "--surgery", "s1", "--format", "surgery",
        SL_FIXTURES "/surgery/surgery.json");
    CHECK_INT(r.code, 0);
    CHECK(strstr(r.out, "surgery s1, version 1") != NULL);
    RUN(&r, "--tenant", "acme", "--sku", "SCALPEL-10", "--format", "catalog",
        SL_FIXTURES "/catalog/scalpel.json");
    CHECK_INT(r.code, 0);

    RUN(&r, "--tenant", "acme", "--surgery", "s1", "--format", "darknet",
        SL_FIXTURES "/darknet/result.json");
    CHECK_INT(r.code, 0);
    CHECK(strstr(r.out, "result.json: 4 frames (1 empty), 6 detections, 4 unmapped in 3 labels "
                        "(forceps, sponge, needle holder), frames 1-4, 4 changed") != NULL);
    /* sent again: nothing changes */
    RUN(&r, "--tenant", "acme", "--surgery", "s1", "--format", "darknet",
        SL_FIXTURES "/darknet/result.json");
    CHECK_INT(r.code, 0);
    CHECK(strstr(r.out, "4 frames") && strstr(r.out, ", 0 changed"));

    /* a bad file among good ones: each file is its own batch; exit 1 */
    if (with_realdata) {
        RUN(&r, "--tenant", "acme", "--surgery", "s1", "--format", "darknet", "--frame-offset",
            "100", SL_REALDATA "/darknet/gnefihs-result-truncated.json",
            SL_REALDATA "/darknet/kartikwar-result-300frames.json");
        CHECK_INT(r.code, 1);
        CHECK(strstr(r.err,
                     "sightline ingest: " SL_REALDATA "/darknet/gnefihs-result-truncated.json: "
                     "input ends at byte 24576 inside a string") != NULL);
        CHECK(strstr(r.err, "(at [42].filename, byte 24576)") != NULL);
        CHECK(strstr(r.out,
                     "kartikwar-result-300frames.json: 300 frames (93 empty), 242 detections") !=
              NULL);
        CHECK(strstr(r.out, "frames 101-400") != NULL);
    }
    RUN(&r, "--tenant", "acme", "--surgery", "s9", "--format", "darknet",
        SL_FIXTURES "/darknet/result.json");
    CHECK_INT(r.code, 1);
    CHECK(strstr(r.err, "unknown surgery \"s9\"") != NULL);
    if (with_realdata) {
        RUN(&r, "--tenant", "acme", "--surgery", "s1", "--format", "coco", "--image-size",
            "640x640", "--frame-offset", "5000",
            SL_REALDATA "/coco/instances_val2014_fakebbox100_results.json");
        CHECK_INT(r.code, 0);
        CHECK(strstr(r.out, "99 frames (0 empty), 734 detections") != NULL);
    }
    RUN(&r, "--tenant", "acme", "--format", "assets", SL_FIXTURES "/assets/assets.ndjson");
    CHECK_INT(r.code, 0);
    CHECK(strstr(r.out, "assets.ndjson: 3 assets, 3 changed") != NULL);

    /* --watch until SIGTERM */
    char spool[160], target[256], file[320], done[320];
    snprintf(spool, sizeof spool, "%s/spool", dir);
    snprintf(target, sizeof target, "%s/acme", spool);
    REQUIRE(mkdir(spool, 0755) == 0 && mkdir(target, 0755) == 0);
    snprintf(target, sizeof target, "%s/acme/s1", spool);
    REQUIRE(mkdir(target, 0755) == 0);
    snprintf(file, sizeof file, "%s/more.ndjson", target);
    snprintf(done, sizeof done, "%s/done/more.ndjson", target);
    FILE *f = fopen(file, "w");
    REQUIRE(f);
    fputs("{\"frame\": 9000, \"detections\": []}\n", f);
    fclose(f);
    const char *wargs[] = {"--watch", spool, NULL};
    pid_t pid = start(wargs);
    struct stat s;
    bool moved = false;
    for (int i = 0; i < 3000 && !moved; i++) { /* up to 30 s on a loaded machine */
        moved = stat(done, &s) == 0;
        if (!moved)
            usleep(10000);
    }
    CHECK(moved);
    kill(pid, SIGTERM);
    finish(pid, &r);
    CHECK_INT(r.code, 0);
    CHECK(strstr(r.out,
                 "more.ndjson: 1 frame (1 empty), 0 detections, 0 unmapped, frames 9000-9000") !=
          NULL);
    CHECK(strstr(r.err, "1 files taken, 0 failed") != NULL);

    support_rmrf(dir);
    return check_finish();
}
