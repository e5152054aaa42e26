/* reports_http_test.c -- the brand report through the real binary (issue
 * 12): a store built by `sightline ingest` (fixtures/reports/brand-assets.ndjson,
 * fixed scores, hostile names included) and aggregated by the server's
 * listener, then GET /v1/brands/{b}/report.pdf|.xlsx against the server:
 *   - the files and the JSON answers they must agree with are written to
 *     OUTDIR (argv[1]) for the checks by tools nobody here wrote
 *     (check_pdf.py: qpdf, pdftotext, pdftoppm and the golden image;
 *     check_xlsx.py: openpyxl; check_libreoffice.sh), which ctest runs
 *     after this test (fixture reports_out);
 *   - two renders of the same data are byte-identical (PDF, both papers,
 *     and XLSX), and `sightline report brand` writes the same bytes;
 *   - roles: viewer and admin yes; ingest and staff keys of the tenant 403;
 *     a hospital tenant's staff key 404 (the route is not theirs); another
 *     brand tenant 404, as a missing brand; no key 401;
 *   - 304 on If-None-Match with the ETag (and W/ and lists), 200 on another;
 *   - a new ETag after the data change, also when the change moves no
 *     aggregate (an asset's model_version: the brand aggregate's version
 *     stays, which this test checks in the store, so an ETag of aggregate
 *     versions alone would have stayed too);
 *   - Content-Disposition: a plain name, and for a non-ASCII brand an ASCII
 *     fallback plus filename* (RFC 6266 / 8187);
 *   - ?paper= refused unless a4|letter, naming it. */
#include "tests/check.h"
#include "tests/support/support.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"

static char outdir[512], store_uri[256];
static const char *fixture;
static char viewer[128], admin[128], ingest[128], staff[128], other[128], hosp[128];
static support_server srv;

/* The hostile brand of the fixture, percent-encoded for paths. */
#define HOSTILE                                                                                    \
    "U\xcc\x88ni\xcc\x88"                                                                          \
    "code & Co's"

static void save(const char *name, const char *data, size_t len)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", outdir, name);
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    REQUIRE(fwrite(data, 1, len, f) == len);
    REQUIRE(fclose(f) == 0);
}

/* GET path with key and an optional extra header into r; the status. */
static long get(const char *path, const char *key, const char *header, support_resp *r)
{
    char url[1024];
    snprintf(url, sizeof url, "%s%s", srv.url, path);
    if (support_http("GET", url, key, NULL, 0, header, r) != 0)
        return -1;
    return r->status;
}

/* Downloads path as viewer, saves it as name, and checks a second download
 * is the same bytes with the same ETag; etag (96) gets it. */
static void download(const char *path, const char *name, const char *type, char *etag)
{
    support_resp a, b;
    char ct[128] = "", e2[128] = "";
    CHECK_INT(get(path, viewer, NULL, &a), 200);
    CHECK(support_header(&a, "Content-Type", ct, sizeof ct) == 0 && !strcmp(ct, type));
    CHECK(support_header(&a, "ETag", etag, 96) == 0 && etag[0] == '"');
    CHECK_INT(get(path, viewer, NULL, &b), 200);
    CHECK(support_header(&b, "ETag", e2, sizeof e2) == 0 && !strcmp(etag, e2));
    CHECK(a.len > 1000 && a.len == b.len && !memcmp(a.body, b.body, a.len));
    if (a.len != b.len || memcmp(a.body, b.body, a.len))
        fprintf(stderr, "%s: two renders of the same data differ\n", path);
    save(name, a.body, a.len);
    support_resp_free(&a);
    support_resp_free(&b);
}

static void save_json(const char *path, const char *name)
{
    support_resp r;
    CHECK_INT(get(path, viewer, NULL, &r), 200);
    save(name, r.body, r.len);
    support_resp_free(&r);
}

