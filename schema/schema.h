/* schema.h -- the vocabulary every layer shares: status codes and the error
 * struct, key builders for the single-table design, key-component validation
 * (libpcre2) and the names of document fields.  Includes nothing of ours.
 *
 * Keys are built only from validated components, so a name can never forge
 * another key: '#' and '/' cannot appear inside a component. */
#ifndef SIGHTLINE_SCHEMA_H
#define SIGHTLINE_SCHEMA_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------------------
 * Status codes.  One list for the whole project; it only grows (never reuse or
 * renumber a value).  Columns: name, value, HTTP status, title.
 * ------------------------------------------------------------------------- */
#define SL_STATUS_MAP(X)                                                                           \
    X(SL_OK, 0, 200, "ok")                                                                         \
    X(SL_EINVAL, 1, 400, "invalid input")                                                          \
    X(SL_ENOTFOUND, 2, 404, "not found")                                                           \
    X(SL_ECONDITION, 3, 409, "condition failed")                                                   \
    X(SL_ETOOLARGE, 4, 413, "too large")                                                           \
    X(SL_ENOMEM, 5, 500, "out of memory")                                                          \
    X(SL_EIO, 6, 503, "storage unavailable")                                                       \
    X(SL_EBUSY, 7, 503, "busy")                                                                    \
    X(SL_ECORRUPT, 8, 500, "corrupt data")                                                         \
    X(SL_EAUTH, 9, 401, "unauthorized")                                                            \
    X(SL_EFORBIDDEN, 10, 403, "forbidden")                                                         \
    X(SL_EFEEDGONE, 11, 410, "change feed position no longer retained")                            \
    X(SL_EUNSUPPORTED, 12, 415, "unsupported")                                                     \
    X(SL_EINTERNAL, 13, 500, "internal error")                                                     \
    X(SL_ECONFLICT, 14, 409, "conflict")                                                           \
    X(SL_ETIMEOUT, 15, 504, "timed out")

typedef enum sl_status {
#define SL__STATUS_ENUM(name, value, http, title) name = value,
    SL_STATUS_MAP(SL__STATUS_ENUM)
#undef SL__STATUS_ENUM
} sl_status;

/* Name ("SL_EINVAL"), HTTP status (400) and human title ("invalid input") of
 * a status; unknown values map to SL_EINTERNAL's. */
const char *sl_status_name(sl_status s);
int sl_status_http(sl_status s);
const char *sl_status_title(sl_status s);

/* A status plus what a person needs to act on it.  The first error recorded
 * wins: later sl_error_set() calls on an error that is already set change
 * nothing, so the innermost, most precise message survives. */
typedef struct sl_error {
    sl_status status; /* SL_OK until an error is recorded */
    int64_t offset;   /* byte offset in the input at fault, -1 when none */
    char field[160];  /* JSON path or field name at fault, "" when none */
    char message[512];
} sl_error;

void sl_error_clear(sl_error *err);

/* Records status s with a printf-style message; returns s so callers can
 * write `return sl_error_set(err, SL_EINVAL, "...")`.  err may be NULL. */
