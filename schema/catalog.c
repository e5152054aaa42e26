/* catalog.c -- the tool catalog's one definition (schema.h, "The tool
 * catalog"): the check of an entry's values, the strict decoder of a stored
 * catalog_tool document, and the compiled matcher (PCRE2 label patterns,
 * each matched against the whole label) that ingest and the engine both use.
 *
 * A compiled catalog is built on one thread and immutable afterwards: its
 * patterns are JIT-compiled once, its match context (the match limit) is
 * read-only, and each match makes its own match data, so matching from many
 * threads at once is safe. */
#include "schema.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <assert.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whole-label matching in UTF-8 with Unicode properties.  ENDANCHORED, not a
 * '$' appended: '$' would also accept a label ending in a newline, and an
 * appended \z would change what an alternation or a trailing comment means. */
static const uint32_t pattern_options = PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED | PCRE2_ENDANCHORED;

/* Copies at most 60 bytes of s[0..len) for a message, control bytes as '?',
 * never cutting a multi-byte character (s is valid UTF-8 or cut anyway). */
static void shown(const char *s, size_t len, char out[64])
{
    size_t n = len > 60 ? 60 : len;
    while (n < len && n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    for (size_t i = 0; i < n; i++)
        out[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    out[n] = '\0';
}

static pcre2_code *compile(const char *pattern, size_t len, int *code, PCRE2_SIZE *where)
{
    return pcre2_compile((PCRE2_SPTR)pattern, len, pattern_options, code, where, NULL);
}

static sl_status compile_error(sl_error *err, const char *field, const char *pattern, size_t len,
                               int code, PCRE2_SIZE where)
{
    PCRE2_UCHAR msg[160];
    char pat[64];
    if (pcre2_get_error_message(code, msg, sizeof msg) < 0)
        snprintf((char *)msg, sizeof msg, "error %d", code);
    shown(pattern, len, pat);
    return sl_error_set_at(err, SL_EINVAL, field, -1,
                           "label pattern /%s/ does not compile: %s (at pattern offset %zu)", pat,
                           (const char *)msg, (size_t)where);
}

sl_status schema_catalog_pattern_check(const char *pattern, size_t len, sl_error *err)
{
    int code;
    PCRE2_SIZE where;
    pcre2_code *re = compile(pattern, len, &code, &where);
    if (!re)
        return compile_error(err, NULL, pattern, len, code, where);
    pcre2_code_free(re);
    return SL_OK;
}

/* ---------------------------------------------------------------------------
 * Values and the stored document.
 * ------------------------------------------------------------------------- */
sl_status schema_catalog_entry_check(const schema_catalog_entry *e, sl_error *err)
{
    sl_status rc = SL_OK;
    size_t nlen = e->name ? strlen(e->name) : 0;
    if ((rc = schema_component_check(SCHEMA_F_SKU, e->sku, err)) != SL_OK)
        goto out;
    if (nlen == 0 || nlen > SCHEMA_CATALOG_NAME_MAX) {
        rc = sl_error_set_at(err, SL_EINVAL, SCHEMA_F_NAME, -1,
                             "name must be 1 to %u bytes long, not %zu", SCHEMA_CATALOG_NAME_MAX,
                             nlen);
        goto out;
    }
    if ((rc = schema_text_check(SCHEMA_F_NAME, e->name, nlen, err)) != SL_OK)
        goto out;
    if (e->nlabels == 0 || e->nlabels > SCHEMA_CATALOG_LABELS_MAX || !e->labels || !e->label_len) {
        rc = sl_error_set_at(err, SL_EINVAL, SCHEMA_F_CATALOG_LABELS, -1,
                             "labels must hold 1 to %u patterns, not %u", SCHEMA_CATALOG_LABELS_MAX,
                             e->nlabels);
        goto out;
    }
    for (uint32_t i = 0; i < e->nlabels; i++) {
        char field[32];
        snprintf(field, sizeof field, "%s[%u]", SCHEMA_F_CATALOG_LABELS, i);
        if (!e->labels[i] || e->label_len[i] == 0 || e->label_len[i] > SCHEMA_CATALOG_PATTERN_MAX) {
            rc = sl_error_set_at(err, SL_EINVAL, field, -1,
                                 "each label pattern must be 1 to %u bytes long",
                                 SCHEMA_CATALOG_PATTERN_MAX);
            goto out;
        }
        if ((rc = schema_utf8_check(field, e->labels[i], e->label_len[i], err)) != SL_OK)
            goto out;
    }
    if (e->unit_cost_cents < 0 || e->unit_cost_cents > SCHEMA_UNIT_COST_MAX)
        rc = sl_error_set_at(err, SL_EINVAL, SCHEMA_F_UNIT_COST_CENTS, -1,
                             "unit_cost_cents %lld is outside [0, %lld]",
                             (long long)e->unit_cost_cents, (long long)SCHEMA_UNIT_COST_MAX);
out:
    return rc;
}

/* The document fields of a catalog_tool, in the order ingest writes them;
 * seen[] counts each. */
enum { F_PK, F_SK, F_V, F_TYPE, F_SKU, F_NAME, F_LABELS, F_COST, F_SINGLE, F_N };
static const char *const field_names[F_N] = {
    SCHEMA_F_PK,        SCHEMA_F_SK,   SCHEMA_F_VERSION,        SCHEMA_F_TYPE,
    SCHEMA_F_SKU,       SCHEMA_F_NAME, SCHEMA_F_CATALOG_LABELS, SCHEMA_F_UNIT_COST_CENTS,
    SCHEMA_F_SINGLE_USE};

static sl_status corrupt(sl_error *err, const char *field, const char *why)
{
    return sl_error_set_at(err, SL_ECORRUPT, field, -1, "catalog_tool document: %s %s", field, why);
}

/* labels: an array of 1..LABELS_MAX strings, into out's arrays. */
static sl_status decode_labels(bson_iter_t *it, schema_catalog_doc *out, sl_error *err)
{
    bson_iter_t arr;
    uint32_t n = 0;
    if (!BSON_ITER_HOLDS_ARRAY(it) || !bson_iter_recurse(it, &arr))
        return corrupt(err, SCHEMA_F_CATALOG_LABELS, "is not an array");
    while (bson_iter_next(&arr)) {
        char field[32];
        snprintf(field, sizeof field, "%s[%u]", SCHEMA_F_CATALOG_LABELS, n);
        if (n == SCHEMA_CATALOG_LABELS_MAX)
            return corrupt(err, SCHEMA_F_CATALOG_LABELS, "holds more than 64 patterns");
        if (!BSON_ITER_HOLDS_UTF8(&arr))
            return corrupt(err, field, "is not a string");
        out->labels[n] = bson_iter_utf8(&arr, &out->label_len[n]);
        n++;
    }
    out->entry.nlabels = n;
    return SL_OK;
}

sl_status schema_catalog_entry_from_bson(const bson_t *doc, schema_catalog_doc *out, sl_error *err)
{
    sl_status rc = SL_OK;
    bson_iter_t it;
    int seen[F_N] = {0};
    const char *sk = NULL;
    memset(out, 0, sizeof *out);
    out->entry.labels = out->labels;
    out->entry.label_len = out->label_len;
    if (!bson_iter_init(&it, doc)) {
        rc = corrupt(err, "document", "is not BSON");
        goto out;
    }
    while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        int f = 0;
        while (f < F_N && strcmp(k, field_names[f]) != 0)
            f++;
        if (f == F_N) {
            /* The index pairs of a document are the store's business. */
            if (!strncmp(k, "gsi", 3))
                continue;
            rc = corrupt(err, k, "is no field of a catalog_tool");
            goto out;
        }
        if (seen[f]++) {
            rc = corrupt(err, k, "appears twice");
            goto out;
        }
        bool ok = true;
        switch (f) {
        case F_PK:
            ok = BSON_ITER_HOLDS_UTF8(&it);
            break;
        case F_SK:
            ok = BSON_ITER_HOLDS_UTF8(&it);
            sk = ok ? bson_iter_utf8(&it, NULL) : NULL;
            break;
        case F_V:
            ok = BSON_ITER_HOLDS_INT64(&it);
            out->entry.version = ok ? bson_iter_int64(&it) : 0;
            break;
        case F_TYPE:
            ok = BSON_ITER_HOLDS_UTF8(&it) &&
                 !strcmp(bson_iter_utf8(&it, NULL), SCHEMA_TYPE_CATALOG_TOOL);
            break;
        case F_SKU:
            ok = BSON_ITER_HOLDS_UTF8(&it);
            out->entry.sku = ok ? bson_iter_utf8(&it, NULL) : NULL;
            break;
        case F_NAME:
            ok = BSON_ITER_HOLDS_UTF8(&it);
            out->entry.name = ok ? bson_iter_utf8(&it, NULL) : NULL;
            break;
        case F_LABELS:
            if ((rc = decode_labels(&it, out, err)) != SL_OK)
                goto out;
            break;
        case F_COST:
            ok = BSON_ITER_HOLDS_INT64(&it);
            out->entry.unit_cost_cents = ok ? bson_iter_int64(&it) : 0;
            break;
        case F_SINGLE:
            ok = BSON_ITER_HOLDS_BOOL(&it);
            out->entry.single_use = ok && bson_iter_bool(&it);
            break;
        }
        if (!ok) {
            rc = corrupt(err, k,
                         f == F_TYPE ? "is not \"" SCHEMA_TYPE_CATALOG_TOOL "\""
                                     : "is of the wrong type");
            goto out;
        }
    }
    for (int f = F_TYPE; f < F_N; f++)
        if (!seen[f]) {
            rc = corrupt(err, field_names[f], "is missing");
            goto out;
        }
    /* The values, as a PUT checks them (a stored one that fails was never
     * written by this version's ingest). */
    sl_error e;
    sl_error_clear(&e);
    if (schema_catalog_entry_check(&out->entry, &e) != SL_OK) {
        rc = sl_error_set_at(err, SL_ECORRUPT, e.field, -1, "catalog_tool document: %s", e.message);
        goto out;
    }
    if (sk && (strncmp(sk, SCHEMA_SK_TOOL_PREFIX, strlen(SCHEMA_SK_TOOL_PREFIX)) != 0 ||
               strcmp(sk + strlen(SCHEMA_SK_TOOL_PREFIX), out->entry.sku) != 0)) {
        char k[64];
        shown(sk, strlen(sk), k);
        rc = sl_error_set_at(err, SL_ECORRUPT, SCHEMA_F_SKU, -1,
                             "catalog_tool document: sku \"%s\" disagrees with its key %s",
                             out->entry.sku, k);
    }
out:
    return rc;
}

/* ---------------------------------------------------------------------------
 * The compiled catalog.
 * ------------------------------------------------------------------------- */

/* One entry: the public view and its patterns, all in one block `mem`:
 * label pointers, compiled patterns, label lengths, then the strings. */
typedef struct centry {
    schema_catalog_entry e;
    pcre2_code **re;
    void *mem;
} centry;

struct schema_catalog {
    centry *v;
    size_t n, cap;
    bool sorted; /* every sku so far greater than the one before (bytewise) */
    pcre2_match_context *mctx;
};

sl_status schema_catalog_new(schema_catalog **out, sl_error *err)
{
    sl_status rc = SL_OK;
    schema_catalog *c = calloc(1, sizeof *c);
    if (c)
        c->mctx = pcre2_match_context_create(NULL);
    if (!c || !c->mctx) {
        free(c);
        rc = sl_error_set(err, SL_ENOMEM, "out of memory making a catalog");
        goto out;
    }
    pcre2_set_match_limit(c->mctx, SCHEMA_CATALOG_MATCH_LIMIT);
    c->sorted = true;
    *out = c;
out:
    return rc;
}

static void centry_free(centry *ce)
{
    for (uint32_t k = 0; ce->re && k < ce->e.nlabels; k++)
        pcre2_code_free(ce->re[k]);
    free(ce->mem);
}

void schema_catalog_free(schema_catalog **cp)
{
    if (!cp || !*cp)
        return;
    schema_catalog *c = *cp;
    for (size_t i = 0; i < c->n; i++)
        centry_free(&c->v[i]);
    free(c->v);
    pcre2_match_context_free(c->mctx);
    free(c);
    *cp = NULL;
}

size_t schema_catalog_size(const schema_catalog *c)
{
    return c ? c->n : 0;
}

const schema_catalog_entry *schema_catalog_at(const schema_catalog *c, size_t i)
{
    assert(c && i < c->n);
    return &c->v[i].e;
}

size_t schema_catalog_find(const schema_catalog *c, const char *sku)
{
    if (!c || !sku)
        return SCHEMA_CATALOG_NONE;
    if (c->sorted) {
        size_t lo = 0, hi = c->n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            int d = strcmp(c->v[mid].e.sku, sku);
            if (d == 0)
                return mid;
            if (d < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        return SCHEMA_CATALOG_NONE;
    }
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->v[i].e.sku, sku))
            return i;
    return SCHEMA_CATALOG_NONE;
}

