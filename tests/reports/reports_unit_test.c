/* reports_unit_test.c -- the reports' kits without a store (reports_int.h):
 *   - Content-Disposition names (ASCII fallback, filename*), If-None-Match
 *     matching, number formats;
 *   - hostile text in PDF table cells: every cell's text laid out by pango
 *     fits its cell on one line (measured extents), whatever it holds --
 *     '&', '<', quotes, right-to-left runs, emoji, combining marks, 500
 *     characters without a space; the document is written to OUTDIR as
 *     kit-hostile.pdf (check_pdf.py reads it with qpdf and pdftotext);
 *   - a table of 300 rows breaks across pages with its header on each
 *     (kit-table.pdf; check_pdf.py checks every page's text for it);
 *   - two renders of one document are byte-identical;
 *   - the XLSX kit's money and date cells (kit.xlsx; check_xlsx.py reads
 *     their number formats and values with openpyxl). */
#include "tests/check.h"

#include <fcntl.h>
#include <pango/pangocairo.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reports/reports_int.h"

static char outdir[512];

static void dispositions(void)
{
    report_output o;
    report_output_init(&o);
    report__disposition("brand-report-sparkle", "pdf", &o);
    CHECK_STR(o.disposition, "attachment; filename=\"brand-report-sparkle.pdf\"");
    CHECK_STR(o.filename, "brand-report-sparkle.pdf");
    report__disposition("r\xc3\xa9sum\xc3\xa9 \"x\"; y\\z", "xlsx", &o);
    CHECK_STR(o.filename, "r_sum_x_y_z.xlsx");
    CHECK_STR(o.disposition, "attachment; filename=\"r_sum_x_y_z.xlsx\"; "
                             "filename*=UTF-8''r%C3%A9sum%C3%A9%20%22x%22%3B%20y%5Cz.xlsx");
    report__disposition("\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d", "pdf", &o);
    CHECK_STR(o.filename, "report.pdf");
    char longname[400];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    report__disposition(longname, "pdf", &o);
    CHECK(strlen(o.filename) < REPORT_FILENAME_MAX && strstr(o.disposition, "filename*="));
}

static void etags(void)
{
    const char *e = "\"brand-abc\"";
    CHECK(report__etag_match("\"brand-abc\"", e));
    CHECK(report__etag_match("W/\"brand-abc\"", e));
    CHECK(report__etag_match("\"x\", \"brand-abc\"", e));
    CHECK(report__etag_match("*", e));
    CHECK(!report__etag_match("\"brand-ab\"", e));
    CHECK(!report__etag_match("brand-abc", e));
    CHECK(!report__etag_match("", e));
    CHECK(!report__etag_match(NULL, e));
    CHECK(!report__etag_match("\"brand-abc", e));
}

static void numbers(void)
{
    char b[REPORT_NUM_MAX];
    CHECK_STR(report__fmt_count(0, b), "0");
    CHECK_STR(report__fmt_count(999, b), "999");
    CHECK_STR(report__fmt_count(1000, b), "1,000");
    CHECK_STR(report__fmt_count(100000, b), "100,000");
    CHECK_STR(report__fmt_count(1234567, b), "1,234,567");
    CHECK_STR(report__fmt_score(0.61234999, b), "0.6123");
    CHECK_STR(report__fmt_score(1, b), "1.0000");
    CHECK_STR(report__fmt_score(0.0 / 0.0, b), "-");
}

/* Hostile strings, each as a table cell. */
static const char *hostile[8];
static char long_ascii[501], long_arabic[1001];

