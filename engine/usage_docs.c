/* usage_docs.c -- the documents of a usage analysis (docs/documents.md,
 * "tool_result", "surgery_summary") and their writes: every result in sort
 * key order, then the deletes of the TOOL# results an earlier run left that
 * this one did not write, then the SUMMARY, in batches of at most
 * ENGINE_USAGE_BATCH_DOCS documents, each fenced on the surgery META's
 * version read when the analysis began.  Field order is fixed, so the same
 * analysis encodes to the same bytes and the store skips the write. */
#include "usage_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------
 * Batches.
 * ------------------------------------------------------------------------- */
typedef struct batcher {
    store *s;
    const char *pk, *surgery;
    int64_t meta_version;
    store_op ops[ENGINE_USAGE_BATCH_DOCS + 1]; /* + the fence */
    bson_t docs[ENGINE_USAGE_BATCH_DOCS];
    char sks[ENGINE_USAGE_BATCH_DOCS][STORE_KEY_MAX];
    size_t n, ndocs;
    int64_t written, deleted;
} batcher;

static sl_status flush(batcher *b, sl_error *err)
{
    sl_status rc = SL_OK;
    if (!b->n)
        goto out;
    b->ops[b->n] = (store_op){.kind = STORE_OP_CHECK,
                              .table = STORE_ITEMS,
                              .pk = b->pk,
                              .sk = SCHEMA_SK_META,
                              .cond = {STORE_COND_VERSION, b->meta_version}};
    sl_error e;
    sl_error_clear(&e);
    rc = store_write_batch(b->s, b->ops, b->n + 1, &e);
    if (rc == SL_ECONDITION) {
        char want[16];
        snprintf(want, sizeof want, "ops[%zu]", b->n);
        if (!strcmp(e.field, want)) {
            rc = sl_error_set_at(err, SL_ECONDITION, "surgery", -1,
                                 "surgery \"%s\" changed while it was analyzed (its "
                                 "description was replaced, or another analysis ended): "
                                 "analyze it again",
                                 b->surgery);
            goto out;
        }
    }
    if (rc != SL_OK) {
        sl_error_set_at(err, rc, e.field, e.offset, "writing the usage results: %s", e.message);
        goto out;
    }
    for (size_t i = 0; i < b->n; i++)
        if (b->ops[i].kind == STORE_OP_PUT)
            b->written += b->ops[i].result.changed != 0;
out:
    for (size_t i = 0; i < b->ndocs; i++)
        bson_destroy(&b->docs[i]);
    b->n = b->ndocs = 0;
    return rc;
}

/* A document slot of the batch, initialized; flushes first when full. */
static sl_status put_slot(batcher *b, bson_t **doc, sl_error *err)
{
    sl_status rc = SL_OK;
    if (b->n == ENGINE_USAGE_BATCH_DOCS && (rc = flush(b, err)) != SL_OK)
        return rc;
    *doc = &b->docs[b->ndocs++];
    bson_init(*doc);
    b->ops[b->n++] = (store_op){
        .kind = STORE_OP_PUT, .table = STORE_ITEMS, .doc = *doc, .cond = {STORE_COND_NONE, 0}};
    return SL_OK;
}

static sl_status delete_op(batcher *b, const char *sk, sl_error *err)
{
    sl_status rc = SL_OK;
    if (b->n == ENGINE_USAGE_BATCH_DOCS && (rc = flush(b, err)) != SL_OK)
        return rc;
    char *k = b->sks[b->n];
    snprintf(k, STORE_KEY_MAX, "%s", sk);
    b->ops[b->n++] = (store_op){.kind = STORE_OP_DELETE,
                                .table = STORE_ITEMS,
                                .pk = b->pk,
                                .sk = k,
                                .cond = {STORE_COND_NONE, 0}};
    b->deleted++;
    return SL_OK;
}

/* ---------------------------------------------------------------------------
 * Documents.
 * ------------------------------------------------------------------------- */
static bool append_common(bson_t *d, const char *pk, const char *sk, const char *type,
                          const engine__usage_run *run)
{
    return BSON_APPEND_UTF8(d, SCHEMA_F_PK, pk) && BSON_APPEND_UTF8(d, SCHEMA_F_SK, sk) &&
           BSON_APPEND_UTF8(d, SCHEMA_F_TYPE, type) &&
           BSON_APPEND_UTF8(d, SCHEMA_F_TENANT, run->tenant) &&
           BSON_APPEND_UTF8(d, SCHEMA_F_SURGERY, run->surgery) &&
           BSON_APPEND_UTF8(d, SCHEMA_F_HOSPITAL, run->meta->hospital) &&
           BSON_APPEND_UTF8(d, SCHEMA_F_PROCEDURE, run->meta->procedure);
}

