/* bundle-read.c: payload bytes out of a verified bundle: single chunks checked against their signed hash,
 * the parallel check of every chunk of a file, and the one-pass hashing shared with bundle creation. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bundle-internal.h"
#include "crypto.h"
#include "err.h"
#include "progress.h"

int bundle_chunk_offset(const bundle *b, size_t p, uint64_t index, uint64_t *ret_offset) {
        const struct bundle_payload *pl;

        if (!b || !b->manifest || p >= b->manifest->n_payloads)
                return -EINVAL;
        pl = &b->manifest->payloads[p];
        if (index >= pl->n_chunks)
                return -EINVAL;
        /* index < n_chunks, so the chunk starts inside the payload: no overflow. */
        *ret_offset = b->payload_offset[p] + bundle_chunk_start(pl, index);
        return 0;
}

int bundle_read_chunk(bundle *b, size_t p, uint64_t index, uint8_t *buf, size_t *ret_len) {
        const struct bundle_payload *pl;
        uint8_t md[SHA256_LEN];
        uint64_t off;
        size_t len;
        int r;

        r = bundle_chunk_offset(b, p, index, &off);
        if (r < 0)
                return r;
        pl = &b->manifest->payloads[p];
        len = bundle_chunk_len(pl, index);
        r = bundle_source_read(b, off, buf, len, "payload");
        if (r < 0)
                return r;
        /* INVARIANT: the hash is computed over the caller's buffer itself, after the read: what the
         * caller gets is exactly what matched the signed chunk hash (no TOCTOU through the file). */
        r = crypto_sha256(buf, len, md);
        if (r < 0)
                return r;
        if (crypto_memcmp(md, pl->chunk_sha256[index], SHA256_LEN) != 0)
                return ringil_fail(-RINGIL_EDIGEST, "payload '%s' chunk %llu does not match its signed hash", pl->name,
                                   (unsigned long long) index);
        *ret_len = len;
        return 0;
}

/*
 * Hashing a payload: chunk hashes and the whole-payload SHA-256 over the same bytes, in one pass of
 * wall time. The calling thread maps (or reads) window after window, faults it in and hashes its
 * chunks; a second thread runs one window behind and feeds the whole-payload digest, so that the
 * serial whole-payload hash never waits for I/O or page faults. At most PIPE_SLOTS windows exist at
 * once: memory use is bounded by PIPE_SLOTS * BUNDLE_WINDOW, whatever the payload size.
 */
#define PIPE_SLOTS 3u
#define PIPE_MIN (4u << 20)  /* smaller payloads are hashed on one thread */

struct window {
        const uint8_t *data;
        size_t len;
        void *map;           /* MAP_FAILED when data points into a buffer */
        size_t map_len;
};

struct hash_pipe {
        pthread_mutex_t mu;
        pthread_cond_t cv;
        struct window q[PIPE_SLOTS];
        unsigned head, count;
        bool done, abort;
        EVP_MD_CTX *whole;
        int r;
};

static void window_release(struct window *w) {
        if (w->map != MAP_FAILED)
                (void) munmap(w->map, w->map_len);
        w->map = MAP_FAILED;
}

static void *whole_worker(void *arg) {
        struct hash_pipe *p = arg;

        for (;;) {
                struct window *w;
                bool skip;

                pthread_mutex_lock(&p->mu);
                while (p->count == 0 && !p->done)
                        pthread_cond_wait(&p->cv, &p->mu);
                if (p->count == 0) {
                        pthread_mutex_unlock(&p->mu);
                        return NULL;
                }
                w = &p->q[p->head];
                skip = p->abort || p->r < 0;
                pthread_mutex_unlock(&p->mu);

                if (!skip && EVP_DigestUpdate(p->whole, w->data, w->len) != 1)
                        p->r = -EIO;   /* only this thread writes r until it is joined */
                window_release(w);

                pthread_mutex_lock(&p->mu);
                p->head = (p->head + 1) % PIPE_SLOTS;
                p->count--;
                pthread_cond_broadcast(&p->cv);
                pthread_mutex_unlock(&p->mu);
        }
}

