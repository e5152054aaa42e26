/* listener_metrics.c -- the listener's counters as Prometheus text for
 * GET /metrics: whether this process runs it and holds the lease, events
 * applied (total and rate), quarantined aggregates, and commit-to-applied
 * latency as a histogram. */
#include "engine_int.h"

#include <inttypes.h>
#include <stdlib.h>

/* Histogram bounds in ms; the listener keeps 1 ms buckets (lag_hist[i] counts
 * latencies of i ms, rounded down), so bound b counts the buckets i < b. */
static const int lag_bounds_ms[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000};

static void gauge(FILE *out, const char *name, const char *help, double v)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name, name, v);
}

static void counter(FILE *out, const char *name, const char *help, int64_t v)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s counter\n%s %" PRId64 "\n", name, help, name, name, v);
}

void engine_listener_metrics_write(engine_listener *l, FILE *out)
{
    engine_listener_stats *st = NULL;
    sl_error err;
    sl_error_clear(&err);
    gauge(out, "sightline_listener_running",
          "1 when this process runs the aggregates listener (0: --no-listener).", l ? 1 : 0);
    /* The stats hold a 1025-bucket histogram: too big for a server thread's stack. */
    if (!l || !(st = malloc(sizeof *st)) || engine_listener_stats_get(l, st, &err) != SL_OK)
        goto out;
    gauge(out, "sightline_listener_lease_held",
          "1 while this process's listener holds the lease (it is the active one).",
          st->holding_lease);
    gauge(out, "sightline_listener_feed_gone",
          "1 when events the listener had not applied were pruned: run `sightline recompute "
          "--repair`.",
          st->feed_gone);
    counter(out, "sightline_listener_events_applied_total",
            "Change-feed events applied to the aggregates by this process.", st->events_applied);
    counter(out, "sightline_listener_events_skipped_total",
            "Applied events whose document was malformed (contributed nothing).",
            st->events_skipped);
    counter(out, "sightline_listener_commits_total", "Atomic consumer commits.", st->commits);
    counter(out, "sightline_listener_conflicts_total", "Commits retried after a version conflict.",
            st->conflicts);
    counter(out, "sightline_listener_errors_total", "Store errors survived (retried).", st->errors);
    gauge(out, "sightline_listener_quarantined",
          "Aggregates quarantined as this process's listener last read them (their deltas are "
          "skipped until `sightline recompute --repair`).",
          (double)st->quarantined);
    counter(out, "sightline_listener_quarantined_total",
            "Aggregates this process's listener quarantined (document unreadable or drifted).",
            st->quarantined_total);
    counter(out, "sightline_listener_quarantine_skips_total",
            "Merged deltas to quarantined aggregates that were dropped (repair rebuilds them).",
            st->quarantine_skips);
    gauge(out, "sightline_listener_applied_events_per_second",
          "Events applied per second over the last few seconds.", st->applied_per_s);
    const char *h = "sightline_listener_apply_latency_seconds";
    fprintf(out,
            "# HELP %s Time from an event's commit to the commit of its aggregates.\n"
            "# TYPE %s histogram\n",
            h, h);
    int64_t cum = 0, total = 0;
    size_t next = 0;
    for (int i = 0; i < ENGINE_LAG_BUCKETS; i++) {
        while (next < sizeof lag_bounds_ms / sizeof lag_bounds_ms[0] && i >= lag_bounds_ms[next]) {
            fprintf(out, "%s_bucket{le=\"%g\"} %" PRId64 "\n", h, lag_bounds_ms[next] / 1000.0,
                    cum);
            next++;
        }
        cum += st->lag_hist[i];
        total += st->lag_hist[i];
    }
    /* The exact sum: the buckets would count every latency past the last
     * one as 1.024 s. */
    fprintf(out, "%s_bucket{le=\"+Inf\"} %" PRId64 "\n%s_sum %.3f\n%s_count %" PRId64 "\n", h,
            total, h, (double)st->lag_sum_ms / 1000.0, h, total);
out:
    free(st);
}
