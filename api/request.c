/* request.c -- what a handler sees of a request (accessors), the replies it
 * can set, and problem answers (application/problem+json, RFC 9457) with a
 * stable type URI per kind of problem. */
#include "api_int.h"

#include <assert.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"

#define PROBLEM_BASE "https://sightline.dev/problems/"

/* ---- accessors ---- */

const char *api_method(const api_request *req)
{
    return req->method;
}

const char *api_path(const api_request *req)
{
    return req->uri;
}

const char *api_request_id(const api_request *req)
{
    return req->request_id;
}

store *api_store(const api_request *req)
{
    return req->st;
}

api_server *api_server_of(const api_request *req)
{
    return req->srv;
}

const api_config *api_config_of(const api_request *req)
{
    return req->cfg;
}

const char *api_upload_dir(const api_request *req)
{
    return req->cfg->upload_dir[0] ? req->cfg->upload_dir : ingest_upload_dir();
}

sl_status api_upload_start(api_request *req, ingest_limits *lim, ingest_upload **out, sl_error *err)
{
    sl_status rc = SL_OK;
    uint64_t max = (uint64_t)req->cfg->max_upload_body;
    /* The server checked the Content-Length against max-upload-body; none
     * (chunked) counts as the body comes. */
    const char *cl = api_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    uint64_t declared = cl ? strtoull(cl, NULL, 10) : 0;
    ingest_limits_default(lim);
    if (max < lim->max_input_bytes)
        lim->max_input_bytes = max;
    if ((rc = api__upload_begin(api__server_uploads(req->srv), req, api_upload_dir(req), declared,
                                err)) != SL_OK)
        goto out;
    rc = ingest_upload_open(api_upload_dir(req), lim->max_input_bytes, out, err);
out:
    return rc;
}

sl_status api_upload_chunk(api_request *req, const char *data, size_t len, sl_error *err)
{
    api_upload *u = api_state(req); /* made by the head hook, which succeeded */
    sl_status rc = api__upload_grow(req, api_upload_dir(req), len, err);
    return rc == SL_OK ? ingest_upload_write(u->up, data, len, err) : rc;
}

const api_auth *api_auth_of(const api_request *req)
{
    return req->authed ? &req->auth : NULL;
}

const char *api_param(const api_request *req, const char *name)
{
    const char *v = NULL;
    for (size_t i = 0; i < req->match.nparams && !v; i++)
        if (!strcmp(req->match.names[i], name))
            v = req->match.values[i];
    return v;
}

const char *api_query(const api_request *req, const char *name)
{
    const char *v = NULL;
    /* A parameter the route does not declare was refused before the
     * handler ran: reading one is a bug of the route (its table must name
     * it), which the tests catch here. */
    int declared = req->match.route && api__route_takes(req->match.route, name);
    assert(declared);
    for (size_t i = 0; i < req->query.n && !v && declared; i++)
        if (!strcmp(req->query.name[i], name))
            v = req->query.value[i];
    return v;
}

sl_status api_query_int(const api_request *req, const char *name, int64_t min, int64_t max,
                        int64_t def, int64_t *out, sl_error *err)
{
    sl_status rc = SL_OK;
    const char *v = api_query(req, name);
    int64_t n = 0;
    if (!v) {
        *out = def;
        goto out;
    }
    const char *p = v;
    int neg = *p == '-';
    if (neg)
        p++;
    if (!*p)
        rc = SL_EINVAL;
    for (; *p && rc == SL_OK; p++) {
        if (*p < '0' || *p > '9' || n > (INT64_MAX - 9) / 10)
            rc = SL_EINVAL;
        else
            n = n * 10 + (*p - '0');
    }
    if (neg)
        n = -n;
    if (rc != SL_OK || n < min || n > max) {
        rc = sl_error_set_at(err, SL_EINVAL, name, -1,
                             "query parameter %s must be an integer in %lld..%lld", name,
                             (long long)min, (long long)max);
        goto out;
    }
    *out = n;
out:
    return rc;
}

