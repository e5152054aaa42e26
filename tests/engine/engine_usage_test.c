/* engine_usage_test.c -- the tool-usage analysis on a real temporary SQLite
 * store (engine/usage*.c): a small surgery written as ingest writes it (META,
 * frames with packed detections, the catalog), analyzed through the job
 * (closed -> analyzed); the documents exactly as docs/documents.md has them;
 * a re-run writes nothing; a catalog change that maps fewer instances
 * deletes the stale results; new parameters rewrite them; the tool
 * aggregates follow through the listener and recompute finds no drift; and
 * the refusals (open, unknown, bad parameters, damaged frames, a surgery
 * changed while analyzed). */
#include "engine/usage_int.h"
#include "tests/engine/engine_model.h"

static store *st;
static char uri[128];

#define T    "h"
#define SURG "s1"
#define PK   "T#" T "#SURGERY#" SURG

static void put(bson_t *d)
{
    sl_error e;
    sl_error_clear(&e);
    if (store_put(st, STORE_ITEMS, d, (store_cond){STORE_COND_NONE, 0}, NULL, &e) != SL_OK)
        fprintf(stderr, "put: %s\n", e.message);
    bson_destroy(d);
}

static void put_entry(const char *sku, const char *p1, const char *p2, int64_t cost, bool single)
{
    char sk[128];
    snprintf(sk, sizeof sk, "TOOL#%s", sku);
    bson_t *d = p2 ? BCON_NEW("pk", "T#" T "#CATALOG", "sk", sk, "type", "catalog_tool", "sku", sku,
                              "name", sku, "labels", "[", p1, p2, "]", "unit_cost_cents",
                              BCON_INT64(cost), "single_use", BCON_BOOL(single))
                   : BCON_NEW("pk", "T#" T "#CATALOG", "sk", sk, "type", "catalog_tool", "sku", sku,
                              "name", sku, "labels", "[", p1, "]", "unit_cost_cents",
                              BCON_INT64(cost), "single_use", BCON_BOOL(single));
    put(d);
}

/* The META as ingest writes it (description, then the life cycle). */
static void put_surgery(const char *id, const char *status)
{
    char pk[128];
    snprintf(pk, sizeof pk, "T#" T "#SURGERY#%s", id);
    bson_t *d = BCON_NEW(
        "pk", pk, "sk", "META", "gsi1pk", "T#" T "#HOSPITAL#st-mary", "gsi1sk",
        "DATE#2026-11-26#SURGERY#x", "type", "surgery", "tenant", T, "surgery", id, "hospital",
        "st-mary", "room", "OR 3", "procedure", "lap-chole", "surgeon", "Dr. Grey", "started_at",
        "2026-11-26T08:15:00.000Z", "started_ms", BCON_INT64(1795680900000LL), "fps",
        BCON_DOUBLE(30), "frame_width", BCON_INT32(1280), "frame_height", BCON_INT32(720), "table",
        "[", "[", BCON_DOUBLE(0.05), BCON_DOUBLE(0.5), "]", "[", BCON_DOUBLE(0.95),
        BCON_DOUBLE(0.5), "]", "[", BCON_DOUBLE(0.95), BCON_DOUBLE(0.98), "]", "[",
        BCON_DOUBLE(0.05), BCON_DOUBLE(0.98), "]", "]", "status", status, "closed_ms",
        BCON_INT64(0), "analyzed_ms", BCON_INT64(0), "analysis_error", "");
    put(d);
}

/* ---------------------------------------------------------------------------
 * Frames: one document per frame, the detections packed (schema's codec).
 * ------------------------------------------------------------------------- */
typedef struct fdet {
    const char *label;
    double x, y, w, h;
} fdet;

