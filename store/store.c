/* store.c -- the adapter-independent half of the storage port: URI dispatch,
 * validation every adapter relies on (keys, documents, ranges, limits, names),
 * the stored-document layout (v last), page building and page tokens, and
 * store_write_batch on top of the batch calls.  Adapters live in store_*.c. */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A page stops early (with a next token) once it holds this many bytes, so a
 * page of 1000 documents of 4 MB cannot take 4 GB. */
#define PAGE_BYTES_MAX (16u << 20)

/* Version byte of the page-token layout; bump it when the layout changes. */
#define TOKEN_VERSION 1u

/* ---------------------------------------------------------------------------
 * Opening.
 * ------------------------------------------------------------------------- */

/* Splits "PATH?a=1&b=2" in buf (modified in place) into the path and params. */
static sl_status split_params(char *buf, store__param *params, size_t *nparams, sl_error *err)
{
    sl_status rc = SL_OK;
    size_t n = 0;
    char *q = strchr(buf, '?');
    if (!q)
        goto out;
    *q++ = '\0';
    for (char *save = NULL, *kv = strtok_r(q, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq || eq == kv) {
            rc = sl_error_set_at(err, SL_EINVAL, "uri", -1,
                                 "store URI parameter \"%.64s\" is not name=value", kv);
            goto out;
        }
        if (n == STORE__PARAMS_MAX) {
            rc = sl_error_set_at(err, SL_EINVAL, "uri", -1, "store URI has more than %d parameters",
                                 STORE__PARAMS_MAX);
            goto out;
        }
        *eq = '\0';
        params[n].name = kv;
        params[n].value = eq + 1;
        n++;
    }
out:
    if (rc == SL_OK)
        *nparams = n;
    return rc;
}

static int has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

sl_status store_open(const char *uri, const store_options *opt, store **out, sl_error *err)
{
    sl_status rc = SL_OK;
    char *buf = NULL;
    store *s = NULL;
    store__param params[STORE__PARAMS_MAX];
    size_t nparams = 0;
    store_options defaults = {.no_create = 0, .read_only = 0, .cache_bytes = 0};

    *out = NULL;
    if (!opt)
        opt = &defaults;
    if (!uri || !*uri) {
        rc = sl_error_set_at(err, SL_EINVAL, "uri", -1, "store URI is empty");
        goto out;
    }
    if (strlen(uri) > 4096) {
        rc = sl_error_set_at(err, SL_EINVAL, "uri", -1, "store URI is longer than 4096 bytes");
        goto out;
    }
    if (has_prefix(uri, "mongodb://") || has_prefix(uri, "mongodb+srv://")) {
        rc = sl_error_set_at(err, SL_EUNSUPPORTED, "uri", -1,
                             "the MongoDB store adapter is not available in this build yet; "
                             "use an embedded store (sqlite:PATH)");
        goto out;
    }
    const char *rest = uri;
    if (has_prefix(uri, "sqlite:")) {
        rest = uri + strlen("sqlite:");
        if (has_prefix(rest, "//"))
            rest += 2; /* sqlite:///abs/path and sqlite://rel/path */
    } else if (strstr(uri, "://")) {
        rc = sl_error_set_at(err, SL_EUNSUPPORTED, "uri", -1,
                             "unknown store URI scheme in \"%.64s\"; use sqlite:PATH", uri);
        goto out;
    }
    buf = strdup(rest);
    s = calloc(1, sizeof *s);
    if (!buf || !s) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory opening the store");
        goto out;
    }
    if (rest != uri) { /* only sqlite: URIs carry parameters; a bare path is taken as is */
        rc = split_params(buf, params, &nparams, err);
        if (rc != SL_OK)
            goto out;
    }
    if (!*buf) {
        rc = sl_error_set_at(err, SL_EINVAL, "uri", -1, "store URI \"%.64s\" names no file", uri);
        goto out;
    }
    s->vt = &store__sqlite_vtable;
    s->read_only = opt->read_only != 0;
    rc = store__sqlite_open(buf, params, nparams, opt, &s->impl, err);
out:
    free(buf);
    if (rc == SL_OK)
        *out = s;
    else
        free(s);
    return rc;
}

void store_close(store **s)
{
    if (s && *s) {
        (*s)->vt->close((*s)->impl);
        free(*s);
        *s = NULL;
    }
}

sl_status store_ping(store *s, sl_error *err)
{
    return s->vt->ping(s, err);
}

const char *store_backend(const store *s)
{
    return s->vt->name;
}

/* ---------------------------------------------------------------------------
 * Validation.
 * ------------------------------------------------------------------------- */

/* A key (pk, sk, gsi key, range bound, prefix): 0..STORE_KEY_MAX bytes of
 * valid UTF-8 without NUL.  empty_ok allows "". */
static sl_status key_check(const char *field, const char *v, size_t len, int empty_ok,
                           sl_error *err)
{
    sl_status rc = SL_OK;
    const char *nul = v && len <= STORE_KEY_MAX ? memchr(v, '\0', len) : NULL;
    if (!v)
        rc = sl_error_set_at(err, SL_EINVAL, field, -1, "%s is missing", field);
    else if (len == 0 && !empty_ok)
        rc = sl_error_set_at(err, SL_EINVAL, field, -1, "%s is empty", field);
    else if (len > STORE_KEY_MAX)
        rc = sl_error_set_at(err, SL_EINVAL, field, -1, "%s is %zu bytes; the limit is %u bytes",
                             field, len, STORE_KEY_MAX);
    else if (nul)
        rc = sl_error_set_at(err, SL_EINVAL, field, nul - v, "%s holds a NUL byte at byte %td",
                             field, nul - v);
    else if (!bson_utf8_validate(v, len, false))
        rc = sl_error_set_at(err, SL_EINVAL, field, -1, "%s is not valid UTF-8", field);
    return rc;
}

/* A NUL-terminated key; the length is bounded before strlen walks far. */
static sl_status key_check_z(const char *field, const char *v, int empty_ok, sl_error *err)
{
    size_t len = v ? strnlen(v, STORE_KEY_MAX + 1) : 0;
    return key_check(field, v, len, empty_ok, err);
}

static sl_status table_check(store_table t, sl_error *err)
{
    sl_status rc = SL_OK;
    if (t != STORE_ITEMS && t != STORE_AGGREGATES)
        rc = sl_error_set_at(err, SL_EINVAL, "table", -1,
                             "table %d is neither items nor aggregates", (int)t);
    return rc;
}

static sl_status cond_check(store_cond c, sl_error *err)
{
    sl_status rc = SL_OK;
    if (c.kind < STORE_COND_NONE || c.kind > STORE_COND_VERSION)
        rc = sl_error_set_at(err, SL_EINVAL, "cond", -1, "condition kind %d is unknown",
                             (int)c.kind);
    else if (c.kind == STORE_COND_VERSION && c.version < 1)
        rc = sl_error_set_at(err, SL_EINVAL, "cond", -1,
                             "version condition %lld is below 1, the first version",
                             (long long)c.version);
    return rc;
}

static sl_status writable_check(const store *s, sl_error *err)
{
    sl_status rc = SL_OK;
    if (s->read_only)
        rc = sl_error_set(err, SL_EINVAL, "this store handle is read-only (%s); writes are refused",
                          s->snapshot ? "a snapshot" : "opened read_only");
    return rc;
}

