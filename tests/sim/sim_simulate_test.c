/* sim_simulate_test.c -- `sightline simulate` as a real process: the usage
 * and scenario errors (each naming the JSON path at fault, writing nothing),
 * determinism (same seed, same bytes; another seed, other frames and the same
 * truth), the truth on hand-checkable scenarios, each realism knob doing what
 * it says, both formats accepted by `sightline ingest` as they are, and
 * outputs that are not regular files (a FIFO, /dev/full) written in place. */
#include "sim_test.h"

#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static bool same_file(const char *a, const char *b)
{
    size_t la = 0, lb = 0;
    char *x = support_read_file(a, &la), *y = support_read_file(b, &lb);
    bool same = x && y && la == lb && !memcmp(x, y, la);
    free(x);
    free(y);
    return same;
}

/* ---------------------------------------------------------------------------
 * Usage and scenario errors.
 * ------------------------------------------------------------------------- */
static void test_usage(void)
{
    sim_run_result r;
    SIM_RUN(&r, "simulate", "--help");
    CHECK_INT(r.code, 0);
    CHECK(strstr(r.out, "usage: sightline simulate SCENARIO.json -o FRAMES") != NULL);
    SIM_RUN(&r, "simulate", "-o", sim_path("x.json"));
    CHECK_INT(r.code, 2);
    CHECK(strstr(r.err, "name one SCENARIO.json") != NULL);
    SIM_RUN(&r, "simulate", SIM_SCENARIOS "/basic.json");
    CHECK_INT(r.code, 2);
    CHECK(strstr(r.err, "nothing to write") != NULL);
    SIM_RUN(&r, "simulate", SIM_SCENARIOS "/basic.json", "-o", sim_path("x.json"), "--format",
            "yolo");
    CHECK_INT(r.code, 2);
    CHECK(strstr(r.err, "--format is darknet or ndjson, not \"yolo\"") != NULL);
    SIM_RUN(&r, "simulate", SIM_SCENARIOS "/basic.json", "-o", sim_path("x.json"), "--seed", "-1");
    CHECK_INT(r.code, 2);
    SIM_RUN(&r, "simulate", SIM_SCENARIOS "/basic.json", SIM_SCENARIOS "/moves.json", "-o",
            sim_path("x.json"));
    CHECK_INT(r.code, 2);
    CHECK(strstr(r.err, "not several") != NULL);
    SIM_RUN(&r, "simulate", SIM_SCENARIOS "/basic.json", "--truth", "-");
    CHECK_INT(r.code, 2);
    CHECK(!sim_exists(sim_path("x.json")));
}

/* A bad scenario: exit 1, the message and the path named, nothing written
 * (and a file already at the output's name left as it was). */
static void bad(const char *rest, const char *message, const char *at)
{
    const char *sc = sim_scenario("bad.json", 60, rest);
    const char *frames = sim_path("bad-frames.json"), *truth = sim_path("bad-truth.json");
    sim_write(truth, "kept\n");
    sim_run_result r;
    SIM_RUN(&r, "simulate", sc, "-o", frames, "--truth", truth);
    CHECK_INT(r.code, 1);
    char want[256];
    snprintf(want, sizeof want, "(at %s)", at);
    if (!strstr(r.err, message) || !strstr(r.err, want))
        fprintf(stderr, "expected \"%s\" %s in: %s", message, want, r.err);
    CHECK(strstr(r.err, message) != NULL);
    CHECK(strstr(r.err, want) != NULL);
    CHECK(!sim_exists(frames));
    char *kept = support_read_file(truth, &(size_t){0});
    CHECK(kept && !strcmp(kept, "kept\n"));
    free(kept);
}

#define TOOL "{\"sku\": \"SCALPEL-10\", \"label\": \"scalpel\", \"slot\": [0.1, 0.6, 0.05, 0.08]"

