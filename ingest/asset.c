/* asset.c -- brand asset documents: the PUT /v1/assets/{id} body (and one
 * line of asset NDJSON), validated and encoded as docs/documents.md says. */
#include "ingest_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Scores are stored twice (the double as received and exact micro-units);
 * saliency measures go in name order so equal content encodes to equal bytes. */

#define TEXT_MAX        256u
#define SALIENCY_MAX    32u    /* named measures of one asset */
#define PROGRESSION_MAX 86400u /* seconds of video: a day */

typedef struct measure {
    const char *name;
    double v;
    int64_t micro;
} measure;

static int by_name(const void *a, const void *b)
{
    return strcmp(((const measure *)a)->name, ((const measure *)b)->name);
}

/* Checks a score node and converts it, naming the node on error: the double
 * nearest to the text, and the micro-units rounded from the text itself
 * (docs/formats.md, "Scores"), so that a half-micro tie is decided on the
 * decimal the client wrote, not on the binary value nearest to it. */
static sl_status score(const ingest__tree *t, const ingest__jnode *n, double *v, int64_t *micro,
                       sl_error *err)
{
    sl_error e;
    sl_error_clear(&e);
    sl_status rc = ingest__tree_node_double(t, n, 0, 1, v, err);
    if (rc == SL_OK && (rc = schema_micro_from_decimal(n->s, n->len, micro, &e)) != SL_OK)
        rc = ingest__tree_fail(t, n, err, rc, "%s", e.message);
    return rc;
}

/* Writes the asset document; everything is checked. */
static sl_status encode(bson_t *doc, const char *tenant, const char *id, const char *pk,
                        const char *gpk, const char *gsk, const char *client, const char *brand,
                        const char *brand_id, const char *sector, const char *campaign,
                        const char *media, double mem, int64_t mem_micro, const measure *sal,
                        size_t nsal, const char *model, const ingest__jnode *progression,
                        sl_error *err)
{
    bson_t sub;
    bool ok =
        BSON_APPEND_UTF8(doc, SCHEMA_F_PK, pk) &&
        BSON_APPEND_UTF8(doc, SCHEMA_F_SK, SCHEMA_SK_META) &&
        BSON_APPEND_UTF8(doc, SCHEMA_F_GSI1PK, gpk) &&
        BSON_APPEND_UTF8(doc, SCHEMA_F_GSI1SK, gsk) &&
        BSON_APPEND_UTF8(doc, SCHEMA_F_TYPE, SCHEMA_TYPE_ASSET) &&
        BSON_APPEND_UTF8(doc, "tenant", tenant) && BSON_APPEND_UTF8(doc, "asset", id) &&
        BSON_APPEND_UTF8(doc, "client", client) && BSON_APPEND_UTF8(doc, "brand", brand) &&
        BSON_APPEND_UTF8(doc, "brand_id", brand_id) && BSON_APPEND_UTF8(doc, "sector", sector) &&
        BSON_APPEND_UTF8(doc, "campaign", campaign) && BSON_APPEND_UTF8(doc, "media_type", media) &&
        BSON_APPEND_DOUBLE(doc, "memorability", mem) &&
        BSON_APPEND_INT64(doc, "memorability_micro", mem_micro) &&
        BSON_APPEND_DOCUMENT_BEGIN(doc, "saliency", &sub);
    for (size_t i = 0; ok && i < nsal; i++)
        ok = bson_append_double(&sub, sal[i].name, -1, sal[i].v);
    ok = ok && bson_append_document_end(doc, &sub) &&
         BSON_APPEND_DOCUMENT_BEGIN(doc, "saliency_micro", &sub);
    for (size_t i = 0; ok && i < nsal; i++)
        ok = bson_append_int64(&sub, sal[i].name, -1, sal[i].micro);
    ok = ok && bson_append_document_end(doc, &sub) && BSON_APPEND_UTF8(doc, "model_version", model);
    if (ok && progression)
        ok = ingest__bson_numbers(doc, "progression", progression);
    return ok ? SL_OK : sl_error_set(err, SL_ETOOLARGE, "asset %s does not fit in a document", id);
}

