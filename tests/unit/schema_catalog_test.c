/* schema_catalog_test.c -- the tool catalog's one definition (schema/catalog.c):
 * whole-label matching, UTF-8 labels and patterns, thousands of entries, the
 * first-match rule when patterns overlap, the bounds of an entry, the strict
 * decoder of a stored catalog_tool document, the match limit; and the
 * surgery life-cycle fields (schema/surgery.c). */
#include "schema/schema.h"
#include "tests/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An entry of one or more patterns (NULL-terminated), cost 100, single use. */
typedef struct ent {
    schema_catalog_entry e;
    const char *labels[SCHEMA_CATALOG_LABELS_MAX + 1];
    uint32_t lens[SCHEMA_CATALOG_LABELS_MAX + 1];
} ent;

static const schema_catalog_entry *mk(ent *x, const char *sku, const char *const *pats)
{
    memset(x, 0, sizeof *x);
    uint32_t n = 0;
    for (; pats[n]; n++) {
        x->labels[n] = pats[n];
        x->lens[n] = (uint32_t)strlen(pats[n]);
    }
    x->e = (schema_catalog_entry){.sku = sku,
                                  .name = "a tool",
                                  .labels = x->labels,
                                  .label_len = x->lens,
                                  .nlabels = n,
                                  .unit_cost_cents = 100,
                                  .single_use = true};
    return &x->e;
}

static sl_status add(schema_catalog *c, const char *sku, const char *const *pats, sl_error *e)
{
    ent x;
    sl_error_clear(e);
    return schema_catalog_add(c, mk(&x, sku, pats), e);
}

/* The SKU a label maps to; NULL when unmapped, "(error)" when matching failed. */
static const char *sku_of(const schema_catalog *c, const char *label)
{
    size_t i = 0;
    sl_error e;
    sl_error_clear(&e);
    if (schema_catalog_match(c, label, strlen(label), &i, &e) != SL_OK)
        return "(error)";
    return i == SCHEMA_CATALOG_NONE ? NULL : schema_catalog_at(c, i)->sku;
}

static schema_catalog *fresh(void)
{
    schema_catalog *c = NULL;
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(schema_catalog_new(&c, &e) == SL_OK);
    return c;
}

static void test_whole_label(void)
{
    sl_error e;
    schema_catalog *c = fresh();
    CHECK_INT(add(c, "HOLDER", (const char *[]){"scalpel|scalpel-holder", NULL}, &e), SL_OK);
    CHECK_INT(add(c, "SCALPEL-10", (const char *[]){"scalpel", "(?i)scalpel[ _-]?10", NULL}, &e),
              SL_OK);
    CHECK_INT(add(c, "Z-SPONGE", (const char *[]){"sponge # a comment?", "gauze.*", NULL}, &e),
              SL_OK);
    CHECK_INT(schema_catalog_size(c), 3);
    /* An alternation matches the whole label with either branch: anchoring
     * is the whole pattern's, not the first branch's. */
    CHECK_STR(sku_of(c, "scalpel-holder"), "HOLDER");
    CHECK_STR(sku_of(c, "Scalpel_10"), "SCALPEL-10");
    CHECK_STR(sku_of(c, "SCALPEL 10"), "SCALPEL-10");
    CHECK(sku_of(c, "scalpel-holders") == NULL); /* no prefix match */
    CHECK(sku_of(c, "a scalpel") == NULL);       /* no suffix match */
    CHECK(sku_of(c, "scalpel\n") == NULL);       /* not even before a final newline */
    CHECK(sku_of(c, "Scalpel") == NULL);         /* case as written */
    CHECK(sku_of(c, "scalpel 100") == NULL);
    CHECK_STR(sku_of(c, "gauze"), "Z-SPONGE");
    CHECK_STR(sku_of(c, "gauze 10x10"), "Z-SPONGE");
    CHECK(sku_of(c, "sponge # a comment?") == NULL); /* '#' is a literal, '?' a quantifier */
    CHECK_STR(sku_of(c, "sponge # a commen"), "Z-SPONGE");
    /* No catalog, or an empty one: every label unmapped. */
    CHECK(sku_of(NULL, "scalpel") == NULL);
    schema_catalog *empty = fresh();
    CHECK(sku_of(empty, "scalpel") == NULL);
    schema_catalog_free(&empty);
    CHECK(empty == NULL);
    schema_catalog_free(&c);
    schema_catalog_free(&c); /* NULL is fine */
}

