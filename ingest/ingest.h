/* ingest.h -- detector outputs and brand scores into documents.  The whole
 * public face of ingest/: streaming parsers (one per format, all producing one
 * frame shape), the codecs of the PUT bodies (surgery, catalog tool, asset),
 * the compiled catalog (label -> SKU), the batch writer (one input = one
 * atomic store batch) and the spool-folder watcher.
 *
 * Formats and their rules: docs/formats.md.  Document shapes: docs/documents.md.
 *
 * Threads: every object here belongs to one thread at a time, except
 * ingest_catalog_cache (thread-safe) and the compiled catalogs it hands out
 * (immutable, reference-counted). */
#ifndef SIGHTLINE_INGEST_H
#define SIGHTLINE_INGEST_H

#include <bson/bson.h>
#include <stddef.h>
#include <stdint.h>

#include "../schema/schema.h"
#include "../store/store.h"

/* ---------------------------------------------------------------------------
 * Limits.  Every input is bounded; a value over a limit refuses the whole
 * input with SL_ETOOLARGE (sizes) or SL_EINVAL (shapes), naming the limit.
 * ------------------------------------------------------------------------- */
typedef struct ingest_limits {
    uint64_t max_input_bytes; /* one input (file or request body) */
    uint32_t max_depth;       /* JSON nesting (containers open at once) */
    uint32_t max_string;      /* bytes of one JSON string as written */
    uint32_t max_keys;        /* keys of one JSON object */
    uint32_t max_detections;  /* detections in one frame */
    uint32_t max_labels;      /* distinct labels in one input */
    uint32_t max_record;      /* bytes of one PUT body or one asset line */
    uint32_t max_records;     /* assets in one batch */
} ingest_limits;

#define INGEST_DEFAULT_MAX_INPUT      (64ull << 30)
#define INGEST_DEFAULT_MAX_DEPTH      16u
#define INGEST_DEFAULT_MAX_STRING     16384u
#define INGEST_DEFAULT_MAX_KEYS       256u
#define INGEST_DEFAULT_MAX_DETECTIONS 10000u
#define INGEST_DEFAULT_MAX_LABELS     4096u
#define INGEST_DEFAULT_MAX_RECORD     (2u << 20)
#define INGEST_DEFAULT_MAX_RECORDS    1000000u
#define INGEST_LABEL_MAX              128u /* bytes of one detector label */

/* Fills *l with the defaults above. */
void ingest_limits_default(ingest_limits *l);

/* Checks that json[0..len) is one JSON value held to the rules of every
 * input (docs/formats.md, "Rules for every input"): strict UTF-8 with paired
 * surrogate escapes, no duplicate key in an object, no NaN or Infinity, no
 * trailing garbage, nesting at most max_depth (capped at 64), strings, keys
 * and numbers within the default bounds.  For bodies another parser reads
 * afterwards (the API's small JSON bodies): SL_EINVAL or SL_ETOOLARGE naming
 * the JSON path ("" at the top) and the byte offset otherwise. */
sl_status ingest_json_check(const void *json, size_t len, uint32_t max_depth, sl_error *err);

/* ---------------------------------------------------------------------------
 * Formats.
 * ------------------------------------------------------------------------- */
typedef enum ingest_format {
    INGEST_FORMAT_DARKNET = 1,    /* darknet -out result.json: a complete array of frames */
    INGEST_FORMAT_DARKNET_STREAM, /* darknet video demo (-json_port): an array never closed */
    INGEST_FORMAT_COCO,           /* COCO detection results */
    INGEST_FORMAT_TFOD,           /* TensorFlow Object Detection API output dicts */
    INGEST_FORMAT_NDJSON,         /* Sightline NDJSON frames */
    INGEST_FORMAT_ASSETS          /* Sightline NDJSON brand assets */
} ingest_format;

/* "darknet", "darknet-stream", "coco", "tfod", "ndjson", "assets".  An
 * unknown name is SL_EUNSUPPORTED, naming the known ones. */
sl_status ingest_format_parse(const char *name, ingest_format *out, sl_error *err);
const char *ingest_format_name(ingest_format f);

