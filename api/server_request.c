/* server_request.c -- the life of one request on the libmicrohttpd threads:
 * its start, the body (buffered or streamed), the handler (inline or on the
 * job pool, the connection suspended), the answer, the access log line. */
#include "api_int.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* What a client refused by a full job pool is told to wait: about one
 * ingest job of a large file. */
#define JOB_RETRY_AFTER_S 5

/* ---------------------------------------------------------------------------
 * The access log: one JSON line per request, no secrets, no bodies.
 * ------------------------------------------------------------------------- */

static void access_log(api_server *srv, api_request *req, int aborted)
{
    FILE *out = srv->cfg.access_log;
    yajl_gen g = NULL;
    const unsigned char *buf = NULL;
    size_t len = 0;
    char ts[25], remote[INET6_ADDRSTRLEN] = "";
    struct timespec now;
    if (!out || !(g = api_json_new()))
        goto out;
    clock_gettime(CLOCK_REALTIME, &now);
    schema_time_format((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000, ts);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, remote, sizeof remote);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, remote,
                      sizeof remote);
    }
    yajl_gen_map_open(g);
    api_json_kv_str(g, "ts", ts);
    api_json_kv_str(g, "request_id", req->request_id[0] ? req->request_id : NULL);
    api_json_kv_str(g, "remote", remote);
    api_json_kv_str(g, "method", req->method);
    api_json_str(g, "path");
    /* The path only: a query string may carry things that are not ours to log. */
    api_json_strn(g, req->uri, req->uri ? strnlen(req->uri, 512) : 0);
    if (req->match.route)
        api_json_kv_str(g, "route", req->match.route->route->pattern);
    api_json_kv_int(g, "status", req->resp_status);
    api_json_kv_int(g, "bytes", (int64_t)req->resp_bytes);
    api_json_kv_int(g, "body_bytes", (int64_t)req->received);
    api_json_kv_int(g, "duration_us", api__mono_us() - req->start_us);
    if (req->authed) {
        api_json_kv_str(g, "tenant", req->auth.tenant);
        api_json_kv_str(g, "key_id", req->auth.key_id);
    }
    if (req->problem_http) {
        api_json_kv_str(g, "problem", req->problem_slug);
        api_json_kv_str(g, "error", req->problem.message);
    }
    if (aborted) {
        api_json_str(g, "aborted");
        yajl_gen_bool(g, 1);
    }
    if (req->phase == 0)
        api_json_kv_str(g, "error", "the HTTP layer refused or lost the request head");
    yajl_gen_map_close(g);
    yajl_gen_get_buf(g, &buf, &len);
    /* One fwrite per line: stdio's lock keeps lines whole across threads. */
    char *line = malloc(len + 1);
    if (line) {
        memcpy(line, buf, len);
        line[len] = '\n';
        fwrite(line, 1, len + 1, out);
        free(line);
    }
out:
    if (g)
        yajl_gen_free(g);
}

/* ---------------------------------------------------------------------------
 * Request lifecycle.
 * ------------------------------------------------------------------------- */

/* Called by libmicrohttpd when a request line arrives, before headers.
 * Allocates the request (it becomes *req_cls; api__on_completed frees it) with
 * its own copy of the raw URI (not yet unescaped). */
void *api__on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    api_server *srv = cls;
    api_request *req = calloc(1, sizeof *req);
    if (req) {
        req->srv = srv;
        req->st = srv->st;
        req->cfg = &srv->cfg;
        req->cursor_key = &srv->cursor_key;
        req->conn = conn;
        req->uri = strdup(uri ? uri : "");
        req->start_us = api__mono_us();
        req->metric_route = srv->router.n;
    }
    return req;
}

/* Keeps the raw path: the router decodes segment by segment, so an escaped
 * '/' stays inside its segment (and is then refused). */
size_t api__no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    return strlen(s);
}

static api__conn *tracked_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

void api__on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                       enum MHD_RequestTerminationCode toe)
{
    api_server *srv = cls;
    api_request *req = *req_cls;
    if (!req)
        goto out; /* the request line came when memory was short */
    int aborted = toe != MHD_REQUEST_TERMINATED_COMPLETED_OK;
    if (req->phase >= 1) {
        atomic_fetch_sub(&srv->in_flight, 1);
        api__metrics_in_flight(srv->metrics, -1);
    }
    api__metrics_observe(srv->metrics, req->metric_route, req->resp_status,
                         api__mono_us() - req->start_us);
    access_log(srv, req, aborted);
    api__conn *c = req->tracked ? req->tracked : tracked_of(conn);
    if (c) /* the next request head must arrive in time */
        atomic_store(&c->deadline_ms, api__mono_ms() + srv->cfg.header_timeout_s * 1000);
    api__request_release(req);
    free(req);
    *req_cls = NULL;
out:
    return;
}

