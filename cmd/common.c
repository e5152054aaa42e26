/* common.c -- error reporting, option parsing helpers and defaults shared by
 * the subcommands. */
#include "cmd.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_report_error(const char *sub, const sl_error *err)
{
    fprintf(stderr, "sightline %s: %s", sub,
            err->message[0] ? err->message : sl_status_title(err->status));
    if (err->field[0])
        fprintf(stderr, " (at %s", err->field);
    if (err->field[0] && err->offset >= 0)
        fprintf(stderr, ", byte %lld)", (long long)err->offset);
    else if (err->field[0])
        fprintf(stderr, ")");
    else if (err->offset >= 0)
        fprintf(stderr, " (at byte %lld)", (long long)err->offset);
    fputc('\n', stderr);
    return CMD_EXIT_FAILURE;
}

int cmd_usage_error(const char *sub, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "sightline %s: ", sub);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'sightline %s --help')\n", sub);
    return CMD_EXIT_USAGE;
}

const char *cmd_store_uri(const char *option)
{
    if (option && option[0])
        return option;
    const char *env = getenv("SIGHTLINE_STORE");
    return env && env[0] ? env : CMD_DEFAULT_STORE;
}

bool cmd_help(int argc, char **argv, void (*help)(FILE *out))
{
    bool asked = false;
    for (int i = 1; i < argc && !asked; i++)
        asked = !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
    if (asked)
        help(stdout);
    return asked;
}

bool cmd_parse_int(const char *s, long long lo, long long hi, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    bool ok = !errno && end != s && !*end && v >= lo && v <= hi;
    if (ok)
        *out = v;
    return ok;
}

int cmd_getopt(const char *sub, int argc, char **argv, const struct option *longs, int *rc)
{
    opterr = 0; /* the messages below name the option */
    int c = getopt_long(argc, argv, "h", longs, NULL);
    if (c == '?' || c == ':') {
        *rc = cmd_usage_error(sub, "unknown option or missing value: '%s'", argv[optind - 1]);
        c = -1;
    } else if (c == -1 && optind < argc) {
        *rc = cmd_usage_error(sub, "unexpected argument '%s'", argv[optind]);
    }
    return c;
}
