/* support_http.c -- HTTP through libcurl (one-shot requests, streamed
 * uploads, a keep-alive client), raw sockets, and the JSON and Prometheus
 * text helpers of the tests and benchmarks (see support.h). */
#include "support.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

/* ---------------------------------------------------------------------------
 * The request every function here sends.
 * ------------------------------------------------------------------------- */

/* A growing NUL-terminated buffer for an answer's body. */
typedef struct sink {
    char *buf;
    size_t len, cap;
} sink;

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    sink *s = ud;
    size_t add = size * n, done = add;
    if (s->len + add + 1 > s->cap) {
        size_t cap = (s->len + add + 1) * 2;
        char *grown = realloc(s->buf, cap);
        if (grown) {
            s->buf = grown;
            s->cap = cap;
        } else {
            done = 0; /* libcurl fails the transfer */
        }
    }
    if (done) {
        memcpy(s->buf + s->len, p, add);
        s->len += add;
        s->buf[s->len] = '\0';
    }
    return done;
}

/* Keeps the header block of the last response (100 Continue restarts it). */
static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    support_resp *r = ud;
    size_t add = size * n, have = strlen(r->headers);
    if (add >= 5 && !strncmp(p, "HTTP/", 5))
        have = r->headers[0] = '\0';
    if (have + add < sizeof r->headers) {
        memcpy(r->headers + have, p, add);
        r->headers[have + add] = '\0';
    }
    return add;
}

/* A streamed body: a file, or a generator. */
typedef struct source {
    FILE *f;
    support_gen_fn gen;
    void *ctx;
} source;

static size_t on_read(char *buf, size_t size, size_t n, void *ud)
{
    source *s = ud;
    return s->f ? fread(buf, 1, size * n, s->f) : s->gen(s->ctx, buf, size * n);
}

/* What to send: body in memory (body != NULL), streamed (src != NULL, len
 * bytes or chunked when len < 0), or none. */
typedef struct request {
    const char *method, *url, *key, *extra_header, *content_type;
    const char *body;
    source *src;
    int64_t len;
    long timeout_s;
} request;

/* Sends q on c (reset first, so a kept-alive connection is reused); the
 * answer's body goes to data, its headers to headers (may be NULL).  The
 * HTTP status, -1 when no answer came (then a line on stderr). */
static long perform(CURL *c, const request *q, sink *data, support_resp *headers)
{
    struct curl_slist *h = NULL;
    char auth[256];
    long status = -1;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, q->url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
    if (!strcmp(q->method, "HEAD"))
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, data);
    if (headers) {
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, headers);
    }
    curl_easy_setopt(c, CURLOPT_TIMEOUT, q->timeout_s);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    if (q->key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", q->key);
        h = curl_slist_append(h, auth);
    }
    if (q->extra_header)
        h = curl_slist_append(h, q->extra_header);
    if (q->body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, q->body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->len);
    } else if (q->src) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, q->src);
        if (q->len >= 0)
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->len);
        else
            h = curl_slist_append(h, "Transfer-Encoding: chunked");
    }
    if (q->body || q->src)
        h = curl_slist_append(h, q->content_type);
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    else
        fprintf(stderr, "curl %s %s: %s\n", q->method, q->url, curl_easy_strerror(rc));
    curl_slist_free_all(h);
    return status;
}

/* q on a connection of its own, the answer into r; 0 when it came. */
static int perform_once(const request *q, support_resp *r)
{
    CURL *c = curl_easy_init();
    sink data = {NULL, 0, 0};
    memset(r, 0, sizeof *r);
    r->status = c ? perform(c, q, &data, r) : -1;
    if (c)
        curl_easy_cleanup(c);
    r->body = data.buf ? data.buf : calloc(1, 1);
    r->len = data.len;
    if (r->status < 0)
        r->status = 0;
    return c && r->status > 0 ? 0 : -1;
}

void support_resp_free(support_resp *r)
{
    free(r->body);
    r->body = NULL;
}

int support_http(const char *method, const char *url, const char *key, const char *body, size_t len,
                 const char *extra_header, support_resp *r)
{
    request q = {.method = method,
                 .url = url,
                 .key = key,
                 .extra_header = extra_header,
                 .content_type = "Content-Type: application/json",
                 .body = body,
                 .len = (int64_t)len,
                 .timeout_s = 30};
    return perform_once(&q, r);
}