static sl_status consumer_check(const char *name, sl_error *err)
{
    sl_status rc = SL_OK;
    size_t len = name ? strnlen(name, STORE_CONSUMER_MAX) : 0;
    if (len == 0)
        rc = sl_error_set_at(err, SL_EINVAL, "consumer", -1, "consumer name is empty");
    else if (len >= STORE_CONSUMER_MAX)
        rc = sl_error_set_at(err, SL_EINVAL, "consumer", -1,
                             "consumer name is longer than %u bytes", STORE_CONSUMER_MAX - 1);
    for (size_t i = 0; rc == SL_OK && i < len; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            rc = sl_error_set_at(err, SL_EINVAL, "consumer", (int64_t)i,
                                 "consumer name holds control byte 0x%02x at byte %zu",
                                 (unsigned char)name[i], i);
    if (rc == SL_OK && !bson_utf8_validate(name, len, false))
        rc = sl_error_set_at(err, SL_EINVAL, "consumer", -1, "consumer name is not valid UTF-8");
    return rc;
}

static sl_status feed_token_check(const char *field, const char *tok, sl_error *err)
{
    sl_status rc = SL_OK;
    if (!tok)
        rc = sl_error_set_at(err, SL_EINVAL, field, -1, "%s is missing (use \"\" for none)", field);
    else if (strnlen(tok, STORE_TOKEN_MAX) >= STORE_TOKEN_MAX)
        rc = sl_error_set_at(err, SL_EINVAL, field, -1, "%s is longer than %u bytes", field,
                             STORE_TOKEN_MAX - 1);
    return rc;
}

/* ---------------------------------------------------------------------------
 * The stored layout: caller's fields (without v), then v, then the
 * terminator.  [len:4][fields...][0x12 'v' 0][int64][0]
 * ------------------------------------------------------------------------- */

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void store__blob_set_version(uint8_t *blob, uint32_t len, int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 0; i < 8; i++)
        blob[len - 9 + i] = (uint8_t)(u >> (8 * i));
}

int64_t store__blob_version(const uint8_t *blob, uint32_t len)
{
    int64_t v = -1;
    if (len >= 5 + STORE__V_TAIL - 1 && blob[len - 12] == BSON_TYPE_INT64 &&
        blob[len - 11] == 'v' && blob[len - 10] == 0 && blob[len - 1] == 0) {
        uint64_t u = 0;
        for (int i = 0; i < 8; i++)
            u |= (uint64_t)blob[len - 9 + i] << (8 * i);
        v = (int64_t)u;
    }
    return v;
}

int store__blob_same_content(const uint8_t *a, uint32_t alen, const uint8_t *b, uint32_t blen)
{
    /* everything but the 8 bytes of v and the terminator */
    return alen == blen && store__blob_version(a, alen) >= 0 && store__blob_version(b, blen) >= 0 &&
           memcmp(a, b, alen - 9) == 0;
}

void store__doc_free(store__doc *d)
{
    if (d) {
        free(d->blob);
        memset(d, 0, sizeof *d);
    }
}

/* Reads the string value of a key field into *out, refusing duplicates and
 * non-strings, and checking it as a key. */
