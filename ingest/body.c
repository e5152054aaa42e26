/* body.c -- what the codecs of PUT bodies share (asset.c, catalog.c,
 * surgery.c): the object check of the parsed body, arrays of numbers into
 * BSON, the hand-over of the built document, and its unconditional put. */
#include "ingest_int.h"

sl_status ingest__body_object(const ingest__tree *t, const ingest__jnode *n, const char *what,
                              sl_error *err)
{
    return n->type == INGEST__T_OBJECT
               ? SL_OK
               : ingest__tree_fail(t, n, err, SL_EINVAL, "%s is a JSON object, not %s", what,
                                   ingest__jtype_name(n->type));
}

bool ingest__bson_numbers(bson_t *parent, const char *key, const ingest__jnode *arr)
{
    bson_t sub;
    char idx[16];
    const char *k;
    uint32_t i = 0;
    bool ok = bson_append_array_begin(parent, key, -1, &sub);
    for (const ingest__jnode *n = arr->first; ok && n; n = n->next, i++) {
        double v = 0;
        (void)ingest__number(n->s, n->len, &v); /* checked by the caller */
        bson_uint32_to_string(i, &k, idx, sizeof idx);
        ok = bson_append_double(&sub, k, -1, v);
    }
    return ok && bson_append_array_end(parent, &sub);
}

sl_status ingest__body_done(sl_status rc, ingest__tree **t, bson_t *doc, bson_t **out)
{
    ingest__tree_free(t);
    if (rc == SL_OK)
        *out = doc;
    else if (doc)
        bson_destroy(doc);
    return rc;
}

sl_status ingest__body_put(store *s, bson_t *doc, store_put_result *res, sl_error *err)
{
    sl_status rc = store_put(s, STORE_ITEMS, doc, (store_cond){STORE_COND_NONE, 0}, res, err);
    bson_destroy(doc);
    return rc;
}
