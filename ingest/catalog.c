/* catalog.c -- the tool catalog on ingest's side: the PUT /v1/catalog/{sku}
 * body codec, the tenant's compiled catalog (label -> SKU while detections
 * arrive) and a per-tenant cache that recompiles only when some entry's
 * version changed.  The vocabulary, the bounds, the decoder of a stored entry
 * and the matcher are schema's (schema.h, "The tool catalog"), shared with
 * the engine, which reads the same documents (engine_catalog_load). */
#include "ingest_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_TENANTS_MAX 256u

/* ---------------------------------------------------------------------------
 * The PUT body.
 * ------------------------------------------------------------------------- */
sl_status ingest_catalog_doc(const char *tenant, const char *sku, const void *json, size_t len,
                             const ingest_limits *lim, bson_t **out, sl_error *err)
{
    sl_status rc;
    ingest__tree *t = NULL;
    bson_t *doc = NULL;
    schema_key pk, sk;
    if ((rc = schema_pk_catalog(pk, tenant, err)) != SL_OK ||
        (rc = schema_sk_catalog_tool(sk, sku, err)) != SL_OK)
        goto out;
    if ((rc = ingest__tree_parse(json, len, lim, &t, err)) != SL_OK)
        goto out;
    const ingest__jnode *root = ingest__tree_root(t), *labels = NULL;
    const char *name = NULL;
    int64_t cost = 0;
    bool single_use = false;
    if ((rc = ingest__body_object(t, root, "a catalog entry", err)) ||
        (rc = ingest__tree_string(t, root, SCHEMA_F_NAME, true, SCHEMA_CATALOG_NAME_MAX, &name,
                                  err)) ||
        (rc = ingest__tree_typed(t, root, SCHEMA_F_CATALOG_LABELS, true, INGEST__T_ARRAY, &labels,
                                 err)) ||
        (rc = ingest__tree_int(t, root, SCHEMA_F_UNIT_COST_CENTS, true, 0, SCHEMA_UNIT_COST_MAX,
                               &cost, err)) ||
        (rc = ingest__tree_bool(t, root, SCHEMA_F_SINGLE_USE, true, &single_use, err)))
        goto out;
    if (labels->count == 0 || labels->count > SCHEMA_CATALOG_LABELS_MAX) {
        rc = ingest__tree_fail(t, labels, err, SL_EINVAL,
                               "labels must hold 1 to %u patterns, not %u",
                               SCHEMA_CATALOG_LABELS_MAX, labels->count);
        goto out;
    }
    for (const ingest__jnode *n = labels->first; n; n = n->next) {
        if (n->type != INGEST__T_STRING || n->len == 0 || n->len > SCHEMA_CATALOG_PATTERN_MAX) {
            rc = ingest__tree_fail(t, n, err, SL_EINVAL,
                                   "each label pattern must be a string of 1 to %u bytes",
                                   SCHEMA_CATALOG_PATTERN_MAX);
            goto out;
        }
        sl_error pe;
        sl_error_clear(&pe);
        if (schema_catalog_pattern_check(n->s, n->len, &pe) != SL_OK) {
            rc = ingest__tree_fail(t, n, err, pe.status, "%s", pe.message);
            goto out;
        }
    }
    doc = bson_new();
    bson_t arr;
    char idx[16];
    const char *key;
    bool ok = BSON_APPEND_UTF8(doc, SCHEMA_F_PK, pk) && BSON_APPEND_UTF8(doc, SCHEMA_F_SK, sk) &&
              BSON_APPEND_UTF8(doc, SCHEMA_F_TYPE, SCHEMA_TYPE_CATALOG_TOOL) &&
              BSON_APPEND_UTF8(doc, SCHEMA_F_SKU, sku) &&
              BSON_APPEND_UTF8(doc, SCHEMA_F_NAME, name) &&
              BSON_APPEND_ARRAY_BEGIN(doc, SCHEMA_F_CATALOG_LABELS, &arr);
    uint32_t i = 0;
    for (const ingest__jnode *n = labels->first; ok && n; n = n->next, i++) {
        bson_uint32_to_string(i, &key, idx, sizeof idx);
        ok = bson_append_utf8(&arr, key, -1, n->s, (int)n->len);
    }
    ok = ok && bson_append_array_end(doc, &arr) &&
         BSON_APPEND_INT64(doc, SCHEMA_F_UNIT_COST_CENTS, cost) &&
         BSON_APPEND_BOOL(doc, SCHEMA_F_SINGLE_USE, single_use);
    if (!ok) {
        rc = sl_error_set(err, SL_ETOOLARGE, "catalog entry does not fit in a document");
        goto out;
    }
    /* What is stored must be what every reader decodes (the engine refuses
     * the document otherwise): the one decoder says so here, not later. */
    schema_catalog_doc back;
    sl_error de;
    sl_error_clear(&de);
    if (schema_catalog_entry_from_bson(doc, &back, &de) != SL_OK)
        rc = sl_error_set_at(err, SL_EINTERNAL, de.field, -1,
                             "the catalog entry written would not read back: %s", de.message);
out:
    return ingest__body_done(rc, &t, doc, out);
}

