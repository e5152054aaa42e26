/* api_jobs_test.c -- route options on ONE libmicrohttpd thread, in-process: held
 * jobs (gates the test opens, never timed) stall nobody, a full pool is 503 +
 * Retry-After, keep-alive holds, on_head answers before the body, stop waits. */
#include "api/api_int.h"
#include "tests/support/support.h"
#include "tests/check.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 20000 /* a hang guard for reads, not a measurement */

/* A gate per job id: the handler of /t/job/{id} for ids "g0".."g3" waits
 * until its gate opens; other ids return at once. */
#define GATES 4
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_entered[GATES], gate_open[GATES], gate_left[GATES];

static int gate_of(const char *id)
{
    return id[0] == 'g' && id[1] >= '0' && id[1] < '0' + GATES && !id[2] ? id[1] - '0' : -1;
}

static sl_status job_handler(api_request *req, sl_error *err)
{
    int k = gate_of(api_param(req, "id"));
    if (k >= 0) {
        pthread_mutex_lock(&gate_mu);
        gate_entered[k] = 1;
        pthread_cond_broadcast(&gate_cv);
        while (!gate_open[k])
            pthread_cond_wait(&gate_cv, &gate_mu);
        gate_left[k] = 1;
        pthread_mutex_unlock(&gate_mu);
    }
    return api_reply_bytes(req, 200, "text/plain", "job done", 8, 0, err);
}

static void gate_wait_entered(int k)
{
    pthread_mutex_lock(&gate_mu);
    while (!gate_entered[k])
        pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
}

static void gate_release(int k)
{
    pthread_mutex_lock(&gate_mu);
    gate_open[k] = 1;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
}

static int gate_has_left(int k)
{
    pthread_mutex_lock(&gate_mu);
    int left = gate_left[k];
    pthread_mutex_unlock(&gate_mu);
    return left;
}

static sl_status quick(api_request *req, sl_error *err)
{
    return api_reply_bytes(req, 200, "text/plain", "quick", 5, 0, err);
}

/* /t/head/{id}: on_head refuses id "missing" (404) and notes, for the
 * others, how many body bytes had arrived when it ran. */
typedef struct head_state {
    uint64_t body_at_head;
    uint64_t bytes;
} head_state;

static atomic_int head_calls;

static sl_status head_hook(api_request *req, sl_error *err)
{
    sl_status rc = SL_OK;
    atomic_fetch_add(&head_calls, 1);
    if (!strcmp(api_param(req, "id"), "missing")) {
        rc = sl_error_set_at(err, SL_ENOTFOUND, "id", -1, "no such thing");
        goto out;
    }
    head_state *h = calloc(1, sizeof *h);
    REQUIRE(h != NULL);
    h->body_at_head = api_body_received(req);
    api_state_set(req, h, free);
out:
    return rc;
}

static sl_status head_chunk(api_request *req, const char *data, size_t len, sl_error *err)
{
    head_state *h = api_state(req);
    h->bytes += len;
    return SL_OK;
}

static sl_status head_done(api_request *req, sl_error *err)
{
    head_state *h = api_state(req);
    char text[64];
    snprintf(text, sizeof text, "%llu %llu", (unsigned long long)h->body_at_head,
             (unsigned long long)h->bytes);
    return api_reply_bytes(req, 200, "text/plain", text, strlen(text), 0, err);
}

static const api_route test_routes[] = {
    {"GET", "/t/job/{id}", API_PUBLIC, API_KIND_ANY, NULL, API_BODY_NONE, 0, API_RUN_JOB, NULL,
     NULL, job_handler},
    {"GET", "/t/quick", API_PUBLIC, API_KIND_ANY, NULL, API_BODY_NONE, 0, API_RUN_INLINE, NULL,
     NULL, quick},
    {"POST", "/t/head/{id}", API_PUBLIC, API_KIND_ANY, NULL, API_BODY_STREAMED, 0, API_RUN_JOB,
     head_hook, head_chunk, head_done},
};
static const api_area test_area = {"test", test_routes, 3};

static store *st;
static char dir[128];

