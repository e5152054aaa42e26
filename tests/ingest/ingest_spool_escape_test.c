/* ingest_spool_escape_test.c -- issue 9, "the spool folder can be made to
 * read, move and overwrite files outside DIR", on a real directory (inotify)
 * and store: links planted at the error file's names (1), folders swapped
 * for links between the event and the open and between taking a file's name
 * and opening it (2: the ingest_spool_options.before_open hook makes the
 * race deterministic), done/ and failed/ as links (3), hard links (4), and
 * linked files, FIFOs and files of another owner.  After each, the tree
 * outside DIR is exactly as it was (nothing moved, created or overwritten)
 * and the store holds nothing from there.
 *
 * With the argument "noproc" it runs the same with /proc detached in a mount
 * namespace of its own, where the spool watches folders by path (its
 * fallback); it exits 77 (skipped) where that namespace cannot be made. */
#include "ingest/ingest.h"
#include "tests/check.h"
#include "tests/support/support.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

/* inotify queues events as the file operations return, so
 * ingest_spool_run(sp, 0) after an operation sees it: no sleeps. */

static char root[128], spool[160], outside[160], parked[160];
static store *st;

/* ---------------------------------------------------------------------------
 * Files.
 * ------------------------------------------------------------------------- */
static void in_spool(char *out, size_t n, const char *rel)
{
    snprintf(out, n, "%s/%s", spool, rel);
}

static void in_outside(char *out, size_t n, const char *rel)
{
    snprintf(out, n, "%s/%s", outside, rel);
}

static void write_path(const char *p, const char *text)
{
    FILE *f = fopen(p, "wb");
    REQUIRE(f);
    REQUIRE(fwrite(text, 1, strlen(text), f) == strlen(text));
    REQUIRE(fclose(f) == 0);
}

static void write_rel(const char *rel, const char *text)
{
    char p[512];
    in_spool(p, sizeof p, rel);
    write_path(p, text);
}

static void mkdir_rel(const char *rel)
{
    char p[512];
    in_spool(p, sizeof p, rel);
    REQUIRE(mkdir(p, 0755) == 0);
}

static void mkdir_out(const char *rel)
{
    char p[512];
    in_outside(p, sizeof p, rel);
    REQUIRE(mkdir(p, 0755) == 0);
}

/* rel in the spool becomes a symbolic link to outside/target. */
static void link_out(const char *target, const char *rel)
{
    char t[512], p[512];
    in_outside(t, sizeof t, target);
    in_spool(p, sizeof p, rel);
    REQUIRE(symlink(t, p) == 0);
}

/* The lstat type of rel in the spool: 'f', 'l', 'p', 'd', '?', or 0 when absent. */
static char kind(const char *rel)
{
    char p[512];
    in_spool(p, sizeof p, rel);
    struct stat s;
    if (lstat(p, &s) != 0)
        return 0;
    return S_ISREG(s.st_mode)    ? 'f'
           : S_ISLNK(s.st_mode)  ? 'l'
           : S_ISFIFO(s.st_mode) ? 'p'
           : S_ISDIR(s.st_mode)  ? 'd'
                                 : '?';
}

static char *read_rel(const char *rel)
{
    char p[512];
    size_t len;
    in_spool(p, sizeof p, rel);
    return support_read_file(p, &len);
}

/* The error file of a refused file names the reason. */
static bool error_says(const char *rel, const char *what)
{
    char *j = read_rel(rel);
    bool ok = j && strstr(j, what) && strstr(j, "\"status\" : \"SL_EFORBIDDEN\"");
    if (!ok)
        fprintf(stderr, "%s: %s\n", rel, j ? j : "(missing)");
    free(j);
    return ok;
}

/* ---------------------------------------------------------------------------
 * A picture of the tree outside the spool: every entry (not following links)
 * with its type, link count and content or target.  Equal pictures mean
 * nothing there was moved, created, removed or overwritten.
 * ------------------------------------------------------------------------- */
typedef struct pic {
    char *s;
    size_t len, cap;
} pic;

static void pic_add(pic *p, const char *text, size_t n)
{
    if (p->len + n + 1 > p->cap) {
        p->cap = (p->len + n + 1) * 2;
        REQUIRE((p->s = realloc(p->s, p->cap)) != NULL);
    }
    memcpy(p->s + p->len, text, n);
    p->len += n;
    p->s[p->len] = '\0';
}

