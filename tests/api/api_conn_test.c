/* api_conn_test.c -- connections against the real server: 10,000 idle ones
 * (the limit holds, others answered; `many-idle`, its own ctest entry),
 * what an idle connection costs in memory, the per-address limit,
 * slow-loris heads and silent connections cut, graceful shutdown finishing
 * an in-flight request, TLS (versions, ciphers, HSTS). */
#include "tests/support/support.h"
#include "tests/check.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define IDLE  10000
#define LIMIT 10100
#define EXTRA 300

static char url[256];

static const char *u(const support_server *s, const char *path)
{
    snprintf(url, sizeof url, "%s%s", s->url, path);
    return url;
}

/* One GET on an open keep-alive connection; returns the status. */
static int get_on(int fd, const char *path)
{
    char req[256], reply[4096];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    if (support_write_all(fd, req, strlen(req)) != 0)
        return -1;
    return support_read_response(fd, reply, sizeof reply, 10000);
}

/* Whether the server closed fd within ms (EOF or reset). */
static int closed_within(int fd, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    char b[64];
    if (poll(&p, 1, ms) <= 0)
        return 0;
    ssize_t r = recv(fd, b, sizeof b, MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno == ECONNRESET);
}

/* Open connections the server reports, asked on fd. */
static long open_connections(int fd)
{
    static char reply[1 << 16];
    const char *req = "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n";
    if (support_write_all(fd, req, strlen(req)) != 0 ||
        support_read_response(fd, reply, sizeof reply, 10000) != 200)
        return -1;
    const char *g = strstr(reply, "\nsightline_http_open_connections ");
    return g ? atol(g + 33) : -1;
}

/* Sends a GET on each of fds[0..n) and counts answers within ms; answered[i]
 * marks which (they stay open: closing one would free a slot for another). */
static int answered_within(const int *fds, int n, int ms, char *answered_flags)
{
    const char *req = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    struct pollfd *p = calloc((size_t)n, sizeof *p);
    int answered = 0;
    for (int i = 0; i < n; i++) {
        support_write_all(fds[i], req, strlen(req));
        p[i].fd = fds[i];
        p[i].events = POLLIN;
    }
    long until = support_now_ms() + ms;
    while (answered < n && support_now_ms() < until) {
        if (poll(p, (nfds_t)n, (int)(until - support_now_ms())) <= 0)
            break;
        for (int i = 0; i < n; i++)
            if (p[i].revents) {
                char buf[512];
                if (recv(p[i].fd, buf, sizeof buf, 0) > 0 && !strncmp(buf, "HTTP/1.1 200", 12)) {
                    answered++;
                    answered_flags[i] = 1;
                }
                p[i].fd = -1; /* counted (or dead) */
            }
    }
    free(p);
    return answered;
}

