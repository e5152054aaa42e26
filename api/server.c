/* server.c -- the libmicrohttpd daemon (epoll, thread pool) and the life of one
 * request: head checks, routing, key, head hook, body policy, handler (inline,
 * or on the job pool with the connection suspended), answer, access log,
 * metrics; the connection watchdog (slow-loris heads) and graceful stop. */
#include "api_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WRITERS_MAX      16
#define WATCHDOG_TICK_MS 200
#define TLS_FILE_MAX     (1 << 20)
/* What a client refused by a full job pool is told to wait: about one
 * ingest job of a large file. */
#define JOB_RETRY_AFTER_S 5
/* After the job pool stopped, how long the answers of the last jobs get to
 * go out (they were resumed; only sending is left). */
#define JOB_ANSWER_WAIT_MS 5000

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
    } writers[WRITERS_MAX];
    size_t nwriters;

    _Atomic int64_t log_second; /* libmicrohttpd message rate limit */
    _Atomic int log_count;
};

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mono_ms(void)
{
    return mono_us() / 1000;
}

/* ---------------------------------------------------------------------------
 * Connections and the watchdog.
 * ------------------------------------------------------------------------- */

/* Allocates the watchdog record of a connection when it opens (it becomes
 * the connection's socket context) and frees it when it closes. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    api_server *srv = cls;
    api__conn *c = NULL;
    if (code == MHD_CONNECTION_NOTIFY_STARTED && (c = calloc(1, sizeof *c))) {
        /* (Without memory the connection goes unwatched: the idle timeout
         * still applies.) */
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        c->fd = ci ? ci->connect_fd : -1;
        atomic_store(&c->deadline_ms, mono_ms() + srv->cfg.header_timeout_s * 1000);
        pthread_mutex_lock(&srv->conns_lock);
        c->next = srv->conns.next;
        c->prev = &srv->conns;
        srv->conns.next->prev = c;
        srv->conns.next = c;
        pthread_mutex_unlock(&srv->conns_lock);
        *socket_context = c;
        api__metrics_connections(srv->metrics, 1);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        c = *socket_context;
        /* Unlinked under the lock before libmicrohttpd closes the fd, so the
         * watchdog never shuts down a reused descriptor. */
        pthread_mutex_lock(&srv->conns_lock);
        c->prev->next = c->next;
        c->next->prev = c->prev;
        pthread_mutex_unlock(&srv->conns_lock);
        free(c);
        *socket_context = NULL;
        api__metrics_connections(srv->metrics, -1);
    }
}

/* Closes connections whose request head is overdue (a slow-loris client
 * trickling bytes keeps the idle timer young but not this deadline), and
 * flushes the access log a few times a second. */
static void *watchdog_main(void *arg)
{
    api_server *srv = arg;
    pthread_mutex_lock(&srv->tick_lock);
    while (!srv->watchdog_quit) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += WATCHDOG_TICK_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&srv->tick_cond, &srv->tick_lock, &until);
        if (srv->cfg.access_log)
            fflush(srv->cfg.access_log);
        int64_t now = mono_ms();
        pthread_mutex_lock(&srv->conns_lock);
        for (api__conn *c = srv->conns.next; c != &srv->conns; c = c->next) {
            int64_t d = atomic_load(&c->deadline_ms);
            if (d != 0 && now > d && c->fd >= 0) {
                shutdown(c->fd, SHUT_RDWR); /* libmicrohttpd sees the end and cleans up */
                atomic_store(&c->deadline_ms, INT64_MAX);
            }
        }
        pthread_mutex_unlock(&srv->conns_lock);
    }
    pthread_mutex_unlock(&srv->tick_lock);
    return NULL;
}

static api__conn *tracked_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

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
    api_json_kv_int(g, "duration_us", mono_us() - req->start_us);
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
 * Allocates the request (it becomes *req_cls; on_completed frees it) with
 * its own copy of the raw URI (not yet unescaped). */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
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
        req->start_us = mono_us();
        req->metric_route = srv->router.n;
    }
    return req;
}

/* Keeps the raw path: the router decodes segment by segment, so an escaped
 * '/' stays inside its segment (and is then refused). */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    return strlen(s);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
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
                         mono_us() - req->start_us);
    access_log(srv, req, aborted);
    api__conn *c = req->tracked ? req->tracked : tracked_of(conn);
    if (c) /* the next request head must arrive in time */
        atomic_store(&c->deadline_ms, mono_ms() + srv->cfg.header_timeout_s * 1000);
    api__request_release(req);
    free(req);
    *req_cls = NULL;
out:
    return;
}

/* What the head scan learns. */
typedef struct head_scan {
    size_t bytes;
    int content_length, transfer_encoding, authorization, host;
    const char *bad_name; /* first malformed field name */
} head_scan;

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    head_scan *h = cls;
    size_t klen = strlen(key);
    h->bytes += klen + (value ? strlen(value) : 0) + 4;
    /* A field name is a token (RFC 9110): libmicrohttpd lets "Bad Name" by. */
    if (!h->bad_name &&
        (klen == 0 || strspn(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "0123456789!#$%&'*+-.^_`|~") != klen))
        h->bad_name = key;
    if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH))
        h->content_length++;
    else if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING))
        h->transfer_encoding++;
    else if (!strcasecmp(key, MHD_HTTP_HEADER_AUTHORIZATION))
        h->authorization++;
    else if (!strcasecmp(key, MHD_HTTP_HEADER_HOST))
        h->host++;
    return MHD_YES;
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

