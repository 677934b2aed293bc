/* install-fetch.c: a bundle source fed by the agent through the fetch protocol (install-fetch.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "fileio.h"
#include "install-fetch.h"
#include "macro.h"

struct fetch_stream {
        int in_fd, out_fd;
        uint64_t size;
        struct fetch_range *ranges;   /* the pending batch */
        size_t n, cur;                /* ranges; the one the stream is in */
        uint64_t pos;                 /* bundle offset of the next byte on the stream (in ranges[cur]) */
        uint64_t received;
};

int fetch_stream_new(int in_fd, int out_fd, uint64_t size, fetch_stream **ret) {
        fetch_stream *fs = calloc(1, sizeof(*fs));

        if (!fs)
                return -ENOMEM;
        fs->in_fd = in_fd;
        fs->out_fd = out_fd;
        fs->size = size;
        *ret = fs;
        return 0;
}

void fetch_stream_free(fetch_stream *fs) {
        if (!fs)
                return;
        free(fs->ranges);
        free(fs);
}

uint64_t fetch_stream_received(const fetch_stream *fs) {
        return fs->received;
}

static int stream_read(fetch_stream *fs, void *buf, size_t len) {
        ssize_t k = read_full(fs->in_fd, buf, len);

        if (k < 0)
                return (int) k;
        fs->received += (uint64_t) k;
        return (size_t) k == len ? 0 : -ENODATA;
}

/* Read and drop n bytes of the stream. */
static int stream_skip(fetch_stream *fs, uint64_t n) {
        uint8_t scratch[16384];

        while (n > 0) {
                size_t k = (size_t) MIN((uint64_t) sizeof(scratch), n);
                int r = stream_read(fs, scratch, k);
                if (r < 0)
                        return r;
                n -= k;
        }
        return 0;
}

/* Drop what is left of the pending batch (the agent sends all of it). */
static int drain(fetch_stream *fs) {
        for (; fs->cur < fs->n; fs->cur++) {
                const struct fetch_range *g = &fs->ranges[fs->cur];
                int r = stream_skip(fs, g->offset + g->len - fs->pos);
                if (r < 0)
                        return r;
                if (fs->cur + 1 < fs->n)
                        fs->pos = fs->ranges[fs->cur + 1].offset;
        }
        return 0;
}

int fetch_stream_request(fetch_stream *fs, const struct fetch_range *r, size_t n) {
        _cleanup_buf_ struct buf b = BUF_INIT((size_t) FETCH_MAX_RANGES * FETCH_LINE_MAX);
        struct fetch_range *copy = NULL;
        int k;

        if (n > FETCH_MAX_RANGES)
                return -E2BIG;
        k = drain(fs);
        if (k < 0)
                return k;
        for (size_t i = 0; i < n; i++) {
                if (r[i].len == 0 || (i > 0 && r[i].offset < r[i - 1].offset + r[i - 1].len) ||
                    r[i].offset + r[i].len < r[i].offset)
                        return -EINVAL;
                k = buf_printf(&b, "fetch %" PRIu64 " %" PRIu64 "\n", r[i].offset, r[i].len);
                if (k < 0)
                        return k;
        }
        if (n == 0)
                return 0;
        copy = malloc(n * sizeof(*copy));
        if (!copy)
                return -ENOMEM;
        memcpy(copy, r, n * sizeof(*copy));
        k = buf_printf(&b, "end\n");
        if (k >= 0)
                k = write_all(fs->out_fd, b.data, b.len);
        if (k < 0) {
                free(copy);
                return ringil_fail(k, "cannot ask the agent for bundle bytes: %s", strerror(-k));
        }
        free(fs->ranges);
        fs->ranges = copy;
        fs->n = n;
        fs->cur = 0;
        fs->pos = copy[0].offset;
        return 0;
}

int fetch_stream_note(fetch_stream *fs, const char *line) {
        int r = write_all(fs->out_fd, line, strlen(line));

        return r < 0 ? r : write_all(fs->out_fd, "\n", 1);
}

static int fs_read_at(void *userdata, uint64_t offset, void *buf, size_t len) {
        fetch_stream *fs = userdata;
        int r;

        if (len == 0)
                return 0;
        if (fs->size != UINT64_MAX && (offset > fs->size || len > fs->size - offset))
                return -ENODATA;
        if (fs->cur >= fs->n) {
                /* Nothing pending: ask for exactly these bytes (the header, the manifest, the signature). */
                r = fetch_stream_request(fs, &(struct fetch_range){ offset, len }, 1);
                if (r < 0)
                        return r;
        }
        /* Forward through the batch to the range holding offset; never back. */
        while (fs->cur < fs->n && offset >= fs->ranges[fs->cur].offset + fs->ranges[fs->cur].len) {
                r = stream_skip(fs, fs->ranges[fs->cur].offset + fs->ranges[fs->cur].len - fs->pos);
                if (r < 0)
                        return r;
                fs->cur++;
                if (fs->cur < fs->n)
                        fs->pos = fs->ranges[fs->cur].offset;
        }
        if (fs->cur >= fs->n || offset < fs->pos || offset + len > fs->ranges[fs->cur].offset + fs->ranges[fs->cur].len)
                return -ESPIPE;   /* not in what was asked for, or behind the stream */
        r = stream_skip(fs, offset - fs->pos);
        if (r >= 0)
                r = stream_read(fs, buf, len);
        if (r < 0)
                return r;
        fs->pos = offset + len;
        if (fs->pos == fs->ranges[fs->cur].offset + fs->ranges[fs->cur].len) {
                fs->cur++;
                if (fs->cur < fs->n)
                        fs->pos = fs->ranges[fs->cur].offset;
        }
        return 0;
}

struct bundle_source fetch_stream_source(fetch_stream *fs) {
        return (struct bundle_source){ .read_at = fs_read_at, .userdata = fs, .size = fs->size };
}
