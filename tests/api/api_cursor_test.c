/* api_cursor_test.c -- regression test for issue 9, finding 14: cursors were
 * the listing's position in base64 (store page tokens) or hex (the brand
 * dashboard), so a client could read the internal sort keys and forge
 * positions.  Against real servers: a cursor shows nothing of the position;
 * an altered, cut, another tenant's, another listing's or another store's
 * cursor is a 400 naming `cursor`; a cursor survives a restart and works on
 * every server of its store. */
#include "tests/support/support.h"
#include "tests/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

static support_server one, two; /* two stores */

typedef struct keys {
    char admin[128], ingest[128], staff[128], viewer[128];
} keys;

static keys acme1, globex1, glow1, acme2;

static const char *const b64url =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The bytes under a base64url cursor (also hex, for the old brand cursors:
 * both are looked into). */
static size_t cursor_bytes(const char *c, unsigned char *out, size_t cap)
{
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (const char *p = c; *p && n < cap; p++) {
        const char *at = strchr(b64url, *p);
        if (!at)
            break;
        acc = acc << 6 | (uint32_t)(at - b64url);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    return n;
}

static int reveals(const char *cursor, const char *secret_text)
{
    unsigned char raw[8192], hex[8192];
    size_t n = cursor_bytes(cursor, raw, sizeof raw), h = 0;
    for (size_t i = 0; cursor[i] && cursor[i + 1] && h < sizeof hex; i += 2) {
        unsigned v = 0;
        if (sscanf(cursor + i, "%2x", &v) != 1)
            break;
        hex[h++] = (unsigned char)v;
    }
    return memmem(raw, n, secret_text, strlen(secret_text)) != NULL ||
           memmem(hex, h, secret_text, strlen(secret_text)) != NULL;
}

/* GET path on s with key: status, and the `next` (or next_cursor) member. */
static long get_page(const support_server *s, const char *key, const char *path, char *next,
                     size_t cap, support_resp *keep)
{
    char url[8192], err[128];
    support_resp r;
    snprintf(url, sizeof url, "%s%s", s->url, path);
    next[0] = '\0';
    REQUIRE(support_http("GET", url, key, NULL, 0, NULL, &r) == 0);
    long status = r.status;
    yajl_val v = yajl_tree_parse(r.body, err, sizeof err);
    const char *p1[] = {"next", NULL}, *p2[] = {"next_cursor", NULL};
    yajl_val n = v ? yajl_tree_get(v, p1, yajl_t_string) : NULL;
    if (!n && v)
        n = yajl_tree_get(v, p2, yajl_t_string);
    /* n->u.string directly: YAJL_GET_STRING's NULL arm (never taken for a
     * string node) reads to GCC as a NULL %s argument. */
    if (n && YAJL_IS_STRING(n))
        snprintf(next, cap, "%s", n->u.string);
    if (v)
        yajl_tree_free(v);
    if (keep)
        *keep = r;
    else
        support_resp_free(&r);
    return status;
}

/* The listing refuses the cursor: 400 naming `cursor`. */
static void refused(const support_server *s, const char *key, const char *path_fmt,
                    const char *cursor, const char *why)
{
    char path[8192], next[64];
    support_resp r;
    snprintf(path, sizeof path, path_fmt, cursor);
    get_page(s, key, path, next, sizeof next, &r);
    int ok = support_is_problem(&r, 400, "invalid-input") == 0 &&
             strstr(r.body, "\"field\":\"cursor\"") != NULL;
    if (!ok)
        fprintf(stderr, "%s: %ld %.300s\n", why, r.status, r.body);
    CHECK(ok);
    support_resp_free(&r);
}

static void make_keys(const support_server *s, const char *tenant, const char *kind, keys *k)
{
    REQUIRE(support_tenant(s->store, tenant, kind) == 0 &&
            support_key(s->store, tenant, "admin", k->admin) == 0 &&
            support_key(s->store, tenant, "ingest", k->ingest) == 0 &&
            support_key(s->store, tenant, "staff", k->staff) == 0 &&
            support_key(s->store, tenant, "viewer", k->viewer) == 0);
}

/* Surgery id with frames 1..5 on s. */
static void surgery_with_frames(const support_server *s, const char *key, const char *id)
{
    static const char *surgery =
        "{\"hospital\": \"st-mary\", \"room\": \"OR 3\", \"procedure\": \"lap-chole\", "
        "\"surgeon\": \"Dr. Grey\", \"started_at\": \"2026-11-26T08:15:00Z\", \"fps\": 30, "
        "\"frame_width\": 640, \"frame_height\": 480, \"table\": [[0, 0], [1, 0], [1, 1]]}";
    char url[512], body[2048] = "";
    support_resp r;
    snprintf(url, sizeof url, "%s/v1/surgeries/%s", s->url, id);
    REQUIRE(support_http("PUT", url, key, surgery, strlen(surgery), NULL, &r) == 0);
    REQUIRE(r.status == 201);
    support_resp_free(&r);
    for (int f = 1; f <= 5; f++) {
        size_t n = strlen(body);
        snprintf(body + n, sizeof body - n,
                 "{\"frame\": %d, \"detections\": [{\"label\": \"scalpel\", \"confidence\": 0.5, "
                 "\"box\": {\"x\": 0.1, \"y\": 0.1, \"w\": 0.2, \"h\": 0.2}}]}\n",
                 f);
    }
    snprintf(url, sizeof url, "%s/v1/surgeries/%s/detections?format=ndjson", s->url, id);
    REQUIRE(support_http("POST", url, key, body, strlen(body), NULL, &r) == 0);
    REQUIRE(r.status == 200);
    support_resp_free(&r);
}

static void test_frames_cursors(void)
{
    char c1[4608], c2[4608], bad[4608], next[4608];
    support_resp r;
    const char *frames = "/v1/surgeries/s1/frames?limit=2&cursor=%s";
    CHECK_INT(get_page(&one, acme1.staff, "/v1/surgeries/s1/frames?limit=2", c1, sizeof c1, NULL),
              200);
    REQUIRE(c1[0]);
    /* Regression: the cursor was base64 of the store's page token, which
     * holds the sort keys (FRAME#000000002). */
    CHECK(!reveals(c1, "FRAME#"));
    CHECK(!reveals(c1, "FRAME"));
    /* It pages on. */
    char path[8192];
    snprintf(path, sizeof path, frames, c1);
    CHECK_INT(get_page(&one, acme1.staff, path, c2, sizeof c2, &r), 200);
    CHECK(strstr(r.body, "\"frame\":3") != NULL && strstr(r.body, "\"frame\":4") != NULL);
    CHECK(strstr(r.body, "\"frame\":2") == NULL);
    support_resp_free(&r);

    /* Altered (one character, anywhere) and cut short. */
    size_t len = strlen(c1);
    for (size_t i = 0; i < len; i += len / 7 + 1) {
        memcpy(bad, c1, len + 1);
        bad[i] = bad[i] == 'A' ? 'B' : 'A';
        refused(&one, acme1.staff, frames, bad, "altered cursor");
    }
    snprintf(bad, sizeof bad, "%.*s", (int)len - 3, c1);
    refused(&one, acme1.staff, frames, bad, "truncated cursor");
    refused(&one, acme1.staff, frames, "AAAA", "made-up cursor");
    /* Another listing: another surgery, other filters, another route. */
    refused(&one, acme1.staff, "/v1/surgeries/s2/frames?limit=2&cursor=%s", c1,
            "another surgery's listing");
    refused(&one, acme1.staff, "/v1/surgeries/s1/frames?limit=2&from=1&cursor=%s", c1,
            "another range");
    refused(&one, acme1.staff, "/v1/catalog?cursor=%s", c1, "another route");
    /* The same listing with another page size is the same listing. */
    snprintf(path, sizeof path, "/v1/surgeries/s1/frames?limit=3&cursor=%s", c1);
    CHECK_INT(get_page(&one, acme1.staff, path, next, sizeof next, NULL), 200);
    /* Another tenant with a surgery of the same name. */
    refused(&one, globex1.staff, frames, c1, "another tenant's cursor");
    /* Another store: the same tenant, surgery and frames, another secret.
     * (Regression: the store's token was the same there, and accepted.) */
    refused(&two, acme2.staff, frames, c1, "another store's cursor");
    snprintf(path, sizeof path, frames, c1);
    CHECK_INT(get_page(&one, acme1.staff, path, next, sizeof next, NULL), 200);

    /* The secret is the store's: after a restart, and on a second server of
     * the same store, the cursor still works. */
    support_server same;
    REQUIRE(support_server_init(&same, NULL, one.store) == 0);
    REQUIRE(support_server_start(&same, (char *)NULL) == 0);
    CHECK_INT(get_page(&same, acme1.staff, path, next, sizeof next, NULL), 200);
    CHECK_INT(support_server_stop(&same), 0);
    support_server_cleanup(&same);
    CHECK_INT(support_server_stop(&one), 0);
    REQUIRE(support_server_start(&one, (char *)NULL) == 0);
    CHECK_INT(get_page(&one, acme1.staff, path, next, sizeof next, NULL), 200);
}

static void test_keys_cursor(void)
{
    char c[4608];
    CHECK_INT(get_page(&one, acme1.admin, "/v1/keys?limit=1", c, sizeof c, NULL), 200);
    REQUIRE(c[0]);
    CHECK(!reveals(c, "KEY#"));
    refused(&one, globex1.admin, "/v1/keys?limit=1&cursor=%s", c, "another tenant's key cursor");
    refused(&two, acme2.admin, "/v1/keys?limit=1&cursor=%s", c, "another store's key cursor");
}

/* Waits (20 s at most) until the dashboard lists n brands. */
static void wait_brands(int n)
{
    char next[64];
    for (int i = 0; i < 400; i++) {
        support_resp r;
        get_page(&one, glow1.viewer, "/v1/brands?limit=100", next, sizeof next, &r);
        int seen = 0;
        for (const char *p = strstr(r.body, "\"brand\":"); p; p = strstr(p + 1, "\"brand\":"))
            seen++;
        support_resp_free(&r);
        if (seen >= n)
            return;
        support_sleep_ms(50);
    }
    REQUIRE(!"the listener did not aggregate the brands in time");
}

static void test_brand_cursors(void)
{
    char url[512], c[4608], path[8192], forged[512];
    support_resp r;
    static const char *const brands[] = {"alpha", "bravo", "charlie", "delta", "echo"};
    for (size_t i = 0; i < 5; i++) {
        char body[512];
        snprintf(body, sizeof body,
                 "{\"client\": \"c\", \"brand\": \"%s\", \"campaign\": \"c1\", \"sector\": "
                 "\"s\", \"media_type\": \"image\", \"memorability\": 0.5, \"saliency\": {}}",
                 brands[i]);
        snprintf(url, sizeof url, "%s/v1/assets/a%zu", one.url, i);
        REQUIRE(support_http("PUT", url, glow1.ingest, body, strlen(body), NULL, &r) == 0);
        REQUIRE(r.status == 201);
        support_resp_free(&r);
    }
    wait_brands(5);
    CHECK_INT(get_page(&one, glow1.viewer, "/v1/brands?limit=2", c, sizeof c, NULL), 200);
    REQUIRE(c[0]);
    /* Regression: hex of "brands:brand:asc\nBRAND#bravo". */
    CHECK(!reveals(c, "BRAND#"));
    snprintf(path, sizeof path, "/v1/brands?limit=2&cursor=%s", c);
    CHECK_INT(get_page(&one, glow1.viewer, path, c, sizeof c, &r), 200);
    CHECK(strstr(r.body, "charlie") && strstr(r.body, "delta") && !strstr(r.body, "bravo"));
    support_resp_free(&r);
    /* Regression: a forged position was accepted (and skipped to it). */
    const char *pos = "brands:brand:asc\nBRAND#d";
    for (size_t i = 0; pos[i]; i++)
        snprintf(forged + 2 * i, 3, "%02x", (unsigned char)pos[i]);
    refused(&one, glow1.viewer, "/v1/brands?limit=2&cursor=%s", forged, "forged brand cursor");
    /* Another sort is another listing. */
    refused(&one, glow1.viewer, "/v1/brands?limit=2&sort=count&cursor=%s", c,
            "another sort's cursor");
}

int main(void)
{
    REQUIRE(support_server_init(&one, NULL, NULL) == 0 &&
            support_server_init(&two, NULL, NULL) == 0);
    REQUIRE(support_server_start(&one, (char *)NULL) == 0);
    REQUIRE(support_server_start(&two, (char *)NULL) == 0);
    make_keys(&one, "acme", "hospital", &acme1);
    make_keys(&one, "globex", "hospital", &globex1);
    make_keys(&one, "glow", "brand-client", &glow1);
    make_keys(&two, "acme", "hospital", &acme2);
    surgery_with_frames(&one, acme1.ingest, "s1");
    surgery_with_frames(&one, acme1.ingest, "s2");
    surgery_with_frames(&one, globex1.ingest, "s1");
    surgery_with_frames(&two, acme2.ingest, "s1");
    test_keys_cursor();
    test_brand_cursors();
    test_frames_cursors(); /* last: it restarts server one */
    CHECK_INT(support_server_stop(&one), 0);
    CHECK_INT(support_server_stop(&two), 0);
    support_server_cleanup(&one);
    support_server_cleanup(&two);
    return check_finish();
}
