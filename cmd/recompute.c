/* recompute.c -- `sightline recompute`: the nightly job.  Rebuilds aggregates
 * from base documents, prints the drift (one line per drifted aggregate, by
 * field group; every field with --verbose; or JSON), repairs it on request.
 * Exit 0: no drift (or all repaired), 3: drift left, 1: failure, 2: usage. */
#include "cmd.h"
#include "engine/engine.h"
#include "store/store.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <yajl/yajl_gen.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: sightline recompute [--tenant T] [--repair] [--json] [--verbose] [--fresh]\n"
            "                           [--max-aggregates N] [--store URI]\n\n"
            "Rebuilds every aggregate from the base documents, compares it field by field\n"
            "with the live aggregates (at the listener's committed position, so it can run\n"
            "while the listener does) and prints the drift: one line per drifted aggregate\n"
            "naming what is wrong with its document (not BSON, another document's bytes,\n"
            "fields missing, extra or mistyped, quarantined by the listener) and which\n"
            "fields differ, by group.  An interrupted run continues after its last finished\n"
            "tenant (unless --fresh).  Every finished run leaves an audit document.\n\n"
            "  --tenant T           only this tenant\n"
            "  --repair             replace each drifted aggregate with its rebuilt value and\n"
            "                       clear its quarantine (the listener pauses while a tenant\n"
            "                       with drift is rebuilt; no update is lost or applied\n"
            "                       twice); if the listener's feed position was pruned, also\n"
            "                       move it to the head (needs every tenant).  An aggregate\n"
            "                       over the metric limit (its assets carry more than 256\n"
            "                       metrics) is not repaired: it stays quarantined until\n"
            "                       its assets carry at most 256\n"
            "  --verbose            also list every drifted field (a histogram: each bin)\n"
            "  --json               print the report as JSON on stdout (with --verbose: the\n"
            "                       fields too)\n"
            "  --fresh              ignore the checkpoint of an interrupted run\n"
            "  --max-aggregates N   memory bound: aggregates of one tenant, and aggregates\n"
            "                       the changes the listener has not applied yet touch (more:\n"
            "                       the run fails, naming it) (default 2000000)\n"
            "  --store URI          the store (default %s, or $SIGHTLINE_STORE)\n"
            "  --help               this text\n\n"
            "Exit codes: 0 no drift (or every drifted aggregate repaired), 1 failure,\n"
            "2 bad usage, 3 drift found and not repaired (also an aggregate over the metric\n"
            "limit: the rest of its tenant is compared and repaired all the same).\n",
            CMD_DEFAULT_STORE);
}

/* ---------------------------------------------------------------------------
 * Progress bar on stderr (only when it is a terminal).
 * ------------------------------------------------------------------------- */
typedef struct bar {
    int64_t last_ms;
    int drawn;
} bar;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int draw(void *ctx, const engine_recompute_progress *p)
{
    bar *b = ctx;
    int64_t now = mono_ms();
    if (now - b->last_ms >= 100) { /* at most ten redraws a second */
        b->last_ms = now;
        b->drawn = 1;
        char cells[31];
        int filled = 0;
        double frac = 0;
        if (p->assets_estimate > 0) {
            frac = (double)p->assets_scanned / (double)p->assets_estimate;
            frac = frac > 1 ? 1 : frac;
            filled = (int)(frac * 30);
        }
        for (int i = 0; i < 30; i++)
            cells[i] = i < filled ? '#' : '.';
        cells[30] = '\0';
        if (p->assets_estimate > 0)
            fprintf(stderr,
                    "\r\033[Krecompute [%s] %3d%% %" PRId64 "/~%" PRId64 " assets, %" PRId64
                    " items, %" PRId64 " tenants, %" PRId64 " drifted fields (%.32s)",
                    cells, (int)(frac * 100), p->assets_scanned, p->assets_estimate,
                    p->items_scanned, p->tenants_done, p->drift_fields, p->tenant ? p->tenant : "");
        else
            fprintf(stderr,
                    "\r\033[Krecompute %" PRId64 " items, %" PRId64 " tenants, %" PRId64
                    " drifted fields (%.32s)",
                    p->items_scanned, p->tenants_done, p->drift_fields, p->tenant ? p->tenant : "");
        fflush(stderr);
    }
    return 0; /* never interrupts */
}

/* ---------------------------------------------------------------------------
 * Output.
 * ------------------------------------------------------------------------- */
