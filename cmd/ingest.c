/* ingest.c -- `sightline ingest`: detector outputs and asset scores from
 * files (one atomic batch per file, a summary line each), surgery and
 * catalog descriptions, or a spool folder watched until interrupted. */
#include "cmd.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ingest/ingest.h"

#define SUB      "ingest"
#define BODY_MAX (1u << 20) /* a surgery or catalog description */

static void help(FILE *out)
{
    fprintf(out,
            "usage: sightline ingest --tenant T --surgery ID --format FORMAT [options] FILE...\n"
            "       sightline ingest --tenant T --format assets FILE...\n"
            "       sightline ingest --tenant T --surgery ID --format surgery FILE\n"
            "       sightline ingest --tenant T --sku SKU --format catalog FILE\n"
            "       sightline ingest --watch DIR [--spool-owner UID|NAME|any]\n\n"
            "Each FILE is one atomic batch: all of it is stored, or nothing.  Re-sending a\n"
            "file changes nothing.  A summary line per file goes to standard output.\n\n"
            "formats (docs/formats.md):\n"
            "  darknet          darknet -out result.json (must be complete)\n"
            "  darknet-stream   darknet video demo JSON stream (may end between frames)\n"
            "  coco             COCO detection results (bbox in pixels)\n"
            "  tfod             TensorFlow Object Detection API output dicts\n"
            "  ndjson           Sightline NDJSON frames\n"
            "  assets           Sightline NDJSON brand asset scores\n"
            "  surgery          a surgery description (the PUT /v1/surgeries/{id} body)\n"
            "  catalog          a catalog entry (the PUT /v1/catalog/{sku} body), with --sku\n\n"
            "options:\n"
            "  --frame-offset N     add N to every frame number (may be negative)\n"
            "  --frame-from SRC     id (default: frame_id, image_id, frame) or filename\n"
            "                       (the last number in the image file name)\n"
            "  --categories FILE    class ids -> names for coco/tfod (default: COCO 91 ids)\n"
            "  --image-size WxH     COCO pixel size (default: the surgery's frame size)\n"
            "  --watch DIR          ingest files dropped into DIR/<tenant>/<surgery>/ and\n"
            "                       DIR/<tenant>/assets/, then move them to done/ or failed/;\n"
            "                       links, hard links, FIFOs and files of another owner are\n"
            "                       refused unread (docs/formats.md, spool folder)\n"
            "  --spool-owner WHO    with --watch: take files owned by WHO only, a user name\n"
            "                       or uid, or 'any' (default: the user running the watcher)\n"
            "  --store URI          default $SIGHTLINE_STORE or %s\n\n"
            "Exit codes: 0 every file stored, 1 a file refused or the store failed, 2 bad\n"
            "usage.\n",
            CMD_DEFAULT_STORE);
}

typedef struct ingest_args {
    const char *tenant, *surgery, *format, *offset, *frame_from, *categories, *image_size, *store,
        *watch, *sku, *spool_owner;
    int nfiles;
    char **files;
} ingest_args;

static int parse(int argc, char **argv, ingest_args *a)
{
    int rc = CMD_EXIT_OK;
    memset(a, 0, sizeof *a);
    a->files = calloc((size_t)argc, sizeof *a->files); /* freed by cmd_ingest */
    if (!a->files)
        rc = cmd_usage_error(SUB, "out of memory");
    bool files_only = false;
    for (int i = 1; i < argc && rc == CMD_EXIT_OK; i++) {
        const char *s = argv[i];
        const char **slot = files_only                     ? NULL
                            : !strcmp(s, "--tenant")       ? &a->tenant
                            : !strcmp(s, "--surgery")      ? &a->surgery
                            : !strcmp(s, "--format")       ? &a->format
                            : !strcmp(s, "--frame-offset") ? &a->offset
                            : !strcmp(s, "--frame-from")   ? &a->frame_from
                            : !strcmp(s, "--categories")   ? &a->categories
                            : !strcmp(s, "--image-size")   ? &a->image_size
                            : !strcmp(s, "--store")        ? &a->store
                            : !strcmp(s, "--watch")        ? &a->watch
                            : !strcmp(s, "--sku")          ? &a->sku
                            : !strcmp(s, "--spool-owner")  ? &a->spool_owner
                                                           : NULL;
        if (slot) {
            if (i + 1 >= argc)
                rc = cmd_usage_error(SUB, "%s needs a value", s);
            else
                *slot = argv[++i];
        } else if (!files_only && !strcmp(s, "--")) {
            files_only = true;
        } else if (!files_only && s[0] == '-' && s[1]) {
            rc = cmd_usage_error(SUB, "unknown option '%s'", s);
        } else {
            a->files[a->nfiles++] = argv[i];
        }
    }
    return rc;
}

