/* metrics.c -- request counters by route and status, latency histograms,
 * in-flight requests, open connections and store errors, kept in relaxed
 * atomics (no lock on the request path) and rendered as Prometheus text. */
#include "api_int.h"

#include <stdlib.h>
#include <string.h>

static const int tracked_status[] = {200, 201, 202, 204, 206, 304, 400, 401, 403,
                                     404, 405, 406, 409, 410, 411, 413, 415, 416,
                                     422, 429, 431, 500, 501, 503, 504, 507};
#define NSTATUS (sizeof tracked_status / sizeof tracked_status[0])

/* Histogram upper bounds in microseconds (rendered in seconds). */
static const int64_t bucket_us[] = {100,     250,     500,     1000,    2500,   5000,
                                    10000,   25000,   50000,   100000,  250000, 500000,
                                    1000000, 2500000, 5000000, 10000000};
#define NBUCKETS      (sizeof bucket_us / sizeof bucket_us[0])
#define NSTORE_STATUS 64

typedef struct route_metrics {
    char method[16];
    char route[160];
    _Atomic uint64_t by_status[NSTATUS + 1]; /* last: any other status */
    _Atomic uint64_t buckets[NBUCKETS + 1];  /* per bucket, not cumulative; last: +Inf */
    _Atomic uint64_t sum_us;
} route_metrics;

struct api__metrics {
    size_t n; /* routes; rows[n] counts unmatched requests */
    route_metrics *rows;
    _Atomic int64_t in_flight;
    _Atomic int64_t connections;
    _Atomic uint64_t store_errors[NSTORE_STATUS];
};

sl_status api__metrics_new(const char *const *labels, size_t nlabels, api__metrics **out,
                           sl_error *err)
{
    sl_status rc = SL_OK;
    api__metrics *m = calloc(1, sizeof *m);
    if (!m || !(m->rows = calloc(nlabels + 1, sizeof *m->rows))) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory for metrics");
        goto out;
    }
    m->n = nlabels;
    for (size_t i = 0; i <= nlabels; i++) {
        const char *label = i < nlabels ? labels[i] : "- (unmatched)";
        size_t sp = strcspn(label, " ");
        snprintf(m->rows[i].method, sizeof m->rows[i].method, "%.*s", (int)sp, label);
        snprintf(m->rows[i].route, sizeof m->rows[i].route, "%s", label[sp] ? label + sp + 1 : "");
    }
    *out = m;
    m = NULL;
out:
    if (m)
        free(m->rows);
    free(m);
    return rc;
}

void api__metrics_free(api__metrics **m)
{
    if (m && *m) {
        free((*m)->rows);
        free(*m);
        *m = NULL;
    }
}

void api__metrics_observe(api__metrics *m, size_t route, int http_status, int64_t micros)
{
    route_metrics *r = &m->rows[route <= m->n ? route : m->n];
    size_t s = 0, b = 0;
    while (s < NSTATUS && tracked_status[s] != http_status)
        s++;
    while (b < NBUCKETS && micros > bucket_us[b])
        b++;
    atomic_fetch_add_explicit(&r->by_status[s], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->sum_us, (uint64_t)(micros > 0 ? micros : 0),
                              memory_order_relaxed);
}

void api__metrics_in_flight(api__metrics *m, int delta)
{
    atomic_fetch_add_explicit(&m->in_flight, delta, memory_order_relaxed);
}

void api__metrics_connections(api__metrics *m, int delta)
{
    atomic_fetch_add_explicit(&m->connections, delta, memory_order_relaxed);
}

int api__is_store_error(sl_status s)
{
    return s == SL_EIO || s == SL_EBUSY || s == SL_ECORRUPT || s == SL_ETIMEOUT ||
           s == SL_EFEEDGONE;
}

void api__metrics_store_error(api__metrics *m, sl_status s)
{
    if ((unsigned)s < NSTORE_STATUS)
        atomic_fetch_add_explicit(&m->store_errors[s], 1, memory_order_relaxed);
}

