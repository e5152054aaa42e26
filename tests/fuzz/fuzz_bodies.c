/* fuzz_bodies.c -- libFuzzer target: the small-document codecs (asset lines,
 * surgery, catalog entry, category map) on every input.  A document a codec
 * accepts must be
 *   - valid BSON with pk and sk, every string strict UTF-8;
 *   - the requested tenant's: its keys (docs/documents.md, written out here,
 *     not built by schema/) and its `tenant` name the tenant asked for;
 *   - for an asset, exact in its micro-unit copies: each *_micro equals
 *     the score as written rounded to the nearest millionth, a half away
 *     from zero (docs/formats.md, "Scores"), worked out here by decimal
 *     arithmetic on the number's text (not by schema/numbers.c), and the
 *     stored double is the one nearest to that text;
 *   - a fixed point of the API: the JSON GET answers for it (the route's own
 *     writer, api/routes_*.c, compiled in here since it is static), fed back
 *     to the same codec, gives the same document byte for byte.  Where the
 *     format cannot carry a score exactly (its text has more than 15
 *     significant digits, and the API writes the double), the document
 *     read back must equal it but for its micro-units, which must then be
 *     those of the text the API wrote.
 * A refusal must say why. */
#include "ingest/ingest.h"

/* The routes' JSON writers (asset_json, surgery_json, entry_json); each
 * file names its route table `routes`. */
#define routes routes_assets
#include "api/routes_assets.c"
#undef routes
#define routes routes_catalog
#include "api/routes_catalog.c"
#undef routes
#define routes routes_surgeries
#include "api/routes_surgeries.c"
#undef routes

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TENANT  "t"
#define SURGERY "s"
#define SKU     "SKU"

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_bodies: %s\n", what);
    __builtin_trap();
}

/* ---------------------------------------------------------------------------
 * A JSON reader of its own, enough to find the text of the scores: it reads
 * what the codec accepted, so anything it cannot read is a finding too.
 * ------------------------------------------------------------------------- */
typedef struct jscan {
    const char *p, *end;
} jscan;

static void js_ws(jscan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int js_hex4(jscan *s, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++, s->p++) {
        if (s->p >= s->end)
            return 0;
        char c = *s->p;
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d == 16)
            return 0;
        *v = *v << 4 | d;
    }
    return 1;
}

/* A string at s->p, decoded into out[0..cap) (NUL-terminated, *len bytes;
 * cut at cap) when out is set. */
static int js_string(jscan *s, char *out, size_t cap, size_t *len)
{
    size_t n = 0;
#define PUT(c)                                                                                     \
    do {                                                                                           \
        if (out && n + 1 < cap)                                                                    \
            out[n] = (char)(c);                                                                    \
        n++;                                                                                       \
    } while (0)
    if (s->p >= s->end || *s->p != '"')
        return 0;
    for (s->p++; s->p < s->end && *s->p != '"';) {
        unsigned char c = (unsigned char)*s->p++;
        if (c < 0x20)
            return 0;
        if (c != '\\') {
            PUT(c);
            continue;
        }
        if (s->p >= s->end)
            return 0;
        c = (unsigned char)*s->p++;
        const char *simple = strchr("\"\\/bfnrt", c);
        if (c && simple) {
            PUT("\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"]);
            continue;
        }
        unsigned cp, lo;
        if (c != 'u' || !js_hex4(s, &cp))
            return 0;
        if (cp >= 0xd800 && cp < 0xdc00 && s->end - s->p >= 6 && s->p[0] == '\\' &&
            s->p[1] == 'u') {
            jscan t = {s->p + 2, s->end};
            if (js_hex4(&t, &lo) && lo >= 0xdc00 && lo < 0xe000) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                s->p = t.p;
            }
        }
        if (cp < 0x80) {
            PUT(cp);
        } else if (cp < 0x800) {
            PUT(0xc0 | cp >> 6);
            PUT(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            PUT(0xe0 | cp >> 12);
            PUT(0x80 | (cp >> 6 & 0x3f));
            PUT(0x80 | (cp & 0x3f));
        } else {
            PUT(0xf0 | cp >> 18);
            PUT(0x80 | (cp >> 12 & 0x3f));
            PUT(0x80 | (cp >> 6 & 0x3f));
            PUT(0x80 | (cp & 0x3f));
        }
    }
#undef PUT
    if (s->p >= s->end)
        return 0;
    s->p++;
    if (out)
        out[n < cap ? n : cap - 1] = '\0';
    *len = n;
    return 1;
}