static bson_t *frame_doc(const char *pk, uint32_t frame, const fdet *d, size_t n)
{
    const char *labels[16];
    size_t nl = 0;
    uint8_t det[64 * SCHEMA_FRAME_DET_SIZE];
    REQUIRE(n <= 64);
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < nl && strcmp(labels[k], d[i].label))
            k++;
        if (k == nl)
            labels[nl++] = d[i].label;
        schema_frame_det r = {(uint16_t)k,
                              850000,
                              (int32_t)lround(d[i].x * 1e6),
                              (int32_t)lround(d[i].y * 1e6),
                              (int32_t)lround(d[i].w * 1e6),
                              (int32_t)lround(d[i].h * 1e6)};
        schema_frame_det_pack(det + i * SCHEMA_FRAME_DET_SIZE, &r);
    }
    schema_key sk;
    REQUIRE(schema_sk_frame(sk, frame, NULL) == SL_OK);
    bson_t *doc = bson_new(), arr;
    BSON_APPEND_UTF8(doc, "pk", pk);
    BSON_APPEND_UTF8(doc, "sk", sk);
    BSON_APPEND_UTF8(doc, "type", "frame");
    BSON_APPEND_INT64(doc, "frame", frame);
    BSON_APPEND_INT32(doc, "n", (int32_t)n);
    BSON_APPEND_ARRAY_BEGIN(doc, "labels", &arr);
    for (size_t k = 0; k < nl; k++) {
        char key[24];
        snprintf(key, sizeof key, "%zu", k);
        BSON_APPEND_UTF8(&arr, key, labels[k]);
    }
    bson_append_array_end(doc, &arr);
    BSON_APPEND_ARRAY_BEGIN(doc, "skus", &arr);
    for (size_t k = 0; k < nl; k++) {
        char key[24];
        snprintf(key, sizeof key, "%zu", k);
        BSON_APPEND_NULL(&arr, key); /* what ingest mapped: the analysis maps again */
    }
    bson_append_array_end(doc, &arr);
    BSON_APPEND_BINARY(doc, "det", BSON_SUBTYPE_BINARY, det, (uint32_t)(n * SCHEMA_FRAME_DET_SIZE));
    return doc;
}

/* The surgery of this test, 60 s at 30 frames/s:
 *   SCALPEL  at A, off the table 600..1199 (20 s), back in its slot: used
 *   SPONGE   twins at B1 and B2 ("sponge", or "Gauze" one frame in three);
 *            the right one carried away at 900: used; the left one not
 *   FORCEPS  at C, never touched (reusable)
 *   a hand over the forceps 300..599 (the forceps hidden: occluded, not used)
 *   a "cup" somewhere every tenth frame (unmapped); frames 1795.. empty. */
static void surgery_frames(const char *pk, uint32_t nframes)
{
    store_op ops[200];
    bson_t *docs[200];
    size_t n = 0;
    for (uint32_t f = 0; f < nframes; f++) {
        fdet d[8];
        size_t k = 0;
        if (f < 1795) {
            if (f < 600 || f >= 1200)
                d[k++] = (fdet){"scalpel", 0.10, 0.55, 0.05, 0.075};
            d[k++] = (fdet){f % 3 ? "sponge" : "Gauze", 0.30, 0.55, 0.05, 0.075};
            if (f < 900)
                d[k++] = (fdet){"sponge", 0.35, 0.55, 0.05, 0.075};
            if (f >= 300 && f < 600)
                d[k++] = (fdet){"hand", 0.58, 0.78, 0.1, 0.14};
            else
                d[k++] = (fdet){"forceps", 0.60, 0.80, 0.05, 0.075};
            if (f % 10 == 0)
                d[k++] = (fdet){"cup", 0.5, 0.1, 0.05, 0.05};
        }
        docs[n] = frame_doc(pk, f, d, k);
        ops[n] = (store_op){.kind = STORE_OP_PUT, .table = STORE_ITEMS, .doc = docs[n]};
        if (++n == 200 || f + 1 == nframes) {
            sl_error e;
            sl_error_clear(&e);
            REQUIRE(store_write_batch(st, ops, n, &e) == SL_OK);
            for (size_t i = 0; i < n; i++)
                bson_destroy(docs[i]);
            n = 0;
        }
    }
}

