/* listener_bench.c -- the change-feed listener's figures: events/s applied
 * from a backlog of asset writes; the same from a backlog where frame
 * documents make 99% of the writes (as in surgery ingest); and the
 * commit-to-applied lag (p50/p99) at 1k, 10k and 50k asset writes/s offered.
 * The machine is shared and noisy, so each run uses a fresh store and every
 * figure is printed as the median over the runs with its smallest and
 * largest value.
 *
 * At an offered rate, every written event counts: after the writes stop the
 * bench waits (at most 2 minutes) until the listener has applied them all,
 * and the lag percentiles are over every event, those applied after the
 * writes stopped included.  A run where some were still unapplied prints
 * NOT CAUGHT UP with how many, and no lag figure (the missing events are the
 * late ones: percentiles without them would be too low).  Each rate is
 * divided by the time it was measured over: written events by the writing
 * time, applied events by the time from the first write until the last was
 * applied (or until the wait gave up).
 *
 * Usage: listener_bench [backlog_events] [seconds_per_rate] [batch_max] [runs] [uri_params]
 * (uri_params: store URI parameters for both stores, e.g. "wal_pages=16384") */
#include "engine/engine.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BRANDS           50
#define CAMPAIGNS        5
#define SECTORS          10
#define ASSETS           100000
#define FRAMES_PER_ASSET 99 /* frames are 99% of the writes in the mixed backlog */
#define FRAME_DETS       25 /* detections per frame document */
#define RUNS_MAX         20
#define NRATES           3

static const int rates[NRATES] = {1000, 10000, 50000};
static const char *uri_params = ""; /* set once from the command line */

/* One run's figures. */
typedef struct figures {
    double catchup;                  /* events/s, assets only */
    double mixed, mixed_asset;       /* events/s covered and asset events/s applied, with frames */
    double wrote[NRATES];            /* events written / writing time */
    double applied[NRATES];          /* events applied / first write to last applied */
    double tail_ms[NRATES];          /* last write to caught up; -1 when not caught up */
    double p50[NRATES], p99[NRATES]; /* of every written event; -1 when not caught up */
    int64_t missing[NRATES];         /* written but not applied when the wait ended */
    int64_t carried[NRATES];         /* of the rate before, not applied when this one began */
} figures;

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t rng_state = 88172645463325252ULL;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* An asset document shaped as ingest writes it (docs/documents.md). */
static void asset_doc(bson_t *d, uint64_t n)
{
    char id[32], pk[64], gsk[128], brand[16], campaign[16], sector[16];
    snprintf(id, sizeof id, "a%07" PRIu64, n % ASSETS);
    snprintf(brand, sizeof brand, "brand%02d", (int)(rnd() % BRANDS));
    snprintf(campaign, sizeof campaign, "c%d", (int)(rnd() % CAMPAIGNS));
    snprintf(sector, sizeof sector, "sector%d", (int)(rnd() % SECTORS));
    snprintf(pk, sizeof pk, "T#bench#ASSET#%s", id);
    snprintf(gsk, sizeof gsk, "BRAND#%s#CAMPAIGN#%s#ASSET#%s", brand, campaign, id);
    int64_t mem = (int64_t)(rnd() % 1000001), center = (int64_t)(rnd() % 1000001),
            faces = (int64_t)(rnd() % 1000001);
    BSON_APPEND_UTF8(d, "pk", pk);
    BSON_APPEND_UTF8(d, "sk", "META");
    BSON_APPEND_UTF8(d, "gsi1pk", "T#bench#ASSETS");
    BSON_APPEND_UTF8(d, "gsi1sk", gsk);
    BSON_APPEND_UTF8(d, "type", "asset");
    BSON_APPEND_UTF8(d, "tenant", "bench");
    BSON_APPEND_UTF8(d, "asset", id);
    BSON_APPEND_UTF8(d, "client", "client");
    BSON_APPEND_UTF8(d, "brand", brand);
    BSON_APPEND_UTF8(d, "brand_id", brand);
    BSON_APPEND_UTF8(d, "sector", sector);
    BSON_APPEND_UTF8(d, "campaign", campaign);
    BSON_APPEND_UTF8(d, "media_type", "image");
    BSON_APPEND_DOUBLE(d, "memorability", (double)mem / 1e6);
    BSON_APPEND_INT64(d, "memorability_micro", mem);
    bson_t s;
    BSON_APPEND_DOCUMENT_BEGIN(d, "saliency", &s);
    BSON_APPEND_DOUBLE(&s, "center", (double)center / 1e6);
    BSON_APPEND_DOUBLE(&s, "faces", (double)faces / 1e6);
    bson_append_document_end(d, &s);
    BSON_APPEND_DOCUMENT_BEGIN(d, "saliency_micro", &s);
    BSON_APPEND_INT64(&s, "center", center);
    BSON_APPEND_INT64(&s, "faces", faces);
    bson_append_document_end(d, &s);
    BSON_APPEND_UTF8(d, "model_version", "m-1");
}

