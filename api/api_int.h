/* api_int.h -- what the files of api/ share: the route-file contract (api_*)
 * and the server's internal pieces (api__*).  Only api/ and its tests include
 * this header.
 *
 * ADDING ROUTES (one file per area, one line to register it)
 *
 *   1. Write api/routes_<area>.c with the handlers and one table (fields in
 *      the order of api_route: method, pattern, roles, kinds, query, body,
 *      body_max, run, on_head, on_chunk, handler):
 *
 *        static const api_route routes[] = {
 *            {"GET", "/v1/brands/{brand}", API_ROLE_VIEWER, API_KIND_BRAND, "histogram",
 *             API_BODY_NONE, 0, API_RUN_INLINE, NULL, NULL, brand_get},
 *            {"POST", "/v1/surgeries/{id}/detections", API_ROLE_INGEST, API_KIND_HOSPITAL,
 *             "format frame_offset", API_BODY_STREAMED, 0, API_RUN_JOB, detections_head,
 *             detections_chunk, detections_done},
 *        };
 *        API_AREA(brands, routes);
 *
 *   2. Add `X(brands)` to API_AREAS in api/routes.c.
 *
 * What the server guarantees before a handler runs:
 *   - the request line and headers hold no NUL byte (libmicrohttpd would have
 *     cut them short there), an HTTP/1.1 request has one Host;
 *   - the method and pattern matched; every {param} passed
 *     schema_component_check() (so it can go into a key as is);
 *   - the key was checked; its tenant's kind is in `kinds` (a key of another
 *     kind is answered 404 "no-route", exactly as a path no route has: the
 *     route does not exist for it); its role is in `roles` (admin passes
 *     every tenant route of its kind); api_auth_of() gives the tenant FROM THE
 *     KEY -- build keys from it, never from the request, so another tenant's
 *     resource is simply not found (404, the same as a missing one);
 *   - the query string parsed (api_query()), valid UTF-8 without control
 *     bytes, holding only parameters named in `query`, each at most once (an
 *     unknown or repeated one is a 400 naming it); a handler reads only
 *     those (api_query() of an undeclared name asserts, and answers NULL);
 *   - the body respects the route's policy: API_BODY_NONE refuses any body;
 *     API_BODY_BUFFERED holds it whole (api_body()) up to body_max;
 *     API_BODY_STREAMED hands it to on_chunk piece by piece, never whole, and
 *     calls handler at the end.  body_max 0 means the configured default
 *     (max-json-body / max-upload-body); a nonzero body_max is further capped
 *     by that default.  A Content-Length over the limit is answered 413 before
 *     any byte is read.  A chunked body is counted: past the limit (or after
 *     on_chunk failed) the rest is dropped and the 413 (or the error) answered
 *     when it ends -- libmicrohttpd 0.9.75 cannot answer while a body is still
 *     arriving -- or, past drain-bytes more, the connection is closed.
 *     A JSON body read with api_body_json() (or ingest's codecs) is held to
 *     the rules of every input: strict UTF-8, no duplicate members.
 *   - listings page with api_cursor_param()/api_json_cursor() (or
 *     api_cursor_open()/api_cursor_seal() for positions of their own): the
 *     cursor is sealed to the tenant, the route, its path parameters and its
 *     query parameters but limit and cursor (see "cursors" below).
 *
 * The head hook (on_head, optional) runs once, on a server thread, when the
 * request head is in and every check above passed, before any body byte is
 * read: the place to refuse early (an unknown resource) and to set up
 * per-request state.  An error from it is answered at once; with a body the
 * body is then never read (libmicrohttpd closes the connection after the
 * answer, or drains what the client pushes anyway under the rules above).
 *
 * Where the handler runs (run): API_RUN_INLINE on the libmicrohttpd thread
 * that serves the connection -- right for anything that takes milliseconds;
 * API_RUN_JOB on the server's job pool (job-threads, job-queue): the
 * connection is suspended, the handler runs on a job thread and the answer
 * goes once it returns, so a job of seconds never stalls the other
 * connections of a libmicrohttpd thread.  A full pool is answered 503 with
 * Retry-After (the handler does not run); a stop lets running jobs finish
 * and answers queued ones 503.  A job handler may use every accessor below:
 * while it runs nothing else touches the request.  on_head and on_chunk
 * always run inline.
 *
 * What a handler does: runs its store calls to completion (a 2xx is sent
 * only after the write committed), then either sets a reply (api_reply_*) and
 * returns SL_OK, or returns an error status with details in err, which the
 * server turns into an application/problem+json answer (field and offset
 * included).  Handlers run on server threads and must not keep `req` after
 * they return.  Per-request state (a streaming parser, an open batch) goes in
 * api_state_set(); its free function runs when the request ends, completed
 * or aborted. */
#ifndef SIGHTLINE_API_INT_H
#define SIGHTLINE_API_INT_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "api/api.h"
#include "ingest/ingest.h"

/* ===========================================================================
 * The route-file contract.
 * ========================================================================= */
typedef struct api_request api_request;