/* The brand aggregate's stored version (`v`), read through the port. */
static int64_t brand_agg_version(const char *brand)
{
    store *s = NULL;
    bson_t *doc = NULL;
    sl_error err;
    schema_key pk, sk;
    int64_t v = -1;
    bson_iter_t it;
    sl_error_clear(&err);
    REQUIRE(store_open(store_uri, &(store_options){.read_only = 1}, &s, &err) == SL_OK);
    REQUIRE(schema_pk_aggregates(pk, "acme", &err) == SL_OK);
    REQUIRE(schema_sk_brand(sk, brand, &err) == SL_OK);
    if (store_get(s, STORE_AGGREGATES, pk, sk, &doc, &err) == SL_OK &&
        bson_iter_init_find(&it, doc, "v"))
        v = bson_iter_as_int64(&it);
    if (doc)
        bson_destroy(doc);
    store_close(&s);
    return v;
}

static void wait_caught_up(void)
{
    support_client *c = support_client_new(srv.url, NULL);
    double behind = -1;
    long until = support_now_ms() + 60000;
    REQUIRE(c);
    while (support_now_ms() < until) {
        if (support_req(c, "GET", "/metrics", NULL, 0) == 200 &&
            support_metric(support_body(c), "sightline_feed_behind_events", &behind) == 0 &&
            behind == 0)
            break;
        support_sleep_ms(50);
    }
    support_client_free(&c);
    REQUIRE(behind == 0);
}

static void roles_and_tenants(void)
{
    support_resp r;
    const char *p = "/v1/brands/sparkle/report.pdf";
    CHECK_INT(get(p, admin, NULL, &r), 200);
    support_resp_free(&r);
    CHECK_INT(get(p, ingest, NULL, &r), 403);
    support_resp_free(&r);
    CHECK_INT(get(p, staff, NULL, &r), 403);
    support_resp_free(&r);
    CHECK_INT(get("/v1/brands/sparkle/report.xlsx", staff, NULL, &r), 403);
    support_resp_free(&r);
    /* A hospital tenant's staff key: brand routes do not exist for it. */
    CHECK_INT(get(p, hosp, NULL, &r), 404);
    support_resp_free(&r);
    /* Another brand tenant: acme's brand is simply not found there. */
    CHECK_INT(get(p, other, NULL, &r), 404);
    CHECK(support_is_problem(&r, 404, "not-found") == 0);
    support_resp_free(&r);
    CHECK_INT(get("/v1/brands/sparkle/report.xlsx", other, NULL, &r), 404);
    support_resp_free(&r);
    CHECK_INT(get("/v1/brands/nobody/report.xlsx", viewer, NULL, &r), 404);
    support_resp_free(&r);
    CHECK_INT(get(p, NULL, NULL, &r), 401);
    support_resp_free(&r);
    CHECK_INT(get("/v1/brands/sparkle/report.pdf?paper=a5", viewer, NULL, &r), 400);
    CHECK(strstr(r.body, "\"field\":\"paper\"") != NULL);
    support_resp_free(&r);
    CHECK_INT(get("/v1/brands/sparkle/report.xlsx?paper=a4", viewer, NULL, &r), 400);
    support_resp_free(&r);
}

static void conditional(const char *etag)
{
    support_resp r;
    char h[256], e[128] = "";
    const char *p = "/v1/brands/sparkle/report.pdf";
    snprintf(h, sizeof h, "If-None-Match: %s", etag);
    CHECK_INT(get(p, viewer, h, &r), 304);
    CHECK(r.len == 0);
    CHECK(support_header(&r, "ETag", e, sizeof e) == 0 && !strcmp(e, etag));
    support_resp_free(&r);
    snprintf(h, sizeof h, "If-None-Match: \"x\", W/%s", etag);
    CHECK_INT(get(p, viewer, h, &r), 304);
    support_resp_free(&r);
    CHECK_INT(get(p, viewer, "If-None-Match: \"brand-0000\"", &r), 200);
    support_resp_free(&r);
    /* The same tag does not match the other paper or format. */
    CHECK_INT(get("/v1/brands/sparkle/report.pdf?paper=letter", viewer, h, &r), 200);
    support_resp_free(&r);
    CHECK_INT(get("/v1/brands/sparkle/report.xlsx", viewer, h, &r), 200);
    support_resp_free(&r);
}