/* ---------------------------------------------------------------------------
 * Reading back.
 * ------------------------------------------------------------------------- */
static bson_t *get(const char *pk, const char *sk)
{
    bson_t *d = NULL;
    return store_get(st, STORE_ITEMS, pk, sk, &d, NULL) == SL_OK ? d : NULL;
}

static int64_t i64(const bson_t *d, const char *path)
{
    bson_iter_t it, f;
    if (!bson_iter_init(&it, d) || !bson_iter_find_descendant(&it, path, &f))
        return -999;
    if (BSON_ITER_HOLDS_INT64(&f))
        return bson_iter_int64(&f);
    if (BSON_ITER_HOLDS_INT32(&f))
        return bson_iter_int32(&f);
    if (BSON_ITER_HOLDS_BOOL(&f))
        return bson_iter_bool(&f);
    return -998;
}

static const char *str(const bson_t *d, const char *path)
{
    bson_iter_t it, f;
    if (!bson_iter_init(&it, d) || !bson_iter_find_descendant(&it, path, &f) ||
        !BSON_ITER_HOLDS_UTF8(&f))
        return "(none)";
    return bson_iter_utf8(&f, NULL);
}

/* The document's field names, in order, joined by spaces. */
static void keys_of(const bson_t *d, char *out, size_t cap)
{
    bson_iter_t it;
    out[0] = '\0';
    if (!bson_iter_init(&it, d))
        return;
    while (bson_iter_next(&it)) {
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s%s", l ? " " : "", bson_iter_key(&it));
    }
}

static int count_tool_results(const char *pk)
{
    store_page page = {0};
    store_query_opts q = {.range = {STORE_RANGE_BEGINS_WITH, "TOOL#", NULL}, .limit = 1000};
    REQUIRE(store_query(st, STORE_ITEMS, pk, &q, &page, NULL) == SL_OK);
    int n = (int)page.count;
    store_page_free(&page);
    return n;
}

static bson_t *agg(const char *sku)
{
    char sk[256];
    snprintf(sk, sizeof sk, "HOSPITAL#st-mary#PROC#lap-chole#TOOL#%s", sku);
    bson_t *d = NULL;
    return store_get(st, STORE_AGGREGATES, "T#" T "#AGG", sk, &d, NULL) == SL_OK ? d : NULL;
}

static schema_surgery_status status_of(const char *id, char *why, size_t cap)
{
    schema_surgery_life l;
    REQUIRE(engine_surgery_life_get(st, T, id, &l, NULL, NULL) == SL_OK);
    if (why)
        snprintf(why, cap, "%s", l.analysis_error);
    return l.status;
}

static sl_status analyze_again(const engine_usage_params *p, engine_usage_result *r, sl_error *e)
{
    sl_error_clear(e);
    REQUIRE(engine_surgery_transition(st, T, SURG, ENGINE_SURGERY_REQUEUE, 0, NULL, NULL, NULL) ==
            SL_OK);
    return engine_usage_run(st, T, SURG, p, r, e);
}

static void quiet_log(void *ctx, const char *level, const char *message)
{
    (void)ctx;
    if (strcmp(level, "info") != 0)
        fprintf(stderr, "listener %s: %s\n", level, message);
}

/* ---------------------------------------------------------------------------
 * The analysis.
 * ------------------------------------------------------------------------- */
