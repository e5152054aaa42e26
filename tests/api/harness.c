/* harness.c -- processes, HTTP and sockets for the api integration tests
 * (see harness.h).  The binary under test comes from CMake (SIGHTLINE_BIN). */
#include "harness.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#ifndef SIGHTLINE_BIN
#error "SIGHTLINE_BIN must name the sightline binary"
#endif

#define ARGS_MAX 64

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* What a test that stops early (a failed REQUIRE exits) would leave behind:
 * removed at exit.  Servers also die with the test (PR_SET_PDEATHSIG). */
#define LEFT_MAX 16
static th_server *left_servers[LEFT_MAX];
static char left_dirs[LEFT_MAX][128];

static void cleanup_at_exit(void)
{
    for (int i = 0; i < LEFT_MAX; i++) {
        if (left_servers[i])
            th_server_cleanup(left_servers[i]);
        if (left_dirs[i][0])
            th_rmrf(left_dirs[i]);
    }
}

int th_tmpdir(char out[128])
{
    static int registered;
    snprintf(out, 128, "/tmp/sl-api-XXXXXX");
    if (!mkdtemp(out))
        return -1;
    if (!registered++)
        atexit(cleanup_at_exit);
    for (int i = 0; i < LEFT_MAX; i++)
        if (!left_dirs[i][0]) {
            snprintf(left_dirs[i], sizeof left_dirs[i], "%s", out);
            break;
        }
    return 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

void th_rmrf(const char *dir)
{
    if (dir && !strncmp(dir, "/tmp/sl-api-", 12)) {
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        for (int i = 0; i < LEFT_MAX; i++)
            if (!strcmp(left_dirs[i], dir))
                left_dirs[i][0] = '\0';
    }
}

/* Waits for pid up to ms; returns its exit code, -1 on signal or timeout
 * (then *done is 0). */
static int wait_exit(pid_t pid, long ms, int *done)
{
    long until = now_ms() + ms;
    int status = 0;
    *done = 0;
    while (now_ms() < until) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            *done = 1;
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        if (r < 0 && errno != EINTR) {
            *done = 1;
            return -1;
        }
        sleep_ms(10);
    }
    return -1;
}

int th_cli(char *out, size_t cap, ...)
{
    char *argv[ARGS_MAX];
    int argc = 0, fds[2];
    va_list ap;
    argv[argc++] = "sightline";
    va_start(ap, cap);
    for (char *a; argc < ARGS_MAX - 1 && (a = va_arg(ap, char *));)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        unsetenv("SIGHTLINE_STORE");
        execv(SIGHTLINE_BIN, argv);
        _exit(127);
    }
    close(fds[1]);
    size_t n = 0;
    for (;;) {
        char buf[4096];
        ssize_t r = read(fds[0], buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        for (ssize_t i = 0; i < r; i++)
            if (out && n + 1 < cap)
                out[n++] = buf[i];
    }
    close(fds[0]);
    if (out && cap) {
        out[n] = '\0';
        if (n && out[n - 1] == '\n')
            out[n - 1] = '\0';
    }
    int done = 0;
    int code = wait_exit(pid, 60000, &done);
    if (!done) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    return code;
}

int th_server_init(th_server *s)
{
    memset(s, 0, sizeof *s);
    s->pid = -1;
    if (th_tmpdir(s->dir) != 0)
        return -1;
    snprintf(s->store, sizeof s->store, "sqlite:%s/sl.db", s->dir);
    snprintf(s->log_path, sizeof s->log_path, "%s/access.log", s->dir);
    snprintf(s->err_path, sizeof s->err_path, "%s/stderr.log", s->dir);
    for (int i = 0; i < LEFT_MAX; i++)
        if (!left_servers[i]) {
            left_servers[i] = s;
            break;
        }
    return 0;
}

