/* upload.c -- an input that arrives slowly (an HTTP request body) is first
 * spooled to an unnamed temporary file, then ingested as one job: the store
 * batch is open only while the input is parsed, never while it arrives. */
#include "ingest_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Bytes gathered before one write(2), and read back per job feed: a body
 * arrives in pieces of a few KB, so writes are batched. */
#define UPLOAD_BUF (256u * 1024u)

/* The default directory, read once ($TMPDIR is fixed before any upload
 * starts).  A server passes its own (api_config.upload_dir) explicitly. */
static pthread_once_t default_dir_once = PTHREAD_ONCE_INIT;
static char default_dir[1024];

static void default_dir_init(void)
{
    const char *d = getenv("TMPDIR");
    if (!d || !d[0] || strlen(d) >= sizeof default_dir)
        d = "/tmp";
    memcpy(default_dir, d, strlen(d) + 1);
}

const char *ingest_upload_dir(void)
{
    pthread_once(&default_dir_once, default_dir_init);
    return default_dir;
}

struct ingest_upload {
    int fd;
    uint64_t max_bytes;
    uint64_t bytes; /* accepted so far (written or buffered) */
    char *buf;      /* UPLOAD_BUF bytes not yet written */
    size_t buffered;
    char dir[1024]; /* for messages */
};

/* Writes all of data[0..len) at the file's end. */
static sl_status write_all(ingest_upload *u, const char *data, size_t len, sl_error *err)
{
    sl_status rc = SL_OK;
    while (len > 0) {
        ssize_t n = write(u->fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = sl_error_set(err, errno == ENOSPC || errno == EDQUOT ? SL_EBUSY : SL_EIO,
                              "cannot spool the upload to %s after %llu bytes: %s", u->dir,
                              (unsigned long long)(u->bytes - u->buffered),
                              n < 0 ? strerror(errno) : "nothing written");
            goto out;
        }
        data += n;
        len -= (size_t)n;
    }
out:
    return rc;
}

static sl_status flush_buf(ingest_upload *u, sl_error *err)
{
    sl_status rc = SL_OK;
    if (u->buffered > 0) {
        rc = write_all(u, u->buf, u->buffered, err);
        u->buffered = 0;
    }
    return rc;
}

sl_status ingest_upload_open(const char *dir, uint64_t max_bytes, ingest_upload **out,
                             sl_error *err)
{
    sl_status rc = SL_OK;
    ingest_upload *u = calloc(1, sizeof *u);
    if (!u || !(u->buf = malloc(UPLOAD_BUF))) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory starting an upload");
        goto out;
    }
    u->fd = -1;
    u->max_bytes = max_bytes;
    if (!dir || !dir[0])
        dir = ingest_upload_dir();
    if (strlen(dir) >= sizeof u->dir) {
        rc = sl_error_set_at(err, SL_EINVAL, "upload dir", -1,
                             "upload directory name is longer than %zu bytes", sizeof u->dir - 1);
        goto out;
    }
    memcpy(u->dir, dir, strlen(dir) + 1);
    /* O_TMPFILE has no name, so nothing is left behind even after kill -9;
     * where the file system lacks it, a named file is unlinked at once. */
    u->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (u->fd < 0) {
        char path[sizeof u->dir + 32];
        snprintf(path, sizeof path, "%s/.sightline-upload-XXXXXX", dir);
        u->fd = mkostemp(path, O_CLOEXEC);
        if (u->fd >= 0)
            unlink(path);
    }
    if (u->fd < 0) {
        rc = sl_error_set(err, SL_EIO, "cannot create an upload file in %s: %s", dir,
                          strerror(errno));
        goto out;
    }
out:
    if (rc != SL_OK)
        ingest_upload_free(&u);
    else
        *out = u;
    return rc;
}

sl_status ingest_upload_write(ingest_upload *u, const void *data, size_t len, sl_error *err)
{
    sl_status rc = SL_OK;
    const char *p = data;
    if (len > u->max_bytes - u->bytes) {
        rc = sl_error_set_at(err, SL_ETOOLARGE, "body", (int64_t)u->bytes,
                             "the input passed %llu bytes, the most one upload takes",
                             (unsigned long long)u->max_bytes);
        goto out;
    }
    u->bytes += len;
    if (u->buffered + len > UPLOAD_BUF && (rc = flush_buf(u, err)) != SL_OK)
        goto out;
    if (len >= UPLOAD_BUF) { /* a large piece goes straight to the file */
        rc = write_all(u, p, len, err);
        goto out;
    }
    memcpy(u->buf + u->buffered, p, len);
    u->buffered += len;
out:
    return rc;
}

uint64_t ingest_upload_bytes(const ingest_upload *u)
{
    return u->bytes;
}

sl_status ingest_upload_ingest(ingest_upload *u, store *s, const ingest_request *rq,
                               ingest_summary *sum, sl_error *err)
{
    sl_status rc = SL_OK;
    ingest_job *j = NULL;
    uint64_t done = 0;
    if ((rc = flush_buf(u, err)) != SL_OK)
        goto out;
    (void)posix_fadvise(u->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    if ((rc = ingest_job_begin(s, rq, &j, err)) != SL_OK)
        goto out;
    while (done < u->bytes) {
        ssize_t n = pread(u->fd, u->buf, UPLOAD_BUF, (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = sl_error_set(err, SL_EIO, "cannot read the spooled upload back at byte %llu: %s",
                              (unsigned long long)done, n < 0 ? strerror(errno) : "end of file");
            goto out;
        }
        if ((rc = ingest_job_feed(j, u->buf, (size_t)n, err)) != SL_OK)
            goto out;
        done += (uint64_t)n;
    }
    rc = ingest_job_commit(&j, sum, err);
out:
    ingest_job_abort(&j);
    return rc;
}

void ingest_upload_free(ingest_upload **up)
{
    if (!up || !*up)
        return;
    ingest_upload *u = *up;
    if (u->fd >= 0)
        close(u->fd);
    free(u->buf);
    free(u);
    *up = NULL;
}