static void pic_walk(pic *p, const char *dir)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort);
    REQUIRE(n >= 0);
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        char path[1024], line[1400];
        if (strcmp(name, ".") && strcmp(name, "..")) {
            snprintf(path, sizeof path, "%s/%s", dir, name);
            struct stat s;
            REQUIRE(lstat(path, &s) == 0);
            snprintf(line, sizeof line, "%s mode %o links %lu\n", path + strlen(outside),
                     (unsigned)s.st_mode, (unsigned long)s.st_nlink);
            pic_add(p, line, strlen(line));
            if (S_ISDIR(s.st_mode)) {
                pic_walk(p, path);
            } else if (S_ISREG(s.st_mode)) {
                size_t len = 0;
                char *data = support_read_file(path, &len);
                REQUIRE(data);
                pic_add(p, data, len);
                free(data);
            } else if (S_ISLNK(s.st_mode)) {
                ssize_t k = readlink(path, line, sizeof line - 1);
                REQUIRE(k >= 0);
                pic_add(p, line, (size_t)k);
            }
        }
        free(names[i]);
    }
    free(names);
}

static char *picture(void)
{
    pic p = {0};
    pic_add(&p, "", 0);
    pic_walk(&p, outside);
    return p.s;
}

/* True when the outside tree still looks as before; else prints the first
 * line that differs. */
static bool outside_unchanged(const char *before)
{
    char *now = picture();
    bool same = strcmp(now, before) == 0;
    if (!same) {
        size_t i = 0, line = 0;
        while (now[i] && now[i] == before[i])
            if (now[i++] == '\n')
                line = i;
        fprintf(stderr, "outside changed; was: %.*s\n                 now: %.*s\n",
                (int)strcspn(before + line, "\n"), before + line, (int)strcspn(now + line, "\n"),
                now + line);
    }
    free(now);
    return same;
}

#define CHECK_OUTSIDE_UNCHANGED(before) CHECK(outside_unchanged(before))

/* ---------------------------------------------------------------------------
 * The store.
 * ------------------------------------------------------------------------- */
static size_t frames_of(const char *tenant, const char *surgery)
{
    schema_key pk;
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(schema_pk_surgery(pk, tenant, surgery, &e) == SL_OK);
    store_query_opts q = {.range = {STORE_RANGE_BEGINS_WITH, "FRAME#", NULL},
                          .limit = STORE_PAGE_MAX};
    store_page page = {0};
    REQUIRE(store_query(st, STORE_ITEMS, pk, &q, &page, &e) == SL_OK);
    size_t n = page.count;
    store_page_free(&page);
    return n;
}

static void put_surgery(const char *tenant, const char *id)
{
    const char *body = "{\"hospital\":\"h\",\"room\":\"r\",\"procedure\":\"p\",\"surgeon\":\"s\","
                       "\"started_at\":\"2026-11-26T08:00:00Z\",\"fps\":30,\"frame_width\":640,"
                       "\"frame_height\":480,\"table\":[[0,0],[1,0],[1,1]]}";
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(ingest_surgery_put(st, tenant, id, body, strlen(body), NULL, &e) == SL_OK);
}

/* One frame with one detection: stored, it would show. */
static const char FRAME[] =
    "{\"frame\": 7, \"detections\": [{\"label\": \"scalpel\", \"confidence\": 0.9, "
    "\"box\": {\"x\": 0.1, \"y\": 0.1, \"w\": 0.2, \"h\": 0.2}}]}\n";
static const char BROKEN[] = "[{\"frame_id\":1,\"objects\":[]},{\"frame_id\":2,";

/* ---------------------------------------------------------------------------
 * The spool, its reports and the hook.
 * ------------------------------------------------------------------------- */
typedef struct seen {
    int ok, failed;
    char log[16384]; /* every report, one per line */
} seen;

static void on_file(void *ctx, const char *path, const ingest_summary *sum, const sl_error *e)
{
    seen *s = ctx;
    char line[1024];
    snprintf(line, sizeof line, "%s: %s%s\n", path + strlen(spool), sum ? "stored; " : "",
             e ? e->message : "");
    if (getenv("SL_TEST_VERBOSE"))
        fputs(line, stderr);
    if (strlen(s->log) + strlen(line) < sizeof s->log)
        strcat(s->log, line);
    if (sum && !e)
        s->ok++;
    else
        s->failed++;
}

