/* engine_surgery_test.c -- engine/surgery.c on a real temporary SQLite store:
 * every transition of a surgery's life cycle, allowed and refused, keeping the
 * rest of the document byte for byte. */
#include "tests/engine/engine_model.h"

static store *st;

/* A surgery META document as ingest writes it (description, then life cycle). */
static void put_surgery(const char *tenant, const char *id, const char *status)
{
    char pk[256];
    snprintf(pk, sizeof pk, "T#%s#SURGERY#%s", tenant, id);
    bson_t *d =
        BCON_NEW("pk", pk, "sk", "META", "gsi1pk", "T#h#HOSPITAL#st-mary", "gsi1sk",
                 "DATE#2026-11-26#SURGERY#x", "type", "surgery", "tenant", tenant, "surgery", id,
                 "hospital", "st-mary", "room", "OR 3", "procedure", "lap-chole", "fps",
                 BCON_DOUBLE(30), "frame_width", BCON_INT32(640), "status", status, "closed_ms",
                 BCON_INT64(0), "analyzed_ms", BCON_INT64(0), "analysis_error", "");
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(store_put(st, STORE_ITEMS, d, (store_cond){STORE_COND_NONE, 0}, NULL, &e) == SL_OK);
    bson_destroy(d);
}

static bson_t *get_surgery(const char *tenant, const char *id)
{
    char pk[256];
    bson_t *d = NULL;
    snprintf(pk, sizeof pk, "T#%s#SURGERY#%s", tenant, id);
    REQUIRE(store_get(st, STORE_ITEMS, pk, "META", &d, NULL) == SL_OK);
    return d;
}

static int64_t version_of(const bson_t *d)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, d, "v") ? bson_iter_int64(&it) : -1;
}

/* The document without v and the life-cycle fields, as bytes to compare. */
static bson_t *description(const bson_t *d)
{
    bson_t *out = bson_new();
    bson_copy_to_excluding_noinit(d, out, "v", "status", "closed_ms", "analyzed_ms",
                                  "analysis_error", NULL);
    return out;
}

static sl_status go(const char *id, engine_surgery_event ev, int64_t now, const char *why,
                    schema_surgery_life *out, sl_error *e)
{
    sl_error_clear(e);
    return engine_surgery_transition(st, "h", id, ev, now, why, out, e);
}

