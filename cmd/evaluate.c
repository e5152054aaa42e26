/* evaluate.c -- `sightline evaluate`: how well tool-usage results match a
 * scenario's ground truth (cmd/evaluate.h; docs/scenarios.md, "Evaluate").
 *
 * Per scenario: precision, recall and F1 of "used" over instances (analyzer
 * instances matched to truth instances of the same SKU by slot and time), the
 * waste cost's relative error, and the error of the departure frames of the
 * instances both call used.  Overall: the same pooled over every scenario.
 * Thresholds (--min-f1, --max-waste-error) decide the exit code. */
#include "cmd.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "evaluate.h"

#define SUB "evaluate"

#define DEFAULT_MATCH_DISTANCE 0.1 /* normalized: twice a tool's size on a 1280x720 picture */

static void help(FILE *out)
{
    fprintf(
        out,
        "usage: sightline evaluate --truth TRUTH.json --usage RESULTS.json [options]\n"
        "       sightline evaluate --truth TRUTH.json --tenant T --surgery S [--store URI]\n"
        "       sightline evaluate --truth DIR --usage-dir DIR [options]\n"
        "       sightline evaluate --truth DIR --tenant T [--surgery-prefix P] [--store URI]\n\n"
        "Compares tool-usage results with the ground truth `sightline simulate --truth`\n"
        "wrote, and prints per scenario and overall: instances and used instances of\n"
        "the truth and of the results, true and false positives and false negatives of\n"
        "\"used\", precision, recall and F1, the waste cost of each side and its relative\n"
        "error, and the mean and largest error of the departure frame (docs/scenarios.md).\n\n"
        "Results:\n"
        "  --usage FILE          a GET /v1/surgeries/{id}/usage answer (per-SKU counts),\n"
        "                        or per-instance results: an array of tool results\n"
        "                        ({sku, used, opened, left_frame, first_seen_frame, slot,\n"
        "                        ...}) or an object holding one under \"tools\",\n"
        "                        \"results\" or \"instances\"\n"
        "  --tenant T --surgery S  the surgery's TOOL#<sku>#<n> documents and SUMMARY,\n"
        "                        read through the store (--store URI, default\n"
        "                        $SIGHTLINE_STORE or %s)\n"
        "  With --truth DIR (every DIR/*.truth.json): --usage-dir UDIR reads\n"
        "  UDIR/<scenario>.json; --tenant T reads the surgery <prefix><scenario>\n"
        "  (--surgery-prefix P, default none).  --truth-dir DIR is --truth DIR.\n\n"
        "options:\n"
        "  --min-f1 X            fail when the overall F1 of \"used\" is below X (0..1), or\n"
        "                        when a scenario where nothing was used gets a used tool\n"
        "  --max-waste-error X   fail when a scenario's waste error is above X (a\n"
        "                        fraction: 0.02 is 2%%)\n"
        "  --match-distance D    farthest a result's slot may lie from a truth slot (centre\n"
        "                        to centre, normalized) to be the same instance (default\n"
        "                        %.2f)\n"
        "  --json                print the figures as JSON instead of a table\n\n"
        "Exit codes: 0 every threshold met (or none given), 1 a file or the store could\n"
        "not be read, 2 bad usage, 4 a threshold not met.\n",
        CMD_DEFAULT_STORE, DEFAULT_MATCH_DISTANCE);
}

/* ---------------------------------------------------------------------------
 * Scores.
 * ------------------------------------------------------------------------- */
typedef struct score {
    const char *scenario;
    bool counts_only;
    int64_t truth_inst, truth_used, result_inst, result_used;
    int64_t tp, fp, fn;
    int64_t waste_truth, waste_result;
    int64_t dep_n, dep_max;
    double dep_sum;
} score;

static double ratio(int64_t num, int64_t den)
{
    return den ? (double)num / (double)den : 1.0; /* nothing claimed (or to find): nothing wrong */
}