static void set_request_id(api_server *srv, api_request *req)
{
    const char *given = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "X-Request-Id");
    size_t n = given ? strspn(given, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     "0123456789._:-")
                     : 0;
    /* A caller's id is kept when it is short and plain (it goes into logs). */
    if (given && n > 0 && n < sizeof req->request_id && given[n] == '\0')
        memcpy(req->request_id, given, n + 1);
    else
        snprintf(req->request_id, sizeof req->request_id, "%s-%010llx", srv->id_prefix,
                 (unsigned long long)atomic_fetch_add(&srv->id_counter, 1));
}

/* Records what a route's callback returned (rc != SL_OK, details in e) as
 * the request's problem: storage failures are counted for /metrics, and an
 * error without a message gets its status's title. */
void api__route_failed(api_server *srv, api_request *req, sl_status rc, sl_error *e)
{
    if (api__is_store_error(rc))
        api__metrics_store_error(srv->metrics, rc);
    if (e->status == SL_OK)
        sl_error_set(e, rc, "%s", sl_status_title(rc));
    api__request_fail(req, sl_status_http(rc), NULL, e);
}

/* Appends to the buffered body (req->body, freed by api__request_release),
 * growing geometrically up to the limit.  0 when memory is short. */
static int buffer_append(api_request *req, const char *data, size_t n)
{
    int ok = 1;
    if (req->body_len + n + 1 > req->body_cap) {
        size_t want = req->body_cap ? req->body_cap * 2 : 4096;
        if (want < req->body_len + n + 1)
            want = req->body_len + n + 1;
        if (want > req->body_limit + 1)
            want = req->body_limit + 1;
        char *grown = realloc(req->body, want);
        ok = grown != NULL;
        if (ok) {
            req->body = grown;
            req->body_cap = want;
        }
    }
    if (ok) {
        memcpy(req->body + req->body_len, data, n);
        req->body_len += n;
        req->body[req->body_len] = '\0';
    }
    return ok;
}

/* One piece of body.  Returns MHD_NO (close the connection) only when a
 * refused body keeps coming past the drain allowance. */
static enum MHD_Result on_body(api_server *srv, api_request *req, const char *data, size_t n)
{
    enum MHD_Result ret = MHD_YES;
    req->received += n;
    if (req->draining) {
        if (req->received > req->body_limit + (uint64_t)srv->cfg.drain_bytes)
            ret = MHD_NO;
        goto out;
    }
    const api_route *r = req->match.route->route;
    if (req->received > req->body_limit) {
        api__request_failf(req, 413, "body-too-large", SL_ETOOLARGE, "body",
                           "the body passed %llu bytes, the most %s %s takes",
                           (unsigned long long)req->body_limit, r->method, r->pattern);
        req->draining = 1;
        goto out;
    }
    if (r->body == API_BODY_BUFFERED) {
        if (!buffer_append(req, data, n)) {
            api__request_failf(req, 503, "busy", SL_ENOMEM, NULL,
                               "out of memory buffering the body");
            req->draining = 1;
        }
    } else {
        sl_error e;
        sl_error_clear(&e);
        sl_status rc = r->on_chunk(req, data, n, &e);
        if (rc != SL_OK) {
            api__route_failed(srv, req, rc, &e);
            req->draining = 1;
        }
    }
out:
    return ret;
}

