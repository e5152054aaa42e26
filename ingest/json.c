/* json.c -- the bounded streaming JSON reader every parser stands on: yajl
 * behind a pre-filter, with depth, key and duplicate checks and JSON paths.
 * Every string and key it hands on is valid UTF-8 by schema_utf8_feed()
 * (the project's one check): yajl's own lets overlong forms, surrogates and
 * code points past U+10FFFF by, and decodes a lone \ud800 escape as '?' and
 * a lone \udc00 as an encoded surrogate, so the pre-filter checks the raw
 * bytes of strings and pairs the surrogate escapes itself. */
#include "ingest_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_parse.h>

/* The pre-filter bounds strings and token runs (so yajl never buffers much),
 * repairs darknet's unescaped backslashes and maps offsets back to the input.
 * It only scans; yajl reads the caller's bytes unless a chunk needs a repair. */

#define CHUNK     (64u * 1024u) /* bytes handed to yajl at once */
#define KEY_SHOWN 48u           /* bytes of a key kept for paths */
#define KEY_MAX   256u          /* bytes of one object key */
#define TOKEN_MAX 64u           /* bytes of a number */
#define RUN_MAX   (64u * 1024u) /* bytes of a run outside strings that yajl may buffer */
#define DEPTH_CAP 64u           /* whatever the limits say */

typedef struct level {
    bool is_map;
    bool open_item;  /* a member / element is being read: the path names it */
    bool key_cut;    /* key[] holds only the start of a long key */
    uint16_t keylen; /* bytes of key[] used */
    int64_t index;   /* array: current element, -1 before the first */
    int64_t start;   /* input offset of the opening bracket */
    uint32_t nkeys;
    size_t keys_at;   /* where this object's keys start in the key arena */
    uint64_t keymask; /* one bit per key hash: most keys need no scan */
    char key[KEY_SHOWN];
} level;

typedef enum fstate {
    F_OUT,    /* between tokens */
    F_IN,     /* inside a string */
    F_ESC,    /* after a backslash (the next byte is escaped) */
    F_U,      /* after "\u" and nhex of its hex digits */
    F_DK_ESC, /* darknet: after a backslash, not yet written */
    F_DK_U    /* darknet: after "\u" and nhex hex digits, not yet written */
} fstate;

struct ingest__json {
    yajl_handle h;
    ingest__json_fn fn;
    void *ctx;
    ingest_limits lim;
    bool multi, dk;
    int depth;
    level lv[DEPTH_CAP + 1];
    char *keys; /* arena of the keys of open objects: [u16 len][bytes]... */
    size_t keys_len, keys_cap;
    /* pre-filter */
    struct filter_state {
        fstate fs;
        int nhex;
        char hex[4];
        uint64_t str_len;
        int64_t str_start;
        uint32_t run;    /* bytes of the number or literal being read */
        schema_utf8 u8;  /* the raw bytes of the string being read */
        uint32_t cp;     /* F_U: the code unit of the \u escape so far */
        int64_t esc_off; /* input offset of the backslash of the escape being read */
        bool hi_pending; /* a high surrogate escape waits for its low half */
        int64_t hi_off;  /* where that escape starts */
    } f;
    unsigned char *obuf;      /* the filter's copy, when a chunk needs a repair */
    const unsigned char *out; /* what yajl reads: the input chunk itself, or obuf */
    size_t nout;
    uint32_t *ins; /* positions in out[] of bytes the filter inserted */
    size_t nins;
    uint32_t *nl; /* multi: positions in out[] of newlines */
    size_t nnl;
    uint64_t nl_base; /* newlines before out[0] */
    int64_t out_base; /* input offset of out[0] */
    uint64_t fed;     /* input bytes received */
    uint64_t values;  /* top-level values started */
    uint64_t line;    /* multi: line of the current top-level value */
    /* Where the current value starts, computed only when asked (most values
     * never are): fixed, or the token / string yajl has just read. */
    enum { CUR_FIXED, CUR_TOKEN, CUR_STRING } cur_kind;
    size_t cur_len;
    int64_t cur_start; /* CUR_FIXED */
    bool in_parse;     /* yajl is running on out[] */
    /* A fault the filter found: reported only if yajl, fed up to it, finds
     * none earlier (a garbled string may end where garbage starts). */
    sl_status pend;
    int64_t pend_off;
    char pend_msg[200];
    /* The last token yajl accepted (a callback) and what may follow it, so
     * that the culprit of a syntax error is the first token after it, found
     * the same way whatever the chunking (yajl's own position varies). */
    struct last_token {
        uint64_t chunk; /* chunk_no when it ended */
        size_t end;     /* position in that chunk's out[] just after it */
        char expect;    /* ':' after a key, ',' after a value in a container, 0 */
    } last;
    struct culprit {
        bool found, sep_seen, is_string;
        int64_t off;
    } culprit;
    uint64_t chunk_no;
    /* The scan state where the current chunk starts, for the error path:
     * a token or string may have begun in an earlier chunk. */
    struct str_scan {
        bool in_str, esc;
        unsigned need;     /* UTF-8 continuation bytes still owed */
        unsigned hex_left; /* hex digits still owed by a \u escape */
        int64_t lead;      /* where the owing character or escape starts */
        int64_t bad;       /* first byte a string may not hold, -1 none */
    } c0;                  /* for the string open where the chunk starts */
    struct chunk_state {
        bool in_str, esc;  /* out[0] is inside a string / escaped */
        int64_t str_start; /* where that string starts */
    } cs;
    sl_error *err;
    bool failed;
};

