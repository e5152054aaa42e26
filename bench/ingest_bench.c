/* ingest_bench.c -- ingest speed and memory through the CLI and through HTTP
 * (POST /v1/surgeries/{id}/detections to a `sightline serve` it starts) on a
 * generated 3-hour surgery in darknet format: detections/s, MB/s, peak RSS.
 * The rates are what the store holds after a send (frame documents and the
 * detections they pack, counted through the storage port) over the send's
 * time, not what the generator wrote; a re-send is checked to have changed
 * nothing (every item's version and the change feed's head as before). */
#include "store/store.h"
#include "tests/support/support.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Default: 3 hours at 30 frames/s with 25 detections per frame (8.1 M
 * detections) in a temporary directory, ingested by `sightline ingest` as a
 * child process on a fresh SQLite store, then re-sent (nothing changes); then
 * POSTed with libcurl (streamed from disk, with a Content-Length) to a
 * `sightline serve` on a loopback port with another fresh store, twice.  For
 * the server the peak RSS is its VmHWM from /proc (the whole process: HTTP,
 * spooling, ingest job and the aggregates listener it runs).
 *
 * Usage: ingest_bench [-m minutes] [-f fps] [-d detections_per_frame]
 *                     [-b sightline_binary] [-k]   (-k keeps the directory) */

static const char *const labels[] = {
    "scalpel", "forceps", "needle holder", "scissors",    "retractor", "clamp",
    "sponge",  "suture",  "trocar",        "suction tip", "cautery",   "towel clip",
    "hand",    "gauze",   "syringe",       "bowl",
};
#define NLABELS (sizeof labels / sizeof labels[0])

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint32_t next_u32(uint64_t *rng)
{
    *rng ^= *rng << 13; /* xorshift64: deterministic, fast */
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    return (uint32_t)(*rng >> 32);
}

/* A fraction in [lo, hi) in millionths (darknet prints six decimals, %f). */
static unsigned micro_in(uint64_t *rng, unsigned lo, unsigned hi)
{
    return lo + next_u32(rng) % (hi - lo);
}

static char *put_fixed6(char *p, unsigned micro)
{
    *p++ = (char)('0' + micro / 1000000);
    *p++ = '.';
    unsigned frac = micro % 1000000;
    for (int i = 5; i >= 0; i--) {
        p[i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    return p + 6;
}

/* Writes the darknet file; returns its size in bytes. */
static uint64_t generate(const char *path, uint64_t frames, unsigned dets)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "ingest_bench: cannot create %s: %s\n", path, strerror(errno));
        exit(1);
    }
    char buf[1024];
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    fputs("[\n", f);
    for (uint64_t i = 1; i <= frames; i++) {
        fprintf(
            f,
            "{\n \"frame_id\":%llu, \n \"filename\":\"/data/or3/surgery-0042/frame%09llu.jpg\", "
            "\n \"objects\": [ \n",
            (unsigned long long)i, (unsigned long long)i);
        for (unsigned k = 0; k < dets; k++) {
            unsigned cls = next_u32(&rng) % NLABELS;
            char *p = buf;
            p += sprintf(p,
                         "  {\"class_id\":%u, \"name\":\"%s\", \"relative_coordinates\":{"
                         "\"center_x\":",
                         cls, labels[cls]);
            p = put_fixed6(p, micro_in(&rng, 50000, 950000));
            p = stpcpy(p, ", \"center_y\":");
            p = put_fixed6(p, micro_in(&rng, 50000, 950000));
            p = stpcpy(p, ", \"width\":");
            p = put_fixed6(p, micro_in(&rng, 20000, 100000));
            p = stpcpy(p, ", \"height\":");
            p = put_fixed6(p, micro_in(&rng, 20000, 100000));
            p = stpcpy(p, "}, \"confidence\":");
            p = put_fixed6(p, micro_in(&rng, 250000, 1000000));
            p = stpcpy(p, k + 1 < dets ? "}, \n" : "}\n");
            fwrite(buf, 1, (size_t)(p - buf), f);
        }
        fputs(i < frames ? " ] \n}, \n" : " ] \n}\n", f);
    }
    fputs("]\n", f);
    if (fclose(f) != 0) {
        fprintf(stderr, "ingest_bench: cannot write %s\n", path);
        exit(1);
    }
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static double cpu_of(const struct rusage *ru)
{
    return (double)ru->ru_utime.tv_sec + (double)ru->ru_utime.tv_usec / 1e6 +
           (double)ru->ru_stime.tv_sec + (double)ru->ru_stime.tv_usec / 1e6;
}

