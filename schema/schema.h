/* schema.h -- the vocabulary every layer shares: status codes and the error
 * struct, key builders for the single-table design, key-component validation
 * (libpcre2), the names of document fields, and the documents that more than
 * one layer reads (frames, the tool catalog, the surgery's life cycle).
 * Includes nothing of ours (libbson for the documents).
 *
 * Keys are built only from validated components, so a name can never forge
 * another key: '#' and '/' cannot appear inside a component. */
#ifndef SIGHTLINE_SCHEMA_H
#define SIGHTLINE_SCHEMA_H

#include <bson/bson.h>
#include <stdarg.h>
#include <stdbool.h>
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
 * The tool catalog (schema/catalog.c; docs/documents.md "catalog_tool").
 *
 * One catalog_tool document per SKU at T#t#CATALOG / TOOL#<sku>, written by
 * ingest (the PUT /v1/catalog/{sku} body codec) and read by ingest (labels ->
 * SKU while detections arrive) and by the engine (the usage analysis re-maps
 * labels with the current catalog and prices what was wasted).  The field
 * names, the bounds and the matcher are defined here once, so what ingest
 * accepts is exactly what the engine can read.
 * ------------------------------------------------------------------------- */
#define SCHEMA_F_SKU             "sku"
#define SCHEMA_F_CATALOG_LABELS  "labels" /* array of PCRE2 patterns */
#define SCHEMA_F_UNIT_COST_CENTS "unit_cost_cents"
#define SCHEMA_F_SINGLE_USE      "single_use"
/* (the entry's name is SCHEMA_F_NAME) */

#define SCHEMA_CATALOG_NAME_MAX    256u /* bytes of an entry's name (text, no control bytes) */
#define SCHEMA_CATALOG_LABELS_MAX  64u  /* patterns of one entry */
#define SCHEMA_CATALOG_PATTERN_MAX 512u /* bytes of one pattern */

/* The one bound on a unit cost, in cents, wherever one is stored: a catalog
 * entry (ingest refuses more), a tool_result and each `tools` entry of a
 * surgery_summary (the engine refuses more).  10 million dollars a unit: the
 * dearest single-use items of an operating room (implants, valves,
 * stimulators) cost tens of thousands, so real prices stay 300 times below
 * it.  Chosen so that the engine's arithmetic on one summary cannot overflow
 * int64: a summary holds at most 4096 entries (ENGINE_SUMMARY_TOOLS_MAX) of
 * at most 10^6 units (ENGINE_UNITS_MAX) each, and 4096 * 10^6 * 10^9 =
 * 4.1e18 < 2^63 - 1 = 9.2e18 (engine/aggregate_set.c asserts it at compile
 * time); the earlier 1e10 of the engine (and 1e11 of ingest) did not. */
#define SCHEMA_UNIT_COST_MAX 1000000000LL

/* Each pattern is matched against the WHOLE label (anchored at both ends:
 * "scalpel" does not match "scalpel-holder"), in UTF-8 with Unicode
 * properties ((?i) folds case in any script; \w and \d are Unicode).  One
 * match of one pattern against one label may backtrack at most this many
 * times (PCRE2's match limit): a label is at most 128 bytes, so a sane
 * pattern needs far fewer, and a pathological one costs a few milliseconds
 * and an error naming it instead of a stalled ingest. */
#define SCHEMA_CATALOG_MATCH_LIMIT 200000u

/* One entry, decoded: every pointer borrows from whoever filled it (the
 * document of schema_catalog_entry_from_bson, the compiled catalog of
 * schema_catalog_at). */
typedef struct schema_catalog_entry {
    const char *sku;           /* a valid key component */
    const char *name;          /* 1..SCHEMA_CATALOG_NAME_MAX bytes of text */
    const char *const *labels; /* nlabels patterns, each NUL-terminated ... */
    const uint32_t *label_len; /* ... of label_len[i] bytes (1..SCHEMA_CATALOG_PATTERN_MAX) */
    uint32_t nlabels;          /* 1..SCHEMA_CATALOG_LABELS_MAX */
    int64_t unit_cost_cents;   /* 0..SCHEMA_UNIT_COST_MAX */
    bool single_use;           /* an opened, unused unit is wasted */
    int64_t version;           /* the document's `v`; 0 when it came from no document */
} schema_catalog_entry;

