/* simulate.c -- `sightline simulate SCENARIO.json -o FRAMES [--truth TRUTH]`:
 * the detections a real detector would emit for a scenario, and its ground
 * truth (cmd/simulate.h; docs/scenarios.md).  Each output is written beside
 * its final name and renamed into place when complete, so a failed run
 * leaves no half file behind (and an existing file is kept). */
#include "cmd.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "simulate.h"

#define SUB "simulate"

static void help(FILE *out)
{
    fprintf(out,
            "usage: sightline simulate SCENARIO.json -o FRAMES [--truth TRUTH.json]\n"
            "                          [--format darknet|ndjson] [--seed N] [--surgery FILE]\n"
            "       sightline simulate SCENARIO.json --truth TRUTH.json   (truth only)\n\n"
            "Writes what a real detector would emit, frame by frame, for the scrub-table\n"
            "scenario (tools put on the table, moved, picked up, put back or carried away,\n"
            "hands passing over it), with the realism the scenario asks for: missed\n"
            "detections and miss bursts, occlusion, false positives, box jitter, confidence\n"
            "noise, label variants.  The ground truth says what physically happened to each\n"
            "tool instance (opened, used, when it left and came back); it depends on the\n"
            "scenario alone, not on the seed.  Formats and definitions: docs/scenarios.md.\n\n"
            "options:\n"
            "  -o, --output FILE   the frames ('-': standard output)\n"
            "  --truth FILE        the ground truth (JSON)\n"
            "  --format F          darknet (darknet -out JSON, the default) or ndjson\n"
            "                      (Sightline NDJSON); both are what `sightline ingest` takes\n"
            "  --seed N            0..%lld (default: the scenario's \"seed\", else 1); the\n"
            "                      same scenario and seed give the same bytes\n"
            "  --surgery FILE      the scenario's surgery description (the body of\n"
            "                      PUT /v1/surgeries/{id}; ingest --format surgery)\n\n"
            "A summary line (frames, detections by kind, instances, the seed used) goes to\n"
            "standard output, or to standard error when the frames do.\n\n"
            "Exit codes: 0 written, 1 the scenario was refused (the message names the JSON\n"
            "path at fault) or a file could not be written, 2 bad usage.\n",
            (long long)INT64_MAX);
}

/* A file written under a temporary name beside path, renamed when done; or,
 * when path names something that is not a regular file (standard output,
 * /dev/null, a FIFO a reader waits on), written in place: renaming over it
 * would replace the device or FIFO by a file. */
typedef struct outfile {
    const char *path;
    char tmp[4096]; /* "" when written in place */
    FILE *f;
    bool is_stdout;
} outfile;

static sl_status outfile_open(outfile *o, const char *path, sl_error *err)
{
    sl_status rc = SL_OK;
    struct stat sb;
    int fd = -1;
    o->path = path;
    o->f = NULL;
    o->tmp[0] = '\0';
    if (!strcmp(path, "-")) {
        o->f = stdout;
        o->is_stdout = true;
        goto out;
    }
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        if (!(o->f = fopen(path, "wb")))
            rc = sl_error_set(err, SL_EIO, "%s: cannot open: %s", path, strerror(errno));
        goto out;
    }
    if (snprintf(o->tmp, sizeof o->tmp, "%s.XXXXXX", path) >= (int)sizeof o->tmp) {
        o->tmp[0] = '\0';
        rc = sl_error_set(err, SL_EINVAL, "%s: path too long", path);
        goto out;
    }
    if ((fd = mkstemp(o->tmp)) < 0) {
        o->tmp[0] = '\0';
        rc = sl_error_set(err, SL_EIO, "%s: cannot create: %s", path, strerror(errno));
        goto out;
    }
    /* mkstemp makes 0600; an output is an ordinary file (as the umask says) */
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0 || !(o->f = fdopen(fd, "wb"))) {
        rc = sl_error_set(err, SL_EIO, "%s: cannot create: %s", path, strerror(errno));
        close(fd);
        unlink(o->tmp);
        o->tmp[0] = '\0';
    }
out:
    return rc;
}

/* Closes; renames into place when ok, else removes the temporary file. */
static sl_status outfile_close(outfile *o, bool ok, sl_error *err)
{
    sl_status rc = SL_OK;
    if (!o->f)
        goto out;
    if (o->is_stdout) {
        if (fflush(o->f) != 0 && ok)
            rc = sl_error_set(err, SL_EIO, "standard output: %s", strerror(errno));
        goto out;
    }
    if (fclose(o->f) != 0 && ok)
        rc = sl_error_set(err, SL_EIO, "%s: cannot write: %s", o->path, strerror(errno));
    if (o->tmp[0] && ok && rc == SL_OK && rename(o->tmp, o->path) != 0)
        rc =
            sl_error_set(err, SL_EIO, "%s: cannot rename into place: %s", o->path, strerror(errno));
    if (o->tmp[0] && (!ok || rc != SL_OK))
        unlink(o->tmp);
out:
    o->f = NULL;
    return rc;
}