typedef sl_status (*api_handler)(api_request *req, sl_error *err);
/* One piece of a streamed body (never empty).  An error stops the stream: the
 * rest of the body is dropped and the error is answered. */
typedef sl_status (*api_chunk_fn)(api_request *req, const char *data, size_t len, sl_error *err);
/* The head hook: see "The head hook" above.  An error is answered at once. */
typedef sl_status (*api_head_fn)(api_request *req, sl_error *err);

typedef enum api_body_kind {
    API_BODY_NONE = 0, /* any body is refused with 413 */
    API_BODY_BUFFERED, /* held whole, up to the limit */
    API_BODY_STREAMED  /* handed to on_chunk as it arrives */
} api_body_kind;

/* Where a route's handler runs: see "Where the handler runs" above. */
typedef enum api_run_kind {
    API_RUN_INLINE = 0, /* on the connection's libmicrohttpd thread */
    API_RUN_JOB         /* on the job pool, the connection suspended meanwhile */
} api_run_kind;

/* Route access: a mask of api_role values, or API_PUBLIC (no key at all).  A
 * route with neither is refused when the server starts. */
#define API_PUBLIC   (1u << 30)
#define API_ANY_ROLE (API_ROLE_INGEST | API_ROLE_STAFF | API_ROLE_VIEWER | API_ROLE_ADMIN)

/* The tenant kinds a route serves (schema's SCHEMA_KIND_*): a mask, not 0.
 * API_PUBLIC routes have no key, hence no kind: they take API_KIND_ANY. */
#define API_KIND_HOSPITAL (1u << 0) /* "hospital": surgeries, detections, catalog */
#define API_KIND_BRAND    (1u << 1) /* "brand-client": assets, brand dashboard */
#define API_KIND_ANY      (API_KIND_HOSPITAL | API_KIND_BRAND)

typedef struct api_route {
    const char *method;  /* "GET", "POST", ... (GET also answers HEAD) */
    const char *pattern; /* "/v1/surgeries/{id}/usage": literal or {name} segments */
    unsigned roles;      /* api_role mask or API_PUBLIC */
    unsigned kinds;      /* API_KIND_* mask */
    /* The query parameters it takes, space-separated ("from to limit
     * cursor"); NULL or "" for none.  Names are [a-z0-9_]+, each once. */
    const char *query;
    api_body_kind body;    /* body policy */
    int64_t body_max;      /* bytes; 0 = the configured default for the policy */
    api_run_kind run;      /* where handler runs */
    api_head_fn on_head;   /* optional: runs when the head is in, before the body */
    api_chunk_fn on_chunk; /* API_BODY_STREAMED only */
    api_handler handler;   /* runs once the whole request is in */
} api_route;

typedef struct api_area {
    const char *name;
    const api_route *routes;
    size_t n;
} api_area;

#define API_AREA(area, table)                                                                      \
    const api_area api__area_##area = {#area, table, sizeof table / sizeof table[0]}

/* Who is calling: from the verified key, never from the request. */
typedef struct api_auth {
    char tenant[SCHEMA_COMPONENT_MAX + 1];
    char tenant_kind[16];
    char key_id[API_KEY_ID_LEN + 1];
    char key_name[SCHEMA_COMPONENT_MAX + 1];
    api_role role;
} api_auth;

/* ---- reading the request (pointers valid until the handler returns) ---- */
const char *api_method(const api_request *req);
const char *api_path(const api_request *req); /* raw path, without the query */
const char *api_request_id(const api_request *req);
store *api_store(const api_request *req);
api_server *api_server_of(const api_request *req);
const api_config *api_config_of(const api_request *req);

/* The server's compiled tool catalogs (one per tenant, recompiled only when
 * the catalog changed): pass it as ingest_request.catalogs. */
ingest_catalog_cache *api_catalogs(const api_request *req);

/* Where request bodies are spooled (api_config.upload_dir, or the ingest
 * default when that is ""). */
const char *api_upload_dir(const api_request *req);

/* For a streamed ingest route's head hook: *lim gets the ingest defaults with
 * the input capped at max-upload-body, and *out a new spool file in the
 * upload directory taking that much (ingest_upload_free() it; the caller's
 * request state owns it).  A missing or full directory is SL_EIO/SL_EBUSY
 * naming it.  First the upload is counted against its key's quotas and the
 * disk's floor (api/quota.c), which a refusal names: 429 with Retry-After
 * (the key's uploads in progress hold its quota) or 507 (the disk, or a body
 * larger than a key may spool); the request keeps the count until it ends. */
sl_status api_upload_start(api_request *req, ingest_limits *lim, ingest_upload **out,
                           sl_error *err);

/* What a streamed ingest route keeps at the start of its request state: the
 * spool file and the limits api_upload_start() gave it. */
typedef struct api_upload {
    ingest_upload *up;
    ingest_limits lim;
} api_upload;

/* The on_chunk hook of a streamed ingest route whose request state starts
 * with an api_upload that its head hook opened: the bytes are counted (a
 * chunked body against its key's quota and the disk's floor as it comes)
 * and go to the spool. */
sl_status api_upload_chunk(api_request *req, const char *data, size_t len, sl_error *err);

