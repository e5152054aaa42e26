/* serve.c -- `sightline serve`: opens the store, starts the HTTP server and
 * waits for SIGTERM or SIGINT, then stops gracefully (stop accepting, finish
 * in-flight requests, close the store). */
#include "cmd.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "api/api.h" /* and store/store.h */
#include "engine/engine.h"
#include "ingest/ingest.h"

#define SUB        "serve"
#define FD_RESERVE 256 /* descriptors kept for the store, logs and libraries */

static void help(FILE *out)
{
    fprintf(out,
            "usage: sightline serve [--store URI] [--listen HOST:PORT] [options]\n\n"
            "Runs the HTTP API (GET /healthz needs no key, nor GET /metrics unless\n"
            "--metrics-key is set; /v1/... need 'Authorization: Bearer <key>', see\n"
            "'sightline keys create').  Stops gracefully on SIGTERM or SIGINT.  The\n"
            "limits below are described in docs/security.md.\n\n"
            "  --store URI              store (default %s, or $SIGHTLINE_STORE)\n"
            "  --listen HOST:PORT       address to serve on (default 127.0.0.1:8080; port 0\n"
            "                           picks a free port, printed on stderr)\n"
            "  --tls-cert FILE          serve HTTPS with this PEM certificate chain...\n"
            "  --tls-key FILE           ...and this PEM private key (see --tls-priorities,\n"
            "                           --hsts-max-age)\n"
            "  --access-log DEST        '-' (stdout, default), a file to append to, or 'off'\n"
            "  --spool DIR              also ingest files dropped into DIR/<tenant>/<surgery>/\n"
            "                           and DIR/<tenant>/assets/ (see docs/formats.md)\n"
            "  --spool-owner WHO        take spool files owned by WHO only: a user name or\n"
            "                           uid, or 'any' (default: the user running the server);\n"
            "                           links, hard links and FIFOs are always refused\n"
            "  --no-listener            do not run the aggregates listener in this process\n"
            "                           (run `sightline listen` instead)\n"
            "limits and settings:\n",
            CMD_DEFAULT_STORE);
    api_config_help(out);
}

/* Copies an option value into a fixed field, refusing one that does not fit. */
static int set_text(char *field, size_t cap, const char *opt, const char *value)
{
    int rc = CMD_EXIT_OK;
    if (strlen(value) >= cap)
        rc = cmd_usage_error(SUB, "%s is longer than %zu bytes", opt, cap - 1);
    else
        memcpy(field, value, strlen(value) + 1);
    return rc;
}

/* The spool folder (--spool DIR): the ingest watcher in a thread of its own,
 * sharing the server's compiled catalogs. */
typedef struct serve_spool {
    ingest_spool *sp;
    pthread_t th;
    int running;
    sl_status rc;
    sl_error err;
} serve_spool;

/* A file stored, refused (in failed/, with its .error.json, unless it could
 * not be moved), or stored but not moved (both sum and e). */
static void on_spooled(void *ctx, const char *path, const ingest_summary *sum, const sl_error *e)
{
    (void)ctx;
    if (sum)
        fprintf(stderr, "sightline serve: spool: %s: %llu frames, %llu detections, %llu assets\n",
                path, (unsigned long long)sum->frames, (unsigned long long)sum->detections,
                (unsigned long long)sum->assets);
    if (e)
        fprintf(stderr, "sightline serve: spool: %s: %s\n", path, e->message);
}

/* A watcher that fails stops the server (SIGTERM to ourselves wakes the
 * sigwait below), so a broken --spool is not left unnoticed. */
static void *spool_main(void *arg)
{
    serve_spool *s = arg;
    s->rc = ingest_spool_run(s->sp, -1, &s->err);
    if (s->rc != SL_OK)
        kill(getpid(), SIGTERM);
    return NULL;
}

static sl_status spool_start(store *st, const char *dir, const ingest_spool_options *owner,
                             ingest_catalog_cache *cc, serve_spool *s, sl_error *err)
{
    ingest_spool_options o = *owner;
    o.catalogs = cc;
    o.on_file = on_spooled;
    sl_status rc = ingest_spool_open(st, dir, &o, &s->sp, err);
    if (rc == SL_OK && pthread_create(&s->th, NULL, spool_main, s) != 0)
        rc = sl_error_set(err, SL_EINTERNAL, "cannot start the spool thread");
    s->running = rc == SL_OK;
    return rc;
}

/* Stops and frees the watcher (the file it is ingesting is finished first). */
static void spool_stop(serve_spool *s)
{
    if (s->running) {
        ingest_spool_stop(s->sp);
        pthread_join(s->th, NULL);
        s->running = 0;
    }
    ingest_spool_close(&s->sp);
}

