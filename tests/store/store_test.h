/* store_test.h -- helpers shared by the store tests: temporary directories,
 * document builders and page collection, all through the port. */
#ifndef SIGHTLINE_TESTS_STORE_TEST_H
#define SIGHTLINE_TESTS_STORE_TEST_H

#include "store/store.h"
#include "tests/check.h"

#include <ftw.h>
#include <stdarg.h>
#include <unistd.h>

/* A fresh directory under /tmp; removed with tmpdir_remove(). */
static inline void tmpdir_make(char out[64])
{
    snprintf(out, 64, "/tmp/sl-store-XXXXXX");
    REQUIRE(mkdtemp(out) != NULL);
}

static inline int tmpdir_unlink_(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb;
    (void)flag;
    (void)f;
    return remove(path);
}

static inline void tmpdir_remove(const char *dir)
{
    nftw(dir, tmpdir_unlink_, 16, FTW_DEPTH | FTW_PHYS);
}

/* A document {pk, sk, [gsi1pk, gsi1sk], n: n}.  Free with bson_destroy. */
static inline bson_t *doc_new(const char *pk, const char *sk, int64_t n)
{
    bson_t *d = bson_new();
    BSON_APPEND_UTF8(d, "pk", pk);
    BSON_APPEND_UTF8(d, "sk", sk);
    BSON_APPEND_INT64(d, "n", n);
    return d;
}

static inline bson_t *doc_new_gsi(const char *pk, const char *sk, const char *g1pk,
                                  const char *g1sk, const char *g2pk, const char *g2sk, int64_t n)
{
    bson_t *d = bson_new();
    BSON_APPEND_UTF8(d, "pk", pk);
    BSON_APPEND_UTF8(d, "sk", sk);
    if (g1pk) {
        BSON_APPEND_UTF8(d, "gsi1pk", g1pk);
        BSON_APPEND_UTF8(d, "gsi1sk", g1sk);
    }
    if (g2pk) {
        BSON_APPEND_UTF8(d, "gsi2pk", g2pk);
        BSON_APPEND_UTF8(d, "gsi2sk", g2sk);
    }
    BSON_APPEND_INT64(d, "n", n);
    return d;
}

/* Puts {pk, sk, n} into table t; returns the status, res may be NULL. */
static inline sl_status put_n(store *s, store_table t, const char *pk, const char *sk, int64_t n,
                              store_cond c, store_put_result *res)
{
    sl_error e;
    sl_error_clear(&e);
    bson_t *d = doc_new(pk, sk, n);
    sl_status rc = store_put(s, t, d, c, res, &e);
    if (rc != SL_OK && rc != SL_ECONDITION)
        fprintf(stderr, "put (%s, %s): %s: %s\n", pk, sk, sl_status_name(rc), e.message);
    bson_destroy(d);
    return rc;
}

static inline int64_t bson_int(const bson_t *d, const char *key)
{
    bson_iter_t it;
    if (!d || !bson_iter_init_find(&it, d, key))
        return -999999;
    return bson_iter_as_int64(&it);
}

static inline const char *bson_str(const bson_t *d, const char *key)
{
    bson_iter_t it;
    if (!d || !bson_iter_init_find(&it, d, key) || !BSON_ITER_HOLDS_UTF8(&it))
        return NULL;
    return bson_iter_utf8(&it, NULL);
}

/* Reads (pk, sk) from t: its n (or -1 when absent) and v (may be NULL). */
static inline int64_t get_n(store *s, store_table t, const char *pk, const char *sk, int64_t *v)
{
    bson_t *d = NULL;
    sl_error e;
    sl_error_clear(&e);
    sl_status rc = store_get(s, t, pk, sk, &d, &e);
    if (rc != SL_OK) {
        if (rc != SL_ENOTFOUND)
            fprintf(stderr, "get (%s, %s): %s: %s\n", pk, sk, sl_status_name(rc), e.message);
        return -1;
    }
    if (v)
        *v = bson_int(d, "v");
    int64_t n = bson_int(d, "n");
    bson_destroy(d);
    return n;
}

static inline store_cond cond_none(void)
{
    store_cond c = {STORE_COND_NONE, 0};
    return c;
}

static inline store_cond cond_of(store_cond_kind k, int64_t v)
{
    store_cond c = {k, v};
    return c;
}

/* A list of keys collected from pages: malloc'd strings. */
typedef struct keylist {
    char **k;
    size_t n, cap;
} keylist;

static inline void keylist_add(keylist *l, const char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->k = realloc(l->k, l->cap * sizeof *l->k);
        REQUIRE(l->k != NULL);
    }
    l->k[l->n++] = strdup(s);
}

static inline void keylist_free(keylist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->k[i]);
    free(l->k);
    memset(l, 0, sizeof *l);
}

enum { Q_PARTITION, Q_INDEX1, Q_INDEX2, Q_SCAN };

/* Runs a query page by page with the given limit and collects field `what`
 * ("sk", or "pk|sk" for both) of every document.  Checks that no page
 * exceeds its limit.  Returns the status of the first failing page. */
static inline sl_status collect(store *s, int kind, store_table t, const char *key, store_range r,
                                int desc, size_t limit, const char *what, keylist *out)
{
    store_query_opts q = {.range = r, .descending = desc, .limit = limit, .page_token = NULL};
    char *tok = NULL;
    sl_status rc = SL_OK;
    int pages = 0;
    do {
        store_page p;
        sl_error e;
        sl_error_clear(&e);
        q.page_token = tok;
        if (kind == Q_PARTITION)
            rc = store_query(s, t, key, &q, &p, &e);
        else if (kind == Q_SCAN)
            rc = store_scan(s, t, key, &q, &p, &e);
        else
            rc = store_query_index(s, t, kind == Q_INDEX1 ? STORE_GSI1 : STORE_GSI2, key, &q, &p,
                                   &e);
        free(tok);
        tok = NULL;
        if (rc != SL_OK)
            break;
        CHECK(p.count <= (limit ? limit : STORE_PAGE_DEFAULT));
        for (size_t i = 0; i < p.count; i++) {
            bson_t view;
            REQUIRE(store_page_view(&p, i, &view));
            char buf[3 * STORE_KEY_MAX + 4];
            if (strcmp(what, "pk|sk") == 0)
                snprintf(buf, sizeof buf, "%s|%s", bson_str(&view, "pk"), bson_str(&view, "sk"));
            else
                snprintf(buf, sizeof buf, "%s", bson_str(&view, what));
            keylist_add(out, buf);
        }
        if (p.next_token) {
            CHECK(strlen(p.next_token) < STORE_PAGE_TOKEN_MAX);
            tok = strdup(p.next_token);
        }
        store_page_free(&p);
        REQUIRE(++pages < 100000);
    } while (tok);
    return rc;
}

#endif
