/* audit-fs.h: the auditor's one read path: every file it looks at is resolved inside --root. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "strv.h"

/*
 * A root-confined view of a file system. Paths are always interpreted relative to the root, whether
 * written "etc/shadow" or "/etc/shadow"; absolute symlinks (NixOS's /etc -> /nix/store/...) and ".."
 * resolve inside it and can never name a file outside.
 *
 * INVARIANT: no audit check opens a path except through these functions.
 *
 * Resolution uses openat2(RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS) when the kernel has it, else a
 * component walk that opens each component O_PATH|O_NOFOLLOW from the root fd, splices symlink
 * targets (absolute ones restart at the root) and clamps ".." at the root. Reads resolve to an O_PATH
 * fd first and open for reading only a regular file (or an allowed block device), reopened through
 * /proc/self/fd: a FIFO or character device in a hostile image is never opened (-EBADFD).
 * All functions return 0 or a negative errno: -ENOENT for a missing file, -ENOLINK when the path is
 * missing because a symlink on the way dangles (its target does not exist inside the root, e.g. an
 * offline image without its /nix/store): callers must treat that as "cannot tell", never "absent".
 */
struct audit_fs;

#define AUDIT_FS_MAX_LINKS 40
#define AUDIT_FS_MAX_PATH 4096
#define AUDIT_FS_MAX_ENTRIES 65536   /* directory listing cap */

/* root NULL means "/". */
int audit_fs_new(const char *root, struct audit_fs **ret);
void audit_fs_free(struct audit_fs *fs);
/* Tests: force the component walk even when openat2 exists. */
void audit_fs_set_walk_only(struct audit_fs *fs, bool on);
bool audit_fs_uses_openat2(const struct audit_fs *fs);
const char *audit_fs_root(const struct audit_fs *fs);

/* Open path (following a final symlink inside the root). flags as for openat(2). */
int audit_fs_open(struct audit_fs *fs, const char *path, int flags, int *ret_fd);

/*
 * Read a whole regular file (or a /proc, /sys pseudo-file) of at most max bytes; NUL-terminated.
 * -EFBIG when larger, -EISDIR for a directory, -EBADFD for a FIFO/socket/device.
 */
int audit_fs_read(struct audit_fs *fs, const char *path, size_t max, char **ret, size_t *ret_len);
/* Read the first n bytes of a regular file or block device; -ENODATA when shorter. */
int audit_fs_read_head(struct audit_fs *fs, const char *path, size_t n, uint8_t **ret);

int audit_fs_stat(struct audit_fs *fs, const char *path, struct stat *ret);    /* follows */
int audit_fs_lstat(struct audit_fs *fs, const char *path, struct stat *ret);   /* final link not followed */
/* Target text of a symlink (parents resolved inside the root). -EINVAL if not a symlink. */
int audit_fs_readlink(struct audit_fs *fs, const char *path, char **ret);
/* Canonical absolute path (as seen inside the root) that path resolves to; the file must exist. */
int audit_fs_resolve(struct audit_fs *fs, const char *path, char **ret);
/* Sorted names in a directory (no "." / ".."), at most AUDIT_FS_MAX_ENTRIES. */
int audit_fs_list(struct audit_fs *fs, const char *path, struct strv *ret);
/* 1 if path exists (following links), 0 if not, negative on other errors. */
int audit_fs_exists(struct audit_fs *fs, const char *path);
