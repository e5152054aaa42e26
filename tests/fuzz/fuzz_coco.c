/* fuzz_coco.c -- libFuzzer target: COCO detection results (with a small
 * in-memory limit on results per image, and the default category map). */
#include "fuzz_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ingest_limits lim;
    ingest_limits_default(&lim);
    lim.max_detections = 50;
    ingest_parse_options o = {
        .format = INGEST_FORMAT_COCO, .image_width = 640, .image_height = 480, .limits = &lim};
    fuzz_parse(&o, data, size);
    return 0;
}