int th_server_start(th_server *s, ...)
{
    char *argv[ARGS_MAX];
    int argc = 0;
    va_list ap;
    argv[argc++] = "sightline";
    argv[argc++] = "serve";
    argv[argc++] = "--store";
    argv[argc++] = s->store;
    argv[argc++] = "--listen";
    argv[argc++] = "127.0.0.1:0";
    va_start(ap, s);
    for (char *a; argc < ARGS_MAX - 1 && (a = va_arg(ap, char *));)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the test */
        int o = open(s->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(s->err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (o < 0 || e < 0)
            _exit(126);
        dup2(o, 1);
        dup2(e, 2);
        unsetenv("SIGHTLINE_STORE");
        execv(SIGHTLINE_BIN, argv);
        _exit(127);
    }
    if (pid < 0)
        return -1;
    s->pid = pid;
    long until = now_ms() + 20000;
    while (now_ms() < until) {
        char buf[4096] = "";
        FILE *f = fopen(s->err_path, "r");
        if (f) {
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            buf[n] = '\0';
            fclose(f);
        }
        const char *at = strstr(buf, "listening on ");
        if (at && strchr(at, '\n')) {
            sscanf(at + 13, "%95s", s->url);
            const char *colon = strrchr(s->url, ':');
            s->port = colon ? atoi(colon + 1) : 0;
            return s->port > 0 ? 0 : -1;
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "server exited early:\n%s\n", buf);
            s->pid = -1;
            return -1;
        }
        sleep_ms(20);
    }
    return -1;
}

int th_server_stop(th_server *s)
{
    int done = 0, code = -1;
    if (s->pid <= 0)
        return -1;
    kill(s->pid, SIGTERM);
    code = wait_exit(s->pid, 20000, &done);
    if (!done) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        code = -1;
    }
    s->pid = -1;
    if (code != 0) {
        char buf[8192] = "";
        FILE *f = fopen(s->err_path, "r");
        if (f) {
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            buf[n] = '\0';
            fclose(f);
        }
        fprintf(stderr, "server exit code %d; its stderr:\n%s\n", code, buf);
    }
    return code;
}

void th_server_cleanup(th_server *s)
{
    for (int i = 0; i < LEFT_MAX; i++)
        if (left_servers[i] == s)
            left_servers[i] = NULL;
    if (s->pid > 0)
        th_server_stop(s);
    th_rmrf(s->dir);
}

int th_log_count(const th_server *s, const char *needle, int want)
{
    int count = 0;
    long until = now_ms() + 10000;
    do {
        sleep_ms(100); /* the server flushes its access log every 200 ms */
        FILE *f = fopen(s->log_path, "r");
        char *line = NULL;
        size_t cap = 0;
        count = 0;
        while (f && getline(&line, &cap, f) > 0)
            if (strstr(line, needle))
                count++;
        free(line);
        if (f)
            fclose(f);
    } while (count < want && now_ms() < until);
    return count;
}

/* ---- libcurl ---- */

typedef struct sink {
    char *buf;
    size_t len;
} sink;

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    sink *s = ud;
    size_t add = size * n;
    char *grown = realloc(s->buf, s->len + add + 1);
    if (!grown)
        return 0;
    memcpy(grown + s->len, p, add);
    s->buf = grown;
    s->len += add;
    s->buf[s->len] = '\0';
    return add;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    th_resp *r = ud;
    size_t add = size * n, have = strlen(r->headers);
    /* Each response (100 Continue too) restarts the block. */
    if (add >= 5 && !strncmp(p, "HTTP/", 5))
        have = r->headers[0] = '\0';
    if (have + add < sizeof r->headers) {
        memcpy(r->headers + have, p, add);
        r->headers[have + add] = '\0';
    }
    return add;
}

void th_resp_free(th_resp *r)
{
    free(r->body);
    r->body = NULL;
}

int th_http(const char *method, const char *url, const char *key, const char *body, size_t len,
            const char *extra_header, th_resp *r)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    sink data = {NULL, 0};
    char auth[256];
    memset(r, 0, sizeof *r);
    if (!c)
        return -1;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (!strcmp(method, "HEAD"))
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &data);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    if (key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        h = curl_slist_append(h, auth);
    }
    if (extra_header)
        h = curl_slist_append(h, extra_header);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        h = curl_slist_append(h, "Content-Type: application/json");
    }
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    r->body = data.buf ? data.buf : calloc(1, 1);
    r->len = data.len;
    if (rc != CURLE_OK)
        fprintf(stderr, "curl %s %s: %s\n", method, url, curl_easy_strerror(rc));
    return rc == CURLE_OK ? 0 : -1;
}

int th_header(const th_resp *r, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    for (const char *line = r->headers; line && *line;) {
        const char *end = strstr(line, "\r\n");
        if (!strncasecmp(line, name, nlen) && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (*v == ' ')
                v++;
            size_t vlen = end ? (size_t)(end - v) : strlen(v);
            snprintf(out, cap, "%.*s", (int)vlen, v);
            return 0;
        }
        line = end ? end + 2 : NULL;
    }
    return -1;
}

