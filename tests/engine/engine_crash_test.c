/* engine_crash_test.c -- the real binary: `listen` SIGKILLed 60 times while a
 * writer writes, each kill aimed at a point where a crash matters (events
 * read, inside the consumer commit, right after it: `listen --debug-stop-at`
 * stops it there) or at a random moment while it applies, ends exact with
 * zero drift; lease takeover between two `listen` processes; `recompute` exit
 * codes and JSON; quarantined aggregates across SIGKILLs of `listen` and of
 * `recompute --repair`.  Every process killed must have been ended by our
 * SIGKILL and by nothing else (an exit, another signal, a sanitizer's
 * report); each `listen` keeps its own log, printed when it fails, and the
 * directory is kept when the test fails.  Argument: the sightline path. */
#include "tests/engine/engine_model.h"
#include "tests/support/support.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static const char *bin;
static char logpath[160]; /* stderr of the next process spawned */

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
    support_print_tail(logpath, 80);
}

/* 1 when the log at path holds a sanitizer's report (a report our SIGKILL
 * cut short still shows there), which is then printed. */
static int sanitizer_report(const char *path)
{
    size_t len = 0;
    char *text = support_read_file(path, &len);
    int found = text && (strstr(text, "Sanitizer") || strstr(text, "runtime error:"));
    free(text);
    if (found) {
        fprintf(stderr, "engine_crash_test: a sanitizer reported an error:\n");
        support_print_tail(path, 80);
    }
    return found;
}

/* Waits (timeout_ms at most) until pid ends or, with stops, stops; *st gets
 * its raw wait status.  0 when it did. */
static int wait_status(pid_t pid, int timeout_ms, int stops, int *st)
{
    int rc = support_wait_status(pid, timeout_ms, stops, st);
    if (rc == 0 && !WIFSTOPPED(*st))
        track(pid, 0);
    return rc;
}

/* SIGKILLs pid (whose stderr went to the log at path) and checks that our
 * SIGKILL, and nothing else, ended it: a process that exited, crashed or
 * stopped on a sanitizer's report before it is counted and its log printed.
 * ok_exit: an exit with 0 is fine too (a run that may finish first).  1 when
 * it ended as it should. */
static int kill_checked(pid_t pid, const char *path, const char *what, int ok_exit)
{
    int st = 0;
    char why[96] = "not reaped in 30 s";
    kill(pid, SIGKILL);
    int reaped = wait_status(pid, 30000, 0, &st) == 0;
    int ok = reaped && ((WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) ||
                        (ok_exit && WIFEXITED(st) && WEXITSTATUS(st) == 0));
    if (!ok) {
        if (reaped)
            support_status_str(st, why, sizeof why);
        fprintf(stderr, "engine_crash_test: %s was not ended by our SIGKILL: %s\n", what, why);
        support_print_tail(path, 80);
    }
    ok = ok && !sanitizer_report(path);
    CHECK(ok);
    return ok;
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

/* Removes the test's directory, or keeps it (its logs and store) and says so
 * when a check failed since there were `failures` (check_failures_ when the
 * test began). */
static void cleanup(const char *dir, int failures)
{
    if (check_failures_ > failures)
        fprintf(stderr, "engine_crash_test: logs and store kept in %s\n", dir);
    else
        support_rmrf(dir);
}

/* ---------------------------------------------------------------------------
 * The crash loop: where each `listen` is killed.
 * ------------------------------------------------------------------------- */

/* A life is stopped by `listen --debug-stop-at POINT:N` at a point of its
 * loop (engine_listener_point) and killed there, or killed at a random
 * moment after it took the lease. */
enum { AIM_RANDOM = 0, AIMS = ENGINE_POINT_COMMITTED + 1 };
static const char *const aim_names[AIMS] = {[AIM_RANDOM] = "random",
                                            [ENGINE_POINT_READ] = "read",
                                            [ENGINE_POINT_COMMIT] = "commit",
                                            [ENGINE_POINT_COMMITTED] = "committed"};
#define CRASH_AIMED   16 /* lives killed at each point */
#define CRASH_RANDOM  12 /* lives killed at a random moment */
#define CRASH_LIVES   (3 * CRASH_AIMED + CRASH_RANDOM)
#define CRASH_STOP_MS 30000 /* how long a life may take to reach its point */

/* What `listen` printed when it stopped ("debug stop at POINT #N: committed
 * "C" token "T""). */
typedef struct stop_line {
    char point[16];
    long long nth;
    char committed[STORE_TOKEN_MAX], token[STORE_TOKEN_MAX];
} stop_line;

/* Copies *p up to the next '"' into out and moves *p past it; 0 on success. */
static int quoted(const char **p, char out[STORE_TOKEN_MAX])
{
    const char *end = strchr(*p, '"');
    if (!end || end - *p >= STORE_TOKEN_MAX)
        return -1;
    memcpy(out, *p, (size_t)(end - *p));
    out[end - *p] = '\0';
    *p = end + 1;
    return 0;
}

/* The last stop line of the log at path into *out; 0 when there is one. */
static int read_stop_line(const char *path, stop_line *out)
{
    static const char tag[] = "sightline listen: debug stop at ";
    size_t len = 0;
    char *text = support_read_file(path, &len);
    const char *p = NULL;
    int rc = -1, n = 0;
    for (const char *q = text; q && (q = strstr(q, tag)) != NULL; q++)
        p = q + strlen(tag);
    if (p && sscanf(p, "%15[a-z] #%lld: committed \"%n", out->point, &out->nth, &n) == 2 && n &&
        (p += n, quoted(&p, out->committed) == 0) && !strncmp(p, " token \"", 8) &&
        (p += 8, quoted(&p, out->token) == 0))
        rc = 0;
    free(text);
    return rc;
}

/* 1 when a connection holds the write lock of the store in dir (a write
 * transaction is open), 0 when not, -1 when it cannot tell. */
static int write_locked(const char *dir)
{
    char path[160];
    snprintf(path, sizeof path, "%s/store.db", dir);
    sqlite3 *db = NULL;
    int locked = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(db, 0);
        int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        locked = rc == SQLITE_BUSY ? 1 : rc == SQLITE_OK ? 0 : -1;
    }
    sqlite3_close(db);
    return locked;
}

