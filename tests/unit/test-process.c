/* test-process.c: the process runner: exit status and signals, exec failures, PATH search vs exact path,
 * environment, stdio (null, fds, swapped fds, capture with its cap), signal hygiene, no leaked fds. */
#include "tests.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "process.h"

#define SH(...) ((char *const[]){ (char *) "/bin/sh", (char *) "-c", __VA_ARGS__, NULL })

static int run_capture(char *const argv[], struct process_opts o, char **ret) {
        struct buf b = {};
        int r;

        o.out = PROCESS_STDIO_CAPTURE;
        if (!o.capture_max)
                o.capture_max = 1 << 20;
        r = process_run(argv, &o, &b);
        *ret = r >= 0 ? (char *) buf_steal(&b, NULL) : NULL;
        if (r >= 0 && !*ret)
                *ret = strdup("");
        return r;
}

static void test_exit_status_and_signals(void **state) {
        struct process_opts o = {};
        pid_t pid;
        (void) state;

        assert_int_equal(process_run(SH((char *) "exit 0"), &o, NULL), 0);
        assert_int_equal(process_run(SH((char *) "exit 3"), &o, NULL), 3);
        assert_int_equal(process_run(SH((char *) "exit 255"), &o, NULL), 255);
        assert_int_equal(process_run(SH((char *) "kill -TERM $$"), &o, NULL), 128 + SIGTERM);
        assert_int_equal(process_run(SH((char *) "kill -KILL $$"), &o, NULL), 128 + SIGKILL);
        /* spawn + wait apart: the caller can signal the child in between (the agent stops a cut install). */
        assert_int_equal(process_spawn((char *const[]){ (char *) "sleep", (char *) "30", NULL }, &o, &pid), 0);
        assert_true(pid > 0);
        assert_int_equal(kill(pid, SIGTERM), 0);
        assert_int_equal(process_wait(pid), 128 + SIGTERM);
        assert_int_equal(process_wait(pid), -ECHILD);   /* reaped once */
}

static void test_exec_failures_exit_127(void **state) {
        const char *d = *state;
        char *p;

        assert_int_equal(process_run((char *const[]){ (char *) "/nonexistent/ringil-no-such-tool", NULL }, &(struct process_opts){}, NULL), 127);
        assert_int_equal(process_run((char *const[]){ (char *) "ringil-no-such-tool-in-path", NULL }, &(struct process_opts){}, NULL), 127);
        /* A file without the execute bit. */
        p = test_path(d, "script");
        test_write_file(p, "#!/bin/sh\nexit 0\n", 0644);
        assert_int_equal(process_run((char *const[]){ p, NULL }, &(struct process_opts){ .exact_path = true }, NULL), 127);
        assert_int_equal(chmod(p, 0755), 0);
        assert_int_equal(process_run((char *const[]){ p, NULL }, &(struct process_opts){ .exact_path = true }, NULL), 0);
        free(p);
}

static void test_path_search_vs_exact(void **state) {
        (void) state;
        /* "sh" is found in PATH by default, but with exact_path it is a (missing) relative file. */
        assert_int_equal(process_run((char *const[]){ (char *) "sh", (char *) "-c", (char *) "exit 7", NULL },
                                     &(struct process_opts){}, NULL), 7);
        assert_int_equal(process_run((char *const[]){ (char *) "sh", (char *) "-c", (char *) "exit 7", NULL },
                                     &(struct process_opts){ .exact_path = true }, NULL), 127);
}

static void test_environment(void **state) {
        char *const envp[] = { (char *) "RINGIL_A=1", (char *) "RINGIL_B=two words", NULL };
        char *out = NULL;
        (void) state;

        /* A given environment is the child's whole environment: nothing of ours leaks into it. */
        assert_int_equal(setenv("RINGIL_LEAK", "secret", 1), 0);
        assert_int_equal(run_capture((char *const[]){ (char *) "/usr/bin/env", NULL }, (struct process_opts){ .envp = envp, .exact_path = true }, &out), 0);
        assert_string_equal(out, "RINGIL_A=1\nRINGIL_B=two words\n");
        free(out);
        /* The PATH search uses the caller's PATH even with a fixed environment (execvpe). */
        assert_int_equal(run_capture((char *const[]){ (char *) "env", NULL }, (struct process_opts){ .envp = envp }, &out), 0);
        assert_string_equal(out, "RINGIL_A=1\nRINGIL_B=two words\n");
        free(out);
        /* NULL: the caller's environment. */
        assert_int_equal(run_capture(SH((char *) "printf %s \"$RINGIL_LEAK\""), (struct process_opts){}, &out), 0);
        assert_string_equal(out, "secret");
        free(out);
        unsetenv("RINGIL_LEAK");
}