static bool result_doc(bson_t *d, const char *pk, const char *sk, const engine__usage_run *run,
                       const engine__usage_instance *in)
{
    const schema_catalog_entry *e = schema_catalog_at(run->catalog, in->sku);
    bson_t arr, box;
    char idx[16];
    const char *key;
    bool ok = append_common(d, pk, sk, SCHEMA_TYPE_TOOL_RESULT, run) &&
              BSON_APPEND_UTF8(d, SCHEMA_F_SKU, e->sku) &&
              BSON_APPEND_UTF8(d, SCHEMA_F_NAME, e->name) &&
              BSON_APPEND_INT32(d, SCHEMA_F_INSTANCE, (int32_t)in->number) &&
              BSON_APPEND_BOOL(d, SCHEMA_F_OPENED, true) &&
              BSON_APPEND_BOOL(d, SCHEMA_F_USED, in->used) &&
              BSON_APPEND_BOOL(d, SCHEMA_F_SINGLE_USE, e->single_use) &&
              BSON_APPEND_INT64(d, SCHEMA_F_UNIT_COST_CENTS, e->unit_cost_cents) &&
              BSON_APPEND_INT64(d, SCHEMA_F_FIRST_SEEN_FRAME, in->first_seen_frame) &&
              BSON_APPEND_INT64(d, SCHEMA_F_FIRST_FRAME, in->first_frame) &&
              BSON_APPEND_INT64(d, SCHEMA_F_LAST_FRAME, in->last_frame) &&
              BSON_APPEND_INT64(d, SCHEMA_F_LEFT_FRAME, in->left_frame) &&
              BSON_APPEND_INT64(d, SCHEMA_F_RETURNED_FRAME, in->returned_frame) &&
              BSON_APPEND_INT64(d, SCHEMA_F_CONFIDENCE_MICRO, in->confidence_micro) &&
              BSON_APPEND_ARRAY_BEGIN(d, SCHEMA_F_EVIDENCE, &arr);
    for (uint32_t i = 0; ok && i < in->nevidence; i++) {
        bson_uint32_to_string(i, &key, idx, sizeof idx);
        ok = bson_append_int64(&arr, key, -1, in->evidence[i]);
    }
    ok = ok && bson_append_array_end(d, &arr) &&
         BSON_APPEND_DOCUMENT_BEGIN(d, SCHEMA_F_SLOT, &box) &&
         BSON_APPEND_INT64(&box, "x", in->slot[0]) && BSON_APPEND_INT64(&box, "y", in->slot[1]) &&
         BSON_APPEND_INT64(&box, "w", in->slot[2]) && BSON_APPEND_INT64(&box, "h", in->slot[3]) &&
         bson_append_document_end(d, &box);
    return ok;
}

/* Per SKU opened: its totals, in catalog (SKU byte) order. */
typedef struct sku_total {
    uint32_t sku;
    int64_t opened, used;
} sku_total;

