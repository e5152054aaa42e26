/* report_bench.c -- render time and peak RSS of the reports (issue 12), from
 * the store through the port, as the API and the CLI render them
 * (report_brand()).
 *
 * Brand score report: a brand of 100,000 assets (20 campaigns, 3 sectors,
 * memorability and two saliency measures each) written into a fresh SQLite
 * store under $TMPDIR, aggregated by the engine's listener; then each render
 * runs in a child process of its own (fork), so that its peak RSS (VmHWM,
 * from wait4's ru_maxrss) is the render's: opening the store, the snapshot,
 * the walk over the assets, the layout and the file.  Medians over RUNS
 * renders; targets from the issue: XLSX under 0.6 s, PDF under 0.5 s, RSS
 * under 64 MB.
 *
 * Surgery tool-usage report (60 tools: PDF under 20 ms, XLSX under 30 ms):
 * comes with the surgery report, as a second section of main() below.
 *
 * Usage: report_bench [-n ASSETS] [-r RUNS]   (defaults 100000, 5) */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/engine.h"
#include "reports/reports.h"
#include "store/store.h"

#define TENANT "bench"
#define BRAND  "sparkle"

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? -1 : x > y;
}

/* The store: the tenant document and n assets, in batches of 5,000. */
static int load(const char *uri, long n)
{
    static const char *const campaigns[] = {
        "c00", "c01", "c02", "c03", "c04", "c05", "c06", "c07", "c08", "c09",
        "c10", "c11", "c12", "c13", "c14", "c15", "c16", "c17", "c18", "c19"};
    static const char *const sectors[] = {"beverages", "snacks", "household"};
    store *s = NULL;
    sl_error e;
    sl_error_clear(&e);
    if (store_open(uri, NULL, &s, &e) != SL_OK) {
        fprintf(stderr, "report_bench: %s\n", e.message);
        return -1;
    }
    bson_t t;
    bson_init(&t);
    BSON_APPEND_UTF8(&t, "pk", "T#" TENANT);
    BSON_APPEND_UTF8(&t, "sk", "TENANT");
    BSON_APPEND_UTF8(&t, "type", "tenant");
    BSON_APPEND_UTF8(&t, "tenant", TENANT);
    BSON_APPEND_UTF8(&t, "kind", "brand-client");
    BSON_APPEND_INT64(&t, "created_ms", 0);
    int rc = store_put(s, STORE_ITEMS, &t, (store_cond){0}, NULL, &e) == SL_OK ? 0 : -1;
    bson_destroy(&t);
    for (long i = 0; rc == 0 && i < n;) {
        store_batch *b = NULL;
        if (store_batch_begin(s, &b, &e) != SL_OK) {
            rc = -1;
            break;
        }
        for (long k = 0; k < 5000 && i < n; k++, i++) {
            char id[32];
            snprintf(id, sizeof id, "a-%07ld", i);
            bench_asset a = {.tenant = TENANT,
                             .id = id,
                             .client = "acme-media",
                             .brand = BRAND,
                             .brand_id = "B-17",
                             .campaign = campaigns[i % 20],
                             .sector = sectors[i % 3],
                             .memorability = (int64_t)(bench_rnd() % 1000001),
                             .saliency = {"logo", "product"},
                             .saliency_micro = {(int64_t)(bench_rnd() % 1000001),
                                                (int64_t)(bench_rnd() % 1000001)}};
            bson_t d;
            bson_init(&d);
            bench_asset_doc(&d, &a);
            if (store_batch_put(b, STORE_ITEMS, &d, (store_cond){0}, NULL, &e) != SL_OK)
                rc = -1;
            bson_destroy(&d);
        }
        if (rc == 0 && store_batch_commit(&b, &e) != SL_OK)
            rc = -1;
        store_batch_abort(&b);
    }
    /* The aggregates, by the listener, until it has applied everything. */
    engine_listener *l = NULL;
    engine_listener_options o = {0};
    if (rc == 0 && engine_listener_start(s, &o, &l, &e) != SL_OK)
        rc = -1;
    for (int tries = 0; rc == 0 && tries < 6000; tries++) {
        store_feed_stats fs;
        if (store_feed_stats_get(s, ENGINE_CONSUMER, &fs, &e) == SL_OK && fs.behind_events == 0)
            break;
        usleep(50000);
    }
    engine_listener_stop(&l);
    if (rc != 0)
        fprintf(stderr, "report_bench: loading failed: %s\n", e.message);
    store_close(&s);
    return rc;
}

