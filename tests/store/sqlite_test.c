/* sqlite_test.c -- what only the SQLite adapter promises: URIs, the file it
 * writes (WAL, page size, header marks), refusing foreign files, a second
 * process writing while this one holds the store, busy handling, no half
 * batch after SIGKILL, pruning of applied events, retention bounds, the
 * upgrade of a version-1 file, a WAL that stays bounded under writers and
 * readers, and pages that name and position damaged rows by their stored
 * keys.  Helper processes are this binary re-executed with a mode
 * argument. */
#include "tests/seed.h"
#include "tests/store/store_test.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

static char dir[64];
static int file_seq;

static void path_in_dir(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s%d.db", dir, name, ++file_seq);
}

static store *open_uri(const char *uri)
{
    store *s = NULL;
    sl_error e;
    sl_error_clear(&e);
    sl_status rc = store_open(uri, NULL, &s, &e);
    if (rc != SL_OK)
        fprintf(stderr, "store_open(%s): %s: %s\n", uri, sl_status_name(rc), e.message);
    REQUIRE(rc == SL_OK);
    return s;
}

static sl_status open_status(const char *uri, const store_options *o, sl_error *e)
{
    store *s = NULL;
    sl_error_clear(e);
    sl_status rc = store_open(uri, o, &s, e);
    CHECK((rc == SL_OK) == (s != NULL));
    store_close(&s);
    return rc;
}

/* Runs one SQL statement on the raw file; returns its first column as text
 * (into out) or "" when no row. */
static int raw_query(const char *path, const char *sql, char *out, size_t n)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    out[0] = '\0';
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW && sqlite3_column_text(st, 0))
            snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
        rc = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