/* Chunk hashes of the chunks [first, …) in w: into out (create) or compared with the signed list. */
static int hash_chunks(const struct bundle_payload *pl, const struct window *w, uint64_t first,
                       uint8_t (*out)[SHA256_LEN]) {
        for (size_t pos = 0, i = 0; pos < w->len; i++) {
                size_t n = MIN(bundle_chunk_len(pl, first + i), w->len - pos);
                uint8_t md[SHA256_LEN];
                int r = crypto_sha256(w->data + pos, n, out ? out[first + i] : md);

                if (r < 0)
                        return r;
                if (!out && crypto_memcmp(md, pl->chunk_sha256[first + i], SHA256_LEN) != 0)
                        return ringil_fail(-RINGIL_EDIGEST, "payload '%s' chunk %llu does not match its signed hash",
                                           pl->name, (unsigned long long) (first + i));
                pos += n;
        }
        return 0;
}

/* Map len bytes of fd at offset (any alignment) and fault them in; false if mapping is impossible. */
static bool window_map(int fd, uint64_t offset, size_t len, struct window *w) {
        static long pagesize;
        size_t skew;
        void *map;

        if (fd < 0)
                return false;
        if (!pagesize)
                pagesize = sysconf(_SC_PAGESIZE);
        skew = (size_t) (offset % (uint64_t) pagesize);
        map = mmap(NULL, len + skew, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, (off_t) (offset - skew));
        if (map == MAP_FAILED)
                return false;
        (void) madvise(map, len + skew, MADV_SEQUENTIAL);
        *w = (struct window){ .data = (const uint8_t *) map + skew, .len = len, .map = map, .map_len = len + skew };
        return true;
}

/*
 * Hash all `size` bytes of a payload at `offset`: from fd by mmap (no copy) when it is a regular
 * file, else from b's source through bounded buffers (streams read strictly in order).
 */
int bundle_hash_payload(bundle *b, int fd, uint64_t offset, const struct bundle_payload *pl, uint8_t (*out)[SHA256_LEN],
                        uint8_t ret_whole[static SHA256_LEN]) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *whole = EVP_MD_CTX_new();
        size_t window = MAX(BUNDLE_WINDOW, pl->chunk_size);
        uint64_t per = bundle_window_chunks(pl);
        uint8_t *bufs[PIPE_SLOTS] = {};
        struct hash_pipe p = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
        bool threaded;
        pthread_t t;
        unsigned tail = 0;
        unsigned mdlen = 0;
        int r = 0;

        if (!whole || EVP_DigestInit_ex(whole, EVP_sha256(), NULL) != 1)
                return -ENOMEM;
        p.whole = whole;
        threaded = pl->size >= PIPE_MIN && pthread_create(&t, NULL, whole_worker, &p) == 0;

        for (uint64_t first = 0; r >= 0 && first < pl->n_chunks; first += per) {
                uint64_t done = bundle_chunk_start(pl, first);
                size_t len = (size_t) (bundle_chunk_end(pl, MIN(first + per, pl->n_chunks) - 1) - done);
                struct window *w;

                pthread_mutex_lock(&p.mu);
                while (p.count == PIPE_SLOTS)
                        pthread_cond_wait(&p.cv, &p.mu);
                pthread_mutex_unlock(&p.mu);
                /* Slot `tail` is free: the worker only touches the `count` slots from `head`. */
                w = &p.q[tail];
                if (!window_map(fd, offset + done, len, w)) {
                        if (!b) {
                                r = fd >= 0 ? -EIO : -EINVAL;
                                break;
                        }
                        if (!bufs[tail] && !(bufs[tail] = malloc(window))) {
                                r = -ENOMEM;
                                break;
                        }
                        r = bundle_source_read(b, offset + done, bufs[tail], len, "payload");
                        if (r < 0)
                                break;
                        *w = (struct window){ .data = bufs[tail], .len = len, .map = MAP_FAILED };
                }
                r = hash_chunks(pl, w, first, out);
                if (r < 0) {
                        window_release(w);
                        break;
                }
                progress_add(len);
                if (threaded) {
                        pthread_mutex_lock(&p.mu);
                        p.count++;
                        pthread_cond_broadcast(&p.cv);
                        pthread_mutex_unlock(&p.mu);
                } else {
                        if (EVP_DigestUpdate(whole, w->data, w->len) != 1)
                                r = -EIO;
                        window_release(w);
                }
                tail = (tail + 1) % PIPE_SLOTS;
        }
        if (threaded) {
                pthread_mutex_lock(&p.mu);
                p.done = true;
                p.abort = r < 0;
                pthread_cond_broadcast(&p.cv);
                pthread_mutex_unlock(&p.mu);
                pthread_join(t, NULL);
        }
        for (unsigned i = 0; i < PIPE_SLOTS; i++)
                free(bufs[i]);
        if (r < 0)
                return r;
        if (p.r < 0)
                return crypto_fail(p.r, "SHA-256");
        if (EVP_DigestFinal_ex(whole, ret_whole, &mdlen) != 1 || mdlen != SHA256_LEN)
                return crypto_fail(-EIO, "SHA-256");
        return 0;
}

