/* api_usage_test.c -- issue 11, items 4 and 5, through the real server: a
 * scenario's detections (simulated, POSTed as NDJSON) on a surgery, which
 * close analyzes on the job pool; GET .../usage answers 409 while open, 202
 * while the analysis is pending and the contract's shape when analyzed
 * (checked against the hand-written answer of fixtures/scenarios/evaluate/
 * basic-usage.json); a closed surgery refuses detections; analyze re-runs;
 * the hospital's surgeries listing (range, procedure, pages); bad input
 * (unknown surgery, another tenant's surgery: 404; parameters out of range:
 * 400 naming them). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "../check.h"
#include "engine/engine.h"
#include "ingest_http.h"

#define SCENARIOS  SL_FIXTURES "/scenarios"
#define WAIT_MS    60000 /* an analysis of 1800 frames takes well under a second */
#define HOSPITAL   "st-mary"
#define OTHER_DATE "2025-12-20T08:00:00Z"

static support_server srv;
static ih_keys k, k2; /* tenants h1 and h2 */
static char dir[128];

static long call(const char *method, const char *path, const char *key, const char *body,
                 yajl_val *out)
{
    support_resp r;
    long status = ih_req(&srv, method, path, key, body, &r) == 0 ? r.status : -1;
    if (out) {
        char why[128];
        *out = yajl_tree_parse(r.body ? r.body : "", why, sizeof why);
        if (!*out)
            fprintf(stderr, "%s %s: %ld, not JSON: %s\n", method, path, status, r.body);
    }
    support_resp_free(&r);
    return status;
}

static const char *str(yajl_val v, const char *key)
{
    const char *p[] = {key, NULL};
    yajl_val s = v ? yajl_tree_get(v, p, yajl_t_string) : NULL;
    return s ? YAJL_GET_STRING(s) : "";
}

static long long num(yajl_val v, const char *key)
{
    const char *p[] = {key, NULL};
    yajl_val n = v ? yajl_tree_get(v, p, yajl_t_number) : NULL;
    return n ? YAJL_GET_INTEGER(n) : -1;
}

static yajl_val arr(yajl_val v, const char *key)
{
    const char *p[] = {key, NULL};
    return v ? yajl_tree_get(v, p, yajl_t_array) : NULL;
}

/* status (and problem field when want_field) of METHOD path */
static void expect(const char *method, const char *path, const char *key, const char *body,
                   long status, const char *field)
{
    yajl_val v = NULL;
    long got = call(method, path, key, body, &v);
    if (got != status)
        fprintf(stderr, "%s %s: %ld, expected %ld\n", method, path, got, status);
    CHECK_INT(got, status);
    if (field)
        CHECK_STR(str(v, "field"), field);
    yajl_tree_free(v);
}

/* PUTs the scenario's surgery as id (started at `at` when not NULL) and
 * POSTs its frames; the files are simulated once into dir. */
static void put_scenario(const char *key, const char *scenario, const char *id, const char *at)
{
    char sc[512], frames[256], surgery[256], path[256];
    snprintf(sc, sizeof sc, SCENARIOS "/%s.json", scenario);
    snprintf(frames, sizeof frames, "%s/%s.ndjson", dir, scenario);
    snprintf(surgery, sizeof surgery, "%s/%s.surgery.json", dir, scenario);
    if (access(frames, R_OK) != 0)
        REQUIRE(support_cli(NULL, 0, "simulate", sc, "-o", frames, "--format", "ndjson",
                            "--surgery", surgery, (char *)NULL) == 0);
    size_t len = 0;
    char *body = support_read_file(surgery, &len);
    REQUIRE(body);
    if (at) { /* another day: the listing's range */
        char *s = strstr(body, "\"started_at\"");
        REQUIRE(s);
        char *q = strchr(s + 12, '"');
        REQUIRE(q && strlen(q) > 21);
        memcpy(q + 1, at, 20);
    }
    snprintf(path, sizeof path, "/v1/surgeries/%s", id);
    expect("PUT", path, key, body, 201, NULL);
    free(body);
    snprintf(path, sizeof path, "%s/v1/surgeries/%s/detections?format=ndjson", srv.url, id);
    support_resp r;
    REQUIRE(support_post_file(path, key, frames, 0, &r) == 0);
    if (r.status != 200)
        fprintf(stderr, "detections: %ld %s\n", r.status, r.body);
    CHECK_INT(r.status, 200);
    support_resp_free(&r);
}