sl_status ingest_catalog_room(store *s, const char *tenant, const char *sku, size_t max,
                              const char *limit, sl_error *err)
{
    sl_status rc = SL_OK;
    schema_key pk, sk;
    bson_t *doc = NULL;
    store_page page = {0};
    char token[STORE_PAGE_TOKEN_MAX] = "";
    size_t n = 0;
    if ((rc = schema_pk_catalog(pk, tenant, err)) != SL_OK ||
        (rc = schema_sk_catalog_tool(sk, sku, err)) != SL_OK)
        goto out;
    rc = store_get(s, STORE_ITEMS, pk, sk, &doc, err);
    if (rc == SL_OK || rc == SL_ECORRUPT) { /* there: replaced (damaged bytes too) */
        sl_error_clear(err);
        rc = SL_OK;
        goto out;
    }
    if (rc != SL_ENOTFOUND)
        goto out;
    sl_error_clear(err);
    rc = SL_OK;
    /* Keys only matter; at most max + 1 are read. */
    while (n < max) {
        store_query_opts q = {.range = {STORE_RANGE_BEGINS_WITH, SCHEMA_SK_TOOL_PREFIX, NULL},
                              .limit = STORE_PAGE_MAX,
                              .page_token = token[0] ? token : NULL};
        if ((rc = store_query(s, STORE_ITEMS, pk, &q, &page, err)) != SL_OK)
            goto out;
        n += page.count;
        if (!page.next_token)
            break;
        snprintf(token, sizeof token, "%s", page.next_token);
        store_page_free(&page);
    }
    if (n >= max)
        rc =
            sl_error_set_at(err, SL_ECONFLICT, limit, -1,
                            "the catalog of tenant %s holds %s%zu entries, the most %s allows: "
                            "\"%s\" would be a new one; replace an existing entry (PUT its sku) or "
                            "ask the operator to raise %s; nothing was written",
                            tenant, n > max ? "more than " : "", max, limit, sku, limit);
out:
    store_page_free(&page);
    if (doc)
        bson_destroy(doc);
    return rc;
}

sl_status ingest_catalog_put(store *s, const char *tenant, const char *sku, const void *json,
                             size_t len, store_put_result *res, sl_error *err)
{
    bson_t *doc = NULL;
    sl_status rc = ingest_catalog_doc(tenant, sku, json, len, NULL, &doc, err);
    if (rc == SL_OK)
        rc = ingest_catalog_room(s, tenant, sku, SCHEMA_CATALOG_ENTRIES_MAX,
                                 "SCHEMA_CATALOG_ENTRIES_MAX", err);
    if (rc != SL_OK && doc)
        bson_destroy(doc);
    return rc == SL_OK ? ingest__body_put(s, doc, res, err) : rc;
}

/* ---------------------------------------------------------------------------
 * The compiled catalog: schema's, counted and fingerprinted for the cache.
 * ------------------------------------------------------------------------- */
struct ingest_catalog {
    atomic_int refs;
    schema_catalog *sc;   /* NULL when only the fingerprint was read */
    size_t skipped;       /* stored entries that do not decode or compile */
    uint64_t fingerprint; /* of the (sku, version) list it was built from */
};

static void catalog_free(ingest_catalog *c)
{
    schema_catalog_free(&c->sc);
    free(c);
}

void ingest_catalog_release(ingest_catalog **cp)
{
    if (!cp || !*cp)
        return;
    if (atomic_fetch_sub(&(*cp)->refs, 1) == 1)
        catalog_free(*cp);
    *cp = NULL;
}

