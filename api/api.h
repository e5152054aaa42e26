/* api.h -- the HTTP service (libmicrohttpd): configuration, starting and
 * stopping the server, and the tenant and API-key operations the CLI shares
 * with the server.  Everything else of api/ is internal (api/api_int.h).
 *
 * Threads: api_server_* functions are called from one controlling thread;
 * the server runs its own threads (a pool sized to the cores by default). */
#ifndef SIGHTLINE_API_H
#define SIGHTLINE_API_H

#include <stdint.h>
#include <stdio.h>

#include "schema/schema.h"
#include "store/store.h"

/* ---------------------------------------------------------------------------
 * Configuration.  Every limit and setting below "The table" is one row of one
 * table (name, min, max, default, help) in api/config.c; `sightline serve
 * --NAME VALUE` sets it.
 * ------------------------------------------------------------------------- */
#define API_PATH_MAX 1024 /* bytes of a file or directory name, with the NUL */

typedef struct api_config {
    char listen[256];            /* HOST:PORT; port 0 picks a free port */
    char tls_cert[API_PATH_MAX]; /* PEM file; "" for plain HTTP */
    char tls_key[API_PATH_MAX];  /* PEM file; set with tls_cert or not at all */
    FILE *access_log;            /* one JSON line per request; NULL for none (not owned) */

    /* The table (api/config.c): */
    int64_t threads;                /* worker threads; 0 = one per online core */
    int64_t max_connections;        /* open connections at once; more wait to be accepted */
    int64_t max_connections_per_ip; /* open connections of one client address; 0 = no limit */
    int64_t connection_memory;      /* bytes of libmicrohttpd's buffer per connection */
    int64_t idle_timeout_s;         /* a connection silent this long is closed */
    int64_t header_timeout_s;       /* a request head must arrive whole within this */
    int64_t max_header_bytes;       /* request line + headers */
    int64_t max_json_body;          /* default limit of buffered bodies */
    int64_t max_upload_body;        /* default limit of streamed bodies */
    int64_t drain_bytes;            /* refused body bytes read (and dropped) before closing */
    int64_t key_cache_ms;           /* API-key cache lifetime; revocation takes effect within it */
    int64_t key_negative_cache_ms;  /* how long an unknown key id is remembered as unknown */
    int64_t auth_failures_burst;    /* failed key checks per client address before 429; 0 = off */
    int64_t auth_failures_per_min;  /* ...regained per minute */
    int64_t shutdown_grace_s;       /* how long a stop waits for in-flight requests */
    int64_t job_threads;            /* threads running long handlers (ingest jobs) */
    int64_t job_queue;              /* jobs waiting for a job thread; more are answered 503 */
    char upload_dir[API_PATH_MAX];  /* where request bodies are spooled; "" = $TMPDIR or /tmp */
    int64_t uploads_per_key;        /* streamed uploads one key may have in progress */
    int64_t upload_bytes_per_key;   /* bytes one key may have spooled at once */
    int64_t upload_free_floor;      /* free bytes the upload directory keeps */
    char tls_priorities[512];       /* GnuTLS priority string of HTTPS */
    int64_t hsts_max_age_s;         /* Strict-Transport-Security on HTTPS answers; 0 = none */
    char metrics_key[256];          /* bearer token GET /metrics needs; "" = public */
    int64_t report_assets_max;      /* assets of one brand a report reads; more: 413 */
    /* The recommendations' rules (GET /v1/hospitals/{h}/recommendations;
     * docs/usage.md, "Recommendations"), usage rates in percent: */
    int64_t recommend_keep_open_pct;  /* Wilson lower bound >= this: keep open */
    int64_t recommend_on_request_pct; /* Wilson upper bound <= this: open on request */
    int64_t recommend_min_span_days;  /* a yearly projection spans at least this many days */
} api_config;

/* Sets every field to its default (listen 127.0.0.1:8080, no TLS, log to stdout). */
void api_config_defaults(api_config *cfg);

/* Sets the table entry `name` ("max-connections") from text ("16384"; for
 * byte sizes also "64k", "16M", "1G"; for names such as upload-dir the text
 * itself).  SL_EINVAL naming the entry and its bounds when the name is
 * unknown or the value is out of range or too long. */
sl_status api_config_set(api_config *cfg, const char *name, const char *value, sl_error *err);

/* 1 when `name` is an entry of the table. */
int api_config_has(const char *name);

/* Writes "  --name N   help (default D, MIN..MAX)" for every entry. */
void api_config_help(FILE *out);

/* ---------------------------------------------------------------------------
 * The server.
 * ------------------------------------------------------------------------- */
typedef struct api_server api_server;

/* Extra lines for GET /metrics, in Prometheus text format, appended after the
 * server's own.  Called from a server thread for each scrape; must not block
 * long.  (The engine exposes feed lag through one of these.) */