static double precision(const score *s)
{
    return ratio(s->tp, s->tp + s->fp);
}

static double recall(const score *s)
{
    return ratio(s->tp, s->tp + s->fn);
}

static double f1(const score *s)
{
    double p = precision(s), r = recall(s);
    return p + r > 0 ? 2 * p * r / (p + r) : 0.0;
}

static double waste_error(int64_t truth, int64_t result)
{
    if (truth == 0)
        return result == 0 ? 0.0 : INFINITY;
    return fabs((double)result - (double)truth) / (double)truth;
}

/* ---------------------------------------------------------------------------
 * Matching: per SKU, greedy by cost (centre distance of the slots plus the
 * difference of the first frames, one minute weighing as much as the width of
 * the picture), each truth and each result instance used once; a pair whose
 * slots lie farther apart than max_distance is no match.
 * ------------------------------------------------------------------------- */
typedef struct pair {
    double cost;
    size_t t, a;
} pair;

static int pair_cmp(const void *x, const void *y)
{
    const pair *p = x, *q = y;
    if (p->cost != q->cost)
        return p->cost < q->cost ? -1 : 1;
    if (p->t != q->t)
        return p->t < q->t ? -1 : 1;
    return p->a < q->a ? -1 : p->a > q->a ? 1 : 0;
}

static double centre_distance(const ev_box *a, const ev_box *b)
{
    double dx = (a->x + a->w / 2) - (b->x + b->w / 2), dy = (a->y + a->h / 2) - (b->y + b->h / 2);
    return sqrt(dx * dx + dy * dy);
}

/* Sets match[t] to the result instance paired with truth instance t, or -1. */
static sl_status match(const ev_truth *t, const ev_result *r, double max_distance, long *match,
                       sl_error *err)
{
    sl_status rc = SL_OK;
    size_t n = 0, cap = 0;
    pair *pairs = NULL;
    bool *taken = calloc(r->n + 1, sizeof *taken);
    if (!taken) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < t->n; i++) {
        match[i] = -1;
        const ev_inst *ti = &t->inst[i];
        for (size_t j = 0; ti->opened && j < r->n; j++) {
            const ev_inst *aj = &r->inst[j];
            if (!aj->opened || strcmp(ti->sku, aj->sku))
                continue;
            double cost = 0;
            if (aj->nslots && ti->nslots) {
                double d = INFINITY;
                for (size_t k = 0; k < ti->nslots; k++)
                    d = fmin(d, centre_distance(&ti->slots[k], &aj->slots[0]));
                if (d > max_distance)
                    continue;
                cost += d;
            }
            if (aj->first_frame >= 0 && ti->first_frame >= 0)
                cost += fabs((double)(aj->first_frame - ti->first_frame)) / (60.0 * t->fps);
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                pair *p = realloc(pairs, cap * sizeof *p);
                if (!p) {
                    rc = sl_error_set(err, SL_ENOMEM, "out of memory");
                    goto out;
                }
                pairs = p;
            }
            pairs[n++] = (pair){cost, i, j};
        }
    }
    if (n) /* qsort(NULL, 0, ...) is undefined: a surgery whose analysis opened nothing */
        qsort(pairs, n, sizeof *pairs, pair_cmp);
    for (size_t k = 0; k < n; k++)
        if (match[pairs[k].t] < 0 && !taken[pairs[k].a]) {
            match[pairs[k].t] = (long)pairs[k].a;
            taken[pairs[k].a] = true;
        }
out:
    free(pairs);
    free(taken);
    return rc;
}

static const ev_sku *truth_sku(const ev_truth *t, const char *sku)
{
    for (size_t i = 0; i < t->nskus; i++)
        if (!strcmp(t->skus[i].sku, sku))
            return &t->skus[i];
    return NULL;
}

/* The waste of result instances: unused single-use ones at their unit cost
 * (their own figures when given, else the truth's catalog). */