/* A frame document shaped as ingest writes it (docs/documents.md: packed
 * detections), about 800 bytes. */
static void frame_doc(bson_t *d, uint64_t n)
{
    char pk[64], sk[32];
    snprintf(pk, sizeof pk, "T#bench#SURGERY#s%04" PRIu64, n / 100000);
    snprintf(sk, sizeof sk, "FRAME#%09" PRIu64, n % 100000);
    uint8_t det[FRAME_DETS * SCHEMA_FRAME_DET_SIZE];
    for (int i = 0; i < FRAME_DETS; i++) {
        schema_frame_det x = {.label = (uint16_t)(i % 3),
                              .confidence = (int32_t)(rnd() % 1000001),
                              .x = (int32_t)(rnd() % 900000),
                              .y = (int32_t)(rnd() % 900000),
                              .w = 50000,
                              .h = 50000};
        schema_frame_det_pack(det + i * SCHEMA_FRAME_DET_SIZE, &x);
    }
    BSON_APPEND_UTF8(d, "pk", pk);
    BSON_APPEND_UTF8(d, "sk", sk);
    BSON_APPEND_UTF8(d, "type", "frame");
    BSON_APPEND_INT64(d, "frame", (int64_t)(n % 100000));
    BSON_APPEND_INT32(d, "n", FRAME_DETS);
    bson_t a;
    BSON_APPEND_ARRAY_BEGIN(d, "labels", &a);
    BSON_APPEND_UTF8(&a, "0", "scalpel");
    BSON_APPEND_UTF8(&a, "1", "forceps");
    BSON_APPEND_UTF8(&a, "2", "gauze");
    bson_append_array_end(d, &a);
    BSON_APPEND_ARRAY_BEGIN(d, "skus", &a);
    BSON_APPEND_UTF8(&a, "0", "SKU-1");
    BSON_APPEND_UTF8(&a, "1", "SKU-2");
    BSON_APPEND_NULL(&a, "2");
    bson_append_array_end(d, &a);
    BSON_APPEND_BINARY(d, "det", BSON_SUBTYPE_BINARY, det, sizeof det);
}

/* Writes n documents in one atomic batch: assets, or with frames_per_asset
 * > 0 that many frames before each asset. */
static int write_batch(store *s, uint64_t *next, uint64_t *next_frame, size_t n,
                       int frames_per_asset)
{
    static bson_t docs[1000];
    store_op ops[1000];
    sl_error e;
    sl_error_clear(&e);
    for (size_t i = 0; i < n; i++) {
        bson_init(&docs[i]);
        if (frames_per_asset > 0 && (i + 1) % (size_t)(frames_per_asset + 1) != 0)
            frame_doc(&docs[i], (*next_frame)++);
        else
            asset_doc(&docs[i], (*next)++);
        ops[i] = (store_op){.kind = STORE_OP_PUT, .table = STORE_ITEMS, .doc = &docs[i]};
    }
    sl_status rc = store_write_batch(s, ops, n, &e);
    for (size_t i = 0; i < n; i++)
        bson_destroy(&docs[i]);
    if (rc != SL_OK)
        fprintf(stderr, "listener_bench: write failed: %s\n", e.message);
    return rc == SL_OK;
}

/* Waits (at most 5 s) until the listener's counters include every event
 * written so far (its token can reach the head a moment before its
 * counters are updated). */
static void wait_counted(engine_listener *l, int64_t events)
{
    engine_listener_stats st;
    for (int i = 0; i < 5000; i++) {
        if (engine_listener_stats_get(l, &st, NULL) == SL_OK && st.events_applied >= events)
            return;
        usleep(1000);
    }
}

static int caught_up(store *s)
{
    store_feed_stats st;
    char tok[STORE_TOKEN_MAX];
    if (store_feed_stats_get(s, ENGINE_CONSUMER, &st, NULL) != SL_OK || st.behind_events)
        return 0;
    return !st.head_token[0] || (store_consumer_token(s, ENGINE_CONSUMER, tok, NULL) == SL_OK &&
                                 !strcmp(tok, st.head_token));
}

