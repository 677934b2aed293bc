/* escape.h: untrusted text made safe to print: no control byte, no invalid UTF-8 reaches a terminal. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/*
 * File names, ids, versions, server answers and anything else from input may hold a newline (which
 * would split a log line and forge a second one), an ESC (a terminal control sequence), DEL or bytes
 * that are not UTF-8. escape_text() copies s to out (size bytes, always NUL-terminated) with
 *   \n \r \t               as the two characters `\n`, `\r`, `\t`,
 *   other C0 bytes, DEL    as `\xNN`,
 *   invalid UTF-8          byte by byte as `\xNN`,
 *   C1 controls, U+2028/9 line separators and the bidi overrides (U+202A..E, U+2066..9)  as `\uNNNN`;
 * valid printable UTF-8 is kept. A backslash is kept as it is, so escaping is idempotent: a message
 * built from an escaped detail and escaped again (the err.c and log.c sinks) reads the same. Output
 * that does not fit is cut at a character boundary and ends in "...". Returns out.
 *
 * The sinks apply it to every message (log_*, ringil_set_detail/ringil_fail, usage_error), so no call
 * site can forget it; use ESCAPED() for text that goes to stdout (tables, "wrote FILE").
 */
char *escape_text(const char *s, char *out, size_t size);

/* true when escape_text() would change s (any byte it escapes). */
bool escape_needed(const char *s);

#define ESCAPE_MAX 4096
/* A printable copy of s in a buffer that lives until the end of the enclosing block (printf args). */
#define ESCAPED(s) escape_text((s), (char[ESCAPE_MAX]){}, ESCAPE_MAX)
