/* audit-fs.c: root-confined path resolution and capped reads for the auditor (see audit-fs.h). */
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "audit-fs.h"
#include "buf.h"
#include "err.h"
#include "fileio.h"
#include "macro.h"

struct audit_fs {
        int root_fd;
        bool openat2;
        char *root;
};

static int try_openat2(int dirfd, const char *path, int flags) {
        struct open_how how = {
                .flags = (uint64_t) (flags | O_CLOEXEC),
                .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        };
        long r = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
        return r < 0 ? negative_errno() : (int) r;
}

int audit_fs_new(const char *root, struct audit_fs **ret) {
        _cleanup_free_ struct audit_fs *fs = calloc(1, sizeof(*fs));
        int fd;

        if (!fs)
                return -ENOMEM;
        fs->root = strdup(root ? root : "/");
        if (!fs->root)
                return -ENOMEM;
        fd = open(fs->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
                int r = negative_errno();
                free(fs->root);
                return r;
        }
        fs->root_fd = fd;
        /* Probe once: ENOSYS (old kernel) or EPERM (seccomp) selects the walk. */
        fd = try_openat2(fs->root_fd, ".", O_PATH | O_DIRECTORY);
        fs->openat2 = fd >= 0;
        safe_close(fd);
        *ret = TAKE_PTR(fs);
        return 0;
}

void audit_fs_free(struct audit_fs *fs) {
        if (!fs)
                return;
        safe_close(fs->root_fd);
        free(fs->root);
        free(fs);
}

void audit_fs_set_walk_only(struct audit_fs *fs, bool on) {
        if (on)
                fs->openat2 = false;
        else {
                int fd = try_openat2(fs->root_fd, ".", O_PATH | O_DIRECTORY);
                fs->openat2 = fd >= 0;
                safe_close(fd);
        }
}

bool audit_fs_uses_openat2(const struct audit_fs *fs) {
        return fs->openat2;
}

const char *audit_fs_root(const struct audit_fs *fs) {
        return fs->root;
}

/*
 * Component walk. canon holds the resolved path so far (components without symlinks, "" = root);
 * todo the remainder still to resolve. Each step is checked with fstatat(AT_SYMLINK_NOFOLLOW) on a
 * canonical path, so no symlink is ever followed by the kernel.
 */
