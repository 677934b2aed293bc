/* upload.c: release upload: stream to the store, verify against the fleet keyring, then register. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle.h"
#include "crypto.h"
#include "err.h"
#include "fileio.h"
#include "log.h"
#include "server.h"

static void unlink_tmp(char **p) {
        if (*p) {
                (void) unlink(*p);
                free(*p);
        }
}

/*
 * INVARIANT: a release is registered only after bundle_verify_manifest() and bundle_verify_payloads()
 * accepted the stored bytes against the fleet keyring. Drones verify again on their own keyring: the
 * server's check keeps junk out of the rollout; it is not what makes a drone trust a bundle.
 */
int api_upload(struct conn *c, const struct http_request *req) {
        struct server *srv = c->srv;
        __attribute__((cleanup(unlink_tmp))) char *tmp = NULL;
        _cleanup_free_ char *final = NULL;
        _cleanup_close_ int fd = -EBADF;
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
        _cleanup_bundle_ bundle *b = NULL;
        const struct bundle_manifest *m;
        struct bundle_policy pol = { .keyring = srv->cfg.keyring };
        struct release rel = {};
        uint8_t buf[65536], digest[SHA256_LEN];
        char mdigest[65];
        uint64_t left;
        int64_t id = 0;
        json_t *j;
        char *out;
        int r;

        if (!req->has_content_length) {
                c->close_after = true;
                return conn_error(c, 411, "Content-Length required");
        }
        if (req->content_length > srv->cfg.max_upload || req->content_length == 0) {
                c->close_after = true;
                return conn_error(c, 413, "bundle size must be 1..%" PRIu64 " bytes", srv->cfg.max_upload);
        }
        if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
                return conn_error(c, 500, "digest");
        if (asprintf(&tmp, "%s/.upload.XXXXXX", srv->cfg.store_dir) < 0) {
                tmp = NULL;
                return -ENOMEM;
        }
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0) {
                free(tmp);
                tmp = NULL;
                return conn_error(c, 500, "cannot create a temporary file in the store");
        }
        for (left = req->content_length; left > 0;) {
                size_t k = (size_t) MIN(left, (uint64_t) sizeof(buf));
                if (conn_read(c, buf, k) < 0)
                        return -ECONNRESET;
                if (write_all(fd, buf, k) < 0) {
                        c->close_after = true;
                        return conn_error(c, 507, "store full");
                }
                EVP_DigestUpdate(md, buf, k);
                left -= k;
        }
        if (fsync(fd) < 0 || EVP_DigestFinal_ex(md, digest, NULL) != 1)
                return conn_error(c, 500, "cannot sync upload");
        hex_encode(digest, sizeof(digest), rel.sha256);

        r = bundle_open(tmp, &b);
        if (r >= 0)
                r = bundle_verify_manifest(b, &pol);
        if (r >= 0)
                r = bundle_verify_payloads(b);
        if (r < 0) {
                atomic_fetch_add(&srv->m.uploads_refused, 1);
                log_notice("refused upload: %s: %s", ringil_strerror(r), ringil_detail());
                return conn_error(c, 422, "bundle refused: %s: %s", ringil_strerror(r), ringil_detail());
        }
        m = bundle_get_manifest(b);
        snprintf(rel.version, sizeof(rel.version), "%s", m->version);
        snprintf(rel.compatible, sizeof(rel.compatible), "%s", m->compatible);
        rel.size = req->content_length;
        hex_encode(m->digest, sizeof(m->digest), mdigest);
        if (asprintf(&final, "%s/%s.bundle", srv->cfg.store_dir, rel.sha256) < 0) {
                final = NULL;
                return -ENOMEM;
        }
        snprintf(rel.path, sizeof(rel.path), "%s", final);
        if (fchmod(fd, 0444) < 0 || link(tmp, final) < 0) {
                if (errno == EEXIST)
                        return conn_error(c, 409, "this bundle was uploaded already");
                return conn_error(c, 500, "cannot store bundle");
        }
        (void) fsync_parent_dir(final);
        r = store_release_add(srv->db, &rel, m->signer ? m->signer : "", mdigest, &id);
        if (r < 0) {
                (void) unlink(final);
                return r == -EEXIST ? conn_error(c, 409, "this bundle was uploaded already")
                                    : conn_error(c, 503, "store: %s", ringil_detail());
        }
        atomic_fetch_add(&srv->m.uploads, 1);
        log_info("release %" PRId64 ": version %s for '%s' (%" PRIu64 " bytes, sha256 %s)", id, rel.version,
                 rel.compatible, rel.size, rel.sha256);
        j = json_pack("{s:I, s:s, s:s, s:I, s:s}", "id", (json_int_t) id, "version", rel.version, "compatible",
                      rel.compatible, "size", (json_int_t) rel.size, "sha256", rel.sha256);
        out = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(j);
        if (!out)
                return conn_error(c, 500, "out of memory");
        r = conn_respond(c, 201, "application/json", NULL, out, strlen(out));
        free(out);
        return r;
}
