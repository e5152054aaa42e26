/* analyze.c -- `sightline analyze`: runs a surgery's tool-usage analysis
 * (engine.h, "Tool usage"; docs/usage.md) in this process, as the API's
 * analysis job does: a closed surgery is analyzed and becomes analyzed (or
 * failed, with the reason); an analyzed or failed one is requeued first (a
 * re-run after a catalog fix or with other parameters); an open one is
 * refused unless --close (closed first, as POST .../close does) or --force,
 * which analyzes the frames stored so far and leaves it open.  Exit 0 analyzed, 1 refused or
 * failed, 2 usage. */
#include "cmd.h"
#include "engine/engine.h"
#include "store/store.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <yajl/yajl_gen.h>

#define SUB "analyze"

static void help(FILE *out)
{
    fprintf(out,
            "usage: sightline analyze --tenant T [--param NAME=VALUE]... [--close | --force]\n"
            "                         [--json]"
            "\n"
            "                         [--store URI] SURGERY\n\n"
            "Analyzes which opened tools left the scrub table (docs/usage.md) and writes\n"
            "one result per opened instance and the surgery's summary, which the listener\n"
            "turns into the tool aggregates.  The surgery must be closed: it then becomes\n"
            "analyzed (or failed, with the reason).  An analyzed or failed surgery is\n"
            "analyzed again (after a catalog fix, or with other parameters): its results\n"
            "are rewritten, and those that no longer stand are deleted.  Re-running with\n"
            "the same frames, catalog and parameters writes nothing.\n\n"
            "  --tenant T           the surgery's tenant (required)\n"
            "  --param NAME=VALUE   an analysis parameter (repeatable; below)\n"
            "  --close              close an open surgery first (as POST .../close: no\n"
            "                       detections are taken after), then analyze it\n"
            "  --force              analyze an open surgery as it stands and leave it open\n"
            "                       (a preview: detections may still arrive)\n"
            "  --json               print the outcome as one JSON object\n"
            "  --store URI          the store (default %s, or $SIGHTLINE_STORE)\n"
            "  --help               this text\n\n"
            "parameters (milliseconds of video; micro-units: 1000000 = 1):\n",
            CMD_DEFAULT_STORE);
    engine_usage_params_help(out);
    fprintf(out, "\nExit codes: 0 analyzed, 1 refused (the surgery is open, unknown) or the\n"
                 "analysis failed (the reason is recorded in the surgery), 2 bad usage.\n");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void gen_int(yajl_gen g, const char *k, int64_t v)
{
    yajl_gen_string(g, (const unsigned char *)k, strlen(k));
    yajl_gen_integer(g, (long long)v);
}

static void gen_str(yajl_gen g, const char *k, const char *v)
{
    yajl_gen_string(g, (const unsigned char *)k, strlen(k));
    yajl_gen_string(g, (const unsigned char *)v, strlen(v));
}

static void print(const char *tenant, const char *surgery, const char *status,
                  const engine_usage_result *r, double secs, bool json)
{
    if (!json) {
        printf("surgery %s (tenant %s): %lld frames (%lld empty), %lld detections (%lld "
               "unmapped); %lld opened, %lld used, %lld unused, waste %lld cents; %lld "
               "documents written, %lld deleted; %.3f s; %s\n",
               surgery, tenant, (long long)r->frames, (long long)r->frames_empty,
               (long long)r->detections, (long long)r->unmapped_detections, (long long)r->opened,
               (long long)r->used, (long long)r->unused, (long long)r->waste_cents,
               (long long)r->written, (long long)r->deleted, secs, status);
        return;
    }
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g)
        return;
    yajl_gen_map_open(g);
    gen_str(g, "tenant", tenant);
    gen_str(g, "surgery", surgery);
    gen_str(g, "status", status);
    gen_int(g, "frames", r->frames);
    gen_int(g, "frames_empty", r->frames_empty);
    gen_int(g, "detections", r->detections);
    gen_int(g, "unmapped_detections", r->unmapped_detections);
    gen_int(g, "opened", r->opened);
    gen_int(g, "used", r->used);
    gen_int(g, "unused", r->unused);
    gen_int(g, "waste_cents", r->waste_cents);
    gen_int(g, "written", r->written);
    gen_int(g, "deleted", r->deleted);
    gen_int(g, "tracks_peak", r->tracks_peak);
    yajl_gen_string(g, (const unsigned char *)"seconds", 7);
    yajl_gen_double(g, secs);
    yajl_gen_map_close(g);
    const unsigned char *buf;
    size_t len;
    if (yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok)
        printf("%.*s\n", (int)len, (const char *)buf);
    yajl_gen_free(g);
}