static void hostile_init(void)
{
    memset(long_ascii, 'W', 500);
    for (int i = 0; i < 500; i++) /* U+0639 ARABIC LETTER AIN, 500 times */
        memcpy(long_arabic + 2 * i, "\xd8\xb9", 2);
    hostile[0] = "Procter & Gamble <b>bold</b> \"quoted\" 'single'";
    hostile[1] = "\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d \xd7\xa2\xd7\x95\xd7\x9c\xd7\x9d and "
                 "\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7"; /* Hebrew, Arabic */
    hostile[2] = "emoji \xf0\x9f\x98\x80\xf0\x9f\x8e\x89\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd done";
    hostile[3] = "Zalgo Z\xcd\x91\xcd\x9b\xcc\x88\xcc\x81\xcd\x8e"
                 "a\xcc\x81\xcc\x88\xcc\x83l\xcc\x88"
                 "go e\xcc\x81\xcc\x81\xcc\x81\xcc\x81";
    hostile[4] = long_ascii;
    hostile[5] = long_arabic;
    hostile[6] = "tab\tnew\nline \xff invalid";
    hostile[7] = "";
}

/* Every hostile string laid out for cells of several widths: one line, no
 * wider than the cell. */
static void cells_fit(rpdf *d)
{
    const double widths[] = {20, 45, 90, 200};
    for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++)
        for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
            PangoLayout *l = rpdf__layout(d, hostile[i], i % 2, 8, widths[w], 1);
            PangoRectangle ink, logical;
            pango_layout_get_extents(l, &ink, &logical);
            double lw = (double)logical.width / PANGO_SCALE;
            CHECK(pango_layout_get_line_count(l) == 1);
            CHECK(lw <= widths[w] + 0.01);
            if (lw > widths[w] + 0.01)
                fprintf(stderr, "string %zu is %.2f pt wide in a %.0f pt cell\n", i, lw, widths[w]);
        }
}

static sl_status hostile_pdf(const char *name, sl_error *err)
{
    rpdf *d = NULL;
    char path[700];
    rpdf_meta meta = {.title = "Hostile & <text> \xf0\x9f\x98\x80", .date_ms = REPORT_NO_DATE_MS};
    sl_status rc = rpdf_new(REPORT_A4, &meta, &d, err);
    if (rc != SL_OK)
        return rc;
    cells_fit(d);
    rpdf_title(d, hostile[0], hostile[1]);
    rpdf_paragraph(d, long_ascii); /* wraps inside the word */
    rpdf_col cols[] = {{"text", 90, RPDF_LEFT}, {"right", 90, RPDF_RIGHT}, {"wide", 0, RPDF_LEFT}};
    rpdf_table_begin(d, cols, 3);
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        const char *cells[3] = {hostile[i], hostile[i], hostile[i]};
        rpdf_table_row(d, cells, 0);
    }
    rpdf_table_end(d);
    double v[3] = {0.5, 0.25, 0.75};
    const char *labels[3] = {hostile[0], hostile[4], hostile[1]};
    rpdf_chart c = {.title = hostile[2], .values = v, .labels = labels, .n = 3};
    rpdf_chart_bars(d, &c);
    snprintf(path, sizeof path, "%s/%s", outdir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    rc = rpdf_finish(d, fd, err);
    close(fd);
    rpdf_free(&d);
    return rc;
}