static pid_t spawn(const char *mode, const char *a1, const char *a2)
{
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        execl("/proc/self/exe", "sqlite_test", mode, a1, a2, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int reap(pid_t pid)
{
    int st = 0;
    REQUIRE(waitpid(pid, &st, 0) == pid);
    return WIFSIGNALED(st) ? -WTERMSIG(st) : WEXITSTATUS(st);
}

/* ---------------------------------------------------------------------------
 * URIs and the file.
 * ------------------------------------------------------------------------- */
static void test_uris(void)
{
    char path[128], uri[256];
    sl_error e;
    path_in_dir(path, sizeof path, "u");

    snprintf(uri, sizeof uri, "sqlite:%s", path);
    CHECK_INT(open_status(uri, NULL, &e), SL_OK);
    CHECK_INT(open_status(path, NULL, &e), SL_OK);  /* a bare path */
    snprintf(uri, sizeof uri, "sqlite://%s", path); /* sqlite:///tmp/... */
    CHECK_INT(open_status(uri, NULL, &e), SL_OK);
    snprintf(uri, sizeof uri, "sqlite:%s?sync=full&busy_ms=250&readers=2&feed_retain=0", path);
    CHECK_INT(open_status(uri, NULL, &e), SL_OK);
    snprintf(uri, sizeof uri, "sqlite:%s?sync=sometimes", path);
    CHECK_INT(open_status(uri, NULL, &e), SL_EINVAL);
    CHECK(strstr(e.message, "sync") != NULL);
    snprintf(uri, sizeof uri, "sqlite:%s?colour=blue", path);
    CHECK_INT(open_status(uri, NULL, &e), SL_EINVAL);
    CHECK(strstr(e.message, "colour") != NULL);
    snprintf(uri, sizeof uri, "sqlite:%s?busy_ms=-5", path);
    CHECK_INT(open_status(uri, NULL, &e), SL_EINVAL);
    snprintf(uri, sizeof uri, "sqlite:%s?readers", path);
    CHECK_INT(open_status(uri, NULL, &e), SL_EINVAL);
    /* page_size: for a store being created; an existing one must match */
    snprintf(uri, sizeof uri, "sqlite:%s?page_size=4096", path);
    CHECK_INT(open_status(uri, NULL, &e), SL_EINVAL); /* u has 16 KB pages */
    CHECK(strstr(e.message, "16384-byte pages") != NULL);
    snprintf(uri, sizeof uri, "sqlite:%s?page_size=16384", path);
    CHECK_INT(open_status(uri, NULL, &e), SL_OK);
    snprintf(uri, sizeof uri, "sqlite:%s?page_size=5000", path);
    CHECK_INT(open_status(uri, NULL, &e), SL_EINVAL);
    CHECK(strstr(e.message, "power of two") != NULL);
    snprintf(uri, sizeof uri, "sqlite:%s?page_size=2048", path);
    CHECK_INT(open_status(uri, NULL, &e), SL_EINVAL);
    char small[128], v[32];
    path_in_dir(small, sizeof small, "small-pages");
    snprintf(uri, sizeof uri, "sqlite:%s?page_size=4096", small);
    CHECK_INT(open_status(uri, NULL, &e), SL_OK);
    CHECK_INT(raw_query(small, "PRAGMA page_size", v, sizeof v), SQLITE_OK);
    CHECK_STR(v, "4096");
    CHECK_INT(open_status(uri, NULL, &e), SL_OK);   /* again, the same URI */
    CHECK_INT(open_status(small, NULL, &e), SL_OK); /* and without the parameter */

    CHECK_INT(open_status("mongodb://localhost:27017/sightline", NULL, &e), SL_EUNSUPPORTED);
    CHECK(strstr(e.message, "MongoDB") != NULL);
    CHECK_INT(open_status("mongodb+srv://cluster.example/x", NULL, &e), SL_EUNSUPPORTED);
    CHECK_INT(open_status("redis://localhost", NULL, &e), SL_EUNSUPPORTED);
    CHECK_INT(open_status("", NULL, &e), SL_EINVAL);
    CHECK_INT(open_status("sqlite:", NULL, &e), SL_EINVAL);
    CHECK_INT(open_status(NULL, NULL, &e), SL_EINVAL);
    CHECK_INT(open_status(dir, NULL, &e), SL_EINVAL); /* a directory */

    /* not creating, and read-only */
    char missing[128];
    path_in_dir(missing, sizeof missing, "missing");
    store_options no_create = {.no_create = 1};
    CHECK_INT(open_status(missing, &no_create, &e), SL_ENOTFOUND);
    struct stat sb;
    CHECK(stat(missing, &sb) != 0); /* and nothing was created */
    store_options ro = {.read_only = 1};
    CHECK_INT(open_status(missing, &ro, &e), SL_ENOTFOUND);

    store *s = open_uri(path);
    CHECK_INT(put_n(s, STORE_ITEMS, "P", "a", 1, cond_none(), NULL), SL_OK);
    store_close(&s);
    sl_error_clear(&e);
    REQUIRE(store_open(path, &ro, &s, &e) == SL_OK);
    CHECK_INT(get_n(s, STORE_ITEMS, "P", "a", NULL), 1);
    CHECK_INT(put_n(s, STORE_ITEMS, "P", "b", 1, cond_none(), NULL), SL_EINVAL);
    store_batch *b = NULL;
    sl_error_clear(&e);
    CHECK_INT(store_batch_begin(s, &b, &e), SL_EINVAL);
    CHECK_INT(store_ping(s, &e), SL_OK);
    store_close(&s);
    CHECK_INT(get_n(s = open_uri(path), STORE_ITEMS, "P", "b", NULL), -1);
    store_close(&s);
}

static void test_file_layout(void)
{
    char path[128], wal[160], shm[160], v[64];
    path_in_dir(path, sizeof path, "layout");
    snprintf(wal, sizeof wal, "%s-wal", path);
    snprintf(shm, sizeof shm, "%s-shm", path);
    store *s = open_uri(path);
    CHECK_INT(put_n(s, STORE_ITEMS, "P", "a", 1, cond_none(), NULL), SL_OK);
    struct stat sb;
    CHECK(stat(wal, &sb) == 0); /* WAL mode, while open */
    CHECK(stat(shm, &sb) == 0);
    CHECK_INT(raw_query(path, "PRAGMA journal_mode", v, sizeof v), SQLITE_OK);
    CHECK_STR(v, "wal");
    CHECK_INT(raw_query(path, "PRAGMA page_size", v, sizeof v), SQLITE_OK);
    CHECK_STR(v, "16384");
    CHECK_INT(raw_query(path, "PRAGMA user_version", v, sizeof v), SQLITE_OK);
    CHECK_STR(v, "3");
    CHECK_INT(raw_query(path, "PRAGMA application_id", v, sizeof v), SQLITE_OK);
    CHECK(atoi(v) != 0);
    /* the stored blob is the document, v last */
    CHECK_INT(raw_query(path, "SELECT v FROM items WHERE pk = 'P' AND sk = 'a'", v, sizeof v),
              SQLITE_OK);
    CHECK_STR(v, "1");
    store_close(&s);
    CHECK(stat(wal, &sb) != 0); /* the last close checkpoints and removes the WAL */
}

static void test_foreign_files(void)
{
    char path[128], v[64];
    sl_error e;

    /* not SQLite at all */
    path_in_dir(path, sizeof path, "text");
    FILE *f = fopen(path, "w");
    REQUIRE(f != NULL);
    for (int i = 0; i < 200; i++)
        fputs("this is a plain text file, not a database\n", f);
    fclose(f);
    CHECK_INT(open_status(path, NULL, &e), SL_EINVAL);
    CHECK(strstr(e.message, "not a SQLite database") != NULL);
    CHECK(strstr(e.message, path) != NULL);

    /* SQLite, but someone else's */
    path_in_dir(path, sizeof path, "foreign");
    sqlite3 *db = NULL;
    REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db,
                         "CREATE TABLE invoices(id INTEGER PRIMARY KEY, total REAL);"
                         "INSERT INTO invoices(total) VALUES (12.5);",
                         NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    CHECK_INT(open_status(path, NULL, &e), SL_EINVAL);
    CHECK(strstr(e.message, "not a Sightline store") != NULL);
    CHECK_INT(raw_query(path, "SELECT count(*) FROM sqlite_master", v, sizeof v), SQLITE_OK);
    CHECK_STR(v, "1"); /* untouched */

    /* an empty file is a new store */
    path_in_dir(path, sizeof path, "empty");
    f = fopen(path, "w");
    REQUIRE(f != NULL);
    fclose(f);
    CHECK_INT(open_status(path, NULL, &e), SL_OK);

    /* a store from a newer sightline */
    path_in_dir(path, sizeof path, "newer");
    CHECK_INT(open_status(path, NULL, &e), SL_OK);
    CHECK_INT(raw_query(path, "PRAGMA user_version = 4", v, sizeof v), SQLITE_OK);
    CHECK_INT(open_status(path, NULL, &e), SL_EUNSUPPORTED);
    CHECK(strstr(e.message, "version 4") != NULL);
}

/* ---------------------------------------------------------------------------
 * Two processes.
 * ------------------------------------------------------------------------- */

/* Child: writes n documents {pk "X", sk "c%04d"} in batches of 10. */
static int child_writer(const char *uri, int n)
{
    store *s = NULL;
    sl_error e;
    sl_error_clear(&e);
    if (store_open(uri, NULL, &s, &e) != SL_OK)
        goto fail;
    for (int i = 0; i < n; i += 10) {
        store_batch *b = NULL;
        if (store_batch_begin(s, &b, &e) != SL_OK)
            goto fail;
        for (int j = i; j < i + 10 && j < n; j++) {
            char sk[16];
            snprintf(sk, sizeof sk, "c%04d", j);
            bson_t *d = doc_new("X", sk, j);
            sl_status rc = store_batch_put(b, STORE_ITEMS, d, cond_none(), NULL, &e);
            bson_destroy(d);
            if (rc != SL_OK) {
                store_batch_abort(&b);
                goto fail;
            }
        }
        if (store_batch_commit(&b, &e) != SL_OK)
            goto fail;
    }
    store_close(&s);
    return 0;
fail:
    fprintf(stderr, "writer child: %s: %s\n", sl_status_name(e.status), e.message);
    return 3;
}

static void test_second_process(void)
{
    char path[128], n[16];
    path_in_dir(path, sizeof path, "two");
    store *s = open_uri(path);
    store_feed *f = NULL;
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(store_feed_open(s, "watch", &f, &e) == SL_OK);

    snprintf(n, sizeof n, "%d", 300);
    pid_t pid = spawn("writer", path, n);
    /* this process writes too, meanwhile */
    for (int i = 0; i < 300; i++) {
        char sk[16];
        snprintf(sk, sizeof sk, "p%04d", i);
        CHECK_INT(put_n(s, STORE_ITEMS, "X", sk, i, cond_none(), NULL), SL_OK);
    }
    /* the feed wakes for the other process's commits (data_version polling) */
    int from_child = 0, from_here = 0;
    for (int rounds = 0; rounds < 10000 && from_child + from_here < 600; rounds++) {
        const store_event *ev = NULL;
        size_t k = 0;
        sl_error_clear(&e);
        REQUIRE(store_feed_read(f, 64, 20000, &ev, &k, &e) == SL_OK);
        if (k == 0)
            break;
        for (size_t i = 0; i < k; i++) {
            from_child += ev[i].sk[0] == 'c';
            from_here += ev[i].sk[0] == 'p';
        }
    }
    CHECK_INT(reap(pid), 0);
    CHECK_INT(from_child, 300);
    CHECK_INT(from_here, 300);
    CHECK_INT(get_n(s, STORE_ITEMS, "X", "c0299", NULL), 299);
    store_feed_close(&f);
    store_close(&s);
}

/* Child: holds the write lock of the raw file until told to let go. */
static int child_locker(const char *path, const char *fds)
{
    int rd = -1, wr = -1;
    if (sscanf(fds, "%d,%d", &rd, &wr) != 2)
        return 2;
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK ||
        sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return 3;
    char c = 'L';
    if (write(wr, &c, 1) != 1 || read(rd, &c, 1) != 1)
        return 4;
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db);
    return 0;
}

static void test_busy_other_process(void)
{
    char path[128], uri[200], fds[32];
    path_in_dir(path, sizeof path, "busy");
    snprintf(uri, sizeof uri, "sqlite:%s?busy_ms=200", path);
    store *s = open_uri(uri);
    REQUIRE(put_n(s, STORE_ITEMS, "P", "a", 1, cond_none(), NULL) == SL_OK);

    int to_child[2], from_child[2];
    REQUIRE(pipe(to_child) == 0 && pipe(from_child) == 0);
    snprintf(fds, sizeof fds, "%d,%d", to_child[0], from_child[1]);
    pid_t pid = spawn("locker", path, fds);
    char c = 0;
    REQUIRE(read(from_child[0], &c, 1) == 1 && c == 'L');

    sl_error e;
    bson_t *d = doc_new("P", "b", 1);
    sl_error_clear(&e);
    CHECK_INT(store_put(s, STORE_ITEMS, d, cond_none(), NULL, &e), SL_EBUSY);
    CHECK(strstr(e.message, path) != NULL);
    store_batch *b = NULL;
    sl_error_clear(&e);
    CHECK_INT(store_batch_begin(s, &b, &e), SL_EBUSY);
    CHECK(b == NULL);
    CHECK_INT(get_n(s, STORE_ITEMS, "P", "a", NULL), 1); /* readers are not blocked */
    sl_error_clear(&e);
    CHECK_INT(store_consumer_commit(s, "c", "", "", NULL, 0, &e), SL_EBUSY);

    REQUIRE(write(to_child[1], "G", 1) == 1);
    CHECK_INT(reap(pid), 0);
    sl_error_clear(&e);
    CHECK_INT(store_put(s, STORE_ITEMS, d, cond_none(), NULL, &e), SL_OK);
    bson_destroy(d);
    close(to_child[0]);
    close(to_child[1]);
    close(from_child[0]);
    close(from_child[1]);
    store_close(&s);
}

typedef struct busy_arg {
    store *s;
    sl_status rc;
} busy_arg;

static void *put_from_thread(void *p)
{
    busy_arg *a = p;
    a->rc = put_n(a->s, STORE_ITEMS, "T", "other-thread", 1, cond_none(), NULL);
    return NULL;
}

static void test_busy_same_process(void)
{
    char path[128], uri[200];
    path_in_dir(path, sizeof path, "inproc");
    snprintf(uri, sizeof uri, "sqlite:%s?busy_ms=150", path);
    store *s = open_uri(uri);
    store_batch *b = NULL;
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(store_batch_begin(s, &b, &e) == SL_OK);

    /* another thread waits for the batch, then gives up */
    busy_arg a = {s, SL_OK};
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, put_from_thread, &a) == 0);
    pthread_join(th, NULL);
    CHECK_INT(a.rc, SL_EBUSY);
    /* this thread would wait for itself: refused at once */
    CHECK_INT(put_n(s, STORE_ITEMS, "T", "same-thread", 1, cond_none(), NULL), SL_EINVAL);
    CHECK_INT(store_batch_commit(&b, &e), SL_OK);

    REQUIRE(pthread_create(&th, NULL, put_from_thread, &a) == 0);
    pthread_join(th, NULL);
    CHECK_INT(a.rc, SL_OK);
    store_close(&s);
}

