/* utf8.c -- validity of text that came from outside (paths, queries, names)
 * before it is placed in a key, a log line or a JSON answer.  The UTF-8 check
 * is libpcre2's: a UTF-mode match validates its subject first. */
#include "schema.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>

/* An empty anchored pattern: matching it costs nothing beyond the UTF check. */
static pcre2_code *empty_re;
static pthread_once_t empty_once = PTHREAD_ONCE_INIT;

static void compile_empty(void)
{
    int code;
    PCRE2_SIZE where;
    empty_re = pcre2_compile((PCRE2_SPTR) "", 0, PCRE2_UTF | PCRE2_ANCHORED, &code, &where, NULL);
}

size_t schema_utf8_valid_prefix(const char *s, size_t len)
{
    size_t valid = 0; /* when the pattern or the match data is missing, nothing passes */
    pcre2_match_data *md = NULL;
    pthread_once(&empty_once, compile_empty);
    if (len == 0 || !empty_re) {
        valid = empty_re ? len : 0;
        goto out;
    }
    md = pcre2_match_data_create(1, NULL);
    if (!md)
        goto out;
    int m = pcre2_match(empty_re, (PCRE2_SPTR)s, len, 0, 0, md, NULL);
    valid = (m <= PCRE2_ERROR_UTF8_ERR1 && m >= PCRE2_ERROR_UTF8_ERR21)
                ? (size_t)pcre2_get_startchar(md)
                : len;
out:
    pcre2_match_data_free(md);
    return valid;
}

sl_status schema_text_check(const char *what, const char *s, size_t len, sl_error *err)
{
    sl_status rc = SL_OK;
    for (size_t i = 0; i < len && rc == SL_OK; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            rc = sl_error_set_at(err, SL_EINVAL, what, (int64_t)i,
                                 "%s holds control byte 0x%02x at byte %zu", what, c, i);
    }
    size_t valid = rc == SL_OK ? schema_utf8_valid_prefix(s, len) : len;
    if (valid != len)
        rc = sl_error_set_at(err, SL_EINVAL, what, (int64_t)valid,
                             "%s is not valid UTF-8 at byte %zu", what, valid);
    return rc;
}