/* A number's text: -?int(.frac)?([eE][+-]?digits)? */
static int js_number(jscan *s, const char **text, size_t *len)
{
    const char *p = s->p;
#define DIGITS(min)                                                                                \
    do {                                                                                           \
        const char *d0 = p;                                                                        \
        while (p < s->end && *p >= '0' && *p <= '9')                                               \
            p++;                                                                                   \
        if (p - d0 < (min))                                                                        \
            return 0;                                                                              \
    } while (0)
    if (p < s->end && *p == '-')
        p++;
    if (p < s->end && *p == '0')
        p++;
    else
        DIGITS(1);
    if (p < s->end && *p == '.') {
        p++;
        DIGITS(1);
    }
    if (p < s->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < s->end && (*p == '+' || *p == '-'))
            p++;
        DIGITS(1);
    }
#undef DIGITS
    *text = s->p;
    *len = (size_t)(p - s->p);
    s->p = p;
    return 1;
}

static int js_value(jscan *s, int depth);

static int js_lit(jscan *s, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n))
        return 0;
    s->p += n;
    return 1;
}

/* An object or array at s->p, skipped. */
static int js_container(jscan *s, int depth)
{
    char close = *s->p == '{' ? '}' : ']';
    size_t len;
    s->p++;
    js_ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return 1;
    }
    for (;;) {
        js_ws(s);
        if (close == '}') {
            if (!js_string(s, NULL, 0, &len))
                return 0;
            js_ws(s);
            if (s->p >= s->end || *s->p++ != ':')
                return 0;
        }
        if (!js_value(s, depth + 1))
            return 0;
        js_ws(s);
        if (s->p >= s->end)
            return 0;
        if (*s->p == close) {
            s->p++;
            return 1;
        }
        if (*s->p++ != ',')
            return 0;
    }
}

static int js_value(jscan *s, int depth)
{
    const char *t;
    size_t len;
    js_ws(s);
    if (depth > 64 || s->p >= s->end)
        return 0;
    switch (*s->p) {
    case '{':
    case '[':
        return js_container(s, depth);
    case '"':
        return js_string(s, NULL, 0, &len);
    case 't':
        return js_lit(s, "true");
    case 'f':
        return js_lit(s, "false");
    case 'n':
        return js_lit(s, "null");
    default:
        return js_number(s, &t, &len);
    }
}

/* The numbers of an object's members: names (decoded) and texts. */
#define MEMBERS_MAX 64
typedef struct member {
    char name[512];
    size_t name_len;
    const char *num; /* NULL when the value is not a number */
    size_t num_len;
    const char *at; /* the value's text */
} member;

/* Reads the object at s->p (after whitespace) into m[0..*n). */
static int js_members(jscan *s, member *m, size_t *n)
{
    *n = 0;
    js_ws(s);
    if (s->p >= s->end || *s->p != '{')
        return 0;
    s->p++;
    js_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return 1;
    }
    for (;;) {
        member tmp, *x = *n < MEMBERS_MAX ? &m[*n] : &tmp;
        js_ws(s);
        if (!js_string(s, x->name, sizeof x->name, &x->name_len))
            return 0;
        js_ws(s);
        if (s->p >= s->end || *s->p++ != ':')
            return 0;
        js_ws(s);
        x->at = s->p;
        x->num = NULL;
        if (s->p < s->end && (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))) {
            if (!js_number(s, &x->num, &x->num_len))
                return 0;
        } else if (!js_value(s, 1)) {
            return 0;
        }
        (*n)++;
        js_ws(s);
        if (s->p >= s->end)
            return 0;
        if (*s->p == '}') {
            s->p++;
            return 1;
        }
        if (*s->p++ != ',')
            return 0;
    }
}

static const member *find(const member *m, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n && i < MEMBERS_MAX; i++)
        if (m[i].name_len == len && m[i].name_len < sizeof m[i].name &&
            !memcmp(m[i].name, name, len))
            return &m[i];
    return NULL;
}

/* ---------------------------------------------------------------------------
 * round(v x 1e6) from a number's text, by decimal arithmetic.
 * ------------------------------------------------------------------------- */
typedef struct decimal {
    int neg;
    char dig[64]; /* significant digits: no leading or trailing zeros */
    size_t nd;    /* 0: the value is zero */
    long point;   /* value = 0.dig x 10^point */
    int too_long; /* more significant digits than dig holds */
} decimal;

