/* fuzz_bson_check.c -- libFuzzer target: the store's well-formedness check
 * of a document's bytes (store.c: a fast walk for plain documents, libbson's
 * bson_validate for the rest).  The store's verdict must be libbson's for
 * every input: the walk may only ever say "sure" where libbson agrees. */
#include "store/store_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bson_t doc;
    if (size < 5 || size > STORE_DOC_MAX || !bson_init_static(&doc, data, size))
        return 0; /* not a bson_t at all: nobody can hand it to the store */
    int libbson = bson_validate(&doc, BSON_VALIDATE_NONE, NULL);
    store__doc d;
    memset(&d, 0, sizeof d);
    sl_error e;
    sl_error_clear(&e);
    sl_status rc = store__doc_make(&doc, "doc", &d, &e);
    int store_ok = !(rc == SL_EINVAL && strstr(e.message, "not well-formed") != NULL);
    if (rc == SL_OK)
        store__doc_free(&d);
    if (store_ok != libbson)
        abort();
    return 0;
}
