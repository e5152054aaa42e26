/* config.c -- the server's limits and settings as one table (name, min, max,
 * default, help, field), the one place `serve --help`, flag parsing and
 * defaults come from.  Numbers are checked against their bounds
 * overflow-safely; text (a directory) against its field's size. */
#include "api_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef enum row_kind {
    ROW_INT = 0, /* int64_t field, plain decimal */
    ROW_BYTES,   /* int64_t field, k/M/G/T suffixes accepted */
    ROW_TEXT     /* char array field; min..max is its length */
} row_kind;

typedef struct config_row {
    const char *name;
    int64_t min, max, def;
    row_kind kind;
    size_t offset;
    const char *help;
    const char *text_def; /* ROW_TEXT: the default */
    const char *arg;      /* ROW_TEXT: what --help calls the value */
} config_row;

#define ROW(name, min, max, def, bytes, field, help)                                               \
    {                                                                                              \
        name, min, max, def, (bytes) ? ROW_BYTES : ROW_INT, offsetof(api_config, field), help,     \
            NULL, NULL                                                                             \
    }
/* Text: up to the field's size less the NUL. */
#define TEXT_ROW(name, field, arg, def, help)                                                      \
    {                                                                                              \
        name, 0, (int64_t)sizeof((api_config *)0)->field - 1, 0, ROW_TEXT,                         \
            offsetof(api_config, field), help, def, arg                                            \
    }

/* HTTPS: TLS 1.3 and 1.2 only; AEAD ciphers only (AES-GCM, ChaCha20-Poly1305:
 * no CBC, so no SHA-1 MACs and no padding oracles); forward-secret key
 * exchange only (ECDHE: no static RSA, no finite-field DHE); no SHA-1
 * signatures; keys of at least 112-bit strength (%PROFILE_MEDIUM: RSA 2048,
 * P-256); the server's order of preference.  TLS 1.3 suites follow the same
 * cipher list.  Every current browser, curl and Python client speaks it. */
#define TLS_PRIORITIES_DEFAULT                                                                     \
    "NORMAL:%SERVER_PRECEDENCE:%PROFILE_MEDIUM:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:"               \
    "-CIPHER-ALL:+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-GCM:-MAC-ALL:+AEAD:-KX-ALL:"             \
    "+ECDHE-ECDSA:+ECDHE-RSA:-SIGN-RSA-SHA1:-SIGN-ECDSA-SHA1"

