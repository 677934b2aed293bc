/* api.c: the fleet server's routes: enrollment, check-in, reports, bundle download, Nix cache, operator API. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "crypto.h"
#include "err.h"
#include "fleet-msg.h"
#include "log.h"
#include "parse.h"
#include "secret.h"
#include "server.h"
#include "store-rollout.h"

#define ENROLL_MAX_BODY 16384

/* Read a JSON body of at most max bytes; replies with the error itself when it fails. */
static int read_body(struct conn *c, const struct http_request *req, size_t max, char **ret, size_t *ret_len) {
        char *b;

        if (!req->has_content_length) {
                c->close_after = true;
                return -conn_error(c, 411, "Content-Length required");
        }
        if (req->content_length > max) {
                /* Drain a modestly oversized body so the client is not cut off mid-send and sees
                 * the 413; a huge one is not read at all (the connection closes after the answer). */
                c->close_after = true;
                if (req->content_length <= 64 * (uint64_t) max) {
                        char tmp[4096];
                        for (uint64_t left = req->content_length; left > 0;) {
                                size_t k = (size_t) MIN(left, (uint64_t) sizeof(tmp));
                                if (conn_read(c, tmp, k) < 0)
                                        return -ECONNRESET;
                                left -= k;
                        }
                }
                return -conn_error(c, 413, "body larger than %zu bytes", max);
        }
        b = malloc(req->content_length + 1);
        if (!b)
                return -ENOMEM;
        if (conn_read(c, b, req->content_length) < 0) {
                free(b);
                return -ECONNRESET;
        }
        b[req->content_length] = '\0';
        *ret = b;
        *ret_len = req->content_length;
        return 0;
}

/* Discard a small body the handler does not need, so keep-alive stays in sync. */
static int skip_body(struct conn *c, const struct http_request *req) {
        char tmp[4096];
        uint64_t n = req->has_content_length ? req->content_length : 0;

        if (n > SERVER_MAX_JSON_BODY) {
                c->close_after = true;
                return 0;
        }
        while (n > 0) {
                size_t k = (size_t) MIN(n, sizeof(tmp));
                if (conn_read(c, tmp, k) < 0)
                        return -ECONNRESET;
                n -= k;
        }
        return 0;
}

static int respond_json(struct conn *c, int status, json_t *j) {
        char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        int r;

        if (!s)
                return conn_error(c, 500, "out of memory");
        r = conn_respond(c, status, "application/json", NULL, s, strlen(s));
        free(s);
        return r < 0 ? r : status;
}

/*
 * The authenticated drone behind this connection, re-checked on every request so a revocation takes
 * effect on open keep-alive connections too. Replies 401/403 itself and returns < 0 when refused.
 */
static int authorize_drone(struct conn *c, struct drone_auth *ret) {
        struct drone_auth a;
        int r;

        if (c->role == PEER_NONE) {
                atomic_fetch_add(&c->srv->m.auth_refused, 1);
                return -conn_error(c, 401, "client certificate from the device CA required");
        }
        if (c->role != PEER_DRONE) {
                atomic_fetch_add(&c->srv->m.auth_refused, 1);
                return -conn_error(c, 403, "not a drone identity");
        }
        r = store_drone_auth(c->srv->db, c->peer, &a);
        if (r < 0)
                return -conn_error(c, 500, "store: %s", ringil_detail());
        /* INVARIANT: CA-valid is not enough: the drone must be registered, not revoked, and present
         * the certificate we issued it when we issued one. */
        if (!a.exists || a.status == DRONE_REVOKED || (a.cert_serial[0] && !streq(a.cert_serial, c->serial))) {
                atomic_fetch_add(&c->srv->m.auth_refused, 1);
                log_notice("refused drone '%s': %s", c->peer,
                           !a.exists ? "not registered" : a.status == DRONE_REVOKED ? "revoked" : "certificate replaced");
                return -conn_error(c, 403, "drone '%s' is not allowed", c->peer);
        }
        *ret = a;
        return 0;
}

static int authorize_operator(struct conn *c) {
        if (c->role == PEER_OPERATOR)
                return 0;
        atomic_fetch_add(&c->srv->m.auth_refused, 1);
        if (c->role == PEER_NONE)
                return -conn_error(c, 401, "operator client certificate required");
        return -conn_error(c, 403, "operator credential required");
}