static sl_status summary_doc(bson_t *d, const char *pk, const engine__usage_run *run,
                             const sku_total *tot, size_t ntot, engine_usage_result *res,
                             sl_error *err)
{
    sl_status rc = SL_OK;
    schema_key gpk, gsk;
    char when[25], date[11], idx[16];
    const char *key;
    int64_t opened = 0, used = 0, waste = 0;
    schema_time_format(run->meta->started_ms, when);
    memcpy(date, when, 10);
    date[10] = '\0';
    if ((rc = schema_pk_hospital_procedure(gpk, run->tenant, run->meta->hospital,
                                           run->meta->procedure, err)) != SL_OK ||
        (rc = schema_sk_surgery_date(gsk, date, run->surgery, err)) != SL_OK)
        goto out;
    for (size_t i = 0; i < ntot; i++) {
        const schema_catalog_entry *e = schema_catalog_at(run->catalog, tot[i].sku);
        opened += tot[i].opened;
        used += tot[i].used;
        waste += e->single_use ? (tot[i].opened - tot[i].used) * e->unit_cost_cents : 0;
    }
    bson_t arr, t, prm;
    bool ok = BSON_APPEND_UTF8(d, SCHEMA_F_PK, pk) &&
              BSON_APPEND_UTF8(d, SCHEMA_F_SK, SCHEMA_SK_SUMMARY) &&
              BSON_APPEND_UTF8(d, SCHEMA_F_GSI1PK, gpk) &&
              BSON_APPEND_UTF8(d, SCHEMA_F_GSI1SK, gsk) &&
              BSON_APPEND_UTF8(d, SCHEMA_F_TYPE, SCHEMA_TYPE_SUMMARY) &&
              BSON_APPEND_UTF8(d, SCHEMA_F_TENANT, run->tenant) &&
              BSON_APPEND_UTF8(d, SCHEMA_F_SURGERY, run->surgery) &&
              BSON_APPEND_UTF8(d, SCHEMA_F_HOSPITAL, run->meta->hospital) &&
              BSON_APPEND_UTF8(d, SCHEMA_F_PROCEDURE, run->meta->procedure) &&
              BSON_APPEND_INT64(d, SCHEMA_F_OPENED, opened) &&
              BSON_APPEND_INT64(d, SCHEMA_F_USED, used) &&
              BSON_APPEND_INT64(d, SCHEMA_F_UNUSED, opened - used) &&
              BSON_APPEND_INT64(d, SCHEMA_F_WASTE_CENTS, waste) &&
              BSON_APPEND_ARRAY_BEGIN(d, SCHEMA_F_TOOLS, &arr);
    for (size_t i = 0; ok && i < ntot; i++) {
        const schema_catalog_entry *e = schema_catalog_at(run->catalog, tot[i].sku);
        int64_t unused = tot[i].opened - tot[i].used;
        bson_uint32_to_string((uint32_t)i, &key, idx, sizeof idx);
        ok = bson_append_document_begin(&arr, key, -1, &t) &&
             BSON_APPEND_UTF8(&t, SCHEMA_F_SKU, e->sku) &&
             BSON_APPEND_UTF8(&t, SCHEMA_F_NAME, e->name) &&
             BSON_APPEND_INT64(&t, SCHEMA_F_OPENED_UNITS, tot[i].opened) &&
             BSON_APPEND_INT64(&t, SCHEMA_F_USED_UNITS, tot[i].used) &&
             BSON_APPEND_INT64(&t, SCHEMA_F_UNUSED_UNITS, unused) &&
             BSON_APPEND_INT64(&t, SCHEMA_F_UNIT_COST_CENTS, e->unit_cost_cents) &&
             BSON_APPEND_BOOL(&t, SCHEMA_F_SINGLE_USE, e->single_use) &&
             BSON_APPEND_INT64(&t, SCHEMA_F_WASTE_CENTS,
                               e->single_use ? unused * e->unit_cost_cents : 0) &&
             bson_append_document_end(&arr, &t);
    }
    ok = ok && bson_append_array_end(d, &arr) &&
         BSON_APPEND_INT64(d, SCHEMA_F_FRAMES, run->counts.frames) &&
         BSON_APPEND_INT64(d, SCHEMA_F_FRAMES_EMPTY, run->counts.frames_empty) &&
         BSON_APPEND_INT64(d, SCHEMA_F_DETECTIONS, run->counts.detections) &&
         BSON_APPEND_INT64(d, SCHEMA_F_UNMAPPED_DETECTIONS, run->counts.unmapped_detections) &&
         BSON_APPEND_ARRAY_BEGIN(d, SCHEMA_F_UNMAPPED_LABELS, &arr);
    for (size_t i = 0; ok && i < run->nunmapped; i++) {
        const engine__usage_label *l = &run->unmapped[i];
        bson_uint32_to_string((uint32_t)i, &key, idx, sizeof idx);
        ok = bson_append_document_begin(&arr, key, -1, &t) &&
             bson_append_utf8(&t, SCHEMA_F_LABEL, -1, l->label, (int)l->len) &&
             BSON_APPEND_INT64(&t, SCHEMA_F_DETECTIONS, l->detections) &&
             BSON_APPEND_BOOL(&t, SCHEMA_F_OCCLUDER, l->occluder) &&
             bson_append_document_end(&arr, &t);
    }
    ok = ok && bson_append_array_end(d, &arr) &&
         BSON_APPEND_DOCUMENT_BEGIN(d, SCHEMA_F_PARAMS, &prm);
    for (size_t i = 0; ok && i < engine_usage_param_count(); i++) {
        const engine_usage_param_info *f = engine_usage_param_at(i);
        if (f->is_text)
            ok = BSON_APPEND_UTF8(&prm, f->name, run->params->occluder_pattern);
        else
            ok = BSON_APPEND_INT64(&prm, f->name, engine__usage_param_value(run->params, i));
    }
    ok = ok && bson_append_document_end(d, &prm);
    if (!ok) {
        rc = sl_error_set(err, SL_ETOOLARGE,
                          "the usage summary of surgery \"%s\" does not fit in "
                          "a document",
                          run->surgery);
        goto out;
    }
    res->opened = opened;
    res->used = used;
    res->unused = opened - used;
    res->waste_cents = waste;
out:
    return rc;
}