/* Copies e into ce: one block holding the arrays and the strings. */
static sl_status centry_copy(centry *ce, const schema_catalog_entry *e, sl_error *err)
{
    size_t n = e->nlabels, slen = strlen(e->sku) + 1, nlen = strlen(e->name) + 1, plen = 0;
    for (size_t k = 0; k < n; k++)
        plen += e->label_len[k] + 1;
    size_t size =
        n * (sizeof(char *) + sizeof(pcre2_code *) + sizeof(uint32_t)) + slen + nlen + plen;
    char *mem = calloc(1, size);
    if (!mem)
        return sl_error_set(err, SL_ENOMEM, "out of memory compiling the catalog");
    const char **labels = (const char **)(void *)mem;
    pcre2_code **re = (pcre2_code **)(void *)(mem + n * sizeof(char *));
    uint32_t *lens = (uint32_t *)(void *)(mem + n * (sizeof(char *) + sizeof(pcre2_code *)));
    char *p = mem + n * (sizeof(char *) + sizeof(pcre2_code *) + sizeof(uint32_t));
    memset(ce, 0, sizeof *ce);
    ce->mem = mem;
    ce->re = re;
    ce->e = *e;
    ce->e.sku = memcpy(p, e->sku, slen);
    p += slen;
    ce->e.name = memcpy(p, e->name, nlen);
    p += nlen;
    for (size_t k = 0; k < n; k++) {
        memcpy(p, e->labels[k], e->label_len[k]);
        p[e->label_len[k]] = '\0';
        labels[k] = p;
        lens[k] = e->label_len[k];
        p += e->label_len[k] + 1;
    }
    ce->e.labels = labels;
    ce->e.label_len = lens;
    return SL_OK;
}