typedef void (*api_metrics_writer)(void *ctx, FILE *out);

/* Starts listening and serving.  st stays owned by the caller and must
 * outlive the server.  On success *out owns the server: end it with
 * api_server_stop() then api_server_free().  On failure *out is NULL. */
sl_status api_server_start(const api_config *cfg, store *st, api_server **out, sl_error *err);

/* The server's compiled tool catalogs (ingest_catalog_cache of
 * ingest/ingest.h), for other ingest paths of the same process (the spool
 * folder) to share: valid until api_server_free(). */
struct ingest_catalog_cache *api_server_catalogs(api_server *srv);

/* Adds a metrics writer (at most 16).  Safe while the server runs. */
sl_status api_server_add_metrics(api_server *srv, api_metrics_writer fn, void *ctx, sl_error *err);

/* The bound port (useful with port 0) and the base URL ("http://127.0.0.1:8080"). */
uint16_t api_server_port(const api_server *srv);
const char *api_server_url(const api_server *srv);

/* Graceful stop: closes the listening socket at once, so a new connection
 * is refused (a connection the kernel had queued but the server not taken
 * yet is reset, unread); lets in-flight requests finish (up to
 * shutdown_grace_s), meanwhile answering requests on connections already
 * open with Connection: close; waits for every running job whatever the
 * grace (their answers go out; queued jobs are answered 503), then closes
 * every connection.  Idempotent. */
void api_server_stop(api_server *srv);

/* Stops if needed, frees the server and sets *srv to NULL.  NULL is fine. */
void api_server_free(api_server **srv);

/* ---------------------------------------------------------------------------
 * Tenants and API keys (documents in `items`, see docs/documents.md).  Used by
 * the CLI and by the admin routes; safe from another process while a server
 * runs on the same store.
 * ------------------------------------------------------------------------- */
typedef enum api_role {
    API_ROLE_INGEST = 1u << 0, /* write detections and asset scores */
    API_ROLE_STAFF = 1u << 1,  /* read surgeries and reports */
    API_ROLE_VIEWER = 1u << 2, /* read brand aggregates and reports */
    API_ROLE_ADMIN = 1u << 3   /* everything inside its tenant, incl. catalog and keys */
} api_role;

/* "ingest" <-> API_ROLE_INGEST ...; parse gives SL_EINVAL naming the choices. */
const char *api_role_name(api_role r);
sl_status api_role_parse(const char *name, api_role *out, sl_error *err);

/* A key as the CLI shows it: "sl_<16 hex id>_<64 hex secret>" (84 bytes). */
#define API_KEY_ID_LEN 16
#define API_KEY_LEN    84

typedef struct api_key_info {
    char key_id[API_KEY_ID_LEN + 1];
    char tenant[SCHEMA_COMPONENT_MAX + 1];
    char name[SCHEMA_COMPONENT_MAX + 1];
    api_role role;
    int64_t created_ms;
    int64_t revoked_ms; /* 0 while live */
} api_key_info;

/* Creates tenant (kind "hospital" or "brand-client").  SL_ECONDITION when it
 * already exists. */
sl_status api_tenant_create(store *st, const char *tenant, const char *kind, sl_error *err);

/* Reads a tenant's kind into kind_out (>= 16 bytes); SL_ENOTFOUND when absent. */
sl_status api_tenant_kind(store *st, const char *tenant, char kind_out[16], sl_error *err);

/* Creates a key for an existing tenant.  On success key_out holds the only
 * copy of the secret key (NUL-terminated) and *info (may be NULL) its
 * description; only the key's SHA-256 is stored.  name may be NULL or "". */
sl_status api_key_create(store *st, const char *tenant, api_role role, const char *name,
                         char key_out[API_KEY_LEN + 1], api_key_info *info, sl_error *err);

/* Finds a key by id.  tenant may be NULL (any tenant); with a tenant, another
 * tenant's key is SL_ENOTFOUND, exactly like a missing one. */
sl_status api_key_get(store *st, const char *tenant, const char *key_id, api_key_info *out,
                      sl_error *err);

/* Marks a key revoked (idempotent: revoking twice keeps the first time).
 * tenant may be NULL; with a tenant, another tenant's key is SL_ENOTFOUND. */
sl_status api_key_revoke(store *st, const char *tenant, const char *key_id, sl_error *err);

/* One page of a tenant's keys, in key-id order.  page_token is NULL/"" for the
 * first page; on success *n keys were written to out[0..max) and next_token
 * (STORE_TOKEN_MAX bytes) is "" on the last page. */
sl_status api_key_list(store *st, const char *tenant, const char *page_token, api_key_info *out,
                       size_t max, size_t *n, char next_token[STORE_TOKEN_MAX], sl_error *err);

#endif /* SIGHTLINE_API_H */
