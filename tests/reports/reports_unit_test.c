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
 *     their number formats and values with openpyxl);
 *   - money and clock formats of the surgery report;
 *   - the surgery report's renderers over a model made by hand whose room,
 *     surgeon, tool names and labels are the hostile strings (the
 *     500-character ones cut to the 256 bytes the read model's fields and
 *     ingest hold), with a used instance at every minute
 *     of a 3-hour surgery (152 left) so the timeline breaks across pages:
 *     surgery-kit.pdf and surgery-kit.xlsx (check_surgery.py reads them),
 *     two renders byte-identical. */
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
    CHECK_STR(report__fmt_money(0, b), "$0.00");
    CHECK_STR(report__fmt_money(7, b), "$0.07");
    CHECK_STR(report__fmt_money(70028, b), "$700.28");
    CHECK_STR(report__fmt_money(100000000000LL, b), "$1,000,000,000.00");
    CHECK_STR(report__fmt_money(-1050, b), "-$10.50");
    CHECK_STR(report__fmt_money(INT64_MAX, b), "$92,233,720,368,547,758.07");
    CHECK_STR(report__fmt_clock(-1, b), "-");
    CHECK_STR(report__fmt_clock(0, b), "0:00");
    CHECK_STR(report__fmt_clock(59999, b), "0:59");
    CHECK_STR(report__fmt_clock(754000, b), "12:34");
    CHECK_STR(report__fmt_clock(3600000 + 62000, b), "1:01:02");
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

/* A surgery report model by hand (no store): hostile text everywhere a
 * name goes, 12 SKUs, 180 instances of which 152 left, 3 hours. */
static void surgery_model(report_surgery_model *m)
{
    engine_usage_view *v = &m->v;
    memset(m, 0, sizeof *m);
    m->opt.format = REPORT_PDF;
    m->opt.paper = REPORT_A4;
    m->opt.tmpdir = outdir;
    snprintf(v->tenant, sizeof v->tenant, "st-mary");
    snprintf(v->surgery, sizeof v->surgery, "lap-h\xc3\xb6stile");
    snprintf(v->hospital, sizeof v->hospital, "st-mary");
    snprintf(v->procedure, sizeof v->procedure, "lap-chole");
    snprintf(v->room, sizeof v->room, "%s", hostile[0]);
    snprintf(v->surgeon, sizeof v->surgeon, "%s", hostile[1]);
    v->started_ms = 1764144900000LL; /* 2025-11-26T08:15:00Z */
    v->fps = 30;
    v->life.status = SCHEMA_SURGERY_ANALYZED;
    v->life.analyzed_ms = v->started_ms + 4 * 3600000LL;
    v->last_frame = 3 * 3600 * 30 - 1;
    v->frames = v->last_frame + 1;
    v->frames_empty = 1234;
    v->detections = 9876543;
    v->unmapped_detections = 4321;
    v->ntools = 12;
    v->tools = calloc(v->ntools, sizeof *v->tools);
    v->ninstances = 180;
    v->instances = calloc(v->ninstances, sizeof *v->instances);
    REQUIRE(v->tools && v->instances);
    for (size_t i = 0; i < v->ntools; i++) {
        engine_usage_tool *t = &v->tools[i];
        snprintf(t->sku, sizeof t->sku, "SKU-%02zu", i);
        /* the long ones are cut by snprintf at the field's size: still
         * far wider than any cell */
        snprintf(t->name, sizeof t->name, "%s", hostile[i % 6]);
        t->opened = 15;
        t->used = i % 3 ? 13 : 12;
        t->unused = t->opened - t->used;
        t->unit_cost_cents = 1000 * (int64_t)(i + 1) + 99;
        t->single_use = i % 4 != 0;
        t->waste_cents = t->single_use ? t->unused * t->unit_cost_cents : 0;
        t->catalog = (engine_usage_catalog)(i % 4);
        v->opened += t->opened;
        v->used += t->used;
        v->unused += t->unused;
        v->waste_cents += t->waste_cents;
    }
    size_t k = 0;
    for (size_t i = 0; i < v->ntools; i++)
        for (int32_t n = 1; n <= 15; n++, k++) {
            engine_usage_instance *in = &v->instances[k];
            in->tool = i;
            in->instance = n;
            in->used = n <= v->tools[i].used;
            in->first_frame = in->first_seen_frame = 30 * (int64_t)k;
            in->left_frame = in->used ? 30 * 60 * (int64_t)(k % 180) + 17 : -1;
            in->returned_frame = in->used && k % 7 == 0 ? in->left_frame + 9000 : -1;
            in->last_frame = in->used ? in->left_frame : v->last_frame;
            in->confidence_micro = 600000 + (int64_t)(k * 2000);
            in->version = (int64_t)k + 1;
        }
    v->nunmapped = 6;
    for (size_t i = 0; i < v->nunmapped; i++) {
        snprintf(v->unmapped[i].label, sizeof v->unmapped[i].label, "%s", hostile[i]);
        v->unmapped[i].detections = 1000 - (int64_t)i;
        v->unmapped[i].occluder = i % 2;
    }
    v->meta_version = 3;
    v->summary_version = 2;
}

