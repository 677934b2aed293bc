/* nixpublish.c: the operator's publish routes into the fleet's Nix cache: which paths it lacks, and signed, hash-checked NAR uploads. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "crypto.h"
#include "err.h"
#include "fileio.h"
#include "log.h"
#include "nix-cache.h"
#include "nix-publish.h"
#include "server.h"

#define CACHE_INFO "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n"
#define COPY_CHUNK (256u * 1024)

uint64_t api_nix_upload_max_body(uint64_t max_upload) {
        const uint64_t envelope = NIX_UPLOAD_HEADER_MAX + NARINFO_MAX;
        return max_upload > UINT64_MAX - envelope ? UINT64_MAX : max_upload + envelope;
}

/* Refuse an upload: counted, logged once, answered with the reason (and r's text when r < 0). */
static int refuse(struct route_ctx *x, int status, int r, const char *fmt, ...) _printf_(4, 5);
static int refuse(struct route_ctx *x, int status, int r, const char *fmt, ...) {
        char msg[512];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        atomic_fetch_add(&x->srv->m.nix_uploads_refused, 1);
        log_notice("nix-cache upload refused: %s", msg);
        return tp_respond_error(x->resp, status, "%s%s%s", msg, r < 0 ? ": " : "", r < 0 ? ringil_strerror(r) : "");
}

static int respond_json(struct route_ctx *x, int status, json_t *j) {
        _cleanup_free_ char *out = j ? json_dumps(j, JSON_COMPACT) : NULL;

        json_decref(j);
        if (!out || tp_respond(x->resp, status, "application/json", out, strlen(out)) < 0)
                return tp_respond_error(x->resp, 500, "out of memory");
        return status;
}

/* Publishing needs a cache and the keys its narinfos must be signed with. */
static bool can_publish(struct route_ctx *x) {
        if (x->srv->nix_cache_fd >= 0 && x->srv->cfg.nix_trusted_keys)
                return true;
        tp_respond_error(x->resp, 501, "this server has no nix-cache with nix-trusted-public-keys to publish into");
        return false;
}

/* 1 when HASHPART.narinfo is a regular file of the cache, 0 when absent, < 0 on other errors. */
static int have_narinfo(int dfd, const char *hashpart) {
        char name[48];
        struct stat st;

        (void) snprintf(name, sizeof(name), "%.32s.narinfo", hashpart);
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : negative_errno();
        return S_ISREG(st.st_mode) ? 1 : 0;
}

static bool hashpart_valid(const char *s) {
        static const char nix32[] = "0123456789abcdfghijklmnpqrsvwxyz";
        return strlen(s) == 32 && strspn(s, nix32) == 32;
}

/* POST /api/v1/nix-cache/missing {"paths": [...]} → {"missing": [...]}: what a publisher must still send.
 * The body arrives in memory (at most SERVER_NIX_MISSING_MAX_BODY bytes; the transport answers 413 above). */
int api_nix_missing(struct route_ctx *x) {
        const struct tp_request *req = x->req;
        json_t *j, *paths, *missing, *v;
        json_error_t e;
        size_t i;
        int r = 0;

        if (!can_publish(x))
                return 501;
        j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &e);
        paths = j ? json_object_get(j, "paths") : NULL;
        if (!json_is_array(paths) || json_object_size(j) != 1 || json_array_size(paths) > NIX_CLOSURE_MAX) {
                json_decref(j);
                return tp_respond_error(x->resp, 400, "expected {\"paths\": [STORE PATH, ...]} (at most %u)", NIX_CLOSURE_MAX);
        }
        missing = json_array();
        if (!missing)
                r = -ENOMEM;
        json_array_foreach(paths, i, v) {
                const char *p = json_string_value(v);
                if (r < 0)
                        break;
                if (!p || !nix_store_path_valid(p)) {
                        json_decref(missing);
                        json_decref(j);
                        return tp_respond_error(x->resp, 400, "entry %zu is not a store path", i);
                }
                r = have_narinfo(x->srv->nix_cache_fd, p + 11);
                if (r == 0)
                        r = json_array_append_new(missing, json_string(p)) < 0 ? -ENOMEM : 0;
        }
        json_decref(j);
        if (r < 0) {
                json_decref(missing);
                return tp_respond_error(x->resp, 500, "cannot look into the cache: %s", ringil_strerror(r));
        }
        return respond_json(x, 200, json_pack("{s:o}", "missing", missing));
}

