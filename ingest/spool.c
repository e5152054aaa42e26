/* spool.c -- the spool folder: files dropped into DIR/<tenant>/<surgery>/ or
 * DIR/<tenant>/assets/ are ingested once each, then moved to done/ or failed/.
 *
 * Whoever may write DIR is trusted with DIR only (docs/formats.md, "Who may
 * write the spool folder"): they can put any kind of entry there and rename
 * or replace it at any moment, also while the watcher looks at it.  So
 * nothing here reads, moves or creates through a path string.  The root is
 * opened once; every other folder is opened from it one name at a time with
 * O_NOFOLLOW|O_DIRECTORY and checked (device and inode) to be the very folder
 * watched; a file is opened with O_NOFOLLOW|O_NONBLOCK relative to its
 * folder, checked with fstat (a regular file, one link, the configured
 * owner) and read from that descriptor; done/ and failed/ are opened like
 * folders, files move with renameat between descriptors, and the error file
 * is created with O_CREAT|O_EXCL|O_NOFOLLOW.  Path strings are built only
 * for inotify, which takes nothing else (add_inotify), and for messages.
 * The operations on descriptors are in spool_fs.c. */
#include "ingest_int.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <stdarg.h>
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

/* One mask for every level, so re-adding a watch (a folder renamed to
 * another level, a rescan) never narrows it.  IN_CREATE in a target folder
 * makes links and FIFOs, which are never closed after writing, seen at once;
 * a regular file is taken at its close or move. */
#define WATCH_MASK (IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ONLYDIR)
/* O_NONBLOCK: a FIFO swapped in after the check must not hold the watcher
 * waiting for a writer; O_NOCTTY: nor may a terminal become ours. */
#define FILE_FLAGS (O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)

typedef enum level { L_ROOT, L_TENANT, L_TARGET } level;

/* Which file: what fstat says of it. */
typedef struct fid {
    dev_t dev;
    ino_t ino;
} fid;

typedef struct watch {
    int wd;
    level lv;
    fid id;        /* the folder watched */
    fid tenant_id; /* L_TARGET: its tenant folder */
    char *rel;     /* below the root: "" (L_ROOT), "t" or "t/x" */
    char *tenant;  /* L_TENANT, L_TARGET */
    char *target;  /* L_TARGET: surgery id or "assets" */
} watch;

typedef struct queued {
    int wd;     /* the target folder */
    char *name; /* an entry a scan found there */
} queued;

struct ingest_spool {
    store *st;
    ingest_spool_options opt;
    ingest_limits lim;
    uid_t owner; /* whose files are taken, unless opt.owner is ANY */
    char *root;  /* as given: messages, and watches by path without /proc */
    int root_fd;
    fid root_id;
    int ino;
    int stop_fd;
    watch *w;
    size_t nw, capw;
    queued *queue;
    size_t nq, capq;
    atomic_uint_fast64_t taken, failed;
};

/* printf into new memory: the caller frees it; NULL when out of memory. */
char *ingest__spool_fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(NULL, 0, f, ap);
    va_end(ap);
    char *p = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (p) {
        va_start(ap, f);
        vsnprintf(p, (size_t)n + 1, f, ap);
        va_end(ap);
    }
    return p;
}

/* "rel/name" (or "name" below the root) in new memory, as ingest__spool_fmt(). */
static char *below(const char *rel, const char *name)
{
    return rel[0] ? ingest__spool_fmt("%s/%s", rel, name) : strdup(name);
}

static bool hidden(const char *name)
{
    return name[0] == '.';
}

/* done/ and failed/ are the spool's own, never files to take. */
static bool reserved(const char *name)
{
    return !strcmp(name, DONE_DIR) || !strcmp(name, FAILED_DIR);
}

static bool same(const fid *a, const struct stat *s)
{
    return a->dev == s->st_dev && a->ino == s->st_ino;
}

static fid fid_of(const struct stat *s)
{
    return (fid){.dev = s->st_dev, .ino = s->st_ino};
}

