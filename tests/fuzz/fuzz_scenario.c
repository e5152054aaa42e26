/* fuzz_scenario.c -- libFuzzer target: the scenario reader of `sightline
 * simulate` (cmd/simulate_scenario.c, simulate_timeline.c) on every input,
 * with the committed catalog (fixtures/scenarios/catalog).  A scenario it
 * takes must give a truth that is valid JSON and, when small, frames that
 * ingest's own parsers take whole, in both formats, one per frame. */
#include "cmd/simulate.h"
#include "ingest/ingest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct seen {
    int64_t next; /* the frame expected next */
} seen;

static sl_status on_frame(void *ctx, const ingest_frame *fr, sl_error *err)
{
    seen *s = ctx;
    if ((int64_t)fr->frame != s->next)
        __builtin_trap();
    s->next++;
    return SL_OK;
}

static void frames_ingest(const sim_scenario *sc, sim_format fmt)
{
    char *buf = NULL;
    size_t len = 0;
    sim_stats st;
    sl_error e;
    sl_error_clear(&e);
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return;
    if (sim_frames_write(sc, fmt, f, "memory", &st, &e) != SL_OK)
        __builtin_trap();
    fclose(f);
    ingest_parse_options o = {.format = fmt == SIM_FORMAT_DARKNET ? INGEST_FORMAT_DARKNET
                                                                  : INGEST_FORMAT_NDJSON};
    ingest_parser *p = NULL;
    seen s = {0};
    if (ingest_parser_new(&o, on_frame, &s, &p, &e) != SL_OK ||
        ingest_parser_feed(p, buf, len, &e) != SL_OK || ingest_parser_finish(p, &e) != SL_OK) {
        fprintf(stderr, "ingest refused the frames: %s (at %s)\n", e.message, e.field);
        __builtin_trap();
    }
    if (s.next != sc->frames || (uint64_t)s.next != st.frames)
        __builtin_trap();
    ingest_parser_free(&p);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    sim_scenario *sc = NULL;
    sl_error e;
    sl_error_clear(&e);
    if (sim_scenario_parse("fuzz.json", SL_FIXTURES "/scenarios", text, size, 7, true, &sc, &e) !=
        SL_OK) {
        if (!e.message[0])
            __builtin_trap(); /* a refusal says why */
        free(text);
        return 0;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f) {
        if (sim_truth_write(sc, f, "memory", &e) != SL_OK)
            __builtin_trap();
        fclose(f);
        if (ingest_json_check(buf, len, 16, &e) != SL_OK)
            __builtin_trap();
        free(buf);
    }
    if (sc->frames * (int64_t)(sc->ntools + sc->npeople + 4) <= 100000) {
        frames_ingest(sc, SIM_FORMAT_DARKNET);
        frames_ingest(sc, SIM_FORMAT_NDJSON);
    }
    sim_scenario_free(&sc);
    free(text);
    return 0;
}
