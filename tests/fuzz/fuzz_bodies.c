/* fuzz_bodies.c -- libFuzzer target: the small-document codecs (asset lines,
 * surgery, catalog entry, category map) on every input. */
#include "ingest/ingest.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every string of a document is strict UTF-8 (issue 9: libbson's and
 * yajl's checks let surrogates and overlong forms by). */
static void check_strings(bson_iter_t *it)
{
    while (bson_iter_next(it)) {
        bson_iter_t child;
        uint32_t len = 0;
        const char *s = BSON_ITER_HOLDS_UTF8(it) ? bson_iter_utf8(it, &len) : NULL;
        const char *key = bson_iter_key(it);
        if ((s && schema_utf8_valid_prefix(s, len) != len) ||
            schema_utf8_valid_prefix(key, strlen(key)) != strlen(key))
            __builtin_trap();
        if ((BSON_ITER_HOLDS_DOCUMENT(it) || BSON_ITER_HOLDS_ARRAY(it)) &&
            bson_iter_recurse(it, &child))
            check_strings(&child);
    }
}

static void check_doc(bson_t *doc)
{
    bson_iter_t it;
    if (!bson_validate(doc, BSON_VALIDATE_UTF8, NULL) || !bson_iter_init_find(&it, doc, "pk") ||
        !BSON_ITER_HOLDS_UTF8(&it) || !bson_iter_init_find(&it, doc, "sk"))
        __builtin_trap();
    if (bson_iter_init(&it, doc))
        check_strings(&it);
    bson_destroy(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    sl_error e;
    bson_t *doc = NULL;
    for (size_t at = 0; at < size;) {
        const char *nl = memchr(text + at, '\n', size - at);
        size_t len = nl ? (size_t)(nl - (text + at)) : size - at;
        sl_error_clear(&e);
        if (ingest_asset_doc("t", NULL, text + at, len, NULL, &doc, &e) == SL_OK)
            check_doc(doc);
        else if (!e.message[0])
            __builtin_trap();
        at += len + 1;
    }
    sl_error_clear(&e);
    if (ingest_surgery_doc("t", "s", text, size, NULL, NULL, &doc, &e) == SL_OK)
        check_doc(doc);
    sl_error_clear(&e);
    if (ingest_catalog_doc("t", "SKU", text, size, NULL, &doc, &e) == SL_OK)
        check_doc(doc);
    ingest_categories *c = NULL;
    sl_error_clear(&e);
    if (ingest_categories_parse(text, size, NULL, &c, &e) == SL_OK)
        ingest_categories_free(&c);
    return 0;
}