/* Tells the caller about rel (below the root). */
static void report(ingest_spool *sp, const char *rel, const ingest_summary *sum, const sl_error *e)
{
    if (!sp->opt.on_file)
        return;
    char *path = rel[0] ? ingest__spool_fmt("%s/%s", sp->root, rel) : strdup(sp->root);
    sp->opt.on_file(sp->opt.ctx, path ? path : rel, sum, e);
    free(path);
}

/* The tests' hook: rel is about to be opened. */
static void before_open(ingest_spool *sp, const char *rel)
{
    if (sp->opt.before_open)
        sp->opt.before_open(sp->opt.ctx, rel);
}

/* ---------------------------------------------------------------------------
 * Folders: opened one name at a time, never through a link.
 * ------------------------------------------------------------------------- */

static const watch *find_watch(const ingest_spool *sp, int wd)
{
    for (size_t i = 0; i < sp->nw; i++)
        if (sp->w[i].wd == wd)
            return &sp->w[i];
    return NULL;
}

/* Opens the folder of w from the root, one name at a time, following no
 * link, and checks that each step is the folder watched: one swapped for a
 * link, or for another folder, since the watch was set is refused.  On
 * success *out is the caller's to close; on failure *at is the folder at
 * fault (a string of w). */
static sl_status open_watched(ingest_spool *sp, const watch *w, int *out, const char **at,
                              sl_error *err)
{
    sl_status rc = SL_OK;
    int t = -1, fd = -1;
    struct stat st;
    before_open(sp, w->rel);
    *at = w->rel;
    if (w->lv == L_ROOT) {
        if ((fd = fcntl(sp->root_fd, F_DUPFD_CLOEXEC, 0)) < 0)
            rc = sl_error_set(err, SL_EIO, "cannot open %s: %s", sp->root, strerror(errno));
        goto out;
    }
    *at = w->tenant;
    if ((rc = ingest__spool_open_folder(sp->root_fd, w->tenant, &t, &st, err)) != SL_OK)
        goto out;
    if (!same(w->lv == L_TENANT ? &w->id : &w->tenant_id, &st)) {
        rc = sl_error_set(err, SL_EFORBIDDEN,
                          "no longer the folder watched (replaced or moved): not followed");
        goto out;
    }
    if (w->lv == L_TENANT) {
        fd = t;
        t = -1;
        goto out;
    }
    *at = w->rel;
    if ((rc = ingest__spool_open_folder(t, w->target, &fd, &st, err)) != SL_OK)
        goto out;
    if (!same(&w->id, &st)) {
        rc = sl_error_set(err, SL_EFORBIDDEN,
                          "no longer the folder watched (replaced or moved): not followed");
        goto out;
    }
out:
    if (t >= 0)
        close(t);
    if (rc != SL_OK && fd >= 0)
        close(fd);
    else if (rc == SL_OK)
        *out = fd;
    return rc;
}

/* ---------------------------------------------------------------------------
 * Watches.
 * ------------------------------------------------------------------------- */

/* Forgets watch wd (and removes it from inotify when rm). */
static void forget_watch(ingest_spool *sp, int wd, bool rm)
{
    for (size_t i = 0; i < sp->nw; i++) {
        if (sp->w[i].wd != wd)
            continue;
        if (rm)
            (void)inotify_rm_watch(sp->ino, wd);
        free(sp->w[i].rel);
        free(sp->w[i].tenant);
        free(sp->w[i].target);
        sp->w[i] = sp->w[--sp->nw];
        return;
    }
}

/* inotify takes a path.  /proc/self/fd/N names the very folder open at fd,
 * whatever happens to its name meanwhile.  Without /proc, the watch is set
 * by path, not following a final link, then checked to be on fd's folder
 * (device and inode by the same path); a mismatch drops it (ESTALE).  A
 * watch that a swap-and-swap-back still put on another folder could only
 * bring events: every file is opened through checked descriptors
 * (open_watched). */
