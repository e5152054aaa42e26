/* api_kind_test.c -- regression test for issue 9, finding 13: a hospital
 * tenant's keys could write brand assets and read /v1/brands, a brand
 * client's keys could create surgeries and catalog entries.  Every route of
 * the server's own table (api__areas: a route added later is covered too) is
 * called with keys of the kind it does not serve, which must get exactly the
 * answer of a path no route has, and change nothing; keys of a kind it
 * serves must reach it. */
#include "api/api_int.h"
#include "tests/support/support.h"
#include "tests/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

static support_server srv;

typedef struct tenant_keys {
    const char *kind;
    unsigned bit;
    char admin[128], viewer[128], ingest[128];
} tenant_keys;

static tenant_keys hospital = {"hospital", API_KIND_HOSPITAL, "", "", ""};
static tenant_keys brand = {"brand-client", API_KIND_BRAND, "", "", ""};

/* The pattern with every {param} replaced by x1. */
static void concrete(const char *pattern, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = pattern; *p && o + 3 < cap;) {
        if (*p == '{') {
            memcpy(out + o, "x1", 2);
            o += 2;
            p = strchr(p, '}') ? strchr(p, '}') + 1 : p + strlen(p);
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
}

/* Member key of a JSON text as a string, "" when absent. */
static void member(const char *body, const char *key, char *out, size_t cap)
{
    char err[128];
    yajl_val v = yajl_tree_parse(body, err, sizeof err);
    const char *path[] = {key, NULL};
    yajl_val m = v ? yajl_tree_get(v, path, yajl_t_any) : NULL;
    out[0] = '\0';
    if (m && YAJL_IS_STRING(m))
        snprintf(out, cap, "%s", m->u.string);
    else if (m && YAJL_IS_INTEGER(m))
        snprintf(out, cap, "%lld", YAJL_GET_INTEGER(m));
    if (v)
        yajl_tree_free(v);
}

/* The answer without its request id: status, type, title, detail, field. */
static void signature(const support_resp *r, char *out, size_t cap)
{
    char type[128], title[64], detail[256], field[64];
    member(r->body, "type", type, sizeof type);
    member(r->body, "title", title, sizeof title);
    member(r->body, "detail", detail, sizeof detail);
    member(r->body, "field", field, sizeof field);
    snprintf(out, cap, "%ld|%s|%s|%s|%s", r->status, type, title, detail, field);
}

static void test_every_route(void)
{
    char no_route[600], got[600], path[256], url[512];
    support_resp r;
    /* What a path no route has is answered, for a key of each kind. */
    snprintf(url, sizeof url, "%s/v1/no/such/route", srv.url);
    REQUIRE(support_http("GET", url, hospital.admin, NULL, 0, NULL, &r) == 0);
    signature(&r, no_route, sizeof no_route);
    CHECK_INT(support_is_problem(&r, 404, "no-route"), 0);
    support_resp_free(&r);

    size_t tried = 0, served = 0;
    for (size_t a = 0; api__areas[a]; a++)
        for (size_t i = 0; i < api__areas[a]->n; i++) {
            const api_route *rt = &api__areas[a]->routes[i];
            if (rt->roles & API_PUBLIC)
                continue;
            concrete(rt->pattern, path, sizeof path);
            snprintf(url, sizeof url, "%s%s", srv.url, path);
            const char *body = rt->body == API_BODY_NONE ? NULL : "{}";
            tenant_keys *kinds[] = {&hospital, &brand};
            for (size_t k = 0; k < 2; k++) {
                tenant_keys *t = kinds[k];
                const char *keys[] = {t->admin, t->viewer, t->ingest};
                for (size_t j = 0; j < 3; j++) {
                    REQUIRE(support_http(rt->method, url, keys[j], body, body ? 2 : 0, NULL, &r) ==
                            0);
                    signature(&r, got, sizeof got);
                    if (rt->kinds & t->bit) {
                        /* Served: whatever the answer, it is not "no route". */
                        if (!strcmp(got, no_route))
                            fprintf(stderr, "%s %s, %s key: refused as no route\n", rt->method,
                                    rt->pattern, t->kind);
                        CHECK(strcmp(got, no_route) != 0);
                        served++;
                    } else {
                        /* Not served: the very answer of a path no route has. */
                        if (strcmp(got, no_route))
                            fprintf(stderr, "%s %s, %s key: %s\n", rt->method, rt->pattern, t->kind,
                                    got);
                        CHECK_STR(got, no_route);
                        tried++;
                    }
                    support_resp_free(&r);
                }
            }
        }
    /* Surgeries (4), usage (4), recommendations (1), catalog (3), assets (4), brands and
     * sectors (7), brand reports (2), surgery reports (2). */
    CHECK_INT(tried, 27 * 3);
    CHECK(served > 0);
}

/* The writes of the other kind changed nothing, and the kind's own work. */
static void test_nothing_written(void)
{
    char url[512];
    support_resp r;
    static const struct {
        const char *path;
        int brand;
    } reads[] = {{"/v1/surgeries/x1", 0}, {"/v1/catalog/x1", 0}, {"/v1/assets/x1", 1}};
    for (size_t i = 0; i < 3; i++) {
        snprintf(url, sizeof url, "%s%s", srv.url, reads[i].path);
        REQUIRE(support_http("GET", url, reads[i].brand ? brand.admin : hospital.admin, NULL, 0,
                             NULL, &r) == 0);
        CHECK_INT(support_is_problem(&r, 404, "not-found"), 0);
        support_resp_free(&r);
    }
    /* A brand client's asset batch and a hospital's surgery go in. */
    const char *asset =
        "{\"client\": \"c\", \"brand\": \"b\", \"campaign\": \"c\", \"sector\": "
        "\"s\", \"media_type\": \"image\", \"memorability\": 0.5, \"saliency\": {}}";
    snprintf(url, sizeof url, "%s/v1/assets/a1", srv.url);
    REQUIRE(support_http("PUT", url, brand.ingest, asset, strlen(asset), NULL, &r) == 0);
    CHECK_INT(r.status, 201);
    support_resp_free(&r);
    /* ... and the hospital cannot see it (nor tell it exists). */
    REQUIRE(support_http("GET", url, hospital.admin, NULL, 0, NULL, &r) == 0);
    CHECK_INT(support_is_problem(&r, 404, "no-route"), 0);
    support_resp_free(&r);
    /* Both kinds reach what both have. */
    snprintf(url, sizeof url, "%s/v1/tenant", srv.url);
    REQUIRE(support_http("GET", url, brand.viewer, NULL, 0, NULL, &r) == 0);
    CHECK_INT(r.status, 200);
    CHECK(strstr(r.body, "\"kind\":\"brand-client\"") != NULL);
    support_resp_free(&r);
}

int main(void)
{
    REQUIRE(support_server_init(&srv, NULL, NULL) == 0);
    REQUIRE(support_server_start(&srv, (char *)NULL) == 0);
    tenant_keys *ts[] = {&hospital, &brand};
    const char *names[] = {"hosp", "glow"};
    for (size_t i = 0; i < 2; i++)
        REQUIRE(support_tenant(srv.store, names[i], ts[i]->kind) == 0 &&
                support_key(srv.store, names[i], "admin", ts[i]->admin) == 0 &&
                support_key(srv.store, names[i], "viewer", ts[i]->viewer) == 0 &&
                support_key(srv.store, names[i], "ingest", ts[i]->ingest) == 0);
    test_every_route();
    test_nothing_written();
    CHECK_INT(support_server_stop(&srv), 0);
    support_server_cleanup(&srv);
    return check_finish();
}
