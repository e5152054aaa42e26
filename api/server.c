/* server.c -- the libmicrohttpd daemon (epoll, thread pool): starting it
 * (listen address, TLS, settings), the connections and their watchdog
 * (slow-loris heads), metrics and graceful stop.  The life of one request is
 * in server_request.c, the checks of its head in server_head.c. */
#include "api_int.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WATCHDOG_TICK_MS 200
#define TLS_FILE_MAX     (1 << 20)
/* After the job pool stopped, how long the answers of the last jobs get to
 * go out (they were resumed; only sending is left). */
#define JOB_ANSWER_WAIT_MS 5000

int64_t api__mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t api__mono_ms(void)
{
    return api__mono_us() / 1000;
}

/* ---------------------------------------------------------------------------
 * Connections and the watchdog.
 * ------------------------------------------------------------------------- */

/* Allocates the watchdog record of a connection when it opens (it becomes
 * the connection's socket context) and frees it when it closes. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    api_server *srv = cls;
    api__conn *c = NULL;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        api__acceptor_started(srv->acceptor, ci ? ci->connect_fd : -1);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        api__acceptor_closed(srv->acceptor);
    }
    if (code == MHD_CONNECTION_NOTIFY_STARTED && (c = calloc(1, sizeof *c))) {
        /* (Without memory the connection goes unwatched: the idle timeout
         * still applies.) */
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        c->fd = ci ? ci->connect_fd : -1;
        atomic_store(&c->deadline_ms, api__mono_ms() + srv->cfg.header_timeout_s * 1000);
        pthread_mutex_lock(&srv->conns_lock);
        c->next = srv->conns.next;
        c->prev = &srv->conns;
        srv->conns.next->prev = c;
        srv->conns.next = c;
        pthread_mutex_unlock(&srv->conns_lock);
        *socket_context = c;
        api__metrics_connections(srv->metrics, 1);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        c = *socket_context;
        /* Unlinked under the lock before libmicrohttpd closes the fd, so the
         * watchdog never shuts down a reused descriptor. */
        pthread_mutex_lock(&srv->conns_lock);
        c->prev->next = c->next;
        c->next->prev = c->prev;
        pthread_mutex_unlock(&srv->conns_lock);
        free(c);
        *socket_context = NULL;
        api__metrics_connections(srv->metrics, -1);
    }
}

/* Closes connections whose request head is overdue (a slow-loris client
 * trickling bytes keeps the idle timer young but not this deadline), and
 * flushes the access log a few times a second. */
static void *watchdog_main(void *arg)
{
    api_server *srv = arg;
    pthread_mutex_lock(&srv->tick_lock);
    while (!srv->watchdog_quit) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += WATCHDOG_TICK_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&srv->tick_cond, &srv->tick_lock, &until);
        if (srv->cfg.access_log)
            fflush(srv->cfg.access_log);
        int64_t now = api__mono_ms();
        pthread_mutex_lock(&srv->conns_lock);
        for (api__conn *c = srv->conns.next; c != &srv->conns; c = c->next) {
            int64_t d = atomic_load(&c->deadline_ms);
            if (d != 0 && now > d && c->fd >= 0) {
                shutdown(c->fd, SHUT_RDWR); /* libmicrohttpd sees the end and cleans up */
                atomic_store(&c->deadline_ms, INT64_MAX);
            }
        }
        pthread_mutex_unlock(&srv->conns_lock);
    }
    pthread_mutex_unlock(&srv->tick_lock);
    return NULL;
}

/* ---------------------------------------------------------------------------
 * Start and stop.
 * ------------------------------------------------------------------------- */

/* libmicrohttpd's own messages and the acceptor's, at most 20 a second (a
 * flood of refused connections must not flood stderr). */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    api_server *srv = cls;
    int64_t sec = api__mono_ms() / 1000;
    if (atomic_exchange(&srv->log_second, sec) != sec)
        atomic_store(&srv->log_count, 0);
    if (atomic_fetch_add(&srv->log_count, 1) < 20) {
        char line[512];
        vsnprintf(line, sizeof line, fmt, ap);
        line[strcspn(line, "\n")] = '\0';
        fprintf(stderr, "sightline serve: http: %s\n", line);
    }
}