static void test_transitions(void)
{
    schema_surgery_life l;
    sl_error e;
    put_surgery("h", "s1", "open");
    bson_t *before = get_surgery("h", "s1"), *desc0 = description(before);
    int64_t v0 = version_of(before);

    /* Unknown surgery; events the open status refuses (nothing written). */
    CHECK_INT(go("nope", ENGINE_SURGERY_CLOSE, 1000, NULL, &l, &e), SL_ENOTFOUND);
    CHECK_STR(e.field, "surgery");
    CHECK(strstr(e.message, "no surgery \"nope\" in tenant \"h\"") != NULL);
    CHECK_INT(go("s1", ENGINE_SURGERY_ANALYZED, 1000, NULL, &l, &e), SL_ECONFLICT);
    CHECK_STR(e.field, "status");
    CHECK(strstr(e.message, "surgery \"s1\" is open: only a closed surgery") != NULL);
    CHECK_INT(l.status, SCHEMA_SURGERY_OPEN); /* the current one, for the caller */
    CHECK_INT(go("s1", ENGINE_SURGERY_REQUEUE, 1000, NULL, &l, &e), SL_ECONFLICT);
    CHECK(strstr(e.message, "close it first") != NULL);
    CHECK_INT(go("s1", ENGINE_SURGERY_FAILED, 1000, "boom", &l, &e), SL_ECONFLICT);
    bson_t *now = get_surgery("h", "s1");
    CHECK_INT(version_of(now), v0);
    bson_destroy(now);

    /* open -> closed */
    CHECK_INT(go("s1", ENGINE_SURGERY_CLOSE, 1000, NULL, &l, &e), SL_OK);
    CHECK_INT(l.status, SCHEMA_SURGERY_CLOSED);
    CHECK_INT(l.closed_ms, 1000);
    now = get_surgery("h", "s1");
    CHECK_INT(version_of(now), v0 + 1);
    bson_t *desc = description(now);
    CHECK(bson_equal(desc, desc0)); /* every other field, in the same order */
    bson_destroy(desc);
    bson_iter_t it;
    CHECK(bson_iter_init_find(&it, now, "status") && !strcmp(bson_iter_utf8(&it, NULL), "closed"));
    bson_destroy(now);
    /* A second close is refused, and says where the surgery is. */
    CHECK_INT(go("s1", ENGINE_SURGERY_CLOSE, 1500, NULL, &l, &e), SL_ECONFLICT);
    CHECK(strstr(e.message, "is closed: only an open surgery can be closed") != NULL);
    CHECK_INT(l.status, SCHEMA_SURGERY_CLOSED);
    CHECK_INT(l.closed_ms, 1000);
    CHECK_INT(go("s1", ENGINE_SURGERY_REQUEUE, 1500, NULL, &l, &e), SL_ECONFLICT);
    CHECK(strstr(e.message, "already queued or running") != NULL);

    /* closed -> failed: a reason is required, cut at a character boundary. */
    CHECK_INT(go("s1", ENGINE_SURGERY_FAILED, 2000, NULL, &l, &e), SL_EINVAL);
    CHECK_STR(e.field, "analysis_error");
    CHECK_INT(go("s1", ENGINE_SURGERY_FAILED, 2000, "", &l, &e), SL_EINVAL);
    char why[700];
    size_t n = 0;
    n += (size_t)snprintf(why, sizeof why, "x");
    while (n + 2 < sizeof why) /* "x" then é (2 bytes) repeated: 511 cuts inside one */
        n += (size_t)snprintf(why + n, sizeof why - n, "\xc3\xa9");
    CHECK_INT(go("s1", ENGINE_SURGERY_FAILED, 2000, why, &l, &e), SL_OK);
    CHECK_INT(l.status, SCHEMA_SURGERY_FAILED);
    CHECK_INT(l.analyzed_ms, 2000);
    CHECK_INT(strlen(l.analysis_error), 511); /* 1 + 255 * 2 */
    CHECK_INT(schema_utf8_check("e", l.analysis_error, strlen(l.analysis_error), NULL), SL_OK);
    schema_surgery_life got;
    int64_t v = 0;
    sl_error_clear(&e);
    CHECK_INT(engine_surgery_life_get(st, "h", "s1", &got, &v, &e), SL_OK);
    CHECK_INT(got.status, SCHEMA_SURGERY_FAILED);
    CHECK_STR(got.analysis_error, l.analysis_error);
    CHECK_INT(v, v0 + 2);

    /* failed -> closed (re-analysis): the error goes, the first close stays. */
    CHECK_INT(go("s1", ENGINE_SURGERY_REQUEUE, 3000, NULL, &l, &e), SL_OK);
    CHECK_INT(l.status, SCHEMA_SURGERY_CLOSED);
    CHECK_INT(l.closed_ms, 1000);
    CHECK_INT(l.analyzed_ms, 2000);
    CHECK_STR(l.analysis_error, "");
    /* closed -> analyzed */
    CHECK_INT(go("s1", ENGINE_SURGERY_ANALYZED, 4000, NULL, &l, &e), SL_OK);
    CHECK_INT(l.status, SCHEMA_SURGERY_ANALYZED);
    CHECK_INT(l.analyzed_ms, 4000);
    CHECK_INT(go("s1", ENGINE_SURGERY_ANALYZED, 4500, NULL, &l, &e), SL_ECONFLICT);
    CHECK_INT(go("s1", ENGINE_SURGERY_CLOSE, 4500, NULL, &l, &e), SL_ECONFLICT);
    CHECK(strstr(e.message, "is analyzed: only an open surgery can be closed") != NULL);
    /* analyzed -> closed -> analyzed again */
    CHECK_INT(go("s1", ENGINE_SURGERY_REQUEUE, 5000, NULL, &l, &e), SL_OK);
    CHECK_INT(go("s1", ENGINE_SURGERY_ANALYZED, 6000, NULL, &l, &e), SL_OK);
    now = get_surgery("h", "s1");
    desc = description(now);
    CHECK(bson_equal(desc, desc0));
    bson_destroy(desc);
    bson_destroy(now);

    /* A damaged status is named, by the read and by a transition. */
    put_surgery("h", "s2", "reopened");
    sl_error_clear(&e);
    CHECK_INT(engine_surgery_life_get(st, "h", "s2", &got, NULL, &e), SL_ECORRUPT);
    CHECK_STR(e.field, "status");
    CHECK_INT(go("s2", ENGINE_SURGERY_CLOSE, 1000, NULL, &l, &e), SL_ECORRUPT);
    CHECK(strstr(e.message, "surgery \"s2\"") != NULL);
    /* A bad name is refused before the store is asked. */
    CHECK_INT(go("a#b", ENGINE_SURGERY_CLOSE, 1000, NULL, &l, &e), SL_EINVAL);
    bson_destroy(before);
    bson_destroy(desc0);
}

int main(void)
{
    char dir[64], uri[128];
    md_tempdir(dir, uri);
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(store_open(uri, NULL, &st, &e) == SL_OK);
    test_transitions();
    store_close(&st);
    md_rmdir(dir);
    return check_finish();
}