static int64_t effective_limit(const api_server *srv, const api_route *r)
{
    int64_t cap = r->body == API_BODY_STREAMED   ? srv->cfg.max_upload_body
                  : r->body == API_BODY_BUFFERED ? srv->cfg.max_json_body
                                                 : 0;
    return r->body_max > 0 && r->body_max < cap ? r->body_max : cap;
}

static void fail(api_request *req, int http, const char *slug, sl_status s, const char *field,
                 const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void fail(api_request *req, int http, const char *slug, sl_status s, const char *field,
                 const char *fmt, ...)
{
    sl_error e;
    va_list ap;
    sl_error_clear(&e);
    va_start(ap, fmt);
    sl_error_vset_at(&e, s, field, -1, fmt, ap);
    va_end(ap);
    api__request_fail(req, http, slug, &e);
}

/* Records what a route's callback returned (rc != SL_OK, details in e) as
 * the request's problem: storage failures are counted for /metrics, and an
 * error without a message gets its status's title. */
static void route_failed(api_server *srv, api_request *req, sl_status rc, sl_error *e)
{
    if (api__is_store_error(rc))
        api__metrics_store_error(srv->metrics, rc);
    if (e->status == SL_OK)
        sl_error_set(e, rc, "%s", sl_status_title(rc));
    api__request_fail(req, sl_status_http(rc), NULL, e);
}

/* ---------------------------------------------------------------------------
 * NUL bytes in the head.
 *
 * libmicrohttpd 0.9.75 hands the request line and the header values on as C
 * strings, so a NUL byte cut them short without a word: "PUT
 * /v1/surgeries/a<NUL>b" reached the router as /v1/surgeries/a, and
 * "Authorization: Bearer <key><NUL>junk" as the key.  The lengths it hides
 * are recovered from where it keeps the head: one buffer from the method's
 * first byte on, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE bytes long, in which
 * it replaced each separator by a NUL (the spaces of the request line, every
 * CR and LF, the colon after a field name, '?', '&' and '=' of the query) and
 * moved nothing.  So, in that buffer:
 *   - between the method's end and the target only NULs and spaces;
 *   - the target runs from url to the NUL just before version (what it
 *     spans must be what the URI callback saw as a C string, req->uri);
 *   - after "HTTP/1.x" and after each header value (whose place and length
 *     MHD_get_connection_values_n gives, in the order received), one or two
 *     NULs (CRLF or LF) and then the next field name, or two to four and then
 *     the end of the head.
 * Any other byte there stood after a NUL inside a line.  A folded header
 * line (obsolete since RFC 7230) is joined by libmicrohttpd in a copy
 * outside the head, which shows, and is refused too (RFC 9112 allows it).
 * An unexpected layout -- another libmicrohttpd -- refuses every request,
 * which the tests would show at once, rather than let a NUL through.
 * ------------------------------------------------------------------------- */

/* Whether [from, to) holds only NUL bytes, between min and max of them. */
static int only_nuls(const char *from, const char *to, size_t min, size_t max)
{
    uintptr_t a = (uintptr_t)from, b = (uintptr_t)to;
    int ok = b >= a && b - a >= min && b - a <= max;
    for (const char *p = from; ok && p < to; p++)
        ok = *p == '\0';
    return ok;
}

typedef struct nul_scan {
    const char *head, *head_end; /* the head in libmicrohttpd's buffer */
    const char *prev_end;        /* just after the previous line's last piece */
    const char *prev_name;       /* its header (NULL: the request line) */
    const char *bad;             /* where the line that holds a NUL broke the layout */
    const char *bad_name;
    int folded; /* a header line continued on the next (libmicrohttpd moved the field) */
} nul_scan;

static enum MHD_Result nul_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                  size_t key_size, const char *value, size_t value_size)
{
    nul_scan *s = cls;
    enum MHD_Result more = MHD_YES;
    if ((uintptr_t)key < (uintptr_t)s->head || (uintptr_t)key >= (uintptr_t)s->head_end) {
        s->folded = 1; /* a folded line is joined in a copy outside the head */
        more = MHD_NO;
    } else if (!only_nuls(s->prev_end, key, 1, 2)) { /* the previous line ends right before */
        s->bad = s->prev_end;
        s->bad_name = s->prev_name;
        more = MHD_NO;
    }
    s->prev_end = value + value_size;
    s->prev_name = key;
    return more;
}

/* Records a problem when the request line or a header holds a NUL byte
 * (method, url and version as libmicrohttpd gave them to on_access;
 * target_len the length of the target the URI callback saw). */
