/* routes_usage.c -- a surgery's close and its tool-usage analysis, the usage
 * answer, and a hospital's surgeries (docs/usage.md, "HTTP API"):
 *
 *   POST /v1/surgeries/{id}/close     {} -> closed; the analysis queued on the
 *                                     job pool; 202 {"status": "analyzing"}
 *   POST /v1/surgeries/{id}/analyze   an analyzed or failed surgery requeued
 *                                     and analyzed again (a catalog fix); 202
 *   GET  /v1/surgeries/{id}/usage     200 analyzed, 202 analyzing, 409 open
 *                                     or failed (the status says which)
 *   GET  /v1/hospitals/{h}/surgeries  from the surgeries' hospital index
 *
 * The analysis runs on the server's job pool (job-threads), never on an HTTP
 * thread: the close answers as soon as the surgery is closed and the job is
 * queued.  A job the pool cannot take (full, or the server stopping) leaves
 * the surgery closed, which is how a job lost to a crash or a stop looks
 * too: POST .../analyze (or close again) queues it again.  Two jobs of one
 * surgery at once are harmless: the results are the same bytes, and the
 * second finds the surgery no longer closed (engine_usage_run). */
#include "api_int.h"

#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

#define CLOSE_BODY_MAX 1024 /* bytes of the close / analyze body: an empty object */
#define LIST_DEFAULT   50
#define LIST_MAX       500
/* Surgery documents one listing request reads while it passes over other
 * procedures: past it the page ends early with a cursor, so a request's cost
 * stays bounded. */
#define SCAN_MAX 20000u

/* ---------------------------------------------------------------------------
 * The analysis job.
 * ------------------------------------------------------------------------- */
typedef struct analysis_job {
    api_server *srv;
    store *st;
    char tenant[SCHEMA_COMPONENT_MAX + 1];
    char surgery[SCHEMA_COMPONENT_MAX + 1];
} analysis_job;

static void analysis_run(void *arg)
{
    analysis_job *j = arg;
    engine_usage_params p;
    engine_usage_result res;
    sl_error err;
    sl_error_clear(&err);
    engine_usage_params_default(&p);
    /* The outcome is the surgery's status (analyzed, or failed with the
     * reason); the log line is for the operator. */
    if (engine_usage_run(j->st, j->tenant, j->surgery, &p, &res, &err) != SL_OK)
        api__server_log(j->srv, "analysis of surgery %s (tenant %s): %s", j->surgery, j->tenant,
                        err.message);
    free(j);
}

static void analysis_cancel(void *arg)
{
    free(arg); /* the surgery stays closed: POST .../analyze queues it again */
}

/* Queues the analysis of the caller's surgery id: SL_EBUSY naming "surgery"
 * when the pool cannot take it (the surgery stays closed). */
static sl_status analysis_queue(api_request *req, const char *id, sl_error *err)
{
    sl_error e;
    sl_error_clear(&e);
    analysis_job *j = calloc(1, sizeof *j);
    if (!j)
        return sl_error_set(err, SL_ENOMEM, "out of memory queueing an analysis");
    j->srv = api_server_of(req);
    j->st = api_store(req);
    snprintf(j->tenant, sizeof j->tenant, "%s", api_auth_of(req)->tenant);
    snprintf(j->surgery, sizeof j->surgery, "%s", id);
    if (api__jobs_submit(api__server_jobs(j->srv), analysis_run, analysis_cancel, j, &e) != SL_OK) {
        free(j);
        return sl_error_set_at(err, SL_EBUSY, "surgery", -1,
                               "surgery \"%s\" is closed, but its analysis could not be queued "
                               "(%s): POST /v1/surgeries/%s/analyze again in a while",
                               id, e.message, id);
    }
    return SL_OK;
}

/* The body of close and analyze: none, or an empty JSON object. */
static sl_status empty_object(api_request *req, sl_error *err)
{
    size_t len = 0;
    yajl_val v = NULL;
    sl_status rc = SL_OK;
    (void)api_body(req, &len);
    if (len == 0)
        goto out;
    if ((rc = api_body_json(req, &v, err)) != SL_OK)
        goto out;
    if (!YAJL_IS_OBJECT(v))
        rc = sl_error_set_at(err, SL_EINVAL, "body", 0, "the body must be an empty JSON object");
    else if (v->u.object.len > 0)
        rc = sl_error_set_at(err, SL_EINVAL, v->u.object.keys[0], -1,
                             "the body must be an empty JSON object, not one with \"%.64s\"",
                             v->u.object.keys[0]);
out:
    if (v)
        yajl_tree_free(v);
    return rc;
}

