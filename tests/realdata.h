/* realdata.h -- the real detector outputs of ../shared/realdata/ (see its
 * README), read in place, never copied.  Tests that need them run as their own
 * ctest entries (`<test> realdata`); where the folder is missing -- a clone
 * without the shared folder -- such an entry is reported as skipped (exit 77),
 * never as passed.  SL_REALDATA comes from CMake (SIGHTLINE_REALDATA). */
#ifndef SIGHTLINE_TESTS_REALDATA_H
#define SIGHTLINE_TESTS_REALDATA_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* 1 when the test was started as `<test> realdata`. */
static inline int realdata_mode(int argc, char **argv)
{
    return argc > 1 && strcmp(argv[1], "realdata") == 0;
}

/* Exits 77 (ctest: skipped) when the folder is not there. */
static inline void realdata_require(void)
{
    struct stat st;
    if (stat(SL_REALDATA, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr,
                "skipped: the real detector outputs are not at %s "
                "(configure with -DSIGHTLINE_REALDATA=DIR)\n",
                SL_REALDATA);
        exit(77);
    }
}

#endif
