/* usage_read.c -- the tool-usage read model (engine.h, "The tool-usage read
 * model"): what a surgery's analysis found, as plain numbers, read from ONE
 * store snapshot -- the surgery's META (description and life cycle), its
 * SUMMARY, every TOOL# result, the last frame's number and the tenant's
 * current catalog -- so that a report (and the JSON API) shows numbers that
 * belong together even while an analysis rewrites them.
 *
 * Strict like the analysis's own readers: a document of the surgery that
 * does not read is SL_ECORRUPT naming it and the field; nothing is guessed.
 * The catalog is read only to tell the reader which entries changed since
 * the analysis priced the surgery (a data-quality note): the numbers are the
 * summary's and the results', exactly as GET /v1/surgeries/{id}/usage
 * answers them. */
#include "engine.h"

#include <stdlib.h>
#include <string.h>

/* The description's free-text fields (ingest/surgery.c writes them). */
#define F_ROOM    "room"
#define F_SURGEON "surgeon"

/* ---------------------------------------------------------------------------
 * Small readers.
 * ------------------------------------------------------------------------- */
static sl_status corrupt(sl_error *err, const char *what, const char *field, const char *why)
{
    return sl_error_set_at(err, SL_ECORRUPT, field, -1, "%s: %s %s", what, field, why);
}

/* A string field of at most cap - 1 bytes into out; absent leaves out "". */
static sl_status text_into(const bson_iter_t *it, const char *what, char *out, size_t cap,
                           sl_error *err)
{
    uint32_t len = 0;
    const char *v;
    if (!BSON_ITER_HOLDS_UTF8(it))
        return corrupt(err, what, bson_iter_key(it), "is not a string");
    v = bson_iter_utf8(it, &len);
    if (len >= cap || memchr(v, '\0', len))
        return corrupt(err, what, bson_iter_key(it), "is too long or holds a NUL byte");
    memcpy(out, v, len);
    out[len] = '\0';
    return SL_OK;
}

static sl_status int_into(const bson_iter_t *it, const char *what, int64_t min, int64_t *out,
                          sl_error *err)
{
    if (!BSON_ITER_HOLDS_INT32(it) && !BSON_ITER_HOLDS_INT64(it))
        return corrupt(err, what, bson_iter_key(it), "is not an integer");
    *out = bson_iter_as_int64(it);
    if (*out < min)
        return corrupt(err, what, bson_iter_key(it), "is out of range");
    return SL_OK;
}

static sl_status bool_into(const bson_iter_t *it, const char *what, bool *out, sl_error *err)
{
    if (!BSON_ITER_HOLDS_BOOL(it))
        return corrupt(err, what, bson_iter_key(it), "is not a boolean");
    *out = bson_iter_bool(it);
    return SL_OK;
}

/* ---------------------------------------------------------------------------
 * The META.
 * ------------------------------------------------------------------------- */
static sl_status read_meta(store *snap, const char *pk, const char *surgery, engine_usage_view *v,
                           sl_error *err)
{
    sl_status rc;
    bson_t *doc = NULL;
    bson_iter_t it;
    sl_error e;
    sl_error_clear(&e);
    const char *what = "the surgery's META";
    if ((rc = store_get(snap, STORE_ITEMS, pk, SCHEMA_SK_META, &doc, &e)) != SL_OK) {
        if (rc == SL_ENOTFOUND)
            rc = sl_error_set_at(err, SL_ENOTFOUND, "surgery", -1, "no surgery \"%s\"", surgery);
        else
            sl_error_set_at(err, rc, e.field, e.offset, "%s", e.message);
        goto out;
    }
    if ((rc = schema_surgery_life_from_bson(doc, &v->life, err)) != SL_OK)
        goto out;
    if (!bson_iter_init(&it, doc)) {
        rc = corrupt(err, what, "document", "is not BSON");
        goto out;
    }
    while (rc == SL_OK && bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        if (!strcmp(k, SCHEMA_F_VERSION))
            rc = int_into(&it, what, 0, &v->meta_version, err);
        else if (!strcmp(k, SCHEMA_F_HOSPITAL))
            rc = text_into(&it, what, v->hospital, sizeof v->hospital, err);
        else if (!strcmp(k, SCHEMA_F_PROCEDURE))
            rc = text_into(&it, what, v->procedure, sizeof v->procedure, err);
        else if (!strcmp(k, F_ROOM))
            rc = text_into(&it, what, v->room, sizeof v->room, err);
        else if (!strcmp(k, F_SURGEON))
            rc = text_into(&it, what, v->surgeon, sizeof v->surgeon, err);
        else if (!strcmp(k, SCHEMA_F_STARTED_MS))
            rc = int_into(&it, what, 0, &v->started_ms, err);
        else if (!strcmp(k, SCHEMA_F_FPS)) {
            if (!BSON_ITER_HOLDS_NUMBER(&it) || !(bson_iter_as_double(&it) > 0))
                rc = corrupt(err, what, k, "is not a frame rate above 0");
            else
                v->fps = bson_iter_as_double(&it);
        }
    }
    if (rc == SL_OK && (!v->hospital[0] || !v->procedure[0] || !(v->fps > 0)))
        rc = corrupt(err, what,
                     !v->hospital[0]    ? SCHEMA_F_HOSPITAL
                     : !v->procedure[0] ? SCHEMA_F_PROCEDURE
                                        : SCHEMA_F_FPS,
                     "is missing");
out:
    if (doc)
        bson_destroy(doc);
    return rc;
}

