/* catalog.c -- the tool catalog: the PUT /v1/catalog/{sku} body codec, the
 * compiled catalog (PCRE2 label patterns -> SKU) and a per-tenant cache that
 * recompiles only when some entry's version changed. */
#include "ingest_int.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CATALOG_NAME_MAX    256u
#define CATALOG_LABELS_MAX  64u            /* patterns of one entry */
#define CATALOG_PATTERN_MAX 512u           /* bytes of one pattern */
#define CATALOG_COST_MAX    100000000000ll /* a billion dollars, in cents */
#define CACHE_TENANTS_MAX   256u

/* Compiled as a whole-label match: "scalpel" does not match "scalpel-holder". */
static const uint32_t pattern_options = PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED | PCRE2_ENDANCHORED;

/* ---------------------------------------------------------------------------
 * The PUT body.
 * ------------------------------------------------------------------------- */
static sl_status compile_check(const ingest__tree *t, const ingest__jnode *n, sl_error *err)
{
    sl_status rc = SL_OK;
    int code;
    PCRE2_SIZE where;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)n->s, n->len, pattern_options, &code, &where, NULL);
    if (re) {
        pcre2_code_free(re);
    } else {
        PCRE2_UCHAR msg[160];
        if (pcre2_get_error_message(code, msg, sizeof msg) < 0)
            snprintf((char *)msg, sizeof msg, "error %d", code);
        rc = ingest__tree_fail(t, n, err, SL_EINVAL,
                               "label pattern /%.60s/ does not compile: %s (at pattern offset %zu)",
                               n->s, (const char *)msg, (size_t)where);
    }
    return rc;
}

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
        (rc = ingest__tree_string(t, root, "name", true, CATALOG_NAME_MAX, &name, err)) ||
        (rc = ingest__tree_typed(t, root, "labels", true, INGEST__T_ARRAY, &labels, err)) ||
        (rc =
             ingest__tree_int(t, root, "unit_cost_cents", true, 0, CATALOG_COST_MAX, &cost, err)) ||
        (rc = ingest__tree_bool(t, root, "single_use", true, &single_use, err)))
        goto out;
    if (labels->count == 0 || labels->count > CATALOG_LABELS_MAX) {
        rc = ingest__tree_fail(t, labels, err, SL_EINVAL,
                               "labels must hold 1 to %u patterns, not %u", CATALOG_LABELS_MAX,
                               labels->count);
        goto out;
    }
    for (const ingest__jnode *n = labels->first; n; n = n->next) {
        if (n->type != INGEST__T_STRING || n->len == 0 || n->len > CATALOG_PATTERN_MAX) {
            rc = ingest__tree_fail(t, n, err, SL_EINVAL,
                                   "each label pattern must be a string of 1 to %u bytes",
                                   CATALOG_PATTERN_MAX);
            goto out;
        }
        if ((rc = compile_check(t, n, err)) != SL_OK)
            goto out;
    }
    doc = bson_new();
    bson_t arr;
    char idx[16];
    const char *key;
    bool ok = BSON_APPEND_UTF8(doc, SCHEMA_F_PK, pk) && BSON_APPEND_UTF8(doc, SCHEMA_F_SK, sk) &&
              BSON_APPEND_UTF8(doc, SCHEMA_F_TYPE, SCHEMA_TYPE_CATALOG_TOOL) &&
              BSON_APPEND_UTF8(doc, "sku", sku) && BSON_APPEND_UTF8(doc, "name", name) &&
              BSON_APPEND_ARRAY_BEGIN(doc, "labels", &arr);
    uint32_t i = 0;
    for (const ingest__jnode *n = labels->first; ok && n; n = n->next, i++) {
        bson_uint32_to_string(i, &key, idx, sizeof idx);
        ok = bson_append_utf8(&arr, key, -1, n->s, (int)n->len);
    }
    ok = ok && bson_append_array_end(doc, &arr) &&
         BSON_APPEND_INT64(doc, "unit_cost_cents", cost) &&
         BSON_APPEND_BOOL(doc, "single_use", single_use);
    if (!ok)
        rc = sl_error_set(err, SL_ETOOLARGE, "catalog entry does not fit in a document");
out:
    return ingest__body_done(rc, &t, doc, out);
}

sl_status ingest_catalog_put(store *s, const char *tenant, const char *sku, const void *json,
                             size_t len, store_put_result *res, sl_error *err)
{
    bson_t *doc = NULL;
    sl_status rc = ingest_catalog_doc(tenant, sku, json, len, NULL, &doc, err);
    return rc == SL_OK ? ingest__body_put(s, doc, res, err) : rc;
}

