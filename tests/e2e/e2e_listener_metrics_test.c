/* e2e_listener_metrics_test.c -- the listener's counters on /metrics of the
 * real `sightline serve` (issue 10, item 8), each made to move by its cause
 * and by nothing else, in turn:
 *
 *   events_applied_total, commits_total, the apply_latency_seconds count,
 *   applied_events_per_second   writes (the rate > 0 while they go on, 0
 *                               after a second without)
 *   events_skipped_total        a malformed asset written through the store
 *   conflicts_total             a brand aggregate the listener holds in its
 *                               cache rewritten behind its back, then written to
 *   quarantined, quarantined_total, quarantine_skips_total
 *                               a brand aggregate damaged, then written to;
 *                               recompute --repair brings the gauge back to 0
 *   lease_held, the latency histogram's upper buckets
 *                               the lease taken by someone else for 5 s while
 *                               assets are written: nothing is applied until it
 *                               expires, then they are, each more than 1 s late
 *   errors_total                the SQLite write lock held by another
 *                               connection past the store's busy_ms
 *
 * Always: the latency histogram counts every applied event. */
#include "tests/check.h"
#include "tests/e2e/e2e.h"

#include <sqlite3.h>
#include <time.h>

#include "store/store.h"

static support_client *in, *view;
static store *st;
static char dir[128], store_uri[256], db_path[200];

/* ---- /metrics ---- */
typedef struct snap {
    double applied, skipped, commits, conflicts, errors, quarantined, quarantined_total, skips;
    double rate, lease_held, behind, lat_count, lat_sum, lat_le1, lat_inf;
} snap;

static void read_metrics(snap *s)
{
    static const struct {
        const char *name;
        size_t at;
    } fields[] = {
        {"sightline_listener_events_applied_total", offsetof(snap, applied)},
        {"sightline_listener_events_skipped_total", offsetof(snap, skipped)},
        {"sightline_listener_commits_total", offsetof(snap, commits)},
        {"sightline_listener_conflicts_total", offsetof(snap, conflicts)},
        {"sightline_listener_errors_total", offsetof(snap, errors)},
        {"sightline_listener_quarantined", offsetof(snap, quarantined)},
        {"sightline_listener_quarantined_total", offsetof(snap, quarantined_total)},
        {"sightline_listener_quarantine_skips_total", offsetof(snap, skips)},
        {"sightline_listener_applied_events_per_second", offsetof(snap, rate)},
        {"sightline_listener_lease_held", offsetof(snap, lease_held)},
        {"sightline_feed_behind_events", offsetof(snap, behind)},
        {"sightline_listener_apply_latency_seconds_count", offsetof(snap, lat_count)},
        {"sightline_listener_apply_latency_seconds_sum", offsetof(snap, lat_sum)},
        {"sightline_listener_apply_latency_seconds_bucket{le=\"1\"}", offsetof(snap, lat_le1)},
        {"sightline_listener_apply_latency_seconds_bucket{le=\"+Inf\"}", offsetof(snap, lat_inf)},
    };
    REQUIRE(support_req(view, "GET", "/metrics", NULL, 0) == 200);
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        double *v = (double *)((char *)s + fields[i].at);
        *v = -1;
        if (support_metric(support_body(view), fields[i].name, v) != 0)
            fprintf(stderr, "/metrics has no %s\n", fields[i].name);
    }
    /* The histogram counts every applied event, once. */
    CHECK(s->lat_count == s->applied && s->lat_inf == s->lat_count);
}

/* Reads /metrics until done(s) holds (a time bound, not a sleep: the
 * counters move right after the commit feed_behind_events sees). */
static int wait_for(snap *s, int (*done)(const snap *s, const snap *ref), const snap *ref,
                    int timeout_ms, const char *what)
{
    long until = support_now_ms() + timeout_ms;
    for (;;) {
        read_metrics(s);
        if (done(s, ref))
            return 0;
        if (support_now_ms() >= until)
            break;
        support_sleep_ms(20);
    }
    fprintf(stderr, "after %d ms still not: %s\n", timeout_ms, what);
    return -1;
}

