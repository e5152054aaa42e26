/* router.c -- method + path pattern -> route: patterns compiled once into
 * segments; request paths split, then percent-decoded per segment (so "%2F"
 * never separates) and refused with control bytes, bad UTF-8 or dot segments;
 * query strings parsed, and checked against the parameters a route declares. */
#include "api_int.h"

#include <stdlib.h>
#include <string.h>

static const char *const known_methods[] = {"GET",    "HEAD",    "POST",  "PUT",
                                            "DELETE", "OPTIONS", "PATCH", NULL};

static int method_known(const char *m)
{
    int known = 0;
    for (size_t i = 0; known_methods[i] && !known; i++)
        known = !strcmp(known_methods[i], m);
    return known;
}

void api__router_free(api__router *rt)
{
    for (size_t i = 0; rt->routes && i < rt->n; i++) {
        for (size_t s = 0; s < rt->routes[i].nseg; s++) {
            free(rt->routes[i].seg[s]);
            free(rt->routes[i].param[s]);
        }
        for (size_t q = 0; q < rt->routes[i].nquery; q++)
            free(rt->routes[i].query[q]);
    }
    free(rt->routes);
    rt->routes = NULL;
    rt->n = 0;
}

/* Splits the route's query declaration into cr->query: names of [a-z0-9_],
 * each once, at most API__QUERY_MAX. */
static sl_status compile_query(const api_route *r, const char *area, api__croute *cr, sl_error *err)
{
    sl_status rc = SL_OK;
    const char *p = r->query ? r->query : "";
    while (*p && rc == SL_OK) {
        size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_");
        char *name = n ? strndup(p, n) : NULL;
        if (n && !name) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory compiling routes");
        } else if (!n || (p[n] && (p[n] != ' ' || !p[n + 1])) || cr->nquery == API__QUERY_MAX ||
                   api__route_takes(cr, name)) {
            rc = sl_error_set(err, SL_EINTERNAL,
                              "route %s (area %s): query parameters are space-separated names of "
                              "a-z, 0-9 and _, each once, at most %d: \"%.80s\"",
                              cr->label, area, API__QUERY_MAX, r->query);
            free(name);
        } else {
            cr->query[cr->nquery++] = name;
            p += n + (p[n] == ' ');
        }
    }
    return rc;
}

/* Splits one pattern into cr; names the route in every refusal. */
static sl_status compile_route(const api_route *r, const char *area, api__croute *cr, sl_error *err)
{
    sl_status rc = SL_OK;
    size_t nparams = 0;
    const char *p = r->pattern;
    memset(cr, 0, sizeof *cr);
    cr->route = r;
    cr->area = area;
    if (!r->method || !method_known(r->method) || !strcmp(r->method, "HEAD") || !p || p[0] != '/' ||
        !r->handler) {
        rc = sl_error_set(err, SL_EINTERNAL,
                          "route %s %s (area %s): needs a method among GET POST PUT DELETE "
                          "PATCH OPTIONS, a pattern starting with '/' and a handler",
                          r->method ? r->method : "?", p ? p : "?", area);
        goto out;
    }
    snprintf(cr->label, sizeof cr->label, "%s %s", r->method, p);
    if (!(r->roles & (API_PUBLIC | API_ANY_ROLE)) || (r->roles & ~(API_PUBLIC | API_ANY_ROLE))) {
        rc = sl_error_set(err, SL_EINTERNAL,
                          "route %s (area %s): roles must be API_PUBLIC or "
                          "a mask of api_role values",
                          cr->label, area);
        goto out;
    }
    /* A public route has no key and so no kind: it serves both. */
    if (!r->kinds || (r->kinds & ~API_KIND_ANY) ||
        ((r->roles & API_PUBLIC) && r->kinds != API_KIND_ANY)) {
        rc = sl_error_set(err, SL_EINTERNAL,
                          "route %s (area %s): kinds must be a mask of API_KIND_HOSPITAL and "
                          "API_KIND_BRAND (API_KIND_ANY on a public route)",
                          cr->label, area);
        goto out;
    }
    if ((rc = compile_query(r, area, cr, err)) != SL_OK)
        goto out;
    if ((r->body == API_BODY_STREAMED) != (r->on_chunk != NULL) || r->body_max < 0) {
        rc = sl_error_set(err, SL_EINTERNAL,
                          "route %s (area %s): a streamed body needs "
                          "on_chunk, other policies must not set it",
                          cr->label, area);
        goto out;
    }
    if (r->run != API_RUN_INLINE && r->run != API_RUN_JOB) {
        rc = sl_error_set(err, SL_EINTERNAL,
                          "route %s (area %s): run must be API_RUN_INLINE or API_RUN_JOB",
                          cr->label, area);
        goto out;
    }
    while (*p == '/') {
        p++;
        size_t n = strcspn(p, "/");
        if (cr->nseg == API__PATH_SEG_MAX || n == 0) {
            rc = sl_error_set(err, SL_EINTERNAL,
                              "route %s (area %s): empty segment or more than %d segments",
                              cr->label, area, API__PATH_SEG_MAX);
            goto out;
        }
        if (p[0] == '{') {
            if (n < 3 || p[n - 1] != '}' || nparams == API__PARAM_MAX) {
                rc = sl_error_set(err, SL_EINTERNAL,
                                  "route %s (area %s): a parameter segment is {name}, at most "
                                  "%d of them",
                                  cr->label, area, API__PARAM_MAX);
                goto out;
            }
            cr->param[cr->nseg] = strndup(p + 1, n - 2);
            nparams++;
            if (!cr->param[cr->nseg])
                rc = sl_error_set(err, SL_ENOMEM, "out of memory compiling routes");
        } else {
            cr->seg[cr->nseg] = strndup(p, n);
            if (!cr->seg[cr->nseg])
                rc = sl_error_set(err, SL_ENOMEM, "out of memory compiling routes");
        }
        cr->nseg++;
        if (rc != SL_OK)
            goto out;
        p += n;
    }
    if (*p) {
        rc = sl_error_set(err, SL_EINTERNAL, "route %s (area %s): malformed pattern", cr->label,
                          area);
        goto out;
    }
out:
    return rc;
}