/* True when a report names rel and says what. */
static bool reported(const seen *s, const char *rel, const char *what)
{
    char key[512];
    snprintf(key, sizeof key, "/%s", rel);
    for (const char *l = s->log; (l = strstr(l, key)) != NULL; l++) {
        const char *end = strchr(l, '\n');
        if (l[strlen(key)] != ':' && l[strlen(key)] != ' ')
            continue; /* a longer name */
        char *line = strndup(l, end ? (size_t)(end - l) : strlen(l));
        bool hit = strstr(line, what) != NULL;
        free(line);
        if (hit)
            return true;
    }
    fprintf(stderr, "no report of %s saying \"%s\" in:\n%s", rel, what, s->log);
    return false;
}

/* What the hook does when the spool is about to open `rel`. */
typedef struct swap {
    const char *rel;
    void (*act)(void);
    int fired;
} swap;
static swap armed;

static void before_open(void *ctx, const char *rel)
{
    (void)ctx;
    if (armed.rel && !strcmp(rel, armed.rel) && !armed.fired) {
        armed.fired = 1;
        armed.act();
    }
}

static void arm(const char *rel, void (*act)(void))
{
    armed = (swap){.rel = rel, .act = act};
}

static void run_once(ingest_spool *sp)
{
    sl_error e;
    sl_error_clear(&e);
    CHECK_INT(ingest_spool_run(sp, 0, &e), SL_OK);
}

static ingest_spool *open_spool(seen *s, ingest_spool_owner owner, uint32_t uid)
{
    ingest_spool *sp = NULL;
    sl_error e;
    sl_error_clear(&e);
    ingest_spool_options o = {
        .on_file = on_file, .ctx = s, .owner = owner, .owner_uid = uid, .before_open = before_open};
    if (ingest_spool_open(st, spool, &o, &sp, &e) != SL_OK)
        fprintf(stderr, "ingest_spool_open: %s\n", e.message);
    REQUIRE(sp);
    return sp;
}

/* ---------------------------------------------------------------------------
 * The swaps the hook makes.
 * ------------------------------------------------------------------------- */
static void swap_path(const char *rel, const char *target, bool park)
{
    char p[512], to[512];
    in_spool(p, sizeof p, rel);
    if (park) { /* keep what was there out of both trees */
        const char *base = strrchr(rel, '/');
        snprintf(to, sizeof to, "%s/%s", parked, base ? base + 1 : rel);
        REQUIRE(rename(p, to) == 0);
    } else {
        struct stat s;
        REQUIRE(lstat(p, &s) == 0);
        REQUIRE((S_ISDIR(s.st_mode) ? rmdir(p) : unlink(p)) == 0);
    }
    link_out(target, rel);
}

/* A new surgery folder, between its event and its open. */
static void swap_new_folder(void)
{
    swap_path("acme/Y", "ydir", false);
}

/* A watched surgery folder holding a file, between the file's event and
 * the open of its folder. */
static void swap_watched_folder(void)
{
    swap_path("acme/Z", "zdir", true);
}

/* A watched tenant folder, between a file's event and the open of the
 * folders it lies in. */
static void swap_tenant(void)
{
    swap_path("beta", "tdir", true);
}

/* A file, between taking its name and opening it. */
static void swap_file(void)
{
    swap_path("acme/s2/f.ndjson", "secret.ndjson", false);
}

/* ---------------------------------------------------------------------------
 * /proc detached (the by-path fallback of the watches).
 * ------------------------------------------------------------------------- */
static int detach_proc(void)
{
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        umount2("/proc", MNT_DETACH) != 0) {
        fprintf(stderr, "cannot detach /proc here (%s): skipped\n", strerror(errno));
        return -1;
    }
    return access("/proc/self/fd", F_OK) == 0 ? -1 : 0;
}

static void reattach_proc(void)
{
    /* the sanitizers read /proc at exit */
    (void)mount("proc", "/proc", "proc", 0, NULL);
}