void api__server_log(api_server *srv, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    on_mhd_log(srv, fmt, ap);
    va_end(ap);
}

/* Reads a PEM file whole (bounded) for libmicrohttpd's in-memory TLS options. */
static sl_status read_pem(const char *path, const char *what, char **out, sl_error *err)
{
    sl_status rc = SL_OK;
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0;
    if (!f) {
        rc = sl_error_set_at(err, SL_EINVAL, what, -1, "cannot open %s %s: %s", what, path,
                             strerror(errno));
        goto out;
    }
    buf = malloc(TLS_FILE_MAX + 1);
    if (!buf) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory reading %s", path);
        goto out;
    }
    n = fread(buf, 1, TLS_FILE_MAX + 1, f);
    if (ferror(f) || n == 0 || n > TLS_FILE_MAX) {
        rc = sl_error_set_at(err, SL_EINVAL, what, -1,
                             "%s %s is empty, unreadable or over %d "
                             "bytes",
                             what, path, TLS_FILE_MAX);
        goto out;
    }
    buf[n] = '\0';
    *out = buf;
    buf = NULL;
out:
    if (f)
        fclose(f);
    free(buf);
    return rc;
}

/* Resolves "HOST:PORT" or "[V6]:PORT" into addr. */
static sl_status parse_listen(const char *listen, struct sockaddr_storage *addr, socklen_t *len,
                              char host_out[256], sl_error *err)
{
    sl_status rc = SL_OK;
    char host[256];
    const char *port;
    struct addrinfo hints, *res = NULL;
    const char *colon = strrchr(listen, ':');
    if (!colon || !colon[1] || (size_t)(colon - listen) >= sizeof host) {
        rc = sl_error_set_at(err, SL_EINVAL, "listen", -1, "--listen \"%.64s\" is not HOST:PORT",
                             listen);
        goto out;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    port = colon + 1;
    if (host[0] == '[') { /* [::1]:8080 */
        size_t hl = strlen(host);
        if (hl < 3 || host[hl - 1] != ']') {
            rc = sl_error_set_at(err, SL_EINVAL, "listen", -1,
                                 "--listen \"%.64s\": unbalanced [ ] around the address", listen);
            goto out;
        }
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (gai != 0 || !res) {
        rc = sl_error_set_at(err, SL_EINVAL, "listen", -1, "--listen \"%.64s\": %s", listen,
                             gai_strerror(gai));
        goto out;
    }
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    snprintf(host_out, 256, "%s", host[0] ? host : "0.0.0.0");
out:
    if (res)
        freeaddrinfo(res);
    return rc;
}

/* The metrics key of "@FILE": its first line, into key (cap bytes). */
static sl_status read_metrics_key(const char *path, char *key, size_t cap, sl_error *err)
{
    sl_status rc = SL_OK;
    char line[512];
    FILE *f = fopen(path, "rb");
    if (!f) {
        rc = sl_error_set_at(err, SL_EINVAL, "metrics-key", -1,
                             "cannot open metrics key file %s: %s", path, strerror(errno));
        goto out;
    }
    if (!fgets(line, sizeof line, f))
        line[0] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    if (strlen(line) >= cap) {
        rc = sl_error_set_at(err, SL_EINVAL, "metrics-key", -1,
                             "the metrics key in %s is longer than %zu characters", path, cap - 1);
        goto out;
    }
    memcpy(key, line, strlen(line) + 1);
out:
    gnutls_memset(line, 0, sizeof line);
    if (f)
        fclose(f);
    return rc;
}

/* What the table's bounds cannot say alone: the connection buffer holds a
 * head at max-header-bytes; GnuTLS takes the priority string (checked even
 * without TLS, so a typo shows before TLS is turned on); the metrics key is
 * read (from its file) and long enough to resist guessing.  The key is a
 * secret: no message quotes it. */
static sl_status check_settings(api_server *srv, sl_error *err)
{
    sl_status rc = SL_OK;
    api_config *cfg = &srv->cfg;
    gnutls_priority_t prio = NULL;
    const char *where = NULL;
    if (cfg->connection_memory < cfg->max_header_bytes + 4096) {
        rc = sl_error_set_at(err, SL_EINVAL, "connection-memory", -1,
                             "--connection-memory %lld is too small for --max-header-bytes %lld: "
                             "it needs at least %lld (the head plus 4 KiB for the answer)",
                             (long long)cfg->connection_memory, (long long)cfg->max_header_bytes,
                             (long long)cfg->max_header_bytes + 4096);
        goto out;
    }
    int g = gnutls_priority_init(&prio, cfg->tls_priorities, &where);
    if (g < 0) {
        size_t at =
            where && where >= cfg->tls_priorities ? (size_t)(where - cfg->tls_priorities) : 0;
        rc = sl_error_set_at(err, SL_EINVAL, "tls-priorities", (int64_t)at,
                             "--tls-priorities: GnuTLS refuses the priority string at byte %zu "
                             "(\"%.40s\"): %s",
                             at, cfg->tls_priorities + at, gnutls_strerror(g));
        goto out;
    }
    if (cfg->metrics_key[0] == '@') {
        char path[sizeof cfg->metrics_key];
        memcpy(path, cfg->metrics_key + 1, sizeof path - 1);
        path[sizeof path - 1] = '\0';
        if ((rc = read_metrics_key(path, cfg->metrics_key, sizeof cfg->metrics_key, err)) != SL_OK)
            goto out;
        if (!cfg->metrics_key[0]) {
            rc = sl_error_set_at(err, SL_EINVAL, "metrics-key", -1,
                                 "the metrics key file %s is empty", path);
            goto out;
        }
    }
    size_t klen = strlen(cfg->metrics_key);
    if (klen > 0 && (klen < 16 ||
                     strspn(cfg->metrics_key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                              "0123456789-._~+/=") != klen)) {
        rc = sl_error_set_at(err, SL_EINVAL, "metrics-key", -1,
                             "the metrics key must be 16 to %zu characters of letters, digits and "
                             "-._~+/= (a bearer token)",
                             sizeof cfg->metrics_key - 1);
        goto out;
    }
out:
    if (prio)
        gnutls_priority_deinit(prio);
    return rc;
}

static sl_status start_daemon(api_server *srv, sl_error *err)
{
    sl_status rc = SL_OK;
    struct sockaddr_storage addr;
    socklen_t addrlen = 0;
    char host[256];
    struct MHD_OptionItem opts[24];
    size_t n = 0;
    unsigned threads = (unsigned)srv->cfg.threads;
    /* Suspend/resume: API_RUN_JOB handlers run off the libmicrohttpd threads.
     * No listening socket: the acceptor (server_accept.c) owns it and hands
     * connections over, so that a stop can close it without
     * MHD_quiesce_daemon(), which races libmicrohttpd's own threads. */
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_NO_LISTEN_SOCKET;

    if ((rc = parse_listen(srv->cfg.listen, &addr, &addrlen, host, err)) != SL_OK)
        goto out;
    if (threads == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cores > 0 ? (unsigned)cores : 1;
    }
    if ((rc = api__acceptor_open(srv->cfg.listen, (struct sockaddr *)&addr, addrlen,
                                 srv->cfg.max_connections, &srv->acceptor, &srv->port, err)) !=
        SL_OK)
        goto out;
#define OPT(o, v, p) opts[n++] = (struct MHD_OptionItem){o, (intptr_t)(v), p}
    OPT(MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, srv);
    OPT(MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)api__on_uri, srv);
    OPT(MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)api__no_unescape, srv);
    OPT(MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)api__on_completed, srv);
    OPT(MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, srv);
    /* max-connections is the acceptor's.  libmicrohttpd splits its own limit
     * evenly among its threads and closes a connection handed to a thread
     * that has its share even while others have room: each thread's share is
     * the whole limit, so it never binds. */
    OPT(MHD_OPTION_CONNECTION_LIMIT,
        (uint64_t)srv->cfg.max_connections * threads > UINT_MAX
            ? UINT_MAX
            : (unsigned)(srv->cfg.max_connections * threads),
        NULL);
    /* Refused at accept (closed without an answer): libmicrohttpd counts per
     * address under its own lock. */
    OPT(MHD_OPTION_PER_IP_CONNECTION_LIMIT, srv->cfg.max_connections_per_ip, NULL);
    OPT(MHD_OPTION_CONNECTION_TIMEOUT, srv->cfg.idle_timeout_s, NULL);
    /* The connection's pool holds the request head (read in place), the
     * answer's head and the body's read buffer.  libmicrohttpd zeroes all of
     * it after each request, so an idle keep-alive connection keeps the whole
     * pool resident: this, not the request, is what an idle connection costs
     * (docs/security.md).  A head at max-header-bytes fits (checked at start);
     * one a little over it still fits and gets api__check_head()'s 431. */
    OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)srv->cfg.connection_memory, NULL);
    /* Lax: a missing Host and a space in the target are refused by
     * api__check_head() with a problem answer, not by libmicrohttpd's HTML. */
    OPT(MHD_OPTION_STRICT_FOR_CLIENT, 0, NULL);
    if (threads > 1)
        OPT(MHD_OPTION_THREAD_POOL_SIZE, threads, NULL);
    if (srv->cfg.tls_cert[0]) {
        if ((rc = read_pem(srv->cfg.tls_cert, "tls-cert", &srv->tls_cert_pem, err)) != SL_OK ||
            (rc = read_pem(srv->cfg.tls_key, "tls-key", &srv->tls_key_pem, err)) != SL_OK)
            goto out;
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            rc = sl_error_set(err, SL_EUNSUPPORTED, "this libmicrohttpd has no TLS support");
            goto out;
        }
        flags |= MHD_USE_TLS;
        OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, srv->tls_cert_pem);
        OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, srv->tls_key_pem);
        /* Checked by check_settings() first, so a bad string is named there. */
        OPT(MHD_OPTION_HTTPS_PRIORITIES, 0, srv->cfg.tls_priorities);
        if (srv->cfg.hsts_max_age_s > 0)
            snprintf(srv->hsts, sizeof srv->hsts, "max-age=%lld",
                     (long long)srv->cfg.hsts_max_age_s);
    }
    OPT(MHD_OPTION_END, 0, NULL);
