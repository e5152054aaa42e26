/* cmd.h -- the CLI's subcommands and the helpers they share.  Only cmd/ may
 * exit(); everything below returns a status. */
#ifndef SIGHTLINE_CMD_H
#define SIGHTLINE_CMD_H

#include "schema/schema.h"

/* Exit codes scripts can trust. */
enum {
    CMD_EXIT_OK = 0,
    CMD_EXIT_FAILURE = 1, /* the work failed: store unreachable, input refused, ... */
    CMD_EXIT_USAGE = 2,   /* bad command line */
    CMD_EXIT_DRIFT = 3    /* recompute found drift and did not repair it */
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

/* Prints "sightline <sub>: <message>" to stderr, naming the field and offset
 * when the error has them, and returns the exit code for the status. */
int cmd_report_error(const char *sub, const sl_error *err);

/* Prints "sightline <sub>: <fmt...>" and a hint to use --help; returns CMD_EXIT_USAGE. */
int cmd_usage_error(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The --store value: the option if given, else $SIGHTLINE_STORE, else the default. */
const char *cmd_store_uri(const char *option);

#endif