/* The tenant and role of the key; NULL on API_PUBLIC routes. */
const api_auth *api_auth_of(const api_request *req);

/* A path parameter by name ("id" for {id}); NULL if the pattern has none. */
const char *api_param(const api_request *req, const char *name);

/* The value of a query parameter the route declares ("" for "?flag"), NULL
 * when absent (each is given at most once: the server refused repeats). */
const char *api_query(const api_request *req, const char *name);

/* An integer query parameter in [min, max]; def when absent.  SL_EINVAL
 * naming the parameter otherwise. */
sl_status api_query_int(const api_request *req, const char *name, int64_t min, int64_t max,
                        int64_t def, int64_t *out, sl_error *err);

/* A request header (case-insensitive name), NULL when absent. */
const char *api_header(const api_request *req, const char *name);

/* API_BODY_BUFFERED: the whole body (NUL-terminated for convenience, len
 * without it).  Other policies: NULL, *len 0. */
const char *api_body(const api_request *req, size_t *len);

/* Bytes of body received so far (streamed routes use it for offsets). */
uint64_t api_body_received(const api_request *req);

/* Parses the buffered body as one JSON value held to the rules of every
 * ingest input (api__json_check: depth <= 64, no duplicate members, strict
 * UTF-8 with paired surrogate escapes).  On SL_OK *out is freed with
 * yajl_tree_free().  SL_EINVAL naming the member (JSON path, "body" at the
 * top) and the byte offset otherwise. */
sl_status api_body_json(const api_request *req, yajl_val *out, sl_error *err);

/* Per-request state for the handler (e.g. a streaming parser): free_fn (may
 * be NULL) runs once when the request ends, whatever the outcome. */
void api_state_set(api_request *req, void *state, void (*free_fn)(void *));
void *api_state(const api_request *req);

/* ---- replying (one reply per request; later calls fail with SL_EINTERNAL) ---- */

/* A JSON reply from a finished generator (see api_json_new); g stays the
 * caller's.  SL_EINTERNAL when g does not hold one complete value. */
sl_status api_reply_json(api_request *req, int http_status, yajl_gen g, sl_error *err);

/* Bytes of content_type.  take: 1 = data was malloc'd and now belongs to the
 * reply (freed with free()), 0 = copied. */
sl_status api_reply_bytes(api_request *req, int http_status, const char *content_type, void *data,
                          size_t len, int take, sl_error *err);

/* size bytes of the open file fd from its start; fd belongs to the reply
 * (closed when sent) from the call on, even on failure. */
sl_status api_reply_fd(api_request *req, int http_status, const char *content_type, int fd,
                       uint64_t size, sl_error *err);

/* No body (204, 304). */
sl_status api_reply_empty(api_request *req, int http_status, sl_error *err);

/* Adds a header to the reply set above (Content-Disposition, ETag, Location).
 * Values with CR, LF or NUL are refused. */
sl_status api_reply_header(api_request *req, const char *name, const char *value, sl_error *err);

/* ---- JSON out (yajl_gen): never invalid, whatever bytes a string holds ---- */

/* A generator with UTF-8 validation on; free with yajl_gen_free().  NULL when
 * out of memory. */
yajl_gen api_json_new(void);

/* A string value or map key: invalid UTF-8 becomes U+FFFD, control bytes are
 * escaped by yajl.  NULL writes null. */
yajl_gen_status api_json_str(yajl_gen g, const char *s);
yajl_gen_status api_json_strn(yajl_gen g, const char *s, size_t len);
yajl_gen_status api_json_int(yajl_gen g, int64_t v);
/* "key": "value", "key": 123 and "key": 0.25 inside a map. */
yajl_gen_status api_json_kv_str(yajl_gen g, const char *key, const char *value);
yajl_gen_status api_json_kv_int(yajl_gen g, const char *key, int64_t value);
yajl_gen_status api_json_kv_double(yajl_gen g, const char *key, double value);

/* A double as the shortest of 15, 16 or 17 significant digits that reads
 * back as exactly v (0.61, not 0.60999999999999999; 30, not 3e+01); null
 * for NaN and infinities, which JSON cannot hold. */
yajl_gen_status api_json_double(yajl_gen g, double v);

/* The BSON value at it: strings, numbers, booleans, arrays and documents
 * (recursively, 32 levels at most: deeper is written as null); any other
 * type (binary, ...) is written as null. */
void api_json_bson(yajl_gen g, const bson_iter_t *it);

/* The fields of doc as "name": value pairs inside an open map, except those
 * named in hidden[0..nhidden) (keys and internal fields). */
void api_json_bson_fields(yajl_gen g, const bson_t *doc, const char *const *hidden, size_t nhidden);

/* Fields of a stored document: the string (NULL when absent or not one),
 * the int64 (def when absent or not one). */
const char *api_doc_str(const bson_t *doc, const char *name);
int64_t api_doc_int64(const bson_t *doc, const char *name, int64_t def);

/* "version": version, or the document's own `v` when version < 0 (an answer
 * to a write passes the version the store returned). */
