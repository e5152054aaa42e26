/* store_sqlite.c -- the embedded SQLite adapter of the storage port
 * ("sqlite:PATH"): schema, connection pool, writes, queries, change feed,
 * consumer cursors and snapshots.  store.c has already validated every input.
 *
 * Choices, measured on this machine (2 cores, SQLite 3.40.1, WAL,
 * synchronous=NORMAL, batches of 10k rows, /tmp/slexp programs):
 * - 16 KB pages.  300-byte rows: 437k rows/s (16 KB) vs 330k (4 KB) without a
 *   feed; 1.5 KB rows: 224k vs 42k (4 KB pages push them to overflow pages).
 * - Change rows hold the old image only; an event's new image is read back as
 *   the old image of the next change of the same key, or the current item
 *   when there is none (one query, see SQL_FEED_READ).  With both images the
 *   trigger copies every document twice: 247k vs 318k rows/s at 300 bytes and
 *   83k vs 163k rows/s at 1.5 KB (the frame-ingest case).  The price is an
 *   index on changes(pk, sk) and two lookups per event when reading the feed.
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
 *   the previous commit. */
#include "store_int.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define APP_ID              0x53676874   /* "Sght" in the file header: marks a Sightline store */
#define SCHEMA_VERSION      1            /* PRAGMA user_version; raise it with a migration */
#define DEFAULT_CACHE_BYTES (16ll << 20) /* per connection */
#define DEFAULT_BUSY_MS     5000
#define DEFAULT_READERS     8
#define READERS_MAX         64
#define FEED_READ_MAX       10000       /* events in one read */
#define FEED_READ_BYTES     (64u << 20) /* images in one read; at least one event */
#define PRUNE_MIN           256         /* prune once this many events are applied by all */
#define PRUNE_MAX           65536       /* events deleted by one commit, to bound its time */
#define FEED_POLL_NS        1000000L    /* how often a waiting feed looks for other processes */

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

static const char schema_sql[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
    DOC_TABLE("items")
    DOC_TABLE("aggregates")
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

/* The commit time of the event with sequence number `seq`. */
#define SQL_COMMIT_MS(seq)                                                                    \
    "(SELECT t.ms FROM commits t WHERE t.first_seq <= " seq                                   \
    " ORDER BY t.first_seq DESC LIMIT 1)"

/* An event's new image: the old image of the key's next change, else the
 * current item.  Deletes have none. */
#define SQL_FEED_READ                                                                         \
    "SELECT c.seq, c.op, c.pk, c.sk, " SQL_COMMIT_MS("c.seq") ", c.old,"                       \
    " CASE WHEN c.op = 1 THEN coalesce("                                                      \
    "(SELECT n.old FROM changes n WHERE n.pk = c.pk AND n.sk = c.sk AND n.seq > c.seq"         \
    " ORDER BY n.seq LIMIT 1),"                                                               \
    "(SELECT i.doc FROM items i WHERE i.pk = c.pk AND i.sk = c.sk)) END"                      \
    " FROM changes c WHERE c.seq > ?1 ORDER BY c.seq LIMIT ?2"
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
    [S_FEED_READ] = SQL_FEED_READ,
    [S_DATA_VERSION] = "PRAGMA data_version",
    [S_COMMIT_MS] = "SELECT " SQL_COMMIT_MS("?1"),
    [S_COMMIT_ADD] = "INSERT INTO commits(first_seq, ms) VALUES (?1, ?2)"
                     " ON CONFLICT(first_seq) DO UPDATE SET ms = excluded.ms",
    /* commit rows older than the one that times the oldest kept event */
    [S_PRUNE_COMMITS] = "DELETE FROM commits WHERE first_seq <"
                        " (SELECT max(first_seq) FROM commits WHERE first_seq <= ?1)",
    [S_PROBE] = "SELECT count(*) FROM meta",
};

