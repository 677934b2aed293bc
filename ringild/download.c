/* download.c: fetch the assigned bundle into the download directory, resumable across cuts and restarts. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "crypto.h"
#include "err.h"
#include "source.h"
#include "fileio.h"
#include "log.h"

#define RANGE_MAX (4u << 20)
#define RANGE_MIN (64u << 10)
#define MAX_STALLS 6   /* then the attempt fails and is retried later, resuming here */

/*
 * DIR/RELEASE-SHA256.part grows range by range (fsynced after each), so a cut link, a server that went
 * away or a SIGTERM (systemctl stop) loses at most the range in flight: the next attempt, in this
 * process or after a restart, asks for the first missing byte. Complete, the file must hash to the
 * SHA-256 of the assignment before it is renamed DIR/RELEASE-SHA256.bundle; anything else is deleted
 * and fetched again. The bytes come from the release's sources (fetch.c: its mirrors, then the
 * server), each unit checked against the signed metadata's hash and the manifest's chunk hashes before
 * it is written here; the install engine still checks signature and every chunk before it writes
 * anything to a slot.
 */

static void names(const struct agent_config *c, const struct fleet_assignment *as, char part[static PATH_MAX],
                  char done[static PATH_MAX]) {
        snprintf(part, PATH_MAX, "%s/%" PRId64 "-%s.part", c->download_dir, as->release, as->sha256);
        snprintf(done, PATH_MAX, "%s/%" PRId64 "-%s.bundle", c->download_dir, as->release, as->sha256);
}

static void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

void download_cleanup(const struct agent_config *c, const struct fleet_assignment *keep) {
        _cleanup_(closedirp) DIR *d = opendir(c->download_dir);
        char prefix[96] = "";
        struct dirent *de;

        if (!d)
                return;
        if (keep && keep->assigned)
                snprintf(prefix, sizeof(prefix), "%" PRId64 "-%s.", keep->release, keep->sha256);
        while ((de = readdir(d))) {
                size_t n = strlen(de->d_name);
                bool ours = (n > 5 && streq(de->d_name + n - 5, ".part")) || (n > 7 && streq(de->d_name + n - 7, ".bundle"));
                if (!ours || (*prefix && strncmp(de->d_name, prefix, strlen(prefix)) == 0))
                        continue;
                if (unlinkat(dirfd(d), de->d_name, 0) == 0)
                        log_info("removed %s/%s (no longer assigned)", c->download_dir, de->d_name);
        }
}

void download_forget(const struct agent_config *c, const struct fleet_assignment *as) {
        char part[PATH_MAX], done[PATH_MAX];

        names(c, as, part, done);
        (void) unlink(part);
        (void) unlink(done);
}

bool download_started(const struct agent_config *c, const struct fleet_assignment *as) {
        char part[PATH_MAX], done[PATH_MAX];

        names(c, as, part, done);
        return access(part, F_OK) == 0 || access(done, F_OK) == 0;
}

static int hash_file(int fd, uint8_t out[static SHA256_LEN]) {
        EVP_MD_CTX *ctx = NULL;
        uint8_t buf[1 << 16];
        off_t off = 0;
        int r = crypto_sha256_begin(&ctx);

        if (r < 0)
                return r;
        for (;;) {
                ssize_t k = pread(fd, buf, sizeof(buf), off);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = negative_errno();
                        (void) crypto_sha256_final(ctx, out);
                        return r;
                }
                if (k == 0)
                        break;
                r = crypto_sha256_update(ctx, buf, (size_t) k);
                if (r < 0) {
                        (void) crypto_sha256_final(ctx, out);
                        return r;
                }
                off += k;
        }
        return crypto_sha256_final(ctx, out);
}

static void sleep_ms(unsigned ms, const volatile sig_atomic_t *stop) {
        for (unsigned left = ms; left > 0 && !(stop && *stop);) {
                unsigned step = MIN(left, 100u);
                struct timespec ts = { .tv_sec = 0, .tv_nsec = (long) step * 1000000L };
                (void) nanosleep(&ts, NULL);
                left -= step;
        }
}

static uint64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

void download_pace(struct download_pacer *p, size_t n) {
        uint64_t due;

        if (!p->rate)
                return;
        if (!p->start_ms)
                p->start_ms = now_ms();
        /* Pace the transfer ourselves: sleeping here stops curl reading, and TCP holds the server back
         * (libcurl 7.88's CURLOPT_MAX_RECV_SPEED_LARGE did not limit anything here, measured). */
        p->bytes += n;
        due = p->start_ms + p->bytes * 1000u / p->rate;
        if (due > now_ms())
                sleep_ms((unsigned) MIN(due - now_ms(), 10000u), p->stop);
}

struct file_sink {
        int fd;
        uint64_t written;
        struct download_pacer pace;
};

static int sink_write(void *userdata, const void *p, size_t n) {
        struct file_sink *s = userdata;
        int r = write_all(s->fd, p, n);

        if (r < 0)
                return r;
        s->written += n;
        download_pace(&s->pace, n);
        return 0;
}

