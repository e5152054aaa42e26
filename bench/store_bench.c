/* store_bench.c -- figures of the storage port on the embedded SQLite store:
 * bulk put rate in batches, point get and begins_with latencies, feed read
 * rate, and resident memory sampled during the load (it must not grow with
 * the item count).  The machine is shared and noisy, so every figure is
 * taken in several runs, each on a fresh store, and printed as the median
 * with the smallest and largest value.
 *
 * Usage: store_bench [-n items] [-b batch] [-s doc_bytes] [-g gets] [-q queries]
 *                    [-c cache_mb] [-r runs] [-u store-uri]
 * (default: 5 runs on fresh stores under /tmp, removed after; the adapter's
 * cache size; -u takes one run) */
#include "store/store.h"

#include <ftw.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FRAMES_PER_SURGERY 1000
#define RUNS_MAX           50

typedef struct bench_opts {
    long items, batch, gets, queries;
    int doc_bytes, cache_mb, runs;
    const char *uri; /* NULL: a fresh store per run */
} bench_opts;

/* One run's figures. */
typedef struct figures {
    double put_rate;         /* items/s */
    double get_p50, get_p99; /* us */
    double bw_p50, bw_p99;   /* us */
    double feed_rate;        /* events/s */
    double rss_load_max;     /* MB, sampled at each quarter of the load */
} figures;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* VmRSS and VmHWM of this process in MB. */
static void rss_mb(double *rss, double *hwm)
{
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    *rss = *hwm = -1;
    while (f && fgets(line, sizeof line, f)) {
        long kb = 0;
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            *rss = (double)kb / 1024.0;
        else if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            *hwm = (double)kb / 1024.0;
    }
    if (f)
        fclose(f);
}

static int fail(const char *what, const sl_error *e)
{
    fprintf(stderr, "store_bench: %s: %s: %s\n", what, sl_status_name(e->status), e->message);
    return 1;
}

/* A frame document of about doc_bytes: keys, a few detections, padding.
 * Free with bson_destroy(). */
