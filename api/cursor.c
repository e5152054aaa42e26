/* cursor.c -- listing cursors: a store page token handed to clients as is
 * (checked URL-safe and bounded by STORE_PAGE_TOKEN_MAX both ways), and the
 * page query that blames a refused token on the client's `cursor`. */
#include "api_int.h"

#include <string.h>

/* base64url: what store.c writes page tokens with, and safe in a query
 * string without escaping. */
static const char url_safe[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The length of s when it fits a cursor and is all URL-safe, else
 * API_CURSOR_MAX. */
static size_t cursor_len(const char *s)
{
    size_t len = strnlen(s, API_CURSOR_MAX);
    return len < API_CURSOR_MAX && strspn(s, url_safe) == len ? len : API_CURSOR_MAX;
}

sl_status api_cursor_encode(const char *token, char out[API_CURSOR_MAX], sl_error *err)
{
    sl_status rc = SL_OK;
    size_t len = cursor_len(token);
    if (len == API_CURSOR_MAX) {
        rc = sl_error_set(err, SL_EINTERNAL,
                          "the store made a page token that cannot travel as a cursor: longer "
                          "than %d bytes or not base64url",
                          API_CURSOR_MAX - 1);
        goto out;
    }
    memcpy(out, token, len + 1);
out:
    return rc;
}

sl_status api_cursor_decode(const char *cursor, char out[API_CURSOR_MAX], sl_error *err)
{
    sl_status rc = SL_OK;
    size_t len = cursor_len(cursor);
    if (len == API_CURSOR_MAX) {
        rc = sl_error_set_at(err, SL_EINVAL, "cursor", -1,
                             "cursor is not one this service handed out (send the `next` of the "
                             "previous page as it is, or start again without a cursor)");
        goto out;
    }
    memcpy(out, cursor, len + 1);
out:
    return rc;
}

sl_status api_cursor_param(const api_request *req, char out[API_CURSOR_MAX], sl_error *err)
{
    sl_status rc = SL_OK;
    const char *c = api_query(req, "cursor");
    if (c && c[0])
        rc = api_cursor_decode(c, out, err);
    else
        out[0] = '\0';
    return rc;
}

sl_status api_json_cursor(yajl_gen g, const char *key, const char *token, sl_error *err)
{
    sl_status rc = SL_OK;
    char cursor[API_CURSOR_MAX];
    api_json_str(g, key);
    if (!token || !token[0]) {
        yajl_gen_null(g);
        goto out;
    }
    if ((rc = api_cursor_encode(token, cursor, err)) != SL_OK)
        goto out;
    api_json_str(g, cursor);
out:
    return rc;
}

sl_status api_cursor_blame(sl_status rc, const sl_error *e, sl_error *err)
{
    if (rc == SL_EINVAL && !strcmp(e->field, "page_token"))
        sl_error_set_at(err, rc, "cursor", -1, "cursor: %s", e->message);
    else if (rc != SL_OK)
        sl_error_set_at(err, rc, e->field[0] ? e->field : NULL, e->offset, "%s", e->message);
    return rc;
}

sl_status api_page_query(store *st, store_table t, store_index index, const char *key,
                         const store_query_opts *q, store_page *page, sl_error *err)
{
    sl_error e;
    sl_error_clear(&e);
    sl_status rc = index ? store_query_index(st, t, index, key, q, page, &e)
                         : store_query(st, t, key, q, page, &e);
    return api_cursor_blame(rc, &e, err);
}