/* The narinfo the cache serves: written by us from the verified, signed fields (URL, Compression,
 * FileHash and FileSize are not signed: the uploader's are not kept). */
static int canonical_narinfo(const struct narinfo *ni, struct buf *ret) {
        struct nix_path_info p = { .nar_size = ni->nar_size, .n_refs = ni->n_refs, .n_sigs = ni->n_sigs };
        _cleanup_free_ char **refs = calloc(ni->n_refs + 1, sizeof(char *));
        char *deriver = NULL;
        int r = 0;

        if (!refs)
                return -ENOMEM;
        memcpy(p.path, ni->store_path, strlen(ni->store_path) + 1);
        memcpy(p.nar_hash, ni->nar_hash, 32);
        for (size_t i = 0; i < ni->n_refs && r >= 0; i++)
                if (asprintf(&refs[i], "/nix/store/%s", ni->refs[i]) < 0) {
                        refs[i] = NULL;
                        r = -ENOMEM;
                }
        if (r >= 0 && ni->deriver && asprintf(&deriver, "/nix/store/%s", ni->deriver) < 0) {
                deriver = NULL;
                r = -ENOMEM;
        }
        if (r >= 0) {
                p.refs = refs;
                p.deriver = deriver;
                p.sigs = (char **) ni->sigs;
                r = nix_narinfo_format(&p, ret);
        }
        for (size_t i = 0; i < ni->n_refs; i++)
                free(refs[i]);
        free(deriver);
        return r;
}

