/* nix-mirror.c: mirror a closure's missing paths from the fleet's Nix cache: a level-by-level walk of
 * signed narinfos, NARs fetched over parallel connections with resume, written into a file:// cache. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>


#include "crypto.h"
#include "err.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "nix-mirror.h"
#include "strv.h"

/* A set of store-path hash parts (the 32 nix32 characters): open addressing, grown at half load. */
struct hashset {
        char (*slot)[33];
        size_t cap, n;
};

static size_t hs_index(const char *h, size_t cap) {
        uint64_t v = 0;

        for (int i = 0; i < 12; i++)   /* 60 bits of the hash part: already uniformly random */
                v = v << 5 | (uint64_t) nix32_digit(h[i]);
        return (size_t) (v & (cap - 1));
}

/* 1 if added, 0 if present, < 0 on error. */
static int hs_add(struct hashset *s, const char *h) {
        size_t i;

        if (2 * (s->n + 1) > s->cap) {
                struct hashset g = { .cap = s->cap ? s->cap * 2 : 1024 };
                g.slot = calloc(g.cap, sizeof(*g.slot));
                if (!g.slot)
                        return -ENOMEM;
                for (size_t k = 0; k < s->cap; k++)
                        if (s->slot[k][0]) {
                                for (i = hs_index(s->slot[k], g.cap); g.slot[i][0]; i = (i + 1) & (g.cap - 1))
                                        ;
                                memcpy(g.slot[i], s->slot[k], 33);
                        }
                g.n = s->n;
                free(s->slot);
                *s = g;
        }
        for (i = hs_index(h, s->cap); s->slot[i][0]; i = (i + 1) & (s->cap - 1))
                if (memcmp(s->slot[i], h, 32) == 0)
                        return 0;
        memcpy(s->slot[i], h, 32);
        s->slot[i][32] = '\0';
        s->n++;
        return 1;
}

struct download {
        int fd;
        EVP_MD_CTX *sha;
        uint64_t got;
};

static int download_sink(void *userdata, const void *p, size_t n) {
        struct download *d = userdata;
        /* At the hashed offset: a short write that failed half-way cannot shift what follows. */
        int r = pwrite_all(d->fd, p, n, (off_t) d->got);

        if (r >= 0)
                r = crypto_sha256_update(d->sha, p, n);
        if (r >= 0)
                d->got += n;
        return r;
}

/* Hash what an earlier run left in fd (its first `have' bytes) and position at its end. */
static int rehash_partial(struct download *d, uint64_t have) {
        _cleanup_free_ uint8_t *tmp = malloc(1 << 20);

        if (!tmp)
                return -ENOMEM;
        if (lseek(d->fd, 0, SEEK_SET) < 0)
                return negative_errno();
        while (d->got < have) {
                size_t k = (size_t) MIN(have - d->got, (uint64_t) (1 << 20));
                int r = read_exact(d->fd, tmp, k);
                if (r < 0)
                        return r;
                r = crypto_sha256_update(d->sha, tmp, k);
                if (r < 0)
                        return r;
                d->got += k;
        }
        return 0;
}

#define NAR_RETRIES 4   /* consecutive attempts without progress before a download fails */

/*
 * 1 when nar/FILE is a regular file of FileSize bytes whose SHA-256 is FileHash. It is re-read: a file
 * left by an earlier run is not trusted by its name (bit rot, or a NAR Nix then refused). A wrong one is
 * removed (0).
 */