static int64_t result_waste(const ev_truth *t, const ev_result *r)
{
    int64_t w = 0;
    for (size_t j = 0; j < r->n; j++) {
        const ev_inst *a = &r->inst[j];
        const ev_sku *k = truth_sku(t, a->sku);
        bool single = a->single_use >= 0 ? a->single_use : k ? k->single_use : true;
        int64_t cost = a->unit_cost_cents >= 0 ? a->unit_cost_cents : k ? k->unit_cost_cents : 0;
        if (a->opened && !a->used && single)
            w += cost;
    }
    return w;
}

static sl_status score_one(const ev_truth *t, const ev_result *r, double max_distance, score *s,
                           sl_error *err)
{
    sl_status rc = SL_OK;
    long *m = NULL;
    *s = (score){
        .scenario = t->scenario, .counts_only = r->counts_only, .waste_truth = t->waste_cents};
    for (size_t i = 0; i < t->n; i++) {
        s->truth_inst += t->inst[i].opened;
        s->truth_used += t->inst[i].used;
    }
    if (r->counts_only) {
        /* per SKU: as many true positives as both sides count */
        for (size_t k = 0; k < r->nskus; k++) {
            s->result_inst += r->skus[k].opened;
            s->result_used += r->skus[k].used;
        }
        for (size_t i = 0; i < t->nskus; i++) {
            int64_t tu = 0, ru = 0;
            for (size_t j = 0; j < t->n; j++)
                tu += t->inst[j].used && !strcmp(t->inst[j].sku, t->skus[i].sku);
            for (size_t k = 0; k < r->nskus; k++)
                if (!strcmp(r->skus[k].sku, t->skus[i].sku))
                    ru += r->skus[k].used;
            s->tp += tu < ru ? tu : ru;
            s->fn += tu > ru ? tu - ru : 0;
        }
        s->fp = s->result_used - s->tp;
        s->waste_result = r->waste_cents;
        goto out;
    }
    if (!(m = calloc(t->n + 1, sizeof *m))) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = match(t, r, max_distance, m, err)) != SL_OK)
        goto out;
    for (size_t j = 0; j < r->n; j++) {
        s->result_inst += r->inst[j].opened;
        s->result_used += r->inst[j].opened && r->inst[j].used;
    }
    for (size_t i = 0; i < t->n; i++) {
        const ev_inst *ti = &t->inst[i];
        const ev_inst *a = m[i] >= 0 ? &r->inst[m[i]] : NULL;
        bool au = a && a->used;
        if (ti->used && au) {
            s->tp++;
            if (a->left_frame >= 0) {
                int64_t e = llabs(a->left_frame - ti->left_frame);
                s->dep_n++;
                s->dep_sum += (double)e;
                if (e > s->dep_max)
                    s->dep_max = e;
            }
        } else if (ti->used) {
            s->fn++;
        }
    }
    s->fp = s->result_used - s->tp; /* used but matched to an unused instance, or to none */
    s->waste_result = r->has_waste ? r->waste_cents : result_waste(t, r);
out:
    free(m);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Printing.
 * ------------------------------------------------------------------------- */
static void print_header(void)
{
    printf("%-28s %9s %9s %4s %4s %4s %9s %6s %6s %11s %11s %9s %8s %7s\n", "scenario", "truth",
           "result", "tp", "fp", "fn", "precision", "recall", "f1", "waste", "waste", "waste",
           "dep.err", "dep.err");
    printf("%-28s %9s %9s %4s %4s %4s %9s %6s %6s %11s %11s %9s %8s %7s\n", "", "used/inst",
           "used/inst", "", "", "", "", "", "", "truth", "result", "error", "mean", "max");
}

static void fmt_err(char *buf, size_t n, double e)
{
    if (isinf(e))
        snprintf(buf, n, "inf");
    else
        snprintf(buf, n, "%.2f%%", e * 100.0);
}

