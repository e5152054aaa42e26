/* report.c -- `sightline report brand --tenant T --brand B -o FILE` and
 * `sightline report surgery --tenant T --surgery S -o FILE` (both with
 * [--format pdf|xlsx] [--paper a4|letter]): a report rendered from the store
 * to a file, the same bytes the API serves (reports/reports.h).  The file
 * appears whole or not at all: it is written beside FILE under a temporary
 * name and renamed over it.  `-o -` writes to standard output. */
#include "cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include "api/api.h"
#include "reports/reports.h"

#define SUB "report"

static void help(FILE *out)
{
    fprintf(out,
            "usage: sightline report brand --tenant T --brand B -o FILE [--format pdf|xlsx]\n"
            "                              [--paper a4|letter] [--top N] [--store URI]\n"
            "       sightline report surgery --tenant T --surgery S -o FILE [--format pdf|xlsx]\n"
            "                              [--paper a4|letter] [--store URI]\n\n"
            "Renders a report from the store, the same bytes the API serves\n"
            "(docs/reports.md):\n"
            "  brand    the brand score report of brand B of brand-client tenant T\n"
            "           (GET /v1/brands/{b}/report.pdf|.xlsx)\n"
            "  surgery  the tool-usage report of analyzed surgery S of hospital tenant T\n"
            "           (GET /v1/surgeries/{id}/report.pdf|.xlsx)\n\n"
            "  -o, --output FILE   where to write it ('-': standard output); the file\n"
            "                      appears whole or not at all\n"
            "  --format F          pdf (default) or xlsx\n"
            "  --paper P           a4 (default) or letter (PDF)\n"
            "  --top N             brand: top and bottom assets listed, 1..%d (default %d)\n"
            "  --store URI         the store (default %s, or $SIGHTLINE_STORE)\n\n"
            "Prints the report's ETag and size.  Exit 1 when the tenant, brand or surgery\n"
            "does not exist, the tenant is not of the report's kind, or the surgery is\n"
            "not analyzed yet; 2 on bad usage.\n",
            REPORT_TOP_MAX, REPORT_TOP_DEFAULT, CMD_DEFAULT_STORE);
}

/* Copies size bytes of fd (from its start) to out_fd. */
static int copy_all(int fd, int out_fd, uint64_t size)
{
    off_t off = 0;
    while ((uint64_t)off < size) {
        ssize_t n = sendfile(out_fd, fd, &off, (size_t)(size - (uint64_t)off));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
    }
    return 0;
}

/* Writes the report's bytes to path atomically (a temporary file beside it,
 * renamed over it), or to stdout for "-". */
static int write_out(const char *path, const report_output *o, sl_error *err)
{
    if (!strcmp(path, "-")) {
        if (copy_all(o->fd, STDOUT_FILENO, o->size) != 0)
            return sl_error_set(err, SL_EIO, "writing to standard output: %s", strerror(errno));
        return SL_OK;
    }
    char *dup = strdup(path), tmp[4096];
    if (!dup)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    int n = snprintf(tmp, sizeof tmp, "%s/.sl-report-XXXXXX", dirname(dup));
    free(dup);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return sl_error_set_at(err, SL_EINVAL, "output", -1, "%.200s: name too long", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return sl_error_set_at(err, SL_EIO, "output", -1, "%.200s: %s", path, strerror(errno));
    int ok = copy_all(o->fd, fd, o->size) == 0 && fchmod(fd, 0644) == 0 && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return sl_error_set_at(err, SL_EIO, "output", -1, "%.200s: %s", path, strerror(e));
    }
    return SL_OK;
}