static int walk(struct audit_fs *fs, const char *path, bool follow_last, char **ret_canon) {
        _cleanup_buf_ struct buf canon = BUF_INIT(AUDIT_FS_MAX_PATH);
        _cleanup_free_ char *todo = strdup(path);
        unsigned links = 0;
        /* todo = [text from symlink targets][the caller's own remainder: its last tail bytes] */
        size_t todo_len, tail;
        char *p;
        int r;

        if (!todo)
                return -ENOMEM;
        todo_len = tail = strlen(todo);
        r = buf_reserve(&canon, 1);
        if (r < 0)
                return r;
        canon.data[0] = '\0';
        p = todo;
        for (;;) {
                size_t saved = canon.len;
                char *c, *slash;
                bool last;
                struct stat st;

                while (*p == '/')
                        p++;
                if (!*p)
                        break;
                c = p;
                slash = strchr(p, '/');
                if (slash) {
                        *slash = '\0';
                        p = slash + 1;
                } else
                        p = c + strlen(c);
                while (*p == '/')
                        p++;
                last = !*p;
                if (streq(c, "."))
                        continue;
                if (streq(c, "..")) {
                        /* Clamp at the root: ".." of the root is the root (RESOLVE_IN_ROOT semantics). */
                        char *s = strrchr((char *) canon.data, '/');
                        canon.len = s ? (size_t) (s - (char *) canon.data) : 0;
                        canon.data[canon.len] = '\0';
                        continue;
                }
                if (canon.len > 0 && (r = buf_append_str(&canon, "/")) < 0)
                        return r;
                if ((r = buf_append_str(&canon, c)) < 0)
                        return r;
                if (last && !follow_last)
                        break;
                if (fstatat(fs->root_fd, (char *) canon.data, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        r = negative_errno();
                        /* A component that came from a symlink's target is missing: the link dangles
                         * (e.g. into a /nix/store that is not mounted). That is not "the file is absent". */
                        if (r == -ENOENT && (size_t) (c - todo) < todo_len - tail)
                                return -ENOLINK;
                        return r;
                }
                if (S_ISLNK(st.st_mode)) {
                        char target[AUDIT_FS_MAX_PATH];
                        ssize_t k;
                        _cleanup_free_ char *next = NULL;

                        if (++links > AUDIT_FS_MAX_LINKS)
                                return -ELOOP;
                        k = readlinkat(fs->root_fd, (char *) canon.data, target, sizeof(target) - 1);
                        if (k < 0)
                                return negative_errno();
                        target[k] = '\0';
                        canon.len = saved;
                        canon.data[saved] = '\0';
                        if (target[0] == '/') {
                                canon.len = 0;
                                canon.data[0] = '\0';
                        }
                        if (asprintf(&next, "%s/%s", target, p) < 0)
                                return -ENOMEM;
                        if (strlen(next) >= AUDIT_FS_MAX_PATH)
                                return -ENAMETOOLONG;
                        tail = MIN(tail, strlen(p));
                        free(todo);
                        todo = TAKE_PTR(next);
                        todo_len = strlen(todo);
                        p = todo;
                        continue;
                }
                if (!last && !S_ISDIR(st.st_mode))
                        return -ENOTDIR;
        }
        *ret_canon = (char *) buf_steal(&canon, NULL);
        return 0;
}

/* Open a canonical (symlink-free) path one component at a time, refusing any symlink met on the way. */
static int open_canon(struct audit_fs *fs, const char *canon, int flags) {
        _cleanup_free_ char *copy = strdup(canon);
        _cleanup_close_ int dfd = -EBADF;
        char *save = NULL, *c, *next;

        if (!copy)
                return -ENOMEM;
        dfd = openat(fs->root_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return negative_errno();
        c = strtok_r(copy, "/", &save);
        if (!c) {
                int fd = openat(dfd, ".", flags | O_CLOEXEC);
                return fd < 0 ? negative_errno() : fd;
        }
        for (;;) {
                int fd;
                next = strtok_r(NULL, "/", &save);
                fd = openat(dfd, c, (next ? O_PATH | O_DIRECTORY : flags) | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        return negative_errno();
                if (!next)
                        return fd;
                safe_close(dfd);
                dfd = fd;
                c = next;
        }
}

static int open_in_root(struct audit_fs *fs, const char *path, int flags, bool follow_last) {
        _cleanup_free_ char *canon = NULL;
        int r;

        if (strlen(path) >= AUDIT_FS_MAX_PATH)
                return -ENAMETOOLONG;
        if (fs->openat2) {
                const char *rel = path;
                int fd;
                while (*rel == '/')
                        rel++;
                fd = try_openat2(fs->root_fd, *rel ? rel : ".", flags | (follow_last ? 0 : O_NOFOLLOW));
                if (fd != -ENOENT)
                        return fd;
                /* Tell a dangling link on the way (-ENOLINK) from a missing file: the walk knows. */
                r = walk(fs, path, follow_last, &canon);
                return r == -ENOLINK ? r : -ENOENT;
        }
        r = walk(fs, path, follow_last, &canon);
        if (r < 0)
                return r;
        return open_canon(fs, canon, flags | (follow_last ? 0 : O_NOFOLLOW));
}

int audit_fs_open(struct audit_fs *fs, const char *path, int flags, int *ret_fd) {
        int fd = open_in_root(fs, path, flags, true);
        if (fd < 0)
                return fd;
        *ret_fd = fd;
        return 0;
}

/*
 * INVARIANT: a file is opened for reading only after its type is known. The path is resolved to an
 * O_PATH fd (no open side effects: a hostile image may make etc/shadow a watchdog or a FIFO), its type
 * checked with fstat, and only a regular file (or an allowed block device) is reopened for reading,
 * through /proc/self/fd so that the very same inode is opened (checked again: st_dev/st_ino).
 */
static int open_data(struct audit_fs *fs, const char *path, bool allow_blk, int *ret_fd) {
        _cleanup_close_ int pfd = -EBADF, fd = -EBADF;
        struct stat st, st2;
        char proc[64];

        pfd = open_in_root(fs, path, O_PATH, true);
        if (pfd < 0)
                return pfd;
        if (fstat(pfd, &st) < 0)
                return negative_errno();
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (!S_ISREG(st.st_mode) && !(allow_blk && S_ISBLK(st.st_mode)))
                return -EBADFD;
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
        fd = open(proc, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st2) < 0)
                return negative_errno();
        if (st2.st_dev != st.st_dev || st2.st_ino != st.st_ino || (st2.st_mode & S_IFMT) != (st.st_mode & S_IFMT))
                return -ESTALE;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int audit_fs_read(struct audit_fs *fs, const char *path, size_t max, char **ret, size_t *ret_len) {
        _cleanup_close_ int fd = -EBADF;
        uint8_t *data;
        size_t len;
        int r;

        r = open_data(fs, path, false, &fd);
        if (r < 0)
                return r;
        r = read_full_fd(fd, max, &data, &len);
        if (r < 0)
                return r;
        *ret = (char *) data;
        if (ret_len)
                *ret_len = len;
        return 0;
}

int audit_fs_read_head(struct audit_fs *fs, const char *path, size_t n, uint8_t **ret) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ uint8_t *data = NULL;
        int r;

        r = open_data(fs, path, true, &fd);
        if (r < 0)
                return r;
        data = malloc(n + 1);
        if (!data)
                return -ENOMEM;
        r = read_exact(fd, data, n);
        if (r < 0)
                return r;
        data[n] = 0;
        *ret = TAKE_PTR(data);
        return 0;
}

int audit_fs_stat(struct audit_fs *fs, const char *path, struct stat *ret) {
        _cleanup_close_ int fd = open_in_root(fs, path, O_PATH, true);
        if (fd < 0)
                return fd;
        return fstat(fd, ret) < 0 ? negative_errno() : 0;
}

int audit_fs_lstat(struct audit_fs *fs, const char *path, struct stat *ret) {
        _cleanup_close_ int fd = open_in_root(fs, path, O_PATH, false);
        if (fd < 0)
                return fd;
        return fstat(fd, ret) < 0 ? negative_errno() : 0;
}

int audit_fs_readlink(struct audit_fs *fs, const char *path, char **ret) {
        _cleanup_close_ int fd = open_in_root(fs, path, O_PATH, false);
        char target[AUDIT_FS_MAX_PATH];
        ssize_t k;

        if (fd < 0)
                return fd;
        /* An O_PATH fd of the link itself: readlinkat(fd, "") reads it without another lookup. */
        k = readlinkat(fd, "", target, sizeof(target) - 1);
        if (k < 0)
                return errno == ENOENT ? -EINVAL : negative_errno();
        target[k] = '\0';
        *ret = strdup(target);
        return *ret ? 0 : -ENOMEM;
}

int audit_fs_resolve(struct audit_fs *fs, const char *path, char **ret) {
        _cleanup_free_ char *canon = NULL;
        _cleanup_close_ int fd = -EBADF;
        char *out;
        int r;

        r = walk(fs, path, true, &canon);
        if (r < 0)
                return r;
        fd = open_canon(fs, canon, O_PATH);
        if (fd < 0)
                return fd;
        if (asprintf(&out, "/%s", canon) < 0)
                return -ENOMEM;
        *ret = out;
        return 0;
}

int audit_fs_list(struct audit_fs *fs, const char *path, struct strv *ret) {
        _cleanup_strv_ struct strv l = {};
        int fd = open_in_root(fs, path, O_RDONLY | O_DIRECTORY, true);
        struct dirent *de;
        DIR *d;
        int r = 0;

        if (fd < 0)
                return fd;
        d = fdopendir(fd);
        if (!d) {
                r = negative_errno();
                safe_close(fd);
                return r;
        }
        while ((errno = 0, de = readdir(d))) {
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (l.n >= AUDIT_FS_MAX_ENTRIES) {
                        r = -EFBIG;
                        break;
                }
                r = strv_push(&l, de->d_name);
                if (r < 0)
                        break;
        }
        if (r == 0 && errno != 0)
                r = negative_errno();
        closedir(d);
        if (r < 0)
                return r;
        strv_sort(&l);
        *ret = l;
        l = (struct strv) {};
        return 0;
}

int audit_fs_exists(struct audit_fs *fs, const char *path) {
        struct stat st;
        int r = audit_fs_stat(fs, path, &st);
        if (r == -ENOENT || r == -ENOTDIR)
                return 0;
        return r < 0 ? r : 1;
}