/* ---------------------------------------------------------------------------
 * Numbers.
 * ------------------------------------------------------------------------- */
static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

bool ingest__number(const char *s, size_t len, double *out)
{
    if (len == 0 || len > TOKEN_MAX)
        return false;
    /* Fast path (Clinger): at most 15 significant digits and a power of ten
     * up to 22 are both exact doubles, so one multiplication or division is
     * correctly rounded, exactly as strtod would round. */
    size_t i = 0;
    bool neg = false;
    if (s[i] == '-') {
        neg = true;
        i++;
    }
    uint64_t m = 0;
    int digits = 0, exp10 = 0;
    bool any = false;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        any = true;
        if (m == 0 && s[i] == '0')
            continue; /* leading zeros are not significant */
        if (digits < 19) {
            m = m * 10 + (uint64_t)(s[i] - '0');
            digits++;
        } else {
            digits = 99; /* too many: slow path */
        }
    }
    if (i < len && s[i] == '.') {
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            any = true;
            if (m == 0 && s[i] == '0') {
                exp10--;
                continue;
            }
            if (digits < 19) {
                m = m * 10 + (uint64_t)(s[i] - '0');
                digits++;
                exp10--;
            } else {
                digits = 99;
            }
        }
    }
    bool fast = any && digits <= 15;
    if (fast && i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        bool eneg = false;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        int e = 0;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
            if (e < 10000)
                e = e * 10 + (s[i] - '0');
        exp10 += eneg ? -e : e;
    }
    if (fast && i == len && exp10 >= -22 && exp10 <= 22) {
        double v = (double)m;
        v = exp10 < 0 ? v / pow10_exact[-exp10] : v * pow10_exact[exp10];
        *out = neg ? -v : v;
        return true;
    }
    char buf[TOKEN_MAX + 1];
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end = NULL;
    double v = strtod(buf, &end);
    if (end != buf + len || !isfinite(v))
        return false;
    *out = v;
    return true;
}

bool ingest__number_int(const char *s, size_t len, int64_t *out)
{
    size_t digits = len > 0 && s[0] == '-' ? len - 1 : len;
    bool plain = digits > 0 && digits <= 18; /* 18 digits always fit in int64 */
    for (size_t i = 0; plain && i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (i == 0 && s[i] == '-' && len > 1)))
            plain = false;
    if (plain) {
        int64_t v = 0;
        size_t i = s[0] == '-' ? 1 : 0;
        for (; i < len; i++)
            v = v * 10 + (s[i] - '0');
        *out = s[0] == '-' ? -v : v;
        return true;
    }
    double d;
    if (!ingest__number(s, len, &d) || d != floor(d) || fabs(d) > 9007199254740992.0)
        return false;
    *out = (int64_t)d;
    return true;
}

/* ---------------------------------------------------------------------------
 * Positions and paths.
 * ------------------------------------------------------------------------- */

/* Input offset of position pos of out[]: bytes the filter inserted before it
 * do not count. */
static int64_t map_pos(const ingest__json *j, size_t pos)
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
static int64_t token_end(const ingest__json *j)
{
    if (!j->in_parse)
        return (int64_t)j->fed;
    return map_pos(j, yajl_get_bytes_consumed(j->h));
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
            return map_pos(j, i);
    }
    /* No opening quote in this chunk: the string began in an earlier one. */
    return j->cs.in_str ? j->cs.str_start : -1;
}