static void check_nul(api_request *req, const char *method, const char *url, const char *version,
                      size_t target_len)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    const char *head_end = ci ? method + ci->header_size : NULL;
    size_t mlen = strlen(method), vlen = strlen(version);
    uintptr_t target = (uintptr_t)version - 1 - (uintptr_t)url;
    const char *gap = method + mlen;
    nul_scan s = {method, head_end, version + vlen, NULL, NULL, NULL, 0};
    int line_ok = head_end && (uintptr_t)url > (uintptr_t)gap &&
                  (uintptr_t)version > (uintptr_t)url && (uintptr_t)head_end > (uintptr_t)version;
    for (const char *p = gap; line_ok && p < url; p++)
        line_ok = *p == '\0' || *p == ' ';
    if (!line_ok || target != target_len) {
        size_t at = line_ok ? (size_t)(url - method) + target_len : mlen;
        fail(req, 400, "nul-byte", SL_EINVAL, "request-line",
             "the request line holds a NUL byte (at byte %zu of the %s); a request head may not "
             "hold NUL anywhere",
             at, line_ok ? "request target" : "method");
        goto out;
    }
    MHD_get_connection_values_n(req->conn, MHD_HEADER_KIND, nul_header, &s);
    if (!s.bad && !s.folded && !only_nuls(s.prev_end, head_end, 2, 4)) {
        s.bad = s.prev_end;
        s.bad_name = s.prev_name;
    }
    if (s.folded) {
        fail(req, 400, "folded-header", SL_EINVAL, "headers",
             "a header field is folded over two lines (obsolete line folding, RFC 9112 section "
             "5.2): send each field on one line");
    } else if (s.bad && s.bad_name) {
        fail(req, 400, "nul-byte", SL_EINVAL, s.bad_name,
             "a NUL byte in header %.40s (or in the line after it); a request head may not hold "
             "NUL anywhere",
             s.bad_name);
        req->problem.offset = (int64_t)(s.bad - method);
    } else if (s.bad) {
        fail(req, 400, "nul-byte", SL_EINVAL, "request-line",
             "the request line holds a NUL byte after its HTTP version; a request head may not "
             "hold NUL anywhere");
    }
out:
    return;
}

/* The answer to a path no route serves (also given to a key whose tenant's
 * kind the route does not serve: the same bytes, so nothing tells them
 * apart).  Counted as unmatched. */
static void no_route(api_server *srv, api_request *req)
{
    req->metric_route = srv->router.n;
    fail(req, 404, "no-route", SL_ENOTFOUND, NULL, "no resource at this path");
}

/* The API_KIND_* bit of a tenant kind ("hospital", "brand-client"); 0 for
 * none (the store holds only those two: api_tenant_create checks). */
static unsigned kind_bit(const char *kind)
{
    return !strcmp(kind, SCHEMA_KIND_HOSPITAL)       ? API_KIND_HOSPITAL
           : !strcmp(kind, SCHEMA_KIND_BRAND_CLIENT) ? API_KIND_BRAND
                                                     : 0;
}

/* Everything decided from the request head: routing, parameters, key, role,
 * body limit, then the route's head hook.  Records a problem in req when the
 * request is refused. */
