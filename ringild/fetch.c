/* fetch.c: ringild's delta install: the engine asks for byte ranges, this fetches them from the release's sources. */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "agent.h"
#include "err.h"
#include "fileio.h"
#include "log.h"
#include "parse.h"
#include "process.h"
#include "source.h"

/*
 * The engine (`ringil install --fetch-stdio`, lib/install-fetch.h) verifies the manifest first, finds what
 * it can in the drone's own slots, and asks for the rest; this process gets the bytes from the release's
 * sources (source.h: mirrors first, then the server), checks that each request lies inside the bundle,
 * that each answer is the range asked for and that every unit matches its hash (a mirror with wrong
 * bytes is dropped, the next source gives them), and the engine checks everything again. Sources that
 * ignore Range get a plain sequential download through the classic `ringil install -` instead.
 */

struct engine_pipe {
        int fd;
        bool broken;             /* the engine stopped reading */
        bool stopped;            /* *o->stop was set: we stopped */
        uint64_t written;
        struct download_pacer pace;
        const struct engine_delta_opts *o;
};

static int pipe_sink(void *userdata, const void *p, size_t n) {
        struct engine_pipe *s = userdata;
        int r;

        if (s->o->stop && *s->o->stop) {
                s->stopped = true;
                return -EINTR;
        }
        r = write_all(s->fd, p, n);
        if (r < 0) {
                s->broken = true;
                return r;
        }
        s->written += n;
        download_pace(&s->pace, n);
        if (s->o->tick)
                s->o->tick(s->o->userdata);
        return 0;
}

/* "fetch OFFSET LENGTH": strict decimals, inside the bundle, after the previous range. */
static int parse_fetch_line(char *line, uint64_t size, const struct fetch_range *prev, struct fetch_range *ret) {
        char *a = line + 6, *b = strchr(a, ' ');
        uint64_t off, len;

        if (!b)
                return -EPROTO;
        *b++ = '\0';
        if (parse_u64(a, &off) < 0 || parse_u64(b, &len) < 0 || len == 0 || off > size || len > size - off ||
            (prev && off < prev->offset + prev->len))
                return -EPROTO;
        *ret = (struct fetch_range){ off, len };
        return 0;
}

/* "plan LOCAL FETCH TOTAL MODE" */
static void parse_plan_line(const char *line, struct engine_delta_result *res) {
        unsigned long long l, f, t;
        char mode[8];

        if (sscanf(line, "plan %llu %llu %llu %7s", &l, &f, &t, mode) == 4) {
                res->reused = l;
                res->planned_fetch = f;
                res->payload = t;
                res->full = streq(mode, "full");
        }
}

static int run_fetch_engine(const struct agent_config *c, const struct engine_delta_opts *o, source *src, char *err,
                            size_t errlen, struct engine_delta_result *res) {
        const uint64_t size = o->as->size;
        char sz[32], pct[16];
        const char *argv[] = { c->ringil, "install", "--config", c->device_config, "--fetch-stdio", "--fetch-size", sz,
                               "--full-above", pct, "-", NULL };
        _cleanup_close_ int errfd = memfd_create("ringil-install", MFD_CLOEXEC);
        _cleanup_free_ struct fetch_range *batch = NULL;
        struct engine_pipe sink = { .o = o, .pace = { .rate = o->rate, .stop = o->stop } };
        size_t n = 0, cap = 0;
        int in[2], out[2], r, code, dl_err = 0, batches = 0;
        char line[1024];
        FILE *from;
        pid_t pid;

        if (errfd < 0)
                return negative_errno();
        (void) snprintf(sz, sizeof(sz), "%" PRIu64, size);
        (void) snprintf(pct, sizeof(pct), "%u", c->delta_full_above);
        if (pipe2(in, O_CLOEXEC) < 0)
                return negative_errno();
        if (pipe2(out, O_CLOEXEC) < 0) {
                safe_close(in[0]);
                safe_close(in[1]);
                return negative_errno();
        }
        r = process_spawn((char *const *) argv,
                          &(struct process_opts){ .in = PROCESS_STDIO_FD, .in_fd = in[0], .out = PROCESS_STDIO_FD,
                                                  .out_fd = out[1], .err = PROCESS_STDIO_FD, .err_fd = errfd },
                          &pid);
        safe_close(in[0]);
        safe_close(out[1]);
        if (r < 0) {
                safe_close(in[1]);
                safe_close(out[0]);
                return r;
        }
        sink.fd = in[1];
        from = fdopen(out[0], "re");
        if (!from) {
                safe_close(out[0]);
                safe_close(in[1]);
                (void) kill(pid, SIGTERM);
                (void) process_wait(pid);
                return -ENOMEM;
        }
        while (fgets(line, sizeof(line), from)) {
                size_t len = strlen(line);
                if (len > 0 && line[len - 1] != '\n') {
                        /* Longer than any request: ordinary output; keep its start, drop the rest. */
                        int ch;
                        while ((ch = fgetc(from)) != EOF && ch != '\n')
                                ;
                        log_info("install: %s…", line);
                        continue;
                }
                line[len - 1] = '\0';
                if (strncmp(line, "fetch ", 6) == 0) {
                        if (n == FETCH_MAX_RANGES) {
                                dl_err = ringil_fail(-EPROTO, "install engine asked for too many ranges at once");
                                break;
                        }
                        if (n == cap) {
                                size_t nc = cap ? cap * 2 : 64;
                                void *t = reallocarray(batch, nc, sizeof(*batch));
                                if (!t) {
                                        dl_err = -ENOMEM;
                                        break;
                                }
                                batch = t;
                                cap = nc;
                        }
                        if (parse_fetch_line(line, size, n ? &batch[n - 1] : NULL, &batch[n]) < 0) {
                                dl_err = ringil_fail(-EPROTO, "install engine asked for a range outside the bundle: `%s'", line);
                                break;
                        }
                        n++;
                } else if (streq(line, "end")) {
                        r = source_ranges(src, batch, n, pipe_sink, &sink);
                        if (r == -ERANGE && batches == 0) {
                                res->no_range = true;   /* nothing was sent; the caller falls back */
                                break;
                        }
                        if (r < 0) {
                                dl_err = r;
                                break;
                        }
                        batches++;
                        n = 0;
                } else if (strncmp(line, "plan ", 5) == 0)
                        parse_plan_line(line, res);
                else if (line[0])
                        log_info("install: %s", line);
        }
        /* End of input, not a signal: an incomplete stream is never installed (the engine refuses a
         * truncated bundle, exit 3), and the chunks it already received are written first, so the next
         * run finds them in place instead of fetching them again. */
        safe_close(in[1]);
        fclose(from);
        code = process_wait(pid);
        res->fetched = source_received(src);
        {
                char engine_err[FLEET_TEXT_MAX] = "";
                engine_collect_output(errfd, "install", engine_err, sizeof(engine_err));
                if (sink.stopped)
                        return -EINTR;   /* the engine resumes from its own state next time */
                if (res->no_range)
                        return 0;
                if (dl_err < 0 && !sink.broken) {
                        snprintf(err, errlen, "%s", ringil_detail());
                        return dl_err;
                }
                if (code != 0)
                        snprintf(err, errlen, "%s", engine_err[0] ? engine_err : "install engine failed");
        }
        return code == 0 ? 0 : engine_exit_to_errno(code);
}

