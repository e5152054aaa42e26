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

    char *cursor = strndup(text, size);
    if (cursor) {
        char out[API_CURSOR_MAX];
        sl_error_clear(&e);
        (void)api_cursor_decode(cursor, out, &e);
        free(cursor);
    }
    return 0;
}
