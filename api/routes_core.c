/* routes_core.c -- the routes every deployment has: GET /healthz (store
 * reachable, aggregates quarantined), GET /metrics (Prometheus text) and
 * GET /v1/tenant (who am I). */
#include "api_int.h"

#include "engine/engine.h"

#include <stdlib.h>

typedef struct health {
    const store *st;
    int64_t quarantined;
} health;

/* {"status": "ok"|"degraded", "store", "aggregates_quarantined"[, "action"]}.
 * Degraded still answers 200: every request that does not need a
 * quarantined aggregate is served.  Public, so no tenant or aggregate is
 * named (recompute's report and the 503 answers to the tenant do that). */
static sl_status healthz_json(yajl_gen g, const void *ctx, sl_error *err)
{
    const health *h = ctx;
    yajl_gen_map_open(g);
    api_json_kv_str(g, "status", h->quarantined ? "degraded" : "ok");
    api_json_kv_str(g, "store", store_backend(h->st));
    api_json_kv_int(g, "aggregates_quarantined", h->quarantined);
    if (h->quarantined)
        api_json_kv_str(g, "action",
                        "aggregates are quarantined (their documents could not be read): run "
                        "`sightline recompute --repair`");
    yajl_gen_map_close(g);
    (void)err;
    return SL_OK;
}

static sl_status healthz(api_request *req, sl_error *err)
{
    health h = {api_store(req), 0};
    sl_status rc = store_ping(api_store(req), err);
    if (rc == SL_OK)
        rc = engine_quarantine_count(api_store(req), &h.quarantined, NULL, 0, err);
    return rc == SL_OK ? api_reply_json_with(req, 200, healthz_json, &h, err) : rc;
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

static sl_status tenant_json(yajl_gen g, const void *ctx, sl_error *err)
{
    const api_auth *a = ctx;
    yajl_gen_map_open(g);
    api_json_kv_str(g, "tenant", a->tenant);
    api_json_kv_str(g, "kind", a->tenant_kind);
    api_json_kv_str(g, "role", api_role_name(a->role));
    api_json_kv_str(g, "key_id", a->key_id);
    api_json_kv_str(g, "key_name", a->key_name);
    yajl_gen_map_close(g);
    return SL_OK;
}

static sl_status tenant(api_request *req, sl_error *err)
{
    return api_reply_json_with(req, 200, tenant_json, api_auth_of(req), err);
}

static const api_route routes[] = {
    {"GET", "/healthz", API_PUBLIC, API_BODY_NONE, 0, API_RUN_INLINE, NULL, NULL, healthz},
    {"GET", "/metrics", API_PUBLIC, API_BODY_NONE, 0, API_RUN_INLINE, NULL, NULL, metrics},
    {"GET", "/v1/tenant", API_ANY_ROLE, API_BODY_NONE, 0, API_RUN_INLINE, NULL, NULL, tenant},
};

API_AREA(core, routes);
