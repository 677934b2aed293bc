/* bundle-create.c: making a bundle: hash the payloads, write and sign the canonical manifest, copy the
 * payloads (sparse stays sparse), re-check the written bytes, then rename into place. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bundle-internal.h"
#include "cdc.h"
#include "crypto.h"
#include "err.h"
#include "fileio.h"
#include "progress.h"

static int sign_manifest(const struct bundle_create_opts *o, const char *manifest, size_t len, uint8_t **ret,
                         size_t *ret_len) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        _cleanup_x509_stack_ STACK_OF(X509) *extra = sk_X509_new_null();
        _cleanup_(CMS_ContentInfo_freep) CMS_ContentInfo *cms = NULL;
        _cleanup_(BIO_free_allp) BIO *in = NULL;
        const unsigned flags = CMS_BINARY | CMS_DETACHED | CMS_PARTIAL | CMS_NOSMIMECAP;
        unsigned char *der = NULL;
        int r, n;

        if (!extra)
                return -ENOMEM;
        r = crypto_load_private_key(o->key, &key);
        if (r < 0)
                return r;
        r = crypto_load_cert(o->cert, &cert);
        if (r < 0)
                return r;
        if (X509_check_private_key(cert, key) != 1)
                return crypto_fail(-RINGIL_EMALFORMED, "signing key does not match the certificate");
        for (const char *const *i = o->intermediates; i && *i; i++) {
                _cleanup_x509_stack_ STACK_OF(X509) *sk = NULL;
                r = crypto_load_certs(*i, &sk);
                if (r < 0)
                        return r;
                while (sk_X509_num(sk) > 0) {
                        X509 *x = sk_X509_shift(sk);
                        if (!sk_X509_push(extra, x)) {
                                X509_free(x);
                                return -ENOMEM;
                        }
                }
        }
        in = BIO_new_mem_buf(manifest, (int) len);
        if (!in)
                return -ENOMEM;
        cms = CMS_sign(NULL, NULL, extra, NULL, flags);
        if (!cms)
                return crypto_fail(-EIO, "CMS_sign");
        if (!CMS_add1_signer(cms, cert, key, EVP_sha256(), flags))
                return crypto_fail(-EIO, "CMS_add1_signer");
        if (CMS_final(cms, in, NULL, flags) != 1)
                return crypto_fail(-EIO, "CMS_final");
        n = i2d_CMS_ContentInfo(cms, &der);
        if (n <= 0)
                return crypto_fail(-EIO, "CMS encoding");
        if ((size_t) n > BUNDLE_MAX_SIGNATURE) {
                OPENSSL_free(der);
                return ringil_fail(-RINGIL_ETOOBIG, "signature with certificates is %d bytes, cap %u", n,
                                   BUNDLE_MAX_SIGNATURE);
        }
        *ret = malloc((size_t) n);
        if (!*ret) {
                OPENSSL_free(der);
                return -ENOMEM;
        }
        memcpy(*ret, der, (size_t) n);
        OPENSSL_free(der);
        *ret_len = (size_t) n;
        return 0;
}

/* Copy len bytes of in (from 0) to out at base, skipping holes so a sparse payload stays sparse. */
static int copy_sparse(int in, int out, uint64_t base, uint64_t len) {
        _cleanup_free_ uint8_t *buf = NULL;
        uint64_t off = 0;

        while (off < len) {
                off_t data = lseek(in, (off_t) off, SEEK_DATA), hole;
                if (data < 0) {
                        if (errno == ENXIO) {
                                progress_add(len - off);
                                break;   /* only a hole remains: ftruncate makes it */
                        }
                        if (errno != EINVAL)
                                return negative_errno();
                        data = (off_t) off;   /* no SEEK_DATA on this fs: copy everything */
                        hole = (off_t) len;
                } else {
                        hole = lseek(in, data, SEEK_HOLE);
                        if (hole < 0)
                                return negative_errno();
                }
                if ((uint64_t) hole > len)
                        hole = (off_t) len;
                if ((uint64_t) data > off)
                        progress_add(MIN((uint64_t) data, len) - off);   /* a hole: nothing to copy, but done */
                while (data < hole) {
                        loff_t src = data, dst = (loff_t) (base + (uint64_t) data);
                        ssize_t k = copy_file_range(in, &src, out, &dst, (size_t) MIN((uint64_t) (hole - data), 1u << 30), 0);
                        if (k < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
                                size_t n = (size_t) MIN((uint64_t) (hole - data), (uint64_t) BUNDLE_WINDOW);
                                ssize_t got;
                                int r;
                                if (!buf && !(buf = malloc(BUNDLE_WINDOW)))
                                        return -ENOMEM;
                                got = pread(in, buf, n, data);
                                if (got <= 0)
                                        return got < 0 ? negative_errno() : -EIO;
                                r = pwrite_all(out, buf, (size_t) got, (off_t) (base + (uint64_t) data));
                                if (r < 0)
                                        return r;
                                k = got;
                        } else if (k < 0) {
                                if (errno == EINTR)
                                        continue;
                                return negative_errno();
                        } else if (k == 0)
                                return -EIO;   /* the input shrank under us */
                        progress_add((uint64_t) k);
                        data += k;
                }
                off = (uint64_t) hole;
        }
        return 0;
}