/* PUTs every entry of the scenarios' catalog for the key's tenant. */
static void put_catalog(const char *key)
{
    static const char *const skus[] = {"FORCEPS-ADSON", "SCALPEL-10", "SPONGE-LAP", "SYRINGE-10ML"};
    for (size_t i = 0; i < sizeof skus / sizeof skus[0]; i++) {
        char file[512], path[256];
        size_t len = 0;
        snprintf(file, sizeof file, SCENARIOS "/catalog/%s.json", skus[i]);
        snprintf(path, sizeof path, "/v1/catalog/%s", skus[i]);
        char *body = support_read_file(file, &len);
        REQUIRE(body);
        expect("PUT", path, key, body, 201, NULL);
        free(body);
    }
}

/* GET .../usage until it is no longer 202 (bounded): its status; *out the
 * answer. */
static long usage_settled(const char *id, yajl_val *out)
{
    char path[256];
    snprintf(path, sizeof path, "/v1/surgeries/%s/usage", id);
    long t0 = support_now_ms(), st;
    for (;;) {
        st = call("GET", path, k.staff, NULL, out);
        if (st != 202 || support_now_ms() - t0 > WAIT_MS)
            break;
        CHECK_STR(str(*out, "status"), "analyzing");
        yajl_tree_free(*out);
        support_sleep_ms(20);
    }
    return st;
}

/* The answer's list entry of sku, or NULL. */
static yajl_val entry(yajl_val list, const char *sku)
{
    for (size_t i = 0; list && i < list->u.array.len; i++)
        if (!strcmp(str(list->u.array.values[i], "sku"), sku))
            return list->u.array.values[i];
    return NULL;
}

/* The usage answer equals the hand-written one (basic-usage.json). */
static void check_basic(yajl_val got)
{
    size_t len;
    char *text = support_read_file(SCENARIOS "/evaluate/basic-usage.json", &len);
    char why[128];
    yajl_val want = yajl_tree_parse(text, why, sizeof why);
    REQUIRE(want);
    CHECK_STR(str(got, "status"), "analyzed");
    CHECK_INT(num(got, "opened"), num(want, "opened"));
    CHECK_INT(num(got, "waste_cost_cents"), num(want, "waste_cost_cents"));
    static const char *const lists[] = {"used", "unused"};
    for (size_t l = 0; l < 2; l++) {
        yajl_val w = arr(want, lists[l]), g = arr(got, lists[l]);
        REQUIRE(w && g);
        CHECK_INT(g->u.array.len, w->u.array.len);
        for (size_t i = 0; i < w->u.array.len; i++) {
            yajl_val we = w->u.array.values[i], ge = entry(g, str(we, "sku"));
            if (!ge)
                fprintf(stderr, "%s: no %s\n", lists[l], str(we, "sku"));
            REQUIRE(ge);
            CHECK_STR(str(ge, "name"), str(we, "name"));
            CHECK_INT(num(ge, "quantity"), num(we, "quantity"));
            if (l == 1) {
                CHECK_INT(num(ge, "unit_cost_cents"), num(we, "unit_cost_cents"));
                CHECK_INT(num(ge, "cost_cents"), num(we, "cost_cents"));
            }
        }
    }
    CHECK(num(got, "frames") == 1800);
    yajl_tree_free(want);
    free(text);
}

