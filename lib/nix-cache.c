/* nix-cache.c: narinfo parsing and signature checks, and mirroring a closure's missing paths from the fleet's Nix cache. */
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

#include <jansson.h>

#include "crypto.h"
#include "err.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "nix-cache.h"
#include "parse.h"

static const char nix32_chars[] = "0123456789abcdfghijklmnpqrsvwxyz";

void nix32_encode(const uint8_t *p, size_t n, char *out) {
        size_t len = (n * 8 + 4) / 5;

        /* Nix writes the most significant 5-bit group first; group k takes bits 5k.. of the little-endian number. */
        for (size_t k = len; k-- > 0;) {
                size_t b = k * 5, i = b / 8, j = b % 8;
                unsigned c = (unsigned) (p[i] >> j);
                if (i + 1 < n)
                        c |= (unsigned) p[i + 1] << (8 - j);
                *out++ = nix32_chars[c & 0x1f];
        }
        *out = '\0';
}

int nix32_decode(const char *s, uint8_t *out, size_t n) {
        size_t len = (n * 8 + 4) / 5;

        if (strlen(s) != len)
                return -RINGIL_EMALFORMED;
        memset(out, 0, n);
        for (size_t k = 0; k < len; k++) {
                const char *c = s[len - 1 - k] ? strchr(nix32_chars, s[len - 1 - k]) : NULL;
                size_t b = k * 5, i = b / 8, j = b % 8;
                unsigned d;

                if (!c)
                        return -RINGIL_EMALFORMED;
                d = (unsigned) (c - nix32_chars);
                out[i] |= (uint8_t) (d << j);
                if (i + 1 < n)
                        out[i + 1] |= (uint8_t) (d >> (8 - j));
                else if (d >> (8 - j))
                        return -RINGIL_EMALFORMED;   /* bits beyond the hash: not a canonical encoding */
        }
        return 0;
}

bool nix_store_path_valid(const char *s) {
        const char *name;
        size_t n;

        if (!s || strncmp(s, "/nix/store/", 11) != 0)
                return false;
        s += 11;
        for (int i = 0; i < 32; i++)
                if (!s[i] || !strchr(nix32_chars, s[i]))
                        return false;
        if (s[32] != '-')
                return false;
        name = s + 33;
        n = strlen(name);
        if (n == 0 || n > 211 || name[0] == '.')
                return false;
        return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+._?=-") == n;
}

void narinfo_done(struct narinfo *ni) {
        if (!ni)
                return;
        free(ni->store_path);
        free(ni->url);
        free(ni->compression);
        for (size_t i = 0; i < ni->n_refs; i++)
                free(ni->refs[i]);
        free(ni->refs);
        for (size_t i = 0; i < ni->n_sigs; i++)
                free(ni->sigs[i]);
        free(ni->deriver);
        free(ni->ca);
        *ni = (struct narinfo) {};
}

/* "sha256:" + 52 nix32 or 64 hex characters. */
static int parse_hash(const char *v, uint8_t out[static 32]) {
        if (strncmp(v, "sha256:", 7) != 0)
                return -RINGIL_EMALFORMED;
        v += 7;
        if (strlen(v) == NIX32_SHA256_LEN)
                return nix32_decode(v, out, 32);
        if (strlen(v) == 64)
                return hex_decode(v, out, 32) < 0 ? -RINGIL_EMALFORMED : 0;
        return -RINGIL_EMALFORMED;
}

