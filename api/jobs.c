/* jobs.c -- the job pool: a few threads and a bounded queue for handlers that
 * take seconds (API_RUN_JOB), off the libmicrohttpd threads.  A full pool
 * refuses at once rather than queue without bound; a stop finishes what runs. */
#include "api_int.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct job {
    api__job_fn run, cancel;
    void *arg;
} job;

struct api__jobs {
    pthread_mutex_t mu;
    pthread_cond_t wake; /* a job was queued, or the pool is stopping */
    pthread_t *threads;
    size_t nthreads, started;
    job *ring; /* queued jobs: ring[(head + i) % cap], i < count */
    size_t cap, head, count;
    size_t running;
    size_t limit; /* running + queued at most: threads + queue_max */
    int stopping, stopped;
    uint64_t done, refused;
};

static void *worker_main(void *arg)
{
    api__jobs *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->count == 0 && !p->stopping)
            pthread_cond_wait(&p->wake, &p->mu);
        if (p->count == 0)
            break; /* stopping, and stop took what was queued */
        job j = p->ring[p->head];
        p->head = (p->head + 1) % p->cap;
        p->count--;
        p->running++;
        pthread_mutex_unlock(&p->mu);
        j.run(j.arg);
        pthread_mutex_lock(&p->mu);
        p->running--;
        p->done++;
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

sl_status api__jobs_new(size_t nthreads, size_t queue_max, api__jobs **out, sl_error *err)
{
    sl_status rc = SL_OK;
    api__jobs *p = calloc(1, sizeof *p);
    if (!p || nthreads == 0) {
        rc = sl_error_set(err, p ? SL_EINVAL : SL_ENOMEM,
                          p ? "the job pool needs at least one thread"
                            : "out of memory starting the job pool");
        free(p);
        p = NULL;
        goto out;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->limit = nthreads + queue_max;
    p->cap = p->limit;
    p->nthreads = nthreads;
    p->ring = calloc(p->cap, sizeof *p->ring);
    p->threads = calloc(nthreads, sizeof *p->threads);
    if (!p->ring || !p->threads) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory starting the job pool");
        goto out;
    }
    for (; p->started < nthreads; p->started++)
        if (pthread_create(&p->threads[p->started], NULL, worker_main, p) != 0) {
            rc = sl_error_set(err, SL_EINTERNAL, "cannot start job thread %zu of %zu",
                              p->started + 1, nthreads);
            goto out;
        }
out:
    if (rc != SL_OK)
        api__jobs_free(&p);
    else
        *out = p;
    return rc;
}

sl_status api__jobs_submit(api__jobs *p, api__job_fn run, api__job_fn cancel, void *arg,
                           sl_error *err)
{
    sl_status rc = SL_OK;
    pthread_mutex_lock(&p->mu);
    if (p->stopping) {
        rc = sl_error_set(err, SL_EBUSY, "the server is stopping; send the request again");
    } else if (p->running + p->count >= p->limit) {
        rc = sl_error_set(err, SL_EBUSY,
                          "the server is busy with %zu ingest jobs (%zu running, %zu waiting); "
                          "send the request again later",
                          p->running + p->count, p->running, p->count);
    } else {
        p->ring[(p->head + p->count) % p->cap] = (job){run, cancel, arg};
        p->count++;
        pthread_cond_signal(&p->wake);
    }
    if (rc != SL_OK)
        p->refused++;
    pthread_mutex_unlock(&p->mu);
    return rc;
}

void api__jobs_stop(api__jobs *p)
{
    size_t ntaken = 0, head = 0;
    if (!p || p->stopped)
        goto out;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    /* Queued jobs have not started, so nothing of them is written: they are
     * taken out under the lock (no thread can start them any more) and
     * cancelled -- answered -- rather than run.  Submits are refused from now
     * on, so nothing writes the ring again. */
    ntaken = p->count;
    head = p->head;
    p->count = 0;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < ntaken; i++) {
        job *j = &p->ring[(head + i) % p->cap];
        j->cancel(j->arg);
    }
    /* Running jobs finish whatever the grace: their writes may be committing. */
    for (size_t i = 0; i < p->started; i++)
        pthread_join(p->threads[i], NULL);
    p->started = 0;
    p->stopped = 1;
out:
    return;
}

void api__jobs_free(api__jobs **pp)
{
    api__jobs *p = pp ? *pp : NULL;
    if (!p)
        goto out;
    api__jobs_stop(p);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    free(p->ring);
    free(p->threads);
    free(p);
    *pp = NULL;
out:
    return;
}

void api__jobs_stats_get(api__jobs *p, api__jobs_stats *out)
{
    pthread_mutex_lock(&p->mu);
    out->running = p->running;
    out->queued = p->count;
    out->done = p->done;
    out->refused = p->refused;
    pthread_mutex_unlock(&p->mu);
}
