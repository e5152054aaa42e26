/* api_stop_test.c -- `sightline serve` stopped by SIGTERM, and the listening
 * socket the server owns.
 *
 * Regression (found while fixing issues 9 and 10): a stop under load
 * sometimes aborted in libmicrohttpd (exit 134, "Fatal error in GNU
 * libmicrohttpd daemon.c:5531: Failed to remove listen FD from epoll set.";
 * about one run in 25 of api_ingest_spool_test).  The stop called
 * MHD_quiesce_daemon(), which in 0.9.75 marks each epoll thread quiesced and
 * then removes the listening socket from that thread's epoll set without a
 * lock, while the thread, woken by a connection, removes it too on seeing the
 * mark: the second removal fails and libmicrohttpd panics.  The window is a
 * few instructions (it opens when the stopping thread is preempted there), so
 * the test widens it: stop_race_hook.c, preloaded into the server, holds the
 * main thread's removal of a listening socket from an epoll set for 50 ms,
 * while four client threads keep connecting.  With MHD_quiesce_daemon nearly
 * every stop aborts; the server now owns its listening socket
 * (api/server_accept.c) and never quiesces libmicrohttpd, so the hook never
 * fires.  `stop_under_load` repeats start / load / SIGTERM (20 stops, 60 s at
 * most) and requires every stop to exit 0.
 *
 * What a stop promises (api/api.h, `promises`): the request in flight
 * finishes (201, Connection: close, committed); a request on a connection
 * already open is answered, with Connection: close; a new connection is
 * refused (ECONNREFUSED -- not accepted and then closed, which a load
 * balancer could not retry safely); the process exits 0.
 *
 * max-connections across libmicrohttpd's threads (`limit`): with four threads
 * and a limit of 6, six connections are served, two more wait unanswered in
 * the kernel's queue (none is accepted and closed), and are answered once two
 * of the six close. */
#include "tests/support/support.h"
#include "tests/check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef STOP_RACE_HOOK
#error "STOP_RACE_HOOK (the hook library's path) comes from tests/api/CMakeLists.txt"
#endif

#define CLIENTS    4
#define STOPS      20
#define BUDGET_MS  60000
#define MIN_STOPS  5
#define WAIT_MS    20000 /* a hang guard, not a measurement */
#define HEALTHZ    "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
#define LOAD_REPLY 4096

/* ---------------------------------------------------------------------------
 * Clients: a new connection per request, to the port in `port_now` (0: wait).
 * ------------------------------------------------------------------------- */
static _Atomic int port_now;
static _Atomic long answered;
static _Atomic int clients_quit;

static void *client_main(void *arg)
{
    char reply[LOAD_REPLY];
    (void)arg;
    while (!atomic_load(&clients_quit)) {
        int port = atomic_load(&port_now);
        int fd = port ? support_connect(port) : -1;
        if (fd < 0) { /* no server yet, or refused: it is stopping */
            support_sleep_ms(1);
            continue;
        }
        if (support_write_all(fd, HEALTHZ, strlen(HEALTHZ)) == 0 &&
            support_read_response(fd, reply, sizeof reply, 2000) == 200)
            atomic_fetch_add(&answered, 1);
        close(fd);
    }
    return NULL;
}

/* Appends opt to the environment variable name (":"-separated). */
static void env_append(const char *name, const char *opt)
{
    const char *old = getenv(name);
    char buf[1024];
    snprintf(buf, sizeof buf, "%s%s%s", old && old[0] ? old : "", old && old[0] ? ":" : "", opt);
    setenv(name, buf, 1);
}