/* nar/FILE with FILE of [A-Za-z0-9._+-] not starting with '.': no scheme, no directory, no "..". */
static bool url_valid(const char *v) {
        const char *f = v + 4;
        size_t n;

        if (strncmp(v, "nar/", 4) != 0)
                return false;
        n = strlen(f);
        return n > 0 && n <= 160 && f[0] != '.' &&
               strspn(f, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._+-") == n &&
               !strstr(f, ".part");   /* never collides with our own partial downloads */
}

static bool compression_valid(const char *v) {
        static const char *const known[] = { "none", "xz", "bzip2", "zstd", "br", "lz4", "lzip", "gzip" };

        for (size_t i = 0; i < ELEMENTSOF(known); i++)
                if (streq(v, known[i]))
                        return true;
        return false;
}

/* n bytes (the input is not NUL-terminated: strndup would look past them for one) plus a NUL. */
static char *memdup_str(const char *p, size_t n) {
        char *s = malloc(n + 1);

        if (s) {
                memcpy(s, p, n);
                s[n] = '\0';
        }
        return s;
}

static int set_once(char **dst, const char *v, const char *key, unsigned line) {
        if (*dst)
                return ringil_fail(-RINGIL_EMALFORMED, "narinfo line %u: %s given twice", line, key);
        *dst = strdup(v);
        return *dst ? 0 : -ENOMEM;
}

static int parse_refs(struct narinfo *ni, const char *v, unsigned line) {
        if (ni->refs)
                return ringil_fail(-RINGIL_EMALFORMED, "narinfo line %u: References given twice", line);
        ni->refs = calloc(1, sizeof(char *));   /* present, possibly empty */
        if (!ni->refs)
                return -ENOMEM;
        while (*v) {
                char full[NIX_STORE_PATH_MAX + 1];
                size_t n = strcspn(v, " ");
                char **nr;

                if (n == 0) {
                        v++;
                        continue;
                }
                if (ni->n_refs >= NARINFO_MAX_REFS)
                        return ringil_fail(-RINGIL_ETOOBIG, "narinfo line %u: more than %u references", line,
                                           NARINFO_MAX_REFS);
                if (n > NIX_STORE_PATH_MAX - 11)
                        return ringil_fail(-RINGIL_EMALFORMED, "narinfo line %u: reference too long", line);
                (void) snprintf(full, sizeof(full), "/nix/store/%.*s", (int) n, v);
                if (!nix_store_path_valid(full))
                        return ringil_fail(-RINGIL_EMALFORMED, "narinfo line %u: reference `%.*s' is not a store path name",
                                           line, (int) MIN(n, (size_t) 80), v);
                nr = reallocarray(ni->refs, ni->n_refs + 2, sizeof(char *));
                if (!nr)
                        return -ENOMEM;
                ni->refs = nr;
                ni->refs[ni->n_refs] = strndup(v, n);
                if (!ni->refs[ni->n_refs])
                        return -ENOMEM;
                ni->n_refs++;
                v += n;
        }
        return 0;
}

static int narinfo_field(struct narinfo *ni, const char *key, const char *v, unsigned line, bool seen[static 4]) {
        if (streq(key, "StorePath")) {
                if (!nix_store_path_valid(v))
                        return ringil_fail(-RINGIL_EMALFORMED, "narinfo line %u: StorePath is not a store path", line);
                return set_once(&ni->store_path, v, key, line);
        }
        if (streq(key, "URL")) {
                if (!url_valid(v))
                        return ringil_fail(-RINGIL_EMALFORMED, "narinfo line %u: URL `%.80s' is not nar/FILE", line, v);
                return set_once(&ni->url, v, key, line);
        }
        if (streq(key, "Compression")) {
                if (!compression_valid(v))
                        return ringil_fail(-RINGIL_EMALFORMED, "narinfo line %u: unknown compression `%.32s'", line, v);
                return set_once(&ni->compression, v, key, line);
        }
        if (streq(key, "FileHash") || streq(key, "NarHash")) {
                bool file = key[0] == 'F';
                if (seen[file ? 0 : 1])
                        return ringil_fail(-RINGIL_EMALFORMED, "narinfo line %u: %s given twice", line, key);
                if (parse_hash(v, file ? ni->file_hash : ni->nar_hash) < 0)
                        return ringil_fail(-RINGIL_EMALFORMED, "narinfo line %u: %s is not sha256:NIX32 or sha256:HEX",
                                           line, key);
                seen[file ? 0 : 1] = true;
                ni->has_file_hash |= file;
                return 0;
        }
        if (streq(key, "FileSize") || streq(key, "NarSize")) {
                bool file = key[0] == 'F';
                if (seen[file ? 2 : 3])
                        return ringil_fail(-RINGIL_EMALFORMED, "narinfo line %u: %s given twice", line, key);
                if (parse_u64(v, file ? &ni->file_size : &ni->nar_size) < 0)
                        return ringil_fail(-RINGIL_EMALFORMED, "narinfo line %u: %s `%.32s' is not a number", line,
                                           key, v);
                seen[file ? 2 : 3] = true;
                ni->has_file_size |= file;
                return 0;
        }
        if (streq(key, "References"))
                return parse_refs(ni, v, line);
        if (streq(key, "Sig")) {
                if (ni->n_sigs >= NARINFO_MAX_SIGS)
                        return ringil_fail(-RINGIL_ETOOBIG, "narinfo line %u: more than %u signatures", line,
                                           NARINFO_MAX_SIGS);
                ni->sigs[ni->n_sigs] = strdup(v);
                if (!ni->sigs[ni->n_sigs])
                        return -ENOMEM;
                ni->n_sigs++;
                return 0;
        }
        if (streq(key, "Deriver"))
                return set_once(&ni->deriver, v, key, line);
        if (streq(key, "CA"))
                return set_once(&ni->ca, v, key, line);
        return 0;   /* Nix skips keys it does not know (System, ...) */
}

int narinfo_parse(const char *text, size_t len, struct narinfo *ret) {
        struct narinfo ni = {};
        bool seen[4] = {};   /* FileHash, NarHash, FileSize, NarSize */
        unsigned line = 0;
        size_t pos = 0;
        int r = 0;

        if (len > NARINFO_MAX)
                return ringil_fail(-RINGIL_ETOOBIG, "narinfo larger than %u bytes", NARINFO_MAX);
        if (memchr(text, '\0', len))
                return ringil_fail(-RINGIL_EMALFORMED, "narinfo contains a NUL byte");
        while (pos < len && r >= 0) {
                const char *s = text + pos, *nl = memchr(s, '\n', len - pos), *colon;
                size_t n = nl ? (size_t) (nl - s) : len - pos;
                size_t klen, vstart;
                char key[32], *val;

                line++;
                pos += n + (nl ? 1 : 0);
                colon = memchr(s, ':', n);
                klen = colon ? (size_t) (colon - s) : 0;
                /* "Key: value"; "References: " may stop right after the space (or the colon). */
                if (!colon || klen == 0 || klen >= sizeof(key) || (klen + 1 < n && colon[1] != ' ')) {
                        r = ringil_fail(-RINGIL_EMALFORMED, "narinfo line %u is not `Key: value'", line);
                        break;
                }
                memcpy(key, s, klen);
                key[klen] = '\0';
                vstart = MIN(klen + 2, n);
                val = memdup_str(s + vstart, n - vstart);
                if (!val) {
                        r = -ENOMEM;
                        break;
                }
                r = narinfo_field(&ni, key, val, line, seen);
                free(val);
        }
        if (r >= 0 && (!ni.store_path || !ni.url || !seen[1] || !seen[3] || ni.nar_size == 0))
                r = ringil_fail(-RINGIL_EMALFORMED, "narinfo lacks one of StorePath, URL, NarHash, NarSize > 0");
        if (r >= 0 && !ni.compression && !(ni.compression = strdup("bzip2")))
                r = -ENOMEM;
        if (r < 0) {
                narinfo_done(&ni);
                return r;
        }
        *ret = ni;
        return 0;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int narinfo_fingerprint(const struct narinfo *ni, char **ret) {
        _cleanup_free_ char **sorted = NULL;
        struct buf b = BUF_INIT(NARINFO_MAX_REFS * (NIX_STORE_PATH_MAX + 1) + 4096);
        char h[NIX32_SHA256_LEN + 1];
        int r;

        nix32_encode(ni->nar_hash, 32, h);
        r = buf_printf(&b, "1;%s;sha256:%s;%" PRIu64 ";", ni->store_path, h, ni->nar_size);
        if (ni->n_refs > 0) {
                sorted = calloc(ni->n_refs, sizeof(char *));
                if (!sorted)
                        r = -ENOMEM;
                else {
                        memcpy(sorted, ni->refs, ni->n_refs * sizeof(char *));
                        qsort(sorted, ni->n_refs, sizeof(char *), cmp_str);
                }
        }
        for (size_t i = 0; r >= 0 && i < ni->n_refs; i++)
                r = buf_printf(&b, "%s/nix/store/%s", i ? "," : "", sorted[i]);
        if (r >= 0)
                r = buf_append(&b, "", 1);
        if (r < 0) {
                buf_free(&b);
                return r;
        }
        *ret = (char *) buf_steal(&b, NULL);
        return 0;
}

/* Find key `name' (n bytes) in "name:base64 name:base64 ..." and decode its 32 bytes. 1 found, 0 not, < 0 malformed. */
static int find_key(const char *keys, const char *name, size_t n, uint8_t pub[static 32]) {
        const char *k = keys;

        while (*k) {
                size_t len = strcspn(k, " \t\n"), nl;
                const char *colon = memchr(k, ':', len);

                if (len == 0) {
                        k++;
                        continue;
                }
                if (!colon || colon == k)
                        return -RINGIL_EMALFORMED;
                nl = (size_t) (colon - k);
                if (nl == n && memcmp(k, name, n) == 0)
                        return crypto_base64_decode(colon + 1, len - nl - 1, pub, 32) < 0 ? -RINGIL_EMALFORMED : 1;
                k += len;
        }
        return 0;
}

int narinfo_verify(const struct narinfo *ni, const char *trusted_keys) {
        _cleanup_free_ char *fp = NULL;
        bool named = false;
        int r;

        r = narinfo_fingerprint(ni, &fp);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ni->n_sigs; i++) {
                const char *s = ni->sigs[i], *colon = strchr(s, ':');
                uint8_t pub[32], sig[64];

                if (!colon || colon == s)
                        continue;   /* Nix ignores a malformed Sig line too */
                r = find_key(trusted_keys, s, (size_t) (colon - s), pub);
                if (r < 0)
                        return ringil_fail(r, "trusted-public-keys is malformed");
                if (r == 0)
                        continue;
                named = true;
                if (crypto_base64_decode(colon + 1, strlen(colon + 1), sig, 64) < 0)
                        continue;
                if (crypto_ed25519_verify(pub, fp, strlen(fp), sig) == 0)
                        return 0;
        }
        if (named)
                return ringil_fail(-RINGIL_EBADSIG, "narinfo of %s: the signature by a trusted key does not verify",
                                   ni->store_path);
        return ringil_fail(-RINGIL_EUNTRUSTED, "narinfo of %s is not signed by any key in trusted-public-keys",
                           ni->store_path);
}

/* ---- the mirror ---- */

/* A set of store-path hash parts (the 32 nix32 characters): open addressing, grown at half load. */
struct hashset {
        char (*slot)[33];
        size_t cap, n;
};

static size_t hs_index(const char *h, size_t cap) {
        uint64_t v = 0;

        for (int i = 0; i < 12; i++)   /* 60 bits of the hash part: already uniformly random */
                v = v << 5 | (uint64_t) (strchr(nix32_chars, h[i]) - nix32_chars);
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

struct pathlist {
        char **v;
        size_t n, cap;
};

static void pathlist_done(struct pathlist *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->v[i]);
        free(l->v);
        *l = (struct pathlist) {};
}

static int pathlist_add(struct pathlist *l, const char *p) {
        if (l->n == l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 64;
                char **v = reallocarray(l->v, cap, sizeof(char *));
                if (!v)
                        return -ENOMEM;
                l->v = v;
                l->cap = cap;
        }
        l->v[l->n] = strdup(p);
        if (!l->v[l->n])
                return -ENOMEM;
        l->n++;
        return 0;
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
        const struct pathlist *cur;
        const bool *inv;
        size_t *next;                   /* shared: the next index to take */
        int *stop;                      /* shared: set by the first failure */
        const char *keys;
        const struct nix_closure *pin;
        int root, nardir;
        struct nixcache_stats st;
        struct pathlist refs;           /* reference basenames found */
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
                        r = pathlist_add(&w->refs, ni.refs[k]);
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
static int fetch_level(const struct nixcache_source *src, size_t n_src, const struct pathlist *cur, const bool *inv,
                       const char *keys, const struct nix_closure *pin, int root, int nardir, struct nixcache_stats *st,
                       struct pathlist *refs) {
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
                        r = pathlist_add(refs, w[k].refs.v[i]);
                pathlist_done(&w[k].refs);
        }
        return r;
}

int nixcache_mirror(const struct nixcache_source *src, size_t n_src, const char *store_path, const char *trusted_keys,
                    const struct nix_closure *pin, nixcache_invalid_t invalid, void *invalid_userdata,
                    const char *dir, struct nixcache_stats *ret_stats) {
        static const char info[] = "StoreDir: /nix/store\nWantMassQuery: 0\nPriority: 10\n";
        struct nixcache_stats st = {};
        struct pathlist cur = {}, next = {}, refs = {};
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
                r = pathlist_add(&cur, store_path);
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
                        r = pathlist_add(&next, full);
                }
                pathlist_done(&refs);
                pathlist_done(&cur);
                cur = next;
                next = (struct pathlist) {};
        }
        pathlist_done(&cur);
        pathlist_done(&next);
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