/* Room for one decoded document: the entry and the arrays it points to. */
typedef struct schema_catalog_doc {
    schema_catalog_entry entry;
    const char *labels[SCHEMA_CATALOG_LABELS_MAX];
    uint32_t label_len[SCHEMA_CATALOG_LABELS_MAX];
} schema_catalog_doc;

/* SL_OK when pattern[0..len) compiles as a catalog pattern; else SL_EINVAL
 * with PCRE2's reason and the offset in the pattern ("label pattern /sc(/
 * does not compile: missing closing parenthesis (at pattern offset 3)"). */
sl_status schema_catalog_pattern_check(const char *pattern, size_t len, sl_error *err);

/* SL_OK when e holds what a catalog entry may (the bounds above, a valid
 * sku, text name, valid UTF-8 patterns; patterns are not compiled here);
 * else SL_EINVAL naming the field ("unit_cost_cents", "labels[3]"). */
sl_status schema_catalog_entry_check(const schema_catalog_entry *e, sl_error *err);

/* Decodes one stored catalog_tool document into out->entry (pointers into
 * doc: valid while doc is).  Strict: type must be catalog_tool; sku, name,
 * labels, unit_cost_cents (int64) and single_use (bool) must each be present
 * once with their type and within schema_catalog_entry_check's bounds; sku
 * must agree with the sort key TOOL#<sku> when the document carries one; a
 * field of no catalog_tool is refused.  Else SL_ECORRUPT naming the field,
 * and out is unusable.  version is the document's `v` (0 without one). */
sl_status schema_catalog_entry_from_bson(const bson_t *doc, schema_catalog_doc *out, sl_error *err);

/* A compiled catalog: entries in the order they were added, each with its
 * patterns compiled (and JIT-compiled).  Build it on one thread (new, add...);
 * once built it is immutable and every function below that takes a const
 * catalog is thread-safe. */
typedef struct schema_catalog schema_catalog;

#define SCHEMA_CATALOG_NONE SIZE_MAX /* the index of no entry */

/* An empty catalog.  On SL_OK free *out with schema_catalog_free(). */
sl_status schema_catalog_new(schema_catalog **out, sl_error *err);

/* Checks e (schema_catalog_entry_check), compiles its patterns and appends a
 * copy (the catalog owns it; e may go afterwards).  SL_EINVAL naming the
 * field when e is out of bounds, a pattern does not compile ("labels[2]") or
 * the sku is already in the catalog ("sku"); SL_ENOMEM.  On failure the
 * catalog is unchanged. */
sl_status schema_catalog_add(schema_catalog *c, const schema_catalog_entry *e, sl_error *err);

void schema_catalog_free(schema_catalog **c); /* NULL and *c NULL are fine; *c becomes NULL */

/* Entries in the catalog (0 for NULL). */
size_t schema_catalog_size(const schema_catalog *c);

/* Entry i (i < size), owned by the catalog: valid until it is freed. */
const schema_catalog_entry *schema_catalog_at(const schema_catalog *c, size_t i);

/* The index of the entry of sku, or SCHEMA_CATALOG_NONE.  O(log n) when the
 * entries were added in SKU byte order (as the loaders add them), else O(n). */
size_t schema_catalog_find(const schema_catalog *c, const char *sku);