static int add_inotify(ingest_spool *sp, int fd, const fid *id, const char *rel)
{
    char proc[48];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    int wd = inotify_add_watch(sp->ino, proc, WATCH_MASK);
    if (wd >= 0 || errno != ENOENT)
        return wd;
    char *path = rel[0] ? ingest__spool_fmt("%s/%s", sp->root, rel) : strdup(sp->root);
    if (!path) {
        errno = ENOMEM;
        return -1;
    }
    wd = inotify_add_watch(sp->ino, path, WATCH_MASK | IN_DONT_FOLLOW);
    struct stat st;
    if (wd >= 0 && (lstat(path, &st) != 0 || !same(id, &st))) {
        if (!find_watch(sp, wd)) /* not one of ours for another name */
            (void)inotify_rm_watch(sp->ino, wd);
        wd = -1;
        errno = ESTALE;
    }
    free(path);
    return wd;
}

/* Watches the folder open at fd.  The watch table owns copies of rel,
 * tenant and target (freed by forget_watch and ingest_spool_close); a
 * folder already watched (a rescan, or renamed) gets its entry updated. */
static sl_status add_watch(ingest_spool *sp, int fd, const fid *id, const fid *tenant_id, level lv,
                           const char *rel, const char *tenant, const char *target, int *wd_out,
                           sl_error *err)
{
    sl_status rc = SL_OK;
    char *r = strdup(rel), *t = tenant ? strdup(tenant) : NULL, *g = target ? strdup(target) : NULL;
    if (!r || (tenant && !t) || (target && !g)) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    int wd = add_inotify(sp, fd, id, rel);
    if (wd < 0) {
        if (errno == ESTALE)
            rc = sl_error_set(err, SL_EFORBIDDEN, "changed while a watch was set: not followed");
        else if (errno == ENOSPC) /* the watcher's limit, not this folder's fault */
            rc = sl_error_set(err, SL_ETOOLARGE,
                              "cannot watch %s/%s: no more inotify watches (raise "
                              "fs.inotify.max_user_watches)",
                              sp->root, rel);
        else
            rc =
                sl_error_set(err, SL_EIO, "cannot watch %s/%s: %s", sp->root, rel, strerror(errno));
        goto out;
    }
    watch *w = (watch *)find_watch(sp, wd);
    if (!w) {
        if (sp->nw >= WATCHES_MAX) {
            (void)inotify_rm_watch(sp->ino, wd);
            rc = sl_error_set(err, SL_ETOOLARGE, "more than %u spool folders", WATCHES_MAX);
            goto out;
        }
        if (sp->nw == sp->capw) {
            size_t cap = sp->capw ? sp->capw * 2 : 16;
            watch *nw = realloc(sp->w, sizeof *nw * cap);
            if (!nw) {
                (void)inotify_rm_watch(sp->ino, wd);
                rc = sl_error_set(err, SL_ENOMEM, "out of memory");
                goto out;
            }
            sp->w = nw;
            sp->capw = cap;
        }
        w = &sp->w[sp->nw++];
    } else {
        free(w->rel);
        free(w->tenant);
        free(w->target);
    }
    *w = (watch){.wd = wd,
                 .lv = lv,
                 .id = *id,
                 .tenant_id = tenant_id ? *tenant_id : (fid){0},
                 .rel = r,
                 .tenant = t,
                 .target = g};
    r = t = g = NULL;
    *wd_out = wd;
out:
    free(r);
    free(t);
    free(g);
    return rc;
}

/* The queue owns a copy of name until drain() takes and frees it. */
static sl_status enqueue(ingest_spool *sp, int wd, const char *name, sl_error *err)
{
    sl_status rc = SL_OK;
    if (sp->nq >= QUEUE_MAX)
        goto out; /* the rest is taken by the next scan or its own event */
    if (sp->nq == sp->capq) {
        size_t cap = sp->capq ? sp->capq * 2 : 64;
        queued *q = realloc(sp->queue, sizeof *q * cap);
        if (!q) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
            goto out;
        }
        sp->queue = q;
        sp->capq = cap;
    }
    if (!(sp->queue[sp->nq].name = strdup(name)))
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
    else
        sp->queue[sp->nq++].wd = wd;