/* One life stopped at point (1..3) the nth time it got there, checked and
 * killed.  *missed is set when it did not stop (within CRASH_STOP_MS).  1
 * when it stopped there and the store showed what that point
 * means: events read, none committed (the token is where the listener says
 * it committed last, the read went past it); inside the commit (the write
 * lock held, the token not moved yet, and not moved after the kill either:
 * nothing of the commit survives); right after it (the store's token is the
 * one just committed). */
static int aimed_life(store *s, const char *dir, const char *uri, int k, int point, int nth,
                      int *missed)
{
    char holder[32], stop_at[32], why[96], now[STORE_TOKEN_MAX], after[STORE_TOKEN_MAX];
    snprintf(holder, sizeof holder, "crash-%d", k);
    snprintf(stop_at, sizeof stop_at, "%s:%d", aim_names[point], nth);
    const char *args[] = {"listen", "--store",         uri,     "--lease-ms", "250", "--holder",
                          holder,   "--debug-stop-at", stop_at, NULL};
    pid_t pid = spawn(NULL, args);
    int st = 0, waited = wait_status(pid, CRASH_STOP_MS, 1, &st) == 0;
    int stopped = waited && WIFSTOPPED(st);
    if (!stopped) { /* ended by itself (reaped), or still running */
        if (waited)
            support_status_str(st, why, sizeof why);
        else
            snprintf(why, sizeof why, "not stopped in %d ms", CRASH_STOP_MS);
        fprintf(stderr, "engine_crash_test: life %d (--debug-stop-at %s) did not stop there: %s\n",
                k, stop_at, why);
        support_print_tail(logpath, 80);
        CHECK(stopped);
        *missed = 1;
    }
    stop_line sl = {0};
    int hit = stopped && read_stop_line(logpath, &sl) == 0 && !strcmp(sl.point, aim_names[point]) &&
              sl.nth == nth;
    consumer_token(s, now);
    int locked = hit && point == ENGINE_POINT_COMMIT ? write_locked(dir) : -1;
    if (hit && point == ENGINE_POINT_READ)
        hit = !strcmp(now, sl.committed) && strcmp(sl.token, sl.committed) != 0;
    else if (hit && point == ENGINE_POINT_COMMIT)
        hit = locked == 1 && !strcmp(now, sl.committed) && strcmp(sl.token, sl.committed) != 0;
    else if (hit && point == ENGINE_POINT_COMMITTED)
        hit = !strcmp(now, sl.token) && strcmp(sl.token, sl.committed) != 0;
    char what[64];
    snprintf(what, sizeof what, "life %d (stopped at %s)", k, stop_at);
    int killed = waited && !stopped ? 0 : kill_checked(pid, logpath, what, 0);
    consumer_token(s, after);
    /* Killed: the token stays where the store had it at the stop. */
    hit =
        hit && killed && !strcmp(after, point == ENGINE_POINT_COMMITTED ? sl.token : sl.committed);
    if (stopped && !hit) {
        fprintf(stderr,
                "engine_crash_test: life %d stopped at %s, but the store does not show it: "
                "line %s #%lld committed \"%s\" token \"%s\"; token at the stop \"%s\", after "
                "the kill \"%s\"%s\n",
                k, stop_at, sl.point, sl.nth, sl.committed, sl.token, now, after,
                locked == 1   ? ""
                : locked == 0 ? ", write lock free at the stop"
                              : "");
        support_print_tail(logpath, 80);
    }
    return hit;
}

