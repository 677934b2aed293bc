/* progress.c: the progress meter on stderr: redrawn in place on a terminal, a line per step otherwise. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "escape.h"
#include "progress.h"

#define REDRAW_NS (100ull * 1000 * 1000)          /* terminal: at most 10 redraws a second */
#define LINE_EVERY_NS (10ull * 1000 * 1000 * 1000) /* lines: one every 10 s during a long step */

static enum progress_mode mode = PROGRESS_QUIET;
static const char *ident = "ringil";
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static bool drawn;
static char what[160];
static uint64_t total, start_ns;
/* Read by progress_add() without the lock (workers must not wait on the meter). */
static _Atomic bool active;
static _Atomic uint64_t done, last_ns;

static uint64_t now_ns(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

void progress_setup(const char *name, enum progress_mode m) {
        if (name)
                ident = name;
        if (m == PROGRESS_AUTO)
                m = isatty(STDERR_FILENO) ? PROGRESS_TTY : PROGRESS_LINES;
        mode = m;
}

enum progress_mode progress_get_mode(void) {
        return mode;
}

char *progress_format_bytes(uint64_t n, char buf[static 16]) {
        static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB" };
        double v = (double) n;
        size_t u = 0;

        if (n < 1024) {
                snprintf(buf, 16, "%llu B", (unsigned long long) n);
                return buf;
        }
        v /= 1024;
        while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
                v /= 1024;
                u++;
        }
        snprintf(buf, 16, v < 10 ? "%.1f %s" : "%.0f %s", v, units[u]);
        return buf;
}

static void format_duration(uint64_t s, char buf[static 48]) {
        if (s < 60)
                snprintf(buf, 48, "%llu s", (unsigned long long) s);
        else if (s < 3600)
                snprintf(buf, 48, "%llu min %02llu s", (unsigned long long) (s / 60), (unsigned long long) (s % 60));
        else
                snprintf(buf, 48, "%llu h %02llu min", (unsigned long long) (s / 3600), (unsigned long long) (s / 60 % 60));
}

/* "what: 512 MiB of 1.0 GiB (50%), 480 MiB/s, 1 s left" (running) or "what: 1.0 GiB in 2.1 s (480 MiB/s)". */
static void format_line(char *out, size_t size, uint64_t d, uint64_t t_ns, bool final) {
        char b1[16], b2[16], b3[16], eta[48];
        double secs = (double) t_ns / 1e9;
        uint64_t rate = secs > 0.001 ? (uint64_t) ((double) d / secs) : 0;

        if (final) {
                /* A rate over less than 10 ms says more about the clock than about the work. */
                if (secs < 0.01)
                        snprintf(out, size, "%s: %s in %.1f s", what, progress_format_bytes(d, b1), secs);
                else
                        snprintf(out, size, "%s: %s in %.1f s (%s/s)", what, progress_format_bytes(d, b1), secs,
                                 progress_format_bytes(rate, b3));
                return;
        }
        if (total > 0) {
                unsigned pct = (unsigned) (d >= total ? 100 : d * 100 / total);
                if (rate > 0 && d < total)
                        format_duration((total - d) / rate + 1, eta);
                else
                        snprintf(eta, sizeof(eta), "?");
                snprintf(out, size, "%s: %s of %s (%u%%), %s/s, %s left", what, progress_format_bytes(d, b1),
                         progress_format_bytes(total, b2), pct, progress_format_bytes(rate, b3), eta);
        } else
                snprintf(out, size, "%s: %s, %s/s", what, progress_format_bytes(d, b1), progress_format_bytes(rate, b3));
}

/* With the lock held. */
static void emit(bool final) {
        char line[320];
        uint64_t t = now_ns();

        format_line(line, sizeof(line), atomic_load(&done), t - start_ns, final);
        if (mode == PROGRESS_TTY) {
                /* \r and erase-line: the meter is one line, redrawn in place. */
                fprintf(stderr, "\r\033[K%s: %s%s", ident, line, final ? "\n" : "");
                drawn = !final;
        } else
                fprintf(stderr, "%s: %s\n", ident, line);
        fflush(stderr);
        atomic_store(&last_ns, t);
}

static void end_step(bool ok) {
        if (!active)
                return;
        if (ok)
                emit(true);
        else if (drawn) {
                fputs("\r\033[K", stderr);
                fflush(stderr);
                drawn = false;
        }
        active = false;
}

void progress_step(const char *w, uint64_t t) {
        if (mode == PROGRESS_QUIET)
                return;
        pthread_mutex_lock(&lock);
        end_step(true);
        escape_text(w, what, sizeof(what));
        total = t;
        atomic_store(&done, 0);
        start_ns = now_ns();
        atomic_store(&last_ns, start_ns);
        active = true;
        if (mode == PROGRESS_TTY)
                emit(false);
        pthread_mutex_unlock(&lock);
}

void progress_add(uint64_t n) {
        uint64_t t;

        if (mode == PROGRESS_QUIET || !active)
                return;
        atomic_fetch_add(&done, n);
        t = now_ns();
        if (t - atomic_load(&last_ns) < (mode == PROGRESS_TTY ? REDRAW_NS : LINE_EVERY_NS))
                return;
        /* Whoever holds the lock is drawing already: skip rather than wait in a worker thread. */
        if (pthread_mutex_trylock(&lock) != 0)
                return;
        if (active && t - atomic_load(&last_ns) >= (mode == PROGRESS_TTY ? REDRAW_NS : LINE_EVERY_NS))
                emit(false);
        pthread_mutex_unlock(&lock);
}

void progress_done(void) {
        if (mode == PROGRESS_QUIET)
                return;
        pthread_mutex_lock(&lock);
        end_step(true);
        pthread_mutex_unlock(&lock);
}

void progress_abort(void) {
        if (mode == PROGRESS_QUIET)
                return;
        pthread_mutex_lock(&lock);
        end_step(false);
        pthread_mutex_unlock(&lock);
}

void progress_clear(void) {
        if (mode != PROGRESS_TTY)
                return;
        pthread_mutex_lock(&lock);
        if (drawn) {
                fputs("\r\033[K", stderr);
                drawn = false;
                atomic_store(&last_ns, 0);   /* redraw at the next update */
        }
        pthread_mutex_unlock(&lock);
}
