/* support.c -- clocks, temporary directories, child processes and the server
 * of the tests and benchmarks (see support.h).  The binary under test comes
 * from CMake (SIGHTLINE_BIN). */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SIGHTLINE_BIN
#error "SIGHTLINE_BIN must name the sightline binary"
#endif

#define ARGS_MAX 64
#define LEFT_MAX 32
#define RUN_MS   60000 /* support_run */
#define START_MS 30000 /* support_server_start: until the URL is printed */
#define STOP_MS  20000 /* support_server_stop: after SIGTERM */
#define TMP_MARK "sl-" /* the last component of every directory support_rmrf removes */

static const char *binary = SIGHTLINE_BIN;

long support_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

void support_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---------------------------------------------------------------------------
 * What a test that stops early (a failed REQUIRE exits) would leave behind:
 * killed and removed at exit.
 * ------------------------------------------------------------------------- */
static pid_t left_pids[LEFT_MAX];
static char left_dirs[LEFT_MAX][128];

static void cleanup_at_exit(void)
{
    for (int i = 0; i < LEFT_MAX; i++)
        if (left_pids[i] > 0) {
            kill(left_pids[i], SIGKILL);
            waitpid(left_pids[i], NULL, 0);
            left_pids[i] = 0;
        }
    for (int i = 0; i < LEFT_MAX; i++)
        if (left_dirs[i][0])
            support_rmrf(left_dirs[i]);
}

static void register_cleanup(void)
{
    static int done;
    if (!done++)
        atexit(cleanup_at_exit);
}

/* Records pid (add) or forgets it. */
static void track_pid(pid_t pid, int add)
{
    int done = 0;
    for (int i = 0; i < LEFT_MAX && !done; i++)
        if (add ? left_pids[i] == 0 : left_pids[i] == pid) {
            left_pids[i] = add ? pid : 0;
            done = 1;
        }
}

/* ---------------------------------------------------------------------------
 * Files and directories.
 * ------------------------------------------------------------------------- */
int support_tmpdir(char out[128], const char *tag)
{
    int rc = -1;
    register_cleanup();
    snprintf(out, 128, "/tmp/" TMP_MARK "%s-XXXXXX", tag);
    if (mkdtemp(out)) {
        rc = 0;
        for (int i = 0; i < LEFT_MAX; i++)
            if (!left_dirs[i][0]) {
                snprintf(left_dirs[i], sizeof left_dirs[i], "%s", out);
                break;
            }
    }
    return rc;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

void support_rmrf(const char *dir)
{
    const char *last = dir ? strrchr(dir, '/') : NULL;
    if (last && !strncmp(last + 1, TMP_MARK, strlen(TMP_MARK))) {
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        for (int i = 0; i < LEFT_MAX; i++)
            if (!strcmp(left_dirs[i], dir))
                left_dirs[i][0] = '\0';
    }
}

char *support_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long size = -1;
    if (f && fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)size + 1)) != NULL) {
        *len = fread(buf, 1, (size_t)size, f);
        buf[*len] = '\0';
    }
    if (f)
        fclose(f);
    return buf;
}

long support_proc_kb(int pid, const char *field)
{
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, field, strlen(field)))
            kb = strtol(line + strlen(field), NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

/* ---------------------------------------------------------------------------
 * Child processes.
 * ------------------------------------------------------------------------- */
void support_set_binary(const char *path)
{
    binary = path ? path : SIGHTLINE_BIN;
}

const char *support_binary(void)
{
    return binary;
}

/* argv: the program name, then args, then NULL (at most ARGS_MAX - 1 in all). */
static void make_argv(const char *argv[ARGS_MAX], const char *const *args)
{
    int n = 0;
    argv[n++] = "sightline";
    for (int i = 0; args && args[i] && n < ARGS_MAX - 1; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
}

/* In the child: stdout and stderr from the open descriptors (-1: keep),
 * the environment, then the binary; never returns. */
static void exec_child(int out_fd, int err_fd, unsigned flags, const char *const *argv)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
    if (out_fd >= 0)
        dup2(out_fd, STDOUT_FILENO);
    if (err_fd >= 0)
        dup2(err_fd, STDERR_FILENO);
    if (!(flags & SUPPORT_KEEP_STORE))
        unsetenv("SIGHTLINE_STORE");
    execv(binary, (char *const *)argv);
    _exit(127);
}

pid_t support_spawn(const char *out_path, const char *err_path, unsigned flags,
                    const char *const *args)
{
    const char *argv[ARGS_MAX];
    int mode = O_WRONLY | O_CREAT | (flags & SUPPORT_TRUNCATE ? O_TRUNC : O_APPEND);
    register_cleanup();
    make_argv(argv, args);
    pid_t pid = fork();
    if (pid == 0) {
        int o = open(out_path ? out_path : "/dev/null", mode, 0600);
        int e = open(err_path ? err_path : "/dev/null", mode, 0600);
        if (o < 0 || e < 0)
            _exit(126);
        exec_child(o, e, flags, argv);
    }
    if (pid > 0)
        track_pid(pid, 1);
    return pid;
}

int support_wait(pid_t pid, int timeout_ms)
{
    long until = support_now_ms() + timeout_ms;
    int status = 0, code = -1;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            track_pid(pid, 0);
            break;
        }
        if (r < 0 && errno == ECHILD)
            track_pid(pid, 0); /* reaped elsewhere: not ours to kill at exit */
        if ((r < 0 && errno != EINTR) || support_now_ms() >= until)
            break;
        support_sleep_ms(5);
    }
    return code;
}

