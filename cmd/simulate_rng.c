/* simulate_rng.c -- the simulator's own random numbers (xoshiro256**, seeded
 * through splitmix64; same bytes on every machine and libc, unlike rand())
 * and the small output helpers its writers share. */
#include "simulate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void sim_rng_seed(sim_rng *r, uint64_t seed, uint64_t stream)
{
    /* Mix the stream id in through splitmix64 itself, so that neighbouring
     * seeds or streams give unrelated states. */
    uint64_t x = seed;
    uint64_t k = splitmix64(&x) ^ (stream * 0xd1342543de82ef95ull + 0x2545f4914f6cdd1dull);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&k);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t sim_rng_next(sim_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double sim_rng_uniform(sim_rng *r)
{
    return (double)(sim_rng_next(r) >> 11) * 0x1.0p-53;
}

double sim_rng_normal(sim_rng *r)
{
    /* Marsaglia's polar method, one value per call (the second is dropped so
     * that every call consumes the stream alike whatever came before). */
    double u, v, s;
    do {
        u = 2.0 * sim_rng_uniform(r) - 1.0;
        v = 2.0 * sim_rng_uniform(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    return u * sqrt(-2.0 * log(s) / s);
}

uint32_t sim_rng_below(sim_rng *r, uint32_t n)
{
    /* Lemire's multiply-shift; the bias (n / 2^32) is far below anything a
     * test of the simulator can see. */
    return (uint32_t)(((sim_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

uint32_t sim_rng_poisson(sim_rng *r, double lambda)
{
    /* Knuth's product of uniforms: fine for the small means allowed here. */
    double limit = exp(-lambda), p = 1.0;
    uint32_t k = 0;
    do {
        k++;
        p *= sim_rng_uniform(r);
    } while (p > limit && k < 1000);
    return k - 1;
}

char *sim_json_escape(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(n * 6 + 1), *p = out; /* \u00XX at worst */
    if (!out)
        return NULL;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            *p++ = '\\';
            *p++ = (char)*c;
        } else if (*c < 0x20) { /* labels are refused with them; kept safe anyway */
            static const char hex[] = "0123456789abcdef";
            memcpy(p, "\\u00", 4);
            p[4] = hex[*c >> 4];
            p[5] = hex[*c & 15];
            p += 6;
        } else {
            *p++ = (char)*c;
        }
    }
    *p = '\0';
    return out;
}

char *sim_fmt_micro(char *p, int64_t v)
{
    if (v < 0) { /* not expected: every written value is checked >= 0 */
        *p++ = '-';
        v = -v;
    }
    int64_t whole = v / 1000000, frac = v % 1000000;
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + whole % 10);
        whole /= 10;
    } while (whole);
    while (n)
        *p++ = tmp[--n];
    *p++ = '.';
    for (int i = 5; i >= 0; i--) {
        p[i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    return p + 6;
}

int64_t sim_micro(double v)
{
    return (int64_t)llround(v * 1e6);
}
