/* e2e_crash_test.c -- issue 5, "Done when" (2): `sightline serve
 * --no-listener` takes the random workload while a separate `sightline
 * listen` applies the change feed; the listener is SIGKILLed at 50 random
 * points of the workload and restarted each time (after a kill, the next one
 * waits for the dead one's lease to expire, then takes over).  At the end
 * every aggregate is exact and recompute reports zero drift.  Every listener
 * must have been ended by our SIGKILL and by nothing else (an exit, another
 * signal, a sanitizer's report): one that died by itself would otherwise just
 * be replaced.  Each keeps its own log, printed when it fails.  Argument:
 * operations (default 30000); seed from $SIGHTLINE_TEST_SEED or getrandom
 * (tests/seed.h). */
#include "tests/check.h"
#include "tests/e2e/e2e.h"

#include <signal.h>
#include <sys/wait.h>

#include "store/store.h"

#define KILLS    50
#define LEASE_MS "300"

typedef struct crash {
    char store[200], dir[128];
    char log[200]; /* the running listener's: <dir>/listen-<generation>.log */
    store *st;     /* the test's own handle: it reads the lease document */
    pid_t listener;
    int generation;
    int64_t at[KILLS];
    int next;
    int lease_waits_failed;
    int killed;         /* listeners ended by our SIGKILL */
    int died_alone;     /* ... by anything else */
    int sanitizer_logs; /* listeners whose log holds a sanitizer's report */
} crash;

static void start_listener(crash *c)
{
    char holder[32];
    snprintf(holder, sizeof holder, "crash-%d", ++c->generation);
    snprintf(c->log, sizeof c->log, "%s/listen-%d.log", c->dir, c->generation);
    const char *args[] = {"listen", "--store",  c->store, "--lease-ms",
                          LEASE_MS, "--holder", holder,   NULL};
    c->listener = support_spawn(c->log, c->log, 0, args);
    REQUIRE(c->listener > 0);
}

/* 1 when the running listener's log holds a sanitizer's report (one that
 * our SIGKILL cut short still shows there); the log is printed. */
static int sanitizer_report(crash *c)
{
    size_t len = 0;
    char *text = support_read_file(c->log, &len);
    int found = text && (strstr(text, "Sanitizer") || strstr(text, "runtime error:"));
    free(text);
    if (found) {
        fprintf(stderr, "e2e_crash_test: listener %d reported a sanitizer error\n", c->generation);
        support_print_tail(c->log, 80);
    }
    return found;
}

/* Kills the running listener and checks that our SIGKILL, and nothing else,
 * ended it; else prints why and its log. */
static void kill_listener(crash *c)
{
    int st = 0;
    char why[96] = "not reaped in 20 s";
    kill(c->listener, SIGKILL);
    int reaped = support_wait_status(c->listener, 20000, 0, &st) == 0;
    if (reaped && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) {
        c->killed++;
    } else {
        c->died_alone++;
        if (reaped)
            support_status_str(st, why, sizeof why);
        fprintf(stderr, "e2e_crash_test: listener %d was not ended by our SIGKILL: %s\n",
                c->generation, why);
        support_print_tail(c->log, 80);
    }
    c->sanitizer_logs += sanitizer_report(c);
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
        kill_listener(c);
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
    snprintf(c.dir, sizeof c.dir, "%s", w.dir);
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
    CHECK_INT(c.killed, KILLS);
    CHECK_INT(c.died_alone, 0);
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
            "killed %d times (%d ended by our SIGKILL, %d by something else)\n",
            (long long)ops, (long long)st.single_requests, (long long)st.batch_requests, c.next,
            c.killed, c.died_alone);

    /* The last listener stops cleanly on SIGTERM. */
    support_kill(c.listener, SIGTERM);
    int ws = 0, stopped = support_wait_status(c.listener, 20000, 0, &ws) == 0;
    CHECK(stopped && WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    if (!stopped || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
        char why[96] = "not stopped in 20 s";
        if (stopped)
            support_status_str(ws, why, sizeof why);
        fprintf(stderr, "e2e_crash_test: the last listener, on SIGTERM: %s\n", why);
        support_print_tail(c.log, 80);
    }
    c.sanitizer_logs += sanitizer_report(&c);
    CHECK_INT(c.sanitizer_logs, 0);
    if (check_failures_) {
        fprintf(stderr, "e2e_crash_test: the last listener's log:\n");
        support_print_tail(c.log, 80);
    }
    CHECK_INT(e2e_world_stop(&w), 0);
    store_close(&c.st);
    e2e_model_free(&m);
    support_rmrf(w.dir);
    return check_finish();
}