static void test_capture_and_cap(void **state) {
        struct buf b = {};
        char *out = NULL;
        (void) state;

        /* stdout only by default; stderr joins when captured too. */
        assert_int_equal(run_capture(SH((char *) "echo out; echo err >&2"), (struct process_opts){ .err = PROCESS_STDIO_NULL }, &out), 0);
        assert_string_equal(out, "out\n");
        free(out);
        assert_int_equal(run_capture(SH((char *) "echo out; echo err >&2; exit 4"), (struct process_opts){ .err = PROCESS_STDIO_CAPTURE }, &out), 4);
        assert_string_equal(out, "out\nerr\n");
        free(out);
        /* Exactly at the cap is fine; one byte over is -EFBIG, and a child writing far more than the pipe
         * holds still finishes (drained, not blocked). */
        assert_int_equal(run_capture(SH((char *) "printf 12345"), (struct process_opts){ .capture_max = 5 }, &out), 0);
        assert_string_equal(out, "12345");
        free(out);
        assert_int_equal(run_capture(SH((char *) "printf 123456"), (struct process_opts){ .capture_max = 5 }, &out), -EFBIG);
        assert_null(out);
        assert_int_equal(run_capture(SH((char *) "head -c 4000000 /dev/zero; exit 0"), (struct process_opts){ .capture_max = 1000 }, &out), -EFBIG);
        /* A capture without a buffer to put it in is a caller error, and nothing runs. */
        assert_int_equal(process_run(SH((char *) "exit 0"), &(struct process_opts){ .out = PROCESS_STDIO_CAPTURE, .capture_max = 10 }, NULL), -EINVAL);
        assert_int_equal(process_run(SH((char *) "exit 0"), &(struct process_opts){ .in = PROCESS_STDIO_CAPTURE }, &b), -EINVAL);
        assert_int_equal(process_spawn(SH((char *) "exit 0"), &(struct process_opts){ .err = PROCESS_STDIO_CAPTURE }, &(pid_t){ 0 }), -EINVAL);
        assert_int_equal(process_run(SH((char *) "exit 0"), &(struct process_opts){ .out = PROCESS_STDIO_FD, .out_fd = -1 }, NULL), -EINVAL);
        assert_int_equal(process_run((char *const[]){ NULL }, &(struct process_opts){}, NULL), -EINVAL);
}

/* A streamed stdout: the caller reads as the child writes (more than a pipe holds), then waits; a reader
 * that stops early leaves the child to end on SIGPIPE, as a cut upload of `nix store dump-path` does. */
static void test_spawn_reader(void **state) {
        struct process_opts o = { .out = PROCESS_STDIO_CAPTURE, .err = PROCESS_STDIO_NULL };
        char tmp[65536];
        uint64_t total = 0;
        ssize_t n;
        pid_t pid;
        int fd;
        (void) state;

        assert_int_equal(process_spawn_reader(SH((char *) "head -c 1000000 /dev/zero; exit 6"), &o, &fd, &pid), 0);
        while ((n = read(fd, tmp, sizeof(tmp))) > 0)
                total += (uint64_t) n;
        assert_int_equal(n, 0);
        close(fd);
        assert_int_equal(total, 1000000);
        assert_int_equal(process_wait(pid), 6);

        assert_int_equal(process_spawn_reader(SH((char *) "while :; do echo y; done"), &o, &fd, &pid), 0);
        assert_true(read(fd, tmp, 10) > 0);
        close(fd);
        assert_int_equal(process_wait(pid), 128 + SIGPIPE);

        /* the pipe is stdout's: other stdio kinds and a captured stderr are caller errors */
        assert_int_equal(process_spawn_reader(SH((char *) "exit 0"), &(struct process_opts){}, &fd, &pid), -EINVAL);
        assert_int_equal(process_spawn_reader(SH((char *) "exit 0"), &(struct process_opts){ .out = PROCESS_STDIO_CAPTURE,
                                                                                             .err = PROCESS_STDIO_CAPTURE },
                                              &fd, &pid), -EINVAL);
        assert_int_equal(process_spawn_reader((char *const[]){ (char *) "/nonexistent/ringil-no-such-tool", NULL }, &o, &fd, &pid), 0);
        assert_int_equal(read(fd, tmp, sizeof(tmp)), 0);
        close(fd);
        assert_int_equal(process_wait(pid), 127);
}

static void test_stdin(void **state) {
        int p[2];
        char *out = NULL;
        (void) state;

        /* /dev/null: a reader gets EOF at once instead of waiting on our stdin. */
        assert_int_equal(run_capture((char *const[]){ (char *) "/bin/cat", NULL }, (struct process_opts){ .in = PROCESS_STDIO_NULL, .exact_path = true }, &out), 0);
        assert_string_equal(out, "");
        free(out);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(write(p[1], "fed in\n", 7), 7);
        close(p[1]);
        assert_int_equal(run_capture((char *const[]){ (char *) "/bin/cat", NULL }, (struct process_opts){ .in = PROCESS_STDIO_FD, .in_fd = p[0], .exact_path = true }, &out), 0);
        assert_string_equal(out, "fed in\n");
        free(out);
        /* The caller's fd stays open: not consumed. */
        assert_true(fcntl(p[0], F_GETFD) >= 0);
        close(p[0]);
}