static void dispositions(void)
{
    support_resp r;
    char cd[1024] = "", path[256], esc[200];
    CHECK_INT(get("/v1/brands/sparkle/report.xlsx", viewer, NULL, &r), 200);
    CHECK(support_header(&r, "Content-Disposition", cd, sizeof cd) == 0);
    CHECK_STR(cd, "attachment; filename=\"brand-report-sparkle.xlsx\"");
    support_resp_free(&r);
    support_escape(HOSTILE, esc, sizeof esc);
    snprintf(path, sizeof path, "/v1/brands/%s/report.pdf", esc);
    CHECK_INT(get(path, viewer, NULL, &r), 200);
    CHECK(support_header(&r, "Content-Disposition", cd, sizeof cd) == 0);
    CHECK_STR(cd, "attachment; filename=\"brand-report-U_ni_code_Co_s.pdf\"; "
                  "filename*=UTF-8''brand-report-U%CC%88ni%CC%88code%20&%20Co%27s.pdf");
    support_resp_free(&r);
}

/* An asset of the brand gets a new model_version: no aggregate moves (the
 * listener writes none), the report does, and so must its ETag. */
static void etag_moves(const char *etag_pdf, const char *etag_xlsx)
{
    support_resp r;
    char e[128] = "", url[512];
    int64_t v0 = brand_agg_version("sparkle");
    const char *body = "{\"client\": \"acme-media\", \"brand\": \"sparkle\", \"brand_id\": "
                       "\"B-17\", \"sector\": \"snacks\", \"campaign\": \"winter-2026\", "
                       "\"media_type\": \"image\", \"memorability\": 0.5, \"saliency\": {\"logo\": "
                       "0.5, \"product\": 0.5}, \"model_version\": \"mem-2.3\"}";
    snprintf(url, sizeof url, "%s/v1/assets/sp-extra", srv.url);
    CHECK(support_http("PUT", url, ingest, body, strlen(body), NULL, &r) == 0 &&
          (r.status == 200 || r.status == 201));
    support_resp_free(&r);
    wait_caught_up();
    int64_t v1 = brand_agg_version("sparkle");
    CHECK(v1 > v0); /* a new asset moves the brand aggregate */
    CHECK_INT(get("/v1/brands/sparkle/report.pdf", viewer, NULL, &r), 200);
    CHECK(support_header(&r, "ETag", e, sizeof e) == 0 && strcmp(e, etag_pdf) != 0);
    support_resp_free(&r);
    char before[128];
    snprintf(before, sizeof before, "%s", e);
    /* Now only its model_version changes. */
    const char *body2 =
        "{\"client\": \"acme-media\", \"brand\": \"sparkle\", \"brand_id\": "
        "\"B-17\", \"sector\": \"snacks\", \"campaign\": \"winter-2026\", "
        "\"media_type\": \"image\", \"memorability\": 0.5, \"saliency\": {\"logo\": "
        "0.5, \"product\": 0.5}, \"model_version\": \"mem-2.4\"}";
    CHECK(support_http("PUT", url, ingest, body2, strlen(body2), NULL, &r) == 0 &&
          (r.status == 200 || r.status == 201));
    support_resp_free(&r);
    wait_caught_up();
    CHECK_INT(brand_agg_version("sparkle"), v1); /* no aggregate moved ... */
    CHECK_INT(get("/v1/brands/sparkle/report.pdf", viewer, NULL, &r), 200);
    CHECK(support_header(&r, "ETag", e, sizeof e) == 0 && strcmp(e, before) != 0); /* ... it did */
    support_resp_free(&r);
    char h[256];
    snprintf(h, sizeof h, "If-None-Match: %s", etag_xlsx);
    CHECK_INT(get("/v1/brands/sparkle/report.xlsx", viewer, h, &r), 200); /* old tag: new file */
    support_resp_free(&r);
}

/* `sightline report brand` writes the bytes the API served (same data). */
static void cli_same_bytes(const char *fmt, const char *name)
{
    char out[700], saved[700];
    size_t a = 0, b = 0;
    snprintf(out, sizeof out, "%s/cli-%s", outdir, name);
    snprintf(saved, sizeof saved, "%s/%s", outdir, name);
    const char *args[] = {"report", "brand",    "--tenant", "acme",    "--brand", "sparkle", "-o",
                          out,      "--format", fmt,        "--store", store_uri, NULL};
    CHECK_INT(support_run(NULL, 0, 0, args), 0);
    char *x = support_read_file(out, &a), *y = support_read_file(saved, &b);
    CHECK(x && y && a == b && !memcmp(x, y, a));
    free(x);
    free(y);
    unlink(out);
}

