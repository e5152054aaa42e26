/* routes_core.c -- the routes every deployment has: GET /healthz (store
 * reachable, aggregates quarantined), GET /metrics (Prometheus text; behind
 * --metrics-key when set) and GET /v1/tenant (who am I). */
#include "api_int.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "engine/engine.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
                        "aggregates are quarantined (damaged, or over the metric limit): "
                        "`sightline recompute` names each and why, `sightline recompute "
                        "--repair` rebuilds the damaged ones");
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

/* With --metrics-key set, GET /metrics needs "Authorization: Bearer <it>":
 * the SHA-256 of both sides compared in constant time, so neither the
 * token's bytes nor its length show in the time of an answer.  A separate
 * token rather than an API key: a scraper gets no tenant's rights, and the
 * page (no tenant data) stays readable while the store is down. */
static sl_status metrics_key_check(api_request *req, sl_error *err)
{
    sl_status rc = SL_OK;
    const char *want = api_config_of(req)->metrics_key;
    const char *authz = api_header(req, "Authorization");
    unsigned char a[32], b[32];
    if (!want[0])
        goto out;
    if (!authz || strncasecmp(authz, "Bearer ", 7) != 0) {
        rc = sl_error_set(err, SL_EAUTH,
                          "GET /metrics needs the metrics key: send 'Authorization: Bearer <key>'");
        goto out;
    }
    const char *tok = authz + 7;
    while (*tok == ' ')
        tok++;
    size_t len = strlen(tok);
    while (len > 0 && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
        len--;
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, tok, len, a) < 0 ||
        gnutls_hash_fast(GNUTLS_DIG_SHA256, want, strlen(want), b) < 0) {
        rc = sl_error_set(err, SL_EINTERNAL, "SHA-256 of the metrics key failed (GnuTLS)");
        goto out;
    }
    if (gnutls_memcmp(a, b, sizeof a) != 0)
        rc = sl_error_set(err, SL_EAUTH, "the metrics key is not valid");
out:
    gnutls_memset(a, 0, sizeof a);
    gnutls_memset(b, 0, sizeof b);
    return rc;
}

static sl_status metrics(api_request *req, sl_error *err)
{
    sl_status rc = SL_OK;
    char *text = NULL;
    size_t len = 0;
    FILE *out = NULL;
    if ((rc = metrics_key_check(req, err)) != SL_OK)
        goto out;
    out = open_memstream(&text, &len);
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
    {"GET", "/healthz", API_PUBLIC, API_KIND_ANY, NULL, API_BODY_NONE, 0, API_RUN_INLINE, NULL,
     NULL, healthz},
    {"GET", "/metrics", API_PUBLIC, API_KIND_ANY, NULL, API_BODY_NONE, 0, API_RUN_INLINE, NULL,
     NULL, metrics},
    {"GET", "/v1/tenant", API_ANY_ROLE, API_KIND_ANY, NULL, API_BODY_NONE, 0, API_RUN_INLINE, NULL,
     NULL, tenant},
};

API_AREA(core, routes);
