/* exact.h -- compares a double a test got with an exact value (a rational
 * of integers, or the square root of one) in integer arithmetic of 512 bits,
 * so that an oracle shares no floating-point step with the code it checks.
 * The promise it checks is "within one ulp": the exact value lies between
 * the doubles just below and just above the one got.  Header-only (static
 * inline); used by the e2e model (tests/e2e/e2e.c) and the engine's
 * arithmetic tests. */
#ifndef SIGHTLINE_TESTS_EXACT_H
#define SIGHTLINE_TESTS_EXACT_H

#include <math.h>
#include <stdint.h>

#define EXACT_LIMBS 8

typedef struct exact_big {
    uint64_t w[EXACT_LIMBS]; /* least significant first */
} exact_big;

static inline exact_big exact_big_of(unsigned __int128 v)
{
    exact_big b = {{(uint64_t)v, (uint64_t)(v >> 64)}};
    return b;
}

/* a * v; the callers keep every product below 2^500. */
static inline exact_big exact_big_mul(exact_big a, unsigned __int128 v)
{
    exact_big r = {{0}};
    uint64_t part[2] = {(uint64_t)v, (uint64_t)(v >> 64)};
    for (int h = 0; h < 2; h++) {
        unsigned __int128 carry = 0;
        for (int i = 0; i + h < EXACT_LIMBS; i++) {
            unsigned __int128 t = (unsigned __int128)a.w[i] * part[h] + r.w[i + h] + carry;
            r.w[i + h] = (uint64_t)t;
            carry = t >> 64;
        }
    }
    return r;
}

static inline exact_big exact_big_shl(exact_big a, int k)
{
    exact_big r = {{0}};
    for (int i = EXACT_LIMBS - 1; i >= 0; i--) {
        int from = i - k / 64, bits = k % 64;
        uint64_t hi = from >= 0 ? a.w[from] << bits : 0;
        uint64_t lo = bits && from - 1 >= 0 ? a.w[from - 1] >> (64 - bits) : 0;
        r.w[i] = hi | lo;
    }
    return r;
}

static inline int exact_big_cmp(exact_big a, exact_big b)
{
    for (int i = EXACT_LIMBS - 1; i >= 0; i--)
        if (a.w[i] != b.w[i])
            return a.w[i] < b.w[i] ? -1 : 1;
    return 0;
}

/* An exact value: num / den, or its square root (both at least 0). */
typedef struct exact {
    unsigned __int128 num, den; /* den > 0 */
    int root;
} exact;

/* The sign of y - x, exactly (y a finite double; x at most 2^64). */
static inline int exact_cmp(double y, const exact *x)
{
    if (y < 0)
        return -1;
    if (y == 0)
        return x->num ? -1 : 0;
    if (y >= 0x1p64)
        return 1;
    int e;
    double f = frexp(y, &e); /* y = f * 2^e, f in [0.5, 1) */
    uint64_t mant = (uint64_t)ldexp(f, 53);
    int shift = e - 53; /* y = mant * 2^shift, shift <= 11 */
    if (x->root)
        shift *= 2;   /* compare y^2 with num / den */
    if (shift < -380) /* y below 2^-280: under any nonzero x of the tests */
        return x->num ? -1 : 1;
    exact_big left = x->root ? exact_big_mul(exact_big_of((unsigned __int128)mant * mant), x->den)
                             : exact_big_mul(exact_big_of(mant), x->den);
    exact_big right = exact_big_of(x->num);
    if (shift >= 0)
        left = exact_big_shl(left, shift);
    else
        right = exact_big_shl(right, -shift);
    return exact_big_cmp(left, right);
}

/* 1 when got is within one ulp of x. */
static inline int exact_within_ulp(double got, const exact *x)
{
    return isfinite(got) && exact_cmp(nextafter(got, -INFINITY), x) <= 0 &&
           exact_cmp(nextafter(got, INFINITY), x) >= 0;
}

/* x to print in a message (never compared). */
static inline long double exact_approx(const exact *x)
{
    long double v = (long double)x->num / (long double)x->den;
    return x->root ? sqrtl(v) : v;
}

#endif
