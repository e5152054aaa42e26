/* routes_surgeries.c -- PUT/GET a surgery, POST its detections (spooled to an
 * unnamed file while they arrive, then ingested as one batch) and GET its
 * frames in the contract's shape, decoded from the packed frame documents. */
#include "api_int.h"

#include <stdlib.h>
#include <string.h>

#include "ingest/ingest.h"

/* A page of frames stops after the frame that passes this many detections,
 * so one answer stays a few MB whatever `limit` says (a frame may hold up
 * to 10,000 detections). */
#define FRAMES_DET_BUDGET 50000
#define FRAMES_LIMIT_DEF  100
#define FRAMES_OFFSET_MAX 999999999 /* |frame_offset|: frames are 0..999,999,999 */
#define IMAGE_SIDE_MAX    100000    /* pixels, as a surgery's frame size */

/* ---------------------------------------------------------------------------
 * JSON out of stored documents.
 * ------------------------------------------------------------------------- */

/* A micro-unit value (0..1000000) as the decimal it stands for: 814241 ->
 * 0.814241, 320000 -> 0.32, 1000000 -> 1. */
static yajl_gen_status json_micro(yajl_gen g, int32_t m)
{
    char s[24];
    int n = snprintf(s, sizeof s, "%d.%06d", m / 1000000, m % 1000000);
    while (n > 0 && s[n - 1] == '0')
        n--;
    if (n > 0 && s[n - 1] == '.')
        n--;
    return yajl_gen_number(g, s, (size_t)n);
}

/* The surgery as clients see it: its attributes without keys and internal
 * fields, then its life cycle with times as ISO-8601 (closed_at, analyzed_at:
 * null until then; analysis_error: null unless the last analysis failed),
 * and version (the document's own when version < 0). */
static void surgery_json(yajl_gen g, const bson_t *doc, int64_t version)
{
    static const char *const hidden[] = {SCHEMA_F_PK,
                                         SCHEMA_F_SK,
                                         SCHEMA_F_GSI1PK,
                                         SCHEMA_F_GSI1SK,
                                         SCHEMA_F_GSI2PK,
                                         SCHEMA_F_GSI2SK,
                                         SCHEMA_F_TYPE,
                                         SCHEMA_F_VERSION,
                                         "tenant",
                                         "started_ms",
                                         SCHEMA_F_CLOSED_MS,
                                         SCHEMA_F_ANALYZED_MS,
                                         SCHEMA_F_ANALYSIS_ERROR};
    int64_t closed_ms = api_doc_int64(doc, SCHEMA_F_CLOSED_MS, 0);
    int64_t analyzed_ms = api_doc_int64(doc, SCHEMA_F_ANALYZED_MS, 0);
    char closed[25], analyzed[25];
    bson_iter_t it;
    const char *why =
        bson_iter_init_find(&it, doc, SCHEMA_F_ANALYSIS_ERROR) && BSON_ITER_HOLDS_UTF8(&it)
            ? bson_iter_utf8(&it, NULL)
            : "";
    yajl_gen_map_open(g);
    api_json_bson_fields(g, doc, hidden, sizeof hidden / sizeof hidden[0]);
    schema_time_format(closed_ms, closed);
    schema_time_format(analyzed_ms, analyzed);
    api_json_kv_str(g, "closed_at", closed_ms ? closed : NULL);
    api_json_kv_str(g, "analyzed_at", analyzed_ms ? analyzed : NULL);
    api_json_kv_str(g, "analysis_error", why[0] ? why : NULL);
    api_json_kv_version(g, doc, version);
    yajl_gen_map_close(g);
}

/* ---------------------------------------------------------------------------
 * PUT and GET /v1/surgeries/{id}.
 * ------------------------------------------------------------------------- */

/* Reads the surgery META document; SL_ENOTFOUND names it (another tenant's
 * surgery is simply not in this tenant's partition). */