static sl_status doc_key_field(const bson_iter_t *it, const char *name, const char **out,
                               sl_error *err)
{
    sl_status rc = SL_OK;
    uint32_t len = 0;
    const char *v = NULL;
    if (*out)
        rc = sl_error_set_at(err, SL_EINVAL, name, -1, "field %s appears twice in the document",
                             name);
    else if (!BSON_ITER_HOLDS_UTF8(it))
        rc = sl_error_set_at(err, SL_EINVAL, name, -1,
                             "field %s must be a string (it is BSON type 0x%02x)", name,
                             (unsigned)bson_iter_type(it));
    else
        v = bson_iter_utf8(it, &len);
    if (rc == SL_OK)
        rc = key_check(name, v, len, 0, err);
    if (rc == SL_OK)
        *out = v;
    return rc;
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Bytes of an element's value when fixed by its type, else 0. */
static uint32_t fixed_size(uint8_t type)
{
    switch (type) {
    case BSON_TYPE_DOUBLE:
    case BSON_TYPE_DATE_TIME:
    case BSON_TYPE_INT64:
        return 8;
    case BSON_TYPE_INT32:
        return 4;
    default:
        return 0;
    }
}

/* Depth of nesting that raw_plain() follows; deeper documents go to libbson. */
#define PLAIN_DEPTH_MAX 16

/* 1 when the len bytes at p are a BSON document that bson_validate() with
 * BSON_VALIDATE_NONE certainly accepts; 0 when unsure.  It accepts only a
 * plain subset, checked at least as strictly as libbson does: ASCII keys;
 * doubles, int32, int64, dates, booleans (0 or 1), nulls, strings (length
 * including their NUL), binaries other than the old subtype 2, and embedded
 * documents and arrays of the same.  Anything else (other types, non-ASCII
 * keys, deep nesting, any inconsistency) is left to bson_validate(), which
 * gives the verdict and the offset.  The reason: bson_validate() checks
 * every key as UTF-8 through a visitor, about 12 ns an element, which was a
 * sixth of a listener commit (aggregates hold 300 int64 histogram bins). */
static int raw_plain(const uint8_t *p, uint32_t len, int depth)
{
    int ok = depth < PLAIN_DEPTH_MAX && len >= 5 && get_le32(p) == len && p[len - 1] == 0;
    uint32_t at = 4;
    while (ok && at < len - 1) {
        uint8_t type = p[at++];
        while (at < len - 1 && p[at] != 0 && p[at] < 0x80)
            at++;
        ok = at < len - 1 && p[at] == 0;
        at++; /* past the key's NUL */
        uint32_t room = len - 1 - at, n = fixed_size(type);
        if (!ok) {
        } else if (n) {
            ok = n <= room;
        } else if (type == BSON_TYPE_BOOL) {
            n = 1;
            ok = room >= 1 && p[at] <= 1;
        } else if (type == BSON_TYPE_NULL) {
            n = 0;
        } else if (type == BSON_TYPE_UTF8) {
            ok = room >= 5;
            uint32_t l = ok ? get_le32(p + at) : 0;
            ok = ok && l >= 1 && l <= room - 4 && p[at + 4 + l - 1] == 0;
            n = 4 + l;
        } else if (type == BSON_TYPE_BINARY) {
            ok = room >= 5;
            uint32_t l = ok ? get_le32(p + at) : 0;
            ok = ok && l <= room - 5 && p[at + 4] != BSON_SUBTYPE_BINARY_DEPRECATED;
            n = 5 + l;
        } else if (type == BSON_TYPE_DOCUMENT || type == BSON_TYPE_ARRAY) {
            ok = room >= 5;
            n = ok ? get_le32(p + at) : 0;
            ok = ok && n <= room && raw_plain(p + at, n, depth + 1);
        } else {
            ok = 0;
        }
        at += n;
    }
    return ok && at == len - 1;
}

/* Nesting that doc_readable() follows; deeper documents are refused. */
#define READ_DEPTH_MAX 100

/* 0 when every element of the len bytes at p, at every depth, can be read
 * with bson_iter and has a UTF-8 key; else 1 with *at the offset from base of the first that
 * cannot, or 2 when nested deeper than READ_DEPTH_MAX.  Needed beside
 * bson_validate(), which passes documents whose iteration stops early (an
 * element of an unknown type ends it silently; found by fuzz_bson_check),
 * on which bson_copy_to_excluding() aborts and readers would see half, and
 * keys that are not UTF-8, which bson_iter_visit_all() and JSON refuse. */
static int doc_readable(const uint8_t *base, const uint8_t *p, uint32_t len, int depth, size_t *at)
{
    bson_t d;
    bson_iter_t it;
    int rc = 0;
    if (depth > READ_DEPTH_MAX)
        return 2;
    if (!bson_init_static(&d, p, len) || !bson_iter_init(&it, &d)) {
        *at = (size_t)(p - base);
        return 1;
    }
    while (!rc && bson_iter_next(&it)) {
        uint32_t n = 0, code_len = 0;
        const uint8_t *q = NULL;
        if (!bson_utf8_validate(bson_iter_key(&it), bson_iter_key_len(&it), false)) {
            *at = (size_t)(p - base) + bson_iter_offset(&it);
            rc = 1;
            break;
        }
        if (BSON_ITER_HOLDS_DOCUMENT(&it))
            bson_iter_document(&it, &n, &q);
        else if (BSON_ITER_HOLDS_ARRAY(&it))
            bson_iter_array(&it, &n, &q);
        else if (BSON_ITER_HOLDS_CODEWSCOPE(&it))
            (void)bson_iter_codewscope(&it, &code_len, &n, &q);
        else
            continue;
        rc = q ? doc_readable(base, q, n, depth + 1, at) : 1;
        if (rc == 1 && !q)
            *at = (size_t)(p - base) + bson_iter_offset(&it);
    }
    if (!rc && it.err_off) {
        *at = (size_t)(p - base) + it.err_off;
        rc = 1;
    }
    return rc;
}

sl_status store__doc_make(const bson_t *doc, const char *field, store__doc *d, sl_error *err)
{
    sl_status rc = SL_OK;
    store__doc r = {0};
    bson_t stripped = BSON_INITIALIZER;
    int has_v = 0;
    bson_iter_t it;
    size_t bad = 0;

    memset(d, 0, sizeof *d);
    if (!doc) {
        rc = sl_error_set_at(err, SL_EINVAL, field, -1, "%s is missing", field);
        goto out;
    }
    if (doc->len > STORE_DOC_MAX) {
        rc = sl_error_set_at(err, SL_ETOOLARGE, field, -1, "%s is %u bytes; the limit is %u bytes",
                             field, doc->len, STORE_DOC_MAX);
        goto out;
    }
    int unreadable = 0;
    if (!raw_plain(bson_get_data(doc), doc->len, 0) &&
        (!bson_validate(doc, BSON_VALIDATE_NONE, &bad) ||
         (unreadable = doc_readable(bson_get_data(doc), bson_get_data(doc), doc->len, 0, &bad)))) {
        if (unreadable == 2)
            rc = sl_error_set_at(err, SL_EINVAL, field, -1,
                                 "%s is not well-formed BSON (nested deeper than %d levels)", field,
                                 READ_DEPTH_MAX);
        else
            rc = sl_error_set_at(err, SL_EINVAL, field, (int64_t)bad,
                                 "%s is not well-formed BSON (at byte %zu)", field, bad);
        goto out;
    }
    if (!bson_iter_init(&it, doc)) {
        rc = sl_error_set_at(err, SL_EINVAL, field, 0, "%s is not well-formed BSON (at byte 0)",
                             field);
        goto out;
    }
    while (rc == SL_OK && bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        if (k[0] == 'v' && k[1] == '\0')
            has_v = 1;
        else if (strcmp(k, SCHEMA_F_PK) == 0)
            rc = doc_key_field(&it, SCHEMA_F_PK, &r.pk, err);
        else if (strcmp(k, SCHEMA_F_SK) == 0)
            rc = doc_key_field(&it, SCHEMA_F_SK, &r.sk, err);
        else if (strcmp(k, SCHEMA_F_GSI1PK) == 0)
            rc = doc_key_field(&it, SCHEMA_F_GSI1PK, &r.gsi_pk[0], err);
        else if (strcmp(k, SCHEMA_F_GSI1SK) == 0)
            rc = doc_key_field(&it, SCHEMA_F_GSI1SK, &r.gsi_sk[0], err);
        else if (strcmp(k, SCHEMA_F_GSI2PK) == 0)
            rc = doc_key_field(&it, SCHEMA_F_GSI2PK, &r.gsi_pk[1], err);
        else if (strcmp(k, SCHEMA_F_GSI2SK) == 0)
            rc = doc_key_field(&it, SCHEMA_F_GSI2SK, &r.gsi_sk[1], err);
    }
    if (rc != SL_OK)
        goto out;
    if (!r.pk || !r.sk) {
        const char *f = r.pk ? SCHEMA_F_SK : SCHEMA_F_PK;
        rc = sl_error_set_at(err, SL_EINVAL, f, -1, "%s has no string field %s", field, f);
        goto out;
    }
    for (int i = 0; i < 2; i++) {
        if (!r.gsi_pk[i] != !r.gsi_sk[i]) {
            const char *f = r.gsi_pk[i] ? (i ? SCHEMA_F_GSI2SK : SCHEMA_F_GSI1SK)
                                        : (i ? SCHEMA_F_GSI2PK : SCHEMA_F_GSI1PK);
            rc = sl_error_set_at(err, SL_EINVAL, f, -1,
                                 "%s has gsi%dpk/gsi%dsk only in part: %s is missing", field, i + 1,
                                 i + 1, f);
            goto out;
        }
    }

    const uint8_t *src = bson_get_data(doc);
    uint32_t src_len = doc->len;
    if (has_v) { /* rare: the caller sent a v; drop it, the store owns it */
        bson_copy_to_excluding_noinit(doc, &stripped, SCHEMA_F_VERSION, NULL);
        src = bson_get_data(&stripped);
        src_len = stripped.len;
    }
    r.blob_len = src_len + STORE__V_TAIL - 1;
    r.blob = malloc(r.blob_len);
    if (!r.blob) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory copying a %u-byte document", src_len);
        goto out;
    }
    memcpy(r.blob, src, src_len - 1);
    uint8_t *tail = r.blob + src_len - 1;
    tail[0] = BSON_TYPE_INT64;
    tail[1] = 'v';
    tail[2] = '\0';
    tail[11] = '\0';
    put_le32(r.blob, r.blob_len);
    store__blob_set_version(r.blob, r.blob_len, 1);
out:
    bson_destroy(&stripped);
    if (rc == SL_OK)
        *d = r;
    else
        free(r.blob);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Single documents and batches.
 * ------------------------------------------------------------------------- */

/* The arguments that name one document: a table and a (pk, sk) key. */
static sl_status doc_key_check(store_table t, const char *pk, const char *sk, sl_error *err)
{
    sl_status rc = table_check(t, err);
    if (rc == SL_OK)
        rc = key_check_z(SCHEMA_F_PK, pk, 0, err);
    if (rc == SL_OK)
        rc = key_check_z(SCHEMA_F_SK, sk, 0, err);
    return rc;
}

sl_status store_get(store *s, store_table t, const char *pk, const char *sk, bson_t **out,
                    sl_error *err)
{
    sl_status rc = doc_key_check(t, pk, sk, err);
    if (rc == SL_OK)
        rc = s->vt->get(s, t, pk, sk, out, err);
    return rc;
}

sl_status store_batch_begin(store *s, store_batch **out, sl_error *err)
{
    sl_status rc = SL_OK;
    store_batch *b = NULL;

    *out = NULL;
    rc = writable_check(s, err);
    if (rc != SL_OK)
        goto out;
    b = calloc(1, sizeof *b);
    if (!b) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory starting a batch");
        goto out;
    }
    b->st = s;
    rc = s->vt->batch_begin(s, &b->impl, err);
out:
    if (rc == SL_OK)
        *out = b;
    else
        free(b);
    return rc;
}

