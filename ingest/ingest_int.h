/* ingest_int.h -- what the files of ingest/ share and nobody else sees: the
 * bounded streaming JSON reader over yajl (json.c, json_filter.c), exact
 * number parsing (json_number.c), the small JSON tree used for PUT bodies and
 * asset lines (tree.c), the parser core the formats plug into (parser.c),
 * the frame codec (frame_doc.c) and the spool folder's descriptor-level
 * operations (spool_fs.c). */
#ifndef SIGHTLINE_INGEST_INT_H
#define SIGHTLINE_INGEST_INT_H

#include "ingest.h"

#include <stdarg.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <yajl/yajl_parse.h>

/* ---------------------------------------------------------------------------
 * Streaming JSON (json.c; the pre-filter in json_filter.c, numbers in
 * json_number.c): yajl behind a pre-filter that bounds strings and
 * tokens, repairs darknet's unescaped backslashes and maps offsets back to
 * the input; the reader bounds depth and keys, refuses duplicate keys and
 * keeps the JSON path of the current value for messages.
 * ------------------------------------------------------------------------- */
typedef enum ingest__jev {
    INGEST__J_NULL,
    INGEST__J_BOOL,
    INGEST__J_NUMBER, /* v->s/len is the number as written (valid JSON syntax) */
    INGEST__J_STRING, /* v->s/len is the decoded string (valid UTF-8 by schema_utf8_feed(),
                         surrogate escapes paired; may hold NUL from \u0000; not NUL-terminated) */
    INGEST__J_MAP,    /* an object starts; depth already counts it */
    INGEST__J_KEY,    /* v->s/len is the key (valid UTF-8, no NUL); checked for duplicates */
    INGEST__J_END_MAP,
    INGEST__J_ARRAY,
    INGEST__J_END_ARRAY
} ingest__jev;

typedef struct ingest__jval {
    const char *s;
    size_t len;
    int b; /* INGEST__J_BOOL */
} ingest__jval;

typedef struct ingest__json ingest__json;

/* Receives each event; returns false to stop (after ingest__json_fail()).
 * For a value, ingest__json_depth() is the depth of its container; for
 * INGEST__J_MAP/ARRAY it already includes the new container. */
typedef bool (*ingest__json_fn)(void *ctx, ingest__jev ev, const ingest__jval *v);

typedef struct ingest__json_options {
    const ingest_limits *limits; /* required */
    bool multi;                  /* a sequence of values (NDJSON) instead of one */
    bool darknet_escapes;        /* repair backslashes that start no JSON escape */
} ingest__json_options;

/* On success *out is freed with ingest__json_free(). */
sl_status ingest__json_new(const ingest__json_options *o, ingest__json_fn fn, void *ctx,
                           ingest__json **out, sl_error *err);
void ingest__json_free(ingest__json **j);

/* Feeds input; on error err names offset, path and rule. */
sl_status ingest__json_feed(ingest__json *j, const void *data, size_t len, sl_error *err);

/* Ends the input.  allow_open_top accepts an input that stops inside the
 * top-level array between two elements (the darknet demo stream). */
sl_status ingest__json_finish(ingest__json *j, bool allow_open_top, sl_error *err);

