/* engine_catalog_test.c -- engine/catalog.c on a real temporary SQLite store:
 * the tenant's catalog as the usage analysis loads it (SKU order, so the
 * first-match rule; the largest cost; strict about damaged entries, naming
 * them; many pages; a store holding more than SCHEMA_CATALOG_ENTRIES_MAX
 * entries refused naming the bound, where it was compiled whole). */
#include "tests/engine/engine_model.h"

static store *st;
static char uri[128];

/* ---------------------------------------------------------------------------
 * The catalog.
 * ------------------------------------------------------------------------- */

/* A catalog_tool document as ingest writes it; sk_sku names its key. */
static void put_entry(const char *tenant, const char *sk_sku, const char *sku, const char *pattern,
                      int64_t cost)
{
    char pk[256], sk[256];
    snprintf(pk, sizeof pk, "T#%s#CATALOG", tenant);
    snprintf(sk, sizeof sk, "TOOL#%s", sk_sku);
    bson_t *d = BCON_NEW("pk", pk, "sk", sk, "type", "catalog_tool", "sku", sku, "name", "a tool",
                         "labels", "[", pattern, "]", "unit_cost_cents", BCON_INT64(cost),
                         "single_use", BCON_BOOL(true));
    REQUIRE(store_put(st, STORE_ITEMS, d, (store_cond){STORE_COND_NONE, 0}, NULL, NULL) == SL_OK);
    bson_destroy(d);
}

static void del_entry(const char *tenant, const char *sk_sku)
{
    char pk[256], sk[256];
    snprintf(pk, sizeof pk, "T#%s#CATALOG", tenant);
    snprintf(sk, sizeof sk, "TOOL#%s", sk_sku);
    REQUIRE(store_delete(st, STORE_ITEMS, pk, sk, (store_cond){STORE_COND_NONE, 0}, NULL, NULL) ==
            SL_OK);
}

static sl_status load(const char *tenant, schema_catalog **c, sl_error *e)
{
    sl_error_clear(e);
    *c = NULL;
    return engine_catalog_load(st, tenant, c, e);
}

static const char *sku_of(const schema_catalog *c, const char *label)
{
    size_t i = 0;
    if (schema_catalog_match(c, label, strlen(label), &i, NULL) != SL_OK)
        return "(error)";
    return i == SCHEMA_CATALOG_NONE ? NULL : schema_catalog_at(c, i)->sku;
}

static void test_catalog_load(void)
{
    schema_catalog *c = NULL;
    sl_error e;
    CHECK_INT(load("nocat", &c, &e), SL_OK); /* no catalog: an empty one */
    CHECK_INT(schema_catalog_size(c), 0);
    CHECK(sku_of(c, "scalpel") == NULL);
    schema_catalog_free(&c);

    /* Written out of order; loaded in SKU order, so the smaller SKU wins. */
    put_entry("cat", "CLAMP-KELLY", "CLAMP-KELLY", "clamp-kelly", 900);
    put_entry("cat", "CLAMP-ANY", "CLAMP-ANY", "clamp.*", SCHEMA_UNIT_COST_MAX);
    put_entry("cat", "A-SPONGE", "A-SPONGE", "(?i)sponge", 5);
    CHECK_INT(load("cat", &c, &e), SL_OK);
    REQUIRE(c != NULL);
    CHECK_INT(schema_catalog_size(c), 3);
    CHECK_STR(schema_catalog_at(c, 0)->sku, "A-SPONGE");
    CHECK_STR(schema_catalog_at(c, 1)->sku, "CLAMP-ANY");
    CHECK_STR(sku_of(c, "clamp-kelly"), "CLAMP-ANY");
    CHECK_STR(sku_of(c, "SPONGE"), "A-SPONGE");
    size_t i = schema_catalog_find(c, "CLAMP-ANY");
    REQUIRE(i != SCHEMA_CATALOG_NONE);
    CHECK_INT(schema_catalog_at(c, i)->unit_cost_cents, SCHEMA_UNIT_COST_MAX);
    CHECK_INT(schema_catalog_at(c, i)->version, 1);
    schema_catalog_free(&c);

    /* Damaged entries fail the whole load, naming the entry and the field. */
    put_entry("cat", "OVER", "OVER", "over", SCHEMA_UNIT_COST_MAX + 1);
    CHECK_INT(load("cat", &c, &e), SL_ECORRUPT);
    CHECK(c == NULL);
    CHECK_STR(e.field, "unit_cost_cents");
    CHECK(strstr(e.message, "catalog entry T#cat#CATALOG / TOOL#OVER") != NULL);
    CHECK(strstr(e.message, "outside [0, 1000000000]") != NULL);
    del_entry("cat", "OVER");
    put_entry("cat", "MOVED", "ELSEWHERE", "moved", 1); /* its bytes disagree with themselves */
    CHECK_INT(load("cat", &c, &e), SL_ECORRUPT);
    CHECK_STR(e.field, "sku");
    CHECK(strstr(e.message, "TOOL#MOVED: catalog_tool document: sku \"ELSEWHERE\" disagrees "
                            "with its key TOOL#MOVED") != NULL);
    /* Another entry's bytes under this key (a bad restore), then bytes that
     * are no BSON (a disk fault): the key the store keeps is what counts. */
    REQUIRE(md_raw(uri,
                   "UPDATE items SET doc = (SELECT doc FROM items WHERE pk = ?1 AND sk = ?3) "
                   "WHERE pk = ?1 AND sk = ?2",
                   "T#cat#CATALOG", "TOOL#MOVED", "TOOL#A-SPONGE") == 1);
    CHECK_INT(load("cat", &c, &e), SL_ECORRUPT);
    CHECK_STR(e.field, "sku");
    CHECK(strstr(e.message, "TOOL#MOVED: document holds sku \"A-SPONGE\"") != NULL);
    REQUIRE(md_raw(uri, "UPDATE items SET doc = x'0badf00d0badf00d' WHERE pk = ?1 AND sk = ?2",
                   "T#cat#CATALOG", "TOOL#MOVED", NULL) == 1);
    CHECK_INT(load("cat", &c, &e), SL_ECORRUPT);
    CHECK(strstr(e.message, "TOOL#MOVED: document is not BSON") != NULL);
    del_entry("cat", "MOVED");
    put_entry("cat", "BROKEN", "BROKEN", "sc(alpel", 1);
    CHECK_INT(load("cat", &c, &e), SL_ECORRUPT);
    CHECK_STR(e.field, "labels[0]");
    CHECK(strstr(e.message, "TOOL#BROKEN") && strstr(e.message, "does not compile"));
    del_entry("cat", "BROKEN");
    CHECK_INT(load("cat", &c, &e), SL_OK);
    CHECK_INT(schema_catalog_size(c), 3);
    schema_catalog_free(&c);

    /* More entries than a page: every one, in order. */
    char sku[32], pat[32];
    for (int k = 0; k < 2500; k++) {
        snprintf(sku, sizeof sku, "P%05d", k);
        snprintf(pat, sizeof pat, "tool-%05d", k);
        put_entry("big", sku, sku, pat, k);
    }
    CHECK_INT(load("big", &c, &e), SL_OK);
    CHECK_INT(schema_catalog_size(c), 2500);
    CHECK_STR(sku_of(c, "tool-02499"), "P02499");
    CHECK_STR(sku_of(c, "tool-01000"), "P01000");
    CHECK_INT(schema_catalog_find(c, "P01999"), 1999);
    schema_catalog_free(&c);
}