#undef OPT
    srv->mhd = MHD_start_daemon(flags, 0, NULL, NULL, api__on_access, srv, MHD_OPTION_ARRAY, opts,
                                MHD_OPTION_END);
    if (!srv->mhd) {
        rc = sl_error_set_at(err, SL_EIO, "listen", -1,
                             "cannot serve on %s%s (a bad TLS certificate/key, or no memory or "
                             "threads; see the lines above)",
                             srv->cfg.listen, srv->cfg.tls_cert[0] ? " with TLS" : "");
        goto out;
    }
    if ((rc = api__acceptor_start(srv->acceptor, srv, err)) != SL_OK)
        goto out;
    snprintf(srv->url, sizeof srv->url, "%s://%s%s%s:%u", srv->cfg.tls_cert[0] ? "https" : "http",
             strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", srv->port);
out:
    return rc;
}

sl_status api_server_start(const api_config *cfg, store *st, api_server **out, sl_error *err)
{
    return api__server_start_areas(cfg, st, api__areas, out, err);
}

sl_status api__server_start_areas(const api_config *cfg, store *st, const api_area *const *areas,
                                  api_server **out, sl_error *err)
{
    sl_status rc = SL_OK;
    api_server *srv = NULL;
    const char **labels = NULL;
    unsigned char rnd[4];
    if (!st || !cfg) {
        rc = sl_error_set(err, SL_EINVAL, "api_server_start needs a configuration and a store");
        goto out;
    }
    if (!cfg->tls_cert[0] != !cfg->tls_key[0]) {
        rc = sl_error_set_at(err, SL_EINVAL, cfg->tls_cert[0] ? "tls-key" : "tls-cert", -1,
                             "--tls-cert and --tls-key go together");
        goto out;
    }
    srv = calloc(1, sizeof *srv);
    if (!srv) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory starting the server");
        goto out;
    }
    srv->cfg = *cfg;
    srv->st = st;
    srv->conns.next = srv->conns.prev = &srv->conns;
    pthread_mutex_init(&srv->conns_lock, NULL);
    pthread_mutex_init(&srv->tick_lock, NULL);
    pthread_cond_init(&srv->tick_cond, NULL);
    pthread_mutex_init(&srv->writers_lock, NULL);
    if (gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof rnd) < 0) {
        rc = sl_error_set(err, SL_EINTERNAL, "the random source failed (GnuTLS)");
        goto out;
    }
    snprintf(srv->id_prefix, sizeof srv->id_prefix, "%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
             rnd[3]);
    if ((rc = api__router_build(&srv->router, areas, err)) != SL_OK ||
        (rc = api__cursor_key_load(st, &srv->cursor_key, err)) != SL_OK)
        goto out;
    labels = calloc(srv->router.n + 1, sizeof *labels);
    if (!labels) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory starting the server");
        goto out;
    }
    for (size_t i = 0; i < srv->router.n; i++)
        labels[i] = srv->router.routes[i].label;
    if ((rc = api__metrics_new(labels, srv->router.n, &srv->metrics, err)) != SL_OK ||
        (rc = api__key_cache_new(cfg, &srv->keys, err)) != SL_OK ||
        (rc = api__uploads_new(cfg, &srv->uploads, err)) != SL_OK ||
        (rc = ingest_catalog_cache_new(&srv->catalogs, err)) != SL_OK ||
        (rc = api__jobs_new(cfg->job_threads > 0 ? (size_t)cfg->job_threads : 1,
                            cfg->job_queue > 0 ? (size_t)cfg->job_queue : 0, &srv->jobs, err)) !=
            SL_OK)
        goto out;
    if (pthread_create(&srv->watchdog, NULL, watchdog_main, srv) != 0) {
        rc = sl_error_set(err, SL_EINTERNAL, "cannot start the connection watchdog thread");
        goto out;
    }
    srv->watchdog_started = 1;
    if ((rc = check_settings(srv, err)) != SL_OK || (rc = start_daemon(srv, err)) != SL_OK)
        goto out;
    *out = srv;
    srv = NULL;
