/* sim_scenarios_test.c -- every committed scenario (the JSON files of
 * fixtures/scenarios) is simulated and ingested as it is: its truth holds
 * what the scenario is for (nothing used where only flicker, occlusion or
 * on-table moves happen; the feature it is named after really in its
 * frames), and `sightline ingest` takes its frames whole, with the catalog
 * fixture mapping every tool label.  The 3-hour scenario is checked for its
 * truth only (its frames are the bench's). */
#include "sim_test.h"

#include <dirent.h>
#include <unistd.h>

/* What each committed scenario is for.  A scenario added to the folder must
 * be added here (the test fails otherwise), saying what it shows. */
typedef struct expect {
    const char *name;
    int instances, used;
    const char *feature; /* a word of the simulate summary that must count > 0, or NULL */
} expect;

static const expect expected[] = {
    {"basic", 4, 2, NULL},
    {"false-positives", 6, 2, "false positives"},
    {"flicker", 8, 0, "miss bursts"},
    {"identical-side-by-side", 9, 3, NULL},
    {"label-variants", 6, 2, "variants"},
    {"miss-bursts", 6, 2, "miss bursts"},
    {"mixed", 20, 10, "seen off it"},
    {"moves", 6, 0, NULL},
    {"occlusion", 8, 0, "hidden by occluders"},
    {"opened-late", 6, 3, NULL},
    {"put-back-elsewhere", 6, 4, "seen off it"},
};

/* The count printed before `word` in the summary ("... 1115 false positives"). */
static long long summary_count(const char *summary, const char *word)
{
    const char *counts = strstr(summary, "used); "); /* past the file and scenario names */
    const char *w = counts ? strstr(counts, word) : NULL;
    if (!w)
        return -1;
    const char *p = w - 1;
    while (p > counts && p[-1] >= '0' && p[-1] <= '9')
        p--;
    return strtoll(p, NULL, 10);
}

/* Counts of instances: lying in two places or more, opened after the start,
 * second of their SKU, returned, used and never returned. */
typedef struct facts {
    int multi_slot, late, twins, returned, carried;
} facts;

static facts truth_facts(yajl_val t)
{
    facts f = {0};
    const char *ip[] = {"instances", NULL}, *sp[] = {"slots", NULL};
    yajl_val a = yajl_tree_get(t, ip, yajl_t_array);
    REQUIRE(a);
    for (size_t i = 0; i < a->u.array.len; i++) {
        yajl_val o = a->u.array.values[i];
        yajl_val s = yajl_tree_get(o, sp, yajl_t_array);
        f.multi_slot += s && s->u.array.len >= 2;
        f.late += sim_int(o, "opened_at_frame") > 0;
        f.returned += sim_int(o, "returned_at_frame") >= 0;
        f.carried += sim_int(o, "used") == 1 && sim_int(o, "returned_at_frame") == -1;
        f.twins += sim_int(o, "instance") == 2;
    }
    return f;
}