/* ---------------------------------------------------------------------------
 * Progress bar on stderr, when it is a terminal.
 * ------------------------------------------------------------------------- */
typedef struct progress {
    const char *name;
    struct timespec start;
    bool shown;
} progress;

static double seconds_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    progress *p = ctx;
    double s = seconds_since(&p->start);
    double mb = (double)done / 1e6;
    char bar[31];
    int fill = total ? (int)(30.0 * (double)done / (double)total) : 0;
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    fprintf(stderr, "\r%-24.24s [%s] %3d%% %8.1f MB %6.1f MB/s", p->name, bar,
            total ? (int)(100.0 * (double)done / (double)total) : 0, mb, s > 0 ? mb / s : 0.0);
    p->shown = true;
}

static void progress_clear(progress *p)
{
    if (p->shown)
        fprintf(stderr, "\r%-90s\r", "");
}

/* ---------------------------------------------------------------------------
 * One file of detections or assets.
 * ------------------------------------------------------------------------- */
static const char *plural(uint64_t n)
{
    return n == 1 ? "" : "s";
}

static void print_summary(const char *file, const ingest_summary *s, bool assets)
{
    if (assets) {
        printf("%s: %llu asset%s, %llu changed\n", file, (unsigned long long)s->assets,
               plural(s->assets), (unsigned long long)s->changed);
        return;
    }
    printf("%s: %llu frame%s (%llu empty), %llu detection%s, %llu unmapped", file,
           (unsigned long long)s->frames, plural(s->frames), (unsigned long long)s->empty_frames,
           (unsigned long long)s->detections, plural(s->detections),
           (unsigned long long)s->unmapped);
    if (s->unmapped_labels)
        printf(" in %u label%s", s->unmapped_labels, plural(s->unmapped_labels));
    for (uint32_t i = 0; i < s->unmapped_labels && i < INGEST_UNMAPPED_SHOWN; i++)
        printf("%s%s", i ? ", " : " (", s->unmapped_names[i]);
    if (s->unmapped_labels > INGEST_UNMAPPED_SHOWN)
        printf(", ...");
    if (s->frames)
        printf("%s, frames %lld-%lld", s->unmapped_labels ? ")" : "", (long long)s->first_frame,
               (long long)s->last_frame);
    printf(", %llu changed\n", (unsigned long long)s->changed);
}

static int ingest_files(store *st, const ingest_args *a, ingest_request *rq)
{
    int rc = CMD_EXIT_OK;
    bool tty = isatty(STDERR_FILENO);
    for (int i = 0; i < a->nfiles; i++) {
        ingest_summary sum;
        sl_error err;
        sl_error_clear(&err);
        progress p = {.name = a->files[i]};
        clock_gettime(CLOCK_MONOTONIC, &p.start);
        sl_status s = ingest_file(st, rq, a->files[i], tty ? on_progress : NULL, &p, &sum, &err);
        progress_clear(&p);
        if (s != SL_OK) {
            sl_error_prefix(&err, "%s", a->files[i]);
            rc = cmd_report_error(SUB, &err);
            continue;
        }
        print_summary(a->files[i], &sum, rq->format == INGEST_FORMAT_ASSETS);
        fflush(stdout);
    }
    return rc;
}

/* ---------------------------------------------------------------------------
 * Surgery and catalog descriptions.
 * ------------------------------------------------------------------------- */
