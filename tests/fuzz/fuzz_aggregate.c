/* fuzz_aggregate.c -- libFuzzer target: the aggregate document decoder
 * (engine/aggregate_codec.c), which reads what the store hands back,
 * including packed histograms.  The input is taken as a BSON document; a
 * document that decodes must encode and decode again to the same aggregate,
 * and the encoding must be a fixed point. */
#include "engine/engine.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same_agg(const engine_agg *a, const engine_agg *b)
{
    int same = a->kind == b->kind && a->count == b->count && a->nmetrics == b->nmetrics &&
               !strcmp(a->tenant, b->tenant) && !strcmp(a->brand, b->brand) &&
               !strcmp(a->campaign, b->campaign) && !strcmp(a->sector, b->sector) &&
               !strcmp(a->hospital, b->hospital) && !strcmp(a->procedure, b->procedure) &&
               !strcmp(a->sku, b->sku) && a->surgeries == b->surgeries &&
               a->surgeries_opened == b->surgeries_opened &&
               a->surgeries_used == b->surgeries_used && a->units_opened == b->units_opened &&
               a->units_used == b->units_used && a->waste_cents == b->waste_cents;
    for (size_t i = 0; same && i < a->nmetrics; i++) {
        const engine_metric *x = &a->metrics[i], *y = &b->metrics[i];
        same = !strcmp(x->name, y->name) && x->n == y->n && x->sum == y->sum &&
               x->sumsq == y->sumsq && !memcmp(x->hist, y->hist, sizeof x->hist);
    }
    return same;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bson_t doc;
    if (size < 5 || size > UINT32_MAX || !bson_init_static(&doc, data, size) ||
        !bson_validate(&doc, BSON_VALIDATE_NONE, NULL))
        return 0; /* the store hands out only well-formed documents */
    engine_agg a, b;
    engine_agg_init(&a);
    engine_agg_init(&b);
    if (engine_agg_decode(&doc, &a, NULL) == SL_OK) {
        bson_t once = BSON_INITIALIZER, twice = BSON_INITIALIZER;
        if (engine_agg_encode(&a, &once, NULL) != SL_OK ||
            engine_agg_decode(&once, &b, NULL) != SL_OK || !same_agg(&a, &b) ||
            engine_agg_encode(&b, &twice, NULL) != SL_OK || once.len != twice.len ||
            memcmp(bson_get_data(&once), bson_get_data(&twice), once.len))
            abort();
        bson_destroy(&once);
        bson_destroy(&twice);
    }
    engine_agg_free(&a);
    engine_agg_free(&b);
    return 0;
}
