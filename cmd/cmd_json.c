/* cmd_json.c -- small JSON files read whole by the CLI (cmd_json.h): the
 * strict check of every input, a yajl tree, and getters naming JSON paths. */
#include "cmd_json.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/ingest.h"

#define DEPTH_MAX 16u /* scenarios nest 5 levels; truth and results 4 */

sl_status cmd_json_load(const char *path, size_t max, yajl_val *out, sl_error *err)
{
    sl_status rc = SL_OK;
    char *text = NULL;
    size_t len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        rc = sl_error_set(err, SL_EIO, "%s: cannot open: %s", path, strerror(errno));
        goto out;
    }
    text = malloc(max + 1); /* freed below */
    if (!text) {
        rc = sl_error_set(err, SL_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    len = fread(text, 1, max + 1, f);
    if (ferror(f)) {
        rc = sl_error_set(err, SL_EIO, "%s: cannot read: %s", path, strerror(errno));
        goto out;
    }
    if (len > max) {
        rc = sl_error_set(err, SL_ETOOLARGE, "%s: larger than %zu bytes", path, max);
        goto out;
    }
    text[len] = '\0';
    rc = cmd_json_parse(path, text, len, out, err);
out:
    if (f)
        fclose(f);
    free(text);
    return rc;
}

sl_status cmd_json_parse(const char *name, const char *text, size_t len, yajl_val *out,
                         sl_error *err)
{
    sl_status rc = SL_OK;
    char msg[160];
    assert(text[len] == '\0');
    if ((rc = ingest_json_check(text, len, DEPTH_MAX, err)) != SL_OK) {
        sl_error_prefix(err, "%s", name);
        goto out;
    }
    yajl_val v = yajl_tree_parse(text, msg, sizeof msg);
    if (!v) { /* the check passed: only memory can be short */
        rc = sl_error_set(err, SL_ENOMEM, "%s: out of memory parsing it", name);
        goto out;
    }
    *out = v;
out:
    return rc;
}

void cmd_json_path_key(char out[CMD_JSON_PATH_MAX], const char *parent, const char *key)
{
    snprintf(out, CMD_JSON_PATH_MAX, "%s%s%s", parent, parent[0] ? "." : "", key);
}

void cmd_json_path_index(char out[CMD_JSON_PATH_MAX], const char *parent, size_t i)
{
    snprintf(out, CMD_JSON_PATH_MAX, "%s[%zu]", parent, i);
}

sl_status cmd_json_fail(sl_error *err, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sl_status rc = sl_error_vset_at(err, SL_EINVAL, path[0] ? path : "(top)", -1, fmt, ap);
    va_end(ap);
    return rc;
}

yajl_val cmd_json_get(yajl_val o, const char *key)
{
    if (!YAJL_IS_OBJECT(o))
        return NULL;
    for (size_t i = 0; i < o->u.object.len; i++)
        if (!strcmp(o->u.object.keys[i], key))
            return o->u.object.values[i];
    return NULL;
}

bool cmd_json_has(yajl_val o, const char *key)
{
    yajl_val v = cmd_json_get(o, key);
    return v && !YAJL_IS_NULL(v);
}

sl_status cmd_json_object(yajl_val v, const char *path, const char *const *known, sl_error *err)
{
    sl_status rc = SL_OK;
    if (!YAJL_IS_OBJECT(v)) {
        rc = cmd_json_fail(err, path, "must be an object");
        goto out;
    }
    for (size_t i = 0; i < v->u.object.len && rc == SL_OK; i++) {
        const char *k = v->u.object.keys[i];
        bool ok = false;
        for (size_t j = 0; known[j] && !ok; j++)
            ok = !strcmp(known[j], k);
        if (!ok) {
            char names[256] = "", sub[CMD_JSON_PATH_MAX];
            size_t used = 0;
            for (size_t j = 0; known[j] && used < sizeof names; j++)
                used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", j ? ", " : "",
                                         known[j]);
            cmd_json_path_key(sub, path, k);
            rc = cmd_json_fail(err, sub, "unknown member \"%.64s\" (known: %s)", k, names);
        }
    }
out:
    return rc;
}

