/* conformance.c -- every promise of store/store.h, exercised through the port
 * alone, against each adapter in `adapters` (add MongoDB with one line; set
 * SIGHTLINE_TEST_MONGO_URI to run its row, the ctest entry conformance_mongo,
 * reported skipped without it).  Expected results come from the
 * writes the test made or from a byte-wise model of ranges, never from a
 * recorded run.
 *
 * The exactly-once test re-executes this binary as a consumer process and
 * kills it with SIGKILL at chosen and at random points. */
#include "tests/seed.h"
#include "tests/store/store_test.h"
#include "tests/support/bson_readable.h"

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

/* ---------------------------------------------------------------------------
 * Adapters.
 * ------------------------------------------------------------------------- */
typedef struct adapter {
    const char *name; /* what store_backend() says */
    /* Writes the URI of a fresh, empty store into out; dir is a private
     * temporary directory.  small_feed asks for a feed that retains at most
     * 50 events; returns 0 when the adapter cannot (the test is skipped). */
    int (*uri)(const char *dir, int small_feed, char *out, size_t n);
} adapter;

static int sqlite_uri(const char *dir, int small_feed, char *out, size_t n)
{
    static int seq;
    snprintf(out, n, "sqlite:%s/c%d.db%s", dir, ++seq, small_feed ? "?feed_retain=50" : "");
    return 1;
}

/* SIGHTLINE_TEST_MONGO_URI is a server URI ("mongodb://host:27017/?replicaSet=rs0");
 * each store gets its own database name. */
static int mongo_uri(const char *dir, int small_feed, char *out, size_t n)
{
    static int seq;
    const char *base = getenv("SIGHTLINE_TEST_MONGO_URI");
    (void)dir;
    if (!base || small_feed)
        return 0;
    const char *hosts = strstr(base, "://");
    const char *slash = hosts ? strchr(hosts + 3, '/') : NULL;
    const char *query = slash ? strchr(slash, '?') : NULL;
    int hl = slash ? (int)(slash - base) : (int)strlen(base);
    snprintf(out, n, "%.*s/sl_conf_%d_%d%s", hl, base, (int)getpid(), ++seq, query ? query : "");
    return 1;
}

static const adapter adapters[] = {
    {"sqlite", sqlite_uri},
};
static const adapter mongo_adapter = {"mongo", mongo_uri};

static char tmp[64];

static store *open_fresh(const adapter *a, int small_feed, char *uri_out)
{
    char uri[512];
    store *s = NULL;
    sl_error e;
    sl_error_clear(&e);
    if (!a->uri(tmp, small_feed, uri, sizeof uri))
        return NULL;
    sl_status rc = store_open(uri, NULL, &s, &e);
    if (rc != SL_OK)
        fprintf(stderr, "store_open(%s): %s: %s\n", uri, sl_status_name(rc), e.message);
    REQUIRE(rc == SL_OK);
    if (uri_out)
        snprintf(uri_out, 512, "%s", uri);
    return s;
}

/* ---------------------------------------------------------------------------
 * Well-formed BSON: the store's verdict on a document's bytes is the one of
 * tests/support/bson_readable.h (libbson's bson_validate, and every element
 * readable), also where store.c decides with its own faster walk.
 * Regression test for that walk: byte flips, cut lengths and edge values.
 * ------------------------------------------------------------------------- */

/* A document with every kind of element, nested. */
static bson_t *zoo_new(void)
{
    bson_t *d = doc_new("Z", "zoo", 1), sub, arr;
    const uint8_t bin[3] = {1, 2, 3};
    bson_oid_t oid;
    bson_oid_init_from_string(&oid, "0123456789abcdef01234567");
    BSON_APPEND_DOUBLE(d, "dbl", 0.25);
    BSON_APPEND_INT32(d, "i32", -7);
    BSON_APPEND_BOOL(d, "yes", true);
    BSON_APPEND_NULL(d, "nil");
    BSON_APPEND_DATE_TIME(d, "when", 1700000000000);
    BSON_APPEND_BINARY(d, "bin", BSON_SUBTYPE_BINARY, bin, sizeof bin);
    BSON_APPEND_OID(d, "oid", &oid);
    BSON_APPEND_REGEX(d, "re", "^a.*", "i");
    BSON_APPEND_UTF8(d, "caf\xc3\xa9", "non-ASCII key");
    BSON_APPEND_DOCUMENT_BEGIN(d, "sub", &sub);
    BSON_APPEND_UTF8(&sub, "s", "text");
    BSON_APPEND_ARRAY_BEGIN(&sub, "hist", &arr);
    for (int i = 0; i < 12; i++) {
        char key[8];
        snprintf(key, sizeof key, "%d", i);
        bson_append_int64(&arr, key, -1, (int64_t)i * 1000003);
    }
    bson_append_array_end(&sub, &arr);
    bson_append_document_end(d, &sub);
    return d;
}

/* 1 when store_put found bytes well-formed (whatever else it said of them). */
static int store_finds_well_formed(store *s, const uint8_t *data, uint32_t len)
{
    bson_t view;
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(bson_init_static(&view, data, len));
    sl_status rc = store_put(s, STORE_ITEMS, &view, cond_none(), NULL, &e);
    return !(rc == SL_EINVAL && strstr(e.message, "not well-formed") != NULL);
}

static void check_verdict(store *s, const uint8_t *data, uint32_t len)
{
    bson_t view;
    if (!bson_init_static(&view, data, len))
        return; /* not even a bson_t (e.g. no final NUL): nobody can hand it to the store */
    int libbson = test_bson_well_formed(&view);
    int ours = store_finds_well_formed(s, data, len);
    if (ours != libbson) {
        fprintf(stderr, "  store says %s, libbson says %s, for %u bytes:", ours ? "ok" : "bad",
                libbson ? "ok" : "bad", len);
        for (uint32_t i = 0; i < len; i++)
            fprintf(stderr, " %02x", data[i]);
        fprintf(stderr, "\n");
    }
    CHECK_INT(ours, libbson);
}

static void test_well_formed(const adapter *a)
{
    store *s = open_fresh(a, 0, NULL);
    bson_t *zoo = zoo_new();
    uint32_t len = zoo->len;
    uint8_t *buf = malloc(len);
    REQUIRE(buf != NULL);
    const uint8_t *orig = bson_get_data(zoo);
    check_verdict(s, orig, len);
    CHECK(store_finds_well_formed(s, orig, len));
    /* Every byte after the length, set to values that break or keep it. */
    static const uint8_t vals[] = {0x00, 0x01, 0x02, 0x05, 0x7f, 0x80, 0xc3, 0xff};
    for (uint32_t i = 4; i < len; i++) {
        for (size_t v = 0; v < sizeof vals; v++) {
            memcpy(buf, orig, len);
            if (buf[i] == vals[v])
                continue;
            buf[i] = vals[v];
            check_verdict(s, buf, len);
        }
    }
    /* Cut short (with the length fixed up) and grown by one byte. */
    for (uint32_t cut = 5; cut < len; cut += 3) {
        memcpy(buf, orig, cut);
        buf[0] = (uint8_t)cut;
        buf[1] = (uint8_t)(cut >> 8);
        buf[2] = buf[3] = 0;
        buf[cut - 1] = 0;
        check_verdict(s, buf, cut);
    }
    /* Edge values the walk looks at. */
    bson_t *d = doc_new("Z", "bool", 1);
    BSON_APPEND_BOOL(d, "b", true);
    memcpy(buf, bson_get_data(d), d->len);
    buf[d->len - 2] = 2; /* a boolean that is neither 0 nor 1 */
    check_verdict(s, buf, d->len);
    bson_destroy(d);
    d = doc_new("Z", "key", 1);
    BSON_APPEND_INT32(d, "\xc3\xa9", 1);
    memcpy(buf, bson_get_data(d), d->len);
    check_verdict(s, buf, d->len); /* a valid UTF-8 key */
    buf[d->len - 8] = 0xff;        /* ... made invalid */
    check_verdict(s, buf, d->len);
    bson_destroy(d);
    /* An element of an unknown type (0x6c) after a v: bson_validate passes
     * it, reading stops there, and dropping the v with bson_copy_to_excluding
     * aborted the process.  Regression, found by fuzz_bson_check. */
    d = doc_new("Z", "unknown", 1);
    BSON_APPEND_INT64(d, "v", 7);
    BSON_APPEND_INT32(d, "x", 1);
    memcpy(buf, bson_get_data(d), d->len);
    buf[d->len - 8] = 0x6c; /* x's type byte: [type] "x\0" [int32] then the final NUL */
    CHECK(!store_finds_well_formed(s, buf, d->len));
    check_verdict(s, buf, d->len);
    bson_destroy(d);
    /* The same inside an embedded document. */
    bson_t inner;
    d = doc_new("Z", "nested", 1);
    BSON_APPEND_DOCUMENT_BEGIN(d, "sub", &inner);
    BSON_APPEND_INT32(&inner, "x", 1);
    bson_append_document_end(d, &inner);
    memcpy(buf, bson_get_data(d), d->len);
    CHECK(store_finds_well_formed(s, buf, d->len));
    buf[d->len - 9] = 0x6c;
    CHECK(!store_finds_well_formed(s, buf, d->len));
    check_verdict(s, buf, d->len);
    bson_destroy(d);
    free(buf);
    bson_destroy(zoo);
    store_close(&s);
}

/* ---------------------------------------------------------------------------
 * Single documents: conditions, versions, equal content.
 * ------------------------------------------------------------------------- */
static void test_conditions(const adapter *a)
{
    store *s = open_fresh(a, 0, NULL);
    store_put_result r = {0, 0};
    sl_error e;
    int64_t v = 0;
    int del = -1;

    CHECK_STR(store_backend(s), a->name);
    sl_error_clear(&e);
    CHECK_INT(store_ping(s, &e), SL_OK);

    /* must not exist */
    CHECK_INT(put_n(s, STORE_ITEMS, "P", "a", 1, cond_of(STORE_COND_NOT_EXISTS, 0), &r), SL_OK);
    CHECK_INT(r.version, 1);
    CHECK_INT(r.changed, 1);
    CHECK_INT(put_n(s, STORE_ITEMS, "P", "a", 2, cond_of(STORE_COND_NOT_EXISTS, 0), &r),
              SL_ECONDITION);
    CHECK_INT(get_n(s, STORE_ITEMS, "P", "a", &v), 1); /* unchanged */
    CHECK_INT(v, 1);

    /* must exist */
    CHECK_INT(put_n(s, STORE_ITEMS, "P", "b", 1, cond_of(STORE_COND_EXISTS, 0), &r), SL_ECONDITION);
    CHECK_INT(get_n(s, STORE_ITEMS, "P", "b", NULL), -1); /* nothing created */
    CHECK_INT(put_n(s, STORE_ITEMS, "P", "a", 3, cond_of(STORE_COND_EXISTS, 0), &r), SL_OK);
    CHECK_INT(r.version, 2);

    /* version equals */
    CHECK_INT(put_n(s, STORE_ITEMS, "P", "a", 4, cond_of(STORE_COND_VERSION, 1), &r),
              SL_ECONDITION);
    CHECK_INT(get_n(s, STORE_ITEMS, "P", "a", &v), 3);
    CHECK_INT(v, 2);
    CHECK_INT(put_n(s, STORE_ITEMS, "P", "a", 4, cond_of(STORE_COND_VERSION, 2), &r), SL_OK);
    CHECK_INT(r.version, 3);
    CHECK_INT(r.changed, 1);
    /* a satisfied condition with equal content is still not a write */
    CHECK_INT(put_n(s, STORE_ITEMS, "P", "a", 4, cond_of(STORE_COND_VERSION, 3), &r), SL_OK);
    CHECK_INT(r.version, 3);
    CHECK_INT(r.changed, 0);
    CHECK_INT(put_n(s, STORE_ITEMS, "P", "zz", 4, cond_of(STORE_COND_VERSION, 1), &r),
              SL_ECONDITION);
    CHECK_INT(get_n(s, STORE_ITEMS, "P", "zz", NULL), -1);

    /* deletes */
    sl_error_clear(&e);
    CHECK_INT(store_delete(s, STORE_ITEMS, "P", "missing", cond_none(), &del, &e), SL_OK);
    CHECK_INT(del, 0);
    sl_error_clear(&e);
    CHECK_INT(store_delete(s, STORE_ITEMS, "P", "missing", cond_of(STORE_COND_EXISTS, 0), &del, &e),
              SL_ECONDITION);
    CHECK(strstr(e.message, "missing") != NULL); /* the message names the key */
    sl_error_clear(&e);
    CHECK_INT(
        store_delete(s, STORE_ITEMS, "P", "missing", cond_of(STORE_COND_VERSION, 1), &del, &e),
        SL_ECONDITION);
    sl_error_clear(&e);
    CHECK_INT(store_delete(s, STORE_ITEMS, "P", "a", cond_of(STORE_COND_VERSION, 2), &del, &e),
              SL_ECONDITION);
    CHECK_INT(get_n(s, STORE_ITEMS, "P", "a", &v), 4); /* still there */
    sl_error_clear(&e);
    CHECK_INT(store_delete(s, STORE_ITEMS, "P", "a", cond_of(STORE_COND_NOT_EXISTS, 0), &del, &e),
              SL_ECONDITION);
    CHECK_INT(get_n(s, STORE_ITEMS, "P", "a", NULL), 4);
    sl_error_clear(&e);
    CHECK_INT(store_delete(s, STORE_ITEMS, "P", "a", cond_of(STORE_COND_VERSION, 3), &del, &e),
              SL_OK);
    CHECK_INT(del, 1);
    CHECK_INT(get_n(s, STORE_ITEMS, "P", "a", NULL), -1);

    /* a condition failure is distinct from invalid input */
    sl_error_clear(&e);
    bson_t *bad = doc_new("P", "", 1);
    CHECK_INT(store_put(s, STORE_ITEMS, bad, cond_of(STORE_COND_NOT_EXISTS, 0), NULL, &e),
              SL_EINVAL);
    bson_destroy(bad);

    /* batch checks */
    store_batch *b = NULL;
    sl_error_clear(&e);
    REQUIRE(store_batch_begin(s, &b, &e) == SL_OK);
    CHECK_INT(store_batch_check(b, STORE_ITEMS, "P", "b", cond_of(STORE_COND_NOT_EXISTS, 0), &e),
              SL_OK);
    CHECK_INT(store_batch_check(b, STORE_ITEMS, "P", "b", cond_of(STORE_COND_EXISTS, 0), &e),
              SL_ECONDITION);
    store_batch_abort(&b);
    CHECK(b == NULL);
    store_close(&s);
    CHECK(s == NULL);
}