const char *api_header(const api_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *api_body(const api_request *req, size_t *len)
{
    *len = req->body ? req->body_len : 0;
    return req->body;
}

uint64_t api_body_received(const api_request *req)
{
    return req->received;
}

sl_status api_body_json(const api_request *req, yajl_val *out, sl_error *err)
{
    sl_status rc = SL_OK;
    char msg[128];
    yajl_val v = NULL;
    if (!req->body) {
        rc = sl_error_set_at(err, SL_EINVAL, "body", 0, "a JSON body is required");
        goto out;
    }
    if ((rc = api__json_check(req->body, req->body_len, 64, err)) != SL_OK)
        goto out;
    v = yajl_tree_parse(req->body, msg, sizeof msg);
    if (!v) { /* the check passed, so only memory can be short */
        rc = sl_error_set(err, SL_ENOMEM, "out of memory parsing the JSON body");
        goto out;
    }
    *out = v;
out:
    return rc;
}

void api_state_set(api_request *req, void *state, void (*free_fn)(void *))
{
    if (req->state_free && req->state && req->state != state)
        req->state_free(req->state);
    req->state = state;
    req->state_free = free_fn;
}

void *api_state(const api_request *req)
{
    return req->state;
}

/* ---- replies ---- */

static sl_status reply_set(api_request *req, struct MHD_Response *resp, int http_status,
                           const char *content_type, uint64_t bytes, sl_error *err)
{
    sl_status rc = SL_OK;
    if (!resp) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory building the reply");
        goto out;
    }
    if (req->resp) {
        MHD_destroy_response(resp);
        rc = sl_error_set(err, SL_EINTERNAL, "the handler replied twice");
        goto out;
    }
    if (content_type &&
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES) {
        MHD_destroy_response(resp);
        rc = sl_error_set(err, SL_EINTERNAL, "content type \"%.64s\" refused", content_type);
        goto out;
    }
    req->resp = resp;
    req->resp_status = http_status;
    req->resp_bytes = bytes;
    req->resp_content_type = content_type;
out:
    return rc;
}

sl_status api_reply_json(api_request *req, int http_status, yajl_gen g, sl_error *err)
{
    sl_status rc = SL_OK;
    const unsigned char *buf = NULL;
    size_t len = 0;
    /* Adding a value to a finished document is refused: that proves it is whole. */
    if (yajl_gen_null(g) != yajl_gen_generation_complete ||
        yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok) {
        rc = sl_error_set(err, SL_EINTERNAL, "the handler built incomplete JSON");
        goto out;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)buf, MHD_RESPMEM_MUST_COPY);
    rc = reply_set(req, resp, http_status, "application/json", len, err);
out:
    return rc;
}

sl_status api_reply_bytes(api_request *req, int http_status, const char *content_type, void *data,
                          size_t len, int take, sl_error *err)
{
    struct MHD_Response *resp =
        take ? MHD_create_response_from_buffer_with_free_callback(len, data, free)
             : MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_COPY);
    if (!resp && take)
        free(data);
    return reply_set(req, resp, http_status, content_type, len, err);
}

sl_status api_reply_fd(api_request *req, int http_status, const char *content_type, int fd,
                       uint64_t size, sl_error *err)
{
    struct MHD_Response *resp = MHD_create_response_from_fd((size_t)size, fd);
    if (!resp)
        close(fd);
    return reply_set(req, resp, http_status, content_type, size, err);
}

sl_status api_reply_empty(api_request *req, int http_status, sl_error *err)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    return reply_set(req, resp, http_status, NULL, 0, err);
}

sl_status api_reply_header(api_request *req, const char *name, const char *value, sl_error *err)
{
    sl_status rc = SL_OK;
    if (!req->resp) {
        rc = sl_error_set(err, SL_EINTERNAL, "header %.64s set before the reply", name);
        goto out;
    }
    if (strpbrk(name, "\r\n: ") || strpbrk(value, "\r\n") ||
        MHD_add_response_header(req->resp, name, value) != MHD_YES) {
        rc = sl_error_set(err, SL_EINTERNAL, "header %.64s refused", name);
        goto out;
    }
out:
    return rc;
}

sl_status api_reply_json_with(api_request *req, int http_status, api_json_fn write, const void *ctx,
                              sl_error *err)
{
    yajl_gen g = NULL;
    sl_status rc = api_json_start(&g, err);
    if (rc == SL_OK)
        rc = write(g, ctx, err);
    if (rc == SL_OK)
        rc = api_reply_json(req, http_status, g, err);
    if (g)
        yajl_gen_free(g);
    return rc;
}

typedef struct doc_answer {
    api_doc_json_fn emit;
    const bson_t *doc;
    int64_t version;
} doc_answer;

static sl_status doc_answer_json(yajl_gen g, const void *ctx, sl_error *err)
{
    const doc_answer *a = ctx;
    a->emit(g, a->doc, a->version);
    return SL_OK;
}

sl_status api_reply_doc(api_request *req, const store_put_result *res, const bson_t *doc,
                        api_doc_json_fn emit, const char *location, sl_error *err)
{
    int created = res && res->changed && res->version == 1;
    doc_answer a = {emit, doc, res ? res->version : -1};
    sl_status rc = api_reply_json_with(req, created ? 201 : 200, doc_answer_json, &a, err);
    if (rc == SL_OK && created)
        rc = api_reply_header(req, "Location", location, err);
    return rc;
}