/*
 * Content-defined chunking of a payload file: read it once through a buffer of one window plus one
 * largest chunk, cut it with the chunker, hash each chunk and the whole payload. The chunk list grows as
 * it goes, capped by chunks_left.
 */
static int hash_payload_cdc(int fd, struct bundle_payload *pl, const struct cdc *c, uint64_t chunks_left) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *whole = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t cap = BUNDLE_WINDOW + c->max, have = 0, used = 0, alloc = 0;
        uint64_t pos = 0, read_to = 0;
        int r;

        buf = malloc(cap);
        if (!buf)
                return -ENOMEM;
        r = crypto_sha256_begin(&whole);
        if (r < 0)
                return r;
        pl->n_chunks = 0;
        while (pos < pl->size) {
                size_t n;
                if (have - used < c->max && read_to < pl->size) {
                        /* Keep what is left at the front, fill the rest. */
                        memmove(buf, buf + used, have - used);
                        have -= used;
                        used = 0;
                        while (have < cap && read_to < pl->size) {
                                ssize_t k = pread(fd, buf + have, (size_t) MIN((uint64_t) (cap - have), pl->size - read_to),
                                                  (off_t) read_to);
                                if (k < 0 && errno == EINTR)
                                        continue;
                                if (k <= 0)
                                        return k < 0 ? negative_errno() : -EIO;   /* shrank while hashed */
                                r = crypto_sha256_update(whole, buf + have, (size_t) k);
                                if (r < 0)
                                        return r;
                                have += (size_t) k;
                                read_to += (uint64_t) k;
                        }
                }
                n = cdc_next(c, buf + used, have - used, read_to == pl->size);
                if (n == 0)
                        return -EIO;   /* cannot happen: at least max bytes or the end are buffered */
                if (pl->n_chunks == chunks_left)
                        return ringil_fail(-RINGIL_ETOOBIG, "payloads need more than %u chunks; use a larger average chunk size",
                                           BUNDLE_MAX_CHUNKS);
                if (pl->n_chunks == alloc) {
                        size_t na = alloc ? alloc * 2 : 1024;
                        void *h = reallocarray(pl->chunk_sha256, na, SHA256_LEN), *e;
                        if (!h)
                                return -ENOMEM;
                        pl->chunk_sha256 = h;
                        e = reallocarray(pl->chunk_end, na, sizeof(uint64_t));
                        if (!e)
                                return -ENOMEM;
                        pl->chunk_end = e;
                        alloc = na;
                }
                r = crypto_sha256(buf + used, n, pl->chunk_sha256[pl->n_chunks]);
                if (r < 0)
                        return r;
                pos += n;
                used += n;
                pl->chunk_end[pl->n_chunks++] = pos;
                progress_add(n);
        }
        return crypto_sha256_final(TAKE_PTR(whole), pl->sha256);   /* frees the context */
}

