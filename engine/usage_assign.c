/* usage_assign.c -- one SKU's detections on the table in one frame against
 * the slots of that SKU's tracks (usage_int.h, engine__usage_assign_run).
 *
 * Tools on a table are still: nearly every detection is within the gate of
 * exactly one slot and every slot has at most one detection in its gate, and
 * that case costs one pass.  When gates overlap (identical tools touching, a
 * candidate beside an instance), the pairs are solved exactly: the most
 * pairs, then the least summed centre distance (Hungarian algorithm), so
 * that twins side by side keep their identities where nearest-first would
 * hand one's detection to the other in a frame that missed it.  Integer
 * arithmetic for the gates (micro-units, doubled centres so they stay
 * whole). */
#include "usage_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define N   ENGINE__USAGE_ASSIGN_EXACT
#define INF 1e12 /* a pair outside the gate: worse than any gated assignment */
/* A candidate slot counts as farther than any instance: more than the
 * largest centre distance (sqrt(2) pictures). */
#define CANDIDATE_PENALTY 2e6

typedef struct pair {
    int32_t s, d; /* slot, detection */
    int64_t d2;   /* (2 x the centres' distance)^2 */
    double cost;  /* set only when the pairs are solved */
} pair;

struct engine__usage_assign {
    pair *pairs;
    size_t cap;
    /* per call, grown with the largest call */
    int32_t *sdeg, *ddeg, *smap, *dmap;
    size_t sdeg_cap, ddeg_cap, smap_cap, dmap_cap;
    /* the exact solver's matrix and vectors, (N + 1) each way */
    double a[N + 1][N + 1];
    double u[N + 1], v[N + 1], minv[N + 1];
    int p[N + 1], way[N + 1];
    bool used[N + 1];
};

sl_status engine__usage_assign_new(engine__usage_assign **out, sl_error *err)
{
    engine__usage_assign *a = calloc(1, sizeof *a);
    if (!a)
        return sl_error_set(err, SL_ENOMEM, "out of memory making the slot matcher");
    *out = a;
    return SL_OK;
}

void engine__usage_assign_free(engine__usage_assign **ap)
{
    if (!ap || !*ap)
        return;
    engine__usage_assign *a = *ap;
    free(a->pairs);
    free(a->sdeg);
    free(a->ddeg);
    free(a->smap);
    free(a->dmap);
    free(a);
    *ap = NULL;
}

static bool grow_i32(int32_t **v, size_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    int32_t *n = realloc(*v, c * sizeof *n);
    if (!n)
        return false;
    *v = n;
    *cap = c;
    return true;
}

/* Within the gate: IoU >= iou_min, or centres within centroid_max; *d2out
 * gets (2 x the centres' distance in micro-units)^2. */
static bool gated(const int32_t s[4], const int32_t d[4], int64_t iou_min, int64_t centroid_max,
                  int64_t *d2out)
{
    int64_t dx = (2 * (int64_t)s[0] + s[2]) - (2 * (int64_t)d[0] + d[2]);
    int64_t dy = (2 * (int64_t)s[1] + s[3]) - (2 * (int64_t)d[1] + d[3]);
    int64_t d2 = dx * dx + dy * dy; /* doubled: (2 * distance)^2 */
    bool in = d2 <= 4 * centroid_max * centroid_max;
    if (!in) {
        int64_t x0 = s[0] > d[0] ? s[0] : d[0], y0 = s[1] > d[1] ? s[1] : d[1];
        int64_t x1 = (int64_t)s[0] + s[2] < (int64_t)d[0] + d[2] ? (int64_t)s[0] + s[2]
                                                                 : (int64_t)d[0] + d[2];
        int64_t y1 = (int64_t)s[1] + s[3] < (int64_t)d[1] + d[3] ? (int64_t)s[1] + s[3]
                                                                 : (int64_t)d[1] + d[3];
        if (x1 > x0 && y1 > y0) {
            int64_t inter = (x1 - x0) * (y1 - y0);
            int64_t uni = (int64_t)s[2] * s[3] + (int64_t)d[2] * d[3] - inter;
            in = uni > 0 && inter * 1000000 >= iou_min * uni;
        }
    }
    *d2out = d2;
    return in;
}

static int by_cost(const void *x, const void *y)
{
    const pair *a = x, *b = y;
    if (a->cost != b->cost)
        return a->cost < b->cost ? -1 : 1;
    if (a->s != b->s) /* deterministic ties */
        return a->s < b->s ? -1 : 1;
    return a->d < b->d ? -1 : a->d > b->d;
}

/* The Hungarian algorithm (shortest augmenting paths with potentials) on
 * a->a[1..n][1..m], n <= m: a->p[j] is the row given column j (0: none). */
