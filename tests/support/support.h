/* support.h -- what the tests and benchmarks share: clocks, temporary
 * directories, the real `sightline` binary as child processes (CLI runs and
 * a server on a free loopback port), HTTP through libcurl (one request per
 * connection, streamed uploads, and a keep-alive client), raw sockets, and
 * small file and JSON helpers.  Built once as the static library
 * sl_test_support (tests/support/CMakeLists.txt); the binary under test comes
 * from CMake.  Functions report failure by their return value (and, where it
 * helps, a line on stderr); the tests turn them into CHECKs.
 *
 * Cleanup: directories made by support_tmpdir and processes started by
 * support_spawn, support_run or support_server_start are removed and killed
 * at exit, so a test stopped by a failed REQUIRE leaves nothing behind; a
 * child also dies with its parent (PR_SET_PDEATHSIG).
 *
 * Sanitizers: a child stopped by AddressSanitizer (its SEGV handler and
 * LeakSanitizer included) or UndefinedBehaviorSanitizer exits
 * SUPPORT_SANITIZER_EXIT, which is none of the binary's own codes, and every
 * function here that reaps a child fails the test at once on that code,
 * printing the child's stderr: a crash never passes for an expected
 * failure. */
#ifndef SIGHTLINE_TESTS_SUPPORT_H
#define SIGHTLINE_TESTS_SUPPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---------------------------------------------------------------------------
 * Time.
 * ------------------------------------------------------------------------- */

/* CLOCK_MONOTONIC in milliseconds. */
long support_now_ms(void);

void support_sleep_ms(long ms);

/* ---------------------------------------------------------------------------
 * Files and directories.
 * ------------------------------------------------------------------------- */

/* Makes a fresh directory /tmp/sl-<tag>-XXXXXX into out (removed at exit if
 * still there); 0 on success. */
int support_tmpdir(char out[128], const char *tag);

/* Removes a directory tree -- only one whose last component starts with
 * "sl-", as every temporary directory of the tests and benchmarks does. */
void support_rmrf(const char *dir);

/* Reads a whole (small) file, NUL-terminated; *len gets its size without the
 * NUL.  NULL when it cannot be read.  The caller frees the result. */
char *support_read_file(const char *path, size_t *len);

/* A line of /proc/<pid>/status ("VmHWM:", "VmRSS:") in kB, -1 if absent. */
long support_proc_kb(int pid, const char *field);

/* ---------------------------------------------------------------------------
 * Sanitizers.
 * ------------------------------------------------------------------------- */

/* The exit code of a process a sanitizer stopped (tests/support/CMakeLists.txt
 * defines it, 86; ctest sets it for every test through sightline_add_test in
 * tests/CMakeLists.txt).  Not 0-3 (the binary's codes) nor 77 (ctest's skip). */
#ifndef SUPPORT_SANITIZER_EXIT
#error "SUPPORT_SANITIZER_EXIT comes from tests/support/CMakeLists.txt"
#endif

/* Makes ASAN_OPTIONS, UBSAN_OPTIONS and LSAN_OPTIONS of this process end
 * with exitcode=SUPPORT_SANITIZER_EXIT (ASan's with detect_leaks=1 too),
 * keeping what they held, so every process it starts gets them -- also when
 * a test is run by hand, outside ctest.  Runs at start (a constructor) and
 * again before each spawn; idempotent. */
void support_sanitizer_env(void);

/* ---------------------------------------------------------------------------
 * The binary as child processes.
 * ------------------------------------------------------------------------- */

/* The binary the functions below run: the one CMake built, unless set (a
 * benchmark's -b option).  path must outlive its use. */
void support_set_binary(const char *path);
const char *support_binary(void);

/* Flags of support_spawn and support_run. */
enum {
    SUPPORT_TRUNCATE = 1,   /* spawn: truncate the output files (default: append) */
    SUPPORT_KEEP_STORE = 2, /* keep $SIGHTLINE_STORE (default: unset in the child) */
    SUPPORT_QUIET = 4       /* run: stderr to /dev/null (default: the test's stderr) */
};

/* Starts `<binary> ARGS` (args NULL-terminated, without the program name)
 * with stdout to out_path (NULL: /dev/null) and stderr to err_path (NULL:
 * the test's own stderr).  Returns its pid, -1 on failure. */
pid_t support_spawn(const char *out_path, const char *err_path, unsigned flags,
                    const char *const *args);