static const config_row rows[] = {
    ROW("threads", 0, 256, 0, 0, threads, "worker threads (0: one per online core)"),
    /* What an open connection costs is its buffer (connection-memory), ~0.4 KB
     * of libmicrohttpd's own, and with TLS a GnuTLS session (~10 KB):
     * measured 16.4 KB plain and 26.6 KB with TLS per idle keep-alive
     * connection (docs/security.md), so the default bounds idle connections to
     * ~67 MB (~109 MB with TLS). */
    ROW("max-connections", 1, 1000000, 4096, 0, max_connections,
        "open connections at once; more wait in the kernel's queue until one closes"),
    ROW("max-connections-per-ip", 0, 1000000, 128, 0, max_connections_per_ip,
        "open connections from one client address; more are closed at once (0: no limit; "
        "behind a reverse proxy every client has the proxy's address)"),
    /* libmicrohttpd zeroes the whole buffer after every request, so an idle
     * keep-alive connection holds all of it in memory. */
    ROW("connection-memory", 4096, 1 << 20, 16 << 10, 1, connection_memory,
        "bytes of each connection's buffer (request head, answer head, body reads); at least "
        "max-header-bytes + 4k"),
    ROW("idle-timeout", 1, 3600, 30, 0, idle_timeout_s, "seconds a silent connection stays open"),
    ROW("header-timeout", 1, 3600, 15, 0, header_timeout_s,
        "seconds a request head may take to arrive, from connect or the previous answer"),
    ROW("max-header-bytes", 1024, 1 << 20, 8192, 1, max_header_bytes,
        "bytes of request line and headers"),
    ROW("max-json-body", 0, INT64_C(1) << 30, 1 << 20, 1, max_json_body,
        "bytes of a buffered (JSON) request body"),
    ROW("max-upload-body", 0, INT64_C(1) << 40, INT64_C(4) << 30, 1, max_upload_body,
        "bytes of a streamed upload (detector files)"),
    ROW("drain-bytes", 0, INT64_C(1) << 30, 1 << 20, 1, drain_bytes,
        "bytes of a refused body read and dropped before the connection is closed"),
    ROW("key-cache-ms", 0, 60000, 5000, 0, key_cache_ms,
        "milliseconds a verified API key is cached; a revocation through another process or "
        "server takes effect within this (through this server's API: at once)"),
    ROW("key-negative-cache-ms", 0, 60000, 2000, 0, key_negative_cache_ms,
        "milliseconds an unknown key id is remembered as unknown (no store lookup meanwhile)"),
    ROW("auth-failures-burst", 0, 1000000, 20, 0, auth_failures_burst,
        "failed key checks one client address may make at once; then 429 until it regains some "
        "(0: no limit)"),
    ROW("auth-failures-per-minute", 1, 1000000, 30, 0, auth_failures_per_min,
        "failed key checks a client address regains per minute"),
    ROW("shutdown-grace", 0, 3600, 30, 0, shutdown_grace_s,
        "seconds a stop waits for in-flight requests (running jobs: always)"),
    /* One job thread by default: ingest jobs write through one store batch
     * each, and SQLite takes one writer at a time, so a second thread would
     * only wait on the first's lock (up to the store's busy_ms, then fail);
     * queued, the job waits its turn instead. */
    ROW("job-threads", 1, 64, 1, 0, job_threads, "threads running long requests (ingest jobs)"),
    ROW("job-queue", 0, 4096, 16, 0, job_queue,
        "jobs waiting for a job thread; more are answered 503"),
    TEXT_ROW("upload-dir", upload_dir, "DIR", "",
             "where request bodies are spooled (default: the store's directory)"),
    ROW("uploads-per-key", 1, 4096, 4, 0, uploads_per_key,
        "streamed uploads (detections, asset batches) one key may have in progress; more are "
        "answered 429"),
    ROW("upload-bytes-per-key", 64 << 10, INT64_C(1) << 50, INT64_C(8) << 30, 1,
        upload_bytes_per_key,
        "bytes one key may have spooled at once (a declared Content-Length counts in full from "
        "the start); past it 429, or 507 for one upload larger than this alone"),
    ROW("upload-free-floor", 0, INT64_C(1) << 60, INT64_C(1) << 30, 1, upload_free_floor,
        "free bytes the upload directory's disk keeps: an upload that would leave less is "
        "answered 507"),
    /* The recommendations' rules: docs/usage.md, "Recommendations". */
    ROW("recommend-keep-open", 0, 100, 50, 0, recommend_keep_open_pct,
        "a tool whose usage rate's Wilson 95% lower bound is at least this percent is "
        "recommended kept open"),
    ROW("recommend-on-request", 0, 100, 20, 0, recommend_on_request_pct,
        "a tool whose usage rate's Wilson 95% upper bound is at most this percent is "
        "recommended opened on request"),
    ROW("recommend-min-span-days", 1, 3660, 30, 0, recommend_min_span_days,
        "days of surgeries a yearly projection assumes at least (fewer observed days would "
        "inflate it)"),
    TEXT_ROW("tls-priorities", tls_priorities, "STRING", TLS_PRIORITIES_DEFAULT,
             "GnuTLS priority string of HTTPS: protocol versions and ciphers (the default: TLS "
             "1.3 and 1.2, AEAD ciphers, ECDHE; docs/security.md)"),
    ROW("hsts-max-age", 0, INT64_C(1) << 31, 31536000, 0, hsts_max_age_s,
        "seconds of Strict-Transport-Security sent with HTTPS answers (0: none)"),
    /* A brand report reads every asset of the brand (top and bottom lists,
     * the XLSX asset sheet): about 2.5 us and 300 bytes of XLSX each, on a
     * job thread, in memory bounded by one store page.  The maximum is
     * Excel's sheet (1,048,576 rows with the header). */
    ROW("report-assets-max", 1, 1048575, 1000000, 0, report_assets_max,
        "assets of one brand a report reads (its XLSX asset sheet's rows); a brand with more is "
        "answered 413"),
    TEXT_ROW("metrics-key", metrics_key, "TOKEN|@FILE", "",
             "bearer token GET /metrics requires (at least 16 characters; @FILE reads it from the "
             "file's first line, keeping it out of the process list); default: /metrics is public"),
};

#define NROWS (sizeof rows / sizeof rows[0])

static int64_t *field_of(api_config *cfg, const config_row *r)
{
    return (int64_t *)((char *)cfg + r->offset);
}

static char *text_of(api_config *cfg, const config_row *r)
{
    return (char *)cfg + r->offset;
}

static const config_row *row_find(const char *name)
{
    const config_row *found = NULL;
    for (size_t i = 0; i < NROWS && !found; i++)
        if (!strcmp(rows[i].name, name))
            found = &rows[i];
    return found;
}

