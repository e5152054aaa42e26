/* sim_test.h -- what the simulator and evaluate tests share: the real binary
 * run with stdout and stderr into files (exit code and both texts back),
 * small files written from strings, scenario templates with the committed
 * catalog, and a reader of Sightline NDJSON frames (what `simulate --format
 * ndjson` writes) that hands each detection to a callback. */
#ifndef SIGHTLINE_TESTS_SIM_TEST_H
#define SIGHTLINE_TESTS_SIM_TEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <yajl/yajl_tree.h>

#include "tests/check.h"
#include "tests/support/support.h"

#define SIM_CATALOG   SL_FIXTURES "/scenarios/catalog"
#define SIM_SCENARIOS SL_FIXTURES "/scenarios"

static char sim_dir[128]; /* the test's temporary directory */

typedef struct sim_run_result {
    int code;
    char out[32768], err[16384];
} sim_run_result;

static inline void sim_read_into(const char *path, char *buf, size_t n)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    size_t got = fread(buf, 1, n - 1, f);
    buf[got] = '\0';
    fclose(f);
}

/* Runs `sightline ARGS...` (NULL-terminated) to completion (10 minutes at
 * most); stdout and stderr into r. */
static inline void sim_runv(sim_run_result *r, const char *const *args)
{
    char out[192], err[192];
    snprintf(out, sizeof out, "%s/stdout.txt", sim_dir);
    snprintf(err, sizeof err, "%s/stderr.txt", sim_dir);
    pid_t pid = support_spawn(out, err, SUPPORT_TRUNCATE | SUPPORT_KEEP_STORE, args);
    REQUIRE(pid >= 0);
    r->code = support_wait(pid, 600000);
    REQUIRE(r->code != -1);
    sim_read_into(out, r->out, sizeof r->out);
    sim_read_into(err, r->err, sizeof r->err);
}

#define SIM_RUN(r, ...)                                                                            \
    do {                                                                                           \
        const char *a_[] = {__VA_ARGS__, NULL};                                                    \
        sim_runv(r, a_);                                                                           \
    } while (0)

/* A path in the test's directory, in one of 8 static buffers used in turn:
 * copy it to keep it past the next few calls. */
static inline const char *sim_path(const char *name)
{
    static char bufs[8][256];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, 256, "%s/%s", sim_dir, name);
    return b;
}

static inline void sim_write(const char *path, const char *fmt, ...)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f != NULL);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    REQUIRE(fclose(f) == 0);
}

