/* test-progress.c: the progress meter: a line per step off a terminal, redrawn in place on one, nothing
 * when quiet or for a failed step; byte formatting. */
#include "tests.h"

#include <unistd.h>

#include "log.h"
#include "progress.h"

/* Run fn with stderr redirected to a pipe; its output into out. */
static void capture(void (*fn)(void), char *out, size_t size) {
        int fds[2], saved;
        ssize_t n;

        assert_int_equal(pipe(fds), 0);
        saved = dup(STDERR_FILENO);
        assert_true(saved >= 0 && dup2(fds[1], STDERR_FILENO) >= 0);
        fn();
        fflush(stderr);
        assert_true(dup2(saved, STDERR_FILENO) >= 0);
        close(saved);
        close(fds[1]);
        n = read(fds[0], out, size - 1);
        close(fds[0]);
        out[n > 0 ? n : 0] = '\0';
}

static void two_steps(void) {
        progress_step("hashing payload 'rootfs'", 3u << 20);
        progress_add(1u << 20);
        progress_add(2u << 20);
        progress_step("copying", 0);   /* ends the first step */
        progress_add(5);
        progress_done();
        progress_done();               /* no step: nothing */
}

static void failed_step(void) {
        progress_step("writing 'rootfs' to slot b", 100);
        progress_add(10);
        progress_abort();
}

static void step_then_log(void) {
        progress_step("uploading 'v2.rb'", 1000);
        log_error("connection cut");
        progress_abort();
}

static void test_lines(void **state) {
        char out[1024];
        (void) state;
        progress_setup("t", PROGRESS_LINES);
        capture(two_steps, out, sizeof(out));
        assert_non_null(strstr(out, "t: hashing payload 'rootfs': 3.0 MiB in "));
        assert_non_null(strstr(out, "\nt: copying: 5 B in "));
        assert_null(strchr(out, '\r'));
        assert_null(strchr(out, '\033'));
        /* a failed step leaves no summary: the error message says what happened */
        capture(failed_step, out, sizeof(out));
        assert_string_equal(out, "");
}

static void test_quiet(void **state) {
        char out[256];
        (void) state;
        progress_setup("t", PROGRESS_QUIET);
        capture(two_steps, out, sizeof(out));
        assert_string_equal(out, "");
}

static void test_tty(void **state) {
        char out[2048];
        (void) state;
        progress_setup("t", PROGRESS_TTY);
        capture(two_steps, out, sizeof(out));
        /* drawn in place from the start (0 of the total), and each step ends as a summary line */
        assert_non_null(strstr(out, "\r\033[Kt: hashing payload 'rootfs': 0 B of 3.0 MiB (0%)"));
        assert_non_null(strstr(out, "\r\033[Kt: hashing payload 'rootfs': 3.0 MiB in "));
        /* the summary ends the line (with a rate when the step took 10 ms or more) */
        assert_true(strstr(out, " s\n") || strstr(out, "/s)\n"));
        /* a log message erases the meter line first */
        log_setup("t");
        capture(step_then_log, out, sizeof(out));
        assert_non_null(strstr(out, "(0%)"));
        assert_non_null(strstr(out, "\r\033[Kt: connection cut\n"));
        progress_setup("t", PROGRESS_QUIET);
}

static void test_format_bytes(void **state) {
        char b[16];
        (void) state;
        assert_string_equal(progress_format_bytes(0, b), "0 B");
        assert_string_equal(progress_format_bytes(1023, b), "1023 B");
        assert_string_equal(progress_format_bytes(1536, b), "1.5 KiB");
        assert_string_equal(progress_format_bytes(300ull << 20, b), "300 MiB");
        assert_string_equal(progress_format_bytes(1ull << 30, b), "1.0 GiB");
        assert_string_equal(progress_format_bytes(UINT64_MAX, b), "16384 PiB");   /* the largest fits */
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_lines),
                cmocka_unit_test(test_quiet),
                cmocka_unit_test(test_tty),
                cmocka_unit_test(test_format_bytes),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