sl_status schema_catalog_add(schema_catalog *c, const schema_catalog_entry *e, sl_error *err)
{
    sl_status rc = SL_OK;
    centry ce = {0};
    if ((rc = schema_catalog_entry_check(e, err)) != SL_OK)
        goto out;
    /* The one bound every reader compiles within (schema.h). */
    if (c->n >= SCHEMA_CATALOG_ENTRIES_MAX) {
        rc = sl_error_set_at(err, SL_ETOOLARGE, SCHEMA_F_SKU, -1,
                             "a catalog holds at most %u entries (SCHEMA_CATALOG_ENTRIES_MAX); "
                             "\"%s\" would be one more",
                             SCHEMA_CATALOG_ENTRIES_MAX, e->sku);
        goto out;
    }
    /* After the last of a sorted catalog: new, and the catalog stays sorted. */
    bool after = c->n == 0 || strcmp(c->v[c->n - 1].e.sku, e->sku) < 0;
    if (!(c->sorted && after) && schema_catalog_find(c, e->sku) != SCHEMA_CATALOG_NONE) {
        rc = sl_error_set_at(err, SL_EINVAL, SCHEMA_F_SKU, -1, "sku \"%s\" is in the catalog twice",
                             e->sku);
        goto out;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        centry *v = realloc(c->v, cap * sizeof *v);
        if (!v) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory compiling the catalog");
            goto out;
        }
        c->v = v;
        c->cap = cap;
    }
    if ((rc = centry_copy(&ce, e, err)) != SL_OK)
        goto out;
    for (uint32_t k = 0; k < e->nlabels; k++) {
        int code;
        PCRE2_SIZE where;
        ce.re[k] = compile(ce.e.labels[k], ce.e.label_len[k], &code, &where);
        if (!ce.re[k]) {
            char field[32];
            snprintf(field, sizeof field, "%s[%u]", SCHEMA_F_CATALOG_LABELS, k);
            rc = compile_error(err, field, ce.e.labels[k], ce.e.label_len[k], code, where);
            goto out;
        }
        (void)pcre2_jit_compile(ce.re[k], PCRE2_JIT_COMPLETE); /* else the interpreter */
    }
    c->sorted = c->sorted && after;
    c->v[c->n++] = ce;
    ce.mem = NULL; /* the catalog's now */