/* {"surgery": id, "status": status} */
typedef struct status_answer {
    const char *surgery, *status, *detail;
} status_answer;

static sl_status status_json(yajl_gen g, const void *ctx, sl_error *err)
{
    (void)err;
    const status_answer *a = ctx;
    yajl_gen_map_open(g);
    api_json_kv_str(g, "surgery", a->surgery);
    api_json_kv_str(g, "status", a->status);
    if (a->detail)
        api_json_kv_str(g, "detail", a->detail);
    yajl_gen_map_close(g);
    return SL_OK;
}

static sl_status status_reply(api_request *req, int http, const char *id, const char *status,
                              const char *detail, sl_error *err)
{
    status_answer a = {id, status, detail};
    return api_reply_json_with(req, http, status_json, &a, err);
}

/* ---------------------------------------------------------------------------
 * POST /v1/surgeries/{id}/close and /analyze.
 * ------------------------------------------------------------------------- */
static sl_status surgery_close(api_request *req, sl_error *err)
{
    sl_status rc;
    const char *tenant = api_auth_of(req)->tenant, *id = api_param(req, "id");
    schema_surgery_life life;
    sl_error e;
    sl_error_clear(&e);
    if ((rc = empty_object(req, err)) != SL_OK)
        goto out;
    rc = engine_surgery_transition(api_store(req), tenant, id, ENGINE_SURGERY_CLOSE, 0, NULL, &life,
                                   &e);
    if (rc == SL_ECONFLICT && life.status != SCHEMA_SURGERY_CLOSED) {
        /* Closed before, and analyzed (or failed) since: a repeated close
         * changes nothing and says where the surgery stands. */
        rc = status_reply(req, 200, id, schema_surgery_status_name(life.status),
                          "closed already; POST .../analyze analyzes it again", err);
        goto out;
    }
    if (rc != SL_OK && rc != SL_ECONFLICT) {
        rc = sl_error_set_at(err, rc, e.field, e.offset, "%s", e.message);
        goto out;
    }
    /* Closed now, or closed before and not analyzed yet (its job may have
     * been lost to a stop): queue it. */
    if ((rc = analysis_queue(req, id, err)) == SL_OK)
        rc = status_reply(req, 202, id, "analyzing", NULL, err);
out:
    return rc;
}

static sl_status surgery_analyze(api_request *req, sl_error *err)
{
    sl_status rc;
    const char *tenant = api_auth_of(req)->tenant, *id = api_param(req, "id");
    schema_surgery_life life;
    if ((rc = empty_object(req, err)) != SL_OK ||
        (rc = engine_surgery_life_get(api_store(req), tenant, id, &life, NULL, err)) != SL_OK)
        goto out;
    if (life.status == SCHEMA_SURGERY_OPEN) {
        rc = sl_error_set_at(err, SL_ECONFLICT, "status", -1,
                             "surgery \"%s\" is open: close it first (POST /v1/surgeries/%s/close)",
                             id, id);
        goto out;
    }
    if (life.status != SCHEMA_SURGERY_CLOSED) {
        sl_error e;
        sl_error_clear(&e);
        rc = engine_surgery_transition(api_store(req), tenant, id, ENGINE_SURGERY_REQUEUE, 0, NULL,
                                       &life, &e);
        /* SL_ECONFLICT: requeued by another request meanwhile, so closed */
        if (rc != SL_OK && !(rc == SL_ECONFLICT && life.status == SCHEMA_SURGERY_CLOSED)) {
            rc = sl_error_set_at(err, rc, e.field, e.offset, "%s", e.message);
            goto out;
        }
    }
    if ((rc = analysis_queue(req, id, err)) == SL_OK)
        rc = status_reply(req, 202, id, "analyzing", NULL, err);
out:
    return rc;
}

/* ---------------------------------------------------------------------------
 * GET /v1/surgeries/{id}/usage
 * ------------------------------------------------------------------------- */

/* One SKU of the summary's tools, as the answer needs it. */
typedef struct tool_line {
    const char *sku, *name;
    int64_t used, unused, unit_cost, waste;
} tool_line;

