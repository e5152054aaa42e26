/* listen.c -- `sightline listen`: the change-feed listener as a process of its
 * own (the same thread `serve` runs), until SIGTERM or SIGINT.  Several may
 * run against one store: one holds the lease, the others wait to take over. */
#include "cmd.h"
#include "engine/engine.h"
#include "store/store.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: sightline listen [--store URI] [--lease-ms N] [--batch N] [--holder ID]\n"
            "                        [--stats-every SECONDS] [--debug-stop-at POINT[:N]]\n\n"
            "Applies the change feed of items to the aggregates, exactly once, until\n"
            "SIGTERM or SIGINT.  Only one listener per store is active (a lease); others\n"
            "wait and take over within --lease-ms when it dies.\n\n"
            "  --store URI          the store (default %s, or $SIGHTLINE_STORE)\n"
            "  --lease-ms N         lease lifetime in ms, 50..600000 (default 10000)\n"
            "  --batch N            events per commit, 1..65536 (default 16384)\n"
            "  --holder ID          lease holder id (default host:pid:random)\n"
            "  --stats-every S      print counters to stderr every S seconds (default 0: never)\n"
            "  --debug-stop-at POINT[:N]\n"
            "                       for crash tests: the N-th time (1..1000000, default 1)\n"
            "                       the listener reaches POINT, print a line \"sightline\n"
            "                       listen: debug stop at POINT #N: ...\" to stderr and stop\n"
            "                       the process (SIGSTOP), so that the test can kill it there.\n"
            "                       POINT: read (events read, none committed), commit (inside\n"
            "                       the store's commit, nothing committed yet) or committed\n"
            "                       (the commit returned, nothing else done)\n"
            "  --help               this text\n\n"
            "Exit codes: 0 stopped by a signal, 1 failure, 2 bad usage.\n",
            CMD_DEFAULT_STORE);
}

static void print_stats(engine_listener *l)
{
    engine_listener_stats st;
    sl_error err;
    sl_error_clear(&err);
    if (engine_listener_stats_get(l, &st, &err) != SL_OK)
        cmd_report_error("listen", &err);
    else
        fprintf(stderr,
                "sightline listen: lease %s, %" PRId64 " events applied (%.0f/s), %" PRId64
                " skipped, lag %" PRId64 " events / %" PRId64 " ms%s%s\n",
                st.holding_lease ? "held" : "waiting", st.events_applied, st.applied_per_s,
                st.events_skipped, st.lag_events, st.lag_ms,
                st.feed_gone ? ", FEED GONE: run `sightline recompute --repair`" : "",
                st.quarantined ? ", AGGREGATES QUARANTINED: run `sightline recompute --repair`"
                               : "");
}

/* --debug-stop-at: the point and the how-many-th time to stop there.  Lives
 * on cmd_listen's stack; only the listener thread counts. */
typedef struct debug_stop {
    engine_listener_point point;
    long long nth, seen;
} debug_stop;

static const char *const point_names[] = {[ENGINE_POINT_READ] = "read",
                                          [ENGINE_POINT_COMMIT] = "commit",
                                          [ENGINE_POINT_COMMITTED] = "committed"};

/* POINT[:N] into *d; false when it is not one. */
static bool parse_debug_stop(const char *arg, debug_stop *d)
{
    const char *colon = strchr(arg, ':');
    size_t len = colon ? (size_t)(colon - arg) : strlen(arg);
    d->point = 0;
    d->nth = 1;
    for (int p = ENGINE_POINT_READ; p <= ENGINE_POINT_COMMITTED; p++)
        if (strlen(point_names[p]) == len && !strncmp(arg, point_names[p], len))
            d->point = (engine_listener_point)p;
    return d->point && (!colon || cmd_parse_int(colon + 1, 1, 1000000, &d->nth));
}

/* The listener's test hook (engine_point_fn): the line, then SIGSTOP, which
 * stops every thread at once, here; only SIGCONT or SIGKILL go on from it. */
static void debug_stop_at(void *ctx, engine_listener_point point, const char *committed,
                          const char *token)
{
    debug_stop *d = ctx;
    if (point == d->point && ++d->seen == d->nth) {
        fprintf(stderr, "sightline listen: debug stop at %s #%lld: committed \"%s\" token \"%s\"\n",
                point_names[point], d->nth, committed, token);
        raise(SIGSTOP);
    }
}

int cmd_listen(int argc, char **argv)
{
    static const struct option longs[] = {{"store", required_argument, NULL, 's'},
                                          {"lease-ms", required_argument, NULL, 'l'},
                                          {"batch", required_argument, NULL, 'b'},
                                          {"holder", required_argument, NULL, 'H'},
                                          {"stats-every", required_argument, NULL, 'e'},
                                          {"debug-stop-at", required_argument, NULL, 'D'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    const char *uri = NULL;
    engine_listener_options opt = {0};
    debug_stop stop_at = {0};
    long long v, stats_every = 0;
    int c, rc = CMD_EXIT_OK;
    store *s = NULL;
    engine_listener *l = NULL;
    sl_error err;
    sl_error_clear(&err);
    optind = 1;
    while (rc == CMD_EXIT_OK && (c = cmd_getopt("listen", argc, argv, longs, &rc)) != -1) {
        switch (c) {
        case 's':
            uri = optarg;
            break;
        case 'l':
            if (cmd_parse_int(optarg, 50, 600000, &v))
                opt.lease_ms = v;
            else
                rc = cmd_usage_error("listen", "--lease-ms wants 50..600000, not '%s'", optarg);
            break;
        case 'b':
            if (cmd_parse_int(optarg, 1, 65536, &v))
                opt.batch_max = (size_t)v;
            else
                rc = cmd_usage_error("listen", "--batch wants 1..65536, not '%s'", optarg);
            break;
        case 'H':
            if (strlen(optarg) == 0 || strlen(optarg) > 100)
                rc = cmd_usage_error("listen", "--holder wants 1..100 characters");
            opt.holder = optarg;
            break;
        case 'e':
            if (!cmd_parse_int(optarg, 0, 86400, &stats_every))
                rc = cmd_usage_error("listen", "--stats-every wants 0..86400, not '%s'", optarg);
            break;
        case 'D':
            if (parse_debug_stop(optarg, &stop_at)) {
                opt.at = debug_stop_at;
                opt.at_ctx = &stop_at;
            } else {
                rc = cmd_usage_error("listen",
                                     "--debug-stop-at wants read, commit or committed, "
                                     "optionally with :N (1..1000000), not '%s'",
                                     optarg);
            }
            break;
        case 'h':
            usage(stdout);
            goto out;
        }
    }
    if (rc != CMD_EXIT_OK)
        goto out;

    /* Block the stop signals before the listener thread exists, so that it
     * inherits the mask and only sigtimedwait below receives them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    if (store_open(cmd_store_uri(uri), NULL, &s, &err) != SL_OK ||
        engine_listener_start(s, &opt, &l, &err) != SL_OK) {
        rc = cmd_report_error("listen", &err);
        goto out;
    }
    for (int sig = 0; sig != SIGTERM && sig != SIGINT;) {
        struct timespec wait = {stats_every ? (time_t)stats_every : 3600, 0};
        sig = sigtimedwait(&stop, NULL, &wait);
        if (sig < 0 && errno == EAGAIN && stats_every)
            print_stats(l);
    }
out:
    engine_listener_stop(&l);
    store_close(&s);
    return rc;
}
