/* schema_test.c -- key builders, component validation, scores and times,
 * and the one UTF-8 check (against libpcre2's, byte sequence by sequence). */
#include "schema/schema.h"
#include "tests/check.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

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

/* libpcre2's verdict (its UTF check is strict RFC 3629): the valid prefix. */
static pcre2_code *oracle_re;
static pcre2_match_data *oracle_md;

static size_t oracle_prefix(const unsigned char *s, size_t len)
{
    int m = pcre2_match(oracle_re, s, len, 0, 0, oracle_md, NULL);
    return (m <= PCRE2_ERROR_UTF8_ERR1 && m >= PCRE2_ERROR_UTF8_ERR21)
               ? (size_t)pcre2_get_startchar(oracle_md)
               : len;
}

/* Our prefix, fed whole and fed in two pieces split at every position. */
static int utf8_agrees(const unsigned char *s, size_t len)
{
    size_t want = oracle_prefix(s, len);
    int ok = schema_utf8_valid_prefix((const char *)s, len) == want;
    for (size_t cut = 0; ok && cut <= len; cut++) {
        schema_utf8 st = {0};
        size_t at = schema_utf8_feed(&st, (const char *)s, cut);
        if (at == cut)
            at = cut + schema_utf8_feed(&st, (const char *)s + cut, len - cut);
        ok = (at == len && st.need == 0) == (want == len);
    }
    if (!ok) {
        fprintf(stderr, "utf8 disagrees on");
        for (size_t i = 0; i < len; i++)
            fprintf(stderr, " %02x", s[i]);
        fprintf(stderr, " (pcre2: valid prefix %zu)\n", want);
    }
    return ok;
}

/* Regression (issue 9, finding 7): overlong forms, surrogates and code
 * points above U+10FFFF passed yajl's check and were stored.  The one check
 * agrees with libpcre2 on every 1- and 2-byte sequence, every 3-byte one
 * whose last byte is a boundary value, and every 4-byte one of boundary
 * continuations; each refusal says why. */
static void test_utf8(void)
{
    static const unsigned char edge[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf,
                                         0xc0, 0xc2, 0xdf, 0xe0, 0xed, 0xf0, 0xf4, 0xf5, 0xff};
    const size_t ne = sizeof edge;
    int code;
    PCRE2_SIZE where;
    oracle_re = pcre2_compile((PCRE2_SPTR) "", 0, PCRE2_UTF, &code, &where, NULL);
    oracle_md = pcre2_match_data_create(1, NULL);
    REQUIRE(oracle_re && oracle_md);
    long bad = 0;
    unsigned char s[4];
    for (int a = 0; a < 256; a++) {
        s[0] = (unsigned char)a;
        bad += !utf8_agrees(s, 1);
        for (int b = 0; b < 256; b++) {
            s[1] = (unsigned char)b;
            bad += !utf8_agrees(s, 2);
            for (size_t c = 0; c < ne; c++) {
                s[2] = edge[c];
                bad += !utf8_agrees(s, 3);
            }
        }
        if (a >= 0xc0) /* 4-byte sequences: leads from 0xc0 up, boundary continuations */
            for (size_t b = 0; b < ne; b++)
                for (size_t c = 0; c < ne; c++)
                    for (size_t d = 0; d < ne; d++) {
                        s[1] = edge[b];
                        s[2] = edge[c];
                        s[3] = edge[d];
                        bad += !utf8_agrees(s, 4);
                    }
    }
    CHECK_INT(bad, 0);
    pcre2_match_data_free(oracle_md);
    pcre2_code_free(oracle_re);

    /* Long ASCII runs (the 8-byte fast path) with a fault at each place. */
    char text[64];
    for (size_t at = 0; at < 40; at++) {
        memset(text, 'a', sizeof text);
        memcpy(text + at, "\xed\xa0\x80", 3); /* U+D800 encoded */
        CHECK_INT(schema_utf8_valid_prefix(text, 48), at);
    }

    sl_error e;
    struct {
        const char *s, *why;
        int64_t at;
    } cases[] = {
        {"ab\xc0\x80", "an overlong form", 2},
        {"\xe0\x80\x80", "an overlong form", 0},
        {"x\xf0\x80\x80\x80", "an overlong form", 1},
        {"\xed\xa0\x80", "a UTF-16 surrogate (U+D800..U+DFFF)", 0},
        {"ok \xed\xbf\xbf", "a UTF-16 surrogate (U+D800..U+DFFF)", 3},
        {"\xf4\x90\x80\x80", "a code point above U+10FFFF", 0},
        {"\xf5\x80\x80\x80", "a code point above U+10FFFF", 0},
        {"a\x80", "a continuation byte without a lead byte", 1},
        {"\xc3(", "a character cut short (a continuation byte is missing)", 0},
        {"abc\xe2\x82", "a character cut short at the end of the text", 3},
        {"\xff", "a byte that UTF-8 never uses", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl_error_clear(&e);
        CHECK_INT(schema_utf8_check("surgeon", cases[i].s, strlen(cases[i].s), &e), SL_EINVAL);
        CHECK_STR(e.field, "surgeon");
        CHECK_INT(e.offset, cases[i].at);
        if (!strstr(e.message, cases[i].why))
            fprintf(stderr, "case %zu: \"%s\" does not say \"%s\"\n", i, e.message, cases[i].why);
        CHECK(strstr(e.message, cases[i].why) != NULL);
    }
    sl_error_clear(&e);
    const char *fine = "OR 3 \xe2\x80\x94 \xf0\x9f\x94\xaa \xf4\x8f\xbf\xbf \xef\xbf\xbd";
    CHECK_INT(schema_utf8_check("room", fine, strlen(fine), &e), SL_OK);
    /* The component check uses it too. */
    CHECK_INT(comp("L\xc3\xa9"
                   "a\xed\xa0\x80",
                   &e),
              SL_EINVAL);
    CHECK(strstr(e.message, "surrogate") != NULL);
    CHECK_INT(e.offset, 4);
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
    test_utf8();
    test_keys();
    test_numbers();
    return check_finish();
}
