/* usage_frames.c -- what the usage analysis reads from the store: the
 * surgery's META and its frames, in frame order, a page at a time, each
 * frame's packed detections unpacked straight from the BSON binary into the
 * tracker's input (usage_int.h).  Labels are mapped with the CURRENT catalog
 * (and the occluder pattern) once per distinct label: a small map keeps
 * label -> class and how many detections carried it. */
#include "usage_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------
 * The surgery.
 * ------------------------------------------------------------------------- */
static sl_status meta_corrupt(sl_error *err, const char *surgery, const char *field,
                              const char *why)
{
    return sl_error_set_at(err, SL_ECORRUPT, field, -1, "surgery \"%s\": %s %s", surgery, field,
                           why);
}

static bool number_of(const bson_iter_t *it, double *out)
{
    if (!BSON_ITER_HOLDS_NUMBER(it))
        return false;
    *out = bson_iter_as_double(it);
    return true;
}

/* table: 3..256 points [x, y] in [0, 1]. */
static sl_status read_table(bson_iter_t *it, const char *surgery, engine__usage_surgery *out,
                            sl_error *err)
{
    bson_iter_t pts, xy;
    size_t n = 0;
    if (!BSON_ITER_HOLDS_ARRAY(it) || !bson_iter_recurse(it, &pts))
        return meta_corrupt(err, surgery, SCHEMA_F_TABLE, "is not an array");
    while (bson_iter_next(&pts)) {
        double v[2];
        int k = 0;
        if (n == SCHEMA_TABLE_POINTS_MAX)
            return meta_corrupt(err, surgery, SCHEMA_F_TABLE, "has too many points");
        if (!BSON_ITER_HOLDS_ARRAY(&pts) || !bson_iter_recurse(&pts, &xy))
            return meta_corrupt(err, surgery, SCHEMA_F_TABLE, "holds a point that is no array");
        while (bson_iter_next(&xy)) {
            if (k == 2 || !number_of(&xy, &v[k]) || !(v[k] >= 0 && v[k] <= 1))
                return meta_corrupt(err, surgery, SCHEMA_F_TABLE,
                                    "holds a point that is not [x, y] in [0, 1]");
            k++;
        }
        if (k != 2)
            return meta_corrupt(err, surgery, SCHEMA_F_TABLE,
                                "holds a point that is not [x, y] in [0, 1]");
        out->px[n] = (int32_t)(v[0] * 1e6 + 0.5);
        out->py[n] = (int32_t)(v[1] * 1e6 + 0.5);
        n++;
    }
    if (n < SCHEMA_TABLE_POINTS_MIN)
        return meta_corrupt(err, surgery, SCHEMA_F_TABLE, "has fewer than 3 points");
    out->npoints = n;
    return SL_OK;
}

static sl_status read_name(bson_iter_t *it, const char *surgery, const char *field, char *out,
                           sl_error *err)
{
    uint32_t len = 0;
    const char *v = BSON_ITER_HOLDS_UTF8(it) ? bson_iter_utf8(it, &len) : NULL;
    if (!v || schema_component_check_n(field, v, len, NULL) != SL_OK)
        return meta_corrupt(err, surgery, field, "is not a valid name");
    memcpy(out, v, len);
    out[len] = '\0';
    return SL_OK;
}