/* Operator, or the drone `id` itself. */
static int authorize_self_or_operator(struct conn *c, const char *id) {
        struct drone_auth a;
        int r;

        if (c->role == PEER_OPERATOR)
                return 0;
        r = authorize_drone(c, &a);
        if (r < 0)
                return r;
        if (!streq(c->peer, id)) {
                atomic_fetch_add(&c->srv->m.auth_refused, 1);
                return -conn_error(c, 403, "a drone may only see itself");
        }
        return 0;
}

static int get_assignment(struct conn *c, const char *id, const char *group, struct release *ret) {
        int64_t rid = 0;
        int r = store_assignment_for(c->srv->db, id, group, &rid);

        if (r < 0)
                return r;
        if (rid == 0)
                return 0;
        r = store_release_get(c->srv->db, rid, ret);
        return r < 0 ? r : 1;
}

static int route_checkin(struct conn *c, const struct http_request *req) {
        _cleanup_free_ char *body = NULL, *out = NULL;
        struct fleet_status st;
        struct fleet_assignment a = { .poll_interval = c->srv->cfg.poll_interval };
        struct drone_auth auth;
        struct release rel;
        bool held = false;
        size_t len;
        int r;

        r = authorize_drone(c, &auth);
        if (r < 0)
                return skip_body(c, req);
        r = read_body(c, req, FLEET_MAX_MESSAGE, &body, &len);
        if (r < 0)
                return r == -ECONNRESET || r == -ENOMEM ? r : 0;
        if (fleet_status_parse(body, len, &st) < 0)
                return conn_error(c, 400, "check-in: %s", ringil_detail());
        r = store_checkin(c->srv->db, c->peer, &st, (int64_t) time(NULL));
        if (r < 0)
                return conn_error(c, 503, "store: %s", ringil_detail());
        r = api_rollout_checkin(c, auth.group, &st, &held, &a);
        if (r < 0)
                return conn_error(c, 503, "store: %s", ringil_detail());
        r = held ? 0 : get_assignment(c, c->peer, auth.group, &rel);
        if (r < 0)
                return conn_error(c, 500, "assignment lookup failed");
        if (r > 0) {
                a.assigned = true;
                a.release = rel.id;
                a.size = rel.size;
                snprintf(a.version, sizeof(a.version), "%s", rel.version);
                snprintf(a.sha256, sizeof(a.sha256), "%s", rel.sha256);
        }
        atomic_fetch_add(&c->srv->m.checkins, 1);
        if (fleet_assignment_format(&a, &out) < 0)
                return conn_error(c, 500, "out of memory");
        return conn_respond(c, 200, "application/json", NULL, out, strlen(out));
}

static int route_report(struct conn *c, const struct http_request *req) {
        _cleanup_free_ char *body = NULL;
        struct fleet_status st;
        struct drone_auth auth;
        char out[64];
        size_t len;
        int r;

        r = authorize_drone(c, &auth);
        if (r < 0)
                return skip_body(c, req);
        r = read_body(c, req, FLEET_MAX_MESSAGE, &body, &len);
        if (r < 0)
                return r == -ECONNRESET || r == -ENOMEM ? r : 0;
        if (fleet_status_parse(body, len, &st) < 0)
                return conn_error(c, 400, "report: %s", ringil_detail());
        if (st.seq == 0)
                return conn_error(c, 400, "report: 'seq' must be > 0");
        r = store_report(c->srv->db, c->peer, &st, (int64_t) time(NULL));
        if (r == -ESTALE)
                return conn_error(c, 409, "report seq %" PRIu64 " is older than the last one stored", st.seq);
        if (r < 0)
                /* No acknowledgement unless committed: the agent keeps the report and retries. */
                return conn_error(c, 503, "store: %s", ringil_detail());
        /* Its rollout and compliance parts, also for a repeated report (the first attempt may have
         * stopped between the two commits): both are idempotent, and the ack waits for them. */
        r = store_rollout_report(c->srv->db, c->peer, &st, (int64_t) time(NULL));
        if (r >= 0)
                r = store_compliance_update(c->srv->db, c->peer, &st, (int64_t) time(NULL));
        if (r < 0)
                return conn_error(c, 503, "store: %s", ringil_detail());
        atomic_fetch_add(&c->srv->m.reports, 1);
        log_info("drone %s: %s (release %" PRId64 ", version '%s')%s%s", c->peer, fleet_state_to_string(st.state),
                 st.release, st.version, st.error[0] ? ": " : "", st.error);
        snprintf(out, sizeof(out), "{\"ack\":%" PRIu64 "}", st.seq);
        return conn_respond(c, 200, "application/json", NULL, out, strlen(out));
}

