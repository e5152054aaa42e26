/* quota.c -- what streamed uploads may spool: per key, the uploads in
 * progress (uploads-per-key) and the bytes spooled at once
 * (upload-bytes-per-key); for everyone, the free space the upload
 * directory's disk keeps (upload-free-floor).  A declared Content-Length
 * counts in full when the upload starts, so most refusals come from the head
 * alone; a chunked body (or one without a length) counts as it arrives.
 * Every count is given back when the request ends, whatever its outcome
 * (api__request_release).
 *
 * The disk check reads statvfs and subtracts what uploads in progress have
 * declared but not yet sent (their bytes are not on the disk yet), so many
 * uploads starting at once cannot each see the same free space. */
#include "api_int.h"

#include <assert.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#define KEY_BUCKETS 256
/* A chunked upload looks at the disk again every this many bytes. */
#define DISK_CHECK_STEP (UINT64_C(1) << 20)
/* What a client refused for its key's quota is told to wait: about one
 * upload of a large file. */
#define QUOTA_RETRY_AFTER_S 5

/* A key with uploads in progress (entries go when the last one ends, so the
 * table holds at most one per upload in progress). */
typedef struct key_use {
    struct key_use *next;
    char key_id[API_KEY_ID_LEN + 1];
    int64_t uploads;
    uint64_t bytes; /* reserved by its uploads */
} key_use;

struct api__uploads {
    int64_t per_key, bytes_per_key, floor;
    pthread_mutex_t lock;
    key_use *keys[KEY_BUCKETS];
    _Atomic uint64_t active;      /* uploads in progress */
    _Atomic uint64_t reserved;    /* bytes reserved by them */
    _Atomic uint64_t outstanding; /* declared bytes not yet received */
    _Atomic uint64_t refused_uploads, refused_bytes, refused_disk;
};

sl_status api__uploads_new(const api_config *cfg, api__uploads **out, sl_error *err)
{
    sl_status rc = SL_OK;
    api__uploads *q = calloc(1, sizeof *q);
    if (!q) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory for the upload quotas");
        goto out;
    }
    q->per_key = cfg->uploads_per_key;
    q->bytes_per_key = cfg->upload_bytes_per_key;
    q->floor = cfg->upload_free_floor;
    pthread_mutex_init(&q->lock, NULL);
    *out = q;
out:
    return rc;
}

void api__uploads_free(api__uploads **q)
{
    if (q && *q) {
        for (size_t i = 0; i < KEY_BUCKETS; i++)
            while ((*q)->keys[i]) {
                key_use *k = (*q)->keys[i];
                (*q)->keys[i] = k->next;
                free(k);
            }
        pthread_mutex_destroy(&(*q)->lock);
        free(*q);
        *q = NULL;
    }
}

/* Key ids are random hex: their first two digits spread evenly. */
static key_use **bucket_of(api__uploads *q, const char *key_id)
{
    unsigned v = 0;
    for (int i = 0; i < 2 && key_id[i]; i++)
        v = v * 31 + (unsigned char)key_id[i];
    return &q->keys[v % KEY_BUCKETS];
}

/* The entry of key_id (called with the lock held); NULL when it has none
 * (or, with create, when memory is short). */
static key_use *key_find(api__uploads *q, const char *key_id, int create)
{
    key_use **b = bucket_of(q, key_id), *k = *b;
    while (k && strcmp(k->key_id, key_id))
        k = k->next;
    if (!k && create && (k = calloc(1, sizeof *k))) {
        snprintf(k->key_id, sizeof k->key_id, "%s", key_id);
        k->next = *b;
        *b = k;
    }
    return k;
}

static void key_forget(api__uploads *q, key_use *gone)
{
    key_use **p = bucket_of(q, gone->key_id);
    while (*p && *p != gone)
        p = &(*p)->next;
    if (*p)
        *p = gone->next;
    free(gone);
}

/* Whether the disk of dir keeps the floor with `more` bytes still to come
 * besides what uploads in progress declared.  A directory statvfs cannot
 * read passes: opening the spool file there fails with its own words. */
