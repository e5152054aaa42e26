/* job.c -- one input (file or request body) = one atomic store batch:
 * surgery check, catalog mapping, encoding, staging; the file helper. */
#include "ingest_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Keys are deterministic, so a re-sent input rewrites equal documents, which
 * the store skips.  Labels are mapped to SKUs once per distinct label. */

#define FILE_CHUNK     (256u * 1024u)
#define PROGRESS_EVERY (8u << 20) /* bytes between progress calls */

/* Asset ids of one batch: a repeated id is refused (which one wins would be
 * a guess). */
typedef struct idset {
    char **slot;
    size_t n, cap; /* cap is a power of two */
} idset;

struct ingest_job {
    store *st;
    ingest_request rq;
    ingest_limits lim;
    store_batch *batch;
    ingest__writer *writer; /* owns batch while it runs */
    ingest_parser *parser;
    ingest__tree *assets;
    ingest_catalog *catalog;
    schema_key pk;
    int64_t surgery_v; /* the version of the surgery check_surgery saw open */
    /* per input label: its SKU (NULL unmapped) and whether it was counted as unmapped */
    const char **skus;
    const char **names;
    bool *counted;
    uint32_t resolved, cap;
    ingest__frame_enc enc;
    bson_t doc;
    idset ids;
    ingest_summary sum;
};

/* ---------------------------------------------------------------------------
 * Asset id set.
 * ------------------------------------------------------------------------- */
static uint64_t hash_str(const char *s)
{
    uint64_t h = 14695981039346656037ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Adds a copy of id (owned by the set, freed by idset_free); *fresh false
 * when it was there. */
static sl_status idset_add(idset *set, const char *id, bool *fresh, sl_error *err)
{
    sl_status rc = SL_OK;
    bool added = false;
    if (2 * (set->n + 1) > set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 1024;
        char **slot = calloc(cap, sizeof *slot);
        if (!slot) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory keeping asset ids");
            goto out;
        }
        for (size_t i = 0; i < set->cap; i++) {
            if (!set->slot[i])
                continue;
            size_t k = hash_str(set->slot[i]) & (cap - 1);
            while (slot[k])
                k = (k + 1) & (cap - 1);
            slot[k] = set->slot[i];
        }
        free(set->slot);
        set->slot = slot;
        set->cap = cap;
    }
    size_t k = hash_str(id) & (set->cap - 1);
    while (set->slot[k] && strcmp(set->slot[k], id) != 0)
        k = (k + 1) & (set->cap - 1);
    if (!set->slot[k]) {
        if (!(set->slot[k] = strdup(id))) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory keeping asset ids");
            goto out;
        }
        set->n++;
        added = true;
    }
    *fresh = added;
out:
    return rc;
}

static void idset_free(idset *set)
{
    for (size_t i = 0; i < set->cap; i++)
        free(set->slot[i]);
    free(set->slot);
    memset(set, 0, sizeof *set);
}

/* ---------------------------------------------------------------------------
 * Frames.
 * ------------------------------------------------------------------------- */

/* Maps the labels the parser met since the last frame to SKUs. */
static sl_status resolve_labels(ingest_job *j, sl_error *err)
{
    sl_status rc = SL_OK;
    uint32_t n = ingest_parser_labels(j->parser);
    if (n > j->cap) {
        uint32_t cap = j->cap ? j->cap : 64;
        while (cap < n)
            cap *= 2;
        const char **skus = realloc(j->skus, sizeof *skus * cap);
        if (skus)
            j->skus = skus;
        const char **names = realloc(j->names, sizeof *names * cap);
        if (names)
            j->names = names;
        bool *counted = realloc(j->counted, sizeof *counted * cap);
        if (counted)
            j->counted = counted;
        if (!skus || !names || !counted) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory mapping labels");
            goto out;
        }
        j->cap = cap;
    }
    for (; j->resolved < n; j->resolved++) {
        const char *label = ingest_parser_label(j->parser, j->resolved);
        j->names[j->resolved] = label;
        j->counted[j->resolved] = false;
        j->skus[j->resolved] = NULL;
        /* A pattern PCRE2 cannot finish matching (its match limit) leaves
         * the label unmapped, as an entry ingest cannot read does: the
         * detections are kept and the answer lists the label as unmapped;
         * the usage analysis, which maps labels again with the catalog of
         * its day, fails naming the pattern until it is fixed. */
        sl_error me;
        sl_error_clear(&me);
        if (ingest_catalog_match(j->catalog, label, strlen(label), &j->skus[j->resolved], &me) ==
            SL_ENOMEM) {
            rc = sl_error_set(err, SL_ENOMEM, "%s", me.message);
            goto out;
        }
    }
