/* routes_catalog.c -- the tenant's tool catalog: PUT /v1/catalog/{sku} (a tool
 * and the detector labels that mean it), GET one entry, and GET /v1/catalog
 * paginated in SKU order (the order labels are matched in).  A tenant holds
 * at most catalog-entries-max entries (api/config.c): the PUT of a new SKU
 * past it is answered 409 catalog-full, changing nothing. */
#include "api_int.h"

#include "ingest/ingest.h"

#include <pthread.h>

#define CATALOG_LIMIT_DEF 50

/* {"sku", "name", "labels", "unit_cost_cents", "single_use", "version"} of a
 * catalog_tool document (docs/documents.md). */
static void entry_json(yajl_gen g, const bson_t *doc, int64_t version)
{
    bson_iter_t it, arr;
    yajl_gen_map_open(g);
    api_json_kv_str(g, "sku", api_doc_str(doc, "sku"));
    api_json_kv_str(g, "name", api_doc_str(doc, "name"));
    api_json_str(g, "labels");
    yajl_gen_array_open(g);
    if (bson_iter_init_find(&it, doc, "labels") && BSON_ITER_HOLDS_ARRAY(&it) &&
        bson_iter_recurse(&it, &arr))
        while (bson_iter_next(&arr))
            if (BSON_ITER_HOLDS_UTF8(&arr)) {
                uint32_t len = 0;
                const char *s = bson_iter_utf8(&arr, &len);
                api_json_strn(g, s, len);
            }
    yajl_gen_array_close(g);
    api_json_kv_int(g, "unit_cost_cents", api_doc_int64(doc, "unit_cost_cents", 0));
    api_json_str(g, "single_use");
    yajl_gen_bool(g, bson_iter_init_find(&it, doc, "single_use") && BSON_ITER_HOLDS_BOOL(&it) &&
                         bson_iter_bool(&it));
    api_json_kv_version(g, doc, version);
    yajl_gen_map_close(g);
}

/* 409 catalog-full when the tenant's catalog has no room for a new sku.
 *
 * 409, not 507 or 422: the body is valid (the same body replaces an existing
 * entry, or is taken under a higher limit) and the server's storage is not
 * short (507 says that, for uploads); the request conflicts with the state
 * of the tenant's catalog, which the client can change (replace an entry
 * instead) or have the operator change (raise the limit).  Not 429 or 503:
 * retrying later changes nothing. */
static sl_status room_or_reply(api_request *req, const char *sku, sl_error *err)
{
    sl_error e;
    sl_error_clear(&e);
    sl_status rc = ingest_catalog_room(api_store(req), api_auth_of(req)->tenant, sku,
                                       (size_t)api_config_of(req)->catalog_entries_max,
                                       "catalog-entries-max", &e);
    if (rc == SL_ECONFLICT)
        api__request_fail(req, 409, "catalog-full", &e);
    if (rc != SL_OK)
        sl_error_set_at(err, rc, e.field[0] ? e.field : NULL, e.offset, "%s", e.message);
    return rc;
}

/* The body is checked first (400 whatever the catalog holds); counting and
 * writing hold the server's catalog lock, so two PUTs of new SKUs cannot
 * both take the last place (servers sharing a store are not serialized: each
 * may add one past the limit at the same moment; every reader stops at
 * SCHEMA_CATALOG_ENTRIES_MAX whatever is stored). */
static sl_status catalog_put(api_request *req, sl_error *err)
{
    bson_t *doc = NULL;
    size_t len = 0;
    const char *body = api_body(req, &len), *sku = api_param(req, "sku");
    char location[64 + SCHEMA_COMPONENT_MAX];
    pthread_mutex_t *lock = api__server_catalog_lock(api_server_of(req));
    sl_status rc =
        ingest_catalog_doc(api_auth_of(req)->tenant, sku, body ? body : "", len, NULL, &doc, err);
    if (rc != SL_OK)
        goto out;
    snprintf(location, sizeof location, "/v1/catalog/%s", sku);
    pthread_mutex_lock(lock);
    rc = room_or_reply(req, sku, err);
    if (rc == SL_OK)
        rc = api_put_doc(req, doc, entry_json, location, err);
    pthread_mutex_unlock(lock);
out:
    if (doc)
        bson_destroy(doc);
    return rc;
}