static void test_analysis(void)
{
    engine_usage_params p;
    engine_usage_params_default(&p);
    engine_usage_result r;
    sl_error e;
    engine_listener_options lo = {.holder = "t", .log = quiet_log};
    engine_listener *l = NULL;
    REQUIRE(engine_listener_start(st, &lo, &l, NULL) == SL_OK);

    put_entry("SCALPEL-10", "scalpel", NULL, 245, true);
    put_entry("SPONGE-LAP", "(?i)sponge", "(?i)gauze", 189, true);
    put_entry("FORCEPS", "forceps", NULL, 1500, false);
    put_surgery(SURG, "open");
    surgery_frames(PK, 1800);

    /* Open: the job refuses it and changes nothing. */
    sl_error_clear(&e);
    CHECK_INT(engine_usage_run(st, T, SURG, &p, &r, &e), SL_ECONFLICT);
    CHECK_STR(e.field, "status");
    CHECK(strstr(e.message, "surgery \"s1\" is open: only a closed surgery is analyzed") != NULL);
    CHECK_INT(count_tool_results(PK), 0);
    CHECK_INT(status_of(SURG, NULL, 0), SCHEMA_SURGERY_OPEN);

    REQUIRE(engine_surgery_transition(st, T, SURG, ENGINE_SURGERY_CLOSE, 0, NULL, NULL, NULL) ==
            SL_OK);
    sl_error_clear(&e);
    REQUIRE(engine_usage_run(st, T, SURG, &p, &r, &e) == SL_OK);
    CHECK_INT(status_of(SURG, NULL, 0), SCHEMA_SURGERY_ANALYZED);
    CHECK_INT(r.frames, 1800);
    CHECK_INT(r.frames_empty, 5);
    CHECK_INT(r.instances, 4);
    CHECK_INT(r.opened, 4);
    CHECK_INT(r.used, 2);
    CHECK_INT(r.unused, 2);
    CHECK_INT(r.waste_cents, 189);               /* the left sponge; the forceps are reusable */
    CHECK_INT(r.unmapped_detections, 300 + 180); /* hand, cup */
    CHECK_INT(r.written, 5);
    CHECK_INT(r.deleted, 0);

    /* The results, field by field, in the documented order. */
    char keys[1024];
    bson_t *d = get(PK, "TOOL#SCALPEL-10#0001");
    REQUIRE(d);
    keys_of(d, keys, sizeof keys);
    CHECK_STR(keys, "pk sk type tenant surgery hospital procedure sku name instance opened used "
                    "single_use unit_cost_cents first_seen_frame first_frame last_frame "
                    "left_frame returned_frame confidence_micro evidence slot v");
    CHECK_STR(str(d, "type"), "tool_result");
    CHECK_STR(str(d, "hospital"), "st-mary");
    CHECK_INT(i64(d, "instance"), 1);
    CHECK_INT(i64(d, "used"), 1);
    CHECK_INT(i64(d, "first_seen_frame"), 0);
    CHECK_INT(i64(d, "first_frame"), 59);
    CHECK_INT(i64(d, "left_frame"), 600);
    CHECK_INT(i64(d, "returned_frame"), 1200);
    CHECK_INT(i64(d, "last_frame"), 1794);
    CHECK_INT(i64(d, "unit_cost_cents"), 245);
    CHECK_INT(i64(d, "confidence_micro"), 1000000);
    CHECK_INT(i64(d, "slot.x"), 100000);
    CHECK_INT(i64(d, "slot.h"), 75000);
    CHECK_INT(i64(d, "evidence.0"), 0);
    CHECK_INT(i64(d, "evidence.1"), 59);
    CHECK_INT(i64(d, "evidence.2"), 599); /* last seen before it left */
    CHECK_INT(i64(d, "evidence.3"), 600);
    CHECK_INT(i64(d, "evidence.4"), 719); /* decided */
    CHECK_INT(i64(d, "evidence.5"), 1200);
    CHECK_INT(i64(d, "evidence.6"), 1794);
    int64_t scalpel_v = i64(d, "v");
    bson_destroy(d);
    d = get(PK, "TOOL#SPONGE-LAP#0001"); /* the left one, "Gauze" a third of the time */
    REQUIRE(d);
    CHECK_INT(i64(d, "used"), 0);
    CHECK_INT(i64(d, "slot.x"), 300000);
    CHECK_INT(i64(d, "left_frame"), -1);
    bson_destroy(d);
    d = get(PK, "TOOL#SPONGE-LAP#0002");
    REQUIRE(d);
    CHECK_INT(i64(d, "used"), 1);
    CHECK_INT(i64(d, "slot.x"), 350000);
    CHECK_INT(i64(d, "left_frame"), 900);
    CHECK_INT(i64(d, "returned_frame"), -1);
    bson_destroy(d);
    d = get(PK, "TOOL#FORCEPS#0001"); /* hidden 10 s under the hand: not used */
    REQUIRE(d);
    CHECK_INT(i64(d, "used"), 0);
    CHECK_INT(i64(d, "single_use"), 0);
    bson_destroy(d);
    CHECK_INT(count_tool_results(PK), 4);

    /* The summary. */
    d = get(PK, "SUMMARY");
    REQUIRE(d);
    keys_of(d, keys, sizeof keys);
    CHECK_STR(keys, "pk sk gsi1pk gsi1sk type tenant surgery hospital procedure opened used "
                    "unused waste_cents tools frames frames_empty detections "
                    "unmapped_detections unmapped_labels params v");
    CHECK_STR(str(d, "gsi1pk"), "T#" T "#HOSPITAL#st-mary#PROC#lap-chole");
    CHECK_STR(str(d, "gsi1sk"), "DATE#2026-11-26#SURGERY#" SURG);
    CHECK_INT(i64(d, "opened"), 4);
    CHECK_INT(i64(d, "waste_cents"), 189);
    CHECK_STR(str(d, "tools.0.sku"), "FORCEPS"); /* SKU byte order */
    CHECK_STR(str(d, "tools.1.sku"), "SCALPEL-10");
    CHECK_STR(str(d, "tools.2.sku"), "SPONGE-LAP");
    CHECK_INT(i64(d, "tools.2.opened_units"), 2);
    CHECK_INT(i64(d, "tools.2.used_units"), 1);
    CHECK_INT(i64(d, "tools.2.unused_units"), 1);
    CHECK_INT(i64(d, "tools.2.waste_cents"), 189);
    CHECK_INT(i64(d, "tools.0.waste_cents"), 0);
    CHECK_STR(str(d, "unmapped_labels.0.label"), "hand"); /* by count */
    CHECK_INT(i64(d, "unmapped_labels.0.detections"), 300);
    CHECK_INT(i64(d, "unmapped_labels.0.occluder"), 1);
    CHECK_STR(str(d, "unmapped_labels.1.label"), "cup");
    CHECK_INT(i64(d, "unmapped_labels.1.occluder"), 0);
    CHECK_INT(i64(d, "params.leave_ms"), p.leave_ms);
    CHECK_STR(str(d, "params.occluder_pattern"), p.occluder_pattern);
    int64_t summary_v = i64(d, "v");
    bson_destroy(d);

    /* The listener's tool aggregates. */
    REQUIRE(md_wait_caught_up(st, ENGINE_CONSUMER, 60000));
    d = agg("SPONGE-LAP");
    REQUIRE(d);
    CHECK_INT(i64(d, "surgeries"), 1);
    CHECK_INT(i64(d, "units_opened"), 2);
    CHECK_INT(i64(d, "units_used"), 1);
    CHECK_INT(i64(d, "waste_cents"), 189);
    bson_destroy(d);

    /* Again, the same: nothing written, no version moves. */
    CHECK_INT(analyze_again(&p, &r, &e), SL_OK);
    CHECK_INT(r.written, 0);
    CHECK_INT(r.deleted, 0);
    d = get(PK, "SUMMARY");
    CHECK_INT(i64(d, "v"), summary_v);
    bson_destroy(d);
    d = get(PK, "TOOL#SCALPEL-10#0001");
    CHECK_INT(i64(d, "v"), scalpel_v);
    bson_destroy(d);

    /* The catalog drops the sponges: their results go, the summary and the
     * aggregates follow; the labels now show as unmapped. */
    REQUIRE(store_delete(st, STORE_ITEMS, "T#" T "#CATALOG", "TOOL#SPONGE-LAP",
                         (store_cond){STORE_COND_NONE, 0}, NULL, NULL) == SL_OK);
    CHECK_INT(analyze_again(&p, &r, &e), SL_OK);
    CHECK_INT(r.instances, 2);
    CHECK_INT(r.deleted, 2);
    CHECK_INT(r.written, 1); /* the summary */
    CHECK_INT(count_tool_results(PK), 2);
    CHECK(get(PK, "TOOL#SPONGE-LAP#0001") == NULL);
    d = get(PK, "SUMMARY");
    CHECK_INT(i64(d, "opened"), 2);
    CHECK_INT(i64(d, "waste_cents"), 0);
    CHECK_STR(str(d, "unmapped_labels.0.label"), "sponge");
    CHECK_INT(i64(d, "unmapped_labels.0.detections"), 1196 + 900);
    bson_destroy(d);
    REQUIRE(md_wait_caught_up(st, ENGINE_CONSUMER, 60000));
    d = agg("SPONGE-LAP");
    CHECK(d == NULL); /* no surgery lists it any more */
    if (d)
        bson_destroy(d);

    /* New parameters: a window longer than the scalpel's 20 s away makes it
     * unused; its result is rewritten, the aggregate follows. */
    engine_usage_params lp = p;
    lp.leave_ms = 30000;
    CHECK_INT(analyze_again(&lp, &r, &e), SL_OK);
    CHECK_INT(r.used, 0);
    CHECK_INT(r.waste_cents, 245);
    d = get(PK, "TOOL#SCALPEL-10#0001");
    CHECK_INT(i64(d, "used"), 0);
    bson_destroy(d);
    REQUIRE(md_wait_caught_up(st, ENGINE_CONSUMER, 60000));
    d = agg("SCALPEL-10");
    REQUIRE(d);
    CHECK_INT(i64(d, "units_used"), 0);
    CHECK_INT(i64(d, "waste_cents"), 245);
    bson_destroy(d);

    /* What the listener kept is what the items say. */
    engine_recompute_options ro = {.fresh = 1};
    engine_recompute_report rep;
    REQUIRE(engine_recompute(st, &ro, &rep, NULL) == SL_OK);
    CHECK_INT(rep.drift_fields, 0);
    CHECK(rep.aggregates_checked >= 2);
    engine_recompute_report_free(&rep);
    engine_listener_stop(&l);
}

