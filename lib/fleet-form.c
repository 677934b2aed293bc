/* fleet-form.c: application/x-www-form-urlencoded decoding with hard limits, and query-value encoding. */
#include <stdlib.h>
#include <sys/types.h>
#include <string.h>

#include "err.h"
#include "escape.h"
#include "fleet-form.h"
#include "macro.h"
#include "parse.h"

static bool name_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* Decode src[0..n) into dst (room for n + 1 bytes); returns the decoded length or -RINGIL_EMALFORMED. */
static ssize_t decode(const char *src, size_t n, char *dst) {
        size_t k = 0;

        for (size_t i = 0; i < n; i++) {
                if (src[i] == '+')
                        dst[k++] = ' ';
                else if (src[i] == '%') {
                        int hi, lo;
                        if (n - i < 3)   /* '%' and two digits must all be inside the field */
                                return -RINGIL_EMALFORMED;
                        hi = unhexchar(src[i + 1]);
                        lo = unhexchar(src[i + 2]);
                        if (hi < 0 || lo < 0)
                                return -RINGIL_EMALFORMED;
                        dst[k++] = (char) (hi << 4 | lo);
                        i += 2;
                } else
                        dst[k++] = src[i];
        }
        dst[k] = '\0';
        /* INVARIANT: a decoded NUL would cut the value short of what was sent; refuse it (and every
         * other control byte, invalid UTF-8 and the line/bidi controls) rather than guess. */
        if (memchr(dst, '\0', k) || escape_needed(dst))
                return -RINGIL_EMALFORMED;
        return (ssize_t) k;
}

int form_parse(const char *data, size_t len, struct form *ret) {
        struct form f = {};
        char *out;
        size_t pos = 0;

        *ret = (struct form) {};
        if (len > FORM_MAX_INPUT)
                return ringil_fail(-RINGIL_ETOOBIG, "form of %zu bytes (at most %d)", len, FORM_MAX_INPUT);
        /* decoding never grows a field, and each gets one terminator: len + fields ≤ 2 len + 1 */
        f.storage = malloc(2 * len + 2);
        if (!f.storage)
                return -ENOMEM;
        out = f.storage;
        while (pos < len) {
                const char *field = data + pos, *amp = memchr(field, '&', len - pos), *eq;
                size_t flen = amp ? (size_t) (amp - field) : len - pos, nlen;
                ssize_t vlen;

                pos += flen + (amp ? 1 : 0);
                if (flen == 0)
                        continue;
                eq = memchr(field, '=', flen);
                if (!eq)
                        goto malformed;
                nlen = (size_t) (eq - field);
                if (nlen == 0 || nlen > FORM_MAX_NAME)
                        goto malformed;
                for (size_t i = 0; i < nlen; i++)
                        if (!name_char(field[i]))
                                goto malformed;
                if (f.n == FORM_MAX_FIELDS) {
                        form_done(&f);
                        return ringil_fail(-RINGIL_ETOOBIG, "form has more than %d fields", FORM_MAX_FIELDS);
                }
                memcpy(out, field, nlen);
                out[nlen] = '\0';
                for (size_t i = 0; i < f.n; i++)
                        if (streq(f.f[i].name, out))
                                goto malformed;
                f.f[f.n].name = out;
                out += nlen + 1;
                vlen = decode(eq + 1, flen - nlen - 1, out);
                if (vlen < 0)
                        goto malformed;
                if (vlen > FORM_MAX_VALUE) {
                        form_done(&f);
                        return ringil_fail(-RINGIL_ETOOBIG, "form field of %zd bytes (at most %d)", vlen, FORM_MAX_VALUE);
                }
                f.f[f.n++].value = out;
                out += vlen + 1;
        }
        *ret = f;
        return 0;

malformed:
        form_done(&f);
        return ringil_fail(-RINGIL_EMALFORMED, "malformed form or query string");
}

void form_done(struct form *f) {
        free(f->storage);
        *f = (struct form) {};
}

const char *form_get(const struct form *f, const char *name) {
        for (size_t i = 0; i < f->n; i++)
                if (streq(f->f[i].name, name))
                        return f->f[i].value;
        return NULL;
}

char *form_encode(const char *s, char *out, size_t size) {
        static const char hex[] = "0123456789ABCDEF";
        size_t k = 0;

        if (size == 0)
                return NULL;
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                bool keep = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                            *p == '.' || *p == '_' || *p == '~' || *p == '-';
                if (k + (keep ? 1 : 3) >= size) {
                        out[0] = '\0';
                        return NULL;
                }
                if (keep)
                        out[k++] = (char) *p;
                else {
                        out[k++] = '%';
                        out[k++] = hex[*p >> 4];
                        out[k++] = hex[*p & 15];
                }
        }
        out[k] = '\0';
        return out;
}
