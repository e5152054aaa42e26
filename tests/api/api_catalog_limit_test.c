/* api_catalog_limit_test.c -- catalog entries per tenant are capped
 * (catalog-entries-max, api/config.c; docs/security.md), against the real
 * server with `--catalog-entries-max 3`.
 *
 * Regression: nothing bounded how many entries one tenant's PUTs made,
 * while the server's ingest cache and every usage analysis compile the
 * whole catalog into memory.  Now:
 *  - `full`: the PUT of a new SKU past the limit is a 409 catalog-full
 *    problem naming the setting and the limit, and writes nothing; an
 *    existing entry can still be replaced; a bad body is still a 400
 *    (checked first); another tenant has its own room;
 *  - `race`: twelve PUTs of new SKUs at once into an empty catalog: exactly
 *    three are taken, the others refused (the count and the write are one
 *    step per server);
 *  - `bounds`: the setting outside 1..100000 (SCHEMA_CATALOG_ENTRIES_MAX)
 *    stops the server at start, naming it. */
#include "tests/support/support.h"
#include "tests/check.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIMIT 3

static support_server srv;
static char admin[128], staff[128], other_admin[128];

static const char *entry(int i, char *out, size_t cap)
{
    snprintf(out, cap,
             "{\"name\": \"Tool %d\", \"labels\": [\"tool-%d\"], \"unit_cost_cents\": %d, "
             "\"single_use\": true}",
             i, i, 100 + i);
    return out;
}

/* PUT /v1/catalog/<sku> with entry i's body by key; the response in r. */
static long put(const char *key, const char *sku, int i, support_resp *r)
{
    char url[512], body[256];
    snprintf(url, sizeof url, "%s/v1/catalog/%s", srv.url, sku);
    entry(i, body, sizeof body);
    REQUIRE(support_http("PUT", url, key, body, strlen(body), NULL, r) == 0);
    return r->status;
}

/* The number of entries GET /v1/catalog lists for key. */
static int listed(const char *key)
{
    char url[512];
    support_resp r;
    snprintf(url, sizeof url, "%s/v1/catalog?limit=100", srv.url);
    REQUIRE(support_http("GET", url, key, NULL, 0, NULL, &r) == 0);
    CHECK_INT(r.status, 200);
    int n = 0;
    for (const char *p = strstr(r.body, "\"sku\""); p; p = strstr(p + 1, "\"sku\""))
        n++;
    support_resp_free(&r);
    return n;
}

static void test_full(void)
{
    support_resp r;
    char sku[16], url[512];
    for (int i = 0; i < LIMIT; i++) {
        snprintf(sku, sizeof sku, "T-%d", i);
        CHECK_INT(put(admin, sku, i, &r), 201);
        support_resp_free(&r);
    }
    /* One more: refused, naming the setting and the limit; nothing written. */
    CHECK_INT(put(admin, "T-9", 9, &r), 409);
    CHECK_INT(support_is_problem(&r, 409, "catalog-full"), 0);
    CHECK(strstr(r.body, "\"field\":\"catalog-entries-max\"") != NULL);
    CHECK(strstr(r.body, "holds 3 entries, the most catalog-entries-max allows") != NULL);
    CHECK(strstr(r.body, "nothing was written") != NULL);
    if (!strstr(r.body, "catalog-entries-max"))
        fprintf(stderr, "409 body: %s\n", r.body);
    support_resp_free(&r);
    snprintf(url, sizeof url, "%s/v1/catalog/T-9", srv.url);
    REQUIRE(support_http("GET", url, staff, NULL, 0, NULL, &r) == 0);
    CHECK_INT(support_is_problem(&r, 404, "not-found"), 0);
    support_resp_free(&r);
    CHECK_INT(listed(staff), LIMIT);

    /* Replacing an entry adds nothing: taken. */
    CHECK_INT(put(admin, "T-1", 42, &r), 200);
    CHECK(strstr(r.body, "\"name\":\"Tool 42\"") != NULL);
    support_resp_free(&r);
    /* A bad body is a 400 whatever the catalog holds. */
    snprintf(url, sizeof url, "%s/v1/catalog/T-8", srv.url);
    REQUIRE(support_http("PUT", url, admin, "{\"name\": 1}", 11, NULL, &r) == 0);
    CHECK_INT(r.status, 400);
    support_resp_free(&r);
    /* Another tenant has its own room. */
    CHECK_INT(put(other_admin, "T-9", 9, &r), 201);
    support_resp_free(&r);
    CHECK_INT(listed(staff), LIMIT);
}

typedef struct racer {
    const char *key;
    int i;
    long status;
} racer;

static void *race_one(void *arg)
{
    racer *x = arg;
    support_resp r;
    char url[512], body[256], sku[16];
    snprintf(sku, sizeof sku, "R-%d", x->i);
    snprintf(url, sizeof url, "%s/v1/catalog/%s", srv.url, sku);
    entry(x->i, body, sizeof body);
    x->status = support_http("PUT", url, x->key, body, strlen(body), NULL, &r) == 0 ? r.status : -1;
    support_resp_free(&r);
    return NULL;
}

static void test_race(const char *key, const char *viewer)
{
    enum { N = 12 };
    pthread_t th[N];
    racer x[N];
    for (int i = 0; i < N; i++) {
        x[i] = (racer){key, i, 0};
        REQUIRE(pthread_create(&th[i], NULL, race_one, &x[i]) == 0);
    }
    int taken = 0, refused = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        taken += x[i].status == 201;
        refused += x[i].status == 409;
    }
    CHECK_INT(taken, LIMIT);
    CHECK_INT(refused, N - LIMIT);
    CHECK_INT(listed(viewer), LIMIT);
}

static void test_bounds(void)
{
    static const char *const bad[] = {"0", "100001"};
    for (int i = 0; i < 2; i++) {
        support_server s;
        REQUIRE(support_server_init(&s, NULL, srv.store) == 0);
        CHECK(support_server_start(&s, "--catalog-entries-max", bad[i], (char *)NULL) != 0);
        CHECK(s.exit_code > 0);
        size_t len = 0;
        char *err = support_read_file(s.err_path, &len);
        CHECK(err && strstr(err, "--catalog-entries-max") && strstr(err, "outside 1..100000"));
        free(err);
        support_server_cleanup(&s);
    }
}

int main(void)
{
    char race_admin[128], race_staff[128];
    REQUIRE(support_server_init(&srv, NULL, NULL) == 0);
    REQUIRE(support_tenant(srv.store, "st-mary", "hospital") == 0 &&
            support_key(srv.store, "st-mary", "admin", admin) == 0 &&
            support_key(srv.store, "st-mary", "staff", staff) == 0 &&
            support_tenant(srv.store, "mercy", "hospital") == 0 &&
            support_key(srv.store, "mercy", "admin", other_admin) == 0 &&
            support_tenant(srv.store, "luke", "hospital") == 0 &&
            support_key(srv.store, "luke", "admin", race_admin) == 0 &&
            support_key(srv.store, "luke", "staff", race_staff) == 0);
    REQUIRE(support_server_start(&srv, "--catalog-entries-max", "3", (char *)NULL) == 0);
    test_full();
    test_race(race_admin, race_staff);
    test_bounds();
    CHECK_INT(support_server_stop(&srv), 0);
    support_server_cleanup(&srv);
    return check_finish();
}