/* Waits for pid up to timeout_ms: its exit code, 128 + signal when a signal
 * ended it, -1 on timeout (then it still runs).  SUPPORT_SANITIZER_EXIT is
 * never returned: the test stops there (exit 1), printing the child's stderr. */
int support_wait(pid_t pid, int timeout_ms);

/* Sends sig to pid (one spawned here) and, for SIGKILL, reaps it (a child
 * that had already ended by a sanitizer stops the test as support_wait does). */
void support_kill(pid_t pid, int sig);

/* Waits up to timeout_ms for pid to end (and reaps it) or, with stops
 * nonzero, to stop (WIFSTOPPED: it still runs and is still to be reaped).
 * *status gets waitpid's raw status, so that a test that kills a process can
 * tell "killed by SIGKILL" from "exited with 137" or "killed by SIGABRT".
 * 0 when it ended or stopped, -1 on timeout or error.  An exit with
 * SUPPORT_SANITIZER_EXIT stops the test there, as support_wait does. */
int support_wait_status(pid_t pid, int timeout_ms, int stops, int *status);

/* A raw wait status in words into buf ("exited with 1", "killed by signal 6
 * (Aborted)", "stopped by signal 19 (Stopped (signal))"); returns buf. */
const char *support_status_str(int status, char *buf, size_t cap);

/* Prints the last `lines` lines of the file at path (a child's log) to
 * stderr, each as "  | line", under a line naming the file. */
void support_print_tail(const char *path, int lines);

/* Runs `<binary> ARGS` to completion (60 s at most, then killed) with stdout
 * into out (cap bytes, NUL-terminated, its final newline trimmed; out may be
 * NULL).  Its stderr is printed on the test's once it ended (not with
 * SUPPORT_QUIET).  Returns the exit code as support_wait does; -1 when it
 * could not run or ran out of time. */
int support_run(char *out, size_t cap, unsigned flags, const char *const *args);

/* support_run with the child's stderr into err (errcap bytes, NUL-terminated;
 * then not printed), for a test to check what a failing run said. */
int support_run_err(char *out, size_t cap, char *err, size_t errcap, unsigned flags,
                    const char *const *args);

/* support_run with the arguments listed (NULL-terminated) and no flags. */
int support_cli(char *out, size_t cap, ...) __attribute__((sentinel));

/* An expected failure: runs `<binary> ARGS` (NULL-terminated); 0 when it
 * exited with code and its stderr holds message, else prints what it got and
 * returns -1.  (A sanitizer's stop fails the test in any case.) */
int support_cli_fails(int code, const char *message, ...) __attribute__((sentinel));

/* Creates tenant (kind "hospital" or "brand-client") in the store; 0 on success. */
int support_tenant(const char *store, const char *tenant, const char *kind);

/* Creates a key of role for tenant into key (printed once by the CLI); 0 on success. */
int support_key(const char *store, const char *tenant, const char *role, char key[128]);

/* ---------------------------------------------------------------------------
 * A server: `sightline serve --store S --listen 127.0.0.1:0 EXTRA...`.
 * ------------------------------------------------------------------------- */
typedef struct support_server {
    pid_t pid; /* -1 when not running */
    int port;
    char url[128];      /* "http://127.0.0.1:port" (https with TLS) */
    char dir[128];      /* where its logs are */
    char store[256];    /* the store URI */
    char log_path[256]; /* the server's stdout (access log) */
    char err_path[256]; /* the server's stderr */
    int own_dir;        /* dir was made by support_server_init: cleanup removes it */
    int exit_code;      /* when it exited before listening: its code; else -1 */
} support_server;

/* Prepares s (no process yet): logs in dir, or a fresh temporary directory
 * when dir is NULL; the store store, or sqlite:<dir>/sl.db when NULL.  0 on
 * success. */
int support_server_init(support_server *s, const char *dir, const char *store);

/* Starts the server with the extra arguments (NULL-terminated; may be NULL)
 * and waits (30 s at most) until it prints its URL.  0 on success; when it
 * exits early its stderr is printed and s->exit_code holds its exit code
 * (a refusal to start is checked by that code and err_path's text). */
int support_server_startv(support_server *s, const char *const *extra);
int support_server_start(support_server *s, ...) __attribute__((sentinel));

/* SIGTERM, then waits (20 s, then SIGKILL): its exit code, -1 when it had to
 * be killed or was not running.  A nonzero code prints its stderr. */
int support_server_stop(support_server *s);

/* Stops the server if it runs and removes the directory it made. */
void support_server_cleanup(support_server *s);