/* Two routes clash when they have the same method and their segments are
 * equal literal for literal and parameter for parameter. */
static int same_shape(const api__croute *a, const api__croute *b)
{
    int same = !strcmp(a->route->method, b->route->method) && a->nseg == b->nseg;
    for (size_t s = 0; same && s < a->nseg; s++)
        same = !a->seg[s] == !b->seg[s] && (!a->seg[s] || !strcmp(a->seg[s], b->seg[s]));
    return same;
}

sl_status api__router_build(api__router *rt, const api_area *const *areas, sl_error *err)
{
    sl_status rc = SL_OK;
    api__router built = {NULL, 0};
    size_t total = 0;
    for (size_t a = 0; areas[a]; a++)
        total += areas[a]->n;
    built.routes = calloc(total ? total : 1, sizeof *built.routes);
    if (!built.routes) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory compiling routes");
        goto out;
    }
    for (size_t a = 0; areas[a]; a++)
        for (size_t i = 0; i < areas[a]->n; i++) {
            api__croute *cr = &built.routes[built.n];
            rc = compile_route(&areas[a]->routes[i], areas[a]->name, cr, err);
            built.n++; /* counted even when half built, so free releases it */
            if (rc != SL_OK)
                goto out;
            for (size_t j = 0; j + 1 < built.n; j++)
                if (same_shape(&built.routes[j], cr)) {
                    rc = sl_error_set(err, SL_EINTERNAL,
                                      "route %s (area %s) clashes with %s (area %s)", cr->label,
                                      cr->area, built.routes[j].label, built.routes[j].area);
                    goto out;
                }
        }
    *rt = built;
    built.routes = NULL;
out:
    if (built.routes)
        api__router_free(&built);
    return rc;
}

static int hexval(char c)
{
    int v = -1;
    if (c >= '0' && c <= '9')
        v = c - '0';
    else if (c >= 'a' && c <= 'f')
        v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
        v = c - 'A' + 10;
    return v;
}

/* Percent-decodes src[0..n) into dst (plus_space: '+' means ' ', for
 * queries) and NUL-terminates it.  Returns the decoded length, or -1 with
 * *bad the offset of a malformed escape. */