/* ---------------------------------------------------------------------------
 * Category maps: numeric class ids of COCO and TF-OD outputs -> label names.
 * ------------------------------------------------------------------------- */
typedef struct ingest_categories ingest_categories;

/* The COCO 91-id list (80 names, ids 1..90 with gaps), as COCO results and
 * the TF-OD COCO models number them.  Static: never freed, always valid. */
const ingest_categories *ingest_categories_coco(void);

/* Parses a category map from JSON: either an array of {"id": n, "name": s}
 * (COCO's "categories") or an object holding such an array under
 * "categories" (a whole COCO annotation file: the rest is skipped), or an
 * object {"<id>": "<name>", ...}.  On success *out is freed with
 * ingest_categories_free(). */
sl_status ingest_categories_parse(const void *json, size_t len, const ingest_limits *lim,
                                  ingest_categories **out, sl_error *err);

/* As above, streaming from the file at path. */
sl_status ingest_categories_load(const char *path, const ingest_limits *lim,
                                 ingest_categories **out, sl_error *err);

/* The name of class id, or NULL when the map does not have it. */
const char *ingest_categories_name(const ingest_categories *c, int64_t id);

/* Frees a map from _parse/_load and sets *c to NULL; NULL and the static COCO
 * map are fine (ignored). */
void ingest_categories_free(ingest_categories **c);

/* ---------------------------------------------------------------------------
 * The normalized frame every detection parser produces.
 * ------------------------------------------------------------------------- */
typedef struct ingest_detection {
    const char *label; /* NUL-terminated, valid UTF-8; valid until the parser is freed */
    uint32_t label_id; /* dense index of the label in this input (0..labels-1) */
    double confidence; /* in [0, 1] */
    double x, y, w, h; /* normalized, top-left origin, inside [0, 1], w and h > 0 */
} ingest_detection;

typedef struct ingest_frame {
    uint32_t frame;                     /* frame number, offset applied */
    uint32_t count;                     /* detections; 0 is a frame where nothing was seen */
    const ingest_detection *detections; /* valid during the callback only */
    int64_t offset;                     /* byte offset of the frame's record in the input */
} ingest_frame;

/* Receives each frame, in input order (COCO: in image_id order).  Returning
 * an error stops the parse; the error is passed back by feed/finish. */
typedef sl_status (*ingest_frame_fn)(void *ctx, const ingest_frame *frame, sl_error *err);

typedef enum ingest_frame_source {
    INGEST_FRAME_FROM_ID = 0,  /* frame_id / image_id / "frame" / position */
    INGEST_FRAME_FROM_FILENAME /* the last run of digits in the file name's base name */
} ingest_frame_source;

typedef struct ingest_parse_options {
    ingest_format format; /* any but INGEST_FORMAT_ASSETS */
    int64_t frame_offset; /* added to every frame number (may be negative) */
    ingest_frame_source frame_source;
    const ingest_categories *categories; /* COCO/TF-OD ids -> names; NULL: the COCO list */
    uint32_t image_width;                /* COCO: pixel size of the images (required) */
    uint32_t image_height;
    const ingest_limits *limits; /* NULL: defaults */
    const char *spill_dir;       /* COCO: where out-of-order results spill; NULL: $TMPDIR or /tmp */
} ingest_parse_options;

typedef struct ingest_parser ingest_parser;

/* Creates a streaming parser that calls fn for each frame.  opt is copied
 * (categories must outlive the parser).  On success *out is freed with
 * ingest_parser_free(). */
sl_status ingest_parser_new(const ingest_parse_options *opt, ingest_frame_fn fn, void *ctx,
                            ingest_parser **out, sl_error *err);

/* Feeds the next len bytes of input (any split is fine).  After an error the
 * parser only accepts ingest_parser_free(); err names the byte offset and
 * JSON path at fault and the rule broken. */
sl_status ingest_parser_feed(ingest_parser *p, const void *data, size_t len, sl_error *err);

/* Ends the input: refuses it when incomplete (e.g. a darknet run cut off
 * before its closing ']'); for COCO, emits the grouped frames. */
sl_status ingest_parser_finish(ingest_parser *p, sl_error *err);