sl_status api_put_doc(api_request *req, const bson_t *doc, api_doc_json_fn emit,
                      const char *location, sl_error *err)
{
    store_put_result res = {0, 0};
    sl_status rc =
        store_put(api_store(req), STORE_ITEMS, doc, (store_cond){STORE_COND_NONE, 0}, &res, err);
    return rc == SL_OK ? api_reply_doc(req, &res, doc, emit, location, err) : rc;
}

sl_status api_put_body(api_request *req, const char *param, api_body_doc_fn build,
                       api_doc_json_fn emit, const char *location_prefix, sl_error *err)
{
    bson_t *doc = NULL;
    size_t len = 0;
    const char *body = api_body(req, &len), *id = api_param(req, param);
    char location[64 + SCHEMA_COMPONENT_MAX];
    /* Written here rather than by ingest's put so the answer is the very
     * document stored, with the version the store gave it; equal content is
     * no write (no version bump, no feed event). */
    sl_status rc = build(api_auth_of(req)->tenant, id, body ? body : "", len, NULL, &doc, err);
    snprintf(location, sizeof location, "%s%s", location_prefix, id);
    if (rc == SL_OK)
        rc = api_put_doc(req, doc, emit, location, err);
    if (doc)
        bson_destroy(doc);
    return rc;
}

sl_status api_get_doc(store *st, store_table t, const char *pk, const char *sk, bson_t **out,
                      sl_error *err, const char *field, const char *fmt, ...)
{
    sl_error e;
    sl_error_clear(&e);
    sl_status rc = store_get(st, t, pk, sk, out, &e);
    if (rc == SL_ENOTFOUND) {
        va_list ap;
        va_start(ap, fmt);
        sl_error_vset_at(err, rc, field, -1, fmt, ap);
        va_end(ap);
    } else if (rc != SL_OK) {
        sl_error_set_at(err, rc, e.field[0] ? e.field : NULL, e.offset, "%s", e.message);
    }
    return rc;
}

/* ---- problems ---- */

typedef struct slug_row {
    sl_status status;
    const char *slug;
} slug_row;

static const slug_row status_slugs[] = {
    {SL_EINVAL, "invalid-input"},
    {SL_ENOTFOUND, "not-found"},
    {SL_ECONDITION, "condition-failed"},
    {SL_ETOOLARGE, "too-large"},
    {SL_ENOMEM, "out-of-memory"},
    {SL_EIO, "storage-unavailable"},
    {SL_EBUSY, "busy"},
    {SL_ECORRUPT, "corrupt-data"},
    {SL_EAUTH, "unauthorized"},
    {SL_EFORBIDDEN, "forbidden"},
    {SL_EFEEDGONE, "feed-position-gone"},
    {SL_EUNSUPPORTED, "unsupported"},
    {SL_EINTERNAL, "internal-error"},
    {SL_ECONFLICT, "conflict"},
    {SL_ETIMEOUT, "timeout"},
    {SL_EOVERFLOW, "overflow"},
};

const char *api__status_slug(sl_status s)
{
    const char *slug = "internal-error";
    for (size_t i = 0; i < sizeof status_slugs / sizeof status_slugs[0]; i++)
        if (status_slugs[i].status == s)
            slug = status_slugs[i].slug;
    return slug;
}

sl_status api__problem_body(int http_status, const char *slug, const char *title,
                            const char *detail, const char *field, int64_t offset,
                            const char *request_id, char **body, size_t *len)
{
    sl_status rc = SL_OK;
    yajl_gen g = api_json_new();
    char type[128];
    const unsigned char *buf = NULL;
    size_t n = 0;
    char *copy = NULL;
    if (!g) {
        rc = SL_ENOMEM;
        goto out;
    }
    snprintf(type, sizeof type, PROBLEM_BASE "%s", slug);
    yajl_gen_map_open(g);
    api_json_kv_str(g, "type", type);
    api_json_kv_str(g, "title", title);
    api_json_kv_int(g, "status", http_status);
    api_json_kv_str(g, "detail", detail);
    if (field && field[0])
        api_json_kv_str(g, "field", field);
    if (offset >= 0)
        api_json_kv_int(g, "offset", offset);
    api_json_kv_str(g, "request_id", request_id);
    yajl_gen_map_close(g);
    if (yajl_gen_get_buf(g, &buf, &n) != yajl_gen_status_ok || !(copy = malloc(n + 1))) {
        rc = SL_ENOMEM;
        goto out;
    }
    memcpy(copy, buf, n);
    copy[n] = '\0';
    *body = copy;
    *len = n;
out:
    if (g)
        yajl_gen_free(g);
    return rc;
}