static sl_status surgery_read(store *st, const char *tenant, const char *id, bson_t **out,
                              sl_error *err)
{
    schema_key pk;
    sl_status rc = schema_pk_surgery(pk, tenant, id, err);
    if (rc == SL_OK)
        rc = api_get_doc(st, STORE_ITEMS, pk, SCHEMA_SK_META, out, err, "id",
                         "no surgery \"%s\": create it first with PUT /v1/surgeries/%s", id, id);
    return rc;
}

static sl_status surgery_put(api_request *req, sl_error *err)
{
    store_put_result res = {0, 0};
    bson_t *doc = NULL;
    size_t len = 0;
    const char *body = api_body(req, &len);
    const char *tenant = api_auth_of(req)->tenant, *id = api_param(req, "id");
    char location[64 + SCHEMA_COMPONENT_MAX];
    sl_status rc =
        ingest_surgery_write(api_store(req), tenant, id, body ? body : "", len, &res, &doc, err);
    /* The answer is this write: the document written and the version the
     * store gave it (a write racing in after it is not shown as ours). */
    snprintf(location, sizeof location, "/v1/surgeries/%s", id);
    if (rc == SL_OK)
        rc = api_reply_doc(req, &res, doc, surgery_json, location, err);
    if (doc)
        bson_destroy(doc);
    return rc;
}

static sl_status surgery_get(api_request *req, sl_error *err)
{
    bson_t *doc = NULL;
    sl_status rc =
        surgery_read(api_store(req), api_auth_of(req)->tenant, api_param(req, "id"), &doc, err);
    if (rc == SL_OK)
        rc = api_reply_doc(req, NULL, doc, surgery_json, NULL, err);
    if (doc)
        bson_destroy(doc);
    return rc;
}

/* ---------------------------------------------------------------------------
 * POST /v1/surgeries/{id}/detections?format=F[&frame_offset=N][&frame_from=
 * id|filename][&image_width=W&image_height=H][&categories=JSON]
 *
 * When the head is in (detections_head), the parameters are checked, the
 * surgery must exist and be open, and an unnamed spool file is opened: a
 * refusal goes out before any body byte is read.  The body goes to the file
 * as it arrives; once it is whole, one ingest job parses it inside one store
 * batch on the job pool (the route runs as API_RUN_JOB) and the answer (the
 * summary) is sent after the commit.  A slow client therefore never holds
 * the store's write lock, and a long job never holds a libmicrohttpd thread.
 * ------------------------------------------------------------------------- */
typedef struct det_upload {
    api_upload u; /* first: api_upload_chunk reads it */
    ingest_categories *cats;
    ingest_request rq;
    char tenant[SCHEMA_COMPONENT_MAX + 1];
    char surgery[SCHEMA_COMPONENT_MAX + 1];
} det_upload;

static void det_upload_free(void *p)
{
    det_upload *d = p;
    if (d) {
        ingest_upload_free(&d->u.up);
        ingest_categories_free(&d->cats);
        free(d);
    }
}

/* The request's parameters into d->rq; a category map goes to d->cats (d
 * owns it). */