static void test_bad_scenarios(void)
{
    sim_run_result r;
    /* top level */
    const char *p = sim_path("nofps.json");
    sim_write(p,
              "{\"catalog\": \"%s\", \"frame_width\": 1280, \"frame_height\": 720, "
              "\"duration_s\": 10, \"table\": [[0,0],[1,0],[1,1]], \"tools\": []}",
              SIM_CATALOG);
    SIM_RUN(&r, "simulate", p, "--truth", sim_path("t.json"));
    CHECK_INT(r.code, 1);
    CHECK(strstr(r.err, "is required (at fps)") != NULL);
    sim_write(p, "{\"fps\": 30, \"fps\": 25}");
    SIM_RUN(&r, "simulate", p, "--truth", sim_path("t.json"));
    CHECK_INT(r.code, 1);
    CHECK(strstr(r.err, "fps") != NULL && strstr(r.err, "nofps.json") != NULL);
    SIM_RUN(&r, "simulate", sim_path("missing.json"), "--truth", sim_path("t.json"));
    CHECK_INT(r.code, 1);
    CHECK(strstr(r.err, "missing.json: cannot open") != NULL);
    bad("\"tools\": [], \"name\": \"a/b\"", "surgery id", "name");
    bad("\"tools\": [], \"colour\": 1", "unknown member \"colour\"", "colour");
    bad("\"tools\": [], \"detector\": {\"miss_rte\": 0.1}", "unknown member \"miss_rte\"",
        "detector.miss_rte");
    bad("\"tools\": [], \"detector\": {\"miss_rate\": 1.5}", "1.5 is outside [0, 1]",
        "detector.miss_rate");
    bad("\"tools\": [], \"detector\": {\"miss_bursts\": {\"per_minute\": 1, \"min_frames\": 9, "
        "\"max_frames\": 3}}",
        "is below min_frames", "detector.miss_bursts.max_frames");
    bad("\"tools\": [], \"detector\": {\"false_positives\": {\"per_frame\": 1, \"labels\": "
        "[\"cup\", \"Scalpel #10\"]}}",
        "maps to SCALPEL-10", "detector.false_positives.labels[1]");
    bad("\"tools\": [], \"detector\": {\"false_positives\": {\"per_frame\": 1}}",
        "random labels are needed", "detector.false_positives.labels");
    /* tools */
    bad("\"tools\": [{\"sku\": \"NOPE\", \"label\": \"scalpel\", \"slot\": [0.1, 0.6, 0.05, "
        "0.08]}]",
        "\"NOPE\" is not in the catalog", "tools[0].sku");
    bad("\"tools\": [{\"sku\": \"SCALPEL-10\", \"label\": [\"scalpel\", \"forceps\"], \"slot\": "
        "[0.1, 0.6, 0.05, 0.08]}]",
        "\"forceps\" maps to FORCEPS-ADSON in the catalog, not to the tool's SCALPEL-10",
        "tools[0].label[1]");
    bad("\"tools\": [{\"sku\": \"SCALPEL-10\", \"label\": \"scalpel holder\", \"slot\": [0.1, 0.6, "
        "0.05, 0.08]}]",
        "matches no pattern of the catalog", "tools[0].label");
    bad("\"tools\": [{\"sku\": \"SCALPEL-10\", \"label\": \"scalpel\", \"slot\": [0.1, 0.1, 0.05, "
        "0.08]}]",
        "is not on the table", "tools[0].slot");
    bad("\"tools\": [{\"sku\": \"SCALPEL-10\", \"label\": \"scalpel\", \"slot\": [0.97, 0.6, 0.05, "
        "0.08]}]",
        "reaches past the image", "tools[0].slot");
    bad("\"tools\": [" TOOL ", \"events\": [{\"pick_up_at\": 20, \"put_back_at\": 10}]}]",
        "is not after pick_up_at (20 s)", "tools[0].events[0].put_back_at");
    bad("\"tools\": [" TOOL ", \"events\": [{\"pick_up_at\": 20}, {\"pick_up_at\": 30}]}]",
        "carried away by an earlier event", "tools[0].events[1]");
    bad("\"tools\": [" TOOL ", \"events\": [{\"pick_up_at\": 20, \"put_back_at\": 30}, "
        "{\"pick_up_at\": 25}]}]",
        "is not after the previous change", "tools[0].events[1].pick_up_at");
    bad("\"tools\": [" TOOL ", \"events\": [{\"pick_up_at\": 61}]}]", "is past the end",
        "tools[0].events[0].pick_up_at");
    bad("\"tools\": [" TOOL ", \"events\": [{\"move_to\": [0.3, 0.6, 0.05, 0.08], \"at\": 5, "
        "\"put_back_at\": 9}]}]",
        "belongs to a pick-up", "tools[0].events[0].put_back_at");
    bad("\"tools\": [" TOOL ", \"events\": [{\"at\": 5}]}]", "either a pick-up",
        "tools[0].events[0]");
    bad("\"tools\": [" TOOL ", \"events\": [{\"pick_up_at\": 5, \"put_back_slot\": [0.3, 0.6, "
        "0.05, 0.08]}]}]",
        "needs put_back_at", "tools[0].events[0].put_back_slot");
    bad("\"tools\": [" TOOL ", \"events\": [{\"pick_up_at\": 5, \"seen_at\": [0.3, 0.6, 0.05, "
        "0.08]}]}]",
        "is on the table", "tools[0].events[0].seen_at");
    bad("\"tools\": [" TOOL ", \"opened_at\": 60}]", "is past the end", "tools[0].opened_at");
    /* people and hands */
    bad("\"tools\": [], \"people\": [{\"label\": \"sponge\", \"from\": 1, \"to\": 2, \"path\": "
        "[[0.1, 0.6, 0.1, 0.1]]}]",
        "maps to SPONGE-LAP", "people[0].label");
    bad("\"tools\": [], \"people\": [{\"label\": \"hand\", \"from\": 3, \"to\": 2, \"path\": "
        "[[0.1, 0.6, 0.1, 0.1]]}]",
        "is not after from", "people[0].to");
    bad("\"tools\": [], \"people\": [{\"label\": \"hand\", \"from\": 1, \"to\": 2, \"path\": []}]",
        "1 to 64 boxes", "people[0].path");
    bad("\"tools\": [], \"hands\": {\"per_minute\": 2, \"labels\": []}", "1 to 64 labels",
        "hands.labels");
    bad("\"tools\": [], \"reach_label\": \"glove\"", "maps to GLOVES-7", "reach_label");
    /* more distinct labels than ingest takes in one input (4,096) */
    static char many[300 * 16 * 24 + 4096];
    size_t used = (size_t)snprintf(many, sizeof many, "\"tools\": [");
    for (int t = 0, n = 0; t < 300; t++) {
        used += (size_t)snprintf(many + used, sizeof many - used,
                                 "%s{\"sku\": \"SUTURE-VICRYL-30\", \"slot\": [0.1, 0.6, 0.05, "
                                 "0.08], \"label\": [",
                                 t ? ", " : "");
        for (int k = 0; k < 14; k++, n++)
            used += (size_t)snprintf(many + used, sizeof many - used, "%s\"vicryl %d\"",
                                     k ? ", " : "", n);
        used += (size_t)snprintf(many + used, sizeof many - used, "]}");
    }
    snprintf(many + used, sizeof many - used, "]");
    bad(many, "4200 distinct labels", "tools");
}