size_t ingest_catalog_size(const ingest_catalog *c)
{
    return c ? schema_catalog_size(c->sc) : 0;
}

size_t ingest_catalog_skipped(const ingest_catalog *c)
{
    return c ? c->skipped : 0;
}

sl_status ingest_catalog_match(const ingest_catalog *c, const char *label, size_t len,
                               const char **sku, sl_error *err)
{
    size_t i = SCHEMA_CATALOG_NONE;
    sl_status rc = schema_catalog_match(c ? c->sc : NULL, label, len, &i, err);
    if (rc == SL_OK)
        *sku = i == SCHEMA_CATALOG_NONE ? NULL : schema_catalog_at(c->sc, i)->sku;
    return rc;
}

static uint64_t fp_mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull; /* FNV-1a, 64 bits */
    return h;
}

/* Reads every catalog entry of tenant, in SKU order.  With compile false
 * only the fingerprint is computed (c->sc stays NULL).  An entry that does
 * not decode or compile (never written by this version's PUT) is skipped and
 * counted: detections keep arriving, its labels show as unmapped in the
 * ingest answer, and the usage analysis, which reads the catalog strictly
 * (engine_catalog_load), fails naming it until a PUT replaces it.  More than
 * SCHEMA_CATALOG_ENTRIES_MAX stored entries fail the read (SL_ETOOLARGE),
 * the fingerprint's too: no reader compiles or scans past the bound. */
static sl_status too_many(sl_error *err, const char *pk)
{
    return sl_error_set_at(
        err, SL_ETOOLARGE, "catalog", -1,
        "the catalog %s holds more than %u entries (SCHEMA_CATALOG_ENTRIES_MAX), "
        "more than is compiled: remove entries (the server holds a tenant to "
        "catalog-entries-max)",
        pk, SCHEMA_CATALOG_ENTRIES_MAX);
}

static sl_status catalog_read(store *s, const char *tenant, bool compile, ingest_catalog **out,
                              sl_error *err)
{
    sl_status rc = SL_OK;
    size_t stored = 0;
    schema_key pk;
    store_page page = {0};
    char token[STORE_PAGE_TOKEN_MAX] = "";
    ingest_catalog *c = calloc(1, sizeof *c);
    if (!c) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory reading the catalog");
        goto out;
    }
    atomic_init(&c->refs, 1);
    c->fingerprint = 14695981039346656037ull;
    if ((rc = schema_pk_catalog(pk, tenant, err)) != SL_OK)
        goto out;
    if (compile && (rc = schema_catalog_new(&c->sc, err)) != SL_OK)
        goto out;
    for (;;) {
        store_query_opts q = {.range = {STORE_RANGE_BEGINS_WITH, SCHEMA_SK_TOOL_PREFIX, NULL},
                              .limit = STORE_PAGE_MAX,
                              .page_token = token[0] ? token : NULL};
        if ((rc = store_query(s, STORE_ITEMS, pk, &q, &page, err)) != SL_OK)
            goto out;
        for (size_t i = 0; i < page.count; i++) {
            /* The key and version the store keeps, whatever the bytes say. */
            const char *sk = page.docs[i].sk;
            if (++stored > SCHEMA_CATALOG_ENTRIES_MAX) { /* checked while reading, also */
                rc = too_many(err, pk);                  /* for the fingerprint */
                goto out;
            }
            int64_t v = page.docs[i].version;
            c->fingerprint = fp_mix(c->fingerprint, sk, strlen(sk) + 1);
            c->fingerprint = fp_mix(c->fingerprint, &v, sizeof v);
            if (!compile)
                continue;
            bson_t view;
            schema_catalog_doc d;
            sl_error e;
            sl_error_clear(&e);
            if (!store_page_view(&page, i, &view) ||
                schema_catalog_entry_from_bson(&view, &d, &e) != SL_OK) {
                c->skipped++;
                continue;
            }
            sl_status arc = schema_catalog_add(c->sc, &d.entry, &e);
            if (arc == SL_ENOMEM) {
                rc = sl_error_set(err, SL_ENOMEM, "out of memory compiling the catalog");
                goto out;
            }
            if (arc == SL_ETOOLARGE) {
                rc = too_many(err, pk);
                goto out;
            }
            if (arc != SL_OK)
                c->skipped++;
        }
        if (!page.next_token)
            break;
        snprintf(token, sizeof token, "%s", page.next_token);
        store_page_free(&page);
    }
