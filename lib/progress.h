/* progress.h: progress of long work (bundle create, install, upload) on stderr, never on stdout. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/*
 * One process-wide meter, off until the program turns it on (library code calls progress_step/add
 * freely, as it logs at debug: the program decides whether anything is shown). The work is a series
 * of steps ("hashing payload 'rootfs'"), each with a byte count:
 *   PROGRESS_TTY    one line on the terminal, redrawn in place at most 10 times a second: bytes done
 *                   and total, percentage, rate and time left; when a step ends it stays as a summary.
 *   PROGRESS_LINES  (stderr is not a terminal: a log, a pipe) one line per step when it ends, with
 *                   bytes, time and rate, and one every 10 s while a step runs longer.
 *   PROGRESS_QUIET  nothing (--quiet).
 * PROGRESS_AUTO picks TTY when stderr is a terminal, LINES otherwise. Log lines (log.c) clear a drawn
 * terminal line first, so a message never lands in the middle of the meter.
 */
enum progress_mode {
        PROGRESS_AUTO,
        PROGRESS_QUIET,
        PROGRESS_LINES,
        PROGRESS_TTY,
};

void progress_setup(const char *ident, enum progress_mode mode);
enum progress_mode progress_get_mode(void);

/* Begin a step (ending the previous one); total 0 when unknown (a stream). what is copied. */
void progress_step(const char *what, uint64_t total);
/* n more bytes of the current step are done; thread-safe, cheap enough to call per chunk. */
void progress_add(uint64_t n);
/* End the current step successfully (its summary line); a no-op without one. */
void progress_done(void);
/* Abandon the current step without a summary (it failed; the error message says why). */
void progress_abort(void);
/* Erase a drawn terminal line before other output goes to stderr (log.c calls it). */
void progress_clear(void);

/* "1.5 GiB", "512 KiB", "73 B": into buf (at least 16 bytes). */
char *progress_format_bytes(uint64_t n, char buf[static 16]);
