/* listener_bench.c -- events/s the listener applies from a backlog, and the
 * commit-to-applied lag (p50/p99) at 1k, 10k and 50k asset writes/s offered.
 * Usage: listener_bench [backlog_events] [seconds_per_rate] [batch_max] */
#include "engine/engine.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BRANDS    50
#define CAMPAIGNS 5
#define SECTORS   10
#define ASSETS    100000

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

/* Writes n assets in one atomic batch. */
static int write_batch(store *s, uint64_t *next, size_t n)
{
    static bson_t docs[1000];
    store_op ops[1000];
    sl_error e;
    sl_error_clear(&e);
    for (size_t i = 0; i < n; i++) {
        bson_init(&docs[i]);
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

/* Waits until the listener's counters include every event written so far
 * (its token can reach the head a moment before its counters are updated). */
static void wait_counted(engine_listener *l, uint64_t events)
{
    engine_listener_stats st;
    for (int i = 0; i < 5000; i++) {
        if (engine_listener_stats_get(l, &st, NULL) == SL_OK &&
            (uint64_t)st.events_applied >= events)
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

/* The ms bucket under which a fraction q of the histogram lies. */
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

int main(int argc, char **argv)
{
    long backlog = argc > 1 ? atol(argv[1]) : 200000;
    int seconds = argc > 2 ? atoi(argv[2]) : 3;
    long batch = argc > 3 ? atol(argv[3]) : 0;
    if (backlog < 1000 || backlog > 10000000 || seconds < 1 || seconds > 60 || batch < 0 ||
        batch > 65536) {
        fprintf(stderr, "usage: listener_bench [backlog_events 1000..1e7] [seconds 1..60] "
                        "[batch_max 0..65536, 0: the default]\n");
        return 2;
    }
    char dir[] = "/tmp/sl-listener-bench-XXXXXX", uri[128];
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(uri, sizeof uri, "sqlite:%s/bench.db", dir);
    store *s = NULL;
    engine_listener *l = NULL;
    sl_error e;
    sl_error_clear(&e);
    int rc = 1;
    uint64_t next = 0;
    if (store_open(uri, NULL, &s, &e) != SL_OK) {
        fprintf(stderr, "listener_bench: %s\n", e.message);
        goto out;
    }
    printf("listener_bench: %d brands x %d campaigns, %d sectors, %d asset ids, 3 metrics\n",
           BRANDS, CAMPAIGNS, SECTORS, ASSETS);

    /* 1. Catch-up from a backlog. */
    for (long done = 0; done < backlog; done += 1000)
        if (!write_batch(s, &next, (size_t)(backlog - done < 1000 ? backlog - done : 1000)))
            goto out;
    engine_listener_options o = {.log = quiet, .holder = "bench", .batch_max = (size_t)batch};
    int64_t t0 = mono_us();
    if (engine_listener_start(s, &o, &l, &e) != SL_OK) {
        fprintf(stderr, "listener_bench: %s\n", e.message);
        goto out;
    }
    if (!wait_caught_up(s, 600 * 1000000LL)) {
        fprintf(stderr, "listener_bench: backlog not applied in 10 minutes\n");
        goto out;
    }
    double secs = (double)(mono_us() - t0) / 1e6;
    wait_counted(l, next);
    printf("catch-up: %ld events applied in %.2f s: %.0f events/s\n", backlog, secs,
           (double)backlog / secs);

    /* 2. Offered rates. */
    static const int rates[] = {1000, 10000, 50000};
    for (size_t k = 0; k < sizeof rates / sizeof rates[0]; k++) {
        engine_listener_stats before, after;
        if (engine_listener_stats_get(l, &before, &e) != SL_OK)
            goto out;
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
                if (!write_batch(s, &next, n))
                    goto out;
                written += n;
            }
        }
        double wsecs = (double)(mono_us() - start) / 1e6;
        if (!wait_caught_up(s, 120 * 1000000LL))
            fprintf(stderr, "listener_bench: not caught up 2 minutes after the writes\n");
        double asecs = (double)(mono_us() - start) / 1e6;
        wait_counted(l, next);
        if (engine_listener_stats_get(l, &after, &e) != SL_OK)
            goto out;
        int64_t applied = after.events_applied - before.events_applied;
        for (int i = 0; i < ENGINE_LAG_BUCKETS; i++)
            after.lag_hist[i] -= before.lag_hist[i];
        printf("offered %5d writes/s: wrote %.0f/s, applied %.0f events/s (all %" PRId64
               " applied %.2f s after the first write), lag commit->applied p50 %d ms, p99 %d ms "
               "(1 ms buckets, floor)\n",
               rates[k], (double)written / wsecs, (double)applied / wsecs, applied, asecs,
               percentile(after.lag_hist, 0.50), percentile(after.lag_hist, 0.99));
    }
    rc = 0;
out:
    engine_listener_stop(&l);
    store_close(&s);
    char path[160];
    static const char *const names[] = {"bench.db", "bench.db-wal", "bench.db-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
    return rc;
}