int support_post_file(const char *url, const char *key, const char *path, int chunked,
                      support_resp *r)
{
    source src = {fopen(path, "rb"), NULL, NULL};
    long size = -1;
    int rc = -1;
    if (!src.f || fseek(src.f, 0, SEEK_END) != 0 || (size = ftell(src.f)) < 0 ||
        fseek(src.f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "cannot open %s\n", path);
        memset(r, 0, sizeof *r);
        r->body = calloc(1, 1);
        goto out;
    }
    request q = {.method = "POST",
                 .url = url,
                 .key = key,
                 .content_type = "Content-Type: application/json",
                 .src = &src,
                 .len = chunked ? -1 : size,
                 .timeout_s = 120};
    rc = perform_once(&q, r);
out:
    if (src.f)
        fclose(src.f);
    return rc;
}

int support_post_gen(const char *url, const char *key, support_gen_fn gen, void *ctx, uint64_t len,
                     support_resp *r)
{
    source src = {NULL, gen, ctx};
    request q = {.method = "POST",
                 .url = url,
                 .key = key,
                 .content_type = "Content-Type: application/json",
                 .src = &src,
                 .len = len ? (int64_t)len : -1,
                 .timeout_s = 120};
    return perform_once(&q, r);
}

int support_header(const support_resp *r, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    int rc = -1;
    for (const char *line = r->headers; rc != 0 && line && *line;) {
        const char *end = strstr(line, "\r\n");
        if (!strncasecmp(line, name, nlen) && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (*v == ' ')
                v++;
            size_t vlen = end ? (size_t)(end - v) : strlen(v);
            snprintf(out, cap, "%.*s", (int)vlen, v);
            rc = 0;
        }
        line = end ? end + 2 : NULL;
    }
    return rc;
}

int support_json_str(const char *body, const char *key, char *out, size_t cap)
{
    char err[128];
    int rc = -1;
    yajl_val v = yajl_tree_parse(body, err, sizeof err);
    const char *path[] = {key, NULL};
    yajl_val s = v ? yajl_tree_get(v, path, yajl_t_string) : NULL;
    if (s) {
        snprintf(out, cap, "%s", s->u.string);
        rc = 0;
    }
    if (v)
        yajl_tree_free(v);
    return rc;
}

int support_is_problem(const support_resp *r, int status, const char *slug)
{
    char ct[128] = "", type[256] = "", want[256], rid[128] = "", hrid[128] = "";
    char err[128];
    int ok = 1;
    yajl_val v = yajl_tree_parse(r->body, err, sizeof err);
    const char *sp[] = {"status", NULL};
    yajl_val st = v ? yajl_tree_get(v, sp, yajl_t_number) : NULL;
    snprintf(want, sizeof want, "https://sightline.dev/problems/%s", slug);
    support_header(r, "Content-Type", ct, sizeof ct);
    support_json_str(r->body, "type", type, sizeof type);
    support_json_str(r->body, "request_id", rid, sizeof rid);
    support_header(r, "X-Request-Id", hrid, sizeof hrid);
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

int support_metric(const char *metrics, const char *name, double *out)
{
    size_t nlen = strlen(name);
    int rc = -1;
    for (const char *line = metrics; rc != 0 && line && *line;) {
        if (!strncmp(line, name, nlen) && line[nlen] == ' ') {
            *out = strtod(line + nlen + 1, NULL);
            rc = 0;
        }
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    return rc;
}

void support_escape(const char *s, char *out, size_t cap)
{
    static const char keep[] = "-._~";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && n + 4 < cap; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr(keep, *p))
            out[n++] = (char)*p;
        else
            n += (size_t)snprintf(out + n, cap - n, "%%%02X", *p);
    }
    out[n] = '\0';
}

/* ---------------------------------------------------------------------------
 * The keep-alive client.
 * ------------------------------------------------------------------------- */
struct support_client {
    CURL *curl;
    char base[128];
    char key[160]; /* "" for none */
    sink body;
};

support_client *support_client_new(const char *base_url, const char *key)
{
    static int global;
    if (!global++)
        curl_global_init(CURL_GLOBAL_DEFAULT);
    support_client *c = calloc(1, sizeof *c);
    if (c && !(c->curl = curl_easy_init())) {
        free(c);
        c = NULL;
    }
    if (c) {
        snprintf(c->base, sizeof c->base, "%s", base_url);
        support_client_set_key(c, key);
    }
    return c;
}

void support_client_free(support_client **c)
{
    if (c && *c) {
        curl_easy_cleanup((*c)->curl);
        free((*c)->body.buf);
        free(*c);
        *c = NULL;
    }
}

