/* sim_evaluate_test.c -- `sightline evaluate` as a real process, on the
 * truth of committed scenarios and hand-written results
 * (fixtures/scenarios/evaluate/): a perfect one, one with a false "used",
 * one missing an instance, a usage answer (per-SKU counts), and twins
 * swapped (which only instance matching by slot can see); then the same
 * results as tool_result documents in a real store, read through the store
 * port; a folder of scenarios; the thresholds and the exit codes; bad input. */
#include "sim_test.h"

#include <bson/bson.h>
#include <math.h>

#include "schema/schema.h"
#include "store/store.h"

#define RESULTS SIM_SCENARIOS "/evaluate"

/* One row of evaluate's table. */
typedef struct row {
    char name[64];
    long long tu, ti, ru, ri, tp, fp, fn, wt, wr;
    double p, r, f1;
    char werr[32], dmean[32], dmax[32];
} row;

/* Finds the row of scenario name (the first word) in the table text. */
static bool find_row(const char *text, const char *name, row *out)
{
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        row r;
        memset(&r, 0, sizeof r);
        int n = sscanf(l,
                       "%63s %lld/%lld %lld/%lld %lld %lld %lld %lf %lf %lf %lld %lld %31s %31s "
                       "%31s",
                       r.name, &r.tu, &r.ti, &r.ru, &r.ri, &r.tp, &r.fp, &r.fn, &r.p, &r.r, &r.f1,
                       &r.wt, &r.wr, r.werr, r.dmean, r.dmax);
        if (n == 16 && !strcmp(r.name, name)) {
            *out = r;
            return true;
        }
        /* "name [counts]" rows: the tag is a word of its own */
        n = sscanf(l,
                   "%63s [counts] %lld/%lld %lld/%lld %lld %lld %lld %lf %lf %lf %lld %lld %31s "
                   "%31s %31s",
                   r.name, &r.tu, &r.ti, &r.ru, &r.ri, &r.tp, &r.fp, &r.fn, &r.p, &r.r, &r.f1,
                   &r.wt, &r.wr, r.werr, r.dmean, r.dmax);
        if (n == 16 && !strcmp(r.name, name)) {
            *out = r;
            return true;
        }
    }
    return false;
}

/* Checks a row's figures: used/instances of both sides, tp fp fn, precision,
 * recall, F1 (to the three decimals printed), the waste of both sides, the
 * waste error and the departure error as printed. */
static void expect_row(const char *text, const char *name, long long tu, long long ti, long long ru,
                       long long ri, long long tp, long long fp, long long fn, double p, double r,
                       double f1, long long wt, long long wr, const char *werr, const char *dmean,
                       const char *dmax)
{
    row x;
    bool found = find_row(text, name, &x);
    if (!found)
        fprintf(stderr, "no row %s in:\n%s", name, text);
    REQUIRE(found);
    CHECK_INT(x.tu, tu);
    CHECK_INT(x.ti, ti);
    CHECK_INT(x.ru, ru);
    CHECK_INT(x.ri, ri);
    CHECK_INT(x.tp, tp);
    CHECK_INT(x.fp, fp);
    CHECK_INT(x.fn, fn);
    CHECK(fabs(x.p - p) < 0.0006);
    CHECK(fabs(x.r - r) < 0.0006);
    CHECK(fabs(x.f1 - f1) < 0.0006);
    CHECK_INT(x.wt, wt);
    CHECK_INT(x.wr, wr);
    CHECK_STR(x.werr, werr);
    CHECK_STR(x.dmean, dmean);
    CHECK_STR(x.dmax, dmax);
}

static void truths(void)
{
    sim_run_result r;
    REQUIRE(mkdir(sim_path("truth"), 0700) == 0);
    SIM_RUN(&r, "simulate", SIM_SCENARIOS "/basic.json", "--truth",
            sim_path("truth/basic.truth.json"));
    REQUIRE(r.code == 0);
    SIM_RUN(&r, "simulate", SIM_SCENARIOS "/identical-side-by-side.json", "--truth",
            sim_path("truth/identical-side-by-side.truth.json"));
    REQUIRE(r.code == 0);
    SIM_RUN(&r, "simulate", SIM_SCENARIOS "/flicker.json", "--truth",
            sim_path("flicker.truth.json"));
    REQUIRE(r.code == 0);
}

/* ---------------------------------------------------------------------------
 * Hand-written results files.
 * ------------------------------------------------------------------------- */