out:
    if (ce.mem)
        centry_free(&ce);
    return rc;
}

sl_status schema_catalog_match(const schema_catalog *c, const char *label, size_t len,
                               size_t *index, sl_error *err)
{
    sl_status rc = SL_OK;
    size_t found = SCHEMA_CATALOG_NONE;
    pcre2_match_data *md = NULL;
    if ((rc = schema_utf8_check("label", label, len, err)) != SL_OK)
        goto out;
    if (!c || c->n == 0)
        goto done;
    if (!(md = pcre2_match_data_create(1, NULL))) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory matching a label");
        goto out;
    }
    for (size_t i = 0; found == SCHEMA_CATALOG_NONE && i < c->n; i++) {
        const centry *ce = &c->v[i];
        for (uint32_t k = 0; k < ce->e.nlabels; k++) {
            /* Checked once above: PCRE2 need not check it again per pattern. */
            int r =
                pcre2_match(ce->re[k], (PCRE2_SPTR)label, len, 0, PCRE2_NO_UTF_CHECK, md, c->mctx);
            if (r >= 0) {
                found = i;
                break;
            }
            if (r != PCRE2_ERROR_NOMATCH) {
                PCRE2_UCHAR msg[160];
                char l[64], field[32];
                if (pcre2_get_error_message(r, msg, sizeof msg) < 0)
                    snprintf((char *)msg, sizeof msg, "error %d", r);
                shown(label, len, l);
                snprintf(field, sizeof field, "%s[%u]", SCHEMA_F_CATALOG_LABELS, k);
                rc = sl_error_set_at(err, SL_EINVAL, field, -1,
                                     "catalog entry %s, label pattern %u could not be matched "
                                     "against label \"%s\": %s; simplify the pattern",
                                     ce->e.sku, k, l, (const char *)msg);
                goto out;
            }
        }
    }
done:
    *index = found;
out:
    pcre2_match_data_free(md);
    return rc;
}