yajl_gen_status api_json_kv_version(yajl_gen g, const bson_t *doc, int64_t version);

/* *g = api_json_new(), or SL_ENOMEM in err. */
sl_status api_json_start(yajl_gen *g, sl_error *err);

/* Writes one whole JSON value of ctx into g; SL_OK, or the error it set in
 * err (then nothing is sent). */
typedef sl_status (*api_json_fn)(yajl_gen g, const void *ctx, sl_error *err);

/* A JSON reply written by write(g, ctx): the generator is made, filled, sent
 * with http_status and freed here. */
sl_status api_reply_json_with(api_request *req, int http_status, api_json_fn write, const void *ctx,
                              sl_error *err);

/* ---- answering with one document ---- */

/* Writes a stored document as the JSON clients see; version is the one to
 * show, or < 0 for the document's own `v`. */
typedef void (*api_doc_json_fn)(yajl_gen g, const bson_t *doc, int64_t version);

/* Answers doc through emit.  res NULL: a read, 200 with the document's own
 * version.  res set: the answer to the write that stored doc -- 201 with
 * Location when it created the document, else 200 (also when nothing
 * changed) -- showing res->version, so a write racing in after this one is
 * not shown as its result. */
sl_status api_reply_doc(api_request *req, const store_put_result *res, const bson_t *doc,
                        api_doc_json_fn emit, const char *location, sl_error *err);

/* Writes doc to items unconditionally (equal content is no write) and
 * answers it as api_reply_doc does. */
sl_status api_put_doc(api_request *req, const bson_t *doc, api_doc_json_fn emit,
                      const char *location, sl_error *err);

/* Builds a document from the tenant, an id and a buffered JSON body (on
 * success *out is the caller's to bson_destroy()), as ingest's body codecs
 * do (ingest_asset_doc, ingest_catalog_doc). */
typedef sl_status (*api_body_doc_fn)(const char *tenant, const char *id, const void *json,
                                     size_t len, const ingest_limits *lim, bson_t **out,
                                     sl_error *err);

/* PUT of a buffered body: build makes the document of the path parameter
 * param's id, which is written and answered as api_put_doc does (the very
 * document stored, Location: location_prefix + id when it was created). */
sl_status api_put_body(api_request *req, const char *param, api_body_doc_fn build,
                       api_doc_json_fn emit, const char *location_prefix, sl_error *err);

/* store_get of (pk, sk) into *out (bson_destroy()); a missing document is
 * SL_ENOTFOUND naming `field` with the printf-style message, other failures
 * keep the store's details. */
sl_status api_get_doc(store *st, store_table t, const char *pk, const char *sk, bson_t **out,
                      sl_error *err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));

/* ---- cursors: a listing's position, sealed (api/cursor.c) ----
 *
 * A cursor is opaque and authenticated: the position (a store page token,
 * or a key), enciphered and sealed with AES-256-SIV (GnuTLS) under the
 * store's cursor secret, bound to the listing -- the key's tenant, the route, its
 * path parameters and its query parameters but `cursor` and `limit` -- and
 * written in base64url.  One that was altered, cut short, or made for
 * another tenant, listing or store does not open: SL_EINVAL naming `cursor`.
 * The secret is made once per store (aggregates SYS#API / CURSOR_SECRET,
 * with a must-not-exist condition, so every server of a store agrees) and
 * loaded when the server starts. */
#define API__CURSOR_SIV 16 /* bytes of the seal (the SIV tag) */
/* Bytes of position a cursor carries: a packed page token (two length
 * bytes, six bits a character), or a key. */
#define API__CURSOR_POS_MAX (2 + (STORE_PAGE_TOKEN_MAX * 6 + 7) / 8)
#define API__CURSOR_RAW_MAX (1 + API__CURSOR_SIV + API__CURSOR_POS_MAX)
/* Bytes of a cursor, with its NUL: about 4.2 KB at most (a page token of
 * three maximal keys), which fits a request line under the default
 * max-header-bytes (8192); real listings' cursors are under 200 bytes. */
#define API_CURSOR_MAX ((API__CURSOR_RAW_MAX * 4 + 2) / 3 + 1)
_Static_assert(STORE_KEY_MAX <= API__CURSOR_POS_MAX, "a key fits a cursor");

/* The cursor of position pos[0..len) for req's listing into out;
 * SL_EINTERNAL when len is over API__CURSOR_POS_MAX. */
sl_status api_cursor_seal(const api_request *req, const void *pos, size_t len,
                          char out[API_CURSOR_MAX], sl_error *err);

/* The position in the request's `cursor` parameter (*len 0 when it is
 * absent or empty); SL_EINVAL naming `cursor` when it does not open. */
sl_status api_cursor_open(const api_request *req, unsigned char pos[API__CURSOR_POS_MAX],
                          size_t *len, sl_error *err);

/* The store page token in the `cursor` parameter ("" when absent or empty). */
sl_status api_cursor_param(const api_request *req, char token[STORE_PAGE_TOKEN_MAX], sl_error *err);

/* "key": the cursor of page token for req's listing, or "key": null when
 * token is NULL or "" (the last page). */