static void test_versions(const adapter *a)
{
    store *s = open_fresh(a, 0, NULL);
    store_put_result r = {0, 0};
    sl_error e;
    int64_t v = 0;

    for (int t = 0; t < 2; t++) { /* both tables keep versions */
        CHECK_INT(put_n(s, (store_table)t, "V", "x", 1, cond_none(), &r), SL_OK);
        CHECK_INT(r.version, 1);
        CHECK_INT(r.changed, 1);
        CHECK_INT(put_n(s, (store_table)t, "V", "x", 1, cond_none(), &r), SL_OK); /* equal */
        CHECK_INT(r.version, 1);
        CHECK_INT(r.changed, 0);
        CHECK_INT(put_n(s, (store_table)t, "V", "x", 2, cond_none(), &r), SL_OK);
        CHECK_INT(r.version, 2);
        CHECK_INT(r.changed, 1);
        CHECK_INT(get_n(s, (store_table)t, "V", "x", &v), 2);
        CHECK_INT(v, 2);
    }
    /* the two tables are separate */
    CHECK_INT(put_n(s, STORE_AGGREGATES, "V", "only-agg", 5, cond_none(), NULL), SL_OK);
    CHECK_INT(get_n(s, STORE_ITEMS, "V", "only-agg", NULL), -1);

    /* a v in the document is ignored: same content as stored, so no write */
    bson_t *d = doc_new("V", "x", 2);
    BSON_APPEND_INT64(d, "v", 99);
    sl_error_clear(&e);
    CHECK_INT(store_put(s, STORE_ITEMS, d, cond_none(), &r, &e), SL_OK);
    CHECK_INT(r.version, 2);
    CHECK_INT(r.changed, 0);
    bson_destroy(d);

    /* field order is content: the same fields in another order are a write */
    d = bson_new();
    BSON_APPEND_INT64(d, "n", 2);
    BSON_APPEND_UTF8(d, "pk", "V");
    BSON_APPEND_UTF8(d, "sk", "x");
    sl_error_clear(&e);
    CHECK_INT(store_put(s, STORE_ITEMS, d, cond_none(), &r, &e), SL_OK);
    CHECK_INT(r.version, 3);
    CHECK_INT(r.changed, 1);
    bson_destroy(d);

    /* what get returns: the caller's fields and v */
    bson_t *got = NULL;
    d = doc_new_gsi("V", "full", "G1", "g", NULL, NULL, 7);
    BSON_APPEND_UTF8(d, "type", "thing");
    BSON_APPEND_DOUBLE(d, "score", 0.25);
    sl_error_clear(&e);
    CHECK_INT(store_put(s, STORE_ITEMS, d, cond_none(), NULL, &e), SL_OK);
    CHECK_INT(store_get(s, STORE_ITEMS, "V", "full", &got, &e), SL_OK);
    REQUIRE(got != NULL);
    CHECK_STR(bson_str(got, "type"), "thing");
    CHECK_STR(bson_str(got, "gsi1pk"), "G1");
    CHECK_INT(bson_int(got, "n"), 7);
    CHECK_INT(bson_int(got, "v"), 1);
    CHECK_INT(bson_count_keys(got), bson_count_keys(d) + 1);
    bson_destroy(got);
    bson_destroy(d);

    /* after a delete the key starts again at 1 */
    sl_error_clear(&e);
    CHECK_INT(store_delete(s, STORE_ITEMS, "V", "x", cond_none(), NULL, &e), SL_OK);
    CHECK_INT(put_n(s, STORE_ITEMS, "V", "x", 2, cond_none(), &r), SL_OK);
    CHECK_INT(r.version, 1);
    store_close(&s);
}

static void test_invalid_input(const adapter *a)
{
    store *s = open_fresh(a, 0, NULL);
    sl_error e;
    bson_t *d;
    char big[STORE_KEY_MAX + 2];

#define PUT_FAILS(doc, status, fieldname)                                                          \
    do {                                                                                           \
        sl_error_clear(&e);                                                                        \
        CHECK_INT(store_put(s, STORE_ITEMS, doc, cond_none(), NULL, &e), status);                  \
        if (fieldname)                                                                             \
            CHECK_STR(e.field, (const char *)fieldname);                                           \
        CHECK(e.message[0] != '\0');                                                               \
    } while (0)

    d = bson_new();
    BSON_APPEND_UTF8(d, "sk", "x");
    PUT_FAILS(d, SL_EINVAL, "pk");
    bson_destroy(d);

    d = bson_new();
    BSON_APPEND_INT32(d, "pk", 5);
    BSON_APPEND_UTF8(d, "sk", "x");
    PUT_FAILS(d, SL_EINVAL, "pk");
    bson_destroy(d);

    d = doc_new("P", "", 1);
    PUT_FAILS(d, SL_EINVAL, "sk");
    bson_destroy(d);

    memset(big, 'k', sizeof big);
    big[STORE_KEY_MAX + 1] = '\0'; /* 1025 bytes */
    d = doc_new(big, "x", 1);
    PUT_FAILS(d, SL_EINVAL, "pk");
    CHECK(strstr(e.message, "1024") != NULL);
    bson_destroy(d);
    big[STORE_KEY_MAX] = '\0'; /* 1024 bytes: the limit itself is fine */
    CHECK_INT(put_n(s, STORE_ITEMS, big, "x", 1, cond_none(), NULL), SL_OK);
    CHECK_INT(get_n(s, STORE_ITEMS, big, "x", NULL), 1);

    d = doc_new("P", "bad\xc3", 1); /* cut multi-byte character */
    PUT_FAILS(d, SL_EINVAL, "sk");
    CHECK(strstr(e.message, "UTF-8") != NULL);
    bson_destroy(d);

    d = doc_new("P", "x", 1);
    BSON_APPEND_UTF8(d, "gsi1pk", "G");
    PUT_FAILS(d, SL_EINVAL, "gsi1sk");
    bson_destroy(d);

    d = doc_new("P", "x", 1);
    BSON_APPEND_UTF8(d, "gsi2sk", "G");
    PUT_FAILS(d, SL_EINVAL, "gsi2pk");
    bson_destroy(d);

    d = doc_new("P", "x", 1);
    BSON_APPEND_UTF8(d, "pk", "Q");
    PUT_FAILS(d, SL_EINVAL, "pk"); /* twice */
    bson_destroy(d);

    d = doc_new("P", "huge", 1);
    size_t blen = STORE_DOC_MAX;
    char *blob = calloc(1, blen);
    REQUIRE(blob != NULL);
    BSON_APPEND_BINARY(d, "blob", BSON_SUBTYPE_BINARY, (const uint8_t *)blob, (uint32_t)blen);
    PUT_FAILS(d, SL_ETOOLARGE, "doc");
    free(blob);
    bson_destroy(d);
    CHECK_INT(get_n(s, STORE_ITEMS, "P", "huge", NULL), -1);

    sl_error_clear(&e);
    CHECK_INT(store_put(s, STORE_ITEMS, NULL, cond_none(), NULL, &e), SL_EINVAL);
    sl_error_clear(&e);
    d = doc_new("P", "x", 1);
    CHECK_INT(store_put(s, (store_table)7, d, cond_none(), NULL, &e), SL_EINVAL);
    sl_error_clear(&e);
    CHECK_INT(store_put(s, STORE_ITEMS, d, cond_of(STORE_COND_VERSION, 0), NULL, &e), SL_EINVAL);
    bson_destroy(d);

    bson_t *got = NULL;
    sl_error_clear(&e);
    CHECK_INT(store_get(s, STORE_ITEMS, NULL, "x", &got, &e), SL_EINVAL);
    sl_error_clear(&e);
    CHECK_INT(store_get(s, STORE_ITEMS, "P", "nope", &got, &e), SL_ENOTFOUND);
    CHECK(got == NULL);

    /* queries */
    store_page p;
    store_query_opts q = {.range = {STORE_RANGE_ALL, NULL, NULL}, .limit = STORE_PAGE_MAX + 1};
    sl_error_clear(&e);
    CHECK_INT(store_query(s, STORE_ITEMS, "P", &q, &p, &e), SL_EINVAL);
    CHECK_STR(e.field, "limit");
    CHECK(p.count == 0 && p.docs == NULL && p.next_token == NULL);
    q.limit = 10;
    q.range.kind = STORE_RANGE_BETWEEN;
    q.range.lo = "a";
    sl_error_clear(&e);
    CHECK_INT(store_query(s, STORE_ITEMS, "P", &q, &p, &e), SL_EINVAL);
    CHECK_STR(e.field, "range.hi");
    q.range.kind = STORE_RANGE_GE;
    sl_error_clear(&e);
    CHECK_INT(store_scan(s, STORE_ITEMS, "", &q, &p, &e), SL_EINVAL); /* scans take no range */
    q.range.kind = STORE_RANGE_BEGINS_WITH;
    q.range.lo = "\xf4"; /* not UTF-8 on its own */
    sl_error_clear(&e);
    CHECK_INT(store_query(s, STORE_ITEMS, "P", &q, &p, &e), SL_EINVAL);
    q.range.kind = STORE_RANGE_ALL;
    sl_error_clear(&e);
    CHECK_INT(store_query_index(s, STORE_ITEMS, (store_index)3, "G", &q, &p, &e), SL_EINVAL);
    sl_error_clear(&e);
    CHECK_INT(store_query(s, STORE_ITEMS, "", &q, &p, &e), SL_EINVAL);

    /* consumer names */
    store_feed *f = NULL;
    char name[STORE_CONSUMER_MAX + 1];
    memset(name, 'c', sizeof name);
    name[STORE_CONSUMER_MAX] = '\0';
    sl_error_clear(&e);
    CHECK_INT(store_feed_open(s, name, &f, &e), SL_EINVAL);
    sl_error_clear(&e);
    CHECK_INT(store_feed_open(s, "", &f, &e), SL_EINVAL);
    sl_error_clear(&e);
    CHECK_INT(store_consumer_commit(s, "tab\there", "", "", NULL, 0, &e), SL_EINVAL);
    CHECK(f == NULL);
#undef PUT_FAILS
    store_close(&s);
}

/* ---------------------------------------------------------------------------
 * Ranges, checked against a byte-wise model.
 * ------------------------------------------------------------------------- */
static const char *const range_keys[] = {
    "A",
    "A#",
    "A#1",
    "A#1#x",
    "A#2",
    "AB",
    "Ab",
    "a",
    "A%",
    "A_",
    "A%B",
    "A\x7f",
    "B",
    "Z",
    "\xc3\xa9", /* é */
    "\xc3\xa9"
    "a",
    "\xe6\x97\xa5\xe6\x9c\xac",             /* 日本 */
    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", /* 日本語 */
    "\xef\xbf\xbf",                         /* U+FFFF */
    "\xef\xbf\xbf"
    "z",
    "\xef\xbf\xbf\xef\xbf\xbf",
    "\xf0\x90\x80\x80", /* U+10000, right after U+FFFF's successor */
    "\xf4\x8f\xbf\xbf", /* U+10FFFF, the largest code point */
    "\xf4\x8f\xbf\xbf\xf4\x8f\xbf\xbf",
    "\xf4\x8f\xbf\xbf"
    "A",
};
#define NRANGE_KEYS (sizeof range_keys / sizeof range_keys[0])

static int model_match(const store_range *r, const char *k)
{
    switch (r->kind) {
    case STORE_RANGE_ALL:
        return 1;
    case STORE_RANGE_BEGINS_WITH:
        return strncmp(k, r->lo, strlen(r->lo)) == 0;
    case STORE_RANGE_BETWEEN:
        return strcmp(k, r->lo) >= 0 && strcmp(k, r->hi) <= 0;
    case STORE_RANGE_GE:
        return strcmp(k, r->lo) >= 0;
    default:
        return strcmp(k, r->hi) <= 0;
    }
}