static long pct_decode(const char *src, size_t n, char *dst, int plus_space, size_t *bad)
{
    long rc = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i] != '%') {
            dst[o++] = plus_space && src[i] == '+' ? ' ' : src[i];
            continue;
        }
        int hi = i + 2 < n ? hexval(src[i + 1]) : -1;
        int lo = i + 2 < n ? hexval(src[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
            *bad = i;
            rc = -1;
            goto out;
        }
        dst[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    dst[o] = '\0';
    rc = (long)o;
out:
    return rc;
}

sl_status api__path_parse(const char *raw, size_t len, api__path *out, sl_error *err)
{
    sl_status rc = SL_OK;
    api__path p;
    memset(&p, 0, sizeof p);
    if (len == 0 || raw[0] != '/') {
        rc = sl_error_set_at(err, SL_EINVAL, "path", 0, "the request target must start with '/'");
        goto out;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c < 0x20 || c == 0x7f) {
            rc = sl_error_set_at(err, SL_EINVAL, "path", (int64_t)i,
                                 "the path holds control byte 0x%02x at byte %zu", c, i);
            goto out;
        }
    }
    p.buf = malloc(len + 1);
    if (!p.buf) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory reading the path");
        goto out;
    }
    size_t at = 1, o = 0; /* raw offset, buf offset */
    while (at <= len) {
        size_t n = 0;
        while (at + n < len && raw[at + n] != '/')
            n++;
        if (p.nseg == API__PATH_SEG_MAX) {
            rc = sl_error_set_at(err, SL_EINVAL, "path", (int64_t)at,
                                 "the path has more than %d segments", API__PATH_SEG_MAX);
            goto out;
        }
        size_t bad = 0;
        long dn = pct_decode(raw + at, n, p.buf + o, 0, &bad);
        if (dn < 0) {
            rc = sl_error_set_at(err, SL_EINVAL, "path", (int64_t)(at + bad),
                                 "malformed percent-escape at byte %zu of the path", at + bad);
            goto out;
        }
        const char *seg = p.buf + o;
        sl_error tmp;
        sl_error_clear(&tmp);
        if (schema_text_check("the segment", seg, (size_t)dn, &tmp) != SL_OK) {
            rc = sl_error_set_at(err, SL_EINVAL, "path", (int64_t)at,
                                 "path segment %zu (at byte %zu): %s", p.nseg + 1, at, tmp.message);
            goto out;
        }
        if (!strcmp(seg, ".") || !strcmp(seg, "..")) {
            rc = sl_error_set_at(err, SL_EINVAL, "path", (int64_t)at,
                                 "path segment %zu (at byte %zu) is \"%s\"; dot segments are "
                                 "not allowed",
                                 p.nseg + 1, at, seg);
            goto out;
        }
        p.seg[p.nseg++] = seg;
        o += (size_t)dn + 1;
        at += n + 1;
    }
    *out = p;
    p.buf = NULL;
out:
    free(p.buf);
    return rc;
}

/* Whether cr matches path (segment count and literals). */
static int shape_matches(const api__croute *cr, const api__path *path)
{
    int match = cr->nseg == path->nseg;
    for (size_t s = 0; match && s < cr->nseg; s++)
        match = cr->seg[s] ? !strcmp(cr->seg[s], path->seg[s])
                           : path->seg[s][0] != '\0'; /* a parameter is never empty */
    return match;
}

/* <0 when a is more specific than b: a literal beats a parameter at the
 * first position where they differ. */
static int specificity_cmp(const api__croute *a, const api__croute *b)
{
    int cmp = 0;
    for (size_t s = 0; s < a->nseg && s < b->nseg && cmp == 0; s++)
        if (!a->seg[s] != !b->seg[s])
            cmp = a->seg[s] ? -1 : 1;
    return cmp;
}

static void allow_add(char allow[64], const char *m)
{
    size_t n = strlen(allow);
    if (!strstr(allow, m))
        snprintf(allow + n, 64 - n, "%s%s", n ? ", " : "", m);
}

api__match_result api__router_match(const api__router *rt, const char *method,
                                    const api__path *path, api__match *out)
{
    const api__croute *best = NULL;
    size_t best_i = 0;
    int path_seen = 0;
    memset(out, 0, sizeof *out);
    /* HEAD is answered by the GET route (libmicrohttpd sends no body). */
    const char *want = !strcmp(method, "HEAD") ? "GET" : method;
    for (size_t i = 0; i < rt->n; i++) {
        const api__croute *cr = &rt->routes[i];
        if (!shape_matches(cr, path))
            continue;
        path_seen = 1;
        allow_add(out->allow, cr->route->method);
        if (!strcmp(cr->route->method, "GET"))
            allow_add(out->allow, "HEAD");
        if (strcmp(cr->route->method, want))
            continue;
        if (!best || specificity_cmp(cr, best) < 0) {
            best = cr;
            best_i = i;
        }
    }
    api__match_result res = best        ? API__MATCH_FOUND
                            : path_seen ? API__MATCH_NO_METHOD
                                        : API__MATCH_NO_PATH;
    out->route = best;
    out->index = best_i;
    for (size_t s = 0; best && s < best->nseg; s++)
        if (!best->seg[s]) {
            out->names[out->nparams] = best->param[s];
            out->values[out->nparams] = path->seg[s];
            out->nparams++;
        }
    return res;
}

