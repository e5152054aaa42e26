/* output.c -- what every report's output needs: the unlinked temporary file
 * it is written to, the ETag digest and its If-None-Match comparison, the
 * Content-Disposition of the download, the formats and papers by name, and
 * numbers as the reports print them. */
#include "reports_int.h"

#include <cairo.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <inttypes.h>
#include <math.h>
#include <pango/pango.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xlsxwriter.h>

sl_status report_format_parse(const char *what, const char *s, report_format *out, sl_error *err)
{
    sl_status rc = SL_OK;
    if (s && !strcmp(s, "pdf"))
        *out = REPORT_PDF;
    else if (s && !strcmp(s, "xlsx"))
        *out = REPORT_XLSX;
    else
        rc = sl_error_set_at(err, SL_EINVAL, what, -1, "%s must be pdf or xlsx, not \"%.40s\"",
                             what, s ? s : "");
    return rc;
}

sl_status report_paper_parse(const char *what, const char *s, report_paper *out, sl_error *err)
{
    sl_status rc = SL_OK;
    if (s && !strcmp(s, "a4"))
        *out = REPORT_A4;
    else if (s && !strcmp(s, "letter"))
        *out = REPORT_LETTER;
    else
        rc = sl_error_set_at(err, SL_EINVAL, what, -1, "%s must be a4 or letter, not \"%.40s\"",
                             what, s ? s : "");
    return rc;
}

const char *report_format_ext(report_format f)
{
    return f == REPORT_XLSX ? "xlsx" : "pdf";
}

const char *report_format_content_type(report_format f)
{
    return f == REPORT_XLSX ? "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
                            : "application/pdf";
}

void report_output_init(report_output *out)
{
    memset(out, 0, sizeof *out);
    out->fd = -1;
}

void report_output_close(report_output *out)
{
    if (out && out->fd >= 0) {
        close(out->fd);
        out->fd = -1;
    }
}

/* ---------------------------------------------------------------------------
 * Temporary files.
 * ------------------------------------------------------------------------- */
const char *report__tmpdir(const char *dir)
{
    const char *t = getenv("TMPDIR");
    return dir && dir[0] ? dir : t && t[0] ? t : "/tmp";
}

sl_status report__tmpfile(const char *dir, int *fd, sl_error *err)
{
    sl_status rc = SL_OK;
    const char *d = report__tmpdir(dir);
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/sl-report-XXXXXX", d);
    if (n < 0 || (size_t)n >= sizeof path) {
        rc = sl_error_set_at(err, SL_EINVAL, "tmpdir", -1, "directory %.200s: name too long", d);
        goto out;
    }
    int f = mkostemp(path, O_CLOEXEC);
    if (f < 0) {
        rc = sl_error_set_at(err, errno == ENOSPC ? SL_EBUSY : SL_EIO, "tmpdir", -1,
                             "cannot make a report file in %.200s: %s", d, strerror(errno));
        goto out;
    }
    unlink(path); /* the descriptor is its only handle from now on */
    *fd = f;
out:
    return rc;
}

/* ---------------------------------------------------------------------------
 * ETags.
 * ------------------------------------------------------------------------- */
struct report__digest {
    GChecksum *sum;
    char kind[16];
};

report__digest *report__digest_new(const char *kind, int renderer_version,
                                   const report_options *opt)
{
    report__digest *d = calloc(1, sizeof *d);
    if (!d || !(d->sum = g_checksum_new(G_CHECKSUM_SHA256))) {
        free(d);
        return NULL;
    }
    snprintf(d->kind, sizeof d->kind, "%s", kind);
    report__digest_str(d, "sightline-report");
    report__digest_str(d, kind);
    report__digest_int(d, renderer_version);
    report__digest_int(d, opt->format);
    report__digest_int(d, opt->format == REPORT_PDF ? opt->paper : 0);
    /* A library upgrade may change the bytes: so it changes the tag. */
    report__digest_str(d, opt->format == REPORT_PDF ? cairo_version_string() : LXW_VERSION);
    report__digest_str(d, opt->format == REPORT_PDF ? pango_version_string() : "");
    return d;
}

void report__digest_str(report__digest *d, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    report__digest_int(d, (int64_t)n);
    if (n)
        g_checksum_update(d->sum, (const guchar *)s, (gssize)n);
}

void report__digest_int(report__digest *d, int64_t v)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)v >> (8 * i));
    g_checksum_update(d->sum, b, sizeof b);
}

void report__digest_end(report__digest **d, char out[REPORT_ETAG_MAX])
{
    snprintf(out, REPORT_ETAG_MAX, "\"%s-%s\"", (*d)->kind, g_checksum_get_string((*d)->sum));
    report__digest_free(d);
}

void report__digest_free(report__digest **d)
{
    if (d && *d) {
        g_checksum_free((*d)->sum);
        free(*d);
        *d = NULL;
    }
}