static int wait_caught_up(store *s, int64_t timeout_us)
{
    int64_t end = mono_us() + timeout_us;
    while (!caught_up(s)) {
        if (mono_us() > end)
            return 0;
        usleep(1000);
    }
    return 1;
}

/* The ms bucket under which a fraction q of the histogram lies; the last
 * bucket (ENGINE_LAG_BUCKETS - 1) holds every lag from 1024 ms up. */
static int percentile(const int64_t *h, double q)
{
    int64_t total = 0, cum = 0;
    for (int i = 0; i < ENGINE_LAG_BUCKETS; i++)
        total += h[i];
    for (int i = 0; i < ENGINE_LAG_BUCKETS; i++) {
        cum += h[i];
        if (total && (double)cum >= q * (double)total)
            return i;
    }
    return -1;
}

static void quiet(void *ctx, const char *level, const char *msg)
{
    (void)ctx;
    if (strcmp(level, "info"))
        fprintf(stderr, "listener %s: %s\n", level, msg);
}

/* Writes a backlog, starts a listener and times it until it is caught up.
 * *l is the running listener afterwards (stop it with engine_listener_stop). */
static int catch_up(store *s, long backlog, long batch, int frames_per_asset, uint64_t *next,
                    uint64_t *next_frame, engine_listener **l, double *events_per_s,
                    double *assets_per_s)
{
    sl_error e;
    sl_error_clear(&e);
    uint64_t assets0 = *next;
    for (long done = 0; done < backlog; done += 1000)
        if (!write_batch(s, next, next_frame,
                         (size_t)(backlog - done < 1000 ? backlog - done : 1000), frames_per_asset))
            return 1;
    engine_listener_options o = {.log = quiet, .holder = "bench", .batch_max = (size_t)batch};
    int64_t t0 = mono_us();
    if (engine_listener_start(s, &o, l, &e) != SL_OK) {
        fprintf(stderr, "listener_bench: %s\n", e.message);
        return 1;
    }
    if (!wait_caught_up(s, 600 * 1000000LL)) {
        fprintf(stderr, "listener_bench: backlog not applied in 10 minutes\n");
        return 1;
    }
    double secs = (double)(mono_us() - t0) / 1e6;
    *events_per_s = (double)backlog / secs;
    *assets_per_s = (double)(*next - assets0) / secs;
    return 0;
}