/* One life killed at a random moment (0..150 ms) after it took the lease.
 * 1 when it had committed something by then. */
static int random_life(store *s, const char *uri, int k, fx_rng *r)
{
    char before[STORE_TOKEN_MAX], after[STORE_TOKEN_MAX], holder[32], have[64] = "";
    consumer_token(s, before);
    snprintf(holder, sizeof holder, "crash-%d", k);
    const char *args[] = {"listen", "--store", uri, "--lease-ms", "250", "--holder", holder, NULL};
    pid_t pid = spawn(NULL, args);
    for (int i = 0; i < 1000 && strcmp(have, holder); i++) {
        usleep(10000);
        lease_holder(s, have, sizeof have);
    }
    CHECK_STR(have, holder);
    usleep((useconds_t)fx_below(r, 150000));
    char what[64];
    snprintf(what, sizeof what, "life %d (killed at a random moment)", k);
    kill_checked(pid, logpath, what, 0);
    consumer_token(s, after);
    return strcmp(before, after) != 0;
}

/* 60 SIGKILLs while a writer writes, in random order: 16 at each point of
 * the listener's loop and 12 at random moments; then exact. */
static void test_crash_loop(void)
{
    char dir[64], uri[128];
    int failures = check_failures_;
    md_tempdir(dir, uri);
    store *s = open_store(uri);
    model *m = calloc(1, sizeof *m);
    REQUIRE(m != NULL);
    pthread_mutex_init(&m->mu, NULL);
    md_writer w = {.m = m, .s = s, .seed = test_rng(1), .pause_us = 500};
    pthread_t wt;
    REQUIRE(pthread_create(&wt, NULL, md_writer_main, &w) == 0);
    fx_rng r = {test_rng(2)};
    int order[CRASH_LIVES], hits[AIMS] = {0}, aimed[AIMS] = {0}, missed[AIMS] = {0}, worked = 0;
    for (int k = 0; k < CRASH_LIVES; k++)
        order[k] = k < CRASH_RANDOM ? AIM_RANDOM : 1 + (k - CRASH_RANDOM) % 3;
    for (int k = CRASH_LIVES - 1; k > 0; k--) { /* shuffled */
        int j = fx_below(&r, k + 1), t = order[k];
        order[k] = order[j];
        order[j] = t;
    }
    for (int k = 0; k < CRASH_LIVES; k++) {
        snprintf(logpath, sizeof logpath, "%s/listen-%d.log", dir, k);
        if (order[k] == AIM_RANDOM) {
            worked += random_life(s, uri, k, &r);
        } else if (!missed[order[k]]) {
            aimed[order[k]]++;
            hits[order[k]] +=
                aimed_life(s, dir, uri, k, order[k], 1 + fx_below(&r, 3), &missed[order[k]]);
        } else { /* a life did not get there: the next ones would not either */
            aimed[order[k]]++;
        }
    }
    fprintf(stderr,
            "crash loop: %d lives, %lld ops; stopped and killed where aimed: read %d of %d, "
            "commit %d of %d, committed %d of %d; killed at random: %d of %d had committed\n",
            CRASH_LIVES, (long long)m->ops, hits[ENGINE_POINT_READ], aimed[ENGINE_POINT_READ],
            hits[ENGINE_POINT_COMMIT], aimed[ENGINE_POINT_COMMIT], hits[ENGINE_POINT_COMMITTED],
            aimed[ENGINE_POINT_COMMITTED], worked, CRASH_RANDOM);
    /* Every point hit many times, each kill exactly where it was aimed. */
    for (int p = ENGINE_POINT_READ; p <= ENGINE_POINT_COMMITTED; p++) {
        CHECK_INT(aimed[p], CRASH_AIMED);
        CHECK_INT(hits[p], aimed[p]);
    }
    atomic_store(&w.stop, 1);
    pthread_join(wt, NULL);
    CHECK(!atomic_load(&w.failed));

    snprintf(logpath, sizeof logpath, "%s/listen-last.log", dir);
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
    CHECK(!sanitizer_report(logpath));
    char holder[64];
    lease_holder(s, holder, sizeof holder);
    CHECK_STR(holder, "");
    if (check_failures_ > failures)
        dump_log();
    store_close(&s);
    pthread_mutex_destroy(&m->mu);
    free(m);
    cleanup(dir, failures);
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
    int failures = check_failures_;
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
        snprintf(logpath, sizeof logpath, "%s/listen-q%d.log", dir, k);
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
        kill_checked(pid, logpath, holder, 0);
    }
    snprintf(logpath, sizeof logpath, "%s/listen-q-last.log", dir);
    const char *args[] = {"listen", "--store", uri, "--lease-ms", "250", NULL};
    pid_t l = spawn(NULL, args);
    char lpath[160];
    snprintf(lpath, sizeof lpath, "%s", logpath);
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
    snprintf(logpath, sizeof logpath, "%s/recompute.log", dir);
    pid_t rp = spawn(NULL, fix);
    usleep((useconds_t)(5000 + fx_below(&r, 150000)));
    kill_checked(rp, logpath, "recompute --repair", 1); /* or it finished first */
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
    CHECK(!sanitizer_report(lpath));
    if (check_failures_ > failures) {
        support_print_tail(lpath, 80);
        dump_log();
    }
    store_close(&s);
    pthread_mutex_destroy(&m->mu);
    free(m);
    cleanup(dir, failures);
}

