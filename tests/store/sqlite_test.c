/* sqlite_test.c -- what only the SQLite adapter promises: URIs, the file it
 * writes (WAL, page size, header marks), refusing foreign files, a second
 * process writing while this one holds the store, busy handling, no half
 * batch after SIGKILL, and pruning of applied events.  Helper processes are
 * this binary re-executed with a mode argument. */
#include "tests/store/store_test.h"

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
    CHECK_STR(v, "1");
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
    CHECK_INT(raw_query(path, "PRAGMA user_version = 2", v, sizeof v), SQLITE_OK);
    CHECK_INT(open_status(path, NULL, &e), SL_EUNSUPPORTED);
    CHECK(strstr(e.message, "version 2") != NULL);
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

/* Child: writes batches of 50 documents that share a batch number, forever
 * (until killed). */
static int child_crasher(const char *uri)
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
            snprintf(sk, sizeof sk, "b%06d-%02d", b, i);
            bson_t *d = doc_new("CR", sk, b);
            BSON_APPEND_UTF8(d, "pad", "................................................");
            if (store_batch_put(bt, STORE_ITEMS, d, cond_none(), NULL, &e) != SL_OK)
                return 3;
            bson_destroy(d);
        }
        if (store_batch_commit(&bt, &e) != SL_OK)
            return 3;
    }
    return 0;
}

static void test_kill_mid_batch(void)
{
    char path[128], v[64];
    path_in_dir(path, sizeof path, "crash");
    store *s = open_uri(path); /* create it here, then leave it to the child */
    store_close(&s);
    unsigned seed = (unsigned)getpid();
    for (int round = 0; round < 3; round++) {
        pid_t pid = spawn("crasher", path, "-");
        struct timespec ts = {0, (long)(50 + rand_r(&seed) % 150) * 1000000L};
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
    CHECK(got.n > 0);
    CHECK_INT(got.n % 50, 0); /* whole batches only */
    size_t partial = 0;
    for (size_t i = 0; i + 49 < got.n; i += 50)
        partial += strncmp(got.k[i], got.k[i + 49], 7) != 0;
    CHECK_INT(partial, 0);
    /* one event per stored document: no events of a lost batch */
    store_feed_stats st;
    sl_error e;
    sl_error_clear(&e);
    CHECK_INT(store_feed_stats_get(s, "nobody", &st, &e), SL_OK);
    CHECK_INT(st.behind_events, (int64_t)got.n);
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

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "writer") == 0)
        return child_writer(argv[2], atoi(argv[3]));
    if (argc == 4 && strcmp(argv[1], "locker") == 0)
        return child_locker(argv[2], argv[3]);
    if (argc == 4 && strcmp(argv[1], "crasher") == 0)
        return child_crasher(argv[2]);
    tmpdir_make(dir);
    test_uris();
    test_file_layout();
    test_foreign_files();
    test_second_process();
    test_busy_other_process();
    test_busy_same_process();
    test_kill_mid_batch();
    test_pruning_follows_consumers();
    tmpdir_remove(dir);
    return check_finish();
}