static int put_description(store *st, const ingest_args *a, bool surgery)
{
    int rc = CMD_EXIT_OK;
    char *body = malloc(BODY_MAX + 1);
    FILE *f = NULL;
    sl_error err;
    sl_error_clear(&err);
    if (!body) {
        rc = cmd_usage_error(SUB, "out of memory");
        goto out;
    }
    f = fopen(a->files[0], "rb");
    if (!f) {
        sl_error_set(&err, SL_EIO, "%s: cannot open: %s", a->files[0], strerror(errno));
        rc = cmd_report_error(SUB, &err);
        goto out;
    }
    size_t n = fread(body, 1, BODY_MAX + 1, f);
    if (n > BODY_MAX) {
        sl_error_set(&err, SL_ETOOLARGE, "%s: larger than %u bytes", a->files[0], BODY_MAX);
        rc = cmd_report_error(SUB, &err);
        goto out;
    }
    store_put_result res = {0};
    sl_status s = surgery ? ingest_surgery_put(st, a->tenant, a->surgery, body, n, &res, &err)
                          : ingest_catalog_put(st, a->tenant, a->sku, body, n, &res, &err);
    if (s != SL_OK) {
        sl_error_prefix(&err, "%s", a->files[0]);
        rc = cmd_report_error(SUB, &err);
        goto out;
    }
    printf("%s: %s %s, version %lld%s\n", a->files[0], surgery ? "surgery" : "catalog entry",
           surgery ? a->surgery : a->sku, (long long)res.version,
           res.changed ? "" : " (unchanged)");
out:
    if (f)
        fclose(f);
    free(body);
    return rc;
}

/* ---------------------------------------------------------------------------
 * The spool folder.
 * ------------------------------------------------------------------------- */
typedef struct spool_run {
    ingest_spool *sp;
    sl_error err;
    sl_status rc;
} spool_run;

/* Runs the spool; on its own failure wakes the main thread's sigwait(). */
static void *spool_thread(void *arg)
{
    spool_run *r = arg;
    r->rc = ingest_spool_run(r->sp, -1, &r->err);
    if (r->rc != SL_OK)
        kill(getpid(), SIGTERM);
    return NULL;
}

/* A file stored, refused, or stored but not moved (both sum and e). */
static void on_spooled(void *ctx, const char *path, const ingest_summary *sum, const sl_error *e)
{
    (void)ctx;
    if (sum) {
        print_summary(path, sum, sum->frames == 0 && sum->assets > 0);
        fflush(stdout);
    }
    if (e) {
        sl_error copy = *e;
        sl_error_prefix(&copy, "%s", path);
        (void)cmd_report_error(SUB, &copy);
    }
}

