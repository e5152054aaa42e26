/* ingest_http.c -- helpers of the ingest-route tests (see ingest_http.h):
 * frames read back and parsed, store dumps, the tenant's set-up. */
#include "ingest_http.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "engine/engine.h"
#include "store/store.h"

#ifndef SL_FIXTURES
#error "SL_FIXTURES must name the fixtures folder"
#endif

int ih_req(const support_server *s, const char *method, const char *path, const char *key,
           const char *body, support_resp *r)
{
    char url[sizeof s->url + 2048];
    snprintf(url, sizeof url, "%s%s", s->url, path);
    return support_http(method, url, key, body, body ? strlen(body) : 0, NULL, r);
}

/* ---- frames ---- */

void ih_frames_free(ih_frames *fr)
{
    for (size_t i = 0; i < fr->n; i++)
        free(fr->f[i].d);
    free(fr->f);
    memset(fr, 0, sizeof *fr);
}

static ih_frame *frames_add(ih_frames *fr, int64_t frame, size_t n)
{
    if (fr->n == fr->cap) {
        size_t cap = fr->cap ? fr->cap * 2 : 64;
        ih_frame *f = realloc(fr->f, cap * sizeof *f);
        if (!f)
            return NULL;
        fr->f = f;
        fr->cap = cap;
    }
    ih_frame *f = &fr->f[fr->n++];
    f->frame = frame;
    f->n = n;
    f->d = calloc(n ? n : 1, sizeof *f->d);
    return f->d ? f : NULL;
}

static double num_of(yajl_val v, const char *key, int *ok)
{
    const char *path[] = {key, NULL};
    yajl_val n = yajl_tree_get(v, path, yajl_t_number);
    if (!n) {
        *ok = 0;
        return 0;
    }
    return YAJL_GET_DOUBLE(n);
}

/* One page's frames into out; 0 when the page has the contract's shape. */
static int page_frames(yajl_val root, ih_frames *out)
{
    const char *fp[] = {"frames", NULL};
    yajl_val frames = yajl_tree_get(root, fp, yajl_t_array);
    if (!frames)
        return -1;
    for (size_t i = 0; i < frames->u.array.len; i++) {
        yajl_val f = frames->u.array.values[i];
        const char *np[] = {"frame", NULL}, *dp[] = {"detections", NULL};
        yajl_val num = yajl_tree_get(f, np, yajl_t_number);
        yajl_val dets = yajl_tree_get(f, dp, yajl_t_array);
        if (!num || !YAJL_IS_INTEGER(num) || !dets || f->u.object.len != 2)
            return -1;
        ih_frame *fr = frames_add(out, YAJL_GET_INTEGER(num), dets->u.array.len);
        if (!fr)
            return -1;
        for (size_t k = 0; k < dets->u.array.len; k++) {
            yajl_val d = dets->u.array.values[k];
            const char *lp[] = {"label", NULL}, *sp[] = {"sku", NULL}, *bp[] = {"box", NULL};
            yajl_val label = yajl_tree_get(d, lp, yajl_t_string);
            yajl_val sku = yajl_tree_get(d, sp, yajl_t_any);
            yajl_val box = yajl_tree_get(d, bp, yajl_t_object);
            int ok = label && sku && box && (YAJL_IS_STRING(sku) || YAJL_IS_NULL(sku)) &&
                     d->u.object.len == 4 && box->u.object.len == 4;
            if (!ok)
                return -1;
            ih_det *x = &fr->d[k];
            snprintf(x->label, sizeof x->label, "%s", label->u.string);
            x->has_sku = YAJL_IS_STRING(sku);
            snprintf(x->sku, sizeof x->sku, "%s", x->has_sku ? sku->u.string : "");
            x->conf = num_of(d, "confidence", &ok);
            x->x = num_of(box, "x", &ok);
            x->y = num_of(box, "y", &ok);
            x->w = num_of(box, "w", &ok);
            x->h = num_of(box, "h", &ok);
            if (!ok)
                return -1;
        }
    }
    return 0;
}