static double want_applied;
static int applied_reached(const snap *s, const snap *ref)
{
    (void)ref;
    return s->applied >= want_applied && s->behind == 0;
}

/* ---- writes ---- */
static int put_asset(const char *id, const char *brand, const char *score)
{
    char body[512], path[128];
    snprintf(body, sizeof body,
             "{\"client\":\"c\",\"brand\":\"%s\",\"campaign\":\"spring\",\"sector\":\"%s-s\","
             "\"media_type\":\"image\",\"memorability\":%s,\"saliency\":{}}",
             brand, brand, score);
    snprintf(path, sizeof path, "/v1/assets/%s", id);
    long s = support_req(in, "PUT", path, body, strlen(body));
    if (s != 200 && s != 201)
        fprintf(stderr, "PUT %s answered %ld: %.300s\n", path, s, support_body(in));
    return s == 200 || s == 201 ? 0 : -1;
}

/* Rewrites (pk, sk) of the aggregates table in one write, under a version
 * condition (tried again when the listener wrote it meanwhile, as a lease
 * renewal may): field f1 set to the string s1, and (f2 not NULL) field f2 set
 * to the int64 n2. */
static void rewrite(const char *pk, const char *sk, const char *f1, const char *s1, const char *f2,
                    int64_t n2)
{
    sl_status rc = SL_ECONDITION;
    for (int attempt = 0; rc == SL_ECONDITION && attempt < 100; attempt++) {
        bson_t *doc = NULL, out = BSON_INITIALIZER;
        bson_iter_t it;
        REQUIRE(store_get(st, STORE_AGGREGATES, pk, sk, &doc, NULL) == SL_OK);
        REQUIRE(bson_iter_init_find(&it, doc, "v") && BSON_ITER_HOLDS_INT64(&it));
        int64_t v = bson_iter_int64(&it);
        int found = 0;
        REQUIRE(bson_iter_init(&it, doc));
        while (bson_iter_next(&it)) {
            const char *k = bson_iter_key(&it);
            if (!strcmp(k, f1)) {
                BSON_APPEND_UTF8(&out, k, s1);
                found++;
            } else if (f2 && !strcmp(k, f2)) {
                BSON_APPEND_INT64(&out, k, n2);
                found++;
            } else {
                bson_append_iter(&out, k, -1, &it);
            }
        }
        REQUIRE(found == 1 + (f2 != NULL));
        rc = store_put(st, STORE_AGGREGATES, &out, (store_cond){STORE_COND_VERSION, v}, NULL, NULL);
        bson_destroy(&out);
        bson_destroy(doc);
    }
    CHECK_INT(rc, SL_OK);
}

static long get_count(const char *brand)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/brands/%s", brand);
    long s = support_req(view, "GET", path, NULL, 0);
    if (s != 200)
        return -s;
    yajl_val v = e2e_json(support_body(view));
    long n = (long)e2e_get_int(v, "count", -1);
    if (v)
        yajl_tree_free(v);
    return n;
}

/* ---- the causes ---- */
static int brand_counts[5];
static const char *const brands[5] = {"Nike", "Adidas", "Puma", "Reebok", "Asics"};

static int rate_up(const snap *s, const snap *ref)
{
    (void)ref;
    return s->rate > 0;
}

static int rate_down(const snap *s, const snap *ref)
{
    (void)ref;
    return s->rate == 0;
}