/* Without --upload-dir, request bodies are spooled beside a SQLite store (a
 * disk, where /tmp may be memory); other stores leave the ingest default
 * ($TMPDIR or /tmp). */
static void default_upload_dir(api_config *cfg, const char *uri)
{
    const char *path = !strncmp(uri, "sqlite:", 7) ? uri + 7 : strstr(uri, "://") ? NULL : uri;
    size_t n = path ? strcspn(path, "?") : 0; /* a sqlite URI may carry ?name=value */
    const char *slash = path ? memrchr(path, '/', n) : NULL;
    if (cfg->upload_dir[0] || !path)
        goto out;
    if (!slash)
        snprintf(cfg->upload_dir, sizeof cfg->upload_dir, ".");
    else if (slash == path)
        snprintf(cfg->upload_dir, sizeof cfg->upload_dir, "/");
    else if ((size_t)(slash - path) < sizeof cfg->upload_dir)
        snprintf(cfg->upload_dir, sizeof cfg->upload_dir, "%.*s", (int)(slash - path), path);
out:
    return;
}

/* Raises the open-files limit to what max_connections needs (up to the hard
 * limit) and lowers max_connections when even that is not enough. */
static void fit_descriptors(api_config *cfg)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)cfg->max_connections + FD_RESERVE;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        goto out;
    if (rl.rlim_cur < need) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < need) {
        int64_t fit = rl.rlim_cur > FD_RESERVE * 2 ? (int64_t)(rl.rlim_cur - FD_RESERVE) : 64;
        fprintf(stderr,
                "sightline serve: open-files limit is %llu; max-connections lowered from %lld to "
                "%lld (raise 'ulimit -n' to keep it)\n",
                (unsigned long long)rl.rlim_cur, (long long)cfg->max_connections, (long long)fit);
        cfg->max_connections = fit;
    }
out:
    return;
}

/* /metrics lines of this process's listener (or that it runs none). */
static void listener_metrics(void *ctx, FILE *out)
{
    engine_listener_metrics_write(ctx, out);
}

/* /metrics lines for the change feed, through the API's metrics hook: how far
 * the aggregates listener (this process or `sightline listen`) is behind,
 * and how many aggregates it quarantined (read from the store, so every
 * server reports them whichever process runs the listener). */
static void feed_metrics(void *ctx, FILE *out)
{
    store_feed_stats fs;
    sl_error err;
    sl_error_clear(&err);
    if (store_feed_stats_get(ctx, ENGINE_CONSUMER, &fs, &err) == SL_OK)
        fprintf(out,
                "# HELP sightline_feed_behind_events Change-feed events the aggregates listener "
                "has not applied (-1: unknown).\n"
                "# TYPE sightline_feed_behind_events gauge\n"
                "sightline_feed_behind_events %lld\n"
                "# HELP sightline_feed_lag_seconds Age of the oldest change not yet applied to "
                "the aggregates.\n"
                "# TYPE sightline_feed_lag_seconds gauge\n"
                "sightline_feed_lag_seconds %.3f\n",
                (long long)fs.behind_events, (double)fs.behind_ms / 1000.0);
    int64_t quarantined = 0;
    sl_error_clear(&err);
    if (engine_quarantine_count(ctx, &quarantined, NULL, 0, &err) == SL_OK)
        fprintf(out,
                "# HELP sightline_aggregates_quarantined Aggregates the listener set aside "
                "because their documents could not be read (their deltas are skipped; the API "
                "answers 503 for them): run `sightline recompute --repair`.\n"
                "# TYPE sightline_aggregates_quarantined gauge\n"
                "sightline_aggregates_quarantined %lld\n",
                (long long)quarantined);
}