sl_status api__request_fail(api_request *req, int http_status, const char *slug, const sl_error *e)
{
    if (!req->problem_http) {
        req->problem_http = http_status;
        req->problem_slug = slug ? slug : api__status_slug(e->status);
        req->problem = *e;
    }
    return e->status;
}

sl_status api__aggregate_check(api_request *req, sl_status rc, sl_error *err)
{
    if (rc == SL_ECORRUPT && !strcmp(err->field, ENGINE_FIELD_AGGREGATE))
        api__request_fail(req, 503, "aggregate-needs-repair", err);
    else if (rc == SL_ECORRUPT && !strcmp(err->field, ENGINE_FIELD_AGGREGATE_OVER_LIMIT))
        api__request_fail(req, 503, "aggregate-over-metric-limit", err);
    else if (rc == SL_ECORRUPT && !strcmp(err->field, ENGINE_FIELD_AGGREGATE_OVERFLOW))
        api__request_fail(req, 503, "aggregate-overflow", err);
    return rc;
}

void api__request_failf(api_request *req, int http, const char *slug, sl_status s,
                        const char *field, const char *fmt, ...)
{
    sl_error e;
    va_list ap;
    sl_error_clear(&e);
    va_start(ap, fmt);
    sl_error_vset_at(&e, s, field, -1, fmt, ap);
    va_end(ap);
    api__request_fail(req, http, slug, &e);
}

/* Title per HTTP status: the problem's short, stable summary. */
static const struct {
    int http;
    const char *title;
} http_titles[] = {
    {400, "Bad request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not found"},
    {405, "Method not allowed"},
    {409, "Conflict"},
    {410, "Gone"},
    {413, "Content too large"},
    {415, "Unsupported media type"},
    {429, "Too many requests"},
    {431, "Request header fields too large"},
    {501, "Not implemented"},
    {503, "Service unavailable"},
    {504, "Gateway timeout"},
    {507, "Insufficient storage"},
};

static const char *http_title(int http_status)
{
    const char *t = http_status >= 500 ? "Internal server error" : "Bad request";
    for (size_t i = 0; i < sizeof http_titles / sizeof http_titles[0]; i++)
        if (http_titles[i].http == http_status)
            t = http_titles[i].title;
    return t;
}

sl_status api__request_problem_reply(api_request *req)
{
    sl_status rc = SL_OK;
    char *body = NULL;
    size_t len = 0;
    char detail[600];
    const sl_error *e = &req->problem;
    int http = req->problem_http ? req->problem_http : 500;
    /* Internal failures are described in the access log, not to the client;
     * 501, 503 and 507 say what the client can act on. */
    int internal = http >= 500 && http != 501 && http != 503 && http != 507;
    if (internal)
        snprintf(detail, sizeof detail,
                 "the server failed to answer; quote request id %s to the operator",
                 req->request_id);
    else
        snprintf(detail, sizeof detail, "%s",
                 e->message[0] ? e->message : sl_status_title(e->status));
    if (req->resp) { /* a handler reply that lost to an error */
        MHD_destroy_response(req->resp);
        req->resp = NULL;
    }
    rc =
        api__problem_body(http, req->problem_slug ? req->problem_slug : "internal-error",
                          http_title(http), detail, http < 500 || http == 507 ? e->field : NULL,
                          http < 500 || http == 507 ? e->offset : -1, req->request_id, &body, &len);
    if (rc != SL_OK)
        goto out;
    struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback(len, body, free);
    if (!resp) {
        free(body);
        rc = SL_ENOMEM;
        goto out;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/problem+json");
    if (http == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                req->www_authenticate == 2
                                    ? "Bearer realm=\"sightline\", error=\"invalid_token\""
                                    : "Bearer realm=\"sightline\"");
    if (http == 405 && req->match.allow[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, req->match.allow);
    if (req->retry_after_s > 0) {
        char secs[24];
        snprintf(secs, sizeof secs, "%d", req->retry_after_s);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, secs);
    }
    req->resp = resp;
    req->resp_status = http;
    req->resp_bytes = len;
    req->resp_content_type = "application/problem+json";
out:
    return rc;
}

void api__request_release(api_request *req)
{
    if (req->state_free && req->state)
        req->state_free(req->state);
    req->state = NULL;
    /* After the state: its spool file is gone, so are the bytes counted. */
    api__upload_end(&req->upload);
    if (req->resp)
        MHD_destroy_response(req->resp);
    req->resp = NULL;
    free(req->uri);
    free(req->path.buf);
    free(req->query.buf);
    free(req->body);
    req->uri = NULL;
    req->path.buf = NULL;
    req->query.buf = NULL;
    req->body = NULL;
}
