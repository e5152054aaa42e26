/* harness.h -- what the api integration tests share: a temporary directory,
 * the real `sightline` binary (CLI runs and a server on a free loopback
 * port), a libcurl client and a raw-socket client for malformed requests. */
#ifndef SIGHTLINE_TESTS_API_HARNESS_H
#define SIGHTLINE_TESTS_API_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

typedef struct th_server {
    pid_t pid;
    int port;
    char url[96];
    char dir[128];      /* the test's temporary directory */
    char store[256];    /* sqlite:<dir>/sl.db */
    char log_path[256]; /* the server's stdout (access log) */
    char err_path[256]; /* the server's stderr */
} th_server;

/* Makes a fresh directory under /tmp (mkdtemp); 0 on success. */
int th_tmpdir(char out[128]);

/* Removes a directory tree made by th_tmpdir. */
void th_rmrf(const char *dir);

/* Runs `sightline ARGS...` (NULL-terminated) with SIGHTLINE_STORE unset;
 * stdout (trimmed of its final newline) goes to out.  Returns the exit code
 * (-1 when it could not run or was killed). */
int th_cli(char *out, size_t cap, ...) __attribute__((sentinel));

/* Prepares s->dir, s->store and the log paths (no process yet). */
int th_server_init(th_server *s);

/* Starts `sightline serve --store S --listen 127.0.0.1:0 EXTRA...` (NULL-
 * terminated) and waits until it prints its URL; 0 on success. */
int th_server_start(th_server *s, ...) __attribute__((sentinel));

/* Sends SIGTERM and waits (kills after 20 s); returns the exit code, -1 when
 * it had to be killed or died of a signal. */
int th_server_stop(th_server *s);

/* Stops the server if running and removes the directory. */
void th_server_cleanup(th_server *s);

/* Counts lines of the access log holding needle, waiting (up to 10 s) for
 * the server to flush until there are at least `want`. */
int th_log_count(const th_server *s, const char *needle, int want);

/* A reply through libcurl. */
typedef struct th_resp {
    long status;
    char *body; /* NUL-terminated, free with th_resp_free */
    size_t len;
    char headers[8192]; /* raw header block, lowercase names not guaranteed */
} th_resp;

void th_resp_free(th_resp *r);

/* METHOD url with an optional bearer key (NULL for none) and body (NULL for
 * none); extra_header may be NULL.  Returns 0 when a reply arrived. */
int th_http(const char *method, const char *url, const char *key, const char *body, size_t len,
            const char *extra_header, th_resp *r);

/* The value of header `name` in r (case-insensitive) into out; 0 when found. */
int th_header(const th_resp *r, const char *name, char *out, size_t cap);

/* Parses r->body as JSON and checks it is a problem document with this
 * status and type slug; 0 when it is. */
int th_is_problem(const th_resp *r, int status, const char *slug);

/* String member `key` of a JSON object body into out; 0 when found. */
int th_json_str(const char *body, const char *key, char *out, size_t cap);

/* Raw TCP: connects to 127.0.0.1:port, returns the socket or -1. */
int th_connect(int port);

/* Sends data then reads until the peer closes, cap bytes arrive, or
 * timeout_ms pass in silence; out is NUL-terminated.  Returns bytes read, or
 * -1 when the connection failed. */
long th_raw(int port, const char *data, size_t len, char *out, size_t cap, int timeout_ms);

/* Reads one HTTP/1.1 response (head + Content-Length body) from fd into out;
 * returns its status, or -1 on timeout or close. */
int th_read_response(int fd, char *out, size_t cap, int timeout_ms);

/* Writes everything or returns -1. */
int th_write_all(int fd, const char *data, size_t len);

/* A key for a new tenant: creates tenant (kind hospital) and a key of role;
 * 0 on success. */
int th_tenant_with_key(const th_server *s, const char *tenant, const char *role, char key[128]);

#endif
