/* reports.h -- the reports' whole public face: what the API and the CLI call
 * to turn a tenant's data into a PDF (cairo, text laid out by pango) or an
 * XLSX (libxlsxwriter) file.  Includes schema/, store/ and engine/ only;
 * only api/ and cmd/ include it.  cairo, pango, fontconfig and libxlsxwriter
 * are linked by this folder alone (sl_reports): no other folder names them.
 *
 * One report = one report model (a plain C structure filled from the store
 * through the port, from one store snapshot) and two renderers that only
 * read it, so that the PDF, the XLSX and the JSON API show the same numbers:
 * the model's numbers are the engine's brand read model (engine.h).  What
 * each report holds, the fonts, the determinism rules and the ETag rule:
 * docs/reports.md.
 *
 * Determinism: the same data gives the same bytes -- no clock (document dates
 * come from the data), no random ids, no font but the ones named below
 * (fontconfig sees only them, whatever the machine has), fixed renderer
 * settings (no hinting).  A strong ETag is derived from the versions of
 * every document the report read plus the renderer's version, so it changes
 * exactly when the bytes may. */
#ifndef SIGHTLINE_REPORTS_H
#define SIGHTLINE_REPORTS_H

#include <stddef.h>
#include <stdint.h>

#include "../engine/engine.h"
#include "../schema/schema.h"
#include "../store/store.h"

typedef enum report_format { REPORT_PDF = 1, REPORT_XLSX = 2 } report_format;
typedef enum report_paper { REPORT_A4 = 1, REPORT_LETTER = 2 } report_paper;

/* "pdf" / "xlsx" and "a4" / "letter" (what ?paper= and --format take);
 * SL_EINVAL naming `what` otherwise. */
sl_status report_format_parse(const char *what, const char *s, report_format *out, sl_error *err);
sl_status report_paper_parse(const char *what, const char *s, report_paper *out, sl_error *err);
const char *report_format_ext(report_format f);          /* "pdf", "xlsx" */
const char *report_format_content_type(report_format f); /* the media type */

#define REPORT_TOP_DEFAULT       10 /* top and bottom assets listed */
#define REPORT_TOP_MAX           1000
#define REPORT_CAMPAIGNS_DEFAULT 500     /* campaigns of a brand a report covers */
#define REPORT_ASSETS_DEFAULT    1000000 /* assets of a brand a report reads */
#define REPORT_XLSX_ROWS_MAX                                                                       \
    1048575 /* data rows of one sheet (Excel: 1,048,576 with the header)                           \
             */
#define REPORT_ETAG_MAX        96
#define REPORT_FILENAME_MAX    96
#define REPORT_DISPOSITION_MAX 1024

typedef struct report_options {
    report_format format;
    report_paper paper; /* PDF; 0: A4 */
    /* Where the output file (created, then unlinked at once: only the
     * returned descriptor reaches it) and libxlsxwriter's own temporary
     * files go; NULL or "": $TMPDIR, else /tmp. */
    const char *tmpdir;
    size_t top;           /* top and bottom assets; 0: REPORT_TOP_DEFAULT (max REPORT_TOP_MAX) */
    size_t campaigns_max; /* 0: REPORT_CAMPAIGNS_DEFAULT; a brand with more: listed first ones,
                             the report says how many were left out */
    int64_t assets_max;   /* 0: REPORT_ASSETS_DEFAULT; a brand with more assets is refused
                             (SL_ETOOLARGE): bounds a report's time and file size */
    /* An If-None-Match header value (NULL: none): when one of its entity
     * tags matches the report's ETag (weak comparison, or "*"), nothing is
     * rendered and out->not_modified is 1. */
    const char *if_none_match;
} report_options;

/* A rendered report.  fd: an open, unlinked file holding size bytes from
 * offset 0 (the caller's: close it, or hand it over, e.g. api_reply_fd);
 * -1 when not_modified. */
typedef struct report_output {
    int not_modified;
    int fd;
    uint64_t size;
    char etag[REPORT_ETAG_MAX]; /* a strong entity tag, quotes included */
    const char *content_type;
    /* The Content-Disposition value: attachment; filename="<ASCII>" and,
     * when the name is not plain ASCII, filename*=UTF-8''<percent-encoded>
     * (RFC 6266 / RFC 8187). */
    char disposition[REPORT_DISPOSITION_MAX];
    char filename[REPORT_FILENAME_MAX]; /* the ASCII fallback name */
} report_output;

/* Sets *out to "no output" (fd -1). */
void report_output_init(report_output *out);

/* Closes out->fd if open.  NULL is fine. */
void report_output_close(report_output *out);

/* The brand score report of brand of tenant (docs/reports.md, "Brand
 * score report"), rendered to opt->format.  Reads one snapshot of s: the
 * brand, campaign and sector aggregates through the engine's read model and
 * the brand's assets through the asset index, page by page (memory is
 * bounded by the page, the campaigns and the top/bottom lists, not by the
 * number of assets; the XLSX asset sheet is streamed from the store).
 *   SL_OK          *out holds the file (or not_modified); out->etag is set
 *   SL_ENOTFOUND   no such brand (naming "brand"), as GET /v1/brands/{b}
 *   SL_ETOOLARGE   the brand has more than opt->assets_max assets
 *   SL_ECORRUPT    an aggregate needs repair (field ENGINE_FIELD_AGGREGATE)
 *   SL_EIO         a font file is missing, the temporary file cannot be made
 * and the store's errors.  *out is untouched on failure. */
sl_status report_brand(store *s, const char *tenant, const char *brand, const report_options *opt,
                       report_output *out, sl_error *err);

/* The surgery tool-usage report of surgery of hospital tenant (docs/
 * reports.md, "Surgery tool-usage report"), rendered to opt->format (top,
 * campaigns_max and assets_max do not apply).  Reads one snapshot of s
 * through the engine's tool-usage read model (engine_usage_read): the
 * numbers GET /v1/surgeries/{id}/usage answers.
 *   SL_OK          *out holds the file (or not_modified); out->etag is set
 *   SL_ENOTFOUND   no such surgery (naming "surgery")
 *   SL_ECONFLICT   the surgery is not analyzed (naming "status"; open,
 *                  being analyzed, or its analysis failed)
 *   SL_ECORRUPT    a document of the surgery does not read
 *   SL_ETOOLARGE   more tool results than one report reads
 *   SL_EIO         a font file is missing, the temporary file cannot be made
 * and the store's errors.  *out is untouched on failure. */
sl_status report_surgery(store *s, const char *tenant, const char *surgery,
                         const report_options *opt, report_output *out, sl_error *err);

#endif /* SIGHTLINE_REPORTS_H */