static void print_row(const score *s, const char *name)
{
    char tu[32], ru[32], we[32], dm[32], dx[32], nm[64];
    snprintf(nm, sizeof nm, "%s%s", name, s->counts_only ? " [counts]" : "");
    snprintf(tu, sizeof tu, "%lld/%lld", (long long)s->truth_used, (long long)s->truth_inst);
    snprintf(ru, sizeof ru, "%lld/%lld", (long long)s->result_used, (long long)s->result_inst);
    fmt_err(we, sizeof we, waste_error(s->waste_truth, s->waste_result));
    if (s->dep_n) {
        snprintf(dm, sizeof dm, "%.1f", s->dep_sum / (double)s->dep_n);
        snprintf(dx, sizeof dx, "%lld", (long long)s->dep_max);
    } else {
        snprintf(dm, sizeof dm, "-");
        snprintf(dx, sizeof dx, "-");
    }
    printf("%-28s %9s %9s %4lld %4lld %4lld %9.3f %6.3f %6.3f %11lld %11lld %9s %8s %7s\n", nm, tu,
           ru, (long long)s->tp, (long long)s->fp, (long long)s->fn, precision(s), recall(s), f1(s),
           (long long)s->waste_truth, (long long)s->waste_result, we, dm, dx);
}

static void json_num(const char *key, double v, bool comma)
{
    if (isfinite(v))
        printf("\"%s\": %.6g%s", key, v, comma ? ", " : "");
    else
        printf("\"%s\": null%s", key, comma ? ", " : "");
}

static void print_json_score(const score *s, const char *name, double worst_waste)
{
    printf("{\"scenario\": \"%s\", \"counts_only\": %s, \"truth_instances\": %lld, \"truth_used\": "
           "%lld, \"result_instances\": %lld, \"result_used\": %lld, \"tp\": %lld, \"fp\": %lld, "
           "\"fn\": %lld, ",
           name, s->counts_only ? "true" : "false", (long long)s->truth_inst,
           (long long)s->truth_used, (long long)s->result_inst, (long long)s->result_used,
           (long long)s->tp, (long long)s->fp, (long long)s->fn);
    json_num("precision", precision(s), true);
    json_num("recall", recall(s), true);
    json_num("f1", f1(s), true);
    printf("\"waste_truth_cents\": %lld, \"waste_result_cents\": %lld, ", (long long)s->waste_truth,
           (long long)s->waste_result);
    json_num("waste_error", waste_error(s->waste_truth, s->waste_result), true);
    if (worst_waste >= 0)
        json_num("worst_waste_error", worst_waste, true);
    printf("\"departures_timed\": %lld, ", (long long)s->dep_n);
    json_num("departure_error_mean", s->dep_n ? s->dep_sum / (double)s->dep_n : NAN, true);
    if (s->dep_n)
        printf("\"departure_error_max\": %lld}", (long long)s->dep_max);
    else
        printf("\"departure_error_max\": null}");
}

/* ---------------------------------------------------------------------------
 * The command.
 * ------------------------------------------------------------------------- */
typedef struct args {
    const char *truth, *usage, *usage_dir, *store, *tenant, *surgery, *prefix;
    double min_f1, max_waste, max_distance;
    bool has_min_f1, has_max_waste, json;
} args;

static bool parse_fraction(const char *s, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    bool ok = !errno && end != s && !*end && isfinite(v) && v >= lo && v <= hi;
    if (ok)
        *out = v;
    return ok;
}

