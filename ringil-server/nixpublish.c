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

#define MISSING_MAX_BODY (8u << 20)   /* NIX_CLOSURE_MAX paths of ~80 bytes as JSON */
#define CACHE_INFO "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n"

/* Discard what is left of a body; false when the peer went away. */
static bool drain(struct conn *c, uint64_t n) {
        char tmp[65536];

        while (n > 0) {
                size_t k = (size_t) MIN(n, (uint64_t) sizeof(tmp));
                if (conn_read(c, tmp, k) < 0)
                        return false;
                n -= k;
        }
        return true;
}

/* Refuse after reading part of the body: the rest is not read, so the connection ends with the answer. */
static int refuse(struct conn *c, int status, int r, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int refuse(struct conn *c, int status, int r, const char *fmt, ...) {
        char msg[512];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        atomic_fetch_add(&c->srv->m.nix_uploads_refused, 1);
        c->close_after = true;
        log_notice("nix-cache upload refused: %s", msg);
        return conn_error(c, status, "%s%s%s", msg, r < 0 ? ": " : "", r < 0 ? ringil_strerror(r) : "");
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

/* POST /api/v1/nix-cache/missing {"paths": [...]} → {"missing": [...]}: what a publisher must still send. */
static int route_missing(struct conn *c, const struct http_request *req) {
        _cleanup_free_ char *body = NULL, *out = NULL;
        json_t *j, *paths, *missing = NULL, *v;
        json_error_t e;
        size_t i;
        int r;

        if (!req->has_content_length || req->content_length > MISSING_MAX_BODY) {
                c->close_after = true;
                return conn_error(c, req->has_content_length ? 413 : 411, "a JSON body of at most %u bytes is required",
                                  MISSING_MAX_BODY);
        }
        body = malloc(req->content_length + 1);
        if (!body)
                return -ENOMEM;
        if (conn_read(c, body, req->content_length) < 0)
                return -ECONNRESET;
        j = json_loadb(body, req->content_length, JSON_REJECT_DUPLICATES, &e);
        paths = j ? json_object_get(j, "paths") : NULL;
        if (!json_is_array(paths) || json_object_size(j) != 1 || json_array_size(paths) > NIX_CLOSURE_MAX) {
                json_decref(j);
                return conn_error(c, 400, "expected {\"paths\": [STORE PATH, ...]} (at most %u)", NIX_CLOSURE_MAX);
        }
        missing = json_array();
        r = missing ? 0 : -ENOMEM;
        json_array_foreach(paths, i, v) {
                const char *p = json_string_value(v);
                if (r < 0)
                        break;
                if (!p || !nix_store_path_valid(p)) {
                        json_decref(missing);
                        json_decref(j);
                        return conn_error(c, 400, "entry %zu is not a store path", i);
                }
                r = have_narinfo(c->srv->nix_cache_fd, p + 11);
                if (r == 0)
                        r = json_array_append_new(missing, json_string(p)) < 0 ? -ENOMEM : 0;
        }
        json_decref(j);
        if (r < 0) {
                json_decref(missing);
                return conn_error(c, 500, "cannot look into the cache: %s", ringil_strerror(r));
        }
        {
                json_t *o = json_pack("{s:o}", "missing", missing);
                out = o ? json_dumps(o, JSON_COMPACT) : NULL;
                json_decref(o);
        }
        if (!out)
                return conn_error(c, 500, "out of memory");
        return conn_respond(c, 200, "application/json", NULL, out, strlen(out));
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

/*
 * PUT /api/v1/nix-cache/HASHPART: one path into the cache (body: nix-publish.h's envelope).
 * INVARIANT: nothing is stored unless the narinfo is for this path, is signed by a key in
 * nix-trusted-public-keys, is input-addressed, every reference is already in the cache (the cache stays
 * closed), and the NAR received has exactly the signed NarSize and NarHash. The NAR gets its name only
 * after that check; the narinfo is written after the NAR, so no client ever sees one without the other.
 */
static int route_upload(struct conn *c, const struct http_request *req, const char *hashpart) {
        struct server *srv = c->srv;
        _cleanup_close_ int nar_fd = -EBADF, tmp_fd = -EBADF;
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = NULL;
        _cleanup_(narinfo_done) struct narinfo ni = {};
        _cleanup_buf_ struct buf text = {};
        _cleanup_free_ char *narinfo = NULL, *out = NULL;
        char head[NIX_UPLOAD_HEADER_MAX], h[NIX32_SHA256_LEN + 1], name[96], proc[64], path[PATH_MAX];
        uint8_t digest[SHA256_LEN], buf[65536];
        size_t head_len, consumed, ni_len, have;
        uint64_t nar_len, left;
        int r;

        if (!req->has_content_length) {
                c->close_after = true;
                return conn_error(c, 411, "Content-Length required");
        }
        if (req->content_length > srv->cfg.max_upload + NARINFO_MAX + NIX_UPLOAD_HEADER_MAX) {
                c->close_after = true;
                return conn_error(c, 413, "upload larger than max-upload (%" PRIu64 " bytes)", srv->cfg.max_upload);
        }
        /* the envelope's first line, then the narinfo */
        head_len = (size_t) MIN(req->content_length, (uint64_t) sizeof(head));
        if (conn_read(c, head, head_len) < 0)
                return -ECONNRESET;
        r = nix_upload_header_parse(head, head_len, &consumed, &ni_len);
        if (r < 0)
                return refuse(c, 400, 0, "%s", r == -EAGAIN ? "the upload is shorter than its header" : ringil_detail());
        if ((uint64_t) consumed + ni_len > req->content_length)
                return refuse(c, 400, 0, "the upload is shorter than its narinfo");
        narinfo = malloc(ni_len);
        if (!narinfo)
                return -ENOMEM;
        have = MIN(head_len - consumed, ni_len);
        memcpy(narinfo, head + consumed, have);
        if (ni_len > have && conn_read(c, narinfo + have, ni_len - have) < 0)
                return -ECONNRESET;
        /* what the envelope's first read took beyond the narinfo is the NAR's first bytes */
        nar_len = req->content_length - consumed - ni_len;

        r = narinfo_parse(narinfo, ni_len, &ni);
        if (r < 0)
                return refuse(c, 400, 0, "narinfo: %s", ringil_detail());
        if (strncmp(ni.store_path + 11, hashpart, 32) != 0)
                return refuse(c, 400, 0, "the narinfo is for %s, not for %s", ni.store_path, hashpart);
        /* INVARIANT: signature first: nothing below acts on a narinfo the fleet's key did not sign */
        r = narinfo_verify(&ni, srv->cfg.nix_trusted_keys);
        if (r < 0)
                return refuse(c, 422, 0, "%s refused: %s", ni.store_path, ringil_detail());
        if (ni.ca)
                return refuse(c, 422, 0, "%s is content-addressed: the fleet cache takes signed input-addressed paths only",
                              ni.store_path);
        if (nar_len != ni.nar_size)
                return refuse(c, 422, 0, "%s: the body carries %" PRIu64 " NAR bytes, the signed NarSize is %" PRIu64,
                              ni.store_path, nar_len, ni.nar_size);
        r = have_narinfo(srv->nix_cache_fd, hashpart);
        if (r < 0)
                return refuse(c, 500, r, "cannot look into the cache");
        if (r > 0) {
                /* Published before: the cache keeps what it has (a path's narinfo is never replaced). */
                if (!drain(c, nar_len - MIN(nar_len, (uint64_t) (head_len - consumed - have))))
                        return -ECONNRESET;
                out = strdup("{\"stored\":false,\"reason\":\"already in the cache\"}");
                return out ? conn_respond(c, 200, "application/json", NULL, out, strlen(out)) : -ENOMEM;
        }
        for (size_t i = 0; i < ni.n_refs; i++) {
                if (strncmp(ni.refs[i], hashpart, 32) == 0)
                        continue;
                r = have_narinfo(srv->nix_cache_fd, ni.refs[i]);
                if (r < 0)
                        return refuse(c, 500, r, "cannot look into the cache");
                if (r == 0)
                        return refuse(c, 409, 0, "%s refers to /nix/store/%s, which is not in the cache: publish the closure in "
                                      "dependency order", ni.store_path, ni.refs[i]);
        }

        /* the NAR, hashed as it arrives, into an unnamed file */
        nar_fd = open_nar_dir(srv->nix_cache_fd);
        if (nar_fd < 0)
                return refuse(c, 500, nar_fd, "cannot open the cache's nar/ directory");
        tmp_fd = open_nar_tmp(nar_fd);
        if (tmp_fd < 0)
                return refuse(c, 500, tmp_fd, "cannot create a file in the cache");
        r = crypto_sha256_begin(&md);
        if (r < 0)
                return refuse(c, 500, r, "SHA-256");
        left = nar_len;
        if (head_len - consumed > have) {
                size_t k = head_len - consumed - have;
                if (write_all(tmp_fd, head + consumed + have, k) < 0 || crypto_sha256_update(md, head + consumed + have, k) < 0)
                        return refuse(c, 507, 0, "cannot write the NAR");
                left -= k;
        }
        while (left > 0) {
                size_t k = (size_t) MIN(left, (uint64_t) sizeof(buf));
                if (conn_read(c, buf, k) < 0)
                        return -ECONNRESET;   /* the unnamed file goes with the descriptor */
                if (write_all(tmp_fd, buf, k) < 0) {
                        c->close_after = true;
                        return refuse(c, 507, 0, "the cache is full");
                }
                if (crypto_sha256_update(md, buf, k) < 0)
                        return refuse(c, 500, 0, "SHA-256");
                left -= k;
        }
        r = crypto_sha256_final(md, digest);
        md = NULL;
        if (r < 0)
                return refuse(c, 500, r, "SHA-256");
        /* INVARIANT: the NAR is the one the fleet key signed, byte for byte */
        if (crypto_memcmp(digest, ni.nar_hash, SHA256_LEN) != 0)
                return refuse(c, 422, 0, "%s: the NAR's SHA-256 differs from the signed NarHash", ni.store_path);
        if (fsync(tmp_fd) < 0)
                return refuse(c, 500, negative_errno(), "cannot sync the NAR");
        nix32_encode(digest, SHA256_LEN, h);
        (void) snprintf(name, sizeof(name), "%s.nar", h);
        (void) snprintf(proc, sizeof(proc), "/proc/self/fd/%d", tmp_fd);
        if (linkat(AT_FDCWD, proc, nar_fd, name, AT_SYMLINK_FOLLOW) < 0 && errno != EEXIST)
                return refuse(c, 500, negative_errno(), "cannot store the NAR");
        if (fsync(nar_fd) < 0)
                return refuse(c, 500, negative_errno(), "cannot sync nar/");

        /* then the narinfo, and the cache's description on the first upload */
        r = canonical_narinfo(&ni, &text);
        if (r < 0)
                return refuse(c, 500, r, "cannot write the narinfo");
        (void) snprintf(path, sizeof(path), "/proc/self/fd/%d/nix-cache-info", srv->nix_cache_fd);
        if (access(path, F_OK) < 0 && (r = atomic_write_file(path, CACHE_INFO, strlen(CACHE_INFO), 0644, AW_NOREPLACE)) < 0 &&
            r != -EEXIST)
                return refuse(c, 500, r, "cannot write nix-cache-info");
        (void) snprintf(path, sizeof(path), "/proc/self/fd/%d/%.32s.narinfo", srv->nix_cache_fd, hashpart);
        r = atomic_write_file(path, text.data, text.len, 0644, AW_NOREPLACE);
        if (r < 0 && r != -EEXIST)
                return refuse(c, 500, r, "cannot write the narinfo");
        atomic_fetch_add(&srv->m.nix_uploads, 1);
        log_info("nix-cache: published %s (%" PRIu64 " bytes)", ni.store_path, ni.nar_size);
        {
                json_t *o = json_pack("{s:s, s:b, s:I}", "path", ni.store_path, "stored", r >= 0, "nar_size",
                                      (json_int_t) ni.nar_size);
                out = o ? json_dumps(o, JSON_COMPACT) : NULL;
                json_decref(o);
        }
        return out ? conn_respond(c, 201, "application/json", NULL, out, strlen(out)) : -ENOMEM;
}

int api_nix_publish(struct conn *c, const struct http_request *req, const char *rest) {
        /* Operator only, checked here as well as by the caller's route: publishing decides what every
         * drone may install. */
        if (c->role != PEER_OPERATOR) {
                atomic_fetch_add(&c->srv->m.auth_refused, 1);
                c->close_after = true;
                return conn_error(c, c->role == PEER_NONE ? 401 : 403, "publishing to the Nix cache needs an operator certificate");
        }
        if (c->srv->nix_cache_fd < 0 || !c->srv->cfg.nix_trusted_keys) {
                c->close_after = true;
                return conn_error(c, 501, "this server has no nix-cache with nix-trusted-public-keys to publish into");
        }
        if (streq(rest, "missing") && req->method == HTTP_POST)
                return route_missing(c, req);
        if (hashpart_valid(rest) && req->method == HTTP_PUT)
                return route_upload(c, req, rest);
        c->close_after = true;
        return conn_error(c, 404, "no route: POST /api/v1/nix-cache/missing or PUT /api/v1/nix-cache/HASHPART");
}
