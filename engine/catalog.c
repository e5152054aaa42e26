/* catalog.c -- the tenant's tool catalog as the engine reads it: every
 * catalog_tool document, strictly decoded by schema (the same decoder ingest
 * uses) and compiled into schema's matcher.  See engine.h, "The tool
 * catalog". */
#include "engine_int.h"

#include <stdio.h>
#include <string.h>

/* Entry (pk, sk) of a page into c; SL_ECORRUPT naming it and the field. */
static sl_status add_doc(schema_catalog *c, const store_page *page, size_t i, sl_error *err)
{
    sl_status rc = SL_OK;
    const store_doc *d = &page->docs[i];
    bson_t view;
    schema_catalog_doc cd;
    schema_key want;
    sl_error e;
    sl_error_clear(&e);
    if (!store_page_view(page, i, &view)) {
        rc = sl_error_set_at(err, SL_ECORRUPT, "document", -1,
                             "catalog entry %s / %s: document is not BSON (%u bytes)", d->pk, d->sk,
                             d->len);
        goto out;
    }
    if ((rc = schema_catalog_entry_from_bson(&view, &cd, &e)) != SL_OK)
        goto bad;
    /* The bytes must be the entry of the key they are kept under. */
    if (schema_sk_catalog_tool(want, cd.entry.sku, &e) != SL_OK || strcmp(want, d->sk) != 0) {
        rc = sl_error_set_at(err, SL_ECORRUPT, SCHEMA_F_SKU, -1,
                             "catalog entry %s / %s: document holds sku \"%s\"", d->pk, d->sk,
                             cd.entry.sku);
        goto out;
    }
    if ((rc = schema_catalog_add(c, &cd.entry, &e)) == SL_OK)
        goto out;
    if (rc == SL_ENOMEM) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory compiling the catalog");
        goto out;
    }
    if (rc == SL_ETOOLARGE) { /* more entries than any catalog holds: no memory spent past it */
        rc = sl_error_set_at(err, SL_ETOOLARGE, "catalog", -1,
                             "the catalog %s holds more than %u entries "
                             "(SCHEMA_CATALOG_ENTRIES_MAX), more than is compiled: remove "
                             "entries (the server holds a tenant to catalog-entries-max)",
                             d->pk, SCHEMA_CATALOG_ENTRIES_MAX);
        goto out;
    }
    /* A stored pattern that does not compile is damage too (PUT refuses it). */
bad:
    rc = sl_error_set_at(err, SL_ECORRUPT, e.field, -1, "catalog entry %s / %s: %s", d->pk, d->sk,
                         e.message);
out:
    return rc;
}

sl_status engine_catalog_load(store *s, const char *tenant, schema_catalog **out, sl_error *err)
{
    sl_status rc = SL_OK;
    schema_key pk;
    store_page page = {0};
    char token[STORE_PAGE_TOKEN_MAX] = "";
    schema_catalog *c = NULL;
    if ((rc = schema_pk_catalog(pk, tenant, err)) != SL_OK ||
        (rc = schema_catalog_new(&c, err)) != SL_OK)
        goto out;
    for (;;) {
        store_query_opts q = {.range = {STORE_RANGE_BEGINS_WITH, SCHEMA_SK_TOOL_PREFIX, NULL},
                              .limit = STORE_PAGE_MAX,
                              .page_token = token[0] ? token : NULL};
        if ((rc = store_query(s, STORE_ITEMS, pk, &q, &page, err)) != SL_OK)
            goto out;
        for (size_t i = 0; i < page.count; i++)
            if ((rc = add_doc(c, &page, i, err)) != SL_OK)
                goto out;
        if (!page.next_token)
            break;
        snprintf(token, sizeof token, "%s", page.next_token);
        store_page_free(&page);
    }
out:
    store_page_free(&page);
    if (rc == SL_OK)
        *out = c;
    else
        schema_catalog_free(&c);
    return rc;
}
