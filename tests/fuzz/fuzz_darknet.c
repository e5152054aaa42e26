/* fuzz_darknet.c -- libFuzzer target: darknet -out results and the demo stream. */
#include "fuzz_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ingest_parse_options o = {.format = INGEST_FORMAT_DARKNET};
    fuzz_parse(&o, data, size);
    o.format = INGEST_FORMAT_DARKNET_STREAM;
    o.frame_source = INGEST_FRAME_FROM_FILENAME;
    fuzz_parse(&o, data, size);
    return 0;
}