int ih_get_frames(const support_server *s, const char *key, const char *surgery, int limit,
                  const char *extra, ih_frames *out)
{
    char cursor[1100] = "", path[2048];
    int rc = 0;
    memset(out, 0, sizeof *out);
    for (int guard = 0; guard < 100000; guard++) {
        support_resp r;
        snprintf(path, sizeof path, "/v1/surgeries/%s/frames?limit=%d%s%s%s%s", surgery, limit,
                 extra ? "&" : "", extra ? extra : "", cursor[0] ? "&cursor=" : "", cursor);
        if (ih_req(s, "GET", path, key, NULL, &r) != 0 || r.status != 200) {
            fprintf(stderr, "GET %s: %ld %s\n", path, r.status, r.body ? r.body : "");
            support_resp_free(&r);
            return -1;
        }
        char err[128];
        yajl_val root = yajl_tree_parse(r.body, err, sizeof err);
        const char *np[] = {"next", NULL};
        yajl_val next = root ? yajl_tree_get(root, np, yajl_t_any) : NULL;
        if (!root || !next || root->u.object.len != 2 || page_frames(root, out) != 0 ||
            !(YAJL_IS_NULL(next) || YAJL_IS_STRING(next))) {
            fprintf(stderr, "GET %s: not the contract's shape: %.300s\n", path, r.body);
            rc = -1;
        }
        out->pages++;
        int more = rc == 0 && YAJL_IS_STRING(next);
        if (more)
            snprintf(cursor, sizeof cursor, "%s", next->u.string);
        if (root)
            yajl_tree_free(root);
        support_resp_free(&r);
        if (!more)
            break;
    }
    return rc;
}

const ih_sku ih_fixture_skus[] = {
    /* FORCEPS-1 "forceps": that exact label only. */
    {"forceps", "FORCEPS-1"},
    {"Forceps", NULL},
    {"forceps ", NULL},
    {"forceps-2", NULL},
    /* SC-10 "scalpel", "(?i)scalpel[ _-]?10". */
    {"scalpel", "SC-10"},
    {"scalpel10", "SC-10"},
    {"scalpel 10", "SC-10"},
    {"Scalpel_10", "SC-10"},
    {"SCALPEL-10", "SC-10"},
    {"Scalpel", NULL}, /* case as written: only the pattern with 10 has (?i) */
    {"scalpel-holder", NULL},
    {"scalpel 11", NULL},
    {"scalpel  10", NULL},
    {"scalpel-100", NULL},
    {"a scalpel", NULL},
    /* SPONGE-18 "sponge", "(?i)surgical sponge". */
    {"sponge", "SPONGE-18"},
    {"surgical sponge", "SPONGE-18"},
    {"Surgical sponge", "SPONGE-18"},
    {"SURGICAL SPONGE", "SPONGE-18"},
    {"Sponge", NULL},
    {"sponges", NULL},
    {"surgical sponges", NULL},
    {"surgical  sponge", NULL},
    /* Other labels of the fixtures (COCO's default map, tfod, ndjson, darknet). */
    {"needle holder", NULL},
    {"Pinzette (anatomisch)", NULL},
    {"person", NULL},
    {"bottle", NULL},
    {"knife", NULL},
    {"scissors", NULL},
    {"Scissors", NULL},
    /* ../shared/realdata/darknet */
    {"car", NULL},
    {"truck", NULL},
    {"bus", NULL},
    {"motorbike", NULL},
    {"bicycle", NULL},
    {"joint", NULL},
    {NULL, NULL},
};

const ih_sku *ih_sku_find(const ih_sku *table, const char *label)
{
    for (const ih_sku *e = table; e && e->label; e++)
        if (!strcmp(e->label, label))
            return e;
    return NULL;
}

typedef struct parse_ctx {
    ih_frames *out;
    const ih_sku *skus;
    ingest_parser *p;
} parse_ctx;

static sl_status on_frame(void *ctx, const ingest_frame *f, sl_error *err)
{
    parse_ctx *pc = ctx;
    ih_frame *fr = frames_add(pc->out, f->frame, f->count);
    if (!fr)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < f->count; i++) {
        const ingest_detection *d = &f->detections[i];
        ih_det *x = &fr->d[i];
        snprintf(x->label, sizeof x->label, "%s", d->label);
        const ih_sku *e = pc->skus ? ih_sku_find(pc->skus, d->label) : NULL;
        if (pc->skus && !e)
            return sl_error_set(err, SL_EINVAL,
                                "label \"%.100s\" (frame %lld) is not in ih_fixture_skus: write "
                                "down the SKU it must get",
                                d->label, (long long)f->frame);
        x->has_sku = e && e->sku;
        snprintf(x->sku, sizeof x->sku, "%s", x->has_sku ? e->sku : "");
        x->conf = d->confidence;
        x->x = d->x;
        x->y = d->y;
        x->w = d->w;
        x->h = d->h;
    }
    return SL_OK;
}