/* ---------------------------------------------------------------------------
 * The SUMMARY.
 * ------------------------------------------------------------------------- */
static sl_status read_tool(bson_iter_t *t, engine_usage_tool *o, sl_error *err)
{
    bson_iter_t f;
    sl_status rc = SL_OK;
    const char *what = "the surgery's summary tools";
    memset(o, 0, sizeof *o);
    if (!BSON_ITER_HOLDS_DOCUMENT(t) || !bson_iter_recurse(t, &f))
        return corrupt(err, what, SCHEMA_F_TOOLS, "holds an entry that is not a document");
    while (rc == SL_OK && bson_iter_next(&f)) {
        const char *k = bson_iter_key(&f);
        if (!strcmp(k, SCHEMA_F_SKU))
            rc = text_into(&f, what, o->sku, sizeof o->sku, err);
        else if (!strcmp(k, SCHEMA_F_NAME))
            rc = text_into(&f, what, o->name, sizeof o->name, err);
        else if (!strcmp(k, SCHEMA_F_OPENED_UNITS))
            rc = int_into(&f, what, 0, &o->opened, err);
        else if (!strcmp(k, SCHEMA_F_USED_UNITS))
            rc = int_into(&f, what, 0, &o->used, err);
        else if (!strcmp(k, SCHEMA_F_UNUSED_UNITS))
            rc = int_into(&f, what, 0, &o->unused, err);
        else if (!strcmp(k, SCHEMA_F_UNIT_COST_CENTS))
            rc = int_into(&f, what, 0, &o->unit_cost_cents, err);
        else if (!strcmp(k, SCHEMA_F_WASTE_CENTS))
            rc = int_into(&f, what, 0, &o->waste_cents, err);
        else if (!strcmp(k, SCHEMA_F_SINGLE_USE))
            rc = bool_into(&f, what, &o->single_use, err);
    }
    if (rc == SL_OK && !o->sku[0])
        rc = corrupt(err, what, SCHEMA_F_SKU, "is missing");
    if (rc == SL_OK && !o->name[0])
        snprintf(o->name, sizeof o->name, "%s", o->sku);
    return rc;
}

static sl_status read_label(bson_iter_t *t, engine_usage_label *o, sl_error *err)
{
    bson_iter_t f;
    sl_status rc = SL_OK;
    const char *what = "the surgery's summary unmapped_labels";
    memset(o, 0, sizeof *o);
    if (!BSON_ITER_HOLDS_DOCUMENT(t) || !bson_iter_recurse(t, &f))
        return corrupt(err, what, SCHEMA_F_UNMAPPED_LABELS,
                       "holds an entry that is not a document");
    while (rc == SL_OK && bson_iter_next(&f)) {
        const char *k = bson_iter_key(&f);
        if (!strcmp(k, SCHEMA_F_LABEL))
            rc = text_into(&f, what, o->label, sizeof o->label, err);
        else if (!strcmp(k, SCHEMA_F_DETECTIONS))
            rc = int_into(&f, what, 0, &o->detections, err);
        else if (!strcmp(k, SCHEMA_F_OCCLUDER))
            rc = bool_into(&f, what, &o->occluder, err);
    }
    return rc;
}

