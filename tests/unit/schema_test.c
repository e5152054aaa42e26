/* schema_test.c -- key builders, component validation, scores and times. */
#include "schema/schema.h"
#include "tests/check.h"

static void test_status_table(void)
{
    CHECK_STR(sl_status_name(SL_EINVAL), "SL_EINVAL");
    CHECK_INT(sl_status_http(SL_ENOTFOUND), 404);
    CHECK_INT(sl_status_http(SL_ECONDITION), 409);
    CHECK_INT(sl_status_http((sl_status)999), 500);
    CHECK_STR(sl_status_title(SL_ETOOLARGE), "too large");
}

static void test_error_first_wins(void)
{
    sl_error e;
    sl_error_clear(&e);
    CHECK_INT(e.status, SL_OK);
    CHECK_INT(sl_error_set_at(&e, SL_EINVAL, "frames[3].confidence", 120, "bad %d", 7), SL_EINVAL);
    sl_error_set(&e, SL_EIO, "later");
    CHECK_INT(e.status, SL_EINVAL);
    CHECK_STR(e.message, "bad 7");
    CHECK_STR(e.field, "frames[3].confidence");
    CHECK_INT(e.offset, 120);
    sl_error_prefix(&e, "file %s", "a.json");
    CHECK_STR(e.message, "file a.json: bad 7");
    CHECK_INT(sl_error_set(NULL, SL_EIO, "no struct"), SL_EIO);
}

static sl_status comp(const char *v, sl_error *e)
{
    sl_error_clear(e);
    return schema_component_check("brand", v, e);
}

static void test_components(void)
{
    sl_error e;
    CHECK_INT(comp("acme", &e), SL_OK);
    CHECK_INT(comp("A.b_c:d-e", &e), SL_OK);
    CHECK_INT(comp("L'Oréal Paris", &e), SL_OK);
    CHECK_INT(comp("日本", &e), SL_OK);
    CHECK_INT(comp("Procter & Gamble", &e), SL_OK);

    CHECK_INT(comp("", &e), SL_EINVAL);
    CHECK(strstr(e.message, "brand is empty") != NULL);
    CHECK_INT(comp("a#b", &e), SL_EINVAL);
    CHECK(strstr(e.message, "'#' at byte 1") != NULL);
    CHECK_INT(e.offset, 1);
    CHECK_INT(comp("a/b", &e), SL_EINVAL);
    CHECK(strstr(e.message, "'/'") != NULL);
    CHECK_INT(comp("ab\n", &e), SL_EINVAL); /* $ would have accepted this */
    CHECK(strstr(e.message, "control byte 0x0a at byte 2") != NULL);
    CHECK(strchr(e.message, '\n') == NULL);
    CHECK_INT(comp("a\tb", &e), SL_EINVAL);
    CHECK_INT(comp(".hidden", &e), SL_EINVAL);
    CHECK(strstr(e.message, "start with a letter or digit") != NULL);
    CHECK_INT(comp("trailing ", &e), SL_EINVAL);
    CHECK(strstr(e.message, "ends with a space") != NULL);
    CHECK_INT(comp("a%2Fb", &e), SL_EINVAL);
    CHECK_INT(comp("..", &e), SL_EINVAL);
    CHECK_INT(comp("bad\xff", &e), SL_EINVAL);
    CHECK(strstr(e.message, "not valid UTF-8 at byte 3") != NULL);
    CHECK_INT(comp("over\xc3", &e), SL_EINVAL); /* truncated sequence */

    char big[200];
    memset(big, 'a', sizeof big);
    big[128] = '\0';
    CHECK_INT(comp(big, &e), SL_OK);
    big[128] = 'a';
    big[129] = '\0';
    CHECK_INT(comp(big, &e), SL_EINVAL);
    CHECK(strstr(e.message, "129 bytes") != NULL);

    /* An embedded NUL within the given length is a control byte. */
    sl_error_clear(&e);
    CHECK_INT(schema_component_check_n("sku", "ab\0cd", 5, &e), SL_EINVAL);
    CHECK(strstr(e.message, "0x00") != NULL);
}

