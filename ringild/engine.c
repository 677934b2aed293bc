/* engine.c: ringild's bridge to the install engine (`ringil install|status|mark-good|mark-bad`). */
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "err.h"
#include "fileio.h"
#include "log.h"
#include "process.h"

#define ENGINE_MAX_OUTPUT (256u * 1024u)

/*
 * The engine runs as a child process: it is the one component that verifies and writes slots, and
 * keeping it out of the networked process means a bug in TLS/HTTP handling cannot write a slot.
 * stdin_fd < 0: /dev/null; out_fd/err_fd: its stdout and stderr (2: ours).
 */
static int spawn(const char *const argv[], int stdin_fd, int out_fd, int err_fd, pid_t *ret_pid) {
        return process_spawn((char *const *) argv,
                             &(struct process_opts) { .in = stdin_fd >= 0 ? PROCESS_STDIO_FD : PROCESS_STDIO_NULL, .in_fd = stdin_fd,
                                                      .out = PROCESS_STDIO_FD, .out_fd = out_fd,
                                                      .err = PROCESS_STDIO_FD, .err_fd = err_fd },
                             ret_pid);
}

void engine_collect_output(int fd, const char *what, char *err, size_t errlen) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t len = 0;
        char *line, *save = NULL, *last = NULL;

        if (lseek(fd, 0, SEEK_SET) < 0 || read_full_fd(fd, ENGINE_MAX_OUTPUT, &data, &len) < 0)
                return;
        for (line = strtok_r((char *) data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                log_info("%s: %s", what, line);
                if (*line)
                        last = line;
        }
        if (last && err && errlen) {
                size_t o = 0;
                for (const char *p = last; *p && o + 1 < errlen; p++)
                        err[o++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
                err[o] = '\0';
        }
}

int engine_exit_to_errno(int code) {
        switch (code) {
        case EXIT_OK: return 0;
        case EXIT_MALFORMED: return -RINGIL_EMALFORMED;
        case EXIT_BADSIG: return -RINGIL_EBADSIG;
        case EXIT_UNTRUSTED: return -RINGIL_EUNTRUSTED;
        case EXIT_EXPIRED: return -RINGIL_EEXPIRED;
        case EXIT_ROLLBACK: return -RINGIL_EROLLBACK;
        case EXIT_INCOMPAT: return -RINGIL_EINCOMPAT;
        case EXIT_DIGEST: return -RINGIL_EDIGEST;
        case EXIT_REFUSED: return -RINGIL_EREFUSED;
        case EXIT_NOTFOUND: return -ENOENT;
        default: return code < 0 ? code : -EIO;
        }
}

static int run_engine(const struct agent_config *c, const char *verb, bool json, char *out, size_t outlen,
                      char *err, size_t errlen) {
        const char *argv[] = { c->ringil, verb, "--config", c->device_config, json ? "--json" : NULL, NULL };
        _cleanup_close_ int fd = memfd_create("ringil-engine", MFD_CLOEXEC);
        pid_t pid;
        int r;

        if (fd < 0)
                return negative_errno();
        /* status: JSON on stdout, its log lines straight to our stderr; others: both captured. */
        r = spawn(argv, -1, fd, out ? 2 : fd, &pid);
        if (r < 0)
                return r;
        r = process_wait(pid);
        if (r < 0)
                return r;
        if (out) {
                ssize_t n;
                if (lseek(fd, 0, SEEK_SET) < 0)
                        return negative_errno();
                n = read_full(fd, out, outlen - 1);
                out[n > 0 ? n : 0] = '\0';
        } else
                engine_collect_output(fd, verb, err, errlen);
        return engine_exit_to_errno(r);
}

int engine_mark(const struct agent_config *c, bool good, char *err, size_t errlen) {
        return run_engine(c, good ? "mark-good" : "mark-bad", false, NULL, 0, err, errlen);
}

static void copy_json_str(json_t *o, const char *key, char *dst, size_t cap) {
        const char *s = json_string_value(json_object_get(o, key));
        size_t n = s ? strlen(s) : 0;

        if (!s || n >= cap)
                return;
        for (size_t i = 0; i < n; i++)
                if (s[i] < 0x20 || s[i] > 0x7e)
                        return;
        memcpy(dst, s, n + 1);
}

int engine_status(const struct agent_config *c, struct engine_status *ret) {
        _cleanup_free_ char *out = malloc(ENGINE_MAX_OUTPUT);
        struct engine_status s = { .boot = "unknown" };
        json_error_t e;
        json_t *j, *slots, *sl;
        const char *booted;
        int r;

        if (!out)
                return -ENOMEM;
        r = run_engine(c, "status", true, out, ENGINE_MAX_OUTPUT, NULL, 0);
        if (r < 0)
                return ringil_fail(r, "ringil status failed");
        j = json_loads(out, 0, &e);
        if (!j || !json_is_object(j)) {
                json_decref(j);
                return ringil_fail(-RINGIL_EMALFORMED, "ringil status --json: %s", e.text);
        }
        if (json_is_string(json_object_get(j, "mode")) && streq(json_string_value(json_object_get(j, "mode")), "generation")) {
                /* NixOS-generation mode: the running generation's version; its state when it is the newest. */
                const char *gen = json_string_value(json_object_get(j, "generation"));
                s.generation = true;
                snprintf(s.slot, sizeof(s.slot), "generation");
                copy_json_str(j, "running_version", s.version, sizeof(s.version));
                if (streq(s.version, json_string_value(json_object_get(j, "version")) ?: "")) {
                        copy_json_str(j, "generation", s.boot, sizeof(s.boot));
                        copy_json_str(j, "system", s.system, sizeof(s.system));
                }
                /* one generation at a time: a pending one must be blessed or rolled back first */
                s.ready = !gen || !streq(gen, "pending");
                if (!s.ready)
                        snprintf(s.not_ready, sizeof(s.not_ready), "generation %s is pending, not blessed",
                                 json_string_value(json_object_get(j, "version")) ?: "?");
                json_decref(j);
                *ret = s;
                return 0;
        }
        booted = json_string_value(json_object_get(j, "booted"));
        slots = json_object_get(j, "slots");
        if (booted)
                snprintf(s.slot, sizeof(s.slot), "%s", booted);
        sl = booted && json_is_object(slots) ? json_object_get(slots, booted) : NULL;
        if (!sl && booted && json_is_array(slots)) {
                size_t i;
                json_t *x;
                json_array_foreach(slots, i, x)
                        if (json_is_string(json_object_get(x, "name")) &&
                            streq(json_string_value(json_object_get(x, "name")), booted))
                                sl = x;
        }
        if (sl) {
                copy_json_str(sl, "version", s.version, sizeof(s.version));
                copy_json_str(sl, "state", s.boot, sizeof(s.boot));
        }
        /* The engine installs only from a known, blessed slot: anything else is the drone's own state. */
        if (!booted)
                snprintf(s.not_ready, sizeof(s.not_ready), "the booted slot is unknown (no LoaderEntrySelected)");
        else if (!streq(s.boot, "good"))
                snprintf(s.not_ready, sizeof(s.not_ready), "booted slot %s is %s, not blessed", s.slot, s.boot);
        else
                s.ready = true;
        json_decref(j);
        *ret = s;
        return 0;
}

int run_command(const char *cmdline) {
        const char *argv[] = { "/bin/sh", "-c", cmdline, NULL };
        pid_t pid;
        int r = spawn(argv, -1, 2, 2, &pid);

        if (r < 0)
                return r;
        return process_wait(pid);
}

int agent_spawn_wait(const char *const argv[], int out_fd) {
        pid_t pid;
        int r = spawn(argv, -1, out_fd, 2, &pid);

        if (r < 0)
                return r;
        return process_wait(pid);
}

bool engine_refused_bundle(int r) {
        return r == -RINGIL_EMALFORMED || r == -RINGIL_EBADSIG || r == -RINGIL_EUNTRUSTED || r == -RINGIL_EEXPIRED ||
               r == -RINGIL_EROLLBACK || r == -RINGIL_EINCOMPAT || r == -RINGIL_EDIGEST;
}

int engine_install_file(const struct agent_config *c, const char *path, char *err, size_t errlen) {
        const char *argv[] = { c->ringil, "install", "--config", c->device_config, path, NULL };
        _cleanup_close_ int outfd = memfd_create("ringil-install", MFD_CLOEXEC);
        char engine_err[FLEET_TEXT_MAX] = "";
        pid_t pid;
        int r, code;

        if (outfd < 0)
                return negative_errno();
        r = spawn(argv, -1, outfd, outfd, &pid);
        if (r < 0)
                return r;
        code = process_wait(pid);
        if (code < 0)
                return code;
        engine_collect_output(outfd, "install", engine_err, sizeof(engine_err));
        if (code != 0 && engine_err[0])
                snprintf(err, errlen, "%s", engine_err);
        else if (code > 128)
                snprintf(err, errlen, "install engine killed by signal %d", code - 128);
        else if (code != 0)
                snprintf(err, errlen, "install engine exited with %d", code);
        return engine_exit_to_errno(code);
}
