/* engine_usage_read_test.c -- the tool-usage read model (engine_usage_read,
 * engine/usage_read.c) on a real temporary SQLite store: an analyzed
 * surgery's documents written as the analysis writes them (META, SUMMARY,
 * TOOL# results, frames, the catalog), then:
 *   - everything read: the description, the totals, the per-SKU lines, the
 *     results in key order tied to their SKU, the last frame, the unmapped
 *     labels;
 *   - the catalog compared: the same, changed (a new unit cost), gone (the
 *     entry deleted), unreadable (an entry that does not decode);
 *   - the refusals, each naming the field: not analyzed (open, closed,
 *     failed: SL_ECONFLICT on "status", the life cycle given back), no such
 *     surgery, an analyzed one without its summary, a summary line that does
 *     not read, a result whose SKU the summary does not list. */
#include "engine/engine.h"
#include "tests/engine/engine_model.h"

static store *st;
static char uri[128];

#define T "h"

static void put(bson_t *d)
{
    sl_error e;
    sl_error_clear(&e);
    if (store_put(st, STORE_ITEMS, d, (store_cond){STORE_COND_NONE, 0}, NULL, &e) != SL_OK)
        fprintf(stderr, "put: %s\n", e.message);
    bson_destroy(d);
}

static void put_entry(const char *sku, const char *name, int64_t cost, bool single)
{
    char sk[128];
    snprintf(sk, sizeof sk, "TOOL#%s", sku);
    put(BCON_NEW("pk", "T#" T "#CATALOG", "sk", sk, "type", "catalog_tool", "sku", sku, "name",
                 name, "labels", "[", "(?i)x", "]", "unit_cost_cents", BCON_INT64(cost),
                 "single_use", BCON_BOOL(single)));
}

static void put_surgery(const char *id, const char *status, const char *room)
{
    char pk[128];
    snprintf(pk, sizeof pk, "T#" T "#SURGERY#%s", id);
    put(BCON_NEW("pk", pk, "sk", "META", "type", "surgery", "tenant", T, "surgery", id, "hospital",
                 "st-mary", "room", room, "procedure", "lap-chole", "surgeon", "Dr. Grey",
                 "started_at", "2026-11-26T08:15:00.000Z", "started_ms",
                 BCON_INT64(1795680900000LL), "fps", BCON_DOUBLE(30), "frame_width",
                 BCON_INT32(1280), "frame_height", BCON_INT32(720), "table", "[", "[",
                 BCON_DOUBLE(0), BCON_DOUBLE(0), "]", "[", BCON_DOUBLE(1), BCON_DOUBLE(0), "]", "[",
                 BCON_DOUBLE(1), BCON_DOUBLE(1), "]", "]", "status", status, "closed_ms",
                 BCON_INT64(1795681000000LL), "analyzed_ms", BCON_INT64(1795682000000LL),
                 "analysis_error", strcmp(status, "failed") ? "" : "the catalog did not load"));
}

/* SUMMARY: SCALPEL 2 opened 1 used (single use, 245), FORCEPS 1 opened 0
 * used (reusable, 1500); bad_line: FORCEPS's opened_units a string. */
static void put_summary(const char *id, int bad_line)
{
    char pk[128];
    bson_t arr, t;
    snprintf(pk, sizeof pk, "T#" T "#SURGERY#%s", id);
    bson_t *d =
        BCON_NEW("pk", pk, "sk", "SUMMARY", "type", "surgery_summary", "tenant", T, "surgery", id,
                 "hospital", "st-mary", "procedure", "lap-chole", "opened", BCON_INT64(3), "used",
                 BCON_INT64(1), "unused", BCON_INT64(2), "waste_cents", BCON_INT64(245));
    BSON_APPEND_ARRAY_BEGIN(d, "tools", &arr);
    BSON_APPEND_DOCUMENT_BEGIN(&arr, "0", &t);
    BSON_APPEND_UTF8(&t, "sku", "FORCEPS");
    BSON_APPEND_UTF8(&t, "name", "Forceps");
    if (bad_line)
        BSON_APPEND_UTF8(&t, "opened_units", "1");
    else
        BSON_APPEND_INT64(&t, "opened_units", 1);
    BSON_APPEND_INT64(&t, "used_units", 0);
    BSON_APPEND_INT64(&t, "unused_units", 1);
    BSON_APPEND_INT64(&t, "unit_cost_cents", 1500);
    BSON_APPEND_BOOL(&t, "single_use", false);
    BSON_APPEND_INT64(&t, "waste_cents", 0);
    bson_append_document_end(&arr, &t);
    BSON_APPEND_DOCUMENT_BEGIN(&arr, "1", &t);
    BSON_APPEND_UTF8(&t, "sku", "SCALPEL");
    BSON_APPEND_UTF8(&t, "name", "Scalpel <#10> & \"co\"");
    BSON_APPEND_INT64(&t, "opened_units", 2);
    BSON_APPEND_INT64(&t, "used_units", 1);
    BSON_APPEND_INT64(&t, "unused_units", 1);
    BSON_APPEND_INT64(&t, "unit_cost_cents", 245);
    BSON_APPEND_BOOL(&t, "single_use", true);
    BSON_APPEND_INT64(&t, "waste_cents", 245);
    bson_append_document_end(&arr, &t);
    bson_append_array_end(d, &arr);
    BCON_APPEND(d, "frames", BCON_INT64(1800), "frames_empty", BCON_INT64(5), "detections",
                BCON_INT64(7000), "unmapped_detections", BCON_INT64(480), "unmapped_labels", "[",
                "{", "label", "hand", "detections", BCON_INT64(300), "occluder", BCON_BOOL(true),
                "}", "{", "label", "cup", "detections", BCON_INT64(180), "occluder",
                BCON_BOOL(false), "}", "]");
    put(d);
}