sl_status api__metrics_render(api__metrics *m, FILE *out, sl_error *err)
{
    sl_status rc = SL_OK;
    fputs("# HELP sightline_http_requests_total HTTP requests answered, by route and status.\n"
          "# TYPE sightline_http_requests_total counter\n",
          out);
    for (size_t i = 0; i <= m->n; i++) {
        route_metrics *r = &m->rows[i];
        for (size_t s = 0; s <= NSTATUS; s++) {
            uint64_t v = atomic_load_explicit(&r->by_status[s], memory_order_relaxed);
            if (!v)
                continue;
            char status[8];
            snprintf(status, sizeof status, "%d", s < NSTATUS ? tracked_status[s] : 0);
            fprintf(out,
                    "sightline_http_requests_total{method=\"%s\",route=\"%s\",status=\"%s\"} "
                    "%llu\n",
                    r->method, r->route, s < NSTATUS ? status : "other", (unsigned long long)v);
        }
    }
    fputs("# HELP sightline_http_request_duration_seconds Time from request head to answer "
          "sent.\n# TYPE sightline_http_request_duration_seconds histogram\n",
          out);
    for (size_t i = 0; i <= m->n; i++) {
        route_metrics *r = &m->rows[i];
        uint64_t cum = 0;
        uint64_t counts[NBUCKETS + 1];
        for (size_t b = 0; b <= NBUCKETS; b++)
            counts[b] = atomic_load_explicit(&r->buckets[b], memory_order_relaxed);
        for (size_t b = 0; b <= NBUCKETS; b++)
            cum += counts[b];
        if (cum == 0)
            continue; /* a route never called: no series (keeps the page short) */
        cum = 0;
        for (size_t b = 0; b <= NBUCKETS; b++) {
            cum += counts[b];
            char le[32];
            if (b < NBUCKETS)
                snprintf(le, sizeof le, "%g", (double)bucket_us[b] / 1e6);
            else
                snprintf(le, sizeof le, "+Inf");
            fprintf(out,
                    "sightline_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\","
                    "le=\"%s\"} %llu\n",
                    r->method, r->route, le, (unsigned long long)cum);
        }
        fprintf(out,
                "sightline_http_request_duration_seconds_sum{method=\"%s\",route=\"%s\"} %.6f\n"
                "sightline_http_request_duration_seconds_count{method=\"%s\",route=\"%s\"} "
                "%llu\n",
                r->method, r->route,
                (double)atomic_load_explicit(&r->sum_us, memory_order_relaxed) / 1e6, r->method,
                r->route, (unsigned long long)cum);
    }
    fprintf(out,
            "# HELP sightline_http_in_flight_requests Requests being served now.\n"
            "# TYPE sightline_http_in_flight_requests gauge\n"
            "sightline_http_in_flight_requests %lld\n"
            "# HELP sightline_http_open_connections Client connections open now.\n"
            "# TYPE sightline_http_open_connections gauge\n"
            "sightline_http_open_connections %lld\n"
            "# HELP sightline_store_errors_total Store calls that failed, by status.\n"
            "# TYPE sightline_store_errors_total counter\n",
            (long long)atomic_load_explicit(&m->in_flight, memory_order_relaxed),
            (long long)atomic_load_explicit(&m->connections, memory_order_relaxed));
    /* Every storage status is listed, zeros included, so alerts see the series. */
    const sl_status store_statuses[] = {SL_EIO, SL_EBUSY, SL_ECORRUPT, SL_ETIMEOUT, SL_EFEEDGONE};
    for (size_t i = 0; i < sizeof store_statuses / sizeof store_statuses[0]; i++)
        fprintf(out, "sightline_store_errors_total{status=\"%s\"} %llu\n",
                sl_status_name(store_statuses[i]),
                (unsigned long long)atomic_load_explicit(&m->store_errors[store_statuses[i]],
                                                         memory_order_relaxed));
    if (ferror(out))
        rc = sl_error_set(err, SL_ENOMEM, "out of memory rendering metrics");
    return rc;
}