int ih_frames_check_skus(const ih_frames *fr, const ih_sku *skus, const char *what)
{
    int bad = 0;
    for (size_t i = 0; i < fr->n; i++)
        for (size_t k = 0; k < fr->f[i].n; k++) {
            const ih_det *d = &fr->f[i].d[k];
            const ih_sku *e = ih_sku_find(skus, d->label);
            const char *want = e && e->sku ? e->sku : "";
            if (!e || d->has_sku != (e->sku != NULL) || strcmp(d->sku, want)) {
                if (bad++ < 10)
                    fprintf(stderr, "%s: frame %lld: label \"%s\" got SKU %s%s%s, expected %s\n",
                            what, (long long)fr->f[i].frame, d->label, d->has_sku ? "\"" : "",
                            d->has_sku ? d->sku : "null", d->has_sku ? "\"" : "",
                            !e       ? "(not listed)"
                            : e->sku ? e->sku
                                     : "null");
            }
        }
    return bad;
}

int ih_parse_file(const char *path, const ingest_parse_options *opt, const ih_sku *skus,
                  ih_frames *out)
{
    size_t len = 0;
    char *text = support_read_file(path, &len);
    parse_ctx pc = {out, skus, NULL};
    sl_error err;
    sl_error_clear(&err);
    memset(out, 0, sizeof *out);
    int rc = text && ingest_parser_new(opt, on_frame, &pc, &pc.p, &err) == SL_OK &&
                     ingest_parser_feed(pc.p, text, len, &err) == SL_OK &&
                     ingest_parser_finish(pc.p, &err) == SL_OK
                 ? 0
                 : -1;
    if (rc)
        fprintf(stderr, "parsing %s: %s\n", path, err.message);
    ingest_parser_free(&pc.p);
    free(text);
    return rc;
}

/* Values compare in micro-units, as they are stored. */
static int micro_eq(double a, double b)
{
    return llround(a * 1e6) == llround(b * 1e6);
}

int ih_frames_equal(const ih_frames *a, const ih_frames *b, const char *what)
{
    if (a->n != b->n) {
        fprintf(stderr, "%s: %zu frames, expected %zu\n", what, a->n, b->n);
        return -1;
    }
    for (size_t i = 0; i < a->n; i++) {
        const ih_frame *x = &a->f[i], *y = &b->f[i];
        if (x->frame != y->frame || x->n != y->n) {
            fprintf(stderr, "%s: frame #%zu is %lld with %zu detections, expected %lld with %zu\n",
                    what, i, (long long)x->frame, x->n, (long long)y->frame, y->n);
            return -1;
        }
        for (size_t k = 0; k < x->n; k++) {
            const ih_det *p = &x->d[k], *q = &y->d[k];
            if (strcmp(p->label, q->label) || p->has_sku != q->has_sku || strcmp(p->sku, q->sku) ||
                !micro_eq(p->conf, q->conf) || !micro_eq(p->x, q->x) || !micro_eq(p->y, q->y) ||
                !micro_eq(p->w, q->w) || !micro_eq(p->h, q->h)) {
                fprintf(stderr,
                        "%s: frame %lld detection %zu is %s/%s %.6f [%.6f %.6f %.6f %.6f], "
                        "expected %s/%s %.6f [%.6f %.6f %.6f %.6f]\n",
                        what, (long long)x->frame, k, p->label, p->sku, p->conf, p->x, p->y, p->w,
                        p->h, q->label, q->sku, q->conf, q->x, q->y, q->w, q->h);
                return -1;
            }
        }
    }
    return 0;
}

/* ---- the store ---- */