static sl_status batch_refuse_if_broken(const store_batch *b, sl_error *err)
{
    sl_status rc = SL_OK;
    if (b->broken)
        rc = sl_error_set(err, SL_EINVAL,
                          "an earlier operation of this batch failed; the batch can only be "
                          "aborted");
    return rc;
}

/* Any failure breaks the batch ("after any error the batch can only be
 * aborted"): an adapter may have applied part of the failed operation. */
static sl_status batch_mark(store_batch *b, sl_status rc)
{
    if (rc != SL_OK)
        b->broken = 1;
    return rc;
}

sl_status store_batch_put(store_batch *b, store_table t, const bson_t *doc, store_cond cond,
                          store_put_result *res, sl_error *err)
{
    store__doc d = {0};
    store_put_result r = {0};
    sl_status rc = batch_refuse_if_broken(b, err);
    if (rc == SL_OK)
        rc = table_check(t, err);
    if (rc == SL_OK)
        rc = cond_check(cond, err);
    if (rc == SL_OK)
        rc = store__doc_make(doc, "doc", &d, err);
    if (rc == SL_OK)
        rc = b->st->vt->batch_put(b->impl, t, &d, cond, &r, err);
    store__doc_free(&d);
    if (rc == SL_OK && res)
        *res = r;
    return batch_mark(b, rc);
}

sl_status store_batch_delete(store_batch *b, store_table t, const char *pk, const char *sk,
                             store_cond cond, int *deleted, sl_error *err)
{
    int del = 0;
    sl_status rc = batch_refuse_if_broken(b, err);
    if (rc == SL_OK)
        rc = cond_check(cond, err);
    if (rc == SL_OK)
        rc = doc_key_check(t, pk, sk, err);
    if (rc == SL_OK)
        rc = b->st->vt->batch_delete(b->impl, t, pk, sk, cond, &del, err);
    if (rc == SL_OK && deleted)
        *deleted = del;
    return batch_mark(b, rc);
}

sl_status store_batch_check(store_batch *b, store_table t, const char *pk, const char *sk,
                            store_cond cond, sl_error *err)
{
    sl_status rc = batch_refuse_if_broken(b, err);
    if (rc == SL_OK)
        rc = cond_check(cond, err);
    if (rc == SL_OK)
        rc = doc_key_check(t, pk, sk, err);
    if (rc == SL_OK)
        rc = b->st->vt->batch_check(b->impl, t, pk, sk, cond, err);
    return batch_mark(b, rc);
}

sl_status store_batch_commit(store_batch **b, sl_error *err)
{
    sl_status rc = SL_OK;
    store_batch *x = b ? *b : NULL;
    if (!x) {
        rc = sl_error_set(err, SL_EINVAL, "no batch to commit");
        goto out;
    }
    *b = NULL;
    if (x->broken) {
        x->st->vt->batch_abort(x->impl);
        rc = sl_error_set(err, SL_EINVAL,
                          "an operation of this batch failed; nothing of it was stored");
    } else {
        rc = x->st->vt->batch_commit(x->impl, err);
    }
    free(x);
out:
    return rc;
}

void store_batch_abort(store_batch **b)
{
    if (b && *b) {
        (*b)->st->vt->batch_abort((*b)->impl);
        free(*b);
        *b = NULL;
    }
}

/* Runs one operation inside batch b; on failure err names "ops[i]". */
static sl_status apply_op(store_batch *b, store_op *op, size_t i, sl_error *err)
{
    sl_error e;
    sl_error_clear(&e);
    sl_status rc = SL_OK;
    switch (op->kind) {
    case STORE_OP_PUT:
        rc = store_batch_put(b, op->table, op->doc, op->cond, &op->result, &e);
        break;
    case STORE_OP_DELETE:
        rc = store_batch_delete(b, op->table, op->pk, op->sk, op->cond, NULL, &e);
        break;
    case STORE_OP_CHECK:
        rc = store_batch_check(b, op->table, op->pk, op->sk, op->cond, &e);
        break;
    default:
        rc = sl_error_set(&e, SL_EINVAL, "operation kind %d is unknown", (int)op->kind);
        b->broken = 1;
        break;
    }
    if (rc != SL_OK) {
        char field[sizeof e.field];
        snprintf(field, sizeof field, "ops[%zu]%s%.120s", i, e.field[0] ? "." : "", e.field);
        sl_error_set_at(err, rc, field, e.offset, "ops[%zu]: %s", i, e.message);
    }
    return rc;
}

sl_status store_write_batch(store *s, store_op *ops, size_t n, sl_error *err)
{
    store_batch *b = NULL;
    sl_status rc = SL_OK;
    if (n > 0 && !ops)
        rc = sl_error_set_at(err, SL_EINVAL, "ops", -1, "ops is NULL with n = %zu", n);
    if (rc == SL_OK)
        rc = store_batch_begin(s, &b, err);
    for (size_t i = 0; rc == SL_OK && i < n; i++)
        rc = apply_op(b, &ops[i], i, err);
    if (rc == SL_OK)
        rc = store_batch_commit(&b, err);
    store_batch_abort(&b);
    return rc;
}

sl_status store_put(store *s, store_table t, const bson_t *doc, store_cond cond,
                    store_put_result *res, sl_error *err)
{
    store_batch *b = NULL;
    store_put_result r = {0};
    sl_status rc = store_batch_begin(s, &b, err);
    if (rc == SL_OK)
        rc = store_batch_put(b, t, doc, cond, &r, err);
    if (rc == SL_OK)
        rc = store_batch_commit(&b, err);
    store_batch_abort(&b);
    if (rc == SL_OK && res)
        *res = r;
    return rc;
}

sl_status store_delete(store *s, store_table t, const char *pk, const char *sk, store_cond cond,
                       int *deleted, sl_error *err)
{
    store_batch *b = NULL;
    int del = 0;
    sl_status rc = store_batch_begin(s, &b, err);
    if (rc == SL_OK)
        rc = store_batch_delete(b, t, pk, sk, cond, &del, err);
    if (rc == SL_OK)
        rc = store_batch_commit(&b, err);
    store_batch_abort(&b);
    if (rc == SL_OK && deleted)
        *deleted = del;
    return rc;
}