out:
    return rc;
}

static sl_status enter(ingest_spool *sp, int pfd, const fid *pid, level plv, const char *prel,
                       const char *tenant, const char *name, sl_error *err);

/* Watches the folder open at fd (level lv, rel below the root) and
 * everything below it, queueing what waits in a target folder.  Watching
 * first, then listing, misses nothing. */
static sl_status scan(ingest_spool *sp, int fd, const fid *id, const fid *tenant_id, level lv,
                      const char *rel, const char *tenant, const char *target, sl_error *err)
{
    DIR *d = NULL;
    int wd = -1;
    sl_status rc = add_watch(sp, fd, id, tenant_id, lv, rel, tenant, target, &wd, err);
    if (rc != SL_OK)
        goto out;
    int lfd = openat(fd, ".", INGEST__SPOOL_DIR_FLAGS); /* its own offset */
    if (lfd < 0 || !(d = fdopendir(lfd))) {
        rc = sl_error_set(err, SL_EIO, "cannot list %s/%s: %s", sp->root, rel, strerror(errno));
        if (lfd >= 0)
            close(lfd);
        goto out;
    }
    struct dirent *e;
    while (rc == SL_OK && (e = readdir(d)) != NULL) {
        if (hidden(e->d_name))
            continue;
        if (lv == L_TARGET) { /* take() looks at what it is */
            if (!reserved(e->d_name) && e->d_type != DT_DIR)
                rc = enqueue(sp, wd, e->d_name, err);
        } else {
            rc = enter(sp, fd, id, lv, rel, lv == L_ROOT ? e->d_name : tenant, e->d_name, err);
        }
    }
out:
    if (d)
        closedir(d);
    return rc;
}

/* name appeared in (or was listed from) the folder at pfd, of level plv:
 * a folder is watched and scanned; a link, or a folder swapped for one
 * before it is opened, is reported and never followed; anything else at
 * these levels is not the spool's and is left alone.  A folder that cannot
 * be opened is reported and skipped: one bad folder stops no other. */
static sl_status enter(ingest_spool *sp, int pfd, const fid *pid, level plv, const char *prel,
                       const char *tenant, const char *name, sl_error *err)
{
    sl_status rc = SL_OK;
    int fd = -1;
    struct stat st;
    sl_error e;
    sl_error_clear(&e);
    assert(plv != L_TARGET);
    char *rel = below(prel, name);
    if (!rel) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !(S_ISDIR(st.st_mode) || S_ISLNK(st.st_mode)))
        goto out;
    before_open(sp, rel);
    sl_status orc = ingest__spool_open_folder(pfd, name, &fd, &st, &e);
    if (orc == SL_ENOTFOUND)
        goto out;
    if (orc != SL_OK) {
        report(sp, rel, NULL, &e);
        goto out;
    }
    fid id = fid_of(&st);
    rc = scan(sp, fd, &id, plv == L_TENANT ? pid : NULL, plv == L_ROOT ? L_TENANT : L_TARGET, rel,
              tenant, plv == L_ROOT ? NULL : name, &e);
    if (rc == SL_EFORBIDDEN || rc == SL_EIO) { /* this folder's trouble, not the spool's */
        report(sp, rel, NULL, &e);
        rc = SL_OK;
    } else if (rc != SL_OK) {
        *err = e;
    }
out:
    if (fd >= 0)
        close(fd);
    free(rel);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Files.
 * ------------------------------------------------------------------------- */

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