out:
    store_page_free(&page);
    if (rc != SL_OK && c)
        catalog_free(c);
    else if (rc == SL_OK)
        *out = c;
    return rc;
}

sl_status ingest_catalog_load(store *s, const char *tenant, ingest_catalog **out, sl_error *err)
{
    return catalog_read(s, tenant, true, out, err);
}

/* ---------------------------------------------------------------------------
 * The cache.
 * ------------------------------------------------------------------------- */
typedef struct cached {
    char tenant[SCHEMA_COMPONENT_MAX + 1];
    ingest_catalog *catalog;
} cached;

struct ingest_catalog_cache {
    pthread_mutex_t mu;
    cached *t;
    size_t n;
    uint64_t compiles;
};

sl_status ingest_catalog_cache_new(ingest_catalog_cache **out, sl_error *err)
{
    sl_status rc = SL_OK;
    ingest_catalog_cache *cc = calloc(1, sizeof *cc);
    if (cc)
        cc->t = calloc(CACHE_TENANTS_MAX, sizeof *cc->t);
    if (!cc || !cc->t) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        if (cc)
            free(cc);
        goto out;
    }
    pthread_mutex_init(&cc->mu, NULL);
    *out = cc;
out:
    return rc;
}

sl_status ingest_catalog_cache_get(ingest_catalog_cache *cc, store *s, const char *tenant,
                                   ingest_catalog **out, sl_error *err)
{
    ingest_catalog *probe = NULL, *fresh = NULL, *found = NULL;
    cached *hit = NULL;
    sl_status rc = catalog_read(s, tenant, false, &probe, err);
    if (rc != SL_OK)
        goto out;
    pthread_mutex_lock(&cc->mu);
    for (size_t i = 0; i < cc->n; i++)
        if (strcmp(cc->t[i].tenant, tenant) == 0)
            hit = &cc->t[i];
    if (hit && hit->catalog->fingerprint == probe->fingerprint) {
        atomic_fetch_add(&hit->catalog->refs, 1);
        found = hit->catalog;
    }
    pthread_mutex_unlock(&cc->mu);
    if (found)
        goto out;
    /* Compile outside the lock; a racing caller may compile the same version
     * too, and the last one in stays cached. */
    if ((rc = catalog_read(s, tenant, true, &fresh, err)) != SL_OK)
        goto out;
    pthread_mutex_lock(&cc->mu);
    cc->compiles++;
    hit = NULL;
    for (size_t i = 0; i < cc->n; i++)
        if (strcmp(cc->t[i].tenant, tenant) == 0)
            hit = &cc->t[i];
    if (!hit && cc->n < CACHE_TENANTS_MAX)
        hit = &cc->t[cc->n++];
    if (!hit) /* full: evict the oldest slot, which is as good as any */
        hit = &cc->t[cc->compiles % CACHE_TENANTS_MAX];
    ingest_catalog_release(&hit->catalog);
    snprintf(hit->tenant, sizeof hit->tenant, "%s", tenant);
    hit->catalog = fresh;
    atomic_fetch_add(&fresh->refs, 1);
    pthread_mutex_unlock(&cc->mu);
    found = fresh;
out:
    ingest_catalog_release(&probe);
    if (rc == SL_OK)
        *out = found;
    return rc;
}

uint64_t ingest_catalog_cache_compiles(const ingest_catalog_cache *cc)
{
    pthread_mutex_t *mu = (pthread_mutex_t *)&cc->mu; /* locking does not change the cache */
    pthread_mutex_lock(mu);
    uint64_t n = cc->compiles;
    pthread_mutex_unlock(mu);
    return n;
}

void ingest_catalog_cache_free(ingest_catalog_cache **ccp)
{
    if (!ccp || !*ccp)
        return;
    ingest_catalog_cache *cc = *ccp;
    for (size_t i = 0; i < cc->n; i++)
        ingest_catalog_release(&cc->t[i].catalog);
    free(cc->t);
    pthread_mutex_destroy(&cc->mu);
    free(cc);
    *ccp = NULL;
}
