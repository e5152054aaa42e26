/* fuzz_catalog.c -- libFuzzer target: the tool catalog's one definition
 * (schema/catalog.c) behind the PUT codec.  Input: a catalog entry's JSON
 * body, then optionally a NUL and a detector label.  What ingest accepts
 * must decode with the engine's strict decoder and compile (issue 11: the
 * two sides had drifted apart); the label is matched, which may fail with a
 * message (not UTF-8, PCRE2's match limit) but never crash.  The raw input is
 * also given to the decoders of stored documents when it is BSON. */
#include "ingest/ingest.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *nul = memchr(text, '\0', size);
    size_t blen = nul ? (size_t)(nul - text) : size;
    const char *label = nul ? nul + 1 : "scalpel";
    size_t llen = nul ? size - blen - 1 : 7;
    sl_error e;
    bson_t *doc = NULL;
    sl_error_clear(&e);
    if (ingest_catalog_doc("t", "SKU", text, blen, NULL, &doc, &e) == SL_OK) {
        schema_catalog_doc d;
        schema_catalog *c = NULL;
        size_t at = 0;
        if (schema_catalog_entry_from_bson(doc, &d, &e) != SL_OK ||
            schema_catalog_new(&c, &e) != SL_OK || schema_catalog_add(c, &d.entry, &e) != SL_OK)
            __builtin_trap(); /* accepted by ingest, refused by the engine */
        sl_error_clear(&e);
        if (schema_catalog_match(c, label, llen, &at, &e) == SL_OK) {
            if (at != SCHEMA_CATALOG_NONE && at != 0)
                __builtin_trap();
        } else if (!e.message[0]) {
            __builtin_trap();
        }
        schema_catalog_free(&c);
        bson_destroy(doc);
    } else if (!e.message[0]) {
        __builtin_trap();
    }
    /* Stored bytes: the strict decoders never read past them or crash. */
    bson_t raw;
    if (bson_init_static(&raw, data, size)) {
        schema_catalog_doc d;
        schema_surgery_life l;
        sl_error_clear(&e);
        if (schema_catalog_entry_from_bson(&raw, &d, &e) == SL_OK &&
            schema_catalog_entry_check(&d.entry, NULL) != SL_OK)
            __builtin_trap();
        sl_error_clear(&e);
        (void)schema_surgery_life_from_bson(&raw, &l, &e);
    }
    return 0;
}