static void test_many_idle(void)
{
    support_server s;
    struct rlimit rl;
    char limit[16];
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < IDLE + EXTRA + 200) {
        /* Its own ctest entry (api_conn_test_many_idle): reported skipped. */
        fprintf(stderr,
                "skipped: %d idle connections need an open-files hard limit of %d, this one is "
                "%llu (ulimit -Hn)\n",
                IDLE, IDLE + EXTRA + 200, (unsigned long long)rl.rlim_max);
        exit(77);
    }
    rl.rlim_cur = IDLE + EXTRA + 200;
    REQUIRE(setrlimit(RLIMIT_NOFILE, &rl) == 0);
    snprintf(limit, sizeof limit, "%d", LIMIT);
    REQUIRE(support_server_init(&s, NULL, NULL) == 0);
    /* Generous deadlines: this test is about the limit, not the timeouts. */
    REQUIRE(support_server_start(&s, "--max-connections", limit, "--max-connections-per-ip", "0",
                                 "--header-timeout", "600", "--idle-timeout", "600",
                                 (char *)NULL) == 0);
    long t0 = support_now_ms();

    int keep = support_connect(s.port);
    REQUIRE(keep >= 0);
    CHECK_INT(get_on(keep, "/healthz"), 200);

    int *fds = malloc(sizeof(int) * (IDLE + EXTRA));
    int opened = 0;
    for (int i = 0; i < IDLE; i++) {
        fds[i] = support_connect(s.port);
        opened += fds[i] >= 0;
    }
    REQUIRE(opened == IDLE);
    /* connect() returns once the kernel queued the connection; wait until the
     * server has taken them all. */
    long seen = 0;
    for (int i = 0; i < 200 && seen < IDLE + 1; i++) {
        seen = open_connections(keep);
        if (seen < IDLE + 1)
            support_sleep_ms(100);
    }
    CHECK_INT(seen, IDLE + 1);
    fprintf(stderr, "%d idle connections open after %ld ms\n", IDLE, support_now_ms() - t0);
    /* With 10,000 idle connections open, others are answered: the busy one
     * and a new one. */
    CHECK_INT(get_on(keep, "/healthz"), 200);
    int fresh = support_connect(s.port);
    CHECK(fresh >= 0 && get_on(fresh, "/healthz") == 200);
    if (fresh >= 0)
        close(fresh);

    /* Past the limit: the server holds it (connections wait unaccepted in the
     * kernel's queue) and keeps answering the ones it has. */
    for (int i = IDLE; i < IDLE + EXTRA; i++) {
        fds[i] = support_connect(s.port);
        REQUIRE(fds[i] >= 0);
    }
    char served_flags[EXTRA] = {0};
    int served = answered_within(fds + IDLE, EXTRA, 1500, served_flags);
    long open = open_connections(keep);
    fprintf(stderr, "at the limit: %ld open, %d of %d late connections served (%ld ms in)\n", open,
            served, EXTRA, support_now_ms() - t0);
    CHECK(open > 0 && open <= LIMIT);
    CHECK(served <= LIMIT - IDLE - 1);
    CHECK_INT(get_on(keep, "/healthz"), 200);

    /* Idle ones leave: the waiting connections are taken and answered. */
    for (int i = 0; i < IDLE / 2; i++)
        close(fds[i]);
    int late = 0;
    for (int i = IDLE; i < IDLE + EXTRA; i++) {
        char reply[1024];
        late += !served_flags[i - IDLE] &&
                support_read_response(fds[i], reply, sizeof reply, 10000) == 200;
    }
    CHECK_INT(late + served, EXTRA);
    for (int i = IDLE / 2; i < IDLE + EXTRA; i++)
        close(fds[i]);
    free(fds);
    close(keep);
    CHECK_INT(support_server_stop(&s), 0);
    support_server_cleanup(&s);
}

/* The server's resident memory, once it has stopped moving (two readings
 * 100 ms apart agree, 3 s at most): libmicrohttpd resets a connection's
 * buffer just after its answer went out. */
static long settled_rss_kb(int pid)
{
    long prev = -1, now = support_proc_kb(pid, "VmRSS:");
    for (int i = 0; i < 30 && now != prev; i++) {
        support_sleep_ms(100);
        prev = now;
        now = support_proc_kb(pid, "VmRSS:");
    }
    return now;
}

/* Regression (issue 9, finding 5): an idle keep-alive connection kept
 * ~48 KB resident (libmicrohttpd zeroes its whole buffer after each
 * request, and the buffer was twice max-header-bytes plus 32 KB), so the
 * connection limit let anyone who can connect hold ~0.8 GB.  The buffer is
 * connection-memory (16 KB) now: measured ~16.5 KB per idle connection in a
 * release build; this sanitizer build adds its own bookkeeping, so the bound
 * here is 32 KB (docs/security.md has the figures). */