static sl_status det_params(api_request *req, det_upload *d, sl_error *err)
{
    sl_status rc = SL_OK;
    sl_error e;
    sl_error_clear(&e);
    int64_t offset = 0, w = 0, h = 0;
    const char *format = api_query(req, "format"), *from = api_query(req, "frame_from");
    const char *cats = api_query(req, "categories");
    if (!format) {
        rc = sl_error_set_at(err, SL_EINVAL, "format", -1,
                             "query parameter format is required: darknet, darknet-stream, coco, "
                             "tfod or ndjson");
        goto out;
    }
    if (ingest_format_parse(format, &d->rq.format, &e) != SL_OK ||
        d->rq.format == INGEST_FORMAT_ASSETS) {
        /* A bad parameter is a bad request (400), not an unsupported body. */
        rc = sl_error_set_at(err, SL_EINVAL, "format", -1,
                             "format \"%.40s\" is not a detection format: use darknet, "
                             "darknet-stream, coco, tfod or ndjson (assets go to POST "
                             "/v1/assets:batch)",
                             format);
        goto out;
    }
    if ((rc = api_query_int(req, "frame_offset", -FRAMES_OFFSET_MAX, FRAMES_OFFSET_MAX, 0, &offset,
                            err)) != SL_OK ||
        (rc = api_query_int(req, "image_width", 1, IMAGE_SIDE_MAX, 0, &w, err)) != SL_OK ||
        (rc = api_query_int(req, "image_height", 1, IMAGE_SIDE_MAX, 0, &h, err)) != SL_OK)
        goto out;
    if (!w != !h) {
        rc = sl_error_set_at(err, SL_EINVAL, w ? "image_height" : "image_width", -1,
                             "image_width and image_height go together (the default is the "
                             "surgery's frame size)");
        goto out;
    }
    if (from && strcmp(from, "id") != 0 && strcmp(from, "filename") != 0) {
        rc = sl_error_set_at(err, SL_EINVAL, "frame_from", -1,
                             "frame_from is id (the input's frame numbers, default) or filename "
                             "(the last digits of the image file name)");
        goto out;
    }
    if (cats) {
        sl_error ce;
        sl_error_clear(&ce);
        if (ingest_categories_parse(cats, strlen(cats), &d->u.lim, &d->cats, &ce) != SL_OK) {
            rc = sl_error_set_at(err, ce.status, "categories", ce.offset,
                                 "query parameter categories: %s", ce.message);
            goto out;
        }
    }
    d->rq.tenant = d->tenant;
    d->rq.surgery = d->surgery;
    d->rq.frame_offset = offset;
    d->rq.frame_source =
        from && !strcmp(from, "filename") ? INGEST_FRAME_FROM_FILENAME : INGEST_FRAME_FROM_ID;
    d->rq.categories = d->cats;
    d->rq.image_width = (uint32_t)w;
    d->rq.image_height = (uint32_t)h;
    d->rq.limits = &d->u.lim;
    d->rq.spill_dir = api_upload_dir(req);
    d->rq.catalogs = api_catalogs(req);
out:
    return rc;
}

/* The head hook: parameters checked, the surgery known and open, the spool
 * file created, all before the body is read, so an unknown (404) or no
 * longer open (409: closed, analyzed or failed) surgery is answered without
 * the client sending megabytes first.  The state (upload file, category map)
 * belongs to the request: the server frees it with det_upload_free when the
 * request ends, whatever the outcome. */
static sl_status detections_head(api_request *req, sl_error *err)
{
    sl_status rc = SL_OK;
    bson_t *doc = NULL;
    det_upload *d = calloc(1, sizeof *d);
    if (!d) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory starting an upload");
        goto out;
    }
    api_state_set(req, d, det_upload_free);
    const char *tenant = api_auth_of(req)->tenant, *id = api_param(req, "id");
    snprintf(d->tenant, sizeof d->tenant, "%s", tenant);
    snprintf(d->surgery, sizeof d->surgery, "%s", id);
    ingest_limits_default(&d->u.lim); /* det_params reads categories with them */
    if ((rc = det_params(req, d, err)) != SL_OK)
        goto out;
    /* The job checks again under its batch: the surgery may change meanwhile. */
    if ((rc = surgery_read(api_store(req), tenant, id, &doc, err)) != SL_OK)
        goto out;
    schema_surgery_life life;
    sl_error le;
    sl_error_clear(&le);
    if ((rc = schema_surgery_life_from_bson(doc, &life, &le)) != SL_OK) {
        rc = sl_error_set_at(err, rc, le.field, -1, "surgery \"%s\": %s", id, le.message);
        goto out;
    }
    if (life.status != SCHEMA_SURGERY_OPEN) {
        rc = sl_error_set_at(err, SL_ECONFLICT, "id", -1,
                             "surgery \"%s\" is %s: its detections can no longer change", id,
                             schema_surgery_status_name(life.status));
        goto out;
    }
    rc = api_upload_start(req, &d->u.lim, &d->u.up, err);