static void put_result(const char *id, const char *sku, int n, bool used, int64_t left,
                       int64_t back)
{
    char pk[128], sk[128];
    snprintf(pk, sizeof pk, "T#" T "#SURGERY#%s", id);
    snprintf(sk, sizeof sk, "TOOL#%s#%04d", sku, n);
    put(BCON_NEW("pk", pk, "sk", sk, "type", "tool_result", "tenant", T, "surgery", id, "hospital",
                 "st-mary", "procedure", "lap-chole", "sku", sku, "name", sku, "instance",
                 BCON_INT32(n), "opened", BCON_BOOL(true), "used", BCON_BOOL(used), "single_use",
                 BCON_BOOL(true), "unit_cost_cents", BCON_INT64(245), "first_seen_frame",
                 BCON_INT64(0), "first_frame", BCON_INT64(59), "last_frame", BCON_INT64(1700),
                 "left_frame", BCON_INT64(left), "returned_frame", BCON_INT64(back),
                 "confidence_micro", BCON_INT64(used ? 1000000 : 820000), "evidence", "[", "]",
                 "slot", "{", "x", BCON_INT64(1), "y", BCON_INT64(2), "w", BCON_INT64(3), "h",
                 BCON_INT64(4), "}"));
}

static void put_frame(const char *id, uint32_t f)
{
    char pk[128];
    schema_key sk;
    snprintf(pk, sizeof pk, "T#" T "#SURGERY#%s", id);
    REQUIRE(schema_sk_frame(sk, f, NULL) == SL_OK);
    put(BCON_NEW("pk", pk, "sk", sk, "type", "frame", "frame", BCON_INT64(f), "n", BCON_INT32(0),
                 "labels", "[", "]", "skus", "[", "]", "det",
                 BCON_BIN(BSON_SUBTYPE_BINARY, (const uint8_t *)"", 0)));
}

static void analyzed(const char *id)
{
    put_surgery(id, "analyzed", "OR 3");
    put_summary(id, 0);
    put_result(id, "FORCEPS", 1, false, -1, -1);
    put_result(id, "SCALPEL", 1, true, 600, 1200);
    put_result(id, "SCALPEL", 2, false, -1, -1);
    put_frame(id, 0);
    put_frame(id, 1799);
}