static int cmp_asc(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The expected keys of range r over range_keys, in order. */
static void model_keys(const store_range *r, int desc, keylist *out)
{
    const char *sorted[NRANGE_KEYS];
    memcpy(sorted, range_keys, sizeof sorted);
    qsort(sorted, NRANGE_KEYS, sizeof sorted[0], cmp_asc);
    for (size_t i = 0; i < NRANGE_KEYS; i++) {
        const char *k = sorted[desc ? NRANGE_KEYS - 1 - i : i];
        if (model_match(r, k))
            keylist_add(out, k);
    }
}

static int keylists_equal(const keylist *a, const keylist *b)
{
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->k[i], b->k[i]) != 0)
            return 0;
    return 1;
}

static void test_ranges(const adapter *a)
{
    store *s = open_fresh(a, 0, NULL);
    /* The same keys in neighbouring partitions, which must never leak in. */
    const char *parts[] = {"P", "P#", "P2", "Q"};
    for (size_t p = 0; p < 4; p++)
        for (size_t i = 0; i < NRANGE_KEYS; i++)
            REQUIRE(put_n(s, STORE_ITEMS, parts[p], range_keys[i], (int64_t)(p * 100 + i),
                          cond_none(), NULL) == SL_OK);

    const store_range ranges[] = {
        {STORE_RANGE_ALL, NULL, NULL},
        {STORE_RANGE_BEGINS_WITH, "", NULL},
        {STORE_RANGE_BEGINS_WITH, "A", NULL},
        {STORE_RANGE_BEGINS_WITH, "A#", NULL},
        {STORE_RANGE_BEGINS_WITH, "A#1", NULL},
        {STORE_RANGE_BEGINS_WITH, "AB", NULL},
        {STORE_RANGE_BEGINS_WITH, "a", NULL},  /* no case folding */
        {STORE_RANGE_BEGINS_WITH, "A%", NULL}, /* no LIKE wildcards */
        {STORE_RANGE_BEGINS_WITH, "A_", NULL},
        {STORE_RANGE_BEGINS_WITH, "\xc3\xa9", NULL},
        {STORE_RANGE_BEGINS_WITH, "\xe6\x97\xa5\xe6\x9c\xac", NULL},
        {STORE_RANGE_BEGINS_WITH, "\xef\xbf\xbf", NULL},
        {STORE_RANGE_BEGINS_WITH, "\xf4\x8f\xbf\xbf", NULL},
        {STORE_RANGE_BEGINS_WITH, "ZZZ", NULL}, /* empty */
        {STORE_RANGE_BETWEEN, "A#", "AB"},
        {STORE_RANGE_BETWEEN, "A", "A"},
        {STORE_RANGE_BETWEEN, "B", "A"}, /* empty */
        {STORE_RANGE_BETWEEN, "", "\xf4\x8f\xbf\xbf\xf4\x8f\xbf\xbf"},
        {STORE_RANGE_GE, "A#1", NULL},
        {STORE_RANGE_GE, "\xef\xbf\xbf", NULL},
        {STORE_RANGE_LE, NULL, "A#1"},
        {STORE_RANGE_LE, NULL, ""},
    };
    const size_t limits[] = {1, 3, 1000};
    for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
        for (int desc = 0; desc < 2; desc++) {
            keylist want = {0};
            model_keys(&ranges[r], desc, &want);
            for (size_t li = 0; li < 3; li++) {
                keylist got = {0};
                CHECK_INT(collect(s, Q_PARTITION, STORE_ITEMS, "P", ranges[r], desc, limits[li],
                                  "sk", &got),
                          SL_OK);
                if (!keylists_equal(&want, &got)) {
                    CHECK(keylists_equal(&want, &got));
                    fprintf(stderr, "  range #%zu desc=%d limit=%zu: got %zu keys, want %zu\n", r,
                            desc, limits[li], got.n, want.n);
                }
                keylist_free(&got);
            }
            keylist_free(&want);
        }
    }
    /* prefix of a prefix: "A" holds "A#…" and "AB", "A#" does not hold "AB" */
    keylist got = {0};
    store_range bw = {STORE_RANGE_BEGINS_WITH, "A#", NULL};
    CHECK_INT(collect(s, Q_PARTITION, STORE_ITEMS, "P", bw, 0, 1000, "sk", &got), SL_OK);
    CHECK_INT(got.n, 4); /* A#, A#1, A#1#x, A#2 */
    for (size_t i = 0; i < got.n; i++)
        CHECK(strncmp(got.k[i], "A#", 2) == 0);
    keylist_free(&got);
    /* the partition holds its own documents only */
    store_range all = {STORE_RANGE_ALL, NULL, NULL};
    CHECK_INT(collect(s, Q_PARTITION, STORE_ITEMS, "P#", all, 0, 7, "pk", &got), SL_OK);
    CHECK_INT(got.n, NRANGE_KEYS);
    for (size_t i = 0; i < got.n; i++)
        CHECK_STR(got.k[i], "P#");
    keylist_free(&got);
    CHECK_INT(collect(s, Q_PARTITION, STORE_AGGREGATES, "P", all, 0, 7, "sk", &got), SL_OK);
    CHECK_INT(got.n, 0);
    keylist_free(&got);
    store_close(&s);
}