static bson_t *frame_doc(long item, int doc_bytes)
{
    char pk[64], sk[32];
    long surgery = item / FRAMES_PER_SURGERY, frame = item % FRAMES_PER_SURGERY;
    snprintf(pk, sizeof pk, "T#bench#SURGERY#s%06ld", surgery);
    snprintf(sk, sizeof sk, "FRAME#%09ld", frame);
    bson_t *d = bson_new();
    BSON_APPEND_UTF8(d, "pk", pk);
    BSON_APPEND_UTF8(d, "sk", sk);
    BSON_APPEND_UTF8(d, "type", "frame");
    BSON_APPEND_INT64(d, "frame", frame);
    bson_t arr, det, box;
    BSON_APPEND_ARRAY_BEGIN(d, "detections", &arr);
    for (int i = 0; i < 2; i++) {
        char idx[4];
        snprintf(idx, sizeof idx, "%d", i);
        BSON_APPEND_DOCUMENT_BEGIN(&arr, idx, &det);
        BSON_APPEND_UTF8(&det, "label", i ? "scalpel" : "forceps");
        BSON_APPEND_DOUBLE(&det, "confidence", 0.5 + (double)((item + i) % 50) / 100.0);
        BSON_APPEND_DOCUMENT_BEGIN(&det, "box", &box);
        BSON_APPEND_DOUBLE(&box, "x", 0.1 * i);
        BSON_APPEND_DOUBLE(&box, "y", 0.2);
        BSON_APPEND_DOUBLE(&box, "w", 0.05);
        BSON_APPEND_DOUBLE(&box, "h", 0.07);
        bson_append_document_end(&det, &box);
        bson_append_document_end(&arr, &det);
    }
    bson_append_array_end(d, &arr);
    int pad = doc_bytes - (int)d->len - 8; /* the padding element's own overhead */
    if (pad > 0) {
        char *p = malloc((size_t)pad + 1);
        if (p) {
            memset(p, 'x', (size_t)pad);
            p[pad] = '\0';
            BSON_APPEND_UTF8(d, "pad", p);
            free(p);
        }
    }
    return d;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The p-quantile of v[0..n), which it sorts. */
static double pct(double *v, size_t n, double p)
{
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static int unlink_cb(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb;
    (void)flag;
    (void)f;
    return remove(path);
}

/* Bulk put of o->items frame documents; documents are built outside the
 * timed store calls, a thousand at a time so that building them takes little
 * memory.  verbose prints the resident memory at each quarter. */
static int bulk_put(store *s, const bench_opts *o, int verbose, figures *fig)
{
    sl_error e;
    sl_error_clear(&e);
    double t_put = 0, rss, hwm;
    long next_mark = o->items / 4;
    store_batch *b = NULL;
    bson_t *docs[FRAMES_PER_SURGERY] = {0};
    int rc = 0;
    for (long i = 0; i < o->items && rc == 0; i++) {
        if (i % FRAMES_PER_SURGERY == 0)
            for (long j = 0; j < FRAMES_PER_SURGERY; j++)
                docs[j] = i + j < o->items ? frame_doc(i + j, o->doc_bytes) : NULL;
        double a = now_s();
        if (!b && store_batch_begin(s, &b, &e) != SL_OK)
            rc = fail("batch begin", &e);
        else if (store_batch_put(b, STORE_ITEMS, docs[i % FRAMES_PER_SURGERY],
                                 (store_cond){STORE_COND_NONE, 0}, NULL, &e) != SL_OK)
            rc = fail("batch put", &e);
        else if (((i + 1) % o->batch == 0 || i + 1 == o->items) &&
                 store_batch_commit(&b, &e) != SL_OK)
            rc = fail("batch commit", &e);
        t_put += now_s() - a;
        bson_destroy(docs[i % FRAMES_PER_SURGERY]);
        docs[i % FRAMES_PER_SURGERY] = NULL;
        if (i + 1 == next_mark) {
            rss_mb(&rss, &hwm);
            if (rss > fig->rss_load_max)
                fig->rss_load_max = rss;
            if (verbose)
                printf("rss after %ld items: VmRSS %.1f MB, VmHWM %.1f MB\n", i + 1, rss, hwm);
            next_mark += o->items / 4;
        }
    }
    store_batch_abort(&b);
    for (long j = 0; j < FRAMES_PER_SURGERY; j++)
        if (docs[j])
            bson_destroy(docs[j]);
    fig->put_rate = (double)o->items / t_put;
    return rc;
}

/* Point gets of random items, then begins_with queries of 100 items (frames
 * 100..199 of a random surgery). */
static int reads(store *s, const bench_opts *o, unsigned *seed, figures *fig)
{
    sl_error e;
    sl_error_clear(&e);
    int rc = 0;
    double *lat = malloc(sizeof *lat * (size_t)(o->gets > o->queries ? o->gets : o->queries));
    if (!lat)
        return 1;
    for (long i = 0; i < o->gets && rc == 0; i++) {
        long item = (long)(((unsigned long)rand_r(seed) << 16 ^ (unsigned long)rand_r(seed)) %
                           (unsigned long)o->items);
        char pk[64], sk[32];
        snprintf(pk, sizeof pk, "T#bench#SURGERY#s%06ld", item / FRAMES_PER_SURGERY);
        snprintf(sk, sizeof sk, "FRAME#%09ld", item % FRAMES_PER_SURGERY);
        bson_t *d = NULL;
        double a = now_s();
        if (store_get(s, STORE_ITEMS, pk, sk, &d, &e) != SL_OK)
            rc = fail("get", &e);
        lat[i] = (now_s() - a) * 1e6;
        if (d)
            bson_destroy(d);
    }
    if (rc == 0) {
        fig->get_p50 = pct(lat, (size_t)o->gets, 0.5);
        fig->get_p99 = pct(lat, (size_t)o->gets, 0.99);
    }
    long surgeries = o->items / FRAMES_PER_SURGERY;
    for (long i = 0; i < o->queries && rc == 0; i++) {
        char pk[64];
        snprintf(pk, sizeof pk, "T#bench#SURGERY#s%06ld", (long)rand_r(seed) % surgeries);
        store_query_opts q = {.range = {STORE_RANGE_BEGINS_WITH, "FRAME#0000001", NULL},
                              .limit = 100};
        store_page p;
        double a = now_s();
        if (store_query(s, STORE_ITEMS, pk, &q, &p, &e) != SL_OK) {
            rc = fail("query", &e);
            break;
        }
        lat[i] = (now_s() - a) * 1e6;
        if (p.count != 100) {
            fprintf(stderr, "store_bench: begins_with returned %zu items, not 100\n", p.count);
            rc = 1;
        }
        store_page_free(&p);
    }
    if (rc == 0) {
        fig->bw_p50 = pct(lat, (size_t)o->queries, 0.5);
        fig->bw_p99 = pct(lat, (size_t)o->queries, 0.99);
    }
    free(lat);
    return rc;
}

/* Reads the whole feed from the start. */
static int feed(store *s, figures *fig)
{
    sl_error e;
    sl_error_clear(&e);
    store_feed *f = NULL;
    long events = 0;
    int rc = 0;
    if (store_feed_open(s, "bench", &f, &e) != SL_OK)
        return fail("feed open", &e);
    double t0 = now_s();
    for (;;) {
        const store_event *ev = NULL;
        size_t n = 0;
        if (store_feed_read(f, 1000, 0, &ev, &n, &e) != SL_OK) {
            rc = fail("feed read", &e);
            break;
        }
        if (n == 0)
            break;
        events += (long)n;
    }
    fig->feed_rate = (double)events / (now_s() - t0);
    store_feed_close(&f);
    return rc;
}

/* One run on the store at uri. */
static int run_once(const bench_opts *o, const char *uri, int verbose, unsigned *seed, figures *fig)
{
    store *s = NULL;
    sl_error e;
    sl_error_clear(&e);
    store_options so = {.cache_bytes = (int64_t)o->cache_mb << 20};
    if (store_open(uri, &so, &s, &e) != SL_OK)
        return fail("open", &e);
    int rc = bulk_put(s, o, verbose, fig);
    if (rc == 0)
        rc = reads(s, o, seed, fig);
    if (rc == 0)
        rc = feed(s, fig);
    store_close(&s);
    return rc;
}

/* Prints "name: median unit (min .. max)" of field off of figs[0..n). */
static void summary(const char *name, const char *unit, const figures *figs, int n, size_t off,
                    int decimals)
{
    double v[RUNS_MAX];
    for (int i = 0; i < n; i++)
        v[i] = *(const double *)((const char *)&figs[i] + off);
    double med = pct(v, (size_t)n, 0.5);
    printf("%s: median %.*f %s (min %.*f, max %.*f, %d runs)\n", name, decimals, med, unit,
           decimals, v[0], decimals, v[n - 1], n);
}

int main(int argc, char **argv)
{
    bench_opts o = {.items = 1000000,
                    .batch = 10000,
                    .gets = 100000,
                    .queries = 2000,
                    .doc_bytes = 300,
                    .runs = 5};
    int opt;
    while ((opt = getopt(argc, argv, "n:b:s:g:q:c:r:u:")) != -1) {
        switch (opt) {
        case 'n':
            o.items = atol(optarg);
            break;
        case 'b':
            o.batch = atol(optarg);
            break;
        case 's':
            o.doc_bytes = atoi(optarg);
            break;
        case 'g':
            o.gets = atol(optarg);
            break;
        case 'q':
            o.queries = atol(optarg);
            break;
        case 'c':
            o.cache_mb = atoi(optarg);
            break;
        case 'r':
            o.runs = atoi(optarg);
            break;
        case 'u':
            o.uri = optarg;
            break;
        default:
            fprintf(stderr, "usage: store_bench [-n items] [-b batch (0: one batch)] "
                            "[-s doc_bytes] [-g gets] [-q queries] [-c cache_mb] [-r runs] "
                            "[-u store-uri]\n");
            return 2;
        }
    }
    if (o.items < FRAMES_PER_SURGERY || o.items > 100000000 || o.doc_bytes < 100 ||
        o.doc_bytes > 1000000 || o.gets < 1 || o.queries < 1 || o.runs < 1 || o.runs > RUNS_MAX ||
        o.cache_mb < 0 || (o.uri && o.runs != 1)) {
        fprintf(stderr,
                "store_bench: need %d <= -n <= 1e8, 100 <= -s <= 1e6, -g >= 1, -q >= 1, "
                "1 <= -r <= %d (1 with -u)\n",
                FRAMES_PER_SURGERY, RUNS_MAX);
        return 2;
    }
    if (o.batch <= 0)
        o.batch = o.items;

    bson_t *sample = frame_doc(0, o.doc_bytes);
    printf("store_bench: %ld items of %u bytes, batches of %ld, %d runs, %s\n", o.items,
           sample->len, o.batch, o.runs, o.uri ? o.uri : "a fresh sqlite store per run");
    bson_destroy(sample);

    figures figs[RUNS_MAX] = {0};
    unsigned seed = 12345;
    int rc = 0;
    for (int r = 0; r < o.runs && rc == 0; r++) {
        char dir[64] = "", uri[512];
        if (o.uri) {
            snprintf(uri, sizeof uri, "%s", o.uri);
        } else {
            snprintf(dir, sizeof dir, "/tmp/sl-bench-XXXXXX");
            if (!mkdtemp(dir)) {
                perror("mkdtemp");
                return 1;
            }
            snprintf(uri, sizeof uri, "sqlite:%s/bench.db", dir);
        }
        rc = run_once(&o, uri, r == 0, &seed, &figs[r]);
        if (rc == 0)
            printf("run %d: bulk put %.0f items/s, get p50 %.1f us p99 %.1f us, begins_with "
                   "p50 %.1f us p99 %.1f us, feed read %.0f events/s\n",
                   r + 1, figs[r].put_rate, figs[r].get_p50, figs[r].get_p99, figs[r].bw_p50,
                   figs[r].bw_p99, figs[r].feed_rate);
        fflush(stdout);
        if (dir[0])
            nftw(dir, unlink_cb, 16, FTW_DEPTH | FTW_PHYS);
    }
    if (rc != 0)
        return rc;
    summary("bulk put", "items/s", figs, o.runs, offsetof(figures, put_rate), 0);
    summary("point get p50", "us", figs, o.runs, offsetof(figures, get_p50), 1);
    summary("point get p99", "us", figs, o.runs, offsetof(figures, get_p99), 1);
    summary("begins_with 100 items p50", "us", figs, o.runs, offsetof(figures, bw_p50), 1);
    summary("begins_with 100 items p99", "us", figs, o.runs, offsetof(figures, bw_p99), 1);
    summary("feed read", "events/s", figs, o.runs, offsetof(figures, feed_rate), 0);
    summary("VmRSS during the load", "MB", figs, o.runs, offsetof(figures, rss_load_max), 1);
    double rss, hwm;
    rss_mb(&rss, &hwm);
    printf("peak RSS (VmHWM): %.1f MB\n", hwm);
    return 0;
}
