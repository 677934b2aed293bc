/* upload.c: release upload: the spooled body is verified against the fleet keyring, then stored (or only referenced) and registered. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle.h"
#include "macro.h"
#include "crypto.h"
#include "err.h"
#include "fileio.h"
#include "log.h"
#include "server.h"

int release_meta(int fd, uint64_t size, uint64_t *ret_size, char ret_sha256[static 65]) {
        uint8_t head[BUNDLE_HEADER_SIZE], buf[1 << 16], digest[SHA256_LEN];
        EVP_MD_CTX *ctx = NULL;
        uint64_t meta, off = 0;
        uint32_t mlen, slen;
        int r;

        if (pread(fd, head, sizeof(head), 0) != (ssize_t) sizeof(head))
                return ringil_fail(-RINGIL_EMALFORMED, "bundle shorter than its header");
        mlen = (uint32_t) head[16] << 24 | (uint32_t) head[17] << 16 | (uint32_t) head[18] << 8 | head[19];
        slen = (uint32_t) head[20] << 24 | (uint32_t) head[21] << 16 | (uint32_t) head[22] << 8 | head[23];
        if (mlen > BUNDLE_MAX_MANIFEST || slen > BUNDLE_MAX_SIGNATURE)
                return ringil_fail(-RINGIL_EMALFORMED, "bundle header lengths over their caps");
        meta = BUNDLE_HEADER_SIZE + (uint64_t) mlen + slen;
        if (meta > size)
                return ringil_fail(-RINGIL_EMALFORMED, "bundle metadata longer than the bundle");
        r = crypto_sha256_begin(&ctx);
        if (r < 0)
                return r;
        while (off < meta && r >= 0) {
                ssize_t k = pread(fd, buf, (size_t) MIN((uint64_t) sizeof(buf), meta - off), (off_t) off);
                if (k <= 0)
                        r = k < 0 ? negative_errno() : -RINGIL_ETRUNCATED;
                else {
                        r = crypto_sha256_update(ctx, buf, (size_t) k);
                        off += (uint64_t) k;
                }
        }
        if (crypto_sha256_final(ctx, digest) < 0 && r >= 0)
                r = -EIO;
        if (r < 0)
                return r;
        hex_encode(digest, sizeof(digest), ret_sha256);
        *ret_size = meta;
        return 0;
}

size_t release_mirrors_split(const char *text, char mirrors[][FLEET_URL_MAX + 1]) {
        size_t n = 0;

        while (*text && n < FLEET_MIRRORS_MAX) {
                size_t k = strcspn(text, " ");
                if (k > 0 && k <= FLEET_URL_MAX) {
                        memcpy(mirrors[n], text, k);
                        mirrors[n++][k] = '\0';
                }
                text += k;
                text += strspn(text, " ");
        }
        return n;
}

static int release_details(store *db, int64_t id, const struct bundle_manifest *m) {
        json_t *p = json_array();
        char *s;
        int r;

        for (size_t i = 0; p && i < m->n_payloads; i++) {
                const struct bundle_payload *pl = &m->payloads[i];
                json_t *o = json_pack("{s:s, s:s, s:I}", "name", pl->name, "type", bundle_payload_type_to_string(pl->type),
                                      "size", (json_int_t) pl->size);
                if (o && pl->store_path)
                        json_object_set_new(o, "store_path", json_string(pl->store_path));
                if (!o || json_array_append_new(p, o) < 0) {
                        json_decref(p);
                        return -ENOMEM;
                }
        }
        s = p ? json_dumps(p, JSON_COMPACT) : NULL;
        json_decref(p);
        if (!s)
                return -ENOMEM;
        r = store_release_details(db, id, m->created, m->expires, s);
        free(s);
        return r;
}

/*
 * INVARIANT: a release is registered only after bundle_verify_manifest() and bundle_verify_payloads()
 * accepted the stored bytes against the fleet keyring. Drones verify again on their own keyring: the
 * server's check keeps junk out of the rollout; it is not what makes a drone trust a bundle.
 *
 * The transport streamed the body to req->spool_path (in the store directory, so link() works) and
 * hashed it on the way; it unlinks that name after this returns.
 */