sl_status engine__usage_surgery_get(store *s, const char *tenant, const char *surgery,
                                    engine__usage_surgery *out, sl_error *err)
{
    sl_status rc = SL_OK;
    schema_key pk;
    bson_t *doc = NULL;
    bson_iter_t it;
    sl_error e;
    sl_error_clear(&e);
    engine__usage_surgery m;
    memset(&m, 0, sizeof m);
    bool seen_h = false, seen_p = false, seen_s = false, seen_f = false, seen_t = false;
    if ((rc = schema_pk_surgery(pk, tenant, surgery, err)) != SL_OK)
        goto out;
    if ((rc = store_get(s, STORE_ITEMS, pk, SCHEMA_SK_META, &doc, &e)) != SL_OK) {
        if (rc == SL_ENOTFOUND)
            rc = sl_error_set_at(err, SL_ENOTFOUND, "surgery", -1,
                                 "no surgery \"%s\" in tenant \"%s\"", surgery, tenant);
        else
            sl_error_set_at(err, rc, e.field, e.offset, "%s", e.message);
        goto out;
    }
    if (!bson_iter_init(&it, doc)) {
        rc = meta_corrupt(err, surgery, "document", "is not BSON");
        goto out;
    }
    while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        if (!strcmp(k, SCHEMA_F_VERSION)) {
            m.version = BSON_ITER_HOLDS_INT64(&it) ? bson_iter_int64(&it) : 0;
        } else if (!strcmp(k, SCHEMA_F_TYPE)) {
            if (!BSON_ITER_HOLDS_UTF8(&it) ||
                strcmp(bson_iter_utf8(&it, NULL), SCHEMA_TYPE_SURGERY))
                rc = meta_corrupt(err, surgery, k, "is not \"" SCHEMA_TYPE_SURGERY "\"");
        } else if (!strcmp(k, SCHEMA_F_HOSPITAL)) {
            seen_h = true;
            rc = read_name(&it, surgery, k, m.hospital, err);
        } else if (!strcmp(k, SCHEMA_F_PROCEDURE)) {
            seen_p = true;
            rc = read_name(&it, surgery, k, m.procedure, err);
        } else if (!strcmp(k, SCHEMA_F_STARTED_MS)) {
            seen_s = true;
            if (!BSON_ITER_HOLDS_INT64(&it))
                rc = meta_corrupt(err, surgery, k, "is not an int64");
            else
                m.started_ms = bson_iter_int64(&it);
        } else if (!strcmp(k, SCHEMA_F_FPS)) {
            seen_f = true;
            if (!number_of(&it, &m.fps) || !(m.fps > 0 && m.fps <= SCHEMA_FPS_MAX))
                rc = meta_corrupt(err, surgery, k, "is not a frame rate above 0 and at most 1000");
        } else if (!strcmp(k, SCHEMA_F_TABLE)) {
            seen_t = true;
            rc = read_table(&it, surgery, &m, err);
        }
        if (rc != SL_OK)
            goto out;
    }
    const char *missing = !seen_h   ? SCHEMA_F_HOSPITAL
                          : !seen_p ? SCHEMA_F_PROCEDURE
                          : !seen_s ? SCHEMA_F_STARTED_MS
                          : !seen_f ? SCHEMA_F_FPS
                          : !seen_t ? SCHEMA_F_TABLE
                                    : NULL;
    if (missing) {
        rc = meta_corrupt(err, surgery, missing, "is missing");
        goto out;
    }
    if (m.version <= 0) {
        rc = meta_corrupt(err, surgery, SCHEMA_F_VERSION, "is missing");
        goto out;
    }
    *out = m;
out:
    if (doc)
        bson_destroy(doc);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Labels: label -> class and count.  The entries are a dense array; an
 * open-addressing table of their indices finds them.
 * ------------------------------------------------------------------------- */
typedef struct lentry {
    uint64_t hash;
    uint32_t off, len; /* into the arena */
    uint32_t cls;
    int64_t count;
} lentry;

struct engine__usage_labels {
    lentry *ents;
    size_t n, ecap;
    uint32_t *slots; /* index + 1 of an entry; 0: empty */
    size_t cap;      /* a power of two, at least twice n */
    char *arena;
    size_t alen, acap;
};

static uint64_t fnv(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

void engine__usage_labels_free(engine__usage_labels **lp)
{
    if (!lp || !*lp)
        return;
    free((*lp)->ents);
    free((*lp)->slots);
    free((*lp)->arena);
    free(*lp);
    *lp = NULL;
}

/* The slot of label s (its entry's, or the empty one where it goes). */
static uint32_t *find(engine__usage_labels *l, const char *s, size_t len, uint64_t h)
{
    size_t mask = l->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        uint32_t *slot = &l->slots[i];
        if (!*slot)
            return slot;
        const lentry *e = &l->ents[*slot - 1];
        if (e->hash == h && e->len == len && !memcmp(l->arena + e->off, s, len))
            return slot;
    }
}

