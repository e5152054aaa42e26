/* common.c -- error reporting and option defaults shared by the subcommands. */
#include "cmd.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

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