int download_bundle(const struct agent_config *c, fleet_client *fc, const struct fleet_assignment *as,
                    const volatile sig_atomic_t *stop, download_tick_fn tick, void *userdata, char **ret_path,
                    uint64_t *ret_fetched, char *err, size_t errlen) {
        char part[PATH_MAX], done[PATH_MAX], want[65];
        _cleanup_close_ int fd = -EBADF;
        _cleanup_(source_freep) source *src = NULL;
        struct source_stats ss;
        struct file_sink sink = {};
        struct statvfs vfs;
        struct stat st;
        uint8_t digest[SHA256_LEN];
        unsigned stalls = 0;
        uint64_t window;
        int r;

        *ret_fetched = 0;
        err[0] = '\0';
        names(c, as, part, done);
        if (stat(done, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t) st.st_size == as->size) {
                *ret_path = strdup(done);
                return *ret_path ? 0 : -ENOMEM;
        }
        r = mkdir_p(c->download_dir, 0700);
        if (r < 0) {
                snprintf(err, errlen, "cannot create %s: %s", c->download_dir, strerror(-r));
                return r;
        }
        fd = open(part, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 || fstat(fd, &st) < 0) {
                r = negative_errno();
                snprintf(err, errlen, "cannot open %s: %s", part, strerror(-r));
                return r;
        }
        sink.fd = fd;
        sink.written = (uint64_t) st.st_size;
        sink.pace = (struct download_pacer){ .rate = as->rate, .stop = stop, .start_ms = now_ms() };
        if (sink.written > as->size) {
                if (ftruncate(fd, 0) < 0)
                        return negative_errno();
                sink.written = 0;
        }
        /* A full disk is the drone's state, not the release's fault: said clearly, retried later. */
        if (fstatvfs(fd, &vfs) == 0 && (uint64_t) vfs.f_bavail * vfs.f_frsize < as->size - sink.written) {
                snprintf(err, errlen, "not enough space in %s: %" PRIu64 " bytes needed, %" PRIu64 " free",
                         c->download_dir, as->size - sink.written, (uint64_t) vfs.f_bavail * vfs.f_frsize);
                return -ENOSPC;
        }
        if (sink.written > 0)
                log_info("resuming release %" PRId64 " at byte %" PRIu64 " of %" PRIu64, as->release, sink.written,
                         as->size);
        r = source_new(c, fc, as, &src);
        if (r < 0) {
                snprintf(err, errlen, "%s", ringil_detail());
                return r;
        }
        /* With a rate limit, ranges of about five seconds: progress reports and SIGTERM stay prompt. */
        window = as->rate ? MIN(MAX(as->rate * 5, (uint64_t) RANGE_MIN), (uint64_t) RANGE_MAX) : RANGE_MAX;
        while (sink.written < as->size) {
                uint64_t before = sink.written;
                int n;

                if (stop && *stop)
                        return -EINTR;
                /* a range that starts inside a unit (an earlier process was cut there) is fetched from the
                 * unit's start, checked, and only the missing bytes are written */
                n = source_ranges(src, &(struct fetch_range){ sink.written, MIN(window, as->size - sink.written) }, 1,
                                  sink_write, &sink);
                if (n == -ERANGE)
                        n = source_all(src, sink.written, sink_write, &sink);   /* no source takes Range */
                *ret_fetched += sink.written - before;
                (void) fdatasync(fd);
                if (stop && *stop)
                        return -EINTR;
                if (n == -EACCES) {
                        snprintf(err, errlen, "release %" PRId64 " is no longer assigned here (%s)", as->release,
                                 ringil_detail());
                        return -EACCES;
                }
                if (tick)
                        tick(userdata);
                if (sink.written > before) {
                        stalls = 0;
                        continue;
                }
                if (++stalls > MAX_STALLS) {
                        snprintf(err, errlen, "download stalled at byte %" PRIu64 " of %" PRIu64 ": %s", sink.written,
                                 as->size, ringil_detail());
                        return n < 0 ? n : -ETIMEDOUT;
                }
                log_debug("download interrupted at %" PRIu64 " (%s), retrying", sink.written, ringil_detail());
                sleep_ms(MIN(100u << MIN(stalls, 6u), 2000u), stop);
        }
        source_stats(src, &ss);
        log_info("release %" PRId64 ": %" PRIu64 " bytes from mirrors, %" PRIu64 " from the server%s", as->release,
                 ss.from_mirrors, ss.from_server, ss.refused ? " (a source sent wrong bytes and was dropped)" : "");
        r = hash_file(fd, digest);
        if (r < 0)
                return r;
        hex_encode(digest, sizeof(digest), want);
        if (!streq(want, as->sha256)) {
                /* a corrupt copy (disk, a proxy): fetched again, never handed to the engine */
                (void) unlink(part);
                snprintf(err, errlen, "downloaded bundle has SHA-256 %.16s…, assigned %.16s…; fetching it again", want,
                         as->sha256);
                return -RINGIL_EDIGEST;
        }
        r = fsync(fd) < 0 || rename(part, done) < 0 ? negative_errno() : fsync_parent_dir(done);
        if (r < 0) {
                snprintf(err, errlen, "cannot keep %s: %s", done, strerror(-r));
                return r;
        }
        *ret_path = strdup(done);
        return *ret_path ? 0 : -ENOMEM;
}