sl_status api_json_cursor(const api_request *req, yajl_gen g, const char *key, const char *token,
                          sl_error *err);

/* Passes a listing's failure (rc, details in e) on into err: a page token
 * the store refused (SL_EINVAL naming page_token) becomes SL_EINVAL naming
 * `cursor`, since the only token a client hands in is its cursor.  Returns rc. */
sl_status api_cursor_blame(sl_status rc, const sl_error *e, sl_error *err);

/* store_query (index 0) or store_query_index of a listing whose page token
 * came from a client's cursor: a token the store refuses is SL_EINVAL
 * naming `cursor`.  On SL_OK free *page with store_page_free(). */
sl_status api_page_query(store *st, store_table t, store_index index, const char *key,
                         const store_query_opts *q, store_page *page, sl_error *err);

/* ===========================================================================
 * Internals shared across api/ files.
 * ========================================================================= */

/* Every area of routes (api/routes.c), NULL-terminated. */
extern const api_area *const api__areas[];

/* ---- router (router.c) ---- */
#define API__PATH_SEG_MAX 16 /* segments in a path */
#define API__PARAM_MAX    8  /* {params} in a pattern */
#define API__QUERY_MAX    32 /* parameters in a query string */

typedef struct api__croute {
    const api_route *route;
    const char *area;
    size_t nseg;
    char *seg[API__PATH_SEG_MAX];   /* literal segment, or NULL for a parameter */
    char *param[API__PATH_SEG_MAX]; /* parameter name where seg is NULL */
    size_t nquery;
    char *query[API__QUERY_MAX]; /* the query parameters it takes (route->query split) */
    char label[160];             /* "GET /v1/tenant", for metrics */
} api__croute;

typedef struct api__router {
    api__croute *routes;
    size_t n;
} api__router;

/* Compiles the areas' tables; refuses malformed patterns, missing handlers,
 * routes without roles or kinds, malformed or repeated query parameter names
 * and duplicate routes, naming the route.  On success free with
 * api__router_free(). */
sl_status api__router_build(api__router *rt, const api_area *const *areas, sl_error *err);
void api__router_free(api__router *rt);

/* A percent-decoded path: segments point into buf (owned, free()). */
typedef struct api__path {
    char *buf;
    size_t nseg;
    const char *seg[API__PATH_SEG_MAX];
} api__path;

/* Splits and decodes raw[0..len) (starts with '/', no query).  Refuses bad
 * percent-escapes, control bytes, invalid UTF-8, "." and ".." segments and
 * more than API__PATH_SEG_MAX segments (SL_EINVAL naming the byte offset in
 * the raw path).  On success out->buf is freed with free(). */
sl_status api__path_parse(const char *raw, size_t len, api__path *out, sl_error *err);

typedef enum api__match_result {
    API__MATCH_FOUND = 0,
    API__MATCH_NO_PATH,  /* 404 */
    API__MATCH_NO_METHOD /* 405; allow lists what would match */
} api__match_result;

typedef struct api__match {
    const api__croute *route;
    size_t index; /* of route in the router */
    size_t nparams;
    const char *names[API__PARAM_MAX];
    const char *values[API__PARAM_MAX]; /* point into the path */
    char allow[64];                     /* "GET, HEAD, POST" for 405 */
} api__match;

/* Finds the route for method and path: among routes whose segments match,
 * a literal segment beats a parameter at the first position they differ. */
api__match_result api__router_match(const api__router *rt, const char *method,
                                    const api__path *path, api__match *out);

typedef struct api__query {
    char *buf; /* owned, free() */
    size_t n;
    const char *name[API__QUERY_MAX];
    const char *value[API__QUERY_MAX];
} api__query;

/* Parses raw[0..len) (after '?'): '&'-separated name[=value], percent- and
 * '+'-decoded, each valid UTF-8 without control bytes.  SL_EINVAL naming the
 * parameter or byte offset otherwise.  On success free out->buf. */
sl_status api__query_parse(const char *raw, size_t len, api__query *out, sl_error *err);

/* Whether route cr declares query parameter name. */
int api__route_takes(const api__croute *cr, const char *name);

/* SL_OK when q holds only parameters cr declares, each once; else SL_EINVAL
 * naming the first unknown or repeated one (field: its name). */
sl_status api__query_check(const api__croute *cr, const api__query *q, sl_error *err);

/* ---- keys (keys.c) ---- */

/* Splits "sl_<id>_<secret>": copies the id, SL_EAUTH when the shape is wrong. */
sl_status api__key_split(const char *key, size_t len, char id[API_KEY_ID_LEN + 1], sl_error *err);

/* Lowercase hex SHA-256 of key[0..len) (GnuTLS). */
sl_status api__key_hash(const char *key, size_t len, char hex[65], sl_error *err);

/* Reads the key document of key_id via gsi1: its description and stored hash. */
sl_status api__key_lookup(store *st, const char *key_id, api_key_info *info, char hash[65],
                          sl_error *err);

/* ---- authentication and the key cache (auth.c) ---- */
typedef struct api__key_cache api__key_cache;
struct sockaddr;

