/* spool.c -- the spool folder: files dropped into DIR/<tenant>/<surgery>/ or
 * DIR/<tenant>/assets/ are ingested once each, then moved to done/ or failed/. */
#include "ingest_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* inotify says when a file is complete (closed after writing, or moved in);
 * a startup scan takes what arrived while nobody watched, leaving a file that
 * is still open for writing (no read lease can be had on it) to its close. */

#define ASSETS_DIR  "assets"
#define DONE_DIR    "done"
#define FAILED_DIR  "failed"
#define WATCHES_MAX 65536u
#define QUEUE_MAX   65536u /* files found by scans, waiting */

typedef enum level { L_ROOT, L_TENANT, L_TARGET } level;

typedef struct watch {
    int wd;
    level lv;
    char *path;   /* the directory */
    char *tenant; /* L_TENANT, L_TARGET */
    char *target; /* L_TARGET: surgery id or "assets" */
} watch;

struct ingest_spool {
    store *st;
    ingest_spool_options opt;
    ingest_limits lim;
    char *root;
    int ino;
    int stop_fd;
    watch *w;
    size_t nw, capw;
    char **queue; /* paths found by scans */
    size_t nq, capq;
    atomic_uint_fast64_t taken, failed;
};

/* "a/b" in new memory: the caller frees it; NULL when out of memory. */
static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *p = malloc(la + lb + 2);
    if (p) {
        memcpy(p, a, la);
        p[la] = '/';
        memcpy(p + la + 1, b, lb + 1);
    }
    return p;
}

static bool hidden(const char *name)
{
    return name[0] == '.';
}

static const watch *find_watch(const ingest_spool *sp, int wd)
{
    for (size_t i = 0; i < sp->nw; i++)
        if (sp->w[i].wd == wd)
            return &sp->w[i];
    return NULL;
}

/* The watch table owns the copies of path, tenant and target (freed by
 * ingest_spool_close). */
static sl_status add_watch(ingest_spool *sp, const char *path, level lv, const char *tenant,
                           const char *target, sl_error *err)
{
    sl_status rc = SL_OK;
    uint32_t mask = lv == L_TARGET ? IN_CLOSE_WRITE | IN_MOVED_TO | IN_ONLYDIR
                                   : IN_CREATE | IN_MOVED_TO | IN_ONLYDIR;
    int wd = inotify_add_watch(sp->ino, path, mask);
    if (wd < 0) {
        rc = sl_error_set(err, SL_EIO, "cannot watch %s: %s", path, strerror(errno));
        goto out;
    }
    if (find_watch(sp, wd))
        goto out; /* already watched (a rescan) */
    if (sp->nw >= WATCHES_MAX) {
        rc = sl_error_set(err, SL_ETOOLARGE, "more than %u spool folders", WATCHES_MAX);
        goto out;
    }
    if (sp->nw == sp->capw) {
        size_t cap = sp->capw ? sp->capw * 2 : 16;
        watch *w = realloc(sp->w, sizeof *w * cap);
        if (!w) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
            goto out;
        }
        sp->w = w;
        sp->capw = cap;
    }
    watch *w = &sp->w[sp->nw];
    *w = (watch){.wd = wd, .lv = lv};
    w->path = strdup(path);
    w->tenant = tenant ? strdup(tenant) : NULL;
    w->target = target ? strdup(target) : NULL;
    if (!w->path || (tenant && !w->tenant) || (target && !w->target)) {
        free(w->path);
        free(w->tenant);
        free(w->target);
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    sp->nw++;
out:
    return rc;
}

/* The queue owns a copy of path until drain() takes and frees it. */
static sl_status enqueue(ingest_spool *sp, const char *path, sl_error *err)
{
    sl_status rc = SL_OK;
    if (sp->nq >= QUEUE_MAX)
        goto out; /* the rest is taken by the next scan or its own event */
    if (sp->nq == sp->capq) {
        size_t cap = sp->capq ? sp->capq * 2 : 64;
        char **q = realloc(sp->queue, sizeof *q * cap);
        if (!q) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
            goto out;
        }
        sp->queue = q;
        sp->capq = cap;
    }
    if (!(sp->queue[sp->nq] = strdup(path)))
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
    else
        sp->nq++;
out:
    return rc;
}

