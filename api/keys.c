/* keys.c -- tenant and API-key documents: keys from GnuTLS's key-grade random
 * source, only their SHA-256 stored, lookup by id through gsi1, listing and
 * revocation.  Shared by the CLI (a second process) and the server. */
#include "api_int.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>
#include <time.h>

#define KEY_PREFIX "sl_"
#define SECRET_HEX 64

static const struct {
    api_role role;
    const char *name;
} role_names[] = {
    {API_ROLE_INGEST, "ingest"},
    {API_ROLE_STAFF, "staff"},
    {API_ROLE_VIEWER, "viewer"},
    {API_ROLE_ADMIN, "admin"},
};

const char *api_role_name(api_role r)
{
    const char *name = "none";
    for (size_t i = 0; i < sizeof role_names / sizeof role_names[0]; i++)
        if (role_names[i].role == r)
            name = role_names[i].name;
    return name;
}

sl_status api_role_parse(const char *name, api_role *out, sl_error *err)
{
    sl_status rc = SL_EINVAL;
    for (size_t i = 0; i < sizeof role_names / sizeof role_names[0] && rc != SL_OK; i++)
        if (name && !strcmp(role_names[i].name, name)) {
            *out = role_names[i].role;
            rc = SL_OK;
        }
    if (rc != SL_OK)
        sl_error_set_at(err, SL_EINVAL, "role", -1,
                        "role \"%.32s\" is not one of ingest, staff, viewer, admin",
                        name ? name : "");
    return rc;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Copies string field `f` of doc into out (cap bytes); 0 when missing, not a
 * string or too long. */
static int doc_str(const bson_t *doc, const char *f, char *out, size_t cap)
{
    bson_iter_t it;
    uint32_t len = 0;
    const char *v = bson_iter_init_find(&it, doc, f) && BSON_ITER_HOLDS_UTF8(&it)
                        ? bson_iter_utf8(&it, &len)
                        : NULL;
    int ok = v && len < cap;
    if (ok) {
        memcpy(out, v, len);
        out[len] = '\0';
    }
    return ok;
}

static int doc_i64(const bson_t *doc, const char *f, int64_t *out)
{
    bson_iter_t it;
    int ok = bson_iter_init_find(&it, doc, f) && BSON_ITER_HOLDS_NUMBER(&it);
    if (ok)
        *out = bson_iter_as_int64(&it);
    return ok;
}

/* ---- tenants ---- */

sl_status api_tenant_create(store *st, const char *tenant, const char *kind, sl_error *err)
{
    sl_status rc = SL_OK;
    schema_key pk;
    bson_t doc = BSON_INITIALIZER;
    rc = schema_pk_tenant(pk, tenant, err);
    if (rc != SL_OK)
        goto out;
    if (!kind || (strcmp(kind, SCHEMA_KIND_HOSPITAL) && strcmp(kind, SCHEMA_KIND_BRAND_CLIENT))) {
        rc = sl_error_set_at(err, SL_EINVAL, "kind", -1,
                             "tenant kind \"%.32s\" is not hospital or brand-client",
                             kind ? kind : "");
        goto out;
    }
    BSON_APPEND_UTF8(&doc, SCHEMA_F_PK, pk);
    BSON_APPEND_UTF8(&doc, SCHEMA_F_SK, SCHEMA_SK_TENANT);
    BSON_APPEND_UTF8(&doc, SCHEMA_F_TYPE, SCHEMA_TYPE_TENANT);
    BSON_APPEND_UTF8(&doc, SCHEMA_F_TENANT, tenant);
    BSON_APPEND_UTF8(&doc, SCHEMA_F_KIND, kind);
    BSON_APPEND_INT64(&doc, SCHEMA_F_CREATED_MS, now_ms());
    rc = store_put(st, STORE_ITEMS, &doc, (store_cond){STORE_COND_NOT_EXISTS, 0}, NULL, err);
    if (rc == SL_ECONDITION) {
        sl_error_clear(err);
        rc = sl_error_set_at(err, SL_ECONDITION, "tenant", -1, "tenant %s already exists", tenant);
    }
out:
    bson_destroy(&doc);
    return rc;
}

sl_status api_tenant_kind(store *st, const char *tenant, char kind_out[16], sl_error *err)
{
    sl_status rc = SL_OK;
    schema_key pk;
    bson_t *doc = NULL;
    rc = schema_pk_tenant(pk, tenant, err);
    if (rc != SL_OK)
        goto out;
    rc = store_get(st, STORE_ITEMS, pk, SCHEMA_SK_TENANT, &doc, err);
    if (rc == SL_ENOTFOUND) {
        sl_error_clear(err);
        rc = sl_error_set_at(err, SL_ENOTFOUND, "tenant", -1, "tenant %s does not exist", tenant);
    }
    if (rc != SL_OK)
        goto out;
    if (!doc_str(doc, SCHEMA_F_KIND, kind_out, 16)) {
        rc = sl_error_set(err, SL_ECORRUPT, "tenant document %s has no kind", pk);
        goto out;
    }
out:
    if (doc)
        bson_destroy(doc);
    return rc;
}

/* ---- key documents ---- */

/* Builds the key document in the field order of docs/documents.md. */
static sl_status key_doc(bson_t *doc, const api_key_info *k, const char *hash, sl_error *err)
{
    sl_status rc = SL_OK;
    schema_key pk, sk, gpk;
    if ((rc = schema_pk_tenant(pk, k->tenant, err)) != SL_OK ||
        (rc = schema_sk_key(sk, k->key_id, err)) != SL_OK ||
        (rc = schema_gsi1pk_key_id(gpk, k->key_id, err)) != SL_OK)
        goto out;
    BSON_APPEND_UTF8(doc, SCHEMA_F_PK, pk);
    BSON_APPEND_UTF8(doc, SCHEMA_F_SK, sk);
    BSON_APPEND_UTF8(doc, SCHEMA_F_GSI1PK, gpk);
    BSON_APPEND_UTF8(doc, SCHEMA_F_GSI1SK, SCHEMA_GSI1SK_KEY);
    BSON_APPEND_UTF8(doc, SCHEMA_F_TYPE, SCHEMA_TYPE_KEY);
    BSON_APPEND_UTF8(doc, SCHEMA_F_TENANT, k->tenant);
    BSON_APPEND_UTF8(doc, SCHEMA_F_KEY_ID, k->key_id);
    BSON_APPEND_UTF8(doc, SCHEMA_F_NAME, k->name);
    BSON_APPEND_UTF8(doc, SCHEMA_F_ROLE, api_role_name(k->role));
    BSON_APPEND_UTF8(doc, SCHEMA_F_HASH, hash);
    BSON_APPEND_INT64(doc, SCHEMA_F_CREATED_MS, k->created_ms);
    BSON_APPEND_INT64(doc, SCHEMA_F_REVOKED_MS, k->revoked_ms);
out:
    return rc;
}

/* Reads a key document; SL_ECORRUPT naming the document when a field is bad. */
static sl_status key_read(const bson_t *doc, api_key_info *k, char hash[65], sl_error *err)
{
    sl_status rc = SL_OK;
    char type[16], role[16];
    memset(k, 0, sizeof *k);
    if (!doc_str(doc, SCHEMA_F_TYPE, type, sizeof type) || strcmp(type, SCHEMA_TYPE_KEY) ||
        !doc_str(doc, SCHEMA_F_TENANT, k->tenant, sizeof k->tenant) ||
        !doc_str(doc, SCHEMA_F_KEY_ID, k->key_id, sizeof k->key_id) ||
        !doc_str(doc, SCHEMA_F_NAME, k->name, sizeof k->name) ||
        !doc_str(doc, SCHEMA_F_ROLE, role, sizeof role) || !doc_str(doc, SCHEMA_F_HASH, hash, 65) ||
        strlen(hash) != 64 || !doc_i64(doc, SCHEMA_F_CREATED_MS, &k->created_ms) ||
        !doc_i64(doc, SCHEMA_F_REVOKED_MS, &k->revoked_ms) ||
        api_role_parse(role, &k->role, NULL) != SL_OK) {
        rc = sl_error_set(err, SL_ECORRUPT, "key document %.20s is malformed", k->key_id);
        goto out;
    }
out:
    return rc;
}

sl_status api__key_split(const char *key, size_t len, char id[API_KEY_ID_LEN + 1], sl_error *err)
{
    sl_status rc = SL_OK;
    size_t plen = strlen(KEY_PREFIX);
    if (len != API_KEY_LEN || memcmp(key, KEY_PREFIX, plen) || key[plen + API_KEY_ID_LEN] != '_') {
        rc = sl_error_set(err, SL_EAUTH,
                          "the bearer token is not a Sightline key "
                          "(sl_<id>_<secret>, %d characters)",
                          API_KEY_LEN);
        goto out;
    }
    for (size_t i = plen; i < len; i++) {
        char c = key[i];
        if (i != plen + API_KEY_ID_LEN && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            rc = sl_error_set(err, SL_EAUTH,
                              "the bearer token is not a Sightline key "
                              "(lowercase hex expected)");
            goto out;
        }
    }
    memcpy(id, key + plen, API_KEY_ID_LEN);
    id[API_KEY_ID_LEN] = '\0';
out:
    return rc;
}

sl_status api__key_hash(const char *key, size_t len, char hex[65], sl_error *err)
{
    sl_status rc = SL_OK;
    unsigned char digest[32];
    size_t size = 65;
    gnutls_datum_t d = {digest, sizeof digest};
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, key, len, digest) < 0 ||
        gnutls_hex_encode(&d, hex, &size) < 0) {
        rc = sl_error_set(err, SL_EINTERNAL, "SHA-256 of the key failed (GnuTLS)");
        goto out;
    }