/* One run on a fresh store under dir. */
static int run_once(const char *dir, long backlog, int seconds, long batch, figures *fig)
{
    char uri[512];
    store *s = NULL;
    engine_listener *l = NULL;
    sl_error e;
    sl_error_clear(&e);
    int rc = 1;
    uint64_t next = 0, next_frame = 0;
    double unused;

    /* 1. A backlog with frames, on its own store: the listener's throughput
     * when nearly every event is one it does not need. */
    snprintf(uri, sizeof uri, "sqlite:%s/mixed.db%s%s", dir, uri_params[0] ? "?" : "", uri_params);
    if (store_open(uri, NULL, &s, &e) != SL_OK) {
        fprintf(stderr, "listener_bench: %s\n", e.message);
        goto out;
    }
    long mixed = backlog / (FRAMES_PER_ASSET + 1) * (FRAMES_PER_ASSET + 1);
    if (catch_up(s, mixed, batch, FRAMES_PER_ASSET, &next, &next_frame, &l, &fig->mixed,
                 &fig->mixed_asset))
        goto out;
    engine_listener_stop(&l);
    store_close(&s);

    /* 2. A backlog of assets, then the offered rates on the same store. */
    snprintf(uri, sizeof uri, "sqlite:%s/bench.db%s%s", dir, uri_params[0] ? "?" : "", uri_params);
    if (store_open(uri, NULL, &s, &e) != SL_OK) {
        fprintf(stderr, "listener_bench: %s\n", e.message);
        goto out;
    }
    next = 0;
    if (catch_up(s, backlog, batch, 0, &next, &next_frame, &l, &fig->catchup, &unused))
        goto out;
    wait_counted(l, (int64_t)next);
    for (int k = 0; k < NRATES; k++) {
        engine_listener_stats before, after;
        /* Every event of the rates before is applied and counted (or said
         * missing), so this rate's histogram holds its own events only. */
        wait_caught_up(s, 120 * 1000000LL);
        wait_counted(l, (int64_t)next);
        if (engine_listener_stats_get(l, &before, &e) != SL_OK)
            goto out;
        int64_t missing_before = (int64_t)next - before.events_applied;
        int64_t start = mono_us(), end = start + (int64_t)seconds * 1000000;
        uint64_t written = 0;
        for (int64_t tick = start; mono_us() < end; tick += 1000) {
            /* Writes due by now at the offered rate, in one batch per ms (a
             * writer that falls behind catches up with batches of up to 1000). */
            int64_t now = mono_us();
            if (now < tick)
                usleep((useconds_t)(tick - now));
            uint64_t due = (uint64_t)((double)(mono_us() - start) / 1e6 * rates[k]) + 1;
            if (due > written) {
                size_t n = due - written > 1000 ? 1000 : (size_t)(due - written);
                if (!write_batch(s, &next, &next_frame, n, 0))
                    goto out;
                written += n;
            }
        }
        int64_t wrote_end = mono_us();
        double wsecs = (double)(wrote_end - start) / 1e6;
        int caught = wait_caught_up(s, 120 * 1000000LL);
        int64_t applied_end = mono_us();
        if (!caught)
            fprintf(stderr, "listener_bench: not caught up 2 minutes after the writes\n");
        wait_counted(l, (int64_t)next);
        if (engine_listener_stats_get(l, &after, &e) != SL_OK)
            goto out;
        if (!caught) /* whatever was applied, was applied by now */
            applied_end = mono_us();
        for (int i = 0; i < ENGINE_LAG_BUCKETS; i++)
            after.lag_hist[i] -= before.lag_hist[i];
        int64_t applied = after.events_applied - before.events_applied;
        fig->wrote[k] = (double)written / wsecs;
        fig->applied[k] = (double)applied / ((double)(applied_end - start) / 1e6);
        fig->tail_ms[k] = caught ? (double)(applied_end - wrote_end) / 1e3 : -1;
        /* Missing: written but not counted as applied when the waits ended.
         * Events carried over from the rate before would mix into this
         * rate's histogram: then it has no lag figure either. */
        fig->missing[k] = (int64_t)next - after.events_applied;
        fig->carried[k] = missing_before;
        int complete = fig->missing[k] == 0 && missing_before == 0;
        fig->p50[k] = complete ? percentile(after.lag_hist, 0.50) : -1;
        fig->p99[k] = complete ? percentile(after.lag_hist, 0.99) : -1;
    }
    rc = 0;
out:
    engine_listener_stop(&l);
    store_close(&s);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Sorts v[0..n) and returns its median. */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Collects field off (an array of NRATES when k >= 0) of the runs into v,
 * leaving out negative values (a lag of a run that did not catch up);
 * *n_out (may be NULL) receives how many were kept, 0 meaning no median. */
static double field_median(const figures *f, int n, size_t off, int k, double *lo, double *hi,
                           int *n_out)
{
    double v[RUNS_MAX];
    int kept = 0;
    for (int i = 0; i < n; i++) {
        double x = ((const double *)((const char *)&f[i] + off))[k < 0 ? 0 : k];
        if (x >= 0)
            v[kept++] = x;
    }
    if (n_out)
        *n_out = kept;
    if (!kept) {
        *lo = *hi = -1;
        return -1;
    }
    double m = median(v, kept);
    *lo = v[0];
    *hi = v[kept - 1];
    return m;
}

/* A lag bucket as a figure: the last bucket is every lag from 1024 ms up. */
static const char *lag_text(double ms, char buf[16])
{
    if (ms >= ENGINE_LAG_BUCKETS - 1)
        snprintf(buf, 16, ">=%d", ENGINE_LAG_BUCKETS - 1);
    else
        snprintf(buf, 16, "%.0f", ms);
    return buf;
}

static int remove_files(const char *dir)
{
    static const char *const names[] = {"bench.db", "bench.db-wal", "bench.db-shm",
                                        "mixed.db", "mixed.db-wal", "mixed.db-shm"};
    char path[160];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    return rmdir(dir);
}

int main(int argc, char **argv)
{
    long backlog = argc > 1 ? atol(argv[1]) : 200000;
    int seconds = argc > 2 ? atoi(argv[2]) : 3;
    long batch = argc > 3 ? atol(argv[3]) : 0;
    int runs = argc > 4 ? atoi(argv[4]) : 3;
    if (argc > 5 && strlen(argv[5]) < 256)
        uri_params = argv[5];
    if (backlog < 1000 || backlog > 10000000 || seconds < 1 || seconds > 60 || batch < 0 ||
        batch > 65536 || runs < 1 || runs > RUNS_MAX) {
        fprintf(stderr,
                "usage: listener_bench [backlog_events 1000..1e7] [seconds 1..60] "
                "[batch_max 0..65536, 0: the default] [runs 1..%d]\n",
                RUNS_MAX);
        return 2;
    }
    printf("listener_bench: %d brands x %d campaigns, %d sectors, %d asset ids, 3 metrics; "
           "%ld-event backlogs; %d s per rate; %d runs\n",
           BRANDS, CAMPAIGNS, SECTORS, ASSETS, backlog, seconds, runs);
    figures figs[RUNS_MAX] = {0};
    for (int r = 0; r < runs; r++) {
        char dir[] = "/tmp/sl-listener-bench-XXXXXX";
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            return 1;
        }
        int rc = run_once(dir, backlog, seconds, batch, &figs[r]);
        remove_files(dir);
        if (rc)
            return rc;
        figures *f = &figs[r];
        printf("run %d: catch-up %.0f events/s; with frames %.0f events/s (%.0f asset events/s);"
               " lag p50/p99 ms at",
               r + 1, f->catchup, f->mixed, f->mixed_asset);
        for (int k = 0; k < NRATES; k++) {
            char a[16], b[16];
            if (f->p50[k] >= 0)
                printf(" %dk %s/%s", rates[k] / 1000, lag_text(f->p50[k], a),
                       lag_text(f->p99[k], b));
            else if (f->carried[k])
                printf(" %dk NOT CAUGHT UP (%lld events of the rate before unapplied)",
                       rates[k] / 1000, (long long)f->carried[k]);
            else
                printf(" %dk NOT CAUGHT UP (%lld events unapplied)", rates[k] / 1000,
                       (long long)f->missing[k]);
            printf("%s", k + 1 < NRATES ? "," : "");
        }
        printf(" (wrote %.0f/s at %dk)\n", f->wrote[NRATES - 1], rates[NRATES - 1] / 1000);
        fflush(stdout);
    }
    double lo, hi, m;
    m = field_median(figs, runs, offsetof(figures, catchup), -1, &lo, &hi, NULL);
    printf("catch-up: %ld asset events: median %.0f events/s (min %.0f, max %.0f)\n", backlog, m,
           lo, hi);
    m = field_median(figs, runs, offsetof(figures, mixed), -1, &lo, &hi, NULL);
    printf("catch-up with frames (%d of every %d events): median %.0f events/s (min %.0f, max "
           "%.0f)",
           FRAMES_PER_ASSET, FRAMES_PER_ASSET + 1, m, lo, hi);
    m = field_median(figs, runs, offsetof(figures, mixed_asset), -1, &lo, &hi, NULL);
    printf(", of them asset events: median %.0f/s (min %.0f, max %.0f)\n", m, lo, hi);
    for (int k = 0; k < NRATES; k++) {
        double tlo, thi, p50lo, p50hi, p99lo, p99hi;
        int caught = 0;
        double wm = field_median(figs, runs, offsetof(figures, wrote), k, &lo, &hi, NULL);
        double am = field_median(figs, runs, offsetof(figures, applied), k, &lo, &hi, NULL);
        int tn = 0;
        double tm = field_median(figs, runs, offsetof(figures, tail_ms), k, &tlo, &thi, &tn);
        double p50 = field_median(figs, runs, offsetof(figures, p50), k, &p50lo, &p50hi, &caught);
        double p99 = field_median(figs, runs, offsetof(figures, p99), k, &p99lo, &p99hi, NULL);
        printf("offered %5d writes/s: wrote %.0f/s (over the writing time), applied %.0f "
               "events/s (from the first write until the last was applied, or the wait for it "
               "gave up)",
               rates[k], wm, am);
        if (tn)
            printf(", caught up a median %.0f ms after the writes stopped (min %.0f, max %.0f)", tm,
                   tlo, thi);
        if (caught < runs) {
            printf(", NOT CAUGHT UP in %d of %d runs (events unapplied:", runs - caught, runs);
            for (int r = 0; r < runs; r++)
                if (figs[r].p50[k] < 0)
                    printf(" %lld", (long long)(figs[r].missing[k] > figs[r].carried[k]
                                                    ? figs[r].missing[k]
                                                    : figs[r].carried[k]));
            printf(")");
        }
        if (caught) {
            char a[16], b[16], c[16], d[16], e2[16], f2[16];
            printf(", lag commit->applied of every written event p50 median %s ms (min %s, max "
                   "%s), p99 median %s ms (min %s, max %s) (1 ms buckets, floor; over the %d of %d "
                   "runs that caught up)\n",
                   lag_text(p50, a), lag_text(p50lo, b), lag_text(p50hi, c), lag_text(p99, d),
                   lag_text(p99lo, e2), lag_text(p99hi, f2), caught, runs);
        } else {
            printf(": no lag figure\n");
        }
    }
    return 0;
}