static sl_status read_summary(store *snap, const char *pk, const char *surgery,
                              engine_usage_view *v, sl_error *err)
{
    sl_status rc;
    bson_t *doc = NULL;
    bson_iter_t it, arr;
    sl_error e;
    sl_error_clear(&e);
    const char *what = "the surgery's summary";
    if ((rc = store_get(snap, STORE_ITEMS, pk, SCHEMA_SK_SUMMARY, &doc, &e)) != SL_OK) {
        if (rc == SL_ENOTFOUND)
            rc = sl_error_set_at(err, SL_ECORRUPT, "surgery", -1,
                                 "surgery \"%s\" is analyzed but has no summary", surgery);
        else
            sl_error_set_at(err, rc, e.field, e.offset, "%s", e.message);
        goto out;
    }
    if (!bson_iter_init(&it, doc)) {
        rc = corrupt(err, what, "document", "is not BSON");
        goto out;
    }
    while (rc == SL_OK && bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        if (!strcmp(k, SCHEMA_F_VERSION))
            rc = int_into(&it, what, 0, &v->summary_version, err);
        else if (!strcmp(k, SCHEMA_F_OPENED))
            rc = int_into(&it, what, 0, &v->opened, err);
        else if (!strcmp(k, SCHEMA_F_USED))
            rc = int_into(&it, what, 0, &v->used, err);
        else if (!strcmp(k, SCHEMA_F_UNUSED))
            rc = int_into(&it, what, 0, &v->unused, err);
        else if (!strcmp(k, SCHEMA_F_WASTE_CENTS))
            rc = int_into(&it, what, 0, &v->waste_cents, err);
        else if (!strcmp(k, SCHEMA_F_FRAMES))
            rc = int_into(&it, what, 0, &v->frames, err);
        else if (!strcmp(k, SCHEMA_F_FRAMES_EMPTY))
            rc = int_into(&it, what, 0, &v->frames_empty, err);
        else if (!strcmp(k, SCHEMA_F_DETECTIONS))
            rc = int_into(&it, what, 0, &v->detections, err);
        else if (!strcmp(k, SCHEMA_F_UNMAPPED_DETECTIONS))
            rc = int_into(&it, what, 0, &v->unmapped_detections, err);
        else if (!strcmp(k, SCHEMA_F_TOOLS)) {
            uint32_t n = 0;
            if (!BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &arr)) {
                rc = corrupt(err, what, k, "is not an array");
                break;
            }
            bson_iter_t cnt = arr;
            while (bson_iter_next(&cnt))
                n++;
            if (n > ENGINE_SUMMARY_TOOLS_MAX) {
                rc = corrupt(err, what, k, "has more entries than a summary holds");
                break;
            }
            free(v->tools);
            v->ntools = 0;
            if (!(v->tools = calloc(n ? n : 1, sizeof *v->tools))) {
                rc = sl_error_set(err, SL_ENOMEM, "out of memory reading a usage summary");
                break;
            }
            while (rc == SL_OK && bson_iter_next(&arr))
                if ((rc = read_tool(&arr, &v->tools[v->ntools], err)) == SL_OK)
                    v->ntools++;
        } else if (!strcmp(k, SCHEMA_F_UNMAPPED_LABELS)) {
            if (!BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &arr)) {
                rc = corrupt(err, what, k, "is not an array");
                break;
            }
            v->nunmapped = 0;
            while (rc == SL_OK && bson_iter_next(&arr)) {
                if (v->nunmapped == SCHEMA_UNMAPPED_LABELS_MAX) {
                    rc = corrupt(err, what, k, "has more entries than a summary holds");
                    break;
                }
                if ((rc = read_label(&arr, &v->unmapped[v->nunmapped], err)) == SL_OK)
                    v->nunmapped++;
            }
        }
    }
out:
    if (doc)
        bson_destroy(doc);
    return rc;
}

/* ---------------------------------------------------------------------------
 * The TOOL# results, in key order (SKU, then instance number).
 * ------------------------------------------------------------------------- */
static size_t tool_of(const engine_usage_view *v, const char *sku, size_t hint)
{
    if (hint < v->ntools && !strcmp(v->tools[hint].sku, sku))
        return hint;
    for (size_t i = 0; i < v->ntools; i++)
        if (!strcmp(v->tools[i].sku, sku))
            return i;
    return SIZE_MAX;
}

