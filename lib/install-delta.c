/* install-delta.c: chunk reuse: index a payload's needed chunk hashes, scan local sources for them. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cdc.h"
#include "crypto.h"
#include "err.h"
#include "install-delta.h"
#include "log.h"
#include "macro.h"

#define SCAN_WINDOW (4u << 20)

/* Quality of a chunk's best local location so far; a better one replaces a worse one. */
enum {
        Q_NONE,
        Q_TARGET_FORWARD,   /* later in the target slot: must be read before the writes reach it */
        Q_OTHER,            /* another source, never written by this install */
        Q_IN_PLACE,         /* already where it belongs in the target: read to verify, not written */
};

struct group {
        uint64_t head;      /* first chunk with this hash (members linked by next[], ascending) */
        uint64_t cursor;    /* target scan: members before this one were considered */
        uint32_t left;      /* members without any location */
        bool other_done;    /* every member has a location at least as good as Q_OTHER */
};

struct index {
        const struct bundle_payload *pl;
        uint64_t first;
        uint32_t *table;    /* group id + 1, 0 empty; open addressing on the hash's first 8 bytes */
        uint64_t mask;
        struct group *groups;
        uint64_t n_groups;
        uint64_t *next;     /* per chunk: next member of its group, UINT64_MAX at the end */
        uint8_t *q;         /* per chunk: quality */
        struct delta_plan *plan;
};

void delta_plan_done(struct delta_plan *p) {
        if (!p)
                return;
        free(p->src);
        free(p->off);
        *p = (struct delta_plan){};
}

static uint64_t key_of(const uint8_t h[static SHA256_LEN]) {
        uint64_t k;

        memcpy(&k, h, sizeof(k));
        return k;
}

static int64_t lookup(const struct index *x, const uint8_t h[static SHA256_LEN]) {
        for (uint64_t slot = key_of(h) & x->mask;; slot = (slot + 1) & x->mask) {
                uint32_t g = x->table[slot];
                if (g == 0)
                        return -1;
                if (memcmp(x->pl->chunk_sha256[x->groups[g - 1].head], h, SHA256_LEN) == 0)
                        return (int64_t) g - 1;
        }
}

static void index_free(struct index *x) {
        free(x->table);
        free(x->groups);
        free(x->next);
        free(x->q);
}

static int index_build(struct index *x) {
        const struct bundle_payload *pl = x->pl;
        uint64_t need = pl->n_chunks - x->first, cap = 16;
        _cleanup_free_ uint64_t *tail = NULL;

        while (cap < 2 * need)
                cap <<= 1;
        x->mask = cap - 1;
        x->table = calloc(cap, sizeof(uint32_t));
        x->groups = calloc(need ? need : 1, sizeof(struct group));
        x->next = malloc((pl->n_chunks ? pl->n_chunks : 1) * sizeof(uint64_t));
        x->q = calloc(pl->n_chunks ? pl->n_chunks : 1, 1);
        tail = malloc((need ? need : 1) * sizeof(uint64_t));
        if (!x->table || !x->groups || !x->next || !x->q || !tail)
                return -ENOMEM;
        for (uint64_t i = x->first; i < pl->n_chunks; i++) {
                int64_t g = lookup(x, pl->chunk_sha256[i]);
                x->next[i] = UINT64_MAX;
                if (g < 0) {
                        uint64_t slot = key_of(pl->chunk_sha256[i]) & x->mask;
                        while (x->table[slot])
                                slot = (slot + 1) & x->mask;
                        g = (int64_t) x->n_groups++;
                        x->table[slot] = (uint32_t) g + 1;
                        x->groups[g] = (struct group){ .head = i, .cursor = i };
                } else
                        x->next[tail[g]] = i;
                tail[g] = i;
                x->groups[g].left++;
        }
        return 0;
}

static void set_loc(struct index *x, uint64_t i, uint8_t q, int src, uint64_t off) {
        if (x->q[i] >= q)
                return;
        if (x->q[i] == Q_NONE)
                x->groups[lookup(x, x->pl->chunk_sha256[i])].left--;
        x->q[i] = q;
        x->plan->src[i] = (int8_t) src;
        x->plan->off[i] = off;
}