/* Distinct labels seen so far, and the label of a label_id. */
uint32_t ingest_parser_labels(const ingest_parser *p);
const char *ingest_parser_label(const ingest_parser *p, uint32_t label_id);

void ingest_parser_free(ingest_parser **p);

/* ---------------------------------------------------------------------------
 * Catalog: label patterns (PCRE2) -> SKU.
 *
 * The field names, bounds, decoder and matcher are schema's (schema.h, "The
 * tool catalog"): a pattern matches a whole label (anchored at both ends);
 * entries are tried in SKU order and the first match wins.  An unmatched
 * label is unmapped (sku null), counted and reported, never dropped.
 * ------------------------------------------------------------------------- */
typedef struct ingest_catalog ingest_catalog;

/* Builds the catalog_tool document of PUT /v1/catalog/{sku} from its JSON
 * body {"name", "labels": [...], "unit_cost_cents", "single_use"} within
 * schema's bounds (SCHEMA_CATALOG_*, SCHEMA_UNIT_COST_MAX); every pattern is
 * compiled to refuse bad ones with their offset, and the document is decoded
 * back with schema_catalog_entry_from_bson, so what is stored is what the
 * engine reads.  On success *out is a new document (bson_destroy()). */
sl_status ingest_catalog_doc(const char *tenant, const char *sku, const void *json, size_t len,
                             const ingest_limits *lim, bson_t **out, sl_error *err);

/* Whether tenant's catalog has room for the entry of sku: SL_OK when sku is
 * in it already (a PUT replaces it, adding nothing) or the catalog holds
 * fewer than max entries (its stored documents, counted page by page, at
 * most max + 1 of them read); SL_ECONFLICT naming `limit` (the setting's
 * name, e.g. "catalog-entries-max"), max and the tenant when it is full.
 * Counted, then written by the caller: callers that may race serialize
 * around both (the server does, per process). */
sl_status ingest_catalog_room(store *s, const char *tenant, const char *sku, size_t max,
                              const char *limit, sl_error *err);

/* Validates and writes one catalog entry (`sightline ingest --format
 * catalog`): refused (ingest_catalog_room, SL_ECONFLICT) when it would take
 * the tenant past SCHEMA_CATALOG_ENTRIES_MAX entries. */
sl_status ingest_catalog_put(store *s, const char *tenant, const char *sku, const void *json,
                             size_t len, store_put_result *res, sl_error *err);

/* Reads and compiles the tenant's catalog.  A stored entry that does not
 * decode or compile is skipped (ingest_catalog_skipped counts it): its labels
 * go unmapped, detections keep arriving.  On success *out holds one
 * reference: ingest_catalog_release() it. */
sl_status ingest_catalog_load(store *s, const char *tenant, ingest_catalog **out, sl_error *err);

/* The SKU a label maps to into *sku (a string owned by the catalog), or NULL
 * when the label is unmapped; c may be NULL (nothing maps).  Errors as
 * schema_catalog_match's (a label that is not UTF-8, a pattern PCRE2 cannot
 * finish matching; an ingest job keeps such a label unmapped).  Thread-safe.
 * One match per pattern: call it once per distinct label. */
sl_status ingest_catalog_match(const ingest_catalog *c, const char *label, size_t len,
                               const char **sku, sl_error *err);

/* Entries in the catalog, and stored entries skipped because they do not
 * decode or compile. */
size_t ingest_catalog_size(const ingest_catalog *c);
size_t ingest_catalog_skipped(const ingest_catalog *c);

/* Drops one reference and sets *c to NULL; the last one frees.  NULL is fine. */
void ingest_catalog_release(ingest_catalog **c);

/* Compiled catalogs, one per tenant, recompiled only when the catalog
 * changed (a new version of any entry, or an entry added or removed).
 * Thread-safe. */
typedef struct ingest_catalog_cache ingest_catalog_cache;

sl_status ingest_catalog_cache_new(ingest_catalog_cache **out, sl_error *err);

/* The current compiled catalog of tenant; *out holds a reference
 * (ingest_catalog_release()). */
sl_status ingest_catalog_cache_get(ingest_catalog_cache *cc, store *s, const char *tenant,
                                   ingest_catalog **out, sl_error *err);

