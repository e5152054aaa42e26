/* ingest_http.h -- what the ingest-route tests share on top of the test
 * support library (tests/support/support.h): the frames of a surgery read
 * back through GET .../frames page by page, the frames a parser makes of a
 * fixture in-process, a byte dump of the store, and a tenant (hospital or
 * brand client) set up with a key of every role, the fixture surgery and the
 * fixture catalog. */
#ifndef SIGHTLINE_TESTS_API_INGEST_HTTP_H
#define SIGHTLINE_TESTS_API_INGEST_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "tests/support/support.h"
#include "ingest/ingest.h"

/* METHOD base+path with the body text (NULL for none). */
int ih_req(const support_server *s, const char *method, const char *path, const char *key,
           const char *body, support_resp *r);

/* One detection / frame as the API answers it or a parser emits it. */
typedef struct ih_det {
    char label[160];
    char sku[160]; /* "" when null */
    int has_sku;
    double conf, x, y, w, h;
} ih_det;

typedef struct ih_frame {
    int64_t frame;
    size_t n;
    ih_det *d;
} ih_frame;

typedef struct ih_frames {
    size_t n, cap;
    ih_frame *f;
    size_t pages; /* GET pages it took */
} ih_frames;

void ih_frames_free(ih_frames *fr);

/* Reads every frame of a surgery through GET .../frames?limit=N[&extra],
 * following `next`; 0 when every page answered 200 with the contract's
 * shape (frames array, next string or null). */
int ih_get_frames(const support_server *s, const char *key, const char *surgery, int limit,
                  const char *extra, ih_frames *out);

/* The SKU each label must get with the fixture catalog (ih_put_catalog),
 * written down by hand from its patterns -- FORCEPS-1: "forceps"; SC-10:
 * "scalpel", "(?i)scalpel[ _-]?10"; SPONGE-18: "sponge", "(?i)surgical
 * sponge"; each matched against the whole label, case as written unless (?i)
 * (docs/formats.md) -- never computed with ingest's matcher.  sku NULL: the
 * label must match nothing.  Every label of the fixtures and of realdata is
 * listed, and more at the edges of the patterns.  Ends with {NULL, NULL}. */
typedef struct ih_sku {
    const char *label, *sku;
} ih_sku;

extern const ih_sku ih_fixture_skus[];

/* The entry of label in table, NULL when it is not listed. */
const ih_sku *ih_sku_find(const ih_sku *table, const char *label);

/* Parses a fixture in-process with opt (the frames the server should
 * store); 0 on success.  Labels get their SKU from skus (NULL: no catalog, no
 * SKU); a label the table does not list fails the parse, naming it. */
int ih_parse_file(const char *path, const ingest_parse_options *opt, const ih_sku *skus,
                  ih_frames *out);

/* Compares the SKU of every detection of fr with the table; returns the
 * number of detections that differ or whose label is not listed (each new
 * label printed once). */
int ih_frames_check_skus(const ih_frames *fr, const ih_sku *skus, const char *what);

/* 0 when a and b hold the same frames in the same order with the same
 * labels, SKUs, and values to the micro-unit; prints the first difference. */
int ih_frames_equal(const ih_frames *a, const ih_frames *b, const char *what);

/* Every document of items, and the tenants' documents of aggregates (not the
 * engine's lease, which it renews on a clock), as bytes; plus the feed head.
 * The store is opened read-only beside the running server. */
typedef struct ih_dump {
    char *bytes;
    size_t len;
    size_t docs;
    char head[512];
} ih_dump;

int ih_dump_store(const char *store_uri, ih_dump *out);
void ih_dump_free(ih_dump *d);

/* Waits (up to 20 s) until the aggregates listener has applied every feed
 * event; 0 when it did. */
int ih_wait_listener(const char *store_uri);

/* Sets up a server's tenant with keys of every role, the fixture surgery as
 * `surgery` and the fixture catalog; 0 on success. */
typedef struct ih_keys {
    char admin[128], ingest[128], staff[128], viewer[128];
} ih_keys;

int ih_tenant(const support_server *s, const char *tenant, ih_keys *k);
/* As ih_tenant, for a tenant of kind ("hospital" or "brand-client"). */
int ih_tenant_of_kind(const support_server *s, const char *tenant, const char *kind, ih_keys *k);
int ih_put_surgery(const support_server *s, const char *key, const char *surgery);
int ih_put_catalog(const support_server *s, const char *key);

#endif