/* Index queries order by (gsi sk, pk, sk); scans by (pk, sk) over a prefix. */
static void test_index_and_scan(const adapter *a)
{
    store *s = open_fresh(a, 0, NULL);
    sl_error e;
    struct {
        const char *pk, *sk, *g1pk, *g1sk, *g2pk, *g2sk;
    } docs[] = {
        {"T#a#1", "META", "G", "DATE#2026-01-02", "H", "z"},
        {"T#a#2", "META", "G", "DATE#2026-01-01", NULL, NULL},
        {"T#a#3", "META", "G", "DATE#2026-01-02", "H", "a"}, /* tie on gsi sk: pk decides */
        {"T#a#3", "X", "G", "DATE#2026-01-02", NULL, NULL},  /* tie on gsi sk and pk: sk */
        {"T#ab", "META", "G2", "DATE#2026-01-01", NULL, NULL},
        {"T#b", "META", NULL, NULL, "H", "m"},
        {"T#a", "META", NULL, NULL, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        bson_t *d = doc_new_gsi(docs[i].pk, docs[i].sk, docs[i].g1pk, docs[i].g1sk, docs[i].g2pk,
                                docs[i].g2sk, (int64_t)i);
        sl_error_clear(&e);
        REQUIRE(store_put(s, STORE_ITEMS, d, cond_none(), NULL, &e) == SL_OK);
        bson_destroy(d);
    }
    const char *want_g1[] = {"T#a#2|META", "T#a#1|META", "T#a#3|META", "T#a#3|X"};
    store_range all = {STORE_RANGE_ALL, NULL, NULL};
    for (size_t limit = 1; limit <= 5; limit += 2) {
        for (int desc = 0; desc < 2; desc++) {
            keylist got = {0};
            CHECK_INT(collect(s, Q_INDEX1, STORE_ITEMS, "G", all, desc, limit, "pk|sk", &got),
                      SL_OK);
            CHECK_INT(got.n, 4);
            for (size_t i = 0; i < got.n && i < 4; i++)
                CHECK_STR(got.k[i], want_g1[desc ? 3 - i : i]);
            keylist_free(&got);
        }
    }
    keylist got = {0};
    store_range day2 = {STORE_RANGE_BEGINS_WITH, "DATE#2026-01-02", NULL};
    CHECK_INT(collect(s, Q_INDEX1, STORE_ITEMS, "G", day2, 0, 2, "pk|sk", &got), SL_OK);
    CHECK_INT(got.n, 3);
    keylist_free(&got);
    store_range upto = {STORE_RANGE_LE, NULL, "DATE#2026-01-01"};
    CHECK_INT(collect(s, Q_INDEX1, STORE_ITEMS, "G", upto, 0, 2, "pk|sk", &got), SL_OK);
    CHECK_INT(got.n, 1);
    keylist_free(&got);
    CHECK_INT(collect(s, Q_INDEX2, STORE_ITEMS, "H", all, 0, 1, "pk|sk", &got), SL_OK);
    CHECK_INT(got.n, 3);
    if (got.n == 3) {
        CHECK_STR(got.k[0], "T#a#3|META"); /* gsi2sk a < m < z */
        CHECK_STR(got.k[1], "T#b|META");
        CHECK_STR(got.k[2], "T#a#1|META");
    }
    keylist_free(&got);
    CHECK_INT(collect(s, Q_INDEX1, STORE_ITEMS, "H", all, 0, 10, "pk|sk", &got), SL_OK);
    CHECK_INT(got.n, 0); /* gsi1 and gsi2 are separate */
    keylist_free(&got);

    /* dropping the gsi fields removes the document from the index */
    bson_t *d = doc_new("T#a#2", "META", 1);
    sl_error_clear(&e);
    CHECK_INT(store_put(s, STORE_ITEMS, d, cond_none(), NULL, &e), SL_OK);
    bson_destroy(d);
    CHECK_INT(collect(s, Q_INDEX1, STORE_ITEMS, "G", all, 0, 10, "pk|sk", &got), SL_OK);
    CHECK_INT(got.n, 3);
    keylist_free(&got);

    /* scans */
    CHECK_INT(collect(s, Q_SCAN, STORE_ITEMS, "T#a#", all, 0, 2, "pk|sk", &got), SL_OK);
    CHECK_INT(got.n, 4);
    if (got.n == 4) {
        CHECK_STR(got.k[0], "T#a#1|META");
        CHECK_STR(got.k[3], "T#a#3|X");
    }
    keylist_free(&got);
    CHECK_INT(collect(s, Q_SCAN, STORE_ITEMS, "", all, 1, 3, "pk|sk", &got), SL_OK);
    CHECK_INT(got.n, 7);
    if (got.n == 7) {
        CHECK_STR(got.k[0], "T#b|META");
        CHECK_STR(got.k[6], "T#a|META");
    }
    keylist_free(&got);
    CHECK_INT(collect(s, Q_SCAN, STORE_ITEMS, "T#a", all, 0, 1000, "pk|sk", &got), SL_OK);
    CHECK_INT(got.n, 6); /* T#a, T#a#1..3 (4 docs), T#ab */
    keylist_free(&got);
    store_close(&s);
}

/* ---------------------------------------------------------------------------
 * Page tokens.
 * ------------------------------------------------------------------------- */
static sl_status query_with(store *s, int kind, const char *key, store_range r, int desc,
                            const char *tok, store_page *p)
{
    store_query_opts q = {.range = r, .descending = desc, .limit = 2, .page_token = tok};
    sl_error e;
    sl_error_clear(&e);
    sl_status rc = kind == Q_PARTITION ? store_query(s, STORE_ITEMS, key, &q, p, &e)
                   : kind == Q_SCAN    ? store_scan(s, STORE_ITEMS, key, &q, p, &e)
                                    : store_query_index(s, STORE_ITEMS, STORE_GSI1, key, &q, p, &e);
    if (rc == SL_EINVAL)
        CHECK_STR(e.field, "page_token");
    return rc;
}

static void test_tokens(const adapter *a)
{
    store *s = open_fresh(a, 0, NULL);
    char sk[16];
    for (int i = 0; i < 10; i++) {
        snprintf(sk, sizeof sk, "K%02d", i);
        bson_t *d = doc_new_gsi("P", sk, "G", sk, NULL, NULL, i);
        sl_error e;
        sl_error_clear(&e);
        REQUIRE(store_put(s, STORE_ITEMS, d, cond_none(), NULL, &e) == SL_OK);
        bson_destroy(d);
        REQUIRE(put_n(s, STORE_ITEMS, "P2", sk, i, cond_none(), NULL) == SL_OK);
    }
    store_range all = {STORE_RANGE_ALL, NULL, NULL};
    store_range bw = {STORE_RANGE_BEGINS_WITH, "K0", NULL};
    store_page p;
    REQUIRE(query_with(s, Q_PARTITION, "P", all, 0, NULL, &p) == SL_OK);
    REQUIRE(p.next_token != NULL);
    char tok[STORE_TOKEN_MAX];
    snprintf(tok, sizeof tok, "%s", p.next_token);
    store_page_free(&p);
    CHECK(p.next_token == NULL && p.count == 0);

    /* the token continues its own query */
    CHECK_INT(query_with(s, Q_PARTITION, "P", all, 0, tok, &p), SL_OK);
    CHECK_INT(p.count, 2);
    store_page_free(&p);
    /* and nothing else */
    CHECK_INT(query_with(s, Q_PARTITION, "P2", all, 0, tok, &p), SL_EINVAL);
    CHECK(p.count == 0 && p.docs == NULL);
    CHECK_INT(query_with(s, Q_PARTITION, "P", all, 1, tok, &p), SL_EINVAL);
    CHECK_INT(query_with(s, Q_PARTITION, "P", bw, 0, tok, &p), SL_EINVAL);
    CHECK_INT(query_with(s, Q_INDEX1, "G", all, 0, tok, &p), SL_EINVAL);
    CHECK_INT(query_with(s, Q_SCAN, "P", all, 0, tok, &p), SL_EINVAL);
    store_query_opts other_table = {.range = all, .limit = 2, .page_token = tok};
    sl_error e;
    sl_error_clear(&e);
    CHECK_INT(store_query(s, STORE_AGGREGATES, "P", &other_table, &p, &e), SL_EINVAL);

    /* damaged tokens: every single-character change is refused */
    size_t len = strlen(tok);
    int refused = 0;
    for (size_t i = 0; i < len; i++) {
        char t2[STORE_TOKEN_MAX];
        memcpy(t2, tok, len + 1);
        t2[i] = t2[i] == 'A' ? 'B' : 'A';
        sl_status rc = query_with(s, Q_PARTITION, "P", all, 0, t2, &p);
        refused += rc == SL_EINVAL;
        if (rc == SL_OK)
            store_page_free(&p);
    }
    CHECK_INT(refused, (int)len);
    char t3[STORE_TOKEN_MAX + 1];
    snprintf(t3, sizeof t3, "%.*s", (int)(len - 1), tok); /* truncated */
    CHECK_INT(query_with(s, Q_PARTITION, "P", all, 0, t3, &p), SL_EINVAL);
    snprintf(t3, sizeof t3, "%sA", tok); /* extended */
    CHECK_INT(query_with(s, Q_PARTITION, "P", all, 0, t3, &p), SL_EINVAL);
    CHECK_INT(query_with(s, Q_PARTITION, "P", all, 0, "not a token!", &p), SL_EINVAL);
    CHECK_INT(query_with(s, Q_PARTITION, "P", all, 0, "AAAAAAAAAAAAAAAAAAAAAAAAAAAA", &p),
              SL_EINVAL);
    char longtok[2 * STORE_TOKEN_MAX];
    memset(longtok, 'Q', sizeof longtok - 1);
    longtok[sizeof longtok - 1] = '\0';
    CHECK_INT(query_with(s, Q_PARTITION, "P", all, 0, longtok, &p), SL_EINVAL);
    /* "" is a first page */
    CHECK_INT(query_with(s, Q_PARTITION, "P", all, 0, "", &p), SL_OK);
    CHECK_INT(p.count, 2);
    store_page_free(&p);

    /* index and scan tokens work only for themselves too */
    REQUIRE(query_with(s, Q_INDEX1, "G", all, 0, NULL, &p) == SL_OK);
    REQUIRE(p.next_token != NULL);
    snprintf(tok, sizeof tok, "%s", p.next_token);
    store_page_free(&p);
    CHECK_INT(query_with(s, Q_INDEX1, "G", all, 0, tok, &p), SL_OK);
    store_page_free(&p);
    CHECK_INT(query_with(s, Q_INDEX1, "G2", all, 0, tok, &p), SL_EINVAL);
    CHECK_INT(query_with(s, Q_PARTITION, "P", all, 0, tok, &p), SL_EINVAL);

    /* limit 0 means the default; the last page has no token */
    store_query_opts q = {.range = all, .limit = 0};
    sl_error_clear(&e);
    CHECK_INT(store_query(s, STORE_ITEMS, "P", &q, &p, &e), SL_OK);
    CHECK_INT(p.count, 10);
    CHECK(p.next_token == NULL);
    store_page_free(&p);
    q.limit = 10; /* exactly the number of documents */
    CHECK_INT(store_query(s, STORE_ITEMS, "P", &q, &p, &e), SL_OK);
    CHECK_INT(p.count, 10);
    if (p.next_token) { /* allowed, but then the next page must be empty and final */
        store_query_opts q2 = {.range = all, .limit = 10, .page_token = p.next_token};
        store_page p2;
        CHECK_INT(store_query(s, STORE_ITEMS, "P", &q2, &p2, &e), SL_OK);
        CHECK_INT(p2.count, 0);
        CHECK(p2.next_token == NULL);
        store_page_free(&p2);
    }
    store_page_free(&p);
    store_page_free(&p); /* twice is fine */
    CHECK_INT(store_page_view(&p, 0, &(bson_t){0}), 0);
    store_close(&s);
}

/* Large documents end a page early (it stays bounded in bytes) without
 * losing any. */
static void test_page_bounds(const adapter *a)
{
    store *s = open_fresh(a, 0, NULL);
    sl_error e;
    size_t blen = 3u << 20;
    uint8_t *blob = calloc(1, blen);
    REQUIRE(blob != NULL);
    for (int i = 0; i < 7; i++) {
        char sk[8];
        snprintf(sk, sizeof sk, "big%d", i);
        bson_t *d = doc_new("BIG", sk, i);
        BSON_APPEND_BINARY(d, "blob", BSON_SUBTYPE_BINARY, blob, (uint32_t)blen);
        sl_error_clear(&e);
        REQUIRE(store_put(s, STORE_ITEMS, d, cond_none(), NULL, &e) == SL_OK);
        bson_destroy(d);
    }
    free(blob);
    store_query_opts q = {.range = {STORE_RANGE_ALL, NULL, NULL}, .limit = 100};
    store_page p;
    sl_error_clear(&e);
    CHECK_INT(store_query(s, STORE_ITEMS, "BIG", &q, &p, &e), SL_OK);
    CHECK(p.count >= 1 && p.count < 7);
    CHECK(p.next_token != NULL);
    store_page_free(&p);
    keylist got = {0};
    CHECK_INT(collect(s, Q_PARTITION, STORE_ITEMS, "BIG", q.range, 0, 100, "sk", &got), SL_OK);
    CHECK_INT(got.n, 7);
    keylist_free(&got);

    store_close(&s);
}

/* Keys of the greatest length page in every kind of query and both orders;
 * a page token holds up to three of them (index sort key, pk, sk).
 * Regression: page tokens shared the 512-byte bound of feed tokens, so a
 * page whose last keys were over ~370 bytes failed with SL_ETOOLARGE. */
static void test_page_tokens_long_keys(const adapter *a)
{
    store *s = open_fresh(a, 0, NULL);
    enum { N = 5, L = STORE_KEY_MAX };
    static char lpk[L + 1], gpk[L + 1], gsk[L + 1], prefix[L], pks[N][L + 1], sks[N][L + 1];
    static char want[N][2 * L + 2];
    memset(lpk, 'l', L);
    memset(gpk, 'g', L);
    memset(gsk, 'h', L); /* one index sort key: the order falls to pk, then sk */
    memset(prefix, 'q', L - 1);
    for (int i = 0; i < N; i++) {
        memset(sks[i], 's', L - 1);
        sks[i][L - 1] = (char)('0' + i);
        memset(pks[i], 'q', L - 1);
        pks[i][L - 1] = (char)('0' + N - 1 - i); /* written in the reverse of pk order */
        REQUIRE(put_n(s, STORE_ITEMS, lpk, sks[i], i, cond_none(), NULL) == SL_OK);
        bson_t *d = doc_new_gsi(pks[i], sks[i], gpk, gsk, NULL, NULL, i);
        sl_error e;
        sl_error_clear(&e);
        REQUIRE(store_put(s, STORE_ITEMS, d, cond_none(), NULL, &e) == SL_OK);
        bson_destroy(d);
    }
    for (int i = 0; i < N; i++) /* (pk, sk) in pk order: pks[N-1-i] holds sks[N-1-i] */
        snprintf(want[i], sizeof want[i], "%s|%s", pks[N - 1 - i], sks[N - 1 - i]);
    store_range all = {STORE_RANGE_ALL, NULL, NULL};
    for (int desc = 0; desc < 2; desc++) {
        for (size_t limit = 1; limit <= 2; limit++) {
            keylist got = {0};
            CHECK_INT(collect(s, Q_PARTITION, STORE_ITEMS, lpk, all, desc, limit, "sk", &got),
                      SL_OK);
            CHECK_INT(got.n, N);
            for (size_t i = 0; i < got.n && i < N; i++)
                CHECK_STR(got.k[i], sks[desc ? N - 1 - i : i]);
            keylist_free(&got);
            CHECK_INT(collect(s, Q_INDEX1, STORE_ITEMS, gpk, all, desc, limit, "pk|sk", &got),
                      SL_OK);
            CHECK_INT(got.n, N);
            for (size_t i = 0; i < got.n && i < N; i++)
                CHECK_STR(got.k[i], want[desc ? N - 1 - i : i]);
            keylist_free(&got);
            CHECK_INT(collect(s, Q_SCAN, STORE_ITEMS, prefix, all, desc, limit, "pk|sk", &got),
                      SL_OK);
            CHECK_INT(got.n, N);
            for (size_t i = 0; i < got.n && i < N; i++)
                CHECK_STR(got.k[i], want[desc ? N - 1 - i : i]);
            keylist_free(&got);
        }
    }
    store_close(&s);
}

/* Paging while another thread inserts (first pass) or deletes (second pass)
 * the odd keys and rewrites the even ones neither skips nor repeats an even
 * key, which existed throughout. */
typedef struct inserter {
    store *s;
    int pass;
    int writes;
} inserter;

static void *insert_odd(void *arg)
{
    inserter *in = arg;
    char sk[16];
    sl_error e;
    for (int i = 0; i < 1000; i++) {
        int k = (i * 389) % 1000; /* a fixed shuffle */
        store_put_result r = {0, 0};
        int del = 0;
        snprintf(sk, sizeof sk, "K%04d", 2 * k + 1);
        sl_error_clear(&e);
        if (in->pass == 0 && put_n(in->s, STORE_ITEMS, "C", sk, k, cond_none(), &r) == SL_OK)
            in->writes += r.changed;
        if (in->pass == 1 &&
            store_delete(in->s, STORE_ITEMS, "C", sk, cond_none(), &del, &e) == SL_OK)
            in->writes += del;
        snprintf(sk, sizeof sk, "K%04d", 2 * k); /* rewrite an existing one */
        (void)put_n(in->s, STORE_ITEMS, "C", sk, 10000 * (in->pass + 1) + k, cond_none(), NULL);
    }
    return NULL;
}

static void test_pagination_concurrent(const adapter *a)
{
    store *s = open_fresh(a, 0, NULL);
    char sk[16];
    store_batch *b = NULL;
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(store_batch_begin(s, &b, &e) == SL_OK);
    for (int k = 0; k < 1000; k++) {
        snprintf(sk, sizeof sk, "K%04d", 2 * k);
        bson_t *d = doc_new("C", sk, k);
        REQUIRE(store_batch_put(b, STORE_ITEMS, d, cond_none(), NULL, &e) == SL_OK);
        bson_destroy(d);
    }
    REQUIRE(store_batch_commit(&b, &e) == SL_OK);

    for (int desc = 0; desc < 2; desc++) {
        inserter in = {s, desc, 0};
        pthread_t th;
        REQUIRE(pthread_create(&th, NULL, insert_odd, &in) == 0);
        keylist got = {0};
        store_range all = {STORE_RANGE_ALL, NULL, NULL};
        CHECK_INT(collect(s, Q_PARTITION, STORE_ITEMS, "C", all, desc, 7, "sk", &got), SL_OK);
        pthread_join(th, NULL);
        CHECK_INT(in.writes, 1000);
        int seen[2000] = {0};
        int ordered = 1;
        for (size_t i = 0; i < got.n; i++) {
            int k = atoi(got.k[i] + 1);
            REQUIRE(k >= 0 && k < 2000);
            seen[k]++;
            if (i > 0 &&
                (desc ? strcmp(got.k[i - 1], got.k[i]) <= 0 : strcmp(got.k[i - 1], got.k[i]) >= 0))
                ordered = 0;
        }
        CHECK(ordered);
        int missing = 0, repeated = 0;
        for (int k = 0; k < 2000; k++) {
            if (k % 2 == 0 && seen[k] != 1)
                missing++;
            if (seen[k] > 1)
                repeated++;
        }
        CHECK_INT(missing, 0);
        CHECK_INT(repeated, 0);
        keylist_free(&got);
    }
    store_close(&s);
}

/* ---------------------------------------------------------------------------
 * Batches.
 * ------------------------------------------------------------------------- */
static void feed_head(store *s, char out[STORE_TOKEN_MAX])
{
    store_feed_stats st;
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(store_feed_stats_get(s, NULL, &st, &e) == SL_OK);
    memcpy(out, st.head_token, STORE_TOKEN_MAX);
}

static void test_batches(const adapter *a)
{
    store *s = open_fresh(a, 0, NULL);
    char head0[STORE_TOKEN_MAX], head1[STORE_TOKEN_MAX];
    sl_error e;
    store_batch *b = NULL;
    char sk[16];

    REQUIRE(put_n(s, STORE_ITEMS, "B", "existing", 1, cond_none(), NULL) == SL_OK);
    feed_head(s, head0);

    /* fails half-way: nothing of it is stored, no event */
    sl_error_clear(&e);
    REQUIRE(store_batch_begin(s, &b, &e) == SL_OK);
    for (int i = 0; i < 5; i++) {
        snprintf(sk, sizeof sk, "x%d", i);
        bson_t *d = doc_new("B", sk, i);
        CHECK_INT(store_batch_put(b, STORE_ITEMS, d, cond_none(), NULL, &e), SL_OK);
        bson_destroy(d);
    }
    CHECK_INT(store_batch_delete(b, STORE_ITEMS, "B", "existing", cond_none(), NULL, &e), SL_OK);
    bson_t *d = doc_new("B", "y", 1);
    CHECK_INT(store_batch_put(b, STORE_ITEMS, d, cond_of(STORE_COND_VERSION, 7), NULL, &e),
              SL_ECONDITION);
    /* the batch is now only good for abort */
    sl_error_clear(&e);
    CHECK(store_batch_put(b, STORE_ITEMS, d, cond_none(), NULL, &e) != SL_OK);
    sl_error_clear(&e);
    CHECK(store_batch_commit(&b, &e) != SL_OK);
    CHECK(b == NULL);
    bson_destroy(d);
    for (int i = 0; i < 5; i++) {
        snprintf(sk, sizeof sk, "x%d", i);
        CHECK_INT(get_n(s, STORE_ITEMS, "B", sk, NULL), -1);
    }
    CHECK_INT(get_n(s, STORE_ITEMS, "B", "existing", NULL), 1);
    feed_head(s, head1);
    CHECK_STR(head1, head0);

    /* store_write_batch names the failing operation */
    bson_t *d0 = doc_new("B", "w0", 0), *d1 = doc_new("B", "w1", 1), *d2 = doc_new("B", "w2", 2);
    store_op ops[4] = {
        {.kind = STORE_OP_PUT, .table = STORE_ITEMS, .doc = d0},
        {.kind = STORE_OP_PUT, .table = STORE_AGGREGATES, .doc = d1},
        {.kind = STORE_OP_CHECK,
         .table = STORE_ITEMS,
         .pk = "B",
         .sk = "existing",
         .cond = {STORE_COND_VERSION, 2}},
        {.kind = STORE_OP_PUT, .table = STORE_ITEMS, .doc = d2},
    };
    sl_error_clear(&e);
    CHECK_INT(store_write_batch(s, ops, 4, &e), SL_ECONDITION);
    CHECK_STR(e.field, "ops[2]");
    CHECK(strstr(e.message, "ops[2]") != NULL);
    CHECK_INT(get_n(s, STORE_ITEMS, "B", "w0", NULL), -1);
    CHECK_INT(get_n(s, STORE_AGGREGATES, "B", "w1", NULL), -1);
    feed_head(s, head1);
    CHECK_STR(head1, head0);

    ops[2].cond.version = 1;
    ops[3].kind = STORE_OP_DELETE;
    ops[3].pk = "B";
    ops[3].sk = "existing";
    ops[3].cond = cond_of(STORE_COND_VERSION, 1);
    sl_error_clear(&e);
    CHECK_INT(store_write_batch(s, ops, 4, &e), SL_OK);
    CHECK_INT(ops[0].result.version, 1);
    CHECK_INT(ops[0].result.changed, 1);
    CHECK_INT(ops[1].result.version, 1);
    CHECK_INT(get_n(s, STORE_ITEMS, "B", "w0", NULL), 0);
    CHECK_INT(get_n(s, STORE_AGGREGATES, "B", "w1", NULL), 1);
    CHECK_INT(get_n(s, STORE_ITEMS, "B", "existing", NULL), -1);
    /* invalid input inside a batch names the operation and the field */
    ops[0].doc = NULL;
    sl_error_clear(&e);
    CHECK_INT(store_write_batch(s, ops, 1, &e), SL_EINVAL);
    CHECK(strncmp(e.field, "ops[0]", 6) == 0);
    sl_error_clear(&e);
    CHECK_INT(store_write_batch(s, ops, 0, &e), SL_OK); /* empty */
    bson_destroy(d0);
    bson_destroy(d1);
    bson_destroy(d2);

    /* one batch writing the same key twice: versions follow */
    sl_error_clear(&e);
    REQUIRE(store_batch_begin(s, &b, &e) == SL_OK);
    store_put_result r1 = {0}, r2 = {0};
    d = doc_new("B", "twice", 1);
    CHECK_INT(store_batch_put(b, STORE_ITEMS, d, cond_none(), &r1, &e), SL_OK);
    bson_destroy(d);
    d = doc_new("B", "twice", 2);
    CHECK_INT(store_batch_put(b, STORE_ITEMS, d, cond_of(STORE_COND_VERSION, 1), &r2, &e), SL_OK);
    bson_destroy(d);
    CHECK_INT(store_batch_commit(&b, &e), SL_OK);
    CHECK_INT(r1.version, 1);
    CHECK_INT(r2.version, 2);

    /* an aborted batch leaves nothing */
    sl_error_clear(&e);
    REQUIRE(store_batch_begin(s, &b, &e) == SL_OK);
    d = doc_new("B", "aborted", 1);
    CHECK_INT(store_batch_put(b, STORE_ITEMS, d, cond_none(), NULL, &e), SL_OK);
    bson_destroy(d);
    store_batch_abort(&b);
    store_batch_abort(&b); /* NULL is fine */
    CHECK_INT(get_n(s, STORE_ITEMS, "B", "aborted", NULL), -1);
    store_close(&s);
}

/* ---------------------------------------------------------------------------
 * The change feed.
 * ------------------------------------------------------------------------- */

/* Reads everything a feed has now, in reads of at most max events, into
 * arrays of (op, sk, old n, new n, new v, token). */
typedef struct seen_event {
    store_event_op op;
    char pk[64], sk[64];
    int64_t old_n, new_n, old_v, new_v;
    char token[STORE_TOKEN_MAX];
    int64_t commit_ms;
} seen_event;

static size_t drain(store_feed *f, size_t max, seen_event *out, size_t cap)
{
    size_t total = 0;
    for (;;) {
        const store_event *ev = NULL;
        size_t n = 0;
        sl_error e;
        sl_error_clear(&e);
        sl_status rc = store_feed_read(f, max, 0, &ev, &n, &e);
        if (rc != SL_OK)
            fprintf(stderr, "feed read: %s: %s\n", sl_status_name(rc), e.message);
        REQUIRE(rc == SL_OK);
        CHECK(n <= max);
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++) {
            REQUIRE(total < cap);
            seen_event *x = &out[total++];
            x->op = ev[i].op;
            snprintf(x->pk, sizeof x->pk, "%s", ev[i].pk);
            snprintf(x->sk, sizeof x->sk, "%s", ev[i].sk);
            x->old_n = ev[i].old_image ? bson_int(ev[i].old_image, "n") : -1;
            x->new_n = ev[i].new_image ? bson_int(ev[i].new_image, "n") : -1;
            x->old_v = ev[i].old_image ? bson_int(ev[i].old_image, "v") : -1;
            x->new_v = ev[i].new_image ? bson_int(ev[i].new_image, "v") : -1;
            if (ev[i].new_image)
                CHECK_STR(bson_str(ev[i].new_image, "sk"), ev[i].sk);
            if (ev[i].old_image)
                CHECK_STR(bson_str(ev[i].old_image, "pk"), ev[i].pk);
            memcpy(x->token, ev[i].token, STORE_TOKEN_MAX);
            x->commit_ms = ev[i].commit_ms;
        }
    }
    return total;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_feed_events(const adapter *a)
{
    store *s = open_fresh(a, 0, NULL);
    sl_error e;
    store_feed *f = NULL;
    seen_event ev[64];
    int64_t t0 = wall_ms();

    sl_error_clear(&e);
    REQUIRE(store_feed_open(s, "reader", &f, &e) == SL_OK);
    CHECK_INT(drain(f, 10, ev, 64), 0);

    /* insert, update, equal rewrite (no event), delete, on interleaved keys */
    CHECK_INT(put_n(s, STORE_ITEMS, "F", "a", 1, cond_none(), NULL), SL_OK);
    CHECK_INT(put_n(s, STORE_ITEMS, "F", "b", 10, cond_none(), NULL), SL_OK);
    CHECK_INT(put_n(s, STORE_ITEMS, "F", "a", 2, cond_none(), NULL), SL_OK);
    CHECK_INT(put_n(s, STORE_ITEMS, "F", "a", 2, cond_none(), NULL), SL_OK);
    CHECK_INT(put_n(s, STORE_AGGREGATES, "F", "agg", 5, cond_none(), NULL), SL_OK); /* no feed */
    CHECK_INT(put_n(s, STORE_ITEMS, "F", "b", 11, cond_of(STORE_COND_VERSION, 9), NULL),
              SL_ECONDITION);
    sl_error_clear(&e);
    CHECK_INT(store_delete(s, STORE_ITEMS, "F", "a", cond_none(), NULL, &e), SL_OK);
    CHECK_INT(store_delete(s, STORE_ITEMS, "F", "nothing", cond_none(), NULL, &e), SL_OK);
    CHECK_INT(put_n(s, STORE_ITEMS, "F", "a", 3, cond_none(), NULL), SL_OK);
    CHECK_INT(put_n(s, STORE_ITEMS, "F", "b", 12, cond_none(), NULL), SL_OK);
    int64_t t1 = wall_ms();

    size_t n = drain(f, 2, ev, 64);
    CHECK_INT(n, 6);
    if (n == 6) {
        CHECK(ev[0].op == STORE_EVENT_PUT && strcmp(ev[0].sk, "a") == 0);
        CHECK_INT(ev[0].old_n, -1);
        CHECK_INT(ev[0].new_n, 1);
        CHECK_INT(ev[0].new_v, 1);
        CHECK(ev[1].op == STORE_EVENT_PUT && strcmp(ev[1].sk, "b") == 0);
        CHECK_INT(ev[1].new_n, 10);
        CHECK(ev[2].op == STORE_EVENT_PUT && strcmp(ev[2].sk, "a") == 0);
        CHECK_INT(ev[2].old_n, 1);
        CHECK_INT(ev[2].old_v, 1);
        CHECK_INT(ev[2].new_n, 2);
        CHECK_INT(ev[2].new_v, 2);
        CHECK(ev[3].op == STORE_EVENT_DELETE && strcmp(ev[3].sk, "a") == 0);
        CHECK_INT(ev[3].old_n, 2);
        CHECK_INT(ev[3].old_v, 2);
        CHECK_INT(ev[3].new_n, -1);
        CHECK(ev[4].op == STORE_EVENT_PUT && strcmp(ev[4].sk, "a") == 0);
        CHECK_INT(ev[4].old_n, -1);
        CHECK_INT(ev[4].new_n, 3);
        CHECK_INT(ev[4].new_v, 1);
        CHECK(ev[5].op == STORE_EVENT_PUT && strcmp(ev[5].sk, "b") == 0);
        CHECK_INT(ev[5].old_n, 10);
        CHECK_INT(ev[5].new_n, 12);
        for (size_t i = 0; i < n; i++) {
            CHECK_STR(ev[i].pk, "F");
            CHECK(ev[i].token[0] != '\0');
            CHECK(ev[i].commit_ms >= t0 - 1000 && ev[i].commit_ms <= t1 + 1000);
            for (size_t j = 0; j < i; j++)
                CHECK(strcmp(ev[i].token, ev[j].token) != 0);
        }
        char head[STORE_TOKEN_MAX];
        feed_head(s, head);
        CHECK_STR(head, ev[5].token);
    }
    /* a second reader of another consumer sees the same events */
    store_feed *g = NULL;
    sl_error_clear(&e);
    REQUIRE(store_feed_open(s, "other", &g, &e) == SL_OK);
    seen_event ev2[64];
    CHECK_INT(drain(g, 100, ev2, 64), 6);
    CHECK_STR(ev2[5].token, ev[5].token);
    store_feed_close(&g);
    store_feed_close(&f);
    CHECK(f == NULL);
    store_close(&s);
}

/* Writers in several threads: per key, versions in the feed follow 1, 2, 3. */
typedef struct writer_arg {
    store *s;
    int id;
} writer_arg;

static void *write_some(void *p)
{
    writer_arg *w = p;
    char sk[16];
    for (int i = 0; i < 150; i++) {
        snprintf(sk, sizeof sk, "k%d", i % 5);
        (void)put_n(w->s, STORE_ITEMS, "W", sk, w->id * 1000 + i, cond_none(), NULL);
    }
    return NULL;
}

static void test_feed_order_threads(const adapter *a)
{
    store *s = open_fresh(a, 0, NULL);
    pthread_t th[3];
    writer_arg args[3];
    for (int i = 0; i < 3; i++) {
        args[i] = (writer_arg){s, i + 1};
        REQUIRE(pthread_create(&th[i], NULL, write_some, &args[i]) == 0);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    store_feed *f = NULL;
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(store_feed_open(s, "order", &f, &e) == SL_OK);
    static seen_event ev[600];
    size_t n = drain(f, 64, ev, 600);
    CHECK_INT(n, 450);
    int64_t last_v[5] = {0}, last_n[5] = {-1, -1, -1, -1, -1};
    int in_order = 1, images_chain = 1;
    for (size_t i = 0; i < n; i++) {
        int k = ev[i].sk[1] - '0';
        if (ev[i].new_v != last_v[k] + 1)
            in_order = 0;
        if (ev[i].old_n != last_n[k])
            images_chain = 0; /* each event's old image is the previous event's new image */
        last_v[k] = ev[i].new_v;
        last_n[k] = ev[i].new_n;
    }
    CHECK(in_order);
    CHECK(images_chain);
    for (int k = 0; k < 5; k++) {
        char sk[8];
        snprintf(sk, sizeof sk, "k%d", k);
        int64_t v = 0;
        CHECK_INT(get_n(s, STORE_ITEMS, "W", sk, &v), last_n[k]);
        CHECK_INT(v, last_v[k]);
    }
    store_feed_close(&f);
    store_close(&s);
}

/* A read that waits returns the event a thread writes meanwhile. */
typedef struct later_arg {
    store *s;
} later_arg;

static void *write_later(void *p)
{
    later_arg *l = p;
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
    (void)put_n(l->s, STORE_ITEMS, "L", "late", 1, cond_none(), NULL);
    return NULL;
}

static void test_feed_wait(const adapter *a)
{
    store *s = open_fresh(a, 0, NULL);
    store_feed *f = NULL;
    sl_error e;
    const store_event *ev = NULL;
    size_t n = 9;
    sl_error_clear(&e);
    REQUIRE(store_feed_open(s, "waiter", &f, &e) == SL_OK);
    CHECK_INT(store_feed_read(f, 10, 0, &ev, &n, &e), SL_OK);
    CHECK_INT(n, 0);
    later_arg l = {s};
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, write_later, &l) == 0);
    CHECK_INT(store_feed_read(f, 10, 20000, &ev, &n, &e), SL_OK);
    CHECK_INT(n, 1);
    if (n == 1)
        CHECK_STR(ev[0].sk, "late");
    pthread_join(th, NULL);
    CHECK_INT(store_feed_read(f, 0, 0, &ev, &n, &e), SL_EINVAL);
    store_feed_close(&f);
    store_close(&s);
}