static sl_status tool_line_read(bson_iter_t *t, tool_line *l, sl_error *err)
{
    bson_iter_t f;
    memset(l, 0, sizeof *l);
    if (!BSON_ITER_HOLDS_DOCUMENT(t) || !bson_iter_recurse(t, &f))
        goto bad;
    while (bson_iter_next(&f)) {
        const char *k = bson_iter_key(&f);
        if (BSON_ITER_HOLDS_UTF8(&f) && !strcmp(k, SCHEMA_F_SKU))
            l->sku = bson_iter_utf8(&f, NULL);
        else if (BSON_ITER_HOLDS_UTF8(&f) && !strcmp(k, SCHEMA_F_NAME))
            l->name = bson_iter_utf8(&f, NULL);
        else if (BSON_ITER_HOLDS_INT(&f) && !strcmp(k, SCHEMA_F_USED_UNITS))
            l->used = bson_iter_as_int64(&f);
        else if (BSON_ITER_HOLDS_INT(&f) && !strcmp(k, SCHEMA_F_UNUSED_UNITS))
            l->unused = bson_iter_as_int64(&f);
        else if (BSON_ITER_HOLDS_INT(&f) && !strcmp(k, SCHEMA_F_UNIT_COST_CENTS))
            l->unit_cost = bson_iter_as_int64(&f);
        else if (BSON_ITER_HOLDS_INT(&f) && !strcmp(k, SCHEMA_F_WASTE_CENTS))
            l->waste = bson_iter_as_int64(&f);
    }
    if (l->sku && l->used >= 0 && l->unused >= 0 && l->unit_cost >= 0 && l->waste >= 0)
        return SL_OK;
bad:
    return sl_error_set_at(err, SL_ECORRUPT, SCHEMA_F_TOOLS, -1,
                           "the surgery's summary has a tools entry that does not read");
}

typedef struct usage_answer {
    const char *surgery;
    const bson_t *summary;
    const schema_surgery_life *life;
} usage_answer;

/* One of the answer's lists: the SKUs with used (or unused) instances. */
static sl_status usage_list(yajl_gen g, const bson_t *summary, int unused, sl_error *err)
{
    bson_iter_t it, t;
    sl_status rc = SL_OK;
    api_json_str(g, unused ? "unused" : "used");
    yajl_gen_array_open(g);
    if (bson_iter_init_find(&it, summary, SCHEMA_F_TOOLS) && BSON_ITER_HOLDS_ARRAY(&it) &&
        bson_iter_recurse(&it, &t)) {
        while (rc == SL_OK && bson_iter_next(&t)) {
            tool_line l;
            if ((rc = tool_line_read(&t, &l, err)) != SL_OK)
                break;
            int64_t q = unused ? l.unused : l.used;
            if (q == 0)
                continue;
            yajl_gen_map_open(g);
            api_json_kv_str(g, "sku", l.sku);
            api_json_kv_str(g, "name", l.name ? l.name : l.sku);
            api_json_kv_int(g, "quantity", q);
            if (unused) {
                api_json_kv_int(g, "unit_cost_cents", l.unit_cost);
                api_json_kv_int(g, "cost_cents", l.waste);
            }
            yajl_gen_map_close(g);
        }
    }
    yajl_gen_array_close(g);
    return rc;
}

static sl_status usage_json(yajl_gen g, const void *ctx, sl_error *err)
{
    const usage_answer *a = ctx;
    sl_status rc;
    char when[25];
    bson_iter_t it;
    yajl_gen_map_open(g);
    api_json_kv_str(g, "surgery", a->surgery);
    api_json_kv_str(g, "status", "analyzed");
    schema_time_format(a->life->analyzed_ms, when);
    api_json_kv_str(g, "analyzed_at", when);
    api_json_kv_int(g, "opened", api_doc_int64(a->summary, SCHEMA_F_OPENED, 0));
    if ((rc = usage_list(g, a->summary, 0, err)) != SL_OK ||
        (rc = usage_list(g, a->summary, 1, err)) != SL_OK)
        return rc;
    api_json_kv_int(g, "waste_cost_cents", api_doc_int64(a->summary, SCHEMA_F_WASTE_CENTS, 0));
    api_json_kv_int(g, "frames", api_doc_int64(a->summary, SCHEMA_F_FRAMES, 0));
    api_json_kv_int(g, "frames_empty", api_doc_int64(a->summary, SCHEMA_F_FRAMES_EMPTY, 0));
    api_json_kv_int(g, "detections", api_doc_int64(a->summary, SCHEMA_F_DETECTIONS, 0));
    api_json_kv_int(g, "unmapped_detections",
                    api_doc_int64(a->summary, SCHEMA_F_UNMAPPED_DETECTIONS, 0));
    /* what staff need to fix the catalog, and what the analysis used */
    static const char *const passed[] = {SCHEMA_F_UNMAPPED_LABELS, SCHEMA_F_PARAMS};
    for (size_t i = 0; i < sizeof passed / sizeof passed[0]; i++)
        if (bson_iter_init_find(&it, a->summary, passed[i])) {
            api_json_str(g, passed[i]);
            api_json_bson(g, &it);
        }
    yajl_gen_map_close(g);
    return SL_OK;
}