out:
    return rc;
}

static sl_status on_frame(void *ctx, const ingest_frame *f, sl_error *err)
{
    ingest_job *j = ctx;
    sl_status rc = resolve_labels(j, err);
    if (rc != SL_OK)
        goto out;
    for (uint32_t i = 0; i < f->count; i++) {
        uint32_t id = f->detections[i].label_id;
        if (j->skus[id])
            continue;
        j->sum.unmapped++;
        if (!j->counted[id]) {
            j->counted[id] = true;
            if (j->sum.unmapped_labels < INGEST_UNMAPPED_SHOWN)
                snprintf(j->sum.unmapped_names[j->sum.unmapped_labels],
                         sizeof j->sum.unmapped_names[0], "%s", j->names[id]);
            j->sum.unmapped_labels++;
        }
    }
    bson_reinit(&j->doc);
    rc = ingest__frame_doc(&j->enc, &j->doc, j->pk, f, j->resolved, j->names, j->skus, err);
    if (rc == SL_OK)
        rc = ingest__writer_put(j->writer, &j->doc, err);
    if (rc != SL_OK)
        goto out;
    j->sum.frames++;
    j->sum.empty_frames += f->count == 0;
    j->sum.detections += f->count;
    if (j->sum.first_frame < 0 || f->frame < j->sum.first_frame)
        j->sum.first_frame = f->frame;
    if (f->frame > j->sum.last_frame)
        j->sum.last_frame = f->frame;
out:
    return rc;
}

/* ---------------------------------------------------------------------------
 * Assets.
 * ------------------------------------------------------------------------- */
static sl_status on_asset(void *ctx, ingest__tree *t, const ingest__jnode *root, sl_error *err)
{
    ingest_job *j = ctx;
    const char *id = NULL;
    bool fresh = false;
    sl_status rc = SL_OK;
    bson_reinit(&j->doc);
    if (j->sum.assets >= j->lim.max_records)
        rc = ingest__tree_fail(t, root, err, SL_ETOOLARGE,
                               "batch holds more than %u assets; split it", j->lim.max_records);
    if (rc == SL_OK)
        rc = ingest__asset_doc_node(j->rq.tenant, NULL, t, root, &j->doc, &id, err);
    if (rc == SL_OK)
        rc = idset_add(&j->ids, id, &fresh, err);
    if (rc == SL_OK && !fresh)
        rc = ingest__tree_fail(t, root, err, SL_EINVAL,
                               "asset %s appears twice in this batch: which one counts is "
                               "ambiguous",
                               id);
    if (rc == SL_OK)
        rc = ingest__writer_put(j->writer, &j->doc, err);
    if (rc == SL_OK)
        j->sum.assets++;
    return rc;
}

/* ---------------------------------------------------------------------------
 * Life cycle.
 * ------------------------------------------------------------------------- */

/* Reads the surgery: it must exist and be open (any other status of its
 * life cycle is SL_ECONFLICT); fills the frame size and the version seen,
 * which the batch is fenced on. */