static bool valid_chars(const char *s, size_t max, const char *extra) {
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > max)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
                      strchr(extra, s[i])))
                        return false;
        return true;
}

struct create_state {
        struct bundle_manifest m;
        int *fds;
};

static void create_state_done(struct create_state *s) {
        for (size_t i = 0; i < s->m.n_payloads; i++) {
                safe_close(s->fds[i]);
                free(s->m.payloads[i].chunk_sha256);
                free(s->m.payloads[i].chunk_end);
        }
        free(s->m.payloads);
        free(s->fds);
}

static int write_bundle(const char *output, const uint8_t *header, const char *manifest, size_t mlen,
                        const uint8_t *sig, size_t slen, struct create_state *s, uint64_t total) {
        _cleanup_free_ char *dir = NULL, *tmp = NULL;
        _cleanup_close_ int fd = -EBADF;
        const char *slash = strrchr(output, '/');
        bool detailed = false;   /* r's detail is already recorded and more precise than "cannot write" */
        uint64_t pos;
        int r;

        dir = slash ? strndup(output, (size_t) (slash - output) + 1) : strdup("./");
        if (!dir || asprintf(&tmp, "%s.#bundle.XXXXXX", dir) < 0)
                return -ENOMEM;
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return ringil_fail(negative_errno(), "cannot create a temporary file next to '%s'", output);
        r = write_all(fd, header, BUNDLE_HEADER_SIZE);
        if (r >= 0)
                r = write_all(fd, manifest, mlen);
        if (r >= 0)
                r = write_all(fd, sig, slen);
        pos = BUNDLE_HEADER_SIZE + mlen + slen;
        progress_step("copying the payloads", total - pos);
        for (size_t i = 0; r >= 0 && i < s->m.n_payloads; i++) {
                struct stat st;
                if (s->fds[i] < 0)
                        continue;
                /* The input must not have changed size since it was hashed. */
                if (fstat(s->fds[i], &st) < 0)
                        r = negative_errno();
                else if ((uint64_t) st.st_size != s->m.payloads[i].size) {
                        r = ringil_fail(-EIO, "payload '%s' changed while the bundle was made", s->m.payloads[i].name);
                        detailed = true;
                } else
                        r = copy_sparse(s->fds[i], fd, pos, s->m.payloads[i].size);
                pos += s->m.payloads[i].size;
        }
        if (r >= 0 && ftruncate(fd, (off_t) total) < 0)
                r = negative_errno();
        /* INVARIANT: a bundle is renamed into place only after its written payload bytes were checked
         * against the chunk hashes just signed. The input was hashed in one pass and copied in another:
         * a same-size rewrite in between would otherwise give a bundle that fails its own signature. */
        pos = BUNDLE_HEADER_SIZE + mlen + slen;
        if (r >= 0)
                progress_step("checking the written payloads against their hashes", total - pos);
        for (size_t i = 0; r >= 0 && i < s->m.n_payloads; i++) {
                const struct bundle_payload *pl = &s->m.payloads[i];
                if (pl->size > 0) {
                        r = bundle_verify_payload_file(fd, pos, pl);
                        if (r < 0) {
                                char why[256];   /* not ringil_detail() itself: ringil_fail writes there */
                                snprintf(why, sizeof(why), "%s", ringil_detail());
                                r = ringil_fail(r == -RINGIL_EDIGEST ? -EIO : r, "payload '%s' changed while the bundle was made: %s",
                                                pl->name, why);
                                detailed = true;
                        }
                }
                pos += pl->size;
        }
        if (r >= 0 && fchmod(fd, 0644) < 0)
                r = negative_errno();
        if (r >= 0 && fsync(fd) < 0)
                r = negative_errno();
        if (r >= 0 && rename(tmp, output) < 0)
                r = negative_errno();
        if (r < 0) {
                progress_abort();
                (void) unlink(tmp);
                return detailed ? r : ringil_fail(r, "cannot write '%s': %s", output, strerror(-r));
        }
        progress_done();
        return fsync_parent_dir(output);
}

