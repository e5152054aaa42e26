/* component.c -- validation of key components (identifiers and names) with
 * libpcre2.  The patterns are compiled and JIT-compiled once per process; they
 * are immutable afterwards, so matching is thread-safe.  UTF-8 validity is
 * schema_utf8_check()'s (utf8.c), checked first; pcre2 then skips its own. */
#include "schema.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* The whole rule.  \z, not $: $ would accept a trailing newline. */
static const char accept_pattern[] = "^[\\p{L}\\p{N}][\\p{L}\\p{N}\\p{M}._:'&+ -]*(?<! )\\z";
/* One character that no component may hold: used to point at the culprit. */
static const char reject_pattern[] = "[^\\p{L}\\p{N}\\p{M}._:'&+ -]";

static pcre2_code *accept_re, *reject_re;
static pthread_once_t compile_once = PTHREAD_ONCE_INIT;

static pcre2_code *compile(const char *pattern)
{
    int code;
    PCRE2_SIZE where;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP, &code, &where, NULL);
    if (re)
        (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
    return re;
}

static void compile_patterns(void)
{
    accept_re = compile(accept_pattern);
    reject_re = compile(reject_pattern);
}

/* Copies at most 64 bytes of a valid-UTF-8 value for a message, control
 * bytes replaced by '?', never cutting a multi-byte character. */
static void quote_value(const char *v, size_t len, char out[72])
{
    size_t n = len > 64 ? 64 : len;
    while (n < len && n > 0 && ((unsigned char)v[n] & 0xc0) == 0x80)
        n--; /* back off to a character boundary */
    for (size_t i = 0; i < n; i++)
        out[i] = ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) ? '?' : v[i];
    out[n] = '\0';
}

/* Describes the byte c for a message: "'#'" or "control byte 0x0a". */
static void describe_byte(unsigned char c, char *out, size_t n)
{
    if (c < 0x20 || c == 0x7f)
        snprintf(out, n, "control byte 0x%02x", c);
    else
        snprintf(out, n, "'%c'", c);
}

sl_status schema_component_check_n(const char *what, const char *value, size_t len, sl_error *err)
{
    pthread_once(&compile_once, compile_patterns);
    if (!accept_re || !reject_re)
        return sl_error_set(err, SL_EINTERNAL, "identifier patterns failed to compile");
    if (!value || len == 0)
        return sl_error_set_at(err, SL_EINVAL, what, -1, "%s is empty", what);
    if (len > SCHEMA_COMPONENT_MAX)
        return sl_error_set_at(err, SL_EINVAL, what, -1,
                               "%s is %zu bytes long; the limit is %d bytes", what, len,
                               SCHEMA_COMPONENT_MAX);

    if (schema_utf8_check(what, value, len, err) != SL_OK)
        return SL_EINVAL;
    sl_status rc = SL_OK;
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    if (!md)
        return sl_error_set(err, SL_ENOMEM, "out of memory checking %s", what);
    int m = pcre2_match(accept_re, (PCRE2_SPTR)value, len, 0, PCRE2_NO_UTF_CHECK, md, NULL);
    if (m >= 0)
        goto out;
    if (m != PCRE2_ERROR_NOMATCH) {
        rc = sl_error_set(err, SL_EINTERNAL, "matching %s failed (pcre2 error %d)", what, m);
        goto out;
    }
    /* Explain the refusal: the first disallowed character, else the edges. */
    char shown[72];
    quote_value(value, len, shown);
    if (pcre2_match(reject_re, (PCRE2_SPTR)value, len, 0, PCRE2_NO_UTF_CHECK, md, NULL) >= 0) {
        size_t at = pcre2_get_ovector_pointer(md)[0];
        char desc[32];
        describe_byte((unsigned char)value[at], desc, sizeof desc);
        rc = sl_error_set_at(err, SL_EINVAL, what, (int64_t)at,
                             "%s \"%s\" holds %s at byte %zu; allowed are letters, digits, "
                             "and . _ : - ' & + space",
                             what, shown, desc, at);
    } else if (value[len - 1] == ' ') {
        rc = sl_error_set_at(err, SL_EINVAL, what, (int64_t)(len - 1),
                             "%s \"%s\" ends with a space", what, shown);
    } else {
        rc = sl_error_set_at(err, SL_EINVAL, what, 0, "%s \"%s\" must start with a letter or digit",
                             what, shown);
    }
out:
    pcre2_match_data_free(md);
    return rc;
}

sl_status schema_component_check(const char *what, const char *value, sl_error *err)
{
    return schema_component_check_n(what, value, value ? strlen(value) : 0, err);
}