static void print_table(const engine_recompute_report *r, int repair, int verbose)
{
    char started[25];
    schema_time_format(r->started_ms, started);
    printf("recompute %s started %s%s: %" PRId64 " tenants, %" PRId64 " items, %" PRId64
           " aggregates checked, %" PRId64 " malformed documents\n",
           r->run_id, started, r->resumed ? " (resumed)" : "", r->tenants, r->items_scanned,
           r->aggregates_checked, r->malformed);
    if (r->feed_gone)
        printf("the listener's feed position had been pruned%s\n",
               r->consumer_reset ? "; the consumer was reset to the head"
                                 : ": live aggregates are stale, run with --repair");
    if (!r->drift_fields) {
        printf("no drift\n");
        return;
    }
    printf("drift: %" PRId64 " fields in %" PRId64 " aggregates, %s\n", r->drift_fields,
           r->drift_aggregates,
           !repair ? "not repaired (run with --repair to correct it)"
           : r->repaired_aggregates < r->drift_aggregates
               ? "NOT ALL repaired (see the aggregates without \"repaired\")"
               : "repaired");
    if (r->over_limit_aggregates)
        printf("%" PRId64 " of them over the metric limit (more than %d metrics): they stay "
               "quarantined until their assets carry at most %d, whatever --repair does\n",
               r->over_limit_aggregates, ENGINE_AGG_METRICS_MAX, ENGINE_AGG_METRICS_MAX);
    if (r->repair_retries)
        printf("%" PRId64 " tenant repairs begun again: the listener took its lease back (it "
               "had expired)\n",
               r->repair_retries);
    for (size_t i = 0; i < r->naggs; i++) {
        const engine_drift_agg *a = &r->aggs[i];
        printf("%s %s: %s%s\n", a->tenant, a->sk, a->summary, a->repaired ? " (repaired)" : "");
    }
    if ((int64_t)r->naggs < r->drift_aggregates)
        printf("... and %" PRId64 " more drifted aggregates (only the first %zu are listed)\n",
               r->drift_aggregates - (int64_t)r->naggs, r->naggs);
    if (!verbose) {
        printf("(--verbose lists each of the %" PRId64 " fields)\n", r->drift_fields);
        return;
    }
    printf("%-16s %-40s %-36s %20s %20s\n", "TENANT", "AGGREGATE", "FIELD", "LIVE", "RECOMPUTED");
    for (size_t i = 0; i < r->nrows; i++) {
        const engine_drift_row *d = &r->rows[i];
        printf("%-16s %-40s %-36s %20s %20s\n", d->tenant, d->sk, d->field, d->live, d->recomputed);
    }
    if ((int64_t)r->nrows < r->drift_fields)
        printf("... and %" PRId64 " more drifted fields (only the first %zu are listed)\n",
               r->drift_fields - (int64_t)r->nrows, r->nrows);
}

static void gen_key(yajl_gen g, const char *k)
{
    yajl_gen_string(g, (const unsigned char *)k, strlen(k));
}

static void gen_str(yajl_gen g, const char *k, const char *v)
{
    gen_key(g, k);
    yajl_gen_string(g, (const unsigned char *)v, strlen(v));
}

static void gen_int(yajl_gen g, const char *k, int64_t v)
{
    gen_key(g, k);
    yajl_gen_integer(g, (long long)v);
}

static void gen_bool(yajl_gen g, const char *k, int v)
{
    gen_key(g, k);
    yajl_gen_bool(g, v != 0);
}

/* A value as a JSON number when it is an integer (sums of squares may pass
 * 2^63, so the digits are written as they are), else as a string. */
static void gen_value(yajl_gen g, const char *k, const char *v)
{
    gen_key(g, k);
    const char *p = v + (*v == '-');
    int numeric = *p != '\0';
    for (; *p; p++)
        numeric &= *p >= '0' && *p <= '9';
    if (numeric)
        yajl_gen_number(g, v, strlen(v));
    else
        yajl_gen_string(g, (const unsigned char *)v, strlen(v));
}

/* Opens the object of one aggregate in a list: its tenant and key. */
static void gen_entry(yajl_gen g, const char *tenant, const char *sk)
{
    yajl_gen_map_open(g);
    gen_str(g, "tenant", tenant);
    gen_str(g, "aggregate", sk);
}

