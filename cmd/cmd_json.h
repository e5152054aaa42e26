/* cmd_json.h -- small JSON files read whole by the CLI (scenarios, ground
 * truth, hand-written or saved analysis results): held to the rules of every
 * input (ingest_json_check: strict UTF-8, no duplicate member, no NaN, bounded
 * nesting), then walked as a yajl tree with getters that name the JSON path
 * of a bad value ("tools[3].events[1].put_back_at") in the sl_error's field.
 *
 * Paths are built by the caller with cmd_json_path_key / _index into buffers
 * of CMD_JSON_PATH_MAX bytes; a path too long for the buffer is cut (the
 * message stays readable, the check does not change). */
#ifndef SIGHTLINE_CMD_JSON_H
#define SIGHTLINE_CMD_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_tree.h>

#include "schema/schema.h"

#define CMD_JSON_PATH_MAX 160 /* = sizeof(sl_error.field) */

/* Reads the file at path (at most max bytes, else SL_ETOOLARGE), checks it
 * and parses it.  On success *out is the tree: yajl_tree_free() it.  Errors
 * name the file in the message and, for bad JSON, the path and byte offset. */
sl_status cmd_json_load(const char *path, size_t max, yajl_val *out, sl_error *err);

/* The same for text[0..len) (text[len] must be '\0'), named name in errors. */
sl_status cmd_json_parse(const char *name, const char *text, size_t len, yajl_val *out,
                         sl_error *err);

/* "parent.key" ("key" at the top, parent ""), "parent[i]". */
void cmd_json_path_key(char out[CMD_JSON_PATH_MAX], const char *parent, const char *key);
void cmd_json_path_index(char out[CMD_JSON_PATH_MAX], const char *parent, size_t i);

/* Records SL_EINVAL at path with a printf message. */
sl_status cmd_json_fail(sl_error *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The member key of object o, or NULL (o may be NULL or not an object). */
yajl_val cmd_json_get(yajl_val o, const char *key);

/* Checks that v (at path) is an object whose members are all among known
 * (NULL-terminated): a typo is refused, naming it and the known names. */
sl_status cmd_json_object(yajl_val v, const char *path, const char *const *known, sl_error *err);

/* Member key of object o (at path).  When absent or JSON null: SL_EINVAL
 * if required, else SL_OK with *out untouched (the caller's default). */
sl_status cmd_json_num(yajl_val o, const char *path, const char *key, bool required, double lo,
                       double hi, double *out, sl_error *err);
sl_status cmd_json_int(yajl_val o, const char *path, const char *key, bool required, int64_t lo,
                       int64_t hi, int64_t *out, sl_error *err);
sl_status cmd_json_bool(yajl_val o, const char *path, const char *key, bool required, bool *out,
                        sl_error *err);
/* A string of 1..max bytes of text (valid UTF-8, no control characters);
 * *out points into the tree. */
sl_status cmd_json_str(yajl_val o, const char *path, const char *key, bool required, size_t max,
                       const char **out, sl_error *err);

/* The value v itself (at path) as a number in [lo, hi]. */
sl_status cmd_json_num_value(yajl_val v, const char *path, double lo, double hi, double *out,
                             sl_error *err);

/* True when the member is present and not JSON null. */
bool cmd_json_has(yajl_val o, const char *key);

#endif