static sl_status read_result(const engine_usage_view *v, const store_page *page, size_t i,
                             engine_usage_instance *o, size_t *hint, sl_error *err)
{
    bson_t view;
    bson_iter_t f;
    sl_status rc = SL_OK;
    char sku[SCHEMA_COMPONENT_MAX + 1] = "";
    const char *what = page->docs[i].sk;
    memset(o, 0, sizeof *o);
    o->left_frame = o->returned_frame = -1;
    o->version = page->docs[i].version;
    if (!store_page_view(page, i, &view) || !bson_iter_init(&f, &view))
        return corrupt(err, what, "document", "is not BSON");
    while (rc == SL_OK && bson_iter_next(&f)) {
        const char *k = bson_iter_key(&f);
        int64_t n;
        if (!strcmp(k, SCHEMA_F_SKU))
            rc = text_into(&f, what, sku, sizeof sku, err);
        else if (!strcmp(k, SCHEMA_F_INSTANCE)) {
            if ((rc = int_into(&f, what, 1, &n, err)) == SL_OK)
                o->instance = (int32_t)(n > SCHEMA_INSTANCE_MAX ? SCHEMA_INSTANCE_MAX : n);
        } else if (!strcmp(k, SCHEMA_F_USED))
            rc = bool_into(&f, what, &o->used, err);
        else if (!strcmp(k, SCHEMA_F_FIRST_SEEN_FRAME))
            rc = int_into(&f, what, 0, &o->first_seen_frame, err);
        else if (!strcmp(k, SCHEMA_F_FIRST_FRAME))
            rc = int_into(&f, what, 0, &o->first_frame, err);
        else if (!strcmp(k, SCHEMA_F_LAST_FRAME))
            rc = int_into(&f, what, 0, &o->last_frame, err);
        else if (!strcmp(k, SCHEMA_F_LEFT_FRAME))
            rc = int_into(&f, what, -1, &o->left_frame, err);
        else if (!strcmp(k, SCHEMA_F_RETURNED_FRAME))
            rc = int_into(&f, what, -1, &o->returned_frame, err);
        else if (!strcmp(k, SCHEMA_F_CONFIDENCE_MICRO))
            rc = int_into(&f, what, 0, &o->confidence_micro, err);
    }
    if (rc != SL_OK)
        return rc;
    if ((o->tool = tool_of(v, sku, *hint)) == SIZE_MAX)
        return corrupt(err, what, SCHEMA_F_SKU, "names a SKU the summary does not list");
    *hint = o->tool;
    return SL_OK;
}

static sl_status read_results(store *snap, const char *pk, engine_usage_view *v, sl_error *err)
{
    sl_status rc = SL_OK;
    store_page page = {0};
    char token[STORE_PAGE_TOKEN_MAX] = "";
    size_t cap = 0, hint = 0;
    for (;;) {
        store_query_opts q = {.range = {STORE_RANGE_BEGINS_WITH, SCHEMA_SK_TOOL_PREFIX, NULL},
                              .limit = STORE_PAGE_MAX,
                              .page_token = token};
        if ((rc = store_query(snap, STORE_ITEMS, pk, &q, &page, err)) != SL_OK)
            goto out;
        if (v->ninstances + page.count > ENGINE_USAGE_READ_INSTANCES_MAX) {
            rc = sl_error_set_at(err, SL_ETOOLARGE, "surgery", -1,
                                 "the surgery has more than %u tool results, the most one read "
                                 "takes",
                                 ENGINE_USAGE_READ_INSTANCES_MAX);
            goto out;
        }
        if (v->ninstances + page.count > cap) {
            size_t ncap = cap ? cap * 2 : 64;
            while (ncap < v->ninstances + page.count)
                ncap *= 2;
            engine_usage_instance *p = realloc(v->instances, ncap * sizeof *p);
            if (!p) {
                rc = sl_error_set(err, SL_ENOMEM, "out of memory reading tool results");
                goto out;
            }
            v->instances = p;
            cap = ncap;
        }
        for (size_t i = 0; i < page.count; i++) {
            if ((rc = read_result(v, &page, i, &v->instances[v->ninstances], &hint, err)) != SL_OK)
                goto out;
            v->ninstances++;
        }
        if (!page.next_token)
            break;
        snprintf(token, sizeof token, "%s", page.next_token);
        store_page_free(&page);
    }
out:
    store_page_free(&page);
    return rc;
}

