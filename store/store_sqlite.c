/* store_sqlite.c -- the embedded SQLite adapter of the storage port ("sqlite:PATH"): schema
 * and its upgrades, connections, writes, queries, change feed, consumers, retention,
 * checkpoints and snapshots.  store.c has already validated every input.
 *
 * Choices, measured on this machine (2 cores, SQLite 3.40.1, WAL,
 * synchronous=NORMAL, batches of 10k rows, /tmp/slexp programs and
 * bench/store_bench, bench/listener_bench):
 * - 16 KB pages.  300-byte rows: 437k rows/s (16 KB) vs 330k (4 KB) without a
 *   feed; 1.5 KB rows: 224k vs 42k (4 KB pages push them to overflow pages).
 *   The price: every page a commit touches is 16 KB of WAL, so small random
 *   commits write a lot (listener_bench at 10k asset writes/s: ~500 MB/s of
 *   WAL, a third of the CPU in pwrite).
 * - Change rows hold the old image only; an event's new image is read back as
 *   the old image of the key's next change, else the current item (one
 *   query, see SQL_FEED_READ).  With both images the trigger copies every
 *   document twice: 247k vs 318k rows/s at 300 bytes and 83k vs 163k rows/s
 *   at 1.5 KB (the frame-ingest case).  The next change is found through
 *   changes.prev, the change that wrote its old image (items.cseq, set by
 *   put_on() and copied by the triggers), under a partial index that inserts
 *   skip; schema version 1 had an index on changes(pk, sk) instead, which
 *   cost a randomly placed page per event: dropping it took bulk puts from
 *   ~262k to ~325k items/s and a 10-asset commit from ~34 to ~24 pages.
 * - Every write statement says OR FAIL.  Otherwise SQLite opens a statement
 *   journal for each statement that fires a trigger and copies each touched
 *   16 KB page into it: the trigger cost 86k rows/s against 250k for the
 *   same rows written from C.  FAIL does not undo the failed statement's
 *   partial work, which is safe here because any failure rolls back the whole
 *   transaction (a failed batch can only be aborted).
 * - No function call in the triggers: any function (julianday('now') or one
 *   of ours) makes SQLite journal each statement again (74k rows/s against
 *   280k).  Commit times live in a `commits` table instead, one row per
 *   transaction that changed items (its first sequence number and the wall
 *   clock just before COMMIT); an event's time is that of the row at or
 *   below its sequence number.  Writes made by other tools get the time of
 *   the previous commit.
 * - Checkpoints run in a thread of their own (see "Checkpoints"), not in the
 *   commit that crosses SQLite's auto-checkpoint mark: there a commit waited
 *   for the copy and two fsyncs (30-60 ms), which was most of the listener's
 *   p99 lag at 1k writes/s (12 ms, now 1 ms) and ~30% of bulk put time.
 * - The writer lock is handed over in arrival order, so the listener's
 *   consumer commit is not overtaken by a writer committing in a loop.
 * - Memory statistics are off (sqlite_configure()): a global mutex on every
 *   allocation, 5% of a bulk put's CPU. */
#include "store_int.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define APP_ID              0x53676874   /* "Sght" in the file header: marks a Sightline store */
#define SCHEMA_VERSION      3            /* PRAGMA user_version; raise it with a migration */
#define DEFAULT_CACHE_BYTES (16ll << 20) /* per connection */
#define DEFAULT_BUSY_MS     5000
#define DEFAULT_READERS     8
#define READERS_MAX         64
#define FEED_READ_MAX       10000       /* events in one read */
#define FEED_READ_BYTES     (64u << 20) /* images in one read; at least one event */
#define PRUNE_MIN           256         /* prune once this many events are applied by all */
#define PRUNE_MAX           65536       /* events deleted by one commit, to bound its time */
#define FEED_SCAN_MAX       100000      /* events one read looks at (a filter skips the rest) */
#define FEED_POLL_NS        1000000L    /* how often a waiting feed looks for other processes */
#define DEFAULT_RETAIN      10000000ll  /* events kept whatever the consumers (feed_retain) */
#define DEFAULT_RETAIN_MS   (7ll * 24 * 3600 * 1000) /* and their age (feed_retain_ms) */
#define AGE_CHECK_MS        1000  /* how often a commit applies retention by age */
#define DEFAULT_PAGE_SIZE   16384 /* of a new store (page_size) */
#define DEFAULT_WAL_PAGES   4096  /* WAL pages (frames) that start a checkpoint */
#define CKPT_TAIL           64    /* frames left for the rewind under the writer lock */
#define CKPT_PASSES         4     /* copy-and-flush passes before it, at most */
#define CKPT_WAIT_US        5000  /* the longest wait for readers while writers wait */
#define CKPT_DEFER_MS       50    /* how long a rewind waits for a consumer commit */
#define CONSUMER_ACTIVE_MS  1000  /* a consumer that committed this recently is active */
#define WAL_KEEP_FACTOR     8 /* a WAL past this many times wal_pages is cut back after a reset */

/* ---------------------------------------------------------------------------
 * Schema.
 * ------------------------------------------------------------------------- */
/* clang-format off */
#define DOC_TABLE(name)                                                                       \
    "CREATE TABLE " name "(pk TEXT NOT NULL, sk TEXT NOT NULL, v INTEGER NOT NULL,"           \
    " gsi1pk TEXT, gsi1sk TEXT, gsi2pk TEXT, gsi2sk TEXT, doc BLOB NOT NULL,"                 \
    " PRIMARY KEY(pk, sk)) WITHOUT ROWID;"                                                    \
    "CREATE INDEX " name "_gsi1 ON " name "(gsi1pk, gsi1sk, pk, sk) WHERE gsi1pk IS NOT NULL;" \
    "CREATE INDEX " name "_gsi2 ON " name "(gsi2pk, gsi2sk, pk, sk) WHERE gsi2pk IS NOT NULL;"

/* aggregates (schema version 3): a rowid table with a unique index on (pk,
 * sk), not WITHOUT ROWID like items.  Its documents are ~4 KB (three
 * histograms of 100 int64 bins), a quarter of a page: in a WITHOUT ROWID
 * table the interior pages hold whole records (the key is the record) and
 * anything past 4086 bytes spills to an overflow page, and an update is a
 * delete and an insert.  A rowid table updates a same-sized record in place
 * in its leaf.  Measured with listener_bench at 10k writes/s: 143 pages for
 * 310 aggregates (72 leaves, 21 interior, 50 overflow) against ~105, and a
 * consumer commit wrote ~0.65 pages per aggregate instead of ~1.05, with
 * apply and COMMIT under the writer lock ~35% shorter. */
#define AGG_TABLE                                                                             \
    "CREATE TABLE aggregates(pk TEXT NOT NULL, sk TEXT NOT NULL, v INTEGER NOT NULL,"         \
    " gsi1pk TEXT, gsi1sk TEXT, gsi2pk TEXT, gsi2sk TEXT, doc BLOB NOT NULL);"                \
    "CREATE UNIQUE INDEX aggregates_key ON aggregates(pk, sk);"                               \
    "CREATE INDEX aggregates_gsi1 ON aggregates(gsi1pk, gsi1sk, pk, sk)"                      \
    " WHERE gsi1pk IS NOT NULL;"                                                              \
    "CREATE INDEX aggregates_gsi2 ON aggregates(gsi2pk, gsi2sk, pk, sk)"                      \
    " WHERE gsi2pk IS NOT NULL;"

/* The feed's triggers (schema version 2): a change row records the change
 * that wrote its old image (prev = the item's cseq), which is how a reader
 * finds an event's new image (see SQL_FEED_READ). */
#define FEED_TRIGGERS                                                                         \
    "CREATE TRIGGER items_insert AFTER INSERT ON items BEGIN"                                 \
    " INSERT OR FAIL INTO changes(op, pk, sk, old, prev)"                                     \
    " VALUES (1, NEW.pk, NEW.sk, NULL, NULL); END;"                                           \
    "CREATE TRIGGER items_update AFTER UPDATE ON items BEGIN"                                 \
    " INSERT OR FAIL INTO changes(op, pk, sk, old, prev)"                                     \
    " VALUES (1, NEW.pk, NEW.sk, OLD.doc, OLD.cseq); END;"                                    \
    "CREATE TRIGGER items_delete AFTER DELETE ON items BEGIN"                                 \
    " INSERT OR FAIL INTO changes(op, pk, sk, old, prev)"                                     \
    " VALUES (2, OLD.pk, OLD.sk, OLD.doc, OLD.cseq); END;"

