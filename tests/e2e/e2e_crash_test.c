/* e2e_crash_test.c -- issue 5, "Done when" (2): `sightline serve
 * --no-listener` takes the random workload while a separate `sightline
 * listen` applies the change feed; the listener is SIGKILLed at 50 random
 * points of the workload and restarted each time (after a kill, the next one
 * waits for the dead one's lease to expire, then takes over).  At the end
 * every aggregate is exact and recompute reports zero drift.  Argument:
 * operations (default 30000); seed from $SIGHTLINE_TEST_SEED or getrandom
 * (tests/seed.h). */
#include "tests/check.h"
#include "tests/e2e/e2e.h"

#include <signal.h>

#include "store/store.h"

#define KILLS    50
#define LEASE_MS "300"

typedef struct crash {
    char store[200], log[200];
    store *st; /* the test's own handle: it reads the lease document */
    pid_t listener;
    int generation;
    int64_t at[KILLS];
    int next;
    int lease_waits_failed;
} crash;

static void start_listener(crash *c)
{
    char holder[32];
    snprintf(holder, sizeof holder, "crash-%d", ++c->generation);
    const char *args[] = {"listen", "--store",  c->store, "--lease-ms",
                          LEASE_MS, "--holder", holder,   NULL};
    c->listener = support_spawn(c->log, c->log, 0, args);
    REQUIRE(c->listener > 0);
}

/* Waits (10 s at most) until the newest listener holds the lease, so that
 * the next kill finds it applying events rather than waiting. */
static int wait_lease(crash *c)
{
    char holder[32];
    snprintf(holder, sizeof holder, "crash-%d", c->generation);
    for (int i = 0; i < 1000; i++) {
        bson_t *doc = NULL;
        bson_iter_t it;
        int ours = 0;
        if (store_get(c->st, STORE_AGGREGATES, "SYS#ENGINE", "LEASE#aggregates", &doc, NULL) ==
            SL_OK) {
            ours = bson_iter_init_find(&it, doc, "holder") && BSON_ITER_HOLDS_UTF8(&it) &&
                   !strcmp(bson_iter_utf8(&it, NULL), holder);
            bson_destroy(doc);
        }
        if (ours)
            return 0;
        support_sleep_ms(10);
    }
    return -1;
}

/* Called after every operation: at each kill point, SIGKILL and restart. */
static void on_op(void *ctx, int64_t done)
{
    crash *c = ctx;
    while (c->next < KILLS && done >= c->at[c->next]) {
        support_kill(c->listener, SIGKILL);
        c->next++;
        start_listener(c);
        c->lease_waits_failed += wait_lease(c) != 0;
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int64_t ops = argc > 1 ? atoll(argv[1]) : 30000;
    uint64_t seed = e2e_seed();
    char out[4096];
    e2e_world w;
    e2e_model m;
    support_client *const *ingest = w.ingest, *const *viewer = w.viewer;
    crash c = {0};
    fprintf(stderr, "e2e_crash_test: %lld operations, %d kills, seed %llu\n", (long long)ops, KILLS,
            (unsigned long long)seed);
    REQUIRE(ops >= KILLS);
    const char *extra[] = {"--no-listener", NULL};
    REQUIRE(e2e_world_start(&w, extra) == 0);
    snprintf(c.store, sizeof c.store, "%s", w.store);
    snprintf(c.log, sizeof c.log, "%s/listen.log", w.dir);
    REQUIRE(store_open(c.store, NULL, &c.st, NULL) == SL_OK);
    /* This server runs no listener, and says so. */
    double running = -1;
    REQUIRE(support_req(viewer[0], "GET", "/metrics", NULL, 0) == 200);
    CHECK(support_metric(support_body(viewer[0]), "sightline_listener_running", &running) == 0 &&
          running == 0);

    REQUIRE(e2e_model_init(&m, ops / 16 + 64, seed) == 0);
    for (int i = 0; i < KILLS; i++)
        c.at[i] = 1 + (int64_t)e2e_below(&m, (uint32_t)ops - 1);
    qsort(c.at, KILLS, sizeof c.at[0], cmp_i64);
    start_listener(&c);
    REQUIRE(wait_lease(&c) == 0);

    e2e_workload_stats st;
    CHECK_INT(e2e_workload(&m, ingest, ops, on_op, &c, &st), 0);
    CHECK_INT(c.next, KILLS);
    CHECK_INT(c.lease_waits_failed, 0);
    REQUIRE(e2e_wait_caught_up(viewer[0], 120000) == 0);
    for (int t = 0; t < M_TENANTS; t++)
        CHECK_INT(e2e_check_all(&m, t, viewer[t], 7), 0);

    const char *rargs[] = {"recompute", "--store", c.store, "--json", NULL};
    CHECK_INT(support_run(out, sizeof out, 0, rargs), 0);
    yajl_val rep = e2e_json(out);
    CHECK(rep != NULL);
    CHECK_INT(e2e_get_int(rep, "drift_fields", -1), 0);
    CHECK(e2e_get_int(rep, "aggregates_checked", 0) > 0);
    if (rep)
        yajl_tree_free(rep);
    fprintf(stderr,
            "e2e_crash_test: %lld operations (%lld single requests, %lld batches), listener "
            "killed %d times\n",
            (long long)ops, (long long)st.single_requests, (long long)st.batch_requests, c.next);

    /* The last listener stops cleanly on SIGTERM. */
    support_kill(c.listener, SIGTERM);
    CHECK_INT(support_wait(c.listener, 20000), 0);
    CHECK_INT(e2e_world_stop(&w), 0);
    store_close(&c.st);
    e2e_model_free(&m);
    support_rmrf(w.dir);
    return check_finish();
}