static void test_utf8(void)
{
    sl_error e;
    schema_catalog *c = fresh();
    CHECK_INT(add(c, "PINCA", (const char *[]){"(?i)pinça( de \\w+)?", NULL}, &e), SL_OK);
    CHECK_INT(add(c, "SCHERE", (const char *[]){"\\w+schere", NULL}, &e), SL_OK);
    CHECK_INT(add(c, "TAMPON", (const char *[]){"手術用ガーゼ.", NULL}, &e), SL_OK);
    CHECK_STR(sku_of(c, "pinça"), "PINCA");
    CHECK_STR(sku_of(c, "PINÇA"), "PINCA");            /* (?i) folds beyond ASCII */
    CHECK_STR(sku_of(c, "Pinça de Péan"), "PINCA");    /* \w is Unicode */
    CHECK_STR(sku_of(c, "Präparierschere"), "SCHERE"); /* ä is a word character */
    CHECK_STR(sku_of(c, "手術用ガーゼ大"), "TAMPON");  /* '.' is one code point (3 bytes) */
    CHECK(sku_of(c, "手術用ガーゼ大き") == NULL);
    /* Labels are matched as given, not normalized: c + combining cedilla is
     * another label than ç. */
    CHECK(sku_of(c, "pinc\xcc\xa7"
                    "a") == NULL);
    /* A label that is not UTF-8 is refused, naming it. */
    size_t i = 7;
    sl_error_clear(&e);
    CHECK_INT(schema_catalog_match(c, "pin\xc3\x28", 5, &i, &e), SL_EINVAL);
    CHECK_STR(e.field, "label");
    CHECK_INT(i, 7); /* untouched on failure */
    /* A pattern that is not UTF-8 does not enter the catalog. */
    CHECK_INT(add(c, "BAD", (const char *[]){"ok", "pin\xc3\x28", NULL}, &e), SL_EINVAL);
    CHECK_STR(e.field, "labels[1]");
    CHECK_INT(schema_catalog_size(c), 3);
    schema_catalog_free(&c);
}

/* Thousands of entries, each found by its own label and by its alias; the
 * SKU lookup is a binary search when added in order, a scan otherwise. */