static const char schema_sql[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
    DOC_TABLE("items")
    AGG_TABLE
    /* cseq: the sequence number of the change that wrote the current document */
    "ALTER TABLE items ADD COLUMN cseq INTEGER;"
    "CREATE TABLE changes(seq INTEGER PRIMARY KEY AUTOINCREMENT, op INTEGER NOT NULL,"
    " pk TEXT NOT NULL, sk TEXT NOT NULL, old BLOB, prev INTEGER);"
    "CREATE INDEX changes_prev ON changes(prev) WHERE prev IS NOT NULL;"
    "CREATE TABLE commits(first_seq INTEGER PRIMARY KEY, ms INTEGER NOT NULL);"
    "CREATE TABLE consumers(name TEXT PRIMARY KEY, token TEXT NOT NULL,"
    " seq INTEGER NOT NULL) WITHOUT ROWID;"
    FEED_TRIGGERS
    "INSERT INTO meta(key, value) VALUES ('pruned', 0);";

/* Version 1 to 2: drop the index on changes(pk, sk) (a random page written
 * per event) for changes.prev and items.cseq, filled in for the events kept.
 * The old triggers go first, so that filling cseq makes no events. */
static const char migrate_1_2_sql[] =
    "DROP TRIGGER items_insert; DROP TRIGGER items_update; DROP TRIGGER items_delete;"
    "ALTER TABLE items ADD COLUMN cseq INTEGER;"
    "ALTER TABLE changes ADD COLUMN prev INTEGER;"
    "UPDATE changes SET prev = (SELECT max(p.seq) FROM changes p WHERE p.pk = changes.pk"
    " AND p.sk = changes.sk AND p.seq < changes.seq) WHERE old IS NOT NULL;"
    "UPDATE items SET cseq = m.seq FROM (SELECT pk, sk, max(seq) AS seq FROM changes"
    " GROUP BY pk, sk) AS m WHERE items.pk = m.pk AND items.sk = m.sk;"
    "DROP INDEX changes_key;"
    "CREATE INDEX changes_prev ON changes(prev) WHERE prev IS NOT NULL;"
    FEED_TRIGGERS
    "PRAGMA user_version = 2;";

/* Version 2 to 3: aggregates become a rowid table (see AGG_TABLE). */
static const char migrate_2_3_sql[] =
    "ALTER TABLE aggregates RENAME TO aggregates_v2;"
    "DROP INDEX aggregates_gsi1; DROP INDEX aggregates_gsi2;"
    AGG_TABLE
    "INSERT INTO aggregates(pk, sk, v, gsi1pk, gsi1sk, gsi2pk, gsi2sk, doc)"
    " SELECT pk, sk, v, gsi1pk, gsi1sk, gsi2pk, gsi2sk, doc FROM aggregates_v2 ORDER BY pk, sk;"
    "DROP TABLE aggregates_v2;"
    "PRAGMA user_version = 3;";

/* The commit time of the event with sequence number `seq`. */
#define SQL_COMMIT_MS(seq)                                                                    \
    "(SELECT t.ms FROM commits t WHERE t.first_seq <= " seq                                   \
    " ORDER BY t.first_seq DESC LIMIT 1)"

/* Reads events in (?1, ?3], at most ?2.  An event's new image is the old
 * image of the key's next change (the one whose prev is this event), else the
 * current item.  Deletes have none.  A filter's conditions go before the
 * tail (feed_sql()). */
#define SQL_FEED_READ_HEAD                                                                    \
    "SELECT c.seq, c.op, c.pk, c.sk, " SQL_COMMIT_MS("c.seq") ", c.old,"                       \
    " CASE WHEN c.op = 1 THEN coalesce("                                                      \
    "(SELECT n.old FROM changes n WHERE n.prev = c.seq),"                                     \
    "(SELECT i.doc FROM items i WHERE i.pk = c.pk AND i.sk = c.sk)) END"                      \
    " FROM changes c WHERE c.seq > ?1 AND c.seq <= ?3"
#define SQL_FEED_READ_TAIL " ORDER BY c.seq LIMIT ?2"
/* clang-format on */

/* ---------------------------------------------------------------------------
 * Statements: prepared once per connection, on first use, and kept.
 * ------------------------------------------------------------------------- */
enum {
    /* one of each per table: id = T_x + table * T_COUNT */
    T_GET = 0,
    T_INSERT,
    T_SELECT_VDOC,
    T_UPDATE,
    T_DELETE,
    T_DELETE_V,
    T_SELECT_V,
    T_COUNT,
    S_BEGIN_IMMEDIATE = 2 * T_COUNT,
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_HEAD,
    S_META_GET,
    S_META_SET,
    S_CONS_GET,
    S_CONS_PUT,
    S_CONS_MIN,
    S_PRUNE,
    S_FEED_READ,
    S_DATA_VERSION,
    S_COMMIT_MS,
    S_COMMIT_ADD,
    S_PRUNE_COMMITS,
    S_PROBE,
    S_FIRST_SINCE,
    S_CONS_DROP,
    S_PAGE_SIZE,
    S_QUERY_BASE, /* then one per query shape, see query_shape() */
    QUERY_SHAPES = 2 * 4 * 2 * 3 * 2 * 2,
    S_COUNT = S_QUERY_BASE + QUERY_SHAPES
};

static const char *const table_names[2] = {"items", "aggregates"};

static const char *const fixed_sql[] = {
    [S_BEGIN_IMMEDIATE] = "BEGIN IMMEDIATE",
    [S_BEGIN] = "BEGIN",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_HEAD] = "SELECT seq FROM sqlite_sequence WHERE name = 'changes'",
    [S_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [S_META_SET] = "INSERT INTO meta(key, value) VALUES (?1, ?2)"
                   " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [S_CONS_GET] = "SELECT token, seq FROM consumers WHERE name = ?1",
    [S_CONS_PUT] = "INSERT INTO consumers(name, token, seq) VALUES (?1, ?2, ?3)"
                   " ON CONFLICT(name) DO UPDATE SET token = excluded.token, seq = excluded.seq",
    [S_CONS_MIN] = "SELECT min(seq) FROM consumers",
    [S_PRUNE] = "DELETE FROM changes WHERE seq > ?1 AND seq <= ?2",
    [S_FEED_READ] = SQL_FEED_READ_HEAD SQL_FEED_READ_TAIL,
    [S_DATA_VERSION] = "PRAGMA data_version",
    [S_COMMIT_MS] = "SELECT " SQL_COMMIT_MS("?1"),
    [S_COMMIT_ADD] = "INSERT INTO commits(first_seq, ms) VALUES (?1, ?2)"
                     " ON CONFLICT(first_seq) DO UPDATE SET ms = excluded.ms",
    /* commit rows older than the one that times the oldest kept event */
    [S_PRUNE_COMMITS] = "DELETE FROM commits WHERE first_seq <"
                        " (SELECT max(first_seq) FROM commits WHERE first_seq <= ?1)",
    [S_PROBE] = "SELECT count(*) FROM meta",
    [S_FIRST_SINCE] = "SELECT first_seq FROM commits WHERE ms >= ?1 ORDER BY first_seq LIMIT 1",
    [S_CONS_DROP] = "DELETE FROM consumers WHERE name = ?1",
    [S_PAGE_SIZE] = "PRAGMA page_size",
};

/* items also sets cseq (?8 on insert, ?9 on update): see put_on(). */
static void table_sql(int op, store_table table, char *buf, size_t n)
{
    const char *t = table_names[table];
    int items = table == STORE_ITEMS;
    switch (op) {
    case T_GET:
        snprintf(buf, n, "SELECT doc FROM %s WHERE pk = ?1 AND sk = ?2", t);
        break;
    case T_INSERT:
        snprintf(buf, n,
                 "INSERT OR FAIL INTO %s(pk, sk, v, gsi1pk, gsi1sk, gsi2pk, gsi2sk, doc%s)"
                 " VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6, ?7%s) ON CONFLICT(pk, sk) DO NOTHING",
                 t, items ? ", cseq" : "", items ? ", ?8" : "");
        break;
    case T_SELECT_VDOC:
        snprintf(buf, n, "SELECT v, doc FROM %s WHERE pk = ?1 AND sk = ?2", t);
        break;
    case T_UPDATE:
        snprintf(buf, n,
                 "UPDATE OR FAIL %s SET v = ?3, gsi1pk = ?4, gsi1sk = ?5, gsi2pk = ?6,"
                 " gsi2sk = ?7, doc = ?8%s WHERE pk = ?1 AND sk = ?2",
                 t, items ? ", cseq = ?9" : "");
        break;
    case T_DELETE:
        snprintf(buf, n, "DELETE FROM %s WHERE pk = ?1 AND sk = ?2", t);
        break;
    case T_DELETE_V:
        snprintf(buf, n, "DELETE FROM %s WHERE pk = ?1 AND sk = ?2 AND v = ?3", t);
        break;
    default: /* T_SELECT_V */
        snprintf(buf, n, "SELECT v FROM %s WHERE pk = ?1 AND sk = ?2", t);
        break;
    }
}

/* Query shapes.  Parameters: ?1 key, ?2 lo, ?3 hi, ?4..?6 position, ?7 limit.
 * With a position the leading bound is replaced by "after the position" so
 * the scan starts there (store.c checked the position is inside the range). */
static int query_shape(const store__query *q)
{
    int kind = q->kind == STORE__Q_PARTITION ? 0
               : q->kind == STORE__Q_SCAN    ? 3
                                             : (q->index == STORE_GSI1 ? 1 : 2);
    int id = q->table;
    id = id * 4 + kind;
    id = id * 2 + (q->lo_op == STORE__LO_GE);
    id = id * 3 + (int)q->hi_op;
    id = id * 2 + (q->descending != 0);
    id = id * 2 + (q->npos > 0);
    return id;
}

static void query_sql(int shape, char *buf, size_t n)
{
    int haspos = shape % 2, desc = (shape / 2) % 2, hi = (shape / 4) % 3, lo = (shape / 12) % 2;
    int kind = (shape / 24) % 4, table = shape / 96;
    const char *cols[3], *where = "1";
    char wbuf[32];
    int ncols = 0;
    if (kind == 0) {
        where = "pk = ?1";
        cols[ncols++] = "sk";
    } else if (kind == 3) {
        cols[ncols++] = "pk";
        cols[ncols++] = "sk";
    } else {
        snprintf(wbuf, sizeof wbuf, "gsi%dpk = ?1", kind);
        where = wbuf;
        cols[ncols++] = kind == 1 ? "gsi1sk" : "gsi2sk";
        cols[ncols++] = "pk";
        cols[ncols++] = "sk";
    }
    /* The row's key, version and index sort key come beside the document:
     * they name it and position the next page even when its bytes are
     * damaged (see store__row). */
    size_t at = (size_t)snprintf(buf, n, "SELECT doc, pk, sk, v%s%s FROM %s WHERE %s",
                                 kind == 1 || kind == 2 ? ", " : "",
                                 kind == 1 || kind == 2 ? cols[0] : "", table_names[table], where);
    if (lo && !(haspos && !desc))
        at += (size_t)snprintf(buf + at, n - at, " AND %s >= ?2", cols[0]);
    if (hi && !(haspos && desc))
        at += (size_t)snprintf(buf + at, n - at, " AND %s %s ?3", cols[0], hi == 1 ? "<" : "<=");
    if (haspos) {
        const char *cmp = desc ? "<" : ">";
        if (ncols == 1)
            at += (size_t)snprintf(buf + at, n - at, " AND sk %s ?4", cmp);
        else if (ncols == 2)
            at += (size_t)snprintf(buf + at, n - at, " AND (%s, %s) %s (?4, ?5)", cols[0], cols[1],
                                   cmp);
        else
            at += (size_t)snprintf(buf + at, n - at, " AND (%s, %s, %s) %s (?4, ?5, ?6)", cols[0],
                                   cols[1], cols[2], cmp);
    }
    at += (size_t)snprintf(buf + at, n - at, " ORDER BY");
    for (int i = 0; i < ncols; i++)
        at += (size_t)snprintf(buf + at, n - at, "%s %s%s", i ? "," : "", cols[i],
                               desc ? " DESC" : "");
    snprintf(buf + at, n - at, " LIMIT ?7");
}

/* ---------------------------------------------------------------------------
 * Adapter state.
 * ------------------------------------------------------------------------- */
typedef struct conn {
    sqlite3 *db;
    struct conn *next; /* in the idle list */
    sqlite3_stmt *stmt[S_COUNT];
} conn;

/* Who waits for the writer lock, which decides the hand-over order (see
 * writer_give).  An event's lag runs from its commit to the consumer commit
 * that applies it, so a waiting consumer commit goes before writers (whose
 * wait delays no committed event), and the checkpointer's rewind, which
 * holds the lock for two fsyncs, goes right after a consumer commit, when the
 * fewest committed events are waiting to be applied. */
typedef enum w_class { W_WRITER = 0, W_CONSUMER, W_RESTART } w_class;

/* What every handle on one file shares (the main store and its snapshots). */
typedef struct sq {
    char *path;
    int sync_full;
    int busy_ms;
    int readers_max;
    int read_only;
    int64_t cache_bytes;
    int64_t feed_retain;    /* keep at most this many events (0: no limit) */
    int64_t feed_retain_ms; /* keep events at most this old (0: no limit) */
    int wal_pages;          /* WAL length that starts a checkpoint */
    int page_size;          /* of a store this open creates; 0: given by no one (16384) */

    pthread_mutex_t pool_mu; /* guards idle, nconns */
    pthread_cond_t pool_cv;
    conn *idle;
    int nconns;

    pthread_mutex_t w_mu; /* the in-process writer lock: one writer at a time, in FIFO order */
    pthread_cond_t w_cv;
    int w_busy;
    pthread_t w_owner;
    w_class w_cls;                    /* of the owner */
    struct timespec w_consumer_until; /* a consumer counts as active until then */
    struct w_waiter *w_head, *w_tail; /* threads waiting for the lock, oldest first */
    conn *writer;
    /* The open write transaction (guarded by the writer lock). */
    int64_t txn_head; /* head of the feed when it began */
    int64_t txn_next; /* the sequence number its next change of items gets */
    int64_t aged_ms;  /* when retention by age was last applied */

    pthread_mutex_t f_mu; /* commits of items, for waiting feeds */
    pthread_cond_t f_cv;
    uint64_t commits;

    /* The checkpointer (see the top of this file): a thread on its own
     * connection, woken by the writer's WAL hook. */
    pthread_mutex_t ck_mu; /* guards ck_stop, ck_frames and ck_due */
    pthread_cond_t ck_cv;
    int ck_stop;
    int ck_frames; /* frames in the WAL after the last commit of the writer */
    int ck_due;    /* the checkpointer runs once ck_frames reaches this */
    conn *ck_conn;
    pthread_t ck_thread;
    int ck_running;
} sq;

/* The impl of a store handle: the main store, or a snapshot holding one
 * connection inside one read transaction. */
typedef struct sqh {
    sq *db;
    conn *snap;
    pthread_mutex_t snap_mu;
} sqh;

typedef struct sq_batch {
    sqh *h;
    conn *c;
    int wrote_items;
} sq_batch;

/* ---------------------------------------------------------------------------
 * Small helpers.
 * ------------------------------------------------------------------------- */

/* Maps a SQLite result code to a status and records what failed. */
static sl_status sq_fail(sl_error *err, const sq *db, sqlite3 *h, int code, const char *what)
{
    sl_status s;
    switch (code & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        s = SL_EBUSY;
        break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        s = SL_ECORRUPT;
        break;
    case SQLITE_NOMEM:
        s = SL_ENOMEM;
        break;
    case SQLITE_TOOBIG:
        s = SL_ETOOLARGE;
        break;
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_PROTOCOL:
    case SQLITE_AUTH:
        s = SL_EIO;
        break;
    default:
        s = SL_EINTERNAL;
        break;
    }
    return sl_error_set(err, s, "sqlite store %.200s: %s: %s", db ? db->path : "?", what,
                        h ? sqlite3_errmsg(h) : sqlite3_errstr(code));
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timespec deadline_after_ms(int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static int64_t ns_until(const struct timespec *dl)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)(dl->tv_sec - now.tv_sec) * 1000000000ll + (dl->tv_nsec - now.tv_nsec);
}

static void cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

/* The statement id of table operation op on table t. */
static int tid(store_table t, int op)
{
    return (int)t * T_COUNT + op;
}

/* Returns the connection's cached statement id, preparing it on first use.
 * The statement is reset and its bindings cleared by the caller's done(). */
static sl_status stmt(const sq *db, conn *c, int id, sqlite3_stmt **out, sl_error *err)
{
    sl_status rc = SL_OK;
    char buf[768];
    const char *sql = buf;
    if (c->stmt[id])
        goto out;
    if (id < 2 * T_COUNT)
        table_sql(id % T_COUNT, (store_table)(id / T_COUNT), buf, sizeof buf);
    else if (id >= S_QUERY_BASE)
        query_sql(id - S_QUERY_BASE, buf, sizeof buf);
    else
        sql = fixed_sql[id];
    int code = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &c->stmt[id], NULL);
    if (code != SQLITE_OK) {
        c->stmt[id] = NULL;
        rc = sq_fail(err, db, c->db, code, "preparing a statement");
    }
out:
    if (rc == SL_OK)
        *out = c->stmt[id];
    return rc;
}

static void done(sqlite3_stmt *st)
{
    if (st) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
}

/* Runs a statement that returns no rows (or whose rows do not matter). */
static sl_status run(const sq *db, conn *c, int id, const char *what, sl_error *err)
{
    sqlite3_stmt *st = NULL;
    sl_status rc = stmt(db, c, id, &st, err);
    if (rc == SL_OK) {
        int code = sqlite3_step(st);
        if (code != SQLITE_DONE && code != SQLITE_ROW)
            rc = sq_fail(err, db, c->db, code, what);
    }
    done(st);
    return rc;
}

/* Reads one integer from a statement that takes at most one int64 parameter
 * (param_count 0 or 1).  *found says whether a row came back (may be NULL). */