/* nar/ below the cache, made on the first upload; never a symlink. */
static int open_nar_dir(int cache_fd) {
        int fd = openat(cache_fd, "nar", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

        if (fd < 0 && errno == ENOENT) {
                if (mkdirat(cache_fd, "nar", 0755) < 0 && errno != EEXIST)
                        return negative_errno();
                fd = openat(cache_fd, "nar", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        return fd < 0 ? negative_errno() : fd;
}

/* An unnamed file in nar/ (O_TMPFILE): a refused or interrupted upload leaves nothing behind. */
static int open_nar_tmp(int nar_fd) {
        int fd = openat(nar_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
        return fd < 0 ? negative_errno() : fd;
}

/* Read len bytes of the spooled body from off. */
static int spool_read(const struct tp_request *req, uint64_t off, void *p, size_t len) {
        if (lseek(req->spool_fd, (off_t) off, SEEK_SET) < 0)
                return negative_errno();
        return read_exact(req->spool_fd, p, len);
}

/*
 * Copy the NAR (len bytes of the spooled body from off) into fd, hashing what is written.
 * Returns 0, -ENOSPC-style errors of the cache's file system, or the spool's read errors.
 */
static int copy_nar(const struct tp_request *req, uint64_t off, uint64_t len, int fd, uint8_t digest[static SHA256_LEN]) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = NULL;
        _cleanup_free_ uint8_t *chunk = malloc(COPY_CHUNK);
        int r;

        if (!chunk)
                return -ENOMEM;
        if (lseek(req->spool_fd, (off_t) off, SEEK_SET) < 0)
                return negative_errno();
        r = crypto_sha256_begin(&md);
        while (r >= 0 && len > 0) {
                size_t k = (size_t) MIN(len, (uint64_t) COPY_CHUNK);
                r = read_exact(req->spool_fd, chunk, k);
                if (r >= 0)
                        r = write_all(fd, chunk, k);
                if (r >= 0)
                        r = crypto_sha256_update(md, chunk, k);
                len -= k;
        }
        if (r < 0)
                return r;
        r = crypto_sha256_final(md, digest);
        md = NULL;
        return r;
}

/*
 * PUT /api/v1/nix-cache/HASHPART: one path into the cache. The body (nix-publish.h's envelope: header
 * line, narinfo, NAR) was spooled by the transport to an unnamed-to-the-cache temporary file, which it
 * removes after this returns; the route's cap is max-upload plus the envelope.
 * INVARIANT: nothing is stored unless the narinfo is for this path, is signed by a key in
 * nix-trusted-public-keys, is input-addressed, every reference is already in the cache (the cache stays
 * closed), and the NAR received has exactly the signed NarSize and NarHash. The NAR is copied into an
 * unnamed file (O_TMPFILE) of nar/ and hashed on the way; it gets its name only after that check; the
 * narinfo is written after the NAR, so no client ever sees one without the other.
 */
int api_nix_upload(struct route_ctx *x) {
        struct server *srv = x->srv;
        const struct tp_request *req = x->req;
        const char *hashpart = x->param;
        _cleanup_close_ int nar_fd = -EBADF, tmp_fd = -EBADF;
        _cleanup_(narinfo_done) struct narinfo ni = {};
        _cleanup_buf_ struct buf text = {};
        _cleanup_free_ char *narinfo = NULL;
        char head[NIX_UPLOAD_HEADER_MAX], h[NIX32_SHA256_LEN + 1], name[96], proc[64], path[PATH_MAX];
        uint8_t digest[SHA256_LEN];
        size_t head_len, consumed, ni_len;
        uint64_t nar_off, nar_len;
        int r;

        if (!can_publish(x))
                return 501;
        if (!hashpart_valid(hashpart))
                return tp_respond_error(x->resp, 404, "`%s' is not a store path's hash part: PUT /api/v1/nix-cache/HASHPART",
                                        hashpart);

        /* the envelope's first line, then the narinfo */
        head_len = (size_t) MIN(req->spool_len, (uint64_t) sizeof(head));
        r = spool_read(req, 0, head, head_len);
        if (r < 0)
                return refuse(x, 500, r, "cannot read the spooled upload");
        r = nix_upload_header_parse(head, head_len, &consumed, &ni_len);
        if (r < 0)
                return refuse(x, 400, 0, "%s", r == -EAGAIN ? "the upload is shorter than its header" : ringil_detail());
        if ((uint64_t) consumed + ni_len > req->spool_len)
                return refuse(x, 400, 0, "the upload is shorter than its narinfo");
        narinfo = malloc(ni_len);
        if (!narinfo)
                return tp_respond_error(x->resp, 500, "out of memory");
        r = spool_read(req, consumed, narinfo, ni_len);
        if (r < 0)
                return refuse(x, 500, r, "cannot read the spooled upload");
        nar_off = (uint64_t) consumed + ni_len;
        nar_len = req->spool_len - nar_off;

        r = narinfo_parse(narinfo, ni_len, &ni);
        if (r < 0)
                return refuse(x, 400, 0, "narinfo: %s", ringil_detail());
        if (strncmp(ni.store_path + 11, hashpart, 32) != 0)
                return refuse(x, 400, 0, "the narinfo is for %s, not for %s", ni.store_path, hashpart);
        /* INVARIANT: signature first: nothing below acts on a narinfo the fleet's key did not sign */
        r = narinfo_verify(&ni, srv->cfg.nix_trusted_keys);
        if (r < 0)
                return refuse(x, 422, 0, "%s refused: %s", ni.store_path, ringil_detail());
        if (ni.ca)
                return refuse(x, 422, 0, "%s is content-addressed: the fleet cache takes signed input-addressed paths only",
                              ni.store_path);
        if (nar_len != ni.nar_size)
                return refuse(x, 422, 0, "%s: the body carries %" PRIu64 " NAR bytes, the signed NarSize is %" PRIu64,
                              ni.store_path, nar_len, ni.nar_size);
        r = have_narinfo(srv->nix_cache_fd, hashpart);
        if (r < 0)
                return refuse(x, 500, r, "cannot look into the cache");
        if (r > 0)
                /* Published before: the cache keeps what it has (a path's narinfo is never replaced). */
                return respond_json(x, 200, json_pack("{s:s, s:b, s:s}", "path", ni.store_path, "stored", 0, "reason",
                                                      "already in the cache"));
        for (size_t i = 0; i < ni.n_refs; i++) {
                if (strncmp(ni.refs[i], hashpart, 32) == 0)
                        continue;
                r = have_narinfo(srv->nix_cache_fd, ni.refs[i]);
                if (r < 0)
                        return refuse(x, 500, r, "cannot look into the cache");
                if (r == 0)
                        return refuse(x, 409, 0, "%s refers to /nix/store/%s, which is not in the cache: publish the closure in "
                                      "dependency order", ni.store_path, ni.refs[i]);
        }

        /* the NAR into an unnamed file of nar/, hashed on the way */
        nar_fd = open_nar_dir(srv->nix_cache_fd);
        if (nar_fd < 0)
                return refuse(x, 500, nar_fd, "cannot open the cache's nar/ directory");
        tmp_fd = open_nar_tmp(nar_fd);
        if (tmp_fd < 0)
                return refuse(x, 500, tmp_fd, "cannot create a file in the cache");
        r = copy_nar(req, nar_off, nar_len, tmp_fd, digest);
        if (r == -ENOSPC || r == -EDQUOT)
                return refuse(x, 507, r, "the cache is full");
        if (r < 0)
                return refuse(x, 500, r, "cannot write the NAR");
        /* INVARIANT: the NAR is the one the fleet key signed, byte for byte */
        if (crypto_memcmp(digest, ni.nar_hash, SHA256_LEN) != 0)
                return refuse(x, 422, 0, "%s: the NAR's SHA-256 differs from the signed NarHash", ni.store_path);
        if (fsync(tmp_fd) < 0)
                return refuse(x, 500, negative_errno(), "cannot sync the NAR");
        nix32_encode(digest, SHA256_LEN, h);
        (void) snprintf(name, sizeof(name), "%s.nar", h);
        (void) snprintf(proc, sizeof(proc), "/proc/self/fd/%d", tmp_fd);
        if (linkat(AT_FDCWD, proc, nar_fd, name, AT_SYMLINK_FOLLOW) < 0 && errno != EEXIST)
                return refuse(x, 500, negative_errno(), "cannot store the NAR");
        if (fsync(nar_fd) < 0)
                return refuse(x, 500, negative_errno(), "cannot sync nar/");

        /* then the narinfo, and the cache's description on the first upload */
        r = canonical_narinfo(&ni, &text);
        if (r < 0)
                return refuse(x, 500, r, "cannot write the narinfo");
        (void) snprintf(path, sizeof(path), "/proc/self/fd/%d/nix-cache-info", srv->nix_cache_fd);
        if (access(path, F_OK) < 0 && (r = atomic_write_file(path, CACHE_INFO, strlen(CACHE_INFO), 0644, AW_NOREPLACE)) < 0 &&
            r != -EEXIST)
                return refuse(x, 500, r, "cannot write nix-cache-info");
        (void) snprintf(path, sizeof(path), "/proc/self/fd/%d/%.32s.narinfo", srv->nix_cache_fd, hashpart);
        r = atomic_write_file(path, text.data, text.len, 0644, AW_NOREPLACE);
        if (r < 0 && r != -EEXIST)
                return refuse(x, 500, r, "cannot write the narinfo");
        atomic_fetch_add(&srv->m.nix_uploads, 1);
        log_info("nix-cache: published %s (%" PRIu64 " bytes)", ni.store_path, ni.nar_size);
        return respond_json(x, 201, json_pack("{s:s, s:b, s:I}", "path", ni.store_path, "stored", r >= 0, "nar_size",
                                              (json_int_t) ni.nar_size));
}