static int print_json(const engine_recompute_report *r, const char *tenant, int repair, int verbose)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    char when[25];
    int ok = 0;
    if (!g)
        goto out;
    yajl_gen_map_open(g);
    gen_str(g, "run_id", r->run_id);
    schema_time_format(r->started_ms, when);
    gen_str(g, "started", when);
    schema_time_format(r->finished_ms, when);
    gen_str(g, "finished", when);
    gen_key(g, "tenant");
    if (tenant)
        yajl_gen_string(g, (const unsigned char *)tenant, strlen(tenant));
    else
        yajl_gen_null(g);
    gen_bool(g, "repair", repair);
    gen_bool(g, "resumed", r->resumed);
    gen_bool(g, "feed_gone", r->feed_gone);
    gen_bool(g, "consumer_reset", r->consumer_reset);
    gen_int(g, "tenants", r->tenants);
    gen_int(g, "items_scanned", r->items_scanned);
    gen_int(g, "malformed", r->malformed);
    gen_int(g, "aggregates_checked", r->aggregates_checked);
    gen_int(g, "drift_fields", r->drift_fields);
    gen_int(g, "drift_aggregates", r->drift_aggregates);
    gen_int(g, "repaired_aggregates", r->repaired_aggregates);
    gen_int(g, "over_metric_limit_aggregates", r->over_limit_aggregates);
    gen_int(g, "repair_retries", r->repair_retries);
    gen_bool(g, "aggregates_truncated", (int64_t)r->naggs < r->drift_aggregates);
    gen_key(g, "aggregates");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < r->naggs; i++) {
        const engine_drift_agg *a = &r->aggs[i];
        gen_entry(g, a->tenant, a->sk);
        gen_int(g, "fields", a->fields);
        gen_bool(g, "repaired", a->repaired);
        gen_bool(g, "over_metric_limit", a->over_metric_limit);
        gen_str(g, "summary", a->summary);
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
    if (verbose) {
        gen_bool(g, "rows_truncated", (int64_t)r->nrows < r->drift_fields);
        gen_key(g, "drift");
        yajl_gen_array_open(g);
        for (size_t i = 0; i < r->nrows; i++) {
            const engine_drift_row *d = &r->rows[i];
            gen_entry(g, d->tenant, d->sk);
            gen_str(g, "field", d->field);
            gen_value(g, "live", d->live);
            gen_value(g, "recomputed", d->recomputed);
            yajl_gen_map_close(g);
        }
        yajl_gen_array_close(g);
    }
    yajl_gen_map_close(g);
    const unsigned char *buf;
    size_t len;
    ok = yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok;
    if (ok) {
        fwrite(buf, 1, len, stdout);
        fputc('\n', stdout);
    }
    yajl_gen_free(g);
out:
    return ok;
}

int cmd_recompute(int argc, char **argv)
{
    static const struct option longs[] = {{"store", required_argument, NULL, 's'},
                                          {"tenant", required_argument, NULL, 't'},
                                          {"repair", no_argument, NULL, 'r'},
                                          {"json", no_argument, NULL, 'j'},
                                          {"fresh", no_argument, NULL, 'f'},
                                          {"max-aggregates", required_argument, NULL, 'm'},
                                          {"verbose", no_argument, NULL, 'v'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    const char *uri = NULL;
    int json = 0, verbose = 0, c, rc = CMD_EXIT_OK;
    engine_recompute_options opt = {0};
    store *s = NULL;
    engine_recompute_report rep = {0};
    sl_error err;
    sl_error_clear(&err);
    optind = 1;
    while (rc == CMD_EXIT_OK && (c = cmd_getopt("recompute", argc, argv, longs, &rc)) != -1) {
        switch (c) {
        case 's':
            uri = optarg;
            break;
        case 't':
            if (schema_component_check("tenant", optarg, &err) != SL_OK)
                rc = cmd_usage_error("recompute", "--tenant: %s", err.message);
            opt.tenant = optarg;
            break;
        case 'r':
            opt.repair = 1;
            break;
        case 'j':
            json = 1;
            break;
        case 'f':
            opt.fresh = 1;
            break;
        case 'v':
            verbose = 1;
            break;
        case 'm': {
            long long v = 0;
            if (!cmd_parse_int(optarg, 1000, 100000000, &v))
                rc = cmd_usage_error("recompute", "--max-aggregates wants 1000..100000000");
            opt.max_aggregates = (size_t)v;
            break;
        }
        case 'h':
            usage(stdout);
            goto out;
        }
    }
    if (rc != CMD_EXIT_OK)
        goto out;

    bar b = {0};
    if (isatty(STDERR_FILENO)) {
        opt.progress = draw;
        opt.progress_ctx = &b;
    }
    sl_status st = store_open(cmd_store_uri(uri), NULL, &s, &err);
    if (st == SL_OK)
        st = engine_recompute(s, &opt, &rep, &err);
    if (b.drawn)
        fprintf(stderr, "\r\033[K");
    if (st != SL_OK) {
        rc = cmd_report_error("recompute", &err);
        goto out;
    }
    if (json) {
        if (!print_json(&rep, opt.tenant, opt.repair, verbose)) {
            fprintf(stderr, "sightline recompute: could not write the JSON report\n");
            rc = CMD_EXIT_FAILURE;
            goto out;
        }
    } else {
        print_table(&rep, opt.repair, verbose);
    }
    /* Drift counts as left unless this run repaired every drifted aggregate. */
    if (rep.drift_fields && (!opt.repair || rep.repaired_aggregates < rep.drift_aggregates))
        rc = CMD_EXIT_DRIFT;
    if (rep.feed_gone && !rep.consumer_reset)
        rc = CMD_EXIT_DRIFT;
out:
    engine_recompute_report_free(&rep);
    store_close(&s);
    return rc;
}