static int send_file_range(struct conn *c, int fd, uint64_t first, uint64_t last, atomic_uint_fast64_t *sent) {
        uint8_t buf[65536];
        uint64_t off = first;

        while (off <= last) {
                size_t want = (size_t) MIN((uint64_t) sizeof(buf), last - off + 1);
                ssize_t k = pread(fd, buf, want, (off_t) off);
                if (k <= 0)
                        return -EIO;
                if (conn_write(c, buf, (size_t) k) < 0)
                        return -EPIPE;
                atomic_fetch_add(sent, (uint64_t) k);
                off += (uint64_t) k;
        }
        return 0;
}

/*
 * Answer GET or HEAD with fd, an open regular file of `size` bytes: 200 with all of it, or for a Range
 * header 206 with that single range (416 when unsatisfiable, 400 when malformed); Accept-Ranges and
 * Content-Length always, ETag when etag is not NULL. Body bytes are added to *sent. Returns >= 0, or
 * < 0 when the connection must be dropped (the head or body could not be written).
 */
static int respond_file(struct conn *c, const struct http_request *req, int fd, uint64_t size, const char *ctype,
                        const char *etag, atomic_uint_fast64_t *sent) {
        uint64_t first = 0, last = size - 1, len = size;   /* size 0: len 0 and no body is sent */
        char range[128] = "", head[768];
        int n, r;

        if (req->has_range) {
                r = http_parse_range(req->range, size, &first, &last);
                if (r == -ERANGE) {
                        snprintf(range, sizeof(range), "Content-Range: bytes */%" PRIu64 "\r\n", size);
                        return conn_respond(c, 416, "application/json", range, "{\"error\":\"range\"}", 17);
                }
                if (r < 0)
                        return conn_error(c, 400, "malformed Range");
                len = last - first + 1;
                snprintf(range, sizeof(range), "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64 "\r\n",
                         first, last, size);
        }
        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nServer: ringil-server\r\nContent-Type: %s\r\n%s%s%s"
                     "Accept-Ranges: bytes\r\n%sContent-Length: %" PRIu64 "\r\n%s\r\n",
                     req->has_range ? 206 : 200, req->has_range ? "Partial Content" : "OK", ctype,
                     etag ? "ETag: \"" : "", etag ? etag : "", etag ? "\"\r\n" : "", range, len,
                     c->close_after ? "Connection: close\r\n" : "");
        if (n < 0 || (size_t) n >= sizeof(head) || conn_write(c, head, (size_t) n) < 0)
                return -EPIPE;
        if (req->method == HTTP_HEAD || len == 0)
                return 0;
        return send_file_range(c, fd, first, last, sent) < 0 ? -EPIPE : 0;
}

static int route_bundle(struct conn *c, const struct http_request *req, int64_t rid) {
        _cleanup_close_ int fd = -EBADF;
        struct release rel;
        struct stat st;
        int r;

        if (skip_body(c, req) < 0)
                return -ECONNRESET;
        if (c->role != PEER_OPERATOR) {
                struct drone_auth auth;
                r = authorize_drone(c, &auth);
                if (r < 0)
                        return 0;
                struct rollout_checkin_result hold;
                r = store_rollout_checkin(c->srv->db, c->peer, auth.group, NULL, (int64_t) time(NULL), false, &hold);
                if (r < 0)
                        return conn_error(c, 503, "store: %s", ringil_detail());
                r = hold.held ? 0 : get_assignment(c, c->peer, auth.group, &rel);
                if (r < 0)
                        return conn_error(c, 500, "assignment lookup failed");
                /* INVARIANT: a drone downloads only the release currently assigned to it (a member a
                 * rollout holds has none). */
                if (r == 0 || rel.id != rid) {
                        atomic_fetch_add(&c->srv->m.auth_refused, 1);
                        return conn_error(c, 403, "release %" PRId64 " is not assigned to '%s'", rid, c->peer);
                }
        } else if (store_release_get(c->srv->db, rid, &rel) < 0)
                return conn_error(c, 404, "no release %" PRId64, rid);

        fd = open(rel.path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t) st.st_size != rel.size)
                return conn_error(c, 500, "bundle of release %" PRId64 " is missing or changed", rid);
        if (rel.size == 0)
                return conn_error(c, 500, "empty bundle");
        return respond_file(c, req, fd, rel.size, "application/octet-stream", rel.sha256, &c->srv->m.bundle_bytes);
}