static void test_applied(void)
{
    snap a, b;
    read_metrics(&a);
    /* One NDJSON batch of 200 assets and 5 single PUTs. */
    static char body[200 * 256];
    size_t len = 0;
    for (int i = 0; i < 200; i++) {
        len += (size_t)snprintf(body + len, sizeof body - len,
                                "{\"asset\":\"b-%03d\",\"client\":\"c\",\"brand\":\"%s\","
                                "\"campaign\":\"spring\",\"sector\":\"%s-s\",\"media_type\":"
                                "\"image\",\"memorability\":0.%03d,\"saliency\":{}}\n",
                                i, brands[i % 5], brands[i % 5], i);
        brand_counts[i % 5]++;
    }
    CHECK_INT(support_req(in, "POST", "/v1/assets:batch", body, len), 200);
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof id, "s-%d", i);
        CHECK_INT(put_asset(id, brands[i], "0.5"), 0);
        brand_counts[i]++;
    }
    want_applied = a.applied + 205;
    CHECK_INT(wait_for(&b, applied_reached, NULL, 30000, "205 events applied"), 0);
    CHECK_INT(b.applied - a.applied, 205);
    CHECK_INT(b.lat_count - a.lat_count, 205);
    CHECK(b.commits - a.commits >= 1 && b.commits - a.commits <= 205);
    CHECK_INT(b.skipped - a.skipped, 0);
    CHECK_INT(b.conflicts - a.conflicts, 0);
    CHECK_INT(b.quarantined_total - a.quarantined_total, 0);
    for (int i = 0; i < 5; i++)
        CHECK_INT(get_count(brands[i]), brand_counts[i]);

    /* The rate: above 0 while writes go on (one at a time until it shows),
     * never above what was applied since start; 0 once they stop. */
    long until = support_now_ms() + 15000;
    int n = 0;
    do {
        char id[16];
        snprintf(id, sizeof id, "r-%d", n++ % 50);
        CHECK_INT(put_asset(id, "Asics", "0.25"), 0);
        read_metrics(&b);
    } while (!rate_up(&b, NULL) && support_now_ms() < until);
    fprintf(stderr, "applied_events_per_second %.1f after %d more writes\n", b.rate, n);
    CHECK(b.rate > 0);
    CHECK(b.rate <= b.applied);
    brand_counts[4] += n < 50 ? n : 50;
    CHECK_INT(wait_for(&b, rate_down, NULL, 15000, "a rate of 0 when idle"), 0);
}

static void test_skipped(void)
{
    snap a, b;
    read_metrics(&a);
    /* An asset whose micro-units are out of range, as only a writer that
     * bypasses ingest can store: it contributes nothing. */
    bson_t *d = bson_new();
    BSON_APPEND_UTF8(d, "pk", "T#acme#ASSET#bad-1");
    BSON_APPEND_UTF8(d, "sk", "META");
    BSON_APPEND_UTF8(d, "gsi1pk", "T#acme#ASSETS");
    BSON_APPEND_UTF8(d, "gsi1sk", "BRAND#Nike#CAMPAIGN#spring#ASSET#bad-1");
    BSON_APPEND_UTF8(d, "type", "asset");
    BSON_APPEND_UTF8(d, "tenant", "acme");
    BSON_APPEND_UTF8(d, "asset", "bad-1");
    BSON_APPEND_UTF8(d, "client", "c");
    BSON_APPEND_UTF8(d, "brand", "Nike");
    BSON_APPEND_UTF8(d, "brand_id", "");
    BSON_APPEND_UTF8(d, "sector", "Nike-s");
    BSON_APPEND_UTF8(d, "campaign", "spring");
    BSON_APPEND_UTF8(d, "media_type", "image");
    BSON_APPEND_DOUBLE(d, "memorability", 2.0);
    BSON_APPEND_INT64(d, "memorability_micro", 2000000);
    bson_t sub;
    BSON_APPEND_DOCUMENT_BEGIN(d, "saliency", &sub);
    bson_append_document_end(d, &sub);
    BSON_APPEND_DOCUMENT_BEGIN(d, "saliency_micro", &sub);
    bson_append_document_end(d, &sub);
    BSON_APPEND_UTF8(d, "model_version", "");
    CHECK_INT(store_put(st, STORE_ITEMS, d, (store_cond){0}, NULL, NULL), SL_OK);
    bson_destroy(d);
    want_applied = a.applied + 1;
    CHECK_INT(wait_for(&b, applied_reached, NULL, 30000, "the malformed asset applied"), 0);
    CHECK_INT(b.skipped - a.skipped, 1);
    CHECK_INT(b.applied - a.applied, 1);
    CHECK_INT(get_count("Nike"), brand_counts[0]);
}

