/* log.c: stderr logger; %m in formats expands to the error passed in, not to the current errno. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "escape.h"
#include "log.h"
#include "parse.h"
#include "progress.h"

static int max_level = LOG_INFO;
static int journal_prefix;
static const char *log_ident = "ringil";

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

static int level_from_string(const char *s) {
        static const char *const names[] = {
                [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert",   [LOG_CRIT] = "crit",
                [LOG_ERR] = "err",     [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
                [LOG_INFO] = "info",   [LOG_DEBUG] = "debug",
        };
        unsigned v;

        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (streq(s, names[i]))
                        return (int) i;
        if (parse_uint(s, &v) >= 0 && v <= LOG_DEBUG)
                return (int) v;
        return -EINVAL;
}

void log_setup(const char *ident) {
        const char *e;

        if (ident)
                log_ident = ident;
        e = getenv("RINGIL_LOG_LEVEL");
        if (e) {
                int l = level_from_string(e);
                if (l >= 0)
                        max_level = l;
        }
        /* systemd sets JOURNAL_STREAM when stderr is connected to the journal: prefix <N> levels. */
        journal_prefix = getenv("JOURNAL_STREAM") != NULL;
}

int log_internal(int level, int error, const char *file, int line, const char *fmt, ...) {
        char msg[2048], expanded[2048], safe[4096];
        size_t o = 0;
        va_list ap;

        if (error < 0)
                error = -error;
        if (level > max_level)
                return -error;

        /* Expand %m ourselves from `error`, so it is right even when errno changed on the way. */
        for (const char *p = fmt; *p && o + 1 < sizeof(expanded); p++) {
                if (p[0] == '%' && p[1] == 'm') {
                        const char *s = error ? ringil_strerror(error) : "Success";
                        for (; *s && o + 1 < sizeof(expanded); s++)
                                expanded[o++] = *s == '%' ? '_' : *s;
                        p++;
                } else if (p[0] == '%' && p[1] == '%' && o + 2 < sizeof(expanded)) {
                        expanded[o++] = '%';
                        expanded[o++] = '%';
                        p++;
                } else
                        expanded[o++] = *p;
        }
        expanded[o] = '\0';

        va_start(ap, fmt);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        (void) vsnprintf(msg, sizeof(msg), expanded, ap);
#pragma GCC diagnostic pop
        va_end(ap);

        /* INVARIANT: one message is one line of printable text, whatever the arguments held: names from
         * input cannot forge a second log line or reach the terminal as control sequences. */
        escape_text(msg, safe, sizeof(safe));
        progress_clear();
        if (journal_prefix)
                fprintf(stderr, "<%d>%s\n", level, safe);
        else if (max_level >= LOG_DEBUG)
                fprintf(stderr, "%s: %s:%d: %s\n", log_ident, file, line, safe);
        else
                fprintf(stderr, "%s: %s\n", log_ident, safe);
        return -error;
}