static sl_status catalog_get(api_request *req, sl_error *err)
{
    bson_t *doc = NULL;
    schema_key pk, sk;
    const char *sku = api_param(req, "sku");
    sl_status rc = schema_pk_catalog(pk, api_auth_of(req)->tenant, err);
    if (rc == SL_OK)
        rc = schema_sk_catalog_tool(sk, sku, err);
    if (rc == SL_OK)
        rc = api_get_doc(api_store(req), STORE_ITEMS, pk, sk, &doc, err, "sku",
                         "no catalog entry \"%s\"", sku);
    if (rc == SL_OK)
        rc = api_reply_doc(req, NULL, doc, entry_json, NULL, err);
    if (doc)
        bson_destroy(doc);
    return rc;
}

typedef struct catalog_page {
    const api_request *req;
    const store_page *page;
} catalog_page;

/* {"entries": [...], "next": cursor or null} of one page. */
static sl_status page_json(yajl_gen g, const void *ctx, sl_error *err)
{
    const catalog_page *cp = ctx;
    const store_page *page = cp->page;
    sl_status rc = SL_OK;
    yajl_gen_map_open(g);
    api_json_str(g, "entries");
    yajl_gen_array_open(g);
    for (size_t i = 0; rc == SL_OK && i < page->count; i++) {
        bson_t view;
        if (store_page_view(page, i, &view))
            entry_json(g, &view, -1);
        else
            rc = sl_error_set(err, SL_ECORRUPT, "catalog document %zu of the page is not BSON", i);
    }
    yajl_gen_array_close(g);
    if (rc == SL_OK)
        rc = api_json_cursor(cp->req, g, "next", page->next_token, err);
    yajl_gen_map_close(g);
    return rc;
}

/* ?limit=N&cursor=C, in SKU order. */
static sl_status catalog_list(api_request *req, sl_error *err)
{
    sl_status rc = SL_OK;
    store_page page = {0};
    schema_key pk;
    char token[STORE_PAGE_TOKEN_MAX];
    int64_t limit = 0;
    if ((rc = api_query_int(req, "limit", 1, STORE_PAGE_MAX, CATALOG_LIMIT_DEF, &limit, err)) !=
            SL_OK ||
        (rc = api_cursor_param(req, token, err)) != SL_OK ||
        (rc = schema_pk_catalog(pk, api_auth_of(req)->tenant, err)) != SL_OK)
        goto out;
    store_query_opts q = {.range = {STORE_RANGE_BEGINS_WITH, SCHEMA_SK_TOOL_PREFIX, NULL},
                          .limit = (size_t)limit,
                          .page_token = token};
    catalog_page cp = {req, &page};
    if ((rc = api_page_query(api_store(req), STORE_ITEMS, 0, pk, &q, &page, err)) == SL_OK)
        rc = api_reply_json_with(req, 200, page_json, &cp, err);
out:
    store_page_free(&page);
    return rc;
}

static const api_route routes[] = {
    {"PUT", "/v1/catalog/{sku}", API_ROLE_ADMIN, API_KIND_HOSPITAL, NULL, API_BODY_BUFFERED, 0,
     API_RUN_INLINE, NULL, NULL, catalog_put},
    {"GET", "/v1/catalog/{sku}", API_ROLE_STAFF, API_KIND_HOSPITAL, NULL, API_BODY_NONE, 0,
     API_RUN_INLINE, NULL, NULL, catalog_get},
    {"GET", "/v1/catalog", API_ROLE_STAFF, API_KIND_HOSPITAL, "limit cursor", API_BODY_NONE, 0,
     API_RUN_INLINE, NULL, NULL, catalog_list},
};

API_AREA(catalog, routes);
