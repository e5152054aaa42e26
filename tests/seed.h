/* seed.h -- the seed of a randomized test, in one place: $SIGHTLINE_TEST_SEED
 * when set (to repeat a run), else 64 bits from getrandom() -- never the
 * clock, so two tests started in the same second never share one.  The
 * first use prints it with the line that repeats the run; every generator of
 * the test starts from test_rng(k), a stream of its own derived from it.
 * Header-only: the store and engine tests link no support library. */
#ifndef SIGHTLINE_TESTS_SEED_H
#define SIGHTLINE_TESTS_SEED_H

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>

static uint64_t test_seed_value_; /* 0 until test_seed() ran */

/* The run's seed (never 0): read or drawn once, printed once. */
static inline uint64_t test_seed(void)
{
    if (!test_seed_value_) {
        const char *env = getenv("SIGHTLINE_TEST_SEED");
        uint64_t seed = 0;
        if (env && env[0]) {
            char *end = NULL;
            errno = 0;
            seed = strtoull(env, &end, 10);
            if (errno || *end || seed == 0) {
                fprintf(stderr,
                        "%s: SIGHTLINE_TEST_SEED=\"%s\" is not a seed (a decimal number "
                        "from 1 to 2^64-1)\n",
                        program_invocation_short_name, env);
                exit(1);
            }
        }
        while (seed == 0)
            if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed) {
                perror("getrandom");
                exit(1);
            }
        test_seed_value_ = seed;
        fprintf(stderr, "%s: seed %" PRIu64 " (SIGHTLINE_TEST_SEED=%" PRIu64 " repeats this run)\n",
                program_invocation_short_name, seed, seed);
    }
    return test_seed_value_;
}

/* The start of the test's k-th generator (never 0, which a xorshift
 * generator never leaves): splitmix64 of the seed and k, so streams of
 * different k are unrelated. */
static inline uint64_t test_rng(uint64_t k)
{
    uint64_t z = test_seed() + (k + 1) * 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return z ? z : 1;
}

#endif