/* ---------------------------------------------------------------------------
 * The compiled catalog.
 * ------------------------------------------------------------------------- */
typedef struct entry {
    char *sku;
    int64_t version;
    size_t n;
    pcre2_code **re;
} entry;

struct ingest_catalog {
    atomic_int refs;
    entry *e;
    size_t n;
    uint64_t fingerprint; /* of the (sku, version) list it was built from */
};

static void catalog_free(ingest_catalog *c)
{
    for (size_t i = 0; i < c->n; i++) {
        for (size_t k = 0; k < c->e[i].n; k++)
            pcre2_code_free(c->e[i].re[k]);
        free(c->e[i].re);
        free(c->e[i].sku);
    }
    free(c->e);
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
    return c ? c->n : 0;
}

const char *ingest_catalog_match(const ingest_catalog *c, const char *label, size_t len)
{
    const char *sku = NULL;
    if (!c || c->n == 0)
        return NULL;
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md)
        return NULL;
    for (size_t i = 0; !sku && i < c->n; i++)
        for (size_t k = 0; !sku && k < c->e[i].n; k++)
            if (pcre2_match(c->e[i].re[k], (PCRE2_SPTR)label, len, 0, 0, md, NULL) >= 0)
                sku = c->e[i].sku;
    pcre2_match_data_free(md);
    return sku;
}

static uint64_t fp_mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull; /* FNV-1a, 64 bits */
    return h;
}

/* Reads every catalog entry of tenant.  With compile false only the
 * fingerprint is computed (c->e stays empty). */
static sl_status catalog_read(store *s, const char *tenant, bool compile, ingest_catalog **out,
                              sl_error *err)
{
    sl_status rc = SL_OK;
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
    size_t cap = 0;
    for (;;) {
        store_query_opts q = {.range = {STORE_RANGE_BEGINS_WITH, SCHEMA_SK_TOOL_PREFIX, NULL},
                              .limit = STORE_PAGE_MAX,
                              .page_token = token[0] ? token : NULL};
        if ((rc = store_query(s, STORE_ITEMS, pk, &q, &page, err)) != SL_OK)
            goto out;
        for (size_t i = 0; i < page.count; i++) {
            bson_t view;
            bson_iter_t it, arr;
            if (!store_page_view(&page, i, &view))
                continue;
            const char *sku = NULL;
            int64_t v = 0;
            if (bson_iter_init_find(&it, &view, "sku") && BSON_ITER_HOLDS_UTF8(&it))
                sku = bson_iter_utf8(&it, NULL);
            if (bson_iter_init_find(&it, &view, SCHEMA_F_VERSION) && BSON_ITER_HOLDS_INT64(&it))
                v = bson_iter_int64(&it);
            if (!sku)
                continue; /* not a catalog entry we wrote */
            c->fingerprint = fp_mix(c->fingerprint, sku, strlen(sku) + 1);
            c->fingerprint = fp_mix(c->fingerprint, &v, sizeof v);
            if (!compile)
                continue;
            if (c->n == cap) {
                cap = cap ? cap * 2 : 16;
                entry *e = realloc(c->e, sizeof *e * cap);
                if (!e) {
                    rc = sl_error_set(err, SL_ENOMEM, "out of memory reading the catalog");
                    goto out;
                }
                c->e = e;
            }
            entry *e = &c->e[c->n++];
            memset(e, 0, sizeof *e);
            e->sku = strdup(sku);
            e->version = v;
            if (!e->sku) {
                rc = sl_error_set(err, SL_ENOMEM, "out of memory reading the catalog");
                goto out;
            }
            if (!bson_iter_init_find(&it, &view, "labels") || !BSON_ITER_HOLDS_ARRAY(&it) ||
                !bson_iter_recurse(&it, &arr))
                continue;
            while (bson_iter_next(&arr)) {
                if (!BSON_ITER_HOLDS_UTF8(&arr))
                    continue;
                uint32_t plen;
                const char *pat = bson_iter_utf8(&arr, &plen);
                int code;
                PCRE2_SIZE where;
                pcre2_code *re =
                    pcre2_compile((PCRE2_SPTR)pat, plen, pattern_options, &code, &where, NULL);
                if (!re)
                    continue; /* refused at PUT time; a stored bad one matches nothing */
                (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
                pcre2_code **r = realloc(e->re, sizeof *r * (e->n + 1));
                if (!r) {
                    pcre2_code_free(re);
                    rc = sl_error_set(err, SL_ENOMEM, "out of memory compiling the catalog");
                    goto out;
                }
                e->re = r;
                e->re[e->n++] = re;
            }
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