static int parse(int argc, char **argv, args *a)
{
    static const struct option longs[] = {{"truth", required_argument, NULL, 't'},
                                          {"truth-dir", required_argument, NULL, 'T'},
                                          {"usage", required_argument, NULL, 'u'},
                                          {"usage-dir", required_argument, NULL, 'U'},
                                          {"store", required_argument, NULL, 's'},
                                          {"tenant", required_argument, NULL, 'n'},
                                          {"surgery", required_argument, NULL, 'g'},
                                          {"surgery-prefix", required_argument, NULL, 'p'},
                                          {"min-f1", required_argument, NULL, 'f'},
                                          {"max-waste-error", required_argument, NULL, 'w'},
                                          {"match-distance", required_argument, NULL, 'd'},
                                          {"json", no_argument, NULL, 'j'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    int rc = CMD_EXIT_OK, c;
    *a = (args){.max_distance = DEFAULT_MATCH_DISTANCE, .prefix = ""};
    optind = 1;
    while (rc == CMD_EXIT_OK && (c = cmd_getopt(SUB, argc, argv, longs, &rc)) != -1) {
        switch (c) {
        case 't':
        case 'T':
            a->truth = optarg;
            break;
        case 'u':
            a->usage = optarg;
            break;
        case 'U':
            a->usage_dir = optarg;
            break;
        case 's':
            a->store = optarg;
            break;
        case 'n':
            a->tenant = optarg;
            break;
        case 'g':
            a->surgery = optarg;
            break;
        case 'p':
            a->prefix = optarg;
            break;
        case 'f':
            if (!parse_fraction(optarg, 0, 1, &a->min_f1))
                rc = cmd_usage_error(SUB, "--min-f1 wants a number in [0, 1], not \"%s\"", optarg);
            a->has_min_f1 = true;
            break;
        case 'w':
            if (!parse_fraction(optarg, 0, 1e9, &a->max_waste))
                rc = cmd_usage_error(SUB,
                                     "--max-waste-error wants a fraction >= 0 (0.02 is 2%%), not "
                                     "\"%s\"",
                                     optarg);
            a->has_max_waste = true;
            break;
        case 'd':
            if (!parse_fraction(optarg, 0, 2, &a->max_distance))
                rc = cmd_usage_error(SUB, "--match-distance wants a number in [0, 2], not \"%s\"",
                                     optarg);
            break;
        case 'j':
            a->json = true;
            break;
        default:
            rc = cmd_usage_error(SUB, "unknown option '%s'", argv[optind - 1]);
        }
    }
    return rc;
}

static int name_cmp(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* The truth files of a folder (names ending in .truth.json), sorted. */
static sl_status list_truths(const char *dir, char ***out, size_t *count, sl_error *err)
{
    sl_status rc = SL_OK;
    char **names = NULL;
    size_t n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        rc = sl_error_set(err, SL_EIO, "%s: %s", dir, strerror(errno));
        goto out;
    }
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l <= 11 || strcmp(e->d_name + l - 11, ".truth.json"))
            continue;
        if (n == EV_SCENARIOS_MAX) {
            rc = sl_error_set(err, SL_ETOOLARGE, "%s: more than %u truth files", dir,
                              EV_SCENARIOS_MAX);
            goto out;
        }
        char **p = realloc(names, (n + 1) * sizeof *p);
        size_t len = strlen(dir) + l + 2;
        if (!p || !(p[n] = malloc(len))) {
            if (p)
                names = p;
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
            goto out;
        }
        names = p;
        snprintf(names[n++], len, "%s/%s", dir, e->d_name);
    }
    if (n == 0) {
        rc = sl_error_set(err, SL_ENOTFOUND, "%s holds no *.truth.json file", dir);
        goto out;
    }
    qsort(names, n, sizeof *names, name_cmp);
out:
    if (d)
        closedir(d);
    if (rc != SL_OK) {
        for (size_t i = 0; i < n; i++)
            free(names[i]);
        free(names);
        n = 0;
        names = NULL;
    }
    *out = names;
    *count = n;
    return rc;
}

/* Loads the results for truth t: the one file, the folder's file, or the store. */
static sl_status load_result(const args *a, store *st, const ev_truth *t, bool dir_mode,
                             ev_result *r, sl_error *err)
{
    char path[4096], surgery[SCHEMA_COMPONENT_MAX * 2 + 2];
    if (!dir_mode && a->usage)
        return ev_result_load(a->usage, r, err);
    if (a->usage_dir) {
        snprintf(path, sizeof path, "%s/%s.json", a->usage_dir, t->scenario);
        return ev_result_load(path, r, err);
    }
    if (dir_mode)
        snprintf(surgery, sizeof surgery, "%s%s", a->prefix, t->scenario);
    else
        snprintf(surgery, sizeof surgery, "%s", a->surgery);
    return ev_result_from_store(st, a->tenant, surgery, r, err);
}

