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

static sl_status keys_list(api_request *req, sl_error *err)
{
    sl_status rc = SL_OK;
    yajl_gen g = NULL;
    api_key_info keys[LIST_MAX];
    /* Key ids are 16 hex digits, so a key listing's page tokens are short:
     * STORE_TOKEN_MAX holds them (api_key_list's contract). */
    char token[API_CURSOR_MAX], next[STORE_TOKEN_MAX];
    size_t n = 0;
    int64_t limit = 0;
    sl_error e;
    sl_error_clear(&e);
    if ((rc = api_query_int(req, "limit", 1, LIST_MAX, 50, &limit, err)) != SL_OK ||
        (rc = api_cursor_param(req, token, err)) != SL_OK)
        goto out;
    rc = api_key_list(api_store(req), api_auth_of(req)->tenant, token, keys, (size_t)limit, &n,
                      next, &e);
    if (api_cursor_blame(rc, &e, err) != SL_OK || (rc = api_json_start(&g, err)) != SL_OK)
        goto out;
    yajl_gen_map_open(g);
    api_json_str(g, "keys");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < n; i++)
        key_json(g, &keys[i]);
    yajl_gen_array_close(g);
    if ((rc = api_json_cursor(g, "next_cursor", next, err)) != SL_OK)
        goto out;
    yajl_gen_map_close(g);
    rc = api_reply_json(req, 200, g, err);
out:
    if (g)
        yajl_gen_free(g);
    return rc;
}

/* {"role": "viewer", "name": "dashboard"}: role required, name optional,
 * nothing else. */
static sl_status keys_create(api_request *req, sl_error *err)
{
    sl_status rc = SL_OK;
    yajl_val body = NULL;
    yajl_gen g = NULL;
    api_role role;
    api_key_info info;
    char key[API_KEY_LEN + 1] = "", location[64];
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
    rc = api_key_create(api_store(req), api_auth_of(req)->tenant, role, name, key, &info, err);
    if (rc != SL_OK)
        goto out;
    if ((rc = api_json_start(&g, err)) != SL_OK)
        goto out;
    yajl_gen_map_open(g);
    api_json_kv_str(g, "key", key);
    api_json_str(g, "info");
    key_json(g, &info);
    yajl_gen_map_close(g);
    snprintf(location, sizeof location, "/v1/keys/%s", info.key_id);
    if ((rc = api_reply_json(req, 201, g, err)) != SL_OK ||
        (rc = api_reply_header(req, "Location", location, err)) != SL_OK)
        goto out;
out:
    memset(key, 0, sizeof key);
    if (g)
        yajl_gen_free(g);
    if (body)
        yajl_tree_free(body);
    return rc;
}

static sl_status keys_get(api_request *req, sl_error *err)
{
    sl_status rc = SL_OK;
    yajl_gen g = NULL;
    api_key_info info;
    rc =
        api_key_get(api_store(req), api_auth_of(req)->tenant, api_param(req, "key_id"), &info, err);
    if (rc != SL_OK)
        goto out;
    if ((rc = api_json_start(&g, err)) != SL_OK)
        goto out;
    key_json(g, &info);
    rc = api_reply_json(req, 200, g, err);
out:
    if (g)
        yajl_gen_free(g);
    return rc;
}

static sl_status keys_revoke(api_request *req, sl_error *err)
{
    sl_status rc =
        api_key_revoke(api_store(req), api_auth_of(req)->tenant, api_param(req, "key_id"), err);
    if (rc == SL_OK)
        rc = api_reply_empty(req, 204, err);
    return rc;
}

static const api_route routes[] = {
    {"GET", "/v1/keys", API_ROLE_ADMIN, API_BODY_NONE, 0, API_RUN_INLINE, NULL, NULL, keys_list},
    {"POST", "/v1/keys", API_ROLE_ADMIN, API_BODY_BUFFERED, KEY_BODY_MAX, API_RUN_INLINE, NULL,
     NULL, keys_create},
    {"GET", "/v1/keys/{key_id}", API_ROLE_ADMIN, API_BODY_NONE, 0, API_RUN_INLINE, NULL, NULL,
     keys_get},
    {"DELETE", "/v1/keys/{key_id}", API_ROLE_ADMIN, API_BODY_NONE, 0, API_RUN_INLINE, NULL, NULL,
     keys_revoke},
};

API_AREA(keys, routes);
