/* surgery.c -- report_surgery(): the surgery tool-usage report's entry
 * point (model, ETag, If-None-Match, then one renderer), as brand.c. */
#include "reports_int.h"

#include <string.h>
#include <unistd.h>

sl_status report_surgery(store *s, const char *tenant, const char *surgery,
                         const report_options *opt, report_output *out, sl_error *err)
{
    sl_status rc = SL_OK;
    report_surgery_model m;
    report_output o;
    char stem[64 + SCHEMA_COMPONENT_MAX];
    memset(&m, 0, sizeof m);
    report_output_init(&o);
    if (opt->format != REPORT_PDF && opt->format != REPORT_XLSX) {
        rc = sl_error_set_at(err, SL_EINVAL, "format", -1, "no report format %d", (int)opt->format);
        goto out;
    }
    if ((rc = report__surgery_model_fill(s, tenant, surgery, opt, &m, err)) != SL_OK)
        goto out;
    memcpy(o.etag, m.etag, sizeof o.etag);
    o.content_type = report_format_content_type(opt->format);
    snprintf(stem, sizeof stem, "surgery-report-%s", surgery);
    report__disposition(stem, report_format_ext(opt->format), &o);
    if (report__etag_match(opt->if_none_match, o.etag)) {
        o.not_modified = 1;
    } else if (opt->format == REPORT_PDF) {
        if ((rc = report__tmpfile(opt->tmpdir, &o.fd, err)) != SL_OK ||
            (rc = report__surgery_pdf(&m, o.fd, err)) != SL_OK)
            goto out;
        off_t end = lseek(o.fd, 0, SEEK_CUR);
        if (end < 0 || lseek(o.fd, 0, SEEK_SET) != 0) {
            rc = sl_error_set(err, SL_EIO, "the PDF's file cannot be read back");
            goto out;
        }
        o.size = (uint64_t)end;
    } else if ((rc = report__surgery_xlsx(&m, &o.fd, &o.size, err)) != SL_OK) {
        goto out;
    }
    *out = o;
    report_output_init(&o);
out:
    report_output_close(&o);
    report__surgery_model_free(&m);
    return rc;
}
