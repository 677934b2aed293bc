/* fleet-window.c: daily maintenance windows: strict "HH:MM-HH:MM" parsing and open/closed tests. */
#include <string.h>

#include "err.h"
#include "fleet-window.h"
#include "macro.h"

static int two_digits(const char *s, unsigned max, unsigned *ret) {
        if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
                return -RINGIL_EMALFORMED;
        *ret = (unsigned) (s[0] - '0') * 10 + (unsigned) (s[1] - '0');
        return *ret <= max ? 0 : -RINGIL_EMALFORMED;
}

static int hhmm(const char *s, bool end, uint16_t *ret) {
        unsigned h, m;

        if (two_digits(s, 24, &h) < 0 || s[2] != ':' || two_digits(s + 3, 59, &m) < 0)
                return -RINGIL_EMALFORMED;
        /* 24:00 exists only as an end: the midnight that closes the day. */
        if (h == 24 && (m != 0 || !end))
                return -RINGIL_EMALFORMED;
        *ret = (uint16_t) (h * 60 + m);
        return 0;
}

int fleet_window_parse(const char *s, struct fleet_window *ret) {
        struct fleet_window w;

        if (strlen(s) != 11 || s[5] != '-' || hhmm(s, false, &w.start) < 0 || hhmm(s + 6, true, &w.end) < 0)
                return ringil_fail(-RINGIL_EMALFORMED, "window '%.32s' is not HH:MM-HH:MM", s);
        if (w.start == w.end || (w.end == 0 && w.start == 0))
                return ringil_fail(-RINGIL_EMALFORMED, "window '%s' is empty", s);
        *ret = w;
        return 0;
}

int fleet_windows_parse(const char *s, struct fleet_window ret[static FLEET_MAX_WINDOWS], size_t *ret_n) {
        size_t n = 0;

        if (!*s)
                return ringil_fail(-RINGIL_EMALFORMED, "empty window list");
        for (;;) {
                const char *comma = strchr(s, ',');
                size_t len = comma ? (size_t) (comma - s) : strlen(s);
                char one[FLEET_WINDOW_TEXT];
                int r;

                if (n == FLEET_MAX_WINDOWS)
                        return ringil_fail(-RINGIL_EMALFORMED, "more than %d windows", FLEET_MAX_WINDOWS);
                if (len != 11)
                        return ringil_fail(-RINGIL_EMALFORMED, "window '%.*s' is not HH:MM-HH:MM", (int) MIN(len, 32u), s);
                memcpy(one, s, len);
                one[len] = '\0';
                r = fleet_window_parse(one, &ret[n]);
                if (r < 0)
                        return r;
                n++;
                if (!comma)
                        break;
                s = comma + 1;
        }
        *ret_n = n;
        return 0;
}

void fleet_window_format(const struct fleet_window *w, char buf[static FLEET_WINDOW_TEXT]) {
        (void) snprintf(buf, FLEET_WINDOW_TEXT, "%02u:%02u-%02u:%02u", w->start / 60u % 100u, w->start % 60u,
                        w->end / 60u % 100u, w->end % 60u);
}

void fleet_windows_format(const struct fleet_window *w, size_t n, char *buf, size_t cap) {
        size_t o = 0;

        if (cap == 0)
                return;
        buf[0] = '\0';
        for (size_t i = 0; i < n && o + FLEET_WINDOW_TEXT + 1 <= cap; i++) {
                if (i)
                        buf[o++] = ',';
                fleet_window_format(&w[i], buf + o);
                o += strlen(buf + o);
        }
}

static bool inside(const struct fleet_window *w, unsigned m) {
        if (w->start < w->end)
                return m >= w->start && m < w->end;
        return m >= w->start || m < w->end;   /* crosses midnight */
}

bool fleet_windows_open(const struct fleet_window *w, size_t n, unsigned m) {
        if (n == 0)
                return true;
        for (size_t i = 0; i < n; i++)
                if (inside(&w[i], m % 1440))
                        return true;
        return false;
}

unsigned fleet_windows_wait(const struct fleet_window *w, size_t n, unsigned m) {
        unsigned best = 1440;

        if (fleet_windows_open(w, n, m))
                return 0;
        for (size_t i = 0; i < n; i++) {
                unsigned d = (w[i].start + 1440 - m % 1440) % 1440;
                best = MIN(best, d);
        }
        return best;
}
