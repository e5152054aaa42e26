/* score_rounding_test.c -- the rounding rule of scores (docs/formats.md,
 * "Scores"): the decimal as written, rounded to the nearest millionth, a half
 * away from zero, decided on the text and never on the nearest double.  The
 * expected values are written down or built from the digits of the text
 * (a tie "0.kkkkkk5" is k + 1 by construction), never computed by rounding.
 *
 * Regression (issue 10, item 6): ingest rounded llround(double * 1e6), which
 * sends 11,554 of the 10^6 seven-decimal ties the wrong way ("0.0001245" was
 * 124, the product of the nearest double and 1e6 being 124.49999999999999). */
#include "tests/check.h"

#include <bson/bson.h>

#include "ingest/ingest.h"
#include "schema/schema.h"

static int64_t micro(const char *s, sl_status want)
{
    int64_t m = -1;
    sl_error e;
    sl_error_clear(&e);
    sl_status rc = schema_micro_from_decimal(s, strlen(s), &m, &e);
    if (rc != want)
        fprintf(stderr, "\"%s\": %s (%s), expected %s\n", s, sl_status_name(rc), e.message,
                sl_status_name(want));
    CHECK_INT(rc, want);
    return rc == SL_OK ? m : -1;
}

static void test_table(void)
{
    static const struct {
        const char *text;
        int64_t micro;
    } ok[] = {
        {"0", 0},
        {"-0", 0},
        {"0.0", 0},
        {"-0.000e5", 0},
        {"0e999999999999", 0},
        {"1", 1000000},
        {"1.0000000000", 1000000},
        {"1e0", 1000000},
        {"0.1e1", 1000000},
        {"10E-1", 1000000},
        {"100000000e-8", 1000000},
        {"0.5", 500000},
        {"0.0000005", 1}, /* a tie: away from zero */
        {"5e-7", 1},      /* the same number */
        {"0.5E-6", 1},    /* and again */
        {"50e-8", 1},     /* and again */
        {"0.0000004999999999999999999999", 0},
        {"0.0000005000000000000000000001", 1},
        {"0.0001245", 125}, /* llround(0.0001245 * 1e6) is 124 */
        {"0.0001255", 126},
        {"0.6153845", 615385},
        {"0.9999995", 1000000},
        {"0.99999949999", 999999},
        {"0.123456", 123456},
        {"0.1234564999", 123456},
        {"0.12345650", 123457},
        {"1234565e-7", 123457},
        {"0.00000000000000000000000000000000000000000000000001", 0},
        {"1e-400", 0},
        {"1e-999999999999", 0},
        {"0.000001", 1},
        {"0.0000015", 2},
        {"0.0000025", 3}, /* away from zero, not to even */
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        CHECK_INT(micro(ok[i].text, SL_OK), ok[i].micro);
    /* Outside [0, 1] by the exact decimal, also where the nearest double is 1. */
    static const char *const outside[] = {
        "1.0000001", "1.00000000000000000001", "2", "1e1", "-0.1", "-1e-400", "1e999999999999",
        "10000000",  "99999999999999999999"};
    for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++)
        micro(outside[i], SL_EINVAL);
    static const char *const not_numbers[] = {"",   "-",  "1.", ".5",    "1e",  "1e+", "--1", "0x1",
                                              "1 ", " 1", "+1", "1.5.5", "NaN", "inf", "1e5x"};
    for (size_t i = 0; i < sizeof not_numbers / sizeof not_numbers[0]; i++)
        micro(not_numbers[i], SL_EINVAL);
    /* The message names the score. */
    sl_error e;
    int64_t m = 0;
    sl_error_clear(&e);
    CHECK_INT(schema_micro_from_decimal("1.5", 3, &m, &e), SL_EINVAL);
    CHECK(strstr(e.message, "1.5 is outside [0, 1]") != NULL);
    /* The length bounds the text: what follows is not read. */
    CHECK_INT(schema_micro_from_decimal("0.25xyz", 4, &m, NULL), SL_OK);
    CHECK_INT(m, 250000);
}