static void test_stop_under_load(void)
{
    pthread_t th[CLIENTS];
    support_server s;
    int stops = 0, aborted = 0, failed = 0;
    char status[128];
    REQUIRE(support_server_init(&s, NULL, NULL) == 0);
    for (int i = 0; i < CLIENTS; i++)
        REQUIRE(pthread_create(&th[i], NULL, client_main, NULL) == 0);
    /* The hook goes to the server only (the variables are read at its exec).
     * AddressSanitizer wants to be the first library loaded: told not to
     * mind. */
    env_append("ASAN_OPTIONS", "verify_asan_link_order=0");
    long until = support_now_ms() + BUDGET_MS;
    while (stops < STOPS && support_now_ms() < until) {
        setenv("LD_PRELOAD", STOP_RACE_HOOK, 1);
        int started = support_server_start(&s, "--threads", "4", "--access-log", "off",
                                           "--no-listener", (char *)NULL);
        unsetenv("LD_PRELOAD");
        REQUIRE(started == 0);
        if (stops == 0) {
            size_t len = 0;
            char *err = support_read_file(s.err_path, &len);
            REQUIRE(err && strstr(err, "stop_race_hook: loaded") != NULL);
            free(err);
        }
        /* Load first, then the stop while the clients go on connecting. */
        long base = atomic_load(&answered);
        atomic_store(&port_now, s.port);
        for (long t = support_now_ms() + WAIT_MS;
             atomic_load(&answered) < base + 30 && support_now_ms() < t;)
            support_sleep_ms(1);
        REQUIRE(atomic_load(&answered) >= base + 30);
        kill(s.pid, SIGTERM);
        int st = 0;
        REQUIRE(support_wait_status(s.pid, WAIT_MS, 0, &st) == 0);
        atomic_store(&port_now, 0);
        s.pid = -1;
        stops++;
        if (WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT)
            aborted++;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            failed++;
            fprintf(stderr, "stop %d: the server %s; its stderr:\n", stops,
                    support_status_str(st, status, sizeof status));
            support_print_tail(s.err_path, 5);
        }
        REQUIRE(truncate(s.err_path, 0) == 0);
    }
    atomic_store(&clients_quit, 1);
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(th[i], NULL);
    fprintf(stderr, "stop_under_load: %d stops, %d aborted, %d other failures, %ld answers\n",
            stops, aborted, failed - aborted, atomic_load(&answered));
    CHECK(stops >= MIN_STOPS);
    CHECK_INT(aborted, 0);
    CHECK_INT(failed, 0);
    support_server_cleanup(&s);
}

/* ---------------------------------------------------------------------------
 * What a stop promises.
 * ------------------------------------------------------------------------- */

/* connect() to 127.0.0.1:port: the socket, or -1 with *err = errno. */
static int connect_errno(int port, int *err)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *err = 0;
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        *err = errno;
        close(fd);
        fd = -1;
    }
    return fd;
}

/* The server's gauge `name` asked on a fresh connection, -1 if not answered. */
static long gauge(int port, const char *name)
{
    static char page[1 << 16];
    char needle[128];
    long v = -1;
    int fd = support_connect(port);
    const char *req = "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n";
    snprintf(needle, sizeof needle, "\n%s ", name);
    if (fd >= 0 && support_write_all(fd, req, strlen(req)) == 0 &&
        support_read_response(fd, page, sizeof page, WAIT_MS) == 200) {
        const char *g = strstr(page, needle);
        v = g ? atol(g + strlen(needle)) : -1;
    }
    if (fd >= 0)
        close(fd);
    return v;
}