/* A source without Range support: the whole bundle, in order, into the classic `ringil install -`. */
static int run_stream_engine(const struct agent_config *c, const struct engine_delta_opts *o, source *src, char *err,
                             size_t errlen, struct engine_delta_result *res) {
        const char *argv[] = { c->ringil, "install", "--config", c->device_config, "-", NULL };
        _cleanup_close_ int outfd = memfd_create("ringil-install", MFD_CLOEXEC);
        struct engine_pipe sink = { .o = o, .pace = { .rate = o->rate, .stop = o->stop } };
        int p[2], r, code, dl_err;
        pid_t pid;

        if (outfd < 0)
                return negative_errno();
        if (pipe2(p, O_CLOEXEC) < 0)
                return negative_errno();
        r = process_spawn((char *const *) argv,
                          &(struct process_opts){ .in = PROCESS_STDIO_FD, .in_fd = p[0], .out = PROCESS_STDIO_FD,
                                                  .out_fd = outfd, .err = PROCESS_STDIO_FD, .err_fd = outfd },
                          &pid);
        safe_close(p[0]);
        if (r < 0) {
                safe_close(p[1]);
                return r;
        }
        sink.fd = p[1];
        dl_err = source_all(src, 0, pipe_sink, &sink);
        safe_close(p[1]);   /* as above: a cut stream ends the engine with "truncated", never installed */
        code = process_wait(pid);
        res->fetched = source_received(src);
        res->full = true;
        {
                char engine_err[FLEET_TEXT_MAX] = "";
                engine_collect_output(outfd, "install", engine_err, sizeof(engine_err));
                if (sink.stopped)
                        return -EINTR;
                if (dl_err < 0 && !sink.broken) {
                        snprintf(err, errlen, "%s", ringil_detail());
                        return dl_err;
                }
                if (code != 0)
                        snprintf(err, errlen, "%s", engine_err[0] ? engine_err : "install engine failed");
        }
        return code == 0 ? 0 : engine_exit_to_errno(code);
}

int engine_install_delta(const struct agent_config *c, const struct engine_delta_opts *o, char *err, size_t errlen,
                         struct engine_delta_result *ret) {
        _cleanup_(source_freep) source *src = NULL;
        struct engine_delta_result res = {};
        struct source_stats st;
        int r;

        r = source_new(c, o->fc, o->as, &src);
        if (r < 0) {
                snprintf(err, errlen, "%s", ringil_detail());
                return r;
        }
        r = run_fetch_engine(c, o, src, err, errlen, &res);
        if (r >= 0 && res.no_range) {
                log_info("the bundle's source ignores Range requests: downloading it whole");
                r = run_stream_engine(c, o, src, err, errlen, &res);
                res.no_range = true;
        }
        source_stats(src, &st);
        log_info("release %" PRId64 ": %" PRIu64 " bytes from mirrors, %" PRIu64 " from the server%s", o->as->release,
                 st.from_mirrors, st.from_server, st.refused ? " (a source sent wrong bytes and was dropped)" : "");
        *ret = res;
        return r;
}