void support_client_set_key(support_client *c, const char *key)
{
    snprintf(c->key, sizeof c->key, "%s", key ? key : "");
}

long support_req(support_client *c, const char *method, const char *path, const char *body,
                 size_t len)
{
    char url[2048];
    snprintf(url, sizeof url, "%s%s", c->base, path);
    request q = {.method = method,
                 .url = url,
                 .key = c->key[0] ? c->key : NULL,
                 .content_type = strstr(path, ":batch") ? "Content-Type: application/x-ndjson"
                                                        : "Content-Type: application/json",
                 .body = body,
                 .len = (int64_t)len,
                 .timeout_s = 120};
    c->body.len = 0;
    if (c->body.buf)
        c->body.buf[0] = '\0';
    return perform(c->curl, &q, &c->body, NULL);
}

const char *support_body(const support_client *c)
{
    return c->body.buf ? c->body.buf : "";
}

/* ---------------------------------------------------------------------------
 * Raw sockets.
 * ------------------------------------------------------------------------- */
int support_connect(int port)
{
    return support_connect_from(port, NULL);
}

int support_connect_from(int port, const char *from)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a, me;
    memset(&a, 0, sizeof a);
    memset(&me, 0, sizeof me);
    a.sin_family = me.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && from &&
        (inet_pton(AF_INET, from, &me.sin_addr) != 1 ||
         bind(fd, (struct sockaddr *)&me, sizeof me) != 0)) {
        close(fd);
        fd = -1;
    }
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        fd = -1;
    }
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

int support_write_all(int fd, const char *data, size_t len)
{
    int rc = 0;
    while (rc == 0 && len > 0) {
        ssize_t w = send(fd, data, len, MSG_NOSIGNAL);
        if (w > 0) {
            data += w;
            len -= (size_t)w;
        } else if (w == 0 || errno != EINTR) {
            rc = -1;
        }
    }
    return rc;
}

/* The length of the first whole response in buf (head + Content-Length
 * body), 0 while it is not whole. */
static size_t response_length(const char *buf, size_t n)
{
    const char *end = strstr(buf, "\r\n\r\n");
    size_t need = 0;
    if (end) {
        const char *cl = strcasestr(buf, "\r\nContent-Length:");
        size_t body = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
        need = (size_t)(end + 4 - buf) + body;
    }
    return need && n >= need ? need : 0;
}

long support_raw(int port, const char *data, size_t len, char *out, size_t cap, int timeout_ms)
{
    int fd = support_connect(port);
    size_t n = 0;
    out[0] = '\0';
    if (fd >= 0)
        support_write_all(fd, data, len);
    while (fd >= 0 && n + 1 < cap) {
        /* Once a whole answer is in, only a short wait for more (pipelined
         * answers follow at once); a kept-alive connection stays open. */
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, response_length(out, n) ? 300 : timeout_ms) <= 0)
            break;
        ssize_t r = recv(fd, out + n, cap - 1 - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
        out[n] = '\0';
    }
    if (fd >= 0)
        close(fd);
    return fd >= 0 ? (long)n : -1;
}

int support_read_response(int fd, char *out, size_t cap, int timeout_ms)
{
    size_t n = 0;
    int status = 0, done = 0;
    out[0] = '\0';
    while (!done) {
        struct pollfd p = {fd, POLLIN, 0};
        ssize_t r = 0;
        if (response_length(out, n)) {
            sscanf(out, "HTTP/1.%*d %d", &status);
            done = 1;
        } else if (n + 1 >= cap || poll(&p, 1, timeout_ms) <= 0 ||
                   (r = recv(fd, out + n, cap - 1 - n, 0)) <= 0) {
            status = -1;
            done = 1;
        } else {
            n += (size_t)r;
            out[n] = '\0';
        }
    }
    return status;
}

int support_wait_closed(int fd, int timeout_ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    char buf[256];
    int rc = 0;
    long until = support_now_ms() + timeout_ms;
    for (long left = timeout_ms; rc == 0 && left >= 0; left = until - support_now_ms()) {
        int ready = poll(&p, 1, (int)left);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready <= 0)
            break;
        ssize_t r = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno == ECONNRESET)) {
            rc = 1;
        } else if (r > 0) {
            buf[r] = '\0';
            fprintf(stderr, "support_wait_closed: %zd bytes came instead: %.80s\n", r, buf);
            rc = -1;
        }
    }
    return rc;
}
