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