/* ---- the closure listing ---- */

void nix_closure_done(struct nix_closure *c) {
        if (!c)
                return;
        free(c->v);
        *c = (struct nix_closure) {};
}

static int cmp_entry(const void *a, const void *b) {
        return strcmp(((const struct nix_closure_entry *) a)->path, ((const struct nix_closure_entry *) b)->path);
}

const struct nix_closure_entry *nix_closure_find(const struct nix_closure *c, const char *path) {
        struct nix_closure_entry key;

        if (!c || strlen(path) > NIX_STORE_PATH_MAX)
                return NULL;
        memcpy(key.path, path, strlen(path) + 1);
        return bsearch(&key, c->v, c->n, sizeof(*c->v), cmp_entry);
}

static const char closure_header[] = "ringil-nix-closure 1\n";

/* A new zeroed entry at the end of c (capped at NIX_CLOSURE_MAX paths). */
static int closure_append(struct nix_closure *c, size_t *cap, struct nix_closure_entry **ret) {
        if (c->n >= NIX_CLOSURE_MAX)
                return ringil_fail(-RINGIL_ETOOBIG, "closure has more than %u paths", NIX_CLOSURE_MAX);
        if (c->n == *cap) {
                struct nix_closure_entry *v = reallocarray(c->v, *cap ? *cap * 2 : 64, sizeof(*v));
                if (!v)
                        return -ENOMEM;
                c->v = v;
                *cap = *cap ? *cap * 2 : 64;
        }
        *ret = memset(&c->v[c->n++], 0, sizeof(**ret));
        return 0;
}