typedef struct figures {
    double seconds; /* wall */
    double cpu;     /* user + system of the child: another bench may share the cores */
    long maxrss_kb; /* the child's peak RSS */
} figures;

/* Runs `<binary> ARGS` (NULL-terminated) with its output dropped; returns
 * its exit code and fills *fig. */
static int run(const char *const *args, figures *fig)
{
    const char *argv[16] = {support_binary()};
    int n = 1;
    for (int i = 0; args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    double t0 = now_s();
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) { /* the figures only: no summary lines, no progress bar */
            dup2(null, STDOUT_FILENO);
            dup2(null, STDERR_FILENO);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int status = 0, code = -1;
    struct rusage ru;
    if (pid > 0 && wait4(pid, &status, 0, &ru) == pid) {
        fig->seconds = now_s() - t0;
        fig->maxrss_kb = ru.ru_maxrss;
        fig->cpu = cpu_of(&ru);
        code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    return code;
}

/* User + system CPU seconds of a running process (/proc/<pid>/stat). */
static double proc_cpu(pid_t pid)
{
    char path[64], buf[2048];
    unsigned long ut = 0, st = 0;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the name may hold spaces */
    if (p)
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

/* POSTs the file (streamed from disk) and returns the HTTP status. */
static long post_file(const char *url, const char *key, const char *path, uint64_t size)
{
    CURL *c = curl_easy_init();
    FILE *f = fopen(path, "rb");
    struct curl_slist *h = NULL;
    char auth[256];
    long status = -1;
    if (!c || !f)
        goto out;
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    h = curl_slist_append(h, auth);
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_READDATA, f); /* the default read callback: fread */
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)size);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
out:
    curl_slist_free_all(h);
    if (c)
        curl_easy_cleanup(c);
    if (f)
        fclose(f);
    return status;
}

/* What the store holds: the frame documents of surgery s1 of tenant bench
 * and the detections they pack, and, to tell whether a send changed
 * anything, every item of the tenant (pk, sk, version) folded into a digest
 * and the change feed's head. */
typedef struct held {
    uint64_t frames, detections, docs, digest;
    char head[STORE_TOKEN_MAX];
} held;

static void fnv(uint64_t *h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        *h = (*h ^ b[i]) * 0x100000001b3ull;
}

/* Counts what store uri holds (read-only: a running server may share it);
 * 0 on success. */
static int store_held(const char *uri, held *h)
{
    store *s = NULL;
    store_options o = {.no_create = 1, .read_only = 1};
    store_page page = {0};
    store_feed_stats fs;
    char *token = NULL;
    sl_error e;
    int rc = -1;
    memset(h, 0, sizeof *h);
    h->digest = 0xcbf29ce484222325ull;
    sl_error_clear(&e);
    if (store_open(uri, &o, &s, &e) != SL_OK)
        goto out;
    do {
        store_query_opts q = {.limit = STORE_PAGE_MAX, .page_token = token};
        if (store_scan(s, STORE_ITEMS, "T#bench", &q, &page, &e) != SL_OK)
            goto out;
        for (size_t i = 0; i < page.count; i++) {
            const store_doc *d = &page.docs[i];
            bson_t view;
            bson_iter_t it;
            h->docs++;
            fnv(&h->digest, d->pk, strlen(d->pk) + 1);
            fnv(&h->digest, d->sk, strlen(d->sk) + 1);
            fnv(&h->digest, &d->version, sizeof d->version);
            if (strcmp(d->pk, "T#bench#SURGERY#s1") || strncmp(d->sk, "FRAME#", 6))
                continue;
            uint32_t det_len = 0;
            const uint8_t *det = NULL;
            if (!store_page_view(&page, i, &view) || !bson_iter_init_find(&it, &view, "n") ||
                !BSON_ITER_HOLDS_INT32(&it)) {
                snprintf(e.message, sizeof e.message, "frame %s has no detection count", d->sk);
                goto out;
            }
            int32_t n = bson_iter_int32(&it);
            if (bson_iter_init_find(&it, &view, "det") && BSON_ITER_HOLDS_BINARY(&it))
                bson_iter_binary(&it, NULL, &det_len, &det);
            if (n < 0 || (uint64_t)det_len != (uint64_t)n * SCHEMA_FRAME_DET_SIZE) {
                snprintf(e.message, sizeof e.message, "frame %s: n %d, %u bytes of detections",
                         d->sk, n, det_len);
                goto out;
            }
            h->frames++;
            h->detections += (uint64_t)n;
        }
        free(token);
        token = page.next_token ? strdup(page.next_token) : NULL;
        store_page_free(&page);
    } while (token);
    if (store_feed_stats_get(s, NULL, &fs, &e) != SL_OK)
        goto out;
    memcpy(h->head, fs.head_token, sizeof h->head);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "ingest_bench: cannot count what %s holds: %s\n", uri, e.message);
    free(token);
    store_page_free(&page);
    store_close(&s);
    return rc;
}