/* ---------------------------------------------------------------------------
 * Consumers.
 * ------------------------------------------------------------------------- */
static void test_consumer_commit(const adapter *a)
{
    store *s = open_fresh(a, 0, NULL);
    sl_error e;
    char tok[STORE_TOKEN_MAX];
    store_feed *f = NULL;
    const store_event *ev = NULL;
    size_t n = 0;

    for (int i = 0; i < 4; i++) {
        char sk[8];
        snprintf(sk, sizeof sk, "i%d", i);
        REQUIRE(put_n(s, STORE_ITEMS, "K", sk, i, cond_none(), NULL) == SL_OK);
    }
    sl_error_clear(&e);
    CHECK_INT(store_consumer_token(s, "agg", tok, &e), SL_ENOTFOUND);
    REQUIRE(store_feed_open(s, "agg", &f, &e) == SL_OK);
    REQUIRE(store_feed_read(f, 2, 0, &ev, &n, &e) == SL_OK);
    REQUIRE(n == 2);
    char t2[STORE_TOKEN_MAX];
    memcpy(t2, ev[1].token, sizeof t2);

    bson_t *agg = doc_new("AGG", "total", 2);
    store_op put = {.kind = STORE_OP_PUT,
                    .table = STORE_AGGREGATES,
                    .doc = agg,
                    .cond = {STORE_COND_NOT_EXISTS, 0}};
    sl_error_clear(&e);
    CHECK_INT(store_consumer_commit(s, "agg", "", t2, &put, 1, &e), SL_OK);
    CHECK_INT(put.result.version, 1);
    sl_error_clear(&e);
    CHECK_INT(store_consumer_token(s, "agg", tok, &e), SL_OK);
    CHECK_STR(tok, t2);
    CHECK_INT(get_n(s, STORE_AGGREGATES, "AGG", "total", NULL), 2);

    /* a stale prev_token: another instance moved the consumer */
    REQUIRE(store_feed_read(f, 2, 0, &ev, &n, &e) == SL_OK);
    REQUIRE(n == 2);
    char t4[STORE_TOKEN_MAX];
    memcpy(t4, ev[1].token, sizeof t4);
    bson_t *agg4 = doc_new("AGG", "total", 4);
    store_op put4 = {.kind = STORE_OP_PUT,
                     .table = STORE_AGGREGATES,
                     .doc = agg4,
                     .cond = {STORE_COND_VERSION, 1}};
    sl_error_clear(&e);
    CHECK_INT(store_consumer_commit(s, "agg", "", t4, &put4, 1, &e), SL_ECONDITION);
    CHECK_INT(get_n(s, STORE_AGGREGATES, "AGG", "total", NULL), 2);
    CHECK_INT(store_consumer_token(s, "agg", tok, &e), SL_OK);
    CHECK_STR(tok, t2);

    /* an op that fails: neither the writes nor the token move */
    bson_t *other = doc_new("AGG", "other", 1);
    store_op ops[3] = {
        put4,
        {.kind = STORE_OP_PUT, .table = STORE_AGGREGATES, .doc = other},
        {.kind = STORE_OP_CHECK,
         .table = STORE_ITEMS,
         .pk = "K",
         .sk = "i0",
         .cond = {STORE_COND_VERSION, 5}},
    };
    sl_error_clear(&e);
    CHECK_INT(store_consumer_commit(s, "agg", t2, t4, ops, 3, &e), SL_ECONDITION);
    CHECK_STR(e.field, "ops[2]");
    CHECK_INT(get_n(s, STORE_AGGREGATES, "AGG", "total", NULL), 2);
    CHECK_INT(get_n(s, STORE_AGGREGATES, "AGG", "other", NULL), -1);
    CHECK_INT(store_consumer_token(s, "agg", tok, &e), SL_OK);
    CHECK_STR(tok, t2);
    /* consumer commits write aggregates only */
    store_op item_put = {.kind = STORE_OP_PUT, .table = STORE_ITEMS, .doc = other};
    sl_error_clear(&e);
    CHECK_INT(store_consumer_commit(s, "agg", t2, t4, &item_put, 1, &e), SL_EINVAL);

    ops[2].cond.version = 1;
    sl_error_clear(&e);
    CHECK_INT(store_consumer_commit(s, "agg", t2, t4, ops, 3, &e), SL_OK);
    CHECK_INT(get_n(s, STORE_AGGREGATES, "AGG", "total", NULL), 4);
    CHECK_INT(get_n(s, STORE_AGGREGATES, "AGG", "other", NULL), 1);

    /* no ops: just the token; a token not of this feed is refused */
    sl_error_clear(&e);
    CHECK_INT(store_consumer_commit(s, "agg", t4, t4, NULL, 0, &e), SL_OK);
    sl_error_clear(&e);
    CHECK_INT(store_consumer_commit(s, "agg", t4, "not-a-token", NULL, 0, &e), SL_EINVAL);

    /* stats: caught up, then behind by one */
    store_feed_stats st;
    sl_error_clear(&e);
    CHECK_INT(store_feed_stats_get(s, "agg", &st, &e), SL_OK);
    CHECK_STR(st.head_token, t4);
    CHECK_INT(st.behind_events, 0);
    CHECK_INT(st.behind_ms, 0);
    CHECK(st.head_commit_ms > 0);
    REQUIRE(put_n(s, STORE_ITEMS, "K", "i9", 9, cond_none(), NULL) == SL_OK);
    CHECK_INT(store_feed_stats_get(s, "agg", &st, &e), SL_OK);
    CHECK(st.behind_events == 1 || st.behind_events == -1);
    CHECK(st.behind_ms >= 0);
    CHECK(strcmp(st.head_token, t4) != 0);

    /* a reopened feed starts after the committed token */
    store_feed_close(&f);
    sl_error_clear(&e);
    REQUIRE(store_feed_open(s, "agg", &f, &e) == SL_OK);
    REQUIRE(store_feed_read(f, 10, 0, &ev, &n, &e) == SL_OK);
    CHECK_INT(n, 1);
    if (n == 1)
        CHECK_STR(ev[0].sk, "i9");
    store_feed_close(&f);

    /* reset: to the head, with its writes */
    bson_t *rebuilt = doc_new("AGG", "total", 100);
    store_op rput = {.kind = STORE_OP_PUT, .table = STORE_AGGREGATES, .doc = rebuilt};
    sl_error_clear(&e);
    CHECK_INT(store_consumer_reset(s, "agg", &rput, 1, &e), SL_OK);
    CHECK_INT(get_n(s, STORE_AGGREGATES, "AGG", "total", NULL), 100);
    CHECK_INT(store_feed_stats_get(s, "agg", &st, &e), SL_OK);
    CHECK_INT(st.behind_events, 0);
    CHECK_INT(store_consumer_token(s, "agg", tok, &e), SL_OK);
    CHECK_STR(tok, st.head_token);
    sl_error_clear(&e);
    REQUIRE(store_feed_open(s, "agg", &f, &e) == SL_OK);
    REQUIRE(store_feed_read(f, 10, 0, &ev, &n, &e) == SL_OK);
    CHECK_INT(n, 0);
    store_feed_close(&f);

    bson_destroy(agg);
    bson_destroy(agg4);
    bson_destroy(other);
    bson_destroy(rebuilt);
    store_close(&s);
}