static void test_files(void)
{
    sim_run_result r;
    char basic[256]; /* sim_path's buffers are reused */
    snprintf(basic, sizeof basic, "%s", sim_path("truth/basic.truth.json"));
    /* perfect: every decision right, departures 5 and 12 frames late */
    SIM_RUN(&r, "evaluate", "--truth", basic, "--usage", RESULTS "/basic-perfect.json", "--min-f1",
            "0.98", "--max-waste-error", "0.02");
    CHECK_INT(r.code, 0);
    expect_row(r.out, "basic", 2, 4, 2, 4, 2, 0, 0, 1, 1, 1, 35, 35, "0.00%", "8.5", "12");
    expect_row(r.out, "overall", 2, 4, 2, 4, 2, 0, 0, 1, 1, 1, 35, 35, "0.00%", "8.5", "12");
    CHECK(strstr(r.out, "ok: overall F1 of used 1.000 >= 0.980") != NULL);
    CHECK(strstr(r.out, "ok: every waste error <= 2.00%") != NULL);
    /* a false "used": the syringe (35 cents) no longer counts as waste */
    SIM_RUN(&r, "evaluate", "--truth", basic, "--usage", RESULTS "/basic-false-used.json",
            "--min-f1", "0.98", "--max-waste-error", "0.02");
    CHECK_INT(r.code, 4);
    expect_row(r.out, "basic", 2, 4, 3, 4, 2, 1, 0, 2.0 / 3, 1, 0.8, 35, 0, "100.00%", "0.0", "0");
    CHECK(strstr(r.out, "FAIL: overall F1 of used 0.800 < 0.980") != NULL);
    CHECK(strstr(r.out, "FAIL: basic: waste error 100.00% > 2.00%") != NULL);
    /* no thresholds: figures only, exit 0 */
    SIM_RUN(&r, "evaluate", "--truth", basic, "--usage", RESULTS "/basic-false-used.json");
    CHECK_INT(r.code, 0);
    CHECK(strstr(r.out, "FAIL") == NULL);
    /* an instance missing (the sponge): a false negative; the scalpel left 30 frames late */
    SIM_RUN(&r, "evaluate", "--truth", basic, "--usage", RESULTS "/basic-missing.json", "--min-f1",
            "0.6");
    CHECK_INT(r.code, 0);
    expect_row(r.out, "basic", 2, 4, 1, 3, 1, 0, 1, 1, 0.5, 2.0 / 3, 35, 35, "0.00%", "30.0", "30");
    CHECK(strstr(r.out, "ok: overall F1 of used 0.667 >= 0.600") != NULL);
    /* the usage answer: counts per SKU, no departures */
    SIM_RUN(&r, "evaluate", "--truth", basic, "--usage", RESULTS "/basic-usage.json", "--min-f1",
            "0.98", "--max-waste-error", "0.02");
    CHECK_INT(r.code, 0);
    expect_row(r.out, "basic", 2, 4, 2, 4, 2, 0, 0, 1, 1, 1, 35, 35, "0.00%", "-", "-");
    CHECK(strstr(r.out, "basic [counts]") != NULL);
    /* twins swapped: the left sponge called used instead of the middle one.
     * Counting per SKU would call it right; matched by slot it is one false
     * positive and one false negative. */
    SIM_RUN(&r, "evaluate", "--truth", sim_path("truth/identical-side-by-side.truth.json"),
            "--usage", RESULTS "/identical-wrong-twin.json", "--min-f1", "0.98");
    CHECK_INT(r.code, 4);
    expect_row(r.out, "identical-side-by-side", 3, 9, 3, 9, 2, 1, 1, 2.0 / 3, 2.0 / 3, 2.0 / 3,
               3158, 3158, "0.00%", "0.0", "0");
    /* the same twins counted per SKU (a usage answer) look right */
    sim_write(sim_path("twins-usage.json"),
              "{\"status\": \"analyzed\", \"opened\": 9, \"waste_cost_cents\": 3158, "
              "\"used\": [{\"sku\": \"SPONGE-LAP\", \"quantity\": 1}, {\"sku\": \"SYRINGE-10ML\", "
              "\"quantity\": 1}, {\"sku\": \"SCALPEL-10\", \"quantity\": 1}], \"unused\": "
              "[{\"sku\": \"SPONGE-LAP\", \"quantity\": 2}, {\"sku\": \"SYRINGE-10ML\", "
              "\"quantity\": 1}, {\"sku\": \"SCALPEL-10\", \"quantity\": 1}, {\"sku\": "
              "\"SUTURE-VICRYL-30\", \"quantity\": 2}]}");
    SIM_RUN(&r, "evaluate", "--truth", sim_path("truth/identical-side-by-side.truth.json"),
            "--usage", sim_path("twins-usage.json"), "--min-f1", "0.98");
    CHECK_INT(r.code, 0);
    expect_row(r.out, "identical-side-by-side", 3, 9, 3, 9, 3, 0, 0, 1, 1, 1, 3158, 3158, "0.00%",
               "-", "-");
    /* JSON */
    SIM_RUN(&r, "evaluate", "--truth", basic, "--usage", RESULTS "/basic-false-used.json", "--json",
            "--min-f1", "0.98");
    CHECK_INT(r.code, 4);
    char why[256];
    yajl_val v = yajl_tree_parse(r.out, why, sizeof why);
    REQUIRE(v != NULL);
    const char *tp[] = {"overall", "tp", NULL}, *fp[] = {"overall", "fp", NULL},
               *pr[] = {"overall", "precision", NULL}, *pass[] = {"pass", NULL},
               *we[] = {"overall", "worst_waste_error", NULL};
    CHECK_INT(YAJL_GET_INTEGER(yajl_tree_get(v, tp, yajl_t_number)), 2);
    CHECK_INT(YAJL_GET_INTEGER(yajl_tree_get(v, fp, yajl_t_number)), 1);
    CHECK(fabs(YAJL_GET_DOUBLE(yajl_tree_get(v, pr, yajl_t_number)) - 2.0 / 3) < 1e-5);
    CHECK(fabs(YAJL_GET_DOUBLE(yajl_tree_get(v, we, yajl_t_number)) - 1.0) < 1e-9);
    CHECK(YAJL_IS_FALSE(yajl_tree_get(v, pass, yajl_t_any)));
    yajl_tree_free(v);
}