/* Maps a detector label to the index of its entry: the FIRST entry, in the
 * order they were added, one of whose patterns matches the whole label
 * (within an entry, patterns are tried in their order).  The loaders add the
 * entries in SKU byte order (the order of their sort keys TOOL#<sku>), so when
 * the patterns of two SKUs overlap, the smaller SKU wins.  *index is
 * SCHEMA_CATALOG_NONE when no pattern matches (an unmapped label; c may be
 * NULL or empty).  SL_EINVAL naming "label" when label[0..len) is not valid
 * UTF-8; SL_EINVAL naming the entry and pattern when PCRE2 cannot finish a
 * match (SCHEMA_CATALOG_MATCH_LIMIT); SL_ENOMEM.  *index is written only on
 * SL_OK.
 *
 * Cost: one PCRE2 match per pattern tried, so O(patterns of the catalog) for
 * an unmapped label.  Detections repeat a few distinct labels millions of
 * times (a 3-hour surgery is ~20 million detections of a few dozen labels):
 * callers match each DISTINCT label once, cache the index (frames already
 * store each frame's distinct labels), and then work by index. */
sl_status schema_catalog_match(const schema_catalog *c, const char *label, size_t len,
                               size_t *index, sl_error *err);

/* ---------------------------------------------------------------------------
 * A surgery's life cycle (schema/surgery.c; docs/documents.md "surgery").
 * The surgery META document ends with these fields, in this order; ingest
 * keeps them when a PUT replaces the description, the engine's transitions
 * (engine.h, "Surgery life cycle") change them, and detections are accepted
 * only while the status is open.
 *
 *   open      detections arrive (the status a PUT creates)
 *   closed    no more detections; the usage analysis is queued or running
 *   analyzed  the last analysis finished; its results stand
 *   failed    the last analysis stopped on an error (analysis_error says which)
 * ------------------------------------------------------------------------- */
#define SCHEMA_F_STATUS           "status"
#define SCHEMA_F_CLOSED_MS        "closed_ms"      /* int64: when it was closed; 0 while open */
#define SCHEMA_F_ANALYZED_MS      "analyzed_ms"    /* int64: when the last analysis ended; 0 */
#define SCHEMA_F_ANALYSIS_ERROR   "analysis_error" /* string: why it failed; "" unless failed */
#define SCHEMA_ANALYSIS_ERROR_MAX 511u             /* bytes kept of the reason (sl_error's) */

typedef enum schema_surgery_status {
    SCHEMA_SURGERY_OPEN = 1,
    SCHEMA_SURGERY_CLOSED = 2,
    SCHEMA_SURGERY_ANALYZED = 3,
    SCHEMA_SURGERY_FAILED = 4
} schema_surgery_status;

/* "open", "closed", "analyzed", "failed" ("?" for another value). */
const char *schema_surgery_status_name(schema_surgery_status s);

/* The status named s[0..len); SL_EINVAL naming "status" for another word. */
sl_status schema_surgery_status_parse(const char *s, size_t len, schema_surgery_status *out,
                                      sl_error *err);

typedef struct schema_surgery_life {
    schema_surgery_status status;
    int64_t closed_ms;   /* first close; kept through re-analyses */
    int64_t analyzed_ms; /* end of the last analysis (analyzed or failed) */
    char analysis_error[SCHEMA_ANALYSIS_ERROR_MAX + 1];
} schema_surgery_life;

/* A new surgery's: open, no times, no error. */
void schema_surgery_life_init(schema_surgery_life *l);

/* Reads the life-cycle fields of a surgery document.  status and closed_ms
 * are required (every surgery document has had them); analyzed_ms and
 * analysis_error are read as 0 and "" when absent (documents written before
 * they existed).  A field of the wrong type, an unknown status, a negative
 * time or an over-long or invalid UTF-8 error is SL_ECORRUPT naming the
 * field.  *out is written only on SL_OK. */
sl_status schema_surgery_life_from_bson(const bson_t *doc, schema_surgery_life *out, sl_error *err);

/* Appends status, closed_ms, analyzed_ms and analysis_error to doc, in that
 * order; false when doc is full. */
bool schema_surgery_life_append(bson_t *doc, const schema_surgery_life *l);

