/* dashboard_bench.c -- GET /v1/brands/{b} latency with 1,000 and with
 * 10,000,000 assets in the brand: the store is loaded through the store port
 * in big batches, `sightline serve` (with its listener) builds the
 * aggregates, then one keep-alive client asks for each brand many times.
 * Prints load and aggregate-build times, client-side and server-side (access
 * log duration_us) p50/p99 for both sizes, and the p99 ratio.
 * Usage: dashboard_bench [big_assets (10000000)] [requests_per_size (20000)]
 * The store lives in a temporary directory under $TMPDIR (/tmp), removed at
 * the end: about 600 bytes per asset. */
#include "bench/bench.h"
#include "store/store.h"
#include "tests/support/support.h"

#include <curl/curl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SMALL     1000
#define BATCH     50000 /* documents per store batch */
#define CAMPAIGNS 10
#define SECTORS   5
#define WARMUP    2000        /* requests per size before measuring */
#define BLOCK     500         /* requests to one brand before switching to the other */
#define BACKLOG   (4 * BATCH) /* events the listener may lag behind the load */

/* Asset n of brand: random campaign, sector and scores. */
static void asset_doc(bson_t *d, const char *brand, uint64_t n)
{
    char id[32], campaign[16], sector[16];
    snprintf(id, sizeof id, "%s-%09" PRIu64, brand, n);
    snprintf(campaign, sizeof campaign, "c%d", (int)(bench_rnd() % CAMPAIGNS));
    snprintf(sector, sizeof sector, "sector%d", (int)(bench_rnd() % SECTORS));
    bench_asset a = {.tenant = "bench",
                     .id = id,
                     .client = "client",
                     .brand = brand,
                     .brand_id = "",
                     .campaign = campaign,
                     .sector = sector,
                     .saliency = {"logo", "product"}};
    a.memorability = (int64_t)(bench_rnd() % 1000001);
    a.saliency_micro[0] = (int64_t)(bench_rnd() % 1000001);
    a.saliency_micro[1] = (int64_t)(bench_rnd() % 1000001);
    bench_asset_doc(d, &a);
}

static int64_t dir_bytes;
static int add_size(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)path, (void)flag, (void)ftw;
    dir_bytes += sb->st_size;
    return 0;
}

/* ---- HTTP ---- */
static size_t sink(char *p, size_t size, size_t n, void *ud)
{
    (void)p, (void)ud;
    return size * n;
}

/* sightline_feed_behind_events from /metrics; -1 when unknown. */
static double behind(support_client *c)
{
    double v = -1;
    if (support_req(c, "GET", "/metrics", NULL, 0) != 200 ||
        support_metric(support_body(c), "sightline_feed_behind_events", &v) != 0)
        v = -1;
    return v;
}

/* Writes n assets of brand through the store port, BATCH per transaction.
 * Between batches it lets the listener (of the server c talks to) catch up to
 * BACKLOG events: a writer that never pauses starves the listener of the
 * write lock, and the store prunes unapplied events past its retention. */