/* ---------------------------------------------------------------------------
 * A folder of scenarios.
 * ------------------------------------------------------------------------- */
static void copy(const char *from, const char *to)
{
    size_t n = 0;
    char *s = support_read_file(from, &n);
    REQUIRE(s != NULL);
    FILE *f = fopen(to, "wb");
    REQUIRE(f && fwrite(s, 1, n, f) == n && fclose(f) == 0);
    free(s);
}

static void test_folder(void)
{
    sim_run_result r;
    REQUIRE(mkdir(sim_path("usage"), 0700) == 0);
    copy(RESULTS "/basic-perfect.json", sim_path("usage/basic.json"));
    copy(RESULTS "/identical-wrong-twin.json", sim_path("usage/identical-side-by-side.json"));
    SIM_RUN(&r, "evaluate", "--truth", sim_path("truth"), "--usage-dir", sim_path("usage"),
            "--min-f1", "0.98", "--max-waste-error", "0.02");
    CHECK_INT(r.code, 4);
    expect_row(r.out, "basic", 2, 4, 2, 4, 2, 0, 0, 1, 1, 1, 35, 35, "0.00%", "8.5", "12");
    expect_row(r.out, "identical-side-by-side", 3, 9, 3, 9, 2, 1, 1, 2.0 / 3, 2.0 / 3, 2.0 / 3,
               3158, 3158, "0.00%", "0.0", "0");
    /* pooled: 4 tp, 1 fp, 1 fn; departures 5, 12 and two exact: 17 / 4 */
    expect_row(r.out, "overall", 5, 13, 5, 13, 4, 1, 1, 0.8, 0.8, 0.8, 3193, 3193, "0.00%", "4.2",
               "12");
    CHECK(strstr(r.out, "FAIL: overall F1 of used 0.800 < 0.980") != NULL);
    /* a scenario where nothing was used gets a used tool: fails --min-f1
     * even when the pooled F1 passes */
    copy(sim_path("flicker.truth.json"), sim_path("truth/flicker.truth.json"));
    sim_write(sim_path("usage/flicker.json"),
              "[{\"sku\": \"SCALPEL-10\", \"used\": true, \"left_frame\": 100}]\n");
    unlink(sim_path("truth/identical-side-by-side.truth.json"));
    SIM_RUN(&r, "evaluate", "--truth-dir", sim_path("truth"), "--usage-dir", sim_path("usage"),
            "--min-f1", "0.5");
    CHECK_INT(r.code, 4);
    expect_row(r.out, "flicker", 0, 8, 1, 1, 0, 1, 0, 0, 1, 0, 6408, 0, "100.00%", "-", "-");
    expect_row(r.out, "overall", 2, 12, 3, 5, 2, 1, 0, 2.0 / 3, 1, 0.8, 6443, 35, "99.46%", "8.5",
               "12");
    CHECK(strstr(r.out, "ok: overall F1 of used 0.800 >= 0.500") != NULL);
    CHECK(strstr(r.out, "FAIL: flicker: nothing was used, the results mark 1 used") != NULL);
    /* a result file missing for a scenario */
    unlink(sim_path("usage/flicker.json"));
    SIM_RUN(&r, "evaluate", "--truth", sim_path("truth"), "--usage-dir", sim_path("usage"));
    CHECK_INT(r.code, 1);
    CHECK(strstr(r.err, "scenario flicker: results") != NULL &&
          strstr(r.err, "usage/flicker.json: cannot open") != NULL);
    CHECK(r.out[0] == '\0'); /* no half table */
    unlink(sim_path("truth/flicker.truth.json"));
}