static void decimal_read(const char *s, size_t n, decimal *d)
{
    size_t i = 0;
    long point = 0, exp = 0;
    int seen_point = 0, lead = 1;
    memset(d, 0, sizeof *d);
    if (i < n && s[i] == '-') {
        d->neg = 1;
        i++;
    }
    for (; i < n && ((s[i] >= '0' && s[i] <= '9') || s[i] == '.'); i++) {
        if (s[i] == '.') {
            seen_point = 1;
            continue;
        }
        if (!seen_point)
            point++;
        if (lead && s[i] == '0') {
            point--; /* a leading zero moves the first significant digit right */
            continue;
        }
        lead = 0;
        if (d->nd < sizeof d->dig)
            d->dig[d->nd++] = s[i];
        else
            d->too_long = 1;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        int eneg = 0;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            if (exp < 100000000)
                exp = exp * 10 + (s[i] - '0');
        point += eneg ? -exp : exp;
    }
    while (d->nd > 0 && d->dig[d->nd - 1] == '0' && !d->too_long)
        d->nd--;
    if (d->nd == 0)
        d->point = 0;
    else
        d->point = point;
}

/* round(value x 1e6), half away from zero; 0 with *big set when it is
 * above 10^12 in magnitude (no score). */
static int64_t decimal_micro(const decimal *d, int *big)
{
    int64_t m = 0;
    *big = 0;
    if (d->nd == 0)
        return 0;
    if (d->point > 7) {
        *big = 1;
        return 0;
    }
    long whole = d->point + 6; /* digits left of the rounding point */
    for (long k = 0; k < whole; k++)
        m = m * 10 + (k < (long)d->nd ? d->dig[k] - '0' : 0);
    if (whole >= 0 && whole < (long)d->nd && d->dig[whole] >= '5')
        m++;
    return d->neg ? -m : m;
}

static int64_t text_micro(const char *s, size_t n, int *sig_ok)
{
    decimal d;
    int big;
    decimal_read(s, n, &d);
    int64_t m = decimal_micro(&d, &big);
    *sig_ok = !big && !d.too_long && d.nd <= 15;
    return m;
}

/* The micro copy of one score: the stored double is the one nearest to
 * the text, and the micro-units are the text's, rounded.  *exact is
 * cleared when the text has more significant digits than the double the
 * API shows for it can carry. */
static void check_score(const char *what, double v, int64_t micro, const char *num, size_t num_len,
                        int *exact)
{
    static char buf[16384 + 1]; /* strtod needs a NUL; inputs are at most 16 KB */
    int sig_ok;
    if (!num || num_len >= sizeof buf)
        fail("a stored score is not a number in the input");
    memcpy(buf, num, num_len);
    buf[num_len] = '\0';
    if (strtod(buf, NULL) != v) {
        fprintf(stderr, "fuzz_bodies: %s: stored %.17g, the input says %s\n", what, v, buf);
        __builtin_trap();
    }
    int64_t want = text_micro(num, num_len, &sig_ok);
    if (micro != want) {
        fprintf(stderr, "fuzz_bodies: %s: %.*s is %lld micro-units, stored %lld\n", what,
                (int)num_len, num, (long long)want, (long long)micro);
        __builtin_trap();
    }
    if (!sig_ok)
        *exact = 0;
}

/* ---------------------------------------------------------------------------
 * The document checks.
 * ------------------------------------------------------------------------- */

/* Every string of a document is strict UTF-8 (issue 9: libbson's and
 * yajl's checks let surrogates and overlong forms by). */
static void check_strings(bson_iter_t *it)
{
    while (bson_iter_next(it)) {
        bson_iter_t child;
        uint32_t len = 0;
        const char *s = BSON_ITER_HOLDS_UTF8(it) ? bson_iter_utf8(it, &len) : NULL;
        const char *key = bson_iter_key(it);
        if ((s && schema_utf8_valid_prefix(s, len) != len) ||
            schema_utf8_valid_prefix(key, strlen(key)) != strlen(key))
            fail("a string of the document is not strict UTF-8");
        if ((BSON_ITER_HOLDS_DOCUMENT(it) || BSON_ITER_HOLDS_ARRAY(it)) &&
            bson_iter_recurse(it, &child))
            check_strings(&child);
    }
}

static const char *doc_str(const bson_t *doc, const char *name)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, name) && BSON_ITER_HOLDS_UTF8(&it)
               ? bson_iter_utf8(&it, NULL)
               : NULL;
}

static void check_key(const bson_t *doc, const char *field, const char *want)
{
    const char *v = doc_str(doc, field);
    if (!v || strcmp(v, want)) {
        fprintf(stderr, "fuzz_bodies: %s is \"%s\", not \"%s\"\n", field, v ? v : "(none)", want);
        __builtin_trap();
    }
}