static sl_status read_int(const sq *db, conn *c, int id, int nparams, int64_t param, int64_t *out,
                          int *found, sl_error *err)
{
    sqlite3_stmt *st = NULL;
    int64_t v = 0;
    int got = 0;
    sl_status rc = stmt(db, c, id, &st, err);
    if (rc != SL_OK)
        goto out;
    if (nparams)
        sqlite3_bind_int64(st, 1, param);
    int code = sqlite3_step(st);
    if (code == SQLITE_ROW) {
        got = sqlite3_column_type(st, 0) != SQLITE_NULL;
        v = sqlite3_column_int64(st, 0);
    } else if (code != SQLITE_DONE) {
        rc = sq_fail(err, db, c->db, code, "reading the feed's bookkeeping");
    }
out:
    done(st);
    if (rc == SL_OK) {
        *out = v;
        if (found)
            *found = got;
    }
    return rc;
}

static sl_status meta_get_int(const sq *db, conn *c, const char *key, int64_t *out, sl_error *err)
{
    sqlite3_stmt *st = NULL;
    int64_t v = 0;
    sl_status rc = stmt(db, c, S_META_GET, &st, err);
    if (rc != SL_OK)
        goto out;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int code = sqlite3_step(st);
    if (code == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    else if (code != SQLITE_DONE)
        rc = sq_fail(err, db, c->db, code, "reading the store's metadata");
out:
    done(st);
    if (rc == SL_OK)
        *out = v;
    return rc;
}

static sl_status meta_set_int(const sq *db, conn *c, const char *key, int64_t v, sl_error *err)
{
    sqlite3_stmt *st = NULL;
    sl_status rc = stmt(db, c, S_META_SET, &st, err);
    if (rc != SL_OK)
        goto out;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, v);
    int code = sqlite3_step(st);
    if (code != SQLITE_DONE)
        rc = sq_fail(err, db, c->db, code, "writing the store's metadata");
out:
    done(st);
    return rc;
}

/* The head of the feed: the sequence number of the newest event ever (0 when none). */
static sl_status head_seq(const sq *db, conn *c, int64_t *out, sl_error *err)
{
    return read_int(db, c, S_HEAD, 0, 0, out, NULL, err);
}

static void token_of(int64_t seq, char out[STORE_TOKEN_MAX])
{
    if (seq <= 0)
        out[0] = '\0';
    else
        snprintf(out, STORE_TOKEN_MAX, "%" PRId64, seq);
}

/* Parses a feed token: "" is 0, else a canonical positive decimal. */
static sl_status token_parse(const char *field, const char *tok, int64_t *out, sl_error *err)
{
    sl_status rc = SL_OK;
    int64_t v = 0;
    size_t len = strlen(tok);
    if (len > 0 && (len > 18 || tok[0] == '0' || strspn(tok, "0123456789") != len))
        rc = sl_error_set_at(err, SL_EINVAL, field, -1,
                             "%s \"%.40s\" is not a feed token of this store", field, tok);
    for (size_t i = 0; rc == SL_OK && i < len; i++)
        v = v * 10 + (tok[i] - '0');
    if (rc == SL_OK)
        *out = v;
    return rc;
}

static sl_status not_sqlite(const sq *db, sl_error *err)
{
    return sl_error_set(err, SL_EINVAL,
                        "%.200s is not a SQLite database, so not a Sightline store; refusing to "
                        "use it",
                        db->path);
}

/* ---------------------------------------------------------------------------
 * Connections.
 * ------------------------------------------------------------------------- */
static void conn_close(conn *c)
{
    for (int i = 0; c && i < S_COUNT; i++)
        sqlite3_finalize(c->stmt[i]);
    if (c)
        sqlite3_close_v2(c->db);
    free(c);
}

/* Sizes the connection's page cache to db->cache_bytes for the current page size. */
static sl_status conn_size_cache(const sq *db, conn *c, sl_error *err)
{
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA cache_size=-%lld", (long long)(db->cache_bytes / 1024));
    int code = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    return code == SQLITE_OK ? SL_OK : sq_fail(err, db, c->db, code, "sizing the page cache");
}

/* Opens a connection to db->path.  A writer may create the file; readers
 * are query_only.  On success *out is freed with conn_close(). */
static sl_status conn_open(const sq *db, int writer, int create, conn **out, sl_error *err)
{
    sl_status rc = SL_OK;
    conn *c = calloc(1, sizeof *c);
    char pragmas[160];
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);

    if (!c) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory opening a connection");
        goto out;
    }
    int code = sqlite3_open_v2(db->path, &c->db, flags, NULL);
    if (code != SQLITE_OK) {
        rc = sq_fail(err, db, c->db, code, "opening the database file");
        goto out;
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, db->busy_ms);
    /* The schema read makes SQLite learn the page size before the cache is
     * sized: a cache sized in KiB is converted to pages with the page size
     * known at that moment, and not again when the page size changes. */
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA synchronous=%s; PRAGMA query_only=%d; SELECT count(*) FROM sqlite_master;",
             db->sync_full ? "FULL" : "NORMAL", writer ? 0 : 1);
    code = sqlite3_exec(c->db, pragmas, NULL, NULL, NULL);
    if ((code & 0xff) == SQLITE_NOTADB)
        rc = not_sqlite(db, err);
    else if (code != SQLITE_OK)
        rc = sq_fail(err, db, c->db, code, "configuring a connection");
    else
        rc = conn_size_cache(db, c, err);
out:
    if (rc == SL_OK) {
        *out = c;
    } else if (c) {
        sqlite3_close_v2(c->db);
        free(c);
    }
    return rc;
}

/* Takes a reader connection: the snapshot's, or one from the pool (opening
 * one when none is idle and the pool is below its size, else waiting). */
static sl_status reader_take(sqh *h, conn **out, sl_error *err)
{
    sl_status rc = SL_OK;
    conn *c = NULL;
    sq *db = h->db;
    if (h->snap) {
        pthread_mutex_lock(&h->snap_mu);
        c = h->snap;
        goto out;
    }
    pthread_mutex_lock(&db->pool_mu);
    while (!db->idle && db->nconns >= db->readers_max)
        pthread_cond_wait(&db->pool_cv, &db->pool_mu);
    if (db->idle) {
        c = db->idle;
        db->idle = c->next;
        c->next = NULL;
    } else {
        db->nconns++;
    }
    pthread_mutex_unlock(&db->pool_mu);
    if (!c) {
        rc = conn_open(db, 0, 0, &c, err);
        if (rc != SL_OK) {
            pthread_mutex_lock(&db->pool_mu);
            db->nconns--;
            pthread_cond_signal(&db->pool_cv);
            pthread_mutex_unlock(&db->pool_mu);
        }
    }
out:
    if (rc == SL_OK)
        *out = c;
    return rc;
}

static void reader_give(sqh *h, conn *c)
{
    sq *db = h->db;
    if (h->snap) {
        pthread_mutex_unlock(&h->snap_mu);
    } else {
        pthread_mutex_lock(&db->pool_mu);
        c->next = db->idle;
        db->idle = c;
        pthread_cond_signal(&db->pool_cv);
        pthread_mutex_unlock(&db->pool_mu);
    }
}

/* A read transaction over several statements (a snapshot is always in one). */
static sl_status read_begin(sqh *h, conn *c, sl_error *err)
{
    return h->snap ? SL_OK : run(h->db, c, S_BEGIN, "starting a read", err);
}

static void read_end(sqh *h, conn *c)
{
    if (!h->snap && !sqlite3_get_autocommit(c->db))
        (void)run(h->db, c, S_COMMIT, "ending a read", NULL);
}

/* A thread queued for the writer lock (on its own stack). */
typedef struct w_waiter {
    struct w_waiter *next;
    pthread_t thread;
    w_class cls;
    int granted; /* the lock was handed to this waiter */
} w_waiter;

/* Unlinks w from the queue of the writer lock (db->w_mu held). */
static void writer_unlink(sq *db, w_waiter *w)
{
    w_waiter **pp = &db->w_head, *prev = NULL;
    while (*pp != w) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    *pp = w->next;
    if (db->w_tail == w)
        db->w_tail = prev;
}

/* Makes w the owner of the writer lock (db->w_mu held, w unlinked). */
static void writer_grant(sq *db, w_waiter *w)
{
    w->granted = 1;
    db->w_busy = 1;
    db->w_owner = w->thread;
    db->w_cls = w->cls;
}

/* The in-process writer lock.  A lock that any thread may release (a batch
 * may move between threads), waited on for at most busy_ms.  It is handed
 * over in arrival order, except for two classes of waiter (see w_class):
 * with a plain mutex a writer committing in a loop could take it again and
 * again while the listener's consumer commit waits, which is feed lag. */
static sl_status writer_take(sq *db, w_class cls, sl_error *err)
{
    sl_status rc = SL_OK;
    struct timespec dl = deadline_after_ms(db->busy_ms);
    struct timespec defer = deadline_after_ms(CKPT_DEFER_MS);
    w_waiter me = {.next = NULL, .thread = pthread_self(), .cls = cls, .granted = 0};
    pthread_mutex_lock(&db->w_mu);
    if (db->w_busy && pthread_equal(db->w_owner, me.thread)) {
        rc = sl_error_set(err, SL_EINVAL,
                          "this thread already has a batch open on this store; commit or abort "
                          "it before writing again");
        goto out;
    }
    /* A rewind waits for a consumer commit only while a consumer commits:
     * with no listener running it would only let the WAL grow. */
    if (cls == W_RESTART && ns_until(&db->w_consumer_until) <= 0)
        me.cls = W_WRITER;
    if (!db->w_busy && me.cls != W_RESTART) {
        writer_grant(db, &me);
        goto out;
    }
    if (db->w_tail)
        db->w_tail->next = &me;
    else
        db->w_head = &me;
    db->w_tail = &me;
    while (!me.granted) {
        int timed_out = pthread_cond_timedwait(&db->w_cv, &db->w_mu,
                                               me.cls == W_RESTART ? &defer : &dl) == ETIMEDOUT;
        if (me.granted)
            break;
        if (me.cls == W_RESTART && ns_until(&defer) <= 0)
            me.cls = W_WRITER;                   /* no consumer commit came: an ordinary turn */
        if (me.cls == W_WRITER && !db->w_busy) { /* released while only a restart waited */
            writer_unlink(db, &me);
            writer_grant(db, &me);
        } else if (timed_out && ns_until(&dl) <= 0) {
            writer_unlink(db, &me);
            rc = sl_error_set(err, SL_EBUSY,
                              "sqlite store %.200s: other writers in this process held the "
                              "store for more than %d ms",
                              db->path, db->busy_ms);
            goto out;
        }
    }
out:
    pthread_mutex_unlock(&db->w_mu);
    return rc;
}

/* The first waiter of class cls, or NULL (db->w_mu held). */
static w_waiter *writer_first(const sq *db, w_class cls)
{
    w_waiter *w = db->w_head;
    while (w && w->cls != cls)
        w = w->next;
    return w;
}

/* Releases the writer lock, handing it over (see w_class): after a consumer
 * commit to a waiting restart, else to a waiting consumer commit, else to
 * the oldest writer.  A restart still within its deferral is not handed the
 * lock by anyone else: it would rather wait for the next consumer commit. */
static void writer_give(sq *db)
{
    pthread_mutex_lock(&db->w_mu);
    if (db->w_cls == W_CONSUMER)
        db->w_consumer_until = deadline_after_ms(CONSUMER_ACTIVE_MS);
    w_waiter *next = db->w_cls == W_CONSUMER ? writer_first(db, W_RESTART) : NULL;
    if (!next)
        next = writer_first(db, W_CONSUMER);
    if (!next)
        next = writer_first(db, W_WRITER);
    if (next) {
        writer_unlink(db, next);
        writer_grant(db, next); /* still busy: owned by the waiter from now on */
        pthread_cond_broadcast(&db->w_cv);
    } else {
        db->w_busy = 0;
        db->w_cls = W_WRITER;
    }
    pthread_mutex_unlock(&db->w_mu);
}

static void feed_notify(sq *db)
{
    pthread_mutex_lock(&db->f_mu);
    db->commits++;
    pthread_cond_broadcast(&db->f_cv);
    pthread_mutex_unlock(&db->f_mu);
}

/* ---------------------------------------------------------------------------
 * Checkpoints.  The writer connection has SQLite's auto-checkpoint replaced
 * by a WAL hook (setting one turns it off), so no commit copies the WAL back
 * into the database or waits for the two fsyncs that takes; the
 * checkpointer thread does it with PASSIVE checkpoints, which block neither
 * writers nor readers.
 *
 * The WAL starts again from its beginning only once every frame has been
 * copied and no reader uses any.  A checkpoint running beside writers never
 * gets there (they append while it copies, readers always hold some frames:
 * measured, the WAL grew to 3 GB in 10 s at 10k writes/s), so each round
 * ends with a RESTART checkpoint under the writer lock: it copies what was
 * appended meanwhile, waits briefly for the readers of old frames and
 * rewinds the WAL, so the WAL's pages stay in the page cache and on disk
 * instead of growing the file.
 * ------------------------------------------------------------------------- */

/* Called by SQLite on the writer connection after each commit, with the
 * writer lock held; frames is the WAL's length in pages. */
static int wal_hook(void *arg, sqlite3 *h, const char *name, int frames)
{
    sq *db = arg;
    (void)h;
    (void)name;
    pthread_mutex_lock(&db->ck_mu);
    if (frames < db->ck_frames) /* the WAL started again */
        db->ck_due = db->wal_pages;
    db->ck_frames = frames;
    if (frames >= db->ck_due)
        pthread_cond_signal(&db->ck_cv);
    pthread_mutex_unlock(&db->ck_mu);
    return SQLITE_OK;
}