out:
    if (doc)
        bson_destroy(doc);
    return rc;
}

typedef struct det_answer {
    const det_upload *d;
    ingest_summary sum;
} det_answer;

static sl_status det_answer_json(yajl_gen g, const void *ctx, sl_error *err)
{
    const det_answer *a = ctx;
    const ingest_summary *sum = &a->sum;
    yajl_gen_map_open(g);
    api_json_kv_str(g, "surgery", a->d->surgery);
    api_json_kv_str(g, "format", ingest_format_name(a->d->rq.format));
    api_json_kv_int(g, "bytes", (int64_t)sum->bytes);
    api_json_kv_int(g, "frames", (int64_t)sum->frames);
    api_json_kv_int(g, "empty_frames", (int64_t)sum->empty_frames);
    api_json_kv_int(g, "detections", (int64_t)sum->detections);
    api_json_str(g, "first_frame");
    if (sum->first_frame < 0)
        yajl_gen_null(g);
    else
        api_json_int(g, sum->first_frame);
    api_json_str(g, "last_frame");
    if (sum->last_frame < 0)
        yajl_gen_null(g);
    else
        api_json_int(g, sum->last_frame);
    api_json_str(g, "unmapped");
    yajl_gen_map_open(g);
    api_json_kv_int(g, "detections", (int64_t)sum->unmapped);
    api_json_kv_int(g, "labels", sum->unmapped_labels);
    api_json_str(g, "names"); /* the first few */
    yajl_gen_array_open(g);
    for (uint32_t i = 0; i < sum->unmapped_labels && i < INGEST_UNMAPPED_SHOWN; i++)
        api_json_str(g, sum->unmapped_names[i]);
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    api_json_kv_int(g, "changed", (int64_t)sum->changed);
    yajl_gen_map_close(g);
    return SL_OK;
}

/* On a job thread: the spooled body as one ingest job, then its summary. */
static sl_status detections_done(api_request *req, sl_error *err)
{
    det_answer a = {.d = api_state(req)};
    sl_status rc = ingest_upload_ingest(a.d->u.up, api_store(req), &a.d->rq, &a.sum, err);
    return rc == SL_OK ? api_reply_json_with(req, 200, det_answer_json, &a, err) : rc;
}

/* ---------------------------------------------------------------------------
 * GET /v1/surgeries/{id}/frames?from=F&to=T&limit=N&cursor=C
 * ------------------------------------------------------------------------- */

/* One frame document as {"frame": n, "detections": [...]}; *dets gets its
 * detection count.  SL_ECORRUPT when the document breaks its shape. */
