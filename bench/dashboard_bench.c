/* dashboard_bench.c -- GET /v1/brands/{b} latency with 1,000 and with
 * 10,000,000 assets in the brand: the store is loaded through the store port
 * in big batches, `sightline serve` (with its listener) builds the
 * aggregates, then one keep-alive client asks for each brand many times.
 * Prints load and aggregate-build times, client-side and server-side (access
 * log duration_us) p50/p99 for both sizes, and the p99 ratio.
 * Usage: dashboard_bench [big_assets (10000000)] [requests_per_size (20000)]
 * The store lives in a temporary directory under $TMPDIR (/tmp), removed at
 * the end: about 600 bytes per asset. */
#include "store/store.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SL_BINARY
#error "SL_BINARY must name the sightline binary"
#endif

#define SMALL      1000
#define BATCH      50000 /* documents per store batch */
#define CAMPAIGNS  10
#define SECTORS    5
#define WARMUP     2000 /* requests per size before measuring */
#define BLOCK      500  /* requests to one brand before switching to the other */
#define SERVE_WAIT 30000
#define BACKLOG    (4 * BATCH) /* events the listener may lag behind the load */

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
static void asset_doc(bson_t *d, const char *brand, uint64_t n)
{
    char id[32], pk[64], gsk[160], campaign[16], sector[16];
    snprintf(id, sizeof id, "%s-%09" PRIu64, brand, n);
    snprintf(campaign, sizeof campaign, "c%d", (int)(rnd() % CAMPAIGNS));
    snprintf(sector, sizeof sector, "sector%d", (int)(rnd() % SECTORS));
    snprintf(pk, sizeof pk, "T#bench#ASSET#%s", id);
    snprintf(gsk, sizeof gsk, "BRAND#%s#CAMPAIGN#%s#ASSET#%s", brand, campaign, id);
    int64_t mem = (int64_t)(rnd() % 1000001), logo = (int64_t)(rnd() % 1000001),
            product = (int64_t)(rnd() % 1000001);
    BSON_APPEND_UTF8(d, "pk", pk);
    BSON_APPEND_UTF8(d, "sk", "META");
    BSON_APPEND_UTF8(d, "gsi1pk", "T#bench#ASSETS");
    BSON_APPEND_UTF8(d, "gsi1sk", gsk);
    BSON_APPEND_UTF8(d, "type", "asset");
    BSON_APPEND_UTF8(d, "tenant", "bench");
    BSON_APPEND_UTF8(d, "asset", id);
    BSON_APPEND_UTF8(d, "client", "client");
    BSON_APPEND_UTF8(d, "brand", brand);
    BSON_APPEND_UTF8(d, "brand_id", "");
    BSON_APPEND_UTF8(d, "sector", sector);
    BSON_APPEND_UTF8(d, "campaign", campaign);
    BSON_APPEND_UTF8(d, "media_type", "image");
    BSON_APPEND_DOUBLE(d, "memorability", (double)mem / 1e6);
    BSON_APPEND_INT64(d, "memorability_micro", mem);
    bson_t s;
    BSON_APPEND_DOCUMENT_BEGIN(d, "saliency", &s);
    BSON_APPEND_DOUBLE(&s, "logo", (double)logo / 1e6);
    BSON_APPEND_DOUBLE(&s, "product", (double)product / 1e6);
    bson_append_document_end(d, &s);
    BSON_APPEND_DOCUMENT_BEGIN(d, "saliency_micro", &s);
    BSON_APPEND_INT64(&s, "logo", logo);
    BSON_APPEND_INT64(&s, "product", product);
    bson_append_document_end(d, &s);
    BSON_APPEND_UTF8(d, "model_version", "m-1");
}