void support_kill(pid_t pid, int sig)
{
    if (pid > 0) {
        kill(pid, sig);
        if (sig == SIGKILL) {
            waitpid(pid, NULL, 0);
            track_pid(pid, 0);
        }
    }
}

int support_wait_status(pid_t pid, int timeout_ms, int stops, int *status)
{
    long until = support_now_ms() + timeout_ms;
    int rc = -1;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG | (stops ? WUNTRACED : 0));
        if (r == pid) {
            if (!WIFSTOPPED(*status))
                track_pid(pid, 0);
            rc = 0;
            break;
        }
        if ((r < 0 && errno != EINTR) || support_now_ms() >= until)
            break;
        support_sleep_ms(1);
    }
    return rc;
}

const char *support_status_str(int status, char *buf, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(buf, cap, "exited with %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, cap, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else if (WIFSTOPPED(status))
        snprintf(buf, cap, "stopped by signal %d (%s)", WSTOPSIG(status),
                 strsignal(WSTOPSIG(status)));
    else
        snprintf(buf, cap, "wait status 0x%x", (unsigned)status);
    return buf;
}

void support_print_tail(const char *path, int lines)
{
    size_t len = 0;
    char *text = support_read_file(path, &len);
    const char *from = text;
    for (size_t i = len, seen = 0; text && i-- > 0;)
        if (text[i] == '\n' && i + 1 < len && ++seen >= (size_t)lines) {
            from = text + i + 1;
            break;
        }
    if (text)
        fprintf(stderr, "  %s (its last %d lines at most):\n", path, lines);
    else
        fprintf(stderr, "  %s: cannot be read\n", path);
    for (const char *p = from; p && *p;) {
        const char *nl = strchr(p, '\n');
        int n = nl ? (int)(nl - p) : (int)strlen(p);
        fprintf(stderr, "  | %.*s\n", n, p);
        p = nl ? nl + 1 : NULL;
    }
    free(text);
}

int support_run(char *out, size_t cap, unsigned flags, const char *const *args)
{
    const char *argv[ARGS_MAX];
    int fds[2], code = -1;
    size_t got = 0;
    register_cleanup();
    make_argv(argv, args);
    if (pipe(fds) != 0)
        goto out;
    pid_t pid = fork();
    if (pid == 0) {
        int quiet = flags & SUPPORT_QUIET ? open("/dev/null", O_WRONLY) : -1;
        close(fds[0]);
        exec_child(fds[1], quiet, flags, argv);
    }
    close(fds[1]);
    if (pid > 0)
        track_pid(pid, 1);
    for (ssize_t r = 1; pid > 0 && r != 0;) {
        char buf[4096];
        r = read(fds[0], buf, sizeof buf);
        if (r < 0 && errno != EINTR)
            r = 0;
        for (ssize_t i = 0; i < r; i++)
            if (out && got + 1 < cap)
                out[got++] = buf[i];
    }
    close(fds[0]);
    if (out && cap) {
        out[got] = '\0';
        if (got && out[got - 1] == '\n')
            out[got - 1] = '\0';
    }
    if (pid > 0 && (code = support_wait(pid, RUN_MS)) == -1)
        support_kill(pid, SIGKILL);
out:
    return code;
}

/* args = the arguments left in ap up to their NULL (at most ARGS_MAX - 1),
 * NULL-terminated. */
static void collect(const char *args[ARGS_MAX], va_list ap)
{
    int n = 0;
    for (const char *a; n < ARGS_MAX - 1 && (a = va_arg(ap, const char *));)
        args[n++] = a;
    args[n] = NULL;
}

int support_cli(char *out, size_t cap, ...)
{
    const char *args[ARGS_MAX];
    va_list ap;
    va_start(ap, cap);
    collect(args, ap);
    va_end(ap);
    return support_run(out, cap, 0, args);
}

int support_tenant(const char *store, const char *tenant, const char *kind)
{
    const char *args[] = {"tenants", "create", tenant, "--kind", kind, "--store", store, NULL};
    return support_run(NULL, 0, 0, args) == 0 ? 0 : -1;
}

int support_key(const char *store, const char *tenant, const char *role, char key[128])
{
    const char *args[] = {"keys", "create",  "--tenant", tenant, "--role",
                          role,   "--store", store,      NULL};
    return support_run(key, 128, 0, args) == 0 && !strncmp(key, "sl_", 3) ? 0 : -1;
}

/* ---------------------------------------------------------------------------
 * The server.
 * ------------------------------------------------------------------------- */
int support_server_init(support_server *s, const char *dir, const char *store)
{
    int rc = 0;
    memset(s, 0, sizeof *s);
    s->pid = -1;
    if (dir)
        snprintf(s->dir, sizeof s->dir, "%s", dir);
    else if ((rc = support_tmpdir(s->dir, "api")) == 0)
        s->own_dir = 1;
    if (store)
        snprintf(s->store, sizeof s->store, "%s", store);
    else
        snprintf(s->store, sizeof s->store, "sqlite:%s/sl.db", s->dir);
    snprintf(s->log_path, sizeof s->log_path, "%s/access.log", s->dir);
    snprintf(s->err_path, sizeof s->err_path, "%s/serve.err", s->dir);
    return rc;
}

/* The first bytes of a file into buf (NUL-terminated; "" when unreadable). */
static void read_head(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    buf[0] = '\0';
    if (f) {
        buf[fread(buf, 1, cap - 1, f)] = '\0';
        fclose(f);
    }
}

int support_server_startv(support_server *s, const char *const *extra)
{
    const char *args[ARGS_MAX] = {"serve", "--store", s->store, "--listen", "127.0.0.1:0"};
    int n = 5, rc = -1;
    for (int i = 0; extra && extra[i] && n < ARGS_MAX - 1; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    unlink(s->err_path); /* a previous server's "listening on" is not this one's */
    s->pid = support_spawn(s->log_path, s->err_path, SUPPORT_TRUNCATE, args);
    for (long until = support_now_ms() + START_MS; s->pid > 0 && rc != 0;) {
        char buf[4096];
        read_head(s->err_path, buf, sizeof buf);
        const char *at = strstr(buf, "listening on ");
        if (at && strchr(at, '\n')) {
            sscanf(at + 13, "%127s", s->url);
            const char *colon = strrchr(s->url, ':');
            s->port = colon ? atoi(colon + 1) : 0;
            rc = s->port > 0 ? 0 : -1;
            break;
        }
        if (support_wait(s->pid, 0) != -1) {
            fprintf(stderr, "server exited early:\n%s\n", buf);
            s->pid = -1;
        } else if (support_now_ms() >= until) {
            break;
        } else {
            support_sleep_ms(20);
        }
    }
    return rc;
}

int support_server_start(support_server *s, ...)
{
    const char *extra[ARGS_MAX];
    va_list ap;
    va_start(ap, s);
    collect(extra, ap);
    va_end(ap);
    return support_server_startv(s, extra);
}

int support_server_stop(support_server *s)
{
    int code = -1;
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        code = support_wait(s->pid, STOP_MS);
        if (code == -1)
            support_kill(s->pid, SIGKILL);
        s->pid = -1;
        if (code != 0) {
            char buf[8192];
            read_head(s->err_path, buf, sizeof buf);
            fprintf(stderr, "server exit code %d; its stderr:\n%s\n", code, buf);
        }
    }
    return code;
}

void support_server_cleanup(support_server *s)
{
    support_server_stop(s);
    if (s->own_dir)
        support_rmrf(s->dir);
}

int support_log_count(const support_server *s, const char *needle, int want)
{
    int count = 0;
    long until = support_now_ms() + 10000;
    do {
        support_sleep_ms(100); /* the server flushes its access log every 200 ms */
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
    } while (count < want && support_now_ms() < until);
    return count;
}
