/* escape.c: untrusted text made safe to print (control bytes, DEL, invalid UTF-8, line/bidi controls). */
#include <stdint.h>
#include <string.h>

#include "escape.h"

/* Length of the valid UTF-8 sequence at s (1..4), its code point in *cp; 0 when invalid. Overlong
 * forms, surrogates and values above U+10FFFF are invalid (RFC 3629). */
static size_t utf8_char(const unsigned char *s, uint32_t *cp) {
        uint32_t c;
        size_t n;

        if (s[0] < 0x80) {
                *cp = s[0];
                return 1;
        }
        if (s[0] >= 0xc2 && s[0] <= 0xdf) {
                n = 2;
                c = s[0] & 0x1f;
        } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
                n = 3;
                c = s[0] & 0x0f;
        } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
                n = 4;
                c = s[0] & 0x07;
        } else
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((s[i] & 0xc0) != 0x80)   /* also stops at the NUL terminator */
                        return 0;
                c = (c << 6) | (s[i] & 0x3f);
        }
        if ((n == 3 && c < 0x800) || (n == 4 && c < 0x10000) || (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
                return 0;
        *cp = c;
        return n;
}

/* Code points that move the cursor, end a line or reorder text on a terminal or in a log viewer. */
static bool unsafe_cp(uint32_t c) {
        return (c >= 0x80 && c <= 0x9f) || c == 0x2028 || c == 0x2029 || (c >= 0x202a && c <= 0x202e) ||
               (c >= 0x2066 && c <= 0x2069);
}

bool escape_needed(const char *s) {
        const unsigned char *p = (const unsigned char *) s;

        while (p && *p) {
                uint32_t c;
                size_t n = utf8_char(p, &c);
                if (n == 0 || c < 0x20 || c == 0x7f || unsafe_cp(c))
                        return true;
                p += n;
        }
        return false;
}

/* The escaped form of the character at p into tmp (at most 7 bytes); returns the input bytes used. */
static size_t escape_one(const unsigned char *p, char tmp[static 8], size_t *ret_k) {
        static const char hex[] = "0123456789abcdef";
        size_t n, k = 0;
        uint32_t c;

        n = utf8_char(p, &c);
        if (n == 0) {
                n = 1;
                c = *p;
                tmp[k++] = '\\', tmp[k++] = 'x', tmp[k++] = hex[c >> 4], tmp[k++] = hex[c & 15];
        } else if (c == '\n' || c == '\r' || c == '\t') {
                tmp[k++] = '\\';
                tmp[k++] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
        } else if (c < 0x20 || c == 0x7f) {
                tmp[k++] = '\\', tmp[k++] = 'x', tmp[k++] = hex[c >> 4], tmp[k++] = hex[c & 15];
        } else if (unsafe_cp(c)) {
                tmp[k++] = '\\', tmp[k++] = 'u';
                for (int shift = 12; shift >= 0; shift -= 4)
                        tmp[k++] = hex[(c >> shift) & 15];
        } else {
                memcpy(tmp, p, n);
                k = n;
        }
        *ret_k = k;
        return n;
}

char *escape_text(const char *s, char *out, size_t size) {
        const unsigned char *p = (const unsigned char *) (s ? s : "");
        size_t o = 0, total = 0, k, reserve;
        char tmp[8];

        if (size == 0)
                return out;
        for (const unsigned char *q = p; *q; total += k)
                q += escape_one(q, tmp, &k);
        /* When it does not all fit, keep room for "..." and cut between whole characters. */
        reserve = total + 1 > size ? 3 : 0;
        while (*p) {
                size_t n = escape_one(p, tmp, &k);
                if (o + k + reserve + 1 > size)
                        break;
                memcpy(out + o, tmp, k);
                o += k;
                p += n;
        }
        if (*p && o + 4 <= size) {
                memcpy(out + o, "...", 3);
                o += 3;
        }
        out[o] = '\0';
        return out;
}