/* How many times a catalog was compiled (to observe the cache). */
uint64_t ingest_catalog_cache_compiles(const ingest_catalog_cache *cc);

void ingest_catalog_cache_free(ingest_catalog_cache **cc);

/* ---------------------------------------------------------------------------
 * Surgeries (PUT /v1/surgeries/{id}).
 * ------------------------------------------------------------------------- */

/* Builds the surgery META document from the JSON body {"hospital", "room",
 * "procedure", "surgeon", "started_at", "fps", "frame_width", "frame_height",
 * "table": [[x, y], ...]}.  existing (may be NULL) is the stored document:
 * its life cycle (schema_surgery_life: status, closed_ms, analyzed_ms,
 * analysis_error) is kept, so a PUT never reopens a surgery; SL_ECORRUPT when
 * those fields of existing do not read.  On success *out is a new document
 * (bson_destroy()). */
sl_status ingest_surgery_doc(const char *tenant, const char *surgery, const void *json, size_t len,
                             const bson_t *existing, const ingest_limits *lim, bson_t **out,
                             sl_error *err);

/* Validates and writes the surgery (create or replace), keeping its life cycle. */
sl_status ingest_surgery_put(store *s, const char *tenant, const char *surgery, const void *json,
                             size_t len, store_put_result *res, sl_error *err);

/* As ingest_surgery_put; on success *written (may be NULL) is the very
 * document written, without `v` (res->version is its version), so an answer
 * shows this write and not one that raced in after it: bson_destroy() it.
 * When the content was equal nothing was written, and *written is what
 * the stored document holds. */
sl_status ingest_surgery_write(store *s, const char *tenant, const char *surgery, const void *json,
                               size_t len, store_put_result *res, bson_t **written, sl_error *err);

/* ---------------------------------------------------------------------------
 * Brand assets (PUT/DELETE /v1/assets/{id}, POST /v1/assets:batch).
 * ------------------------------------------------------------------------- */

/* Builds the asset document from the JSON body {"client", "brand",
 * "campaign", "sector", "media_type", "memorability", "saliency": {...}}
 * plus optional "brand_id", "model_version", "progression" (videos) and
 * "asset" (must equal asset when present).  asset may be NULL, then the
 * body's "asset" is the id.  On success *out is a new document
 * (bson_destroy()). */
sl_status ingest_asset_doc(const char *tenant, const char *asset, const void *json, size_t len,
                           const ingest_limits *lim, bson_t **out, sl_error *err);

sl_status ingest_asset_put(store *s, const char *tenant, const char *asset, const void *json,
                           size_t len, store_put_result *res, sl_error *err);

/* Deletes the asset; *deleted (may be NULL) says whether it existed. */
sl_status ingest_asset_delete(store *s, const char *tenant, const char *asset, int *deleted,
                              sl_error *err);

/* ---------------------------------------------------------------------------
 * Jobs: one input (file, request body) = one atomic store batch.
 * ------------------------------------------------------------------------- */
#define INGEST_UNMAPPED_SHOWN 8 /* unmapped labels named in a summary */

typedef struct ingest_summary {
    uint64_t bytes;  /* input bytes */
    uint64_t frames; /* frame documents written (including empty ones) */
    uint64_t empty_frames;
    uint64_t detections;
    uint64_t unmapped;        /* detections whose label matched no catalog entry */
    uint32_t unmapped_labels; /* distinct unmapped labels */
    char unmapped_names[INGEST_UNMAPPED_SHOWN][INGEST_LABEL_MAX + 1]; /* the first few */
    int64_t first_frame, last_frame;                                  /* -1 when no frame */
    uint64_t assets;                                                  /* asset documents written */
    uint64_t changed; /* documents whose content changed (0 on a re-send) */
} ingest_summary;

typedef struct ingest_request {
    const char *tenant;
    const char *surgery; /* detections; NULL for INGEST_FORMAT_ASSETS */
    ingest_format format;
    int64_t frame_offset;
    ingest_frame_source frame_source;
    const ingest_categories *categories; /* NULL: the COCO list */
    uint32_t image_width, image_height;  /* COCO; 0: the surgery's frame size */
    const ingest_limits *limits;         /* NULL: defaults */
    const char *spill_dir;
    ingest_catalog_cache *catalogs; /* NULL: compile the catalog for this job */
} ingest_request;

