/* fuzz_bson_check.c -- libFuzzer target: the store's well-formedness check
 * of a document's bytes (store.c: a fast walk for plain documents, libbson
 * for the rest).  The store must accept exactly the documents that
 * tests/support/bson_readable.h calls well-formed (bson_validate alone passes
 * documents whose reading stops early, on which bson_copy_to_excluding
 * aborts: found by this target).  Documents nested deeper
 * than the store follows are refused by it whatever libbson says. */
#include "store/store_int.h"
#include "tests/support/bson_readable.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bson_t doc;
    if (size < 5 || size > STORE_DOC_MAX || !bson_init_static(&doc, data, size))
        return 0; /* not a bson_t at all: nobody can hand it to the store */
    int libbson = test_bson_well_formed(&doc);
    store__doc d;
    memset(&d, 0, sizeof d);
    sl_error e;
    sl_error_clear(&e);
    sl_status rc = store__doc_make(&doc, "doc", &d, &e);
    int store_ok = !(rc == SL_EINVAL && strstr(e.message, "not well-formed") != NULL);
    if (rc == SL_OK)
        store__doc_free(&d);
    if (store_ok != libbson && !strstr(e.message, "nested deeper"))
        abort();
    return 0;
}