static void one(const char *store, const expect *e)
{
    char scenario[512], frames[256], truth[256], surgery[256];
    snprintf(scenario, sizeof scenario, "%s/%s.json", SIM_SCENARIOS, e->name);
    snprintf(frames, sizeof frames, "%s", sim_path("frames.ndjson"));
    snprintf(truth, sizeof truth, "%s/%s.truth.json", sim_dir, e->name);
    snprintf(surgery, sizeof surgery, "%s", sim_path("surgery.json"));
    sim_run_result r;
    SIM_RUN(&r, "simulate", scenario, "-o", frames, "--format", "ndjson", "--truth", truth,
            "--surgery", surgery);
    CHECK_INT(r.code, 0);
    if (r.code) {
        fprintf(stderr, "%s: %s", e->name, r.err);
        return;
    }
    fprintf(stderr, "%s", r.out);
    yajl_val t = sim_truth(truth);
    CHECK_INT(sim_total(t, "instances"), e->instances);
    CHECK_INT(sim_total(t, "opened"), e->instances);
    CHECK_INT(sim_total(t, "used"), e->used);
    facts f = truth_facts(t);
    yajl_tree_free(t);
    if (e->feature) {
        long long n = summary_count(r.out, e->feature);
        if (n <= 0)
            fprintf(stderr, "%s: no %s\n", e->name, e->feature);
        CHECK(n > 0);
    }
    if (!strcmp(e->name, "moves")) /* moved on the table, every one but one */
        CHECK_INT(f.multi_slot, 5);
    if (!strcmp(e->name, "put-back-elsewhere")) { /* two put back elsewhere, one carried away */
        CHECK_INT(f.multi_slot, 2);
        CHECK_INT(f.carried, 1);
        CHECK_INT(f.returned, 3);
    }
    if (!strcmp(e->name, "identical-side-by-side"))
        CHECK_INT(f.twins, 4);
    if (!strcmp(e->name, "opened-late"))
        CHECK_INT(f.late, 4);
    if (!strcmp(e->name, "mixed")) {
        CHECK(f.late >= 3 && f.twins >= 3 && f.carried >= 2 && f.returned >= 2);
        CHECK(summary_count(r.out, "false positives") > 0 &&
              summary_count(r.out, "hidden by occluders") > 0 &&
              summary_count(r.out, "miss bursts") > 0 && summary_count(r.out, "variants") > 0);
    }
    /* ingest takes it as it is */
    unsigned long long nframes = 0, empty = 0, dets = 0;
    const char *s = strstr(r.out, "used); ");
    REQUIRE(s && sscanf(s + 7, "%llu frames (%llu empty), %llu detections", &nframes, &empty,
                        &dets) == 3);
    SIM_RUN(&r, "ingest", "--store", store, "--tenant", "acme", "--surgery", e->name, "--format",
            "surgery", surgery);
    CHECK_INT(r.code, 0);
    SIM_RUN(&r, "ingest", "--store", store, "--tenant", "acme", "--surgery", e->name, "--format",
            "ndjson", frames);
    CHECK_INT(r.code, 0);
    char want[256];
    snprintf(want, sizeof want, ": %llu frames (", nframes);
    CHECK(strstr(r.out, want) != NULL);
    snprintf(want, sizeof want, "), %llu detections, ", dets);
    CHECK(strstr(r.out, want) != NULL);
    if (!strstr(r.out, want))
        fprintf(stderr, "%s: ingest said %s%s", e->name, r.out, r.err);
    unlink(frames);
}

int main(void)
{
    REQUIRE(support_tmpdir(sim_dir, "scen") == 0);
    char store[256];
    snprintf(store, sizeof store, "sqlite:%s/store.db", sim_dir);
    REQUIRE(support_tenant(store, "acme", "hospital") == 0);
    CHECK(sim_put_catalog(store, "acme") >= 20);

    /* every scenario of the folder is listed above */
    DIR *d = opendir(SIM_SCENARIOS);
    REQUIRE(d);
    int listed = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t l = strlen(e->d_name);
        if (l <= 5 || strcmp(e->d_name + l - 5, ".json"))
            continue;
        bool known = !strcmp(e->d_name, "long-3h-60tools.json");
        for (size_t i = 0; i < sizeof expected / sizeof expected[0] && !known; i++)
            known =
                strlen(expected[i].name) == l - 5 && !strncmp(e->d_name, expected[i].name, l - 5);
        if (!known)
            fprintf(stderr, "scenario %s is not listed in %s\n", e->d_name, __FILE__);
        CHECK(known);
        listed++;
    }
    closedir(d);
    CHECK_INT(listed, (int)(sizeof expected / sizeof expected[0]) + 1);

    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
        one(store, &expected[i]);

    /* the long one: its truth (its frames are for bench/usage_bench) */
    sim_run_result r;
    SIM_RUN(&r, "simulate", SIM_SCENARIOS "/long-3h-60tools.json", "--truth",
            sim_path("long.truth.json"));
    CHECK_INT(r.code, 0);
    yajl_val t = sim_truth(sim_path("long.truth.json"));
    CHECK_INT(sim_int(t, "frames"), 3 * 3600 * 30);
    CHECK_INT(sim_total(t, "instances"), 60);
    CHECK_INT(sim_total(t, "opened"), 60);
    CHECK(sim_total(t, "used") >= 15);
    yajl_tree_free(t);
    support_rmrf(sim_dir);
    return check_finish();
}
