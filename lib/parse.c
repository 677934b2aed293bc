/* parse.c: checked number and time parsing (no atoi/strtol without checks anywhere else). */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "parse.h"

int unhexchar(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

int parse_u64(const char *s, uint64_t *ret) {
        unsigned long long v;
        char *end = NULL;

        /* strtoull accepts leading space and '-' (and wraps it): reject both up front. */
        if (!s || !isdigit((unsigned char) s[0]))
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        if (errno != 0 || !end || *end != '\0')
                return -EINVAL;
        *ret = (uint64_t) v;
        return 0;
}

int parse_uint(const char *s, unsigned *ret) {
        uint64_t v;
        int r = parse_u64(s, &v);

        if (r < 0)
                return r;
        if (v > UINT_MAX)
                return -ERANGE;
        *ret = (unsigned) v;
        return 0;
}

int parse_u32_range(const char *s, uint32_t min, uint32_t max, uint32_t *ret) {
        uint64_t v;
        int r = parse_u64(s, &v);

        if (r < 0)
                return r;
        if (v < min || v > max)
                return -ERANGE;
        *ret = (uint32_t) v;
        return 0;
}

int parse_size(const char *s, uint64_t *ret) {
        static const struct {
                char suffix;
                unsigned shift;
        } units[] = { { 'K', 10 }, { 'M', 20 }, { 'G', 30 }, { 'T', 40 } };
        char digits[32];
        size_t n;
        uint64_t v;
        unsigned shift = 0;
        int r;

        if (!s)
                return -EINVAL;
        n = strlen(s);
        if (n == 0 || n >= sizeof(digits))
                return -EINVAL;
        memcpy(digits, s, n + 1);
        for (size_t i = 0; i < ELEMENTSOF(units); i++)
                if (toupper((unsigned char) digits[n - 1]) == units[i].suffix) {
                        shift = units[i].shift;
                        digits[--n] = '\0';
                        break;
                }
        r = parse_u64(digits, &v);
        if (r < 0)
                return r;
        if (shift && v > (UINT64_MAX >> shift))
                return -ERANGE;
        *ret = v << shift;
        return 0;
}

static int parse_fixed_digits(const char *s, size_t n, int *ret) {
        int v = 0;

        for (size_t i = 0; i < n; i++) {
                if (!isdigit((unsigned char) s[i]))
                        return -EINVAL;
                v = v * 10 + (s[i] - '0');
        }
        *ret = v;
        return 0;
}

int parse_time(const char *s, int64_t *ret) {
        int y, mo, d, h = 0, mi = 0, se = 0;
        struct tm tm = {};
        size_t n;
        time_t t;

        if (!s)
                return -EINVAL;
        if (s[0] == '@') {
                uint64_t v;
                int r = parse_u64(s + 1, &v);
                if (r < 0)
                        return r;
                if (v > INT64_MAX)
                        return -ERANGE;
                *ret = (int64_t) v;
                return 0;
        }
        n = strlen(s);
        if (n != 10 && n != 20)
                return -EINVAL;
        if (parse_fixed_digits(s, 4, &y) < 0 || s[4] != '-' || parse_fixed_digits(s + 5, 2, &mo) < 0 ||
            s[7] != '-' || parse_fixed_digits(s + 8, 2, &d) < 0)
                return -EINVAL;
        if (n == 20 && (s[10] != 'T' || parse_fixed_digits(s + 11, 2, &h) < 0 || s[13] != ':' ||
                        parse_fixed_digits(s + 14, 2, &mi) < 0 || s[16] != ':' ||
                        parse_fixed_digits(s + 17, 2, &se) < 0 || s[19] != 'Z'))
                return -EINVAL;
        if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
                return -ERANGE;
        tm.tm_year = y - 1900;
        tm.tm_mon = mo - 1;
        tm.tm_mday = d;
        tm.tm_hour = h;
        tm.tm_min = mi;
        tm.tm_sec = se;
        t = timegm(&tm);
        if (t == (time_t) -1)
                return -ERANGE;
        /* timegm normalises 2026-02-31 to March: reject dates that did not survive unchanged. */
        if (tm.tm_mday != d || tm.tm_mon != mo - 1)
                return -ERANGE;
        *ret = (int64_t) t;
        return 0;
}

char *format_time(int64_t t, char buf[static 21]) {
        struct tm tm;
        time_t tt = (time_t) t;

        if (!gmtime_r(&tt, &tm) || strftime(buf, 21, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(buf, 21, "@%" PRId64, t);
        return buf;
}
