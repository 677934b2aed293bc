/* process.h: running another program: fork, its stdio and environment, exec without a shell, wait. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "buf.h"

/* What the child's stdin, stdout or stderr is. */
enum process_stdio {
        PROCESS_STDIO_INHERIT = 0,   /* the caller's own (the default) */
        PROCESS_STDIO_NULL,          /* /dev/null */
        PROCESS_STDIO_FD,            /* the fd given in in_fd/out_fd/err_fd */
        PROCESS_STDIO_CAPTURE,       /* stdout/stderr: process_run() into *ret_output (both: interleaved);
                                      * stdout: process_spawn_reader()'s pipe */
};

struct process_opts {
        char *const *envp;             /* NULL: the caller's environment; else the child's whole environment */
        bool exact_path;               /* run argv[0] as given; false: search the caller's PATH as execvp(3) */
        enum process_stdio in, out, err;
        int in_fd, out_fd, err_fd;     /* for PROCESS_STDIO_FD; not closed, not consumed */
        size_t capture_max;            /* PROCESS_STDIO_CAPTURE: bytes kept at most */
};

/*
 * The child starts with the default SIGPIPE disposition and no blocked signals, whatever the caller set
 * (an agent that ignores SIGPIPE must not hand that to `ringil install`). It inherits no fd but its stdio
 * and fds the caller opened without O_CLOEXEC (the library opens none). It never runs a shell unless
 * argv[0] is one.
 *
 * A child that cannot be set up or executed exits 127 (as a shell reports "command not found"); the
 * reason is logged at debug level. A negative errno means the child could not be started or waited for.
 */

/* Start argv[0] (NULL-terminated argv) and return its pid; wait with process_wait(). No CAPTURE here:
 * -EINVAL. Errors: -EINVAL, -EMFILE/-ENOMEM/-EAGAIN (fork, pipes). */
int process_spawn(char *const argv[], const struct process_opts *o, pid_t *ret_pid);

/*
 * Start argv[0] with its stdout as a pipe: *ret_fd is the read end, which the caller reads (streaming a
 * large output, such as a NAR, without holding it) and closes; then process_wait(*ret_pid). o->out must
 * be PROCESS_STDIO_CAPTURE (it names the pipe) and o->err must not. Errors as process_spawn().
 */
int process_spawn_reader(char *const argv[], const struct process_opts *o, int *ret_fd, pid_t *ret_pid);

/* Wait for pid (retrying on EINTR): its exit status 0..255, 128 + the signal that killed it, or a
 * negative errno. */
int process_wait(pid_t pid);

/*
 * Spawn, read the captured output (if any stream is PROCESS_STDIO_CAPTURE; then ret_output is required
 * and receives a buf the caller frees), wait. Returns the exit status as process_wait() does. Output
 * beyond capture_max is read and dropped so the child never blocks on a full pipe, and the call then
 * returns -EFBIG (after the child ended); *ret_output is set only when the result is >= 0.
 */
int process_run(char *const argv[], const struct process_opts *o, struct buf *ret_output);