static void test_many_entries(void)
{
    enum { N = 3000 };
    sl_error e;
    schema_catalog *c = fresh();
    char sku[32], p1[32], p2[48], label[64];
    for (int i = 0; i < N; i++) {
        snprintf(sku, sizeof sku, "SKU-%05d", i);
        snprintf(p1, sizeof p1, "tool-%05d", i);
        snprintf(p2, sizeof p2, "(?i)alias-%05d-[a-z]+", i);
        const char *pats[] = {p1, p2, NULL};
        REQUIRE(add(c, sku, pats, &e) == SL_OK);
    }
    CHECK_INT(schema_catalog_size(c), N);
    int wrong = 0;
    for (int i = 0; i < N; i += 7) {
        size_t at = SCHEMA_CATALOG_NONE;
        snprintf(label, sizeof label, (i & 1) ? "tool-%05d" : "ALIAS-%05d-xyz", i);
        sl_error_clear(&e);
        if (schema_catalog_match(c, label, strlen(label), &at, &e) != SL_OK || at != (size_t)i)
            wrong++;
        snprintf(sku, sizeof sku, "SKU-%05d", i);
        if (schema_catalog_find(c, sku) != (size_t)i)
            wrong++;
    }
    CHECK_INT(wrong, 0);
    CHECK(sku_of(c, "tool-99999") == NULL);
    CHECK(sku_of(c, "alias-00001-") == NULL);
    CHECK(schema_catalog_find(c, "SKU-99999") == SCHEMA_CATALOG_NONE);
    CHECK(schema_catalog_find(c, "SKU-") == SCHEMA_CATALOG_NONE);
    const schema_catalog_entry *last = schema_catalog_at(c, N - 1);
    CHECK_STR(last->sku, "SKU-02999");
    CHECK_INT(last->nlabels, 2);
    CHECK_STR(last->labels[1], "(?i)alias-02999-[a-z]+");
    CHECK_INT(last->label_len[0], 10);
    /* Out of order: found by a scan, and a duplicate is still refused. */
    CHECK_INT(add(c, "AAA-FIRST", (const char *[]){"aaa", NULL}, &e), SL_OK);
    CHECK_INT(schema_catalog_find(c, "AAA-FIRST"), N);
    CHECK_INT(schema_catalog_find(c, "SKU-01234"), 1234);
    CHECK_INT(add(c, "SKU-00042", (const char *[]){"other", NULL}, &e), SL_EINVAL);
    CHECK_STR(e.field, "sku");
    CHECK_INT(schema_catalog_size(c), N + 1);
    schema_catalog_free(&c);
}

/* The rule when patterns overlap: the first entry in the order of addition
 * whose pattern matches wins (loaders add in SKU byte order). */
static void test_first_match(void)
{
    sl_error e;
    schema_catalog *c = fresh();
    CHECK_INT(add(c, "CLAMP-ANY", (const char *[]){"clamp.*", NULL}, &e), SL_OK);
    CHECK_INT(add(c, "CLAMP-KELLY", (const char *[]){"clamp-kelly", NULL}, &e), SL_OK);
    CHECK_STR(sku_of(c, "clamp-kelly"), "CLAMP-ANY"); /* "CLAMP-ANY" < "CLAMP-KELLY" */
    CHECK_STR(sku_of(c, "clamp"), "CLAMP-ANY");
    schema_catalog_free(&c);
    c = fresh();
    CHECK_INT(add(c, "CLAMP-KELLY", (const char *[]){"clamp-kelly", NULL}, &e), SL_OK);
    CHECK_INT(add(c, "CLAMP-ANY", (const char *[]){"clamp.*", NULL}, &e), SL_OK);
    CHECK_STR(sku_of(c, "clamp-kelly"), "CLAMP-KELLY"); /* added first */
    CHECK_STR(sku_of(c, "clamp-mosquito"), "CLAMP-ANY");
    schema_catalog_free(&c);
}

/* A pattern that does not compile, or that PCRE2 cannot finish matching
 * within SCHEMA_CATALOG_MATCH_LIMIT, is named. */
static void test_bad_patterns(void)
{
    sl_error e;
    schema_catalog *c = fresh();
    CHECK_INT(add(c, "OK", (const char *[]){"ok", NULL}, &e), SL_OK);
    CHECK_INT(add(c, "X", (const char *[]){"fine", "sc(alpel", NULL}, &e), SL_EINVAL);
    CHECK_STR(e.field, "labels[1]");
    CHECK(strstr(e.message, "label pattern /sc(alpel/ does not compile") != NULL);
    CHECK(strstr(e.message, "pattern offset 8") != NULL);
    CHECK_INT(schema_catalog_size(c), 1); /* unchanged */
    sl_error_clear(&e);
    CHECK_INT(schema_catalog_pattern_check("sc(alpel", 8, &e), SL_EINVAL);
    CHECK_INT(schema_catalog_pattern_check("scalpel", 7, NULL), SL_OK);
    /* Catastrophic backtracking: each a can be either branch, 2^30 ways. */
    CHECK_INT(add(c, "SLOW", (const char *[]){"(a|a)+c", NULL}, &e), SL_OK);
    const char *label = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-c";
    size_t i = 0;
    sl_error_clear(&e);
    CHECK_INT(schema_catalog_match(c, label, strlen(label), &i, &e), SL_EINVAL);
    CHECK_STR(e.field, "labels[0]");
    CHECK(strstr(e.message, "catalog entry SLOW") != NULL);
    CHECK(strstr(e.message, "limit") != NULL);
    CHECK_STR(sku_of(c, "ok"), "OK"); /* entries before it still match */
    schema_catalog_free(&c);
}

