/* json.c -- JSON in and out with yajl.  Out: strings that may hold client
 * bytes are repaired (invalid UTF-8 by schema's strict check -> U+FFFD) so an
 * answer is always valid JSON; doubles and stored BSON values written one way for every route.  In:
 * ingest's reader as a validating pass (the rules of every input: no
 * duplicate members, strict UTF-8, bounded nesting), naming path and offset. */
#include "api_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

yajl_gen api_json_new(void)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    if (g)
        yajl_gen_config(g, yajl_gen_validate_utf8, 1);
    return g;
}

sl_status api_json_start(yajl_gen *g, sl_error *err)
{
    sl_status rc = SL_OK;
    yajl_gen made = api_json_new();
    if (!made)
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
    else
        *g = made;
    return rc;
}

/* Writes s[0..len) replacing each invalid UTF-8 byte by U+FFFD.  The copy is
 * at most 3x the input (one replacement per byte). */
static yajl_gen_status json_str_repaired(yajl_gen g, const char *s, size_t len)
{
    yajl_gen_status st = yajl_gen_status_ok;
    if (len > SIZE_MAX / 3) {
        st = yajl_gen_invalid_string;
        goto out;
    }
    char *fixed = malloc(len * 3 + 1);
    if (!fixed) {
        st = yajl_gen_invalid_string;
        goto out;
    }
    size_t in = 0, n = 0;
    while (in < len) {
        size_t ok = schema_utf8_valid_prefix(s + in, len - in);
        memcpy(fixed + n, s + in, ok);
        n += ok;
        in += ok;
        if (in < len) {
            memcpy(fixed + n, "\xef\xbf\xbd", 3);
            n += 3;
            in++;
        }
    }
    st = yajl_gen_string(g, (const unsigned char *)fixed, n);
    free(fixed);
out:
    return st;
}

/* The strict check first: yajl's own (yajl_gen_validate_utf8) lets overlong
 * forms, surrogates and code points past U+10FFFF through, which JSON
 * parsers of clients then refuse. */
yajl_gen_status api_json_strn(yajl_gen g, const char *s, size_t len)
{
    yajl_gen_status st = !s ? yajl_gen_null(g)
                         : schema_utf8_valid_prefix(s, len) < len
                             ? yajl_gen_invalid_string
                             : yajl_gen_string(g, (const unsigned char *)s, len);
    if (st == yajl_gen_invalid_string)
        st = json_str_repaired(g, s, len);
    return st;
}

yajl_gen_status api_json_str(yajl_gen g, const char *s)
{
    return api_json_strn(g, s, s ? strlen(s) : 0);
}

yajl_gen_status api_json_int(yajl_gen g, int64_t v)
{
    return yajl_gen_integer(g, (long long)v);
}

yajl_gen_status api_json_kv_str(yajl_gen g, const char *key, const char *value)
{
    yajl_gen_status st = api_json_str(g, key);
    return st == yajl_gen_status_ok ? api_json_str(g, value) : st;
}

yajl_gen_status api_json_kv_int(yajl_gen g, const char *key, int64_t value)
{
    yajl_gen_status st = api_json_str(g, key);
    return st == yajl_gen_status_ok ? api_json_int(g, value) : st;
}

/* At most three tries, so the cost does not depend on the value: 15
 * significant digits always print a double's shortest form when it has 15 or
 * fewer (and %g drops trailing zeros), 17 always read back exactly. */
yajl_gen_status api_json_double(yajl_gen g, double v)
{
    yajl_gen_status st = yajl_gen_status_ok;
    char s[40];
    if (!isfinite(v)) {
        st = yajl_gen_null(g);
        goto out;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(s, sizeof s, "%.*g", prec, v);
        if (prec == 17 || strtod(s, NULL) == v)
            break;
    }
    st = yajl_gen_number(g, s, strlen(s));
out:
    return st;
}