/* SL_OK when st is a file the spool takes, else SL_EFORBIDDEN saying why. */
static sl_status refusal(const ingest_spool *sp, const struct stat *st, sl_error *err)
{
    sl_status rc = SL_OK;
    if (S_ISLNK(st->st_mode))
        rc = sl_error_set(err, SL_EFORBIDDEN,
                          "refused, not read: a symbolic link (the spool takes regular files "
                          "only and follows no link)");
    else if (!S_ISREG(st->st_mode))
        rc = sl_error_set(err, SL_EFORBIDDEN,
                          "refused, not read: %s, not a regular file (the spool takes regular "
                          "files only)",
                          ingest__spool_kind_name(st->st_mode));
    else if (st->st_nlink != 1)
        rc = sl_error_set(err, SL_EFORBIDDEN,
                          "refused, not read: a hard link (%lu names; the spool takes only a "
                          "file whose one name is in its folder)",
                          (unsigned long)st->st_nlink);
    else if (sp->opt.owner != INGEST_SPOOL_OWNER_ANY && st->st_uid != sp->owner)
        rc = sl_error_set(err, SL_EFORBIDDEN,
                          "refused, not read: owned by uid %lu; the spool takes files owned by "
                          "uid %lu only (--spool-owner)",
                          (unsigned long)st->st_uid, (unsigned long)sp->owner);
    return rc;
}

/* Adds " (then)" to e's message, cut to fit. */
static void append(sl_error *e, const char *then)
{
    size_t used = strnlen(e->message, sizeof e->message - 1), room = sizeof e->message - used;
    int n = snprintf(e->message + used, room, " (%s)", then);
    if (n >= (int)room && room > 1) /* cut: keep the closing parenthesis */
        e->message[sizeof e->message - 2] = ')';
}

/* Takes name from the target folder of watch wd: checks what it is without
 * opening it, opens it without following a link, checks what it opened,
 * ingests it from that descriptor, then moves it.  Anything but a complete
 * regular file with one link and the right owner is refused unread and
 * goes to failed/.  created: the name was just made (IN_CREATE); only what
 * will never be closed after writing (a link, a FIFO) is taken then. */
