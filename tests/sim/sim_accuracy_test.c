/* sim_accuracy_test.c -- the analyzer against the oracle (issue 11, "Done
 * when"): every committed scenario but the 3-hour one is simulated, ingested
 * (NDJSON or darknet, in turn), closed, analyzed by the real binary
 * (`sightline analyze`, default parameters) and scored by `sightline
 * evaluate`, whose table this test prints.  It fails when the overall F1 of
 * "used" is under 0.98, a waste-cost error is over 2 %, or a scenario in
 * which nothing is used (flicker, occlusion, on-table moves) gets a tool
 * marked used.  Also the CLI's refusals and its idempotent re-run. */
#include "engine/engine.h"
#include "sim_test.h"

#include <unistd.h>

static char store_uri[256];

static void close_surgery(const char *id)
{
    store *s = NULL;
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(store_open(store_uri, NULL, &s, &e) == SL_OK);
    if (engine_surgery_transition(s, "acme", id, ENGINE_SURGERY_CLOSE, 0, NULL, NULL, &e) != SL_OK)
        fprintf(stderr, "close %s: %s\n", id, e.message);
    store_close(&s);
}

/* The scenarios of the folder (names without .json), the long one left out. */
static int scenarios(char names[][64], int max)
{
    DIR *d = opendir(SIM_SCENARIOS);
    REQUIRE(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t l = strlen(e->d_name);
        if (l <= 5 || strcmp(e->d_name + l - 5, ".json") || strstr(e->d_name, "long-"))
            continue;
        REQUIRE(n < max && l - 5 < 64);
        snprintf(names[n++], 64, "%.*s", (int)(l - 5), e->d_name);
    }
    closedir(d);
    /* name order, so the formats fall the same way every run */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char t[64];
            memcpy(t, names[j], 64);
            memcpy(names[j], names[j - 1], 64);
            memcpy(names[j - 1], t, 64);
        }
    return n;
}

static void one(const char *name, int i)
{
    char scenario[512], frames[256], truth[256], surgery[256];
    const char *format = i % 2 ? "darknet" : "ndjson";
    snprintf(scenario, sizeof scenario, "%s/%s.json", SIM_SCENARIOS, name);
    snprintf(frames, sizeof frames, "%s", sim_path("frames.json"));
    snprintf(truth, sizeof truth, "%s/truth/%s.truth.json", sim_dir, name);
    snprintf(surgery, sizeof surgery, "%s", sim_path("surgery.json"));
    sim_run_result r;
    SIM_RUN(&r, "simulate", scenario, "-o", frames, "--format", format, "--truth", truth,
            "--surgery", surgery);
    REQUIRE(r.code == 0);
    SIM_RUN(&r, "ingest", "--store", store_uri, "--tenant", "acme", "--surgery", name, "--format",
            "surgery", surgery);
    REQUIRE(r.code == 0);
    SIM_RUN(&r, "ingest", "--store", store_uri, "--tenant", "acme", "--surgery", name, "--format",
            format, frames);
    REQUIRE(r.code == 0);
    unlink(frames);
    if (i == 0) { /* open: refused, unless --force (which leaves it open) */
        SIM_RUN(&r, "analyze", "--store", store_uri, "--tenant", "acme", name);
        CHECK_INT(r.code, 1);
        CHECK(strstr(r.err, "is open: close it first") != NULL);
        SIM_RUN(&r, "analyze", "--store", store_uri, "--tenant", "acme", "--force", name);
        CHECK_INT(r.code, 0);
        CHECK(strstr(r.out, "; open\n") != NULL);
    }
    if (i == 1) { /* closed by the CLI itself */
        SIM_RUN(&r, "analyze", "--store", store_uri, "--tenant", "acme", "--close", "--force",
                name);
        CHECK_INT(r.code, 2);
        SIM_RUN(&r, "analyze", "--store", store_uri, "--tenant", "acme", "--close", name);
        CHECK_INT(r.code, 0);
        CHECK(strstr(r.out, "; analyzed\n") != NULL);
        /* closed now: detections refused */
        SIM_RUN(&r, "ingest", "--store", store_uri, "--tenant", "acme", "--surgery", name,
                "--format", "ndjson", SIM_SCENARIOS "/../ndjson/frames.ndjson");
        CHECK_INT(r.code, 1);
    } else {
        close_surgery(name);
    }
    SIM_RUN(&r, "analyze", "--store", store_uri, "--tenant", "acme", name);
    CHECK_INT(r.code, 0);
    fprintf(stderr, "%s (%s): %s%s", name, format, r.out, r.err);
}