void api_config_defaults(api_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    strcpy(cfg->listen, "127.0.0.1:8080");
    cfg->access_log = stdout;
    for (size_t i = 0; i < NROWS; i++)
        if (rows[i].kind == ROW_TEXT)
            snprintf(text_of(cfg, &rows[i]), (size_t)rows[i].max + 1, "%s", rows[i].text_def);
        else
            *field_of(cfg, &rows[i]) = rows[i].def;
}

int api_config_has(const char *name)
{
    return row_find(name) != NULL;
}

/* Parses a decimal integer with an optional binary suffix (k, M, G, T) when
 * the row takes bytes; refuses signs, spaces, overflow and trailing text. */
static sl_status parse_value(const config_row *r, const char *text, int64_t *out, sl_error *err)
{
    sl_status rc = SL_OK;
    const char *p = text;
    uint64_t v = 0;
    if (!*p || *p < '0' || *p > '9') {
        rc = sl_error_set_at(err, SL_EINVAL, r->name, -1, "--%s: \"%.32s\" is not a number",
                             r->name, text);
        goto out;
    }
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - 9) / 10) {
            rc = sl_error_set_at(err, SL_EINVAL, r->name, -1, "--%s: %.32s is too large", r->name,
                                 text);
            goto out;
        }
        v = v * 10 + (uint64_t)(*p - '0');
    }
    int shift = 0;
    if (r->kind == ROW_BYTES && *p) {
        switch (*p) {
        case 'k':
        case 'K':
            shift = 10;
            break;
        case 'm':
        case 'M':
            shift = 20;
            break;
        case 'g':
        case 'G':
            shift = 30;
            break;
        case 't':
        case 'T':
            shift = 40;
            break;
        default:
            break;
        }
        if (shift)
            p++;
    }
    if (*p) {
        rc = sl_error_set_at(err, SL_EINVAL, r->name, -1, "--%s: \"%.32s\" is not a number%s",
                             r->name, text,
                             r->kind == ROW_BYTES ? " (suffixes k, M, G, T allowed)" : "");
        goto out;
    }
    if (shift && v > (UINT64_MAX >> shift)) {
        rc =
            sl_error_set_at(err, SL_EINVAL, r->name, -1, "--%s: %.32s is too large", r->name, text);
        goto out;
    }
    v <<= shift;
    if (v < (uint64_t)r->min || v > (uint64_t)r->max) {
        rc = sl_error_set_at(err, SL_EINVAL, r->name, -1,
                             "--%s: %.32s is outside %" PRId64 "..%" PRId64, r->name, text, r->min,
                             r->max);
        goto out;
    }
    *out = (int64_t)v;
out:
    return rc;
}

sl_status api_config_set(api_config *cfg, const char *name, const char *value, sl_error *err)
{
    sl_status rc = SL_OK;
    const config_row *r = row_find(name);
    int64_t v = 0;
    if (!r) {
        rc = sl_error_set_at(err, SL_EINVAL, name, -1, "unknown setting --%.64s", name);
        goto out;
    }
    if (r->kind == ROW_TEXT) {
        size_t len = value ? strlen(value) : 0;
        if (len < (size_t)r->min || len > (size_t)r->max) {
            rc = sl_error_set_at(err, SL_EINVAL, r->name, -1,
                                 "--%s takes %" PRId64 " to %" PRId64 " bytes, not %zu", r->name,
                                 r->min, r->max, len);
            goto out;
        }
        memcpy(text_of(cfg, r), value ? value : "", len + 1);
        goto out;
    }
    rc = parse_value(r, value ? value : "", &v, err);
    if (rc != SL_OK)
        goto out;
    *field_of(cfg, r) = v;
out:
    return rc;
}

void api_config_help(FILE *out)
{
    for (size_t i = 0; i < NROWS; i++) {
        char flag[48];
        int text = rows[i].kind == ROW_TEXT;
        snprintf(flag, sizeof flag, "--%s %s", rows[i].name, text ? rows[i].arg : "N");
        if (text && rows[i].text_def[0])
            fprintf(out, "  %-24s %s\n  %-24s (default %s)\n", flag, rows[i].help, "",
                    rows[i].text_def);
        else if (text)
            fprintf(out, "  %-24s %s\n", flag, rows[i].help);
        else
            fprintf(out, "  %-24s %s\n  %-24s (default %" PRId64 ", %" PRId64 "..%" PRId64 ")\n",
                    flag, rows[i].help, "", rows[i].def, rows[i].min, rows[i].max);
    }
}