/* The number of the last frame stored (-1: none), one document read. */
static sl_status read_last_frame(store *snap, const char *pk, engine_usage_view *v, sl_error *err)
{
    sl_status rc;
    store_page page = {0};
    store_query_opts q = {.range = {STORE_RANGE_BEGINS_WITH, SCHEMA_SK_FRAME_PREFIX, NULL},
                          .descending = 1,
                          .limit = 1};
    v->last_frame = -1;
    if ((rc = store_query(snap, STORE_ITEMS, pk, &q, &page, err)) != SL_OK)
        goto out;
    if (page.count == 1) {
        uint32_t n = 0;
        sl_error e;
        sl_error_clear(&e);
        if (schema_sk_frame_parse(page.docs[0].sk, &n, &e) != SL_OK)
            rc = corrupt(err, "the surgery's frames", page.docs[0].sk, "is not a frame key");
        else
            v->last_frame = n;
    }
out:
    store_page_free(&page);
    return rc;
}

/* Which summary entries the current catalog prices differently. */
static sl_status compare_catalog(store *snap, const char *tenant, engine_usage_view *v,
                                 sl_error *err)
{
    schema_catalog *c = NULL;
    sl_status rc = engine_catalog_load(snap, tenant, &c, err);
    if (rc == SL_ECORRUPT) { /* a broken entry: every tool is "cannot tell" */
        sl_error_clear(err);
        for (size_t i = 0; i < v->ntools; i++)
            v->tools[i].catalog = ENGINE_USAGE_CATALOG_UNREADABLE;
        return SL_OK;
    }
    if (rc != SL_OK)
        return rc;
    for (size_t i = 0; i < v->ntools; i++) {
        engine_usage_tool *t = &v->tools[i];
        size_t k = schema_catalog_find(c, t->sku);
        const schema_catalog_entry *e = k == SCHEMA_CATALOG_NONE ? NULL : schema_catalog_at(c, k);
        t->catalog = !e ? ENGINE_USAGE_CATALOG_GONE
                     : (strcmp(e->name, t->name) || e->unit_cost_cents != t->unit_cost_cents ||
                        e->single_use != t->single_use)
                         ? ENGINE_USAGE_CATALOG_CHANGED
                         : ENGINE_USAGE_CATALOG_SAME;
    }
    schema_catalog_free(&c);
    return SL_OK;
}

sl_status engine_usage_read(store *s, const char *tenant, const char *surgery,
                            engine_usage_view *out, sl_error *err)
{
    sl_status rc = SL_OK;
    store *snap = NULL;
    schema_key pk;
    engine_usage_view v;
    memset(&v, 0, sizeof v);
    memset(out, 0, sizeof *out);
    if ((rc = schema_pk_surgery(pk, tenant, surgery, err)) != SL_OK)
        goto out;
    snprintf(v.tenant, sizeof v.tenant, "%s", tenant);
    snprintf(v.surgery, sizeof v.surgery, "%s", surgery);
    if ((rc = store_snapshot_open(s, &snap, err)) != SL_OK ||
        (rc = read_meta(snap, pk, surgery, &v, err)) != SL_OK)
        goto out;
    if (v.life.status != SCHEMA_SURGERY_ANALYZED) {
        rc = sl_error_set_at(err, SL_ECONFLICT, "status", -1,
                             v.life.status == SCHEMA_SURGERY_OPEN
                                 ? "surgery \"%s\" is open: close it (POST "
                                   "/v1/surgeries/{id}/close) and it is analyzed"
                             : v.life.status == SCHEMA_SURGERY_CLOSED
                                 ? "surgery \"%s\" is being analyzed: ask again in a while"
                                 : "surgery \"%s\": its analysis failed (see GET "
                                   "/v1/surgeries/{id}/usage); analyze it again",
                             surgery);
        *out = v; /* the caller may say which status */
        memset(&v, 0, sizeof v);
        goto out;
    }
    if ((rc = read_summary(snap, pk, surgery, &v, err)) != SL_OK ||
        (rc = read_results(snap, pk, &v, err)) != SL_OK ||
        (rc = read_last_frame(snap, pk, &v, err)) != SL_OK ||
        (rc = compare_catalog(snap, tenant, &v, err)) != SL_OK)
        goto out;
    *out = v;
    memset(&v, 0, sizeof v);
out:
    engine_usage_view_free(&v);
    store_close(&snap);
    return rc;
}

void engine_usage_view_free(engine_usage_view *v)
{
    if (!v)
        return;
    free(v->tools);
    free(v->instances);
    v->tools = NULL;
    v->instances = NULL;
    v->ntools = v->ninstances = 0;
}