static void check_head(api_server *srv, api_request *req, const char *url, const char *version)
{
    head_scan h = {0, 0, 0, 0, 0, NULL};
    sl_error e;
    sl_error_clear(&e);
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, scan_header, &h);
    const char *cl =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    uint64_t declared = cl ? strtoull(cl, NULL, 10) : 0;
    req->has_body = declared > 0 || te != NULL;
    size_t target_len = strlen(req->uri);
    /* Split the target first, so no log line ever holds the query: the path
     * is routed, the query parsed; neither is unescaped as a whole. */
    req->path_len = strcspn(req->uri, "?");
    int has_query = req->uri[req->path_len] == '?';
    req->uri[req->path_len] = '\0';
    const char *query = has_query ? req->uri + req->path_len + 1 : "";

    check_nul(req, req->method, url, version, target_len);
    if (req->problem_http)
        goto out;
    if (h.bytes + target_len > (size_t)srv->cfg.max_header_bytes) {
        fail(req, 431, "headers-too-large", SL_ETOOLARGE, "headers",
             "the request line and headers take %zu bytes; the limit is %lld", h.bytes + target_len,
             (long long)srv->cfg.max_header_bytes);
        goto out;
    }
    if (h.bad_name) {
        fail(req, 400, "malformed-header", SL_EINVAL, "headers",
             "header name \"%.40s\" is not a token (letters, digits, !#$%%&'*+-.^_`|~)",
             h.bad_name);
        goto out;
    }
    if (h.content_length > 1 || (h.content_length && h.transfer_encoding) ||
        h.transfer_encoding > 1) {
        fail(req, 400, "ambiguous-body-length", SL_EINVAL, "Content-Length",
             "the body length is ambiguous: %d Content-Length and %d Transfer-Encoding headers",
             h.content_length, h.transfer_encoding);
        goto out;
    }
    if (te && strcasecmp(te, "chunked") != 0) {
        fail(req, 501, "unsupported-transfer-encoding", SL_EUNSUPPORTED, "Transfer-Encoding",
             "Transfer-Encoding \"%.40s\" is not supported; send chunked or a Content-Length", te);
        goto out;
    }
    if (h.authorization > 1) {
        fail(req, 400, "duplicate-header", SL_EINVAL, "Authorization",
             "more than one Authorization header");
        goto out;
    }
    /* libmicrohttpd is run lax (MHD_OPTION_STRICT_FOR_CLIENT 0) so that these
     * two are answered here, as problems, instead of by its own HTML page. */
    if (h.host > 1 || (!h.host && !strcmp(version, MHD_HTTP_VERSION_1_1))) {
        fail(req, 400, h.host ? "duplicate-header" : "missing-host", SL_EINVAL, "Host",
             h.host ? "more than one Host header" : "an HTTP/1.1 request must have a Host header");
        goto out;
    }
    if (memchr(req->uri, ' ', target_len)) {
        fail(req, 400, "invalid-path", SL_EINVAL, "path",
             "the request target holds a space at byte %zu (send it as %%20)",
             (size_t)((char *)memchr(req->uri, ' ', target_len) - req->uri));
        goto out;
    }

    if (api__path_parse(req->uri, req->path_len, &req->path, &e) != SL_OK) {
        api__request_fail(req, 400, "invalid-path", &e);
        goto out;
    }
    if (api__query_parse(query, strlen(query), &req->query, &e) != SL_OK) {
        api__request_fail(req, 400, "invalid-query", &e);
        goto out;
    }
    api__match_result mr = api__router_match(&srv->router, req->method, &req->path, &req->match);
    if (mr == API__MATCH_NO_PATH) {
        no_route(srv, req);
        goto out;
    }
    if (mr == API__MATCH_NO_METHOD) {
        int known = 0;
        static const char *const methods[] = {"GET",    "HEAD",  "POST",   "PUT",
                                              "DELETE", "PATCH", "OPTIONS"};
        for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
            known |= !strcmp(methods[i], req->method);
        if (known)
            fail(req, 405, "method-not-allowed", SL_EINVAL, "method",
                 "%.16s is not allowed here; allowed: %s", req->method, req->match.allow);
        else
            fail(req, 501, "unknown-method", SL_EUNSUPPORTED, "method",
                 "method \"%.16s\" is not implemented", req->method);
        goto out;
    }
    const api_route *r = req->match.route->route;
    req->metric_route = req->match.index;

    if (!(r->roles & API_PUBLIC)) {
        const char *authz =
            MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        const union MHD_ConnectionInfo *peer =
            MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        int retry_s = 0;
        sl_status rc = api__authenticate(srv->keys, srv->st, authz, peer ? peer->client_addr : NULL,
                                         &req->auth, &retry_s, &e);
        if (rc == SL_EAUTH && retry_s > 0) {
            req->retry_after_s = retry_s;
            api__request_fail(req, 429, "too-many-failed-keys", &e);
            goto out;
        }
        if (rc == SL_EAUTH) {
            req->www_authenticate = authz ? 2 : 1;
            api__request_fail(req, 401, authz ? "invalid-key" : "missing-key", &e);
            goto out;
        }
        if (rc != SL_OK) {
            if (api__is_store_error(rc))
                api__metrics_store_error(srv->metrics, rc);
            api__request_fail(req, sl_status_http(rc), NULL, &e);
            goto out;
        }
        req->authed = 1;
        if (!(r->kinds & kind_bit(req->auth.tenant_kind))) {
            no_route(srv, req); /* the route does not exist for this kind of tenant */
            goto out;
        }
        if (req->auth.role != API_ROLE_ADMIN && !(r->roles & req->auth.role)) {
            fail(req, 403, "role-forbidden", SL_EFORBIDDEN, "role", "a %s key may not %s %s",
                 api_role_name(req->auth.role), r->method, r->pattern);
            goto out;
        }
    }
    for (size_t i = 0; i < req->match.nparams; i++) {
        if (schema_component_check(req->match.names[i], req->match.values[i], &e) != SL_OK) {
            api__request_fail(req, 400, "invalid-path-parameter", &e);
            goto out;
        }
    }
    if (api__query_check(req->match.route, &req->query, &e) != SL_OK) {
        api__request_fail(req, 400, "invalid-query", &e);
        goto out;
    }
    req->body_limit = (uint64_t)effective_limit(srv, r);
    if (req->has_body && r->body == API_BODY_NONE) {
        fail(req, 413, "body-too-large", SL_ETOOLARGE, "body", "%s %s takes no request body",
             r->method, r->pattern);
        goto out;
    }
    if (declared > req->body_limit) {
        fail(req, 413, "body-too-large", SL_ETOOLARGE, "body",
             "the body is %llu bytes; %s %s takes at most %llu", (unsigned long long)declared,
             r->method, r->pattern, (unsigned long long)req->body_limit);
        goto out;
    }
    if (r->body == API_BODY_BUFFERED && declared > 0) {
        req->body = malloc(declared + 1);
        if (!req->body) {
            fail(req, 503, "busy", SL_ENOMEM, NULL, "out of memory for a %llu-byte body",
                 (unsigned long long)declared);
            goto out;
        }
        req->body_cap = declared + 1;
    }
    if (r->on_head) {
        sl_status rc = r->on_head(req, &e);
        if (rc != SL_OK)
            route_failed(srv, req, rc, &e);
    }