static void surgery_render(const char *name_pdf, const char *name_xlsx)
{
    report_surgery_model m;
    sl_error err;
    char path[700];
    sl_error_clear(&err);
    surgery_model(&m);
    /* the renderers' derived lines and departures, as the model fill makes them */
    m.used = calloc(m.v.ntools, sizeof *m.used);
    m.unused = calloc(m.v.ntools, sizeof *m.unused);
    m.departures = calloc(m.v.ninstances, sizeof *m.departures);
    REQUIRE(m.used && m.unused && m.departures);
    for (size_t i = 0; i < m.v.ntools; i++) {
        const engine_usage_tool *t = &m.v.tools[i];
        m.used[m.nused++] = (report_usage_line){t, t->used, t->used * t->unit_cost_cents};
        m.used_cents += t->used * t->unit_cost_cents;
        m.unused[m.nunused++] = (report_usage_line){t, t->unused, t->waste_cents};
    }
    for (size_t i = 0; i < m.v.ninstances; i++)
        if (m.v.instances[i].left_frame >= 0)
            m.departures[m.ndepartures++] = i;
    m.date_ms = m.v.started_ms;
    m.duration_ms = report__frame_ms(&m, m.v.last_frame + 1);
    CHECK_INT(m.duration_ms, 3 * 3600000LL);
    snprintf(m.etag, sizeof m.etag, "\"surgery-0123456789abcdef\"");
    snprintf(path, sizeof path, "%s/%s", outdir, name_pdf);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    CHECK(report__surgery_pdf(&m, fd, &err) == SL_OK);
    close(fd);
    int xfd = -1;
    uint64_t size = 0;
    CHECK(report__surgery_xlsx(&m, &xfd, &size, &err) == SL_OK);
    if (xfd >= 0) {
        char *buf = malloc(size);
        REQUIRE(buf && pread(xfd, buf, size, 0) == (ssize_t)size);
        snprintf(path, sizeof path, "%s/%s", outdir, name_xlsx);
        FILE *f = fopen(path, "wb");
        REQUIRE(f && fwrite(buf, 1, size, f) == size);
        fclose(f);
        free(buf);
        close(xfd);
    }
    if (err.status != SL_OK)
        fprintf(stderr, "surgery render: %s\n", err.message);
    report__surgery_model_free(&m);
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
    surgery_render("surgery-kit.pdf", "surgery-kit.xlsx");
    surgery_render("surgery-kit-2.pdf", "surgery-kit-2.xlsx");
    same_bytes("surgery-kit.pdf", "surgery-kit-2.pdf");
    same_bytes("surgery-kit.xlsx", "surgery-kit-2.xlsx");
    if (err.status != SL_OK)
        fprintf(stderr, "error: %s\n", err.message);
    return check_finish();
}