static bool rehash(engine__usage_labels *l, size_t cap)
{
    uint32_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return false;
    free(l->slots);
    l->slots = slots;
    l->cap = cap;
    for (size_t k = 0; k < l->n; k++) {
        size_t j = l->ents[k].hash & (cap - 1);
        while (slots[j])
            j = (j + 1) & (cap - 1);
        slots[j] = (uint32_t)k + 1;
    }
    return true;
}

static sl_status labels_new(engine__usage_labels **out, sl_error *err)
{
    engine__usage_labels *l = calloc(1, sizeof *l);
    if (!l || !rehash(l, 64)) {
        engine__usage_labels_free(&l);
        return sl_error_set(err, SL_ENOMEM, "out of memory mapping labels");
    }
    *out = l;
    return SL_OK;
}

/* The class of a label seen for the first time. */
static sl_status classify(const schema_catalog *catalog, const schema_catalog *occluders,
                          const char *s, size_t len, uint32_t *cls, sl_error *err)
{
    size_t idx;
    sl_status rc = schema_catalog_match(catalog, s, len, &idx, err);
    if (rc == SL_OK && idx != SCHEMA_CATALOG_NONE) {
        *cls = (uint32_t)idx;
    } else if (rc == SL_OK) {
        rc = schema_catalog_match(occluders, s, len, &idx, err);
        if (rc == SL_OK)
            *cls = idx != SCHEMA_CATALOG_NONE ? ENGINE__USAGE_OCCLUDER : ENGINE__USAGE_IGNORE;
    }
    return rc;
}

/* The index of label s[0..len)'s entry (a new one classified) into *out. */
static sl_status label_get(engine__usage_labels *l, const schema_catalog *catalog,
                           const schema_catalog *occluders, const char *s, size_t len,
                           uint32_t *out, sl_error *err)
{
    sl_status rc = SL_OK;
    uint64_t h = fnv(s, len);
    uint32_t *slot = find(l, s, len, h), cls = ENGINE__USAGE_IGNORE;
    if (*slot) {
        *out = *slot - 1;
        goto out;
    }
    if (l->n == ENGINE_USAGE_LABELS_MAX) {
        rc = sl_error_set_at(err, SL_ETOOLARGE, SCHEMA_F_FRAME_LABELS, -1,
                             "more than %u distinct detector labels", ENGINE_USAGE_LABELS_MAX);
        goto out;
    }
    if ((rc = classify(catalog, occluders, s, len, &cls, err)) != SL_OK)
        goto out;
    if (l->alen + len > l->acap) {
        size_t c = l->acap ? l->acap : 4096;
        while (c < l->alen + len)
            c *= 2;
        char *a = realloc(l->arena, c);
        if (!a)
            goto nomem;
        l->arena = a;
        l->acap = c;
    }
    if (l->n == l->ecap) {
        size_t c = l->ecap ? l->ecap * 2 : 64;
        lentry *e = realloc(l->ents, c * sizeof *e);
        if (!e)
            goto nomem;
        l->ents = e;
        l->ecap = c;
    }
    memcpy(l->arena + l->alen, s, len);
    l->ents[l->n] = (lentry){h, (uint32_t)l->alen, (uint32_t)len, cls, 0};
    l->alen += len;
    *slot = (uint32_t)++l->n;
    if (2 * l->n > l->cap && !rehash(l, l->cap * 2))
        goto nomem;
    *out = (uint32_t)l->n - 1;
    goto out;
nomem:
    rc = sl_error_set(err, SL_ENOMEM, "out of memory mapping labels");
out:
    return rc;
}

static int by_count(const engine__usage_label *a, const engine__usage_label *b)
{
    if (a->detections != b->detections)
        return a->detections > b->detections ? -1 : 1;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->label, b->label, n);
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

