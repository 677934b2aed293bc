/* html.c: the escaping HTML writer the dashboard's pages are built with. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "escape.h"
#include "html.h"

static void put(struct html *h, const void *p, size_t n) {
        if (h->err >= 0 && n > 0) {
                int r = buf_append(&h->b, p, n);
                if (r < 0)
                        h->err = r;
        }
}

void html_raw_(struct html *h, const char *markup) {
        put(h, markup, strlen(markup));
}

/* The entities, applied to text escape_text() already made printable. */
static void put_escaped(struct html *h, const char *s, size_t n) {
        size_t from = 0;

        for (size_t i = 0; i < n; i++) {
                const char *ent;
                switch (s[i]) {
                case '&': ent = "&amp;"; break;
                case '<': ent = "&lt;"; break;
                case '>': ent = "&gt;"; break;
                case '"': ent = "&quot;"; break;
                case '\'': ent = "&#39;"; break;
                default: continue;
                }
                put(h, s + from, i - from);
                put(h, ent, strlen(ent));
                from = i + 1;
        }
        put(h, s + from, n - from);
}

/* At most max bytes of s, cut back to a character boundary, "…" when cut; max < 0: all of it. */
static void put_value(struct html *h, const char *s, long max) {
        char tmp[ESCAPE_MAX];
        size_t n;

        if (!s)
                s = "";
        if (escape_needed(s))
                s = escape_text(s, tmp, sizeof(tmp));
        n = strlen(s);
        if (max >= 0 && n > (size_t) max) {
                n = (size_t) max;
                while (n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80)   /* s is valid UTF-8 here */
                        n--;
                put_escaped(h, s, n);
                put(h, "\xe2\x80\xa6", 3);
                return;
        }
        put_escaped(h, s, n);
}

void html_text(struct html *h, const char *s) {
        put_value(h, s, -1);
}

void html_append(struct html *h, const struct html *other) {
        if (other->err < 0) {
                if (h->err >= 0)
                        h->err = other->err;
                return;
        }
        put(h, other->b.data, other->b.len);
}