static void check_prefix(const bson_t *doc, const char *field, const char *prefix)
{
    const char *v = doc_str(doc, field);
    if (!v || strncmp(v, prefix, strlen(prefix))) {
        fprintf(stderr, "fuzz_bodies: %s is \"%s\", not under \"%s\"\n", field, v ? v : "(none)",
                prefix);
        __builtin_trap();
    }
}

static void check_doc(const bson_t *doc)
{
    bson_iter_t it;
    if (!bson_validate(doc, BSON_VALIDATE_UTF8, NULL) || !bson_iter_init_find(&it, doc, "pk") ||
        !BSON_ITER_HOLDS_UTF8(&it) || !bson_iter_init_find(&it, doc, "sk") ||
        !BSON_ITER_HOLDS_UTF8(&it))
        fail("the document is not BSON with string pk and sk");
    if (bson_iter_init(&it, doc))
        check_strings(&it);
}

/* The asset's micro-unit copies against the text of the line (*exact as
 * check_score says). */
static void check_asset_scores(const bson_t *doc, const char *line, size_t len, int *exact)
{
    static member top[MEMBERS_MAX], sal[MEMBERS_MAX];
    size_t ntop, nsal;
    jscan s = {line, line + len};
    bson_iter_t it, sub, micro_it, micro_sub;
    if (!js_members(&s, top, &ntop) || (js_ws(&s), s.p != s.end))
        fail("an accepted asset line is not one JSON object");
    const member *mem = find(top, ntop, "memorability", strlen("memorability"));
    const member *sa = find(top, ntop, "saliency", strlen("saliency"));
    if (!mem || !sa || !bson_iter_init_find(&it, doc, "memorability") ||
        !BSON_ITER_HOLDS_DOUBLE(&it) ||
        !bson_iter_init_find(&micro_it, doc, "memorability_micro") ||
        !BSON_ITER_HOLDS_INT64(&micro_it))
        fail("an asset lacks its memorability");
    check_score("memorability", bson_iter_double(&it), bson_iter_int64(&micro_it), mem->num,
                mem->num_len, exact);
    jscan ss = {sa->at, line + len};
    if (!js_members(&ss, sal, &nsal) || nsal > MEMBERS_MAX)
        fail("an asset's saliency is not an object of scores");
    if (!bson_iter_init_find(&it, doc, "saliency") || !bson_iter_recurse(&it, &sub) ||
        !bson_iter_init_find(&micro_it, doc, "saliency_micro") ||
        !bson_iter_recurse(&micro_it, &micro_sub))
        fail("an asset lacks saliency or saliency_micro");
    size_t n = 0;
    while (bson_iter_next(&sub)) {
        const char *name = bson_iter_key(&sub);
        if (!bson_iter_next(&micro_sub) || strcmp(bson_iter_key(&micro_sub), name) ||
            !BSON_ITER_HOLDS_DOUBLE(&sub) || !BSON_ITER_HOLDS_INT64(&micro_sub))
            fail("saliency and saliency_micro do not name the same measures");
        const member *m = find(sal, nsal, name, strlen(name));
        if (!m) {
            fprintf(stderr, "fuzz_bodies: saliency measure \"%s\" is not in the input\n", name);
            __builtin_trap();
        }
        check_score(name, bson_iter_double(&sub), bson_iter_int64(&micro_sub), m->num, m->num_len,
                    exact);
        n++;
    }
    if (bson_iter_next(&micro_sub) || n != nsal)
        fail("the stored saliency measures are not those of the input");
}

/* 1 when a and b hold the same bytes, leaving out the fields named (NULL
 * terminated; none: the whole documents). */
static int same_bytes(const bson_t *a, const bson_t *b, const char *skip1, const char *skip2)
{
    bson_t x = BSON_INITIALIZER, y = BSON_INITIALIZER;
    bson_copy_to_excluding_noinit(a, &x, skip1 ? skip1 : "", skip2 ? skip2 : "", NULL);
    bson_copy_to_excluding_noinit(b, &y, skip1 ? skip1 : "", skip2 ? skip2 : "", NULL);
    int same = x.len == y.len && !memcmp(bson_get_data(&x), bson_get_data(&y), x.len);
    bson_destroy(&x);
    bson_destroy(&y);
    return same;
}

/* A document as GET shows it, fed back to its codec: the same document
 * (exact: every score's text was carried; else the same but for the
 * micro-units, which are then those of the API's text). */