/* ---- processes ---- */
static pid_t spawn(const char *out, const char *err, const char *const *argv)
{
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int o = open(out, O_WRONLY | O_CREAT | O_APPEND, 0600);
        int e = open(err, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (o < 0 || e < 0)
            _exit(126);
        dup2(o, 1);
        dup2(e, 2);
        execv(SL_BINARY, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static int run(char *out, size_t cap, const char *const *argv)
{
    int fds[2], status = 0;
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execv(SL_BINARY, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    char buf[512];
    while ((r = read(fds[0], buf, sizeof buf)) > 0 || (r < 0 && errno == EINTR))
        for (ssize_t i = 0; i < r; i++)
            if (out && n + 1 < cap)
                out[n++] = buf[i];
    close(fds[0]);
    if (out) {
        out[n] = '\0';
        if (n && out[n - 1] == '\n')
            out[n - 1] = '\0';
    }
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
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

static char metrics_buf[1 << 16];
static size_t metrics_len;
static size_t keep(char *p, size_t size, size_t n, void *ud)
{
    (void)ud;
    size_t add = size * n;
    if (metrics_len + add < sizeof metrics_buf) {
        memcpy(metrics_buf + metrics_len, p, add);
        metrics_len += add;
        metrics_buf[metrics_len] = '\0';
    }
    return add;
}

/* sightline_feed_behind_events from /metrics; -1 when unknown. */
static double behind(CURL *c, const char *url)
{
    char u[256];
    double v = -1;
    snprintf(u, sizeof u, "%s/metrics", url);
    metrics_len = 0;
    metrics_buf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, u);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    if (curl_easy_perform(c) == CURLE_OK) {
        const char *at = strstr(metrics_buf, "\nsightline_feed_behind_events ");
        if (at)
            v = strtod(at + 30, NULL);
    }
    return v;
}

/* Writes n assets of brand through the store port, BATCH per transaction.
 * Between batches it lets the listener (of the server at url) catch up to
 * BACKLOG events: a writer that never pauses starves the listener of the
 * write lock, and the store prunes unapplied events past its retention. */
static int load(store *st, const char *brand, uint64_t n, CURL *c, const char *url)
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
        for (double lag; (lag = behind(c, url)) < 0 || lag > BACKLOG;)
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
    char dir[512], uri[600], log[600], err[600], key[128], auth[200], url[128] = "";
    int status = 1;
    pid_t server = -1;
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
    snprintf(log, sizeof log, "%s/access.log", dir);
    snprintf(err, sizeof err, "%s/serve.err", dir);
    const char *tenant_args[] = {"sightline",    "tenants", "create", "bench", "--kind",
                                 "brand-client", "--store", uri,      NULL};
    const char *key_args[] = {"sightline", "keys",   "create",  "--tenant", "bench",
                              "--role",    "viewer", "--store", uri,        NULL};
    if (run(NULL, 0, tenant_args) != 0 || run(key, sizeof key, key_args) != 0) {
        fprintf(stderr, "dashboard_bench: cannot create the tenant and key\n");
        goto out;
    }

    /* 1. The server; its listener builds the aggregates from the feed while
     * the assets are loaded (a backlog of ten million events would pass the
     * store's default feed retention). */
    const char *serve_args[] = {"sightline",   "serve",        "--store", uri, "--listen",
                                "127.0.0.1:0", "--access-log", log,       NULL};
    if ((server = spawn("/dev/null", err, serve_args)) < 0)
        goto out;
    for (int i = 0; i < SERVE_WAIT / 20 && !url[0]; i++) {
        char buf[2048] = "";
        FILE *f = fopen(err, "r");
        if (f) {
            buf[fread(buf, 1, sizeof buf - 1, f)] = '\0';
            fclose(f);
        }
        const char *at = strstr(buf, "listening on ");
        if (at && strchr(at, '\n'))
            sscanf(at + 13, "%127s", url);
        usleep(20000);
    }
    if (!url[0]) {
        fprintf(stderr, "dashboard_bench: the server did not start (see %s)\n", err);
        goto out;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    c = curl_easy_init();

    /* 2. Assets through the store port, in big batches. */
    store_options so = {.cache_bytes = 256ll << 20};
    sl_error e;
    sl_error_clear(&e);
    if (store_open(uri, &so, &st, &e) != SL_OK) {
        fprintf(stderr, "dashboard_bench: %s\n", e.message);
        goto out;
    }
    int64_t t0 = mono_us();
    if (load(st, "small", SMALL, c, url) != 0 || load(st, "big", big, c, url) != 0)
        goto out;
    int64_t t1 = mono_us();
    store_close(&st);
    double left = behind(c, url);
    while (behind(c, url) != 0)
        usleep(100000);
    int64_t t2 = mono_us();
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
    const char *brands[2] = {"small", "big"};
    char urls[2][256];
    for (int b = 0; b < 2; b++)
        snprintf(urls[b], sizeof urls[b], "%s/v1/brands/%s", url, brands[b]);
    /* The aggregates must be whole before their latency means anything. */
    for (int b = 0; b < 2; b++) {
        uint64_t want = b ? big : SMALL;
        metrics_len = 0;
        metrics_buf[0] = '\0';
        curl_easy_setopt(c, CURLOPT_URL, urls[b]);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep);
        const char *at =
            curl_easy_perform(c) == CURLE_OK ? strstr(metrics_buf, "\"count\":") : NULL;
        if (!at || strtoull(at + 8, NULL, 10) != want) {
            fprintf(stderr, "dashboard_bench: brand %s should count %" PRIu64 " assets: %.200s\n",
                    brands[b], want, metrics_buf);
            goto out;
        }
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    for (size_t i = 0; i < 2 * (WARMUP + reqs); i++) {
        int b = (int)((i / BLOCK) % 2);
        size_t k = i / (2 * BLOCK) * BLOCK + i % BLOCK; /* index within brand b */
        long code = 0;
        curl_easy_setopt(c, CURLOPT_URL, urls[b]);
        int64_t a = mono_us();
        CURLcode rc = curl_easy_perform(c);
        int64_t d = mono_us() - a;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        if (rc != CURLE_OK || code != 200) {
            fprintf(stderr, "dashboard_bench: GET %s: %s %ld\n", urls[b], curl_easy_strerror(rc),
                    code);
            goto out;
        }
        if (k >= WARMUP && k - WARMUP < reqs)
            cl[b][k - WARMUP] = d;
    }
    kill(server, SIGTERM); /* flushes the access log */
    waitpid(server, NULL, 0);
    server = -1;

    printf("dashboard_bench: GET /v1/brands/{b}, %zu requests per brand after %d warm-up, one "
           "keep-alive connection (client: round trip; server: access-log duration_us)\n",
           reqs, WARMUP);
    int64_t p99c[2], p99s[2];
    for (int b = 0; b < 2; b++) {
        char path[64];
        snprintf(path, sizeof path, "/v1/brands/%s", brands[b]);
        size_t ns = server_durations(log, path, WARMUP, sv, reqs);
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
    if (server > 0) {
        kill(server, SIGTERM);
        waitpid(server, NULL, 0);
    }
    store_close(&st);
    if (h)
        curl_slist_free_all(h);
    if (c)
        curl_easy_cleanup(c);
    free(cl[0]);
    free(cl[1]);
    free(sv);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return status;
}