/*
 * The format is walked here and each conversion handed to snprintf on its own with its own argument,
 * so the compiler's format check (the _printf_ attribute) still types every argument; strings go
 * through put_value() instead. The conversion handed to snprintf is a piece of the caller's literal
 * format, checked by the compiler there, hence the one -Wformat-nonliteral exception below.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
void html_vprintf(struct html *h, const char *fmt, va_list ap) {
        const char *p = fmt;

        while (*p && h->err >= 0) {
                const char *pct = strchr(p, '%'), *spec;
                char conv[32], out[128];
                enum { L_NONE, L_HH, L_H, L_L, L_LL, L_J, L_Z, L_T } len = L_NONE;
                long prec = -1;
                size_t sl;
                int n;

                if (!pct) {
                        put(h, p, strlen(p));
                        break;
                }
                put(h, p, (size_t) (pct - p));
                spec = pct++;
                if (*pct == '%') {
                        put(h, "%", 1);
                        p = pct + 1;
                        continue;
                }
                pct += strspn(pct, "-+ #0");
                pct += strspn(pct, "0123456789");
                if (*pct == '.') {
                        char *end;
                        prec = strtol(pct + 1, &end, 10);
                        pct = end;
                }
                if (pct[0] == 'h' && pct[1] == 'h')
                        len = L_HH, pct += 2;
                else if (pct[0] == 'l' && pct[1] == 'l')
                        len = L_LL, pct += 2;
                else if (*pct == 'h')
                        len = L_H, pct++;
                else if (*pct == 'l')
                        len = L_L, pct++;
                else if (*pct == 'j')
                        len = L_J, pct++;
                else if (*pct == 'z')
                        len = L_Z, pct++;
                else if (*pct == 't')
                        len = L_T, pct++;
                sl = (size_t) (pct - spec) + 1;
                if (!*pct || sl >= sizeof(conv)) {
                        h->err = -EINVAL;
                        break;
                }
                memcpy(conv, spec, sl);
                conv[sl] = '\0';
                p = pct + 1;
                switch (*pct) {
                case 's':
                        put_value(h, va_arg(ap, const char *), prec);
                        continue;
                case 'c': {
                        char c[2] = { (char) va_arg(ap, int), '\0' };
                        put_value(h, c, -1);
                        continue;
                }
                case 'd':
                case 'i':
                        switch (len) {
                        case L_L: n = snprintf(out, sizeof(out), conv, va_arg(ap, long)); break;
                        case L_LL: n = snprintf(out, sizeof(out), conv, va_arg(ap, long long)); break;
                        case L_J: n = snprintf(out, sizeof(out), conv, va_arg(ap, intmax_t)); break;
                        case L_Z: n = snprintf(out, sizeof(out), conv, va_arg(ap, ssize_t)); break;
                        case L_T: n = snprintf(out, sizeof(out), conv, va_arg(ap, ptrdiff_t)); break;
                        case L_NONE:
                        case L_HH:
                        case L_H:
                        default: n = snprintf(out, sizeof(out), conv, va_arg(ap, int)); break;
                        }
                        break;
                case 'u':
                case 'x':
                case 'X':
                case 'o':
                        switch (len) {
                        case L_L: n = snprintf(out, sizeof(out), conv, va_arg(ap, unsigned long)); break;
                        case L_LL: n = snprintf(out, sizeof(out), conv, va_arg(ap, unsigned long long)); break;
                        case L_J: n = snprintf(out, sizeof(out), conv, va_arg(ap, uintmax_t)); break;
                        case L_Z: n = snprintf(out, sizeof(out), conv, va_arg(ap, size_t)); break;
                        case L_T: n = snprintf(out, sizeof(out), conv, va_arg(ap, ptrdiff_t)); break;
                        case L_NONE:
                        case L_HH:
                        case L_H:
                        default: n = snprintf(out, sizeof(out), conv, va_arg(ap, unsigned)); break;
                        }
                        break;
                case 'f':
                case 'F':
                case 'g':
                case 'G':
                case 'e':
                case 'E':
                        n = snprintf(out, sizeof(out), conv, va_arg(ap, double));
                        break;
                default:
                        h->err = -EINVAL;   /* %n, %p, %ls and anything unknown */
                        return;
                }
                if (n < 0 || (size_t) n >= sizeof(out)) {
                        h->err = -EINVAL;
                        return;
                }
                put(h, out, (size_t) n);
        }
}

#pragma GCC diagnostic pop

void html_printf_(struct html *h, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        html_vprintf(h, fmt, ap);
        va_end(ap);
}

void html_free(struct html *h) {
        buf_free(&h->b);
}

char *html_time(int64_t t, char buf[static 32]) {
        struct tm tm;
        time_t tt = (time_t) t;

        if (t <= 0 || !gmtime_r(&tt, &tm) || strftime(buf, 32, "%Y-%m-%d %H:%M UTC", &tm) == 0)
                snprintf(buf, 32, "never");
        return buf;
}

char *html_ago(int64_t t, int64_t now, char buf[static 32]) {
        int64_t d = now - t, a;
        const char *unit;

        if (t <= 0) {
                snprintf(buf, 32, "never");
                return buf;
        }
        a = d < 0 ? -d : d;
        if (a < 10) {
                snprintf(buf, 32, "just now");
                return buf;
        }
        if (a < 120)
                unit = "s";
        else if (a < 7200)
                a /= 60, unit = "min";
        else if (a < 172800)
                a /= 3600, unit = "h";
        else
                a /= 86400, unit = "d";
        snprintf(buf, 32, d < 0 ? "in %" PRId64 " %s" : "%" PRId64 " %s ago", a, unit);
        return buf;
}

char *html_size(uint64_t n, char buf[static 32]) {
        static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
        double v = (double) n;
        int u = -1;

        if (n < 1024) {
                snprintf(buf, 32, "%" PRIu64 " B", n);
                return buf;
        }
        while (v >= 1024 && u < 3) {
                v /= 1024;
                u++;
        }
        snprintf(buf, 32, v < 10 ? "%.1f %s" : "%.0f %s", v, units[u]);
        return buf;
}
