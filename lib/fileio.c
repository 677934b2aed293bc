/* fileio.c: the only place that knows how to write a file so that a power cut cannot tear it. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "fileio.h"
#include "macro.h"
#include "secret.h"

int write_all(int fd, const void *p, size_t n) {
        const uint8_t *b = p;

        while (n > 0) {
                ssize_t k = write(fd, b, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        return -EIO;
                b += k;
                n -= (size_t) k;
        }
        return 0;
}

int pwrite_all(int fd, const void *p, size_t n, off_t off) {
        const uint8_t *b = p;

        while (n > 0) {
                ssize_t k = pwrite(fd, b, n, off);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        return -EIO;
                b += k;
                n -= (size_t) k;
                off += k;
        }
        return 0;
}

ssize_t read_full(int fd, void *p, size_t n) {
        uint8_t *b = p;
        size_t got = 0;

        while (got < n) {
                ssize_t k = read(fd, b + got, n - got);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        break;
                got += (size_t) k;
        }
        return (ssize_t) got;
}

int read_exact(int fd, void *p, size_t n) {
        ssize_t k = read_full(fd, p, n);

        if (k < 0)
                return (int) k;
        return (size_t) k == n ? 0 : -ENODATA;
}

int read_full_fd_flags(int fd, unsigned flags, size_t max, uint8_t **ret_data, size_t *ret_len) {
        _cleanup_buf_ struct buf b = (flags & RFILE_SECRET) ? BUF_INIT_SECRET(max) : BUF_INIT(max);
        uint8_t chunk[16384];
        int r = 0;

        for (;;) {
                ssize_t k = read(fd, chunk, sizeof(chunk));
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        r = negative_errno();
                        break;
                }
                if (k == 0)
                        break;
                r = buf_append(&b, chunk, (size_t) k);
                if (r < 0)
                        break;
        }
        if (flags & RFILE_SECRET)
                secret_wipe(chunk, sizeof(chunk));
        if (r < 0)
                return r;
        r = buf_reserve(&b, 0);   /* an empty file still gets a NUL-terminated allocation */
        if (r < 0)
                return r;
        *ret_data = buf_steal(&b, ret_len);
        return 0;
}

int read_full_fd(int fd, size_t max, uint8_t **ret_data, size_t *ret_len) {
        return read_full_fd_flags(fd, 0, max, ret_data, ret_len);
}

int read_full_file(const char *path, unsigned flags, size_t max, uint8_t **ret_data, size_t *ret_len) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | ((flags & RFILE_NOFOLLOW) ? O_NOFOLLOW : 0));
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (S_ISREG(st.st_mode) && (uint64_t) st.st_size > max)
                return -EFBIG;
        return read_full_fd_flags(fd, flags, max, ret_data, ret_len);
}

static int open_parent(const char *path, char **ret_base) {
        _cleanup_free_ char *d = strdup(path), *b = strdup(path);
        int fd;

        if (!d || !b)
                return -ENOMEM;
        fd = open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (ret_base) {
                *ret_base = strdup(basename(b));
                if (!*ret_base) {
                        safe_close(fd);
                        return -ENOMEM;
                }
        }
        return fd;
}

int fsync_parent_dir(const char *path) {
        _cleanup_close_ int dfd = open_parent(path, NULL);

        if (dfd < 0)
                return dfd;
        return fsync(dfd) < 0 ? negative_errno() : 0;
}

int fsync_path(const char *path) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

        if (fd < 0)
                return negative_errno();
        return fsync(fd) < 0 ? negative_errno() : 0;
}

int atomic_write_file(const char *path, const void *data, size_t len, mode_t mode, unsigned flags) {
        _cleanup_free_ char *base = NULL;
        _cleanup_close_ int dfd = -EBADF, fd = -EBADF;
        char tmp[NAME_MAX + 1];
        int r;

        dfd = open_parent(path, &base);
        if (dfd < 0)
                return dfd;

        for (unsigned attempt = 0;; attempt++) {
                uint8_t rnd[6];
                int n;

                if (getentropy(rnd, sizeof(rnd)) < 0)
                        return negative_errno();
                n = snprintf(tmp, sizeof(tmp), ".#%.200s.%02x%02x%02x%02x%02x%02x", base, rnd[0], rnd[1],
                             rnd[2], rnd[3], rnd[4], rnd[5]);
                if (n < 0 || (size_t) n >= sizeof(tmp))
                        return -ENAMETOOLONG;
                fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
                if (fd >= 0)
                        break;
                if (errno != EEXIST || attempt > 16)
                        return negative_errno();
        }

        r = write_all(fd, data, len);
        if (r >= 0 && !(flags & AW_NOCHMOD) && fchmod(fd, mode) < 0)   /* umask must not weaken or widen the mode */
                r = negative_errno();
        if (r >= 0 && fsync(fd) < 0)
                r = negative_errno();
        if (r >= 0) {
                if (flags & AW_NOREPLACE) {
                        if (renameat2(dfd, tmp, dfd, base, RENAME_NOREPLACE) < 0)
                                r = negative_errno();
                } else if (renameat(dfd, tmp, dfd, base) < 0)
                        r = negative_errno();
        }
        if (r < 0) {
                (void) unlinkat(dfd, tmp, 0);
                return r;
        }
        /* The trap (seen on vfat, the ESP, under power cuts in tests/vm): vfat keeps a file's size and first
         * cluster in its directory entry, and rename writes the new entry empty, filling it in only when
         * the inode is written back. A directory fsync does not write the renamed inode, so a power cut
         * left the new name with 0 bytes and its cluster lost. fsync the file again at its new place. */
        if (fsync(fd) < 0)
                return negative_errno();
        if (!(flags & AW_NOSYNC_DIR) && fsync(dfd) < 0)
                return negative_errno();
        return 0;
}

/* One component of mkdir_p: create it, or accept an existing directory. A directory this call created
 * is made durable before the caller puts anything in it: the directory itself, then its entry in the
 * parent (without the parent's fsync a power cut can drop the new directory with everything in it). */
static int mkdir_one(const char *p, mode_t mode) {
        struct stat st;
        int r;

        if (mkdir(p, mode) < 0) {
                if (errno != EEXIST)
                        return negative_errno();
                if (stat(p, &st) < 0)
                        return negative_errno();
                return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
        }
        r = fsync_path(p);
        if (r >= 0)
                r = fsync_parent_dir(p);
        return r;
}

int mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);
        int r;

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/' || s[-1] == '/')
                        continue;
                *s = '\0';
                r = mkdir_one(p, mode);
                if (r < 0)
                        return r;
                *s = '/';
        }
        return mkdir_one(p, mode);
}