static void test_read(void)
{
    engine_usage_view v;
    sl_error e;
    sl_error_clear(&e);
    put_entry("FORCEPS", "Forceps", 1500, false);
    put_entry("SCALPEL", "Scalpel <#10> & \"co\"", 245, true);
    analyzed("s1");
    REQUIRE(engine_usage_read(st, T, "s1", &v, &e) == SL_OK);
    CHECK_STR(v.tenant, T);
    CHECK_STR(v.surgery, "s1");
    CHECK_STR(v.hospital, "st-mary");
    CHECK_STR(v.room, "OR 3");
    CHECK_STR(v.procedure, "lap-chole");
    CHECK_STR(v.surgeon, "Dr. Grey");
    CHECK_INT(v.started_ms, 1795680900000LL);
    CHECK(v.fps == 30);
    CHECK_INT(v.life.status, SCHEMA_SURGERY_ANALYZED);
    CHECK_INT(v.life.analyzed_ms, 1795682000000LL);
    CHECK(v.meta_version > 0 && v.summary_version > 0);
    CHECK_INT(v.opened, 3);
    CHECK_INT(v.used, 1);
    CHECK_INT(v.unused, 2);
    CHECK_INT(v.waste_cents, 245);
    CHECK_INT(v.frames, 1800);
    CHECK_INT(v.frames_empty, 5);
    CHECK_INT(v.detections, 7000);
    CHECK_INT(v.unmapped_detections, 480);
    CHECK_INT(v.last_frame, 1799);
    REQUIRE(v.ntools == 2 && v.ninstances == 3 && v.nunmapped == 2);
    CHECK_STR(v.tools[0].sku, "FORCEPS");
    CHECK_INT(v.tools[0].unused, 1);
    CHECK(!v.tools[0].single_use);
    CHECK_STR(v.tools[1].name, "Scalpel <#10> & \"co\"");
    CHECK_INT(v.tools[1].opened, 2);
    CHECK_INT(v.tools[1].waste_cents, 245);
    CHECK_INT(v.tools[0].catalog, ENGINE_USAGE_CATALOG_SAME);
    CHECK_INT(v.tools[1].catalog, ENGINE_USAGE_CATALOG_SAME);
    CHECK_INT(v.instances[0].tool, 0);
    CHECK_INT(v.instances[1].tool, 1);
    CHECK_INT(v.instances[1].instance, 1);
    CHECK(v.instances[1].used);
    CHECK_INT(v.instances[1].left_frame, 600);
    CHECK_INT(v.instances[1].returned_frame, 1200);
    CHECK_INT(v.instances[2].instance, 2);
    CHECK_INT(v.instances[2].left_frame, -1);
    CHECK_INT(v.instances[2].confidence_micro, 820000);
    CHECK(v.instances[2].version > 0);
    CHECK_STR(v.unmapped[0].label, "hand");
    CHECK(v.unmapped[0].occluder && !v.unmapped[1].occluder);
    CHECK_INT(v.unmapped[1].detections, 180);
    engine_usage_view_free(&v);

    /* The catalog moves on: SCALPEL priced anew, FORCEPS gone. */
    put_entry("SCALPEL", "Scalpel <#10> & \"co\"", 250, true);
    sl_error_clear(&e);
    REQUIRE(store_delete(st, STORE_ITEMS, "T#" T "#CATALOG", "TOOL#FORCEPS",
                         (store_cond){STORE_COND_NONE, 0}, NULL, &e) == SL_OK);
    REQUIRE(engine_usage_read(st, T, "s1", &v, &e) == SL_OK);
    CHECK_INT(v.tools[0].catalog, ENGINE_USAGE_CATALOG_GONE);
    CHECK_INT(v.tools[1].catalog, ENGINE_USAGE_CATALOG_CHANGED);
    CHECK_INT(v.tools[1].unit_cost_cents, 245); /* the numbers stay the analysis's */
    engine_usage_view_free(&v);
    /* An entry that does not decode: the comparison cannot tell. */
    put(BCON_NEW("pk", "T#" T "#CATALOG", "sk", "TOOL#BROKEN", "type", "catalog_tool", "sku",
                 "BROKEN", "name", "x"));
    REQUIRE(engine_usage_read(st, T, "s1", &v, &e) == SL_OK);
    CHECK_INT(v.tools[0].catalog, ENGINE_USAGE_CATALOG_UNREADABLE);
    CHECK_INT(v.tools[1].catalog, ENGINE_USAGE_CATALOG_UNREADABLE);
    engine_usage_view_free(&v);
    REQUIRE(store_delete(st, STORE_ITEMS, "T#" T "#CATALOG", "TOOL#BROKEN",
                         (store_cond){STORE_COND_NONE, 0}, NULL, &e) == SL_OK);
}

static void refused(const char *id, sl_status want, const char *field, const char *words)
{
    engine_usage_view v;
    sl_error e;
    sl_error_clear(&e);
    CHECK_INT(engine_usage_read(st, T, id, &v, &e), want);
    CHECK_STR(e.field, field);
    if (!strstr(e.message, words))
        fprintf(stderr, "%s: \"%s\" lacks \"%s\"\n", id, e.message, words);
    CHECK(strstr(e.message, words) != NULL);
    engine_usage_view_free(&v);
}

static void test_refusals(void)
{
    engine_usage_view v;
    sl_error e;
    put_surgery("open-1", "open", "OR 1");
    put_surgery("closed-1", "closed", "OR 1");
    put_surgery("failed-1", "failed", "OR 1");
    refused("open-1", SL_ECONFLICT, "status", "surgery \"open-1\" is open: close it");
    refused("closed-1", SL_ECONFLICT, "status", "is being analyzed");
    refused("failed-1", SL_ECONFLICT, "status", "its analysis failed");
    sl_error_clear(&e);
    CHECK_INT(engine_usage_read(st, T, "failed-1", &v, &e), SL_ECONFLICT);
    CHECK_INT(v.life.status, SCHEMA_SURGERY_FAILED); /* the caller can say which */
    engine_usage_view_free(&v);
    refused("nobody", SL_ENOTFOUND, "surgery", "no surgery \"nobody\"");
    /* Analyzed, but its summary is missing. */
    put_surgery("nosum", "analyzed", "OR 1");
    refused("nosum", SL_ECORRUPT, "surgery", "is analyzed but has no summary");
    /* A summary line that does not read. */
    analyzed("badline");
    put_summary("badline", 1);
    refused("badline", SL_ECORRUPT, "opened_units", "is not an integer");
    /* A result of a SKU the summary does not list. */
    analyzed("stray");
    put_result("stray", "HEMOSTAT", 1, true, 10, -1);
    refused("stray", SL_ECORRUPT, "sku", "names a SKU the summary does not list");
}

int main(void)
{
    char dir[64];
    md_tempdir(dir, uri);
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(store_open(uri, NULL, &st, &e) == SL_OK);
    test_read();
    test_refusals();
    store_close(&st);
    md_rmdir(dir);
    return check_finish();
}