static int disk_keeps_floor(api__uploads *q, const char *dir, uint64_t more, uint64_t *avail_out)
{
    struct statvfs sv;
    int ok = 1;
    *avail_out = 0;
    if (q->floor > 0 && statvfs(dir, &sv) == 0) {
        uint64_t avail = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
        uint64_t pending = atomic_load(&q->outstanding);
        *avail_out = avail;
        ok = avail >= pending && avail - pending >= more &&
             avail - pending - more >= (uint64_t)q->floor;
    }
    return ok;
}

/* Records the refusal in req (429 with Retry-After, or 507) and returns
 * SL_ETOOLARGE with the message in err. */
static sl_status refuse(api_request *req, int http, const char *slug, sl_error *err,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static sl_status refuse(api_request *req, int http, const char *slug, sl_error *err,
                        const char *fmt, ...)
{
    sl_error e;
    va_list ap;
    sl_error_clear(&e);
    va_start(ap, fmt);
    sl_error_vset_at(&e, SL_ETOOLARGE, "body", -1, fmt, ap);
    va_end(ap);
    if (http == 429)
        req->retry_after_s = QUOTA_RETRY_AFTER_S;
    api__request_fail(req, http, slug, &e);
    if (err && err->status == SL_OK)
        *err = e;
    return SL_ETOOLARGE;
}

sl_status api__upload_begin(api__uploads *q, api_request *req, const char *dir, uint64_t declared,
                            sl_error *err)
{
    sl_status rc = SL_OK;
    api__upload_hold *h = &req->upload;
    const char *key_id = req->auth.key_id;
    uint64_t avail = 0;
    assert(req->authed && !h->q);
    pthread_mutex_lock(&q->lock);
    key_use *k = key_find(q, key_id, 0);
    int64_t uploads = k ? k->uploads : 0;
    uint64_t bytes = k ? k->bytes : 0;
    if (uploads >= q->per_key) {
        atomic_fetch_add(&q->refused_uploads, 1);
        rc = refuse(req, 429, "upload-quota", err,
                    "this key has %lld uploads in progress, the most it may have at once "
                    "(uploads-per-key); send this one when one of them has ended",
                    (long long)uploads);
        goto unlock;
    }
    if (declared > (uint64_t)q->bytes_per_key) {
        atomic_fetch_add(&q->refused_bytes, 1);
        rc = refuse(req, 507, "upload-quota", err,
                    "the body is %llu bytes; one key may spool at most %lld at once "
                    "(upload-bytes-per-key)",
                    (unsigned long long)declared, (long long)q->bytes_per_key);
        goto unlock;
    }
    if (declared > (uint64_t)q->bytes_per_key - bytes) {
        atomic_fetch_add(&q->refused_bytes, 1);
        rc = refuse(req, 429, "upload-quota", err,
                    "the body is %llu bytes and this key's uploads in progress hold %llu of "
                    "the %lld one key may spool at once (upload-bytes-per-key); send it when "
                    "they have ended",
                    (unsigned long long)declared, (unsigned long long)bytes,
                    (long long)q->bytes_per_key);
        goto unlock;
    }
    if (!disk_keeps_floor(q, dir, declared, &avail)) {
        atomic_fetch_add(&q->refused_disk, 1);
        rc = refuse(req, 507, "insufficient-storage", err,
                    "the upload directory's disk has %llu bytes free (less what uploads in "
                    "progress will still write); %llu more would leave less than the %lld it "
                    "keeps free (upload-free-floor)",
                    (unsigned long long)avail, (unsigned long long)declared, (long long)q->floor);
        goto unlock;
    }
    if (!(k = key_find(q, key_id, 1))) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory starting an upload");
        goto unlock;
    }
    k->uploads++;
    k->bytes += declared;
    atomic_fetch_add(&q->active, 1);
    atomic_fetch_add(&q->reserved, declared);
    atomic_fetch_add(&q->outstanding, declared);
    h->q = q;
    snprintf(h->key_id, sizeof h->key_id, "%s", key_id);
    h->reserved = declared;
    h->received = 0;
    h->next_disk_check = declared + DISK_CHECK_STEP;
unlock:
    pthread_mutex_unlock(&q->lock);
    return rc;
}