/* A direct-mapped cache of verified key documents (entries live
 * key-cache-ms; 0 disables it), one of unknown key ids (key-negative-cache-ms)
 * and a bounded table of failed checks per client address
 * (auth-failures-burst, auth-failures-per-minute), from cfg.  Free with
 * api__key_cache_free(). */
sl_status api__key_cache_new(const api_config *cfg, api__key_cache **out, sl_error *err);
void api__key_cache_free(api__key_cache **c);

/* Forgets key_id at once (its key was revoked through this server); a check
 * that was reading the key's document meanwhile does not put it back. */
void api__key_cache_drop(api__key_cache *c, const char *key_id);

/* Checks an Authorization header value ("Bearer sl_..."; NULL when absent)
 * from client (the peer's address; NULL: not limited).  SL_EAUTH for a
 * missing, malformed, unknown, wrong or revoked key (message says which,
 * never echoing the secret), and for a client out of failed checks: then
 * *retry_after_s > 0 (answer 429 with Retry-After; nothing was looked up),
 * else 0.  Store failures pass through. */
sl_status api__authenticate(api__key_cache *c, store *st, const char *authorization,
                            const struct sockaddr *client, api_auth *out, int *retry_after_s,
                            sl_error *err);

/* The checks' counters (store lookups, failures, 429s, unknown-id cache
 * hits) in Prometheus text format. */
void api__key_cache_metrics(api__key_cache *c, FILE *out);

/* The server's key cache (for a route that revokes a key). */
api__key_cache *api__server_keys(api_server *srv);

/* ---- upload quotas (quota.c) ---- */
typedef struct api__uploads api__uploads;

/* A request's share of the quotas (in api_request; q NULL: none). */
typedef struct api__upload_hold {
    api__uploads *q;
    char key_id[API_KEY_ID_LEN + 1];
    uint64_t reserved;        /* bytes counted against the key */
    uint64_t received;        /* bytes of body seen */
    uint64_t next_disk_check; /* received count at which the disk is read again */
} api__upload_hold;

/* The counts of uploads-per-key, upload-bytes-per-key and upload-free-floor
 * of cfg.  Free with api__uploads_free(). */
sl_status api__uploads_new(const api_config *cfg, api__uploads **out, sl_error *err);
void api__uploads_free(api__uploads **q);

/* Counts an upload of the request's key declaring `declared` bytes (0 when
 * chunked) into req->upload, or refuses it: SL_ETOOLARGE with the refusal
 * (429 or 507, naming the limit) recorded in req. */
sl_status api__upload_begin(api__uploads *q, api_request *req, const char *dir, uint64_t declared,
                            sl_error *err);

/* Counts len more bytes of the request's body; past the declared length
 * they count against the key and the disk as they come (a refusal as
 * api__upload_begin's). */
sl_status api__upload_grow(api_request *req, const char *dir, size_t len, sl_error *err);

/* Gives back what the hold counts (api__request_release calls it). */
void api__upload_end(api__upload_hold *h);

/* Uploads in progress, bytes reserved, refusals by limit (Prometheus text). */
void api__uploads_metrics(api__uploads *q, FILE *out);

/* The server's quotas. */
api__uploads *api__server_uploads(api_server *srv);

/* ---- metrics (metrics.c) ---- */
typedef struct api__metrics api__metrics;

/* Counters for nlabels routes (labels copied) plus one "unmatched" row. */
sl_status api__metrics_new(const char *const *labels, size_t nlabels, api__metrics **out,
                           sl_error *err);
void api__metrics_free(api__metrics **m);
/* route == nlabels for requests that matched no route. */
void api__metrics_observe(api__metrics *m, size_t route, int http_status, int64_t micros);
void api__metrics_in_flight(api__metrics *m, int delta);
void api__metrics_connections(api__metrics *m, int delta);
void api__metrics_store_error(api__metrics *m, sl_status s);
/* Whether s is a storage failure that /metrics counts. */
int api__is_store_error(sl_status s);
sl_status api__metrics_render(api__metrics *m, FILE *out, sl_error *err);

/* ---- the job pool (jobs.c) ---- */
typedef struct api__jobs api__jobs;

/* A job: run(arg) on a job thread; cancel(arg) instead when the pool stops
 * before the job started.  Either is called exactly once. */
typedef void (*api__job_fn)(void *arg);

/* nthreads threads (>= 1) and room for queue_max jobs waiting beyond those
 * running.  On success free with api__jobs_free(). */
sl_status api__jobs_new(size_t nthreads, size_t queue_max, api__jobs **out, sl_error *err);

/* Hands a job over.  SL_EBUSY (nothing called) when every thread is busy
 * and the queue is full, or the pool is stopping; err says which. */
sl_status api__jobs_submit(api__jobs *p, api__job_fn run, api__job_fn cancel, void *arg,
                           sl_error *err);

/* Stops taking jobs, cancels those still queued, waits for the running ones
 * to return and joins the threads.  Idempotent. */
void api__jobs_stop(api__jobs *p);

/* Stops if needed, frees, sets *p to NULL.  NULL is fine. */
void api__jobs_free(api__jobs **p);