static int watch(store *st, const ingest_args *a)
{
    int rc = CMD_EXIT_OK;
    sl_error err;
    sl_error_clear(&err);
    ingest_spool *sp = NULL;
    ingest_catalog_cache *cc = NULL;
    if (ingest_catalog_cache_new(&cc, &err) != SL_OK) {
        rc = cmd_report_error(SUB, &err);
        goto out;
    }
    ingest_spool_options o = {.catalogs = cc, .on_file = on_spooled};
    if (a->spool_owner && ingest_spool_owner_parse(a->spool_owner, &o, &err) != SL_OK) {
        rc = cmd_usage_error(SUB, "--spool-owner: %s", err.message);
        goto out;
    }
    if (ingest_spool_open(st, a->watch, &o, &sp, &err) != SL_OK) {
        rc = cmd_report_error(SUB, &err);
        goto out;
    }
    /* Signals are taken by sigwait() here, not by a handler: no global state. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    spool_run r = {.sp = sp};
    sl_error_clear(&r.err);
    pthread_t th;
    if (pthread_create(&th, NULL, spool_thread, &r) != 0) {
        sl_error_set(&err, SL_EINTERNAL, "cannot start the spool thread");
        rc = cmd_report_error(SUB, &err);
        goto out;
    }
    fprintf(stderr, "sightline ingest: watching %s (Ctrl-C to stop)\n", a->watch);
    int sig;
    sigwait(&set, &sig);
    ingest_spool_stop(sp);
    pthread_join(th, NULL);
    if (r.rc != SL_OK)
        rc = cmd_report_error(SUB, &r.err);
    fprintf(stderr, "sightline ingest: %llu files taken, %llu failed\n",
            (unsigned long long)ingest_spool_taken(sp),
            (unsigned long long)ingest_spool_failed(sp));
out:
    ingest_spool_close(&sp);
    ingest_catalog_cache_free(&cc);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Entry.
 * ------------------------------------------------------------------------- */
int cmd_ingest(int argc, char **argv)
{
    int rc = CMD_EXIT_OK;
    ingest_args a = {0};
    store *st = NULL;
    ingest_categories *cats = NULL;
    sl_error err;
    sl_error_clear(&err);
    if (cmd_help(argc, argv, help) || (rc = parse(argc, argv, &a)) != CMD_EXIT_OK)
        goto out;
    ingest_request rq = {.tenant = a.tenant, .surgery = a.surgery};
    bool surgery_put = a.format && !strcmp(a.format, "surgery");
    bool catalog_put = a.format && !strcmp(a.format, "catalog");
    if (a.spool_owner && !a.watch) {
        rc = cmd_usage_error(SUB, "--spool-owner goes with --watch");
        goto out;
    }
    if (a.watch) {
        if (a.nfiles || a.format || a.tenant) {
            rc = cmd_usage_error(
                SUB, "--watch takes only --store and --spool-owner: the folders name the rest");
            goto out;
        }
    } else if (!a.tenant || !a.format) {
        rc = cmd_usage_error(SUB, "--tenant and --format are required");
        goto out;
    } else if (a.nfiles == 0) {
        rc = cmd_usage_error(SUB, "name at least one FILE");
        goto out;
    } else if ((surgery_put || catalog_put) && a.nfiles != 1) {
        rc = cmd_usage_error(SUB, "--format %s takes exactly one FILE", a.format);
        goto out;
    } else if (surgery_put && !a.surgery) {
        rc = cmd_usage_error(SUB, "--format surgery needs --surgery ID");
        goto out;
    } else if (catalog_put && !a.sku) {
        rc = cmd_usage_error(SUB, "--format catalog needs --sku SKU");
        goto out;
    } else if (!surgery_put && !catalog_put) {
        if (ingest_format_parse(a.format, &rq.format, &err) != SL_OK) {
            rc = cmd_usage_error(SUB, "%s", err.message);
            goto out;
        }
        if (rq.format != INGEST_FORMAT_ASSETS && !a.surgery) {
            rc = cmd_usage_error(SUB, "--format %s needs --surgery ID", a.format);
            goto out;
        }
        if (rq.format == INGEST_FORMAT_ASSETS && a.surgery) {
            rc = cmd_usage_error(SUB, "assets belong to no surgery: drop --surgery");
            goto out;
        }
        long long v;
        if (a.offset) {
            if (!cmd_parse_int(a.offset, -(long long)SCHEMA_FRAME_MAX, SCHEMA_FRAME_MAX, &v)) {
                rc = cmd_usage_error(SUB, "--frame-offset wants a whole number within +-%u",
                                     SCHEMA_FRAME_MAX);
                goto out;
            }
            rq.frame_offset = v;
        }
        if (a.frame_from && !strcmp(a.frame_from, "filename"))
            rq.frame_source = INGEST_FRAME_FROM_FILENAME;
        else if (a.frame_from && strcmp(a.frame_from, "id")) {
            rc = cmd_usage_error(SUB, "--frame-from is id or filename");
            goto out;
        }
        if (a.image_size) {
            unsigned w = 0, h = 0;
            char x = 0, extra = 0;
            if (sscanf(a.image_size, "%u%c%u%c", &w, &x, &h, &extra) != 3 || x != 'x' || !w || !h ||
                w > 100000 || h > 100000) {
                rc = cmd_usage_error(SUB, "--image-size wants WIDTHxHEIGHT in pixels");
                goto out;
            }
            rq.image_width = w;
            rq.image_height = h;
        }
        if (a.categories) {
            if (ingest_categories_load(a.categories, NULL, &cats, &err) != SL_OK) {
                rc = cmd_report_error(SUB, &err);
                goto out;
            }
            rq.categories = cats;
        }
    }
    if (store_open(cmd_store_uri(a.store), NULL, &st, &err) != SL_OK) {
        rc = cmd_report_error(SUB, &err);
        goto out;
    }
    if (a.watch)
        rc = watch(st, &a);
    else if (surgery_put || catalog_put)
        rc = put_description(st, &a, surgery_put);
    else
        rc = ingest_files(st, &a, &rq);
out:
    store_close(&st);
    ingest_categories_free(&cats);
    free(a.files);
    return rc;
}