int cmd_evaluate(int argc, char **argv)
{
    int rc = CMD_EXIT_OK;
    args a;
    store *st = NULL;
    char **truths = NULL;
    size_t ntruths = 0;
    score *scores = NULL;
    bool dir_mode = false;
    sl_error err;
    sl_error_clear(&err);
    if (cmd_help(argc, argv, help) || (rc = parse(argc, argv, &a)) != CMD_EXIT_OK)
        goto out;
    struct stat sb;
    if (!a.truth) {
        rc = cmd_usage_error(SUB, "--truth FILE or DIR is required");
        goto out;
    }
    dir_mode = stat(a.truth, &sb) == 0 && S_ISDIR(sb.st_mode);
    int sources = (a.usage != NULL) + (a.usage_dir != NULL) + (a.tenant != NULL);
    if (sources != 1) {
        rc = cmd_usage_error(SUB, "give the results one way: --usage FILE, --usage-dir DIR or "
                                  "--tenant T (the store)");
        goto out;
    }
    if (dir_mode && (a.usage || a.surgery)) {
        rc = cmd_usage_error(SUB, "--truth names a folder: use --usage-dir DIR or --tenant T "
                                  "(surgery ids are <prefix><scenario>), not --usage or --surgery");
        goto out;
    }
    if (!dir_mode && a.usage_dir) {
        rc = cmd_usage_error(SUB, "--usage-dir goes with --truth DIR");
        goto out;
    }
    if (!dir_mode && a.tenant && !a.surgery) {
        rc = cmd_usage_error(SUB, "--tenant needs --surgery S (or --truth DIR)");
        goto out;
    }
    if ((a.surgery || a.store || a.prefix[0]) && !a.tenant) {
        rc = cmd_usage_error(SUB, "--surgery, --surgery-prefix and --store go with --tenant T");
        goto out;
    }
    if (dir_mode) {
        if (list_truths(a.truth, &truths, &ntruths, &err) != SL_OK) {
            rc = cmd_report_error(SUB, &err);
            goto out;
        }
    } else {
        if (!(truths = calloc(1, sizeof *truths)) || !(truths[0] = strdup(a.truth))) {
            sl_error_set(&err, SL_ENOMEM, "out of memory");
            rc = cmd_report_error(SUB, &err);
            goto out;
        }
        ntruths = 1;
    }
    if (a.tenant) {
        store_options so = {.no_create = 1, .read_only = 1};
        if (store_open(cmd_store_uri(a.store), &so, &st, &err) != SL_OK) {
            rc = cmd_report_error(SUB, &err);
            goto out;
        }
    }
    if (!(scores = calloc(ntruths, sizeof *scores))) {
        sl_error_set(&err, SL_ENOMEM, "out of memory");
        rc = cmd_report_error(SUB, &err);
        goto out;
    }
    /* Every scenario is read and scored before anything is printed: a file
     * that cannot be read fails the run (exit 1) without half a table. */
    char **names = calloc(ntruths, sizeof *names);
    if (!names) {
        sl_error_set(&err, SL_ENOMEM, "out of memory");
        rc = cmd_report_error(SUB, &err);
        goto out;
    }
    for (size_t i = 0; i < ntruths && rc == CMD_EXIT_OK; i++) {
        ev_truth t;
        ev_result r;
        if (ev_truth_load(truths[i], &t, &err) != SL_OK) {
            rc = cmd_report_error(SUB, &err);
            break;
        }
        if (load_result(&a, st, &t, dir_mode, &r, &err) != SL_OK) {
            sl_error_prefix(&err, "scenario %s", t.scenario);
            rc = cmd_report_error(SUB, &err);
            ev_truth_free(&t);
            break;
        }
        if (score_one(&t, &r, a.max_distance, &scores[i], &err) != SL_OK ||
            !(names[i] = strdup(t.scenario)))
            rc = cmd_report_error(SUB, &err);
        scores[i].scenario = names[i];
        ev_result_free(&r);
        ev_truth_free(&t);
    }
    if (rc != CMD_EXIT_OK)
        goto names_out;
    /* overall */
    score all = {.scenario = "overall"};
    double worst_waste = 0;
    const char *worst = NULL;
    bool none_used_broken = false;
    for (size_t i = 0; i < ntruths; i++) {
        const score *s = &scores[i];
        all.truth_inst += s->truth_inst;
        all.truth_used += s->truth_used;
        all.result_inst += s->result_inst;
        all.result_used += s->result_used;
        all.tp += s->tp;
        all.fp += s->fp;
        all.fn += s->fn;
        all.waste_truth += s->waste_truth;
        all.waste_result += s->waste_result;
        all.dep_n += s->dep_n;
        all.dep_sum += s->dep_sum;
        all.dep_max = s->dep_max > all.dep_max ? s->dep_max : all.dep_max;
        all.counts_only = all.counts_only || s->counts_only;
        double we = waste_error(s->waste_truth, s->waste_result);
        if (!worst || we > worst_waste) {
            worst_waste = we;
            worst = s->scenario;
        }
        if (s->truth_used == 0 && s->result_used > 0)
            none_used_broken = true;
    }
    bool f1_fail = a.has_min_f1 && (f1(&all) < a.min_f1 || none_used_broken);
    bool waste_fail = a.has_max_waste && worst_waste > a.max_waste;
    if (a.json) {
        printf("{\"scenarios\": [");
        for (size_t i = 0; i < ntruths; i++) {
            printf(i ? ",\n  " : "\n  ");
            print_json_score(&scores[i], scores[i].scenario, -1);
        }
        printf("],\n \"overall\": ");
        print_json_score(&all, "overall", worst_waste);
        printf(",\n \"pass\": %s}\n", f1_fail || waste_fail ? "false" : "true");
    } else {
        print_header();
        for (size_t i = 0; i < ntruths; i++)
            print_row(&scores[i], scores[i].scenario);
        print_row(&all, "overall");
        char we[32];
        fmt_err(we, sizeof we, worst_waste);
        printf("worst waste error: %s (%s)\n", we, worst ? worst : "-");
        if (a.has_min_f1) {
            printf("%s: overall F1 of used %.3f %s %.3f\n", f1(&all) < a.min_f1 ? "FAIL" : "ok",
                   f1(&all), f1(&all) < a.min_f1 ? "<" : ">=", a.min_f1);
            for (size_t i = 0; i < ntruths; i++)
                if (scores[i].truth_used == 0 && scores[i].result_used > 0)
                    printf("FAIL: %s: nothing was used, the results mark %lld used\n",
                           scores[i].scenario, (long long)scores[i].result_used);
        }
        if (a.has_max_waste) {
            char lim[32];
            fmt_err(lim, sizeof lim, a.max_waste);
            for (size_t i = 0; i < ntruths; i++) {
                double e = waste_error(scores[i].waste_truth, scores[i].waste_result);
                if (e > a.max_waste) {
                    fmt_err(we, sizeof we, e);
                    printf("FAIL: %s: waste error %s > %s\n", scores[i].scenario, we, lim);
                }
            }
            if (!waste_fail)
                printf("ok: every waste error <= %s\n", lim);
        }
    }
    fflush(stdout);
    if (f1_fail || waste_fail)
        rc = CMD_EXIT_BELOW;
names_out:
    for (size_t i = 0; i < ntruths; i++)
        free(names[i]);
    free(names);
out:
    for (size_t i = 0; i < ntruths; i++)
        free(truths[i]);
    free(truths);
    free(scores);
    store_close(&st);
    return rc;
}
