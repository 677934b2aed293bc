/* process.c: the one fork/exec/wait of the library: stdio set-up, environment, exec error report, capture, exit status. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "process.h"

/* fd itself when above 2, else a CLOEXEC duplicate above 2 with fd closed; < 0 on failure. */
static int above_stdio(int fd) {
        int moved;

        if (fd > 2)
                return fd;
        moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (moved >= 0)
                (void) close(fd);
        return moved;
}

/* In the child between fork and exec: async-signal-safe calls only (the caller may have threads). */
static _noreturn_ void child(char *const argv[], const struct process_opts *o, int capture_fd, int err_pipe) {
        const enum process_stdio how[3] = { o->in, o->out, o->err };
        int src[3] = { o->in_fd, o->out_fd, o->err_fd };
        struct sigaction dfl = { .sa_handler = SIG_DFL };
        sigset_t none;
        int e, null = -EBADF;

        /* A caller with closed stdio gets 0..2 for its next pipes: move ours above them and close those
         * slots again, so that an inherited stdio the caller does not have stays closed in the child too. */
        err_pipe = above_stdio(err_pipe);
        if (err_pipe < 0)
                _exit(127);
        if (capture_fd >= 0 && (capture_fd = above_stdio(capture_fd)) < 0)
                goto fail;
        sigemptyset(&none);
        if (sigprocmask(SIG_SETMASK, &none, NULL) < 0 || sigaction(SIGPIPE, &dfl, NULL) < 0)
                goto fail;
        for (int i = 0; i < 3; i++) {
                switch (how[i]) {
                case PROCESS_STDIO_INHERIT:
                        src[i] = i;
                        break;
                case PROCESS_STDIO_NULL:
                        if (null < 0 && (null = open("/dev/null", O_RDWR | O_CLOEXEC | O_NOCTTY)) < 0)
                                goto fail;
                        src[i] = null;
                        break;
                case PROCESS_STDIO_CAPTURE:
                        src[i] = capture_fd;
                        break;
                case PROCESS_STDIO_FD:
                        break;
                }
        }
        /* A source among 0..2 could be overwritten by an earlier dup2 (stdout to the caller's stderr and
         * stderr to its stdout): move such sources out of the way first. */
        for (int i = 0; i < 3; i++)
                if (src[i] >= 0 && src[i] < 3 && src[i] != i && (src[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 3)) < 0)
                        goto fail;
        for (int i = 0; i < 3; i++) {
                if (src[i] == i) {
                        /* Already in place; make sure exec keeps it. */
                        int fl = fcntl(i, F_GETFD);
                        if (fl >= 0 && (fl & FD_CLOEXEC) && fcntl(i, F_SETFD, fl & ~FD_CLOEXEC) < 0)
                                goto fail;
                } else if (dup2(src[i], i) < 0)
                        goto fail;
        }
        if (o->exact_path)
                execve(argv[0], argv, o->envp ? o->envp : environ);
        else if (o->envp)
                execvpe(argv[0], argv, o->envp);
        else
                execvp(argv[0], argv);
fail:
        e = errno;
        (void) !write(err_pipe, &e, sizeof(e));
        _exit(127);
}

static int spawn(char *const argv[], const struct process_opts *o, int capture_fd, pid_t *ret_pid) {
        int ep[2], e = 0;
        ssize_t k;
        pid_t pid;

        if (!argv || !argv[0] || !o)
                return -EINVAL;
        if ((o->in == PROCESS_STDIO_FD && o->in_fd < 0) || (o->out == PROCESS_STDIO_FD && o->out_fd < 0) ||
            (o->err == PROCESS_STDIO_FD && o->err_fd < 0) || o->in == PROCESS_STDIO_CAPTURE)
                return -EINVAL;
        log_debug("running %s %s %s", argv[0], argv[1] ? argv[1] : "", argv[1] && argv[2] ? argv[2] : "");
        /* The child reports a failed set-up or exec here; a successful exec closes it (O_CLOEXEC). */
        if (pipe2(ep, O_CLOEXEC) < 0)
                return negative_errno();
        pid = fork();
        if (pid < 0) {
                e = negative_errno();
                safe_close(ep[0]);
                safe_close(ep[1]);
                return e;
        }
        if (pid == 0) {
                safe_close(ep[0]);
                child(argv, o, capture_fd, ep[1]);
        }
        safe_close(ep[1]);
        do
                k = read(ep[0], &e, sizeof(e));
        while (k < 0 && errno == EINTR);
        safe_close(ep[0]);
        if (k == (ssize_t) sizeof(e))
                log_debug("cannot execute `%s': %s", argv[0], strerror(e));   /* it exits 127 */
        *ret_pid = pid;
        return 0;
}

int process_spawn(char *const argv[], const struct process_opts *o, pid_t *ret_pid) {
        if (o && (o->out == PROCESS_STDIO_CAPTURE || o->err == PROCESS_STDIO_CAPTURE))
                return -EINVAL;
        return spawn(argv, o, -EBADF, ret_pid);
}

int process_spawn_reader(char *const argv[], const struct process_opts *o, int *ret_fd, pid_t *ret_pid) {
        int p[2], r;
        pid_t pid;

        if (!o || o->out != PROCESS_STDIO_CAPTURE || o->err == PROCESS_STDIO_CAPTURE || !ret_fd || !ret_pid)
                return -EINVAL;
        if (pipe2(p, O_CLOEXEC) < 0)
                return negative_errno();
        r = spawn(argv, o, p[1], &pid);
        safe_close(p[1]);
        if (r < 0) {
                safe_close(p[0]);
                return r;
        }
        *ret_fd = p[0];
        *ret_pid = pid;
        return 0;
}

int process_wait(pid_t pid) {
        int status;

        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return negative_errno();
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

int process_run(char *const argv[], const struct process_opts *o, struct buf *ret_output) {
        bool capture = o && (o->out == PROCESS_STDIO_CAPTURE || o->err == PROCESS_STDIO_CAPTURE);
        _cleanup_buf_ struct buf b = BUF_INIT(o ? o->capture_max : 0);
        int p[2] = { -EBADF, -EBADF }, r = 0, code;
        pid_t pid;

        if (capture && !ret_output)
                return -EINVAL;
        if (capture && pipe2(p, O_CLOEXEC) < 0)
                return negative_errno();
        r = spawn(argv, o, p[1], &pid);
        safe_close(p[1]);
        if (r < 0) {
                safe_close(p[0]);
                return r;
        }
        if (capture) {
                /* Drain to the end even past the cap: a child blocked on a full pipe would never exit. */
                for (;;) {
                        char tmp[4096];
                        ssize_t n = read(p[0], tmp, sizeof(tmp));
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0 && r >= 0)
                                r = negative_errno();
                        if (n <= 0)
                                break;
                        if (r >= 0)
                                r = buf_append(&b, tmp, (size_t) n);
                }
                safe_close(p[0]);
        }
        code = process_wait(pid);
        if (code < 0)
                return code;
        if (r < 0)
                return r;
        if (capture) {
                *ret_output = b;
                b = (struct buf) {};
        }
        return code;
}