/* Watches dir at level lv and everything below it, queueing the files that
 * wait in target folders.  Watching first, then listing, misses nothing. */
static sl_status scan(ingest_spool *sp, const char *dir, level lv, const char *tenant,
                      const char *target, sl_error *err)
{
    DIR *d = NULL;
    sl_status rc = add_watch(sp, dir, lv, tenant, target, err);
    if (rc != SL_OK)
        goto out;
    if (!(d = opendir(dir))) {
        if (errno != ENOENT) /* gone meanwhile: nothing to take */
            rc = sl_error_set(err, SL_EIO, "cannot list %s: %s", dir, strerror(errno));
        goto out;
    }
    struct dirent *e;
    while (rc == SL_OK && (e = readdir(d)) != NULL) {
        if (hidden(e->d_name))
            continue;
        char *path = join(dir, e->d_name);
        if (!path) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
            break;
        }
        struct stat st;
        if (lstat(path, &st) == 0) {
            if (lv == L_ROOT && S_ISDIR(st.st_mode))
                rc = scan(sp, path, L_TENANT, e->d_name, NULL, err);
            else if (lv == L_TENANT && S_ISDIR(st.st_mode))
                rc = scan(sp, path, L_TARGET, tenant, e->d_name, err);
            else if (lv == L_TARGET && S_ISREG(st.st_mode))
                rc = enqueue(sp, path, err);
        }
        free(path);
    }
out:
    if (d)
        closedir(d);
    return rc;
}

/* The format a file name asks for; false when it says none we know. */
static bool format_of(const char *name, bool assets, ingest_format *f)
{
    size_t n = strlen(name);
#define ENDS(s) (n > sizeof(s) - 1 && strcmp(name + n - (sizeof(s) - 1), s) == 0)
    if (assets)
        *f = INGEST_FORMAT_ASSETS;
    else if (ENDS(".darknet-stream.json"))
        *f = INGEST_FORMAT_DARKNET_STREAM;
    else if (ENDS(".coco.json"))
        *f = INGEST_FORMAT_COCO;
    else if (ENDS(".tfod.json") || ENDS(".tfod.ndjson"))
        *f = INGEST_FORMAT_TFOD;
    else if (ENDS(".ndjson"))
        *f = INGEST_FORMAT_NDJSON;
    else if (ENDS(".json"))
        *f = INGEST_FORMAT_DARKNET;
    else
        return false;
#undef ENDS
    return true;
}

/* Moves path into sub/ of its folder; returns the new path (malloc'd) or NULL. */
static char *move_into(const char *dir, const char *name, const char *sub)
{
    char *d = join(dir, sub);
    char *to = d ? join(d, name) : NULL;
    char *from = join(dir, name);
    bool ok = d && to && from && (mkdir(d, 0755) == 0 || errno == EEXIST) && rename(from, to) == 0;
    free(d);
    free(from);
    if (!ok) {
        free(to);
        return NULL;
    }
    return to;
}