/* One send's line: the rates of what the store holds after it.  A first
 * send must have stored every generated frame and detection; a re-send
 * must have changed nothing (before: the store after the first send).
 * Returns 0 when the send did what its label says. */
static int report(const char *what, int resend, double seconds, uint64_t bytes, uint64_t frames,
                  uint64_t total, const held *before, const held *after, const char *rss)
{
    int ok = 1;
    printf("ingest_bench: %s: %.2f s, the store holds %llu frames and %llu detections: %.0f "
           "detections/s, %.1f MB/s of input, %s\n",
           what, seconds, (unsigned long long)after->frames, (unsigned long long)after->detections,
           (double)after->detections / seconds, (double)bytes / 1e6 / seconds, rss);
    if (after->frames != frames || after->detections != total) {
        printf("ingest_bench: %s: STORED %llu of %llu frames and %llu of %llu detections\n", what,
               (unsigned long long)after->frames, (unsigned long long)frames,
               (unsigned long long)after->detections, (unsigned long long)total);
        ok = 0;
    }
    if (resend) {
        int same_docs = before->docs == after->docs && before->digest == after->digest,
            same_head = !strcmp(before->head, after->head);
        printf("ingest_bench: %s: check: %s (%llu items before, %llu after: %s; change feed "
               "head %s)\n",
               what, same_docs && same_head ? "nothing changed" : "CHANGED",
               (unsigned long long)before->docs, (unsigned long long)after->docs,
               same_docs ? "every key and version as before" : "keys or versions differ",
               same_head ? "unchanged: no event" : "moved: the send made events");
        ok = ok && same_docs && same_head;
    }
    fflush(stdout);
    return ok ? 0 : -1;
}

/* Describes surgery s1 and catalog entry BENCH-1 of tenant bench in store uri
 * by the CLI; 0 on success. */
static int describe(const char *uri, const char *surgery, const char *catalog)
{
    const char *put_surgery[] = {"ingest", "--store",  uri,       "--tenant", "bench", "--surgery",
                                 "s1",     "--format", "surgery", surgery,    NULL};
    const char *put_catalog[] = {"ingest",  "--store",  uri,       "--tenant", "bench", "--sku",
                                 "BENCH-1", "--format", "catalog", catalog,    NULL};
    char out[256];
    return support_run(out, sizeof out, SUPPORT_QUIET, put_surgery) == 0 &&
                   support_run(out, sizeof out, SUPPORT_QUIET, put_catalog) == 0
               ? 0
               : -1;
}

/* The HTTP path on its own store: tenant, ingest key, surgery and catalog by
 * the CLI, then two POSTs of the file to a server.  0 on success. */
