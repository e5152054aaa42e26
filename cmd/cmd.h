/* cmd.h -- the CLI's subcommands and the helpers they share.  Only cmd/ may
 * exit(); everything below returns a status. */
#ifndef SIGHTLINE_CMD_H
#define SIGHTLINE_CMD_H

#include "schema/schema.h"

#include <stdbool.h>
#include <stdio.h>

/* Exit codes scripts can trust. */
enum {
    CMD_EXIT_OK = 0,
    CMD_EXIT_FAILURE = 1, /* the work failed: store unreachable, input refused, ... */
    CMD_EXIT_USAGE = 2,   /* bad command line */
    CMD_EXIT_DRIFT = 3,   /* recompute found drift and did not repair it */
    CMD_EXIT_BELOW = 4    /* evaluate: accuracy below a threshold given */
};

#define CMD_DEFAULT_STORE "sqlite:data/sightline.db"

typedef struct cmd_entry {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
} cmd_entry;

/* Subcommands: one file each (cmd/<name>.c). */
int cmd_serve(int argc, char **argv);
int cmd_ingest(int argc, char **argv);
int cmd_keys(int argc, char **argv);
int cmd_tenants(int argc, char **argv);
int cmd_listen(int argc, char **argv);    /* cmd/listen.c */
int cmd_recompute(int argc, char **argv); /* cmd/recompute.c */
int cmd_simulate(int argc, char **argv);  /* cmd/simulate*.c */
int cmd_evaluate(int argc, char **argv);  /* cmd/evaluate*.c */
int cmd_report(int argc, char **argv);    /* cmd/report.c */
int cmd_analyze(int argc, char **argv);   /* cmd/analyze.c */

/* Prints "sightline <sub>: <message>" to stderr, naming the field and offset
 * when the error has them, and returns the exit code for the status. */
int cmd_report_error(const char *sub, const sl_error *err);

/* Prints "sightline <sub>: <fmt...>" and a hint to use --help; returns CMD_EXIT_USAGE. */
int cmd_usage_error(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The --store value: the option if given, else $SIGHTLINE_STORE, else the default. */
const char *cmd_store_uri(const char *option);

/* When --help or -h is among argv[1..argc): prints help to stdout and
 * returns true (the subcommand then exits 0). */
bool cmd_help(int argc, char **argv, void (*help)(FILE *out));

/* A decimal integer in [lo, hi] into *out; false (and *out untouched) when
 * s is not one. */
bool cmd_parse_int(const char *s, long long lo, long long hi, long long *out);

struct option;

/* getopt_long over argv with the long options longs and -h (opterr off),
 * for a subcommand that takes no operands; set optind to 1 before the first
 * call.  Returns the next option's val, or -1 at the end: then *rc holds
 * CMD_EXIT_OK, or the usage error for an unknown option, a missing value or
 * an argument left over. */
int cmd_getopt(const char *sub, int argc, char **argv, const struct option *longs, int *rc);

#endif