static void take(ingest_spool *sp, int wd, const char *name, bool created)
{
    const watch *w = find_watch(sp, wd);
    if (!w || w->lv != L_TARGET || hidden(name) || reserved(name))
        return;
    sl_status rc = SL_OK, mrc = SL_OK;
    int dfd = -1, fd = -1, sfd = -1;
    bool drop = false;
    char *rel = below(w->rel, name), *moved = NULL;
    const char *at = NULL;
    struct stat st, now;
    ingest_summary sum;
    sl_error e, me;
    sl_error_clear(&e);
    sl_error_clear(&me);
    if (!rel)
        goto out;
    if ((rc = open_watched(sp, w, &dfd, &at, &e)) != SL_OK) {
        /* not the folder watched any more: forget it (a real folder now
         * there has its own event) */
        drop = rc == SL_ENOTFOUND || rc == SL_EFORBIDDEN;
        if (rc != SL_ENOTFOUND)
            report(sp, at, NULL, &e);
        goto out;
    }
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || S_ISDIR(st.st_mode))
        goto out; /* gone (taken already), or a folder: nothing to take */
    if (created && S_ISREG(st.st_mode))
        goto out; /* its close or move in will come */
    if ((rc = refusal(sp, &st, &e)) == SL_OK) {
        before_open(sp, rel);
        fd = openat(dfd, name, FILE_FLAGS);
        if (fd < 0 && errno == ENOENT)
            goto out;
        if (fd < 0 && errno == ELOOP) /* swapped for a link since the look */
            rc = refusal(sp, &(struct stat){.st_mode = S_IFLNK}, &e);
        else if (fd < 0)
            rc = sl_error_set(&e, SL_EIO, "cannot open: %s", strerror(errno));
        else if (fstat(fd, &st) != 0)
            rc = sl_error_set(&e, SL_EIO, "cannot stat: %s", strerror(errno));
        else if (st.st_nlink == 0)
            goto out; /* removed since: taken already */
        else
            rc = refusal(sp, &st, &e);
        if (rc == SL_OK && !ingest__spool_complete(fd))
            goto out;
        if (rc == SL_OK) /* a regular file: reads never wait, but be plain */
            (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    }
    if (rc == SL_OK) {
        bool assets = strcmp(w->target, ASSETS_DIR) == 0;
        ingest_request rq = {.tenant = w->tenant,
                             .surgery = assets ? NULL : w->target,
                             .limits = &sp->lim,
                             .catalogs = sp->opt.catalogs};
        if (!format_of(name, assets, &rq.format))
            rc = sl_error_set_at(&e, SL_EUNSUPPORTED, "format", -1,
                                 "cannot tell the format from the name: use *.json or "
                                 "*.darknet.json (darknet), *.darknet-stream.json, *.coco.json, "
                                 "*.tfod.json, *.tfod.ndjson or *.ndjson");
        else
            rc = ingest_fd(sp->st, &rq, fd, NULL, NULL, &sum, &e);
    }
    /* Store trouble (or a file the watcher may not open) is not the file's
     * fault: leave it to be taken again. */
    if (rc == SL_EIO || rc == SL_EBUSY || rc == SL_ETIMEOUT || rc == SL_ENOMEM) {
        report(sp, rel, NULL, &e);
        goto out;
    }
    /* Move the name only while it is still what was read; a file put in its
     * place meanwhile is left to its own event. */
    if (fd >= 0 && (fstatat(dfd, name, &now, AT_SYMLINK_NOFOLLOW) != 0 || now.st_dev != st.st_dev ||
                    now.st_ino != st.st_ino))
        mrc = sl_error_set(&me, SL_ECONFLICT, "it was replaced while being taken");
    const char *sub = rc == SL_OK ? DONE_DIR : FAILED_DIR;
    if (mrc == SL_OK && (mrc = ingest__spool_move_into(dfd, name, sub, &sfd, &me)) == SL_OK)
        moved = ingest__spool_fmt("%s/%s/%s", w->rel, sub, name);
    char why[600];
    if (rc != SL_OK && mrc == SL_OK && !ingest__spool_write_error(sfd, name, &e, why, sizeof why))
        append(&e, why);
    if (mrc != SL_OK) {
        snprintf(why, sizeof why, "%snot moved to %s/: %s", rc == SL_OK ? "stored, but " : "", sub,
                 me.message);
        if (rc == SL_OK)
            sl_error_set(&e, me.status, "%s", why);
        else
            append(&e, why);
    }
    atomic_fetch_add(&sp->taken, 1);
    if (rc != SL_OK)
        atomic_fetch_add(&sp->failed, 1);
    report(sp, moved ? moved : rel, rc == SL_OK ? &sum : NULL,
           rc != SL_OK || mrc != SL_OK ? &e : NULL);
out:
    if (sfd >= 0)
        close(sfd);
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    free(moved);
    free(rel);
    if (drop)
        forget_watch(sp, wd, true);
}

/* Takes the queued files. */
static void drain(ingest_spool *sp)
{
    for (size_t i = 0; i < sp->nq; i++) {
        take(sp, sp->queue[i].wd, sp->queue[i].name, false);
        free(sp->queue[i].name);
    }
    sp->nq = 0;
}

static void on_event(ingest_spool *sp, const struct inotify_event *ev)
{
    if (ev->mask & IN_IGNORED) { /* the folder is gone (or we removed the watch) */
        forget_watch(sp, ev->wd, false);
        return;
    }
    const watch *w = find_watch(sp, ev->wd);
    if (!w || ev->len == 0 || hidden(ev->name))
        return;
    if (w->lv == L_TARGET) {
        if (!(ev->mask & IN_ISDIR))
            take(sp, ev->wd, ev->name, !(ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO)));
        return;
    }
    /* Something appeared at the root or in a tenant folder. */
    int pfd = -1;
    const char *at = NULL;
    sl_error e;
    sl_error_clear(&e);
    sl_status rc = open_watched(sp, w, &pfd, &at, &e);
    if (rc != SL_OK) {
        if (rc != SL_ENOTFOUND)
            report(sp, at, NULL, &e);
        if (rc == SL_ENOTFOUND || rc == SL_EFORBIDDEN) /* not the folder watched any more */
            forget_watch(sp, ev->wd, true);
        return;
    }
    /* Copy what w points to: scanning may move the watch table. */
    level lv = w->lv;
    fid id = w->id;
    char *rel = strdup(w->rel);
    char *tenant = lv == L_ROOT ? strdup(ev->name) : strdup(w->tenant);
    if (rel && tenant && enter(sp, pfd, &id, lv, rel, tenant, ev->name, &e) != SL_OK)
        report(sp, rel, NULL, &e); /* out of memory, or too many folders */
    close(pfd);
    free(tenant);
    free(rel);
    drain(sp);
}