/* Events no consumer needs any more go; a consumer whose unapplied events
 * went gets SL_EFEEDGONE until it resets. */
static void test_pruning(const adapter *a)
{
    store *s = open_fresh(a, 1, NULL); /* keeps at most 50 events */
    if (!s) {
        fprintf(stderr, "%s: pruning test skipped (no small retention)\n", a->name);
        return;
    }
    sl_error e;
    store_feed *f = NULL;
    const store_event *ev = NULL;
    size_t n = 0;
    char sk[16];

    REQUIRE(put_n(s, STORE_ITEMS, "R", "first", 0, cond_none(), NULL) == SL_OK);
    sl_error_clear(&e);
    REQUIRE(store_feed_open(s, "slow", &f, &e) == SL_OK);
    REQUIRE(store_feed_read(f, 1, 0, &ev, &n, &e) == SL_OK);
    REQUIRE(n == 1);
    CHECK_INT(store_consumer_commit(s, "slow", "", ev[0].token, NULL, 0, &e), SL_OK);
    /* f stays open, positioned at "first", while its next events are pruned */
    for (int i = 0; i < 120; i++) {
        snprintf(sk, sizeof sk, "k%03d", i);
        REQUIRE(put_n(s, STORE_ITEMS, "R", sk, i, cond_none(), NULL) == SL_OK);
    }
    sl_error_clear(&e);
    CHECK_INT(store_feed_read(f, 10, 0, &ev, &n, &e), SL_EFEEDGONE);
    store_feed_close(&f);
    sl_error_clear(&e);
    CHECK_INT(store_feed_open(s, "slow", &f, &e), SL_EFEEDGONE);
    CHECK(f == NULL);
    CHECK(e.message[0] != '\0');
    /* a consumer that never committed starts at the oldest event kept */
    sl_error_clear(&e);
    REQUIRE(store_feed_open(s, "new", &f, &e) == SL_OK);
    static seen_event seen[200];
    size_t kept = drain(f, 16, seen, 200);
    CHECK(kept >= 50 && kept < 121);
    if (kept > 0)
        CHECK_STR(seen[kept - 1].sk, "k119");
    store_feed_close(&f);
    /* reset brings the gone consumer back */
    sl_error_clear(&e);
    CHECK_INT(store_consumer_reset(s, "slow", NULL, 0, &e), SL_OK);
    REQUIRE(store_feed_open(s, "slow", &f, &e) == SL_OK);
    REQUIRE(put_n(s, STORE_ITEMS, "R", "after", 1, cond_none(), NULL) == SL_OK);
    REQUIRE(store_feed_read(f, 10, 0, &ev, &n, &e) == SL_OK);
    CHECK_INT(n, 1);
    store_feed_close(&f);
    store_close(&s);
}

/* Reads a filtered feed until it reports nothing new and stands at the head
 * (a filtered read may come back empty while skipping), into out. */
static size_t drain_filtered(store *s, store_feed *f, seen_event *out, size_t cap)
{
    char head[STORE_TOKEN_MAX];
    size_t total = 0;
    feed_head(s, head);
    for (int reads = 0; reads < 10000; reads++) {
        seen_event part[64];
        size_t n = drain(f, 4, part, 64);
        for (size_t i = 0; i < n; i++) {
            REQUIRE(total < cap);
            out[total++] = part[i];
        }
        store_feed_pos pos;
        sl_error e;
        sl_error_clear(&e);
        REQUIRE(store_feed_position(f, &pos, &e) == SL_OK);
        if (n == 0 && strcmp(pos.token, head) == 0)
            break;
    }
    return total;
}

/* A filtered feed hands out only the events its filter lets through, in
 * order and with their images; its position moves past the skipped ones, so
 * a consumer that commits it is caught up although it never saw them. */