static void test_close_and_usage(void)
{
    yajl_val v = NULL;
    put_catalog(k.admin);
    put_scenario(k.ingest, "basic", "basic", NULL);
    /* open: 409 with the status */
    CHECK_INT(call("GET", "/v1/surgeries/basic/usage", k.staff, NULL, &v), 409);
    CHECK_STR(str(v, "status"), "open");
    CHECK_STR(str(v, "surgery"), "basic");
    yajl_tree_free(v);
    expect("POST", "/v1/surgeries/basic/analyze", k.staff, "{}", 409, "status");
    /* bad bodies, unknown and other tenant's surgeries: nothing changes */
    expect("POST", "/v1/surgeries/basic/close", k.ingest, "{\"now\": 1}", 400, "now");
    expect("POST", "/v1/surgeries/basic/close", k.ingest, "[]", 400, "body");
    expect("POST", "/v1/surgeries/basic/close", k.ingest, "{", 400, NULL);
    expect("POST", "/v1/surgeries/nope/close", k.ingest, "{}", 404, "surgery");
    expect("POST", "/v1/surgeries/basic/close", k2.ingest, "{}", 404, "surgery");
    expect("GET", "/v1/surgeries/basic/usage", k2.staff, NULL, 404, "surgery");
    expect("GET", "/v1/surgeries/nope/usage", k.staff, NULL, 404, "surgery");
    expect("POST", "/v1/surgeries/basic/close", k.viewer, "{}", 403, NULL);
    CHECK_INT(call("GET", "/v1/surgeries/basic/usage", k.staff, NULL, &v), 409);
    CHECK_STR(str(v, "status"), "open");
    yajl_tree_free(v);

    /* close: 202 analyzing, then analyzed off the HTTP threads */
    CHECK_INT(call("POST", "/v1/surgeries/basic/close", k.ingest, "{}", &v), 202);
    CHECK_STR(str(v, "status"), "analyzing");
    yajl_tree_free(v);
    CHECK_INT(usage_settled("basic", &v), 200);
    check_basic(v);
    yajl_tree_free(v);
    /* closed: detections refused, a second close says where it stands */
    expect("POST", "/v1/surgeries/basic/detections?format=ndjson", k.ingest,
           "{\"frame\": 1, \"detections\": []}\n", 409, NULL);
    CHECK_INT(call("POST", "/v1/surgeries/basic/close", k.ingest, "{}", &v), 200);
    CHECK_STR(str(v, "status"), "analyzed");
    yajl_tree_free(v);
    /* re-run: the same answer */
    CHECK_INT(call("POST", "/v1/surgeries/basic/analyze", k.staff, "", &v), 202);
    yajl_tree_free(v);
    CHECK_INT(usage_settled("basic", &v), 200);
    check_basic(v);
    yajl_tree_free(v);

    /* A closed surgery whose job was lost (closed behind the server's back,
     * as a stop leaves it): 202 analyzing until analyze queues it again. */
    put_scenario(k.ingest, "basic", "lost", OTHER_DATE);
    store *s = NULL;
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(store_open(srv.store, NULL, &s, &e) == SL_OK);
    REQUIRE(engine_surgery_transition(s, "h1", "lost", ENGINE_SURGERY_CLOSE, 0, NULL, NULL, &e) ==
            SL_OK);
    store_close(&s);
    CHECK_INT(call("GET", "/v1/surgeries/lost/usage", k.staff, NULL, &v), 202);
    CHECK_STR(str(v, "status"), "analyzing");
    yajl_tree_free(v);
    CHECK_INT(call("POST", "/v1/surgeries/lost/analyze", k.staff, "{}", &v), 202);
    yajl_tree_free(v);
    CHECK_INT(usage_settled("lost", &v), 200);
    check_basic(v);
    yajl_tree_free(v);
}

/* The surgeries of a page: ids into out (comma-separated), next cursor into
 * next ("" on the last page). */
static long list(const char *query, const char *key, char *out, size_t cap, char *next, size_t ncap)
{
    char path[1024];
    yajl_val v = NULL;
    snprintf(path, sizeof path, "/v1/hospitals/" HOSPITAL "/surgeries%s", query);
    long st = call("GET", path, key, NULL, &v);
    out[0] = next[0] = '\0';
    yajl_val a = arr(v, "surgeries");
    for (size_t i = 0; a && i < a->u.array.len; i++) {
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s%s", l ? "," : "", str(a->u.array.values[i], "surgery"));
    }
    snprintf(next, ncap, "%s", str(v, "next"));
    yajl_tree_free(v);
    return st;
}

