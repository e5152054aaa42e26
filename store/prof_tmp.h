/* TEMPORARY phase profiling for the lag investigation; removed afterwards. */
#ifndef PROF_TMP_H
#define PROF_TMP_H
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
enum {
    PF_FEED_WAIT, PF_FEED_READ, PF_TAKE, PF_PLAN, PF_ENCODE, PF_DOCMAKE, PF_L_LOCKWAIT,
    PF_L_APPLY, PF_L_PRUNE, PF_L_COMMIT, PF_L_TOTALCOMMIT, PF_CYCLE, PF_W_LOCKWAIT, PF_W_OPS,
    PF_W_COMMIT, PF_CK_LOCKHOLD, PF_CK_PASSES, PF_BATCH_EVENTS, PF_BATCH_AGGS, PF_W_TOTAL,
    PF_WAKE, PF_W_PAGES, PF_L_PAGES, PF_LAG_TOREAD, PF_LAG_READ2DONE, PF_CK_LEFT, PF_N
};
static const char *const pf_names[PF_N] = {
    "feed wait", "feed read_once", "take_event(delta)", "plan(live+add)", "encode", "doc_make(store.c)",
    "L writer-lock wait", "L apply_ops", "L prune", "L write_end/COMMIT", "L consumer_commit total",
    "cycle(read..commit)", "W writer-lock wait", "W ops", "W write_end/COMMIT", "CK restart lock hold",
    "CK passes", "events/commit (count)", "aggs/commit (count)", "W write_batch total", "wake latency(notify->woken)", "W pages/commit (count)", "L pages/commit (count)", "lag commit->read by listener", "lag read->applied", "CK frames left at restart"};
#define PF_BUCKETS 512 /* 0.1 ms buckets up to 51.2 ms */
extern int64_t pf_sum[PF_N], pf_cnt[PF_N], pf_max[PF_N], pf_hist[PF_N][PF_BUCKETS];
extern int64_t pf_notify_ns;
typedef struct pf_rec { int64_t t; int kind; int64_t a, b; } pf_rec;
#define PF_TRACE_MAX (1 << 20)
extern pf_rec pf_trace_buf[PF_TRACE_MAX];
extern int64_t pf_trace_n;
static inline int64_t pf_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
static inline int64_t pf_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
static inline int64_t pf_wall(void);
static inline void pf_trace(int kind, int64_t a, int64_t b)
{
    int64_t i = __atomic_fetch_add(&pf_trace_n, 1, __ATOMIC_RELAXED);
    if (i < PF_TRACE_MAX)
        pf_trace_buf[i] = (pf_rec){pf_wall(), kind, a, b};
}
static inline void pf_trace_dump(const char *path)
{
    FILE *f = fopen(path, "w");
    int64_t n = pf_trace_n < PF_TRACE_MAX ? pf_trace_n : PF_TRACE_MAX;
    for (int64_t i = 0; f && i < n; i++)
        fprintf(f, "%lld %c %lld %lld\n", (long long)pf_trace_buf[i].t, pf_trace_buf[i].kind, (long long)pf_trace_buf[i].a, (long long)pf_trace_buf[i].b);
    if (f) fclose(f);
    pf_trace_n = 0;
}
static inline void pf_add_raw(int p, int64_t v, int64_t bucket)
{
    __atomic_add_fetch(&pf_sum[p], v, __ATOMIC_RELAXED);
    __atomic_add_fetch(&pf_cnt[p], 1, __ATOMIC_RELAXED);
    if (v > pf_max[p])
        pf_max[p] = v;
    if (bucket >= PF_BUCKETS)
        bucket = PF_BUCKETS - 1;
    if (bucket < 0)
        bucket = 0;
    __atomic_add_fetch(&pf_hist[p][bucket], 1, __ATOMIC_RELAXED);
}
static inline void pf_add(int p, int64_t ns) { pf_add_raw(p, ns, ns / 100000); }
static inline void pf_count(int p, int64_t v) { pf_add_raw(p, v, v); }
static inline double pf_pct(int p, double q)
{
    int64_t cum = 0;
    for (int i = 0; i < PF_BUCKETS; i++) {
        cum += pf_hist[p][i];
        if (pf_cnt[p] && cum >= q * (double)pf_cnt[p])
            return i;
    }
    return -1;
}
static inline void pf_dump(const char *title)
{
    fprintf(stderr, "=== %s\n", title);
    for (int p = 0; p < PF_N; p++) {
        if (!pf_cnt[p])
            continue;
        int cnt = p == PF_BATCH_EVENTS || p == PF_BATCH_AGGS || p == PF_W_PAGES || p == PF_L_PAGES || p == PF_CK_LEFT;
        if (cnt)
            fprintf(stderr, "  %-28s n=%7lld mean %8.1f p50 %6.0f p99 %6.0f max %lld\n", pf_names[p],
                    (long long)pf_cnt[p], (double)pf_sum[p] / pf_cnt[p], pf_pct(p, .5), pf_pct(p, .99),
                    (long long)pf_max[p]);
        else
            fprintf(stderr, "  %-28s n=%7lld mean %7.3f ms p50 %5.1f p99 %5.1f max %6.2f ms total %7.1f ms\n",
                    pf_names[p], (long long)pf_cnt[p], (double)pf_sum[p] / pf_cnt[p] / 1e6,
                    pf_pct(p, .5) / 10, pf_pct(p, .99) / 10, pf_max[p] / 1e6, pf_sum[p] / 1e6);
    }
    memset(pf_sum, 0, sizeof pf_sum);
    memset(pf_cnt, 0, sizeof pf_cnt);
    memset(pf_max, 0, sizeof pf_max);
    memset(pf_hist, 0, sizeof pf_hist);
}
#endif