static sl_status check_surgery(ingest_job *j, uint32_t *width, uint32_t *height, int64_t *version,
                               sl_error *err)
{
    bson_t *doc = NULL;
    sl_error e;
    sl_error_clear(&e);
    sl_status rc = store_get(j->st, STORE_ITEMS, j->pk, SCHEMA_SK_META, &doc, &e);
    if (rc == SL_ENOTFOUND) {
        rc = sl_error_set_at(err, SL_ENOTFOUND, "surgery", -1,
                             "unknown surgery \"%s\" of tenant \"%s\": create it first (PUT "
                             "/v1/surgeries/%s)",
                             j->rq.surgery, j->rq.tenant, j->rq.surgery);
        goto out;
    }
    if (rc != SL_OK) {
        rc = sl_error_set_at(err, rc, e.field, e.offset, "%s", e.message);
        goto out;
    }
    schema_surgery_life life;
    if ((rc = schema_surgery_life_from_bson(doc, &life, &e)) != SL_OK) {
        rc = sl_error_set_at(err, rc, e.field, -1, "surgery \"%s\": %s", j->rq.surgery, e.message);
        goto out;
    }
    if (life.status != SCHEMA_SURGERY_OPEN) {
        rc = sl_error_set_at(err, SL_ECONFLICT, "surgery", -1,
                             "surgery \"%s\" is %s: its detections can no longer change",
                             j->rq.surgery, schema_surgery_status_name(life.status));
        goto out;
    }
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, "frame_width") && BSON_ITER_HOLDS_INT32(&it))
        *width = (uint32_t)bson_iter_int32(&it);
    if (bson_iter_init_find(&it, doc, "frame_height") && BSON_ITER_HOLDS_INT32(&it))
        *height = (uint32_t)bson_iter_int32(&it);
    *version = 0;
    if (bson_iter_init_find(&it, doc, SCHEMA_F_VERSION) && BSON_ITER_HOLDS_INT64(&it))
        *version = bson_iter_int64(&it);
out:
    if (doc)
        bson_destroy(doc);
    return rc;
}

sl_status ingest_job_begin(store *s, const ingest_request *rq, ingest_job **out, sl_error *err)
{
    sl_status rc = SL_OK;
    ingest_job *j = calloc(1, sizeof *j);
    if (!j) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory starting an ingest job");
        goto out;
    }
    bson_init(&j->doc);
    j->st = s;
    j->rq = *rq;
    if (rq->limits)
        j->lim = *rq->limits;
    else
        ingest_limits_default(&j->lim);
    if (j->lim.max_detections > SCHEMA_FRAME_LABELS_MAX)
        j->lim.max_detections = SCHEMA_FRAME_LABELS_MAX; /* frame-local label index is 16 bits */
    j->rq.limits = &j->lim;
    j->sum.first_frame = j->sum.last_frame = -1;
    if ((rc = schema_component_check("tenant", rq->tenant, err)) != SL_OK)
        goto out;
    if (rq->format == INGEST_FORMAT_ASSETS) {
        rc = ingest__tree_stream_new(&j->lim, on_asset, j, &j->assets, err);
    } else {
        if (!rq->surgery) {
            rc = sl_error_set_at(err, SL_EINVAL, "surgery", -1,
                                 "detections belong to a surgery: name it");
            goto out;
        }
        if ((rc = schema_pk_surgery(j->pk, rq->tenant, rq->surgery, err)) != SL_OK)
            goto out;
        uint32_t w = 0, h = 0;
        if ((rc = check_surgery(j, &w, &h, &j->surgery_v, err)) != SL_OK)
            goto out;
        rc = rq->catalogs ? ingest_catalog_cache_get(rq->catalogs, s, rq->tenant, &j->catalog, err)
                          : ingest_catalog_load(s, rq->tenant, &j->catalog, err);
        if (rc != SL_OK)
            goto out;
        ingest_parse_options po = {.format = rq->format,
                                   .frame_offset = rq->frame_offset,
                                   .frame_source = rq->frame_source,
                                   .categories = rq->categories,
                                   .image_width = rq->image_width ? rq->image_width : w,
                                   .image_height = rq->image_height ? rq->image_height : h,
                                   .limits = &j->lim,
                                   .spill_dir = rq->spill_dir};
        rc = ingest_parser_new(&po, on_frame, j, &j->parser, err);
    }
    if (rc != SL_OK)
        goto out;
    if ((rc = store_batch_begin(s, &j->batch, err)) != SL_OK)
        goto out;
    /* The surgery must still be as check_surgery saw it (open) when the
     * batch commits: a close between that read and this batch makes the
     * batch fail instead of adding detections to a closed surgery. */
    if (j->parser) {
        sl_error ce;
        sl_error_clear(&ce);
        rc = store_batch_check(j->batch, STORE_ITEMS, j->pk, SCHEMA_SK_META,
                               (store_cond){STORE_COND_VERSION, j->surgery_v}, &ce);
        if (rc == SL_ECONDITION)
            rc = sl_error_set_at(err, SL_ECONFLICT, "surgery", -1,
                                 "surgery \"%s\" changed (closed, replaced or deleted) while its "
                                 "detections were being stored: nothing was stored; check its "
                                 "status and send them again",
                                 j->rq.surgery);
        else if (rc != SL_OK)
            rc = sl_error_set_at(err, ce.status, ce.field, ce.offset, "%s", ce.message);
    }
    if (rc == SL_OK)
        rc = ingest__writer_start(j->batch, &j->writer, err);