/* The checkpointer connection's busy handler: the RESTART checkpoint waits
 * for readers of old frames (reads take well under a millisecond) while
 * every writer of this process waits for it, so it gives up after
 * CKPT_WAIT_US and tries again next round. */
static int checkpoint_busy(void *arg, int n)
{
    (void)arg;
    if (n >= CKPT_WAIT_US / 100)
        return 0;
    usleep(100);
    return 1;
}

/* Flushes one of the checkpointer connection's files to disk: op is
 * SQLITE_FCNTL_FILE_POINTER (the database) or SQLITE_FCNTL_JOURNAL_POINTER
 * (the WAL).  The page cache is the file's, whichever descriptor wrote it. */
static void file_sync(sqlite3 *h, int op)
{
    sqlite3_file *f = NULL;
    if (sqlite3_file_control(h, "main", op, &f) == SQLITE_OK && f && f->pMethods)
        (void)f->pMethods->xSync(f, SQLITE_SYNC_NORMAL);
}

/* One round.  PASSIVE checkpoints copy the WAL without the writer lock, but
 * sync the database only when no writer appended meanwhile; the RESTART that
 * rewinds the WAL needs the writer lock, and syncs and copies whatever is
 * left while every writer waits (measured: 15-35 ms when it followed one
 * PASSIVE pass).  So the round copies and flushes both files in passes
 * until what writers append during a pass stops shrinking or is at most
 * CKPT_TAIL frames, and only then rewinds (measured: 0.5-15 ms, mean ~6 ms,
 * at 10k-50k writes/s, when the two cores are saturated and the passes
 * cannot catch up).  Readers that hold old frames stop the passes but not
 * the rewind, which waits for them (CKPT_WAIT_US at most).  Returns 1 when
 * the rewind was tried and failed (a reader held on), so the next round
 * waits longer. */
static int checkpoint_round(sq *db)
{
    int log = 0, copied = 0, code = SQLITE_OK, left = INT_MAX, failed = 0;
    for (int pass = 0; pass < CKPT_PASSES; pass++) {
        code = sqlite3_wal_checkpoint_v2(db->ck_conn->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log,
                                         &copied);
        if (code != SQLITE_OK || log > copied) /* failed, or a reader holds old frames */
            break;
        file_sync(db->ck_conn->db, SQLITE_FCNTL_FILE_POINTER);
        file_sync(db->ck_conn->db, SQLITE_FCNTL_JOURNAL_POINTER);
        pthread_mutex_lock(&db->ck_mu);
        int was = left;
        left = db->ck_frames - copied; /* appended while this pass ran */
        pthread_mutex_unlock(&db->ck_mu);
        if (left <= CKPT_TAIL || left >= was)
            break;
    }
    if (code == SQLITE_OK && writer_take(db, W_RESTART, NULL) == SL_OK) {
        failed = sqlite3_wal_checkpoint_v2(db->ck_conn->db, NULL, SQLITE_CHECKPOINT_RESTART, &log,
                                           &copied) != SQLITE_OK;
        writer_give(db);
    }
    return failed;
}

/* The checkpointer thread.  When a round leaves the WAL where it was, the
 * next waits until the WAL has grown by a quarter more, or by as much again
 * when a reader held on through the rewind (a long snapshot: each try makes
 * writers wait CKPT_WAIT_US).  Errors are not reported here: SQLITE_BUSY
 * means another process is checkpointing or a reader held on, and an I/O
 * error also fails the next commit, which reports it. */
static void *checkpointer(void *arg)
{
    sq *db = arg;
    pthread_mutex_lock(&db->ck_mu);
    while (!db->ck_stop) {
        int frames = db->ck_frames;
        if (frames < db->ck_due) {
            pthread_cond_wait(&db->ck_cv, &db->ck_mu);
            continue;
        }
        pthread_mutex_unlock(&db->ck_mu);
        int held = checkpoint_round(db);
        pthread_mutex_lock(&db->ck_mu);
        if (db->ck_frames >= frames) /* no restart seen yet; the hook resets ck_due on one */
            db->ck_due = db->ck_frames + (held ? db->wal_pages : db->wal_pages / 4);
    }
    pthread_mutex_unlock(&db->ck_mu);
    return NULL;
}

/* Hooks the writer connection and starts the checkpointer on a connection
 * of its own; checkpointer_stop() ends both. */
static sl_status checkpointer_start(sq *db, sl_error *err)
{
    char sql[64];
    int64_t page = 0;
    sl_status rc = conn_open(db, 1, 0, &db->ck_conn, err);
    if (rc != SL_OK)
        goto out;
    sqlite3_busy_handler(db->ck_conn->db, checkpoint_busy, NULL);
    /* The first commit after a rewind cuts a WAL longer than this back, under
     * the writer lock: with 128 MB (the WAL of a round at 10k writes/s is
     * ~130-170 MB) that ftruncate took 12-40 ms each time, and the blocks
     * then had to be allocated again.  A WAL is cut back only when a round
     * let it grow far past its mark. */
    rc = read_int(db, db->writer, S_PAGE_SIZE, 0, 0, &page, NULL, err);
    if (rc != SL_OK)
        goto out;
    snprintf(sql, sizeof sql, "PRAGMA journal_size_limit=%lld",
             (long long)WAL_KEEP_FACTOR * db->wal_pages * page);
    int code = sqlite3_exec(db->writer->db, sql, NULL, NULL, NULL);
    if (code != SQLITE_OK) {
        rc = sq_fail(err, db, db->writer->db, code, "limiting the WAL's size");
        goto out;
    }
    sqlite3_wal_hook(db->writer->db, wal_hook, db);
    int e = pthread_create(&db->ck_thread, NULL, checkpointer, db);
    if (e != 0) {                                         /* SQLite checkpoints on commit again */
        sqlite3_wal_autocheckpoint(db->writer->db, 1000); /* its default */
        rc = sl_error_set(err, SL_EINTERNAL, "cannot start the checkpoint thread: %s", strerror(e));
        goto out;
    }
    db->ck_running = 1;
out:
    return rc;
}

static void checkpointer_stop(sq *db)
{
    if (db->ck_running) {
        pthread_mutex_lock(&db->ck_mu);
        db->ck_stop = 1;
        pthread_cond_signal(&db->ck_cv);
        pthread_mutex_unlock(&db->ck_mu);
        pthread_join(db->ck_thread, NULL);
        db->ck_running = 0;
    }
    conn_close(db->ck_conn);
    db->ck_conn = NULL;
}

/* ---------------------------------------------------------------------------
 * Opening: parameters, foreign-file check, schema creation and version.
 * ------------------------------------------------------------------------- */
static sl_status param_int(const store__param *p, long long lo, long long hi, long long *out,
                           sl_error *err)
{
    sl_status rc = SL_OK;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(p->value, &end, 10);
    if (errno || end == p->value || *end || v < lo || v > hi)
        rc = sl_error_set_at(err, SL_EINVAL, "uri", -1,
                             "store URI parameter %s=%.40s must be an integer in %lld..%lld",
                             p->name, p->value, lo, hi);
    else
        *out = v;
    return rc;
}

static sl_status params_apply(sq *db, const store__param *params, size_t n, sl_error *err)
{
    sl_status rc = SL_OK;
    long long v = 0;
    for (size_t i = 0; i < n && rc == SL_OK; i++) {
        const store__param *p = &params[i];
        if (strcmp(p->name, "sync") == 0) {
            if (strcmp(p->value, "full") == 0)
                db->sync_full = 1;
            else if (strcmp(p->value, "normal") == 0)
                db->sync_full = 0;
            else
                rc = sl_error_set_at(err, SL_EINVAL, "uri", -1,
                                     "store URI parameter sync=%.40s must be normal or full",
                                     p->value);
        } else if (strcmp(p->name, "busy_ms") == 0) {
            rc = param_int(p, 1, 600000, &v, err);
            db->busy_ms = (int)v;
        } else if (strcmp(p->name, "readers") == 0) {
            rc = param_int(p, 1, READERS_MAX, &v, err);
            db->readers_max = (int)v;
        } else if (strcmp(p->name, "feed_retain") == 0) {
            rc = param_int(p, 0, INT64_MAX / 2, &v, err);
            db->feed_retain = v;
        } else if (strcmp(p->name, "feed_retain_ms") == 0) {
            rc = param_int(p, 0, INT64_MAX / 2, &v, err);
            db->feed_retain_ms = v;
        } else if (strcmp(p->name, "wal_pages") == 0) {
            rc = param_int(p, 16, 1 << 20, &v, err);
            db->wal_pages = (int)v;
        } else if (strcmp(p->name, "page_size") == 0) {
            rc = param_int(p, 4096, 65536, &v, err);
            if (rc == SL_OK && (v & (v - 1)))
                rc = sl_error_set_at(err, SL_EINVAL, "uri", -1,
                                     "store URI parameter page_size=%.40s must be a power of "
                                     "two in 4096..65536",
                                     p->value);
            db->page_size = (int)v;
        } else {
            rc = sl_error_set_at(err, SL_EINVAL, "uri", -1,
                                 "unknown store URI parameter \"%.40s\" (known: sync, busy_ms, "
                                 "readers, feed_retain, feed_retain_ms, wal_pages, page_size)",
                                 p->name);
        }
    }
    return rc;
}

/* Looks at what the file holds: *tables counts schema objects; app id and
 * user version from the header.  A file that is not SQLite fails here. */
static sl_status probe(const sq *db, conn *c, int *tables, int *app_id, int *version, sl_error *err)
{
    sl_status rc = SL_OK;
    sqlite3_stmt *st = NULL;
    static const char *const sql[3] = {"SELECT count(*) FROM sqlite_master",
                                       "PRAGMA application_id", "PRAGMA user_version"};
    int v[3] = {0, 0, 0};
    for (int i = 0; i < 3 && rc == SL_OK; i++) {
        int code = sqlite3_prepare_v2(c->db, sql[i], -1, &st, NULL);
        if (code == SQLITE_OK)
            code = sqlite3_step(st);
        if (code == SQLITE_ROW)
            v[i] = sqlite3_column_int(st, 0);
        else if ((code & 0xff) == SQLITE_NOTADB)
            rc = not_sqlite(db, err);
        else
            rc = sq_fail(err, db, c->db, code, "reading the file header");
        sqlite3_finalize(st);
        st = NULL;
    }
    if (rc == SL_OK) {
        *tables = v[0];
        *app_id = v[1];
        *version = v[2];
    }
    return rc;
}

/* Creates the schema in an empty file.  Page size must be set before the
 * first table and before WAL; another process may race us, so the check for
 * emptiness is repeated inside the write transaction. */