static sl_status usage_get(api_request *req, sl_error *err)
{
    sl_status rc;
    const char *tenant = api_auth_of(req)->tenant, *id = api_param(req, "id");
    schema_surgery_life life;
    bson_t *summary = NULL;
    schema_key pk;
    if ((rc = engine_surgery_life_get(api_store(req), tenant, id, &life, NULL, err)) != SL_OK)
        goto out;
    switch (life.status) {
    case SCHEMA_SURGERY_OPEN:
        rc = status_reply(req, 409, id, "open",
                          "the surgery is open: POST /v1/surgeries/{id}/close analyzes it", err);
        goto out;
    case SCHEMA_SURGERY_CLOSED:
        rc = status_reply(req, 202, id, "analyzing", NULL, err);
        goto out;
    case SCHEMA_SURGERY_FAILED:
        rc = status_reply(req, 409, id, "failed", life.analysis_error, err);
        goto out;
    default:
        break;
    }
    if ((rc = schema_pk_surgery(pk, tenant, id, err)) != SL_OK ||
        (rc = api_get_doc(api_store(req), STORE_ITEMS, pk, SCHEMA_SK_SUMMARY, &summary, err,
                          "surgery", "surgery \"%s\" is analyzed but has no summary", id)) != SL_OK)
        goto out;
    usage_answer a = {id, summary, &life};
    rc = api_reply_json_with(req, 200, usage_json, &a, err);
out:
    if (summary)
        bson_destroy(summary);
    return rc;
}

/* ---------------------------------------------------------------------------
 * GET /v1/hospitals/{h}/surgeries?from=&to=&procedure=&limit=&cursor=
 *
 * The surgeries' hospital index (gsi1: T#t#HOSPITAL#<h> / DATE#<day>#SURGERY#
 * <id>, docs/documents.md), oldest first, from and to (days, inclusive) as
 * the key range; procedure is a filter on what the range holds.  Pages are
 * the store's, sealed into the cursor; a page passes over at most SCAN_MAX
 * surgeries of other procedures, so it may hold fewer than limit items while
 * `next` is not null.
 * ------------------------------------------------------------------------- */

/* A day "yyyy-mm-dd" from query parameter name into out (11 bytes); "" when
 * absent. */
static sl_status day_param(api_request *req, const char *name, char out[11], sl_error *err)
{
    const char *v = api_query(req, name);
    int64_t ms;
    char text[32];
    out[0] = '\0';
    if (!v)
        return SL_OK;
    sl_error e;
    sl_error_clear(&e);
    snprintf(text, sizeof text, "%.10sT00:00:00Z", v);
    if (strlen(v) != 10 || schema_time_parse(text, &ms, &e) != SL_OK)
        return sl_error_set_at(err, SL_EINVAL, name, -1,
                               "%s must be a day as yyyy-mm-dd, not \"%.40s\"", name, v);
    memcpy(out, v, 11);
    return SL_OK;
}

static void surgery_item(yajl_gen g, const bson_t *doc)
{
    static const char *const names[] = {SCHEMA_F_SURGERY,   SCHEMA_F_HOSPITAL, "room",
                                        SCHEMA_F_PROCEDURE, "surgeon",         "started_at",
                                        SCHEMA_F_STATUS};
    yajl_gen_map_open(g);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        api_json_kv_str(g, names[i], api_doc_str(doc, names[i]));
    yajl_gen_map_close(g);
}

typedef struct surgeries_list {
    api_request *req;
    const char *gpk, *procedure;
    store_query_opts q;
    size_t limit;
} surgeries_list;