/* ---------------------------------------------------------------------------
 * The store: tool_result documents as the analyzer writes them.
 * ------------------------------------------------------------------------- */
typedef struct tool {
    const char *sku;
    int n;
    bool used;
    long long first, left, returned;
    int x, y, w, h; /* micro */
} tool;

static void put_results(const char *uri, const char *surgery, const tool *tools, size_t n,
                        long long waste)
{
    store *s = NULL;
    sl_error err;
    sl_error_clear(&err);
    REQUIRE(store_open(uri, NULL, &s, &err) == SL_OK);
    schema_key pk, sk;
    REQUIRE(schema_pk_surgery(pk, "acme", surgery, &err) == SL_OK);
    for (size_t i = 0; i < n; i++) {
        const tool *t = &tools[i];
        REQUIRE(schema_sk_tool_instance(sk, t->sku, (uint32_t)t->n, &err) == SL_OK);
        bson_t *d = bson_new(), slot;
        BSON_APPEND_UTF8(d, SCHEMA_F_PK, pk);
        BSON_APPEND_UTF8(d, SCHEMA_F_SK, sk);
        BSON_APPEND_UTF8(d, SCHEMA_F_TYPE, SCHEMA_TYPE_TOOL_RESULT);
        BSON_APPEND_UTF8(d, "tenant", "acme");
        BSON_APPEND_UTF8(d, "surgery", surgery);
        BSON_APPEND_UTF8(d, "sku", t->sku);
        BSON_APPEND_INT32(d, "instance", t->n);
        BSON_APPEND_BOOL(d, "opened", true);
        BSON_APPEND_BOOL(d, "used", t->used);
        BSON_APPEND_INT64(d, "first_seen_frame", t->first);
        BSON_APPEND_INT64(d, "left_frame", t->left);
        BSON_APPEND_INT64(d, "returned_frame", t->returned);
        BSON_APPEND_INT32(d, "confidence_micro", 950000);
        BSON_APPEND_DOCUMENT_BEGIN(d, "slot", &slot);
        BSON_APPEND_INT32(&slot, "x", t->x);
        BSON_APPEND_INT32(&slot, "y", t->y);
        BSON_APPEND_INT32(&slot, "w", t->w);
        BSON_APPEND_INT32(&slot, "h", t->h);
        bson_append_document_end(d, &slot);
        REQUIRE(store_put(s, STORE_ITEMS, d, (store_cond){0}, NULL, &err) == SL_OK);
        bson_destroy(d);
    }
    if (waste >= 0) {
        bson_t *d = bson_new();
        BSON_APPEND_UTF8(d, SCHEMA_F_PK, pk);
        BSON_APPEND_UTF8(d, SCHEMA_F_SK, SCHEMA_SK_SUMMARY);
        BSON_APPEND_UTF8(d, SCHEMA_F_TYPE, SCHEMA_TYPE_SUMMARY);
        BSON_APPEND_INT64(d, "waste_cents", waste);
        REQUIRE(store_put(s, STORE_ITEMS, d, (store_cond){0}, NULL, &err) == SL_OK);
        bson_destroy(d);
    }
    store_close(&s);
}