out:
    return;
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
        fail(req, 413, "body-too-large", SL_ETOOLARGE, "body",
             "the body passed %llu bytes, the most %s %s takes",
             (unsigned long long)req->body_limit, r->method, r->pattern);
        req->draining = 1;
        goto out;
    }
    if (r->body == API_BODY_BUFFERED) {
        if (!buffer_append(req, data, n)) {
            fail(req, 503, "busy", SL_ENOMEM, NULL, "out of memory buffering the body");
            req->draining = 1;
        }
    } else {
        sl_error e;
        sl_error_clear(&e);
        sl_status rc = r->on_chunk(req, data, n, &e);
        if (rc != SL_OK) {
            route_failed(srv, req, rc, &e);
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
            route_failed(srv, req, rc, &e);
    }
}

/* A job thread: the handler, then the connection back to libmicrohttpd,
 * which calls on_access again to queue the answer.  req is not touched after
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
static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
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
        check_head(srv, req, url, version);
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

/* libmicrohttpd's own messages, at most 20 a second (a flood of refused
 * connections must not flood stderr). */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    api_server *srv = cls;
    int64_t sec = mono_ms() / 1000;
    if (atomic_exchange(&srv->log_second, sec) != sec)
        atomic_store(&srv->log_count, 0);
    if (atomic_fetch_add(&srv->log_count, 1) < 20) {
        char line[512];
        vsnprintf(line, sizeof line, fmt, ap);
        line[strcspn(line, "\n")] = '\0';
        fprintf(stderr, "sightline serve: http: %s\n", line);
    }
}

/* ---------------------------------------------------------------------------
 * Start and stop.
 * ------------------------------------------------------------------------- */

/* Reads a PEM file whole (bounded) for libmicrohttpd's in-memory TLS options. */
static sl_status read_pem(const char *path, const char *what, char **out, sl_error *err)
{
    sl_status rc = SL_OK;
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0;
    if (!f) {
        rc = sl_error_set_at(err, SL_EINVAL, what, -1, "cannot open %s %s: %s", what, path,
                             strerror(errno));
        goto out;
    }
    buf = malloc(TLS_FILE_MAX + 1);
    if (!buf) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory reading %s", path);
        goto out;
    }
    n = fread(buf, 1, TLS_FILE_MAX + 1, f);
    if (ferror(f) || n == 0 || n > TLS_FILE_MAX) {
        rc = sl_error_set_at(err, SL_EINVAL, what, -1,
                             "%s %s is empty, unreadable or over %d "
                             "bytes",
                             what, path, TLS_FILE_MAX);
        goto out;
    }
    buf[n] = '\0';
    *out = buf;
    buf = NULL;
out:
    if (f)
        fclose(f);
    free(buf);
    return rc;
}