size_t engine__usage_labels_unmapped(const engine__usage_labels *l, engine__usage_label *out,
                                     size_t max)
{
    /* The best max, kept sorted by insertion (max is the summary's few). */
    size_t nb = 0;
    for (size_t i = 0; l && max && i < l->n; i++) {
        const lentry *e = &l->ents[i];
        if (e->cls < ENGINE__USAGE_IGNORE || e->count == 0)
            continue; /* a SKU, or in no detection */
        engine__usage_label u = {l->arena + e->off, e->len, e->count,
                                 e->cls == ENGINE__USAGE_OCCLUDER};
        if (nb == max && by_count(&u, &out[nb - 1]) >= 0)
            continue;
        size_t k = nb < max ? nb++ : nb - 1;
        while (k > 0 && by_count(&u, &out[k - 1]) < 0) {
            out[k] = out[k - 1];
            k--;
        }
        out[k] = u;
    }
    return nb;
}

/* ---------------------------------------------------------------------------
 * Frames.
 * ------------------------------------------------------------------------- */
typedef struct reader {
    const schema_catalog *catalog, *occluders;
    engine__usage_tracker *tracker;
    engine__usage_labels *labels;
    engine__usage_counts counts;
    /* per frame, grown with the largest: the entries of its labels */
    uint32_t *local;
    size_t lcap;
    engine__usage_det *dets;
    size_t dcap;
} reader;

static sl_status frame_corrupt(sl_error *err, const char *sk, const char *field, const char *why)
{
    return sl_error_set_at(err, SL_ECORRUPT, field, -1, "frame %s: %s %s", sk, field, why);
}

