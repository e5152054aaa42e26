/* routes_keys.c -- an admin manages its own tenant's API keys: list, create
 * (the key is in the 201 answer and nowhere else), show, revoke.  The tenant
 * is always the admin key's; another tenant's key id answers 404. */
#include "api_int.h"

#include <string.h>

#define KEY_BODY_MAX 4096
#define LIST_MAX     100

static void key_json(yajl_gen g, const api_key_info *k)
{
    char created[25], revoked[25];
    schema_time_format(k->created_ms, created);
    schema_time_format(k->revoked_ms, revoked);
    yajl_gen_map_open(g);
    api_json_kv_str(g, "key_id", k->key_id);
    api_json_kv_str(g, "name", k->name);
    api_json_kv_str(g, "role", api_role_name(k->role));
    api_json_kv_str(g, "created_at", created);
    api_json_kv_str(g, "revoked_at", k->revoked_ms ? revoked : NULL);
    yajl_gen_map_close(g);
}

/* key_json as an api_json_fn. */
static sl_status info_json(yajl_gen g, const void *ctx, sl_error *err)
{
    key_json(g, ctx);
    return SL_OK;
}

typedef struct key_page {
    const api_request *req;
    const api_key_info *keys;
    size_t n;
    const char *next; /* page token, "" at the end */
} key_page;

static sl_status key_page_json(yajl_gen g, const void *ctx, sl_error *err)
{
    const key_page *kp = ctx;
    yajl_gen_map_open(g);
    api_json_str(g, "keys");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < kp->n; i++)
        key_json(g, &kp->keys[i]);
    yajl_gen_array_close(g);
    sl_status rc = api_json_cursor(kp->req, g, "next_cursor", kp->next, err);
    yajl_gen_map_close(g);
    return rc;
}

static sl_status keys_list(api_request *req, sl_error *err)
{
    sl_status rc = SL_OK;
    api_key_info keys[LIST_MAX];
    /* Key ids are 16 hex digits, so a key listing's page tokens are short:
     * STORE_TOKEN_MAX holds them (api_key_list's contract). */
    char token[STORE_PAGE_TOKEN_MAX], next[STORE_TOKEN_MAX];
    key_page kp = {req, keys, 0, next};
    int64_t limit = 0;
    sl_error e;
    sl_error_clear(&e);
    if ((rc = api_query_int(req, "limit", 1, LIST_MAX, 50, &limit, err)) != SL_OK ||
        (rc = api_cursor_param(req, token, err)) != SL_OK)
        goto out;
    rc = api_key_list(api_store(req), api_auth_of(req)->tenant, token, keys, (size_t)limit, &kp.n,
                      next, &e);
    if (api_cursor_blame(rc, &e, err) == SL_OK)
        rc = api_reply_json_with(req, 200, key_page_json, &kp, err);
out:
    return rc;
}

/* {"role": "viewer", "name": "dashboard"}: role required, name optional,
 * nothing else. */
typedef struct key_created {
    char key[API_KEY_LEN + 1];
    api_key_info info;
} key_created;

static sl_status created_json(yajl_gen g, const void *ctx, sl_error *err)
{
    const key_created *c = ctx;
    yajl_gen_map_open(g);
    api_json_kv_str(g, "key", c->key);
    api_json_str(g, "info");
    key_json(g, &c->info);
    yajl_gen_map_close(g);
    return SL_OK;
}

static sl_status keys_create(api_request *req, sl_error *err)
{
    sl_status rc = SL_OK;
    yajl_val body = NULL;
    api_role role;
    key_created created = {.key = ""};
    char location[64];
    const char *role_s = NULL, *name = NULL;
    if ((rc = api_body_json(req, &body, err)) != SL_OK)
        goto out;
    if (!YAJL_IS_OBJECT(body)) {
        rc = sl_error_set_at(err, SL_EINVAL, "body", 0, "the body must be a JSON object");
        goto out;
    }
    for (size_t i = 0; i < body->u.object.len; i++) {
        const char *k = body->u.object.keys[i];
        yajl_val v = body->u.object.values[i];
        if (!strcmp(k, "role") && YAJL_IS_STRING(v)) {
            role_s = YAJL_GET_STRING(v);
        } else if (!strcmp(k, "name") && YAJL_IS_STRING(v)) {
            name = YAJL_GET_STRING(v);
        } else {
            rc = sl_error_set_at(err, SL_EINVAL, k, -1,
                                 "unexpected field \"%.64s\" (expected role and name, strings)", k);
            goto out;
        }
    }
    if (!role_s) {
        rc = sl_error_set_at(err, SL_EINVAL, "role", -1,
                             "role is required: ingest, staff, viewer or admin");
        goto out;
    }
    if ((rc = api_role_parse(role_s, &role, err)) != SL_OK)
        goto out;
    rc = api_key_create(api_store(req), api_auth_of(req)->tenant, role, name, created.key,
                        &created.info, err);
    if (rc != SL_OK)
        goto out;
    snprintf(location, sizeof location, "/v1/keys/%s", created.info.key_id);
    if ((rc = api_reply_json_with(req, 201, created_json, &created, err)) != SL_OK ||
        (rc = api_reply_header(req, "Location", location, err)) != SL_OK)
        goto out;
out:
    memset(created.key, 0, sizeof created.key);
    if (body)
        yajl_tree_free(body);
    return rc;
}

static sl_status keys_get(api_request *req, sl_error *err)
{
    api_key_info info;
    sl_status rc =
        api_key_get(api_store(req), api_auth_of(req)->tenant, api_param(req, "key_id"), &info, err);
    return rc == SL_OK ? api_reply_json_with(req, 200, info_json, &info, err) : rc;
}

static sl_status keys_revoke(api_request *req, sl_error *err)
{
    const char *key_id = api_param(req, "key_id");
    sl_status rc = api_key_revoke(api_store(req), api_auth_of(req)->tenant, key_id, err);
    /* This server stops taking the key at once (other servers and processes
     * within their key-cache-ms): the next request with it reads the revoked
     * document.  Dropped only once the revocation committed. */
    if (rc == SL_OK)
        api__key_cache_drop(api__server_keys(api_server_of(req)), key_id);
    if (rc == SL_OK)
        rc = api_reply_empty(req, 204, err);
    return rc;
}

static const api_route routes[] = {
    {"GET", "/v1/keys", API_ROLE_ADMIN, API_KIND_ANY, "limit cursor", API_BODY_NONE, 0,
     API_RUN_INLINE, NULL, NULL, keys_list},
    {"POST", "/v1/keys", API_ROLE_ADMIN, API_KIND_ANY, NULL, API_BODY_BUFFERED, KEY_BODY_MAX,
     API_RUN_INLINE, NULL, NULL, keys_create},
    {"GET", "/v1/keys/{key_id}", API_ROLE_ADMIN, API_KIND_ANY, NULL, API_BODY_NONE, 0,
     API_RUN_INLINE, NULL, NULL, keys_get},
    {"DELETE", "/v1/keys/{key_id}", API_ROLE_ADMIN, API_KIND_ANY, NULL, API_BODY_NONE, 0,
     API_RUN_INLINE, NULL, NULL, keys_revoke},
};

API_AREA(keys, routes);