/* Resolves "HOST:PORT" or "[V6]:PORT" into addr. */
static sl_status parse_listen(const char *listen, struct sockaddr_storage *addr, socklen_t *len,
                              char host_out[256], sl_error *err)
{
    sl_status rc = SL_OK;
    char host[256];
    const char *port;
    struct addrinfo hints, *res = NULL;
    const char *colon = strrchr(listen, ':');
    if (!colon || !colon[1] || (size_t)(colon - listen) >= sizeof host) {
        rc = sl_error_set_at(err, SL_EINVAL, "listen", -1, "--listen \"%.64s\" is not HOST:PORT",
                             listen);
        goto out;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    port = colon + 1;
    if (host[0] == '[') { /* [::1]:8080 */
        size_t hl = strlen(host);
        if (hl < 3 || host[hl - 1] != ']') {
            rc = sl_error_set_at(err, SL_EINVAL, "listen", -1,
                                 "--listen \"%.64s\": unbalanced [ ] around the address", listen);
            goto out;
        }
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (gai != 0 || !res) {
        rc = sl_error_set_at(err, SL_EINVAL, "listen", -1, "--listen \"%.64s\": %s", listen,
                             gai_strerror(gai));
        goto out;
    }
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    snprintf(host_out, 256, "%s", host[0] ? host : "0.0.0.0");
out:
    if (res)
        freeaddrinfo(res);
    return rc;
}

/* The metrics key of "@FILE": its first line, into key (cap bytes). */
static sl_status read_metrics_key(const char *path, char *key, size_t cap, sl_error *err)
{
    sl_status rc = SL_OK;
    char line[512];
    FILE *f = fopen(path, "rb");
    if (!f) {
        rc = sl_error_set_at(err, SL_EINVAL, "metrics-key", -1,
                             "cannot open metrics key file %s: %s", path, strerror(errno));
        goto out;
    }
    if (!fgets(line, sizeof line, f))
        line[0] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    if (strlen(line) >= cap) {
        rc = sl_error_set_at(err, SL_EINVAL, "metrics-key", -1,
                             "the metrics key in %s is longer than %zu characters", path, cap - 1);
        goto out;
    }
    memcpy(key, line, strlen(line) + 1);
out:
    gnutls_memset(line, 0, sizeof line);
    if (f)
        fclose(f);
    return rc;
}

/* What the table's bounds cannot say alone: the connection buffer holds a
 * head at max-header-bytes; GnuTLS takes the priority string (checked even
 * without TLS, so a typo shows before TLS is turned on); the metrics key is
 * read (from its file) and long enough to resist guessing.  The key is a
 * secret: no message quotes it. */
static sl_status check_settings(api_server *srv, sl_error *err)
{
    sl_status rc = SL_OK;
    api_config *cfg = &srv->cfg;
    gnutls_priority_t prio = NULL;
    const char *where = NULL;
    if (cfg->connection_memory < cfg->max_header_bytes + 4096) {
        rc = sl_error_set_at(err, SL_EINVAL, "connection-memory", -1,
                             "--connection-memory %lld is too small for --max-header-bytes %lld: "
                             "it needs at least %lld (the head plus 4 KiB for the answer)",
                             (long long)cfg->connection_memory, (long long)cfg->max_header_bytes,
                             (long long)cfg->max_header_bytes + 4096);
        goto out;
    }
    int g = gnutls_priority_init(&prio, cfg->tls_priorities, &where);
    if (g < 0) {
        size_t at =
            where && where >= cfg->tls_priorities ? (size_t)(where - cfg->tls_priorities) : 0;
        rc = sl_error_set_at(err, SL_EINVAL, "tls-priorities", (int64_t)at,
                             "--tls-priorities: GnuTLS refuses the priority string at byte %zu "
                             "(\"%.40s\"): %s",
                             at, cfg->tls_priorities + at, gnutls_strerror(g));
        goto out;
    }
    if (cfg->metrics_key[0] == '@') {
        char path[sizeof cfg->metrics_key];
        memcpy(path, cfg->metrics_key + 1, sizeof path - 1);
        path[sizeof path - 1] = '\0';
        if ((rc = read_metrics_key(path, cfg->metrics_key, sizeof cfg->metrics_key, err)) != SL_OK)
            goto out;
        if (!cfg->metrics_key[0]) {
            rc = sl_error_set_at(err, SL_EINVAL, "metrics-key", -1,
                                 "the metrics key file %s is empty", path);
            goto out;
        }
    }
    size_t klen = strlen(cfg->metrics_key);
    if (klen > 0 && (klen < 16 ||
                     strspn(cfg->metrics_key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                              "0123456789-._~+/=") != klen)) {
        rc = sl_error_set_at(err, SL_EINVAL, "metrics-key", -1,
                             "the metrics key must be 16 to %zu characters of letters, digits and "
                             "-._~+/= (a bearer token)",
                             sizeof cfg->metrics_key - 1);
        goto out;
    }
out:
    if (prio)
        gnutls_priority_deinit(prio);
    return rc;
}

static sl_status start_daemon(api_server *srv, sl_error *err)
{
    sl_status rc = SL_OK;
    struct sockaddr_storage addr;
    socklen_t addrlen = 0;
    char host[256];
    struct MHD_OptionItem opts[24];
    size_t n = 0;
    unsigned threads = (unsigned)srv->cfg.threads;
    /* Suspend/resume: API_RUN_JOB handlers run off the libmicrohttpd threads. */
    unsigned flags =
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;

    if ((rc = parse_listen(srv->cfg.listen, &addr, &addrlen, host, err)) != SL_OK)
        goto out;
    if (addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (threads == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cores > 0 ? (unsigned)cores : 1;
    }
#define OPT(o, v, p) opts[n++] = (struct MHD_OptionItem){o, (intptr_t)(v), p}
    OPT(MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, srv);
    OPT(MHD_OPTION_SOCK_ADDR, 0, &addr);
    OPT(MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_uri, srv);
    OPT(MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)no_unescape, srv);
    OPT(MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, srv);
    OPT(MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, srv);
    OPT(MHD_OPTION_CONNECTION_LIMIT, srv->cfg.max_connections, NULL);
    /* Refused at accept (closed without an answer): libmicrohttpd counts per
     * address under its own lock. */
    OPT(MHD_OPTION_PER_IP_CONNECTION_LIMIT, srv->cfg.max_connections_per_ip, NULL);
    OPT(MHD_OPTION_CONNECTION_TIMEOUT, srv->cfg.idle_timeout_s, NULL);
    /* The connection's pool holds the request head (read in place), the
     * answer's head and the body's read buffer.  libmicrohttpd zeroes all of
     * it after each request, so an idle keep-alive connection keeps the whole
     * pool resident: this, not the request, is what an idle connection costs
     * (docs/security.md).  A head at max-header-bytes fits (checked at start);
     * one a little over it still fits and gets check_head()'s 431. */
    OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)srv->cfg.connection_memory, NULL);
    /* Lax: a missing Host and a space in the target are refused by
     * check_head() with a problem answer, not by libmicrohttpd's HTML. */
    OPT(MHD_OPTION_STRICT_FOR_CLIENT, 0, NULL);
    if (threads > 1)
        OPT(MHD_OPTION_THREAD_POOL_SIZE, threads, NULL);
    if (srv->cfg.tls_cert[0]) {
        if ((rc = read_pem(srv->cfg.tls_cert, "tls-cert", &srv->tls_cert_pem, err)) != SL_OK ||
            (rc = read_pem(srv->cfg.tls_key, "tls-key", &srv->tls_key_pem, err)) != SL_OK)
            goto out;
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            rc = sl_error_set(err, SL_EUNSUPPORTED, "this libmicrohttpd has no TLS support");
            goto out;
        }
        flags |= MHD_USE_TLS;
        OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, srv->tls_cert_pem);
        OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, srv->tls_key_pem);
        /* Checked by check_settings() first, so a bad string is named there. */
        OPT(MHD_OPTION_HTTPS_PRIORITIES, 0, srv->cfg.tls_priorities);
        if (srv->cfg.hsts_max_age_s > 0)
            snprintf(srv->hsts, sizeof srv->hsts, "max-age=%lld",
                     (long long)srv->cfg.hsts_max_age_s);
    }
    OPT(MHD_OPTION_END, 0, NULL);