/*
 * Parallel verification of a payload in a regular file: windows are read with pread (a file truncated
 * underneath gives an error, never SIGBUS) and their chunks checked against the signed list, window k by
 * worker k % n. The chunk list covers every byte, so the whole-payload digest adds nothing here and is not
 * recomputed (streams, read once in order, still check it). Memory: one window per worker.
 */
#define VERIFY_MAX_WORKERS 4u

struct verify_job {
        int fd;
        uint64_t offset;
        const struct bundle_payload *pl;
        size_t window;
        uint64_t per;         /* chunks per window */
        unsigned n_workers;
        pthread_mutex_t mu;
        uint64_t bad_chunk;   /* lowest failing chunk, UINT64_MAX when none */
        int r;                /* first error that is not a digest mismatch */
};

struct verify_worker {
        struct verify_job *job;
        unsigned index;
};

/* Read exactly len bytes at offset: -RINGIL_ETRUNCATED if the file ends (or was cut) before. */
static int pread_exact(int fd, uint8_t *buf, size_t len, uint64_t offset) {
        for (size_t done = 0; done < len;) {
                ssize_t k = pread(fd, buf + done, len - done, (off_t) (offset + done));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno();
                if (k == 0)
                        return -RINGIL_ETRUNCATED;
                done += (size_t) k;
        }
        return 0;
}

static void *verify_worker_main(void *arg) {
        struct verify_worker *w = arg;
        struct verify_job *j = w->job;
        const struct bundle_payload *pl = j->pl;
        uint8_t *buf = malloc(j->window);
        int r = buf ? 0 : -ENOMEM;

        for (uint64_t k = w->index; r >= 0 && k * j->per < pl->n_chunks; k += j->n_workers) {
                uint64_t first = k * j->per, start = bundle_chunk_start(pl, first);
                size_t len = (size_t) (bundle_chunk_end(pl, MIN(first + j->per, pl->n_chunks) - 1) - start);

                pthread_mutex_lock(&j->mu);
                r = j->r < 0 || j->bad_chunk < first ? -ECANCELED : 0;   /* someone already failed earlier */
                pthread_mutex_unlock(&j->mu);
                if (r < 0)
                        break;
                r = pread_exact(j->fd, buf, len, j->offset + start);
                if (r < 0) {
                        pthread_mutex_lock(&j->mu);
                        if (j->r >= 0)
                                j->r = r;
                        pthread_mutex_unlock(&j->mu);
                        break;
                }
                for (size_t pos = 0, i = 0; pos < len; i++) {
                        size_t n = bundle_chunk_len(pl, first + i);
                        uint8_t md[SHA256_LEN];
                        unsigned mdlen = 0;

                        if (EVP_Digest(buf + pos, n, md, &mdlen, EVP_sha256(), NULL) != 1) {
                                r = -EIO;
                                pthread_mutex_lock(&j->mu);
                                if (j->r >= 0)
                                        j->r = r;
                                pthread_mutex_unlock(&j->mu);
                                break;
                        }
                        if (crypto_memcmp(md, pl->chunk_sha256[first + i], SHA256_LEN) != 0) {
                                pthread_mutex_lock(&j->mu);
                                j->bad_chunk = MIN(j->bad_chunk, first + i);
                                pthread_mutex_unlock(&j->mu);
                                r = -RINGIL_EDIGEST;
                                break;
                        }
                        pos += n;
                }
                if (r >= 0)
                        progress_add(len);
        }
        free(buf);
        return NULL;
}