static sl_status one_frame(reader *r, const store_page *page, size_t i, sl_error *err)
{
    sl_status rc = SL_OK;
    const char *sk = page->docs[i].sk;
    bson_t view;
    bson_iter_t it, lab;
    int64_t frame = -1;
    int32_t n = -1;
    const uint8_t *det = NULL;
    uint32_t det_len = 0, nlabels = 0;
    bool has_labels = false, is_frame = false;
    uint32_t want;
    if (schema_sk_frame_parse(sk, &want, NULL) != SL_OK) {
        rc = frame_corrupt(err, sk, SCHEMA_F_SK, "is not FRAME#<9 digits>");
        goto out;
    }
    if (!store_page_view(page, i, &view) || !bson_iter_init(&it, &view)) {
        rc = frame_corrupt(err, sk, "document", "is not BSON");
        goto out;
    }
    while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        if (!strcmp(k, SCHEMA_F_FRAME_DET)) {
            bson_subtype_t st;
            if (!BSON_ITER_HOLDS_BINARY(&it)) {
                rc = frame_corrupt(err, sk, k, "is not binary");
                goto out;
            }
            bson_iter_binary(&it, &st, &det_len, &det);
        } else if (!strcmp(k, SCHEMA_F_FRAME_LABELS)) {
            if (!BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &lab)) {
                rc = frame_corrupt(err, sk, k, "is not an array");
                goto out;
            }
            has_labels = true;
        } else if (!strcmp(k, SCHEMA_F_FRAME)) {
            if (!BSON_ITER_HOLDS_INT64(&it) || (frame = bson_iter_int64(&it)) != (int64_t)want) {
                rc = frame_corrupt(err, sk, k, "disagrees with the key");
                goto out;
            }
        } else if (!strcmp(k, SCHEMA_F_FRAME_N)) {
            if (!BSON_ITER_HOLDS_INT32(&it) || (n = bson_iter_int32(&it)) < 0) {
                rc = frame_corrupt(err, sk, k, "is not a count");
                goto out;
            }
        } else if (!strcmp(k, SCHEMA_F_TYPE)) {
            is_frame =
                BSON_ITER_HOLDS_UTF8(&it) && !strcmp(bson_iter_utf8(&it, NULL), SCHEMA_TYPE_FRAME);
        }
    }
    if (!is_frame || frame < 0 || n < 0 || !has_labels || (n > 0 && !det)) {
        rc = frame_corrupt(err, sk, "document",
                           "is not a frame (type, frame, n, labels and det are required)");
        goto out;
    }
    if ((uint64_t)det_len != (uint64_t)n * SCHEMA_FRAME_DET_SIZE) {
        rc = frame_corrupt(err, sk, SCHEMA_F_FRAME_DET, "does not hold n detections");
        goto out;
    }
    /* The frame's labels: each distinct one mapped once per analysis. */
    while (bson_iter_next(&lab)) {
        uint32_t len;
        if (!BSON_ITER_HOLDS_UTF8(&lab)) {
            rc = frame_corrupt(err, sk, SCHEMA_F_FRAME_LABELS, "holds a label that is no string");
            goto out;
        }
        const char *s = bson_iter_utf8(&lab, &len);
        if (nlabels == r->lcap) {
            size_t c = r->lcap ? r->lcap * 2 : 64;
            uint32_t *p = realloc(r->local, c * sizeof *p);
            if (!p) {
                rc = sl_error_set(err, SL_ENOMEM, "out of memory reading frames");
                goto out;
            }
            r->local = p;
            r->lcap = c;
        }
        sl_error e;
        sl_error_clear(&e);
        uint32_t le = 0;
        if (label_get(r->labels, r->catalog, r->occluders, s, len, &le, &e) != SL_OK) {
            if (!strcmp(e.field, "label")) /* not UTF-8: no ingest stored that */
                rc = frame_corrupt(err, sk, SCHEMA_F_FRAME_LABELS,
                                   "holds a label that is not UTF-8");
            else
                rc = sl_error_set_at(err, e.status, e.field, e.offset, "frame %s: %s", sk,
                                     e.message);
            goto out;
        }
        r->local[nlabels++] = le;
        if (nlabels > SCHEMA_FRAME_LABELS_MAX) {
            rc = frame_corrupt(err, sk, SCHEMA_F_FRAME_LABELS, "holds too many labels");
            goto out;
        }
    }
    if ((size_t)n > r->dcap) {
        size_t c = r->dcap ? r->dcap : 256;
        while (c < (size_t)n)
            c *= 2;
        engine__usage_det *d = realloc(r->dets, c * sizeof *d);
        if (!d) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory reading frames");
            goto out;
        }
        r->dets = d;
        r->dcap = c;
    }
    for (int32_t k = 0; k < n; k++) {
        schema_frame_det d;
        sl_error e;
        sl_error_clear(&e);
        if (schema_frame_det_unpack(det, det_len, (size_t)k, nlabels, &d, &e) != SL_OK) {
            rc = sl_error_set_at(err, SL_ECORRUPT, SCHEMA_F_FRAME_DET, -1, "frame %s: %s", sk,
                                 e.message);
            goto out;
        }
        lentry *le = &r->labels->ents[r->local[d.label]];
        le->count++;
        r->counts.unmapped_detections += le->cls >= ENGINE__USAGE_IGNORE;
        r->dets[k] = (engine__usage_det){le->cls, d.confidence, d.x, d.y, d.w, d.h};
    }
    r->counts.frames++;
    r->counts.frames_empty += n == 0;
    r->counts.detections += n;
    rc = engine__usage_feed(r->tracker, frame, r->dets, (size_t)n, err);
out:
    return rc;
}

/* The pages are read on a thread of their own, at most PREFETCH ahead, so
 * the store's reading (SQLite, copying each page) and the tracking use both
 * cores of a small machine; memory: PREFETCH + 1 pages (~2 MB each for a
 * busy table). */
#define PREFETCH 2

typedef struct pager {
    store *s;
    const char *pk;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    store_page q[PREFETCH];
    size_t head, count;
    bool done, stop; /* done: the reader ended (rc says how); stop: the consumer quit */
    sl_status rc;
    sl_error err;
} pager;