#define MEM_CONNS   120 /* under the per-address limit (128) */
#define MEM_PER_MAX 32  /* kB per idle connection */
static void test_idle_memory(void)
{
    support_server s;
    int fds[MEM_CONNS];
    /* ASan's quarantine keeps freed blocks resident: every request would look
     * like connection memory.  Off in the server (no effect without ASan). */
    char asan[512];
    const char *prior = getenv("ASAN_OPTIONS");
    snprintf(asan, sizeof asan, "%s%squarantine_size_mb=0:thread_local_quarantine_size_kb=0",
             prior ? prior : "", prior && prior[0] ? ":" : "");
    setenv("ASAN_OPTIONS", asan, 1);
    REQUIRE(support_server_init(&s, NULL, NULL) == 0);
    REQUIRE(support_server_start(&s, "--access-log", "off", "--no-listener", "--header-timeout",
                                 "600", "--idle-timeout", "600", (char *)NULL) == 0);
    if (prior)
        setenv("ASAN_OPTIONS", prior, 1);
    else
        unsetenv("ASAN_OPTIONS");
    /* Warm up: the threads' first requests allocate what every later one reuses. */
    for (int i = 0; i < 20; i++) {
        int fd = support_connect(s.port);
        REQUIRE(fd >= 0);
        CHECK_INT(get_on(fd, "/healthz"), 200);
        close(fd);
    }
    long before = settled_rss_kb(s.pid);
    for (int i = 0; i < MEM_CONNS; i++) {
        fds[i] = support_connect(s.port);
        REQUIRE(fds[i] >= 0);
        CHECK_INT(get_on(fds[i], "/healthz"), 200); /* one request, then idle, kept alive */
    }
    long after = settled_rss_kb(s.pid);
    double per = (double)(after - before) / MEM_CONNS;
    fprintf(stderr, "%d idle keep-alive connections: RSS %ld -> %ld kB, %.1f kB each\n", MEM_CONNS,
            before, after, per);
    CHECK(before > 0 && after > 0);
    CHECK(per < MEM_PER_MAX);
    for (int i = 0; i < MEM_CONNS; i++)
        close(fds[i]);
    CHECK_INT(support_server_stop(&s), 0);
    support_server_cleanup(&s);
}

/* max-connections-per-ip: the (limit+1)th connection from one address is
 * closed at once, without an answer; another address is served; a slot
 * freed is taken again. */
static void test_per_ip_limit(void)
{
    support_server s;
    int fds[4];
    REQUIRE(support_server_init(&s, NULL, NULL) == 0);
    REQUIRE(support_server_start(&s, "--max-connections-per-ip", "4", "--access-log", "off",
                                 (char *)NULL) == 0);
    for (int i = 0; i < 4; i++) {
        fds[i] = support_connect(s.port);
        REQUIRE(fds[i] >= 0);
        CHECK_INT(get_on(fds[i], "/healthz"), 200);
    }
    int over = support_connect(s.port);
    CHECK(over < 0 || closed_within(over, 5000));
    if (over >= 0)
        close(over);
    int other = support_connect_from(s.port, "127.0.0.2");
    CHECK(other >= 0 && get_on(other, "/healthz") == 200);
    if (other >= 0)
        close(other);
    for (int i = 0; i < 4; i++) /* still served */
        CHECK_INT(get_on(fds[i], "/healthz"), 200);
    /* One leaves: once the server has seen it go, a new one is served. */
    close(fds[0]);
    int served = 0;
    for (long until = support_now_ms() + 10000; !served && support_now_ms() < until;) {
        int fd = support_connect(s.port);
        served = fd >= 0 && get_on(fd, "/healthz") == 200;
        if (fd >= 0)
            close(fd);
        if (!served)
            support_sleep_ms(50);
    }
    CHECK(served);
    for (int i = 1; i < 4; i++)
        close(fds[i]);
    CHECK_INT(support_server_stop(&s), 0);
    support_server_cleanup(&s);
}

/* header-timeout and idle-timeout of 4 s.  Each cut is checked against the
 * limit from below (the server cannot cut sooner; 0.5 s for the timer's
 * step) and against a bound far over it from above (a loaded machine only
 * makes it later); the keep-alive gaps leave 2.5 s of margin each. */