static void test_feed_filter(const adapter *a)
{
    store *s = open_fresh(a, 0, NULL);
    sl_error e;
    store_feed *f = NULL;
    static seen_event ev[64];
    int frames = 0;
    char sk[32];

    /* FRAME# documents around everything else; FRAME and FRAMEX are not frames */
    for (int i = 0; i < 3; i++) {
        snprintf(sk, sizeof sk, "FRAME#%09d", frames++);
        REQUIRE(put_n(s, STORE_ITEMS, "SURG", sk, i, cond_none(), NULL) == SL_OK);
    }
    REQUIRE(put_n(s, STORE_ITEMS, "SURG", "META", 1, cond_none(), NULL) == SL_OK);
    snprintf(sk, sizeof sk, "FRAME#%09d", frames++);
    REQUIRE(put_n(s, STORE_ITEMS, "SURG", sk, 0, cond_none(), NULL) == SL_OK);
    REQUIRE(put_n(s, STORE_ITEMS, "SURG", "SUMMARY", 7, cond_none(), NULL) == SL_OK);
    REQUIRE(put_n(s, STORE_ITEMS, "SURG", "META", 2, cond_none(), NULL) == SL_OK);
    REQUIRE(put_n(s, STORE_ITEMS, "SURG", "FRAME", 3, cond_none(), NULL) == SL_OK);
    REQUIRE(put_n(s, STORE_ITEMS, "SURG", "FRAMEX", 4, cond_none(), NULL) == SL_OK);
    REQUIRE(put_n(s, STORE_ITEMS, "SURG", "TOOL#a#0001", 5, cond_none(), NULL) == SL_OK);
    snprintf(sk, sizeof sk, "FRAME#%09d", 1); /* a frame rewritten: skipped too */
    REQUIRE(put_n(s, STORE_ITEMS, "SURG", sk, 9, cond_none(), NULL) == SL_OK);
    sl_error_clear(&e);
    REQUIRE(store_delete(s, STORE_ITEMS, "SURG", "META", cond_none(), NULL, &e) == SL_OK);
    for (int i = 0; i < 5; i++) { /* the newest events are all skipped */
        snprintf(sk, sizeof sk, "FRAME#%09d", frames++);
        REQUIRE(put_n(s, STORE_ITEMS, "SURG", sk, i, cond_none(), NULL) == SL_OK);
    }
    int skipped_frames = frames + 1;

    static const char *const frame_prefix[] = {"FRAME#"};
    store_feed_filter skip = {.skip = frame_prefix, .nskip = 1};
    sl_error_clear(&e);
    REQUIRE(store_feed_open_filtered(s, "filtered", &skip, &f, &e) == SL_OK);
    size_t n = drain_filtered(s, f, ev, 64);
    CHECK_INT(n, 7);
    if (n == 7) {
        static const char *const want[] = {"META",   "SUMMARY",     "META", "FRAME",
                                           "FRAMEX", "TOOL#a#0001", "META"};
        for (size_t i = 0; i < n; i++)
            CHECK_STR(ev[i].sk, want[i]);
        CHECK(ev[0].op == STORE_EVENT_PUT && ev[0].old_n == -1 && ev[0].new_n == 1);
        CHECK_INT(ev[1].new_n, 7);
        CHECK(ev[2].op == STORE_EVENT_PUT && ev[2].old_n == 1 && ev[2].new_n == 2);
        CHECK_INT(ev[2].new_v, 2);
        CHECK(ev[6].op == STORE_EVENT_DELETE && ev[6].old_n == 2 && ev[6].new_n == -1);
        for (size_t i = 1; i < n; i++)
            CHECK(strcmp(ev[i].token, ev[i - 1].token) != 0);
    }
    /* the same through a snapshot */
    store *snap = NULL;
    store_feed *sf = NULL;
    sl_error_clear(&e);
    REQUIRE(store_snapshot_open(s, &snap, &e) == SL_OK);
    REQUIRE(store_feed_open_filtered(snap, "snapped", &skip, &sf, &e) == SL_OK);
    static seen_event sev[64];
    CHECK_INT(drain_filtered(snap, sf, sev, 64), 7);
    store_feed_close(&sf);
    store_close(&snap);
    /* the position is past the skipped events, up to the head */
    char head[STORE_TOKEN_MAX];
    feed_head(s, head);
    store_feed_pos pos;
    sl_error_clear(&e);
    CHECK_INT(store_feed_position(f, &pos, &e), SL_OK);
    CHECK_STR(pos.token, head);
    CHECK_INT(pos.skipped, skipped_frames);
    /* committed, it leaves the consumer caught up; the last event's token would not */
    sl_error_clear(&e);
    CHECK_INT(store_consumer_commit(s, "filtered", "", pos.token, NULL, 0, &e), SL_OK);
    store_feed_stats st;
    CHECK_INT(store_feed_stats_get(s, "filtered", &st, &e), SL_OK);
    CHECK_INT(st.behind_events, 0);
    store_feed_close(&f);
    /* reopened at that position: nothing new; a new matching event comes through */
    sl_error_clear(&e);
    REQUIRE(store_feed_open_filtered(s, "filtered", &skip, &f, &e) == SL_OK);
    CHECK_INT(drain_filtered(s, f, ev, 64), 0);
    REQUIRE(put_n(s, STORE_ITEMS, "SURG", "FRAME#999999999", 1, cond_none(), NULL) == SL_OK);
    REQUIRE(put_n(s, STORE_ITEMS, "SURG", "META", 3, cond_none(), NULL) == SL_OK);
    n = drain_filtered(s, f, ev, 64);
    CHECK_INT(n, 1);
    if (n == 1)
        CHECK(strcmp(ev[0].sk, "META") == 0 && ev[0].old_n == -1 && ev[0].new_n == 3);
    store_feed_close(&f);

    /* keep lists: any of them; with a skip list as well */
    static const char *const keep_two[] = {"TOOL#", "META"};
    store_feed_filter keep = {.keep = keep_two, .nkeep = 2};
    sl_error_clear(&e);
    REQUIRE(store_feed_open_filtered(s, "keeper", &keep, &f, &e) == SL_OK);
    n = drain_filtered(s, f, ev, 64);
    CHECK_INT(n, 5);
    if (n == 5) {
        static const char *const want[] = {"META", "META", "TOOL#a#0001", "META", "META"};
        for (size_t i = 0; i < n; i++)
            CHECK_STR(ev[i].sk, want[i]);
    }
    store_feed_close(&f);
    static const char *const keep_frame[] = {"FRAME"};
    store_feed_filter both = {.skip = frame_prefix, .nskip = 1, .keep = keep_frame, .nkeep = 1};
    sl_error_clear(&e);
    REQUIRE(store_feed_open_filtered(s, "both", &both, &f, &e) == SL_OK);
    n = drain_filtered(s, f, ev, 64);
    CHECK_INT(n, 2);
    if (n == 2)
        CHECK(strcmp(ev[0].sk, "FRAME") == 0 && strcmp(ev[1].sk, "FRAMEX") == 0);
    store_feed_close(&f);
    /* an empty filter is no filter */
    store_feed_filter none = {0};
    sl_error_clear(&e);
    REQUIRE(store_feed_open_filtered(s, "all", &none, &f, &e) == SL_OK);
    CHECK_INT(drain_filtered(s, f, ev, 64), 7 + skipped_frames + 2);
    CHECK_INT(store_feed_position(f, &pos, &e), SL_OK);
    CHECK_INT(pos.skipped, 0);
    store_feed_close(&f);

    /* bad filters are refused with the list and index at fault */
    static const char *const empty[] = {"FRAME#", ""};
    store_feed_filter bad = {.skip = empty, .nskip = 2};
    sl_error_clear(&e);
    CHECK_INT(store_feed_open_filtered(s, "bad", &bad, &f, &e), SL_EINVAL);
    CHECK_STR(e.field, "filter.skip[1]");
    CHECK(f == NULL);
    const char *many[STORE_FEED_FILTER_MAX + 1];
    for (size_t i = 0; i <= STORE_FEED_FILTER_MAX; i++)
        many[i] = "X";
    bad = (store_feed_filter){.keep = many, .nkeep = STORE_FEED_FILTER_MAX + 1};
    sl_error_clear(&e);
    CHECK_INT(store_feed_open_filtered(s, "bad", &bad, &f, &e), SL_EINVAL);
    bad = (store_feed_filter){.keep = NULL, .nkeep = 1};
    sl_error_clear(&e);
    CHECK_INT(store_feed_open_filtered(s, "bad", &bad, &f, &e), SL_EINVAL);
    static char huge[STORE_KEY_MAX + 2];
    memset(huge, 'F', STORE_KEY_MAX + 1);
    const char *const too_long[] = {huge};
    bad = (store_feed_filter){.skip = too_long, .nskip = 1};
    sl_error_clear(&e);
    CHECK_INT(store_feed_open_filtered(s, "bad", &bad, &f, &e), SL_EINVAL);
    sl_error_clear(&e);
    CHECK_INT(store_feed_position(NULL, &pos, &e), SL_EINVAL);
    store_close(&s);
}

/* A dropped consumer no longer holds events back, and is unknown after. */
static void test_consumer_drop(const adapter *a)
{
    store *s = open_fresh(a, 0, NULL);
    sl_error e;
    store_feed *f = NULL;
    const store_event *ev = NULL;
    size_t n = 0;
    char sk[16], tok[STORE_TOKEN_MAX], head[STORE_TOKEN_MAX];
    static seen_event seen[64];
    for (int i = 0; i < 10; i++) {
        snprintf(sk, sizeof sk, "d%02d", i);
        REQUIRE(put_n(s, STORE_ITEMS, "D", sk, i, cond_none(), NULL) == SL_OK);
    }
    sl_error_clear(&e);
    REQUIRE(store_feed_open(s, "stuck", &f, &e) == SL_OK);
    REQUIRE(store_feed_read(f, 1, 0, &ev, &n, &e) == SL_OK && n == 1);
    CHECK_INT(store_consumer_commit(s, "stuck", "", ev[0].token, NULL, 0, &e), SL_OK);
    store_feed_close(&f);
    feed_head(s, head);
    CHECK_INT(store_consumer_commit(s, "live", "", head, NULL, 0, &e), SL_OK);
    /* "stuck" holds 9 events */
    REQUIRE(store_feed_open(s, "probe", &f, &e) == SL_OK);
    CHECK(drain(f, 16, seen, 64) >= 9);
    store_feed_close(&f);

    sl_error_clear(&e);
    CHECK_INT(store_consumer_drop(s, "stuck", &e), SL_OK);
    CHECK_INT(store_consumer_token(s, "stuck", tok, &e), SL_ENOTFOUND);
    sl_error_clear(&e);
    CHECK_INT(store_consumer_drop(s, "stuck", &e), SL_ENOTFOUND);
    CHECK(strstr(e.message, "stuck") != NULL);
    sl_error_clear(&e);
    CHECK_INT(store_consumer_drop(s, "never", &e), SL_ENOTFOUND);
    sl_error_clear(&e);
    CHECK_INT(store_consumer_drop(s, "", &e), SL_EINVAL);
    /* with only "live" left, what it applied may go */
    sl_error_clear(&e);
    REQUIRE(store_feed_open(s, "probe", &f, &e) == SL_OK);
    CHECK(drain(f, 16, seen, 64) < 9);
    store_feed_close(&f);
    /* "stuck" can come back as a new consumer, from the oldest event kept */
    sl_error_clear(&e);
    CHECK_INT(store_feed_open(s, "stuck", &f, &e), SL_OK);
    store_feed_close(&f);
    /* a snapshot cannot drop */
    store *snap = NULL;
    REQUIRE(store_snapshot_open(s, &snap, &e) == SL_OK);
    sl_error_clear(&e);
    CHECK_INT(store_consumer_drop(snap, "live", &e), SL_EINVAL);
    store_close(&snap);
    CHECK_INT(store_consumer_token(s, "live", tok, &e), SL_OK);
    store_close(&s);
}

/* ---------------------------------------------------------------------------
 * Snapshots.
 * ------------------------------------------------------------------------- */