int bundle_create(const struct bundle_create_opts *o, const char *output) {
        _cleanup_(create_state_done) struct create_state s = {};
        _cleanup_(bundle_manifest_freep) struct bundle_manifest *check = NULL;
        _cleanup_free_ char *manifest = NULL;
        _cleanup_free_ uint8_t *sig = NULL;
        _cleanup_free_ uint64_t *offsets = NULL;
        uint8_t header[BUNDLE_HEADER_SIZE] = {};
        uint32_t cs = o->chunk_size ? o->chunk_size : BUNDLE_DEFAULT_CHUNK_SIZE;
        uint64_t chunks_left = BUNDLE_MAX_CHUNKS, total = 0;
        bool use_cdc = o->cdc_min || o->cdc_avg || o->cdc_max;
        struct cdc cdc = {};
        size_t mlen = 0, slen = 0;
        int r;

        if (!o->key || !o->cert || !output)
                return ringil_fail(-EINVAL, "key, certificate and output are required");
        if (!valid_chars(o->compatible, BUNDLE_MAX_COMPATIBLE, "._:+-"))
                return ringil_fail(-EINVAL, "compatible must be 1..%u of [A-Za-z0-9._:+-]", BUNDLE_MAX_COMPATIBLE);
        if (version_valid(o->version) < 0)
                return ringil_fail(-EINVAL, "version '%s' is not dot-numeric (e.g. 1.2.10)", o->version ? o->version : "");
        if (cs < BUNDLE_MIN_CHUNK_SIZE || cs > BUNDLE_MAX_CHUNK_SIZE || (cs & (cs - 1)) != 0)
                return ringil_fail(-EINVAL, "chunk size %u is not a power of two in [4 KiB, 64 MiB]", cs);
        if (o->n_payloads == 0 || o->n_payloads > BUNDLE_MAX_PAYLOADS)
                return ringil_fail(-EINVAL, "1..%u payloads required", BUNDLE_MAX_PAYLOADS);
        if (use_cdc && cdc_init(&cdc, o->cdc_min, o->cdc_avg, o->cdc_max) < 0)
                return ringil_fail(-EINVAL, "content-defined chunk sizes %u/%u/%u: need powers of two 4K <= min < avg < max <= 64M",
                                   o->cdc_min, o->cdc_avg, o->cdc_max);

        s.m.format = BUNDLE_FORMAT;
        s.m.compatible = (char *) o->compatible;
        s.m.version = (char *) o->version;
        s.m.created = o->created ? o->created : (int64_t) time(NULL);
        s.m.expires = o->expires;
        if (s.m.created < 0 || s.m.expires <= s.m.created)
                return ringil_fail(-EINVAL, "expiry must be after the creation time");
        s.m.payloads = calloc(o->n_payloads, sizeof(*s.m.payloads));
        s.fds = malloc(o->n_payloads * sizeof(int));
        if (!s.m.payloads || !s.fds)
                return -ENOMEM;
        for (size_t i = 0; i < o->n_payloads; i++) {
                const struct bundle_create_payload *cp = &o->payloads[i];
                struct bundle_payload *pl = &s.m.payloads[i];
                struct stat st;

                s.fds[i] = -EBADF;
                s.m.n_payloads = i + 1;
                if (!valid_chars(cp->name, BUNDLE_MAX_NAME, "._-"))
                        return ringil_fail(-EINVAL, "payload name '%s' must be 1..%u of [A-Za-z0-9._-]", cp->name ? cp->name : "",
                                           BUNDLE_MAX_NAME);
                for (size_t j = 0; j < i; j++)
                        if (streq(o->payloads[j].name, cp->name))
                                return ringil_fail(-EINVAL, "duplicate payload name '%s'", cp->name);
                pl->name = (char *) cp->name;
                pl->type = cp->type;
                pl->chunk_size = cs;
                pl->store_path = (char *) cp->store_path;
                pl->cache_url = (char *) cp->cache_url;
                if (!cp->path) {
                        if (cp->type != BUNDLE_PAYLOAD_NIXOS)
                                return ringil_fail(-EINVAL, "payload '%s' needs a file", cp->name);
                        r = crypto_sha256("", 0, pl->sha256);
                        if (r < 0)
                                return r;
                        continue;
                }
                s.fds[i] = open(cp->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (s.fds[i] < 0)
                        return ringil_fail(negative_errno(), "cannot open payload '%s'", cp->path);
                if (fstat(s.fds[i], &st) < 0)
                        return negative_errno();
                if (!S_ISREG(st.st_mode))
                        return ringil_fail(-EINVAL, "payload '%s' is not a regular file", cp->path);
                pl->size = (uint64_t) st.st_size;
                if (use_cdc && cp->type == BUNDLE_PAYLOAD_RAW) {
                        char what[128];
                        pl->cdc = true;
                        pl->cdc_min = cdc.min;
                        pl->cdc_avg = cdc.avg;
                        pl->cdc_max = cdc.max;
                        pl->chunk_size = cdc.max;
                        s.m.format = BUNDLE_FORMAT_CDC;
                        if (pl->size > (uint64_t) cdc.max * BUNDLE_MAX_CHUNKS)
                                return ringil_fail(-RINGIL_ETOOBIG, "payload '%s' is too large for %u-byte chunks", cp->name, cdc.max);
                        (void) posix_fadvise(s.fds[i], 0, 0, POSIX_FADV_SEQUENTIAL);
                        (void) snprintf(what, sizeof(what), "hashing payload '%s'", cp->name);
                        progress_step(what, pl->size);
                        r = hash_payload_cdc(s.fds[i], pl, &cdc, chunks_left);
                        if (r < 0) {
                                char why[256];
                                progress_abort();
                                snprintf(why, sizeof(why), "%s", ringil_detail());
                                return ringil_fail(r, "cannot hash payload '%s': %s", cp->path, why);
                        }
                        progress_done();
                        chunks_left -= pl->n_chunks;
                        continue;
                }
                pl->n_chunks = bundle_chunks_for(pl->size, cs);
                if (pl->n_chunks > chunks_left)
                        return ringil_fail(-RINGIL_ETOOBIG, "payloads need more than %u chunks; use a larger --chunk-size",
                                           BUNDLE_MAX_CHUNKS);
                chunks_left -= pl->n_chunks;
                if (pl->n_chunks > 0) {
                        pl->chunk_sha256 = calloc(pl->n_chunks, SHA256_LEN);
                        if (!pl->chunk_sha256)
                                return -ENOMEM;
                }
                (void) posix_fadvise(s.fds[i], 0, 0, POSIX_FADV_SEQUENTIAL);
                {
                        char what[128];
                        (void) snprintf(what, sizeof(what), "hashing payload '%s'", cp->name);
                        progress_step(what, pl->size);
                }
                r = bundle_hash_payload(NULL, s.fds[i], 0, pl, pl->chunk_sha256, pl->sha256);
                if (r >= 0)
                        progress_done();
                else
                        progress_abort();
                if (r < 0) {
                        char why[256];   /* not ringil_detail() itself: ringil_fail writes there */
                        snprintf(why, sizeof(why), "%s", ringil_detail());
                        return ringil_fail(r, "cannot hash payload '%s': %s", cp->path, why);
                }
        }
        r = bundle_manifest_format(&s.m, &manifest, &mlen);
        if (r < 0)
                return r;
        /* Never emit what verification would refuse: parse our own output with the strict parser. */
        r = bundle_manifest_parse((const uint8_t *) manifest, mlen, &check);
        if (r < 0)
                return r;
        r = sign_manifest(o, manifest, mlen, &sig, &slen);
        if (r < 0)
                return r;
        r = bundle_compute_layout(&s.m, (uint32_t) mlen, (uint32_t) slen, &offsets, &total);
        if (r < 0)
                return r;
        memcpy(header, bundle_magic, sizeof(bundle_magic));
        put_be32(header + 8, BUNDLE_FORMAT);
        put_be32(header + 16, (uint32_t) mlen);
        put_be32(header + 20, (uint32_t) slen);
        return write_bundle(output, header, manifest, mlen, sig, slen, &s, total);
}