int main(int argc, char **argv)
{
    char dir[128], etag_pdf[96], etag_letter[96], etag_xlsx[96], etag_h[96], path[256], esc[200];
    REQUIRE(argc == 3);
    snprintf(outdir, sizeof outdir, "%s", argv[1]);
    fixture = argv[2];
    mkdir(outdir, 0755);
    REQUIRE(support_tmpdir(dir, "reports") == 0);
    snprintf(store_uri, sizeof store_uri, "sqlite:%s/sl.db", dir);
    REQUIRE(support_tenant(store_uri, "acme", "brand-client") == 0);
    REQUIRE(support_tenant(store_uri, "globex", "brand-client") == 0);
    REQUIRE(support_tenant(store_uri, "st-mary", "hospital") == 0);
    REQUIRE(support_key(store_uri, "acme", "viewer", viewer) == 0);
    REQUIRE(support_key(store_uri, "acme", "admin", admin) == 0);
    REQUIRE(support_key(store_uri, "acme", "ingest", ingest) == 0);
    REQUIRE(support_key(store_uri, "acme", "staff", staff) == 0);
    REQUIRE(support_key(store_uri, "globex", "viewer", other) == 0);
    REQUIRE(support_key(store_uri, "st-mary", "staff", hosp) == 0);
    /* One batch, then the server: its listener applies it in one commit,
     * so every aggregate's version (and the PDF's data version) is the same
     * on every run, which the golden image needs. */
    const char *ing[] = {"ingest", "--tenant", "acme",    "--format", "assets",
                         fixture,  "--store",  store_uri, NULL};
    REQUIRE(support_run(NULL, 0, SUPPORT_QUIET, ing) == 0);
    REQUIRE(support_server_init(&srv, dir, store_uri) == 0);
    REQUIRE(support_server_start(&srv, NULL) == 0);
    wait_caught_up();

    download("/v1/brands/sparkle/report.pdf", "sparkle.pdf", "application/pdf", etag_pdf);
    download("/v1/brands/sparkle/report.pdf?paper=letter", "sparkle-letter.pdf", "application/pdf",
             etag_letter);
    download("/v1/brands/sparkle/report.xlsx", "sparkle.xlsx",
             "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", etag_xlsx);
    CHECK(strcmp(etag_pdf, etag_letter) != 0 && strcmp(etag_pdf, etag_xlsx) != 0);
    support_escape(HOSTILE, esc, sizeof esc);
    snprintf(path, sizeof path, "/v1/brands/%s/report.pdf", esc);
    download(path, "hostile.pdf", "application/pdf", etag_h);
    snprintf(path, sizeof path, "/v1/brands/%s/report.xlsx", esc);
    download(path, "hostile.xlsx",
             "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", etag_h);
    save_json("/v1/brands/sparkle?histogram=true", "brand.json");
    save_json("/v1/brands/sparkle/campaigns?limit=500", "campaigns.json");
    save_json("/v1/sectors/beverages", "sector-beverages.json");
    save_json("/v1/sectors/snacks", "sector-snacks.json");
    /* Every asset of the brand, page by page (the asset sheet's rows). */
    char next[600] = "", name[32];
    for (int page = 1; page == 1 || next[0]; page++) {
        support_resp r;
        char p[800];
        snprintf(p, sizeof p, "/v1/brands/sparkle/assets?limit=500%s%s", next[0] ? "&cursor=" : "",
                 next);
        CHECK_INT(get(p, viewer, NULL, &r), 200);
        snprintf(name, sizeof name, "assets-%d.json", page);
        save(name, r.body, r.len);
        if (support_json_str(r.body, "next", next, sizeof next) != 0)
            next[0] = '\0';
        support_resp_free(&r);
        REQUIRE(page < 100);
    }
    snprintf(path, sizeof path, "/v1/brands/%s", esc);
    save_json(path, "hostile-brand.json");
    save(".done", "", 0);

    cli_same_bytes("pdf", "sparkle.pdf");
    cli_same_bytes("xlsx", "sparkle.xlsx");
    roles_and_tenants();
    conditional(etag_pdf);
    dispositions();
    etag_moves(etag_pdf, etag_xlsx);

    CHECK_INT(support_server_stop(&srv), 0);
    support_rmrf(dir);
    return check_finish();
}