#undef OPT
    srv->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_access, srv, MHD_OPTION_ARRAY, opts,
                                MHD_OPTION_END);
    if (!srv->mhd) {
        rc = sl_error_set_at(err, SL_EIO, "listen", -1,
                             "cannot serve on %s%s (address in use, not permitted, or a bad "
                             "TLS certificate/key; see the lines above)",
                             srv->cfg.listen, srv->cfg.tls_cert[0] ? " with TLS" : "");
        goto out;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di ? di->port : 0;
    snprintf(srv->url, sizeof srv->url, "%s://%s%s%s:%u", srv->cfg.tls_cert[0] ? "https" : "http",
             strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", srv->port);
out:
    return rc;
}

sl_status api_server_start(const api_config *cfg, store *st, api_server **out, sl_error *err)
{
    return api__server_start_areas(cfg, st, api__areas, out, err);
}

sl_status api__server_start_areas(const api_config *cfg, store *st, const api_area *const *areas,
                                  api_server **out, sl_error *err)
{
    sl_status rc = SL_OK;
    api_server *srv = NULL;
    const char **labels = NULL;
    unsigned char rnd[4];
    if (!st || !cfg) {
        rc = sl_error_set(err, SL_EINVAL, "api_server_start needs a configuration and a store");
        goto out;
    }
    if (!cfg->tls_cert[0] != !cfg->tls_key[0]) {
        rc = sl_error_set_at(err, SL_EINVAL, cfg->tls_cert[0] ? "tls-key" : "tls-cert", -1,
                             "--tls-cert and --tls-key go together");
        goto out;
    }
    srv = calloc(1, sizeof *srv);
    if (!srv) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory starting the server");
        goto out;
    }
    srv->cfg = *cfg;
    srv->st = st;
    srv->conns.next = srv->conns.prev = &srv->conns;
    pthread_mutex_init(&srv->conns_lock, NULL);
    pthread_mutex_init(&srv->tick_lock, NULL);
    pthread_cond_init(&srv->tick_cond, NULL);
    pthread_mutex_init(&srv->writers_lock, NULL);
    if (gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof rnd) < 0) {
        rc = sl_error_set(err, SL_EINTERNAL, "the random source failed (GnuTLS)");
        goto out;
    }
    snprintf(srv->id_prefix, sizeof srv->id_prefix, "%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
             rnd[3]);
    if ((rc = api__router_build(&srv->router, areas, err)) != SL_OK ||
        (rc = api__cursor_key_load(st, &srv->cursor_key, err)) != SL_OK)
        goto out;
    labels = calloc(srv->router.n + 1, sizeof *labels);
    if (!labels) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory starting the server");
        goto out;
    }
    for (size_t i = 0; i < srv->router.n; i++)
        labels[i] = srv->router.routes[i].label;
    if ((rc = api__metrics_new(labels, srv->router.n, &srv->metrics, err)) != SL_OK ||
        (rc = api__key_cache_new(cfg, &srv->keys, err)) != SL_OK ||
        (rc = api__uploads_new(cfg, &srv->uploads, err)) != SL_OK ||
        (rc = ingest_catalog_cache_new(&srv->catalogs, err)) != SL_OK ||
        (rc = api__jobs_new(cfg->job_threads > 0 ? (size_t)cfg->job_threads : 1,
                            cfg->job_queue > 0 ? (size_t)cfg->job_queue : 0, &srv->jobs, err)) !=
            SL_OK)
        goto out;
    if (pthread_create(&srv->watchdog, NULL, watchdog_main, srv) != 0) {
        rc = sl_error_set(err, SL_EINTERNAL, "cannot start the connection watchdog thread");
        goto out;
    }
    srv->watchdog_started = 1;
    if ((rc = check_settings(srv, err)) != SL_OK || (rc = start_daemon(srv, err)) != SL_OK)
        goto out;
    *out = srv;
    srv = NULL;
out:
    free(labels);
    if (srv)
        api_server_free(&srv);
    return rc;
}

sl_status api_server_add_metrics(api_server *srv, api_metrics_writer fn, void *ctx, sl_error *err)
{
    sl_status rc = SL_OK;
    pthread_mutex_lock(&srv->writers_lock);
    if (srv->nwriters == WRITERS_MAX) {
        rc = sl_error_set(err, SL_ETOOLARGE, "at most %d metrics writers", WRITERS_MAX);
    } else {
        srv->writers[srv->nwriters].fn = fn;
        srv->writers[srv->nwriters].ctx = ctx;
        srv->nwriters++;
    }
    pthread_mutex_unlock(&srv->writers_lock);
    return rc;
}

