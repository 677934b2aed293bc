/* fleet-window.h: daily maintenance windows ("02:00-04:00", drone local time): parsing and evaluation. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A window is [start, end) in minutes since local midnight. end < start crosses midnight
 * ("22:00-02:00"); "00:00-24:00" is the whole day; start == end is refused (empty or whole day is
 * ambiguous). The server stores and sends windows as text; the drone evaluates them against its own
 * clock in its own time zone, because only the drone knows its local time.
 */
#define FLEET_MAX_WINDOWS 8
#define FLEET_WINDOW_TEXT 12          /* "HH:MM-HH:MM" + NUL */
#define FLEET_WINDOWS_TEXT_MAX (FLEET_MAX_WINDOWS * FLEET_WINDOW_TEXT)

struct fleet_window {
        uint16_t start, end;           /* minutes, 0..1439 and 1..1440 */
};

/* Exactly "HH:MM-HH:MM" (two digits each); -RINGIL_EMALFORMED otherwise, with a detail. */
int fleet_window_parse(const char *s, struct fleet_window *ret);
/* Comma-separated list of 1..FLEET_MAX_WINDOWS windows, no blanks. */
int fleet_windows_parse(const char *s, struct fleet_window ret[static FLEET_MAX_WINDOWS], size_t *ret_n);
void fleet_window_format(const struct fleet_window *w, char buf[static FLEET_WINDOW_TEXT]);
/* "02:00-04:00,22:00-23:00" into buf (at least FLEET_WINDOWS_TEXT_MAX bytes). */
void fleet_windows_format(const struct fleet_window *w, size_t n, char *buf, size_t cap);

/* Is minute-of-day m (0..1439) inside one of the windows? No windows: always. */
bool fleet_windows_open(const struct fleet_window *w, size_t n, unsigned m);
/* Minutes from m until a window opens (0 when open now). */
unsigned fleet_windows_wait(const struct fleet_window *w, size_t n, unsigned m);