sl_status sl_error_set(sl_error *err, sl_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* As sl_error_set, also naming the field (may be NULL) and byte offset (-1 for none). */
sl_status sl_error_set_at(sl_error *err, sl_status s, const char *field, int64_t offset,
                          const char *fmt, ...) __attribute__((format(printf, 5, 6)));
sl_status sl_error_vset_at(sl_error *err, sl_status s, const char *field, int64_t offset,
                           const char *fmt, va_list ap);

/* Prefixes the recorded message with "prefix: " (used to add context on the
 * way up, e.g. the file name).  No-op when err is not set. */
void sl_error_prefix(sl_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---------------------------------------------------------------------------
 * Key components.
 *
 * A component is 1..SCHEMA_COMPONENT_MAX bytes of valid UTF-8: letters,
 * digits and combining marks of any script, and . _ : - ' & + and space; it
 * starts with a letter or digit and does not end with a space.  So '#', '/',
 * '%', control bytes and invalid UTF-8 are refused.
 * ------------------------------------------------------------------------- */
#define SCHEMA_COMPONENT_MAX 128
#define SCHEMA_KEY_MAX       640 /* any key built here fits, with its NUL */

/* Checks one component.  `what` names it in the message ("surgery id").
 * Thread-safe; the pattern is compiled (and JIT-compiled) once per process. */
sl_status schema_component_check(const char *what, const char *value, sl_error *err);

/* As above for a value of known length that may not be NUL-terminated. */
sl_status schema_component_check_n(const char *what, const char *value, size_t len, sl_error *err);

/* ---------------------------------------------------------------------------
 * Keys.  Each builder validates its components and writes a NUL-terminated key
 * into out (SCHEMA_KEY_MAX bytes).  On error out is left as "".
 * ------------------------------------------------------------------------- */
typedef char schema_key[SCHEMA_KEY_MAX];

/* Sort keys that are constants. */
#define SCHEMA_SK_TENANT          "TENANT"
#define SCHEMA_SK_META            "META"
#define SCHEMA_SK_SUMMARY         "SUMMARY"
#define SCHEMA_SK_FRAME_PREFIX    "FRAME#"
#define SCHEMA_SK_TOOL_PREFIX     "TOOL#"
#define SCHEMA_SK_KEY_PREFIX      "KEY#"
#define SCHEMA_SK_BRAND_PREFIX    "BRAND#"
#define SCHEMA_SK_SECTOR_PREFIX   "SECTOR#"
#define SCHEMA_SK_HOSPITAL_PREFIX "HOSPITAL#"
#define SCHEMA_FRAME_MAX          999999999u /* frames are 9 digits in sort keys */
#define SCHEMA_INSTANCE_MAX       9999u      /* tool instances are 4 digits */

sl_status schema_pk_tenant(schema_key out, const char *tenant, sl_error *err);  /* T#t */
sl_status schema_pk_catalog(schema_key out, const char *tenant, sl_error *err); /* T#t#CATALOG */
sl_status schema_pk_surgery(schema_key out, const char *tenant, const char *surgery,
                            sl_error *err); /* T#t#SURGERY#id */
sl_status schema_pk_asset(schema_key out, const char *tenant, const char *asset,
                          sl_error *err); /* T#t#ASSET#id */
sl_status schema_pk_assets_index(schema_key out, const char *tenant,
                                 sl_error *err);                                   /* T#t#ASSETS */
sl_status schema_pk_aggregates(schema_key out, const char *tenant, sl_error *err); /* T#t#AGG */
sl_status schema_pk_hospital(schema_key out, const char *tenant, const char *hospital,
                             sl_error *err); /* T#t#HOSPITAL#h */
sl_status schema_pk_hospital_procedure(schema_key out, const char *tenant, const char *hospital,
                                       const char *procedure,
                                       sl_error *err); /* T#t#HOSPITAL#h#PROC#p */

sl_status schema_sk_key(schema_key out, const char *key_id, sl_error *err);       /* KEY#id */
sl_status schema_sk_catalog_tool(schema_key out, const char *sku, sl_error *err); /* TOOL#sku */
sl_status schema_sk_frame(schema_key out, uint32_t frame, sl_error *err); /* FRAME#000000123 */
sl_status schema_sk_tool_instance(schema_key out, const char *sku, uint32_t n,
                                  sl_error *err); /* TOOL#sku#0001 */
sl_status schema_sk_surgery_date(schema_key out, const char *date_yyyy_mm_dd, const char *surgery,
                                 sl_error *err); /* DATE#2026-11-26#SURGERY#id */
sl_status schema_sk_asset_by_brand(schema_key out, const char *brand, const char *campaign,
                                   const char *asset,
                                   sl_error *err); /* BRAND#b#CAMPAIGN#c#ASSET#id */
sl_status schema_sk_brand(schema_key out, const char *brand, sl_error *err); /* BRAND#b */
sl_status schema_sk_brand_campaign(schema_key out, const char *brand, const char *campaign,
                                   sl_error *err); /* BRAND#b#CAMPAIGN#c */
sl_status schema_sk_sector(schema_key out, const char *sector, sl_error *err); /* SECTOR#s */
sl_status schema_sk_tool_aggregate(schema_key out, const char *hospital, const char *procedure,
                                   const char *sku, sl_error *err); /* HOSPITAL#h#PROC#p#TOOL#sku */

/* Parses the frame number out of a FRAME#... sort key; SL_EINVAL if malformed. */
sl_status schema_sk_frame_parse(const char *sk, uint32_t *frame, sl_error *err);

/* ---------------------------------------------------------------------------
 * Document fields.  Every document has string pk and sk, optional gsi pairs,
 * an int64 version v kept by the store, and a string type.
 * ------------------------------------------------------------------------- */
#define SCHEMA_F_PK      "pk"
#define SCHEMA_F_SK      "sk"
#define SCHEMA_F_GSI1PK  "gsi1pk"
#define SCHEMA_F_GSI1SK  "gsi1sk"
#define SCHEMA_F_GSI2PK  "gsi2pk"
#define SCHEMA_F_GSI2SK  "gsi2sk"
#define SCHEMA_F_VERSION "v"
#define SCHEMA_F_TYPE    "type"

/* Values of the type field. */
#define SCHEMA_TYPE_TENANT       "tenant"
#define SCHEMA_TYPE_KEY          "key"
#define SCHEMA_TYPE_CATALOG_TOOL "catalog_tool"
#define SCHEMA_TYPE_SURGERY      "surgery"
#define SCHEMA_TYPE_FRAME        "frame"
#define SCHEMA_TYPE_TOOL_RESULT  "tool_result"
#define SCHEMA_TYPE_SUMMARY      "surgery_summary"
#define SCHEMA_TYPE_ASSET        "asset"
#define SCHEMA_TYPE_BRAND_AGG    "brand_agg"
#define SCHEMA_TYPE_CAMPAIGN_AGG "campaign_agg"
#define SCHEMA_TYPE_SECTOR_AGG   "sector_agg"
#define SCHEMA_TYPE_TOOL_AGG     "tool_agg"

/* ---------------------------------------------------------------------------
 * Numbers and times.
 * ------------------------------------------------------------------------- */

/* Scores in [0,1] as exact integers: round(score * 1e6).  SL_EINVAL when the
 * score is NaN, infinite or outside [0,1].  For a score that arrives as text,
 * use schema_micro_from_decimal: a double cannot hold a half-micro tie. */
sl_status schema_micro_from_score(double score, int64_t *micro, sl_error *err);

/* A score written as a JSON number (s, len bytes: -?digits[.digits][e[+-]digits])
 * in micro-units, decided on the decimal itself, never on a double: the
 * number rounded to the nearest millionth, a half away from zero
 * ("0.0001245" is 125, "5e-7" is 1, "0.00000049999999999999999" is 0).
 * SL_EINVAL when s is not such a number or its exact value is outside [0, 1]
 * ("-0" is 0). */
sl_status schema_micro_from_decimal(const char *s, size_t len, int64_t *micro, sl_error *err);

/* Parses an RFC 3339 / ISO-8601 UTC time ("2026-11-26T12:00:00Z", optional
 * fraction, 'Z' or +00:00) into milliseconds since the epoch. */
sl_status schema_time_parse(const char *s, int64_t *ms, sl_error *err);

/* Formats ms since the epoch as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out (>= 25 bytes). */
void schema_time_format(int64_t ms, char out[25]);

/* ---------------------------------------------------------------------------
 * Tenants and API keys (schema/keys_auth.c).  A key document lives in its
 * tenant's partition (T#t / KEY#<id>) and is also indexed by gsi1
 * (KEYID#<id> / KEY) so a bearer key can be found without knowing its tenant.
 * ------------------------------------------------------------------------- */
#define SCHEMA_GSI1SK_KEY        "KEY"
#define SCHEMA_F_TENANT          "tenant"
#define SCHEMA_F_KIND            "kind"
#define SCHEMA_F_CREATED_MS      "created_ms"
#define SCHEMA_F_KEY_ID          "key_id"
#define SCHEMA_F_NAME            "name"
#define SCHEMA_F_ROLE            "role"
#define SCHEMA_F_HASH            "hash"
#define SCHEMA_F_REVOKED_MS      "revoked_ms"
#define SCHEMA_KIND_HOSPITAL     "hospital"
#define SCHEMA_KIND_BRAND_CLIENT "brand-client"

sl_status schema_gsi1pk_key_id(schema_key out, const char *key_id, sl_error *err); /* KEYID#id */

/* ---------------------------------------------------------------------------
 * Text from outside (schema/utf8.c): the one UTF-8 check every layer uses.
 * Strict RFC 3629: overlong forms, UTF-16 surrogates (U+D800..U+DFFF) and
 * code points above U+10FFFF are refused (yajl's own check lets them by).
 * ------------------------------------------------------------------------- */

/* Incremental validation, for text that arrives in pieces.  Zero it to start
 * (a character may then continue from one schema_utf8_feed to the next). */
typedef struct schema_utf8 {
    uint8_t need;   /* continuation bytes still owed */
    uint8_t have;   /* bytes of the current (or broken) character already seen */
    uint8_t lo, hi; /* range of the next continuation byte */
    uint8_t lead;   /* lead byte of the current (or broken) character */
} schema_utf8;

/* Feeds s[0..len): returns len when every byte fits, else the index of the
 * first byte that breaks the text; the broken character started st->have
 * bytes before it (perhaps in an earlier call).  After a fault the state
 * only serves schema_utf8_why().  Text ends valid only when st->need is 0. */
size_t schema_utf8_feed(schema_utf8 *st, const char *s, size_t len);

/* What is wrong, for a message ("an overlong form", "a UTF-16 surrogate
 * (U+D800..U+DFFF)", ...): bad is the byte schema_utf8_feed() stopped at, or
 * -1 when the text ended inside a character. */
const char *schema_utf8_why(const schema_utf8 *st, int bad);

/* Length of the longest prefix of s[0..len) that is valid UTF-8 (len when
 * all is): where the first broken character starts. */
size_t schema_utf8_valid_prefix(const char *s, size_t len);

/* SL_OK when s[0..len) is valid UTF-8 (any code point, controls included);
 * else SL_EINVAL naming `what`, the byte offset where the broken character
 * starts and what is wrong with it. */
sl_status schema_utf8_check(const char *what, const char *s, size_t len, sl_error *err);

/* SL_OK when s[0..len) is valid UTF-8 without control bytes (0x00-0x1f,
 * 0x7f); else SL_EINVAL naming `what` and the byte offset of the culprit. */
sl_status schema_text_check(const char *what, const char *s, size_t len, sl_error *err);

/* ---------------------------------------------------------------------------
 * Frame documents (schema/frame.c; docs/documents.md "frame").  A frame's
 * detections are packed: `labels` and `skus` (parallel arrays, one entry per
 * distinct label of the frame) and `det`, a binary of `n` records of
 * SCHEMA_FRAME_DET_SIZE bytes, little-endian: u16 label (index into labels),
 * then confidence, x, y, w, h as int32 micro-units (round(v * 1e6), 0..1e6;
 * box normalized, top-left origin).
 * ------------------------------------------------------------------------- */
#define SCHEMA_F_FRAME          "frame"
#define SCHEMA_F_FRAME_N        "n"
#define SCHEMA_F_FRAME_LABELS   "labels"
#define SCHEMA_F_FRAME_SKUS     "skus"
#define SCHEMA_F_FRAME_DET      "det"
#define SCHEMA_FRAME_DET_SIZE   22u
#define SCHEMA_FRAME_LABELS_MAX 65535u /* distinct labels in one frame */

typedef struct schema_frame_det {
    uint16_t label;     /* index into the frame's labels / skus */
    int32_t confidence; /* micro-units, 0..1000000 */
    int32_t x, y, w, h; /* micro-units of the image's width / height */
} schema_frame_det;

/* Writes one record. */
void schema_frame_det_pack(uint8_t out[SCHEMA_FRAME_DET_SIZE], const schema_frame_det *d);

/* Reads record i of det[0..det_len); SL_ECORRUPT (naming the record and the
 * value) when det_len is not a whole number of records, i is past the end,
 * the label index is not below nlabels or a value is outside 0..1000000. */
sl_status schema_frame_det_unpack(const uint8_t *det, size_t det_len, size_t i, uint32_t nlabels,
                                  schema_frame_det *out, sl_error *err);

/* ---------------------------------------------------------------------------
 * Dashboard keys (schema/keys_dashboard.c; docs/documents.md "brand_agg").
 * ------------------------------------------------------------------------- */

/* T#t#AGG#BRANDS: the gsi1 and gsi2 partition of the tenant's brand
 * aggregates (gsi1 sorts them by count, gsi2 by mean memorability). */
sl_status schema_gpk_brand_aggs(schema_key out, const char *tenant, sl_error *err);

/* BRAND#b#CAMPAIGN#: prefix of the brand's campaign aggregates (sort keys in
 * T#t#AGG) and of its assets' index keys (gsi1 of T#t#ASSETS). */
sl_status schema_sk_brand_campaigns_prefix(schema_key out, const char *brand, sl_error *err);

#endif /* SIGHTLINE_SCHEMA_H */