/* The job pool and the catalog cache, in Prometheus text format. */
static void jobs_metrics(api_server *srv, FILE *out)
{
    api__jobs_stats js;
    api__jobs_stats_get(srv->jobs, &js);
    fprintf(out,
            "# HELP sightline_jobs_running Long requests (ingest jobs) running on the job pool.\n"
            "# TYPE sightline_jobs_running gauge\n"
            "sightline_jobs_running %llu\n"
            "# HELP sightline_jobs_queued Long requests waiting for a job thread.\n"
            "# TYPE sightline_jobs_queued gauge\n"
            "sightline_jobs_queued %llu\n"
            "# HELP sightline_jobs_done_total Long requests the job pool has run.\n"
            "# TYPE sightline_jobs_done_total counter\n"
            "sightline_jobs_done_total %llu\n"
            "# HELP sightline_jobs_refused_total Long requests answered 503 because the job pool "
            "was full or stopping.\n"
            "# TYPE sightline_jobs_refused_total counter\n"
            "sightline_jobs_refused_total %llu\n"
            "# HELP sightline_catalog_compiles_total Tool catalogs compiled (once per tenant and "
            "catalog version).\n"
            "# TYPE sightline_catalog_compiles_total counter\n"
            "sightline_catalog_compiles_total %llu\n",
            (unsigned long long)js.running, (unsigned long long)js.queued,
            (unsigned long long)js.done, (unsigned long long)js.refused,
            (unsigned long long)ingest_catalog_cache_compiles(srv->catalogs));
}

sl_status api__server_metrics(api_server *srv, FILE *out, sl_error *err)
{
    sl_status rc = api__metrics_render(srv->metrics, out, err);
    if (rc == SL_OK) {
        jobs_metrics(srv, out);
        api__key_cache_metrics(srv->keys, out);
        api__uploads_metrics(srv->uploads, out);
    }
    pthread_mutex_lock(&srv->writers_lock);
    for (size_t i = 0; i < srv->nwriters && rc == SL_OK; i++)
        srv->writers[i].fn(srv->writers[i].ctx, out);
    pthread_mutex_unlock(&srv->writers_lock);
    return rc;
}

ingest_catalog_cache *api_catalogs(const api_request *req)
{
    return req->srv->catalogs;
}

api__key_cache *api__server_keys(api_server *srv)
{
    return srv->keys;
}

api__uploads *api__server_uploads(api_server *srv)
{
    return srv->uploads;
}

struct ingest_catalog_cache *api_server_catalogs(api_server *srv)
{
    return srv->catalogs;
}

uint16_t api_server_port(const api_server *srv)
{
    return srv->port;
}

const char *api_server_url(const api_server *srv)
{
    return srv->url;
}

/* Waits until no request is in flight or the monotonic clock passes until_ms. */
static void wait_in_flight(api_server *srv, int64_t until_ms)
{
    while (atomic_load(&srv->in_flight) > 0 && mono_ms() < until_ms) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

void api_server_stop(api_server *srv)
{
    if (!srv || srv->stopped)
        goto out;
    srv->stopped = 1;
    atomic_store(&srv->stopping, 1);
    if (srv->mhd) {
        /* Stop accepting: the listening socket is ours to close after quiesce. */
        MHD_socket lsock = MHD_quiesce_daemon(srv->mhd);
        if (lsock != MHD_INVALID_SOCKET)
            close(lsock);
        wait_in_flight(srv, mono_ms() + srv->cfg.shutdown_grace_s * 1000);
        /* Jobs still running are waited for whatever the grace (a job may be
         * committing: cutting it short could leave its client without the
         * answer to a write that happened); queued ones are answered 503.
         * Every suspended connection is resumed by then, as
         * MHD_stop_daemon requires. */
        api__jobs_stop(srv->jobs);
        wait_in_flight(srv, mono_ms() + JOB_ANSWER_WAIT_MS);
        MHD_stop_daemon(srv->mhd); /* closes idle connections, joins the pool */
        srv->mhd = NULL;
    }
    api__jobs_stop(srv->jobs);
    if (srv->watchdog_started) {
        pthread_mutex_lock(&srv->tick_lock);
        srv->watchdog_quit = 1;
        pthread_cond_signal(&srv->tick_cond);
        pthread_mutex_unlock(&srv->tick_lock);
        pthread_join(srv->watchdog, NULL);
        srv->watchdog_started = 0;
    }
    if (srv->cfg.access_log)
        fflush(srv->cfg.access_log);
out:
    return;
}

void api_server_free(api_server **srv)
{
    api_server *s = srv ? *srv : NULL;
    if (!s)
        goto out;
    api_server_stop(s);
    api__router_free(&s->router);
    api__metrics_free(&s->metrics);
    api__key_cache_free(&s->keys);
    api__uploads_free(&s->uploads);
    api__jobs_free(&s->jobs);
    ingest_catalog_cache_free(&s->catalogs);
    if (s->tls_key_pem)
        gnutls_memset(s->tls_key_pem, 0, strlen(s->tls_key_pem));
    gnutls_memset(&s->cursor_key, 0, sizeof s->cursor_key);
    free(s->tls_key_pem);
    free(s->tls_cert_pem);
    gnutls_memset(s->cfg.metrics_key, 0, sizeof s->cfg.metrics_key);
    pthread_mutex_destroy(&s->conns_lock);
    pthread_mutex_destroy(&s->tick_lock);
    pthread_cond_destroy(&s->tick_cond);
    pthread_mutex_destroy(&s->writers_lock);
    free(s);
    *srv = NULL;
out:
    return;
}
