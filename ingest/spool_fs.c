/* spool_fs.c -- what the spool folder does at the level of descriptors:
 * folders opened one name at a time without following a link, files moved
 * between folder descriptors, the error file created exclusively. */
#include "ingest_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *ingest__spool_kind_name(mode_t m)
{
    return S_ISLNK(m)                 ? "a symbolic link"
           : S_ISDIR(m)               ? "a folder"
           : S_ISREG(m)               ? "a regular file"
           : S_ISFIFO(m)              ? "a FIFO"
           : S_ISSOCK(m)              ? "a socket"
           : S_ISCHR(m) || S_ISBLK(m) ? "a device"
                                      : "of an unknown type";
}

/* ---------------------------------------------------------------------------
 * Folders: opened one name at a time, never through a link.
 * ------------------------------------------------------------------------- */

/* Opens the folder name in the folder at dirfd without following a link;
 * *st gets what it is.  SL_ENOTFOUND when gone, SL_EFORBIDDEN when it is a
 * link or anything but a folder, SL_EIO otherwise; the message does not name
 * it (the caller does).  On success *out is the caller's to close. */
sl_status ingest__spool_open_folder(int dirfd, const char *name, int *out, struct stat *st,
                                    sl_error *err)
{
    sl_status rc = SL_OK;
    int fd = openat(dirfd, name, INGEST__SPOOL_DIR_FLAGS);
    if (fd < 0) {
        int no = errno;
        struct stat ls;
        if (no == ENOENT)
            rc = sl_error_set(err, SL_ENOTFOUND, "gone");
        else if (no == ELOOP || no == ENOTDIR)
            rc = sl_error_set(err, SL_EFORBIDDEN,
                              "%s, not a folder: not followed (the spool follows no link)",
                              fstatat(dirfd, name, &ls, AT_SYMLINK_NOFOLLOW) == 0
                                  ? ingest__spool_kind_name(ls.st_mode)
                                  : "a symbolic link");
        else
            rc = sl_error_set(err, SL_EIO, "cannot open the folder: %s", strerror(no));
        goto out;
    }
    if (fstat(fd, st) != 0) {
        rc = sl_error_set(err, SL_EIO, "cannot stat the folder: %s", strerror(errno));
        goto out;
    }
out:
    if (rc != SL_OK && fd >= 0)
        close(fd);
    else if (rc == SL_OK)
        *out = fd;
    return rc;
}

/* Moves name from the folder at dfd into its sub/ (made if missing).  sub/
 * must be a real folder: a link or anything else there is refused
 * (SL_EFORBIDDEN) and nothing moves.  On success *sub_fd is sub/ open, the
 * caller's to close.  What sits at sub/name is replaced (a file sent again),
 * never followed. */
sl_status ingest__spool_move_into(int dfd, const char *name, const char *sub, int *sub_fd,
                                  sl_error *err)
{
    sl_status rc = SL_OK;
    int sfd = -1;
    struct stat st;
    if (mkdirat(dfd, sub, 0755) != 0 && errno != EEXIST) {
        rc = sl_error_set(err, SL_EIO, "cannot make %s/: %s", sub, strerror(errno));
        goto out;
    }
    if ((rc = ingest__spool_open_folder(dfd, sub, &sfd, &st, err)) != SL_OK) {
        sl_error_prefix(err, "%s", sub);
        goto out;
    }
    if (renameat(dfd, name, sfd, name) != 0) {
        rc = sl_error_set(err, errno == ENOENT ? SL_ENOTFOUND : SL_EIO, "cannot move it to %s/: %s",
                          sub, strerror(errno));
        goto out;
    }
out:
    if (rc != SL_OK && sfd >= 0)
        close(sfd);
    else if (rc == SL_OK)
        *sub_fd = sfd;
    return rc;
}

/* ---------------------------------------------------------------------------
 * Files.
 * ------------------------------------------------------------------------- */

/* Writes all of data[0..len) to fd. */
static bool write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        data += n;
        len -= (size_t)n;
    }
    return true;
}

/* Writes NAME.error.json in the folder at dfd (failed/).  The temporary
 * file is created with O_CREAT|O_EXCL|O_NOFOLLOW: a name already there (a
 * crash's leftover, or a link planted to make the watcher write elsewhere)
 * is never opened but removed -- it is an entry of failed/, the spool's own
 * -- and made anew; renameat then replaces whatever is at NAME.error.json
 * without following it.  On failure why says what went wrong. */
bool ingest__spool_write_error(int dfd, const char *name, const sl_error *e, char *why, size_t cap)
{
    bool ok = false;
    int fd = -1;
    char when[25];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    schema_time_format((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, when);
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "file", name);
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
    char *final = ingest__spool_fmt("%s.error.json", name),
         *tmp = ingest__spool_fmt("%s.error.json.tmp", name);
    if (!json || !final || !tmp) {
        snprintf(why, cap, "out of memory");
        goto out;
    }
    int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC;
    fd = openat(dfd, tmp, flags, 0644);
    if (fd < 0 && errno == EEXIST && unlinkat(dfd, tmp, 0) == 0)
        fd = openat(dfd, tmp, flags, 0644);
    if (fd < 0) {
        snprintf(why, cap, "cannot create failed/%s: %s", tmp, strerror(errno));
        goto out;
    }
    bool wrote = write_all(fd, json, len) && write_all(fd, "\n", 1);
    int no = wrote ? 0 : errno;
    if (close(fd) != 0 && wrote) {
        wrote = false;
        no = errno;
    }
    fd = -1;
    if (wrote && renameat(dfd, tmp, dfd, final) != 0) {
        wrote = false;
        no = errno;
    }
    if (!wrote) {
        snprintf(why, cap, "cannot write failed/%s: %s", final, strerror(no));
        (void)unlinkat(dfd, tmp, 0);
        goto out;
    }
    ok = true;
out:
    if (fd >= 0)
        close(fd);
    free(final);
    free(tmp);
    bson_free(json);
    bson_destroy(&doc);
    return ok;
}

/* True when nobody has the file open for writing (a read lease is granted
 * only then).  Where leases are not supported, the file is taken. */
bool ingest__spool_complete(int fd)
{
    if (fcntl(fd, F_SETLEASE, F_RDLCK) == 0) {
        (void)fcntl(fd, F_SETLEASE, F_UNLCK);
        return true;
    }
    return errno != EAGAIN; /* a writer has it open: its IN_CLOSE_WRITE will come */
}
