/* ingest_cli_test.c -- `sightline ingest` as a real process on a real store:
 * exit codes, the summary line per file, the error line naming file, offset
 * and rule, descriptions, assets, and --watch stopped by SIGTERM. */
#include "tests/check.h"
#include "tests/realdata.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[64];

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

/* Starts the binary with args (NULL-terminated); stdout and stderr go to files. */
static pid_t start(const char *const *args)
{
    char out[128], err[128];
    snprintf(out, sizeof out, "%s/out.txt", dir);
    snprintf(err, sizeof err, "%s/err.txt", dir);
    const char *argv[32] = {SL_BINARY, "ingest"};
    int n = 2;
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(127);
        execv(SL_BINARY, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static void finish(pid_t pid, result *r)
{
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    r->code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    char path[128];
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

static void rm_tree(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        rm_tree(p);
    }
    closedir(d);
    rmdir(path);
}

int main(int argc, char **argv)
{
    /* `realdata` runs the whole sequence with the real files in it. */
    int with_realdata = realdata_mode(argc, argv);
    if (with_realdata)
        realdata_require();
    snprintf(dir, sizeof dir, "/tmp/sl-ingest-cli-XXXXXX");
    REQUIRE(mkdtemp(dir));
    char store[128];
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
    char spool[128], target[256], file[320], done[320];
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

    rm_tree(dir);
    return check_finish();
}