static int dump_table(store *st, store_table t, const char *prefix, ih_dump *d)
{
    char token[STORE_PAGE_TOKEN_MAX] = "";
    sl_error err;
    for (;;) {
        store_page page = {0};
        store_query_opts q = {.limit = STORE_PAGE_MAX, .page_token = token};
        sl_error_clear(&err);
        if (store_scan(st, t, prefix, &q, &page, &err) != SL_OK) {
            fprintf(stderr, "scan: %s\n", err.message);
            return -1;
        }
        for (size_t i = 0; i < page.count; i++) {
            char *grown = realloc(d->bytes, d->len + page.docs[i].len + 1);
            if (!grown) {
                store_page_free(&page);
                return -1;
            }
            d->bytes = grown;
            memcpy(d->bytes + d->len, page.docs[i].data, page.docs[i].len);
            d->len += page.docs[i].len;
            d->docs++;
        }
        int more = page.next_token != NULL;
        if (more)
            snprintf(token, sizeof token, "%s", page.next_token);
        store_page_free(&page);
        if (!more)
            break;
    }
    return 0;
}

int ih_dump_store(const char *store_uri, ih_dump *out)
{
    store *st = NULL;
    store_options o = {.no_create = 1, .read_only = 1};
    store_feed_stats fs;
    sl_error err;
    sl_error_clear(&err);
    memset(out, 0, sizeof *out);
    int rc = store_open(store_uri, &o, &st, &err) == SL_OK ? 0 : -1;
    if (rc == 0)
        rc = dump_table(st, STORE_ITEMS, "", out);
    if (rc == 0)
        rc = dump_table(st, STORE_AGGREGATES, "T#", out);
    if (rc == 0 && store_feed_stats_get(st, NULL, &fs, &err) == SL_OK)
        snprintf(out->head, sizeof out->head, "%s", fs.head_token);
    else
        rc = -1;
    store_close(&st);
    return rc;
}

void ih_dump_free(ih_dump *d)
{
    free(d->bytes);
    memset(d, 0, sizeof *d);
}

int ih_wait_listener(const char *store_uri)
{
    store *st = NULL;
    store_options o = {.no_create = 1, .read_only = 1};
    store_feed_stats fs;
    sl_error err;
    sl_error_clear(&err);
    int rc = store_open(store_uri, &o, &st, &err) == SL_OK ? -1 : -2;
    for (int i = 0; rc == -1 && i < 400; i++) {
        sl_error_clear(&err);
        if (store_feed_stats_get(st, ENGINE_CONSUMER, &fs, &err) == SL_OK && fs.behind_events == 0)
            rc = 0;
        else
            support_sleep_ms(50);
    }
    store_close(&st);
    return rc;
}

/* ---- set-up ---- */

int ih_tenant(const support_server *s, const char *tenant, ih_keys *k)
{
    return ih_tenant_of_kind(s, tenant, "hospital", k);
}

int ih_tenant_of_kind(const support_server *s, const char *tenant, const char *kind, ih_keys *k)
{
    char *const keys[] = {k->admin, k->ingest, k->staff, k->viewer};
    static const char *const roles[] = {"admin", "ingest", "staff", "viewer"};
    int rc = support_tenant(s->store, tenant, kind);
    for (size_t i = 0; rc == 0 && i < sizeof roles / sizeof roles[0]; i++)
        rc = support_key(s->store, tenant, roles[i], keys[i]);
    return rc;
}

int ih_put_surgery(const support_server *s, const char *key, const char *surgery)
{
    size_t len = 0;
    char path[256];
    char *body = support_read_file(SL_FIXTURES "/surgery/surgery.json", &len);
    support_resp r;
    snprintf(path, sizeof path, "/v1/surgeries/%s", surgery);
    int rc =
        body && ih_req(s, "PUT", path, key, body, &r) == 0 && (r.status == 201 || r.status == 200)
            ? 0
            : -1;
    if (body)
        support_resp_free(&r);
    free(body);
    return rc;
}

int ih_put_catalog(const support_server *s, const char *key)
{
    static const char *const entries[][2] = {
        {"FORCEPS-1", "forceps"}, {"SC-10", "scalpel"}, {"SPONGE-18", "sponge"}};
    for (size_t i = 0; i < 3; i++) {
        char file[512], path[256];
        size_t len = 0;
        snprintf(file, sizeof file, SL_FIXTURES "/catalog/%s.json", entries[i][1]);
        snprintf(path, sizeof path, "/v1/catalog/%s", entries[i][0]);
        char *body = support_read_file(file, &len);
        support_resp r;
        int ok = body && ih_req(s, "PUT", path, key, body, &r) == 0 &&
                 (r.status == 201 || r.status == 200);
        if (body)
            support_resp_free(&r);
        free(body);
        if (!ok)
            return -1;
    }
    return 0;
}