static api_server *start(int64_t job_queue, int64_t grace_s)
{
    api_config cfg;
    api_server *srv = NULL;
    sl_error e;
    sl_error_clear(&e);
    api_config_defaults(&cfg);
    snprintf(cfg.listen, sizeof cfg.listen, "127.0.0.1:0");
    cfg.access_log = NULL;
    cfg.threads = 1; /* one libmicrohttpd thread: a stalled handler would stall all */
    cfg.job_threads = 1;
    cfg.job_queue = job_queue;
    cfg.shutdown_grace_s = grace_s;
    const api_area *areas[] = {&test_area, NULL};
    REQUIRE(api__server_start_areas(&cfg, st, areas, &srv, &e) == SL_OK);
    return srv;
}

/* A request on its own connection, answered in a thread. */
typedef struct call {
    int port;
    char path[128];
    pthread_t th;
    int status;
    char reply[4096];
} call;

static void *call_main(void *arg)
{
    call *c = arg;
    char head[256];
    int fd = support_connect(c->port);
    snprintf(head, sizeof head, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", c->path);
    c->status = fd >= 0 && support_write_all(fd, head, strlen(head)) == 0
                    ? support_read_response(fd, c->reply, sizeof c->reply, WAIT_MS)
                    : -1;
    if (fd >= 0)
        close(fd);
    return NULL;
}

static void call_start(call *c, int port, const char *path)
{
    memset(c, 0, sizeof *c);
    c->port = port;
    snprintf(c->path, sizeof c->path, "%s", path);
    REQUIRE(pthread_create(&c->th, NULL, call_main, c) == 0);
}

/* One request on a new connection, in this thread. */
static int get(int port, const char *path, char *reply, size_t cap)
{
    call c;
    memset(&c, 0, sizeof c);
    c.port = port;
    snprintf(c.path, sizeof c.path, "%s", path);
    call_main(&c);
    snprintf(reply, cap, "%s", c.reply);
    return c.status;
}

/* Waits until the pool reports `running` and `queued` jobs (metrics are the
 * public view of it); 0 when it did. */
static int pool_reaches(api_server *srv, uint64_t running, uint64_t queued)
{
    for (int i = 0; i < 2000; i++) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        sl_error e;
        sl_error_clear(&e);
        api__server_metrics(srv, f, &e);
        fclose(f);
        char want_r[64], want_q[64];
        snprintf(want_r, sizeof want_r, "sightline_jobs_running %llu\n",
                 (unsigned long long)running);
        snprintf(want_q, sizeof want_q, "sightline_jobs_queued %llu\n", (unsigned long long)queued);
        int ok = strstr(text, want_r) && strstr(text, want_q);
        free(text);
        if (ok)
            return 0;
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return -1;
}

/* While a job runs on its job thread, the only libmicrohttpd thread keeps
 * answering; a second job queues; a third is refused with Retry-After. */
static void test_job_does_not_stall(void)
{
    api_server *srv = start(1, 30);
    int port = api_server_port(srv);
    char reply[4096], retry[32] = "";
    call held, queued;
    call_start(&held, port, "/t/job/g0");
    gate_wait_entered(0);
    CHECK_INT(get(port, "/t/quick", reply, sizeof reply), 200);
    CHECK(strstr(reply, "\r\n\r\nquick") != NULL);
    CHECK(!gate_has_left(0)); /* answered while the job was still held */

    call_start(&queued, port, "/t/job/g1");
    CHECK_INT(pool_reaches(srv, 1, 1), 0);
    CHECK_INT(get(port, "/t/job/none", reply, sizeof reply), 503);
    CHECK(strstr(reply, "\"type\":\"https://sightline.dev/problems/busy\"") != NULL);
    const char *ra = strcasestr(reply, "\r\nRetry-After: ");
    if (ra)
        sscanf(ra + 15, "%31[0-9]", retry);
    CHECK(atoi(retry) > 0);
    CHECK_INT(get(port, "/t/quick", reply, sizeof reply), 200);

    gate_release(0);
    pthread_join(held.th, NULL);
    CHECK_INT(held.status, 200);
    CHECK(strstr(held.reply, "\r\n\r\njob done") != NULL);
    gate_wait_entered(1);
    gate_release(1);
    pthread_join(queued.th, NULL);
    CHECK_INT(queued.status, 200);
    api_server_stop(srv);
    api_server_free(&srv);
}

/* After a job's answer the connection stays open for the next request. */
static void test_keep_alive_after_job(void)
{
    api_server *srv = start(4, 30);
    char reply[4096];
    int fd = support_connect(api_server_port(srv));
    REQUIRE(fd >= 0);
    const char *r1 = "GET /t/job/free HTTP/1.1\r\nHost: t\r\n\r\n";
    const char *r2 = "GET /t/quick HTTP/1.1\r\nHost: t\r\n\r\n";
    CHECK(support_write_all(fd, r1, strlen(r1)) == 0);
    CHECK_INT(support_read_response(fd, reply, sizeof reply, WAIT_MS), 200);
    CHECK(strcasestr(reply, "Connection: close") == NULL);
    CHECK(support_write_all(fd, r2, strlen(r2)) == 0);
    CHECK_INT(support_read_response(fd, reply, sizeof reply, WAIT_MS), 200);
    CHECK(strstr(reply, "\r\n\r\nquick") != NULL);
    close(fd);
    api_server_stop(srv);
    api_server_free(&srv);
}

/* on_head runs once, before any body byte; its refusal arrives although the
 * client never sends the (declared 1 GB) body. */
static void test_on_head(void)
{
    api_server *srv = start(4, 30);
    int port = api_server_port(srv);
    char reply[4096];
    int calls = atomic_load(&head_calls);
    int fd = support_connect(port);
    REQUIRE(fd >= 0);
    const char *h =
        "POST /t/head/missing HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000000\r\n\r\n";
    CHECK(support_write_all(fd, h, strlen(h)) == 0);
    CHECK_INT(support_read_response(fd, reply, sizeof reply, WAIT_MS), 404);
    CHECK(strstr(reply, "no such thing") != NULL);
    close(fd);
    CHECK_INT(atomic_load(&head_calls), calls + 1);

    fd = support_connect(port);
    REQUIRE(fd >= 0);
    const char *ok = "POST /t/head/ok HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789";
    CHECK(support_write_all(fd, ok, strlen(ok)) == 0);
    CHECK_INT(support_read_response(fd, reply, sizeof reply, WAIT_MS), 200);
    CHECK(strstr(reply, "\r\n\r\n0 10") != NULL); /* no byte before the hook; all 10 after */
    close(fd);
    CHECK_INT(atomic_load(&head_calls), calls + 2);
    api_server_stop(srv);
    api_server_free(&srv);
}

typedef struct stopper {
    api_server *srv;
    pthread_t th;
    atomic_int returned;
    int job_left_before; /* the held job had returned when the stop did */
} stopper;

static void *stopper_main(void *arg)
{
    stopper *s = arg;
    api_server_stop(s->srv);
    s->job_left_before = gate_has_left(2);
    atomic_store(&s->returned, 1);
    return NULL;
}

/* A stop (grace 0) answers the queued job 503 at once, then waits for the
 * running one, whose 200 still reaches its client. */
static void test_stop_waits_for_jobs(void)
{
    api_server *srv = start(1, 0);
    int port = api_server_port(srv);
    call running, waiting;
    stopper s;
    memset(&s, 0, sizeof s);
    s.srv = srv;
    call_start(&running, port, "/t/job/g2");
    gate_wait_entered(2);
    call_start(&waiting, port, "/t/job/g3");
    CHECK_INT(pool_reaches(srv, 1, 1), 0);
    REQUIRE(pthread_create(&s.th, NULL, stopper_main, &s) == 0);
    pthread_join(waiting.th, NULL); /* answered by the stop itself */
    CHECK_INT(waiting.status, 503);
    CHECK(strstr(waiting.reply, "stopping") != NULL);
    CHECK(strcasestr(waiting.reply, "\r\nRetry-After: ") != NULL);
    CHECK_INT(atomic_load(&s.returned), 0); /* the stop is waiting for g2 */
    gate_release(2);
    pthread_join(s.th, NULL);
    CHECK(s.job_left_before);
    pthread_join(running.th, NULL);
    CHECK_INT(running.status, 200);
    CHECK(strstr(running.reply, "\r\n\r\njob done") != NULL);
    pthread_mutex_lock(&gate_mu);
    CHECK_INT(gate_entered[3], 0); /* the queued job never ran */
    pthread_mutex_unlock(&gate_mu);
    api_server_free(&srv);
}

int main(void)
{
    char uri[256];
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(support_tmpdir(dir, "api") == 0);
    snprintf(uri, sizeof uri, "sqlite:%s/sl.db", dir);
    REQUIRE(store_open(uri, NULL, &st, &e) == SL_OK);

    test_job_does_not_stall();
    test_keep_alive_after_job();
    test_on_head();
    test_stop_waits_for_jobs();

    store_close(&st);
    support_rmrf(dir);
    return check_finish();
}