static void test_entry_bounds(void)
{
    sl_error e;
    ent x;
    static char pat[SCHEMA_CATALOG_PATTERN_MAX + 2], name[SCHEMA_CATALOG_NAME_MAX + 2];
    const char *pats[SCHEMA_CATALOG_LABELS_MAX + 2];
    memset(pat, 'a', SCHEMA_CATALOG_PATTERN_MAX);
    memset(name, 'n', SCHEMA_CATALOG_NAME_MAX);
    for (uint32_t i = 0; i <= SCHEMA_CATALOG_LABELS_MAX; i++)
        pats[i] = pat;
    pats[SCHEMA_CATALOG_LABELS_MAX] = NULL;
    /* Every bound at once, at its largest: accepted and compiled. */
    mk(&x, "MAX", pats);
    x.e.name = name;
    x.e.unit_cost_cents = SCHEMA_UNIT_COST_MAX;
    sl_error_clear(&e);
    CHECK_INT(schema_catalog_entry_check(&x.e, &e), SL_OK);
    schema_catalog *c = fresh();
    CHECK_INT(schema_catalog_add(c, &x.e, &e), SL_OK);
    CHECK_INT(schema_catalog_at(c, 0)->unit_cost_cents, SCHEMA_UNIT_COST_MAX);
    CHECK_INT(schema_catalog_at(c, 0)->label_len[63], SCHEMA_CATALOG_PATTERN_MAX);
    schema_catalog_free(&c);
    /* One past each, and the other refusals. */
    x.e.unit_cost_cents = SCHEMA_UNIT_COST_MAX + 1;
    sl_error_clear(&e);
    CHECK_INT(schema_catalog_entry_check(&x.e, &e), SL_EINVAL);
    CHECK_STR(e.field, "unit_cost_cents");
    CHECK(strstr(e.message, "unit_cost_cents 1000000001 is outside [0, 1000000000]") != NULL);
    x.e.unit_cost_cents = -1;
    sl_error_clear(&e);
    CHECK_INT(schema_catalog_entry_check(&x.e, &e), SL_EINVAL);
    CHECK_STR(e.field, "unit_cost_cents");
    x.e.unit_cost_cents = 0;
    name[SCHEMA_CATALOG_NAME_MAX] = 'n';
    sl_error_clear(&e);
    CHECK_INT(schema_catalog_entry_check(&x.e, &e), SL_EINVAL);
    CHECK_STR(e.field, "name");
    name[SCHEMA_CATALOG_NAME_MAX] = '\0';
    x.e.name = "tab\there";
    sl_error_clear(&e);
    CHECK_INT(schema_catalog_entry_check(&x.e, &e), SL_EINVAL);
    CHECK_STR(e.field, "name");
    x.e.name = "";
    sl_error_clear(&e);
    CHECK_INT(schema_catalog_entry_check(&x.e, &e), SL_EINVAL);
    CHECK_STR(e.field, "name");
    x.e.name = "n";
    x.lens[5] = SCHEMA_CATALOG_PATTERN_MAX + 1;
    pat[SCHEMA_CATALOG_PATTERN_MAX] = 'a';
    sl_error_clear(&e);
    CHECK_INT(schema_catalog_entry_check(&x.e, &e), SL_EINVAL);
    CHECK_STR(e.field, "labels[5]");
    x.lens[5] = SCHEMA_CATALOG_PATTERN_MAX;
    x.e.nlabels = SCHEMA_CATALOG_LABELS_MAX + 1;
    x.labels[SCHEMA_CATALOG_LABELS_MAX] = "a";
    x.lens[SCHEMA_CATALOG_LABELS_MAX] = 1;
    sl_error_clear(&e);
    CHECK_INT(schema_catalog_entry_check(&x.e, &e), SL_EINVAL);
    CHECK_STR(e.field, "labels");
    x.e.nlabels = 0;
    sl_error_clear(&e);
    CHECK_INT(schema_catalog_entry_check(&x.e, &e), SL_EINVAL);
    CHECK_STR(e.field, "labels");
    x.e.nlabels = 1;
    x.e.sku = "a#b";
    sl_error_clear(&e);
    CHECK_INT(schema_catalog_entry_check(&x.e, &e), SL_EINVAL);
    CHECK_STR(e.field, "sku");
}