int cmd_simulate(int argc, char **argv)
{
    static const struct option longs[] = {{"output", required_argument, NULL, 'o'},
                                          {"truth", required_argument, NULL, 't'},
                                          {"format", required_argument, NULL, 'f'},
                                          {"seed", required_argument, NULL, 's'},
                                          {"surgery", required_argument, NULL, 'g'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    int rc = CMD_EXIT_OK, c;
    const char *frames_path = NULL, *truth_path = NULL, *surgery_path = NULL, *scenario = NULL;
    sim_format fmt = SIM_FORMAT_DARKNET;
    long long seed = 0;
    bool seed_given = false;
    sim_scenario *sc = NULL;
    outfile fo = {0}, to = {0}, so = {0};
    sl_error err;
    sl_error_clear(&err);
    if (cmd_help(argc, argv, help))
        goto out;
    optind = 1;
    opterr = 0;
    while (rc == CMD_EXIT_OK && (c = getopt_long(argc, argv, "ho:", longs, NULL)) != -1) {
        switch (c) {
        case 'o':
            frames_path = optarg;
            break;
        case 't':
            truth_path = optarg;
            break;
        case 'g':
            surgery_path = optarg;
            break;
        case 'f':
            if (!strcmp(optarg, "darknet"))
                fmt = SIM_FORMAT_DARKNET;
            else if (!strcmp(optarg, "ndjson"))
                fmt = SIM_FORMAT_NDJSON;
            else
                rc = cmd_usage_error(SUB, "--format is darknet or ndjson, not \"%s\"", optarg);
            break;
        case 's':
            if (!cmd_parse_int(optarg, 0, INT64_MAX, &seed))
                rc = cmd_usage_error(SUB, "--seed wants a whole number 0..%lld",
                                     (long long)INT64_MAX);
            seed_given = true;
            break;
        default:
            rc = cmd_usage_error(SUB, "unknown option or missing value: '%s'", argv[optind - 1]);
        }
    }
    if (rc != CMD_EXIT_OK)
        goto out;
    if (optind != argc - 1) {
        rc = cmd_usage_error(SUB, optind >= argc ? "name one SCENARIO.json"
                                                 : "name one SCENARIO.json, not several");
        goto out;
    }
    scenario = argv[optind];
    if (!frames_path && !truth_path && !surgery_path) {
        rc = cmd_usage_error(SUB, "nothing to write: give -o FRAMES, --truth FILE or --surgery "
                                  "FILE");
        goto out;
    }
    if ((truth_path && !strcmp(truth_path, "-")) || (surgery_path && !strcmp(surgery_path, "-"))) {
        rc = cmd_usage_error(SUB, "only the frames may go to standard output (-o -)");
        goto out;
    }
    if (sim_scenario_load(scenario, (uint64_t)seed, seed_given, &sc, &err) != SL_OK) {
        rc = cmd_report_error(SUB, &err);
        goto out;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sim_stats st = {0};
    sl_status s = SL_OK;
    if (frames_path) {
        if ((s = outfile_open(&fo, frames_path, &err)) == SL_OK)
            s = sim_frames_write(sc, fmt, fo.f, frames_path, &st, &err);
        sl_status closed = outfile_close(&fo, s == SL_OK, &err);
        if ((s = s == SL_OK ? closed : s) != SL_OK)
            goto fail;
    }
    if (truth_path) {
        if ((s = outfile_open(&to, truth_path, &err)) == SL_OK)
            s = sim_truth_write(sc, to.f, truth_path, &err);
        sl_status closed = outfile_close(&to, s == SL_OK, &err);
        if ((s = s == SL_OK ? closed : s) != SL_OK)
            goto fail;
    }
    if (surgery_path) {
        if ((s = outfile_open(&so, surgery_path, &err)) == SL_OK)
            s = sim_surgery_write(sc, so.f, surgery_path, &err);
        sl_status closed = outfile_close(&so, s == SL_OK, &err);
        if ((s = s == SL_OK ? closed : s) != SL_OK)
            goto fail;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    size_t used = 0;
    for (size_t i = 0; i < sc->ntools; i++)
        used += sc->tools[i].used;
    FILE *sum = fo.is_stdout ? stderr : stdout;
    fprintf(sum, "%s: scenario %s, seed %" PRIu64 ": %zu instances (%zu used)", scenario, sc->name,
            sc->seed, sc->ntools, used);
    if (frames_path)
        fprintf(sum,
                "; %" PRIu64 " frames (%" PRIu64 " empty), %" PRIu64 " detections (%" PRIu64
                " tools on the table, %" PRIu64 " seen off it, %" PRIu64 " occluders, %" PRIu64
                " false positives; %" PRIu64 " missed, %" PRIu64 " miss bursts, %" PRIu64
                " hidden by occluders, %" PRIu64 " variants) in %.2f s",
                st.frames, st.empty_frames, st.detections, st.tool_detections, st.seen_off_table,
                st.occluder_detections, st.false_positives, st.missed, st.bursts,
                st.occluded_hidden, st.variants, secs);
    fputc('\n', sum);
    goto out;
fail:
    rc = cmd_report_error(SUB, &err);
out:
    if (fo.f)
        (void)outfile_close(&fo, false, &err);
    if (to.f)
        (void)outfile_close(&to, false, &err);
    if (so.f)
        (void)outfile_close(&so, false, &err);
    sim_scenario_free(&sc);
    return rc;
}
