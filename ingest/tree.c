/* tree.c -- small JSON trees for values read whole (PUT bodies, asset lines),
 * built from the bounded streaming reader of json.c, in one arena. */
#include "ingest_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Built on json.c, trees get the same limits, duplicate-key refusal and
 * byte offsets as the streaming parsers. */

#define BLOCK (32u * 1024u)

typedef struct block {
    struct block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} block;

struct ingest__tree {
    ingest__json *json;
    ingest_limits lim;
    bool multi;
    ingest__tree_fn fn;
    void *ctx;
    block *blocks;
    ingest__jnode *root, *cur;
    const char *key; /* pending member key */
    int64_t record_start;
    uint64_t line; /* multi: line of the current value */
    sl_error *err;
};

/* Memory that lives until arena_reset() or ingest__tree_free(); NULL when
 * out of memory. */
static void *arena_alloc(ingest__tree *t, size_t n)
{
    n = (n + 15u) & ~(size_t)15u;
    block *b = t->blocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > BLOCK ? n : BLOCK;
        b = malloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->used = 0;
        b->cap = cap;
        b->next = t->blocks;
        t->blocks = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

/* Frees every block but the newest, and empties that one. */
static void arena_reset(ingest__tree *t)
{
    block *b = t->blocks;
    if (!b)
        return;
    block *rest = b->next;
    while (rest) {
        block *n = rest->next;
        free(rest);
        rest = n;
    }
    b->next = NULL;
    b->used = 0;
}

/* A NUL-terminated copy in the arena (same lifetime). */
static char *arena_str(ingest__tree *t, const char *s, size_t len)
{
    char *c = arena_alloc(t, len + 1);
    if (c) {
        memcpy(c, s, len);
        c[len] = '\0';
    }
    return c;
}

static bool attach(ingest__tree *t, ingest__jnode *n)
{
    ingest__jnode *p = t->cur;
    n->parent = p;
    if (!p) {
        t->root = n;
        t->line = ingest__json_line(t->json);
        t->record_start = n->offset;
        return true;
    }
    if (p->type == INGEST__T_OBJECT) {
        n->key = t->key;
        t->key = NULL;
    } else {
        n->index = p->count;
    }
    if (p->last)
        p->last->next = n;
    else
        p->first = n;
    p->last = n;
    p->count++;
    return true;
}

static bool on_event(void *ctx, ingest__jev ev, const ingest__jval *v)
{
    ingest__tree *t = ctx;
    if (t->root && ingest__json_offset(t->json) - t->record_start > (int64_t)t->lim.max_record)
        return ingest__json_fail(t->json, SL_ETOOLARGE, "value longer than %u bytes",
                                 t->lim.max_record);
    if (ev == INGEST__J_KEY) {
        t->key = arena_str(t, v->s, v->len);
        return t->key ? true : ingest__json_fail(t->json, SL_ENOMEM, "out of memory");
    }
    if (ev == INGEST__J_END_MAP || ev == INGEST__J_END_ARRAY) {
        t->cur = t->cur->parent;
        if (t->cur == NULL && t->multi)
            goto value_done;
        return true;
    }
    ingest__jnode *n = arena_alloc(t, sizeof *n);
    if (!n)
        return ingest__json_fail(t->json, SL_ENOMEM, "out of memory");
    memset(n, 0, sizeof *n);
    n->offset = ingest__json_offset(t->json);
    switch (ev) {
    case INGEST__J_NULL:
        n->type = INGEST__T_NULL;
        break;
    case INGEST__J_BOOL:
        n->type = INGEST__T_BOOL;
        n->b = v->b;
        break;
    case INGEST__J_NUMBER:
    case INGEST__J_STRING:
        n->type = ev == INGEST__J_NUMBER ? INGEST__T_NUMBER : INGEST__T_STRING;
        n->s = arena_str(t, v->s, v->len);
        n->len = (uint32_t)v->len;
        if (!n->s)
            return ingest__json_fail(t->json, SL_ENOMEM, "out of memory");
        break;
    case INGEST__J_MAP:
        n->type = INGEST__T_OBJECT;
        break;
    default:
        n->type = INGEST__T_ARRAY;
        break;
    }
    attach(t, n);
    if (n->type == INGEST__T_OBJECT || n->type == INGEST__T_ARRAY) {
        t->cur = n;
        return true;
    }
    if (t->cur != NULL || !t->multi)
        return true;
value_done:;
    sl_status rc = t->fn(t->ctx, t, t->root, t->err);
    t->root = t->cur = NULL;
    t->key = NULL;
    arena_reset(t);
    if (rc != SL_OK) {
        /* The callback's error stands; stop the reader without a new one. */
        ingest__json_fail(t->json, rc, "stopped");
        return false;
    }
    return true;
}

static sl_status tree_new(const ingest_limits *lim, bool multi, ingest__tree_fn fn, void *ctx,
                          ingest__tree **out, sl_error *err)
{
    sl_status rc = SL_OK;
    ingest__tree *t = calloc(1, sizeof *t);
    if (!t) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    if (lim)
        t->lim = *lim;
    else
        ingest_limits_default(&t->lim);
    t->multi = multi;
    t->fn = fn;
    t->ctx = ctx;
    ingest__json_options o = {.limits = &t->lim, .multi = multi};
    rc = ingest__json_new(&o, on_event, t, &t->json, err);
out:
    if (rc != SL_OK)
        ingest__tree_free(&t);
    else
        *out = t;
    return rc;
}

sl_status ingest__tree_parse(const void *json, size_t len, const ingest_limits *lim,
                             ingest__tree **out, sl_error *err)
{
    ingest__tree *t = NULL;
    sl_status rc = tree_new(lim, false, NULL, NULL, &t, err);
    if (rc != SL_OK)
        goto out;
    if (len > t->lim.max_record) {
        rc = sl_error_set_at(err, SL_ETOOLARGE, NULL, (int64_t)t->lim.max_record,
                             "body is %zu bytes; the limit is %u bytes", len, t->lim.max_record);
        goto out;
    }
    t->err = err;
    rc = ingest__json_feed(t->json, json, len, err);
    if (rc == SL_OK)
        rc = ingest__json_finish(t->json, false, err);
out:
    if (rc != SL_OK)
        ingest__tree_free(&t);
    else
        *out = t;
    return rc;
}

sl_status ingest__tree_stream_new(const ingest_limits *lim, ingest__tree_fn fn, void *ctx,
                                  ingest__tree **out, sl_error *err)
{
    return tree_new(lim, true, fn, ctx, out, err);
}

sl_status ingest__tree_feed(ingest__tree *t, const void *data, size_t len, sl_error *err)
{
    t->err = err;
    return ingest__json_feed(t->json, data, len, err);
}

sl_status ingest__tree_finish(ingest__tree *t, sl_error *err)
{
    t->err = err;
    return ingest__json_finish(t->json, false, err);
}

uint64_t ingest__tree_bytes(const ingest__tree *t)
{
    return ingest__json_bytes(t->json);
}

const ingest__jnode *ingest__tree_root(const ingest__tree *t)
{
    return t->root;
}

void ingest__tree_free(ingest__tree **tp)
{
    if (!tp || !*tp)
        return;
    ingest__tree *t = *tp;
    ingest__json_free(&t->json);
    while (t->blocks) {
        block *n = t->blocks->next;
        free(t->blocks);
        t->blocks = n;
    }
    free(t);
    *tp = NULL;
}

/* ---------------------------------------------------------------------------
 * Paths and errors.
 * ------------------------------------------------------------------------- */
void ingest__tree_path(const ingest__tree *t, const ingest__jnode *n, char *out, size_t len)
{
    const ingest__jnode *chain[64];
    size_t depth = 0;
    for (const ingest__jnode *c = n; c && c->parent && depth < 64; c = c->parent)
        chain[depth++] = c;
    size_t used = 0;
    out[0] = '\0';
    if (t->multi) {
        int w = snprintf(out, len, "line %llu", (unsigned long long)t->line);
        used = w > 0 && (size_t)w < len ? (size_t)w : 0;
    }
    size_t mark = used;
    while (depth-- > 0 && used + 1 < len) {
        const ingest__jnode *c = chain[depth];
        const char *sep = used == 0 ? "" : used == mark ? ": " : ".";
        int w = c->parent->type == INGEST__T_OBJECT
                    ? snprintf(out + used, len - used, "%s%s", sep, c->key ? c->key : "?")
                    : snprintf(out + used, len - used, "%s[%u]", used == mark && mark ? ": " : "",
                               c->index);
        if (w < 0)
            break;
        used = used + (size_t)w < len ? used + (size_t)w : len - 1;
    }
}

sl_status ingest__tree_fail(const ingest__tree *t, const ingest__jnode *n, sl_error *err,
                            sl_status s, const char *fmt, ...)
{
    char path[sizeof err->field];
    ingest__tree_path(t, n, path, sizeof path);
    va_list ap;
    va_start(ap, fmt);
    sl_error_vset_at(err, s, path, n ? n->offset : -1, fmt, ap);
    va_end(ap);
    return s;
}

const char *ingest__jtype_name(ingest__jtype ty)
{
    static const char *const names[] = {"null",     "a boolean", "a number",
                                        "a string", "an object", "an array"};
    return (unsigned)ty < 6 ? names[ty] : "?";
}

/* ---------------------------------------------------------------------------
 * Typed members.
 * ------------------------------------------------------------------------- */
const ingest__jnode *ingest__tree_get(const ingest__jnode *o, const char *key)
{
    if (!o || o->type != INGEST__T_OBJECT)
        return NULL;
    for (const ingest__jnode *c = o->first; c; c = c->next)
        if (c->key && strcmp(c->key, key) == 0)
            return c;
    return NULL;
}

/* Finds member key of o with type ty.  SL_OK with *n NULL when absent and
 * not required. */
static sl_status member(const ingest__tree *t, const ingest__jnode *o, const char *key,
                        bool required, ingest__jtype ty, const ingest__jnode **n, sl_error *err)
{
    sl_status rc = SL_OK;
    const ingest__jnode *m = ingest__tree_get(o, key);
    if (!m && required) {
        char path[sizeof err->field];
        ingest__tree_path(t, o, path, sizeof path);
        size_t u = strlen(path);
        snprintf(path + u, sizeof path - u, "%s%s", u ? "." : "", key);
        rc = sl_error_set_at(err, SL_EINVAL, path, o ? o->offset : -1, "%s is required (%s)", key,
                             ty == INGEST__T_STRING   ? "a string"
                             : ty == INGEST__T_NUMBER ? "a number"
                             : ty == INGEST__T_BOOL   ? "true or false"
                                                      : ingest__jtype_name(ty));
    } else if (m && m->type != ty) {
        rc = ingest__tree_fail(t, m, err, SL_EINVAL, "%s must be %s, not %s", key,
                               ingest__jtype_name(ty), ingest__jtype_name(m->type));
    }
    if (rc == SL_OK)
        *n = m;
    return rc;
}

sl_status ingest__tree_string(const ingest__tree *t, const ingest__jnode *o, const char *key,
                              bool required, uint32_t max_len, const char **out, sl_error *err)
{
    const ingest__jnode *n = NULL;
    sl_status rc = member(t, o, key, required, INGEST__T_STRING, &n, err);
    if (rc != SL_OK || !n)
        goto out;
    if (n->len == 0 || n->len > max_len) {
        rc = ingest__tree_fail(t, n, err, SL_EINVAL, "%s must be 1 to %u bytes long, not %u", key,
                               max_len, n->len);
        goto out;
    }
    for (uint32_t i = 0; rc == SL_OK && i < n->len; i++)
        if ((unsigned char)n->s[i] < 0x20 || n->s[i] == 0x7f)
            rc = ingest__tree_fail(t, n, err, SL_EINVAL,
                                   "%s holds a control character (byte %u of the value)", key, i);
    if (rc == SL_OK)
        *out = n->s;
out:
    return rc;
}

sl_status ingest__tree_component(const ingest__tree *t, const ingest__jnode *o, const char *key,
                                 bool required, const char **out, sl_error *err)
{
    const ingest__jnode *n = NULL;
    sl_status rc = member(t, o, key, required, INGEST__T_STRING, &n, err);
    if (rc == SL_OK && n) {
        sl_error e;
        sl_error_clear(&e);
        if (schema_component_check_n(key, n->s, n->len, &e) != SL_OK)
            rc = ingest__tree_fail(t, n, err, e.status, "%s", e.message);
        else
            *out = n->s;
    }
    return rc;
}

sl_status ingest__tree_node_double(const ingest__tree *t, const ingest__jnode *n, double lo,
                                   double hi, double *out, sl_error *err)
{
    sl_status rc = SL_OK;
    double v = 0;
    if (n->type != INGEST__T_NUMBER)
        rc = ingest__tree_fail(t, n, err, SL_EINVAL, "expected a number, not %s",
                               ingest__jtype_name(n->type));
    else if (!ingest__number(n->s, n->len, &v))
        rc = ingest__tree_fail(t, n, err, SL_EINVAL, "%s is not a finite number", n->s);
    else if (v < lo || v > hi)
        rc = ingest__tree_fail(t, n, err, SL_EINVAL, "%s is outside [%g, %g]", n->s, lo, hi);
    if (rc == SL_OK)
        *out = v;
    return rc;
}

sl_status ingest__tree_double(const ingest__tree *t, const ingest__jnode *o, const char *key,
                              bool required, double lo, double hi, double *out, sl_error *err)
{
    const ingest__jnode *n = NULL;
    sl_status rc = member(t, o, key, required, INGEST__T_NUMBER, &n, err);
    if (rc == SL_OK && n)
        rc = ingest__tree_node_double(t, n, lo, hi, out, err);
    return rc;
}

sl_status ingest__tree_int(const ingest__tree *t, const ingest__jnode *o, const char *key,
                           bool required, int64_t lo, int64_t hi, int64_t *out, sl_error *err)
{
    const ingest__jnode *n = NULL;
    int64_t v = 0;
    sl_status rc = member(t, o, key, required, INGEST__T_NUMBER, &n, err);
    if (rc != SL_OK || !n)
        goto out;
    if (!ingest__number_int(n->s, n->len, &v))
        rc =
            ingest__tree_fail(t, n, err, SL_EINVAL, "%s must be a whole number, not %s", key, n->s);
    else if (v < lo || v > hi)
        rc = ingest__tree_fail(t, n, err, SL_EINVAL, "%s %lld is outside [%lld, %lld]", key,
                               (long long)v, (long long)lo, (long long)hi);
    if (rc == SL_OK)
        *out = v;
out:
    return rc;
}

sl_status ingest__tree_bool(const ingest__tree *t, const ingest__jnode *o, const char *key,
                            bool required, bool *out, sl_error *err)
{
    const ingest__jnode *n = NULL;
    sl_status rc = member(t, o, key, required, INGEST__T_BOOL, &n, err);
    if (rc == SL_OK && n)
        *out = n->b != 0;
    return rc;
}

sl_status ingest__tree_typed(const ingest__tree *t, const ingest__jnode *o, const char *key,
                             bool required, ingest__jtype ty, const ingest__jnode **out,
                             sl_error *err)
{
    const ingest__jnode *n = NULL;
    sl_status rc = member(t, o, key, required, ty, &n, err);
    if (rc == SL_OK)
        *out = n;
    return rc;
}