/* ---------------------------------------------------------------------------
 * Determinism and formats.
 * ------------------------------------------------------------------------- */
static void test_determinism(void)
{
    sim_run_result r;
    const char *sc = SIM_SCENARIOS "/mixed.json";
    SIM_RUN(&r, "simulate", sc, "-o", sim_path("a.json"), "--truth", sim_path("a.truth.json"));
    CHECK_INT(r.code, 0);
    CHECK(strstr(r.out, "scenario mixed, seed 11:") != NULL); /* the scenario's own seed */
    SIM_RUN(&r, "simulate", sc, "-o", sim_path("b.json"), "--truth", sim_path("b.truth.json"),
            "--seed", "11");
    CHECK_INT(r.code, 0);
    CHECK(strstr(r.out, "seed 11:") != NULL);
    CHECK(same_file(sim_path("a.json"), sim_path("b.json")));
    CHECK(same_file(sim_path("a.truth.json"), sim_path("b.truth.json")));
    SIM_RUN(&r, "simulate", sc, "-o", sim_path("c.json"), "--truth", sim_path("c.truth.json"),
            "--seed", "12");
    CHECK_INT(r.code, 0);
    CHECK(strstr(r.out, "seed 12:") != NULL);
    CHECK(!same_file(sim_path("a.json"), sim_path("c.json")));
    /* the truth is what happened, whatever the detector saw */
    CHECK(same_file(sim_path("a.truth.json"), sim_path("c.truth.json")));
    /* -o -: the frames on stdout, the summary on stderr */
    SIM_RUN(&r, "simulate", SIM_SCENARIOS "/basic.json", "-o", "-", "--format", "ndjson");
    CHECK_INT(r.code, 0);
    CHECK(!strncmp(r.out, "{\"frame\": 0, \"detections\": [{\"label\": \"scalpel\"", 47));
    CHECK(strstr(r.err, "1800 frames (0 empty), 5550 detections") != NULL);
    for (const char *p = "a.json\0b.json\0c.json\0"; *p; p += strlen(p) + 1)
        unlink(sim_path(p));
}

/* Counts of what ingest said for a file. */
static void expect_ingest(const char *store, const char *surgery, const char *format,
                          const char *file, const char *want)
{
    sim_run_result r;
    SIM_RUN(&r, "ingest", "--store", store, "--tenant", "acme", "--surgery", surgery, "--format",
            format, file);
    CHECK_INT(r.code, 0);
    if (!strstr(r.out, want))
        fprintf(stderr, "expected \"%s\" in: %s%s", want, r.out, r.err);
    CHECK(strstr(r.out, want) != NULL);
}

