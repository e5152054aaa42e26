/* json_filter.c -- the JSON reader's pre-filter and the feeding of yajl: it
 * bounds strings and token runs, checks strings' UTF-8 and surrogate escapes,
 * repairs darknet's backslashes, and finds the culprit of a syntax error. */
#include "ingest_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_parse.h>

/* The pre-filter bounds strings and token runs (so yajl never buffers much),
 * repairs darknet's unescaped backslashes and maps offsets back to the input.
 * It only scans; yajl reads the caller's bytes unless a chunk needs a repair. */

#define RUN_MAX (64u * 1024u) /* bytes of a run outside strings that yajl may buffer */

/* ---------------------------------------------------------------------------
 * The pre-filter and the feeding of yajl.
 * ------------------------------------------------------------------------- */

/* Bytes held back by the darknet repair (not yet in out[]). */
static size_t held(const ingest__json *j)
{
    return j->f.fs == INGEST__JF_DK_ESC ? 1
           : j->f.fs == INGEST__JF_DK_U ? 2 + (size_t)j->f.nhex
                                        : 0;
}

static bool filter_fail(ingest__json *j, int64_t offset, sl_status s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool filter_fail(ingest__json *j, int64_t offset, sl_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ingest__json_vfail(j, NULL, offset, s, fmt, ap);
    va_end(ap);
    return false;
}

/* Notes a fault found by the filter and stops it there. */
static bool filter_stop(ingest__json *j, int64_t offset, sl_status s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool filter_stop(ingest__json *j, int64_t offset, sl_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->pend_msg, sizeof j->pend_msg, fmt, ap);
    va_end(ap);
    j->pend = s;
    j->pend_off = offset;
    return false;
}

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static uint32_t hex_value(unsigned char c)
{
    return c <= '9' ? (uint32_t)(c - '0') : (uint32_t)((c | 0x20) - 'a' + 10);
}

/* The code unit of four hex digits (checked before). */
static uint32_t hex4_value(const unsigned char *h)
{
    return hex_value(h[0]) << 12 | hex_value(h[1]) << 8 | hex_value(h[2]) << 4 | hex_value(h[3]);
}

/* A string's raw bytes broke UTF-8 at input offset at (the broken character
 * starts there; bad is the byte that broke it). */
static bool bad_utf8(ingest__json *j, int64_t at, unsigned char bad)
{
    return filter_stop(j, at, SL_EINVAL, "string is not valid UTF-8 at byte %lld: %s",
                       (long long)at, schema_utf8_why(&j->f.u8, bad));
}

/* A high surrogate escape was followed by something other than a low one:
 * yajl would store '?' (or a code point it made up) for it. */
static bool unpaired_high(ingest__json *j)
{
    return filter_stop(j, j->f.hi_off, SL_EINVAL,
                       "string holds a \\u%04x escape at byte %lld, a high surrogate that no low "
                       "surrogate escape (\\udc00..\\udfff) follows: it is no character",
                       (unsigned)j->f.cp, (long long)j->f.hi_off);
}

/* Pairs the code unit cp of the \u escape at input offset off with its
 * neighbours: a high surrogate must be followed at once by a low one, and a
 * low one must follow a high one.  false: the filter stops. */
static bool escape_unit(ingest__json *j, uint32_t cp, int64_t off)
{
    bool ok = true;
    bool high = cp >= 0xd800 && cp <= 0xdbff, low = cp >= 0xdc00 && cp <= 0xdfff;
    if (j->f.hi_pending && low)
        j->f.hi_pending = false;
    else if (j->f.hi_pending)
        ok = unpaired_high(j);
    else if (low)
        ok = filter_stop(j, off, SL_EINVAL,
                         "string holds a \\u%04x escape at byte %lld, a low surrogate with no high "
                         "surrogate escape before it: it is no character",
                         (unsigned)cp, (long long)off);
    else if (high) {
        j->f.hi_pending = true;
        j->f.hi_off = off;
    }
    if (ok && (high || low))
        j->f.cp = cp; /* the high one is named if its low half does not come */
    return ok;
}

/* Bytes that end a number or literal: whitespace (as yajl's lexer has it:
 * \v and \f too) and structure.  Anything else outside a string belongs to
 * a token (yajl judges whether it is one). */
static const unsigned char sep_byte[256] = {
    [' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\v'] = 1, ['\f'] = 1, ['\r'] = 1, ['['] = 1,
    [']'] = 1, ['{'] = 1,  ['}'] = 1,  [','] = 1,  [':'] = 1,  ['"'] = 1,
};

/* Writes the darknet-held bytes as a literal backslash (doubled) and what
 * followed it; the doubled byte is recorded as inserted. */
static void emit_repaired(ingest__json *j)
{
    j->obuf[j->nout++] = '\\';
    j->ins[j->nins++] = (uint32_t)j->nout;
    j->obuf[j->nout++] = '\\';
    if (j->f.fs == INGEST__JF_DK_U) {
        j->obuf[j->nout++] = 'u';
        memcpy(j->obuf + j->nout, j->f.hex, (size_t)j->f.nhex);
        j->nout += (size_t)j->f.nhex;
    }
    j->f.str_len += 1 + held(j);
    j->f.fs = INGEST__JF_IN;
}

typedef enum filter_result { FILTER_STOPPED, FILTER_DONE, FILTER_NEEDS_COPY } filter_result;

/* Runs in[0..n) through the filter.  Scanning (copy false) only follows
 * strings and tokens: yajl then reads in[] itself, and j->nout is how much
 * of it.  A darknet backslash that needs repairing makes the scan give up
 * (FILTER_NEEDS_COPY): the caller restores the state and runs it again with
 * copy true, which writes the repaired bytes into obuf.  Stopped: a bound was
 * broken at in[j->nout] (the fault is in j->pend). */
static filter_result filter(ingest__json *j, const unsigned char *in, size_t n, bool copy)
{
    int64_t in_base = (int64_t)j->fed; /* input offset of in[0] */
    size_t i = 0;
#define POS (copy ? j->nout : i) /* where in[i] lands in what yajl reads */
#define EMIT(b)                                                                                    \
    do {                                                                                           \
        if (copy)                                                                                  \
            j->obuf[j->nout++] = (b);                                                              \
    } while (0)
#define EMIT_SPAN(from, len)                                                                       \
    do {                                                                                           \
        if (copy) {                                                                                \
            memcpy(j->obuf + j->nout, (from), (len));                                              \
            j->nout += (len);                                                                      \
        }                                                                                          \
    } while (0)
    filter_result r = FILTER_DONE;
    while (i < n && r == FILTER_DONE) {
        unsigned char c = in[i];
        switch (j->f.fs) {
        case INGEST__JF_OUT: {
            /* Only strings matter here: find the next quote.  Numbers are
             * judged by yajl and bounded by cb_number(); a run of token
             * bytes crossing chunk ends (which yajl would buffer) only by
             * RUN_MAX, far above, so yajl's verdict comes first whatever
             * the chunking. */
            const unsigned char *q = memchr(in + i, '"', n - i);
            size_t k = q ? (size_t)(q - in) : n;
            if (j->multi)
                for (const unsigned char *nl = memchr(in + i, '\n', k - i); nl;
                     nl = memchr(nl + 1, '\n', (size_t)(in + k - nl - 1)))
                    j->nl[j->nnl++] = (uint32_t)(POS + (size_t)(nl - (in + i)));
            size_t tail = k;
            while (tail > i && !sep_byte[in[tail - 1]])
                tail--;
            j->f.run = tail == i ? j->f.run + (uint32_t)(k - i) : (uint32_t)(k - tail);
            EMIT_SPAN(in + i, k - i);
            if (j->f.run > RUN_MAX) {
                i = k;
                filter_stop(j, in_base + (int64_t)k - j->f.run, SL_EINVAL,
                            "a number or literal runs on for more than %u bytes", RUN_MAX);
                r = FILTER_STOPPED;
                break;
            }
            if (k < n) {
                EMIT('"');
                j->f.fs = INGEST__JF_IN;
                j->f.str_len = 0;
                j->f.str_start = in_base + (int64_t)k;
                j->f.u8 = (schema_utf8){0};
                j->f.hi_pending = false;
                j->f.run = 0;
                k++;
            }
            i = k;
            break;
        }
        case INGEST__JF_IN: {
            const unsigned char *q = memchr(in + i, '"', n - i);
            size_t k = q ? (size_t)(q - in) : n;
            const unsigned char *bs = memchr(in + i, '\\', k - i);
            if (bs)
                k = (size_t)(bs - in);
            if (k > i && j->f.hi_pending) { /* a character after a high surrogate */
                unpaired_high(j);
                r = FILTER_STOPPED;
                break;
            }
            size_t ok = schema_utf8_feed(&j->f.u8, (const char *)in + i, k - i);
            if (ok < k - i) {
                EMIT_SPAN(in + i, ok);
                i += ok;
                bad_utf8(j, in_base + (int64_t)i - j->f.u8.have, in[i]);
                r = FILTER_STOPPED;
                break;
            }
            EMIT_SPAN(in + i, k - i);
            j->f.str_len += k - i;
            i = k;
            if (j->f.str_len > j->lim.max_string) {
                filter_stop(j, j->f.str_start, SL_ETOOLARGE, "string longer than %u bytes",
                            j->lim.max_string);
                r = FILTER_STOPPED;
                break;
            }
            if (k == n)
                break;
            if (j->f.u8.need) { /* the quote or backslash cuts a character short */
                bad_utf8(j, in_base + (int64_t)k - j->f.u8.have, in[k]);
                r = FILTER_STOPPED;
                break;
            }
            if (in[k] == '"') {
                if (j->f.hi_pending) {
                    unpaired_high(j);
                    r = FILTER_STOPPED;
                    break;
                }
                EMIT('"');
                j->f.fs = INGEST__JF_OUT;
                i++;
                break;
            }
            j->f.esc_off = in_base + (int64_t)k;
            if (!j->dk) {
                EMIT('\\');
                j->f.str_len++;
                j->f.fs = INGEST__JF_ESC;
                i++;
            } else if (copy) {
                j->f.fs = INGEST__JF_DK_ESC; /* held until the next byte decides */
                i++;
            } else {
                /* Scanning: a JSON escape passes; anything else needs the copy. */
                unsigned char d = k + 1 < n ? in[k + 1] : 0;
                bool hex4 = k + 5 < n && is_hex(in[k + 2]) && is_hex(in[k + 3]) &&
                            is_hex(in[k + 4]) && is_hex(in[k + 5]);
                if ((d == '"' || d == '\\' || d == '/') && j->f.hi_pending) {
                    unpaired_high(j);
                    r = FILTER_STOPPED;
                } else if (d == '"' || d == '\\' || d == '/') {
                    j->f.str_len += 2;
                    i = k + 2;
                } else if (d == 'u' && hex4 &&
                           !escape_unit(j, hex4_value(in + k + 2), j->f.esc_off)) {
                    r = FILTER_STOPPED;
                } else if (d == 'u' && hex4) {
                    j->f.str_len += 6;
                    i = k + 6;
                } else {
                    r = FILTER_NEEDS_COPY;
                }
            }
            break;
        }
        case INGEST__JF_ESC:
            if (c == 'u') {
                j->f.fs = INGEST__JF_U;
                j->f.nhex = 0;
            } else if (j->f.hi_pending) { /* \n, \" ... after a high surrogate */
                unpaired_high(j);
                r = FILTER_STOPPED;
                break;
            } else {
                j->f.fs = INGEST__JF_IN;
            }
            EMIT(c);
            j->f.str_len++;
            i++;
            break;
        case INGEST__JF_U:
            if (!is_hex(c)) {
                j->f.fs = INGEST__JF_IN; /* not an escape: yajl refuses it; c is read again */
                break;
            }
            j->f.hex[j->f.nhex] = (char)c;
            if (j->f.nhex == 3 &&
                !escape_unit(j, hex4_value((const unsigned char *)j->f.hex), j->f.esc_off)) {
                r = FILTER_STOPPED;
                break;
            }
            EMIT(c);
            j->f.str_len++;
            i++;
            if (++j->f.nhex == 4)
                j->f.fs = INGEST__JF_IN;
            break;
        case INGEST__JF_DK_ESC: /* copy mode only */
            if (c != 'u' && j->f.hi_pending) {
                unpaired_high(j); /* an escape or a literal backslash after a high surrogate */
                r = FILTER_STOPPED;
            } else if (c == '"' || c == '\\' || c == '/') {
                /* A JSON escape a re-encoding writer would produce: keep it. */
                EMIT('\\');
                EMIT(c);
                j->f.str_len += 2;
                j->f.fs = INGEST__JF_IN;
                i++;
            } else if (c == 'u') {
                j->f.fs = INGEST__JF_DK_U;
                j->f.nhex = 0;
                i++;
            } else {
                /* darknet prints file names unescaped ("C:\new\img.jpg"):
                 * the backslash is a character; the byte after it is read
                 * again as an ordinary one. */
                emit_repaired(j);
            }
            break;
        case INGEST__JF_DK_U: /* copy mode only */
            if (is_hex(c)) {
                j->f.hex[j->f.nhex++] = (char)c;
                i++;
                if (j->f.nhex == 4 &&
                    !escape_unit(j, hex4_value((const unsigned char *)j->f.hex), j->f.esc_off)) {
                    r = FILTER_STOPPED;
                } else if (j->f.nhex == 4) {
                    EMIT('\\');
                    EMIT('u');
                    EMIT_SPAN(j->f.hex, 4);
                    j->f.str_len += 6;
                    j->f.fs = INGEST__JF_IN;
                }
            } else if (j->f.hi_pending) { /* "\u12" is no escape: a literal backslash */
                unpaired_high(j);
                r = FILTER_STOPPED;
            } else {
                emit_repaired(j);
            }
            break;
        }
    }
    if (!copy)
        j->nout = i;
#undef POS
#undef EMIT
#undef EMIT_SPAN
    return r;
}

/* Follows strings through out[from..to) from state st, noting in st->bad
 * the first byte a JSON string may not hold: a control byte, broken UTF-8
 * (at the character's first byte) or a bad escape (at its backslash).  Used
 * on the error path, and at a chunk end for the one string left open. */
static void str_scan_run(const ingest__json *j, struct str_scan *st, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        unsigned char c = j->out[i];
        if (!st->in_str) {
            if (c == '"')
                st->in_str = true;
            continue;
        }
        bool was_bad = st->bad >= 0;
        if (st->need > 0 && (c & 0xc0) == 0x80) {
            st->need--;
            continue;
        }
        if (st->need > 0 && !was_bad)
            st->bad = st->lead; /* a character cut short */
        st->need = 0;
        if (st->hex_left > 0) {
            if (!is_hex(c) && st->bad < 0)
                st->bad = st->lead;
            st->hex_left = is_hex(c) ? st->hex_left - 1 : 0;
            if (is_hex(c))
                continue;
        }
        if (st->esc) {
            st->esc = false;
            if (c == 'u') {
                st->hex_left = 4;
            } else if (!strchr("\"\\/bfnrt", c) || c == 0) {
                if (st->bad < 0)
                    st->bad = st->lead;
            }
            continue;
        }
        if (c == '\\') {
            st->esc = true;
            st->lead = ingest__json_map_pos(j, i);
        } else if (c == '"') {
            st->in_str = false;
        } else if (c < 0x20 || c == 0x7f) {
            if (c < 0x20 && st->bad < 0)
                st->bad = ingest__json_map_pos(j, i); /* JSON strings hold no raw control bytes */
        } else if (c >= 0x80) {
            st->lead = ingest__json_map_pos(j, i);
            st->need = (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xe ? 2 : (c >> 3) == 0x1e ? 3 : 0;
            if (st->need == 0 && st->bad < 0)
                st->bad = st->lead;
        }
    }
}

/* Looks in this chunk for the first token after the last accepted one
 * (skipping the separator expected there); notes it in j->culprit. */
static void find_culprit(ingest__json *j)
{
    if (j->culprit.found)
        return;
    size_t i = j->last.chunk == j->chunk_no ? j->last.end : 0;
    for (; i < j->nout; i++) {
        unsigned char c = j->out[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r')
            continue; /* yajl's whitespace */
        if (!j->culprit.sep_seen && j->last.expect && c == (unsigned char)j->last.expect) {
            j->culprit.sep_seen = true;
            continue;
        }
        j->culprit.found = true;
        j->culprit.is_string = c == '"';
        j->culprit.off = ingest__json_map_pos(j, i);
        return;
    }
}

/* Where input offset off lies in out[]; false when outside. */
static bool view_index(const ingest__json *j, int64_t off, size_t *idx)
{
    size_t lo = 0, hi = j->nout;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (ingest__json_map_pos(j, mid) < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    *idx = lo;
    return lo < j->nout && ingest__json_map_pos(j, lo) == off;
}

/* Turns yajl's complaint into a message naming the offset and the rule. */
static void yajl_failure(ingest__json *j)
{
    size_t pos = yajl_get_bytes_consumed(j->h);
    if (pos > j->nout)
        pos = j->nout;
    unsigned char *msg = yajl_get_error(j->h, 0, NULL, 0);
    char reason[160];
    const char *m = msg ? (const char *)msg : "malformed JSON";
    bool lexical = strncmp(m, "lexical error", 13) == 0;
    const char *colon = strstr(m, ": ");
    snprintf(reason, sizeof reason, "%s", colon ? colon + 2 : m);
    if (msg)
        yajl_free_error(j->h, msg);
    size_t rl = strlen(reason);
    while (rl > 0 && (reason[rl - 1] == '\n' || reason[rl - 1] == '.' || reason[rl - 1] == ' '))
        reason[--rl] = '\0';
    /* yajl's own position is not reliable (it may be at, inside or after
     * the culprit, and varies with chunking): the culprit is the first
     * token after the last one accepted.  Inside a string it is the byte
     * that breaks the rule (UTF-8, a control byte), or where yajl stopped. */
    find_culprit(j);
    int64_t at = j->culprit.found ? j->culprit.off : (int64_t)j->fed;
    size_t idx;
    if (lexical && j->culprit.found && j->culprit.is_string) {
        struct str_scan st = j->c0;
        str_scan_run(j, &st, 0, j->nout);
        if (st.bad >= at)
            at = st.bad;
    }
    const char *what = "";
    char found[48] = "";
    if (view_index(j, at, &idx)) {
        size_t left = j->nout - idx;
        const char *t = (const char *)j->out + idx;
        if (left > 0 && (*t == '-' || *t == '+')) {
            t++;
            left--;
        }
        if (left >= 3 && (!strncasecmp(t, "nan", 3) || !strncasecmp(t, "inf", 3)))
            what = " (NaN and Infinity are not JSON numbers)";
        unsigned char b = j->out[idx];
        if (what[0])
            ;
        else if (b >= 0x20 && b < 0x7f)
            snprintf(found, sizeof found, " (found '%c')", b);
        else
            snprintf(found, sizeof found, " (found byte 0x%02x)", b);
    }
    filter_fail(j, at, SL_EINVAL, "invalid JSON: %s%s%s", reason, what, found);
}

/* After a chunk: the culprit search and the one string left open go on in
 * the next chunk. */
static void chunk_end(ingest__json *j)
{
    find_culprit(j);
    if (j->f.fs == INGEST__JF_OUT) {
        j->c0 = (struct str_scan){.bad = -1};
    } else {
        size_t from = 0;
        struct str_scan st = j->c0;
        if (j->f.str_start >= j->out_base) { /* it began in this chunk */
            (void)view_index(j, j->f.str_start, &from);
            st = (struct str_scan){.bad = -1};
        }
        str_scan_run(j, &st, from, j->nout);
        j->c0 = st;
    }
    j->chunk_no++;
}

static bool parse_out(ingest__json *j)
{
    if (j->nout == 0)
        return true;
    j->in_parse = true;
    yajl_status st = yajl_parse(j->h, j->out, j->nout);
    if (st == yajl_status_error)
        yajl_failure(j);
    else if (st == yajl_status_client_canceled && !j->failed)
        filter_fail(j, ingest__json_token_end(j), SL_EINTERNAL,
                    "JSON reader stopped without a reason");
    ingest__json_set_fixed(j, ingest__json_offset(j)); /* out[] is about to be reused */
    j->in_parse = false;
    return st == yajl_status_ok;
}

sl_status ingest__json_feed(ingest__json *j, const void *data, size_t len, sl_error *err)
{
    j->err = err;
    const unsigned char *p = data;
    while (len > 0 && !j->failed) {
        size_t n = len < INGEST__JSON_CHUNK ? len : INGEST__JSON_CHUNK;
        if (j->fed + n > j->lim.max_input_bytes) {
            filter_fail(j, (int64_t)j->lim.max_input_bytes, SL_ETOOLARGE,
                        "input is larger than %llu bytes",
                        (unsigned long long)j->lim.max_input_bytes);
            break;
        }
        j->out_base = (int64_t)j->fed - (int64_t)held(j);
        j->nout = j->nins = j->nnl = 0;
        j->cs = (struct chunk_state){.in_str = j->f.fs != INGEST__JF_OUT,
                                     .esc = j->f.fs == INGEST__JF_ESC,
                                     .str_start = j->f.str_start};
        struct filter_state saved = j->f;
        filter_result r = held(j) == 0 ? filter(j, p, n, false) : FILTER_NEEDS_COPY;
        j->out = p;
        if (r == FILTER_NEEDS_COPY) { /* rare: a darknet path with backslashes */
            j->f = saved;
            j->nout = j->nins = j->nnl = 0;
            r = filter(j, p, n, true);
            j->out = j->obuf;
        }
        bool whole = r == FILTER_DONE;
        if (!parse_out(j))
            break;
        if (!whole) {
            filter_fail(j, j->pend_off, j->pend, "%s", j->pend_msg);
            break;
        }
        chunk_end(j);
        j->fed += n;
        j->nl_base += j->nnl;
        p += n;
        len -= n;
    }
    j->nout = j->nins = j->nnl = 0;
    return j->failed ? (err && err->status ? err->status : SL_EINVAL) : SL_OK;
}

sl_status ingest__json_finish(ingest__json *j, bool allow_open_top, sl_error *err)
{
    j->err = err;
    if (j->failed)
        goto out;
    j->out_base = (int64_t)j->fed - (int64_t)held(j);
    j->nout = j->nins = j->nnl = 0;
    j->cs = (struct chunk_state){.in_str = j->f.fs != INGEST__JF_OUT,
                                 .esc = j->f.fs == INGEST__JF_ESC,
                                 .str_start = j->f.str_start};
    j->out = j->obuf;
    if (j->f.fs == INGEST__JF_DK_ESC || j->f.fs == INGEST__JF_DK_U)
        emit_repaired(j); /* a string cannot end there: yajl will say so */
    if (!parse_out(j))
        goto out;
    ingest__json_set_fixed(j, (int64_t)j->fed);
    if (j->values == 0) {
        filter_fail(j, (int64_t)j->fed, SL_EINVAL, "input is empty: no JSON value");
        goto out;
    }
    if (allow_open_top && j->depth == 1 && !j->lv[1].is_map && j->f.fs == INGEST__JF_OUT &&
        j->f.run == 0)
        goto out; /* a stream that stopped between two elements */
    if (j->f.fs != INGEST__JF_OUT || j->depth > 0) {
        filter_fail(j, (int64_t)j->fed, SL_EINVAL,
                    "input ends at byte %llu %s, before the JSON is complete: the input was cut "
                    "off (an interrupted run?); send it again once it is complete",
                    (unsigned long long)j->fed,
                    j->f.fs != INGEST__JF_OUT ? "inside a string"
                                              : "inside an unclosed array or object");
        goto out;
    }
    j->in_parse = true;
    yajl_status st = yajl_complete_parse(j->h);
    if (st == yajl_status_error)
        yajl_failure(j);
    else if (st == yajl_status_client_canceled && !j->failed)
        filter_fail(j, (int64_t)j->fed, SL_EINTERNAL, "JSON reader stopped without a reason");
    j->in_parse = false;
out:
    return j->failed ? (err && err->status ? err->status : SL_EINVAL) : SL_OK;
}
