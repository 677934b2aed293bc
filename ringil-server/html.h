/* html.h: HTML output in which every value is escaped; markup comes only from string literals. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "macro.h"

/*
 * INVARIANT: text that is not a string literal of this program reaches a page only through
 * html_printf's %s (or html_text), which escapes it; markup only through html_raw() and
 * html_printf's format, both of which take string literals (the "" lit "" trick makes anything else
 * a compile error), and through html_append() of another html that was built the same way.
 *
 * Escaping: first escape_text() (lib/escape.h: control bytes, invalid UTF-8, line and bidi controls
 * become visible \xNN / \uNNNN sequences, so a hostile id cannot reorder or hide text), then & < > " '
 * as entities, so a value is safe both as element text and inside a quoted attribute. URLs built from
 * values percent-encode them first (form_encode()) and then pass through %s like any value.
 *
 * Errors are sticky: the first failed append (over the cap, out of memory) sets h->err and every
 * later call does nothing; check it once at the end.
 */
struct html {
        struct buf b;
        int err;
};

#define HTML_INIT(cap) ((struct html) { .b = BUF_INIT(cap) })

void html_raw_(struct html *h, const char *markup);
#define html_raw(h, lit) html_raw_((h), "" lit "")

/* printf, with every %s argument escaped (precision counts bytes of the value before escaping);
 * %c is escaped too; numbers as printf prints them. No %n, %p or '*'. */
void html_printf_(struct html *h, const char *fmt, ...) _printf_(2, 3);
void html_vprintf(struct html *h, const char *fmt, va_list ap) _printf_(2, 0);
#define html_printf(h, fmt, ...) html_printf_((h), "" fmt "", ##__VA_ARGS__)

/* The escaped value. */
void html_text(struct html *h, const char *s);
/* Append what another html built (its escaping already done). */
void html_append(struct html *h, const struct html *other);

void html_free(struct html *h);
static inline void html_freep(struct html *h) {
        html_free(h);
}
#define _cleanup_html_ __attribute__((cleanup(html_freep)))

/* "2026-12-05 14:03 UTC" into buf ("never" for 0). */
char *html_time(int64_t t, char buf[static 32]);
/* "3 min ago", "in 2 h", "just now" relative to now ("never" for 0). */
char *html_ago(int64_t t, int64_t now, char buf[static 32]);
/* "1.5 MiB", "312 KiB", "17 B". */
char *html_size(uint64_t n, char buf[static 32]);