static sl_status schema_create(const sq *db, conn *c, sl_error *err)
{
    sl_status rc = SL_OK;
    char sql[128];
    /* 16 KB pages unless the URI says otherwise: see the top of this file */
    snprintf(sql, sizeof sql, "PRAGMA page_size=%d; PRAGMA journal_mode=WAL;",
             db->page_size ? db->page_size : DEFAULT_PAGE_SIZE);
    int code = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    if (code != SQLITE_OK) {
        rc = sq_fail(err, db, c->db, code, "setting up a new store");
        goto out;
    }
    code = sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (code != SQLITE_OK) {
        rc = sq_fail(err, db, c->db, code, "starting to create the store");
        goto out;
    }
    int tables = 0, app = 0, ver = 0;
    rc = probe(db, c, &tables, &app, &ver, err);
    if (rc != SL_OK || tables > 0) /* created meanwhile: the caller checks it again */
        goto out;
    snprintf(sql, sizeof sql, "PRAGMA application_id=%d; PRAGMA user_version=%d;", APP_ID,
             SCHEMA_VERSION);
    code = sqlite3_exec(c->db, schema_sql, NULL, NULL, NULL);
    if (code == SQLITE_OK)
        code = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    if (code == SQLITE_OK)
        code = sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
    if (code != SQLITE_OK)
        rc = sq_fail(err, db, c->db, code, "creating the store's tables");
    if (rc == SL_OK) /* the page size changed: size the cache again */
        rc = conn_size_cache(db, c, err);
out:
    if (!sqlite3_get_autocommit(c->db))
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* Runs one migration from version `from` in a write transaction, unless
 * another process did it meanwhile. */
static sl_status schema_migrate(const sq *db, conn *c, int from, const char *sql, sl_error *err)
{
    sl_status rc = SL_OK;
    int tables = 0, app = 0, ver = 0;
    int code = sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (code != SQLITE_OK) {
        rc = sq_fail(err, db, c->db, code, "starting to upgrade the store");
        goto out;
    }
    rc = probe(db, c, &tables, &app, &ver, err);
    if (rc != SL_OK || ver != from)
        goto out;
    code = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    if (code == SQLITE_OK)
        code = sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
    if (code != SQLITE_OK)
        rc = sq_fail(err, db, c->db, code, "upgrading the store's schema");
out:
    if (!sqlite3_get_autocommit(c->db))
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* Makes sure the file is a Sightline store of a version we understand,
 * creating it when empty (and allowed) and upgrading it when older. */
static sl_status schema_check(const sq *db, conn *c, int may_create, sl_error *err)
{
    sl_status rc = SL_OK;
    int tables = 0, app = 0, ver = 0;
    rc = probe(db, c, &tables, &app, &ver, err);
    if (rc == SL_OK && tables == 0 && app == 0) {
        if (!may_create) {
            rc = sl_error_set(err, SL_ENOTFOUND, "%.200s holds no Sightline store yet", db->path);
            goto out;
        }
        rc = schema_create(db, c, err);
        if (rc == SL_OK)
            rc = probe(db, c, &tables, &app, &ver, err);
    }
    if (rc != SL_OK)
        goto out;
    if (app != APP_ID) {
        rc = sl_error_set(err, SL_EINVAL,
                          "%.200s is a SQLite database but not a Sightline store "
                          "(application_id 0x%08x, %d schema objects); refusing to use it",
                          db->path, (unsigned)app, tables);
    } else if (ver > SCHEMA_VERSION) {
        rc = sl_error_set(err, SL_EUNSUPPORTED,
                          "the store %.200s has schema version %d; this sightline understands "
                          "up to %d: upgrade sightline",
                          db->path, ver, SCHEMA_VERSION);
    } else if (ver < 1) {
        rc = sl_error_set(err, SL_ECORRUPT,
                          "the store %.200s is marked as Sightline's but has no schema version",
                          db->path);
    } else if (ver < SCHEMA_VERSION && db->read_only) {
        rc = sl_error_set(err, SL_EUNSUPPORTED,
                          "the store %.200s has schema version %d and this sightline needs %d; "
                          "open it once read-write to upgrade it",
                          db->path, ver, SCHEMA_VERSION);
    }
    /* Migrations from older versions, each in its own transaction. */
    if (rc == SL_OK && ver == 1)
        rc = schema_migrate(db, c, 1, migrate_1_2_sql, err);
    if (rc == SL_OK && ver <= 2)
        rc = schema_migrate(db, c, 2, migrate_2_3_sql, err);
out:
    return rc;
}

static void sq_free(sq *db)
{
    if (db) {
        checkpointer_stop(db);
        conn_close(db->writer);
        while (db->idle) {
            conn *c = db->idle;
            db->idle = c->next;
            conn_close(c);
        }
        pthread_mutex_destroy(&db->pool_mu);
        pthread_cond_destroy(&db->pool_cv);
        pthread_mutex_destroy(&db->w_mu);
        pthread_cond_destroy(&db->w_cv);
        pthread_mutex_destroy(&db->f_mu);
        pthread_cond_destroy(&db->f_cv);
        pthread_mutex_destroy(&db->ck_mu);
        pthread_cond_destroy(&db->ck_cv);
        free(db->path);
        free(db);
    }
}

/* Process-wide SQLite settings, made once before SQLite initializes.  Memory
 * statistics cost a global mutex on every allocation (5% of the CPU of a
 * bulk put, measured with perf); nothing reads them.  If SQLite was already
 * initialized by someone else the call fails and changes nothing. */
static void sqlite_configure(void)
{
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    (void)sqlite3_initialize();
}

sl_status store__sqlite_open(const char *path, const store__param *params, size_t nparams,
                             const store_options *opt, void **impl, sl_error *err)
{
    static pthread_once_t configured = PTHREAD_ONCE_INIT;
    sl_status rc = SL_OK;
    sq *db = calloc(1, sizeof *db);
    sqh *h = calloc(1, sizeof *h);
    conn *first = NULL;
    struct stat sb;

    pthread_once(&configured, sqlite_configure);
    if (!db || !h || !(db->path = strdup(path))) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory opening %.200s", path);
        goto out;
    }
    pthread_mutex_init(&db->pool_mu, NULL);
    cond_init_monotonic(&db->pool_cv);
    pthread_mutex_init(&db->w_mu, NULL);
    cond_init_monotonic(&db->w_cv);
    pthread_mutex_init(&db->f_mu, NULL);
    cond_init_monotonic(&db->f_cv);
    pthread_mutex_init(&db->ck_mu, NULL);
    pthread_cond_init(&db->ck_cv, NULL);
    db->wal_pages = DEFAULT_WAL_PAGES;
    db->busy_ms = DEFAULT_BUSY_MS;
    db->readers_max = DEFAULT_READERS;
    db->feed_retain = DEFAULT_RETAIN;
    db->feed_retain_ms = DEFAULT_RETAIN_MS;
    db->cache_bytes = opt->cache_bytes > 0 ? opt->cache_bytes : DEFAULT_CACHE_BYTES;
    db->read_only = opt->read_only != 0;
    rc = params_apply(db, params, nparams, err);
    if (rc != SL_OK)
        goto out;
    db->ck_due = db->wal_pages;
    int exists = stat(path, &sb) == 0;
    if (!exists && (opt->no_create || db->read_only)) {
        rc = sl_error_set(err, SL_ENOTFOUND, "no store at %.200s (and creating it was not asked)",
                          path);
        goto out;
    }
    if (exists && !S_ISREG(sb.st_mode)) {
        rc = sl_error_set(err, SL_EINVAL, "%.200s is not a regular file", path);
        goto out;
    }
    rc = conn_open(db, !db->read_only, !exists, &first, err);
    if (rc == SL_OK)
        rc = schema_check(db, first, !db->read_only && !opt->no_create, err);
    if (rc == SL_OK && db->page_size) { /* asked for: the store must have it */
        int64_t page = 0;
        rc = read_int(db, first, S_PAGE_SIZE, 0, 0, &page, NULL, err);
        if (rc == SL_OK && page != db->page_size)
            rc = sl_error_set_at(err, SL_EINVAL, "uri", -1,
                                 "the store %.200s has %lld-byte pages; page_size applies when a "
                                 "store is created (leave it out, or give %lld)",
                                 db->path, (long long)page, (long long)page);
    }
    if (rc != SL_OK)
        goto out;
    if (db->read_only) { /* no writer: the first connection joins the reader pool */
        first->next = NULL;
        db->idle = first;
        db->nconns = 1;
    } else {
        db->writer = first;
    }
    first = NULL;
    if (!db->read_only)
        rc = checkpointer_start(db, err);
    if (rc != SL_OK)
        goto out;
    h->db = db;
out:
    conn_close(first);
    if (rc == SL_OK) {
        *impl = h;
    } else {
        if (db && db->path)
            sq_free(db);
        else if (db)
            free(db);
        free(h);
    }
    return rc;
}

static void sq_close(void *impl)
{
    sqh *h = impl;
    if (h && h->snap) { /* a snapshot: end its read, leave the shared state to the main handle */
        sqlite3_exec(h->snap->db, "ROLLBACK", NULL, NULL, NULL);
        conn_close(h->snap);
        pthread_mutex_destroy(&h->snap_mu);
    } else if (h) {
        sq_free(h->db);
    }
    free(h);
}

static sl_status sq_ping(store *s, sl_error *err)
{
    sqh *h = s->impl;
    conn *c = NULL;
    int64_t n = 0;
    sl_status rc = reader_take(h, &c, err);
    if (rc != SL_OK)
        goto out;
    rc = read_int(h->db, c, S_PROBE, 0, 0, &n, NULL, err);
    if (rc == SL_OK && !s->read_only && sqlite3_db_readonly(c->db, "main") == 1)
        rc =
            sl_error_set(err, SL_EIO, "sqlite store %.200s: the file is not writable", h->db->path);
    reader_give(h, c);
out:
    return rc;
}

/* ---------------------------------------------------------------------------
 * Reads.
 * ------------------------------------------------------------------------- */
static void bind_key2(sqlite3_stmt *st, const char *pk, const char *sk)
{
    sqlite3_bind_text(st, 1, pk, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, sk, -1, SQLITE_STATIC);
}

static sl_status sq_get(store *s, store_table t, const char *pk, const char *sk, bson_t **out,
                        sl_error *err)
{
    sqh *h = s->impl;
    conn *c = NULL;
    sqlite3_stmt *st = NULL;
    bson_t *doc = NULL;
    sl_status rc = reader_take(h, &c, err);
    if (rc != SL_OK)
        goto out;
    rc = stmt(h->db, c, tid(t, T_GET), &st, err);
    if (rc != SL_OK)
        goto give;
    bind_key2(st, pk, sk);
    int code = sqlite3_step(st);
    if (code == SQLITE_ROW) {
        doc = bson_new_from_data(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
        if (!doc)
            rc = sl_error_set(err, SL_ECORRUPT,
                              "the stored document (%.100s, %.100s) in %s is "
                              "not BSON",
                              pk, sk, table_names[t]);
    } else if (code == SQLITE_DONE) {
        rc = sl_error_set(err, SL_ENOTFOUND, "no document (%.100s, %.100s) in %s", pk, sk,
                          table_names[t]);
    } else {
        rc = sq_fail(err, h->db, c->db, code, "reading a document");
    }
    done(st);
give:
    reader_give(h, c);
out:
    if (rc == SL_OK)
        *out = doc;
    return rc;
}

static void bind_opt_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static sl_status sq_query(store *s, const store__query *q, store_page *page, int *more,
                          sl_error *err)
{
    sqh *h = s->impl;
    conn *c = NULL;
    sqlite3_stmt *st = NULL;
    int m = 0;
    sl_status rc = reader_take(h, &c, err);
    if (rc != SL_OK)
        goto out;
    rc = stmt(h->db, c, S_QUERY_BASE + query_shape(q), &st, err);
    if (rc != SL_OK)
        goto give;
    bind_opt_text(st, 1, q->key);
    bind_opt_text(st, 2, q->lo_op ? q->lo : NULL);
    bind_opt_text(st, 3, q->hi_op ? q->hi : NULL);
    for (int i = 0; i < q->npos; i++)
        sqlite3_bind_text(st, 4 + i, q->pos[i], -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, (int64_t)q->limit + 1);
    int code;
    while (rc == SL_OK && (code = sqlite3_step(st)) == SQLITE_ROW) {
        if (page->count == q->limit || store__page_full(page)) {
            m = 1;
            break;
        }
        int index = q->kind == STORE__Q_INDEX;
        store__row row = {.pk = (const char *)sqlite3_column_text(st, 1),
                          .sk = (const char *)sqlite3_column_text(st, 2),
                          .version = sqlite3_column_int64(st, 3),
                          .gsk = index ? (const char *)sqlite3_column_text(st, 4) : NULL};
        if (!row.pk || !row.sk || (index && !row.gsk)) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory reading a row's key");
            break;
        }
        rc = store__page_add(page, sqlite3_column_blob(st, 0),
                             (uint32_t)sqlite3_column_bytes(st, 0), &row, err);
    }
    if (rc == SL_OK && !m && code != SQLITE_DONE)
        rc = sq_fail(err, h->db, c->db, code, "running a query");
    done(st);
give:
    reader_give(h, c);
out:
    if (rc == SL_OK)
        *more = m;
    return rc;
}

/* ---------------------------------------------------------------------------
 * Writes.  All run on the writer connection inside a write transaction.
 * ------------------------------------------------------------------------- */

/* Records a failed condition on (pk, sk): exists/v describe what is stored. */
static sl_status cond_eval(store_table t, const char *pk, const char *sk, int exists, int64_t v,
                           store_cond cond, sl_error *err)
{
    sl_status rc = SL_OK;
    const char *tn = table_names[t];
    if (cond.kind == STORE_COND_NOT_EXISTS && exists)
        rc = sl_error_set(err, SL_ECONDITION,
                          "(%.100s, %.100s) already exists in %s (v=%" PRId64
                          "); the condition required it not to",
                          pk, sk, tn, v);
    else if ((cond.kind == STORE_COND_EXISTS || cond.kind == STORE_COND_VERSION) && !exists)
        rc = sl_error_set(err, SL_ECONDITION,
                          "(%.100s, %.100s) does not exist in %s; the condition required it", pk,
                          sk, tn);
    else if (cond.kind == STORE_COND_VERSION && v != cond.version)
        rc = sl_error_set(err, SL_ECONDITION,
                          "(%.100s, %.100s) in %s has v=%" PRId64
                          "; the condition required v=%" PRId64,
                          pk, sk, tn, v, cond.version);
    return rc;
}

/* Reads the stored version of (pk, sk): *exists and *v. */
static sl_status select_v(const sq *db, conn *c, store_table t, const char *pk, const char *sk,
                          int *exists, int64_t *v, sl_error *err)
{
    sqlite3_stmt *st = NULL;
    int ex = 0;
    int64_t ver = 0;
    sl_status rc = stmt(db, c, tid(t, T_SELECT_V), &st, err);
    if (rc != SL_OK)
        goto out;
    bind_key2(st, pk, sk);
    int code = sqlite3_step(st);
    if (code == SQLITE_ROW) {
        ex = 1;
        ver = sqlite3_column_int64(st, 0);
    } else if (code != SQLITE_DONE) {
        rc = sq_fail(err, db, c->db, code, "reading a version");
    }
out:
    done(st);
    if (rc == SL_OK) {
        *exists = ex;
        *v = ver;
    }
    return rc;
}

static void bind_gsi(sqlite3_stmt *st, int first, const store__doc *d)
{
    bind_opt_text(st, first, d->gsi_pk[0]);
    bind_opt_text(st, first + 1, d->gsi_sk[0]);
    bind_opt_text(st, first + 2, d->gsi_pk[1]);
    bind_opt_text(st, first + 3, d->gsi_sk[1]);
}

/* Tries to insert d as version 1.  *inserted is 0 when (pk, sk) exists. */
static sl_status try_insert(sq *db, conn *c, store_table t, store__doc *d, int *inserted,
                            sl_error *err)
{
    sqlite3_stmt *st = NULL;
    int ins = 0;
    sl_status rc = stmt(db, c, tid(t, T_INSERT), &st, err);
    if (rc != SL_OK)
        goto out;
    store__blob_set_version(d->blob, d->blob_len, 1);
    bind_key2(st, d->pk, d->sk);
    bind_gsi(st, 3, d);
    sqlite3_bind_blob(st, 7, d->blob, (int)d->blob_len, SQLITE_STATIC);
    if (t == STORE_ITEMS)
        sqlite3_bind_int64(st, 8, db->txn_next);
    int code = sqlite3_step(st);
    if (code == SQLITE_DONE)
        ins = sqlite3_changes(c->db) == 1;
    else
        rc = sq_fail(err, db, c->db, code, "inserting a document");
out:
    done(st);
    if (rc == SL_OK) {
        *inserted = ins;
        if (ins && t == STORE_ITEMS)
            db->txn_next++;
    }
    return rc;
}

/* Writes d.  A write to items makes the trigger add one change row, whose
 * sequence number (db->txn_next: nobody else writes inside our transaction)
 * is stored with the item as cseq. */
static sl_status put_on(sq *db, conn *c, store_table t, store__doc *d, store_cond cond,
                        store_put_result *res, int *wrote, sl_error *err)
{
    sl_status rc = SL_OK;
    sqlite3_stmt *st = NULL;
    store_put_result r = {0, 0};
    int inserted = 0;

    if (cond.kind == STORE_COND_NONE || cond.kind == STORE_COND_NOT_EXISTS) {
        rc = try_insert(db, c, t, d, &inserted, err);
        if (rc != SL_OK || inserted) {
            r.version = 1;
            r.changed = 1;
            goto out;
        }
    }
    rc = stmt(db, c, tid(t, T_SELECT_VDOC), &st, err);
    if (rc != SL_OK)
        goto out;
    bind_key2(st, d->pk, d->sk);
    int code = sqlite3_step(st);
    if (code != SQLITE_ROW && code != SQLITE_DONE) {
        rc = sq_fail(err, db, c->db, code, "reading a document to replace");
        goto out;
    }
    int exists = code == SQLITE_ROW;
    int64_t v = exists ? sqlite3_column_int64(st, 0) : 0;
    if (!exists && cond.kind == STORE_COND_NONE) { /* the insert said it exists */
        rc = sl_error_set(err, SL_EINTERNAL, "(%.100s, %.100s) neither inserted nor found", d->pk,
                          d->sk);
        goto out;
    }
    rc = cond_eval(t, d->pk, d->sk, exists, v, cond, err);
    if (rc != SL_OK)
        goto out;
    if (store__blob_same_content(sqlite3_column_blob(st, 1), (uint32_t)sqlite3_column_bytes(st, 1),
                                 d->blob, d->blob_len)) {
        r.version = v;
        goto out;
    }
    done(st);
    rc = stmt(db, c, tid(t, T_UPDATE), &st, err);
    if (rc != SL_OK)
        goto out;
    store__blob_set_version(d->blob, d->blob_len, v + 1);
    bind_key2(st, d->pk, d->sk);
    sqlite3_bind_int64(st, 3, v + 1);
    bind_gsi(st, 4, d);
    sqlite3_bind_blob(st, 8, d->blob, (int)d->blob_len, SQLITE_STATIC);
    if (t == STORE_ITEMS)
        sqlite3_bind_int64(st, 9, db->txn_next);
    code = sqlite3_step(st);
    if (code != SQLITE_DONE) {
        rc = sq_fail(err, db, c->db, code, "replacing a document");
        goto out;
    }
    if (t == STORE_ITEMS)
        db->txn_next++;
    r.version = v + 1;
    r.changed = 1;
out:
    done(st);
    if (rc == SL_OK) {
        *res = r;
        if (r.changed && t == STORE_ITEMS)
            *wrote = 1;
    }
    return rc;
}

static sl_status delete_on(sq *db, conn *c, store_table t, const char *pk, const char *sk,
                           store_cond cond, int *deleted, int *wrote, sl_error *err)
{
    sl_status rc = SL_OK;
    sqlite3_stmt *st = NULL;
    int exists = 0, del = 0;
    int64_t v = 0;
    if (cond.kind == STORE_COND_NOT_EXISTS) { /* nothing to delete, or a failed condition */
        rc = select_v(db, c, t, pk, sk, &exists, &v, err);
        if (rc == SL_OK)
            rc = cond_eval(t, pk, sk, exists, v, cond, err);
        goto out;
    }
    int versioned = cond.kind == STORE_COND_VERSION;
    rc = stmt(db, c, tid(t, versioned ? T_DELETE_V : T_DELETE), &st, err);
    if (rc != SL_OK)
        goto out;
    bind_key2(st, pk, sk);
    if (versioned)
        sqlite3_bind_int64(st, 3, cond.version);
    int code = sqlite3_step(st);
    if (code != SQLITE_DONE) {
        rc = sq_fail(err, db, c->db, code, "deleting a document");
        goto out;
    }
    del = sqlite3_changes(c->db) == 1;
    if (del && t == STORE_ITEMS)
        db->txn_next++;
    if (!del && cond.kind != STORE_COND_NONE) { /* say why the condition failed */
        rc = select_v(db, c, t, pk, sk, &exists, &v, err);
        if (rc == SL_OK)
            rc = cond_eval(t, pk, sk, exists, v, cond, err);
    }
out:
    done(st);
    if (rc == SL_OK) {
        *deleted = del;
        if (del && t == STORE_ITEMS)
            *wrote = 1;
    }
    return rc;
}

static sl_status check_on(const sq *db, conn *c, store_table t, const char *pk, const char *sk,
                          store_cond cond, sl_error *err)
{
    int exists = 0;
    int64_t v = 0;
    sl_status rc = select_v(db, c, t, pk, sk, &exists, &v, err);
    if (rc == SL_OK)
        rc = cond_eval(t, pk, sk, exists, v, cond, err);
    return rc;
}

/* Takes the writer lock and opens a write transaction (or fails with both
 * released). */
static sl_status write_begin(sq *db, w_class cls, sl_error *err)
{
    sl_status rc = SL_OK;
    if (db->read_only || !db->writer) {
        rc = sl_error_set(err, SL_EINVAL, "the store %.200s was opened read-only", db->path);
        goto out;
    }
    rc = writer_take(db, cls, err);
    if (rc != SL_OK)
        goto out;
    rc = run(db, db->writer, S_BEGIN_IMMEDIATE, "starting a write (another process may hold it)",
             err);
    if (rc == SL_OK)
        rc = head_seq(db, db->writer, &db->txn_head, err);
    db->txn_next = db->txn_head + 1;
    if (rc != SL_OK) {
        if (!sqlite3_get_autocommit(db->writer->db))
            (void)run(db, db->writer, S_ROLLBACK, "rolling back", NULL);
        writer_give(db);
    }
out:
    return rc;
}

/* After events up to `pruned` went: drops the commit rows no kept event needs. */
static sl_status prune_commits(const sq *db, conn *c, int64_t pruned, sl_error *err)
{
    sqlite3_stmt *st = NULL;
    sl_status rc = stmt(db, c, S_PRUNE_COMMITS, &st, err);
    if (rc == SL_OK) {
        sqlite3_bind_int64(st, 1, pruned + 1);
        int code = sqlite3_step(st);
        if (code != SQLITE_DONE)
            rc = sq_fail(err, db, c->db, code, "pruning commit times");
    }
    done(st);
    return rc;
}

/* Drops the events in (pruned, limit], at most PRUNE_MAX of them so that one
 * commit stays short, and the commit rows only they needed. */
static sl_status prune_range(const sq *db, conn *c, int64_t pruned, int64_t limit, sl_error *err)
{
    sqlite3_stmt *st = NULL;
    if (limit - pruned > PRUNE_MAX)
        limit = pruned + PRUNE_MAX;
    sl_status rc = stmt(db, c, S_PRUNE, &st, err);
    if (rc == SL_OK) {
        sqlite3_bind_int64(st, 1, pruned);
        sqlite3_bind_int64(st, 2, limit);
        int code = sqlite3_step(st);
        if (code != SQLITE_DONE)
            rc = sq_fail(err, db, c->db, code, "pruning the change feed");
    }
    done(st);
    if (rc == SL_OK)
        rc = meta_set_int(db, c, "pruned", limit, err);
    if (rc == SL_OK)
        rc = prune_commits(db, c, limit, err);
    return rc;
}

/* Records when the open transaction's events committed (just before COMMIT). */
static sl_status commit_time(const sq *db, conn *c, sl_error *err)
{
    sqlite3_stmt *st = NULL;
    sl_status rc = stmt(db, c, S_COMMIT_ADD, &st, err);
    if (rc == SL_OK) {
        sqlite3_bind_int64(st, 1, db->txn_head + 1);
        sqlite3_bind_int64(st, 2, now_ms());
        int code = sqlite3_step(st);
        if (code != SQLITE_DONE)
            rc = sq_fail(err, db, c->db, code, "recording a commit time");
    }
    done(st);
    return rc;
}

/* Applies the retention bounds whatever the consumers: feed_retain events,
 * once more than PRUNE_MIN (or a 16th of the bound, if less) are over it, and
 * feed_retain_ms of age, looked at every AGE_CHECK_MS at most (or half the
 * bound, if less), so that a commit rarely pays for either.  The newest
 * event always stays: it gives the head its commit time.  head is the
 * open transaction's head. */
static sl_status retain_prune(sq *db, conn *c, int64_t head, sl_error *err)
{
    int64_t pruned = 0, limit = 0, first = 0;
    int found = 0;
    sl_status rc = meta_get_int(db, c, "pruned", &pruned, err);
    if (rc != SL_OK)
        goto out;
    if (db->feed_retain > 0) {
        int64_t slack = db->feed_retain / 16 < PRUNE_MIN ? db->feed_retain / 16 : PRUNE_MIN;
        if (head - db->feed_retain - pruned > slack)
            limit = head - db->feed_retain;
    }
    int64_t now = now_ms(), every = db->feed_retain_ms / 2;
    if (every > AGE_CHECK_MS)
        every = AGE_CHECK_MS;
    if (db->feed_retain_ms > 0 && now - db->aged_ms >= every) {
        db->aged_ms = now;
        /* the oldest commit young enough to keep: everything before it goes */
        rc = read_int(db, c, S_FIRST_SINCE, 1, now - db->feed_retain_ms, &first, &found, err);
        if (rc != SL_OK)
            goto out;
        int64_t aged = found ? first - 1 : head;
        if (aged > limit)
            limit = aged;
    }
    if (limit > head - 1)
        limit = head - 1;
    if (limit > pruned)
        rc = prune_range(db, c, pruned, limit, err);
out:
    return rc;
}

/* Commits (or, on error or when !ok, rolls back) and releases the writer.
 * Before committing writes to items it checks that the trigger numbered
 * their changes as put_on() and delete_on() counted (cseq depends on it). */
static sl_status write_end(sq *db, int ok, int wrote_items, sl_error *err)
{
    sl_status rc = SL_OK;
    conn *c = db->writer;
    int64_t head = 0;
    if (ok && wrote_items)
        rc = head_seq(db, c, &head, err);
    if (ok && wrote_items && rc == SL_OK && head != db->txn_next - 1)
        rc = sl_error_set(err, SL_EINTERNAL,
                          "sqlite store %.200s: the change feed is at %" PRId64 " where %" PRId64
                          " was expected (another program writing the "
                          "changes table?); nothing of this write was stored",
                          db->path, head, db->txn_next - 1);
    if (ok && wrote_items && rc == SL_OK)
        rc = commit_time(db, c, err);
    if (ok && wrote_items && rc == SL_OK)
        rc = retain_prune(db, c, head, err);
    if (ok && rc == SL_OK)
        rc = run(db, c, S_COMMIT, "committing", err);
    if (!sqlite3_get_autocommit(c->db))
        (void)run(db, c, S_ROLLBACK, "rolling back", NULL);
    writer_give(db);
    if (ok && rc == SL_OK && wrote_items)
        feed_notify(db);
    return rc;
}

static sl_status sq_batch_begin(store *s, void **impl, sl_error *err)
{
    sqh *h = s->impl;
    sq_batch *b = calloc(1, sizeof *b);
    sl_status rc = SL_OK;
    if (!b) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory starting a batch");
        goto out;
    }
    rc = write_begin(h->db, W_WRITER, err);
    b->h = h;
    b->c = h->db->writer;
out:
    if (rc == SL_OK)
        *impl = b;
    else
        free(b);
    return rc;
}