static sl_status table_pdf(const char *name, sl_error *err)
{
    rpdf *d = NULL;
    char path[700];
    rpdf_meta meta = {.title = "Long table", .date_ms = 1700000000000LL};
    sl_status rc = rpdf_new(REPORT_LETTER, &meta, &d, err);
    if (rc != SL_OK)
        return rc;
    rpdf_heading(d, "A table of 300 rows");
    rpdf_col cols[] = {{"row number", 80, RPDF_RIGHT}, {"label column", 0, RPDF_LEFT}};
    rpdf_table_begin(d, cols, 2);
    for (int i = 0; i < 300; i++) {
        char a[16], b[32];
        snprintf(a, sizeof a, "%d", i + 1);
        snprintf(b, sizeof b, "label %d", i + 1);
        const char *cells[2] = {a, b};
        rpdf_table_row(d, cells, 0);
    }
    rpdf_table_end(d);
    snprintf(path, sizeof path, "%s/%s", outdir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    rc = rpdf_finish(d, fd, err);
    close(fd);
    rpdf_free(&d);
    return rc;
}

static void same_bytes(const char *a, const char *b)
{
    char pa[700], pb[700];
    snprintf(pa, sizeof pa, "%s/%s", outdir, a);
    snprintf(pb, sizeof pb, "%s/%s", outdir, b);
    FILE *fa = fopen(pa, "rb"), *fb = fopen(pb, "rb");
    REQUIRE(fa && fb);
    int ca, cb, same = 1;
    do {
        ca = fgetc(fa);
        cb = fgetc(fb);
        same = same && ca == cb;
    } while (ca != EOF && cb != EOF);
    CHECK(same);
    fclose(fa);
    fclose(fb);
    unlink(pb);
}

static void xlsx_kit(void)
{
    sl_error err;
    rxlsx *x = NULL;
    int fd = -1;
    uint64_t size = 0;
    sl_error_clear(&err);
    REQUIRE(rxlsx_new(outdir, "Kit", NULL, 1700000000000LL, &x, &err) == SL_OK);
    rxlsx_col cols[] = {{"item", 20, RXLSX_TEXT},
                        {"count", 8, RXLSX_INT},
                        {"cost", 12, RXLSX_MONEY},
                        {"when", 18, RXLSX_DATE},
                        {"score", 10, RXLSX_SCORE}};
    rxlsx_sheet *s = rxlsx_sheet_new(x, "Kit", cols, 5);
    REQUIRE(s);
    rxlsx_cell_text(s, 0, 0, hostile[0]);
    rxlsx_cell_num(s, 0, 1, 3);
    rxlsx_cell_num(s, 0, 2, 6.53);
    rxlsx_cell_date(s, 0, 3, 1764145800000LL); /* 2025-11-26T08:30:00Z */
    rxlsx_cell_num(s, 0, 4, 0.123456789012345);
    rxlsx_sheet_end(s, 1);
    /* A sheet name Excel refuses is an error at the end, not a broken file. */
    CHECK(rxlsx_sheet_new(x, "bad/name", cols, 1) == NULL);
    CHECK(rxlsx_finish(&x, &fd, &size, &err) != SL_OK);
    CHECK(x == NULL);
    /* Again, valid. */
    REQUIRE(rxlsx_new(outdir, "Kit", NULL, 1700000000000LL, &x, &err) == SL_OK);
    s = rxlsx_sheet_new(x, "Kit", cols, 5);
    rxlsx_cell_text(s, 0, 0, hostile[0]);
    rxlsx_cell_num(s, 0, 1, 3);
    rxlsx_cell_num(s, 0, 2, 6.53);
    rxlsx_cell_date(s, 0, 3, 1764145800000LL);
    rxlsx_cell_num(s, 0, 4, 0.123456789012345);
    rxlsx_sheet_end(s, 1);
    sl_error_clear(&err);
    REQUIRE(rxlsx_finish(&x, &fd, &size, &err) == SL_OK);
    char path[700], *buf = malloc(size);
    REQUIRE(buf && pread(fd, buf, size, 0) == (ssize_t)size);
    snprintf(path, sizeof path, "%s/kit.xlsx", outdir);
    FILE *f = fopen(path, "wb");
    REQUIRE(f && fwrite(buf, 1, size, f) == size);
    fclose(f);
    free(buf);
    close(fd);
}

int main(int argc, char **argv)
{
    sl_error err;
    sl_error_clear(&err);
    REQUIRE(argc == 2);
    snprintf(outdir, sizeof outdir, "%s", argv[1]);
    mkdir(outdir, 0755);
    hostile_init();
    dispositions();
    etags();
    numbers();
    CHECK(hostile_pdf("kit-hostile.pdf", &err) == SL_OK);
    CHECK(hostile_pdf("kit-hostile-2.pdf", &err) == SL_OK);
    same_bytes("kit-hostile.pdf", "kit-hostile-2.pdf");
    CHECK(table_pdf("kit-table.pdf", &err) == SL_OK);
    xlsx_kit();
    if (err.status != SL_OK)
        fprintf(stderr, "error: %s\n", err.message);
    return check_finish();
}