static void test_store(void)
{
    char uri[256];
    snprintf(uri, sizeof uri, "sqlite:%s/results.db", sim_dir);
    sim_run_result r;
    REQUIRE(support_tenant(uri, "acme", "hospital") == 0);
    SIM_RUN(&r, "simulate", SIM_SCENARIOS "/basic.json", "--surgery", sim_path("surgery.json"));
    REQUIRE(r.code == 0);
    static const char *const ids[] = {"basic", "run-basic", "empty"};
    for (size_t i = 0; i < 3; i++) {
        SIM_RUN(&r, "ingest", "--store", uri, "--tenant", "acme", "--surgery", ids[i], "--format",
                "surgery", sim_path("surgery.json"));
        REQUIRE(r.code == 0);
    }
    static const tool perfect[] = {
        {"FORCEPS-ADSON", 1, false, 0, -1, -1, 550000, 750000, 50000, 120000},
        {"SCALPEL-10", 1, true, 2, 305, 760, 100000, 600000, 60000, 100000},
        {"SPONGE-LAP", 1, true, 0, 612, -1, 250000, 600000, 80000, 120000},
        {"SYRINGE-10ML", 1, false, 1, -1, -1, 700000, 600000, 40000, 140000}};
    put_results(uri, "basic", perfect, 4, -1); /* no summary: the waste from the instances */
    SIM_RUN(&r, "evaluate", "--truth", sim_path("truth/basic.truth.json"), "--store", uri,
            "--tenant", "acme", "--surgery", "basic", "--min-f1", "0.98", "--max-waste-error",
            "0.02");
    CHECK_INT(r.code, 0);
    expect_row(r.out, "basic", 2, 4, 2, 4, 2, 0, 0, 1, 1, 1, 35, 35, "0.00%", "8.5", "12");
    /* a summary whose waste is wrong by 1 cent in 35 (2.86%): the summary is
     * what staff see, so it is what is scored */
    static const tool swapped[] = {
        {"FORCEPS-ADSON", 1, false, 0, -1, -1, 400000, 600000, 50000, 120000},
        {"SCALPEL-10", 1, true, 0, 300, 750, 100000, 600000, 60000, 100000},
        {"SPONGE-LAP", 1, false, 0, -1, -1, 250000, 600000, 80000, 120000},
        {"SYRINGE-10ML", 1, false, 0, -1, -1, 700000, 600000, 40000, 140000},
        {"SYRINGE-10ML", 2, true, 900, 1200, -1, 900000, 900000, 40000, 60000}};
    put_results(uri, "run-basic", swapped, 5, 36);
    REQUIRE(mkdir(sim_path("one"), 0700) == 0);
    copy(sim_path("truth/basic.truth.json"), sim_path("one/basic.truth.json"));
    SIM_RUN(&r, "evaluate", "--truth", sim_path("one"), "--store", uri, "--tenant", "acme",
            "--surgery-prefix", "run-", "--max-waste-error", "0.02");
    CHECK_INT(r.code, 4);
    /* the phantom syringe far from any truth slot matches nothing: a false
     * positive; the sponge's departure missed: a false negative */
    expect_row(r.out, "basic", 2, 4, 2, 5, 1, 1, 1, 0.5, 0.5, 0.5, 35, 36, "2.86%", "0.0", "0");
    CHECK(strstr(r.out, "FAIL: basic: waste error 2.86% > 2.00%") != NULL);
    /* no results yet, and no such surgery */
    SIM_RUN(&r, "evaluate", "--truth", sim_path("truth/basic.truth.json"), "--store", uri,
            "--tenant", "acme", "--surgery", "empty");
    CHECK_INT(r.code, 1);
    CHECK(strstr(r.err, "surgery empty of tenant acme has no tool results: analyze it first") !=
          NULL);
    /* analyzed, and nothing opened (a summary, no tool result): every truth
     * instance missed, scored without a crash (qsort of no pairs) */
    put_results(uri, "empty", NULL, 0, 0);
    SIM_RUN(&r, "evaluate", "--truth", sim_path("truth/basic.truth.json"), "--store", uri,
            "--tenant", "acme", "--surgery", "empty");
    CHECK_INT(r.code, 0);
    expect_row(r.out, "basic", 2, 4, 0, 0, 0, 0, 2, 1, 0, 0, 35, 0, "100.00%", "-", "-");
    SIM_RUN(&r, "evaluate", "--truth", sim_path("truth/basic.truth.json"), "--store", uri,
            "--tenant", "acme", "--surgery", "nope");
    CHECK_INT(r.code, 1);
    CHECK(strstr(r.err, "no surgery nope in tenant acme") != NULL);
    SIM_RUN(&r, "evaluate", "--truth", sim_path("truth/basic.truth.json"), "--store",
            "sqlite:/nonexistent/x.db", "--tenant", "acme", "--surgery", "basic");
    CHECK_INT(r.code, 1);
}

