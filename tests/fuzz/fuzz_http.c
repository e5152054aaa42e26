/* fuzz_http.c -- libFuzzer target: the HTTP server's own parsers (request
 * path, query string, JSON body check, cursor), which see every byte a
 * client sends before any handler does. */
#include "api/api_int.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A path segment that passed the parser never holds what it must refuse.
 * ('/' from %2F may remain: parameters meet schema_component_check next.) */
static void check_segment(const char *s)
{
    if (!strcmp(s, ".") || !strcmp(s, ".."))
        __builtin_trap();
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    sl_error e;

    /* The path parser is given what MHD would: a path starting with '/'. */
    char *path = malloc(size + 2);
    if (!path)
        return 0;
    path[0] = '/';
    memcpy(path + 1, text, size);
    path[size + 1] = '\0';
    api__path p;
    sl_error_clear(&e);
    if (api__path_parse(path, size + 1, &p, &e) == SL_OK) {
        for (size_t i = 0; i < p.nseg; i++)
            check_segment(p.seg[i]);
        free(p.buf);
    } else if (!e.message[0]) {
        __builtin_trap();
    }
    free(path);

    api__query q;
    sl_error_clear(&e);
    if (api__query_parse(text, size, &q, &e) == SL_OK) {
        if (q.n > API__QUERY_MAX)
            __builtin_trap();
        free(q.buf);
    } else if (!e.message[0]) {
        __builtin_trap();
    }

    sl_error_clear(&e);
    if (api__json_check(text, size, 64, &e) != SL_OK && !e.message[0])
        __builtin_trap();

    /* A cursor opens only when it is exactly what sealing its position
     * makes (one spelling, the seal matches), and never with another
     * binding. */
    static const unsigned char secret[32] = {9};
    static const char *const binding[] = {"acme", "GET /v1/catalog"};
    static const char *const other[] = {"acme", "GET /v1/keys"};
    api__cursor_key k;
    api__cursor_key_derive(secret, &k);
    char *cursor = strndup(text, size);
    if (cursor) {
        unsigned char pos[API__CURSOR_POS_MAX];
        char again[API_CURSOR_MAX];
        size_t len = 0;
        sl_error_clear(&e);
        if (api__cursor_open(&k, binding, 2, cursor, pos, &len, &e) == SL_OK) {
            if (api__cursor_seal(&k, binding, 2, pos, len, again, &e) != SL_OK ||
                strcmp(again, cursor) != 0 ||
                api__cursor_open(&k, other, 2, cursor, pos, &len, &e) == SL_OK)
                __builtin_trap();
        } else if (e.status != SL_EINVAL || strcmp(e.field, "cursor") != 0) {
            __builtin_trap();
        }
        free(cursor);
    }
    /* Any bytes seal into a cursor that opens to them. */
    if (size <= API__CURSOR_POS_MAX) {
        char c[API_CURSOR_MAX];
        unsigned char pos[API__CURSOR_POS_MAX];
        size_t len = 0;
        sl_error_clear(&e);
        if (api__cursor_seal(&k, binding, 2, data, size, c, &e) != SL_OK ||
            api__cursor_open(&k, binding, 2, c, pos, &len, &e) != SL_OK || len != size ||
            (size && memcmp(pos, data, size) != 0))
            __builtin_trap();
    }
    return 0;
}