/* The member, or NULL when absent or null; SL_EINVAL when required. */
static sl_status member(yajl_val o, const char *path, const char *key, bool required, yajl_val *v,
                        char sub[CMD_JSON_PATH_MAX], sl_error *err)
{
    cmd_json_path_key(sub, path, key);
    *v = cmd_json_get(o, key);
    if (*v && YAJL_IS_NULL(*v))
        *v = NULL;
    return !*v && required ? cmd_json_fail(err, sub, "is required") : SL_OK;
}

sl_status cmd_json_num_value(yajl_val v, const char *path, double lo, double hi, double *out,
                             sl_error *err)
{
    sl_status rc = SL_OK;
    if (!YAJL_IS_DOUBLE(v) || !isfinite(YAJL_GET_DOUBLE(v)))
        rc = cmd_json_fail(err, path, "must be a number");
    else if (YAJL_GET_DOUBLE(v) < lo || YAJL_GET_DOUBLE(v) > hi)
        rc = cmd_json_fail(err, path, "%g is outside [%g, %g]", YAJL_GET_DOUBLE(v), lo, hi);
    else
        *out = YAJL_GET_DOUBLE(v);
    return rc;
}

sl_status cmd_json_num(yajl_val o, const char *path, const char *key, bool required, double lo,
                       double hi, double *out, sl_error *err)
{
    char sub[CMD_JSON_PATH_MAX];
    yajl_val v;
    sl_status rc = member(o, path, key, required, &v, sub, err);
    if (rc == SL_OK && v)
        rc = cmd_json_num_value(v, sub, lo, hi, out, err);
    return rc;
}

sl_status cmd_json_int(yajl_val o, const char *path, const char *key, bool required, int64_t lo,
                       int64_t hi, int64_t *out, sl_error *err)
{
    char sub[CMD_JSON_PATH_MAX];
    yajl_val v;
    sl_status rc = member(o, path, key, required, &v, sub, err);
    if (rc != SL_OK || !v)
        goto out;
    if (!YAJL_IS_INTEGER(v))
        rc = cmd_json_fail(err, sub, "must be a whole number");
    else if (YAJL_GET_INTEGER(v) < lo || YAJL_GET_INTEGER(v) > hi)
        rc = cmd_json_fail(err, sub, "%lld is outside [%lld, %lld]", (long long)YAJL_GET_INTEGER(v),
                           (long long)lo, (long long)hi);
    else
        *out = YAJL_GET_INTEGER(v);
out:
    return rc;
}

sl_status cmd_json_bool(yajl_val o, const char *path, const char *key, bool required, bool *out,
                        sl_error *err)
{
    char sub[CMD_JSON_PATH_MAX];
    yajl_val v;
    sl_status rc = member(o, path, key, required, &v, sub, err);
    if (rc != SL_OK || !v)
        goto out;
    if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v))
        rc = cmd_json_fail(err, sub, "must be true or false");
    else
        *out = YAJL_IS_TRUE(v);
out:
    return rc;
}

sl_status cmd_json_str(yajl_val o, const char *path, const char *key, bool required, size_t max,
                       const char **out, sl_error *err)
{
    char sub[CMD_JSON_PATH_MAX];
    yajl_val v;
    sl_error e;
    sl_error_clear(&e);
    sl_status rc = member(o, path, key, required, &v, sub, err);
    if (rc != SL_OK || !v)
        goto out;
    const char *s = YAJL_GET_STRING(v);
    size_t len = s ? strlen(s) : 0;
    if (!s)
        rc = cmd_json_fail(err, sub, "must be a string");
    else if (len == 0 || len > max)
        rc = cmd_json_fail(err, sub, "must hold 1 to %zu bytes, not %zu", max, len);
    else if (schema_text_check(key, s, len, &e) != SL_OK)
        rc = cmd_json_fail(err, sub, "%s", e.message);
    else
        *out = s;
out:
    return rc;
}