static void test_stop_promises(void)
{
    support_server s;
    char admin[128], head[512], reply[4096], out[4096];
    const char *body = "{\"role\":\"viewer\",\"name\":\"made while stopping\"}";
    REQUIRE(support_server_init(&s, NULL, NULL) == 0);
    REQUIRE(support_server_start(&s, "--shutdown-grace", "30", "--threads", "2", (char *)NULL) ==
            0);
    REQUIRE(support_tenant(s.store, "acme", "hospital") == 0 &&
            support_key(s.store, "acme", "admin", admin) == 0);
    /* A request half sent: in flight across the stop. */
    snprintf(head, sizeof head,
             "POST /v1/keys HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
             admin, strlen(body));
    int busy = support_connect(s.port);
    REQUIRE(busy >= 0);
    REQUIRE(support_write_all(busy, head, strlen(head)) == 0 &&
            support_write_all(busy, body, 10) == 0);
    /* A kept-alive connection, answered once before the stop. */
    int idle = support_connect(s.port);
    REQUIRE(idle >= 0);
    REQUIRE(support_write_all(idle, HEALTHZ, strlen(HEALTHZ)) == 0);
    CHECK_INT(support_read_response(idle, reply, sizeof reply, WAIT_MS), 200);
    long in_flight = 0; /* the POST, and the scrape asking */
    for (long t = support_now_ms() + WAIT_MS; in_flight != 2 && support_now_ms() < t;)
        if ((in_flight = gauge(s.port, "sightline_http_in_flight_requests")) != 2)
            support_sleep_ms(20);
    REQUIRE(in_flight == 2);

    kill(s.pid, SIGTERM);
    /* New connections: taken until the server has stopped listening (it
     * must first see the signal), refused from then on -- by the kernel, at
     * connect, not accepted and then closed. */
    int refused = 0, e = 0, taken_then_closed = 0;
    for (long t = support_now_ms() + WAIT_MS; !refused && support_now_ms() < t;) {
        int fd = connect_errno(s.port, &e);
        if (fd < 0) {
            refused = 1;
        } else {
            /* Before the stop closed the socket: served, or (queued in the
             * kernel when it closed) reset unanswered. */
            if (support_write_all(fd, HEALTHZ, strlen(HEALTHZ)) != 0 ||
                support_read_response(fd, reply, sizeof reply, WAIT_MS) != 200)
                taken_then_closed++;
            close(fd);
            support_sleep_ms(5);
        }
    }
    CHECK(refused);
    CHECK_INT(e, ECONNREFUSED);
    CHECK(taken_then_closed <= 1); /* at most the one queued as the socket closed */
    for (int i = 0; i < 5; i++) {
        int fd = connect_errno(s.port, &e);
        CHECK(fd < 0 && e == ECONNREFUSED);
        if (fd >= 0)
            close(fd);
    }
    /* The grace goes on while the POST is in flight: the open connection
     * is still answered, and told to close. */
    CHECK_INT(support_write_all(idle, HEALTHZ, strlen(HEALTHZ)), 0);
    CHECK_INT(support_read_response(idle, reply, sizeof reply, WAIT_MS), 200);
    CHECK(strcasestr(reply, "Connection: close") != NULL);
    CHECK_INT(support_wait_closed(idle, WAIT_MS), 1);
    close(idle);
    /* The request in flight finishes and is committed. */
    CHECK_INT(support_write_all(busy, body + 10, strlen(body) - 10), 0);
    CHECK_INT(support_read_response(busy, reply, sizeof reply, WAIT_MS), 201);
    CHECK(strcasestr(reply, "Connection: close") != NULL);
    close(busy);
    CHECK_INT(support_server_stop(&s), 0); /* stopping already: waits for its exit 0 */
    CHECK_INT(support_cli(out, sizeof out, "keys", "list", "--tenant", "acme", "--store", s.store,
                          (char *)NULL),
              0);
    CHECK(strstr(out, "made while stopping") != NULL);
    support_server_cleanup(&s);
}

/* ---------------------------------------------------------------------------
 * max-connections across threads.
 * ------------------------------------------------------------------------- */
#define LIMIT   6
#define WAITING 2

static void test_limit(void)
{
    support_server s;
    int fds[LIMIT + WAITING];
    char reply[4096];
    REQUIRE(support_server_init(&s, NULL, NULL) == 0);
    REQUIRE(support_server_start(&s, "--threads", "4", "--max-connections", "6",
                                 "--max-connections-per-ip", "0", "--access-log", "off",
                                 (char *)NULL) == 0);
    for (int i = 0; i < LIMIT; i++) {
        fds[i] = support_connect(s.port);
        REQUIRE(fds[i] >= 0);
        REQUIRE(support_write_all(fds[i], HEALTHZ, strlen(HEALTHZ)) == 0);
        CHECK_INT(support_read_response(fds[i], reply, sizeof reply, WAIT_MS), 200);
    }
    /* At the limit: more connections wait in the kernel's queue, open and
     * unanswered (a connection accepted and closed would read as closed). */
    for (int i = LIMIT; i < LIMIT + WAITING; i++) {
        fds[i] = support_connect(s.port);
        REQUIRE(fds[i] >= 0);
        REQUIRE(support_write_all(fds[i], HEALTHZ, strlen(HEALTHZ)) == 0);
    }
    for (int i = LIMIT; i < LIMIT + WAITING; i++)
        CHECK_INT(support_wait_closed(fds[i], 1000), 0);
    /* The served ones go on being served. */
    REQUIRE(support_write_all(fds[0], HEALTHZ, strlen(HEALTHZ)) == 0);
    CHECK_INT(support_read_response(fds[0], reply, sizeof reply, WAIT_MS), 200);
    /* Two leave: the two waiting are taken and answered. */
    close(fds[1]);
    close(fds[2]);
    for (int i = LIMIT; i < LIMIT + WAITING; i++) {
        CHECK_INT(support_read_response(fds[i], reply, sizeof reply, WAIT_MS), 200);
        close(fds[i]);
    }
    for (int i = 3; i < LIMIT; i++)
        close(fds[i]);
    close(fds[0]);
    CHECK_INT(support_server_stop(&s), 0);
    support_server_cleanup(&s);
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    if (!only || !strcmp(only, "limit"))
        test_limit();
    if (!only || !strcmp(only, "promises"))
        test_stop_promises();
    if (!only || !strcmp(only, "stop_under_load"))
        test_stop_under_load();
    return check_finish();
}
