/* utf8.c -- the one UTF-8 check of the project: every text that comes from
 * outside (paths, queries, names, JSON strings of every input and request
 * body) is held to it before it is placed in a key, a document, a log line or
 * a JSON answer.  Strict RFC 3629 (Unicode Table 3-7): no overlong forms, no
 * UTF-16 surrogates (U+D800..U+DFFF), nothing above U+10FFFF.  yajl's own
 * check is laxer (it lets all three by), so JSON readers call this one.  It
 * is incremental, for streaming readers whose strings cross chunk ends. */
#include "schema.h"

#include <string.h>

/* The range of the first continuation byte after lead byte b (later ones
 * are always 0x80..0xbf); how many continuation bytes b announces in *need
 * (0: b is not a lead byte of a multi-byte character). */
static void lead_range(unsigned char b, uint8_t *need, uint8_t *lo, uint8_t *hi)
{
    *lo = 0x80;
    *hi = 0xbf;
    *need = 0;
    if (b >= 0xc2 && b <= 0xdf) {
        *need = 1;
    } else if (b >= 0xe0 && b <= 0xef) {
        *need = 2;
        if (b == 0xe0)
            *lo = 0xa0; /* below: an overlong form of U+0000..U+07FF */
        else if (b == 0xed)
            *hi = 0x9f; /* above: a surrogate, U+D800..U+DFFF */
    } else if (b >= 0xf0 && b <= 0xf4) {
        *need = 3;
        if (b == 0xf0)
            *lo = 0x90; /* below: an overlong form of U+0000..U+FFFF */
        else if (b == 0xf4)
            *hi = 0x8f; /* above: past U+10FFFF */
    }
}

size_t schema_utf8_feed(schema_utf8 *st, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        if (st->need == 0) {
            /* ASCII runs eight bytes at a time: most text is ASCII. */
            while (i + 8 <= len) {
                uint64_t w;
                memcpy(&w, p + i, sizeof w);
                if (w & 0x8080808080808080ull)
                    break;
                i += 8;
            }
            while (i < len && p[i] < 0x80)
                i++;
            if (i == len)
                break;
            uint8_t need, lo, hi;
            lead_range(p[i], &need, &lo, &hi);
            st->lead = p[i];
            if (need == 0) {
                st->have = 0;
                goto out; /* a byte no character starts with */
            }
            st->need = need;
            st->have = 1;
            st->lo = lo;
            st->hi = hi;
            i++;
            continue;
        }
        if (p[i] < st->lo || p[i] > st->hi)
            goto out; /* the character is broken at p[i] */
        st->need--;
        st->have = st->need ? (uint8_t)(st->have + 1) : 0;
        st->lo = 0x80;
        st->hi = 0xbf;
        i++;
    }
out:
    return i;
}

const char *schema_utf8_why(const schema_utf8 *st, int bad)
{
    const char *why = "a character cut short at the end of the text";
    if (bad < 0)
        goto out;
    unsigned char b = (unsigned char)bad;
    if (st->have == 0) { /* b should have started a character */
        why = b >= 0x80 && b <= 0xbf   ? "a continuation byte without a lead byte"
              : b == 0xc0 || b == 0xc1 ? "an overlong form"
              : b >= 0xf5 && b <= 0xf7 ? "a code point above U+10FFFF"
                                       : "a byte that UTF-8 never uses";
    } else if (b < 0x80 || b > 0xbf) {
        why = "a character cut short (a continuation byte is missing)";
    } else { /* a continuation byte out of the first one's range */
        why = st->lead == 0xed   ? "a UTF-16 surrogate (U+D800..U+DFFF)"
              : st->lead == 0xf4 ? "a code point above U+10FFFF"
                                 : "an overlong form";
    }
out:
    return why;
}

size_t schema_utf8_valid_prefix(const char *s, size_t len)
{
    schema_utf8 st = {0};
    size_t at = schema_utf8_feed(&st, s, len);
    /* Broken or cut short: the valid prefix ends where that character starts. */
    return at < len || st.need ? at - st.have : len;
}

sl_status schema_utf8_check(const char *what, const char *s, size_t len, sl_error *err)
{
    sl_status rc = SL_OK;
    schema_utf8 st = {0};
    size_t at = schema_utf8_feed(&st, s, len);
    if (at < len || st.need) {
        size_t start = at - st.have;
        rc = sl_error_set_at(err, SL_EINVAL, what, (int64_t)start,
                             "%s is not valid UTF-8 at byte %zu: %s", what, start,
                             schema_utf8_why(&st, at < len ? (unsigned char)s[at] : -1));
    }
    return rc;
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
    return rc == SL_OK ? schema_utf8_check(what, s, len, err) : rc;
}