int cmd_serve(int argc, char **argv)
{
    api_config cfg;
    const char *store_opt = NULL, *log_dest = "-", *spool_dir = NULL;
    serve_spool spool = {0};
    ingest_spool_options spool_owner = {0}; /* owner and owner_uid only */
    const char *spool_owner_opt = NULL;
    store *st = NULL;
    api_server *srv = NULL;
    FILE *log_file = NULL;
    engine_listener *listener = NULL;
    int no_listener = 0;
    sl_error err;
    int rc = CMD_EXIT_OK;
    sigset_t stop_signals;
    sl_error_clear(&err);
    api_config_defaults(&cfg);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help(stdout);
            goto out;
        }
        if (strncmp(a, "--", 2) != 0) {
            rc = cmd_usage_error(SUB, "unexpected argument '%s'", a);
            goto out;
        }
        if (!strcmp(a, "--no-listener")) { /* the one flag without a value */
            no_listener = 1;
            continue;
        }
        /* Every option takes a value: --name VALUE or --name=VALUE. */
        char name[64];
        const char *value = strchr(a, '=');
        size_t nlen = value ? (size_t)(value - a - 2) : strlen(a + 2);
        if (nlen >= sizeof name) {
            rc = cmd_usage_error(SUB, "unknown option '%.64s'", a);
            goto out;
        }
        memcpy(name, a + 2, nlen);
        name[nlen] = '\0';
        if (value) {
            value++;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            rc = cmd_usage_error(SUB, "--%s needs a value", name);
            goto out;
        }
        if (!strcmp(name, "store")) {
            store_opt = value;
        } else if (!strcmp(name, "listen")) {
            rc = set_text(cfg.listen, sizeof cfg.listen, "--listen", value);
        } else if (!strcmp(name, "tls-cert")) {
            rc = set_text(cfg.tls_cert, sizeof cfg.tls_cert, "--tls-cert", value);
        } else if (!strcmp(name, "tls-key")) {
            rc = set_text(cfg.tls_key, sizeof cfg.tls_key, "--tls-key", value);
        } else if (!strcmp(name, "access-log")) {
            log_dest = value;
        } else if (!strcmp(name, "spool")) {
            spool_dir = value;
        } else if (!strcmp(name, "spool-owner")) {
            spool_owner_opt = value;
            if (ingest_spool_owner_parse(value, &spool_owner, &err) != SL_OK)
                rc = cmd_usage_error(SUB, "--spool-owner: %s", err.message);
        } else if (api_config_has(name)) {
            if (api_config_set(&cfg, name, value, &err) != SL_OK)
                rc = cmd_usage_error(SUB, "%s", err.message);
        } else {
            rc = cmd_usage_error(SUB, "unknown option '--%s'", name);
        }
        if (rc != CMD_EXIT_OK)
            goto out;
    }
    if (spool_owner_opt && !spool_dir) {
        rc = cmd_usage_error(SUB, "--spool-owner goes with --spool");
        goto out;
    }
    if (!cfg.tls_cert[0] != !cfg.tls_key[0]) {
        rc = cmd_usage_error(SUB, "--tls-cert and --tls-key go together");
        goto out;
    }

    if (!strcmp(log_dest, "off")) {
        cfg.access_log = NULL;
    } else if (!strcmp(log_dest, "-")) {
        /* Fully buffered: the server flushes it a few times a second, so a
         * busy server does not pay a write per request. */
        setvbuf(stdout, NULL, _IOFBF, 1 << 16);
        cfg.access_log = stdout;
    } else if (!(log_file = fopen(log_dest, "a"))) {
        rc = cmd_usage_error(SUB, "cannot open access log %s", log_dest);
        goto out;
    } else {
        setvbuf(log_file, NULL, _IOFBF, 1 << 16);
        cfg.access_log = log_file;
    }
    fit_descriptors(&cfg);
    default_upload_dir(&cfg, cmd_store_uri(store_opt));

    /* Block the stop signals before any thread starts, so every server thread
     * inherits the mask and only sigwait() below sees them. */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    const char *uri = cmd_store_uri(store_opt);
    if (store_open(uri, NULL, &st, &err) != SL_OK) {
        rc = cmd_report_error(SUB, &err);
        goto out;
    }
    if (api_server_start(&cfg, st, &srv, &err) != SL_OK) {
        rc = cmd_report_error(SUB, &err);
        goto out;
    }
    if (api_server_add_metrics(srv, feed_metrics, st, &err) != SL_OK) {
        rc = cmd_report_error(SUB, &err);
        goto out;
    }
    /* The listener thread inherits the blocked stop signals like the server's. */
    if ((!no_listener && engine_listener_start(st, NULL, &listener, &err) != SL_OK) ||
        api_server_add_metrics(srv, listener_metrics, listener, &err) != SL_OK) {
        rc = cmd_report_error(SUB, &err);
        goto out;
    }
    if (spool_dir &&
        spool_start(st, spool_dir, &spool_owner, api_server_catalogs(srv), &spool, &err) != SL_OK) {
        rc = cmd_report_error(SUB, &err);
        goto out;
    }
    fprintf(stderr, "sightline serve: listening on %s (store %s)\n", api_server_url(srv), uri);
    fflush(stderr);

    int sig = 0;
    while (sigwait(&stop_signals, &sig) != 0)
        ;
    fprintf(stderr, "sightline serve: %s received, finishing in-flight requests\n",
            sig == SIGTERM ? "SIGTERM" : "SIGINT");
    api_server_stop(srv);
    spool_stop(&spool);
    if (spool.rc != SL_OK)
        rc = cmd_report_error(SUB, &spool.err);
    engine_listener_stop(&listener); /* finishes its commit, releases the lease */
    fprintf(stderr, "sightline serve: stopped\n");
out:
    spool_stop(&spool);
    api_server_free(&srv);
    engine_listener_stop(&listener);
    store_close(&st);
    if (log_file)
        fclose(log_file);
    else
        fflush(stdout);
    return rc;
}