int th_json_str(const char *body, const char *key, char *out, size_t cap)
{
    char err[128];
    int rc = -1;
    yajl_val v = yajl_tree_parse(body, err, sizeof err);
    const char *path[] = {key, NULL};
    yajl_val s = v ? yajl_tree_get(v, path, yajl_t_string) : NULL;
    if (s) {
        snprintf(out, cap, "%s", YAJL_GET_STRING(s));
        rc = 0;
    }
    if (v)
        yajl_tree_free(v);
    return rc;
}

int th_is_problem(const th_resp *r, int status, const char *slug)
{
    char ct[128] = "", type[256] = "", want[256], rid[128] = "", hrid[128] = "";
    char err[128];
    int ok = 1;
    yajl_val v = yajl_tree_parse(r->body, err, sizeof err);
    const char *sp[] = {"status", NULL};
    yajl_val st = v ? yajl_tree_get(v, sp, yajl_t_number) : NULL;
    snprintf(want, sizeof want, "https://sightline.dev/problems/%s", slug);
    th_header(r, "Content-Type", ct, sizeof ct);
    th_json_str(r->body, "type", type, sizeof type);
    th_json_str(r->body, "request_id", rid, sizeof rid);
    th_header(r, "X-Request-Id", hrid, sizeof hrid);
    if (r->status != status || strcmp(ct, "application/problem+json") || !v || !st ||
        YAJL_GET_INTEGER(st) != status || strcmp(type, want) || !rid[0] || strcmp(rid, hrid)) {
        fprintf(stderr,
                "not the problem %d %s: status %ld, type %s, content-type %s, "
                "request id %s / header %s, body: %s\n",
                status, slug, r->status, type, ct, rid, hrid, r->body ? r->body : "");
        ok = 0;
    }
    if (v)
        yajl_tree_free(v);
    return ok ? 0 : -1;
}

/* ---- raw sockets ---- */

int th_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int th_write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t w = send(fd, data, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Whether buf holds at least one whole response (head + Content-Length body). */
static int response_complete(const char *buf)
{
    const char *end = strstr(buf, "\r\n\r\n");
    if (!end)
        return 0;
    const char *cl = strcasestr(buf, "\r\nContent-Length:");
    size_t body = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
    return strlen(end + 4) >= body;
}

long th_raw(int port, const char *data, size_t len, char *out, size_t cap, int timeout_ms)
{
    int fd = th_connect(port);
    size_t n = 0;
    if (fd < 0)
        return -1;
    th_write_all(fd, data, len);
    out[0] = '\0';
    while (n + 1 < cap) {
        /* Once a whole answer is in, only a short wait for more (pipelined
         * answers follow at once); a kept-alive connection stays open. */
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, response_complete(out) ? 300 : timeout_ms) <= 0)
            break;
        ssize_t r = recv(fd, out + n, cap - 1 - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
        out[n] = '\0';
    }
    close(fd);
    return (long)n;
}

int th_read_response(int fd, char *out, size_t cap, int timeout_ms)
{
    size_t n = 0;
    out[0] = '\0';
    for (;;) {
        char *end = strstr(out, "\r\n\r\n");
        if (end) {
            const char *cl = strcasestr(out, "\r\nContent-Length:");
            size_t body = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
            size_t need = (size_t)(end + 4 - out) + body;
            if (n >= need) {
                int status = 0;
                sscanf(out, "HTTP/1.%*d %d", &status);
                return status;
            }
        }
        if (n + 1 >= cap)
            return -1;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, timeout_ms) <= 0)
            return -1;
        ssize_t r = recv(fd, out + n, cap - 1 - n, 0);
        if (r <= 0)
            return -1;
        n += (size_t)r;
        out[n] = '\0';
    }
}

int th_tenant_with_key(const th_server *s, const char *tenant, const char *role, char key[128])
{
    char out[256];
    if (th_cli(out, sizeof out, "tenants", "create", tenant, "--kind", "hospital", "--store",
               s->store, (char *)NULL) != 0)
        return -1;
    if (th_cli(key, 128, "keys", "create", "--tenant", tenant, "--role", role, "--store", s->store,
               (char *)NULL) != 0)
        return -1;
    return strncmp(key, "sl_", 3) == 0 ? 0 : -1;
}