/* A file of the Nix cache could not be opened: what is absent, or a symlink, is not in this cache. */
static int nix_cache_open_failed(struct conn *c, int r, const char *rel) {
        if (r == -ENOENT || r == -ENOTDIR || r == -ELOOP) {
                atomic_fetch_add(&c->srv->m.nix_cache_misses, 1);
                return conn_error(c, 404, "'%s' is not in this cache", rel);
        }
        /* Anything else (unreadable, I/O) is the server's problem: Nix must not read it as a miss. */
        log_warning_errno(r, "nix-cache: cannot open '%s': %m", rel);
        return conn_error(c, 500, "cannot open '%s' in the cache", rel);
}

/*
 * GET/HEAD /nix-cache/REL: a file of the configured Nix binary cache, for an operator or an allowed
 * drone (the narinfos carry Nix's own ed25519 signatures; docs/fleet.md). 404 is exact: Nix reads it as
 * "this path is not in the cache", so every name outside the three shapes and every non-file is 404.
 */
static int route_nix_cache(struct conn *c, const struct http_request *req, const char *rel) {
        static const char *const types[] = {
                [FLEET_NIX_CACHE_INFO] = "text/x-nix-cache-info",
                [FLEET_NIX_NARINFO] = "text/x-nix-narinfo",
                [FLEET_NIX_NAR] = "application/x-nix-nar",
        };
        _cleanup_close_ int dfd = -EBADF, fd = -EBADF;
        const char *name = rel;
        struct stat st;
        int kind;

        if (skip_body(c, req) < 0)
                return -ECONNRESET;
        if (c->role != PEER_OPERATOR) {
                struct drone_auth auth;
                if (authorize_drone(c, &auth) < 0)
                        return 0;
        }
        kind = fleet_nix_cache_file(rel);
        if (kind < 0 || req->query[0] || c->srv->nix_cache_fd < 0) {
                atomic_fetch_add(&c->srv->m.nix_cache_misses, 1);
                return conn_error(c, 404, "not in this cache");
        }
        /* INVARIANT: no symlink is followed below the cache directory, neither nar/ nor the file; the
         * name itself was checked to be one plain component (fleet_nix_cache_file). O_NONBLOCK: a FIFO
         * planted in the cache must not block this thread in open(); fstat() below refuses it. */
        if (kind == FLEET_NIX_NAR) {
                dfd = openat(c->srv->nix_cache_fd, "nar", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (dfd < 0)
                        return nix_cache_open_failed(c, negative_errno(), rel);
                name = rel + strlen("nar/");
        }
        fd = openat(dfd >= 0 ? dfd : c->srv->nix_cache_fd, name,
                    O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
        if (fd < 0)
                return nix_cache_open_failed(c, negative_errno(), rel);
        if (fstat(fd, &st) < 0)
                return conn_error(c, 500, "cannot stat '%s' in the cache", rel);
        if (!S_ISREG(st.st_mode)) {
                atomic_fetch_add(&c->srv->m.nix_cache_misses, 1);
                return conn_error(c, 404, "'%s' is not in this cache", rel);
        }
        atomic_fetch_add(&c->srv->m.nix_cache_hits, 1);
        return respond_file(c, req, fd, (uint64_t) st.st_size, types[kind], NULL, &c->srv->m.nix_cache_bytes);
}

static int route_enroll(struct conn *c, const struct http_request *req) {
        _cleanup_free_ char *body = NULL, *pem = NULL, *ca = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pub = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        json_t *j;
        json_error_t e;
        const char *id = NULL, *token = NULL, *csr = NULL;
        uint8_t raw[32], hash[SHA256_LEN];
        char serial[65] = "";
        size_t len;
        int r;

        r = read_body(c, req, ENROLL_MAX_BODY, &body, &len);
        if (r < 0)
                return r == -ECONNRESET || r == -ENOMEM ? r : 0;
        if (!c->srv->device_ca_key)
                return conn_error(c, 501, "enrollment is disabled (no CA key on this server)");
        j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &e);
        if (!j || json_unpack(j, "{s:s, s:s, s:s !}", "id", &id, "token", &token, "csr", &csr) < 0 ||
            ca_name_valid(id) < 0 || strlen(token) != 64 || hex_decode(token, raw, sizeof(raw)) < 0) {
                json_decref(j);
                return conn_error(c, 400, "enroll: expected {\"id\", \"token\", \"csr\"}");
        }
        r = ca_csr_pubkey(csr, strlen(csr), &pub);
        if (r >= 0)
                r = ca_sign(c->srv->device_ca_key, c->srv->device_ca_cert, pub, id, CA_PROFILE_DEVICE, NULL,
                            CA_DEFAULT_DAYS, &cert);
        if (r < 0) {
                json_decref(j);
                return conn_error(c, 400, "enroll: %s", ringil_detail());
        }
        {
                BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
                char *hex = bn ? BN_bn2hex(bn) : NULL;
                BN_free(bn);
                if (hex && strlen(hex) < sizeof(serial))
                        for (size_t i = 0; hex[i]; i++)
                                serial[i] = (char) (hex[i] >= 'A' && hex[i] <= 'F' ? hex[i] - 'A' + 'a' : hex[i]);
                OPENSSL_free(hex);
        }
        (void) crypto_sha256(raw, sizeof(raw), hash);
        secret_wipe(raw, sizeof(raw));
        r = store_drone_enroll(c->srv->db, id, hash, (int64_t) time(NULL), serial);
        if (r < 0) {
                atomic_fetch_add(&c->srv->m.auth_refused, 1);
                log_notice("enrollment of '%s' refused", id);
                json_decref(j);
                return conn_error(c, 403, "enrollment refused");
        }
        if (ca_cert_to_pem(cert, &pem) < 0 || ca_cert_to_pem(c->srv->device_ca_cert, &ca) < 0) {
                json_decref(j);
                return conn_error(c, 500, "out of memory");
        }
        atomic_fetch_add(&c->srv->m.enrollments, 1);
        log_info("enrolled drone '%s' (certificate serial %s)", id, serial);
        {
                json_t *o = json_pack("{s:s, s:s, s:s}", "id", id, "cert", pem, "ca", ca);
                json_decref(j);   /* id points into j */
                r = respond_json(c, 200, o);
                json_decref(o);
        }
        return r;
}

static int route_drone_add(struct conn *c, const struct http_request *req) {
        _cleanup_free_ char *body = NULL;
        const char *id = NULL, *group = "default";
        json_t *j, *out;
        json_error_t e;
        uint8_t raw[32], hash[SHA256_LEN];
        char token[65];
        int64_t expires = (int64_t) time(NULL) + c->srv->cfg.token_ttl;
        size_t len;
        int r;

        r = read_body(c, req, SERVER_MAX_JSON_BODY, &body, &len);
        if (r < 0)
                return r == -ECONNRESET || r == -ENOMEM ? r : 0;
        j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &e);
        if (!j || json_unpack(j, "{s:s, s?s !}", "id", &id, "group", &group) < 0 || ca_name_valid(id) < 0 ||
            ca_name_valid(group) < 0) {
                json_decref(j);
                return conn_error(c, 400, "expected {\"id\": NAME, \"group\": NAME}");
        }
        if (crypto_random(raw, sizeof(raw)) < 0 || crypto_sha256(raw, sizeof(raw), hash) < 0) {
                json_decref(j);
                return conn_error(c, 500, "random");
        }
        hex_encode(raw, sizeof(raw), token);
        secret_wipe(raw, sizeof(raw));
        r = store_drone_add(c->srv->db, id, group, hash, expires);
        if (r < 0) {
                secret_wipe(token, sizeof(token));
                r = r == -EEXIST ? conn_error(c, 409, "drone '%s' exists", id)
                                 : conn_error(c, 503, "store: %s", ringil_detail());
                json_decref(j);
                return r;
        }
        log_info("registered drone '%s' in group '%s'", id, group);
        out = json_pack("{s:s, s:s, s:s, s:I}", "id", id, "group", group, "token", token, "expires",
                        (json_int_t) expires);
        secret_wipe(token, sizeof(token));
        json_decref(j);
        r = respond_json(c, 201, out);
        json_decref(out);
        return r;
}