out:
    free(labels);
    if (srv)
        api_server_free(&srv);
    return rc;
}

sl_status api_server_add_metrics(api_server *srv, api_metrics_writer fn, void *ctx, sl_error *err)
{
    sl_status rc = SL_OK;
    pthread_mutex_lock(&srv->writers_lock);
    if (srv->nwriters == API__WRITERS_MAX) {
        rc = sl_error_set(err, SL_ETOOLARGE, "at most %d metrics writers", API__WRITERS_MAX);
    } else {
        srv->writers[srv->nwriters].fn = fn;
        srv->writers[srv->nwriters].ctx = ctx;
        srv->nwriters++;
    }
    pthread_mutex_unlock(&srv->writers_lock);
    return rc;
}

/* The job pool and the catalog cache, in Prometheus text format. */
static void jobs_metrics(api_server *srv, FILE *out)
{
    api__jobs_stats js;
    api__jobs_stats_get(srv->jobs, &js);
    fprintf(out,
            "# HELP sightline_jobs_running Long requests (ingest jobs) running on the job pool.\n"
            "# TYPE sightline_jobs_running gauge\n"
            "sightline_jobs_running %llu\n"
            "# HELP sightline_jobs_queued Long requests waiting for a job thread.\n"
            "# TYPE sightline_jobs_queued gauge\n"
            "sightline_jobs_queued %llu\n"
            "# HELP sightline_jobs_done_total Long requests the job pool has run.\n"
            "# TYPE sightline_jobs_done_total counter\n"
            "sightline_jobs_done_total %llu\n"
            "# HELP sightline_jobs_refused_total Long requests answered 503 because the job pool "
            "was full or stopping.\n"
            "# TYPE sightline_jobs_refused_total counter\n"
            "sightline_jobs_refused_total %llu\n"
            "# HELP sightline_catalog_compiles_total Tool catalogs compiled (once per tenant and "
            "catalog version).\n"
            "# TYPE sightline_catalog_compiles_total counter\n"
            "sightline_catalog_compiles_total %llu\n",
            (unsigned long long)js.running, (unsigned long long)js.queued,
            (unsigned long long)js.done, (unsigned long long)js.refused,
            (unsigned long long)ingest_catalog_cache_compiles(srv->catalogs));
}