/* ---------------------------------------------------------------------------
 * Refusals.
 * ------------------------------------------------------------------------- */
static void test_refusals(void)
{
    engine_usage_params p;
    engine_usage_params_default(&p);
    engine_usage_result r;
    sl_error e;
    char why[600];

    sl_error_clear(&e);
    CHECK_INT(engine_usage_analyze(st, T, "nope", &p, &r, &e), SL_ENOTFOUND);
    CHECK_STR(e.field, "surgery");

    engine_usage_params bad = p;
    bad.leave_ms = 0;
    sl_error_clear(&e);
    CHECK_INT(engine_usage_analyze(st, T, SURG, &bad, &r, &e), SL_EINVAL);
    CHECK_STR(e.field, "leave_ms");
    CHECK(strstr(e.message, "leave_ms must be 1 to 3600000, not 0") != NULL);
    bad = p;
    snprintf(bad.occluder_pattern, sizeof bad.occluder_pattern, "(hand");
    sl_error_clear(&e);
    CHECK_INT(engine_usage_analyze(st, T, SURG, &bad, &r, &e), SL_EINVAL);
    CHECK_STR(e.field, "occluder_pattern");
    sl_error_clear(&e);
    CHECK_INT(engine_usage_param_set(&bad, "leave_msx", "5", &e), SL_EINVAL);
    CHECK_INT(engine_usage_param_set(&bad, "leave_ms", "5x", &e), SL_EINVAL);
    CHECK_INT(engine_usage_param_set(&bad, "leave_ms", "5000", &e), SL_OK);
    CHECK_INT(bad.leave_ms, 5000);

    /* A damaged frame fails the job: the surgery is failed, naming it. */
    put_surgery("s2", "closed");
    surgery_frames("T#" T "#SURGERY#s2", 100);
    bson_t *f =
        BCON_NEW("pk", "T#" T "#SURGERY#s2", "sk", "FRAME#000000050", "type", "frame", "frame",
                 BCON_INT64(50), "n", BCON_INT32(2), "labels", "[", "scalpel", "]", "skus", "[",
                 "]", "det", BCON_BIN(BSON_SUBTYPE_BINARY, (const uint8_t *)"short", 5));
    put(f);
    sl_error_clear(&e);
    CHECK_INT(engine_usage_run(st, T, "s2", &p, &r, &e), SL_ECORRUPT);
    CHECK(strstr(e.message, "frame FRAME#000000050: det does not hold n detections") != NULL);
    CHECK_INT(status_of("s2", why, sizeof why), SCHEMA_SURGERY_FAILED);
    CHECK(strstr(why, "FRAME#000000050") != NULL);
    CHECK_INT(count_tool_results("T#" T "#SURGERY#s2"), 0);

    /* A surgery with no frames: nothing opened, a summary all the same. */
    put_surgery("s3", "closed");
    sl_error_clear(&e);
    CHECK_INT(engine_usage_run(st, T, "s3", &p, &r, &e), SL_OK);
    CHECK_INT(r.frames, 0);
    CHECK_INT(r.instances, 0);
    bson_t *d = get("T#" T "#SURGERY#s3", "SUMMARY");
    CHECK(d != NULL);
    if (d)
        bson_destroy(d);

    /* The writes are fenced on the META's version read at the start: a PUT
     * of the description meanwhile stops them. */
    engine__usage_surgery *meta = calloc(1, sizeof *meta);
    REQUIRE(meta);
    REQUIRE(engine__usage_surgery_get(st, T, "s3", meta, NULL) == SL_OK);
    put_surgery("s3", "analyzed");
    schema_catalog *cat = NULL;
    REQUIRE(engine_catalog_load(st, T, &cat, NULL) == SL_OK);
    engine__usage_cfg c;
    memset(&c, 0, sizeof c);
    engine__usage_cfg_from_params(&p, 30, &c);
    c.npoints = meta->npoints;
    c.px = meta->px;
    c.py = meta->py;
    engine__usage_tracker *t = NULL;
    REQUIRE(engine__usage_tracker_new(&c, &t, NULL) == SL_OK);
    REQUIRE(engine__usage_finish(t, NULL) == SL_OK);
    engine__usage_run run = {
        .tenant = T, .surgery = "s3", .meta = meta, .catalog = cat, .params = &p, .tracker = t};
    sl_error_clear(&e);
    CHECK_INT(engine__usage_write(st, &run, &r, &e), SL_ECONDITION);
    CHECK_STR(e.field, "surgery");
    CHECK(strstr(e.message, "surgery \"s3\" changed while it was analyzed") != NULL);
    engine__usage_tracker_free(&t);
    schema_catalog_free(&cat);
    free(meta);
}

int main(void)
{
    char dir[64];
    md_tempdir(dir, uri);
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(store_open(uri, NULL, &st, &e) == SL_OK);
    test_analysis();
    test_refusals();
    store_close(&st);
    md_rmdir(dir);
    return check_finish();
}
