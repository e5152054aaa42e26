/* routes_assets.c -- brand asset scores: PUT, GET and DELETE one asset (moving
 * it to another brand is an ordinary PUT), and POST /v1/assets:batch: NDJSON
 * spooled while it arrives, then stored as one atomic batch. */
#include "api_int.h"

#include <stdlib.h>
#include <string.h>

#include "ingest/ingest.h"

/* The asset as clients send it (the PUT body plus "asset") and "version"
 * (the document's own when version < 0); keys and the exact micro-unit
 * copies of the scores stay inside. */
/* An asset as stored, without its keys and internal fields.  `brand_id` and
 * `model_version` are stored as "" when not given and shown only when given,
 * so that what GET answers can be PUT back as it is. */
static void asset_json(yajl_gen g, const bson_t *doc, int64_t version)
{
    const char *hidden[] = {SCHEMA_F_PK,
                            SCHEMA_F_SK,
                            SCHEMA_F_GSI1PK,
                            SCHEMA_F_GSI1SK,
                            SCHEMA_F_GSI2PK,
                            SCHEMA_F_GSI2SK,
                            SCHEMA_F_TYPE,
                            SCHEMA_F_VERSION,
                            "tenant",
                            "memorability_micro",
                            "saliency_micro",
                            NULL,
                            NULL};
    size_t n = sizeof hidden / sizeof hidden[0] - 2;
    static const char *const optional[] = {"brand_id", "model_version"};
    for (size_t i = 0; i < sizeof optional / sizeof optional[0]; i++) {
        const char *v = api_doc_str(doc, optional[i]);
        if (v && !v[0])
            hidden[n++] = optional[i];
    }
    yajl_gen_map_open(g);
    api_json_bson_fields(g, doc, hidden, n);
    api_json_kv_version(g, doc, version);
    yajl_gen_map_close(g);
}

static sl_status asset_put(api_request *req, sl_error *err)
{
    return api_put_body(req, "id", ingest_asset_doc, asset_json, "/v1/assets/", err);
}

static sl_status asset_get(api_request *req, sl_error *err)
{
    bson_t *doc = NULL;
    schema_key pk;
    const char *id = api_param(req, "id");
    sl_status rc = schema_pk_asset(pk, api_auth_of(req)->tenant, id, err);
    if (rc == SL_OK)
        rc = api_get_doc(api_store(req), STORE_ITEMS, pk, SCHEMA_SK_META, &doc, err, "id",
                         "no asset \"%s\"", id);
    if (rc == SL_OK)
        rc = api_reply_doc(req, NULL, doc, asset_json, NULL, err);
    if (doc)
        bson_destroy(doc);
    return rc;
}

static sl_status asset_delete(api_request *req, sl_error *err)
{
    int deleted = 0;
    const char *id = api_param(req, "id");
    sl_status rc = ingest_asset_delete(api_store(req), api_auth_of(req)->tenant, id, &deleted, err);
    if (rc == SL_OK && !deleted)
        rc = sl_error_set_at(err, SL_ENOTFOUND, "id", -1, "no asset \"%s\"", id);
    if (rc == SL_OK)
        rc = api_reply_empty(req, 204, err);
    return rc;
}

/* ---------------------------------------------------------------------------
 * POST /v1/assets:batch: NDJSON asset lines, all stored or none.
 * ------------------------------------------------------------------------- */
static void batch_upload_free(void *p)
{
    api_upload *b = p;
    if (b) {
        ingest_upload_free(&b->up);
        free(b);
    }
}

/* The head hook: the spool file is opened before the body is read (a
 * missing upload directory is answered at once); the server frees the state
 * with batch_upload_free when the request ends. */
static sl_status batch_head(api_request *req, sl_error *err)
{
    sl_status rc = SL_OK;
    api_upload *b = calloc(1, sizeof *b);
    if (!b) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory starting an upload");
        goto out;
    }
    api_state_set(req, b, batch_upload_free);
    rc = api_upload_start(req, &b->lim, &b->up, err);
out:
    return rc;
}

static sl_status batch_json(yajl_gen g, const void *ctx, sl_error *err)
{
    const ingest_summary *sum = ctx;
    yajl_gen_map_open(g);
    api_json_kv_int(g, "assets", (int64_t)sum->assets);
    api_json_kv_int(g, "changed", (int64_t)sum->changed);
    api_json_kv_int(g, "bytes", (int64_t)sum->bytes);
    yajl_gen_map_close(g);
    return SL_OK;
}

/* On a job thread: the spooled NDJSON as one atomic batch. */
static sl_status batch_done(api_request *req, sl_error *err)
{
    api_upload *b = api_state(req);
    ingest_summary sum;
    ingest_request rq = {
        .tenant = api_auth_of(req)->tenant, .format = INGEST_FORMAT_ASSETS, .limits = &b->lim};
    sl_status rc = ingest_upload_ingest(b->up, api_store(req), &rq, &sum, err);
    return rc == SL_OK ? api_reply_json_with(req, 200, batch_json, &sum, err) : rc;
}

static const api_route routes[] = {
    {"PUT", "/v1/assets/{id}", API_ROLE_INGEST, API_KIND_BRAND, NULL, API_BODY_BUFFERED, 0,
     API_RUN_INLINE, NULL, NULL, asset_put},
    {"GET", "/v1/assets/{id}", API_ROLE_VIEWER, API_KIND_BRAND, NULL, API_BODY_NONE, 0,
     API_RUN_INLINE, NULL, NULL, asset_get},
    {"DELETE", "/v1/assets/{id}", API_ROLE_INGEST, API_KIND_BRAND, NULL, API_BODY_NONE, 0,
     API_RUN_INLINE, NULL, NULL, asset_delete},
    {"POST", "/v1/assets:batch", API_ROLE_INGEST, API_KIND_BRAND, NULL, API_BODY_STREAMED, 0,
     API_RUN_JOB, batch_head, api_upload_chunk, batch_done},
};

API_AREA(assets, routes);
