/* writer.c -- the second half of a job's pipeline: a thread that owns the
 * store batch and puts the documents the parsing thread encodes. */
#include "ingest_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Parsing and storing use the two cores at once.  Documents travel in a ring
 * of a few slots of concatenated BSON, so the threads meet once per ~256 KB,
 * and memory stays bounded (SLOTS x SLOT_BYTES plus the largest document). */

#define SLOTS      8
#define SLOT_BYTES (256u * 1024u)

typedef struct slot {
    uint8_t *buf;
    size_t len, cap;
} slot;

struct ingest__writer {
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t can_fill, can_drain;
    store_batch *batch;
    slot s[SLOTS];
    size_t tail, count; /* queued slots: tail .. tail + count - 1; the producer fills the next */
    bool done;          /* the producer has queued everything */
    int failed;         /* atomic: the batch refused a document, the rest is dropped */
    sl_error err;       /* the writer thread's error */
    sl_status rc;
    uint64_t changed;
};

/* Puts every document of one slot into the batch (writer thread). */
static void drain_slot(ingest__writer *w, const slot *sl)
{
    for (size_t at = 0; at + 4 <= sl->len && !__atomic_load_n(&w->failed, __ATOMIC_ACQUIRE);) {
        uint32_t len;
        memcpy(&len, sl->buf + at, 4); /* BSON length prefix, little-endian like the host */
        bson_t view;
        store_put_result res = {0};
        if (len < 5 || at + len > sl->len || !bson_init_static(&view, sl->buf + at, len)) {
            w->rc = sl_error_set(&w->err, SL_EINTERNAL, "writer: damaged document in its queue");
        } else {
            w->rc = store_batch_put(w->batch, STORE_ITEMS, &view, (store_cond){STORE_COND_NONE, 0},
                                    &res, &w->err);
            w->changed += res.changed != 0;
        }
        if (w->rc != SL_OK) /* rc and err are written before the flag is seen */
            __atomic_store_n(&w->failed, 1, __ATOMIC_RELEASE);
        at += len;
    }
}

static void *writer_main(void *arg)
{
    ingest__writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->count == 0 && !w->done)
            pthread_cond_wait(&w->can_drain, &w->mu);
        if (w->count == 0)
            break;
        slot *sl = &w->s[w->tail];
        pthread_mutex_unlock(&w->mu);
        if (!__atomic_load_n(&w->failed, __ATOMIC_ACQUIRE))
            drain_slot(w, sl); /* the slot is ours until it is released below */
        sl->len = 0;
        pthread_mutex_lock(&w->mu);
        w->tail = (w->tail + 1) % SLOTS;
        w->count--;
        pthread_cond_signal(&w->can_fill);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

sl_status ingest__writer_start(store_batch *b, ingest__writer **out, sl_error *err)
{
    sl_status rc = SL_OK;
    ingest__writer *w = calloc(1, sizeof *w);
    if (!w) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory starting the writer");
        goto out;
    }
    w->batch = b;
    sl_error_clear(&w->err);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->can_fill, NULL);
    pthread_cond_init(&w->can_drain, NULL);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        rc = sl_error_set(err, SL_EINTERNAL, "cannot start the writer thread");
        goto out;
    }
    w->started = true;
out:
    if (rc != SL_OK)
        ingest__writer_abort(&w);
    else
        *out = w;
    return rc;
}

/* Passes the writer's error to the producer's err. */
static sl_status report(ingest__writer *w, sl_error *err)
{
    return sl_error_set_at(err, w->rc, w->err.field[0] ? w->err.field : NULL, w->err.offset, "%s",
                           w->err.message);
}

/* Queues the slot being filled; waits while the ring is full. */
static void push(ingest__writer *w)
{
    pthread_mutex_lock(&w->mu);
    w->count++;
    pthread_cond_signal(&w->can_drain);
    while (w->count == SLOTS)
        pthread_cond_wait(&w->can_fill, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

sl_status ingest__writer_put(ingest__writer *w, const bson_t *doc, sl_error *err)
{
    sl_status rc = SL_OK;
    if (__atomic_load_n(&w->failed, __ATOMIC_ACQUIRE)) {
        rc = report(w, err);
        goto out;
    }
    /* The producer owns slot (tail + count) % SLOTS: count < SLOTS here. */
    pthread_mutex_lock(&w->mu);
    slot *sl = &w->s[(w->tail + w->count) % SLOTS];
    pthread_mutex_unlock(&w->mu);
    if (sl->len + doc->len > sl->cap) {
        size_t cap = sl->cap ? sl->cap : SLOT_BYTES + 64 * 1024;
        while (cap < sl->len + doc->len)
            cap *= 2;
        uint8_t *b = realloc(sl->buf, cap);
        if (!b) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory queueing a document");
            goto out;
        }
        sl->buf = b;
        sl->cap = cap;
    }
    memcpy(sl->buf + sl->len, bson_get_data(doc), doc->len);
    sl->len += doc->len;
    if (sl->len >= SLOT_BYTES)
        push(w);
out:
    return rc;
}

sl_status ingest__writer_finish(ingest__writer **wp, uint64_t *changed, sl_error *err)
{
    ingest__writer *w = *wp;
    pthread_mutex_lock(&w->mu);
    slot *sl = &w->s[(w->tail + w->count) % SLOTS];
    pthread_mutex_unlock(&w->mu);
    if (sl->len > 0)
        push(w);
    pthread_mutex_lock(&w->mu);
    w->done = true;
    pthread_cond_signal(&w->can_drain);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    w->started = false;
    sl_status rc = w->rc != SL_OK ? report(w, err) : SL_OK;
    if (rc == SL_OK && changed)
        *changed = w->changed;
    ingest__writer_abort(wp);
    return rc;
}

void ingest__writer_abort(ingest__writer **wp)
{
    if (!wp || !*wp)
        return;
    ingest__writer *w = *wp;
    if (w->started) {
        pthread_mutex_lock(&w->mu);
        __atomic_store_n(&w->failed, 1, __ATOMIC_RELEASE); /* drop what is queued */
        w->done = true;
        pthread_cond_signal(&w->can_drain);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
    }
    for (int i = 0; i < SLOTS; i++)
        free(w->s[i].buf);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->can_fill);
    pthread_cond_destroy(&w->can_drain);
    free(w);
    *wp = NULL;
}