static int conflicted(const snap *s, const snap *ref)
{
    return s->conflicts > ref->conflicts && s->behind == 0 && s->applied > ref->applied;
}

static void test_conflict(void)
{
    snap a, b;
    char stale[64];
    read_metrics(&a);
    /* Adidas's aggregate is in the listener's cache since it last wrote it;
     * a valid rewrite (a stale mean key) moves its version behind its back. */
    snprintf(stale, sizeof stale, "0000000000000000000#Adidas");
    rewrite("T#acme#AGG", "BRAND#Adidas", "gsi2sk", stale, NULL, 0);
    CHECK_INT(put_asset("c-1", "Adidas", "0.125"), 0);
    brand_counts[1]++;
    CHECK_INT(wait_for(&b, conflicted, &a, 30000, "a conflict counted"), 0);
    CHECK_INT(b.conflicts - a.conflicts, 1);
    CHECK_INT(b.errors - a.errors, 0);
    CHECK_INT(get_count("Adidas"), brand_counts[1]);
    /* The retried commit wrote the whole aggregate again, its index too. */
    bson_t *doc = NULL;
    bson_iter_t it;
    REQUIRE(store_get(st, STORE_AGGREGATES, "T#acme#AGG", "BRAND#Adidas", &doc, NULL) == SL_OK);
    CHECK(bson_iter_init_find(&it, doc, "gsi2sk") && BSON_ITER_HOLDS_UTF8(&it) &&
          strcmp(bson_iter_utf8(&it, NULL), stale) != 0);
    bson_destroy(doc);
}

static int quarantined(const snap *s, const snap *ref)
{
    return s->quarantined_total > ref->quarantined_total && s->behind == 0;
}

static int skipped_one(const snap *s, const snap *ref)
{
    return s->skips > ref->skips && s->behind == 0;
}

static int released(const snap *s, const snap *ref)
{
    (void)ref;
    return s->quarantined == 0;
}

static void test_quarantine(void)
{
    snap a, b, c;
    char out[4096];
    read_metrics(&a);
    CHECK_INT(a.quarantined, 0);
    /* Puma's aggregate damaged (count not an integer), then written to. */
    rewrite("T#acme#AGG", "BRAND#Puma", "count", "three", NULL, 0);
    CHECK_INT(put_asset("q-1", "Puma", "0.5"), 0);
    brand_counts[2]++;
    CHECK_INT(wait_for(&b, quarantined, &a, 30000, "Puma quarantined"), 0);
    CHECK_INT(b.quarantined, 1);
    CHECK_INT(b.quarantined_total - a.quarantined_total, 1);
    CHECK_INT(get_count("Puma"), -503);
    /* Its next delta is skipped, and counted. */
    CHECK_INT(put_asset("q-2", "Puma", "0.5"), 0);
    brand_counts[2]++;
    CHECK_INT(wait_for(&c, skipped_one, &b, 30000, "a quarantine skip counted"), 0);
    CHECK_INT(c.skips - b.skips, 1); /* the brand; its campaign and sector are fine */
    CHECK_INT(c.quarantined, 1);
    /* recompute --repair rebuilds it; the listener reads the records again. */
    const char *args[] = {"recompute", "--store", store_uri, "--repair", NULL};
    CHECK_INT(support_run(out, sizeof out, 0, args), 0);
    CHECK_INT(wait_for(&c, released, NULL, 30000, "quarantined back to 0"), 0);
    CHECK_INT(c.quarantined_total - a.quarantined_total, 1); /* a total: never down */
    CHECK_INT(get_count("Puma"), brand_counts[2]);
}

static int lease_lost(const snap *s, const snap *ref)
{
    (void)ref;
    return s->lease_held == 0;
}

static int lease_back(const snap *s, const snap *ref)
{
    return s->lease_held == 1 && s->behind == 0 && s->applied >= ref->applied + 10;
}