static int route_assign(struct conn *c, const struct http_request *req, int64_t rid) {
        _cleanup_free_ char *body = NULL;
        const char *target = NULL;
        int force = 0;
        json_t *j;
        json_error_t e;
        size_t len;
        int r;

        r = read_body(c, req, SERVER_MAX_JSON_BODY, &body, &len);
        if (r < 0)
                return r == -ECONNRESET || r == -ENOMEM ? r : 0;
        j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &e);
        if (!j || json_unpack(j, "{s:s, s?b !}", "target", &target, "force", &force) < 0 ||
            !(streq(target, "*") || (strncmp(target, "group:", 6) == 0 && ca_name_valid(target + 6) >= 0) ||
              (strncmp(target, "drone:", 6) == 0 && ca_name_valid(target + 6) >= 0))) {
                json_decref(j);
                return conn_error(c, 400, "expected {\"target\": \"*\" | \"group:NAME\" | \"drone:ID\", \"force\": BOOL}");
        }
        /* One rollout per drone: a static assignment of a drone a rollout holds is refused, or, with
         * force, takes the drone out of the rollout. */
        r = strncmp(target, "drone:", 6) == 0
                    ? store_rollout_assign_check(c->srv->db, target + 6, force, (int64_t) time(NULL)) : 0;
        if (r == -EEXIST) {
                r = conn_error(c, 409, "%s", ringil_detail());
                json_decref(j);
                return r;
        }
        if (r >= 0)
                r = store_assign(c->srv->db, target, rid);
        if (r < 0) {
                json_decref(j);
                return r == -ENOENT ? conn_error(c, 404, "no release %" PRId64, rid)
                                    : conn_error(c, 503, "store: %s", ringil_detail());
        }
        log_info("release %" PRId64 " assigned to %s", rid, target);
        {
                json_t *o = json_pack("{s:I, s:s}", "release", (json_int_t) rid, "target", target);
                json_decref(j);   /* target points into j */
                r = respond_json(c, 200, o);
                json_decref(o);
        }
        return r;
}