/* Regression: the loader compiled whatever number of entries the store
 * held.  One past SCHEMA_CATALOG_ENTRIES_MAX (written in batches through the
 * store, as no PUT can) is refused, naming the bound. */
static void test_too_many(void)
{
    char pk[] = "T#huge#CATALOG", sk[48], sku[32], pat[32];
    const uint32_t n = SCHEMA_CATALOG_ENTRIES_MAX + 1;
    for (uint32_t k = 0; k < n;) {
        store_batch *b = NULL;
        REQUIRE(store_batch_begin(st, &b, NULL) == SL_OK);
        for (uint32_t j = 0; j < 5000 && k < n; j++, k++) {
            snprintf(sku, sizeof sku, "H%06u", k);
            snprintf(sk, sizeof sk, "TOOL#%s", sku);
            snprintf(pat, sizeof pat, "t%06u", k);
            bson_t *d = BCON_NEW("pk", pk, "sk", sk, "type", "catalog_tool", "sku", sku, "name",
                                 "a tool", "labels", "[", pat, "]", "unit_cost_cents",
                                 BCON_INT64(1), "single_use", BCON_BOOL(true));
            REQUIRE(store_batch_put(b, STORE_ITEMS, d, (store_cond){STORE_COND_NONE, 0}, NULL,
                                    NULL) == SL_OK);
            bson_destroy(d);
        }
        REQUIRE(store_batch_commit(&b, NULL) == SL_OK);
    }
    schema_catalog *c = NULL;
    sl_error e;
    CHECK_INT(load("huge", &c, &e), SL_ETOOLARGE);
    CHECK(c == NULL);
    CHECK(strstr(e.message, "the catalog T#huge#CATALOG holds more than 100000 entries "
                            "(SCHEMA_CATALOG_ENTRIES_MAX)") != NULL);
    if (e.status != SL_ETOOLARGE)
        fprintf(stderr, "load: %s\n", e.message);
    /* At the bound it loads. */
    snprintf(sk, sizeof sk, "TOOL#H%06u", n - 1);
    REQUIRE(store_delete(st, STORE_ITEMS, pk, sk, (store_cond){STORE_COND_NONE, 0}, NULL, NULL) ==
            SL_OK);
    CHECK_INT(load("huge", &c, &e), SL_OK);
    CHECK_INT(schema_catalog_size(c), SCHEMA_CATALOG_ENTRIES_MAX);
    schema_catalog_free(&c);
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    char dir[64];
    md_tempdir(dir, uri);
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(store_open(uri, NULL, &st, &e) == SL_OK);
    if (!only || !strcmp(only, "load"))
        test_catalog_load();
    if (!only || !strcmp(only, "too_many"))
        test_too_many();
    store_close(&st);
    md_rmdir(dir);
    return check_finish();
}