static void test_listing(void)
{
    char ids[1024], next[4096], q[4200];
    /* lost (2025-12-20) and basic (2026-01-05, the scenario's day) */
    CHECK_INT(list("", k.staff, ids, sizeof ids, next, sizeof next), 200);
    CHECK_STR(ids, "lost,basic");
    CHECK_STR(next, "");
    CHECK_INT(list("?from=2025-12-20&to=2025-12-20", k.staff, ids, sizeof ids, next, sizeof next),
              200);
    CHECK_STR(ids, "lost");
    CHECK_INT(list("?from=2026-01-01", k.staff, ids, sizeof ids, next, sizeof next), 200);
    CHECK_STR(ids, "basic");
    CHECK_INT(list("?procedure=lap-chole", k.staff, ids, sizeof ids, next, sizeof next), 200);
    CHECK_STR(ids, "lost,basic");
    CHECK_INT(list("?procedure=appendectomy", k.staff, ids, sizeof ids, next, sizeof next), 200);
    CHECK_STR(ids, "");
    /* pages of one, followed by the cursor */
    CHECK_INT(list("?limit=1", k.staff, ids, sizeof ids, next, sizeof next), 200);
    CHECK_STR(ids, "lost");
    CHECK(next[0] != '\0');
    snprintf(q, sizeof q, "?limit=1&cursor=%s", next);
    CHECK_INT(list(q, k.staff, ids, sizeof ids, next, sizeof next), 200);
    CHECK_STR(ids, "basic");
    /* a cursor of another listing (another range) does not open */
    CHECK_INT(list("?limit=1", k.staff, ids, sizeof ids, next, sizeof next), 200);
    snprintf(q, sizeof q, "/v1/hospitals/" HOSPITAL "/surgeries?limit=1&from=2026-01-01&cursor=%s",
             next);
    expect("GET", q, k.staff, NULL, 400, "cursor");
    /* another tenant sees none of them */
    CHECK_INT(list("", k2.staff, ids, sizeof ids, next, sizeof next), 200);
    CHECK_STR(ids, "");
    /* parameters out of range, named */
    expect("GET", "/v1/hospitals/" HOSPITAL "/surgeries?from=2026-13-01", k.staff, NULL, 400,
           "from");
    expect("GET", "/v1/hospitals/" HOSPITAL "/surgeries?to=yesterday", k.staff, NULL, 400, "to");
    expect("GET", "/v1/hospitals/" HOSPITAL "/surgeries?from=2026-05-01&to=2026-04-01", k.staff,
           NULL, 400, "from");
    expect("GET", "/v1/hospitals/" HOSPITAL "/surgeries?limit=0", k.staff, NULL, 400, "limit");
    expect("GET", "/v1/hospitals/" HOSPITAL "/surgeries?limit=501", k.staff, NULL, 400, "limit");
    expect("GET", "/v1/hospitals/" HOSPITAL "/surgeries?procedure=a%23b", k.staff, NULL, 400,
           "procedure");
    expect("GET", "/v1/hospitals/" HOSPITAL "/surgeries?sort=x", k.staff, NULL, 400, "sort");
}

/* The recommendations entry of sku, or NULL. */
static yajl_val reco_tool(yajl_val v, const char *sku)
{
    return entry(arr(v, "tools"), sku);
}

static double dbl(yajl_val v, const char *key)
{
    const char *p[] = {key, NULL};
    yajl_val n = v ? yajl_tree_get(v, p, yajl_t_number) : NULL;
    return n ? YAJL_GET_DOUBLE(n) : -1;
}

/* basic and lost: the same four tools, each opened once in both surgeries,
 * the scalpel and the sponge used, the forceps (reusable) and the syringe
 * (35 cents) not, 17 days apart.  The server runs with keep-open 30 %,
 * on-request 70 %, min-span 10 days, so two surgeries decide: the Wilson 95 %
 * interval of 2 of 2 is [0.342380, 1], of 0 of 2 [0, 0.657620] (worked out
 * by hand from the formula, docs/usage.md). */