static void test_lease_and_latency(void)
{
    snap a, b, c;
    read_metrics(&a);
    CHECK_INT(a.lease_held, 1);
    /* Someone else holds the lease for the next 5 s. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    rewrite("SYS#ENGINE", "LEASE#aggregates", "holder", "e2e-thief", "expires_ms", now + 5000);
    for (int i = 0; i < 10; i++) {
        char id[16];
        snprintf(id, sizeof id, "l-%d", i);
        CHECK_INT(put_asset(id, "Reebok", "0.75"), 0);
        brand_counts[3]++;
    }
    /* The listener stands by: its commits are fenced off, nothing applied. */
    CHECK_INT(wait_for(&b, lease_lost, NULL, 10000, "lease_held 0"), 0);
    CHECK(b.behind >= 10);
    CHECK_INT(b.applied - a.applied, 0);
    /* When the lease expires it takes it back and applies them, late. */
    CHECK_INT(wait_for(&c, lease_back, &a, 30000, "the lease back and the events applied"), 0);
    CHECK_INT(c.applied - a.applied, 10);
    CHECK_INT((c.lat_inf - c.lat_le1) - (a.lat_inf - a.lat_le1), 10); /* each over 1 s */
    /* Each waited for the lease to expire, 5 s after it was taken: the sum
     * says so (it once counted every latency past 1.024 s as 1.024 s). */
    CHECK(c.lat_sum - a.lat_sum >= 10 * 3.0);
    CHECK_INT(get_count("Reebok"), brand_counts[3]);
    fprintf(stderr, "10 events applied %.2f s late on average\n", (c.lat_sum - a.lat_sum) / 10);
}

static int erred(const snap *s, const snap *ref)
{
    return s->errors > ref->errors;
}

static void test_errors(void)
{
    snap a, b;
    read_metrics(&a);
    CHECK_INT(a.errors, 0);
    /* Another connection holds the write lock past the store's busy_ms: the
     * listener's next lease renewal (every ~3.3 s) fails, and is counted. */
    sqlite3 *db = NULL;
    REQUIRE(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK);
    sqlite3_busy_timeout(db, 30000);
    REQUIRE(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK);
    int rc = wait_for(&b, erred, &a, 20000, "an error counted while the store is locked");
    REQUIRE(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    CHECK_INT(rc, 0);
    CHECK(b.errors - a.errors >= 1);
    /* Survived: it still holds the lease and applies what comes. */
    CHECK_INT(put_asset("e-1", "Asics", "0.5"), 0);
    want_applied = b.applied + 1;
    CHECK_INT(wait_for(&b, applied_reached, NULL, 30000, "applied after the lock"), 0);
    CHECK_INT(b.lease_held, 1);
}

int main(void)
{
    char ikey[128], vkey[128];
    REQUIRE(support_tmpdir(dir, "e2e") == 0);
    snprintf(db_path, sizeof db_path, "%s/sl.db", dir);
    /* busy_ms: how long a writer waits for the lock before the store says busy. */
    snprintf(store_uri, sizeof store_uri, "sqlite:%s?busy_ms=1500", db_path);
    REQUIRE(support_tenant(store_uri, "acme", "brand-client") == 0 &&
            support_key(store_uri, "acme", "ingest", ikey) == 0 &&
            support_key(store_uri, "acme", "viewer", vkey) == 0);
    support_server srv;
    REQUIRE(support_server_init(&srv, dir, store_uri) == 0 &&
            support_server_startv(&srv, NULL) == 0);
    REQUIRE((in = support_client_new(srv.url, ikey)) && (view = support_client_new(srv.url, vkey)));
    REQUIRE(store_open(store_uri, NULL, &st, NULL) == SL_OK);
    REQUIRE(e2e_wait_caught_up(view, 30000) == 0);

    test_applied();
    test_skipped();
    test_conflict();
    test_quarantine();
    test_lease_and_latency();
    test_errors();

    store_close(&st);
    support_client_free(&in);
    support_client_free(&view);
    CHECK_INT(support_server_stop(&srv), 0);
    support_rmrf(dir);
    return check_finish();
}