static void test_ingest_accepts(void)
{
    char store[256];
    snprintf(store, sizeof store, "sqlite:%s/ingest.db", sim_dir);
    REQUIRE(support_tenant(store, "acme", "hospital") == 0);
    sim_run_result r;
    /* the catalog fixture: every entry is a PUT /v1/catalog/{sku} body */
    CHECK(sim_put_catalog(store, "acme") >= 20);
    SIM_RUN(&r, "simulate", SIM_SCENARIOS "/basic.json", "-o", sim_path("basic.darknet.json"),
            "--surgery", sim_path("basic.surgery.json"));
    CHECK_INT(r.code, 0);
    CHECK(strstr(r.out, "1800 frames (0 empty), 5550 detections") != NULL);
    SIM_RUN(&r, "simulate", SIM_SCENARIOS "/basic.json", "-o", sim_path("basic.ndjson"), "--format",
            "ndjson");
    CHECK_INT(r.code, 0);
    SIM_RUN(&r, "ingest", "--store", store, "--tenant", "acme", "--surgery", "basic", "--format",
            "surgery", sim_path("basic.surgery.json"));
    CHECK_INT(r.code, 0);
    expect_ingest(store, "basic", "darknet", sim_path("basic.darknet.json"),
                  "1800 frames (0 empty), 5550 detections, 0 unmapped, frames 0-1799, 1800 "
                  "changed");
    /* the same detections in the other format store the same documents */
    expect_ingest(store, "basic", "ndjson", sim_path("basic.ndjson"),
                  "1800 frames (0 empty), 5550 detections, 0 unmapped, frames 0-1799, 0 changed");

    /* everything at once: occluders, false positives, variants, seen off the table */
    SIM_RUN(&r, "simulate", SIM_SCENARIOS "/false-positives.json", "-o",
            sim_path("fp.darknet.json"), "--surgery", sim_path("fp.surgery.json"));
    CHECK_INT(r.code, 0);
    unsigned long long frames = 0, dets = 0;
    const char *s = strstr(r.out, "instances");
    REQUIRE(s && sscanf(strstr(s, "; ") + 2, "%llu frames (0 empty), %llu detections", &frames,
                        &dets) == 2);
    SIM_RUN(&r, "simulate", SIM_SCENARIOS "/false-positives.json", "-o", sim_path("fp.ndjson"),
            "--format", "ndjson");
    CHECK_INT(r.code, 0);
    SIM_RUN(&r, "ingest", "--store", store, "--tenant", "acme", "--surgery", "fp", "--format",
            "surgery", sim_path("fp.surgery.json"));
    CHECK_INT(r.code, 0);
    /* unmapped: the random labels and the hands, nothing of the catalog's */
    unsigned long long unmapped = 0;
    long long nframes = 0;
    FILE *f = fopen(sim_path("fp.ndjson"), "rb");
    REQUIRE(f);
    char line[65536];
    static const char *const free_labels[] = {"\"cup\"", "\"bottle\"", "\"cell phone\"", "\"pen\"",
                                              "\"hand\""};
    while (fgets(line, sizeof line, f)) {
        nframes++;
        for (size_t i = 0; i < 5; i++)
            for (const char *q = line; (q = strstr(q, free_labels[i])) != NULL; q++)
                unmapped++;
    }
    fclose(f);
    CHECK_INT(nframes, (long long)frames);
    CHECK(unmapped > 1000);
    char want[256];
    snprintf(want, sizeof want, "%llu frames (0 empty), %llu detections, %llu unmapped in 5 labels",
             frames, dets, unmapped);
    expect_ingest(store, "fp", "darknet", sim_path("fp.darknet.json"), want);
    /* the same but for boxes cut at the picture's edge, where the darknet
     * box rounds a millionth past it (NDJSON may not) */
    snprintf(want, sizeof want, "%llu frames (0 empty), %llu detections, %llu unmapped in 5 labels",
             frames, dets, unmapped);
    expect_ingest(store, "fp", "ndjson", sim_path("fp.ndjson"), want);
}

/* ---------------------------------------------------------------------------
 * Truth on hand-checkable scenarios.
 * ------------------------------------------------------------------------- */