static void *pager_main(void *arg)
{
    pager *p = arg;
    char token[STORE_PAGE_TOKEN_MAX] = "";
    sl_status rc = SL_OK;
    sl_error err;
    sl_error_clear(&err);
    for (;;) {
        store_page page = {0};
        store_query_opts q = {.range = {STORE_RANGE_BEGINS_WITH, SCHEMA_SK_FRAME_PREFIX, NULL},
                              .limit = STORE_PAGE_MAX,
                              .page_token = token[0] ? token : NULL};
        if ((rc = store_query(p->s, STORE_ITEMS, p->pk, &q, &page, &err)) != SL_OK)
            break;
        bool last = !page.next_token;
        if (!last)
            snprintf(token, sizeof token, "%s", page.next_token);
        pthread_mutex_lock(&p->mu);
        while (p->count == PREFETCH && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        bool stop = p->stop;
        if (!stop) {
            p->q[(p->head + p->count++) % PREFETCH] = page;
            pthread_cond_broadcast(&p->cv);
        }
        pthread_mutex_unlock(&p->mu);
        if (stop)
            store_page_free(&page);
        if (stop || last)
            break;
    }
    pthread_mutex_lock(&p->mu);
    p->done = true;
    p->rc = rc;
    p->err = err;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* The next page into *page (the caller frees it), or *end at the end; or
 * the reader's error. */
static sl_status pager_next(pager *p, store_page *page, bool *end, sl_error *err)
{
    sl_status rc = SL_OK;
    memset(page, 0, sizeof *page);
    *end = false;
    pthread_mutex_lock(&p->mu);
    while (!p->count && !p->done)
        pthread_cond_wait(&p->cv, &p->mu);
    if (p->count) {
        *page = p->q[p->head];
        p->head = (p->head + 1) % PREFETCH;
        p->count--;
        pthread_cond_broadcast(&p->cv);
    } else if (p->rc != SL_OK) {
        rc = sl_error_set_at(err, p->rc, p->err.field, p->err.offset, "%s", p->err.message);
    } else {
        *end = true;
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

sl_status engine__usage_frames(store *s, const char *tenant, const char *surgery,
                               const schema_catalog *catalog, const schema_catalog *occluders,
                               engine__usage_tracker *t, engine__usage_counts *counts,
                               engine__usage_labels **labels, sl_error *err)
{
    sl_status rc = SL_OK;
    schema_key pk;
    store_page page = {0};
    reader r = {.catalog = catalog, .occluders = occluders, .tracker = t};
    pager p = {.s = s, .pk = pk};
    bool started = false;
    if ((rc = labels_new(&r.labels, err)) != SL_OK ||
        (rc = schema_pk_surgery(pk, tenant, surgery, err)) != SL_OK)
        goto out;
    pthread_t th;
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    if (pthread_create(&th, NULL, pager_main, &p) != 0) {
        rc = sl_error_set(err, SL_ENOMEM, "cannot start the thread reading frames");
        goto out;
    }
    started = true;
    for (;;) {
        bool end;
        if ((rc = pager_next(&p, &page, &end, err)) != SL_OK || end)
            break;
        for (size_t i = 0; i < page.count && rc == SL_OK; i++)
            rc = one_frame(&r, &page, i, err);
        store_page_free(&page);
        if (rc != SL_OK)
            break;
    }
    if (rc == SL_OK)
        *counts = r.counts;
out:
    if (started) {
        pthread_mutex_lock(&p.mu);
        p.stop = true;
        pthread_cond_broadcast(&p.cv);
        pthread_mutex_unlock(&p.mu);
        pthread_join(th, NULL);
        for (; p.count; p.count--, p.head = (p.head + 1) % PREFETCH)
            store_page_free(&p.q[p.head]);
        pthread_cond_destroy(&p.cv);
        pthread_mutex_destroy(&p.mu);
    }
    store_page_free(&page);
    free(r.local);
    free(r.dets);
    *labels = r.labels;
    return rc;
}