int nix_closure_parse(const char *text, size_t len, struct nix_closure *ret) {
        struct nix_closure c = {};
        size_t pos = sizeof(closure_header) - 1, cap = 0;
        unsigned line = 1;
        int r = 0;

        if (len > NIX_CLOSURE_LIST_MAX)
                return ringil_fail(-RINGIL_ETOOBIG, "closure listing larger than %u bytes", NIX_CLOSURE_LIST_MAX);
        if (len < pos || memcmp(text, closure_header, pos) != 0)
                return ringil_fail(-RINGIL_EMALFORMED, "closure listing: no `ringil-nix-closure 1' header");
        if (memchr(text, '\0', len))
                return ringil_fail(-RINGIL_EMALFORMED, "closure listing contains a NUL byte");
        while (pos < len) {
                const char *s = text + pos, *nl = memchr(s, '\n', len - pos), *sp1, *sp2;
                char hash[NIX32_SHA256_LEN + 1], num[24];
                struct nix_closure_entry *e;
                size_t n, pl;

                line++;
                if (!nl) {
                        r = ringil_fail(-RINGIL_EMALFORMED, "closure listing line %u: no final newline", line);
                        break;
                }
                n = (size_t) (nl - s);
                pos += n + 1;
                sp1 = memchr(s, ' ', n);
                sp2 = sp1 ? memchr(sp1 + 1, ' ', n - (size_t) (sp1 + 1 - s)) : NULL;
                pl = sp1 ? (size_t) (sp1 - s) : 0;
                if (!sp2 || pl > NIX_STORE_PATH_MAX || (size_t) (sp2 - sp1 - 1) != 7 + NIX32_SHA256_LEN ||
                    strncmp(sp1 + 1, "sha256:", 7) != 0 || (size_t) (nl - sp2 - 1) == 0 ||
                    (size_t) (nl - sp2 - 1) >= sizeof(num)) {
                        r = ringil_fail(-RINGIL_EMALFORMED, "closure listing line %u is not `PATH sha256:NIX32 NARSIZE'", line);
                        break;
                }
                r = closure_append(&c, &cap, &e);
                if (r < 0)
                        break;
                memcpy(e->path, s, pl);
                e->path[pl] = '\0';
                memcpy(hash, sp1 + 8, NIX32_SHA256_LEN);
                hash[NIX32_SHA256_LEN] = '\0';
                memcpy(num, sp2 + 1, (size_t) (nl - sp2 - 1));
                num[nl - sp2 - 1] = '\0';
                if (!nix_store_path_valid(e->path) || nix32_decode(hash, e->nar_hash, 32) < 0 ||
                    num[0] == '0' || parse_u64(num, &e->nar_size) < 0 || e->nar_size == 0) {   /* "088": not canonical */
                        r = ringil_fail(-RINGIL_EMALFORMED, "closure listing line %u: bad path, hash or size", line);
                        break;
                }
                /* Canonical: strictly ascending, so one closure has exactly one listing. */
                if (c.n > 1 && strcmp(c.v[c.n - 2].path, e->path) >= 0) {
                        r = ringil_fail(-RINGIL_EMALFORMED, "closure listing line %u: paths not strictly sorted", line);
                        break;
                }
        }
        if (r >= 0 && c.n == 0)
                r = ringil_fail(-RINGIL_EMALFORMED, "closure listing is empty");
        if (r < 0) {
                nix_closure_done(&c);
                return r;
        }
        *ret = c;
        return 0;
}