out:
    return rc;
}

sl_status api_key_create(store *st, const char *tenant, api_role role, const char *name,
                         char key_out[API_KEY_LEN + 1], api_key_info *info, sl_error *err)
{
    sl_status rc = SL_OK;
    bson_t doc = BSON_INITIALIZER;
    api_key_info k;
    char kind[16], key[API_KEY_LEN + 1], hash[65];
    unsigned char rnd[API_KEY_ID_LEN / 2 + SECRET_HEX / 2];
    char hexbuf[2 * sizeof rnd + 1];
    size_t hexsize = sizeof hexbuf;
    gnutls_datum_t d = {rnd, sizeof rnd};
    memset(&k, 0, sizeof k);

    if (!strcmp(api_role_name(role), "none")) {
        rc = sl_error_set_at(err, SL_EINVAL, "role", -1, "unknown role %d", (int)role);
        goto out;
    }
    if (name && name[0] && (rc = schema_component_check("key name", name, err)) != SL_OK)
        goto out;
    if ((rc = api_tenant_kind(st, tenant, kind, err)) != SL_OK)
        goto out;
    if (gnutls_rnd(GNUTLS_RND_KEY, rnd, sizeof rnd) < 0 ||
        gnutls_hex_encode(&d, hexbuf, &hexsize) < 0) {
        rc = sl_error_set(err, SL_EINTERNAL, "the system random source failed (GnuTLS)");
        goto out;
    }
    /* sl_<16 hex id>_<64 hex secret> */
    snprintf(key, sizeof key, "%s%.*s_%s", KEY_PREFIX, API_KEY_ID_LEN, hexbuf,
             hexbuf + API_KEY_ID_LEN);
    if ((rc = api__key_hash(key, strlen(key), hash, err)) != SL_OK)
        goto out;
    snprintf(k.tenant, sizeof k.tenant, "%s", tenant);
    memcpy(k.key_id, hexbuf, API_KEY_ID_LEN);
    snprintf(k.name, sizeof k.name, "%s", name ? name : "");
    k.role = role;
    k.created_ms = now_ms();
    if ((rc = key_doc(&doc, &k, hash, err)) != SL_OK)
        goto out;
    rc = store_put(st, STORE_ITEMS, &doc, (store_cond){STORE_COND_NOT_EXISTS, 0}, NULL, err);
    if (rc != SL_OK)
        goto out;
    memcpy(key_out, key, sizeof key);
    if (info)
        *info = k;
out:
    gnutls_memset(key, 0, sizeof key);
    gnutls_memset(rnd, 0, sizeof rnd);
    gnutls_memset(hexbuf, 0, sizeof hexbuf);
    bson_destroy(&doc);
    return rc;
}