typedef struct api__jobs_stats {
    uint64_t running, queued; /* now */
    uint64_t done, refused;   /* since the start */
} api__jobs_stats;

void api__jobs_stats_get(api__jobs *p, api__jobs_stats *out);

/* The server's job pool: the request jobs (API_RUN_JOB) and the jobs a
 * handler queues to run after its answer (the usage analysis,
 * api/routes_usage.c). */
api__jobs *api__server_jobs(api_server *srv);

/* ---- the listening socket (server_accept.c) ---- */
typedef struct api__acceptor api__acceptor;

/* Binds and listens on addr (backlog SOMAXCONN; SO_REUSEADDR, IPv6 only for
 * an IPv6 address) and puts the bound port into *port; no thread yet.  Keeps
 * max_connections open connections at most (api__acceptor_started/_closed).
 * where is the --listen text, for messages.  On success free with
 * api__acceptor_free(). */
sl_status api__acceptor_open(const char *where, const struct sockaddr *addr, socklen_t addrlen,
                             int64_t max_connections, api__acceptor **out, uint16_t *port,
                             sl_error *err);

/* Starts the thread that accepts and hands each connection to srv->mhd
 * (started already, without a listening socket of its own). */
sl_status api__acceptor_start(api__acceptor *a, api_server *srv, sl_error *err);

/* libmicrohttpd started the connection on socket fd / closed one it started
 * (its notify callback, any thread). */
void api__acceptor_started(api__acceptor *a, int fd);
void api__acceptor_closed(api__acceptor *a);

/* Joins the thread and closes the listening socket: from then on a new
 * connection is refused.  Idempotent; NULL is fine.  The counters stay until
 * api__acceptor_free(), for the connections still closing. */
void api__acceptor_stop(api__acceptor *a);

/* Stops if needed, frees, sets *a to NULL.  NULL is fine. */
void api__acceptor_free(api__acceptor **a);

/* A line on stderr about the server's connections, sharing the rate limit of
 * libmicrohttpd's own messages (20 a second). */
void api__server_log(api_server *srv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- cursor keys (cursor.c) ---- */
typedef struct api__cursor_key {
    unsigned char siv[64]; /* AES-256-SIV key, derived from the store's secret */
} api__cursor_key;

/* Reads the store's cursor secret, making it first when there is none (with
 * a must-not-exist condition: two servers starting at once agree), and
 * derives the keys into *out.  A damaged secret document is SL_ECORRUPT. */
sl_status api__cursor_key_load(store *st, api__cursor_key *out, sl_error *err);

/* The keys of a given 32-byte secret (tests). */
void api__cursor_key_derive(const unsigned char secret[32], api__cursor_key *out);

/* Seal and open with an explicit binding (binding[0..nbinding), strings). */
sl_status api__cursor_seal(const api__cursor_key *k, const char *const *binding, size_t nbinding,
                           const void *pos, size_t len, char out[API_CURSOR_MAX], sl_error *err);
sl_status api__cursor_open(const api__cursor_key *k, const char *const *binding, size_t nbinding,
                           const char *cursor, unsigned char pos[API__CURSOR_POS_MAX], size_t *len,
                           sl_error *err);

/* api_server_start() serving the given areas instead of api__areas (tests). */
sl_status api__server_start_areas(const api_config *cfg, store *st, const api_area *const *areas,
                                  api_server **out, sl_error *err);

/* The server's metrics and its extra writers into out (server.c). */
sl_status api__server_metrics(api_server *srv, FILE *out, sl_error *err);

/* ---- JSON in (json.c) ---- */

/* Validates text as one JSON value no deeper than max_depth with
 * ingest_json_check() (no duplicate members, strict UTF-8, ...); SL_EINVAL
 * naming the JSON path ("body" at the top) and the byte offset of the fault. */
sl_status api__json_check(const char *text, size_t len, int max_depth, sl_error *err);

/* ---- problems (reply.c) ---- */

/* Builds the application/problem+json body for an error: type
 * "https://sightline.dev/problems/<slug>", title, status, detail, field,
 * offset, request_id.  On success *body is malloc'd (caller frees) of *len
 * bytes. */
sl_status api__problem_body(int http_status, const char *slug, const char *title,
                            const char *detail, const char *field, int64_t offset,
                            const char *request_id, char **body, size_t *len);

/* The slug of a status ("invalid-input" for SL_EINVAL ...). */
const char *api__status_slug(sl_status s);

/* ---- the server and the request (private to server*.c and request.c;
 * route files use the accessors above) ---- */
typedef struct api__conn api__conn;

#define API__WRITERS_MAX 16 /* api_server_add_metrics() writers */

/* The watchdog's record of one connection. */
struct api__conn {
    api__conn *prev, *next;
    int fd;
    _Atomic int64_t deadline_ms; /* monotonic; 0 while a request is being served */
};

struct api_server {
    api_config cfg;
    store *st;
    struct MHD_Daemon *mhd;
    api__acceptor *acceptor; /* the listening socket: accepts for mhd */
    api__router router;
    api__metrics *metrics;
    api__key_cache *keys;
    api__uploads *uploads;
    api__jobs *jobs;
    ingest_catalog_cache *catalogs;
    api__cursor_key cursor_key; /* from the store's secret, loaded at start */
    uint16_t port;
    char url[320];
    char *tls_cert_pem, *tls_key_pem;
    char hsts[48]; /* Strict-Transport-Security value; "" without TLS or with hsts-max-age 0 */

    char id_prefix[9];
    _Atomic uint64_t id_counter;
    _Atomic int stopping;
    _Atomic int64_t in_flight;
    int stopped;

    pthread_mutex_t conns_lock;
    api__conn conns; /* list head */

    pthread_t watchdog;
    int watchdog_started;
    pthread_mutex_t tick_lock;
    pthread_cond_t tick_cond;
    int watchdog_quit;

    pthread_mutex_t writers_lock;
    struct {
        api_metrics_writer fn;
        void *ctx;
    } writers[API__WRITERS_MAX];
    size_t nwriters;

    _Atomic int64_t log_second; /* libmicrohttpd message rate limit */
    _Atomic int log_count;
};

/* Monotonic clock in microseconds and milliseconds (server.c). */
int64_t api__mono_us(void);
int64_t api__mono_ms(void);

/* libmicrohttpd's callbacks for the life of a request (server_request.c):
 * the request line (allocates the request), the raw path kept as it came,
 * each call of the access handler, the end of the request (frees it). */
void *api__on_uri(void *cls, const char *uri, struct MHD_Connection *conn);
size_t api__no_unescape(void *cls, struct MHD_Connection *c, char *s);
enum MHD_Result api__on_access(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **req_cls);
void api__on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                       enum MHD_RequestTerminationCode toe);

