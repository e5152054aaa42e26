/* json.c -- the bounded streaming JSON reader every parser stands on: yajl
 * behind a pre-filter, with depth, key and duplicate checks and JSON paths.
 * Every string and key it hands on is valid UTF-8 by schema_utf8_feed()
 * (the project's one check): yajl's own lets overlong forms, surrogates and
 * code points past U+10FFFF by, and decodes a lone \ud800 escape as '?' and
 * a lone \udc00 as an encoded surrogate, so the pre-filter checks the raw
 * bytes of strings and pairs the surrogate escapes itself.  Here: positions
 * and paths, the yajl callbacks, the life cycle; the pre-filter and the
 * feeding of yajl are in json_filter.c, numbers in json_number.c. */
#include "ingest_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#define KEY_MAX 256u /* bytes of one object key */

/* ---------------------------------------------------------------------------
 * Positions and paths.
 * ------------------------------------------------------------------------- */

/* Input offset of position pos of out[]: bytes the filter inserted before it
 * do not count. */
int64_t ingest__json_map_pos(const ingest__json *j, size_t pos)
{
    size_t lo = 0, hi = j->nins;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (j->ins[mid] < pos)
            lo = mid + 1;
        else
            hi = mid;
    }
    return j->out_base + (int64_t)pos - (int64_t)lo;
}

/* Input offset just after the token yajl is at. */
int64_t ingest__json_token_end(const ingest__json *j)
{
    if (!j->in_parse)
        return (int64_t)j->fed;
    return ingest__json_map_pos(j, yajl_get_bytes_consumed(j->h));
}

/* For a string that ended just before out[end]: where its opening quote is,
 * when it lies in out[] (else -1). */
static int64_t string_start(const ingest__json *j, size_t end)
{
    if (!j->in_parse || end > j->nout)
        return -1;
    for (size_t i = end > 0 ? end - 1 : 0; i-- > 0;) {
        if (j->out[i] != '"')
            continue;
        size_t bs = 0;
        while (bs < i && j->out[i - 1 - bs] == '\\')
            bs++;
        if (bs == i && j->cs.esc)
            bs++; /* the backslash before out[0] is in the previous chunk */
        if (bs % 2 == 0)
            return ingest__json_map_pos(j, i);
    }
    /* No opening quote in this chunk: the string began in an earlier one. */
    return j->cs.in_str ? j->cs.str_start : -1;
}

/* Input offset where the current value starts. */
static int64_t cur_offset(const ingest__json *j)
{
    if (j->cur_kind == INGEST__JSON_CUR_FIXED || !j->in_parse)
        return j->cur_start;
    /* Still inside the value's callback: yajl is just past its token. */
    size_t pos = yajl_get_bytes_consumed(j->h);
    int64_t st = j->cur_kind == INGEST__JSON_CUR_STRING ? string_start(j, pos) : -1;
    if (st < 0)
        st = ingest__json_map_pos(j, pos) - (int64_t)j->cur_len -
             (j->cur_kind == INGEST__JSON_CUR_STRING ? 2 : 0);
    return st < 0 ? 0 : st;
}

void ingest__json_set_fixed(ingest__json *j, int64_t off)
{
    j->cur_kind = INGEST__JSON_CUR_FIXED;
    j->cur_start = off < 0 ? 0 : off;
}

static bool ident_key(const char *k, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || (unsigned char)c >= 0x80))
            return false;
    }
    return n > 0;
}