int main(int argc, char **argv)
{
    bool noproc = argc > 1 && !strcmp(argv[1], "noproc");
    if (noproc && detach_proc() != 0)
        return 77;
    alarm(600); /* a spool that blocks (on a FIFO) fails the test rather than hanging it */
    REQUIRE(support_tmpdir(root, "ingest-spool-escape") == 0);
    snprintf(spool, sizeof spool, "%s/spool", root);
    snprintf(outside, sizeof outside, "%s/outside", root);
    snprintf(parked, sizeof parked, "%s/parked", root);
    REQUIRE(mkdir(spool, 0755) == 0 && mkdir(outside, 0755) == 0 && mkdir(parked, 0755) == 0);
    char uri[160];
    snprintf(uri, sizeof uri, "sqlite:%s/store.db", root);
    sl_error e;
    sl_error_clear(&e);
    REQUIRE(store_open(uri, NULL, &st, &e) == SL_OK);
    const char *acme[] = {"s1", "s2", "s3", "s4", "s5", "s6", "V", "X", "Y", "Z"};
    for (size_t i = 0; i < sizeof acme / sizeof *acme; i++)
        put_surgery("acme", acme[i]);
    put_surgery("beta", "W");
    put_surgery("gamma", "G");

    /* Outside: files a writer of the spool must not make it touch, each one
     * a valid input of the surgery the swap aims at. */
    char p[512];
    in_outside(p, sizeof p, "victim.txt");
    write_path(p, "precious\n");
    in_outside(p, sizeof p, "victim2.txt");
    write_path(p, "precious too\n");
    in_outside(p, sizeof p, "secret.ndjson");
    write_path(p, FRAME);
    in_outside(p, sizeof p, "orig.ndjson");
    write_path(p, FRAME);
    in_outside(p, sizeof p, "orig2.ndjson");
    write_path(p, FRAME);
    const char *dirs[] = {"xdir", "ydir", "zdir", "tdir", "tdir/W",
                          "d3",   "f3",   "vdir", "gdir", "gdir/G"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++)
        mkdir_out(dirs[i]);
    const char *files[] = {"xdir/x.ndjson",   "ydir/y.ndjson", "zdir/z.ndjson",
                           "tdir/W/w.ndjson", "vdir/v.ndjson", "gdir/G/g.ndjson"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        in_outside(p, sizeof p, files[i]);
        write_path(p, FRAME);
    }

    seen s = {0};
    ingest_spool *sp = open_spool(&s, INGEST_SPOOL_OWNER_SELF, 0);
    mkdir_rel("acme");
    mkdir_rel("acme/s1");
    mkdir_rel("acme/s2");
    mkdir_rel("acme/s3");
    mkdir_rel("acme/s4");
    mkdir_rel("beta");
    mkdir_rel("beta/W");
    run_once(sp);
    char *before = picture();

    /* 1. Links planted at the error file's names: a broken file's error
     * file is written beside it in failed/, never through them. */
    mkdir_rel("acme/s1/failed");
    link_out("victim.txt", "acme/s1/failed/bad.json.error.json.tmp");
    link_out("victim2.txt", "acme/s1/failed/bad.json.error.json");
    write_rel("acme/s1/bad.json", BROKEN);
    run_once(sp);
    CHECK_OUTSIDE_UNCHANGED(before);
    CHECK_INT(kind("acme/s1/failed/bad.json"), 'f');
    CHECK_INT(kind("acme/s1/failed/bad.json.error.json"), 'f');
    char *j = read_rel("acme/s1/failed/bad.json.error.json");
    CHECK(j && strstr(j, "cut off") && strstr(j, "\"status\" : \"SL_EINVAL\""));
    free(j);
    CHECK(reported(&s, "acme/s1/failed/bad.json", "cut off"));

    /* 2a. A surgery folder made, then swapped for a link before the watcher
     * looked (the events wait in the queue): the link is not followed. */
    mkdir_rel("acme/X");
    char xp[512];
    in_spool(xp, sizeof xp, "acme/X");
    REQUIRE(rmdir(xp) == 0);
    link_out("xdir", "acme/X");
    run_once(sp);
    CHECK_INT(frames_of("acme", "X"), 0);
    CHECK_OUTSIDE_UNCHANGED(before);
    CHECK(reported(&s, "acme/X", "symbolic link"));

    /* 2b. The same, swapped by the hook between the folder's event and its
     * open. */
    arm("acme/Y", swap_new_folder);
    mkdir_rel("acme/Y");
    run_once(sp);
    CHECK(armed.fired);
    CHECK_INT(frames_of("acme", "Y"), 0);
    CHECK_OUTSIDE_UNCHANGED(before);
    CHECK(reported(&s, "acme/Y", "symbolic link"));

    /* 2c. A watched surgery folder swapped for a link to a folder holding a
     * file of the same name, between the file's event and the open of its
     * folder: nothing from there is stored or moved. */
    mkdir_rel("acme/Z");
    run_once(sp); /* watched now */
    write_rel("acme/Z/z.ndjson", FRAME);
    arm("acme/Z", swap_watched_folder);
    run_once(sp);
    CHECK(armed.fired);
    CHECK_INT(frames_of("acme", "Z"), 0);
    CHECK_OUTSIDE_UNCHANGED(before);
    CHECK(reported(&s, "acme/Z", "symbolic link"));
    snprintf(p, sizeof p, "%s/Z/z.ndjson", parked);
    CHECK(access(p, F_OK) == 0); /* the real one was not taken either: it left the spool */

    /* 2d. A watched tenant folder swapped the same way. */
    write_rel("beta/W/w.ndjson", FRAME);
    arm("beta/W", swap_tenant);
    run_once(sp);
    CHECK(armed.fired);
    CHECK_INT(frames_of("beta", "W"), 0);
    CHECK_OUTSIDE_UNCHANGED(before);
    CHECK(reported(&s, "beta", "symbolic link"));

    /* 2e. A file swapped for a link to an outside file between taking its
     * name and opening it: refused, the link itself goes to failed/. */
    write_rel("acme/s2/f.ndjson", FRAME);
    arm("acme/s2/f.ndjson", swap_file);
    run_once(sp);
    CHECK(armed.fired);
    CHECK_INT(frames_of("acme", "s2"), 0);
    CHECK_OUTSIDE_UNCHANGED(before);
    CHECK_INT(kind("acme/s2/failed/f.ndjson"), 'l');
    CHECK(error_says("acme/s2/failed/f.ndjson.error.json", "symbolic link"));
    CHECK(reported(&s, "acme/s2/failed/f.ndjson", "symbolic link"));
    arm(NULL, NULL);

    /* 3. done/ and failed/ as links to outside folders: nothing is moved or
     * written through them; the files stay where they are (the good one is
     * stored), and both are reported. */
    link_out("d3", "acme/s3/done");
    link_out("f3", "acme/s3/failed");
    write_rel("acme/s3/good.ndjson", FRAME);
    write_rel("acme/s3/bad.json", BROKEN);
    run_once(sp);
    CHECK_OUTSIDE_UNCHANGED(before);
    CHECK_INT(kind("acme/s3/good.ndjson"), 'f');
    CHECK_INT(kind("acme/s3/bad.json"), 'f');
    CHECK_INT(frames_of("acme", "s3"), 1);
    CHECK(reported(&s, "acme/s3/good.ndjson", "done"));
    CHECK(reported(&s, "acme/s3/good.ndjson", "symbolic link"));
    CHECK(reported(&s, "acme/s3/bad.json", "cut off"));
    CHECK(reported(&s, "acme/s3/bad.json", "failed"));

    /* 4. A hard link to an outside file, moved in: not read, not stored;
     * the link goes to failed/, the original stays as it was. */
    char o[512], hl[512], hl2[512];
    in_outside(o, sizeof o, "orig.ndjson");
    in_spool(hl, sizeof hl, "acme/s4/.h.ndjson");
    in_spool(hl2, sizeof hl2, "acme/s4/h.ndjson");
    REQUIRE(link(o, hl) == 0 && rename(hl, hl2) == 0);
    free(before);
    before = picture(); /* orig.ndjson has two links now */
    run_once(sp);
    CHECK_INT(frames_of("acme", "s4"), 0);
    CHECK_OUTSIDE_UNCHANGED(before);
    CHECK_INT(kind("acme/s4/failed/h.ndjson"), 'f');
    CHECK(error_says("acme/s4/failed/h.ndjson.error.json", "hard link"));

    /* A symbolic link made in place, and one moved in. */
    link_out("orig.ndjson", "acme/s4/l.ndjson");
    run_once(sp);
    link_out("orig.ndjson", "acme/s4/.m.ndjson");
    in_spool(hl, sizeof hl, "acme/s4/.m.ndjson");
    in_spool(hl2, sizeof hl2, "acme/s4/m.ndjson");
    REQUIRE(rename(hl, hl2) == 0);
    run_once(sp);
    CHECK_INT(frames_of("acme", "s4"), 0);
    CHECK_OUTSIDE_UNCHANGED(before);
    CHECK_INT(kind("acme/s4/failed/l.ndjson"), 'l');
    CHECK_INT(kind("acme/s4/failed/m.ndjson"), 'l');
    CHECK(error_says("acme/s4/failed/l.ndjson.error.json", "symbolic link"));
    CHECK(error_says("acme/s4/failed/m.ndjson.error.json", "symbolic link"));

    /* A FIFO made in place: the watcher neither blocks on it nor reads it. */
    in_spool(p, sizeof p, "acme/s4/p.ndjson");
    REQUIRE(mkfifo(p, 0644) == 0);
    run_once(sp);
    CHECK_INT(kind("acme/s4/failed/p.ndjson"), 'p');
    CHECK(error_says("acme/s4/failed/p.ndjson.error.json", "FIFO"));
    CHECK(reported(&s, "acme/s4/failed/p.ndjson", "FIFO"));
    CHECK_INT(frames_of("acme", "s4"), 0);
    CHECK_INT(s.ok, 0);
    ingest_spool_close(&sp);

    /* Another owner than the one configured: refused. */
    seen so = {0};
    sp = open_spool(&so, INGEST_SPOOL_OWNER_UID, (uint32_t)geteuid() + 1);
    mkdir_rel("acme/s5");
    run_once(sp);
    write_rel("acme/s5/o.ndjson", FRAME);
    run_once(sp);
    CHECK_INT(frames_of("acme", "s5"), 0);
    CHECK_INT(kind("acme/s5/failed/o.ndjson"), 'f');
    CHECK(error_says("acme/s5/failed/o.ndjson.error.json", "owned by uid"));
    ingest_spool_close(&sp);
    /* The owner option. */
    ingest_spool_options oo = {0};
    sl_error_clear(&e);
    CHECK_INT(ingest_spool_owner_parse("any", &oo, &e), SL_OK);
    CHECK_INT(oo.owner, INGEST_SPOOL_OWNER_ANY);
    CHECK_INT(ingest_spool_owner_parse("1234", &oo, &e), SL_OK);
    CHECK_INT(oo.owner, INGEST_SPOOL_OWNER_UID);
    CHECK_INT(oo.owner_uid, 1234);
    CHECK_INT(ingest_spool_owner_parse("root", &oo, &e), SL_OK);
    CHECK_INT(oo.owner_uid, 0);
    CHECK_INT(ingest_spool_owner_parse("no-such-user-here", &oo, &e), SL_EINVAL);
    CHECK(strstr(e.message, "no-such-user-here") != NULL);
    sl_error_clear(&e);
    CHECK_INT(ingest_spool_owner_parse("12x", &oo, &e), SL_EINVAL);

    /* Placed while nobody watched, found by the start-up scan: a hard link,
     * a symbolic link and a FIFO in a surgery folder, a surgery folder and
     * a tenant folder that are links.  Nothing is followed or stored. */
    mkdir_rel("acme/s6");
    in_outside(o, sizeof o, "orig2.ndjson");
    in_spool(hl, sizeof hl, "acme/s6/hl.ndjson");
    REQUIRE(link(o, hl) == 0);
    link_out("orig2.ndjson", "acme/s6/sl.ndjson");
    in_spool(p, sizeof p, "acme/s6/ff.ndjson");
    REQUIRE(mkfifo(p, 0644) == 0);
    link_out("vdir", "acme/V");
    link_out("gdir", "gamma");
    free(before);
    before = picture();
    seen s3 = {0};
    sp = open_spool(&s3, INGEST_SPOOL_OWNER_SELF, 0);
    run_once(sp);
    CHECK_OUTSIDE_UNCHANGED(before);
    CHECK_INT(frames_of("acme", "s6"), 0);
    CHECK_INT(frames_of("acme", "V"), 0);
    CHECK_INT(frames_of("gamma", "G"), 0);
    CHECK_INT(kind("acme/s6/failed/hl.ndjson"), 'f');
    CHECK_INT(kind("acme/s6/failed/sl.ndjson"), 'l');
    CHECK_INT(kind("acme/s6/failed/ff.ndjson"), 'p');
    CHECK(reported(&s3, "acme/V", "symbolic link"));
    CHECK(reported(&s3, "gamma", "symbolic link"));
    CHECK_INT(s3.ok, 0);
    /* A good file still goes through, after all that. */
    write_rel("acme/s6/fine.ndjson", FRAME);
    run_once(sp);
    CHECK_INT(kind("acme/s6/done/fine.ndjson"), 'f');
    CHECK_INT(frames_of("acme", "s6"), 1);
    CHECK_INT(s3.ok, 1);
    ingest_spool_close(&sp);

    free(before);
    store_close(&st);
    support_rmrf(root);
    if (noproc)
        reattach_proc();
    return check_finish();
}