typedef struct ingest_job ingest_job;

/* Starts a job: checks the tenant/surgery (an unknown surgery is
 * SL_ENOTFOUND, a closed one SL_ECONFLICT), loads the catalog and opens the
 * store batch.  The request is copied; its strings and categories must
 * outlive the job.  On success *out ends with ingest_job_commit() or
 * ingest_job_abort(). */
sl_status ingest_job_begin(store *s, const ingest_request *rq, ingest_job **out, sl_error *err);

/* Parses the next bytes of input and stages their documents in the batch. */
sl_status ingest_job_feed(ingest_job *j, const void *data, size_t len, sl_error *err);

/* Ends the input and commits the batch; frees the job and sets *j to NULL
 * whatever the outcome.  On error nothing of the input is stored.  sum (may
 * be NULL) is written on success. */
sl_status ingest_job_commit(ingest_job **j, ingest_summary *sum, sl_error *err);

/* Discards the job and its batch; sets *j to NULL.  NULL is fine. */
void ingest_job_abort(ingest_job **j);

/* Called now and then while a file is read (bytes read so far, file size). */
typedef void (*ingest_progress_fn)(void *ctx, uint64_t done, uint64_t total);

/* Ingests one file as one job.  On error err->message starts with nothing
 * of the path (the caller adds it) and nothing is stored. */
sl_status ingest_file(store *s, const ingest_request *rq, const char *path,
                      ingest_progress_fn progress, void *progress_ctx, ingest_summary *sum,
                      sl_error *err);

/* As ingest_file, reading the file already open at fd from its current
 * offset to its end, so a caller that checked what it opened (the spool
 * folder: fstat after O_NOFOLLOW) ingests exactly that.  fd stays the
 * caller's: it is neither closed nor rewound. */
sl_status ingest_fd(store *s, const ingest_request *rq, int fd, ingest_progress_fn progress,
                    void *progress_ctx, ingest_summary *sum, sl_error *err);

/* ---------------------------------------------------------------------------
 * Spool folder: DIR/<tenant>/<surgery-id>/FILE and DIR/<tenant>/assets/FILE.
 *
 * A file is taken once it is complete (closed after writing, or moved in),
 * ingested as one job, then moved to done/ beside it, or to failed/ with
 * FILE.error.json.  The format comes from the file name (docs/formats.md):
 * *.darknet.json or *.json (darknet), *.darknet-stream.json, *.coco.json,
 * *.tfod.json, *.tfod.ndjson, *.ndjson (Sightline frames); in assets/ every
 * file is asset NDJSON.  Names starting with '.' are ignored (write there,
 * then rename).  Files present at start are taken too, so a restart resumes;
 * a file ingested but not yet moved when the process died is ingested again,
 * which changes nothing (keys are deterministic).
 *
 * Trust (docs/formats.md, "Who may write the spool folder"): whoever writes
 * DIR is not trusted with anything outside it.  The watcher follows no
 * symbolic link below DIR: a folder that is a link is reported and left
 * alone; done/ or failed/ that is not a real folder is reported and nothing
 * is moved into it.  It takes only regular files with one link, owned as
 * ingest_spool_options.owner says, and reads them from the descriptor it
 * checked; anything else dropped into a surgery or assets folder (a link, a
 * hard link, a FIFO, a file of another owner) is refused unread: moved to
 * failed/ with its FILE.error.json (status SL_EFORBIDDEN) and reported.
 * ------------------------------------------------------------------------- */
typedef struct ingest_spool ingest_spool;

/* Reports each file taken, and each thing the spool refused to follow.
 * path is where the file is now (in done/ or failed/ when it was moved).
 * sum is set when the file was stored, err when anything went wrong; both
 * are set when it was stored but could not be moved (then it stays where it
 * was, err says why). */
typedef void (*ingest_spool_fn)(void *ctx, const char *path, const ingest_summary *sum,
                                const sl_error *err);

