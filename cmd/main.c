/* main.c -- `sightline <subcommand> [options]`: dispatch, global --help and
 * --version.  Each subcommand lives in its own file and parses its own
 * options; those that use the store take --store URI. */
#include "cmd.h"

#include <stdio.h>
#include <string.h>

static const cmd_entry commands[] = {
    {"serve", "run the HTTP service (and the change-feed listener)", cmd_serve},
    {"ingest", "store detector outputs and asset scores from files or a spool folder", cmd_ingest},
    {"keys", "create, list and revoke API keys of a tenant", cmd_keys},
    {"tenants", "create and show tenants", cmd_tenants},
    {"listen", "apply the change feed to the aggregates (standalone listener)", cmd_listen},
    {"recompute", "rebuild aggregates from base documents, report and repair drift", cmd_recompute},
    {"simulate", "write a scrub-table scenario's detections and ground truth", cmd_simulate},
    {"analyze", "run a surgery's tool-usage analysis (which opened tools were used)", cmd_analyze},
    {"evaluate", "compare tool-usage results with a scenario's ground truth", cmd_evaluate},
    {"report", "render a report (brand scores, surgery usage) as PDF or XLSX", cmd_report},
};

static void print_help(FILE *out)
{
    fprintf(out, "usage: sightline <command> [options]\n\n"
                 "Turns detector outputs into tool-usage and brand-score answers.\n\n"
                 "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\nEvery command takes --help; those that use the store take --store URI\n"
            "(default %s, or $SIGHTLINE_STORE).  Exit codes: 0 ok,\n"
            "1 failure, 2 bad usage, 3 drift found, 4 accuracy below a threshold\n"
            "(evaluate).\n",
            CMD_DEFAULT_STORE);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_help(stderr);
        return CMD_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        print_help(stdout);
        return CMD_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("sightline %s\n", SIGHTLINE_VERSION);
        return CMD_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "sightline: unknown command '%s' (see 'sightline --help')\n", argv[1]);
    return CMD_EXIT_USAGE;
}