yajl_gen_status api_json_kv_double(yajl_gen g, const char *key, double value)
{
    yajl_gen_status st = api_json_str(g, key);
    return st == yajl_gen_status_ok ? api_json_double(g, value) : st;
}

/* Stored documents nest a few levels (ingest bounds input depth at 16);
 * deeper than this is written as null rather than recursed into. */
#define BSON_DEPTH_MAX 32

static void json_bson_at(yajl_gen g, const bson_iter_t *it, int depth)
{
    switch (bson_iter_type(it)) {
    case BSON_TYPE_UTF8: {
        uint32_t len = 0;
        const char *s = bson_iter_utf8(it, &len);
        api_json_strn(g, s, len);
        break;
    }
    case BSON_TYPE_INT32:
        api_json_int(g, bson_iter_int32(it));
        break;
    case BSON_TYPE_INT64:
        api_json_int(g, bson_iter_int64(it));
        break;
    case BSON_TYPE_DOUBLE:
        api_json_double(g, bson_iter_double(it));
        break;
    case BSON_TYPE_BOOL:
        yajl_gen_bool(g, bson_iter_bool(it));
        break;
    case BSON_TYPE_NULL:
        yajl_gen_null(g);
        break;
    case BSON_TYPE_ARRAY:
    case BSON_TYPE_DOCUMENT: {
        int array = bson_iter_type(it) == BSON_TYPE_ARRAY;
        bson_iter_t child;
        if (depth >= BSON_DEPTH_MAX) {
            yajl_gen_null(g);
            break;
        }
        if (array)
            yajl_gen_array_open(g);
        else
            yajl_gen_map_open(g);
        if (bson_iter_recurse(it, &child))
            while (bson_iter_next(&child)) {
                if (!array)
                    api_json_str(g, bson_iter_key(&child));
                json_bson_at(g, &child, depth + 1);
            }
        if (array)
            yajl_gen_array_close(g);
        else
            yajl_gen_map_close(g);
        break;
    }
    default:
        yajl_gen_null(g);
        break;
    }
}

void api_json_bson(yajl_gen g, const bson_iter_t *it)
{
    json_bson_at(g, it, 0);
}

const char *api_doc_str(const bson_t *doc, const char *name)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, name) && BSON_ITER_HOLDS_UTF8(&it)
               ? bson_iter_utf8(&it, NULL)
               : NULL;
}

int64_t api_doc_int64(const bson_t *doc, const char *name, int64_t def)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, name) && BSON_ITER_HOLDS_INT64(&it) ? bson_iter_int64(&it)
                                                                             : def;
}

yajl_gen_status api_json_kv_version(yajl_gen g, const bson_t *doc, int64_t version)
{
    return api_json_kv_int(g, "version",
                           version >= 0 ? version : api_doc_int64(doc, SCHEMA_F_VERSION, 0));
}

void api_json_bson_fields(yajl_gen g, const bson_t *doc, const char *const *hidden, size_t nhidden)
{
    bson_iter_t it;
    if (bson_iter_init(&it, doc))
        while (bson_iter_next(&it)) {
            const char *k = bson_iter_key(&it);
            int skip = 0;
            for (size_t i = 0; i < nhidden && !skip; i++)
                skip = !strcmp(k, hidden[i]);
            if (skip)
                continue;
            api_json_str(g, k);
            json_bson_at(g, &it, 0);
        }
}

/* ---- the validating pass ---- */

/* The ingest reader's check, so every JSON body of the API is held to the
 * rules of every input (duplicate members, strict UTF-8, surrogate escapes,
 * depth); yajl_tree_parse alone keeps the last of two "role" members. */
sl_status api__json_check(const char *text, size_t len, int max_depth, sl_error *err)
{
    sl_error e;
    sl_error_clear(&e);
    sl_status rc = ingest_json_check(text, len, max_depth > 0 ? (uint32_t)max_depth : 1, &e);
    if (rc != SL_OK)
        sl_error_set_at(err, rc, e.field[0] ? e.field : "body", e.offset, "body: %s", e.message);
    return rc;
}