static void test_snapshot(const adapter *a)
{
    store *s = open_fresh(a, 0, NULL);
    store *snap = NULL;
    sl_error e;
    char head_before[STORE_TOKEN_MAX], tok[STORE_TOKEN_MAX];

    REQUIRE(put_n(s, STORE_ITEMS, "S", "a", 1, cond_none(), NULL) == SL_OK);
    REQUIRE(put_n(s, STORE_ITEMS, "S", "c", 1, cond_none(), NULL) == SL_OK);
    REQUIRE(put_n(s, STORE_AGGREGATES, "S", "agg", 1, cond_none(), NULL) == SL_OK);
    feed_head(s, head_before);
    sl_error_clear(&e);
    REQUIRE(store_consumer_commit(s, "cons", "", head_before, NULL, 0, &e) == SL_OK);
    REQUIRE(store_snapshot_open(s, &snap, &e) == SL_OK);

    REQUIRE(put_n(s, STORE_ITEMS, "S", "a", 2, cond_none(), NULL) == SL_OK);
    REQUIRE(put_n(s, STORE_ITEMS, "S", "b", 1, cond_none(), NULL) == SL_OK);
    CHECK_INT(store_delete(s, STORE_ITEMS, "S", "c", cond_none(), NULL, &e), SL_OK);
    REQUIRE(put_n(s, STORE_AGGREGATES, "S", "agg", 2, cond_none(), NULL) == SL_OK);
    char head_after[STORE_TOKEN_MAX];
    feed_head(s, head_after);
    REQUIRE(store_consumer_commit(s, "cons", head_before, head_after, NULL, 0, &e) == SL_OK);

    int64_t v = 0;
    CHECK_INT(get_n(snap, STORE_ITEMS, "S", "a", &v), 1);
    CHECK_INT(v, 1);
    CHECK_INT(get_n(snap, STORE_ITEMS, "S", "b", NULL), -1);
    CHECK_INT(get_n(snap, STORE_ITEMS, "S", "c", NULL), 1);
    CHECK_INT(get_n(snap, STORE_AGGREGATES, "S", "agg", NULL), 1);
    keylist got = {0};
    store_range all = {STORE_RANGE_ALL, NULL, NULL};
    CHECK_INT(collect(snap, Q_PARTITION, STORE_ITEMS, "S", all, 0, 1, "sk", &got), SL_OK);
    CHECK_INT(got.n, 2);
    keylist_free(&got);
    CHECK_INT(collect(snap, Q_SCAN, STORE_ITEMS, "", all, 0, 1, "sk", &got), SL_OK);
    CHECK_INT(got.n, 2);
    keylist_free(&got);
    char h[STORE_TOKEN_MAX];
    feed_head(snap, h);
    CHECK_STR(h, head_before);
    sl_error_clear(&e);
    CHECK_INT(store_consumer_token(snap, "cons", tok, &e), SL_OK);
    CHECK_STR(tok, head_before);
    /* the snapshot's feed ends where the snapshot was taken */
    store_feed *f = NULL;
    REQUIRE(store_feed_open(snap, "fresh", &f, &e) == SL_OK);
    seen_event ev[16];
    CHECK_INT(drain(f, 16, ev, 16), 2);
    store_feed_close(&f);
    /* writes through it are refused */
    CHECK_INT(put_n(snap, STORE_ITEMS, "S", "z", 1, cond_none(), NULL), SL_EINVAL);
    sl_error_clear(&e);
    CHECK_INT(store_delete(snap, STORE_ITEMS, "S", "a", cond_none(), NULL, &e), SL_EINVAL);
    sl_error_clear(&e);
    CHECK_INT(store_consumer_commit(snap, "cons", head_after, head_after, NULL, 0, &e), SL_EINVAL);
    /* the main store sees the present */
    CHECK_INT(get_n(s, STORE_ITEMS, "S", "a", NULL), 2);
    CHECK_INT(get_n(s, STORE_ITEMS, "S", "c", NULL), -1);
    store_close(&snap);
    CHECK(snap == NULL);
    store_close(&s);
}

/* Many threads share one handle. */
typedef struct mt_arg {
    store *s;
    int id;
    int ok;
} mt_arg;

static void *mt_work(void *p)
{
    mt_arg *m = p;
    char sk[32];
    for (int i = 0; i < 100; i++) {
        snprintf(sk, sizeof sk, "t%d-%03d", m->id, i);
        store_put_result r = {0};
        if (put_n(m->s, STORE_ITEMS, "MT", sk, i, cond_of(STORE_COND_NOT_EXISTS, 0), &r) == SL_OK &&
            r.version == 1 && get_n(m->s, STORE_ITEMS, "MT", sk, NULL) == i)
            m->ok++;
    }
    return NULL;
}

static void test_threads(const adapter *a)
{
    store *s = open_fresh(a, 0, NULL);
    pthread_t th[6];
    mt_arg args[6];
    for (int i = 0; i < 6; i++) {
        args[i] = (mt_arg){s, i, 0};
        REQUIRE(pthread_create(&th[i], NULL, mt_work, &args[i]) == 0);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT(args[i].ok, 100);
    }
    keylist got = {0};
    store_range all = {STORE_RANGE_ALL, NULL, NULL};
    CHECK_INT(collect(s, Q_PARTITION, STORE_ITEMS, "MT", all, 0, 1000, "sk", &got), SL_OK);
    CHECK_INT(got.n, 600);
    keylist_free(&got);
    store_close(&s);
}

/* ---------------------------------------------------------------------------
 * Exactly once across SIGKILL.  The consumer (this binary, re-executed) sums
 * events into one aggregate: count, sum of new n, sum of old n, sum of new
 * n squared.  Every write sets a unique n, so a lost or doubled event shows.
 * ------------------------------------------------------------------------- */
#define K9_CONSUMER "k9"

typedef struct k9_sums {
    int64_t count, sum_new, sum_old, sq_new;
} k9_sums;

/* The consumer process.  kill_batch/kill_phase: kill itself with SIGKILL in
 * that batch: 0 after reading, 1 right before commit, 2 right after. */
static int k9_child(const char *uri, int kill_batch, int kill_phase)
{
    store *s = NULL;
    store_feed *f = NULL;
    sl_error e;
    char tok[STORE_TOKEN_MAX] = "";
    sl_error_clear(&e);
    if (store_open(uri, NULL, &s, &e) != SL_OK || store_feed_open(s, K9_CONSUMER, &f, &e) != SL_OK)
        goto fail;
    sl_status rc = store_consumer_token(s, K9_CONSUMER, tok, &e);
    if (rc == SL_ENOTFOUND) {
        tok[0] = '\0';
        sl_error_clear(&e);
    } else if (rc != SL_OK) {
        goto fail;
    }
    for (int batch = 0;; batch++) {
        const store_event *ev = NULL;
        size_t n = 0;
        if (store_feed_read(f, 5, 0, &ev, &n, &e) != SL_OK)
            goto fail;
        if (n == 0)
            break;
        if (batch == kill_batch && kill_phase == 0)
            kill(getpid(), SIGKILL);
        bson_t *cur = NULL;
        k9_sums sum = {0, 0, 0, 0};
        int64_t v = 0;
        rc = store_get(s, STORE_AGGREGATES, "AGG", "k9", &cur, &e);
        if (rc == SL_OK) {
            sum.count = bson_int(cur, "count");
            sum.sum_new = bson_int(cur, "sum_new");
            sum.sum_old = bson_int(cur, "sum_old");
            sum.sq_new = bson_int(cur, "sq_new");
            v = bson_int(cur, "v");
            bson_destroy(cur);
        } else if (rc != SL_ENOTFOUND) {
            goto fail;
        }
        sl_error_clear(&e);
        for (size_t i = 0; i < n; i++) {
            int64_t nn = ev[i].new_image ? bson_int(ev[i].new_image, "n") : 0;
            sum.count++;
            sum.sum_new += nn;
            sum.sq_new += nn * nn;
            sum.sum_old += ev[i].old_image ? bson_int(ev[i].old_image, "n") : 0;
        }
        bson_t *d = bson_new();
        BSON_APPEND_UTF8(d, "pk", "AGG");
        BSON_APPEND_UTF8(d, "sk", "k9");
        BSON_APPEND_INT64(d, "count", sum.count);
        BSON_APPEND_INT64(d, "sum_new", sum.sum_new);
        BSON_APPEND_INT64(d, "sum_old", sum.sum_old);
        BSON_APPEND_INT64(d, "sq_new", sum.sq_new);
        store_op op = {.kind = STORE_OP_PUT,
                       .table = STORE_AGGREGATES,
                       .doc = d,
                       .cond =
                           v ? cond_of(STORE_COND_VERSION, v) : cond_of(STORE_COND_NOT_EXISTS, 0)};
        if (batch == kill_batch && kill_phase == 1)
            kill(getpid(), SIGKILL);
        rc = store_consumer_commit(s, K9_CONSUMER, tok, ev[n - 1].token, &op, 1, &e);
        bson_destroy(d);
        if (rc != SL_OK)
            goto fail;
        if (batch == kill_batch && kill_phase == 2)
            kill(getpid(), SIGKILL);
        memcpy(tok, ev[n - 1].token, sizeof tok);
    }
    store_feed_close(&f);
    store_close(&s);
    return 0;
fail:
    fprintf(stderr, "k9 consumer: %s: %s\n", sl_status_name(e.status), e.message);
    return 3;
}

/* Runs the consumer process; kill_after_us >= 0 kills it from here after
 * that long.  Returns its exit status, or -SIGKILL when killed. */
static int k9_run(const char *uri, int kill_batch, int kill_phase, int kill_after_us)
{
    char b[16], p[16];
    snprintf(b, sizeof b, "%d", kill_batch);
    snprintf(p, sizeof p, "%d", kill_phase);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        execl("/proc/self/exe", "conformance", "k9-child", uri, b, p, (char *)NULL);
        _exit(127);
    }
    if (kill_after_us >= 0) {
        struct timespec ts = {kill_after_us / 1000000, (long)(kill_after_us % 1000000) * 1000};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
    }
    int st = 0;
    REQUIRE(waitpid(pid, &st, 0) == pid);
    if (WIFSIGNALED(st))
        return -WTERMSIG(st);
    return WEXITSTATUS(st);
}

static void test_kill9_exactly_once(const adapter *a)
{
    char uri[512];
    store *s = open_fresh(a, 0, uri);
    k9_sums want = {0, 0, 0, 0};
    int64_t live[16];
    unsigned seed = (unsigned)test_rng(1); /* the run's seed is printed */
    int64_t w = 0;
    int killed = 0, finished = 0;
    for (int k = 0; k < 16; k++)
        live[k] = -1;

    for (int round = 0; round < 4; round++) {
        /* writes: puts (insert or update) and deletes over 16 keys */
        for (int i = 0; i < 60; i++) {
            int k = (int)(rand_r(&seed) % 16);
            char sk[8];
            snprintf(sk, sizeof sk, "k%02d", k);
            if (live[k] >= 0 && rand_r(&seed) % 4 == 0) {
                sl_error e;
                sl_error_clear(&e);
                REQUIRE(store_delete(s, STORE_ITEMS, "K9", sk, cond_none(), NULL, &e) == SL_OK);
                want.count++;
                want.sum_old += live[k];
                live[k] = -1;
            } else {
                w++;
                REQUIRE(put_n(s, STORE_ITEMS, "K9", sk, w, cond_none(), NULL) == SL_OK);
                want.count++;
                want.sum_new += w;
                want.sq_new += w * w;
                if (live[k] >= 0)
                    want.sum_old += live[k];
                live[k] = w;
            }
        }
        /* consumers killed at chosen points, then at random moments */
        for (int r = 0; r < 6; r++) {
            int rc;
            if (r < 3)
                rc = k9_run(uri, (int)(rand_r(&seed) % 8), r, -1);
            else
                rc = k9_run(uri, -1, -1, (int)(rand_r(&seed) % 40000));
            CHECK(rc == 0 || rc == -SIGKILL);
            killed += rc == -SIGKILL;
            finished += rc == 0;
        }
    }
    CHECK_INT(k9_run(uri, -1, -1, -1), 0); /* catch up */
    CHECK(killed > 0);
    fprintf(stderr, "%s: kill -9 test: %d consumers killed, %d finished\n", a->name, killed,
            finished);

    bson_t *agg = NULL;
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(store_get(s, STORE_AGGREGATES, "AGG", "k9", &agg, &e) == SL_OK);
    CHECK_INT(bson_int(agg, "count"), want.count);
    CHECK_INT(bson_int(agg, "sum_new"), want.sum_new);
    CHECK_INT(bson_int(agg, "sum_old"), want.sum_old);
    CHECK_INT(bson_int(agg, "sq_new"), want.sq_new);
    bson_destroy(agg);
    store_feed_stats st;
    CHECK_INT(store_feed_stats_get(s, K9_CONSUMER, &st, &e), SL_OK);
    CHECK_INT(st.behind_events, 0);
    store_close(&s);
}

/* ---------------------------------------------------------------------------
 * Driver.
 * ------------------------------------------------------------------------- */
static void run_adapter(const adapter *a)
{
    char probe[512];
    tmpdir_make(tmp);
    REQUIRE(a->uri(tmp, 0, probe, sizeof probe)); /* main() checked what it needs */
    fprintf(stderr, "adapter %s\n", a->name);
    test_conditions(a);
    test_versions(a);
    test_invalid_input(a);
    test_well_formed(a);
    test_ranges(a);
    test_index_and_scan(a);
    test_tokens(a);
    test_page_bounds(a);
    test_page_tokens_long_keys(a);
    test_pagination_concurrent(a);
    test_batches(a);
    test_feed_events(a);
    test_feed_order_threads(a);
    test_feed_wait(a);
    test_consumer_commit(a);
    test_pruning(a);
    test_feed_filter(a);
    test_consumer_drop(a);
    test_snapshot(a);
    test_threads(a);
    test_kill9_exactly_once(a);
    tmpdir_remove(tmp);
}

/* Without an argument: every adapter of `adapters`.  `mongo`: the MongoDB
 * row, its own ctest entry (conformance_mongo), skipped -- exit 77 -- when
 * SIGHTLINE_TEST_MONGO_URI is not set. */
int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "k9-child") == 0)
        return k9_child(argv[2], atoi(argv[3]), atoi(argv[4]));
    if (argc == 2 && strcmp(argv[1], "mongo") == 0) {
        const char *uri = getenv("SIGHTLINE_TEST_MONGO_URI");
        if (!uri || !uri[0]) {
            fprintf(stderr, "skipped: set SIGHTLINE_TEST_MONGO_URI to a MongoDB replica set "
                            "(\"mongodb://host:27017/?replicaSet=rs0\") to run the MongoDB row\n");
            return 77;
        }
        run_adapter(&mongo_adapter);
    } else {
        REQUIRE(argc == 1);
        for (size_t i = 0; i < sizeof adapters / sizeof adapters[0]; i++)
            run_adapter(&adapters[i]);
    }
    return check_finish();
}