static int route_metrics(struct conn *c) {
        struct metrics *m = &c->srv->m;
        _cleanup_buf_ struct buf b = BUF_INIT(1 << 16);
        json_t *counts = NULL, *v;
        const char *k;

        buf_printf(&b,
                   "# HELP ringil_http_requests_total HTTP requests parsed.\n# TYPE ringil_http_requests_total counter\n"
                   "ringil_http_requests_total %" PRIuFAST64 "\n"
                   "# TYPE ringil_http_errors_total counter\n"
                   "ringil_http_errors_total{class=\"4xx\"} %" PRIuFAST64 "\n"
                   "ringil_http_errors_total{class=\"5xx\"} %" PRIuFAST64 "\n"
                   "# TYPE ringil_checkins_total counter\nringil_checkins_total %" PRIuFAST64 "\n"
                   "# TYPE ringil_reports_total counter\nringil_reports_total %" PRIuFAST64 "\n"
                   "# TYPE ringil_enrollments_total counter\nringil_enrollments_total %" PRIuFAST64 "\n"
                   "# TYPE ringil_bundle_bytes_sent_total counter\nringil_bundle_bytes_sent_total %" PRIuFAST64 "\n"
                   "# TYPE ringil_uploads_total counter\nringil_uploads_total{result=\"accepted\"} %" PRIuFAST64 "\n"
                   "ringil_uploads_total{result=\"refused\"} %" PRIuFAST64 "\n"
                   "# TYPE ringil_tls_handshake_failures_total counter\nringil_tls_handshake_failures_total %" PRIuFAST64 "\n"
                   "# TYPE ringil_auth_refused_total counter\nringil_auth_refused_total %" PRIuFAST64 "\n"
                   "# TYPE ringil_connections_total counter\nringil_connections_total %" PRIuFAST64 "\n"
                   "# TYPE ringil_connections_active gauge\nringil_connections_active %d\n"
                   "# TYPE ringil_nix_cache_requests_total counter\n"
                   "ringil_nix_cache_requests_total{result=\"hit\"} %" PRIuFAST64 "\n"
                   "ringil_nix_cache_requests_total{result=\"miss\"} %" PRIuFAST64 "\n"
                   "# TYPE ringil_nix_cache_bytes_sent_total counter\nringil_nix_cache_bytes_sent_total %" PRIuFAST64 "\n",
                   atomic_load(&m->requests), atomic_load(&m->errors_4xx), atomic_load(&m->errors_5xx),
                   atomic_load(&m->checkins), atomic_load(&m->reports), atomic_load(&m->enrollments),
                   atomic_load(&m->bundle_bytes), atomic_load(&m->uploads), atomic_load(&m->uploads_refused),
                   atomic_load(&m->tls_failures), atomic_load(&m->auth_refused), atomic_load(&m->connections_total),
                   atomic_load(&m->connections_active), atomic_load(&m->nix_cache_hits),
                   atomic_load(&m->nix_cache_misses), atomic_load(&m->nix_cache_bytes));
        if (store_state_counts(c->srv->db, &counts) >= 0) {
                buf_printf(&b, "# HELP ringil_drones Drones by update state.\n# TYPE ringil_drones gauge\n");
                json_object_foreach(counts, k, v)
                        buf_printf(&b, "ringil_drones{state=\"%s\"} %" JSON_INTEGER_FORMAT "\n", k, json_integer_value(v));
                json_decref(counts);
        }
        buf_printf(&b,
                   "# TYPE ringil_rollout_scheduler_passes_total counter\nringil_rollout_scheduler_passes_total %" PRIuFAST64 "\n"
                   "# TYPE ringil_rollout_hands_total counter\nringil_rollout_hands_total %" PRIuFAST64 "\n"
                   "# HELP ringil_rollout_scheduler_pass_seconds Duration of the last scheduler pass.\n"
                   "# TYPE ringil_rollout_scheduler_pass_seconds gauge\nringil_rollout_scheduler_pass_seconds %.6f\n"
                   "# TYPE ringil_rollout_scheduler_pass_seconds_max gauge\nringil_rollout_scheduler_pass_seconds_max %.6f\n",
                   atomic_load(&m->rollout_passes), atomic_load(&m->rollout_hands),
                   (double) atomic_load(&m->rollout_pass_us_last) / 1e6, (double) atomic_load(&m->rollout_pass_us_max) / 1e6);
        (void) store_rollout_metrics(c->srv->db, (int64_t) time(NULL),
                                     c->srv->cfg.silent_polls * c->srv->cfg.poll_interval, &b);
        return conn_respond(c, 200, "text/plain; version=0.0.4", NULL, b.data, b.len);
}