/* Records an error at the current value (path and byte offset); returns false. */
bool ingest__json_fail(ingest__json *j, sl_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records an error naming sub (e.g. "confidence") below the current path. */
bool ingest__json_fail_at(ingest__json *j, const char *sub, sl_status s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

int ingest__json_depth(const ingest__json *j);
bool ingest__json_active(const ingest__json *j);    /* inside a callback of feed/finish */
int64_t ingest__json_offset(const ingest__json *j); /* input offset just after the current token */
uint64_t ingest__json_bytes(const ingest__json *j); /* input bytes fed so far */
uint64_t ingest__json_line(const ingest__json *j);  /* multi: 1-based line of the current value */
/* Index of the current element of the array at depth d (1-based depth). */
int64_t ingest__json_index(const ingest__json *j, int d);
/* Writes the JSON path of the current value ("[12].objects[3].confidence"). */
void ingest__json_path(const ingest__json *j, char *out, size_t n);
const char *ingest__jev_name(ingest__jev ev); /* "a string", "an object", ... */

/* Numbers as written in JSON, parsed exactly (correctly rounded); false when
 * the text is not a finite number.  ingest__number_int accepts a whole
 * number written with a fraction or exponent ("3.0") up to 2^53. */
bool ingest__number(const char *s, size_t len, double *out);
bool ingest__number_int(const char *s, size_t len, int64_t *out);

/* ---------------------------------------------------------------------------
 * The JSON reader's state (json.c, json_filter.c; nobody else touches it).
 * ------------------------------------------------------------------------- */
#define INGEST__JSON_CHUNK     (64u * 1024u) /* bytes handed to yajl at once */
#define INGEST__JSON_KEY_SHOWN 48u           /* bytes of a key kept for paths */
#define INGEST__JSON_TOKEN_MAX 64u           /* bytes of a number */
#define INGEST__JSON_DEPTH_CAP 64u           /* whatever the limits say */

typedef struct ingest__json_level {
    bool is_map;
    bool open_item;  /* a member / element is being read: the path names it */
    bool key_cut;    /* key[] holds only the start of a long key */
    uint16_t keylen; /* bytes of key[] used */
    int64_t index;   /* array: current element, -1 before the first */
    int64_t start;   /* input offset of the opening bracket */
    uint32_t nkeys;
    size_t keys_at;   /* where this object's keys start in the key arena */
    uint64_t keymask; /* one bit per key hash: most keys need no scan */
    char key[INGEST__JSON_KEY_SHOWN];
} ingest__json_level;

typedef enum ingest__json_fstate {
    INGEST__JF_OUT,    /* between tokens */
    INGEST__JF_IN,     /* inside a string */
    INGEST__JF_ESC,    /* after a backslash (the next byte is escaped) */
    INGEST__JF_U,      /* after "\u" and nhex of its hex digits */
    INGEST__JF_DK_ESC, /* darknet: after a backslash, not yet written */
    INGEST__JF_DK_U    /* darknet: after "\u" and nhex hex digits, not yet written */
} ingest__json_fstate;

struct ingest__json {
    yajl_handle h;
    ingest__json_fn fn;
    void *ctx;
    ingest_limits lim;
    bool multi, dk;
    int depth;
    ingest__json_level lv[INGEST__JSON_DEPTH_CAP + 1];
    char *keys; /* arena of the keys of open objects: [u16 len][bytes]... */
    size_t keys_len, keys_cap;
    /* pre-filter */
    struct filter_state {
        ingest__json_fstate fs;
        int nhex;
        char hex[4];
        uint64_t str_len;
        int64_t str_start;
        uint32_t run;    /* bytes of the number or literal being read */
        schema_utf8 u8;  /* the raw bytes of the string being read */
        uint32_t cp;     /* INGEST__JF_U: the code unit of the \u escape so far */
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
    enum { INGEST__JSON_CUR_FIXED, INGEST__JSON_CUR_TOKEN, INGEST__JSON_CUR_STRING } cur_kind;
    size_t cur_len;
    int64_t cur_start; /* INGEST__JSON_CUR_FIXED */
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

/* Input offset of position pos of out[]: bytes the filter inserted before it
 * do not count. */
int64_t ingest__json_map_pos(const ingest__json *j, size_t pos);

/* Input offset just after the token yajl is at. */
int64_t ingest__json_token_end(const ingest__json *j);

/* Fixes where the current value starts (out[] is about to be reused, or the
 * culprit is known). */
void ingest__json_set_fixed(ingest__json *j, int64_t off);

/* Records the error at offset, named by the current path (and sub below it);
 * returns false. */
bool ingest__json_vfail(ingest__json *j, const char *sub, int64_t offset, sl_status s,
                        const char *fmt, va_list ap);

/* ---------------------------------------------------------------------------
 * JSON trees (tree.c) for small bounded values: PUT bodies, asset lines,
 * category maps.  Every node lives in the tree's arena.
 * ------------------------------------------------------------------------- */
typedef enum ingest__jtype {
    INGEST__T_NULL,
    INGEST__T_BOOL,
    INGEST__T_NUMBER,
    INGEST__T_STRING,
    INGEST__T_OBJECT,
    INGEST__T_ARRAY
} ingest__jtype;

typedef struct ingest__jnode ingest__jnode;
struct ingest__jnode {
    ingest__jtype type;
    int64_t offset;  /* input offset just after the value's first token */
    const char *key; /* in an object: the key (NUL-terminated) */
    uint32_t index;  /* in an array: the position */
    const char *s;   /* string (NUL-terminated, may hold NUL) or number text */
    uint32_t len;
    int b;
    uint32_t count; /* children */
    ingest__jnode *first, *last, *next, *parent;
};

typedef struct ingest__tree ingest__tree;

/* Called by a multi-value tree for each complete top-level value.  root
 * and everything below is valid during the call only. */
typedef sl_status (*ingest__tree_fn)(void *ctx, ingest__tree *t, const ingest__jnode *root,
                                     sl_error *err);

/* Parses one JSON value of at most lim->max_record bytes.  On success *out
 * is freed with ingest__tree_free(); the root is ingest__tree_root(). */
sl_status ingest__tree_parse(const void *json, size_t len, const ingest_limits *lim,
                             ingest__tree **out, sl_error *err);

/* A streaming reader of a sequence of values (NDJSON), calling fn for each;
 * each value is bounded by lim->max_record bytes. */
sl_status ingest__tree_stream_new(const ingest_limits *lim, ingest__tree_fn fn, void *ctx,
                                  ingest__tree **out, sl_error *err);
sl_status ingest__tree_feed(ingest__tree *t, const void *data, size_t len, sl_error *err);
sl_status ingest__tree_finish(ingest__tree *t, sl_error *err);
uint64_t ingest__tree_bytes(const ingest__tree *t);

const ingest__jnode *ingest__tree_root(const ingest__tree *t);
void ingest__tree_free(ingest__tree **t);

/* The path of a node ("table[3][0]"), with "line N: " first for a value of a
 * sequence. */
void ingest__tree_path(const ingest__tree *t, const ingest__jnode *n, char *out, size_t len);

/* Records an error at node n (its path and offset); returns s. */
sl_status ingest__tree_fail(const ingest__tree *t, const ingest__jnode *n, sl_error *err,
                            sl_status s, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* The member key of object o, or NULL. */
const ingest__jnode *ingest__tree_get(const ingest__jnode *o, const char *key);

/* Typed members.  required: a missing member is an error; else *out is left
 * alone and the call returns SL_OK.  Errors name the member and the rule. */
sl_status ingest__tree_string(const ingest__tree *t, const ingest__jnode *o, const char *key,
                              bool required, uint32_t max_len, const char **out, sl_error *err);
sl_status ingest__tree_component(const ingest__tree *t, const ingest__jnode *o, const char *key,
                                 bool required, const char **out, sl_error *err);
sl_status ingest__tree_double(const ingest__tree *t, const ingest__jnode *o, const char *key,
                              bool required, double lo, double hi, double *out, sl_error *err);
sl_status ingest__tree_int(const ingest__tree *t, const ingest__jnode *o, const char *key,
                           bool required, int64_t lo, int64_t hi, int64_t *out, sl_error *err);
sl_status ingest__tree_bool(const ingest__tree *t, const ingest__jnode *o, const char *key,
                            bool required, bool *out, sl_error *err);
/* A member that must be of type ty (array/object); *out NULL when absent. */
sl_status ingest__tree_typed(const ingest__tree *t, const ingest__jnode *o, const char *key,
                             bool required, ingest__jtype ty, const ingest__jnode **out,
                             sl_error *err);
/* A node's number in [lo, hi]. */
sl_status ingest__tree_node_double(const ingest__tree *t, const ingest__jnode *n, double lo,
                                   double hi, double *out, sl_error *err);
const char *ingest__jtype_name(ingest__jtype ty);

/* ---------------------------------------------------------------------------
 * The parser core (parser.c) and the formats that plug into it.
 * ------------------------------------------------------------------------- */
typedef struct ingest__format {
    sl_status (*init)(ingest_parser *p, sl_error *err);   /* allocates p->fs */
    ingest__json_fn event;                                /* ctx is the ingest_parser */
    sl_status (*finish)(ingest_parser *p, sl_error *err); /* may be NULL */
    void (*free_state)(ingest_parser *p);                 /* may be NULL */
    bool multi;                                           /* NDJSON */
    bool darknet_escapes;
    bool open_top; /* may end inside the top array */
} ingest__format;

extern const ingest__format ingest__fmt_darknet, ingest__fmt_darknet_stream, ingest__fmt_coco,
    ingest__fmt_tfod, ingest__fmt_ndjson;

/* Frames seen in one input: a sparse bitmap of 64 Ki-frame pages. */
typedef struct ingest__frameset {
    uint32_t *page_no; /* sorted page numbers */
    uint64_t **bits;   /* parallel: 1024 words each */
    size_t n, cap;
} ingest__frameset;

typedef struct ingest__label {
    char *name; /* NUL-terminated */
    uint32_t len;
    uint32_t hash;
} ingest__label;

struct ingest_parser {
    ingest_parse_options opt;
    ingest_limits lim;
    ingest_frame_fn fn;
    void *ctx;
    const ingest__format *fmt;
    void *fs; /* the format's state */
    ingest__json *json;
    sl_error *err; /* the caller's, during feed/finish */
    /* the frame being built */
    ingest_detection *dets;
    uint32_t ndets, cap_dets;
    /* interned labels: open addressing on hash -> index+1 */
    ingest__label *labels;
    uint32_t nlabels, cap_labels;
    uint32_t *slots;
    uint32_t nslots;
    ingest__frameset seen;
    bool failed, finished;
};

/* Interns a label (validated: 1..INGEST_LABEL_MAX bytes, no control
 * character); errors go to the JSON reader's current position. */
bool ingest__label_intern(ingest_parser *p, const char *s, size_t len, uint32_t *id);

/* Appends a detection to the frame being built (bounded by max_detections). */
bool ingest__det_push(ingest_parser *p, const ingest_detection *d);

/* Turns a raw frame number from the input into the frame number (offset
 * applied, checked against 0..SCHEMA_FRAME_MAX).  Error at the current
 * position naming what. */
bool ingest__frame_number(ingest_parser *p, int64_t raw, const char *what, uint32_t *frame);

/* The last run of digits in the base name of a file name ("a/img0042.jpg"
 * -> 42); false when there is none or it does not fit. */
bool ingest__filename_number(const char *s, size_t len, int64_t *out);

/* For a format's init: p->fs = a zeroed state of size bytes (the parser
 * frees it); SL_ENOMEM otherwise. */
sl_status ingest__state_new(ingest_parser *p, size_t size, sl_error *err);

/* A member an object must have, as a bit of the format's "have" mask. */
typedef struct ingest__member {
    unsigned bit;
    const char *name;
} ingest__member;

/* True when have holds the bit of each of required[0..n); else the error
 * "<thing> has no <name>" for the first missing one. */
bool ingest__members_present(ingest_parser *p, unsigned have, const ingest__member *required,
                             size_t n, const char *thing);

/* A frame's number as an input gives it (darknet, NDJSON, TF-OD): an id
 * member, and the number in its file name.  Cleared per frame. */
typedef struct ingest__frame_ref {
    bool have_id, have_file_no;
    int64_t id, file_no;
} ingest__frame_ref;

/* The current value as a frame's "frame" member: a whole number, into r. */
bool ingest__frame_ref_id(ingest_parser *p, ingest__frame_ref *r, ingest__jev ev,
                          const ingest__jval *v);

/* The current value as a frame's "filename" member: a string, whose number
 * (if it has one) r keeps. */
bool ingest__frame_ref_filename(ingest_parser *p, ingest__frame_ref *r, ingest__jev ev,
                                const ingest__jval *v);

/* The raw frame number opt.frame_source asks for: the number in the file
 * name, else the id (id_name names it in messages; no_id is the error when
 * it is missing).  thing ("frame", "dict") names the object in the error
 * when the file name has no number.  *what names the source for
 * ingest__frame_emit. */
bool ingest__frame_pick(ingest_parser *p, const ingest__frame_ref *r, const char *thing,
                        const char *id_name, const char *no_id, int64_t *raw, const char **what);

/* ingest__frame_number of raw, then ingest__emit at the current offset. */
bool ingest__frame_emit(ingest_parser *p, int64_t raw, const char *what);

/* Emits the frame being built (dets[0..ndets)) and clears it.  Refuses a
 * frame number already emitted by this input. */
sl_status ingest__emit(ingest_parser *p, uint32_t frame, int64_t offset, sl_error *err);

/* Checks that v (the value of the current JSON value, or of its member sub
 * when sub is not NULL) lies in [lo, hi] (lo excluded when lo_open); the
 * message names the value, the range and why. */
bool ingest__check_range(ingest_parser *p, const char *sub, const char *name, double v, double lo,
                         bool lo_open, double hi, const char *why);

/* The shortest decimal text that reads back as v, for messages. */
void ingest__fmt_number(double v, char out[32]);

/* Parses the current JSON number into *out, refusing anything else. */
bool ingest__get_number(ingest_parser *p, ingest__jev ev, const ingest__jval *v, const char *name,
                        double *out);

/* Stores a box given as top-left corner and size in image fractions whose
 * centre lies in the image and whose size is in (0, 1]: the parts outside
 * the image are cut off (detectors do not clip: darknet boxes at the edge
 * stray up to 7% outside).  Refuses (naming member sub of the current
 * value) a box left thinner than INGEST_BOX_MIN. */
#define INGEST_BOX_MIN   1e-6    /* one micro-unit: the resolution of stored boxes */
#define INGEST_MICRO_ONE 1000000 /* 1 (a whole image side, a confidence of 1) in micro-units */
bool ingest__box_set(ingest_parser *p, const char *sub, ingest_detection *d, double x, double y,
                     double w, double h);

/* A helper every format uses to skip a value it does not read. */
typedef struct ingest__skip {
    int depth; /* containers open inside the skipped value */
} ingest__skip;

/* Returns true while ev belongs to a skipped value (and consumes it). */
static inline bool ingest__skipping(ingest__skip *sk, ingest__jev ev)
{
    if (sk->depth == 0)
        return false;
    if (ev == INGEST__J_MAP || ev == INGEST__J_ARRAY)
        sk->depth++;
    else if (ev == INGEST__J_END_MAP || ev == INGEST__J_END_ARRAY)
        sk->depth--;
    return true;
}

/* Starts skipping the value that begins with ev (a scalar is skipped at once). */
static inline void ingest__skip_value(ingest__skip *sk, ingest__jev ev)
{
    if (ev == INGEST__J_MAP || ev == INGEST__J_ARRAY)
        sk->depth = 1;
}

/* The event loop of a format whose frames and detections are objects at
 * fixed depths (darknet, NDJSON): a skipped value is consumed, a key is
 * classified by key_of into the format's key, the end of the object at
 * frame_depth or det_depth is reported, and every other event goes to value
 * with the depth of its container.  The format's state is p->fs.  Inline,
 * so that with a constant shape the calls stay direct. */
typedef struct ingest__objects {
    int frame_depth, det_depth;
    int (*key_of)(int depth, const char *s, size_t n);
    bool (*frame_end)(ingest_parser *p);
    bool (*det_end)(ingest_parser *p);
    bool (*value)(ingest_parser *p, int cd, ingest__jev ev, const ingest__jval *v);
} ingest__objects;

static inline bool ingest__objects_event(ingest_parser *p, const ingest__objects *o,
                                         ingest__skip *skip, int *key, ingest__jev ev,
                                         const ingest__jval *v)
{
    bool ok = true;
    if (!ingest__skipping(skip, ev)) {
        int d = ingest__json_depth(p->json);
        switch (ev) {
        case INGEST__J_KEY:
            *key = o->key_of(d, v->s, v->len);
            break;
        case INGEST__J_END_MAP:
            ok = d == o->frame_depth ? o->frame_end(p) : d == o->det_depth ? o->det_end(p) : true;
            break;
        case INGEST__J_END_ARRAY:
            break;
        case INGEST__J_MAP:
        case INGEST__J_ARRAY:
            ok = o->value(p, d - 1, ev, v);
            break;
        default:
            ok = o->value(p, d, ev, v);
            break;
        }
    }
    return ok;
}

/* ---------------------------------------------------------------------------
 * What the PUT body codecs share (body.c).
 * ------------------------------------------------------------------------- */

/* SL_OK when n is an object, else the error "<what> is a JSON object, not
 * <its type>" at n. */
sl_status ingest__body_object(const ingest__tree *t, const ingest__jnode *n, const char *what,
                              sl_error *err);

/* Appends member key: an array of the numbers of arr's elements (checked
 * before); false when the document is full. */
bool ingest__bson_numbers(bson_t *parent, const char *key, const ingest__jnode *arr);

/* The end of a codec: frees the tree; on SL_OK hands doc to *out (the
 * caller's to bson_destroy()), else destroys it (doc may be NULL).
 * Returns rc. */
sl_status ingest__body_done(sl_status rc, ingest__tree **t, bson_t *doc, bson_t **out);

/* Puts doc into items unconditionally (equal content is no write) and
 * destroys it, whatever the outcome. */
sl_status ingest__body_put(store *s, bson_t *doc, store_put_result *res, sl_error *err);

/* Builds the asset document of one parsed body (asset.c) into doc (which the
 * caller initialized).  asset NULL: the id is the body's "asset" member,
 * returned in *id_out (valid while the tree is). */
sl_status ingest__asset_doc_node(const char *tenant, const char *asset, const ingest__tree *t,
                                 const ingest__jnode *root, bson_t *doc, const char **id_out,
                                 sl_error *err);

/* ---------------------------------------------------------------------------
 * The writer thread (writer.c): puts queued documents into a store batch.
 * ------------------------------------------------------------------------- */
typedef struct ingest__writer ingest__writer;

/* Starts a thread that owns batch b until ingest__writer_finish() returns
 * (or _abort()).  On success *out is ended with one of those two. */
sl_status ingest__writer_start(store_batch *b, ingest__writer **out, sl_error *err);

/* Queues a copy of doc for the batch (waits when the queue is full).  Fails
 * with the writer's error once the batch refused a document. */
sl_status ingest__writer_put(ingest__writer *w, const bson_t *doc, sl_error *err);

/* Waits until every queued document is in the batch, stops the thread and
 * frees the writer (*w NULL); the batch is the caller's again.  *changed:
 * documents whose content changed. */
sl_status ingest__writer_finish(ingest__writer **w, uint64_t *changed, sl_error *err);

/* Stops the thread, dropping what is queued; frees the writer.  NULL is fine. */
void ingest__writer_abort(ingest__writer **w);

/* ---------------------------------------------------------------------------
 * Frame documents (frame_doc.c).
 * ------------------------------------------------------------------------- */

typedef struct ingest__frame_enc {
    uint32_t *stamp; /* per input label: gen when it has a local index in this frame */
    uint16_t *local; /* per input label: its index in this frame's labels */
    uint32_t *order; /* frame-local index -> input label id */
    uint32_t cap;    /* entries of the three arrays above */
    uint32_t gen;
    uint8_t *det;
    size_t det_cap;
} ingest__frame_enc;

/* Encodes the frame document of frame f (docs/documents.md "frame") into
 * doc, which the caller initialized (bson_init / bson_reinit).  names[id]
 * and skus[id] are the name and SKU of input label id (SKU NULL when
 * unmapped); labels are numbered below nlabels.  e is scratch space kept between calls (zero it
 * first, free it with ingest__frame_enc_free()). */
sl_status ingest__frame_doc(ingest__frame_enc *e, bson_t *doc, const char *pk,
                            const ingest_frame *f, uint32_t nlabels, const char *const *names,
                            const char *const *skus, sl_error *err);
void ingest__frame_enc_free(ingest__frame_enc *e);

/* round(v * 1e6) of a v in [0, 1], clamped to 0..INGEST_MICRO_ONE: the
 * micro-units a confidence or box value is stored in (frame_doc.c).  A
 * frame document's box has x + w and y + h at most INGEST_MICRO_ONE,
 * exactly: the size is cut there when corner and size rounded apart pass
 * it. */
int32_t ingest__micro(double v);

/* ---------------------------------------------------------------------------
 * The spool folder (spool.c) and its descriptor-level operations (spool_fs.c).
 * ------------------------------------------------------------------------- */
#define INGEST__SPOOL_DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

/* printf into new memory: the caller frees it; NULL when out of memory. */
char *ingest__spool_fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));

/* "a symbolic link", "a folder", ... for a file type. */
const char *ingest__spool_kind_name(mode_t m);

/* Opens the folder name in the folder at dirfd without following a link;
 * *st gets what it is.  SL_ENOTFOUND when gone, SL_EFORBIDDEN when it is a
 * link or anything but a folder, SL_EIO otherwise; the message does not name
 * it (the caller does).  On success *out is the caller's to close. */
sl_status ingest__spool_open_folder(int dirfd, const char *name, int *out, struct stat *st,
                                    sl_error *err);

/* Moves name from the folder at dfd into its sub/ (made if missing).  sub/
 * must be a real folder: a link or anything else there is refused
 * (SL_EFORBIDDEN) and nothing moves.  On success *sub_fd is sub/ open, the
 * caller's to close.  What sits at sub/name is replaced (a file sent again),
 * never followed. */
sl_status ingest__spool_move_into(int dfd, const char *name, const char *sub, int *sub_fd,
                                  sl_error *err);

/* Writes NAME.error.json in the folder at dfd (failed/).  The temporary
 * file is created with O_CREAT|O_EXCL|O_NOFOLLOW: a name already there (a
 * crash's leftover, or a link planted to make the watcher write elsewhere)
 * is never opened but removed -- it is an entry of failed/, the spool's own
 * -- and made anew; renameat then replaces whatever is at NAME.error.json
 * without following it.  On failure why says what went wrong. */
bool ingest__spool_write_error(int dfd, const char *name, const sl_error *e, char *why, size_t cap);

/* True when nobody has the file open for writing (a read lease is granted
 * only then).  Where leases are not supported, the file is taken. */
bool ingest__spool_complete(int fd);

#endif /* SIGHTLINE_INGEST_INT_H */