static sl_status surgeries_json(yajl_gen g, const void *ctx, sl_error *err)
{
    const surgeries_list *l = ctx;
    store_query_opts q = l->q;
    store_page page = {0}, prev = {0}; /* prev holds the token of the page read next */
    size_t emitted = 0, scanned = 0;
    sl_status rc = SL_OK;
    yajl_gen_map_open(g);
    api_json_str(g, "surgeries");
    yajl_gen_array_open(g);
    for (;;) {
        /* at most what is left to list: a page is always consumed whole, so
         * its token is where the next one starts */
        q.limit = l->limit - emitted;
        rc = api_page_query(api_store(l->req), STORE_ITEMS, STORE_GSI1, l->gpk, &q, &page, err);
        store_page_free(&prev);
        if (rc != SL_OK)
            goto out;
        for (size_t i = 0; i < page.count; i++) {
            bson_t view;
            if (!store_page_view(&page, i, &view)) {
                rc = sl_error_set(err, SL_ECORRUPT, "surgery document %s / %s is damaged",
                                  page.docs[i].pk, page.docs[i].sk);
                goto out;
            }
            scanned++;
            const char *p = api_doc_str(&view, SCHEMA_F_PROCEDURE);
            if (l->procedure && (!p || strcmp(p, l->procedure)))
                continue;
            surgery_item(g, &view);
            emitted++;
        }
        if (!page.next_token || emitted == l->limit || scanned >= SCAN_MAX)
            break;
        prev = page;
        memset(&page, 0, sizeof page);
        q.page_token = prev.next_token;
    }
    yajl_gen_array_close(g);
    rc = api_json_cursor(l->req, g, "next", page.next_token, err);
    yajl_gen_map_close(g);
out:
    store_page_free(&page);
    store_page_free(&prev);
    return rc;
}

static sl_status surgeries_get(api_request *req, sl_error *err)
{
    sl_status rc;
    const char *tenant = api_auth_of(req)->tenant, *h = api_param(req, "h");
    const char *procedure = api_query(req, "procedure");
    char from[11], to[11], token[STORE_PAGE_TOKEN_MAX];
    schema_key gpk, lo, hi;
    int64_t limit = 0;
    if ((rc = day_param(req, "from", from, err)) != SL_OK ||
        (rc = day_param(req, "to", to, err)) != SL_OK ||
        (rc = api_query_int(req, "limit", 1, LIST_MAX, LIST_DEFAULT, &limit, err)) != SL_OK ||
        (rc = api_cursor_param(req, token, err)) != SL_OK)
        goto out;
    if (procedure && (rc = schema_component_check("procedure", procedure, err)) != SL_OK)
        goto out;
    if (from[0] && to[0] && strcmp(from, to) > 0) {
        rc = sl_error_set_at(err, SL_EINVAL, "from", -1,
                             "from (%s) is after to (%s): the range is empty", from, to);
        goto out;
    }
    if ((rc = schema_pk_hospital(gpk, tenant, h, err)) != SL_OK)
        goto out;
    /* DATE#<from># .. DATE#<to>$ ('$' follows '#': past every id of that day) */
    snprintf(lo, sizeof lo, "DATE#%s#", from[0] ? from : "0000-00-00");
    snprintf(hi, sizeof hi, "DATE#%s$", to[0] ? to : "9999-99-99");
    surgeries_list l = {
        req, gpk, procedure, {.range = {STORE_RANGE_BETWEEN, lo, hi}}, (size_t)limit};
    l.q.page_token = token;
    rc = api_reply_json_with(req, 200, surgeries_json, &l, err);
out:
    return rc;
}

static const api_route routes[] = {
    {"POST", "/v1/surgeries/{id}/close", API_ROLE_INGEST | API_ROLE_STAFF, API_KIND_HOSPITAL, NULL,
     API_BODY_BUFFERED, CLOSE_BODY_MAX, API_RUN_INLINE, NULL, NULL, surgery_close},
    {"POST", "/v1/surgeries/{id}/analyze", API_ROLE_STAFF, API_KIND_HOSPITAL, NULL,
     API_BODY_BUFFERED, CLOSE_BODY_MAX, API_RUN_INLINE, NULL, NULL, surgery_analyze},
    {"GET", "/v1/surgeries/{id}/usage", API_ROLE_STAFF | API_ROLE_VIEWER, API_KIND_HOSPITAL, NULL,
     API_BODY_NONE, 0, API_RUN_INLINE, NULL, NULL, usage_get},
    {"GET", "/v1/hospitals/{h}/surgeries", API_ROLE_STAFF | API_ROLE_VIEWER, API_KIND_HOSPITAL,
     "from to procedure limit cursor", API_BODY_NONE, 0, API_RUN_INLINE, NULL, NULL, surgeries_get},
};

API_AREA(usage, routes);