static sl_status sq_batch_put(void *impl, store_table t, store__doc *d, store_cond cond,
                              store_put_result *res, sl_error *err)
{
    sq_batch *b = impl;
    return put_on(b->h->db, b->c, t, d, cond, res, &b->wrote_items, err);
}

static sl_status sq_batch_delete(void *impl, store_table t, const char *pk, const char *sk,
                                 store_cond cond, int *deleted, sl_error *err)
{
    sq_batch *b = impl;
    return delete_on(b->h->db, b->c, t, pk, sk, cond, deleted, &b->wrote_items, err);
}

static sl_status sq_batch_check(void *impl, store_table t, const char *pk, const char *sk,
                                store_cond cond, sl_error *err)
{
    sq_batch *b = impl;
    return check_on(b->h->db, b->c, t, pk, sk, cond, err);
}

static sl_status sq_batch_commit(void *impl, sl_error *err)
{
    sq_batch *b = impl;
    sl_status rc = write_end(b->h->db, 1, b->wrote_items, err);
    free(b);
    return rc;
}

static void sq_batch_abort(void *impl)
{
    sq_batch *b = impl;
    if (b)
        (void)write_end(b->h->db, 0, 0, NULL);
    free(b);
}

/* ---------------------------------------------------------------------------
 * Consumers.
 * ------------------------------------------------------------------------- */