static inline bool sim_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* A scenario file at name (in the test's directory) with the committed
 * catalog, 1280x720 at 30 frames/s, the usual table, the given duration and
 * the rest of the top-level members as JSON text (without braces). */
static inline const char *sim_scenario(const char *name, double duration_s, const char *rest)
{
    const char *path = sim_path(name);
    sim_write(path,
              "{\"catalog\": \"%s\", \"fps\": 30, \"frame_width\": 1280, \"frame_height\": 720, "
              "\"duration_s\": %g, \"table\": [[0.04, 0.46], [0.96, 0.46], [0.98, 0.98], "
              "[0.02, 0.98]]%s%s}\n",
              SIM_CATALOG, duration_s, rest[0] ? ", " : "", rest);
    return path;
}

/* One detection of an NDJSON frame. */
typedef struct sim_det {
    long long frame;
    const char *label;
    double conf, x, y, w, h;
} sim_det;

typedef void (*sim_det_fn)(void *ctx, const sim_det *d);
typedef void (*sim_frame_fn)(void *ctx, long long frame, size_t count);

/* Reads the NDJSON frames at path; calls on_det for every detection and
 * on_frame (may be NULL) once per frame.  Returns the number of frames. */
static inline long long sim_read_ndjson(const char *path, sim_det_fn on_det, sim_frame_fn on_frame,
                                        void *ctx)
{
    FILE *f = fopen(path, "rb");
    REQUIRE(f != NULL);
    char *line = NULL, why[256];
    size_t cap = 0;
    long long frames = 0;
    while (getline(&line, &cap, f) > 0) {
        yajl_val v = yajl_tree_parse(line, why, sizeof why);
        REQUIRE(v != NULL);
        const char *fp[] = {"frame", NULL}, *dp[] = {"detections", NULL};
        yajl_val fr = yajl_tree_get(v, fp, yajl_t_number),
                 dets = yajl_tree_get(v, dp, yajl_t_array);
        REQUIRE(fr && dets);
        sim_det d = {.frame = YAJL_GET_INTEGER(fr)};
        for (size_t i = 0; i < dets->u.array.len; i++) {
            yajl_val o = dets->u.array.values[i];
            const char *lp[] = {"label", NULL}, *cp[] = {"confidence", NULL};
            const char *bx[] = {"box", "x", NULL}, *by[] = {"box", "y", NULL},
                       *bw[] = {"box", "w", NULL}, *bh[] = {"box", "h", NULL};
            d.label = YAJL_GET_STRING(yajl_tree_get(o, lp, yajl_t_string));
            d.conf = YAJL_GET_DOUBLE(yajl_tree_get(o, cp, yajl_t_number));
            d.x = YAJL_GET_DOUBLE(yajl_tree_get(o, bx, yajl_t_number));
            d.y = YAJL_GET_DOUBLE(yajl_tree_get(o, by, yajl_t_number));
            d.w = YAJL_GET_DOUBLE(yajl_tree_get(o, bw, yajl_t_number));
            d.h = YAJL_GET_DOUBLE(yajl_tree_get(o, bh, yajl_t_number));
            if (on_det)
                on_det(ctx, &d);
        }
        if (on_frame)
            on_frame(ctx, d.frame, dets->u.array.len);
        frames++;
        yajl_tree_free(v);
    }
    free(line);
    fclose(f);
    return frames;
}

/* The truth file at path, parsed (yajl_tree_free it). */
static inline yajl_val sim_truth(const char *path)
{
    char why[256];
    char *text = support_read_file(path, &(size_t){0});
    REQUIRE(text != NULL);
    yajl_val v = yajl_tree_parse(text, why, sizeof why);
    free(text);
    REQUIRE(v != NULL);
    return v;
}

/* The truth's instance of sku and number n, or NULL. */
static inline yajl_val sim_truth_instance(yajl_val truth, const char *sku, long long n)
{
    const char *ip[] = {"instances", NULL}, *sp[] = {"sku", NULL}, *np[] = {"instance", NULL};
    yajl_val a = yajl_tree_get(truth, ip, yajl_t_array);
    for (size_t i = 0; a && i < a->u.array.len; i++) {
        yajl_val o = a->u.array.values[i];
        const char *s = YAJL_GET_STRING(yajl_tree_get(o, sp, yajl_t_string));
        yajl_val k = yajl_tree_get(o, np, yajl_t_number);
        if (s && k && !strcmp(s, sku) && YAJL_GET_INTEGER(k) == n)
            return o;
    }
    return NULL;
}

/* A member of an object as an integer, -1 for null, -2 when absent. */
static inline long long sim_int(yajl_val o, const char *key)
{
    const char *p[] = {key, NULL};
    yajl_val v = yajl_tree_get(o, p, yajl_t_any);
    if (!v)
        return -2;
    if (YAJL_IS_NULL(v))
        return -1;
    if (YAJL_IS_TRUE(v))
        return 1;
    if (YAJL_IS_FALSE(v))
        return 0;
    return YAJL_IS_INTEGER(v) ? YAJL_GET_INTEGER(v) : -3;
}

static inline long long sim_total(yajl_val truth, const char *key)
{
    const char *p[] = {"totals", key, NULL};
    yajl_val v = yajl_tree_get(truth, p, yajl_t_number);
    return v ? YAJL_GET_INTEGER(v) : -2;
}

/* PUTs every entry of the committed catalog (fixtures/scenarios/catalog/
 * SKU.json) for tenant through `sightline ingest --format catalog`; returns
 * how many. */
static inline int sim_put_catalog(const char *uri, const char *tenant)
{
    DIR *d = opendir(SIM_CATALOG);
    REQUIRE(d != NULL);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t l = strlen(e->d_name);
        if (l <= 5 || strcmp(e->d_name + l - 5, ".json"))
            continue;
        char sku[128], file[512], out[1024];
        snprintf(sku, sizeof sku, "%.*s", (int)(l - 5), e->d_name);
        snprintf(file, sizeof file, "%s/%s", SIM_CATALOG, e->d_name);
        const char *args[] = {"ingest", "--store",  uri,       "--tenant", tenant, "--sku",
                              sku,      "--format", "catalog", file,       NULL};
        REQUIRE(support_run(out, sizeof out, 0, args) == 0);
        n++;
    }
    closedir(d);
    return n;
}

#endif