static int nar_complete(int nardir, const char *file, const struct narinfo *ni) {
        _cleanup_close_ int fd = openat(nardir, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        struct download d = { .fd = fd };
        uint8_t h[SHA256_LEN];
        struct stat sb;
        int r;

        if (fd < 0)
                return errno == ENOENT ? 0 : negative_errno();
        if (fstat(fd, &sb) < 0)
                return negative_errno();
        if (!S_ISREG(sb.st_mode) || (uint64_t) sb.st_size != ni->file_size) {
                (void) unlinkat(nardir, file, 0);
                return 0;
        }
        r = crypto_sha256_begin(&d.sha);
        if (r < 0)
                return r;
        r = rehash_partial(&d, ni->file_size);
        if (r < 0) {
                EVP_MD_CTX_free(d.sha);
                return r;
        }
        r = crypto_sha256_final(d.sha, h);
        if (r < 0)
                return r;
        if (crypto_memcmp(h, ni->file_hash, SHA256_LEN) != 0) {
                log_debug("%s: kept from an earlier run but does not match its FileHash; fetching it again", file);
                (void) unlinkat(nardir, file, 0);
                return 0;
        }
        return 1;
}

#define NAR_REOPENS 8   /* a .part replaced under us while we waited for its lock: open it again */

/* One NAR into dir/nar/FILE, resuming dir/nar/FILE.part. */
static int fetch_nar(const struct nixcache_source *src, int nardir, const struct narinfo *ni,
                     struct nixcache_stats *st) {
        const char *file = ni->url + 4;
        char part[192], path[192];
        struct stat sb, named;
        int r, pass = 0;

        r = nar_complete(nardir, file, ni);
        if (r != 0)
                return r < 0 ? r : 0;
        (void) snprintf(part, sizeof(part), "%s.part", file);
        (void) snprintf(path, sizeof(path), "/%s", ni->url);

        for (int opens = 0; opens < NAR_REOPENS && pass < 2; opens++) {
                _cleanup_close_ int fd = openat(nardir, part, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
                struct download d = { .fd = fd };
                uint8_t h[SHA256_LEN];
                uint64_t have;
                int tries = 0;

                if (fd < 0)
                        return ringil_fail(negative_errno(), "cannot open %s", part);
                /* Two paths of one level may share a NAR file (identical contents): one worker fetches
                 * it, the other waits here and then finds it complete. */
                while (flock(fd, LOCK_EX) < 0)
                        if (errno != EINTR)
                                return negative_errno();
                /* INVARIANT: we write only the inode that still carries the .part name: one another worker
                 * renamed or removed while we waited is left alone. */
                if (fstat(fd, &sb) < 0)
                        return negative_errno();
                if (!S_ISREG(sb.st_mode))
                        return ringil_fail(-RINGIL_EMALFORMED, "%s is not a regular file", part);
                if (fstatat(nardir, part, &named, AT_SYMLINK_NOFOLLOW) < 0 || named.st_ino != sb.st_ino ||
                    named.st_dev != sb.st_dev) {
                        r = nar_complete(nardir, file, ni);
                        if (r != 0)
                                return r < 0 ? r : 0;
                        continue;
                }
                r = nar_complete(nardir, file, ni);
                if (r != 0) {
                        (void) unlinkat(nardir, part, 0);   /* ours (locked, same inode): a leftover */
                        return r < 0 ? r : 0;
                }
                have = (uint64_t) sb.st_size;
                if (have > ni->file_size) {
                        if (ftruncate(fd, 0) < 0)
                                return negative_errno();
                        have = 0;
                }
                r = crypto_sha256_begin(&d.sha);
                if (r < 0)
                        return r;
                r = rehash_partial(&d, have);
                st->bytes_resumed += have;
                while (r >= 0 && d.got < ni->file_size) {
                        long status = 0;
                        uint64_t before = d.got;
                        int64_t k = src->get_range(src->userdata, path, d.got, ni->file_size - d.got, download_sink, &d,
                                                   &status);
                        if (status == 404 || status == 403 || status == 401) {
                                r = ringil_fail(status == 404 ? -ENOENT : -EACCES, "GET %s: HTTP %ld", path, status);
                                break;
                        }
                        st->bytes_fetched += d.got - before;
                        if (d.got > before)
                                tries = 0;
                        else if (++tries >= NAR_RETRIES) {
                                r = k < 0 ? (int) k : ringil_fail(-ECONNRESET, "GET %s: no progress", path);
                                break;
                        }
                }
                if (r < 0) {
                        EVP_MD_CTX_free(d.sha);
                        return r;   /* the .part stays: the next run resumes it */
                }
                r = crypto_sha256_final(d.sha, h);
                if (r < 0)
                        return r;
                if (fstat(fd, &sb) < 0)
                        return negative_errno();
                if ((uint64_t) sb.st_size != ni->file_size || crypto_memcmp(h, ni->file_hash, SHA256_LEN) != 0) {
                        (void) unlinkat(nardir, part, 0);
                        if (have > 0 && pass++ == 0) {
                                log_debug("%s: the resumed download does not match its FileHash; fetching it again", file);
                                continue;   /* the kept prefix may have been the bad part */
                        }
                        return ringil_fail(-RINGIL_EDIGEST, "%s does not match the FileHash of %s", ni->url,
                                           ni->store_path);
                }
                if (fdatasync(fd) < 0 || renameat(nardir, part, nardir, file) < 0)
                        return ringil_fail(negative_errno(), "cannot store %s", file);
                st->nars_fetched++;
                return 0;
        }
        return ringil_fail(-EAGAIN, "%s: replaced under us %d times", part, NAR_REOPENS);
}

static uint64_t sat_add(uint64_t a, uint64_t b) {
        return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Fetch, check and store one missing path's narinfo and NAR; its references go to next. */
static int fetch_path(const struct nixcache_source *src, const char *store_path, const char *keys,
                      const struct nix_closure *pin, int root, int nardir, struct nixcache_stats *st,
                      struct narinfo *ret) {
        char path[64], name[48];
        struct buf body = {};
        struct narinfo ni;
        long status = 0;
        int r;

        (void) snprintf(path, sizeof(path), "/%.32s.narinfo", store_path + 11);
        r = src->get(src->userdata, path, NARINFO_MAX, &status, &body);
        if (r < 0)
                return ringil_fail(r, "GET %s: %s", path, ringil_detail());
        if (status != 200) {
                buf_free(&body);
                return ringil_fail(status == 404 ? -ENOENT : status == 403 || status == 401 ? -EACCES : -EPROTO,
                                   "GET %s: HTTP %ld%s", path, status, status == 404 ? " (the cache has no such path)" : "");
        }
        st->bytes_fetched += body.len;
        r = narinfo_parse((const char *) body.data, body.len, &ni);
        if (r < 0) {
                buf_free(&body);
                return ringil_fail(r, "%s: %s", path, ringil_detail());
        }
        /* INVARIANT: nothing of a narinfo is used before its StorePath is the one asked for and its
         * signature verified: References decide what we fetch next. */
        if (!streq(ni.store_path, store_path))
                r = ringil_fail(-RINGIL_EMALFORMED, "%s names %s, not %s", path, ni.store_path, store_path);
        if (r >= 0)
                r = narinfo_verify(&ni, keys);
        if (r >= 0 && ni.ca)
                r = ringil_fail(-RINGIL_EREFUSED, "%s is content-addressed: ringil installs only signed input-addressed paths",
                                store_path);
        /* INVARIANT: with the bundle's closure listing, only its paths with its exact NAR hashes are fetched. */
        if (r >= 0 && pin) {
                const struct nix_closure_entry *e = nix_closure_find(pin, store_path);
                if (!e)
                        r = ringil_fail(-RINGIL_EDIGEST, "%s is not in the bundle's signed closure", store_path);
                else if (crypto_memcmp(e->nar_hash, ni.nar_hash, 32) != 0 || e->nar_size != ni.nar_size)
                        r = ringil_fail(-RINGIL_EDIGEST, "%s: the cache's NarHash/NarSize differ from the bundle's signed closure",
                                        store_path);
        }
        if (r >= 0 && (!ni.has_file_hash || !ni.has_file_size))
                r = ringil_fail(-RINGIL_EMALFORMED, "%s lacks FileHash or FileSize", path);
        /* FileSize is not signed: bound it by the signed NarSize (compression never grows a NAR much). */
        if (r >= 0 && (streq(ni.compression, "none") ? ni.file_size != ni.nar_size
                                                     : ni.file_size > sat_add(ni.nar_size, ni.nar_size / 16 + 65536)))
                r = ringil_fail(-RINGIL_ETOOBIG, "%s: FileSize %" PRIu64 " does not fit NarSize %" PRIu64, path,
                                ni.file_size, ni.nar_size);
        if (r >= 0)
                r = fetch_nar(src, nardir, &ni, st);
        if (r >= 0) {
                /* The narinfo lands after its NAR, so Nix never meets one without the other. */
                _cleanup_close_ int tfd = -EBADF;
                (void) snprintf(name, sizeof(name), "%.32s.narinfo", store_path + 11);
                tfd = openat(root, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
                r = tfd < 0 ? negative_errno() : write_all(tfd, body.data, body.len);
                if (r < 0)
                        r = ringil_fail(r, "cannot write %s", name);
        }
        buf_free(&body);
        if (r < 0) {
                narinfo_done(&ni);
                return r;
        }
        st->paths_fetched++;
        *ret = ni;
        return 0;
}

/* One worker of a level: takes the level's missing paths one at a time until none is left or one failed. */
struct level_worker {
        const struct nixcache_source *src;
        const struct strv *cur;
        const bool *inv;
        size_t *next;                   /* shared: the next index to take */
        int *stop;                      /* shared: set by the first failure */
        const char *keys;
        const struct nix_closure *pin;
        int root, nardir;
        struct nixcache_stats st;
        struct strv refs;           /* reference basenames found */
        int r;
        char why[512];                  /* the failure's detail (ringil_detail() is per thread) */
};

static void *level_work(void *userdata) {
        struct level_worker *w = userdata;

        for (;;) {
                size_t i = __atomic_fetch_add(w->next, 1, __ATOMIC_RELAXED);
                struct narinfo ni = {};
                int r;

                if (i >= w->cur->n || __atomic_load_n(w->stop, __ATOMIC_RELAXED))
                        break;
                if (!w->inv[i])
                        continue;
                r = fetch_path(w->src, w->cur->v[i], w->keys, w->pin, w->root, w->nardir, &w->st, &ni);
                for (size_t k = 0; r >= 0 && k < ni.n_refs; k++)
                        r = strv_push(&w->refs, ni.refs[k]);
                narinfo_done(&ni);
                if (r < 0) {
                        w->r = r;
                        (void) snprintf(w->why, sizeof(w->why), "%s", ringil_detail());
                        __atomic_store_n(w->stop, 1, __ATOMIC_RELAXED);
                        break;
                }
        }
        return NULL;
}

/* Fetch one level's missing paths with up to n_src workers; their references are appended to *refs. */
static int fetch_level(const struct nixcache_source *src, size_t n_src, const struct strv *cur, const bool *inv,
                       const char *keys, const struct nix_closure *pin, int root, int nardir, struct nixcache_stats *st,
                       struct strv *refs) {
        struct level_worker w[NIXCACHE_MAX_SOURCES] = {};
        pthread_t tid[NIXCACHE_MAX_SOURCES];
        bool started[NIXCACHE_MAX_SOURCES] = {};
        size_t next = 0, missing = 0, n;
        int stop = 0, r = 0;

        for (size_t i = 0; i < cur->n; i++)
                missing += inv[i];
        n = MIN(MIN(n_src, (size_t) NIXCACHE_MAX_SOURCES), missing);
        for (size_t k = 0; k < n; k++)
                w[k] = (struct level_worker) { .src = &src[k], .cur = cur, .inv = inv, .next = &next, .stop = &stop,
                                               .keys = keys, .pin = pin, .root = root, .nardir = nardir };
        /* One worker runs here; the others, if any, in threads. */
        for (size_t k = 1; k < n; k++)
                started[k] = pthread_create(&tid[k], NULL, level_work, &w[k]) == 0;
        if (n > 0)
                (void) level_work(&w[0]);
        for (size_t k = 0; k < n; k++) {
                if (k > 0 && started[k])
                        (void) pthread_join(tid[k], NULL);
                st->paths_fetched += w[k].st.paths_fetched;
                st->nars_fetched += w[k].st.nars_fetched;
                st->bytes_fetched += w[k].st.bytes_fetched;
                st->bytes_resumed += w[k].st.bytes_resumed;
                if (w[k].r < 0 && r >= 0)
                        r = ringil_fail(w[k].r, "%s", w[k].why);
                for (size_t i = 0; r >= 0 && i < w[k].refs.n; i++)
                        r = strv_push(refs, w[k].refs.v[i]);
                strv_done(&w[k].refs);
        }
        return r;
}

int nixcache_mirror(const struct nixcache_source *src, size_t n_src, const char *store_path, const char *trusted_keys,
                    const struct nix_closure *pin, nixcache_invalid_t invalid, void *invalid_userdata,
                    const char *dir, struct nixcache_stats *ret_stats) {
        static const char info[] = "StoreDir: /nix/store\nWantMassQuery: 0\nPriority: 10\n";
        struct nixcache_stats st = {};
        struct strv cur = {}, next = {}, refs = {};
        struct hashset seen = {};
        _cleanup_close_ int root = -EBADF, nardir = -EBADF;
        _cleanup_free_ char *infopath = NULL;
        _cleanup_free_ bool *inv = NULL;
        int r;

        if (!nix_store_path_valid(store_path))
                return ringil_fail(-RINGIL_EMALFORMED, "`%s' is not a store path", store_path);
        if (n_src == 0)
                return -EINVAL;
        r = mkdir_p(dir, 0700);
        if (r >= 0) {
                root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                if (root < 0 || (mkdirat(root, "nar", 0700) < 0 && errno != EEXIST))
                        r = negative_errno();
        }
        if (r >= 0) {
                nardir = openat(root, "nar", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                if (nardir < 0)
                        r = negative_errno();
        }
        if (r >= 0 && asprintf(&infopath, "%s/nix-cache-info", dir) < 0)
                r = -ENOMEM;
        if (r >= 0)
                r = atomic_write_file(infopath, info, sizeof(info) - 1, 0600, 0);
        if (r < 0)
                return ringil_fail(r, "cannot prepare the mirror %s", dir);

        r = hs_add(&seen, store_path + 11);
        if (r >= 0)
                r = strv_push(&cur, store_path);
        /* Breadth first, one validity query per level: a path the store has ends its branch. The
         * level's missing paths are fetched in parallel (latency, not bandwidth, dominates a closure of
         * many small paths over a tunnel). */
        while (r >= 0 && cur.n > 0) {
                free(inv);
                inv = calloc(cur.n, sizeof(bool));
                if (!inv) {
                        r = -ENOMEM;
                        break;
                }
                st.paths_seen += cur.n;
                r = invalid(invalid_userdata, cur.v, cur.n, inv);
                if (r >= 0)
                        r = fetch_level(src, n_src, &cur, inv, trusted_keys, pin, root, nardir, &st, &refs);
                for (size_t k = 0; r >= 0 && k < refs.n; k++) {
                        char full[NIX_STORE_PATH_MAX + 1];
                        int added = hs_add(&seen, refs.v[k]);
                        if (added <= 0) {
                                r = added;
                                continue;
                        }
                        if (seen.n > NIX_CLOSURE_MAX) {
                                r = ringil_fail(-RINGIL_ETOOBIG, "closure of %s has more than %u paths", store_path,
                                                NIX_CLOSURE_MAX);
                                break;
                        }
                        (void) snprintf(full, sizeof(full), "/nix/store/%s", refs.v[k]);
                        r = strv_push(&next, full);
                }
                strv_done(&refs);
                strv_done(&cur);
                cur = next;
                next = (struct strv) {};
        }
        strv_done(&cur);
        strv_done(&next);
        free(seen.slot);
        if (ret_stats)
                *ret_stats = st;
        return r;
}

int nixcache_mirror_remove(const char *dir) {
        _cleanup_close_ int root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        const char *const sub[] = { "nar", "." };

        if (root < 0)
                return errno == ENOENT ? 0 : negative_errno();
        for (size_t k = 0; k < ELEMENTSOF(sub); k++) {
                int fd = openat(root, sub[k], O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                DIR *d;
                struct dirent *de;

                if (fd < 0)
                        continue;
                d = fdopendir(fd);
                if (!d) {
                        close(fd);
                        return negative_errno();
                }
                while ((de = readdir(d))) {
                        size_t n = strlen(de->d_name);
                        struct stat sb;
                        bool reg = de->d_type == DT_REG ||
                                   (de->d_type == DT_UNKNOWN && fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
                                    S_ISREG(sb.st_mode));
                        bool ours = k == 0 ? reg
                                           : streq(de->d_name, "nix-cache-info") ||
                                                     (n == 32 + 8 && streq(de->d_name + 32, ".narinfo"));
                        if (ours)
                                (void) unlinkat(dirfd(d), de->d_name, 0);
                }
                closedir(d);
        }
        /* Nix's file:// store adds these (empty) when it opens the mirror. */
        (void) unlinkat(root, "nar", AT_REMOVEDIR);
        (void) unlinkat(root, "log", AT_REMOVEDIR);
        (void) unlinkat(root, "realisations", AT_REMOVEDIR);
        return rmdir(dir) < 0 && errno != ENOENT && errno != ENOTEMPTY ? negative_errno() : 0;
}
