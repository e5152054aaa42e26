/* usage_bench.c -- the tool-usage analysis' time and memory on the 3-hour,
 * 60-tool scenario (issue 11: targets under 2 s and under 64 MB on this
 * 2-core machine).  The scenario is simulated by `sightline simulate` and
 * ingested by `sightline ingest` (children: their time and memory are not
 * the analysis'); then this process opens the store and runs
 * engine_usage_analyze (engine.h), which reads the surgery's frames through
 * the storage port as the API's job and `sightline analyze` do: the first
 * run (which writes the results), then re-runs (which read everything and
 * write nothing).  Printed: the median and worst analysis time, and this
 * process's peak RSS (getrusage: the store, the catalog, the tracker and the
 * pages read), beside the scenario's truth (opened, used, waste) and what the
 * analysis found.
 *
 * Usage: usage_bench [-s scenario.json] [-r reruns] [-b sightline_binary] [-k]
 *        (-k keeps the temporary directory; the frames take ~1.8 GB while the
 *        bench runs, the store ~1 GB) */
#include "engine/engine.h"
#include "tests/support/support.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#define TENANT  "bench"
#define SURGERY "long"
#define RUN_MS  (3600 * 1000) /* a hang guard for the children, not a measurement */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Runs `sightline ARGS` to its end (RUN_MS at most); its exit code. */
static int run(const char *const *args)
{
    pid_t pid = support_spawn(NULL, NULL, 0, args);
    return pid < 0 ? -1 : support_wait(pid, RUN_MS);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The truth's totals member key, -1 when absent. */
static long long truth_total(yajl_val t, const char *key)
{
    const char *p[] = {"totals", key, NULL};
    yajl_val v = t ? yajl_tree_get(t, p, yajl_t_number) : NULL;
    return v ? YAJL_GET_INTEGER(v) : -1;
}

int main(int argc, char **argv)
{
    const char *scenario = SL_FIXTURES "/scenarios/long-3h-60tools.json";
    int reruns = 5, keep = 0, rc = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-s") && i + 1 < argc)
            scenario = argv[++i];
        else if (!strcmp(argv[i], "-r") && i + 1 < argc)
            reruns = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-b") && i + 1 < argc)
            support_set_binary(argv[++i]);
        else if (!strcmp(argv[i], "-k"))
            keep = 1;
        else {
            fprintf(stderr,
                    "usage: usage_bench [-s scenario.json] [-r reruns] [-b sightline] [-k]\n");
            return 2;
        }
    }
    if (reruns < 1 || reruns > 100)
        reruns = 5;
    char dir[128], uri[256], frames[256], truth[256], surgery[256];
    if (support_tmpdir(dir, "usage-bench") != 0)
        return 1;
    snprintf(uri, sizeof uri, "sqlite:%s/store.db", dir);
    snprintf(frames, sizeof frames, "%s/frames.ndjson", dir);
    snprintf(truth, sizeof truth, "%s/truth.json", dir);
    snprintf(surgery, sizeof surgery, "%s/surgery.json", dir);
    store *st = NULL;
    yajl_val tv = NULL;
    double *times = calloc((size_t)reruns, sizeof *times);
    sl_error err;
    sl_error_clear(&err);

    /* The scenario, its catalog, the surgery and its frames. */
    double t0 = now_s();
    const char *sim[] = {"simulate", scenario, "-o",        frames,  "--format", "ndjson",
                         "--truth",  truth,    "--surgery", surgery, NULL};
    if (!times || run(sim) != 0 || support_tenant(uri, TENANT, "hospital") != 0)
        goto out;
    double t_sim = now_s() - t0;
    DIR *d = opendir(SL_FIXTURES "/scenarios/catalog");
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
        size_t l = strlen(e->d_name);
        if (l <= 5 || strcmp(e->d_name + l - 5, ".json"))
            continue;
        char sku[128], file[512];
        snprintf(sku, sizeof sku, "%.*s", (int)(l - 5), e->d_name);
        snprintf(file, sizeof file, SL_FIXTURES "/scenarios/catalog/%s", e->d_name);
        const char *put[] = {"ingest", "--store",  uri,       "--tenant", TENANT, "--sku",
                             sku,      "--format", "catalog", file,       NULL};
        if (run(put) != 0) {
            closedir(d);
            goto out;
        }
    }
    if (d)
        closedir(d);
    t0 = now_s();
    const char *put_s[] = {"ingest", "--store",  uri,       "--tenant", TENANT, "--surgery",
                           SURGERY,  "--format", "surgery", surgery,    NULL};
    const char *put_f[] = {"ingest", "--store",  uri,      "--tenant", TENANT, "--surgery",
                           SURGERY,  "--format", "ndjson", frames,     NULL};
    if (run(put_s) != 0 || run(put_f) != 0)
        goto out;
    double t_ingest = now_s() - t0;
    unlink(frames); /* the analysis reads the store only */
    size_t tlen = 0;
    char *ttext = support_read_file(truth, &tlen), why[128];
    tv = ttext ? yajl_tree_parse(ttext, why, sizeof why) : NULL;
    free(ttext);

    /* The analysis, in this process, through the storage port. */
    long rss_before = peak_rss_kb();
    if (store_open(uri, NULL, &st, &err) != SL_OK)
        goto out;
    engine_usage_params p;
    engine_usage_params_default(&p);
    engine_usage_result res, again;
    t0 = now_s();
    if (engine_usage_analyze(st, TENANT, SURGERY, &p, &res, &err) != SL_OK)
        goto out;
    double first = now_s() - t0;
    for (int i = 0; i < reruns; i++) {
        t0 = now_s();
        if (engine_usage_analyze(st, TENANT, SURGERY, &p, &again, &err) != SL_OK)
            goto out;
        times[i] = now_s() - t0;
        if (again.written != 0 || again.used != res.used) {
            fprintf(stderr, "usage_bench: a re-run wrote %lld documents (used %lld, first %lld)\n",
                    (long long)again.written, (long long)again.used, (long long)res.used);
            goto out;
        }
    }
    long rss = peak_rss_kb();
    qsort(times, (size_t)reruns, sizeof *times, cmp_double);

    printf("usage_bench: %s: %lld frames (%lld empty), %lld detections (%lld unmapped); "
           "simulated in %.1f s, ingested in %.1f s\n",
           scenario, (long long)res.frames, (long long)res.frames_empty, (long long)res.detections,
           (long long)res.unmapped_detections, t_sim, t_ingest);
    printf("usage_bench: found %lld opened, %lld used, %lld unused, waste %lld cents; truth %lld "
           "opened, %lld used, waste %lld cents; %lld tracks at most\n",
           (long long)res.opened, (long long)res.used, (long long)res.unused,
           (long long)res.waste_cents, truth_total(tv, "opened"), truth_total(tv, "used"),
           truth_total(tv, "waste_cost_cents"), (long long)res.tracks_peak);
    printf("usage_bench: analysis time: first run %.3f s (%lld documents written), re-runs "
           "median %.3f s, max %.3f s of %d (target < 2 s): %s\n",
           first, (long long)res.written, times[reruns / 2], times[reruns - 1], reruns,
           times[reruns / 2] < 2.0 && first < 2.0 ? "ok" : "OVER");
    printf("usage_bench: peak RSS %.1f MB (%.1f MB before the store was opened; target < 64 MB): "
           "%s\n",
           (double)rss / 1024, (double)rss_before / 1024, rss < 64 * 1024 ? "ok" : "OVER");
    rc = 0;
out:
    if (rc != 0)
        fprintf(stderr, "usage_bench: failed%s%s\n", err.message[0] ? ": " : "", err.message);
    store_close(&st);
    if (tv)
        yajl_tree_free(tv);
    free(times);
    if (!keep)
        support_rmrf(dir);
    else
        printf("usage_bench: kept %s\n", dir);
    return rc;
}