/* "/api/v1/<coll>/<id>[/<action>]": splits into id and action; false if the shape differs. */
static bool split_path(const char *path, const char *prefix, char *id, size_t idcap, const char **ret_action) {
        size_t pl = strlen(prefix);
        const char *rest, *slash;
        size_t n;

        if (strncmp(path, prefix, pl) != 0)
                return false;
        rest = path + pl;
        slash = strchr(rest, '/');
        n = slash ? (size_t) (slash - rest) : strlen(rest);
        if (n == 0 || n >= idcap)
                return false;
        memcpy(id, rest, n);
        id[n] = '\0';
        *ret_action = slash ? slash + 1 : "";
        return true;
}

int api_handle(struct conn *c, const struct http_request *req) {
        const char *p = req->path, *action;
        char id[CA_NAME_MAX + 1];
        bool get = req->method == HTTP_GET || req->method == HTTP_HEAD, post = req->method == HTTP_POST;
        int r;

        if (streq(p, "/api/v1/enroll") && post)
                return route_enroll(c, req);
        if (streq(p, "/api/v1/checkin") && post)
                return route_checkin(c, req);
        if (streq(p, "/api/v1/report") && post)
                return route_report(c, req);
        if (split_path(p, "/api/v1/releases/", id, sizeof(id), &action) && streq(action, "bundle") && get) {
                uint64_t rid;
                if (parse_u64(id, &rid) < 0 || rid == 0 || rid > INT64_MAX)
                        return skip_body(c, req) < 0 ? -1 : conn_error(c, 404, "no such release");
                return route_bundle(c, req, (int64_t) rid);
        }
        if (strncmp(p, FLEET_NIX_CACHE_PREFIX, strlen(FLEET_NIX_CACHE_PREFIX)) == 0 && get)
                return route_nix_cache(c, req, p + strlen(FLEET_NIX_CACHE_PREFIX));
        if (split_path(p, "/api/v1/drones/", id, sizeof(id), &action) && streq(action, "") && get) {
                json_t *j = NULL;
                if (skip_body(c, req) < 0)
                        return -1;
                if (ca_name_valid(id) < 0)
                        return conn_error(c, 404, "no such drone");
                if (authorize_self_or_operator(c, id) < 0)
                        return 0;
                r = store_drone_json(c->srv->db, id, &j);
                if (r == -ENOENT)
                        return conn_error(c, 404, "no drone '%s'", id);
                if (r >= 0)
                        r = store_drone_decorate(c->srv->db, id, j);
                if (r < 0) {
                        json_decref(j);
                        return conn_error(c, 500, "store: %s", ringil_detail());
                }
                r = respond_json(c, 200, j);
                json_decref(j);
                return r;
        }

        /* Rollouts, tags, windows, retries, compliance, drift: each route checks its own role. */
        r = api_rollout_handle(c, req);
        if (r != 0)
                return r > 0 ? 0 : r;

        /* Everything below is the operator API. */
        if (authorize_operator(c) < 0)
                return skip_body(c, req);
        if (streq(p, "/metrics") && get)
                return skip_body(c, req) < 0 ? -1 : route_metrics(c);
        if (streq(p, "/api/v1/drones") && get) {
                json_t *j = NULL;
                if (skip_body(c, req) < 0)
                        return -1;
                if (store_drones_json(c->srv->db, &j) < 0)
                        return conn_error(c, 500, "store: %s", ringil_detail());
                r = respond_json(c, 200, j);
                json_decref(j);
                return r;
        }
        if (streq(p, "/api/v1/drones") && post)
                return route_drone_add(c, req);
        if (split_path(p, "/api/v1/drones/", id, sizeof(id), &action) && streq(action, "revoke") && post) {
                if (skip_body(c, req) < 0)
                        return -1;
                r = ca_name_valid(id) < 0 ? -ENOENT : store_drone_revoke(c->srv->db, id);
                if (r == -ENOENT)
                        return conn_error(c, 404, "no drone '%s'", id);
                if (r < 0)
                        return conn_error(c, 503, "store: %s", ringil_detail());
                log_notice("revoked drone '%s'", id);
                return conn_respond(c, 200, "application/json", NULL, "{\"revoked\":true}", 16);
        }
        if (streq(p, "/api/v1/releases") && get) {
                json_t *j = NULL;
                if (skip_body(c, req) < 0)
                        return -1;
                if (store_releases_json(c->srv->db, &j) < 0)
                        return conn_error(c, 500, "store: %s", ringil_detail());
                r = respond_json(c, 200, j);
                json_decref(j);
                return r;
        }
        if (streq(p, "/api/v1/releases") && (post || req->method == HTTP_PUT))
                return api_upload(c, req);
        if (split_path(p, "/api/v1/releases/", id, sizeof(id), &action) && streq(action, "assign") && post) {
                uint64_t rid;
                if (parse_u64(id, &rid) < 0 || rid == 0 || rid > INT64_MAX) {
                        c->close_after = true;
                        return conn_error(c, 404, "no such release");
                }
                return route_assign(c, req, (int64_t) rid);
        }
        if (skip_body(c, req) < 0)
                return -1;
        return conn_error(c, 404, "no route for %s", p);
}

/* ---- for the other route files ---- */

int api_read_body(struct conn *c, const struct http_request *req, size_t max, char **ret, size_t *ret_len) {
        return read_body(c, req, max, ret, ret_len);
}

int api_skip_body(struct conn *c, const struct http_request *req) {
        return skip_body(c, req);
}

int api_respond_json(struct conn *c, int status, json_t *j) {
        return respond_json(c, status, j);
}

int api_authorize_drone(struct conn *c, struct drone_auth *ret) {
        return authorize_drone(c, ret);
}

int api_authorize_operator(struct conn *c) {
        return authorize_operator(c);
}

int api_authorize_self_or_operator(struct conn *c, const char *id) {
        return authorize_self_or_operator(c, id);
}