/* Child: writes batches of 50 documents that share a batch number (keys
 * "<round>-b<batch>-<i>"), forever (until killed); after its first commit
 * it writes one byte to stdout, the parent's signal that a batch is in. */
static int child_crasher(const char *uri, const char *round)
{
    store *s = NULL;
    sl_error e;
    sl_error_clear(&e);
    if (store_open(uri, NULL, &s, &e) != SL_OK)
        return 3;
    for (int b = 0; b < 1000000; b++) {
        store_batch *bt = NULL;
        if (store_batch_begin(s, &bt, &e) != SL_OK)
            return 3;
        for (int i = 0; i < 50; i++) {
            char sk[32];
            snprintf(sk, sizeof sk, "%s-b%06d-%02d", round, b, i);
            bson_t *d = doc_new("CR", sk, b);
            BSON_APPEND_UTF8(d, "pad", "................................................");
            if (store_batch_put(bt, STORE_ITEMS, d, cond_none(), NULL, &e) != SL_OK)
                return 3;
            bson_destroy(d);
        }
        if (store_batch_commit(&bt, &e) != SL_OK)
            return 3;
        if (b == 0 && (write(STDOUT_FILENO, "c", 1) != 1 || close(STDOUT_FILENO) != 0))
            return 3;
    }
    return 0;
}

/* Starts the crasher for round r with its stdout on a pipe; *ready gets the
 * pipe's reading end. */