/* ---------------------------------------------------------------------------
 * Pages.  Documents and their row keys are copied into one growing buffer;
 * offsets are kept while it grows and turned into pointers when the page is
 * finished.
 * ------------------------------------------------------------------------- */
#define NO_OFFSET SIZE_MAX

typedef struct page_arena {
    uint8_t *buf;
    size_t len, cap;
    size_t *offs; /* per document: data, pk, sk, gsk (NO_OFFSET: none) */
    size_t nalloc;
    const char **gsk; /* per document, after page_finish: the index sort key or NULL */
} page_arena;

void store_page_free(store_page *page)
{
    page_arena *a = page ? page->arena_ : NULL;
    if (a) {
        free(a->buf);
        free(a->offs);
        free(a->gsk);
        free(a);
    }
    if (page) {
        free(page->docs);
        free(page->next_token);
        memset(page, 0, sizeof *page);
    }
}

int store_page_view(const store_page *page, size_t i, bson_t *view)
{
    return page && i < page->count && bson_init_static(view, page->docs[i].data, page->docs[i].len);
}

/* Appends len bytes (a string with its NUL when s is a string) to the arena;
 * its offset into *off.  0 when out of memory. */
static int arena_put(page_arena *a, const void *p, size_t len, size_t *off)
{
    if (a->len + len > a->cap) {
        size_t cap = a->cap ? a->cap : 4096;
        while (cap < a->len + len)
            cap *= 2;
        uint8_t *buf = realloc(a->buf, cap);
        if (!buf)
            return 0;
        a->buf = buf;
        a->cap = cap;
    }
    memcpy(a->buf + a->len, p, len);
    *off = a->len;
    a->len += len;
    return 1;
}

sl_status store__page_add(store_page *page, const uint8_t *data, uint32_t len,
                          const store__row *row, sl_error *err)
{
    sl_status rc = SL_OK;
    page_arena *a = page->arena_;
    if (!a && !(a = page->arena_ = calloc(1, sizeof *a))) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory building a page");
        goto out;
    }
    if (page->count == a->nalloc) {
        size_t n = a->nalloc ? 2 * a->nalloc : 16;
        size_t *offs = realloc(a->offs, 4 * n * sizeof *offs);
        store_doc *docs = offs ? realloc(page->docs, n * sizeof *docs) : NULL;
        if (offs)
            a->offs = offs;
        if (docs)
            page->docs = docs;
        if (!docs) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory building a page");
            goto out;
        }
        a->nalloc = n;
    }
    size_t *o = &a->offs[4 * page->count];
    o[3] = NO_OFFSET;
    if (!arena_put(a, data, len, &o[0]) || !arena_put(a, row->pk, strlen(row->pk) + 1, &o[1]) ||
        !arena_put(a, row->sk, strlen(row->sk) + 1, &o[2]) ||
        (row->gsk && !arena_put(a, row->gsk, strlen(row->gsk) + 1, &o[3]))) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory building a page of %zu bytes",
                          a->len + len);
        goto out;
    }
    page->docs[page->count] = (store_doc){.len = len, .version = row->version};
    page->count++;
out:
    return rc;
}

int store__page_full(const store_page *page)
{
    const page_arena *a = page->arena_;
    return a && a->len >= PAGE_BYTES_MAX;
}

/* Turns the arena's offsets into pointers.  0 when out of memory. */
static int page_finish(store_page *page)
{
    page_arena *a = page->arena_;
    if (!a)
        return 1;
    if (!(a->gsk = calloc(page->count ? page->count : 1, sizeof *a->gsk)))
        return 0;
    for (size_t i = 0; i < page->count; i++) {
        const size_t *o = &a->offs[4 * i];
        page->docs[i].data = a->buf + o[0];
        page->docs[i].pk = (const char *)a->buf + o[1];
        page->docs[i].sk = (const char *)a->buf + o[2];
        a->gsk[i] = o[3] == NO_OFFSET ? NULL : (const char *)a->buf + o[3];
    }
    return 1;
}

/* ---------------------------------------------------------------------------
 * Page tokens.  Layout before base64url: version, flags (kind, order, table,
 * index), the position (one length-prefixed string per ordering column) and
 * an FNV-1a-64 over the query's parameters and all of the above.  The hash
 * binds the token to its query and catches damage; it is not a secret (a
 * crafted token can only name another position inside the same range, which
 * store.c checks), so the api layer may seal tokens if it wants them opaque.
 * ------------------------------------------------------------------------- */
#define TOKEN_RAW_MAX ((STORE_PAGE_TOKEN_MAX - 1) / 4 * 3)

/* Version, flags, three length-prefixed keys and the hash must fit. */
_Static_assert(2 + 3 * (2 + STORE_KEY_MAX) + 8 <= TOKEN_RAW_MAX,
               "STORE_PAGE_TOKEN_MAX is too small for an index position of maximal keys");

typedef struct hash64 {
    uint64_t h;
} hash64;

static void hash_bytes(hash64 *h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h->h ^= b[i];
        h->h *= 0x100000001b3ull;
    }
}

/* Hashes a string with its length, so ("ab","c") and ("a","bc") differ. */
static void hash_str(hash64 *h, const char *s)
{
    uint32_t n = s ? (uint32_t)strlen(s) : 0xffffffffu;
    hash_bytes(h, &n, sizeof n);
    if (s)
        hash_bytes(h, s, n);
}

/* The binding: everything that makes two queries different, except the
 * limit (a client may change its page size between pages). */
static hash64 token_binding(const store__query *q, store_range_kind range)
{
    hash64 h = {0xcbf29ce484222325ull};
    uint8_t fixed[5] = {TOKEN_VERSION, (uint8_t)q->kind, (uint8_t)q->table, (uint8_t)q->index,
                        (uint8_t)range};
    hash_bytes(&h, fixed, sizeof fixed);
    hash_bytes(&h, &q->descending, sizeof q->descending);
    hash_str(&h, q->key);
    hash_str(&h, q->lo);
    hash_str(&h, q->hi);
    return h;
}

static uint8_t token_flags(const store__query *q)
{
    return (uint8_t)(q->kind | (q->descending ? 4 : 0) | (q->table << 3) | (q->index << 4));
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t b64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = b64url[(v >> 18) & 63];
        out[o++] = b64url[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = b64url[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = b64url[v & 63];
    }
    out[o] = '\0';
    return o;
}

/* Decodes unpadded base64url; -1 on a bad character or length. */
static long b64_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
    long o = n % 4 == 1 ? -1 : 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; o >= 0 && i < n; i++) {
        const char *p = in[i] ? memchr(b64url, in[i], 64) : NULL;
        if (!p) {
            o = -1;
            break;
        }
        acc = (acc << 6) | (uint32_t)(p - b64url);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if ((size_t)o == cap)
                o = -1;
            else
                out[o++] = (uint8_t)(acc >> bits);
        }
    }
    if (o >= 0 && (acc & ((1u << bits) - 1))) /* non-canonical trailing bits */
        o = -1;
    return o;
}