typedef enum body_kind { BODY_ASSET, BODY_SURGERY, BODY_CATALOG } body_kind;

static void check_round_trip(const bson_t *doc, body_kind kind, int exact)
{
    static const api_doc_json_fn emit[] = {asset_json, surgery_json, entry_json};
    yajl_gen g = api_json_new();
    const unsigned char *json;
    size_t len = 0;
    bson_t *again = NULL;
    sl_error e;
    sl_error_clear(&e);
    if (!g)
        fail("out of memory");
    emit[kind](g, doc, 1);
    if (yajl_gen_get_buf(g, &json, &len) != yajl_gen_status_ok)
        fail("the API could not write the document");
    sl_status rc = kind == BODY_ASSET ? ingest_asset_doc(TENANT, NULL, json, len, NULL, &again, &e)
                   : kind == BODY_SURGERY
                       ? ingest_surgery_doc(TENANT, SURGERY, json, len, NULL, NULL, &again, &e)
                       : ingest_catalog_doc(TENANT, SKU, json, len, NULL, &again, &e);
    if (rc != SL_OK) {
        fprintf(stderr, "fuzz_bodies: the codec refuses the API's own JSON %.*s: %s\n", (int)len,
                (const char *)json, e.message);
        __builtin_trap();
    }
    int same = exact ? same_bytes(doc, again, NULL, NULL)
                     : same_bytes(doc, again, "memorability_micro", "saliency_micro");
    if (!same) {
        char *a = bson_as_canonical_extended_json(doc, NULL),
             *b = bson_as_canonical_extended_json(again, NULL);
        fprintf(stderr, "fuzz_bodies: round trip through %.*s\n  gave %s\n  from %s\n", (int)len,
                (const char *)json, b ? b : "?", a ? a : "?");
        __builtin_trap();
    }
    if (kind == BODY_ASSET && !exact) {
        int unused = 1;
        check_asset_scores(again, (const char *)json, len, &unused);
    }
    bson_destroy(again);
    yajl_gen_free(g);
}

static void refused_says_why(const sl_error *e)
{
    if (!e->message[0])
        fail("a refusal without a message");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    char key[SCHEMA_KEY_MAX + 64];
    sl_error e;
    bson_t *doc = NULL;
    for (size_t at = 0; at < size;) {
        const char *nl = memchr(text + at, '\n', size - at);
        size_t len = nl ? (size_t)(nl - (text + at)) : size - at;
        sl_error_clear(&e);
        if (ingest_asset_doc(TENANT, NULL, text + at, len, NULL, &doc, &e) == SL_OK) {
            check_doc(doc);
            const char *asset = doc_str(doc, "asset");
            if (!asset)
                fail("an asset document without its id");
            check_key(doc, "tenant", TENANT);
            snprintf(key, sizeof key, "T#%s#ASSET#%s", TENANT, asset);
            check_key(doc, "pk", key);
            check_key(doc, "gsi1pk", "T#" TENANT "#ASSETS");
            int exact = 1;
            check_asset_scores(doc, text + at, len, &exact);
            check_round_trip(doc, BODY_ASSET, exact);
            bson_destroy(doc);
        } else {
            refused_says_why(&e);
        }
        at += len + 1;
    }
    sl_error_clear(&e);
    if (ingest_surgery_doc(TENANT, SURGERY, text, size, NULL, NULL, &doc, &e) == SL_OK) {
        check_doc(doc);
        check_key(doc, "tenant", TENANT);
        check_key(doc, "pk", "T#" TENANT "#SURGERY#" SURGERY);
        check_prefix(doc, "gsi1pk", "T#" TENANT "#HOSPITAL#");
        check_round_trip(doc, BODY_SURGERY, 1);
        bson_destroy(doc);
    } else {
        refused_says_why(&e);
    }
    sl_error_clear(&e);
    if (ingest_catalog_doc(TENANT, SKU, text, size, NULL, &doc, &e) == SL_OK) {
        check_doc(doc);
        check_key(doc, "pk", "T#" TENANT "#CATALOG");
        check_key(doc, "sk", "TOOL#" SKU);
        check_round_trip(doc, BODY_CATALOG, 1);
        bson_destroy(doc);
    } else {
        refused_says_why(&e);
    }
    ingest_categories *c = NULL;
    sl_error_clear(&e);
    if (ingest_categories_parse(text, size, NULL, &c, &e) == SL_OK)
        ingest_categories_free(&c);
    else
        refused_says_why(&e);
    return 0;
}