int bundle_verify_payload_file(int fd, uint64_t offset, const struct bundle_payload *pl) {
        struct verify_job j = {
                .fd = fd, .offset = offset, .pl = pl, .window = MAX(BUNDLE_WINDOW, pl->chunk_size),
                .per = bundle_window_chunks(pl),
                .mu = PTHREAD_MUTEX_INITIALIZER, .bad_chunk = UINT64_MAX,
        };
        struct verify_worker workers[VERIFY_MAX_WORKERS];
        pthread_t threads[VERIFY_MAX_WORKERS];
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        unsigned started = 0;

        j.n_workers = (unsigned) MIN((uint64_t) MAX(cpus, 1L), (uint64_t) VERIFY_MAX_WORKERS);
        if (pl->n_chunks <= j.per)
                j.n_workers = 1;
        for (unsigned i = 0; i < j.n_workers; i++) {
                workers[i] = (struct verify_worker){ .job = &j, .index = i };
                if (i > 0 && pthread_create(&threads[i], NULL, verify_worker_main, &workers[i]) != 0)
                        break;   /* fewer threads: the windows of the missing ones are redistributed below */
                started++;
        }
        if (started < j.n_workers) {
                /* Could not start every worker: join those that started, then redo with one. */
                for (unsigned i = 1; i < started; i++)
                        pthread_join(threads[i], NULL);
                j.n_workers = 1;
                j.bad_chunk = UINT64_MAX;
                j.r = 0;
                started = 1;
        }
        verify_worker_main(&workers[0]);
        for (unsigned i = 1; i < started; i++)
                pthread_join(threads[i], NULL);
        pthread_mutex_destroy(&j.mu);

        if (j.bad_chunk != UINT64_MAX)
                return ringil_fail(-RINGIL_EDIGEST, "payload '%s' chunk %llu does not match its signed hash", pl->name,
                                   (unsigned long long) j.bad_chunk);
        if (j.r < 0)
                return ringil_fail(j.r, "cannot read payload '%s': %s", pl->name, ringil_strerror(j.r));
        return 0;
}

int bundle_verify_payloads(bundle *b) {
        const struct bundle_manifest *m;
        uint8_t probe;
        int r;

        if (!b || !b->manifest)
                return ringil_fail(-EINVAL, "payloads verified before the manifest");
        m = b->manifest;
        for (size_t i = 0; i < m->n_payloads; i++) {
                const struct bundle_payload *pl = &m->payloads[i];
                uint8_t whole[SHA256_LEN];

                if (b->fd >= 0) {
                        r = bundle_verify_payload_file(b->fd, b->payload_offset[i], pl);
                        if (r < 0)
                                return r;
                        continue;
                }
                r = bundle_hash_payload(b, -EBADF, b->payload_offset[i], pl, NULL, whole);
                if (r < 0)
                        return r;
                if (crypto_memcmp(whole, pl->sha256, SHA256_LEN) != 0)
                        return ringil_fail(-RINGIL_EDIGEST, "payload '%s' does not match its signed SHA-256", pl->name);
        }
        /* INVARIANT: nothing follows the last payload, also on streams of unknown size. */
        r = b->src.read_at(b->src.userdata, b->total, &probe, 1);
        if (r == 0)
                return ringil_fail(-RINGIL_EMALFORMED, "bytes appended after the last payload");
        if (r != -ENODATA)
                return ringil_fail(r, "cannot read the end of the bundle: %s", strerror(-r));
        return 0;
}
