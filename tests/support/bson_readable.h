/* bson_readable.h -- the tests' definition of a well-formed document, which
 * the store must match (tests/store/conformance.c, tests/fuzz/fuzz_bson_check.c):
 * bson_validate() passes it, and bson_iter reads every element at every depth
 * with a UTF-8 key, each nested document being one bson_init_static takes.  bson_validate alone
 * passes documents whose reading stops early (an element of an unknown type), on which
 * bson_copy_to_excluding() aborts.  String values need not be UTF-8, as for bson_validate. */
#ifndef SIGHTLINE_TEST_BSON_READABLE_H
#define SIGHTLINE_TEST_BSON_READABLE_H

#include <bson/bson.h>
#include <string.h>

static inline int test_bson_iter_readable(bson_iter_t *it, int depth)
{
    int ok = depth < 1000;
    while (ok && bson_iter_next(it)) {
        bson_iter_t child;
        ok = bson_utf8_validate(bson_iter_key(it), strlen(bson_iter_key(it)), false);
        if (ok && (BSON_ITER_HOLDS_DOCUMENT(it) || BSON_ITER_HOLDS_ARRAY(it))) {
            /* Not bson_iter_recurse: it passes a nested document whose final
             * byte is not NUL, which bson_init_static (readers) refuses. */
            uint32_t n = 0;
            const uint8_t *p = NULL;
            bson_t sub;
            if (BSON_ITER_HOLDS_DOCUMENT(it))
                bson_iter_document(it, &n, &p);
            else
                bson_iter_array(it, &n, &p);
            ok = p && bson_init_static(&sub, p, n) && bson_iter_init(&child, &sub) &&
                 test_bson_iter_readable(&child, depth + 1);
        } else if (ok && BSON_ITER_HOLDS_CODEWSCOPE(it)) {
            uint32_t code_len = 0, scope_len = 0;
            const uint8_t *scope = NULL;
            bson_t sdoc;
            (void)bson_iter_codewscope(it, &code_len, &scope_len, &scope);
            ok = scope && bson_init_static(&sdoc, scope, scope_len) &&
                 bson_iter_init(&child, &sdoc) && test_bson_iter_readable(&child, depth + 1);
        }
    }
    return ok && it->err_off == 0;
}

/* 1 when doc is well-formed by the definition above. */
static inline int test_bson_well_formed(const bson_t *doc)
{
    bson_iter_t it;
    return bson_validate(doc, BSON_VALIDATE_NONE, NULL) && bson_iter_init(&it, doc) &&
           test_bson_iter_readable(&it, 0);
}

#endif