sl_status api__server_metrics(api_server *srv, FILE *out, sl_error *err)
{
    sl_status rc = api__metrics_render(srv->metrics, out, err);
    if (rc == SL_OK) {
        jobs_metrics(srv, out);
        api__key_cache_metrics(srv->keys, out);
        api__uploads_metrics(srv->uploads, out);
    }
    pthread_mutex_lock(&srv->writers_lock);
    for (size_t i = 0; i < srv->nwriters && rc == SL_OK; i++)
        srv->writers[i].fn(srv->writers[i].ctx, out);
    pthread_mutex_unlock(&srv->writers_lock);
    return rc;
}

ingest_catalog_cache *api_catalogs(const api_request *req)
{
    return req->srv->catalogs;
}

api__key_cache *api__server_keys(api_server *srv)
{
    return srv->keys;
}

api__uploads *api__server_uploads(api_server *srv)
{
    return srv->uploads;
}

api__jobs *api__server_jobs(api_server *srv)
{
    return srv->jobs;
}

struct ingest_catalog_cache *api_server_catalogs(api_server *srv)
{
    return srv->catalogs;
}

uint16_t api_server_port(const api_server *srv)
{
    return srv->port;
}

const char *api_server_url(const api_server *srv)
{
    return srv->url;
}

/* Waits until no request is in flight or the monotonic clock passes until_ms. */
static void wait_in_flight(api_server *srv, int64_t until_ms)
{
    while (atomic_load(&srv->in_flight) > 0 && api__mono_ms() < until_ms) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

void api_server_stop(api_server *srv)
{
    if (!srv || srv->stopped)
        goto out;
    srv->stopped = 1;
    atomic_store(&srv->stopping, 1);
    /* Stop accepting: the listening socket closes, so a new connection is
     * refused from here (not accepted and then closed: a load balancer
     * retries a refused connection on another server whatever the method).
     * Connections already open are served until the end of the grace, each
     * answer with Connection: close. */
    api__acceptor_stop(srv->acceptor);
    if (srv->mhd) {
        wait_in_flight(srv, api__mono_ms() + srv->cfg.shutdown_grace_s * 1000);
        /* Jobs still running are waited for whatever the grace (a job may be
         * committing: cutting it short could leave its client without the
         * answer to a write that happened); queued ones are answered 503.
         * Every suspended connection is resumed by then, as
         * MHD_stop_daemon requires. */
        api__jobs_stop(srv->jobs);
        wait_in_flight(srv, api__mono_ms() + JOB_ANSWER_WAIT_MS);
        MHD_stop_daemon(srv->mhd); /* closes idle connections, joins the pool */
        srv->mhd = NULL;
    }
    api__jobs_stop(srv->jobs);
    if (srv->watchdog_started) {
        pthread_mutex_lock(&srv->tick_lock);
        srv->watchdog_quit = 1;
        pthread_cond_signal(&srv->tick_cond);
        pthread_mutex_unlock(&srv->tick_lock);
        pthread_join(srv->watchdog, NULL);
        srv->watchdog_started = 0;
    }
    if (srv->cfg.access_log)
        fflush(srv->cfg.access_log);
out:
    return;
}

void api_server_free(api_server **srv)
{
    api_server *s = srv ? *srv : NULL;
    if (!s)
        goto out;
    api_server_stop(s);
    api__acceptor_free(&s->acceptor); /* after the daemon: its closes count */
    api__router_free(&s->router);
    api__metrics_free(&s->metrics);
    api__key_cache_free(&s->keys);
    api__uploads_free(&s->uploads);
    api__jobs_free(&s->jobs);
    ingest_catalog_cache_free(&s->catalogs);
    if (s->tls_key_pem)
        gnutls_memset(s->tls_key_pem, 0, strlen(s->tls_key_pem));
    gnutls_memset(&s->cursor_key, 0, sizeof s->cursor_key);
    free(s->tls_key_pem);
    free(s->tls_cert_pem);
    gnutls_memset(s->cfg.metrics_key, 0, sizeof s->cfg.metrics_key);
    pthread_mutex_destroy(&s->conns_lock);
    pthread_mutex_destroy(&s->tick_lock);
    pthread_cond_destroy(&s->tick_cond);
    pthread_mutex_destroy(&s->writers_lock);
    free(s);
    *srv = NULL;
out:
    return;
}