int nix_hash_parse(const char *v, uint8_t out[static 32]) {
        if (strncmp(v, "sha256-", 7) == 0)
                return crypto_base64_decode(v + 7, strlen(v + 7), out, 32);
        return parse_hash(v, out);
}

static int add_path_info(struct nix_closure *c, size_t *cap, const char *path, json_t *o) {
        const char *nh = json_string_value(json_object_get(o, "narHash"));
        json_t *ns = json_object_get(o, "narSize");
        struct nix_closure_entry *e;
        int r;

        if (!path || !nix_store_path_valid(path) || !nh || !json_is_integer(ns) || json_integer_value(ns) <= 0)
                return ringil_fail(-RINGIL_EMALFORMED, "nix path-info: an entry lacks path, narHash or narSize");
        r = closure_append(c, cap, &e);
        if (r < 0)
                return r;
        memcpy(e->path, path, strlen(path) + 1);
        if (nix_hash_parse(nh, e->nar_hash) < 0)
                return ringil_fail(-RINGIL_EMALFORMED, "nix path-info: narHash `%.80s' of %s", nh, path);
        e->nar_size = (uint64_t) json_integer_value(ns);
        return 0;
}

int nix_closure_from_path_info(const char *json, size_t len, struct nix_closure *ret) {
        struct nix_closure c = {};
        json_error_t err;
        json_t *j, *o;
        size_t cap = 0;
        int r = 0;

        j = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
        if (!j)
                return ringil_fail(-RINGIL_EMALFORMED, "nix path-info: %s", err.text);
        if (json_is_array(j)) {   /* Nix 2.8: [{"path": ..., "narHash": ..., ...}] */
                size_t i;
                json_array_foreach(j, i, o) {
                        r = add_path_info(&c, &cap, json_string_value(json_object_get(o, "path")), o);
                        if (r < 0)
                                break;
                }
        } else if (json_is_object(j)) {   /* newer Nix: {"/nix/store/...": {...}} */
                const char *k;
                json_object_foreach(j, k, o) {
                        r = add_path_info(&c, &cap, k, o);
                        if (r < 0)
                                break;
                }
        } else
                r = ringil_fail(-RINGIL_EMALFORMED, "nix path-info: not a JSON array or object");
        json_decref(j);
        if (r >= 0 && c.n == 0)
                r = ringil_fail(-RINGIL_EMALFORMED, "nix path-info listed no path");
        if (r >= 0) {
                qsort(c.v, c.n, sizeof(*c.v), cmp_entry);
                for (size_t i = 1; i < c.n && r >= 0; i++)
                        if (streq(c.v[i - 1].path, c.v[i].path))
                                r = ringil_fail(-RINGIL_EMALFORMED, "nix path-info lists %s twice", c.v[i].path);
        }
        if (r < 0) {
                nix_closure_done(&c);
                return r;
        }
        *ret = c;
        return 0;
}

