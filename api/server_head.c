/* server_head.c -- what is decided from a request head before any body byte
 * is read: the head's own checks (size, field names, body length, Host, NUL
 * bytes), routing, the key, the role, the body limit and the route's hook. */
#include "api_int.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

static int64_t effective_limit(const api_server *srv, const api_route *r)
{
    int64_t cap = r->body == API_BODY_STREAMED   ? srv->cfg.max_upload_body
                  : r->body == API_BODY_BUFFERED ? srv->cfg.max_json_body
                                                 : 0;
    return r->body_max > 0 && r->body_max < cap ? r->body_max : cap;
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
 * (method, url and version as libmicrohttpd gave them to api__on_access;
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
        api__request_failf(
            req, 400, "nul-byte", SL_EINVAL, "request-line",
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
        api__request_failf(
            req, 400, "folded-header", SL_EINVAL, "headers",
            "a header field is folded over two lines (obsolete line folding, RFC 9112 section "
            "5.2): send each field on one line");
    } else if (s.bad && s.bad_name) {
        api__request_failf(
            req, 400, "nul-byte", SL_EINVAL, s.bad_name,
            "a NUL byte in header %.40s (or in the line after it); a request head may not hold "
            "NUL anywhere",
            s.bad_name);
        req->problem.offset = (int64_t)(s.bad - method);
    } else if (s.bad) {
        api__request_failf(
            req, 400, "nul-byte", SL_EINVAL, "request-line",
            "the request line holds a NUL byte after its HTTP version; a request head may not "
            "hold NUL anywhere");
    }
out:
    return;
}

/* ---------------------------------------------------------------------------
 * Routing, the key, the role and the body limit.
 * ------------------------------------------------------------------------- */

/* The answer to a path no route serves (also given to a key whose tenant's
 * kind the route does not serve: the same bytes, so nothing tells them
 * apart).  Counted as unmatched. */
static void no_route(api_server *srv, api_request *req)
{
    req->metric_route = srv->router.n;
    api__request_failf(req, 404, "no-route", SL_ENOTFOUND, NULL, "no resource at this path");
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
void api__check_head(api_server *srv, api_request *req, const char *url, const char *version)
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
        api__request_failf(req, 431, "headers-too-large", SL_ETOOLARGE, "headers",
                           "the request line and headers take %zu bytes; the limit is %lld",
                           h.bytes + target_len, (long long)srv->cfg.max_header_bytes);
        goto out;
    }
    if (h.bad_name) {
        api__request_failf(
            req, 400, "malformed-header", SL_EINVAL, "headers",
            "header name \"%.40s\" is not a token (letters, digits, !#$%%&'*+-.^_`|~)", h.bad_name);
        goto out;
    }
    if (h.content_length > 1 || (h.content_length && h.transfer_encoding) ||
        h.transfer_encoding > 1) {
        api__request_failf(
            req, 400, "ambiguous-body-length", SL_EINVAL, "Content-Length",
            "the body length is ambiguous: %d Content-Length and %d Transfer-Encoding headers",
            h.content_length, h.transfer_encoding);
        goto out;
    }
    if (te && strcasecmp(te, "chunked") != 0) {
        api__request_failf(
            req, 501, "unsupported-transfer-encoding", SL_EUNSUPPORTED, "Transfer-Encoding",
            "Transfer-Encoding \"%.40s\" is not supported; send chunked or a Content-Length", te);
        goto out;
    }
    if (h.authorization > 1) {
        api__request_failf(req, 400, "duplicate-header", SL_EINVAL, "Authorization",
                           "more than one Authorization header");
        goto out;
    }
    /* libmicrohttpd is run lax (MHD_OPTION_STRICT_FOR_CLIENT 0) so that these
     * two are answered here, as problems, instead of by its own HTML page. */
    if (h.host > 1 || (!h.host && !strcmp(version, MHD_HTTP_VERSION_1_1))) {
        api__request_failf(
            req, 400, h.host ? "duplicate-header" : "missing-host", SL_EINVAL, "Host",
            h.host ? "more than one Host header" : "an HTTP/1.1 request must have a Host header");
        goto out;
    }
    if (memchr(req->uri, ' ', target_len)) {
        api__request_failf(req, 400, "invalid-path", SL_EINVAL, "path",
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
            api__request_failf(req, 405, "method-not-allowed", SL_EINVAL, "method",
                               "%.16s is not allowed here; allowed: %s", req->method,
                               req->match.allow);
        else
            api__request_failf(req, 501, "unknown-method", SL_EUNSUPPORTED, "method",
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
            api__request_failf(req, 403, "role-forbidden", SL_EFORBIDDEN, "role",
                               "a %s key may not %s %s", api_role_name(req->auth.role), r->method,
                               r->pattern);
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
        api__request_failf(req, 413, "body-too-large", SL_ETOOLARGE, "body",
                           "%s %s takes no request body", r->method, r->pattern);
        goto out;
    }
    if (declared > req->body_limit) {
        api__request_failf(req, 413, "body-too-large", SL_ETOOLARGE, "body",
                           "the body is %llu bytes; %s %s takes at most %llu",
                           (unsigned long long)declared, r->method, r->pattern,
                           (unsigned long long)req->body_limit);
        goto out;
    }
    if (r->body == API_BODY_BUFFERED && declared > 0) {
        req->body = malloc(declared + 1);
        if (!req->body) {
            api__request_failf(req, 503, "busy", SL_ENOMEM, NULL,
                               "out of memory for a %llu-byte body", (unsigned long long)declared);
            goto out;
        }
        req->body_cap = declared + 1;
    }
    if (r->on_head) {
        sl_status rc = r->on_head(req, &e);
        if (rc != SL_OK)
            api__route_failed(srv, req, rc, &e);
    }
out:
    return;
}