/* Whose files the spool takes (st_uid of the file). */
typedef enum ingest_spool_owner {
    INGEST_SPOOL_OWNER_SELF = 0, /* the watcher's own effective uid (the default) */
    INGEST_SPOOL_OWNER_UID,      /* owner_uid */
    INGEST_SPOOL_OWNER_ANY       /* anyone's (links and special files are still refused) */
} ingest_spool_owner;

typedef struct ingest_spool_options {
    ingest_catalog_cache *catalogs; /* may be NULL */
    const ingest_limits *limits;    /* NULL: defaults */
    ingest_spool_fn on_file;        /* may be NULL */
    void *ctx;
    ingest_spool_owner owner; /* zero: the watcher's own uid */
    uint32_t owner_uid;       /* INGEST_SPOOL_OWNER_UID */
    /* Tests only, NULL otherwise: called with ctx and the path below dir of
     * each folder and file just before the spool opens it, so a test can
     * swap it for a link at that very moment. */
    void (*before_open)(void *ctx, const char *rel);
} ingest_spool_options;

/* Sets o->owner (and o->owner_uid) from "any", a uid or a user name (the
 * `--spool-owner` option).  Anything else is SL_EINVAL naming it. */
sl_status ingest_spool_owner_parse(const char *s, ingest_spool_options *o, sl_error *err);

/* Watches dir (created if missing; a symbolic link is refused: name the
 * folder itself).  On success *out is freed with ingest_spool_close(). */
sl_status ingest_spool_open(store *s, const char *dir, const ingest_spool_options *opt,
                            ingest_spool **out, sl_error *err);

/* Takes the files that are waiting, then follows new ones until
 * ingest_spool_stop() is called or timeout_ms passes (-1: no timeout).
 * Returns SL_OK in both cases; a file that fails is not an error of the
 * spool (it goes to failed/). */
sl_status ingest_spool_run(ingest_spool *sp, int timeout_ms, sl_error *err);

/* Makes ingest_spool_run() return soon.  Async-signal-safe and thread-safe. */
void ingest_spool_stop(ingest_spool *sp);

/* Files taken so far (ingested or refused), and how many of them were not
 * stored. */
uint64_t ingest_spool_taken(const ingest_spool *sp);
uint64_t ingest_spool_failed(const ingest_spool *sp);

void ingest_spool_close(ingest_spool **sp);

/* ---------------------------------------------------------------------------
 * Uploads (ingest/upload.c): an input that arrives slowly, like an HTTP
 * request body, is spooled to an unnamed temporary file as it comes and
 * ingested as one job once complete, so the store batch (which makes other
 * writers wait) is never open while a client is still sending.
 * ------------------------------------------------------------------------- */
typedef struct ingest_upload ingest_upload;

/* Where uploads go when no directory is given: $TMPDIR, else /tmp, read
 * once per process.  (`sightline serve --upload-dir` passes its own.) */
const char *ingest_upload_dir(void);

/* Creates an unnamed file (O_TMPFILE, else mkstemp + unlink) in dir (NULL or
 * "": ingest_upload_dir()) that takes at most max_bytes.  On success *out is
 * freed with ingest_upload_free(), which also releases the file's space. */
sl_status ingest_upload_open(const char *dir, uint64_t max_bytes, ingest_upload **out,
                             sl_error *err);

/* Appends len bytes.  SL_ETOOLARGE past max_bytes; SL_EBUSY when the disk is
 * full, SL_EIO on other write errors.  After an error only free the upload. */
sl_status ingest_upload_write(ingest_upload *u, const void *data, size_t len, sl_error *err);

/* Bytes appended so far. */
uint64_t ingest_upload_bytes(const ingest_upload *u);

/* Ingests everything appended as one job (ingest_job_begin/feed/commit):
 * on error nothing of it is stored and err names the byte offset in the
 * upload.  sum (may be NULL) is written on success.  Call at most once. */
sl_status ingest_upload_ingest(ingest_upload *u, store *s, const ingest_request *rq,
                               ingest_summary *sum, sl_error *err);

/* Closes and frees the upload and sets *u to NULL.  NULL is fine. */
void ingest_upload_free(ingest_upload **u);

#endif /* SIGHTLINE_INGEST_H */
