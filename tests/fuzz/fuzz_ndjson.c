/* fuzz_ndjson.c -- libFuzzer target: Sightline NDJSON frames. */
#include "fuzz_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ingest_parse_options o = {.format = INGEST_FORMAT_NDJSON};
    fuzz_parse(&o, data, size);
    return 0;
}
