/* engine_crash_test.c -- the real binary: `listen` SIGKILLed 50 times while a
 * writer writes ends exact with zero drift; lease takeover between two `listen`
 * processes; `recompute` exit codes and JSON; quarantined aggregates across
 * SIGKILLs of `listen` and of `recompute --repair`.  Argument: the sightline
 * path. */
#include "tests/engine/engine_model.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static const char *bin;
static char logpath[160];

/* Children still running, killed at exit if a REQUIRE stops the test early,
 * so that no `sightline` process outlives it. */
static pid_t live[8];

static void track(pid_t pid, int add)
{
    for (size_t i = 0; i < sizeof live / sizeof live[0]; i++)
        if (add ? live[i] == 0 : live[i] == pid) {
            live[i] = add ? pid : 0;
            break;
        }
}

static void kill_live(void)
{
    for (size_t i = 0; i < sizeof live / sizeof live[0]; i++)
        if (live[i] > 0) {
            kill(live[i], SIGKILL);
            waitpid(live[i], NULL, 0);
        }
}

/* Starts `sightline args...` with stdout to out_path (or the log) and stderr
 * to the log. */
static pid_t spawn(const char *out_path, const char *const *args)
{
    const char *argv[16];
    int n = 0;
    argv[n++] = bin;
    for (; args[n - 1] && n < 15; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out_path ? out_path : logpath,
                                     O_WRONLY | O_CREAT | (out_path ? O_TRUNC : O_APPEND), 0600);
    posix_spawn_file_actions_addopen(&fa, 2, logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, bin, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    REQUIRE(rc == 0);
    track(pid, 1);
    return pid;
}

/* Exit code of pid, or 128 + signal. */
static int wait_exit(pid_t pid)
{
    int st = 0;
    REQUIRE(waitpid(pid, &st, 0) == pid);
    track(pid, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int run(const char *out_path, const char *const *args)
{
    return wait_exit(spawn(out_path, args));
}

static void dump_log(void)
{
    FILE *f = fopen(logpath, "r");
    char line[512];
    int n = 0;
    while (f && fgets(line, sizeof line, f) && n++ < 60)
        fprintf(stderr, "  | %s", line);
    if (f)
        fclose(f);
}

static store *open_store(const char *uri)
{
    store *s = NULL;
    REQUIRE(store_open(uri, NULL, &s, NULL) == SL_OK);
    return s;
}

static int compare_all(model *m, store *s)
{
    int bad = 0;
    for (int t = 0; t < MD_COUNT(md_tenants); t++)
        bad += md_compare(m, s, md_tenants[t]);
    return bad;
}

static void consumer_token(store *s, char tok[STORE_TOKEN_MAX])
{
    if (store_consumer_token(s, ENGINE_CONSUMER, tok, NULL) != SL_OK)
        tok[0] = '\0';
}

/* The holder named in the listener's lease document ("" when none) and,
 * when renewed_ms is not NULL, when it last renewed it (0 when none). */
static void lease_read(store *s, char *out, size_t size, int64_t *renewed_ms)
{
    bson_t *doc = NULL;
    out[0] = '\0';
    if (renewed_ms)
        *renewed_ms = 0;
    if (store_get(s, STORE_AGGREGATES, ENGINE_SYS_PK, "LEASE#" ENGINE_CONSUMER, &doc, NULL) !=
        SL_OK)
        return;
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, "holder") && BSON_ITER_HOLDS_UTF8(&it))
        snprintf(out, size, "%s", bson_iter_utf8(&it, NULL));
    if (renewed_ms && bson_iter_init_find(&it, doc, "renewed_ms"))
        *renewed_ms = bson_iter_as_int64(&it);
    bson_destroy(doc);
}

static void lease_holder(store *s, char *out, size_t size)
{
    lease_read(s, out, size, NULL);
}

/* Wall-clock milliseconds, the clock of the lease's renewed_ms. */
static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void cleanup(const char *dir)
{
    unlink(logpath);
    char path[160];
    snprintf(path, sizeof path, "%s/out.json", dir);
    unlink(path);
    md_rmdir(dir);
}

/* 50 SIGKILLs at random points while a writer writes; then exact. */
static void test_crash_loop(void)
{
    char dir[64], uri[128];
    md_tempdir(dir, uri);
    snprintf(logpath, sizeof logpath, "%s/log.txt", dir);
    store *s = open_store(uri);
    model *m = calloc(1, sizeof *m);
    REQUIRE(m != NULL);
    pthread_mutex_init(&m->mu, NULL);
    md_writer w = {.m = m, .s = s, .seed = test_rng(1), .pause_us = 500};
    pthread_t wt;
    REQUIRE(pthread_create(&wt, NULL, md_writer_main, &w) == 0);
    fx_rng r = {test_rng(2)};
    int worked = 0;
    for (int k = 0; k < 50; k++) {
        char before[STORE_TOKEN_MAX], after[STORE_TOKEN_MAX], holder[32];
        consumer_token(s, before);
        snprintf(holder, sizeof holder, "crash-%d", k);
        const char *args[] = {"listen", "--store",  uri,    "--lease-ms",
                              "250",    "--holder", holder, NULL};
        pid_t pid = spawn(NULL, args);
        usleep((useconds_t)(30000 + fx_below(&r, 320000)));
        kill(pid, SIGKILL);
        CHECK_INT(wait_exit(pid), 128 + SIGKILL);
        consumer_token(s, after);
        worked += strcmp(before, after) != 0;
    }
    /* Most lives got to commit something before the kill. */
    fprintf(stderr, "crash loop: %d of 50 listeners committed before being killed, %lld ops\n",
            worked, (long long)m->ops);
    CHECK(worked >= 10);
    atomic_store(&w.stop, 1);
    pthread_join(wt, NULL);
    CHECK(!atomic_load(&w.failed));

    const char *args[] = {"listen", "--store", uri, "--lease-ms", "250", NULL};
    pid_t last = spawn(NULL, args);
    int caught_up = md_wait_caught_up(s, ENGINE_CONSUMER, 120000);
    CHECK(caught_up);
    CHECK_INT(compare_all(m, s), 0);
    const char *rec[] = {"recompute", "--store", uri, NULL};
    CHECK_INT(run(NULL, rec), 0);
    /* SIGTERM stops it cleanly, and it gives the lease up. */
    kill(last, SIGTERM);
    CHECK_INT(wait_exit(last), 0);
    char holder[64];
    lease_holder(s, holder, sizeof holder);
    CHECK_STR(holder, "");
    if (check_failures_)
        dump_log();
    store_close(&s);
    pthread_mutex_destroy(&m->mu);
    free(m);
    cleanup(dir);
}

static int agg_exists(store *s, const char *pk, const char *sk)
{
    bson_t *doc = NULL;
    int found = store_get(s, STORE_AGGREGATES, pk, sk, &doc, NULL) == SL_OK;
    if (doc)
        bson_destroy(doc);
    return found;
}

static int is_quarantined(store *s, const char *pk, const char *sk)
{
    engine_quarantine q;
    return engine_quarantine_get(s, pk, sk, &q, NULL) == SL_OK;
}

/* Issue 9, 16-17: quarantine is exactly-once-safe across crashes.  Damaged
 * aggregates while `listen` is SIGKILLed at random points and a writer
 * writes: the records commit with the token, every other aggregate stays
 * exact; a `recompute --repair` SIGKILLed midway leaves whole writes only,
 * and the next one (writes going on) ends with everything exact. */
static void test_crash_quarantine(void)
{
    char dir[64], uri[128];
    md_tempdir(dir, uri);
    snprintf(logpath, sizeof logpath, "%s/log.txt", dir);
    store *s = open_store(uri);
    model *m = calloc(1, sizeof *m);
    REQUIRE(m != NULL);
    pthread_mutex_init(&m->mu, NULL);
    fx_rng r0 = {test_rng(3)};
    for (int i = 0; i < 1500; i++)
        REQUIRE(md_step(m, s, &r0, 1) == SL_OK);
    md_writer w = {.m = m, .s = s, .seed = test_rng(4), .pause_us = 500};
    pthread_t wt;
    REQUIRE(pthread_create(&wt, NULL, md_writer_main, &w) == 0);
    static const char *const bad[] = {"BRAND#nike", "BRAND#puma#CAMPAIGN#fall", "SECTOR#shoes"};
    fx_rng r = {test_rng(5)};
    for (int k = 0; k < 20; k++) {
        char holder[32];
        snprintf(holder, sizeof holder, "q-%d", k);
        const char *args[] = {"listen", "--store",  uri,    "--lease-ms",
                              "250",    "--holder", holder, NULL};
        pid_t pid = spawn(NULL, args);
        if (k == 3) { /* while it runs: not BSON, another document, a mistyped field */
            /* Once they exist: the lives before may all have been killed
             * before their first commit (60 s at most). */
            static const char *const need[] = {"BRAND#nike", "BRAND#puma#CAMPAIGN#fall",
                                               "BRAND#puma", "SECTOR#shoes"};
            for (int i = 0; i < 4; i++) {
                for (int waited = 0; !agg_exists(s, "T#acme#AGG", need[i]) && waited < 60000;
                     waited += 20)
                    usleep(20000);
                REQUIRE(agg_exists(s, "T#acme#AGG", need[i]));
            }
            REQUIRE(md_raw(uri,
                           "UPDATE aggregates SET v = v + 1, doc = x'0badf00d0badf00d' WHERE pk = "
                           "?1 AND sk = ?2",
                           "T#acme#AGG", bad[0], NULL) == 1);
            REQUIRE(md_raw(uri,
                           "UPDATE aggregates SET v = v + 1, doc = (SELECT doc FROM aggregates "
                           "WHERE pk = ?1 AND sk = ?3) WHERE pk = ?1 AND sk = ?2",
                           "T#acme#AGG", bad[1], "BRAND#puma") == 1);
            md_rewrite(s, "T#acme#AGG", bad[2], "count", MD_SET_STR, 0, "x");
        }
        usleep((useconds_t)(30000 + fx_below(&r, 320000)));
        kill(pid, SIGKILL);
        CHECK_INT(wait_exit(pid), 128 + SIGKILL);
    }
    const char *args[] = {"listen", "--store", uri, "--lease-ms", "250", NULL};
    pid_t l = spawn(NULL, args);
    for (int i = 0; i < 3; i++) {
        for (int waited = 0; !is_quarantined(s, "T#acme#AGG", bad[i]) && waited < 60000;
             waited += 20)
            usleep(20000);
        CHECK(is_quarantined(s, "T#acme#AGG", bad[i]));
    }
    atomic_store(&w.stop, 1);
    pthread_join(wt, NULL);
    CHECK(!atomic_load(&w.failed));
    CHECK(md_wait_caught_up(s, ENGINE_CONSUMER, 120000));
    CHECK_INT(md_compare_skip(m, s, "acme", (const char *const *)bad, 3), 0);
    CHECK_INT(md_compare(m, s, "globex"), 0);

    /* A repair killed midway, with the writer writing again. */
    atomic_store(&w.stop, 0);
    w.seed = test_rng(6);
    REQUIRE(pthread_create(&wt, NULL, md_writer_main, &w) == 0);
    const char *fix[] = {"recompute", "--store", uri, "--repair", NULL};
    pid_t rp = spawn(NULL, fix);
    usleep((useconds_t)(5000 + fx_below(&r, 150000)));
    kill(rp, SIGKILL);
    wait_exit(rp);
    /* Its leases expire (10 s); then a repair goes through. */
    int rc = -1;
    for (int i = 0; i < 40 && rc != 0; i++) {
        rc = run(NULL, fix);
        if (rc != 0)
            usleep(500000);
    }
    CHECK_INT(rc, 0);
    atomic_store(&w.stop, 1);
    pthread_join(wt, NULL);
    CHECK(!atomic_load(&w.failed));
    CHECK(md_wait_caught_up(s, ENGINE_CONSUMER, 120000));
    CHECK_INT(compare_all(m, s), 0);
    const char *rec[] = {"recompute", "--store", uri, NULL};
    CHECK_INT(run(NULL, rec), 0);
    for (int i = 0; i < 3; i++)
        CHECK(!is_quarantined(s, "T#acme#AGG", bad[i]));
    kill(l, SIGTERM);
    CHECK_INT(wait_exit(l), 0);
    if (check_failures_)
        dump_log();
    store_close(&s);
    pthread_mutex_destroy(&m->mu);
    free(m);
    cleanup(dir);
}

/* Two processes: the second takes over when the holder is killed. */
static void test_takeover(void)
{
    char dir[64], uri[128];
    md_tempdir(dir, uri);
    snprintf(logpath, sizeof logpath, "%s/log.txt", dir);
    store *s = open_store(uri);
    model *m = calloc(1, sizeof *m);
    REQUIRE(m != NULL);
    pthread_mutex_init(&m->mu, NULL);
    md_writer w = {.m = m, .s = s, .seed = test_rng(7), .pause_us = 500};
    pthread_t wt;
    REQUIRE(pthread_create(&wt, NULL, md_writer_main, &w) == 0);
    /* A lease long enough that a loaded machine does not make A miss renewals
     * (3 s, renewed every second: A would have to stall 2 s). */
    const char *a_args[] = {"listen", "--store", uri, "--lease-ms", "3000", "--holder", "A", NULL};
    const char *b_args[] = {"listen", "--store", uri, "--lease-ms", "3000", "--holder", "B", NULL};
    pid_t a = spawn(NULL, a_args);
    char holder[64] = "";
    for (int i = 0; i < 6000 && strcmp(holder, "A"); i++) { /* 60 s at most */
        usleep(10000);
        lease_holder(s, holder, sizeof holder);
    }
    CHECK_STR(holder, "A");
    /* B waits while A renews: watched until A's renewals have gone one and a
     * half lease lifetimes past B's start (an event, not a clock: a slow
     * machine only makes it take longer), A holding it at every look. */
    int64_t b_start = wall_ms(), renewed = 0;
    pid_t b = spawn(NULL, b_args);
    int others = 0;
    for (long waited = 0; renewed < b_start + 4500 && waited < 60000; waited += 20) {
        usleep(20000);
        lease_read(s, holder, sizeof holder, &renewed);
        others += holder[0] && strcmp(holder, "A") != 0; /* "": not read this time */
    }
    CHECK(renewed >= b_start + 4500);
    CHECK_INT(others, 0);
    CHECK_INT(waitpid(b, NULL, WNOHANG), 0); /* B still runs, waiting */
    kill(a, SIGKILL);
    CHECK_INT(wait_exit(a), 128 + SIGKILL);
    for (int i = 0; i < 6000 && strcmp(holder, "B"); i++) { /* 60 s at most */
        usleep(10000);
        lease_holder(s, holder, sizeof holder);
    }
    CHECK_STR(holder, "B");
    usleep(200000);
    atomic_store(&w.stop, 1);
    pthread_join(wt, NULL);
    CHECK(!atomic_load(&w.failed));
    CHECK(md_wait_caught_up(s, ENGINE_CONSUMER, 60000));
    CHECK_INT(compare_all(m, s), 0);
    kill(b, SIGTERM);
    CHECK_INT(wait_exit(b), 0);
    if (check_failures_)
        dump_log();
    store_close(&s);
    pthread_mutex_destroy(&m->mu);
    free(m);
    cleanup(dir);
}

/* Reads an int64 member of the JSON report (via libbson's JSON reader). */
static int64_t json_int(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    REQUIRE(f != NULL);
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    bson_error_t e;
    bson_t *doc = bson_new_from_json((const uint8_t *)buf, (ssize_t)n, &e);
    REQUIRE(doc != NULL);
    bson_iter_t it;
    int64_t v = INT64_MIN;
    if (bson_iter_init_find(&it, doc, key))
        v = bson_iter_as_int64(&it);
    bson_destroy(doc);
    return v;
}

/* Exit codes scripts rely on, and the JSON report. */
static void test_cli(void)
{
    char dir[64], uri[128], out[160];
    md_tempdir(dir, uri);
    snprintf(logpath, sizeof logpath, "%s/log.txt", dir);
    snprintf(out, sizeof out, "%s/out.json", dir);
    const char *h1[] = {"listen", "--help", NULL}, *h2[] = {"recompute", "--help", NULL};
    CHECK_INT(run(out, h1), 0);
    CHECK_INT(run(out, h2), 0);
    const char *u1[] = {"listen", "--lease-ms", "5", NULL};
    const char *u2[] = {"recompute", "--tenant", "a#b", NULL};
    const char *u3[] = {"recompute", "--bogus", NULL};
    CHECK_INT(run(NULL, u1), 2);
    CHECK_INT(run(NULL, u2), 2);
    CHECK_INT(run(NULL, u3), 2);

    store *s = open_store(uri);
    model *m = calloc(1, sizeof *m);
    REQUIRE(m != NULL);
    pthread_mutex_init(&m->mu, NULL);
    fx_rng r = {test_rng(8)};
    for (int i = 0; i < 600; i++)
        REQUIRE(md_step(m, s, &r, 1) == SL_OK);
    /* Not applied yet is lag, not drift: live and rebuilt agree at point C. */
    const char *check[] = {"recompute", "--store", uri, "--json", NULL};
    CHECK_INT(run(out, check), 0);
    CHECK_INT(json_int(out, "drift_fields"), 0);
    const char *args[] = {"listen", "--store", uri, NULL};
    pid_t l = spawn(NULL, args);
    CHECK(md_wait_caught_up(s, ENGINE_CONSUMER, 60000));
    kill(l, SIGTERM);
    CHECK_INT(wait_exit(l), 0);
    CHECK_INT(compare_all(m, s), 0);
    md_corrupt(s, "T#globex#AGG", "SECTOR#shoes", "memorability", "n", -1, 0);
    CHECK_INT(run(out, check), 3);
    CHECK_INT(json_int(out, "drift_fields"), 1);
    const char *fix[] = {"recompute", "--store", uri, "--repair", "--json", NULL};
    CHECK_INT(run(out, fix), 0);
    CHECK_INT(json_int(out, "drift_fields"), 1);
    CHECK_INT(json_int(out, "repaired_aggregates"), 1);
    CHECK_INT(compare_all(m, s), 0);
    CHECK_INT(run(out, check), 0);
    CHECK_INT(json_int(out, "drift_fields"), 0);
    const char *one[] = {"recompute", "--store", uri, "--tenant", "globex", NULL};
    CHECK_INT(run(out, one), 0);
    if (check_failures_)
        dump_log();
    store_close(&s);
    pthread_mutex_destroy(&m->mu);
    free(m);
    cleanup(dir);
}

int main(int argc, char **argv)
{
    REQUIRE(argc == 2);
    bin = argv[1];
    atexit(kill_live);
    test_seed(); /* printed first; SIGHTLINE_TEST_SEED repeats the run */
    test_cli();
    test_takeover();
    test_crash_loop();
    test_crash_quarantine();
    return check_finish();
}