static sl_status frame_json(yajl_gen g, const bson_t *doc, uint32_t *dets, sl_error *err)
{
    sl_status rc = SL_OK;
    bson_iter_t it, arr;
    const char **labels = NULL, **skus = NULL;
    uint32_t *label_len = NULL, *sku_len = NULL;
    uint32_t nlabels = 0, det_len = 0;
    const uint8_t *det = NULL;
    int64_t frame = -1;
    if (bson_iter_init_find(&it, doc, SCHEMA_F_FRAME) && BSON_ITER_HOLDS_INT64(&it))
        frame = bson_iter_int64(&it);
    if (bson_iter_init_find(&it, doc, SCHEMA_F_FRAME_LABELS) && BSON_ITER_HOLDS_ARRAY(&it) &&
        bson_iter_recurse(&it, &arr))
        while (bson_iter_next(&arr))
            nlabels++;
    if (bson_iter_init_find(&it, doc, SCHEMA_F_FRAME_DET) && BSON_ITER_HOLDS_BINARY(&it))
        bson_iter_binary(&it, NULL, &det_len, &det);
    if (frame < 0 || nlabels > SCHEMA_FRAME_LABELS_MAX) {
        rc = sl_error_set(err, SL_ECORRUPT, "frame document without a valid frame or labels");
        goto out;
    }
    labels = calloc(nlabels + 1, sizeof *labels);
    skus = calloc(nlabels + 1, sizeof *skus);
    label_len = calloc(nlabels + 1, sizeof *label_len);
    sku_len = calloc(nlabels + 1, sizeof *sku_len);
    if (!labels || !skus || !label_len || !sku_len) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    uint32_t i = 0;
    if (bson_iter_init_find(&it, doc, SCHEMA_F_FRAME_LABELS) && bson_iter_recurse(&it, &arr))
        for (; bson_iter_next(&arr) && i < nlabels; i++)
            if (BSON_ITER_HOLDS_UTF8(&arr))
                labels[i] = bson_iter_utf8(&arr, &label_len[i]);
    i = 0;
    if (bson_iter_init_find(&it, doc, SCHEMA_F_FRAME_SKUS) && BSON_ITER_HOLDS_ARRAY(&it) &&
        bson_iter_recurse(&it, &arr))
        for (; bson_iter_next(&arr) && i < nlabels; i++)
            if (BSON_ITER_HOLDS_UTF8(&arr))
                skus[i] = bson_iter_utf8(&arr, &sku_len[i]);
    for (i = 0; i < nlabels; i++)
        if (!labels[i]) {
            rc = sl_error_set(err, SL_ECORRUPT, "frame %lld: label %u is not a string",
                              (long long)frame, i);
            goto out;
        }
    if (det_len % SCHEMA_FRAME_DET_SIZE) {
        rc = sl_error_set(err, SL_ECORRUPT, "frame %lld: det holds %u bytes, not whole records",
                          (long long)frame, det_len);
        goto out;
    }
    uint32_t n = det_len / SCHEMA_FRAME_DET_SIZE;
    yajl_gen_map_open(g);
    api_json_kv_int(g, "frame", frame);
    api_json_str(g, "detections");
    yajl_gen_array_open(g);
    for (i = 0; i < n; i++) {
        schema_frame_det d;
        if ((rc = schema_frame_det_unpack(det, det_len, i, nlabels, &d, err)) != SL_OK)
            goto out;
        yajl_gen_map_open(g);
        api_json_str(g, "label");
        api_json_strn(g, labels[d.label], label_len[d.label]);
        api_json_str(g, "sku");
        if (skus[d.label])
            api_json_strn(g, skus[d.label], sku_len[d.label]);
        else
            yajl_gen_null(g);
        api_json_str(g, "confidence");
        json_micro(g, d.confidence);
        api_json_str(g, "box");
        yajl_gen_map_open(g);
        api_json_str(g, "x");
        json_micro(g, d.x);
        api_json_str(g, "y");
        json_micro(g, d.y);
        api_json_str(g, "w");
        json_micro(g, d.w);
        api_json_str(g, "h");
        json_micro(g, d.h);
        yajl_gen_map_close(g);
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    *dets = n;
out:
    free(labels);
    free(skus);
    free(label_len);
    free(sku_len);
    return rc;
}

/* A page of frame documents and what resumes after the frames shown. */
typedef struct frames_page {
    const api_request *req;
    store *st;
    const char *pk;
    store_query_opts *q;
    store_page *page;
    store_page *cut; /* the same query cut to the frames shown, when the budget cut it */
} frames_page;

/* {"frames": [...], "next": cursor or null}: the page's frames up to the
 * detection budget. */
static sl_status frames_json(yajl_gen g, const void *ctx, sl_error *err)
{
    const frames_page *f = ctx;
    sl_status rc = SL_OK;
    size_t shown = 0;
    uint64_t dets = 0;
    yajl_gen_map_open(g);
    api_json_str(g, "frames");
    yajl_gen_array_open(g);
    for (; rc == SL_OK && shown < f->page->count && dets < FRAMES_DET_BUDGET; shown++) {
        bson_t view;
        uint32_t n = 0;
        if (!store_page_view(f->page, shown, &view))
            rc =
                sl_error_set(err, SL_ECORRUPT, "frame document %zu of the page is not BSON", shown);
        else if ((rc = frame_json(g, &view, &n, err)) == SL_OK)
            dets += n;
    }
    yajl_gen_array_close(g);
    const char *next_token = f->page->next_token;
    if (rc == SL_OK && shown < f->page->count) {
        /* The budget cut the page short: the same query limited to the frames
         * shown gives the token that resumes right after them. */
        f->q->limit = shown;
        rc = api_page_query(f->st, STORE_ITEMS, 0, f->pk, f->q, f->cut, err);
        next_token = f->cut->next_token;
    }
    if (rc == SL_OK)
        rc = api_json_cursor(f->req, g, "next", next_token, err);
    yajl_gen_map_close(g);
    return rc;
}

static sl_status frames_get(api_request *req, sl_error *err)
{
    sl_status rc = SL_OK;
    store *st = api_store(req);
    const char *tenant = api_auth_of(req)->tenant, *id = api_param(req, "id");
    int64_t from = 0, to = 0, limit = 0;
    schema_key pk, lo, hi;
    char token[STORE_PAGE_TOKEN_MAX];
    store_page page = {0}, cut = {0};
    bson_t *meta = NULL;
    if ((rc = api_query_int(req, "from", 0, SCHEMA_FRAME_MAX, 0, &from, err)) != SL_OK ||
        (rc = api_query_int(req, "to", 0, SCHEMA_FRAME_MAX, SCHEMA_FRAME_MAX, &to, err)) != SL_OK ||
        (rc = api_query_int(req, "limit", 1, STORE_PAGE_MAX, FRAMES_LIMIT_DEF, &limit, err)) !=
            SL_OK)
        goto out;
    if (from > to) {
        rc = sl_error_set_at(err, SL_EINVAL, "from", -1,
                             "from (%lld) is after to (%lld): the range is empty", (long long)from,
                             (long long)to);
        goto out;
    }
    if ((rc = api_cursor_param(req, token, err)) != SL_OK)
        goto out;
    /* An unknown surgery is 404, not an empty list. */
    if ((rc = surgery_read(st, tenant, id, &meta, err)) != SL_OK)
        goto out;
    if ((rc = schema_pk_surgery(pk, tenant, id, err)) != SL_OK ||
        (rc = schema_sk_frame(lo, (uint32_t)from, err)) != SL_OK ||
        (rc = schema_sk_frame(hi, (uint32_t)to, err)) != SL_OK)
        goto out;
    store_query_opts q = {
        .range = {STORE_RANGE_BETWEEN, lo, hi}, .limit = (size_t)limit, .page_token = token};
    frames_page f = {req, st, pk, &q, &page, &cut};
    if ((rc = api_page_query(st, STORE_ITEMS, 0, pk, &q, &page, err)) == SL_OK)
        rc = api_reply_json_with(req, 200, frames_json, &f, err);
out:
    if (meta)
        bson_destroy(meta);
    store_page_free(&page);
    store_page_free(&cut);
    return rc;
}

static const api_route routes[] = {
    {"PUT", "/v1/surgeries/{id}", API_ROLE_INGEST, API_KIND_HOSPITAL, NULL, API_BODY_BUFFERED, 0,
     API_RUN_INLINE, NULL, NULL, surgery_put},
    {"GET", "/v1/surgeries/{id}", API_ROLE_STAFF | API_ROLE_INGEST, API_KIND_HOSPITAL, NULL,
     API_BODY_NONE, 0, API_RUN_INLINE, NULL, NULL, surgery_get},
    {"POST", "/v1/surgeries/{id}/detections", API_ROLE_INGEST, API_KIND_HOSPITAL,
     "format frame_offset frame_from image_width image_height categories", API_BODY_STREAMED, 0,
     API_RUN_JOB, detections_head, api_upload_chunk, detections_done},
    {"GET", "/v1/surgeries/{id}/frames", API_ROLE_STAFF, API_KIND_HOSPITAL, "from to limit cursor",
     API_BODY_NONE, 0, API_RUN_INLINE, NULL, NULL, frames_get},
};

API_AREA(surgeries, routes);