int cmd_report(int argc, char **argv)
{
    int rc = CMD_EXIT_OK, c;
    const char *tenant = NULL, *brand = NULL, *surgery = NULL, *output = NULL, *store_opt = NULL;
    int is_surgery = 0;
    store *st = NULL;
    report_output o;
    report_options opt = {.format = REPORT_PDF, .paper = REPORT_A4};
    sl_error err;
    long long top = REPORT_TOP_DEFAULT;
    static const struct option longs[] = {
        {"tenant", required_argument, NULL, 't'},  {"brand", required_argument, NULL, 'b'},
        {"surgery", required_argument, NULL, 'S'}, {"output", required_argument, NULL, 'o'},
        {"format", required_argument, NULL, 'f'},  {"paper", required_argument, NULL, 'p'},
        {"top", required_argument, NULL, 'n'},     {"store", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    sl_error_clear(&err);
    report_output_init(&o);
    if (cmd_help(argc, argv, help))
        goto out;
    if (argc < 2 || (strcmp(argv[1], "brand") != 0 && strcmp(argv[1], "surgery") != 0)) {
        rc = cmd_usage_error(SUB, "which report? brand or surgery");
        goto out;
    }
    is_surgery = !strcmp(argv[1], "surgery");
    argc--;
    argv++;
    /* -o is the one short option besides -h: cmd_getopt knows long ones. */
    static char output_long[] = "--output";
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-o"))
            argv[i] = output_long;
    optind = 1;
    while ((c = cmd_getopt(SUB, argc, argv, longs, &rc)) != -1) {
        switch (c) {
        case 't':
            tenant = optarg;
            break;
        case 'b':
            brand = optarg;
            break;
        case 'S':
            surgery = optarg;
            break;
        case 'o':
            output = optarg;
            break;
        case 's':
            store_opt = optarg;
            break;
        case 'f':
            if (report_format_parse("--format", optarg, &opt.format, &err) != SL_OK)
                rc = cmd_usage_error(SUB, "%s", err.message);
            break;
        case 'p':
            if (report_paper_parse("--paper", optarg, &opt.paper, &err) != SL_OK)
                rc = cmd_usage_error(SUB, "%s", err.message);
            break;
        case 'n':
            if (!cmd_parse_int(optarg, 1, REPORT_TOP_MAX, &top))
                rc = cmd_usage_error(SUB, "--top takes 1..%d, not '%s'", REPORT_TOP_MAX, optarg);
            break;
        default:
            break;
        }
        if (rc != CMD_EXIT_OK)
            goto out;
    }
    if (rc != CMD_EXIT_OK)
        goto out;
    if (is_surgery ? (!tenant || !surgery || !output || brand)
                   : (!tenant || !brand || !output || surgery)) {
        rc = cmd_usage_error(SUB, is_surgery ? "surgery needs --tenant, --surgery and -o FILE"
                                             : "brand needs --tenant, --brand and -o FILE");
        goto out;
    }
    opt.top = (size_t)top;
    if (schema_component_check("tenant", tenant, &err) != SL_OK ||
        schema_component_check(is_surgery ? "surgery" : "brand", is_surgery ? surgery : brand,
                               &err) != SL_OK) {
        rc = cmd_usage_error(SUB, "%s", err.message);
        goto out;
    }
    char kind[16];
    if (store_open(cmd_store_uri(store_opt), &(store_options){.no_create = 1}, &st, &err) !=
            SL_OK ||
        api_tenant_kind(st, tenant, kind, &err) != SL_OK) {
        rc = cmd_report_error(SUB, &err);
        goto out;
    }
    const char *want = is_surgery ? SCHEMA_KIND_HOSPITAL : SCHEMA_KIND_BRAND_CLIENT;
    if (strcmp(kind, want) != 0) {
        sl_error_set_at(&err, SL_EINVAL, "tenant", -1,
                        "tenant %s is a %s tenant: %s reports are of %s tenants", tenant, kind,
                        is_surgery ? "surgery" : "brand", want);
        rc = cmd_report_error(SUB, &err);
        goto out;
    }
    if ((is_surgery ? report_surgery(st, tenant, surgery, &opt, &o, &err)
                    : report_brand(st, tenant, brand, &opt, &o, &err)) != SL_OK ||
        write_out(output, &o, &err) != SL_OK) {
        rc = cmd_report_error(SUB, &err);
        goto out;
    }
    fprintf(stderr, "sightline report: %s, %llu bytes, ETag %s\n",
            strcmp(output, "-") ? output : "(standard output)", (unsigned long long)o.size, o.etag);
out:
    report_output_close(&o);
    store_close(&st);
    return rc;
}