static int load(store *st, const char *brand, uint64_t n, support_client *c)
{
    sl_error e;
    sl_error_clear(&e);
    for (uint64_t done = 0; done < n;) {
        store_batch *b = NULL;
        if (store_batch_begin(st, &b, &e) != SL_OK)
            goto fail;
        for (uint64_t k = 0; k < BATCH && done < n; k++, done++) {
            bson_t d = BSON_INITIALIZER;
            asset_doc(&d, brand, done);
            sl_status rc =
                store_batch_put(b, STORE_ITEMS, &d, (store_cond){STORE_COND_NONE, 0}, NULL, &e);
            bson_destroy(&d);
            if (rc != SL_OK) {
                store_batch_abort(&b);
                goto fail;
            }
        }
        if (store_batch_commit(&b, &e) != SL_OK)
            goto fail;
        for (double lag; (lag = behind(c)) < 0 || lag > BACKLOG;)
            usleep(20000);
        if (isatty(2))
            fprintf(stderr, "\rdashboard_bench: %s %" PRIu64 "/%" PRIu64, brand, done, n);
    }
    if (isatty(2))
        fprintf(stderr, "\n");
    return 0;
fail:
    fprintf(stderr, "dashboard_bench: loading %s: %s\n", brand, e.message);
    return -1;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t pct(int64_t *v, size_t n, double q)
{
    qsort(v, n, sizeof *v, cmp_i64);
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return n ? v[i < n ? i : n - 1] : -1;
}

/* duration_us of the access-log lines for path, skipping the first `skip`. */
static size_t server_durations(const char *log, const char *path, size_t skip, int64_t *out,
                               size_t cap)
{
    char needle[128], *line = NULL;
    size_t lcap = 0, n = 0, seen = 0;
    snprintf(needle, sizeof needle, "\"path\":\"%s\"", path);
    FILE *f = fopen(log, "r");
    while (f && getline(&line, &lcap, f) > 0) {
        const char *d = strstr(line, needle) ? strstr(line, "\"duration_us\":") : NULL;
        if (d && seen++ >= skip && n < cap)
            out[n++] = strtoll(d + 14, NULL, 10);
    }
    free(line);
    if (f)
        fclose(f);
    return n;
}

int main(int argc, char **argv)
{
    uint64_t big = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000000ull;
    size_t reqs = argc > 2 ? strtoull(argv[2], NULL, 10) : 20000;
    const char *tmp = getenv("TMPDIR") && getenv("TMPDIR")[0] ? getenv("TMPDIR") : "/tmp";
    char dir[512], uri[600], key[128], auth[200];
    int status = 1;
    support_server srv = {.pid = -1};
    support_client *mc = NULL; /* /metrics and the checks, beside the timed handle */
    store *st = NULL;
    CURL *c = NULL;
    struct curl_slist *h = NULL;
    int64_t *cl[2] = {NULL, NULL}, *sv = NULL;
    if (big < 1 || reqs < 100) {
        fprintf(stderr, "usage: dashboard_bench [big_assets >= 1] [requests >= 100]\n");
        return 2;
    }
    reqs = (reqs + BLOCK - 1) / BLOCK * BLOCK; /* whole blocks per brand */
    snprintf(dir, sizeof dir, "%s/sl-dash-bench-XXXXXX", tmp);
    if (!mkdtemp(dir)) {
        perror("dashboard_bench: mkdtemp");
        return 1;
    }
    snprintf(uri, sizeof uri, "sqlite:%s/sl.db", dir);
    if (support_tenant(uri, "bench", "brand-client") != 0 ||
        support_key(uri, "bench", "viewer", key) != 0) {
        fprintf(stderr, "dashboard_bench: cannot create the tenant and key\n");
        goto out;
    }

    /* 1. The server (access log: its stdout, srv.log_path); its listener
     * builds the aggregates from the feed while the assets are loaded (a
     * backlog of ten million events would pass the store's default feed
     * retention). */
    if (support_server_init(&srv, dir, uri) != 0 || support_server_startv(&srv, NULL) != 0) {
        fprintf(stderr, "dashboard_bench: the server did not start (see %s)\n", srv.err_path);
        goto out;
    }
    if (!(mc = support_client_new(srv.url, key)) || !(c = curl_easy_init()))
        goto out;

    /* 2. Assets through the store port, in big batches. */
    store_options so = {.cache_bytes = 256ll << 20};
    sl_error e;
    sl_error_clear(&e);
    if (store_open(uri, &so, &st, &e) != SL_OK) {
        fprintf(stderr, "dashboard_bench: %s\n", e.message);
        goto out;
    }
    int64_t t0 = bench_mono_us();
    if (load(st, "small", SMALL, mc) != 0 || load(st, "big", big, mc) != 0)
        goto out;
    int64_t t1 = bench_mono_us();
    store_close(&st);
    double left = behind(mc);
    while (behind(mc) != 0)
        usleep(100000);
    int64_t t2 = bench_mono_us();
    nftw(dir, add_size, 16, FTW_PHYS);
    printf("dashboard_bench: load through the store port: %" PRIu64 " assets in %.1f s (%.0f "
           "docs/s, batches of %d), store %.2f GB\n",
           big + SMALL, (t1 - t0) / 1e6, (double)(big + SMALL) / ((t1 - t0) / 1e6), BATCH,
           dir_bytes / 1e9);
    printf("dashboard_bench: aggregates built by the listener meanwhile (the load pauses while "
           "it lags more than %d events): caught up %.1f s after the load (%.0f events behind "
           "then)\n",
           BACKLOG, (t2 - t1) / 1e6, left);
    fflush(stdout);

    /* 3. Latency: one keep-alive connection, blocks alternating between brands. */
    const char *brands[2] = {"small", "big"};
    char urls[2][256];
    for (int b = 0; b < 2; b++)
        snprintf(urls[b], sizeof urls[b], "%s/v1/brands/%s", srv.url, brands[b]);
    /* The aggregates must be whole before their latency means anything. */
    for (int b = 0; b < 2; b++) {
        uint64_t want = b ? big : SMALL;
        char path[64];
        snprintf(path, sizeof path, "/v1/brands/%s", brands[b]);
        const char *at = support_req(mc, "GET", path, NULL, 0) == 200
                             ? strstr(support_body(mc), "\"count\":")
                             : NULL;
        if (!at || strtoull(at + 8, NULL, 10) != want) {
            fprintf(stderr, "dashboard_bench: brand %s should count %" PRIu64 " assets: %.200s\n",
                    brands[b], want, support_body(mc));
            goto out;
        }
    }
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    h = curl_slist_append(NULL, auth);
    cl[0] = calloc(reqs, sizeof *cl[0]);
    cl[1] = calloc(reqs, sizeof *cl[1]);
    sv = calloc(reqs, sizeof *sv);
    if (!cl[0] || !cl[1] || !sv)
        goto out;
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    for (size_t i = 0; i < 2 * (WARMUP + reqs); i++) {
        int b = (int)((i / BLOCK) % 2);
        size_t k = i / (2 * BLOCK) * BLOCK + i % BLOCK; /* index within brand b */
        long code = 0;
        curl_easy_setopt(c, CURLOPT_URL, urls[b]);
        int64_t a = bench_mono_us();
        CURLcode rc = curl_easy_perform(c);
        int64_t d = bench_mono_us() - a;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        if (rc != CURLE_OK || code != 200) {
            fprintf(stderr, "dashboard_bench: GET %s: %s %ld\n", urls[b], curl_easy_strerror(rc),
                    code);
            goto out;
        }
        if (k >= WARMUP && k - WARMUP < reqs)
            cl[b][k - WARMUP] = d;
    }
    support_server_stop(&srv); /* flushes the access log */

    printf("dashboard_bench: GET /v1/brands/{b}, %zu requests per brand after %d warm-up, one "
           "keep-alive connection (client: round trip; server: access-log duration_us)\n",
           reqs, WARMUP);
    int64_t p99c[2], p99s[2];
    for (int b = 0; b < 2; b++) {
        char path[64];
        snprintf(path, sizeof path, "/v1/brands/%s", brands[b]);
        size_t ns = server_durations(srv.log_path, path, WARMUP, sv, reqs);
        int64_t c50 = pct(cl[b], reqs, 0.5), c99 = pct(cl[b], reqs, 0.99);
        int64_t s50 = pct(sv, ns, 0.5), s99 = pct(sv, ns, 0.99);
        p99c[b] = c99;
        p99s[b] = s99;
        printf("dashboard_bench:   %10" PRIu64 " assets: client p50 %" PRId64 " us p99 %" PRId64
               " us | server p50 %" PRId64 " us p99 %" PRId64 " us (%zu log lines)\n",
               b ? big : (uint64_t)SMALL, c50, c99, s50, s99, ns);
    }
    printf("dashboard_bench:   p99 ratio %" PRIu64 " / %d assets: client %.2f, server %.2f\n", big,
           SMALL, (double)p99c[1] / (double)p99c[0], (double)p99s[1] / (double)p99s[0]);
    status = 0;
out:
    support_server_stop(&srv);
    support_client_free(&mc);
    store_close(&st);
    if (h)
        curl_slist_free_all(h);
    if (c)
        curl_easy_cleanup(c);
    free(cl[0]);
    free(cl[1]);
    free(sv);
    support_rmrf(dir);
    return status;
}