/* ---------------------------------------------------------------------------
 * The stored document.
 * ------------------------------------------------------------------------- */

/* A catalog_tool document as ingest writes it, with one field changed:
 * drop (NULL value) or replace `field` by appending `with` instead. */
typedef void (*field_fn)(bson_t *d, const char *key);

static void cost_int32(bson_t *d, const char *key)
{
    BSON_APPEND_INT32(d, key, 245);
}
static void cost_over(bson_t *d, const char *key)
{
    BSON_APPEND_INT64(d, key, SCHEMA_UNIT_COST_MAX + 1);
}
static void bool_as_int(bson_t *d, const char *key)
{
    BSON_APPEND_INT32(d, key, 1);
}
static void labels_mixed(bson_t *d, const char *key)
{
    bson_t a;
    BSON_APPEND_ARRAY_BEGIN(d, key, &a);
    BSON_APPEND_UTF8(&a, "0", "scalpel");
    BSON_APPEND_INT32(&a, "1", 3);
    bson_append_array_end(d, &a);
}
static void labels_empty(bson_t *d, const char *key)
{
    bson_t a;
    BSON_APPEND_ARRAY_BEGIN(d, key, &a);
    bson_append_array_end(d, &a);
}
static void other_type(bson_t *d, const char *key)
{
    BSON_APPEND_UTF8(d, key, "surgery");
}
static void other_sku(bson_t *d, const char *key)
{
    BSON_APPEND_UTF8(d, key, "S2");
}
static void dropped(bson_t *d, const char *key)
{
    (void)d;
    (void)key;
}

static bson_t *doc_with(const char *field, field_fn fn, const char *extra)
{
    static const char *const order[] = {
        "pk", "sk", "v", "type", "sku", "name", "labels", "unit_cost_cents", "single_use"};
    bson_t *d = bson_new();
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const char *k = order[i];
        if (field && !strcmp(k, field)) {
            fn(d, k);
            continue;
        }
        if (!strcmp(k, "pk"))
            BSON_APPEND_UTF8(d, k, "T#h#CATALOG");
        else if (!strcmp(k, "sk"))
            BSON_APPEND_UTF8(d, k, "TOOL#S1");
        else if (!strcmp(k, "v"))
            BSON_APPEND_INT64(d, k, 4);
        else if (!strcmp(k, "type"))
            BSON_APPEND_UTF8(d, k, "catalog_tool");
        else if (!strcmp(k, "sku"))
            BSON_APPEND_UTF8(d, k, "S1");
        else if (!strcmp(k, "name"))
            BSON_APPEND_UTF8(d, k, "Scalpel #10");
        else if (!strcmp(k, "labels")) {
            bson_t a;
            BSON_APPEND_ARRAY_BEGIN(d, k, &a);
            BSON_APPEND_UTF8(&a, "0", "scalpel");
            BSON_APPEND_UTF8(&a, "1", "(?i)scalpel[ _-]?10");
            bson_append_array_end(d, &a);
        } else if (!strcmp(k, "unit_cost_cents"))
            BSON_APPEND_INT64(d, k, SCHEMA_UNIT_COST_MAX);
        else
            BSON_APPEND_BOOL(d, k, true);
    }
    if (extra)
        BSON_APPEND_UTF8(d, extra, "x");
    return d;
}