/* The key document of key_id (via gsi1) with its version. */
static sl_status key_fetch(store *st, const char *key_id, bson_t **out, sl_error *err)
{
    sl_status rc = SL_OK;
    schema_key gpk;
    store_page page;
    memset(&page, 0, sizeof page);
    store_query_opts q = {{STORE_RANGE_ALL, NULL, NULL}, 0, 2, NULL};
    if ((rc = schema_gsi1pk_key_id(gpk, key_id, err)) != SL_OK)
        goto out;
    if ((rc = store_query_index(st, STORE_ITEMS, STORE_GSI1, gpk, &q, &page, err)) != SL_OK)
        goto out;
    if (page.count == 0) {
        rc = sl_error_set_at(err, SL_ENOTFOUND, "key_id", -1, "no key with id %s", key_id);
        goto out;
    }
    bson_t view;
    if (!store_page_view(&page, 0, &view)) {
        rc = sl_error_set(err, SL_ECORRUPT, "key document %s is not BSON", key_id);
        goto out;
    }
    *out = bson_copy(&view);
out:
    store_page_free(&page);
    return rc;
}

sl_status api__key_lookup(store *st, const char *key_id, api_key_info *info, char hash[65],
                          sl_error *err)
{
    sl_status rc = SL_OK;
    bson_t *doc = NULL;
    if ((rc = key_fetch(st, key_id, &doc, err)) != SL_OK)
        goto out;
    rc = key_read(doc, info, hash, err);
out:
    if (doc)
        bson_destroy(doc);
    return rc;
}