sl_status api__upload_grow(api_request *req, const char *dir, size_t len, sl_error *err)
{
    sl_status rc = SL_OK;
    api__upload_hold *h = &req->upload;
    api__uploads *q = h->q;
    uint64_t avail = 0;
    if (!q)
        goto out;
    uint64_t before = h->received;
    h->received += len;
    /* Declared bytes arriving: no longer to come. */
    if (before < h->reserved) {
        uint64_t arrived = (h->received < h->reserved ? h->received : h->reserved) - before;
        atomic_fetch_sub(&q->outstanding, arrived);
    }
    if (h->received <= h->reserved)
        goto out;
    /* Past what was declared (a chunked body): counted as it comes. */
    uint64_t more = h->received - h->reserved;
    pthread_mutex_lock(&q->lock);
    key_use *k = key_find(q, h->key_id, 0);
    assert(k != NULL); /* held by this upload */
    k->bytes += more;
    h->reserved += more;
    atomic_fetch_add(&q->reserved, more);
    uint64_t key_bytes = k->bytes;
    pthread_mutex_unlock(&q->lock);
    if (key_bytes > (uint64_t)q->bytes_per_key) {
        atomic_fetch_add(&q->refused_bytes, 1);
        /* Alone over the quota it can never fit: 507; beside others, later. */
        int alone = key_bytes == h->reserved;
        rc = refuse(req, alone ? 507 : 429, "upload-quota", err,
                    "the body passed %llu bytes, and this key may spool at most %lld at once "
                    "(upload-bytes-per-key)%s",
                    (unsigned long long)h->received, (long long)q->bytes_per_key,
                    alone ? ""
                          : " with its other uploads in progress; send it when they have ended");
        goto out;
    }
    if (h->received >= h->next_disk_check) {
        h->next_disk_check = h->received + DISK_CHECK_STEP;
        if (!disk_keeps_floor(q, dir, 0, &avail)) {
            atomic_fetch_add(&q->refused_disk, 1);
            rc = refuse(req, 507, "insufficient-storage", err,
                        "the body passed %llu bytes and the upload directory's disk is down to "
                        "%llu free, less than the %lld it keeps free (upload-free-floor)",
                        (unsigned long long)h->received, (unsigned long long)avail,
                        (long long)q->floor);
            goto out;
        }
    }
out:
    return rc;
}

void api__upload_end(api__upload_hold *h)
{
    api__uploads *q = h->q;
    if (!q)
        goto out;
    pthread_mutex_lock(&q->lock);
    key_use *k = key_find(q, h->key_id, 0);
    assert(k != NULL && k->uploads > 0 && k->bytes >= h->reserved);
    if (k) {
        k->uploads--;
        k->bytes -= h->reserved;
        if (k->uploads == 0)
            key_forget(q, k);
    }
    pthread_mutex_unlock(&q->lock);
    if (h->received < h->reserved)
        atomic_fetch_sub(&q->outstanding, h->reserved - h->received);
    atomic_fetch_sub(&q->reserved, h->reserved);
    atomic_fetch_sub(&q->active, 1);
    memset(h, 0, sizeof *h);
out:
    return;
}

void api__uploads_metrics(api__uploads *q, FILE *out)
{
    fprintf(out,
            "# HELP sightline_uploads_active Streamed uploads in progress.\n"
            "# TYPE sightline_uploads_active gauge\n"
            "sightline_uploads_active %llu\n"
            "# HELP sightline_upload_reserved_bytes Bytes uploads in progress count against their "
            "keys' quotas (declared lengths in full).\n"
            "# TYPE sightline_upload_reserved_bytes gauge\n"
            "sightline_upload_reserved_bytes %llu\n"
            "# HELP sightline_uploads_refused_total Uploads refused by a quota, by limit.\n"
            "# TYPE sightline_uploads_refused_total counter\n"
            "sightline_uploads_refused_total{limit=\"uploads-per-key\"} %llu\n"
            "sightline_uploads_refused_total{limit=\"upload-bytes-per-key\"} %llu\n"
            "sightline_uploads_refused_total{limit=\"upload-free-floor\"} %llu\n",
            (unsigned long long)atomic_load(&q->active),
            (unsigned long long)atomic_load(&q->reserved),
            (unsigned long long)atomic_load(&q->refused_uploads),
            (unsigned long long)atomic_load(&q->refused_bytes),
            (unsigned long long)atomic_load(&q->refused_disk));
}
