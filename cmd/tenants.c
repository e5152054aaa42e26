/* tenants.c -- `sightline tenants create|show`: the tenants every key and
 * document belongs to.  Safe while a server runs on the same store. */
#include "cmd.h"

#include <stdio.h>
#include <string.h>

#include "api/api.h" /* and store/store.h */

#define SUB "tenants"

static void help(FILE *out)
{
    fprintf(out, "usage: sightline tenants create TENANT --kind hospital|brand-client "
                 "[--store URI]\n"
                 "       sightline tenants show TENANT [--store URI]\n\n"
                 "'create' exits 1 when the tenant exists; 'show' prints its kind and exits\n"
                 "1 when it does not exist.  Then create keys with 'sightline keys create'.\n");
}

int cmd_tenants(int argc, char **argv)
{
    int rc = CMD_EXIT_OK;
    const char *action = NULL, *tenant = NULL, *kind = NULL, *store_opt = NULL;
    store *st = NULL;
    sl_error err;
    sl_error_clear(&err);
    for (int i = 1; i < argc && rc == CMD_EXIT_OK; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            help(stdout);
            goto out;
        }
        const char **slot = !strcmp(s, "--kind")    ? &kind
                            : !strcmp(s, "--store") ? &store_opt
                                                    : NULL;
        if (slot) {
            if (i + 1 >= argc)
                rc = cmd_usage_error(SUB, "%s needs a value", s);
            else
                *slot = argv[++i];
        } else if (s[0] == '-') {
            rc = cmd_usage_error(SUB, "unknown option '%s'", s);
        } else if (!action) {
            action = s;
        } else if (!tenant) {
            tenant = s;
        } else {
            rc = cmd_usage_error(SUB, "unexpected argument '%s'", s);
        }
    }
    if (rc != CMD_EXIT_OK)
        goto out;
    if (!action || (strcmp(action, "create") && strcmp(action, "show"))) {
        rc = cmd_usage_error(SUB, "missing or unknown action: create or show");
        goto out;
    }
    if (!tenant) {
        rc = cmd_usage_error(SUB, "%s needs a TENANT", action);
        goto out;
    }
    if (!strcmp(action, "create") && !kind) {
        rc = cmd_usage_error(SUB, "create needs --kind hospital or --kind brand-client");
        goto out;
    }
    if (store_open(cmd_store_uri(store_opt), NULL, &st, &err) != SL_OK) {
        rc = cmd_report_error(SUB, &err);
        goto out;
    }
    if (!strcmp(action, "create")) {
        if (api_tenant_create(st, tenant, kind, &err) != SL_OK)
            rc = cmd_report_error(SUB, &err);
        else
            fprintf(stderr, "sightline tenants: tenant %s (%s) created\n", tenant, kind);
    } else {
        char k[16];
        if (api_tenant_kind(st, tenant, k, &err) != SL_OK)
            rc = cmd_report_error(SUB, &err);
        else
            printf("%s\t%s\n", tenant, k);
    }
out:
    store_close(&st);
    return rc;
}