/* ---------------------------------------------------------------------------
 * The writes.
 * ------------------------------------------------------------------------- */
typedef struct keyed {
    char sk[SCHEMA_KEY_MAX];
    const engine__usage_instance *in;
} keyed;

static int by_sk(const void *x, const void *y)
{
    return strcmp(((const keyed *)x)->sk, ((const keyed *)y)->sk);
}

sl_status engine__usage_write(store *s, const engine__usage_run *run, engine_usage_result *out,
                              sl_error *err)
{
    sl_status rc = SL_OK;
    schema_key pk;
    size_t n = engine__usage_count(run->tracker), ntot = 0;
    keyed *keys = NULL;
    sku_total *tot = NULL;
    store_page page = {0};
    char token[STORE_PAGE_TOKEN_MAX] = "";
    batcher *b = calloc(1, sizeof *b);
    if (!b || (n && (!(keys = malloc(n * sizeof *keys)) || !(tot = calloc(n, sizeof *tot))))) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory writing the usage results");
        goto out;
    }
    if ((rc = schema_pk_surgery(pk, run->tenant, run->surgery, err)) != SL_OK)
        goto out;
    *b = (batcher){.s = s, .pk = pk, .surgery = run->surgery, .meta_version = run->meta->version};
    /* Totals per SKU (instances come ordered by SKU), and the keys in the
     * store's (byte) order. */
    for (size_t i = 0; i < n; i++) {
        const engine__usage_instance *in = engine__usage_at(run->tracker, i);
        const schema_catalog_entry *e = schema_catalog_at(run->catalog, in->sku);
        if (!ntot || tot[ntot - 1].sku != in->sku)
            tot[ntot++] = (sku_total){in->sku, 0, 0};
        tot[ntot - 1].opened++;
        tot[ntot - 1].used += in->used;
        keys[i].in = in;
        if ((rc = schema_sk_tool_instance(keys[i].sk, e->sku, in->number, err)) != SL_OK)
            goto out;
    }
    if (ntot > ENGINE_SUMMARY_TOOLS_MAX) {
        rc = sl_error_set_at(err, SL_ETOOLARGE, SCHEMA_F_TOOLS, -1,
                             "more than %d SKUs opened in one surgery", ENGINE_SUMMARY_TOOLS_MAX);
        goto out;
    }
    if (n)
        qsort(keys, n, sizeof *keys, by_sk);
    for (size_t i = 0; i < n; i++) {
        bson_t *d;
        if ((rc = put_slot(b, &d, err)) != SL_OK)
            goto out;
        if (!result_doc(d, pk, keys[i].sk, run, keys[i].in)) {
            rc = sl_error_set(err, SL_ETOOLARGE, "tool result %s does not fit in a document",
                              keys[i].sk);
            goto out;
        }
    }
    /* Every TOOL# document of the surgery is a result of an analysis: those
     * this run did not write are stale (a SKU the catalog no longer maps, an
     * instance new parameters no longer see). */
    for (;;) {
        store_query_opts q = {.range = {STORE_RANGE_BEGINS_WITH, SCHEMA_SK_TOOL_PREFIX, NULL},
                              .limit = STORE_PAGE_MAX,
                              .page_token = token[0] ? token : NULL};
        if ((rc = store_query(s, STORE_ITEMS, pk, &q, &page, err)) != SL_OK)
            goto out;
        for (size_t i = 0; i < page.count; i++) {
            keyed probe;
            snprintf(probe.sk, sizeof probe.sk, "%s", page.docs[i].sk);
            if ((!n || !bsearch(&probe, keys, n, sizeof *keys, by_sk)) &&
                (rc = delete_op(b, page.docs[i].sk, err)) != SL_OK)
                goto out;
        }
        if (!page.next_token)
            break;
        snprintf(token, sizeof token, "%s", page.next_token);
        store_page_free(&page);
    }
    bson_t *d;
    if ((rc = put_slot(b, &d, err)) != SL_OK ||
        (rc = summary_doc(d, pk, run, tot, ntot, out, err)) != SL_OK ||
        (rc = flush(b, err)) != SL_OK)
        goto out;
    out->instances = (int64_t)n;
    out->written = b->written;
    out->deleted = b->deleted;
out:
    if (b) {
        for (size_t i = 0; i < b->ndocs; i++)
            bson_destroy(&b->docs[i]);
        free(b);
    }
    store_page_free(&page);
    free(keys);
    free(tot);
    return rc;
}