static int bench_http(const char *dir, const char *data, uint64_t bytes, uint64_t frames,
                      uint64_t total, const char *surgery, const char *catalog)
{
    char uri[200], key[200], url[300];
    support_server srv = {.pid = -1};
    int rc = -1;
    snprintf(uri, sizeof uri, "sqlite:%s/http.db", dir);
    if (support_tenant(uri, "bench", "hospital") != 0 ||
        support_key(uri, "bench", "ingest", key) != 0 || describe(uri, surgery, catalog) != 0) {
        fprintf(stderr, "ingest_bench: could not prepare the HTTP store\n");
        goto out;
    }
    if (support_server_init(&srv, dir, uri) != 0 ||
        support_server_start(&srv, "--access-log", "off", (char *)NULL) != 0) {
        fprintf(stderr, "ingest_bench: sightline serve did not start (see %s)\n", srv.err_path);
        goto out;
    }
    snprintf(url, sizeof url, "%s/v1/surgeries/s1/detections?format=darknet", srv.url);
    const char *pass[] = {"HTTP first send", "HTTP re-send (no change)"};
    held h[2];
    int bad = 0;
    for (int i = 0; i < 2; i++) {
        char rss[96];
        double cpu0 = proc_cpu(srv.pid), t0 = now_s();
        long status = post_file(url, key, data, bytes);
        double seconds = now_s() - t0, cpu = proc_cpu(srv.pid) - cpu0;
        if (status != 200) {
            fprintf(stderr, "ingest_bench: POST answered %ld\n", status);
            goto out;
        }
        snprintf(rss, sizeof rss, "server peak RSS %.1f MB (%.2f s server CPU)",
                 (double)support_proc_kb(srv.pid, "VmHWM:") / 1024.0, cpu);
        if (store_held(uri, &h[i]) != 0)
            goto out;
        bad |= report(pass[i], i, seconds, bytes, frames, total, &h[0], &h[i], rss);
    }
    rc = bad ? -1 : 0;
out:
    support_server_stop(&srv);
    return rc;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "ingest_bench: cannot write %s\n", path);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    double minutes = 180, fps = 30;
    unsigned dets = 25;
    const char *binary = support_binary();
    int keep = 0, opt;
    while ((opt = getopt(argc, argv, "m:f:d:b:k")) != -1) {
        switch (opt) {
        case 'm':
            minutes = atof(optarg);
            break;
        case 'f':
            fps = atof(optarg);
            break;
        case 'd':
            dets = (unsigned)atoi(optarg);
            break;
        case 'b':
            binary = optarg;
            break;
        case 'k':
            keep = 1;
            break;
        default:
            fprintf(stderr,
                    "usage: ingest_bench [-m minutes] [-f fps] [-d dets] [-b binary] [-k]\n");
            return 2;
        }
    }
    support_set_binary(binary);
    uint64_t frames = (uint64_t)(minutes * 60 * fps);
    char dir[] = "/tmp/sl-ingest-bench-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char data[128], surgery[128], catalog[128], uri[160];
    snprintf(data, sizeof data, "%s/result.json", dir);
    snprintf(surgery, sizeof surgery, "%s/surgery.json", dir);
    snprintf(catalog, sizeof catalog, "%s/catalog.json", dir);
    snprintf(uri, sizeof uri, "sqlite:%s/store.db", dir);
    double t0 = now_s();
    uint64_t bytes = generate(data, frames, dets);
    double gen_s = now_s() - t0;
    write_text(surgery,
               "{\"hospital\": \"bench\", \"room\": \"OR 1\", \"procedure\": \"bench\", "
               "\"surgeon\": \"bench\", \"started_at\": \"2026-11-26T08:00:00Z\", \"fps\": 30, "
               "\"frame_width\": 1920, \"frame_height\": 1080, "
               "\"table\": [[0.1, 0.5], [0.9, 0.5], [0.9, 1], [0.1, 1]]}");
    write_text(catalog, "{\"name\": \"bench tools\", \"labels\": [\"scalpel\", \"forceps\", "
                        "\"sponge\", \"(?i)needle.*\"], \"unit_cost_cents\": 100, "
                        "\"single_use\": true}");
    figures fig;
    if (describe(uri, surgery, catalog) != 0) {
        fprintf(stderr, "ingest_bench: %s could not describe the surgery\n", binary);
        if (!keep)
            support_rmrf(dir);
        return 1;
    }
    const char *ingest[] = {"ingest", "--store",  uri,       "--tenant", "bench", "--surgery",
                            "s1",     "--format", "darknet", data,       NULL};
    uint64_t total = frames * dets;
    printf("ingest_bench: darknet, %.0f min at %.0f frames/s, %u detections/frame: %llu frames, "
           "%llu detections, %.1f MB (generated in %.1f s)\n",
           minutes, fps, dets, (unsigned long long)frames, (unsigned long long)total,
           (double)bytes / 1e6, gen_s);
    const char *pass[] = {"CLI first send", "CLI re-send (no change)"};
    held h[2];
    int bad = 0;
    for (int i = 0; i < 2; i++) {
        char rss[64];
        int code = run(ingest, &fig);
        if (code != 0 || store_held(uri, &h[i]) != 0) {
            if (code != 0)
                fprintf(stderr, "ingest_bench: sightline ingest exited with %d\n", code);
            if (!keep)
                support_rmrf(dir);
            return 1;
        }
        snprintf(rss, sizeof rss, "peak RSS %.1f MB (%.2f s CPU)", (double)fig.maxrss_kb / 1024.0,
                 fig.cpu);
        bad |= report(pass[i], i, fig.seconds, bytes, frames, total, &h[0], &h[i], rss);
    }
    if (bench_http(dir, data, bytes, frames, total, surgery, catalog) != 0)
        bad = 1;
    struct stat st;
    char db[200];
    snprintf(db, sizeof db, "%s/store.db", dir);
    if (stat(db, &st) == 0)
        printf("ingest_bench: store file %.1f MB (%.0f bytes per frame)\n",
               (double)st.st_size / 1e6, (double)st.st_size / (double)frames);
    if (keep)
        printf("ingest_bench: kept %s\n", dir);
    else
        support_rmrf(dir);
    if (bad)
        fprintf(stderr, "ingest_bench: a send did not do what its label says (see above)\n");
    return bad ? 1 : 0;
}