/* Encodes the position of the last document of a page into a new token. */
static sl_status token_encode(const store__query *q, store_range_kind range, const char **pos,
                              int npos, char **out, sl_error *err)
{
    uint8_t raw[TOKEN_RAW_MAX];
    size_t n = 0;
    sl_status rc = SL_OK;
    char *tok = NULL;

    raw[n++] = TOKEN_VERSION;
    raw[n++] = token_flags(q);
    for (int i = 0; i < npos; i++) {
        size_t len = strlen(pos[i]);
        if (len > STORE_KEY_MAX || n + 2 + len + 8 > sizeof raw) { /* keys were checked on write */
            rc = sl_error_set(err, SL_ECORRUPT,
                              "the last document of this page has a %zu-byte key, above the "
                              "limit of %u bytes",
                              len, STORE_KEY_MAX);
            goto out;
        }
        raw[n++] = (uint8_t)(len >> 8);
        raw[n++] = (uint8_t)len;
        memcpy(raw + n, pos[i], len);
        n += len;
    }
    hash64 h = token_binding(q, range);
    hash_bytes(&h, raw, n);
    for (int i = 0; i < 8; i++)
        raw[n++] = (uint8_t)(h.h >> (8 * i));
    tok = malloc(STORE_PAGE_TOKEN_MAX);
    if (!tok) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory making a page token");
        goto out;
    }
    b64_encode(raw, n, tok);
out:
    if (rc == SL_OK)
        *out = tok;
    return rc;
}

/* A decoded position: npos NUL-terminated strings. */
typedef struct token_pos {
    char s[3][STORE_KEY_MAX + 1];
} token_pos;

static sl_status token_bad(sl_error *err, const char *why)
{
    return sl_error_set_at(err, SL_EINVAL, "page_token", -1,
                           "page token is not valid for this query (%s); start again without one",
                           why);
}

/* 1 when key lies inside the query's range on the first ordering column. */
static int in_range(const store__query *q, const char *key)
{
    return !(q->lo_op == STORE__LO_GE && strcmp(key, q->lo) < 0) &&
           !(q->hi_op == STORE__HI_LT && strcmp(key, q->hi) >= 0) &&
           !(q->hi_op == STORE__HI_LE && strcmp(key, q->hi) > 0);
}

static sl_status token_decode(const store__query *q, store_range_kind range, const char *tok,
                              int npos, token_pos *p, sl_error *err)
{
    uint8_t raw[TOKEN_RAW_MAX + 3];
    const char *why = NULL;
    size_t len = strnlen(tok, STORE_PAGE_TOKEN_MAX);
    long n = len < STORE_PAGE_TOKEN_MAX ? b64_decode(tok, len, raw, sizeof raw) : -1;
    hash64 h = token_binding(q, range);
    if (len >= STORE_PAGE_TOKEN_MAX)
        why = "too long";
    else if (n < 2 + 8)
        why = "not a page token";
    else if (raw[0] != TOKEN_VERSION)
        why = "unknown version";
    else if (raw[1] != token_flags(q))
        why = "made by another kind of query, table, index or order";
    if (!why) {
        hash_bytes(&h, raw, (size_t)n - 8);
        for (int i = 0; i < 8; i++)
            if (raw[n - 8 + i] != (uint8_t)(h.h >> (8 * i)))
                why = "damaged, or made by a query with another key or range";
    }
    size_t at = 2, end = why ? 0 : (size_t)n - 8;
    for (int i = 0; !why && i < npos; i++) {
        size_t l = at + 2 <= end ? (size_t)raw[at] << 8 | raw[at + 1] : 0;
        if (at + 2 > end)
            why = "truncated position";
        else if (l > STORE_KEY_MAX || at + 2 + l > end)
            why = "position out of bounds";
        if (why)
            break;
        at += 2;
        memcpy(p->s[i], raw + at, l);
        p->s[i][l] = '\0';
        if (memchr(p->s[i], '\0', l) || !bson_utf8_validate(p->s[i], l, false))
            why = "position is not a key";
        at += l;
    }
    if (!why && at != end)
        why = "trailing bytes";
    if (!why && !in_range(q, p->s[0]))
        why = "position outside the query's range";
    return why ? token_bad(err, why) : SL_OK;
}

/* ---------------------------------------------------------------------------
 * Queries.
 * ------------------------------------------------------------------------- */

/* The smallest string greater than every string that starts with prefix:
 * the prefix with its last byte below 0xff incremented and the rest cut.
 * Returns 0 when there is none (empty prefix or only 0xff bytes). */
static int successor(const char *prefix, char *out)
{
    size_t n = strlen(prefix);
    while (n > 0 && (unsigned char)prefix[n - 1] == 0xff)
        n--;
    if (n > 0) {
        memcpy(out, prefix, n);
        out[n - 1] = (char)((unsigned char)out[n - 1] + 1);
        out[n] = '\0';
    }
    return n > 0;
}

/* Fills the range part of q from r; succ receives begins_with's upper bound. */
static sl_status range_apply(const store_range *r, store__query *q, char *succ, sl_error *err)
{
    sl_status rc = SL_OK;
    switch (r->kind) {
    case STORE_RANGE_ALL:
        break;
    case STORE_RANGE_BEGINS_WITH:
        rc = key_check_z("range.lo", r->lo, 1, err);
        if (rc != SL_OK)
            break;
        if (r->lo[0]) {
            q->lo_op = STORE__LO_GE;
            q->lo = r->lo;
        }
        if (successor(r->lo, succ)) {
            q->hi_op = STORE__HI_LT;
            q->hi = succ;
        }
        break;
    case STORE_RANGE_BETWEEN:
        rc = key_check_z("range.lo", r->lo, 1, err);
        if (rc == SL_OK)
            rc = key_check_z("range.hi", r->hi, 1, err);
        q->lo_op = STORE__LO_GE;
        q->lo = r->lo;
        q->hi_op = STORE__HI_LE;
        q->hi = r->hi;
        break;
    case STORE_RANGE_GE:
        rc = key_check_z("range.lo", r->lo, 1, err);
        q->lo_op = STORE__LO_GE;
        q->lo = r->lo;
        break;
    case STORE_RANGE_LE:
        rc = key_check_z("range.hi", r->hi, 1, err);
        q->hi_op = STORE__HI_LE;
        q->hi = r->hi;
        break;
    default:
        rc = sl_error_set_at(err, SL_EINVAL, "range.kind", -1, "range kind %d is unknown",
                             (int)r->kind);
    }
    return rc;
}

/* The ordering columns of a page's document i (its last one): the row's
 * keys as the adapter read them, never the document's bytes, which may be
 * damaged (not BSON, or naming another key). */
static sl_status doc_position(const store__query *q, const store_page *page, size_t i,
                              const char **pos, sl_error *err)
{
    sl_status rc = SL_OK;
    const page_arena *a = page->arena_;
    const store_doc *d = &page->docs[i];
    int n = 0;
    if (q->kind == STORE__Q_INDEX) {
        if (!a->gsk[i])
            rc = sl_error_set(err, SL_EINTERNAL, "an index page row has no index sort key");
        pos[n++] = a->gsk[i];
        pos[n++] = d->pk;
        pos[n++] = d->sk;
    } else if (q->kind == STORE__Q_PARTITION) {
        pos[n++] = d->sk;
    } else {
        pos[n++] = d->pk;
        pos[n++] = d->sk;
    }
    return rc;
}

static int npos_of(store__qkind k)
{
    return k == STORE__Q_PARTITION ? 1 : k == STORE__Q_INDEX ? 3 : 2;
}