static void test_truth(void)
{
    sim_run_result r;
    SIM_RUN(&r, "simulate", SIM_SCENARIOS "/basic.json", "--truth", sim_path("basic.truth.json"));
    CHECK_INT(r.code, 0);
    CHECK(strstr(r.out, "scenario basic, seed 1: 4 instances (2 used)") != NULL);
    yajl_val t = sim_truth(sim_path("basic.truth.json"));
    /* picked up at 10 s, put back at 25 s, at 30 frames/s */
    yajl_val i = sim_truth_instance(t, "SCALPEL-10", 1);
    REQUIRE(i);
    CHECK_INT(sim_int(i, "opened"), 1);
    CHECK_INT(sim_int(i, "used"), 1);
    CHECK_INT(sim_int(i, "opened_at_frame"), 0);
    CHECK_INT(sim_int(i, "left_at_frame"), 300);
    CHECK_INT(sim_int(i, "returned_at_frame"), 750);
    /* carried away at 20 s */
    REQUIRE((i = sim_truth_instance(t, "SPONGE-LAP", 1)));
    CHECK_INT(sim_int(i, "used"), 1);
    CHECK_INT(sim_int(i, "left_at_frame"), 600);
    CHECK_INT(sim_int(i, "returned_at_frame"), -1);
    /* slid across the table: never left it */
    REQUIRE((i = sim_truth_instance(t, "FORCEPS-ADSON", 1)));
    CHECK_INT(sim_int(i, "opened"), 1);
    CHECK_INT(sim_int(i, "used"), 0);
    CHECK_INT(sim_int(i, "left_at_frame"), -1);
    const char *sp[] = {"slots", NULL};
    yajl_val slots = yajl_tree_get(i, sp, yajl_t_array);
    CHECK(slots && slots->u.array.len == 2);
    REQUIRE((i = sim_truth_instance(t, "SYRINGE-10ML", 1)));
    CHECK_INT(sim_int(i, "used"), 0);
    CHECK_INT(sim_total(t, "opened"), 4);
    CHECK_INT(sim_total(t, "used"), 2);
    CHECK_INT(sim_total(t, "unused"), 2);
    CHECK_INT(sim_total(t, "waste_cost_cents"), 35); /* the syringe; the forceps are reusable */
    yajl_tree_free(t);

    /* windows (defaults: 2 s on the table to be opened, 2 s off it to be
     * used) and instance numbers (per SKU, in order of first appearance,
     * left to right among tools opened together) */
    const char *sc = sim_scenario(
        "windows.json", 60,
        "\"tools\": ["
        "{\"sku\": \"SPONGE-LAP\", \"label\": \"sponge\", \"slot\": [0.30, 0.6, 0.05, 0.08], "
        "\"events\": [{\"pick_up_at\": 10, \"put_back_at\": 11.9}]},"
        "{\"sku\": \"SPONGE-LAP\", \"label\": \"sponge\", \"slot\": [0.20, 0.6, 0.05, 0.08], "
        "\"events\": [{\"pick_up_at\": 10, \"put_back_at\": 12}]},"
        "{\"sku\": \"SPONGE-LAP\", \"label\": \"sponge\", \"slot\": [0.10, 0.6, 0.05, 0.08], "
        "\"opened_at\": 20},"
        "{\"sku\": \"SCALPEL-10\", \"label\": \"scalpel\", \"slot\": [0.5, 0.6, 0.05, 0.08], "
        "\"opened_at\": 58},"
        "{\"sku\": \"SCALPEL-10\", \"label\": \"scalpel\", \"slot\": [0.6, 0.6, 0.05, 0.08], "
        "\"opened_at\": 58.5},"
        "{\"sku\": \"TROCAR-5\", \"label\": \"trocar\", \"slot\": [0.7, 0.6, 0.05, 0.08], "
        "\"events\": [{\"pick_up_at\": 1}, {\"pick_up_at\": 3}]}]");
    SIM_RUN(&r, "simulate", sc, "--truth", sim_path("windows.truth.json"));
    CHECK_INT(r.code, 1); /* nothing follows a carry-away */
    CHECK(strstr(r.err, "(at tools[5].events[1])") != NULL);
    sc = sim_scenario(
        "windows.json", 60,
        "\"truth\": {\"open_s\": 2, \"leave_s\": 2}, \"tools\": ["
        "{\"sku\": \"SPONGE-LAP\", \"label\": \"sponge\", \"slot\": [0.30, 0.6, 0.05, 0.08], "
        "\"events\": [{\"pick_up_at\": 10, \"put_back_at\": 11.9}]},"
        "{\"sku\": \"SPONGE-LAP\", \"label\": \"sponge\", \"slot\": [0.20, 0.6, 0.05, 0.08], "
        "\"events\": [{\"pick_up_at\": 10, \"put_back_at\": 12}]},"
        "{\"sku\": \"SPONGE-LAP\", \"label\": \"sponge\", \"slot\": [0.10, 0.6, 0.05, 0.08], "
        "\"opened_at\": 20},"
        "{\"sku\": \"SCALPEL-10\", \"label\": \"scalpel\", \"slot\": [0.5, 0.6, 0.05, 0.08], "
        "\"opened_at\": 58},"
        "{\"sku\": \"SCALPEL-10\", \"label\": \"scalpel\", \"slot\": [0.6, 0.6, 0.05, 0.08], "
        "\"opened_at\": 58.5},"
        "{\"sku\": \"TROCAR-5\", \"label\": \"trocar\", \"slot\": [0.7, 0.6, 0.05, 0.08], "
        "\"events\": [{\"pick_up_at\": 1}]}]");
    SIM_RUN(&r, "simulate", sc, "--truth", sim_path("windows.truth.json"));
    CHECK_INT(r.code, 0);
    t = sim_truth(sim_path("windows.truth.json"));
    /* the sponge at x 0.20 is instance 1 (opened with the one at 0.30, left of it) */
    REQUIRE((i = sim_truth_instance(t, "SPONGE-LAP", 1)));
    CHECK_INT(sim_int(i, "tool"), 1);
    CHECK_INT(sim_int(i, "used"), 1); /* off the table 2.0 s */
    CHECK_INT(sim_int(i, "left_at_frame"), 300);
    CHECK_INT(sim_int(i, "returned_at_frame"), 360);
    REQUIRE((i = sim_truth_instance(t, "SPONGE-LAP", 2)));
    CHECK_INT(sim_int(i, "tool"), 0);
    CHECK_INT(sim_int(i, "used"), 0); /* off it 1.9 s: set down again, not used */
    CHECK_INT(sim_int(i, "left_at_frame"), -1);
    REQUIRE((i = sim_truth_instance(t, "SPONGE-LAP", 3)));
    CHECK_INT(sim_int(i, "tool"), 2); /* leftmost, but opened last */
    CHECK_INT(sim_int(i, "opened_at_frame"), 600);
    REQUIRE((i = sim_truth_instance(t, "SCALPEL-10", 1)));
    CHECK_INT(sim_int(i, "opened"), 1); /* 2 s on the table before the end */
    REQUIRE((i = sim_truth_instance(t, "SCALPEL-10", 2)));
    CHECK_INT(sim_int(i, "opened"), 0); /* 1.5 s */
    REQUIRE((i = sim_truth_instance(t, "TROCAR-5", 1)));
    CHECK_INT(sim_int(i, "opened"), 0); /* picked up after 1 s: never opened, so not used */
    CHECK_INT(sim_int(i, "used"), 0);
    CHECK_INT(sim_total(t, "instances"), 6);
    CHECK_INT(sim_total(t, "opened"), 4);
    CHECK_INT(sim_total(t, "used"), 1);
    /* unused single-use: two sponges (189) and a scalpel (245) */
    CHECK_INT(sim_total(t, "waste_cost_cents"), 2 * 189 + 245);
    yajl_tree_free(t);
}

