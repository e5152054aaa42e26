/* keys.c -- `sightline keys create|list|revoke`: API keys of a tenant.  A
 * new key is printed once, alone on stdout (scripts capture it); only its
 * hash is stored.  Safe while a server runs on the same store. */
#include "cmd.h"

#include <stdio.h>
#include <string.h>

#include "api/api.h" /* and store/store.h */

#define SUB "keys"

static void help(FILE *out)
{
    fprintf(out, "usage: sightline keys create --tenant T --role ROLE [--name N] [--store URI]\n"
                 "       sightline keys list --tenant T [--store URI]\n"
                 "       sightline keys revoke KEY_ID [--tenant T] [--store URI]\n\n"
                 "Roles: ingest (write detections and scores), staff (read surgeries and\n"
                 "reports), viewer (read brand aggregates and reports), admin (everything in\n"
                 "its tenant).  'create' prints the key once, alone on standard output;\n"
                 "keep it: only its SHA-256 is stored.  A revoked key stops working within\n"
                 "the server's key-cache-ms (5 s by default).\n");
}

typedef struct keys_args {
    const char *action, *tenant, *role, *name, *store, *key_id;
} keys_args;

static int parse(int argc, char **argv, keys_args *a)
{
    int rc = CMD_EXIT_OK;
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc && rc == CMD_EXIT_OK; i++) {
        const char *s = argv[i];
        const char **slot = !strcmp(s, "--tenant")  ? &a->tenant
                            : !strcmp(s, "--role")  ? &a->role
                            : !strcmp(s, "--name")  ? &a->name
                            : !strcmp(s, "--store") ? &a->store
                                                    : NULL;
        if (slot) {
            if (i + 1 >= argc)
                rc = cmd_usage_error(SUB, "%s needs a value", s);
            else
                *slot = argv[++i];
        } else if (!strncmp(s, "-", 1)) {
            rc = cmd_usage_error(SUB, "unknown option '%s'", s);
        } else if (!a->action) {
            a->action = s;
        } else if (!a->key_id) {
            a->key_id = s;
        } else {
            rc = cmd_usage_error(SUB, "unexpected argument '%s'", s);
        }
    }
    return rc;
}

static int create(store *st, const keys_args *a)
{
    int rc = CMD_EXIT_OK;
    sl_error err;
    api_role role;
    char key[API_KEY_LEN + 1];
    sl_error_clear(&err);
    if (api_role_parse(a->role, &role, &err) != SL_OK) {
        rc = cmd_usage_error(SUB, "%s", err.message);
        goto out;
    }
    if (api_key_create(st, a->tenant, role, a->name, key, NULL, &err) != SL_OK) {
        rc = cmd_report_error(SUB, &err);
        goto out;
    }
    printf("%s\n", key);
    memset(key, 0, sizeof key);
out:
    return rc;
}

static int list(store *st, const keys_args *a)
{
    int rc = CMD_EXIT_OK;
    sl_error err;
    api_key_info keys[100];
    char token[STORE_TOKEN_MAX] = "", next[STORE_TOKEN_MAX];
    char kind[16];
    size_t n = 0;
    sl_error_clear(&err);
    if (api_tenant_kind(st, a->tenant, kind, &err) != SL_OK) {
        rc = cmd_report_error(SUB, &err);
        goto out;
    }
    printf("%-16s  %-6s  %-24s  %-24s  %s\n", "KEY_ID", "ROLE", "CREATED", "REVOKED", "NAME");
    do {
        if (api_key_list(st, a->tenant, token, keys, 100, &n, next, &err) != SL_OK) {
            rc = cmd_report_error(SUB, &err);
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            char created[25], revoked[25] = "-";
            schema_time_format(keys[i].created_ms, created);
            if (keys[i].revoked_ms)
                schema_time_format(keys[i].revoked_ms, revoked);
            printf("%-16s  %-6s  %-24s  %-24s  %s\n", keys[i].key_id, api_role_name(keys[i].role),
                   created, revoked, keys[i].name);
        }
        memcpy(token, next, sizeof token);
    } while (token[0]);
out:
    return rc;
}

int cmd_keys(int argc, char **argv)
{
    int rc = CMD_EXIT_OK;
    keys_args a;
    store *st = NULL;
    sl_error err;
    sl_error_clear(&err);
    if (cmd_help(argc, argv, help) || (rc = parse(argc, argv, &a)) != CMD_EXIT_OK)
        goto out;
    if (!a.action) {
        rc = cmd_usage_error(SUB, "missing action: create, list or revoke");
        goto out;
    }
    int is_create = !strcmp(a.action, "create"), is_list = !strcmp(a.action, "list"),
        is_revoke = !strcmp(a.action, "revoke");
    if (!is_create && !is_list && !is_revoke) {
        rc = cmd_usage_error(SUB, "unknown action '%s': create, list or revoke", a.action);
        goto out;
    }
    if ((is_create || is_list) && !a.tenant) {
        rc = cmd_usage_error(SUB, "%s needs --tenant", a.action);
        goto out;
    }
    if (is_create && !a.role) {
        rc = cmd_usage_error(SUB, "create needs --role (ingest, staff, viewer or admin)");
        goto out;
    }
    if (is_revoke && !a.key_id) {
        rc = cmd_usage_error(SUB, "revoke needs a KEY_ID");
        goto out;
    }
    if (!is_revoke && a.key_id) {
        rc = cmd_usage_error(SUB, "unexpected argument '%s'", a.key_id);
        goto out;
    }
    if (store_open(cmd_store_uri(a.store), NULL, &st, &err) != SL_OK) {
        rc = cmd_report_error(SUB, &err);
        goto out;
    }
    if (is_create) {
        rc = create(st, &a);
    } else if (is_list) {
        rc = list(st, &a);
    } else if (api_key_revoke(st, a.tenant, a.key_id, &err) != SL_OK) {
        rc = cmd_report_error(SUB, &err);
    } else {
        fprintf(stderr, "sightline keys: key %s revoked\n", a.key_id);
    }
out:
    store_close(&st);
    return rc;
}