/* stdout to the caller's stderr and stderr to its stdout at once: neither may clobber the other. */
static void test_swapped_stdio(void **state) {
        int a[2], b[2], save1, save2, r;
        char x[64] = "", y[64] = "";
        ssize_t n;
        (void) state;

        assert_int_equal(pipe2(a, O_CLOEXEC), 0);
        assert_int_equal(pipe2(b, O_CLOEXEC), 0);
        fflush(stdout);
        fflush(stderr);
        save1 = dup(1);
        save2 = dup(2);
        assert_true(save1 >= 0 && save2 >= 0);
        dup2(a[1], 1);   /* our stdout -> pipe a, our stderr -> pipe b */
        dup2(b[1], 2);
        r = process_run(SH((char *) "echo to-out; echo to-err >&2"),
                        &(struct process_opts){ .out = PROCESS_STDIO_FD, .out_fd = 2, .err = PROCESS_STDIO_FD, .err_fd = 1 }, NULL);
        dup2(save1, 1);
        dup2(save2, 2);
        close(save1);
        close(save2);
        close(a[1]);
        close(b[1]);
        assert_int_equal(r, 0);
        n = read(a[0], x, sizeof(x) - 1);
        assert_true(n > 0);
        n = read(b[0], y, sizeof(y) - 1);
        assert_true(n > 0);
        assert_string_equal(x, "to-err\n");   /* the child's stderr went to our stdout */
        assert_string_equal(y, "to-out\n");
        close(a[0]);
        close(b[0]);
}

/* A caller whose stdin and stdout are closed: the child's stdout is closed too, not one of the runner's own pipes
 * (which then take the lowest free descriptors). */
static void test_closed_stdio(void **state) {
        int save0, save1, r1, r2, r3;
        struct buf b = {};
        (void) state;

        fflush(stdout);
        save0 = dup(0);
        save1 = dup(1);
        assert_true(save0 >= 0 && save1 >= 0);
        close(0);   /* with 0 and 1 free, the runner's next pipe is exactly (0, 1) */
        close(1);
        r1 = process_run(SH((char *) "echo x 2>/dev/null && exit 0 || exit 7"), &(struct process_opts){}, NULL);
        r2 = process_run(SH((char *) "echo captured; exit 2"), &(struct process_opts){ .out = PROCESS_STDIO_CAPTURE, .capture_max = 64 }, &b);
        r3 = process_run((char *const[]){ (char *) "/nonexistent/tool", NULL }, &(struct process_opts){}, NULL);
        dup2(save0, 0);
        dup2(save1, 1);
        close(save0);
        close(save1);
        assert_int_equal(r1, 7);
        assert_int_equal(r2, 2);
        assert_int_equal(b.len, 9);
        assert_memory_equal(b.data, "captured\n", 9);
        buf_free(&b);
        assert_int_equal(r3, 127);
}

/* SigIgn/SigBlk of the child from /proc/self/status, as a bit mask. */
static unsigned long long status_mask(const char *status, const char *field) {
        const char *p = strstr(status, field);
        assert_non_null(p);
        return strtoull(p + strlen(field), NULL, 16);
}

static void test_signal_hygiene_and_fds(void **state) {
        struct sigaction ign = { .sa_handler = SIG_IGN }, old;
        sigset_t block, prev;
        char *out = NULL, cmd[64];
        int fd;
        (void) state;

        /* An agent that ignores SIGPIPE and blocks a signal must not hand either to its children. */
        assert_int_equal(sigaction(SIGPIPE, &ign, &old), 0);
        sigemptyset(&block);
        sigaddset(&block, SIGUSR1);
        assert_int_equal(sigprocmask(SIG_BLOCK, &block, &prev), 0);
        assert_int_equal(run_capture((char *const[]){ (char *) "/bin/cat", (char *) "/proc/self/status", NULL }, (struct process_opts){ .exact_path = true }, &out), 0);
        assert_int_equal(sigprocmask(SIG_SETMASK, &prev, NULL), 0);
        assert_int_equal(sigaction(SIGPIPE, &old, NULL), 0);
        assert_false(status_mask(out, "SigIgn:") & (1ull << (SIGPIPE - 1)));
        assert_false(status_mask(out, "SigBlk:") & (1ull << (SIGUSR1 - 1)));
        free(out);

        /* An O_CLOEXEC fd of ours is not in the child; the same fd without it would be (the check works). */
        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_true(fd > 2);
        snprintf(cmd, sizeof(cmd), "test -e /proc/self/fd/%d", fd);
        assert_int_equal(process_run(SH(cmd), &(struct process_opts){}, NULL), 1);
        assert_int_equal(fcntl(fd, F_SETFD, 0), 0);
        assert_int_equal(process_run(SH(cmd), &(struct process_opts){}, NULL), 0);
        close(fd);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_exit_status_and_signals),
                cmocka_unit_test_setup_teardown(test_exec_failures_exit_127, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test(test_path_search_vs_exact),
                cmocka_unit_test(test_environment),
                cmocka_unit_test(test_capture_and_cap),
                cmocka_unit_test(test_spawn_reader),
                cmocka_unit_test(test_stdin),
                cmocka_unit_test(test_swapped_stdio),
                cmocka_unit_test(test_closed_stdio),
                cmocka_unit_test(test_signal_hygiene_and_fds),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