int nix_closure_format(const struct nix_closure *c, struct buf *ret) {
        struct buf b = BUF_INIT(NIX_CLOSURE_LIST_MAX);
        int r = buf_append_str(&b, closure_header);

        for (size_t i = 0; r >= 0 && i < c->n; i++) {
                char h[NIX32_SHA256_LEN + 1];
                nix32_encode(c->v[i].nar_hash, 32, h);
                r = buf_printf(&b, "%s sha256:%s %" PRIu64 "\n", c->v[i].path, h, c->v[i].nar_size);
        }
        if (r < 0) {
                buf_free(&b);
                return r;
        }
        *ret = b;
        return 0;
}

int nix_closure_compare(const struct nix_closure *want, const struct nix_closure *got) {
        size_t i = 0, k = 0;

        while (i < want->n || k < got->n) {
                int c = i >= want->n ? 1 : k >= got->n ? -1 : strcmp(want->v[i].path, got->v[k].path);
                if (c < 0)
                        return ringil_fail(-RINGIL_EDIGEST, "%s of the signed closure is not in the installed one", want->v[i].path);
                if (c > 0)
                        return ringil_fail(-RINGIL_EDIGEST, "%s is in the installed closure but not in the signed one", got->v[k].path);
                if (crypto_memcmp(want->v[i].nar_hash, got->v[k].nar_hash, 32) != 0 || want->v[i].nar_size != got->v[k].nar_size)
                        return ringil_fail(-RINGIL_EDIGEST, "%s: the installed NAR hash differs from the signed closure's",
                                           want->v[i].path);
                i++;
                k++;
        }
        return 0;
}
