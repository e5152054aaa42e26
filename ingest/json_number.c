/* json_number.c -- numbers as JSON writes them, parsed exactly: Clinger's
 * fast path for the common short ones, strtod for the rest. */
#include "ingest_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

bool ingest__number(const char *s, size_t len, double *out)
{
    if (len == 0 || len > INGEST__JSON_TOKEN_MAX)
        return false;
    /* Fast path (Clinger): at most 15 significant digits and a power of ten
     * up to 22 are both exact doubles, so one multiplication or division is
     * correctly rounded, exactly as strtod would round. */
    size_t i = 0;
    bool neg = false;
    if (s[i] == '-') {
        neg = true;
        i++;
    }
    uint64_t m = 0;
    int digits = 0, exp10 = 0;
    bool any = false;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        any = true;
        if (m == 0 && s[i] == '0')
            continue; /* leading zeros are not significant */
        if (digits < 19) {
            m = m * 10 + (uint64_t)(s[i] - '0');
            digits++;
        } else {
            digits = 99; /* too many: slow path */
        }
    }
    if (i < len && s[i] == '.') {
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            any = true;
            if (m == 0 && s[i] == '0') {
                exp10--;
                continue;
            }
            if (digits < 19) {
                m = m * 10 + (uint64_t)(s[i] - '0');
                digits++;
                exp10--;
            } else {
                digits = 99;
            }
        }
    }
    bool fast = any && digits <= 15;
    if (fast && i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        bool eneg = false;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        int e = 0;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
            if (e < 10000)
                e = e * 10 + (s[i] - '0');
        exp10 += eneg ? -e : e;
    }
    if (fast && i == len && exp10 >= -22 && exp10 <= 22) {
        double v = (double)m;
        v = exp10 < 0 ? v / pow10_exact[-exp10] : v * pow10_exact[exp10];
        *out = neg ? -v : v;
        return true;
    }
    char buf[INGEST__JSON_TOKEN_MAX + 1];
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end = NULL;
    double v = strtod(buf, &end);
    if (end != buf + len || !isfinite(v))
        return false;
    *out = v;
    return true;
}

bool ingest__number_int(const char *s, size_t len, int64_t *out)
{
    size_t digits = len > 0 && s[0] == '-' ? len - 1 : len;
    bool plain = digits > 0 && digits <= 18; /* 18 digits always fit in int64 */
    for (size_t i = 0; plain && i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (i == 0 && s[i] == '-' && len > 1)))
            plain = false;
    if (plain) {
        int64_t v = 0;
        size_t i = s[0] == '-' ? 1 : 0;
        for (; i < len; i++)
            v = v * 10 + (s[i] - '0');
        *out = s[0] == '-' ? -v : v;
        return true;
    }
    double d;
    if (!ingest__number(s, len, &d) || d != floor(d) || fabs(d) > 9007199254740992.0)
        return false;
    *out = (int64_t)d;
    return true;
}