/* ---------------------------------------------------------------------------
 * Realism knobs, each against a plain one-tool scenario of 100 s (3000
 * frames) with a perfect detector otherwise.
 * ------------------------------------------------------------------------- */
typedef struct tally {
    const char *label;
    long long frames, hits, other, last_frame;
    double sum, sumsq;            /* of the chosen measure */
    int which;                    /* 0 confidence, 1 centre x */
    long long run, runs, run_bad; /* miss runs */
    long long run_min, run_max;
    bool seen[4000];
} tally;

static void tally_det(void *ctx, const sim_det *d)
{
    tally *t = ctx;
    if (strcmp(d->label, t->label)) {
        t->other++;
        return;
    }
    t->hits++;
    if (d->frame >= 0 && d->frame < 4000)
        t->seen[d->frame] = true;
    double v = t->which == 0 ? d->conf : d->x + d->w / 2;
    t->sum += v;
    t->sumsq += v * v;
}

static void tally_frame(void *ctx, long long frame, size_t count)
{
    tally *t = ctx;
    t->frames++;
    t->last_frame = frame;
}

static void count(tally *t, const char *ndjson)
{
    sim_read_ndjson(ndjson, tally_det, tally_frame, t);
}

static const char *one_tool(const char *name, const char *detector, const char *tool_extra,
                            const char *extra)
{
    char rest[4096];
    snprintf(rest, sizeof rest,
             "\"detector\": {%s}, \"tools\": [{\"sku\": \"SCALPEL-10\", \"label\": %s, \"slot\": "
             "[0.40, 0.60, 0.05, 0.08]}]%s%s",
             detector, tool_extra, extra[0] ? ", " : "", extra);
    return sim_scenario(name, 100, rest);
}

static void simulate_ndjson(const char *scenario, const char *out)
{
    sim_run_result r;
    SIM_RUN(&r, "simulate", scenario, "-o", out, "--format", "ndjson");
    CHECK_INT(r.code, 0);
    if (r.code)
        fprintf(stderr, "%s", r.err);
}

static double sd_of(const tally *t)
{
    double m = t->sum / (double)t->hits, v = t->sumsq / (double)t->hits - m * m;
    return v > 0 ? sqrt(v) : 0.0;
}