/* ---------------------------------------------------------------------------
 * The surgery's description (docs/documents.md "surgery"): the fields of the
 * META document that more than ingest reads.  The usage analysis reads the
 * hospital and procedure it files results under, the start (the summary's
 * date), the frame rate (its windows are given in milliseconds) and the
 * scrub table: a polygon of SCHEMA_TABLE_POINTS_MIN..MAX points [x, y],
 * numbers in [0, 1] of the picture's width and height.
 * ------------------------------------------------------------------------- */
#define SCHEMA_F_SURGERY        "surgery"
#define SCHEMA_F_HOSPITAL       "hospital"
#define SCHEMA_F_PROCEDURE      "procedure"
#define SCHEMA_F_STARTED_MS     "started_ms"
#define SCHEMA_F_FPS            "fps"
#define SCHEMA_F_TABLE          "table"
#define SCHEMA_TABLE_POINTS_MIN 3u
#define SCHEMA_TABLE_POINTS_MAX 256u
#define SCHEMA_FPS_MAX          1000.0 /* frames per second; above 0 */

/* ---------------------------------------------------------------------------
 * Tool-usage results (docs/documents.md "tool_result", "surgery_summary";
 * written by the engine's usage analysis, engine.h "Tool usage"; read by the
 * listener (the summary's tools), the API and `sightline evaluate`).
 *
 * tool_result, T#t#SURGERY#id / TOOL#<sku>#<nnnn> (schema_sk_tool_instance):
 * one per opened physical instance.  surgery_summary, T#t#SURGERY#id /
 * SUMMARY: the surgery's totals, one `tools` entry per SKU opened.
 * ------------------------------------------------------------------------- */
#define SCHEMA_F_INSTANCE         "instance"         /* int32: 1..SCHEMA_INSTANCE_MAX per SKU */
#define SCHEMA_F_OPENED           "opened"           /* bool (result) or int64 units (summary) */
#define SCHEMA_F_USED             "used"             /* bool (result) or int64 units (summary) */
#define SCHEMA_F_FIRST_SEEN_FRAME "first_seen_frame" /* int64: its first sighting on the table */
#define SCHEMA_F_FIRST_FRAME      "first_frame"      /* int64: the frame it counted as opened */
#define SCHEMA_F_LAST_FRAME       "last_frame"       /* int64: its last sighting */
#define SCHEMA_F_LEFT_FRAME       "left_frame"       /* int64: first departure; -1 never */
#define SCHEMA_F_RETURNED_FRAME   "returned_frame"   /* int64: first return after it; -1 */
#define SCHEMA_F_CONFIDENCE_MICRO "confidence_micro" /* int64: decision confidence, 0..1e6 */
#define SCHEMA_F_EVIDENCE         "evidence"         /* array of int64 frame numbers */
#define SCHEMA_F_SLOT             "slot"             /* {x, y, w, h}: int64 micro-units */
#define SCHEMA_EVIDENCE_MAX       8u

#define SCHEMA_F_UNUSED              "unused"      /* int64 units */
#define SCHEMA_F_WASTE_CENTS         "waste_cents" /* int64 */
#define SCHEMA_F_TOOLS               "tools"       /* array, one entry per SKU opened */
#define SCHEMA_F_OPENED_UNITS        "opened_units"
#define SCHEMA_F_USED_UNITS          "used_units"
#define SCHEMA_F_UNUSED_UNITS        "unused_units"
#define SCHEMA_F_FRAMES              "frames"       /* int64: frames analyzed */
#define SCHEMA_F_FRAMES_EMPTY        "frames_empty" /* int64: ... with no detection */
#define SCHEMA_F_DETECTIONS          "detections"
#define SCHEMA_F_UNMAPPED_DETECTIONS "unmapped_detections"
#define SCHEMA_F_UNMAPPED_LABELS     "unmapped_labels" /* array of {label, detections} */
#define SCHEMA_F_LABEL               "label"
#define SCHEMA_F_OCCLUDER            "occluder" /* bool: the label matched the occluder pattern */
#define SCHEMA_F_PARAMS              "params"   /* the analysis parameters, by name */
#define SCHEMA_UNMAPPED_LABELS_MAX   32u        /* unmapped labels a summary lists */

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