/* Two processes: the second takes over when the holder is killed. */
static void test_takeover(void)
{
    char dir[64], uri[128];
    int failures = check_failures_;
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
    char alog[160], blog[160];
    snprintf(alog, sizeof alog, "%s/listen-A.log", dir);
    snprintf(blog, sizeof blog, "%s/listen-B.log", dir);
    snprintf(logpath, sizeof logpath, "%s", alog);
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
    snprintf(logpath, sizeof logpath, "%s", blog);
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
    kill_checked(a, alog, "listener A", 0);
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
    CHECK(!sanitizer_report(blog));
    if (check_failures_ > failures)
        dump_log();
    store_close(&s);
    pthread_mutex_destroy(&m->mu);
    free(m);
    cleanup(dir, failures);
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
    int failures = check_failures_;
    md_tempdir(dir, uri);
    snprintf(logpath, sizeof logpath, "%s/log.txt", dir);
    snprintf(out, sizeof out, "%s/out.json", dir);
    const char *h1[] = {"listen", "--help", NULL}, *h2[] = {"recompute", "--help", NULL};
    CHECK_INT(run(out, h1), 0);
    CHECK_INT(run(out, h2), 0);
    /* Usage errors exit 2 and say what is wrong. */
    static const struct {
        const char *args[4];
        const char *says;
    } usage[] = {
        {{"listen", "--lease-ms", "5", NULL}, "--lease-ms wants 50..600000, not '5'"},
        {{"recompute", "--tenant", "a#b", NULL}, "holds '#' at byte 1"},
        {{"recompute", "--bogus", NULL}, "unknown option or missing value: '--bogus'"},
    };
    for (size_t i = 0; i < sizeof usage / sizeof usage[0]; i++) {
        unlink(logpath);
        CHECK_INT(run(NULL, usage[i].args), 2);
        size_t len = 0;
        char *said = support_read_file(logpath, &len);
        CHECK(said && strstr(said, usage[i].says));
        free(said);
    }
    /* The crash tests' hook refuses what it does not know, naming it. */
    static const char *const stops[] = {"bogus", "read:0", "commit:", "committed:1000001",
                                        "read:2x"};
    for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++) {
        const char *u4[] = {"listen", "--store", uri, "--debug-stop-at", stops[i], NULL};
        const char *want = "--debug-stop-at wants read, commit or committed";
        unlink(logpath);
        CHECK_INT(run(NULL, u4), 2);
        size_t len = 0;
        char *said = support_read_file(logpath, &len);
        CHECK(said && strstr(said, want) && strstr(said, stops[i]));
        free(said);
    }

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
    if (check_failures_ > failures)
        dump_log();
    store_close(&s);
    pthread_mutex_destroy(&m->mu);
    free(m);
    cleanup(dir, failures);
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