int api_upload(struct route_ctx *x) {
        struct server *srv = x->srv;
        const struct tp_request *req = x->req;
        _cleanup_free_ char *final = NULL;
        _cleanup_bundle_ bundle *b = NULL;
        const struct bundle_manifest *m;
        struct bundle_policy pol = { .keyring = srv->cfg.keyring };
        struct release rel = {};
        char mdigest[65];
        int64_t id = 0;
        json_t *j;
        char *out;
        bool reference;
        int r;

        /* ?store=no: verify and register, keep no bytes (mirrors serve them) */
        if (!streq(x->http->query, "") && !streq(x->http->query, "store=yes") && !streq(x->http->query, "store=no"))
                return tp_respond_error(x->resp, 400, "the only query is store=yes or store=no");
        reference = streq(x->http->query, "store=no");

        if (req->spool_len == 0) {
                x->resp->close = true;
                return tp_respond_error(x->resp, 413, "bundle size must be 1..%" PRIu64 " bytes", srv->cfg.max_upload);
        }
        if (fsync(req->spool_fd) < 0)
                return tp_respond_error(x->resp, 500, "cannot sync upload");
        hex_encode(req->spool_sha256, 32, rel.sha256);

        r = bundle_open(req->spool_path, &b);
        if (r >= 0)
                r = bundle_verify_manifest(b, &pol);
        if (r >= 0)
                r = bundle_verify_payloads(b);
        if (r < 0) {
                atomic_fetch_add(&srv->m.uploads_refused, 1);
                log_notice("refused upload: %s: %s", ringil_strerror(r), ringil_detail());
                return tp_respond_error(x->resp, 422, "bundle refused: %s: %s", ringil_strerror(r), ringil_detail());
        }
        m = bundle_get_manifest(b);
        snprintf(rel.version, sizeof(rel.version), "%s", m->version);
        snprintf(rel.compatible, sizeof(rel.compatible), "%s", m->compatible);
        rel.size = req->spool_len;
        hex_encode(m->digest, sizeof(m->digest), mdigest);
        /* the metadata hash: what lets a drone check the bundle's bytes from a mirror (docs/fleet.md) */
        r = release_meta(req->spool_fd, rel.size, &rel.meta_size, rel.meta_sha256);
        if (r < 0)
                return tp_respond_error(x->resp, 500, "cannot hash the bundle's metadata: %s", ringil_detail());
        if (reference) {
                /* Only referenced: its mirrors serve it (set next, before it can be assigned); the
                 * spooled bytes are dropped by the transport. */
                r = store_release_add(srv->db, &rel, m->signer ? m->signer : "", mdigest, &id);
                if (r < 0)
                        return r == -EEXIST ? tp_respond_error(x->resp, 409, "this bundle was uploaded already")
                                            : api_store_error(x, r);
                goto done;
        }
        if (asprintf(&final, "%s/%s.bundle", srv->cfg.store_dir, rel.sha256) < 0) {
                final = NULL;
                return tp_respond_error(x->resp, 500, "out of memory");
        }
        snprintf(rel.path, sizeof(rel.path), "%s", final);
        if (fchmod(req->spool_fd, 0444) < 0 || link(req->spool_path, final) < 0) {
                if (errno == EEXIST)
                        return tp_respond_error(x->resp, 409, "this bundle was uploaded already");
                return tp_respond_error(x->resp, 500, "cannot store bundle");
        }
        (void) fsync_parent_dir(final);
        r = store_release_add(srv->db, &rel, m->signer ? m->signer : "", mdigest, &id);
        if (r < 0) {
                (void) unlink(final);
                return r == -EEXIST ? tp_respond_error(x->resp, 409, "this bundle was uploaded already")
                                    : api_store_error(x, r);
        }
done:
        /* for the dashboard: what the verified manifest says beyond the release row (best effort: the
         * release is registered either way, and the page then says the details were not recorded) */
        if (release_details(srv->db, id, m) < 0)
                log_warning("release %" PRId64 ": manifest details not recorded: %s", id, ringil_detail());
        atomic_fetch_add(&srv->m.uploads, 1);
        snprintf(x->log_target, sizeof(x->log_target), "release:%" PRId64, id);
        snprintf(x->log_detail, sizeof(x->log_detail), "upload release %s for %s%s", rel.version, rel.compatible,
                 reference ? " (referenced only)" : "");
        log_info("release %" PRId64 ": version %s for '%s' (%" PRIu64 " bytes, sha256 %s)%s", id, rel.version,
                 rel.compatible, rel.size, rel.sha256, reference ? ", referenced only" : "");
        j = json_pack("{s:I, s:s, s:s, s:I, s:s, s:b}", "id", (json_int_t) id, "version", rel.version, "compatible",
                      rel.compatible, "size", (json_int_t) rel.size, "sha256", rel.sha256, "stored", !reference);
        out = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(j);
        if (!out)
                return tp_respond_error(x->resp, 500, "out of memory");
        r = tp_respond(x->resp, 201, "application/json", out, strlen(out));
        free(out);
        return r < 0 ? tp_respond_error(x->resp, 500, "out of memory") : 201;
}
