/* fuzz_tfod.c -- libFuzzer target: TensorFlow Object Detection API dicts. */
#include "fuzz_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ingest_parse_options o = {.format = INGEST_FORMAT_TFOD, .frame_offset = 3};
    fuzz_parse(&o, data, size);
    return 0;
}