/* Queues req->resp with the headers every answer carries. */
static enum MHD_Result queue(api_server *srv, api_request *req)
{
    enum MHD_Result ret = MHD_NO;
    if (!req->resp && api__request_problem_reply(req) != SL_OK)
        goto out;
    MHD_add_response_header(req->resp, "X-Request-Id", req->request_id);
    if (!MHD_get_response_header(req->resp, MHD_HTTP_HEADER_CACHE_CONTROL))
        MHD_add_response_header(req->resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(req->resp, "X-Content-Type-Options", "nosniff");
    if (srv->hsts[0]) /* HTTPS only: over plain HTTP the header means nothing (RFC 6797) */
        MHD_add_response_header(req->resp, "Strict-Transport-Security", srv->hsts);
    if (atomic_load(&srv->stopping))
        MHD_add_response_header(req->resp, MHD_HTTP_HEADER_CONNECTION, "close");
    ret = MHD_queue_response(req->conn, (unsigned)req->resp_status, req->resp);
    MHD_destroy_response(req->resp);
    req->resp = NULL;
    req->phase = 2;
out:
    return ret;
}

/* Runs the route's handler unless a problem is already recorded; a failure
 * (or a handler that set no reply) becomes the recorded problem.  On a
 * libmicrohttpd thread, or on a job thread while the connection is
 * suspended. */
static void run_handler(api_server *srv, api_request *req)
{
    if (!req->problem_http) {
        sl_error e;
        sl_error_clear(&e);
        sl_status rc = req->match.route->route->handler(req, &e);
        if (rc == SL_OK && !req->resp)
            rc = sl_error_set(&e, SL_EINTERNAL, "the handler of %s set no reply",
                              req->match.route->label);
        if (rc != SL_OK)
            api__route_failed(srv, req, rc, &e);
    }
}

/* A job thread: the handler, then the connection back to libmicrohttpd,
 * which calls api__on_access again to queue the answer.  req is not touched after
 * the resume: the request may end at once. */
static void job_run(void *arg)
{
    api_request *req = arg;
    run_handler(req->srv, req);
    atomic_store(&req->job, API__JOB_DONE);
    MHD_resume_connection(req->conn);
}

/* The pool stopped before the job started: nothing was written; the client
 * is told to send again. */
static void job_cancel(void *arg)
{
    api_request *req = arg;
    sl_error e;
    sl_error_clear(&e);
    sl_error_set(&e, SL_EBUSY,
                 "the server is stopping before this request could run; nothing "
                 "of it was stored: send it again");
    req->retry_after_s = JOB_RETRY_AFTER_S;
    api__request_fail(req, 503, "busy", &e);
    atomic_store(&req->job, API__JOB_DONE);
    MHD_resume_connection(req->conn);
}

/* Hands the handler to the job pool.  The connection is suspended first, so
 * the job's resume can never come before it; a refused job is resumed at
 * once and answered 503 on the call that follows. */
static void start_job(api_server *srv, api_request *req)
{
    sl_error e;
    sl_error_clear(&e);
    atomic_store(&req->job, API__JOB_QUEUED);
    MHD_suspend_connection(req->conn);
    if (api__jobs_submit(srv->jobs, job_run, job_cancel, req, &e) != SL_OK) {
        req->retry_after_s = JOB_RETRY_AFTER_S;
        api__request_fail(req, 503, "busy", &e);
        atomic_store(&req->job, API__JOB_DONE);
        MHD_resume_connection(req->conn);
    }
}

/* The whole request is in: run the handler (inline or as a job) or answer
 * the recorded problem; after a job, answer what it left. */
static enum MHD_Result finish(api_server *srv, api_request *req)
{
    enum MHD_Result ret = MHD_YES;
    int job = atomic_load(&req->job);
    if (job == API__JOB_QUEUED)
        goto out; /* not resumed yet (libmicrohttpd calls again after the resume) */
    if (job == API__JOB_NONE && !req->problem_http && req->match.route->route->run == API_RUN_JOB) {
        start_job(srv, req);
        goto out;
    }
    if (job == API__JOB_NONE)
        run_handler(srv, req);
    /* The body is used up: an upload's quota is given back before its answer
     * goes out, so a client that sends its next upload on this answer never
     * finds the last one still counted (the spool file goes when the request
     * ends, moments later). */
    api__upload_end(&req->upload);
    /* queue() builds the problem answer when no reply is set. */
    ret = queue(srv, req);
out:
    return ret;
}

/* The access handler.  libmicrohttpd 0.9.75 sends `Connection: close` with a
 * response queued in the first call for a request, so the first call only
 * checks the head and answers come on a later call (two-phase): keep-alive
 * holds.  Later calls bring the body piece by piece, then a final call. */
enum MHD_Result api__on_access(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **req_cls)
{
    api_server *srv = cls;
    api_request *req = *req_cls;
    enum MHD_Result ret = MHD_YES;
    if (!req || !req->uri) {
        ret = MHD_NO; /* out of memory when the request line came */
        goto out;
    }
    if (req->phase == 0) {
        req->phase = 1;
        req->method = method;
        req->tracked = tracked_of(conn);
        if (req->tracked)
            atomic_store(&req->tracked->deadline_ms, 0);
        atomic_fetch_add(&srv->in_flight, 1);
        api__metrics_in_flight(srv->metrics, 1);
        set_request_id(srv, req);
        api__check_head(srv, req, url, version);
        /* A refused request with a body is answered now: the body is never read
         * (libmicrohttpd then closes the connection).  Without a body the
         * answer waits for the next call so keep-alive holds. */
        if (req->problem_http && req->has_body)
            ret = finish(srv, req);
        goto out;
    }
    if (*upload_data_size > 0) {
        ret = on_body(srv, req, upload_data, *upload_data_size);
        *upload_data_size = 0;
        goto out;
    }
    if (req->phase == 1)
        ret = finish(srv, req);
out:
    return ret;
}