/* One render in a child: its time (s) through *secs, its peak RSS (kB). */
static int render_once(const char *uri, report_format f, const char *tmp, double *secs,
                       long *rss_kb, uint64_t *bytes)
{
    int p[2];
    if (pipe(p) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        store *s = NULL;
        sl_error e;
        report_output o;
        sl_error_clear(&e);
        report_output_init(&o);
        report_options opt = {.format = f, .paper = REPORT_A4, .tmpdir = tmp};
        int64_t t0 = bench_mono_us();
        int ok = store_open(uri, NULL, &s, &e) == SL_OK &&
                 report_brand(s, TENANT, BRAND, &opt, &o, &e) == SL_OK;
        double r[2] = {(double)(bench_mono_us() - t0) / 1e6, ok ? (double)o.size : -1};
        if (!ok)
            fprintf(stderr, "report_bench: render failed: %s\n", e.message);
        if (write(p[1], r, sizeof r) != (ssize_t)sizeof r)
            _exit(2);
        report_output_close(&o);
        store_close(&s);
        _exit(ok ? 0 : 1);
    }
    close(p[1]);
    double r[2] = {0, -1};
    ssize_t got = read(p[0], r, sizeof r);
    close(p[0]);
    int status = 0;
    struct rusage ru;
    if (pid < 0 || wait4(pid, &status, 0, &ru) != pid || got != (ssize_t)sizeof r ||
        !WIFEXITED(status) || WEXITSTATUS(status) != 0 || r[1] < 0)
        return -1;
    *secs = r[0];
    *rss_kb = ru.ru_maxrss;
    *bytes = (uint64_t)r[1];
    return 0;
}

static int brand_section(const char *uri, const char *tmp, long n, int runs)
{
    static const struct {
        report_format f;
        const char *name;
        double target_s;
    } kinds[] = {{REPORT_XLSX, "xlsx", 0.6}, {REPORT_PDF, "pdf", 0.5}};
    int bad = 0;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        double t[64];
        long rss[64];
        uint64_t bytes = 0;
        for (int i = 0; i < runs; i++)
            if (render_once(uri, kinds[k].f, tmp, &t[i], &rss[i], &bytes) != 0) {
                printf("report_bench: brand %s: render FAILED\n", kinds[k].name);
                return 1;
            }
        qsort(t, (size_t)runs, sizeof t[0], cmp_dbl);
        qsort(rss, (size_t)runs, sizeof rss[0], cmp_long);
        double med = runs % 2 ? t[runs / 2] : (t[runs / 2 - 1] + t[runs / 2]) / 2;
        long mrss = rss[runs / 2];
        int ok = med < kinds[k].target_s && mrss < 64 * 1024;
        bad |= !ok;
        printf("report_bench: brand report %s, %ld assets: median %.3f s (min %.3f, max %.3f) over "
               "%d runs, peak RSS median %.1f MB (max %.1f), %.1f MB file; target < %.1f s, < 64 "
               "MB: %s\n",
               kinds[k].name, n, med, t[0], t[runs - 1], runs, mrss / 1024.0,
               rss[runs - 1] / 1024.0, (double)bytes / 1e6, kinds[k].target_s,
               ok ? "met" : "MISSED");
    }
    return bad;
}

int main(int argc, char **argv)
{
    long n = 100000;
    int runs = 5, c;
    while ((c = getopt(argc, argv, "n:r:")) != -1) {
        if (c == 'n')
            n = atol(optarg);
        else if (c == 'r')
            runs = atoi(optarg);
        else {
            fprintf(stderr, "usage: report_bench [-n ASSETS] [-r RUNS]\n");
            return 2;
        }
    }
    if (n < 1 || runs < 1 || runs > 64) {
        fprintf(stderr, "report_bench: -n >= 1, -r 1..64\n");
        return 2;
    }
    const char *t = getenv("TMPDIR");
    char dir[512], uri[600];
    snprintf(dir, sizeof dir, "%s/sl-report-bench-XXXXXX", t && t[0] ? t : "/tmp");
    if (!mkdtemp(dir)) {
        perror("report_bench: mkdtemp");
        return 1;
    }
    snprintf(uri, sizeof uri, "sqlite:%s/bench.db", dir);
    int64_t t0 = bench_mono_us();
    int rc = load(uri, n);
    if (rc == 0) {
        printf("report_bench: %ld assets stored and aggregated in %.1f s\n", n,
               (double)(bench_mono_us() - t0) / 1e6);
        fflush(stdout);
        rc = brand_section(uri, dir, n, runs);
    }
    /* (The 60-tool surgery report section goes here, with the surgery
     * report: its own store, the same render_once() per format.) */
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "report_bench: could not remove %s\n", dir);
    return rc;
}