#define SLOW_LIMIT_MS 4000
static void test_slow_heads(void)
{
    support_server s;
    REQUIRE(support_server_init(&s, NULL, NULL) == 0);
    REQUIRE(support_server_start(&s, "--header-timeout", "4", "--idle-timeout", "4",
                                 (char *)NULL) == 0);
    /* Slow-loris: a byte every 250 ms keeps the idle timer young, but the head
     * must be whole within 4 s of connecting (sent whole: ~100 s). */
    char head[512];
    int n = snprintf(head, sizeof head, "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ");
    memset(head + n, 'a', 400 - (size_t)n);
    memcpy(head + 400, "\r\n\r\n", 5);
    int fd = support_connect(s.port);
    REQUIRE(fd >= 0);
    long start = support_now_ms(), cut = -1;
    for (size_t i = 0; i < strlen(head) && cut < 0; i++) {
        if (support_write_all(fd, head + i, 1) != 0 || closed_within(fd, 250))
            cut = support_now_ms() - start;
    }
    fprintf(stderr, "slow head cut after %ld ms\n", cut);
    CHECK(cut > 0); /* cut before the head was complete */
    CHECK(cut >= SLOW_LIMIT_MS - 500 && cut < 60000);
    close(fd);

    /* A silent connection is closed by the idle timeout. */
    fd = support_connect(s.port);
    REQUIRE(fd >= 0);
    start = support_now_ms();
    CHECK(closed_within(fd, 60000));
    CHECK(support_now_ms() - start >= SLOW_LIMIT_MS - 500);
    close(fd);

    /* A keep-alive connection between requests counts from its last answer:
     * 4 gaps of 1.5 s, each under the limits, 6 s in all. */
    fd = support_connect(s.port);
    REQUIRE(fd >= 0);
    for (int i = 0; i < 4; i++) {
        CHECK_INT(get_on(fd, "/healthz"), 200);
        support_sleep_ms(1500);
    }
    CHECK_INT(get_on(fd, "/healthz"), 200);
    close(fd);
    CHECK_INT(support_server_stop(&s), 0);
    support_server_cleanup(&s);
}

/* SIGTERM while a request is half uploaded: the listener closes, the request
 * still completes with its 201, then the process exits 0. */
static void test_graceful_shutdown(void)
{
    support_server s;
    char admin[128], head[512], reply[4096], out[4096];
    const char *body = "{\"role\":\"viewer\",\"name\":\"made during shutdown\"}";
    REQUIRE(support_server_init(&s, NULL, NULL) == 0);
    REQUIRE(support_server_start(&s, "--shutdown-grace", "20", (char *)NULL) == 0);
    REQUIRE(support_tenant(s.store, "acme", "hospital") == 0 &&
            support_key(s.store, "acme", "admin", admin) == 0);
    snprintf(head, sizeof head,
             "POST /v1/keys HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
             admin, strlen(body));
    int fd = support_connect(s.port);
    REQUIRE(fd >= 0);
    CHECK_INT(support_write_all(fd, head, strlen(head)), 0);
    CHECK_INT(support_write_all(fd, body, 10), 0);
    /* Wait until the server counts it in flight (the scrape itself is one). */
    int probe = support_connect(s.port);
    REQUIRE(probe >= 0);
    long in_flight = 0;
    for (int i = 0; i < 100 && in_flight < 2; i++) {
        static char page[1 << 16];
        const char *req = "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n";
        support_write_all(probe, req, strlen(req));
        if (support_read_response(probe, page, sizeof page, 10000) == 200) {
            const char *g = strstr(page, "\nsightline_http_in_flight_requests ");
            in_flight = g ? atol(g + 35) : 0;
        }
        if (in_flight < 2)
            support_sleep_ms(50);
    }
    close(probe);
    CHECK_INT(in_flight, 2);
    kill(s.pid, SIGTERM);
    /* No new connection is accepted once it has stopped listening: asked
     * until then (10 s at most; a loaded machine only makes it later) while
     * the request in flight waits. */
    int refused = 0;
    for (long until = support_now_ms() + 10000; !refused && support_now_ms() < until;) {
        int late = support_connect(s.port);
        refused = late < 0 || closed_within(late, 1000);
        if (late >= 0)
            close(late);
        if (!refused)
            support_sleep_ms(50);
    }
    CHECK(refused);
    CHECK_INT(support_write_all(fd, body + 10, strlen(body) - 10), 0);
    CHECK_INT(support_read_response(fd, reply, sizeof reply, 10000), 201);
    CHECK(strcasestr(reply, "Connection: close") != NULL);
    close(fd);
    CHECK_INT(support_server_stop(&s), 0); /* already stopping: waits for its exit */
    /* The key made during shutdown was committed. */
    CHECK_INT(support_cli(out, sizeof out, "keys", "list", "--tenant", "acme", "--store", s.store,
                          (char *)NULL),
              0);
    CHECK(strstr(out, "made during shutdown") != NULL);
    support_server_cleanup(&s);
}

