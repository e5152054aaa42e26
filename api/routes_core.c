/* routes_core.c -- the routes every deployment has: GET /healthz (store
 * reachable), GET /metrics (Prometheus text) and GET /v1/tenant (who am I). */
#include "api_int.h"

#include <stdlib.h>

static sl_status healthz(api_request *req, sl_error *err)
{
    sl_status rc = SL_OK;
    yajl_gen g = NULL;
    if ((rc = api_json_start(&g, err)) != SL_OK || (rc = store_ping(api_store(req), err)) != SL_OK)
        goto out;
    yajl_gen_map_open(g);
    api_json_kv_str(g, "status", "ok");
    api_json_kv_str(g, "store", store_backend(api_store(req)));
    yajl_gen_map_close(g);
    rc = api_reply_json(req, 200, g, err);
out:
    if (g)
        yajl_gen_free(g);
    return rc;
}

static sl_status metrics(api_request *req, sl_error *err)
{
    sl_status rc = SL_OK;
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (!out) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory rendering metrics");
        goto out;
    }
    rc = api__server_metrics(api_server_of(req), out, err);
    if (fclose(out) != 0 && rc == SL_OK)
        rc = sl_error_set(err, SL_ENOMEM, "out of memory rendering metrics");
    out = NULL;
    if (rc != SL_OK)
        goto out;
    rc = api_reply_bytes(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, 1, err);
    text = NULL; /* the reply owns it, even on failure */
out:
    free(text);
    return rc;
}

static sl_status tenant(api_request *req, sl_error *err)
{
    sl_status rc = SL_OK;
    const api_auth *a = api_auth_of(req);
    yajl_gen g = NULL;
    if ((rc = api_json_start(&g, err)) != SL_OK)
        goto out;
    yajl_gen_map_open(g);
    api_json_kv_str(g, "tenant", a->tenant);
    api_json_kv_str(g, "kind", a->tenant_kind);
    api_json_kv_str(g, "role", api_role_name(a->role));
    api_json_kv_str(g, "key_id", a->key_id);
    api_json_kv_str(g, "key_name", a->key_name);
    yajl_gen_map_close(g);
    rc = api_reply_json(req, 200, g, err);
out:
    if (g)
        yajl_gen_free(g);
    return rc;
}

static const api_route routes[] = {
    {"GET", "/healthz", API_PUBLIC, API_BODY_NONE, 0, API_RUN_INLINE, NULL, NULL, healthz},
    {"GET", "/metrics", API_PUBLIC, API_BODY_NONE, 0, API_RUN_INLINE, NULL, NULL, metrics},
    {"GET", "/v1/tenant", API_ANY_ROLE, API_BODY_NONE, 0, API_RUN_INLINE, NULL, NULL, tenant},
};

API_AREA(core, routes);
