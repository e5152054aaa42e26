/* check.h -- the assertions every C test uses.  A failed check prints file,
 * line and the expression, counts the failure and goes on; a test's main
 * returns check_finish() so ctest sees the outcome. */
#ifndef SIGHTLINE_TESTS_CHECK_H
#define SIGHTLINE_TESTS_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures_, check_count_;

#define CHECK(expr)                                                                                \
    do {                                                                                           \
        check_count_++;                                                                            \
        if (!(expr)) {                                                                             \
            check_failures_++;                                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr);               \
        }                                                                                          \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        check_count_++;                                                                            \
        if (a_ != b_) {                                                                            \
            check_failures_++;                                                                     \
            fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, #a,    \
                    a_, #b, b_);                                                                   \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        check_count_++;                                                                            \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                                   \
            check_failures_++;                                                                     \
            fprintf(stderr, "%s:%d: %s is \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a,      \
                    a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                       \
        }                                                                                          \
    } while (0)

/* A fatal check: stops the test (later checks would only cascade). */
#define REQUIRE(expr)                                                                              \
    do {                                                                                           \
        check_count_++;                                                                            \
        if (!(expr)) {                                                                             \
            fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #expr);             \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static inline int check_finish(void)
{
    fprintf(stderr, "%d checks, %d failed\n", check_count_, check_failures_);
    return check_failures_ ? 1 : 0;
}

#endif