static void test_decode(void)
{
    schema_catalog_doc d;
    sl_error e;
    bson_t *doc = doc_with(NULL, NULL, NULL);
    sl_error_clear(&e);
    CHECK_INT(schema_catalog_entry_from_bson(doc, &d, &e), SL_OK);
    CHECK_STR(d.entry.sku, "S1");
    CHECK_STR(d.entry.name, "Scalpel #10");
    CHECK_INT(d.entry.nlabels, 2);
    CHECK_STR(d.entry.labels[1], "(?i)scalpel[ _-]?10");
    CHECK_INT(d.entry.label_len[0], 7);
    CHECK_INT(d.entry.unit_cost_cents, SCHEMA_UNIT_COST_MAX);
    CHECK(d.entry.single_use);
    CHECK_INT(d.entry.version, 4);
    /* It compiles into a catalog that maps its labels. */
    schema_catalog *c = fresh();
    CHECK_INT(schema_catalog_add(c, &d.entry, &e), SL_OK);
    bson_destroy(doc); /* the catalog holds its own copy */
    CHECK_STR(sku_of(c, "SCALPEL-10"), "S1");
    CHECK_INT(schema_catalog_at(c, 0)->version, 4);
    schema_catalog_free(&c);

    struct {
        const char *field;
        field_fn fn;
        const char *extra;
        const char *named;
        const char *says;
    } bad[] = {
        {"single_use", dropped, NULL, "single_use", "single_use is missing"},
        {"name", dropped, NULL, "name", "name is missing"},
        {"unit_cost_cents", cost_int32, NULL, "unit_cost_cents", "of the wrong type"},
        {"unit_cost_cents", cost_over, NULL, "unit_cost_cents", "is outside [0, 1000000000]"},
        {"single_use", bool_as_int, NULL, "single_use", "of the wrong type"},
        {"labels", labels_mixed, NULL, "labels[1]", "labels[1] is not a string"},
        {"labels", labels_empty, NULL, "labels", "1 to 64 patterns, not 0"},
        {"type", other_type, NULL, "type", "is not \"catalog_tool\""},
        {"sku", other_sku, NULL, "sku", "disagrees with its key TOOL#S1"},
        {NULL, NULL, "colour", "colour", "colour is no field of a catalog_tool"},
        {NULL, NULL, "name", "name", "name appears twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        doc = doc_with(bad[i].field, bad[i].fn, bad[i].extra);
        sl_error_clear(&e);
        CHECK_INT(schema_catalog_entry_from_bson(doc, &d, &e), SL_ECORRUPT);
        if (strcmp(e.field, bad[i].named) || !strstr(e.message, bad[i].says))
            fprintf(stderr, "decode case %zu: field %s: %s\n", i, e.field, e.message);
        CHECK_STR(e.field, bad[i].named);
        CHECK(strstr(e.message, bad[i].says) != NULL);
        bson_destroy(doc);
    }
}

/* ---------------------------------------------------------------------------
 * The surgery's life-cycle fields.
 * ------------------------------------------------------------------------- */
static void test_surgery_life(void)
{
    sl_error e;
    schema_surgery_status st;
    const char *names[] = {"open", "closed", "analyzed", "failed"};
    for (int i = 0; i < 4; i++) {
        sl_error_clear(&e);
        CHECK_INT(schema_surgery_status_parse(names[i], strlen(names[i]), &st, &e), SL_OK);
        CHECK_INT(st, i + 1);
        CHECK_STR(schema_surgery_status_name(st), names[i]);
    }
    sl_error_clear(&e);
    CHECK_INT(schema_surgery_status_parse("analyzing", 9, &st, &e), SL_EINVAL);
    CHECK_STR(e.field, "status");
    CHECK_STR(schema_surgery_status_name((schema_surgery_status)9), "?");

    /* Written in order, read back. */
    schema_surgery_life l, r;
    schema_surgery_life_init(&l);
    CHECK_INT(l.status, SCHEMA_SURGERY_OPEN);
    l.status = SCHEMA_SURGERY_FAILED;
    l.closed_ms = 1790000000000;
    l.analyzed_ms = 1790000060000;
    snprintf(l.analysis_error, sizeof l.analysis_error, "catalog entry TOOL#S1: broken");
    bson_t *d = bson_new();
    BSON_APPEND_UTF8(d, "room", "OR 3");
    CHECK(schema_surgery_life_append(d, &l));
    bson_iter_t it;
    const char *keys[] = {"room", "status", "closed_ms", "analyzed_ms", "analysis_error"};
    int k = 0, in_order = bson_iter_init(&it, d);
    while (in_order && bson_iter_next(&it))
        in_order = k < 5 && !strcmp(bson_iter_key(&it), keys[k++]);
    CHECK(in_order && k == 5);
    sl_error_clear(&e);
    CHECK_INT(schema_surgery_life_from_bson(d, &r, &e), SL_OK);
    CHECK_INT(r.status, SCHEMA_SURGERY_FAILED);
    CHECK_INT(r.closed_ms, 1790000000000);
    CHECK_INT(r.analyzed_ms, 1790000060000);
    CHECK_STR(r.analysis_error, "catalog entry TOOL#S1: broken");
    bson_destroy(d);

    /* A document of before the analysis fields: status and closed_ms only. */
    d = BCON_NEW("status", "closed", "closed_ms", BCON_INT64(5));
    sl_error_clear(&e);
    CHECK_INT(schema_surgery_life_from_bson(d, &r, &e), SL_OK);
    CHECK_INT(r.status, SCHEMA_SURGERY_CLOSED);
    CHECK_INT(r.analyzed_ms, 0);
    CHECK_STR(r.analysis_error, "");
    bson_destroy(d);

    struct {
        bson_t *doc;
        const char *field;
    } bad[] = {
        {BCON_NEW("closed_ms", BCON_INT64(0)), "status"},
        {BCON_NEW("status", "reopened", "closed_ms", BCON_INT64(0)), "status"},
        {BCON_NEW("status", BCON_INT32(1), "closed_ms", BCON_INT64(0)), "status"},
        {BCON_NEW("status", "open"), "closed_ms"},
        {BCON_NEW("status", "open", "closed_ms", BCON_INT32(0)), "closed_ms"},
        {BCON_NEW("status", "open", "closed_ms", BCON_INT64(-1)), "closed_ms"},
        {BCON_NEW("status", "failed", "closed_ms", BCON_INT64(1), "analyzed_ms", BCON_DOUBLE(1)),
         "analyzed_ms"},
        {BCON_NEW("status", "failed", "closed_ms", BCON_INT64(1), "analysis_error", BCON_INT32(3)),
         "analysis_error"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r.status = SCHEMA_SURGERY_ANALYZED;
        sl_error_clear(&e);
        CHECK_INT(schema_surgery_life_from_bson(bad[i].doc, &r, &e), SL_ECORRUPT);
        CHECK_STR(e.field, bad[i].field);
        CHECK_INT(r.status, SCHEMA_SURGERY_ANALYZED); /* untouched */
        bson_destroy(bad[i].doc);
    }
}

int main(void)
{
    test_whole_label();
    test_utf8();
    test_many_entries();
    test_first_match();
    test_bad_patterns();
    test_entry_bounds();
    test_decode();
    test_surgery_life();
    return check_finish();
}