/* Counts lines of the access log holding needle, waiting (up to 10 s) for
 * the server to flush until there are at least want. */
int support_log_count(const support_server *s, const char *needle, int want);

/* ---------------------------------------------------------------------------
 * HTTP, one connection per request.
 * ------------------------------------------------------------------------- */
typedef struct support_resp {
    long status;
    char *body; /* NUL-terminated, never NULL after a call; support_resp_free() */
    size_t len;
    char headers[8192]; /* the raw header block of the final response */
} support_resp;

void support_resp_free(support_resp *r);

/* METHOD url with an optional bearer key (NULL for none), body (NULL for
 * none, sent as application/json) and extra header line (NULL for none).
 * Returns 0 when a reply arrived.  Whatever it returns, r->body is set and
 * the caller's to free with support_resp_free(). */
int support_http(const char *method, const char *url, const char *key, const char *body, size_t len,
                 const char *extra_header, support_resp *r);

/* Produces the next bytes of a generated body into buf (at most cap);
 * returns how many (0 at the end). */
typedef size_t (*support_gen_fn)(void *ctx, char *buf, size_t cap);

/* POSTs the file at path to url, streamed from disk (chunked when chunked is
 * nonzero, else with a Content-Length).  0 when a reply arrived. */
int support_post_file(const char *url, const char *key, const char *path, int chunked,
                      support_resp *r);

/* POSTs len generated bytes (len 0: chunked, until gen returns 0). */
int support_post_gen(const char *url, const char *key, support_gen_fn gen, void *ctx, uint64_t len,
                     support_resp *r);

/* The value of header name in r (case-insensitive) into out; 0 when found. */
int support_header(const support_resp *r, const char *name, char *out, size_t cap);

/* 0 when r is a problem document (application/problem+json) with this status
 * and type slug and a request id equal to its X-Request-Id; else prints why. */
int support_is_problem(const support_resp *r, int status, const char *slug);

/* String member key of a JSON object text into out; 0 when found. */
int support_json_str(const char *body, const char *key, char *out, size_t cap);

/* The value of a metric line "name value" of Prometheus text; 0 when found. */
int support_metric(const char *metrics, const char *name, double *out);

/* Percent-encodes a path segment into out (cap bytes). */
void support_escape(const char *s, char *out, size_t cap);

/* ---------------------------------------------------------------------------
 * HTTP on one connection kept alive across requests.
 * ------------------------------------------------------------------------- */
typedef struct support_client support_client;

/* A client for base_url with bearer key (NULL: none); NULL on failure.  Free
 * it with support_client_free(), which sets *c to NULL. */
support_client *support_client_new(const char *base_url, const char *key);
void support_client_free(support_client **c);
void support_client_set_key(support_client *c, const char *key);

/* METHOD base_url+path (already percent-encoded) with an optional body (sent
 * as application/x-ndjson to a path holding ":batch", else as JSON).
 * Returns the HTTP status, -1 when no answer came.  The answer's body stays
 * readable through support_body() until the next request. */
long support_req(support_client *c, const char *method, const char *path, const char *body,
                 size_t len);
const char *support_body(const support_client *c);

/* ---------------------------------------------------------------------------
 * Raw sockets, for what libcurl will not send.
 * ------------------------------------------------------------------------- */

/* Connects to 127.0.0.1:port (TCP_NODELAY); the socket or -1. */
int support_connect(int port);

/* The same from another loopback address (from: "127.0.0.2"; NULL: any), so
 * a test can be two clients at two addresses. */
int support_connect_from(int port, const char *from);

/* Writes everything; 0, or -1 on failure. */
int support_write_all(int fd, const char *data, size_t len);

/* Sends data on a new connection, then reads until the peer closes, cap
 * bytes arrive, or timeout_ms pass in silence; out is NUL-terminated.
 * Returns bytes read, or -1 when the connection failed. */
long support_raw(int port, const char *data, size_t len, char *out, size_t cap, int timeout_ms);

/* Reads one HTTP/1.1 response (head + Content-Length body) from fd into out;
 * returns its status, or -1 on timeout, close or a full buffer. */
int support_read_response(int fd, char *out, size_t cap, int timeout_ms);

/* Waits up to timeout_ms for the peer to close fd: 1 when it did (end of
 * stream, or a reset) with no byte before, 0 when fd was still open and
 * silent at the end, -1 when bytes came (the first ones are printed). */
int support_wait_closed(int fd, int timeout_ms);

#endif