int cmd_analyze(int argc, char **argv)
{
    int rc = CMD_EXIT_OK;
    const char *tenant = NULL, *surgery = NULL, *store_opt = NULL;
    bool force = false, json = false, close = false;
    store *st = NULL;
    engine_usage_params p;
    engine_usage_result res;
    schema_surgery_life life;
    sl_error err;
    sl_error_clear(&err);
    engine_usage_params_default(&p);
    for (int i = 1; i < argc && rc == CMD_EXIT_OK; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            help(stdout);
            goto out;
        }
        if (!strcmp(s, "--force")) {
            force = true;
        } else if (!strcmp(s, "--close")) {
            close = true;
        } else if (!strcmp(s, "--json")) {
            json = true;
        } else if (!strcmp(s, "--tenant") || !strcmp(s, "--store") || !strcmp(s, "--param")) {
            if (i + 1 >= argc) {
                rc = cmd_usage_error(SUB, "%s needs a value", s);
                break;
            }
            const char *v = argv[++i];
            if (!strcmp(s, "--tenant")) {
                tenant = v;
            } else if (!strcmp(s, "--store")) {
                store_opt = v;
            } else {
                char name[64];
                const char *eq = strchr(v, '=');
                if (!eq || eq == v || (size_t)(eq - v) >= sizeof name) {
                    rc = cmd_usage_error(SUB, "--param takes NAME=VALUE, not '%s'", v);
                    break;
                }
                memcpy(name, v, (size_t)(eq - v));
                name[eq - v] = '\0';
                if (engine_usage_param_set(&p, name, eq + 1, &err) != SL_OK)
                    rc = cmd_usage_error(SUB, "%s", err.message);
            }
        } else if (s[0] == '-') {
            rc = cmd_usage_error(SUB, "unknown option '%s'", s);
        } else if (!surgery) {
            surgery = s;
        } else {
            rc = cmd_usage_error(SUB, "unexpected argument '%s'", s);
        }
    }
    if (rc != CMD_EXIT_OK)
        goto out;
    if (!tenant || !surgery) {
        rc = cmd_usage_error(SUB, "needs --tenant T and a SURGERY");
        goto out;
    }
    if (close && force) {
        rc = cmd_usage_error(SUB, "--close and --force exclude each other");
        goto out;
    }
    if (store_open(cmd_store_uri(store_opt), NULL, &st, &err) != SL_OK ||
        engine_surgery_life_get(st, tenant, surgery, &life, NULL, &err) != SL_OK) {
        rc = cmd_report_error(SUB, &err);
        goto out;
    }
    double t0 = now_s();
    if (life.status == SCHEMA_SURGERY_OPEN && close) {
        if (engine_surgery_transition(st, tenant, surgery, ENGINE_SURGERY_CLOSE, 0, NULL, &life,
                                      &err) != SL_OK &&
            life.status == SCHEMA_SURGERY_OPEN) {
            rc = cmd_report_error(SUB, &err);
            goto out;
        }
        sl_error_clear(&err); /* closed meanwhile by another: as good */
    }
    if (life.status == SCHEMA_SURGERY_OPEN) {
        if (!force) {
            fprintf(stderr,
                    "sightline %s: surgery \"%s\" is open: close it first (--close, or POST "
                    "/v1/surgeries/%s/close; detections may still arrive), or analyze it as it "
                    "stands with --force\n",
                    SUB, surgery, surgery);
            rc = CMD_EXIT_FAILURE;
            goto out;
        }
        if (engine_usage_analyze(st, tenant, surgery, &p, &res, &err) != SL_OK) {
            rc = cmd_report_error(SUB, &err);
            goto out;
        }
        print(tenant, surgery, "open", &res, now_s() - t0, json);
        goto out;
    }
    if (life.status != SCHEMA_SURGERY_CLOSED &&
        engine_surgery_transition(st, tenant, surgery, ENGINE_SURGERY_REQUEUE, 0, NULL, NULL,
                                  &err) != SL_OK) {
        rc = cmd_report_error(SUB, &err);
        goto out;
    }
    if (engine_usage_run(st, tenant, surgery, &p, &res, &err) != SL_OK) {
        rc = cmd_report_error(SUB, &err);
        goto out;
    }
    print(tenant, surgery, "analyzed", &res, now_s() - t0, json);
out:
    store_close(&st);
    return rc;
}