/* Reads consumer's row: *found, its token (into tok) and sequence number. */
static sl_status consumer_get(const sq *db, conn *c, const char *name, int *found,
                              char tok[STORE_TOKEN_MAX], int64_t *seq, sl_error *err)
{
    sqlite3_stmt *st = NULL;
    sl_status rc = stmt(db, c, S_CONS_GET, &st, err);
    int f = 0;
    int64_t sv = 0;
    char t[STORE_TOKEN_MAX] = "";
    if (rc != SL_OK)
        goto out;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int code = sqlite3_step(st);
    if (code == SQLITE_ROW) {
        f = 1;
        snprintf(t, sizeof t, "%s", (const char *)sqlite3_column_text(st, 0));
        sv = sqlite3_column_int64(st, 1);
    } else if (code != SQLITE_DONE) {
        rc = sq_fail(err, db, c->db, code, "reading a consumer's position");
    }
out:
    done(st);
    if (rc == SL_OK) {
        *found = f;
        memcpy(tok, t, sizeof t);
        *seq = sv;
    }
    return rc;
}

/* Prunes events every consumer has applied, a bounded slice at a time, and
 * always keeps the newest event (its commit time is the head's). */
static sl_status consumer_prune(const sq *db, conn *c, int64_t head, int force, sl_error *err)
{
    int64_t min = 0, pruned = 0;
    int found = 0;
    sl_status rc = read_int(db, c, S_CONS_MIN, 0, 0, &min, &found, err);
    if (rc == SL_OK)
        rc = meta_get_int(db, c, "pruned", &pruned, err);
    if (rc != SL_OK || !found)
        goto out;
    int64_t limit = min < head - 1 ? min : head - 1;
    if (limit > pruned && (force || limit - pruned >= PRUNE_MIN))
        rc = prune_range(db, c, pruned, limit, err);
out:
    return rc;
}

/* Applies a consumer's ops (validated by store.c) on the writer connection. */
static sl_status apply_ops(sq *db, conn *c, store_op *ops, store__doc *docs, size_t n,
                           sl_error *err)
{
    sl_status rc = SL_OK;
    int wrote = 0, del = 0;
    for (size_t i = 0; i < n && rc == SL_OK; i++) {
        sl_error e;
        sl_error_clear(&e);
        store_op *op = &ops[i];
        if (op->kind == STORE_OP_PUT)
            rc = put_on(db, c, op->table, &docs[i], op->cond, &op->result, &wrote, &e);
        else if (op->kind == STORE_OP_DELETE)
            rc = delete_on(db, c, op->table, op->pk, op->sk, op->cond, &del, &wrote, &e);
        else
            rc = check_on(db, c, op->table, op->pk, op->sk, op->cond, &e);
        if (rc != SL_OK) {
            char field[32];
            snprintf(field, sizeof field, "ops[%zu]", i);
            sl_error_set_at(err, rc, field, e.offset, "%s: %s", field, e.message);
        }
    }
    return rc;
}

static sl_status sq_consumer_commit(store *s, const char *consumer, const char *prev_token,
                                    const char *token, store_op *ops, store__doc *docs, size_t n,
                                    const store_commit_options *opt, sl_error *err)
{
    sqh *h = s->impl;
    sq *db = h->db;
    conn *c = db->writer;
    sqlite3_stmt *st = NULL;
    char cur[STORE_TOKEN_MAX], newtok[STORE_TOKEN_MAX];
    int found = 0;
    int64_t cur_seq = 0, head = 0, seq = 0;
    sl_status rc = write_begin(db, W_CONSUMER, err);
    if (rc != SL_OK)
        goto out;
    rc = head_seq(db, c, &head, err);
    if (rc == SL_OK)
        rc = consumer_get(db, c, consumer, &found, cur, &cur_seq, err);
    if (rc != SL_OK)
        goto end;
    if (!token) { /* reset: move to the head */
        seq = head;
    } else if (strcmp(cur, prev_token) != 0) {
        rc = sl_error_set_at(err, SL_ECONDITION, "prev_token", -1,
                             "consumer %s is at \"%s\", not at prev_token \"%.40s\": another "
                             "instance moved it",
                             consumer, cur, prev_token);
        goto end;
    } else {
        rc = token_parse("token", token, &seq, err);
        if (rc == SL_OK && seq > head)
            rc = sl_error_set_at(err, SL_EINVAL, "token", -1,
                                 "token \"%s\" is beyond the head of the feed (\"%" PRId64 "\")",
                                 token, head);
        else if (rc == SL_OK && seq < cur_seq)
            rc = sl_error_set_at(err, SL_EINVAL, "token", -1,
                                 "token \"%s\" would move consumer %s back from \"%s\"", token,
                                 consumer, cur);
        if (rc != SL_OK)
            goto end;
    }
    token_of(seq, newtok);
    rc = apply_ops(db, c, ops, docs, n, err);
    if (rc == SL_OK)
        rc = stmt(db, c, S_CONS_PUT, &st, err);
    if (rc == SL_OK) {
        sqlite3_bind_text(st, 1, consumer, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, newtok, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, seq);
        int code = sqlite3_step(st);
        if (code != SQLITE_DONE)
            rc = sq_fail(err, db, c->db, code, "moving a consumer's position");
        done(st);
    }
    if (rc == SL_OK)
        rc = consumer_prune(db, c, head, token == NULL, err);
    if (rc == SL_OK && opt && opt->before_commit)
        opt->before_commit(opt->ctx); /* a test hook: everything written, nothing committed */
end:
    if (rc == SL_OK)
        rc = write_end(db, 1, 0, err);
    else
        (void)write_end(db, 0, 0, NULL);
out:
    return rc;
}

static sl_status sq_consumer_token(store *s, const char *consumer, char out[STORE_TOKEN_MAX],
                                   sl_error *err)
{
    sqh *h = s->impl;
    conn *c = NULL;
    char tok[STORE_TOKEN_MAX];
    int found = 0;
    int64_t seq = 0;
    sl_status rc = reader_take(h, &c, err);
    if (rc != SL_OK)
        goto out;
    rc = consumer_get(h->db, c, consumer, &found, tok, &seq, err);
    reader_give(h, c);
    if (rc == SL_OK && !found)
        rc = sl_error_set(err, SL_ENOTFOUND, "consumer %s has never committed", consumer);
out:
    if (rc == SL_OK)
        memcpy(out, tok, STORE_TOKEN_MAX);
    return rc;
}

static sl_status sq_consumer_drop(store *s, const char *consumer, sl_error *err)
{
    sqh *h = s->impl;
    sq *db = h->db;
    conn *c = db->writer;
    sqlite3_stmt *st = NULL;
    int64_t head = 0;
    sl_status rc = write_begin(db, W_WRITER, err);
    if (rc != SL_OK)
        goto out;
    rc = stmt(db, c, S_CONS_DROP, &st, err);
    if (rc == SL_OK) {
        sqlite3_bind_text(st, 1, consumer, -1, SQLITE_STATIC);
        int code = sqlite3_step(st);
        if (code != SQLITE_DONE)
            rc = sq_fail(err, db, c->db, code, "dropping a consumer");
        else if (sqlite3_changes(c->db) == 0)
            rc = sl_error_set(err, SL_ENOTFOUND, "consumer %s has never committed", consumer);
    }
    done(st);
    if (rc == SL_OK)
        rc = head_seq(db, c, &head, err);
    if (rc == SL_OK) /* what only it held back goes now */
        rc = consumer_prune(db, c, head, 1, err);
    if (rc == SL_OK)
        rc = write_end(db, 1, 0, err);
    else
        (void)write_end(db, 0, 0, NULL);
out:
    return rc;
}

static sl_status sq_feed_stats(store *s, const char *consumer, store_feed_stats *out, sl_error *err)
{
    sqh *h = s->impl;
    sq *db = h->db;
    conn *c = NULL;
    store_feed_stats r = {.behind_events = 0};
    int64_t head = 0, pos = 0, pruned = 0, ms = 0;
    int found = 0;
    char tok[STORE_TOKEN_MAX];
    sl_status rc = reader_take(h, &c, err);
    if (rc != SL_OK)
        goto out;
    rc = read_begin(h, c, err);
    if (rc == SL_OK)
        rc = head_seq(db, c, &head, err);
    if (rc == SL_OK && head > 0)
        rc = read_int(db, c, S_COMMIT_MS, 1, head, &r.head_commit_ms, NULL, err);
    if (rc == SL_OK)
        rc = meta_get_int(db, c, "pruned", &pruned, err);
    if (rc == SL_OK && consumer)
        rc = consumer_get(db, c, consumer, &found, tok, &pos, err);
    if (rc == SL_OK && consumer) {
        if (!found)
            pos = pruned;
        r.behind_events = head - pos;
        if (r.behind_events > 0)
            rc = read_int(db, c, S_COMMIT_MS, 1, pos + 1, &ms, &found, err);
        if (rc == SL_OK && r.behind_events > 0 && found) {
            int64_t now = now_ms();
            r.behind_ms = now > ms ? now - ms : 0;
        }
    }
    read_end(h, c);
    reader_give(h, c);
    token_of(head, r.head_token);
out:
    if (rc == SL_OK)
        *out = r;
    return rc;
}

/* ---------------------------------------------------------------------------
 * The change feed.  A feed has its own connection (a snapshot's feed reads
 * through the snapshot's), so a waiting reader never holds a pooled one.
 * ------------------------------------------------------------------------- */

/* Where one event's pieces sit in the feed's buffer while it grows. */
typedef struct ev_off {
    size_t pk, sk, old, neu;
    uint32_t old_len, new_len;
    int has_old, has_new;
} ev_off;

typedef struct sq_feed {
    sqh *h;
    conn *own;   /* NULL when reading through a snapshot */
    int64_t pos; /* sequence number of the last event handed out or skipped */
    int64_t skipped;
    const store__filter *filter; /* NULL: every event */
    sqlite3_stmt *filtered;      /* the read with the filter's conditions */
    int64_t data_version;
    uint8_t *buf; /* images and keys of the last read */
    size_t len, cap;
    store_event *ev;
    bson_t *img; /* 2 per event: old, new */
    ev_off *off;
    size_t ncap;
} sq_feed;

static sl_status feed_conn(sq_feed *f, conn **c, sl_error *err)
{
    sl_status rc = SL_OK;
    if (f->own)
        *c = f->own;
    else
        rc = reader_take(f->h, c, err);
    return rc;
}

static void feed_conn_give(sq_feed *f, conn *c)
{
    if (!f->own)
        reader_give(f->h, c);
}

static sl_status gone(const sq *db, const char *what, int64_t pos, int64_t pruned, sl_error *err)
{
    return sl_error_set(err, SL_EFEEDGONE,
                        "sqlite store %.200s: %s is at event %" PRId64 " but events up to %" PRId64
                        " were pruned; rebuild its state (recompute), then reset it to the head",
                        db->path, what, pos, pruned);
}

/* Appends "starts with prefix p" on c.sk to buf, p's bounds taking
 * parameters ?*next and ?*next + 1. */
static size_t prefix_sql(char *buf, size_t n, const store__prefix *p, int *next)
{
    size_t at;
    if (p->hi)
        at = (size_t)snprintf(buf, n, "(c.sk >= ?%d AND c.sk < ?%d)", *next, *next + 1);
    else
        at = (size_t)snprintf(buf, n, "(c.sk >= ?%d)", *next);
    *next += p->hi ? 2 : 1;
    return at;
}

/* The feed read with x's conditions (parameters from ?4, in the order
 * feed_bind() binds them) into buf. */
static void feed_sql(const store__filter *x, char *buf, size_t n)
{
    int next = 4;
    size_t at = (size_t)snprintf(buf, n, "%s", SQL_FEED_READ_HEAD);
    for (size_t i = 0; i < x->nkeep; i++) {
        at += (size_t)snprintf(buf + at, n - at, "%s", i ? " OR " : " AND (");
        at += prefix_sql(buf + at, n - at, &x->keep[i], &next);
    }
    if (x->nkeep)
        at += (size_t)snprintf(buf + at, n - at, ")");
    for (size_t i = 0; i < x->nskip; i++) {
        at += (size_t)snprintf(buf + at, n - at, " AND NOT ");
        at += prefix_sql(buf + at, n - at, &x->skip[i], &next);
    }
    snprintf(buf + at, n - at, "%s", SQL_FEED_READ_TAIL);
}

static void feed_bind(sqlite3_stmt *st, const store__filter *x)
{
    int next = 4;
    for (int list = 0; list < 2; list++) {
        const store__prefix *p = list ? x->skip : x->keep;
        size_t np = list ? x->nskip : x->nkeep;
        for (size_t i = 0; i < np; i++) {
            sqlite3_bind_text(st, next++, p[i].lo, -1, SQLITE_STATIC);
            if (p[i].hi)
                sqlite3_bind_text(st, next++, p[i].hi, -1, SQLITE_STATIC);
        }
    }
}