static void path_append(char *out, size_t n, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void path_append(char *out, size_t n, size_t *used, const char *fmt, ...)
{
    if (*used + 1 >= n)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(out + *used, n - *used, fmt, ap);
    va_end(ap);
    if (w > 0)
        *used = *used + (size_t)w < n ? *used + (size_t)w : n - 1;
}

/* Writes the path; returns the length of its "line N" prefix (0 when none). */
static size_t path_render(const ingest__json *j, char *out, size_t n)
{
    size_t used = 0;
    out[0] = '\0';
    if (j->multi && j->values > 0)
        path_append(out, n, &used, "line %llu", (unsigned long long)j->line);
    size_t mark = used;
    for (int d = 1; d <= j->depth; d++) {
        const ingest__json_level *l = &j->lv[d];
        if (!l->open_item)
            continue;
        const char *lead = used == 0 ? "" : used == mark ? ": " : "";
        if (l->is_map && ident_key(l->key, l->keylen)) {
            path_append(out, n, &used, "%s%s%.*s%s", lead, used == mark ? "" : ".", (int)l->keylen,
                        l->key, l->key_cut ? "..." : "");
        } else if (l->is_map) {
            char q[INGEST__JSON_KEY_SHOWN + 1];
            for (size_t i = 0; i < l->keylen; i++)
                q[i] = l->key[i] == '"' || (unsigned char)l->key[i] < 0x20 ? '?' : l->key[i];
            q[l->keylen] = '\0';
            path_append(out, n, &used, "%s[\"%s%s\"]", lead, q, l->key_cut ? "..." : "");
        } else {
            path_append(out, n, &used, "%s[%lld]", lead, (long long)l->index);
        }
    }
    return mark;
}

void ingest__json_path(const ingest__json *j, char *out, size_t n)
{
    (void)path_render(j, out, n);
}

bool ingest__json_vfail(ingest__json *j, const char *sub, int64_t offset, sl_status s,
                        const char *fmt, va_list ap)
{
    char path[sizeof j->err->field];
    size_t mark = path_render(j, path, sizeof path);
    if (sub) {
        size_t u = strlen(path);
        snprintf(path + u, sizeof path - u, "%s%s", u == 0 ? "" : u == mark ? ": " : ".", sub);
    }
    sl_error_vset_at(j->err, s, path, offset, fmt, ap);
    j->failed = true;
    return false;
}

bool ingest__json_fail(ingest__json *j, sl_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ingest__json_vfail(j, NULL, cur_offset(j), s, fmt, ap);
    va_end(ap);
    return false;
}

bool ingest__json_fail_at(ingest__json *j, const char *sub, sl_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ingest__json_vfail(j, sub, cur_offset(j), s, fmt, ap);
    va_end(ap);
    return false;
}

int ingest__json_depth(const ingest__json *j)
{
    return j->depth;
}

bool ingest__json_active(const ingest__json *j)
{
    return j->in_parse;
}

int64_t ingest__json_offset(const ingest__json *j)
{
    return cur_offset(j);
}

uint64_t ingest__json_bytes(const ingest__json *j)
{
    return j->fed;
}

uint64_t ingest__json_line(const ingest__json *j)
{
    return j->line;
}

int64_t ingest__json_index(const ingest__json *j, int d)
{
    return d >= 1 && d <= j->depth && !j->lv[d].is_map ? j->lv[d].index : -1;
}

const char *ingest__jev_name(ingest__jev ev)
{
    switch (ev) {
    case INGEST__J_NULL:
        return "null";
    case INGEST__J_BOOL:
        return "a boolean";
    case INGEST__J_NUMBER:
        return "a number";
    case INGEST__J_STRING:
        return "a string";
    case INGEST__J_MAP:
        return "an object";
    case INGEST__J_ARRAY:
        return "an array";
    default:
        return "the end of a container";
    }
}

/* ---------------------------------------------------------------------------
 * yajl callbacks.
 * ------------------------------------------------------------------------- */

/* A value starts at the current level: count it. */
static void element(ingest__json *j)
{
    if (j->depth == 0) {
        j->values++;
        if (j->multi) {
            size_t pos = j->in_parse ? yajl_get_bytes_consumed(j->h) : 0;
            size_t lo = 0, hi = j->nnl;
            while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (j->nl[mid] < pos)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            j->line = j->nl_base + lo + 1;
        }
    } else {
        ingest__json_level *l = &j->lv[j->depth];
        if (!l->is_map)
            l->index++;
        l->open_item = true;
    }
}

/* Remembers where the token of the current callback ends. */
static void note_token(ingest__json *j, char expect)
{
    j->last.chunk = j->chunk_no;
    j->last.end = j->in_parse ? yajl_get_bytes_consumed(j->h) : j->nout;
    j->last.expect = expect;
    j->culprit.found = j->culprit.sep_seen = false;
}

/* The value at the current level is complete: the path stops naming it. */
static void item_done(ingest__json *j)
{
    if (j->depth > 0)
        j->lv[j->depth].open_item = false;
}

static int scalar(ingest__json *j, ingest__jev ev, const ingest__jval *v, size_t tok_len)
{
    element(j);
    j->cur_kind = ev == INGEST__J_STRING ? INGEST__JSON_CUR_STRING : INGEST__JSON_CUR_TOKEN;
    j->cur_len = ev == INGEST__J_STRING ? v->len : tok_len;
    if (!j->fn(j->ctx, ev, v))
        return 0;
    item_done(j);
    note_token(j, j->depth > 0 ? ',' : 0);
    return 1;
}

static int cb_null(void *c)
{
    return scalar(c, INGEST__J_NULL, NULL, 4);
}

static int cb_bool(void *c, int b)
{
    ingest__jval v = {.b = b};
    return scalar(c, INGEST__J_BOOL, &v, b ? 4 : 5);
}

static int cb_number(void *c, const char *s, size_t len)
{
    ingest__json *j = c;
    if (len > INGEST__JSON_TOKEN_MAX) {
        /* Named as the filter names a run that crosses a chunk end: the
         * value has not started. */
        ingest__json_set_fixed(j, ingest__json_token_end(j) - (int64_t)len);
        return ingest__json_fail(j, SL_EINVAL, "number is %zu characters long; the limit is %u",
                                 len, INGEST__JSON_TOKEN_MAX);
    }
    ingest__jval v = {.s = s, .len = len};
    return scalar(j, INGEST__J_NUMBER, &v, len);
}

static int cb_string(void *c, const unsigned char *s, size_t len)
{
    ingest__jval v = {.s = (const char *)s, .len = len};
    return scalar(c, INGEST__J_STRING, &v, len);
}

static int open_container(ingest__json *j, bool is_map)
{
    element(j);
    ingest__json_set_fixed(j, ingest__json_token_end(j) - 1);
    if ((uint32_t)j->depth >= j->lim.max_depth)
        return ingest__json_fail(j, SL_EINVAL, "JSON nested deeper than %u levels",
                                 j->lim.max_depth);
    ingest__json_level *l = &j->lv[++j->depth];
    l->is_map = is_map;
    l->open_item = false;
    l->key_cut = false;
    l->keylen = 0;
    l->index = -1;
    l->start = j->cur_start;
    l->nkeys = 0;
    l->keys_at = j->keys_len;
    l->keymask = 0;
    if (!j->fn(j->ctx, is_map ? INGEST__J_MAP : INGEST__J_ARRAY, NULL))
        return 0;
    note_token(j, 0);
    return 1;
}

static int close_container(ingest__json *j, bool is_map)
{
    ingest__json_level *l = &j->lv[j->depth];
    ingest__json_set_fixed(j, l->start);
    l->open_item = false; /* the path names the container, not its last member */
    if (!j->fn(j->ctx, is_map ? INGEST__J_END_MAP : INGEST__J_END_ARRAY, NULL))
        return 0;
    j->keys_len = l->keys_at;
    j->depth--;
    item_done(j);
    note_token(j, j->depth > 0 ? ',' : 0);
    return 1;
}

static int cb_start_map(void *c)
{
    return open_container(c, true);
}

static int cb_end_map(void *c)
{
    return close_container(c, true);
}

static int cb_start_array(void *c)
{
    return open_container(c, false);
}

static int cb_end_array(void *c)
{
    return close_container(c, false);
}

static int cb_key(void *c, const unsigned char *s, size_t len)
{
    ingest__json *j = c;
    ingest__json_level *l = &j->lv[j->depth];
    j->cur_kind = INGEST__JSON_CUR_STRING;
    j->cur_len = len;
    l->open_item = true;
    l->keylen = (uint16_t)(len < INGEST__JSON_KEY_SHOWN ? len : INGEST__JSON_KEY_SHOWN);
    memcpy(l->key, s, l->keylen);
    l->key_cut = len > INGEST__JSON_KEY_SHOWN;
    if (len > KEY_MAX)
        return ingest__json_fail(j, SL_EINVAL, "object key is %zu bytes long; the limit is %u", len,
                                 KEY_MAX);
    if (memchr(s, 0, len))
        return ingest__json_fail(j, SL_EINVAL, "object key holds a NUL character (\\u0000)");
    if (++l->nkeys > j->lim.max_keys)
        return ingest__json_fail(j, SL_EINVAL, "object has more than %u keys", j->lim.max_keys);
    uint64_t bit = 1ull << ((len * 31u + (len ? s[0] * 7u + s[len - 1] : 0u)) & 63u);
    if (l->keymask & bit) {
        for (size_t at = l->keys_at; at < j->keys_len;) {
            uint16_t kl;
            memcpy(&kl, j->keys + at, sizeof kl);
            if (kl == len && memcmp(j->keys + at + sizeof kl, s, len) == 0)
                return ingest__json_fail(j, SL_EINVAL,
                                         "duplicate key \"%.*s\": a key may appear once per object",
                                         (int)l->keylen, l->key);
            at += sizeof kl + kl;
        }
    }
    l->keymask |= bit;
    if (j->keys_len + sizeof(uint16_t) + len > j->keys_cap) {
        size_t cap = j->keys_cap ? j->keys_cap * 2 : 4096;
        while (cap < j->keys_len + sizeof(uint16_t) + len)
            cap *= 2;
        char *k = realloc(j->keys, cap);
        if (!k)
            return ingest__json_fail(j, SL_ENOMEM, "out of memory keeping object keys");
        j->keys = k;
        j->keys_cap = cap;
    }
    uint16_t kl = (uint16_t)len;
    memcpy(j->keys + j->keys_len, &kl, sizeof kl);
    memcpy(j->keys + j->keys_len + sizeof kl, s, len);
    j->keys_len += sizeof kl + len;
    ingest__jval v = {.s = (const char *)s, .len = len};
    if (!j->fn(j->ctx, INGEST__J_KEY, &v))
        return 0;
    note_token(j, ':');
    return 1;
}

static const yajl_callbacks callbacks = {
    .yajl_null = cb_null,
    .yajl_boolean = cb_bool,
    .yajl_number = cb_number,
    .yajl_string = cb_string,
    .yajl_start_map = cb_start_map,
    .yajl_map_key = cb_key,
    .yajl_end_map = cb_end_map,
    .yajl_start_array = cb_start_array,
    .yajl_end_array = cb_end_array,
};

/* ---------------------------------------------------------------------------
 * Life cycle.
 * ------------------------------------------------------------------------- */
sl_status ingest__json_new(const ingest__json_options *o, ingest__json_fn fn, void *ctx,
                           ingest__json **out, sl_error *err)
{
    sl_status rc = SL_OK;
    ingest__json *j = calloc(1, sizeof *j);
    if (!j) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory creating a JSON reader");
        goto out;
    }
    j->fn = fn;
    j->ctx = ctx;
    j->lim = *o->limits;
    if (j->lim.max_depth == 0 || j->lim.max_depth > INGEST__JSON_DEPTH_CAP)
        j->lim.max_depth = INGEST__JSON_DEPTH_CAP;
    j->multi = o->multi;
    j->dk = o->darknet_escapes;
    j->c0.bad = -1;
    /* A byte of input becomes at most two; a chunk may also carry up to six
     * bytes held back from the previous one. */
    j->obuf = malloc(2 * INGEST__JSON_CHUNK + 16);
    j->ins = malloc(sizeof *j->ins * (INGEST__JSON_CHUNK + 16));
    j->nl = malloc(sizeof *j->nl * (INGEST__JSON_CHUNK + 16));
    j->h = yajl_alloc(&callbacks, NULL, j);
    if (!j->obuf || !j->ins || !j->nl || !j->h) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory creating a JSON reader");
        goto out;
    }
    if (j->multi)
        yajl_config(j->h, yajl_allow_multiple_values, 1);
out:
    if (rc != SL_OK)
        ingest__json_free(&j);
    else
        *out = j;
    return rc;
}

static bool check_event(void *ctx, ingest__jev ev, const ingest__jval *v)
{
    return true; /* the reader's own rules are the whole check */
}

sl_status ingest_json_check(const void *json, size_t len, uint32_t max_depth, sl_error *err)
{
    ingest_limits lim;
    ingest__json *j = NULL;
    ingest_limits_default(&lim);
    lim.max_depth = max_depth;
    lim.max_input_bytes = len;
    ingest__json_options o = {.limits = &lim};
    sl_status rc = ingest__json_new(&o, check_event, NULL, &j, err);
    if (rc == SL_OK)
        rc = ingest__json_feed(j, json, len, err);
    if (rc == SL_OK)
        rc = ingest__json_finish(j, false, err);
    ingest__json_free(&j);
    return rc;
}

void ingest__json_free(ingest__json **jp)
{
    if (!jp || !*jp)
        return;
    ingest__json *j = *jp;
    if (j->h)
        yajl_free(j->h);
    free(j->obuf);
    free(j->ins);
    free(j->nl);
    free(j->keys);
    free(j);
    *jp = NULL;
}