/* Everything decided from the request head: routing, parameters, key, role,
 * body limit, then the route's head hook.  Records a problem in req when the
 * request is refused (server_head.c). */
void api__check_head(api_server *srv, api_request *req, const char *url, const char *version);

/* Records what a route's callback returned (rc != SL_OK, details in e) as
 * the request's problem (server_request.c). */
void api__route_failed(api_server *srv, api_request *req, sl_status rc, sl_error *e);

struct api_request {
    api_server *srv;
    store *st;
    const api_config *cfg;
    struct MHD_Connection *conn;
    api__conn *tracked;                /* the connection's watchdog record, may be NULL */
    const api__cursor_key *cursor_key; /* the server's */
    char *uri;                         /* raw request target as received (owned) */
    const char *method;                /* libmicrohttpd's, valid for the request */
    size_t path_len;                   /* bytes of uri before '?' */
    api__path path;
    api__query query;
    api__match match;
    size_t metric_route; /* route index, or the router size for "unmatched" */
    int phase;           /* 0 before the head was seen, 1 reading, 2 answered */
    char request_id[40];
    int64_t start_us;
    int authed;
    api_auth auth;

    /* body */
    int has_body;
    uint64_t body_limit;
    uint64_t received;
    char *body; /* buffered policy (owned) */
    size_t body_len, body_cap;
    int draining; /* refused or failed: bytes are dropped */

    /* a pending problem, answered once the body is in (or at once) */
    int problem_http;
    const char *problem_slug;
    sl_error problem;
    int www_authenticate;
    int allow_header;

    /* the reply */
    struct MHD_Response *resp;
    int resp_status;
    uint64_t resp_bytes;
    const char *resp_content_type;

    void *state;
    void (*state_free)(void *);

    /* API_RUN_JOB routes: API__JOB_NONE until the handler is handed to the
     * pool, QUEUED while it waits or runs (the connection suspended), DONE
     * once its reply or problem is set and the connection resumed. */
    _Atomic int job;
    int retry_after_s; /* > 0: a Retry-After header goes with the problem */

    api__upload_hold upload; /* a streamed upload's share of the quotas */
};

enum { API__JOB_NONE = 0, API__JOB_QUEUED, API__JOB_DONE };

/* Records a problem to answer for req (first one wins); slug may be NULL for
 * the status's own.  Returns e->status. */
sl_status api__request_fail(api_request *req, int http_status, const char *slug, const sl_error *e);

/* api__request_fail() with the error built from s, field and a message. */
void api__request_failf(api_request *req, int http, const char *slug, sl_status s,
                        const char *field, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Records the 503 answer when rc is the engine's "aggregate cannot be
 * served" (engine.h, the brand read model): SL_ECORRUPT naming
 * ENGINE_FIELD_AGGREGATE ("aggregate-needs-repair"; the details -- which
 * may name what its damaged bytes hold -- are the operator's, in
 * recompute's report) or ENGINE_FIELD_AGGREGATE_OVER_LIMIT
 * ("aggregate-over-metric-limit").  Returns rc. */
sl_status api__aggregate_check(api_request *req, sl_status rc, sl_error *err);

/* Builds the problem response recorded in req into req->resp. */
sl_status api__request_problem_reply(api_request *req);

/* Frees what the request holds (not the struct). */
void api__request_release(api_request *req);

#endif /* SIGHTLINE_API_INT_H */
