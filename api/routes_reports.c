/* routes_reports.c -- report downloads (reports/reports.h): the brand score
 * report as PDF or XLSX, rendered on the job pool (API_RUN_JOB: a render
 * takes up to seconds) into an unlinked temporary file in the upload
 * directory and streamed from it (api_reply_fd).  Every download carries
 * Content-Disposition (a safe ASCII name, and filename* when the name is
 * not ASCII) and a strong ETag derived from the versions of every document
 * the report read and the renderer's version; If-None-Match with that tag
 * is answered 304 without rendering.
 *
 *   GET /v1/brands/{brand}/report.pdf|.xlsx   viewer (brand-client tenants)
 *   GET /v1/surgeries/{id}/report.pdf|.xlsx   staff (hospital tenants); a
 *       surgery not analyzed yet is 409 naming "status" (open, being
 *       analyzed, or failed), as GET .../usage tells */
#include "api_int.h"

#include <string.h>

#include "reports/reports.h"

/* Answers a rendered (or not modified) report; o's file belongs to the
 * reply from here on. */
static sl_status report_answer(api_request *req, report_output *o, sl_error *err)
{
    sl_status rc = SL_OK;
    if (o->not_modified) {
        rc = api_reply_empty(req, 304, err);
    } else {
        int fd = o->fd;
        o->fd = -1; /* the reply's now, even on failure */
        rc = api_reply_fd(req, 200, o->content_type, fd, o->size, err);
        if (rc == SL_OK)
            rc = api_reply_header(req, "Content-Disposition", o->disposition, err);
    }
    if (rc == SL_OK)
        rc = api_reply_header(req, "ETag", o->etag, err);
    /* Anyone may keep it, but must ask again (If-None-Match) before using it. */
    if (rc == SL_OK)
        rc = api_reply_header(req, "Cache-Control", "private, no-cache", err);
    return rc;
}

/* GET /v1/brands/{brand}/report.pdf?paper=a4|letter and .../report.xlsx. */
static sl_status brand_report(api_request *req, report_format format, sl_error *err)
{
    sl_status rc = SL_OK;
    report_output o;
    report_options opt = {.format = format,
                          .paper = REPORT_A4,
                          .tmpdir = api_upload_dir(req),
                          .assets_max = api_config_of(req)->report_assets_max,
                          .if_none_match = api_header(req, "If-None-Match")};
    report_output_init(&o);
    if (format == REPORT_PDF && api_query(req, "paper") &&
        (rc = report_paper_parse("paper", api_query(req, "paper"), &opt.paper, err)) != SL_OK)
        goto out;
    rc = report_brand(api_store(req), api_auth_of(req)->tenant, api_param(req, "brand"), &opt, &o,
                      err);
    rc = api__aggregate_check(req, rc, err);
    if (rc == SL_OK)
        rc = report_answer(req, &o, err);
out:
    report_output_close(&o);
    return rc;
}

static sl_status brand_report_pdf(api_request *req, sl_error *err)
{
    return brand_report(req, REPORT_PDF, err);
}

static sl_status brand_report_xlsx(api_request *req, sl_error *err)
{
    return brand_report(req, REPORT_XLSX, err);
}

/* GET /v1/surgeries/{id}/report.pdf?paper=a4|letter and .../report.xlsx. */
static sl_status surgery_report(api_request *req, report_format format, sl_error *err)
{
    sl_status rc = SL_OK;
    report_output o;
    report_options opt = {.format = format,
                          .paper = REPORT_A4,
                          .tmpdir = api_upload_dir(req),
                          .if_none_match = api_header(req, "If-None-Match")};
    report_output_init(&o);
    if (format == REPORT_PDF && api_query(req, "paper") &&
        (rc = report_paper_parse("paper", api_query(req, "paper"), &opt.paper, err)) != SL_OK)
        goto out;
    rc = report_surgery(api_store(req), api_auth_of(req)->tenant, api_param(req, "id"), &opt, &o,
                        err);
    if (rc == SL_OK)
        rc = report_answer(req, &o, err);
out:
    report_output_close(&o);
    return rc;
}

static sl_status surgery_report_pdf(api_request *req, sl_error *err)
{
    return surgery_report(req, REPORT_PDF, err);
}

static sl_status surgery_report_xlsx(api_request *req, sl_error *err)
{
    return surgery_report(req, REPORT_XLSX, err);
}

static const api_route routes[] = {
    {"GET", "/v1/brands/{brand}/report.pdf", API_ROLE_VIEWER, API_KIND_BRAND, "paper",
     API_BODY_NONE, 0, API_RUN_JOB, NULL, NULL, brand_report_pdf},
    {"GET", "/v1/brands/{brand}/report.xlsx", API_ROLE_VIEWER, API_KIND_BRAND, NULL, API_BODY_NONE,
     0, API_RUN_JOB, NULL, NULL, brand_report_xlsx},
    {"GET", "/v1/surgeries/{id}/report.pdf", API_ROLE_STAFF, API_KIND_HOSPITAL, "paper",
     API_BODY_NONE, 0, API_RUN_JOB, NULL, NULL, surgery_report_pdf},
    {"GET", "/v1/surgeries/{id}/report.xlsx", API_ROLE_STAFF, API_KIND_HOSPITAL, NULL,
     API_BODY_NONE, 0, API_RUN_JOB, NULL, NULL, surgery_report_xlsx},
};

API_AREA(reports, routes);