/* The common body of store_query_opts, store_query_index and store_scan. */
static sl_status run_query(store *s, store__query *q, const store_query_opts *in, store_page *page,
                           sl_error *err)
{
    sl_status rc = SL_OK;
    store_page p = {0};
    token_pos *tp = NULL;
    char *succ = NULL;
    int more = 0;

    memset(page, 0, sizeof *page);
    if (!in) {
        rc = sl_error_set_at(err, SL_EINVAL, "query", -1, "query is missing");
        goto out;
    }
    rc = table_check(q->table, err);
    if (rc != SL_OK)
        goto out;
    if (in->limit > STORE_PAGE_MAX) {
        rc = sl_error_set_at(err, SL_EINVAL, "limit", -1, "limit %zu is above the maximum of %u",
                             in->limit, STORE_PAGE_MAX);
        goto out;
    }
    q->limit = in->limit ? in->limit : STORE_PAGE_DEFAULT;
    q->descending = in->descending != 0;
    succ = malloc(STORE_KEY_MAX + 1);
    tp = malloc(sizeof *tp);
    if (!succ || !tp) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory running a query");
        goto out;
    }
    store_range_kind rk = in->range.kind;
    if (q->kind == STORE__Q_SCAN) {
        if (rk != STORE_RANGE_ALL) {
            rc = sl_error_set_at(err, SL_EINVAL, "range.kind", -1,
                                 "a scan takes no sort-key range (range kind must be ALL)");
            goto out;
        }
        store_range prefix = {STORE_RANGE_BEGINS_WITH, q->key, NULL};
        rc = key_check_z("pk_prefix", q->key, 1, err);
        if (rc == SL_OK)
            rc = range_apply(&prefix, q, succ, err);
        q->key = NULL;
        rk = STORE_RANGE_BEGINS_WITH; /* what the token binds to */
    } else {
        rc = range_apply(&in->range, q, succ, err);
    }
    if (rc != SL_OK)
        goto out;
    if (in->page_token && in->page_token[0]) {
        int npos = npos_of(q->kind);
        rc = token_decode(q, rk, in->page_token, npos, tp, err);
        if (rc != SL_OK)
            goto out;
        q->npos = npos;
        for (int i = 0; i < npos; i++)
            q->pos[i] = tp->s[i];
    }
    rc = s->vt->query(s, q, &p, &more, err);
    if (rc != SL_OK)
        goto out;
    if (!page_finish(&p)) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory finishing a page");
        goto out;
    }
    if (more && p.count > 0) {
        const char *pos[3];
        rc = doc_position(q, &p, p.count - 1, pos, err);
        if (rc == SL_OK)
            rc = token_encode(q, rk, pos, npos_of(q->kind), &p.next_token, err);
    }
out:
    free(succ);
    free(tp);
    if (rc == SL_OK)
        *page = p;
    else
        store_page_free(&p);
    return rc;
}

sl_status store_query(store *s, store_table t, const char *pk, const store_query_opts *q,
                      store_page *page, sl_error *err)
{
    store__query x = {.kind = STORE__Q_PARTITION, .table = t, .key = pk};
    sl_status rc = key_check_z(SCHEMA_F_PK, pk, 0, err);
    if (rc == SL_OK)
        rc = run_query(s, &x, q, page, err);
    else
        memset(page, 0, sizeof *page);
    return rc;
}

sl_status store_query_index(store *s, store_table t, store_index index, const char *gpk,
                            const store_query_opts *q, store_page *page, sl_error *err)
{
    store__query x = {.kind = STORE__Q_INDEX, .table = t, .index = index, .key = gpk};
    sl_status rc = SL_OK;
    if (index != STORE_GSI1 && index != STORE_GSI2)
        rc = sl_error_set_at(err, SL_EINVAL, "index", -1, "index %d is neither gsi1 nor gsi2",
                             (int)index);
    if (rc == SL_OK)
        rc = key_check_z("gsi pk", gpk, 0, err);
    if (rc == SL_OK)
        rc = run_query(s, &x, q, page, err);
    else
        memset(page, 0, sizeof *page);
    return rc;
}

sl_status store_scan(store *s, store_table t, const char *pk_prefix, const store_query_opts *q,
                     store_page *page, sl_error *err)
{
    store__query x = {.kind = STORE__Q_SCAN, .table = t, .key = pk_prefix ? pk_prefix : ""};
    return run_query(s, &x, q, page, err);
}

/* ---------------------------------------------------------------------------
 * The change feed.
 * ------------------------------------------------------------------------- */

static void filter_free(store__filter *x)
{
    for (size_t i = 0; x && i < STORE_FEED_FILTER_MAX; i++) {
        free(x->skip[i].lo);
        free(x->skip[i].hi);
        free(x->keep[i].lo);
        free(x->keep[i].hi);
    }
    free(x);
}

/* Checks one list of a feed filter and copies it into out[0..n). */
static sl_status prefixes_copy(const char *name, const char *const *in, size_t n,
                               store__prefix *out, sl_error *err)
{
    sl_status rc = SL_OK;
    char field[48];
    if (n > STORE_FEED_FILTER_MAX)
        rc = sl_error_set_at(err, SL_EINVAL, name, -1,
                             "feed filter list %s holds %zu prefixes; the limit is %u", name, n,
                             STORE_FEED_FILTER_MAX);
    else if (n > 0 && !in)
        rc = sl_error_set_at(err, SL_EINVAL, name, -1, "feed filter list %s is NULL with n = %zu",
                             name, n);
    for (size_t i = 0; rc == SL_OK && i < n; i++) {
        snprintf(field, sizeof field, "filter.%s[%zu]", name, i);
        rc = key_check_z(field, in[i], 0, err);
        if (rc != SL_OK)
            break;
        out[i].lo = strdup(in[i]);
        out[i].hi = malloc(STORE_KEY_MAX + 1);
        if (!out[i].lo || !out[i].hi) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory copying a feed filter");
        } else if (!successor(in[i], out[i].hi)) {
            free(out[i].hi);
            out[i].hi = NULL;
        }
    }
    return rc;
}

sl_status store_feed_open_filtered(store *s, const char *consumer, const store_feed_filter *filter,
                                   store_feed **out, sl_error *err)
{
    sl_status rc = SL_OK;
    store_feed *f = NULL;
    store__filter *x = NULL;
    *out = NULL;
    rc = consumer_check(consumer, err);
    if (rc != SL_OK)
        goto out;
    if (filter && filter->nskip + filter->nkeep > 0) {
        x = calloc(1, sizeof *x);
        if (!x) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory copying a feed filter");
            goto out;
        }
        rc = prefixes_copy("skip", filter->skip, filter->nskip, x->skip, err);
        if (rc == SL_OK)
            rc = prefixes_copy("keep", filter->keep, filter->nkeep, x->keep, err);
        if (rc != SL_OK)
            goto out;
        x->nskip = filter->nskip;
        x->nkeep = filter->nkeep;
    }
    f = calloc(1, sizeof *f);
    if (!f) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory opening a feed");
        goto out;
    }
    f->st = s;
    f->filter = x;
    rc = s->vt->feed_open(s, consumer, x, &f->impl, err);