out:
    if (rc != SL_OK)
        ingest_job_abort(&j);
    else
        *out = j;
    return rc;
}

sl_status ingest_job_feed(ingest_job *j, const void *data, size_t len, sl_error *err)
{
    j->sum.bytes += len;
    return j->parser ? ingest_parser_feed(j->parser, data, len, err)
                     : ingest__tree_feed(j->assets, data, len, err);
}

sl_status ingest_job_commit(ingest_job **jp, ingest_summary *sum, sl_error *err)
{
    ingest_job *j = *jp;
    sl_status rc =
        j->parser ? ingest_parser_finish(j->parser, err) : ingest__tree_finish(j->assets, err);
    if (rc == SL_OK && !j->parser && j->sum.assets == 0)
        rc = sl_error_set_at(err, SL_EINVAL, NULL, (int64_t)j->sum.bytes,
                             "the batch holds no asset");
    if (rc == SL_OK)
        rc = ingest__writer_finish(&j->writer, &j->sum.changed, err);
    if (rc == SL_OK)
        rc = store_batch_commit(&j->batch, err);
    if (rc == SL_OK && sum)
        *sum = j->sum;
    ingest_job_abort(jp);
    return rc;
}

void ingest_job_abort(ingest_job **jp)
{
    if (!jp || !*jp)
        return;
    ingest_job *j = *jp;
    ingest__writer_abort(&j->writer); /* before the batch it may be using */
    store_batch_abort(&j->batch);
    ingest_parser_free(&j->parser);
    ingest__tree_free(&j->assets);
    ingest_catalog_release(&j->catalog);
    ingest__frame_enc_free(&j->enc);
    bson_destroy(&j->doc);
    idset_free(&j->ids);
    free(j->skus);
    free(j->names);
    free(j->counted);
    free(j);
    *jp = NULL;
}

sl_status ingest_file(store *s, const ingest_request *rq, const char *path,
                      ingest_progress_fn progress, void *progress_ctx, ingest_summary *sum,
                      sl_error *err)
{
    sl_status rc = SL_OK;
    /* A path named on the command line is the operator's own: followed as
     * given.  The spool folder, whose writers are not trusted, opens its
     * files itself and calls ingest_fd(). */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = sl_error_set(err, errno == ENOENT ? SL_ENOTFOUND : SL_EIO, "cannot open: %s",
                          strerror(errno));
        goto out;
    }
    rc = ingest_fd(s, rq, fd, progress, progress_ctx, sum, err);
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

sl_status ingest_fd(store *s, const ingest_request *rq, int fd, ingest_progress_fn progress,
                    void *progress_ctx, ingest_summary *sum, sl_error *err)
{
    sl_status rc = SL_OK;
    ingest_job *j = NULL;
    char *buf = NULL;
    struct stat st;
    uint64_t total = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    buf = malloc(FILE_CHUNK);
    if (!buf) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = ingest_job_begin(s, rq, &j, err)) != SL_OK)
        goto out;
    uint64_t done = 0, next_report = 0;
    for (;;) {
        ssize_t n = read(fd, buf, FILE_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = sl_error_set(err, SL_EIO, "cannot read at byte %llu: %s", (unsigned long long)done,
                              strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        if ((rc = ingest_job_feed(j, buf, (size_t)n, err)) != SL_OK)
            goto out;
        done += (uint64_t)n;
        if (progress && done >= next_report) {
            progress(progress_ctx, done, total);
            next_report = done + PROGRESS_EVERY;
        }
    }
    if (progress)
        progress(progress_ctx, done, total);
    rc = ingest_job_commit(&j, sum, err);
out:
    ingest_job_abort(&j);
    free(buf);
    return rc;
}