static pid_t spawn_crasher(const char *path, int r, int *ready)
{
    char round[8];
    int p[2];
    snprintf(round, sizeof round, "r%d", r);
    REQUIRE(pipe(p) == 0);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        if (dup2(p[1], STDOUT_FILENO) < 0)
            _exit(127);
        execl("/proc/self/exe", "sqlite_test", "crasher", path, round, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    *ready = p[0];
    return pid;
}

/* SIGKILL at a random moment after the child's first commit (never before:
 * a kill while it still starts up tests nothing), three times. */
static void test_kill_mid_batch(void)
{
    char path[128], v[64];
    path_in_dir(path, sizeof path, "crash");
    store *s = open_uri(path); /* create it here, then leave it to the child */
    store_close(&s);
    unsigned seed = (unsigned)test_rng(1);
    for (int round = 0; round < 3; round++) {
        int ready = -1;
        pid_t pid = spawn_crasher(path, round, &ready);
        struct pollfd p = {ready, POLLIN, 0};
        char c = 0;
        int committed = poll(&p, 1, 60000) == 1 && read(ready, &c, 1) == 1 && c == 'c';
        CHECK(committed);
        close(ready);
        struct timespec ts = {0, (long)(rand_r(&seed) % 100) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        CHECK_INT(reap(pid), -SIGKILL);
    }
    CHECK_INT(raw_query(path, "PRAGMA integrity_check", v, sizeof v), SQLITE_OK);
    CHECK_STR(v, "ok");
    s = open_uri(path);
    keylist got = {0};
    store_range all = {STORE_RANGE_ALL, NULL, NULL};
    CHECK_INT(collect(s, Q_PARTITION, STORE_ITEMS, "CR", all, 0, 1000, "sk", &got), SL_OK);
    CHECK_INT(got.n % 50, 0); /* whole batches only */
    size_t partial = 0, rounds = 0;
    for (size_t i = 0; i + 49 < got.n; i += 50) {
        partial += strncmp(got.k[i], got.k[i + 49], 10) != 0; /* "r0-b000000" */
        rounds += i == 0 || strncmp(got.k[i], got.k[i - 50], 2) != 0;
    }
    CHECK_INT(partial, 0);
    CHECK_INT(rounds, 3); /* every round committed its first batch at least */
    /* one event per stored document: no events of a lost batch */
    store_feed_stats st;
    sl_error e;
    sl_error_clear(&e);
    CHECK_INT(store_feed_stats_get(s, "nobody", &st, &e), SL_OK);
    CHECK_INT(st.behind_events, (int64_t)got.n);
    fprintf(stderr, "kill mid batch: %zu documents in whole batches of 3 rounds\n", got.n);
    keylist_free(&got);
    store_close(&s);
}

/* ---------------------------------------------------------------------------
 * Pruning follows the consumers; with no consumer nothing is pruned.
 * ------------------------------------------------------------------------- */
static int64_t change_rows(const char *path)
{
    char v[64];
    REQUIRE(raw_query(path, "SELECT count(*) FROM changes", v, sizeof v) == SQLITE_OK);
    return atoll(v);
}

static void test_pruning_follows_consumers(void)
{
    char path[128], sk[16];
    path_in_dir(path, sizeof path, "prune");
    store *s = open_uri(path);
    sl_error e;
    store_batch *b = NULL;
    sl_error_clear(&e);
    REQUIRE(store_batch_begin(s, &b, &e) == SL_OK);
    for (int i = 0; i < 1000; i++) {
        snprintf(sk, sizeof sk, "k%04d", i);
        bson_t *d = doc_new("PR", sk, i);
        REQUIRE(store_batch_put(b, STORE_ITEMS, d, cond_none(), NULL, &e) == SL_OK);
        bson_destroy(d);
    }
    REQUIRE(store_batch_commit(&b, &e) == SL_OK);
    CHECK_INT(change_rows(path), 1000); /* no consumer yet: all kept */

    /* consumer "slow" applies 500 events, "fast" all of them */
    store_feed *f = NULL;
    const store_event *ev = NULL;
    size_t n = 0;
    char t500[STORE_TOKEN_MAX];
    REQUIRE(store_feed_open(s, "slow", &f, &e) == SL_OK);
    REQUIRE(store_feed_read(f, 500, 0, &ev, &n, &e) == SL_OK && n == 500);
    memcpy(t500, ev[499].token, sizeof t500);
    store_feed_close(&f);
    CHECK_INT(store_consumer_commit(s, "slow", "", t500, NULL, 0, &e), SL_OK);
    store_feed_stats st;
    REQUIRE(store_feed_stats_get(s, NULL, &st, &e) == SL_OK);
    CHECK_INT(store_consumer_commit(s, "fast", "", st.head_token, NULL, 0, &e), SL_OK);
    CHECK_INT(change_rows(path), 500);
    /* "slow" catches up: all but the newest event go */
    CHECK_INT(store_consumer_commit(s, "slow", t500, st.head_token, NULL, 0, &e), SL_OK);
    CHECK_INT(change_rows(path), 1);
    REQUIRE(store_feed_stats_get(s, "slow", &st, &e) == SL_OK);
    CHECK(st.head_commit_ms > 0);
    CHECK_INT(st.behind_events, 0);
    /* nobody is gone: both open and read nothing */
    REQUIRE(store_feed_open(s, "slow", &f, &e) == SL_OK);
    REQUIRE(store_feed_read(f, 10, 0, &ev, &n, &e) == SL_OK);
    CHECK_INT(n, 0);
    store_feed_close(&f);
    /* a token that moves a consumer back is refused */
    sl_error_clear(&e);
    CHECK_INT(store_consumer_commit(s, "slow", st.head_token, t500, NULL, 0, &e), SL_EINVAL);
    store_close(&s);
}

/* ---------------------------------------------------------------------------
 * Retention, filtered positions, upgrades, the WAL.
 * ------------------------------------------------------------------------- */

/* Writes n documents {pk, "r%05d"} in batches of 10, numbered from first. */
static void write_n(store *s, const char *pk, int first, int n)
{
    sl_error e;
    sl_error_clear(&e);
    for (int i = first; i < first + n; i += 10) {
        store_batch *b = NULL;
        REQUIRE(store_batch_begin(s, &b, &e) == SL_OK);
        for (int j = i; j < i + 10 && j < first + n; j++) {
            char sk[16];
            snprintf(sk, sizeof sk, "r%05d", j);
            bson_t *d = doc_new(pk, sk, j);
            REQUIRE(store_batch_put(b, STORE_ITEMS, d, cond_none(), NULL, &e) == SL_OK);
            bson_destroy(d);
        }
        REQUIRE(store_batch_commit(&b, &e) == SL_OK);
    }
}

/* Events a consumer that never committed can still read. */
static int64_t readable_events(store *s, char last_sk[32])
{
    store_feed *f = NULL;
    const store_event *ev = NULL;
    size_t n = 0;
    int64_t total = 0;
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(store_feed_open(s, "probe", &f, &e) == SL_OK);
    while (store_feed_read(f, 1000, 0, &ev, &n, &e) == SL_OK && n > 0) {
        total += (int64_t)n;
        snprintf(last_sk, 32, "%s", ev[n - 1].sk);
    }
    CHECK_INT(e.status, SL_OK);
    store_feed_close(&f);
    return total;
}

/* With no consumer at all, the feed is still bounded: by count, and by age,
 * which makes a consumer left behind SL_EFEEDGONE.  (Regression: with no
 * consumer registered nothing was ever pruned.) */
static void test_retention(void)
{
    char path[128], uri[256], last[32];
    sl_error e;
    path_in_dir(path, sizeof path, "retain");
    snprintf(uri, sizeof uri, "sqlite:%s?feed_retain=100&feed_retain_ms=0", path);
    store *s = open_uri(uri);
    write_n(s, "C", 0, 400);
    int64_t kept = readable_events(s, last);
    CHECK(kept >= 100 && kept <= 100 + 100 / 16);
    CHECK_STR(last, "r00399");
    CHECK(change_rows(path) == kept);
    store_close(&s);

    /* By age: a bound of a minute, which no loaded machine reaches while the
     * young events are checked; then their commit times are moved two
     * minutes back (as the clock would), and the next commit after the age
     * check's interval (AGE_CHECK_MS, 1 s; waiting longer only helps)
     * prunes them. */
    path_in_dir(path, sizeof path, "age");
    snprintf(uri, sizeof uri, "sqlite:%s?feed_retain=0&feed_retain_ms=60000", path);
    s = open_uri(uri);
    write_n(s, "A", 0, 20);
    store_feed *f = NULL;
    const store_event *ev = NULL;
    size_t n = 0;
    sl_error_clear(&e);
    REQUIRE(store_feed_open(s, "behind", &f, &e) == SL_OK);
    REQUIRE(store_feed_read(f, 5, 0, &ev, &n, &e) == SL_OK && n == 5);
    CHECK_INT(store_consumer_commit(s, "behind", "", ev[4].token, NULL, 0, &e), SL_OK);
    store_feed_close(&f);
    CHECK_INT(readable_events(s, last), 20); /* young: all kept, consumer or not */
    char none[8];
    CHECK_INT(raw_query(path, "UPDATE commits SET ms = ms - 120000", none, sizeof none), SQLITE_OK);
    usleep(1100 * 1000); /* past the interval the age is looked at */
    write_n(s, "A", 20, 1);
    CHECK_INT(readable_events(s, last), 1); /* only the newest stays */
    CHECK_STR(last, "r00020");
    sl_error_clear(&e);
    CHECK_INT(store_feed_open(s, "behind", &f, &e), SL_EFEEDGONE);
    CHECK(strstr(e.message, "recompute") != NULL);
    /* the gone consumer comes back by a reset, or goes for good by a drop */
    sl_error_clear(&e);
    CHECK_INT(store_consumer_drop(s, "behind", &e), SL_OK);
    CHECK_INT(store_feed_open(s, "behind", &f, &e), SL_OK);
    store_feed_close(&f);
    store_close(&s);
    CHECK_INT(open_status("sqlite:/tmp/x.db?feed_retain_ms=-1", NULL, &e), SL_EINVAL);
    CHECK(strstr(e.message, "feed_retain_ms") != NULL);
    CHECK_INT(open_status("sqlite:/tmp/x.db?wal_pages=1", NULL, &e), SL_EINVAL);
}

/* A consumer of a filtered feed that commits its position lets the events
 * it never saw be pruned. */
static void test_filtered_position_prunes(void)
{
    char path[128];
    path_in_dir(path, sizeof path, "filtprune");
    store *s = open_uri(path);
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(put_n(s, STORE_ITEMS, "S", "META", 1, cond_none(), NULL) == SL_OK);
    store_batch *b = NULL;
    REQUIRE(store_batch_begin(s, &b, &e) == SL_OK);
    for (int i = 0; i < 1000; i++) {
        char sk[32];
        snprintf(sk, sizeof sk, "FRAME#%09d", i);
        bson_t *d = doc_new("S", sk, i);
        REQUIRE(store_batch_put(b, STORE_ITEMS, d, cond_none(), NULL, &e) == SL_OK);
        bson_destroy(d);
    }
    REQUIRE(store_batch_commit(&b, &e) == SL_OK);
    static const char *const frames[] = {"FRAME#"};
    store_feed_filter filter = {.skip = frames, .nskip = 1};
    store_feed *f = NULL;
    const store_event *ev = NULL;
    size_t n = 0;
    REQUIRE(store_feed_open_filtered(s, "agg", &filter, &f, &e) == SL_OK);
    REQUIRE(store_feed_read(f, 100, 0, &ev, &n, &e) == SL_OK);
    CHECK_INT(n, 1);
    store_feed_pos pos;
    REQUIRE(store_feed_position(f, &pos, &e) == SL_OK);
    CHECK_INT(pos.skipped, 1000);
    CHECK_INT(store_consumer_commit(s, "agg", "", pos.token, NULL, 0, &e), SL_OK);
    CHECK_INT(change_rows(path), 1); /* all but the newest went */
    store_feed_close(&f);
    store_close(&s);
}

/* The stored form of {pk, sk, n} at version v (v last, as the store keeps it). */
static bson_t *v1_doc(const char *pk, const char *sk, int64_t n, int64_t v)
{
    bson_t *d = doc_new(pk, sk, n);
    BSON_APPEND_INT64(d, "v", v);
    return d;
}

static void v1_exec(sqlite3 *db, const char *sql, const char *pk, const char *sk, int64_t n,
                    int64_t v)
{
    sqlite3_stmt *st = NULL;
    bson_t *d = v1_doc(pk, sk, n, v);
    REQUIRE(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK);
    sqlite3_bind_text(st, 1, pk, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, sk, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, v);
    sqlite3_bind_blob(st, 4, bson_get_data(d), (int)d->len, SQLITE_STATIC);
    REQUIRE(sqlite3_step(st) == SQLITE_DONE);
    sqlite3_finalize(st);
    bson_destroy(d);
}

/* Reads every event a new consumer can read: sk, old n, new n. */
static size_t events_of(store *s, const char *consumer, char sks[][8], int64_t (*nn)[2], size_t cap)
{
    store_feed *f = NULL;
    const store_event *ev = NULL;
    size_t n = 0, total = 0;
    sl_error e;
    sl_error_clear(&e);
    if (store_feed_open(s, consumer, &f, &e) != SL_OK)
        fprintf(stderr, "feed open %s: %s\n", consumer, e.message);
    REQUIRE(f != NULL);
    while (store_feed_read(f, 2, 0, &ev, &n, &e) == SL_OK && n > 0) {
        for (size_t i = 0; i < n && total < cap; i++, total++) {
            snprintf(sks[total], 8, "%s", ev[i].sk);
            nn[total][0] = ev[i].old_image ? bson_int(ev[i].old_image, "n") : -1;
            nn[total][1] = ev[i].new_image ? bson_int(ev[i].new_image, "n") : -1;
        }
    }
    CHECK_INT(e.status, SL_OK);
    store_feed_close(&f);
    return total;
}

/* The aggregates table of schema versions 1 and 2 (WITHOUT ROWID). */
#define AGGREGATES_V1_V2                                                                           \
    "CREATE TABLE aggregates(pk TEXT NOT NULL, sk TEXT NOT NULL, v INTEGER NOT NULL,"              \
    " gsi1pk TEXT, gsi1sk TEXT, gsi2pk TEXT, gsi2sk TEXT, doc BLOB NOT NULL,"                      \
    " PRIMARY KEY(pk, sk)) WITHOUT ROWID;"                                                         \
    "CREATE INDEX aggregates_gsi1 ON aggregates(gsi1pk, gsi1sk, pk, sk)"                           \
    " WHERE gsi1pk IS NOT NULL;"                                                                   \
    "CREATE INDEX aggregates_gsi2 ON aggregates(gsi2pk, gsi2sk, pk, sk)"                           \
    " WHERE gsi2pk IS NOT NULL;"

/* A store written by the version-1 schema (an index on changes(pk, sk) gave
 * events their new images) is upgraded on open, and every event kept still
 * has its images, before and after new writes. */
static void test_upgrade_v1(void)
{
    char path[128], v[64];
    path_in_dir(path, sizeof path, "v1");
    sqlite3 *db = NULL;
    REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
    // clang-format off
    static const char v1_schema[] =
        "PRAGMA page_size=16384; PRAGMA journal_mode=WAL;"
        "PRAGMA application_id=1399285876; PRAGMA user_version=1;" /* 0x53676874, "Sght" */
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
        "CREATE TABLE items(pk TEXT NOT NULL, sk TEXT NOT NULL, v INTEGER NOT NULL,"
        " gsi1pk TEXT, gsi1sk TEXT, gsi2pk TEXT, gsi2sk TEXT, doc BLOB NOT NULL,"
        " PRIMARY KEY(pk, sk)) WITHOUT ROWID;"
        "CREATE INDEX items_gsi1 ON items(gsi1pk, gsi1sk, pk, sk) WHERE gsi1pk IS NOT NULL;"
        "CREATE INDEX items_gsi2 ON items(gsi2pk, gsi2sk, pk, sk) WHERE gsi2pk IS NOT NULL;"
        AGGREGATES_V1_V2
        "CREATE TABLE changes(seq INTEGER PRIMARY KEY AUTOINCREMENT, op INTEGER NOT NULL,"
        " pk TEXT NOT NULL, sk TEXT NOT NULL, old BLOB);"
        "CREATE INDEX changes_key ON changes(pk, sk);"
        "CREATE TABLE commits(first_seq INTEGER PRIMARY KEY, ms INTEGER NOT NULL);"
        "CREATE TABLE consumers(name TEXT PRIMARY KEY, token TEXT NOT NULL,"
        " seq INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE TRIGGER items_insert AFTER INSERT ON items BEGIN"
        " INSERT OR FAIL INTO changes(op, pk, sk, old) VALUES (1, NEW.pk, NEW.sk, NULL); END;"
        "CREATE TRIGGER items_update AFTER UPDATE ON items BEGIN"
        " INSERT OR FAIL INTO changes(op, pk, sk, old) VALUES (1, NEW.pk, NEW.sk, OLD.doc); END;"
        "CREATE TRIGGER items_delete AFTER DELETE ON items BEGIN"
        " INSERT OR FAIL INTO changes(op, pk, sk, old) VALUES (2, OLD.pk, OLD.sk, OLD.doc); END;"
        "INSERT INTO meta(key, value) VALUES ('pruned', 0);";
    // clang-format on
    REQUIRE(sqlite3_exec(db, v1_schema, NULL, NULL, NULL) == SQLITE_OK);
    char sql[128]; /* a recent commit time, or retention by age would prune it all */
    snprintf(sql, sizeof sql, "INSERT INTO commits(first_seq, ms) VALUES (1, %lld)",
             (long long)time(NULL) * 1000);
    REQUIRE(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK);
    static const char ins[] = "INSERT INTO items(pk, sk, v, doc) VALUES (?1, ?2, ?3, ?4)";
    static const char upd[] = "UPDATE items SET v = ?3, doc = ?4 WHERE pk = ?1 AND sk = ?2";
    v1_exec(db, ins, "K", "a", 1, 1);  /* 1 */
    v1_exec(db, ins, "K", "b", 10, 1); /* 2 */
    v1_exec(db, upd, "K", "a", 2, 2);  /* 3 */
    REQUIRE(sqlite3_exec(db, "DELETE FROM items WHERE pk = 'K' AND sk = 'b'", NULL, NULL, NULL) ==
            SQLITE_OK);                /* 4 */
    v1_exec(db, ins, "K", "b", 11, 1); /* 5 */
    v1_exec(db, upd, "K", "a", 3, 3);  /* 6 */
    v1_exec(db, ins, "K", "c", 20, 1); /* 7, then pruned with 1..2 */
    REQUIRE(sqlite3_exec(db,
                         "INSERT INTO consumers(name, token, seq) VALUES ('old', '2', 2);"
                         "DELETE FROM changes WHERE seq <= 2; UPDATE meta SET value = 2;",
                         NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);

    store_options ro = {.read_only = 1};
    sl_error e;
    CHECK_INT(open_status(path, &ro, &e), SL_EUNSUPPORTED); /* read-only cannot upgrade */
    CHECK(strstr(e.message, "read-write") != NULL);
    store *s = open_uri(path);
    CHECK_INT(raw_query(path, "PRAGMA user_version", v, sizeof v), SQLITE_OK);
    CHECK_STR(v, "3");
    CHECK_INT(raw_query(path, "SELECT count(*) FROM sqlite_master WHERE name = 'changes_key'", v,
                        sizeof v),
              SQLITE_OK);
    CHECK_STR(v, "0");
    char sks[16][8];
    int64_t nn[16][2];
    /* events 3..7 as the version-1 store would have given them */
    static const char *const want_sk[] = {"a", "b", "b", "a", "c", "b", "c"};
    static const int64_t want[][2] = {{1, 2},   {10, -1}, {-1, 11}, {2, 3},
                                      {-1, 20}, {11, 12}, {20, -1}};
    size_t n = events_of(s, "old", sks, nn, 16);
    CHECK_INT(n, 5);
    for (size_t i = 0; i < n && i < 5; i++) {
        CHECK_STR(sks[i], want_sk[i]);
        CHECK_INT(nn[i][0], want[i][0]);
        CHECK_INT(nn[i][1], want[i][1]);
    }
    /* new writes on upgraded keys: the old events keep their new images */
    CHECK_INT(put_n(s, STORE_ITEMS, "K", "b", 12, cond_of(STORE_COND_VERSION, 1), NULL), SL_OK);
    sl_error_clear(&e);
    CHECK_INT(store_delete(s, STORE_ITEMS, "K", "c", cond_none(), NULL, &e), SL_OK);
    n = events_of(s, "old", sks, nn, 16);
    CHECK_INT(n, 7);
    for (size_t i = 0; i < n && i < 7; i++) {
        CHECK_STR(sks[i], want_sk[i]);
        CHECK_INT(nn[i][0], want[i][0]);
        CHECK_INT(nn[i][1], want[i][1]);
    }
    char tok[STORE_TOKEN_MAX];
    CHECK_INT(store_consumer_token(s, "old", tok, &e), SL_OK);
    CHECK_STR(tok, "2");
    store_close(&s);
    s = open_uri(path); /* opening an upgraded store changes nothing */
    CHECK_INT(events_of(s, "old", sks, nn, 16), 7);
    store_close(&s);
}

/* Version 2 kept aggregates in a WITHOUT ROWID table; version 3 in a rowid
 * table with a unique index (see AGG_TABLE in store_sqlite.c).  The store is
 * written through the port, turned back into the version-2 layout by hand,
 * then opened: every document, version and index entry must come through,
 * and conditions must still hold on the new table. */
static void test_upgrade_v2(void)
{
    char path[128], v[256];
    path_in_dir(path, sizeof path, "v2");
    store *s = open_uri(path);
    sl_error e;
    sl_error_clear(&e);
    for (int i = 0; i < 40; i++) { /* brand-like documents in the indexes, plain ones besides */
        char sk[16], g1[16], g2[16];
        snprintf(sk, sizeof sk, "B#%02d", i);
        snprintf(g1, sizeof g1, "%04d", 40 - i);
        snprintf(g2, sizeof g2, "%04d", i * 7 % 40);
        bson_t *d =
            i % 2 ? doc_new("T#t#AGG", sk, i) : doc_new_gsi("T#t#AGG", sk, "G", g1, "G", g2, i);
        REQUIRE(store_put(s, STORE_AGGREGATES, d, cond_none(), NULL, &e) == SL_OK);
        bson_destroy(d);
    }
    CHECK_INT(
        put_n(s, STORE_AGGREGATES, "T#t#AGG", "B#05", 105, cond_of(STORE_COND_VERSION, 1), NULL),
        SL_OK); /* v 2 */
    store_close(&s);
    // clang-format off
    static const char to_v2[] =
        "ALTER TABLE aggregates RENAME TO a3;"
        "DROP INDEX aggregates_key; DROP INDEX aggregates_gsi1; DROP INDEX aggregates_gsi2;"
        AGGREGATES_V1_V2
        "INSERT INTO aggregates SELECT pk, sk, v, gsi1pk, gsi1sk, gsi2pk, gsi2sk, doc FROM a3;"
        "DROP TABLE a3; PRAGMA user_version = 2;";
    // clang-format on
    sqlite3 *db = NULL;
    REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db, to_v2, NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);

    store_options ro = {.read_only = 1};
    CHECK_INT(open_status(path, &ro, &e), SL_EUNSUPPORTED); /* read-only cannot upgrade */
    s = open_uri(path);
    CHECK_INT(raw_query(path, "PRAGMA user_version", v, sizeof v), SQLITE_OK);
    CHECK_STR(v, "3");
    CHECK_INT(
        raw_query(path, "SELECT sql FROM sqlite_master WHERE name = 'aggregates'", v, sizeof v),
        SQLITE_OK);
    CHECK(strstr(v, "WITHOUT ROWID") == NULL);
    CHECK_INT(raw_query(path, "SELECT count(*) FROM sqlite_master WHERE tbl_name = 'aggregates'", v,
                        sizeof v),
              SQLITE_OK);
    CHECK_STR(v, "4"); /* the table, its key and two index entries */
    int64_t ver = 0;
    CHECK_INT(get_n(s, STORE_AGGREGATES, "T#t#AGG", "B#05", &ver), 105);
    CHECK_INT(ver, 2);
    CHECK_INT(get_n(s, STORE_AGGREGATES, "T#t#AGG", "B#06", &ver), 6);
    CHECK_INT(ver, 1);
    store_query_opts q = {.limit = 100};
    store_page p;
    REQUIRE(store_query(s, STORE_AGGREGATES, "T#t#AGG", &q, &p, &e) == SL_OK);
    CHECK_INT(p.count, 40);
    store_page_free(&p);
    q.descending = 1;
    REQUIRE(store_query_index(s, STORE_AGGREGATES, STORE_GSI1, "G", &q, &p, &e) == SL_OK);
    CHECK_INT(p.count, 20);
    bson_t first;
    CHECK(p.count > 0 && store_page_view(&p, 0, &first));
    CHECK_STR(bson_str(&first, "sk"), "B#00"); /* gsi1sk 0040, the largest */
    store_page_free(&p);
    /* conditions on the rebuilt table: the key stays unique */
    CHECK_INT(
        put_n(s, STORE_AGGREGATES, "T#t#AGG", "B#06", 1, cond_of(STORE_COND_NOT_EXISTS, 0), NULL),
        SL_ECONDITION);
    CHECK_INT(
        put_n(s, STORE_AGGREGATES, "T#t#AGG", "B#06", 106, cond_of(STORE_COND_VERSION, 1), NULL),
        SL_OK);
    CHECK_INT(get_n(s, STORE_AGGREGATES, "T#t#AGG", "B#06", &ver), 106);
    CHECK_INT(ver, 2);
    CHECK_INT(put_n(s, STORE_AGGREGATES, "T#t#AGG", "B#99", 1, cond_none(), NULL), SL_OK);
    store_close(&s);
    s = open_uri(path); /* opening an upgraded store changes nothing */
    CHECK_INT(get_n(s, STORE_AGGREGATES, "T#t#AGG", "B#99", NULL), 1);
    store_close(&s);
}

/* Writer and reader threads for test_wal_bounded. */
typedef struct wal_arg {
    store *s;
    int stop;      /* __atomic */
    int64_t reads; /* __atomic */
} wal_arg;

static void *wal_reader(void *p)
{
    wal_arg *w = p;
    store_feed *f = NULL;
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(store_feed_open(w->s, "reader", &f, &e) == SL_OK);
    while (!__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) {
        const store_event *ev = NULL;
        size_t n = 0;
        store_page p2;
        store_query_opts q = {.range = {STORE_RANGE_BEGINS_WITH, "r0", NULL}, .limit = 20};
        if (store_feed_read(f, 50, 0, &ev, &n, &e) == SL_OK)
            __atomic_add_fetch(&w->reads, 1, __ATOMIC_RELAXED);
        /* a read held for 2 ms: with two readers one nearly always holds
         * frames, so the WAL never gets started again by chance */
        store *snap = NULL;
        if (store_snapshot_open(w->s, &snap, &e) == SL_OK &&
            store_query(snap, STORE_ITEMS, "W", &q, &p2, &e) == SL_OK)
            store_page_free(&p2);
        usleep(2000);
        store_close(&snap);
    }
    store_feed_close(&f);
    return NULL;
}

static void *wal_writer(void *p)
{
    wal_arg *w = p;
    for (int round = 0; round < 1500; round++)
        write_n(w->s, "W", (round * 10) % 5000, 10);
    return NULL;
}

/* Under back-to-back small commits from two threads and readers that always
 * hold some frames, the WAL is copied back and started again, so it stays
 * near its checkpoint size.  (Regression: a checkpointer racing the writers
 * never got the WAL started again; it grew to 3 GB in 10 s of
 * listener_bench.) */
static void test_wal_bounded(void)
{
    char path[128], uri[256], wal[160];
    path_in_dir(path, sizeof path, "wal");
    snprintf(uri, sizeof uri, "sqlite:%s?wal_pages=64", path);
    snprintf(wal, sizeof wal, "%s-wal", path);
    wal_arg w = {.s = open_uri(uri)};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        REQUIRE(pthread_create(&th[i], NULL, i < 2 ? wal_reader : wal_writer, &w) == 0);
    off_t max_wal = 0;
    for (int i = 2; i < 4; i++) { /* sample the WAL's size until the writers are done */
        while (pthread_tryjoin_np(th[i], NULL) != 0) {
            struct stat sb;
            if (stat(wal, &sb) == 0 && sb.st_size > max_wal)
                max_wal = sb.st_size;
            usleep(1000);
        }
    }
    __atomic_store_n(&w.stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    CHECK(__atomic_load_n(&w.reads, __ATOMIC_RELAXED) > 0);
    CHECK(max_wal > 0);
    CHECK(max_wal < 24ll << 20); /* measured 3-5 MB; 40 MB (all of it) without the rewind */
    store_close(&w.s);
}

/* Pages name each document by the key and version the store keeps, and are
 * positioned by them: a document whose bytes are not BSON, or are another
 * document's, neither ends a query nor moves its next page (issue 9, 16-17:
 * such a row used to fail the whole query, or make the next page skip rows). */
static void test_damaged_rows(void)
{
    char path[160], uri[200], sql[300], got[64];
    path_in_dir(path, sizeof path, "damaged");
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    store *s = open_uri(uri);
    static const char *const sks[] = {"A1", "A2", "A3", "A4", "A5"};
    for (int i = 0; i < 5; i++) {
        char g[8];
        snprintf(g, sizeof g, "g%d", i + 1);
        bson_t *d =
            BCON_NEW("pk", "P", "sk", sks[i], "gsi1pk", "G", "gsi1sk", g, "n", BCON_INT64(i));
        REQUIRE(store_put(s, STORE_AGGREGATES, d, (store_cond){0}, NULL, NULL) == SL_OK);
        bson_destroy(d);
    }
    /* A2: not BSON (a disk fault); A3: A5's bytes (a bad restore); versions moved. */
    CHECK_INT(raw_query(path, "UPDATE aggregates SET doc = x'0badf00d', v = v + 6 WHERE sk = 'A2'",
                        got, sizeof got),
              SQLITE_OK);
    snprintf(sql, sizeof sql,
             "UPDATE aggregates SET doc = (SELECT doc FROM aggregates WHERE sk = 'A5'), v = 9 "
             "WHERE sk = 'A3'");
    CHECK_INT(raw_query(path, sql, got, sizeof got), SQLITE_OK);
    for (int kind = 0; kind < 3; kind++) { /* partition, scan, index */
        char token[STORE_PAGE_TOKEN_MAX] = "", seen[64] = "";
        int pages = 0;
        for (;;) {
            store_page page = {0};
            store_query_opts q = {.limit = 2, .page_token = token[0] ? token : NULL};
            sl_error e;
            sl_error_clear(&e);
            sl_status rc = kind == 0   ? store_query(s, STORE_AGGREGATES, "P", &q, &page, &e)
                           : kind == 1 ? store_scan(s, STORE_AGGREGATES, "P", &q, &page, &e)
                                       : store_query_index(s, STORE_AGGREGATES, STORE_GSI1, "G", &q,
                                                           &page, &e);
            if (rc != SL_OK)
                fprintf(stderr, "damaged rows, query kind %d: %s\n", kind, e.message);
            REQUIRE(rc == SL_OK);
            for (size_t i = 0; i < page.count; i++) {
                const store_doc *d = &page.docs[i];
                bson_t view;
                CHECK_STR(d->pk, "P");
                snprintf(seen + strlen(seen), sizeof seen - strlen(seen), "%s ", d->sk);
                int readable = store_page_view(&page, i, &view);
                CHECK_INT(readable, strcmp(d->sk, "A2") != 0);
                CHECK_INT(d->version, !strcmp(d->sk, "A2") ? 7 : !strcmp(d->sk, "A3") ? 9 : 1);
            }
            pages++;
            int more = page.next_token != NULL;
            if (more)
                snprintf(token, sizeof token, "%s", page.next_token);
            store_page_free(&page);
            if (!more || pages > 10)
                break;
        }
        CHECK_STR(seen, "A1 A2 A3 A4 A5 ");
    }
    /* A get names the damaged one too (it cannot hand out bytes that are not BSON). */
    bson_t *doc = NULL;
    sl_error e;
    sl_error_clear(&e);
    CHECK_INT(store_get(s, STORE_AGGREGATES, "P", "A2", &doc, &e), SL_ECORRUPT);
    CHECK(strstr(e.message, "A2") != NULL);
    store_close(&s);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "writer") == 0)
        return child_writer(argv[2], atoi(argv[3]));
    if (argc == 4 && strcmp(argv[1], "locker") == 0)
        return child_locker(argv[2], argv[3]);
    if (argc == 4 && strcmp(argv[1], "crasher") == 0)
        return child_crasher(argv[2], argv[3]);
    tmpdir_make(dir);
    test_uris();
    test_file_layout();
    test_foreign_files();
    test_second_process();
    test_busy_other_process();
    test_busy_same_process();
    test_kill_mid_batch();
    test_pruning_follows_consumers();
    test_retention();
    test_filtered_position_prunes();
    test_upgrade_v1();
    test_upgrade_v2();
    test_wal_bounded();
    test_damaged_rows();
    tmpdir_remove(dir);
    return check_finish();
}