/* ---------------------------------------------------------------------------
 * Usage and bad input.
 * ------------------------------------------------------------------------- */
static void test_bad(void)
{
    sim_run_result r;
    char basic[256]; /* sim_path's buffers are reused */
    snprintf(basic, sizeof basic, "%s", sim_path("truth/basic.truth.json"));
    SIM_RUN(&r, "evaluate", "--help");
    CHECK_INT(r.code, 0);
    CHECK(strstr(r.out, "usage: sightline evaluate --truth TRUTH.json --usage RESULTS.json") !=
          NULL);
    SIM_RUN(&r, "evaluate", "--usage", RESULTS "/basic-perfect.json");
    CHECK_INT(r.code, 2);
    CHECK(strstr(r.err, "--truth FILE or DIR is required") != NULL);
    SIM_RUN(&r, "evaluate", "--truth", basic);
    CHECK_INT(r.code, 2);
    SIM_RUN(&r, "evaluate", "--truth", basic, "--usage", RESULTS "/basic-perfect.json", "--tenant",
            "acme");
    CHECK_INT(r.code, 2);
    CHECK(strstr(r.err, "give the results one way") != NULL);
    SIM_RUN(&r, "evaluate", "--truth", basic, "--tenant", "acme");
    CHECK_INT(r.code, 2);
    CHECK(strstr(r.err, "--tenant needs --surgery") != NULL);
    SIM_RUN(&r, "evaluate", "--truth", basic, "--usage", RESULTS "/basic-perfect.json", "--min-f1",
            "1.5");
    CHECK_INT(r.code, 2);
    CHECK(strstr(r.err, "--min-f1 wants a number in [0, 1], not \"1.5\"") != NULL);
    SIM_RUN(&r, "evaluate", "--truth", sim_path("truth"), "--usage", RESULTS "/basic-perfect.json");
    CHECK_INT(r.code, 2);
    /* results that say nothing of "used", or of the wrong type */
    sim_write(sim_path("bad.json"), "{\"tools\": [{\"sku\": \"SCALPEL-10\", \"used\": true}, "
                                    "{\"sku\": \"SPONGE-LAP\"}]}");
    SIM_RUN(&r, "evaluate", "--truth", basic, "--usage", sim_path("bad.json"));
    CHECK_INT(r.code, 1);
    CHECK(strstr(r.err, "is required (at tools[1].used)") != NULL);
    sim_write(sim_path("bad.json"), "[{\"sku\": \"SCALPEL-10\", \"used\": \"yes\"}]");
    SIM_RUN(&r, "evaluate", "--truth", basic, "--usage", sim_path("bad.json"));
    CHECK_INT(r.code, 1);
    CHECK(strstr(r.err, "must be true or false (at [0].used)") != NULL);
    sim_write(sim_path("bad.json"), "{\"surgery\": \"basic\", \"status\": \"analyzing\"}");
    SIM_RUN(&r, "evaluate", "--truth", basic, "--usage", sim_path("bad.json"));
    CHECK_INT(r.code, 1);
    CHECK(strstr(r.err, "only an analyzed surgery can be evaluated") != NULL);
    sim_write(sim_path("bad.json"), "{\"something\": 1}");
    SIM_RUN(&r, "evaluate", "--truth", basic, "--usage", sim_path("bad.json"));
    CHECK_INT(r.code, 1);
    CHECK(strstr(r.err, "not a usage answer") != NULL);
    /* a truth that is not one */
    SIM_RUN(&r, "evaluate", "--truth", RESULTS "/basic-perfect.json", "--usage",
            RESULTS "/basic-perfect.json");
    CHECK_INT(r.code, 1);
    CHECK(strstr(r.err, "is required (at scenario)") != NULL);
}

int main(void)
{
    REQUIRE(support_tmpdir(sim_dir, "eval") == 0);
    truths();
    test_files();
    test_bad();
    test_store();
    test_folder();
    support_rmrf(sim_dir);
    return check_finish();
}
