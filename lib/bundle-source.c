/* bundle-source.c: where bundle bytes come from: a file read by offset, a pipe read in order, or any
 * caller-supplied byte source; opening and freeing a bundle. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bundle-internal.h"
#include "err.h"
#include "fileio.h"

struct fd_source {
        int fd;
        bool seekable;
        uint64_t pos;   /* sequential sources: bytes consumed so far */
};

static int fd_read_at(void *userdata, uint64_t offset, void *buf, size_t len) {
        struct fd_source *s = userdata;
        uint8_t *p = buf;

        if (s->seekable) {
                while (len > 0) {
                        ssize_t k;
                        if (offset > (uint64_t) INT64_MAX)
                                return -ENODATA;
                        k = pread(s->fd, p, len, (off_t) offset);
                        if (k < 0) {
                                if (errno == EINTR)
                                        continue;
                                return negative_errno();
                        }
                        if (k == 0)
                                return -ENODATA;
                        p += k;
                        len -= (size_t) k;
                        offset += (uint64_t) k;
                }
                return 0;
        }
        if (offset < s->pos)
                return -ESPIPE;
        while (s->pos < offset) {
                uint8_t scratch[16384];
                size_t n = (size_t) MIN((uint64_t) sizeof(scratch), offset - s->pos);
                ssize_t k = read_full(s->fd, scratch, n);
                if (k < 0)
                        return (int) k;
                s->pos += (uint64_t) k;
                if ((size_t) k < n)
                        return -ENODATA;
        }
        ssize_t k = read_full(s->fd, p, len);
        if (k < 0)
                return (int) k;
        s->pos += (uint64_t) k;
        return (size_t) k == len ? 0 : -ENODATA;
}

static void fd_close(void *userdata) {
        struct fd_source *s = userdata;

        safe_close(s->fd);
        free(s);
}

void bundle_free(bundle *b) {
        if (!b)
                return;
        if (b->src.close)
                b->src.close(b->src.userdata);
        free(b->manifest_raw);
        free(b->sig_raw);
        free(b->header_detail);
        bundle_manifest_free(b->unverified);
        bundle_manifest_free(b->manifest);
        free(b->payload_offset);
        free(b);
}

int bundle_open_source(const struct bundle_source *src, bundle **ret) {
        bundle *b;

        if (!src || !src->read_at)
                return -EINVAL;
        b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        b->src = *src;
        b->fd = -EBADF;
        *ret = b;
        return 0;
}

int bundle_open_fd(int fd, bundle **ret) {
        _cleanup_close_ int owned = fd;
        struct fd_source *s;
        struct stat st;
        bundle *b;
        int r;

        if (fd < 0)
                return -EBADF;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->fd = fd;
        s->seekable = S_ISREG(st.st_mode) || S_ISBLK(st.st_mode);
        if (s->seekable)
                (void) posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        r = bundle_open_source(&(struct bundle_source){ .read_at = fd_read_at, .close = fd_close, .userdata = s,
                                                       .size = S_ISREG(st.st_mode) ? (uint64_t) st.st_size : UINT64_MAX },
                               &b);
        if (r < 0) {
                free(s);
                return r;
        }
        TAKE_FD(owned);   /* now owned by the source */
        if (S_ISREG(st.st_mode))
                b->fd = fd;
        *ret = b;
        return 0;
}

int bundle_open(const char *path, bundle **ret) {
        int fd;

        if (streq(path, "-"))
                fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
        else
                fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return ringil_fail(negative_errno(), "cannot open bundle '%s'", path);
        return bundle_open_fd(fd, ret);
}

int bundle_source_read(bundle *b, uint64_t offset, void *buf, size_t len, const char *what) {
        int r = b->src.read_at(b->src.userdata, offset, buf, len);

        if (r == -ENODATA)
                return ringil_fail(-RINGIL_ETRUNCATED, "bundle truncated in %s", what);
        if (r < 0)
                return ringil_fail(r, "cannot read %s: %s", what, strerror(-r));
        return 0;
}