int report__etag_match(const char *inm, const char *etag)
{
    const char *p = inm;
    size_t elen = strlen(etag);
    if (!p)
        return 0;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*')
            return 1;
        if (!strncmp(p, "W/", 2))
            p += 2; /* weak comparison: W/"x" matches "x" */
        if (*p != '"')
            return 0; /* not a list of entity tags: matches nothing */
        const char *end = strchr(p + 1, '"');
        if (!end)
            return 0;
        if ((size_t)(end + 1 - p) == elen && !memcmp(p, etag, elen))
            return 1;
        p = end + 1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Content-Disposition (RFC 6266, filename* per RFC 8187).
 * ------------------------------------------------------------------------- */
void report__disposition(const char *stem, const char *ext, report_output *out)
{
    char ascii[REPORT_FILENAME_MAX];
    size_t n = 0, cap = sizeof ascii - strlen(ext) - 2;
    int gap = 0, plain = 1;
    for (const unsigned char *p = (const unsigned char *)stem; *p && n < cap; p++) {
        int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                 *p == '-' || *p == '_' || *p == '.';
        if (!ok)
            plain = 0;
        if (ok) {
            ascii[n++] = (char)*p;
            gap = 0;
        } else if (!gap && n) {
            ascii[n++] = '_';
            gap = 1;
        }
    }
    while (n && (ascii[n - 1] == '_' || ascii[n - 1] == '.'))
        n--;
    if (!n) {
        memcpy(ascii, "report", 6);
        n = 6;
    }
    if (strlen(stem) >= cap)
        plain = 0;
    ascii[n] = '\0';
    snprintf(out->filename, sizeof out->filename, "%.*s.%s", (int)n, ascii, ext);
    int w = snprintf(out->disposition, sizeof out->disposition, "attachment; filename=\"%s\"",
                     out->filename);
    if (!plain && w > 0 && (size_t)w < sizeof out->disposition) {
        /* attr-char of RFC 8187: ALPHA / DIGIT / "!#$&+-.^_`|~"; every other
         * byte percent-encoded. */
        static const char keep[] = "!#$&+-.^_`|~";
        size_t at = (size_t)w, lim = sizeof out->disposition;
        at += (size_t)snprintf(out->disposition + at, lim - at, "; filename*=UTF-8''");
        const unsigned char *p = (const unsigned char *)stem;
        for (; *p && at + 4 < lim; p++) {
            if ((*p < 128 && (g_ascii_isalnum(*p) || strchr(keep, *p))) && *p)
                out->disposition[at++] = (char)*p;
            else
                at += (size_t)snprintf(out->disposition + at, lim - at, "%%%02X", *p);
        }
        if (at + strlen(ext) + 2 < lim)
            at += (size_t)snprintf(out->disposition + at, lim - at, ".%s", ext);
        out->disposition[at < lim ? at : lim - 1] = '\0';
    }
}

/* ---------------------------------------------------------------------------
 * Numbers.
 * ------------------------------------------------------------------------- */
const char *report__fmt_score(double v, char out[REPORT_NUM_MAX])
{
    if (isnan(v))
        snprintf(out, REPORT_NUM_MAX, "-");
    else
        snprintf(out, REPORT_NUM_MAX, "%.4f", v);
    return out;
}

const char *report__fmt_count(int64_t v, char out[REPORT_NUM_MAX])
{
    char digits[24];
    int n = snprintf(digits, sizeof digits, "%" PRId64, v < 0 ? -v : v), at = 0;
    if (v < 0)
        out[at++] = '-';
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0)
            out[at++] = ',';
        out[at++] = digits[i];
    }
    out[at] = '\0';
    return out;
}

const char *report__fmt_money(int64_t cents, char out[REPORT_NUM_MAX])
{
    char whole[REPORT_NUM_MAX];
    int64_t a = cents < 0 ? -(cents / 100) : cents / 100,
            c = cents < 0 ? -(cents % 100) : cents % 100;
    report__fmt_count(a, whole);
    char text[2 * REPORT_NUM_MAX + 8];
    snprintf(text, sizeof text, "%s$%s.%02d", cents < 0 ? "-" : "", whole, (int)c);
    /* at most "-$9,223,372,036,854,775.80": 29 bytes */
    snprintf(out, REPORT_NUM_MAX, "%.30s", text);
    return out;
}

const char *report__fmt_clock(int64_t ms, char out[REPORT_NUM_MAX])
{
    if (ms < 0) {
        snprintf(out, REPORT_NUM_MAX, "-");
        return out;
    }
    int64_t s = ms / 1000;
    if (s >= 3600)
        snprintf(out, REPORT_NUM_MAX, "%" PRId64 ":%02d:%02d", s / 3600, (int)(s / 60 % 60),
                 (int)(s % 60));
    else
        snprintf(out, REPORT_NUM_MAX, "%d:%02d", (int)(s / 60), (int)(s % 60));
    return out;
}