/* Input offset where the current value starts. */
static int64_t cur_offset(const ingest__json *j)
{
    if (j->cur_kind == CUR_FIXED || !j->in_parse)
        return j->cur_start;
    /* Still inside the value's callback: yajl is just past its token. */
    size_t pos = yajl_get_bytes_consumed(j->h);
    int64_t st = j->cur_kind == CUR_STRING ? string_start(j, pos) : -1;
    if (st < 0)
        st = map_pos(j, pos) - (int64_t)j->cur_len - (j->cur_kind == CUR_STRING ? 2 : 0);
    return st < 0 ? 0 : st;
}

static void set_fixed(ingest__json *j, int64_t off)
{
    j->cur_kind = CUR_FIXED;
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
        const level *l = &j->lv[d];
        if (!l->open_item)
            continue;
        const char *lead = used == 0 ? "" : used == mark ? ": " : "";
        if (l->is_map && ident_key(l->key, l->keylen)) {
            path_append(out, n, &used, "%s%s%.*s%s", lead, used == mark ? "" : ".", (int)l->keylen,
                        l->key, l->key_cut ? "..." : "");
        } else if (l->is_map) {
            char q[KEY_SHOWN + 1];
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

static bool vfail(ingest__json *j, const char *sub, int64_t offset, sl_status s, const char *fmt,
                  va_list ap)
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
    vfail(j, NULL, cur_offset(j), s, fmt, ap);
    va_end(ap);
    return false;
}

bool ingest__json_fail_at(ingest__json *j, const char *sub, sl_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(j, sub, cur_offset(j), s, fmt, ap);
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
        level *l = &j->lv[j->depth];
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
    j->cur_kind = ev == INGEST__J_STRING ? CUR_STRING : CUR_TOKEN;
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
    if (len > TOKEN_MAX) {
        /* Named as the filter names a run that crosses a chunk end: the
         * value has not started. */
        set_fixed(j, token_end(j) - (int64_t)len);
        return ingest__json_fail(j, SL_EINVAL, "number is %zu characters long; the limit is %u",
                                 len, TOKEN_MAX);
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
    set_fixed(j, token_end(j) - 1);
    if ((uint32_t)j->depth >= j->lim.max_depth)
        return ingest__json_fail(j, SL_EINVAL, "JSON nested deeper than %u levels",
                                 j->lim.max_depth);
    level *l = &j->lv[++j->depth];
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
    level *l = &j->lv[j->depth];
    set_fixed(j, l->start);
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
    level *l = &j->lv[j->depth];
    j->cur_kind = CUR_STRING;
    j->cur_len = len;
    l->open_item = true;
    l->keylen = (uint16_t)(len < KEY_SHOWN ? len : KEY_SHOWN);
    memcpy(l->key, s, l->keylen);
    l->key_cut = len > KEY_SHOWN;
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
    if (j->lim.max_depth == 0 || j->lim.max_depth > DEPTH_CAP)
        j->lim.max_depth = DEPTH_CAP;
    j->multi = o->multi;
    j->dk = o->darknet_escapes;
    j->c0.bad = -1;
    /* A byte of input becomes at most two; a chunk may also carry up to six
     * bytes held back from the previous one. */
    j->obuf = malloc(2 * CHUNK + 16);
    j->ins = malloc(sizeof *j->ins * (CHUNK + 16));
    j->nl = malloc(sizeof *j->nl * (CHUNK + 16));
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

/* ---------------------------------------------------------------------------
 * The pre-filter and the feeding of yajl.
 * ------------------------------------------------------------------------- */

/* Bytes held back by the darknet repair (not yet in out[]). */
static size_t held(const ingest__json *j)
{
    return j->f.fs == F_DK_ESC ? 1 : j->f.fs == F_DK_U ? 2 + (size_t)j->f.nhex : 0;
}

static bool filter_fail(ingest__json *j, int64_t offset, sl_status s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool filter_fail(ingest__json *j, int64_t offset, sl_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(j, NULL, offset, s, fmt, ap);
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
    if (j->f.fs == F_DK_U) {
        j->obuf[j->nout++] = 'u';
        memcpy(j->obuf + j->nout, j->f.hex, (size_t)j->f.nhex);
        j->nout += (size_t)j->f.nhex;
    }
    j->f.str_len += 1 + held(j);
    j->f.fs = F_IN;
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
        case F_OUT: {
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
                j->f.fs = F_IN;
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
        case F_IN: {
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
                j->f.fs = F_OUT;
                i++;
                break;
            }
            j->f.esc_off = in_base + (int64_t)k;
            if (!j->dk) {
                EMIT('\\');
                j->f.str_len++;
                j->f.fs = F_ESC;
                i++;
            } else if (copy) {
                j->f.fs = F_DK_ESC; /* held until the next byte decides */
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
        case F_ESC:
            if (c == 'u') {
                j->f.fs = F_U;
                j->f.nhex = 0;
            } else if (j->f.hi_pending) { /* \n, \" ... after a high surrogate */
                unpaired_high(j);
                r = FILTER_STOPPED;
                break;
            } else {
                j->f.fs = F_IN;
            }
            EMIT(c);
            j->f.str_len++;
            i++;
            break;
        case F_U:
            if (!is_hex(c)) {
                j->f.fs = F_IN; /* not an escape: yajl refuses it; c is read again */
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
                j->f.fs = F_IN;
            break;
        case F_DK_ESC: /* copy mode only */
            if (c != 'u' && j->f.hi_pending) {
                unpaired_high(j); /* an escape or a literal backslash after a high surrogate */
                r = FILTER_STOPPED;
            } else if (c == '"' || c == '\\' || c == '/') {
                /* A JSON escape a re-encoding writer would produce: keep it. */
                EMIT('\\');
                EMIT(c);
                j->f.str_len += 2;
                j->f.fs = F_IN;
                i++;
            } else if (c == 'u') {
                j->f.fs = F_DK_U;
                j->f.nhex = 0;
                i++;
            } else {
                /* darknet prints file names unescaped ("C:\new\img.jpg"):
                 * the backslash is a character; the byte after it is read
                 * again as an ordinary one. */
                emit_repaired(j);
            }
            break;
        case F_DK_U: /* copy mode only */
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
                    j->f.fs = F_IN;
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
            st->lead = map_pos(j, i);
        } else if (c == '"') {
            st->in_str = false;
        } else if (c < 0x20 || c == 0x7f) {
            if (c < 0x20 && st->bad < 0)
                st->bad = map_pos(j, i); /* JSON strings hold no raw control bytes */
        } else if (c >= 0x80) {
            st->lead = map_pos(j, i);
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
        j->culprit.off = map_pos(j, i);
        return;
    }
}

/* Where input offset off lies in out[]; false when outside. */
static bool view_index(const ingest__json *j, int64_t off, size_t *idx)
{
    size_t lo = 0, hi = j->nout;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (map_pos(j, mid) < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    *idx = lo;
    return lo < j->nout && map_pos(j, lo) == off;
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
    if (j->f.fs == F_OUT) {
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
        filter_fail(j, token_end(j), SL_EINTERNAL, "JSON reader stopped without a reason");
    set_fixed(j, cur_offset(j)); /* out[] is about to be reused */
    j->in_parse = false;
    return st == yajl_status_ok;
}

sl_status ingest__json_feed(ingest__json *j, const void *data, size_t len, sl_error *err)
{
    j->err = err;
    const unsigned char *p = data;
    while (len > 0 && !j->failed) {
        size_t n = len < CHUNK ? len : CHUNK;
        if (j->fed + n > j->lim.max_input_bytes) {
            filter_fail(j, (int64_t)j->lim.max_input_bytes, SL_ETOOLARGE,
                        "input is larger than %llu bytes",
                        (unsigned long long)j->lim.max_input_bytes);
            break;
        }
        j->out_base = (int64_t)j->fed - (int64_t)held(j);
        j->nout = j->nins = j->nnl = 0;
        j->cs = (struct chunk_state){
            .in_str = j->f.fs != F_OUT, .esc = j->f.fs == F_ESC, .str_start = j->f.str_start};
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
    j->cs = (struct chunk_state){
        .in_str = j->f.fs != F_OUT, .esc = j->f.fs == F_ESC, .str_start = j->f.str_start};
    j->out = j->obuf;
    if (j->f.fs == F_DK_ESC || j->f.fs == F_DK_U)
        emit_repaired(j); /* a string cannot end there: yajl will say so */
    if (!parse_out(j))
        goto out;
    set_fixed(j, (int64_t)j->fed);
    if (j->values == 0) {
        filter_fail(j, (int64_t)j->fed, SL_EINVAL, "input is empty: no JSON value");
        goto out;
    }
    if (allow_open_top && j->depth == 1 && !j->lv[1].is_map && j->f.fs == F_OUT && j->f.run == 0)
        goto out; /* a stream that stopped between two elements */
    if (j->f.fs != F_OUT || j->depth > 0) {
        filter_fail(j, (int64_t)j->fed, SL_EINVAL,
                    "input ends at byte %llu %s, before the JSON is complete: the input was cut "
                    "off (an interrupted run?); send it again once it is complete",
                    (unsigned long long)j->fed,
                    j->f.fs != F_OUT ? "inside a string" : "inside an unclosed array or object");
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