static void table_sql(int op, const char *t, char *buf, size_t n)
{
    switch (op) {
    case T_GET:
        snprintf(buf, n, "SELECT doc FROM %s WHERE pk = ?1 AND sk = ?2", t);
        break;
    case T_INSERT:
        snprintf(buf, n,
                 "INSERT OR FAIL INTO %s(pk, sk, v, gsi1pk, gsi1sk, gsi2pk, gsi2sk, doc)"
                 " VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(pk, sk) DO NOTHING",
                 t);
        break;
    case T_SELECT_VDOC:
        snprintf(buf, n, "SELECT v, doc FROM %s WHERE pk = ?1 AND sk = ?2", t);
        break;
    case T_UPDATE:
        snprintf(buf, n,
                 "UPDATE OR FAIL %s SET v = ?3, gsi1pk = ?4, gsi1sk = ?5, gsi2pk = ?6,"
                 " gsi2sk = ?7, doc = ?8 WHERE pk = ?1 AND sk = ?2",
                 t);
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
    size_t at = (size_t)snprintf(buf, n, "SELECT doc FROM %s WHERE %s", table_names[table], where);
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

/* What every handle on one file shares (the main store and its snapshots). */
typedef struct sq {
    char *path;
    int sync_full;
    int busy_ms;
    int readers_max;
    int read_only;
    int64_t cache_bytes;
    int64_t feed_retain; /* keep at most this many events (0: no limit) */

    pthread_mutex_t pool_mu; /* guards idle, nconns */
    pthread_cond_t pool_cv;
    conn *idle;
    int nconns;

    pthread_mutex_t w_mu; /* the in-process writer lock: one writer at a time */
    pthread_cond_t w_cv;
    int w_busy;
    pthread_t w_owner;
    conn *writer;
    int64_t txn_head; /* head of the feed when the open write transaction began */

    pthread_mutex_t f_mu; /* commits of items, for waiting feeds */
    pthread_cond_t f_cv;
    uint64_t commits;
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
        table_sql(id % T_COUNT, table_names[id / T_COUNT], buf, sizeof buf);
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

/* The in-process writer lock.  A lock that any thread may release (a batch
 * may move between threads), waited on for at most busy_ms. */
static sl_status writer_take(sq *db, sl_error *err)
{
    sl_status rc = SL_OK;
    struct timespec dl = deadline_after_ms(db->busy_ms);
    pthread_mutex_lock(&db->w_mu);
    if (db->w_busy && pthread_equal(db->w_owner, pthread_self())) {
        rc = sl_error_set(err, SL_EINVAL,
                          "this thread already has a batch open on this store; commit or abort "
                          "it before writing again");
        goto out;
    }
    while (db->w_busy) {
        if (pthread_cond_timedwait(&db->w_cv, &db->w_mu, &dl) == ETIMEDOUT && db->w_busy) {
            rc = sl_error_set(err, SL_EBUSY,
                              "sqlite store %.200s: another writer in this process held the "
                              "store for more than %d ms",
                              db->path, db->busy_ms);
            goto out;
        }
    }
    db->w_busy = 1;
    db->w_owner = pthread_self();
out:
    pthread_mutex_unlock(&db->w_mu);
    return rc;
}

static void writer_give(sq *db)
{
    pthread_mutex_lock(&db->w_mu);
    db->w_busy = 0;
    pthread_cond_signal(&db->w_cv);
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
        } else {
            rc = sl_error_set_at(err, SL_EINVAL, "uri", -1,
                                 "unknown store URI parameter \"%.40s\" (known: sync, busy_ms, "
                                 "readers, feed_retain)",
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
    int code = sqlite3_exec(c->db, "PRAGMA page_size=16384; PRAGMA journal_mode=WAL;", NULL, NULL,
                            NULL); /* 16 KB pages: see the top of this file */
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

/* Makes sure the file is a Sightline store of a version we understand,
 * creating it when empty (and allowed). */
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
    }
    /* Migrations from older versions go here, each in its own transaction. */
out:
    return rc;
}

static void sq_free(sq *db)
{
    if (db) {
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
        free(db->path);
        free(db);
    }
}

sl_status store__sqlite_open(const char *path, const store__param *params, size_t nparams,
                             const store_options *opt, void **impl, sl_error *err)
{
    sl_status rc = SL_OK;
    sq *db = calloc(1, sizeof *db);
    sqh *h = calloc(1, sizeof *h);
    conn *first = NULL;
    struct stat sb;

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
    db->busy_ms = DEFAULT_BUSY_MS;
    db->readers_max = DEFAULT_READERS;
    db->cache_bytes = opt->cache_bytes > 0 ? opt->cache_bytes : DEFAULT_CACHE_BYTES;
    db->read_only = opt->read_only != 0;
    rc = params_apply(db, params, nparams, err);
    if (rc != SL_OK)
        goto out;
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
        rc = store__page_add(page, sqlite3_column_blob(st, 0),
                             (uint32_t)sqlite3_column_bytes(st, 0), err);
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
static sl_status try_insert(const sq *db, conn *c, store_table t, store__doc *d, int *inserted,
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
    int code = sqlite3_step(st);
    if (code == SQLITE_DONE)
        ins = sqlite3_changes(c->db) == 1;
    else
        rc = sq_fail(err, db, c->db, code, "inserting a document");
out:
    done(st);
    if (rc == SL_OK)
        *inserted = ins;
    return rc;
}

static sl_status put_on(const sq *db, conn *c, store_table t, store__doc *d, store_cond cond,
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
    code = sqlite3_step(st);
    if (code != SQLITE_DONE) {
        rc = sq_fail(err, db, c->db, code, "replacing a document");
        goto out;
    }
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

static sl_status delete_on(const sq *db, conn *c, store_table t, const char *pk, const char *sk,
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
static sl_status write_begin(sq *db, sl_error *err)
{
    sl_status rc = SL_OK;
    if (db->read_only || !db->writer) {
        rc = sl_error_set(err, SL_EINVAL, "the store %.200s was opened read-only", db->path);
        goto out;
    }
    rc = writer_take(db, err);
    if (rc != SL_OK)
        goto out;
    rc = run(db, db->writer, S_BEGIN_IMMEDIATE, "starting a write (another process may hold it)",
             err);
    if (rc == SL_OK)
        rc = head_seq(db, db->writer, &db->txn_head, err);
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

/* Drops feed events beyond the retention limit (feed_retain), oldest first. */
static sl_status retain_prune(const sq *db, conn *c, sl_error *err)
{
    int64_t head = 0, pruned = 0;
    sl_status rc = SL_OK;
    if (db->feed_retain <= 0)
        goto out;
    rc = head_seq(db, c, &head, err);
    if (rc == SL_OK)
        rc = meta_get_int(db, c, "pruned", &pruned, err);
    if (rc != SL_OK || head - pruned <= db->feed_retain)
        goto out;
    sqlite3_stmt *st = NULL;
    rc = stmt(db, c, S_PRUNE, &st, err);
    if (rc == SL_OK) {
        sqlite3_bind_int64(st, 1, pruned);
        sqlite3_bind_int64(st, 2, head - db->feed_retain);
        int code = sqlite3_step(st);
        if (code != SQLITE_DONE)
            rc = sq_fail(err, db, c->db, code, "pruning the change feed");
    }
    done(st);
    if (rc == SL_OK)
        rc = meta_set_int(db, c, "pruned", head - db->feed_retain, err);
    if (rc == SL_OK)
        rc = prune_commits(db, c, head - db->feed_retain, err);
out:
    return rc;
}

/* Commits (or, on error or when !ok, rolls back) and releases the writer. */
static sl_status write_end(sq *db, int ok, int wrote_items, sl_error *err)
{
    sl_status rc = SL_OK;
    conn *c = db->writer;
    if (ok && wrote_items)
        rc = commit_time(db, c, err);
    if (ok && wrote_items && rc == SL_OK)
        rc = retain_prune(db, c, err);
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
    rc = write_begin(h->db, err);
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
    sqlite3_stmt *st = NULL;
    sl_status rc = read_int(db, c, S_CONS_MIN, 0, 0, &min, &found, err);
    if (rc == SL_OK)
        rc = meta_get_int(db, c, "pruned", &pruned, err);
    if (rc != SL_OK || !found)
        goto out;
    int64_t limit = min < head - 1 ? min : head - 1;
    if (limit <= pruned || (!force && limit - pruned < PRUNE_MIN))
        goto out;
    if (limit - pruned > PRUNE_MAX)
        limit = pruned + PRUNE_MAX;
    rc = stmt(db, c, S_PRUNE, &st, err);
    if (rc != SL_OK)
        goto out;
    sqlite3_bind_int64(st, 1, pruned);
    sqlite3_bind_int64(st, 2, limit);
    int code = sqlite3_step(st);
    if (code != SQLITE_DONE)
        rc = sq_fail(err, db, c->db, code, "pruning applied feed events");
    done(st);
    st = NULL;
    if (rc == SL_OK)
        rc = meta_set_int(db, c, "pruned", limit, err);
    if (rc == SL_OK)
        rc = prune_commits(db, c, limit, err);
out:
    done(st);
    return rc;
}

/* Applies a consumer's ops (validated by store.c) on the writer connection. */
static sl_status apply_ops(const sq *db, conn *c, store_op *ops, store__doc *docs, size_t n,
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
                                    sl_error *err)
{
    sqh *h = s->impl;
    sq *db = h->db;
    conn *c = db->writer;
    sqlite3_stmt *st = NULL;
    char cur[STORE_TOKEN_MAX], newtok[STORE_TOKEN_MAX];
    int found = 0;
    int64_t cur_seq = 0, head = 0, seq = 0;
    sl_status rc = write_begin(db, err);
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
    int64_t pos; /* sequence number of the last event handed out */
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

static sl_status sq_feed_open(store *s, const char *consumer, void **impl, sl_error *err)
{
    sqh *h = s->impl;
    sq *db = h->db;
    sq_feed *f = calloc(1, sizeof *f);
    conn *c = NULL;
    char tok[STORE_TOKEN_MAX];
    int found = 0;
    int64_t seq = 0, pruned = 0;
    sl_status rc = SL_OK;
    if (!f) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory opening a feed");
        goto out;
    }
    f->h = h;
    if (!h->snap) {
        rc = conn_open(db, 0, 0, &f->own, err);
        if (rc != SL_OK)
            goto out;
    }
    rc = feed_conn(f, &c, err);
    if (rc != SL_OK)
        goto out;
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
static sl_status feed_read_once(sq_feed *f, size_t max, size_t *n, sl_error *err)
{
    sq *db = f->h->db;
    conn *c = NULL;
    sqlite3_stmt *st = NULL;
    int64_t pruned = 0, last = f->pos;
    size_t k = 0;
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
        rc = stmt(db, c, S_FEED_READ, &st, err);
    if (rc != SL_OK)
        goto end;
    sqlite3_bind_int64(st, 1, f->pos);
    sqlite3_bind_int64(st, 2, (int64_t)max);
    int code;
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
    if (rc == SL_OK && k < max && (k == 0 || f->len < FEED_READ_BYTES) && code != SQLITE_DONE)
        rc = sq_fail(err, db, c->db, code, "reading the change feed");
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
        f->pos = last;
        *n = k;
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
        pthread_mutex_lock(&db->f_mu);
        uint64_t seen = db->commits;
        pthread_mutex_unlock(&db->f_mu);
        rc = feed_read_once(f, max, &k, err);
        if (rc != SL_OK || k > 0 || !f->own || ns_until(&dl) <= 0)
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

static void sq_feed_close(void *impl)
{
    sq_feed *f = impl;
    if (f) {
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
    .feed_close = sq_feed_close,
    .consumer_commit = sq_consumer_commit,
    .consumer_token = sq_consumer_token,
    .feed_stats = sq_feed_stats,
    .snapshot_open = sq_snapshot_open,
};