out:
    if (rc == SL_OK) {
        *out = f;
    } else {
        filter_free(x);
        free(f);
    }
    return rc;
}

sl_status store_feed_open(store *s, const char *consumer, store_feed **out, sl_error *err)
{
    return store_feed_open_filtered(s, consumer, NULL, out, err);
}

sl_status store_feed_position(const store_feed *f, store_feed_pos *out, sl_error *err)
{
    sl_status rc = SL_OK;
    if (!f || !out)
        rc = sl_error_set(err, SL_EINVAL, "store_feed_position needs a feed and a place to write");
    else
        f->st->vt->feed_position(f->impl, out);
    return rc;
}

sl_status store_feed_read(store_feed *f, size_t max, int wait_ms, const store_event **events,
                          size_t *n, sl_error *err)
{
    sl_status rc = SL_OK;
    if (max == 0)
        rc = sl_error_set_at(err, SL_EINVAL, "max", -1, "max must be at least 1");
    else if (wait_ms < 0)
        rc = sl_error_set_at(err, SL_EINVAL, "wait_ms", -1, "wait_ms %d is negative", wait_ms);
    else
        rc = f->st->vt->feed_read(f->impl, max, wait_ms, events, n, err);
    return rc;
}

void store_feed_close(store_feed **f)
{
    if (f && *f) {
        (*f)->st->vt->feed_close((*f)->impl);
        filter_free((*f)->filter);
        free(*f);
        *f = NULL;
    }
}

/* Checks and prepares the ops of a consumer commit: aggregates only (checks
 * may look at any table).  On success *docs holds n made documents (free
 * each with store__doc_free, then the array with free). */
static sl_status consumer_ops_make(store_op *ops, size_t n, store__doc **docs, sl_error *err)
{
    sl_status rc = SL_OK;
    store__doc *d = NULL;
    size_t made = 0;
    if (n > 0 && !ops) {
        rc = sl_error_set_at(err, SL_EINVAL, "ops", -1, "ops is NULL with n = %zu", n);
        goto out;
    }
    d = calloc(n ? n : 1, sizeof *d);
    if (!d) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory preparing %zu operations", n);
        goto out;
    }
    for (size_t i = 0; i < n && rc == SL_OK; i++, made++) {
        char field[32];
        sl_error e;
        sl_error_clear(&e);
        const store_op *op = &ops[i];
        snprintf(field, sizeof field, "ops[%zu]", i);
        if (op->kind != STORE_OP_PUT && op->kind != STORE_OP_DELETE && op->kind != STORE_OP_CHECK)
            sl_error_set(&e, SL_EINVAL, "operation kind %d is unknown", (int)op->kind);
        else if (table_check(op->table, &e) != SL_OK || cond_check(op->cond, &e) != SL_OK)
            ;
        else if (op->kind != STORE_OP_CHECK && op->table != STORE_AGGREGATES)
            sl_error_set(&e, SL_EINVAL,
                         "a consumer commit writes only to aggregates (checks may read items)");
        else if (op->kind == STORE_OP_PUT)
            store__doc_make(op->doc, "doc", &d[i], &e);
        else if (key_check_z(SCHEMA_F_PK, op->pk, 0, &e) == SL_OK)
            key_check_z(SCHEMA_F_SK, op->sk, 0, &e);
        if (e.status != SL_OK) {
            char f2[sizeof e.field];
            snprintf(f2, sizeof f2, "%s%s%.120s", field, e.field[0] ? "." : "", e.field);
            rc = sl_error_set_at(err, e.status, f2, e.offset, "%s: %s", field, e.message);
        }
    }
out:
    if (rc == SL_OK) {
        *docs = d;
    } else if (d) {
        for (size_t i = 0; i < made; i++)
            store__doc_free(&d[i]);
        free(d);
    }
    return rc;
}

static void docs_free(store__doc *docs, size_t n)
{
    for (size_t i = 0; docs && i < n; i++)
        store__doc_free(&docs[i]);
    free(docs);
}

sl_status store_consumer_commit(store *s, const char *consumer, const char *prev_token,
                                const char *token, store_op *ops, size_t n, sl_error *err)
{
    return store_consumer_commit_opt(s, consumer, prev_token, token, ops, n, NULL, err);
}

sl_status store_consumer_commit_opt(store *s, const char *consumer, const char *prev_token,
                                    const char *token, store_op *ops, size_t n,
                                    const store_commit_options *opt, sl_error *err)
{
    store__doc *docs = NULL;
    sl_status rc = writable_check(s, err);
    if (rc == SL_OK)
        rc = consumer_check(consumer, err);
    if (rc == SL_OK)
        rc = feed_token_check("prev_token", prev_token, err);
    if (rc == SL_OK)
        rc = feed_token_check("token", token, err);
    if (rc == SL_OK)
        rc = consumer_ops_make(ops, n, &docs, err);
    if (rc == SL_OK)
        rc = s->vt->consumer_commit(s, consumer, prev_token, token, ops, docs, n, opt, err);
    docs_free(docs, n);
    return rc;
}

sl_status store_consumer_token(store *s, const char *consumer, char out[STORE_TOKEN_MAX],
                               sl_error *err)
{
    sl_status rc = consumer_check(consumer, err);
    if (rc == SL_OK)
        rc = s->vt->consumer_token(s, consumer, out, err);
    return rc;
}

sl_status store_consumer_reset(store *s, const char *consumer, store_op *ops, size_t n,
                               sl_error *err)
{
    store__doc *docs = NULL;
    sl_status rc = writable_check(s, err);
    if (rc == SL_OK)
        rc = consumer_check(consumer, err);
    if (rc == SL_OK)
        rc = consumer_ops_make(ops, n, &docs, err);
    if (rc == SL_OK)
        rc = s->vt->consumer_commit(s, consumer, NULL, NULL, ops, docs, n, NULL, err);
    docs_free(docs, n);
    return rc;
}

sl_status store_consumer_drop(store *s, const char *consumer, sl_error *err)
{
    sl_status rc = writable_check(s, err);
    if (rc == SL_OK)
        rc = consumer_check(consumer, err);
    if (rc == SL_OK)
        rc = s->vt->consumer_drop(s, consumer, err);
    return rc;
}

sl_status store_feed_stats_get(store *s, const char *consumer, store_feed_stats *out, sl_error *err)
{
    sl_status rc = SL_OK;
    if (consumer)
        rc = consumer_check(consumer, err);
    if (rc == SL_OK)
        rc = s->vt->feed_stats(s, consumer, out, err);
    return rc;
}

sl_status store_snapshot_open(store *s, store **out, sl_error *err)
{
    sl_status rc = SL_OK;
    store *snap = NULL;
    *out = NULL;
    if (s->snapshot) {
        rc = sl_error_set(err, SL_EINVAL, "a snapshot of a snapshot is not supported");
        goto out;
    }
    snap = calloc(1, sizeof *snap);
    if (!snap) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory opening a snapshot");
        goto out;
    }
    snap->vt = s->vt;
    snap->read_only = 1;
    snap->snapshot = 1;
    rc = s->vt->snapshot_open(s, &snap->impl, err);
out:
    if (rc == SL_OK)
        *out = snap;
    else
        free(snap);
    return rc;
}