/* Every tie of seven decimals, in three spellings, and both sides of each tie. */
static void test_every_tie(void)
{
    char buf[64];
    int bad = 0;
    for (long k = 0; k < 1000000 && bad < 10; k++) {
        int64_t m = -1;
        snprintf(buf, sizeof buf, "0.%06ld5", k);
        int wrong = schema_micro_from_decimal(buf, strlen(buf), &m, NULL) != SL_OK || m != k + 1;
        snprintf(buf, sizeof buf, "%ld5e-7", k);
        wrong |= schema_micro_from_decimal(buf, strlen(buf), &m, NULL) != SL_OK || m != k + 1;
        snprintf(buf, sizeof buf, "0.%06ld49999999999999999", k);
        wrong |= schema_micro_from_decimal(buf, strlen(buf), &m, NULL) != SL_OK || m != k;
        snprintf(buf, sizeof buf, "0.%06ld50000000000000001", k);
        wrong |= schema_micro_from_decimal(buf, strlen(buf), &m, NULL) != SL_OK || m != k + 1;
        if (wrong) {
            fprintf(stderr, "the tie after %ld micro-units rounds wrongly (%s: %lld)\n", k, buf,
                    (long long)m);
            bad++;
        }
    }
    CHECK_INT(bad, 0);
}

/* What ingest stores: memorability_micro and saliency_micro of the asset
 * document, for a spread of ties (every 37th, so both kinds that llround got
 * right and wrong). */
static void test_ingest(void)
{
    char body[512];
    int bad = 0, checked = 0;
    for (long k = 0; k < 1000000 && bad < 10; k += 37) {
        snprintf(body, sizeof body,
                 "{\"client\": \"c\", \"brand\": \"b\", \"campaign\": \"c\", \"sector\": \"s\", "
                 "\"media_type\": \"image\", \"memorability\": 0.%06ld5, \"saliency\": "
                 "{\"logo\": %.0ld5e-7}}",
                 k, k);
        bson_t *doc = NULL;
        sl_error e;
        sl_error_clear(&e);
        bson_iter_t it;
        int64_t mem = -1, logo = -1;
        if (ingest_asset_doc("t", "a1", body, strlen(body), NULL, &doc, &e) == SL_OK) {
            if (bson_iter_init_find(&it, doc, "memorability_micro") && BSON_ITER_HOLDS_INT64(&it))
                mem = bson_iter_int64(&it);
            if (bson_iter_init(&it, doc) &&
                bson_iter_find_descendant(&it, "saliency_micro.logo", &it) &&
                BSON_ITER_HOLDS_INT64(&it))
                logo = bson_iter_int64(&it);
            bson_destroy(doc);
        }
        checked++;
        if (mem != k + 1 || logo != k + 1) {
            fprintf(stderr, "ingest stored %lld / %lld for the tie 0.%06ld5, expected %ld (%s)\n",
                    (long long)mem, (long long)logo, k, k + 1, e.message);
            bad++;
        }
    }
    CHECK_INT(bad, 0);
    CHECK(checked > 20000);
    /* Outside [0, 1] by the decimal: refused, naming the field. */
    const char *over = "{\"client\": \"c\", \"brand\": \"b\", \"campaign\": \"c\", \"sector\": "
                       "\"s\", \"media_type\": \"image\", \"memorability\": "
                       "1.00000000000000000001, \"saliency\": {}}";
    bson_t *doc = NULL;
    sl_error e;
    sl_error_clear(&e);
    CHECK_INT(ingest_asset_doc("t", "a1", over, strlen(over), NULL, &doc, &e), SL_EINVAL);
    CHECK(strstr(e.message, "outside [0, 1]") != NULL);
    CHECK_STR(e.field, "memorability");
    if (doc)
        bson_destroy(doc);
}

int main(void)
{
    test_table();
    test_every_tie();
    test_ingest();
    return check_finish();
}