static void test_knobs(void)
{
    /* a perfect detector: every frame, one box, the mean confidence */
    tally t = {.label = "scalpel"};
    simulate_ndjson(one_tool("k0.json", "", "\"scalpel\"", ""), sim_path("k0.ndjson"));
    count(&t, sim_path("k0.ndjson"));
    CHECK_INT(t.frames, 3000);
    CHECK_INT(t.hits, 3000);
    CHECK(fabs(t.sum / 3000 - 0.9) < 1e-9 && sd_of(&t) < 1e-6);

    /* miss rate 0.2: ~20% fewer (binomial sd 22 in 3000: +-5 sd) */
    t = (tally){.label = "scalpel"};
    simulate_ndjson(one_tool("k1.json", "\"miss_rate\": 0.2", "\"scalpel\"", ""),
                    sim_path("k1.ndjson"));
    count(&t, sim_path("k1.ndjson"));
    fprintf(stderr, "miss rate 0.2: %lld of 3000 frames\n", t.hits);
    CHECK(t.hits >= 2400 - 110 && t.hits <= 2400 + 110);

    /* miss bursts alone: every gap is one burst of 10..20 frames */
    t = (tally){.label = "scalpel"};
    simulate_ndjson(one_tool("k2.json",
                             "\"miss_bursts\": {\"per_minute\": 6, \"min_frames\": 10, "
                             "\"max_frames\": 20}",
                             "\"scalpel\"", ""),
                    sim_path("k2.ndjson"));
    count(&t, sim_path("k2.ndjson"));
    long long runs = 0, bad_runs = 0, missing = 0;
    for (long long f = 0, run = 0; f <= 3000; f++) {
        if (f < 3000 && !t.seen[f]) {
            run++;
            missing++;
        } else if (run) {
            runs++;
            bad_runs += (run < 10 || run > 20) && f < 3000; /* the last may be cut by the end */
            run = 0;
        }
    }
    fprintf(stderr, "miss bursts: %lld runs, %lld frames\n", runs, missing);
    CHECK(runs >= 3 && runs <= 25);
    CHECK_INT(bad_runs, 0);

    /* occlusion: a hand over the tool from 10 s to 12 s hides it there only */
    t = (tally){.label = "scalpel"};
    simulate_ndjson(one_tool("k3.json", "", "\"scalpel\"",
                             "\"people\": [{\"label\": \"hand\", \"from\": 10, \"to\": 12, "
                             "\"path\": [[0.38, 0.58, 0.09, 0.12]]}]"),
                    sim_path("k3.ndjson"));
    count(&t, sim_path("k3.ndjson"));
    long long hidden_seen = 0, shown_missing = 0;
    for (long long f = 0; f < 3000; f++) {
        bool covered = f >= 300 && f < 360;
        hidden_seen += covered && t.seen[f];
        shown_missing += !covered && !t.seen[f];
    }
    CHECK_INT(hidden_seen, 0);
    CHECK_INT(shown_missing, 0);
    CHECK_INT(t.other, 60); /* the hand itself, detected in each of its frames */
    /* ... or dimmed: hide 0, confidence factor 0.5 */
    t = (tally){.label = "scalpel"};
    simulate_ndjson(one_tool("k3b.json", "\"occlusion\": {\"hide\": 0, \"confidence_factor\": 0.5}",
                             "\"scalpel\"",
                             "\"people\": [{\"label\": \"hand\", \"from\": 10, \"to\": 12, "
                             "\"path\": [[0.38, 0.58, 0.09, 0.12]]}]"),
                    sim_path("k3b.ndjson"));
    count(&t, sim_path("k3b.ndjson"));
    CHECK_INT(t.hits, 3000);
    CHECK(fabs(t.sum - (2940 * 0.9 + 60 * 0.45)) < 1e-6);

    /* label variants at rate 0.5: the usual label half the time, each variant
     * a quarter (sd 27 of 3000 for a half, 24 for a quarter) */
    static const char *const labels[] = {"scalpel", "Scalpel #10", "scalpel_blade"};
    long long n[3];
    for (int k = 0; k < 3; k++) {
        t = (tally){.label = labels[k]};
        if (k == 0)
            simulate_ndjson(one_tool("k4.json", "\"label_variants\": 0.5",
                                     "[\"scalpel\", \"Scalpel #10\", \"scalpel_blade\"]", ""),
                            sim_path("k4.ndjson"));
        count(&t, sim_path("k4.ndjson"));
        n[k] = t.hits;
    }
    fprintf(stderr, "variants: %lld %lld %lld\n", n[0], n[1], n[2]);
    CHECK_INT(n[0] + n[1] + n[2], 3000);
    CHECK(n[0] >= 1500 - 140 && n[0] <= 1500 + 140);
    CHECK(n[1] >= 750 - 120 && n[1] <= 750 + 120);
    CHECK(n[2] >= 750 - 120 && n[2] <= 750 + 120);

    /* jitter 2 px on 1280: the centre's x has an sd of 2/1280 */
    t = (tally){.label = "scalpel", .which = 1};
    simulate_ndjson(one_tool("k5.json", "\"jitter_px\": 2", "\"scalpel\"", ""),
                    sim_path("k5.ndjson"));
    count(&t, sim_path("k5.ndjson"));
    fprintf(stderr, "jitter: centre x mean %.6f sd %.6f\n", t.sum / (double)t.hits, sd_of(&t));
    CHECK(fabs(t.sum / (double)t.hits - 0.425) < 0.0002);
    CHECK(fabs(sd_of(&t) - 2.0 / 1280) < 0.1 * 2.0 / 1280);

    /* confidence noise: mean 0.8, sd 0.05 */
    t = (tally){.label = "scalpel"};
    simulate_ndjson(
        one_tool("k6.json", "\"confidence\": {\"mean\": 0.8, \"sd\": 0.05}", "\"scalpel\"", ""),
        sim_path("k6.ndjson"));
    count(&t, sim_path("k6.ndjson"));
    fprintf(stderr, "confidence: mean %.4f sd %.4f\n", t.sum / (double)t.hits, sd_of(&t));
    CHECK(fabs(t.sum / (double)t.hits - 0.8) < 0.005);
    CHECK(fabs(sd_of(&t) - 0.05) < 0.005);

    /* seen off the table: picked up at 10 s, seen in a hand for 2 s, back at 20 s */
    t = (tally){.label = "scalpel"};
    const char *sc = sim_scenario(
        "k7.json", 100,
        "\"tools\": [{\"sku\": \"SCALPEL-10\", \"label\": \"scalpel\", \"slot\": [0.40, 0.60, "
        "0.05, 0.08], \"events\": [{\"pick_up_at\": 10, \"put_back_at\": 20, \"seen_at\": [0.5, "
        "0.2, 0.05, 0.08], \"seen_s\": 2}]}]");
    simulate_ndjson(sc, sim_path("k7.ndjson"));
    count(&t, sim_path("k7.ndjson"));
    long long on = 0, off_seen = 0, gone = 0;
    for (long long f = 0; f < 3000; f++) {
        if (f < 300 || f >= 600)
            on += t.seen[f];
        else if (f < 360)
            off_seen += t.seen[f];
        else
            gone += t.seen[f];
    }
    CHECK_INT(on, 2700);
    CHECK_INT(off_seen, 60);
    CHECK_INT(gone, 0);
}

/* False positives: ~0.5 a frame, a quarter with a random label, 30% with a
 * catalog label off the table, 20% on it (+-5 Poisson sd). */