sl_status ingest_spool_owner_parse(const char *s, ingest_spool_options *o, sl_error *err)
{
    sl_status rc = SL_OK;
    if (!strcmp(s, "any")) {
        o->owner = INGEST_SPOOL_OWNER_ANY;
        goto out;
    }
    if (s[0] >= '0' && s[0] <= '9') {
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || *end || v >= UINT32_MAX) {
            rc = sl_error_set_at(err, SL_EINVAL, "spool owner", -1,
                                 "spool owner \"%s\" is not a uid, a user name or any", s);
            goto out;
        }
        o->owner = INGEST_SPOOL_OWNER_UID;
        o->owner_uid = (uint32_t)v;
        goto out;
    }
    struct passwd pw, *found = NULL;
    char buf[4096];
    if (getpwnam_r(s, &pw, buf, sizeof buf, &found) != 0 || !found) {
        rc =
            sl_error_set_at(err, SL_EINVAL, "spool owner", -1,
                            "spool owner \"%s\": no such user (give a user name, a uid or any)", s);
        goto out;
    }
    o->owner = INGEST_SPOOL_OWNER_UID;
    o->owner_uid = (uint32_t)found->pw_uid;
out:
    return rc;
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
    sp->ino = sp->stop_fd = sp->root_fd = -1;
    sp->st = s;
    if (opt)
        sp->opt = *opt;
    if (opt && opt->limits)
        sp->lim = *opt->limits;
    else
        ingest_limits_default(&sp->lim);
    sp->owner = sp->opt.owner == INGEST_SPOOL_OWNER_UID ? (uid_t)sp->opt.owner_uid : geteuid();
    sp->root = strdup(dir);
    if (!sp->root) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        rc = sl_error_set(err, SL_EIO, "cannot create spool folder %s: %s", dir, strerror(errno));
        goto out;
    }
    struct stat st;
    if ((sp->root_fd = open(dir, INGEST__SPOOL_DIR_FLAGS)) < 0) {
        rc = errno == ELOOP || errno == ENOTDIR
                 ? sl_error_set(err, SL_EINVAL,
                                "spool folder %s is a symbolic link or not a folder: name the "
                                "folder itself (the spool follows no link)",
                                dir)
                 : sl_error_set(err, SL_EIO, "cannot open spool folder %s: %s", dir,
                                strerror(errno));
        goto out;
    }
    if (fstat(sp->root_fd, &st) != 0) {
        rc = sl_error_set(err, SL_EIO, "cannot stat spool folder %s: %s", dir, strerror(errno));
        goto out;
    }
    sp->root_id = fid_of(&st);
    sp->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    sp->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (sp->ino < 0 || sp->stop_fd < 0) {
        rc = sl_error_set(err, SL_EIO, "cannot watch %s: %s", dir, strerror(errno));
        goto out;
    }
    rc = scan(sp, sp->root_fd, &sp->root_id, NULL, L_ROOT, "", NULL, NULL, err);
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
            if (scan(sp, sp->root_fd, &sp->root_id, NULL, L_ROOT, "", NULL, NULL, &e) != SL_OK)
                report(sp, "", NULL, &e);
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
        free(sp->w[i].rel);
        free(sp->w[i].tenant);
        free(sp->w[i].target);
    }
    free(sp->w);
    for (size_t i = 0; i < sp->nq; i++)
        free(sp->queue[i].name);
    free(sp->queue);
    if (sp->ino >= 0)
        close(sp->ino);
    if (sp->stop_fd >= 0)
        close(sp->stop_fd);
    if (sp->root_fd >= 0)
        close(sp->root_fd);
    free(sp->root);
    free(sp);
    *spp = NULL;
}