static void test_recommendations(void)
{
    yajl_val v = NULL, t;
    const char *base = "/v1/hospitals/" HOSPITAL "/recommendations";
    char path[256];
    REQUIRE(ih_wait_listener(srv.store) == 0);
    snprintf(path, sizeof path, "%s?procedure=lap-chole&min_surgeries=2", base);
    CHECK_INT(call("GET", path, k.staff, NULL, &v), 200);
    CHECK_INT(num(v, "surgeries"), 2);
    CHECK_STR(str(v, "first_day"), "2025-12-20");
    CHECK_STR(str(v, "last_day"), "2026-01-05");
    CHECK_INT(num(v, "span_days"), 17);
    CHECK(fabs(dbl(v, "surgeries_per_year") - 43.0) < 1e-9);
    CHECK_INT(arr(v, "tools") ? arr(v, "tools")->u.array.len : 0, 4);
    REQUIRE((t = reco_tool(v, "SCALPEL-10")) != NULL);
    CHECK_INT(num(t, "units_opened"), 2);
    CHECK_INT(num(t, "units_used"), 2);
    CHECK(fabs(dbl(t, "usage_rate") - 1) < 1e-9);
    CHECK(fabs(dbl(t, "usage_rate_low") - 0.342380) < 1e-6);
    CHECK(fabs(dbl(t, "usage_rate_high") - 1) < 1e-9);
    CHECK_STR(str(t, "recommendation"), "keep open");
    CHECK_INT(num(t, "projected_yearly_savings_cents"), 0);
    REQUIRE((t = reco_tool(v, "SYRINGE-10ML")) != NULL);
    CHECK_STR(str(t, "name"), "Syringe 10 ml");
    CHECK(fabs(dbl(t, "usage_rate_high") - 0.657620) < 1e-6);
    CHECK_STR(str(t, "recommendation"), "open on request");
    CHECK_INT(num(t, "waste_cents"), 70);
    /* 70 cents in 17 days: 70 x 365.25 / 17 = 1503.97 a year */
    CHECK_INT(num(t, "projected_yearly_savings_cents"), 1504);
    REQUIRE((t = reco_tool(v, "FORCEPS-ADSON")) != NULL);
    CHECK_STR(str(t, "recommendation"), "open on request");
    CHECK_INT(num(t, "projected_yearly_savings_cents"), 0); /* reusable: no waste */
    CHECK_INT(num(v, "projected_yearly_savings_cents"), 1504);
    /* the most savings first */
    CHECK_STR(str(arr(v, "tools")->u.array.values[0], "sku"), "SYRINGE-10ML");
    yajl_tree_free(v);
    /* fewer surgeries than min_surgeries: review, whatever the rates */
    snprintf(path, sizeof path, "%s?procedure=lap-chole&min_surgeries=3", base);
    CHECK_INT(call("GET", path, k.staff, NULL, &v), 200);
    CHECK_STR(str(reco_tool(v, "SCALPEL-10"), "recommendation"), "review");
    CHECK_STR(str(reco_tool(v, "SYRINGE-10ML"), "recommendation"), "review");
    CHECK_INT(num(v, "projected_yearly_savings_cents"), 0);
    yajl_tree_free(v);
    /* another procedure, another tenant: nothing */
    snprintf(path, sizeof path, "%s?procedure=appendectomy", base);
    CHECK_INT(call("GET", path, k.staff, NULL, &v), 200);
    CHECK_INT(num(v, "surgeries"), 0);
    CHECK_INT(arr(v, "tools")->u.array.len, 0);
    yajl_tree_free(v);
    snprintf(path, sizeof path, "%s?procedure=lap-chole", base);
    CHECK_INT(call("GET", path, k2.staff, NULL, &v), 200);
    CHECK_INT(arr(v, "tools")->u.array.len, 0);
    yajl_tree_free(v);
    /* bad input, named */
    expect("GET", base, k.staff, NULL, 400, "procedure");
    snprintf(path, sizeof path, "%s?procedure=lap-chole&min_surgeries=0", base);
    expect("GET", path, k.staff, NULL, 400, "min_surgeries");
    snprintf(path, sizeof path, "%s?procedure=lap-chole&min_surgeries=x", base);
    expect("GET", path, k.staff, NULL, 400, "min_surgeries");
    snprintf(path, sizeof path, "%s?procedure=lap-chole&from=2026-01-01", base);
    expect("GET", path, k.staff, NULL, 400, "from");
}

int main(void)
{
    REQUIRE(support_tmpdir(dir, "usage") == 0);
    REQUIRE(support_server_init(&srv, NULL, NULL) == 0);
    REQUIRE(support_server_start(&srv, "--access-log", "off", "--recommend-keep-open", "30",
                                 "--recommend-on-request", "70", "--recommend-min-span-days", "10",
                                 (char *)NULL) == 0);
    REQUIRE(ih_tenant(&srv, "h1", &k) == 0);
    REQUIRE(ih_tenant(&srv, "h2", &k2) == 0);
    test_close_and_usage();
    test_listing();
    test_recommendations();
    CHECK_INT(support_server_stop(&srv), 0);
    support_server_cleanup(&srv);
    support_rmrf(dir);
    return check_finish();
}
