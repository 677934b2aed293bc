/* fileio.h: bounded reads, full writes and crash-safe atomic file replacement. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum {
        RFILE_NOFOLLOW = 1 << 0,   /* refuse a symlink as the last component (state, key files) */
        RFILE_SECRET = 1 << 1,     /* key material: every intermediate buffer is wiped (free with secret_free) */
};

/*
 * Read a whole regular file of at most max bytes. On success *ret_data is malloc'd and NUL-terminated
 * (not counted in *ret_len). -EFBIG if larger than max, -EISDIR/-EBADF-style errors as from open.
 */
int read_full_file(const char *path, unsigned flags, size_t max, uint8_t **ret_data, size_t *ret_len);
int read_full_fd(int fd, size_t max, uint8_t **ret_data, size_t *ret_len);
int read_full_fd_flags(int fd, unsigned flags, size_t max, uint8_t **ret_data, size_t *ret_len);

/* Loop over short reads/writes and EINTR. read_exact returns -ENODATA on early EOF. */
int write_all(int fd, const void *p, size_t n);
int read_exact(int fd, void *p, size_t n);
int pwrite_all(int fd, const void *p, size_t n, off_t off);
/* Reads up to n bytes, stopping only at EOF; returns the count. */
ssize_t read_full(int fd, void *p, size_t n);

enum {
        AW_NOREPLACE = 1 << 0,     /* fail with -EEXIST if the target exists (renameat2 NOREPLACE) */
        AW_NOSYNC_DIR = 1 << 1,    /* caller fsyncs the directory itself after a batch */
        AW_NOCHMOD = 1 << 2,       /* skip fchmod: vfat (the ESP) refuses modes its mount options fix */
};

/*
 * Replace path atomically: write a temp file in the same directory (O_EXCL, mode), fsync it,
 * rename over path, fsync the directory. After a crash at any point path holds either the old or the
 * new content, never a mix. The temp file is removed on failure.
 */
int atomic_write_file(const char *path, const void *data, size_t len, mode_t mode, unsigned flags);

/* fsync the directory that contains path (or path itself if it is a directory and is_dir). */
int fsync_parent_dir(const char *path);
int fsync_path(const char *path);

/* mkdir -p with mode for every created component. Each directory it creates is fsynced, and so is its
 * parent, before the next step: a created path survives a power cut. An existing non-directory on the
 * way is -ENOTDIR. */
int mkdir_p(const char *path, mode_t mode);