sl_status ingest__asset_doc_node(const char *tenant, const char *asset, const ingest__tree *t,
                                 const ingest__jnode *root, bson_t *doc, const char **id_out,
                                 sl_error *err)
{
    sl_status rc = SL_OK;
    measure sal[SALIENCY_MAX];
    size_t nsal = 0;
    schema_key pk, gpk, gsk;
    const char *id = NULL, *client = NULL, *brand = NULL, *brand_id = "", *sector = NULL,
               *campaign = NULL, *media = NULL, *model = "";
    const ingest__jnode *saliency = NULL, *progression = NULL, *mn = NULL;
    double mem = 0;
    int64_t mem_micro = 0;
    bool video = false;
    if ((rc = ingest__body_object(t, root, "an asset", err)) ||
        (rc = ingest__tree_component(t, root, "asset", asset == NULL, &id, err)))
        goto out;
    if (asset && id && strcmp(id, asset) != 0) {
        rc = ingest__tree_fail(t, ingest__tree_get(root, "asset"), err, SL_EINVAL,
                               "asset \"%.128s\" in the body differs from \"%.128s\" in the path",
                               id, asset);
        goto out;
    }
    if (asset)
        id = asset;
    if ((rc = ingest__tree_component(t, root, "client", true, &client, err)) ||
        (rc = ingest__tree_component(t, root, "brand", true, &brand, err)) ||
        (rc = ingest__tree_component(t, root, "brand_id", false, &brand_id, err)) ||
        (rc = ingest__tree_component(t, root, "sector", true, &sector, err)) ||
        (rc = ingest__tree_component(t, root, "campaign", true, &campaign, err)) ||
        (rc = ingest__tree_string(t, root, "media_type", true, 16, &media, err)) ||
        (rc = ingest__tree_string(t, root, "model_version", false, TEXT_MAX, &model, err)) ||
        (rc = ingest__tree_typed(t, root, "saliency", true, INGEST__T_OBJECT, &saliency, err)) ||
        (rc =
             ingest__tree_typed(t, root, "progression", false, INGEST__T_ARRAY, &progression, err)))
        goto out;
    video = strcmp(media, "video") == 0;
    if (!video && strcmp(media, "image") != 0) {
        rc = ingest__tree_fail(t, ingest__tree_get(root, "media_type"), err, SL_EINVAL,
                               "media_type must be \"image\" or \"video\", not \"%.32s\"", media);
        goto out;
    }
    mn = ingest__tree_get(root, "memorability");
    if (!mn) {
        rc = ingest__tree_fail(t, root, err, SL_EINVAL,
                               "memorability is required (a score in [0, 1])");
        goto out;
    }
    if ((rc = score(t, mn, &mem, &mem_micro, err)))
        goto out;
    if (saliency->count > SALIENCY_MAX) {
        rc = ingest__tree_fail(t, saliency, err, SL_EINVAL,
                               "saliency has %u measures; the limit is %u", saliency->count,
                               SALIENCY_MAX);
        goto out;
    }
    for (const ingest__jnode *n = saliency->first; n; n = n->next) {
        sl_error e;
        sl_error_clear(&e);
        if (schema_component_check("saliency measure name", n->key, &e) != SL_OK) {
            rc = ingest__tree_fail(t, n, err, e.status, "%s", e.message);
            goto out;
        }
        sal[nsal].name = n->key;
        if ((rc = score(t, n, &sal[nsal].v, &sal[nsal].micro, err)))
            goto out;
        nsal++;
    }
    qsort(sal, nsal, sizeof *sal, by_name);
    if (progression && !video) {
        rc = ingest__tree_fail(t, progression, err, SL_EINVAL,
                               "progression is per second of a video; this asset is an image");
        goto out;
    }
    if (progression && progression->count > PROGRESSION_MAX) {
        rc = ingest__tree_fail(t, progression, err, SL_EINVAL,
                               "progression has %u values; the limit is %u", progression->count,
                               PROGRESSION_MAX);
        goto out;
    }
    for (const ingest__jnode *n = progression ? progression->first : NULL; n; n = n->next) {
        double v;
        int64_t m;
        if ((rc = score(t, n, &v, &m, err)))
            goto out;
    }
    if ((rc = schema_pk_asset(pk, tenant, id, err)) ||
        (rc = schema_pk_assets_index(gpk, tenant, err)) ||
        (rc = schema_sk_asset_by_brand(gsk, brand, campaign, id, err)))
        goto out;
    rc = encode(doc, tenant, id, pk, gpk, gsk, client, brand, brand_id, sector, campaign, media,
                mem, mem_micro, sal, nsal, model, progression, err);
    if (rc == SL_OK && id_out)
        *id_out = id;
out:
    return rc;
}

sl_status ingest_asset_doc(const char *tenant, const char *asset, const void *json, size_t len,
                           const ingest_limits *lim, bson_t **out, sl_error *err)
{
    ingest__tree *t = NULL;
    bson_t *doc = NULL;
    sl_status rc = SL_OK;
    if (asset && (rc = schema_component_check("asset id", asset, err)) != SL_OK)
        goto out;
    if ((rc = ingest__tree_parse(json, len, lim, &t, err)) != SL_OK)
        goto out;
    doc = bson_new();
    rc = ingest__asset_doc_node(tenant, asset, t, ingest__tree_root(t), doc, NULL, err);
out:
    return ingest__body_done(rc, &t, doc, out);
}

sl_status ingest_asset_put(store *s, const char *tenant, const char *asset, const void *json,
                           size_t len, store_put_result *res, sl_error *err)
{
    bson_t *doc = NULL;
    sl_status rc = ingest_asset_doc(tenant, asset, json, len, NULL, &doc, err);
    return rc == SL_OK ? ingest__body_put(s, doc, res, err) : rc;
}

sl_status ingest_asset_delete(store *s, const char *tenant, const char *asset, int *deleted,
                              sl_error *err)
{
    schema_key pk;
    sl_status rc = schema_pk_asset(pk, tenant, asset, err);
    if (rc == SL_OK)
        rc = store_delete(s, STORE_ITEMS, pk, SCHEMA_SK_META, (store_cond){STORE_COND_NONE, 0},
                          deleted, err);
    return rc;
}
