/* json.c -- JSON in and out with yajl.  Out: strings that may hold client
 * bytes are repaired (invalid UTF-8 -> U+FFFD) so an answer is always valid
 * JSON.  In: a validating pass that bounds nesting and reports the offset. */
#include "api_int.h"

#include <gnutls/gnutls.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

yajl_gen api_json_new(void)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    if (g)
        yajl_gen_config(g, yajl_gen_validate_utf8, 1);
    return g;
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

yajl_gen_status api_json_strn(yajl_gen g, const char *s, size_t len)
{
    yajl_gen_status st = s ? yajl_gen_string(g, (const unsigned char *)s, len) : yajl_gen_null(g);
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

/* ---- the validating pass ---- */

typedef struct depth_state {
    int depth, max;
} depth_state;

static int on_open(void *ctx)
{
    depth_state *d = ctx;
    return ++d->depth <= d->max; /* 0 cancels the parse */
}

static int on_close(void *ctx)
{
    ((depth_state *)ctx)->depth--;
    return 1;
}

static int on_start_map(void *ctx)
{
    return on_open(ctx);
}

static int on_map_key(void *ctx, const unsigned char *k, size_t n)
{
    return 1;
}

static const yajl_callbacks depth_callbacks = {
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_map_key,
    .yajl_end_map = on_close,
    .yajl_start_array = on_open,
    .yajl_end_array = on_close,
};

sl_status api__json_check(const char *text, size_t len, int max_depth, sl_error *err)
{
    sl_status rc = SL_OK;
    depth_state d = {0, max_depth};
    yajl_handle h = yajl_alloc(&depth_callbacks, NULL, &d);
    if (!h) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory parsing the JSON body");
        goto out;
    }
    yajl_status st = yajl_parse(h, (const unsigned char *)text, len);
    size_t at = yajl_get_bytes_consumed(h);
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
        at = len;
    }
    if (st == yajl_status_client_canceled) {
        rc = sl_error_set_at(err, SL_EINVAL, "body", (int64_t)at,
                             "JSON body nests deeper than %d levels at byte %zu", max_depth, at);
    } else if (st != yajl_status_ok) {
        unsigned char *msg = yajl_get_error(h, 0, NULL, 0);
        /* yajl's message ends with a newline; trim it. */
        size_t mlen = msg ? strcspn((const char *)msg, "\n") : 0;
        rc = sl_error_set_at(err, SL_EINVAL, "body", (int64_t)at,
                             "body is not valid JSON at byte %zu: %.*s", at, (int)mlen,
                             msg ? (const char *)msg : "parse error");
        if (msg)
            yajl_free_error(h, msg);
    }
out:
    if (h)
        yajl_free(h);
    return rc;
}

/* ---- cursors ---- */

void api_cursor_encode(const char *token, char out[2 * STORE_TOKEN_MAX])
{
    gnutls_datum_t in = {(unsigned char *)token, (unsigned)strnlen(token, STORE_TOKEN_MAX - 1)};
    size_t size = 2 * STORE_TOKEN_MAX;
    if (gnutls_hex_encode(&in, out, &size) < 0)
        out[0] = '\0';
}

sl_status api_cursor_decode(const char *cursor, char out[STORE_TOKEN_MAX], sl_error *err)
{
    sl_status rc = SL_OK;
    size_t clen = strlen(cursor);
    if (clen % 2 || clen >= 2 * STORE_TOKEN_MAX) {
        rc = sl_error_set_at(err, SL_EINVAL, "cursor", -1,
                             "cursor is not one this service handed out");
        goto out;
    }
    char tmp[STORE_TOKEN_MAX];
    size_t size = sizeof tmp;
    gnutls_datum_t in = {(unsigned char *)cursor, (unsigned)clen};
    if (gnutls_hex_decode(&in, tmp, &size) < 0 || size >= STORE_TOKEN_MAX ||
        memchr(tmp, '\0', size)) {
        rc = sl_error_set_at(err, SL_EINVAL, "cursor", -1,
                             "cursor is not one this service handed out");
        goto out;
    }
    memcpy(out, tmp, size);
    out[size] = '\0';
out:
    return rc;
}