/* Writes FILE.error.json beside the failed file. */
static void write_error(const char *failed_path, const sl_error *e)
{
    size_t plen = strlen(failed_path) + sizeof ".error.json";
    char *path = malloc(plen);
    if (!path)
        return;
    snprintf(path, plen, "%s.error.json", failed_path);
    char when[25];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    schema_time_format((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, when);
    bson_t doc = BSON_INITIALIZER;
    const char *slash = strrchr(failed_path, '/');
    BSON_APPEND_UTF8(&doc, "file", slash ? slash + 1 : failed_path);
    BSON_APPEND_UTF8(&doc, "status", sl_status_name(e->status));
    BSON_APPEND_UTF8(&doc, "title", sl_status_title(e->status));
    BSON_APPEND_UTF8(&doc, "message", e->message);
    if (e->field[0])
        BSON_APPEND_UTF8(&doc, "field", e->field);
    if (e->offset >= 0)
        BSON_APPEND_INT64(&doc, "offset", e->offset);
    BSON_APPEND_UTF8(&doc, "failed_at", when);
    size_t len = 0;
    char *json = bson_as_relaxed_extended_json(&doc, &len);
    size_t tlen = strlen(path) + 8;
    char *tmp = malloc(tlen);
    if (json && tmp) {
        snprintf(tmp, tlen, "%s.tmp", path);
        FILE *f = fopen(tmp, "w");
        if (f) {
            bool ok = fwrite(json, 1, len, f) == len && fputc('\n', f) != EOF;
            ok = fclose(f) == 0 && ok;
            if (ok)
                rename(tmp, path);
            else
                unlink(tmp);
        }
    }
    free(tmp);
    bson_free(json);
    bson_destroy(&doc);
    free(path);
}

/* True when nobody has the file open for writing (a read lease is granted
 * only then).  Where leases are not supported, the file is taken. */
static bool complete(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return false; /* gone: taken already */
    bool ok = true;
    if (fcntl(fd, F_SETLEASE, F_RDLCK) == 0)
        (void)fcntl(fd, F_SETLEASE, F_UNLCK);
    else if (errno == EAGAIN)
        ok = false; /* a writer has it open: its IN_CLOSE_WRITE will come */
    close(fd);
    return ok;
}

/* Ingests one file of folder w, then moves it. */
static void take(ingest_spool *sp, const watch *w, const char *name)
{
    if (hidden(name))
        return;
    char *path = join(w->path, name);
    struct stat st;
    if (!path || lstat(path, &st) != 0 || !S_ISREG(st.st_mode) || !complete(path)) {
        free(path);
        return;
    }
    bool assets = strcmp(w->target, ASSETS_DIR) == 0;
    ingest_request rq = {.tenant = w->tenant,
                         .surgery = assets ? NULL : w->target,
                         .limits = &sp->lim,
                         .catalogs = sp->opt.catalogs};
    ingest_summary sum;
    sl_error e;
    sl_error_clear(&e);
    sl_status rc;
    if (!format_of(name, assets, &rq.format))
        rc = sl_error_set_at(&e, SL_EUNSUPPORTED, "format", -1,
                             "cannot tell the format from the name: use *.json or "
                             "*.darknet.json (darknet), *.darknet-stream.json, *.coco.json, "
                             "*.tfod.json, *.tfod.ndjson or *.ndjson");
    else
        rc = ingest_file(sp->st, &rq, path, NULL, NULL, &sum, &e);
    /* Store trouble is not the file's fault: leave it to be taken again. */
    if (rc == SL_EIO || rc == SL_EBUSY || rc == SL_ETIMEOUT || rc == SL_ENOMEM) {
        if (sp->opt.on_file)
            sp->opt.on_file(sp->opt.ctx, path, NULL, &e);
        free(path);
        return;
    }
    char *moved = move_into(w->path, name, rc == SL_OK ? DONE_DIR : FAILED_DIR);
    if (rc != SL_OK && moved)
        write_error(moved, &e);
    atomic_fetch_add(&sp->taken, 1);
    if (rc != SL_OK)
        atomic_fetch_add(&sp->failed, 1);
    if (sp->opt.on_file)
        sp->opt.on_file(sp->opt.ctx, moved ? moved : path, rc == SL_OK ? &sum : NULL,
                        rc == SL_OK ? NULL : &e);
    free(moved);
    free(path);
}

/* Takes the queued files. */
static void drain(ingest_spool *sp)
{
    for (size_t i = 0; i < sp->nq; i++) {
        char *path = sp->queue[i];
        char *slash = strrchr(path, '/');
        *slash = '\0';
        for (size_t k = 0; k < sp->nw; k++)
            if (sp->w[k].lv == L_TARGET && strcmp(sp->w[k].path, path) == 0) {
                take(sp, &sp->w[k], slash + 1);
                break;
            }
        free(path);
    }
    sp->nq = 0;
}

static void on_event(ingest_spool *sp, const struct inotify_event *ev)
{
    const watch *w = find_watch(sp, ev->wd);
    if (!w || ev->len == 0 || hidden(ev->name))
        return;
    if (w->lv == L_TARGET) {
        if (!(ev->mask & IN_ISDIR))
            take(sp, w, ev->name);
        return;
    }
    if (!(ev->mask & IN_ISDIR))
        return;
    char *path = join(w->path, ev->name);
    sl_error e;
    sl_error_clear(&e);
    /* Copy what w points to: scan() may move the watch table. */
    char *tenant = w->lv == L_ROOT ? strdup(ev->name) : strdup(w->tenant);
    if (path && tenant)
        (void)scan(sp, path, w->lv == L_ROOT ? L_TENANT : L_TARGET, tenant,
                   w->lv == L_ROOT ? NULL : ev->name, &e);
    free(tenant);
    free(path);
    drain(sp);
}

sl_status ingest_spool_open(store *s, const char *dir, const ingest_spool_options *opt,
                            ingest_spool **out, sl_error *err)
{
    sl_status rc = SL_OK;
    ingest_spool *sp = calloc(1, sizeof *sp);
    if (!sp) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    sp->ino = sp->stop_fd = -1;
    sp->st = s;
    if (opt)
        sp->opt = *opt;
    if (opt && opt->limits)
        sp->lim = *opt->limits;
    else
        ingest_limits_default(&sp->lim);
    sp->root = strdup(dir);
    if (!sp->root) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        rc = sl_error_set(err, SL_EIO, "cannot create spool folder %s: %s", dir, strerror(errno));
        goto out;
    }
    sp->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    sp->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (sp->ino < 0 || sp->stop_fd < 0) {
        rc = sl_error_set(err, SL_EIO, "cannot watch %s: %s", dir, strerror(errno));
        goto out;
    }
    rc = scan(sp, dir, L_ROOT, NULL, NULL, err);
out:
    if (rc != SL_OK)
        ingest_spool_close(&sp);
    else
        *out = sp;
    return rc;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

sl_status ingest_spool_run(ingest_spool *sp, int timeout_ms, sl_error *err)
{
    sl_status rc = SL_OK;
    int64_t until = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    bool stop = false;
    drain(sp);
    _Alignas(struct inotify_event) char buf[64 * 1024];
    while (!stop && rc == SL_OK) {
        /* timeout 0 still looks once at what is queued */
        int wait = -1;
        if (until >= 0) {
            int64_t left = until - now_ms();
            wait = left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
        }
        struct pollfd p[2] = {{.fd = sp->ino, .events = POLLIN},
                              {.fd = sp->stop_fd, .events = POLLIN}};
        int n = poll(p, 2, wait);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = sl_error_set(err, SL_EIO, "spool: poll failed: %s", strerror(errno));
            break;
        }
        stop = n == 0 && until >= 0; /* timed out */
        if (p[1].revents & POLLIN) {
            uint64_t v;
            (void)!read(sp->stop_fd, &v, sizeof v);
            stop = true;
        }
        if (stop || !(p[0].revents & POLLIN))
            continue;
        ssize_t got = read(sp->ino, buf, sizeof buf);
        if (got < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (got < 0) {
            rc = sl_error_set(err, SL_EIO, "spool: reading events failed: %s", strerror(errno));
            break;
        }
        bool overflow = false;
        for (char *at = buf; at < buf + got;) {
            const struct inotify_event *ev = (const struct inotify_event *)at;
            if (ev->mask & IN_Q_OVERFLOW)
                overflow = true;
            else
                on_event(sp, ev);
            at += sizeof *ev + ev->len;
        }
        if (overflow) { /* events were lost: look at everything again */
            sl_error e;
            sl_error_clear(&e);
            (void)scan(sp, sp->root, L_ROOT, NULL, NULL, &e);
            drain(sp);
        }
    }
    return rc;
}

void ingest_spool_stop(ingest_spool *sp)
{
    uint64_t one = 1;
    (void)!write(sp->stop_fd, &one, sizeof one);
}

uint64_t ingest_spool_taken(const ingest_spool *sp)
{
    return atomic_load(&((ingest_spool *)sp)->taken);
}

uint64_t ingest_spool_failed(const ingest_spool *sp)
{
    return atomic_load(&((ingest_spool *)sp)->failed);
}

void ingest_spool_close(ingest_spool **spp)
{
    if (!spp || !*spp)
        return;
    ingest_spool *sp = *spp;
    for (size_t i = 0; i < sp->nw; i++) {
        free(sp->w[i].path);
        free(sp->w[i].tenant);
        free(sp->w[i].target);
    }
    free(sp->w);
    for (size_t i = 0; i < sp->nq; i++)
        free(sp->queue[i]);
    free(sp->queue);
    if (sp->ino >= 0)
        close(sp->ino);
    if (sp->stop_fd >= 0)
        close(sp->stop_fd);
    free(sp->root);
    free(sp);
    *spp = NULL;
}