static void test_keys(void)
{
    schema_key k;
    sl_error e;
    sl_error_clear(&e);
    CHECK_INT(schema_pk_surgery(k, "t1", "s-42", &e), SL_OK);
    CHECK_STR(k, "T#t1#SURGERY#s-42");
    CHECK_INT(schema_sk_frame(k, 123, &e), SL_OK);
    CHECK_STR(k, "FRAME#000000123");
    CHECK_INT(schema_sk_frame(k, SCHEMA_FRAME_MAX, &e), SL_OK);
    CHECK_STR(k, "FRAME#999999999");
    CHECK_INT(schema_sk_frame(k, SCHEMA_FRAME_MAX + 1, &e), SL_EINVAL);
    CHECK_STR(k, "");
    sl_error_clear(&e);
    CHECK_INT(schema_sk_tool_instance(k, "SKU-1", 7, &e), SL_OK);
    CHECK_STR(k, "TOOL#SKU-1#0007");
    CHECK_INT(schema_sk_asset_by_brand(k, "b", "c", "a1", &e), SL_OK);
    CHECK_STR(k, "BRAND#b#CAMPAIGN#c#ASSET#a1");
    CHECK_INT(schema_sk_tool_aggregate(k, "h", "lap-chole", "S9", &e), SL_OK);
    CHECK_STR(k, "HOSPITAL#h#PROC#lap-chole#TOOL#S9");
    CHECK_INT(schema_pk_hospital_procedure(k, "t", "h", "p", &e), SL_OK);
    CHECK_STR(k, "T#t#HOSPITAL#h#PROC#p");
    CHECK_INT(schema_sk_surgery_date(k, "2026-11-26", "s1", &e), SL_OK);
    CHECK_STR(k, "DATE#2026-11-26#SURGERY#s1");
    CHECK_INT(schema_sk_surgery_date(k, "2026-13-01", "s1", &e), SL_EINVAL);

    /* A forged component names itself and leaves the key empty. */
    sl_error_clear(&e);
    CHECK_INT(schema_pk_surgery(k, "t1", "x#SURGERY#y", &e), SL_EINVAL);
    CHECK_STR(k, "");
    CHECK_STR(e.field, "surgery id");
    sl_error_clear(&e);
    CHECK_INT(schema_pk_asset(k, "t/../t2", "a", &e), SL_EINVAL);
    CHECK_STR(e.field, "tenant");

    uint32_t f = 0;
    CHECK_INT(schema_sk_frame_parse("FRAME#000000042", &f, &e), SL_OK);
    CHECK_INT(f, 42);
    CHECK_INT(schema_sk_frame_parse("FRAME#42", &f, &e), SL_EINVAL);
    CHECK_INT(schema_sk_frame_parse("FRAME#00000004x", &f, &e), SL_EINVAL);
}

static void test_numbers(void)
{
    int64_t m = -1;
    sl_error e;
    sl_error_clear(&e);
    CHECK_INT(schema_micro_from_score(0.6153845, &m, &e), SL_OK);
    CHECK_INT(m, 615385);
    CHECK_INT(schema_micro_from_score(1.0, &m, &e), SL_OK);
    CHECK_INT(m, 1000000);
    CHECK_INT(schema_micro_from_score(0.0, &m, &e), SL_OK);
    CHECK_INT(m, 0);
    CHECK_INT(schema_micro_from_score(1.0000001, &m, &e), SL_EINVAL);
    CHECK_INT(schema_micro_from_score(-0.1, &m, NULL), SL_EINVAL);
    CHECK_INT(schema_micro_from_score(0.0 / 0.0, &m, NULL), SL_EINVAL);

    int64_t ms = 0;
    CHECK_INT(schema_time_parse("1970-01-01T00:00:00Z", &ms, NULL), SL_OK);
    CHECK_INT(ms, 0);
    CHECK_INT(schema_time_parse("2026-11-26T12:34:56.789Z", &ms, NULL), SL_OK);
    CHECK_INT(ms, 1795696496789LL);
    char out[25];
    schema_time_format(ms, out);
    CHECK_STR(out, "2026-11-26T12:34:56.789Z");
    CHECK_INT(schema_time_parse("2024-02-29T00:00:00+00:00", &ms, NULL), SL_OK);
    CHECK_INT(schema_time_parse("2023-02-29T00:00:00Z", &ms, NULL), SL_EINVAL);
    CHECK_INT(schema_time_parse("2026-11-26T12:34:56", &ms, NULL), SL_EINVAL);
    CHECK_INT(schema_time_parse("2026-11-26T12:34:56+01:00", &ms, NULL), SL_EINVAL);
    CHECK_INT(schema_time_parse("2026-11-26T25:00:00Z", &ms, NULL), SL_EINVAL);
}

int main(void)
{
    test_status_table();
    test_error_first_wins();
    test_components();
    test_keys();
    test_numbers();
    return check_finish();
}
