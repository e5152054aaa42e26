/* store_bench.c -- figures of the storage port on the embedded SQLite store:
 * bulk put rate in batches, point get and begins_with latencies, feed read
 * rate, and resident memory sampled during the load (it must not grow with
 * the item count).  Prints one plain line per figure.
 *
 * Usage: store_bench [-n items] [-b batch] [-s doc_bytes] [-g gets] [-q queries]
 *                    [-c cache_mb] [-u store-uri]
 * (default: a fresh store under /tmp, removed after; the adapter's cache size) */
#include "store/store.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FRAMES_PER_SURGERY 1000

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

static int die(const char *what, const sl_error *e)
{
    fprintf(stderr, "store_bench: %s: %s: %s\n", what, sl_status_name(e->status), e->message);
    exit(1);
}

/* A frame document of about doc_bytes: keys, a few detections, padding. */
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
        memset(p, 'x', (size_t)pad);
        p[pad] = '\0';
        BSON_APPEND_UTF8(d, "pad", p);
        free(p);
    }
    return d;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
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

int main(int argc, char **argv)
{
    long items = 1000000, batch = 10000, gets = 100000, queries = 2000;
    int doc_bytes = 300, cache_mb = 0, opt;
    const char *uri_arg = NULL;
    while ((opt = getopt(argc, argv, "n:b:s:g:q:c:u:")) != -1) {
        switch (opt) {
        case 'n':
            items = atol(optarg);
            break;
        case 'b':
            batch = atol(optarg);
            break;
        case 's':
            doc_bytes = atoi(optarg);
            break;
        case 'g':
            gets = atol(optarg);
            break;
        case 'q':
            queries = atol(optarg);
            break;
        case 'c':
            cache_mb = atoi(optarg);
            break;
        case 'u':
            uri_arg = optarg;
            break;
        default:
            fprintf(stderr, "usage: store_bench [-n items] [-b batch (0: one batch)] "
                            "[-s doc_bytes] [-g gets] [-q queries] [-c cache_mb] [-u store-uri]\n");
            return 2;
        }
    }
    if (items < FRAMES_PER_SURGERY || doc_bytes < 100 || gets < 1 || queries < 1) {
        fprintf(stderr, "store_bench: need -n >= %d, -s >= 100, -g >= 1, -q >= 1\n",
                FRAMES_PER_SURGERY);
        return 2;
    }
    if (batch <= 0)
        batch = items;

    char dir[64] = "", uri[512];
    if (uri_arg) {
        snprintf(uri, sizeof uri, "%s", uri_arg);
    } else {
        snprintf(dir, sizeof dir, "/tmp/sl-bench-XXXXXX");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            return 1;
        }
        snprintf(uri, sizeof uri, "sqlite:%s/bench.db", dir);
    }

    store *s = NULL;
    sl_error e;
    sl_error_clear(&e);
    store_options o = {.cache_bytes = (int64_t)cache_mb << 20};
    if (store_open(uri, &o, &s, &e) != SL_OK)
        die("open", &e);
    bson_t *sample = frame_doc(0, doc_bytes);
    printf("store_bench: %ld items of %u bytes, batches of %ld, %s\n", items, sample->len, batch,
           uri);
    bson_destroy(sample);

    /* bulk put; documents are built outside the timed store calls, a
     * thousand at a time so that building them takes little memory */
    double t_put = 0, rss, hwm;
    long next_mark = items / 4;
    store_batch *b = NULL;
    bson_t *docs[FRAMES_PER_SURGERY];
    for (long i = 0; i < items; i++) {
        if (i % FRAMES_PER_SURGERY == 0)
            for (long j = 0; j < FRAMES_PER_SURGERY; j++)
                docs[j] = i + j < items ? frame_doc(i + j, doc_bytes) : NULL;
        double a = now_s();
        if (!b && store_batch_begin(s, &b, &e) != SL_OK)
            die("batch begin", &e);
        if (store_batch_put(b, STORE_ITEMS, docs[i % FRAMES_PER_SURGERY],
                            (store_cond){STORE_COND_NONE, 0}, NULL, &e) != SL_OK)
            die("batch put", &e);
        if ((i + 1) % batch == 0 || i + 1 == items)
            if (store_batch_commit(&b, &e) != SL_OK)
                die("batch commit", &e);
        t_put += now_s() - a;
        bson_destroy(docs[i % FRAMES_PER_SURGERY]);
        if (i + 1 == next_mark) {
            rss_mb(&rss, &hwm);
            printf("rss after %ld items: VmRSS %.1f MB, VmHWM %.1f MB\n", i + 1, rss, hwm);
            next_mark += items / 4;
        }
    }
    printf("bulk put: %ld items in %.2f s of store calls = %.0f items/s\n", items, t_put,
           (double)items / t_put);

    /* point gets of random items */
    double *lat = malloc(sizeof *lat * (size_t)(gets > queries ? gets : queries));
    unsigned seed = 12345;
    for (long i = 0; i < gets; i++) {
        long item = (long)(((unsigned long)rand_r(&seed) << 16 ^ (unsigned long)rand_r(&seed)) %
                           (unsigned long)items);
        char pk[64], sk[32];
        snprintf(pk, sizeof pk, "T#bench#SURGERY#s%06ld", item / FRAMES_PER_SURGERY);
        snprintf(sk, sizeof sk, "FRAME#%09ld", item % FRAMES_PER_SURGERY);
        bson_t *d = NULL;
        double a = now_s();
        if (store_get(s, STORE_ITEMS, pk, sk, &d, &e) != SL_OK)
            die("get", &e);
        lat[i] = (now_s() - a) * 1e6;
        bson_destroy(d);
    }
    qsort(lat, (size_t)gets, sizeof *lat, cmp_double);
    printf("point get (%ld random): p50 %.1f us, p99 %.1f us\n", gets, pct(lat, (size_t)gets, 0.5),
           pct(lat, (size_t)gets, 0.99));

    /* begins_with of 100 items: frames 100..199 of a random surgery */
    long surgeries = items / FRAMES_PER_SURGERY;
    for (long i = 0; i < queries; i++) {
        char pk[64];
        snprintf(pk, sizeof pk, "T#bench#SURGERY#s%06ld", (long)rand_r(&seed) % surgeries);
        store_query_opts q = {.range = {STORE_RANGE_BEGINS_WITH, "FRAME#0000001", NULL}, .limit = 100};
        store_page p;
        double a = now_s();
        if (store_query(s, STORE_ITEMS, pk, &q, &p, &e) != SL_OK)
            die("query", &e);
        lat[i] = (now_s() - a) * 1e6;
        if (p.count != 100) {
            fprintf(stderr, "store_bench: begins_with returned %zu items, not 100\n", p.count);
            return 1;
        }
        store_page_free(&p);
    }
    qsort(lat, (size_t)queries, sizeof *lat, cmp_double);
    printf("begins_with 100 items (%ld queries): p50 %.1f us, p99 %.1f us\n", queries,
           pct(lat, (size_t)queries, 0.5), pct(lat, (size_t)queries, 0.99));
    free(lat);

    /* the feed, from the start */
    store_feed *f = NULL;
    if (store_feed_open(s, "bench", &f, &e) != SL_OK)
        die("feed open", &e);
    long events = 0;
    double t0 = now_s();
    for (;;) {
        const store_event *ev = NULL;
        size_t n = 0;
        if (store_feed_read(f, 1000, 0, &ev, &n, &e) != SL_OK)
            die("feed read", &e);
        if (n == 0)
            break;
        events += (long)n;
    }
    double t_feed = now_s() - t0;
    store_feed_close(&f);
    printf("feed read: %ld events in %.2f s = %.0f events/s\n", events, t_feed,
           (double)events / t_feed);

    store_close(&s);
    rss_mb(&rss, &hwm);
    printf("peak RSS (VmHWM): %.1f MB\n", hwm);
    if (dir[0])
        nftw(dir, unlink_cb, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
