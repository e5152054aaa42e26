/* numbers.c -- exact micro-unit scores and UTC ISO-8601 times. */
#include "schema.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

sl_status schema_micro_from_score(double score, int64_t *micro, sl_error *err)
{
    if (!isfinite(score))
        return sl_error_set(err, SL_EINVAL, "score is not a finite number");
    if (score < 0.0 || score > 1.0)
        return sl_error_set(err, SL_EINVAL, "score %.17g is outside [0, 1]", score);
    *micro = (int64_t)llround(score * 1e6);
    return SL_OK;
}

/* The digits of a JSON number and where its decimal point goes. */
typedef struct decimal {
    const char *digits[2]; /* integer part, fraction */
    size_t ndigits[2];
    int64_t exp10; /* saturated at +-10^9: far past any digit count a body can hold */
    int neg;
} decimal;

static int decimal_parse(const char *s, size_t len, decimal *d)
{
    size_t i = 0;
    memset(d, 0, sizeof *d);
    if (i < len && s[i] == '-') {
        d->neg = 1;
        i++;
    }
    for (int part = 0; part < 2; part++) {
        if (part == 1) {
            if (i >= len || s[i] != '.')
                break;
            i++;
        }
        d->digits[part] = s + i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        d->ndigits[part] = (size_t)(s + i - d->digits[part]);
        if (d->ndigits[part] == 0)
            return 0;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        int eneg = 0;
        size_t start;
        if (++i < len && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        for (start = i; i < len && s[i] >= '0' && s[i] <= '9'; i++)
            if (d->exp10 < 1000000000)
                d->exp10 = d->exp10 * 10 + (s[i] - '0');
        if (i == start)
            return 0;
        if (eneg)
            d->exp10 = -d->exp10;
    }
    return i == len;
}

/* Digit k (0 = the most significant written) of the integer and fraction
 * parts read as one digit string; 0 past either end. */
static int digit_at(const decimal *d, int64_t k)
{
    int64_t n0 = (int64_t)d->ndigits[0], n1 = (int64_t)d->ndigits[1];
    if (k < 0 || k >= n0 + n1)
        return 0;
    return k < n0 ? d->digits[0][k] - '0' : d->digits[1][k - n0] - '0';
}

sl_status schema_micro_from_decimal(const char *s, size_t len, int64_t *micro, sl_error *err)
{
    sl_status rc = SL_OK;
    int shown = (int)(len > 40 ? 40 : len);
    decimal d;
    int64_t whole = 0;
    if (!s || !decimal_parse(s, len, &d)) {
        rc = sl_error_set(err, SL_EINVAL, "score \"%.*s\" is not a number", s ? shown : 0,
                          s ? s : "");
        goto out;
    }
    /* The digit string D (integer then fraction digits) times
     * 10^(exp10 - fraction digits) is the value; in micro-units, D's digit
     * `point - 1` is the units digit and digit `point` the first dropped. */
    int64_t total = (int64_t)(d.ndigits[0] + d.ndigits[1]);
    int64_t point = (int64_t)d.ndigits[0] + d.exp10 + 6;
    int64_t first = 0; /* the first nonzero digit; total when the value is 0 ("-0", "0e99") */
    while (first < total && digit_at(&d, first) == 0)
        first++;
    if (first == total)
        goto out;
    /* Negative, or 8 digits or more before the point: outside [0, 1]. */
    int outside = d.neg || point - first > 7;
    for (int64_t k = first; !outside && k < point; k++)
        whole = whole * 10 + digit_at(&d, k);
    int dropped = 0; /* a nonzero digit below the micro-unit */
    for (int64_t k = point > first ? point : first; !outside && k < total && !dropped; k++)
        dropped = digit_at(&d, k) != 0;
    if (outside || whole > 1000000 || (whole == 1000000 && dropped)) {
        rc = sl_error_set(err, SL_EINVAL, "score %.*s is outside [0, 1]", shown, s);
        goto out;
    }
    /* Half away from zero (the value is positive here): the first dropped digit decides. */
    whole += digit_at(&d, point) >= 5;
out:
    if (rc == SL_OK)
        *micro = whole;
    return rc;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

sl_status schema_time_parse(const char *s, int64_t *ms, sl_error *err)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, se, frac_ms = 0;
    size_t len = s ? strlen(s) : 0;
    if (len < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
        !digits(s + 17, 2, &se))
        goto bad;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || se > 60)
        goto bad;
    if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        goto bad;
    const char *p = s + 19;
    if (*p == '.') {
        int n = 0, scale = 100;
        for (p++; *p >= '0' && *p <= '9'; p++, n++) {
            frac_ms += (*p - '0') * scale;
            scale /= 10;
        }
        if (n == 0 || n > 9)
            goto bad;
    }
    if (!((p[0] == 'Z' || p[0] == 'z') && p[1] == '\0') && strcmp(p, "+00:00") != 0)
        goto bad;
    if (se == 60)
        se = 59; /* a leap second folds into the second before it */
    *ms = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000LL + se * 1000LL + frac_ms;
    return SL_OK;
bad:
    return sl_error_set(err, SL_EINVAL,
                        "time \"%.40s\" is not UTC ISO-8601 (e.g. 2026-11-26T12:00:00Z)",
                        s ? s : "");
}

void schema_time_format(int64_t ms, char out[25])
{
    time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    int rem = (int)(ms - (int64_t)secs * 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    /* strftime bounds each field, so the 24 characters always fit. */
    char head[20];
    if (strftime(head, sizeof head, "%Y-%m-%dT%H:%M:%S", &tm) != 19)
        memcpy(head, "0000-00-00T00:00:00", 20);
    snprintf(out, 25, "%s.%03uZ", head, (unsigned)rem % 1000u);
}