int main(void)
{
    REQUIRE(support_tmpdir(sim_dir, "acc") == 0);
    snprintf(store_uri, sizeof store_uri, "sqlite:%s/store.db", sim_dir);
    REQUIRE(mkdir(sim_path("truth"), 0700) == 0);
    REQUIRE(support_tenant(store_uri, "acme", "hospital") == 0);
    CHECK(sim_put_catalog(store_uri, "acme") >= 20);

    char names[64][64];
    int n = scenarios(names, 64);
    CHECK(n >= 11);
    for (int i = 0; i < n; i++)
        one(names[i], i);

    /* The score. */
    sim_run_result r;
    SIM_RUN(&r, "evaluate", "--truth", sim_path("truth"), "--tenant", "acme", "--store", store_uri,
            "--min-f1", "0.98", "--max-waste-error", "0.02");
    fprintf(stderr, "%s%s", r.out, r.err);
    CHECK_INT(r.code, 0);
    CHECK(strstr(r.out, "ok: overall F1 of used") != NULL);

    /* Nothing used where nothing is: each scenario whose truth uses nothing
     * (flicker, occlusion, moves among them) has no result used. */
    SIM_RUN(&r, "evaluate", "--truth", sim_path("truth"), "--tenant", "acme", "--store", store_uri,
            "--json");
    CHECK_INT(r.code, 0);
    char why[256];
    yajl_val v = yajl_tree_parse(r.out, why, sizeof why);
    REQUIRE(v);
    const char *sp[] = {"scenarios", NULL};
    yajl_val a = yajl_tree_get(v, sp, yajl_t_array);
    REQUIRE(a);
    int quiet = 0, named = 0;
    for (size_t i = 0; i < a->u.array.len; i++) {
        yajl_val s = a->u.array.values[i];
        const char *np[] = {"scenario", NULL};
        const char *name = YAJL_GET_STRING(yajl_tree_get(s, np, yajl_t_string));
        if (sim_int(s, "truth_used") != 0)
            continue;
        quiet++;
        named += !strcmp(name, "flicker") || !strcmp(name, "occlusion") || !strcmp(name, "moves");
        if (sim_int(s, "result_used") != 0)
            fprintf(stderr, "%s: %lld used where nothing is\n", name, sim_int(s, "result_used"));
        CHECK_INT(sim_int(s, "result_used"), 0);
    }
    CHECK_INT(named, 3);
    CHECK(quiet >= 3);
    yajl_tree_free(v);

    /* Again with the same frames, catalog and parameters: nothing written. */
    SIM_RUN(&r, "analyze", "--store", store_uri, "--tenant", "acme", "mixed");
    CHECK_INT(r.code, 0);
    CHECK(strstr(r.out, "0 documents written, 0 deleted") != NULL);
    /* Bad usage: exit 2 naming what is wrong. */
    SIM_RUN(&r, "analyze", "--store", store_uri, "--tenant", "acme", "--param", "leave_ms=0",
            "mixed");
    CHECK_INT(r.code, 2);
    CHECK(strstr(r.err, "leave_ms must be an integer from 1 to 3600000, not \"0\"") != NULL);
    SIM_RUN(&r, "analyze", "--store", store_uri, "mixed");
    CHECK_INT(r.code, 2);
    SIM_RUN(&r, "analyze", "--store", store_uri, "--tenant", "acme", "nope");
    CHECK_INT(r.code, 1);
    CHECK(strstr(r.err, "no surgery \"nope\" in tenant \"acme\"") != NULL);
    SIM_RUN(&r, "analyze", "--help");
    CHECK_INT(r.code, 0);
    CHECK(strstr(r.out, "leave_ms") != NULL && strstr(r.out, "occluder_pattern") != NULL);

    support_rmrf(sim_dir);
    return check_finish();
}