static sl_status sq_feed_open(store *s, const char *consumer, const store__filter *filter,
                              void **impl, sl_error *err)
{
    sqh *h = s->impl;
    sq *db = h->db;
    sq_feed *f = calloc(1, sizeof *f);
    conn *c = NULL;
    char tok[STORE_TOKEN_MAX];
    int found = 0;
    int64_t seq = 0, pruned = 0;
    sl_status rc = SL_OK;
    /* 2 x 16 prefixes of up to 40 bytes of SQL each, and the query's own */
    char sql[sizeof SQL_FEED_READ_HEAD SQL_FEED_READ_TAIL + 2 * STORE_FEED_FILTER_MAX * 40];
    if (!f) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory opening a feed");
        goto out;
    }
    f->h = h;
    f->filter = filter;
    if (!h->snap) {
        rc = conn_open(db, 0, 0, &f->own, err);
        if (rc != SL_OK)
            goto out;
    }
    rc = feed_conn(f, &c, err);
    if (rc != SL_OK)
        goto out;
    if (filter) { /* prepared for this feed only: its conditions are its own */
        feed_sql(filter, sql, sizeof sql);
        int code =
            sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &f->filtered, NULL);
        if (code != SQLITE_OK)
            rc = sq_fail(err, db, c->db, code, "preparing a filtered feed");
    }
    if (rc == SL_OK)
        rc = read_begin(h, c, err);
    if (rc == SL_OK)
        rc = consumer_get(db, c, consumer, &found, tok, &seq, err);
    if (rc == SL_OK)
        rc = meta_get_int(db, c, "pruned", &pruned, err);
    read_end(h, c);
    if (rc == SL_OK && found && seq < pruned)
        rc = gone(db, consumer, seq, pruned, err);
    if (rc == SL_OK && f->own)
        rc = read_int(db, c, S_DATA_VERSION, 0, 0, &f->data_version, NULL, err);
    feed_conn_give(f, c);
    f->pos = found ? seq : pruned;
out:
    if (rc == SL_OK) {
        *impl = f;
    } else if (f) {
        sqlite3_finalize(f->filtered);
        conn_close(f->own);
        free(f);
    }
    return rc;
}

/* Appends n bytes to the feed's buffer; *at receives their offset. */
static sl_status feed_keep(sq_feed *f, const void *p, size_t n, size_t *at, sl_error *err)
{
    sl_status rc = SL_OK;
    if (f->len + n + 1 > f->cap) {
        size_t cap = f->cap ? f->cap : 65536;
        while (cap < f->len + n + 1)
            cap *= 2;
        uint8_t *b = realloc(f->buf, cap);
        if (!b) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory reading %zu bytes of events", cap);
            goto out;
        }
        f->buf = b;
        f->cap = cap;
    }
    if (n)
        memcpy(f->buf + f->len, p, n);
    f->buf[f->len + n] = '\0'; /* keys are read back as C strings */
    *at = f->len;
    f->len += n + 1;
out:
    return rc;
}

static sl_status feed_grow(sq_feed *f, size_t max, sl_error *err)
{
    sl_status rc = SL_OK;
    if (max <= f->ncap)
        goto out;
    store_event *ev = realloc(f->ev, max * sizeof *ev);
    if (ev)
        f->ev = ev;
    bson_t *img = realloc(f->img, 2 * max * sizeof *img);
    if (img)
        f->img = img;
    ev_off *off = realloc(f->off, max * sizeof *off);
    if (off)
        f->off = off;
    if (!ev || !img || !off)
        rc = sl_error_set(err, SL_ENOMEM, "out of memory for %zu events", max);
    else
        f->ncap = max;
out:
    return rc;
}

/* One read of up to max events after f->pos, in one read transaction. */
/* One read of up to max events after f->pos, in one read transaction,
 * looking at FEED_SCAN_MAX events at most, so that a read that skips (a
 * filter) stays short.  *more is 1 when events past those it looked at
 * exist.  The feed's position moves past every event looked at. */
static sl_status feed_read_once(sq_feed *f, size_t max, size_t *n, int *more, sl_error *err)
{
    sq *db = f->h->db;
    conn *c = NULL;
    sqlite3_stmt *st = NULL;
    int64_t pruned = 0, last = f->pos, head = 0, end = 0;
    size_t k = 0;
    int code = SQLITE_DONE;
    sl_status rc = feed_conn(f, &c, err);
    if (rc != SL_OK)
        goto out;
    f->len = 0;
    rc = read_begin(f->h, c, err);
    if (rc == SL_OK)
        rc = meta_get_int(db, c, "pruned", &pruned, err);
    if (rc == SL_OK && f->pos < pruned)
        rc = gone(db, "this feed", f->pos, pruned, err);
    if (rc == SL_OK)
        rc = head_seq(db, c, &head, err);
    if (rc == SL_OK && f->filtered)
        st = f->filtered;
    else if (rc == SL_OK)
        rc = stmt(db, c, S_FEED_READ, &st, err);
    if (rc != SL_OK)
        goto end;
    /* sequence numbers above the pruned ones have no gaps: the window is
     * FEED_SCAN_MAX events */
    end = head - f->pos > FEED_SCAN_MAX ? f->pos + FEED_SCAN_MAX : head;
    if (f->filtered)
        feed_bind(st, f->filter);
    sqlite3_bind_int64(st, 1, f->pos);
    sqlite3_bind_int64(st, 2, (int64_t)max);
    sqlite3_bind_int64(st, 3, end);
    while (rc == SL_OK && k < max && (k == 0 || f->len < FEED_READ_BYTES) &&
           (code = sqlite3_step(st)) == SQLITE_ROW) {
        store_event *e = &f->ev[k];
        ev_off *o = &f->off[k];
        last = sqlite3_column_int64(st, 0);
        token_of(last, e->token);
        e->op = sqlite3_column_int(st, 1) == 2 ? STORE_EVENT_DELETE : STORE_EVENT_PUT;
        e->commit_ms = sqlite3_column_int64(st, 4);
        o->has_old = sqlite3_column_type(st, 5) != SQLITE_NULL;
        o->has_new = sqlite3_column_type(st, 6) != SQLITE_NULL;
        o->old_len = (uint32_t)sqlite3_column_bytes(st, 5);
        o->new_len = (uint32_t)sqlite3_column_bytes(st, 6);
        rc = feed_keep(f, sqlite3_column_text(st, 2), (size_t)sqlite3_column_bytes(st, 2), &o->pk,
                       err);
        if (rc == SL_OK)
            rc = feed_keep(f, sqlite3_column_text(st, 3), (size_t)sqlite3_column_bytes(st, 3),
                           &o->sk, err);
        if (rc == SL_OK && o->has_old)
            rc = feed_keep(f, sqlite3_column_blob(st, 5), o->old_len, &o->old, err);
        if (rc == SL_OK && o->has_new)
            rc = feed_keep(f, sqlite3_column_blob(st, 6), o->new_len, &o->neu, err);
        if (rc == SL_OK && e->op == STORE_EVENT_PUT && !o->has_new)
            rc = sl_error_set(err, SL_ECORRUPT,
                              "sqlite store %.200s: feed event %" PRId64 " has no new image",
                              db->path, last);
        k++;
    }
    if (rc == SL_OK && code != SQLITE_DONE && code != SQLITE_ROW)
        rc = sq_fail(err, db, c->db, code, "reading the change feed");
    if (rc == SL_OK && code == SQLITE_DONE) /* looked at the whole window */
        last = end > f->pos ? end : f->pos;
end:
    done(st);
    read_end(f->h, c);
    feed_conn_give(f, c);
out:
    if (rc == SL_OK) {
        for (size_t i = 0; i < k; i++) { /* the buffer has stopped moving: point into it */
            store_event *e = &f->ev[i];
            ev_off *o = &f->off[i];
            bson_t *old = &f->img[2 * i], *neu = &f->img[2 * i + 1];
            e->pk = (const char *)f->buf + o->pk;
            e->sk = (const char *)f->buf + o->sk;
            e->old_image =
                o->has_old && bson_init_static(old, f->buf + o->old, o->old_len) ? old : NULL;
            e->new_image =
                o->has_new && bson_init_static(neu, f->buf + o->neu, o->new_len) ? neu : NULL;
        }
        f->skipped += last - f->pos - (int64_t)k;
        f->pos = last;
        *n = k;
        *more = last < head;
    }
    return rc;
}

/* Waits until another commit may have added events, or the deadline.
 * Commits in this process signal f_cv; other processes are seen by
 * PRAGMA data_version, polled every FEED_POLL_NS. */
static sl_status feed_wait(sq_feed *f, const struct timespec *dl, uint64_t seen, int *changed,
                           sl_error *err)
{
    sq *db = f->h->db;
    sl_status rc = SL_OK;
    int64_t dv = 0;
    int ch = 0;
    while (!ch && ns_until(dl) > 0) {
        int64_t left = ns_until(dl);
        struct timespec tick;
        clock_gettime(CLOCK_MONOTONIC, &tick);
        tick.tv_nsec += left < FEED_POLL_NS ? left : FEED_POLL_NS;
        if (tick.tv_nsec >= 1000000000L) {
            tick.tv_sec++;
            tick.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&db->f_mu);
        if (db->commits == seen)
            pthread_cond_timedwait(&db->f_cv, &db->f_mu, &tick);
        ch = db->commits != seen;
        pthread_mutex_unlock(&db->f_mu);
        if (ch)
            break;
        rc = read_int(db, f->own, S_DATA_VERSION, 0, 0, &dv, NULL, err);
        if (rc != SL_OK)
            break;
        ch = dv != f->data_version;
    }
    if (rc == SL_OK && ch)
        rc = read_int(db, f->own, S_DATA_VERSION, 0, 0, &f->data_version, NULL, err);
    if (rc == SL_OK)
        *changed = ch;
    return rc;
}

static sl_status sq_feed_read(void *impl, size_t max, int wait_ms, const store_event **events,
                              size_t *n, sl_error *err)
{
    sq_feed *f = impl;
    sq *db = f->h->db;
    size_t k = 0;
    struct timespec dl = deadline_after_ms(wait_ms);
    if (max > FEED_READ_MAX)
        max = FEED_READ_MAX;
    sl_status rc = feed_grow(f, max, err);
    while (rc == SL_OK) {
        int more = 0;
        pthread_mutex_lock(&db->f_mu);
        uint64_t seen = db->commits;
        pthread_mutex_unlock(&db->f_mu);
        rc = feed_read_once(f, max, &k, &more, err);
        if (rc != SL_OK || k > 0 || ns_until(&dl) <= 0)
            break;
        if (more) /* the filter skipped a whole window: look further at once */
            continue;
        if (!f->own)
            break;
        int changed = 0;
        rc = feed_wait(f, &dl, seen, &changed, err);
        if (rc == SL_OK && !changed)
            break; /* the deadline passed with nothing new */
    }
    if (rc == SL_OK) {
        *events = f->ev;
        *n = k;
    }
    return rc;
}

static void sq_feed_position(const void *impl, store_feed_pos *out)
{
    const sq_feed *f = impl;
    token_of(f->pos, out->token);
    out->skipped = f->skipped;
}

static void sq_feed_close(void *impl)
{
    sq_feed *f = impl;
    if (f) {
        conn *c = NULL; /* the snapshot's connection is shared: finalize under its lock */
        if (f->filtered && !f->own && feed_conn(f, &c, NULL) == SL_OK) {
            sqlite3_finalize(f->filtered);
            feed_conn_give(f, c);
        } else {
            sqlite3_finalize(f->filtered); /* before its connection closes */
        }
        conn_close(f->own);
        free(f->buf);
        free(f->ev);
        free(f->img);
        free(f->off);
    }
    free(f);
}

/* ---------------------------------------------------------------------------
 * Snapshots: a connection inside one read transaction for its whole life.
 * ------------------------------------------------------------------------- */
static sl_status sq_snapshot_open(store *s, void **impl, sl_error *err)
{
    sqh *parent = s->impl;
    sqh *h = calloc(1, sizeof *h);
    conn *c = NULL;
    int64_t n = 0;
    sl_status rc = SL_OK;
    if (!h) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory opening a snapshot");
        goto out;
    }
    rc = conn_open(parent->db, 0, 0, &c, err);
    if (rc == SL_OK)
        rc = run(parent->db, c, S_BEGIN, "starting a snapshot", err);
    if (rc == SL_OK) /* the first read fixes the point in time */
        rc = read_int(parent->db, c, S_PROBE, 0, 0, &n, NULL, err);
    if (rc != SL_OK)
        goto out;
    h->db = parent->db;
    h->snap = c;
    c = NULL;
    pthread_mutex_init(&h->snap_mu, NULL);
out:
    conn_close(c);
    if (rc == SL_OK)
        *impl = h;
    else
        free(h);
    return rc;
}

const store__vtable store__sqlite_vtable = {
    .name = "sqlite",
    .close = sq_close,
    .ping = sq_ping,
    .get = sq_get,
    .batch_begin = sq_batch_begin,
    .batch_put = sq_batch_put,
    .batch_delete = sq_batch_delete,
    .batch_check = sq_batch_check,
    .batch_commit = sq_batch_commit,
    .batch_abort = sq_batch_abort,
    .query = sq_query,
    .feed_open = sq_feed_open,
    .feed_read = sq_feed_read,
    .feed_position = sq_feed_position,
    .feed_close = sq_feed_close,
    .consumer_commit = sq_consumer_commit,
    .consumer_token = sq_consumer_token,
    .consumer_drop = sq_consumer_drop,
    .feed_stats = sq_feed_stats,
    .snapshot_open = sq_snapshot_open,
};