/* The chunk that starts exactly at payload offset `at`, or UINT64_MAX. */
static uint64_t chunk_starting_at(const struct bundle_payload *pl, uint64_t at) {
        uint64_t lo = 0, hi = pl->n_chunks;

        if (!pl->chunk_end)
                return at % pl->chunk_size == 0 && at / pl->chunk_size < pl->n_chunks ? at / pl->chunk_size : UINT64_MAX;
        while (lo < hi) {
                uint64_t mid = lo + (hi - lo) / 2;
                uint64_t s = bundle_chunk_start(pl, mid);
                if (s == at)
                        return mid;
                if (s < at)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return UINT64_MAX;
}

/* A local chunk with hash group g was found at offset `off` of source `s`. */
static void found(struct index *x, int64_t g, const struct delta_source *srcs, int s, uint64_t off) {
        struct group *gr = &x->groups[g];

        if (srcs[s].is_target) {
                uint64_t j = chunk_starting_at(x->pl, off);
                if (j != UINT64_MAX && j >= x->first &&
                    memcmp(x->pl->chunk_sha256[j], x->pl->chunk_sha256[gr->head], SHA256_LEN) == 0)
                        set_loc(x, j, Q_IN_PLACE, s, off);
                /* Forward copies: members that start at or before off, i.e. are written before the
                 * writes reach off. The scan goes up in off, so a cursor visits each member once. */
                while (gr->left > 0 && gr->cursor != UINT64_MAX && bundle_chunk_start(x->pl, gr->cursor) <= off) {
                        set_loc(x, gr->cursor, Q_TARGET_FORWARD, s, off);
                        gr->cursor = x->next[gr->cursor];
                }
                return;
        }
        if (gr->other_done)
                return;
        for (uint64_t i = gr->head; i != UINT64_MAX; i = x->next[i])
                set_loc(x, i, Q_OTHER, s, off);
        gr->other_done = true;
}

static int pread_full(int fd, uint8_t *buf, size_t len, uint64_t off) {
        size_t done = 0;

        while (done < len) {
                ssize_t k = pread(fd, buf + done, len - done, (off_t) (off + done));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno();
                if (k == 0)
                        return -ENODATA;
                done += (size_t) k;
        }
        return 0;
}

static bool all_found(const struct index *x) {
        for (uint64_t g = 0; g < x->n_groups; g++)
                if (x->groups[g].left > 0)
                        return false;
        return true;
}

/* Fixed chunks: the source at every multiple of chunk_size (blocks of an image stay where they are),
 * and the payload's short last chunk at its own position. */
static int scan_fixed(struct index *x, const struct delta_source *srcs, int s, uint8_t *buf) {
        const struct bundle_payload *pl = x->pl;
        const struct delta_source *src = &srcs[s];
        size_t cs = pl->chunk_size, per = MAX((size_t) 1, SCAN_WINDOW / cs), tail = (size_t) (pl->size % cs);
        uint64_t end = src->size - src->size % cs;
        int r;

        for (uint64_t off = 0; off < end; off += (uint64_t) per * cs) {
                size_t len = (size_t) MIN((uint64_t) per * cs, end - off);
                r = pread_full(src->fd, buf, len, off);
                if (r < 0)
                        return r;
                for (size_t pos = 0; pos < len; pos += cs) {
                        uint8_t md[SHA256_LEN];
                        int64_t g;
                        r = crypto_sha256(buf + pos, cs, md);
                        if (r < 0)
                                return r;
                        g = lookup(x, md);
                        if (g >= 0)
                                found(x, g, srcs, s, off + pos);
                }
        }
        if (tail && pl->n_chunks > x->first) {
                uint64_t at = pl->size - tail;
                uint8_t md[SHA256_LEN];
                int64_t g;
                if (at + tail <= src->size && pread_full(src->fd, buf, tail, at) >= 0 && crypto_sha256(buf, tail, md) >= 0 &&
                    (g = lookup(x, md)) >= 0)
                        found(x, g, srcs, s, at);
        }
        return 0;
}

/* Content-defined chunks: cut the source with the payload's chunker, so shifted content lines up. */
static int scan_cdc(struct index *x, const struct delta_source *srcs, int s, uint8_t *buf, size_t cap) {
        const struct delta_source *src = &srcs[s];
        struct cdc c;
        size_t have = 0, used = 0;
        uint64_t base = 0, read_to = 0;   /* source offset of buf[0]; bytes read so far */
        int r;

        r = cdc_init(&c, x->pl->cdc_min, x->pl->cdc_avg, x->pl->cdc_max);
        if (r < 0)
                return r;
        for (;;) {
                uint8_t md[SHA256_LEN];
                int64_t g;
                size_t n;

                if (have - used < c.max && read_to < src->size) {
                        size_t k;
                        memmove(buf, buf + used, have - used);
                        have -= used;
                        base += used;
                        used = 0;
                        k = (size_t) MIN((uint64_t) (cap - have), src->size - read_to);
                        r = pread_full(src->fd, buf + have, k, read_to);
                        if (r < 0)
                                return r;
                        have += k;
                        read_to += k;
                }
                n = cdc_next(&c, buf + used, have - used, read_to == src->size);
                if (n == 0)
                        return 0;
                r = crypto_sha256(buf + used, n, md);
                if (r < 0)
                        return r;
                g = lookup(x, md);
                if (g >= 0)
                        found(x, g, srcs, s, base + used);
                used += n;
        }
}

int delta_plan_payload(const struct bundle_payload *pl, uint64_t first, const struct delta_source *srcs, size_t n_srcs,
                       struct delta_plan *ret) {
        struct delta_plan plan = { .n_chunks = pl->n_chunks };
        struct index x = { .pl = pl, .first = MIN(first, pl->n_chunks), .plan = &plan };
        _cleanup_free_ uint8_t *buf = NULL;
        size_t cap = SCAN_WINDOW + pl->chunk_size;
        int r;

        plan.src = malloc(pl->n_chunks ? pl->n_chunks : 1);
        plan.off = calloc(pl->n_chunks ? pl->n_chunks : 1, sizeof(uint64_t));
        buf = malloc(cap);
        if (!plan.src || !plan.off || !buf) {
                delta_plan_done(&plan);
                return -ENOMEM;
        }
        memset(plan.src, DELTA_FETCH, pl->n_chunks);
        r = index_build(&x);
        for (size_t s = 0; r >= 0 && s < n_srcs && s < DELTA_MAX_SOURCES && !all_found(&x); s++) {
                int k;
                (void) posix_fadvise(srcs[s].fd, 0, 0, POSIX_FADV_SEQUENTIAL);
                k = pl->cdc ? scan_cdc(&x, srcs, (int) s, buf, cap) : scan_fixed(&x, srcs, (int) s, buf);
                if (k == -ENOMEM)
                        r = k;
                else if (k < 0)
                        log_debug("reuse: cannot read %s: %s (skipped)", srcs[s].label, strerror(-k));
        }
        if (r < 0) {
                index_free(&x);
                delta_plan_done(&plan);
                return r;
        }
        for (uint64_t i = x.first; i < pl->n_chunks; i++) {
                uint64_t len = bundle_chunk_len(pl, i);
                if (x.q[i] == Q_NONE)
                        plan.bytes_fetch += len;
                else {
                        plan.bytes_local += len;
                        if (x.q[i] == Q_IN_PLACE)
                                plan.bytes_inplace += len;
                }
        }
        index_free(&x);
        *ret = plan;
        return 0;
}

int delta_read_local(const struct bundle_payload *pl, uint64_t i, const struct delta_plan *plan,
                     const struct delta_source *srcs, uint8_t *buf, size_t *ret_len) {
        size_t len = bundle_chunk_len(pl, i);
        uint8_t md[SHA256_LEN];
        int r;

        if (i >= plan->n_chunks || plan->src[i] == DELTA_FETCH)
                return -EINVAL;
        r = pread_full(srcs[plan->src[i]].fd, buf, len, plan->off[i]);
        if (r < 0)
                return r == -ENODATA ? -RINGIL_EDIGEST : r;   /* the source shrank: treat as changed */
        /* INVARIANT: a chunk from local storage is hashed in the caller's buffer after the read, exactly
         * like a fetched one: only bytes that match the signed hash are written. */
        r = crypto_sha256(buf, len, md);
        if (r < 0)
                return r;
        if (crypto_memcmp(md, pl->chunk_sha256[i], SHA256_LEN) != 0)
                return ringil_fail(-RINGIL_EDIGEST, "local copy of chunk %llu of '%s' (%s) no longer matches its signed hash",
                                   (unsigned long long) i, pl->name, srcs[plan->src[i]].label);
        *ret_len = len;
        return 0;
}