sl_status api__query_parse(const char *raw, size_t len, api__query *out, sl_error *err)
{
    sl_status rc = SL_OK;
    api__query q;
    memset(&q, 0, sizeof q);
    /* Every decoded name and value fits in len bytes plus two NULs per pair. */
    q.buf = malloc(len + 2 * API__QUERY_MAX + 2);
    if (!q.buf) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory reading the query");
        goto out;
    }
    size_t at = 0, o = 0;
    while (at < len) {
        /* memchr, not strcspn: raw[0..len) need not be NUL-terminated */
        const char *amp = memchr(raw + at, '&', len - at);
        size_t n = amp ? (size_t)(amp - (raw + at)) : len - at;
        if (n == 0) { /* "a=1&&b=2": tolerate empty pieces */
            at++;
            continue;
        }
        if (q.n == API__QUERY_MAX) {
            rc = sl_error_set_at(err, SL_EINVAL, "query", (int64_t)at,
                                 "the query has more than %d parameters", API__QUERY_MAX);
            goto out;
        }
        const char *eq = memchr(raw + at, '=', n);
        size_t nlen = eq ? (size_t)(eq - (raw + at)) : n;
        size_t bad = 0;
        char *name = q.buf + o;
        long dn = pct_decode(raw + at, nlen, name, 1, &bad);
        if (dn < 0) {
            rc = sl_error_set_at(err, SL_EINVAL, "query", (int64_t)(at + bad),
                                 "malformed percent-escape at byte %zu of the query", at + bad);
            goto out;
        }
        o += (size_t)dn + 1;
        char *value = q.buf + o;
        long dv = 0;
        if (eq) {
            dv = pct_decode(eq + 1, n - nlen - 1, value, 1, &bad);
            if (dv < 0) {
                rc = sl_error_set_at(err, SL_EINVAL, "query", (int64_t)(at + nlen + 1 + bad),
                                     "malformed percent-escape at byte %zu of the query",
                                     at + nlen + 1 + bad);
                goto out;
            }
        } else {
            value[0] = '\0';
        }
        o += (size_t)dv + 1;
        sl_error tmp;
        sl_error_clear(&tmp);
        if (schema_text_check("query parameter name", name, (size_t)dn, &tmp) != SL_OK ||
            schema_text_check("query parameter", value, (size_t)dv, &tmp) != SL_OK) {
            rc = sl_error_set_at(err, SL_EINVAL, "query", (int64_t)at,
                                 "query parameter %zu (at byte %zu): %s", q.n + 1, at, tmp.message);
            goto out;
        }
        q.name[q.n] = name;
        q.value[q.n] = value;
        q.n++;
        at += n + 1;
    }
    *out = q;
    q.buf = NULL;
out:
    free(q.buf);
    return rc;
}

int api__route_takes(const api__croute *cr, const char *name)
{
    int takes = 0;
    for (size_t i = 0; i < cr->nquery && !takes; i++)
        takes = !strcmp(cr->query[i], name);
    return takes;
}

sl_status api__query_check(const api__croute *cr, const api__query *q, sl_error *err)
{
    sl_status rc = SL_OK;
    char takes[API__QUERY_MAX * 24] = "";
    for (size_t i = 0; i < cr->nquery; i++) {
        size_t n = strlen(takes);
        snprintf(takes + n, sizeof takes - n, "%s%s", i ? ", " : "", cr->query[i]);
    }
    for (size_t i = 0; i < q->n && rc == SL_OK; i++) {
        if (!api__route_takes(cr, q->name[i])) {
            rc = sl_error_set_at(err, SL_EINVAL, q->name[i], -1,
                                 "%s takes no query parameter \"%.64s\" (it takes %s)", cr->label,
                                 q->name[i], cr->nquery ? takes : "none");
            break;
        }
        for (size_t k = 0; k < i && rc == SL_OK; k++)
            if (!strcmp(q->name[k], q->name[i]))
                rc = sl_error_set_at(err, SL_EINVAL, q->name[i], -1,
                                     "query parameter %s is given more than once; give it once",
                                     q->name[i]);
    }
    return rc;
}