static void test_tls(void)
{
    support_server s;
    char cmd[1024], cert[256], key[256], reply[512];
    REQUIRE(support_server_init(&s, NULL, NULL) == 0);
    snprintf(cert, sizeof cert, "%s/cert.pem", s.dir);
    snprintf(key, sizeof key, "%s/key.pem", s.dir);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
             "-subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 -keyout %s -out %s "
             ">/dev/null 2>&1",
             key, cert);
    REQUIRE(system(cmd) == 0);
    REQUIRE(support_server_start(&s, "--tls-cert", cert, "--tls-key", key, (char *)NULL) == 0);
    CHECK(!strncmp(s.url, "https://", 8));

    CURL *c = curl_easy_init();
    REQUIRE(c != NULL);
    long status = 0;
    curl_easy_setopt(c, CURLOPT_URL, u(&s, "/healthz"));
    curl_easy_setopt(c, CURLOPT_CAINFO, cert);
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    CHECK_INT(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    CHECK_INT(status, 200);
    /* Verification is real: without the certificate the client refuses. */
    curl_easy_setopt(c, CURLOPT_CAINFO, "/dev/null");
    curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
    CHECK(curl_easy_perform(c) != CURLE_OK);
    curl_easy_cleanup(c);
    /* Plain HTTP on the TLS port gets no HTTP answer. */
    const char *plain = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    CHECK(support_raw(s.port, plain, strlen(plain), reply, sizeof reply, 2000) >= 0);
    CHECK(strncmp(reply, "HTTP/1.1 200", 12) != 0);

    /* Regression (issue 9, finding 18): TLS 1.0 and 1.1 handshakes completed
     * (ECDHE-ECDSA-AES256-SHA over TLS 1.0).  Only 1.2 and 1.3 now, with AEAD
     * ciphers: a CBC suite with a SHA-1 MAC is refused over 1.2 too.
     * (Debian's openssl offers TLS 1.0/1.1 only at security level 0.) */
    static const struct {
        const char *opts, *proto;
    } hs[] = {
        {"-tls1 -cipher 'DEFAULT@SECLEVEL=0'", NULL},
        {"-tls1_1 -cipher 'DEFAULT@SECLEVEL=0'", NULL},
        {"-tls1_2 -cipher 'ECDHE-ECDSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA@SECLEVEL=0'", NULL},
        {"-tls1_2", "TLSv1.2"},
        {"-tls1_3", "TLSv1.3"},
    };
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) {
        char out_path[300], want[64];
        size_t len = 0;
        snprintf(out_path, sizeof out_path, "%s/s_client.out", s.dir);
        snprintf(cmd, sizeof cmd,
                 "timeout 20 openssl s_client -connect 127.0.0.1:%d %s </dev/null >%s 2>&1", s.port,
                 hs[i].opts, out_path);
        int rc = system(cmd);
        char *out = support_read_file(out_path, &len);
        REQUIRE(out != NULL);
        int done = strstr(out, "New, TLSv1") != NULL;
        if (hs[i].proto) {
            snprintf(want, sizeof want, "New, %s, Cipher is ", hs[i].proto);
            CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 0 && strstr(out, want) != NULL);
        } else {
            CHECK(!done && !(WIFEXITED(rc) && WEXITSTATUS(rc) == 0));
        }
        if (done != (hs[i].proto != NULL)) {
            const char *line = strstr(out, "New, ");
            fprintf(stderr, "openssl s_client %s: exit %d, %.60s\n", hs[i].opts,
                    WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, line ? line : "no session line");
        }
        free(out);
    }

    /* HTTPS answers carry HSTS (a year by default). */
    char *hdrs = NULL;
    size_t hlen = 0;
    FILE *hf = open_memstream(&hdrs, &hlen);
    REQUIRE(hf != NULL);
    c = curl_easy_init();
    REQUIRE(c != NULL);
    curl_easy_setopt(c, CURLOPT_URL, u(&s, "/healthz"));
    curl_easy_setopt(c, CURLOPT_CAINFO, cert);
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, hf);
    CHECK_INT(curl_easy_perform(c), CURLE_OK);
    curl_easy_cleanup(c);
    fclose(hf);
    CHECK(strcasestr(hdrs, "\r\nStrict-Transport-Security: max-age=31536000\r\n") != NULL);
    free(hdrs);
    /* ...and plain HTTP answers do not (the header means nothing there). */
    support_server http;
    support_resp r;
    char hsts[64];
    REQUIRE(support_server_init(&http, NULL, NULL) == 0);
    REQUIRE(support_server_start(&http, "--access-log", "off", (char *)NULL) == 0);
    REQUIRE(support_http("GET", u(&http, "/healthz"), NULL, NULL, 0, NULL, &r) == 0);
    CHECK_INT(r.status, 200);
    CHECK(support_header(&r, "Strict-Transport-Security", hsts, sizeof hsts) != 0);
    support_resp_free(&r);
    CHECK_INT(support_server_stop(&http), 0);
    support_server_cleanup(&http);

    /* A priority string GnuTLS refuses stops the start, naming it. */
    support_server badp;
    REQUIRE(support_server_init(&badp, NULL, NULL) == 0);
    CHECK(support_server_start(&badp, "--tls-cert", cert, "--tls-key", key, "--tls-priorities",
                               "NORMAL:+VERS-TLS9.9", (char *)NULL) != 0);
    CHECK_INT(badp.exit_code, 1);
    size_t elen = 0;
    char *errs = support_read_file(badp.err_path, &elen);
    CHECK(errs && strstr(errs, "--tls-priorities: GnuTLS refuses") && strstr(errs, "+VERS-TLS9.9"));
    free(errs);
    support_server_cleanup(&badp);

    /* A key without its certificate is refused at start. */
    support_server bad;
    REQUIRE(support_server_init(&bad, NULL, NULL) == 0);
    CHECK(support_server_start(&bad, "--tls-key", key, (char *)NULL) != 0);
    CHECK_INT(bad.exit_code, 2);
    errs = support_read_file(bad.err_path, &elen);
    CHECK(errs && strstr(errs, "--tls-cert and --tls-key go together"));
    free(errs);
    support_server_cleanup(&bad);

    CHECK_INT(support_server_stop(&s), 0);
    support_server_cleanup(&s);
}

/* Without an argument: every part but the 10,000 connections, which is
 * its own ctest entry (`api_conn_test many-idle`, skipped -- exit 77 --
 * where the open-files limit is too low); with one, the parts it names. */
int main(int argc, char **argv)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (argc < 2 || strstr(argv[1], "shutdown"))
        test_graceful_shutdown();
    if (argc < 2 || strstr(argv[1], "slow"))
        test_slow_heads();
    if (argc < 2 || strstr(argv[1], "tls"))
        test_tls();
    if (argc < 2 || strstr(argv[1], "memory"))
        test_idle_memory();
    if (argc < 2 || strstr(argv[1], "per-ip"))
        test_per_ip_limit();
    if (argc >= 2 && strstr(argv[1], "many-idle"))
        test_many_idle();
    curl_global_cleanup();
    return check_finish();
}