static void hungarian(engine__usage_assign *a, int n, int m)
{
    for (int j = 0; j <= m; j++) {
        a->v[j] = 0;
        a->p[j] = 0;
        a->way[j] = 0;
    }
    for (int i = 0; i <= n; i++)
        a->u[i] = 0;
    for (int i = 1; i <= n; i++) {
        int j0 = 0;
        a->p[0] = i;
        for (int j = 0; j <= m; j++) {
            a->minv[j] = INFINITY;
            a->used[j] = false;
        }
        do {
            a->used[j0] = true;
            int i0 = a->p[j0], j1 = 0;
            double delta = INFINITY;
            for (int j = 1; j <= m; j++)
                if (!a->used[j]) {
                    double cur = a->a[i0][j] - a->u[i0] - a->v[j];
                    if (cur < a->minv[j]) {
                        a->minv[j] = cur;
                        a->way[j] = j0;
                    }
                    if (a->minv[j] < delta) {
                        delta = a->minv[j];
                        j1 = j;
                    }
                }
            for (int j = 0; j <= m; j++)
                if (a->used[j]) {
                    a->u[a->p[j]] += delta;
                    a->v[j] -= delta;
                } else {
                    a->minv[j] -= delta;
                }
            j0 = j1;
        } while (a->p[j0] != 0);
        do {
            int j1 = a->way[j0];
            a->p[j0] = a->p[j1];
            j0 = j1;
        } while (j0);
    }
}

/* The involved slots (rows) and detections (columns) solved exactly. */
static void exact(engine__usage_assign *a, size_t np, int nr, int nc, int32_t *det_of_slot)
{
    bool flip = nr > nc; /* the solver wants rows <= columns */
    int n = flip ? nc : nr, m = flip ? nr : nc;
    for (int i = 1; i <= n; i++)
        for (int j = 1; j <= m; j++)
            a->a[i][j] = INF;
    for (size_t k = 0; k < np; k++) {
        const pair *q = &a->pairs[k];
        int r = a->smap[q->s] + 1, c = a->dmap[q->d] + 1;
        if (flip)
            a->a[c][r] = q->cost;
        else
            a->a[r][c] = q->cost;
    }
    hungarian(a, n, m);
    /* Back to slot and detection numbers: the compact ones invert through
     * the pairs (each involved slot and detection has one). */
    for (size_t k = 0; k < np; k++) {
        const pair *q = &a->pairs[k];
        int r = a->smap[q->s] + 1, c = a->dmap[q->d] + 1;
        int row = flip ? c : r, col = flip ? r : c;
        if (a->p[col] == row && a->a[row][col] < INF / 2)
            det_of_slot[q->s] = q->d;
    }
}

sl_status engine__usage_assign_run(engine__usage_assign *a, const engine__usage_slot *slots,
                                   size_t ns, const int32_t (*boxes)[4], size_t nd, int64_t iou_min,
                                   int64_t centroid_max, int32_t *det_of_slot, sl_error *err)
{
    sl_status rc = SL_OK;
    size_t np = 0;
    bool ambiguous = false;
    for (size_t i = 0; i < ns; i++)
        det_of_slot[i] = -1;
    if (!ns || !nd)
        goto out;
    if (!grow_i32(&a->sdeg, &a->sdeg_cap, ns) || !grow_i32(&a->smap, &a->smap_cap, ns) ||
        !grow_i32(&a->ddeg, &a->ddeg_cap, nd) || !grow_i32(&a->dmap, &a->dmap_cap, nd)) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory matching detections with slots");
        goto out;
    }
    memset(a->sdeg, 0, ns * sizeof *a->sdeg);
    memset(a->ddeg, 0, nd * sizeof *a->ddeg);
    for (size_t i = 0; i < ns; i++)
        for (size_t j = 0; j < nd; j++) {
            int64_t d2;
            if (!gated(slots[i].box, boxes[j], iou_min, centroid_max, &d2))
                continue;
            if (np == a->cap) {
                size_t c = a->cap ? a->cap * 2 : 256;
                pair *p = realloc(a->pairs, c * sizeof *p);
                if (!p) {
                    rc = sl_error_set(err, SL_ENOMEM,
                                      "out of memory matching detections with slots");
                    goto out;
                }
                a->pairs = p;
                a->cap = c;
            }
            a->pairs[np++] = (pair){(int32_t)i, (int32_t)j, d2, 0};
            a->sdeg[i]++;
            a->ddeg[j]++;
            ambiguous |= a->sdeg[i] > 1 || a->ddeg[j] > 1;
        }
    if (!ambiguous) { /* the common case: each pair stands alone */
        for (size_t k = 0; k < np; k++)
            det_of_slot[a->pairs[k].s] = a->pairs[k].d;
        goto out;
    }
    for (size_t k = 0; k < np; k++) {
        pair *q = &a->pairs[k];
        q->cost = sqrt((double)q->d2) / 2 + (slots[q->s].candidate ? CANDIDATE_PENALTY : 0);
    }
    int nr = 0, nc = 0;
    for (size_t i = 0; i < ns; i++)
        a->smap[i] = a->sdeg[i] ? nr++ : -1;
    for (size_t j = 0; j < nd; j++)
        a->dmap[j] = a->ddeg[j] ? nc++ : -1;
    if (nr <= N && nc <= N) {
        exact(a, np, nr, nc, det_of_slot);
        goto out;
    }
    /* Past the exact solver's size (dozens of identical tools within each
     * other's gates): greedy by increasing distance, candidates last. */
    qsort(a->pairs, np, sizeof *a->pairs, by_cost);
    memset(a->ddeg, 0, nd * sizeof *a->ddeg); /* now: taken */
    for (size_t k = 0; k < np; k++) {
        const pair *q = &a->pairs[k];
        if (det_of_slot[q->s] < 0 && !a->ddeg[q->d]) {
            det_of_slot[q->s] = q->d;
            a->ddeg[q->d] = 1;
        }
    }
out:
    return rc;
}