typedef struct fp_tally {
    long long cup, off, on, at_slot, low_conf;
} fp_tally;

static void fp_det(void *ctx, const sim_det *d)
{
    fp_tally *t = ctx;
    double cx = d->x + d->w / 2, cy = d->y + d->h / 2;
    if (!strcmp(d->label, "cup")) {
        t->cup++;
    } else if (fabs(cx - 0.425) < 1e-6 && fabs(cy - 0.64) < 1e-6) {
        t->at_slot++; /* the tool itself */
        return;
    } else if (cy < 0.46) {
        t->off++;
    } else {
        t->on++;
    }
    t->low_conf += d->conf >= 0.25 && d->conf <= 0.5;
}

static void test_false_positives(void)
{
    fp_tally t = {0};
    simulate_ndjson(
        one_tool("fp.json",
                 "\"false_positives\": {\"per_frame\": 0.5, \"labels\": [\"cup\"], "
                 "\"catalog_off_table\": 0.3, \"catalog_on_table\": 0.2, \"confidence\": [0.25, "
                 "0.5]}",
                 "\"scalpel\"", ""),
        sim_path("fp.ndjson"));
    sim_read_ndjson(sim_path("fp.ndjson"), fp_det, NULL, &t);
    fprintf(stderr, "false positives: %lld cup, %lld off, %lld on the table\n", t.cup, t.off, t.on);
    CHECK_INT(t.at_slot, 3000);
    CHECK(t.cup >= 750 - 140 && t.cup <= 750 + 140);
    CHECK(t.off >= 450 - 110 && t.off <= 450 + 110);
    CHECK(t.on >= 300 - 90 && t.on <= 300 + 90);
    CHECK_INT(t.low_conf, t.cup + t.off + t.on);
}

/* ---------------------------------------------------------------------------
 * Outputs that are not regular files are written in place, never replaced
 * (a rename over /dev/null would make it a file).
 * ------------------------------------------------------------------------- */
static void test_special_outputs(void)
{
    const char *fifo = sim_path("frames.fifo");
    REQUIRE(mkfifo(fifo, 0600) == 0);
    int pfd[2];
    REQUIRE(pipe(pfd) == 0);
    pid_t reader = fork();
    REQUIRE(reader >= 0);
    if (reader == 0) { /* reads the FIFO to its end, sends the byte count back */
        alarm(120);
        close(pfd[0]);
        int fd = open(fifo, O_RDONLY);
        long long total = 0;
        char buf[65536];
        ssize_t got;
        while (fd >= 0 && (got = read(fd, buf, sizeof buf)) > 0)
            total += got;
        if (write(pfd[1], &total, sizeof total) != (ssize_t)sizeof total)
            _exit(1);
        _exit(0);
    }
    close(pfd[1]);
    sim_run_result r;
    SIM_RUN(&r, "simulate", SIM_SCENARIOS "/basic.json", "-o", fifo);
    CHECK_INT(r.code, 0);
    struct stat st, st_fifo;
    REQUIRE(stat(fifo, &st_fifo) == 0);
    CHECK(S_ISFIFO(st_fifo.st_mode));
    if (!S_ISFIFO(st_fifo.st_mode)) {
        kill(reader, SIGKILL);
        fprintf(stderr, "the FIFO was replaced by a file\n");
    }
    long long total = -1;
    if (read(pfd[0], &total, sizeof total) != (ssize_t)sizeof total)
        total = -1;
    close(pfd[0]);
    waitpid(reader, NULL, 0);
    SIM_RUN(&r, "simulate", SIM_SCENARIOS "/basic.json", "-o", sim_path("basic.reg.json"));
    CHECK_INT(r.code, 0);
    REQUIRE(stat(sim_path("basic.reg.json"), &st) == 0);
    CHECK_INT(total, st.st_size);
    /* a device that fails every write: exit 1, naming it (only when the FIFO
     * was kept: a simulate that renames over its output would replace the
     * device, and the tests may run as root) */
    if (S_ISFIFO(st_fifo.st_mode) && sim_exists("/dev/full")) {
        SIM_RUN(&r, "simulate", SIM_SCENARIOS "/basic.json", "-o", "/dev/full");
        CHECK_INT(r.code, 1);
        CHECK(strstr(r.err, "/dev/full: cannot write") != NULL);
        REQUIRE(stat("/dev/full", &st) == 0);
        CHECK(S_ISCHR(st.st_mode));
    }
    /* a folder that does not exist: exit 1, nothing left */
    SIM_RUN(&r, "simulate", SIM_SCENARIOS "/basic.json", "-o", sim_path("nowhere/f.json"));
    CHECK_INT(r.code, 1);
    CHECK(strstr(r.err, "nowhere/f.json: cannot create") != NULL);
}

int main(void)
{
    REQUIRE(support_tmpdir(sim_dir, "sim") == 0);
    test_usage();
    test_bad_scenarios();
    test_determinism();
    test_truth();
    test_knobs();
    test_false_positives();
    test_special_outputs();
    test_ingest_accepts();
    support_rmrf(sim_dir);
    return check_finish();
}