/* The key document, within tenant when one is given (another tenant's key is
 * then not found, the same as a missing one). */
static sl_status key_doc_get(store *st, const char *tenant, const char *key_id, bson_t **out,
                             sl_error *err)
{
    sl_status rc = SL_OK;
    schema_key pk, sk;
    if (!tenant) {
        rc = key_fetch(st, key_id, out, err);
        goto out;
    }
    if ((rc = schema_pk_tenant(pk, tenant, err)) != SL_OK ||
        (rc = schema_sk_key(sk, key_id, err)) != SL_OK)
        goto out;
    rc = store_get(st, STORE_ITEMS, pk, sk, out, err);
    if (rc == SL_ENOTFOUND) {
        sl_error_clear(err);
        rc = sl_error_set_at(err, SL_ENOTFOUND, "key_id", -1, "no key with id %s", key_id);
    }
out:
    return rc;
}

sl_status api_key_get(store *st, const char *tenant, const char *key_id, api_key_info *out,
                      sl_error *err)
{
    sl_status rc = SL_OK;
    bson_t *doc = NULL;
    char hash[65];
    api_key_info k;
    if ((rc = key_doc_get(st, tenant, key_id, &doc, err)) != SL_OK ||
        (rc = key_read(doc, &k, hash, err)) != SL_OK)
        goto out;
    *out = k;
out:
    if (doc)
        bson_destroy(doc);
    return rc;
}

sl_status api_key_revoke(store *st, const char *tenant, const char *key_id, sl_error *err)
{
    sl_status rc = SL_OK;
    bson_t *doc = NULL;
    /* A concurrent writer may move the version between read and write: retry. */
    for (int attempt = 0; attempt < 5; attempt++) {
        api_key_info k;
        char hash[65];
        int64_t v = 0;
        bson_t next = BSON_INITIALIZER;
        if ((rc = key_doc_get(st, tenant, key_id, &doc, err)) != SL_OK ||
            (rc = key_read(doc, &k, hash, err)) != SL_OK)
            goto out;
        if (k.revoked_ms != 0 || !doc_i64(doc, SCHEMA_F_VERSION, &v))
            goto out; /* already revoked (or an adapter without v: nothing to fence on) */
        k.revoked_ms = now_ms();
        rc = key_doc(&next, &k, hash, err);
        if (rc == SL_OK)
            rc = store_put(st, STORE_ITEMS, &next, (store_cond){STORE_COND_VERSION, v}, NULL, err);
        bson_destroy(&next);
        bson_destroy(doc);
        doc = NULL;
        if (rc != SL_ECONDITION)
            goto out;
        sl_error_clear(err);
    }
    rc = sl_error_set(err, SL_ECONFLICT, "key %s kept changing while being revoked; try again",
                      key_id);
out:
    if (doc)
        bson_destroy(doc);
    return rc;
}

sl_status api_key_list(store *st, const char *tenant, const char *page_token, api_key_info *out,
                       size_t max, size_t *n, char next_token[STORE_TOKEN_MAX], sl_error *err)
{
    sl_status rc = SL_OK;
    schema_key pk;
    store_page page;
    size_t count = 0;
    memset(&page, 0, sizeof page);
    store_query_opts q = {{STORE_RANGE_BEGINS_WITH, SCHEMA_SK_KEY_PREFIX, NULL},
                          0,
                          max > STORE_PAGE_MAX ? STORE_PAGE_MAX : max,
                          page_token};
    if (max == 0) {
        rc = sl_error_set(err, SL_EINVAL, "api_key_list needs room for at least one key");
        goto out;
    }
    if ((rc = schema_pk_tenant(pk, tenant, err)) != SL_OK ||
        (rc = store_query(st, STORE_ITEMS, pk, &q, &page, err)) != SL_OK)
        goto out;
    for (size_t i = 0; i < page.count && count < max; i++) {
        bson_t view;
        char hash[65];
        if (!store_page_view(&page, i, &view)) {
            rc = sl_error_set(err, SL_ECORRUPT, "a key document of tenant %s is not BSON", tenant);
            goto out;
        }
        if ((rc = key_read(&view, &out[count], hash, err)) != SL_OK)
            goto out;
        count++;
    }
    snprintf(next_token, STORE_TOKEN_MAX, "%s", page.next_token ? page.next_token : "");
    *n = count;
out:
    store_page_free(&page);
    return rc;
}
